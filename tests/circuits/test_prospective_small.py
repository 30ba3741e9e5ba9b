"""The small prospective-configuration experiments: closed forms, directions of effect (PC vs BP) at reduced
size, and numba == reference."""
from __future__ import annotations

import numpy as np
import pytest

import neurosim as ns
from neurosim.circuits import _prospective_bio as bio
from neurosim.circuits import _prospective_toy as toy
from neurosim.circuits._prospective_common import Relax, learn_step


def cfg_of(defaults, **over):
    c = dict(defaults)
    c.update(over)
    return c


def bear_closed_form(w, v, s, t, lr):
    """One PC step of the linear 1-1-2 net at the exact equilibrium (the spec's oracle)."""
    y = v * w * s
    eps_out = np.linalg.solve(np.eye(2) + np.outer(v, v), t - y)
    eps_h = v @ eps_out
    x_h = w * s + eps_h
    return w + lr * eps_h * s, v + lr * eps_out * x_h


def test_bear_first_step_matches_the_linear_equilibrium():
    t = np.array([0.0, 1.0])
    w1, v1 = bear_closed_form(1.0, np.array([1.0, 1.0]), 1.0, t, 0.2)
    assert w1 == pytest.approx(14 / 15) and v1 == pytest.approx([41 / 45, 47 / 45])
    # exact relaxation (no inference-rate discount): equilibrium to rounding error
    tr = toy.bear_trajectory(cfg_of(toy.BEAR_DEFAULTS, dt_decay=1.0), "pc", iterations=3)
    np.testing.assert_allclose(tr["W1"][1], [w1], atol=1e-12)
    np.testing.assert_allclose(tr["W2"][1], v1, atol=1e-12)
    # later steps too
    w2, v2 = bear_closed_form(w1, v1, 1.0, t, 0.2)
    np.testing.assert_allclose(tr["W2"][2], v2, atol=1e-12)
    np.testing.assert_allclose(tr["y"][2], v2 * w2, atol=1e-12)
    # Song's recipe (dt halves whenever F stops decreasing) stalls once F no longer resolves in float64
    tr = toy.bear_trajectory(toy.BEAR_DEFAULTS, "pc", iterations=1)
    np.testing.assert_allclose(tr["y"][1], [574 / 675, 658 / 675], atol=1e-8)


def test_bear_metrics_and_directions(tmp_path):
    m = toy.run_bear(cfg_of(toy.BEAR_DEFAULTS, lr_sweep=[0.05, 0.1]), tmp_path, progress=False)
    pc, bp = m["pc"], m["bp"]
    for r in (pc, bp):
        assert len(r["y_after_first_step"]) == 2
        assert {"target_alignment_first_step", "min_correct_output"} <= set(r)
    np.testing.assert_allclose(pc["y_after_first_step"], [574 / 675, 658 / 675], atol=1e-8)
    np.testing.assert_allclose(bp["y_after_first_step"], [0.64, 0.8], atol=1e-12)
    assert pc["target_alignment_first_step"] == pytest.approx(101 / np.sqrt(101 ** 2 + 17 ** 2), abs=1e-8)
    assert bp["target_alignment_first_step"] == pytest.approx(9 / np.sqrt(106), abs=1e-12)
    # the paper's numbers (Fig. 3a,d): the correct output dips to ~0.94 under PC and ~0.79-0.80 under BP
    assert 0.92 < pc["min_correct_output"] < 0.96
    assert 0.74 < bp["min_correct_output"] < 0.81
    assert all(0.93 < v < 0.95 for v in m["lr_sweep"]["pc_min_correct_output"])
    assert all(0.78 < v < 0.81 for v in m["lr_sweep"]["bp_min_correct_output"])
    assert pc["hidden_to_correct_weight_change_first_step"] == pytest.approx(2 / 45, abs=1e-8)  # 47/45 - 1
    assert bp["hidden_to_correct_weight_change_first_step"] == 0.0
    assert all(c["held"] for c in m["checks"])
    assert (tmp_path / "bear_trajectories.png").stat().st_size > 10_000
    assert (tmp_path / "bear_lr_sweep.png").exists()


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[prefix + k] = float(v)
        elif isinstance(v, list):
            out[prefix + k] = v if v and isinstance(v[0], str) else np.asarray(v, dtype=float)
    return out


def assert_same_numbers(a, b, rtol, atol):
    fa, fb = _flat(a), _flat(b)
    assert fa.keys() == fb.keys()
    for k in fa:
        if isinstance(fa[k], list):
            assert fa[k] == fb[k], k
        else:
            np.testing.assert_allclose(fa[k], fb[k], rtol=rtol, atol=atol, err_msg=k)


def test_bear_numba_and_reference_give_the_same_metrics(tmp_path):
    cfg = cfg_of(toy.BEAR_DEFAULTS, lr_sweep=[0.1], sweep_time=1.0)
    m = {be: toy.run_bear(cfg_of(cfg, backend=be), tmp_path / be, progress=False) for be in ("numba", "reference")}
    for rule in ("pc", "bp"):
        assert_same_numbers(m["numba"][rule], m["reference"][rule], rtol=1e-8, atol=1e-9)
    assert_same_numbers(m["numba"]["lr_sweep"], m["reference"]["lr_sweep"], rtol=1e-8, atol=1e-9)


def test_example_122_bp_zigzags_pc_goes_straight(tmp_path):
    m = toy.run_example_122(dict(toy.EX122_DEFAULTS), tmp_path, progress=False)
    pc, bp = m["pc"], m["bp"]
    assert pc["first_step_length"] == pytest.approx(bp["first_step_length"], abs=1e-9)
    assert bp["zigzags"] >= 10 and pc["zigzags"] == 0
    assert bp["erraticness"] > 1.5 and pc["erraticness"] < 1.15
    # BP's w2 overshoots the optimum 0.5 on every other step; PC's first step has direction (1/2, 2/5)
    ws = np.array(pc["trajectory"])
    step = ws[1] - ws[0]
    assert step[1] / step[0] == pytest.approx(0.8, abs=1e-8)
    assert pc["final_distance_to_optimum"] < 1e-6
    assert all(c["held"] for c in m["checks"])
    short = dict(iterations=4, small_lr=0.4)
    ref = toy.run_example_122(cfg_of(toy.EX122_DEFAULTS, backend="reference", **short), tmp_path / "r",
                              progress=False)
    num = toy.run_example_122(cfg_of(toy.EX122_DEFAULTS, **short), tmp_path / "n", progress=False)
    np.testing.assert_allclose(ref["pc"]["trajectory"], num["pc"]["trajectory"], atol=1e-9)


def test_target_alignment_depth_direction(tmp_path):
    cfg = cfg_of(toy.TA_DEFAULTS, width=32, depths=[1, 2, 6], n_seeds=2, relax_steps=256, activations=["tanh"],
                 activation_depths=[1, 3], activation_relax_steps=64)
    m = toy.run_target_alignment(cfg, tmp_path, progress=False)
    pc, bp = np.array(m["pc"]["ta_mean"]), np.array(m["bp"]["ta_mean"])
    assert pc[0] == pytest.approx(1.0, abs=1e-9) and bp[0] == pytest.approx(1.0, abs=1e-9)
    assert np.all(pc[1:] > bp[1:])
    assert pc[2] - bp[2] > 0.1                      # the gap at 6 layers is large (paper: ~0.9 vs ~0.72)
    assert m["pc"]["activations"]["tanh"]["ta_mean"][0] == pytest.approx(1.0, abs=1e-9)
    assert all(c["held"] for c in m["checks"])


def test_prospective_index_direction(tmp_path):
    m = toy.run_prospective_index(cfg_of(toy.PI_DEFAULTS, width=32, n_seeds=2), tmp_path, progress=False)
    pc1, pcc, bp1 = (np.array(m[r][k]) for r, k in (("pc", "pi_one_step"), ("pc", "pi_converged"),
                                                     ("bp", "pi_one_step")))
    assert m["pc"]["layers"] == ["h1", "h2", "h3", "h4", "h5", "output"]
    # the first hidden layer sees the (linear, clamped) input: its change is parallel to its error -> PI = 1
    assert pc1[0] == pytest.approx(1.0, abs=1e-9) and bp1[0] == pytest.approx(1.0, abs=1e-9)
    assert np.all(pc1 > 0.9) and np.all(pcc > 0.999)
    assert np.all(pc1[1:] > bp1[1:])
    assert all(c["held"] for c in m["checks"])


FEAR_SMALL = dict(n_seeds=2, perception_lrs=[0.001], L_lrs=[1.0, 0.001], N_lrs=[1.0])


def test_fear_conditioning_directions_and_backends(tmp_path):
    m = bio.run_fear_conditioning(cfg_of(bio.FEAR_DEFAULTS, **FEAR_SMALL), tmp_path, progress=False)
    pc, bp = m["pc"], m["bp"]
    assert bp["model"]["LN+"] == bp["model"]["LN+/L-"]                 # BP: N's input is 0 during L-
    assert pc["model"]["LN+/L-"] > pc["model"]["LN+"] + 0.05           # PC: extinguishing L restores N
    assert pc["model"]["LN+"] < pc["model"]["N+"]                      # overshadowing
    assert pc["fit_error"] < 0.1 * bp["fit_error"]
    assert all(c["held"] for c in m["checks"])
    assert (tmp_path / "fear_conditioning.png").exists()
    ref = bio.run_fear_conditioning(cfg_of(bio.FEAR_DEFAULTS, backend="reference", **FEAR_SMALL), tmp_path / "r",
                                    progress=False)
    for rule in ("pc", "bp"):
        for g in bio.FEAR_GROUPS:
            assert ref[rule]["model"][g] == pytest.approx(m[rule]["model"][g], abs=1e-7)


def test_sensorimotor_cue2_learning_only_under_pc(tmp_path):
    cfg = cfg_of(bio.SM_DEFAULTS, n_seeds=1, train_blocks=6, post_blocks=2, init_stds=[0.1], lrs=[0.0001],
                 memory_lrs=[0.1])
    m = bio.run_sensorimotor(cfg, tmp_path, progress=False)
    assert m["pc"]["cue2_over_cue1_learning"] > 0.2
    assert m["bp"]["cue2_over_cue1_learning"] < 0.05
    assert m["pc"]["fit_error"] < m["bp"]["fit_error"]


def test_sensorimotor_protocol_structure():
    rng = np.random.default_rng(0)
    trials = bio.sm_protocol(2, 3, rng)
    measured = [m for _, m in trials if m is not None]
    assert len(measured) == 3 * 4 * 2                        # every post block tests the 4 exposures
    for g in bio.SM_GROUPS:
        assert sum(1 for m in measured if m == (g, 0)) == 3
    # each training block has 32 force-field trials plus one exposure per triplet
    n_ff = sum(1 for t, _ in trials if t in ("1+", "2-"))
    assert n_ff == 2 * (32 + 2) + 3 * 2                      # + post-training 1+ and 2- exposures
    for i, (t, m) in enumerate(trials):
        if m is not None and m[1] == 0:
            assert trials[i + 1][0] == m[0] and trials[i + 2] == ("10", (m[0], 2))


def test_reversal_learning_step_is_the_free_unchosen_output_equilibrium():
    """Only the chosen value is clamped; at equilibrium the free unchosen output has zero error, so one PC step
    of task -> latent -> chosen equals the closed form of the 1-1-2 net with the unchosen output free."""
    lr, W1, W2a, r = 0.1, 0.3, -0.7, -1.0
    relax = Relax(steps=400, dt=0.1, dt_decay=1.0)
    sim = ns.Simulator(bio.rev_circuit(lr), dt=0.1, backend="reference", seed=0)
    sim.set_weights("W1", W=[[W1]])
    sim.set_weights("W2", W=[[W2a]])
    learn_step(sim, "pc", [[1.0]], [[r]], relax)
    eps_out = (r - W2a * W1) / (1 + W2a ** 2)
    eps_h = W2a * eps_out
    assert sim.weights["W1"][0, 0] == pytest.approx(W1 + lr * eps_h, abs=1e-12)
    assert sim.weights["W2"][0, 0] == pytest.approx(W2a + lr * eps_out * (W1 + eps_h), abs=1e-12)


def test_reversal_learning_sems_take_participants_as_clusters():
    """With one event per participant the clustered SEM is the ordinary one; repeating every participant's event k
    times leaves it unchanged (the participants are the same), while the pooled-trials SEM shrinks by sqrt(k)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=12)
    one = bio._cluster_sem([np.array([v]) for v in x])
    assert one == pytest.approx(x.std(ddof=1) / np.sqrt(len(x)), rel=1e-12)
    k = 9
    assert bio._cluster_sem([np.full(k, v) for v in x]) == pytest.approx(one, rel=1e-12)
    pooled = np.repeat(x, k)
    assert pooled.std(ddof=1) / np.sqrt(pooled.size) < one / np.sqrt(k) * 1.01
    # participants without an event count as clusters with nothing in them (unchanged pooled mean)
    assert np.isfinite(bio._cluster_sem([np.array([1.0, 2.0]), np.array([]), np.array([4.0])]))
    assert np.isnan(bio._cluster_sem([np.array([1.0])]))
    assert np.isnan(bio._cluster_sem([np.array([1.0, 3.0]), np.array([]), np.array([])]))   # one participant


def test_reversal_learning_runs_and_backends_agree(tmp_path):
    cfg = cfg_of(bio.REV_DEFAULTS, n_seeds=4, trials=96, analyse_after=32)
    m = bio.run_reversal_learning(cfg, tmp_path, progress=False)
    for r in ("pc", "bp"):
        assert sum(m[r]["events"].values()) > 40
        assert m[r]["fit_error"] >= 0 and np.isfinite(m[r]["k"])
    short = dict(n_seeds=1, trials=48, analyse_after=0)
    ref = bio.run_reversal_learning(cfg_of(cfg, backend="reference", **short), tmp_path / "r", progress=False)
    num = bio.run_reversal_learning(cfg_of(cfg, **short), tmp_path / "n", progress=False)
    for r in ("pc", "bp"):
        assert ref[r]["events"] == num[r]["events"]
        for k, v in num[r]["model"].items():
            assert ref[r]["model"][k] == pytest.approx(v, abs=1e-7)


def test_reversal_replicates_count_groups_of_the_authors_size():
    """Disjoint groups of participants; per group the pooled switch/stay changes (next minus punished)."""
    def seed(sw_punish, sw_next, st_punish, st_next):
        return [(("at_punish", "switch"), sw_punish), (("next_trial", "switch"), sw_next),
                (("at_punish", "stay"), st_punish), (("next_trial", "stay"), st_next)]
    per_seed = [seed(0.0, 0.3, 0.5, 0.1),       # group 1: switch +0.3 / -0.1 -> +0.1 rises; stay falls
                seed(0.0, -0.1, 0.5, 0.2),
                seed(0.2, 0.1, 0.0, 0.4),       # group 2: switch falls; stay rises
                seed(0.2, 0.1, 0.0, 0.4),
                seed(9.0, 9.9, 9.0, 0.0)]       # incomplete group, left out
    rep = bio._rev_replicates(per_seed, 2)
    assert rep["groups"] == 2
    assert rep["switch_rises"] == 0.5 and rep["crossover"] == 0.5
    assert rep["switch_change_max"] == pytest.approx(0.1) and rep["switch_change_min"] == pytest.approx(-0.1)
    assert bio._rev_replicates(per_seed, 6)["groups"] == 0


def test_reversal_and_online_defaults_are_the_authors_set_up():
    """Song et al.'s configs (nature_reversal_task/base-plot-{pc,bp}.yaml, nature_none_batch_new_analysis/
    base-b*.yaml): the settings neurosim follows."""
    r = bio.REV_DEFAULTS
    assert (r["lrs_pc"], r["init_stds_pc"], r["lrs_bp"], r["init_stds_bp"]) == ([0.1], [0.05], [0.1], [0.1])
    assert (r["relax_steps"], r["dt"], r["dt_decay"], r["trials"], r["analyse_after"]) == (256, 0.1, 0.9, 128, 64)
    assert (r["replicate_seeds_pc"], r["replicate_seeds_bp"]) == (22, 40)
    assert r["n_seeds"] % 22 == 0 and r["n_seeds"] % 40 == 0
    from neurosim.circuits import _prospective_digits as dg
    o = dg.ONLINE_DEFAULTS
    assert o["batch_sizes"] == [1, 8, 16, 32, 64] and o["n_seeds"] == 3 and o["hidden"] == [32, 32]
    assert (o["phi"], o["relax_steps"], o["dt"], o["dt_decay"]) == ("sigmoid", 64, 0.1, 0.5)
    assert o["iterations"] == 64
    n_train = dg._data(o).n_train
    # about the authors' passes over the training set: 64 x 200 updates on 60000 FashionMNIST images
    passes = o["iterations"] * o["batches_per_iteration"] / n_train
    assert passes == pytest.approx(64 * 200 / 60000, rel=0.15) and passes < 1   # batch 1 sees each example once


def test_online_learning_reports_the_advantage_per_batch_size(tmp_path):
    from neurosim.circuits import _prospective_digits as dg
    cfg = cfg_of(dg.ONLINE_DEFAULTS, **TINY["online-learning"])
    m = dg.run_online_learning(cfg, tmp_path, progress=False)
    adv = np.array(m["bp"]["mean_test_error"]) - np.array(m["pc"]["mean_test_error"])
    np.testing.assert_allclose(m["advantage"], adv, rtol=0, atol=1e-15)
    assert m["largest_advantage_at"] == cfg["batch_sizes"][int(np.argmax(adv))]


TINY = {
    "target-alignment": dict(width=8, depths=[1, 3], n_seeds=1, relax_steps=64, activations=["tanh"],
                             activation_depths=[2], activation_relax_steps=32),
    "prospective-index": dict(width=8, n_layers=3, n_seeds=1, relax_steps=50, converge_steps=5),
    "sensorimotor": dict(n_seeds=1, train_blocks=1, post_blocks=1, init_stds=[0.1], lrs=[0.001], memory_lrs=[0.1]),
    "few-data": dict(n_seeds=1, examples_per_class=[3], epochs=2, lrs=[0.4], relax_steps=16),
    "deep-small-data": dict(n_seeds=1, depths=[1, 3], examples_per_class=3, epochs=2, lrs=[0.3], relax_steps=16),
    "continual": dict(n_seeds=1, cycles=1, epochs_per_task=1, lrs=[0.4], relax_steps=8, hidden=[8]),
    "concept-drift": dict(n_seeds=1, iterations=12, drift_every=4, eval_every=4, pretrain_epochs=1, lrs=[0.4],
                          examples_per_class=2, relax_steps=8, hidden=[8]),
    "online-learning": dict(n_seeds=1, batch_sizes=[1, 4], lrs=[0.4], iterations=2, batches_per_iteration=3,
                            relax_steps=8, hidden=[8]),
}


@pytest.mark.parametrize("name", sorted(TINY))
def test_numba_and_reference_give_the_same_numbers(name, tmp_path):
    from neurosim import registry
    exp = registry.get(name)
    cfg = cfg_of(exp.DEFAULTS, **TINY[name])
    m = {be: exp.run(cfg_of(cfg, backend=be), tmp_path / be, progress=False) for be in ("numba", "reference")}
    for rule in ("pc", "bp"):
        assert_same_numbers(m["numba"][rule], m["reference"][rule], rtol=1e-7, atol=1e-8)
    assert [c["held"] for c in m["numba"]["checks"]] == [c["held"] for c in m["reference"]["checks"]]
