"""Hardware co-design experiments: precision and noise, event-driven traffic, energy per training sample.

Three experiments on the 64-H-10 tanh predictive-coding network and the bundled 8x8 digits, each run on a
modelled substrate (``neurosim.Simulator(..., hardware=HardwareModel(...))``):

* ``hw-precision`` -- test accuracy of PC and of BP on the same network vs weight bits, activity bits and
  noise; scalar knobs describe one design point (quantisation, noise, mismatch, faults, drift, converters)
  so that ``neurosim sweep`` can explore any of them;
* ``hw-event-driven`` -- events, synaptic ops and accuracy vs the send-on-delta threshold;
* ``hw-energy`` -- energy per training sample on each target (digital CMOS 45 nm, Loihi, SpiNNaker 2, an
  analog crossbar), PC vs BP, vs the relaxation steps T; writes the cost report of the design point;
* ``hw-mapping`` -- the digits network and a CNN mapped onto the cores or crossbar tiles of each chip
  (:func:`neurosim.hardware.map_circuit`): cores, chips, routed events, energy and latency per sample, and the
  count of the targets' constants by evidence level.

Each reports the design point's ``test_accuracy`` (PC) and ``energy_per_sample_J`` so that sweeps can draw
accuracy-vs-energy Pareto fronts.
"""
from __future__ import annotations

import time

import numpy as np

from neurosim import hardware as hw
from neurosim import plot
from neurosim.experiment import Experiment

from . import _hardware_common as C
from . import _params as P

# ============================================================================================ hw-precision
PRECISION_DEFAULTS = {
    **C.COMMON,
    "weight_bits": 0,          # stored weight levels (0: float64); 2^(b-1)-1 levels each side of 0
    "weight_bound": 0.5,       # weight range [-bound, bound]: about the range float training reaches here
    "activity_bits": 0,        # value- and error-unit output bits (0: float64)
    "activity_bound": 1.0,     # value range (tanh outputs, pixels in [0, 1])
    "error_bound": 1.0,        # error range
    "rounding": "stochastic",  # stochastic | nearest (weights and activities)
    "read_noise": 0.0,         # multiplicative noise of every weight read (aihwkit w_noise; 0.01 ReRAM)
    "activity_noise": 0.0,     # additive noise on value-unit outputs
    "mismatch": 0.0,           # device-to-device gain spread of synapses and neurons (0.1 analog neurons)
    "write_noise": 0.0,        # cycle-to-cycle noise of every weight write
    "stuck_fraction": 0.0,     # fraction of stuck devices (half at -bound, half at +bound; ~0.1 HfO2 RRAM)
    "drift_nu": 0.0,           # PCM drift exponent (0.05 typical), t0 = 20 s
    "drift_time": 0.0,         # device seconds between training and testing
    "dac_bits": 0,             # converter on layer inputs (0: none)
    "adc_bits": 0,             # converter on layer outputs (0: none)
    "adc_bound": 8.0,          # ADC range
    "target": "cmos45",        # energy_per_sample_J of the design point on this target
    "curves": True,            # also sweep the axes below (figures)
    "weight_bits_axis": [2, 3, 4, 5, 6, 8],
    "activity_bits_axis": [2, 3, 4, 5, 6, 8],
    "noise_axis": [0.02, 0.05, 0.1, 0.2, 0.4],
}

PRECISION_PARAMS = {
    **C.COMMON_PARAMS,
    "weight_bits": C.BITS,
    "weight_bound": P.Float(gt=0),
    "activity_bits": C.BITS,
    "activity_bound": P.Float(gt=0),
    "error_bound": P.Float(gt=0),
    "rounding": P.Choice("stochastic", "nearest"),
    "read_noise": P.Float(ge=0),
    "activity_noise": P.Float(ge=0),
    "mismatch": P.Float(ge=0),
    "write_noise": P.Float(ge=0),
    "stuck_fraction": P.PROBABILITY,
    "drift_nu": P.Float(ge=0),
    "drift_time": P.Float(ge=0, doc="seconds"),
    "dac_bits": C.BITS,
    "adc_bits": C.BITS,
    "adc_bound": P.Float(gt=0),
    "target": C.TARGET,
    "curves": P.Bool(),
    "weight_bits_axis": P.ListOf(P.Int(ge=2, le=52), min_len=0),
    "activity_bits_axis": P.ListOf(P.Int(ge=2, le=52), min_len=0),
    "noise_axis": P.ListOf(P.Float(ge=0), min_len=0),
}


def precision_model(cfg, **over) -> hw.HardwareModel:
    """The substrate of a design point (``over`` replaces config values)."""
    c = {**cfg, **over}
    C.check_choice("rounding", c["rounding"], ("stochastic", "nearest"))
    r = c["rounding"]
    weights, values, errors, reads, dac, adc = [], [], [], [], [], []
    if c["weight_bits"] > 0:
        weights.append(hw.Quantize(int(c["weight_bits"]), bound=c["weight_bound"], rounding=r))
    if c["write_noise"] > 0:
        weights.append(hw.WriteNoise(c["write_noise"]))
    if c["stuck_fraction"] > 0:
        weights.append(hw.StuckAt(c["stuck_fraction"] / 2, c["stuck_fraction"] / 2, low=-c["weight_bound"],
                                  high=c["weight_bound"]))
    if c["mismatch"] > 0:
        values.append(hw.Mismatch(c["mismatch"], per="neuron"))
        reads.append(hw.Mismatch(c["mismatch"], per="synapse"))
    if c["activity_noise"] > 0:
        values.append(hw.AdditiveNoise(c["activity_noise"]))
    if c["activity_bits"] > 0:
        values.append(hw.Quantize(int(c["activity_bits"]), bound=c["activity_bound"], rounding=r))
        errors.append(hw.Quantize(int(c["activity_bits"]), bound=c["error_bound"], rounding=r))
    if c["read_noise"] > 0:
        reads.append(hw.MultiplicativeNoise(c["read_noise"]))
    if c["drift_nu"] > 0:
        reads.append(hw.Drift(c["drift_nu"], nu_std=c["drift_nu"] / 5, t0=20.0))
    if c["dac_bits"] > 0:
        dac.append(hw.Converter(int(c["dac_bits"]), c["activity_bound"]))
    if c["adc_bits"] > 0:
        adc.append(hw.Converter(int(c["adc_bits"]), c["adc_bound"]))
    return hw.HardwareModel(values=values, errors=errors, dac=dac, adc=adc, reads=reads, weights=weights,
                            seed=c["seed"], name="design point")


def _widths(c) -> dict:
    """Operand widths for precision-scaled energies (float64 storage is priced as 32-bit, the reference)."""
    return {"weight_bits": float(c["weight_bits"] or 32), "activity_bits": float(c["activity_bits"] or 32)}


def _design(cfg, data, **over):
    c = {**cfg, **over}
    model = precision_model(c)
    out = {}
    for alg in ("pc", "bp"):
        r = C.train_eval(c, model, alg, data, drift_time=c["drift_time"])
        e = hw.energy(r["counts"], c["target"], **_widths(c))
        out[alg] = {"test_accuracy": r["test_accuracy"], "test_loss": r["test_loss"],
                    "energy_per_sample_J": e["per_sample_J"]}
    return out


def run_precision(cfg, out, progress=True) -> dict:
    hw.get_target(cfg["target"])
    data = C.load(cfg)
    design = _design(cfg, data)
    metrics = {
        "test_accuracy": design["pc"]["test_accuracy"],
        "bp_test_accuracy": design["bp"]["test_accuracy"],
        "test_loss": design["pc"]["test_loss"],
        "bp_test_loss": design["bp"]["test_loss"],
        "energy_per_sample_J": design["pc"]["energy_per_sample_J"],
        "bp_energy_per_sample_J": design["bp"]["energy_per_sample_J"],
        "accuracy_gap_bp_minus_pc": design["bp"]["test_accuracy"] - design["pc"]["test_accuracy"],
        "target": cfg["target"],
        "hardware_model": precision_model(cfg).summary(),
    }
    if not cfg["curves"]:
        return metrics
    ideal = {"weight_bits": 0, "activity_bits": 0, "read_noise": 0.0, "activity_noise": 0.0}
    base = _design(cfg, data, **ideal)
    curves = {"float": {a: base[a]["test_accuracy"] for a in ("pc", "bp")}}
    points = []  # (label, algorithm, energy, accuracy)
    axes = [("weight_bits", cfg["weight_bits_axis"], lambda v: {**ideal, "weight_bits": v}),
            ("activity_bits", cfg["activity_bits_axis"], lambda v: {**ideal, "activity_bits": v}),
            ("noise", cfg["noise_axis"], lambda v: {**ideal, "read_noise": v, "activity_noise": v})]
    for axis, values, make in axes:
        rows = {"values": list(values), "pc": [], "bp": [], "pc_energy_J": [], "bp_energy_J": []}
        for v in values:
            r = _design(cfg, data, **make(v))
            for alg in ("pc", "bp"):
                rows[alg].append(r[alg]["test_accuracy"])
                rows[f"{alg}_energy_J"].append(r[alg]["energy_per_sample_J"])
                points.append((f"{axis}={v}", alg, r[alg]["energy_per_sample_J"], r[alg]["test_accuracy"]))
        curves[axis] = rows
    for alg in ("pc", "bp"):
        points.append(("float", alg, base[alg]["energy_per_sample_J"], base[alg]["test_accuracy"]))
    metrics["curves"] = curves
    if cfg["figures"]:
        figs = []
        for axis, xlabel, logx in (("weight_bits", "weight bits", False), ("activity_bits", "activity bits", False),
                                   ("noise", "noise std (read, multiplicative = activity, additive)", True)):
            rows = curves[axis]
            if not rows["values"]:
                continue
            x = np.asarray(rows["values"], dtype=float)
            cv = {"PC": (x, np.asarray(rows["pc"])), "BP": (x, np.asarray(rows["bp"])),
                  "PC, float64": (x, np.full(x.size, curves["float"]["pc"])),
                  "BP, float64": (x, np.full(x.size, curves["float"]["bp"]))}
            ref = {"ls": "--", "lw": 1.2, "marker": None}
            name = f"accuracy_vs_{axis}.png"
            plot.comparison(cv, xlabel=xlabel, ylabel="test accuracy", path=out / name, logx=logx,
                            styles={"PC, float64": {"color": plot.TAB10[0], **ref},
                                    "BP, float64": {"color": plot.TAB10[1], **ref}},
                            title=f"Digits, {cfg['hidden']} hidden: accuracy vs {axis.replace('_', ' ')}")
            figs.append(name)
        fig, (ax,) = C.fig_axes()
        for alg, color in (("pc", "C0"), ("bp", "C1")):
            pts = [p for p in points if p[1] == alg and p[2] > 0]
            ax.scatter([p[2] for p in pts], [p[3] for p in pts], color=color, s=24, label=alg.upper())
            front = [pts[i] for i in _pareto([(p[2], p[3]) for p in pts])]
            ax.step([p[2] for p in front], [p[3] for p in front], where="post", color=color, lw=1.2, alpha=0.8)
        ax.set_xscale("log")
        ax.set_xlabel(f"energy per training sample on {cfg['target']} (J)")
        ax.set_ylabel("test accuracy")
        ax.set_title("Accuracy vs energy (lines: Pareto fronts)")
        ax.legend()
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        plot.caption(fig, "Each point is one network trained on the modelled substrate at one setting of the "
                          "sweeps (weight bits, activity bits, noise; 'float' = ideal arithmetic), placed at its "
                          f"energy per training sample on {cfg['target']} and its test accuracy. The step lines "
                          "are Pareto fronts: the best accuracy reachable within each energy budget. Up and to "
                          "the left is better.", width=95)
        plot.save(fig, out / "accuracy_vs_energy.png")
        figs.append("accuracy_vs_energy.png")
        metrics["figures"] = figs
    return metrics


def _pareto(points):
    from neurosim.sweep import pareto_front
    return pareto_front(points)


# ============================================================================================ hw-event-driven
EVENT_DEFAULTS = {
    **C.COMMON,
    "threshold": 0.0,            # send-on-delta threshold of value units (design point)
    "error_threshold": -1.0,     # threshold of error units (< 0: same as threshold)
    "target": "loihi",           # energy_per_sample_J of the design point on this target
    "curves": True,              # also sweep the thresholds below (figures)
    "thresholds": [0.0, 0.003, 0.01, 0.03, 0.1, 0.3],
    "fidelity_steps": 100,       # relaxation shown in relaxation_vs_threshold.png
    "fidelity_batch": 32,
}

EVENT_PARAMS = {
    **C.COMMON_PARAMS,
    "threshold": P.Float(ge=0),
    "error_threshold": P.Float(doc="< 0: same as threshold"),
    "target": C.TARGET,
    "curves": P.Bool(),
    "thresholds": P.ListOf(P.Float(ge=0)),
    "fidelity_steps": P.COUNT,
    "fidelity_batch": P.COUNT,
}


def _event_model(cfg, theta):
    et = cfg["error_threshold"]
    return hw.HardwareModel(coding="event", threshold=float(theta),
                            error_threshold=None if et < 0 else float(et), seed=cfg["seed"])


def _clock_point(cfg, data) -> dict:
    """The clock-driven reference: the same circuit trained on a clock-coded chip (every unit sends every step)
    with the same data and seed, its counts measured as the event runs' are -- in particular the weights its
    updates wrote (those they changed, :meth:`~neurosim.hardware.substrate.Substrate._n_written`), so that an
    event/clock ratio carries no write saving the coding did not cause.  (Before, the reference was the analytic
    count of one batch, which writes every plastic weight: 150.6 writes per sample at the defaults against 145.1
    measured at threshold 0, which has the clock's dynamics; now both 145.1, and the thresholds' own saving stays:
    133.5 at 0.3.)"""
    r = C.train_eval(cfg, hw.HardwareModel(seed=cfg["seed"]), "pc", data)
    pd = r["counts"].per_sample()
    return {"clock_events_per_sample": pd["events"], "clock_synaptic_ops_per_sample": pd["synaptic_ops"],
            "clock_weight_writes_per_sample": pd["weight_writes"],
            "clock_energy_per_sample_J": hw.energy(r["counts"], cfg["target"])["per_sample_J"]}


def _event_point(cfg, data, theta, clock):
    r = C.train_eval(cfg, _event_model(cfg, theta), "pc", data)
    counts = r["counts"]
    ps = counts.per_sample()
    return {"threshold": float(theta), "test_accuracy": r["test_accuracy"], "events_per_sample": ps["events"],
            "synaptic_ops_per_sample": ps["synaptic_ops"], "weight_writes_per_sample": ps["weight_writes"],
            **clock, "energy_per_sample_J": hw.energy(counts, cfg["target"])["per_sample_J"], "chip": r["chip"]}


#: rounds of timed relaxations per threshold (round-robin over the thresholds; the median is reported)
WALL_REPEATS = 15


def _fidelity(cfg, data, weights, thetas):
    """Relax one clamped test batch with fixed weights at each threshold; compare with threshold 0.

    Each threshold's relaxation is also timed: after a first (compiling) run per threshold, ``WALL_REPEATS``
    rounds over the thresholds; ``wall_s`` is the median of its rounds."""
    _, _, Xte, Yte = data
    xb, yb = Xte[:cfg["fidelity_batch"]], Yte[:cfg["fidelity_batch"]]
    chips = {}
    for th in sorted(set([0.0, *thetas])):
        c = C.chip(cfg, _event_model(cfg, th))
        c.load_weights(weights)
        chips[th] = c
    res = {th: c.run(xb, yb, steps=cfg["fidelity_steps"], mode="clamp") for th, c in chips.items()}
    wall = {th: [] for th in chips}
    for _ in range(WALL_REPEATS):
        for th, c in chips.items():
            t0 = time.perf_counter()
            c.run(xb, yb, steps=cfg["fidelity_steps"], mode="clamp")
            wall[th].append(time.perf_counter() - t0)
    ref = res[0.0]
    out = {}
    for th, r in res.items():
        err = max(float(np.max(np.abs(r.x[n] - ref.x[n]))) for n in r.populations)
        out[th] = {"state_error": err, "final_energy": float(r.total_energy[-1]),
                   "events": int(r.events.sum() + r.events_init.sum()), "energy_trace": r.total_energy.tolist(),
                   "synaptic_ops": int(r.sops.sum() + r.skip_ops.sum()), "wall_s": float(np.median(wall[th]))}
    return out, ref.dt


def _wall_fit(rows):
    """Least squares ``wall = fixed + slope * ops`` per sample over the relaxations of the sweep."""
    ops = np.array([r["relax_synaptic_ops_per_sample"] for r in rows])
    wall = np.array([r["relax_wall_ms_per_sample"] for r in rows])
    if len(rows) < 2 or np.ptp(ops) == 0:
        return None
    slope, icpt = np.polyfit(ops, wall, 1)
    return {"ns_per_synaptic_op": float(slope) * 1e6, "fixed_us_per_sample": float(icpt) * 1e3}


def run_event(cfg, out, progress=True) -> dict:
    hw.get_target(cfg["target"])
    if cfg["threshold"] < 0:
        raise ValueError(f"threshold must be >= 0, got {cfg['threshold']}")
    data = C.load(cfg)
    clock = _clock_point(cfg, data)
    point = _event_point(cfg, data, cfg["threshold"], clock)
    fid, _ = _fidelity(cfg, data, point["chip"].weights, [cfg["threshold"]])
    metrics = {k: v for k, v in point.items() if k != "chip"}
    metrics["event_reduction"] = point["clock_events_per_sample"] / max(point["events_per_sample"], 1e-300)
    metrics["relax_state_error"] = fid[float(cfg["threshold"])]["state_error"]
    metrics["target"] = cfg["target"]
    if not cfg["curves"]:
        return metrics
    thetas = [float(t) for t in cfg["thresholds"]]
    points = {float(cfg["threshold"]): point}
    for th in thetas:
        if th not in points:
            points[th] = _event_point(cfg, data, th, clock)
    if 0.0 not in points:
        points[0.0] = _event_point(cfg, data, 0.0, clock)
    # relaxation fidelity with the weights learnt clock-equivalently (threshold 0)
    fid, dt = _fidelity(cfg, data, points[0.0]["chip"].weights, thetas)
    rows = []
    for th in thetas:
        r = {k: v for k, v in points[th].items() if k != "chip"}
        f = fid[th]
        r["relax_state_error"] = f["state_error"]
        r["relax_events"] = f["events"]
        r["relax_final_energy"] = f["final_energy"]
        r["relax_wall_s"] = f["wall_s"]   # the same relaxation's wall time (compiled; median of WALL_REPEATS)
        B = cfg["fidelity_batch"]
        r["relax_events_per_sample"] = f["events"] / B
        r["relax_synaptic_ops_per_sample"] = f["synaptic_ops"] / B
        r["relax_wall_ms_per_sample"] = f["wall_s"] / B * 1e3
        rows.append(r)
    metrics["curve"] = rows
    metrics["relax_wall_fit"] = _wall_fit(rows)   # time per synaptic op and fixed cost (benchmarks/events.py)
    if cfg["figures"]:
        th = [r["threshold"] for r in rows]
        fig, (ax,) = C.fig_axes()
        ax.plot(th, [r["events_per_sample"] for r in rows], "o-", color="C0", label="events (send-on-delta)")
        ax.plot(th, [r["synaptic_ops_per_sample"] for r in rows], "s-", color="C1", label="synaptic ops (send-on-delta)")
        ax.axhline(rows[0]["clock_events_per_sample"], color="C0", ls="--", label="events, clock-driven")
        ax.axhline(rows[0]["clock_synaptic_ops_per_sample"], color="C1", ls="--", label="synaptic ops, clock-driven")
        C.symlog_x(ax, th)
        ax.set_yscale("log")
        ax.set_xlabel("delta threshold θ")
        ax.set_ylabel("per training sample")
        ax.set_title(f"Traffic vs threshold ({cfg['steps']} relaxation steps)")
        ax.legend(fontsize=8)
        ax.grid(True, alpha=0.3)
        plot.save(fig, out / "events_vs_threshold.png")
        fig, (a1, a2) = C.fig_axes(figsize=(10.5, 4.2), ncols=2)
        a1.plot(th, [r["test_accuracy"] for r in rows], "o-", color="C2")
        C.symlog_x(a1, th)
        a1.set_xlabel("delta threshold θ")
        a1.set_ylabel("test accuracy")
        a1.set_title("Accuracy vs threshold")
        a1.grid(True, alpha=0.3)
        a2.plot([r["events_per_sample"] for r in rows], [r["test_accuracy"] for r in rows], "o-", color="C3")
        for r in rows:
            a2.annotate(f"θ={r['threshold']:g}", (r["events_per_sample"], r["test_accuracy"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        a2.set_xscale("log")
        a2.set_xlabel("events per training sample")
        a2.set_ylabel("test accuracy")
        a2.set_title("Accuracy vs traffic")
        a2.grid(True, alpha=0.3)
        plot.save(fig, out / "accuracy_vs_threshold.png")
        curves = {f"θ={t:g}": (np.arange(len(fid[t]["energy_trace"])) * dt, np.asarray(fid[t]["energy_trace"]))
                  for t in sorted(fid)}
        fig, (a1, a2) = C.fig_axes(figsize=(10.5, 4.2), ncols=2)
        ms = [r["relax_wall_ms_per_sample"] for r in rows]
        ev = [r["relax_events_per_sample"] for r in rows]
        a1.plot(ev, ms, "o-", color="C0")
        # labels alternately above and below the curve (neighbouring thresholds sit close on a log axis)
        for j, r in enumerate(sorted(rows, key=lambda r: r["relax_events_per_sample"])):
            a1.annotate(f"θ={r['threshold']:g}", (r["relax_events_per_sample"], r["relax_wall_ms_per_sample"]),
                        fontsize=7, xytext=(-8, 8) if j % 2 == 0 else (-2, -14), textcoords="offset points")
        if min(ev) > 0 and max(ev) / min(ev) >= 10:
            C.log_ticks(a1, [v for v in (1, 3, 10, 30, 100, 300, 1000, 3000, 10000, 30000, 100000, 300000)
                             if min(ev) / 3 <= v <= max(ev) * 3])
            a1.set_xlim(min(ev) / 1.5, max(ev) * 2.5)
        a1.set_xlabel("events per sample (relaxation)")
        a2.plot([r["relax_synaptic_ops_per_sample"] for r in rows], ms, "o", color="C0", label="measured")
        a2.set_xlabel("synaptic ops per sample (relaxation)")
        for ax in (a1, a2):
            ax.set_ylabel("wall time (ms per sample)")
            ax.set_ylim(0, 1.15 * max(ms))
            ax.grid(True, alpha=0.3)
        fit = metrics["relax_wall_fit"]
        if fit is not None:
            xs = np.linspace(0, max(r["relax_synaptic_ops_per_sample"] for r in rows), 50)
            a2.plot(xs, (fit["fixed_us_per_sample"] * 1e-3 + fit["ns_per_synaptic_op"] * 1e-6 * xs), "--",
                    color="C1", label=f"{fit['ns_per_synaptic_op']:.2f} ns/op + {fit['fixed_us_per_sample']:.1f} µs")
            a2.legend(fontsize=8, loc="lower right")
        a1.set_title(f"Relaxation wall time vs events ({cfg['fidelity_steps']} steps, median of {WALL_REPEATS})")
        a2.set_title("... vs synaptic ops, with a least-squares line")
        plot.save(fig, out / "wall_vs_events.png")
        plot.comparison(curves, xlabel="time (units of tau_x)", ylabel="total energy F (batch mean)",
                        path=out / "relaxation_vs_threshold.png", logy=True, time_scale="auto",
                        title="A clamped test batch relaxing with fixed weights, per delta threshold")
        metrics["figures"] = ["events_vs_threshold.png", "accuracy_vs_threshold.png", "relaxation_vs_threshold.png",
                              "wall_vs_events.png"]
    return metrics


# ============================================================================================ hw-energy
ENERGY_DEFAULTS = {
    **C.COMMON,
    "coding": "clock",           # clock | event (PC counts measured with the event engine)
    "threshold": 0.0,            # delta threshold when coding = event
    "bits": 0,                   # operand width for precision-scaled energies (0: each target's reference)
    "targets": ["cmos45", "loihi", "spinnaker2", "crossbar"],
    "target": "loihi",           # energy_per_sample_J of the design point on this target
    "curves": True,              # also sweep the relaxation steps below (figures)
    "steps_axis": [2, 5, 10, 20, 50],
}

ENERGY_PARAMS = {
    **C.COMMON_PARAMS,
    "coding": P.Choice("clock", "event"),
    "threshold": P.Float(ge=0, doc="used when coding = event"),
    "bits": P.Int(ge=1, le=64, also=(0,), doc="0 = each target's reference width"),
    "targets": P.ListOf(C.TARGET),
    "target": C.TARGET,
    "curves": P.Bool(),
    "steps_axis": P.ListOf(P.Int(ge=1)),
}


def _energy_point(cfg, data, T, bp):
    C.check_choice("coding", cfg["coding"], ("clock", "event"))
    model = hw.HardwareModel(coding=cfg["coding"], threshold=cfg["threshold"] if cfg["coding"] == "event" else 0.0,
                             seed=cfg["seed"])
    r = C.train_eval(cfg, model, "pc", data, steps=int(T))
    bits = cfg["bits"] or None
    rep = hw.cost_report(r["counts"], bp["counts"], cfg["targets"], bits=bits)
    row = {"steps": int(T), "test_accuracy": r["test_accuracy"], "pc_bp_mac_ratio": rep["pc_bp_mac_ratio"],
           "targets": {n: {k: v for k, v in t.items() if k not in ("parameters", "description", "kind",
                                                                   "pc_energy_breakdown_J")}
                       for n, t in rep["targets"].items()}}
    return row, rep, r


def run_energy(cfg, out, progress=True) -> dict:
    names = list(cfg["targets"])
    for n in names + [cfg["target"]]:
        hw.get_target(n)
    if cfg["target"] not in names:
        names.append(cfg["target"])
    cfg = {**cfg, "targets": names}
    data = C.load(cfg)
    bp = C.train_eval(cfg, hw.HardwareModel(seed=cfg["seed"]), "bp", data)
    row, rep, pc = _energy_point(cfg, data, cfg["steps"], bp)
    shape = hw.NetworkShape.from_plan(pc["chip"].plan)
    T = cfg["steps"]
    closed = ((T + 1) * shape.P + T * shape.F + shape.U) / (shape.P + shape.F_bp + shape.U)
    rep["run"] = {"experiment": "hw-energy", "network": [64, *cfg["hidden"], 10], "relaxation_steps": T,
                  "coding": cfg["coding"], "batch_size": cfg["batch_size"], "epochs": cfg["epochs"],
                  "n_train_samples": int(pc["counts"].samples / max(cfg["epochs"], 1)),
                  "pc_test_accuracy": pc["test_accuracy"], "bp_test_accuracy": bp["test_accuracy"]}
    hw.write_report(rep, out)
    t = rep["targets"][cfg["target"]]
    metrics = {
        "test_accuracy": pc["test_accuracy"], "bp_test_accuracy": bp["test_accuracy"],
        "energy_per_sample_J": t["pc_energy_per_sample_J"], "bp_energy_per_sample_J": t["bp_energy_per_sample_J"],
        "pc_bp_energy_ratio": t["pc_bp_energy_ratio"], "time_to_settle_s": t["pc_time_to_settle_s"],
        "pc_bp_mac_ratio": rep["pc_bp_mac_ratio"], "pc_bp_mac_ratio_closed_form": closed,
        "target": cfg["target"], "per_target": row["targets"], "bits": cfg["bits"] or None,
        "operations_per_sample": rep["operations_per_sample"], "report": ["cost_report.json", "cost_report.md"],
    }
    if not cfg["curves"]:
        return metrics
    rows = [_energy_point(cfg, data, T_, bp)[0] for T_ in cfg["steps_axis"]]
    metrics["curve"] = rows
    if cfg["figures"]:
        steps = np.asarray([r["steps"] for r in rows], dtype=float)
        from matplotlib.lines import Line2D
        key = [Line2D([], [], color=f"C{j}", lw=6, label=n) for j, n in enumerate(names)]
        fig, (ax,) = C.fig_axes(figsize=(7.6, 4.6))
        for j, n in enumerate(names):
            color = f"C{j}"
            ax.plot(steps, [r["targets"][n]["pc_energy_per_sample_J"] for r in rows], "o-", color=color)
            ax.axhline(rows[0]["targets"][n]["bp_energy_per_sample_J"], color=color, ls="--", lw=1.0)
        C.log_ticks(ax, steps)
        ax.set_yscale("log")
        ax.set_xlabel("relaxation steps T")
        ax.set_ylabel("energy per training sample (J)")
        ax.set_title(f"Energy per training sample ({cfg['coding']}-driven PC vs BP)")
        ax.legend(handles=key + [Line2D([], [], color="0.3", marker="o", label="PC (vs T)"),
                                 Line2D([], [], color="0.3", ls="--", label="BP (no relaxation)")],
                  fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
        ax.grid(True, alpha=0.3, which="both")
        fig.tight_layout()
        plot.save(fig, out / "energy_vs_steps.png")
        curves = {n: (steps, np.asarray([r["targets"][n]["pc_bp_energy_ratio"] for r in rows])) for n in names}
        curves["MACs"] = (steps, np.asarray([r["pc_bp_mac_ratio"] for r in rows]))
        plot.comparison(curves, xlabel="relaxation steps T", ylabel="PC / BP cost per training sample",
                        path=out / "ratio_vs_steps.png", logx=True, logy=True,
                        styles={"MACs": {"color": "black", "ls": ":", "marker": "x", "ms": 6, "zorder": 5}},
                        title="PC/BP cost ratio (energy on each target, and MAC count)")
        fig, (ax,) = C.fig_axes(figsize=(7.6, 4.6))
        for j, n in enumerate(names):
            e_pc = [r["targets"][n]["pc_energy_per_sample_J"] for r in rows]
            ax.plot(e_pc, [r["test_accuracy"] for r in rows], "o-", color=f"C{j}")
            ax.scatter([rows[0]["targets"][n]["bp_energy_per_sample_J"]], [bp["test_accuracy"]], marker="*", s=110,
                       color=f"C{j}", zorder=3)
            for k in (0, len(rows) - 1) if len(rows) > 1 else (0,):
                ax.annotate(f"T={rows[k]['steps']}", (e_pc[k], rows[k]["test_accuracy"]), fontsize=7,
                            xytext=(4, -10 if k == 0 else 4), textcoords="offset points", color=f"C{j}")
        ax.set_xscale("log")
        ax.set_xlabel("energy per training sample (J)")
        ax.set_ylabel("test accuracy")
        ax.set_title("What accuracy costs: PC (T relaxation steps) vs BP, per chip target")
        ax.legend(handles=key + [Line2D([], [], color="0.3", marker="o", label="PC, one point per T"),
                                 Line2D([], [], color="0.3", marker="*", ms=10, ls="none", label="BP")],
                  fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
        ax.grid(True, alpha=0.3, which="both")
        fig.tight_layout()
        plot.caption(fig, "Each colour is one chip target. Circles: predictive coding trained with T relaxation "
                          f"steps per sample (T = {', '.join(str(r['steps']) for r in rows)}, left to right): "
                          "every step costs synaptic operations, so energy grows with T. Stars: backprop on the same network and target. The accuracy of a "
                          "network does not depend on the target (the cost model prices the same operations), "
                          "so the targets are shifted copies along the energy axis. Up and to the left is "
                          "better.", width=100)
        plot.save(fig, out / "accuracy_vs_energy.png")
        metrics["figures"] = ["energy_vs_steps.png", "ratio_vs_steps.png", "accuracy_vs_energy.png"]
    return metrics


# ============================================================================================ hw-mapping
MAPPING_DEFAULTS = {
    "backend": "numba",          # unused: the mapping counts operations and runs no simulation
    "hidden": [128],             # digits network 64-H-10
    "phi": "tanh",
    "channels": [8, 16],         # CNN on 1x8x8 digits: conv/pool blocks, then a dense output of 10
    "targets": ["loihi", "loihi2", "spinnaker2", "crossbar"],
    "steps": 20,                 # relaxation steps T per sample
    "activity": 1.0,             # fraction of units sending per step (1 = clock-driven)
    "figures": True,
}

MAPPING_PARAMS = {
    "backend": P.Choice("numba", "reference", "brian2", doc="unused: the mapping runs no simulation"),
    "hidden": P.SIZES,
    "phi": P.PHI,
    "channels": P.ListOf(P.Int(ge=1), max_len=3, doc="each block halves the 8x8 image"),
    "targets": P.ListOf(C.TARGET),
    "steps": P.COUNT,
    "activity": P.Float(ge=0, le=1),
    "figures": P.Bool(),
}


def evidence_counts(names) -> dict:
    """Per target: how many of its constants (energies, latencies; and separately its resources) carry each
    evidence level."""
    out = {}
    for n in names:
        t = hw.get_target(n)
        ops, res = {}, {}
        for key, (_src, ev) in t.sources.items():
            d = res if key.startswith(("resources.", "feedback")) else ops
            d[ev] = d.get(ev, 0) + 1
        out[t.name] = {"per_operation": ops, "resources": res}
    return out


def run_mapping(cfg, out, progress=True) -> dict:
    import neurosim as ns
    import neurosim.graph as ng
    for n in cfg["targets"]:
        hw.get_target(n)
    nets = {"digits": ns.hierarchy([64, *cfg["hidden"], 10], phi=cfg["phi"], name="digits-pcn"),
            "cnn": ng.cnn((1, 8, 8), channels=tuple(cfg["channels"]), n_out=10, phi="relu", name="cnn-digits")}
    maps, rows = {}, []
    for net, circuit in nets.items():
        maps[net] = {}
        for n in cfg["targets"]:
            try:
                m = hw.map_circuit(circuit, n, steps=cfg["steps"], activity=cfg["activity"])
            except ns.UnsupportedError as e:   # one chip that cannot hold the circuit is a result, not a failure
                maps[net][n] = {"fits": False, "reason": str(e)}
                rows.append((net, n, None))
                continue
            maps[net][n] = dict(m.to_dict(), fits=True)
            rows.append((net, n, m))
    metrics = {"mapping": maps, "steps": cfg["steps"], "activity": cfg["activity"],
               "evidence": evidence_counts(sorted(hw.targets())), "report": "report.md"}
    lines = ["# Mapping predictive-coding circuits onto chips", "",
             f"T = {cfg['steps']} relaxation steps per sample, activity {cfg['activity']:g} "
             "(1 = clock-driven: every unit sends every step), batch size 1. Energy and latency per sample; "
             "training = relaxation + plasticity writes (and the second copy of W^T where the chip stores it).", "",
             "| circuit | target | cores/tiles | chips | routed messages per step (cores: cross-core events; crossbar: "
             "values to and from tiles) | energy per inference (J) | "
             "energy per training sample (J) | latency per inference (s) | latency per training sample (s) | "
             "feedback |", "|---|---|---|---|---|---|---|---|---|---|"]
    for net, n, m in rows:
        if m is None:
            lines.append(f"| {net} | {n} | does not fit | | | | | | | |")
            continue
        lines.append(f"| {net} | {n} | {m.cores} | {m.chips} | {m.events_per_step:g} | {m.energy_inference_J:.3g} | "
                     f"{m.energy_training_J:.3g} | {m.latency_inference_s:.3g} | {m.latency_training_s:.3g} | "
                     f"{m.feedback} |")
    lines += ["", "## Placements", ""]
    for net, n, m in rows:
        lines += [f"### {net} on {n}", "", "```", maps[net][n]["reason"] if m is None else m.describe(), "```", ""]
    lines += ["## Constants by evidence level", "", "| target | per-operation energies and latencies | resources |",
              "|---|---|---|"]
    for n, ev in metrics["evidence"].items():
        fmt = lambda d: ", ".join(f"{k} {v}" for k, v in sorted(d.items())) or "-"   # noqa: E731
        lines.append(f"| {n} | {fmt(ev['per_operation'])} | {fmt(ev['resources'])} |")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    if cfg["figures"]:
        fig, axes = C.fig_axes(figsize=(13.0, 4.2), ncols=3)
        names = list(cfg["targets"])
        x = np.arange(len(names))
        for ax, key, label, log in ((axes[0], "cores", "cores (crossbar: tiles)", False),
                                    (axes[1], "energy_training_J", "energy per training sample (J)", True),
                                    (axes[2], "latency_inference_s", "latency per inference (s)", True)):
            for j, net in enumerate(nets):
                ax.bar(x + (j - 0.5) * 0.38, [maps[net][n][key] if maps[net][n]["fits"] else np.nan for n in names],
                       width=0.38, label=net, color=f"C{j}")
            ax.set_xticks(x)
            ax.set_xticklabels([n + "".join(f"\n({net} does not fit)" for net in nets if not maps[net][n]["fits"])
                                for n in names], fontsize=8)
            ax.set_xlabel("target")
            ax.set_ylabel(label)
            if log:
                ax.set_yscale("log")
            ax.grid(True, axis="y", alpha=0.3)
        axes[0].legend(fontsize=8)
        axes[1].set_title(f"Digits 64-{'-'.join(map(str, cfg['hidden']))}-10 and a CNN mapped on each chip (T = {cfg['steps']})")
        fig.tight_layout()
        plot.save(fig, out / "mapping.png")
        metrics["figures"] = ["mapping.png"]
    return metrics


EXPERIMENTS = [
    Experiment("hw-precision",
               "digits accuracy of PC and BP vs weight/activity bits and noise on a modelled substrate",
               PRECISION_DEFAULTS, run_precision,
               doc="Train the 64-H-10 PCN (and BP on the same network) on a substrate with quantised weights "
                   "(stochastic rounding, limited range), quantised activities, noise, mismatch, faults, drift "
                   "and converters. The scalar parameters describe one design point (reported as test_accuracy, "
                   "bp_test_accuracy, energy_per_sample_J); with curves=true the experiment also sweeps weight "
                   "bits, activity bits and noise for both algorithms (one axis at a time, the other bits and noise off). "
                   "Bits = 0 means float64. weight_bound = 0.5 is about the range float training reaches; with "
                   "bound 1 the 4-bit step (1/7) is as large as the weights and the stochastic-rounding noise "
                   "random-walks them. Energies use the target's precision scaling (multipliers ~ product of "
                   "operand widths). Figures: accuracy_vs_weight_bits.png, accuracy_vs_activity_bits.png, "
                   "accuracy_vs_noise.png, accuracy_vs_energy.png.", PARAMS=PRECISION_PARAMS),
    Experiment("hw-event-driven", "events, synaptic ops and accuracy of event-driven PC vs the delta threshold",
               EVENT_DEFAULTS, run_event,
               doc="Train the PCN with send-on-delta units (an event only when an output moved by more than the "
                   "threshold since its last event; the residue is carried) and count every event and synaptic "
                   "op. Threshold 0 reproduces the clock-driven dynamics. Figures: events_vs_threshold.png "
                   "(with the clock-driven counts), accuracy_vs_threshold.png, relaxation_vs_threshold.png, "
                   "wall_vs_events.png (the fixed-weight relaxation's wall time per sample against its events and "
                   "synaptic ops; fit in relax_wall_fit).",
               PARAMS=EVENT_PARAMS),
    Experiment("hw-energy", "energy per training sample on CMOS/Loihi/SpiNNaker2/crossbar, PC vs BP, vs steps T",
               ENERGY_DEFAULTS, run_energy,
               doc="Count the operations of PC training (T relaxation steps) and of BP on the same network and "
                   "price them with per-operation tables of each target (neurosim/hardware/targets/*.json, every "
                   "value with its source). Writes cost_report.json/.md of the design point and, with curves, "
                   "energy_vs_steps.png, ratio_vs_steps.png, accuracy_vs_energy.png.", PARAMS=ENERGY_PARAMS),
    Experiment("hw-mapping", "the digits network and a CNN mapped onto Loihi, Loihi 2, SpiNNaker 2 and a crossbar",
               MAPPING_DEFAULTS, run_mapping,
               doc="Place the 64-H-10 digits network and a CNN (conv/pool blocks, dense output) on the cores or "
                   "crossbar tiles each target's file declares (neurosim.hardware.map_circuit): which population "
                   "goes to which cores, chips, projections crossing cores, routed events per relaxation step, "
                   "and energy and latency per inference and per training sample (clock-driven, or scaled by "
                   "activity). Writes report.md (tables, placements, the count of every target's constants by "
                   "evidence level) and mapping.png. No training: it runs in seconds.", PARAMS=MAPPING_PARAMS),
]
