"""Helpers of the graph experiments (:mod:`circuits.graphs`): datasets generated locally, training several
algorithms from the same initial parameters, figures."""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

import neurosim as ns
from neurosim import graph as ng
from neurosim.data import Dataset, load_digits
from neurosim.hardware.spec import format_hardware, parse_hardware

__all__ = ["digit_rows", "adding_task", "plasticity", "runs_of", "train_algorithms", "summarise", "sequence_dataset",
           "comparison_figure"]


def digit_rows(test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """Sequential digits: each 8x8 image read row by row, 8 time steps of 8 pixels (values in [0, 1]).

    ``X`` keeps scikit-learn's row-major pixel order, so columns ``8 t : 8 t + 8`` are row ``t`` -- exactly the
    layout of the inputs ``x1 ... x8`` of :func:`neurosim.graph.rnn` / :func:`~neurosim.graph.lstm`.
    """
    return load_digits(test_fraction=test_fraction, seed=seed)


def adding_task(n_train: int = 2000, n_test: int = 500, length: int = 10, seed: int = 0) -> Dataset:
    r"""The adding problem (Hochreiter & Schmidhuber 1997), generated locally.

    Each time step carries two features: a value :math:`u_t \sim U(0, 1)` and a marker :math:`m_t \in \{0, 1\}`
    that is 1 at exactly two steps, one in each half of the sequence.  The target is
    :math:`y = \sum_t m_t u_t`.  Predicting the mean (1) scores a loss
    :math:`\tfrac12 \mathrm{Var}(y) = 1/12`.  ``X`` is ``(n, 2 * length)`` in time order.
    """
    if length < 2:
        raise ValueError(f"adding_task: length must be >= 2, got {length}")
    rng = np.random.default_rng([seed, length])

    def make(n):
        u = rng.uniform(0.0, 1.0, size=(n, length))
        m = np.zeros((n, length))
        half = length // 2
        m[np.arange(n), rng.integers(0, half, size=n)] = 1.0
        m[np.arange(n), rng.integers(half, length, size=n)] = 1.0
        X = np.stack([u, m], axis=2).reshape(n, 2 * length)
        return X, np.sum(u * m, axis=1, keepdims=True)

    Xtr, Ytr = make(n_train)
    Xte, Yte = make(n_test)
    return Dataset(name=f"adding-{length}", X_train=Xtr, Y_train=Ytr, X_test=Xte, Y_test=Yte)


def sequence_dataset(cfg) -> tuple[Dataset, int, int]:
    """The dataset of a sequence experiment and its (steps, features per step)."""
    if cfg["task"] == "digit-rows":
        return digit_rows(cfg["test_fraction"], cfg["seed"]), 8, 8
    if cfg["task"] == "adding":
        return adding_task(cfg["n_train"], cfg["n_test"], cfg["length"], cfg["seed"]), cfg["length"], 2
    raise ValueError(f"task must be 'digit-rows' or 'adding', got {cfg['task']!r}")


def plasticity(cfg) -> ns.Hebbian:
    """The learning rule shared by every algorithm of an experiment (``optimizer``, ``lr``, ``momentum``)."""
    if cfg["optimizer"] == "adam":
        return ns.Hebbian(lr=cfg["lr"], optimizer=ns.Adam())
    if cfg["optimizer"] == "sgd":
        return ns.Hebbian(lr=cfg["lr"], optimizer=ns.SGD(momentum=cfg["momentum"]))
    raise ValueError(f"optimizer must be 'sgd' or 'adam', got {cfg['optimizer']!r}")


def runs_of(cfg) -> list:
    """``(label, algorithm, output precision)`` of every training run: each algorithm of ``cfg["algorithms"]``
    once, and ``"pc"`` once per output precision in ``cfg["pc_output_precision"]`` (label ``"pc"`` for 1,
    ``"pc_lambda<value>"`` otherwise)."""
    out = []
    for algo in cfg["algorithms"]:
        if algo not in ng.ALGORITHMS:
            raise ValueError(f"unknown algorithm {algo!r} in algorithms; choose from {sorted(ng.ALGORITHMS)}")
        if algo == "pc":
            for lam in cfg.get("pc_output_precision", [1.0]):
                if not lam > 0:
                    raise ValueError(f"pc_output_precision must be > 0, got {lam!r}")
                out.append(("pc" if lam == 1.0 else f"pc_lambda{lam:g}", "pc", float(lam)))
        else:
            out.append((algo, algo, 1.0))
    return out


def train_algorithms(make_graph, data: Dataset, cfg, progress=True) -> dict:
    """Train ``make_graph(output_precision)`` once per run of :func:`runs_of`, all from the same initial parameters.

    Returns ``{label: {"history", "weights", "test", "train", "time_s"}}``.  PC (and iPC, strict PC) use
    ``cfg["pc_steps"]`` relaxation steps of size ``cfg["pc_dt"]``; PC multiplies its step by
    ``cfg["pc_dt_decay"]`` (default 1: off) whenever a step fails to lower the energy.  Settings of the
    relaxation-based runs only (absent keys: off):

    * ``cfg["pc_tau"] == "jacobi"``: PC and iPC run the graph of :func:`neurosim.graph.precondition.precondition`
      (each vertex's ``tau_x`` = the curvature of the energy along it, measured on the first 128 training
      inputs), re-measured at the current parameters after every epoch
      (:func:`~neurosim.graph.precondition.refresh_time_constants`), so ``dt`` is a step in units of each
      vertex's own stable step;
    * ``cfg["ipc_lr_scale"]``: iPC updates the weights at every relaxation step, with learning rate
      ``lr * ipc_lr_scale``.
    """
    out = {}
    for label, algo, lam in runs_of(cfg):
        g = make_graph(lam)
        callback = None
        if algo in ("pc", "ipc") and cfg.get("pc_tau", "uniform") == "jacobi":
            from neurosim.graph.precondition import precondition, refresh_time_constants
            g = precondition(g, data.X_train[:128], seed=cfg["seed"])

            def callback(sim, epoch):
                refresh_time_constants(sim, data.X_train[:128])
        if algo == "ipc" and cfg.get("ipc_lr_scale", 1.0) != 1.0:
            g = replace(g, plasticity=replace(g.plasticity, lr=g.plasticity.lr * cfg["ipc_lr_scale"]))
        sim = ns.Simulator(g, backend=cfg["backend"], seed=cfg["seed"], dt=cfg["pc_dt"],
                           hardware=parse_hardware(cfg.get("hardware", "none")))
        t0 = time.perf_counter()
        kw = dict(steps=cfg["pc_steps"]) if algo in ("pc", "ipc", "strict") else {}
        if algo == "pc" and cfg.get("pc_dt_decay", 1.0) != 1.0:
            kw["dt_decay"] = cfg["pc_dt_decay"]
        h = sim.train(data.X_train, data.Y_train, epochs=cfg["epochs"], batch_size=cfg["batch_size"],
                      algorithm=algo, X_test=data.X_test, Y_test=data.Y_test, progress=progress,
                      callback=callback, **kw)
        out[label] = {"history": h, "weights": sim.weights, "output_precision": lam, "time_s": time.perf_counter() - t0,
                     "test": sim.evaluate(data.X_test, data.Y_test), "train": sim.evaluate(data.X_train, data.Y_train)}
        if sim.hardware is not None:   # what the substrate did: operation counts of the whole training
            c = sim.hardware.counts
            out[label]["hardware_counts"] = {f: float(getattr(c, f)) for f in c.__dataclass_fields__}
        sim.close()
    return out


def summarise(runs: dict, classify: bool) -> dict:
    """Per-algorithm metrics and the PC-vs-BP / Z-IL-vs-BP comparisons."""
    m = {}
    for algo, r in runs.items():
        h = r["history"]
        m[algo] = {"test_loss": r["test"]["loss"], "train_loss": r["train"]["loss"], "time_s": r["time_s"],
                   "output_precision": r["output_precision"],
                   "epoch_test_loss": list(h["test_loss"]), "epoch_loss": list(h["epoch_loss"])}
        if "hardware_counts" in r:
            m[algo]["hardware_counts"] = r["hardware_counts"]
        if classify:
            m[algo].update(test_accuracy=r["test"]["accuracy"], train_accuracy=r["train"]["accuracy"],
                           epoch_test_accuracy=list(h["test_accuracy"]))
    if "bp" in runs:
        wb = runs["bp"]["weights"]
        for algo in runs:
            if algo == "bp":
                continue
            m[f"{algo}_vs_bp_weight_rel_diff"] = ng.rel_diff(runs[algo]["weights"], wb)
            if classify:
                m[f"{algo}_minus_bp_test_accuracy_pp"] = 100 * (m[algo]["test_accuracy"] - m["bp"]["test_accuracy"])
            m[f"{algo}_minus_bp_test_loss"] = m[algo]["test_loss"] - m["bp"]["test_loss"]
    return m


def comparison_figure(runs: dict, key: str, ylabel: str, path, title: str, baseline: float | None = None,
                      baseline_label: str = ""):
    """Per-epoch curve ``history[key]`` of every algorithm; ``baseline`` (e.g. the test loss of always predicting
    the training mean) a labelled horizontal line.

    Z-IL and FPA are exact backprop: their curves lie on BP's.  They are drawn wide and light under BP, with their
    own markers, and the legend -- made from the same styles -- says so (the Z-IL line was restyled after the
    legend was built, which then showed solid lines and hid BP and FPA under Z-IL)."""
    from neurosim import plot
    curves, styles = {}, {}
    exact = {"zil": "Z-IL (= BP)", "fpa": "FPA (= BP)"}
    for algo, r in runs.items():
        y = np.asarray(r["history"][key], dtype=float)
        if y.size:
            label = {"pc": "PC", "bp": "BP"}.get(algo) or exact.get(algo) or algo.replace("pc_lambda", "PC, λ=")
            curves[label] = (np.arange(1, y.size + 1), y)
            if algo in exact and "bp" in runs:
                styles[label] = {"lw": 5.0 if algo == "zil" else 3.0, "alpha": 0.35,
                                 "marker": "s" if algo == "zil" else "^", "ms": 7, "zorder": 1}
    fig = plot.comparison(curves, xlabel="epoch", ylabel=ylabel, title=title, styles=styles or None)
    ax = fig.axes[0]
    if baseline is not None and np.isfinite(baseline):
        ax.axhline(baseline, color="0.4", ls=":", lw=1.2, label=baseline_label or f"baseline {baseline:.3g}")
        ax.legend(fontsize=8, loc="best")
    plot.save(fig, path)
    return fig


def hardware_label(cfg) -> str:
    """The run's hardware model in the one-line form of :mod:`neurosim.hardware.spec` ("none" without one)."""
    hw = parse_hardware(cfg.get("hardware", "none"))
    return "none" if hw is None else format_hardware(hw)
