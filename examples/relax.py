"""Build a small predictive-coding circuit and watch it relax.

A 4-8-3 tanh network; the output is clamped to a target the network does not predict yet, so errors
appear at the output and spread down through the feedback weights until the energy settles.

    python examples/relax.py [--out DIR]
"""
import argparse
from pathlib import Path

import numpy as np

import neurosim as ns

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", type=Path, default=Path("results/examples"))
args = parser.parse_args()

net = ns.hierarchy([4, 8, 3], phi="tanh")
probes = [ns.Probe("h1", "x"), ns.Probe("h1", "eps"), ns.Probe("output", "x"), ns.Probe("output", "eps")]
sim = ns.Simulator(net, dt=0.1, backend="numba", seed=0, probes=probes)

rng = np.random.default_rng(0)
x_in, target = rng.normal(size=(1, 4)), np.array([[1.0, -1.0, 0.5]])
res = sim.run(x_in, target, steps=200, mode="clamp", tol=1e-8)
print(f"relaxed in {res.steps} steps: energy {res.total_energy[0]:.4f} -> {res.total_energy[-1]:.4f}")
ns.plot.energy(res.energy[:, 1:], dt=res.dt, labels=res.populations[1:], path=args.out / "relax_energy.png")
ns.plot.dynamics({"h1": sim.data["h1.x"], "output": sim.data["output.x"]},
                 {"h1": sim.data["h1.eps"], "output": sim.data["output.eps"]},
                 dt=res.dt, path=args.out / "relax_dynamics.png")
print(f"figures in {args.out}/")
