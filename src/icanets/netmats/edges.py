"""Edges: the upper triangle of node x node matrices, and the subjects x edges table."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from icanets.netmats.clean import NetmatsError

__all__ = ["matrix_to_edges", "edges_to_matrix", "n_nodes_from_edges", "edge_index", "EdgeTable"]


def n_nodes_from_edges(n_edges: int) -> int:
    """N such that ``N (N - 1) / 2 == n_edges``."""
    n = int(round((1 + np.sqrt(1 + 8 * n_edges)) / 2))
    if n * (n - 1) // 2 != n_edges:
        raise NetmatsError(f"{n_edges} is not the number of edges of any node count (N (N - 1) / 2)")
    return n


def matrix_to_edges(matrices: np.ndarray) -> np.ndarray:
    """Upper triangle (above the diagonal), row-major: ``(..., N, N) -> (..., N (N - 1) / 2)``.

    Examples
    --------
    >>> m = np.arange(9.0).reshape(3, 3)
    >>> matrix_to_edges(m)
    array([1., 2., 5.])
    """
    matrices = np.asarray(matrices)
    if matrices.ndim < 2 or matrices.shape[-1] != matrices.shape[-2]:
        raise NetmatsError(f"expected square matrices (..., N, N), got shape {matrices.shape}")
    i, j = np.triu_indices(matrices.shape[-1], 1)
    return matrices[..., i, j]


def edges_to_matrix(edges: np.ndarray, *, diagonal: float = 0.0) -> np.ndarray:
    """Symmetric matrices from edge vectors: ``(..., E) -> (..., N, N)``, the inverse of :func:`matrix_to_edges`."""
    edges = np.asarray(edges)
    n = n_nodes_from_edges(edges.shape[-1])
    out = np.full(edges.shape[:-1] + (n, n), diagonal, dtype=np.result_type(edges.dtype, np.float64))
    i, j = np.triu_indices(n, 1)
    out[..., i, j] = edges
    out[..., j, i] = edges
    return out


def edge_index(n_nodes: int, names: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per edge: ``edge`` (0-based), ``node_i``, ``node_j`` (0-based, i < j), and names."""
    i, j = np.triu_indices(n_nodes, 1)
    names = list(names) if names is not None else [f"node{k}" for k in range(n_nodes)]
    if len(names) != n_nodes:
        raise NetmatsError(f"{len(names)} node names for {n_nodes} nodes")
    return pd.DataFrame({"edge": np.arange(i.size), "node_i": i, "node_j": j,
                         "name_i": [names[k] for k in i], "name_j": [names[k] for k in j]})


@dataclass(frozen=True)
class EdgeTable:
    """Subjects (or subject-sessions) x edges.

    Attributes
    ----------
    values : ndarray, shape (n_rows, n_edges)
    rows : DataFrame
        One row per row of ``values``: ``participant_id``, ``session_id`` (may be empty)
        and ``n_runs`` averaged.
    edges : DataFrame
        :func:`edge_index`: ``edge``, ``node_i``, ``node_j``, ``name_i``, ``name_j``.
    metadata : dict
        Settings that produced the values (method, rho, r-to-z, ...).
    """

    values: np.ndarray
    rows: pd.DataFrame
    edges: pd.DataFrame
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.values.shape != (len(self.rows), len(self.edges)):
            raise NetmatsError(f"edge table values have shape {self.values.shape}, but there are "
                               f"{len(self.rows)} rows and {len(self.edges)} edges")

    @property
    def n_nodes(self) -> int:
        return n_nodes_from_edges(len(self.edges))

    def matrices(self) -> np.ndarray:
        """``(n_rows, N, N)`` symmetric matrices with a zero diagonal."""
        return edges_to_matrix(self.values)

    def save(self, folder: Path, stem: str = "edges") -> list[Path]:
        """Write ``<stem>.npy``, ``<stem>_rows.tsv``, ``<stem>_edges.tsv`` and ``<stem>.json``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / f"{stem}.npy", folder / f"{stem}_rows.tsv", folder / f"{stem}_edges.tsv", folder / f"{stem}.json"]
        np.save(paths[0], self.values)
        self.rows.to_csv(paths[1], sep="\t", index=False, na_rep="n/a")
        self.edges.to_csv(paths[2], sep="\t", index=False)
        paths[3].write_text(json.dumps(self.metadata, indent=2, default=str) + "\n")
        return paths

    @classmethod
    def load(cls, folder: Path, stem: str = "edges") -> EdgeTable:
        """Read what :meth:`save` wrote."""
        folder = Path(folder)
        try:
            values = np.load(folder / f"{stem}.npy", allow_pickle=False)
            rows = pd.read_csv(folder / f"{stem}_rows.tsv", sep="\t", dtype={"participant_id": str, "session_id": str},
                               keep_default_na=False, na_values=["n/a"])
            edges = pd.read_csv(folder / f"{stem}_edges.tsv", sep="\t", dtype={"name_i": str, "name_j": str})
            meta_path = folder / f"{stem}.json"
            metadata = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        except (OSError, ValueError) as exc:
            raise NetmatsError(f"cannot read edge table {folder / stem}: {exc}") from None
        return cls(values=values, rows=rows, edges=edges, metadata=metadata)
