"""Sweeps on Dask: grid parsing, the Pareto front, a 24-point sweep that survives a killed worker with no
finished point lost and resumes without recomputing finished points, and the ``neurosim sweep`` command."""
from __future__ import annotations

import json
import re
import logging
import os
import signal
import time

import numpy as np
import pytest

from neurosim.cli import main
from neurosim.experiment import ConfigError
from neurosim.sweep import expand, parse_grid, pareto_front, point_name, run_sweep

distributed = pytest.importorskip("distributed", reason="sweeps need dask[distributed] (the 'distributed' extra)")

DEFAULTS = {"seed": 0, "lr": 0.1, "hidden": [32], "rounding": "nearest", "figures": True}

#: tiny, fast points of the real hw-precision experiment (PC and BP each train once per point); NumPy backend
#: and engine, so that the workers never wait for a numba compilation
TINY = {"curves": False, "figures": False, "n_train": 96, "n_test": 64, "epochs": 2, "hidden": [8], "steps": 8,
        "batch_size": 16, "backend": "reference"}


def test_parse_grid_coerces_values_and_keeps_bracketed_lists():
    g = parse_grid(["seed=0,1,2", "lr=0.1,1", "hidden=[16,16],[32]", "rounding=nearest,stochastic"], DEFAULTS)
    assert g == {"seed": [0, 1, 2], "lr": [0.1, 1.0], "hidden": [[16, 16], [32]],
                 "rounding": ["nearest", "stochastic"]}
    assert isinstance(g["lr"][1], float)
    pts = expand(g)
    assert len(pts) == 3 * 2 * 2 * 2 and pts[0] == {"seed": 0, "lr": 0.1, "hidden": [16, 16], "rounding": "nearest"}
    assert point_name("x", pts[0], list(g)) != point_name("x", pts[1], list(g))
    assert point_name("x", pts[0], list(g)) == point_name("x", dict(pts[0]), list(g))
    for bad, msg in ((["seed"], "KEY=V1"), (["nope=1"], "unknown parameter 'nope'"), (["seed=1", "seed=2"], "twice"),
                     (["seed=1,,2"], "empty value"), (["seed=a"], "seed="), (["figures=1"], "figures=")):
        with pytest.raises(ConfigError, match=msg):
            parse_grid(bad, DEFAULTS)


def test_parse_grid_reads_string_parameters_as_set_does():
    """A hardware value with a comma inside its parentheses, and the ideal baseline 'none', are one value each
    (the first was split again at its inner comma, the second read as None and refused)."""
    from neurosim import registry
    from neurosim.experiment import params_of
    mod = registry.get("digits")
    g = parse_grid(["hardware=weights:Quantize(8, bound=2.0),none,off"], mod.DEFAULTS, params_of(mod))
    assert g == {"hardware": ["weights:Quantize(8, bound=2.0)", "none", "off"]}


def test_pareto_front():
    pts = [(1.0, 0.5), (2.0, 0.7), (1.5, 0.4), (3.0, 0.7), (0.5, 0.1), (4.0, 0.9), (2.5, 0.8)]
    assert pareto_front(pts) == [4, 0, 1, 6, 5]
    assert pareto_front([(1, 1.0), (1, 2.0)]) == [1]


@pytest.fixture(scope="module")
def cluster():
    from dask.distributed import Client, LocalCluster
    c = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                     silence_logs=logging.CRITICAL)
    client = Client(c, timeout=120)
    client.wait_for_workers(2, timeout=120)
    yield client
    client.close()
    c.close()


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sweep_survives_a_killed_worker_and_resumes(cluster, tmp_path):
    from neurosim import registry
    grid = parse_grid(["weight_bits=0,3,6,8", "activity_bits=0,6", "seed=0,1,2"], registry.get("hw-precision").DEFAULTS)
    assert len(expand(grid)) == 24
    out = tmp_path / "sweep"
    reported, state = [], {}

    def on_point(overrides, metrics):
        reported.append(overrides)
        if len(reported) == 6 and "killed" not in state:
            # snapshot what is finished, then SIGKILL a worker that is running a point right now
            state["before"] = {point_name("hw-precision", o, list(grid)): (out / "points" / point_name(
                "hw-precision", o, list(grid)) / "metrics.json").read_bytes() for o in reported}
            deadline = time.time() + 60
            busy = []
            while not busy and time.time() < deadline:
                busy = [w for w, keys in cluster.processing().items() if keys]
                if not busy:
                    time.sleep(0.05)
            assert busy, "no worker was running a point"
            addr = busy[0]
            pid = cluster.run(os.getpid, workers=[addr])[addr]
            os.kill(pid, signal.SIGKILL)
            state["killed"] = pid

    fixed = dict(TINY)
    res = run_sweep("hw-precision", grid, out, fixed=fixed, client=cluster, progress=False, callback=on_point)
    assert "killed" in state and not _alive(state["killed"])
    assert res.ok, res.failed
    assert len(res.rows) == 24 and len(res.computed) == 24 and not res.skipped
    assert len(reported) == 24 and len({json.dumps(o, sort_keys=True) for o in reported}) == 24
    for pid, data in state["before"].items():  # finished before the kill: kept, and never recomputed
        assert (out / "points" / pid / "metrics.json").read_bytes() == data
    rows = {(r["weight_bits"], r["activity_bits"], r["seed"]): r for r in res.rows}
    assert all(0.0 <= r["test_accuracy"] <= 1.0 and r["energy_per_sample_J"] > 0 for r in rows.values())
    table = (out / "results.csv").read_text().splitlines()
    assert len(table) == 25 and "test_accuracy" in table[0]
    assert {"test_accuracy_vs_weight_bits.png", "test_accuracy_vs_activity_bits.png", "pareto.png"} <= set(res.figures)
    assert res.pareto and all((out / f).exists() for f in res.figures)
    # quantising the stored weights to 3 bits lowers the stored-weight energy but costs accuracy
    assert rows[3, 0, 0]["energy_per_sample_J"] < rows[0, 0, 0]["energy_per_sample_J"]

    # resume: nothing finished is computed again (no cluster work at all)
    snap = {p.name: (p / "metrics.json").read_bytes() for p in (out / "points").iterdir()}
    again = run_sweep("hw-precision", grid, out, fixed=fixed, client=cluster, progress=False)
    assert again.computed == [] and len(again.skipped) == 24 and len(again.rows) == 24
    assert {p.name: (p / "metrics.json").read_bytes() for p in (out / "points").iterdir()} == snap
    # a point lost from disk is the only one recomputed
    lost = next(iter(snap))
    (out / "points" / lost / "metrics.json").unlink()
    third = run_sweep("hw-precision", grid, out, fixed=fixed, client=cluster, progress=False)
    assert third.computed == [lost] and len(third.skipped) == 23


def test_cli_sweep(cluster, tmp_path, capsys):
    addr = cluster.scheduler.address
    out = tmp_path / "cli"
    base = ["sweep", "hw-energy", "--out", str(out), "--no-progress"]
    fixed = ["--set", "backend=reference", "--set", "curves=false", "--set", "figures=false", "--set", "n_train=64",
             "--set", "n_test=32",
             "--set", "epochs=1", "--set", "hidden=[8]", "--set", "targets=cmos45,loihi"]
    assert main(base + ["--grid", "steps=2,6"] + fixed + ["--scheduler", addr]) == 0
    text = capsys.readouterr().out
    assert "2 computed now, 0 already finished" in text and "results.csv" in text
    assert main(base + ["--grid", "steps=2,6"] + fixed + ["--scheduler", addr]) == 0
    assert "0 computed now, 2 already finished" in capsys.readouterr().out
    rows = json.loads((out / "results.json").read_text())["rows"]
    r2, r6 = sorted(rows, key=lambda r: r["steps"])
    assert r6["pc_bp_mac_ratio"] > r2["pc_bp_mac_ratio"]
    assert r2["pc_bp_mac_ratio"] == pytest.approx(r2["pc_bp_mac_ratio_closed_form"], rel=1e-12)


@pytest.mark.parametrize("argv, fragment", [
    (["sweep", "hw-energy"], "at least one --grid"),
    (["sweep", "no-such", "--grid", "seed=1"], "unknown experiment"),
    (["sweep", "hw-energy", "--grid", "nope=1,2"], "unknown parameter 'nope'"),
    (["sweep", "hw-energy", "--grid", "steps"], "KEY=V1"),
    (["sweep", "hw-energy", "--grid", "steps=a,b"], "steps="),
    (["sweep", "hw-energy", "--grid", "steps=1,2", "--set", "steps=3"], "both swept"),
    (["sweep", "hw-energy", "--grid", "steps=1,2", "--workers", "0"], "--workers"),
    (["sweep", "hw-energy", "--grid", "steps=1", "--set", "epochs"], "KEY=VALUE"),
])
def test_cli_sweep_bad_arguments_exit_2_with_one_line(argv, fragment, capsys, tmp_path):
    assert main(argv + ["--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1


#: small, fast points of the bear experiment (its metrics are nested: pc.min_correct_output, ...)
BEAR = {"backend": "reference", "lr_sweep": [0.1], "sweep_time": 0.4, "iterations": 6, "relax_steps": 32}


def test_sweep_flattens_nested_metrics_and_plots_them(cluster, tmp_path, monkeypatch):
    from neurosim import plot
    labels = []
    real = plot.comparison

    def spy(curves, *args, **kwargs):
        labels.append(kwargs.get("ylabel"))
        return real(curves, *args, **kwargs)
    monkeypatch.setattr(plot, "comparison", spy)
    out = tmp_path / "bear"
    grid = {"lr": [0.1, 0.2]}
    res = run_sweep("bear", grid, out, fixed=BEAR, client=cluster, progress=False, metric="pc.min_correct_output")
    assert res.ok and len(res.rows) == 2
    import csv
    with open(out / "results.csv", newline="") as f:
        table = list(csv.DictReader(f))
    for row in table:  # every nested scalar is a dotted column, equal to the point's metrics.json
        m = json.loads((out / "points" / row["point"] / "metrics.json").read_text())
        assert float(row["pc.min_correct_output"]) == m["pc"]["min_correct_output"]
        assert float(row["bp.target_alignment_first_step"]) == m["bp"]["target_alignment_first_step"]
        assert "pc.output_trajectory" not in row and "environment.python" not in row
    assert res.figures == ["pc.min_correct_output_vs_lr.png"] and (out / res.figures[0]).exists()
    assert labels == ["pc.min_correct_output"]  # one seed: no "mean +- sd over seeds"
    labels.clear()
    res = run_sweep("bear", {"lr": [0.1, 0.2], "seed": [0, 1]}, tmp_path / "seeds", fixed=BEAR, client=cluster,
                    progress=False, metric="pc.min_correct_output")
    assert labels == ["pc.min_correct_output (mean ± sd over 2 seeds)"]


def test_cli_sweep_unknown_metric_exits_2_listing_the_metrics(cluster, tmp_path, capsys):
    base = ["sweep", "bear", "--out", str(tmp_path / "s"), "--no-progress", "--scheduler", cluster.scheduler.address,
            "--grid", "lr=0.1,0.2"] + [a for k, v in BEAR.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    assert main(base + ["--metric", "nosuch"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown metric 'nosuch'" in err
    assert "pc.min_correct_output" in err and "bp.target_alignment_first_step" in err
    # the unknown metric stopped the sweep at its first finished point (the other may have finished beside it on
    # the second worker); the re-run goes on from what finished
    assert main(base + ["--metric", "pc.min_correct_output"]) == 0
    now, before = map(int, re.search(r"(\d) computed now, (\d) already finished", capsys.readouterr().out).groups())
    assert now + before == 2 and before >= 1
    assert (tmp_path / "s" / "pc.min_correct_output_vs_lr.png").exists()


@pytest.mark.parametrize("content, why", [
    ("{}", "no status"), ("[]", "not a JSON object"), ('{"status": "ok"}', "experiment"),
    ('{"status": "failed", "experiment": "bear", "wall_time_s": 1.0, "x": 1}', "status 'failed'"),
    ('{"status": "ok", "experiment": "bear", "wall_time_s": NaN, "x": 1}', "wall_time_s"),
    ('{"status": "ok", "experiment": "bear", "wall_time_s": 1.0, "pc": {"min_correct_output": NaN}}', "NaN"),
    ('{"status": "ok", "experiment": "bear", "wall_time_s": 1.0, "pc": [1, Infinity]}', "NaN or infinity"),
    ('{"status": "ok", "experiment": "other", "wall_time_s": 1.0, "x": 1}', "experiment 'other'"),
    ('{"status": "ok", "experiment": "bear", "wall_time_s": 1.0}', "no metrics"),
])
def test_a_point_is_finished_only_with_valid_metrics(content, why):
    from neurosim.sweep import valid_point
    assert why in valid_point(json.loads(content), "bear")
    assert valid_point({"status": "ok", "experiment": "bear", "wall_time_s": 1.0, "pc": {"x": None}}, "bear") is None


def test_resume_recomputes_points_whose_metrics_are_not_a_result(cluster, tmp_path):
    out = tmp_path / "s"
    grid = {"lr": [0.1, 0.2, 0.3, 0.4]}
    first = run_sweep("bear", grid, out, fixed=BEAR, client=cluster, progress=False)
    assert first.ok and len(first.rows) == 4
    good = {r["point"]: r["pc.min_correct_output"] for r in first.rows}
    broken = [r["point"] for r in first.rows[:3]]
    for pid, content in zip(broken, ["{}", "garbage{", json.dumps({"status": "failed", "experiment": "bear",
                                                                 "wall_time_s": 1.0, "error": {}})]):
        (out / "points" / pid / "metrics.json").write_text(content)
    again = run_sweep("bear", grid, out, fixed=BEAR, client=cluster, progress=False)
    assert sorted(again.computed) == sorted(broken) and again.skipped == [first.rows[3]["point"]]
    again_rows = {r["point"]: r["pc.min_correct_output"] for r in again.rows}  # complete rows, same numbers
    assert again_rows == pytest.approx(good, rel=1e-12)


def test_fixed_settings_are_part_of_a_point_and_a_mismatched_point_is_recomputed(tmp_path):
    out = tmp_path / "s"
    grid = {"seed": [0]}
    first = run_sweep("hw-precision", grid, out, fixed={**TINY, "epochs": 1}, scheduler="inprocess", progress=False)
    second = run_sweep("hw-precision", grid, out, fixed={**TINY, "epochs": 2}, scheduler="inprocess", progress=False)
    assert len(first.computed) == 1 and len(second.computed) == 1 and not second.skipped
    assert len(second.rows) == 1 and first.rows[0]["point"] != second.rows[0]["point"]
    assert json.loads((out / "points" / second.rows[0]["point"] / "config.json").read_text())["epochs"] == 2
    # a point directory whose saved settings differ from the sweep's (e.g. copied by hand) is not reused
    d = out / "points" / second.rows[0]["point"]
    saved = json.loads((d / "point.json").read_text())
    (d / "point.json").write_text(json.dumps({**saved, "overrides": {**saved["overrides"], "epochs": 3}}))
    third = run_sweep("hw-precision", grid, out, fixed={**TINY, "epochs": 2}, scheduler="inprocess", progress=False)
    assert len(third.computed) == 1 and not third.skipped


def test_sweep_plots_show_the_sample_sd_and_a_readable_energy_axis(tmp_path, monkeypatch):
    """The band is the sample standard deviation over seeds (ddof 1, as hw-design-space reports), and a Pareto
    plot whose energies span less than a decade gets a linear axis with numbers and the unit in its label."""
    from neurosim import plot
    from neurosim.sweep import _plots
    seen = {}
    real_cmp, real_save = plot.comparison, plot.save
    monkeypatch.setattr(plot, "comparison", lambda curves, *a, **k: seen.setdefault("curves", curves) and
                        real_cmp(curves, *a, **k))

    def save(fig, path, *a, **k):
        seen[path.name] = fig.axes[0]
        return real_save(fig, path, *a, **k)
    monkeypatch.setattr(plot, "save", save)
    rows = [{"weight_bits": b, "seed": s, "acc": a, "energy_per_sample_J": e}
            for b, s, a, e in ((3, 0, 0.5, 7.1e-8), (3, 1, 0.6, 7.2e-8), (6, 0, 0.8, 9.0e-8), (6, 1, 0.8, 9.7e-8))]
    figures, front = _plots(tmp_path, {"weight_bits": [3, 6], "seed": [0, 1]}, rows, "acc", "energy_per_sample_J")
    assert figures == ["acc_vs_weight_bits.png", "pareto.png"] and front
    (xs, ys, err), = seen["curves"].values()
    np.testing.assert_allclose(err, [np.std([0.5, 0.6], ddof=1), 0.0])
    ax = seen["pareto.png"]
    assert ax.get_xscale() == "linear" and ax.get_xlabel() == "energy per sample (J)"
    # the front is over configurations at their seed means: 3 bits (0.55 at 7.15e-8), 6 bits (0.8 at 9.35e-8),
    # with every seed of each; per seed, (3, seed 1) and (3, seed 0) were both "on the front"
    assert sorted((r["weight_bits"], r["seed"]) for r in front) == [(3, 0), (3, 1), (6, 0), (6, 1)]
    rows[0]["acc"] = 0.9                    # 3 bits: mean 0.75 at the lower energy
    rows[2]["acc"] = rows[3]["acc"] = 0.7   # 6 bits: mean 0.7 at a higher energy, dominated: off the front
    _, front = _plots(tmp_path, {"weight_bits": [3, 6], "seed": [0, 1]}, rows, "acc", "energy_per_sample_J")
    assert sorted((r["weight_bits"], r["seed"]) for r in front) == [(3, 0), (3, 1)]


def _fail_points(monkeypatch, when, error):
    """Sweep points whose overrides satisfy ``when`` raise ``error``; the others run for real."""
    import neurosim.sweep as S
    real = S._run_point

    def failing_point(experiment, ov, out_dir):
        if when(ov):
            raise error
        return real(experiment, ov, out_dir)
    monkeypatch.setattr(S, "_run_point", failing_point)


def test_a_failed_point_keeps_its_traceback_in_error_json_and_the_sweep_goes_on(tmp_path, monkeypatch):
    _fail_points(monkeypatch, lambda ov: ov["seed"] == 1, FloatingPointError("point went wrong\nsecond line"))
    res = run_sweep("hw-precision", {"seed": [0, 1]}, tmp_path / "s", fixed=TINY, scheduler="inprocess",
                    progress=False)
    assert len(res.computed) == 1 and len(res.failed) == 1
    (pid, message), = res.failed.items()
    assert message == "FloatingPointError: point went wrong"   # one line for the summary
    err = json.loads((tmp_path / "s" / "points" / pid / "error.json").read_text())
    assert err["error"] == message and err["overrides"]["seed"] == 1
    assert "Traceback (most recent call last)" in err["traceback"] and "failing_point" in err["traceback"]
    assert err["traceback"].rstrip().endswith("second line")
    assert not any(set(ln.strip()) <= set("^~") and ln.strip() for ln in err["traceback"].splitlines())


def test_the_local_cluster_silences_worker_logs_and_warns_about_more_workers_than_cores(monkeypatch, caplog):
    import types
    import neurosim.sweep as S
    made = {}

    class Cluster:
        def __init__(self, **kw):
            made.update(kw)

        def close(self):
            made["closed"] = True

    class Client:
        def __init__(self, cluster, timeout):
            self.cluster = cluster

        def run(self, f):
            made["ran"] = f.__name__
    monkeypatch.setattr(S, "require_dask", lambda what: types.SimpleNamespace(LocalCluster=Cluster, Client=Client))
    monkeypatch.setattr(S, "_cores", lambda: 2)
    with caplog.at_level(logging.WARNING, logger="neurosim"):
        client, cluster = S.local_cluster(None)
    assert made["n_workers"] == 2 and made["threads_per_worker"] == 1 and made["silence_logs"] == logging.CRITICAL
    assert made["ran"] == "_ignore_sigint" and not caplog.records
    with caplog.at_level(logging.WARNING, logger="neurosim"):
        S.local_cluster(3)
    assert made["n_workers"] == 3 and "3 Dask workers on 2 core(s)" in caplog.text and "--workers 2" in caplog.text


def test_cli_sweep_with_one_finished_point_says_why_there_is_no_plot(tmp_path, monkeypatch, capsys):
    """A sweep whose other points failed said the plots 'need a numeric --grid key with at least 2 values' while
    its key had two; it now says only one point finished, and exits 1 naming the failure."""
    _fail_points(monkeypatch, lambda ov: ov["lr"] == 0.2, FloatingPointError("diverged"))
    argv = ["sweep", "hw-precision", "--out", str(tmp_path / "s"), "--no-progress", "--scheduler", "inprocess",
            "--grid", "lr=0.1,0.2"] + [a for k, v in TINY.items() for a in ("--set", f"{k}={str(v).lower()}")]
    assert main(argv) == 1
    cap = capsys.readouterr()
    assert "1 finished point in" in cap.out and "(no plots: only one point finished)" in cap.out
    assert "FloatingPointError: diverged" in cap.err


def test_an_unknown_metric_stops_the_sweep_at_its_first_point(tmp_path):
    """--metric nosuch was reported after every point had run; it stops at the first finished one (kept), and a
    sweep whose finished points already show the metric missing stops before computing anything."""
    from neurosim.experiment import ConfigError
    out = tmp_path / "s"
    with pytest.raises(ConfigError, match=r"unknown metric 'nosuch'.*finished points are kept"):
        run_sweep("bear", {"lr": [0.1, 0.2, 0.3]}, out, fixed=BEAR, scheduler="inprocess", progress=False,
                  metric="nosuch")
    assert len(list(out.glob("points/*/metrics.json"))) == 1
    with pytest.raises(ConfigError, match=r"unknown metric 'nosuch'"):
        run_sweep("bear", {"lr": [0.1, 0.2, 0.3]}, out, fixed=BEAR, scheduler="inprocess", progress=False,
                  metric="nosuch")
    assert len(list(out.glob("points/*/metrics.json"))) == 1
    res = run_sweep("bear", {"lr": [0.1, 0.2, 0.3]}, out, fixed=BEAR, scheduler="inprocess", progress=False,
                    metric="pc.min_correct_output")
    assert len(res.skipped) == 1 and len(res.computed) == 2


def test_a_metric_that_is_null_in_the_first_point_does_not_stop_the_sweep(tmp_path, monkeypatch):
    """A point that diverged writes its metric as null: the early check must not call the metric unknown (the
    sweep stopped there for good, a re-run meeting the same point first)."""
    import neurosim.sweep as S
    real = S._run_point

    def nan_first(experiment, ov, out_dir):
        m = real(experiment, ov, out_dir)
        if ov["lr"] == 0.1:
            m["pc"]["min_correct_output"] = None
        return m
    monkeypatch.setattr(S, "_run_point", nan_first)
    res = run_sweep("bear", {"lr": [0.1, 0.2, 0.3]}, tmp_path / "s", fixed=BEAR, scheduler="inprocess",
                    progress=False, metric="pc.min_correct_output")
    assert len(res.computed) == 3 and not res.failed


def test_an_interrupted_sweep_writes_the_table_of_its_finished_points(tmp_path):
    """Ctrl-C during a sweep (here after its second of three points) writes results.csv/results.json of the points
    finished so far, marked interrupted, then stops with the KeyboardInterrupt (an interrupt after the last point
    finished left no results.csv); a re-run computes only the rest and writes the whole table."""
    import csv
    import json
    out = tmp_path / "s"
    seen = []

    def on_point(ov, m):
        seen.append(ov)
        if len(seen) == 2:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        run_sweep("bear", {"lr": [0.1, 0.2, 0.3]}, out, fixed=BEAR, scheduler="inprocess", progress=False,
                  callback=on_point)
    with open(out / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == 2
    info = json.loads((out / "results.json").read_text())
    assert info["interrupted"] is True and info["unfinished"] == 1 and len(info["rows"]) == 2
    res = run_sweep("bear", {"lr": [0.1, 0.2, 0.3]}, out, fixed=BEAR, scheduler="inprocess", progress=False)
    assert len(res.skipped) == 2 and len(res.computed) == 1
    assert "interrupted" not in json.loads((out / "results.json").read_text())


def test_a_sweep_interrupted_before_any_point_leaves_no_stale_table(tmp_path, monkeypatch):
    """Interrupted before its first point finished, a sweep of another grid in the same directory removes the
    earlier sweep's results.csv (it listed the other grid's points beside this one's results.json)."""
    import json

    import neurosim.sweep as sw
    out = tmp_path / "s"
    run_sweep("bear", {"lr": [0.1]}, out, fixed=BEAR, scheduler="inprocess", progress=False)
    assert (out / "results.csv").exists()

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(sw, "_compute_inprocess", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_sweep("bear", {"lr": [0.3, 0.4]}, out, fixed=BEAR, scheduler="inprocess", progress=False)
    assert not (out / "results.csv").exists()
    info = json.loads((out / "results.json").read_text())
    assert info["grid"] == {"lr": [0.3, 0.4]} and info["rows"] == [] and info["unfinished"] == 2
