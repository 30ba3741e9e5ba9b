"""Shared pieces of the hardware experiments (``circuits/hardware.py``): data, network, substrate models,
training on a :class:`neurosim.Simulator` built with ``hardware=``, and small figure helpers."""
from __future__ import annotations

import neurosim as ns
from neurosim import hardware as hw
from neurosim.data import load_digits

from . import _params as P

#: parameters every hardware experiment shares
COMMON = {
    "backend": "numba",       # numba | reference (the event engine of the same name)
    "seed": 0,                # weight init, data split, shuffling, device patterns and noise
    "hidden": [32],           # hidden layer sizes (64-H-10 tanh PCN on the bundled 8x8 digits)
    "phi": "tanh",
    "lr": 0.05,               # learning rate (PC Hebbian and BP)
    "momentum": 0.9,          # SGD momentum
    "epochs": 6,
    "batch_size": 16,
    "steps": 20,              # PC relaxation steps per batch (target clamped)
    "dt": 0.1,                # Euler step (tau_x = 1)
    "test_fraction": 0.25,
    "n_train": 0,             # use only the first n training samples (0: all)
    "n_test": 0,              # use only the first n test samples (0: all)
    "figures": True,          # write PNG figures (sweeps switch this off)
}

#: type and valid range of the parameters in COMMON
COMMON_PARAMS = {
    "backend": P.HARDWARE_BACKEND,
    "seed": P.SEED,
    "hidden": P.SIZES,
    "phi": P.PHI,
    "lr": P.LR,
    "momentum": P.MOMENTUM,
    "epochs": P.COUNT,
    "batch_size": P.COUNT,
    "steps": P.COUNT,
    "dt": P.DT,
    "test_fraction": P.TEST_FRACTION,
    "n_train": P.Int(ge=0, doc="0 = all"),
    "n_test": P.Int(ge=0, doc="0 = all"),
    "figures": P.Bool(),
}


def _known_target(name):
    hw.get_target(name)


#: a hardware target: a name of neurosim.hardware.targets() or the path of a target file
TARGET = P.Str(check=_known_target, doc="a name of neurosim.hardware.targets() or a target file")
#: 0 (off: float64) or a signed quantiser width
BITS = P.Int(ge=2, le=52, also=(0,), doc="0 = off")


def load(cfg):
    """Digits split by ``seed``; optional subsets of ``n_train`` / ``n_test`` samples."""
    d = load_digits(test_fraction=cfg["test_fraction"], seed=cfg["seed"])
    Xtr, Ytr, Xte, Yte = d.X_train, d.Y_train, d.X_test, d.Y_test
    if cfg["n_train"] > 0:
        Xtr, Ytr = Xtr[:cfg["n_train"]], Ytr[:cfg["n_train"]]
    if cfg["n_test"] > 0:
        Xte, Yte = Xte[:cfg["n_test"]], Yte[:cfg["n_test"]]
    return Xtr, Ytr, Xte, Yte


def build(cfg) -> ns.Circuit:
    return ns.hierarchy([64, *cfg["hidden"], 10], phi=cfg["phi"], lr=cfg["lr"],
                        optimizer=ns.SGD(momentum=cfg["momentum"]), name="digits-pcn")


def chip(cfg, model: hw.HardwareModel) -> ns.Simulator:
    """The network on the substrate ``model`` (``sim.hardware`` holds counts, device time, ``advance``)."""
    return ns.Simulator(build(cfg), dt=cfg["dt"], backend=cfg["backend"], seed=cfg["seed"], hardware=model)


def train_eval(cfg, model, algorithm, data, *, steps=None, progress=False, drift_time=0.0) -> dict:
    """Train on the substrate and evaluate on the test set (after ``drift_time`` seconds of device time)."""
    Xtr, Ytr, Xte, Yte = data
    c = chip(cfg, model)
    c.train(Xtr, Ytr, epochs=cfg["epochs"], batch_size=cfg["batch_size"],
            steps=cfg["steps"] if steps is None else steps, algorithm=algorithm, progress=progress)
    if drift_time > 0:
        c.hardware.advance(drift_time)
    ev = c.evaluate(Xte, Yte)
    return {"test_accuracy": ev["accuracy"], "test_loss": ev["loss"], "counts": c.hardware.counts, "chip": c,
            "train_loss": c.history["epoch_loss"][-1] if c.history["epoch_loss"] else float("nan")}


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def fig_axes(figsize=(6.4, 4.4), ncols=1):
    from matplotlib.figure import Figure
    fig = Figure(figsize=figsize)
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def symlog_x(ax, xs):
    pos = [x for x in xs if x > 0]
    if pos and any(x == 0 for x in xs):
        ax.set_xscale("symlog", linthresh=min(pos))
        # thresholds are never negative: the axis starts just left of 0, room for the marker at 0 and no negative
        # ticks (symlog's autoscale spent half the axis on negative thresholds)
        ax.set_xlim(-0.2 * min(pos), max(pos) * 1.5)
    elif pos and len(pos) == len(xs) and max(pos) / min(pos) >= 50:
        ax.set_xscale("log")


def log_ticks(ax, values):
    """Logarithmic x axis labelled at exactly ``values`` (no crowded minor labels)."""
    from matplotlib.ticker import FixedLocator, NullLocator
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator([float(v) for v in values]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{v:g}" for v in values])

