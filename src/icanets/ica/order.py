"""Model order: how many components the group ICA should estimate.

Two families of estimates, both computed by the ICA stage and written beside its output:

- Minka's PPCA evidence (``laplace``, ``bic``) on the eigenspectrum of temporally concatenated
  runs, with voxels as samples (what MELODIC does);
- ``consistency``: how many group directions are shared by more of the runs than chance allows.
  Each run enters the group PCA as its whitened principal subspace (see
  :func:`icanets.ica.pca.run_subspace`); the group eigenvalues then measure, for each
  direction, the mean squared projection onto the runs' subspaces (1: in every run). Random
  subspaces of ``k`` dimensions among ``V`` voxels, ``n`` of them, give eigenvalues up to
  ``(k / V) (1 + sqrt(V / (n k)))^2`` (the upper edge of their Marchenko-Pastur-like bulk);
  directions above it are consistent across runs. Strong run-specific events (spikes,
  one session's misregistration) do not count, weak networks do;
- ``reproducibility`` (the default): the group PCA is computed separately on two halves of the
  subjects as well; at each candidate dimension, spatial ICA of each half gives maps, and the
  components found in both (one-to-one, ``|r| >= 0.8``) are counted. The count rises while
  real networks are added, then levels off or falls once ICA only splits them or fits noise
  (split pieces and noise maps differ between halves). Each dimension is scored by the
  components found again minus half those that are not, the scores are averaged over
  neighbouring dimensions, and the order is the best of them plus the maps there that the
  classifier's spatial rules call noise (room for structured nuisance). It needs no noise
  model, so spatially smooth noise (which inflates every estimate that treats voxels as
  independent samples, and makes noise modes consistent across runs) does not inflate it;
- information-theoretic criteria (``mdl``, ``aic``) with the i.i.d.-subsampling correction of
  Li, Adali & Calhoun (2007), as in GIFT: spatially smooth data have far fewer independent
  samples than voxels, which inflates any criterion that counts voxels as samples. The entropy
  rate of the data's spatial fields tells how far apart voxels must be to be effectively
  independent; the criteria then count only that many samples, on the eigenvalues of each run
  computed from a voxel subsample at that spacing, and the group order summarises the runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.special import gammaln

from icanets._defaults import ORDER_METHODS as _ORDER_METHODS
from icanets.ica.data import ICAError

__all__ = ["laplace_evidence", "bic_evidence", "estimate_dimension", "entropy_rate", "iid_depth",
           "itc_criteria", "run_order", "consistency_order", "reproducibility_order", "Reproducibility",
           "dimension_grid", "OrderEstimate", "ORDER_METHODS", "IID_ENTROPY"]

#: Methods of estimating the model order (defined with the other shared defaults).
ORDER_METHODS = _ORDER_METHODS

#: Entropy rate (nats per sample) of an i.i.d. unit-variance Gaussian process, 0.5 log(2 pi e).
IID_ENTROPY = 0.5 * np.log(2.0 * np.pi * np.e)


def laplace_evidence(spectrum: np.ndarray, rank: int, n_samples: int) -> float:
    """Minka's Laplace approximation to the log evidence of a rank-``rank`` PPCA model.

    Parameters
    ----------
    spectrum : ndarray
        Eigenvalues of the sample covariance, descending (all ``d`` of them).
    rank : int
    n_samples : int

    References
    ----------
    Minka TP (2000). Automatic choice of dimensionality for PCA. NIPS 13.
    """
    d = spectrum.size
    if not 1 <= rank < d:
        raise ICAError(f"rank must lie in 1..{d - 1}, got {rank}")
    k = np.arange(1, rank + 1)
    pu = -rank * np.log(2.0) + np.sum(gammaln((d - k + 1) / 2.0) - np.log(np.pi) * (d - k + 1) / 2.0)
    pl = -np.sum(np.log(spectrum[:rank])) * n_samples / 2.0
    v = max(np.finfo(float).eps, np.sum(spectrum[rank:]) / (d - rank))
    pv = -np.log(v) * n_samples * (d - rank) / 2.0
    m = d * rank - rank * (rank + 1) / 2.0
    pp = np.log(2.0 * np.pi) * (m + rank) / 2.0
    hat = spectrum.copy()
    hat[rank:] = v
    i = np.arange(rank)[:, None]
    j = np.arange(d)[None, :]
    valid = j > i
    diff = (spectrum[:rank, None] - spectrum[None, :]) * (1.0 / hat[None, :] - 1.0 / hat[:rank, None])
    pa = np.sum(np.log(np.where(valid, np.abs(diff), 1.0)) + np.where(valid, np.log(n_samples), 0.0))
    return float(pu + pl + pv + pp - pa / 2.0 - rank * np.log(n_samples) / 2.0)


def bic_evidence(spectrum: np.ndarray, rank: int, n_samples: int) -> float:
    """Minka's BIC approximation to the log evidence of a rank-``rank`` PPCA model."""
    d = spectrum.size
    if not 1 <= rank < d:
        raise ICAError(f"rank must lie in 1..{d - 1}, got {rank}")
    v = max(np.finfo(float).eps, np.sum(spectrum[rank:]) / (d - rank))
    m = d * rank - rank * (rank + 1) / 2.0
    return float(-n_samples / 2.0 * np.sum(np.log(spectrum[:rank])) - n_samples * (d - rank) / 2.0 * np.log(v)
                 - (m + rank) / 2.0 * np.log(n_samples))


def estimate_dimension(spectrum: np.ndarray, n_samples: int, *, method: str = "laplace",
                       max_rank: int | None = None) -> tuple[int, np.ndarray]:
    """The rank that maximises the PPCA evidence, and the evidence of every rank tried.

    ``spectrum``: eigenvalues, descending; ``n_samples``: independent samples behind them.
    """
    spectrum = np.asarray(spectrum, dtype=float)
    if np.any(np.diff(spectrum) > 1e-12 * spectrum[0]):
        raise ICAError("the eigenvalue spectrum must be sorted in descending order")
    function = {"laplace": laplace_evidence, "bic": bic_evidence}.get(method)
    if function is None:
        raise ICAError(f"dimension estimation method must be 'laplace' or 'bic', got {method!r}")
    top = min(max_rank or spectrum.size - 1, spectrum.size - 1)
    evidence = np.array([function(spectrum, r, n_samples) for r in range(1, top + 1)])
    return int(np.argmax(evidence)) + 1, evidence


def _parzen(m: int) -> np.ndarray:
    """Parzen lag window at lags ``0..m, -m..-1`` (FFT order)."""
    lags = np.r_[np.arange(0, m + 1), np.arange(-m, 0)]
    u = np.abs(lags) / (m + 1.0)
    return np.where(u <= 0.5, 1 - 6 * u**2 + 6 * u**3, 2 * (1 - u) ** 3)


def entropy_rate(fields: np.ndarray, mask: np.ndarray, *, lag_fraction: float = 0.25) -> float:
    """Entropy rate (nats per voxel) of the spatial fields ``(n, V)`` inside ``mask`` (3D),
    each standardised, as a stationary Gaussian random field.

    The autocorrelation is estimated over pairs of in-mask voxels at every lag (FFT), averaged
    over the fields, tapered by a separable Parzen window of half-width ``lag_fraction`` of
    each axis, and turned into a power spectrum ``S``; by Kolmogorov's formula the entropy
    rate is ``0.5 log(2 pi e) + 0.5 mean(log S)``. It equals :data:`IID_ENTROPY` for
    independent voxels and falls the smoother the fields are.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> mask = np.ones((16, 16, 16), bool)
    >>> white = rng.standard_normal((4, mask.sum()))
    >>> bool(abs(IID_ENTROPY - entropy_rate(white, mask)) < 0.01)
    True
    >>> from scipy.ndimage import gaussian_filter
    >>> smooth = np.array([gaussian_filter(w.reshape(mask.shape), 1.0).ravel() for w in white])
    >>> bool(IID_ENTROPY - entropy_rate(smooth, mask) > 0.5)
    True
    """
    mask = np.asarray(mask, dtype=bool)
    fields = np.atleast_2d(np.asarray(fields, dtype=float))
    if fields.shape[1] != mask.sum():
        raise ICAError(f"fields have {fields.shape[1]} voxels, the mask {int(mask.sum())}")
    shape = mask.shape
    padded = tuple(2 * n for n in shape)
    axes = (0, 1, 2)
    indicator = np.fft.rfftn(mask.astype(float), padded, axes=axes)
    pairs = np.fft.irfftn(indicator * np.conj(indicator), padded, axes=axes)
    acf = np.zeros(padded)
    volume = np.zeros(shape)
    used = 0
    for values in fields:
        sd = values.std()
        if sd <= 0:
            continue
        volume[mask] = (values - values.mean()) / sd
        spectrum = np.fft.rfftn(volume, padded, axes=axes)
        acf += np.fft.irfftn(spectrum * np.conj(spectrum), padded, axes=axes)
        used += 1
    if used == 0:
        raise ICAError("every field is constant; cannot estimate its smoothness")
    half = [max(2, min(n - 1, int(np.ceil(n * lag_fraction)))) for n in shape]
    index = [np.r_[np.arange(0, m + 1), np.arange(p - m, p)] for m, p in zip(half, padded)]
    counts = pairs[np.ix_(*index)]
    r = np.where(counts > 0.5, acf[np.ix_(*index)] / np.maximum(counts, 1.0), 0.0)
    r /= r[0, 0, 0]
    window = np.einsum("i,j,k->ijk", *[_parzen(m) for m in half])
    power = np.maximum(np.real(np.fft.fftn(r * window)), 1e-4)
    return float(IID_ENTROPY + 0.5 * np.mean(np.log(power)))


def iid_depth(fields: np.ndarray, mask: np.ndarray, *, tolerance: float = 0.05,
              max_depth: int = 4) -> tuple[int, list[float]]:
    """The smallest subsampling depth ``s`` (every ``s``-th voxel along each axis) at which the
    fields' entropy rate is within ``tolerance`` nats of that of i.i.d. samples (Li et al.,
    2007), and the entropy rates at depths ``1..s``."""
    rates = []
    for depth in range(1, max_depth + 1):
        grid = np.zeros(mask.shape, dtype=bool)
        grid[::depth, ::depth, ::depth] = True
        keep = grid[mask]
        sub_mask = (mask & grid)[::depth, ::depth, ::depth]
        if sub_mask.sum() < 8:
            break
        rates.append(entropy_rate(fields[:, keep], sub_mask))
        if IID_ENTROPY - rates[-1] <= tolerance:
            return depth, rates
    return len(rates), rates


def itc_criteria(eigenvalues: np.ndarray, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """MDL and AIC of a rank-``k`` signal subspace for ``k = 0 .. p-2`` (Wax & Kailath 1985, for
    real data): with ``r_k = log(arithmetic / geometric mean of the p - k smallest eigenvalues)``
    and ``m_k = 1 + p k - k (k - 1) / 2`` free parameters,
    ``MDL_k = N (p - k) r_k / 2 + m_k log(N) / 2`` and ``AIC_k = N (p - k) r_k + 2 m_k``.

    Returns
    -------
    mdl, aic : ndarray, shape (p - 1,)
        Index ``k`` holds the criterion of rank ``k``; the estimate is the argmin.
    """
    values = np.sort(np.asarray(eigenvalues, dtype=float))[::-1]
    values = values[values > values[0] * 1e-10]
    p = values.size
    if p < 2:
        raise ICAError("need at least two positive eigenvalues to choose a model order")
    logs = np.log(values)
    k = np.arange(p - 1)
    tail_sum = np.cumsum(values[::-1])[::-1][:-1]
    tail_log = np.cumsum(logs[::-1])[::-1][:-1]
    tail_n = p - k
    ratio = np.log(tail_sum / tail_n) - tail_log / tail_n
    params = 1 + p * k - k * (k - 1) / 2.0
    mdl = 0.5 * n_samples * tail_n * ratio + 0.5 * params * np.log(n_samples)
    aic = n_samples * tail_n * ratio + 2.0 * params
    return mdl, aic


def consistency_order(consistency: np.ndarray, *, n_runs: int, run_components: float,
                      n_voxels: int) -> tuple[int, float]:
    """The number of group directions more consistent across runs than random subspaces.

    Parameters
    ----------
    consistency : ndarray
        Group eigenvalues of the stacked whitened run subspaces, divided by the number of
        runs (the mean squared projection of each direction onto the runs' subspaces),
        descending.
    n_runs : int
    run_components : float
        Mean dimension ``k`` of a run's subspace.
    n_voxels : int

    Returns
    -------
    dimension : int
    edge : float
        ``(k / V) (1 + sqrt(V / (n k)))^2``: the largest eigenvalue that ``n`` random
        ``k``-dimensional subspaces of ``R^V`` give (for white noise runs the largest group
        eigenvalue found is 0.88-0.93 of it).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> from icanets.ica.pca import migp, run_subspace
    >>> shared = rng.normal(size=(3, 400))
    >>> runs = [rng.normal(size=(40, 3)) @ shared + rng.normal(size=(40, 400)) for _ in range(20)]
    >>> stack = [run_subspace(x - x.mean(0), 0.5) for x in runs]
    >>> pca = migp(stack, n_internal=80)
    >>> consistency_order(pca.eigenvalues * pca.n_timepoints / 20, n_runs=20, run_components=20, n_voxels=400)[0]
    3
    """
    c = np.asarray(consistency, dtype=float)
    k = float(run_components)
    if n_runs < 1 or k <= 0 or n_voxels < 1:
        raise ICAError("consistency order needs at least one run, a positive run dimension and voxels")
    edge = (k / n_voxels) * (1.0 + np.sqrt(n_voxels / (n_runs * k))) ** 2
    return int(np.sum(c > edge)), float(edge)


def dimension_grid(cap: int, *, fine_until: int = 40) -> list[int]:
    """Candidate dimensions for :func:`reproducibility_order`: every dimension from 5 up to
    ``fine_until``, then steps of about 15 % (so ``d`` and the next differ by little relative to
    ``d``), up to ``cap``.

    Examples
    --------
    >>> dimension_grid(100, fine_until=10)
    [5, 6, 7, 8, 9, 10, 12, 14, 16, 18, 21, 24, 28, 32, 37, 43, 49, 56, 64, 74, 85, 98, 100]
    >>> len(dimension_grid(200)), dimension_grid(200)[34:]
    (48, [39, 40, 46, 53, 61, 70, 80, 92, 106, 122, 140, 161, 185, 200])
    """
    grid, d = [], 5
    while d < cap:
        grid.append(d)
        d = d + 1 if d < fine_until else max(d + 1, int(round(d * 1.15)))
    grid.append(int(cap))
    return [g for g in grid if g >= 1]


def smoothed_scores(dimensions, scores, *, width: float = 0.1, least: int = 2) -> np.ndarray:
    """Each score averaged with those of the dimensions within ``max(least, width * d)`` of its
    own ``d`` (the candidates that differ from it by less than one component's noise).

    Examples
    --------
    >>> smoothed_scores([18, 19, 20, 21, 22, 40], [18, 19, 20, 18, 19, 30]).round(2).tolist()
    [19.0, 18.75, 18.8, 19.0, 19.0, 30.0]
    """
    d = np.asarray(dimensions, dtype=float)
    s = np.asarray(scores, dtype=float)
    reach = np.maximum(float(least), width * d)
    near = np.abs(d[:, None] - d[None, :]) <= reach[:, None]
    return (near * s[None, :]).sum(axis=1) / near.sum(axis=1)


@dataclass(frozen=True)
class Reproducibility:
    """The split-half reproducibility curve of :func:`reproducibility_order`.

    Attributes
    ----------
    dimensions : list of int
        Candidate dimensions tried (in order; every one up to 40, then steps of 15 %; the
        scan stops ``patience`` coarse steps past the best smoothed score).
    reproduced : list of float
        Components of each dimension found in both halves (one-to-one, ``|r| >= threshold``),
        the mean over ``starts`` FastICA starts.
    threshold : float
    penalty : float
        Score of a dimension: ``reproduced - penalty * (dimension - reproduced)``.
    patience : int
        The scan stopped once the dimension passed the best one by ``patience`` steps of the
        coarse grid (15 %, at least 5 each).
    best : int
        The dimension with the best smoothed score (:func:`smoothed_scores` of :attr:`scores`).
    starts : int
        FastICA starts averaged at each dimension.
    nuisance : float or None
        Components at the best dimension that the classifier's spatial rules label noise (rim,
        CSF, unstructured), the mean over the two halves' first start; the order is ``best``
        plus this, rounded up. None: not counted (the order is ``best``).
    """

    dimensions: list
    reproduced: list
    threshold: float
    penalty: float
    patience: int
    best: int = 0
    starts: int = 1
    nuisance: float | None = None
    window: float = 0.1

    @property
    def scores(self) -> list:
        return [c - self.penalty * (d - c) for d, c in zip(self.dimensions, self.reproduced)]


def _matched(a: np.ndarray, b: np.ndarray, threshold: float) -> int:
    """One-to-one pairs of rows of ``a`` and ``b`` (maps) with ``|r| >= threshold``."""
    from scipy.optimize import linear_sum_assignment

    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    a /= np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-300)
    b /= np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-300)
    similarity = np.abs(a @ b.T)
    rows, cols = linear_sum_assignment(-similarity)
    return int(np.sum(similarity[rows, cols] >= threshold))


def reproducibility_order(half_a, half_b, *, cap: int, seed: int = 0, threshold: float = 0.8,
                          penalty: float = 0.5, patience: int = 4, window: float = 0.1,
                          nuisance: Callable[[np.ndarray], int] | None = None,
                          max_iter: int = 200, starts: int = 5) -> tuple[int, Reproducibility]:
    """The model order at which spatial ICA finds the most components again in two halves of the data.

    Parameters
    ----------
    half_a, half_b : GroupPCA
        Group PCAs of two disjoint halves of the subjects.
    cap : int
        Largest dimension tried (at most the components both halves hold).
    seed : int
        FastICA's first start (the same for both halves and every dimension).
    threshold : float, default 0.8
        ``|r|`` at which a component of one half counts as found in the other.
    penalty : float, default 0.5
        Each dimension is scored by the components found in both halves minus ``penalty``
        times those that are not (``found - penalty * (d - found)``); the dimension with the
        best smoothed score (see ``window``) is the base of the order. A larger dimension wins
        only where each component it adds is found again in at least
        ``penalty / (1 + penalty)`` of cases (a third, at 0.5).
    patience : int, default 4
        The scan stops once the dimension is past the best (smoothed) one by this many steps
        of 15 %, at least 5 dimensions each (with the default, from 20 to 40, or 34 to 60).
    window : float, default 0.1
        Each score is averaged with those of the candidate dimensions within
        ``max(2, window * d)`` of ``d`` before the best is taken. The dimensions are tried one
        by one up to 40 (then in steps of 15 %): adjacent dimensions differ by a component or
        two, as much as the count moves with the FastICA starts, so the best single score is
        often a peak of that noise, and the order moved by 5 between runs of the same cohort
        on the 5-step grid used before. The smoothed score's best is a region where every
        dimension reproduces well.
    nuisance : callable, optional
        ``nuisance(maps) -> int``: how many of the z maps ``(d, V)`` (signs flipped so the
        heavier tail is positive) are structured nuisance. Called on each half's maps (first
        start) at the best dimension; the order returned is that dimension plus the
        mean count, rounded up, at most ``cap``. The stage counts the maps its classifier's
        spatial rules label noise. None: the best dimension itself.
    max_iter : int, default 200
        FastICA iterations per fit (an unconverged fit still gives maps to compare).
    starts : int, default 5
        FastICA starts (seeds ``seed, seed + 1, ...``) at each dimension; the count is their
        mean. One start's count moves by one or two components with the start, or with changes
        to the halves' PCA far below its accuracy, and one component moves the best score
        from one dimension to the next: on six cohorts, single starts gave orders 24 or 30
        for the same cohort with MIGP's arithmetic changed, the mean of five the same order.

    Returns
    -------
    dimension : int
    curve : Reproducibility

    Notes
    -----
    Real networks are found in both halves; components that fit noise come out differently
    in each, so the count of reproduced components follows the dimension while networks are
    added, then falls behind it. Beyond the networks' number the count is not flat: pieces of
    a network split alike in both halves (its hemispheres, or its position in different
    sessions) are found again, and merged or absorbed ones are lost, so the count goes up and
    down, and where it peaks says little about how many networks there are. The score asks
    each added dimension to pay for itself. On a grid of every dimension the score also jumps
    from one dimension to the next (by 2-7 on the cohorts below: ICA at ``d`` may split a
    node that it keeps whole at ``d - 1``), so a single best score is often a peak of that
    noise; the order rests on the best smoothed score instead. The best dimension counts artifacts beside
    networks, but ICA needs room beyond them for the structured variance that large
    artifacts carry once they move between sessions (a rim or CSF artifact shifted by a
    fraction of a voxel comes out as several components): with too little room, the weakest
    networks are merged into it. How much room depends on the data, so it is measured: each
    map at the best dimension that the classifier's spatial rules call noise adds one. On
    ``icanets simulate``'s realistic cohorts (six strong, misregistered artifacts), the best
    dimension is 28-34 with 7-8 noise maps, and 13-17 of 20 nodes are recovered at 24-30,
    19-20 at 36-43; on the independent cohort of ``tests/_independent_cohort.py`` (four weaker
    artifacts) it is 21-25 with one noise map, and 19-20 nodes are recovered at 22-26, 14-17
    at 36, where bilateral and misregistered nodes split. The earlier fixed margin of 20 %
    served the first and over-shot the second; the unsmoothed best on a grid of every 5
    dimensions gave the same independent cohort 26 one time and 31 another (17 nodes), the
    smoothed one 23 (20 nodes). The criterion makes no assumption about the
    noise, in particular not that voxels are independent samples.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> from icanets.ica.pca import concat_pca
    >>> maps = rng.laplace(size=(8, 2000)) ** 3  # eight sparse sources
    >>> def half(seed):
    ...     g = np.random.default_rng(seed)
    ...     return concat_pca([g.normal(size=(60, 8)) @ maps + 2 * g.normal(size=(60, 2000)) for _ in range(8)],
    ...                       n_components=40)
    >>> dimension, curve = reproducibility_order(half(1), half(2), cap=14)
    >>> 8 <= dimension <= 9, [round(c) for c in curve.reproduced[:5]]  # means of 5 starts at d = 5..9
    (True, [4, 6, 7, 8, 8])

    (8 or 9, as the last starts' counts go: the smoothed score of a sharp peak leans a third
    of its window towards the side that falls more slowly, the larger dimensions.) With two
    maps of each half counted as nuisance, the order leaves room for them:

    >>> reproducibility_order(half(1), half(2), cap=14, nuisance=lambda z: 2)[0] - curve.best
    2
    """
    from icanets.ica.ica import _fastica, signed_zmaps

    cap = int(min(cap, half_a.components.shape[0], half_b.components.shape[0]))
    if cap < 1:
        raise ICAError("reproducibility order needs at least one component in each half")
    if starts < 1:
        raise ICAError(f"reproducibility order needs at least one FastICA start, got {starts}")

    def fit(half, d, start):
        basis = half.components[:d]
        x = basis.T * np.sqrt(basis.shape[1])
        unmixing, _ = _fastica(x, d, start, max_iter, 1e-4)
        return (x @ unmixing.T).T

    dims, counts, scores = [], [], []
    for d in dimension_grid(cap):
        found = 0
        for start in range(seed, seed + starts):
            found += _matched(fit(half_a, d, start), fit(half_b, d, start), threshold)
        found = found / starts
        dims.append(d)
        counts.append(found)
        scores.append(found - penalty * (d - found))
        best = dims[int(np.argmax(smoothed_scores(dims, scores, width=window)))]
        if d >= max(best + 5 * patience, best * 1.15 ** patience):  # the best score is behind us
            break
    counted = None
    if nuisance is not None:  # the best dimension's first start again (the same fits: maps are not kept)
        counted = float(np.mean([int(nuisance(signed_zmaps(fit(half, best, seed)))) for half in (half_a, half_b)]))
    dimension = min(cap, best + int(np.ceil((counted or 0.0) - 1e-9)))
    return int(dimension), Reproducibility(dimensions=dims, reproduced=counts, threshold=threshold, penalty=penalty,
                                         patience=patience, best=int(best), starts=int(starts), nuisance=counted,
                                         window=float(window))


@dataclass(frozen=True)
class RunOrder:
    """The i.i.d.-corrected order criteria of one run.

    Attributes
    ----------
    depth : int
        Subsampling depth for effectively independent voxels.
    n_samples : int
        Voxels in the subsample.
    entropy_rates : list of float
        Entropy rate at each depth tried.
    mdl, aic : int
        The orders the two criteria choose.
    """

    depth: int
    n_samples: int
    entropy_rates: list[float]
    mdl: int
    aic: int


def run_order(data: np.ndarray, mask: np.ndarray, *, n_fields: int = 20, tolerance: float = 0.05) -> RunOrder:
    """MDL and AIC orders of one run ``(T, V)`` (preprocessed, voxels demeaned), with the
    i.i.d.-subsampling correction of Li et al. (2007).

    The subsampling depth comes from the entropy rate of ``n_fields`` evenly spaced volumes;
    the eigenvalues of the time x time covariance come from the voxels of that subsample
    (at the largest depth that leaves more voxels than time points).

    References
    ----------
    Li Y-O, Adali T, Calhoun VD (2007). Estimating the number of independent components for
    functional magnetic resonance imaging data. Human Brain Mapping 28:1251-1266.
    """
    t = data.shape[0]
    fields = data[np.unique(np.linspace(0, t - 1, min(n_fields, t)).round().astype(int))].astype(np.float64)
    depth, rates = iid_depth(fields, mask, tolerance=tolerance)
    grid = np.zeros(mask.shape, dtype=bool)
    grid[::depth, ::depth, ::depth] = True
    keep = grid[mask]
    while keep.sum() <= t and depth > 1:  # too few voxels left for the criteria: subsample less
        depth -= 1
        grid = np.zeros(mask.shape, dtype=bool)
        grid[::depth, ::depth, ::depth] = True
        keep = grid[mask]
    sample = data[:, keep].astype(np.float64)  # a subsample of the voxels (float32 runs too)
    eigenvalues = np.linalg.eigvalsh(sample @ sample.T / sample.shape[1])
    mdl, aic = itc_criteria(eigenvalues, int(keep.sum()))
    return RunOrder(depth=depth, n_samples=int(keep.sum()), entropy_rates=rates, mdl=int(np.argmin(mdl)),
                    aic=int(np.argmin(aic)))


@dataclass(frozen=True)
class OrderEstimate:
    """Every model-order estimate of a group ICA, and the one used.

    Attributes
    ----------
    method : str
        The method the dimension came from (``consistency``, ``laplace``, ``bic``, ``mdl``,
        ``aic``), or ``fixed`` when the user gave a number.
    dimension : int
        The number of components estimated.
    estimates : dict
        Method -> the order it chose (every method that was computed).
    spectrum : ndarray
        Eigenvalues of the concatenated subset of runs (descending) used by ``laplace``/``bic``.
    evidence : dict
        ``laplace``/``bic`` -> log evidence of ranks ``1..len``.
    runs : list of RunOrder
        The per-run i.i.d.-corrected criteria (``mdl``/``aic``).
    consistency : ndarray or None
        The group consistency spectrum (``consistency``), and ``edge`` its random-subspace limit.
    reproducibility : Reproducibility or None
        The split-half curve (``reproducibility``).
    note : str or None
        Why the method used differs from the one asked for, if it does.
    """

    method: str
    dimension: int
    estimates: dict = field(default_factory=dict)
    spectrum: np.ndarray | None = None
    evidence: dict = field(default_factory=dict)
    runs: list = field(default_factory=list)
    consistency: np.ndarray | None = None
    edge: float | None = None
    reproducibility: Reproducibility | None = None
    note: str | None = None
