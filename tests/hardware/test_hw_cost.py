"""Cost model: operation counts equal hand-computed numbers, measured counts agree with the formulas,
energy and latency follow the per-operation tables, targets carry sources, users add their own file."""
from __future__ import annotations

import json

import numpy as np
import pytest

import neurosim as ns
from neurosim import hardware as hw


def test_pc_counts_hand_computed():
    """Network 2-3-1 (bias), T = 4 steps, batch 2, output clamped.

    P = 2*3 + 3*1 = 9 synapses; feedback only through W2 (W1's pre is the clamped input): F = 3; U = 9.
    Per sample: synaptic ops (T+1) P + T F = 45 + 12 = 57; events: value senders input(2) + h1(3) = 5 per
    forward pass, error senders: the output (1) per feedback pass -> 5*5 + 4*1 = 29; conversions
    (T+1)[(2+3) + (3+1)] + T (3+1) = 45 + 16 = 61; neuron updates: sweep 4 + (T+1) 4 errors + T 3 free
    hidden = 4 + 20 + 12 = 36; activation reads (T+1)(2+3) + T*1 + update (2+3)+(3+1) = 25 + 4 + 9 = 38.
    Per batch: weight reads (T+1) 9 + T 3 + 9 = 66 -> 33 per sample; weight writes 9 + 4 biases = 13 -> 6.5.
    """
    c = hw.count_pc(ns.hierarchy([2, 3, 1]), steps=4, batch_size=2).per_sample()
    expect = dict(synaptic_ops=57, events=29, conversions=61, neuron_updates=36, act_reads=38, weight_reads=33,
                  weight_writes=6.5, state_writes=36, update_macs=9, macs=66, relaxation_steps=4, serial_steps=6,
                  mem_reads=71, mem_writes=42.5, batches=0.5)
    for k, v in expect.items():
        assert c[k] == v, k


def test_bp_counts_hand_computed():
    """Same network: forward 9 MACs, backward through W2 only 3, update 9; events 5 values + 1 output delta;
    conversions (5 + 4) + 4 = 13; neuron updates 4 forward + 4 deltas; act reads 5 + 1 + 9 = 15;
    weight reads per batch 9 + 3 + 9 = 21 -> 10.5 per sample; serial steps 2 x depth 2 = 4."""
    c = hw.count_bp(ns.hierarchy([2, 3, 1]), batch_size=2).per_sample()
    expect = dict(synaptic_ops=12, events=6, conversions=13, neuron_updates=8, act_reads=15, weight_reads=10.5,
                  weight_writes=6.5, update_macs=9, macs=21, relaxation_steps=0, serial_steps=4)
    for k, v in expect.items():
        assert c[k] == v, k


def _skip_circuit():
    """a(2) -> h(3) (W1, bias) -> o(3) (W2), plus an identity skip h -> o; a is the input, o the target."""
    pops = (ns.ValuePopulation("a", 2), ns.ValuePopulation("h", 3, phi="tanh"), ns.ValuePopulation("o", 3))
    errs = (ns.ErrorPopulation("eps_h", "h"), ns.ErrorPopulation("eps_o", "o"))
    projs = (ns.Projection("W1", "a", "h", bias=True), ns.Projection("W2", "h", "o"),
             ns.Projection("skip", "h", "o", skip=True, weights=False))
    return ns.Circuit(pops, errs, projs, (ns.Clamp("a", "input"), ns.Clamp("o", "target")), name="skip")


def test_identity_skips_are_counted_clock_driven():
    """Weighted synapses 2*3 + 3*3 = 15; the skip adds one accumulate per unit and pass: P = 15 + 3 = 18, PC
    feedback (W2 and the skip; W1's pre is the input) F = 9 + 3 = 12, BP's backward pass the same 12.
    PC, T = 4: synaptic ops 5*18 + 4*12 = 138 (without the skip's 5*3 + 4*3: 111); weight reads stay those of
    the weights, 5*15 + 4*9 + U 15 = 126.  BP: 18 + 12 = 30 synaptic ops, weight reads 15 + 9 + 15 = 39."""
    c = _skip_circuit()
    s = hw.NetworkShape.from_circuit(c)
    assert (s.P, s.F, s.F_bp, s.P_fetch, s.F_fetch) == (18, 12, 12, 15, 9)
    pc = hw.count_pc(c, steps=4, batch_size=1).per_sample()
    assert pc["synaptic_ops"] == 138 and pc["weight_reads"] == 126
    bp = hw.count_bp(c, batch_size=1).per_sample()
    assert bp["synaptic_ops"] == 30 and bp["weight_reads"] == 39
    # the graph form of the same circuit counts its identity edge the same way
    g = hw.count_pc(ns.graph.from_circuit(c), steps=4, batch_size=1).per_sample()
    assert g["synaptic_ops"] == pc["synaptic_ops"]


@pytest.mark.parametrize("T", [0, 1, 5, 20])
def test_pc_bp_mac_ratio_closed_form_and_growth(T):
    net = ns.hierarchy([64, 32, 16, 10])
    s = hw.NetworkShape.from_circuit(net)
    assert (s.P, s.F, s.F_bp, s.U) == (64 * 32 + 32 * 16 + 16 * 10, 32 * 16 + 16 * 10, 32 * 16 + 16 * 10,
                                       64 * 32 + 32 * 16 + 16 * 10)
    pc, bp = hw.count_pc(net, T, 8), hw.count_bp(net, 8)
    ratio = pc.macs / bp.macs
    assert ratio == pytest.approx(((T + 1) * s.P + T * s.F + s.U) / (s.P + s.F + s.U), rel=1e-12)
    assert hw.count_pc(net, T + 1, 8).macs / bp.macs > ratio


def test_measured_counts_equal_the_formulas_during_training():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(20, 5)), np.eye(3)[rng.integers(0, 3, 20)]
    net = ns.hierarchy([5, 4, 3], lr=0.05, optimizer=ns.SGD())
    for alg, fn in (("pc", lambda B: hw.count_pc(net, 7, B)), ("bp", lambda B: hw.count_bp(net, B))):
        for model in (hw.HardwareModel(), hw.HardwareModel(values=[hw.Quantize(8, bound=2.0)])):
            chip = ns.Simulator(net, backend="numba", seed=0, hardware=model)
            chip.train(X, Y, epochs=2, batch_size=8, steps=7, algorithm=alg, progress=False)
            expect = fn(8) + fn(8) + fn(4)  # batches of 8, 8, 4 per epoch
            expect = expect + expect
            assert chip.hardware.counts == expect, (alg, model.relaxation_effects)


def test_event_counts_measured_on_the_hand_checked_circuit():
    """1-1-1 chain of test_hw_event (theta = 0.6): 3 value + 2 error events, 5 synaptic ops; each event
    drives one DAC conversion; every receiver (mu of h and out, feedback of h) converts once per evaluation
    (7) plus the sweep reads of h and out: 3 * 7 + 2 = 23 ADC conversions."""
    chip = ns.Simulator(ns.hierarchy([1, 1, 1], phi="linear", bias=False), backend="reference", dt=0.5,
                        hardware=hw.HardwareModel(coding="event", threshold=0.6))
    chip.set_weights("W1", W=[[1.0]])
    chip.set_weights("W2", W=[[1.0]])
    c = chip.run([[1.0]], [[0.0]], steps=6, mode="clamp").counts
    assert (c.events, c.synaptic_ops, c.weight_reads, c.act_reads) == (5, 5, 5, 0)
    assert c.conversions == 5 + 23
    assert c.neuron_updates == 2 + 7 * 2 + 6 * 1 and c.serial_steps == 2 + 6


@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_event_counts_and_conversions_on_non_square_layers(backend):
    """5-3-4-2 network (no weight matrix square), event coding: a value event of a unit of pre_k drives the
    n_post_k synapses of projection k, an error event of post_k its n_pre_k feedback synapses (none into the
    clamped input); each event into a projection is one DAC conversion, and every receiver converts once per
    evaluation (ADC: mu receivers 3 + 4 + 2, feedback receivers 3 + 4), plus once in the sweep."""
    sizes = [5, 3, 4, 2]
    chip = ns.Simulator(ns.hierarchy(sizes, phi="tanh"), backend=backend, seed=0, dt=0.2,
                        hardware=hw.HardwareModel(coding="event", threshold=0.02))
    rng = np.random.default_rng(1)
    B, T = 3, 12
    r = chip.run(rng.normal(size=(B, 5)), rng.normal(size=(B, 2)), steps=T, mode="clamp")
    assert r.steps == T
    ev = r.events.sum(axis=0) + r.events_init        # (n_pops, 2): value and error events per population
    value_in = [int(ev[k, 0]) for k in range(3)]     # projection W(k+1): pre = population k, post = k + 1
    err_back = [0, int(ev[2, 1]), int(ev[3, 1])]
    assert min(value_in) > 0 and min(err_back[1:]) > 0
    np.testing.assert_array_equal(r.sops, [[value_in[k] * sizes[k + 1], err_back[k] * sizes[k]] for k in range(3)])
    c = r.counts
    adc = B * ((T + 1) * ((3 + 4 + 2) + (3 + 4)) + (3 + 4 + 2))
    assert c.conversions == sum(value_in) + sum(err_back) + adc
    assert c.synaptic_ops == c.weight_reads == r.sops.sum() and c.act_reads == 0
    assert c.events == ev.sum()


def _write_target(path, energies, latencies, exponents=None, name="mychip"):
    data = {"name": name, "description": "test chip", "kind": "digital", "bits_reference": 16,
            "energy_pJ": {k: {"value": v, "source": f"test value for {k}", "evidence": "user"} for k, v in energies.items()},
            "latency_s": {k: {"value": v, "source": "test", "evidence": "assumed"} for k, v in latencies.items()}}
    if exponents:
        data["bits_exponent"] = exponents
    path.write_text(json.dumps(data))
    return path


def test_energy_and_latency_by_hand_with_a_user_target(tmp_path, monkeypatch):
    energies = {c: float(i + 1) for i, c in enumerate(hw.COUNTERS)}   # 1, 2, ..., 9 pJ
    lat = {"timestep": 1e-6, "synaptic_op": 1e-9, "event": 2e-9, "neuron_update": 3e-9, "update_mac": 4e-9,
           "weight_write": 5e-9}
    _write_target(tmp_path / "mychip.json", energies, lat,
                  exponents={"synaptic_ops": {"weight": 1, "activity": 1}, "weight_reads": {"weight": 1}})
    monkeypatch.setenv("NEUROSIM_TARGETS", str(tmp_path))
    assert {"cmos45", "loihi", "spinnaker2", "crossbar", "mychip"} <= set(hw.targets())
    c = hw.count_pc(ns.hierarchy([2, 3, 1]), steps=4, batch_size=2)
    per = c.per_sample()
    e = hw.energy(c, "mychip")
    expect = sum(per[k] * energies[k] for k in hw.COUNTERS) * 1e-12
    assert e["per_sample_J"] == pytest.approx(expect, rel=1e-12)
    # 8-bit weights, 4-bit activities: synaptic ops scale (8/16)(4/16), weight reads 8/16, the rest fixed
    e8 = hw.energy(c, "mychip", weight_bits=8, activity_bits=4)
    d = per["synaptic_ops"] * 1 * (1 - 0.5 * 0.25) + per["weight_reads"] * 5 * (1 - 0.5)
    assert e["per_sample_J"] - e8["per_sample_J"] == pytest.approx(d * 1e-12, rel=1e-12)
    t = hw.latency(c, tmp_path / "mychip.json")
    settle = per["serial_steps"] * 1e-6 + per["synaptic_ops"] * 1e-9 + per["events"] * 2e-9 + \
        per["neuron_updates"] * 3e-9
    assert t["settle_s"] == pytest.approx(settle, rel=1e-12)
    assert t["total_s"] == pytest.approx(settle + per["update_macs"] * 4e-9 + per["weight_writes"] * 5e-9, rel=1e-12)


def test_target_files_must_give_every_value_with_a_source(tmp_path):
    full = {c: 1.0 for c in hw.COUNTERS}
    lat = {k: 0.0 for k in hw.cost.LATENCY_KEYS}
    p = _write_target(tmp_path / "a.json", full, lat)
    data = json.loads(p.read_text())
    data["energy_pJ"]["events"]["source"] = ""
    p.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="energy_pJ.events.*source"):
        hw.load_target(p)
    del data["energy_pJ"]["events"]
    p.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="missing entries \\['events'\\]"):
        hw.load_target(p)
    with pytest.raises(ValueError, match="unknown hardware target 'tpu'"):
        hw.get_target("tpu")
    for t in hw.targets().values():
        for key, (src, ev) in t.sources.items():
            assert src and ev in hw.cost.EVIDENCE, (t.name, key)
    assert hw.get_target("loihi").energy_pJ["synaptic_ops"] == 23.6
    assert hw.get_target("cmos45").energy_pJ["synaptic_ops"] == pytest.approx(4.6)
    assert hw.get_target("spinnaker2").energy_pJ["synaptic_ops"] == 10.0


def test_cost_report_ratios_and_files(tmp_path):
    net = ns.hierarchy([8, 6, 3])
    pc, bp = hw.count_pc(net, 10, 4), hw.count_bp(net, 4)
    rep = hw.cost_report(pc, bp, ["cmos45", "loihi"])
    for name in ("cmos45", "loihi"):
        row = rep["targets"][name]
        assert row["pc_bp_energy_ratio"] == pytest.approx(
            hw.energy(pc, name)["per_sample_J"] / hw.energy(bp, name)["per_sample_J"])
        assert row["pc_time_to_settle_s"] == pytest.approx(hw.latency(pc, name)["settle_s"])
    assert rep["pc_bp_mac_ratio"] == pytest.approx(pc.macs / bp.macs)
    jpath, mpath = hw.write_report(rep, tmp_path)
    assert json.loads(jpath.read_text())["targets"]["loihi"]["pc_energy_per_sample_J"] > 0
    text = mpath.read_text()
    assert "| loihi |" in text and "Davies" in text and "PC/BP ratio of MACs" in text


def test_cost_report_notes_size_independent_latency_and_weights_too_wide_to_store(tmp_path):
    """Loihi's time is steps x a fixed 10 us step whatever the network (so it reads the same for 64-32-10 and
    784-1000-10), and 16-bit weights exceed its 9: the report says both, and the widths it priced."""
    net = ns.hierarchy([8, 6, 3])
    pc, bp = hw.count_pc(net, 10, 4), hw.count_bp(net, 4)
    notes = hw.cost_report(pc, bp, ["cmos45", "loihi"], bits=16)["targets"]
    assert notes["cmos45"]["notes"] == []
    assert any("does not grow with the network" in n for n in notes["loihi"]["notes"])
    assert any("does not fit: loihi stores weights of at most 9 bits" in n for n in notes["loihi"]["notes"])
    assert hw.cost_report(pc, bp, ["loihi"], bits=8)["targets"]["loihi"]["notes"][-1].startswith("time =")
    _, mpath = hw.write_report(hw.cost_report(pc, bp, ["cmos45", "loihi"], bits=16), tmp_path)
    text = mpath.read_text()
    assert "Operand widths: bits 16" in text and "- loihi: does not fit" in text


def test_a_broken_user_target_file_does_not_hide_the_others(tmp_path, monkeypatch):
    """One unreadable file in NEUROSIM_TARGETS made every target unusable, the built-ins too, with an error that
    blamed the target asked for.  It is skipped with a warning naming it; asking for an unknown name lists it."""
    full = {c: 1.0 for c in hw.COUNTERS}
    lat = {k: 0.0 for k in hw.cost.LATENCY_KEYS}
    p = _write_target(tmp_path / "mychip.json", full, lat)
    data = json.loads(p.read_text())
    data["energy_pJ"]["events"]["value"] = -1.0
    p.write_text(json.dumps(data))
    _write_target(tmp_path / "good.json", full, lat, name="good")
    monkeypatch.setenv("NEUROSIM_TARGETS", str(tmp_path))
    with pytest.warns(RuntimeWarning, match=r"cannot be read were skipped: .*mychip.json.*energy_pJ.events"):
        assert hw.get_target("loihi").name == "loihi"
    assert {"loihi", "good"} <= set(hw.targets())
    with pytest.raises(ValueError, match=r"unknown hardware target 'mychip'.*could not be read.*mychip.json"):
        hw.get_target("mychip")
    # a file whose sections are not objects (the loader raised TypeError, which hid every target again)
    data["energy_pJ"] = 5
    p.write_text(json.dumps(data))
    with pytest.warns(RuntimeWarning, match=r"mychip.json: .*'energy_pJ' must be an object"):
        assert hw.get_target("cmos45").name == "cmos45"


def test_a_crossbar_is_priced_whole_whatever_its_kind_says(tmp_path):
    """Whole-array pricing followed kind == "analog" only; a crossbar file with tile resources and another kind
    string was priced with the measured sparse event ops.  A kind that is not a string is refused."""
    base = json.loads(hw.get_target("crossbar").path and open(hw.get_target("crossbar").path).read())
    base["kind"] = "analog-pcm"
    base["name"] = "pcm2"
    (tmp_path / "pcm2.json").write_text(json.dumps(base))
    t = hw.load_target(tmp_path / "pcm2.json")
    assert t.computes_whole_arrays and not hw.get_target("loihi").computes_whole_arrays
    c = hw.OpCounts(samples=1, synaptic_ops=10.0, array_synaptic_ops=100.0)
    assert hw.energy(c, t)["breakdown_J"]["synaptic_ops"] == pytest.approx(100 * t.energy_pJ["synaptic_ops"] * 1e-12)
    base["kind"] = ["x"]
    (tmp_path / "bad.json").write_text(json.dumps(base))
    with pytest.raises(ValueError, match=r"'kind' must be a string"):
        hw.load_target(tmp_path / "bad.json")


def test_resource_counts_are_whole_numbers(tmp_path):
    full = {c: 1.0 for c in hw.COUNTERS}
    lat = {k: 0.0 for k in hw.cost.LATENCY_KEYS}
    p = _write_target(tmp_path / "half.json", full, lat)
    data = json.loads(p.read_text())
    data["resources"] = {"neurons_per_core": {"value": 0.5, "source": "typo", "evidence": "user"},
                         "cores_per_chip": {"value": 4, "source": "x", "evidence": "user"}}
    p.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"resources.neurons_per_core is a count .* a whole number >= 1, got 0.5"):
        hw.load_target(p)


def test_a_neurons_per_core_cap_below_one_unit_is_named():
    """map_circuit(neurons_per_core=1) blamed the fan-in and advised fewer weight bits; the cap is the cause."""
    with pytest.raises(ns.UnsupportedError, match=r"one unit of population 'h1' is 2 neuron\(s\) \(its value and its "
                                                  r"error neuron\), but a core holds 1 \(map_circuit\(neurons_per_core"
                                                  r"=1\) caps it\): allow at least 2"):
        hw.map_circuit(ns.hierarchy([8, 4, 2]), "loihi", neurons_per_core=1)
