"""A synthetic BIDS cohort built apart from ``icanets simulate``, for checking group ICA honestly.

Nothing here imports :mod:`icanets`: the generator shares no code, no parameters and no
modelling choice with the package's own simulator, so a method tuned on that simulator is
tested on data it was not tuned to. It follows the cohort of issue 11: subjects in two groups
with up to three sessions, ``n_nodes`` Gaussian-blob nodes (some bilateral) and four artifact
components, each session's head misregistered by up to ``shift`` voxels along each axis, a rim
artifact carrying ``rim_spikes`` spikes per run, and three planted changes of partial
correlation: controls > patients at TP1, patients TP1 > TP3, and a time x remission
interaction (remitters' edge high at TP1 and falling by TP3, non-remitters' unchanged).

Where it differs from ``icanets simulate`` on purpose: an ellipsoid head rather than a
template-like mask; nodes placed by rejection sampling anywhere in the brain with their own
size; node time courses from a unit-variance AR(1) process (not band-limited), mixed through the
Cholesky factor of the subject-session's covariance; noise smoothed by a Gaussian of its own
width and AR(0.25) in time; no subject-specific node jitter beyond a small per-subject
displacement; an intensity image with bright ventricles; the artifacts are a one-sided rim
pattern with spikes, pulsating ventricles (cardiac frequency aliased by the TR), a slow drift in
an anterior-posterior gradient, and a high-frequency midline "sinus".

Output (the same layout the benchmarks read for simulated studies)::

    out/bids/...                           BIDS dataset (participants.tsv, sessions.tsv, BOLD + JSON)
    out/study.toml                         the reference study's analyses
    out/mask.nii.gz                        the ellipsoid brain
    out/truth/node_maps.nii.gz             template node maps (one volume per node)
    out/truth/artifact_maps.nii.gz         artifact maps
    out/truth/planted_edges.tsv            effect, node_i, node_j (0-based) and the planted values
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

__all__ = ["IndependentCohort", "make_independent_cohort"]


@dataclass(frozen=True)
class IndependentCohort:
    """Paths of a cohort written by :func:`make_independent_cohort`."""

    root: Path

    @property
    def bids(self) -> Path:
        return self.root / "bids"

    @property
    def config(self) -> Path:
        return self.root / "study.toml"

    @property
    def mask(self) -> Path:
        return self.root / "mask.nii.gz"

    @property
    def truth(self) -> Path:
        return self.root / "truth"


_STUDY_TOML = """\
# Written by tests/_independent_cohort.py (not by icanets simulate)
[study]
name = "independent cohort"
dataset = "bids"
mask = "mask.nii.gz"

[bold]
task = "rest"

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
remitter = "hdrs[TP3] <= 7"
hdrs_change_pct = "100 * (hdrs[TP1] - hdrs[TP3]) / hdrs[TP1]"

[analyses.hc_vs_mdd_tp1]
session = "TP1"
formula = "~ group + age + sex"
contrasts = { "HC>MDD" = "-group[T.MDD]", "MDD>HC" = "group[T.MDD]" }

[analyses.tp1_vs_tp2]
subset = "group == 'MDD'"
paired = ["TP1", "TP2"]

[analyses.tp1_vs_tp3]
subset = "group == 'MDD'"
paired = ["TP1", "TP3"]

[analyses.delta_remit]
subset = "group == 'MDD'"
difference = ["TP1", "TP3"]
formula = "~ remitter + age + sex"
contrasts = { "remit>nonremit" = "remitter", "nonremit>remit" = "-remitter" }

[analyses.remit_tp1]
subset = "group == 'MDD'"
session = "TP1"
formula = "~ remitter + age + sex"
contrasts = { "remit>nonremit" = "remitter", "nonremit>remit" = "-remitter" }

[posthoc]
patients = "group == 'MDD'"
baseline = "TP1"
followup = "TP3"
clinical = "hdrs_change_pct"
remission = "remitter"
measure = "hdrs"
demographics = ["age"]
"""


def _blob(grid: np.ndarray, centre: np.ndarray, sigma: float) -> np.ndarray:
    d2 = np.sum((grid - centre) ** 2, axis=-1)
    return np.exp(-0.5 * d2 / sigma**2)


def _place_nodes(rng, inside: np.ndarray, grid: np.ndarray, n_nodes: int, n_bilateral: int, shape, sigmas):
    """Node centres (voxel coordinates), a list of lobes per node, by rejection sampling: every
    lobe at least 1.5 voxels inside the brain and every pair of nodes' lobes at least
    ``2.2 sigma`` apart."""
    depth = ndimage.distance_transform_edt(inside)
    candidates = np.argwhere(depth >= 2.5).astype(float)
    mid_x = (shape[0] - 1) / 2
    lobes: list[list[np.ndarray]] = []
    for k in range(n_nodes):
        for _ in range(10_000):
            c = candidates[rng.integers(len(candidates))] + rng.uniform(-0.5, 0.5, 3)
            node = [c]
            if k < n_bilateral:
                if abs(c[0] - mid_x) < 3:
                    continue
                mirror = c.copy()
                mirror[0] = 2 * mid_x - c[0]
                node.append(mirror)
            ok = all(np.linalg.norm(a - b) >= 2.2 * max(sigmas[k], sigmas[j])
                     for j, other in enumerate(lobes) for a in node for b in other)
            if ok:
                lobes.append(node)
                break
        else:
            raise RuntimeError("could not place the nodes: grid too small for their number and size")
    return lobes


def _node_maps(grid, lobes, sigmas, offset) -> np.ndarray:
    maps = []
    for node, sigma in zip(lobes, sigmas):
        m = sum(_blob(grid, c + offset, sigma) for c in node)
        maps.append(m / m.max())
    return np.stack(maps)


def _partials(rng, n_nodes: int, planted: dict[str, tuple[int, int]]) -> np.ndarray:
    """A sparse background graph of partial correlations (each node linked to about three
    others, values 0.08-0.25, one in five negative), planted pairs left at 0."""
    r = np.zeros((n_nodes, n_nodes))
    taken = {frozenset(p) for p in planted.values()}
    for i in range(n_nodes):
        for j in rng.choice(n_nodes, size=2, replace=False):
            if i == j or frozenset((i, j)) in taken:
                continue
            value = rng.uniform(0.08, 0.25) * (-1 if rng.random() < 0.2 else 1)
            r[i, j] = r[j, i] = value
    return r


def _covariance(partial: np.ndarray) -> np.ndarray:
    """The unit-variance covariance whose partial correlations are ``partial``."""
    precision = np.eye(len(partial)) - partial
    w = np.linalg.eigvalsh(precision)
    if w.min() < 0.05:  # keep it positive definite, shrinking the graph if needed
        precision = np.eye(len(partial)) - partial * (0.95 / (1 - w.min() + 0.05))
    cov = np.linalg.inv(precision)
    d = np.sqrt(np.diag(cov))
    return cov / np.outer(d, d)


def _ar1(rng, n: int, k: int, phi: float) -> np.ndarray:
    e = rng.normal(size=(n + 50, k)) * np.sqrt(1 - phi**2)
    x = np.zeros_like(e)
    for t in range(1, len(e)):
        x[t] = phi * x[t - 1] + e[t]
    return x[50:]


def make_independent_cohort(out: Path | str, *, seed: int = 0, n_controls: int = 20, n_patients: int = 40,
                            n_tp2: int = 28, n_tp3: int = 36, p_two_runs: float = 0.03, n_volumes: int = 300,
                            tr: float = 0.8, shape: tuple[int, int, int] = (20, 24, 19), voxel_mm: float = 8.0,
                            n_nodes: int = 20, n_bilateral: int = 5, shift: float = 1.0, jitter: float = 0.2,
                            rim_spikes: int = 4, spike_size: float = 8.0, node_amplitude: float = 1.0,
                            amplitude_spread: float = 0.35, noise_sd: float = 0.9, noise_sigma: float = 0.7,
                            effect: float = 0.3) -> IndependentCohort:
    """Write an independent synthetic cohort to ``out`` (must not exist) and return its paths.

    Sizes are voxels unless named ``_mm``; amplitudes are in units of the per-voxel noise after
    smoothing (``noise_sd`` sets the noise relative to a node's peak amplitude 1). ``shift``:
    the largest whole-head misregistration of a session along each axis, in voxels.
    """
    out = Path(out)
    if out.exists():
        raise FileExistsError(out)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 20261201]))
    bids, truth = out / "bids", out / "truth"
    truth.mkdir(parents=True)
    bids.mkdir()
    affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    affine[:3, 3] = -np.asarray(shape) * voxel_mm / 2

    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=float) for s in shape], indexing="ij"), axis=-1)
    centre = (np.asarray(shape) - 1) / 2
    radii = np.asarray(shape) / 2 - 1.2
    inside = np.sum(((grid - centre) / radii) ** 2, axis=-1) <= 1.0
    nib.save(nib.Nifti1Image(inside.astype(np.uint8), affine), str(out / "mask.nii.gz"))

    sigmas = rng.uniform(1.0, 1.6, n_nodes)  # FWHM 2.4-3.8 voxels (19-30 mm at 8 mm)
    lobes = _place_nodes(rng, inside, grid, n_nodes, n_bilateral, shape, sigmas)
    template = _node_maps(grid, lobes, sigmas, np.zeros(3)) * inside
    amplitudes = node_amplitude * np.exp(rng.uniform(-amplitude_spread, amplitude_spread, n_nodes))

    # Artifacts: rim (one-sided, with spikes), ventricles (cardiac), drift gradient, midline sinus.
    edge = inside & ~ndimage.binary_erosion(inside)
    side = rng.normal(size=3)
    side /= np.linalg.norm(side)
    rim = edge * np.clip(((grid - centre) / radii) @ side + 0.6, 0, None)
    ventricles = sum(_blob(grid, centre + np.array([dx, 1.0, 1.0]), 1.0) for dx in (-1.6, 1.6))
    gradient = ((grid[..., 1] - centre[1]) / radii[1]) * inside
    sinus = _blob(grid, centre + np.array([0.0, -radii[1] * 0.5, radii[2] * 0.75]), 0.9)
    artifacts = np.stack([a * inside / np.abs(a * inside).max() for a in (rim, ventricles, gradient, sinus)])
    mean_image = 800 + 150 * inside + 400 * (ventricles * inside > 0.4) + 50 * rng.normal(size=shape) * inside

    pairs = np.sort(rng.choice(n_nodes, size=6, replace=False).reshape(3, 2), axis=1)
    planted = {name: (int(i), int(j)) for name, (i, j) in zip(("group", "treatment", "interaction"), pairs)}
    background = _partials(rng, n_nodes, planted)
    low, high = 0.1, 0.1 + effect
    values = {  # planted partial correlation per (group, remitter, session)
        "group": lambda g, rem, s: high if g == "HC" else low,
        "treatment": lambda g, rem, s: high if (g == "HC" or s == 1) else (low + high) / 2 if s == 2 else low,
        "interaction": lambda g, rem, s: high if (g == "MDD" and rem and s == 1) else
        (low + high) / 2 if (g == "MDD" and rem and s == 2) else low,
    }

    # Cohort: who, when, clinical scores.
    subjects = [(f"sub-{i + 1:03d}", "HC" if i < n_controls else "MDD") for i in range(n_controls + n_patients)]
    patients = [s for s, g in subjects if g == "MDD"]
    with_tp3 = set(rng.choice(patients, size=n_tp3, replace=False))
    with_tp2 = set(rng.choice(patients, size=n_tp2, replace=False))
    remitter = {s: bool(rng.random() < 0.5) for s in patients}
    rows = ["participant_id\tgroup\tage\tsex"]
    for subject, group in subjects:
        rows.append(f"{subject}\t{group}\t{rng.integers(20, 65)}\t{'F' if rng.random() < 0.55 else 'M'}")
    (bids / "participants.tsv").write_text("\n".join(rows) + "\n")
    (bids / "dataset_description.json").write_text(json.dumps(
        {"Name": "independent cohort", "BIDSVersion": "1.9.0", "DatasetType": "derivative"}) + "\n")

    for subject, group in subjects:
        sessions = [1] + ([2] if subject in with_tp2 else []) + ([3] if subject in with_tp3 else [])
        base = rng.uniform(18, 30) if group == "MDD" else rng.uniform(0, 4)
        score = {1: base}
        if group == "MDD":
            rem = remitter[subject] and subject in with_tp3
            score[3] = rng.uniform(1, 7) if rem else rng.uniform(12, base)
            score[2] = (score[1] + score[3]) / 2 + rng.normal(0, 2)
        else:
            score[2] = score[3] = base
        lines = ["session_id\thdrs"] + [f"ses-{s}\t{score[s]:.0f}" for s in sessions]
        (bids / subject).mkdir()
        (bids / subject / f"{subject}_sessions.tsv").write_text("\n".join(lines) + "\n")
        rem = group == "MDD" and remitter[subject] and subject in with_tp3
        subject_offset = rng.normal(0, jitter, size=3)
        subject_scale = np.exp(rng.normal(0, 0.2))
        for s in sessions:
            partial = background.copy()
            partial[partial != 0] += rng.normal(0, 0.03, size=int((partial != 0).sum()))
            partial = (partial + partial.T) / 2
            for effect_name, (i, j) in planted.items():
                partial[i, j] = partial[j, i] = values[effect_name](group, rem, s)
            chol = np.linalg.cholesky(_covariance(partial))
            head = rng.uniform(-shift, shift, size=3) + subject_offset
            maps = _node_maps(grid, lobes, sigmas, head) * inside
            moved_artifacts = np.stack([ndimage.shift(a, head, order=1) * inside for a in artifacts])
            n_runs = 2 if rng.random() < p_two_runs else 1
            for run in range(1, n_runs + 1):
                signals = _ar1(rng, n_volumes, n_nodes, 0.7) @ chol.T
                signals *= amplitudes * subject_scale * np.exp(rng.normal(0, 0.15, n_nodes))
                t = np.arange(n_volumes) * tr
                rim_tc = 0.3 * rng.normal(size=n_volumes)
                rim_tc[rng.choice(n_volumes, size=rim_spikes, replace=False)] += spike_size * rng.choice([-1, 1],
                                                                                                        rim_spikes)
                cardiac = 1.1 + rng.uniform(-0.15, 0.15)
                vent_tc = 1.2 * np.sin(2 * np.pi * cardiac * t + rng.uniform(0, 2 * np.pi)) + 0.3 * rng.normal(
                    size=n_volumes)
                drift_tc = np.cumsum(rng.normal(size=n_volumes)) * 0.08
                drift_tc -= drift_tc.mean()
                sinus_tc = 1.0 * rng.normal(size=n_volumes)
                art_tc = np.stack([rim_tc, vent_tc, drift_tc, sinus_tc], axis=1)
                noise = rng.normal(size=(n_volumes, *shape))
                noise = ndimage.gaussian_filter(noise, sigma=(0, noise_sigma, noise_sigma, noise_sigma))
                noise /= noise[:, inside].std()
                for v in range(1, n_volumes):
                    noise[v] = 0.25 * noise[v - 1] + np.sqrt(1 - 0.25**2) * noise[v]
                data = (np.tensordot(signals, maps, axes=1) + np.tensordot(art_tc, moved_artifacts, axes=1)
                        + noise_sd * noise) * 10.0 + mean_image
                data = np.moveaxis(data * inside, 0, -1).astype(np.float32)
                folder = bids / subject / f"ses-{s}" / "func"
                folder.mkdir(parents=True, exist_ok=True)
                stem = f"{subject}_ses-{s}_task-rest_run-{run}_bold"
                img = nib.Nifti1Image(data, affine)
                img.header.set_xyzt_units("mm", "sec")
                img.header.set_zooms((voxel_mm, voxel_mm, voxel_mm, tr))
                nib.save(img, str(folder / f"{stem}.nii.gz"))
                (folder / f"{stem}.json").write_text(json.dumps({"RepetitionTime": tr, "TaskName": "rest"}) + "\n")

    nib.save(nib.Nifti1Image(np.moveaxis(template, 0, -1).astype(np.float32), affine),
             str(truth / "node_maps.nii.gz"))
    nib.save(nib.Nifti1Image(np.moveaxis(artifacts, 0, -1).astype(np.float32), affine),
             str(truth / "artifact_maps.nii.gz"))
    lines = ["effect\tnode_i\tnode_j\tlow\thigh"] + [f"{e}\t{i}\t{j}\t{low}\t{high}" for e, (i, j) in planted.items()]
    (truth / "planted_edges.tsv").write_text("\n".join(lines) + "\n")
    (out / "study.toml").write_text(_STUDY_TOML)
    return IndependentCohort(out)
