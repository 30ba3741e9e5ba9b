"""Graph circuits (CNN, RNN, LSTM) on a modelled substrate: ``Simulator(graph, hardware=HardwareModel(...))``.

The device holds the weights and kernels of theta (biases are neuron parameters, stored exactly): initial
parameters are programmed through the ``weights`` site, every update is written through the device; frozen read
effects (Mismatch, Drift on ``reads``) make the kernel relax on the read parameters; per-read noise (AdditiveNoise,
MultiplicativeNoise on ``reads``) is drawn by the graph kernels at every read; operations are counted from the
graph's edges; what needs the event engine is refused when the simulator is built."""
from __future__ import annotations

import numpy as np
import pytest

import neurosim as ns
from neurosim import hardware as hw
from neurosim.errors import UnsupportedError
from neurosim.hardware.cost import GraphShape, count_pc

BACKENDS = ["reference", "numba"]
BITS, BOUND = 6, 2.0
QUANT = hw.HardwareModel(weights=[hw.Quantize(BITS, bound=BOUND)])
#: every write-path effect and frozen read effect with randomness or state: stochastic rounding of the update,
#: write noise, read mismatch and drift with a running device clock
NOISY = hw.HardwareModel(updates=[hw.Quantize(bits=None, bound=None, step=1e-3, rounding="stochastic")],
                         weights=[hw.Quantize(7, bound=2.0), hw.WriteNoise(0.01)],
                         reads=[hw.Mismatch(0.1, per="synapse"), hw.Drift(0.05)], seconds_per_batch=30.0, seed=3)


def _graph(kind):
    g = ns.graph
    if kind == "CNN":
        return g.cnn(input_shape=(1, 4, 4), channels=(2,), kernel=3, n_out=2, phi="tanh")
    if kind == "RNN":
        return g.rnn(2, 3, 2, steps=2)
    return g.lstm(2, 3, 2, steps=2)


def _data(sim, n=8, seed=7):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, sim.plan.n_input)), 0.5 * rng.normal(size=(n, sim.plan.n_target))


def _is_bias(graph, name):
    return graph.param_uses[name][0].role == "bias"


def _quantize(v):
    """Quantize(BITS, bound=BOUND) by hand: signed grid of 2^(BITS-1) - 1 levels per side, rounding half up."""
    L = 2 ** (BITS - 1) - 1
    step = BOUND / L
    return np.clip(np.floor(np.clip(v / step, -L, L) + 0.5), -L, L) * step


def _expected_after_write(graph, old, target):
    """What the device stores when the intended change ``target - old`` is written: written weights (non-zero
    change) quantised, others kept; biases exactly as the optimiser left them."""
    out = {}
    for name in old:
        if _is_bias(graph, name):
            out[name] = target[name]
        else:
            delta = target[name] - old[name]
            out[name] = np.where(delta != 0, _quantize(old[name] + delta), old[name])
    return out


@pytest.mark.parametrize("kind", ["CNN", "RNN", "LSTM"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_quantised_weights_equal_hand_quantisation_after_build_and_every_update(kind, backend):
    g = _graph(kind)
    chip = ns.Simulator(g, backend=backend, dt=0.1, hardware=QUANT)
    ideal = ns.Simulator(g, backend=backend, dt=0.1)
    theta0 = ideal.weights
    for name, w in chip.weights.items():   # programmed: weights quantised, biases (LSTM forget bias 1.0) exact
        want = theta0[name] if _is_bias(g, name) else _quantize(theta0[name])
        np.testing.assert_allclose(w, want, rtol=0, atol=1e-12, err_msg=name)
    assert any(not np.array_equal(chip.weights[n], theta0[n]) for n in theta0 if not _is_bias(g, n))
    X, Y = _data(chip)
    for i in range(3):
        # the ideal optimiser's target from the same stored weights and optimiser state
        be, ibe = chip.backend, ideal.backend
        for a in ("W", "mW", "vW", "opt_t"):
            getattr(ibe, a)[...] = getattr(be, a)
        old = chip.weights
        xb, yb = X[2 * i:2 * i + 4], Y[2 * i:2 * i + 4]
        chip.step(xb, yb, steps=4)
        ideal.step(xb, yb, steps=4)
        want = _expected_after_write(g, old, ideal.weights)
        for name, w in chip.weights.items():
            np.testing.assert_allclose(w, want[name], rtol=0, atol=1e-12, err_msg=f"update {i}: {name}")
        assert any(not np.array_equal(chip.weights[n], old[n]) for n in old)   # the updates were written


@pytest.mark.parametrize("kind", ["CNN", "LSTM"])
def test_reference_and_numba_substrates_agree(kind):
    g = _graph(kind)
    out = {}
    for backend in BACKENDS:
        sim = ns.Simulator(g, backend=backend, dt=0.1, hardware=QUANT)
        X, Y = _data(sim)
        h = sim.train(X, Y, epochs=2, batch_size=4, steps=4, progress=False)
        out[backend] = (sim.weights, np.array(h["loss"]), sim.hardware.counts)
    (wr, lr, cr), (wn, ln, cn) = out["reference"], out["numba"]
    for name in wr:
        np.testing.assert_allclose(wn[name], wr[name], rtol=0, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(ln, lr, rtol=1e-12, atol=1e-12)
    assert cn == cr


@pytest.mark.parametrize("kind", ["CNN", "RNN", "LSTM"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_model_with_everything_off_trains_bit_for_bit_like_the_plain_simulator(kind, backend):
    off = hw.HardwareModel(updates=[hw.Quantize(bits=None), hw.AsymmetricUpdate()],
                           weights=[hw.Quantize(bits=None), hw.WriteNoise(0.0), hw.StuckAt()],
                           reads=[hw.Mismatch(0.0), hw.Drift(0.0)], seed=9)
    g = _graph(kind)
    chip = ns.Simulator(g, backend=backend, dt=0.1, hardware=off)
    plain = ns.Simulator(g, backend=backend, dt=0.1)
    X, Y = _data(plain)
    kw = dict(epochs=2, batch_size=4, steps=4, progress=False)
    hc, hp = chip.train(X, Y, **kw), plain.train(X, Y, **kw)
    assert hc["loss"] == hp["loss"]
    for name, w in plain.weights.items():
        assert np.array_equal(chip.weights[name], w), name
    assert chip.hardware.counts.batches == 4 and chip.hardware.counts.synaptic_ops > 0


def _kill_after(sim, n_calls):
    run, calls = sim.hardware.run_batch, [0]

    def run_batch(*args, **kwargs):
        calls[0] += 1
        if calls[0] == n_calls:
            raise KeyboardInterrupt
        return run(*args, **kwargs)
    sim.hardware.run_batch = run_batch


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_killed_graph_run_on_hardware_resumes_to_the_uninterrupted_numbers(tmp_path, backend):
    """Stochastic rounding and write-noise streams, device clock and write times (drift), operation counts all
    continue from the checkpoint (one code path: equal to rounding)."""
    g = _graph("RNN")
    kw = dict(batch_size=4, steps=4, progress=False)
    full = ns.Simulator(g, backend=backend, dt=0.1, seed=4, hardware=NOISY)
    X, Y = _data(full, n=12)
    full.train(X, Y, epochs=3, **kw)
    ck = tmp_path / "ck.npz"
    killed = ns.Simulator(g, backend=backend, dt=0.1, seed=4, hardware=NOISY)
    _kill_after(killed, 3 + 2)   # in epoch 2
    with pytest.raises(KeyboardInterrupt):
        killed.train(X, Y, epochs=3, checkpoint=ck, **kw)
    resumed = ns.Simulator(g, backend=backend, dt=0.1, seed=4, hardware=NOISY)
    resumed.train(X, Y, epochs=3, checkpoint=ck, **kw)
    assert resumed.history["loss"] == full.history["loss"]
    for name, w in full.weights.items():
        assert np.array_equal(resumed.weights[name], w), name
    assert resumed.hardware.time == full.hardware.time == 9 * 30.0
    assert resumed.hardware.counts == full.hardware.counts
    np.testing.assert_array_equal(resumed.hardware.device.t_write, full.hardware.device.t_write)


def test_reads_apply_frozen_mismatch_and_drift_and_the_kernel_relaxes_on_them():
    """``read_weights`` = stored weights x frozen gains x drift factor at the device time (biases left out);
    ``run`` equals the plain simulator holding the read weights; a learning step writes the intended change
    (moved read weights minus read weights) onto the stored weights."""
    g = _graph("CNN")
    model = hw.HardwareModel(reads=[hw.Mismatch(0.2, per="synapse"), hw.Drift(0.1)], seed=2)
    chip = ns.Simulator(g, backend="reference", dt=0.1, hardware=model)
    chip.hardware.advance(100.0)
    stored = chip.weights
    read = chip.read_weights()
    assert sorted(read) == sorted(n for n in stored if not _is_bias(g, n))
    dev = chip.hardware.device
    idx = chip.hardware._device_plan.index
    factor = dev.read_gain * dev.drift.factor(dev.nu, 100.0 - dev.t_write)
    theta = chip.backend.W.copy()
    theta[idx] = theta[idx] * factor
    for name in read:
        np.testing.assert_allclose(read[name], chip.plan.param_view(theta, chip.plan.proj_index(name)),
                                   rtol=1e-12, atol=1e-14)
        assert not np.allclose(read[name], stored[name])
    plain = ns.Simulator(g, backend="reference", dt=0.1)
    plain.load_weights({**stored, **read})
    X, Y = _data(chip, n=4)
    r_chip, r_plain = chip.run(X, Y, steps=4), plain.run(X, Y, steps=4)
    np.testing.assert_allclose(r_chip.energy, r_plain.energy, rtol=1e-12, atol=1e-14)
    chip.step(X, Y, steps=4)
    plain.step(X, Y, steps=4)
    moved = plain.weights
    for name, w in chip.weights.items():
        want = moved[name] if _is_bias(g, name) else stored[name] + (moved[name] - read[name])
        np.testing.assert_allclose(w, want, rtol=1e-12, atol=1e-14, err_msg=name)


def test_graph_operation_counts_follow_the_edges():
    """CNN (1, 4, 4) -> conv 2 channels 3x3 (padding 1) -> max pool 2 -> dense 2: per sample and pass
    P = 2*1*3*3*4*4 (conv) + 8 (pool, per unit) + 2*8 (dense); feedback skips the input edge; the update
    correlates the conv over its 16 positions; the kernel is fetched once per pass."""
    g = _graph("CNN")
    s = GraphShape.from_graph_plan(ns.graph.lower_graph(g))
    conv, pool, dense = 2 * 1 * 9 * 16, 8, 2 * 8
    assert (s.P, s.F, s.U) == (conv + pool + dense, pool + dense, conv + dense)
    assert (s.P_fetch, s.F_fetch, s.U_fetch, s.U_writes) == (18 + 16, 16, 18 + 16, 18 + 16)
    assert s.learned_bias_units == 2 + 2
    T, B = 4, 3
    c = count_pc(g, T, B)
    assert c.synaptic_ops == B * ((T + 1) * s.P + T * s.F)
    assert c.update_macs == B * s.U
    assert c.weight_reads == (T + 1) * s.P_fetch + T * s.F_fetch + s.U_fetch
    assert c.weight_writes == 18 + 16 + 4
    chip = ns.Simulator(g, backend="reference", dt=0.1, hardware=QUANT)
    X, Y = _data(chip, n=B)
    chip.learn(X, Y, steps=T)
    assert chip.hardware.counts == count_pc(s, T, B)
    chip.train(X, Y, epochs=1, batch_size=B, steps=T, algorithm="bp", progress=False)
    assert chip.hardware.last_counts.synaptic_ops == B * (s.P + s.F)


@pytest.mark.parametrize("model, words", [
    (hw.HardwareModel(values=[hw.Quantize(6)]), "signal sites ['values']"),
    (hw.HardwareModel(adc=[hw.Quantize(8, bound=4.0)], dac=[hw.Quantize(7)]), "signal sites ['dac', 'adc']"),
    (hw.HardwareModel(values=[hw.Quantize(6)], coding="event"), "signal sites ['values']"),
], ids=["values", "converters", "values-with-event-coding"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_what_needs_the_event_engine_is_refused_when_built(model, words, backend):
    with pytest.raises(UnsupportedError) as e:
        ns.Simulator(_graph("CNN"), backend=backend, hardware=model)
    msg = str(e.value)
    assert words in msg and "event-driven engine" in msg and "'cnn'" in msg


@pytest.mark.parametrize("backend", BACKENDS)
def test_event_coding_with_read_noise_trains_a_graph(backend):
    """Event coding and per-read noise compose on a graph (neurosim.graph.events): the noisy event-coded CNN trains,
    counts its events, and stays within the noise's order of the noiseless event-coded run."""
    model = hw.HardwareModel(reads=[hw.AdditiveNoise(0.01)], coding="event", threshold=0.01, seed=1)
    chip = ns.Simulator(_graph("CNN"), backend=backend, hardware=model)
    quiet = ns.Simulator(_graph("CNN"), backend=backend, hardware=hw.HardwareModel(coding="event", threshold=0.01))
    X, Y = _data(chip, n=4)
    for sim in (chip, quiet):
        sim.train(X, Y, epochs=1, batch_size=2, steps=4, progress=False)
    assert chip.hardware.counts.events > 0
    d = max(float(np.max(np.abs(chip.weights[k] - quiet.weights[k]))) for k in quiet.weights)
    assert 0 < d < 0.05


def test_other_backends_and_algorithms_are_refused_with_a_reason():
    with pytest.raises(UnsupportedError, match="cannot run circuits stated as vertices"):   # brian2 rate mode trains it
        ns.Simulator(_graph("CNN"), backend="brian2", hardware=QUANT, backend_options={"mode": "spiking"})
    chip = ns.Simulator(_graph("CNN"), backend="reference", hardware=QUANT)
    X, Y = _data(chip, n=4)
    with pytest.raises(UnsupportedError, match="algorithm 'pc' or 'bp'"):
        chip.train(X, Y, epochs=1, algorithm="fpa", progress=False)
    with pytest.raises(TypeError, match="HardwareModel"):
        ns.Simulator(_graph("CNN"), backend="reference", hardware="quantise")


def test_reinitialize_programs_the_initial_parameters_again():
    chip = ns.Simulator(_graph("LSTM"), backend="reference", dt=0.1, hardware=NOISY)
    w0 = chip.weights
    X, Y = _data(chip, n=4)
    chip.learn(X, Y, steps=3)
    assert chip.hardware.time == 30.0
    chip.reinitialize()
    assert chip.hardware.time == 0.0
    for name, w in chip.weights.items():
        assert np.array_equal(w, w0[name]), name


# ----------------------------------------------------------------------------- per-read noise
READ_NOISE = {
    "additive": hw.HardwareModel(reads=[hw.AdditiveNoise(0.01)], seed=3),
    "multiplicative+mismatch": hw.HardwareModel(reads=[hw.MultiplicativeNoise(0.05), hw.AdditiveNoise(0.005),
                                                       hw.Mismatch(0.1, per="synapse")], seed=4),
}


def _train(g, backend, model, algorithm="pc"):
    sim = ns.Simulator(g, backend=backend, dt=0.1, seed=0, hardware=model)
    X, Y = _data(sim, n=8)
    h = sim.train(X, Y, epochs=2, batch_size=4, steps=4, algorithm=algorithm, progress=False)
    return {**sim.weights, "loss": np.array(h["loss"])}


def _maxdiff(a, b):
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in b)


@pytest.mark.parametrize("kind", ["CNN", "RNN", "LSTM"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_read_noise_of_std_zero_is_the_noiseless_run(kind, backend):
    """A switched-off per-read noise runs the noiseless code path: the same numbers as no hardware at all."""
    g = _graph(kind)
    plain = _train(g, backend, None)
    off = _train(g, backend, hw.HardwareModel(reads=[hw.AdditiveNoise(0.0), hw.MultiplicativeNoise(0.0)], seed=3))
    for k in plain:
        assert np.array_equal(off[k], plain[k]), k


@pytest.mark.parametrize("algorithm", ["pc", "bp"])
@pytest.mark.parametrize("noise", sorted(READ_NOISE))
@pytest.mark.parametrize("kind", ["CNN", "RNN", "LSTM"])
def test_read_noise_on_graphs_acts_and_both_engines_draw_the_same(kind, noise, algorithm):
    """Per-read noise changes training (it acts), and the numba kernel draws the same counter-based stream as the
    NumPy reference in the same order, so the two agree to rounding (not only in distribution)."""
    g = _graph(kind)
    model = READ_NOISE[noise]
    ref = _train(g, "reference", model, algorithm)
    fast = _train(g, "numba", model, algorithm)
    assert _maxdiff(fast, ref) < 1e-10 * max(1.0, max(float(np.max(np.abs(v))) for v in ref.values()))
    quiet = _train(g, "reference", hw.HardwareModel(reads=[t for t in model.reads if isinstance(t, hw.Mismatch)],
                                                    seed=model.seed), algorithm)
    assert _maxdiff(ref, quiet) > 1e-6


def test_graph_read_noise_has_the_variance_of_per_read_weight_noise():
    """The noise of a dense vertex's read is that of per-read weights w (1 + s_m xi) + s_a zeta
    (:func:`~neurosim.hardware.nonideal.read_noise_std`, the layered engines' statement), and the feedback read
    W^T e likewise; a conv vertex reads each position independently with the same law."""
    from neurosim.graph.ops import ReadNoiseStream, vertex_forward, vertex_vjp
    from neurosim.hardware.nonideal import read_noise_std
    g = ns.graph.rnn(3, 4, 2, steps=1)
    p = ns.graph.lower_graph(g, seed=0)
    theta = p.theta0.copy()
    rng = np.random.default_rng(0)
    B = 40000
    X = np.repeat(rng.normal(size=(1, p.n_input)), B, axis=0)
    from neurosim.graph.reference import feedforward
    xs = feedforward(p, theta, X)
    sm, sa = 0.05, 0.02
    checked = 0
    for i in range(p.n_vertices):
        if i in set(p.inputs.tolist()):
            continue
        clean = vertex_forward(p, theta, xs, i)
        noisy = vertex_forward(p, theta, xs, i, (sm ** 2, sa ** 2, ReadNoiseStream(5)))
        d = noisy - clean
        if not np.any(d):
            continue
        # the expected std: sum over the vertex's weighted edges of the layered formula (variances add)
        VI, EI = p.VI, p.EI
        from neurosim.graph.plan import E_SCALE, EI_KIND, EI_PARAM, EI_PHI, EI_SRC, V_E0, V_E1
        from neurosim.activations import phi
        var = 0.0
        for e in range(VI[i, V_E0], VI[i, V_E1]):
            if EI[e, EI_KIND] == E_SCALE:
                continue
            a = phi(EI[e, EI_PHI], xs[EI[e, EI_SRC]][:1])
            W = p.param_view(theta, EI[e, EI_PARAM])
            var = var + (p.EF[e] * read_noise_std(a, W, sm, sa)) ** 2
        want = np.sqrt(var)[0]
        assert np.allclose(d.std(axis=0), want, rtol=0.03), (p.v_names[i], d.std(axis=0), want)
        assert np.all(np.abs(d.mean(axis=0)) < 4 * want / np.sqrt(B))
        e_i = np.repeat(rng.normal(size=(1, clean.shape[1])), B, axis=0)
        for (src, g0), (_, g1) in zip(vertex_vjp(p, theta, xs, i, e_i),
                                      vertex_vjp(p, theta, xs, i, e_i, (sm ** 2, sa ** 2, ReadNoiseStream(6)))):
            if np.any(g1 != g0):
                assert np.all(np.isfinite(g1))
        checked += 1
    assert checked >= 2


def test_counter_based_read_noise_stream_is_the_same_in_numpy_and_numba():
    from neurosim.graph.kernels import _read_normal
    from neurosim.graph.ops import ReadNoiseStream, read_normals
    z = read_normals(12345, 0, 200000)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1.0) < 0.01
    assert abs(np.mean(z ** 4) - 3.0) < 0.05            # Gaussian kurtosis
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < 0.01  # successive draws uncorrelated
    s = ReadNoiseStream(12345)
    assert np.array_equal(np.concatenate([s.standard_normal((3, 5)).ravel(), s.standard_normal(7)]), z[:22])
    rn = np.array([0.0, 0.0, 12345.0, 0.0])
    zn = np.array([_read_normal(rn) for _ in range(1000)])
    assert rn[3] == 1000.0
    assert np.allclose(zn, z[:1000], rtol=1e-13, atol=1e-13)
    assert not np.allclose(read_normals(12346, 0, 100), z[:100])


def test_event_coding_of_a_layered_circuit_on_brian2_points_to_its_vertex_form():
    """brian2's layered network has no event engine, its graph network event-codes: the refusal says how to get
    there, and following it trains with counted events (brian2 really ran)."""
    pytest.importorskip("brian2")
    model = hw.HardwareModel(coding="event", threshold=0.01)
    c = ns.hierarchy([3, 4, 2])
    with pytest.raises(UnsupportedError, match=r"no event-driven hardware engine.*circuit\.as_graph\(\), "
                                               r"backend='brian2'"):
        ns.Simulator(c, backend="brian2", hardware=model)
    with pytest.raises(UnsupportedError) as e:   # nothing to suggest when the model needs the layered engine
        ns.Simulator(c, backend="brian2", hardware=hw.HardwareModel(coding="event", values=[hw.Quantize(6)]))
    assert "as_graph" not in str(e.value)
    g = c.as_graph()
    chip = ns.Simulator(g, backend="brian2", hardware=model, seed=0)
    ref = ns.Simulator(g, backend="reference", hardware=model, seed=0)
    X = np.random.default_rng(0).normal(size=(4, 3))
    Y = np.random.default_rng(1).normal(size=(4, 2))
    for sim in (chip, ref):
        sim.train(X, Y, epochs=1, batch_size=2, steps=4, progress=False)
    for k, w in ref.weights.items():
        np.testing.assert_allclose(chip.weights[k], w, rtol=0, atol=1e-6)
    assert chip.hardware.counts.events > 0 and chip.backend.checkpoint_state()["n_runs"] == 2
