import keras
import numpy as np
import pytest

from exvo_keras.models.mtl import PRESETS, MultiTaskHead


def _dense_shapes(model):
    return [tuple(layer.kernel.shape) for layer in model.layers if isinstance(layer, keras.layers.Dense)]


def test_sys1_and_sys2_widths():
    assert _dense_shapes(MultiTaskHead.from_preset("sys1", input_dim=20))[:2] == [(20, 128), (128, 64)]
    assert _dense_shapes(MultiTaskHead.from_preset("sys2", input_dim=20))[:2] == [(20, 256), (256, 128)]


def test_baseline_head_matches_the_challenge_network():
    model = MultiTaskHead.from_preset("baseline", input_dim=30)
    shapes = _dense_shapes(model)
    assert shapes[:2] == [(30, 128), (128, 64)]
    assert sorted(shapes[2:]) == sorted([(64, 32), (32, 10), (64, 32), (32, 1), (64, 32), (32, 4)])
    assert sum(isinstance(layer, keras.layers.LayerNormalization) for layer in model.layers) == 2
    np.testing.assert_allclose(model.log_vars.numpy(), -0.33)


def test_outputs_are_in_range_and_age_is_in_years():
    x = np.random.default_rng(0).standard_normal((16, 20)).astype("float32")
    model = MultiTaskHead.from_preset("sys1", input_dim=20, feature_mean=np.zeros(20), feature_std=np.ones(20),
                                      age_mean=30.0, age_std=0.0001, seed=1)
    out = model(x)
    emo, cou = np.asarray(out["emotion"]), np.asarray(out["country"])
    assert emo.shape == (16, 10) and (emo >= 0).all() and (emo <= 1).all()
    np.testing.assert_allclose(cou.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(out["age"]), 30.0, atol=0.01)  # tiny std: the output sits at the mean


def test_mean_loss_is_the_mean_of_three_task_losses():
    model = MultiTaskHead.from_preset("sys1", input_dim=5, age_mean=25.0, age_std=4.0, seed=0)
    x = np.random.default_rng(1).standard_normal((8, 5)).astype("float32")
    y = {"emotion": np.full((8, 10), 0.5, "float32"), "age": np.full((8,), 29.0, "float32"),
         "country": np.arange(8) % 4}
    pred = model(x)
    emo, age, cou = (float(v) for v in model.task_losses(y, pred))
    np.testing.assert_allclose(emo, np.mean((np.asarray(pred["emotion"]) - 0.5) ** 2), rtol=1e-5)
    np.testing.assert_allclose(age, np.mean(((np.asarray(pred["age"])[:, 0] - 29.0) / 4.0) ** 2), rtol=1e-5)
    p = np.asarray(pred["country"])[np.arange(8), np.arange(8) % 4]
    np.testing.assert_allclose(cou, -np.mean(np.log(p)), rtol=1e-4)
    np.testing.assert_allclose(float(model.compute_loss(y=y, y_pred=pred)), (emo + age + cou) / 3, rtol=1e-5)


def test_uncertainty_loss_uses_learned_log_variances():
    model = MultiTaskHead.from_preset("baseline", input_dim=5, seed=0)
    x = np.zeros((4, 5), "float32")
    y = {"emotion": np.zeros((4, 10), "float32"), "age": np.full((4,), 20.0, "float32"), "country": np.zeros(4)}
    pred = model(x)
    losses = np.array([float(v) for v in model.task_losses(y, pred)])
    s = np.full(3, -0.33)
    np.testing.assert_allclose(float(model.compute_loss(y=y, y_pred=pred)), np.sum(np.exp(-s) * losses + s),
                               rtol=1e-5)


def test_save_and_load_round_trip(tmp_path):
    x = np.random.default_rng(0).standard_normal((3, 7)).astype("float32")
    for preset in PRESETS:
        model = MultiTaskHead.from_preset(preset, input_dim=7, feature_mean=x.mean(0), feature_std=x.std(0) + 1,
                                          age_mean=27.0, age_std=5.0, seed=2)
        model.save(tmp_path / f"{preset}.keras")
        loaded = keras.saving.load_model(tmp_path / f"{preset}.keras")
        assert isinstance(loaded, MultiTaskHead) and loaded.get_config() == model.get_config()
        for key in ("emotion", "age", "country"):
            np.testing.assert_allclose(np.asarray(loaded(x)[key]), np.asarray(model(x)[key]), atol=1e-6)


def test_same_seed_same_weights_other_seed_other_weights():
    a = MultiTaskHead.from_preset("sys1", input_dim=9, seed=4).get_weights()
    b = MultiTaskHead.from_preset("sys1", input_dim=9, seed=4).get_weights()
    c = MultiTaskHead.from_preset("sys1", input_dim=9, seed=5).get_weights()
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not np.array_equal(a[0], c[0])


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="unknown head"):
        MultiTaskHead.from_preset("sys3", input_dim=3)
    with pytest.raises(ValueError, match="loss_weighting"):
        MultiTaskHead(input_dim=3, loss_weighting="max")
