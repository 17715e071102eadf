"""Cross-validated prediction, its permutation test, bootstrap intervals and consensus edges.

The whole procedure (folds drawn from the target, every pipeline step fitted on the training
fold, predictions of the test fold) is one function of ``(X, y)``; the permutation test runs
that same function on permuted targets, folds included, so the null distribution is that of
the procedure and not of a model fitted once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.base import clone
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.model_selection import LeaveOneOut, RepeatedStratifiedKFold

from icanets._defaults import PREDICT_DEFAULTS
from icanets.errors import IcanetsError
from icanets.parallel import map_items
from icanets.predict._models import make_pipeline

__all__ = ["PredictError", "CVSettings", "CrossValidation", "cv_splits", "cross_validate", "metrics",
           "permutation_null", "bootstrap_intervals", "METRICS", "PRIMARY"]


class PredictError(IcanetsError):
    """A prediction that cannot be run as declared (target, subjects, folds)."""


#: Metrics per kind of target; the first is the one the permutation p of the summary is about.
METRICS = {"continuous": ("r", "q2", "mae"), "binary": ("auc", "balanced_accuracy")}
PRIMARY = {kind: names[0] for kind, names in METRICS.items()}
#: Metrics where smaller is better.
_LOWER_BETTER = {"mae"}


@dataclass(frozen=True)
class CVSettings:
    """How a prediction is fitted and validated.

    Attributes
    ----------
    model : {"ridge", "cpm", "logistic"}
    binary : bool
    n_confounds : int
        Leading columns of ``X`` that are confounds.
    folds, repeats : int
        Repeated stratified k-fold (continuous targets: stratified on quantile bins).
    loo : bool
        Leave-one-out instead (one repeat).
    seed : int
        Seeds the folds, the inner tuning folds and (with offsets) the permutations and the
        bootstrap.
    threshold : float
        CPM: two-sided p of an edge's correlation with the target for it to be selected.
    network : {"both", "positive", "negative"}
        CPM networks.
    """

    model: str = "ridge"
    binary: bool = False
    n_confounds: int = 0
    folds: int = PREDICT_DEFAULTS["folds"]
    repeats: int = PREDICT_DEFAULTS["repeats"]
    loo: bool = False
    seed: int = 0
    threshold: float = PREDICT_DEFAULTS["threshold"]
    network: str = "both"

    def pipeline(self, n_features: int):
        return make_pipeline(self.model, binary=self.binary, n_confounds=self.n_confounds, n_features=n_features,
                             threshold=self.threshold, network=self.network, seed=self.seed,
                             inner_folds=min(5, self.folds) if not self.loo else 5)


@dataclass(frozen=True)
class CrossValidation:
    """Out-of-fold predictions of every repeat, and what each fit chose.

    Attributes
    ----------
    predictions : ndarray, shape (n_repeats, n)
        Continuous targets: the predicted value; binary: the score of class 1 (see
        :func:`class_score`).
    labels : ndarray, shape (n_repeats, n) or None
        Binary targets: the predicted class (0/1).
    selected : ndarray, shape (n_fits, n_features)
        CPM: the sign of each edge in each fit (0: not selected). Ridge: the coefficient of
        each (standardised) edge in each fit.
    fold_of : ndarray, shape (n_repeats, n)
        The test fold of each subject in each repeat.
    """

    predictions: np.ndarray
    labels: np.ndarray | None
    selected: np.ndarray
    fold_of: np.ndarray


def _strata(y: np.ndarray, binary: bool, folds: int) -> np.ndarray:
    if binary:
        return y.astype(int)
    n = len(y)
    bins = max(1, min(folds, n // folds))  # every bin holds at least `folds` subjects
    rank = np.argsort(np.argsort(y, kind="stable"), kind="stable")
    return rank * bins // n


def cv_splits(y: np.ndarray, settings: CVSettings) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """The (train, test) index pairs of every repeat, drawn from ``y`` with ``settings.seed``.

    Examples
    --------
    >>> y = np.r_[np.zeros(10), np.ones(10)]
    >>> splits = cv_splits(y, CVSettings(binary=True, folds=5, repeats=2))
    >>> len(splits), len(splits[0]), [int(y[test].sum()) for _, test in splits[0]]
    (2, 5, [2, 2, 2, 2, 2])
    """
    y = np.asarray(y)
    if settings.loo:
        return [list(LeaveOneOut().split(y))]
    splitter = RepeatedStratifiedKFold(n_splits=settings.folds, n_repeats=settings.repeats,
                                       random_state=settings.seed)
    pairs = list(splitter.split(np.zeros(len(y)), _strata(y, settings.binary, settings.folds)))
    return [pairs[r * settings.folds:(r + 1) * settings.folds] for r in range(settings.repeats)]


def _chosen(model) -> np.ndarray:
    if hasattr(model, "selected_"):
        return model.selected_.astype(float)
    estimator = getattr(model, "best_estimator_", model)
    return np.ravel(estimator.coef_).astype(float)


def class_score(pipe, X: np.ndarray) -> np.ndarray:
    """Binary targets: the score whose ROC curve is reported: the predicted probability of
    class 1 where the model has one (CPM, logistic), else the decision function (ridge
    classifier: the fitted value of the +-1 coded class)."""
    model = pipe.steps[-1][1] if hasattr(pipe, "steps") else pipe
    if hasattr(model, "predict_proba"):
        return pipe.predict_proba(X)[:, 1]
    return pipe.decision_function(X)


def cross_validate(X: np.ndarray, y: np.ndarray, settings: CVSettings, *, keep_selected: bool = True
                   ) -> CrossValidation:
    """Out-of-fold predictions of ``y`` from ``X`` (``[confounds | edges]``), every repeat.

    Each fold fits a fresh clone of the pipeline on its training rows only.
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    n = len(y)
    template = settings.pipeline(X.shape[1] - settings.n_confounds)
    splits = cv_splits(y, settings)
    predictions = np.empty((len(splits), n))
    labels = np.empty((len(splits), n)) if settings.binary else None
    fold_of = np.empty((len(splits), n), dtype=int)
    selected = []
    target = y.astype(int) if settings.binary else y
    for r, pairs in enumerate(splits):
        for f, (train, test) in enumerate(pairs):
            pipe = clone(template).fit(X[train], target[train])
            if settings.binary:
                predictions[r, test] = class_score(pipe, X[test])
                labels[r, test] = pipe.predict(X[test])
            else:
                predictions[r, test] = pipe.predict(X[test])
            fold_of[r, test] = f
            if keep_selected:
                selected.append(_chosen(pipe.named_steps["model"]))
    return CrossValidation(predictions=predictions, labels=labels,
                           selected=np.array(selected) if selected else np.empty((0, X.shape[1])), fold_of=fold_of)


def _repeat_metrics(y: np.ndarray, prediction: np.ndarray, label: np.ndarray | None, binary: bool) -> dict:
    if binary:
        yi = y.astype(int)
        if np.unique(yi).size < 2:
            return {"auc": np.nan, "balanced_accuracy": np.nan}
        return {"auc": float(roc_auc_score(yi, prediction)),
                "balanced_accuracy": float(balanced_accuracy_score(yi, label.astype(int)))}
    residual = y - prediction
    spread = np.sum((y - y.mean()) ** 2)
    r = float(np.corrcoef(y, prediction)[0, 1]) if np.std(prediction) > 0 and np.std(y) > 0 else 0.0
    return {"r": r, "q2": float(1.0 - np.sum(residual**2) / spread) if spread > 0 else np.nan,
            "mae": float(np.mean(np.abs(residual)))}


def metrics(y: np.ndarray, cv: CrossValidation, binary: bool, index: np.ndarray | None = None) -> dict:
    """Each metric of :data:`METRICS`, averaged over the repeats (on rows ``index`` if given).

    Continuous: Pearson ``r`` of predicted and observed, ``q2 = 1 - SSE / SS_total`` (the
    observed mean as the baseline; negative when the model does worse than it), ``mae``.
    Binary: ROC ``auc`` of the class score (:func:`class_score`) and ``balanced_accuracy`` of
    the predicted class.
    """
    y = np.asarray(y, dtype=float)
    index = np.arange(len(y)) if index is None else index
    per = [_repeat_metrics(y[index], cv.predictions[r, index], None if cv.labels is None else cv.labels[r, index],
                           binary) for r in range(len(cv.predictions))]
    return {k: float(np.mean([p[k] for p in per])) for k in per[0]}


def permutation_null(X: np.ndarray, y: np.ndarray, settings: CVSettings, n_perm: int, *,
                     n_jobs: int | None = None) -> np.ndarray:
    """``(n_perm, n_metrics)``: the metrics of the whole procedure on permuted targets.

    Permutation ``k`` shuffles ``y`` with a generator seeded by ``(seed, k)``, so the null
    does not depend on the number of workers. Folds are drawn again from each permuted
    target, as the procedure draws them from the observed one.
    """
    kind = "binary" if settings.binary else "continuous"
    names = METRICS[kind]
    y = np.asarray(y, dtype=float)

    def one(k: int) -> list[float]:
        rng = np.random.default_rng(np.random.SeedSequence([settings.seed, 0x9E37, k]))
        permuted = y[rng.permutation(len(y))]
        cv = cross_validate(X, permuted, settings, keep_selected=False)
        values = metrics(permuted, cv, settings.binary)
        return [values[m] for m in names]

    return np.array(map_items(one, range(n_perm), n_jobs=n_jobs), dtype=float).reshape(n_perm, len(names))


def permutation_p(observed: dict, null: np.ndarray, binary: bool) -> dict:
    """``(1 + #null at least as good) / (1 + n_perm)`` for each metric."""
    names = METRICS["binary" if binary else "continuous"]
    out = {}
    for j, name in enumerate(names):
        column = null[:, j]
        column = column[np.isfinite(column)]
        value = observed[name]
        if not np.isfinite(value) or column.size == 0:
            out[name] = np.nan
            continue
        better = column <= value if name in _LOWER_BETTER else column >= value
        out[name] = float((1 + np.sum(better)) / (1 + column.size))
    return out


def bootstrap_intervals(y: np.ndarray, cv: CrossValidation, binary: bool, *, n_boot: int = 1000, seed: int = 0,
                        level: float = 0.95) -> dict:
    """Percentile bootstrap intervals of each metric, resampling subjects with replacement
    from the out-of-fold predictions (the models are not refitted: the interval is that of
    the metric's estimate given the predictions). Returns ``{metric: (low, high)}``."""
    y = np.asarray(y, dtype=float)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xB007]))
    draws = []
    for _ in range(n_boot):
        index = rng.integers(0, len(y), len(y))
        if binary and np.unique(y[index]).size < 2:
            continue
        draws.append(metrics(y, cv, binary, index))
    if not draws:
        return {}
    tail = (1 - level) / 2
    return {k: (float(np.nanquantile([d[k] for d in draws], tail)), float(np.nanquantile([d[k] for d in draws], 1 - tail)))
            for k in draws[0]}
