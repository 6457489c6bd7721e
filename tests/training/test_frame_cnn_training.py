"""Frame-CNN training: best/last checkpoints, resume, utterance decisions and embeddings.

The learning-rate schedule has its own tests in test_frame_cnn_schedule.py.

Kept small for 2 CPU cores: clips of 0.3 s with a window every 10 frames give 3 windows a clip.
"""

import json
import math
import types

import keras
import numpy as np
import pandas as pd
import pytest

from exvo_keras.data.pipeline import clip_windows, num_windows
from exvo_keras.models.frame_cnn import FrameCNN
from exvo_keras.training.frame_cnn import (ClipSet, FrameTraining, embed_clips, train_frame_cnn,
                                           utterance_decisions, window_outputs, pooled_window_outputs)

RATE = 16000
HOP = 10


# ---------------------------------------------------------------- a tiny learnable two-class set


def _two_class_clips(n, seed, seconds=0.3):
    """Class 0: a low tone (120-180 Hz), class 1: a high tone (2-3 kHz), random phase, noise, gain."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    signals, labels = [], []
    for i in range(n):
        label = i % 2
        f = rng.uniform(120, 180) if label == 0 else rng.uniform(2000, 3000)
        x = rng.uniform(0.1, 0.6) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
        signals.append((x + 0.03 * rng.standard_normal(t.size)).astype(np.float32))
        labels.append(label)
    return ClipSet([f"s{seed}_{i}" for i in range(n)], lambda i: signals[i], np.array(labels, np.int32))


def _cfg(**kw):
    # Halving from the first epoch with a huge min_delta halves the rate after every epoch but the first (whose loss
    # is the first best), so the learning_rate column of history.csv shows whether a resumed run restored its
    # optimiser and schedule state.
    base = dict(hop_frames=HOP, batch_size=8, max_epochs=4, halving_starts=1, min_delta=10.0,
                class_names=["low", "high"])
    return FrameTraining(**{**base, **kw})


class _Interrupted(KeyboardInterrupt):
    pass


# Validation losses reported to the callbacks, epoch by epoch: the best epoch (1) is neither the last one nor in
# the resumed part of the run.
SCRIPTED_VAL_LOSS = [0.5, 0.3, 0.4, 0.35]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run interrupted in the middle of its third epoch (Ctrl-C), then resumed to the end.

    The validation losses the callbacks see are scripted (the real evaluation still runs), and the weights at
    the end of every epoch are recorded, to check which epoch each checkpoint file holds.
    """
    run = tmp_path_factory.mktemp("frame") / "run"
    fit, cv = _two_class_clips(16, 0), _two_class_clips(6, 1)
    cfg = _cfg()
    real_tensorboard = keras.callbacks.TensorBoard
    real_evaluate = FrameCNN.evaluate
    epoch_weights = []

    def scripted_evaluate(self, *args, **kwargs):
        logs = real_evaluate(self, *args, **kwargs)
        epoch = len(epoch_weights)
        epoch_weights.append([np.array(w) for w in self.get_weights()])
        return {**logs, "loss": SCRIPTED_VAL_LOSS[epoch]}

    class InterruptingTensorBoard(real_tensorboard):
        # the last callback of the run: interrupt after the second batch of epoch 2 (0-based)
        def on_epoch_begin(self, epoch, logs=None):
            self._epoch_now = epoch
            super().on_epoch_begin(epoch, logs)

        def on_train_batch_end(self, batch, logs=None):
            super().on_train_batch_end(batch, logs)
            if self._epoch_now == 2 and batch == 1:
                raise _Interrupted()

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(FrameCNN, "evaluate", scripted_evaluate)
        with pytest.MonkeyPatch.context() as interrupt:
            interrupt.setattr(keras.callbacks, "TensorBoard", InterruptingTensorBoard)
            with pytest.raises(_Interrupted):
                train_frame_cnn(run, fit, cv, cfg, verbose=0)
        interrupted = {"state": json.loads((run / "state.json").read_text()),
                       "history": pd.read_csv(run / "history.csv")}
        model = train_frame_cnn(run, fit, cv, cfg, verbose=0)
    return types.SimpleNamespace(run=run, fit=fit, cv=cv, cfg=cfg, model=model, interrupted=interrupted,
                                 epoch_weights=epoch_weights)


def test_interrupted_run_resumes_at_the_next_epoch(trained):
    before = trained.interrupted
    assert before["state"]["epoch"] == 1 and before["state"]["done"] is False
    assert list(before["history"]["epoch"]) == [0, 1]  # the interrupted epoch left no row
    history = pd.read_csv(trained.run / "history.csv")
    state = json.loads((trained.run / "state.json").read_text())
    assert list(history["epoch"]) == list(range(trained.cfg.max_epochs))  # no duplicated or missing epochs
    assert state["done"] is True and state["epoch"] == trained.cfg.max_epochs - 1
    # the resumed run continued from the saved optimiser state and the saved best loss: the rate each epoch trained
    # with went on halving from where it was (0.05 after epoch 1), not from the initial 0.1 or without a best loss
    assert before["state"]["plateau"] == {"best": SCRIPTED_VAL_LOSS[0], "wait": 0, "cooldown_counter": 0}
    np.testing.assert_allclose(history["learning_rate"], [0.1, 0.1, 0.05, 0.025], rtol=1e-6)
    np.testing.assert_allclose(history["val_loss"].iloc[:2], before["history"]["val_loss"], rtol=1e-6)
    # ... and from the saved weights: every optimiser step of the finished epochs, none of the interrupted one
    windows = sum(num_windows(len(trained.fit.load(i)), HOP) for i in range(len(trained.fit.keys)))
    last = keras.saving.load_model(trained.run / "last.keras")
    assert int(last.optimizer.iterations.numpy()) == trained.cfg.max_epochs * math.ceil(windows / 8)
    assert float(last.optimizer.learning_rate.numpy()) == pytest.approx(0.0125)  # after the last epoch's halving


def _assert_same_weights(model, weights):
    for got, want in zip(model.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(got, want)


def test_best_checkpoint_is_the_epoch_with_the_lowest_val_loss(trained):
    history = pd.read_csv(trained.run / "history.csv")
    state = json.loads((trained.run / "state.json").read_text())
    np.testing.assert_allclose(history["val_loss"], SCRIPTED_VAL_LOSS)
    assert len(trained.epoch_weights) == len(SCRIPTED_VAL_LOSS)  # one evaluation per finished epoch
    best = int(np.argmin(SCRIPTED_VAL_LOSS))
    assert state["best_epoch"] == best and state["best_val_loss"] == pytest.approx(SCRIPTED_VAL_LOSS[best])
    # the files hold those epochs' weights (the resumed epochs, worse than epoch 1, did not replace best.keras)
    _assert_same_weights(keras.saving.load_model(trained.run / "best.keras"), trained.epoch_weights[best])
    _assert_same_weights(keras.saving.load_model(trained.run / "last.keras"), trained.epoch_weights[-1])
    # train_frame_cnn returns the best model
    _assert_same_weights(trained.model, trained.epoch_weights[best])


def test_learned_network_beats_chance(trained):
    test = _two_class_clips(10, 2)
    pred = utterance_decisions(trained.model, test, hop_frames=HOP)
    assert np.mean(pred == test.labels) >= 0.8
    # each decision is the argmax of the mean of that clip's window posteriors
    for i in range(len(test.keys)):
        post = np.asarray(trained.model(clip_windows(test.load(i), HOP), training=False))
        assert pred[i] == post.mean(axis=0).argmax()


def test_finished_run_is_not_retrained(trained):
    files = {name: (trained.run / name).stat().st_mtime_ns for name in ("best.keras", "last.keras", "state.json")}
    history = (trained.run / "history.csv").read_text()

    def fail(i):
        raise AssertionError("a finished run loaded its training clips")

    untouchable = ClipSet(trained.fit.keys, fail, trained.fit.labels)
    model = train_frame_cnn(trained.run, untouchable, untouchable, trained.cfg, verbose=0)
    assert {name: (trained.run / name).stat().st_mtime_ns for name in files} == files
    assert (trained.run / "history.csv").read_text() == history
    np.testing.assert_array_equal(model.get_layer("conv_0").kernel.numpy(),
                                  trained.model.get_layer("conv_0").kernel.numpy())


def test_run_folder_of_another_configuration_is_refused(trained):
    config = (trained.run / "config.json").read_text()
    with pytest.raises(ValueError, match="batch_size") as err:
        train_frame_cnn(trained.run, trained.fit, trained.cv, _cfg(batch_size=16), verbose=0)
    assert "min_delta" not in str(err.value)
    with pytest.raises(ValueError, match="class_names"):
        train_frame_cnn(trained.run, trained.fit, trained.cv, _cfg(class_names=["a", "b"]), verbose=0)
    assert (trained.run / "config.json").read_text() == config


def test_from_profile_and_unknown_profile():
    cfg = FrameTraining.from_profile("paper", seed=3)
    assert (cfg.hop_frames, cfg.max_epochs, cfg.halving_starts, cfg.profile, cfg.seed) == (1, 60, 3, "paper", 3)
    assert (cfg.batch_size, cfg.learning_rate, cfg.momentum, cfg.min_delta, cfg.lr_floor) == (256, 0.1, 0.5, 0.002,
                                                                                              1e-6)
    with pytest.raises(ValueError, match="demo"):
        FrameTraining.from_profile("fast")


# ---------------------------------------------------------------- embeddings and decisions


@pytest.fixture(scope="module")
def untrained():
    return FrameCNN("subseg", num_classes=3, seed=0)


@pytest.fixture(scope="module")
def odd_clips():
    """Lengths that exercise the framing: shorter than one window, a partial last frame, whole frames."""
    rng = np.random.default_rng(5)
    lengths = [800, 4800, 7555, 3000, 6400]
    signals = [(0.2 * rng.standard_normal(n) + np.sin(np.arange(n) * 0.05 * (k + 1))).astype(np.float32)
               for k, n in enumerate(lengths)]
    return ClipSet([f"c{i}" for i in range(len(lengths))], lambda i: signals[i], np.zeros(len(lengths), np.int32))


def test_embeddings_are_mean_and_std_of_the_pre_activation_hidden_layer(untrained, odd_clips):
    embedder = untrained.embedding_model()
    emb = embed_clips(embedder, odd_clips, hop_frames=HOP)
    assert emb.shape == (5, 20) and emb.dtype == np.float32
    for i in range(len(odd_clips.keys)):
        hidden = np.asarray(embedder(clip_windows(odd_clips.load(i), HOP), training=False), np.float64)
        assert hidden.shape == (num_windows(len(odd_clips.load(i)), HOP), 10)
        np.testing.assert_allclose(emb[i], np.concatenate([hidden.mean(0), hidden.std(0)]), rtol=1e-4, atol=1e-5)
    assert (emb[:, :10] < 0).any()  # before the ReLU: means can be negative


def test_mixed_batches_equal_one_clip_at_a_time(untrained, odd_clips):
    embedder = untrained.embedding_model()
    together = embed_clips(embedder, odd_clips, hop_frames=HOP)
    alone = np.concatenate([embed_clips(embedder, odd_clips.subset([i]), hop_frames=HOP)
                            for i in range(len(odd_clips.keys))])
    np.testing.assert_allclose(together, alone, rtol=1e-4, atol=1e-5)
    # batches that split clips across them give the same windows in the same order
    big, index = window_outputs(embedder, odd_clips, hop_frames=HOP)
    small, index_small = window_outputs(embedder, odd_clips, hop_frames=HOP, batch_size=3)
    counts = [num_windows(len(odd_clips.load(i)), HOP) for i in range(len(odd_clips.keys))]
    np.testing.assert_array_equal(index, np.repeat(np.arange(5), counts))
    np.testing.assert_array_equal(index_small, index)
    np.testing.assert_allclose(small, big, rtol=1e-4, atol=1e-5)
    # a subset in another order embeds each clip as itself
    np.testing.assert_allclose(embed_clips(embedder, odd_clips.subset([4, 0, 2]), hop_frames=HOP),
                               together[[4, 0, 2]], rtol=1e-4, atol=1e-5)


def test_pooling_clip_by_clip_as_batches_pass_equals_pooling_all_windows_at_once(untrained, odd_clips):
    from exvo_keras.signal.pooling import segment_mean_std

    embedder = untrained.embedding_model()
    for batch_size in (3, 7, 1024):  # clips split across batches, and all in one
        outputs, index = window_outputs(embedder, odd_clips, hop_frames=HOP, batch_size=batch_size)
        mean, std = segment_mean_std(outputs, index, len(odd_clips.keys))
        streamed = pooled_window_outputs(embedder, odd_clips, hop_frames=HOP, batch_size=batch_size)
        np.testing.assert_array_equal(streamed[0], mean.numpy())
        np.testing.assert_array_equal(streamed[1], std.numpy())


def test_utterance_decision_is_the_argmax_of_mean_posteriors(untrained, odd_clips):
    pred = utterance_decisions(untrained, odd_clips, hop_frames=HOP)
    for i in range(len(odd_clips.keys)):
        post = np.asarray(untrained(clip_windows(odd_clips.load(i), HOP), training=False))
        assert pred[i] == post.mean(axis=0).argmax()


def test_a_clip_without_windows_is_an_error_naming_it(untrained, odd_clips, monkeypatch):
    import exvo_keras.training.frame_cnn as frame_cnn

    real = frame_cnn.window_output_batches

    def dropping(*args, **kwargs):  # as a broken loader would: the second clip's windows never arrive
        for outputs, index in real(*args, **kwargs):
            yield outputs[index != 1], index[index != 1]

    monkeypatch.setattr(frame_cnn, "window_output_batches", dropping)
    with pytest.raises(ValueError, match=f"clips without windows: \\['{odd_clips.keys[1]}'\\]"):
        utterance_decisions(untrained, odd_clips, hop_frames=HOP)


def test_balanced_class_weights_make_every_class_count_alike_in_windows():
    from exvo_keras.data.pipeline import FRAME_SAMPLES
    from exvo_keras.training.frame_cnn import class_weights

    cfg = FrameTraining(class_names=["a", "b", "c"], hop_frames=2)
    labels = np.array([0, 0, 0, 1, 2])
    lengths = [10 * FRAME_SAMPLES] * 3 + [40 * FRAME_SAMPLES, 5 * FRAME_SAMPLES]  # windows 5, 5, 5, 20, 3
    weights = class_weights(labels, lengths, cfg)
    windows = np.array([15.0, 20.0, 3.0])
    totals = [weights[c] * windows[c] for c in range(3)]
    np.testing.assert_allclose(totals, totals[0])
    assert sum(weights[c] * windows[c] for c in range(3)) == pytest.approx(windows.sum())  # mean weight 1
    assert class_weights(labels, lengths, FrameTraining(class_names=["a", "b", "c"], class_weighting="none")) is None
    # a class with no training clip gets no weight (Keras would otherwise divide by its zero count)
    assert set(class_weights(np.array([0, 2]), lengths[:2], cfg)) == {0, 2}
