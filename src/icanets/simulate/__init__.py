"""Synthetic studies with planted ground truth, shaped like the reference ketamine study.

:func:`simulate_study` writes, into one output folder::

    OUT/
      bids/        the BIDS dataset (participants.tsv, sessions.tsv, 4D BOLD runs + JSON)
      mask.nii.gz  the brain mask of the grid
      study.toml   a study configuration for the dataset (roles TP1-TP3, derived variables)

With ``format="cifti"`` the runs are CIFTI dense time series over two synthetic cortical
surfaces (``surfaces/*.surf.gii``) and a volume part, the mask is ``mask.dscalar.nii`` and the
true maps are also written as ``.dscalar.nii``; with ``layout="hcp"`` the dataset is ``hcp/``,
laid out as HCP pipeline outputs (see :func:`simulate_study`).
      truth/       the ground truth, beside the dataset and not inside it:
                   truth.json (preset, seed, files), nodes.tsv, planted_edges.tsv,
                   node_maps.nii.gz, artifact_maps.nii.gz, background_partial.npy,
                   partial.npy + partial_index.tsv (true partial correlations per
                   subject-session), timeseries/<run>_nodes.npy and _artifacts.npy

The cohort has healthy controls (``HC``) and patients (``MDD``); patients are scanned at up
to three sessions (``ses-1..3``, some missing), some controls twice; each session has one
or two runs. Patients' HDRS falls with treatment and about half remit (HDRS <= 7 at
``ses-3``). Three edges of the true network carry planted effects (see
:class:`~icanets.simulate._network.PlantedEdge`): controls > patients (group), a decrease
from session 1 to 3 in patients (treatment), and a time x remission interaction.

Images: node maps made of anisotropic Gaussian lobes (some nodes bilateral, some irregular,
of varied size and amplitude) on an MNI-like grid, mixed with band-limited node time courses
drawn from each subject-session's precision matrix, plus artifact components (rim with spikes,
high-frequency, slow drift, CSF-like centre), on a baseline image. What real data do is
switched on at realistic levels by default (see :data:`REALISM_FACTORS`; each is a knob of
:class:`Preset`): nodes moved and reshaped per subject and the whole head misregistered per
session; amplitudes varying between nodes, subjects and sessions; brain-wide motion spikes;
slow drifts; aliased cardiac and respiratory noise; spatially smooth, autocorrelated noise;
runs of unequal length. ``truth/runs.tsv`` lists each run's length, shift and amplitude.
Output is bit-identical for the same preset and seed: every random stream is seeded from
``(seed, subject, session, run)``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
import pandas as pd

from icanets._defaults import DEFAULT_MIN_VOLUMES, MIN_TIMEPOINTS
from icanets._version import __version__
from icanets.errors import IcanetsError
from icanets.io.atomic import atomic_folder
from icanets.io.bids import bold_filename
from icanets.simulate._cifti import SURFACE_FILES, cifti_layout, save_dscalar, save_dtseries, save_surfaces
from icanets.simulate._cohort import REMISSION_THRESHOLD, Cohort, make_cohort
from icanets.simulate._images import (
    artifact_maps,
    artifact_timecourses,
    brain_mask,
    make_grid,
    node_shapes,
    place_nodes,
    render_nodes,
    shift_maps,
    ventricles,
)
from icanets.simulate._nuisance import drifts, edge_profile, motion_spikes, physiological, smooth_noise, vessel_map
from icanets.simulate._motion import (confounds_table, motion_parameters, motion_signal, smooth_pattern,
                                      subject_motion_scale)
from icanets.simulate._network import (
    condition_partial,
    interaction_score,
    make_network,
    node_timecourses,
    subject_partial,
    symmetric_noise,
)
from icanets.simulate._presets import PRESETS, REALISM_FACTORS, REALISM_LEVELS, Preset, get_preset

__all__ = ["simulate_study", "SimulationResult", "Preset", "PRESETS", "get_preset", "study_config_text",
           "REALISM_FACTORS", "REALISM_LEVELS",
           "condition_partial", "node_timecourses", "REMISSION_THRESHOLD"]

TASK = "rest"
SPACE = "MNI152NLin6Asym"
CIFTI_SPACE = "fsLR"
DESC = "preproc"
#: Image formats :func:`simulate_study` writes.
FORMATS = ("nifti", "cifti")

# Random streams, keyed as SeedSequence(seed, spawn_key=(stream, ...)).
_COHORT, _NETWORK, _LAYOUT, _SUBJECT, _SESSION, _RUN, _MOTION = range(7)


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=tuple(key)))


class SimulationResult:
    """Paths of a simulated study (``root``, ``bids``, ``truth``, ``config``, ``mask``; for
    CIFTI also ``surfaces``)."""

    def __init__(self, root: Path, format: str = "nifti", layout: str = "bids"):
        self.root = Path(root)
        self.format = format
        self.layout = layout
        self.bids = self.root / ("hcp" if layout == "hcp" else "bids")
        self.truth = self.root / "truth"
        self.config = self.root / "study.toml"
        self.mask = self.root / ("mask.dscalar.nii" if format == "cifti" else "mask.nii.gz")
        self.surfaces = [self.root / f for f in SURFACE_FILES.values()] if format == "cifti" else []

    def __repr__(self) -> str:
        return f"SimulationResult({str(self.root)!r})"


def simulate_study(out: Path | str, preset: str | Preset = "demo", *, seed: int = 0, overwrite: bool = False,
                   progress: Callable[[int, int], None] | None = None, format: str = "nifti",
                   layout: str = "bids") -> SimulationResult:
    """Simulate a study and write it to ``out`` (see the module docstring for the layout).

    Parameters
    ----------
    out : Path
        Output folder; must not exist unless ``overwrite``.
    preset : str or Preset, default "demo"
        ``"tiny"``, ``"demo"``, ``"paper"``, or a :class:`Preset`.
    seed : int, default 0
    overwrite : bool, default False
        Replace an existing ``out``.
    progress : callable, optional
        Called as ``progress(done, total)`` after each run is written.
    format : {"nifti", "cifti"}, default "nifti"
        ``"cifti"``: the runs as CIFTI dense time series (``space-fsLR``,
        ``.dtseries.nii``) over two synthetic cortical surfaces (written as GIFTI under
        ``surfaces/``) and a volume part, the mask and the true maps as ``.dscalar.nii`` (the
        true maps also as NIfTI). The data are those of the NIfTI version, reordered (see
        :mod:`icanets.simulate._cifti`).
    layout : {"bids", "hcp"}, default "bids"
        ``"hcp"`` (CIFTI only): the runs laid out as HCP pipeline outputs, in ``hcp/``:
        ``<subject>_V<session>_MR/MNINonLinear/Results/rfMRI_REST<run>_AP/`` holding
        ``rfMRI_REST<run>_AP_Atlas_MSMAll_hp2000_clean.dtseries.nii`` and
        ``Movement_Regressors.txt`` (translations in mm, rotations in degrees, then their
        derivatives), with ``participants.tsv`` and one ``sessions.tsv`` beside the subject
        folders; the study config sets ``[study] layout = "hcp"``.

    Returns
    -------
    SimulationResult

    Notes
    -----
    The study is written into a temporary sibling folder first and renamed to ``out``
    only when complete, so an interrupted simulation never leaves a folder that looks
    finished.
    """
    preset = get_preset(preset) if isinstance(preset, str) else preset
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise IcanetsError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    if format not in FORMATS:
        raise IcanetsError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    if layout not in ("bids", "hcp"):
        raise IcanetsError(f"layout must be bids or hcp, got {layout!r}")
    if layout == "hcp" and format != "cifti":
        raise IcanetsError("the HCP layout holds CIFTI dense time series: give format='cifti' (--format cifti)")
    shortest = shortest_run(preset)
    if shortest < MIN_TIMEPOINTS:  # the netmats stage's own minimum
        raise IcanetsError(f"preset {preset.name!r} with {preset.n_volumes} volumes per run (shortened by up to "
                           f"{preset.volumes_spread:.0%}) gives runs of {shortest} volumes; at least "
                           f"{MIN_TIMEPOINTS} are needed for network matrices (give more --volumes)")
    out = Path(out)
    with atomic_folder(out, overwrite=overwrite) as tmp:
        (tmp / ("hcp" if layout == "hcp" else "bids")).mkdir()
        (tmp / "truth" / "timeseries").mkdir(parents=True)
        _write_study(tmp, preset, seed, progress, format, layout)
    return SimulationResult(out, format, layout)


def _write_study(root: Path, preset: Preset, seed: int, progress, format: str = "nifti", dataset_layout: str = "bids") -> None:
    cohort = make_cohort(preset, _rng(seed, _COHORT))
    network = make_network(preset, _rng(seed, _NETWORK))
    grid = make_grid(preset.resolution)
    mask = brain_mask(grid)
    xyz = grid.world()[mask]
    layout_rng = _rng(seed, _LAYOUT)
    layout = place_nodes(grid, mask, preset.n_nodes, preset.n_bilateral, preset.blob_fwhm, layout_rng)
    art_maps, art_kinds = artifact_maps(grid, mask, preset.n_artifacts, layout_rng)
    shapes = node_shapes(layout, preset.blob_fwhm, size_spread=preset.size_spread,
                         max_extra_lobes=preset.max_extra_lobes, rng=layout_rng)
    amplitudes = preset.node_amplitude * np.exp(layout_rng.uniform(-preset.amplitude_spread, preset.amplitude_spread,
                                                                   preset.n_nodes))
    true_maps = render_nodes(xyz, shapes)
    base_image = _baseline_image(grid, mask, preset.baseline)
    edge = edge_profile(mask)
    vessels = vessel_map(xyz, edge, ventricles(grid)[mask])

    csf_voxels = ventricles(grid)[mask] > 0
    deep = edge < np.exp(-2.0)  # three or more voxels from the brain's edge
    wm_voxels = deep & ~csf_voxels if np.any(deep & ~csf_voxels) else ~csf_voxels

    bids = root / ("hcp" if dataset_layout == "hcp" else "bids")
    _write_tables(bids, cohort, dataset_layout)
    cifti = cifti_layout(grid, mask) if format == "cifti" else None
    _save_maps(true_maps, mask, grid, root / "truth" / "node_maps.nii.gz")
    _save_maps(art_maps, mask, grid, root / "truth" / "artifact_maps.nii.gz")
    if cifti is None:
        _save_volume(mask.astype(np.uint8), grid, root / "mask.nii.gz")
    else:
        save_dscalar(np.ones((1, mask.sum())), cifti, root / "mask.dscalar.nii", names=["mask"])
        save_dscalar(true_maps, cifti, root / "truth" / "node_maps.dscalar.nii")
        save_dscalar(art_maps, cifti, root / "truth" / "artifact_maps.dscalar.nii")
        save_surfaces(cifti, root)

    groups = cohort.participants.set_index("participant_id")["group"]
    subjects = list(groups.index)
    partials, partial_index, run_rows = [], [], []
    total = int(cohort.sessions["n_runs"].sum())
    done = 0
    k = preset.n_nodes
    noise_sd = preset.noise_sd
    for s_index, subject in enumerate(subjects):
        srng = _rng(seed, _SUBJECT, s_index)
        offsets = srng.normal(0.0, preset.misalign, (k, 3))
        subject_dev = symmetric_noise(k, preset.subject_sd, srng)
        radius_factors = [np.exp(srng.normal(0.0, preset.shape_sd, shape.radii.shape)) for shape in shapes]
        z = interaction_score(cohort.improvement[subject])
        motion_scale = subject_motion_scale(preset.motion_fd, groups[subject] == "MDD", preset.motion_group_ratio,
                                            _rng(seed, _MOTION, s_index))
        for _, row in cohort.sessions[cohort.sessions["participant_id"] == subject].iterrows():
            session = row["session_id"]
            ses_index = int(session.split("-")[1])
            erng = _rng(seed, _SESSION, s_index, ses_index)
            condition = condition_partial(network, preset, groups[subject], session, z)
            partial = subject_partial(condition, network.background,
                                      subject_dev + symmetric_noise(k, preset.session_sd, erng))
            partials.append(partial)
            partial_index.append((subject, session))
            shift = erng.uniform(-preset.session_shift, preset.session_shift, 3)
            gain = amplitudes * np.exp(erng.normal(0.0, preset.subject_amplitude_sd)
                                       + erng.normal(0.0, preset.node_amplitude_sd, k))
            maps = render_nodes(xyz, shapes, offsets=offsets, radius_factors=radius_factors, shift=shift) * gain[:, None]
            session_artifacts = shift_maps(art_maps, mask, grid, shift)
            session_base = shift_maps(base_image[None], mask, grid, shift)[0]
            for run in range(1, int(row["n_runs"]) + 1):
                rrng = _rng(seed, _RUN, s_index, ses_index, run)
                n_volumes = preset.n_volumes - int(np.floor(rrng.uniform(0.0, preset.volumes_spread) * preset.n_volumes))
                n_volumes = max(n_volumes, min(preset.n_volumes, 20))
                tcs = node_timecourses(partial, n_volumes, preset.tr, preset.band, rrng)
                art_tcs = artifact_timecourses(art_kinds, n_volumes, preset.tr, rrng)
                data = tcs @ maps + preset.artifact_amplitude * (art_tcs @ session_artifacts)
                data += noise_sd * smooth_noise(mask, n_volumes, preset.noise_fwhm, preset.noise_ar, rrng)
                spikes = motion_spikes(n_volumes, preset.motion_spikes, preset.spike_amplitude, xyz, edge, rrng)
                for nuisance_tcs, patterns in (
                        spikes,
                        drifts(n_volumes, preset.tr, preset.drift_amplitude, xyz, rrng),
                        physiological(n_volumes, preset.tr, preset.cardiac_amplitude, preset.respiration_amplitude,
                                      vessels, edge, xyz, rrng)):
                    if patterns.shape[0]:
                        data += noise_sd * (nuisance_tcs @ patterns)
                mrng = _rng(seed, _MOTION, s_index, ses_index, run)  # its own stream: the BOLD above is unchanged
                params = motion_parameters(n_volumes, motion_scale, np.flatnonzero((spikes[0] == 1.0).any(axis=1)),
                                           mrng)
                if preset.motion_fc_bias > 0:
                    pattern = smooth_pattern(mask, 40.0 / preset.resolution, mrng)  # new in every run, as spin history
                    data += noise_sd * preset.motion_fc_bias * motion_signal(params, preset.motion_fd, pattern, mrng)
                data += session_base
                entities = {"sub": subject[4:], "ses": session[4:], "task": TASK, "run": str(run),
                            "space": SPACE if cifti is None else CIFTI_SPACE, "desc": DESC}
                extension = ".nii.gz" if cifti is None else ".dtseries.nii"
                name = bold_filename(entities, extension)
                if dataset_layout == "hcp":
                    _write_hcp_run(bids, subject, session, run, data, params, cifti, preset.tr)
                else:
                    folder = bids / subject / session / "func"
                    folder.mkdir(parents=True, exist_ok=True)
                    if cifti is None:
                        _save_run(data, mask, grid, preset.tr, folder / name)
                    else:
                        save_dtseries(data, cifti, preset.tr, folder / name)
                    confounds = bold_filename({k: v for k, v in entities.items() if k not in ("space", "desc")}
                                              | {"desc": "confounds"}, ".tsv", suffix="timeseries")
                    confounds_table(params, data, csf=csf_voxels, white_matter=wm_voxels, tr=preset.tr).to_csv(
                        folder / confounds, sep="\t", index=False, na_rep="n/a", float_format="%.10g")
                    sidecar = {"RepetitionTime": preset.tr, "TaskName": TASK, "SkullStripped": True}
                    (folder / bold_filename(entities, ".json")).write_text(json.dumps(sidecar, indent=2) + "\n")
                stem = name[: -len("_bold" + extension)]
                np.save(root / "truth" / "timeseries" / f"{stem}_nodes.npy", tcs)
                np.save(root / "truth" / "timeseries" / f"{stem}_artifacts.npy", art_tcs)
                run_rows.append({"run": stem, "participant_id": subject, "session_id": session, "n_volumes": n_volumes,
                                 "motion_scale": motion_scale,
                                 "shift_x": shift[0], "shift_y": shift[1], "shift_z": shift[2],
                                 "amplitude_scale": float(np.mean(gain / amplitudes))})
                done += 1
                if progress is not None:
                    progress(done, total)

    truth = root / "truth"
    np.save(truth / "background_partial.npy", network.background)
    np.save(truth / "partial.npy", np.array(partials))
    pd.DataFrame(partial_index, columns=["participant_id", "session_id"]).to_csv(
        truth / "partial_index.tsv", sep="\t", index=False)
    _write_nodes(truth / "nodes.tsv", layout, network, art_kinds, preset, amplitudes)
    pd.DataFrame(run_rows).to_csv(truth / "runs.tsv", sep="\t", index=False, float_format="%.4g")
    _write_planted(truth / "planted_edges.tsv", network, preset)
    cohort.improvement.rename_axis("participant_id").reset_index().to_csv(
        truth / "improvement.tsv", sep="\t", index=False, na_rep="n/a")
    (root / "study.toml").write_text(study_config_text(preset, format, dataset_layout))
    (truth / "truth.json").write_text(json.dumps({
        "generated_by": f"icanets {__version__} simulate",
        "preset": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(preset).items()},
        "seed": seed,
        "format": format,
        "layout": dataset_layout,
        "n_subjects": len(subjects),
        "n_runs": total,
        "groups": {"HC": int((groups == "HC").sum()), "MDD": int((groups == "MDD").sum())},
        "remission_threshold": REMISSION_THRESHOLD,
        "planted_edges": [asdict(e) for e in network.planted],
        "files": {
            "node_maps": "node_maps.nii.gz", "artifact_maps": "artifact_maps.nii.gz", "nodes": "nodes.tsv",
            "planted_edges": "planted_edges.tsv", "partial": "partial.npy", "partial_index": "partial_index.tsv",
            "background_partial": "background_partial.npy", "timeseries": "timeseries/",
            "improvement": "improvement.tsv", "runs": "runs.tsv",
        },
        "realism": preset.realism(),
    }, indent=2) + "\n")


def _baseline_image(grid, mask, baseline: float) -> np.ndarray:
    xyz = grid.world()[mask]
    # A smooth intensity variation, as from coil sensitivity, and bright CSF, as in T2*-weighted EPI.
    image = baseline * (1.0 + 0.1 * np.cos(xyz[:, 1] / 40.0) * np.cos(xyz[:, 2] / 50.0))
    return image * np.where(ventricles(grid)[mask], 1.4, 1.0)


def _to_volume(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(n, V) -> (x, y, z, n) with zeros outside the mask."""
    out = np.zeros(mask.shape + (values.shape[0],), dtype=np.float32)
    out[mask] = values.T
    return out


def _save_volume(volume: np.ndarray, grid, path: Path) -> None:
    img = nib.Nifti1Image(volume, grid.affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_qform(grid.affine, code=4)
    img.header.set_sform(grid.affine, code=4)
    nib.save(img, str(path))


def _save_maps(maps: np.ndarray, mask, grid, path: Path) -> None:
    _save_volume(_to_volume(maps, mask), grid, path)


def _save_run(data: np.ndarray, mask, grid, tr: float, path: Path) -> None:
    volume = _to_volume(data, mask)
    img = nib.Nifti1Image(volume, grid.affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_qform(grid.affine, code=4)
    img.header.set_sform(grid.affine, code=4)
    img.header.set_zooms(tuple(abs(grid.affine[i, i]) for i in range(3)) + (tr,))
    img.header.set_data_dtype(np.int16)  # stored scaled, as scanners and many pipelines do
    nib.save(img, str(path))


def _write_hcp_run(dataset: Path, subject: str, session: str, run: int, data: np.ndarray, params: np.ndarray,
                   cifti, tr: float) -> None:
    """One run as the HCP pipelines lay it out (see :func:`simulate_study`)."""
    run_name = f"rfMRI_REST{run}_AP"
    folder = dataset / f"{subject[4:]}_V{session[4:]}_MR" / "MNINonLinear" / "Results" / run_name
    folder.mkdir(parents=True, exist_ok=True)
    save_dtseries(data, cifti, tr, folder / f"{run_name}_Atlas_MSMAll_hp2000_clean.dtseries.nii")
    _save_movement_regressors(params, folder / "Movement_Regressors.txt")


def _save_movement_regressors(params: np.ndarray, path: Path) -> None:
    """HCP's ``Movement_Regressors.txt``: x, y, z translations (mm), rotations (degrees), then
    the backward derivatives of the six (0 in the first row), space-separated."""
    values = np.column_stack([params[:, :3], np.rad2deg(params[:, 3:])])
    derivatives = np.vstack([np.zeros((1, 6)), np.diff(values, axis=0)])
    np.savetxt(path, np.hstack([values, derivatives]), fmt="%.6f", delimiter="  ")


def _write_tables(bids: Path, cohort: Cohort, layout: str = "bids") -> None:
    bids.mkdir(parents=True, exist_ok=True)
    (bids / "dataset_description.json").write_text(json.dumps({
        "Name": "icanets synthetic study", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "icanets simulate", "Version": __version__}],
    }, indent=2) + "\n")
    cohort.participants.to_csv(bids / "participants.tsv", sep="\t", index=False, na_rep="n/a")
    (bids / "participants.json").write_text(json.dumps({
        "group": {"Description": "diagnostic group", "Levels": {"HC": "healthy control", "MDD": "major depressive disorder"}},
        "age": {"Description": "age at baseline", "Units": "years"},
        "sex": {"Description": "sex", "Levels": {"F": "female", "M": "male"}},
    }, indent=2) + "\n")
    if layout == "hcp":
        cohort.sessions[["participant_id", "session_id", "hdrs"]].to_csv(
            bids / "sessions.tsv", sep="\t", index=False, na_rep="n/a", float_format="%g")
        return
    for subject, table in cohort.sessions.groupby("participant_id", sort=True):
        folder = bids / subject
        folder.mkdir(parents=True, exist_ok=True)
        table[["session_id", "hdrs"]].to_csv(folder / f"{subject}_sessions.tsv", sep="\t", index=False,
                                             na_rep="n/a", float_format="%g")


def _write_nodes(path: Path, layout, network, art_kinds, preset: Preset, amplitudes: np.ndarray) -> None:
    rows = []
    for k, centres in enumerate(layout.centres):
        c = centres[0]
        rows.append({"index": k, "name": f"N{k + 1:03d}", "kind": "signal", "artifact": "n/a",
                     "network": int(network.networks[k]), "bilateral": bool(layout.bilateral[k]),
                     "amplitude": round(float(amplitudes[k]), 3),
                     "x": round(float(c[0]), 2), "y": round(float(c[1]), 2), "z": round(float(c[2]), 2)})
    for a, kind in enumerate(art_kinds):
        rows.append({"index": preset.n_nodes + a, "name": f"A{a + 1:03d}", "kind": "artifact", "artifact": kind,
                     "network": "n/a", "bilateral": "n/a", "amplitude": preset.artifact_amplitude, "x": "n/a", "y": "n/a", "z": "n/a"})
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)


def _write_planted(path: Path, network, preset: Preset) -> None:
    """One row per planted edge: its true partial correlation per group and session.

    ``MDD_remitter_*`` and ``MDD_nonremitter_*`` are patients with interaction score
    z = +1 and z = -1 (the extremes; individual patients lie in between).
    """
    rows = []
    for edge in network.planted:
        row = {"effect": edge.effect, "node_i": edge.node_i, "node_j": edge.node_j}
        for group, session in [("HC", "ses-1"), ("HC", "ses-2"), ("MDD", "ses-1"), ("MDD", "ses-2"), ("MDD", "ses-3")]:
            row[f"{group}_{session}"] = condition_partial(network, preset, group, session, 0.0)[edge.node_i, edge.node_j]
        for label, z in [("remitter", 1.0), ("nonremitter", -1.0)]:
            for session in ("ses-1", "ses-3"):
                row[f"MDD_{label}_{session}"] = condition_partial(network, preset, "MDD", session, z)[
                    edge.node_i, edge.node_j]
        row["expected"] = {
            "group": "HC > MDD at ses-1 (hc_vs_mdd_tp1)",
            "treatment": "MDD ses-1 > ses-3 (tp1_vs_tp3); half the change at ses-2 (tp1_vs_tp2)",
            "interaction": "remitters > non-remitters at ses-1 (remit_tp1); change ses-1 -> ses-3 lower in remitters "
                           "(delta_remit); baseline FC rises and change in FC falls with % HDRS improvement",
        }[edge.effect]
        rows.append(row)
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False, float_format="%.6g")


def shortest_run(preset: Preset) -> int:
    """The fewest volumes a run of the preset can have (runs are shortened by up to
    ``volumes_spread`` of ``n_volumes``)."""
    return preset.n_volumes - int(np.floor(preset.volumes_spread * preset.n_volumes))


#: Patients with a TP3 session below which the simulated study's config declares no prediction
#: (cross-validation on a handful of subjects says nothing).
MIN_PREDICTION_PATIENTS = 20

_PREDICTION = """
# Beyond the reference study: does the baseline connectome predict the clinical change in
# patients it has not seen? Cross-validated, confounds regressed out inside each training fold.
[predict.hdrs_change_from_tp1]
description = "% HDRS change TP1 -> TP3 from the TP1 connectome (CPM), age and sex as confounds"
subset = "group == 'MDD'"
session = "TP1"
target = "hdrs_change_pct"
model = "cpm"
confounds = ["age", "sex"]
"""


def study_config_text(preset: Preset, format: str = "nifti", layout: str = "bids") -> str:
    """The study configuration written beside a simulated dataset (with a prediction when the
    preset has at least :data:`MIN_PREDICTION_PATIENTS` patients with TP3)."""
    prediction = _PREDICTION if preset.n_tp3 >= MIN_PREDICTION_PATIENTS else ""
    surfaces = (f"surfaces = [{', '.join(repr(f).replace(chr(39), chr(34)) for f in SURFACE_FILES.values())}]\n"
                if format == "cifti" else "")
    if layout == "hcp":
        dataset = 'dataset = "hcp"\nlayout = "hcp"  # HCP pipeline outputs, see [hcp]\n'
        filters = 'task = "REST"\n'
    else:
        dataset = 'dataset = "bids"\n'
        filters = f'task = "{TASK}"\nspace = "{CIFTI_SPACE if format == "cifti" else SPACE}"\ndesc = "{DESC}"\n'
    hcp = ('\n[hcp]  # subject folders <subject>_V<session>_MR, runs MNINonLinear/Results/rfMRI_REST<run>_AP/\n'
           'subject = "(?P<sub>[0-9]+)_V(?P<ses>[0-9]+)_MR"\n'
           'file = "{run}_Atlas_MSMAll_hp2000_clean.dtseries.nii"\n') if layout == "hcp" else ""
    minimum = (f"min_volumes = {shortest_run(preset)}  # the simulation's shortest run\n"
               if shortest_run(preset) < DEFAULT_MIN_VOLUMES else "")
    return f"""# Study configuration of a synthetic icanets study (preset {preset.name!r}).
[study]
name = "icanets synthetic study ({preset.name})"
{dataset}mask = "{'mask.dscalar.nii' if format == 'cifti' else 'mask.nii.gz'}"

[bold]
{filters}{minimum}{surfaces}{hcp}
[participants]
group = "group"
required = ["group", "age", "sex"]
numeric = ["age"]
categorical = ["group", "sex"]

[sessions]
numeric = ["hdrs"]

[sessions.roles]
TP1 = "ses-1"
TP2 = "ses-2"
TP3 = "ses-3"

[derived]
remitter = "hdrs[TP3] <= {REMISSION_THRESHOLD}"
hdrs_change_pct = "100 * (hdrs[TP1] - hdrs[TP3]) / hdrs[TP1]"

# The reference study's analyses: edge-wise GLMs, 5000 permutations, FWE over all edges.
[analyses.hc_vs_mdd_tp1]
description = "controls vs patients at TP1, age and sex as covariates"
session = "TP1"
formula = "~ group + age + sex"
contrasts = {{ "HC>MDD" = "-group[T.MDD]", "MDD>HC" = "group[T.MDD]" }}

[analyses.tp1_vs_tp2]
description = "patients, TP1 vs TP2 (paired)"
subset = "group == 'MDD'"
paired = ["TP1", "TP2"]

[analyses.tp1_vs_tp3]
description = "patients, TP1 vs TP3 (paired)"
subset = "group == 'MDD'"
paired = ["TP1", "TP3"]

[analyses.delta_remit]
description = "change TP1 -> TP3, remitters vs non-remitters, age and sex as covariates"
subset = "group == 'MDD'"
difference = ["TP1", "TP3"]
formula = "~ remitter + age + sex"
contrasts = {{ "remit>nonremit" = "remitter", "nonremit>remit" = "-remitter" }}

[analyses.remit_tp1]
description = "remitters vs non-remitters at TP1, age and sex as covariates"
subset = "group == 'MDD'"
session = "TP1"
formula = "~ remitter + age + sex"
contrasts = {{ "remit>nonremit" = "remitter", "nonremit>remit" = "-remitter" }}

[analyses.hc_retest]
description = "controls scanned twice (stability of the measure)"
subset = "group == 'HC'"
paired = ["TP1", "TP2"]
{prediction}
[posthoc]
patients = "group == 'MDD'"
baseline = "TP1"
followup = "TP3"
clinical = "hdrs_change_pct"
remission = "remitter"
measure = "hdrs"
demographics = ["age"]
sex = "sex"
female = "F"
"""
