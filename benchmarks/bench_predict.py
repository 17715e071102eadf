"""Benchmark: cross-validated prediction from the connectome (icanets.predict).

Three tables:

1. **Cost at the reference study's size** (patients with TP3: 51, 172 nodes -> 14,706 edges):
   seconds per permutation of the whole procedure for CPM and ridge, beside scikit-learn's
   ``permutation_test_score`` with the same pipeline and one repeat of the same folds (the
   peer: it permutes the target under fixed folds), measured in the same run; and the time of
   the default 1000 permutations extrapolated from those.
2. **Planted effect**: studies where the baseline FC of 3 edges (of 378, a 28-node netmat)
   determines the outcome (correlation 0.6 or 0.9 with their sum), at N = 25, 50, 100: the
   cross-validated r, its bootstrap interval, the permutation p and whether the consensus
   edges hold the planted ones; the oracle is the correlation of the outcome with the true sum
   of the planted edges.
3. **Null studies**: no effect, N = 25 (the demo's size): the fraction of permutation p below
   0.05 (nominal 0.05) and the mean cross-validated r, beside a leaky variant that selects
   edges on all subjects before cross-validating.

Usage:
    python benchmarks/bench_predict.py [--perm 20] [--nulls 100] [--null-perm 99]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import stats
from sklearn.model_selection import permutation_test_score

from icanets.predict import (CVSettings, bootstrap_intervals, cross_validate, cv_splits, metrics, permutation_null,
                             permutation_p)


def _edges(rng, n, n_edges):
    return rng.normal(size=(n, n_edges))


def cost_table(n_perm: int) -> None:
    rng = np.random.default_rng(0)
    n, n_edges = 51, 172 * 171 // 2
    X = np.hstack([rng.normal(size=(n, 2)), _edges(rng, n, n_edges)])
    y = X[:, 2:5].sum(axis=1) + rng.normal(size=n)
    print(f"1. Cost at the reference size: N = {n}, {n_edges} edges, 2 confounds, {n_perm} permutations timed")
    print(f"{'model':<8}{'icanets s/perm (5x5-fold)':>27}{'icanets s/perm (1x5-fold)':>27}"
          f"{'sklearn s/perm (1x5-fold)':>27}{'ratio':>8}{'1000 perms, 5x5 (min)':>24}")
    for model in ("cpm", "ridge"):
        settings = CVSettings(model=model, n_confounds=2, folds=5, repeats=5)
        one = CVSettings(model=model, n_confounds=2, folds=5, repeats=1)
        start = time.perf_counter()
        permutation_null(X, y, settings, n_perm)
        full = (time.perf_counter() - start) / n_perm
        start = time.perf_counter()
        permutation_null(X, y, one, n_perm)
        single = (time.perf_counter() - start) / n_perm
        start = time.perf_counter()
        permutation_test_score(one.pipeline(n_edges), X, y, cv=cv_splits(y, one)[0], n_permutations=n_perm,
                               random_state=0, scoring="r2")
        peer = (time.perf_counter() - start) / (n_perm + 1)
        print(f"{model:<8}{full:>27.3f}{single:>27.3f}{peer:>27.3f}{single / peer:>8.2f}{full * 1000 / 60:>24.1f}")


def planted_table(n_perm: int) -> None:
    print(f"\n2. Planted effect: 3 of 378 edges set the outcome (its correlation with their sum: the oracle r), "
          f"CPM and ridge, 5x5-fold, {n_perm} permutations")
    print(f"{'N':>5}{'effect':>8}{'model':>7}{'oracle r':>10}{'cv r':>8}{'95 % CI':>18}{'p':>8}"
          f"{'planted in consensus':>22}")
    for weight in (0.6, 0.9):
        for n in (25, 50, 100):
            rng = np.random.default_rng(n)
            edges = _edges(rng, n, 378)
            truth = edges[:, [3, 77, 200]].sum(axis=1) / np.sqrt(3)
            y = weight * truth + np.sqrt(1 - weight**2) * rng.normal(size=n)
            oracle = np.corrcoef(truth, y)[0, 1]
            X = np.hstack([rng.normal(size=(n, 1)), edges])
            for model in ("cpm", "ridge"):
                settings = CVSettings(model=model, n_confounds=1, folds=5, repeats=5)
                cv = cross_validate(X, y, settings)
                observed = metrics(y, cv, False)
                p = permutation_p(observed, permutation_null(X, y, settings, n_perm), False)["r"]
                low, high = bootstrap_intervals(y, cv, False, n_boot=1000)["r"]
                found = "-"
                if model == "cpm":
                    fraction = np.mean(cv.selected != 0, axis=0)
                    found = f"{int(np.sum(fraction[[3, 77, 200]] >= 0.9))}/3"
                print(f"{n:>5}{weight:>8.1f}{model:>7}{oracle:>10.2f}{observed['r']:>8.2f}"
                      f"{f'[{low:.2f}, {high:.2f}]':>18}{p:>8.3f}{found:>22}")
    print("(ridge spreads its weight over all 378 edges: with 3 informative ones it predicts little at these N,"
          " and its cross-validated r can fall below 0, as predicting each fold's training mean does)")


def null_table(n_nulls: int, n_perm: int) -> None:
    print(f"\n3. Null studies: N = 25, 378 edges, no effect, CPM 1x5-fold, {n_nulls} studies x {n_perm} permutations")
    rng = np.random.default_rng(20261201)
    ps, rs, leaky = [], [], []
    settings = CVSettings(model="cpm", n_confounds=0, folds=5, repeats=1)
    for k in range(n_nulls):
        X = _edges(rng, 25, 378)
        y = rng.normal(size=25)
        cv = cross_validate(X, y, settings, keep_selected=False)
        observed = metrics(y, cv, False)
        null = permutation_null(X, y, CVSettings(**{**settings.__dict__, "seed": k}), n_perm, n_jobs=1)
        ps.append(permutation_p(observed, null, False)["r"])
        rs.append(observed["r"])
        r_all, p_all = np.array([stats.pearsonr(X[:, j], y) for j in range(X.shape[1])]).T
        strength = np.column_stack([X[:, (p_all < 0.01) & (r_all > 0)].sum(axis=1),
                                    X[:, (p_all < 0.01) & (r_all < 0)].sum(axis=1)])
        preds = np.empty(25)
        for train, test in cv_splits(y, settings)[0]:
            design = np.column_stack([np.ones(train.size), strength[train]])
            coef = np.linalg.lstsq(design, y[train], rcond=None)[0]
            preds[test] = np.column_stack([np.ones(test.size), strength[test]]) @ coef
        leaky.append(np.corrcoef(preds, y)[0, 1])
    ps = np.array(ps)
    print(f"{'procedure':<34}{'mean cv r':>11}{'p < 0.05':>10}")
    print(f"{'icanets (selection in each fold)':<34}{np.mean(rs):>11.3f}{np.mean(ps < 0.05):>10.3f}")
    print(f"{'leaky (selection on all subjects)':<34}{np.nanmean(leaky):>11.3f}{'-':>10}")
    print(f"KS test of the icanets p against uniform: p = {stats.kstest(ps, 'uniform').pvalue:.3f} "
          f"(p takes values k/{n_perm + 1}, so a few hundredths of KS distance are its discreteness)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--perm", type=int, default=20, help="permutations timed at the reference size")
    parser.add_argument("--planted-perm", type=int, default=199)
    parser.add_argument("--nulls", type=int, default=100)
    parser.add_argument("--null-perm", type=int, default=99)
    args = parser.parse_args(argv)
    cost_table(args.perm)
    planted_table(args.planted_perm)
    null_table(args.nulls, args.null_perm)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
