"""The group ICA stage: group PCA, model order, spatial ICA, dual regression stage 1, labels."""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from icanets.errors import IcanetsWarning
from icanets.io.atomic import atomic_folder
from icanets.io.fsl import read_fix_label_lines, write_fix_labels, write_text_matrix
from icanets.parallel import stream_items
from icanets.pipeline._common import json_default, provenance

__all__ = ["ICASettings", "ica_stage", "spatial_regressors"]


@dataclass(frozen=True)
class ICASettings:
    """Settings of the group ICA stage.

    Attributes
    ----------
    dimension : int or str
        Number of components, or how to estimate it (see :mod:`icanets.ica.order`):
        ``"reproducibility"`` (default: the dimension at which spatial ICA of two halves of the
        subjects finds the most components again), ``"consistency"`` (group directions shared
        by more runs than random subspaces would be; needs ``run_components``; assumes
        spatially white noise), ``"laplace"`` or ``"bic"`` (Minka's PPCA evidence on the
        eigenspectrum of a subset of runs, voxels as samples, as MELODIC), ``"mdl"`` or
        ``"aic"`` (information criteria with the i.i.d.-subsampling correction of Li et al.
        2007, per run, median over the subset; volumetric data only). Every estimate is
        computed and reported (the split-half one only when the dimension is estimated and
        each half has at least 10 subjects; with fewer, ``"reproducibility"`` uses the
        consistency estimate); this one is used.
    max_dimension : int
        Upper bound for an estimated dimension.
    n_internal : int or None
        MIGP's internal dimension (default: twice the longest run). MIGP adds rows beyond it
        (up to ``n_internal`` more, within 1 GiB of float32 per half) before each reduction,
        which costs less and truncates less often than MELODIC's reduction after every run.
    exact : bool
        Exact temporal-concatenation PCA instead of MIGP (small studies only).
    variance_normalise : bool
        Normalise each voxel's temporal variance per run before the PCA (MELODIC ``--vn``).
    highpass : float or None
        High-pass cutoff in seconds (cosine basis) applied to each run before the group PCA
        (the maps' estimation only; dual regression reads the data as they are). None: off.
    run_components : "auto" or float or int or None
        Each run enters MIGP as its strongest spatial principal directions with unit weight
        (see :func:`icanets.ica.pca.run_subspace`): ``"auto"`` (default) a quarter of its time
        points, in runs of 150 volumes or more never fewer than :data:`AUTO_RUN_COMPONENTS` (50); a
        fraction of its time points (float) or a count (int); with a fixed ``dimension``, never
        fewer than it (up to half the run). None or 0: the preprocessed data themselves
        (MELODIC's MIGP). More
        directions per run than it has networks give its noise directions the same weight
        as its signal, and spatially smooth noise is alike in every run, so it then looks
        like a shared network. Fewer than the run holds networks and structured artifacts lose
        the weakest networks, and what a run holds does not shrink with its length, hence the
        floor: on the demo's realistic runs of 150-200 volumes a quarter (38-50) lost weak
        nodes that 50 keep, and on the paper preset (100 nodes and 20 artifacts in runs of
        375-500 volumes) 50 recovered 83 nodes where a quarter (94-125) recovered 96. Short
        runs hold fewer reliable directions: with the floor capped at a third of the run (20
        for the tiny preset's 45-60 volumes) its CIFTI and NIfTI versions no longer found the
        same planted edge, so the floor applies only where it is at most a third.
    seed : int
        Order of the runs in MIGP and FastICA's starts.
    n_repeats : int
        FastICA runs from this many starts; with more than one, the estimates are clustered
        (ICASSO) and each component gets a stability index.
    approach : {"deflation", "symmetric"}
        FastICA's unmixing vectors all together (symmetric, the default, as MELODIC's and
        scikit-learn's), or one at a time, each orthogonal to those before (deflation). See
        :func:`icanets.ica.ica.spatial_ica`. The split-half model order's FastICA is symmetric
        ``tanh`` whatever these are.
    nonlinearity : {"pow3", "tanh", "gauss"}
        FastICA's contrast, by MELODIC's names (default ``tanh``: scikit-learn's ``logcosh``).
    refine_maps : bool
        Replace the ICA maps by the average over all runs of their dual-regression stage-2
        maps (back-reconstruction) before the final dual regression: estimated from all the
        data rather than from the group subspace, weak nodes' maps carry less noise (the
        estimates are kept as ``ica_estimates``). Costs one more pass over the runs.
    dr_threshold : float
        Dual regression stage 1 regresses each volume on the maps with every voxel whose
        |z| (map z-scored over voxels) is at most this set to zero, so a node's time course
        is not made of the faint values its map has everywhere else (noise in a map spread
        over the whole brain outweighs the node itself). 0: the whole maps, as FSL's
        ``dual_regression``.
    precision : {"float32", "float64"}
        Precision the runs are held and multiplied in through every pass (preprocessing, run
        subspaces, MIGP's internal matrix, back-reconstruction, dual regression). float32
        (default) halves the memory traffic and doubles the GEMM rate; products over voxels
        are summed in float64 a block at a time and every eigenproblem and regression is
        solved in float64, so the time series agree with float64's to about 1e-6.
    dimension_timepoints : int
        ``laplace``/``bic`` use the exact eigenspectrum of a seeded subset of runs with about
        this many time points in all, and never more than there are voxels (the PPCA evidence
        needs more samples than dimensions; MIGP's truncated spectrum has no flat noise
        floor, which the estimators assume), nor more than 512 MiB of them as float32 (the
        subset is held through the first pass: at 91,282 grayordinates, about 1,470 time
        points).
    """

    dimension: int | str = "reproducibility"
    max_dimension: int = 200
    n_internal: int | None = None
    exact: bool = False
    variance_normalise: bool = True
    highpass: float | None = None
    run_components: float | int | str | None = "auto"
    seed: int = 0
    n_repeats: int = 10
    approach: str = "symmetric"
    nonlinearity: str = "tanh"
    dimension_timepoints: int = 6000
    refine_maps: bool = True
    dr_threshold: float = 3.0
    precision: str = "float32"

    def __post_init__(self):
        if self.run_components is not None and not isinstance(self.run_components, bool) and self.run_components == 0:
            object.__setattr__(self, "run_components", None)  # 0 (TOML has no null): MELODIC's MIGP on the data
        _validate(self)


#: Subjects each half needs for the split-half model order (fewer: the consistency estimate).
MIN_SUBJECTS_PER_HALF = 10
#: Largest model-order subset held in memory (float32): at 91,282 grayordinates about 1,470 time points.
SUBSET_BYTES = 2**29
#: Largest internal matrix of each half's MIGP (float32), which sets how many rows MIGP adds
#: between reductions (at most ``n_internal`` more): at 91,282 grayordinates a reduction every
#: 1,000 rows with the default ``n_internal``; at 230,000 voxels every 167.
MIGP_BYTES = 2**30


def migp_block_rows(n_voxels: int, n_internal: int) -> int:
    """Rows MIGP adds beyond ``n_internal`` before a reduction: as many as fit in
    :data:`MIGP_BYTES` of float32, at most ``n_internal``.

    >>> migp_block_rows(91282, 1000), migp_block_rows(230000, 1000)
    (1000, 167)
    """
    return int(np.clip(MIGP_BYTES // (4 * n_voxels) - n_internal, 0, n_internal))


#: The runs' working precisions (``[ica] precision``).
PRECISIONS = ("float32", "float64")

_SPLIT_STREAM = 0x5A17  # keeps the random split into halves apart from the runs' order


@dataclass
class _Passes:
    """What the first pass over the runs collects."""

    mean_sum: np.ndarray
    subset: list = field(default_factory=list)
    run_orders: list = field(default_factory=list)


def spatial_regressors(maps: np.ndarray, threshold: float) -> np.ndarray:
    """The maps ``(K, V)`` used as regressors of dual regression stage 1: each map with the voxels
    where its z score (over voxels) is at most ``threshold`` in absolute value set to 0. A map
    left with fewer than two voxels is used whole.

    Examples
    --------
    >>> maps = np.array([[0.0, 0.1, -0.1, 0.05, 9.0, 8.0, 0.02, -0.04]])
    >>> spatial_regressors(maps, 1.0).tolist()
    [[0.0, 0.0, 0.0, 0.0, 9.0, 8.0, 0.0, 0.0]]
    """
    if not threshold:
        return maps
    centred = maps - maps.mean(axis=1, keepdims=True)
    sd = centred.std(axis=1, keepdims=True)
    z = centred / np.where(sd > 0, sd, 1.0)
    keep = np.abs(z) > threshold
    out = np.where(keep, maps, 0.0)
    sparse = keep.sum(axis=1) < 2
    out[sparse] = maps[sparse]
    return out


#: Fewest directions per run with ``run_components = "auto"`` (a quarter of the time points above
#: it), for runs of at least three times as many volumes (150).
AUTO_RUN_COMPONENTS = 50


def run_dimension(run_components: float | int | str, n_timepoints: int, dimension: int | None = None) -> int:
    """Directions a run of ``n_timepoints`` enters the group PCA with: ``run_components`` as
    ``"auto"`` (a quarter of its time points; in runs of 150 volumes or more never fewer than
    :data:`AUTO_RUN_COMPONENTS`), a fraction of its time points or a count, never fewer than a fixed
    ``dimension`` (up to half the run), and always between 1 and ``n_timepoints - 1``.

    Examples
    --------
    >>> run_dimension("auto", 60), run_dimension("auto", 160), run_dimension("auto", 500)
    (15, 50, 125)
    >>> run_dimension(0.25, 300), run_dimension(40, 300)
    (75, 40)
    """
    if run_components == "auto":
        k = int(round(0.25 * n_timepoints))
        if n_timepoints // 3 >= AUTO_RUN_COMPONENTS:  # the floor where it is at most a third of the run
            k = max(k, AUTO_RUN_COMPONENTS)
    elif isinstance(run_components, float):
        k = int(round(run_components * n_timepoints))
    else:
        k = int(run_components)
    if dimension is not None:
        k = max(k, min(int(dimension), n_timepoints // 2))
    return max(1, min(k, n_timepoints - 1))


def _halves(subjects: Sequence[str], seed: int) -> list[int]:
    """0 or 1 for each run: subjects in a seeded random order, alternately to each half (so a
    subject's runs stay together); with a single subject, its runs alternate."""
    unique = sorted(set(subjects))
    if len(unique) < 2:
        return [k % 2 for k in range(len(subjects))]
    order = np.random.default_rng([_SPLIT_STREAM, seed]).permutation(len(unique))
    half = {unique[j]: k % 2 for k, j in enumerate(order)}
    return [half[s] for s in subjects]


def _validate(settings: ICASettings) -> None:
    from icanets.ica.data import ICAError
    from icanets.ica.ica import APPROACHES, NONLINEARITIES
    from icanets.ica.order import ORDER_METHODS

    if isinstance(settings.dimension, str) and settings.dimension not in ORDER_METHODS:
        raise ICAError(f"[ica] dimension must be a number or one of {', '.join(ORDER_METHODS)}, "
                       f"got {settings.dimension!r}")
    rc = settings.run_components
    valid = rc is None or rc == "auto" or (not isinstance(rc, (bool, str)) and (
        isinstance(rc, int) and rc >= 1 or isinstance(rc, float) and 0 < rc <= 1))
    if not valid:
        raise ICAError(f"[ica] run_components must be 'auto', a fraction in (0, 1] of each run's time points, a count "
                       f">= 1, or 0 (off), got {rc!r}")
    if settings.dimension == "consistency" and rc is None:
        raise ICAError("[ica] dimension = 'consistency' needs run_components (each run's whitened "
                       "subspace); with run_components = 0 choose another dimension: a number, reproducibility, "
                       "laplace, bic, mdl or aic")
    if settings.highpass is not None and settings.highpass <= 0:
        raise ICAError(f"[ica] highpass must be a positive cutoff in seconds, got {settings.highpass!r}")
    if isinstance(settings.dimension, int) and not isinstance(settings.dimension, bool) and settings.dimension < 1:
        raise ICAError(f"[ica] dimension must be at least 1, got {settings.dimension}")
    if settings.n_repeats < 1:
        raise ICAError(f"[ica] n_repeats must be at least 1, got {settings.n_repeats}")
    if settings.approach not in APPROACHES:
        raise ICAError(f"[ica] approach must be one of {', '.join(APPROACHES)}, got {settings.approach!r}")
    if settings.nonlinearity not in NONLINEARITIES:
        raise ICAError(f"[ica] nonlinearity must be one of {', '.join(NONLINEARITIES)}, got {settings.nonlinearity!r}")
    if settings.precision not in PRECISIONS:
        raise ICAError(f"[ica] precision must be one of {', '.join(PRECISIONS)}, got {settings.precision!r}")
    if settings.dr_threshold is None or settings.dr_threshold < 0:
        raise ICAError(f"[ica] dr_threshold must be a z value >= 0 (0: whole maps), got {settings.dr_threshold!r}")


def _grayordinates(space) -> dict | None:
    """For CIFTI: grayordinates in the mask per kind, and the structures whose surfaces were given."""
    geometry = space.geometry
    if geometry is None:
        return None
    inside = geometry.is_surface[space.mask]
    return {"surface_vertices": int(inside.sum()), "volume_voxels": int((~inside).sum()),
            "surface_structures": geometry.surface_structures,
            "surfaces_given": sorted(geometry.surfaces), "surfaces_missing": geometry.missing_surfaces}


def ica_stage(runs: Sequence, out: Path, settings: ICASettings = ICASettings(), *, tr: float,
              mask: Path | None = None, labels_file: Path | None = None, classifier=None,
              maps: Path | None = None, overwrite: bool = False,
              progress: Callable[[str, int, int], None] | None = None, cleaning: Sequence | None = None,
              motion: Sequence[np.ndarray | None] | None = None, surfaces: Sequence[Path] = (),
              reader: Callable | None = None) -> Path:
    """Group ICA, dual regression stage 1 of every run, and component classification.

    Parameters
    ----------
    runs : sequence of icanets.study.Run
        The study's BOLD runs (all on one grid).
    out : Path
        Output folder, written atomically.
    tr : float
    mask : Path, optional
        Brain mask; default: voxels with non-zero temporal variance in every run.
    labels_file : Path, optional
        FIX-style labels file whose listed (1-based) components are noise; it replaces the
        automatic classification (whose features are still written).
    classifier : ClassifierSettings, optional
    maps : Path, optional
        Group maps of the user's (e.g. MELODIC's ``melodic_IC.nii.gz``): no group PCA or ICA;
        dual regression, features and labels as usual.
    cleaning : sequence of icanets.qc.denoise.RunCleaning or None, optional
        Per run (in the order of ``runs``): confounds regressed out and volumes censored as the
        run is read, before MIGP, back-reconstruction and dual regression (the stage-1 time
        series then hold the kept volumes only).
    motion : sequence of ndarray (T, 6) or None, optional
        Per run, its motion parameters (all volumes), for the classifier's
        ``motion_correlation`` feature.
    surfaces : sequence of Path, optional
        GIFTI meshes of CIFTI runs' cortical structures: the classifier's edge, cluster and
        smoothness features are computed on them (unavailable without them).
    reader : callable, optional
        ``reader(path, space) -> (T, V)`` array: how a run is read (default
        :func:`icanets.ica.data.read_run`); a new array each call, which the stage may
        overwrite. ``benchmarks/bench_ica_scale.py`` streams synthetic runs through it.

    Outputs
    -------
    ``melodic_IC.nii.gz`` (z maps, strongest first; ``.dscalar.nii`` for CIFTI), ``mask``,
    ``mean`` image, ``mixing.npy``, ``eigenvalues.tsv`` (the concatenated subset's spectrum
    and the log evidence of every rank), ``model_order.json`` (every estimate and the one
    used), ``components.tsv`` (explained variance, stability, the component whose time courses
    correlate most with its own over the runs and that correlation, features, label, reasons,
    keep), ``labels.txt`` (FIX format: per-component labels, the removed components last),
    ``dr_stage1/dr_stage1_subject#####.txt`` and ``<run>_timeseries.npy`` (time x
    components), ``subjects.tsv`` (file number -> participant, session, run), ``dvars.tsv``
    (per run: volumes used, mean and largest DVARS of the in-mask data as analysed, after any
    cleaning, in the data's units) and ``ica.json``.
    """
    from icanets.dualreg import stage1, stage1_regressors, stage2
    from icanets._blocked import run_moments
    from icanets.ica.classify import (ClassifierSettings, classify_components, component_features, rules_not_applied,
                                      temporal_partners)
    from icanets.ica.data import ICAError, load_mask, preprocess_run, read_run, variance_mask
    from icanets.ica.ica import spatial_ica
    from icanets.ica.order import OrderEstimate, consistency_order, estimate_dimension, reproducibility_order, run_order
    from icanets.ica.pca import MIGPAccumulator, ScatterAccumulator, concat_spectrum, run_subspace
    from icanets.qc.denoise import clean_run

    classifier = classifier or ClassifierSettings()
    tick = progress or (lambda stage, done, total: None)
    runs = list(runs)
    if not runs:
        raise ICAError("no runs for group ICA")
    paths = [Path(r.path) for r in runs]
    space = load_mask(mask, paths[0], surfaces) if mask is not None else variance_mask(paths, surfaces)
    cleaning = list(cleaning) if cleaning is not None else [None] * len(runs)
    if len(cleaning) != len(runs):
        raise ICAError(f"cleaning has {len(cleaning)} entries for {len(runs)} runs")

    work = np.dtype(settings.precision)
    read = reader or (lambda path, where: read_run(path, where, dtype=work))

    def load(index: int) -> np.ndarray:
        return np.asarray(clean_run(read(paths[index], space), cleaning[index]), dtype=work)

    order = np.random.default_rng(settings.seed).permutation(len(runs))
    subset, total = [], 0
    # The subset is held in memory (float32) through the first pass: at most SUBSET_BYTES of it.
    limit = min(settings.dimension_timepoints, space.n_voxels, SUBSET_BYTES // (4 * space.n_voxels))
    for i in order:
        if subset and total + runs[i].n_volumes > limit:
            break
        subset.append(int(i))
        total += runs[i].n_volumes
    volumetric = space.kind == "nifti"
    if settings.dimension in ("mdl", "aic") and not volumetric:
        raise ICAError(f"[ica] dimension = {settings.dimension!r} needs volumetric (NIfTI) runs: the i.i.d. "
                       f"subsampling is defined on a voxel grid; use 'consistency', 'laplace' or a number for CIFTI")
    passes = _Passes(mean_sum=np.zeros(space.n_voxels))
    estimate = pca = ica = peak_rows = None
    if maps is None:
        in_subset = set(subset)

        fixed = None if isinstance(settings.dimension, str) else int(settings.dimension)

        def prepared(index: int):
            data, mean, _ = preprocess_run(load(index), variance_normalise=settings.variance_normalise,
                                           highpass=settings.highpass, tr=tr, overwrite=True)
            # The model-order subset is kept in float32 (its spectrum needs no more), half the memory.
            kept = np.asarray(data, dtype=np.float32) if index in in_subset else None
            criteria = run_order(data, space.mask) if (index in in_subset and volumetric) else None
            rows = (run_subspace(data, run_dimension(settings.run_components, data.shape[0], fixed))
                    if settings.run_components is not None else data)
            return rows, mean, kept, criteria

        longest = max(r.n_volumes for r in runs)
        n_internal = settings.n_internal or 2 * longest
        # Two halves of the subjects, each its own group PCA (merged below into that of all runs),
        # for the split-half reproducibility of the model order.
        half_of = _halves([r.subject for r in runs], settings.seed)
        block_rows = migp_block_rows(space.n_voxels, n_internal)
        halves = [ScatterAccumulator(min(n_internal, space.n_voxels)) if settings.exact
                  else MIGPAccumulator(n_internal, block_rows=block_rows, dtype=work) for _ in range(2)]
        run_rows = []
        for done, (i, (rows, mean, kept, criteria)) in enumerate(
                zip(order, stream_items(prepared, [int(i) for i in order])), start=1):
            run_rows.append(rows.shape[0])
            passes.mean_sum += mean
            if kept is not None:
                passes.subset.append(kept)
            if criteria is not None:
                passes.run_orders.append(criteria)
            halves[half_of[int(i)]].add(rows)
            del rows
            tick("group PCA", done, len(runs))
        split = all(h.n_runs for h in halves)
        per_half = min(len({runs[k].subject for k in range(len(runs)) if half_of[k] == h}) for h in (0, 1))
        # Halves this small reproduce only their strongest components, so the split-half count
        # would under-estimate: it is not computed (on the tiny preset it would be 90 % of the stage).
        split_half = split and isinstance(settings.dimension, str) and per_half >= MIN_SUBJECTS_PER_HALF
        # Memory: the subset is freed before the group PCA is formed, each half's components (as
        # many as the split-half order can use) are taken before the halves are merged, and
        # each internal matrix is freed as soon as it has been used.
        spectrum = concat_spectrum(passes.subset)
        passes.subset.clear()
        half_pcas = [h.result(settings.max_dimension) for h in halves] if split_half else None
        source = halves[0].absorb(halves[1]) if split else halves[0] if halves[0].n_runs else halves[1]
        pca = source.result()
        for h in halves:
            h.release()
        cap = min(settings.max_dimension, spectrum.size - 1, pca.eigenvalues.size)
        if cap < 1:
            raise ICAError(f"too little data for group ICA: {spectrum.size} eigenvalues in the subset, "
                           f"{pca.eigenvalues.size} group components")
        estimates, evidence = {}, {}
        for method in ("laplace", "bic"):
            estimates[method], evidence[method] = estimate_dimension(spectrum, space.n_voxels, method=method,
                                                                     max_rank=cap)
        if passes.run_orders:
            for method in ("mdl", "aic"):
                value = int(round(float(np.median([getattr(r, method) for r in passes.run_orders]))))
                estimates[method] = int(min(max(value, 1), cap))
        consistency = edge = None
        if settings.run_components is not None:
            consistency = pca.eigenvalues * pca.n_timepoints / len(runs)
            value, edge = consistency_order(consistency, n_runs=len(runs), run_components=float(np.mean(run_rows)),
                                            n_voxels=space.n_voxels)
            estimates["consistency"] = int(min(max(value, 1), settings.max_dimension, pca.eigenvalues.size))
        curve = None
        method = settings.dimension if isinstance(settings.dimension, str) else "fixed"
        note = None
        if isinstance(settings.dimension, str):
            if split_half:
                mean_image = passes.mean_sum / len(runs)

                def nuisance(z_maps: np.ndarray) -> int:
                    # Maps the classifier's spatial rules call noise (no time courses yet).
                    table = classify_components(component_features(z_maps, [], tr, space, mean_image=mean_image,
                                                                   settings=classifier), classifier)
                    return int((table["label"] == "noise").sum())

                estimates["reproducibility"], curve = reproducibility_order(
                    *half_pcas, cap=min(settings.max_dimension, pca.eigenvalues.size), seed=settings.seed,
                    nuisance=nuisance)
                half_pcas = None
            elif not split and settings.dimension == "reproducibility":
                raise ICAError("[ica] dimension = 'reproducibility' needs at least two runs to split into halves; "
                               "give a number or another method (consistency, laplace, bic, mdl, aic)")
            if split and not split_half:
                note = (f"{per_half} subjects in the smaller half, fewer than the {MIN_SUBJECTS_PER_HALF} the "
                        f"split-half estimate needs: it is not computed")
                if method == "reproducibility":
                    # The group consistency of the runs' subspaces uses all the data.
                    fallback = "consistency" if "consistency" in estimates else "laplace"
                    note += f", and the {fallback} estimate is used"
                    warnings.warn(f"[ica] dimension = 'reproducibility': {note}", IcanetsWarning, stacklevel=2)
                    method = fallback
            dimension = estimates[method]
        else:
            dimension = int(settings.dimension)
            if dimension > pca.eigenvalues.size:
                raise ICAError(f"[ica] dimension {dimension} exceeds the {pca.eigenvalues.size} group principal "
                               f"components available (MIGP keeps n_internal = {n_internal})")
        estimate = OrderEstimate(method=method, dimension=dimension, note=note, estimates=estimates, spectrum=spectrum, evidence=evidence,
                                 runs=passes.run_orders, consistency=consistency, edge=edge, reproducibility=curve)
        tick("model order", 1, 1)
        ica = spatial_ica(pca, dimension, seed=settings.seed, n_repeats=settings.n_repeats, approach=settings.approach,
                          nonlinearity=settings.nonlinearity)
        peak_rows, pca = pca.peak_rows, None  # the group components are not needed any more: free them
        tick("spatial ICA", 1, 1)
        ic_maps = ica.maps
        stability = ica.stability if ica.stability is not None else np.full(dimension, np.nan)
        mixing = ica.mixing
    else:
        ic_maps = space.from_image(maps)
        dimension = ic_maps.shape[0]
        stability = np.full(dimension, np.nan)
        n_internal = mixing = None

    given = maps is not None
    ica_maps = None
    if not given and settings.refine_maps:
        # Back-reconstruction: each run's stage-2 regression maps, averaged over all runs, are
        # estimated from all the data rather than from the group subspace, so weak nodes' maps
        # carry less noise; they replace the ICA maps for the final dual regression.
        regressors = stage1_regressors(spatial_regressors(ic_maps, settings.dr_threshold))

        def back_project(index: int) -> np.ndarray:
            data = load(index)
            return stage2(data, stage1(data, regressors), tstats=False).betas

        total_betas = np.zeros_like(ic_maps)
        for done, betas in enumerate(stream_items(back_project, list(range(len(paths)))), start=1):
            total_betas += betas
            tick("back-reconstruction", done, len(paths))
        refined = total_betas - total_betas.mean(axis=1, keepdims=True)
        sd = refined.std(axis=1, keepdims=True)
        if np.any(sd == 0):
            raise ICAError("a back-reconstructed map is constant; set [ica] refine_maps = false")
        refined /= sd
        refined *= np.where(np.einsum("kv,kv->k", refined, ic_maps) < 0, -1.0, 1.0)[:, None]
        ica_maps, ic_maps = ic_maps, refined

    final_regressors = spatial_regressors(ic_maps, settings.dr_threshold)
    prepared_regressors = stage1_regressors(final_regressors)

    def regress(index: int) -> tuple[np.ndarray, np.ndarray | None, float, np.ndarray]:
        data = load(index)
        timecourse = stage1(data, prepared_regressors)
        mean, run_energy, run_dvars = run_moments(data)  # a block of voxels at a time: no copy of the run
        return timecourse, (mean if given else None), run_energy, run_dvars

    timecourses, energy, run_dvars = [], 0.0, []
    for done, (tc, mean, run_energy, dv) in enumerate(stream_items(regress, list(range(len(paths)))), start=1):
        run_dvars.append(dv)
        timecourses.append(tc)
        energy += run_energy
        if given:
            passes.mean_sum += mean
        tick("dual regression", done, len(paths))
    # Variance each component carries in the data: its stage-1 fit, ||tc_k||^2 ||map_k||^2, over all runs.
    norms = np.sum(final_regressors**2, axis=1)
    explained = np.sum([np.sum(tc**2, axis=0) for tc in timecourses], axis=0) * norms / energy
    if not given:  # MELODIC's order: strongest first
        rank = np.argsort(-explained, kind="stable")
        ic_maps, explained, stability = ic_maps[rank], explained[rank], stability[rank]
        ica_maps = ica_maps[rank] if ica_maps is not None else None
        mixing = mixing[:, rank]
        timecourses = [tc[:, rank] for tc in timecourses]
    run_motion = None
    if motion is not None and any(m is not None for m in motion):
        run_motion = [None if m is None else (m if c is None or c.keep is None else m[c.keep])
                      for m, c in zip(motion, cleaning)]
    features = component_features(ic_maps, timecourses, tr, space, mean_image=passes.mean_sum / len(runs),
                                  motion=run_motion,
                                  settings=classifier)
    table = classify_components(features, classifier, stability=None if given else stability)
    table.insert(1, "explained_variance", explained)
    table.insert(2, "stability", stability)
    partner, partner_r = temporal_partners(timecourses)
    table.insert(3, "partner", np.where(partner >= 0, partner + 1, 0))  # 1-based, as "component"
    table.insert(4, "partner_r", partner_r)
    table["label_source"] = "automatic"
    if labels_file is not None:
        given_labels = read_fix_label_lines(labels_file, dimension)
        if given_labels is None:
            from icanets.io.fsl import read_fix_labels

            noise = set(read_fix_labels(labels_file, dimension).tolist())
            given_labels = ["noise" if c - 1 in noise else "signal" for c in table["component"]]
        table["label"] = given_labels
        table["keep"] = [lab == "signal" or (lab == "uncertain" and classifier.keep_uncertain) for lab in given_labels]
        table["label_source"] = f"labels file {Path(labels_file).name}"

    with atomic_folder(Path(out), overwrite=overwrite) as tmp:
        suffix = ".dscalar.nii" if space.kind == "cifti" else ".nii.gz"
        import nibabel as nib

        nib.save(space.to_image(ic_maps), str(tmp / f"melodic_IC{suffix}"))
        if ica_maps is not None:
            nib.save(space.to_image(ica_maps), str(tmp / f"ica_estimates{suffix}"))
        nib.save(space.to_image(passes.mean_sum[None] / len(runs)), str(tmp / f"mean{suffix}"))
        nib.save(space.to_image(np.ones((1, space.n_voxels))), str(tmp / f"mask{suffix}"))
        if estimate is not None:
            np.save(tmp / "mixing.npy", mixing)
            spectrum = estimate.spectrum
            eigen = pd.DataFrame({"rank": np.arange(1, spectrum.size + 1), "eigenvalue": spectrum})
            for method, values in estimate.evidence.items():
                eigen[f"log_evidence_{method}"] = np.r_[values, [np.nan] * (spectrum.size - values.size)]
            if estimate.consistency is not None:
                size = max(len(eigen), estimate.consistency.size)
                eigen = eigen.reindex(range(size))
                eigen["rank"] = np.arange(1, size + 1)
                eigen["consistency"] = np.r_[estimate.consistency, [np.nan] * (size - estimate.consistency.size)]
            eigen.to_csv(tmp / "eigenvalues.tsv", sep="\t", index=False, float_format="%.8g")
            (tmp / "model_order.json").write_text(json.dumps({
                "method": estimate.method, "asked": settings.dimension, "note": estimate.note,
                "dimension": estimate.dimension, "estimates": estimate.estimates,
                "consistency_edge": estimate.edge,
                "reproducibility": asdict(estimate.reproducibility) if estimate.reproducibility else None,
                "run_components": settings.run_components, "run_dimensions": sorted(set(run_rows)),
                "max_dimension": settings.max_dimension, "subset_runs": len(subset), "subset_timepoints": total,
                "n_voxels": space.n_voxels,
                "runs": [asdict(r) for r in estimate.runs],
            }, indent=2, default=json_default) + "\n")
        table.to_csv(tmp / "components.tsv", sep="\t", index=False, float_format="%.6g")
        write_fix_labels(tmp / "labels.txt", table["label"].tolist(), removed=(~table["keep"]).tolist())
        stage_dir = tmp / "dr_stage1"
        stage_dir.mkdir()
        rows = []
        for k, (run, tc) in enumerate(zip(runs, timecourses)):
            write_text_matrix(stage_dir / f"dr_stage1_subject{k:05d}.txt", tc)
            np.save(stage_dir / f"{run.name.removesuffix('_bold')}_timeseries.npy", tc)
            rows.append({"index": k, "participant_id": run.subject, "session_id": run.session or "",
                         "run": run.run_label or "", "source": str(run.path)})
        pd.DataFrame(rows).to_csv(tmp / "subjects.tsv", sep="\t", index=False)
        pd.DataFrame({"run": [getattr(r, "name", Path(r.path).name) for r in runs],
                      "participant_id": [r.subject for r in runs],
                      "session_id": [r.session or "" for r in runs], "n_volumes_used": [len(d) for d in run_dvars],
                      "mean_dvars": [float(d[1:].mean()) if len(d) > 1 else np.nan for d in run_dvars],
                      "max_dvars": [float(d.max()) for d in run_dvars]}).to_csv(
            tmp / "dvars.tsv", sep="\t", index=False, float_format="%.6g")
        counts = table["label"].value_counts()
        sidecar = provenance("ica", {**asdict(settings), "dimension_used": dimension, "n_internal": n_internal,
                                     "model_order": estimate.estimates if estimate else None,
                                     "mask": str(mask) if mask else "non-zero variance in every run",
                                     "n_voxels": space.n_voxels, "peak_rows": peak_rows,
                                     "migp_block_rows": None if maps is not None or settings.exact else block_rows,
                                     "migp_dtype": None if maps is not None or settings.exact else settings.precision,
                                     "tr": tr, "maps": str(maps) if maps else None,
                                     "classifier": asdict(classifier),
                                     "rules_not_applied": rules_not_applied(features),
                                     "surfaces": [str(p) for p in surfaces],
                                     "grayordinates": _grayordinates(space),
                                     "labels_file": str(labels_file) if labels_file else None,
                                     "n_signal": int(counts.get("signal", 0)),
                                     "n_uncertain": int(counts.get("uncertain", 0)),
                                     "cleaning": {"runs_cleaned": sum(c is not None for c in cleaning),
                                                  "runs_with_confounds": sum(c is not None and c.confounds is not None
                                                                             for c in cleaning),
                                                  "volumes_censored": int(sum(int((~c.keep).sum()) for c in cleaning
                                                                              if c is not None and c.keep is not None)),
                                                  "volumes": int(sum(r.n_volumes for r in runs))},
                                     "n_noise": int(counts.get("noise", 0)),
                                     "n_kept": int(table["keep"].sum())},
                             [*paths, *([mask] if mask else []), *([labels_file] if labels_file else []), *surfaces,
                              *([maps] if maps else [])],
                             settings.seed)
        (tmp / "ica.json").write_text(json.dumps(sidecar, indent=2, default=json_default) + "\n")
    return Path(out)
