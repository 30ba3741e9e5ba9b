"""A plain NumPy loop running the benchmark workload: the baseline any implementation should beat.

The same schedule as :func:`benchmarks.core.train_batch` (64-256-256-10 tanh, linear input, no biases), written
as the straightforward NumPy program a user would write: ``mu_l = tanh(x_{l-1}) W_l^T`` (``x_0`` untouched by
phi), ``eps_l = x_l - mu_l``, hidden values from the feedforward pass, the output clamped to the target, ``T``
Euler steps of ``dx_l = -eps_l + (1 - tanh(x_l)^2) (eps_{l+1} W_{l+1})``, then one SGD step
``W_l += lr eps_l^T phi(x_{l-1}) / B``.  Arrays are preallocated and products write into them (``out=``), as a
careful NumPy user would do; BLAS threads are whatever the process has (the benchmark runs it in a
subprocess with ``OPENBLAS_NUM_THREADS=1``, pinned to one core, for the single-thread rows).
"""
from __future__ import annotations

import os

import numpy as np


class NumpyLoop:
    """One training batch per call on weights ``Ws`` (list of (n_out, n_in) arrays, updated in place)."""

    def __init__(self, Ws, X, Y, T, dt, lr, dtype="float64"):
        self.dtype = np.dtype(dtype)
        self.Ws = [np.array(W, dtype=self.dtype) for W in Ws]
        self.X = np.ascontiguousarray(X, dtype=self.dtype)
        self.Y = np.ascontiguousarray(Y, dtype=self.dtype)
        self.T, self.dt, self.lr = int(T), self.dtype.type(dt), self.dtype.type(lr)
        B = self.X.shape[0]
        L = len(self.Ws)
        sizes = [self.X.shape[1]] + [W.shape[0] for W in self.Ws]
        z = lambda n: np.zeros((B, n), dtype=self.dtype)   # noqa: E731
        self.x = [self.X] + [z(n) for n in sizes[1:]]
        self.p = [self.X] + [z(n) for n in sizes[1:]]          # phi(x_l); the input is linear
        self.mu = [None] + [z(n) for n in sizes[1:]]
        self.e = [None] + [z(n) for n in sizes[1:]]
        self.fb = [None] + [z(n) for n in sizes[1:]]
        self.tmp = [None] + [z(n) for n in sizes[1:]]
        self.G = [None] + [np.zeros_like(W) for W in self.Ws]
        self.L = L

    def __call__(self):
        """One batch; returns the final batch-mean energy."""
        x, p, mu, e, fb, tmp, Ws, L = self.x, self.p, self.mu, self.e, self.fb, self.tmp, self.Ws, self.L
        one = self.dtype.type(1)
        for l in range(1, L + 1):                 # feedforward pass
            np.matmul(p[l - 1], Ws[l - 1].T, out=mu[l])
            x[l][...] = mu[l]
            np.tanh(x[l], out=p[l])
        x[L][...] = self.Y                        # clamp the output
        for _ in range(self.T):
            for l in range(1, L + 1):
                np.subtract(x[l], mu[l], out=e[l])
            for l in range(1, L):                 # hidden layers move
                np.matmul(e[l + 1], Ws[l], out=fb[l])
                np.multiply(p[l], p[l], out=tmp[l])
                np.subtract(one, tmp[l], out=tmp[l])
                fb[l] *= tmp[l]
                fb[l] -= e[l]
                fb[l] *= self.dt
                x[l] += fb[l]
                np.tanh(x[l], out=p[l])
            for l in range(2, L + 1):             # predictions whose inputs moved
                np.matmul(p[l - 1], Ws[l - 1].T, out=mu[l])
        energy = 0.0
        for l in range(1, L + 1):
            np.subtract(x[l], mu[l], out=e[l])
            energy += 0.5 * float(np.vdot(e[l], e[l]))
        scale = self.lr / self.dtype.type(x[0].shape[0])
        for l in range(1, L + 1):
            np.matmul(e[l].T, p[l - 1], out=self.G[l])
            self.G[l] *= scale
            Ws[l - 1] += self.G[l]
        return energy / x[0].shape[0]


def main(argv=None):
    """``python benchmarks/numpy_loop.py problem.npz result.json``: the loop timed in a process of its own, like the
    peers (:mod:`benchmarks.peers` writes the problem and checks the result).  In the benchmark's own process NumPy's
    OpenBLAS (the loop's products) and SciPy's (numba's) each keep their worker threads spinning for a while after a
    product, so that timing the two round-robin charged each for the other's threads (batch 256, T = 20, float32:
    numba 12.2 ms alone, 23.8 ms interleaved with the loop)."""
    import json
    import sys
    import time
    argv = sys.argv[1:] if argv is None else argv
    prob = dict(np.load(argv[0]))
    dtype = str(prob["dtype"])
    L = int(prob["n_layers"])
    loop = NumpyLoop([prob[f"W{i}"] for i in range(1, L + 1)], prob["X"], prob["Y"], int(prob["T"]),
                     float(prob["dt"]), float(prob["lr"]), dtype)
    energy = loop()
    err = max(float(np.max(np.abs(W - prob[f"Wnext{i + 1}"]))) for i, W in enumerate(loop.Ws))
    loop()                                  # one more untimed batch, as every timed entry gets
    times = []
    cpu0 = time.process_time()
    for _ in range(int(prob["repeats"])):
        t0 = time.perf_counter()
        loop()
        times.append(time.perf_counter() - t0)
    cpu_per_wall = (time.process_time() - cpu0) / sum(times)
    json.dump({"library": "numpy_loop", "version": np.__version__, "compile_s": 0.0, "times": times,
               "cpu_per_wall": cpu_per_wall, "cores": _cores(), "median_s": float(np.median(times)), "min_s": float(min(times)),
               "energy_final": float(energy), "weights_max_abs_err": err}, open(argv[1], "w"))


def _cores():
    """The cores this process may run on (a one-thread run is pinned to one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


if __name__ == "__main__":
    main()
