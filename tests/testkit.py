"""Circuits, data and comparisons shared by several test files (test files do not import each other).

``conftest.py`` puts ``tests/`` on ``sys.path``, so every test file imports this as ``testkit``.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import neurosim as ns

TOL = 1e-10          # float64 agreement with the reference (relative to max(1, |value|))


# ----------------------------------------------------------------------------- conformance helpers
def assert_close(a, b, tol=TOL, what=""):
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    assert a.shape == b.shape, f"{what}: shapes {a.shape} != {b.shape}"
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(b)), f"{what}: non-finite values"
    scale = max(1.0, float(np.max(np.abs(b))) if b.size else 1.0)
    err = float(np.max(np.abs(a - b))) if a.size else 0.0
    assert err <= tol * scale, f"{what}: max abs difference {err:.3e} > {tol:g} * {scale:.3g}"


def assert_results_equal(res, ref, tol=TOL):
    assert res.steps == ref.steps
    assert res.populations == ref.populations
    assert_close(res.energy, ref.energy, tol, "energy")
    for name in ref.populations:
        for var in ("x", "eps", "mu"):
            assert_close(getattr(res, var)[name], getattr(ref, var)[name], tol, f"{var}[{name}]")
    if ref.y0 is not None:
        assert_close(res.y0, ref.y0, tol, "y0")


def assert_weights_equal(sim, ref, tol=TOL):
    wa, wb = sim.weights, ref.weights
    assert sorted(wa) == sorted(wb)
    for k in wb:
        assert_close(wa[k], wb[k], tol, f"weights[{k}]")


def pair(circuit, backend, seed=0, **kw):
    """(simulator under test, reference simulator), built from the same circuit and seed."""
    return (ns.Simulator(circuit, backend=backend, seed=seed, **kw),
            ns.Simulator(circuit, backend="reference", seed=seed, **kw))


def data(seed, B, n_in, n_out):
    rng = np.random.default_rng(1000 + seed)
    return rng.normal(size=(B, n_in)), rng.normal(size=(B, n_out))


def random_hierarchy(seed, phi="tanh", tau_eps=0.0, **kw):
    """A 4-layer net with biases, random multipliers, an identity skip (h1 -> h2, equal sizes) and
    non-unit precisions."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 7))
    defaults = dict(bias=True, multipliers=list(rng.uniform(0.5, 1.5, size=3)), skips=[False, True, False],
                    precision=float(rng.uniform(0.5, 1.5)), output_precision=float(rng.uniform(0.5, 1.5)),
                    tau_eps=tau_eps, lr=0.05, optimizer=ns.SGD())
    defaults.update(kw)
    return ns.hierarchy([int(rng.integers(2, 6)), n, n, int(rng.integers(2, 5))], phi=phi, **defaults)


def dag_circuit(tau_eps=0.3, plasticity=None):
    """A non-layered DAG: two inputs a, b -> h (tanh) -> g (sigmoid) -> out, with a direct a -> out
    projection (multiplier 0.7) and an identity skip h -> out; per-unit precision on h, dynamic error
    units on g."""
    plast = plasticity if plasticity is not None else ns.Hebbian(lr=0.05)
    pops = (ns.ValuePopulation("a", 3), ns.ValuePopulation("b", 2),
            ns.ValuePopulation("h", 4, phi="tanh", tau_x=1.0),
            ns.ValuePopulation("g", 5, phi="sigmoid", tau_x=0.8),
            ns.ValuePopulation("out", 4, tau_x=1.2))
    errs = (ns.ErrorPopulation("eps_h", "h", precision=(0.5, 1.0, 1.5, 2.0)),
            ns.ErrorPopulation("eps_g", "g", tau_eps=tau_eps, precision=1.3),
            ns.ErrorPopulation("eps_out", "out", precision=0.8))
    projs = (ns.Projection("Wah", "a", "h", bias=True, plasticity=plast),
             ns.Projection("Wbh", "b", "h", plasticity=plast),
             ns.Projection("Whg", "h", "g", bias=True, plasticity=plast),
             ns.Projection("Wgo", "g", "out", bias=True, plasticity=plast),
             ns.Projection("Wao", "a", "out", multiplier=0.7, plasticity=plast),
             ns.Projection("skip", "h", "out", skip=True, weights=False))
    clamps = (ns.Clamp("a", "input"), ns.Clamp("b", "input"), ns.Clamp("out", "target"))
    return ns.Circuit(pops, errs, projs, clamps, name="dag")


OPTIMIZERS = {
    "sgd": ns.SGD(),
    "sgd_momentum_wd": ns.SGD(momentum=0.9, weight_decay=1e-3),
    "adam": ns.Adam(),
    "adam_wd": ns.Adam(beta1=0.8, beta2=0.99, weight_decay=1e-2),
}


# ----------------------------------------------------------------------------- the composability matrix's tiny circuits
SEED = 0


def _dag():
    """Two inputs a, b -> h (tanh) -> g (sigmoid) -> out, a long-range projection a -> out and an identity
    skip h -> out."""
    plast = ns.Hebbian(lr=0.05, optimizer=ns.SGD())
    pops = (ns.ValuePopulation("a", 2), ns.ValuePopulation("b", 2), ns.ValuePopulation("h", 3, phi="tanh"),
            ns.ValuePopulation("g", 3, phi="sigmoid"), ns.ValuePopulation("out", 3))
    errs = (ns.ErrorPopulation("eps_h", "h"), ns.ErrorPopulation("eps_g", "g"),
            ns.ErrorPopulation("eps_out", "out"))
    projs = (ns.Projection("Wah", "a", "h", bias=True, plasticity=plast),
             ns.Projection("Wbh", "b", "h", plasticity=plast),
             ns.Projection("Whg", "h", "g", bias=True, plasticity=plast),
             ns.Projection("Wgo", "g", "out", plasticity=plast),
             ns.Projection("Wao", "a", "out", multiplier=0.7, plasticity=plast),
             ns.Projection("skip", "h", "out", skip=True, weights=False))
    clamps = (ns.Clamp("a", "input"), ns.Clamp("b", "input"), ns.Clamp("out", "target"))
    return ns.Circuit(pops, errs, projs, clamps, name="dag")


def row_circuit(row):
    """A tiny circuit of each kind (plain SGD, so that spiking plasticity can carry it)."""
    if row == "layered MLP":
        return ns.hierarchy([3, 4, 2], phi="tanh", lr=0.05, optimizer=ns.SGD())
    if row == "DAG with skips":
        return _dag()
    if row == "muPC residual":
        return ns.mupc.residual_network(3, 4, 2, 2, phi="tanh", lr=0.05, optimizer=ns.SGD())
    g = ns.graph
    if row == "CNN":
        return g.cnn(input_shape=(1, 4, 4), channels=(2,), kernel=3, n_out=2, phi="tanh")
    if row == "RNN":
        return g.rnn(2, 3, 2, steps=2)
    if row == "LSTM":
        return g.lstm(2, 3, 2, steps=2)
    raise KeyError(row)


def with_error_dynamics(c, tau_eps=0.5):
    if isinstance(c, ns.graph.Graph):
        return dataclasses.replace(c, vertices=tuple(v if isinstance(v, ns.graph.Input) else
                                                     dataclasses.replace(v, tau_eps=tau_eps) for v in c.vertices))
    return dataclasses.replace(c, errors=tuple(dataclasses.replace(e, tau_eps=tau_eps) for e in c.errors))


def lowered(c):
    """The plan of a layered circuit or of a graph circuit (both give the Simulator the same names)."""
    return ns.graph.lower_graph(c, seed=SEED) if isinstance(c, ns.graph.Graph) else ns.lower(c, seed=SEED)


def probe_target(c, p):
    """The last population (vertex) before the target that is not an input."""
    names = [n for n in p.pop_names if n not in set(c.inputs) and n != p.pop_names[p.target_pop]]
    return names[-1]


def row_data(n_in, n_out, B=4):
    """The inputs and targets every composability cell uses."""
    rng = np.random.default_rng(7)
    return rng.normal(size=(B, n_in)), 0.5 * rng.normal(size=(B, n_out))


def require_brian2():
    """The brian2 module, or skip the calling test module (pytest.importorskip, also for brian2 2.9 broken by
    numpy >= 2.4, which fails at import with an AttributeError)."""
    try:
        import brian2
    except ImportError:
        pytest.skip("brian2 is not installed", allow_module_level=True)
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"brian2 cannot be imported: {exc}", allow_module_level=True)
    if not hasattr(brian2, "NeuronGroup"):   # a folder of that name on sys.path, not the library
        pytest.skip("brian2 is not installed", allow_module_level=True)
    return brian2
