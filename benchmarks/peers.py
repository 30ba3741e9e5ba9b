"""Peer libraries (pcx, ngc-learn) on the same workloads, run in their own environment.

The peers need JAX and their own dependency pins, so they live in a separate virtual environment
(``--peers-python``; default ``$NEUROSIM_PEERS_PYTHON``, else this interpreter when it has the ``peers``
extra installed, else ``/work/venv-peers/bin/python``; install with
``pip install -r benchmarks/peers/requirements.txt``).  For every workload this module writes the
initial weights, the batch and neurosim's own result (final energy and updated weights, from the
reference backend) to a file, runs ``benchmarks/peers/<lib>_bench.py`` in a subprocess, and accepts the
peer's timing only if it computed the same final energy and weight update; the numba time used for the
ratio is measured in the same invocation right before the peer runs.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from . import core

HERE = Path(__file__).parent / "peers"
PEERS = ("pcx", "ngclearn")
def _default_python():
    """$NEUROSIM_PEERS_PYTHON, else this interpreter if it has both peers installed (the ``peers`` extra),
    else the separate environment /work/venv-peers."""
    if os.environ.get("NEUROSIM_PEERS_PYTHON"):
        return os.environ["NEUROSIM_PEERS_PYTHON"]
    if all(importlib.util.find_spec(m) is not None for m in ("pcx", "ngclearn")):
        return sys.executable
    return "/work/venv-peers/bin/python"


DEFAULT_PYTHON = _default_python()


def _problem(path, sizes, B, T, dtype, repeats):
    X, Y = core.make_data(B, sizes)
    ref = core.simulator(sizes, "reference", "float64")
    W = ref.weights
    res = core.train_batch(ref, X, Y, T)
    Wn = ref.weights
    L = len(sizes) - 1
    arrays = {f"W{i}": W[f"W{i}"] for i in range(1, L + 1)}
    arrays.update({f"Wnext{i}": Wn[f"W{i}"] for i in range(1, L + 1)})
    np.savez(path, X=X, Y=Y, T=T, dt=core.DT, lr=core.LR, dtype=dtype, n_layers=L, repeats=repeats, **arrays)
    return float(res.energy[-1].sum())


#: the environment of a peer run on one thread: XLA's CPU client without its Eigen thread pool, one BLAS thread.
#: Not enough on its own: JAX 0.4.38's CPU runtime still ran pcx's batch-256 products on both cores with it (1.7-1.9
#: CPU seconds per wall second), so one-thread runs are also pinned to one core (:func:`_one_core`).
ONE_THREAD_ENV = {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
                  "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

#: a one-thread run whose CPU time per wall second exceeds this computed on more than one core: not timed
ONE_THREAD_MAX_CPU_PER_WALL = 1.15


def _one_core():
    """``preexec_fn`` of a one-thread peer: the child runs on one core of this process's affinity (whatever
    threads its runtime starts then share that core); ``None`` where affinity cannot be set."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    core_id = min(os.sched_getaffinity(0))
    return lambda: os.sched_setaffinity(0, {core_id})


def run_peer(lib, python, sizes, B, T, dtype, repeats, timeout=1800, one_thread=False) -> dict:
    with tempfile.TemporaryDirectory() as d:
        prob, out = Path(d) / "problem.npz", Path(d) / "result.json"
        energy = _problem(prob, sizes, B, T, dtype, repeats)
        script = HERE.parent / "numpy_loop.py" if lib == "numpy_loop" else HERE / f"{lib}_bench.py"
        try:
            env = dict(os.environ, **(ONE_THREAD_ENV if one_thread else {}))
            r = subprocess.run([python, str(script), str(prob), str(out)], capture_output=True,
                               text=True, timeout=timeout, env=env, preexec_fn=_one_core() if one_thread else None)
        except FileNotFoundError:
            return {"ok": False, "reason": f"peers environment not found ({python}); see benchmarks/README.md"}
        except subprocess.TimeoutExpired:
            return {"ok": False, "reason": f"timed out after {timeout} s"}
        if r.returncode != 0 or not out.exists():
            tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
            return {"ok": False, "reason": f"{lib} failed: {tail[0][:200]}"}
        res = json.loads(out.read_text())
    tol = 1e-9 if dtype == "float64" else 1e-4
    res["neurosim_energy_final"] = energy
    res["energy_rel_err"] = abs(res["energy_final"] - energy) / abs(energy)
    res["ok"] = res["energy_rel_err"] < tol and res["weights_max_abs_err"] < tol * 10
    if not res["ok"]:
        res["reason"] = (f"computes a different result: energy rel. err {res['energy_rel_err']:.2e}, weights "
                         f"max err {res['weights_max_abs_err']:.2e}")
    elif one_thread and res.get("cpu_per_wall", 0.0) > ONE_THREAD_MAX_CPU_PER_WALL:
        res["ok"] = False
        res["reason"] = (f"not on one thread: {res['cpu_per_wall']:.2f} CPU seconds per wall second (more than "
                         f"{ONE_THREAD_MAX_CPU_PER_WALL}); not compared with numba on one thread")
    return res


def _time_each(fns, repeats):
    """numba's entries timed one after the other, each alone (``3 * repeats`` batches after an untimed one, as
    each peer): numba with its default threads round-robin with numba on one BLAS thread ran 3-7% slower (batch
    256, T = 20, float32), the pool changing its thread count between blocks."""
    out = {}
    for k, f in fns.items():
        out.update(core.interleaved({k: f}, repeats, block=3))
    return out


def run(workloads, python=DEFAULT_PYTHON, repeats=5, dtypes=("float64",), sizes=None, log=print, one_thread=False,
        peers=PEERS) -> dict:
    """For each workload (name, B, T) and dtype: numba's median time and each peer's result, a plain NumPy loop
    (:mod:`benchmarks.numpy_loop`) among them.

    Every peer, the NumPy loop included, runs in a process of its own (the loop with this interpreter, the others
    with ``python``), ``3 * repeats`` batches in a row after an untimed one, as many as numba's timings; numba is
    timed in this process right before and right after each.  (The loop used to be timed round-robin with numba in
    this process: NumPy's and SciPy's OpenBLAS thread pools then took cores from each other, see
    :func:`benchmarks.numpy_loop.main`.)

    ``one_thread``: every implementation on one thread (numba ``blas_threads=1``, the NumPy loop and the peers
    with :data:`ONE_THREAD_ENV` and pinned to one core, their CPU time per wall second checked); else each with its default threading (numba's default, NumPy's BLAS default,
    XLA's default)."""
    sizes = sizes or core.net_sizes()
    rows = []
    for dtype in dtypes:
        for name, B, T in workloads:
            X, Y = core.make_data(B, sizes)
            sim = core.simulator(sizes, "numba", dtype, blas_threads=1 if one_thread else None)
            fns = {"numba": core.batch_fn(sim, X, Y, T)}
            if B > 8 and not one_thread:
                fns["numba_1thread"] = core.batch_fn(core.simulator(sizes, "numba", dtype, blas_threads=1), X, Y, T)
            row = {"workload": name, "batch": B, "T": T, "dtype": dtype, "one_thread": one_thread, "peers": {},
                   "loadavg_start": core.loadavg()}
            around = []
            for lib in ("numpy_loop",) + tuple(peers):
                # numba is timed right before and right after the peer: the ratio uses both
                before = _time_each(fns, repeats)
                res = run_peer(lib, sys.executable if lib == "numpy_loop" else python, sizes, B, T, dtype,
                               3 * repeats, one_thread=one_thread)
                after = _time_each(fns, repeats)
                around += [before, after]
                t_nb = 0.5 * (before["numba"]["median_s"] + after["numba"]["median_s"])
                row[f"numba_s_around_{lib}"] = [before["numba"]["median_s"], after["numba"]["median_s"]]
                if "numba_1thread" in fns:
                    t1 = 0.5 * (before["numba_1thread"]["median_s"] + after["numba_1thread"]["median_s"])
                    row[f"numba_1thread_s_around_{lib}"] = t1
                    if res.get("ok"):
                        res["ratio_peer_over_numba_1thread"] = res["median_s"] / t1
                if lib == "numpy_loop":
                    if not res.get("ok"):
                        raise RuntimeError(f"the NumPy loop computes a different result: {res.get('reason')}")
                    row["numpy_loop_s"] = res["median_s"]
                    row["numpy_loop_min_s"] = res["min_s"]
                    row["numpy_loop_cpu_per_wall"] = res["cpu_per_wall"]
                    row["ratio_numpy_loop_over_numba"] = res["median_s"] / t_nb
                    continue
                if res.get("ok"):
                    res["ratio_peer_over_numba"] = res["median_s"] / t_nb
                    log(f"  {lib:9s} {name:8s} B={B:<4d} T={T:<4d} {dtype}{' 1 thread' if one_thread else ''}: "
                        f"{res['median_s'] * 1e3:8.2f} ms (numba {t_nb * 1e3:.2f} ms, x{res['median_s'] / t_nb:.2f}; "
                        f"compile {res['compile_s']:.1f} s; energy rel. err {res['energy_rel_err']:.1e})")
                else:
                    log(f"  {lib:9s} {name:8s} B={B:<4d} T={T:<4d} {dtype}: not timed: {res['reason']}")
                row["peers"][lib] = res
            row["numba_s"] = float(np.mean([a["numba"]["median_s"] for a in around]))
            row["numba_min_s"] = float(min(a["numba"]["min_s"] for a in around))
            row["loadavg_end"] = core.loadavg()
            log(f"  numpy loop {name:8s} B={B:<4d} T={T:<4d} {dtype}{' 1 thread' if one_thread else ''}: "
                f"{row['numpy_loop_s'] * 1e3:8.2f} ms (numba {row['numba_s'] * 1e3:.2f} ms, "
                f"x{row['ratio_numpy_loop_over_numba']:.2f})")
            rows.append(row)
    return {"python": python, "one_thread": one_thread, "rows": rows}
