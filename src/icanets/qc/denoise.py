"""Denoising and censoring of runs before group ICA and dual regression.

Confound regressors of fMRIPrep runs come from nilearn's ``load_confounds_strategy`` (the
strategies ``simple``: 24 motion parameters, high-pass cosines and white matter/CSF;
``scrubbing``: that plus removal of high-motion volumes; ``compcor``; ``ica_aroma``), with
nilearn's own defaults unless ``[motion] denoise_options`` says otherwise, so the columns and
the scrubbing rule are the ones nilearn documents, not a parser of ours. Censoring
(``[motion] censor = true``) removes the volumes with FD above ``fd_threshold`` for any motion
source. A run is cleaned on its kept volumes: the regressors' fit (with an intercept) is
estimated there and subtracted, keeping the run's mean image; the removed volumes never reach
MIGP, dual regression or the netmats, and the netmats' AR(1) null is drawn at each run's kept
length.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from icanets._defaults import MOTION_DEFAULTS
from icanets.qc.motion import censor_mask

__all__ = ["DENOISE_STRATEGIES", "RunCleaning", "run_cleaning", "clean_run"]

#: ``[motion] denoise``: no regression, or one of nilearn's fMRIPrep strategies.
DENOISE_STRATEGIES = ("none", "simple", "scrubbing", "compcor", "ica_aroma")


@dataclass(frozen=True)
class RunCleaning:
    """What is removed from one run before it is analysed.

    Attributes
    ----------
    confounds : ndarray (T, k) or None
        Regressors to remove (all volumes; fitted on the kept ones).
    keep : ndarray of bool (T,) or None
        Volumes kept (None: all).
    columns : tuple of str
        Names of the regressors.
    """

    confounds: np.ndarray | None = field(default=None, repr=False)
    keep: np.ndarray | None = field(default=None, repr=False)
    columns: tuple[str, ...] = ()

    @property
    def n_kept(self) -> int | None:
        return None if self.keep is None else int(self.keep.sum())

    def digest(self) -> str:
        import hashlib

        h = hashlib.sha256()
        for part in (self.confounds, self.keep):
            h.update(b"-" if part is None else np.ascontiguousarray(part).tobytes())
        h.update(repr(self.columns).encode())
        return h.hexdigest()


def run_cleaning(bold, n_volumes: int, fd: np.ndarray | None, *, strategy: str = "none", options: dict | None = None,
                 censor: bool = False, fd_threshold: float = MOTION_DEFAULTS["fd_threshold"]) -> RunCleaning | None:
    """The cleaning of one run (None when nothing is removed). ``bold``: the run's image (an
    fMRIPrep output, for ``strategy`` other than ``none``); ``fd``: its FD, for censoring."""
    from icanets.errors import StudyError

    confounds, keep, columns = None, None, ()
    if strategy not in DENOISE_STRATEGIES:
        raise StudyError(f"unknown denoising strategy {strategy!r}; known: {', '.join(DENOISE_STRATEGIES)}")
    if strategy != "none":
        from nilearn.interfaces.fmriprep import load_confounds_strategy

        try:
            frame, sample_mask = load_confounds_strategy(str(bold), denoise_strategy=strategy, **(options or {}))
        except (ValueError, KeyError, TypeError, FileNotFoundError) as exc:
            raise StudyError(f"{bold}: nilearn's load_confounds_strategy({strategy!r}) failed: "
                             f"{type(exc).__name__}: {exc}") from None
        if len(frame) != n_volumes:
            raise StudyError(f"{bold}: the {strategy!r} confounds have {len(frame)} rows for {n_volumes} volumes")
        confounds = frame.to_numpy(dtype=float)
        columns = tuple(frame.columns)
        if sample_mask is not None:
            keep = np.zeros(n_volumes, dtype=bool)
            keep[np.asarray(sample_mask, dtype=int)] = True
    if confounds is not None:
        left = n_volumes if keep is None else int(keep.sum())
        if confounds.shape[1] >= left / 2:
            raise StudyError(f"{bold}: the {strategy!r} strategy regresses {confounds.shape[1]} confounds out of "
                             f"{left} volumes, leaving fewer than half the degrees of freedom; choose a lighter "
                             f"strategy or set [motion] denoise_options (e.g. motion = \"basic\")")
    if censor:
        if fd is None:
            raise StudyError(f"{bold}: censoring needs the run's framewise displacement (no motion file)")
        by_fd = censor_mask(fd, fd_threshold)
        keep = by_fd if keep is None else keep & by_fd
    if confounds is None and (keep is None or keep.all()):
        return None
    return RunCleaning(confounds=confounds, keep=keep, columns=columns)


def clean_run(data: np.ndarray, cleaning: RunCleaning | None) -> np.ndarray:
    """``data`` (T, V) with the censored volumes removed and the confounds regressed out (fit
    on the kept volumes, with an intercept; the mean image is kept).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> c = rng.normal(size=(50, 2))
    >>> data = 100 + c @ rng.normal(size=(2, 30)) + 0.01 * rng.normal(size=(50, 30))
    >>> keep = np.ones(50, bool); keep[[3, 9]] = False
    >>> out = clean_run(data, RunCleaning(confounds=c, keep=keep))
    >>> out.shape, bool(out.std(axis=0).max() < 0.02), bool(abs(out.mean() - 100) < 0.1)
    ((48, 30), True, True)
    """
    if cleaning is None:
        return data
    dtype = data.dtype if data.dtype in (np.float32, np.float64) else np.float64
    if cleaning.keep is not None:
        data = data[cleaning.keep]
    if cleaning.confounds is not None and cleaning.confounds.shape[1]:
        c = cleaning.confounds if cleaning.keep is None else cleaning.confounds[cleaning.keep]
        c = c - c.mean(axis=0)
        beta, *_ = np.linalg.lstsq(c, data - data.mean(axis=0, dtype=np.float64), rcond=None)
        data = data - (c @ beta).astype(dtype)
    return np.asarray(data, dtype=dtype)
