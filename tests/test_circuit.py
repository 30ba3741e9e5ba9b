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
    with pytest.raises(TypeError, match="needs a neurosim Circuit, got int"):
        ns.lower(3)


def _builders():
    ng = ns.graph
    return {
        "hierarchy": ns.hierarchy([3, 4, 2]),
        "mupc.residual_network": ns.mupc.residual_network(3, 4, 2, 2),
        "graph.mlp": ng.mlp([3, 4, 2]),
        "graph.cnn": ng.cnn(input_shape=(1, 4, 4), channels=(2,), kernel=3, n_out=2),
        "graph.residual": ng.residual(3, 4, 2, 2),
        "graph.rnn": ng.rnn(2, 3, 2, steps=3),
        "graph.lstm": ng.lstm(2, 3, 2, steps=2),
    }


def test_every_builder_returns_the_one_circuit_type():
    """One declaration: layered, DAG, muPC, CNN, RNN, LSTM and residual builders all return ``ns.Circuit``
    (stated as populations or as vertices); ``isinstance(c, ng.Graph)`` tells the form, both forms lower with
    ``ns.lower`` and run on ``ns.Simulator``."""
    for label, c in _builders().items():
        assert type(c) is ns.Circuit, label
        graph_form = label.startswith("graph.")
        assert c.form == ("vertices" if graph_form else "populations") and c.is_graph == graph_form, label
        assert isinstance(c, ns.graph.Graph) == graph_form, label
        assert len(c.targets) == 1 and c.inputs, label
        assert c.topological_order()[-1] in c.targets or graph_form, label
        assert "output" in c.describe(), label
        plan = ns.lower(c, seed=0)
        assert set(plan.pop_names) == set(c.topological_order()), label
    g = ns.graph.Graph([ns.graph.Input("x", 2), ns.graph.Dense("y", "x", 1)], "y", name="g")
    assert type(g) is ns.Circuit and g == ns.Circuit(vertices=[ns.graph.Input("x", 2), ns.graph.Dense("y", "x", 1)],
                                                     output="y", name="g")


def test_the_two_forms_do_not_mix_and_name_the_form_of_a_query():
    c = ns.hierarchy([3, 2])
    with pytest.raises(ValueError, match="give either populations.*or vertices and output.*not both"):
        ns.Circuit(c.populations, c.errors, c.projections, c.clamps, vertices=[ns.graph.Input("x", 2)], output="x")
    with pytest.raises(ValueError, match="params= belongs to the vertex form"):
        dataclasses.replace(c, params=(ns.graph.Param("W1"),))
    with pytest.raises(ValueError, match="graph 'g': no output; name the vertex clamped to the target"):
        ns.Circuit(vertices=[ns.graph.Input("x", 2), ns.graph.Dense("y", "x", 1)], name="g")
    g = ns.graph.mlp([3, 2])
    with pytest.raises(ValueError, match=r"stated as vertices; population\('output'\) belongs to the populations form"):
        g.population("output")
    with pytest.raises(ValueError, match=r"stated as populations; vertex\('output'\) belongs to the vertices form.*"
                                         r"c\.as_graph\(\)"):
        c.vertex("output")
    assert c.as_graph().vertex("output").parents == ("input",) and c.size("output") == 2 == g.size("output")


def test_a_graph_declares_probes_and_they_are_recorded():
    """Probes belong to the declaration in both forms: ``Graph(..., probes=)`` / ``with_probes`` are recorded
    by the Simulator exactly as ``Simulator(probes=)`` records them; a probe naming no vertex is refused when
    the circuit is built."""
    g = ns.graph.mlp([3, 4, 2])
    X = np.random.default_rng(0).normal(size=(2, 3))
    pb = ns.Probe("h1", "x", every=2)
    a = ns.Simulator(g.with_probes(pb), backend="reference")
    b = ns.Simulator(g, backend="reference", probes=[pb])
    ra, rb = a.run(X, steps=6), b.run(X, steps=6)
    assert a.data["h1.x"].shape == (4, 4)
    np.testing.assert_array_equal(a.data["h1.x"], b.data["h1.x"])
    np.testing.assert_array_equal(ra.x["output"], rb.x["output"])
    with pytest.raises(ValueError, match="Probe 'nope.x': graph 'mlp' has no vertex 'nope'"):
        g.with_probes(ns.Probe("nope"))
    lev = ns.graph.level(ns.graph.residual(3, 4, 2, 2).with_probes(ns.Probe("h1", "eps")))
    assert [p.name for p in lev.probes] == ["h1.eps"]


def test_with_plasticity_freezes_named_parameters_of_a_graph():
    """``with_plasticity`` works on both forms: on a graph it names parameters; a frozen parameter does not move
    in training while the others do; unknown names are refused with the known ones."""
    X = np.random.default_rng(1).normal(size=(8, 3))
    Y = np.random.default_rng(2).normal(size=(8, 2))
    g = ns.graph.mlp([3, 4, 2]).with_plasticity(None, ["W1"])
    sim = ns.Simulator(g, backend="reference", seed=0)
    before = {k: v.copy() for k, v in sim.weights.items()}
    sim.train(X, Y, epochs=1, batch_size=8, steps=5, progress=False)
    after = sim.weights
    np.testing.assert_array_equal(before["W1"], after["W1"])
    assert not np.array_equal(before["W2"], after["W2"])
    frozen = ns.graph.mlp([3, 4, 2]).with_plasticity(None)
    assert frozen.plasticity is None and all(p.plasticity == "default" for p in frozen.params)
    with pytest.raises(ValueError, match=r"has no parameter\(s\) \['W9'\]; parameters: "):
        g.with_plasticity(None, ["W9"])
    with pytest.raises(ValueError, match=r"has no projection\(s\) \['W9'\]"):
        ns.hierarchy([3, 2]).with_plasticity(None, ["W9"])


def test_what_belongs_to_one_form_is_refused_in_the_other_with_the_fix():
    """A new user's slips: a circuit-wide plasticity on the population form (it would be silently unused), the
    vertex list passed positionally, ``output=`` with populations, a population query on the vertex form."""
    c = ns.hierarchy([3, 2])
    assert c.plasticity is None   # the population form has no circuit-wide default plasticity
    with pytest.raises(ValueError, match=r"plasticity= belongs to the vertex form.*ns.Projection"):
        ns.Circuit(c.populations, c.errors, c.projections, c.clamps, plasticity=ns.Hebbian(lr=0.9))
    verts = [ns.graph.Input("x", 2), ns.graph.Dense("y", "x", 1)]
    with pytest.raises(ValueError, match=r"holds vertices \(Input 'x'\); state a circuit as vertices with "
                                         r"ns.Circuit\(vertices=..., output=...\)"):
        ns.Circuit(verts, "y")
    with pytest.raises(ValueError, match=r"not both; got output='output' and \['populations'"):
        ns.Circuit(c.populations, c.errors, c.projections, c.clamps, output="output")
    with pytest.raises(ValueError, match=r"c.as_populations\(\)"):
        ns.graph.mlp([3, 2]).population("output")
    assert dataclasses.replace(c, name="c2").name == "c2"   # a copy keeps the form valid
    probe = ns.Probe("output", "x")
    assert c.with_probes(probe).as_graph().probes == (probe,)   # as_graph keeps the probes


def test_with_connectivity_with_swapped_arguments_names_the_order():
    net = ns.hierarchy([8, 6, 4])
    with pytest.raises(TypeError, match=r"connectivity first and the projection names second.*swapped"):
        net.with_connectivity(["W1"], ns.FixedFanIn(4))
    with pytest.raises(TypeError, match=r"projections must be a projection name or a list of names, got FixedFanIn"):
        net.with_connectivity(ns.FixedFanIn(4), ns.FixedFanIn(4))


def test_hierarchy_refuses_an_unknown_activation_even_without_hidden_layers():
    with pytest.raises(ValueError, match=r"hierarchy: phi='relu6' is not a known activation; choose one of .*'tanh'"):
        ns.hierarchy([64, 10], phi="relu6")
    with pytest.raises(ValueError, match=r"ValuePopulation 'h1': unknown activation 'relu6'"):   # as before
        ns.hierarchy([64, 16, 10], phi="relu6")


def test_hierarchy_refuses_sizes_that_are_not_positive_ints():
    """A float, a bool or a string size was truncated (2.9 -> 2, True -> 1, '8' -> 8); NumPy integers are sizes."""
    assert [p.size for p in ns.hierarchy([4, np.int64(3), 2]).populations] == [4, 3, 2]
    for bad in (2.9, True, "8", 0, -3, np.float64(3.0)):
        with pytest.raises(ValueError, match=r"hierarchy: sizes\[1\] must be a positive int, got"):
            ns.hierarchy([4, bad, 3])
