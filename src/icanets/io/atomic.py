"""Writing an output folder so that it appears complete or not at all."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from icanets.errors import IcanetsError

__all__ = ["atomic_folder"]


@contextmanager
def atomic_folder(out: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder; rename it to ``out`` when the block succeeds.

    If the block raises (or is interrupted), the temporary folder is removed and ``out``
    is left as it was, so a half-written output never looks complete.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise IcanetsError(f"output folder {out} already exists; choose another or pass overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)
