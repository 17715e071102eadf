"""Writing small hand-made BIDS datasets for tests (odd cases included)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np


def write_participants(root: Path, rows: list[dict], columns: list[str] | None = None) -> None:
    columns = columns or list(rows[0])
    lines = ["\t".join(columns)] + ["\t".join(str(r.get(c, "n/a")) for c in columns) for r in rows]
    root.mkdir(parents=True, exist_ok=True)
    (root / "participants.tsv").write_text("\n".join(lines) + "\n")


def write_sessions(root: Path, subject: str, rows: list[dict]) -> None:
    columns = list(rows[0])
    lines = ["\t".join(columns)] + ["\t".join(str(r.get(c, "n/a")) for c in columns) for r in rows]
    (root / subject).mkdir(parents=True, exist_ok=True)
    (root / subject / f"{subject}_sessions.tsv").write_text("\n".join(lines) + "\n")


def write_bold(root: Path, subject: str, session: str | None = None, *, run: int | None = 1, task: str = "rest",
               shape=(4, 5, 3, 40), tr_header: float | None = 2.0, tr_json: float | None = 2.0,
               affine=None, extension: str = ".nii.gz", extra: dict | None = None, seed: int = 0) -> Path:
    folder = root / subject / (session or "") / "func"
    folder.mkdir(parents=True, exist_ok=True)
    parts = [subject] + ([session] if session else []) + [f"task-{task}"] + ([f"run-{run}"] if run else [])
    parts += [f"{k}-{v}" for k, v in (extra or {}).items()]
    stem = "_".join(parts) + "_bold"
    data = np.random.default_rng(seed).normal(100, 1, shape).astype(np.float32)
    img = nib.Nifti1Image(data, np.eye(4) * [2, 2, 2, 1] if affine is None else affine)
    if len(shape) == 4:
        img.header.set_xyzt_units("mm", "sec")
        img.header.set_zooms((2.0, 2.0, 2.0, tr_header or 0.0))
    path = folder / (stem + extension)
    nib.save(img, str(path))
    if tr_json is not None:
        (folder / (stem + ".json")).write_text(json.dumps({"RepetitionTime": tr_json}))
    return path


def simple_dataset(root: Path, n: int = 3, sessions: tuple[str, ...] = ("ses-1",)) -> Path:
    """n subjects (alternating groups A/B), one run per listed session, with sessions.tsv."""
    rows = [{"participant_id": f"sub-{i:02d}", "group": "AB"[i % 2], "age": 30 + i, "sex": "FM"[i % 2]}
            for i in range(1, n + 1)]
    write_participants(root, rows)
    for row in rows:
        subject = row["participant_id"]
        write_sessions(root, subject, [{"session_id": s, "score": 10 + k} for k, s in enumerate(sessions)])
        for s in sessions:
            write_bold(root, subject, s)
    return root
