"""Cost of one spiking training batch of the digits circuit on brian2 (what brian2-digits-learn spends its time on).

``python -m benchmarks.brian2_spiking_learning [--repeats N]`` (standalone; not a suite of ``python -m benchmarks``).

The 64-32-10 circuit of ``neurosim run brian2-digits-learn`` (spiking mode, numpy target, its default rates),
one batch of 32 digits per call of ``sim.step``, presentations of 1, 10 and 20 rate steps (2, 20 and 40 ms of
simulated time), timed round-robin (one call of each presentation per round, after one warm-up call that builds
the network), CPU time of this process (``time.process_time``: less sensitive than wall time to other load on a
shared machine); prints the median per presentation, the load average before and after, and the fixed cost per
run (the intercept of a straight line through CPU time against simulated time).
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.brian2_spiking_learning")
    p.add_argument("--repeats", type=int, default=4)
    a = p.parse_args(argv)
    import neurosim as ns
    from neurosim.circuits import brian2_experiments as E
    cfg = dict(E.LEARN_DEFAULTS)
    Xtr, Ytr, _, _ = E._digits_inputs(cfg)
    net = ns.hierarchy([64, 32, 10], phi="tanh", lr=cfg["lr"], optimizer=ns.SGD())
    sim = ns.Simulator(net, backend="brian2", seed=0, dt=cfg["dt"], backend_options=E._spiking_options(cfg))
    load0 = os.getloadavg()
    sim.step(Xtr[:32], Ytr[:32], steps=20)   # builds the network
    presentations = (1, 10, 20)
    cpu = {s: [] for s in presentations}
    for _ in range(a.repeats):
        for s in presentations:
            c0 = time.process_time()
            sim.step(Xtr[32:64], Ytr[32:64], steps=s)
            cpu[s].append(time.process_time() - c0)
    med = {s: float(np.median(v)) for s, v in cpu.items()}
    ms = np.array([s * cfg["dt"] * cfg["time_unit"] for s in presentations])
    slope, icpt = np.polyfit(ms, [med[s] for s in presentations], 1)
    for s in presentations:
        print(f"{s:3d} rate steps ({s * cfg['dt'] * cfg['time_unit']:4.0f} ms): {med[s]:.3f} s CPU per batch of 32 "
              f"(median of {a.repeats})")
    print(f"fixed cost per run {icpt:.3f} s CPU, {1e3 * slope:.1f} ms CPU per simulated ms; load average "
          f"{load0[0]:.2f} before, {os.getloadavg()[0]:.2f} after")


if __name__ == "__main__":
    main()
