"""The brian2 backend's experiments: the bear example and a digits classifier, rate model vs brian2, and the
digits classifier learning in the spiking network (``brian2-digits-learn``).

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
from neurosim.experiment import Experiment, partial_results

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
#: the spiking network's settings shared by both digits experiments (keys: _SPIKING_KEYS)
_DIGITS_SPIKING = {"time_unit": 20.0, "value_rate": 2000.0, "error_rate": 2000.0, "tau_syn": 2.0,
                   "error_scheme": "events", "neuron": "if"}

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
    **_DIGITS_SPIKING,
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
model's accuracy for the same relaxation is the reference.  Metrics: accuracies per duration
(``rate_relaxed_test_accuracy`` and ``backend_test_accuracy`` are keyed by the number of relaxation steps of
infer_steps; ``inference_durations`` gives each one's simulated time, in ms when spiking), events per inference
(spikes, synaptic events, by population), and the time to settle (``settle_time[_ms]``: the first duration whose
accuracy is within 0.01 of the longest one's; ``settled_before_last_duration`` says whether a shorter one was, so
a settle time equal to the longest duration does not pass for a settled run)."""


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
        "settled_before_last_duration": bool(settle < durations[-1]),
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


# ============================================================================================ digits-learn
LEARN_DEFAULTS = {
    "backend": "brian2",       # the circuit learns in brian2's spiking network (the references run on numba)
    "seed": 0,
    "hidden": 32,              # hidden units (tanh): the circuit is 64-hidden-10
    "epochs": 4,               # training epochs of the main run (and of the rate-PC and BP references)
    "batch_size": 32,          # circuit copies simulated side by side, sharing one weight memory
    "lr": 0.1,                 # plain SGD (the rule a chip's event-driven plasticity implements)
    "steps": 20,               # presentation per sample: steps * dt * time_unit ms (40 ms)
    "dt": 0.1,                 # rate-model step (tau_x = 1)
    "learn_fraction": 0.25,    # plasticity on during the last quarter of a presentation
    "input_clip": 2.0,         # inputs: standardised pixels clipped to [-input_clip, input_clip]
    "n_train": 0,              # training digits (0: the whole training split)
    "n_test": 0,               # test digits (0: the whole test split)
    "infer_steps": 40,         # spiking inference of the test digits: free relaxation from rest (80 ms)
    "chunk": 150,              # test digits simulated side by side
    **_DIGITS_SPIKING,
    "study_steps": [10, 20, 10, 5],                   # trade-off study: presentation (rate steps) per setting
    "study_rates": [2000.0, 1000.0, 1000.0, 4000.0],  # ... and its value and error rate (Hz per unit)
    "study_epochs": 2,                                # epochs each study setting trains (0: no study)
}

_LEARN_BACKEND_REASON = ("the circuit learns in brian2's spiking network (event-driven plasticity); the rate-model "
                         "PC and BP references of every run train on numba already; for a rate-model digits run "
                         "use the experiment 'digits' or 'brian2-digits'")

LEARN_PARAMS = {
    "backend": P.Choice("brian2", refused={"numba": _LEARN_BACKEND_REASON, "reference": _LEARN_BACKEND_REASON}),
    "seed": P.SEED,
    "hidden": P.COUNT,
    "epochs": P.COUNT,
    "batch_size": P.COUNT,
    "lr": P.LR,
    "steps": P.COUNT,
    "dt": P.DT,
    "learn_fraction": P.Float(gt=0, le=1),
    "input_clip": P.Float(gt=0, doc="units of the training std"),
    "n_train": P.Int(ge=0, doc="0 = all"),
    "n_test": P.Int(ge=0, doc="0 = all"),
    "infer_steps": P.COUNT,
    "chunk": P.COUNT,
    **_SPIKING_PARAMS,
    "study_steps": P.ListOf(P.Int(ge=1), min_len=0, doc="[] = no study"),
    "study_rates": P.Param("list", item=P.Float(gt=0), min_len=0, doc="Hz, one per entry of study_steps",
                           requires=(lambda v, c: len(v) == len(c["study_steps"]),
                                     "as many entries as study_steps")),
    "study_epochs": P.Int(ge=0, doc="0 = no study"),
}

LEARN_DOC = """The 64-hidden-10 digits circuit learns in brian2's spiking network from random weights: no rate-model
pretraining.  Every training sample is presented for steps * dt * time_unit ms with its input clamped and the
output clamped to the one-hot target; values and signed errors travel as events, and during the last
learn_fraction of the presentation every error event changes the weights it crosses by the presynaptic spike
trace (w += eta * tr_pre per event: plain SGD in expectation; momentum and Adam need per-synapse optimiser
state that event-local hardware lacks, so the spiking mode refuses them).  batch_size copies of the circuit
run side by side and update one shared weight memory.  Inputs are the training-split standardised pixels,
clipped to +-input_clip (input rates stay below the encoders' maximum).

Held-out test accuracy of the learned weights: with the spiking network (input clamped, values from rest,
output free for infer_steps, argmax of the output averaged over the last 30%), and with the rate model on the
same weights (feedforward, and relaxed from rest on numba).  References on the same circuit, with the same
epochs, batches, learning rate and sample order: rate-model PC and backpropagation, both plain SGD on numba.
Costs per training sample: spikes, synaptic events (events x fan-out), weight updates (plastic synapse
events), simulated time, and wall and CPU time per epoch (the median over the epochs after the first, which
also builds the network or compiles the kernels; with one epoch, that epoch); the references'
multiply-accumulates per sample for scale.  feedforward_test_accuracy_per_epoch is the rate model's
feedforward read-out of each rule's weights after every epoch; spiking_test_accuracy is the spiking
network's own inference after the last epoch.  A study entry's "epochs" is the epochs behind its accuracy,
"epochs_measured" the epochs its event and time costs are measured over (the main run: all its epochs).
An interrupted or failed run keeps in metrics.json's partial.reported the finished epochs of every training
loop (loss per batch, feedforward accuracy per epoch, wall times, events so far).  The trade-off study trains one network per setting (study_steps[i], study_rates[i]: presentation
and event rate) for study_epochs epochs and reports accuracy against events per training sample.

Figures: learning_curves.png (test accuracy per epoch of the three rules, training loss per batch),
accuracy_vs_events.png (the study), events.png (spikes per training sample by event stream)."""


def _digits_inputs(cfg):
    """The digits split with standardised, clipped inputs (training-split statistics) and the subsets."""
    from neurosim.data import load_digits
    data = load_digits(seed=cfg["seed"], scale="standard")
    c = float(cfg["input_clip"])
    Xtr, Xte = np.clip(data.X_train, -c, c), np.clip(data.X_test, -c, c)
    Ytr, Yte = data.Y_train, data.Y_test
    if 0 < cfg["n_train"] < len(Xtr):
        keep = np.sort(np.random.default_rng([cfg["seed"], 7]).permutation(len(Xtr))[:cfg["n_train"]])
        Xtr, Ytr = Xtr[keep], Ytr[keep]
    if 0 < cfg["n_test"] < len(Xte):
        Xte, Yte = Xte[:cfg["n_test"]], Yte[:cfg["n_test"]]
    return Xtr, Ytr, Xte, Yte


def _spiking_options(cfg, steps_rate=None, record_spikes=False):
    """backend_options of a spiking simulator; ``steps_rate=(steps, rate)`` sets value and error rate."""
    spk = {k: cfg[k] for k in _SPIKING_KEYS} | {"record_spikes": record_spikes,
                                               "learn_fraction": cfg["learn_fraction"]}
    if steps_rate is not None:
        spk["value_rate"] = spk["error_rate"] = float(steps_rate[1])
    # encoders saturate at 2.5 units of value (5 kHz at the default 2 kHz per unit), at most one event per step
    spk["max_rate"] = min(2.5 * max(spk["value_rate"], spk["error_rate"]), 1e4)
    return {"mode": "spiking", "spiking": spk}


def _train_loop(sim, Xtr, Ytr, Xte, Yte, cfg, epochs, steps, algorithm="pc", spiking=False, progress=False,
                desc="train", learn=True, report=None):
    """Train ``epochs`` epochs of full batches of ``batch_size`` (the last partial batch of an epoch is left
    out, so a spiking network keeps one batch size); epoch e visits the digits in the order
    ``default_rng([seed, e]).permutation(n)``, the order of :meth:`Simulator.train`, for every rule.

    Returns the history (per-batch training loss of the prediction before the update, test accuracy of the
    feedforward readout after each epoch, wall time of each epoch's training) and, for the spiking network,
    the summed event counts of every training batch (``learn=False``: the same presentations without
    plasticity, a control).

    ``report``: a name under which every finished epoch's history and event counts go into
    :func:`neurosim.experiment.partial_results` (``metrics.json`` keeps them if the run fails or is
    interrupted)."""
    from neurosim.progress import progress_bar
    import time
    B = int(cfg["batch_size"])
    n = len(Xtr)
    nb = n // B
    if nb < 1:
        raise ValueError(f"brian2-digits-learn: batch_size={B} is larger than the {n} training digits; "
                         "reduce batch_size or raise n_train")
    hist = {"loss": [], "test_accuracy": [], "test_loss": [], "epoch_time": [], "epoch_cpu_time": []}
    tot = {"spikes": 0.0, "synaptic_events": 0.0, "weight_updates": 0.0, "samples": 0, "simulated_time_ms": 0.0}
    by_channel = {}
    bar = progress_bar(total=epochs * nb, desc=desc, enabled=progress)
    try:
        for e in range(epochs):
            order = np.random.default_rng([cfg["seed"], e]).permutation(n)
            t0, c0 = time.perf_counter(), time.process_time()
            for bi in range(nb):
                idx = order[bi * B:(bi + 1) * B]
                res = sim.step(Xtr[idx], Ytr[idx], algorithm=algorithm, steps=steps, learn=learn)
                hist["loss"].append(float(0.5 * np.mean(np.sum((Ytr[idx] - res.y0) ** 2, axis=1))))
                if spiking:
                    r = sim.backend.last_run
                    for k in ("spikes", "synaptic_events", "weight_updates"):
                        tot[k] += r[k]
                    tot["samples"] += r["batch"]
                    tot["simulated_time_ms"] += r["simulated_time_ms"] * r["batch"]
                    for k, v in r["spikes_by_channel"].items():
                        by_channel[k] = by_channel.get(k, 0.0) + v
                bar.update(1)
            hist["epoch_time"].append(time.perf_counter() - t0)
            hist["epoch_cpu_time"].append(time.process_time() - c0)
            ev = sim.evaluate(Xte, Yte)
            hist["test_accuracy"].append(ev["accuracy"])
            hist["test_loss"].append(ev["loss"])
            if report is not None:
                partial_results()[report] = _partial_record(hist, tot, by_channel, e + 1, epochs, nb, spiking)
    finally:
        bar.close()
    if spiking:
        tot["spikes_by_channel"] = by_channel
    return hist, tot


def _partial_record(hist, tot, by_channel, done, epochs, nb, spiking):
    """What a run that stops now keeps of a training loop: the finished epochs' history and event counts."""
    rec = {"epochs_done": done, "epochs": epochs,
           "training_loss_per_batch": list(hist["loss"][:done * nb]),
           "test_accuracy_feedforward_readout_per_epoch": list(hist["test_accuracy"]),
           "test_loss_feedforward_readout_per_epoch": list(hist["test_loss"]),
           "wall_time_per_epoch_s_each": list(hist["epoch_time"])}
    if spiking:
        rec["events"] = {k: tot[k] for k in ("spikes", "synaptic_events", "weight_updates", "samples",
                                             "simulated_time_ms")} | {"spikes_by_channel": dict(by_channel)}
    return rec


def _epoch_time(times) -> float:
    """Wall (or CPU) time of one epoch: the median over the epochs after the first when there are at least 2
    (the first also builds the brian2 network or compiles numba kernels, a one-off cost), else the first."""
    times = [float(t) for t in times]
    return float(np.median(times[1:] if len(times) >= 2 else times))


def _spiking_inference(W, net, cfg, Xte, yte, steps_rate=None):
    """Test accuracy of weights ``W`` in a spiking network (input clamped, values from rest, output free for
    infer_steps) and its events per test digit."""
    sim = ns.Simulator(net, backend="brian2", seed=cfg["seed"], dt=cfg["dt"],
                       backend_options=_spiking_options(cfg, steps_rate))
    sim.load_weights(W)
    outs, spikes, syn = [], 0.0, 0.0
    for a in range(0, len(Xte), cfg["chunk"]):
        res = sim.run(Xte[a:a + cfg["chunk"]], steps=cfg["infer_steps"], mode="free", init="zeros")
        outs.append(res.x["output"])
        spikes += sim.backend.last_run["spikes"]
        syn += sim.backend.last_run["synaptic_events"]
        T = sim.backend.last_run["simulated_time_ms"]
    sim.close()
    acc = float(np.mean(np.argmax(np.concatenate(outs), 1) == yte))
    return {"accuracy": acc, "spikes_per_inference": spikes / len(Xte),
            "synaptic_events_per_inference": syn / len(Xte), "simulated_time_per_inference_ms": T}


def _per_sample(tot, hist):
    n = max(tot["samples"], 1)
    return {"spikes_per_training_sample": tot["spikes"] / n,
            "synaptic_events_per_training_sample": tot["synaptic_events"] / n,
            "weight_updates_per_training_sample": tot["weight_updates"] / n,
            "simulated_time_per_training_sample_ms": tot["simulated_time_ms"] / n,
            # median over the epochs after the first (:func:`_epoch_time`): the first also builds the network
            # (brian2) or compiles kernels (numba)
            "wall_time_per_epoch_s": _epoch_time(hist["epoch_time"]),
            "wall_time_per_epoch_s_each": [float(t) for t in hist["epoch_time"]],
            # CPU time of this process (all its threads): less sensitive than wall time to other load
            "cpu_time_per_epoch_s": _epoch_time(hist["epoch_cpu_time"]),
            "wall_time_per_training_sample_ms": 1e3 * float(np.sum(hist["epoch_time"])) / n}


def run_digits_learn(cfg, out, progress=True) -> dict:
    import time
    import os
    t_start, c_start, load_start = time.perf_counter(), time.process_time(), os.getloadavg()
    if cfg["backend"] != "brian2":
        raise ValueError(f"brian2-digits-learn: backend must be 'brian2' (got {cfg['backend']!r}): "
                         f"{_LEARN_BACKEND_REASON}")
    if len(cfg["study_rates"]) != len(cfg["study_steps"]):
        raise ValueError(f"brian2-digits-learn: study_rates has {len(cfg['study_rates'])} entries and study_steps "
                         f"{len(cfg['study_steps'])}; give one rate per presentation")
    Xtr, Ytr, Xte, Yte = _digits_inputs(cfg)
    yte = np.argmax(Yte, 1)
    sizes = [64, int(cfg["hidden"]), 10]
    net = ns.hierarchy(sizes, phi="tanh", lr=cfg["lr"], optimizer=ns.SGD(), name="digits-pcn")
    epochs, steps = int(cfg["epochs"]), int(cfg["steps"])

    # ---- the main run: spiking training from random weights
    spk = ns.Simulator(net, backend="brian2", seed=cfg["seed"], dt=cfg["dt"], backend_options=_spiking_options(cfg))
    W_init = spk.weights
    acc0 = spk.evaluate(Xte, Yte)["accuracy"]
    hist_s, tot_s = _train_loop(spk, Xtr, Ytr, Xte, Yte, cfg, epochs, steps, spiking=True, progress=progress,
                                desc="spiking training", report="spiking_training")
    W = spk.weights
    spk.close()
    inf = _spiking_inference(W, net, cfg, Xte, yte)
    rate_eval = ns.Simulator(net, backend="numba", seed=cfg["seed"], dt=cfg["dt"])
    rate_eval.load_weights(W)
    r = rate_eval.run(Xte, steps=cfg["infer_steps"], mode="free", init="zeros")
    acc_rate_relaxed = float(np.mean(np.argmax(r.x["output"], 1) == yte))
    partial_results()["spiking_test_accuracy"] = inf["accuracy"]

    # ---- references on numba: rate-model PC and BP, same start, epochs, batches, learning rate and order
    refs = {}
    for label, algo in (("rate_pc", "pc"), ("bp", "bp")):
        sim = ns.Simulator(net, backend="numba", seed=cfg["seed"], dt=cfg["dt"])
        sim.load_weights(W_init)
        refs[label] = _train_loop(sim, Xtr, Ytr, Xte, Yte, cfg, epochs, steps, algorithm=algo,
                                  report=f"{label}_training")[0]

    # ---- trade-off study: presentation time and event rate
    study = []
    se = int(cfg["study_epochs"])
    if se > 0 and cfg["study_steps"]:
        main_point = {"steps": steps, "rate_hz": float(cfg["error_rate"]), "epochs": min(se, epochs),
                      "test_accuracy_rate_readout": hist_s["test_accuracy"][min(se, epochs) - 1],
                      "main_run": True}
        for st, rate in zip(cfg["study_steps"], cfg["study_rates"]):
            s = ns.Simulator(net, backend="brian2", seed=cfg["seed"], dt=cfg["dt"],
                             backend_options=_spiking_options(cfg, (st, rate)))
            h, t = _train_loop(s, Xtr, Ytr, Xte, Yte, cfg, se, int(st), spiking=True, progress=progress,
                               desc=f"study {st} steps, {rate:g} Hz", report="study_point_running")
            Ws = s.weights
            s.close()
            point = {"steps": int(st), "rate_hz": float(rate), "epochs": se, "epochs_measured": se,
                     "test_accuracy_rate_readout": h["test_accuracy"][-1],
                     "test_accuracy_spiking": _spiking_inference(Ws, net, cfg, Xte, yte, (st, rate))["accuracy"],
                     "main_run": False, **_per_sample(t, h)}
            study.append(point)
            partial_results()["study"] = list(study)
        # the main run's setting: its accuracy after the study's number of epochs; its events and times per
        # sample are measured over all its epochs (events per sample do not change with epochs)
        study.insert(0, main_point | {"epochs_measured": epochs} | _per_sample(tot_s, hist_s))

    # ---- figures
    ep = np.arange(1, epochs + 1)
    fig = Figure(figsize=(11.0, 4.2))
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    curves = {"PC, spiking (brian2)": (ep, np.array(hist_s["test_accuracy"])),
              "PC, rate model (numba)": (ep, np.array(refs["rate_pc"]["test_accuracy"])),
              "BP (numba)": (ep, np.array(refs["bp"]["test_accuracy"]))}
    plot.comparison(curves, "epoch", "test accuracy (feedforward readout)", ax=ax1,
                    title="Held-out accuracy after each epoch")
    nb = len(hist_s["loss"])
    b = np.arange(1, nb + 1)
    win = max(1, nb // (4 * epochs))
    smooth = lambda y: np.convolve(y, np.ones(win) / win, mode="valid")  # noqa: E731
    runs = (("PC, spiking (brian2)", hist_s), ("PC, rate model (numba)", refs["rate_pc"]), ("BP (numba)", refs["bp"]))
    lcurves = {k: (b[win - 1:], smooth(np.array(h["loss"]))) for k, h in runs}
    plot.comparison(lcurves, "training batch", f"training loss (mean of {win} batches)", ax=ax2,
                    title="Loss of the prediction before each update")
    fig.tight_layout()
    plot.save(fig, out / "learning_curves.png")
    figures = ["learning_curves.png"]
    ch = {k: v / max(tot_s["samples"], 1) for k, v in tot_s["spikes_by_channel"].items()}
    _bar(ch, out / "events.png", "Spikes per training sample, by event stream", "events per training sample")
    figures.append("events.png")
    if study:
        fig = Figure(figsize=(11.0, 4.2))
        axs = [fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)]
        for j, pt in enumerate(study):
            lab = f"{pt['steps'] * cfg['dt'] * cfg['time_unit']:g} ms at {pt['rate_hz']:g} Hz" + \
                (" (main run)" if pt["main_run"] else "")
            for ax, key in zip(axs, ("synaptic_events_per_training_sample", "wall_time_per_training_sample_ms")):
                ax.plot([pt[key]], [pt["test_accuracy_rate_readout"]], marker="os^vDP"[j % 6], linestyle="none",
                        markersize=9, color=plot.TAB10[j % 10], label=lab)
        axs[0].set_xlabel("synaptic events per training sample")
        axs[1].set_xlabel("wall time per training sample (ms)")
        for ax, key in zip(axs, ("synaptic_events_per_training_sample", "wall_time_per_training_sample_ms")):
            ax.set_ylabel(f"test accuracy after {se} epochs (feedforward)")
            ax.set_xlim(0, 1.1 * max(pt[key] for pt in study))
        axs[0].set_title("Accuracy against events (presentation, rate)")
        axs[1].set_title("Accuracy against simulation wall time")
        axs[1].legend(fontsize="small")
        fig.tight_layout()
        plot.save(fig, out / "accuracy_vs_events.png")
        figures.append("accuracy_vs_events.png")

    # ---- metrics
    n_w = sizes[0] * sizes[1] + sizes[1] * sizes[2]
    metrics = {
        "circuit": "-".join(map(str, sizes)), "n_train": int(len(Xtr)), "n_test": int(len(Xte)),
        "batch_size": int(cfg["batch_size"]), "epochs": epochs,
        "training_samples_per_epoch": int(len(Xtr) // cfg["batch_size"] * cfg["batch_size"]),
        "initial_test_accuracy": acc0,
        "spiking_test_accuracy": inf["accuracy"],
        "spiking_trained_rate_feedforward_test_accuracy": hist_s["test_accuracy"][-1],
        "spiking_trained_rate_relaxed_test_accuracy": acc_rate_relaxed,
        "rate_pc_test_accuracy": refs["rate_pc"]["test_accuracy"][-1],
        "bp_test_accuracy": refs["bp"]["test_accuracy"][-1],
        # after each epoch, the rate model's feedforward read-out of each rule's weights (for the spiking-trained
        # weights this is not spiking_test_accuracy, the spiking network's inference after the last epoch)
        "feedforward_test_accuracy_per_epoch": {"spiking_trained_pc": hist_s["test_accuracy"],
                                                "rate_pc": refs["rate_pc"]["test_accuracy"],
                                                "bp": refs["bp"]["test_accuracy"]},
        **_per_sample(tot_s, hist_s),
        "spikes_per_training_sample_by_channel": ch,
        "spiking_inference": inf,
        # wall and CPU times per epoch: median over the epochs after the first (the first compiles the numba
        # kernels); see _epoch_time
        "rate_pc_wall_time_per_epoch_s": _epoch_time(refs["rate_pc"]["epoch_time"]),
        "bp_wall_time_per_epoch_s": _epoch_time(refs["bp"]["epoch_time"]),
        "rate_pc_cpu_time_per_epoch_s": _epoch_time(refs["rate_pc"]["epoch_cpu_time"]),
        "bp_cpu_time_per_epoch_s": _epoch_time(refs["bp"]["epoch_cpu_time"]),
        # dense multiply-accumulates per training sample of the references (for scale): rate PC reads every
        # weight twice per step (prediction, feedback) and once for the update; BP: forward, backward through
        # the output weights, gradient
        "rate_pc_macs_per_training_sample": (2 * steps + 1) * n_w,
        "bp_macs_per_training_sample": 2 * n_w + sizes[1] * sizes[2],
        "study": study,
        "wall_time_s": time.perf_counter() - t_start,
        "cpu_time_s": time.process_time() - c_start,
        # the machine's 1/5/15-minute load averages when the run started and ended (wall times depend on them)
        "load_average_start": list(load_start), "load_average_end": list(os.getloadavg()),
        "figures": figures,
    }
    return metrics


EXPERIMENTS = [
    Experiment("brian2-bear", "bear example (PC interferes less than BP) on the rate model and on brian2 "
               "(rate or spiking); events and settle time", BEAR_DEFAULTS, run_bear, BEAR_DOC, BEAR_PARAMS),
    Experiment("brian2-digits", "digits PCN trained on the rate model, inference on brian2 (rate or spiking): "
               "accuracy, events per digit, time to settle", DIGITS_DEFAULTS, run_digits, DIGITS_DOC, DIGITS_PARAMS),
    Experiment("brian2-digits-learn", "digits PCN trained in brian2's spiking mode from random weights "
               "(event-driven plasticity) vs rate-model PC and BP: accuracy, events and wall time per sample, "
               "accuracy-vs-events study", LEARN_DEFAULTS, run_digits_learn, LEARN_DOC, LEARN_PARAMS),
]
