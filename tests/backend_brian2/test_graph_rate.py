"""Graph circuits (CNN, RNN, LSTM, residual) on the brian2 backend in rate mode, against the graph reference.

Every test runs the same graph and seed on ``backend="reference"`` (the NumPy statement of the equations) and on
``backend="brian2"`` (:mod:`neurosim.backends.brian2.graph`), compares to 1e-6 relative (as the composability
matrix does; the Heun tests to 1e-9) and checks that brian2 really ran (its run counter advanced: no silent host
fallback).
"""
from __future__ import annotations

import numpy as np
import pytest

import neurosim as ns

pytest.importorskip("brian2")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TOL = 1e-6
B2 = {"backend": "brian2", "backend_options": {"mode": "rate"}}


def _graph(kind, **kw):
    g = ns.graph
    if kind == "cnn":
        return g.cnn(input_shape=(1, 4, 4), channels=(2,), kernel=3, n_out=2, phi="tanh", **kw)
    if kind == "cnn_avg":   # average pooling, channel biases on an explicit Act vertex, stride 2 without padding
        return g.Graph([g.Input("input", (1, 5, 5)),
                        g.Conv2d("conv1", "input", 2, kernel=3, stride=2, padding=0, bias="bc"),
                        g.Act("act1", "conv1", "tanh"),
                        g.Pool("pool1", "act1", size=2, stride=1, kind="avg"),
                        g.Dense("output", "pool1", 2, phi="sigmoid")], "output", name="cnn_avg")
    if kind == "rnn":
        return g.rnn(2, 3, 2, steps=2, **kw)
    if kind == "lstm":
        return g.lstm(2, 3, 2, steps=2, **kw)
    if kind == "residual":
        return g.residual(3, 4, 2, blocks=2, **kw)
    raise KeyError(kind)


def _data(g, B=4):
    p = ns.graph.lower_graph(g, seed=0)
    rng = np.random.default_rng(7)
    return rng.normal(size=(B, p.n_input)), 0.5 * rng.normal(size=(B, p.n_target))


def _pair(g, **kw):
    ref = ns.Simulator(g, dt=0.1, seed=0, backend="reference", **kw)
    b2 = ns.Simulator(g, dt=0.1, seed=0, **B2, **kw)
    return ref, b2


def _runs(sim):
    return int(sim.backend.checkpoint_state()["n_runs"])


def _close(a, b, what="", tol=TOL):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape, what
    assert np.all(np.isfinite(a)), what
    scale = max(1.0, float(np.max(np.abs(b))) if b.size else 1.0)
    err = float(np.max(np.abs(a - b))) if a.size else 0.0
    assert err <= tol * scale, f"{what}: brian2 differs from the reference by {err:.3g}"


def _same_run(r1, r2, tol=TOL):
    _close(r2.energy, r1.energy, "energy", tol)
    for k in r1.x:
        _close(r2.x[k], r1.x[k], f"x[{k}]", tol)
        _close(r2.eps[k], r1.eps[k], f"eps[{k}]", tol)
    _close(r2.y0, r1.y0, "y0", tol)
    assert r2.steps == r1.steps


KINDS = ["cnn", "cnn_avg", "rnn", "lstm", "residual"]


@pytest.mark.parametrize("kind", KINDS)
def test_run_matches_reference(kind):
    g = _graph(kind)
    X, Y = _data(g)
    ref, b2 = _pair(g)
    r1 = ref.run(X, Y, steps=6)
    r2 = b2.run(X, Y, steps=6)
    _same_run(r1, r2)
    assert _runs(b2) == 1
    assert np.max(np.abs(r1.energy[-1] - r1.energy[0])) > 1e-6   # the relaxation moved


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
@pytest.mark.parametrize("settings", [dict(mode="nudge", beta=0.5), dict(mode="free"), dict(init="zeros"),
                                      dict(tol=0.3, steps=40), dict(dt_decay=0.5, steps=10)],
                         ids=["nudge", "free", "zeros", "tol", "dt_decay"])
def test_run_settings_match_reference(kind, settings):
    g = _graph(kind)
    X, Y = _data(g)
    ref, b2 = _pair(g)
    kw = {"steps": 6, **settings}
    r1 = ref.run(X, Y, **kw)
    r2 = b2.run(X, Y, **kw)
    _same_run(r1, r2)
    if "tol" in settings:
        assert r1.steps < 40   # stopped early, at the same step
    assert _runs(b2) == 1


def test_init_previous_matches_reference():
    g = _graph("rnn")
    X, Y = _data(g)
    ref, b2 = _pair(g)
    for sim in (ref, b2):
        sim.run(X, Y, steps=3)
    r1 = ref.run(X, Y, steps=3, init="previous")
    r2 = b2.run(X, Y, steps=3, init="previous")
    _same_run(r1, r2)


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_error_dynamics_and_probes_match_reference(kind):
    import dataclasses
    g = _graph(kind)
    g = dataclasses.replace(g, vertices=tuple(v if isinstance(v, ns.graph.Input) else
                                              dataclasses.replace(v, tau_eps=0.5) for v in g.vertices))
    target = "pool1" if kind == "cnn" else "h2"
    probes = [ns.Probe(target, "x", name="px"), ns.Probe(target, "eps", name="pe"), ns.Probe(target, "mu", name="pm")]
    X, Y = _data(g)
    ref, b2 = _pair(g, probes=probes)
    r1 = ref.run(X, Y, steps=5)
    r2 = b2.run(X, Y, steps=5)
    _same_run(r1, r2)
    for name in ("px", "pe", "pm"):
        assert ref.data[name].shape == b2.data[name].shape
        _close(b2.data[name], ref.data[name], name)


# strict and ipc on the CNN and the RNN here (the LSTM's are cells of the composability matrix, one epoch on the
# same network kind; each took 12 s more here)
@pytest.mark.parametrize("kind, algorithm", [(k, "pc") for k in KINDS] +
                         [(k, a) for a in ("strict", "ipc") for k in ("cnn", "rnn")])
def test_train_matches_reference(kind, algorithm):
    g = _graph(kind, plasticity=ns.Hebbian(lr=0.05, optimizer=ns.SGD())) if kind != "cnn_avg" else _graph(kind)
    X, Y = _data(g, B=6)
    ref, b2 = _pair(g)
    opts = {"options": {"eta": 0.05, "n": 5}} if algorithm == "strict" else {}
    h1 = ref.train(X, Y, epochs=2, batch_size=3, steps=4, progress=False, algorithm=algorithm, **opts)
    h2 = b2.train(X, Y, epochs=2, batch_size=3, steps=4, progress=False, algorithm=algorithm, **opts)
    w0 = ns.Simulator(g, dt=0.1, seed=0, backend="reference").weights
    moved = 0.0
    for k, w in ref.weights.items():
        _close(b2.weights[k], w, k)
        moved = max(moved, float(np.max(np.abs(w - w0[k]))))
    assert moved > 1e-4
    _close(h2["loss"], h1["loss"], "loss")
    assert _runs(b2) == 4


@pytest.mark.parametrize("optimizer", [ns.SGD(momentum=0.9), ns.Adam()], ids=["momentum", "adam"])
def test_optimizers_match_reference(optimizer):
    g = _graph("rnn", plasticity=ns.Hebbian(lr=0.01, optimizer=optimizer))
    X, Y = _data(g, B=6)
    ref, b2 = _pair(g)
    for sim in (ref, b2):
        sim.train(X, Y, epochs=2, batch_size=3, steps=4, progress=False)
    for k, w in ref.weights.items():
        _close(b2.weights[k], w, k)


def test_directions_match_reference():
    g = _graph("cnn")
    X, Y = _data(g)
    ref, b2 = _pair(g)
    d1 = ref.directions(X, Y, "pc", steps=5)
    d2 = b2.directions(X, Y, "pc", steps=5)
    for k in d1:
        _close(d2[k], d1[k], k)
    assert _runs(b2) == 1


def test_checkpoint_resume_equals_uninterrupted(tmp_path):
    g = _graph("lstm", plasticity=ns.Hebbian(lr=0.05, optimizer=ns.SGD()))
    X, Y = _data(g)
    path = tmp_path / "ck.npz"
    first = ns.Simulator(g, dt=0.1, seed=0, **B2)
    first.train(X, Y, epochs=1, batch_size=2, steps=4, progress=False, checkpoint=path)
    resumed = ns.Simulator(g, dt=0.1, seed=0, **B2)
    resumed.train(X, Y, epochs=2, batch_size=2, steps=4, progress=False, checkpoint=path)
    assert _runs(resumed) == 4   # continues the counter of the checkpoint
    whole = ns.Simulator(g, dt=0.1, seed=0, **B2)
    whole.train(X, Y, epochs=2, batch_size=2, steps=4, progress=False)
    for k, w in whole.weights.items():
        _close(resumed.weights[k], w, k)


def test_quantized_hardware_trains_like_reference():
    from neurosim import hardware as hw
    g = _graph("cnn")
    X, Y = _data(g)
    model = hw.HardwareModel(weights=[hw.Quantize(6, bound=2.0)])
    sims = [ns.Simulator(g, dt=0.1, seed=0, backend="reference", hardware=model),
            ns.Simulator(g, dt=0.1, seed=0, hardware=model, **B2)]
    for sim in sims:
        sim.train(X, Y, epochs=1, batch_size=4, steps=4, progress=False)
    for k, w in sims[0].weights.items():
        _close(sims[1].weights[k], w, k)
    assert _runs(sims[1]) == 1


HEUN_TOL = 1e-9
PROBE = {"cnn": "pool1", "rnn": "h2", "lstm": "h2"}


def _with_tau_eps(g, tau_eps):
    import dataclasses
    if not tau_eps:
        return g
    return dataclasses.replace(g, vertices=tuple(v if isinstance(v, ns.graph.Input) else
                                                 dataclasses.replace(v, tau_eps=tau_eps) for v in g.vertices))


@pytest.mark.parametrize("kind, tau_eps", [("cnn", 0.0), ("cnn", 0.5), ("rnn", 0.0), ("lstm", 0.5)],
                         ids=["cnn-eps_instant", "cnn-tau_eps", "rnn-eps_instant", "lstm-tau_eps"])
def test_heun_matches_reference_heun(kind, tau_eps):
    """integrator='heun': one Heun step is a predictor and a corrector brian2 time step (the corrector's inputs
    at the predicted state); runs with probes, nudged, stopped at tol, with dt_decay, and a training epoch equal
    the reference's Heun to 1e-9."""
    g = _with_tau_eps(_graph(kind, plasticity=ns.Hebbian(lr=0.05, optimizer=ns.SGD())), tau_eps)
    X, Y = _data(g, B=6)
    t = PROBE[kind]
    probes = [ns.Probe(t, "x", name="px"), ns.Probe(t, "eps", name="pe"), ns.Probe(t, "mu", name="pm")]
    ref, b2 = _pair(g, integrator="heun", probes=probes)
    r1, r2 = ref.run(X, Y, steps=5), b2.run(X, Y, steps=5)
    _same_run(r1, r2, HEUN_TOL)
    for name in ("px", "pe", "pm"):
        assert ref.data[name].shape == b2.data[name].shape and b2.data[name].shape[0] == 6   # steps 0..5
        _close(b2.data[name], ref.data[name], name, HEUN_TOL)
    nudge = dict(mode="nudge", beta=0.5)
    for kw in (dict(steps=6, **nudge), dict(steps=40, tol=0.3, **nudge), dict(steps=10, dt_decay=0.5, **nudge)):
        r1, r2 = ref.run(X, Y, **kw), b2.run(X, Y, **kw)
        _same_run(r1, r2, HEUN_TOL)
        if "tol" in kw:
            assert r1.steps < 40   # stopped early, at the same step
        if "dt_decay" in kw:   # the step size did decay
            r0 = ref.run(X, Y, steps=10, **nudge)
            assert np.max(np.abs(r0.energy - r1.energy)) > 1e-3
    w0 = ref.weights
    h1 = ref.train(X, Y, epochs=1, batch_size=3, steps=4, progress=False)
    h2 = b2.train(X, Y, epochs=1, batch_size=3, steps=4, progress=False)
    moved = 0.0
    for k, w in ref.weights.items():
        _close(b2.weights[k], w, k, HEUN_TOL)
        moved = max(moved, float(np.max(np.abs(w - w0[k]))))
    assert moved > 1e-4
    _close(h2["loss"], h1["loss"], "loss", HEUN_TOL)
    assert _runs(b2) == 6   # 4 runs, 2 training batches: all in brian2
    # not the Euler result: the two integrators differ by far more than the tolerance
    eul = ns.Simulator(g, dt=0.1, seed=0, backend="reference").run(X, Y, steps=5)
    heun = ns.Simulator(g, dt=0.1, seed=0, backend="reference", integrator="heun").run(X, Y, steps=5)
    assert np.max(np.abs(eul.energy - heun.energy)) > 1e-6


@pytest.mark.parametrize("algorithm", ["strict", "ipc"])
def test_heun_euler_only_algorithms_refused(algorithm):
    """strict and iPC take Euler steps on every graph backend: with Heun they are refused before brian2 runs."""
    g = _graph("rnn", plasticity=ns.Hebbian(lr=0.05, optimizer=ns.SGD()))
    X, Y = _data(g)
    sim = ns.Simulator(g, dt=0.1, seed=0, integrator="heun", **B2)
    with pytest.raises(ValueError, match="Euler"):
        sim.train(X, Y, epochs=1, batch_size=4, steps=4, progress=False, algorithm=algorithm)
    assert _runs(sim) == 0


def test_refused_at_build():
    g = _graph("rnn")
    with pytest.raises(ns.UnsupportedError, match="mode='rate'"):
        ns.Simulator(g, dt=0.1, seed=0, backend="brian2", backend_options={"mode": "spiking"})
    with pytest.raises(ns.UnsupportedError, match="mode='rate'"):
        ns.Simulator(g, dt=0.1, seed=0, backend="brian2", backend_options={"mode": "spiking"}, integrator="heun")
    sim = ns.Simulator(g, dt=0.1, seed=0, integrator="heun", **B2)   # Heun is no longer refused
    assert sim.backend.name == "brian2"


@pytest.mark.parametrize("kind, algorithm, options", [
    ("rnn", "fpa", {"eta": 0.3, "n": 4}), ("rnn", "zil", {"values": "all"}), ("rnn", "bp", {}),
    ("residual", "zil", {}), ("cnn_avg", "fpa", {})])
def test_exact_schedules_match_reference(kind, algorithm, options):
    """FPA (frozen feedforward predictions and Jacobians), Z-IL (each use's Hebbian term gated to its vertex's
    level, the residual graph levelled with identity vertices, wavefront or all values moving) and backprop (the
    FPA sweep with the step tau_x/precision) run in brian2: directions and two epochs of training equal the
    reference's, and brian2 ran every batch.  (The composability matrix runs fpa, zil and bp on the CNN, RNN and
    LSTM with the default options; these cases add the options, the levelled residual graph and average
    pooling.)"""
    g = _graph(kind, plasticity=ns.Hebbian(lr=0.05, optimizer=ns.SGD(momentum=0.9))) if kind != "cnn_avg" \
        else _graph(kind)
    X, Y = _data(g, B=6)
    ref, b2 = _pair(g)
    d1 = ref.directions(X, Y, algorithm, options)
    d2 = b2.directions(X, Y, algorithm, options)
    assert _runs(b2) == 1
    for k in d1:
        _close(d2[k], d1[k], f"direction {k}")
    assert max(float(np.max(np.abs(d))) for d in d1.values()) > 1e-3
    h1 = ref.train(X, Y, epochs=2, batch_size=3, progress=False, algorithm=algorithm, options=options)
    h2 = b2.train(X, Y, epochs=2, batch_size=3, progress=False, algorithm=algorithm, options=options)
    for k, w in ref.weights.items():
        _close(b2.weights[k], w, k)
    _close(h2["loss"], h1["loss"], "loss")
    assert _runs(b2) == 5


def test_bp_result_is_the_feedforward_pass_and_the_backpropagated_errors():
    """One bp batch on brian2 returns what the reference returns: the feedforward values, the backpropagated
    errors (the FPA sweep reaches them after `depth` steps), no relaxation steps and the output energy only."""
    g = _graph("lstm")
    X, Y = _data(g)
    ref, b2 = _pair(g)
    r1 = ref.step(X, Y, "bp")
    r2 = b2.step(X, Y, "bp")
    assert r1.steps == r2.steps == 0
    _close(r2.energy, r1.energy, "energy")
    _close(r2.y0, r1.y0, "y0")
    _, s1 = ref.directions(X, Y, "bp", result=True)
    _, s2 = b2.directions(X, Y, "bp", result=True)
    for what in ("x", "eps", "mu"):
        _close(getattr(s2, what), getattr(s1, what), what)


def test_zil_immediate_shared_updates_refused_with_the_reason():
    g = _graph("rnn")
    X, Y = _data(g)
    sim = ns.Simulator(g, dt=0.1, seed=0, **B2)
    w0 = sim.weights
    with pytest.raises(ns.UnsupportedError, match="shared_updates='deferred'.*'immediate'.*numba"):
        sim.train(X, Y, epochs=1, batch_size=4, progress=False, algorithm="zil",
                  options={"shared_updates": "immediate"})
    assert _runs(sim) == 0
    for k, w in w0.items():
        assert np.array_equal(sim.weights[k], w)


def test_per_read_noise_is_drawn_by_the_synapses_with_the_law_of_weight_noise():
    """Per-read noise of a hardware model runs in brian2's graph network: every weighted synapse reads its weight
    as w (1 + s_m z1) + s_a z2 with fresh normals, so a prediction over identical batch items has the standard
    deviation sqrt(sum_j (s_m^2 W_ij^2 + s_a^2) x_j^2) of per-weight noise (the law the graph kernels sample), its
    mean is the noiseless one, and a run is reproducible (brian2's generator is seeded per batch)."""
    from neurosim import hardware as hw
    g = ns.graph.Graph([ns.graph.Input("x", 5), ns.graph.Dense("y", "x", 3, bias=False)], "y")
    model = hw.HardwareModel(reads=[hw.MultiplicativeNoise(0.1), hw.AdditiveNoise(0.05)], seed=2)
    B = 3000
    X = np.tile([[0.5, -1.0, 2.0, 0.3, -0.7]], (B, 1))
    sim = ns.Simulator(g, seed=0, hardware=model, **B2)
    mu = sim.run(X, np.zeros((B, 3)), steps=1).mu["y"]
    W = sim.weights["y.W"]
    want = np.sqrt((0.1 ** 2 * W ** 2 + 0.05 ** 2) @ X[0] ** 2)
    assert np.all(np.abs(mu.std(axis=0) / want - 1) < 0.08), (mu.std(axis=0), want)
    assert np.all(np.abs(mu.mean(axis=0) - W @ X[0]) < 4 * want / np.sqrt(B))
    again = ns.Simulator(g, seed=0, hardware=model, **B2).run(X[:4], np.zeros((4, 3)), steps=3)
    np.random.seed(123)   # the caller's global NumPy state: a brian2 run draws from it, and restores it after
    expected = np.random.random()
    np.random.seed(123)
    first = ns.Simulator(g, seed=0, hardware=model, **B2).run(X[:4], np.zeros((4, 3)), steps=3)
    assert np.random.random() == expected
    np.testing.assert_array_equal(again.x["y"], first.x["y"])
    assert _runs(sim) == 1


@pytest.mark.parametrize("kind", ["rnn"])
def test_noisy_training_matches_the_reference_in_distribution(kind):
    """Training a graph on a chip with per-read noise in brian2 stays within the noise's order (1e-2) of the
    reference's noisy training (different draws) and moves away from the noiseless run."""
    from neurosim import hardware as hw
    g = _graph(kind, plasticity=ns.Hebbian(lr=0.05, optimizer=ns.SGD()))
    X, Y = _data(g, B=6)
    model = hw.HardwareModel(reads=[hw.AdditiveNoise(0.01)], seed=3)
    ref = ns.Simulator(g, dt=0.1, seed=0, backend="reference", hardware=model)
    b2 = ns.Simulator(g, dt=0.1, seed=0, hardware=model, **B2)
    quiet = ns.Simulator(g, dt=0.1, seed=0, **B2)
    for sim in (ref, b2, quiet):
        sim.train(X, Y, epochs=2, batch_size=3, steps=4, progress=False)
    assert _runs(b2) == 4
    for k, w in ref.weights.items():
        _close(b2.weights[k], w, k, tol=1e-2)
    assert max(float(np.max(np.abs(b2.weights[k] - quiet.weights[k]))) for k in quiet.weights) > 1e-6


@pytest.mark.parametrize("kind", ["cnn", "residual"])
def test_event_coding_sends_the_reference_events(kind):
    """Event coding in brian2's graph network (every group sends its values and errors on delta, the synapses read
    the sent copies): at threshold 0.05 the same events per vertex and step, synaptic operations per edge and
    states as the NumPy statement (neurosim.graph.events); at threshold 0 the states agree to rounding (the count
    may differ by the units whose change is rounding: brian2's synaptic sums and the host's feedforward start
    differ in the last bit, so their first errors are not exactly 0)."""
    from neurosim.backends.brian2.graph import GraphBrian2Backend
    from neurosim.graph.base import ALG_PC, ParamState, Schedule
    from neurosim.graph.reference import run_reference
    g = _graph(kind)
    p = ns.graph.lower_graph(g, seed=0)
    X, Y = _data(g, B=3)
    for th in (0.05, 0.0):
        sch = Schedule(ALG_PC, 6, 0.1, True, True, ev_values=th, ev_errors=th)
        a = run_reference(p, ParamState(p, np.float64), X, Y, sch)
        be = GraphBrian2Backend(p)
        b = be._engine_run(p, X, Y, sch, None, None, None)
        assert be.checkpoint_state()["n_runs"] == 1
        _close(b.x, a.x, "x", 1e-10)
        _close(b.directions, a.directions, "directions", 1e-10)
        if th > 0:
            assert abs(int(b.events.sum()) - int(a.events.sum())) <= 0.01 * a.events.sum()
            np.testing.assert_allclose(b.sops, a.sops, rtol=0.01)
        else:
            assert abs(int(b.events.sum()) - int(a.events.sum())) <= 0.05 * a.events.sum()


def test_event_coded_training_on_a_chip_matches_the_reference():
    """``Simulator(cnn, backend='brian2', hardware=HardwareModel(coding='event'))`` trains as the reference backend
    does under the same model, and counts events."""
    from neurosim import hardware as hw
    g = _graph("cnn", plasticity=ns.Hebbian(lr=0.05, optimizer=ns.SGD()))
    X, Y = _data(g, B=6)
    model = hw.HardwareModel(coding="event", threshold=0.02)
    ref = ns.Simulator(g, dt=0.1, seed=0, backend="reference", hardware=model)
    b2 = ns.Simulator(g, dt=0.1, seed=0, hardware=model, **B2)
    for sim in (ref, b2):
        sim.train(X, Y, epochs=2, batch_size=3, steps=4, progress=False)
    for k, w in ref.weights.items():
        _close(b2.weights[k], w, k)
    assert _runs(b2) == 4
    assert b2.hardware.counts.events == pytest.approx(ref.hardware.counts.events, rel=0.01)


def test_mapping_is_brian2():
    """The network is made of brian2 objects doing the arithmetic: one group per vertex and parameter, synapses
    for every edge, the maximum pooling as one Synapses object per window position."""
    import re

    import brian2 as b2
    g = _graph("cnn")
    X, Y = _data(g, B=2)
    sim = ns.Simulator(g, dt=0.1, seed=0, **B2)
    sim.run(X, Y, steps=1)
    (net,) = sim.backend._nets.values()
    p = sim.plan
    assert set(net.V) == set(range(p.n_vertices)) and set(net.P) == set(range(p.n_params))
    assert all(isinstance(v, b2.NeuronGroup) and len(v) == 2 * p.VI[i, 2] for i, v in net.V.items())
    pool = [o for o in net.net.objects if isinstance(o, b2.Synapses) and re.search(r"S\d+_\d+$", o.name)]
    assert len(pool) == 4   # 2 x 2 windows


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_float32_network_is_float32_and_matches_the_float64_reference(kind):
    """dtype='float32': every brian2 array of the graph network is float32 (brian2's float type is set while
    the network is built and runs, then restored), training agrees with the float64 reference to float32
    precision and is not the float64 result."""
    import brian2 as b2
    g = _graph(kind)
    X, Y = _data(g)
    b32 = ns.Simulator(g, dt=0.1, seed=0, dtype="float32", **B2)
    ref = ns.Simulator(g, dt=0.1, seed=0, backend="reference")
    b64 = ns.Simulator(g, dt=0.1, seed=0, **B2)
    for sim in (b32, ref, b64):
        sim.train(X, Y, epochs=1, batch_size=4, steps=4, progress=False)
    assert b2.prefs.core.default_float_dtype == np.float64
    net = next(iter(b32.backend._nets.values()))
    assert {str(V.x[:].dtype) for V in net.V.values()} == {"float32"}
    assert _runs(b32) == 1
    diff32 = max(np.max(np.abs(b32.weights[k] - w)) for k, w in ref.weights.items())
    diff64 = max(np.max(np.abs(b64.weights[k] - w)) for k, w in ref.weights.items())
    assert 0 < diff32 < 1e-5 and diff64 < 1e-12 < diff32
