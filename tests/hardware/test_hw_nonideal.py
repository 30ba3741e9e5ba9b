"""Non-idealities: the statistics each transform promises (on the NumPy path and in the numba kernel's
elementwise code), what each does inside a run, and bit-identical ideal paths when they are switched off."""
from __future__ import annotations

import numpy as np
import pytest

import neurosim as ns
from neurosim import hardware as hw
from neurosim.hardware.nonideal import ELEMENTWISE_SITES

N = 200_000


def numba_apply(transforms, v, seed=0, patterns=None):
    """Run the numba kernel's elementwise code (site 'values') on an array."""
    from neurosim.hardware.kernel import site_array
    v = np.atleast_2d(np.asarray(v, dtype=float))
    n = v.shape[1]
    model = hw.HardwareModel(values=tuple(transforms))
    plan = ns.lower(ns.hierarchy([n, 1]))
    dev = hw.Device(model, plan)
    kinds, params, counts, mm = dev.tables()
    if patterns is not None:
        mm[0, :len(patterns), :n] = np.asarray(patterns)
    return site_array(v, np.arange(n, dtype=np.int64), 0, kinds, params, counts, mm, seed)


def both(transforms, v, seed=0):
    """The same transforms applied by the NumPy path and by the numba kernel code."""
    a = hw.apply_elementwise(transforms, v, rng=np.random.default_rng(seed))
    b = numba_apply(transforms, v, seed).reshape(np.shape(a))
    return a, b


# ------------------------------------------------------------------------------------------ quantisation
@pytest.mark.parametrize("bits, bound", [(2, 1.0), (4, 1.0), (8, 0.5)])
def test_nearest_rounding_error_at_most_half_a_step_and_range_clipped(bits, bound):
    q = hw.Quantize(bits, bound=bound)
    step = bound / (2 ** (bits - 1) - 1)
    assert q.grid() == (step, -(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1)
    v = np.random.default_rng(0).uniform(-1.5 * bound, 1.5 * bound, 5000)
    for out in both([q], v):
        inside = np.abs(v) <= bound
        assert np.max(np.abs(out[inside] - v[inside])) <= step / 2 + 1e-12
        k = out / step
        assert np.allclose(k, np.round(k), atol=1e-9)                 # on the grid
        assert np.all(np.abs(out) <= bound + 1e-12)                    # limited range
        assert np.allclose(out[v > bound], bound) and np.allclose(out[v < -bound], -bound)
    a, b = both([q], v)
    assert np.array_equal(a, b)


def test_unsigned_and_step_grids():
    q = hw.Quantize(3, bound=1.4, signed=False)
    v = np.array([-0.3, 0.05, 0.1, 0.74, 2.0])
    assert np.allclose(q.apply(v), [0.0, 0.0, 0.2, 0.8, 1.4])
    s = hw.Quantize(bits=None, step=0.25, bound=None)
    assert np.allclose(s.apply([-7.3, 0.12, 0.13, 100.0]), [-7.25, 0.0, 0.25, 100.0])


@pytest.mark.parametrize("value", [0.013, -0.37, 0.5])
def test_stochastic_rounding_unbiased_within_one_step(value):
    q = hw.Quantize(4, bound=1.0, rounding="stochastic")
    step = 1 / 7
    v = np.full(N, value)
    for out in both([q], v, seed=5):
        assert np.all(np.abs(out - v) < step)
        assert set(np.round(out / step).astype(int)) <= {int(np.floor(value / step)), int(np.ceil(value / step))}
        frac = value / step - np.floor(value / step)
        sd = step * np.sqrt(frac * (1 - frac) / N)  # std of the mean of N Bernoulli roundings
        assert abs(out.mean() - value) < 5 * sd + 1e-15
    with pytest.raises(ValueError, match="random generator"):
        q.apply(v)


# ------------------------------------------------------------------------------------------ noise
@pytest.mark.parametrize("std", [0.01, 0.3])
def test_additive_and_multiplicative_noise_have_the_configured_spread(std):
    v = np.full(N, 2.0)
    for out in both([hw.AdditiveNoise(std)], v, seed=1):
        assert abs((out - v).mean()) < 5 * std / np.sqrt(N)
        assert abs((out - v).std() / std - 1) < 0.02
    for out in both([hw.MultiplicativeNoise(std)], v, seed=2):
        r = out / v - 1
        assert abs(r.mean()) < 5 * std / np.sqrt(N)
        assert abs(r.std() / std - 1) < 0.02
    a1 = hw.apply_elementwise([hw.AdditiveNoise(std)], v, rng=np.random.default_rng(9))
    a2 = hw.apply_elementwise([hw.AdditiveNoise(std)], v, rng=np.random.default_rng(9))
    assert np.array_equal(a1, a2)  # seeded


def test_read_noise_is_the_exact_gaussian_of_per_weight_noise():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(3, 5))
    s = rng.normal(size=(1, 5))
    sm, sa = 0.1, 0.05
    draws = 40_000
    reads = ((W * (1 + sm * rng.standard_normal((draws, 3, 5))) + sa * rng.standard_normal((draws, 3, 5)))
             @ s[0])
    std = hw.read_noise_std(s, W, sm, sa)[0]
    assert np.allclose(reads.std(axis=0), std, rtol=0.02)
    assert np.allclose(reads.mean(axis=0), W @ s[0], atol=5 * std.max() / np.sqrt(draws))


@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_engine_read_noise_has_the_exact_variance(backend):
    """A feedforward read through noisy synapses: the spread of mu over identical samples matches
    sqrt(sm^2 sum w^2 s^2 + sa^2 sum s^2) of the sent activities."""
    net = ns.hierarchy([6, 3], bias=False)
    sm, sa = 0.2, 0.1
    chip = ns.Simulator(net, backend=backend, seed=0,
                        hardware=hw.HardwareModel(reads=[hw.MultiplicativeNoise(sm), hw.AdditiveNoise(sa)]))
    x = np.random.default_rng(1).uniform(-1, 1, size=6)
    y = chip.predict(np.tile(x, (20_000, 1)))
    expected = hw.read_noise_std(x[None, :], chip.weights["W1"], sm, sa)[0]
    assert np.allclose(y.std(axis=0), expected, rtol=0.03)
    assert np.allclose(y.mean(axis=0), chip.weights["W1"] @ x, atol=5 * expected.max() / np.sqrt(20_000))


# ------------------------------------------------------------------------------------------ mismatch
def test_mismatch_is_fixed_per_device_with_the_configured_spread():
    net = ns.hierarchy([200, 150, 10])
    plan = ns.lower(net)
    m = hw.HardwareModel(values=[hw.Mismatch(0.1)], reads=[hw.Mismatch(0.2, per="synapse"),
                                                           hw.Mismatch(0.05, per="neuron")], seed=4)
    d1, d2 = hw.Device(m, plan), hw.Device(m, plan)
    assert np.array_equal(d1.read_gain, d2.read_gain)                     # frozen: same seed, same chip
    assert not np.array_equal(d1.read_gain, hw.Device(hw.HardwareModel(reads=m.reads, seed=5), plan).read_gain)
    g = d1.site_patterns["values"][0]
    assert g.shape == (plan.n_units,) and abs(g.std() / 0.1 - 1) < 0.1 and abs(g.mean() - 1) < 0.02
    # reads: per-synapse gains times per-row gains; the per-row factor is shared along each row
    syn = hw.Device(hw.HardwareModel(reads=[hw.Mismatch(0.2, per="synapse")], seed=4), plan).read_gain
    row = hw.Device(hw.HardwareModel(reads=[hw.Mismatch(0.05, per="neuron")], seed=4), plan)
    rows = row.read_gain[: 150 * 200].reshape(150, 200)
    assert np.all(rows == rows[:, :1]) and abs(rows[:, 0].std() / 0.05 - 1) < 0.2
    assert abs(syn.std() / 0.2 - 1) < 0.03
    # the elementwise kernel code applies the same frozen gain
    v = np.random.default_rng(0).normal(size=(3, 20))
    out = numba_apply([hw.Mismatch(0.3)], v, patterns=[np.linspace(0.5, 1.5, 20)])
    assert np.allclose(out, v * np.linspace(0.5, 1.5, 20))
    off = hw.apply_elementwise([hw.Mismatch(0.3, kind="offset")], v, patterns=[np.arange(20.0)])
    assert np.allclose(off, v + np.arange(20.0))


def test_mismatch_gain_truncated_at_zero():
    g = hw.Mismatch(2.0).draw(10_000, np.random.default_rng(0))
    assert g.min() == 0.0 and (g == 0).mean() > 0.25


# ------------------------------------------------------------------------------------------ write path
def _device(weights=(), updates=(), reads=(), n=(40, 50)):
    plan = ns.lower(ns.hierarchy([n[0], n[1]]))
    return hw.Device(hw.HardwareModel(weights=weights, updates=updates, reads=reads, seed=1), plan), plan


def test_write_noise_spread_per_write_and_per_pulse():
    dev, plan = _device(weights=[hw.WriteNoise(0.01)])
    W0 = np.zeros(plan.W.size)
    target = W0.copy()
    target[::2] = 0.3          # only half of the weights are written
    W1, n = dev.write(W0, target, np.random.default_rng(0), now=0.0)
    assert n == target[::2].size
    assert np.array_equal(W1[1::2], W0[1::2])                       # unwritten weights untouched
    assert abs((W1[::2] - 0.3).std() / 0.01 - 1) < 0.1
    dev, plan = _device(weights=[hw.WriteNoise(0.02, dw_min=0.001)])
    W1, _ = dev.write(W0, W0 + 0.004, np.random.default_rng(1), now=0.0)   # 4 pulses each
    assert abs((W1 - 0.004).std() / (0.02 * 2) - 1) < 0.1


def test_asymmetric_and_soft_bounded_updates_follow_the_closed_form():
    t = hw.AsymmetricUpdate(up=1.2, down=0.5, w_min=-1.0, w_max=2.0, soft_bounds=True)
    w = np.array([0.0, 1.0, 1.5, -0.5, 0.5, 0.0])
    d = np.array([0.1, 0.1, -0.2, -0.2, 0.0, -0.1])
    expect = np.array([0.1 * 1.2 * 1.0, 0.1 * 1.2 * 0.5, -0.2 * 0.5 * 2.5, -0.2 * 0.5 * 0.5, 0.0, -0.1 * 0.5])
    assert np.allclose(t.apply_update(d, w), expect)
    hard = hw.AsymmetricUpdate(up=2.0, down=0.25)
    assert np.allclose(hard.apply_update(d, w), np.where(d > 0, 2 * d, 0.25 * d))
    # through a device: a quantised update (pulse granularity) then storage levels
    dev, plan = _device(updates=[hw.Quantize(bits=None, step=0.05, bound=None), hw.AsymmetricUpdate(1.0, 0.5)],
                        weights=[hw.Quantize(8, bound=1.0)])
    W0 = np.zeros(plan.W.size)
    target = np.full(plan.W.size, 0.03)
    target[:10] = -0.2
    W1, n = dev.write(W0, target, np.random.default_rng(0), now=0.0)
    step = 1 / 127
    assert np.allclose(W1[:10], np.round(-0.1 / step) * step) and np.allclose(W1[10:], np.round(0.05 / step) * step)
    assert n == plan.W.size


def test_stuck_at_faults_hit_the_configured_fraction_and_ignore_writes():
    dev, plan = _device(weights=[hw.StuckAt(p_low=0.03, p_high=0.07, low=-0.5, high=0.5)], n=(100, 100))
    nW = plan.W.size
    assert dev.stuck_mask.sum() == round(0.03 * nW) + round(0.07 * nW)
    assert (dev.stuck_value[dev.stuck_mask] == -0.5).sum() == round(0.03 * nW)
    assert (dev.stuck_value[dev.stuck_mask] == 0.5).sum() == round(0.07 * nW)
    W = dev.program(np.full(nW, 0.1), np.random.default_rng(0))
    assert np.all(W[dev.stuck_mask] == dev.stuck_value[dev.stuck_mask]) and np.all(W[~dev.stuck_mask] == 0.1)
    W2, n = dev.write(W, W + 0.2, np.random.default_rng(0), now=1.0)
    assert n == nW - dev.stuck_mask.sum()
    assert np.all(W2[dev.stuck_mask] == dev.stuck_value[dev.stuck_mask]) and np.allclose(W2[~dev.stuck_mask], 0.3)


def test_drift_follows_the_power_law_and_restarts_at_each_write():
    dev, plan = _device(reads=[hw.Drift(nu=0.05, t0=20.0)])
    W = np.ones(plan.W.size)
    assert np.array_equal(dev.read_weights(W, now=10.0), W)                     # before t0: as programmed
    assert np.allclose(dev.read_weights(W, now=2000.0), (2000.0 / 20.0) ** -0.05)
    half = np.arange(plan.W.size) % 2 == 0
    W2, _ = dev.write(W, np.where(half, 2.0, 1.0), np.random.default_rng(0), now=1000.0)
    r = dev.read_weights(W2, now=3000.0)
    assert np.allclose(r[half], 2.0 * (2000.0 / 20) ** -0.05) and np.allclose(r[~half], (3000.0 / 20) ** -0.05)
    spread = hw.Drift(nu=0.06, nu_std=0.01).draw(50_000, np.random.default_rng(0))
    assert abs(spread.mean() - 0.06) < 5e-4 and abs(spread.std() - 0.01) < 5e-4


@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_converters_put_sent_activities_and_read_currents_on_their_grids(backend):
    dac, adc = hw.Converter(5, 1.0), hw.Converter(6, 4.0)
    net = ns.hierarchy([8, 6, 3], phi="tanh")
    chip = ns.Simulator(net, backend=backend, seed=0, hardware=hw.HardwareModel(dac=[dac], adc=[adc]))
    X = np.random.default_rng(0).uniform(0, 1, size=(5, 8))
    r = chip.run(X, steps=5, mode="free")
    b = chip.weights
    for pop, bias in (("h1", b["W1.b"]), ("output", b["W2.b"])):
        k = (r.mu[pop] - bias) / adc.grid()[0]
        assert np.allclose(k, np.round(k), atol=1e-7) and np.all(np.abs(r.mu[pop] - bias) <= 4.0 + 1e-9)
    # the feedforward sweep, written out: ADC reads of crossbars driven through DACs
    qd = lambda v: hw.apply_elementwise([dac], v)  # noqa: E731
    qa = lambda v: hw.apply_elementwise([adc], v)  # noqa: E731
    h = qa(qd(X) @ b["W1"].T) + b["W1.b"]
    y = qa(qd(np.tanh(h)) @ b["W2"].T) + b["W2.b"]
    assert np.allclose(chip.predict(X), y, atol=1e-12)


# ------------------------------------------------------------------------------------------ off switches
OFF = {
    "values": [hw.Quantize(bits=None), hw.AdditiveNoise(0.0), hw.MultiplicativeNoise(0.0), hw.Mismatch(0.0)],
    "errors": [hw.AdditiveNoise(0.0), hw.Quantize(bits=None, step=None)],
    "dac": [hw.Quantize(bits=None)], "adc": [hw.MultiplicativeNoise(0.0)],
    "reads": [hw.Mismatch(0.0, per="synapse"), hw.AdditiveNoise(0.0), hw.MultiplicativeNoise(0.0), hw.Drift(0.0)],
    "updates": [hw.Quantize(bits=None), hw.AsymmetricUpdate(1.0, 1.0)],
    "weights": [hw.Quantize(bits=None), hw.WriteNoise(0.0), hw.StuckAt(0.0, 0.0)],
}


def test_every_switched_off_transform_leaves_arrays_bit_identical():
    v = np.random.default_rng(0).normal(size=(4, 7))
    for site in ELEMENTWISE_SITES:
        for t in OFF[site]:
            assert t.off
            assert np.array_equal(hw.apply_elementwise([t], v, rng=np.random.default_rng(0)), v)
    dev, plan = _device(weights=OFF["weights"], updates=OFF["updates"], reads=OFF["reads"])
    W = np.random.default_rng(1).normal(size=plan.W.size)
    target = W + np.random.default_rng(2).normal(size=plan.W.size) * 1e-3
    assert np.array_equal(dev.read_weights(W, now=1e6), W)
    assert np.array_equal(dev.write(W, target, np.random.default_rng(0), now=5.0)[0], target)
    assert np.array_equal(dev.program(W, np.random.default_rng(0)), W)


@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_switched_off_model_trains_bit_identically(backend):
    rng = np.random.default_rng(0)
    X, Y = rng.uniform(0, 1, size=(24, 8)), np.eye(3)[rng.integers(0, 3, 24)]
    net = ns.hierarchy([8, 6, 3], phi="tanh", lr=0.1, optimizer=ns.SGD(momentum=0.9))
    for alg in ("pc", "bp"):
        plain = ns.Simulator(net, backend=backend, seed=2)
        plain.train(X, Y, epochs=2, batch_size=8, steps=10, algorithm=alg, progress=False)
        chip = ns.Simulator(net, backend=backend, seed=2, hardware=hw.HardwareModel(**OFF))
        assert chip.hardware.engine is None
        chip.train(X, Y, epochs=2, batch_size=8, steps=10, algorithm=alg, progress=False)
        for k, W in plain.weights.items():
            assert np.array_equal(chip.weights[k], W), (alg, k)
    # on the event engine too: switched-off transforms change nothing, bit for bit
    runs = []
    for model in (hw.HardwareModel(coding="event"), hw.HardwareModel(coding="event", **OFF)):
        chip = ns.Simulator(net, backend=backend, seed=2, hardware=model)
        chip.train(X, Y, epochs=2, batch_size=8, steps=10, progress=False)
        runs.append((chip.weights, chip.hardware.counts))
    for k in runs[0][0]:
        assert np.array_equal(runs[0][0][k], runs[1][0][k])
    assert runs[0][1] == runs[1][1]


def test_hw_backprop_without_transforms_is_backprop():
    from neurosim.algorithms.backprop import gradients
    from neurosim.hardware.bp import hw_gradients
    rng = np.random.default_rng(0)
    net = ns.hierarchy([7, 5, 4, 3], phi="sigmoid", precision=1.0, output_precision=2.0)
    sim = ns.Simulator(net, backend="reference", seed=0)
    X, Y = rng.normal(size=(6, 7)), rng.normal(size=(6, 3))
    dev = hw.Device(hw.HardwareModel(), sim.plan)
    l1, y1, g1, b1 = gradients(sim.backend, X, Y)
    l2, y2, g2, b2 = hw_gradients(sim.plan, sim.backend.W, sim.backend.b, X, Y, dev.tables(), dev.read_sigmas,
                                  np.random.default_rng(0))
    assert abs(l1 - l2) < 1e-12 and np.allclose(y1, y2, atol=1e-12)
    for k in g1:
        assert np.allclose(g1[k], g2[k], atol=1e-12) and np.allclose(b1[k], b2[k], atol=1e-12)


def test_hardware_bp_and_pc_degrade_with_noise():
    """Direction of effect: strong read and activity noise costs both algorithms accuracy."""
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 10)) * 2
    lab = rng.integers(0, 3, 240)
    X = centers[lab] + 0.5 * rng.normal(size=(240, 10))
    Y = np.eye(3)[lab]
    acc = {}
    for alg in ("pc", "bp"):
        for s in (0.0, 1.0):
            model = hw.HardwareModel(reads=[hw.MultiplicativeNoise(s)], values=[hw.AdditiveNoise(s)])
            chip = ns.Simulator(ns.hierarchy([10, 8, 3], lr=0.05, optimizer=ns.SGD()), backend="numba", seed=0,
                                hardware=model)
            chip.train(X[:160], Y[:160], epochs=4, batch_size=16, steps=10, algorithm=alg, progress=False)
            acc[alg, s] = chip.evaluate(X[160:], Y[160:])["accuracy"]
    assert acc["pc", 0.0] > 0.9 and acc["bp", 0.0] > 0.9
    assert acc["pc", 1.0] < acc["pc", 0.0] - 0.05 and acc["bp", 1.0] < acc["bp", 0.0] - 0.05, acc


def test_bad_models_raise_naming_the_object():
    with pytest.raises(ValueError, match="cannot be applied at site 'values'"):
        hw.HardwareModel(values=[hw.StuckAt(0.1)])
    with pytest.raises(ValueError, match="per='synapse'"):
        hw.HardwareModel(values=[hw.Mismatch(0.1, per="synapse")])
    with pytest.raises(ValueError, match=r"Quantize\(bits=1"):
        hw.Quantize(1)
    with pytest.raises(ValueError, match="rounding"):
        hw.Quantize(4, rounding="up")
    with pytest.raises(ValueError, match="std must be >= 0"):
        hw.AdditiveNoise(-1.0)
    with pytest.raises(ValueError, match="coding='event'"):
        hw.HardwareModel(threshold=0.1)
    with pytest.raises(ValueError, match="p_low \\+ p_high"):
        hw.StuckAt(0.6, 0.6)
    with pytest.raises(TypeError, match="HardwareModel"):
        ns.Simulator(ns.hierarchy([2, 2]), backend="reference", hardware="ideal")
