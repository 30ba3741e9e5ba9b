"""Shared pieces of the prospective-configuration experiments (Song et al. 2024, Nat. Neurosci. 27:348).

Two learning rules on the same network and the same loss:

* ``"pc"`` -- prospective configuration: input clamped, hidden values start from the feedforward pass,
  output clamped to the target, ``relax_steps`` Euler steps of size ``dt`` with Song et al.'s inference-
  rate discount (``dt *= dt_decay`` whenever the energy fails to decrease), then one local Hebbian step
  ``dW = lr * eps_post phi(x_pre)^T`` at the relaxed state (:meth:`neurosim.Simulator.learn`);
* ``"bp"`` -- backpropagation of ``precision/2 ||t - y||^2`` through the feedforward reading of the same
  circuit, with the same optimiser and learning rate (:mod:`neurosim.algorithms.backprop`).

Both run on the simulator's backend (``"numba"`` or ``"reference"``), which holds the weights.  With
``backend="brian2"`` the PC rule runs on brian2 in rate mode (relaxation, ``dt_decay`` and the Hebbian
step); backpropagation is not a neural dynamics, so the BP baseline then runs on numba (the simulator of
the ``"bp"`` rule is built on numba, see :func:`simulator`; ``metrics["backends"]`` records it).  Mini-batch
updates are averaged over the batch (``batch_reduction="mean"``), so one learning rate means the same
per-sample step at every batch size (the authors' code sums, which makes their learning rates
incomparable across batch sizes).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

import neurosim as ns
from neurosim import plot
from neurosim.algorithms import backprop
from neurosim.progress import progress_bar

RULES = ("pc", "bp")
SHORT = {"pc": "PC", "bp": "BP"}
COLOR = {"pc": plot.TAB10[0], "bp": plot.TAB10[1], "data": "0.35"}

#: Xavier gains matched to the activation, as in the authors' ``acf2gain`` (target-alignment configs)
GAIN = {"linear": 1.0, "tanh": 5.0 / 3.0, "relu": 2.0 ** 0.5, "leaky_relu": 0.9999000099990001, "sigmoid": 1.0}


@dataclass(frozen=True)
class Relax:
    """Inference settings of the PC rule: ``steps`` Euler steps of size ``dt`` (``tau_x = 1``, so ``dt`` is
    Song et al.'s x-learning rate gamma), ``dt_decay`` their discount, optional early stop at ``tol``."""

    steps: int = 64
    dt: float = 0.1
    dt_decay: float = 0.5
    tol: float | None = None


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise ValueError(f"unknown learning rule {rule!r}; use one of {list(RULES)}")
    return rule


BACKENDS = ("numba", "reference", "brian2")


def check_backend(cfg: dict) -> str:
    be = cfg["backend"]
    if be not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {be!r}")
    return be


def rule_backend(cfg: dict, rule: str = "pc") -> str:
    """The backend a rule runs on: ``cfg['backend']``, except the backprop baseline, which runs on numba when the
    backend is brian2 (the experiments study PC's dynamics on brian2; brian2's rate network can run ``bp`` too,
    as the exact FPA error sweep, but a baseline there would only cost time).  ``metrics.json`` records the
    backend of every rule under ``backends``."""
    be = check_backend(cfg)
    return "numba" if be == "brian2" and check_rule(rule) == "bp" else be


def backends_used(cfg: dict) -> dict:
    """``{rule: backend}`` as recorded in metrics.json."""
    return {r: rule_backend(cfg, r) for r in RULES}


def simulator(circuit: ns.Circuit, cfg: dict, relax: Relax, seed: int | None = None, rule: str = "pc") -> ns.Simulator:
    """A Simulator with ``dt = relax.dt`` on the backend of ``rule`` (:func:`rule_backend`); ``seed`` samples
    the initial weights (the same on every backend)."""
    return ns.Simulator(circuit, dt=relax.dt, backend=rule_backend(cfg, rule),
                        seed=int(cfg["seed"] if seed is None else seed))


def learn_step(sim: ns.Simulator, rule: str, X, Y, relax: Relax) -> None:
    """One training step of ``rule`` on the batch ``(X, Y)``; the weights in ``sim`` are updated in place.

    ``"pc"`` runs one clamped relaxation plus the Hebbian update on the simulator's backend
    (:meth:`neurosim.Simulator.step`, the public per-batch call of ``train``); ``"bp"`` one backprop step.
    """
    X = np.ascontiguousarray(np.atleast_2d(X), dtype=sim.dtype)
    Y = np.ascontiguousarray(np.atleast_2d(Y), dtype=sim.dtype)
    p = sim.plan
    if X.shape[1] != p.n_input or Y.shape != (X.shape[0], p.n_target):
        raise ValueError(f"circuit {sim.circuit.name!r}: X must be (B, {p.n_input}) and Y (B, {p.n_target}); "
                         f"got {X.shape} and {Y.shape}")
    if rule == "pc":
        if float(relax.dt) != sim.dt:
            raise ValueError(f"PC step: relax.dt={relax.dt} differs from the simulator's dt={sim.dt} (checked for "
                             "stability when the simulator was built); build it with dt=relax.dt")
        try:
            sim.step(X, Y, "pc", steps=int(relax.steps), tol=float(relax.tol or 0.0), dt_decay=float(relax.dt_decay))
        except ns.DivergenceError as e:
            raise ns.DivergenceError(
                f"PC relaxation diverged (NaN/inf) at step {e.step} in population {e.population!r} of circuit "
                f"{sim.circuit.name!r}; reduce dt (the inference rate) or the learning rate",
                step=e.step, population=e.population) from None
    elif rule == "bp":
        with np.errstate(over="ignore", invalid="ignore"):
            loss, _, gW, gb = backprop.gradients(sim.backend, X, Y)
        if not (np.isfinite(loss) and all(np.all(np.isfinite(g)) for g in gW.values())):
            raise ns.DivergenceError(
                f"backprop diverged (the loss is NaN/inf) in circuit {sim.circuit.name!r}; reduce the learning rate",
                step=0, population=p.pop_names[p.target_pop])
        backprop.apply_update(sim.backend, gW, gb, scale_sum_B=X.shape[0])
    else:
        check_rule(rule)


def feedforward(sim: ns.Simulator, X) -> dict:
    """Feedforward values ``{population: (B, n)}`` under the current weights (the simulator state is untouched)."""
    X = np.atleast_2d(np.asarray(X, dtype=float))
    x = backprop.forward(sim.backend, X)
    return {n: x[:, sim.plan.units(n)].copy() for n in sim.plan.pop_names}


def output(sim: ns.Simulator, X) -> np.ndarray:
    """Feedforward output (target population) ``(B, n_out)``."""
    p = sim.plan
    return feedforward(sim, X)[p.pop_names[p.target_pop]]


def classification_error(sim: ns.Simulator, X, Y) -> float:
    """Fraction of samples whose largest feedforward output is not the labelled class."""
    yhat = output(sim, X)
    return float(np.mean(np.argmax(yhat, axis=1) != np.argmax(Y, axis=1)))


def check(claim: str, held, **values) -> dict:
    """A direction-of-effect record: the claim (as in the paper), whether it held, and the numbers."""
    return {"claim": claim, "held": bool(held), "values": {k: _num(v) for k, v in values.items()}}


def _num(v):
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_num(x) for x in np.asarray(v, dtype=float).ravel()]
    return float(v)


def bar_panels(panels: list, path, title: str | None = None):
    """Several bar charts side by side; each panel is ``(groups, series, ylabel, subtitle)`` or
    ``(groups, series, ylabel, subtitle, xlabel)``."""
    fig = Figure(figsize=(3.2 * len(panels) + 0.4, 3.6))
    axes = fig.subplots(1, len(panels), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, (groups, series, ylabel, subtitle, *xlabel) in zip(axes, panels):
        n = len(series)
        width = 0.8 / n
        xs = np.arange(len(groups))
        for j, (label, (vals, errs, color)) in enumerate(series.items()):
            ax.bar(xs + (j - (n - 1) / 2) * width, vals, width, yerr=errs, label=label, color=color, capsize=3,
                   edgecolor="white", linewidth=0.5)
        ax.set_xticks(xs)
        ax.set_xticklabels(groups)
        ax.set_title(subtitle, fontsize=10)
        ax.set_xlabel(xlabel[0] if xlabel else "group")
        ax.axhline(0, color="0.6", lw=0.6)
        ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=3)
    axes[0].set_ylabel(panels[0][2])
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    plot.save(fig, path)
    return fig


__all__ = ["RULES", "SHORT", "COLOR", "GAIN", "Relax", "check_rule", "check_backend", "rule_backend", "backends_used",
           "simulator", "learn_step", "feedforward", "output", "classification_error", "check", "bar_panels",
           "progress_bar"]
