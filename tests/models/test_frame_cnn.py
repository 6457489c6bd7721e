import keras
import numpy as np
import pytest

from exvo_keras.models.frame_cnn import FrameCNN, layer_lengths

WINDOW = 4000


def _windows(n, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, WINDOW)).astype("float32")
    return (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)


def _shapes(model, kind):
    return [tuple(layer.output.shape[1:]) for layer in model.layers if isinstance(layer, kind)]


def _conv_params(spec, in_channels=1):
    """Hand count for a (filters, kernel) conv stack: kernel * in * out weights plus out biases per layer."""
    total = 0
    for filters, kernel in spec:
        total += kernel * in_channels * filters + filters
        in_channels = filters
    return total


@pytest.fixture(scope="module")
def subseg():
    return FrameCNN("subseg", num_classes=10, seed=0)


def test_subseg_layer_shapes_match_facts(subseg):
    assert _shapes(subseg, keras.layers.Conv1D) == [(398, 128), (38, 256), (5, 512), (3, 512)]
    assert _shapes(subseg, keras.layers.MaxPooling1D) == [(199, 128), (12, 256)]
    assert layer_lengths("subseg") == [398, 199, 38, 12, 5, 3]
    assert tuple(subseg.get_layer("flatten").output.shape[1:]) == (3 * 512,)
    assert tuple(subseg.get_layer("embedding").output.shape[1:]) == (10,)
    out = np.asarray(subseg(_windows(3)))
    assert out.shape == (3, 10)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)


def test_seg_layer_shapes_match_facts():
    model = FrameCNN("seg", num_classes=4, seed=0)
    assert _shapes(model, keras.layers.Conv1D) == [(38, 128), (8, 256), (3, 512), (1, 512)]
    assert _shapes(model, keras.layers.MaxPooling1D) == [(19, 128)]
    assert layer_lengths("seg") == [38, 19, 8, 3, 1]
    assert tuple(model.get_layer("flatten").output.shape[1:]) == (512,)
    assert model.first_conv_kernel().shape == (300, 128)
    out = np.asarray(model(_windows(2)))
    assert out.shape == (2, 4)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)


def test_parameter_counts_by_hand():
    # FACTS.md layer lists; hidden Dense(10) and a 10-class output.
    subseg_convs = _conv_params([(128, 30), (256, 10), (512, 4), (512, 3)])
    seg_convs = _conv_params([(128, 300), (256, 5), (512, 4), (512, 3)])
    head = lambda flat: flat * 10 + 10 + 10 * 10 + 10  # noqa: E731
    assert subseg_convs + head(3 * 512) == 1_659_128
    assert seg_convs + head(512) == 1_519_608
    assert FrameCNN("subseg", num_classes=10).count_params() == subseg_convs + head(3 * 512)
    assert FrameCNN("seg", num_classes=10).count_params() == seg_convs + head(512)


def test_asr_network_has_ten_convs_and_a_1024_unit_embedding():
    model = FrameCNN.for_task("ASR", num_classes=40, seed=0)
    assert model.architecture == "asr" and model.hidden_units == model.embedding_dim == 1024
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv1D)]
    assert len(convs) == 10
    assert all(layer.padding == "valid" for layer in convs)
    assert model.first_conv_kernel().shape == (30, 128)
    assert tuple(model.get_layer("flatten").output.shape[1:]) == (8 * 512,)
    x = _windows(2)
    assert tuple(model(x).shape) == (2, 40)
    assert tuple(model.embedding_model()(x).shape) == (2, 1024)
    with pytest.raises(ValueError, match="num_classes"):
        FrameCNN.for_task("ASR")


def test_for_task_defaults_and_overrides():
    er, cr = FrameCNN.for_task("ER"), FrameCNN.for_task("CR", architecture="seg")
    assert (er.architecture, er.num_classes, er.hidden_units) == ("subseg", 10, 10)
    assert (cr.architecture, cr.num_classes) == ("seg", 4)
    assert FrameCNN.for_task("SER").num_classes == 4
    with pytest.raises(ValueError):
        FrameCNN.for_task("LID")
    with pytest.raises(ValueError):
        FrameCNN("wide")
    with pytest.raises(ValueError, match="too short"):
        FrameCNN("seg", window=400)


def test_embedding_is_the_hidden_layer_before_its_relu(subseg):
    x = _windows(8, seed=3)
    emb = np.asarray(subseg.embedding_model()(x))
    assert emb.shape == (8, 10)
    assert (emb < 0).any()  # pre-activation: a ReLU output could not be negative

    # The classifier is softmax(relu(embedding) W + b): recompute it from the embedding alone.
    w, b = (np.asarray(v) for v in subseg.get_layer("posteriors").get_weights())
    logits = np.maximum(emb, 0) @ w + b
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(subseg(x)), expected, rtol=1e-4, atol=1e-6)

    # And the embedding is the Dense map of the flattened conv features, with nothing after it.
    flat = keras.Model(subseg.input, subseg.get_layer("flatten").output)(x)
    w_e, b_e = subseg.get_layer("embedding").get_weights()
    np.testing.assert_allclose(emb, np.asarray(flat) @ w_e + b_e, rtol=1e-4, atol=1e-4)


def test_first_conv_kernel_is_conv_0(subseg):
    kernel = subseg.first_conv_kernel()
    assert kernel.shape == (30, 128)
    np.testing.assert_array_equal(kernel, np.asarray(subseg.get_layer("conv_0").kernel)[:, 0, :])


def test_seed_fixes_the_weights(subseg):
    same = FrameCNN("subseg", num_classes=10, seed=0)
    other = FrameCNN("subseg", num_classes=10, seed=1)
    for a, b in zip(subseg.get_weights(), same.get_weights()):
        np.testing.assert_array_equal(a, b)
    kernels = [w for w in subseg.get_weights() if w.ndim > 1]
    assert all(not np.array_equal(a, b) for a, b in zip(kernels, [w for w in other.get_weights() if w.ndim > 1]))
    # Each layer gets its own seed: conv_2 and conv_3 have the same Glorot limit (fan_in + fan_out = 3,072), so
    # with one shared seed their first weights would coincide.
    first = [np.asarray(subseg.get_layer(name).kernel).ravel()[:100] for name in ("conv_2", "conv_3")]
    assert not np.allclose(*first)


def test_config_round_trip(subseg):
    config = subseg.get_config()
    assert {k: config[k] for k in ("architecture", "num_classes", "window", "hidden_units", "seed")} == {
        "architecture": "subseg", "num_classes": 10, "window": 4000, "hidden_units": 10, "seed": 0}
    clone = FrameCNN.from_config(config)
    assert clone.get_config() == config
    for a, b in zip(subseg.get_weights(), clone.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_keras_file_round_trip(tmp_path):
    model = FrameCNN("seg", num_classes=4, hidden_units=16, seed=5)
    # Move the weights off their seeded initial values so reloading must restore them from the file.
    model.set_weights([w + 0.01 for w in model.get_weights()])
    x = _windows(4, seed=9)
    path = tmp_path / "frame_cnn.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, FrameCNN)
    assert (loaded.architecture, loaded.hidden_units, loaded.seed) == ("seg", 16, 5)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))
    np.testing.assert_array_equal(np.asarray(loaded.embedding_model()(x)), np.asarray(model.embedding_model()(x)))
    np.testing.assert_array_equal(loaded.first_conv_kernel(), model.first_conv_kernel())
