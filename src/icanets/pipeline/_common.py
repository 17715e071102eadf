"""Provenance shared by every stage: checksums, software versions, JSON encoding."""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from icanets._version import __version__

__all__ = ["file_checksum", "provenance", "json_default", "records"]


def file_checksum(path: Path) -> str:
    """``sha256:<hex>`` of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def provenance(stage: str, settings: dict, inputs: Sequence[Path], seed: int | None) -> dict:
    """The JSON sidecar content of a stage's output."""
    import nibabel
    import scipy
    import sklearn

    return {
        "stage": stage,
        "settings": settings,
        "seed": seed,
        "software": {"icanets": __version__, "python": platform.python_version(), "numpy": np.__version__,
                     "scipy": scipy.__version__, "pandas": pd.__version__, "nibabel": nibabel.__version__,
                     "scikit-learn": sklearn.__version__},
        "inputs": {str(p): file_checksum(p) for p in inputs},
    }


def records(frame: pd.DataFrame | None) -> list:
    if frame is None:
        return []
    return json.loads(frame.to_json(orient="records"))


def json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.bool_,)):
        return bool(value)
    return str(value)
