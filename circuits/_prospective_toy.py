r"""The small networks of Song et al. (2024): the bear (1-1-2), the 1-2-2 example, target alignment versus
depth, and the prospective index per layer.

Every experiment trains the *same* circuit with PC and with BP (see :mod:`circuits._prospective_common`)
and reports named numbers for both.
"""
from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

import neurosim as ns
from neurosim import activations as act
from neurosim import metrics, plot
from neurosim.algorithms import backprop
from neurosim.plan import ROLE_INPUT

from ._prospective_common import (COLOR, GAIN, RULES, SHORT, Relax, check, feedforward, learn_step,
                                  output, progress_bar, simulator)
from . import _params as P

#: inference settings of the PC rule shared by the experiments below
RELAX_PARAMS = {"relax_steps": P.COUNT, "dt": P.DT, "dt_decay": P.DT_DECAY}

# ====================================================================================================
# bear: the 1-1-2 interference example (Fig. 1 and Fig. 3a,d)
# ====================================================================================================

BEAR_DOC = r"""The bear example (Fig. 1, Fig. 3a,d): seeing the river (input) predicts hearing water and smelling
salmon (two outputs) through one hidden neuron.  Today the ear is impaired: the target is (0, 1).

Network ``input(1) -> h(1) -> output(2)``, linear, no bias, all weights ``init_weight``; each iteration is
one training step on the single sample (PC: ``relax_steps`` Euler steps of size ``dt`` with the
output clamped, discount ``dt_decay``, then the Hebbian update; BP: one gradient step).

BP weakens the shared input->hidden weight, so the correct (salmon) output dips: interference.  PC first
infers the hidden activity that keeps the salmon prediction, then learns it: the hidden->salmon weight
grows and the dip is small.  The linear equilibrium is exact:
eps_out = (I + W2 W2^T)^-1 (t - y), eps_h = W2^T eps_out, x_h = W1 s + eps_h.

metrics.json: for "pc" and "bp": ``y_after_first_step`` (2 numbers), ``target_alignment_first_step``,
``min_correct_output`` (minimum of output 1 over the trajectory), ``weights_first_step``; the learning-rate
sweep of Fig. 3d (``lr_sweep``: minimum correct output per learning rate, run for ``sweep_time / lr``
iterations).  Figures: ``bear_trajectories.png``, ``bear_lr_sweep.png``."""

BEAR_DEFAULTS = {
    "backend": "numba",       # numba | reference
    "seed": 0,                # unused by the deterministic set-up; kept for the CLI
    "input": 1.0,             # s (seeing the river)
    "target": [0.0, 1.0],     # (hearing water, smelling salmon)
    "init_weight": 1.0,       # every weight starts here
    "lr": 0.2,                # weight learning rate (SGD)
    "iterations": 24,         # training steps on the one sample
    "relax_steps": 128,       # PC inference steps T
    "dt": 0.1,                # PC inference rate gamma (tau_x = 1)
    "dt_decay": 0.5,          # gamma *= dt_decay when the energy fails to decrease
    "phi": "linear",          # hidden activation
    "lr_sweep": [0.005, 0.01, 0.05, 0.1],  # Fig. 3d learning rates
    "sweep_time": 6.0,        # each sweep run lasts sweep_time / lr iterations
}

BEAR_PARAMS = {
    "backend": P.PC_BACKEND,
    "seed": P.SEED,
    "input": P.Float(),
    "target": P.ListOf(P.Float(), min_len=2, max_len=2),
    "init_weight": P.Float(),
    "lr": P.LR,
    "iterations": P.COUNT,
    **RELAX_PARAMS,
    "phi": P.PHI,
    "lr_sweep": P.LRS,
    "sweep_time": P.Float(gt=0),
}


def bear_circuit(cfg) -> ns.Circuit:
    return ns.hierarchy([1, 1, 2], phi=cfg["phi"], bias=False, lr=float(cfg["lr"]), optimizer=ns.SGD(),
                        init=ns.Init("constant", value=float(cfg["init_weight"])), name="bear-112")


def _bear_relax(cfg) -> Relax:
    return Relax(int(cfg["relax_steps"]), float(cfg["dt"]), float(cfg["dt_decay"]))


def bear_trajectory(cfg, rule: str, lr: float | None = None, iterations: int | None = None) -> dict:
    """Train the bear network with ``rule``; outputs and weights before each step and after the last."""
    c = dict(cfg)
    if lr is not None:
        c["lr"] = lr
    n_it = int(c["iterations"] if iterations is None else iterations)
    relax = _bear_relax(c)
    sim = simulator(bear_circuit(c), c, relax, rule=rule)
    X = np.array([[float(c["input"])]])
    Y = np.array([list(map(float, c["target"]))])
    if Y.shape != (1, 2):
        raise ValueError(f"bear: target must have 2 numbers, got {c['target']!r}")
    ys, W1, W2 = [output(sim, X)[0]], [sim.weights["W1"].ravel()], [sim.weights["W2"].ravel()]
    for _ in range(n_it):
        learn_step(sim, rule, X, Y, relax)
        ys.append(output(sim, X)[0])
        W1.append(sim.weights["W1"].ravel())
        W2.append(sim.weights["W2"].ravel())
    sim.close()
    return {"y": np.array(ys), "W1": np.array(W1), "W2": np.array(W2), "target": Y[0]}


def run_bear(cfg, out, progress=True) -> dict:
    res = {}
    for rule in RULES:
        tr = bear_trajectory(cfg, rule)
        y, t = tr["y"], tr["target"]
        res[rule] = {
            "y_before": y[0].tolist(),
            "y_after_first_step": y[1].tolist(),
            "target_alignment_first_step": metrics.target_alignment(y[0], y[1], t),
            "min_correct_output": float(np.min(y[:, 1])),
            "iteration_of_min_correct_output": int(np.argmin(y[:, 1])),
            "correct_output_change_first_step": float(y[1, 1] - y[0, 1]),
            "final_output": y[-1].tolist(),
            "weights_first_step": {"W1_before": tr["W1"][0].tolist(), "W1_after": tr["W1"][1].tolist(),
                                   "W2_before": tr["W2"][0].tolist(), "W2_after": tr["W2"][1].tolist()},
            "hidden_to_correct_weight_change_first_step": float(tr["W2"][1, 1] - tr["W2"][0, 1]),
            "output_trajectory": y.tolist(),
        }
        res[rule + "_traj"] = tr
    lrs = [float(v) for v in cfg["lr_sweep"]]
    sweep = {rule: [] for rule in RULES}
    bar = progress_bar(total=len(lrs) * 2, desc="bear lr sweep", enabled=progress)
    for lr in lrs:
        n_it = max(1, int(math.ceil(float(cfg["sweep_time"]) / lr)))
        for rule in RULES:
            tr = bear_trajectory(cfg, rule, lr=lr, iterations=n_it)
            sweep[rule].append(float(np.min(tr["y"][:, 1])))
            bar.update(1)
    bar.close()
    _bear_figures(cfg, res, lrs, sweep, out)
    pc, bp = res["pc"], res["bp"]
    checks = [
        check("the correct output dips less under PC than under BP (min over training)",
              pc["min_correct_output"] > bp["min_correct_output"],
              pc=pc["min_correct_output"], bp=bp["min_correct_output"]),
        check("after the first step the correct output drops less under PC",
              pc["correct_output_change_first_step"] > bp["correct_output_change_first_step"],
              pc=pc["correct_output_change_first_step"], bp=bp["correct_output_change_first_step"]),
        check("PC's first step is better aligned with the target (TA_PC > TA_BP)",
              pc["target_alignment_first_step"] > bp["target_alignment_first_step"],
              pc=pc["target_alignment_first_step"], bp=bp["target_alignment_first_step"]),
        check("under PC the hidden->correct weight grows; under BP it does not change",
              pc["hidden_to_correct_weight_change_first_step"] > 0
              and abs(bp["hidden_to_correct_weight_change_first_step"]) < 1e-12,
              pc=pc["hidden_to_correct_weight_change_first_step"],
              bp=bp["hidden_to_correct_weight_change_first_step"]),
        check("across learning rates the PC dip stays smaller than the BP dip (Fig. 3d)",
              all(p > b for p, b in zip(sweep["pc"], sweep["bp"])), pc=sweep["pc"], bp=sweep["bp"]),
    ]
    return {
        "pc": {k: v for k, v in pc.items()}, "bp": {k: v for k, v in bp.items()},
        "lr_sweep": {"lr": lrs, "pc_min_correct_output": sweep["pc"], "bp_min_correct_output": sweep["bp"]},
        "checks": checks,
        "figures": ["bear_trajectories.png", "bear_lr_sweep.png"],
    }


def _bear_figures(cfg, res, lrs, sweep, out):
    fig = Figure(figsize=(12, 3.8))
    ax0, ax1, ax2 = fig.subplots(1, 3)
    t = np.array(cfg["target"], dtype=float)
    for rule in RULES:
        y = res[rule + "_traj"]["y"]
        ax0.plot(y[:, 0], y[:, 1], "o-", ms=3, color=COLOR[rule], label=SHORT[rule])
        ax0.annotate("", xy=y[1], xytext=y[0], arrowprops=dict(arrowstyle="->", color=COLOR[rule], lw=1.5))
        ax1.plot(np.arange(len(y)), y[:, 1], "o-", ms=3, color=COLOR[rule], label=SHORT[rule])
        W1, W2 = res[rule + "_traj"]["W1"], res[rule + "_traj"]["W2"]
        it = np.arange(len(W1))
        ax2.plot(it, W1[:, 0], "-", color=COLOR[rule], label=f"{SHORT[rule]} input->hidden")
        ax2.plot(it, W2[:, 0], "--", color=COLOR[rule], label=f"{SHORT[rule]} hidden->water")
        ax2.plot(it, W2[:, 1], ":", color=COLOR[rule], lw=2, label=f"{SHORT[rule]} hidden->salmon")
    ax0.plot(*t, "k*", ms=12, label="target")
    ax0.set_xlabel("output 0: hearing water")
    ax0.set_ylabel("output 1: smelling salmon")
    ax0.set_title("Output trajectory (arrows: first step)", fontsize=10)
    ax0.legend(fontsize=8, frameon=False)
    ax1.axhline(t[1], color="k", lw=0.6)
    ax1.set_xlabel("iteration")
    ax1.set_ylabel("salmon prediction (target 1)")
    ax1.set_title("Interference: dip of the correct output", fontsize=10)
    ax1.legend(fontsize=8, frameon=False)
    ax2.set_xlabel("iteration")
    ax2.set_ylabel("weight")
    ax2.set_title("Weights", fontsize=10)
    ax2.legend(fontsize=6, frameon=False, ncol=2)
    fig.suptitle(f"Bear example 1-1-2, lr={cfg['lr']}, PC T={cfg['relax_steps']}", fontsize=11)
    fig.tight_layout()
    plot.save(fig, out / "bear_trajectories.png")
    plot.comparison({SHORT[r]: (np.array(lrs), np.array(sweep[r])) for r in RULES}, "learning rate",
                    "minimum of the correct output", path=out / "bear_lr_sweep.png", logx=True,
                    title="Dip of the correct output vs learning rate (Fig. 3d)")


# ====================================================================================================
# example-122: BP zig-zags, PC goes straight
# ====================================================================================================

EX122_DOC = r"""The 1-2-2 example: ``h_i = w_i s``, ``y = (1 h_1, 2 h_2)`` with the second layer fixed, ``s = 1``,
``t = (1, 1)``, ``w`` starts at ``w0``; the optimum is ``w* = (1, 0.5)``.

BP's gradient is 4x steeper along ``w_2`` than ``w_1``, so at ``bp_lr`` it overshoots and zig-zags.  PC
relaxes first (eps_out = (I + W2 W2^T)^-1 (t - y)), which scales each direction by the output's own
sensitivity, so it moves almost straight to ``w*``.  With ``match_step_length`` the PC learning rate is
chosen so that PC's first step has the same length as BP's (``pc_lr`` is then ignored; the authors used
1.39695 for ``bp_lr = 0.4``); a small-learning-rate variant (``small_lr`` for both) is also run.

metrics.json: per rule the weight trajectory, path length, displacement, erraticness (length /
displacement), zig-zags (successive steps with a negative cosine), first step length and the final
distance to ``w*``.  Figure: ``example_122.png`` (weight space with the loss contours)."""

EX122_DEFAULTS = {
    "backend": "numba",
    "seed": 0,
    "w0": [0.0, 0.0],
    "target": [1.0, 1.0],
    "second_layer": [1.0, 2.0],   # fixed diagonal hidden->output weights
    "bp_lr": 0.4,
    "pc_lr": 1.3969543147208123,
    "match_step_length": True,    # choose pc_lr so that PC's first step is as long as BP's
    "small_lr": 0.05,             # both rules, second panel
    "iterations": 15,
    "relax_steps": 128,
    "dt": 0.1,
    "dt_decay": 0.8,
}

EX122_PARAMS = {
    "backend": P.PC_BACKEND,
    "seed": P.SEED,
    "w0": P.ListOf(P.Float(), min_len=2, max_len=2),
    "target": P.ListOf(P.Float(), min_len=2, max_len=2),
    "second_layer": P.ListOf(P.NONZERO, min_len=2, max_len=2),
    "bp_lr": P.LR,
    "pc_lr": P.LR,
    "match_step_length": P.Bool(),
    "small_lr": P.LR,
    "iterations": P.COUNT,
    **RELAX_PARAMS,
}


def ex122_circuit(lr: float, second_layer) -> ns.Circuit:
    pops = (ns.ValuePopulation("input", 1), ns.ValuePopulation("hidden", 2), ns.ValuePopulation("output", 2))
    errs = (ns.ErrorPopulation("eps_hidden", "hidden"), ns.ErrorPopulation("eps_output", "output"))
    projs = (ns.Projection("W1", "input", "hidden", init=ns.Init("zeros"), plasticity=ns.Hebbian(lr=lr)),
             ns.Projection("W2", "hidden", "output", init=ns.Init("zeros"), plasticity=None))
    clamps = (ns.Clamp("input", "input"), ns.Clamp("output", "target"))
    return ns.Circuit(pops, errs, projs, clamps, name="example-122")


def ex122_trajectory(cfg, rule: str, lr: float, iterations: int | None = None) -> np.ndarray:
    """Weights ``(iterations + 1, 2)`` of the first layer while training with ``rule`` at ``lr``."""
    relax = Relax(int(cfg["relax_steps"]), float(cfg["dt"]), float(cfg["dt_decay"]))
    second = [float(v) for v in cfg["second_layer"]]
    if len(second) != 2 or len(cfg["w0"]) != 2 or len(cfg["target"]) != 2:
        raise ValueError("example-122: w0, target and second_layer need 2 numbers each")
    sim = simulator(ex122_circuit(lr, second), cfg, relax, rule=rule)
    sim.set_weights("W1", W=np.array(cfg["w0"], dtype=float).reshape(2, 1))
    sim.set_weights("W2", W=np.diag(second))
    X, Y = np.ones((1, 1)), np.array([cfg["target"]], dtype=float)
    ws = [sim.weights["W1"].ravel()]
    for _ in range(int(cfg["iterations"] if iterations is None else iterations)):
        learn_step(sim, rule, X, Y, relax)
        ws.append(sim.weights["W1"].ravel())
    sim.close()
    return np.array(ws)


def _traj_metrics(ws, w_star) -> dict:
    return {
        "trajectory": ws.tolist(),
        "path_length": metrics.trajectory_length(ws),
        "displacement": metrics.displacement(ws),
        "erraticness": metrics.erraticness(ws),
        "zigzags": metrics.zigzags(ws),
        "first_step_length": float(np.linalg.norm(ws[1] - ws[0])),
        "final_distance_to_optimum": float(np.linalg.norm(ws[-1] - w_star)),
    }


def run_example_122(cfg, out, progress=True) -> dict:
    second = np.array(cfg["second_layer"], dtype=float)
    t = np.array(cfg["target"], dtype=float)
    w_star = t / second
    bp_lr = float(cfg["bp_lr"])
    pc_lr = float(cfg["pc_lr"])
    if cfg["match_step_length"]:
        # PC's first step is linear in its learning rate (the relaxed state does not depend on it)
        unit = ex122_trajectory(cfg, "pc", 1.0, iterations=1)
        bp1 = ex122_trajectory(cfg, "bp", bp_lr, iterations=1)
        pc_lr = float(np.linalg.norm(bp1[1] - bp1[0]) / np.linalg.norm(unit[1] - unit[0]))
    trajs = {"pc": ex122_trajectory(cfg, "pc", pc_lr), "bp": ex122_trajectory(cfg, "bp", bp_lr)}
    small = {r: ex122_trajectory(cfg, r, float(cfg["small_lr"]), iterations=int(round(
        int(cfg["iterations"]) * max(bp_lr, pc_lr) / float(cfg["small_lr"])))) for r in RULES}
    res = {r: {"lr": lr, **_traj_metrics(trajs[r], w_star)} for r, lr in (("pc", pc_lr), ("bp", bp_lr))}
    for r in RULES:
        res[r]["small_lr"] = {k: v for k, v in _traj_metrics(small[r], w_star).items() if k != "trajectory"}
    _ex122_figure(cfg, trajs, small, w_star, pc_lr, bp_lr, out)
    checks = [
        check("BP zig-zags (direction reversals) while PC does not", res["bp"]["zigzags"] > 0
              and res["pc"]["zigzags"] == 0, pc=res["pc"]["zigzags"], bp=res["bp"]["zigzags"]),
        check("PC's weight path is straighter (erraticness closer to 1)",
              res["pc"]["erraticness"] < res["bp"]["erraticness"], pc=res["pc"]["erraticness"],
              bp=res["bp"]["erraticness"]),
    ]
    if cfg["match_step_length"]:
        checks.append(check("the first steps have equal length (matched learning rates)",
                            abs(res["pc"]["first_step_length"] - res["bp"]["first_step_length"]) < 1e-9,
                            pc=res["pc"]["first_step_length"], bp=res["bp"]["first_step_length"]))
    return {"pc": res["pc"], "bp": res["bp"], "optimum": w_star.tolist(), "checks": checks,
            "figures": ["example_122.png"]}


def _ex122_figure(cfg, trajs, small, w_star, pc_lr, bp_lr, out):
    fig = Figure(figsize=(10, 4.4))
    axes = fig.subplots(1, 2)
    second = np.array(cfg["second_layer"], dtype=float)
    t = np.array(cfg["target"], dtype=float)
    allw = np.concatenate([*trajs.values(), *small.values()])
    lo = np.minimum(allw.min(0), w_star) - 0.15
    hi = np.maximum(allw.max(0), w_star) + 0.15
    g1, g2 = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200))
    loss = 0.5 * ((t[0] - second[0] * g1) ** 2 + (t[1] - second[1] * g2) ** 2)
    for ax, tr, title in ((axes[0], trajs, f"PC lr={pc_lr:.4g}, BP lr={bp_lr:.4g} (equal first step)"),
                          (axes[1], small, f"small learning rate {cfg['small_lr']} (both)")):
        ax.contour(g1, g2, loss, levels=12, colors="0.8", linewidths=0.6)
        for r in RULES:
            ax.plot(tr[r][:, 0], tr[r][:, 1], "o-", ms=3, color=COLOR[r], label=SHORT[r])
        ax.plot(*w_star, "k*", ms=12, label="w*")
        ax.set_xlabel("w1 (input -> h1)")
        ax.set_ylabel("w2 (input -> h2)")
        ax.set_title(title, fontsize=9)
        ax.set_aspect("equal")
        ax.legend(fontsize=8, frameon=False)
    fig.suptitle("1-2-2 example: weight trajectories (BP zig-zags, PC goes straight)", fontsize=11)
    fig.tight_layout()
    plot.save(fig, out / "example_122.png")


# ====================================================================================================
# target-alignment: TA vs depth (Fig. 3e) and across activations
# ====================================================================================================

TA_DOC = r"""Target alignment TA = cos(y_after - y_before, t - y_before) of one training step, for PC and BP.

Fig. 3e: linear networks of ``width`` units and ``depths`` weight layers (Xavier-uniform init, gain
matched to the activation), one sample with input and target ~ N(0, I), one update at learning rate
``lr``; PC relaxes ``relax_steps`` steps.  ``n_seeds`` networks/samples per depth.  Expected: TA = 1 at
depth 1 under both rules (PC and BP coincide there), PC stays near 1 with depth while BP falls.

Across activations (``activations`` at ``activation_depths``, ``activation_relax_steps``): the same
comparison with nonlinear hidden layers (the authors warn that sigmoid inflates TA for both rules).

metrics.json: per rule ``ta_mean`` / ``ta_std`` per depth and per activation.  Figures:
``target_alignment_depth.png``, ``target_alignment_activations.png``."""

TA_DEFAULTS = {
    "backend": "numba",
    "seed": 0,
    "width": 64,
    "depths": list(range(1, 26)),
    "n_seeds": 5,
    "lr": 0.001,
    "relax_steps": 512,
    "dt": 0.1,
    "dt_decay": 0.5,
    "activations": ["linear", "tanh", "relu", "sigmoid"],
    "activation_depths": [1, 2, 4, 8],
    "activation_relax_steps": 128,
}

TA_PARAMS = {
    "backend": P.PC_BACKEND,
    "seed": P.SEED,
    "width": P.COUNT,
    "depths": P.ListOf(P.Int(ge=1)),
    "n_seeds": P.COUNT,
    "lr": P.LR,
    **RELAX_PARAMS,
    "activations": P.ListOf(P.PHI),
    "activation_depths": P.ListOf(P.Int(ge=1)),
    "activation_relax_steps": P.COUNT,
}


def ta_one(cfg, depth: int, phi: str, seed: int, relax: Relax) -> dict:
    """TA of one update for PC and BP on one random network and sample; returns {rule: TA}."""
    width = int(cfg["width"])
    init = ns.Init("xavier_uniform", gain=GAIN.get(phi, 1.0))
    net = ns.hierarchy([width] * (depth + 1), phi=phi, bias=False, init=init, lr=float(cfg["lr"]),
                       optimizer=ns.SGD(), name=f"ta-depth{depth}")
    rng = np.random.default_rng([int(cfg["seed"]), depth, seed, 1])
    X = rng.normal(size=(1, width))
    Y = rng.normal(size=(1, width))
    out = {}
    for rule in RULES:
        sim = simulator(net, cfg, relax, seed=int(cfg["seed"]) * 100003 + 1000 * depth + seed, rule=rule)
        y0 = output(sim, X)
        learn_step(sim, rule, X, Y, relax)
        out[rule] = metrics.target_alignment(y0, output(sim, X), Y)
        sim.close()
    return out


def _ta_sweep(cfg, depths, phi, relax, bar):
    vals = {r: np.zeros((len(depths), int(cfg["n_seeds"]))) for r in RULES}
    for i, d in enumerate(depths):
        for s in range(int(cfg["n_seeds"])):
            ta = ta_one(cfg, int(d), phi, s, relax)
            for r in RULES:
                vals[r][i, s] = ta[r]
            bar.update(1)
    return vals


def run_target_alignment(cfg, out, progress=True) -> dict:
    depths = [int(d) for d in cfg["depths"]]
    acts = list(cfg["activations"])
    adepths = [int(d) for d in cfg["activation_depths"]]
    if min(depths + adepths) < 1:
        raise ValueError("target-alignment: depths are numbers of weight layers, >= 1")
    n_seeds = int(cfg["n_seeds"])
    relax = Relax(int(cfg["relax_steps"]), float(cfg["dt"]), float(cfg["dt_decay"]))
    arelax = Relax(int(cfg["activation_relax_steps"]), float(cfg["dt"]), float(cfg["dt_decay"]))
    bar = progress_bar(total=n_seeds * (len(depths) + len(acts) * len(adepths)), desc="target alignment",
                       enabled=progress)
    lin = _ta_sweep(cfg, depths, "linear", relax, bar)
    act = {a: _ta_sweep(cfg, adepths, a, arelax, bar) for a in acts}
    bar.close()
    res = {}
    for r in RULES:
        res[r] = {
            "depths": depths, "ta_mean": lin[r].mean(1).tolist(), "ta_std": lin[r].std(1).tolist(),
            "ta_angle_mean_deg": metrics.target_alignment_angle(lin[r]).mean(1).tolist(),
            "activations": {a: {"depths": adepths, "ta_mean": act[a][r].mean(1).tolist(),
                                "ta_std": act[a][r].std(1).tolist()} for a in acts},
        }
    pcm, bpm = np.array(res["pc"]["ta_mean"]), np.array(res["bp"]["ta_mean"])
    deep = [i for i, d in enumerate(depths) if d >= 2]
    checks = []
    if 1 in depths:
        i1 = depths.index(1)
        checks.append(check("TA = 1 at depth 1 under both rules", abs(pcm[i1] - 1) < 1e-9 and abs(bpm[i1] - 1) < 1e-9,
                            pc=pcm[i1], bp=bpm[i1]))
    if deep:
        checks.append(check("TA_PC >= TA_BP at every depth >= 2 (mean over seeds)",
                            bool(np.all(pcm[deep] >= bpm[deep])), pc=pcm[deep], bp=bpm[deep]))
        if len(deep) >= 2:
            gap = pcm - bpm
            checks.append(check("the PC-BP gap widens with depth (deepest vs shallowest >= 2)",
                                gap[deep[-1]] > gap[deep[0]], gap_shallow=gap[deep[0]], gap_deep=gap[deep[-1]]))
    _ta_figures(res, depths, acts, adepths, n_seeds, lin, out)
    return {"pc": res["pc"], "bp": res["bp"], "checks": checks,
            "figures": ["target_alignment_depth.png", "target_alignment_activations.png"]}


def _ta_figures(res, depths, acts, adepths, n_seeds, lin, out):
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot(1, 1, 1)
    for r in RULES:
        for s in range(n_seeds):
            ax.plot(depths, lin[r][:, s], ".", color=COLOR[r], alpha=0.35, ms=4)
        ax.errorbar(depths, res[r]["ta_mean"], yerr=res[r]["ta_std"], color=COLOR[r], label=SHORT[r], lw=1.5,
                    capsize=2)
    ax.set_xlabel("number of weight layers")
    ax.set_ylabel("target alignment")
    ax.set_title("Target alignment vs depth (linear, one update; Fig. 3e)\n"
                 f"dots: seeds; bars: mean ± SD over {n_seeds} seeds (ddof 0)", fontsize=10)
    ax.axhline(1, color="0.6", lw=0.6)
    ax.legend(frameon=False)
    fig.tight_layout()
    plot.save(fig, out / "target_alignment_depth.png")
    fig = Figure(figsize=(3.2 * len(acts), 3.4))
    axes = np.atleast_1d(fig.subplots(1, len(acts), sharey=True))
    for ax, a in zip(axes, acts):
        for r in RULES:
            d = res[r]["activations"][a]
            ax.errorbar(adepths, d["ta_mean"], yerr=d["ta_std"], color=COLOR[r], label=SHORT[r], capsize=2, marker="o",
                        ms=3)
        ax.set_title(a, fontsize=10)
        ax.set_xlabel("weight layers")
        ax.axhline(1, color="0.6", lw=0.6)
    axes[0].set_ylabel("target alignment")
    axes[0].legend(frameon=False, fontsize=8)
    fig.suptitle(f"Target alignment across activations (mean ± SD over {n_seeds} seeds, ddof 0)", fontsize=11)
    fig.tight_layout()
    plot.save(fig, out / "target_alignment_activations.png")


# ====================================================================================================
# prospective-index: PI per layer (Fig. 2)
# ====================================================================================================

PI_DOC = r"""Prospective index PI_l = cos(x-_{W'} - x-_W, x+_W - x-_W) per layer (Fig. 2).

A ``n_layers``-weight-layer network of ``width`` units (``phi``, Xavier-normal, no bias), one sample with
input and target ~ N(0, I).  x-_W: feedforward activity; x+_W: activity after ``relax_steps`` steps of
relaxation with the target clamped (before learning); x-_{W'}: feedforward activity after learning.
Two schedules, as in the authors' code: one Hebbian step at learning rate ``lr`` (w'), and
``converge_steps`` Hebbian steps with the relaxed activity held fixed (w*, "learned to convergence").
For the output layer x+ = t, so its PI is the target alignment.

BP has no relaxed activity; its analogue uses the activity change that BP's gradient asks for,
x+ - x- = -dL/dx_l (for the output layer this is t - y, i.e. BP's target alignment).

metrics.json: per rule ``pi_one_step`` (per layer, mean over seeds) and, for PC, ``pi_converged``.
Figure: ``prospective_index.png``."""

PI_DEFAULTS = {
    "backend": "numba",
    "seed": 0,
    "n_layers": 6,
    "width": 64,
    "phi": "linear",
    "n_seeds": 5,
    "relax_steps": 100,
    "dt": 0.1,
    "dt_decay": 0.5,
    "lr": 0.01,
    "converge_steps": 100,
}

PI_PARAMS = {
    "backend": P.PC_BACKEND,
    "seed": P.SEED,
    "n_layers": P.COUNT,
    "width": P.COUNT,
    "phi": P.PHI,
    "n_seeds": P.COUNT,
    **RELAX_PARAMS,
    "lr": P.LR,
    "converge_steps": P.COUNT,
}


def _bp_activity_gradients(sim, X, Y) -> dict:
    """-dL/dx_l for every predicted population of the feedforward network (L = precision/2 ||t - y||^2)."""
    be, p = sim.backend, sim.plan
    x = backprop.forward(be, X)
    names = {a.code: a.name for a in act.ACTIVATIONS.values()}
    sl = [p.units(n) for n in p.pop_names]
    t = p.target_pop
    g = np.zeros_like(x)  # dL/dx (with respect to each population's own value)
    g[:, sl[t]] = p.precision[sl[t]] * (x[:, sl[t]] - Y)
    for k in reversed(range(p.n_proj)):
        pre, post = p.proj_pre[k], p.proj_post[k]
        if p.pop_role[pre] == ROLE_INPUT or p.w_off[k] < 0:
            continue
        xs = x[:, sl[pre]]
        g[:, sl[pre]] += act.dphi(names[int(p.pop_phi[pre])], xs) * (p.proj_mult[k] * (g[:, sl[post]] @ be.weight(k)))
    return {n: -g[:, sl[i]] for i, n in enumerate(p.pop_names)}


def pi_one(cfg, seed: int) -> dict:
    """Prospective indices of every non-input layer for one network/sample."""
    width, L = int(cfg["width"]), int(cfg["n_layers"])
    if L < 1:
        raise ValueError("prospective-index: n_layers (weight layers) must be >= 1")
    relax = Relax(int(cfg["relax_steps"]), float(cfg["dt"]), float(cfg["dt_decay"]))
    net = ns.hierarchy([width] * (L + 1), phi=cfg["phi"], bias=False, init=ns.Init("xavier_normal", gain=1.0),
                       lr=float(cfg["lr"]), optimizer=ns.SGD(), name="pi-net")
    rng = np.random.default_rng([int(cfg["seed"]), seed, 2])
    X = rng.normal(size=(1, width))
    Y = rng.normal(size=(1, width))
    wseed = int(cfg["seed"]) * 100003 + seed
    layers = [n for n in ns.lower(net).pop_names if n != "input"]
    # PC: relax (target clamped), then learn with the relaxed activity held fixed
    sim = simulator(net, cfg, relax, seed=wseed)
    before = feedforward(sim, X)
    res = sim.run(X, Y, steps=relax.steps, mode="clamp", dt_decay=relax.dt_decay)
    relaxed = {n: res.x[n].copy() for n in layers}
    pc_one, pc_conv = {}, {}
    for k in range(max(1, int(cfg["converge_steps"]))):
        sim.run(X, Y, steps=0, mode="clamp", init="previous", learn=True)
        if k == 0:
            after = feedforward(sim, X)
            pc_one = {n: metrics.prospective_index(before[n], relaxed[n], after[n]) for n in layers}
    after = feedforward(sim, X)
    pc_conv = {n: metrics.prospective_index(before[n], relaxed[n], after[n]) for n in layers}
    sim.close()
    # BP: one gradient step; the "inferred" change is -dL/dx
    sim = simulator(net, cfg, relax, seed=wseed, rule="bp")
    before_bp = feedforward(sim, X)
    wanted = _bp_activity_gradients(sim, X, Y)
    learn_step(sim, "bp", X, Y, relax)
    after_bp = feedforward(sim, X)
    bp_one = {n: metrics.prospective_index(before_bp[n], before_bp[n] + wanted[n], after_bp[n]) for n in layers}
    sim.close()
    return {"layers": layers, "pc_one": pc_one, "pc_conv": pc_conv, "bp_one": bp_one, "X": X, "Y": Y}


def run_prospective_index(cfg, out, progress=True) -> dict:
    n_seeds = int(cfg["n_seeds"])
    bar = progress_bar(total=n_seeds, desc="prospective index", enabled=progress)
    runs = []
    for s in range(n_seeds):
        runs.append(pi_one(cfg, s))
        bar.update(1)
    bar.close()
    layers = runs[0]["layers"]

    def agg(key):
        a = np.array([[r[key][n] for n in layers] for r in runs])
        return a.mean(0), a.std(0)

    pc1, pc1s = agg("pc_one")
    pcc, pccs = agg("pc_conv")
    bp1, bp1s = agg("bp_one")
    res = {
        "pc": {"layers": layers, "pi_one_step": pc1.tolist(), "pi_one_step_std": pc1s.tolist(),
               "pi_converged": pcc.tolist(), "pi_converged_std": pccs.tolist()},
        "bp": {"layers": layers, "pi_one_step": bp1.tolist(), "pi_one_step_std": bp1s.tolist()},
    }
    hidden = slice(0, len(layers) - 1)
    checks = [
        check("PC's prospective index is close to 1 in every layer after one step (>= 0.9)",
              bool(np.all(pc1 >= 0.9)), pc=pc1),
        check("with the weights learned to convergence PC's PI is 1 in every layer (>= 0.999)",
              bool(np.all(pcc >= 0.999)), pc=pcc),
        check("the output-layer PI (= target alignment) is higher for PC than BP's analogue",
              pc1[-1] > bp1[-1], pc=pc1[-1], bp=bp1[-1]),
    ]
    if len(layers) > 1:
        checks.append(check("PC's hidden-layer PI exceeds BP's gradient analogue (mean over hidden layers)",
                            pc1[hidden].mean() > bp1[hidden].mean(), pc=pc1[hidden].mean(),
                            bp=bp1[hidden].mean()))
    x = np.arange(1, len(layers) + 1)
    plot.comparison({"PC, one step (w')": (x, pc1, pc1s), "PC, converged (w*)": (x, pcc, pccs),
                     "BP analogue, one step": (x, bp1, bp1s)}, "layer (1 = first hidden, last = output)",
                    "prospective index", path=out / "prospective_index.png",
                    title=f"Prospective index per layer ({cfg['n_layers']} weight layers, {cfg['phi']})")
    return {**res, "checks": checks, "figures": ["prospective_index.png"]}
