"""A single permutation GLM on an edge table (``icanets glm``)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

from icanets.io.atomic import atomic_folder
from icanets.pipeline._common import provenance

if TYPE_CHECKING:
    from icanets.glm import Design, Exchangeability, GLMResult, NBSOptions
    from icanets.netmats import EdgeTable

__all__ = ["glm_stage", "row_keys"]


def glm_stage(table: EdgeTable, design: Design, out: Path, *, n_perm: int = 5000,
              exchangeability: Exchangeability | None = None, method: str = "freedman-lane", tails: int | None = None,
              seed: int = 0, nbs: NBSOptions | None = None, fwe_across_contrasts: bool = False,
              inputs: Sequence[Path] = (), overwrite: bool = False) -> GLMResult:
    """Run a permutation GLM on an edge table and write ``out``.

    ``design.rows`` must name the table's rows to use (``participant_id`` or
    ``participant_id session_id``), in the order of the design.

    Outputs
    -------
    ``results.tsv`` (one row per contrast and edge, with node names), ``null_max.npy``
    (contrasts x permutations), ``rows_used.tsv`` and ``glm.json`` (settings, N used,
    observations dropped, permutations, provenance).
    """
    from icanets.glm import DesignError, permutation_glm
    from icanets._defaults import DEFAULT_TAILS

    tails = DEFAULT_TAILS if tails is None else tails

    keys = row_keys(table.rows)
    index = {key: i for i, key in enumerate(keys)}
    missing = [r for r in design.rows if r not in index]
    if missing:
        raise DesignError(f"design rows not in the edge table: {', '.join(missing[:5])}"
                           + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
    take = [index[r] for r in design.rows]
    _refuse_repeated_subjects(table.rows.iloc[take], design, exchangeability)
    result = permutation_glm(table.values[take], design, n_perm=n_perm, exchangeability=exchangeability,
                             method=method, tails=tails, seed=seed, nbs=nbs, fwe_across_contrasts=fwe_across_contrasts)
    with atomic_folder(Path(out), overwrite=overwrite) as tmp:
        result.table(table.edges).to_csv(tmp / "results.tsv", sep="\t", index=False, float_format="%.8g")
        np.save(tmp / "null_max.npy", np.vstack([c.null_max for c in result.contrasts]))
        table.rows.iloc[take].to_csv(tmp / "rows_used.tsv", sep="\t", index=False)
        settings = {
            "n_perm_asked": n_perm, "n_perm": result.n_perm, "exhaustive": result.exhaustive,
            "n_distinct": str(result.n_distinct), "scheme": result.scheme, "method": method, "tails": tails,
            "n_used": result.n_used, "dropped": list(result.dropped), "design_columns": list(design.columns),
            "contrasts": {name: row.tolist() for name, row in zip(design.contrast_names, design.contrasts)},
            "ftests": {name: [design.contrast_names[i] for i in m] for name, m in zip(design.ftest_names, design.ftests)},
            "nbs": asdict(nbs) if nbs else None, "fwe_across_contrasts": fwe_across_contrasts,
            "edge_table": table.metadata,
        }
        (tmp / "glm.json").write_text(json.dumps(provenance("glm", settings, list(inputs), seed), indent=2) + "\n")
    return result


def _refuse_repeated_subjects(rows: pd.DataFrame, design: Design, exchangeability: Exchangeability | None) -> None:
    """Rows of one subject (its sessions or runs) are not exchangeable with other subjects' rows:
    free permutation would treat them as independent observations. Refused unless blocks say how
    they relate."""
    from icanets.glm import DesignError

    if design.blocks is not None or (exchangeability is not None and exchangeability.blocks is not None):
        return
    counts = rows["participant_id"].value_counts()
    repeated = counts[counts > 1]
    if repeated.empty:
        return
    subject = repeated.index[0]
    sessions = ", ".join(rows.loc[rows["participant_id"] == subject, "session_id"].fillna("").astype(str))
    raise DesignError(f"the GLM has {len(rows)} rows from {counts.size} subjects: {repeated.size} subject(s) appear "
                      f"more than once (e.g. {subject}: {sessions or 'several rows'}), and free permutation would "
                      f"treat their rows as independent (invalid p-values). Use one session (--session), a paired "
                      f"difference (--paired FIRST,SECOND), or exchangeability blocks that say how the rows relate "
                      f"(--blocks participant_id with --formula, or a design.grp)")


def row_keys(rows: pd.DataFrame) -> list[str]:
    """``participant_id`` or ``participant_id session_id`` per edge-table row."""
    sessions = rows["session_id"].fillna("").astype(str) if "session_id" in rows.columns else None
    if sessions is None or (sessions == "").all():
        return rows["participant_id"].astype(str).tolist()
    return [f"{p} {s}".strip() for p, s in zip(rows["participant_id"].astype(str), sessions)]
