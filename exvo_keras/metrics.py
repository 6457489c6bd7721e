"""Evaluation metrics of the ExVo 2022 Multi-Task track.

The challenge scores three tasks on the HUME-VB corpus:

* emotion intensities (10 regressions) -> mean Concordance Correlation
  Coefficient over the ten emotions ("Emo-CCC");
* speaker age (regression, years) -> Mean Absolute Error ("Age-MAE");
* native country (4 classes) -> Unweighted Average Recall ("Cou-UAR");

and combines them into ``S_MTL = 3 / (1/CCC + MAE + 1/UAR)``.

:func:`score_all` is the single place where the three tasks are scored
together; everything else in the toolkit should call it rather than
recombining the individual metrics.

All computations are plain numpy in float64.  Inputs are validated strictly:
shape mismatches, empty inputs and NaN/inf raise :class:`ValueError` instead
of being silently broadcast or propagated.
"""

from __future__ import annotations

import numpy as np

from exvo_keras.data.labels import EMOTIONS

__all__ = [
    "ccc",
    "ccc_per_column",
    "mean_ccc",
    "mae",
    "uar",
    "war",
    "s_mtl",
    "score_all",
]


# ---------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------


def _as_float_pair(
    y_true, y_pred, ndim: int, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """Convert a (target, prediction) pair to validated float64 arrays.

    Args:
        y_true: Ground-truth values.
        y_pred: Predicted values.
        ndim: Required number of dimensions (1 or 2).
        what: Name used in error messages.

    Returns:
        ``(y_true, y_pred)`` as float64 arrays of identical shape.

    Raises:
        ValueError: On wrong dimensionality, shape mismatch, empty input or
            non-finite values.
    """
    try:
        t = np.asarray(y_true, dtype=np.float64)
        p = np.asarray(y_pred, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what}: inputs must be numeric ({err})") from err
    # Strict shapes on purpose: an [n, 1] prediction against an [n] target
    # would broadcast to [n, n] and give a plausible-looking wrong number.
    if t.ndim != ndim or p.ndim != ndim:
        raise ValueError(
            f"{what}: expected {ndim}-D arrays, got y_true.shape={t.shape} "
            f"and y_pred.shape={p.shape}"
        )
    if t.shape != p.shape:
        raise ValueError(
            f"{what}: shape mismatch, y_true.shape={t.shape} "
            f"!= y_pred.shape={p.shape}"
        )
    if t.shape[0] == 0 or t.size == 0:
        raise ValueError(f"{what}: empty input (shape {t.shape})")
    for name, arr in (("y_true", t), ("y_pred", p)):
        if not np.all(np.isfinite(arr)):
            n_bad = int(np.count_nonzero(~np.isfinite(arr)))
            raise ValueError(
                f"{what}: {name} contains {n_bad} NaN/inf value(s)"
            )
    return t, p


def _as_label_pair(y_true, y_pred, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Convert a pair of class-label vectors to validated 1-D arrays.

    Labels may be integers or strings; they are compared with ``==``.

    Args:
        y_true: Ground-truth labels.
        y_pred: Predicted labels.
        what: Name used in error messages.

    Returns:
        ``(y_true, y_pred)`` as 1-D numpy arrays of equal length.

    Raises:
        ValueError: On wrong dimensionality, length mismatch, empty input or
            NaN labels.
    """
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if t.ndim != 1 or p.ndim != 1:
        raise ValueError(
            f"{what}: expected 1-D label arrays, got y_true.shape={t.shape} "
            f"and y_pred.shape={p.shape}"
        )
    if t.shape != p.shape:
        raise ValueError(
            f"{what}: shape mismatch, y_true.shape={t.shape} "
            f"!= y_pred.shape={p.shape}"
        )
    if t.size == 0:
        raise ValueError(f"{what}: empty input")
    numeric = "biuf"
    if (t.dtype.kind in numeric) != (p.dtype.kind in numeric):
        # e.g. int codes vs. country names: numpy's == would not compare them
        # elementwise, and every sample would silently count as wrong.
        raise ValueError(
            f"{what}: y_true ({t.dtype}) and y_pred ({p.dtype}) use "
            "different label types; map both to codes or both to names"
        )
    for name, arr in (("y_true", t), ("y_pred", p)):
        # A NaN label is never equal to anything, so it would silently count
        # as an error (or, in y_true, as its own class).
        if arr.dtype.kind == "f" and np.isnan(arr).any():
            raise ValueError(f"{what}: {name} contains NaN labels")
        if arr.dtype.kind == "O" and any(
            isinstance(v, float) and np.isnan(v) for v in arr
        ):
            raise ValueError(f"{what}: {name} contains NaN labels")
    return t, p


# ---------------------------------------------------------------------------
# Regression metrics
# ---------------------------------------------------------------------------


def _ccc_columns(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    """CCC of every column of two validated [n, k] float64 arrays."""
    mean_t = t.mean(axis=0)
    mean_p = p.mean(axis=0)
    dt = t - mean_t
    dp = p - mean_p
    # Population (1/n) moments throughout; see the ccc() docstring.
    cov = (dt * dp).mean(axis=0)
    var_t = (dt * dt).mean(axis=0)
    var_p = (dp * dp).mean(axis=0)
    denom = var_t + var_p + (mean_t - mean_p) ** 2

    # Constancy is decided exactly (max == min) rather than from var == 0,
    # because the float mean of n equal values need not equal that value,
    # which leaves a ~1e-34 "variance" and a 0/0-like noise ratio.
    const_t = t.max(axis=0) == t.min(axis=0)
    const_p = p.max(axis=0) == p.min(axis=0)
    both_const = const_t & const_p

    # A constant column has exactly zero covariance; the float residue of
    # the mean would otherwise leave a ~1e-34 "CCC" instead of 0.
    cov = np.where(const_t | const_p, 0.0, cov)

    out = np.zeros(t.shape[1], dtype=np.float64)
    regular = ~both_const
    out[regular] = 2.0 * cov[regular] / denom[regular]
    # Two identical constants agree perfectly; two different constants have
    # zero covariance, hence 0 (which is also what the formula gives).
    out[both_const] = np.where(t[0, both_const] == p[0, both_const], 1.0, 0.0)
    return out


def ccc(y_true, y_pred) -> float:
    """Lin's concordance correlation coefficient of two 1-D arrays.

    ``CCC = 2 cov(x, y) / (var(x) + var(y) + (mean(x) - mean(y))**2)``

    Unlike Pearson's r, CCC measures agreement with the identity line, so it
    is lowered by any shift or rescaling of the predictions.

    Convention: population (1/n) moments are used for the covariance *and*
    both variances. The challenge baseline code instead divided the
    variances by (n - 1) while taking the covariance as a 1/n mean. That
    mixed form equals ``CCC * D / (D + (var_x + var_y) / (n - 1))`` with
    ``D`` the denominator above, i.e. it is shrunk towards 0 by a factor in
    ``[(n - 1) / n, 1]``: ``|CCC - CCC_baseline| <= |CCC| / n``. On the
    ~19k-clip validation set that is below 1e-4 and invisible at the
    3 decimals the paper reports, but it can matter for small batches.

    Degenerate inputs: if exactly one array is constant the covariance is 0
    and so is the CCC. If both are constant the formula is 0/0 for equal
    constants; this function returns 1.0 when the two constants are
    identical (perfect agreement) and 0.0 otherwise.

    Args:
        y_true: Ground-truth values, shape [n].
        y_pred: Predictions, shape [n].

    Returns:
        The CCC in [-1, 1].

    Raises:
        ValueError: If the inputs are not 1-D, differ in shape, are empty,
            or contain NaN/inf.
    """
    t, p = _as_float_pair(y_true, y_pred, ndim=1, what="ccc")
    return float(_ccc_columns(t[:, None], p[:, None])[0])


def ccc_per_column(Y_true, Y_pred) -> np.ndarray:
    """CCC of every column of two [n, k] arrays (e.g. one per emotion).

    Same convention and degenerate-case rules as :func:`ccc`.

    Args:
        Y_true: Ground-truth values, shape [n, k].
        Y_pred: Predictions, shape [n, k].

    Returns:
        float64 array of shape [k] with the per-column CCCs.

    Raises:
        ValueError: If the inputs are not 2-D, differ in shape, are empty,
            or contain NaN/inf.
    """
    t, p = _as_float_pair(Y_true, Y_pred, ndim=2, what="ccc_per_column")
    return _ccc_columns(t, p)


def mean_ccc(Y_true, Y_pred) -> float:
    """Mean of the per-column CCCs: the challenge's Emo-CCC.

    Args:
        Y_true: Ground-truth emotion intensities, shape [n, k].
        Y_pred: Predicted emotion intensities, shape [n, k].

    Returns:
        The unweighted mean of the k column CCCs.

    Raises:
        ValueError: As :func:`ccc_per_column`.
    """
    return float(ccc_per_column(Y_true, Y_pred).mean())


def mae(y_true, y_pred) -> float:
    """Mean absolute error of two 1-D arrays.

    Args:
        y_true: Ground-truth values, shape [n] (ages in years for ExVo).
        y_pred: Predictions, shape [n].

    Returns:
        ``mean(|y_true - y_pred|)``.

    Raises:
        ValueError: If the inputs are not 1-D, differ in shape, are empty,
            or contain NaN/inf.
    """
    t, p = _as_float_pair(y_true, y_pred, ndim=1, what="mae")
    return float(np.abs(t - p).mean())


# ---------------------------------------------------------------------------
# Classification metrics
# ---------------------------------------------------------------------------


def uar(y_true, y_pred) -> float:
    """Unweighted average recall (macro recall over the true classes).

    Each class that occurs in ``y_true`` contributes its recall with equal
    weight, whatever its frequency; predicted labels that never occur in
    ``y_true`` only count as errors. Equal to sklearn's
    ``balanced_accuracy_score`` and to
    ``recall_score(average="macro", labels=np.unique(y_true))``.

    Args:
        y_true: Ground-truth labels, shape [n] (ints or strings).
        y_pred: Predicted labels, shape [n].

    Returns:
        UAR in [0, 1].

    Raises:
        ValueError: If the inputs are not 1-D, differ in length, are empty,
            or contain NaN.
    """
    t, p = _as_label_pair(y_true, y_pred, what="uar")
    _, cls = np.unique(t, return_inverse=True)
    cls = cls.ravel()  # numpy 2.0/2.1 return the inverse with t's shape
    hits = np.bincount(cls, weights=(t == p).astype(np.float64))
    support = np.bincount(cls)
    return float((hits / support).mean())


def war(y_true, y_pred) -> float:
    """Weighted average recall, i.e. plain accuracy.

    Args:
        y_true: Ground-truth labels, shape [n].
        y_pred: Predicted labels, shape [n].

    Returns:
        Fraction of correct predictions, in [0, 1].

    Raises:
        ValueError: As :func:`uar`.
    """
    t, p = _as_label_pair(y_true, y_pred, what="war")
    return float((t == p).mean())


# ---------------------------------------------------------------------------
# Challenge score
# ---------------------------------------------------------------------------


def s_mtl(ccc: float, mae: float, uar: float) -> float:
    """ExVo Multi-Task challenge score ``3 / (1/CCC + MAE + 1/UAR)``.

    This is the harmonic mean of CCC, UAR and 1/MAE, so every task pulls the
    score down and the weakest one dominates.

    When ``ccc <= 0`` or ``uar <= 0`` the formula stops being a score (a
    negative reciprocal would *raise* S_MTL, and 0 divides by zero), so 0.0
    is returned instead: no agreement on either task means no credit.

    Args:
        ccc: Emo-CCC (mean emotion CCC), at most 1.
        mae: Age MAE in years, >= 0.
        uar: Country UAR, in [0, 1].

    Returns:
        S_MTL (0.0 in the degenerate cases above).

    Raises:
        ValueError: If any argument is NaN/inf or ``mae`` is negative.
    """
    vals = np.array([ccc, mae, uar], dtype=np.float64)
    if not np.all(np.isfinite(vals)):
        raise ValueError(
            f"s_mtl: arguments must be finite, got ccc={ccc}, mae={mae}, "
            f"uar={uar}"
        )
    c, m, u = vals
    if m < 0:
        raise ValueError(f"s_mtl: mae must be >= 0, got {mae}")
    if c <= 0 or u <= 0:
        return 0.0
    return float(3.0 / (1.0 / c + m + 1.0 / u))


def score_all(
    emotion_true,
    emotion_pred,
    age_true,
    age_pred,
    country_true,
    country_pred,
) -> dict[str, float]:
    """Score all three ExVo tasks and combine them into S_MTL.

    Args:
        emotion_true: Ground-truth intensities, shape [n, 10], columns in
            the order of ``exvo_keras.data.labels.EMOTIONS``.
        emotion_pred: Predicted intensities, shape [n, 10].
        age_true: Ground-truth ages in years, shape [n].
        age_pred: Predicted ages, shape [n].
        country_true: Ground-truth country labels, shape [n].
        country_pred: Predicted country labels (not probabilities), [n].

    Returns:
        Dict of floats with keys ``emo_ccc``, ``cou_uar``, ``age_mae``,
        ``s_mtl``, ``cou_war`` and ``ccc_<Emotion>`` for each emotion.

    Raises:
        ValueError: If the emotion arrays do not have one column per
            emotion, the three tasks have different numbers of samples, or
            any metric rejects its inputs.
    """
    per_emotion = ccc_per_column(emotion_true, emotion_pred)
    if per_emotion.shape[0] != len(EMOTIONS):
        raise ValueError(
            f"score_all: expected {len(EMOTIONS)} emotion columns "
            f"{EMOTIONS}, got {per_emotion.shape[0]}"
        )
    n_emo = np.shape(emotion_true)[0]
    n_age = np.shape(age_true)[0] if np.ndim(age_true) else 0
    n_cou = np.shape(country_true)[0] if np.ndim(country_true) else 0
    # All tasks are scored on the same clips; differing counts mean the
    # caller mixed splits or dropped rows in one task only.
    if not n_emo == n_age == n_cou:
        raise ValueError(
            f"score_all: sample counts differ: emotion={n_emo}, age={n_age}, "
            f"country={n_cou}"
        )

    emo_ccc = float(per_emotion.mean())
    age_mae = mae(age_true, age_pred)
    cou_uar = uar(country_true, country_pred)
    out = {
        "emo_ccc": emo_ccc,
        "cou_uar": cou_uar,
        "age_mae": age_mae,
        "s_mtl": s_mtl(emo_ccc, age_mae, cou_uar),
        "cou_war": war(country_true, country_pred),
    }
    for name, value in zip(EMOTIONS, per_emotion):
        out[f"ccc_{name}"] = float(value)
    return out
