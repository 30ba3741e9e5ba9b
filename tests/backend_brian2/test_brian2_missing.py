"""Without brian2 the rest of neurosim works, and asking for the brian2 backend says how to install it.

Runs whether or not brian2 is installed: its absence is simulated with ``sys.modules["brian2"] = None``.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

import neurosim as ns


def test_missing_brian2_gives_install_command(monkeypatch):
    for name in [m for m in sys.modules if m == "brian2" or m.startswith("brian2.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "brian2", None)   # import brian2 -> ImportError
    net = ns.hierarchy([3, 4, 2], phi="tanh")
    with pytest.raises(ns.UnsupportedError, match=r'pip install "neurosim\[brian2\]"'):
        ns.Simulator(net, backend="brian2")
    # every other backend still works in the same process
    for backend in ("reference", "numba"):
        sim = ns.Simulator(net, backend=backend, seed=0)
        res = sim.run(np.ones((2, 3)), np.zeros((2, 2)), steps=5, mode="clamp")
        assert res.total_energy[-1] <= res.total_energy[0]
