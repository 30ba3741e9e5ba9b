"""Event-driven (send-on-delta) engine: threshold 0 reproduces the clock-driven simulator, event counts are
exact on a hand-checked circuit, the numba kernel matches its NumPy twin, and unsupported features are
refused when the wrapper is built."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import neurosim as ns
from neurosim import hardware as hw
from neurosim.errors import UnsupportedError

BACKENDS = ["reference", "numba"]
TOL = 1e-12


def close(a, b, what, tol=TOL):
    a, b = np.asarray(a, float), np.asarray(b, float)
    assert a.shape == b.shape, f"{what}: {a.shape} vs {b.shape}"
    err = float(np.max(np.abs(a - b))) if a.size else 0.0
    assert err <= tol * max(1.0, float(np.max(np.abs(b))) if b.size else 1.0), f"{what}: max diff {err:.3e}"


def graph_circuit(tau_eps=0.0):
    """Two inputs, a direct input->output projection, a multiplier and biases: a DAG, not a chain."""
    pops = (ns.ValuePopulation("a", 4, "linear"), ns.ValuePopulation("c", 3, "linear"),
            ns.ValuePopulation("h", 5, "tanh"), ns.ValuePopulation("o", 2, "linear"))
    errs = (ns.ErrorPopulation("eh", "h", tau_eps, 1.0), ns.ErrorPopulation("eo", "o", tau_eps, 2.0))
    projs = (ns.Projection("P1", "a", "h", bias=True, plasticity=ns.Hebbian(lr=0.1)),
             ns.Projection("P2", "c", "h", multiplier=0.5, plasticity=ns.Hebbian(lr=0.1)),
             ns.Projection("P3", "h", "o", bias=True, plasticity=ns.Hebbian(lr=0.1, optimizer=ns.Adam())),
             ns.Projection("P4", "a", "o", plasticity=ns.Hebbian(lr=0.1)))
    clamps = (ns.Clamp("a", "input"), ns.Clamp("c", "input"), ns.Clamp("o", "target"))
    return ns.Circuit(pops, errs, projs, clamps, (), "graph")


CASES = {
    "chain-tanh-clamp": (lambda: ns.hierarchy([5, 4, 3, 2], phi="tanh", lr=0.1, optimizer=ns.SGD(momentum=0.9),
                                              precision=1.5), dict(mode="clamp", steps=25)),
    "chain-sigmoid-nudge": (lambda: ns.hierarchy([5, 4, 2], phi="sigmoid", lr=0.1, optimizer=ns.SGD()), dict(mode="nudge", beta=0.5,
                                                                                           steps=25)),
    "chain-relu-tau_eps-tol": (lambda: ns.hierarchy([5, 6, 2], phi="relu", tau_eps=0.5, lr=0.1, optimizer=ns.SGD()),
                               dict(mode="clamp", steps=60, tol=1e-3)),
    "chain-dt_decay-zeros": (lambda: ns.hierarchy([5, 4, 2], phi="tanh", lr=0.1, optimizer=ns.SGD()),
                             dict(mode="clamp", steps=25, dt_decay=0.5, init="zeros")),
    "graph-clamp": (graph_circuit, dict(mode="clamp", steps=25)),
    "graph-tau_eps-free": (lambda: graph_circuit(0.5), dict(mode="free", steps=25)),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_threshold_zero_equals_clock_driven(backend, case):
    make, kw = CASES[case]
    rng = np.random.default_rng(7)
    net = make()
    plain = ns.Simulator(net, backend=backend, seed=3, dt=0.05)
    chip = ns.Simulator(net, backend=backend, seed=3, dt=0.05, hardware=hw.HardwareModel(coding="event", threshold=0.0))
    assert chip.hardware.engine is not None and chip.hardware.engine.name == backend
    n_in = plain.plan.n_input
    learn = kw["mode"] != "free"
    for _ in range(3):  # three batches: the weights change in between
        X = rng.normal(size=(6, n_in))
        Y = rng.normal(size=(6, plain.plan.n_target)) if learn else None
        r1 = plain.run(X, Y, learn=learn, **kw)
        r2 = chip.run(X, Y, learn=learn, **kw)
        assert r1.steps == r2.steps
        close(r2.energy, r1.energy, "energy")
        close(r2.y0, r1.y0, "y0")
        for n in r1.populations:
            close(r2.x[n], r1.x[n], f"x[{n}]")
            close(r2.mu[n], r1.mu[n], f"mu[{n}]")
            close(r2.eps[n], r1.eps[n], f"eps[{n}]")
        for k, W in plain.weights.items():
            close(chip.weights[k], W, k)


@pytest.mark.parametrize("backend", BACKENDS)
def test_threshold_zero_training_and_previous_init_equal_clock_driven(backend):
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(40, 6)), np.eye(3)[rng.integers(0, 3, 40)]
    net = ns.hierarchy([6, 5, 4, 3], phi="tanh", lr=0.05, optimizer=ns.SGD(momentum=0.9))
    plain = ns.Simulator(net, backend=backend, seed=1)
    chip = ns.Simulator(net, backend=backend, seed=1, hardware=hw.HardwareModel(coding="event"))
    h1 = plain.train(X, Y, epochs=2, batch_size=8, steps=15, progress=False)
    h2 = chip.train(X, Y, epochs=2, batch_size=8, steps=15, progress=False)
    close(h2["loss"], h1["loss"], "loss")
    close(h2["energy"], h1["energy"], "energy")
    for k, W in plain.weights.items():
        close(chip.weights[k], W, k)
    # warm starts: the engine rebuilds the receivers' currents from what was sent (weights changed)
    for _ in range(3):
        r1 = plain.run(X[:8], Y[:8], steps=10, mode="clamp", init="previous", learn=True)
        r2 = chip.run(X[:8], Y[:8], steps=10, mode="clamp", init="previous", learn=True)
        close(r2.energy, r1.energy, "energy (previous)")
        assert r2.events_init[:, 0].sum() > 0
    for k, W in plain.weights.items():
        close(chip.weights[k], W, k)


def chain_111(backend, theta):
    """input -> h -> out, all linear, W1 = W2 = 1, no bias, dt = 0.5 (worked out by hand below)."""
    chip = ns.Simulator(ns.hierarchy([1, 1, 1], phi="linear", bias=False), backend=backend, dt=0.5,
                        hardware=hw.HardwareModel(coding="event", threshold=theta))
    chip.set_weights("W1", W=[[1.0]])
    chip.set_weights("W2", W=[[1.0]])
    return chip.run([[1.0]], [[0.0]], steps=6, mode="clamp")


@pytest.mark.parametrize("backend", BACKENDS)
def test_event_counts_hand_checked(backend):
    """Input s = 1, output clamped to 0.  Sweep: the input sends 1 (1 SOP on W1), h = mu = 1 sends 1 (1 SOP
    on W2); the output has no outgoing projection, the error of h feeds back only into the clamped input, so
    only the output error sends.

    theta = 0: eval 0: eps_out = 0 - 1 = -1 -> one error event (1 SOP on W2^T); dx_h = -0 + (-1) -> h = 0.5.
    eval 1: h sends -0.5, mu_out = 0.5, eps_out = -0.5 (error event), eps_h = -0.5, fb = -0.5 -> dx_h = 0:
    the fixed point h = 0.5; nothing changes afterwards.

    theta = 0.6: eval 1: |0.5 - 1| <= 0.6, no event, fb stays -1 -> h = 0.25; eval 2: |0.25 - 1| = 0.75 > 0.6
    -> value event, mu_out = 0.25, eps_out = -0.25, |-0.25 + 1| = 0.75 -> error event, fb = -0.25 -> h = 0.5;
    then dx_h = (1 - h) - 0.25 never lets h move 0.6 from 0.25 again: h = 0.625, 0.6875, 0.71875 (-> 0.75).
    """
    r = chain_111(backend, 0.0)
    assert r.events_init.tolist() == [[1, 0], [1, 0], [0, 0]]
    assert r.events[:, :, 0].sum(axis=1).tolist() == [0, 1, 0, 0, 0, 0, 0]
    assert r.events[:, :, 1].sum(axis=1).tolist() == [1, 1, 0, 0, 0, 0, 0]
    assert r.sops.tolist() == [[1, 0], [2, 2]]
    assert r.x["h1"][0, 0] == 0.5
    r = chain_111(backend, 0.6)
    assert r.events_init.tolist() == [[1, 0], [1, 0], [0, 0]]
    assert r.events[:, :, 0].sum(axis=1).tolist() == [0, 0, 1, 0, 0, 0, 0]
    assert r.events[:, :, 1].sum(axis=1).tolist() == [1, 0, 1, 0, 0, 0, 0]
    assert r.sops.tolist() == [[1, 0], [2, 2]]
    assert r.x["h1"][0, 0] == 0.71875
    assert r.counts.events == 5 and r.counts.synaptic_ops == 5


def test_synaptic_ops_are_events_times_fan_out_and_twins_agree():
    """Every value event of a unit costs n_post SOPs per outgoing projection, every error event n_pre per
    feedback projection; numba and NumPy engines send the same events with deterministic substrate effects."""
    rng = np.random.default_rng(1)
    X, Y = rng.uniform(0, 1, size=(8, 6)), np.eye(3)[rng.integers(0, 3, 8)]
    model = hw.HardwareModel(values=[hw.Mismatch(0.1), hw.Quantize(6, bound=1.0)], errors=[hw.Quantize(8, bound=2.0)],
                             dac=[hw.Converter(8, 1.0)], adc=[hw.Converter(10, 8.0)],
                             reads=[hw.Mismatch(0.05, per="synapse"), hw.Drift(0.05)],
                             weights=[hw.Quantize(6, bound=1.0), hw.StuckAt(0.05, 0.05)],
                             updates=[hw.AsymmetricUpdate(1.0, 0.8, soft_bounds=True)], coding="event",
                             threshold=0.02, error_threshold=0.01, seconds_per_batch=10.0)
    out = {}
    for backend in BACKENDS:
        chip = ns.Simulator(ns.hierarchy([6, 8, 3], phi="tanh", lr=0.1, optimizer=ns.SGD()), backend=backend,
                            seed=2, hardware=model)
        runs = [chip.run(X, Y, steps=12, mode="clamp", learn=True) for _ in range(3)]
        r = runs[-1]
        p = chip.plan
        ev = r.events.sum(axis=0) + r.events_init
        for k in range(p.n_proj):
            n_post, n_pre = p.weight_shape(k)
            assert r.sops[k, 0] == ev[p.proj_pre[k], 0] * n_post
            fb = p.pop_role[p.proj_pre[k]] != 0
            assert r.sops[k, 1] == (ev[p.proj_post[k], 1] * n_pre if fb else 0)
        out[backend] = (chip.weights, [x.energy for x in runs], [x.events for x in runs])
    (wa, ea, va), (wb, eb, vb) = out["reference"], out["numba"]
    for k in wa:
        close(wb[k], wa[k], k)
    for a, b in zip(ea, eb):
        close(b, a, "energy")
    for a, b in zip(va, vb):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_traffic_falls_and_error_grows_with_threshold(backend):
    """Fixed weights, one clamped relaxation: events fall monotonically with the threshold while the
    distance to the clock-driven state grows (the accuracy-for-traffic trade)."""
    rng = np.random.default_rng(3)
    X, Y = rng.uniform(0, 1, size=(16, 10)), np.eye(4)[rng.integers(0, 4, 16)]
    net = ns.hierarchy([10, 12, 4], phi="tanh")
    ref = None
    events, errors = [], []
    for theta in [0.0, 0.001, 0.01, 0.05, 0.2]:
        chip = ns.Simulator(net, backend=backend, seed=0, hardware=hw.HardwareModel(coding="event", threshold=theta))
        r = chip.run(X, Y, steps=40, mode="clamp")
        ref = ref or r
        events.append(int(r.events.sum() + r.events_init.sum()))
        errors.append(max(float(np.max(np.abs(r.x[n] - ref.x[n]))) for n in r.populations))
    assert all(a > b for a, b in zip(events, events[1:])), events
    assert errors[0] == 0.0 and all(a <= b for a, b in zip(errors, errors[1:])) and errors[-1] > 1e-3, errors
    clock = hw.count_pc(net, steps=40, batch_size=16, learn=False).events
    assert events[0] < clock  # even at threshold 0 unchanged units (the clamped input) stay silent


def test_unsupported_features_are_refused_at_build_time():
    event = hw.HardwareModel(coding="event")
    skip = ns.hierarchy([4, 4, 4], skips=[False, True], lr=0.01, optimizer=ns.SGD())
    net = ns.hierarchy([4, 3, 2])
    with pytest.raises(UnsupportedError, match="integrator"):
        ns.Simulator(net, backend="reference", integrator="heun", hardware=event)
    with pytest.raises(UnsupportedError, match="float32"):
        ns.Simulator(net, backend="reference", dtype="float32", hardware=event)
    with pytest.raises(UnsupportedError, match="probes"):
        ns.Simulator(net, backend="reference", probes=[ns.Probe("h1", "x")], hardware=event)
    with pytest.raises(UnsupportedError, match="backend 'brian2'"):
        from neurosim.hardware.engine import make_engine
        make_engine("brian2", ns.lower(net))
    chip = ns.Simulator(net, backend="reference", hardware=event)
    with pytest.raises(UnsupportedError, match="backprop"):
        chip.train(np.zeros((2, 4)), np.zeros((2, 2)), algorithm="bp", progress=False)
    # the ideal path has no engine and runs whatever the backend runs (here Heun and skips)
    plain = ns.Simulator(skip, backend="reference", integrator="heun",
                         hardware=hw.HardwareModel(weights=[hw.Quantize(8, bound=2.0)]))
    assert plain.hardware.engine is None
    plain.run(np.ones((2, 4)), np.ones((2, 4)), steps=3, mode="clamp", learn=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_input_is_refused_clearly_on_the_event_engine(backend):
    """The wrapper's own input paths (run, train, evaluate on the event engine) refuse complex, empty and
    NaN/inf data with the argument and the fix named, before anything runs."""
    import warnings
    net = ns.hierarchy([4, 3, 2], lr=0.01, optimizer=ns.SGD())
    chip = ns.Simulator(net, backend=backend, seed=0, hardware=hw.HardwareModel(coding="event"))
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(5, 4)), rng.normal(size=(5, 2))
    w0 = chip.weights
    bad = [((X + 0j, Y), r"X(_test)? holds complex numbers .*np\.real"),
           ((X[:0], Y[:0]), r"X(_test)? has no samples \(shape \(0, 4\)\); pass at least one row"),
           ((X, np.where(Y > 0, np.nan, Y)), r"Y(_test)? contains NaN or inf .*remove or impute")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for (Xb, Yb), match in bad:
            for call in (lambda: chip.run(Xb, Yb, steps=3), lambda: chip.evaluate(Xb, Yb),
                         lambda: chip.train(Xb, Yb, epochs=1, progress=False),
                         lambda: chip.train(X, Y, epochs=1, X_test=Xb, Y_test=Yb, progress=False)):
                with pytest.raises(ValueError, match=match):
                    call()
    assert chip.history["loss"] == [] and chip.hardware.counts.samples == 0
    for k, W in w0.items():
        np.testing.assert_array_equal(chip.weights[k], W)
    assert chip.predict(X[:0]).shape == (0, 2)


def test_reset_keeps_the_chip_reinitialize_starts_over():
    """reset() clears the network state (also the event engine's) and keeps the stored weights, device clock,
    counts and history; reinitialize() programs the initial weights again and clears everything else."""
    net = ns.hierarchy([4, 3, 2], lr=0.05, optimizer=ns.SGD())
    chip = ns.Simulator(net, backend="reference", seed=0, hardware=hw.HardwareModel(coding="event"))
    w0 = chip.weights
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(8, 4)), rng.normal(size=(8, 2))
    chip.train(X, Y, epochs=2, batch_size=4, steps=5, progress=False)
    w, counts, n = chip.weights, chip.hardware.counts, len(chip.history["loss"])
    assert chip.hardware.engine.state is not None and not np.allclose(w["W1"], w0["W1"])
    chip.reset()
    assert chip.hardware.engine.state is None and chip.state == {}
    assert chip.hardware.counts == counts and len(chip.history["loss"]) == n
    for k in w:
        np.testing.assert_array_equal(chip.weights[k], w[k])
    chip.reinitialize()
    assert chip.hardware.counts == hw.OpCounts() and chip.history["loss"] == [] and chip.hardware.time == 0.0
    for k in w0:
        np.testing.assert_array_equal(chip.weights[k], w0[k])


# ----------------------------------------------------------------------------- identity skip projections
def skip_dag():
    """Two inputs -> h (tanh) -> g (sigmoid) -> out, a long-range projection a -> out, an identity skip h -> out
    and a skip-only path h -> z (identity, no weights) -> out, so that z's mu is its skip current alone."""
    pl = ns.Hebbian(lr=0.05, optimizer=ns.SGD())
    pops = (ns.ValuePopulation("a", 2), ns.ValuePopulation("b", 2), ns.ValuePopulation("h", 3, phi="tanh"),
            ns.ValuePopulation("g", 3, phi="sigmoid"), ns.ValuePopulation("z", 3, phi="tanh"),
            ns.ValuePopulation("out", 3))
    errs = (ns.ErrorPopulation("eh", "h"), ns.ErrorPopulation("eg", "g"), ns.ErrorPopulation("ez", "z"),
            ns.ErrorPopulation("eo", "out", precision=1.5))
    projs = (ns.Projection("Wah", "a", "h", bias=True, plasticity=pl), ns.Projection("Wbh", "b", "h", plasticity=pl),
             ns.Projection("Whg", "h", "g", bias=True, plasticity=pl),
             ns.Projection("Shz", "h", "z", skip=True, weights=False),
             ns.Projection("Wgo", "g", "out", plasticity=pl), ns.Projection("Wzo", "z", "out", plasticity=pl),
             ns.Projection("Wao", "a", "out", multiplier=0.7, plasticity=pl),
             ns.Projection("Sho", "h", "out", skip=True, weights=False))
    clamps = (ns.Clamp("a", "input"), ns.Clamp("b", "input"), ns.Clamp("out", "target"))
    return ns.Circuit(pops, errs, projs, clamps, name="skipdag")


SKIP_CIRCUITS = {
    "dag": skip_dag,
    "mupc": lambda: ns.mupc.residual_network(3, 4, 2, 3, phi="tanh", lr=0.05, optimizer=ns.SGD()),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(SKIP_CIRCUITS))
def test_skips_threshold_zero_equal_the_reference_relaxation(backend, name):
    """Identity skips are event-coded (x-channel forward, error events fed back one-to-one): with threshold 0
    and no noise the engine is the plain reference relaxation, in every mode, when training and on warm
    starts (init="previous")."""
    net = SKIP_CIRCUITS[name]()
    plain = ns.Simulator(net, backend="reference", seed=3, dt=0.1)
    chip = ns.Simulator(net, backend=backend, seed=3, dt=0.1, hardware=hw.HardwareModel(coding="event", threshold=0.0))
    assert chip.hardware.engine is not None
    rng = np.random.default_rng(5)
    n_in, n_out = plain.plan.n_input, plain.plan.n_target
    for mode, kw, init in [("clamp", {}, "feedforward"), ("nudge", {"beta": 0.5}, "feedforward"),
                           ("clamp", {}, "previous"), ("free", {}, "feedforward"), ("clamp", {"tol": 1e-3}, "zeros")]:
        X, Y = rng.normal(size=(5, n_in)), rng.normal(size=(5, n_out))
        learn = mode != "free"
        r1 = plain.run(X, Y if learn else None, steps=12, mode=mode, init=init, learn=learn, **kw)
        r2 = chip.run(X, Y if learn else None, steps=12, mode=mode, init=init, learn=learn, **kw)
        assert r1.steps == r2.steps
        close(r2.energy, r1.energy, "energy", 1e-10)
        for n in r1.populations:
            close(r2.x[n], r1.x[n], f"x[{n}] ({mode}, {init})", 1e-10)
            close(r2.mu[n], r1.mu[n], f"mu[{n}]", 1e-10)
        for k, W in plain.weights.items():
            close(chip.weights[k], W, k, 1e-10)
    X, Y = rng.normal(size=(12, n_in)), rng.normal(size=(12, n_out))
    h1 = plain.train(X, Y, epochs=2, batch_size=4, steps=8, progress=False)
    h2 = chip.train(X, Y, epochs=2, batch_size=4, steps=8, progress=False)
    close(h2["loss"], h1["loss"], "loss", 1e-10)
    for k, W in plain.weights.items():
        close(chip.weights[k], W, k, 1e-10)


def test_skip_events_and_ops_are_counted_and_twins_agree():
    """Every x event of a skip's pre population is one op on the skip (forward), every error event of its post
    population one op (feedback, when pre is not an input); they are synaptic ops without weight reads or
    conversions.  numba and NumPy engines send the same events (deterministic substrate effects)."""
    rng = np.random.default_rng(1)
    model = hw.HardwareModel(values=[hw.Quantize(6, bound=1.0)], adc=[hw.Converter(10, 8.0)], coding="event",
                             threshold=0.01, error_threshold=0.005)
    out = {}
    for backend in BACKENDS:
        chip = ns.Simulator(skip_dag(), backend=backend, seed=2, hardware=model)
        p = chip.plan
        X, Y = rng.normal(size=(6, p.n_input)), rng.normal(size=(6, p.n_target))
        rng = np.random.default_rng(1)
        runs = [chip.run(X, Y, steps=12, mode="clamp", learn=True) for _ in range(3)]
        r = runs[-1]
        eng = chip.hardware.engine
        ev = r.events.sum(axis=0) + r.events_init
        x_events = {}
        for k in range(p.n_proj):
            if p.proj_skip[k]:
                pre, post = p.proj_pre[k], p.proj_post[k]
                assert eng.has_out[pre]   # h sends phi(h) events and x events: both in the value column
                x_events[pre] = r.skip_ops[k, 0]
                assert r.skip_ops[k, 1] == ev[post, 1] and r.skip_ops[k, 1] > 0
            else:
                assert r.skip_ops[k].tolist() == [0, 0]
        h = p.pop_names.index("h")
        phi_events = r.sops[p.proj_names.index("Whg"), 0] // 3
        assert ev[h, 0] == phi_events + x_events[h]
        c = hw.count_events(p, r, 6)
        assert c.synaptic_ops == r.sops.sum() + r.skip_ops.sum() and c.weight_reads == r.sops.sum()
        assert r.counts.synaptic_ops == c.synaptic_ops
        out[backend] = (chip.weights, [x.energy for x in runs], [x.events for x in runs], r.skip_ops)
    (wa, ea, va, sa), (wb, eb, vb, sb) = out["reference"], out["numba"]
    for k in wa:
        close(wb[k], wa[k], k, 1e-8)
    for a, b in zip(ea, eb):
        close(b, a, "energy", 1e-8)
    for a, b in zip(va, vb):
        assert np.array_equal(a, b)
    assert np.array_equal(sa, sb)


@pytest.mark.parametrize("name", sorted(SKIP_CIRCUITS))
def test_skip_circuits_event_and_read_noise_twins_agree(name):
    """numba engine == NumPy engine with skips: event coding to 1e-8; read noise (different random streams)
    to the order of the noise, and the noise really acts."""
    net = SKIP_CIRCUITS[name]()
    rng = np.random.default_rng(2)
    p = ns.lower(net)
    X, Y = rng.normal(size=(8, p.n_input)), 0.5 * rng.normal(size=(8, p.n_target))
    for model, tol in [(hw.HardwareModel(coding="event", threshold=0.01), 1e-8),
                       (hw.HardwareModel(reads=[hw.AdditiveNoise(0.01)], seed=3), 1e-2)]:
        res = {}
        for backend in BACKENDS:
            chip = ns.Simulator(net, backend=backend, seed=0, dt=0.1, hardware=model)
            h = chip.train(X, Y, epochs=2, batch_size=4, steps=6, progress=False)
            res[backend] = ({**chip.weights, "loss": np.array(h["loss"])})
        for k in res["reference"]:
            if k != "loss" or tol < 1e-2:   # under read noise the loss of a batch is as noisy as its reads
                close(res["numba"][k], res["reference"][k], f"{k} ({model.coding})", tol)
    plain = ns.Simulator(net, backend="reference", seed=0, dt=0.1)
    plain.train(X, Y, epochs=2, batch_size=4, steps=6, progress=False)
    assert max(float(np.max(np.abs(plain.weights[k] - res["reference"][k]))) for k in plain.weights) > 1e-6


@pytest.mark.parametrize("name", sorted(SKIP_CIRCUITS))
def test_hw_backprop_with_skips_without_transforms_is_backprop(name):
    from neurosim.algorithms.backprop import gradients
    from neurosim.hardware.bp import hw_gradients
    rng = np.random.default_rng(0)
    sim = ns.Simulator(SKIP_CIRCUITS[name](), backend="reference", seed=0)
    X, Y = rng.normal(size=(6, sim.plan.n_input)), rng.normal(size=(6, sim.plan.n_target))
    dev = hw.Device(hw.HardwareModel(), sim.plan)
    l1, y1, g1, b1 = gradients(sim.backend, X, Y)
    l2, y2, g2, b2 = hw_gradients(sim.plan, sim.backend.W, sim.backend.b, X, Y, dev.tables(), dev.read_sigmas,
                                  np.random.default_rng(0))
    assert abs(l1 - l2) < 1e-12 and np.allclose(y1, y2, atol=1e-12)
    assert sorted(g1) == sorted(g2)
    for k in g1:
        close(g2[k], g1[k], f"gW {k}", 1e-12)
    for k in b1:
        close(b2[k], b1[k], f"gb {k}", 1e-12)


def test_the_event_kernels_cache_name_follows_every_source_it_is_compiled_from(monkeypatch):
    """numba checks only a cached kernel's own file: the event kernel (and site_array) carry a digest of every
    source they are compiled from in their names -- an edit of a callee's module (activations, _common) or of a
    module whose constants they read (tables, nonideal, ...) gives another name, so new cache files, never a stale
    kernel -- and the functions they call are not cached on their own (a stale callee could be linked in)."""
    from pathlib import Path

    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher

    import neurosim.backends.numba.activations as activations
    import neurosim.backends.numba._common as common
    import neurosim.backends.tables as tables
    import neurosim.hardware.nonideal as nonideal
    from neurosim.backends.numba import _specialise
    from neurosim.hardware import kernel as K
    mods = tuple(sys.modules[m] for m in K._CONSTANT_MODULES)
    for f in (K.event_kernel, K.site_array):
        name = f.py_func.__name__
        assert f.py_func.__qualname__ == f"{name}__{_specialise._sources_digest(f.py_func, mods)}"
        assert isinstance(f._cache, NullCache) is not K.CACHE     # cached on disk (unless NEUROSIM_NUMBA_CACHE=0)
    real = _specialise._sources_digest(K.event_kernel.py_func, mods)
    read = Path.read_bytes
    for edited in (activations, common, tables, nonideal, K):
        monkeypatch.setattr(_specialise, "_DIGESTS", {})
        monkeypatch.setattr(Path, "read_bytes", lambda p, e=Path(edited.__file__): read(p) + (b"#" if p == e else b""))
        assert _specialise._sources_digest(K.event_kernel.py_func, mods) != real, edited.__name__
    monkeypatch.setattr(Path, "read_bytes", read)
    inner = [n for n, v in vars(K).items() if isinstance(v, CPUDispatcher) and v.py_func.__module__ == K.__name__
             and v not in (K.event_kernel, K.site_array)]
    assert len(inner) >= 10
    assert all(isinstance(getattr(K, n)._cache, NullCache) for n in inner), inner
