"""The schedules (pc with options, strict, fpa, zil, ipc, bp) through ``Simulator.train``: registry and options,
numba kernels equal to the NumPy implementations (1e-10), probes, nudging, clear errors."""
from __future__ import annotations

import numpy as np
import pytest

import neurosim as ns
from neurosim import algorithms
from neurosim.algorithms import backprop
from neurosim.algorithms.fpa import fpa_updates
from neurosim.algorithms.ipc import ipc_run
from neurosim.algorithms.zil import zil_updates

from algo_helpers import BACKENDS, assert_close, circuits, data, mlp, residual_graph

ALGOS = {
    "pc": {},
    "pc-options": {"output_precision": 0.3, "beta": 0.5},
    "strict": {"eta": 0.2, "n": 8},
    "fpa": {},
    "fpa-eta": {"eta": 0.5, "n": 3, "beta": 0.2},
    "zil": {},
    "zil-control": {"gamma": 0.9, "output_precision": 2.0},
    "ipc": {"gamma": 0.05},
    "bp": {},
}


def _algo(name):
    return name.split("-")[0]


def test_registry_lists_every_schedule_with_documented_options():
    names = algorithms.names()
    for a in ("pc", "strict", "fpa", "zil", "ipc", "bp"):
        assert a in names
    assert algorithms.get("fpa").options == {"eta": 1.0, "n": None, "output_precision": None, "beta": None,
                                             "compensate": True, "convention": "neurosim"}
    assert set(algorithms.get("zil").options) >= {"gamma", "update_all_at_zero"}
    assert set(algorithms.get("strict").options) >= {"eta", "n"}
    assert set(algorithms.get("pc").options) == {"output_precision", "beta", "compensate", "convention"}
    X, Y = data()
    sim = ns.Simulator(mlp(), backend="reference")
    with pytest.raises(ValueError, match=r"algorithm 'fpa' has no option\(s\) \['gamma'\]"):
        sim.train(X, Y, algorithm="fpa", options={"gamma": 1.0}, progress=False)


@pytest.mark.parametrize("circuit", list(circuits()))
@pytest.mark.parametrize("algo", list(ALGOS))
def test_numba_kernels_equal_reference(circuit, algo):
    """Three epochs of training (weights, optimiser state, per-batch loss and energy) agree to 1e-10."""
    net = circuits()[circuit]
    X, Y = data(n=20, n_in=net.population("input").size, n_out=net.population(net.targets[0]).size, seed=1)
    hs, sims = {}, {}
    for be in BACKENDS:
        sim = ns.Simulator(net, backend=be, seed=3)
        hs[be] = sim.train(X, Y, epochs=3, batch_size=7, steps=6, dt=0.1, algorithm=_algo(algo),
                           options=ALGOS[algo], progress=False)
        sims[be] = sim
    for key in ("loss", "energy", "steps"):
        assert_close(hs["numba"][key], hs["reference"][key], what=key)
    wa, wb = sims["numba"].weights, sims["reference"].weights
    for k in wb:
        assert_close(wa[k], wb[k], what=f"weights[{k}]")
    for attr in ("mW", "vW", "mb", "vb", "opt_t"):
        assert_close(getattr(sims["numba"].backend, attr), getattr(sims["reference"].backend, attr), what=attr)
    # learning happened (not a no-op): the weights moved
    w0 = ns.Simulator(net, backend="reference", seed=3).weights
    assert max(np.abs(wb[k] - w0[k]).max() for k in w0) > 1e-6


@pytest.mark.parametrize("backend", BACKENDS)
def test_bp_single_layer_equals_pc(backend):
    """A network without hidden layers gets identical updates under every schedule (all are the delta rule)."""
    net = ns.hierarchy([5, 3], lr=0.1, optimizer=ns.SGD(), bias=True)
    X, Y = data(n=9, n_in=5, n_out=3)
    ref = ns.Simulator(net, backend=backend, seed=0)
    ref.train(X, Y, epochs=2, batch_size=3, algorithm="bp", progress=False)
    for algo in ("pc", "strict", "fpa", "zil"):
        sim = ns.Simulator(net, backend=backend, seed=0)
        sim.train(X, Y, epochs=2, batch_size=3, steps=3, algorithm=algo, progress=False)
        for k in ref.weights:
            assert_close(sim.weights[k], ref.weights[k], 1e-12, f"{algo} {k}")


@pytest.mark.parametrize("algo", ["fpa", "zil", "ipc"])
def test_probes_and_energy_records_match_reference(algo):
    net = mlp((5, 6, 6, 4))
    X, Y = data(n=6)
    probes = [ns.Probe("h1", "x"), ns.Probe("h2", "eps"), ns.Probe("output", "mu"), ns.Probe("h1", "energy")]
    out = {}
    for be in BACKENDS:
        sim = ns.Simulator(net, backend=be, seed=0, probes=probes)
        sim.train(X, Y, epochs=1, batch_size=3, steps=4, algorithm=algo, progress=False)
        out[be] = sim
    for p in probes:
        a, b = out["numba"].data[p.name], out["reference"].data[p.name]
        assert a.shape == b.shape and a.shape[0] > 1
        assert_close(a, b, what=p.name)
        np.testing.assert_array_equal(out["numba"].data.steps(p.name), out["reference"].data.steps(p.name))


@pytest.mark.parametrize("backend", BACKENDS)
def test_fpa_records_shift_register(backend):
    """With eta = 1 the hidden error of layer l is 0 until step L - l (the exact delta arrives one layer per step)."""
    net = mlp((5, 6, 6, 6, 4))
    X, Y = data(n=4)
    sim = ns.Simulator(net, backend=backend, seed=0, probes=[ns.Probe(h, "eps") for h in ("h1", "h2", "h3")])
    sim.train(X, Y, epochs=1, batch_size=4, algorithm="fpa", options={"eta": 1.0, "n": 4}, progress=False)
    for l, h in ((1, "h1"), (2, "h2"), (3, "h3")):
        rec = sim.data[f"{h}.eps"]
        first = 4 - l   # L = 4 weight layers
        assert np.all(rec[:first] == 0.0), h
        assert np.all(np.abs(rec[first]) > 0), h
        np.testing.assert_allclose(rec[first:], np.broadcast_to(rec[first], rec[first:].shape), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nudge_mode_for_energy_schedules(backend):
    """pc, strict and ipc accept mode='nudge' (output free, pulled toward the target); fpa/zil refuse it."""
    X, Y = data(n=6)
    for algo in ("pc", "strict", "ipc"):
        sims = [ns.Simulator(mlp(), backend=b, seed=0) for b in (backend, "reference")]
        hs = [s.train(X, Y, epochs=1, batch_size=3, steps=5, mode="nudge", beta=0.5, algorithm=algo, progress=False)
              for s in sims]
        assert_close(hs[0]["energy"], hs[1]["energy"], what=algo)
        assert_close(sims[0].weights["W1"], sims[1].weights["W1"], what=algo)
    for algo in ("fpa", "zil"):
        with pytest.raises(ValueError, match=f"algorithm '{algo}' supports mode 'clamp' only.*beta"):
            ns.Simulator(mlp(), backend=backend).train(X, Y, mode="nudge", beta=0.5, algorithm=algo, progress=False)


def test_pc_without_options_is_the_backend_kernel_and_options_are_consistent():
    """'pc' without options = sim.learn; beta=1 and the circuit's own output precision change nothing."""
    X, Y = data(n=6)
    for be in BACKENDS:
        a, b, c = (ns.Simulator(mlp(lr=0.05), backend=be, seed=0) for _ in range(3))
        for i in range(0, 6, 3):
            a.learn(X[i:i + 3], Y[i:i + 3], steps=7)
        b.train(X, Y, epochs=1, batch_size=3, steps=7, shuffle=False, algorithm="pc", progress=False)
        c.train(X, Y, epochs=1, batch_size=3, steps=7, shuffle=False, algorithm="pc",
                options={"beta": 1.0, "output_precision": 1.0}, progress=False)
        for k in a.weights:
            np.testing.assert_array_equal(a.weights[k], b.weights[k])
            assert_close(c.weights[k], a.weights[k], 1e-13, k)


@pytest.mark.parametrize("backend", BACKENDS)
def test_compensated_weak_target_keeps_the_update_scale(backend):
    """With compensate=True the update for a weak target (beta) is divided by beta; without it is not."""
    X, Y = data(n=5)
    _, (g1, _) = fpa_updates(ns.Simulator(mlp(), backend=backend), X, Y)
    _, (gb, _) = fpa_updates(ns.Simulator(mlp(), backend=backend), X, Y, beta=0.01)
    for k in g1:   # FPA is linear in the output error: raw direction = beta * direction at the target
        assert_close(gb[k], 0.01 * g1[k], 1e-12)
    for comp, factor in ((True, 100.0), (False, 1.0)):
        s0 = ns.Simulator(mlp(lr=0.1), backend=backend)
        s1 = ns.Simulator(mlp(lr=0.1), backend=backend)
        w0 = s0.weights
        s0.train(X, Y, epochs=1, batch_size=5, algorithm="fpa", progress=False)
        s1.train(X, Y, epochs=1, batch_size=5, algorithm="fpa", options={"beta": 0.01, "compensate": comp},
                 progress=False)
        for k in w0:
            assert_close(s1.weights[k] - w0[k], (s0.weights[k] - w0[k]) * 0.01 * factor, 1e-12, k)


def test_errors_name_the_problem_and_the_fix():
    X, Y = data(n=4)
    P = ns.ValuePopulation
    loop = ns.Circuit([P("input", 4), P("h", 3, "tanh"), P("out", 2), P("after", 2)],
                      [ns.ErrorPopulation(f"eps_{p}", p) for p in ("h", "out", "after")],
                      [ns.Projection("W1", "input", "h"), ns.Projection("W2", "h", "out"),
                       ns.Projection("W3", "out", "after")],
                      [ns.Clamp("input", "input"), ns.Clamp("out", "target")], name="past-target")
    with pytest.raises(ns.UnsupportedError, match="'zil' cannot level circuit 'past-target'.*the target population "
                                                   "predicts 'after'"):
        ns.Simulator(loop, backend="reference").train(X[:, :4], np.zeros((4, 2)), algorithm="zil", progress=False)
    net = ns.hierarchy([5, 6, 4], tau_eps=0.5)
    with pytest.raises(ns.UnsupportedError, match="instantaneous error units.*tau_eps=0"):
        ns.Simulator(net, backend="reference", dt=0.05).train(X, Y, algorithm="ipc", progress=False)
    sim = ns.Simulator(mlp(), backend="reference")
    with pytest.raises(ValueError, match="starts every batch from the feedforward pass"):
        sim.train(X, Y, algorithm="fpa", init="zeros", progress=False)
    with pytest.raises(ValueError, match="fixed number of steps; tol is not supported"):
        sim.train(X, Y, algorithm="zil", tol=1e-3, progress=False)
    with pytest.raises(ValueError, match="option 'beta' must be finite and > 0"):
        sim.train(X, Y, algorithm="fpa", options={"beta": 0.0}, progress=False)
    with pytest.raises(ValueError, match="'eta' must be finite and > 0"):
        sim.train(X, Y, algorithm="strict", options={"eta": -1.0}, progress=False)
    with pytest.raises(ValueError, match="integrator='euler'"):
        ns.Simulator(mlp(), backend="reference", integrator="heun").train(X, Y, algorithm="ipc", progress=False)
    two_tau = ns.Circuit(
        [ns.ValuePopulation("input", 5), ns.ValuePopulation("h", 3, "tanh", tau_x=2.0), ns.ValuePopulation("out", 4)],
        [ns.ErrorPopulation("eh", "h"), ns.ErrorPopulation("eo", "out")],
        [ns.Projection("A", "input", "h"), ns.Projection("B", "h", "out")],
        [ns.Clamp("input"), ns.Clamp("out", "target")])
    with pytest.raises(ValueError, match="several tau_x values"):
        ns.Simulator(two_tau, backend="reference").train(X, Y, algorithm="strict", progress=False)


@pytest.mark.parametrize("backend", BACKENDS)
def test_divergence_is_reported_with_step_and_population(backend):
    net = mlp((5, 6, 4), phi="linear", bias=False, init=ns.Init("constant", value=30.0))
    X, Y = data(n=4)
    for algo, opts in (("ipc", {"gamma": 1.9}), ("zil", {"gamma": 50.0})):
        sim = ns.Simulator(net, backend=backend)
        with pytest.raises(ns.DivergenceError) as info:
            with np.errstate(all="ignore"):
                sim.train(X, 1e300 * np.ones_like(Y), epochs=1, batch_size=4, steps=400, algorithm=algo, options=opts,
                          progress=False)
        assert info.value.population in ("h1", "output") and info.value.step >= 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_runs_every_schedule(backend):
    X, Y = data(n=8)
    for algo in ("fpa", "zil", "ipc", "bp", "strict"):
        s32 = ns.Simulator(mlp(lr=0.05), backend=backend, dtype="float32", seed=0)
        s64 = ns.Simulator(mlp(lr=0.05), backend="reference", seed=0)
        for s in (s32, s64):
            s.train(X, Y, epochs=2, batch_size=4, steps=5, algorithm=algo, progress=False)
        assert s32.weights["W1"].dtype == np.float32
        assert_close(s32.weights["W2"], s64.weights["W2"], 1e-4, algo)


def test_ipc_run_helper_and_zil_on_the_levelled_graph_matches_backprop():
    X, Y = data(n=6, n_in=4, n_out=5)
    for be in BACKENDS:
        sim = ns.Simulator(residual_graph(levelled=True), backend=be, seed=2)
        _, _, gW, gb = backprop.gradients(sim.backend, X, Y)
        _, (dW, db) = zil_updates(sim, X, Y)
        for k in gW:
            assert_close(dW[k], -gW[k], 1e-12, f"W{k}")
        res = ipc_run(sim, X, Y, steps=5, gamma=0.1)
        assert res.energy.shape == (6, sim.plan.n_pops)


def test_a_circuit_its_vertex_form_cannot_state_is_refused_on_numba_and_runs_on_the_reference():
    """numba runs fpa/zil/ipc/bp on the circuit's vertex form; two biased projections into one population have
    no vertex form (a vertex has one bias): numba refuses by name, the reference runs it."""
    pops = (ns.ValuePopulation("a", 3), ns.ValuePopulation("b", 2), ns.ValuePopulation("out", 2))
    projs = (ns.Projection("Wa", "a", "out", bias=True), ns.Projection("Wb", "b", "out", bias=True))
    c = ns.Circuit(pops, (ns.ErrorPopulation("eps_out", "out"),), projs,
                   (ns.Clamp("a", "input"), ns.Clamp("b", "input"), ns.Clamp("out", "target")))
    X, Y = data(n=4, n_in=5, n_out=2)
    with pytest.raises(ns.UnsupportedError, match="both give population 'out' a bias.*backend='reference'"):
        ns.Simulator(c, backend="numba", seed=0).step(X, Y, "fpa")
    res = ns.Simulator(c, backend="reference", seed=0).step(X, Y, "fpa")
    assert res.status == 0
