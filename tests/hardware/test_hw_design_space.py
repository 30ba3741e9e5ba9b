"""hw-design-space: Pareto fronts and winners on hand-made configurations, the cost of a point on each target,
and a tiny study end to end (in-process Dask worker, NumPy backend) that resumes without recomputing finished
points."""
from __future__ import annotations

import csv
import json

import pytest

from neurosim import hardware as hw
from neurosim.circuits import hw_design_space as DS

pytest.importorskip("distributed", reason="hw-design-space runs on dask[distributed] (the 'distributed' extra)")


def _cfg(label, alg, acc, energy, latency, loihi=True, bits=8, T=5, theta=0.0):
    costs = {"energy_training_J": energy, "latency_training_s": latency, "energy_inference_J": energy / 2,
             "latency_inference_s": latency / 2}
    return {"config": label, "algorithm": alg, "weight_bits": bits, "threshold": theta, "steps": T, "seeds": [0],
            "test_accuracy": acc, "accuracy_sd": 0.0,
            "targets": {"cmos45": dict(costs), "loihi": dict(costs) if loihi else {"unsupported": "too wide"}}}


def _hand_made():
    return [_cfg("A", "pc", 0.92, 10e-9, 4e-6),
            _cfg("B", "event", 0.915, 3e-9, 2e-6, theta=0.03),
            _cfg("C", "bp", 0.93, 5e-9, 1e-6),
            _cfg("D", "event", 0.80, 1e-9, 5e-6, theta=0.1),
            _cfg("E", "pc", 0.90, 20e-9, 8e-6),
            _cfg("F", "pc", 0.99, 0.5e-9, 0.5e-6, loihi=False, bits=0)]


def test_front_is_the_non_dominated_configurations_and_skips_those_that_do_not_fit():
    cs = _hand_made()
    assert [c["config"] for c in DS.front(cs, "loihi", "energy_training_J")] == ["D", "B", "C"]
    assert [c["config"] for c in DS.front(cs, "loihi", "latency_training_s")] == ["C"]
    # F does not fit loihi, but on cmos45 it dominates everything
    assert [c["config"] for c in DS.front(cs, "cmos45", "energy_training_J")] == ["F"]


def test_winner_is_the_cheapest_within_the_tolerance_with_its_margins():
    cs = _hand_made()
    w = DS.winner(cs, "loihi", "energy_training_J", 0.01)
    # within 1 point of the best (C, 0.93): C and A; B (0.915) is 1.5 points below
    assert w["best_accuracy"] == 0.93 and w["candidates"] == 2
    assert w["winner"]["config"] == "C"
    assert w["runner_up"]["config"] == "A" and w["runner_up"]["factor"] == pytest.approx(2.0, rel=1e-12)
    assert w["others"]["pc"] == {**w["others"]["pc"], "config": "A", "within_tolerance": True}
    ev = w["others"]["event"]
    assert ev["config"] == "B" and not ev["within_tolerance"]
    assert ev["accuracy_gap"] == pytest.approx(0.015, rel=1e-9) and ev["factor"] == pytest.approx(0.6, rel=1e-12)
    # a wider tolerance lets the event-driven point in, and it is the cheapest
    w = DS.winner(cs, "loihi", "energy_training_J", 0.02)
    assert w["winner"]["config"] == "B"
    assert w["runner_up"]["config"] == "C" and w["runner_up"]["factor"] == pytest.approx(5 / 3, rel=1e-12)
    assert w["others"]["bp"]["factor"] == pytest.approx(5 / 3, rel=1e-12)
    assert w["others"]["pc"]["config"] == "A" and w["others"]["pc"]["factor"] == pytest.approx(10 / 3, rel=1e-12)
    assert DS.winner([cs[-1]], "loihi", "energy_training_J", 0.01) is None


def test_report_states_the_winner_per_target_and_by_how_much():
    cs = _hand_made()
    targets = ["cmos45", "loihi"]
    cfg = {**DS.SPACE_DEFAULTS, "tolerance": 0.02}
    fronts = {n: {k: DS.front(cs, n, k) for k, _, _ in DS.FRONT_COSTS} for n in targets}
    winners = {n: {k: DS.winner(cs, n, k, 0.02) for k, _, _ in DS.FRONT_COSTS} for n in targets}
    text = DS.report_markdown(cs, targets, winners, fronts, cfg, {"n_points": 6, "n_train": 10, "n_test": 5})
    loihi = text.split("### loihi")[1].split("##")[0]
    assert "Lowest energy per training sample: **B**" in loihi
    assert "runner-up C (accuracy 0.930) at 5 nJ, 1.67x the winner's" in loihi
    assert "cheapest BP within the tolerance: C (accuracy 0.930) at 5 nJ, 1.67x" in loihi
    assert "Lowest latency per training sample: **C**" in loihi
    cmos = text.split("### cmos45")[1].split("###")[0]
    assert "Lowest energy per training sample: **F**" in cmos
    assert "no other configuration is within the tolerance" in cmos
    table = text.split("## loihi: every configuration")[1]
    assert "| F | 0.990 | does not fit (a) |" in table and table.count("too wide") == 1
    assert "Does not fit (a): too wide." in table
    # the evidence behind the numbers: loihi2's energies are assumed; cmos45's latency is operation throughput
    assert "**loihi2**: every non-zero per-operation energy is an *assumed* constant" in DS.report_markdown(
        cs, ["loihi2"], {"loihi2": {}}, {"loihi2": {k: [] for k, _, _ in DS.FRONT_COSTS}}, cfg,
        {"n_points": 6, "n_train": 10, "n_test": 5})
    assert "- cmos45: the time per relaxation step is 0" in text and "loihi: the time per relaxation" not in text
    assert "| B | 0.915 | 3 nJ |" in table and table.split("| B |")[1].split("\n")[0].endswith("| E |")


def test_configurations_average_over_seeds_and_a_misfit_seed_marks_the_configuration():
    def point(seed, acc, e, fits=True):
        t = ({"energy_training_J": e, "latency_training_s": 1.0, "energy_inference_J": e, "latency_inference_s": 1.0,
              "cores": 3} if fits else {"unsupported": "no room"})
        return {"algorithm": "pc", "weight_bits": 8, "threshold": 0.0, "steps": 5, "seed": seed, "test_accuracy": acc,
                "targets": {"loihi": t}}
    cs = DS.configurations([point(0, 0.8, 2.0), point(1, 0.9, 4.0)], ["loihi"])
    assert len(cs) == 1 and cs[0]["seeds"] == [0, 1] and cs[0]["config"] == "PC, T=5, 8-bit"
    assert cs[0]["test_accuracy"] == pytest.approx(0.85, rel=1e-12)
    assert cs[0]["accuracy_sd"] == pytest.approx(0.05 * 2 ** 0.5, rel=1e-9)   # sample SD (n - 1)
    assert cs[0]["targets"]["loihi"]["energy_training_J"] == pytest.approx(3.0, rel=1e-12)
    cs = DS.configurations([point(0, 0.8, 2.0), point(1, 0.9, 4.0, fits=False)], ["loihi"])
    assert cs[0]["targets"]["loihi"] == {"unsupported": "no room"}


def test_bp_on_a_mapped_target_routes_one_value_and_one_error_pass():
    import neurosim as ns
    net = ns.hierarchy([64, 16, 10], phi="tanh")
    bp = hw.count_bp(net, 4)
    for target in ("crossbar", "loihi"):   # crossbar: values routed to and from tiles; Loihi: a W^T copy written
        c = DS.target_costs(net, bp, "bp", 1, 8, target)
        m = {T: hw.map_circuit(net, target, steps=T, weight_bits=8) for T in (1, 2, 3)}
        hv_he = m[2].routing_energy_J - m[1].routing_energy_J
        hv = m[1].routing_energy_J - hv_he
        assert m[3].routing_energy_J == pytest.approx(4 * hv + 3 * (hv_he - hv), rel=1e-10)   # (T+1) h_v + T h_e
        e = hw.energy(bp.scaled(1 / bp.samples), target)["per_sample_J"]
        assert c["energy_training_J"] == pytest.approx(e + hv_he + m[1].transpose_write_energy_J, rel=1e-10)
        assert c["energy_inference_J"] == pytest.approx(hw.energy(DS._without_learning(bp.scaled(1 / bp.samples)),
                                                                  target)["per_sample_J"] + hv, rel=1e-10)
        assert (hv_he > 0.1 * e) if target == "crossbar" else (m[1].transpose_write_energy_J > 0.1 * e)
        update = m[1].latency_training_s - m[1].latency_inference_s
        assert c["latency_training_s"] == pytest.approx(4 * m[1].latency_step_s + update, rel=1e-10)   # 2 x depth 2
        assert c["latency_inference_s"] == pytest.approx(2 * m[1].latency_step_s, rel=1e-10)
    # float64 weights (32 bits) do not fit Loihi's 9-bit synapses: said, not raised
    assert "weight_bits_max" in DS.target_costs(net, bp, "bp", 1, 0, "loihi")["unsupported"]
    # a target without chip resources prices the counts, precision-scaled
    c8, c4 = (DS.target_costs(net, bp, "bp", 1, b, "cmos45") for b in (8, 4))
    assert c8["model"] == "operation counts" and c4["energy_training_J"] < c8["energy_training_J"]


TINY = {"scheduler": "inprocess", "backend": "reference", "n_train": 64, "n_test": 32, "epochs": 1, "hidden": [4],
        "weight_bits": [8, 0], "steps": [3], "thresholds": [0.05], "seeds": [0], "targets": ["cmos45", "loihi"]}


def test_tiny_study_end_to_end_resumes_without_recomputing(tmp_path):
    from neurosim.experiment import run_experiment
    from neurosim import registry
    exp = registry.get("hw-design-space")
    out = tmp_path / "ds"
    m = run_experiment(exp, {**TINY, "figures": False}, out=out, progress=False)
    # PC and event PC: 2 bits x 1 T; event: x 1 threshold; BP: 2 bits
    assert m["n_points"] == 6 and m["computed"] == 6 and m["skipped"] == 0 and m["n_configurations"] == 6
    files = sorted(out.glob("points/*/points/*/metrics.json"))
    assert len(files) == 6
    before = {f: f.read_bytes() for f in files}
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 12   # 6 configurations x 2 targets
    misfit = [r for r in rows if r["target"] == "loihi" and r["weight_bits"] == "0"]
    assert len(misfit) == 3 and all(r["fits"] == "False" and "weight_bits_max" in r["note"] for r in misfit)
    assert all(r["fits"] == "True" for r in rows if r["target"] == "cmos45")
    report = (out / "report.md").read_text()
    assert "### loihi" in report and "Lowest energy per training sample: **" in report
    assert report.splitlines()[2].startswith("6 points (6 configurations x 1 seed(s))")
    assert json.loads((out / "metrics.json").read_text())["winners"]["loihi"]["energy"] != "none fits"
    # event-driven points feed their measured activity to the mapping
    ev = [json.loads(f.read_text()) for f in files if "/event/" in str(f)]
    assert ev and all(0 < p["activity"] < 1 and p["targets"]["cmos45"]["model"] == "operation counts" for p in ev)
    assert all(p["targets"]["loihi"]["activity"] == pytest.approx(p["activity"], rel=1e-12)
               for p in ev if "activity" in p["targets"]["loihi"])
    # resume: nothing recomputed, the finished points untouched
    m2 = run_experiment(exp, {**TINY, "figures": False}, out=out, progress=False)
    assert m2["computed"] == 0 and m2["skipped"] == 6
    assert {f: f.read_bytes() for f in files} == before
    # a lost point (e.g. a sweep killed while it ran) is the only one computed again
    files[0].unlink()
    m3 = run_experiment(exp, {**TINY, "figures": False}, out=out, progress=False)
    assert m3["computed"] == 1 and m3["skipped"] == 5
    assert m3["winners"] == m["winners"]


def test_run_scheduler_flag(tmp_path, capsys):
    from neurosim.cli import main
    assert main(["run", "hw-mapping", "--scheduler", "tcp://nowhere:1", "--out", str(tmp_path)]) == 2
    assert "hw-mapping does not run on Dask" in capsys.readouterr().err
    assert main(["run", "hw-design-space", "--scheduler", "tcp://a:1", "--set", "scheduler=tcp://b:1",
                 "--out", str(tmp_path)]) == 2
    assert "disagree" in capsys.readouterr().err


def test_a_rerun_with_other_settings_into_the_same_out_reports_only_its_own_points(tmp_path):
    from neurosim import registry
    from neurosim.experiment import run_experiment
    exp = registry.get("hw-design-space")
    out = tmp_path / "ds"
    small = {**TINY, "weight_bits": [8], "figures": False}
    run_experiment(exp, {**small, "algorithms": ["pc", "bp"]}, out=out, progress=False)
    m = run_experiment(exp, {**small, "algorithms": ["bp"], "epochs": 2}, out=out, progress=False)
    # the 1-epoch BP point is not reused (epochs is a fixed setting, not a grid key) and the PC point is not reported
    assert m["computed"] == 1 and m["skipped"] == 0 and m["n_finished"] == 1 and m["n_configurations"] == 1
    assert [c["algorithm"] for c in m["configurations"]] == ["bp"] and m["configurations"][0]["seeds"] == [0]
    assert "PC, T=" not in (out / "report.md").read_text()
    points = [json.loads(f.read_text()) for f in out.glob("points/bp/points/*/metrics.json")]
    assert sorted(p["epochs"] for p in points) == [1, 2]


def test_missing_dask_is_a_usage_error_and_inprocess_needs_no_dask(tmp_path, monkeypatch, capsys):
    import sys
    from neurosim.cli import main
    monkeypatch.setitem(sys.modules, "dask.distributed", None)   # import fails as if Dask were not installed
    monkeypatch.setitem(sys.modules, "distributed", None)
    assert main(["run", "hw-design-space", "--out", str(tmp_path / "a"), "--set", "n_train=8"]) == 2
    assert "pip install 'neurosim[distributed]'" in capsys.readouterr().err
    argv = ["run", "hw-design-space", "--out", str(tmp_path / "b"), "--no-progress"]
    for k, v in {**TINY, "weight_bits": [8], "algorithms": ["bp"]}.items():
        argv += ["--set", f"{k}={json.dumps(v) if not isinstance(v, str) else v}"]
    assert main(argv) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["computed"] == 1


def test_an_interrupted_study_records_its_finished_points(tmp_path, monkeypatch):
    from neurosim import registry
    from neurosim.experiment import run_experiment
    import neurosim.sweep as S
    exp = registry.get("hw-design-space")
    out = tmp_path / "ds"
    real, calls = S._run_point, []

    def stop_after_one(*a, **k):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*a, **k)
    monkeypatch.setattr(S, "_run_point", stop_after_one)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(exp, {**TINY, "weight_bits": [8], "algorithms": ["bp", "pc"], "figures": False}, out=out,
                       progress=False)
    m = json.loads((out / "metrics.json").read_text())
    part = m["partial"]["reported"]
    assert m["status"] == "interrupted" and part["n_points"] == 2 and part["n_finished"] == 1
    assert len(part["finished_points"]) == 1 and (out / part["finished_points"][0] / "metrics.json").exists()
    assert part["winners"]["cmos45"]["energy"] == "PC, T=3, 8-bit" and (out / "report.md").exists()
    # the report over the partial run says how much of the grid it covers (it said "2 points (1 configurations x
    # 1 seed(s))" as if the grid were done)
    head = (out / "report.md").read_text().splitlines()[2]
    assert head.startswith("1 of 2 points finished") and "finished points only" in head
    from circuits.hw_design_space import _spread_note
    assert "over the 2 seeds" in _spread_note([{"seeds": [0, 1]}, {"seeds": [2, 3]}])
    assert "finished seeds of a configuration (1 to 3" in _spread_note([{"seeds": [0, 1, 2]}, {"seeds": [0]}])
    assert _spread_note([{"seeds": [0]}]).startswith("Accuracy is from one seed")
    # a point whose metrics.json says "running" (a worker writing it when the interrupt came) is not finished: it
    # was listed among the finished points while not counted in n_finished
    from neurosim import experiment as E
    from neurosim.experiment import params_of, resolve_config
    cfg = resolve_config(exp.DEFAULTS, {**TINY, "weight_bits": [8], "algorithms": ["bp", "pc"], "figures": False},
                         params_of(exp))
    pending = [d for d in DS.point_dirs(cfg, out) if not (d / "metrics.json").exists()]
    assert len(pending) == 1
    pending[0].mkdir(parents=True, exist_ok=True)
    (pending[0] / "metrics.json").write_text(json.dumps({"status": "running"}))
    token = E._PARTIAL.set({})
    try:
        DS._record_partial(cfg, out, {"n_points": 2})
        again = E._PARTIAL.get()
    finally:
        E._PARTIAL.reset(token)
    assert again["n_finished"] == 1 and again["finished_points"] == part["finished_points"]


def test_a_winner_within_the_seed_spread_is_flagged():
    cs = _hand_made()
    w = DS.winner(cs, "loihi", "energy_training_J", 0.01)
    assert w["within_spread"] == []            # one seed each: no spread
    for c in cs:
        c["accuracy_sd"] = 0.01                # B (0.915, cheaper than C) misses 0.92 by 0.005 < one SD
    w = DS.winner(cs, "loihi", "energy_training_J", 0.01)
    assert w["winner"]["config"] == "C" and w["within_spread"] == ["B"]
    assert "**within the seed spread**: B" in DS._describe_winner(w, "J", "energy per training sample", 0.01)
