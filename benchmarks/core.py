r"""Shared pieces of the benchmark suite: the workload, timing, the machine's measured roofline.

Workload (the standard PC training schedule, ``performance_notes.md``): a layered tanh PCN
(default 64-256-256-10, no biases, linear input), input and target clamped, hidden values from the
feedforward pass, ``T`` Euler steps of size 0.1, then one SGD step of the weights (lr 1e-3).  One
*batch* is one call of the public per-batch call ``Simulator.step``: relaxation and weight update.

FLOPs of one batch (matrix products only; elementwise work is not counted, so the roofline is
optimistic):

.. math::

    2B\Big[(T+1)\sum_l n_{l-1} n_l + T \sum_{l \ge 2} n_{l-1} n_l + \sum_l n_{l-1} n_l\Big]

(predictions at the start and after every step, feedback into every moving layer at every step, the
weight gradient once).  The *roofline* time is these FLOPs divided by the machine's matrix-product
rate measured with NumPy in the same process: GEMV (``W @ v``, ``n x n``) for batch 1 and GEMM
(``(B, n) @ (n, n)``) otherwise, ``n`` the hidden width.  "Fraction of roofline" is roofline time /
measured time.  The numba kernel skips predictions whose inputs are all clamped, so it does fewer
FLOPs than the formula counts and its fraction can exceed 1; the formula is what any straightforward
implementation (and the peers) must compute.
"""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

import neurosim as ns

DT = 0.1
LR = 1e-3


def net_sizes(width=256, hidden=2, n_in=64, n_out=10):
    return [n_in] + [width] * hidden + [n_out]


def make_net(sizes):
    return ns.hierarchy(list(sizes), phi="tanh", bias=False, lr=LR, optimizer=ns.SGD(), name="bench")


def make_data(B, sizes, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, sizes[0])), rng.normal(size=(B, sizes[-1]))


def flops(sizes, B, T):
    """Matrix-product FLOPs of one training batch (see the module docstring)."""
    mats = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    return 2.0 * B * ((T + 1) * sum(mats) + T * sum(mats[1:]) + sum(mats))


def simulator(sizes, backend, dtype="float64", seed=0, probes=(), blas_threads=None):
    opts = {"blas_threads": blas_threads} if blas_threads is not None else None   # int or "auto"
    return ns.Simulator(make_net(sizes), dt=DT, backend=backend, seed=seed, dtype=dtype, probes=probes,
                        backend_options=opts)


def train_batch(sim, X, Y, T):
    """One training batch through the public per-batch call: clamp, ``T`` Euler steps of ``DT`` from the
    feedforward pass, one SGD step; returns its :class:`~neurosim.backends.base.BatchResult`."""
    return sim.step(X, Y, steps=int(T), dt=DT)


def batch_fn(sim, X, Y, T):
    X = np.ascontiguousarray(X, dtype=sim.dtype)
    Y = np.ascontiguousarray(Y, dtype=sim.dtype)

    def run():
        train_batch(sim, X, Y, T)
    return run


def interleaved(fns: dict, repeats: int, warmup: int = 1, repeats_of: dict | None = None, block: int = 3,
                pause: float = 0.0) -> dict:
    """Median wall time of each callable, measured round-robin so that every ratio between them is
    taken under the same machine conditions.

    Each round runs every callable ``block`` times in a row after one untimed call, so that each is
    timed with its own data in the caches, as in a training loop (timing alternate single calls would
    charge every call for the caches the other implementation evicted).  ``repeats`` rounds;
    ``repeats_of`` caps the number of rounds of slow entries.  ``pause`` seconds of sleep after each block let
    BLAS worker threads of the previous entry go idle (OpenBLAS's spin for a while after a multi-threaded
    product and would take a core from the next entry).
    """
    for f in fns.values():
        for _ in range(warmup):
            f()
    times = {k: [] for k in fns}
    for r in range(repeats):
        for k, f in fns.items():
            if repeats_of and r >= repeats_of.get(k, repeats):
                continue
            if block > 1:
                f()
            for _ in range(block):
                t0 = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t0)
            if pause > 0:
                time.sleep(pause)
    return {k: {"median_s": statistics.median(v), "min_s": min(v), "n": len(v)} for k, v in times.items()}


# ----------------------------------------------------------------------------- the roofline
def matmul_rate(B, n, dtype="float64", min_time=0.2, threads=None) -> float:
    """FLOP/s of NumPy's matrix product for the workload's shape: GEMV ``(n, n) @ (n,)`` when B == 1,
    GEMM ``(B, n) @ (n, n)`` otherwise (the best of several timed blocks of ~20 ms, output preallocated: a roofline
    is the rate the machine reaches, and on a shared machine the median of the blocks followed other users' load --
    one run's two-thread float32 rate read 129 GFLOP/s where others read 180, and the kernel then ran at "137%" of
    it); ``threads``: with NumPy's BLAS limited to that many threads (default: BLAS's own setting)."""
    if threads is not None:
        from threadpoolctl import threadpool_limits
        with threadpool_limits(limits=int(threads), user_api="blas"):
            return matmul_rate(B, n, dtype, min_time)
    rng = np.random.default_rng(1)
    W = rng.normal(size=(n, n)).astype(dtype)
    if B == 1:
        a = rng.normal(size=n).astype(dtype)
        out = np.empty(n, dtype)

        def f():
            np.matmul(W, a, out=out)
    else:
        A = rng.normal(size=(B, n)).astype(dtype)
        out = np.empty((B, n), dtype)

        def f():
            np.matmul(A, W.T, out=out)
    fl = 2.0 * B * n * n
    f()
    reps = 1
    while True:  # calibrate a block of ~20 ms
        t0 = time.perf_counter()
        for _ in range(reps):
            f()
        el = time.perf_counter() - t0
        if el > 0.02:
            break
        reps *= 2
    rates = []
    t_end = time.perf_counter() + min_time
    while time.perf_counter() < t_end or len(rates) < 5:
        t0 = time.perf_counter()
        for _ in range(reps):
            f()
        rates.append(fl * reps / (time.perf_counter() - t0))
    return max(rates)


def load_rate(dtype="float64", n=1024, min_time=0.2) -> float:
    """Elements per second of a dot product of two L1-resident vectors compiled with numba (two loads
    per element): the machine's load rate, which bounds the batch-1 kernel (see :func:`load_bound_s`)."""
    from numba import njit

    from neurosim.config import JIT_OPTIONS

    @njit(**{k: v for k, v in JIT_OPTIONS.items() if k != "cache"})
    def dot(a, b, reps):
        s = a.dtype.type(0)
        for _ in range(reps):
            for q in range(a.shape[0]):
                s += a[q] * b[q]
        return s
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=n).astype(dtype), rng.normal(size=n).astype(dtype)
    dot(a, b, 1)
    reps = 1000
    rates = []
    t_end = time.perf_counter() + min_time
    while time.perf_counter() < t_end or len(rates) < 5:
        t0 = time.perf_counter()
        dot(a, b, reps)
        rates.append(n * reps / (time.perf_counter() - t0))
    return max(rates)   # a bound: the best block (see matmul_rate)


def load_bound_s(sizes, T, rate):
    """Lower bound on a batch-1 run at the load rate ``rate`` (:func:`load_rate`): every step reads each
    weight of the projections whose prediction or feedback changes (all but the first, whose input is
    clamped) twice - once for the prediction and once, after the error is known, for the feedback - i.e.
    one dot-product element per weight element and step.  Elementwise work is not counted."""
    return T * sum(a * b for a, b in zip(sizes[1:-1], sizes[2:])) / rate


def settle(seconds=1.0):
    """Let BLAS worker threads of earlier products go idle before timing anything else."""
    time.sleep(seconds)


def roofline_s(sizes, B, T, rate):
    return flops(sizes, B, T) / rate


# ----------------------------------------------------------------------------- machine
def machine() -> dict:
    import numba
    info = {"python": platform.python_version(), "platform": platform.platform(), "numpy": np.__version__,
            "numba": numba.__version__, "cpu_count": os.cpu_count(), "neurosim": ns.__version__}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        flags = open("/proc/cpuinfo").read()
        info["avx512f"] = " avx512f " in flags
    except OSError:
        info["cpu"] = platform.processor() or platform.machine()
    try:
        info["loadavg_start"] = os.getloadavg()
    except OSError:
        pass
    try:
        from threadpoolctl import threadpool_info
        info["blas"] = [{k: d.get(k) for k in ("internal_api", "version", "num_threads", "architecture",
                                               "filepath")} for d in threadpool_info()]
    except ImportError:
        pass
    info["numba_threading_layer_env"] = os.environ.get("NUMBA_THREADING_LAYER")
    info["env_threads"] = {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    return info


def loadavg():
    try:
        return os.getloadavg()
    except OSError:
        return None


def run_python(code: str, env_extra: dict | None = None, python: str | None = None, timeout=900, cwd=None) -> str:
    """Run ``code`` in a fresh interpreter (same environment unless ``python`` says otherwise; in directory ``cwd``,
    which comes first on its ``sys.path``) and return its stdout; raise with stderr on failure."""
    env = dict(os.environ)
    env.update(env_extra or {})
    r = subprocess.run([python or sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=timeout, cwd=cwd)
    if r.returncode != 0:
        raise RuntimeError(f"subprocess failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return r.stdout
