"""The registries as plain data: feature sets, the paper's frame CNNs, the tables' systems and their sources.

The CLI (`choices=`, `list`), run_all.sh (through `python -m exvo_keras list ...`), the stages and the notebooks
all read these, so a network, feature set or table row is named once. Stdlib only: the CLI's parser imports it
without TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

# Feature sets ---------------------------------------------------------------------------------------------------

COMPARE = "compare"
DEEPSPECTRUM = "deepspectrum"


@dataclass(frozen=True)
class SSLFeatureSet:
    """The Hugging Face model behind a self-supervised feature set.

    Args:
        model_type: its config.json's model_type ("wavlm", "hubert", "wav2vec2").
        folder: the checkpoint folder's name under ``--ssl-dir``.
        repo: the Hugging Face repository to download it from.
    """

    model_type: str
    folder: str
    repo: str


# The self-supervised encoders' feature sets, in the order that also seeds the demo encoders (one seed each).
SSL_FEATURE_SETS = {
    "wavlm": SSLFeatureSet("wavlm", "wavlm-large", "microsoft/wavlm-large"),
    "hubert": SSLFeatureSet("hubert", "hubert-large-ll60k", "facebook/hubert-large-ll60k"),
    "wav2vec2": SSLFeatureSet("wav2vec2", "wav2vec2-base", "facebook/wav2vec2-base"),
}


def ssl_feature_set(name: str) -> SSLFeatureSet:
    if name not in SSL_FEATURE_SETS:
        raise KeyError(f"unknown SSL feature set {name!r}; known: {', '.join(SSL_FEATURE_SETS)}")
    return SSL_FEATURE_SETS[name]


# Frame CNNs -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Network:
    """One frame CNN of the paper.

    Args:
        name: folder and store name, e.g. "raw_exvo_er".
        label: the paper's name, e.g. "Raw(ExVo)-ER".
        signal: "raw" or "zff".
        source: "exvo" (the corpus's Train split) or the name of a labelled list ("ser", "phones").
        task: for "exvo", "emotion" or "country".
        architecture: FrameCNN architecture.
    """

    name: str
    label: str
    signal: str
    source: str
    task: str | None = None
    architecture: str = "subseg"


NETWORKS = {n.name: n for n in (
    Network("raw_exvo_er", "Raw(ExVo)-ER", "raw", "exvo", "emotion"),
    Network("zff_exvo_er", "Zff(ExVo)-ER", "zff", "exvo", "emotion"),
    Network("raw_exvo_cr", "Raw(ExVo)-CR", "raw", "exvo", "country"),
    Network("zff_exvo_cr", "Zff(ExVo)-CR", "zff", "exvo", "country"),
    Network("raw_ser", "Raw(SER)", "raw", "ser"),
    Network("zff_ser", "Zff(SER)", "zff", "ser"),
    Network("raw_asr", "Raw(ASR)", "raw", "phones", architecture="asr"),
)}

# Where make-demo puts the synthetic out-of-domain lists, relative to the demo corpus folder.
DEMO_LISTS = {"ser": "ood/ser/ser.csv", "phones": "ood/phones/phones.csv"}

# Table 1: the in-domain networks' own utterance decisions on Val.
TABLE1_NETWORKS = ("raw_exvo_er", "zff_exvo_er", "raw_exvo_cr", "zff_exvo_cr")


def network(name: str) -> Network:
    if name not in NETWORKS:
        raise KeyError(f"unknown network {name!r}; known: {', '.join(NETWORKS)}")
    return NETWORKS[name]


# feature-set name -> the CLI command that builds its store (shown when a row cannot run yet)
FEATURE_COMMANDS = {
    COMPARE: "python -m exvo_keras extract-compare --data DATA --work WORK",
    DEEPSPECTRUM: "ImageNet VGG16 weights (vgg16_weights_tf_dim_ordering_tf_kernels.h5): python -m exvo_keras "
                  "extract-deepspectrum --imagenet-weights FILE --data DATA --work WORK",
    **{name: f"python -m exvo_keras train-network {name} ... then extract-network {name}" for name in NETWORKS},
    **{name: f"python -m exvo_keras extract-ssl {name} --data DATA --work WORK [--ssl-dir DIR]"
       for name in SSL_FEATURE_SETS},
}


# Sources of a hybrid's tasks --------------------------------------------------------------------------------------

NETWORK_PREFIX = "network:"


@dataclass(frozen=True)
class SystemSource:
    """A registered system's predictions for the task, seed by seed."""

    key: str

    def __str__(self) -> str:
        return self.key


@dataclass(frozen=True)
class NetworkSource:
    """A frame CNN's own utterance decision (country or emotion class), the same for every seed."""

    network: str

    def __str__(self) -> str:
        return NETWORK_PREFIX + self.network


@dataclass(frozen=True)
class AutoSource:
    """Chosen when the hybrid runs: the system best at the task on Val."""

    def __str__(self) -> str:
        return "auto"


AUTO = AutoSource()
Source = SystemSource | NetworkSource | AutoSource


def parse_source(text: str | Source) -> Source:
    """A source from its written form: a system key, "network:<name>" or "auto" (a `Source` is returned as is)."""
    if isinstance(text, (SystemSource, NetworkSource, AutoSource)):
        return text
    if text == str(AUTO):
        return AUTO
    if text.startswith(NETWORK_PREFIX):
        return NetworkSource(text[len(NETWORK_PREFIX):])
    return SystemSource(text)


# Table rows -----------------------------------------------------------------------------------------------------

METRICS = ("emo_ccc", "cou_uar", "age_mae", "s_mtl")
TASKS = ("emotion", "age", "country")
# the metric that scores each task, and whether lower is better
TASK_METRIC = {"emotion": ("emo_ccc", False), "age": ("age_mae", True), "country": ("cou_uar", False)}
TABLE_SPLIT = {2: "Val", 3: "Test"}
LINEAR = "Linear reference"


def system_key(features, head: str, layer=None) -> str:
    """The run folder name of a head on `features`: "wavlm-sys2", "raw_exvo_er+wavlm-sys1", "wavlm@6-sys1"."""
    slug = "+".join(features)
    return f"{slug}-{head}" if layer is None else f"{slug}@{layer}-{head}"


@dataclass(frozen=True)
class Row:
    """One trained system of a results table: feature stores through a multi-task head.

    Args:
        table: the paper's table number (2: scored on Val, 3: scored on Test).
        system: name shown in our table.
        config: "Sys-1", "Sys-2" or "baseline head".
        features: feature-set names; several means early fusion (concatenation in this order).
        head: `exvo_keras.training.recipes.PRESETS` key ("linear": the linear reference, ridge + logistic
            regression).
        paper: (system, config) of the paper row it reproduces, or None when the paper has no such row.
        recipe: `exvo_keras.training.recipes.RECIPES` key this row always trains with, or None for the command's
            (the default recipe unless `--recipe` says otherwise).
        layer: `exvo_keras.training.recipes.HeadTraining.layer`: None for the stores' own embeddings, an int for
            one hidden layer of the SSL stores, "weighted" for a learned softmax-weighted sum of every layer.

    The same system listed in Tables 2 and 3 has one key, so one run folder: Table 3 scores it on Test.
    """

    table: int
    system: str
    config: str
    features: tuple[str, ...]
    head: str
    paper: tuple[str, str] | None
    recipe: str | None = None
    layer: int | str | None = None

    @property
    def key(self) -> str:
        return system_key(self.features, self.head, self.layer)


@dataclass(frozen=True)
class Hybrid:
    """A system that takes each task's predictions from another system (late, per-task combination).

    Args:
        table, system, config, paper: as for `Row`.
        name: its key (run folder name).
        sources: (task, source) for each of "emotion", "age", "country": a `SystemSource` (that system's
            predictions, seed by seed), a `NetworkSource` (a frame CNN's own utterance decision, the same for
            every seed; country or emotion class), or `AUTO`: the system best at that task on Val among the
            Table 2 systems that have run (and, for country, the CR networks' decisions). Written forms
            ("raw_exvo_er-sys1", "network:raw_exvo_cr", "auto") are parsed on construction.

    Example:
        Hybrid(2, "Raw(ExVo)-ER + Raw(ExVo)-CR", "Sys-1", "hybrid-raw_er-sys1+raw_cr",
               (("emotion", "raw_exvo_er-sys1"), ("age", "raw_exvo_er-sys1"), ("country", "network:raw_exvo_cr")),
               ("Raw(ExVo)-ER + Raw(ExVo)-CR", "Sys-1"))
    """

    table: int
    system: str
    config: str
    name: str
    sources: tuple[tuple[str, Source], ...]
    paper: tuple[str, str] | None

    def __post_init__(self):
        object.__setattr__(self, "sources", tuple((task, parse_source(s)) for task, s in self.sources))

    @property
    def key(self) -> str:
        return self.name

    def source_of(self, task: str) -> Source:
        return dict(self.sources)[task]


def _sys_rows(system: str, features: tuple[str, ...], table: int = 2) -> tuple[Row, ...]:
    """Sys-1 and Sys-2 on a feature set, and the linear reference on the same features beside them."""
    return tuple(Row(table, system, config, features, head, (system, config))
                 for config, head in (("Sys-1", "sys1"), ("Sys-2", "sys2"))) + (_linear_row(system, features, table),)


def _linear_row(system: str, features: tuple[str, ...], table: int) -> Row:
    return Row(table, system, LINEAR, features, "linear", None)


def _cr_hybrids(cr: str, label: str) -> tuple[Hybrid, ...]:
    system = f"Raw(ExVo)-ER + {label}"
    return tuple(Hybrid(2, system, config, f"hybrid-raw_exvo_er-{head}+{cr}",
                        (("emotion", SystemSource(f"raw_exvo_er-{head}")), ("age", SystemSource(f"raw_exvo_er-{head}")),
                         ("country", NetworkSource(cr))), (system, config))
                 for config, head in (("Sys-1", "sys1"), ("Sys-2", "sys2")))


AUTO_HYBRID = Hybrid(2, "Hybrid: each task from its best system on Val", "auto", "hybrid-auto",
                     tuple((t, AUTO) for t in TASKS), None)
WAVLM_HYBRID = Hybrid(3, "Hybrid (WavLM emotion+country; Raw(ExVo)-ER age)", "Sys-2", "hybrid-wavlm-sys2+raw_exvo_er",
                      (("emotion", SystemSource("wavlm-sys2")), ("age", SystemSource("raw_exvo_er-sys2")),
                       ("country", SystemSource("wavlm-sys2"))),
                      ("Hybrid (WavLM emotion+country; Raw(ExVo)-ER age)", "Sys-2"))

RAW_AMI_FUSION = "Raw(ExVo)-ER + Raw(AMI)"
# Said under a table that lists the system, so a row named as in the paper is not mistaken for another network.
SYSTEM_NOTES = {RAW_AMI_FUSION: "Raw(AMI) is the paper's Table 3 name for its ASR network (trained on AMI phones): "
                                "our Raw(ASR) network and store, as in Table 2's Raw(ASR) rows."}
WEIGHTED = "weighted"  # a row's `layer` for a softmax-weighted sum of every SSL layer (HeadTraining.layer)


def _weighted_rows(system: str, name: str) -> tuple[Row, ...]:
    """Beyond the paper: Sys-1 and Sys-2 on a softmax-weighted sum of every layer of an SSL store (SUPERB)."""
    label = f"{system}, weighted layers (beyond the paper)"
    # The linear reference beside them fits the plain mean of the layers (its weights stay equal).
    return tuple(Row(2, label, config, (name,), head, None, layer=WEIGHTED)
                 for config, head in (("Sys-1", "sys1"), ("Sys-2", "sys2"), (f"{LINEAR} (mean of layers)", "linear")))


ROWS = (
    Row(2, "ComParE", "Sys-1", (COMPARE,), "sys1", ("ComParE", "Sys-1")),
    Row(2, "ComParE", "Sys-2", (COMPARE,), "sys2", None),
    # The challenge's own head on the same features: the paper's ComParE row is the organisers' baseline.
    Row(2, "ComParE", "baseline head", (COMPARE,), "baseline", ("ComParE", "Sys-1"), recipe="baseline"),
    _linear_row("ComParE", (COMPARE,), 2),
    Row(2, "DeepSpectrum", "Sys-1", (DEEPSPECTRUM,), "sys1", ("DeepSpectrum", "Sys-1")),
    _linear_row("DeepSpectrum", (DEEPSPECTRUM,), 2),
    *_sys_rows("WavLM", ("wavlm",)),
    *_sys_rows("HuBERT", ("hubert",)),
    *_sys_rows("Wav2Vec2", ("wav2vec2",)),
    *_weighted_rows("WavLM", "wavlm"),
    *_weighted_rows("HuBERT", "hubert"),
    *_weighted_rows("Wav2Vec2", "wav2vec2"),
    *_sys_rows("Raw(SER)", ("raw_ser",)),
    *_sys_rows("Zff(SER)", ("zff_ser",)),
    *_sys_rows("Raw(ASR)", ("raw_asr",)),
    *_sys_rows("Raw(ExVo)-ER", ("raw_exvo_er",)),
    *_sys_rows("Zff(ExVo)-ER", ("zff_exvo_er",)),
    *_sys_rows("Raw(ExVo)-ER + Zff(ExVo)-ER", ("raw_exvo_er", "zff_exvo_er")),
    *_sys_rows("Raw(ExVo)-ER + Raw(ASR)", ("raw_exvo_er", "raw_asr")),
    *_sys_rows("Raw(ExVo)-ER + WavLM", ("raw_exvo_er", "wavlm")),
    *_cr_hybrids("raw_exvo_cr", "Raw(ExVo)-CR"),
    *_cr_hybrids("zff_exvo_cr", "Zff(ExVo)-CR"),
    AUTO_HYBRID,
    # Table 3: the same systems (trained on Train, Val for early stopping) scored on Test.
    Row(3, "ComParE", "Sys-1", (COMPARE,), "sys1", ("ComParE", "Sys-1")),
    Row(3, "ComParE", "baseline head", (COMPARE,), "baseline", ("ComParE", "Sys-1"), recipe="baseline"),
    _linear_row("ComParE", (COMPARE,), 3),
    Row(3, "DeepSpectrum", "Sys-1", (DEEPSPECTRUM,), "sys1", ("DeepSpectrum", "Sys-1")),
    _linear_row("DeepSpectrum", (DEEPSPECTRUM,), 3),
    Row(3, "WavLM", "Sys-2", ("wavlm",), "sys2", ("WavLM", "Sys-2")),
    _linear_row("WavLM", ("wavlm",), 3),
    Row(3, "Raw(ExVo)-ER", "Sys-2", ("raw_exvo_er",), "sys2", ("Raw(ExVo)-ER", "Sys-2")),
    _linear_row("Raw(ExVo)-ER", ("raw_exvo_er",), 3),
    Row(3, "Raw(ASR)", "Sys-2", ("raw_asr",), "sys2", ("Raw(ASR)", "Sys-2")),
    _linear_row("Raw(ASR)", ("raw_asr",), 3),
    # Table 3 names the ASR network after its training corpus, AMI: the same network as Raw(ASR) (our raw_asr
    # store), listed under the paper's name so the row can be found by it.
    Row(3, RAW_AMI_FUSION, "Sys-2", ("raw_exvo_er", "raw_asr"), "sys2", (RAW_AMI_FUSION, "Sys-2")),
    _linear_row(RAW_AMI_FUSION, ("raw_exvo_er", "raw_asr"), 3),
    WAVLM_HYBRID,
    Hybrid(3, AUTO_HYBRID.system, "auto", AUTO_HYBRID.name, AUTO_HYBRID.sources, None),
)


def rows_of(table: int) -> list:
    return [r for r in ROWS if r.table == table]


def systems() -> dict:
    """Every registered system by key (a system listed in two tables appears once)."""
    found = {}
    for r in ROWS:
        found.setdefault(r.key, r)
    return found


def row_by_key(key: str):
    try:
        return systems()[key]
    except KeyError:
        raise KeyError(f"no registered system {key!r}; known: {', '.join(systems())}") from None


def embedded_networks() -> list[str]:
    """The networks whose embeddings some table row reads (extract-network makes their stores), in NETWORKS order."""
    read = {f for r in ROWS if isinstance(r, Row) for f in r.features}
    return [name for name in NETWORKS if name in read]


# What `python -m exvo_keras list NAME` prints, one name a line: run_all.sh builds its stage lists from these.
LISTS = {
    "networks": lambda: list(NETWORKS),
    "embedded-networks": embedded_networks,
    "ssl-feature-sets": lambda: list(SSL_FEATURE_SETS),
    "systems": lambda: list(systems()),
}
