"""Train a predictive-coding network on scikit-learn's bundled 8x8 digits.

The standard prospective-configuration schedule: per mini-batch, the input is clamped, hidden values
start from the feedforward pass, the output is clamped to the one-hot label, the network relaxes
``steps`` Euler steps of size ``dt``, and every projection takes one local Hebbian step
``dW = lr * eps_post phi(x_pre)^T``.  Test accuracy uses the feedforward prediction (the free
equilibrium of a layered PCN).

Figures: ``learning_curves.png`` (loss, energy, accuracy), ``relaxation_energy.png`` (energy of each
layer while a test batch relaxes with its labels clamped), ``dynamics.png`` (value and error neuron
traces of one test digit), ``weights.png``.

Timing: ``compile_s`` is the time of a warm-up (one batch, one step, one evaluation) on a throwaway
simulator, which compiles the numba kernels or loads them from the cache; ``training_time_s`` and
``train_samples_per_s`` then time the training proper, from its first (warm) batch.
"""
from __future__ import annotations

import time

import numpy as np

import neurosim as ns
from neurosim import plot
from neurosim.data import load_digits
from neurosim.hardware.spec import format_hardware, parse_hardware

from . import _params as P

NAME = "digits"
DESCRIPTION = "train a 64-128-10 tanh PCN on the bundled 8x8 digits; test accuracy, energies, learning curves"

DEFAULTS = {
    "backend": "numba",      # numba | reference
    "seed": 0,               # weight init, split and shuffling
    "hidden": [128],         # hidden layer sizes
    "phi": "tanh",           # hidden activation
    "algorithm": "pc",       # pc | bp | any name in neurosim.algorithms.names()
    "lr": 0.05,              # Hebbian learning rate
    "optimizer": "sgd",      # sgd | adam
    "momentum": 0.9,         # SGD momentum
    "epochs": 20,
    "batch_size": 16,
    "steps": 20,             # relaxation steps per batch (target clamped)
    "dt": 0.1,               # integration step (tau_x = 1)
    "integrator": "euler",   # euler | heun
    "test_fraction": 0.25,
    "dtype": "float64",      # float64 | float32
    "relax_steps_plot": 100, # steps of the clamped relaxation shown in the figures
    "hardware": "none",      # a modelled substrate, e.g. "weights:Quantize(6, bound=2.0)" (neurosim.hardware.spec)
}

#: type and valid range of every parameter (checked before the run; shown by `neurosim show digits`)
PARAMS = {
    "backend": P.ANY_BACKEND,
    "seed": P.SEED,
    "hidden": P.SIZES,
    "phi": P.PHI,
    "algorithm": P.ALGORITHM,
    "lr": P.LR,
    "optimizer": P.OPTIMIZER,
    "momentum": P.MOMENTUM,
    "epochs": P.COUNT,
    "batch_size": P.COUNT,
    "steps": P.COUNT,
    "dt": P.DT,
    "integrator": P.Choice("euler", "heun"),
    "test_fraction": P.TEST_FRACTION,
    "dtype": P.Choice("float64", "float32"),
    "relax_steps_plot": P.COUNT,
    "hardware": P.HARDWARE,
}


def build(cfg) -> ns.Circuit:
    opt = ns.Adam() if cfg["optimizer"] == "adam" else ns.SGD(momentum=cfg["momentum"])
    return ns.hierarchy([64, *cfg["hidden"], 10], phi=cfg["phi"], lr=cfg["lr"], optimizer=opt, name="digits-pcn")


def warm_up(net, cfg, data) -> float:
    """Seconds to compile (or load from the cache) every kernel that training and evaluation use: the
    same ``train`` call on a throwaway simulator, for one batch of one step (the trained simulator and
    every number it produces are untouched)."""
    t0 = time.perf_counter()
    with ns.Simulator(net, dt=cfg["dt"], backend=cfg["backend"], seed=cfg["seed"], dtype=cfg["dtype"],
                      integrator=cfg["integrator"], hardware=parse_hardware(cfg["hardware"])) as warm:
        n = min(cfg["batch_size"], data.n_train)
        warm.train(data.X_train[:n], data.Y_train[:n], epochs=1, batch_size=cfg["batch_size"], steps=1,
                   X_test=data.X_test[:n], Y_test=data.Y_test[:n], progress=False, algorithm=cfg["algorithm"])
    return time.perf_counter() - t0


def run(cfg, out, progress=True) -> dict:
    if cfg["optimizer"] not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {cfg['optimizer']!r}")
    data = load_digits(test_fraction=cfg["test_fraction"], seed=cfg["seed"])
    net = build(cfg)
    compile_s = warm_up(net, cfg, data)
    hardware = parse_hardware(cfg["hardware"])
    sim = ns.Simulator(net, dt=cfg["dt"], backend=cfg["backend"], seed=cfg["seed"], dtype=cfg["dtype"],
                       integrator=cfg["integrator"], hardware=hardware)
    hist = sim.train(data.X_train, data.Y_train, epochs=cfg["epochs"], batch_size=cfg["batch_size"],
                     steps=cfg["steps"], X_test=data.X_test, Y_test=data.Y_test, progress=progress,
                     algorithm=cfg["algorithm"])
    train_eval = sim.evaluate(data.X_train, data.Y_train)
    test_eval = sim.evaluate(data.X_test, data.Y_test)

    # look at the trained network (the weights a read sees) relaxing on one test batch with its labels clamped
    hidden = [p.name for p in net.populations if p.name not in ("input", "output")]
    probes = [ns.Probe(n, v) for n in (*hidden, "output") for v in ("x", "eps")]
    viewer = ns.Simulator(net, dt=cfg["dt"], backend=cfg["backend"], seed=cfg["seed"], dtype=cfg["dtype"],
                          probes=probes)
    viewer.load_weights(sim.weights if hardware is None else {**sim.weights, **sim.read_weights()})
    xb, yb = data.X_test[:32], data.Y_test[:32]
    res = viewer.run(xb, yb, steps=cfg["relax_steps_plot"], mode="clamp")
    names = [n for n in res.populations if n != "input"]
    cols = [res.populations.index(n) for n in names]
    plot.energy(res.energy[:, cols], dt=res.dt, labels=names, path=out / "relaxation_energy.png",
                title="Energy while a test batch relaxes (labels clamped)")
    plot.dynamics({n: viewer.data[f"{n}.x"] for n in (*hidden, "output")},
                  {n: viewer.data[f"{n}.eps"] for n in (*hidden, "output")}, dt=res.dt, path=out / "dynamics.png",
                  title=f"Test digit {int(np.argmax(yb[0]))}: value and error neurons, label clamped")
    plot.learning_curves(hist, path=out / "learning_curves.png", title="PC on digits")
    plot.weights(sim.weights, path=out / "weights.png", image_shape=(8, 8))
    epoch_time = float(np.sum(hist["epoch_time"]))
    extra = {}
    if hardware is not None:   # what the substrate did: operation counts of the whole training
        c = sim.hardware.counts
        extra = {"hardware": format_hardware(hardware),
                 "hardware_counts": {f: float(getattr(c, f)) for f in c.__dataclass_fields__}}
    return {
        "algorithm": cfg["algorithm"],
        "test_accuracy": test_eval["accuracy"],
        "train_accuracy": train_eval["accuracy"],
        "test_loss": test_eval["loss"],
        "train_loss": train_eval["loss"],
        "epoch_test_accuracy": hist["test_accuracy"],
        "epoch_loss": hist["epoch_loss"],
        "final_batch_energy": hist["energy"][-1],
        "relaxation_energy_start": float(res.total_energy[0]),
        "relaxation_energy_end": float(res.total_energy[-1]),
        "n_train": data.n_train,
        "n_test": data.n_test,
        "compile_s": compile_s,
        "training_time_s": epoch_time,
        "train_samples_per_s": data.n_train * len(hist["epoch_time"]) / max(epoch_time, 1e-12),
        "figures": ["learning_curves.png", "relaxation_energy.png", "dynamics.png", "weights.png"],
        **extra,
    }
