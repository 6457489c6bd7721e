"""The frame CNNs' learning-rate schedule: Keras's ReduceLROnPlateau with Idiap's start epoch and stop rule.

The callback is driven by hand (on_train_begin, then on_epoch_end with scripted validation losses, as fit calls
them) on a tiny real model, so every decision is checked against rates worked out from the semantics.
"""

import dataclasses
import json

import keras
import numpy as np
import pandas as pd
import pytest

from exvo_keras.models.frame_cnn import FrameCNN
from exvo_keras.runs import atomic_write_json, read_json
from exvo_keras.training.frame_cnn import ClipSet, FrameTraining, _atomic_save, plateau_schedule, train_frame_cnn


def _model(lr=0.1):
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="mse")
    return model


def _rate(model):
    return float(model.optimizer.learning_rate.numpy())


def _drive(cfg, losses, model, *, saved=None, first_epoch=0):
    """Feeds `losses` to a new schedule callback from `first_epoch` on; returns (learning_rate logged for each
    epoch, the optimiser's rate after each epoch, the epoch whose end stopped training or None, the callback)."""
    schedule = plateau_schedule(cfg, saved)
    schedule.set_model(model)
    schedule.on_train_begin()
    logged, after = [], []
    for epoch, loss in enumerate(losses, start=first_epoch):
        logs = {"val_loss": loss}
        schedule.on_epoch_end(epoch, logs)
        logged.append(logs["learning_rate"])
        after.append(_rate(model))
        if model.stop_training:
            return logged, after, epoch, schedule
    return logged, after, None, schedule


# min_delta 0.01 and a floor of 0.01 keep every comparison far from float32 rounding and reach the floor fast.
CFG = FrameTraining(halving_starts=3, min_delta=0.01, lr_floor=0.01)
LOSSES = [1.0, 0.995, 0.80, 0.70, 0.75, 0.705, 0.65, 0.645, 0.60, 0.61, 0.55, 0.545, 0.5]
# Rate after each 0-based epoch (best = best so far; halving possible from epoch 2, halving_starts=3):
#   0: 1.0 is the first best                      1: 0.995 is no improvement, but still in the cooldown: keep
#   2: 0.80 beats 1.0 by 0.2: best, keep         3: 0.70: best, keep
#   4: 0.75 is worse: halve to 0.05
#   5: 0.705 does not beat the best 0.70 by 0.01: halve to 0.025. Idiap's previous-epoch rule keeps the rate
#      here (0.75 - 0.705 = 0.045 >= 0.01): this is where the two rules part.
#   6: 0.65: best, keep                            7: 0.645 is within 0.01 of 0.65: halve to 0.0125
#   8: 0.60: best, keep
#   9: 0.61: halve, 0.00625 clamped to the floor 0.01 (where Idiap's stop rule would end training)
#  10: 0.55: best, keep                           11: 0.545, a plateau at the floor: stop (0.5 is never seen)
AFTER = [0.1, 0.1, 0.1, 0.1, 0.05, 0.025, 0.025, 0.0125, 0.0125, 0.01, 0.01, 0.01]
STOP = 11


def test_rates_follow_the_best_loss_so_far_clamp_at_the_floor_and_stop_on_the_next_plateau():
    model = _model()
    logged, after, stopped, schedule = _drive(CFG, LOSSES, model)
    np.testing.assert_allclose(after, AFTER, rtol=1e-6)
    # the history column is the rate each epoch trained with: the one left by the epoch before
    np.testing.assert_allclose(logged, [0.1] + AFTER[:-1], rtol=1e-6)
    assert stopped == STOP
    assert schedule.state() == {"best": 0.55, "wait": 1, "cooldown_counter": 0}


def test_paper_profile_reaches_the_floor_after_16_halvings_and_stops_one_plateau_later():
    cfg = FrameTraining.from_profile("paper")
    _, after, stopped, _ = _drive(cfg, [1.0] * 30, _model(cfg.learning_rate))
    # epoch 0 sets the best, epoch 1 is in the cooldown, epochs 2..17 halve 16 times down to 1.53e-6, epoch 18's
    # halving (7.6e-7) is clamped to 1e-6 where Idiap would stop, epoch 19 is a plateau at the floor: stop
    want = [0.1, 0.1] + [0.1 / 2 ** k for k in range(1, 17)] + [1e-6, 1e-6]
    np.testing.assert_allclose(after, want, rtol=1e-6)
    assert after[17] == pytest.approx(1.52587890625e-6, rel=1e-6)
    assert stopped == 19


def test_no_halving_before_halving_starts_even_on_a_flat_loss():
    logged, after, stopped, _ = _drive(dataclasses.replace(CFG, halving_starts=4), [1.0] * 6, _model())
    np.testing.assert_allclose(after, [0.1, 0.1, 0.1, 0.05, 0.025, 0.0125], rtol=1e-6)
    np.testing.assert_allclose(logged, [0.1, 0.1, 0.1, 0.1, 0.05, 0.025], rtol=1e-6)
    assert stopped is None
    # the best still follows the loss during the cooldown: 0.495 is no improvement on epoch 1's 0.5 (it would be
    # on epoch 0's 1.0), so the first epoch allowed to halve does
    _, after, _, _ = _drive(CFG, [1.0, 0.5, 0.495], _model())
    np.testing.assert_allclose(after, [0.1, 0.1, 0.05], rtol=1e-6)


@pytest.mark.parametrize("k", range(1, STOP + 1))
def test_a_run_resumed_after_k_epochs_takes_the_same_decisions(tmp_path, k):
    """Interrupted after epoch k - 1: the model and state are saved as train_frame_cnn's Checkpoint does, then a
    new model and callback are made from the files and go on."""
    model = _model()
    _, first, stopped, schedule = _drive(CFG, LOSSES[:k], model)
    assert stopped is None
    _atomic_save(model, tmp_path / "last.keras")
    atomic_write_json(tmp_path / "state.json", {"epoch": k - 1, "done": False, "plateau": schedule.state()})

    resumed = keras.saving.load_model(tmp_path / "last.keras")
    assert _rate(resumed) == _rate(model)  # the rate travels in the optimiser
    state = read_json(tmp_path / "state.json")
    _, rest, stopped, _ = _drive(CFG, LOSSES[k:], resumed, saved=state["plateau"], first_epoch=k)
    np.testing.assert_allclose(first + rest, AFTER, rtol=1e-6)
    assert stopped == STOP


def test_resuming_without_the_saved_state_would_take_other_decisions():
    # the check that the resume test above can fail: a new callback takes epoch 5's 0.705 for its first best (and
    # cools down again), so it keeps 0.05 where the saved best 0.70 halves to 0.025
    model = _model()
    _drive(CFG, LOSSES[:5], model)
    _, rest, stopped, _ = _drive(CFG, LOSSES[5:], model, first_epoch=5)
    assert AFTER[5] == 0.025 and rest[0] == pytest.approx(0.05)
    assert stopped != STOP


def test_a_folder_made_under_the_previous_schedule_is_refused(tmp_path):
    cfg = FrameTraining(class_names=["low", "high"])
    before = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "lr_schedule"}
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(before))
    (run / "state.json").write_text(json.dumps({"epoch": 2, "done": False, "previous_val_loss": 0.5}))

    def fail(i):
        raise AssertionError("a refused folder loaded clips")

    clips = ClipSet(["a", "b"], fail, np.array([0, 1], np.int32))
    with pytest.raises(ValueError) as err:
        train_frame_cnn(run, clips, clips, cfg, verbose=0)
    message = str(err.value)
    assert str(run) in message and "(differs in lr_schedule)" in message and "remove the folder" in message
    assert json.loads((run / "config.json").read_text()) == before
    with pytest.raises(ValueError, match="lr_schedule must be 'reduce_lr_on_plateau', got 'idiap'"):
        FrameTraining(lr_schedule="idiap")


# ---------------------------------------------------------------- end to end, through fit and the run folder


RATE, HOP = 16000, 10


def _clips(n, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.3 * RATE)) / RATE
    signals = [(0.4 * np.sin(2 * np.pi * (150 if i % 2 == 0 else 2500) * t)
                + 0.03 * rng.standard_normal(t.size)).astype(np.float32) for i in range(n)]
    return ClipSet([f"c{seed}_{i}" for i in range(n)], lambda i: signals[i], (np.arange(n) % 2).astype(np.int32))


# Epoch 1, the first after the interruption, needs both the restored cooldown (a new one would still be cooling
# down) and the restored best (0.5, which 0.495 does not beat; a new callback would take 0.495 for its best): it
# halves to the floor, 0.05. Epoch 2 is a plateau at the floor and stops training before max_epochs.
E2E_VAL_LOSS = [0.5, 0.495, 0.498]
E2E_CFG = FrameTraining(hop_frames=HOP, batch_size=8, max_epochs=5, halving_starts=2, min_delta=0.01,
                        lr_floor=0.05, class_names=["low", "high"])


class _Interrupted(KeyboardInterrupt):
    pass


def _scripted_validation(monkeypatch) -> list:
    """FrameCNN.evaluate reports E2E_VAL_LOSS in turn as the validation loss; returns the list of calls made, which
    a test clears to start the script again."""
    real_evaluate = FrameCNN.evaluate
    evaluated = []

    def scripted_evaluate(self, *args, **kwargs):
        logs = real_evaluate(self, *args, **kwargs)
        evaluated.append(None)
        return {**logs, "loss": E2E_VAL_LOSS[len(evaluated) - 1]}

    monkeypatch.setattr(FrameCNN, "evaluate", scripted_evaluate)
    return evaluated


def test_train_frame_cnn_resumed_after_an_epoch_has_the_history_of_an_uninterrupted_run(tmp_path, monkeypatch):
    fit, cv = _clips(8, 0), _clips(4, 1)
    evaluated = _scripted_validation(monkeypatch)
    real_tensorboard = keras.callbacks.TensorBoard

    class InterruptingTensorBoard(real_tensorboard):
        # the last callback: epoch 0 is finished and checkpointed when epoch 1 begins
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise _Interrupted()
            super().on_epoch_begin(epoch, logs)

    train_frame_cnn(tmp_path / "whole", fit, cv, E2E_CFG, verbose=0)
    evaluated.clear()
    with monkeypatch.context() as interrupt:
        interrupt.setattr(keras.callbacks, "TensorBoard", InterruptingTensorBoard)
        with pytest.raises(_Interrupted):
            train_frame_cnn(tmp_path / "resumed", fit, cv, E2E_CFG, verbose=0)
    assert read_json(tmp_path / "resumed" / "state.json")["plateau"] == {"best": 0.5, "wait": 0,
                                                                         "cooldown_counter": 1}
    train_frame_cnn(tmp_path / "resumed", fit, cv, E2E_CFG, verbose=0)

    whole, resumed = (pd.read_csv(tmp_path / name / "history.csv") for name in ("whole", "resumed"))
    assert list(whole["epoch"]) == [0, 1, 2]  # stopped at epoch 2 of max_epochs 5
    np.testing.assert_allclose(whole["learning_rate"], [0.1, 0.1, 0.05], rtol=1e-6)
    # not the training loss: a resumed run's tf.data window shuffle starts its per-epoch seeds afresh, so its
    # batches differ slightly from the uninterrupted run's
    pd.testing.assert_frame_equal(resumed[["epoch", "learning_rate", "val_loss"]],
                                  whole[["epoch", "learning_rate", "val_loss"]])
    states = [read_json(tmp_path / name / "state.json") for name in ("whole", "resumed")]
    assert states[0] == states[1]
    assert states[0]["done"] is True and states[0]["epoch"] == 2 and states[0]["plateau"]["wait"] == 1
    for name in ("whole", "resumed"):
        assert _rate(keras.saving.load_model(tmp_path / name / "last.keras")) == pytest.approx(0.05)


def test_a_run_stopped_by_the_schedule_and_interrupted_before_done_is_not_trained_further(tmp_path, monkeypatch):
    fit, cv = _clips(8, 0), _clips(4, 1)
    _scripted_validation(monkeypatch)
    train_frame_cnn(tmp_path / "run", fit, cv, E2E_CFG, verbose=0)
    state = read_json(tmp_path / "run" / "state.json")
    assert state["stopped"] is True and state["epoch"] == 2
    # as if killed after the last epoch's checkpoint, before the run was marked done
    (tmp_path / "run" / "state.json").write_text(json.dumps({**state, "done": False}))
    monkeypatch.setattr(FrameCNN, "fit", lambda *a, **k: pytest.fail("trained past the schedule's stop"))
    train_frame_cnn(tmp_path / "run", fit, cv, E2E_CFG, verbose=0)
    assert read_json(tmp_path / "run" / "state.json")["done"] is True
