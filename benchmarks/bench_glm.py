"""Benchmark: the permutation GLM at the reference study's size, against nilearn.

Group case: N = 101 (40 controls, 61 patients), E = 14,706 edges (172 nodes), regressors
intercept + group + age + sex, 5,000 permutations, Freedman-Lane, two-tailed.
Paired case: N = 51 differences, sign flipping, 5,000 flips, two-tailed.
Targets on 2 cores: <= 1.0 s (group), <= 0.5 s (paired), peak memory <= 2 GB, p-values
agreeing with nilearn.mass_univariate.permuted_ols within Monte-Carlo error.

Usage: python benchmarks/bench_glm.py [--perm 5000] [--edges 14706] [--skip-nilearn]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc

import numpy as np
import pandas as pd

from icanets.glm import Design, Exchangeability, design_from_formula, permutation_glm


def gemm_rate() -> float:
    """numpy's double-precision GEMM rate (GFLOP/s) on a 2000 x 2000 product, best of 3."""
    a = np.random.default_rng(0).random((2000, 2000))
    best = np.inf
    for _ in range(3):
        start = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - start)
    return 2 * 2000**3 / best / 1e9


def timed(function, repeats):
    best, out = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        out = function()
        best = min(best, time.perf_counter() - start)
    return best, out


def peak_memory(function) -> float:
    """Peak memory (MB) allocated while running ``function`` (tracemalloc: numpy buffers included)."""
    tracemalloc.start()
    function()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 1e6


def agreement(ours: np.ndarray, theirs: np.ndarray, n_perm: int) -> tuple[float, float]:
    """Largest |difference| of p-values, and the fraction within 3 Monte-Carlo SDs (plus 2/n_perm)."""
    p = (ours + theirs) / 2
    bound = 3 * np.sqrt(2 * p * (1 - p) / n_perm) + 2 / n_perm
    diff = np.abs(ours - theirs)
    return float(diff.max()), float(np.mean(diff <= bound))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--perm", type=int, default=5000)
    parser.add_argument("--edges", type=int, default=14706)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-nilearn", action="store_true")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    n_perm, n_edges = args.perm, args.edges

    # ---- group case
    n = 101
    data = pd.DataFrame({"group": np.repeat(["HC", "MDD"], [40, 61]), "age": rng.normal(37, 11, n),
                         "sex": rng.choice(["F", "M"], n)})
    design = design_from_formula("~ group + age + sex", data, {"MDD-HC": "group[T.MDD]"})
    y = rng.normal(size=(n, n_edges)) + 0.02 * data["age"].to_numpy()[:, None]
    y[:, :30] += 0.9 * (data["group"] == "MDD").to_numpy()[:, None]  # planted effects
    group_time, group = timed(lambda: permutation_glm(y, design, n_perm=n_perm, seed=0), args.repeats)
    group_mem = peak_memory(lambda: permutation_glm(y, design, n_perm=n_perm, seed=0))

    # ---- paired case
    n_pairs = 51
    diffs = rng.standard_normal((n_pairs, n_edges))
    diffs[:, :30] += 0.8
    paired_design = Design(matrix=np.ones((n_pairs, 1)), columns=("mean",), contrasts=np.array([[1.0]]),
                           contrast_names=("TP1-TP3",))
    flips = Exchangeability(permute=False, flip=True)
    paired_time, paired = timed(lambda: permutation_glm(diffs, paired_design, n_perm=n_perm, exchangeability=flips,
                                                        seed=0), args.repeats)
    paired_mem = peak_memory(lambda: permutation_glm(diffs, paired_design, n_perm=n_perm, exchangeability=flips))

    rate = gemm_rate()
    nominal = lambda regressors, rows: 2 * n_perm * regressors * rows * n_edges / 1e9  # noqa: E731
    group_flops, paired_flops = nominal(4, n), nominal(1, n_pairs)

    nilearn_rows = []
    if not args.skip_nilearn:
        from nilearn.mass_univariate import permuted_ols

        tested = (data["group"] == "MDD").to_numpy(dtype=float)[:, None]
        confounds = np.column_stack([data["age"], (data["sex"] == "M").astype(float)])
        start = time.perf_counter()
        out = permuted_ols(tested, y, confounding_vars=confounds, model_intercept=True, n_perm=n_perm,
                           two_sided_test=True, random_state=0, n_jobs=2, verbose=0)
        nl_group_time = time.perf_counter() - start
        t_diff = np.abs(out["t"][0] - group["MDD-HC"].statistic).max()
        g_diff, g_frac = agreement(group["MDD-HC"].p_fwe, 10 ** -out["logp_max_t"][0], n_perm)
        start = time.perf_counter()
        out_p = permuted_ols(np.ones((n_pairs, 1)), diffs, model_intercept=False, n_perm=n_perm,
                             two_sided_test=True, random_state=0, n_jobs=2, verbose=0)
        nl_paired_time = time.perf_counter() - start
        p_diff, p_frac = agreement(paired["TP1-TP3"].p_fwe, 10 ** -out_p["logp_max_t"][0], n_perm)
        nilearn_rows = [(nl_group_time, t_diff, g_diff, g_frac), (nl_paired_time, None, p_diff, p_frac)]

    print(f"permutation GLM benchmark: {n_perm} permutations, {n_edges} edges, two-tailed, Freedman-Lane")
    print(f"cores available: {os.cpu_count()}, numpy {np.__version__}; numpy GEMM (2000 x 2000, float64): "
          f"{rate:.1f} GFLOP/s")
    header = f"{'case':<34}{'seconds':>9}{'target':>8}{'peak MB':>9}{'GFLOP/s':>9}{'% GEMM':>8}"
    print(header)
    for name, seconds, target, mem, flops in [
        ("group: N=101, 4 regressors", group_time, 1.0, group_mem, group_flops),
        ("paired: N=51, sign flips", paired_time, 0.5, paired_mem, paired_flops),
    ]:
        achieved = flops / seconds
        print(f"{name:<34}{seconds:>9.3f}{target:>8.1f}{mem:>9.0f}{achieved:>9.1f}{100 * achieved / rate:>7.0f}%"
              f"  {'MET' if seconds <= target else 'NOT MET'}")
    print("(GFLOP/s counts the nominal 2 x n_perm x n_regressors x N x E; icanets skips the intercept's rows, "
          "which relabellings leave unchanged, so it does less work than that)")
    print(f"exhaustive: group {group.exhaustive}, paired {paired.exhaustive}; "
          f"significant (p_FWE < 0.05): group {int(np.sum(group['MDD-HC'].p_fwe < 0.05))}, "
          f"paired {int(np.sum(paired['TP1-TP3'].p_fwe < 0.05))} of 30 planted")
    if nilearn_rows:
        (gt, t_diff, g_diff, g_frac), (pt, _, p_diff, p_frac) = nilearn_rows
        print(f"{'nilearn permuted_ols (n_jobs=2)':<34}{'seconds':>9}{'ratio':>8}{'max |dp|':>10}{'within MC':>11}")
        print(f"{'group':<34}{gt:>9.3f}{gt / group_time:>7.1f}x{g_diff:>10.4f}{100 * g_frac:>10.1f}%")
        print(f"{'paired':<34}{pt:>9.3f}{pt / paired_time:>7.1f}x{p_diff:>10.4f}{100 * p_frac:>10.1f}%")
        print(f"max |t(icanets) - t(nilearn)| = {t_diff:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
