"""``Simulator(..., hardware=HardwareModel(...))``: the one Simulator runs on the substrate (its training loop,
probes, checkpoints, state), the removed ``HardwareSimulator`` wrapper names it, and what the substrate cannot
do is refused before anything runs."""
from __future__ import annotations

import numpy as np
import pytest

import neurosim as ns
from neurosim import hardware as hw
from neurosim.errors import CheckpointError, DivergenceError, UnsupportedError

BACKENDS = ["reference", "numba"]

#: every source of randomness and every piece of device state: stochastic rounding (writes and signals),
#: read noise, drift with a running device clock, write noise, event coding
NOISY = hw.HardwareModel(values=[hw.Quantize(6, bound=1.0), hw.AdditiveNoise(0.02)],
                         errors=[hw.Quantize(8, bound=2.0)], reads=[hw.MultiplicativeNoise(0.05), hw.Drift(0.05)],
                         weights=[hw.Quantize(7, bound=1.0), hw.WriteNoise(0.01)], coding="event", threshold=0.01,
                         seconds_per_batch=30.0, seed=3)
#: write effects only: the backend's kernel relaxes, the device writes
WRITES = hw.HardwareModel(weights=[hw.Quantize(6, bound=1.0), hw.WriteNoise(0.02)], seed=5)


def _data(n=24, n_in=6, n_out=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, size=(n, n_in)), np.eye(n_out)[rng.integers(0, n_out, n)]


def _net():
    return ns.hierarchy([6, 5, 3], phi="tanh", lr=0.1, optimizer=ns.SGD(momentum=0.9))


def _kill_after(sim, n_calls):
    """Make the substrate raise KeyboardInterrupt (a kill) on its ``n_calls``-th batch."""
    run, calls = sim.hardware.run_batch, [0]

    def run_batch(*args, **kwargs):
        calls[0] += 1
        if calls[0] == n_calls:
            raise KeyboardInterrupt
        return run(*args, **kwargs)
    sim.hardware.run_batch = run_batch


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("model", [NOISY, WRITES], ids=["event-engine", "writes-only"])
def test_killed_hardware_run_resumes_to_the_numbers_of_an_uninterrupted_one(tmp_path, backend, model):
    """Killed in epoch 2, resumed from the checkpoint of epoch 1: the noise and rounding streams, the device
    clock and write times, the operation counts and the engine state (``init="previous"``) continue, so the
    run ends where 3 epochs in one go end (one code path: equal to rounding)."""
    X, Y = _data()
    kw = dict(batch_size=8, steps=6, progress=False, init="previous", X_test=X[:8], Y_test=Y[:8])
    full = ns.Simulator(_net(), backend=backend, seed=4, hardware=model)
    full.train(X, Y, epochs=3, **kw)
    ck = tmp_path / "ck.npz"
    killed = ns.Simulator(_net(), backend=backend, seed=4, hardware=model)
    _kill_after(killed, 3 + 2)
    with pytest.raises(KeyboardInterrupt):
        killed.train(X, Y, epochs=3, checkpoint=ck, **kw)
    resumed = ns.Simulator(_net(), backend=backend, seed=4, hardware=model)
    resumed.train(X, Y, epochs=3, checkpoint=ck, **kw)       # a fresh process re-running the same call
    assert len(resumed.history["epoch_loss"]) == 3
    for k, w in full.weights.items():
        np.testing.assert_allclose(resumed.weights[k], w, rtol=0, atol=1e-12, err_msg=k)
    for k in ("loss", "energy", "test_accuracy", "test_loss"):
        np.testing.assert_allclose(resumed.history[k], full.history[k], rtol=0, atol=1e-12, err_msg=k)
    assert resumed.hardware.counts == full.hardware.counts
    assert resumed.hardware.time == full.hardware.time == 9 * model.seconds_per_batch
    assert resumed.hardware.batches == full.hardware.batches == 9
    np.testing.assert_array_equal(resumed.hardware.device.t_write, full.hardware.device.t_write)
    for k in full.read_weights():
        np.testing.assert_allclose(resumed.read_weights()[k], full.read_weights()[k], rtol=0, atol=1e-12)
    if model.relaxation_effects:
        for k in ("x", "eps", "mu"):
            np.testing.assert_allclose(resumed.state["h1"][k], full.state["h1"][k], rtol=0, atol=1e-12)


def test_checkpoints_are_refused_across_hardware_and_models(tmp_path):
    X, Y = _data()
    plain = ns.Simulator(_net(), backend="reference", seed=0)
    plain.train(X, Y, epochs=1, progress=False, checkpoint=tmp_path / "plain.npz")
    chip = ns.Simulator(_net(), backend="reference", seed=0, hardware=WRITES)
    chip.train(X, Y, epochs=1, progress=False, checkpoint=tmp_path / "chip.npz")
    with pytest.raises(CheckpointError, match="without hardware, this one runs with hardware"):
        ns.Simulator(_net(), backend="reference", seed=0, hardware=WRITES).load_checkpoint(tmp_path / "plain.npz")
    with pytest.raises(CheckpointError, match="with hardware, this one runs without hardware"):
        ns.Simulator(_net(), backend="reference", seed=0).load_checkpoint(tmp_path / "chip.npz")
    other = ns.Simulator(_net(), backend="reference", seed=0, hardware=hw.HardwareModel(seed=5))
    with pytest.raises(CheckpointError, match="another hardware model"):
        other.load_checkpoint(tmp_path / "chip.npz")
    assert other.hardware.batches == 0 and other.history["loss"] == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_energy_and_weight_norm_probes_record_on_the_event_engine(backend):
    """The engine supplies the energy of every evaluation and the stored weights: those probes record as on
    any backend (x/eps/mu traces are refused when the simulator is built)."""
    X, Y = _data(8)
    probes = [ns.Probe("output", "energy", name="E"), ns.Probe("W1", "weight_norm", name="n1")]
    sim = ns.Simulator(_net(), backend=backend, seed=0, probes=probes, hardware=hw.HardwareModel(coding="event"))
    r = sim.run(X, Y, steps=7)
    col = sim.plan.pop_index("output")
    np.testing.assert_array_equal(sim.data["E"][:, 0], r.energy[:, col])
    np.testing.assert_array_equal(sim.data.steps("E"), np.arange(8))
    sim.train(X, Y, epochs=2, batch_size=4, steps=5, progress=False)
    assert sim.data["n1"].shape == (4, 1)
    assert sim.data["n1"][-1, 0] == pytest.approx(np.linalg.norm(sim.weights["W1"]), rel=1e-12)
    with pytest.raises(UnsupportedError, match=r"x/eps/mu probes \['tr'\]"):
        ns.Simulator(_net(), backend=backend, probes=[ns.Probe("h1", "x", name="tr")],
                     hardware=hw.HardwareModel(coding="event"))
    # without relaxation effects the backend kernel relaxes and every probe kind records
    sim = ns.Simulator(_net(), backend=backend, seed=0, probes=[ns.Probe("h1", "x", name="tr")], hardware=WRITES)
    sim.run(X, Y, steps=5)
    assert sim.data["tr"].shape == (6, 5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_state_is_the_engine_state_and_init_previous_continues_from_it(backend):
    X, Y = _data(6)
    sim = ns.Simulator(_net(), backend=backend, seed=0, hardware=hw.HardwareModel(coding="event"))
    assert sim.state == {}
    r = sim.run(X, Y, steps=10)
    for n in r.populations:
        np.testing.assert_array_equal(sim.state[n]["x"], r.x[n])
        np.testing.assert_array_equal(sim.state[n]["mu"], r.mu[n])
    # at threshold 0 the relaxation is the clock-driven one: 10 + 10 steps from "previous" = 20 steps
    r2 = sim.run(X, Y, steps=10, init="previous")
    plain = ns.Simulator(_net(), backend=backend, seed=0)
    r20 = plain.run(X, Y, steps=20)
    np.testing.assert_allclose(r2.x["h1"], r20.x["h1"], rtol=0, atol=1e-12)
    sim.reset()
    assert sim.state == {} and sim.hardware.engine.state is None


def test_the_substrate_is_built_with_the_simulator_and_the_old_wrapper_names_it():
    X, Y = _data()
    model = hw.HardwareModel(values=[hw.Quantize(6, bound=1.0)], reads=[hw.Drift(0.05)], seconds_per_batch=10.0)
    sims = [ns.Simulator(_net(), backend="reference", seed=1, hardware=model) for _ in range(2)]
    for sim in sims:
        sim.train(X, Y, epochs=2, batch_size=8, steps=5, progress=False)
    new, again = sims
    for k, w in new.weights.items():                     # the same code path twice: the same numbers
        np.testing.assert_array_equal(again.weights[k], w)
    assert again.hardware.counts == new.hardware.counts and again.hardware.time == new.hardware.time == 60.0
    assert len(new.history["loss"]) == 6                 # 2 epochs of 3 batches, 10 device seconds each
    new.hardware.advance(100.0)
    again.hardware.advance(100.0)
    assert new.hardware.time == 160.0
    for k, w in new.read_weights().items():
        np.testing.assert_array_equal(again.read_weights()[k], w)
    r = new.run(X[:4], Y[:4], steps=3)
    assert isinstance(r, hw.HardwareRelaxResult) and r.events is not None and r.counts is not None
    with pytest.raises(AttributeError, match=r"HardwareSimulator was removed: .*ns.Simulator\(circuit, \.\.\., "
                                             r"hardware=HardwareModel"):
        hw.HardwareSimulator


def test_read_weights_apply_drift_at_the_device_time():
    model = hw.HardwareModel(reads=[hw.Drift(0.05, t0=20.0)])
    sim = ns.Simulator(_net(), backend="reference", seed=0, hardware=model)
    w = sim.weights["W1"]
    np.testing.assert_array_equal(sim.read_weights()["W1"], w)         # before t0: as programmed
    sim.hardware.advance(2000.0)
    nu = sim.hardware.device.nu[sim.plan.w_off[0]:sim.plan.w_off[0] + w.size].reshape(w.shape)
    np.testing.assert_allclose(sim.read_weights()["W1"], w * 100.0 ** -nu, rtol=1e-12)
    np.testing.assert_array_equal(sim.weights["W1"], w)                # the stored weights do not drift
    plain = ns.Simulator(_net(), backend="reference", seed=0)
    assert sorted(plain.read_weights()) == ["W1", "W2"]
    np.testing.assert_array_equal(plain.read_weights()["W1"], plain.weights["W1"])
    with pytest.raises(ValueError, match="advance: seconds"):
        sim.hardware.advance(-1.0)


def test_what_the_substrate_cannot_train_is_refused_before_anything_runs():
    X, Y = _data()
    sim = ns.Simulator(_net(), backend="reference", seed=0, hardware=hw.HardwareModel(coding="event"))
    with pytest.raises(UnsupportedError, match="algorithm 'pc' or 'bp', not 'fpa'"):
        sim.train(X, Y, algorithm="fpa", progress=False)
    with pytest.raises(UnsupportedError, match=r"options \['output_precision'\]"):
        sim.train(X, Y, options={"output_precision": 0.5}, progress=False)
    with pytest.raises(UnsupportedError, match="Euler"):
        sim.run(X, Y, steps=3, integrator="heun")
    assert sim.history["loss"] == [] and sim.hardware.batches == 0
    with pytest.raises(UnsupportedError, match="backend 'brian2' has no event-driven hardware engine"):
        ns.Simulator(_net(), backend="brian2", hardware=hw.HardwareModel(coding="event"))
    with pytest.raises(TypeError, match="hardware must be a neurosim.hardware.HardwareModel"):
        ns.Simulator(_net(), backend="reference", hardware={"coding": "event"})


def test_divergence_on_the_substrate_names_the_batch_and_keeps_the_history():
    X, Y = _data()
    net = ns.hierarchy([6, 5, 3], phi="linear", lr=50.0, optimizer=ns.SGD())
    sim = ns.Simulator(net, backend="reference", seed=0, hardware=hw.HardwareModel(coding="event"))
    with pytest.raises(DivergenceError, match="substrate's noise") as e, np.errstate(all="ignore"):
        sim.train(X * 100, Y, epochs=5, batch_size=8, steps=5, progress=False)
    assert e.value.batch is not None and len(sim.history["loss"]) == e.value.batch
    assert sim.hardware.batches == e.value.batch + 1


def test_write_effects_run_on_any_backend_here_brian2():
    """Without relaxation effects the backend's own kernel relaxes (here brian2's rate mode) and the device
    writes the update: the stored weights stay on the quantiser's grid."""
    pytest.importorskip("brian2")
    X, Y = _data(4, 4, 2)
    Y = 3 * Y - 1
    model = hw.HardwareModel(weights=[hw.Quantize(6, bound=1.0, rounding="nearest")])
    sim = ns.Simulator(ns.hierarchy([4, 3, 2], lr=1.0, optimizer=ns.SGD()), backend="brian2", seed=0,
                       hardware=model)
    step = model.weights[0].grid()[0]
    w0 = sim.weights["W1"]
    np.testing.assert_allclose(w0 / step, np.round(w0 / step), atol=1e-9)
    r = sim.learn(X, Y, steps=5)
    assert isinstance(r, hw.HardwareRelaxResult) and r.events is None
    assert sim.hardware.counts == hw.count_pc(sim.plan, 5, 4) and sim.hardware.engine is None
    w1 = sim.weights["W1"]
    assert not np.array_equal(w1, w0)
    np.testing.assert_allclose(w1 / step, np.round(w1 / step), atol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_weight_writes_are_the_changed_weights_for_every_coding_and_bp(backend):
    """An input that is 0 in every item leaves its weights' gradient 0: no coding writes them.  Clock coding (the
    backend's kernel, and the event engine with clock coding), event coding and BP all count the stored parameters
    an update changed, so an event/clock or PC/BP ratio carries no write saving the coding did not cause (before,
    clock coding and BP counted every plastic weight, event coding the changed ones: 150.6 against 129.8 writes per
    sample in hw-event-driven)."""
    X, Y = _data(12)
    X[:, 1] = 0.0   # input unit 1 is silent: the 5 weights it feeds into h1 keep their value
    net = ns.hierarchy([6, 5, 3], phi="tanh", lr=0.1, optimizer=ns.SGD())
    plastic = 6 * 5 + 5 * 3 + 5 + 3   # weights and learned biases
    models = {"clock, kernel": hw.HardwareModel(), "clock, engine": hw.HardwareModel(errors=[hw.Quantize(16, bound=4.0)]),
              "event": hw.HardwareModel(coding="event", threshold=0.0)}
    writes = {}
    for label, model in models.items():
        sim = ns.Simulator(net, backend=backend, seed=0, hardware=model)
        assert (sim.hardware.engine is None) == (label == "clock, kernel")
        before = {k: v.copy() for k, v in sim.weights.items()}
        sim.step(X, Y, steps=10)
        changed = sum(int(np.count_nonzero(sim.weights[k] != before[k])) for k in before)
        writes[label] = sim.hardware.counts.weight_writes
        assert writes[label] == changed == plastic - 5, (label, writes[label], changed)
    sim = ns.Simulator(net, backend=backend, seed=0, hardware=hw.HardwareModel())
    sim.step(X, Y, algorithm="bp")
    assert sim.hardware.counts.weight_writes == plastic - 5
    # with device write effects the device's count (a quantised update of 0 is not written) plus the biases
    sim = ns.Simulator(net, backend=backend, seed=0, hardware=WRITES)
    sim.step(X, Y, steps=10)
    assert 0 < sim.hardware.counts.weight_writes <= plastic - 5
