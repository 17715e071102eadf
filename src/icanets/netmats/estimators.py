"""Connectivity estimators: one node time-series matrix in, one network matrix out.

Every function takes ``ts`` of shape ``(T, N)`` (time points x nodes), or a stack of runs
``(R, T, N)`` with equal T, and returns ``(N, N)`` (or ``(R, N, N)``); ``amplitude``
returns ``(N,)``. Time series are demeaned here, so callers need not. Correlation-type
matrices have a zero diagonal, as in FSLNets.

Notation: ``C`` is the sample covariance (``ddof = 1``), ``D = diag(C)``,
``P = inv(C)`` the precision matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy.linalg import lapack

from icanets.netmats.clean import NetmatsError

__all__ = [
    "covariance",
    "amplitude",
    "correlation",
    "rcorr",
    "partial_correlation",
    "ridgep",
    "glasso_partial",
    "ledoit_wolf_partial",
    "tangent",
    "geometric_mean",
    "precision_to_partial",
    "ESTIMATORS",
    "Estimator",
    "get_estimator",
]


def _as_batch(ts: np.ndarray) -> tuple[np.ndarray, bool]:
    ts = np.asarray(ts, dtype=np.float64)
    if ts.ndim == 2:
        return ts[None], True
    if ts.ndim == 3:
        return ts, False
    raise NetmatsError(f"time series must have shape (T, N) or (R, T, N), got {ts.shape}")


def _cov(batch: np.ndarray) -> np.ndarray:
    # One run at a time: numpy computes ``x.T @ x`` with a symmetric rank-k update (half
    # the work of a general product), which a 3D batched matmul does not.
    out = np.empty((batch.shape[0], batch.shape[2], batch.shape[2]))
    for r in range(batch.shape[0]):
        centred = batch[r] - batch[r].mean(axis=0)
        np.matmul(centred.T, centred, out=out[r])
    out /= batch.shape[1] - 1
    return out


def _inv_spd(mats: np.ndarray) -> np.ndarray:
    """Inverses of symmetric positive definite matrices (Cholesky); LU where not PD."""
    out = np.empty_like(mats)
    for r in range(mats.shape[0]):
        factor, info = lapack.dpotrf(mats[r], lower=1, clean=1)
        if info == 0:
            inverse, info = lapack.dpotri(factor, lower=1)
        if info != 0:
            out[r] = np.linalg.inv(mats[r])
            continue
        lower = np.tril(inverse)  # potri fills the lower triangle only (zeros above, as clean=1)
        out[r] = lower + np.tril(inverse, -1).T
    return out


def _zero_diagonal(mats: np.ndarray) -> np.ndarray:
    n = mats.shape[-1]
    mats[..., np.arange(n), np.arange(n)] = 0.0
    return mats


def _out(mats: np.ndarray, single: bool) -> np.ndarray:
    return mats[0] if single else mats


def _cov_to_corr(cov: np.ndarray) -> np.ndarray:
    d = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
    return cov / (d[..., :, None] * d[..., None, :])


def precision_to_partial(precision: np.ndarray) -> np.ndarray:
    """Partial correlations from precision matrices: ``-P_ij / sqrt(|P_ii P_jj|)``, diagonal 0."""
    d = np.sqrt(np.abs(np.diagonal(precision, axis1=-2, axis2=-1)))
    return _zero_diagonal(-precision / (d[..., :, None] * d[..., None, :]))


def covariance(ts: np.ndarray) -> np.ndarray:
    """Sample covariance ``C = X'X / (T - 1)`` of the demeaned time series ``X``."""
    batch, single = _as_batch(ts)
    return _out(_cov(batch), single)


def amplitude(ts: np.ndarray) -> np.ndarray:
    """Node amplitudes: the standard deviation of each node's time series (``ddof = 1``)."""
    batch, single = _as_batch(ts)
    return _out(batch.std(axis=1, ddof=1), single)


def correlation(ts: np.ndarray) -> np.ndarray:
    """Full correlation ``r_ij = C_ij / sqrt(C_ii C_jj)``, diagonal 0 (``numpy.corrcoef``)."""
    batch, single = _as_batch(ts)
    return _out(_zero_diagonal(_cov_to_corr(_cov(batch))), single)


def rcorr(ts: np.ndarray) -> np.ndarray:
    """Full correlation after regressing the global mean time course out of every node.

    ``g = X 1 / N`` (the mean over nodes at each time point); each node is replaced by
    its residual ``x - g (g'x / g'g)``; then :func:`correlation`.
    """
    batch, single = _as_batch(ts)
    centred = batch - batch.mean(axis=1, keepdims=True)
    g = centred.mean(axis=2, keepdims=True)
    beta = np.matmul(g.transpose(0, 2, 1), centred) / np.matmul(g.transpose(0, 2, 1), g)
    return _out(_zero_diagonal(_cov_to_corr(_cov(centred - g * beta))), single)


def _check_rank(batch: np.ndarray, name: str) -> None:
    t, n = batch.shape[1], batch.shape[2]
    if t - 1 < n:
        raise NetmatsError(
            f"{name} needs more time points than nodes (has {t} time points, {n} nodes): the sample covariance "
            "is singular. Use 'ridgep' (L2-regularised) or 'glasso' (L1-regularised) partial correlation.")


def partial_correlation(ts: np.ndarray) -> np.ndarray:
    """Partial correlation from the inverse sample covariance.

    ``rho_ij = -P_ij / sqrt(P_ii P_jj)`` with ``P = inv(C)``; diagonal 0. Needs T > N.
    """
    batch, single = _as_batch(ts)
    _check_rank(batch, "partial correlation")
    return _out(precision_to_partial(_inv_spd(_cov(batch))), single)


def ridgep(ts: np.ndarray, rho: float = 0.1) -> np.ndarray:
    """L2-regularised (Tikhonov / ridge) partial correlation, as FSLNets ``ridgep``.

    ``S = C / sqrt(mean(diag(C)^2))`` (covariance scaled by the root mean square of its
    diagonal), ``P = inv(S + rho I)``, ``rho_ij = -P_ij / sqrt(|P_ii P_jj|)``, diagonal 0.
    With ``rho -> 0`` this tends to :func:`partial_correlation`.

    Parameters
    ----------
    ts : ndarray, shape (T, N) or (R, T, N)
    rho : float, default 0.1
        Regularisation, relative to the scaled covariance; must be >= 0.

    References
    ----------
    Smith SM et al. (2011) Network modelling methods for FMRI. NeuroImage 54:875-891.
    """
    if not np.isfinite(rho) or rho < 0:
        raise NetmatsError(f"rho must be a non-negative number, got {rho!r}")
    batch, single = _as_batch(ts)
    if rho == 0:
        _check_rank(batch, "ridgep with rho = 0")
    cov = _cov(batch)
    diag = np.diagonal(cov, axis1=1, axis2=2)
    scaled = cov / np.sqrt(np.mean(diag**2, axis=1))[:, None, None]
    n = cov.shape[-1]
    precision = _inv_spd(scaled + rho * np.eye(n))
    return _out(precision_to_partial(precision), single)


def glasso_partial(ts: np.ndarray, alpha: float = 0.01, *, max_iter: int = 200, tol: float = 1e-5) -> np.ndarray:
    """L1-regularised partial correlation (graphical lasso, scikit-learn).

    The time series are standardised (so the lasso acts on the correlation matrix ``R``),
    then ``P = argmin tr(R P) - log det P + alpha * sum_{i != j} |P_ij|`` by
    :func:`sklearn.covariance.graphical_lasso`, and ``rho_ij = -P_ij / sqrt(P_ii P_jj)``.
    """
    from sklearn.covariance import graphical_lasso

    if not np.isfinite(alpha) or alpha <= 0:
        raise NetmatsError(f"alpha must be a positive number, got {alpha!r}")
    batch, single = _as_batch(ts)
    out = np.empty((batch.shape[0], batch.shape[2], batch.shape[2]))
    corr = _cov_to_corr(_cov(batch))
    for r in range(batch.shape[0]):
        _, precision = graphical_lasso(corr[r], alpha=alpha, max_iter=max_iter, tol=tol)
        out[r] = precision_to_partial(precision)
    return _out(out, single)


def ledoit_wolf_partial(ts: np.ndarray) -> np.ndarray:
    """Partial correlation from the Ledoit-Wolf shrunk covariance (scikit-learn).

    ``C_lw = (1 - s) C_ml + s mu I`` with the Ledoit-Wolf shrinkage ``s`` and
    ``mu = trace(C_ml) / N`` (``C_ml``: the maximum-likelihood covariance, ddof = 0);
    ``rho_ij = -P_ij / sqrt(P_ii P_jj)`` with ``P = inv(C_lw)``. Works for T < N.
    """
    from sklearn.covariance import ledoit_wolf

    batch, single = _as_batch(ts)
    out = np.empty((batch.shape[0], batch.shape[2], batch.shape[2]))
    for r in range(batch.shape[0]):
        cov, _ = ledoit_wolf(batch[r])
        out[r] = precision_to_partial(np.linalg.inv(cov))
    return _out(out, single)


def _map_eigenvalues(function: Callable[[np.ndarray], np.ndarray], mats: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(mats)
    return np.matmul(vectors * function(values)[..., None, :], np.swapaxes(vectors, -1, -2))


def geometric_mean(covariances: np.ndarray, *, max_iter: int = 30, tol: float = 1e-7) -> np.ndarray:
    """Riemannian geometric mean of symmetric positive definite matrices.

    The minimiser of ``sum_k ||logm(G^-1/2 C_k G^-1/2)||_F^2``, by gradient descent along
    geodesics (Fletcher & Joshi 2007, algorithm 3), starting at the arithmetic mean, with
    the step halved whenever the gradient norm grows, stopping when the gradient norm
    divided by ``N^2`` is below ``tol`` or after ``max_iter`` steps (nilearn's settings).
    """
    covariances = np.asarray(covariances, dtype=np.float64)
    if np.linalg.eigvalsh(covariances).min() <= 0:
        raise NetmatsError("the tangent embedding needs positive definite covariances")
    gmean = covariances.mean(axis=0)
    norm_old, step = np.inf, 1.0
    for _ in range(max_iter):
        values, vectors = np.linalg.eigh(gmean)
        inv_sqrt = (vectors / np.sqrt(values)) @ vectors.T
        logs = _map_eigenvalues(np.log, inv_sqrt @ covariances @ inv_sqrt)
        log_mean = logs.mean(axis=0)
        norm = np.linalg.norm(log_mean)
        sqrt = (vectors * np.sqrt(values)) @ vectors.T
        lv, lvec = np.linalg.eigh(log_mean)
        gmean = sqrt @ ((lvec * np.exp(lv * step)) @ lvec.T) @ sqrt
        if norm < norm_old:
            norm_old = norm
        elif norm > norm_old:
            step /= 2.0
            norm = norm_old
        if norm / gmean.size < tol:
            break
    return gmean


def tangent(runs: Sequence[np.ndarray], *, covariance_estimator: str = "ledoit_wolf") -> tuple[np.ndarray, np.ndarray]:
    """Tangent-space embedding of the runs' covariances around their geometric mean.

    ``T_k = logm(G^-1/2 C_k G^-1/2)`` with ``G`` the :func:`geometric_mean` of the
    covariances ``C_k`` (Varoquaux et al. 2010), as nilearn's ``ConnectivityMeasure(
    kind="tangent")``. This is a group-level estimator: every run's matrix depends on
    the whole group.

    Parameters
    ----------
    runs : sequence of ndarray, each (T_k, N)
    covariance_estimator : {"ledoit_wolf", "empirical"}, default "ledoit_wolf"
        Ledoit-Wolf (nilearn's default) or the maximum-likelihood covariance.

    Returns
    -------
    tangent : ndarray, shape (R, N, N)
        Diagonal kept (it is meaningful in the tangent space).
    mean : ndarray, shape (N, N)
        The geometric mean ``G``.
    """
    from sklearn.covariance import empirical_covariance, ledoit_wolf

    if len(runs) < 2:
        raise NetmatsError("the tangent embedding needs at least two runs (it measures deviations from their mean)")
    if covariance_estimator == "ledoit_wolf":
        covs = np.array([ledoit_wolf(np.asarray(r, dtype=np.float64))[0] for r in runs])
    elif covariance_estimator == "empirical":
        covs = np.array([empirical_covariance(np.asarray(r, dtype=np.float64)) for r in runs])
    else:
        raise NetmatsError(f"covariance_estimator must be 'ledoit_wolf' or 'empirical', got {covariance_estimator!r}")
    mean = geometric_mean(covs)
    whitening = _map_eigenvalues(lambda v: 1.0 / np.sqrt(v), mean)
    return _map_eigenvalues(np.log, whitening @ covs @ whitening), mean


@dataclass(frozen=True)
class Estimator:
    """A per-run estimator and how FSLNets' r-to-z null treats it.

    Attributes
    ----------
    name : str
    function : callable
        ``function(ts, **params) -> (N, N)`` (or a batch).
    kind : {"full", "partial", "none"}
        The null of :func:`~icanets.netmats.ztransform.fslnets_z_scale` uses full
        correlation for "full", unregularised partial correlation for "partial"; "none"
        means no r-to-z (covariance, amplitude).
    """

    name: str
    function: Callable[..., np.ndarray]
    kind: str


ESTIMATORS: dict[str, Estimator] = {
    "cov": Estimator("cov", covariance, "none"),
    "amp": Estimator("amp", amplitude, "none"),
    "corr": Estimator("corr", correlation, "full"),
    "rcorr": Estimator("rcorr", rcorr, "full"),
    "partial": Estimator("partial", partial_correlation, "partial"),
    "ridgep": Estimator("ridgep", ridgep, "partial"),
    "glasso": Estimator("glasso", glasso_partial, "partial"),
    "lw_partial": Estimator("lw_partial", ledoit_wolf_partial, "partial"),
}


def get_estimator(name: str) -> Estimator:
    """The estimator called ``name`` (``tangent`` is group-level: see :func:`tangent`)."""
    try:
        return ESTIMATORS[name]
    except KeyError:
        raise NetmatsError(f"unknown netmat method {name!r}; known: {', '.join([*ESTIMATORS, 'tangent'])}") from None
