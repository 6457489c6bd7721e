"""Training under a MirroredStrategy over two logical CPUs gives one device's loss curves.

Logical devices can only be configured before TensorFlow initialises its devices, which the test session has
long done, so the training runs in a fresh subprocess: a tiny frame CNN and a tiny head, each trained for a few
epochs from the same seed on one device and on two, with global batches (each split 4 + 4 and 8 + 8).

One device is a OneDeviceStrategy, not the default strategy: under any strategy Keras reads a batch of each
dataset before training, which advances the per-iteration reshuffles, so a default-strategy run sees its
windows in another order (README, "Several devices and machines").
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from exvo_keras.devices import DeviceChoice

ROOT = Path(__file__).resolve().parents[2]
MARK = "DISTRIBUTE_RESULT "

SCRIPT = r"""
import json, sys
from pathlib import Path

import numpy as np
import tensorflow as tf

from exvo_keras.cli import build_parser

# The CLI parses its options, --devices included, before TensorFlow has initialised its devices, so that
# memory growth (and here, logical devices) can still be set: this would raise RuntimeError otherwise.
build_parser().parse_args(["train-network", "--data", "d", "--devices", "2", "raw_exvo_er"])
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from exvo_keras.devices import DeviceChoice, configure, device_scope, devices_of, strategy_for
from exvo_keras.training.frame_cnn import ClipSet, FrameTraining, train_frame_cnn
from exvo_keras.training.mtl import HeadTrainer
from exvo_keras.training.recipes import HeadTraining
from exvo_keras.workspace import NetworkFolder

out = Path(sys.argv[1])
configure(DeviceChoice.parse("1"))
result = {"devices": {n: devices_of(DeviceChoice.parse(n)) for n in ("1", "2", "cpu", "auto")}}
for key, call in (("too_many", lambda: devices_of(DeviceChoice.parse("3"))),
                  ("one_device_only", lambda: device_scope(DeviceChoice.parse("2"), "extract-ssl"))):
    try:
        call()
    except ValueError as exc:
        result[key] = str(exc)

rate = 16000
rng = np.random.default_rng(0)
t = np.arange(int(0.3 * rate)) / rate
signals = [(0.4 * np.sin(2 * np.pi * (150 if i % 2 == 0 else 2500) * t + rng.uniform(0, 6.3))
            + 0.03 * rng.standard_normal(t.size)).astype(np.float32) for i in range(23)]
labels = np.arange(23) % 2
clips = ClipSet([f"c{i}" for i in range(23)], lambda i: signals[i], labels.astype(np.int32))
# 16 training clips x 3 windows: 6 full batches of 8, each split 4 + 4. The 7 cross-validation clips give 21
# windows, one odd batch: what Keras cannot start a distributed evaluation with (devices.evaluation_batches).
fit, cv = clips.subset(range(16)), clips.subset(range(16, 23))
frame_cfg = FrameTraining(hop_frames=10, batch_size=8, max_epochs=3, halving_starts=10, class_names=["low", "high"])

def head_data(n, seed):
    r = np.random.default_rng(seed)
    x = r.standard_normal((n, 24)).astype(np.float32)
    return x, {"emotion": r.random((n, 10)).astype(np.float32), "age": r.uniform(18, 40, n).astype(np.float32),
               "country": r.integers(0, 4, n)}

head_cfg = HeadTraining.from_recipe([], "sys1", "baseline", epochs=4, batch_size=16, patience=10, learning_rate=1e-2)
# 64 rows: 4 batches of 16, each split 8 + 8; 33 held-out rows: one odd batch, as above.
(xt, yt), (xv, yv) = head_data(64, 1), head_data(33, 2)

for name in ("1", "2"):
    strategy = strategy_for(DeviceChoice.parse(name))
    folder = NetworkFolder(out / f"frame_{name}")
    train_frame_cnn(folder, fit, cv, frame_cfg, verbose=0, strategy=strategy)
    history = np.genfromtxt(folder.history, delimiter=",", names=True)
    _, record = HeadTrainer(xt, yt, xv, yv, head_cfg, strategy=strategy).fit(seed=0)
    result[name] = {"replicas": strategy.num_replicas_in_sync,
                    "frame_loss": history["loss"].tolist(), "frame_val_loss": history["val_loss"].tolist(),
                    "head_loss": record["loss"], "head_val_loss": record["val_loss"]}
# 65 rows: the last batch of one row leaves the second device nothing.
_, record = HeadTrainer(*head_data(65, 3), xv, yv, head_cfg, strategy=strategy).fit(seed=0)
result["2"]["head_loss_empty_part"] = record["loss"]
print("DISTRIBUTE_RESULT " + json.dumps(result))
"""


@pytest.fixture(scope="module")
def curves(tmp_path_factory):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path_factory.mktemp("distribute"))],
                          capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARK)]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len(MARK):])


def test_two_logical_cpus_resolve_to_a_mirrored_strategy(curves):
    assert curves["devices"]["1"] == ["/device:CPU:0"]
    assert curves["devices"]["2"] == ["/device:CPU:0", "/device:CPU:1"]
    assert curves["devices"]["cpu"] == ["/device:CPU:0"]
    assert curves["devices"]["auto"] == []  # no GPUs: TensorFlow's own placement
    assert "only 2 CPU device(s) visible" in curves["too_many"]
    assert "extract-ssl runs on one device" in curves["one_device_only"]
    assert (curves["1"]["replicas"], curves["2"]["replicas"]) == (1, 2)


# Measured max relative differences, two devices against one, per epoch (TF 2.17, Keras 3.15.1, 2 CPU cores):
# frame CNN loss 6.9e-6 (on its last epoch's 3.6e-4; the first epochs agree to 1e-7), validation loss 1.4e-6,
# head loss 7.8e-8, head validation loss 0. Bounds a few times above those: float rounding in the order of the
# sums, while a per-device loss left unscaled (the head before its fix) was off by a factor of two.
@pytest.mark.parametrize("curve, rtol", [("frame_loss", 5e-5), ("frame_val_loss", 1e-5), ("head_loss", 1e-6),
                                         ("head_val_loss", 1e-6)])
def test_two_devices_train_along_one_devices_loss_curve(curves, curve, rtol):
    one, two = np.array(curves["1"][curve]), np.array(curves["2"][curve])
    assert one.shape == two.shape and len(one) >= 3
    # The curves must move, or agreeing would prove nothing.
    assert np.ptp(one) > 1e-2
    np.testing.assert_allclose(two, one, rtol=rtol)


def test_a_device_with_no_rows_adds_nothing_rather_than_nan(curves):
    loss = np.array(curves["2"]["head_loss_empty_part"])
    assert np.isfinite(loss).all() and loss[-1] < loss[0]


def test_device_choices_parse_once_and_name_the_problem():
    assert DeviceChoice.parse("auto") == DeviceChoice()
    assert DeviceChoice.parse(" 2 ").count == 2
    assert DeviceChoice.parse("/gpu:0,GPU:1", "mixed_bfloat16").names == ("GPU:0", "GPU:1")
    assert str(DeviceChoice.parse("gpu:1,/device:GPU:0")) == "GPU:1,GPU:0"
    for bad, message in (("0", "at least one"), ("gpu", "type and an index"), ("GPU:0,gpu:0", "twice")):
        with pytest.raises(ValueError, match=message):
            DeviceChoice.parse(bad)
    with pytest.raises(ValueError, match="mixed_float16"):
        DeviceChoice.parse("auto", "float16")
