"""Shared test configuration: makes the hand-written oracle (``pc_oracle.py``) importable from every test
directory (``tests/`` and ``tests/conformance/``)."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def _kernels_count_as_compiled(monkeypatch):
    """The CLI prints a notice before a run when the numba kernels are not in the disk cache yet; whether they are
    depends on which tests ran before with the same cache, so every test sees them as compiled (tests that count
    the lines on stderr would otherwise pass or fail by the order of the tests).  The notice itself is tested in
    tests/test_cli.py (test_a_cold_numba_cache_is_announced_before_the_run), which sets what it needs."""
    from neurosim import config
    monkeypatch.setattr(config, "kernels_cached", lambda: True)


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


# ----------------------------------------------------------------------------- scheduling under pytest-xdist
#: the test files that take longest, longest first (measured with --durations on a busy 2-core machine, 2026-12-06:
#: the composability matrix ~10 min, brian2's graph network ~12 min, the graph substrates ~7 min, brian2 checkpoints
#: ~6 min, ...).  ``--dist loadfile`` hands out whole files, by default in order of their number of tests, so files
#: with few but long tests (the matrix has 4) started last and ran alone at the end while the other worker was idle.
#: They are handed out first instead (:func:`pytest_collection_modifyitems`); the other files follow, most tests
#: first (xdist's own order).  A file missing from the list only starts later; nothing else depends on it.
HEAVY_FIRST = (
    "tests/conformance/test_composability.py",
    "tests/backend_brian2/test_graph_rate.py",
    "tests/hardware/test_substrate_graphs.py",
    "tests/backend_brian2/test_brian2_checkpoint.py",
    "tests/backend_brian2/test_brian2_fpa_zil_bp.py",
    "tests/graph/test_numba_features.py",
    "tests/graph/test_exactness.py",
    "tests/test_figures.py",
    "tests/perf/test_fast_paths.py",
    "tests/algorithms/test_algo_schedules.py",
    "tests/backend_brian2/test_rate_mode.py",
    "tests/backend_brian2/test_spiking_mode.py",
    "tests/graph/test_experiments.py",
    "tests/backend_brian2/test_brian2_ipc.py",
    "tests/graph/test_graph_simulator.py",
)


def pytest_configure(config):
    # xdist reorders files by their number of tests unless told not to: keep the order set below
    if getattr(config.option, "loadscopereorder", None) is not None:
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(session, config, items):
    """Order the collected tests file by file: :data:`HEAVY_FIRST` first, then the other files by their number of
    tests (most first); inside a file the order is unchanged (the sort is stable)."""
    def path(item):
        return item.nodeid.split("::", 1)[0]
    counts = {}
    for item in items:
        counts[path(item)] = counts.get(path(item), 0) + 1
    rank = {p: i for i, p in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: (rank.get(path(item), len(rank)), -counts[path(item)], path(item)))
