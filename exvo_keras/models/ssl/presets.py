"""The encoders behind the feature sets "wavlm", "hubert" and "wav2vec2": checkpoints by name, or demo stand-ins.

With ``--ssl-dir DIR`` a feature set's encoder is the Hugging Face checkpoint ``DIR/<folder>``
(:func:`checkpoint_for`; folders and repositories in :data:`exvo_keras.registry.SSL_FEATURE_SETS`); without it,
a small randomly initialised encoder of the same family (:func:`demo_encoder`), so the whole pipeline runs on
the demo corpus.
"""

from __future__ import annotations

from pathlib import Path

from exvo_keras.models.ssl.checkpoint import CONFIG_FILE, PREPROCESSOR_FILE
from exvo_keras.models.ssl.encoder import SSLEncoder, small_config
from exvo_keras.models.ssl.provenance import Provenance, attach
from exvo_keras.registry import SSL_FEATURE_SETS, ssl_feature_set

# Demo encoders: the real models' 20 ms frames (strides multiply to 320) from four convolutions instead of
# seven, 64 hidden units, four layers. wav2vec2 in the base layout (as wav2vec2-base), hubert and wavlm in the
# large one (pre-norm, as hubert-large-ll60k and wavlm-large). Extracting the demo corpus (960 clips, 22 min of
# audio) takes 12-15 s per family on 2 CPU cores (measured while another job kept them busy).
DEMO_SIZES = {
    "hidden_size": 64,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "intermediate_size": 256,
    "conv_dim": [64, 64, 64, 64],
    "conv_kernel": [10, 4, 4, 4],
    "conv_stride": [5, 4, 4, 4],
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 4,
}
DEMO_LARGE_LAYOUT = {"wav2vec2": False, "hubert": True, "wavlm": True}
DEMO_WAVLM = {"num_buckets": 32, "max_bucket_distance": 128}


def demo_encoder(family: str, seed: int = 0, do_normalize: bool = False) -> SSLEncoder:
    """A small randomly initialised encoder of one family ("wav2vec2", "hubert", "wavlm"), for the demo.

    Sizes: :data:`DEMO_SIZES` (64 hidden, 4 layers, 20 ms frames): 128-dimensional embeddings. Its provenance
    (stores record ``"weights": "random-init seed <seed>"``) rebuilds it.

    Example:
        >>> demo_encoder("wavlm").provenance.weights
        'random-init seed 0'
    """
    model_type = ssl_feature_set(family).model_type
    extra = DEMO_WAVLM if model_type == "wavlm" else {}
    config = small_config(model_type, large=DEMO_LARGE_LAYOUT[model_type], **DEMO_SIZES, **extra)
    # Each family draws its own weights: with one seed, HuBERT and WavLM (same layout and sizes) shared every
    # weight but WavLM's position bias and gave near-identical demo rows.
    family_seed = seed * len(SSL_FEATURE_SETS) + list(SSL_FEATURE_SETS).index(family)
    encoder = SSLEncoder.from_hf_config(config, seed=family_seed, do_normalize=do_normalize,
                                        name=f"demo_{model_type}")
    return attach(encoder, Provenance("demo", do_normalize, seed=seed))


def checkpoint_for(name: str, ssl_dir) -> Path | None:
    """The checkpoint folder of feature set `name` under `ssl_dir`, or None when no `ssl_dir` is given.

    "wavlm" -> ``ssl_dir/wavlm-large``, "hubert" -> ``ssl_dir/hubert-large-ll60k``, "wav2vec2" ->
    ``ssl_dir/wav2vec2-base``. Raises FileNotFoundError naming the folder (and the Hugging Face repository to put
    there) when it, or its config.json, is missing; KeyError for an unknown name.
    """
    feature_set = ssl_feature_set(name)
    if ssl_dir is None:
        return None
    folder = Path(ssl_dir) / feature_set.folder
    if not (folder / CONFIG_FILE).is_file():
        what = "does not exist" if not folder.exists() else f"has no {CONFIG_FILE}"
        repo = feature_set.repo
        raise FileNotFoundError(
            f"{name}: checkpoint folder {folder} {what}; supply the Hugging Face model {repo} there "
            f"({CONFIG_FILE}, model.safetensors or pytorch_model.bin, and {PREPROCESSOR_FILE}), e.g. "
            f"`huggingface-cli download {repo} --local-dir {folder}` on a machine with network access")
    return folder
