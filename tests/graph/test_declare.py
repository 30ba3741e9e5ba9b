"""Graph declarations: validation errors name the vertex and the fix; shapes, levels, levelling, lowering."""
from __future__ import annotations

import numpy as np
import pytest

import neurosim as ns
from neurosim import graph as ng
from neurosim.graph import Act, Conv2d, Dense, Graph, Identity, Input, Param, Pool, Product, Sum
from neurosim.graph.plan import EI_PARAM, OP_AFFINE, V_LEVEL, V_OP


def test_cycle_is_named():
    with pytest.raises(ValueError, match=r"cycle: (a -> b -> a|b -> a -> b).*unroll"):
        Graph([Input("x", 2), Dense("a", ("x", "b"), 2), Dense("b", "a", 2), Dense("output", "b", 1)], "output")


def test_self_loop_and_unknown_parent():
    with pytest.raises(ValueError, match="'a' is its own parent"):
        Graph([Input("x", 2), Dense("a", ("x", "a"), 2)], "a")
    with pytest.raises(ValueError, match="vertex 'a' has unknown parent 'y'"):
        Graph([Input("x", 2), Dense("a", "y", 2)], "a")


def test_duplicate_names_and_bad_output():
    with pytest.raises(ValueError, match="two vertices are named 'a'"):
        Graph([Input("x", 2), Dense("a", "x", 2), Dense("a", "x", 3)], "a")
    with pytest.raises(ValueError, match="output 'zz' is not a vertex"):
        Graph([Input("x", 2), Dense("a", "x", 2)], "zz")
    with pytest.raises(ValueError, match="output 'x' is an Input"):
        Graph([Input("x", 2), Dense("a", "x", 2)], "x")
    with pytest.raises(ValueError, match="output 'a' has children"):
        Graph([Input("x", 2), Dense("a", "x", 2), Dense("b", "a", 2)], "a")


def test_shape_mismatches_are_named():
    with pytest.raises(ValueError, match=r"Sum 's': parents 'a' \(3,\) and 'b' \(4,\) have different shapes"):
        Graph([Input("x", 2), Dense("a", "x", 3), Dense("b", "x", 4), Sum("s", ("a", "b"))], "s")
    with pytest.raises(ValueError, match=r"Product 'p': parents"):
        Graph([Input("x", 2), Dense("a", "x", 3), Dense("b", "x", 4), Product("p", ("a", "b"))], "p")
    with pytest.raises(ValueError, match=r"Conv2d 'c': parent 'x' has shape \(5,\), a convolution needs \(C, H, W\)"):
        Graph([Input("x", 5), Conv2d("c", "x", 2)], "c")
    with pytest.raises(ValueError, match=r"Conv2d 'c': kernel \(5, 5\) is larger than the padded input"):
        Graph([Input("x", (1, 3, 3)), Conv2d("c", "x", 2, kernel=5)], "c")
    with pytest.raises(ValueError, match=r"Pool 'p': window 4 is larger than the parent"):
        Graph([Input("x", (1, 3, 3)), Pool("p", "x", size=4)], "p")
    with pytest.raises(ValueError, match=r"Dense 'd': shape \(2, 3, 3\) has 18 units but size is 10"):
        Dense("d", "x", 10, shape=(2, 3, 3))


def test_shared_parameter_shape_conflict():
    with pytest.raises(ValueError, match=r"parameter 'W' is used as a weight of shape \(3, 2\) by vertex 'a' but as a "
                                         r"weight of shape \(3, 3\) by vertex 'b'"):
        Graph([Input("x", 2), Dense("a", "x", 3, weights="W"), Dense("b", "a", 3, weights="W"),
               Dense("output", "b", 1)], "output")


def test_unreachable_vertices_and_unused_inputs():
    with pytest.raises(ValueError, match="vertex 'dead' does not reach the output 'output'"):
        Graph([Input("x", 2), Dense("dead", "x", 2), Dense("output", "x", 1)], "output")
    with pytest.raises(ValueError, match="input 'u' does not feed the output"):
        Graph([Input("x", 2), Input("u", 2), Dense("output", "x", 1)], "output")


def test_vertex_argument_validation():
    with pytest.raises(ValueError, match="Dense 'd': phi has 1 entries but there are 2 parents"):
        Dense("d", ("a", "b"), 2, phi=("tanh",))
    with pytest.raises(ValueError, match="unknown activation 'tnah'"):
        Act("a", "x", "tnah")
    with pytest.raises(ValueError, match="Pool 'p': kind must be 'max' or 'avg'"):
        Pool("p", "x", kind="median")
    with pytest.raises(ValueError, match="Product 'p': a product needs at least 2 parents"):
        Product("p", ("x",))
    with pytest.raises(ValueError, match="precision must be finite and > 0"):
        Dense("d", "x", 2, precision=0.0)
    with pytest.raises(ValueError, match="Param 'nope' is not used by any vertex"):
        Graph([Input("x", 2), Dense("output", "x", 1)], "output", params=[Param("nope")])


def test_shapes_and_levels():
    g = ng.cnn((1, 8, 8), channels=(4, 6), strides=(1, 2), n_out=10)
    assert g.shapes["conv1"] == (4, 8, 8)
    assert g.shapes["pool1"] == (4, 4, 4)
    assert g.shapes["conv2"] == (6, 2, 2)  # stride 2, padding 1, kernel 3 on 4x4
    assert g.shapes["pool2"] == (6, 1, 1)
    assert g.levels == {"output": 0, "pool2": 1, "conv2": 2, "pool1": 3, "conv1": 4, "input": 5}
    assert g.depth == 4 and g.is_levelled
    assert g.param_shapes["conv2.K"] == (6, 4, 3, 3) and g.param_shapes["conv2.b"] == (6,)
    assert g.n_input == 64 and g.n_output == 10


def test_residual_is_levelled_by_identity_vertices():
    g = ng.residual(4, 5, 3, blocks=2)
    assert not g.is_levelled
    assert sorted(g.unlevelled_edges()) == [("h0", "h1", 2), ("h1", "h2", 2)]
    lev = ng.level(g)
    assert lev.is_levelled and ng.level(lev) is lev
    ids = [v for v in lev.vertices if isinstance(v, Identity)]
    assert [v.name for v in ids] == ["h1.lvl.h0.1", "h2.lvl.h1.1"]
    assert lev.vertex("h1").parents == ("a1", "h1.lvl.h0.1")
    # levels of the original vertices are unchanged; parameters and their initialisation are identical
    assert all(lev.levels[n] == g.levels[n] for n in g.levels)
    p0, p1 = ng.lower_graph(g, seed=3), ng.lower_graph(lev, seed=3)
    assert p0.same_params(p1) and np.array_equal(p0.theta0, p1.theta0)
    assert lev.depth == g.depth


def test_lstm_levelling_inserts_chains_on_the_cell_and_hidden_paths():
    g = ng.lstm(2, 3, 1, steps=3)
    spans = {(p, c): s for p, c, s in g.unlevelled_edges()}
    assert spans[("c1", "fc2")] == 5 and spans[("h1", "zo2")] == 4
    lev = ng.level(g)
    assert lev.is_levelled
    n_id = sum(isinstance(v, Identity) for v in lev.vertices)
    assert n_id == sum(s - 1 for s in spans.values())


def test_lowering_tables():
    g = ng.rnn(3, 4, 2, steps=3)
    p = ng.lower_graph(g, seed=0)
    assert p.v_names == ["x1", "x2", "x3", "h1", "h2", "h3", "output"]
    assert p.p_names == ["Wx", "bh", "Wh", "Wy", "by"]
    # the shared Wx is one parameter used by three edges
    k = p.param_index("Wx")
    assert int(np.sum(p.EI[:, EI_PARAM] == k)) == 3
    assert p.n_input == 9 and p.n_output == 2 and p.depth == 3
    for i, n in enumerate(p.v_names):
        assert p.VI[i, V_LEVEL] == g.levels[n]
    assert all(p.VI[i, V_OP] == OP_AFFINE for i in range(p.n_vertices) if p.v_names[i].startswith("h"))
    # inputs read the columns of X in declaration order
    X = np.arange(9.0)[None, :]
    from neurosim.graph.reference import feedforward
    xs = feedforward(p, p.theta0, X)
    for t in range(3):
        assert np.array_equal(xs[p.vertex_index(f"x{t + 1}")], X[:, 3 * t:3 * t + 3])


def test_seeded_initialisation_and_param_settings():
    g = Graph([Input("x", 3), Dense("output", "x", 2, bias="b")], "output",
              params=[Param("output.W", init=ns.Init("constant", value=0.5)), Param("b", plasticity=None)])
    p = ng.lower_graph(g, seed=0)
    assert np.all(p.param_view(p.theta0, 0) == 0.5)
    assert p.PI[1, 2] == 0  # the bias is frozen
    a, b = ng.lower_graph(ng.mlp([4, 5, 2]), seed=1), ng.lower_graph(ng.mlp([4, 5, 2]), seed=1)
    c = ng.lower_graph(ng.mlp([4, 5, 2]), seed=2)
    assert np.array_equal(a.theta0, b.theta0) and not np.allclose(a.theta0, c.theta0)


def test_describe_lists_every_vertex():
    g = ng.lstm(2, 3, 1, steps=2)
    text = g.describe()
    for v in g.vertices:
        assert v.name in text


def test_describe_states_activations_precisions_and_plasticity():
    g = ng.Graph([ng.Input("x", 3), ng.Dense("h", "x", 2, phi="linear", precision=(0.5, 2.0), tau_x=1.5),
                  ng.Dense("out", "h", 1, phi="tanh", precision=0.8)], output="out",
                 params=[Param("out.W", plasticity=None)])
    text = g.describe()
    assert "<- tanh(h)" in text and "precision per unit 0.5..2" in text and "tau_x 1.5" in text
    assert "precision 0.8" in text
    assert "param out.W" in text and "frozen" in text.split("param out.W")[1].splitlines()[0]
    c = ns.hierarchy([3, 4, 2], lr=0.05, optimizer=ns.SGD(momentum=0.9))
    assert "W1: input -> h1 bias lr=0.05 sgd(momentum=0.9)" in c.describe()


def test_one_step_lstm_and_sequence_builders_name_bad_arguments():
    """A one-step LSTM has no forget gate: with the default forget_bias it raised "Param 'bf' is not used by any
    vertex"; float counts raised a bare TypeError from range()."""
    from neurosim import graph as ng
    g = ng.lstm(3, 4, 2, 1)
    assert "bf" not in {p.name for p in g.params} and "f1" not in {v.name for v in g.vertices}
    sim = ns.Simulator(g, seed=0)
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    D = sim.directions(X, Y, "zil")
    bp = sim.directions(X, Y, "bp")
    assert max(np.abs(D[k] - bp[k]).max() for k in bp) < 1e-10
    assert "bf" in {p.name for p in ng.lstm(3, 4, 2, 2).params}
    for build in (ng.lstm, ng.rnn):
        with pytest.raises(ValueError, match=r"steps must be an int, got 2.5"):
            build(3, 4, 2, 2.5)
        with pytest.raises(ValueError, match=r"n_hidden must be >= 1, got 0"):
            build(3, 0, 2, 2)
    assert len(ng.rnn(3, 4, 2, np.int64(2)).vertices) == len(ng.rnn(3, 4, 2, 2).vertices)
