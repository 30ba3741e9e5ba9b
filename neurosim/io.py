"""Atomic result writing: a crash never leaves a half-written metrics file behind."""
from __future__ import annotations

import json
import math
import os
import tempfile
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

    NumPy scalars/arrays are converted; non-finite floats become ``null``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(_jsonable(obj), f, indent=2, sort_keys=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
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


def write_atomic(path, write) -> Path:
    """Write a binary file atomically: ``write(f)`` fills a temporary file in the same directory, which is
    flushed, synced and renamed over ``path``.  On any error or interrupt the temporary file is removed and
    ``path`` keeps its old content; temporary files left by killed writers are removed first.  The file gets
    the permissions of the user's umask (as ``open`` would give it).
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
        with os.fdopen(fd, "wb") as f:
            write(f)
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
    return path
