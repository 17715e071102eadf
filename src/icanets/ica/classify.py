"""Classifying components as signal, noise or uncertain, on interpretable features.

Spatial features come from the group map (z), temporal ones from the dual-regression stage-1
time courses of every run, made robust to spikes: frames where the time courses of many
components jump together (a spike leaking through dual regression) are set aside and
interpolated over before any spectrum is taken, and each feature is the median over runs.

The rule follows ICA-AROMA (Pruim et al. 2015: edge and CSF fractions, high-frequency content;
no kurtosis) and FIX's spirit (spatial structure first), and is conservative:

- a map concentrated on the brain's edge or in CSF, or without spatial structure, is
  ``noise`` whatever its time course;
- a temporal feature alone (high-frequency or drift power) makes a component ``noise`` only
  when its map is not clean; a clean, compact map with one temporal warning is ``uncertain``;
- a map that is not clean (partly on the rim or in CSF, fragmented, rough or bipolar) but below
  the noise limits, with no temporal warning, is ``uncertain``: it may be a network beside
  the ventricles or the cortex's edge, or an artifact mixed into one, and is left for review;
- an unstable component (ICASSO stability below ``min_stability``) is ``uncertain``;
- a misregistration shadow is ``noise``: a bipolar map that is the spatial gradient of another,
  clean component's map, whose time course follows that component's with a sign that changes
  from run to run. A node misregistered by a fraction of its width in a run differs from the
  group map by about the map's gradient times the shift, so high-order ICA of misregistered
  runs finds, beside each node, a component shaped like its gradient whose time course is the
  node's times the run's shift (positive in some runs, negative in others). As a node it adds
  no network, only copies of its parent's edges multiplied by each run's shift: on simulated
  cohorts with misregistration and deflationary FastICA the edges of such components were most
  of the FWE-significant edges with no planted effect (symmetric FastICA finds few).

``uncertain`` components are kept as nodes by default (when in doubt, keep). Every threshold
is a setting (``[ica]`` in the study config), and every decision carries its reasons.

References
----------
Pruim RHR et al. (2015). ICA-AROMA: a robust ICA-based strategy for removing motion artifacts
from fMRI data. NeuroImage 112:267-277.
Salimi-Khorshidi G et al. (2014). Automatic denoising of functional MRI data: combining
independent component analysis and hierarchical fusion of classifiers. NeuroImage 90:449-468.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import ndimage, signal

from icanets.ica.data import ICAError, MaskedSpace

__all__ = ["ClassifierSettings", "component_features", "classify_components", "temporal_partners", "FEATURES",
           "LABELS", "spike_frames", "csf_like", "motion_correlation", "motion_regressors", "rules_not_applied"]

#: Labels a component can get.
LABELS = ("signal", "uncertain", "noise")

#: Feature name -> description (columns of the components table).
FEATURES = {
    "edge_fraction": "fraction of the map's suprathreshold |z| mass on the mask's outer rim",
    "edge_excess": "edge fraction beyond the rim's share of the mask: (edge - share) / (1 - share)",
    "csf_fraction": "fraction of the suprathreshold |z| mass in CSF-like voxels",
    "csf_excess": "CSF fraction beyond the CSF-like voxels' share of the mask: (csf - share) / (1 - share)",
    "cluster_fraction": "fraction of the suprathreshold |z| mass in the two largest connected clusters",
    "smoothness": "correlation of the map with the mean of its 26 neighbours",
    "negative_fraction": "fraction of the suprathreshold |z| mass of negative sign (after the sign flip)",
    "extent": "fraction of the mask's voxels with suprathreshold |z|",
    "hf_fraction": "fraction of the time-course power above the drift cutoff that lies above the high-frequency cutoff "
                   "(median over runs, spikes set aside)",
    "lf_fraction": "fraction of time-course power below the drift cutoff (median over runs, spikes set aside)",
    "kurtosis": "excess kurtosis of the time courses, spike frames set aside (median over runs; reported, not used)",
    "spike_frames": "fraction of frames set aside as spikes in the runs (the same for every component)",
    "motion_correlation": "largest |correlation| of the time course with the run's 24 motion regressors (six "
                          "parameters, their derivatives and the squares of both, as ICA-AROMA's), spike frames set "
                          "aside (median over runs; NaN without motion files; used only with [ica] max_motion)",
    "shadow_of": "the other component whose map's spatial gradient best fits this map (1-based; 0 where not computed)",
    "shadow_fit": "R^2 of this map on that component's spatial gradient (its three axis derivatives; NaN on CIFTI "
                  "data, where the grid has no axes, and without time courses)",
    "shadow_coupling": "mean over runs of |correlation| of this time course with that component's, spike frames set "
                       "aside (NaN with fewer than 5 runs)",
    "shadow_flips": "share of runs in which that correlation has the minority sign (0: the same sign in every "
                    "run, 0.5: random; NaN with fewer than 5 runs)",
}


@dataclass(frozen=True)
class ClassifierSettings:
    """Thresholds of the rule.

    Attributes
    ----------
    z_threshold : float
        Suprathreshold voxels for the spatial features (|z| above this).
    max_edge, max_csf : float
        A map whose share of mass on the rim or in CSF exceeds what those regions' share of
        the mask would give by more than this (``edge_excess``, ``csf_excess``: 0 for a map
        spread evenly, 1 for a map entirely on the rim or in CSF) is noise. Measuring the
        excess makes the rule independent of the voxel size: a one-voxel rim is 7 % of a
        2 mm brain mask and 27 % of an 8 mm one.
    min_cluster, min_smoothness : float
        A map below both is unstructured noise.
    max_hf, max_lf : float
        Upper limits of the high-frequency and drift power fractions of a signal time course.
    clean_edge, clean_csf, clean_cluster, clean_smoothness, clean_negative : float
        A map is clean (compact, grey-matter-like) with edge and CSF excesses at most
        ``clean_edge``/``clean_csf``, cluster fraction and smoothness at least
        ``clean_cluster``/``clean_smoothness``, and negative fraction at most
        ``clean_negative``. A clean map is never rejected on one temporal feature; a map that
        is not clean, and not noise, is ``uncertain``.
    min_stability : float
        Components less stable than this over the ICASSO repeats are uncertain.
    hf_cutoff, lf_cutoff : float
        Frequencies (Hz) separating high-frequency and drift power from the BOLD band.
    spike_threshold : float
        A frame is a spike when the median over components of the absolute robust z of
        their jumps into that frame exceeds the run's median by this many robust SDs.
    csf_contrast : float
        Without a CSF mask, CSF-like voxels are those of the mean image brighter than their
        surroundings (a Gaussian-weighted local mean within the mask, sigma 10 mm or 1.5
        voxels) by this fraction: CSF is bright in T2*-weighted EPI, and comparing with the
        local mean ignores the smooth intensity bias of receive coils.
    keep_uncertain : bool
        Keep ``uncertain`` components as nodes (default) or drop them with the noise.
    max_motion : float or None
        Upper limit of a signal time course's ``motion_correlation`` (a temporal warning above
        it, as ICA-AROMA's realignment-parameter feature); None (default): reported, not used.
    min_shadow_fit, min_shadow_coupling, min_shadow_flips : float
        A misregistration shadow (noise) is a bipolar map (negative fraction above
        ``clean_negative``) whose ``shadow_fit`` on a clean component's gradient is at least
        ``min_shadow_fit``, whose time course is coupled to that component's
        (``shadow_coupling`` at least ``min_shadow_coupling``) with the minority sign in at
        least ``min_shadow_flips`` of the runs.
    """

    z_threshold: float = 2.5
    max_edge: float = 0.5
    max_csf: float = 0.5
    min_cluster: float = 0.5
    min_smoothness: float = 0.3
    max_hf: float = 0.5
    max_lf: float = 0.5
    clean_edge: float = 0.25
    clean_csf: float = 0.25
    clean_cluster: float = 0.5
    clean_smoothness: float = 0.5
    clean_negative: float = 0.35
    min_stability: float = 0.7
    hf_cutoff: float = 0.25
    lf_cutoff: float = 0.01
    spike_threshold: float = 5.0
    csf_contrast: float = 0.15
    keep_uncertain: bool = True
    max_motion: float | None = None
    min_shadow_fit: float = 0.5
    min_shadow_coupling: float = 0.2
    min_shadow_flips: float = 0.2

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "keep_uncertain":
                if not isinstance(value, bool):
                    raise ICAError(f"classifier setting keep_uncertain must be true or false, got {value!r}")
                continue
            if f.name == "max_motion" and value is None:
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value):
                raise ICAError(f"classifier setting {f.name} must be a number, got {value!r}")
            fraction = f.name.startswith(("max_", "min_", "clean_"))
            if fraction and not 0 <= value <= 1:
                raise ICAError(f"classifier setting {f.name} must lie in [0, 1], got {value!r}")
            if not fraction and value <= 0:
                raise ICAError(f"classifier setting {f.name} must be positive, got {value!r}")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


def _excess(fraction: float, share: float) -> float:
    if not (np.isfinite(fraction) and np.isfinite(share)) or share >= 1:
        return np.nan
    return float((fraction - share) / (1.0 - share))


def csf_like(mean_image: np.ndarray, space: MaskedSpace, contrast: float = 0.15) -> np.ndarray:
    """CSF-like voxels ``(V,)``: brighter than their local mean (within the mask) by ``contrast``.

    Examples
    --------
    >>> import tempfile
    >>> mask = np.ones((20, 20, 20), bool)
    >>> space = MaskedSpace(mask, "nifti", tempfile.mkdtemp(), affine=np.diag([2.0, 2.0, 2.0, 1.0]))
    >>> image = np.full(mask.shape, 100.0) * np.linspace(0.7, 1.3, 20)[:, None, None]  # a coil bias
    >>> image[8:12, 8:12, 8:12] *= 1.5                                                  # a ventricle
    >>> found = csf_like(image[mask], space).reshape(mask.shape)
    >>> int(found.sum()), bool(found[8:12, 8:12, 8:12].all())
    (64, True)
    """
    voxel = float(np.mean(np.abs(np.diag(space.affine)[:3]))) if space.affine is not None else 1.0
    sigma = max(10.0 / voxel, 1.5)
    image = _volume(space, mean_image)
    weight = ndimage.gaussian_filter(space.mask.astype(float), sigma, mode="constant")
    local = ndimage.gaussian_filter(image, sigma, mode="constant")
    ratio = image[space.mask] / np.maximum(local[space.mask] / np.maximum(weight[space.mask], 1e-6), 1e-12)
    return ratio >= 1.0 + contrast


def _volume(space: MaskedSpace, values: np.ndarray) -> np.ndarray:
    out = np.zeros(space.mask.shape)
    out[space.mask] = values
    return out


def spike_frames(timecourses: np.ndarray, threshold: float = 5.0) -> np.ndarray:
    """Frames ``(T,)`` (boolean) where the time courses of many components jump together.

    As DVARS does for voxels: each component's frame-to-frame differences are turned into
    robust z scores (median, 1.4826 x MAD); a frame's score is the median over components
    of the absolute z of the jump into it; frames whose score exceeds the median score by
    ``threshold`` robust SDs of the scores are set aside (a one-frame spike marks itself and
    the frame after it, whose jump back is as large). Slow fluctuations, however large, are
    not spikes.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> tc = rng.normal(size=(100, 12))
    >>> tc[40] += 8.0
    >>> np.flatnonzero(spike_frames(tc)).tolist()
    [40, 41]
    """
    x = np.asarray(timecourses, dtype=float)
    out = np.zeros(len(x), dtype=bool)
    if len(x) < 4:
        return out
    jumps = np.diff(x, axis=0)
    med = np.median(jumps, axis=0)
    mad = 1.4826 * np.median(np.abs(jumps - med), axis=0)
    z = np.abs(jumps - med) / np.where(mad > 0, mad, np.inf)
    score = np.median(z, axis=1)
    centre = np.median(score)
    spread = 1.4826 * np.median(np.abs(score - centre))
    if spread <= 0:
        return out
    out[1:] = score > centre + threshold * spread
    return out


def _interpolated(x: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """``x`` (T, K) with the ``bad`` frames replaced by linear interpolation over the good ones."""
    if not bad.any() or bad.all():
        return x
    t = np.arange(len(x))
    good = ~bad
    out = x.copy()
    for k in range(x.shape[1]):
        out[bad, k] = np.interp(t[bad], t[good], x[good, k])
    return out


def _run_spikes(timecourses: Sequence[np.ndarray], settings: ClassifierSettings) -> list[np.ndarray]:
    """Each run's spike frames (:func:`spike_frames`; none in runs under 10 frames), which every
    temporal feature sets aside."""
    return [spike_frames(tc, settings.spike_threshold) if len(tc) >= 10 else np.zeros(len(tc), dtype=bool)
            for tc in (np.asarray(t, dtype=float) for t in timecourses)]


def _temporal(timecourses: Sequence[np.ndarray], tr: float, settings: ClassifierSettings,
              spikes: Sequence[np.ndarray] | None = None) -> dict:
    hf_runs, lf_runs, kurt_runs, shares = [], [], [], []
    spikes = _run_spikes(timecourses, settings) if spikes is None else spikes
    for tc, bad in zip(timecourses, spikes):
        tc = np.asarray(tc, dtype=float)
        shares.append(bad.mean())
        x = _interpolated(tc, bad)
        x = x - x.mean(axis=0)
        freqs, power = signal.periodogram(x, fs=1.0 / tr, axis=0)
        total = power[1:].sum(axis=0)
        safe = np.where(total > 0, total, 1.0)
        low = (freqs > 0) & (freqs < settings.lf_cutoff)
        # High-frequency content relative to the power above the drift band (as ICA-AROMA's,
        # whose data are high-pass filtered), so that drifts leaking in do not hide it.
        above = power[freqs >= settings.lf_cutoff].sum(axis=0)
        hf_runs.append(np.where(above > 0, power[freqs > settings.hf_cutoff].sum(axis=0) / np.where(above > 0, above, 1.0),
                                0.0))
        lf_runs.append(np.where(total > 0, power[low].sum(axis=0) / safe, 0.0))
        kept = tc[~bad] - tc[~bad].mean(axis=0)
        m2 = np.mean(kept**2, axis=0)
        kurt_runs.append(np.where(m2 > 0, np.mean(kept**4, axis=0) / np.where(m2 > 0, m2, 1.0) ** 2 - 3.0, 0.0))
    if not hf_runs:
        return {}
    return {"hf_fraction": np.median(hf_runs, axis=0), "lf_fraction": np.median(lf_runs, axis=0),
            "kurtosis": np.median(kurt_runs, axis=0), "spike_frames": float(np.mean(shares))}


def motion_regressors(params: np.ndarray) -> np.ndarray:
    """The 24 motion regressors of ``(T, 6)`` parameters: the parameters, their backward
    derivatives (0 at the first frame) and the squares of both, demeaned."""
    params = np.asarray(params, dtype=float)
    derivative = np.vstack([np.zeros((1, params.shape[1])), np.diff(params, axis=0)])
    out = np.hstack([params, derivative, params**2, derivative**2])
    return out - out.mean(axis=0)


def motion_correlation(timecourses: Sequence[np.ndarray], motion: Sequence[np.ndarray | None],
                       settings: ClassifierSettings = ClassifierSettings(),
                       spikes: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """Per component, the median over runs (with motion) of the largest absolute correlation
    of its time course with the run's 24 motion regressors, spike frames set aside; NaN
    where no run has motion.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> params = np.cumsum(rng.normal(0, 0.05, (200, 6)), axis=0)
    >>> tc = np.column_stack([rng.normal(size=200), params[:, 0] + 0.1 * rng.normal(size=200)])
    >>> r = motion_correlation([tc], [params])
    >>> bool(r[0] < 0.3), bool(r[1] > 0.9)
    (True, True)
    """
    per_run = []
    spikes = _run_spikes(timecourses, settings) if spikes is None else spikes
    for tc, params, bad in zip(timecourses, motion, spikes):
        if params is None:
            continue
        tc = np.asarray(tc, dtype=float)
        if len(params) != len(tc):
            raise ICAError(f"motion parameters have {len(params)} rows for a time course of {len(tc)}")
        x = tc[~bad] - tc[~bad].mean(axis=0)
        m = motion_regressors(params)[~bad]
        m = m - m.mean(axis=0)
        nx, nm = np.linalg.norm(x, axis=0), np.linalg.norm(m, axis=0)
        r = np.abs(x.T @ m) / np.outer(np.where(nx > 0, nx, 1.0), np.where(nm > 0, nm, 1.0))
        per_run.append(r.max(axis=1))
    if not per_run:
        return np.full(np.asarray(timecourses[0]).shape[1] if len(timecourses) else 0, np.nan)
    return np.median(per_run, axis=0)


def gradient_fits(maps: np.ndarray, space: MaskedSpace, block: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """For each map, the other map whose spatial gradient fits it best, and the R^2 of that fit.

    The R^2 of map ``c`` on map ``p``'s gradient is that of the least-squares fit of ``c``
    (demeaned, inside the mask) by the three axis derivatives of ``p`` (``numpy.gradient`` of
    the volume, zero outside the mask; demeaned). A map moved by a small shift ``d`` differs
    from itself by about ``-d . grad(map)``, so the component ICA finds for a node misregistered
    differently in different runs fits the node's gradient closely, and the node itself does
    not fit its own shadow's gradient as well.

    Parameters
    ----------
    maps : ndarray, shape (K, V)
        Maps inside the mask of a volumetric ``space``.
    block : int
        Parents whose gradients are held in memory at once (``3 x block x V`` floats).

    Returns
    -------
    of : ndarray of int, shape (K,)
        0-based index of the best other map (-1 with a single map).
    fit : ndarray, shape (K,)
        Its R^2 (NaN with a single map or a constant map).

    Examples
    --------
    >>> import tempfile
    >>> mask = np.ones((24, 24, 24), bool)
    >>> space = MaskedSpace(mask, "nifti", tempfile.mkdtemp(), affine=np.eye(4))
    >>> g = np.indices(mask.shape).reshape(3, -1).T.astype(float)
    >>> blob = lambda c: np.exp(-np.sum((g - c) ** 2, axis=1) / 18.0)
    >>> node, other = blob([8, 8, 8]), blob([16, 16, 16])
    >>> shadow = blob([8.5, 8, 8]) - blob([7.5, 8, 8])         # the node moved back and forth
    >>> of, fit = gradient_fits(np.vstack([node, other, shadow]), space)
    >>> int(of[2]), bool(fit[2] > 0.95), bool(fit[0] < 0.5), bool(fit[1] < 0.05)
    (0, True, True, True)
    """
    k = len(maps)
    of, fit = np.full(k, -1), np.full(k, np.nan)
    if k < 2:
        return of, fit
    z = np.array(maps, dtype=np.float64)
    z -= z.mean(axis=1, keepdims=True)
    norms = np.sum(z**2, axis=1)
    scores = np.zeros((k, k))  # scores[p, c]: R^2 of map c on the gradient of map p
    for start in range(0, k, block):
        parents = range(start, min(start + block, k))
        basis = []
        for p in parents:
            grad = np.array([d[space.mask] for d in np.gradient(_volume(space, np.asarray(maps[p], dtype=np.float64)))])
            grad -= grad.mean(axis=1, keepdims=True)
            # Orthonormal rows spanning the gradient (from its 3 x 3 Gram matrix; a degenerate
            # direction, as along an axis of length 1, is left out).
            values, vectors = np.linalg.eigh(grad @ grad.T)
            good = values > 1e-10 * max(values.max(), 1e-300)
            basis.append((vectors[:, good] / np.sqrt(values[good])).T @ grad if good.any()
                         else np.zeros((0, z.shape[1])))
        sizes = [len(b) for b in basis]
        projections = np.vstack(basis) @ z.T if sum(sizes) else np.zeros((0, k))
        bounds = np.cumsum([0, *sizes])
        for p, lo, hi in zip(parents, bounds[:-1], bounds[1:]):
            scores[p] = np.sum(projections[lo:hi] ** 2, axis=0)
    scores /= np.where(norms > 0, norms, np.inf)[None, :]
    np.fill_diagonal(scores, -np.inf)
    of = np.argmax(scores, axis=0)
    fit = np.where(norms > 0, scores[of, np.arange(k)], np.nan)
    return of, fit


def run_coupling(timecourses: Sequence[np.ndarray], partner: np.ndarray,
                 settings: ClassifierSettings = ClassifierSettings(), min_runs: int = 5,
                 spikes: Sequence[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per component, the mean over runs of the |correlation| of its time course with its
    ``partner``'s (0-based; -1: none), and the share of runs where that correlation has the
    minority sign; spike frames are set aside, and runs where either is constant are left out.
    NaN where fewer than ``min_runs`` runs count.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> runs = []
    >>> for sign in [1, -1] * 5:                 # component 1 follows 0 with a sign that flips
    ...     x = rng.normal(size=(100, 3))
    ...     x[:, 1] = sign * x[:, 0] + rng.normal(size=100)
    ...     x[:, 2] = x[:, 0] + rng.normal(size=100)          # component 2 follows 0 every time
    ...     runs.append(x)
    >>> coupling, flips = run_coupling(runs, np.array([1, 0, 0]))
    >>> bool(coupling[1] > 0.6), float(flips[1]), float(flips[2])
    (True, 0.5, 0.0)
    """
    partner = np.asarray(partner)
    k = len(partner)
    r = []
    spikes = _run_spikes(timecourses, settings) if spikes is None else spikes
    for tc, bad in zip(timecourses, spikes):
        x = np.asarray(tc, dtype=float)
        x = x[~bad] - x[~bad].mean(axis=0)
        sd = np.sqrt(np.sum(x**2, axis=0))
        other = np.where(partner >= 0, partner, 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            value = np.sum(x * x[:, other], axis=0) / (sd * sd[other])
        value[(partner < 0) | (sd == 0) | (sd[other] == 0)] = np.nan
        r.append(value)
    coupling, flips = np.full(k, np.nan), np.full(k, np.nan)
    if not r:
        return coupling, flips
    r = np.array(r)
    counted = np.sum(np.isfinite(r), axis=0)
    enough = counted >= min_runs
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_abs = np.nansum(np.abs(r), axis=0) / counted
        positive = np.sum(r > 0, axis=0) / counted
    coupling[enough] = mean_abs[enough]
    flips[enough] = np.minimum(positive, 1 - positive)[enough]
    return coupling, flips


def component_features(maps: np.ndarray, timecourses: Sequence[np.ndarray], tr: float, space: MaskedSpace, *,
                       mean_image: np.ndarray | None = None, csf_mask: np.ndarray | None = None,
                       settings: ClassifierSettings = ClassifierSettings(),
                       motion: Sequence[np.ndarray | None] | None = None) -> pd.DataFrame:
    """Features of every component (rows, 1-based ``component``), see :data:`FEATURES`.

    Parameters
    ----------
    maps : ndarray, shape (K, V)
        z maps inside the mask (signs flipped so the heavier tail is positive).
    timecourses : sequence of ndarray, each (T_i, K)
        Stage-1 time courses per run.
    tr : float
        Seconds.
    space : MaskedSpace
    mean_image : ndarray, shape (V,), optional
        Mean intensity image (for CSF-like voxels when no ``csf_mask``).
    csf_mask : ndarray of bool, shape (V,), optional
    motion : sequence of ndarray (T_i, 6) or None, optional
        Each run's motion parameters (rows matching its time courses), for
        ``motion_correlation``.

    Notes
    -----
    For CIFTI data, the neighbourhoods are the surfaces' meshes (vertex adjacency), the 26
    neighbours of each voxel of the volume part, and vertex-voxel pairs closer than 1.75
    voxels; the rim is the outer layer of the solid the vertices and voxels fill (see
    :func:`icanets.io.cifti.envelope_rim`); CSF-like voxels are looked for in the volume part
    only. Without a mesh for every surface structure the edge, cluster and smoothness
    features are unavailable (NaN), as is CSF without a volume part: no rule uses a NaN
    feature, and :func:`rules_not_applied` names the rules that could not be applied.
    """
    k, v = maps.shape
    if space.n_voxels != v:
        raise ICAError(f"maps have {v} voxels, the mask {space.n_voxels}")
    volumetric = space.kind == "nifti"
    graph = None
    if volumetric:
        rim = (space.mask & ~ndimage.binary_erosion(space.mask))[space.mask]
        neighbours = np.ones((3, 3, 3))
        neighbours[1, 1, 1] = 0
        counts = ndimage.convolve(space.mask.astype(float), neighbours, mode="constant")[space.mask]
        if csf_mask is None and mean_image is not None:
            csf_mask = csf_like(mean_image, space, settings.csf_contrast)
    else:
        rim, graph, found_csf = _cifti_support(space, mean_image, settings)
        if csf_mask is None:
            csf_mask = found_csf
        counts = np.asarray(graph.sum(axis=1)).ravel() if graph is not None else None
    rim_share = float(rim.mean()) if rim is not None else np.nan
    csf_share = float(np.mean(csf_mask)) if csf_mask is not None else np.nan
    spikes = _run_spikes(timecourses, settings)  # once per run, for every temporal feature
    temporal = _temporal(timecourses, tr, settings, spikes)
    moving = (motion_correlation(timecourses, motion, settings, spikes) if motion is not None and len(timecourses)
              else np.full(k, np.nan))
    # The shadow rule needs time courses too: maps alone (the split-half order's counts) skip the gradients.
    if volumetric and len(timecourses):
        shadow_of, shadow_fit = gradient_fits(maps, space)
    else:
        shadow_of, shadow_fit = np.full(k, -1), np.full(k, np.nan)
    shadow_coupling, shadow_flips = run_coupling(timecourses, shadow_of, settings, spikes=spikes)
    rows = []
    for c in range(k):
        z = maps[c]
        supra = np.abs(z) > settings.z_threshold
        mass = np.where(supra, np.abs(z), 0.0)
        total = mass.sum()
        row = {"component": c + 1}
        row["edge_fraction"] = (float(mass[rim].sum() / total) if total > 0 else 0.0) if rim is not None else np.nan
        row["edge_excess"] = _excess(row["edge_fraction"], rim_share)
        row["csf_fraction"] = float(mass[csf_mask].sum() / total) if (total > 0 and csf_mask is not None) else (
            0.0 if csf_mask is not None else np.nan)
        row["csf_excess"] = _excess(row["csf_fraction"], csf_share)
        if volumetric and total > 0:
            labels, n = ndimage.label(_volume(space, mass) > 0, structure=np.ones((3, 3, 3)))
            sizes = np.sort(ndimage.sum(_volume(space, mass), labels, index=np.arange(1, n + 1)))[::-1]
            row["cluster_fraction"] = float(sizes[:2].sum() / total)
        elif graph is not None and total > 0:
            row["cluster_fraction"] = _graph_cluster_fraction(mass, graph)
        else:
            row["cluster_fraction"] = 0.0 if (volumetric or graph is not None) else np.nan
        if volumetric:
            smooth = ndimage.convolve(_volume(space, z), neighbours, mode="constant")[space.mask] / np.maximum(counts, 1)
        elif graph is not None:
            smooth = (graph @ z) / np.maximum(counts, 1)
        else:
            smooth = None
        if smooth is None:
            row["smoothness"] = np.nan
        else:
            row["smoothness"] = float(np.corrcoef(z, smooth)[0, 1]) if np.std(smooth) > 0 and np.std(z) > 0 else 0.0
        row["negative_fraction"] = float(mass[z < 0].sum() / total) if total > 0 else 0.0
        row["extent"] = float(supra.mean())
        for name in ("hf_fraction", "lf_fraction", "kurtosis"):
            row[name] = float(temporal[name][c]) if temporal else 0.0
        row["spike_frames"] = float(temporal.get("spike_frames", 0.0))
        row["motion_correlation"] = float(moving[c])
        row["shadow_of"] = int(shadow_of[c]) + 1
        row["shadow_fit"] = float(shadow_fit[c])
        row["shadow_coupling"] = float(shadow_coupling[c])
        row["shadow_flips"] = float(shadow_flips[c])
        rows.append(row)
    return pd.DataFrame(rows, columns=["component", *FEATURES])


def _cifti_support(space: MaskedSpace, mean_image: np.ndarray | None, settings: ClassifierSettings):
    """Rim, neighbour graph and CSF-like grayordinates of a CIFTI space (None where unavailable)."""
    from icanets.io.cifti import envelope_rim, grayordinate_adjacency, volume_part

    geometry = space.geometry
    if geometry is None:
        return None, None, None
    rim = envelope_rim(geometry, space.mask)
    graph = grayordinate_adjacency(geometry, space.mask)
    csf = None
    part = volume_part(geometry, space.mask)
    if part is not None and mean_image is not None:
        index, grid = part
        sub = MaskedSpace(grid, "nifti", space.template, affine=geometry.volume_affine)
        csf = np.zeros(space.n_voxels, dtype=bool)
        csf[index] = csf_like(np.asarray(mean_image)[index], sub, settings.csf_contrast)
    return rim, graph, csf


def _graph_cluster_fraction(mass: np.ndarray, graph) -> float:
    """Share of ``mass`` in the two largest connected clusters of its support on ``graph``."""
    from scipy.sparse.csgraph import connected_components

    support = np.flatnonzero(mass > 0)
    _, labels = connected_components(graph[support][:, support], directed=False)
    sizes = np.sort(np.bincount(labels, weights=mass[support]))[::-1]
    return float(sizes[:2].sum() / mass.sum())


#: Rule -> the features it needs (what :func:`rules_not_applied` reports).
RULE_FEATURES = {
    "rim (edge excess)": ("edge_excess",),
    "CSF (CSF excess)": ("csf_excess",),
    "unstructured map (clusters and smoothness)": ("cluster_fraction", "smoothness"),
    "misregistration shadow (gradient fit and run coupling)": ("shadow_fit", "shadow_coupling"),
}


def rules_not_applied(features: pd.DataFrame) -> list[str]:
    """The spatial rules that could not be applied because a feature they need is
    unavailable (NaN for every component), e.g. on CIFTI data without surfaces.

    Examples
    --------
    >>> rules_not_applied(pd.DataFrame({"edge_excess": [np.nan], "csf_excess": [0.1],
    ...                                 "cluster_fraction": [np.nan], "smoothness": [np.nan],
    ...                                 "shadow_fit": [0.1], "shadow_coupling": [0.3]}))
    ['rim (edge excess)', 'unstructured map (clusters and smoothness)']
    """
    out = []
    for rule, needed in RULE_FEATURES.items():
        if any(name not in features or not features[name].notna().any() for name in needed):
            out.append(rule)
    return out


def _above(value, limit) -> bool:
    return bool(np.isfinite(value) and value > limit)


def _below(value, limit) -> bool:
    return bool(np.isfinite(value) and value < limit)


def classify_components(features: pd.DataFrame, settings: ClassifierSettings = ClassifierSettings(), *,
                        stability: np.ndarray | None = None) -> pd.DataFrame:
    """Add ``label`` (``signal``, ``uncertain`` or ``noise``), ``reasons`` and ``keep`` to a
    features table (see the module docstring for the rule).

    Examples
    --------
    >>> clean = dict(edge_excess=0.05, csf_excess=0.0, cluster_fraction=0.95, smoothness=0.9,
    ...              negative_fraction=0.02, lf_fraction=0.1)
    >>> table = pd.DataFrame([dict(clean, component=1, hf_fraction=0.2),
    ...                       dict(clean, component=2, hf_fraction=0.7),
    ...                       dict(clean, component=3, hf_fraction=0.2, edge_excess=0.8)])
    >>> classify_components(table)[["label", "reasons"]].values.tolist()
    [['signal', ''], ['uncertain', 'clean map, but high-frequency power 0.70 > 0.5'], ['noise', 'rim (edge excess 0.80 > 0.5)']]
    """
    s = settings
    out = features.copy()
    labels, reasons = [], []
    records = features.to_dict("records")
    by_component = {int(row["component"]): row for row in records if "component" in row}
    for i, row in enumerate(records):
        spatial, temporal = _spatial_reasons(row, s), []
        if _above(row["hf_fraction"], s.max_hf):
            temporal.append(f"high-frequency power {row['hf_fraction']:.2f} > {s.max_hf}")
        if _above(row["lf_fraction"], s.max_lf):
            temporal.append(f"drift power {row['lf_fraction']:.2f} > {s.max_lf}")
        if s.max_motion is not None and _above(row.get("motion_correlation", np.nan), s.max_motion):
            temporal.append(f"motion correlation {row['motion_correlation']:.2f} > {s.max_motion}")
        unclean = _unclean(row, s)
        clean = not unclean
        unstable = stability is not None and _below(stability[i], s.min_stability)
        shadow = _shadow(row, by_component, s)
        if spatial:
            label, why = "noise", spatial + temporal
        elif shadow:
            label, why = "noise", [shadow] + temporal
        elif temporal and clean and len(temporal) == 1:
            label, why = "uncertain", [f"clean map, but {temporal[0]}"]
        elif temporal:
            label, why = "noise", temporal + ["map not clean"]
        elif not clean:
            label, why = "uncertain", [f"map not clean ({', '.join(unclean)}), no temporal warning"]
        elif unstable:
            label, why = "uncertain", []
        else:
            label, why = "signal", []
        if unstable:
            why.append(f"unstable (stability {stability[i]:.2f} < {s.min_stability})")
        labels.append(label)
        reasons.append("; ".join(why))
    out["label"] = labels
    out["reasons"] = reasons
    out["keep"] = [label == "signal" or (label == "uncertain" and s.keep_uncertain) for label in labels]
    return out


def _spatial_reasons(row: dict, s: ClassifierSettings) -> list[str]:
    """The spatial evidence that makes a map noise whatever its time course, as reasons."""
    out = []
    if _above(row["edge_excess"], s.max_edge):
        out.append(f"rim (edge excess {row['edge_excess']:.2f} > {s.max_edge})")
    if _above(row["csf_excess"], s.max_csf):
        out.append(f"CSF (CSF excess {row['csf_excess']:.2f} > {s.max_csf})")
    if _below(row["cluster_fraction"], s.min_cluster) and _below(row["smoothness"], s.min_smoothness):
        out.append(f"unstructured map (clusters {row['cluster_fraction']:.2f} < {s.min_cluster}, "
                   f"smoothness {row['smoothness']:.2f} < {s.min_smoothness})")
    return out


def _shadow(row: dict, by_component: dict, s: ClassifierSettings) -> str:
    """The reason a component is a misregistration shadow of another, or ``""``."""
    fit, coupling, flips = (row.get(name, np.nan) for name in ("shadow_fit", "shadow_coupling", "shadow_flips"))
    of = row.get("shadow_of", 0)
    parent = by_component.get(int(of)) if isinstance(of, (int, float, np.number)) and np.isfinite(of) else None
    if parent is None or not (_above(row["negative_fraction"], s.clean_negative)
                              and np.isfinite(fit) and fit >= s.min_shadow_fit
                              and np.isfinite(coupling) and coupling >= s.min_shadow_coupling
                              and np.isfinite(flips) and flips >= s.min_shadow_flips):
        return ""
    if _unclean(parent, s) or _spatial_reasons(parent, s):
        return ""
    return (f"misregistration shadow of IC{int(parent['component'])} (bipolar map, negative fraction "
            f"{row['negative_fraction']:.2f} > {s.clean_negative}, fitting its spatial gradient, R^2 {fit:.2f} >= "
            f"{s.min_shadow_fit}; time course coupled to its, mean |r| {coupling:.2f} >= {s.min_shadow_coupling}, "
            f"with the opposite sign in {flips:.0%} of runs >= {s.min_shadow_flips:.0%})")


def _unclean(row: dict, s: ClassifierSettings) -> list[str]:
    """The ways a map falls short of clean (compact, grey-matter-like), as reasons."""
    out = []
    if _above(row["edge_excess"], s.clean_edge):
        out.append(f"edge excess {row['edge_excess']:.2f} > {s.clean_edge}")
    if _above(row["csf_excess"], s.clean_csf):
        out.append(f"CSF excess {row['csf_excess']:.2f} > {s.clean_csf}")
    if _below(row["cluster_fraction"], s.clean_cluster):
        out.append(f"clusters {row['cluster_fraction']:.2f} < {s.clean_cluster}")
    if _below(row["smoothness"], s.clean_smoothness):
        out.append(f"smoothness {row['smoothness']:.2f} < {s.clean_smoothness}")
    if _above(row["negative_fraction"], s.clean_negative):
        out.append(f"negative fraction {row['negative_fraction']:.2f} > {s.clean_negative}")
    return out


def settings_dict(settings: ClassifierSettings) -> dict:
    return asdict(settings)


def temporal_partners(timecourses: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Each component's most correlated other component over all runs, and that correlation.

    The correlation of two components is the mean over runs of the Pearson correlation of
    their stage-1 time courses (a time course constant within a run counts as 0 there). ICA
    keeps the maps apart, not the time courses, so a network that the model order splits over
    two components shows up as a pair whose time courses correlate strongly: on the demo
    preset with amplitude heterogeneity off (seed 0, order 46), four of the five most
    correlated of 1,035 pairs (0.69-0.75) were nodes split in two (the fifth an artifact and a
    map matching nothing), where no two of the 20 true nodes' time courses correlate above 0.38.
    It is not specific: a node and an artifact carrying part of its signal correlate as much
    (0.69 on the demo, where no node is split).

    Parameters
    ----------
    timecourses : sequence of ndarray (T, K)
        Stage-1 time series, one array per run.

    Returns
    -------
    partner : ndarray of int, shape (K,)
        0-based index of each component's partner (-1 with a single component).
    r : ndarray, shape (K,)
        The signed mean correlation with it (NaN with a single component).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> runs = []
    >>> for _ in range(3):
    ...     x = rng.normal(size=(100, 3))
    ...     x[:, 2] = x[:, 0] + 0.5 * rng.normal(size=100)  # components 0 and 2: one network split
    ...     runs.append(x)
    >>> partner, r = temporal_partners(runs)
    >>> int(partner[0]), int(partner[2]), bool(r[0] > 0.85), bool(abs(r[1]) < 0.2)  # 1's partner: either
    (2, 0, True, True)
    """
    total = None
    for tc in timecourses:
        x = np.asarray(tc, dtype=float)
        x = x - x.mean(axis=0)
        sd = np.sqrt(np.sum(x**2, axis=0))
        z = np.divide(x, sd, out=np.zeros_like(x), where=sd > 0)
        c = z.T @ z
        total = c if total is None else total + c
    if total is None:
        raise ValueError("no time courses")
    k = total.shape[0]
    if k < 2:
        return np.full(k, -1), np.full(k, np.nan)
    mean = total / len(timecourses)
    np.fill_diagonal(mean, 0.0)
    partner = np.argmax(np.abs(mean), axis=1)
    return partner, mean[np.arange(k), partner]
