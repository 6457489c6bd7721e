"""Head training recipes as data, and `HeadTraining`, everything that defines one trained system.

Kept free of TensorFlow so the CLI can list the recipes in `--help` without importing it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from exvo_keras.registry import WEIGHTED

# Head presets, the arguments of `exvo_keras.models.mtl.MultiTaskHead` (plain data: the CLI lists them).
PRESETS = {
    # The paper: "the ExVo Multi-task baseline network", 128-64 (Sys-1) or doubled (Sys-2), mean of losses.
    "sys1": dict(hidden_dims=(128, 64), layer_norm=False, task_hidden=0, loss_weighting="mean",
                 emotion_loss="mean", age_loss="standardised"),
    "sys2": dict(hidden_dims=(256, 128), layer_norm=False, task_hidden=0, loss_weighting="mean",
                 emotion_loss="mean", age_loss="standardised"),
    # The challenge's own baseline head (FACTS.md): LayerNorm, 32-unit task heads, uncertainty weights.
    "baseline": dict(hidden_dims=(128, 64), layer_norm=True, task_hidden=32, loss_weighting="uncertainty",
                     emotion_loss="sum", age_loss="years"),
    # The linear reference: no hidden layer, ridge-fitted emotions and age, a softmax (multinomial logistic)
    # country layer. Its weights come from scikit-learn (exvo_keras.training.linear), not from gradient descent.
    "linear": dict(hidden_dims=(), layer_norm=False, task_hidden=0, loss_weighting="mean", emotion_loss="mean",
                   age_loss="standardised", emotion_activation="linear"),
}

# Adam weight decay per head preset: the challenge baseline trained with 1e-4; the paper names none for Sys-1/2.
WEIGHT_DECAY = {"baseline": 1e-4}

# Training recipes by name: every default of a head's training lives here, and the CLI reads it.
RECIPES = {
    # The challenge baseline's fixed recipe (FACTS.md): early stopping on the Val loss.
    "baseline": dict(epochs=20, batch_size=8, learning_rate=1e-3, patience=5, early_stopping="Val",
                     select_by="loss", clip_z=None, dropout=0.0, l2=0.0, linear_skip=False),
    # Chosen on the speaker-independent 10 % of Train of a small and a demo-size corpus, never on Val
    # (benchmarks/small_corpus.py): clipped z-scores, L2 on the kernels, and the epoch picked by S_MTL on dev.
    "default": dict(epochs=60, batch_size=32, learning_rate=1e-3, patience=10, early_stopping="dev",
                    select_by="s_mtl", clip_z=5.0, dropout=0.0, l2=1e-2, linear_skip=True),
}
DEFAULT_RECIPE = "default"
# `HeadTraining.layer` for a head that learns softmax weights over every layer of an SSL store (SUPERB).
WEIGHTED_LAYERS = WEIGHTED
DEFAULT_HEAD = "sys1"
# Seeds per system: each table row is the mean ± std over this many trainings.
DEFAULT_SEEDS = 5


def default_eval_splits(corpus) -> list[str]:
    """Val, and Test when the corpus has Test clips (scored when its labels are known, else only predicted)."""
    return ["Val"] + (["Test"] if corpus.file_ids("Test") else [])


@dataclass
class HeadTraining:
    """Everything that defines one multi-task system: features, head and recipe (not the seed).

    Build one with `HeadTraining.from_recipe`; the fields are the recipe's values with any overrides. The
    recipes, `DEFAULT_RECIPE` and `default_eval_splits` are the defaults every caller (the CLI included) reads.
    `early_stopping` names the split that picks the epoch (and, for the linear head, its penalties): "Val",
    as the challenge baseline did, or "dev", a speaker-independent 10 % of Train, which keeps Val untouched.
    `select_by` is what picks the epoch on that split: its "loss", or "s_mtl" (the challenge score).
    `layer` picks what the SSL stores among `stores` give (others are read whole): None their `embeddings` (the
    layer they were extracted for), an int ``k`` ``hidden_states[k]`` from their `layers`, or `WEIGHTED_LAYERS`
    every layer of one store through a learned softmax-weighted sum (the linear head, which learns no weights,
    then fits the plain mean of the layers: the linear reference beside it).
    """

    stores: list[str]
    head: str
    recipe: str
    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    patience: int
    early_stopping: str
    select_by: str
    clip_z: float | None
    dropout: float
    l2: float
    linear_skip: bool
    eval_splits: list[str] = field(default_factory=lambda: ["Val"])
    layer: int | str | None = None

    def __post_init__(self):
        if self.layer is not None and self.layer != WEIGHTED_LAYERS and (
                isinstance(self.layer, bool) or not isinstance(self.layer, int)):
            raise ValueError(f"layer must be None, an int or {WEIGHTED_LAYERS!r}, got {self.layer!r}")

    @classmethod
    def from_recipe(cls, stores, head: str = DEFAULT_HEAD, recipe: str | None = None, *, corpus=None,
                    **overrides) -> "HeadTraining":
        """The named recipe (None: `DEFAULT_RECIPE`) for `head` on `stores`, `overrides` on top.

        Args:
            corpus: when given, the splits to predict default to `default_eval_splits(corpus)`.
        """
        recipe = recipe or DEFAULT_RECIPE
        if corpus is not None:
            overrides = {"eval_splits": default_eval_splits(corpus), **overrides}
        if recipe not in RECIPES:
            raise ValueError(f"unknown recipe {recipe!r}; choose one of {sorted(RECIPES)}")
        settings = {**RECIPES[recipe], "weight_decay": WEIGHT_DECAY.get(head, 0.0), **overrides}
        if head == "linear":
            # Its penalties are chosen on held-out rows and it is refitted on all of Train: only dev is clean.
            settings["early_stopping"] = "dev"
        return cls(stores=[str(p) for p in stores], head=head, recipe=recipe, **settings)

    def to_json(self) -> dict:
        """The fields as JSON; `layer` only when chosen, so run folders made before it was a field still match."""
        fields = asdict(self)
        if fields["layer"] is None:
            del fields["layer"]
        return fields
