"""Calibration of the permutation GLM under simulated nulls (the larger version of the tests).

For each scheme, many null datasets; prints the FWE false-positive rate (any edge with
p_FWE <= 0.05) with its 95 % binomial interval, which must contain 0.05, and a
Kolmogorov-Smirnov test of the uncorrected p-values against the uniform distribution.

Usage: python benchmarks/bench_calibration.py [--datasets 2000] [--perm 200] [--edges 30]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from scipy import stats

from icanets.glm import Design, Exchangeability, permutation_glm


def correlated_nuisance(rng, n_edges):
    n = 30
    group = np.repeat([1.0, 0.0], 15)
    age = 0.8 * group + rng.normal(size=n)
    x = np.column_stack([np.ones(n), group, age])
    y = 2.0 * age[:, None] + rng.normal(size=(n, n_edges))
    return y, Design(matrix=x, columns=("c", "g", "age"), contrasts=np.array([[0, 1.0, 0]]),
                     contrast_names=("g",)), Exchangeability()


def sign_flips(rng, n_edges):
    y = rng.standard_t(5, size=(16, n_edges))
    return y, Design(matrix=np.ones((16, 1)), columns=("m",), contrasts=np.array([[1.0]]), contrast_names=("m",)), \
        Exchangeability(permute=False, flip=True)


def within_blocks(rng, n_edges):
    blocks = np.repeat(np.arange(6), 4)
    cond = np.tile([1.0, 0, 1, 0], 6)
    x = np.column_stack([cond, np.eye(6)[blocks]])
    y = rng.normal(0, 2, 6)[blocks][:, None] + rng.normal(size=(24, n_edges))
    design = Design(matrix=x, columns=("cond", *[f"b{k}" for k in range(6)]), contrasts=np.r_[1.0, np.zeros(6)][None],
                    contrast_names=("cond",), blocks=blocks)
    return y, design, Exchangeability(blocks=blocks)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=int, default=2000)
    parser.add_argument("--perm", type=int, default=200)
    parser.add_argument("--edges", type=int, default=30)
    args = parser.parse_args(argv)
    print(f"permutation GLM calibration: {args.datasets} null datasets per scheme, {args.perm} permutations, "
          f"{args.edges} edges, nominal FWE 0.05")
    print(f"{'scheme':<40}{'FWE rate':>9}{'95% CI':>18}{'contains 0.05':>15}{'KS p (p_unc)':>14}{'seconds':>9}")
    for name, make in [("free permutation, correlated nuisance", correlated_nuisance),
                       ("sign flips, heavy-tailed", sign_flips), ("within blocks, block effects", within_blocks)]:
        rng = np.random.default_rng(0)
        start = time.perf_counter()
        hits, first = 0, []
        for k in range(args.datasets):
            y, design, scheme = make(rng, args.edges)
            result = permutation_glm(y, design, n_perm=args.perm, exchangeability=scheme, seed=k, n_jobs=1)
            hits += bool(np.any(result.contrasts[0].p_fwe <= 0.05))
            first.append(result.contrasts[0].p_unc[0])
        rate = hits / args.datasets
        ci = stats.binomtest(hits, args.datasets).proportion_ci(0.95)
        jitter = np.random.default_rng(1).uniform(-1, 0, len(first)) / args.perm
        ks = stats.kstest(np.array(first) + jitter, "uniform").pvalue
        ok = ci.low <= 0.05 <= ci.high
        print(f"{name:<40}{rate:>9.4f}{f'[{ci.low:.4f}, {ci.high:.4f}]':>18}{'yes' if ok else 'NO':>15}{ks:>14.3f}"
              f"{time.perf_counter() - start:>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
