"""The brian2 backend's experiments: the bear example and a digits classifier, rate model vs brian2.

``neurosim run brian2-bear --backend brian2 --set mode=spiking`` (or ``mode=rate``; with the default
``--backend numba`` only the rate model runs).  Every run compares the chosen backend/mode with the rate
model on numba (and, for the bear, with backpropagation).

Figures: rasters of value and error populations, population values of the spiking network against the
rate-model trajectories, weight evolution, event counts; metrics.json holds accuracies, event counts
(spikes, synaptic events, weight updates: the inputs of energy estimates) and simulated time to settle.
"""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

import neurosim as ns
from neurosim import plot
from neurosim.experiment import Experiment

from . import _params as P

_SPIKING_KEYS = ("time_unit", "value_rate", "error_rate", "error_scheme", "neuron", "tau_syn")


def _check(cfg):
    if cfg["mode"] not in ("rate", "spiking"):
        raise ValueError(f"mode must be 'rate' or 'spiking', got {cfg['mode']!r}")
    if cfg["mode"] == "spiking" and cfg["backend"] != "brian2":
        raise ValueError("mode='spiking' needs the brian2 backend: add --backend brian2")


def _simulator(net, cfg, seed, probes=(), record_spikes=False):
    """A simulator of the configured backend and mode."""
    if cfg["backend"] != "brian2":
        return ns.Simulator(net, backend=cfg["backend"], seed=seed, dt=cfg["dt"], probes=probes)
    opts = {"mode": cfg["mode"]}
    if cfg["mode"] == "spiking":
        opts["spiking"] = {k: cfg[k] for k in _SPIKING_KEYS} | {"record_spikes": record_spikes}
    return ns.Simulator(net, backend="brian2", seed=seed, dt=cfg["dt"], probes=probes, backend_options=opts)


def _settle_time(trace, final, tol):
    """First time index after which ``|trace - final| < tol`` for good (inf-norm over units)."""
    bad = np.nonzero(np.max(np.abs(trace - final), axis=1) >= tol)[0]
    return 0 if bad.size == 0 else int(bad[-1] + 1)


def _raster(report, path, title):
    """One raster of every recorded event stream (value and error populations), stacked."""
    fig = Figure(figsize=(7.5, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    offset, ticks, labels = 0, [], []
    colors = {1.0: "tab:red", -1.0: "tab:blue"}
    for name, ev in report["events"].items():
        n = int(ev["i"].max()) + 1 if ev["i"].size else 1
        for sgn, col in colors.items():
            sel = ev["sign"] == sgn
            ax.plot(ev["t"][sel], ev["i"][sel] + offset, linestyle="none", marker="|", markersize=6, color=col)
        ticks.append(offset + (n - 1) / 2)
        labels.append(name)
        offset += n + 1
    ax.set_yticks(ticks)
    ax.set_yticklabels(labels, fontsize="small")
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("unit (grouped by event stream)")
    ax.set_title(title + "  (red: + events, blue: - events)")
    ax.set_xlim(0, report["simulated_time_ms"])
    plot.save(fig, path)


def _bar(values: dict, path, title, ylabel):
    fig = Figure(figsize=(7.0, 3.8))
    ax = fig.add_subplot(1, 1, 1)
    keys = list(values)
    ax.bar(range(len(keys)), [values[k] for k in keys], color="tab:gray")
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels(keys, rotation=30, ha="right", fontsize="small")
    ax.set_xlabel("event stream (population.channel)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    plot.save(fig, path)


# ============================================================================================ bear
BEAR_DEFAULTS = {
    "backend": "numba",        # numba | reference | brian2
    "mode": "rate",            # rate | spiking (spiking needs --backend brian2)
    "seed": 0,
    "lr": 0.2,                 # SGD learning rate of both rules (Song et al. 2024, Fig. 3a)
    "iterations": 12,          # learning iterations on the one sample
    "steps": 100,              # relaxation steps per iteration (target clamped)
    "dt": 0.1,                 # rate-model step (tau_x = 1)
    "time_unit": 20.0,         # spiking: ms per rate-model time unit
    "value_rate": 2000.0,      # spiking: Hz per unit of value
    "error_rate": 2000.0,      # spiking: Hz per unit of error
    "tau_syn": 2.0,            # spiking: synaptic time constant (ms)
    "error_scheme": "events",  # spiking: events | pair | onoff
    "neuron": "if",            # spiking: if | lif | poisson
}

#: the spiking settings (used with mode=spiking; see neurosim.backends.brian2.SpikingConfig)
_SPIKING_PARAMS = {
    "time_unit": P.Float(gt=0, doc="ms"),
    "value_rate": P.Float(gt=0, doc="Hz"),
    "error_rate": P.Float(gt=0, doc="Hz"),
    "tau_syn": P.Float(gt=0, doc="ms"),
    "error_scheme": P.Choice("events", "pair", "onoff"),
    "neuron": P.Choice("if", "lif", "poisson"),
}
_MODE = P.Choice("rate", "spiking", requires=(lambda v, c: v != "spiking" or c["backend"] == "brian2",
                                              "spiking needs backend=brian2 (--backend brian2)"))

BEAR_PARAMS = {
    "backend": P.ANY_BACKEND,
    "mode": _MODE,
    "seed": P.SEED,
    "lr": P.LR,
    "iterations": P.COUNT,
    "steps": P.COUNT,
    "dt": P.DT,
    **_SPIKING_PARAMS,
}

BEAR_DOC = """The bear example (Song et al. 2024, Fig. 1/3a): a 1-1-2 linear network, all weights 1, input 1,
target (0, 1) (the water prediction is wrong today, the salmon one right).  Backpropagation weakens the
shared input->hidden weight, so the correct (salmon) output drops too; PC first infers a hidden activity
that keeps it, then strengthens hidden->salmon: less interference.  Each iteration relaxes with the target
clamped and applies one Hebbian update, on the chosen backend/mode; the rate model (numba) and BP are the
references.  Metrics: dy1 after the first update (interference), minimum y1 over training, hidden->salmon
weight change, event counts per iteration and time to settle (spiking)."""


def _bear_net(lr):
    return ns.hierarchy([1, 1, 2], phi="linear", bias=False, lr=lr, optimizer=ns.SGD(),
                        init=ns.Init("constant", value=1.0), names=["river", "hidden", "outputs"], name="bear")


def run_bear(cfg, out, progress=True) -> dict:
    _check(cfg)
    net = _bear_net(cfg["lr"])
    X, Y = np.ones((1, 1)), np.array([[0.0, 1.0]])
    traj, weights = {}, {}
    bp = ns.Simulator(net, backend="numba", seed=cfg["seed"])
    rate = ns.Simulator(net, backend="numba", seed=cfg["seed"], dt=cfg["dt"],
                        probes=[ns.Probe("hidden", "x"), ns.Probe("outputs", "x")])
    label = "PC " + ("spiking" if cfg["mode"] == "spiking" else cfg["backend"])
    probes = [ns.Probe("hidden", "x"), ns.Probe("outputs", "x")]
    sims = {"BP": bp, "PC rate (numba)": rate}
    if not (cfg["backend"] == "numba" and cfg["mode"] == "rate"):
        sims[label] = _simulator(net, cfg, cfg["seed"], probes=probes, record_spikes=True)
    for name, s in sims.items():
        traj[name] = [s.predict(X)[0].copy()]
        weights[name] = [np.concatenate([s.weights["W1"].ravel(), s.weights["W2"].ravel()])]
    reports, first = [], {}
    for it in range(cfg["iterations"]):
        for name, s in sims.items():
            if name == "BP":
                s.train(X, Y, epochs=1, batch_size=1, algorithm="bp", progress=False)
            else:
                s.learn(X, Y, steps=cfg["steps"])
                if it == 0:
                    first[name] = {p: s.data[p].copy() for p in ("hidden.x", "outputs.x")}
                if name == label and cfg["mode"] == "spiking":
                    reports.append(s.last_run)
            traj[name].append(s.predict(X)[0].copy())
            weights[name].append(np.concatenate([s.weights["W1"].ravel(), s.weights["W2"].ravel()]))
    traj = {k: np.array(v) for k, v in traj.items()}
    weights = {k: np.array(v) for k, v in weights.items()}
    its = np.arange(cfg["iterations"] + 1)

    plot.comparison({k: (its, v[:, 1]) for k, v in traj.items()}, "iteration", "salmon output y1 (target 1)",
                    path=out / "salmon_output.png", title="Interference: the correct output under each rule")
    plot.comparison({k: (v[:, 0], v[:, 1]) for k, v in traj.items()}, "water output y0 (target 0)",
                    "salmon output y1 (target 1)", path=out / "output_trajectory.png",
                    title="Output trajectories from (1, 1) towards (0, 1)")
    wc, ws = {}, {}
    for j, (k, v) in enumerate(weights.items()):
        for name, col, ls in (("river->hidden", 0, "-"), ("hidden->salmon", 2, "--")):
            wc[f"{k}: {name}"] = (its, v[:, col])
            ws[f"{k}: {name}"] = {"color": plot.TAB10[j], "ls": ls}
    plot.comparison(wc, "iteration", "weight", path=out / "weights.png", styles=ws,
                    title="Weight evolution (solid: river->hidden, dashed: hidden->salmon)")
    figures = ["salmon_output.png", "output_trajectory.png", "weights.png"]

    tu = cfg["time_unit"] if cfg["mode"] == "spiking" else 1.0
    t_rate = np.arange(len(first["PC rate (numba)"]["hidden.x"])) * cfg["dt"]
    metrics = {"mode": cfg["mode"], "backend": cfg["backend"], "label": label}
    for name, v in traj.items():
        key = name.split(" ")[0].lower() if name == "BP" else ("pc_rate" if name == "PC rate (numba)" else "pc_backend")
        metrics[f"{key}_dy1_first_update"] = float(v[1, 1] - v[0, 1])
        metrics[f"{key}_min_y1"] = float(v[:, 1].min())
        metrics[f"{key}_final_y"] = v[-1].tolist()
        metrics[f"{key}_hidden_salmon_weight_change_first_update"] = float(weights[name][1, 2] - weights[name][0, 2])
    metrics["interference_ratio_pc_over_bp"] = abs(metrics["pc_rate_dy1_first_update"]) / abs(metrics["bp_dy1_first_update"])
    if "pc_backend_dy1_first_update" in metrics:
        metrics["interference_ratio_backend_over_bp"] = abs(metrics["pc_backend_dy1_first_update"]) / \
            abs(metrics["bp_dy1_first_update"])
        metrics["max_abs_y_difference_backend_vs_rate"] = float(np.max(np.abs(traj[label] - traj["PC rate (numba)"])))
    # time to settle: hidden and outputs within 0.05 of their final relaxed value (first iteration)
    rate_tr = np.hstack([first["PC rate (numba)"]["hidden.x"], first["PC rate (numba)"]["outputs.x"]])
    metrics["rate_settle_time"] = float(_settle_time(rate_tr, rate_tr[-1], 0.05) * cfg["dt"])
    if label in first:
        tr = np.hstack([first[label]["hidden.x"], first[label]["outputs.x"]])
        metrics["backend_settle_time_ms" if cfg["mode"] == "spiking" else "backend_settle_time"] = \
            float(_settle_time(tr, rate_tr[-1], 0.05) * cfg["dt"] * tu)
        curves, styles = {}, {}
        for p in ("hidden.x", "outputs.x"):
            for j in range(first[label][p].shape[1]):
                color = plot.TAB10[len(curves) // 2]
                curves[f"{label} {p}[{j}]"] = (t_rate * tu, first[label][p][:, j])
                curves[f"rate model {p}[{j}]"] = (t_rate * tu, first["PC rate (numba)"][p][:, j])
                styles[f"{label} {p}[{j}]"] = {"color": color, "lw": 2.4, "alpha": 0.8}
                styles[f"rate model {p}[{j}]"] = {"color": color, "ls": "--", "lw": 1.4, "marker": None}
        plot.comparison(curves, "time (ms)" if cfg["mode"] == "spiking" else "time (units of tau_x)", "value x",
                        path=out / "values_vs_rate_model.png", styles=styles,
                        title="First iteration: relaxation with the target clamped (dashed: rate model)")
        figures.append("values_vs_rate_model.png")
    if reports:
        r0 = reports[0]
        _raster(r0, out / "raster.png", "Bear, first iteration")
        _bar(r0["spikes_by_channel"], out / "events.png", "Events per channel (first iteration)", "events")
        figures += ["raster.png", "events.png"]
        metrics.update({
            "spikes_per_iteration": float(np.mean([r["spikes"] for r in reports])),
            "synaptic_events_per_iteration": float(np.mean([r["synaptic_events"] for r in reports])),
            "weight_updates_per_iteration": float(np.mean([r["weight_updates"] for r in reports])),
            "spikes_by_channel_first_iteration": r0["spikes_by_channel"],
            "simulated_time_per_iteration_ms": r0["simulated_time_ms"],
            "error_scheme": r0["error_scheme"], "neuron": r0["neuron"],
        })
    metrics["figures"] = figures
    return metrics


# ============================================================================================ digits
DIGITS_DEFAULTS = {
    "backend": "numba",        # numba | reference | brian2 (inference backend)
    "mode": "rate",            # rate | spiking (spiking needs --backend brian2)
    "seed": 0,
    "hidden": 32,              # hidden units (tanh)
    "epochs": 20,              # rate-model training epochs (numba)
    "lr": 0.05,
    "momentum": 0.9,
    "batch_size": 16,
    "train_steps": 20,         # relaxation steps per training batch
    "dt": 0.1,
    "infer_steps": [10, 20, 40],   # inference durations (rate steps; x time_unit * dt ms when spiking)
    "n_test": 0,               # test digits used for inference (0: all)
    "chunk": 150,              # test digits simulated in parallel
    "time_unit": 20.0,
    "value_rate": 2000.0,
    "error_rate": 2000.0,
    "tau_syn": 2.0,
    "error_scheme": "events",
    "neuron": "if",
}

DIGITS_PARAMS = {
    "backend": P.ANY_BACKEND,
    "mode": _MODE,
    "seed": P.SEED,
    "hidden": P.COUNT,
    "epochs": P.COUNT,
    "lr": P.LR,
    "momentum": P.MOMENTUM,
    "batch_size": P.COUNT,
    "train_steps": P.COUNT,
    "dt": P.DT,
    "infer_steps": P.ListOf(P.Int(ge=1)),
    "n_test": P.Int(ge=0, doc="0 = all"),
    "chunk": P.COUNT,
    **_SPIKING_PARAMS,
}

DIGITS_DOC = """A 64-hidden-10 PCN classifier of the bundled 8x8 digits.  Training: the standard PC schedule on the
rate model (numba; SGD with momentum is not an event-local rule).  Inference on the chosen backend/mode:
input clamped, all other values start at 0, the output relaxes freely for each duration in infer_steps, and
the class is the argmax of the output values (averaged over the last 30% of the run when spiking).  The rate
model's accuracy for the same relaxation is the reference.  Metrics: accuracies per duration, events per
inference (spikes, synaptic events, by population), simulated time to settle."""


def run_digits(cfg, out, progress=True) -> dict:
    _check(cfg)
    from neurosim.data import load_digits
    data = load_digits(seed=cfg["seed"])
    sizes = [64, int(cfg["hidden"]), 10]
    train_net = ns.hierarchy(sizes, phi="tanh", lr=cfg["lr"], optimizer=ns.SGD(momentum=cfg["momentum"]),
                             name="digits-pcn")
    trainer = ns.Simulator(train_net, backend="numba", seed=cfg["seed"], dt=cfg["dt"])
    hist = trainer.train(data.X_train, data.Y_train, epochs=cfg["epochs"], batch_size=cfg["batch_size"],
                         steps=cfg["train_steps"], X_test=data.X_test, Y_test=data.Y_test, progress=progress)
    W = trainer.weights
    infer_net = ns.hierarchy(sizes, phi="tanh", lr=cfg["lr"], optimizer=ns.SGD(),  # same weights, plain SGD
                             name="digits-pcn")
    n = data.n_test if cfg["n_test"] <= 0 else min(cfg["n_test"], data.n_test)
    Xt, yt = data.X_test[:n], data.y_test[:n]
    steps_list = sorted(int(s) for s in cfg["infer_steps"])
    tu = cfg["time_unit"] if cfg["mode"] == "spiking" else 1.0
    rate = ns.Simulator(infer_net, backend="numba", seed=cfg["seed"], dt=cfg["dt"])
    rate.load_weights(W)
    backend_sim = None
    if not (cfg["backend"] == "numba" and cfg["mode"] == "rate"):
        backend_sim = _simulator(infer_net, cfg, cfg["seed"])
        backend_sim.load_weights(W)
    acc_rate, acc_b, reports = [], [], {}
    for steps in steps_list:
        r = rate.run(Xt, steps=steps, mode="free", init="zeros")
        acc_rate.append(float(np.mean(np.argmax(r.x["output"], 1) == yt)))
        if backend_sim is not None:
            outs, reps = [], []
            for a in range(0, n, cfg["chunk"]):
                res = backend_sim.run(Xt[a:a + cfg["chunk"]], steps=steps, mode="free", init="zeros")
                outs.append(res.x["output"])
                if cfg["mode"] == "spiking":
                    reps.append(backend_sim.last_run)
            acc_b.append(float(np.mean(np.argmax(np.concatenate(outs), 1) == yt)))
            if reps:
                reports[steps] = reps
    durations = np.array(steps_list, dtype=float) * cfg["dt"] * tu
    curves = {"rate model (numba)": (durations, np.array(acc_rate))}
    label = "spiking (brian2)" if cfg["mode"] == "spiking" else f"rate ({cfg['backend']})"
    if acc_b:
        curves[label] = (durations, np.array(acc_b))
    plot.comparison(curves, "simulated time (ms)" if cfg["mode"] == "spiking" else "relaxation time (units of tau_x)",
                    "test accuracy", path=out / "accuracy_vs_time.png",
                    title="Inference from rest: accuracy against relaxation time")
    plot.learning_curves(hist, path=out / "learning_curves.png", title="Rate-model training (numba)")
    plot.weights(W, path=out / "weights.png", image_shape=(8, 8))
    figures = ["accuracy_vs_time.png", "learning_curves.png", "weights.png"]
    final_b = acc_b[-1] if acc_b else acc_rate[-1]
    settle = next((d for d, a in zip(durations, acc_b or acc_rate) if a >= final_b - 0.01), durations[-1])
    metrics = {
        "mode": cfg["mode"], "backend": cfg["backend"], "n_test": int(n),
        "rate_feedforward_test_accuracy": trainer.evaluate(Xt, data.Y_test[:n])["accuracy"],
        "rate_relaxed_test_accuracy": dict(zip(map(str, steps_list), acc_rate)),
        "inference_durations": durations.tolist(),
        "settle_time" + ("_ms" if cfg["mode"] == "spiking" else ""): float(settle),
    }
    if acc_b:
        metrics["backend_test_accuracy"] = dict(zip(map(str, steps_list), acc_b))
        metrics["test_accuracy"] = final_b
    if reports:
        last = reports[steps_list[-1]]
        n_all = sum(r["batch"] for r in last)
        tot = lambda key: float(sum(r[key] for r in last))  # noqa: E731
        by_pop = {}
        for r in last:
            for k, v in r["synaptic_events_by_population"].items():
                by_pop[k] = by_pop.get(k, 0.0) + v / n_all
        spikes_ch = {}
        for r in last:
            for k, v in r["spikes_by_channel"].items():
                spikes_ch[k] = spikes_ch.get(k, 0.0) + v / n_all
        metrics.update({
            "spikes_per_inference": tot("spikes") / n_all,
            "synaptic_events_per_inference": tot("synaptic_events") / n_all,
            "synaptic_events_per_inference_by_population": by_pop,
            "spikes_per_inference_by_channel": spikes_ch,
            "spikes_per_inference_by_duration": {str(s): float(sum(r["spikes"] for r in reps) / n)
                                                 for s, reps in reports.items()},
            "simulated_time_per_inference_ms": last[0]["simulated_time_ms"],
            "mean_rate_hz": float(np.mean([r["mean_rate_hz"] for r in last])),
            "error_scheme": last[0]["error_scheme"], "neuron": last[0]["neuron"],
        })
        _bar(spikes_ch, out / "events.png", "Events per inference, by channel", "events per digit")
        # one digit in detail: rasters and values against the rate model
        probes = [ns.Probe("h1", "x"), ns.Probe("output", "x")]
        one = _simulator(infer_net, cfg, cfg["seed"], probes=probes, record_spikes=True)
        one.load_weights(W)
        ref1 = ns.Simulator(infer_net, backend="numba", seed=cfg["seed"], dt=cfg["dt"], probes=probes)
        ref1.load_weights(W)
        steps = steps_list[-1]
        one.run(Xt[:1], steps=steps, mode="free", init="zeros")
        ref1.run(Xt[:1], steps=steps, mode="free", init="zeros")
        rep = one.last_run
        _raster(rep, out / "raster.png", f"Digit {int(yt[0])}: value and error events")
        t = np.arange(steps + 1) * cfg["dt"] * tu
        c = int(yt[0])
        others = [j for j in range(10) if j != c]
        curves, styles = {}, {}
        for lab, d, ls in (("spiking", one.data["output.x"], "-"), ("rate model", ref1.data["output.x"], "--")):
            curves[f"{lab}: true class {c}"] = (t, d[:, c])
            curves[f"{lab}: best other class"] = (t, d[:, others].max(axis=1))
            styles[f"{lab}: true class {c}"] = {"color": plot.TAB10[2], "ls": ls}
            styles[f"{lab}: best other class"] = {"color": plot.TAB10[3], "ls": ls}
        plot.comparison(curves, "time (ms)", "output value x", path=out / "values_vs_rate_model.png",
                        styles=styles, title=f"Digit {c}: output values relaxing from rest, spiking vs rate model")
        figures += ["events.png", "raster.png", "values_vs_rate_model.png"]
    metrics["figures"] = figures
    return metrics


EXPERIMENTS = [
    Experiment("brian2-bear", "bear example (PC interferes less than BP) on the rate model and on brian2 "
               "(rate or spiking); events and settle time", BEAR_DEFAULTS, run_bear, BEAR_DOC, BEAR_PARAMS),
    Experiment("brian2-digits", "digits PCN trained on the rate model, inference on brian2 (rate or spiking): "
               "accuracy, events per digit, time to settle", DIGITS_DEFAULTS, run_digits, DIGITS_DOC, DIGITS_PARAMS),
]
