"""Multi-task heads: utterance embedding -> ten emotion intensities, age in years, country.

Two families, one model class:
- the paper's Sys-1 (128-64) and Sys-2 (256-128): two leaky-ReLU hidden layers, the mean of the three losses;
- the ExVo challenge baseline (HumeAI): LayerNorm after each hidden layer, a 32-unit hidden layer per task, and
  the task losses combined with learned uncertainty weights.

The model carries its own Train standardisation (a fixed `Normalization` layer) and returns age in years, so a
saved model maps raw features to final predictions with nothing outside it.

How age enters the loss: the paper head takes the MSE of *standardised* age (years minus the Train mean, over
the Train standard deviation). Its loss is a plain mean of three terms, and raw-year MSE (about 25 at the
start) would outweigh emotion MSE (about 0.05) and cross-entropy (about 1.4) by two orders of magnitude. The
baseline head keeps the HumeAI recipe, MSE in raw years, because its learned uncertainty weights rescale each
task themselves.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from exvo_keras.data.labels import COUNTRIES, EMOTIONS
from exvo_keras.registry import TASKS
from exvo_keras.training.recipes import PRESETS

# HumeAI's baseline initialises each task's log-variance here.
UNCERTAINTY_INIT = -0.33


@keras.saving.register_keras_serializable(package="exvo_keras")
class ClipValues(layers.Layer):
    """Clips its input to [-limit, limit].

    After Train standardisation, a feature nearly constant on Train reaches |z| in the hundreds on other clips
    (measured 152 on a 280-clip corpus); a head that has never seen such values extrapolates wildly. Clipping
    bounds what one feature can contribute.
    """

    def __init__(self, limit: float, **kwargs):
        super().__init__(**kwargs)
        self.limit = float(limit)

    def call(self, x):
        return ops.clip(x, -self.limit, self.limit)

    def get_config(self):
        return {**super().get_config(), "limit": self.limit}


@keras.saving.register_keras_serializable(package="exvo_keras")
class LayerWeightedSum(layers.Layer):
    """SUPERB's featurizer over utterance embeddings: `[batch, layers, dims]` -> `[batch, dims]`, the sum of the
    layers weighted by a softmax of one learned logit per layer (initialised equal, so it starts as the mean).

    SUPERB weights the frame sequences and then pools; for the mean half of a mean+std embedding the two orders
    agree exactly (both are linear), for the std half the weighted sum of per-layer stds stands in for the std of
    the weighted frames. With ``trainable=False`` it stays the plain mean over layers.

    Args:
        num_layers: how many layers the input holds.

    Example:
        >>> w = LayerWeightedSum(3)
        >>> tuple(w(np.ones((2, 3, 5), "float32")).shape)
        (2, 5)
    """

    def __init__(self, num_layers: int, **kwargs):
        super().__init__(**kwargs)
        self.num_layers = int(num_layers)
        self.logits = self.add_weight(shape=(self.num_layers,), initializer="zeros", name="logits")

    def call(self, x):
        weights = ops.softmax(ops.cast(self.logits, "float32"))
        return ops.einsum("bld,l->bd", ops.cast(x, "float32"), weights)

    def layer_weights(self) -> np.ndarray:
        """The softmax weights, one per layer (what a layer sweep reads off a trained head)."""
        return np.asarray(ops.softmax(self.logits))

    def get_config(self):
        return {**super().get_config(), "num_layers": self.num_layers}


def _batch_mean(values):
    # A device's part of a batch is empty under a MirroredStrategy when the last batch has fewer rows than there
    # are devices: its loss must then be 0, as Keras's own losses make it, not NaN, which would reach every
    # device's weights through the summed gradients.
    return ops.divide_no_nan(ops.sum(values), ops.cast(ops.size(values), values.dtype))


@keras.saving.register_keras_serializable(package="exvo_keras")
class MultiTaskHead(keras.Model):
    """Maps a fixed-length embedding to emotion intensities, age (years) and country probabilities.

    Args:
        input_dim: embedding size.
        input_layers: 0 for an embedding `[batch, input_dim]`; L for every layer of an SSL encoder, `[batch, L,
            input_dim]` (an all-layer store): each layer is standardised with its own Train statistics, the
            hidden layers see a learned softmax-weighted sum of the layers (:class:`LayerWeightedSum`, SUPERB)
            and a linear skip sees their plain mean (so its linear fit stays fixed while the weights learn).
        hidden_dims: widths of the shared hidden layers, e.g. (128, 64) for Sys-1, (256, 128) for Sys-2.
        feature_mean, feature_std: Train statistics of the embedding (lists or arrays of `input_dim`); the model
            standardises its input with them. None means no standardisation.
        age_mean, age_std: Train statistics of age in years; the age output is `age_mean + age_std * z`.
        layer_norm: LayerNorm after each shared hidden layer (baseline head).
        task_hidden: width of a per-task hidden layer (32 in the baseline head; 0 for none).
        negative_slope: leaky-ReLU slope; 0.01 as PyTorch's default, which the baseline used.
        loss_weighting: "mean" (the paper) or "uncertainty" (learned log-variance per task, the baseline).
        emotion_loss: "mean" over the ten emotions, or "sum" of the ten MSEs (baseline).
        age_loss: "standardised" (MSE of standardised age) or "years" (MSE in years).
        clip_z: clip the standardised features to [-clip_z, clip_z] (None: no clipping).
        dropout: dropout rate after each shared hidden layer's activation, and on the standardised input at half
            that rate (0: none).
        l2: L2 penalty on every kernel, added to the loss (0: none).
        emotion_activation: "sigmoid" (intensities in [0, 1]) or "linear" (the linear reference, and heads with
            a linear skip, whose emotion outputs start as ridge predictions).
        linear_skip: add a linear map of the standardised input to each task's output (layers `<task>_out`, the
            same names as the linear preset's, so a fitted linear reference can be loaded into them); the hidden
            layers' own output layers (`<task>_mlp_out`) start at zero, so the untrained head is that linear
            model; the skip is not trained, the hidden layers learn what they add to it.
        seed: seed of the initialisers.

    Returns (when called): dict with `emotion` `[batch, 10]` in [0, 1], `age` `[batch, 1]` in years, `country`
    `[batch, 4]` probabilities.

    Example:
        >>> head = MultiTaskHead.from_preset("sys1", input_dim=20, seed=0)
        >>> out = head(np.zeros((2, 20), "float32"))
        >>> tuple(out["emotion"].shape), tuple(out["country"].shape)
        ((2, 10), (2, 4))
    """

    def __init__(self, input_dim: int, hidden_dims=(128, 64), feature_mean=None, feature_std=None,
                 input_layers: int = 0,
                 age_mean: float = 0.0, age_std: float = 1.0, layer_norm: bool = False, task_hidden: int = 0,
                 negative_slope: float = 0.01, loss_weighting: str = "mean", emotion_loss: str = "mean",
                 age_loss: str = "standardised", clip_z: float | None = None, dropout: float = 0.0,
                 l2: float = 0.0, emotion_activation: str = "sigmoid", linear_skip: bool = False,
                 seed: int | None = None, **kwargs):
        if loss_weighting not in ("mean", "uncertainty"):
            raise ValueError(f"loss_weighting must be 'mean' or 'uncertainty', got {loss_weighting!r}")
        if emotion_loss not in ("mean", "sum"):
            raise ValueError(f"emotion_loss must be 'mean' or 'sum', got {emotion_loss!r}")
        if age_loss not in ("standardised", "years"):
            raise ValueError(f"age_loss must be 'standardised' or 'years', got {age_loss!r}")
        if emotion_activation not in ("sigmoid", "linear"):
            raise ValueError(f"emotion_activation must be 'sigmoid' or 'linear', got {emotion_activation!r}")
        seeds = iter(range(1000)) if seed is None else iter(range(seed * 1000, seed * 1000 + 1000))

        def init():
            return keras.initializers.GlorotUniform(seed=next(seeds))

        def dense(units, name, activation=None, kernel_initializer=None):
            # a seed is drawn only for a Glorot kernel, so heads without a skip keep their initial weights
            return layers.Dense(units, activation=activation, kernel_initializer=kernel_initializer or init(),
                                name=name, kernel_regularizer=keras.regularizers.L2(l2) if l2 else None)

        shape = (int(input_layers), input_dim) if input_layers else (input_dim,)
        features = keras.Input(shape=shape, name="features")
        x = features
        if feature_mean is not None:
            std = np.asarray(feature_std, np.float32)
            x = layers.Normalization(axis=(-2, -1) if input_layers else -1, mean=np.asarray(feature_mean, np.float32),
                                     variance=std * std, name="standardise")(x)
        if clip_z is not None:
            x = ClipValues(clip_z, name="clip_z")(x)
        z = x
        if input_layers:
            # The frozen mean feeds the linear parts (a skip, or the linear head itself, whose weights come from
            # a fit, not from gradients); only hidden layers learn the weights.
            if linear_skip or not hidden_dims:
                z = LayerWeightedSum(input_layers, trainable=False, dtype="float32", name="layer_mean")(x)
            # float32 under a mixed policy too: a softmax over layers and a sum of standardised values
            x = LayerWeightedSum(input_layers, dtype="float32", name="layer_weights")(x) if hidden_dims else z
        if dropout and hidden_dims:
            x = layers.Dropout(dropout / 2, seed=next(seeds), name="input_dropout")(x)
        for i, width in enumerate(hidden_dims):
            x = dense(width, f"hidden_{i}")(x)
            if layer_norm:
                x = layers.LayerNormalization(epsilon=1e-5, name=f"hidden_{i}_norm")(x)
            x = layers.LeakyReLU(negative_slope, name=f"hidden_{i}_act")(x)
            if dropout:
                x = layers.Dropout(dropout, seed=next(seeds), name=f"hidden_{i}_dropout")(x)

        def task(name, units, activation):
            h = x
            if task_hidden:
                h = dense(task_hidden, f"{name}_hidden")(h)
                h = layers.LeakyReLU(negative_slope, name=f"{name}_hidden_act")(h)
            if not linear_skip:
                return dense(units, name + "_out", activation)(h)
            mlp = dense(units, name + "_mlp_out", kernel_initializer="zeros")(h)
            # Frozen: it holds the linear fit (its penalty chosen on held-out rows); gradient steps at the hidden
            # layers' learning rate undo that fit within an epoch (measured: every seed's best epoch was the start).
            skip = layers.Dense(units, kernel_initializer=init(), name=name + "_out", trainable=False)(z)
            return layers.Activation(activation or "linear", name=name + "_act")(layers.Add(name=name + "_sum")(
                [skip, mlp]))

        emotion = layers.Identity(name="emotion")(task("emotion", len(EMOTIONS), emotion_activation))
        age = layers.Rescaling(scale=float(age_std), offset=float(age_mean), name="age")(task("age_z", 1, None))
        country = layers.Identity(name="country")(task("country", len(COUNTRIES), "softmax"))
        super().__init__(inputs=features, outputs={"emotion": emotion, "age": age, "country": country}, **kwargs)

        self.input_dim = int(input_dim)
        self.input_layers = int(input_layers)
        self.hidden_dims = tuple(int(h) for h in hidden_dims)
        self.feature_mean = None if feature_mean is None else np.asarray(feature_mean, np.float32)
        self.feature_std = None if feature_std is None else np.asarray(feature_std, np.float32)
        self.age_mean = float(age_mean)
        self.age_std = float(age_std)
        self.layer_norm = bool(layer_norm)
        self.task_hidden = int(task_hidden)
        self.negative_slope = float(negative_slope)
        self.loss_weighting = loss_weighting
        self.emotion_loss = emotion_loss
        self.age_loss = age_loss
        self.clip_z = None if clip_z is None else float(clip_z)
        self.dropout = float(dropout)
        self.l2 = float(l2)
        self.emotion_activation = emotion_activation
        self.linear_skip = bool(linear_skip)
        self.seed = seed
        if loss_weighting == "uncertainty":
            self.log_vars = self.add_weight(shape=(3,), initializer=keras.initializers.Constant(UNCERTAINTY_INIT),
                                            name="log_vars")
        # Each task's unweighted loss per epoch (history and TensorBoard: `emotion_loss`, `val_age_loss`, ...):
        # the total alone hides which task a head stops learning.
        self.task_loss_trackers = [keras.metrics.Mean(name=f"{task}_loss") for task in TASKS]  # task_losses order

    @property
    def linear_input(self) -> str:
        """The layer whose output the linear skip (and the linear reference fitted into it) reads."""
        if self.input_layers:
            return "layer_mean"
        return "clip_z" if self.clip_z is not None else "standardise"

    @classmethod
    def from_preset(cls, preset: str, **kwargs) -> "MultiTaskHead":
        """`sys1`, `sys2` or `baseline`; keyword arguments override the preset."""
        if preset not in PRESETS:
            raise ValueError(f"unknown head {preset!r}; choose one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[preset], **kwargs})

    def task_losses(self, y, y_pred):
        """The three unweighted task losses (emotion, age, country) as scalars (0 for an empty batch)."""
        emo_sq = ops.square(ops.cast(y["emotion"], "float32") - y_pred["emotion"])
        emo = _batch_mean(ops.sum(emo_sq, axis=-1) if self.emotion_loss == "sum" else ops.mean(emo_sq, axis=-1))
        age_err = ops.reshape(ops.cast(y["age"], "float32"), (-1,)) - ops.reshape(y_pred["age"], (-1,))
        if self.age_loss == "standardised":
            age_err = age_err / self.age_std
        age = _batch_mean(ops.square(age_err))
        cou = _batch_mean(keras.losses.sparse_categorical_crossentropy(ops.reshape(y["country"], (-1,)),
                                                                       y_pred["country"]))
        return emo, age, cou

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        import tensorflow as tf

        task_losses = self.task_losses(y, y_pred)
        rows = ops.shape(y_pred["age"])[0]
        for tracker, value in zip(self.task_loss_trackers, task_losses):
            tracker.update_state(value, sample_weight=rows)  # weighted by rows, as Keras's own loss tracker is
        losses = ops.stack(task_losses)
        if self.loss_weighting == "uncertainty":
            total = ops.sum(ops.exp(-self.log_vars) * losses + self.log_vars)
        else:
            total = ops.mean(losses)
        total = total + ops.sum(self.losses) if self.losses else total
        # Under a strategy over several devices each device takes its part of the batch and Keras sums their
        # gradients, so each part's loss is divided by the device count, as Keras's own losses do (this override
        # bypasses them); otherwise two devices would take steps twice as large as one.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return total / replicas if replicas > 1 else total

    def get_config(self):
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "input_layers": self.input_layers,
            "hidden_dims": list(self.hidden_dims),
            "feature_mean": None if self.feature_mean is None else self.feature_mean.tolist(),
            "feature_std": None if self.feature_std is None else self.feature_std.tolist(),
            "age_mean": self.age_mean,
            "age_std": self.age_std,
            "layer_norm": self.layer_norm,
            "task_hidden": self.task_hidden,
            "negative_slope": self.negative_slope,
            "loss_weighting": self.loss_weighting,
            "emotion_loss": self.emotion_loss,
            "age_loss": self.age_loss,
            "clip_z": self.clip_z,
            "dropout": self.dropout,
            "l2": self.l2,
            "emotion_activation": self.emotion_activation,
            "linear_skip": self.linear_skip,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
