"""What keeping every SSL layer costs: extraction time and store size with and without the `layers` dataset, and
the time to read one layer or all of them back, for a head.

A demo corpus (`make-demo`'s synthetic bursts, 10 clips per speaker) through a random-init encoder of a chosen
shape (default: the wav2vec2-base layout at 4 layers and 256 hidden, so it runs in a minute on 2 cores; the
figures that grow with the encoder's size are the bytes, which are exact: ``(layers + 1) x 2 x hidden x 4`` per
clip). Each extraction runs once into a fresh store; reads are the median of 3.

    python benchmarks/ssl_layers.py                      # 200 clips
    python benchmarks/ssl_layers.py --clips 50 --quick   # a check that it works
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import report  # noqa: E402


def _corpus(root: Path, clips: int):
    from exvo_keras.data.corpus import load_corpus
    from exvo_keras.data.demo import make_demo

    make_demo(root, n_speakers=max(1, clips // 10), clips_per_speaker=10, seed=0, progress=False)
    return load_corpus(root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--layers", type=int, default=4, help="transformer layers of the random encoder")
    parser.add_argument("--hidden", type=int, default=256, help="hidden size of the random encoder")
    parser.add_argument("--quick", action="store_true", help="2 layers, 64 hidden")
    args = parser.parse_args()
    if args.quick:
        args.layers, args.hidden = 2, 64

    from exvo_keras.features.ssl import extract_ssl
    from exvo_keras.models.ssl import SSLEncoder, small_config
    from exvo_keras.store import ALL_LAYERS, read_store

    encoder = SSLEncoder.from_hf_config(small_config("wav2vec2", num_hidden_layers=args.layers,
                                                     hidden_size=args.hidden, num_attention_heads=4,
                                                     intermediate_size=4 * args.hidden), seed=0)
    figures = {"clips": args.clips, "encoder": f"wav2vec2 layout, {args.layers} layers, {args.hidden} hidden"}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = _corpus(Path(tmp) / "corpus", args.clips)
        # one untimed pass traces the pooling functions, so both timed runs start warm
        extract_ssl(corpus, encoder, Path(tmp) / "warm.h5", progress=False)
        extract_ssl(corpus, encoder, Path(tmp) / "warm1.h5", all_layers=False, progress=False)
        ids = corpus.file_ids()
        for label, all_layers in (("default_layer_only", False), ("every_layer", True)):
            path = Path(tmp) / f"{label}.h5"
            start = time.perf_counter()
            extract_ssl(corpus, encoder, path, all_layers=all_layers, progress=False)
            figures[f"extract_s_{label}"] = round(time.perf_counter() - start, 2)
            figures[f"store_bytes_{label}"] = path.stat().st_size
            figures[f"bytes_per_clip_{label}"] = round(path.stat().st_size / len(ids))

            def timed(layer):
                runs = []
                for _ in range(3):
                    start = time.perf_counter()
                    read_store(path, ids, layer=layer)
                    runs.append(time.perf_counter() - start)
                return round(statistics.median(runs) * 1000, 1)

            figures[f"read_ms_embeddings_{label}"] = timed(None)
            if all_layers:
                figures["read_ms_one_layer"] = timed(1)
                figures["read_ms_all_layers"] = timed(ALL_LAYERS)
    figures["extract_time_ratio"] = round(figures["extract_s_every_layer"] / figures["extract_s_default_layer_only"], 3)
    figures["store_size_ratio"] = round(figures["store_bytes_every_layer"] / figures["store_bytes_default_layer_only"], 2)
    report("ssl_layers", figures)


if __name__ == "__main__":
    main()
