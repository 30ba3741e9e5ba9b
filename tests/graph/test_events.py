"""Event (send-on-delta) coding of graph circuits (``neurosim.graph.events``) on the reference and numba backends.

Oracles: the clock-driven relaxation (threshold 0 sends every change, so the two agree to rounding), hand counts
of events and synaptic operations on a 2-3-2 graph, the fan-in and fan-out of a convolution and of pooling
counted by hand, the direction of effect of the threshold (fewer events, a small deviation), and the NumPy
statement for the numba kernels (same events, states to rounding)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import neurosim as ns
from neurosim import graph as ng
from neurosim import hardware as hw
from neurosim.graph.base import ALG_PC, ParamState, Schedule
from neurosim.graph.events import edge_fans
from neurosim.graph.reference import run_reference

KINDS = {
    "cnn": lambda: ng.cnn(input_shape=(1, 4, 4), channels=(2,), n_out=2, phi="tanh"),
    "rnn": lambda: ng.rnn(2, 3, 2, steps=3),
    "lstm": lambda: ng.lstm(2, 3, 2, steps=2),
    "residual": lambda: ng.residual(3, 4, 2, blocks=2),
}


def _data(plan, B=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, plan.n_input)), rng.normal(size=(B, plan.n_target))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_threshold_zero_is_the_clock_driven_relaxation(kind):
    """With both thresholds 0 every change is sent: state, energies and update directions equal the clock-driven
    relaxation's, with nudging and error-unit dynamics too."""
    g = KINDS[kind]()
    p = ng.lower_graph(g, seed=0)
    X, Y = _data(p)
    for sch in (Schedule(ALG_PC, 6, 0.1, True, True), Schedule(ALG_PC, 6, 0.1, False, False, beta=0.5)):
        a = run_reference(p, ParamState(p, np.float64), X, Y, sch)
        b = run_reference(p, ParamState(p, np.float64), X, Y, dataclasses.replace(sch, ev_values=0.0, ev_errors=0.0))
        for what in ("x", "eps", "mu", "energy", "directions"):
            np.testing.assert_allclose(getattr(b, what), getattr(a, what), rtol=0, atol=1e-12, err_msg=what)
        assert a.events is None and b.events.shape == (7, p.n_vertices, 2) and b.events.sum() > 0


def test_events_and_synaptic_ops_counted_by_hand():
    """x (2) -> h (3) -> out (2), one item, clamped output, one step at threshold 0.  Evaluation 0: x sends its 2
    units (2 x 3 = 6 ops on x->h), h its 3 (3 x 2 = 6 ops on h->out); before the step out sends its 2 errors back
    (2 x 3 = 6 ops on h->out; h has only an input parent, so it sends no errors).  Evaluation 1: x is unchanged,
    h moved (3 events, 6 ops).  out has no children: it never sends values."""
    g = ng.Graph([ng.Input("x", 2), ng.Dense("h", "x", 3, phi="linear"), ng.Dense("out", "h", 2, phi="tanh")], "out")
    p = ng.lower_graph(g, seed=0)
    X, Y = np.array([[0.5, -1.0]]), np.array([[0.3, 0.2]])
    r = run_reference(p, ParamState(p, np.float64), X, Y, Schedule(ALG_PC, 1, 0.1, True, False, ev_values=0.0,
                                                                   ev_errors=0.0))
    ix, ih, io = (p.v_names.index(n) for n in ("x", "h", "out"))
    ev = r.events
    assert ev[0, ix].tolist() == [2, 0] and ev[0, ih].tolist() == [3, 0] and ev[0, io].tolist() == [0, 2]
    assert ev[1, ix].tolist() == [0, 0] and ev[1, ih].tolist() == [3, 0] and ev[1, io].tolist() == [0, 0]
    e_xh = next(e for e, f in enumerate(edge_fans(p)) if f[0] == ih)
    e_ho = next(e for e, f in enumerate(edge_fans(p)) if f[0] == io)
    assert r.sops[e_xh].tolist() == [6.0, 0.0] and r.sops[e_ho].tolist() == [12.0, 6.0]


def test_fan_out_and_fan_in_of_convolution_and_pooling():
    """A 3x3 kernel with padding 1 on a 3x3 image: a corner pixel feeds 4 (position, tap) pairs, an edge pixel 6,
    the centre 9, and an output reads as many taps inside the image; with 2 output channels the fan-out doubles.
    Pooling 2x2 with stride 1 on 3x3: the centre is in 4 windows; a max pool's error goes to one unit, an average
    pool's to its 4."""
    g = ng.Graph([ng.Input("x", (1, 3, 3)), ng.Conv2d("c", "x", 2, kernel=3, padding=1),
                  ng.Pool("pm", "c", size=2, stride=1, kind="max"), ng.Pool("pa", "c", size=2, stride=1, kind="avg"),
                  ng.Sum("s", ("pm", "pa")), ng.Dense("out", "s", 1)], "out")
    p = ng.lower_graph(g, seed=0)
    fans = {(p.v_names[f[1]], p.v_names[f[0]]): f for f in edge_fans(p)}
    _, _, fo, fi = fans[("x", "c")]
    assert fo.reshape(3, 3).tolist() == [[8, 12, 8], [12, 18, 12], [8, 12, 8]]
    assert fi.reshape(2, 3, 3)[0].tolist() == [[4, 6, 4], [6, 9, 6], [4, 6, 4]]
    _, _, fo, fi = fans[("c", "pm")]
    assert fo.reshape(2, 3, 3)[0].tolist() == [[1, 2, 1], [2, 4, 2], [1, 2, 1]] and set(fi.tolist()) == {1}
    assert set(fans[("c", "pa")][3].tolist()) == {4}
    assert set(fans[("pm", "s")][2].tolist()) == {1}


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_a_threshold_sends_fewer_events_and_stays_close(kind):
    """A threshold of 0.05 cuts the events by at least a third and moves the result by less than 0.1."""
    g = KINDS[kind]()
    p = ng.lower_graph(g, seed=0)
    X, Y = _data(p)
    sch = Schedule(ALG_PC, 8, 0.1, True, True, ev_values=0.0, ev_errors=0.0)
    a = run_reference(p, ParamState(p, np.float64), X, Y, sch)
    b = run_reference(p, ParamState(p, np.float64), X, Y, dataclasses.replace(sch, ev_values=0.05, ev_errors=0.05))
    assert b.events.sum() < 2 / 3 * a.events.sum() and b.sops.sum() < a.sops.sum()
    assert 0 < np.max(np.abs(b.x - a.x)) < 0.1 and np.max(np.abs(b.directions - a.directions)) < 0.1


def test_hardware_event_coding_trains_a_cnn_and_counts_the_events():
    """``Simulator(cnn, hardware=HardwareModel(coding='event'))`` on the reference backend: at threshold 0 it
    trains as the plain simulator; the substrate's counts are the engine's events and operations."""
    g = KINDS["cnn"]()
    p = ng.lower_graph(g)
    X, Y = _data(p, B=4)
    chip = ns.Simulator(g, backend="reference", seed=0, hardware=hw.HardwareModel(coding="event", threshold=0.0))
    plain = ns.Simulator(g, backend="reference", seed=0)
    chip.train(X, Y, epochs=2, batch_size=2, steps=5, progress=False)
    plain.train(X, Y, epochs=2, batch_size=2, steps=5, progress=False)
    for k, w in plain.weights.items():
        np.testing.assert_allclose(chip.weights[k], w, rtol=0, atol=1e-12)
    last = chip.backend.last_events
    assert chip.hardware.last_counts.events == last.events.sum() > 0
    assert chip.hardware.last_counts.synaptic_ops == last.sops.sum()
    r = chip.run(X, Y, steps=3)   # the run's result holds the events per vertex and step, the ops per edge
    assert r.events.shape == (4, p.n_vertices, 2) and r.sops.shape == (p.EI.shape[0], 2)
    assert r.events.sum() == r.counts.events
    sparse = ns.Simulator(g, backend="reference", seed=0, hardware=hw.HardwareModel(coding="event", threshold=0.05))
    sparse.train(X, Y, epochs=2, batch_size=2, steps=5, progress=False)
    assert sparse.hardware.counts.events < chip.hardware.counts.events


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_numba_kernels_event_code_as_the_reference(kind):
    """The numba graph kernels send the same events as the NumPy statement (counts within 1%: a unit whose change
    lies within rounding of the threshold may go either way) and reach the same state (1e-12 at threshold 0)."""
    from neurosim.graph.numba_engine import NumbaGraphEngine
    g = KINDS[kind]()
    p = ng.lower_graph(g, seed=0)
    X, Y = _data(p)
    eng = NumbaGraphEngine()
    for th, tol in ((0.0, 1e-12), (0.05, 1e-6)):
        sch = Schedule(ALG_PC, 6, 0.1, True, True, ev_values=th, ev_errors=th)
        a = run_reference(p, ParamState(p, np.float64), X, Y, sch)
        b = eng.run(p, ParamState(p, np.float64), X, Y, sch)
        assert abs(int(b.events.sum()) - int(a.events.sum())) <= 0.01 * a.events.sum()
        np.testing.assert_allclose(b.sops, a.sops, rtol=0.01)
        np.testing.assert_allclose(b.edge_events, a.edge_events, rtol=0.01)
        if np.array_equal(a.events, b.events):   # the same events: the same arithmetic up to rounding
            np.testing.assert_allclose(b.x, a.x, rtol=0, atol=tol)
            np.testing.assert_allclose(b.directions, a.directions, rtol=0, atol=tol)
    chip = ns.Simulator(g, backend="numba", seed=0, hardware=hw.HardwareModel(coding="event", threshold=0.0))
    ref = ns.Simulator(g, backend="reference", seed=0, hardware=hw.HardwareModel(coding="event", threshold=0.0))
    for sim in (chip, ref):
        sim.train(X, Y, epochs=1, batch_size=3, steps=4, progress=False)
    for k, w in ref.weights.items():
        np.testing.assert_allclose(chip.weights[k], w, rtol=0, atol=1e-10)
    assert chip.hardware.counts.events == pytest.approx(ref.hardware.counts.events, rel=0.01)
    assert ref.hardware.counts.events > 0


def test_event_coding_of_graphs_is_refused_where_it_does_not_run():
    g = KINDS["rnn"]()
    model = hw.HardwareModel(coding="event", threshold=0.01)
    with pytest.raises(ns.UnsupportedError, match=r"takes Euler steps, not integrator 'heun'"):
        ns.Simulator(g, backend="reference", hardware=model, integrator="heun")
    chip = ns.Simulator(g, backend="reference", hardware=model)
    X, Y = _data(ng.lower_graph(g), B=2)
    with pytest.raises(ns.UnsupportedError, match="event"):
        chip.train(X, Y, epochs=1, algorithm="bp", progress=False)
