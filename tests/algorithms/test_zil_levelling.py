"""Z-IL on unlevelled layered DAGs: identity populations are inserted when Z-IL runs (``level_circuit``), so that
Z-IL equals backprop exactly (Song et al. 2020; Salvatori et al. 2022), while weights, names, histories and
probes stay the user's circuit's."""
from __future__ import annotations

import numpy as np
import pytest

import neurosim as ns
from neurosim.algorithms._common import distances
from neurosim.algorithms.zil import level_circuit, zil_updates

from algo_helpers import BACKENDS, data, max_rel, residual_graph


def long_dag(lr=0.05):
    """in -> h1 -> h2 -> h3 -> out (tanh), a weighted, biased long-range projection h1 -> out spanning three
    levels (a chain of two identity populations), an identity skip h2 -> out and a projection from the input
    straight to h3 (inputs need no chain)."""
    P = ns.ValuePopulation
    heb = ns.Hebbian(lr=lr, optimizer=ns.SGD(momentum=0.5))
    pops = [P("in", 4), P("h1", 5, "tanh"), P("h2", 3, "sigmoid"), P("h3", 3, "tanh"), P("out", 3)]
    errs = [ns.ErrorPopulation(f"e_{p}", p, precision=(1.0 if p != "out" else 1.5)) for p in ("h1", "h2", "h3",
                                                                                            "out")]
    projs = [ns.Projection("A", "in", "h1", bias=True, plasticity=heb),
             ns.Projection("B", "h1", "h2", plasticity=heb),
             ns.Projection("C", "h2", "h3", bias=True, plasticity=heb),
             ns.Projection("D", "h3", "out", plasticity=heb),
             ns.Projection("L", "h1", "out", bias=True, multiplier=0.6, plasticity=heb),
             ns.Projection("S", "h2", "out", skip=True, weights=False),
             ns.Projection("E", "in", "h3", plasticity=heb)]
    return ns.Circuit(pops, errs, projs, [ns.Clamp("in", "input"), ns.Clamp("out", "target")], name="longdag")


def grads(sim, X, Y):
    from neurosim.algorithms import backprop
    _, _, gW, gb = backprop.gradients(sim.backend, X, Y)
    return gW, gb


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("make", [long_dag, lambda: residual_graph(levelled=False)], ids=["long-dag", "residual"])
def test_zil_on_an_unlevelled_dag_equals_backprop(backend, make):
    net = make()
    assert not distances(ns.lower(net))[2]
    sim = ns.Simulator(net, backend=backend, seed=1)
    X, Y = data(n=6, n_in=sim.plan.n_input, n_out=sim.plan.n_target)
    res, dirs = zil_updates(sim, X, Y)
    assert max_rel(dirs, grads(sim, X, Y)) <= 1e-10
    dz, db = sim.directions(X, Y, "zil"), sim.directions(X, Y, "bp")
    assert sorted(dz) == sorted(db)
    for k in db:
        np.testing.assert_allclose(dz[k], db[k], rtol=0, atol=1e-10 * max(1.0, float(np.abs(db[k]).max())))
    # reported in the user's layout: one energy column per population of the circuit
    assert res.energy.shape[1] == sim.plan.n_pops


@pytest.mark.parametrize("backend", BACKENDS)
def test_zil_training_on_an_unlevelled_dag_follows_backprop_sgd(backend):
    """Training steps (momentum SGD, fresh batches): Z-IL and BP weights agree to 1e-10 and the names are the
    circuit's own."""
    net = long_dag()
    a, b = ns.Simulator(net, backend=backend, seed=2), ns.Simulator(net, backend=backend, seed=2)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 4))
    Y = np.tanh(X @ rng.normal(size=(4, 3)))
    w0 = a.weights
    ha = a.train(X, Y, epochs=2, batch_size=4, shuffle=False, algorithm="zil", progress=False)
    hb = b.train(X, Y, epochs=2, batch_size=4, shuffle=False, algorithm="bp", progress=False)
    assert sorted(a.weights) == sorted(w0) == sorted(b.weights)
    np.testing.assert_allclose(ha["loss"], hb["loss"], rtol=1e-10)
    for k in w0:
        assert np.linalg.norm(b.weights[k] - w0[k]) > 1e-4, k
        assert np.linalg.norm(a.weights[k] - b.weights[k]) <= 1e-10 * max(1.0, np.linalg.norm(b.weights[k])), k
    # negative control: gamma != 1 breaks the equality (the levelled run is really Z-IL)
    c = ns.Simulator(net, backend=backend, seed=2)
    c.train(X, Y, epochs=2, batch_size=4, shuffle=False, algorithm="zil", options={"gamma": 0.8}, progress=False)
    assert max(np.abs(c.weights[k] - b.weights[k]).max() for k in w0) > 1e-4


def test_level_circuit_inserts_identity_chains_and_keeps_the_function():
    net = long_dag()
    lev = level_circuit(net)
    assert distances(ns.lower(lev))[2]
    added = {p.name for p in lev.populations} - {p.name for p in net.populations}
    assert added == {"out.lvl.h1.1", "out.lvl.h1.2", "out.lvl.h2.1"}
    assert {pr.name for pr in net.projections} <= {pr.name for pr in lev.projections}
    moved = {pr.name: pr for pr in lev.projections}
    assert moved["L"].pre == "out.lvl.h1.2" and moved["S"].pre == "out.lvl.h2.1" and moved["E"].pre == "in"
    assert level_circuit(residual_graph(levelled=True)) is not None
    same = ns.hierarchy([3, 4, 2])
    assert level_circuit(same) is same
    # the function is unchanged: the same weights give the same feedforward output
    s0, s1 = ns.Simulator(net, backend="reference", seed=0), ns.Simulator(lev, backend="reference", seed=5)
    for name, W in s0.weights.items():
        if name.endswith(".b"):
            s1.set_weights(name[:-2], b=W)
        else:
            s1.set_weights(name, W=W)
    X, _ = data(n=5, n_in=4, n_out=3)
    np.testing.assert_allclose(s1.predict(X), s0.predict(X), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_zil_probes_on_an_unlevelled_dag_record_the_user_populations(backend):
    net = long_dag()
    sim = ns.Simulator(net, backend=backend, seed=1, probes=[ns.Probe("h2", "x", name="h2x")])
    X, Y = data(n=4, n_in=4, n_out=3)
    sim.train(X, Y, epochs=1, batch_size=4, algorithm="zil", progress=False)
    rec = np.asarray(sim.data["h2x"])
    assert rec.shape[-1] == 3 and rec.shape[0] >= 1
    ref = ns.Simulator(net, backend=backend, seed=1)
    x_ff = None
    from neurosim.algorithms.backprop import forward
    x_ff = forward(ref.backend, X)[:, ref.plan.units("h2")]
    np.testing.assert_allclose(rec[0], x_ff[0], rtol=1e-12, atol=1e-12)   # step 0: the feedforward state
