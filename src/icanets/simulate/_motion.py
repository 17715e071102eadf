"""Head motion of simulated runs: rigid-body parameters, their fMRIPrep-style confounds file,
and (optionally) the BOLD signal that motion leaves behind.

Each subject has a motion level (median ``motion_fd`` mm of mean FD, log-normal between
subjects, patients times ``motion_group_ratio``); a run's parameters are a random walk of
steps of that size plus a jump at every motion spike of the BOLD (so FD is high exactly where
the images have spikes). The motion signal, when ``motion_fc_bias > 0``, is a
spatially smooth pattern, new in every run (so no group component can capture it,
as with real spin-history and interpolation effects), whose time course is the
volume-to-volume movement: it adds correlated variance to every node in proportion to how much
the subject moves, the motion-FC bias that QC-FC measures (distance-dependent, since the
pattern is smooth).
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
    return float(median_fd * np.exp(rng.normal(0.0, 0.5)) * (ratio if patient else 1.0))


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
    """``(T, V)`` BOLD signal of the movement: ``pattern`` times a mix of the six
    parameters' steps, in units of the steps of a subject of ``reference_fd``."""
    steps = np.diff(params, axis=0, prepend=params[:1])
    steps[:, 3:] *= HEAD_RADIUS
    reference = reference_fd / (6 * _ABS_NORMAL)
    course = steps @ rng.choice([-1.0, 1.0], 6) / (reference * np.sqrt(6.0))
    return course[:, None] * pattern[None, :]


def smooth_pattern(mask: np.ndarray, fwhm_voxels: float, rng: np.random.Generator) -> np.ndarray:
    """A spatially smooth in-mask pattern, mean 0 and SD 1 (for :func:`motion_signal`): nearby
    voxels share its sign, distant ones need not, so the motion signal inflates short-range
    connectivity most (Power et al. 2012)."""
    field = ndimage.gaussian_filter(rng.normal(size=mask.shape), fwhm_voxels / 2.355)[mask]
    return (field - field.mean()) / field.std()


def confounds_table(params: np.ndarray, data: np.ndarray, *, csf: np.ndarray, white_matter: np.ndarray,
                    tr: float) -> pd.DataFrame:
    """An fMRIPrep-style confounds table: ``global_signal``, ``csf`` and ``white_matter`` (mean
    of ``data`` (T, V) over all voxels and the two boolean masks, with their derivatives and
    squares), the six parameters, their
    derivatives and squares (``_derivative1``, ``_power2``, ``_derivative1_power2``),
    ``framewise_displacement``, ``dvars``, ``std_dvars`` (DVARS over its run median, an
    approximation of fMRIPrep's AR(1)-based standardisation) and the 128 s high-pass
    ``cosine<NN>`` regressors; ``n/a`` in the first row of the derived columns, as fMRIPrep
    writes it."""
    from icanets.ica.data import cosine_basis

    names = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
    columns: dict[str, np.ndarray] = {}
    for name, signal_ in (("global_signal", data.mean(axis=1)), ("csf", data[:, csf].mean(axis=1)),
                          ("white_matter", data[:, white_matter].mean(axis=1))):
        derivative = np.concatenate([[np.nan], np.diff(signal_)])
        columns.update({name: signal_, f"{name}_derivative1": derivative, f"{name}_power2": signal_**2,
                        f"{name}_derivative1_power2": derivative**2})
    diff = np.vstack([np.full((1, 6), np.nan), np.diff(params, axis=0)])
    for j, name in enumerate(names):
        columns[name] = params[:, j]
        columns[f"{name}_derivative1"] = diff[:, j]
        columns[f"{name}_power2"] = params[:, j] ** 2
        columns[f"{name}_derivative1_power2"] = diff[:, j] ** 2
    step = np.abs(diff)
    columns["framewise_displacement"] = step[:, :3].sum(axis=1) + HEAD_RADIUS * step[:, 3:].sum(axis=1)
    dvars = np.sqrt(np.mean(np.diff(data, axis=0) ** 2, axis=1))
    columns["dvars"] = np.concatenate([[np.nan], dvars])
    columns["std_dvars"] = np.concatenate([[np.nan], dvars / np.median(dvars)])
    for k, regressor in enumerate(cosine_basis(len(data), tr, 128.0).T):
        columns[f"cosine{k:02d}"] = regressor
    return pd.DataFrame(columns)
