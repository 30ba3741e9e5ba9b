"""brian2 spiking mode: rate-coded spiking PC that emulates neuromorphic hardware.

Oracles: the rate model (numba backend) for relaxed activities and Hebbian updates; closed-form
bookkeeping for event counts; the published direction of effect of the bear example (PC interferes less
than BP); determinism for the same seed.

Stated tolerance (measured on the development machine; see ``suggest_config``): with the default
configuration (IF encoders at 2 kHz, tau_syn 2 ms, one rate time unit = 20 ms) relaxed values of a small
linear network lie within 0.05 of the rate model after 100 ms; the error falls about as 1/rate
(0.27 at 250 Hz, 0.004 at 4 kHz) and with the readout time.
"""
from __future__ import annotations

import numpy as np
import pytest

from testkit import require_brian2  # noqa: E402

brian2 = require_brian2()

import neurosim as ns  # noqa: E402
from neurosim.backends.brian2 import HardwareConfig, SpikingConfig, suggest_config  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated.*")   # pyparsing names used by brian2 2.9

LIN = ns.hierarchy([3, 4, 2], phi="linear", bias=False, lr=0.05, optimizer=ns.SGD())


def lin_data(B=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, size=(B, 3)), rng.uniform(-1, 1, size=(B, 2))


def spiking(net, seed=1, hardware=None, **cfg):
    cfg.setdefault("record_spikes", False)
    return ns.Simulator(net, backend="brian2", seed=seed, dt=0.1,
                        backend_options={"mode": "spiking", "spiking": cfg, "hardware": hardware})


def max_err(a, b, names=("h1", "output")):
    return max(float(np.max(np.abs(a.x[n] - b.x[n]))) for n in names)


def test_relaxed_activities_approach_rate_model_as_rates_grow():
    X, Y = lin_data()
    ref = ns.Simulator(LIN, backend="numba", seed=1, dt=0.1).run(X, Y, steps=50, mode="clamp")
    errs = {}
    for rate in (250.0, 4000.0):
        sim = spiking(LIN, value_rate=rate, error_rate=rate, max_rate=9000.0)
        errs[rate] = max_err(sim.run(X, Y, steps=50, mode="clamp"), ref, ("h1",))
    cfg = suggest_config(LIN, accuracy=0.05)          # the stated tolerance
    assert cfg == SpikingConfig(max_rate=4000.0)      # ... is the default configuration (2 kHz)
    sim = spiking(LIN, **{**cfg.to_dict(), "record_spikes": False})
    errs[2000.0] = max_err(sim.run(X, Y, steps=50, mode="clamp"), ref, ("h1",))
    assert errs[2000.0] < 0.05
    assert errs[250.0] > errs[2000.0] > errs[4000.0]
    assert errs[4000.0] < 0.015 and errs[250.0] / errs[4000.0] > 5


def test_relaxed_activities_approach_rate_model_with_simulated_time():
    X, Y = lin_data()
    eq = ns.Simulator(LIN, backend="numba", seed=1, dt=0.1).run(X, Y, steps=400, mode="clamp")
    sim = spiking(LIN, value_rate=500.0, error_rate=500.0, readout_fraction=0.5)
    short = max_err(sim.run(X, Y, steps=20, mode="clamp"), eq, ("h1",))     # 40 ms
    long = max_err(sim.run(X, Y, steps=120, mode="clamp"), eq, ("h1",))     # 240 ms
    assert long < 0.6 * short and long < 0.1


def test_same_seed_same_spikes_and_global_rng_untouched():
    X, Y = lin_data(B=2)
    hw = HardwareConfig(membrane_noise=0.05, threshold_mismatch=0.05)

    def events(seed):
        sim = spiking(LIN, seed=seed, hardware=hw, neuron="poisson", record_spikes=True)
        np.random.seed(123)
        before = np.random.get_state()[1].copy()
        res = sim.run(X, Y, steps=20, mode="clamp")
        assert np.array_equal(np.random.get_state()[1], before)   # brian2's draws do not leak out
        rep = sim.backend.last_run
        return rep, res

    (a, ra), (b, rb), (c, _) = events(3), events(3), events(4)
    assert a["spikes"] > 100 and a["spikes_by_channel"] == b["spikes_by_channel"]
    for key in a["events"]:
        for f in ("t", "i", "sign"):
            np.testing.assert_array_equal(a["events"][key][f], b["events"][key][f])
    np.testing.assert_array_equal(ra.x["h1"], rb.x["h1"])
    assert a["spikes_by_channel"] != c["spikes_by_channel"]


def test_event_arrays_outlive_the_simulator():
    """Arrays in the report are copies: brian2 frees its monitors' memory with the network (brian2 >= 2.10
    hands out views of it), so views would read garbage once the simulator is gone."""
    import gc
    X, Y = lin_data(B=2)
    sim = spiking(LIN, record_spikes=True)
    sim.run(X, Y, steps=20, mode="clamp")
    rep = sim.backend.last_run
    kept = {key: {f: np.array(ev[f], copy=True) for f in ev} for key, ev in rep["events"].items()}
    for key, ev in rep["events"].items():
        for f, a in ev.items():
            assert a.flags.owndata, f"events[{key!r}][{f!r}] is a view of memory it does not own"
    del sim
    gc.collect()
    junk = [np.full(4096, 0x3A5A5A5A, dtype=np.int64) for _ in range(256)]   # reuse freed memory
    sizes = {"input": 3, "h1": 4, "output": 2}
    assert sum(len(ev["i"]) for ev in rep["events"].values()) > 100
    for key, ev in rep["events"].items():
        pop = key.split(".")[0].removeprefix("eps_")
        assert np.all((ev["i"] >= 0) & (ev["i"] < sizes[pop])), key         # unit indices of batch item 0
        assert np.all(np.isin(ev["sign"], (-1.0, 1.0))), key
        assert np.all((ev["t"] >= 0) & (ev["t"] <= rep["simulated_time_ms"] + 1e-9)), key
        for f in ev:
            np.testing.assert_array_equal(ev[f], kept[key][f], err_msg=f"{key}.{f}")
    del junk


def test_runs_do_not_depend_on_the_runs_before_them():
    """Every spiking run lasts steps * dt * time_unit (+ the final sample) from a quiet network: the same
    number of spiking steps whatever ran before on the same network, and no delayed events carried over
    from the previous batch (before, runs after the first alternated between n and n + 1 steps)."""
    X, Y = lin_data(B=2)
    sim = spiking(LIN, hardware=HardwareConfig(delay=0.3))
    fresh = spiking(LIN, hardware=HardwareConfig(delay=0.3))
    n_spk = round(20 * 0.1 * 20.0 / 0.1)
    for r in range(3):
        sim.learn(X, Y, steps=20)
        assert len(sim.backend._net.mon_F.t) == n_spk + 1, f"run {r}"
    # a fresh network at the same point of the run sequence (same weights, same run counter) agrees
    fresh.load_weights(sim.weights)
    fresh.backend._n_runs = sim.backend._n_runs
    a, b = sim.run(X, Y, steps=20, mode="clamp"), fresh.run(X, Y, steps=20, mode="clamp")
    for name in ("h1", "output"):
        np.testing.assert_allclose(a.x[name], b.x[name], rtol=0, atol=1e-12, err_msg=name)


def test_error_schemes_approximate_rate_model_and_onoff_pays_baseline():
    X, Y = lin_data(B=2)
    ref = ns.Simulator(LIN, backend="numba", seed=1, dt=0.1).run(X, Y, steps=50, mode="clamp")
    reports = {}
    for scheme in ("events", "pair", "onoff"):
        sim = spiking(LIN, error_scheme=scheme)
        res = sim.run(X, Y, steps=50, mode="clamp")
        assert max_err(res, ref, ("h1",)) < 0.05, scheme
        reports[scheme] = sim.backend.last_run
    err_spikes = {s: sum(v for k, v in r["spikes_by_channel"].items() if k.startswith("eps_"))
                  for s, r in reports.items()}
    # the baseline pair fires even at zero error; e+/e- and two event types only carry the error
    assert err_spikes["onoff"] > 3 * err_spikes["events"]
    assert abs(err_spikes["pair"] - err_spikes["events"]) < 0.3 * err_spikes["events"]
    assert reports["pair"]["n_neurons"] == reports["events"]["n_neurons"] + 2 * (4 + 2)


def test_event_counts_and_synaptic_events_bookkeeping():
    X, Y = lin_data(B=2)
    sim = spiking(LIN, record_spikes=True)
    sim.run(X, Y, steps=20, mode="clamp")
    r = sim.backend.last_run
    c = r["spikes_by_channel"]
    assert set(c) == {"input.x", "h1.x", "output.x", "eps_h1.e", "eps_output.e"}
    assert r["spikes"] == sum(c.values()) > 0
    # fan-out: input -> 4 h1 errors; h1 -> own error + 2 output errors; output -> own error;
    # eps_h1 -> own value (not the 3 clamped inputs, which no feedback moves); eps_output -> own value + 4 h1 values
    expected = 4 * c["input.x"] + 3 * c["h1.x"] + c["output.x"] + 1 * c["eps_h1.e"] + 5 * c["eps_output.e"]
    assert r["synaptic_events"] == pytest.approx(expected)
    assert r["simulated_time_ms"] == pytest.approx(20 * 0.1 * 20.0)
    for key, ev in r["events"].items():     # events of batch item 0, within the run, signed
        assert np.all((ev["t"] >= 0) & (ev["t"] <= r["simulated_time_ms"] + 1e-9)), key
        assert set(np.unique(ev["sign"])) <= {-1.0, 1.0}
    total_item0 = sum(len(ev["t"]) for ev in r["events"].values())
    assert 0 < total_item0 < r["spikes"]


def test_event_driven_plasticity_follows_rate_hebbian_update():
    X, Y = lin_data(B=2, seed=5)
    ref = ns.Simulator(LIN, backend="numba", seed=1, dt=0.1)
    w0 = ref.weights
    ref.learn(X, Y, steps=100)
    sim = spiking(LIN)
    sim.learn(X, Y, steps=100)
    for k in ("W1", "W2"):
        dr, ds = ref.weights[k] - w0[k], sim.weights[k] - w0[k]
        assert np.sum(dr * ds) / (np.linalg.norm(dr) * np.linalg.norm(ds)) > 0.99, k
        assert 0.8 < np.linalg.norm(ds) / np.linalg.norm(dr) < 1.2


def test_quantised_weights_stay_on_grid_and_learn_in_expectation():
    """weight_bits: the device holds weights on its grid; stochastic rounding keeps the update direction."""
    net = ns.hierarchy([3, 4, 2], phi="linear", bias=False, lr=0.5, optimizer=ns.SGD())
    X, Y = lin_data(B=2, seed=5)
    hw = HardwareConfig(weight_bits=12)
    sim = spiking(net, hardware=hw, w_max=4.0)
    q = 4.0 / 2 ** 11
    for k, w in sim.weights.items():          # start on the grid, so only the updates are rounded
        sim.set_weights(k, np.round(w / q) * q)
    ref = ns.Simulator(net, backend="numba", seed=1, dt=0.1)
    ref.load_weights(sim.weights)
    w0 = ref.weights
    ref.learn(X, Y, steps=100)
    sim.learn(X, Y, steps=100)
    for k in ("W1", "W2"):
        np.testing.assert_allclose(sim.weights[k] / q, np.round(sim.weights[k] / q), atol=1e-6)
        dr, ds = ref.weights[k] - w0[k], sim.weights[k] - w0[k]
        assert np.sum(dr * ds) / (np.linalg.norm(dr) * np.linalg.norm(ds)) > 0.9, k


def test_bear_example_pc_interferes_less_than_bp_in_spiking_mode():
    """1-1-2 linear net, all weights 1, s = 1, t = (0, 1): after one update the correct output drops much
    less under (spiking) PC than under BP, and PC strengthens hidden -> correct output."""
    bear = ns.hierarchy([1, 1, 2], phi="linear", bias=False, lr=0.2, optimizer=ns.SGD(),
                        init=ns.Init("constant", value=1.0))
    X, Y = np.ones((1, 1)), np.array([[0.0, 1.0]])
    bp = ns.Simulator(bear, backend="numba", seed=0)
    bp.train(X, Y, epochs=1, batch_size=1, algorithm="bp", progress=False)
    rate = ns.Simulator(bear, backend="numba", seed=0, dt=0.1)
    rate.learn(X, Y, steps=100)
    spk = spiking(bear)
    spk.learn(X, Y, steps=100)
    dy = {name: s.predict(X)[0, 1] - 1.0 for name, s in (("bp", bp), ("rate", rate), ("spiking", spk))}
    assert dy["bp"] == pytest.approx(-0.2)
    assert dy["rate"] == pytest.approx(-0.0252, abs=2e-3)          # closed form (14/15)(47/45) - 1
    assert abs(dy["spiking"]) < 0.4 * abs(dy["bp"])
    assert dy["spiking"] == pytest.approx(dy["rate"], abs=0.02)
    assert spk.weights["W2"][1, 0] > 1.0 + 0.02 and bp.weights["W2"][1, 0] == 1.0


def test_hardware_knobs_are_seeded_and_degrade_gracefully():
    X, Y = lin_data(B=2)
    ref = ns.Simulator(LIN, backend="numba", seed=1, dt=0.1).run(X, Y, steps=50, mode="clamp")
    # refractoriness slows an encoder (r -> r / (1 + r t_ref)); inverting the f-I curve undoes it
    refr = HardwareConfig(refractory=0.3)
    e_comp = max_err(spiking(LIN, hardware=refr).run(X, Y, steps=50, mode="clamp"), ref, ("h1",))
    e_raw = max_err(spiking(LIN, hardware=refr, compensate=False).run(X, Y, steps=50, mode="clamp"), ref, ("h1",))
    assert e_comp < 0.06 and e_raw > 2 * e_comp          # measured 0.037 vs 0.117
    # everything at once on leaky neurons: frozen mismatch, delays, noise; still a usable emulation
    hw = HardwareConfig(threshold_mismatch=0.1, tau_mismatch=0.1, refractory=0.2, delay=0.2, delay_jitter=0.2,
                        membrane_noise=0.02, seed=11)
    sim = spiking(LIN, hardware=hw, neuron="lif")
    assert max_err(sim.run(X, Y, steps=50, mode="clamp"), ref, ("h1",)) < 0.2   # measured 0.10
    vth = np.asarray(sim.backend._net.V[1].vth[:])
    assert 0.05 < np.std(vth) < 0.15                      # per-neuron threshold mismatch, frozen
    twin = spiking(LIN, hardware=hw, neuron="lif")
    twin.run(X, Y, steps=1, mode="clamp")
    np.testing.assert_array_equal(np.asarray(twin.backend._net.V[1].vth[:]), vth)   # same hardware seed


def test_spiking_declared_limitations():
    adam = ns.hierarchy([3, 4, 2], phi="tanh", optimizer=ns.Adam())
    with pytest.raises(ns.UnsupportedError, match=r"Adam.*event-driven local plasticity"):
        spiking(adam)
    sim = spiking(LIN)
    X, Y = lin_data(B=1)
    with pytest.raises(ns.UnsupportedError, match=r"'tol' and 'dt_decay'"):
        sim.run(X, Y, steps=5, mode="clamp", tol=1e-3)
    with pytest.raises(ns.UnsupportedError, match=r"numpy target only"):
        ns.Simulator(LIN, backend="brian2", backend_options={"mode": "spiking", "target": "cpp_standalone"})
    with pytest.raises(ValueError, match=r"SpikingConfig: unknown field\(s\) \['rate'\]"):
        spiking(LIN, rate=3.0)
    with pytest.raises(ValueError, match=r"error_scheme must be"):
        SpikingConfig(error_scheme="graded")
    with pytest.raises(ValueError, match=r"at most one event per step"):
        SpikingConfig(max_rate=20000.0, dt=0.1)
    with pytest.raises(ValueError, match=r"options 'spiking' and 'hardware' need mode='spiking'"):
        ns.Simulator(LIN, backend="brian2", backend_options={"spiking": {}})


def test_encoder_saturation_is_reported_and_warned_and_a_wider_range_fixes_it():
    """Rates code |u| <= max_rate / value_rate (2.5 with the defaults): a linear chain whose fixed point is 3 drifted
    to 4.95 after 50 steps (36.8 after 800) without a word.  The run now warns and last_run reports the clipped
    fraction per channel; with the range widened the spiking value approaches the rate model's 3."""
    net = ns.hierarchy([2, 1, 1], phi="linear", bias=False, init=ns.Init("constant", value=1.0), optimizer=ns.SGD())
    X, Y = np.array([[1.5, 1.5]]), np.array([[3.0]])
    rate = ns.Simulator(net, seed=0).run(X, Y, steps=50).x["h1"][0, 0]
    assert rate == pytest.approx(3.0, abs=1e-9)
    sim = spiking(net)
    with pytest.warns(RuntimeWarning, match=r"encoders saturated .* in h1\.x, output\.x: values and phi\(x\) beyond "
                                            r"\+-2\.5 \(max_rate 5000 Hz / value_rate 2000 Hz\)"):
        x = sim.run(X, Y, steps=50).x["h1"][0, 0]
    assert x > 4.0   # the drift the warning is about
    sat = sim.backend.last_run["saturation"]
    assert sat["h1.x"] > 0.9 and sat["output.x"] > 0.9 and sat["input.x"] == 0.0 and sat["eps_h1.e"] == 0.0
    assert sim.backend.last_run["value_range"] == 2.5
    wide = spiking(net, max_rate=8000.0, value_rate=1000.0, error_rate=1000.0)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        x = wide.run(X, Y, steps=50).x["h1"][0, 0]
    assert abs(x - 3.0) < 0.1 and max(wide.backend.last_run["saturation"].values()) == 0.0


def test_onoff_error_pairs_report_their_own_range():
    """An on/off pair codes |eps| up to 2 r0 / error_rate (1 with the default baseline), not max_rate / error_rate."""
    from neurosim.backends.brian2.spiking import error_range
    assert error_range(SpikingConfig()) == 2.5
    assert error_range(SpikingConfig(error_scheme="onoff")) == 1.0
    assert error_range(SpikingConfig(error_scheme="onoff", baseline_rate=1500.0)) == 1.5
    net = ns.hierarchy([1, 1], phi="linear", bias=False, init=ns.Init("constant", value=0.0), optimizer=ns.SGD())
    sim = spiking(net, error_scheme="onoff")
    with pytest.warns(RuntimeWarning, match=r"errors beyond \+-1 are clipped \(on/off error pairs"):
        sim.run(np.array([[1.0]]), np.array([[1.8]]), steps=20)
    assert sim.backend.last_run["error_range"] == 1.0 and sim.backend.last_run["saturation"]["eps_output.en"] > 0.9


def test_a_spiking_chip_counts_its_spikes_not_the_rate_models_operations():
    """sim.hardware.counts of the spiking network are its spikes (events), synaptic events (synaptic ops and weight
    reads) and spike-timed weight updates (update MACs); they were count_pc's clock-driven numbers, the same for
    the rate network, numba and the spiking network (14,624 synaptic ops and 980 events per sample on 64-16-10,
    where the spiking network sent 1,445 spikes and 17,297 synaptic events)."""
    from neurosim import hardware as hw
    X, Y = lin_data(B=2)
    sim = ns.Simulator(LIN, backend="brian2", seed=1, dt=0.1, hardware=hw.HardwareModel(),
                       backend_options={"mode": "spiking", "spiking": {"record_spikes": False}})
    sim.train(X, Y, epochs=1, batch_size=2, steps=10, progress=False)
    r, c = sim.backend.last_run, sim.hardware.counts
    assert c.events == r["spikes"] > 0 and c.synaptic_ops == c.weight_reads == r["synaptic_events"] > 0
    assert c.update_macs == r["weight_updates"] > 0 and c.conversions == 0.0
    clock = hw.count_pc(LIN, 10, 2)
    assert c.events != clock.events and c.array_synaptic_ops == clock.synaptic_ops
    assert c.neuron_updates == clock.neuron_updates and c.samples == 2
    # a batch of no steps sends no spike: it is not billed with the previous batch's
    sim.run(X, Y, steps=0, learn=True)
    assert sim.hardware.last_counts.events == hw.count_pc(LIN, 0, 2).events != r["spikes"]
