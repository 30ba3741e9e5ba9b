"""The graph experiments (circuits/graphs.py): metrics.json, figures, and one scientific property each.

``cnn-digits`` runs at its default size (about half a minute on 2 cores): standard PC must end within 2
percentage points of backprop, and Z-IL must reproduce backprop's whole training run.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from neurosim import registry
from neurosim.experiment import run_experiment


def _run(name, out, **overrides):
    m = run_experiment(registry.get(name), overrides, out=out, progress=False)
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["experiment"] == name
    for fig in m["figures"]:
        assert (out / fig).stat().st_size > 1000, fig
    return m


def test_experiments_are_registered():
    names = registry.names()
    for n in ("graph-exactness", "cnn-digits", "rnn-sequences", "lstm-sequences", "pc-recurrent-study"):
        assert n in names
        assert {"backend", "seed"} <= set(registry.get(n).DEFAULTS)


def test_graph_exactness(tmp_path):
    m = _run("graph-exactness", tmp_path, hidden=8, train_steps=3, fpa_max_steps=12)
    assert set(m["graphs"]) == {"mlp", "cnn", "rnn", "lstm", "residual"}
    assert m["max_exact_rel_diff"] < 1e-10
    assert m["min_negative_control_rel_diff"] > 1e-2
    res = m["graphs"]["residual"]
    assert not res["levelled"] and res["n_vertices_levelled"] > res["n_vertices"]
    assert res["zil_unlevelled_rel_diff"] > 1e-2 and res["zil_rel_diff"] < 1e-10
    assert m["graphs"]["rnn"]["zil_immediate_shared_rel_diff"] > 1e-2
    # FPA on the CNN: exactly wrong (1.0) before the graph depth, exact from it on, for eta = 1
    depth = m["graphs"]["cnn"]["depth"]
    curve = np.array(m["fpa_curves"]["eta=1.0"])
    assert np.all(curve[:depth] > 0.5) and np.all(curve[depth:] < 1e-10)
    slow = np.array(m["fpa_curves"]["eta=0.5"])
    assert slow[depth] > 1e-3                       # eta < 1 is not exact at the depth
    # the Z-IL error wave reaches level t at step t
    assert m["zil_wave_levels_reached"] == list(range(len(m["zil_wave_levels_reached"])))
    # the same claims as a checks table (printed by `neurosim run`): all held, the FPA curve's two included
    assert len(m["checks"]) == 9 and all(c["held"] for c in m["checks"]), [c for c in m["checks"] if not c["held"]]


def test_cnn_digits_pc_within_two_points_of_bp(tmp_path):
    m = _run("cnn-digits", tmp_path)
    assert m["bp"]["test_accuracy"] > 0.95
    assert abs(m["pc_minus_bp_test_accuracy_pp"]) <= 2.0
    assert m["zil_vs_bp_weight_rel_diff"] < 1e-8
    assert m["zil"]["epoch_test_accuracy"] == m["bp"]["epoch_test_accuracy"]


@pytest.mark.parametrize("name,overrides", [
    ("rnn-sequences", dict(epochs=3, hidden=16)),
    ("lstm-sequences", dict(epochs=2, hidden=8)),
])
def test_sequence_experiments(tmp_path, name, overrides):
    m = _run(name, tmp_path, **overrides)
    assert m["sequence_steps"] == 8 and m["task"] == "digit-rows"
    assert m["zil_vs_bp_weight_rel_diff"] < 1e-9
    assert m["zil"]["epoch_test_accuracy"] == m["bp"]["epoch_test_accuracy"]
    for algo in ("pc", "pc_lambda0.1", "zil", "bp"):
        assert np.isfinite(m[algo]["test_loss"])
    assert m["bp"]["test_accuracy"] > 0.3               # well above chance (0.1) after a few epochs
    if name == "lstm-sequences":
        assert m["n_vertices_levelled"] > m["n_vertices"]


def test_adding_task_beats_the_mean_predictor(tmp_path):
    m = _run("rnn-sequences", tmp_path, task="adding", epochs=4, n_train=1000, n_test=300, length=6,
             algorithms=["zil", "bp"])
    assert m["sequence_steps"] == 6 and "test_accuracy" not in m["bp"]
    assert m["bp"]["test_loss"] < 0.8 * m["baseline_test_loss"]
    assert m["zil_vs_bp_weight_rel_diff"] < 1e-9


def test_pc_recurrent_study_tiny(tmp_path):
    m = _run("pc-recurrent-study", tmp_path, kind="rnn", hidden=8, epochs=1, steps_list=[1, 20], dt_list=[0.1, 1.9],
             output_precision=1.0, output_precision_list=[1.0, 0.01],
             dt_steps=20, depth_list=[2, 8], depth_relax_steps=20, variants=["pc", "pc-jacobi", "ipc"], n_probe=32)
    assert set(m["sweeps"]) == {"steps", "dt", "depth", "output_precision"}
    # "best" is chosen by the final training loss, not by the test accuracy it reports
    for v, b in m["best"].items():
        pts = [r for sw in m["sweeps"].values() for r in sw if r["variant"] == v
               and r["sequence_steps"] == b["sequence_steps"] and np.isfinite(r["train_loss"])]
        assert b["train_loss"] == min(r["train_loss"] for r in pts)
    pc = {(r["steps"], r["dt"]): r for r in m["sweeps"]["steps"] + m["sweeps"]["dt"] if r["variant"] == "pc"}
    # 20 relaxation steps bring the PC direction closer to backprop's than 1 step (which moves only the output's
    # parent)
    assert pc[(20, 0.1)]["cos_bp"] > pc[(1, 0.1)]["cos_bp"] > 0
    # a step beyond the stability limit of the relaxation: the direction is unrelated to backprop's (or NaN)
    bad = pc[(20, 1.9)]
    assert bad["diverged"] or not bad["cos_bp"] > 0.5
    assert not pc[(20, 0.1)]["diverged"] and pc[(20, 0.1)]["test_accuracy"] > 0.1
    assert [r["sequence_steps"] for r in m["sweeps"]["depth"] if r["variant"] == "pc"] == [2, 8]
    assert m["bp"]["8"]["depth"] > m["bp"]["2"]["depth"]
    assert all(r["cos_bp"] is None for r in m["sweeps"]["steps"] if r["variant"] == "ipc")
    # the same point is trained once (cached), and the Jacobi variant is a different run
    assert m["sweeps"]["steps"][1] == m["sweeps"]["dt"][0]
    jac = [r for r in m["sweeps"]["steps"] if r["variant"] == "pc-jacobi"]
    assert jac[1]["cos_bp"] != pc[(20, 0.1)]["cos_bp"]
    # a weak output precision keeps the output's error a small perturbation: more of the energy stays at the
    # output and the direction is closer to backprop's
    lam = {r["output_precision"]: r for r in m["sweeps"]["output_precision"] if r["variant"] == "pc"}
    assert lam[0.01]["energy_kept"] > lam[1.0]["energy_kept"]
    assert lam[0.01]["cos_bp"] > lam[1.0]["cos_bp"]


def test_sequence_options_jacobi_and_ipc(tmp_path):
    base = dict(epochs=1, hidden=8, algorithms=["pc", "ipc"], pc_output_precision=[0.01], pc_steps=10, pc_dt=0.2)
    uni = _run("rnn-sequences", tmp_path / "u", **base)
    jac = _run("rnn-sequences", tmp_path / "j", **base, pc_tau="jacobi", pc_dt_decay=0.5, ipc_lr_scale=0.1)
    for m in (uni, jac):
        assert np.isfinite(m["pc_lambda0.01"]["test_loss"]) and np.isfinite(m["ipc"]["test_loss"])
    # per-vertex time constants and a smaller iPC learning rate are different runs from the same start
    assert jac["pc_lambda0.01"]["epoch_loss"] != uni["pc_lambda0.01"]["epoch_loss"]
    assert jac["ipc"]["test_loss"] != uni["ipc"]["test_loss"]


@pytest.mark.parametrize("name", ["cnn-digits", "rnn-sequences"])
def test_hardware_setting_trains_on_the_modelled_substrate(tmp_path, name):
    """``--set hardware=...`` on the graph training experiments: 4-bit weights with nearest rounding swallow
    Adam's small steps (the substrate really quantises the writes), stochastic rounding lets training go on;
    the substrate's operation counts are in metrics.json."""
    small = dict(algorithms=["pc"], epochs=1, batch_size=64, seed=0)
    if name == "cnn-digits":
        small["channels"] = [2]
    else:
        small.update(hidden=8, pc_output_precision=[1.0])
    plain = _run(name, tmp_path / "plain", **small)
    coarse = _run(name, tmp_path / "coarse", hardware="weights:Quantize(4, bound=1.0)", **small)
    assert plain["hardware"] == "none" and coarse["hardware"].startswith("weights:Quantize(bits=4")
    counts = coarse["pc"]["hardware_counts"]
    assert counts["batches"] == np.ceil(plain["n_train"] / 64) and counts["weight_writes"] > 0
    assert "hardware_counts" not in plain["pc"]
    assert coarse["pc"]["test_loss"] != pytest.approx(plain["pc"]["test_loss"], rel=1e-3)


def test_hardware_setting_refuses_algorithms_the_substrate_cannot_train(tmp_path):
    from neurosim.experiment import ConfigError
    with pytest.raises(ConfigError, match=r"algorithms pc and bp only, and with coding=event .* pc only; choose"):
        run_experiment(registry.get("cnn-digits"), {"hardware": "weights:Quantize(6)"}, out=tmp_path,
                       progress=False)
    assert not (tmp_path / "metrics.json").exists()


def test_a_graph_training_experiment_runs_on_brian2(tmp_path):
    """``neurosim run rnn-sequences --backend brian2``: every graph algorithm runs in brian2's rate network, and Z-IL
    reproduces backprop's training there too (tiny adding task)."""
    pytest.importorskip("brian2")
    m = _run("rnn-sequences", tmp_path, backend="brian2", task="adding", length=3, n_train=64, n_test=32, hidden=4,
             epochs=1, batch_size=32, algorithms=["zil", "bp"], pc_output_precision=[1.0])
    assert m["zil_vs_bp_weight_rel_diff"] < 1e-9
    with pytest.raises(Exception, match="immediate"):
        run_experiment(registry.get("graph-exactness"), {"backend": "brian2"}, out=tmp_path / "gx", progress=False)
