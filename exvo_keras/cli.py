"""One command line for every stage: `python -m exvo_keras <command> --help`.

Each command is a thin wrapper over a package function; run_all.sh only chains these commands.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from pathlib import Path

from exvo_keras import registry
from exvo_keras.workspace import ReportFolder, Workspace, shard_stores

DEFAULT_WORK = "work"


def _quiet_tensorflow() -> None:
    # TensorFlow's C++ start-up chatter and its Python retracing notices (one per freshly built model, which is
    # what multi-seed training does on purpose) would bury the progress bars and our own messages.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def cmd_make_demo(args) -> int:
    from exvo_keras.data.demo import make_demo
    from exvo_keras.data.ood_demo import make_ood_demo

    path = Path(args.out_dir)
    if (path / "data_info.csv").exists() and not args.overwrite:
        print(f"demo corpus already at {path} (use --overwrite to rebuild)")
        return 0
    make_demo(path, n_speakers=args.speakers, clips_per_speaker=args.clips, seed=args.seed, overwrite=args.overwrite,
              progress=not args.quiet)
    if not args.no_ood:
        # The out-of-domain lists live inside the corpus folder, where train-network finds them by default.
        make_ood_demo(path / "ood", seed=args.seed, overwrite=True, progress=not args.quiet)
    print(f"wrote demo corpus to {path}")
    return 0


def cmd_check_corpus(args) -> int:
    from exvo_keras.data.corpus import check_corpus

    problems = check_corpus(args.root, check_audio=not args.no_audio, progress=not args.quiet)
    errors = [p for p in problems if p.severity == "error"]
    for p in problems:
        print(p)
    if problems.clips:
        print(f"checked {problems.clips} clips in {problems.seconds:.1f} s "
              f"({problems.clips / max(problems.seconds, 1e-9):.0f} clips/s)")
    print(f"{args.root}: {len(errors)} error(s), {len(problems) - len(errors)} warning(s)")
    return 1 if errors else 0


def cmd_extract_compare(args) -> int:
    from exvo_keras.data.corpus import load_corpus
    from exvo_keras.features.compare import extract_compare

    corpus = load_corpus(args.data)
    out = Path(args.out) if args.out else args.work.store(registry.COMPARE)
    if out.exists():
        print(f"{out}: exists; only clips that are new or changed since are computed")
    path = extract_compare(corpus, out, jobs=args.jobs, progress=not args.quiet)
    print(f"ComParE store: {path}")
    return 0


def _training_options(args) -> dict:
    """The recipe named by --recipe, and only the options given on the command line on top of it."""
    given = dict(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr, patience=args.patience,
                 early_stopping=args.early_stopping, eval_splits=args.eval_splits,
                 layer=getattr(args, "layer", None))
    return {"recipe": args.recipe, **{k: v for k, v in given.items() if v is not None}}


def cmd_train(args) -> int:
    from exvo_keras.data.corpus import load_corpus
    from exvo_keras.experiments.reproduce import selected, train_systems

    corpus = load_corpus(args.data)
    seeds = list(range(args.seed0, args.seed0 + args.seeds))
    results = train_systems(selected(args.table, args.rows), corpus, args.work, seeds, progress=not args.quiet,
                            **_training_options(args))
    failed = [k for k, v in results.items() if isinstance(v, str) and v.startswith("failed")]
    if failed:
        print(f"error: {len(failed)} system(s) failed (see above): {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def cmd_train_mtl(args) -> int:
    from exvo_keras.data.corpus import load_corpus
    from exvo_keras.experiments.reproduce import summary_line
    from exvo_keras.training.mtl import reference_scores, run_head
    from exvo_keras.training.recipes import HeadTraining

    corpus = load_corpus(args.data)
    seeds = list(range(args.seed0, args.seed0 + args.seeds))
    options = _training_options(args)
    runs = {args.head: Path(args.out)}
    if args.head != "linear":
        # What the deep head adds is read off the linear reference on the same features, trained beside it.
        runs["linear"] = Path(args.out).with_name(Path(args.out).name + "-linear")
    for head, out in runs.items():
        summary = run_head(out, corpus, HeadTraining.from_recipe(args.features, head, corpus=corpus, **options),
                           seeds, progress=not args.quiet)
        print(summary_line(f"{out} ({head})", summary))
    ref = reference_scores(corpus, "Val")
    print("Reference (Train means + majority country) [Val] " + ", ".join(
        f"{m} {ref[m]:.3f}" for m in registry.METRICS))
    return 0


def cmd_layer_sweep(args) -> int:
    from exvo_keras.data.corpus import load_corpus
    from exvo_keras.experiments.layers import layer_sweep

    corpus = load_corpus(args.data)
    seeds = list(range(args.seed0, args.seed0 + args.seeds))
    options = {k: v for k, v in _training_options(args).items() if k != "layer"}
    for name in args.names:
        frame = layer_sweep(name, corpus, args.work, seeds, head=args.head, out=args.out, progress=not args.quiet,
                            **options)
        print(f"{name}: {args.head} head on each layer ({len(seeds)} seed(s)); choose by dev_s_mtl")
        print(frame.drop(columns=["key"]).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print(f"  -> {ReportFolder(args.out).layer_sweep_csv(name)}, {ReportFolder(args.out).layer_sweep_plot(name)}")
    return 0


def _layer_choice(text: str):
    from exvo_keras.registry import WEIGHTED

    if text == WEIGHTED:
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a layer index (0 = the transformer's input) or {WEIGHTED!r}, "
                                         f"got {text!r}") from None


def _named_paths(pairs, what: str) -> dict[str, Path]:
    result = {}
    for pair in pairs or []:
        name, sep, path = pair.partition("=")
        if not sep:
            raise ValueError(f"{what} must be NAME=PATH, got {pair!r}")
        result[name] = Path(path)
    return result


def cmd_train_network(args) -> int:
    from exvo_keras.data.corpus import load_corpus
    from exvo_keras.experiments.networks import train_network
    from exvo_keras.runs import read_json

    corpus = load_corpus(args.data)
    lists = {k: Path(args.data) / v for k, v in registry.DEMO_LISTS.items() if (Path(args.data) / v).exists()}
    lists.update(_named_paths(args.list, "--list"))
    weights = _named_paths(args.weights, "--weights")
    for name in args.networks:
        net = registry.network(name)
        try:
            folder = train_network(net, corpus, args.work, args.profile, lists=lists, weights=weights.get(name),
                                   seed=args.seed, progress=not args.quiet, verbose=0 if args.quiet else 2)
        except FileNotFoundError as exc:
            print(f"{net.label}: not run: {exc}")
            continue
        metrics = read_json(folder.metrics)
        val = metrics.get("Val")
        score = f"Val UAR {val['uar']:.3f}, WAR {val['war']:.3f}" + (
            f" (collapsed: predicts class {val['predicted_classes'][0]} for every clip)"
            if val.get("collapsed") else "") if val else \
            f"cross-validation clip accuracy {metrics.get('cv_clip_accuracy', float('nan')):.3f}"
        print(f"{net.label} ({metrics['profile']} profile): {score}")
    return 0


def cmd_extract_network(args) -> int:
    from exvo_keras.data.corpus import load_corpus
    from exvo_keras.experiments.networks import extract_network

    corpus = load_corpus(args.data)
    for name in args.networks:
        net = registry.network(name)
        try:
            path = extract_network(net, corpus, args.work, progress=not args.quiet)
        except FileNotFoundError as exc:
            print(f"{net.label}: not extracted: {exc}")
            continue
        print(f"{net.label} embeddings: {path}")
    return 0


def cmd_extract_ssl(args) -> int:
    from exvo_keras.data.corpus import load_corpus
    from exvo_keras.features.ssl import extract_feature_set, extract_ssl

    corpus = load_corpus(args.data)
    if args.checkpoint and len(args.names) != 1:
        raise ValueError("--checkpoint names one encoder: give exactly one feature-set name")
    layer = None if args.layer in (None, "last") else int(args.layer)
    for name in args.names:
        common = dict(layer=layer, shard=args.shard, all_layers=not args.default_layer_only, progress=not args.quiet)
        if args.checkpoint:
            path = extract_ssl(corpus, Path(args.checkpoint), args.work.store(name), **common)
        else:
            path = extract_feature_set(name, corpus, args.work, ssl_dir=args.ssl_dir, seed=args.seed, **common)
        source = args.checkpoint or (f"checkpoints in {args.ssl_dir}" if args.ssl_dir else "random-init demo encoder")
        print(f"{name} ({source}): {path}")
    return 0


def cmd_merge_ssl(args) -> int:
    from exvo_keras.data.corpus import load_corpus
    from exvo_keras.store import merge_shards

    corpus = load_corpus(args.data)
    target = args.work.store(args.name)
    shards = shard_stores(target)
    print(f"{args.name}: merged {len(shards)} shard(s) into {merge_shards(shards, target, corpus)}")
    return 0


def cmd_figure2(args) -> int:
    from exvo_keras.experiments.filters import figure2

    path, drawn = figure2(args.work, args.out)
    print(f"Figure 2: {path} ({', '.join(drawn)})")
    return 0


def cmd_report(args) -> int:
    from exvo_keras.data.corpus import load_corpus
    from exvo_keras.experiments.report import all_reports, table_report

    corpus = load_corpus(args.data)
    if args.table == "all":
        all_reports(corpus, args.work, args.out)
        out = ReportFolder(args.out)
        for table in (1, 2, 3):
            print(out.table_markdown(table).read_text())
        print(f"S_MTL comparison: {out.comparison_plot}")
    else:
        print(table_report(int(args.table), corpus, args.work, args.out)[1])
    return 0


def cmd_extract_deepspectrum(args) -> int:
    from exvo_keras.data.corpus import load_corpus
    from exvo_keras.features.deepspectrum import extract_deepspectrum

    corpus = load_corpus(args.data)
    path = extract_deepspectrum(corpus, args.imagenet_weights, args.work.store(registry.DEEPSPECTRUM),
                                progress=not args.quiet)
    print(f"DeepSpectrum store: {path}")
    return 0


def cmd_export(args) -> int:
    from exvo_keras.export import DEFAULT_OUT, METADATA_FILE, best_exportable_system, export_system

    key = best_exportable_system(args.work) if args.system == "best" else args.system
    out = Path(args.out_dir) if args.out_dir else Path(DEFAULT_OUT) / key
    path = export_system(key, args.work, out, data=args.data, ssl_dir=args.ssl_dir, overwrite=args.overwrite)
    print(f"{key}: SavedModel in {path} (metadata: {path / METADATA_FILE})")
    return 0


def cmd_list(args) -> int:
    print("\n".join(registry.LISTS[args.what]()))
    return 0


def cmd_predict(args) -> int:
    from exvo_keras.predict import predict_paths, report_failures

    inputs = list(args.inputs)
    if bool(args.data) != bool(args.split):
        raise ValueError("--data and --split go together: the corpus, and which of its splits to predict")
    if args.data:
        from exvo_keras.data.corpus import load_corpus

        corpus = load_corpus(args.data)
        inputs += [corpus.wav_path(f) for f in corpus.file_ids(args.split)]
    if not inputs:
        raise ValueError("nothing to predict: give wav files or folders, or --data ROOT --split SPLIT")
    result = predict_paths(args.model_dir, inputs, args.out, batch_size=args.batch_size, progress=not args.quiet)
    report_failures(result.failures)
    if not len(result.frame):
        print("error: no file could be predicted", file=sys.stderr)
        return 1
    if result.reused:
        print(f"{args.out}: complete, skipped (same model, same inputs)")
    print(f"{len(result.frame)} prediction(s) in {args.out}"
          + (f"; {len(result.failures)} input(s) skipped (listed above)" if result.failures else ""))
    return 0


def _add_device_options(p, *, distribute: bool, mixed_precision: bool) -> None:
    """--devices (and --mixed-precision) for a command that trains under a strategy (`distribute`) or runs on
    one device; exvo_keras/devices.py and the README ("Several devices and machines", "GPU") say more."""
    from exvo_keras.devices import MIXED_PRECISIONS

    if distribute:
        p.add_argument("--devices", default="auto",
                       help="devices to train on: auto (default: every GPU under a MirroredStrategy when several "
                            "are visible, else TensorFlow's own placement), cpu, N (the first N GPUs, or CPUs "
                            "when there is no GPU) or names such as GPU:0,GPU:1. Batch sizes stay global: each "
                            "batch is split across the devices, so the numbers do not depend on how many")
    else:
        p.add_argument("--devices", default="auto",
                       help="device to run on: auto (default: TensorFlow's own placement, its first GPU when "
                            "there is one), cpu, or a name such as GPU:1. One device per process: several GPUs "
                            "share the work as one process each (README, \"Several devices and machines\")")
    p.set_defaults(distribute=distribute)
    if mixed_precision:
        p.add_argument("--mixed-precision", nargs="?", const="mixed_float16", choices=MIXED_PRECISIONS,
                       metavar="POLICY",
                       help="compute in half precision, variables and the sensitive parts (softmax, norms, "
                            "pooling, losses) in float32: mixed_float16 (when given alone; for GPUs) or "
                            "mixed_bfloat16 (CPUs too). It changes the numbers, so stores and run folders "
                            "record it; the README's GPU section gives the parity with float32")


def build_parser() -> argparse.ArgumentParser:
    from exvo_keras.data import demo
    from exvo_keras.training.frame_cnn import PROFILES, FrameTraining
    from exvo_keras.training.recipes import DEFAULT_HEAD, DEFAULT_RECIPE, DEFAULT_SEEDS, PRESETS, RECIPES

    parser = argparse.ArgumentParser(prog="python -m exvo_keras",
                                     description="Reproduce Purohit et al. (ExVo 2022 Multi-Task) in Keras 3.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, func, help_text):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
        return p

    p = add("make-demo", cmd_make_demo, "Write the synthetic demo corpus in ExVo's format.")
    p.add_argument("out_dir", help="folder to create (data_info.csv, wav/)")
    p.add_argument("--speakers", type=int, default=demo.DEFAULT_N_SPEAKERS, help="number of speakers (default %(default)s)")
    p.add_argument("--clips", type=int, default=demo.DEFAULT_CLIPS_PER_SPEAKER, help="clips per speaker (default %(default)s)")
    p.add_argument("--seed", type=int, default=demo.DEFAULT_SEED, help="generator seed (default %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="rebuild even if the folder holds a corpus")
    p.add_argument("--no-ood", action="store_true",
                   help="skip the synthetic out-of-domain lists (ood/ser/ser.csv, ood/phones/phones.csv)")

    p = add("check-corpus", cmd_check_corpus,
            "Validate an ExVo-format folder and list every problem found (exit 1 if any error).")
    p.add_argument("root", help="corpus folder (data_info.csv + wav/)")
    p.add_argument("--no-audio", action="store_true", help="check the table only, do not open the wavs")

    def data_work(p):
        p.add_argument("--data", required=True, help="ExVo-format corpus folder (real or demo)")
        p.add_argument("--work", type=Workspace, default=DEFAULT_WORK,
                       help=f"folder for stores and runs (default {DEFAULT_WORK}/)")

    p = add("extract-compare", cmd_extract_compare,
            "ComParE 2016 functionals (openSMILE, 6,373 dims) of every clip into an HDF5 store (resumable).")
    data_work(p)
    p.add_argument("--out", help="store path (default WORK/features/compare.h5)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: all cores)")

    def training(p):
        p.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help="number of seeds (default %(default)s)")
        p.add_argument("--seed0", type=int, default=0, help="first seed (default 0)")
        default = RECIPES[DEFAULT_RECIPE]
        p.add_argument("--recipe", choices=sorted(RECIPES), default=DEFAULT_RECIPE,
                       help=f"training recipe (default {DEFAULT_RECIPE}: " + ", ".join(
                           f"{k} {v}" for k, v in default.items()) + "; baseline: the challenge's fixed recipe, "
                       "early stopping on the Val loss); the options below override it")
        p.add_argument("--epochs", type=int, help=f"maximum epochs (recipe's: {default['epochs']})")
        p.add_argument("--batch-size", type=int, help=f"batch size (recipe's: {default['batch_size']})")
        p.add_argument("--lr", type=float, help=f"Adam learning rate (recipe's: {default['learning_rate']})")
        p.add_argument("--patience", type=int, help=f"early-stopping patience in epochs (recipe's: "
                                                    f"{default['patience']})")
        p.add_argument("--early-stopping", choices=("Val", "dev"),
                       help="split that picks the epoch: dev (10%% of Train, speaker-independent; the default "
                            "recipe's) or Val (the baseline's)")
        p.add_argument("--eval-splits", nargs="+", choices=("Val", "Test"),
                       help="splits to predict, and score where labelled (default Val, and Test when the corpus "
                            "has Test clips); adding a split to a finished run predicts it without retraining")

    p = add("train", cmd_train, "Train and score the registered systems of a table over N seeds, then build its "
                                "hybrids (resumable; rows whose inputs are missing say what to supply).")
    data_work(p)
    p.add_argument("--table", type=int, choices=sorted(registry.TABLE_SPLIT), default=2,
                   help="train every system of this table (default %(default)s)")
    p.add_argument("--rows", nargs="+", metavar="KEY",
                   help="system keys instead of a whole table, e.g. compare-sys1 raw_exvo_er+wavlm-sys2 hybrid-auto")
    training(p)
    _add_device_options(p, distribute=True, mixed_precision=False)

    p = add("train-mtl", cmd_train_mtl, "Train a multi-task head on any stores (early fusion if several).")
    p.add_argument("--data", required=True, help="ExVo-format corpus folder")
    p.add_argument("--features", nargs="+", required=True, help="HDF5 store(s); several are concatenated")
    p.add_argument("--head", choices=sorted(PRESETS), default=DEFAULT_HEAD,
                   help="head preset (linear: ridge + logistic regression; the summary adds it beside any head)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--layer", type=_layer_choice, metavar="K|weighted",
                   help="SSL stores only (the others are read whole): hidden_states[K] from the store's layers "
                        "instead of its default layer, or 'weighted': a learned softmax-weighted sum of every layer "
                        "(SUPERB; one store). No re-extraction")
    training(p)
    _add_device_options(p, distribute=True, mixed_precision=False)

    p = add("layer-sweep", cmd_layer_sweep,
            "Train a head on each hidden layer of SSL stores in turn (no re-extraction): one row per layer, "
            "dev and Val scores, into results/layer_sweep_NAME.csv and .png.")
    data_work(p)
    p.add_argument("names", nargs="+", choices=list(registry.SSL_FEATURE_SETS), help="SSL feature sets")
    p.add_argument("--head", choices=sorted(PRESETS), default="sys1",
                   help="head preset on each layer (default %(default)s; linear: a linear probe)")
    p.add_argument("--out", default="results", help="report folder (default results/)")
    training(p)
    # one seed: a sweep ranks layers, the table rows average five
    p.set_defaults(seeds=1)

    p = add("train-network", cmd_train_network,
            "Train frame CNNs (Raw/Zff ExVo ER/CR, SER, ASR) and score them; resumes an interrupted run.")
    data_work(p)
    p.add_argument("networks", nargs="+", choices=list(registry.NETWORKS), metavar="NETWORK",
                   help="network names: " + ", ".join(registry.NETWORKS))
    p.add_argument("--profile", choices=sorted(PROFILES), default=FrameTraining.profile,
                   help="frame-CNN settings (default %(default)s): " + "; ".join(
                       f"{name}: " + ", ".join(f"{k} {v}" for k, v in settings.items())
                       for name, settings in PROFILES.items()) + " (hop_frames: a window every N x 10 ms)")
    p.add_argument("--list", action="append", metavar="SOURCE=CSV",
                   help="labelled list for an out-of-domain source, e.g. ser=iemocap.csv or phones=ami.csv "
                        "(default: the demo corpus's ood/ lists when present)")
    p.add_argument("--weights", action="append", metavar="NETWORK=FILE",
                   help="trained weights (.keras) instead of training, e.g. raw_ser=raw_ser.keras")
    p.add_argument("--seed", type=int, default=FrameTraining.seed,
                   help="seed of the weights and the window order (default %(default)s)")
    _add_device_options(p, distribute=True, mixed_precision=True)

    p = add("extract-network", cmd_extract_network,
            "Embed every clip with trained frame CNNs (mean+std of the hidden layer) into stores.")
    data_work(p)
    p.add_argument("networks", nargs="+", choices=list(registry.NETWORKS), metavar="NETWORK",
                   help="network names (see train-network)")
    _add_device_options(p, distribute=False, mixed_precision=False)

    p = add("extract-ssl", cmd_extract_ssl,
            "Mean+std of a WavLM / HuBERT / Wav2Vec2 hidden layer for every clip into a store (resumable).")
    data_work(p)
    p.add_argument("names", nargs="+", choices=list(registry.SSL_FEATURE_SETS), help="feature sets to extract")
    p.add_argument("--ssl-dir", help="folder holding wavlm-large/, hubert-large-ll60k/, wav2vec2-base/ (Hugging "
                                     "Face checkpoints); without it, small random-init demo encoders are used")
    p.add_argument("--checkpoint", help="one checkpoint folder (config.json + model.safetensors) for one name")
    p.add_argument("--layer", help="hidden layer to pool: 'last' (default, Hugging Face's last_hidden_state) or an "
                                   "index into hidden_states")
    p.add_argument("--default-layer-only", action="store_true",
                   help="keep only --layer's embedding, not every hidden state's beside it (the store's `layers`, "
                        "which train-mtl --layer and layer-sweep read; they cost layers + 1 times the disk)")
    p.add_argument("--shard", metavar="I/N", help="extract only shard I of N (clips I, I+N, ...); merge with merge-ssl")
    p.add_argument("--seed", type=int, default=0, help="seed of the random-init demo encoders (default 0)")
    _add_device_options(p, distribute=False, mixed_precision=True)

    p = add("merge-ssl", cmd_merge_ssl, "Join the complete shard stores of an extraction into one store.")
    data_work(p)
    p.add_argument("name", choices=list(registry.SSL_FEATURE_SETS), help="feature set whose shards to merge")

    p = add("figure2", cmd_figure2, "Figure 2: cumulative frequency response of each network's first conv layer.")
    p.add_argument("--work", type=Workspace, default=DEFAULT_WORK,
                   help=f"folder with trained networks (default {DEFAULT_WORK}/)")
    p.add_argument("--out", default="results/figure2.png", help="PNG path (default results/figure2.png)")

    p = add("extract-deepspectrum", cmd_extract_deepspectrum,
            "DeepSpectrum features (mel spectrogram image through ImageNet VGG16, fc7, 4,096 dims) into a store.")
    data_work(p)
    p.add_argument("--imagenet-weights", required=True,
                   help="Keras VGG16 ImageNet weights file (vgg16_weights_tf_dim_ordering_tf_kernels.h5); "
                        "never downloaded")

    p = add("report", cmd_report, "Write results/tableN.md and .csv: ours beside the paper's numbers.")
    data_work(p)
    p.add_argument("--table", choices=["1", *map(str, sorted(registry.TABLE_SPLIT)), "all"], default="all",
                   help="table number, or all: Tables 1-3 and the S_MTL comparison plot (default all)")
    p.add_argument("--out", default="results", help="output folder (default results/)")

    p = add("export", cmd_export,
            "Export a trained system as one SavedModel (waveform or wav bytes -> emotions, age, country) that "
            "loads with TensorFlow alone; writes exvo_metadata.json beside it.")
    p.add_argument("system", help="registered system key (e.g. raw_exvo_er-sys1, "
                                  "hybrid-raw_exvo_er-sys1+raw_exvo_cr), or 'best': the best exportable system on Val")
    p.add_argument("out_dir", nargs="?", help="output folder (default saved_models/<SYSTEM>)")
    p.add_argument("--work", type=Workspace, default=DEFAULT_WORK,
                   help=f"folder with the stores, networks and runs (default {DEFAULT_WORK}/)")
    p.add_argument("--data", help="corpus folder: checked against the stores' corpus and used to score the exported "
                                  "seeds on Val for the metadata")
    p.add_argument("--ssl-dir", help="checkpoint folder, when SSL features were extracted from checkpoints")
    p.add_argument("--overwrite", action="store_true", help="replace an export made from other inputs")

    p = add("predict", cmd_predict,
            "Predict wav files with an exported SavedModel into a CSV in the challenge's submission columns "
            "(File_ID, Country, Age, ten emotions). Unreadable files are listed and skipped; exit 1 only if "
            "nothing could be predicted.")
    p.add_argument("model_dir", help="exported SavedModel folder")
    p.add_argument("inputs", nargs="*", help="audio files or folders (every file in a format soundfile decodes: wav, flac, ogg, mp3, ...)")
    p.add_argument("--out", default="predictions.csv", help="CSV to write (default predictions.csv)")
    p.add_argument("--batch-size", type=int, default=16, help="clips per model call (default 16)")
    p.add_argument("--data", help="also predict the clips of a corpus split (with --split)")
    p.add_argument("--split", choices=("Train", "Val", "Test"), help="split of --data to predict")

    p = add("list", cmd_list, "Print registered names, one a line (run_all.sh builds its stage lists from these).")
    p.add_argument("what", choices=sorted(registry.LISTS), help="which names: " + ", ".join(sorted(registry.LISTS)))
    return parser


@contextlib.contextmanager
def _placement(args):
    """The devices and precision the command asked for, around it."""
    if getattr(args, "devices", None) is None:
        yield
        return
    from exvo_keras.devices import DeviceChoice, device_scope, enable_memory_growth, precision, strategy_for

    choice = DeviceChoice.parse(args.devices, getattr(args, "mixed_precision", None))
    # First of all: TensorFlow takes memory growth only before it initialises its devices (devices.py).
    enable_memory_growth()
    # Restored after the command, since main() can run again in one process (the tests call it).
    with precision(choice.precision):
        with strategy_for(choice).scope() if args.distribute else device_scope(choice, args.command):
            yield


def main(argv=None) -> int:
    _quiet_tensorflow()
    args = build_parser().parse_args(argv)
    try:
        with _placement(args):
            return args.func(args)
    except (ValueError, KeyError, FileExistsError, FileNotFoundError) as exc:
        # Our errors name the file and the problem; a traceback would bury that.
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
