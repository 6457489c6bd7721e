"""Training the frame CNNs with Idiap's recipe, utterance decisions (Table 1) and 20-d embeddings.

Recipe (FACTS.md): SGD with momentum 0.5, learning rate 0.1, batches of 256 windows, cross-entropy, the rate
halved on plateaus of the cross-validation loss down to a floor of 1e-6. The cross-validation set is a
speaker-independent 10 % of the training clips. The checkpoint with the lowest cross-validation loss is kept.

The schedule (:func:`plateau_schedule`) is Keras's ``ReduceLROnPlateau(factor=0.5, patience=1, min_delta=0.002,
min_lr=1e-6)``, as the project card asks, with Idiap's start epoch and stop rule on top. It is not Idiap's
rule (rsclf/train.py) in two ways:

- Idiap halves when the loss improved by less than `min_delta` over the *previous* epoch; Keras when it did not
  beat the *best* loss so far by more than `min_delta` (the best moves only on such an improvement). After a bad
  epoch, a recovery that does not beat the best halves under Keras and not under Idiap.
- Idiap stops when the halved rate would fall below the floor; Keras clamps it at `min_lr` and never stops. From
  0.1, 16 halvings give 1.53e-6; the 17th would give 7.6e-7: Idiap stops there, Keras sets 1e-6 and trains on,
  and our stop rule ends training at the next plateau (at the floor), or `max_epochs` does.

The paper profile follows Keras (the card) with Idiap's start epoch (`halving_starts`) and stop rule.

A run folder holds `best.keras`, `last.keras` + `state.json` (written atomically after every epoch, so an
interrupted run resumes from its last finished epoch, the schedule's state included), `history.csv` (its
`learning_rate` column is the rate each epoch trained with), `tensorboard/` and, once evaluated, `metrics.json`.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from exvo_keras.data.signals import ClipFiles
from exvo_keras.runs import atomic_write_json, claim_run_dir, read_json
from exvo_keras.workspace import NetworkFolder

PROFILES = {
    # The paper's settings: a window every 10 ms, the full halving schedule.
    "paper": {"hop_frames": 1, "max_epochs": 60, "halving_starts": 3},
    # The demo corpus inside run_all.sh's time budget: a window every 200 ms and a short schedule (a training
    # step of 256 windows costs about 1.3 s on 2 CPU cores). Batches of 64 give four times the updates for the
    # same compute: at 256, Raw(ExVo)-CR stayed at chance after 4 epochs (cross-validation UAR 0.25); at 64 it
    # reached 0.42.
    "demo": {"hop_frames": 20, "max_epochs": 4, "halving_starts": 2, "batch_size": 64},
}


@dataclass
class FrameTraining:
    """Everything that defines a frame-CNN training run."""

    architecture: str = "subseg"
    hop_frames: int = 1
    batch_size: int = 256
    learning_rate: float = 0.1
    momentum: float = 0.5
    min_delta: float = 0.002
    halving_starts: int = 3
    lr_floor: float = 1e-6
    # Part of the recorded configuration so that folders trained under Idiap's previous-epoch rule (which had no
    # such field) are refused rather than resumed under this one.
    lr_schedule: str = "reduce_lr_on_plateau"
    max_epochs: int = 60
    seed: int = 0
    profile: str = "paper"
    class_names: list[str] = field(default_factory=list)
    # "balanced": each window weighted by the inverse of its class's share of the training windows, so every
    # class counts alike in the loss, as it does in UAR (country, by which the CR networks are scored); "none":
    # Idiap's plain cross-entropy, which lets a network settle on the majority class.
    class_weighting: str = "balanced"

    def __post_init__(self):
        if self.lr_schedule != "reduce_lr_on_plateau":  # checked here, before a run folder records it
            raise ValueError(f"lr_schedule must be 'reduce_lr_on_plateau', got {self.lr_schedule!r}")

    @classmethod
    def from_profile(cls, profile: str, **kwargs) -> "FrameTraining":
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
        return cls(**{**PROFILES[profile], "profile": profile, **kwargs})


@dataclass
class ClipSet:
    """Labelled clips for the frame CNNs: `load(i)` gives clip i's signal (a cached raw or ZFF waveform).

    `files`, when given, names the same clips as signal-cache files: the tf.data pipelines then read them in
    parallel in the graph instead of calling `load` from Python (which in-memory sets, as in tests, use).
    """

    keys: list[str]
    load: Callable[[int], np.ndarray]
    labels: np.ndarray
    files: ClipFiles | None = None

    def subset(self, index: Sequence[int]) -> "ClipSet":
        index = np.asarray(index)
        return ClipSet([self.keys[i] for i in index], lambda i: self.load(int(index[i])), self.labels[index],
                       None if self.files is None else self.files.subset(index))

    @property
    def source(self):
        """What the window pipelines read: the files, or else the loader."""
        return self.load if self.files is None else self.files

    def lengths(self) -> list[int]:
        """Samples of each clip (from the files' headers when there are files)."""
        if self.files is not None:
            return self.files.lengths()
        return [len(self.load(i)) for i in range(len(self.keys))]


def plateau_schedule(cfg: FrameTraining, saved: dict | None = None):
    """The learning-rate callback of a run: Keras's ReduceLROnPlateau with Idiap's start epoch and stop rule.

    `saved`: the callback's `state()` after the last finished epoch (from state.json), for a resumed run.
    """
    import keras

    class PlateauSchedule(keras.callbacks.Callback):
        """Drives the learning rate with the ReduceLROnPlateau it holds (`plateau`), adding Idiap's two rules.

        Keras's semantics, which decide every halving: after each epoch the validation loss is an improvement when
        it is below the best so far by more than `min_delta` (compared in float32); it then becomes the best.
        Otherwise the rate is halved, but never below `lr_floor` (a halving that would go below it sets the floor;
        at the floor nothing changes). Idiap's rule instead compares with the previous epoch and stops where
        Keras clamps.

        On top: (a) no halving before epoch `halving_starts` (1-based): ReduceLROnPlateau's cooldown counter,
        which its on_train_begin clears, is set to `halving_starts` after it, so the first `halving_starts - 1`
        epochs only follow the best loss; (b) Idiap's stop: a plateau while the rate is already at the floor
        stops training. With patience 1, ReduceLROnPlateau's `wait` is still at its patience after an epoch
        only then, as a halving resets it.
        """

        def __init__(self):
            super().__init__()
            self.plateau = keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss", factor=0.5, patience=1, min_delta=cfg.min_delta, min_lr=cfg.lr_floor,
                mode="min", verbose=0)

        def set_model(self, model):
            super().set_model(model)
            self.plateau.set_model(model)

        def on_train_begin(self, logs=None):
            self.plateau.on_train_begin(logs)
            if saved is None:
                self.plateau.cooldown_counter = cfg.halving_starts
            else:
                self.plateau.best = saved["best"]
                self.plateau.wait = saved["wait"]
                self.plateau.cooldown_counter = saved["cooldown_counter"]

        def on_epoch_end(self, epoch, logs=None):
            self.plateau.on_epoch_end(epoch, logs)  # logs the rate this epoch trained with as `learning_rate`
            if self.plateau.wait >= self.plateau.patience:
                self.model.stop_training = True

        def state(self) -> dict:
            """What a resumed run needs to take the same decisions (the rate itself is in the optimiser)."""
            best = self.plateau.best
            return {"best": None if best is None else float(best), "wait": int(self.plateau.wait),
                    "cooldown_counter": int(self.plateau.cooldown_counter)}

    return PlateauSchedule()


def class_weights(labels: np.ndarray, lengths: Sequence[int], cfg: FrameTraining) -> dict[int, float] | None:
    """{class: weight} for Keras's `class_weight`, from each class's share of the training windows, or None.

    A clip gives one window per `hop_frames` frames of 10 ms, so a class's share is counted in windows, not
    clips. Weights average 1 over the windows, so the learning rate keeps its meaning.
    """
    from exvo_keras.signal.framing import num_windows

    if cfg.class_weighting == "none":
        return None
    if cfg.class_weighting != "balanced":
        raise ValueError(f"class_weighting must be 'balanced' or 'none', got {cfg.class_weighting!r}")
    windows = np.array([num_windows(n, cfg.hop_frames) for n in lengths], np.float64)
    per_class = np.bincount(np.asarray(labels, np.int64), weights=windows, minlength=len(cfg.class_names))
    present = per_class > 0
    weight = np.zeros_like(per_class)
    weight[present] = per_class.sum() / (present.sum() * per_class[present])
    return {int(c): float(w) for c, w in enumerate(weight) if present[c]}


def _atomic_save(model, path: Path) -> None:
    tmp = path.with_name(path.name[: -len(".keras")] + ".tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def train_frame_cnn(run_dir, fit: ClipSet, cv: ClipSet, cfg: FrameTraining, *, verbose: int = 1, strategy=None):
    """Trains (or resumes) a frame CNN in `run_dir` (a path or a `NetworkFolder`); returns the best model.

    A finished run (its `best.keras` and a `state.json` marked done) is loaded, not retrained. A run folder made
    with another configuration is refused.

    `strategy`: the ``tf.distribute`` strategy to build (or resume) the model under, e.g. a MirroredStrategy
    from `exvo_keras.devices.strategy_for`; None takes the one in scope (the default strategy outside any).
    `cfg.batch_size` stays the global batch, split across the strategy's devices. A mixed-precision global
    policy (`exvo_keras.devices.configure`) is part of the run's configuration.
    """
    import keras
    import tensorflow as tf

    from exvo_keras.data.pipeline import training_windows
    from exvo_keras.devices import evaluation_batches
    from exvo_keras.models.frame_cnn import FrameCNN

    config = asdict(cfg)
    precision = keras.mixed_precision.global_policy().name
    if precision != "float32":  # only then: folders made before precision was a choice keep their configuration
        config["precision"] = precision
    run = claim_run_dir(NetworkFolder(run_dir), config)

    state = read_json(run.state) or {"epoch": -1, "done": False}
    if state.get("stopped") and not state["done"]:
        # stopped by the schedule, then interrupted before it was marked done: resuming would train one epoch more
        state["done"] = True
        atomic_write_json(run.state, state)
    if state["done"]:
        return keras.saving.load_model(run.best)

    keras.utils.set_random_seed(cfg.seed)
    # Variables (weights and optimiser slots, a resumed run's too) are made once per device under the scope;
    # fit then splits each batch of the datasets across the devices itself.
    with (strategy or tf.distribute.get_strategy()).scope():
        if run.last.exists() and state["epoch"] >= 0:
            model = keras.saving.load_model(run.last)  # weights and optimiser state
        else:
            model = FrameCNN(architecture=cfg.architecture, num_classes=len(cfg.class_names), seed=cfg.seed)
            model.compile(optimizer=keras.optimizers.SGD(cfg.learning_rate, momentum=cfg.momentum),
                          loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    fit_lengths = fit.lengths()
    train_ds = training_windows(fit.source, fit.labels, hop_frames=cfg.hop_frames, batch_size=cfg.batch_size,
                                seed=cfg.seed, lengths=fit_lengths, first_epoch=state["epoch"] + 1)
    cv_ds = training_windows(cv.source, cv.labels, hop_frames=cfg.hop_frames, batch_size=1024, seed=cfg.seed,
                             shuffle_buffer=1, lengths=cv.lengths(), reshuffle=False)
    schedule = plateau_schedule(cfg, state.get("plateau"))

    class Checkpoint(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            loss = float(logs["val_loss"])
            if loss < state.get("best_val_loss", math.inf):
                state["best_val_loss"], state["best_epoch"] = loss, epoch
                _atomic_save(self.model, run.best)
            # after the schedule in the callback list: last.keras holds the next epoch's rate and `plateau` the
            # state after this epoch's decision, which is where a resumed run starts
            _atomic_save(self.model, run.last)
            state.update(epoch=epoch, plateau=schedule.state(), stopped=bool(self.model.stop_training))
            atomic_write_json(run.state, state)

    callbacks = [schedule, Checkpoint(),
                 keras.callbacks.CSVLogger(str(run.history), append=True),
                 keras.callbacks.TensorBoard(str(run.tensorboard), write_graph=False, profile_batch=0)]
    validation = evaluation_batches(cv_ds, model.distribute_strategy.num_replicas_in_sync)
    model.fit(train_ds, validation_data=validation, epochs=cfg.max_epochs, initial_epoch=state["epoch"] + 1,
              callbacks=callbacks, shuffle=False, verbose=verbose,
              class_weight=class_weights(fit.labels, fit_lengths, cfg))
    state["done"] = True
    atomic_write_json(run.state, state)
    return keras.saving.load_model(run.best)


def window_output_batches(model, clips: ClipSet, *, hop_frames: int, batch_size: int = 1024):
    """Runs `model` over every window of every clip, windows of several clips per batch, clips in order.

    Yields (outputs `[batch windows, dims]`, clip index of each window) a batch at a time.
    """
    from exvo_keras.data.pipeline import inference_windows

    for windows, clip in inference_windows(clips.source, len(clips.keys), hop_frames=hop_frames,
                                           batch_size=batch_size):
        yield np.asarray(model(windows, training=False)), clip.numpy()


def window_outputs(model, clips: ClipSet, *, hop_frames: int, batch_size: int = 1024):
    """All of :func:`window_output_batches` at once: (outputs `[windows, dims]`, clip index of each window)."""
    outs, index = zip(*window_output_batches(model, clips, hop_frames=hop_frames, batch_size=batch_size))
    return np.concatenate(outs), np.concatenate(index)


def pooled_window_outputs(model, clips: ClipSet, *, hop_frames: int,
                          batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over each clip's windows of `model`'s outputs: (`[clips, dims]`, same), float64.

    Clips are pooled as soon as their last window has passed (batches come in clip order), so memory holds
    the outputs of about one batch, not of the corpus's windows (13 million at the paper's hop over ExVo).
    """
    from exvo_keras.signal.pooling import segment_mean_std

    count = len(clips.keys)
    mean = std = None
    held_out, held_index = [], []
    seen = np.zeros(count, bool)

    def pool(outputs, index):
        nonlocal mean, std
        present, local = np.unique(index, return_inverse=True)
        m, s = segment_mean_std(outputs, local, len(present))
        if mean is None:
            mean, std = np.zeros((count, outputs.shape[1])), np.zeros((count, outputs.shape[1]))
        mean[present], std[present] = m.numpy(), s.numpy()
        seen[present] = True

    for outputs, index in window_output_batches(model, clips, hop_frames=hop_frames, batch_size=batch_size):
        held_out.append(outputs)
        held_index.append(index)
        outputs, index = np.concatenate(held_out), np.concatenate(held_index)
        done = index < index[-1]  # the last clip may go on in the next batch
        if done.any():
            pool(outputs[done], index[done])
        held_out, held_index = [outputs[~done]], [index[~done]]
    if held_index and held_index[0].size:
        pool(held_out[0], held_index[0])
    empty = np.flatnonzero(~seen)
    if empty.size:  # every clip gives at least one window: a clip without any means a broken loader
        raise ValueError(f"clips without windows: {[clips.keys[i] for i in empty[:5]]}")
    return mean, std


def utterance_decisions(model, clips: ClipSet, *, hop_frames: int) -> np.ndarray:
    """Each clip's class: the argmax of the mean of its windows' posteriors (the paper's decision)."""
    mean, _ = pooled_window_outputs(model, clips, hop_frames=hop_frames)
    return mean.argmax(axis=1)


def embed_clips(embedding_model, clips: ClipSet, *, hop_frames: int) -> np.ndarray:
    """Mean and standard deviation over each clip's windows of the hidden layer before its activation."""
    mean, std = pooled_window_outputs(embedding_model, clips, hop_frames=hop_frames)
    return np.concatenate([mean, std], axis=1).astype(np.float32)
