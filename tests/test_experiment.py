"""Running experiments: declared parameter ranges checked before a run, metrics.json of successful, failed
and interrupted runs, file permissions of the results."""
import json
import os
import stat

import numpy as np
import pytest

import neurosim as ns
from neurosim.experiment import (Bool, Choice, ConfigError, Experiment, Float, Int, ListOf, flatten_metrics,
                                 partial_results, resolve_config, run_experiment)
from neurosim.io import write_json_atomic


# ------------------------------------------------------------------------------------------ declared parameters
def _experiments():
    from neurosim import registry
    return [registry.get(n) for n in registry.names()]


@pytest.mark.parametrize("exp", _experiments(), ids=lambda e: e.NAME)
def test_every_experiment_takes_each_backend_or_says_why_not(exp):
    spec = exp.PARAMS["backend"]
    for backend in ("numba", "reference", "brian2"):
        why = spec.violation(backend, dict(exp.DEFAULTS))
        assert why is None or (why.startswith("not available for this experiment: ") and len(why) > 60), \
            f"{exp.NAME}: --backend {backend}: {why}"
        if why is not None:
            assert why.split(": ", 1)[1] in spec.describe()   # `neurosim show` gives the same reason


@pytest.mark.parametrize("exp", _experiments(), ids=lambda e: e.NAME)
def test_every_parameter_of_every_experiment_declares_its_valid_values(exp):
    params = getattr(exp, "PARAMS", None)
    assert params is not None, f"{exp.NAME} declares no PARAMS"
    assert set(params) == set(exp.DEFAULTS), f"{exp.NAME}: undeclared {set(exp.DEFAULTS) - set(params)}, " \
                                             f"unknown {set(params) - set(exp.DEFAULTS)}"
    assert resolve_config(exp.DEFAULTS, {}, params) == exp.DEFAULTS  # the defaults are valid values
    for key, spec in params.items():
        assert spec.describe(), key


def test_param_types_ranges_and_messages():
    assert Int(ge=1).coerce("n", 3.0) == 3 and isinstance(Int(ge=1).coerce("n", 3.0), int)
    assert Float(gt=0).coerce("lr", 1) == 1.0 and isinstance(Float(gt=0).coerce("lr", 1), float)
    assert ListOf(Int(ge=1)).coerce("h", 5) == [5]
    for spec, value in ((Int(ge=1), 2.5), (Int(ge=1), True), (Float(gt=0), "x"), (Bool(), 1), (ListOf(Int()), ["a"])):
        with pytest.raises(ConfigError, match="expected"):
            spec.coerce("k", value)
    cases = [  # (spec, valid values, invalid values)
        (Int(ge=1), [1, 10 ** 6], [0, -3]),
        (Float(gt=0, lt=2), [1e-9, 1.999], [0.0, 2.0, -0.1, float("nan"), float("inf")]),
        (Float(ge=0, le=1), [0.0, 1.0], [-1e-12, 1.0000001]),
        (Int(ge=2, le=52, also=(0,)), [0, 2, 52], [1, 53, -1]),
        (Choice("sgd", "adam"), ["sgd", "adam"], ["SGD", "rmsprop"]),
        (ListOf(Float(gt=0)), [[0.1], [1.0, 2.0]], [[], [0.1, 0.0]]),
        (ListOf(Float(), min_len=2, max_len=2), [[0.0, 1.0]], [[1.0], [1.0, 2.0, 3.0]]),
    ]
    for spec, good, bad in cases:
        for v in good:
            assert spec.violation(v) is None, (spec, v)
        for v in bad:
            assert spec.violation(v) is not None, (spec, v)
    with pytest.raises(ConfigError, match=r"^epochs=0: out of range; valid values: int >= 1$"):
        Int(ge=1).validate("epochs", 0)
    # a bound may name another parameter
    cfg = {"trials": 10, "analyse_after": 10}
    spec = Int(ge=0, lt="trials")
    with pytest.raises(ConfigError, match=r"analyse_after=10: .*\[0, trials\) with trials=10"):
        spec.validate("analyse_after", 10, cfg)
    assert spec.violation(9, cfg) is None
    assert Float(gt=0, lt=2).describe() == "number in (0, 2)"
    assert Int(ge=2, le=52, also=(0,)).describe() == "0 or int in [2, 52]"


@pytest.mark.parametrize("argv, fragment", [
    (["digits", "--set", "epochs=0"], "epochs=0: out of range; valid values: int >= 1"),
    (["bear", "--set", "iterations=-3"], "iterations=-3: out of range; valid values: int >= 1"),
    (["digits", "--set", "dt=-0.1"], "dt=-0.1: out of range; valid values: number in (0, 2)"),
    # an empty training set (all digits held out) and an empty batch
    (["digits", "--set", "test_fraction=0.999"], "test_fraction=0.999: out of range"),
    (["hw-event-driven", "--set", "fidelity_batch=0"], "fidelity_batch=0: out of range"),
    (["reversal-learning", "--set", "analyse_after=200"], "analyse_after=200: out of range; valid values: int in "
                                                          "[0, trials) with trials=128"),
    (["few-data", "--set", "examples_per_class=[2,500]"], "more than the training digits"),
    (["hw-energy", "--set", "target=tpu"], "unknown hardware target 'tpu'"),
    (["brian2-bear", "--set", "mode=spiking"], "mode=spiking: spiking needs backend=brian2"),
])
def test_invalid_parameters_exit_2_before_the_run_starts(argv, fragment, capsys, tmp_path):
    from neurosim.cli import main
    out = tmp_path / "o"
    assert main(["run", *argv, "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1
    assert not out.exists()  # nothing ran, nothing written


def test_show_prints_the_valid_values(capsys):
    from neurosim.cli import main
    assert main(["show", "reversal-learning"]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = next(line for line in lines if line.split()[:1] == ["analyse_after"])
    assert row.split()[2] == "64" and row.endswith("int in [0, trials)")


# ------------------------------------------------------------------------------------------ metrics.json
def _tiny_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 3))
    return X, np.eye(2)[rng.integers(0, 2, size=12)]


def _training_experiment(stop_after: int, exc: BaseException, keep: dict) -> Experiment:
    """Trains a 3-4-2 PCN on the reference backend and raises ``exc`` after ``stop_after`` epochs."""
    def run(cfg, out, progress=True):
        X, Y = _tiny_data()
        sim = ns.Simulator(ns.hierarchy([3, 4, 2], lr=0.01), backend="reference", seed=cfg["seed"])
        keep["sim"] = sim
        partial_results()["epochs_wanted"] = cfg["epochs"]

        def stop(s, epoch):
            if epoch + 1 == stop_after:
                raise exc
        sim.train(X, Y, epochs=cfg["epochs"], batch_size=4, steps=5, progress=False, callback=stop)
        return {"loss": sim.history["epoch_loss"][-1]}
    return Experiment("tiny-train", "test", {"backend": "reference", "seed": 0, "epochs": 4}, run,
                      PARAMS={"backend": Choice("reference"), "seed": Int(ge=0), "epochs": Int(ge=1)})


def test_success_writes_status_ok(tmp_path):
    keep = {}
    m = run_experiment(_training_experiment(99, RuntimeError("never"), keep), out=tmp_path, progress=False)
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert m["status"] == on_disk["status"] == "ok"
    assert on_disk["loss"] == pytest.approx(keep["sim"].history["epoch_loss"][-1], rel=1e-12)
    assert len(keep["sim"].history["epoch_loss"]) == 4


@pytest.mark.parametrize("exc, status", [(RuntimeError("disk full"), "failed"), (KeyboardInterrupt(), "interrupted")])
def test_failed_or_interrupted_run_writes_status_error_and_history_so_far(tmp_path, exc, status):
    keep = {}
    with pytest.raises(type(exc)):
        run_experiment(_training_experiment(2, exc, keep), out=tmp_path, progress=False)
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["status"] == status and m["experiment"] == "tiny-train"
    assert m["error"]["type"] == type(exc).__name__
    if status == "failed":
        assert m["error"]["message"] == "disk full"
    assert "Traceback" in m["error"]["traceback"]
    (rec,) = m["partial"]["simulators"]
    hist = keep["sim"].history
    assert len(hist["epoch_loss"]) == 2  # the two epochs finished before the error
    assert rec["history"]["epoch_loss"] == pytest.approx(hist["epoch_loss"], rel=1e-12)
    assert rec["history"]["loss"] == pytest.approx(hist["loss"], rel=1e-12)
    assert rec["batches_done"] == 2 * 3
    assert m["partial"]["reported"] == {"epochs_wanted": 4}
    assert json.loads((tmp_path / "config.json").read_text())["epochs"] == 4


def test_divergence_error_is_recorded_with_its_step_and_population(tmp_path):
    def run(cfg, out, progress=True):
        X, Y = _tiny_data()
        sim = ns.Simulator(ns.hierarchy([3, 4, 2], phi="linear", lr=1e3), backend="reference", seed=0)
        with np.errstate(all="ignore"):
            sim.train(X, Y, epochs=3, batch_size=4, steps=5, progress=False)
        return {}
    exp = Experiment("diverge", "test", {"seed": 0}, run, PARAMS={"seed": Int(ge=0)})
    with pytest.raises(ns.DivergenceError) as info:
        run_experiment(exp, out=tmp_path, progress=False)
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["status"] == "failed" and m["error"]["type"] == "DivergenceError"
    assert (m["error"]["step"], m["error"]["population"], m["error"]["batch"]) == (
        info.value.step, info.value.population, info.value.batch)
    rec = m["partial"]["simulators"][0]
    assert info.value.batch >= 1
    assert len(rec["history"]["loss"]) == info.value.batch  # every batch before the diverging one


class _AnyString(str):
    def __eq__(self, other):
        return isinstance(other, str)

    __hash__ = str.__hash__


ANY_STRING = _AnyString()


def test_a_new_run_removes_the_previous_runs_report_and_figures(tmp_path):
    """A failed run left the earlier run's report.md beside its own failed metrics (only the figures went)."""
    for name in ("report.md", "cost_report.json", "fig.png", "mine.txt"):
        (tmp_path / name).write_text("old")
    write_json_atomic(tmp_path / "metrics.json", {"status": "ok", "figures": ["fig.png"], "report": "report.md"})

    def run(cfg, out, progress=True):
        raise ValueError("bad data")
    with pytest.raises(ValueError):
        run_experiment(Experiment("x", "test", {"seed": 0}, run, PARAMS={"seed": Int(ge=0)}), out=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "cost_report.json", "metrics.json", "mine.txt"]
    write_json_atomic(tmp_path / "metrics.json", {"status": "ok", "report": ["cost_report.json", "../x"]})
    with pytest.raises(ValueError):
        run_experiment(Experiment("x", "test", {"seed": 0}, run, PARAMS={"seed": Int(ge=0)}), out=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "metrics.json", "mine.txt"]


def test_a_new_run_removes_the_previous_metrics_first(tmp_path):
    write_json_atomic(tmp_path / "metrics.json", {"status": "ok", "stale": True})

    def run(cfg, out, progress=True):   # while the run goes, metrics.json is a "running" marker, not the old run's
        assert json.loads((out / "metrics.json").read_text()) == {"status": "running", "experiment": "x",
                                                                  "started_utc": ANY_STRING}
        raise ValueError("bad data")
    with pytest.raises(ValueError):
        run_experiment(Experiment("x", "test", {"seed": 0}, run, PARAMS={"seed": Int(ge=0)}), out=tmp_path)
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "failed"


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077])
def test_results_get_the_users_umask_like_figures(tmp_path, mask):
    old = os.umask(mask)
    try:
        def run(cfg, out, progress=True):
            (out / "figure.png").write_bytes(b"png")  # written like the plots: open(..., "w")
            return {"x": 1.0}
        run_experiment(Experiment("perm", "test", {"seed": 0}, run, PARAMS={"seed": Int(ge=0)}), out=tmp_path)
    finally:
        os.umask(old)
    want = 0o666 & ~mask
    for name in ("config.json", "metrics.json", "figure.png"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == want, name
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_flatten_metrics_uses_dotted_names():
    m = {"status": "ok", "pc": {"min": 0.5, "w": {"W1": [1.0]}, "n": 3, "bad": None}, "label": "x",
         "curve": [1.0, 2.0], "checks": [{"claim": "c", "held": True}], "environment": {"python": "3"}}
    assert flatten_metrics(m) == {"pc.min": 0.5, "pc.n": 3, "label": "x"}
    assert flatten_metrics(m, lists=True) == {"pc.min": 0.5, "pc.w.W1": [1.0], "pc.n": 3, "label": "x",
                                              "curve": [1.0, 2.0]}


#: every experiment at values on the edges of its declared ranges (smallest sizes, bounds, empty lists where
#: allowed), on the reference backend: a declared range must contain only values that run
EDGES = [
    ("digits", dict(hidden=[], epochs=1, relax_steps_plot=1, steps=1, batch_size=1000, test_fraction=0.95)),
    ("cnn-digits", dict(channels=[2, 2, 2], epochs=1, algorithms=["bp"], test_fraction=0.9)),
    ("hw-precision", dict(n_train=32, n_test=16, epochs=1, hidden=[4], weight_bits=2, activity_bits=2, dac_bits=2,
                          adc_bits=52, curves=False, stuck_fraction=1.0)),
    ("hw-event-driven", dict(n_train=32, n_test=16, epochs=1, hidden=[4], thresholds=[0.5], fidelity_steps=1,
                             fidelity_batch=1, figures=False)),
    ("hw-energy", dict(n_train=32, n_test=16, epochs=1, hidden=[], steps_axis=[1], bits=1, figures=False,
                       targets=["crossbar"])),
    ("hw-mapping", dict(hidden=[], channels=[1], targets=["crossbar"], steps=1, activity=0.0, figures=False)),
    ("few-data", dict(n_seeds=1, examples_per_class=[130], epochs=1, lrs=[0.4], relax_steps=1, hidden=[])),
    ("concept-drift", dict(n_seeds=1, iterations=1, drift_every=1, eval_every=1, pretrain_epochs=0, lrs=[0.4],
                           examples_per_class=0, relax_steps=1, hidden=[4])),
    ("continual", dict(n_seeds=1, cycles=1, epochs_per_task=1, lrs=[0.4], relax_steps=1, hidden=[])),
    ("online-learning", dict(n_seeds=1, batch_sizes=[1], lrs=[0.4], iterations=1, batches_per_iteration=1,
                             relax_steps=1, hidden=[])),
    ("deep-small-data", dict(n_seeds=1, depths=[1], examples_per_class=1, epochs=1, lrs=[0.3], relax_steps=1)),
    ("reversal-learning", dict(n_seeds=30, trials=40, analyse_after=0, relax_steps=8)),
    ("sensorimotor", dict(n_seeds=1, train_blocks=1, post_blocks=1, init_stds=[0.1], lrs=[0.001], memory_lrs=[0.1],
                          relax_steps=1)),
    ("fear-conditioning", dict(n_seeds=1, trials_per_phase=1, perception_lrs=[0.1], L_lrs=[0.1], N_lrs=[0.1],
                               relax_steps=1, init_std=0.0, tol=0.0)),
    ("bear", dict(iterations=1, relax_steps=1, lr_sweep=[10.0], sweep_time=0.1, dt_decay=1.0, dt=1.9)),
    ("example-122", dict(iterations=1, relax_steps=1, small_lr=1.0, match_step_length=False)),
    ("target-alignment", dict(width=1, depths=[1], n_seeds=1, relax_steps=1, activations=["relu"],
                              activation_depths=[1], activation_relax_steps=1)),
    ("prospective-index", dict(width=1, n_layers=1, n_seeds=1, relax_steps=1, converge_steps=1)),
    ("fpa-exactness", dict(hidden=[4], pretrain_epochs=0, batch_size=1, etas=[1.0], n_max=1, strict=False)),
    ("zil-exactness", dict(hidden=[4], batch_size=1024, n_train_steps=1, gamma_control=0.01)),
    ("linear-equilibrium", dict(hidden=[1], n_train_steps=1, widths=[1], depths=[1], n_seeds=1, mupc_width=1,
                                batch_size=1)),
    ("mupc-depth", dict(depths=[1], width=1, epochs=1, batch_size=1024, sp_lrs=[0.1], bp=False)),
    ("saddles", dict(depths=[2], n_samples=1, slope=-2.0, max_steps_pc=2, max_steps_bp=2, hessian_hidden=[])),
    ("graph-exactness", dict(batch_size=1024, train_steps=1, hidden=1, fpa_graph="residual", fpa_max_steps=1)),
    ("rnn-sequences", dict(task="adding", length=2, n_train=1, n_test=1, epochs=1, hidden=1, algorithms=["pc"],
                           pc_steps=1)),
    ("lstm-sequences", dict(epochs=1, hidden=1, algorithms=["zil"], test_fraction=0.95)),
    ("brian2-bear", dict(iterations=1, steps=1)),
    ("brian2-digits", dict(hidden=1, epochs=1, infer_steps=[1], n_test=1, chunk=1, train_steps=1)),
]


@pytest.mark.parametrize("name, overrides", EDGES, ids=[n for n, _ in EDGES])
def test_values_on_the_edges_of_the_declared_ranges_run(name, overrides, tmp_path):
    from neurosim import registry
    exp = registry.get(name)
    for key, value in overrides.items():  # each value is valid on its own
        exp.PARAMS[key].validate(key, exp.PARAMS[key].coerce(key, value))
    with np.errstate(all="ignore"):
        m = run_experiment(exp, {"backend": "reference", **overrides}, out=tmp_path, progress=False)
    assert m["status"] == "ok"
