"""Shared test configuration: makes the hand-written oracle (``pc_oracle.py``) importable from every test
directory (``tests/`` and ``tests/conformance/``)."""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def checkpoint_circuit(kind, optimizer=None, seed=0):
    """A small circuit of each kind a checkpoint must resume, with matching data ``(circuit, X, Y)``.

    ``"mlp"`` a layered tanh net with biases; ``"dag"`` two inputs, a direct input -> output projection,
    an identity skip, biases and dynamic error units (``tau_eps``); ``"mupc"`` a muPC residual net (relu,
    skips, width-scaled multipliers).  ``optimizer`` defaults to SGD with momentum (Adam for muPC).
    """
    import numpy as np

    import neurosim as ns
    from neurosim.mupc import residual_network

    if kind == "mlp":
        net = ns.hierarchy([6, 8, 3], phi="tanh", lr=0.02, optimizer=optimizer or ns.SGD(momentum=0.9))
    elif kind == "dag":
        plast = ns.Hebbian(lr=0.05, optimizer=optimizer or ns.SGD(momentum=0.9))
        pops = (ns.ValuePopulation("a", 4), ns.ValuePopulation("b", 2),
                ns.ValuePopulation("h", 3, phi="tanh"), ns.ValuePopulation("out", 3, tau_x=1.2))
        errs = (ns.ErrorPopulation("eps_h", "h", precision=1.5),
                ns.ErrorPopulation("eps_out", "out", tau_eps=0.3, precision=0.8))
        projs = (ns.Projection("Wah", "a", "h", bias=True, plasticity=plast),
                 ns.Projection("Wbh", "b", "h", plasticity=plast),
                 ns.Projection("Who", "h", "out", bias=True, plasticity=plast),
                 ns.Projection("Wao", "a", "out", multiplier=0.7, plasticity=plast),
                 ns.Projection("skip", "h", "out", skip=True, weights=False))
        clamps = (ns.Clamp("a", "input"), ns.Clamp("b", "input"), ns.Clamp("out", "target"))
        net = ns.Circuit(pops, errs, projs, clamps, name="dag")
    elif kind == "mupc":
        net = residual_network(6, 5, 3, 3, lr=0.02, optimizer=optimizer)
    else:
        raise ValueError(kind)
    rng = np.random.default_rng(seed)
    n_in = sum(p.size for p in net.populations if p.name in net.inputs)
    n_out = 3
    X = rng.normal(size=(24, n_in))
    Y = np.eye(n_out)[rng.integers(0, n_out, size=24)]
    return net, X, Y
