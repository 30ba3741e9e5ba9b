r"""The biological fits of Song et al. (2024): rat fear conditioning, human sensorimotor learning (Heald,
Lengyel & Wolpert 2021) and human probabilistic reversal learning (Hampton, Bossaerts & O'Doherty 2006).

Each experiment simulates small linear circuits trained trial by trial with PC and with BP, searches the
learning rates (and initial weight scale) on a grid, maps the model's numbers onto the published data with
a least-squares linear fit (:func:`neurosim.metrics.linear_fit`, the authors' ``fit_data.py``) and keeps,
for each rule, the configuration with the smallest fitting error.

Data values are the group means of the points digitised by the authors (``experiments/nature_*/utils.py``
of github.com/YuhangSong/Prospective-Configuration), with standard errors over those points.
"""
from __future__ import annotations

import itertools

import numpy as np
from matplotlib.figure import Figure

import neurosim as ns
from neurosim import metrics, plot

from ._prospective_common import (COLOR, RULES, SHORT, Relax, bar_panels, check, learn_step, output,
                                  progress_bar, simulator)
from . import _params as P

#: inference settings of the PC rule shared by the experiments below
RELAX_PARAMS = {"relax_steps": P.COUNT, "dt": P.DT, "dt_decay": P.DT_DECAY, "tol": P.TOL}


def _grid_fits(model_means: dict, data: np.ndarray, offset: bool) -> dict:
    """Fit every configuration's model numbers to ``data``; return per-config fits and the best one."""
    fits = {key: metrics.linear_fit(vals, data, offset=offset) for key, vals in model_means.items()}
    best = min(fits, key=lambda key: fits[key]["sse"])
    return {"fits": fits, "best": best}


# ====================================================================================================
# fear conditioning (recovery from overshadowing)
# ====================================================================================================

FEAR_GROUPS = ("N+", "LN+", "LN+/L-")
#: freezing to the noise alone (units as digitised; mean and SEM of 5 points per group)
FEAR_DATA = {"N+": 44.36454638904899, "LN+": 25.845372174003284, "LN+/L-": 43.14358959256283}
FEAR_SEM = {"N+": 2.999504615501845, "LN+": 5.674731557146612, "LN+/L-": 4.294262381209545}

FEAR_DOC = r"""Rat fear conditioning: overshadowing and its recovery by extinguishing the overshadowing cue.

Circuit: inputs ``light`` (L) and ``noise`` (N), each to its own hidden unit (``perception_L``,
``perception_N``, initialised to 1), both hidden units to one ``fear`` output (``mix_L``, ``mix_N``,
initialised to |N(0.1, init_std)| per simulated rat).  Groups (``trials_per_phase`` trials per phase):
N+ (noise -> shock, then nothing), LN+ (compound -> shock, then nothing), LN+/L- (compound -> shock, then
light alone without shock).  Read-out: the fear predicted for the noise alone after both phases.

BP cannot distinguish LN+ from LN+/L-: during L- trials the noise input and its hidden activity are 0,
so nothing on the noise pathway changes.  PC infers a negative noise-hidden activity during L- (the
error at the output spreads back), strengthening mix_N: fear to the noise recovers, as in the rats.

The three learning rates (``perception_lrs``, ``L_lrs``, ``N_lrs``) are searched on a grid; per rule the
configuration whose seed-averaged model values best fit the data with ``data ~ k model + b`` is kept.
metrics.json: per rule the best configuration, model and fitted values per group, ``fit_error``
(sum of squared residuals), k, b.  Figure: ``fear_conditioning.png``."""

FEAR_DEFAULTS = {
    "backend": "numba",
    "seed": 0,
    "n_seeds": 8,
    "trials_per_phase": 32,
    "L": 1.0,                 # light input strength
    "N": 1.0,                 # noise input strength
    "init_std": 0.01,         # std of the mix weights around 0.1
    "perception_lrs": [1.0, 0.1, 0.01, 0.001],
    "L_lrs": [1.0, 0.1, 0.01, 0.001],
    "N_lrs": [1.0, 0.1, 0.01, 0.001],
    "relax_steps": 200,
    "dt": 0.5,
    "dt_decay": 0.5,
    "tol": 1e-8,              # stop relaxing once max |dx/dt| < tol (0: always relax_steps)
}

FEAR_PARAMS = {
    "backend": P.PC_BACKEND,
    "seed": P.SEED,
    "n_seeds": P.COUNT,
    "trials_per_phase": P.COUNT,
    "L": P.Float(),
    "N": P.Float(),
    "init_std": P.Float(ge=0),
    "perception_lrs": P.LRS,
    "L_lrs": P.LRS,
    "N_lrs": P.LRS,
    **RELAX_PARAMS,
}


def fear_circuit(perception_lr: float, L_lr: float, N_lr: float) -> ns.Circuit:
    P = ns.ValuePopulation
    pops = (P("light", 1), P("noise", 1), P("h_light", 1), P("h_noise", 1), P("fear", 1))
    errs = tuple(ns.ErrorPopulation(f"eps_{n}", n) for n in ("h_light", "h_noise", "fear"))
    one = ns.Init("constant", value=1.0)
    projs = (
        ns.Projection("perception_L", "light", "h_light", init=one, plasticity=ns.Hebbian(lr=perception_lr)),
        ns.Projection("perception_N", "noise", "h_noise", init=one, plasticity=ns.Hebbian(lr=perception_lr)),
        ns.Projection("mix_L", "h_light", "fear", init=ns.Init("zeros"), plasticity=ns.Hebbian(lr=L_lr)),
        ns.Projection("mix_N", "h_noise", "fear", init=ns.Init("zeros"), plasticity=ns.Hebbian(lr=N_lr)),
    )
    clamps = (ns.Clamp("light", "input"), ns.Clamp("noise", "input"), ns.Clamp("fear", "target"))
    return ns.Circuit(pops, errs, projs, clamps, name="fear-conditioning")


def _inputs(sim, values: dict) -> np.ndarray:
    """Input row in the plan's input order from ``{population: value}``."""
    p = sim.plan
    return np.array([[values[p.pop_names[i]] for i in p.input_pops]], dtype=float)


def fear_rat(cfg, rule: str, group: str, lrs: tuple, seed: int) -> float:
    """Fear to the noise alone after the two phases, for one simulated rat."""
    relax = Relax(int(cfg["relax_steps"]), float(cfg["dt"]), float(cfg["dt_decay"]), float(cfg["tol"]) or None)
    sim = simulator(fear_circuit(*lrs), cfg, relax, seed=seed, rule=rule)
    rng = np.random.default_rng([int(cfg["seed"]), seed, 3])
    mix = np.abs(rng.normal(0.1, float(cfg["init_std"]), size=2))
    sim.set_weights("mix_L", W=[[mix[0]]])
    sim.set_weights("mix_N", W=[[mix[1]]])
    L, N = float(cfg["L"]), float(cfg["N"])
    first = {"N+": (0.0, N), "LN+": (L, N), "LN+/L-": (L, N)}[group]
    second = {"N+": (0.0, 0.0), "LN+": (0.0, 0.0), "LN+/L-": (L, 0.0)}[group]
    n = int(cfg["trials_per_phase"])
    for (l, nz), target in ((first, 1.0), (second, 0.0)):
        X = _inputs(sim, {"light": l, "noise": nz})
        for _ in range(n):
            learn_step(sim, rule, X, [[target]], relax)
    fear = float(output(sim, _inputs(sim, {"light": 0.0, "noise": N}))[0, 0])
    sim.close()
    return fear


def run_fear_conditioning(cfg, out, progress=True) -> dict:
    grid = list(itertools.product(*(map(float, cfg[k]) for k in ("perception_lrs", "L_lrs", "N_lrs"))))
    n_seeds = int(cfg["n_seeds"])
    data = np.array([FEAR_DATA[g] for g in FEAR_GROUPS])
    bar = progress_bar(total=2 * len(grid) * len(FEAR_GROUPS) * n_seeds, desc="fear conditioning", enabled=progress)
    res, raw = {}, {}
    for rule in RULES:
        means = {}
        for lrs in grid:
            vals = np.zeros((len(FEAR_GROUPS), n_seeds))
            for gi, g in enumerate(FEAR_GROUPS):
                for s in range(n_seeds):
                    vals[gi, s] = fear_rat(cfg, rule, g, lrs, s)
                    bar.update(1)
            means[lrs] = vals.mean(1)
            raw[(rule, lrs)] = vals
        fit = _grid_fits(means, data, offset=True)
        b = fit["best"]
        f = fit["fits"][b]
        vals = raw[(rule, b)]
        res[rule] = {
            "best_config": {"perception_lr": b[0], "L_lr": b[1], "N_lr": b[2]},
            "model": dict(zip(FEAR_GROUPS, means[b].tolist())),
            "model_sem": dict(zip(FEAR_GROUPS, (vals.std(1, ddof=1) / np.sqrt(n_seeds)).tolist()))
            if n_seeds > 1 else None,
            "fitted": dict(zip(FEAR_GROUPS, f["fitted"].tolist())),
            "fit_error": f["sse"], "k": f["k"], "b": f["b"],
            "fit_error_by_config": {f"{k[0]:g},{k[1]:g},{k[2]:g}": v["sse"] for k, v in fit["fits"].items()},
            "max_abs_LN_minus_LNL_over_grid": float(max(abs(m[1] - m[2]) for m in means.values())),
        }
    bar.close()
    pc, bp = res["pc"], res["bp"]
    checks = [
        check("BP cannot tell LN+ from LN+/L- (fear to N identical in every configuration)",
              bp["max_abs_LN_minus_LNL_over_grid"] < 1e-9, bp=bp["max_abs_LN_minus_LNL_over_grid"]),
        check("PC restores fear to N after light extinction (LN+/L- > LN+)",
              pc["model"]["LN+/L-"] > pc["model"]["LN+"], LN=pc["model"]["LN+"], LNL=pc["model"]["LN+/L-"]),
        check("PC fits the rat data better than BP (smaller fitting error)", pc["fit_error"] < bp["fit_error"],
              pc=pc["fit_error"], bp=bp["fit_error"]),
    ]
    series = {"data": ([FEAR_DATA[g] for g in FEAR_GROUPS], [FEAR_SEM[g] for g in FEAR_GROUPS], COLOR["data"])}
    for r in RULES:
        series[f"{SHORT[r]} (fit error, SSE {res[r]['fit_error']:.3g})"] = (
            [res[r]["fitted"][g] for g in FEAR_GROUPS], None, COLOR[r])
    bar_panels([(list(FEAR_GROUPS), series, "fear to the noise (freezing)", "model fitted to data",
                 "group (N: noise, L: light; +: shocked, L-: light extinguished)")],
               out / "fear_conditioning.png", title="Fear conditioning: recovery from overshadowing")
    return {"pc": pc, "bp": bp, "data": FEAR_DATA, "data_sem": FEAR_SEM, "checks": checks,
            "figures": ["fear_conditioning.png"]}


# ====================================================================================================
# sensorimotor learning (Heald, Lengyel & Wolpert 2021, Fig. 5f)
# ====================================================================================================

SM_GROUPS = ("1+", "2+", "1-", "2-")
#: single-trial learning (change of adaptation over a triplet), mean and SEM of the digitised points
SM_DATA = {"1+": 0.22724559404074246, "2+": 0.1802767368780218, "1-": 0.09947236156616185,
           "2-": 0.05657627114637871}
SM_SEM = {"1+": 0.021808183505538963, "2+": 0.0211910305653905, "1-": 0.01607834060491374,
          "2-": 0.013976252628524368}

SM_DOC = r"""Human sensorimotor learning with two contextual cues (Heald, Lengyel & Wolpert 2021, protocol of
their Fig. 3 as coded by Song et al.).

Circuit: cue inputs ``cue1``, ``cue2`` -> cue-specific hidden units ``h1``, ``h2`` (the off-diagonal of the
first layer is absent) -> two outputs (force +, force -), linear, no bias, weights ~ N(0, init_std).
The first layer learns at ``lr``, the second ("memory") at ``memory_lr``.  Targets: force field +
(1, 0), - (0, 1), channel/null trials (0, 0).

Protocol: ``train_blocks`` blocks of [2 channel trials, 32 force-field trials (cue 1 with +, cue 2
with -), 2 channel trials, 14/16/18 washout trials, a triplet, 6/8/10 washout trials, the other triplet]
(triplet = channel(cue 1), exposure, channel(cue 1); washout counts drawn without replacement), then
``post_blocks`` blocks each testing the four exposures 1+, 2+, 1-, 2- (in random order) after 2/4/6
washout trials.  Single-trial learning = change of the cue-1 prediction across the triplet, signed by
the exposure's force direction.  The authors' code re-ran the preceding washout instead of the triplet in
the training blocks (the triplet loader was never selected); this implementation runs the triplets.

Under BP a cue-2 exposure cannot change the cue-1 pathway (cue-1 input and hidden activity are 0), so
2+ and 2- give (almost) no single-trial learning; PC infers a non-zero cue-1 hidden activity and learns
its output weights, as the data show.  Grid: ``init_stds`` x ``lrs`` x ``memory_lrs``; fit ``data ~ k
model`` (no offset, as the authors).  metrics.json: per rule the best configuration, model/fitted values,
``fit_error``.  Figure: ``sensorimotor.png``."""

SM_DEFAULTS = {
    "backend": "numba",
    "seed": 0,
    "n_seeds": 4,
    "train_blocks": 24,
    "post_blocks": 8,
    "init_stds": [0.01, 0.1],
    "lrs": [0.001, 0.0001, 0.00001],
    "memory_lrs": [0.1, 0.01],
    "relax_steps": 256,
    "dt": 0.1,
    "dt_decay": 0.9,
    "tol": 1e-8,
}

SM_PARAMS = {
    "backend": P.PC_BACKEND,
    "seed": P.SEED,
    "n_seeds": P.COUNT,
    "train_blocks": P.COUNT,
    "post_blocks": P.COUNT,
    "init_stds": P.ListOf(P.Float(gt=0)),
    "lrs": P.LRS,
    "memory_lrs": P.LRS,
    **RELAX_PARAMS,
}

_CUE = {"1": {"cue1": 1.0, "cue2": 0.0}, "2": {"cue1": 0.0, "cue2": 1.0}}
_FORCE = {"+": (1.0, 0.0), "-": (0.0, 1.0), "0": (0.0, 0.0)}


def sm_circuit(lr: float, memory_lr: float, init_std: float) -> ns.Circuit:
    P = ns.ValuePopulation
    pops = (P("cue1", 1), P("cue2", 1), P("h1", 1), P("h2", 1), P("force", 2))
    errs = tuple(ns.ErrorPopulation(f"eps_{n}", n) for n in ("h1", "h2", "force"))
    init = ns.Init("normal", std=init_std)
    projs = (
        ns.Projection("W1_cue1", "cue1", "h1", init=init, plasticity=ns.Hebbian(lr=lr)),
        ns.Projection("W1_cue2", "cue2", "h2", init=init, plasticity=ns.Hebbian(lr=lr)),
        ns.Projection("W2_h1", "h1", "force", init=init, plasticity=ns.Hebbian(lr=memory_lr)),
        ns.Projection("W2_h2", "h2", "force", init=init, plasticity=ns.Hebbian(lr=memory_lr)),
    )
    clamps = (ns.Clamp("cue1", "input"), ns.Clamp("cue2", "input"), ns.Clamp("force", "target"))
    return ns.Circuit(pops, errs, projs, clamps, name="sensorimotor")


def sm_protocol(train_blocks: int, post_blocks: int, rng: np.random.Generator) -> list:
    """The trial sequence: a list of ``(trial, measure)``; ``trial`` like ``"10"`` (cue 1, no force) or
    ``"2-"``; ``measure`` is ``(group, 0 or 2)`` for the first/last trial of a post-training triplet."""
    trials = []

    def shuffled(items):
        items = list(items)
        rng.shuffle(items)
        return items

    class Washout:
        def __init__(self, options):
            self.options, self.left = list(options), list(options)

        def draw(self):
            n = int(rng.choice(self.left))
            self.left.remove(n)
            if not self.left:
                self.left = list(self.options)
            return shuffled(["10"] * (n // 2) + ["20"] * (n // 2))

    long_wash, short_wash, post_wash = Washout([14, 16, 18]), Washout([6, 8, 10]), Washout([2, 4, 6])
    for _ in range(train_blocks):
        trials += [(t, None) for t in shuffled(["10", "20"])]
        for _ in range(4):
            trials += [(t, None) for t in shuffled(["1+"] * 4 + ["2-"] * 4)]
        trials += [(t, None) for t in shuffled(["10", "20"])]
        trials += [(t, None) for t in long_wash.draw()]
        first = str(rng.choice(["1+", "2-"]))
        trials += [("10", None), (first, None), ("10", None)]
        trials += [(t, None) for t in short_wash.draw()]
        other = "2-" if first == "1+" else "1+"
        trials += [("10", None), (other, None), ("10", None)]
    for _ in range(post_blocks):
        for g in shuffled(SM_GROUPS):
            trials += [(t, None) for t in post_wash.draw()]
            trials += [("10", (g, 0)), (g, None), ("10", (g, 2))]
    return trials


def sm_subject(cfg, rule: str, lr: float, memory_lr: float, init_std: float, seed: int) -> np.ndarray:
    """Mean single-trial learning per group (order ``SM_GROUPS``) for one simulated participant."""
    relax = Relax(int(cfg["relax_steps"]), float(cfg["dt"]), float(cfg["dt_decay"]), float(cfg["tol"]) or None)
    sim = simulator(sm_circuit(lr, memory_lr, init_std), cfg, relax, seed=int(cfg["seed"]) * 100003 + seed,
                    rule=rule)
    rng = np.random.default_rng([int(cfg["seed"]), seed, 5])
    rows = {c: _inputs(sim, _CUE[c]) for c in _CUE}
    first = {}
    adapt = {g: [] for g in SM_GROUPS}
    for trial, measure in sm_protocol(int(cfg["train_blocks"]), int(cfg["post_blocks"]), rng):
        X = rows[trial[0]]
        if measure is not None:
            g, pos = measure
            y = output(sim, X)[0]
            if pos == 0:
                first[g] = y
            else:
                d = y - first[g]
                adapt[g].append(d[0] - d[1] if g[1] == "+" else d[1] - d[0])
        learn_step(sim, rule, X, [_FORCE[trial[1]]], relax)
    sim.close()
    return np.array([np.mean(adapt[g]) for g in SM_GROUPS])


def run_sensorimotor(cfg, out, progress=True) -> dict:
    grid = list(itertools.product(*(map(float, cfg[k]) for k in ("init_stds", "lrs", "memory_lrs"))))
    n_seeds = int(cfg["n_seeds"])
    if int(cfg["post_blocks"]) < 1:
        raise ValueError("sensorimotor: post_blocks must be >= 1 (the single-trial learning is measured there)")
    data = np.array([SM_DATA[g] for g in SM_GROUPS])
    bar = progress_bar(total=2 * len(grid) * n_seeds, desc="sensorimotor", enabled=progress)
    res = {}
    for rule in RULES:
        means, per_seed = {}, {}
        for init_std, lr, mlr in grid:
            vals = np.array([sm_subject(cfg, rule, lr, mlr, init_std, s) for s in range(n_seeds)])
            bar.update(n_seeds)
            means[(init_std, lr, mlr)] = vals.mean(0)
            per_seed[(init_std, lr, mlr)] = vals
        fit = _grid_fits(means, data, offset=False)
        b = fit["best"]
        f = fit["fits"][b]
        res[rule] = {
            "best_config": {"init_std": b[0], "lr": b[1], "memory_lr": b[2]},
            "model": dict(zip(SM_GROUPS, means[b].tolist())),
            "fitted": dict(zip(SM_GROUPS, f["fitted"].tolist())),
            "fit_error": f["sse"], "k": f["k"],
            "fit_error_by_config": {f"{k[0]:g},{k[1]:g},{k[2]:g}": v["sse"] for k, v in fit["fits"].items()},
            "cue2_over_cue1_learning": float((abs(means[b][1]) + abs(means[b][3]))
                                             / max(abs(means[b][0]) + abs(means[b][2]), 1e-300)),
        }
    bar.close()
    pc, bp = res["pc"], res["bp"]
    checks = [
        check("PC fits the single-trial learning data better than BP (smaller fitting error)",
              pc["fit_error"] < bp["fit_error"], pc=pc["fit_error"], bp=bp["fit_error"]),
        check("cue-2 exposures change the cue-1 prediction much more under PC than under BP",
              pc["cue2_over_cue1_learning"] > 5 * bp["cue2_over_cue1_learning"],
              pc=pc["cue2_over_cue1_learning"], bp=bp["cue2_over_cue1_learning"]),
    ]
    series = {"data": ([SM_DATA[g] for g in SM_GROUPS], [SM_SEM[g] for g in SM_GROUPS], COLOR["data"])}
    for r in RULES:
        series[f"{SHORT[r]} (fit error, SSE {res[r]['fit_error']:.2g})"] = (
            [res[r]["fitted"][g] for g in SM_GROUPS], None, COLOR[r])
    bar_panels([(list(SM_GROUPS), series, "single-trial learning", "model fitted to data",
                 "exposure trial (cue 1 or 2, force field + or -)")],
               out / "sensorimotor.png", title="Sensorimotor learning (Heald et al. 2021): model fitted to data")
    return {"pc": pc, "bp": bp, "data": SM_DATA, "data_sem": SM_SEM, "checks": checks,
            "figures": ["sensorimotor.png"]}


# ====================================================================================================
# probabilistic reversal learning (Fig. 6c)
# ====================================================================================================

REV_KEYS = (("at_punish", "stay"), ("next_trial", "stay"), ("at_punish", "switch"), ("next_trial", "switch"))
#: vmPFC signal (expected value of the chosen stimulus) around punished trials
REV_DATA = {("at_punish", "stay"): 0.07656332326255083, ("next_trial", "stay"): -0.1794935997796775,
            ("at_punish", "switch"): -0.05977541312190382, ("next_trial", "switch"): 0.030083598201063405}

REV_DOC = r"""Probabilistic reversal learning and the expected value in vmPFC (Hampton, Bossaerts & O'Doherty
2006, as modelled by Song et al., Fig. 6c).

Circuit: task input (1) -> one latent unit -> values of the two stimuli, linear, no bias, weights ~
N(0, init_std).  Each trial: the values (feedforward) give a softmax policy, an action is drawn, the
chosen stimulus is rewarded +1 / punished -1 (correct stimulus: +1 with p ``p_reward_correct``;
incorrect: +1 with p ``p_reward_incorrect``), and only the chosen value unit is clamped to the outcome.
The unchosen value unit is free: it is a leaf of the circuit, so at equilibrium it sits at its
prediction with zero error and contributes nothing -- it is therefore left out of the relaxation (exact
at equilibrium), and learning runs on the circuit task -> latent -> chosen value.  After
``reverse_after`` consecutive correct choices the contingencies reverse with p ``p_reverse`` per trial.

Measured (trials after ``analyse_after``): the chosen value at a punished trial and at the next trial,
split by whether the next choice switched or stayed, pooled over all participants' events (the authors'
``reduce_mean``).  The data show a crossover (stay: value falls; switch: value rises); the paper shows it
under PC and not under BP.  Fit: data ~ k model + b; error = sum 1/2 residual^2 (the authors' convention).

The set-up is the authors' (``experiments/nature_reversal_task/base-plot-{pc,bp}.yaml`` and ``utils.py``
of github.com/YuhangSong/Prospective-Configuration): 1-1-2 linear net, PC init_std 0.05 and BP 0.1, both
lr 0.1 (their best of a 3 x 3 grid), T = 256 inference steps of rate 0.1 with discount 0.9, 128 trials
analysed after trial 64, reward 0.7 / 0.4, reversal after 4 correct choices with p 0.25.  They simulated
22 (PC) and 40 (BP) participants; their BP switch value changed by -0.0017 (0.0115 -> 0.0098, raw
units), inside the spread of 40-participant groups.  Here ``n_seeds`` participants give the pooled
numbers, and the same participants split into disjoint groups of ``replicate_seeds_pc`` /
``replicate_seeds_bp`` (the authors' group sizes) give ``replicates``: how often a group of the
authors' size shows the value rising on switching (``switch_rises``) and the full crossover
(``crossover``).  ``fit_error`` is half the sum of squared residuals of the linear fit (fear-conditioning's and
sensorimotor's are the whole sum); ``model_sem``, ``switch_change_sem`` and ``stay_change_sem`` are the standard
errors of these pooled means with participants as clusters (a participant's events share its weights, so they are
not independent); the ``*_sem_pooled_trials`` keys treat every trial event as independent, which understates the
spread between participants (see also ``replicates``).
Figure: ``reversal_learning.png``."""

REV_DEFAULTS = {
    "backend": "numba",
    "seed": 0,
    "n_seeds": 880,           # simulated participants per configuration (40 x 22 = 22 x 40: whole replicate groups)
    "replicate_seeds_pc": 22,  # the authors' number of simulated participants per rule (base-plot-pc.yaml)
    "replicate_seeds_bp": 40,  # (base-plot-bp.yaml)
    "trials": 128,
    "analyse_after": 64,
    "lrs_pc": [0.1],          # grid searched per rule; defaults are the authors' best fits
    "init_stds_pc": [0.05],
    "lrs_bp": [0.1],
    "init_stds_bp": [0.1],
    "p_reward_correct": 0.7,
    "p_reward_incorrect": 0.4,
    "reverse_after": 4,
    "p_reverse": 0.25,
    "relax_steps": 256,
    "dt": 0.1,
    "dt_decay": 0.9,
    "tol": 1e-8,
}

REV_PARAMS = {
    "backend": P.PC_BACKEND,
    "seed": P.SEED,
    "n_seeds": P.COUNT,
    "replicate_seeds_pc": P.COUNT,
    "replicate_seeds_bp": P.COUNT,
    "trials": P.COUNT,
    "analyse_after": P.Int(ge=0, lt="trials"),
    "lrs_pc": P.LRS,
    "init_stds_pc": P.ListOf(P.Float(ge=0)),
    "lrs_bp": P.LRS,
    "init_stds_bp": P.ListOf(P.Float(ge=0)),
    "p_reward_correct": P.PROBABILITY,
    "p_reward_incorrect": P.PROBABILITY,
    "reverse_after": P.COUNT,
    "p_reverse": P.PROBABILITY,
    **RELAX_PARAMS,
}


def rev_circuit(lr: float) -> ns.Circuit:
    return ns.hierarchy([1, 1, 1], phi="linear", bias=False, lr=lr, optimizer=ns.SGD(), init=ns.Init("zeros"),
                        names=["task", "latent", "chosen_value"], name="reversal-chosen")


def rev_subject(cfg, rule: str, lr: float, init_std: float, seed: int) -> list:
    """Events ``(key, value)`` for one simulated participant (``key`` in ``REV_KEYS``)."""
    relax = Relax(int(cfg["relax_steps"]), float(cfg["dt"]), float(cfg["dt_decay"]), float(cfg["tol"]) or None)
    sim = simulator(rev_circuit(lr), cfg, relax, rule=rule)
    rng = np.random.default_rng([int(cfg["seed"]), seed, 7])
    W1 = rng.normal(0.0, init_std)
    W2 = rng.normal(0.0, init_std, size=2)
    X = np.ones((1, 1))
    correct, successes, switching = 0, [], False
    last_punished, last_action, value_at_punish = False, None, 0.0
    events = []
    for trial in range(int(cfg["trials"])):
        values = W2 * W1
        z = values - values.max()
        policy = np.exp(z) / np.exp(z).sum()
        action = int(rng.random() >= policy[0])
        if last_punished and last_action is not None and trial >= int(cfg["analyse_after"]):
            kind = "switch" if action != last_action else "stay"
            events.append((("at_punish", kind), value_at_punish))
            events.append((("next_trial", kind), float(values[action])))
        p_win = float(cfg["p_reward_correct"] if action == correct else cfg["p_reward_incorrect"])
        reward = 1.0 if rng.random() < p_win else -1.0
        successes.append(int(action == correct))
        sim.set_weights("W1", W=[[W1]])
        sim.set_weights("W2", W=[[W2[action]]])
        learn_step(sim, rule, X, [[reward]], relax)
        w = sim.weights
        W1 = float(w["W1"][0, 0])
        W2[action] = float(w["W2"][0, 0])
        k = int(cfg["reverse_after"])
        if len(successes) >= k and sum(successes[-k:]) == k:
            switching = True
        if switching and rng.random() < float(cfg["p_reverse"]):
            correct, switching = 1 - correct, False
        last_punished = reward < 0
        if last_punished:
            value_at_punish = float(values[action])
        last_action = action
    sim.close()
    return events


def _cluster_sem(groups) -> float:
    """The standard error of the pooled mean of ``groups`` (one array of values per participant, possibly empty)
    with participants as clusters: ``sqrt(N / (N - 1) * sum_i (S_i - m n_i)^2) / sum_i n_i`` (S_i, n_i: participant
    i's sum and count, m the pooled mean, N participants).  Events of one participant are not independent (they
    share its weights), so the spread between participants, not between trials, sets the error of the mean.  NaN
    (null in metrics.json) when fewer than two participants have events."""
    n = np.array([len(g) for g in groups], dtype=float)
    S = np.array([float(np.sum(g)) for g in groups])
    N, total = len(groups), n.sum()
    if np.count_nonzero(n) < 2:   # one participant's events say nothing of the spread between participants
        return float("nan")
    m = S.sum() / total
    return float(np.sqrt(N / (N - 1) * np.sum((S - m * n) ** 2)) / total)


def _rev_summary(per_seed) -> tuple:
    """Pooled means, their SEMs with participants as clusters (:func:`_cluster_sem`), the same over pooled trial
    events (``sem_pooled``, as if trials were independent), event counts and the paired changes."""
    events = [e for ev in per_seed for e in ev]
    counts = {k: sum(1 for key, _ in events if key == k) for k in REV_KEYS}
    if min(counts.values()) < 2:
        raise ValueError(f"reversal-learning: fewer than 2 {min(counts, key=counts.get)} events; "
                         "increase n_seeds or trials")
    vals = {k: np.array([v for key, v in events if key == k]) for k in REV_KEYS}
    model = np.array([vals[k].mean() for k in REV_KEYS])
    sem_pooled = np.array([vals[k].std(ddof=1) / np.sqrt(len(vals[k])) for k in REV_KEYS])
    by_seed = {k: [np.array([v for key, v in ev if key == k]) for ev in per_seed] for k in REV_KEYS}
    sem = np.array([_cluster_sem(by_seed[k]) for k in REV_KEYS])
    # paired changes from the punished trial to the next one (the events come in pairs, at_punish then next_trial)
    change = {kind: vals[("next_trial", kind)] - vals[("at_punish", kind)] for kind in ("stay", "switch")}
    change_by_seed = {kind: [by_seed[("next_trial", kind)][i] - by_seed[("at_punish", kind)][i]
                             for i in range(len(per_seed))] for kind in ("stay", "switch")}
    change_sem = {kind: _cluster_sem(change_by_seed[kind]) for kind in ("stay", "switch")}
    return model, sem, sem_pooled, counts, change, change_sem


def _rev_replicates(per_seed: list, size: int) -> dict:
    """Split participants (``per_seed``: one event list each) into disjoint consecutive groups of ``size`` and
    report, per group, the pooled switch and stay changes (next trial minus punished trial) as
    :func:`_rev_summary` computes them; groups without a switch or a stay event are skipped."""
    changes = []
    for i in range(0, len(per_seed) - size + 1, size):
        ev = [e for s in per_seed[i:i + size] for e in s]
        d = {kind: [v for (at, k), v in ev if k == kind and at == "next_trial"] for kind in ("stay", "switch")}
        p = {kind: [v for (at, k), v in ev if k == kind and at == "at_punish"] for kind in ("stay", "switch")}
        if min(len(d["stay"]), len(d["switch"])) == 0:
            continue
        changes.append((np.mean(d["switch"]) - np.mean(p["switch"]), np.mean(d["stay"]) - np.mean(p["stay"])))
    ch = np.array(changes).reshape(-1, 2)
    n = len(ch)
    return {"group_size": size, "groups": n,
            "switch_rises": float(np.mean(ch[:, 0] > 0)) if n else None,
            "crossover": float(np.mean((ch[:, 0] > 0) & (ch[:, 1] < 0))) if n else None,
            "switch_change_min": float(ch[:, 0].min()) if n else None,
            "switch_change_max": float(ch[:, 0].max()) if n else None}


def run_reversal_learning(cfg, out, progress=True) -> dict:
    n_seeds = int(cfg["n_seeds"])
    data = np.array([REV_DATA[k] for k in REV_KEYS])
    grids = {r: list(itertools.product(map(float, cfg[f"lrs_{r}"]), map(float, cfg[f"init_stds_{r}"])))
             for r in RULES}
    bar = progress_bar(total=sum(len(g) for g in grids.values()) * n_seeds, desc="reversal learning",
                       enabled=progress)
    name = {k: f"{k[0]}/{k[1]}" for k in REV_KEYS}
    res = {}
    for rule in RULES:
        best = None
        errors = {}
        for lr, std in grids[rule]:
            per_seed = []
            for s in range(n_seeds):
                per_seed.append(rev_subject(cfg, rule, lr, std, s))
                bar.update(1)
            model, sem, sem_pooled, counts, change, change_sem = _rev_summary(per_seed)
            f = metrics.linear_fit(model, data, offset=True)
            errors[f"{lr:g},{std:g}"] = 0.5 * f["sse"]
            if best is None or 0.5 * f["sse"] < best[0]:
                best = (0.5 * f["sse"], lr, std, model, sem, sem_pooled, counts, change, change_sem, f,
                        _rev_replicates(per_seed, int(cfg[f"replicate_seeds_{rule}"])))
        err, lr, std, model, sem, sem_pooled, counts, change, change_sem, f, replicates = best
        res[rule] = {
            "best_config": {"lr": lr, "init_std": std},
            "model": {name[k]: float(v) for k, v in zip(REV_KEYS, model)},
            "model_sem": {name[k]: float(v) for k, v in zip(REV_KEYS, sem)},
            "model_sem_pooled_trials": {name[k]: float(v) for k, v in zip(REV_KEYS, sem_pooled)},
            "events": {name[k]: counts[k] for k in REV_KEYS},
            "fitted": {name[k]: float(v) for k, v in zip(REV_KEYS, f["fitted"])},
            "fit_error": err, "k": f["k"], "b": f["b"],
            "fit_error_by_config": errors,
            "stay_change": float(change["stay"].mean()),
            "stay_change_sem": change_sem["stay"],
            "stay_change_sem_pooled_trials": float(change["stay"].std(ddof=1) / np.sqrt(len(change["stay"]))),
            "switch_change": float(change["switch"].mean()),
            "switch_change_sem": change_sem["switch"],
            "switch_change_sem_pooled_trials": float(change["switch"].std(ddof=1) / np.sqrt(len(change["switch"]))),
            "replicates": replicates,
        }
    bar.close()
    pc, bp = res["pc"], res["bp"]
    checks = [
        check("PC shows the crossover: after punishment the value rises when switching and falls when staying",
              pc["switch_change"] > 0 > pc["stay_change"], switch=pc["switch_change"], stay=pc["stay_change"],
              switch_sem=pc["switch_change_sem"],
              **({"crossover_in_groups_of_authors_size": pc["replicates"]["crossover"]}
                 if pc["replicates"]["groups"] else {})),
        check("BP shows no crossover: the value does not rise on switching",
              bp["switch_change"] <= 0, switch=bp["switch_change"], stay=bp["stay_change"],
              switch_sem=bp["switch_change_sem"],
              **({"rises_in_groups_of_authors_size": bp["replicates"]["switch_rises"]}
                 if bp["replicates"]["groups"] else {})),
        check("PC fits the vmPFC data better than BP (smaller fitting error)", pc["fit_error"] < bp["fit_error"],
              pc=pc["fit_error"], bp=bp["fit_error"]),
    ]
    _rev_figure(res, out)
    return {"pc": pc, "bp": bp, "data": {f"{k[0]}/{k[1]}": v for k, v in REV_DATA.items()}, "checks": checks,
            "figures": ["reversal_learning.png"]}


def _rev_figure(res, out):
    fig = Figure(figsize=(10, 3.5))
    axes = fig.subplots(1, 3, sharey=True)
    x = [0, 1]
    panels = [("data", {k: REV_DATA[k] for k in REV_KEYS})] + [
        (f"{SHORT[r]} fitted (error, SSE/2 {res[r]['fit_error']:.2g})",
         {k: res[r]["fitted"][f"{k[0]}/{k[1]}"] for k in REV_KEYS}) for r in RULES]
    for ax, (title, vals) in zip(axes, panels):
        for kind, ls in (("stay", "-o"), ("switch", "--s")):
            ax.plot(x, [vals[("at_punish", kind)], vals[("next_trial", kind)]], ls, label=kind,
                    color=plot.TAB10[4] if kind == "switch" else plot.TAB10[2])
        ax.set_xticks(x)
        ax.set_xticklabels(["punished trial", "next trial"])
        ax.set_xlim(-0.3, 1.3)
        ax.set_xlabel("trial")
        ax.set_title(title, fontsize=10)
        ax.axhline(0, color="0.7", lw=0.6)
    axes[0].set_ylabel("expected value of the chosen stimulus")
    axes[0].legend(frameon=False, fontsize=8)
    fig.suptitle("Reversal learning: value around punishment, by the next choice", fontsize=11)
    fig.tight_layout()
    plot.save(fig, out / "reversal_learning.png")
