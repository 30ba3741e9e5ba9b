"""Event coding on an analog crossbar, the stored transpose's writes per sample, and the activity's range.

A crossbar computes whole matrix-vector products whatever sends, so an event-driven run saves it routing, not
array work: its synaptic ops, conversions and weight reads are the clock-driven ones of the same passes
(``OpCounts.array_*``).  Priced with the measured (sparse) synaptic ops, an event-coded crossbar came out 4.6x
cheaper than its own mapping's model (3.2 against 14.8 nJ per training sample), and hw-energy's PC/BP ratio on the
crossbar fell from 19.7 to 4.5 for a saving the chip cannot make."""
from __future__ import annotations

import numpy as np
import pytest

import neurosim as ns
from neurosim import hardware as hw
from neurosim.data import load_digits


@pytest.fixture(scope="module")
def trained():
    d = load_digits(seed=0)
    X, Y = d.X_train[:128], d.Y_train[:128]
    net = ns.hierarchy([64, 16, 10], phi="tanh", lr=0.05)
    out = {}
    for name, model in (("clock", hw.HardwareModel()), ("event", hw.HardwareModel(coding="event", threshold=0.1))):
        sim = ns.Simulator(net, dt=0.1, backend="numba", seed=0, hardware=model)
        sim.train(X, Y, epochs=1, batch_size=16, steps=10, progress=False)
        out[name] = sim.hardware.counts
    return net, out


def test_event_counts_carry_the_clock_passes_for_arrays(trained):
    net, c = trained
    ev, ck = c["event"], c["clock"]
    clock = hw.count_pc(net, 10, 16).scaled(ev.batches)
    assert ev.synaptic_ops < 0.5 * ev.array_synaptic_ops                    # the events did save synaptic ops
    for k in ("synaptic_ops", "conversions", "weight_reads"):
        assert getattr(ev, "array_" + k) == pytest.approx(getattr(clock, k), rel=1e-12)
        assert getattr(ck, "array_" + k) == getattr(ck, k)                   # clock coding: the same numbers


def test_a_crossbar_prices_whole_tiles_and_an_event_chip_the_events(trained):
    _, c = trained
    ev = c["event"]
    xbar = hw.energy(ev, "crossbar")["breakdown_J"]
    assert xbar["synaptic_ops"] == pytest.approx(hw.energy(ev.on_array(), "crossbar")["breakdown_J"]["synaptic_ops"])
    t = hw.get_target("crossbar")
    assert xbar["synaptic_ops"] == pytest.approx(ev.array_synaptic_ops * t.energy_pJ["synaptic_ops"] * 1e-12)
    loihi = hw.get_target("loihi")
    assert hw.energy(ev, "loihi")["breakdown_J"]["synaptic_ops"] == pytest.approx(
        ev.synaptic_ops * loihi.energy_pJ["synaptic_ops"] * 1e-12)
    # counts made by hand (no array_* counted) are priced as they are
    hand = hw.OpCounts(samples=1, synaptic_ops=100.0)
    assert hw.energy(hand, "crossbar")["breakdown_J"]["synaptic_ops"] == pytest.approx(
        100 * t.energy_pJ["synaptic_ops"] * 1e-12)


def test_map_circuit_with_event_counts_on_a_crossbar_agrees_with_its_activity_model(trained):
    """The mapping's docstring: a crossbar reads whole tiles, event coding scales its routing only.  Measured counts
    and the same activity now give the same array energy (they differ only in the measured neuron updates and
    weight writes, a few percent); the measured counts gave 4.6x less before."""
    net, c = trained
    ev = c["event"]
    m_counts = hw.map_circuit(net, "crossbar", steps=10, counts=ev)
    m_act = hw.map_circuit(net, "crossbar", steps=10, activity=m_counts.activity)
    assert m_counts.energy_inference_J == pytest.approx(m_act.energy_inference_J, rel=0.1)
    clock = hw.map_circuit(net, "crossbar", steps=10)      # the same array work; routing scales with the events
    assert m_counts.routing_energy_J < 0.5 * clock.routing_energy_J
    assert m_counts.energy_inference_J - m_counts.routing_energy_J == pytest.approx(
        clock.energy_inference_J - clock.routing_energy_J, rel=0.1)


def test_the_stored_transpose_is_written_once_per_update_not_per_sample(trained):
    """The copy of W^T is written when the weights are, once per update: per sample it is divided by the samples of
    an update, as the primary writes are (it was charged in full per sample: at batch 16 the copy cost 2.6x the
    primary writes on Loihi)."""
    net, c = trained
    ev = c["clock"]
    m = hw.map_circuit(net, "loihi", steps=10, counts=ev)
    t = hw.get_target("loihi")
    copies = 16 * 10                                    # W2 (10 x 16) is fed back; W1's pre is the clamped input
    assert m.transpose_write_energy_J == pytest.approx(copies * t.energy_pJ["weight_writes"] * 1e-12 / 16)
    assert "at 16 sample(s) per update" in " ".join(m.notes)
    single = hw.map_circuit(net, "loihi", steps=10)      # count_pc's batch of 1
    assert single.transpose_write_energy_J == pytest.approx(copies * t.energy_pJ["weight_writes"] * 1e-12)


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan"), True])
def test_activity_is_a_fraction(bad):
    with pytest.raises(ValueError, match=r"activity is the fraction of units sending per step, a number in \[0, 1\]"):
        hw.map_circuit(ns.hierarchy([4, 3, 2]), "loihi", activity=bad)


def test_a_checkpoint_without_array_counts_still_loads(tmp_path):
    """Checkpoints written before the array_* counts hold 13 counts; they load, with the measured counts standing in
    for the array ones."""
    net = ns.hierarchy([4, 3, 2])
    X, Y = np.ones((4, 4)), np.ones((4, 2))
    sim = ns.Simulator(net, backend="reference", seed=0, hardware=hw.HardwareModel())
    sim.train(X, Y, epochs=1, batch_size=4, steps=3, progress=False)
    ck = tmp_path / "ck.npz"
    sim.save_checkpoint(ck)
    with np.load(ck) as z:
        members = {k: z[k] for k in z.files}
    key = next(k for k in members if k.endswith("counts") and members[k].shape == (16,))
    members[key] = members[key][:13]
    np.savez(tmp_path / "old.npz", **members)
    other = ns.Simulator(net, backend="reference", seed=0, hardware=hw.HardwareModel())
    other.load_checkpoint(tmp_path / "old.npz")
    assert other.hardware.counts.array_synaptic_ops == other.hardware.counts.synaptic_ops > 0


def test_a_sum_with_counts_made_by_hand_keeps_their_array_work(trained):
    """Counts made by hand have no array_* counts (priced as measured); added to computed ones they contributed
    nothing to the sum's array counts, and a crossbar priced the sum below its parts."""
    _, c = trained
    hand = hw.OpCounts(samples=c["clock"].samples, synaptic_ops=1000.0, conversions=10.0, weight_reads=5.0)
    both = hand + c["event"]
    e = lambda x: hw.energy(x, "crossbar")["total_J"]   # noqa: E731
    assert e(both) == pytest.approx(e(hand) + e(c["event"]), rel=1e-12)
    assert (c["event"] + hand).array_synaptic_ops == both.array_synaptic_ops == \
        c["event"].array_synaptic_ops + 1000.0
    zero = hw.OpCounts()
    assert (zero + c["clock"]).array_synaptic_ops == c["clock"].array_synaptic_ops
