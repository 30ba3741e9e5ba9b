"""The `neurosim` command line: conventions (--help, exit codes, --out) and the main job."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from neurosim import config as _config
from neurosim.cli import main

_real_kernels_cached = _config.kernels_cached

ROOT = Path(__file__).resolve().parents[1]


def test_help_exits_zero(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert "run" in capsys.readouterr().out


def test_output_cut_short_by_its_reader_ends_quietly():
    """``neurosim show digits | head -1``: the reader closes the pipe; the command stops without a traceback
    (exit 141 = 128 + SIGPIPE, as Unix tools).  The read end is closed before the command starts, so every
    write fails, whatever the timing."""
    import os
    r, w = os.pipe()
    os.close(r)
    try:
        p = subprocess.run([sys.executable, "-m", "neurosim", "show", "digits"], stdout=w, stderr=subprocess.PIPE,
                           cwd=ROOT, timeout=120)
    finally:
        os.close(w)
    err = p.stderr.decode()
    assert p.returncode == 141 and "Traceback" not in err and "BrokenPipe" not in err, (p.returncode, err)


def test_run_help_lists_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for opt in ("--backend", "--out", "--seed", "--set"):
        assert opt in out


def test_list_names_digits(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "digits" in out and "PCN" in out


def test_show_lists_parameters_defaults_and_valid_values(capsys):
    assert main(["show", "digits"]) == 0
    rows = {line.split()[0]: line.split(None, 3)[2:] for line in capsys.readouterr().out.splitlines()
            if line.startswith("  ") and " = " in line}
    assert rows["epochs"] == ["20", "int >= 1"]
    assert rows["lr"] == ["0.05", "number > 0"]
    assert rows["optimizer"] == ["sgd", "one of: sgd, adam"]



@pytest.mark.parametrize("argv, fragment", [
    (["run", "no-such-experiment"], "unknown experiment"),
    (["run", "digits", "--set", "epochs"], "KEY=VALUE"),
    (["run", "digits", "--set", "nope=1"], "unknown parameter 'nope'"),
    (["run", "digits", "--set", "epochs=abc"], "epochs="),
    (["run", "digits", "--set", "hardware=weights:Quantise(6)"], "unknown transform 'Quantise'"),
    (["run", "digits", "--set", "hardware=reads:Quantize(6, bound=2.0)"], "cannot be applied at site 'reads'"),
    (["run", "digits", "--set", "epoch=3"], "did you mean 'epochs'?"),
    (["run", "digits", "--backend", "numba", "--set", "backend=reference"], "disagree"),
    (["run", "digits", "--seed", "3", "--set", "seed=5"], "--seed 3 and --set seed=5 disagree"),
])
def test_bad_arguments_exit_2_with_one_line(argv, fragment, capsys, tmp_path):
    code = main(argv + ["--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert fragment in err
    assert len(err.splitlines()) == 1


def test_bad_backend_choice_exits_2():
    with pytest.raises(SystemExit) as e:
        main(["run", "digits", "--backend", "cuda"])
    assert e.value.code == 2


def test_failed_run_exits_1(tmp_path, capsys):
    # a learning rate this large makes the weights blow up: a DivergenceError, reported in one line
    code = main(["run", "digits", "--out", str(tmp_path), "--no-progress", "--set", "lr=1e6",
                 "--set", "momentum=0.0", "--set", "epochs=2"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert "DivergenceError" in err and "step" in err and len(err.splitlines()) == 1
    assert (tmp_path / "config.json").exists()
    m = json.loads((tmp_path / "metrics.json").read_text())  # the failure is marked, the history kept
    assert m["status"] == "failed" and m["error"]["type"] == "DivergenceError"
    (rec,) = m["partial"]["simulators"]
    assert len(rec["history"]["loss"]) == m["error"]["batch"] > 0


def test_interrupted_run_exits_130_and_marks_its_metrics(tmp_path, capsys, monkeypatch):
    from neurosim import registry
    from neurosim.experiment import Experiment

    def run(cfg, out, progress=True):
        raise KeyboardInterrupt
    fake = Experiment("interrupted", "test", {"seed": 0}, run)
    monkeypatch.setattr(registry, "get", lambda name: fake)
    assert main(["run", "interrupted", "--out", str(tmp_path)]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "interrupted"


def test_sigterm_ends_a_run_like_ctrl_c_with_exit_143(tmp_path, capsys, monkeypatch):
    """``timeout``/SLURM/``docker stop`` send SIGTERM: the run ends with exit 143 (128 + 15), metrics.json says
    "interrupted" with the partial results, and the figures an earlier run in the same --out listed are gone
    (while the run goes, metrics.json says "running")."""
    import os
    import signal
    from neurosim import registry
    from neurosim.experiment import Experiment, partial_results
    (tmp_path / "metrics.json").write_text(json.dumps({"status": "ok", "figures": ["old.png"]}))
    (tmp_path / "old.png").write_bytes(b"png")
    seen = {}

    def run(cfg, out, progress=True):
        seen["status"] = json.loads((out / "metrics.json").read_text())["status"]
        seen["old_png"] = (out / "old.png").exists()
        partial_results()["epochs_done"] = 3
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop the run")
    fake = Experiment("terminated", "test", {"seed": 0}, run)
    monkeypatch.setattr(registry, "get", lambda name: fake)
    before = signal.getsignal(signal.SIGTERM)
    assert main(["run", "terminated", "--out", str(tmp_path)]) == 143
    assert signal.getsignal(signal.SIGTERM) == before          # the handler is restored
    assert "SIGTERM" in capsys.readouterr().err
    assert seen == {"status": "running", "old_png": False}
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["status"] == "interrupted" and m["error"]["signal"] == 15
    assert m["partial"]["reported"] == {"epochs_done": 3}


def _printed_rows(text):
    rows = {}
    for line in text.splitlines():
        parts = line.split(None, 1)
        if line.startswith("  ") and len(parts) == 2 and not line.startswith("  held"):
            rows[parts[0]] = parts[1].strip()
    return rows


def test_run_prints_headline_metrics_and_the_checks(tmp_path, capsys):
    """`neurosim run bear` prints the nested metrics with dotted names and a claim / held table."""
    assert main(["run", "bear", "--backend", "reference", "--out", str(tmp_path), "--no-progress",
                 "--set", "lr_sweep=[0.1]", "--set", "sweep_time=0.4", "--set", "iterations=6",
                 "--set", "relax_steps=32"]) == 0
    text = capsys.readouterr().out
    m = json.loads((tmp_path / "metrics.json").read_text())
    rows = _printed_rows(text)
    for rule in ("pc", "bp"):
        for key in ("min_correct_output", "target_alignment_first_step"):
            assert float(rows[f"{rule}.{key}"]) == pytest.approx(m[rule][key], rel=1e-3)  # 4 significant digits
        assert rows[f"{rule}.iteration_of_min_correct_output"] == str(m[rule]["iteration_of_min_correct_output"])
        assert f"{rule}.output_trajectory" not in rows  # a long list is left to metrics.json
    assert rows["lr_sweep.lr"] == "[0.1]"
    held = sum(c["held"] for c in m["checks"])
    assert f"checks: {held} of {len(m['checks'])} held" in text
    for c in m["checks"]:
        line = next(line for line in text.splitlines() if c["claim"] in line)
        assert line.split()[0] == ("yes" if c["held"] else "NO")


def test_digits_main_job_reaches_90_percent(tmp_path):
    """The README's main job: `neurosim run digits` trains to >= 90% held-out accuracy and writes results."""
    proc = subprocess.run([sys.executable, "-m", "neurosim", "run", "digits", "--out", str(tmp_path), "--no-progress"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.90
    assert metrics["n_test"] == 450
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["experiment"] == "digits" and cfg["backend"] == "numba"
    for fig in metrics["figures"]:
        data = (tmp_path / fig).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    # the relaxation shown in the figures lowers the energy
    assert metrics["relaxation_energy_end"] < metrics["relaxation_energy_start"]


def test_digits_reference_backend_and_overrides(tmp_path, capsys):
    code = main(["run", "digits", "--backend", "reference", "--out", str(tmp_path), "--seed", "3", "--no-progress",
                 "--set", "epochs=1", "--set", "hidden=[32]", "--set", "relax_steps_plot=10", "--quiet"])
    assert code == 0
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["backend"] == "reference" and cfg["seed"] == 3 and cfg["hidden"] == [32] and cfg["epochs"] == 1
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert 0.3 < m["test_accuracy"] <= 1.0  # one epoch of a small net is well above chance (0.1)


@pytest.mark.parametrize("name, reason", [
    ("graph-exactness", "shared_updates='immediate'"),
    ("hw-energy", "event-driven engine"),
    ("mupc-depth", "not practical on brian2"),
])
def test_backend_an_experiment_cannot_use_exits_2_with_the_reason(name, reason, tmp_path, capsys, monkeypatch):
    import dataclasses

    from neurosim import experiment

    def ran(*args, **kwargs):   # an experiment that learned to use brian2 fails here at once instead of running
        raise AssertionError(f"{name} ran on brian2; pick an experiment that still refuses it")
    checked = experiment.run_experiment
    monkeypatch.setattr(experiment, "run_experiment",
                        lambda module, *a, **k: checked(dataclasses.replace(module, run=ran), *a, **k))
    out = tmp_path / "o"
    assert main(["run", name, "--backend", "brian2", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "backend=brian2: not available for this experiment: " in err and reason in err
    assert len(err.splitlines()) == 1 and not out.exists()


def test_brian2_backend_without_brian2_exits_2_before_the_run(tmp_path, monkeypatch, capsys):
    """A missing optional dependency is a bad argument (exit 2, nothing written), not a failed run."""
    from neurosim import cli, experiment
    monkeypatch.setattr(experiment, "brian2_installed", lambda: False)
    out = tmp_path / "bb"
    assert cli.main(["run", "bear", "--backend", "brian2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "brian2 is not installed" in err and ".[brian2]" in err
    assert not (out / "metrics.json").exists()


def test_run_digits_on_a_modelled_substrate(tmp_path):
    """--set hardware=... trains on Simulator(hardware=...): quantised weights (commas kept in the text), counts
    of the device in metrics.json; the stored weights sit on the 6-bit grid of step 2 / 31."""
    import numpy as np
    from neurosim.circuits import digits
    code = main(["run", "digits", "--out", str(tmp_path), "--no-progress", "--set", "epochs=1",
                 "--set", "hidden=[16]", "--set", "hardware=weights:Quantize(6, bound=2.0);seed=3"])
    assert code == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["hardware"].startswith("weights:Quantize(bits=6, bound=2.0") and m["hardware"].endswith("seed=3")
    assert m["hardware_counts"]["weight_writes"] > 0 and m["hardware_counts"]["samples"] == m["n_train"]
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["hardware"] == "weights:Quantize(6, bound=2.0);seed=3"
    # the same run in Python: every stored weight is a multiple of the quantisation step
    from neurosim.hardware.spec import parse_hardware
    import neurosim as ns
    sim = ns.Simulator(digits.build({**digits.DEFAULTS, "hidden": [16]}), hardware=parse_hardware(cfg["hardware"]))
    step = 2.0 / (2 ** 5 - 1)
    for k, W in sim.read_weights().items():
        assert np.allclose(W / step, np.round(W / step), atol=1e-9), k


def test_a_cold_numba_cache_is_announced_before_the_run(monkeypatch, capsys, tmp_path):
    """The first run after installing compiles for about 10 s: the CLI says so first (and not when cached)."""
    import neurosim.cli as cli
    import neurosim.config as config
    assert _real_kernels_cached() in (True, False, None)
    import neurosim.experiment as experiment
    import os
    seen = []   # NEUROSIM_COMPILE_NOTICE during the run: "0" once the CLI has said it (Dask workers stay quiet)

    def fake_run(*a, **k):
        seen.append(os.environ.get("NEUROSIM_COMPILE_NOTICE"))
        return {"wall_time_s": 0.0}
    monkeypatch.setattr(experiment, "run_experiment", fake_run)   # only the notice
    monkeypatch.setattr(cli, "summary_lines", lambda metrics: [])
    monkeypatch.delenv("NEUROSIM_COMPILE_NOTICE", raising=False)
    for cached, said in ((False, True), (True, False), (None, False)):
        monkeypatch.setattr(config, "kernels_cached", lambda: cached)
        assert main(["run", "bear", "--out", str(tmp_path / "b")]) == 0
        assert ("numba kernels are not compiled yet" in capsys.readouterr().err) is said
        assert "NEUROSIM_COMPILE_NOTICE" not in os.environ       # restored after the run
    assert seen == ["0", None, None]


@pytest.mark.parametrize("where", ["file", "proc"])
def test_an_unusable_out_exits_2_naming_it(tmp_path, capsys, where):
    if where == "file":
        out = tmp_path / "existing_file"
        out.write_text("x")
    else:
        out = Path("/proc/neurosim_cannot_be_here")
        if not Path("/proc").is_dir():
            pytest.skip("no /proc")
    assert main(["run", "digits", "--out", str(out), "--set", "epochs=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("neurosim: error: --out ") and str(out) in err and len(err.splitlines()) == 1


def test_quiet_runs_without_progress_lines(tmp_path, monkeypatch, capsys):
    """--quiet prints only the output directory; progress lines of a long run reached stderr."""
    import neurosim.experiment as E
    seen = {}
    real = E.run_experiment

    def spy(module, overrides=None, out=None, progress=True):
        seen["progress"] = progress
        return real(module, overrides, out=out, progress=progress)
    monkeypatch.setattr(E, "run_experiment", spy)
    assert main(["run", "bear", "--quiet", "--out", str(tmp_path / "b"), "--set", "lr_sweep=[0.1]",
                 "--set", "sweep_time=0.5", "--set", "iterations=2"]) == 0
    assert seen["progress"] is False and capsys.readouterr().out.strip() == str(tmp_path / "b")


def test_with_probes_takes_a_list_as_the_simulator_does():
    import neurosim as ns
    net = ns.hierarchy([3, 4, 2])
    assert net.with_probes([ns.Probe("h1", "x")]).probes == net.with_probes(ns.Probe("h1", "x")).probes
