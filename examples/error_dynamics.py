"""Value and error neurons with their own time constants.

Error units that integrate (tau_eps > 0) lag behind the values and overshoot; instantaneous error units
(tau_eps = 0) follow them exactly.  Both settle to the same equilibrium.

    python examples/error_dynamics.py [--out DIR]
"""
import argparse
from pathlib import Path

import numpy as np

import neurosim as ns

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", type=Path, default=Path("results/examples"))
args = parser.parse_args()

rng = np.random.default_rng(1)
x_in, target = rng.normal(size=(1, 3)), np.array([[0.5, -0.5]])
finals = {}
for tau_eps in (0.0, 0.5):
    net = ns.hierarchy([3, 5, 2], phi="tanh", tau_eps=tau_eps)
    probes = [ns.Probe(pop, var) for pop in ("h1", "output") for var in ("x", "eps")]
    sim = ns.Simulator(net, dt=0.05, backend="numba", seed=0, probes=probes)
    res = sim.run(x_in, target, steps=600, mode="clamp")
    finals[tau_eps] = res.x["h1"]
    ns.plot.dynamics({"h1": sim.data["h1.x"], "output": sim.data["output.x"]},
                     {"h1": sim.data["h1.eps"], "output": sim.data["output.eps"]},
                     dt=res.dt, path=args.out / f"error_dynamics_tau{tau_eps}.png",
                     title=f"tau_eps = {tau_eps}")
gap = float(np.max(np.abs(finals[0.0] - finals[0.5])))
print(f"max difference of the hidden equilibria (tau_eps 0 vs 0.5): {gap:.2e}")
print(f"figures in {args.out}/")
