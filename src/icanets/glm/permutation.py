"""The permutation engine: edge-wise t and F statistics under many relabellings at once.

For a contrast ``C`` (``q x p``) the design is reparameterised as ``[Z, X C^+]`` where
``Z`` is an orthonormal basis of the nuisance space ``X (I - C^+ C)`` (Smith et al. 2007;
Winkler et al. 2014). Let ``G`` be an orthonormal basis of ``R_Z X C^+`` (the effect of
interest after the nuisance is regressed out; for ``q = 1`` the unit vector keeping its
sign) and ``U = G' Y*`` for relabelled data ``Y*``. Then

* ``t = U / sigma`` (q = 1) and ``F = ||U||^2 / (q sigma^2)``, with
  ``sigma^2 = RSS / (N - p)``;
* ``RSS = ||R_Z Y*||^2 - ||U||^2``, and ``||R_Z Y*||^2 = ||Y*||^2 - ||Z' Y*||^2``, where
  relabellings (permutations and sign flips) preserve ``||Y*||^2`` and nuisance directions
  that every relabelling fixes (the intercept, under permutation) contribute nothing.

So the work for a batch of relabellings is one matrix product of
``(B (q + r)) x N`` by ``N x E`` (``r`` nuisance directions that relabellings move):
GEMM-bound, about ``2 n_perm (q + r) N E`` flops in all.

Nuisance methods (what is relabelled):

* Freedman-Lane (default): the residuals of the nuisance-only model, ``D = R_Z Y``
  (adding back the nuisance fit does not change the statistic, so it is skipped).
* ter Braak: the residuals of the full model.
* Draper-Stoneman: the effect-of-interest regressors ``X C^+``; the data stay, and only
  ``q`` rows per relabelling are needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from icanets._defaults import DEFAULT_TAILS
from icanets.glm.design import Design, DesignError
from icanets.glm.exchange import Exchangeability, Relabellings, plan_relabellings
from icanets.glm.inference import NBSComponent, NBSOptions, components, fdr_bh, fwe_from_max, max_component
from icanets.parallel import map_items

__all__ = ["ContrastResult", "GLMResult", "permutation_glm", "fit_statistics", "METHODS", "DEFAULT_TAILS"]

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
        statistic is at least the observed one (``|t|`` for two-tailed t); never below
        ``1 / n_perm``.
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
            frame = pd.DataFrame({"contrast": c.name, "kind": c.kind, "tails": c.tails, "edge": np.arange(c.statistic.size),
                                  "statistic": c.statistic, "p_unc": c.p_unc, "p_fwe": c.p_fwe, "q_fdr": c.q_fdr})
            if self.p_fwe_across is not None and c.kind == "t":
                frame["p_fwe_across"] = self.p_fwe_across[k]
            if edges is not None:
                frame = frame.merge(edges, on="edge", how="left")
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class _Prepared:
    method: str
    interest_basis: np.ndarray  # (N, q): orthonormal basis of R_Z X C^+ (t: sign kept)
    rest_basis: np.ndarray  # (N, r): nuisance directions not fixed by every relabelling
    interest: np.ndarray  # X C^+ (N, q)
    nuisance: np.ndarray  # Z (N, p - q), orthonormal
    data: np.ndarray  # D (N, E)
    norm2: np.ndarray  # (E,): ||D||^2 (FL, ter Braak) or ||R_Z Y||^2 (Draper-Stoneman)
    df: int
    q: int

    @property
    def fast(self) -> bool:
        """No nuisance rows to carry: RSS is ``||D||^2 - ||U||^2`` with ``||D||^2`` fixed per edge,
        so a monotone function of ``U`` alone (the "surrogate") orders relabellings."""
        return self.rest_basis.shape[1] == 0

    def to_stat(self, surrogate: np.ndarray, tails: int) -> np.ndarray:
        """Comparison values of :func:`_statistics` -> |t| (two-tailed), t, or F."""
        df, q = self.df, self.q
        with np.errstate(divide="ignore", invalid="ignore"):
            if not self.fast:
                return np.sqrt(surrogate) if (q == 1 and tails == 2) else surrogate
            # An exact fit gives |surrogate| = 1 up to rounding: clip, so it maps to +-inf, not NaN.
            surrogate = np.clip(surrogate, 0.0 if (q > 1 or tails == 2) else -1.0, 1.0)
            if q > 1:
                return (df / q) * surrogate / (1 - surrogate)
            if tails == 2:
                return np.sqrt(df * surrogate / (1 - surrogate))
            return np.sqrt(df) * surrogate / np.sqrt(1 - surrogate**2)

    def from_stat(self, stat: np.ndarray, tails: int) -> np.ndarray:
        """The inverse of :meth:`to_stat` (``stat``: signed t, or F)."""
        df, q = self.df, self.q
        with np.errstate(divide="ignore", invalid="ignore"):
            if not self.fast:
                return stat**2 if (q == 1 and tails == 2) else stat
            if q > 1:
                return q * stat / (q * stat + df)
            if tails == 2:
                return stat**2 / (stat**2 + df)
            return stat / np.sqrt(stat**2 + df)


def _orthonormal(a: np.ndarray, tol: float = 1e-10) -> np.ndarray:
    if a.shape[1] == 0:
        return a
    u, s, _ = np.linalg.svd(a, full_matrices=False)
    return u[:, s > tol * max(1.0, s.max())]


def _invariant(nuisance: np.ndarray, scheme: Exchangeability | None) -> np.ndarray:
    """Orthonormal basis of the nuisance directions every relabelling of the scheme fixes.

    A permutation fixes the vector of ones (and, within blocks, each block's indicator).
    Rows ``q' P D`` of such directions equal ``q' D = 0`` (D is orthogonal to the nuisance
    space), so they can be left out of the matrix products.
    """
    n = nuisance.shape[0]
    if scheme is None or scheme.flip or nuisance.shape[1] == 0:
        return np.zeros((n, 0))
    if scheme.blocks is None or scheme.whole_blocks:
        generators = np.ones((n, 1))
    else:
        blocks = np.asarray(scheme.blocks)
        generators = np.column_stack([(blocks == b).astype(float) for b in np.unique(blocks)])
    g = _orthonormal(generators)
    u, s, _ = np.linalg.svd(nuisance.T @ g, full_matrices=False)
    return nuisance @ u[:, s > 1 - 1e-9]


def _prepare(x: np.ndarray, c: np.ndarray, y: np.ndarray, method: str, scheme: Exchangeability | None) -> _Prepared:
    n, p = x.shape
    q = c.shape[0]
    c_pinv = np.linalg.pinv(c)
    interest = x @ c_pinv
    nuisance = _orthonormal(x @ (np.eye(p) - c_pinv @ c))
    residual_interest = interest - nuisance @ (nuisance.T @ interest)
    if q == 1:
        interest_basis = residual_interest / np.linalg.norm(residual_interest)
    else:
        interest_basis, _ = np.linalg.qr(residual_interest)
    rz_y = y - nuisance @ (nuisance.T @ y)
    if method == "draper-stoneman":
        rest = np.zeros((n, 0))
        data = y
        norm2 = np.einsum("ne,ne->e", rz_y, rz_y)
    else:
        fixed = _invariant(nuisance, scheme)
        rest = _orthonormal(nuisance - fixed @ (fixed.T @ nuisance)) if fixed.shape[1] else nuisance
        data = rz_y if method == "freedman-lane" else rz_y - interest_basis @ (interest_basis.T @ rz_y)
        norm2 = np.einsum("ne,ne->e", data, data)
    return _Prepared(method=method, interest_basis=interest_basis, rest_basis=rest, interest=interest,
                     nuisance=nuisance, data=np.ascontiguousarray(data), norm2=norm2, df=n - p, q=q)


def _statistics(prep: _Prepared, perms: np.ndarray, signs: np.ndarray, tails: int) -> np.ndarray:
    """Comparison values for a batch of relabellings, shape ``(B, E)``.

    Monotone in the statistic of each edge: t, ``t^2`` (two-tailed) or F, or, where
    :attr:`_Prepared.fast`, a surrogate needing fewer passes (see :meth:`_Prepared.to_stat`).

    With ``U`` the projections of the relabelled data on the orthonormal interest basis,
    ``t = U / sigma`` and ``F = ||U||^2 / (q sigma^2)``, ``sigma^2 = RSS / (N - p)``.
    """
    b, n = perms.shape
    q = prep.q
    rows = np.arange(b)[:, None]
    if prep.method == "draper-stoneman":
        weights = np.empty((b, n, q))
        for k in range(b):
            relabelled = np.empty_like(prep.interest)
            relabelled[perms[k]] = prep.interest * signs[k][:, None]
            resid = relabelled - prep.nuisance @ (prep.nuisance.T @ relabelled)
            weights[k] = resid / np.linalg.norm(resid) if q == 1 else np.linalg.qr(resid)[0]
    else:
        basis = np.hstack([prep.interest_basis, prep.rest_basis])
        weights = np.zeros((b, n, basis.shape[1]))
        weights[rows, perms] = signs[..., None] * basis[None]
    k = weights.shape[2]
    u = (weights.transpose(0, 2, 1).reshape(b * k, n) @ prep.data).reshape(b, k, -1)
    if prep.fast:
        if q > 1:
            out = np.einsum("bje,bje->be", u, u)
        elif tails == 2:
            out = np.square(u[:, 0])
        else:
            return u[:, 0] * (1.0 / np.sqrt(prep.norm2))
        out *= 1.0 / prep.norm2
        return out
    rss = prep.norm2[None] - np.einsum("bke,bke->be", u, u)
    np.maximum(rss, 0.0, out=rss)
    rss *= 1.0 / prep.df  # sigma^2
    with np.errstate(divide="ignore", invalid="ignore"):
        if q == 1:
            if tails == 2:  # t^2: the same order as |t|, without square roots
                stat = np.square(u[:, 0])
                stat /= rss
            else:
                stat = u[:, 0] / np.sqrt(rss)
            return stat
        interest_u = u[:, :q]
        return np.einsum("bje,bje->be", interest_u, interest_u) / (q * rss)


def fit_statistics(y: np.ndarray, design: Design) -> dict[str, np.ndarray]:
    """Unpermuted statistics, by contrast name: signed t for t contrasts, F for F-tests
    (``F = t^2`` for an F-test of one contrast)."""
    y = np.asarray(y, dtype=float)
    out = {}
    identity = np.arange(y.shape[0])[None]
    ones = np.ones_like(identity, dtype=np.int8)
    for name, kind, c in _contrast_list(design):
        prep = _prepare(design.matrix, c, y, "freedman-lane", None)
        with np.errstate(divide="ignore", invalid="ignore"):
            stat = prep.to_stat(_statistics(prep, identity, ones, 1)[0], 1)
        out[name] = stat**2 if (kind == "F" and prep.q == 1) else stat
    return out


def _contrast_list(design: Design) -> list[tuple[str, str, np.ndarray]]:
    """``(name, kind, rows)`` of every t contrast, then every F-test (an F-test of one row is
    still an F-test: ``F = t^2``, two-sided in t)."""
    items = [(name, "t", design.contrasts[k:k + 1]) for k, name in enumerate(design.contrast_names)]
    items += [(name, "F", design.contrasts[list(members)])
              for name, members in zip(design.ftest_names, design.ftests)]
    return items


def permutation_glm(y: np.ndarray, design: Design, *, n_perm: int = 5000, exchangeability: Exchangeability | None = None,
                    method: str = "freedman-lane", tails: int = DEFAULT_TAILS, seed: int = 0, fwe_across_contrasts: bool = False,
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
    tails : {1, 2}, default 1
        For t contrasts: 1 tests the contrast's positive direction (as randomise, the
        default everywhere in icanets), 2 uses ``|t|``. F-tests are one-tailed in F.
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
    n_perm``; statistics equal up to a relative ``1e-10`` count as ties, so no p is below
    ``1 / n_perm`` (an edge the design fits exactly, with an infinite statistic, gets it).

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
    if isinstance(n_perm, bool) or not isinstance(n_perm, (int, np.integer)) or n_perm < 1:
        raise DesignError(f"n_perm must be a whole number >= 1, got {n_perm!r}")
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer))
                                   or chunk_size < 1):
        raise DesignError(f"chunk_size must be a whole number >= 1 (relabellings per matrix product), "
                          f"got {chunk_size!r}")
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
        chunk_size = int(max(8, min(1024, 24e6 / (8 * max(p, 2) * max(n_edges, 1)))))
    starts = list(range(0, relabellings.n, chunk_size))

    results = []
    t_maxima = []
    column_norm2 = np.einsum("ne,ne->e", y, y)
    for name, kind, c in items:
        # A one-row F-test is computed as a two-tailed t and reported as F = t^2.
        squared = kind == "F" and c.shape[0] == 1
        contrast_tails = tails if kind == "t" else 2 if squared else 1
        # Edges whose data lie in the nuisance space (e.g. constant, as a zero diagonal) have
        # no defined statistic: they are left out of the computation and reported as 0, p = 1.
        probe = _prepare(design.matrix, c, y, "freedman-lane", None)
        valid = probe.norm2 > 1e-24 * column_norm2
        y_valid = y[:, valid] if not valid.all() else y
        prep = _prepare(design.matrix, c, y_valid, method, exchangeability)
        # The unpermuted statistic comes from the data themselves (for ter Braak, D holds the
        # full model's residuals, whose contrast is zero).
        direct = prep if method == "freedman-lane" else _prepare(design.matrix, c, y_valid, "freedman-lane", None)
        with np.errstate(divide="ignore", invalid="ignore"):
            signed = direct.to_stat(_statistics(direct, relabellings.perms[:1], relabellings.signs[:1], 1)[0], 1)
        compare = prep.from_stat(signed, contrast_tails)
        with np.errstate(invalid="ignore"):
            threshold = np.where(np.isinf(compare), compare, compare - _TIE * np.maximum(1e-300, np.abs(compare)))

        def chunk(start: int):
            stop = min(start + chunk_size, relabellings.n)
            stats = _statistics(prep, relabellings.perms[start:stop], relabellings.signs[start:stop], contrast_tails)
            counts = (stats >= threshold).sum(axis=0)
            sizes = None
            if nbs is not None:
                full = np.full((stats.shape[0], n_edges), -np.inf)
                full[:, valid] = prep.to_stat(stats, contrast_tails) ** (2 if squared else 1)
                sizes = max_component(full, n_nodes, nbs)
            return stats.max(axis=1) if stats.shape[1] else np.full(stats.shape[0], -np.inf), counts, sizes

        with np.errstate(divide="ignore", invalid="ignore"):
            parts = map_items(chunk, starts, n_jobs=n_jobs)
        null_max = prep.to_stat(np.concatenate([part[0] for part in parts]), contrast_tails)
        statistic = np.zeros(n_edges)
        statistic[valid] = signed
        if squared:
            null_max, statistic = null_max**2, statistic**2
        observed = np.abs(statistic) if (kind == "t" and contrast_tails == 2) else statistic
        p_unc = np.ones(n_edges)
        # The identity is one of the relabellings: no p below 1 / n_perm, whatever rounding does.
        p_unc[valid] = np.maximum(np.sum([part[1] for part in parts], axis=0), 1) / relabellings.n
        p_fwe = np.ones(n_edges)
        # The maximum is at least each edge's own statistic in every relabelling, so p_FWE >= p_unc;
        # take the larger where rounding near an exact fit (t ~ 1e8) breaks the tie otherwise.
        p_fwe[valid] = np.maximum(fwe_from_max(observed[valid], null_max), p_unc[valid])
        nbs_found: tuple[NBSComponent, ...] = ()
        nbs_null = None
        if nbs is not None:
            nbs_null = np.concatenate([part[2] for part in parts])
            found = components(np.where(valid, observed, -np.inf), n_nodes, nbs)
            nbs_found = tuple(NBSComponent(nodes=nodes, edges=edges, size=size,
                                           p_fwe=float(fwe_from_max(np.array([size]), nbs_null)[0]))
                              for nodes, edges, size in found)
        results.append(ContrastResult(
            name=name, kind=kind, statistic=statistic, p_unc=p_unc, p_fwe=p_fwe, q_fdr=fdr_bh(p_unc),
            null_max=null_max, df=(prep.q, prep.df), tails=1 if kind == "F" else contrast_tails, nbs=nbs_found,
            nbs_null_max=nbs_null))
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
