"""Circuit declarations: what a Circuit refuses (beyond the per-object checks of tests/test_errors.py)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import neurosim as ns


def test_a_second_target_clamp_is_refused():
    """One target population per circuit: a second target clamp (on another population) is refused with the
    fix, whether declared directly or added to a built hierarchy; a population clamped twice too."""
    P = ns.ValuePopulation
    pops = [P("i", 2), P("a", 3), P("b", 2)]
    errs = [ns.ErrorPopulation("ea", "a"), ns.ErrorPopulation("eb", "b")]
    projs = [ns.Projection("W1", "i", "a"), ns.Projection("W2", "i", "b")]
    with pytest.raises(ValueError, match=r"has 2 target clamps \['a', 'b'\]; one target population is supported "
                                         r"\(concatenate the outputs into one population\)"):
        ns.Circuit(pops, errs, projs, [ns.Clamp("i"), ns.Clamp("a", "target"), ns.Clamp("b", "target")])
    net = ns.hierarchy([3, 4, 2])
    with pytest.raises(ValueError, match=r"2 target clamps \['output', 'h1'\]"):
        dataclasses.replace(net, clamps=tuple(net.clamps) + (ns.Clamp("h1", "target"),))
    with pytest.raises(ValueError, match="population 'output' is clamped twice"):
        dataclasses.replace(net, clamps=tuple(net.clamps) + (ns.Clamp("output", "target"),))
    # one target is fine
    assert ns.Circuit(pops, errs, projs, [ns.Clamp("i"), ns.Clamp("b", "target")]).targets == ["b"]


def test_lower_takes_every_circuit_kind():
    """``ns.lower`` lowers a graph circuit to the GraphPlan of ``lower_graph`` (same parameters for one seed)
    and names what it takes when given something else."""
    g = ns.graph.cnn(input_shape=(1, 4, 4), channels=(2,), kernel=3, n_out=2)
    p, q = ns.lower(g, seed=3), ns.graph.lower_graph(g, seed=3)
    assert isinstance(p, ns.graph.GraphPlan) and p.pop_names == q.pop_names
    np.testing.assert_array_equal(p.theta0, q.theta0)
    assert ns.lower(ns.hierarchy([3, 2]), seed=0).pop_names == ["input", "output"]
    with pytest.raises(TypeError, match="needs a neurosim Circuit or neurosim.graph.Graph, got int"):
        ns.lower(3)
