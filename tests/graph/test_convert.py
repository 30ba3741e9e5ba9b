"""One model: ``neurosim.graph.from_circuit`` writes a layered/DAG circuit as a graph of Dense vertices with the
same equations.  Oracle: the layered reference backend on the same weights, to rounding (1e-12), for every run
setting, training and the update directions of every algorithm the layered simulator runs."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import neurosim as ns
from neurosim import graph as ng

TOL = 1e-12


def _dag():
    """Two inputs a, b -> h (tanh) -> g (sigmoid) -> out, a long-range projection a -> out (multiplier 0.7), an
    identity skip h -> out, biases on two projections, precisions and time constants other than 1."""
    plast = ns.Hebbian(lr=0.05, optimizer=ns.SGD(momentum=0.9))
    pops = (ns.ValuePopulation("a", 2), ns.ValuePopulation("b", 2), ns.ValuePopulation("h", 3, phi="tanh", tau_x=1.5),
            ns.ValuePopulation("g", 3, phi="sigmoid"), ns.ValuePopulation("out", 3, tau_x=0.8))
    errs = (ns.ErrorPopulation("eps_h", "h", precision=0.7), ns.ErrorPopulation("eps_g", "g", tau_eps=0.4),
            ns.ErrorPopulation("eps_out", "out", precision=1.3))
    projs = (ns.Projection("Wah", "a", "h", bias=True, plasticity=plast),
             ns.Projection("Wbh", "b", "h", plasticity=plast),
             ns.Projection("Whg", "h", "g", bias=True, plasticity=plast),
             ns.Projection("Wgo", "g", "out", plasticity=plast),
             ns.Projection("Wao", "a", "out", multiplier=0.7, plasticity=plast),
             ns.Projection("skip", "h", "out", skip=True, weights=False))
    clamps = (ns.Clamp("a", "input"), ns.Clamp("b", "input"), ns.Clamp("out", "target"))
    return ns.Circuit(pops, errs, projs, clamps, name="dag")


def _dag_per_unit():
    """The DAG with one precision per unit on a hidden population and on the output."""
    c = _dag()
    prec = {"eps_h": (0.5, 1.0, 1.5), "eps_out": (1.3, 0.9, 1.1)}
    return dataclasses.replace(c, errors=tuple(dataclasses.replace(e, precision=prec.get(e.name, e.precision))
                                               for e in c.errors))


CIRCUITS = {
    "mlp": lambda: ns.hierarchy([3, 5, 4, 2], phi="tanh", lr=0.05, optimizer=ns.SGD(momentum=0.9)),
    "mlp-adam-tau": lambda: ns.hierarchy([3, 4, 2], phi="relu", tau_x=1.3, tau_eps=0.5, precision=0.8,
                                         output_precision=2.0, optimizer=ns.Adam(), lr=0.01),
    "dag": _dag,
    "dag-per-unit": _dag_per_unit,
    "mupc": lambda: ns.mupc.residual_network(3, 4, 2, 3, phi="tanh", lr=0.05, optimizer=ns.SGD()),
}


def _pair(name, backend="reference", **kw):
    c = CIRCUITS[name]()
    a = ns.Simulator(c, backend="reference", seed=0, dt=0.1, **kw)
    b = ns.Simulator(ng.from_circuit(c), backend=backend, seed=0, dt=0.1, **kw)
    b.load_weights(a.weights)
    p = a.plan
    rng = np.random.default_rng(3)
    return a, b, rng.normal(size=(6, p.n_input)), 0.5 * rng.normal(size=(6, p.n_target))


def _close(x, y, what):
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    assert x.shape == y.shape, (what, x.shape, y.shape)
    err = float(np.max(np.abs(x - y))) if x.size else 0.0
    assert err <= TOL * max(1.0, float(np.max(np.abs(y))) if y.size else 1.0), (what, err)


def _same_run(ra, rb):
    _close(rb.energy, ra.energy, "energy")
    for k in ra.x:
        _close(rb.x[k], ra.x[k], f"x.{k}")
        _close(rb.eps[k], ra.eps[k], f"eps.{k}")


@pytest.mark.parametrize("backend", ["reference", "numba"])
@pytest.mark.parametrize("name", sorted(CIRCUITS))
@pytest.mark.parametrize("setting", [
    dict(), dict(mode="nudge", beta=0.5), dict(mode="free"), dict(init="zeros"), dict(tol=1e-3, steps=200),
    dict(dt_decay=0.5), dict(integrator="heun")])
def test_run_equals_the_layered_circuit(name, backend, setting):
    setting = dict(setting)
    a, b, X, Y = _pair(name, backend)
    steps = setting.pop("steps", 12)
    ra = a.run(X, None if setting.get("mode") == "free" else Y, steps=steps, **setting)
    rb = b.run(X, None if setting.get("mode") == "free" else Y, steps=steps, **setting)
    assert ra.steps == rb.steps
    _same_run(ra, rb)


#: the circuits on which the layered simulator runs each algorithm: strict PC takes one tau_x for all beliefs,
#: layered iPC instantaneous error units, layered fpa one precision and tau_x (the exactness set-up) -- the
#: other circuits are refused there (tested with the algorithms), so there is nothing to compare
_LAYERED_RUNS = {"pc": sorted(CIRCUITS), "bp": sorted(CIRCUITS), "strict": ["mlp", "mupc"], "ipc": ["mlp", "mupc"],
                 "fpa": ["mlp", "mupc"]}


@pytest.mark.parametrize("backend", ["reference", "numba"])
@pytest.mark.parametrize("algorithm, name", [(a, n) for a in ("pc", "strict", "ipc", "bp") for n in _LAYERED_RUNS[a]])
def test_training_equals_the_layered_circuit(name, backend, algorithm):
    a, b, X, Y = _pair(name, backend)
    ha = a.train(X, Y, epochs=2, batch_size=3, steps=8, algorithm=algorithm, progress=False)
    hb = b.train(X, Y, epochs=2, batch_size=3, steps=8, algorithm=algorithm, progress=False)
    _close(hb["loss"], ha["loss"], "loss")
    for k in a.weights:
        _close(b.weights[k], a.weights[k], k)


@pytest.mark.parametrize("algorithm, name", [(a, n) for a in ("bp", "fpa", "pc") for n in _LAYERED_RUNS[a]])
def test_directions_equal_the_layered_circuit(name, algorithm):
    a, b, X, Y = _pair(name)
    da, db = a.directions(X, Y, algorithm, steps=8), b.directions(X, Y, algorithm, steps=8)
    assert sorted(da) == sorted(db)
    for k in da:
        _close(db[k], da[k], k)


def test_the_graph_keeps_the_circuit_names_and_settings():
    g = ng.from_circuit(_dag())
    assert g.output == "out" and g.inputs == ["a", "b"]
    assert sorted(g.param_shapes) == ["Wah", "Wah.b", "Wao", "Wbh", "Wgo", "Whg", "Whg.b"]
    out = next(v for v in g.vertices if v.name == "out")
    assert out.weights == ("Wgo", "Wao", None) and out.multiplier == (1.0, 0.7, 1.0)
    assert (out.precision, out.tau_x) == (1.3, 0.8)
    assert next(v for v in g.vertices if v.name == "g").tau_eps == 0.4


def test_a_per_unit_precision_becomes_the_vertex_precision():
    g = ng.from_circuit(_dag_per_unit())
    assert next(v for v in g.vertices if v.name == "h").precision == (0.5, 1.0, 1.5)
    assert next(v for v in g.vertices if v.name == "g").precision == 1.0
    plan = ns.lower(g)
    np.testing.assert_array_equal(plan.precision[plan.units("out")], [1.3, 0.9, 1.1])
    with pytest.raises(ValueError, match=r"Dense 'h': precision has 2 values but the vertex has 3 units"):
        ng.Dense("h", "x", 3, precision=(1.0, 2.0))
    with pytest.raises(ValueError, match=r"Sum 's': precision has 2 values but the vertex has 3 units"):
        ng.Graph([ng.Input("x", 3), ng.Sum("s", ("x",), precision=(1.0, 2.0))], output="s")
    with pytest.raises(ValueError, match=r"precision\[1\]"):
        ng.Dense("h", "x", 2, precision=(1.0, -1.0))


def test_what_a_graph_cannot_express_is_refused_with_the_object():
    c = ns.hierarchy([3, 4, 2])
    projs = c.projections + (ns.Projection("W_extra", "input", "output", bias=True),)
    with pytest.raises(ValueError, match="both give population 'output' a bias"):
        ng.from_circuit(dataclasses.replace(c, projections=tuple(dataclasses.replace(p, bias=True)
                                                                 for p in projs)))
    with pytest.raises(ValueError, match="one target clamp"):
        ng.from_circuit(dataclasses.replace(c, clamps=tuple(k for k in c.clamps if k.kind == "input")))
    with pytest.raises(TypeError, match="needs a neurosim Circuit"):
        ng.from_circuit(object())
    g = ng.mlp([3, 2])
    assert ng.from_circuit(g) is g and g.as_graph() is g   # a circuit stated as vertices is already a graph


def test_graph_name_defaults_to_the_circuit_name():
    assert ng.from_circuit(_dag()).name == "dag"
    assert ng.from_circuit(_dag(), name="dag-as-graph").name == "dag-as-graph"


def test_zil_on_an_unlevelled_dag_runs_as_a_graph_and_equals_bp():
    """A DAG whose paths to the output differ in length: as a graph, Z-IL levels it itself and equals backprop;
    the layered Z-IL (which levels the circuit with identity populations) gives the same directions."""
    d = _dag()   # Z-IL's exactness set-up: instantaneous errors, precision and tau_x 1 below the output
    c = dataclasses.replace(
        d, populations=tuple(dataclasses.replace(p, tau_x=1.0) for p in d.populations),
        errors=tuple(dataclasses.replace(e, tau_eps=0.0, precision=1.0 if e.value != "out" else e.precision)
                     for e in d.errors))
    a = ns.Simulator(c, backend="reference", seed=0)
    X, Y = np.random.default_rng(0).normal(size=(4, 4)), np.random.default_rng(1).normal(size=(4, 3))
    g = ns.Simulator(ng.from_circuit(c), backend="numba", seed=0)
    g.load_weights(a.weights)
    bp = a.directions(X, Y, "bp")
    assert ng.rel_diff(g.directions(X, Y, "zil"), bp) < 1e-12
    assert ng.rel_diff(a.directions(X, Y, "zil"), bp) < 1e-10


# ------------------------------------------------------------------------ the other way: to_populations
def test_population_form_round_trip_is_exact():
    """``c.as_graph().as_populations() == c`` for circuits a graph can state (names, inits, plasticity,
    multipliers, skips, precisions, time constants), and ``as_populations`` of a population-form circuit is the
    circuit itself."""
    for make in (CIRCUITS["mlp"], CIRCUITS["mlp-adam-tau"], CIRCUITS["mupc"]):
        c = make()
        back = c.as_graph().as_populations()
        # an Input vertex has no time constant: its population gets tau_x = 1, which a clamped population never uses
        pops = tuple(dataclasses.replace(p, tau_x=1.0) if p.name in c.inputs else p for p in c.populations)
        assert back == dataclasses.replace(c, populations=pops), c.name
        assert c.as_populations() is c
    # a DAG comes back with its projections in vertex order and its weightless skip named '<post>.skip.<pre>':
    # the same circuit, which on the same parameters relaxes the same
    c = _dag()
    g = c.as_graph()
    back = g.as_populations()
    assert {p.name for p in back.projections} == {p.name for p in c.projections} - {"skip"} | {"out.skip.h"}
    a = ns.Simulator(c, backend="reference", seed=0)
    b = ns.Simulator(back, backend="reference", seed=0)
    b.load_weights(ng.population_weights(g, {k: v for k, v in a.weights.items()}))
    X, Y = np.random.default_rng(1).normal(size=(3, 4)), np.random.default_rng(2).normal(size=(3, 3))
    ra, rb = a.run(X, Y, steps=6), b.run(X, Y, steps=6)
    for k in ra.x:
        np.testing.assert_allclose(rb.x[k], ra.x[k], rtol=0, atol=TOL)


@pytest.mark.parametrize("kind", ["mlp", "residual"])
@pytest.mark.parametrize("algorithm", ["pc", "bp", "fpa", "zil"])
def test_population_form_of_a_dense_graph_has_its_numbers(kind, algorithm):
    """A graph of Input, Dense, Sum and Identity vertices (ng.mlp; ng.residual, whose Sum skips span two levels)
    in the population form, loaded with the graph's parameters (``population_weights``), relaxes and trains like
    the graph to rounding, for PC, backprop, FPA and Z-IL (levelled by each form its own way)."""
    g = ng.mlp([3, 5, 4, 2]) if kind == "mlp" else ng.residual(3, 4, 2, blocks=2)
    c = g.as_populations()
    assert not c.is_graph and c.name == g.name
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(6, g.n_input)), rng.normal(size=(6, g.n_output))
    a = ns.Simulator(g, backend="reference", seed=0)
    b = ns.Simulator(c, backend="reference", seed=0)
    b.load_weights(ng.population_weights(g, a.weights))
    ra, rb = a.run(X, Y, steps=8), b.run(X, Y, steps=8)
    for k in ra.x:
        np.testing.assert_allclose(rb.x[k], ra.x[k], rtol=0, atol=TOL)
    a.train(X, Y, epochs=2, batch_size=3, algorithm=algorithm, progress=False)
    b.train(X, Y, epochs=2, batch_size=3, algorithm=algorithm, progress=False)
    wa, w0 = ng.population_weights(g, a.weights), ns.Simulator(c, backend="reference", seed=0).weights
    assert set(wa) == set(b.weights)
    for k in wa:
        np.testing.assert_allclose(b.weights[k], wa[k], rtol=0, atol=1e-10)


def test_what_the_population_form_cannot_state_is_refused_with_the_vertex():
    with pytest.raises(ValueError, match=r"vertex 'conv1' is a Conv2d; the population form has dense projections"):
        ng.cnn(input_shape=(1, 4, 4), channels=(2,), n_out=2).as_populations()
    with pytest.raises(ValueError, match=r"parameter 'Wx' is shared by vertices \['h1', 'h2'\]"):
        ng.rnn(2, 3, 2, steps=2).as_populations()
    two_phis = ng.Graph([ng.Input("x", 2), ng.Dense("h", "x", 3), ng.Dense("a", "h", 2, phi="tanh"),
                         ng.Dense("y", ("h", "a"), 2, phi=("relu", "linear"))], "y", name="g2")
    with pytest.raises(ValueError, match=r"vertex 'h' feeds its children through two activations \('tanh' and "
                                         r"'relu'.*into 'y'\)"):
        two_phis.as_populations()
    scaled = ng.Graph([ng.Input("x", 2), ng.Dense("h", "x", 2), ng.Sum("y", ("h", "x"), (1.0, 2.0))], "y")
    with pytest.raises(ValueError, match=r"identity edge 'x' -> 'y' has coefficient 2.0"):
        scaled.as_populations()
    lr = ns.Hebbian(lr=0.5)
    mixed = ng.Graph([ng.Input("x", 2), ng.Dense("y", "x", 2)], "y", params=[ng.Param("y.b", plasticity=lr)])
    with pytest.raises(ValueError, match=r"bias 'y.b' of vertex 'y' learns with other settings than the weight 'y.W'"):
        mixed.as_populations()
    frozen_bias = ng.Graph([ng.Input("x", 2), ng.Dense("y", "x", 2)], "y", params=[ng.Param("y.b", plasticity=None)])
    (pr,) = frozen_bias.as_populations().projections
    assert pr.bias and pr.plasticity is not None and not pr.plasticity.learn_bias


def test_only_the_population_form_runs_spikes_and_the_refusal_says_how_to_get_it():
    """brian2's spiking network runs circuits stated as populations; a dense graph stated as vertices is refused
    with the way to its population form, which then runs there (and brian2 really ran)."""
    pytest.importorskip("brian2")
    g = ng.mlp([3, 4, 2])
    with pytest.raises(ns.UnsupportedError, match=r"circuit\.as_populations\(\)"):
        ns.Simulator(g, backend="brian2", backend_options={"mode": "spiking"})
    with pytest.raises(ns.UnsupportedError) as cnn_refusal:
        ns.Simulator(ng.cnn(input_shape=(1, 4, 4), channels=(2,), n_out=2), backend="brian2",
                     backend_options={"mode": "spiking"})
    assert "as_populations" not in str(cnn_refusal.value)
    sim = ns.Simulator(g.as_populations(), backend="brian2", backend_options={"mode": "spiking"}, seed=0)
    X = np.random.default_rng(0).normal(size=(2, 3))
    res = sim.run(X, steps=5)
    assert np.all(np.isfinite(res.x["output"])) and sim.backend.checkpoint_state()["n_runs"] >= 1


def test_signal_site_refusal_on_a_dense_graph_names_its_population_form():
    """Transforms on the signal sites need the layered event engine: refused for a graph stated as vertices, with
    the way to its population form, which runs them."""
    from neurosim import hardware as hw
    model = hw.HardwareModel(values=[hw.Quantize(4, bound=2.0)])
    with pytest.raises(ns.UnsupportedError, match=r"signal sites.*as_populations\(\)"):
        ns.Simulator(ng.mlp([3, 4, 2]), backend="reference", hardware=model)
    sim = ns.Simulator(ng.mlp([3, 4, 2]).as_populations(), backend="reference", hardware=model)
    X, Y = np.random.default_rng(0).normal(size=(2, 3)), np.zeros((2, 2))
    sim.learn(X, Y, steps=5)
    assert sim.hardware.counts.synaptic_ops > 0


@pytest.mark.parametrize("name", ["dag", "dag-per-unit"])
@pytest.mark.parametrize("algorithm", ["pc", "bp"])
def test_brian2s_graph_network_takes_per_unit_precisions_and_error_dynamics(name, algorithm):
    """brian2's graph network on the DAG (per-unit precisions, an error population with tau_eps > 0, which bp
    ignores: its errors are a backward pass) gives the layered reference's update directions."""
    pytest.importorskip("brian2")
    a, b, X, Y = _pair(name, "brian2")
    da, db = a.directions(X, Y, algorithm, steps=8), b.directions(X, Y, algorithm, steps=8)
    for k in da:
        _close(db[k], da[k], k)


@pytest.mark.parametrize("name", ["mlp", "mupc"])
def test_fpa_takes_the_same_default_steps_on_both_forms(name):
    """FPA's default n is the number of weight layers on the longest path on both forms, so with eta < 1 (where
    the step count matters) both forms give the same directions and steps."""
    a, b, X, Y = _pair(name)
    da, db = a.directions(X, Y, "fpa", {"eta": 0.5}), b.directions(X, Y, "fpa", {"eta": 0.5})
    for k in da:
        _close(db[k], da[k], k)
    assert a.step(X, Y, "fpa", {"eta": 0.5}).steps == b.step(X, Y, "fpa", {"eta": 0.5}).steps
