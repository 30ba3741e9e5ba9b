"""Jacobi time constants of graph vertices (neurosim.graph.precondition): hand-derived curvatures."""
from __future__ import annotations

import numpy as np
import pytest

import neurosim as ns
from neurosim import graph as ng
from neurosim.graph.declare import Dense, Graph, Input, Product
from neurosim.graph.precondition import diagonal_curvature, precondition


def _net(prec_out=0.5):
    return Graph([Input("x", 2), Dense("h", "x", 3, weights="W"), Dense("a", "h", 2, weights="A"),
                  Dense("b", "h", 2, weights="Bw"), Product("p", ("a", "b")),
                  Dense("output", "p", 2, weights="V", phi="tanh", precision=prec_out)], "output", name="chain")


def test_diagonal_curvature_by_hand():
    g = _net()
    plan = ng.lower_graph(g, seed=3)
    X = np.random.default_rng(0).normal(size=(5, 2))
    c = diagonal_curvature(plan, plan.theta0, X)
    th = {name: plan.param_view(plan.theta0, k) for k, name in enumerate(plan.p_names)}
    h = X @ th["W"].T
    a, b = h @ th["A"].T, h @ th["Bw"].T
    p = a * b
    d = 1 - np.tanh(p) ** 2                          # output = V tanh(p): J_{out,p} = V diag(tanh'(p))
    idx = plan.v_names.index
    assert c[idx("x")] == 0.0
    assert np.isclose(c[idx("output")], 0.5, rtol=1e-12)
    # p: 1 + pi_out * mean over b, j of sum_k V_kj^2 tanh'(p_bj)^2
    assert np.isclose(c[idx("p")], 1 + 0.5 * np.mean(d ** 2 * (th["V"] ** 2).sum(0)), rtol=1e-12)
    # a and b: 1 + mean of the other factor squared (J_{p,a} = diag(b))
    assert np.isclose(c[idx("a")], 1 + np.mean(b ** 2), rtol=1e-12)
    assert np.isclose(c[idx("b")], 1 + np.mean(a ** 2), rtol=1e-12)
    # h: 1 + (||A||_F^2 + ||B||_F^2) / n_h
    assert np.isclose(c[idx("h")], 1 + ((th["A"] ** 2).sum() + (th["Bw"] ** 2).sum()) / 3, rtol=1e-12)


def test_precondition_sets_tau_and_keeps_parameters():
    g = ng.lstm(3, 4, 2, steps=3)
    X = np.random.default_rng(1).uniform(size=(8, 9))
    g2 = precondition(g, X, seed=2)
    plan = ng.lower_graph(g, 2)
    c = diagonal_curvature(plan, plan.theta0, X)
    taus = {v.name: v.tau_x for v in g2.vertices if hasattr(v, "tau_x")}
    for i, name in enumerate(plan.v_names):
        if name in taus:
            assert taus[name] == max(c[i], 1.0)
    assert max(taus.values()) > 1.5                  # the hidden states are stiffer than the rest
    s1, s2 = ns.Simulator(g, backend="reference", seed=2), ns.Simulator(g2, backend="reference", seed=2)
    assert all(np.array_equal(s1.weights[k], s2.weights[k]) for k in s1.weights)
    with pytest.raises(ValueError, match="X must have shape"):
        precondition(g, X[:, :4])
    with pytest.raises(ValueError, match="floor"):
        precondition(g, X, floor=0.0)


def test_refresh_time_constants_follows_the_weights():
    g = _net(prec_out=1.0)
    X = np.random.default_rng(2).normal(size=(6, 2))
    sim = ns.Simulator(precondition(g, X, seed=0), backend="reference", seed=0)
    before = sim.plan.VF[:, 1].copy()
    Y = np.ones((6, 2))
    d0 = sim.directions(X, Y, "pc", steps=5, dt=0.3)
    sim.backend.params.theta *= 2.0                      # stiffer: the curvature of every parent grows
    taus = ng.refresh_time_constants(sim, X)
    c = diagonal_curvature(sim.plan, sim.backend.params.theta, X)
    comp = [i for i, n in enumerate(sim.plan.v_names) if n != "x"]
    assert np.allclose(taus[comp], np.maximum(c[comp], 1.0), rtol=1e-12)
    assert taus[sim.plan.v_names.index("h")] > 1.5 * before[sim.plan.v_names.index("h")]
    # the relaxation reads the new time constants
    sim.backend.params.theta /= 2.0
    assert ng.rel_diff(sim.directions(X, Y, "pc", steps=5, dt=0.3), d0) > 1e-3
    with pytest.raises(ValueError, match="graph circuit"):
        ng.refresh_time_constants(ns.Simulator(ns.hierarchy([2, 3, 2]), backend="reference"), X)
