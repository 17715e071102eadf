"""scikit-learn estimators of the prediction pipelines: confound removal, CPM, ridge/logistic.

Every step is an estimator, so a whole pipeline (confounds -> scaling -> model) is fitted on a
training fold only and applied to its test fold: nothing learnt from a test subject reaches the
model that predicts it.

The feature matrix handed to a pipeline is ``[confounds | edges]``: its first ``n_confounds``
columns are the (numerically coded) confounds, the rest the edges. :class:`ConfoundRegressor`
removes the confounds' linear fit from every edge, estimated on the training subjects, and
drops the confound columns.

References
----------
Shen X, Finn ES, Scheinost D, et al. (2017). Using connectome-based predictive modeling to
predict individual behavior from brain connectivity. Nature Protocols 12:506-518.
Snoek L, Miletic S, Scholte HS (2019). How to control for confounds in decoding analyses of
neuroimaging data. NeuroImage 184:741-760 (confound regression fitted within folds).
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin
from sklearn.linear_model import LogisticRegression, RidgeClassifierCV, RidgeCV
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from icanets._defaults import PREDICT_DEFAULTS

__all__ = ["ConfoundRegressor", "CPMRegressor", "CPMClassifier", "make_pipeline", "MODELS", "default_alphas"]

#: Model names of ``[predict.<name>] model``.
MODELS = ("ridge", "cpm", "logistic")


class ConfoundRegressor(TransformerMixin, BaseEstimator):
    """Remove the confounds' linear fit (with an intercept) from every feature.

    Parameters
    ----------
    n_confounds : int
        The first ``n_confounds`` columns of ``X`` are confounds; they are dropped from the
        output. With 0, the features pass unchanged.

    Attributes
    ----------
    coef_ : ndarray, shape (n_confounds + 1, n_features)
        Intercept and confound coefficients of each feature, fitted on the training rows.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> age = rng.normal(size=(50, 1))
    >>> edges = 2 * age + rng.normal(size=(50, 3))
    >>> out = ConfoundRegressor(1).fit_transform(np.hstack([age, edges]))
    >>> out.shape, bool(np.abs(np.corrcoef(age[:, 0], out[:, 0])[0, 1]) < 1e-10)
    ((50, 3), True)
    """

    def __init__(self, n_confounds: int = 0):
        self.n_confounds = n_confounds

    def _split(self, X):
        X = np.asarray(X, dtype=float)
        k = int(self.n_confounds)
        return np.column_stack([np.ones(len(X)), X[:, :k]]), X[:, k:]

    def fit(self, X, y=None):
        design, features = self._split(X)
        self.coef_ = np.linalg.lstsq(design, features, rcond=None)[0] if self.n_confounds else None
        return self

    def transform(self, X):
        design, features = self._split(X)
        return features - design @ self.coef_ if self.n_confounds else features


def _edge_correlations(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson r of each column of ``x`` with ``y``, and its two-sided p (NaN-free: a constant
    column gets r = 0, p = 1)."""
    xc = x - x.mean(axis=0)
    yc = y - y.mean()
    sx = np.sqrt(np.einsum("ij,ij->j", xc, xc))
    sy = np.sqrt(yc @ yc)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (yc @ xc) / (sx * sy)
    r = np.where(np.isfinite(r), np.clip(r, -1.0, 1.0), 0.0)
    n = len(y)
    df = n - 2
    with np.errstate(divide="ignore", invalid="ignore"):
        t = r * np.sqrt(df / np.maximum(1.0 - r**2, 1e-300))
    p = 2 * stats.t.sf(np.abs(t), df)
    return r, np.where(sx > 0, p, 1.0)


class _CPM(BaseEstimator):
    """Shared part of CPM: edge selection and network strengths."""

    def __init__(self, threshold: float = PREDICT_DEFAULTS["threshold"], network: str = "both"):
        self.threshold = threshold
        self.network = network

    def _select(self, X, y):
        if self.network not in ("both", "positive", "negative"):
            raise ValueError(f"CPM network must be both, positive or negative, got {self.network!r}")
        r, p = _edge_correlations(np.asarray(X, dtype=float), np.asarray(y, dtype=float))
        chosen = p < self.threshold
        self.positive_ = chosen & (r > 0) if self.network in ("both", "positive") else np.zeros_like(chosen)
        self.negative_ = chosen & (r < 0) if self.network in ("both", "negative") else np.zeros_like(chosen)
        self.r_ = r

    def strengths(self, X) -> np.ndarray:
        """``(n, 2)``: summed selected positive and negative edges of each row."""
        X = np.asarray(X, dtype=float)
        return np.column_stack([X[:, self.positive_].sum(axis=1), X[:, self.negative_].sum(axis=1)])

    @property
    def selected_(self) -> np.ndarray:
        """Sign of each selected edge: +1, -1, or 0 where not selected."""
        return self.positive_.astype(int) - self.negative_.astype(int)

    def _used(self) -> np.ndarray:
        return np.array([self.positive_.any(), self.negative_.any()])


class CPMRegressor(RegressorMixin, _CPM):
    """Connectome-based predictive modelling (Shen et al. 2017) of a continuous target.

    In training: every edge's Pearson correlation with the target; edges with two-sided
    ``p < threshold`` form a positive and a negative network; each subject's strength in each
    is the sum of its edges; a linear model of the target on the strengths (both networks:
    one model with the two strengths) is fitted by least squares. A network with no edge
    selected is left out of the model (with neither, the prediction is the training mean).

    Parameters
    ----------
    threshold : float, default 0.01
    network : {"both", "positive", "negative"}
    """

    def fit(self, X, y):
        y = np.asarray(y, dtype=float)
        self._select(X, y)
        self.columns_ = self._used()
        design = np.column_stack([np.ones(len(y)), self.strengths(X)[:, self.columns_]])
        self.coef_ = np.linalg.lstsq(design, y, rcond=None)[0]  # intercept, then the strengths' slopes
        return self

    def predict(self, X):
        return self.coef_[0] + self.strengths(X)[:, self.columns_] @ self.coef_[1:]


class CPMClassifier(ClassifierMixin, _CPM):
    """CPM of a binary target: edges selected by their point-biserial correlation with the
    class, strengths as for :class:`CPMRegressor`, a logistic regression of the class on the
    strengths (standardised on the training rows; default L2 penalty, ``C = 1``, which keeps
    the fit finite when the strengths separate the classes)."""

    def fit(self, X, y):
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        if self.classes_.size != 2:
            raise ValueError(f"CPMClassifier needs two classes, got {self.classes_.tolist()}")
        self._select(X, (y == self.classes_[1]).astype(float))
        self.columns_ = self._used()
        self.prior_ = float(np.mean(y == self.classes_[1]))
        self.model_ = None
        if self.columns_.any():
            s = self.strengths(X)[:, self.columns_]
            self.centre_, self.scale_ = s.mean(axis=0), s.std(axis=0)
            self.scale_[self.scale_ == 0] = 1.0
            self.model_ = LogisticRegression(max_iter=1000).fit((s - self.centre_) / self.scale_, y)
        return self

    def predict_proba(self, X):
        if self.model_ is None:
            return np.column_stack([np.full(len(X), 1 - self.prior_), np.full(len(X), self.prior_)])
        return self.model_.predict_proba((self.strengths(X)[:, self.columns_] - self.centre_) / self.scale_)

    def predict(self, X):
        return self.classes_[(self.predict_proba(X)[:, 1] > 0.5).astype(int)]


def default_alphas(n_features: int) -> np.ndarray:
    """Ridge penalties tried by the nested tuning: ``n_features x 10^(-3 .. 2)``, 11 values
    (standardised edges: the penalty that matters grows with their number)."""
    return float(max(n_features, 1)) * np.logspace(-3, 2, 11)


def make_pipeline(model: str, *, binary: bool, n_confounds: int, n_features: int,
                  threshold: float = PREDICT_DEFAULTS["threshold"],
                  network: str = "both", seed: int = 0, inner_folds: int = 5) -> Pipeline:
    """The prediction pipeline of one model.

    Parameters
    ----------
    model : {"ridge", "cpm", "logistic"}
        ``ridge``: standardised edges, ridge regression (continuous target) or the ridge
        classifier (binary: ridge regression of the +-1 coded class), the penalty tuned inside
        each training fold by efficient leave-one-out. ``logistic`` (binary targets only):
        L2 logistic regression, its penalty tuned by ``inner_folds`` stratified folds inside
        each training fold (slower: one fit per penalty and inner fold). ``cpm``:
        :class:`CPMRegressor` / :class:`CPMClassifier`.
    binary : bool
    n_confounds : int
        Leading columns of ``X`` that are confounds (regressed out of the edges, in-fold).
    n_features : int
        Edges (for the ridge penalties).
    threshold, network : CPM settings.
    seed : int
        Seed of the inner folds of the logistic tuning.
    """
    steps = [("confounds", ConfoundRegressor(n_confounds))]
    alphas = default_alphas(n_features)
    if model == "ridge":
        steps.append(("scale", StandardScaler()))
        steps.append(("model", RidgeClassifierCV(alphas=alphas) if binary else RidgeCV(alphas=alphas)))
    elif model == "logistic":
        if not binary:
            raise ValueError("model 'logistic' needs a binary target; use 'ridge' for a continuous one")
        inner = StratifiedKFold(n_splits=inner_folds, shuffle=True, random_state=seed)
        steps.append(("scale", StandardScaler()))
        steps.append(("model", GridSearchCV(LogisticRegression(max_iter=2000), {"C": list(1.0 / alphas)},
                                            cv=inner, scoring="neg_log_loss")))
    elif model == "cpm":
        steps.append(("model", CPMClassifier(threshold, network) if binary else CPMRegressor(threshold, network)))
    else:
        raise ValueError(f"model must be one of {', '.join(MODELS)}, got {model!r}")
    return Pipeline(steps)
