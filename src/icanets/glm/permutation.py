"""The permutation engine: edge-wise t and F statistics under many relabellings at once.

For a contrast ``C`` (``q x p``) the design is reparameterised as ``M = [X C^+, Z]``,
where ``Z`` is an orthonormal basis of the nuisance space ``X (I - C^+ C)``, so that the
contrast becomes ``[I_q, 0]`` (Smith et al. 2007; Winkler et al. 2014). With ``M = QR``
and ``U = Q' Y*`` for relabelled data ``Y*``:

* the contrast estimate is ``V U`` with ``V`` the first ``q`` rows of ``R^-1``;
* the residual sum of squares is ``||Y*||^2 - ||U||^2``, and relabellings (permutations
  and sign flips) preserve ``||Y*||^2``;
* ``t = v U / (||v|| sqrt(RSS / (N - p)))`` and
  ``F = ||L' V U||^2 / q / (RSS / (N - p))`` with ``L L' = (V V')^-1``.

So the work for a batch of relabellings is one matrix product ``[Q' P_1; ...; Q' P_B] D``
of ``(B p) x N`` by ``N x E``: GEMM-bound, about ``2 n_perm p N E`` flops in all.

Nuisance methods (what ``D`` is, and what is relabelled):

* Freedman-Lane (default): ``D = R_Z Y``, the residuals of the nuisance-only model, are
  relabelled; adding back the nuisance fit does not change the statistic, so it is skipped.
* ter Braak: ``D = R_M Y``, the residuals of the full model.
* Draper-Stoneman: ``Y`` stays, the effect-of-interest regressors ``X C^+`` are
  relabelled (one QR per relabelling).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import linalg

from icanets.glm.design import Design, DesignError
from icanets.glm.exchange import Exchangeability, Relabellings, plan_relabellings
from icanets.glm.inference import NBSComponent, NBSOptions, components, fdr_bh, fwe_from_max, max_component
from icanets.parallel import map_items

__all__ = ["ContrastResult", "GLMResult", "permutation_glm", "fit_statistics", "METHODS"]

METHODS = ("freedman-lane", "ter-braak", "draper-stoneman")
_TIE = 1e-10  # relative tolerance for counting statistics equal up to rounding as ties


@dataclass(frozen=True)
class ContrastResult:
    """Edge-wise results of one t contrast or F-test.

    Attributes
    ----------
    name : str
    kind : {"t", "F"}
    statistic : ndarray, shape (E,)
        The unpermuted t or F; 0 where it is undefined (an edge whose data are
        constant), with p values of 1 there.
    p_unc : ndarray, shape (E,)
        Uncorrected permutation p: the fraction of relabellings (identity included) whose
        statistic is at least the observed one (``|t|`` for two-tailed t).
    p_fwe : ndarray, shape (E,)
        FWE-corrected p from the distribution of the maximum over edges.
    q_fdr : ndarray, shape (E,)
        Benjamini-Hochberg q of ``p_unc``.
    null_max : ndarray, shape (n_perm,)
        The maximum statistic over edges of every relabelling (identity first).
    df : tuple of int
        ``(q, N - p)``: numerator and denominator degrees of freedom.
    tails : int
        1 or 2 (F: 1).
    nbs : tuple of NBSComponent
        Components of supra-threshold edges, when NBS was asked for.
    nbs_null_max : ndarray or None
        Largest component size of every relabelling.
    """

    name: str
    kind: str
    statistic: np.ndarray
    p_unc: np.ndarray
    p_fwe: np.ndarray
    q_fdr: np.ndarray
    null_max: np.ndarray
    df: tuple[int, int]
    tails: int
    nbs: tuple[NBSComponent, ...] = ()
    nbs_null_max: np.ndarray | None = None


@dataclass(frozen=True)
class GLMResult:
    """Results of a permutation GLM over edges.

    Attributes
    ----------
    contrasts : tuple of ContrastResult
        t contrasts, then F-tests.
    n_used : int
        Observations in the model.
    dropped : tuple of str
        Observations left out, with the reason.
    n_perm : int
        Relabellings used (identity included).
    exhaustive : bool
        Whether they are all the distinct relabellings.
    n_distinct : int
        Number of distinct relabellings.
    scheme : str
        The exchangeability scheme, in words.
    method : str
        Nuisance method.
    seed : int
    p_fwe_across : ndarray, shape (n_t_contrasts, E) or None
        FWE-corrected p over all edges and all t contrasts (max over both).
    design_columns : tuple of str
    """

    contrasts: tuple[ContrastResult, ...]
    n_used: int
    n_perm: int
    exhaustive: bool
    n_distinct: int
    scheme: str
    method: str
    seed: int
    dropped: tuple[str, ...] = ()
    p_fwe_across: np.ndarray | None = None
    design_columns: tuple[str, ...] = field(default=())

    def __getitem__(self, name: str) -> ContrastResult:
        for contrast in self.contrasts:
            if contrast.name == name:
                return contrast
        raise KeyError(f"no contrast {name!r}; contrasts: {', '.join(c.name for c in self.contrasts)}")

    def table(self, edges: pd.DataFrame | None = None) -> pd.DataFrame:
        """Long table: one row per contrast and edge (with node names when ``edges`` is given)."""
        frames = []
        for k, c in enumerate(self.contrasts):
            frame = pd.DataFrame({"contrast": c.name, "kind": c.kind, "edge": np.arange(c.statistic.size),
                                  "statistic": c.statistic, "p_unc": c.p_unc, "p_fwe": c.p_fwe, "q_fdr": c.q_fdr})
            if self.p_fwe_across is not None and c.kind == "t":
                frame["p_fwe_across"] = self.p_fwe_across[k]
            if edges is not None:
                frame = frame.merge(edges, on="edge", how="left")
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class _Prepared:
    q_basis: np.ndarray  # (N, p)
    v: np.ndarray  # (q, p): contrast rows of R^-1
    f_map: np.ndarray | None  # (q, p) L' V for F
    data: np.ndarray  # D (N, E)
    norm2: np.ndarray  # ||D||^2 (E,)
    df: int
    q: int
    interest: np.ndarray  # X C^+ (N, q)
    nuisance: np.ndarray  # Z (N, p - q)


def _prepare(x: np.ndarray, c: np.ndarray, y: np.ndarray, method: str) -> _Prepared:
    n, p = x.shape
    q = c.shape[0]
    c_pinv = np.linalg.pinv(c)
    interest = x @ c_pinv
    nuisance_space = x @ (np.eye(p) - c_pinv @ c)
    if p > q:
        u, s, _ = np.linalg.svd(nuisance_space, full_matrices=False)
        nuisance = u[:, : p - q]
    else:
        nuisance = np.zeros((n, 0))
    design = np.hstack([interest, nuisance])
    q_basis, r = np.linalg.qr(design)
    r_inv = linalg.solve_triangular(r, np.eye(p))
    v = r_inv[:q]
    f_map = None
    if q > 1:
        chol = np.linalg.cholesky(np.linalg.inv(v @ v.T))
        f_map = chol.T @ v
    if method == "freedman-lane":
        data = y - nuisance @ (nuisance.T @ y)
    elif method == "ter-braak":
        data = y - q_basis @ (q_basis.T @ y)
    else:
        data = y
    return _Prepared(q_basis=q_basis, v=v, f_map=f_map, data=np.ascontiguousarray(data),
                     norm2=np.einsum("ne,ne->e", data, data), df=n - p, q=q, interest=interest, nuisance=nuisance)


def _statistics(prep: _Prepared, perms: np.ndarray, signs: np.ndarray, method: str, tails: int) -> np.ndarray:
    """Statistics for a batch of relabellings, shape ``(B, E)`` (``|t|`` when two-tailed)."""
    b, n = perms.shape
    p = prep.q_basis.shape[1]
    rows = np.arange(b)[:, None]
    if method == "draper-stoneman":
        weights = np.empty((b, n, p))
        v = np.empty((b, prep.q, p))
        for k in range(b):
            relabelled = np.empty_like(prep.interest)
            relabelled[perms[k]] = prep.interest * signs[k][:, None]
            qk, rk = np.linalg.qr(np.hstack([relabelled, prep.nuisance]))
            weights[k] = qk
            v[k] = linalg.solve_triangular(rk, np.eye(p))[: prep.q]
        norm2 = prep.norm2
    else:
        weights = np.zeros((b, n, p))
        weights[rows, perms] = signs[..., None] * prep.q_basis[None]
        v = np.broadcast_to(prep.v, (b, prep.q, p))
        norm2 = prep.norm2
    u = (weights.transpose(0, 2, 1).reshape(b * p, n) @ prep.data).reshape(b, p, -1)
    rss = norm2[None] - np.einsum("bke,bke->be", u, u)
    np.maximum(rss, 0.0, out=rss)
    sigma2 = rss / prep.df
    if prep.q == 1:
        vv = v[:, 0, :]
        num = np.einsum("bk,bke->be", vv, u)
        scale = np.sqrt(np.einsum("bk,bk->b", vv, vv))[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            stat = num / (scale * np.sqrt(sigma2))
        return np.abs(stat) if tails == 2 else stat
    if method == "draper-stoneman":
        f_maps = np.stack([np.linalg.cholesky(np.linalg.inv(vk @ vk.T)).T @ vk for vk in v])
    else:
        f_maps = np.broadcast_to(prep.f_map, (b, prep.q, p))
    projected = np.einsum("bjk,bke->bje", f_maps, u)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.einsum("bje,bje->be", projected, projected) / prep.q / sigma2


def fit_statistics(y: np.ndarray, design: Design, *, tails: int = 2) -> dict[str, np.ndarray]:
    """Unpermuted t (signed) and F statistics of every contrast and F-test, by name."""
    y = np.asarray(y, dtype=float)
    out = {}
    identity = np.arange(y.shape[0])[None]
    ones = np.ones_like(identity, dtype=np.int8)
    for name, c in _contrast_list(design):
        prep = _prepare(design.matrix, c, y, "freedman-lane")
        out[name] = _statistics(prep, identity, ones, "freedman-lane", 1)[0]
    return out


def _contrast_list(design: Design) -> list[tuple[str, np.ndarray]]:
    items = [(name, design.contrasts[k:k + 1]) for k, name in enumerate(design.contrast_names)]
    items += [(name, design.contrasts[list(members)]) for name, members in zip(design.ftest_names, design.ftests)]
    return items


def permutation_glm(y: np.ndarray, design: Design, *, n_perm: int = 5000, exchangeability: Exchangeability | None = None,
                    method: str = "freedman-lane", tails: int = 2, seed: int = 0, fwe_across_contrasts: bool = False,
                    nbs: NBSOptions | None = None, chunk_size: int | None = None, n_jobs: int | None = None,
                    relabellings: Relabellings | None = None) -> GLMResult:
    """Edge-wise GLM with permutation inference (randomise/PALM style).

    Parameters
    ----------
    y : ndarray, shape (N, E)
        Observations x edges, rows in the order of ``design``.
    design : Design
    n_perm : int, default 5000
        Relabellings asked for. If the distinct relabellings are at most this many, all
        are enumerated (exhaustive test); otherwise the identity plus ``n_perm - 1``
        random draws.
    exchangeability : Exchangeability, optional
        Default: free permutation, within ``design.blocks`` when it has blocks.
    method : {"freedman-lane", "ter-braak", "draper-stoneman"}, default "freedman-lane"
    tails : {1, 2}, default 2
        For t contrasts: 1 tests the contrast's positive direction (as randomise), 2 uses
        ``|t|``. F-tests are one-tailed.
    seed : int, default 0
    fwe_across_contrasts : bool, default False
        Also FWE-correct over all t contrasts (maximum over contrasts and edges).
    nbs : NBSOptions, optional
        Also run the Network-Based Statistic (needs E = N_nodes (N_nodes - 1) / 2).
    chunk_size : int, optional
        Relabellings per matrix product (memory vs speed; results do not depend on it).
    n_jobs : int, optional
        Worker threads (results do not depend on it).
    relabellings : Relabellings, optional
        Use these instead of planning them (e.g. the same ones for several analyses).

    Returns
    -------
    GLMResult

    Notes
    -----
    ``p = (number of relabellings whose statistic >= the observed, identity included) /
    n_perm``; statistics equal up to a relative ``1e-10`` count as ties.

    References
    ----------
    Winkler AM, Ridgway GR, Webster MA, Smith SM, Nichols TE (2014). Permutation inference
    for the general linear model. NeuroImage 92:381-397.
    """
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 2:
        raise DesignError(f"data must be 2D (observations x edges), got shape {y.shape}")
    if y.shape[0] != design.n:
        raise DesignError(f"data have {y.shape[0]} rows, the design {design.n} observations")
    bad = np.argwhere(~np.isfinite(y))
    if bad.size:
        i, e = bad[0]
        who = design.rows[i] if design.rows else f"row {i + 1}"
        raise DesignError(f"data have non-finite values ({len(bad)} in all), e.g. {who}, edge {e}")
    if method not in METHODS:
        raise DesignError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if tails not in (1, 2):
        raise DesignError(f"tails must be 1 or 2, got {tails!r}")
    if exchangeability is None:
        exchangeability = Exchangeability(blocks=design.blocks)
    if relabellings is None:
        relabellings = plan_relabellings(design.matrix, exchangeability, n_perm, seed=seed)
    elif relabellings.perms.shape[1] != design.n:
        raise DesignError("the given relabellings are for a different number of observations")
    n_nodes = None
    if nbs is not None:
        from icanets.netmats.edges import n_nodes_from_edges

        n_nodes = n_nodes_from_edges(y.shape[1])

    n_edges = y.shape[1]
    items = _contrast_list(design)
    p = design.matrix.shape[1]
    if chunk_size is None:
        chunk_size = int(max(8, min(1024, 48e6 / (8 * max(p, 2) * max(n_edges, 1)))))
    starts = list(range(0, relabellings.n, chunk_size))

    results = []
    t_maxima = []
    for k, (name, c) in enumerate(items):
        kind = "t" if c.shape[0] == 1 else "F"
        contrast_tails = tails if kind == "t" else 1
        prep = _prepare(design.matrix, c, y, method)
        # The unpermuted statistic comes from the data themselves (for ter Braak, D holds the
        # full model's residuals, whose contrast is zero).
        direct = prep if method != "ter-braak" else _prepare(design.matrix, c, y, "freedman-lane")
        observed_signed = _statistics(direct, relabellings.perms[:1], relabellings.signs[:1], "freedman-lane", 1)[0]
        observed = np.abs(observed_signed) if contrast_tails == 2 else observed_signed
        threshold = observed - _TIE * np.maximum(1.0, np.abs(observed))
        observed_stat = observed_signed if kind == "t" else observed

        def chunk(start: int):
            stop = min(start + chunk_size, relabellings.n)
            stats = _statistics(prep, relabellings.perms[start:stop], relabellings.signs[start:stop], method,
                                contrast_tails)
            stats = np.nan_to_num(stats, nan=-np.inf)
            counts = (stats >= threshold).sum(axis=0)
            sizes = max_component(stats, n_nodes, nbs) if nbs is not None else None
            return stats.max(axis=1), counts, sizes

        parts = map_items(chunk, starts, n_jobs=n_jobs)
        null_max = np.concatenate([part[0] for part in parts])
        counts = np.sum([part[1] for part in parts], axis=0)
        p_unc = counts / relabellings.n
        # Edges whose statistic is undefined (constant data, e.g. a zero diagonal): 0 and p = 1.
        undefined = ~np.isfinite(observed)
        observed = np.where(undefined, 0.0, observed)
        observed_stat = np.where(undefined, 0.0, observed_stat)
        p_unc[undefined] = 1.0
        nbs_found: tuple[NBSComponent, ...] = ()
        nbs_null = None
        if nbs is not None:
            nbs_null = np.concatenate([part[2] for part in parts])
            found = components(np.where(undefined, -np.inf, observed), n_nodes, nbs)
            nbs_found = tuple(NBSComponent(nodes=nodes, edges=edges, size=size,
                                           p_fwe=float(fwe_from_max(np.array([size]), nbs_null)[0]))
                              for nodes, edges, size in found)
        results.append(ContrastResult(
            name=name, kind=kind, statistic=observed_stat, p_unc=p_unc,
            p_fwe=np.where(undefined, 1.0, fwe_from_max(observed, null_max)), q_fdr=fdr_bh(p_unc),
            null_max=null_max, df=(prep.q, prep.df), tails=contrast_tails, nbs=nbs_found, nbs_null_max=nbs_null))
        if kind == "t":
            t_maxima.append(null_max)

    p_fwe_across = None
    if fwe_across_contrasts and len(t_maxima) > 1:
        overall = np.max(np.vstack(t_maxima), axis=0)
        p_fwe_across = np.vstack([
            fwe_from_max(np.abs(r.statistic) if r.tails == 2 else r.statistic, overall)
            for r in results if r.kind == "t"])
    return GLMResult(contrasts=tuple(results), n_used=design.n, n_perm=relabellings.n,
                     exhaustive=relabellings.exhaustive, n_distinct=relabellings.n_distinct,
                     scheme=exchangeability.describe(), method=method, seed=seed, dropped=design.dropped,
                     p_fwe_across=p_fwe_across, design_columns=design.columns)
