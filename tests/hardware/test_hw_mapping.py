"""Mapping circuits onto chips (neurosim.hardware.map_circuit): hand-worked placements, routed events, energy
and latency on toy targets, the errors of circuits that do not fit, and the sourced target tables."""
from __future__ import annotations

import json

import pytest

import neurosim as ns
import neurosim.graph as ng
from neurosim import hardware as hw

ENERGY = {c: 0.0 for c in hw.COUNTERS}
ENERGY.update(synaptic_ops=1.0, events=2.0, neuron_updates=3.0, weight_writes=5.0)


def _toy(tmp_path, name, resources, feedback, latency=None):
    lat = {k: 0.0 for k in hw.cost.LATENCY_KEYS}
    lat.update(latency or {})
    data = {"name": name, "kind": "neuromorphic", "bits_reference": 8,
            "energy_pJ": {k: {"value": v, "source": "toy", "evidence": "user"} for k, v in ENERGY.items()},
            "latency_s": {k: {"value": v, "source": "toy", "evidence": "user"} for k, v in lat.items()},
            "feedback": {"value": feedback, "source": "toy", "evidence": "user"},
            "resources": {k: {"value": v, "source": "toy", "evidence": "user"} for k, v in resources.items()}}
    p = tmp_path / f"{name}.json"
    p.write_text(json.dumps(data))
    return p


TWO_CORES = dict(cores_per_chip=2, neurons_per_core=8, synapse_memory_bits_per_core=64 * 8, weight_bits_max=8,
                 cores_per_tile=1, mesh_width_tiles=2, hop_energy_pJ=10.0, hop_latency_s=1e-9,
                 barrier_latency_s=1e-8, time_per_synaptic_op_s=1e-9, time_per_neuron_update_s=2e-9,
                 time_per_synaptic_update_s=4e-9)


def test_231_on_a_two_core_toy_target_by_hand(tmp_path):
    """2-3-1 (input a: 2 value neurons; h1: 3 value + 3 error; output: 1 + 1), T = 4, 8 neurons per core.

    Placement in topological order: core 0 = input (2) + h1 (6) = 8 neurons (full), core 1 = output (2).
    Synapses: an h1 slot holds its pair (x->eps, eps->x: 2), the prediction W1 row (2) and the stored copy of
    W2^T (1): 5 x 3 = 15 on core 0; the output slot 2 + W2 row (3) = 5 on core 1.  Only W2 links the cores.
    Events crossing per step: h1's 3 value neurons -> output's error neuron on core 1, and the output's error
    neuron -> h1's value neurons on core 0 (one message to one core): 3 + 1 = 4.  One hop each (tiles 0 and 1):
    hops per sample (T+1) 3 + T 1 = 19 -> routing 19 x 10 pJ = 190 pJ.
    Inference energy = count_pc(T=4, learn=False): 57 synaptic ops x 1 + 29 events x 2 + 36 neuron updates x 3
    = 223 pJ, + 190 routing = 413 pJ.  Training adds 13 weight writes (9 weights + 4 biases) x 5 = 65 pJ and the
    second copy of the fed-back plastic W2 (3 weights) x 5 = 15 pJ: 493 pJ.
    Latency: core 0 per step 9 synaptic ops (h1 errors 3 x 2, h1 values 3 x 1) x 1 ns + 8 neurons x 2 ns = 25 ns
    (core 1: 3 + 4 = 7 ns), + 1 hop x 1 ns + barrier 10 ns = 36 ns per step; (depth 2 + T 4) x 36 = 216 ns per
    inference; training adds core 0's 9 plastic synapses x 4 ns = 36 ns: 252 ns.
    """
    t = _toy(tmp_path, "toy2", TWO_CORES, "store_transpose")
    m = hw.map_circuit(ns.hierarchy([2, 3, 1]), t, steps=4)
    assert (m.cores, m.chips, m.kind) == (2, 1, "digital")
    assert [(s.population, s.start, s.stop, s.core) for s in m.slices] == [
        ("input", 0, 2, 0), ("h1", 0, 3, 0), ("output", 0, 1, 1)]
    assert [(c["neurons"], c["synapses"]) for c in m.per_core] == [(8, 15), (2, 5)]
    assert m.crossing == ["W2"]
    assert m.events_per_step == 4 and m.hops_per_sample == 19 and m.cross_chip_events_per_step == 0
    assert m.energy_inference_J == pytest.approx(413e-12, rel=1e-10)
    assert m.routing_energy_J == pytest.approx(190e-12, rel=1e-10)
    assert m.transpose_write_energy_J == pytest.approx(15e-12, rel=1e-10)
    assert m.energy_training_J == pytest.approx(493e-12, rel=1e-10)
    assert m.latency_step_s == pytest.approx(36e-9, rel=1e-10)
    assert m.latency_inference_s == pytest.approx(216e-9, rel=1e-10)
    assert m.latency_training_s == pytest.approx(252e-9, rel=1e-10)
    d = m.to_dict()
    json.dumps(d)
    assert d["cores"] == 2 and d["placement"][2] == ["output", 0, 1, 1]
    text = m.describe()
    assert "h1[0:3) -> core 0" in text and "second copy" in text and "W2" in text


def test_activity_scales_the_routed_events(tmp_path):
    t = _toy(tmp_path, "toy2", TWO_CORES, "store_transpose")
    full = hw.map_circuit(ns.hierarchy([2, 3, 1]), t, steps=4)
    half = hw.map_circuit(ns.hierarchy([2, 3, 1]), t, steps=4, activity=0.5)
    assert half.events_per_step == 2 and half.hops_per_sample == 9.5
    # half the routing (95 pJ) and, on this event-driven chip, half of the 57 synaptic ops x 1 pJ and 29 events x
    # 2 pJ (the 36 neuron updates stay): 95 + 0.5 (57 + 58) = 152.5 pJ
    assert full.energy_inference_J - half.energy_inference_J == pytest.approx(152.5e-12, rel=1e-10)


def test_231_on_a_toy_crossbar_by_hand(tmp_path):
    """Tiles of 2 x 2: W1 (2 inputs x 3 outputs) takes 1 x 2 tiles, W2 (3 x 1) 2 x 1 tiles: 4 tiles, both split.
    Values moved per step (inputs to every column block, partial sums out of every row block):
    W1 forward 2 x 2 + 3 x 1 = 7 (no feedback: its pre is the input); W2 forward 3 x 1 + 1 x 2 = 5 and its
    transposed read 1 x 2 + 3 x 1 = 5: 17 per step; per sample (T+1)(7 + 5) + T 5 = 80 with T = 4.
    Step: a forward and a transposed MVM of 100 ns + one hop of 1 ns = 201 ns; (2 + 4) x 201 = 1206 ns.
    Training: inference energy (223 pJ + 80 x 10 pJ) + 13 weight writes x 5 pJ, no second copy."""
    t = _toy(tmp_path, "xbar", dict(tile_rows=2, tile_cols=2, tiles_per_chip=2, weight_bits_max=8,
                                    mvm_latency_s=1e-7, hop_energy_pJ=10.0, hop_latency_s=1e-9),
             "transposed_read")
    m = hw.map_circuit(ns.hierarchy([2, 3, 1]), t, steps=4)
    assert (m.kind, m.cores, m.chips) == ("analog", 4, 2)
    assert m.tiles == {"W1": (1, 2, 1), "W2": (2, 1, 1)} and m.crossing == ["W1", "W2"]
    assert m.events_per_step == 17 and m.hops_per_sample == 80
    assert m.energy_inference_J == pytest.approx((223 + 800) * 1e-12, rel=1e-10)
    assert m.energy_training_J == pytest.approx((223 + 800 + 65) * 1e-12, rel=1e-10)
    assert m.transpose_write_energy_J == 0
    assert m.latency_inference_s == pytest.approx(6 * 201e-9, rel=1e-10)


def test_cnn_on_the_crossbar_unrolls_the_kernels():
    """cnn((1,8,8), channels=(8,16)): conv1 9 rows x 8 columns, 64 positions; conv2 (8 x 3 x 3 =) 72 x 16,
    16 positions; the output 64 x 10: one 256 x 256 tile each.  Step: the most positions forward (64) and fed
    back (conv2's 16; conv1 reads the input) x 133 ns + one hop of 4.1 ns."""
    cnn = ng.cnn((1, 8, 8), channels=(8, 16), n_out=10)
    m = hw.map_circuit(cnn, "crossbar", steps=20)
    assert m.tiles == {"input->conv1": (1, 1, 64), "pool1->conv2": (1, 1, 16), "pool2->output": (1, 1, 1)}
    assert m.cores == 3 and m.chips == 1
    assert m.latency_step_s == pytest.approx(80 * 1.33e-7 + 4.1e-9, rel=1e-10)


def test_cnn_shares_kernels_per_core_on_a_digital_target(tmp_path):
    """cnn((1,4,4), channels=(2,), no pooling, output 3), every unit on one big core.  conv1 (2 x 4 x 4 = 32
    units) reads the input linearly: each slot holds its pair (2); the 2 channels' 3x3 kernels are stored once
    each (2 x 9 = 18); the stored W^T of the output (3 per slot, 32 slots = 96).  The output's 3 slots: pair 2 +
    a dense row of 32 = 34 each (102).  Total 2 x 32 + 18 + 96 + 102 = 280."""
    t = _toy(tmp_path, "big", dict(cores_per_chip=4, neurons_per_core=1000, weight_bits_max=8), "store_transpose")
    cnn = ng.cnn((1, 4, 4), channels=(2,), pool=None, n_out=3)
    m = hw.map_circuit(cnn, t, steps=2)
    assert m.cores == 1 and m.per_core[0]["neurons"] == 16 + 64 + 6
    assert m.per_core[0]["synapses"] == 280


def test_circuits_that_do_not_fit_raise_naming_the_limit(tmp_path):
    t = _toy(tmp_path, "toy2", TWO_CORES, "store_transpose")
    with pytest.raises(ns.UnsupportedError, match="wider than target 'toy2'.*weight_bits_max = 8"):
        hw.map_circuit(ns.hierarchy([2, 3, 1]), t, weight_bits=16)
    # one h1 slot of a 100-input layer needs 2 + 100 + 1 = 103 synapses x 8 bits > 512 bits of a core
    with pytest.raises(ns.UnsupportedError, match="population 'h1'.*synapse_memory_bits_per_core.*fan-in"):
        hw.map_circuit(ns.hierarchy([100, 3, 1]), t)
    small = _toy(tmp_path, "fanin", {**TWO_CORES, "synapse_memory_bits_per_core": 1e9, "fan_in_per_core": 50},
                 "store_transpose")
    with pytest.raises(ns.UnsupportedError, match="population 'h1'.*fan_in_per_core"):
        hw.map_circuit(ns.hierarchy([100, 3, 1]), small)
    with pytest.raises(ns.UnsupportedError, match="'cmos45' states no chip resources"):
        hw.map_circuit(ns.hierarchy([2, 3, 1]), "cmos45")
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        hw.map_circuit(ns.hierarchy([2, 3, 1]), t, steps=0)


def test_a_huge_circuit_is_counted_from_its_shapes_without_drawing_weights():
    """A 100,000 x 100,000 projection (74.5 GiB of float64 weights) is mapped from shapes: before, map_circuit
    drew the weights and died with MemoryError instead of its own error naming the limit."""
    big = ns.hierarchy([100_000, 100_000, 10])
    with pytest.raises(ns.UnsupportedError, match="population 'h1'.*fan_in_per_core.*'loihi2' holds 4096"):
        hw.map_circuit(big, "loihi2")
    m = hw.map_circuit(big, "crossbar")
    r = hw.get_target("crossbar").resources
    R, C = int(r["tile_rows"]), int(r["tile_cols"])
    assert m.tiles["W1"][:2] == (-(-100_000 // R), -(-100_000 // C))
    assert m.cores == sum(rb * cb for rb, cb, _ in m.tiles.values())
    assert hw.count_pc(big, 3, learn=False).synaptic_ops == 4 * (100_000 ** 2 + 100_000 * 10) + 3 * 100_000 * 10


def test_a_shape_only_lowering_lays_out_what_the_sampled_one_does():
    """``lower(sample=False)`` (what the cost models and map_circuit count from) gives the layout of the
    sampled plan, with zero views in place of the weights."""
    for c in (ns.hierarchy([5, 4, 3]), ng.cnn((1, 6, 6), channels=(2,), hidden=(4,), n_out=3)):
        a, b = ns.lower(c, 0), ns.lower(c, 0, sample=False)
        assert a.W.shape == b.W.shape and not b.W.any()
        for k in ("pop_names", "proj_names", "w_off", "VI", "EI", "PI"):
            if hasattr(a, k):
                assert repr(getattr(a, k)) == repr(getattr(b, k)), k
        assert hw.count_pc(c, 4) == hw.count_pc(a, 4)


def test_large_populations_are_split_and_stated(tmp_path):
    """h1 of 10 units = 20 neurons on 8-neuron cores: input (2) + 3 slots on core 0, 4 slots on core 1, 3 on
    core 2, the output on core 2 as well (2 more neurons: 8); 3 cores over 2 chips."""
    t = _toy(tmp_path, "toy2", {**TWO_CORES, "synapse_memory_bits_per_core": 1e9}, "store_transpose")
    m = hw.map_circuit(ns.hierarchy([2, 10, 1]), t, steps=2)
    assert [(s.population, s.start, s.stop, s.core) for s in m.slices] == [
        ("input", 0, 2, 0), ("h1", 0, 3, 0), ("h1", 3, 7, 1), ("h1", 7, 10, 2), ("output", 0, 1, 2)]
    assert (m.cores, m.chips) == (3, 2)
    assert any("h1 (3 cores)" in n for n in m.notes)
    assert m.cross_chip_events_per_step > 0


def test_target_resources_are_validated(tmp_path):
    p = _toy(tmp_path, "bad", {"neurons_per_core": 8, "cores_per_chip": 1}, "store_transpose")
    data = json.loads(p.read_text())
    data["resources"]["neurons_per_kore"] = {"value": 1, "source": "typo", "evidence": "user"}
    p.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="unknown resources \\['neurons_per_kore'\\]"):
        hw.load_target(p)
    data["resources"].pop("neurons_per_kore")
    data["feedback"]["value"] = "mirror"
    p.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="'feedback' must be an object"):
        hw.load_target(p)


def test_builtin_targets_state_sources_and_loihi_has_no_recalled_constant():
    ts = hw.targets()
    assert {"loihi", "loihi2", "spinnaker2", "crossbar"} <= set(ts)
    for name in ("loihi", "loihi2", "spinnaker2", "crossbar"):
        t = ts[name]
        assert t.feedback in hw.cost.FEEDBACK_MODES and t.resource_table()
        for key, (src, ev) in t.sources.items():
            assert src and ev in hw.cost.EVIDENCE, (name, key)
    loihi = ts["loihi"]
    assert not [k for k, (_s, ev) in loihi.sources.items() if ev == "recalled"]
    assert loihi.resources["neurons_per_core"] == 1024 and loihi.resources["fan_in_per_core"] == 4096
    assert "Table 2" in loihi.sources["energy.neuron_updates"][0]
    # the per-operation values the existing experiments price did not move
    assert (loihi.energy_pJ["events"], loihi.energy_pJ["neuron_updates"], loihi.energy_pJ["weight_writes"]) == (
        1.7, 81.0, 120.0)
    assert ts["crossbar"].energy_pJ["neuron_updates"] == 1.5


def test_digits_and_cnn_map_on_every_builtin_target():
    nets = (ns.hierarchy([64, 128, 10], phi="tanh"), ng.cnn((1, 8, 8), channels=(8, 16), n_out=10))
    for net in nets:
        for name in ("loihi", "loihi2", "spinnaker2", "crossbar"):
            m = hw.map_circuit(net, name, steps=20)
            assert m.cores >= 1 and m.chips == 1
            assert m.energy_training_J > m.energy_inference_J > 0
            assert m.latency_training_s >= m.latency_inference_s > 0


def test_spreading_over_more_cores_trades_events_for_latency():
    """The digits network (64-128-10, 340 neurons) fits one Loihi core; capped at 64 neurons per core it takes
    input (64) on core 0, h1 in 32-slot pieces on cores 1-4 and the output on core 5: more routed events, less
    serial work on the busiest core, so a shorter step."""
    net = ns.hierarchy([64, 128, 10], phi="tanh")
    one = hw.map_circuit(net, "loihi", steps=20)
    spread = hw.map_circuit(net, "loihi", steps=20, neurons_per_core=64)
    assert one.cores == 1 and one.events_per_step == 0
    assert spread.cores == 6 and [s.core for s in spread.slices] == [0, 1, 2, 3, 4, 5]
    assert spread.events_per_step > 0 and spread.latency_step_s < one.latency_step_s
    with pytest.raises(ValueError, match="neurons_per_core must be an int >= 1"):
        hw.map_circuit(net, "loihi", neurons_per_core=0)


def test_measured_event_counts_set_the_activity(tmp_path):
    """An event-driven run's measured events over the clock-driven count of the same steps is the activity that
    scales the routed events; the measured operations are what the energy prices."""
    t = _toy(tmp_path, "toy2", TWO_CORES, "store_transpose")
    net = ns.hierarchy([2, 3, 1], optimizer=ns.SGD())
    sim = ns.Simulator(net, backend="reference", seed=0,
                       hardware=hw.HardwareModel(coding="event", threshold=0.05, seed=0))
    X = [[0.2, 0.9], [0.7, 0.1], [0.5, 0.5], [0.9, 0.3]]
    Y = [[0.3], [0.8], [0.1], [0.6]]
    import numpy as np
    sim.train(np.asarray(X), np.asarray(Y), epochs=1, batch_size=2, steps=4)
    c = sim.hardware.counts
    m = hw.map_circuit(net, t, steps=4, counts=c)
    clock = hw.count_pc(net, 4, 1, learn=False).events
    assert m.activity == pytest.approx((c.events / c.samples) / clock, rel=1e-12)
    assert 0 < m.activity < 1
    assert m.events_per_step == pytest.approx(4 * m.activity, rel=1e-12)
    assert m.hops_per_sample == pytest.approx(19 * m.activity, rel=1e-12)
    per = c.per_sample()
    priced = (per["synaptic_ops"] * 1 + per["events"] * 2 + per["neuron_updates"] * 3) * 1e-12
    assert m.energy_inference_J == pytest.approx(priced + m.routing_energy_J, rel=1e-10)


def test_activity_scales_a_digital_chips_synaptic_work_but_not_a_crossbars_reads():
    """On an event-driven chip only the units that send cause synaptic operations and spikes: the energy is affine in
    the activity (neuron updates stay), and lower activity costs less; a crossbar reads whole tiles, so only its
    routing changes."""
    import neurosim as ns
    from neurosim import hardware as hw
    net = ns.hierarchy([64, 128, 10], phi="tanh", name="digits")
    e = {a: hw.map_circuit(net, "loihi", steps=20, activity=a) for a in (0.0, 0.5, 1.0)}
    E = {a: m.energy_inference_J for a, m in e.items()}
    assert E[0.0] < E[0.5] < E[1.0]
    assert abs(E[0.5] - 0.5 * (E[0.0] + E[1.0])) <= 1e-12 * E[1.0]
    assert e[0.5].latency_step_s < e[1.0].latency_step_s
    # the neuron updates alone remain at activity 0: 5596 updates x 81 pJ (the hand-checked digits case)
    assert abs(E[0.0] - 5596 * 81e-12) <= 1e-9 * E[1.0]
    x = {a: hw.map_circuit(net, "crossbar", steps=20, activity=a) for a in (0.5, 1.0)}
    assert x[0.5].energy_inference_J - x[0.5].routing_energy_J == pytest.approx(
        x[1.0].energy_inference_J - x[1.0].routing_energy_J, rel=1e-12)


def test_a_core_that_fans_out_too_far_gets_fewer_units():
    """784-1000-1000-10 on Loihi: with full cores the 784 inputs share one core whose units send to 16 cores of h1
    each (12,410 output edges > fan_out_per_core 4096).  Without neurons_per_core the mapping halves the neurons per
    core until every core fits (256: 256 x 16 = 4096) and says so; with neurons_per_core given it names the fix."""
    import neurosim as ns
    from neurosim import hardware as hw
    net = ns.hierarchy([784, 1000, 1000, 10])
    m = hw.map_circuit(net, "loihi", steps=20)
    limit = hw.targets()["loihi"].resources["fan_out_per_core"]
    assert max(c["fan_out"] for c in m.per_core) <= limit
    assert max(c["neurons"] for c in m.per_core) <= 256
    assert any("neurons per core capped at 256" in n and "12410" in n for n in m.notes)
    with pytest.raises(ns.UnsupportedError, match="12410 core-to-core output edges.*neurons_per_core=1024.*smaller"):
        hw.map_circuit(net, "loihi", steps=20, neurons_per_core=1024)


def test_hw_mapping_reports_a_chip_that_cannot_hold_the_circuit(tmp_path):
    """hw-mapping failed as a whole (exit 1) when one chip could not hold one circuit; that chip is a result:
    "does not fit" with the reason, beside the chips that do."""
    from neurosim.experiment import run_experiment
    from neurosim.registry import get
    m = run_experiment(get("hw-mapping"), dict(hidden=[5000], channels=[1], targets=["loihi", "crossbar"],
                                               figures=False), out=tmp_path, progress=False)
    assert m["status"] == "ok"
    digits = m["mapping"]["digits"]
    assert digits["loihi"]["fits"] is False and "loihi" in digits["loihi"]["reason"]
    assert digits["crossbar"]["fits"] is True and digits["crossbar"]["energy_training_J"] > 0
    assert "| digits | loihi | does not fit |" in (tmp_path / "report.md").read_text()
