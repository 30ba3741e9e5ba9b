"""Compile the numba kernels a new user's first runs need into numba's on-disk cache, ahead of those runs.

``pip install`` runs this (``setup.py``'s ``build_py``, for editable installs and wheels alike), so that the first
``Simulator.learn`` of a fresh install loads its kernel from the cache (about 0.3 s) instead of compiling it (about
10 s per kernel and dtype on 2 cores).  ``neurosim compile`` runs it by hand: after setting ``NUMBA_CACHE_DIR``, on
an install made with ``NEUROSIM_PRECOMPILE=0``, or where the install could not write its package directory.

What is compiled (:data:`GROUPS`), in two processes at once (each group writes its own cache files; numba's cache
index of one function is not safe for two writers):

* ``core``: the batch kernel of the layered circuits (:func:`neurosim.backends.numba._relax.kernel`) for circuits
  without sparse projections, both variants (the fused Euler path of ``learn``, ``step``, ``predict`` and every
  experiment's training batches; the general path of Heun steps and tolerances), float64 and float32;
* ``graph``: the graph kernels the ``fpa`` and ``ipc`` schedules run on a layered circuit (its vertex form), float64
  and float32.

Kernels of rarer circuits (sparse projections, convolutions, pooling, products, read noise) compile on their first
use as before.  The kernels are compiled by running tiny circuits through the public API, so they are exactly the
ones the runs use (same specialisation, same signature); nothing here chooses a signature by hand.

Where the files go is numba's choice, as for any cached kernel: ``NUMBA_CACHE_DIR`` when it is set, otherwise
``__pycache__`` next to the modules (the source tree of an editable install, the installed package of a wheel --
numba checks the source files' contents, not their times, so a wheel's cache stays valid after installing), and
the user's cache directory where that is not writable.  A cache made by another numba version, or on a CPU with
other features, is not used (numba compiles again, as without this step).
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

#: environment variable that turns the install-time compilation off (``NEUROSIM_PRECOMPILE=0 pip install ...``)
ENV_OFF = "NEUROSIM_PRECOMPILE"


def _compile_group(group: str) -> None:
    """Run the tiny circuits that compile ``group``'s kernels (in this process)."""
    import logging

    import numpy as np

    from . import Simulator, hierarchy
    logging.getLogger("neurosim").setLevel(logging.ERROR)   # the compile notice: this is the compilation
    rng = np.random.default_rng(0)
    sizes = [3, 4, 2]
    if group == "core":
        for dtype in ("float64", "float32"):
            sim = Simulator(hierarchy(sizes, "tanh"), backend="numba", dtype=dtype, seed=0)
            X = rng.normal(size=(2, sizes[0])).astype(dtype)
            Y = rng.normal(size=(2, sizes[-1])).astype(dtype)
            sim.learn(X, Y, steps=2)                              # the fused Euler path
            sim.learn(X, Y, steps=2, integrator="heun")           # the general path
    elif group == "graph":
        for dtype in ("float64", "float32"):
            sim = Simulator(hierarchy(sizes, "tanh"), backend="numba", dtype=dtype, seed=0)
            X = rng.normal(size=(2, sizes[0])).astype(dtype)
            Y = rng.normal(size=(2, sizes[-1])).astype(dtype)
            for algorithm in ("fpa", "ipc"):
                sim.step(X, Y, algorithm=algorithm)
    else:
        raise ValueError(f"precompile: unknown group {group!r}; the groups are {sorted(GROUPS)}")


def run(groups=None, jobs: int = 2, timeout: float = 900.0, log=print) -> dict:
    """Compile ``groups`` (default: all of :data:`GROUPS`) into numba's cache, up to ``jobs`` groups at a time, each
    in a child process (a fresh interpreter: nothing compiled here before counts).  Returns ``{group: seconds}``
    for the groups that succeeded; a group that fails or times out is reported through ``log`` and left out (its
    kernels compile on first use, as without this step)."""
    groups = list(GROUPS) if groups is None else list(groups)
    for g in groups:
        if g not in GROUPS:
            raise ValueError(f"precompile: unknown group {g!r}; the groups are {sorted(GROUPS)}")
    env = dict(os.environ, NEUROSIM_COMPILE_NOTICE="0")
    # the children import the neurosim this module belongs to (a source tree during an install)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    done, pending, running = {}, list(groups), []
    while pending or running:
        while pending and len(running) < max(1, int(jobs)):
            g = pending.pop(0)
            p = subprocess.Popen([sys.executable, "-m", "neurosim.precompile", "--child", g], env=env, cwd=root,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            running.append((g, p, time.perf_counter()))
        time.sleep(0.05)
        for item in list(running):
            g, p, t0 = item
            elapsed = time.perf_counter() - t0
            if p.poll() is None and elapsed < timeout:
                continue
            running.remove(item)
            if p.poll() is None:
                p.kill()
                p.communicate()
                log(f"neurosim: compiling {g} kernels timed out after {timeout:.0f} s; they compile on first use")
                continue
            out = p.communicate()[0]
            if p.returncode != 0:
                log(f"neurosim: compiling {g} kernels failed (they compile on first use):\n{out[-2000:]}")
                continue
            done[g] = elapsed
            log(f"neurosim: compiled {g} kernels ({GROUPS[g]}) in {elapsed:.1f} s")
    return done


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="neurosim compile",
        description="Compile the numba kernels of the common runs into numba's on-disk cache (pip install does this "
                    "unless NEUROSIM_PRECOMPILE=0), so that the first run loads them instead of compiling.")
    p.add_argument("--group", choices=sorted(GROUPS), action="append",
                   help="compile only this group (repeatable); default: all: "
                        + "; ".join(f"{k}: {v}" for k, v in GROUPS.items()))
    p.add_argument("--jobs", type=int, default=2, help="groups compiled at once, one process each (default 2)")
    p.add_argument("--child", choices=sorted(GROUPS), help=argparse.SUPPRESS)   # one group, in this process
    a = p.parse_args(argv)
    if a.child:
        _compile_group(a.child)
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
