"""The linear reference: ridge regression for the emotions and age, logistic regression for country.

It reads the same standardised (and clipped) features as the deep heads and chooses its regularisation on the
speaker-independent 10 % of Train, so a table shows at once what a deep head adds over a linear model. After
the choice it is refitted on all of Train. The fitted weights are written into a `MultiTaskHead` of the
"linear" preset (no hidden layer), so a linear run is saved, loaded, scored and exported like any other head.
"""

from __future__ import annotations

import numpy as np

from exvo_keras.data.labels import COUNTRIES
from exvo_keras.metrics import mean_ccc, uar

# Wide enough that the choice lands inside the grid on corpora from a few hundred clips (6,373 ComParE dims)
# to ExVo's 20k clips: an edge pick is recorded in the history, which says to widen it.
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-2, 5, 8))
LOGISTIC_CS = tuple(float(c) for c in np.logspace(-4, 2, 7))


def _ridge(X, Y, alpha):
    from sklearn.linear_model import Ridge

    return Ridge(alpha=alpha).fit(X, Y)


def _logistic(X, y, C):
    from sklearn.linear_model import LogisticRegression

    # Country is scored by UAR: balanced class weights keep a minority country from being given up.
    return LogisticRegression(C=C, class_weight="balanced", max_iter=2000).fit(X, y)


def _pick(scores: dict[float, float]) -> float:
    """The grid value with the best dev score (max keeps the first on ties: the strongest regularisation)."""
    return max(scores, key=scores.get)


def choose_penalties(Z_fit, y_fit, Z_dev, y_dev, age_mean: float, age_std: float) -> dict:
    """The ridge and logistic penalties that score best on the dev rows, each task on its own metric.

    Z_*: standardised features; y_*: label dicts (emotion [n, 10], age [n] in years, country [n]).
    Returns the dev score of every grid value, the values chosen, and which of them sit at a grid edge.
    """
    # Strongest penalty first, so that a tie keeps the simpler model.
    alphas = sorted(RIDGE_ALPHAS, reverse=True)
    cs = sorted(LOGISTIC_CS)
    emo_dev, age_dev = {}, {}
    for a in alphas:
        pred = _ridge(Z_fit, np.column_stack([y_fit["emotion"], _age_z(y_fit, age_mean, age_std)]), a).predict(Z_dev)
        emo_dev[a] = mean_ccc(y_dev["emotion"], pred[:, :-1])
        age_dev[a] = -float(np.mean(np.abs(pred[:, -1] * age_std + age_mean - y_dev["age"])))
    cou_dev = {c: float(uar(y_dev["country"], _logistic(Z_fit, y_fit["country"], c).predict(Z_dev))) for c in cs}
    alpha_emo, alpha_age, C = _pick(emo_dev), _pick(age_dev), _pick(cou_dev)
    return {"dev_emo_ccc": {str(k): v for k, v in emo_dev.items()},
            "dev_age_mae": {str(k): -v for k, v in age_dev.items()},
            "dev_cou_uar": {str(k): v for k, v in cou_dev.items()},
            "alpha_emotion": alpha_emo, "alpha_age": alpha_age, "C_country": C,
            "at_grid_edge": [name for name, v, grid in (("alpha_emotion", alpha_emo, alphas),
                                                        ("alpha_age", alpha_age, alphas),
                                                        ("C_country", C, cs)) if v in (grid[0], grid[-1])]}


def _age_z(y, age_mean, age_std):
    return (np.asarray(y["age"], np.float64) - age_mean) / age_std


def linear_weights(Z, y, penalties: dict, age_mean: float, age_std: float) -> dict[str, list[np.ndarray]]:
    """Fits the three tasks with the chosen penalties; returns {linear head layer name: [kernel, bias]}."""
    emo = _ridge(Z, y["emotion"], penalties["alpha_emotion"])
    age = _ridge(Z, _age_z(y, age_mean, age_std), penalties["alpha_age"])
    cou = _logistic(Z, y["country"], penalties["C_country"])
    # A country absent from Train gets no logit column from scikit-learn: a very negative bias keeps it unpredicted.
    kernel = np.zeros((Z.shape[1], len(COUNTRIES)))
    bias = np.full(len(COUNTRIES), -1e4)
    # Binary logistic regression gives one logit f for class 1: softmax([-f/2, f/2]) is sigmoid(f).
    coef = cou.coef_ if len(cou.classes_) > 2 else np.vstack([-cou.coef_[0] / 2, cou.coef_[0] / 2])
    intercept = cou.intercept_ if len(cou.classes_) > 2 else np.array([-cou.intercept_[0] / 2,
                                                                       cou.intercept_[0] / 2])
    for j, cls in enumerate(cou.classes_):
        kernel[:, int(cls)] = coef[j]
        bias[int(cls)] = intercept[j]
    return {"emotion_out": [emo.coef_.T, emo.intercept_],
            "age_z_out": [age.coef_.reshape(-1, 1), np.atleast_1d(age.intercept_)],
            "country_out": [kernel, bias]}
