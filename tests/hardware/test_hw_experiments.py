"""The three hardware experiments: each runs end to end on a tiny configuration (metrics.json, figures)
and shows one scientific property."""
from __future__ import annotations

import json

import numpy as np
import pytest

from neurosim import registry
from neurosim.cli import main
from neurosim.experiment import run_experiment

TINY = {"n_train": 320, "n_test": 200, "epochs": 3, "hidden": [16], "steps": 12}


def read(out):
    return json.loads((out / "metrics.json").read_text())


def test_listed_and_shown(capsys):
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    for name in ("hw-precision", "hw-event-driven", "hw-energy"):
        assert name in text
    assert main(["show", "hw-precision"]) == 0
    assert "weight_bits =" in capsys.readouterr().out


def test_hw_precision_accuracy_rises_with_bits_and_falls_with_noise(tmp_path):
    cfg = {**TINY, "weight_bits_axis": [2, 8], "activity_bits_axis": [2, 8], "noise_axis": [0.02, 0.6],
           "weight_bits": 6, "activity_bits": 8}
    m = run_experiment(registry.get("hw-precision"), cfg, out=tmp_path, progress=False)
    assert read(tmp_path)["test_accuracy"] == m["test_accuracy"]
    for f in m["figures"]:
        assert (tmp_path / f).stat().st_size > 1000
    c = m["curves"]
    for alg in ("pc", "bp"):
        assert c["float"][alg] > 0.6, c["float"]
        assert c["weight_bits"][alg][1] > c["weight_bits"][alg][0] + 0.2, c["weight_bits"]      # 8 vs 2 bits
        assert c["activity_bits"][alg][1] > c["activity_bits"][alg][0] + 0.1, c["activity_bits"]
        assert c["noise"][alg][1] < c["noise"][alg][0] - 0.1, c["noise"]                         # 0.6 vs 0.02
    # fewer bits cost less energy on the digital target (multipliers ~ product of widths)
    assert c["weight_bits"]["pc_energy_J"][0] < c["weight_bits"]["pc_energy_J"][1]
    assert 0 < m["energy_per_sample_J"] and 0 < m["bp_energy_per_sample_J"] < m["energy_per_sample_J"]


def test_hw_event_driven_threshold_zero_is_clock_driven_and_traffic_falls(tmp_path):
    from neurosim.circuits import _hardware_common as C
    from neurosim import hardware as hw
    cfg = {**TINY, "thresholds": [0.0, 0.01, 0.1], "fidelity_batch": 16, "fidelity_steps": 40}
    m = run_experiment(registry.get("hw-event-driven"), cfg, out=tmp_path, progress=False)
    assert set(m["figures"]) <= {p.name for p in tmp_path.iterdir()}
    rows = m["curve"]
    assert rows[0]["relax_state_error"] == 0.0 and rows[-1]["relax_state_error"] > 1e-3
    ev = [r["events_per_sample"] for r in rows]
    ops = [r["synaptic_ops_per_sample"] for r in rows]
    assert ev[0] > ev[1] > ev[2] and ops[0] > ops[1] > ops[2]
    assert ev[0] < rows[0]["clock_events_per_sample"]            # silent units save traffic even at theta = 0
    # the relaxation's wall time is reported against its events and synaptic ops (values: benchmarks/events.py)
    assert "wall_vs_events.png" in m["figures"] and set(m["relax_wall_fit"]) == {"ns_per_synaptic_op",
                                                                                 "fixed_us_per_sample"}
    for r in rows:
        assert r["relax_events_per_sample"] * 16 == r["relax_events"] and r["relax_wall_ms_per_sample"] > 0
        assert r["relax_synaptic_ops_per_sample"] > 0
    assert m["energy_per_sample_J"] < m["clock_energy_per_sample_J"]
    # threshold 0 trains exactly like clock-driven PC on the simulator's own kernel
    full = {**registry.get("hw-event-driven").DEFAULTS, **cfg}
    clock = C.train_eval(full, hw.HardwareModel(), "pc", C.load(full))
    assert clock["chip"].hardware.engine is None
    assert rows[0]["test_accuracy"] == clock["test_accuracy"]


def test_hw_energy_ratio_matches_closed_form_and_grows_with_steps(tmp_path):
    cfg = {**TINY, "steps_axis": [2, 8], "epochs": 1}
    m = run_experiment(registry.get("hw-energy"), cfg, out=tmp_path, progress=False)
    assert m["pc_bp_mac_ratio"] == pytest.approx(m["pc_bp_mac_ratio_closed_form"], rel=1e-12)
    rep = json.loads((tmp_path / "cost_report.json").read_text())
    assert set(rep["targets"]) == {"cmos45", "loihi", "spinnaker2", "crossbar"}
    assert m["energy_per_sample_J"] == rep["targets"]["loihi"]["pc_energy_per_sample_J"]
    assert "Davies" in (tmp_path / "cost_report.md").read_text()
    r2, r8 = m["curve"]
    for name in rep["targets"]:
        assert r8["targets"][name]["pc_bp_energy_ratio"] > r2["targets"][name]["pc_bp_energy_ratio"] > 1
        assert r8["targets"][name]["pc_time_to_settle_s"] >= r2["targets"][name]["pc_time_to_settle_s"]
    assert r8["pc_bp_mac_ratio"] > r2["pc_bp_mac_ratio"]
    # the analog crossbar is the cheapest target per synaptic op, Loihi the dearest
    e = {n: r2["targets"][n]["pc_energy_per_sample_J"] for n in rep["targets"]}
    assert e["crossbar"] == min(e.values()) and e["loihi"] == max(e.values())
    assert np.isfinite(m["time_to_settle_s"]) and m["time_to_settle_s"] > 0
