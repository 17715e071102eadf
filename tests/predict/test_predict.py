"""Cross-validated prediction: equal to a literal scikit-learn implementation, finds a planted
effect, calibrated under the null (where a leaky variant is not), bad inputs named."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin, clone
from sklearn.linear_model import LogisticRegression, RidgeClassifierCV, RidgeCV
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from icanets.config import config_from_dict
from icanets.errors import ConfigError
from icanets.netmats.edges import EdgeTable, edge_index
from icanets.predict import (CVSettings, PredictError, cross_validate, cv_splits, metrics, permutation_null,
                             permutation_p, prepare_prediction, run_prediction)


# ---------------------------------------------------------------- a literal, naive reference
class NaiveConfounds(TransformerMixin, BaseEstimator):
    """Residualise each edge on [1, confounds], one least-squares fit per column."""

    def __init__(self, k=0):
        self.k = k

    def fit(self, X, y=None):
        design = np.column_stack([np.ones(len(X)), X[:, :self.k]])
        self.betas_ = [np.linalg.lstsq(design, X[:, j], rcond=None)[0] for j in range(self.k, X.shape[1])]
        return self

    def transform(self, X):
        design = np.column_stack([np.ones(len(X)), X[:, :self.k]])
        return np.column_stack([X[:, self.k + j] - design @ b for j, b in enumerate(self.betas_)])


class NaiveCPM(RegressorMixin, BaseEstimator):
    """Shen et al. (2017), edge by edge with scipy.stats.pearsonr and numpy.polyfit-like lstsq."""

    def __init__(self, threshold=0.01):
        self.threshold = threshold

    def fit(self, X, y):
        self.pos_, self.neg_ = [], []
        for j in range(X.shape[1]):
            if np.ptp(X[:, j]) == 0:
                continue
            r, p = stats.pearsonr(X[:, j], y)
            if p < self.threshold:
                (self.pos_ if r > 0 else self.neg_).append(j)
        cols = [c for c in (self.pos_, self.neg_) if c]
        self.cols_ = cols
        design = np.column_stack([np.ones(len(y))] + [X[:, c].sum(axis=1) for c in cols])
        self.coef_ = np.linalg.lstsq(design, y, rcond=None)[0]
        return self

    def predict(self, X):
        design = np.column_stack([np.ones(len(X))] + [X[:, c].sum(axis=1) for c in self.cols_])
        return design @ self.coef_


def _data(rng, n=48, n_edges=45, planted=(0, 5, 9), effect=1.0, binary=False, n_confounds=1):
    edges = rng.normal(size=(n, n_edges))
    confounds = rng.normal(size=(n, n_confounds))
    edges += 0.5 * confounds[:, :1]  # confounded edges
    y = effect * edges[:, list(planted)].sum(axis=1) + rng.normal(size=n)
    if binary:
        y = (y > np.median(y)).astype(float)
    return np.hstack([confounds, edges]), y


@pytest.mark.parametrize("model,binary", [("ridge", False), ("ridge", True), ("cpm", False), ("logistic", True)])
def test_equals_literal_scikit_learn_cross_val_predict(model, binary):
    rng = np.random.default_rng(3)
    X, y = _data(rng, binary=binary)
    n_edges = X.shape[1] - 1
    settings = CVSettings(model=model, binary=binary, n_confounds=1, folds=5, repeats=3, seed=7)
    cv = cross_validate(X, y, settings)
    alphas = n_edges * np.logspace(-3, 2, 11)
    if model == "ridge":
        final = RidgeClassifierCV(alphas=alphas) if binary else RidgeCV(alphas=alphas)
        literal = Pipeline([("c", NaiveConfounds(1)), ("s", StandardScaler()), ("m", final)])
    elif model == "logistic":
        inner = StratifiedKFold(n_splits=5, shuffle=True, random_state=7)
        final = GridSearchCV(LogisticRegression(max_iter=2000), {"C": list(1.0 / alphas)}, cv=inner,
                             scoring="neg_log_loss")
        literal = Pipeline([("c", NaiveConfounds(1)), ("s", StandardScaler()), ("m", final)])
    else:
        literal = Pipeline([("c", NaiveConfounds(1)), ("m", NaiveCPM(0.01))])
    for r, pairs in enumerate(cv_splits(y, settings)):
        method = "predict_proba" if model == "logistic" else "decision_function" if binary else "predict"
        expected = cross_val_predict(clone(literal), X, y.astype(int) if binary else y, cv=pairs, method=method)
        expected = expected[:, 1] if expected.ndim == 2 else expected
        np.testing.assert_allclose(cv.predictions[r], expected, rtol=0, atol=1e-10)


def test_leave_one_out_equals_literal_scikit_learn():
    from sklearn.model_selection import LeaveOneOut

    rng = np.random.default_rng(4)
    X, y = _data(rng, n=24)
    settings = CVSettings(model="cpm", n_confounds=1, loo=True, repeats=1)
    cv = cross_validate(X, y, settings)
    literal = Pipeline([("c", NaiveConfounds(1)), ("m", NaiveCPM(0.01))])
    expected = cross_val_predict(literal, X, y, cv=LeaveOneOut())
    assert cv.predictions.shape == (1, 24)
    np.testing.assert_allclose(cv.predictions[0], expected, rtol=0, atol=1e-10)


def test_folds_are_stratified_and_seeded():
    y = np.r_[np.zeros(12), np.ones(8)]
    settings = CVSettings(binary=True, folds=4, repeats=2, seed=1)
    splits = cv_splits(y, settings)
    assert [sorted(int(y[test].sum()) for _, test in pairs) for pairs in splits] == [[2, 2, 2, 2]] * 2
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(splits[0], cv_splits(y, settings)[0]))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(splits[0], splits[1]))  # repeats differ
    continuous = np.arange(40.0)  # five quantile bins of 8: every test fold holds each bin
    for _, test in cv_splits(continuous, CVSettings(folds=5, repeats=1))[0]:
        assert set(np.floor(continuous[test] / 8).astype(int).tolist()) == {0, 1, 2, 3, 4}


def test_confounds_are_fitted_on_the_training_fold_only():
    # A test subject's extreme confound must not change the residualisation learnt on the others.
    rng = np.random.default_rng(0)
    X, y = _data(rng, n=30)
    settings = CVSettings(model="ridge", n_confounds=1, folds=5, repeats=1)
    pairs = cv_splits(y, settings)[0]
    train, test = pairs[0]
    pipe = settings.pipeline(X.shape[1] - 1).fit(X[train], y[train])
    moved = X.copy()
    moved[test, 0] += 100.0
    again = settings.pipeline(X.shape[1] - 1).fit(moved[train], y[train])
    np.testing.assert_array_equal(pipe.named_steps["confounds"].coef_, again.named_steps["confounds"].coef_)


def _study(rng, n_patients=80, n_nodes=10, planted=((0, 1), (2, 5)), effect=1.5, n_controls=10):
    """An edge table (TP1, TP3) and variables where baseline FC of the planted edges sets the outcome."""
    edges = edge_index(n_nodes)
    ids = [f"sub-{i:03d}" for i in range(n_patients + n_controls)]
    values = rng.normal(size=(2 * len(ids), len(edges)))
    rows = pd.DataFrame({"participant_id": np.repeat(ids, 2), "session_id": ["ses-1", "ses-3"] * len(ids),
                         "n_runs": 1})
    positions = [int(np.flatnonzero((edges["node_i"] == i) & (edges["node_j"] == j))[0]) for i, j in planted]
    baseline = values[0::2]
    score = effect * baseline[:, positions].sum(axis=1) + rng.normal(size=len(ids))
    variables = pd.DataFrame({"group": ["MDD"] * n_patients + ["HC"] * n_controls,
                              "age": rng.integers(20, 60, len(ids)).astype(float),
                              "sex": rng.choice(["F", "M"], len(ids)),
                              "hdrs_change_pct": 50 + 15 * score,
                              "remitter": (score > np.median(score[:n_patients])).astype(float)}, index=ids)
    variables.index.name = "participant_id"
    variables.loc[variables["group"] == "HC", ["hdrs_change_pct", "remitter"]] = np.nan
    return EdgeTable(values, rows, edges), variables, positions


def _spec(**body):
    """A [predict.p] table over the defaults below (a key given as None is left out)."""
    table = {"target": "hdrs_change_pct", "session": "TP1", "subset": "group == 'MDD'", "confounds": ["age", "sex"],
             "n_perm": 99, "n_boot": 200, "repeats": 3, **body}
    config = config_from_dict({"sessions": {"roles": {"TP1": "ses-1", "TP3": "ses-3"}},
                               "predict": {"p": {k: v for k, v in table.items() if v is not None}}})
    return config.predict["p"], config.resolve_session


@pytest.mark.parametrize("model,target", [("cpm", "hdrs_change_pct"), ("ridge", "hdrs_change_pct"),
                                          ("cpm", "remitter"), ("ridge", "remitter")])
def test_planted_baseline_edges_predict_the_outcome(model, target):
    rng = np.random.default_rng(11)
    table, variables, positions = _study(rng)
    spec, resolve = _spec(model=model, target=target)
    result = run_prediction(spec, table, variables, resolve_session=resolve)
    assert result.data.binary == (target == "remitter")
    assert len(result.data.y) == 80 and not result.data.dropped
    primary = result.primary
    print(model, target, result.observed, result.p, result.ci)
    assert result.p[primary] < 0.05
    assert result.observed[primary] > (0.4 if primary == "r" else 0.65)
    low, high = result.ci[primary]
    assert low < result.observed[primary] < high
    if model == "cpm":
        consensus = set(result.consensus_edges()["edge"])
        assert {int(table.edges.iloc[p]["edge"]) for p in positions} <= consensus


def test_change_between_sessions_predicts_from_second_minus_first():
    rng = np.random.default_rng(6)
    table, variables, _ = _study(rng)
    spec, resolve = _spec(difference=["TP1", "TP3"], session=None, n_perm=0, n_boot=0)
    data = prepare_prediction(spec, table, variables, resolve_session=resolve)
    first = table.values[0::2][:80]  # the patients' ses-1 rows, then their ses-3 rows
    second = table.values[1::2][:80]
    np.testing.assert_allclose(data.X[:, 2:], second - first)
    assert data.rows["participant_id"].tolist() == [f"sub-{i:03d}" for i in range(80)]


def test_missing_outcomes_are_left_out_and_reported():
    rng = np.random.default_rng(2)
    table, variables, _ = _study(rng)
    variables.loc["sub-003", "hdrs_change_pct"] = np.nan
    variables.loc["sub-004", "age"] = np.nan
    spec, resolve = _spec(n_perm=0, n_boot=0)
    data = prepare_prediction(spec, table, variables, resolve_session=resolve)
    assert len(data.y) == 78
    assert "sub-003 (no hdrs_change_pct)" in data.dropped and "sub-004 (missing confound)" in data.dropped
    assert data.confounds == ("age", "sex[M]")


def test_bad_inputs_are_named():
    rng = np.random.default_rng(2)
    table, variables, _ = _study(rng, n_patients=12)
    spec, resolve = _spec(target="remitter", folds=5)
    variables.loc[variables.index[:12], "remitter"] = [1.0] * 10 + [0.0] * 2
    with pytest.raises(PredictError, match="smaller class of 'remitter' has 2 subjects, fewer than the 5 folds"):
        prepare_prediction(spec, table, variables, resolve_session=resolve)
    variables.loc[variables.index[:12], "remitter"] = 1.0
    with pytest.raises(PredictError, match="only one class among the 12 subjects"):
        prepare_prediction(spec, table, variables, resolve_session=resolve)
    spec, resolve = _spec(model="logistic")
    with pytest.raises(PredictError, match="model 'logistic' needs a binary"):
        prepare_prediction(spec, table, variables, resolve_session=resolve)
    spec, resolve = _spec(model="logistic", target="remitter", folds=2)
    variables.loc[variables.index[:12], "remitter"] = [1.0] * 6 + [0.0] * 6
    with pytest.raises(PredictError, match="leaves fewer than 5 in a training fold"):
        prepare_prediction(spec, table, variables, resolve_session=resolve)
    spec, resolve = _spec(subset="group == 'MDD' and age < 0")
    with pytest.raises(PredictError, match="selects no subjects"):
        prepare_prediction(spec, table, variables, resolve_session=resolve)
    spec, resolve = _spec(folds=5)
    few = variables.copy()
    few.loc[few.index[2:], "hdrs_change_pct"] = np.nan
    with pytest.raises(PredictError, match="2 subjects with a target and confounds, fewer than the 5 needed"):
        prepare_prediction(spec, table, few, resolve_session=resolve)
    spec, resolve = _spec(target="hdrs")
    with pytest.raises(PredictError, match="unknown variable"):
        prepare_prediction(spec, table, variables, resolve_session=resolve)
    spec, resolve = _spec(target="group")
    with pytest.raises(PredictError, match="not numeric"):
        prepare_prediction(spec, table, variables, resolve_session=resolve)
    spec, resolve = _spec(session="ses-2")
    with pytest.raises(PredictError, match="session 'ses-2'"):
        prepare_prediction(spec, table, variables, resolve_session=resolve)
    flat = EdgeTable(np.where(np.arange(table.values.shape[1]) < 3, 1.0, table.values), table.rows, table.edges)
    spec, resolve = _spec(n_perm=0, n_boot=0)
    data = prepare_prediction(spec, flat, variables, resolve_session=resolve)
    assert data.X.shape[1] == 2 + table.values.shape[1] - 3
    assert any("3 edge(s) constant" in note and "node0-node1" in note for note in data.notes)


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="predict.p.*target"):
        config_from_dict({"predict": {"p": {"session": "ses-1"}}})
    with pytest.raises(ConfigError, match="model.*must be ridge, cpm or logistic"):
        config_from_dict({"predict": {"p": {"target": "x", "model": "svm"}}})
    with pytest.raises(ConfigError, match="folds.*at least 2"):
        config_from_dict({"predict": {"p": {"target": "x", "folds": 1}}})
    with pytest.raises(ConfigError, match="unknown key"):
        config_from_dict({"predict": {"p": {"target": "x", "n_folds": 5}}})


def test_null_does_not_depend_on_workers_and_replays():
    rng = np.random.default_rng(5)
    X, y = _data(rng, n=30, effect=0.0)
    settings = CVSettings(model="cpm", n_confounds=1, folds=5, repeats=2, seed=4)
    one = permutation_null(X, y, settings, 12, n_jobs=1)
    two = permutation_null(X, y, settings, 12, n_jobs=2)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, permutation_null(X, y, settings, 12, n_jobs=2))


def test_null_on_a_dask_cluster_equals_in_process():
    pytest.importorskip("dask.distributed")
    from icanets.parallel import dask_client, use_dask

    rng = np.random.default_rng(9)
    X, y = _data(rng, n=30, effect=0.0)
    settings = CVSettings(model="cpm", n_confounds=1, folds=5, repeats=1, seed=2)
    local = permutation_null(X, y, settings, 8, n_jobs=1)
    environment = dict(os.environ)
    with dask_client("local:2") as client, use_dask(client):
        distributed = permutation_null(X, y, settings, 8)
    np.testing.assert_array_equal(local, distributed)
    assert dict(os.environ) == environment  # the cluster's BLAS settings do not leak into this process


def _leaky_r(X, y, settings, threshold=0.01):
    """Edges selected on all subjects, then cross-validated: the mistake the issue warns of."""
    edges = X[:, settings.n_confounds:]
    r = np.array([stats.pearsonr(edges[:, j], y)[0] for j in range(edges.shape[1])])
    p = np.array([stats.pearsonr(edges[:, j], y)[1] for j in range(edges.shape[1])])
    strength = np.column_stack([edges[:, (p < threshold) & (r > 0)].sum(axis=1),
                                edges[:, (p < threshold) & (r < 0)].sum(axis=1)])
    preds = np.empty(len(y))
    for train, test in cv_splits(y, settings)[0]:
        design = np.column_stack([np.ones(len(train)), strength[train]])
        coef = np.linalg.lstsq(design, y[train], rcond=None)[0]
        preds[test] = np.column_stack([np.ones(len(test)), strength[test]]) @ coef
    return np.corrcoef(preds, y)[0, 1]


@pytest.mark.slow
def test_null_studies_give_uniform_p_and_chance_metric_while_a_leaky_variant_does_not():
    """200 simulated null studies: permutation p uniform (KS), mean cross-validated r at chance;
    the leaky variant (selection on all subjects) is optimistic on the same studies."""
    settings = CVSettings(model="cpm", n_confounds=1, folds=5, repeats=1, seed=0, threshold=0.05)
    rng = np.random.default_rng(20261201)
    ps, rs, leaky = [], [], []
    n_perm = 49
    for study in range(200):
        X, y = _data(rng, n=40, n_edges=45, effect=0.0)
        cv = cross_validate(X, y, settings, keep_selected=False)
        observed = metrics(y, cv, False)
        null = permutation_null(X, y, settings.__class__(**{**settings.__dict__, "seed": study}), n_perm, n_jobs=1)
        p = permutation_p(observed, null, False)["r"]
        ps.append(p - rng.uniform() / (n_perm + 1))  # randomised: exactly uniform under the null
        rs.append(observed["r"])
        leaky.append(_leaky_r(X, y, settings, threshold=0.05))
    ks = stats.kstest(ps, "uniform")
    print(f"KS p = {ks.pvalue:.3f}, mean r {np.mean(rs):.3f}, leaky mean r {np.mean(leaky):.3f}, "
          f"fraction p < 0.05: {np.mean(np.array(ps) < 0.05):.3f}")
    assert ks.pvalue > 0.01
    assert abs(np.mean(rs)) < 0.1 and np.mean(np.array(ps) < 0.05) < 0.09
    assert np.mean(leaky) > 0.2 and np.mean(leaky) - np.mean(rs) > 0.2


def test_ridge_null_study_is_at_chance_while_leaky_selection_is_not():
    rng = np.random.default_rng(8)
    rs, aucs = [], []
    for _ in range(20):
        X, y = _data(rng, n=40, n_edges=45, effect=0.0)
        rs.append(metrics(y, cross_validate(X, y, CVSettings(model="ridge", n_confounds=1, repeats=1)), False)["r"])
        yb = (y > np.median(y)).astype(float)
        aucs.append(metrics(yb, cross_validate(X, yb, CVSettings(model="ridge", binary=True, n_confounds=1,
                                                                 repeats=1)), True)["auc"])
    assert abs(np.mean(rs)) < 0.15 and abs(np.mean(aucs) - 0.5) < 0.08
