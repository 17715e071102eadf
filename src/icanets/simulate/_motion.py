"""Head motion of simulated runs: rigid-body parameters, their fMRIPrep-style confounds file,
and (optionally) the BOLD signal that motion leaves behind.

Each subject has a motion level (median ``motion_fd`` mm of mean FD, log-normal between
subjects, patients times ``motion_group_ratio``); a run's parameters are a random walk of
steps of that size plus a jump at every motion spike of the BOLD (so FD is high exactly where
the images have spikes). The motion signal, when ``motion_fc_bias > 0``, is a shared,
spatially smooth pattern whose time course is the volume-to-volume movement: it adds
correlated variance to every node in proportion to how much the subject moves, the
motion-FC bias that QC-FC measures (distance-dependent, since the pattern is smooth).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

__all__ = ["subject_motion_scale", "motion_parameters", "motion_signal", "confounds_table", "HEAD_RADIUS"]

#: mm of arc per radian in the simulated FD, as fMRIPrep's.
HEAD_RADIUS = 50.0
_ABS_NORMAL = np.sqrt(2.0 / np.pi)  # E|Z| of a standard normal


def subject_motion_scale(median_fd: float, patient: bool, ratio: float, rng: np.random.Generator) -> float:
    """A subject's typical mean FD (mm)."""
    return float(median_fd * np.exp(rng.normal(0.0, 0.35)) * (ratio if patient else 1.0))


def motion_parameters(n_volumes: int, mean_fd: float, onsets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``(T, 6)`` parameters, translations (mm) then rotations (radians), whose FD averages
    about ``mean_fd`` between jumps, with a jump of 0.5-2 mm at every ``onsets`` volume."""
    step = mean_fd / (6 * _ABS_NORMAL)  # each of six |steps| (rotations as arc) contributes a sixth of FD
    steps = rng.normal(0.0, step, (n_volumes, 6)) * np.exp(rng.normal(0.0, 0.5, (n_volumes, 1)))
    for onset in np.asarray(onsets, dtype=int):
        jump = rng.dirichlet(np.ones(6)) * rng.uniform(0.5, 2.0) * rng.choice([-1, 1], 6)
        steps[onset] += jump
    steps[0] = 0.0
    steps[:, 3:] /= HEAD_RADIUS
    return np.cumsum(steps, axis=0)


def motion_signal(params: np.ndarray, reference_fd: float, pattern: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``(T, V)`` BOLD signal of the movement: ``pattern`` (unit mean) times a mix of the six
    parameters' steps, in units of the steps of a subject of ``reference_fd``."""
    steps = np.diff(params, axis=0, prepend=params[:1])
    steps[:, 3:] *= HEAD_RADIUS
    reference = reference_fd / (6 * _ABS_NORMAL)
    course = steps @ rng.choice([-1.0, 1.0], 6) / (reference * np.sqrt(6.0))
    return course[:, None] * pattern[None, :]


def smooth_pattern(mask: np.ndarray, fwhm_voxels: float, rng: np.random.Generator) -> np.ndarray:
    """A positive, spatially smooth in-mask pattern with mean 1 (for :func:`motion_signal`)."""
    field = ndimage.gaussian_filter(rng.normal(size=mask.shape), fwhm_voxels / 2.355)[mask]
    field = (field - field.mean()) / field.std()
    return 1.0 + 0.5 * field


def confounds_table(params: np.ndarray, data: np.ndarray) -> pd.DataFrame:
    """An fMRIPrep-style confounds table: the six parameters, their derivatives and squares
    (``_derivative1``, ``_power2``, ``_derivative1_power2``), ``framewise_displacement``,
    ``dvars`` and ``global_signal`` of ``data`` (T, V); ``n/a`` in the first row of the
    derived columns, as fMRIPrep writes it."""
    names = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
    columns: dict[str, np.ndarray] = {"global_signal": data.mean(axis=1)}
    diff = np.vstack([np.full((1, 6), np.nan), np.diff(params, axis=0)])
    for j, name in enumerate(names):
        columns[name] = params[:, j]
        columns[f"{name}_derivative1"] = diff[:, j]
        columns[f"{name}_power2"] = params[:, j] ** 2
        columns[f"{name}_derivative1_power2"] = diff[:, j] ** 2
    step = np.abs(diff)
    columns["framewise_displacement"] = step[:, :3].sum(axis=1) + HEAD_RADIUS * step[:, 3:].sum(axis=1)
    columns["dvars"] = np.concatenate([[np.nan], np.sqrt(np.mean(np.diff(data, axis=0) ** 2, axis=1))])
    return pd.DataFrame(columns)
