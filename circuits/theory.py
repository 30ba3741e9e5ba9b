r"""PC-vs-backprop theory experiments: FPA and Z-IL exactness, linear equilibria, muPC depth, saddles.

Five experiments (``neurosim run NAME``), each writing ``metrics.json`` and a figure:

* ``fpa-exactness`` -- relative error between FPA updates and backprop gradients vs the number of inference
  steps ``n`` for ``eta`` in {0.1, 0.5, 1} (strict PC beside it); exact (< 1e-12) at ``n = L - 1`` for
  ``eta = 1``;
* ``zil-exactness`` -- Z-IL vs backprop-SGD over 100 training steps, with the negative controls
  (inference rate 0.9; every layer updated at ``t = 0``);
* ``linear-equilibrium`` -- energy reached by the (converged) PC relaxation vs the closed form
  :math:`F^*` over training of a deep linear network; condition number of the activity Hessian vs width
  and depth (standard and muPC);
* ``mupc-depth`` -- residual PCNs with 8..128 hidden layers trained on digits, muPC vs the standard
  parameterisation (backprop on both beside them);
* ``saddles`` -- escaping the origin saddle of deep scalar chains: PC (perfect inference = gradient descent
  on :math:`F^*`) vs backprop, steps to halve the loss, and the Hessians at the origin.
"""
from __future__ import annotations

import logging
import math
import time

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import neurosim as ns
from neurosim import plot
from neurosim import theory as th
from neurosim.algorithms import backprop
from neurosim.algorithms.fpa import fpa_updates
from neurosim.algorithms.pc import strict_updates
from neurosim.data import load_digits
from neurosim.experiment import Experiment
from neurosim.mupc import activation_rms, inference_settings, residual_network

from . import _params as P

log = logging.getLogger("neurosim")


def _unconverged(experiment: str, steps, cap: int, tol: float, what: str) -> int:
    """How many relaxations stopped at the step cap before ``max|dx/dt| < tol``; logs a warning naming the fix
    when any did (their energies are not equilibria, so a comparison with the closed form measures the relaxation,
    not the theory)."""
    n = sum(1 for s in steps if int(s) >= int(cap))
    if n:
        log.warning("neurosim: %s: %d of %d relaxations stopped at max_relax_steps=%d before reaching tol=%g, so %s "
                    "are not equilibria there; raise max_relax_steps (or tol)", experiment, n, len(steps), cap, tol,
                    what)
    return n

TINY = 1e-17  # floor for log-scale plots of relative errors that are exactly 0


def _figure(nrows, ncols, size=(5.2, 3.9)):
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _rel(a, b):
    nb = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / nb) if nb > 0 else float(np.linalg.norm(a))


def _max_rel(dirs, grads):
    """max over projections of ||g_pc - (-grad)|| / ||grad|| (weights and biases)."""
    if dirs is None:
        return float("nan")
    gW, gb = grads
    dW, db = dirs
    errs = [_rel(dW[k], -gW[k]) for k in gW] + [_rel(db[k], -gb[k]) for k in gb]
    return max(errs)


def _n_grid(n_max):
    base = list(range(0, 11)) + [12, 15, 20, 25, 30, 40, 50, 75, 100, 150, 200, 300, 400, 600, 800]
    return sorted({n for n in base if n <= n_max} | {n_max})


# =============================================================================================== fpa
FPA_DEFAULTS = {
    "backend": "numba",          # numba | reference | brian2 (rate mode)
    "seed": 0,
    "hidden": [32, 32, 32, 32],  # hidden sizes (L = len(hidden) + 1 weight layers; 64 inputs, 10 outputs)
    "phi": "tanh",
    "pretrain_epochs": 2,        # backprop epochs on digits first (errors are measured on a trained model)
    "lr": 0.05,                  # SGD (momentum 0.9) learning rate of the pretraining
    "batch_size": 64,            # test digits in the measured batch
    "etas": [0.1, 0.5, 1.0],
    "n_max": 400,                # largest number of inference steps
    "strict": True,              # also measure strict PC (Rosenbaum) at the same eta and n
}

FPA_PARAMS = {
    "backend": P.ALGORITHM_BACKEND,
    "seed": P.SEED,
    "hidden": P.ListOf(P.Int(ge=1)),
    "phi": P.PHI,
    "pretrain_epochs": P.Int(ge=0),
    "lr": P.LR,
    "batch_size": P.COUNT,
    "etas": P.ListOf(P.Float(gt=0, le=1)),
    "n_max": P.COUNT,
    "strict": P.Bool(),
}


def run_fpa(cfg, out, progress=True) -> dict:
    """FPA updates vs backprop gradients as a function of the number of inference steps.

    A tanh MLP (64-32-32-32-32-10, ``L = 5`` weight layers) is first trained with backprop for
    ``pretrain_epochs`` on digits; on a batch of test digits the FPA update directions
    (:func:`neurosim.algorithms.fpa.fpa_updates`) are compared with the backprop gradients of the same
    network, ``max over layers ||g_FPA + grad|| / ||grad||``, for ``n`` on a grid up to ``n_max`` and every
    ``eta``.  Expected: with ``eta = 1`` the error is exactly 1 for ``n <= L - 2`` and at rounding level
    (< 1e-12) from ``n = L - 1`` on; for ``eta < 1`` it decays geometrically (``(1 - eta)^n`` times a
    polynomial).  Strict PC (predictions recomputed from the beliefs) is measured beside it: it never reaches
    backprop -- with small ``eta`` it drifts slowly toward a different fixed point (relative error 0.70 at
    ``eta = 0.1``, ``n = 400``), with ``eta >= 0.5`` it moves away and settles on a plateau far from the gradient
    (relative error ~8.5 at ``eta = 0.5`` and ~64 at ``eta = 1`` from ``n`` ~ 20 on; bounded, not diverging).
    Writes ``fpa_exactness.png``.
    """
    data = load_digits(seed=cfg["seed"])
    hidden = list(cfg["hidden"])
    net = ns.hierarchy([64, *hidden, 10], phi=cfg["phi"], lr=cfg["lr"], optimizer=ns.SGD(momentum=0.9),
                       name="fpa-mlp")
    sim = ns.Simulator(net, backend=cfg["backend"], seed=cfg["seed"])
    if cfg["pretrain_epochs"] > 0:
        sim.train(data.X_train, data.Y_train, epochs=cfg["pretrain_epochs"], batch_size=32, algorithm="bp",
                  progress=progress)
    Xb, Yb = data.X_test[:cfg["batch_size"]], data.Y_test[:cfg["batch_size"]]
    _, _, gW, gb = backprop.gradients(sim.backend, Xb, Yb)
    L = len(hidden) + 1
    grid = _n_grid(int(cfg["n_max"]))
    fpa_err, strict_err = {}, {}
    t0 = time.perf_counter()
    for eta in cfg["etas"]:
        fpa_err[str(eta)] = [_max_rel(fpa_updates(sim, Xb, Yb, eta=eta, n=n)[1], (gW, gb)) for n in grid]
        if cfg["strict"]:
            with np.errstate(all="ignore"):
                strict_err[str(eta)] = [_max_rel(strict_updates(sim, Xb, Yb, eta=eta, n=n)[1], (gW, gb))
                                        for n in grid]
    elapsed = time.perf_counter() - t0
    e1 = fpa_err.get("1.0")
    exact_n = next((n for n, e in zip(grid, e1) if e < 1e-12), None) if e1 else None

    fig, axes = _figure(1, 2 if cfg["strict"] else 1)
    ax = axes[0, 0]
    curves = {f"FPA eta={eta}": (np.array(grid[1:]), np.maximum(np.array(fpa_err[str(eta)][1:]), TINY))
              for eta in cfg["etas"]}
    plot.comparison(curves, "inference steps n", "max relative error vs BP gradient", logx=True, logy=True,
                    ax=ax, title=f"FPA, {L}-layer {cfg['phi']} MLP on digits")
    ax.axhline(1e-12, color="k", ls=":", lw=1, label="1e-12 (exact to rounding)")
    ax.axvline(L - 1, color="gray", ls="--", lw=1, label=f"n = L - 1 = {L - 1} (eta = 1 exact from here)")
    ax.legend(fontsize=8, loc="best")
    if cfg["strict"]:
        curves = {f"strict eta={eta}": (np.array(grid[1:]), np.array(strict_err[str(eta)][1:], dtype=float))
                  for eta in cfg["etas"]}
        plot.comparison(curves, "inference steps n", "max relative error vs BP gradient", logx=True, logy=True,
                        ax=axes[0, 1], title="strict PC (predictions recomputed)")
    fig.tight_layout()
    plot.save(fig, out / "fpa_exactness.png")
    i_l1 = grid.index(L - 1) if (L - 1) in grid else None
    i_l2 = grid.index(L - 2) if (L - 2) in grid else None
    return {
        "n_layers": L,
        "n_grid": grid,
        "fpa_rel_error": fpa_err,
        "strict_rel_error": strict_err,
        "fpa_eta1_first_exact_n": exact_n,
        "fpa_eta1_rel_error_at_L_minus_1": e1[i_l1] if (e1 and i_l1 is not None) else None,
        "fpa_eta1_rel_error_at_L_minus_2": e1[i_l2] if (e1 and i_l2 is not None) else None,
        "fpa_rel_error_at_n_max": {k: v[-1] for k, v in fpa_err.items()},
        "strict_rel_error_at_n_max": {k: v[-1] for k, v in strict_err.items()},
        "measure_time_s": elapsed,
        "figures": ["fpa_exactness.png"],
    }


# =============================================================================================== zil
ZIL_DEFAULTS = {
    "backend": "numba",
    "seed": 0,
    "hidden": [32, 32, 32],      # tanh MLP 64-32-32-32-10 (L = 4 weight layers)
    "phi": "tanh",
    "lr": 0.05,                  # plain SGD (no momentum): the BP update is -lr * grad
    "batch_size": 32,
    "n_train_steps": 100,        # training steps, a fresh batch each
    "gamma_control": 0.9,        # inference rate of the first negative control
}

ZIL_PARAMS = {
    "backend": P.ALGORITHM_BACKEND,
    "seed": P.SEED,
    "hidden": P.ListOf(P.Int(ge=1)),
    "phi": P.PHI,
    "lr": P.LR,
    "batch_size": P.Int(ge=1, le=1024),
    "n_train_steps": P.COUNT,
    "gamma_control": P.Float(gt=0, lt=1),
}


def run_zil(cfg, out, progress=True) -> dict:
    """Z-IL vs backprop-SGD over ``n_train_steps`` training steps, and two negative controls.

    A tanh MLP (64-32-32-32-10) is trained on digits with ``algorithm="zil"`` (plain SGD, a fresh batch each
    step) next to a backprop run from the same initial weights.  Per step: the relative error of the Z-IL
    update against ``-lr * grad`` computed at the run's own current weights, and the distance between the
    weight trajectories relative to the distance travelled.  Controls: inference rate ``gamma = 0.9``
    (violates C3) and every layer updated at ``t = 0`` (violates C2).  Expected: Z-IL at rounding level
    (update ~1e-14 -- differences of weights --, trajectory ~1e-15); the controls at 0.27 and 1.
    Writes ``zil_exactness.png``.
    """
    data = load_digits(seed=cfg["seed"])
    net = ns.hierarchy([64, *cfg["hidden"], 10], phi=cfg["phi"], lr=cfg["lr"], optimizer=ns.SGD(), name="zil-mlp")
    B = cfg["batch_size"]
    n_steps = int(cfg["n_train_steps"])
    order = np.random.default_rng(cfg["seed"]).permutation(data.n_train)
    batches = [order[(i * B) % data.n_train:(i * B) % data.n_train + B] for i in range(n_steps)]
    batches = [b if len(b) == B else order[:B] for b in batches]
    variants = {"Z-IL": {}, f"gamma={cfg['gamma_control']}": {"gamma": cfg["gamma_control"]},
                "all layers at t=0": {"update_all_at_zero": True}}
    bp_sim = ns.Simulator(net, backend=cfg["backend"], seed=cfg["seed"])
    w0 = bp_sim.weights
    bp_traj = []
    for idx in batches:
        bp_sim.train(data.X_train[idx], data.Y_train[idx], epochs=1, batch_size=B, shuffle=False, algorithm="bp",
                     progress=False)
        bp_traj.append(bp_sim.weights)
    results = {}
    for label, opts in variants.items():
        sim = ns.Simulator(net, backend=cfg["backend"], seed=cfg["seed"])
        upd_err, traj_err = [], []
        for t, idx in enumerate(batches):
            X, Y = data.X_train[idx], data.Y_train[idx]
            before = sim.weights
            _, _, gW, gb = backprop.gradients(sim.backend, X, Y)   # BP gradient at this run's own weights
            sim.train(X, Y, epochs=1, batch_size=B, shuffle=False, algorithm="zil", options=opts, progress=False)
            after = sim.weights
            errs = []
            for k, name in enumerate(sim.plan.proj_names):
                errs.append(_rel(after[name] - before[name], -cfg["lr"] * gW[k]))
                if name + ".b" in after:
                    errs.append(_rel(after[name + ".b"] - before[name + ".b"], -cfg["lr"] * gb[k]))
            upd_err.append(max(errs))
            traj_err.append(max(_rel(after[n] - w0[n], bp_traj[t][n] - w0[n]) for n in after))
        ev = sim.evaluate(data.X_test, data.Y_test)
        results[label] = {"update_rel_error": upd_err, "trajectory_rel_error": traj_err,
                          "max_update_rel_error": max(upd_err), "max_trajectory_rel_error": max(traj_err),
                          "final_trajectory_rel_error": traj_err[-1], "test_accuracy": ev["accuracy"]}
    bp_eval = bp_sim.evaluate(data.X_test, data.Y_test)

    fig, axes = _figure(1, 2)
    steps = np.arange(1, n_steps + 1)
    plot.comparison({k: (steps, np.maximum(v["update_rel_error"], TINY)) for k, v in results.items()},
                    "training step", "relative error of the update vs BP", logy=True, ax=axes[0, 0],
                    title="per-step update (from the same weights)")
    plot.comparison({k: (steps, np.maximum(v["trajectory_rel_error"], TINY)) for k, v in results.items()},
                    "training step", "||W - W_BP|| / ||W_BP - W_0||", logy=True, ax=axes[0, 1],
                    title="weight trajectory vs BP-SGD")
    fig.tight_layout()
    plot.save(fig, out / "zil_exactness.png")
    return {"variants": results, "bp_test_accuracy": bp_eval["accuracy"],
            "zil_max_update_rel_error": results["Z-IL"]["max_update_rel_error"],
            "zil_max_trajectory_rel_error": results["Z-IL"]["max_trajectory_rel_error"],
            "n_train_steps": n_steps, "figures": ["zil_exactness.png"]}


# ================================================================================ linear equilibrium
LIN_DEFAULTS = {
    "backend": "numba",
    "seed": 0,
    "hidden": [32, 32, 32],      # linear network 64-32-32-32-10 with biases
    "lr": 0.001,                 # Adam on the Hebbian updates (PC with converged inference)
    "batch_size": 64,
    "n_train_steps": 150,
    "tol": 1e-10,                # relaxation stops when max |dx/dt| < tol
    "max_relax_steps": 50000,
    "widths": [8, 16, 32, 64, 128],
    "depths": [1, 2, 4, 8, 16],  # hidden layers, for the condition-number sweep
    "n_seeds": 2,
    "mupc_width": 64,            # width of the muPC (linear) nets in the condition-number sweep
}

LIN_PARAMS = {
    "backend": P.ANY_BACKEND,
    "seed": P.SEED,
    "hidden": P.ListOf(P.Int(ge=1), doc="the relaxation needs at least one hidden layer"),
    "lr": P.LR,
    "batch_size": P.Int(ge=1, le=1024),
    "n_train_steps": P.COUNT,
    "tol": P.Float(gt=0),
    "max_relax_steps": P.COUNT,
    "widths": P.ListOf(P.Int(ge=1)),
    "depths": P.ListOf(P.Int(ge=1)),
    "n_seeds": P.COUNT,
    "mupc_width": P.COUNT,
}


def run_linear(cfg, out, progress=True) -> dict:
    """Relaxed energy of a deep linear PCN vs the closed form over training; conditioning of ``H_z``.

    A linear PCN with biases (64-32-32-32-10) is trained on digits with the standard PC schedule (Adam),
    every relaxation run to ``max |dx/dt| < tol`` with the Euler step ``0.9 / lambda_max(H_z)``.  Before each
    update the energy reached is compared with :func:`neurosim.theory.equilibrium_energy`
    (``F* = (1/2B) sum r^T S^-1 r``); the energy trace is checked for monotone descent.  The condition number
    of the activity Hessian is recorded over training and swept at initialisation over widths and depths
    (xavier init; and the linear muPC ResNet vs depth).  Writes ``linear_equilibrium.png``.
    """
    data = load_digits(seed=cfg["seed"])
    net = ns.hierarchy([64, *cfg["hidden"], 10], phi="linear", bias=True, lr=cfg["lr"], optimizer=ns.Adam(),
                       name="linear-pcn")
    sim = ns.Simulator(net, backend=cfg["backend"], seed=cfg["seed"])
    B = cfg["batch_size"]
    rng = np.random.default_rng(cfg["seed"])
    order = rng.permutation(data.n_train)
    rec = {k: [] for k in ("relaxed", "closed_form", "rel_error", "kappa", "steps", "loss", "max_increase")}
    for t in range(int(cfg["n_train_steps"])):
        j = (t * B) % (data.n_train - B)
        idx = order[j:j + B]
        X, Y = data.X_train[idx], data.Y_train[idx]
        chain = th.linear_chain(sim)
        Fs = th.equilibrium_energy(chain, X, Y)
        ev = np.linalg.eigvalsh(th.activity_hessian(chain))
        dt = 0.9 / ev[-1]          # a step below 1/lambda_max: monotone descent of the quadratic energy
        res = sim.run(X, Y, mode="clamp", steps=int(cfg["max_relax_steps"]), dt=dt, tol=cfg["tol"], learn=True)
        E = res.total_energy
        rec["relaxed"].append(float(E[-1]))
        rec["closed_form"].append(float(Fs))
        rec["rel_error"].append(abs(float(E[-1]) - Fs) / Fs)
        rec["kappa"].append(float(ev[-1] / ev[0]))
        rec["steps"].append(int(res.steps))
        rec["loss"].append(float(E[0]))
        rec["max_increase"].append(float(np.max(np.diff(E)) / E[0]) if len(E) > 1 else 0.0)

    kappa_sweep = {}
    for H in cfg["depths"]:
        row = []
        for N in cfg["widths"]:
            ks = []
            for s in range(int(cfg["n_seeds"])):
                plan = ns.lower(ns.hierarchy([64] + [N] * H + [10], phi="linear", bias=False), seed=s)
                ks.append(th.condition_number(plan))
            row.append(float(np.mean(ks)))
        kappa_sweep[str(H)] = row
    mupc_kappa = []
    for H in cfg["depths"]:
        ks = [th.condition_number(ns.lower(residual_network(64, cfg["mupc_width"], H, 10, param="mupc",
                                                           phi="linear"), seed=s)) for s in range(int(cfg["n_seeds"]))]
        mupc_kappa.append(float(np.mean(ks)))

    n_unconv = _unconverged("linear-equilibrium", rec["steps"], cfg["max_relax_steps"], cfg["tol"],
                            "their relaxed energies (and the relative errors against F*)")
    fig, axes = _figure(2, 3)
    steps = np.arange(len(rec["relaxed"]))
    # the relaxed energy drawn wide and light under the closed form (they agree to rounding: one line hid the other)
    plot.comparison({"relaxed PC energy": (steps, rec["relaxed"]), "closed form F* (on top)": (steps, rec["closed_form"]),
                     "feedforward loss": (steps, rec["loss"])}, "training step", "energy (batch mean)", logy=True,
                    ax=axes[0, 0], title="linear PCN on digits: relaxed energy vs F*",
                    styles={"relaxed PC energy": {"lw": 5.0, "alpha": 0.35},
                            "closed form F* (on top)": {"lw": 1.2, "ls": "--"}})
    rel = np.asarray(rec["rel_error"], dtype=float)
    exact = rel <= 0
    plot.comparison({"|E - F*| / F*": (steps, np.maximum(rel, TINY))}, "training step",
                    "relative error", logy=True, ax=axes[0, 1],
                    title="closed form vs numerics" + (f"\n({n_unconv} relaxations NOT converged: raise "
                                                       "max_relax_steps)" if n_unconv else ""))
    if exact.any():   # an exact 0 cannot sit on a log axis: mark where it is drawn
        axes[0, 1].plot(steps[exact], np.full(int(exact.sum()), TINY), "v", color="C3", ms=4,
                        label=f"exactly 0 ({int(exact.sum())} steps; drawn at {TINY:g})")
        axes[0, 1].legend(fontsize=8, loc="best")
    ax_k = axes[0, 2]
    ax_k.plot(steps, rec["kappa"], color="C0")
    kap = np.asarray(rec["kappa"], dtype=float)
    if kap.size and np.all(kap > 0) and kap.max() / kap.min() >= 10:   # within a decade a log axis has no labels
        ax_k.set_yscale("log")
    ax_k.set_xlabel("training step")
    ax_k.set_ylabel("condition number kappa(H_z)", color="C0")
    ax_s = ax_k.twinx()
    ax_s.plot(steps, rec["steps"], color="C1")
    ax_s.set_ylabel("relaxation steps to tol", color="C1")
    ax_k.set_title("conditioning and inference cost over training")
    ax_k.grid(True, alpha=0.3)
    plot.comparison({f"H={H}": (np.array(cfg["widths"]), kappa_sweep[str(H)]) for H in cfg["depths"]},
                    "width N", "condition number of H_z", logx=True, logy=True, ax=axes[1, 0],
                    title="kappa(H_z) at init vs width (xavier)")
    depth_curves = {f"xavier, N={N}": (np.array(cfg["depths"], float), [kappa_sweep[str(H)][j] for H in cfg["depths"]])
                    for j, N in enumerate(cfg["widths"])}
    depth_curves[f"muPC, N={cfg['mupc_width']}"] = (np.array(cfg["depths"], float), mupc_kappa)
    plot.comparison(depth_curves, "hidden layers H", "condition number of H_z", logx=True, logy=True,
                    ax=axes[1, 1], title="kappa(H_z) at init vs depth")
    axes[1, 2].remove()
    fig.tight_layout()
    plot.save(fig, out / "linear_equilibrium.png")
    return {
        "max_rel_error": max(rec["rel_error"]), "median_rel_error": float(np.median(rec["rel_error"])),
        "relaxations_not_converged": n_unconv,
        "converged": n_unconv == 0,
        "max_relative_energy_increase": max(rec["max_increase"]),
        "relaxed_energy": rec["relaxed"], "closed_form_energy": rec["closed_form"], "rel_error": rec["rel_error"],
        "kappa_training": rec["kappa"], "relax_steps": rec["steps"], "feedforward_loss": rec["loss"],
        "kappa_vs_width": {"widths": list(cfg["widths"]), "by_depth": kappa_sweep},
        "mupc_kappa_vs_depth": {"depths": list(cfg["depths"]), "width": cfg["mupc_width"], "kappa": mupc_kappa},
        "figures": ["linear_equilibrium.png"],
    }


# ======================================================================================= muPC depth
MUPC_DEFAULTS = {
    "backend": "numba",
    "seed": 0,
    "depths": [8, 16, 32, 64, 128],   # hidden layers H (L = H + 1 weight layers)
    "width": 32,                      # N (chosen so that the default run fits in ~10 minutes on 2 cores)
    "phi": "relu",
    "epochs": 3,
    "batch_size": 64,
    "lr": 0.1,                        # Adam, muPC (the paper's MNIST value)
    "activity_lr": 0.5,               # jpc's batch-mean activity step (per-sample step = activity_lr / B), T = H
    "sp_lrs": [0.1, 0.01],            # Adam learning rates tried for the standard parameterisation (best reported)
    "bp": True,                       # backprop on both parameterisations (same lrs) as reference
}

MUPC_PARAMS = {
    "backend": P.BP_BASELINE_BACKEND,
    "seed": P.SEED,
    "depths": P.ListOf(P.Int(ge=1)),
    "width": P.COUNT,
    "phi": P.PHI,
    "epochs": P.COUNT,
    "batch_size": P.COUNT,
    "lr": P.LR,
    # the populations have tau_x = precision = 1: Euler on activity_lr / batch_size is stable below 2 (a larger value
    # failed inside the simulator with "dt=15.6 is too large ... reduce dt", a parameter mupc-depth does not have)
    "activity_lr": P.Float(gt=0, requires=(lambda v, cfg: v / cfg["batch_size"] < 2.0,
                                           "activity_lr / batch_size < 2",
                                           "activity_lr / batch_size is the Euler step of the relaxation, which "
                                           "diverges at 2 or more (tau_x = precision = 1): use activity_lr < "
                                           "2 x batch_size (default 0.5)")),
    "sp_lrs": P.LRS,
    "bp": P.Bool(),
}


def _train_resnet(param, H, cfg, lr, data, algorithm, progress):
    net = residual_network(64, cfg["width"], H, 10, param=param, phi=cfg["phi"], lr=lr)
    sim = ns.Simulator(net, backend=cfg["backend"], seed=cfg["seed"])
    inf = inference_settings(H, cfg["batch_size"], cfg["phi"], cfg["activity_lr"])
    t0 = time.perf_counter()
    status = "ok"
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            h = sim.train(data.X_train, data.Y_train, epochs=cfg["epochs"], batch_size=cfg["batch_size"],
                          steps=inf["steps"], dt=inf["dt"], algorithm=algorithm, progress=progress,
                          X_test=data.X_test, Y_test=data.Y_test)
        acc = [float(a) for a in h["test_accuracy"]]
        train_loss = float(h["epoch_loss"][-1])
    except ns.DivergenceError as e:
        status = f"diverged at batch {e.batch}"
        acc = [float("nan")]
        train_loss = float("nan")
    final = acc[-1] if np.isfinite(acc[-1]) else 0.0
    return {"test_accuracy": final, "epoch_test_accuracy": acc, "train_loss": train_loss, "status": status,
            "time_s": time.perf_counter() - t0}


def _best_lr(runs: dict) -> str:
    """The learning rate whose run ended with the lowest training loss (a diverged run: never): chosen without
    the test set, whose accuracy is what the figure reports (choosing by it favoured the baseline's numbers)."""
    return min(runs, key=lambda k: runs[k]["train_loss"] if np.isfinite(runs[k]["train_loss"]) else np.inf)


def run_mupc(cfg, out, progress=True) -> dict:
    """Residual PCNs of 8..128 hidden layers on digits: muPC vs the standard parameterisation.

    For every depth ``H``: :func:`neurosim.mupc.residual_network` in muPC (W ~ N(0,1), multipliers
    1/sqrt(D), 1/sqrt(N L), 1/N) and in SP (U(+-1/sqrt(fan_in)), no multipliers), both with identity skips
    on the hidden layers, trained with standard PC (``T = H`` Euler steps of ``activity_lr / B``, Adam) for
    ``epochs`` epochs; SP gets the best of ``sp_lrs`` (the lowest final training loss: chosen without the test
    set).  Backprop on both parameterisations is the reference.
    Also the activation RMS of every layer at initialisation (unit-variance inputs).  With the defaults
    (N = 32, 3 epochs) the run takes 1-5 minutes on 2 cores (70 s on a quiet machine with compiled kernels).  Writes ``mupc_depth.png``.
    """
    data = load_digits(seed=cfg["seed"], scale="standard")
    depths = list(cfg["depths"])
    res = {"mupc": {}, "sp": {}, "mupc_bp": {}, "sp_bp": {}}
    rms = {"mupc": {}, "sp": {}}
    X0 = np.random.default_rng(cfg["seed"]).normal(size=(256, 64))
    for H in depths:
        for param in ("mupc", "sp"):
            sim = ns.Simulator(residual_network(64, cfg["width"], H, 10, param=param, phi=cfg["phi"]),
                               backend="reference", seed=cfg["seed"])
            r = activation_rms(sim, X0)
            rms[param][str(H)] = [r[n] for n in sim.plan.pop_names[1:-1]] + [r["output"]]
        res["mupc"][str(H)] = _train_resnet("mupc", H, cfg, cfg["lr"], data, "pc", progress)
        runs = {str(lr): _train_resnet("sp", H, cfg, lr, data, "pc", progress) for lr in cfg["sp_lrs"]}
        best = _best_lr(runs)
        res["sp"][str(H)] = {**runs[best], "best_lr": float(best), "by_lr": runs}
        if cfg["bp"]:
            res["mupc_bp"][str(H)] = _train_resnet("mupc", H, cfg, cfg["lr"], data, "bp", progress)
            runs = {str(lr): _train_resnet("sp", H, cfg, lr, data, "bp", progress) for lr in cfg["sp_lrs"]}
            best = _best_lr(runs)
            res["sp_bp"][str(H)] = {**runs[best], "best_lr": float(best), "by_lr": runs}

    fig, axes = _figure(1, 2)
    d = np.array(depths, dtype=float)
    curves = {"muPC, PC": (d, [res["mupc"][str(H)]["test_accuracy"] for H in depths]),
              "SP, PC (best lr by training loss)": (d, [res["sp"][str(H)]["test_accuracy"] for H in depths])}
    if cfg["bp"]:
        curves["muPC, BP"] = (d, [res["mupc_bp"][str(H)]["test_accuracy"] for H in depths])
        curves["SP, BP (best lr by training loss)"] = (d, [res["sp_bp"][str(H)]["test_accuracy"] for H in depths])
    plot.comparison(curves, "hidden layers H", "test accuracy", logx=True, ax=axes[0, 0],
                    title=f"residual {cfg['phi']} PCNs on digits, N={cfg['width']}, {cfg['epochs']} epochs")
    axes[0, 0].axhline(0.1, color="gray", ls=":", lw=1, label="chance (10 classes)")
    from matplotlib.ticker import FixedLocator, NullLocator
    axes[0, 0].xaxis.set_major_locator(FixedLocator(d))     # ticks at the depths run (they were 10, 20, 50, 100)
    axes[0, 0].xaxis.set_minor_locator(NullLocator())
    axes[0, 0].set_xticklabels([f"{H:g}" for H in d])
    axes[0, 0].legend(fontsize=8, loc="best")
    Hmax = str(depths[-1])
    curves = {f"{p} (H={Hmax})": (np.arange(1, len(rms[p][Hmax]) + 1), rms[p][Hmax]) for p in ("mupc", "sp")}
    plot.comparison(curves, "layer (last = output)", "activation RMS at init", logy=True, ax=axes[0, 1],
                    title="forward pass at initialisation (unit-variance inputs)")
    fig.tight_layout()
    plot.save(fig, out / "mupc_depth.png")

    def summary(key):
        return {str(H): res[key][str(H)]["test_accuracy"] for H in depths} if res[key] else {}

    return {
        "depths": depths, "width": cfg["width"],
        "test_accuracy": {k: summary(k) for k in res},
        "runs": res,
        "init_hidden_rms_range": {p: {H: [min(v[:-1]), max(v[:-1])] for H, v in rms[p].items()} for p in rms},
        "init_output_rms_times_sqrt_width": {p: {H: v[-1] * math.sqrt(cfg["width"]) for H, v in rms[p].items()}
                                             for p in rms},
        "chance": 0.1,
        "figures": ["mupc_depth.png"],
    }


# ========================================================================================== saddles
SADDLE_DEFAULTS = {
    "backend": "numba",
    "seed": 0,
    "depths": [3, 4],            # weight layers of the scalar chains
    "n_samples": 32,
    "slope": 2.0,                # y = slope * x
    "init_std": 1e-3,            # weights ~ N(0, init_std^2): start next to the origin saddle
    "lr": 0.05,                  # the same plain SGD learning rate for PC and BP
    "max_steps_pc": 5000,
    "max_steps_bp": 200000,
    "relax_tol": 1e-12,          # PC inference run to convergence (max |dx/dt| < tol): GD on F*
    "max_relax_steps": 100000,   # cap on the relaxation steps of one PC update
    "hessian_hidden": [1, 2, 3], # hidden layers of the width-3 linear nets whose origin Hessians are computed
}

SADDLE_PARAMS = {
    "backend": P.BP_BASELINE_BACKEND,
    "seed": P.SEED,
    "depths": P.ListOf(P.Int(ge=2), doc="a chain needs a hidden unit to have a saddle"),
    "n_samples": P.COUNT,
    "slope": P.NONZERO,
    "init_std": P.Float(gt=0),
    "lr": P.LR,
    "max_steps_pc": P.COUNT,
    "max_steps_bp": P.COUNT,
    "relax_tol": P.Float(gt=0),
    "max_relax_steps": P.COUNT,
    "hessian_hidden": P.SIZES,
}


def _fd_hessian(f, n, h=1e-4):
    """Central finite-difference Hessian of f: R^n -> R at 0."""
    Hs = np.zeros((n, n))
    E = np.eye(n) * h
    f0 = f(np.zeros(n))
    for i in range(n):
        Hs[i, i] = (f(E[i]) - 2 * f0 + f(-E[i])) / h ** 2
        for j in range(i + 1, n):
            Hs[i, j] = Hs[j, i] = (f(E[i] + E[j]) - f(E[i] - E[j]) - f(-E[i] + E[j]) + f(-E[i] - E[j])) / (4 * h * h)
    return Hs


def origin_hessians(n_hidden, width=3, n_samples=16, seed=0):
    """Hessians of the loss and of F* at theta = 0 for a width-``width`` linear net with ``n_hidden`` hidden
    layers; returns ``(hess_loss, hess_fstar, Sigma_yy)``."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, width))
    Y = X @ rng.normal(size=(width, width)) + 0.1 * rng.normal(size=(n_samples, width))
    net = ns.hierarchy([width] * (n_hidden + 2), phi="linear", bias=False, init=ns.Init("zeros"))
    plan = ns.lower(net)
    names = plan.proj_names
    shapes = [plan.weight_shape(k) for k in range(plan.n_proj)]
    sizes = [a * b for a, b in shapes]

    def weights(theta):
        out, o = {}, 0
        for nm, sh, s in zip(names, shapes, sizes):
            out[nm] = theta[o:o + s].reshape(sh)
            o += s
        return out

    n = sum(sizes)
    hl = _fd_hessian(lambda v: th.loss(th.linear_chain(plan, weights=weights(v)), X, Y), n)
    hf = _fd_hessian(lambda v: th.equilibrium_energy(th.linear_chain(plan, weights=weights(v)), X, Y), n)
    return hl, hf, Y.T @ Y / n_samples


def _steps_to_halve(losses):
    half = 0.5 * losses[0]
    return next((i for i, v in enumerate(losses) if v < half), None)


def run_saddles(cfg, out, progress=True) -> dict:
    """Escaping the origin saddle of deep scalar chains: PC with perfect inference vs backprop.

    Scalar linear chains (``depths`` weight layers) start at ``theta ~ N(0, init_std^2)`` on ``y = slope x``
    and are trained with plain SGD at the same ``lr`` by PC (relaxation to ``max|dx/dt| < relax_tol``, i.e.
    gradient descent on ``F*``) and by backprop; the number of steps until the loss is halved is reported
    (``None``: not within ``max_steps_*``).  The loss's origin saddle is flat to order ``H`` while ``F*``'s is
    strict: the Hessians of both at ``theta = 0`` are computed by central differences for width-3 linear
    nets with ``hessian_hidden`` hidden layers (expected: ``Hess L = 0`` and ``lambda_min(Hess F*) =
    -lambda_max(Syy)`` for ``H >= 2``; ``lambda_min(F*) < lambda_min(L) < 0`` for ``H = 1``).
    Writes ``saddles.png``.  About 2 minutes on 2 cores with the defaults (backprop on the deepest chain runs all
    its ``max_steps_bp`` steps); a progress bar counts the runs.
    """
    from neurosim.progress import progress_bar
    rng = np.random.default_rng(cfg["seed"])
    X = rng.normal(size=(cfg["n_samples"], 1))
    Y = cfg["slope"] * X
    chains = {}
    bar = progress_bar(total=2 * len(cfg["depths"]), desc="saddles (PC, BP per depth)", enabled=progress)
    for depth in cfg["depths"]:
        net = ns.hierarchy([1] * (depth + 1), phi="linear", bias=False, init=ns.Init("normal", std=cfg["init_std"]),
                           lr=cfg["lr"], optimizer=ns.SGD(), name=f"scalar-chain-{depth}")
        runs = {}
        # PC with (numerically) perfect inference = gradient descent on F*: relax to max|dx/dt| < tol with
        # an Euler step 0.9 / lambda_max(H_z) of the current weights (always stable), then the Hebbian update
        sim = ns.Simulator(net, backend=cfg["backend"], seed=cfg["seed"])
        loss, fstar, rsteps = [], [], []
        t0 = time.perf_counter()
        for t in range(int(cfg["max_steps_pc"])):
            chain = th.linear_chain(sim)
            fstar.append(float(th.equilibrium_energy(chain, X, Y)))
            lmax = np.linalg.eigvalsh(th.activity_hessian(chain))[-1]
            res = sim.run(X, Y, mode="clamp", steps=int(cfg["max_relax_steps"]), dt=0.9 / lmax,
                          tol=cfg["relax_tol"], learn=True)
            loss.append(float(res.total_energy[0]))
            rsteps.append(int(res.steps))
            if loss[-1] < 0.5 * loss[0]:
                break
        n_unconv = _unconverged("saddles", rsteps, cfg["max_relax_steps"], cfg["relax_tol"],
                                f"the PC updates of the {depth}-layer chain (meant as gradient descent on F*)")
        runs["pc"] = {"steps_to_halve": _steps_to_halve(loss), "loss": loss, "fstar": fstar,
                      "n_steps_run": len(loss), "max_relax_steps_used": max(rsteps),
                      "relaxations_not_converged": n_unconv, "converged": n_unconv == 0,
                      "time_s": time.perf_counter() - t0}
        bar.update(1)
        sim = ns.Simulator(net, backend=cfg["backend"], seed=cfg["seed"])
        t0 = time.perf_counter()
        h = sim.train(X, Y, epochs=int(cfg["max_steps_bp"]), batch_size=len(X), shuffle=False, algorithm="bp",
                      callback=lambda s, epoch: s.history["loss"][-1] < 0.5 * s.history["loss"][0], progress=False)
        stride = max(1, len(h["loss"]) // 1000)
        runs["bp"] = {"steps_to_halve": _steps_to_halve(h["loss"]), "loss": h["loss"][::stride],
                      "loss_stride": stride, "n_steps_run": len(h["loss"]), "time_s": time.perf_counter() - t0}
        for r in runs.values():
            r["halved"] = r["steps_to_halve"] is not None
        chains[str(depth)] = runs
        bar.update(1)
    bar.close()

    hess = {}
    for H in cfg["hessian_hidden"]:
        hl, hf, syy = origin_hessians(H, seed=cfg["seed"])
        hess[str(H)] = {"lambda_min_loss": float(np.linalg.eigvalsh(hl)[0]),
                        "lambda_min_fstar": float(np.linalg.eigvalsh(hf)[0]),
                        "minus_lambda_max_Syy": float(-np.linalg.eigvalsh(syy)[-1]),
                        "max_abs_hess_loss": float(np.abs(hl).max())}

    fig, axes = _figure(1, 2)
    curves = {}
    for depth, runs in chains.items():
        for algo in ("pc", "bp"):
            loss = np.array(runs[algo]["loss"])
            stride = runs[algo].get("loss_stride", 1)
            curves[f"{algo.upper()}, {depth} layers"] = (np.arange(len(loss)) * stride + 1, loss)
        curves[f"F* along PC, {depth} layers"] = (np.arange(len(runs["pc"]["fstar"])) + 1, runs["pc"]["fstar"])
    plot.comparison(curves, "training step", "loss / equilibrium energy", logx=True, logy=True, ax=axes[0, 0],
                    title="escaping the origin saddle (scalar chains, SGD)")
    Hs = sorted(hess, key=int)
    plot.comparison({"lambda_min(Hess F*)": (np.array(Hs, float), [hess[h]["lambda_min_fstar"] for h in Hs]),
                     "lambda_min(Hess loss)": (np.array(Hs, float), [hess[h]["lambda_min_loss"] for h in Hs]),
                     "-lambda_max(Syy)": (np.array(Hs, float), [hess[h]["minus_lambda_max_Syy"] for h in Hs])},
                    "hidden layers", "eigenvalue at theta = 0", ax=axes[0, 1], title="origin saddle curvature")
    fig.tight_layout()
    plot.save(fig, out / "saddles.png")
    return {"chains": chains,
            "steps_to_halve": {d: {a: r[a]["steps_to_halve"] for a in r} for d, r in chains.items()},
            "origin_hessians": hess, "figures": ["saddles.png"]}


EXPERIMENTS = [
    Experiment("fpa-exactness", "FPA updates vs backprop gradients as a function of the inference steps "
                                "(eta 0.1/0.5/1; exact at n = L-1 for eta = 1), strict PC beside it",
               FPA_DEFAULTS, run_fpa, run_fpa.__doc__, FPA_PARAMS),
    Experiment("zil-exactness", "Z-IL vs backprop-SGD over 100 training steps, with the negative controls "
                                "(inference rate 0.9; all layers updated at t = 0)", ZIL_DEFAULTS, run_zil,
               run_zil.__doc__, ZIL_PARAMS),
    Experiment("linear-equilibrium", "relaxed energy of a deep linear PCN vs the closed form F* over training; "
                                     "condition number of the activity Hessian vs width and depth",
               LIN_DEFAULTS, run_linear, run_linear.__doc__, LIN_PARAMS),
    Experiment("mupc-depth", "residual PCNs of 8-128 hidden layers on digits: muPC vs the standard "
                             "parameterisation (test accuracy per depth)", MUPC_DEFAULTS, run_mupc, run_mupc.__doc__,
               MUPC_PARAMS),
    Experiment("saddles", "escaping the origin saddle of deep scalar chains: PC (GD on F*) vs backprop, steps to "
                          "halve the loss; Hessians at the origin", SADDLE_DEFAULTS, run_saddles, run_saddles.__doc__,
               SADDLE_PARAMS),
]
