"""Writing an output folder so that it appears complete or not at all."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from icanets.errors import IcanetsError

__all__ = ["atomic_folder", "folder_lock", "remove_stale_partials"]


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


@contextmanager
def folder_lock(folder: Path, *, what: str = "icanets run") -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` (a ``.icanets.lock`` file in it) for the block.

    A second process asking for it fails at once with an error naming the holder (its pid,
    host, start time and command). The lock is the operating system's (``flock``), so a killed
    holder leaves no stale lock behind.
    """
    import fcntl
    import json
    import socket
    import sys
    import time

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ".icanets.lock"
    handle = open(path, "a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        try:
            holder = json.loads(handle.read() or "{}")
        except ValueError:
            holder = {}
        handle.close()
        who = ", ".join(f"{k} {v}" for k, v in holder.items() if k in ("pid", "host", "since", "command")) or "unknown"
        raise IcanetsError(f"output folder {folder} is in use by another {what} ({who}); wait for it to finish or "
                           f"choose another output folder") from None
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "since": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)}))
    handle.flush()
    try:
        yield path
    finally:
        handle.seek(0)
        handle.truncate()
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()


def remove_stale_partials(folder: Path) -> list[Path]:
    """Remove the temporary folders (``.<name>.partial-<pid>``, ``.<name>.old-<pid>``) that an
    interrupted writer left in ``folder``; call it only while holding :func:`folder_lock`.
    Returns what was removed."""
    removed = []
    for path in sorted(Path(folder).glob(".*")):
        if path.is_dir() and (".partial-" in path.name or ".old-" in path.name):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed

