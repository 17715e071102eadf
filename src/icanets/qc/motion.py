"""Framewise displacement, DVARS, per-run and per-session motion summaries, and the rules
that exclude runs or censor volumes.

Framewise displacement follows Power et al. (2012): the sum of the absolute backward
differences of the six rigid-body parameters, rotations (radians) turned into millimetres of
arc on a sphere of ``head_radius`` mm (50 mm, as Power's and fMRIPrep's). The first volume has
no predecessor; its FD is 0 and it is left out of the mean, as in fMRIPrep's ``n/a``.

References
----------
Power JD et al. (2012). Spurious but systematic correlations in functional connectivity MRI
networks arise from subject motion. NeuroImage 59:2142-2154.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from icanets._defaults import MOTION_DEFAULTS

__all__ = ["MotionSettings", "RunMotion", "framewise_displacement", "dvars", "censor_mask", "run_motion",
           "exclusion_reason", "session_motion", "motion_settings"]


@dataclass(frozen=True)
class MotionSettings:
    """``[motion]`` of the study config.

    Attributes
    ----------
    source : str
        ``auto`` (the first layout found beside each run), ``fmriprep``, ``hcp``, ``fsl`` or
        ``none``.
    columns : tuple of str
        Six column names of a confounds TSV (translations x y z, rotations x y z), instead of
        fMRIPrep's.
    rotations : str
        Units of those rotation columns: ``radians`` or ``degrees``.
    head_radius : float
        mm of arc per radian of rotation in FD.
    fd_threshold : float
        mm: volumes with FD above it are counted as high-motion (and censored when
        ``censor``).
    max_mean_fd, max_fraction_censored : float or None
        Runs whose mean FD, or whose fraction of volumes over the threshold, exceeds this
        are excluded (None: no such rule).
    min_volumes_kept : int or None
        Runs with fewer volumes at or under the threshold are excluded; with censoring or a
        scrubbing strategy, runs with fewer volumes left after it.
    fd_tolerance : float
        mm: the largest difference allowed between a file's own FD column and the FD computed
        from its parameters.
    qcfc_covariates : tuple of str
        Subject variables partialled out of QC-FC (those the study has).
    denoise : str
        ``none``, or a strategy of nilearn's ``load_confounds_strategy`` (fMRIPrep runs):
        ``simple``, ``scrubbing``, ``compcor``, ``ica_aroma`` (see :mod:`icanets.qc.denoise`).
    denoise_options : dict
        Its keyword arguments (nilearn's defaults otherwise).
    censor : bool
        Leave the volumes with FD above ``fd_threshold`` out of every stage.
    """

    source: str = MOTION_DEFAULTS["source"]
    columns: tuple[str, ...] = ()
    rotations: str = "radians"
    head_radius: float = MOTION_DEFAULTS["head_radius"]
    fd_threshold: float = MOTION_DEFAULTS["fd_threshold"]
    max_mean_fd: float | None = None
    max_fraction_censored: float | None = None
    min_volumes_kept: int | None = None
    fd_tolerance: float = MOTION_DEFAULTS["fd_tolerance"]
    qcfc_covariates: tuple[str, ...] = MOTION_DEFAULTS["qcfc_covariates"]
    denoise: str = "none"
    denoise_options: dict = field(default_factory=dict)
    censor: bool = False

    @property
    def cleans(self) -> bool:
        return self.denoise != "none" or self.censor

    def cleaning_text(self) -> str:
        """How runs are cleaned, in words."""
        parts = []
        if self.denoise != "none":
            options = ", ".join(f"{k}={v!r}" for k, v in sorted(self.denoise_options.items()))
            parts.append(f"confounds regressed out with nilearn's load_confounds_strategy({self.denoise!r}"
                         f"{', ' + options if options else ''})")
        if self.censor:
            parts.append(f"volumes with FD > {self.fd_threshold:g} mm censored")
        return "; ".join(parts) or "no denoising or censoring"

    @property
    def excludes(self) -> bool:
        return any(v is not None for v in (self.max_mean_fd, self.max_fraction_censored, self.min_volumes_kept))

    def rules(self) -> list[str]:
        """The exclusion rules in words."""
        out = []
        if self.max_mean_fd is not None:
            out.append(f"mean FD > {self.max_mean_fd:g} mm")
        if self.max_fraction_censored is not None:
            out.append(f"more than {100 * self.max_fraction_censored:g} % of volumes with FD > {self.fd_threshold:g} mm")
        if self.min_volumes_kept is not None:
            out.append(f"fewer than {self.min_volumes_kept} volumes with FD <= {self.fd_threshold:g} mm")
        return out


def framewise_displacement(params: np.ndarray, head_radius: float = 50.0) -> np.ndarray:
    """FD (mm) of every volume from ``(T, 6)`` parameters (translations in mm, then rotations
    in radians); the first volume's is 0.

    Examples
    --------
    >>> p = np.zeros((3, 6)); p[1, 0] = 0.2; p[2, 3] = 0.002
    >>> framewise_displacement(p).round(6).tolist()
    [0.0, 0.2, 0.3]
    """
    params = np.asarray(params, dtype=float)
    if params.ndim != 2 or params.shape[1] != 6:
        raise ValueError(f"motion parameters must be (T, 6), got {params.shape}")
    step = np.abs(np.diff(params, axis=0))
    fd = step[:, :3].sum(axis=1) + head_radius * step[:, 3:].sum(axis=1)
    return np.concatenate([[0.0], fd])


def dvars(data: np.ndarray) -> np.ndarray:
    """DVARS of ``(T, V)`` data: the root mean square over voxels of the backward temporal
    difference, in the data's units; the first volume's is 0 (Power et al. 2012)."""
    from icanets._blocked import run_moments

    return run_moments(data)[2]  # a block of voxels at a time, summed in float64


def censor_mask(fd: np.ndarray, threshold: float) -> np.ndarray:
    """Volumes kept (True) when those with FD above ``threshold`` are censored."""
    return np.asarray(fd) <= threshold


@dataclass(frozen=True)
class RunMotion:
    """Motion of one run: its FD, the summary figures and whether the rules exclude it."""

    fd: np.ndarray = field(repr=False)
    mean_fd: float
    max_fd: float
    n_over: int
    fraction_over: float
    n_kept: int
    fd_source: str
    fd_difference: float | None = None
    mean_dvars: float | None = None
    excluded: str | None = None

    def row(self) -> dict:
        return {"mean_fd": self.mean_fd, "max_fd": self.max_fd, "n_high_motion": self.n_over,
                "fraction_high_motion": self.fraction_over, "n_volumes_kept": self.n_kept,
                "mean_dvars": self.mean_dvars, "fd_source": self.fd_source,
                "fd_file_difference": self.fd_difference, "excluded": self.excluded or ""}


def run_motion(params: np.ndarray, settings: MotionSettings, *, file_fd: np.ndarray | None = None,
               file_dvars: np.ndarray | None = None, where: str = "") -> RunMotion:
    """Summaries of one run. With the file's own FD (fMRIPrep), that FD is used once it agrees
    with the one computed from the parameters to ``settings.fd_tolerance`` mm; a disagreement
    is an error naming ``where``."""
    computed = framewise_displacement(params, settings.head_radius)
    fd, source, difference = computed, "computed", None
    if file_fd is not None:
        difference = float(np.max(np.abs(file_fd[1:] - computed[1:]))) if len(computed) > 1 else 0.0
        if difference > settings.fd_tolerance:
            from icanets.errors import StudyError

            raise StudyError(f"{where}: its framewise_displacement column differs from the FD computed from its "
                             f"six parameters (head radius {settings.head_radius:g} mm) by up to {difference:.3g} mm "
                             f"(> fd_tolerance {settings.fd_tolerance:g}); check the columns and rotation units")
        fd, source = np.concatenate([[0.0], file_fd[1:]]), "file"
    frames = fd[1:] if len(fd) > 1 else fd
    over = fd > settings.fd_threshold
    motion = RunMotion(fd=fd, mean_fd=float(frames.mean()), max_fd=float(fd.max()), n_over=int(over.sum()),
                       fraction_over=float(over.mean()), n_kept=int((~over).sum()), fd_source=source,
                       fd_difference=difference,
                       mean_dvars=None if file_dvars is None or len(file_dvars) < 2 else float(file_dvars[1:].mean()))
    reason = exclusion_reason(motion, settings)
    return motion if reason is None else RunMotion(**{**motion.__dict__, "excluded": reason})


def exclusion_reason(motion: RunMotion, settings: MotionSettings) -> str | None:
    """Why the rules of ``settings`` exclude a run, or None."""
    why = []
    if settings.max_mean_fd is not None and motion.mean_fd > settings.max_mean_fd:
        why.append(f"mean FD {motion.mean_fd:.3f} > {settings.max_mean_fd:g} mm")
    if settings.max_fraction_censored is not None and motion.fraction_over > settings.max_fraction_censored:
        why.append(f"{100 * motion.fraction_over:.1f} % of volumes with FD > {settings.fd_threshold:g} mm "
                   f"(> {100 * settings.max_fraction_censored:g} %)")
    if settings.min_volumes_kept is not None and motion.n_kept < settings.min_volumes_kept:
        why.append(f"{motion.n_kept} volumes with FD <= {settings.fd_threshold:g} mm "
                   f"(< {settings.min_volumes_kept})")
    return "; ".join(why) or None


def session_motion(runs: list[RunMotion]) -> dict:
    """A subject-session's figures over its runs: mean FD over all their volumes (each run
    weighted by its frames), the largest FD, and the fraction of high-motion volumes."""
    if not runs:
        return {"mean_fd": np.nan, "max_fd": np.nan, "fraction_high_motion": np.nan}
    frames = sum(max(len(r.fd) - 1, 1) for r in runs)
    return {"mean_fd": float(sum(r.mean_fd * max(len(r.fd) - 1, 1) for r in runs) / frames),
            "max_fd": float(max(r.max_fd for r in runs)),
            "fraction_high_motion": float(sum(r.n_over for r in runs) / sum(len(r.fd) for r in runs))}


def motion_settings(values: dict) -> MotionSettings:
    """:class:`MotionSettings` from ``[motion]`` of a study config (already type-checked)."""
    return MotionSettings(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items()})
