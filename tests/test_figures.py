"""Every figure an experiment writes is one a person could put on a slide.

Each registered experiment runs at its smallest sensible size through the public runner
(:func:`neurosim.experiment.run_experiment`) into ``tmp_path``; every figure it saves is captured (by
wrapping :func:`neurosim.plot.save`) and inspected as a matplotlib object, not as pixels:

* every axes has an x and a y label (its own, or that of an axes it shares the axis with), or is an image
  axes marked with :func:`neurosim.plot.mark_image`; colour bars are labelled;
* every axes shows data (lines, collections, images or patches) -- no empty "no data" panel;
* a time axis names its unit ("time (units of tau_x)", "time (ms)");
* no legend inside an axes covers a plotted point, line, bar or text, and no legend outside its axes
  overlaps another axes;
* log-axis tick labels are plain numbers between 1e-3 and 1e4 (``0.05``, not ``5 x 10^-2``) and the tick
  labels of one axis do not overlap;
* a layer of at most 10 units is shown whole (no "first 8 of 10 units").

The plotting functions are also fed synthetic data of the shapes that trigger each rule.
"""
from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.patches import Rectangle

from neurosim import registry
from neurosim import plot
from neurosim.experiment import run_experiment

HW = {"n_train": 160, "n_test": 100, "epochs": 1, "hidden": [16], "steps": 8}

#: the smallest sensible configuration of every experiment (seconds each once numba kernels are cached)
TINY = {
    "bear": dict(lr_sweep=[0.05, 0.1], iterations=6, relax_steps=64),
    "example-122": dict(iterations=4, relax_steps=64),
    "target-alignment": dict(width=8, depths=[1, 3], n_seeds=2, relax_steps=64, activations=["tanh", "linear"],
                             activation_depths=[1, 2], activation_relax_steps=32),
    "prospective-index": dict(width=8, n_layers=3, n_seeds=2, relax_steps=50, converge_steps=5),
    "fear-conditioning": dict(n_seeds=2, perception_lrs=[0.001], L_lrs=[1.0, 0.001], N_lrs=[1.0]),
    "sensorimotor": dict(n_seeds=1, train_blocks=2, post_blocks=1, init_stds=[0.1], lrs=[0.001], memory_lrs=[0.1]),
    "reversal-learning": dict(n_seeds=4, trials=64, analyse_after=16),
    "few-data": dict(n_seeds=1, examples_per_class=[3, 5], epochs=2, lrs=[0.4], relax_steps=16),
    "deep-small-data": dict(n_seeds=1, depths=[1, 3], examples_per_class=3, epochs=2, lrs=[0.3], relax_steps=16),
    "continual": dict(n_seeds=1, cycles=1, epochs_per_task=1, lrs=[0.4], relax_steps=8, hidden=[8]),
    "concept-drift": dict(n_seeds=1, iterations=12, drift_every=4, eval_every=4, pretrain_epochs=1, lrs=[0.4],
                          examples_per_class=2, relax_steps=8, hidden=[8]),
    "online-learning": dict(n_seeds=1, batch_sizes=[1, 4], lrs=[0.2, 0.4], iterations=2, batches_per_iteration=3,
                            relax_steps=8, hidden=[8]),
    "prospective-all": dict(experiments=["example-122"]),
    "digits": dict(epochs=1, hidden=[16], relax_steps_plot=60),
    "hw-precision": {**HW, "weight_bits_axis": [2, 8], "activity_bits_axis": [2, 8], "noise_axis": [0.02, 0.6]},
    "hw-event-driven": {**HW, "thresholds": [0.0, 0.01, 0.1], "fidelity_batch": 16, "fidelity_steps": 40},
    "hw-energy": {**HW, "steps_axis": [2, 8]},
    "hw-mapping": dict(),
    "hw-design-space": dict(scheduler="inprocess", backend="reference", n_train=64, n_test=32, epochs=1, hidden=[4],
                            weight_bits=[8], steps=[3], thresholds=[0.05], targets=["loihi"]),
    "fpa-exactness": dict(hidden=[8, 8, 8], pretrain_epochs=1, batch_size=16, n_max=20, etas=[0.5, 1.0]),
    "zil-exactness": dict(hidden=[8, 8], n_train_steps=5, batch_size=16),
    "linear-equilibrium": dict(hidden=[8, 8], n_train_steps=5, widths=[4, 16], depths=[1, 4], n_seeds=1,
                               mupc_width=16),
    "mupc-depth": dict(depths=[4, 8], width=16, epochs=1, sp_lrs=[0.1], bp=True),
    "saddles": dict(depths=[3], max_steps_pc=1000, max_steps_bp=3000, hessian_hidden=[1, 2]),
    "graph-exactness": dict(hidden=8, train_steps=2, fpa_max_steps=10),
    "cnn-digits": dict(channels=[4, 8], epochs=1),
    "rnn-sequences": dict(epochs=1, hidden=8, n_train=200, n_test=100),
    "lstm-sequences": dict(epochs=1, hidden=8, n_train=200, n_test=100),
    "pc-recurrent-study": dict(kind="rnn", hidden=8, epochs=1, steps_list=[1, 5], dt_list=[0.1, 0.2],
                               output_precision_list=[1.0], dt_steps=5, depth_list=[2], depth_relax_steps=5,
                               variants=["pc"], n_probe=16),
    "brian2-bear": dict(iterations=3, steps=40),
    "brian2-digits": dict(epochs=1, hidden=16, n_test=50, infer_steps=[10, 20]),
    "brian2-digits-learn": dict(n_train=64, n_test=30, hidden=4, epochs=1, steps=2, infer_steps=2, chunk=30,
                                study_steps=[2], study_rates=[1000.0], study_epochs=1),
}
#: brian2-bear once more on the spiking backend: raster, events per channel, time in ms (brian2-digits makes
#: the same spiking figures with the same helpers, at several times the cost of building brian2 networks)
SPIKING = {"brian2-bear": dict(TINY["brian2-bear"], iterations=1, steps=20, backend="brian2", mode="spiking")}


# --------------------------------------------------------------------------------------------- checks
def _is_colorbar(ax):
    return ax.get_label() == "<colorbar>" or getattr(ax, "_colorbar", None) is not None


def _label(ax, which):
    """The axis label of ``ax`` or of an axes sharing that axis with it (shared axes label one panel)."""
    own = ax.get_xlabel() if which == "x" else ax.get_ylabel()
    if own.strip():
        return own
    group = ax.get_shared_x_axes() if which == "x" else ax.get_shared_y_axes()
    for sib in group.get_siblings(ax):
        text = sib.get_xlabel() if which == "x" else sib.get_ylabel()
        if text.strip():
            return text
    return ""


def _points(ax):
    """Display coordinates of line vertices and midpoints, scatter points and error bars in ``ax``."""
    out = []
    for line in ax.get_lines():
        if not line.get_visible():
            continue
        xy = line.get_transform().transform(np.asarray(line.get_xydata(), dtype=float))
        xy = xy[np.all(np.isfinite(xy), axis=1)]
        out.append(xy)
        if line.get_linestyle() not in ("None", "", " ") and len(xy) > 1:
            for f in (0.25, 0.5, 0.75):
                out.append(xy[:-1] + f * (xy[1:] - xy[:-1]))
    for c in ax.collections:
        if isinstance(c, PathCollection) and len(c.get_offsets()):
            out.append(c.get_offset_transform().transform(np.asarray(c.get_offsets(), dtype=float)))
        elif isinstance(c, LineCollection):
            for seg in c.get_segments():
                out.append(c.get_transform().transform(np.asarray(seg, dtype=float)))
    pts = np.concatenate(out) if out else np.empty((0, 2))
    b = ax.bbox
    return pts[(pts[:, 0] >= b.x0) & (pts[:, 0] <= b.x1) & (pts[:, 1] >= b.y0) & (pts[:, 1] <= b.y1)]


def _overlap(a, b, margin=0.0):
    return a.x0 + margin < b.x1 and b.x0 + margin < a.x1 and a.y0 + margin < b.y1 and b.y0 + margin < a.y1


def figure_problems(fig, name="figure"):
    """Every rule a figure breaks, as readable strings (empty list: a slide-ready figure)."""
    problems = []
    if not hasattr(fig.canvas, "get_renderer"):
        FigureCanvasAgg(fig)
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    axes = [ax for ax in fig.axes if ax.get_visible()]
    plots = [ax for ax in axes if not _is_colorbar(ax)]
    if not plots:
        problems.append(f"{name}: no axes")
    for k, ax in enumerate(plots):
        where = f"{name} axes {k} ({ax.get_title() or ax.get_ylabel() or 'untitled'!r})"
        has_data = bool(ax.get_lines() or ax.collections or ax.get_images() or ax.patches)
        if not has_data:
            problems.append(f"{where}: shows no data")
        texts = [t.get_text() for t in ax.texts]
        if any("no data" in t.lower() for t in texts):
            problems.append(f"{where}: has a 'no data' panel")
        if ax.get_gid() == getattr(plot, "IMAGE_GID", "neurosim:image"):
            if not ax.get_images():
                problems.append(f"{where}: marked as an image axes but shows no image")
        else:
            for which in ("x", "y"):
                if not _label(ax, which).strip():
                    problems.append(f"{where}: no {which} label")
        for which in ("x", "y"):
            label = _label(ax, which)
            if re.search(r"\btime\b", label, re.I) and not re.search(r"\(.+\)", label):
                problems.append(f"{where}: time axis {label!r} does not name its unit")
        for t in texts:
            m = re.search(r"first (\d+) of (\d+)", t)
            if m and int(m.group(2)) <= 10:
                problems.append(f"{where}: a layer of {m.group(2)} units is not shown whole ({t!r})")
        # legends
        leg = ax.get_legend()
        if leg is not None and leg.get_visible():
            box = leg.get_window_extent(renderer)
            cx, cy = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
            if ax.bbox.contains(cx, cy):
                pts = _points(ax)
                inner = box.padded(-1.0)
                hit = ((pts[:, 0] > inner.x0) & (pts[:, 0] < inner.x1) & (pts[:, 1] > inner.y0)
                       & (pts[:, 1] < inner.y1)) if len(pts) else np.zeros(0, bool)
                bars = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_transform() == ax.transData
                        and _overlap(p.get_window_extent(renderer), inner)]
                if hit.any() or bars:
                    problems.append(f"{where}: the legend covers {int(hit.sum())} plotted points and "
                                    f"{len(bars)} bars")
            else:
                for other in axes:
                    if other is not ax and _overlap(box, other.bbox, margin=1.0):
                        problems.append(f"{where}: the legend outside the axes overlaps another axes")
                        break
        # tick labels
        for which, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            ticks = [t for t in axis.get_ticklabels(which="both") if t.get_visible() and t.get_text()]
            if axis.get_scale() in ("log", "symlog"):
                lo, hi = sorted(axis.get_view_interval())
                for t in ticks:
                    v = t.get_position()[0 if which == "x" else 1]
                    if lo <= v <= hi and 1e-3 <= abs(v) < 1e4 and ("10^" in t.get_text() or "times" in t.get_text()):
                        problems.append(f"{where}: log tick {t.get_text()!r} of {v:g} is not a plain number")
                        break
            shown = [t for t in ticks if np.isfinite(t.get_position()).all()]
            lo, hi = sorted(axis.get_view_interval())
            shown = [t for t in shown if lo <= t.get_position()[0 if which == "x" else 1] <= hi]
            boxes = sorted((t.get_window_extent(renderer) for t in shown), key=lambda b: (b.x0, b.y0))
            for a, b in zip(boxes[:-1], boxes[1:]):
                if _overlap(a, b, margin=0.5):
                    problems.append(f"{where}: {which} tick labels overlap")
                    break
    for ax in axes:
        if _is_colorbar(ax) and not (ax.get_ylabel().strip() or ax.get_xlabel().strip()):
            problems.append(f"{name}: a colour bar has no label")
    return problems


@pytest.fixture
def captured(monkeypatch):
    """Every figure passed to :func:`neurosim.plot.save` during the test, with its file name."""
    figs = []
    original = plot.save

    def save(fig, path, **kwargs):
        out = original(fig, path, **kwargs)
        figs.append((str(path).rsplit("/", 1)[-1], fig))
        return out

    monkeypatch.setattr(plot, "save", save)
    return figs


def _check_experiment(name, overrides, out, captured):
    m = run_experiment(registry.get(name), overrides, out=out, progress=False)
    assert captured, f"{name} saved no figure"
    problems = [p for fname, fig in captured for p in figure_problems(fig, f"{name}/{fname}")]
    assert not problems, "\n".join(problems)
    # every figure the metrics list was written (and captured)
    listed = set(m.get("figures", []))
    assert listed <= {f for f, _ in captured}, listed - {f for f, _ in captured}


# ----------------------------------------------------------------------------------------- experiments
def test_every_experiment_has_a_tiny_configuration():
    assert set(TINY) == set(registry.names())


@pytest.mark.parametrize("name", sorted(TINY))
def test_experiment_figures_are_slide_ready(name, tmp_path, captured):
    if name.startswith("brian2"):
        pytest.importorskip("brian2")
    _check_experiment(name, TINY[name], tmp_path, captured)


@pytest.mark.parametrize("name", sorted(SPIKING))
def test_spiking_figures_are_slide_ready(name, tmp_path, captured):
    pytest.importorskip("brian2")
    _check_experiment(name, SPIKING[name], tmp_path, captured)
    names = {f for f, _ in captured}
    assert {"raster.png", "events.png", "values_vs_rate_model.png"} <= names
    raster = dict(captured)["raster.png"]
    assert any("ms" in ax.get_xlabel() for ax in raster.axes)


# ----------------------------------------------------------------------------- plot functions, synthetic
def _relaxation(n=101, dt=0.1, tau=0.3):
    t = np.arange(n) * dt
    return t, np.column_stack([0.2 * (1 - np.exp(-t / tau)), 1.0 * np.exp(-t / tau) + 0.1])


def test_relaxation_with_a_fast_transient_gets_a_time_axis_that_shows_it():
    t, e = _relaxation()
    fig = plot.energy(e, dt=0.1, labels=["h1", "output"])
    ax = fig.axes[0]
    assert ax.get_xscale() == "symlog"
    assert ax.get_xlabel() == "time (units of tau_x), log scale above 0.1"   # the label says the axis is not linear
    # the transient (energy changing by more than 5% of its total change) covers most of the axis
    frac_t = ax.transScale.transform(np.column_stack([t, np.ones_like(t)]))[:, 0]
    frac = (frac_t - frac_t[0]) / (frac_t[-1] - frac_t[0])
    total = e.sum(1)
    moving = np.nonzero(np.abs(total - total[-1]) > 0.05 * np.abs(total - total[-1]).max())[0][-1]
    assert frac[moving] > 0.5
    assert not figure_problems(fig)
    # a slow relaxation stays on a linear axis, and the caller can choose
    slow_t, slow = _relaxation(tau=5.0)
    assert plot.energy(slow, dt=0.1).axes[0].get_xscale() == "linear"
    assert plot.energy(e, dt=0.1, time_scale="linear").axes[0].get_xscale() == "linear"
    with pytest.raises(ValueError, match="time_scale"):
        plot.energy(e, dt=0.1, time_scale="logarithmic")


def test_dynamics_show_small_layers_whole_and_have_no_empty_panels():
    rng = np.random.default_rng(0)
    t, _ = _relaxation()
    values = {"h1": rng.normal(size=(t.size, 16)), "output": rng.normal(size=(t.size, 10))}
    errors = {"h1": rng.normal(size=(t.size, 16)), "output": rng.normal(size=(t.size, 10)),
              "extra": rng.normal(size=(t.size, 3))}
    fig = plot.dynamics(values, errors, dt=0.1)
    by = {ax.get_ylabel(): ax for ax in fig.axes}
    assert len(by["x_output"].get_lines()) == 10          # all 10 output units
    assert len(by["x_h1"].get_lines()) == 10              # first 10 of 16 ...
    assert any("first 10 of 16" in txt.get_text() for txt in by["x_h1"].texts)   # ... and it says so
    assert "x_extra" not in by and "eps_extra" in by     # no empty panel
    assert not figure_problems(fig)


def test_weights_of_image_data_as_receptive_field_tiles():
    rng = np.random.default_rng(1)
    W1 = rng.normal(size=(12, 64))
    fig = plot.weights({"W1": W1, "W1.b": rng.normal(size=12), "W2": rng.normal(size=(10, 12))},
                       image_shape=(8, 8))
    tiles = [ax for ax in fig.axes if ax.get_gid() == plot.IMAGE_GID]
    assert len(tiles) == 1
    mosaic = np.ma.filled(tiles[0].get_images()[0].get_array().astype(float), np.nan)
    # unit k's 8x8 receptive field sits in the mosaic, separated by one-pixel gaps
    cols = (mosaic.shape[1] + 1) // 9
    for k in (0, 5, 11):
        r, c = divmod(k, cols)
        np.testing.assert_allclose(mosaic[9 * r:9 * r + 8, 9 * c:9 * c + 8], W1[k].reshape(8, 8))
    assert np.isnan(mosaic[8, :]).all()                  # the gap row
    assert not figure_problems(fig)
    with pytest.raises(ValueError, match="64 columns but image_shape"):
        plot.receptive_fields(W1, (7, 7))


def test_log_ticks_are_plain_numbers():
    x = np.array([0.02, 0.05, 0.1, 0.2, 0.6])
    fig = plot.comparison({"PC": (x, 1 - x), "BP": (x, 1 - 1.1 * x)}, "noise std", "test accuracy", logx=True)
    plot.tidy(fig)
    fig.draw_without_rendering()
    labels = [t.get_text() for t in fig.axes[0].xaxis.get_ticklabels(which="both") if t.get_text()]
    assert "0.1" in labels and "0.02" in labels
    assert not any("10^" in lab for lab in labels)
    assert not figure_problems(fig)
    assert plot._format_number(1e-6) == "$10^{-6}$"
    assert plot._format_number(2.5e-9) == "$2.5\\times10^{-9}$"


def test_a_legend_that_would_cover_lines_is_moved():
    # lines fill every corner of the axes: no inner position is free, so the legend goes outside
    x = np.linspace(0, 1, 50)
    curves = {f"curve {k}": (x, np.full_like(x, k / 7)) for k in range(8)}
    fig = plot.comparison(curves, "x (a.u.)", "y (a.u.)")
    assert not figure_problems(fig)
    leg = fig.axes[0].get_legend()
    fig.draw_without_rendering()
    box = leg.get_window_extent(fig.canvas.get_renderer())
    assert box.x0 >= fig.axes[0].bbox.x1                # outside, to the right


def test_the_checker_catches_what_it_guards():
    """The rules above are not vacuous: a figure breaking each one is reported."""
    from matplotlib.figure import Figure
    fig = Figure()
    a, b, c = fig.subplots(1, 3)
    a.plot([0, 1], [0, 1])                              # no labels
    b.text(0.5, 0.5, "no data")                         # empty panel
    b.set_xlabel("time")
    b.set_ylabel("x")
    x = np.linspace(0, 1, 30)
    c.plot(x, x, label="a line under the legend")
    c.legend(loc="center")
    c.set_xlabel("step")
    c.set_ylabel("y")
    text = "\n".join(figure_problems(fig))
    for expected in ("no x label", "no y label", "shows no data", "'no data' panel", "does not name its unit",
                     "legend covers"):
        assert expected in text, text


# ------------------------------------------------------------------------------------------- examples
EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_figures_are_slide_ready(script, tmp_path, captured, monkeypatch):
    """The scripts in examples/ run in this process (so their figures can be inspected)."""
    argv = [str(script), "--out", str(tmp_path)] + (["--epochs", "1"] if script.stem == "train_digits" else [])
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(script), run_name="__main__")
    assert captured, f"{script.name} saved no figure"
    problems = [p for fname, fig in captured for p in figure_problems(fig, f"{script.stem}/{fname}")]
    assert not problems, "\n".join(problems)
