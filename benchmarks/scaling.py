"""How the numba core's time grows with width, depth, T and batch (one parameter at a time).

Base point: batch 32, width 256, 2 hidden layers, T = 20 (float64).  Each point is the median of a few
training batches; the growth exponent is the slope of log(time) against log(parameter) over the
sweep (1 = linear).  The roofline fraction uses the GEMM (GEMV at batch 1) rate at the point's batch
and width.
"""
from __future__ import annotations

import numpy as np

from . import core

BASE = {"batch": 32, "width": 256, "depth": 2, "T": 20}
SWEEPS = {
    "width": [64, 128, 256, 512, 1024, 2048],
    "depth": [2, 4, 8, 16, 32, 64],
    "T": [10, 20, 50, 100, 200, 500],
    "batch": [1, 4, 16, 64, 256, 1024],
}
QUICK = {k: v[::2] + ([v[-1]] if len(v) % 2 == 0 else []) for k, v in SWEEPS.items()}


def point(batch, width, depth, T, repeats, rates, dtype="float64"):
    sizes = core.net_sizes(width=width, hidden=depth)
    X, Y = core.make_data(batch, sizes)
    sim = core.simulator(sizes, "numba", dtype)
    t = core.interleaved({"numba": core.batch_fn(sim, X, Y, T)}, repeats, block=1)["numba"]["median_s"]
    roof = core.roofline_s(sizes, batch, T, rates[(batch, width)])
    return {"batch": batch, "width": width, "depth": depth, "T": T, "numba_s": t,
            "us_per_sample_step": t / (batch * T) * 1e6, "gflops": core.flops(sizes, batch, T) / t / 1e9,
            "fraction_of_roofline": roof / t}


def run(repeats=3, quick=False, log=print) -> dict:
    sweeps = QUICK if quick else SWEEPS
    # the roofline rates first (see workloads.run: NumPy's BLAS threads must be idle while timing)
    keys = {(BASE["batch"], BASE["width"])}
    keys |= {(v, BASE["width"]) for v in sweeps["batch"]} | {(BASE["batch"], v) for v in sweeps["width"]}
    rates = {k: core.matmul_rate(k[0], k[1], min_time=0.1) for k in sorted(keys)}
    core.settle()
    out = {"base": BASE, "sweeps": {}}
    for param, values in sweeps.items():
        pts = []
        for v in values:
            cfg = dict(BASE)
            cfg[param] = v
            p = point(cfg["batch"], cfg["width"], cfg["depth"], cfg["T"], repeats, rates)
            pts.append(p)
            log(f"  {param}={v:<5d} {p['numba_s'] * 1e3:9.2f} ms  {p['gflops']:6.1f} GFLOP/s  "
                f"roofline {p['fraction_of_roofline']:4.0%}")
        xs = np.log([p[param] for p in pts])
        ys = np.log([p["numba_s"] for p in pts])
        slope = float(np.polyfit(xs, ys, 1)[0])
        # the upper half of the sweep shows the asymptotic growth (small sizes are overhead-bound)
        h = len(pts) // 2
        slope_hi = float(np.polyfit(xs[h - 1:], ys[h - 1:], 1)[0]) if len(pts) >= 3 else slope
        out["sweeps"][param] = {"points": pts, "growth_exponent": slope, "growth_exponent_upper_half": slope_hi}
        log(f"  -> time ~ {param}^{slope:.2f} (upper half: ^{slope_hi:.2f})")
    return out
