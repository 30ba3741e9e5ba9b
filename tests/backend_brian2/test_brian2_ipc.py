"""``ipc`` (incremental PC) on the brian2 backend: rate mode runs it in the brian2 network, spiking mode refuses.

The rate network applies its optimiser step in every time step that moves the values (not only in the
last one, as for ``pc``), so brian2's step order -- every input from the state at t, then every state
advances -- is iPC's joint step ``x_{t+1} = x_t + gamma/tau drive(x_t, theta_t)``, ``theta_{t+1} =
theta_t + opt(g(x_t, theta_t))`` with brian2's ``dt = gamma``.  The reference backend's ``_numpy`` loop is
the specification: weights after one and after several batches, the energies ``F(x_t, theta_t)`` of every
step, probes and the output options must agree, in clamp and nudge mode, with SGD and momentum (and Adam).
Every comparison also checks that brian2 really ran (its run counter), so a NumPy fallback would fail.

Observed on the development machine: max difference about 1e-16 (SGD, momentum) and 4e-10 (Adam, clamp
mode; see ``test_adam_in_clamp_mode``).
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from testkit import require_brian2  # noqa: E402

brian2 = require_brian2()

import neurosim as ns  # noqa: E402
from neurosim.algorithms.ipc import ipc_run  # noqa: E402
from testkit import dag_circuit, data, random_hierarchy  # noqa: E402

TOL = 1e-9     # float64, relative to max(1, |value|): observed about 1e-16
pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated.*")   # pyparsing names used by brian2 2.9

OPTIMIZERS = {"sgd": ns.SGD(), "momentum": ns.SGD(momentum=0.9)}


def close(a, b, tol=TOL, what=""):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape, f"{what}: shapes {a.shape} != {b.shape}"
    assert np.all(np.isfinite(a)), what
    scale = max(1.0, float(np.max(np.abs(b))) if b.size else 1.0)
    err = float(np.max(np.abs(a - b))) if a.size else 0.0
    assert err <= tol * scale, f"{what}: max difference {err:.3e} > {tol:g} x {scale:.3g}"


def weights_close(sim, ref, tol=TOL):
    assert sorted(sim.weights) == sorted(ref.weights)
    for k, w in ref.weights.items():
        close(sim.weights[k], w, tol, f"weights {k}")


def n_runs(sim):
    return int(sim.backend.checkpoint_state()["n_runs"])


def pair(circuit, seed=0, **kw):
    """(brian2 rate simulator, reference simulator) from the same circuit and seed."""
    return (ns.Simulator(circuit, backend="brian2", seed=seed, **kw),
            ns.Simulator(circuit, backend="reference", seed=seed, **kw))


@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
@pytest.mark.parametrize("mode", ["clamp", "nudge"])
def test_ipc_batches_match_the_reference(opt, mode):
    """Per-step energies, probes and weights after one and after several batches (biases, multipliers,
    a skip, non-unit precisions; gamma != the simulator's dt)."""
    net = random_hierarchy(5, optimizer=OPTIMIZERS[opt], lr=0.1)
    sim, ref = pair(net, seed=2, dt=0.1)
    X, Y = data(4, 6, sim.plan.n_input, sim.plan.n_target)
    w0 = ref.weights
    kw = dict(steps=8, gamma=0.15, mode=mode, nudge_beta=1.5 if mode == "nudge" else 0.0)
    for batch in range(3):
        r, q = ipc_run(sim, X, Y, **kw), ipc_run(ref, X, Y, **kw)
        assert n_runs(sim) == batch + 1                         # brian2 ran the batch
        assert r.steps == q.steps == 8 and r.status == q.status == 0
        close(r.energy, q.energy, what=f"energy per step, batch {batch}")
        close(r.y0, q.y0, what="y0")
        close(r.y, q.y, what="y")
        weights_close(sim, ref)
        np.testing.assert_array_equal(sim.backend.opt_t, ref.backend.opt_t)
    assert all(np.max(np.abs(ref.weights[k] - w0[k])) > 1e-3 for k in w0)   # plasticity was on
    # the weights change within a batch: the energy is F(x_t, theta_t), not F(x_t, theta_0)
    frozen = ns.Simulator(net, backend="reference", seed=2, dt=0.1)
    f = ipc_run(frozen, X, Y, learn=False, **kw)
    assert np.max(np.abs(f.energy[1:] - ipc_run(pair(net, seed=2, dt=0.1)[1], X, Y, **kw).energy[1:])) > 1e-6


@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
@pytest.mark.parametrize("mode", ["clamp", "nudge"])
def test_train_with_ipc_matches_the_reference(opt, mode):
    """``train(algorithm="ipc")`` over several batches (default gamma = dt), with probes."""
    net = ns.hierarchy([3, 5, 2], phi="tanh", lr=0.05, optimizer=OPTIMIZERS[opt], bias=True)
    sim, ref = pair(net, seed=0, dt=0.2, probes=[ns.Probe("h1", "x"), ns.Probe("output", "energy")])
    X, Y = data(8, 8, 3, 2)
    for s in (sim, ref):
        s.train(X, Y, epochs=2, batch_size=4, steps=6, algorithm="ipc", mode=mode,
                beta=1.0 if mode == "nudge" else 0.0, progress=False)
    assert n_runs(sim) == 4
    weights_close(sim, ref)
    close(sim.history["loss"], ref.history["loss"], what="loss history")
    for name in ("h1.x", "output.energy"):
        assert len(ref.data[name]) == 4 * 7
        close(sim.data[name], ref.data[name], what=f"probe {name}")
        np.testing.assert_array_equal(sim.data.steps(name), ref.data.steps(name))


def test_dag_with_skips_and_output_options_matches_the_reference():
    """A DAG (two inputs, a direct input -> output projection, an identity skip, biases) with the output
    options: weak output precision, weak target and the compensation factor."""
    net = dag_circuit(tau_eps=0.0, plasticity=ns.Hebbian(lr=0.05, optimizer=ns.SGD(momentum=0.5)))
    sim, ref = pair(net, seed=1, dt=0.1)
    X, Y = data(5, 6, 5, 4)
    for opts in ({}, {"output_precision": 0.3, "beta": 0.4}, {"output_precision": 0.3, "beta": 0.4,
                                                                "compensate": False}):
        r, q = (ipc_run(s, X, Y, steps=10, gamma=0.1, **opts) for s in (sim, ref))
        close(r.energy, q.energy, what=f"energy {opts}")
        weights_close(sim, ref)
    assert n_runs(sim) == 3
    # a later pc run on the same brian2 simulator uses the circuit's precision again
    a, b = sim.learn(X, Y, steps=5), ref.learn(X, Y, steps=5)
    close(a.energy, b.energy, what="pc energy after ipc")
    weights_close(sim, ref)


def test_adam_in_clamp_mode():
    """Adam steps ``lr * m/(sqrt(v) + eps)``: where the reference's direction is exactly 0 (the hidden
    errors at the feedforward start) brian2's rounding residue of 1e-16 is amplified by up to lr/eps, so
    the agreement is 1e-6 here (observed 4e-10); in nudge mode every error is 0 for the first steps and
    this amplification compounds, so nudge mode with Adam is not compared."""
    net = ns.hierarchy([3, 4, 2], phi="tanh", lr=0.05, optimizer=ns.Adam(), bias=True)
    sim, ref = pair(net, seed=0, dt=0.1)
    X, Y = data(3, 4, 3, 2)
    for _ in range(2):
        r, q = (ipc_run(s, X, Y, steps=6, gamma=0.2) for s in (sim, ref))
        close(r.energy, q.energy, 1e-6, "energy")
        weights_close(sim, ref, 1e-6)
    np.testing.assert_array_equal(sim.backend.opt_t, ref.backend.opt_t)   # Adam's count: one per step
    assert list(ref.backend.opt_t) == [12, 12]


def test_learn_false_moves_only_the_values():
    net = random_hierarchy(7)
    sim, ref = pair(net, seed=0, dt=0.1)
    X, Y = data(1, 3, sim.plan.n_input, sim.plan.n_target)
    w0 = sim.weights
    r, q = (ipc_run(s, X, Y, steps=5, gamma=0.3, learn=False) for s in (sim, ref))
    close(r.energy, q.energy, what="energy")
    for k, w in sim.weights.items():
        np.testing.assert_array_equal(w, w0[k])


def test_spiking_mode_refuses_ipc_with_the_reason():
    sim = ns.Simulator(ns.hierarchy([3, 4, 2], phi="tanh", optimizer=ns.SGD()), backend="brian2", seed=0, dt=0.1,
                       backend_options={"mode": "spiking"})
    X, Y = data(0, 2, 3, 2)
    for call in (lambda: ipc_run(sim, X, Y, steps=3, gamma=0.1),
                 lambda: sim.train(X, Y, epochs=1, batch_size=2, steps=3, algorithm="ipc", progress=False),
                 lambda: sim.backend.run_ipc(X, Y, ns.backends.base.RunSpec(n_steps=3))):
        with pytest.raises(ns.UnsupportedError) as e:
            call()
        msg = str(e.value)
        assert "backend 'brian2' (mode='spiking')" in msg and "algorithm 'ipc'" in msg, msg
        assert re.search("learning window", msg) and "mode='rate'" in msg, msg
    assert n_runs(sim) == 0


def test_ipc_settings_are_checked_on_brian2():
    sim = ns.Simulator(ns.hierarchy([3, 4, 2], phi="tanh"), backend="brian2", seed=0, dt=0.1)
    X, Y = data(0, 2, 3, 2)
    with pytest.raises(ValueError, match="gamma"):
        ipc_run(sim, X, Y, steps=3, gamma=-1.0)
    with pytest.raises(ValueError, match="mode"):
        ipc_run(sim, X, Y, steps=3, gamma=0.1, mode="free")
    with pytest.raises(ValueError, match="tol"):
        sim.train(X, Y, epochs=1, batch_size=2, steps=3, algorithm="ipc", tol=1e-3, progress=False)
    assert n_runs(sim) == 0


def test_cpp_standalone_runs_ipc_with_run_args(tmp_path):
    """cpp_standalone: the iPC network (per-neuron Adam counts, gfac, precisions as run_args) is built once
    and re-run with new inputs, weights and output options."""
    net = ns.hierarchy([2, 3, 2], phi="tanh", bias=True, lr=0.1, optimizer=ns.SGD(momentum=0.5))
    sim = ns.Simulator(net, backend="brian2", seed=7, dt=0.1,
                       backend_options={"target": "cpp_standalone", "directory": str(tmp_path / "b2")})
    ref = ns.Simulator(net, backend="reference", seed=7, dt=0.1)
    rng = np.random.default_rng(0)
    for i, opts in enumerate(({}, {"output_precision": 0.5, "beta": 0.5}, {})):
        X, Y = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
        r, q = (ipc_run(s, X, Y, steps=6, gamma=0.2, **opts) for s in (sim, ref))
        close(r.energy, q.energy, what=f"energy {opts}")
        weights_close(sim, ref)
        if i == 0:
            binary = tmp_path / "b2" / "main"
            built = binary.stat().st_mtime_ns
    assert binary.stat().st_mtime_ns == built          # re-runs did not recompile
    assert n_runs(sim) == 3
    sim.close()
