"""Tests for exvo_keras.metrics against independent implementations."""

import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    mean_absolute_error,
    recall_score,
)

from exvo_keras.data.labels import COUNTRIES, EMOTIONS
from exvo_keras.experiments import paper
from exvo_keras.metrics import (
    ccc,
    ccc_per_column,
    mae,
    mean_ccc,
    s_mtl,
    score_all,
    uar,
    war,
)


def _ccc_reference(x, y):
    """CCC from numpy's biased (1/n) covariance matrix, written independently."""
    c = np.cov(x, y, bias=True)
    return 2 * c[0, 1] / (c[0, 0] + c[1, 1] + (np.mean(x) - np.mean(y)) ** 2)


def _correlated(rng, n=500):
    x = rng.normal(size=n)
    y = 0.7 * x + 0.5 * rng.normal(size=n) + 0.3
    return x, y


# --------------------------------------------------------------------------
# CCC
# --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_ccc_matches_numpy_biased_cov(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 300))
    x = rng.normal(size=n) * rng.uniform(0.1, 3)
    y = 0.5 * x + rng.normal(size=n) + rng.uniform(-1, 1)
    assert ccc(x, y) == pytest.approx(_ccc_reference(x, y), rel=1e-12, abs=1e-12)


def test_ccc_identity_and_negation():
    x = np.random.default_rng(0).normal(size=100)
    assert ccc(x, x) == pytest.approx(1.0, abs=1e-12)
    assert ccc(x, -x) < 0
    # Zero-mean x: -x has the same mean and variance, so CCC == Pearson == -1.
    xc = x - x.mean()
    assert ccc(xc, -xc) == pytest.approx(-1.0, abs=1e-12)


def test_ccc_is_symmetric_and_list_input():
    x, y = _correlated(np.random.default_rng(1))
    assert ccc(x, y) == pytest.approx(ccc(y, x), abs=1e-15)
    assert ccc(list(x), list(y)) == ccc(x, y)


def test_ccc_penalises_shift_and_scale_unlike_pearson():
    x, y = _correlated(np.random.default_rng(2))
    r = stats.pearsonr(x, y)[0]
    base = ccc(x, y)
    assert base <= r + 1e-12

    # Pearson is invariant to affine maps of the prediction; CCC is not.
    for transformed in (y + 1.5, 3.0 * y, 0.2 * y):
        assert stats.pearsonr(x, transformed)[0] == pytest.approx(r, abs=1e-12)
        assert ccc(x, transformed) != pytest.approx(base, abs=1e-3)

    # A perfectly correlated but shifted copy: Pearson 1, CCC strictly less.
    shifted = x + 0.5
    assert stats.pearsonr(x, shifted)[0] == pytest.approx(1.0)
    assert ccc(x, shifted) < stats.pearsonr(x, shifted)[0] - 0.05

    # Closed form for a pure shift d: 2v / (2v + d^2).
    v = np.var(x)
    assert ccc(x, shifted) == pytest.approx(2 * v / (2 * v + 0.25), rel=1e-12)


def test_ccc_invariant_to_common_affine_map():
    # Shifting/scaling *both* arrays together leaves agreement unchanged.
    x, y = _correlated(np.random.default_rng(3))
    assert ccc(2.5 * x - 4, 2.5 * y - 4) == pytest.approx(ccc(x, y), rel=1e-12)


def test_ccc_differs_from_mixed_baseline_convention_by_at_most_1_over_n():
    rng = np.random.default_rng(4)
    for n in (5, 20, 200):
        x, y = _correlated(rng, n)
        mixed = (
            2
            * np.mean((x - x.mean()) * (y - y.mean()))
            / (np.var(x, ddof=1) + np.var(y, ddof=1) + (x.mean() - y.mean()) ** 2)
        )
        ours = ccc(x, y)
        assert ours != pytest.approx(mixed, rel=1e-12)  # conventions do differ
        assert abs(ours - mixed) <= abs(ours) / n + 1e-15


def test_ccc_degenerate_constant_inputs():
    x = np.random.default_rng(5).normal(size=50)
    const = np.full(50, 0.1)
    assert ccc(x, const) == 0.0
    assert ccc(const, x) == 0.0
    assert ccc(const, const.copy()) == 1.0
    assert ccc(const, np.full(50, 0.3)) == 0.0
    assert ccc([2.0], [2.0]) == 1.0
    assert ccc([2.0], [3.0]) == 0.0


def test_ccc_per_column_and_mean_ccc():
    rng = np.random.default_rng(6)
    Y = rng.uniform(size=(200, 10))
    P = 0.6 * Y + 0.4 * rng.uniform(size=(200, 10)) + np.linspace(0, 0.2, 10)
    P[:, 3] = 0.5  # one constant prediction column
    expected = np.array(
        [_ccc_reference(Y[:, k], P[:, k]) if k != 3 else 0.0 for k in range(10)]
    )
    got = ccc_per_column(Y, P)
    assert got.shape == (10,)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert got[3] == 0.0
    assert mean_ccc(Y, P) == pytest.approx(expected.mean(), rel=1e-12)
    np.testing.assert_allclose(
        ccc_per_column(Y, P), [ccc(Y[:, k], P[:, k]) for k in range(10)], rtol=1e-12
    )


# --------------------------------------------------------------------------
# MAE, UAR, WAR
# --------------------------------------------------------------------------


def test_mae_matches_sklearn():
    rng = np.random.default_rng(7)
    a = rng.uniform(18, 60, size=300)
    b = a + rng.normal(scale=4, size=300)
    assert mae(a, b) == pytest.approx(mean_absolute_error(a, b), rel=1e-12)
    assert mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(4))
def test_uar_war_match_sklearn_with_class_missing_from_predictions(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 4, size=300)
    y_pred = rng.integers(0, 4, size=300)
    y_pred[y_pred == 2] = 1  # class 2 is never predicted: its recall is 0
    assert 2 not in y_pred
    labels = np.unique(y_true)
    assert uar(y_true, y_pred) == pytest.approx(
        balanced_accuracy_score(y_true, y_pred), rel=1e-12
    )
    assert uar(y_true, y_pred) == pytest.approx(
        recall_score(y_true, y_pred, average="macro", labels=labels), rel=1e-12
    )
    assert war(y_true, y_pred) == pytest.approx(accuracy_score(y_true, y_pred))


def test_uar_ignores_classes_absent_from_truth():
    # Class 3 is predicted but never true: it must not add a 0-recall class.
    y_true = np.array([0, 0, 0, 0, 1, 1])
    y_pred = np.array([0, 0, 0, 3, 1, 3])
    assert uar(y_true, y_pred) == pytest.approx((3 / 4 + 1 / 2) / 2)
    assert war(y_true, y_pred) == pytest.approx(4 / 6)


def test_uar_differs_from_war_under_imbalance():
    # Always predicting the majority class: high accuracy, UAR = 1/k.
    y_true = np.array([0] * 90 + [1] * 5 + [2] * 5)
    y_pred = np.zeros(100, dtype=int)
    assert war(y_true, y_pred) == pytest.approx(0.9)
    assert uar(y_true, y_pred) == pytest.approx(1 / 3)


def test_uar_accepts_string_labels():
    y_true = np.array(["USA", "China", "USA", "Venezuela"])
    y_pred = np.array(["USA", "USA", "USA", "Venezuela"])
    assert uar(y_true, y_pred) == pytest.approx((1 + 0 + 1) / 3)


# --------------------------------------------------------------------------
# S_MTL
# --------------------------------------------------------------------------


def test_s_mtl_formula_and_harmonic_mean():
    assert s_mtl(0.5, 4.0, 0.5) == pytest.approx(3 / (2 + 4 + 2))
    # Harmonic mean of CCC, UAR and 1/MAE.
    c, m, u = 0.52, 3.9, 0.48
    assert s_mtl(c, m, u) == pytest.approx(stats.hmean([c, u, 1 / m]))
    # Better on any one task -> higher score.
    assert s_mtl(0.6, m, u) > s_mtl(c, m, u)
    assert s_mtl(c, 3.0, u) > s_mtl(c, m, u)
    assert s_mtl(c, m, 0.6) > s_mtl(c, m, u)


@pytest.mark.parametrize("c,u", [(0.0, 0.5), (-0.2, 0.5), (0.5, 0.0), (-0.1, -0.1)])
def test_s_mtl_is_zero_without_agreement(c, u):
    assert s_mtl(c, 4.0, u) == 0.0


@pytest.mark.parametrize(
    "args", [(math.nan, 4.0, 0.5), (0.5, math.inf, 0.5), (0.5, -1.0, 0.5)]
)
def test_s_mtl_rejects_invalid(args):
    with pytest.raises(ValueError, match="s_mtl"):
        s_mtl(*args)


def _paper_rows():
    return [
        pytest.param(row, id=f"T{num}-{row['system']}-{row['config']}")
        for num, df in ((2, paper.table2()), (3, paper.table3()))
        for _, row in df.iterrows()
        # Table 3 prints DeepSpectrum's S_MTL without its sub-scores: nothing to recompute.
        if not row[["emo_ccc", "age_mae", "cou_uar"]].isna().any()
    ]


@pytest.mark.parametrize("row", _paper_rows())
def test_s_mtl_reproduces_paper_tables(row):
    c, m, u = (float(v) for v in row[["emo_ccc", "age_mae", "cou_uar"]])
    ours = s_mtl(c, m, u)
    # Inputs are printed to 3 decimals (+-0.0005 each) and so is S_MTL.
    # A flat 0.0005 fails two Table 2 rows by < 4e-5 (HuBERT Sys-1,
    # Wav2Vec2 Sys-1), so propagate the input rounding to first order.
    grad = ours**2 / 3 * np.array([1 / c**2, 1.0, 1 / u**2])
    tol = 0.0005 + 0.0005 * grad.sum()
    assert abs(ours - row["s_mtl"]) <= tol
    assert tol < 0.0013  # keeps the check meaningful (a wrong formula is far off)


def test_paper_rows_are_mostly_within_flat_half_ulp():
    # Tight sanity check on top of the per-row bound: only rounding noise.
    df = paper.table2()
    parts = df[["emo_ccc", "age_mae", "cou_uar"]].to_numpy()
    rec = np.array([s_mtl(c, m, u) for c, m, u in parts])
    err = np.abs(rec - df["s_mtl"].to_numpy())
    assert err.max() < 0.0006
    assert np.mean(err <= 0.0005) >= 0.9


# --------------------------------------------------------------------------
# score_all
# --------------------------------------------------------------------------


def test_score_all_hand_checked():
    emo_true = np.tile(np.array([[0.0], [1.0], [2.0], [3.0]]), (1, len(EMOTIONS)))
    emo_pred = emo_true.copy()
    # Awe: shifted by 1 -> var 1.25 each, cov 1.25, shift^2 1 -> 2.5/3.5.
    emo_pred[:, 0] += 1.0
    # Excitement: reversed -> cov -1.25 -> -2.5/2.5 = -1.
    emo_pred[:, 1] = emo_true[::-1, 1]
    age_true = np.array([20.0, 30.0, 40.0, 50.0])
    age_pred = np.array([22.0, 30.0, 35.0, 50.0])  # MAE = 7/4
    cou_true = np.array([0, 0, 1, 2])
    cou_pred = np.array([0, 1, 1, 1])  # recalls 1/2, 1, 0 -> UAR 1/2; acc 1/2

    out = score_all(emo_true, emo_pred, age_true, age_pred, cou_true, cou_pred)

    per = [2.5 / 3.5, -1.0] + [1.0] * (len(EMOTIONS) - 2)
    assert out["ccc_Awe"] == pytest.approx(2.5 / 3.5)
    assert out["ccc_Excitement"] == pytest.approx(-1.0)
    assert out["ccc_Surprise"] == pytest.approx(1.0)
    assert out["emo_ccc"] == pytest.approx(np.mean(per))
    assert out["age_mae"] == pytest.approx(1.75)
    assert out["cou_uar"] == pytest.approx(0.5)
    assert out["cou_war"] == pytest.approx(0.5)
    assert out["s_mtl"] == pytest.approx(3 / (1 / np.mean(per) + 1.75 + 2))
    expected_keys = {"emo_ccc", "cou_uar", "age_mae", "s_mtl", "cou_war"} | {
        f"ccc_{e}" for e in EMOTIONS
    }
    assert set(out) == expected_keys
    assert all(type(v) is float for v in out.values())


def test_score_all_string_countries():
    rng = np.random.default_rng(8)
    emo = rng.uniform(size=(8, len(EMOTIONS)))
    age = rng.uniform(20, 40, size=8)
    cou = np.array(COUNTRIES * 2)
    out = score_all(emo, emo, age, age, cou, cou)
    assert out["emo_ccc"] == pytest.approx(1.0)
    assert out["age_mae"] == 0.0
    assert out["cou_uar"] == 1.0
    assert out["s_mtl"] == pytest.approx(3 / 2)  # 3 / (1 + 0 + 1)


def test_score_all_rejects_wrong_emotion_count_and_mismatched_tasks():
    rng = np.random.default_rng(9)
    emo = rng.uniform(size=(6, len(EMOTIONS)))
    age = rng.uniform(20, 40, size=6)
    cou = rng.integers(0, 4, size=6)
    with pytest.raises(ValueError, match="emotion columns"):
        score_all(emo[:, :9], emo[:, :9], age, age, cou, cou)
    with pytest.raises(ValueError, match="sample counts differ"):
        score_all(emo, emo, age[:5], age[:5], cou, cou)


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [ccc, mae])
def test_regression_errors(fn):
    with pytest.raises(ValueError, match="shape mismatch"):
        fn([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="NaN"):
        fn([1.0, np.nan, 3.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="NaN"):
        fn([1.0, 2.0, 3.0], [1.0, 2.0, np.inf])
    with pytest.raises(ValueError, match="empty"):
        fn([], [])
    # [n, 1] vs [n] must not broadcast into an [n, n] comparison.
    with pytest.raises(ValueError, match="1-D"):
        fn(np.ones((3, 1)), np.ones(3))


def test_ccc_per_column_errors():
    with pytest.raises(ValueError, match="shape mismatch"):
        ccc_per_column(np.ones((4, 10)), np.ones((4, 9)))
    with pytest.raises(ValueError, match="NaN"):
        mean_ccc(np.full((4, 2), np.nan), np.ones((4, 2)))
    with pytest.raises(ValueError, match="empty"):
        ccc_per_column(np.ones((0, 10)), np.ones((0, 10)))
    with pytest.raises(ValueError, match="2-D"):
        ccc_per_column(np.ones(4), np.ones(4))


@pytest.mark.parametrize("fn", [uar, war])
def test_classification_errors(fn):
    with pytest.raises(ValueError, match="shape mismatch"):
        fn([0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        fn([0.0, np.nan], [0.0, 1.0])
    with pytest.raises(ValueError, match="empty"):
        fn([], [])
    with pytest.raises(ValueError, match="label types"):
        fn([0, 1], ["China", "USA"])
