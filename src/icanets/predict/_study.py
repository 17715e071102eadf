"""A declared prediction (``[predict.<name>]``) run on the study's edge table."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import pandas as pd

from icanets.config import PredictSpec
from icanets.glm.analysis import select_rows, select_subjects
from icanets.glm.design import DesignError, covariate_columns
from icanets.netmats.edges import EdgeTable
from icanets.predict._validation import (METRICS, PRIMARY, CrossValidation, CVSettings, PredictError,
                                         bootstrap_intervals, cross_validate, metrics, permutation_null,
                                         permutation_p)

__all__ = ["PreparedPrediction", "PredictionResult", "prepare_prediction", "run_prediction"]


@dataclass(frozen=True)
class PreparedPrediction:
    """The data of one prediction, ready for cross-validation.

    Attributes
    ----------
    X : ndarray, shape (n, n_confounds + n_edges)
        ``[confounds | edges]`` (categorical confounds dummy-coded).
    y : ndarray, shape (n,)
    rows : DataFrame
        ``participant_id`` of each row.
    edges : DataFrame
        The edges used (rows of the edge table's ``edges``; constant ones left out).
    confounds : tuple of str
        Names of the confound columns.
    binary : bool
    dropped : tuple of str
        Subjects of the subset left out, and why.
    notes : tuple of str
    settings : CVSettings
    """

    X: np.ndarray
    y: np.ndarray
    rows: pd.DataFrame
    edges: pd.DataFrame
    confounds: tuple[str, ...]
    binary: bool
    dropped: tuple[str, ...]
    notes: tuple[str, ...]
    settings: CVSettings


@dataclass(frozen=True)
class PredictionResult:
    """One prediction's cross-validated performance and its tests.

    Attributes
    ----------
    spec : PredictSpec
    data : PreparedPrediction
    cv : CrossValidation
    observed : dict
        Metric -> mean over repeats.
    p : dict
        Metric -> permutation p of the whole procedure (NaN without permutations).
    ci : dict
        Metric -> (low, high), 95 % percentile bootstrap.
    null : ndarray, shape (n_perm, n_metrics)
    edge_table : DataFrame
        Per edge: ``fraction`` of the fits that selected it (CPM) or the sign-consistency of
        its coefficient (ridge), ``sign``, ``mean_weight``, ``consensus``.
    """

    spec: PredictSpec
    data: PreparedPrediction
    cv: CrossValidation
    observed: dict
    p: dict
    ci: dict
    null: np.ndarray
    edge_table: pd.DataFrame

    @property
    def primary(self) -> str:
        return PRIMARY["binary" if self.data.binary else "continuous"]

    @property
    def metric_names(self) -> tuple[str, ...]:
        return METRICS["binary" if self.data.binary else "continuous"]

    def consensus_edges(self) -> pd.DataFrame:
        return self.edge_table[self.edge_table["consensus"]].reset_index(drop=True)


def prepare_prediction(spec: PredictSpec, table: EdgeTable, variables: pd.DataFrame, *,
                       resolve_session: Callable[[str], str] = lambda s: s) -> PreparedPrediction:
    """Subjects, target, confounds and edges of a prediction; every check that can fail before
    the cross-validation (so ``inspect`` can run it on a table of dummy values).

    Raises
    ------
    PredictError
        An unknown variable, a session not in the table, a target with fewer than two classes
        (binary) or that does not vary, fewer subjects than folds (or, binary, a class with
        fewer subjects than folds).
    """
    where = f"prediction {spec.name!r}"
    unknown = sorted({spec.target, *spec.confounds} - set(variables.columns))
    if unknown:
        raise PredictError(f"{where} uses unknown variable(s) {', '.join(unknown)} "
                           f"(known: {', '.join(sorted(variables.columns))})")
    try:
        subjects, dropped = select_subjects(spec, variables, what="prediction")
        data_table, left_out = select_rows(spec.name, table, subjects, session=spec.session, pair=spec.difference,
                                           resolve_session=resolve_session, what="prediction",
                                           modes="session or difference")
    except DesignError as exc:
        raise PredictError(str(exc)) from None
    dropped += left_out
    values, used_rows = data_table.values, data_table.rows
    ids = used_rows["participant_id"].tolist()
    frame = variables.loc[ids]
    target = pd.to_numeric(frame[spec.target], errors="coerce")
    if frame[spec.target].notna().sum() and target.notna().sum() == 0:
        raise PredictError(f"{where}: target {spec.target!r} is not numeric (values such as "
                           f"{frame[spec.target].dropna().iloc[0]!r}); code it as a number or a 0/1 variable")
    confounds, confound_names = covariate_columns(frame, spec.confounds)
    y = target.to_numpy(dtype=float)
    ok = np.isfinite(y) & np.all(np.isfinite(confounds), axis=1)
    for subject, good_y, good_c in zip(ids, np.isfinite(y), np.all(np.isfinite(confounds), axis=1)):
        if not good_y:
            dropped.append(f"{subject} (no {spec.target})")
        elif not good_c:
            dropped.append(f"{subject} (missing confound)")
    values, y, confounds = values[ok], y[ok], confounds[ok]
    ids = [s for s, k in zip(ids, ok) if k]
    observed_values = np.unique(y)
    binary = spec.kind == "binary" or (spec.kind == "auto" and set(observed_values.tolist()) <= {0.0, 1.0})
    n = len(y)
    if binary:
        if not set(observed_values.tolist()) <= {0.0, 1.0}:
            raise PredictError(f"{where}: a binary target must hold 0 and 1; {spec.target!r} holds "
                               f"{', '.join(f'{v:g}' for v in observed_values[:6])}")
        counts = {int(c): int(np.sum(y == c)) for c in (0, 1)}
        if min(counts.values()) == 0:
            raise PredictError(f"{where}: target {spec.target!r} has only one class among the {n} subjects used "
                               f"({counts[0]} x 0, {counts[1]} x 1); a classifier needs both")
        if spec.cv == "kfold" and min(counts.values()) < spec.folds:
            raise PredictError(f"{where}: the smaller class of {spec.target!r} has {min(counts.values())} subjects, "
                               f"fewer than the {spec.folds} folds ({counts[0]} x 0, {counts[1]} x 1); "
                               f"lower folds or use cv = \"loo\"")
    elif observed_values.size < 2:
        raise PredictError(f"{where}: target {spec.target!r} does not vary among the {n} subjects used")
    if spec.model == "logistic":
        if not binary:
            raise PredictError(f"{where}: model 'logistic' needs a binary (0/1) target; {spec.target!r} is continuous "
                               f"(use model = \"ridge\" or \"cpm\")")
        # its penalty is tuned by 5 stratified folds inside each training fold
        train_share = (spec.folds - 1) / spec.folds if spec.cv == "kfold" else (n - 1) / n
        if min(counts.values()) * train_share < 5:
            raise PredictError(f"{where}: model 'logistic' tunes its penalty with 5 stratified folds inside each "
                               f"training fold, and the smaller class of {spec.target!r} ({min(counts.values())} "
                               f"subjects) leaves fewer than 5 in a training fold; use model = \"ridge\" or \"cpm\"")
    if n < max(spec.folds if spec.cv == "kfold" else 3, 3):
        raise PredictError(f"{where}: {n} subjects with a target and confounds, fewer than the "
                           f"{spec.folds if spec.cv == 'kfold' else 3} needed (left out: {'; '.join(dropped) or 'none'})")
    notes = []
    varying = np.ptp(values, axis=0) > 0
    if not varying.all():
        constant = table.edges.loc[~varying]
        shown = ", ".join(f"{a}-{b}" for a, b in zip(constant["name_i"][:5], constant["name_j"][:5]))
        notes.append(f"{int((~varying).sum())} edge(s) constant over the {n} subjects left out ({shown}"
                     f"{', ...' if (~varying).sum() > 5 else ''})")
    if not varying.any():
        raise PredictError(f"{where}: every edge is constant over the {n} subjects used")
    if n < 40:
        notes.append(f"N = {n}: cross-validated estimates at this sample size are imprecise (see the interval)")
    edges = table.edges.loc[varying].reset_index(drop=True)
    X = np.hstack([confounds, values[:, varying]])
    settings = CVSettings(model=spec.model, binary=binary, n_confounds=confounds.shape[1], folds=spec.folds,
                          repeats=spec.repeats if spec.cv == "kfold" else 1, loo=spec.cv == "loo", seed=spec.seed,
                          threshold=spec.threshold, network=spec.network)
    return PreparedPrediction(X=X, y=y, rows=pd.DataFrame({"participant_id": ids}), edges=edges,
                              confounds=tuple(confound_names), binary=binary, dropped=tuple(dropped),
                              notes=tuple(notes), settings=settings)


def _edge_table(data: PreparedPrediction, cv: CrossValidation, spec: PredictSpec) -> pd.DataFrame:
    chosen = cv.selected
    table = data.edges[["edge", "node_i", "node_j", "name_i", "name_j"]].copy()
    mean = chosen.mean(axis=0) if chosen.size else np.zeros(len(table))
    sign = np.sign(mean)
    if spec.model == "cpm":
        fraction = np.mean(chosen != 0, axis=0) if chosen.size else np.zeros(len(table))
    else:  # every edge has a weight: how often its sign agrees with the mean's
        fraction = np.mean(np.sign(chosen) == sign, axis=0) if chosen.size else np.zeros(len(table))
    table["fraction"] = fraction
    table["sign"] = sign.astype(int)
    table["mean_weight"] = mean
    table["consensus"] = (fraction >= spec.consensus) & (sign != 0) if spec.model == "cpm" else False
    return table


def run_prediction(spec: PredictSpec, table: EdgeTable, variables: pd.DataFrame, *,
                   resolve_session: Callable[[str], str] = lambda s: s, n_jobs: int | None = None) -> PredictionResult:
    """Run one declared prediction: cross-validation, permutation test, bootstrap, edges."""
    data = prepare_prediction(spec, table, variables, resolve_session=resolve_session)
    cv = cross_validate(data.X, data.y, data.settings)
    observed = metrics(data.y, cv, data.binary)
    names = METRICS["binary" if data.binary else "continuous"]
    if spec.n_perm:
        null = permutation_null(data.X, data.y, data.settings, spec.n_perm, n_jobs=n_jobs)
        p = permutation_p(observed, null, data.binary)
    else:
        null, p = np.empty((0, len(names))), {k: np.nan for k in names}
    ci = bootstrap_intervals(data.y, cv, data.binary, n_boot=spec.n_boot, seed=spec.seed) if spec.n_boot else {}
    primary = PRIMARY["binary" if data.binary else "continuous"]
    chance = 0.5 if data.binary else 0.0
    if observed[primary] < chance:
        data = replace(data, notes=data.notes + (
            f"{primary} = {observed[primary]:.3f} is below chance ({chance:g}): cross-validation without "
            f"predictive information gives this (each training fold's mean moves against its test subjects), "
            f"not a reversed effect; the permutation p, not the interval, is the test",))
    return PredictionResult(spec=spec, data=data, cv=cv, observed=observed, p=p, ci=ci, null=null,
                            edge_table=_edge_table(data, cv, spec))
