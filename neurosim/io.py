"""Atomic result writing: a crash never leaves a half-written metrics file behind.

Files are written to a temporary file in the destination directory and moved into place with
``os.replace``; they get the permissions an ordinary ``open(path, "w")`` would give (``0o666`` minus the
user's umask), not the ``0o600`` of :func:`tempfile.mkstemp`.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path

import numpy as np


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json_atomic(path, obj) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically (temp file in the same directory + ``os.replace``).

    NumPy scalars/arrays are converted; non-finite floats become ``null``.  The file gets the user's
    umask like any other output (figures, CSV).
    """
    path = Path(path)
    text = json.dumps(_jsonable(obj), indent=2, sort_keys=False) + "\n"
    with atomic_write(path) as f:
        f.write(text)
    return path


def read_json(path):
    with open(path) as f:
        return json.load(f)


_TMP_SUFFIX = ".tmp"


def _temporaries(path: Path):
    """Temporary files :func:`write_atomic` makes for ``path``: ``.<name>.<pid>.<token>.tmp`` beside it."""
    prefix = f".{path.name}."
    try:
        names = os.listdir(path.parent)
    except OSError:
        return
    for name in names:
        if name.startswith(prefix) and name.endswith(_TMP_SUFFIX):
            pid = name[len(prefix):-len(_TMP_SUFFIX)].split(".")[0]
            if pid.isdigit():
                yield path.parent / name, int(pid)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:       # e.g. another user's process
        return True
    return True


def remove_stale_temporaries(path) -> list:
    """Remove the temporary files of ``path`` left by writers that were killed (their process is gone);
    returns the removed paths.  A temporary file of a live process (a save in progress) is kept."""
    removed = []
    for tmp, pid in _temporaries(Path(path)):
        if not _alive(pid):
            try:
                tmp.unlink()
                removed.append(tmp)
            except FileNotFoundError:
                pass
    return removed


@contextlib.contextmanager
def atomic_write(path, mode: str = "w", **open_kwargs):
    """Open a temporary file next to ``path`` for writing (``.<name>.<pid>.<token>.tmp``); on success it is
    flushed, synced and renamed over ``path``; on any error or interrupt it is removed and ``path`` keeps its old
    content.  Temporary files left by killed writers are removed first.  The file gets the permissions of the
    user's umask (as ``open`` would give it), not the ``0o600`` of :func:`tempfile.mkstemp`.
    """
    import secrets
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    while True:
        tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{_TMP_SUFFIX}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        try:   # make the rename itself durable
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_atomic(path, write) -> Path:
    """Write a binary file atomically: ``write(f)`` fills the file opened by :func:`atomic_write`."""
    with atomic_write(path, "wb") as f:
        write(f)
    return Path(path)
