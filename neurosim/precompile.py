"""Compile the numba kernels a new user's first runs need into numba's on-disk cache, ahead of those runs.

``pip install`` runs this (``setup.py``'s ``build_py``, for editable installs and wheels alike), so that the first
``Simulator.learn`` of a fresh install loads its kernel from the cache (about 0.3 s) instead of compiling it (about
10 s per kernel and dtype on 2 cores).  ``neurosim compile`` runs it by hand: after setting ``NUMBA_CACHE_DIR``, on
an install made with ``NEUROSIM_PRECOMPILE=0``, or where the install could not write its package directory.

What is compiled (:data:`GROUPS`): first, in one child, the cached activation helpers every kernel calls; then the
groups, in two children at once (numba's cache index of one function is not safe for two writers, so the groups
share no cached function but those helpers, which are then only read):

* ``core``: the batch kernel of the layered circuits (:func:`neurosim.backends.numba._relax.kernel`) for circuits
  without sparse projections, both variants (the fused Euler path of ``learn``, ``step``, ``predict`` and every
  experiment's training batches; the general path of Heun steps and tolerances), float64 and float32;
* ``graph``: the graph kernels the ``fpa`` and ``ipc`` schedules run on a layered circuit (its vertex form), float64
  and float32.

Kernels of rarer circuits (sparse projections, convolutions, pooling, products, read noise) compile on their first
use as before.  The kernels are compiled by running tiny circuits through the public API, so they are exactly the
ones the runs use (same specialisation, same signature); nothing here chooses a signature by hand.

Where the files go is numba's choice, as for any cached kernel: ``NUMBA_CACHE_DIR`` when it is set, otherwise
``__pycache__`` next to the modules if it is writable (the source tree of an editable install, the build directory
of a wheel, whose files go into the wheel), else the user's cache directory.

What numba uses later, and what it does not (it then compiles on first use, as without this step):

* a cache made by another numba version (numba keeps one index per function and version).  ``pip install``
  compiles in its isolated build environment, with the numba pip chose for it -- the newest that fits, as a fresh
  environment's; an environment that keeps another numba uses none of it (``pip install --no-build-isolation``
  compiles with the environment's own numba; ``neurosim compile`` afterwards does too);
* a cache made on a CPU with other features;
* in an installed wheel, with numba older than 0.68 (it checks the modules' modification times, which a wheel does
  not keep: such a wheel is built without compiled kernels), or in a read-only site-packages (numba then looks in
  the user's cache directory).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

#: group -> what it compiles (a description; :func:`_compile_group` does it)
GROUPS = {
    "core": "the layered circuits' batch kernel (fused Euler and general paths), float64 and float32",
    "graph": "the graph kernels of the fpa and ipc schedules on a layered circuit, float64 and float32",
}

#: the first numba whose cache checks a module's contents rather than its modification time: older ones find the
#: cache files of an installed wheel stale (pip gives the files new times), so a wheel is built without them
CONTENT_STAMPS = (0, 68)


def _shared() -> None:
    """Compile the cached activation helpers that both groups' kernels call (float64 and float32), before the groups
    run at the same time: numba's index file of one function is not safe for two writers."""
    import numpy as np

    from .backends.numba import activations as a
    for v in (np.float64(0.5), np.float32(0.5)):
        a.tanh(v)
    a.tanh64(0.5), a.exp_le40(1.0)
    a.tanh32(np.float32(0.5)), a.exp_0to40_f32(np.float32(1.0))


def _compile_group(group: str) -> None:
    """Run the tiny circuits that compile ``group``'s kernels (in this process); prints how many it compiled."""
    import logging

    import numpy as np

    from . import Simulator, hierarchy
    from .config import kernels_compiled
    logging.getLogger("neurosim").setLevel(logging.ERROR)   # the compile notice: this is the compilation
    rng = np.random.default_rng(0)

    def tiny(dtype):
        sim = Simulator(hierarchy([3, 4, 2], "tanh"), backend="numba", dtype=dtype, seed=0)
        return sim, rng.normal(size=(2, 3)).astype(dtype), rng.normal(size=(2, 2)).astype(dtype)
    try:
        if group == "shared":
            _shared()
        elif group == "core":
            for dtype in ("float64", "float32"):
                sim, X, Y = tiny(dtype)
                sim.learn(X, Y, steps=2)                              # the fused Euler path
                sim.learn(X, Y, steps=2, integrator="heun")           # the general path
        elif group == "graph":
            for dtype in ("float64", "float32"):
                sim, X, Y = tiny(dtype)
                for algorithm in ("fpa", "ipc"):
                    sim.step(X, Y, algorithm=algorithm)
        else:
            raise ValueError(f"precompile: unknown group {group!r}; the groups are {sorted(GROUPS)}")
    finally:
        print(f"COMPILED {kernels_compiled()}", flush=True)


def _child_env(cwd: str) -> dict:
    """The environment of a child started in ``cwd``: it must import the neurosim this module belongs to.  A probe
    child says which neurosim the environment gives as it is (an install's site-packages, an editable install's
    finder, ``PYTHONPATH``); only if that is another one (or none: a source tree imported from the working
    directory) does the package's parent directory go first on ``PYTHONPATH`` -- never by default, since an
    install's site-packages first on the path would shadow the standard library.  A relative ``NUMBA_CACHE_DIR`` is
    made absolute, as the children run in another directory."""
    env = dict(os.environ, NEUROSIM_COMPILE_NOTICE="0")
    if env.get("NUMBA_CACHE_DIR"):
        env["NUMBA_CACHE_DIR"] = os.path.abspath(env["NUMBA_CACHE_DIR"])
    here = os.path.dirname(os.path.abspath(__file__))
    probe = "import importlib.util as u; s = u.find_spec('neurosim'); print(s.origin if s else '')"
    try:
        found = subprocess.run([sys.executable, "-c", probe], env=env, cwd=cwd, capture_output=True, text=True,
                               timeout=120).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        found = ""
    if not found or os.path.realpath(os.path.dirname(found)) != os.path.realpath(here):
        root = os.path.dirname(here)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run(groups=None, jobs: int = 2, timeout: float = 900.0, log=print) -> dict:
    """Compile ``groups`` (default: all of :data:`GROUPS`) into numba's cache, up to ``jobs`` groups at a time, each
    in a child process (a fresh interpreter: nothing compiled here before counts), after the activation helpers they
    share (one child first).  Returns ``{group: seconds}`` for the groups that succeeded; a group that fails or
    times out is reported through ``log`` and left out (its kernels compile on first use, as without this step)."""
    import tempfile
    groups = list(GROUPS) if groups is None else list(groups)
    for g in groups:
        if g not in GROUPS:
            raise ValueError(f"precompile: unknown group {g!r}; the groups are {sorted(GROUPS)}")
    cwd = tempfile.gettempdir()   # not a directory whose files would shadow modules ("python -m" puts it first)
    env = _child_env(cwd)
    done, counts = {}, {}
    where = env.get("NUMBA_CACHE_DIR") or "numba's cache next to the modules"

    def start(g):
        out = tempfile.TemporaryFile(mode="w+")   # a file, not a pipe: a chatty child never blocks on a full pipe
        p = subprocess.Popen([sys.executable, "-m", "neurosim.precompile", "--child", g], env=env, cwd=cwd,
                             stdout=out, stderr=subprocess.STDOUT, text=True)
        return g, p, out, time.perf_counter()

    def finish(g, p, out, t0) -> bool:
        try:
            p.wait(timeout=max(0.0, timeout - (time.perf_counter() - t0)))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            log(f"neurosim: compiling {g} kernels timed out after {timeout:.0f} s; they compile on first use")
            return False
        out.seek(0)
        text = out.read()
        out.close()
        if p.returncode != 0:
            log(f"neurosim: compiling {g} kernels failed (they compile on first use):\n{text[-2000:]}")
            return False
        done[g] = time.perf_counter() - t0
        counts[g] = next((int(ln.split()[1]) for ln in text.splitlines() if ln.startswith("COMPILED ")), -1)
        return True

    if not finish(*start("shared")):
        return done
    done.pop("shared", None)
    pending, running = list(groups), []
    while pending or running:
        while pending and len(running) < max(1, int(jobs)):
            running.append(start(pending.pop(0)))
        g, p, out, t0 = running.pop(0)   # the groups finish in about the same time: wait for the oldest
        if finish(g, p, out, t0):
            log(f"neurosim: compiled {g} kernels ({GROUPS[g]}) in {done[g]:.1f} s into {where}" if counts[g] != 0
                else f"neurosim: {g} kernels ({GROUPS[g]}) are in {where} already (loaded in {done[g]:.1f} s)")
    if done:
        _write_marker(sorted(done), env.get("NUMBA_CACHE_DIR", ""))
    return done


#: written next to this module after a compile: the numba and Python it was made with, so that the compile notice can
#: say why the kernels compile after all (another numba than the install's)
MARKER = "_precompiled.json"


def _marker_path() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), MARKER)


def _location(cache_dir) -> str:
    """Where numba caches this package's kernels: ``NUMBA_CACHE_DIR`` (absolute), or "" (next to the modules)."""
    return os.path.abspath(cache_dir) if cache_dir else ""


def _write_marker(groups, cache_dir) -> None:
    """Record, per cache location, the numba and Python the kernels were compiled with (merged with the other
    locations' records)."""
    import json
    import platform
    try:
        import numba
        try:
            with open(_marker_path()) as f:
                info = json.load(f)
            assert isinstance(info, dict)
        except Exception:   # noqa: BLE001 - none yet, or unreadable: start afresh
            info = {}
        info[_location(cache_dir)] = {"numba": numba.__version__, "python": platform.python_version(),
                                      "groups": groups}
        tmp = _marker_path() + f".{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(info, f, indent=1)
        os.replace(tmp, _marker_path())
    except Exception:   # noqa: BLE001 - a read-only install: the note is a courtesy
        pass


def mismatch() -> str:
    """Why the kernels compiled ahead do not serve this process ("" if they should, or if nothing was compiled ahead):
    compiled with another numba or Python version, or into another cache location than this process's."""
    import json
    import platform
    try:
        with open(_marker_path()) as f:
            info = json.load(f)
        import numba
        here = _location(os.environ.get("NUMBA_CACHE_DIR"))
        rec = info.get(here)
        if rec is None:
            where = [k or "next to the modules" for k in info]
            return (f"another cache location ({', '.join(where)}); this process's is "
                    f"{here or 'next to the modules'}") if where else ""
        why = []
        if rec.get("numba") != numba.__version__:
            why.append(f"numba {rec.get('numba')}, this process runs {numba.__version__}")
        if str(rec.get("python", "")).rsplit(".", 1)[0] != platform.python_version().rsplit(".", 1)[0]:
            why.append(f"Python {rec.get('python')}, this is {platform.python_version()}")
        return "; ".join(why)
    except Exception:   # noqa: BLE001 - no marker, or an unreadable one: nothing to say
        return ""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="neurosim compile",
        description="Compile the numba kernels of the common runs into numba's on-disk cache (pip install does this "
                    "unless NEUROSIM_PRECOMPILE=0), so that the first run loads them instead of compiling.")
    p.add_argument("--group", choices=sorted(GROUPS), action="append",
                   help="compile only this group (repeatable); default: all: "
                        + "; ".join(f"{k}: {v}" for k, v in GROUPS.items()))
    p.add_argument("--jobs", type=int, default=2, help="groups compiled at once, one process each (default 2)")
    p.add_argument("--child", choices=sorted(GROUPS) + ["shared"], help=argparse.SUPPRESS)   # one group, here
    p.add_argument("--wheel", action="store_true", help=argparse.SUPPRESS)   # setup.py, building a wheel
    a = p.parse_args(argv)
    if a.child:
        _compile_group(a.child)
        return 0
    if a.wheel:
        import numba
        v = tuple(int(x) for x in numba.__version__.split(".")[:2] if x.isdigit())
        if v < CONTENT_STAMPS:
            print(f"neurosim: numba {numba.__version__} checks its cache by the modules' modification times, which "
                  "an installed wheel does not keep: the wheel is built without compiled kernels (they compile on "
                  f"first use; numba >= {'.'.join(map(str, CONTENT_STAMPS))} checks contents)")
            return 0
    if a.jobs < 1:
        p.error("--jobs must be at least 1")
    from .config import CACHE
    if not CACHE:
        print("neurosim compile: caching is off (NEUROSIM_NUMBA_CACHE=0): nothing to do", file=sys.stderr)
        return 2
    wanted = list(dict.fromkeys(a.group or GROUPS))
    done = run(wanted, jobs=a.jobs)
    return 0 if len(done) == len(wanted) else 1


if __name__ == "__main__":
    sys.exit(main())
