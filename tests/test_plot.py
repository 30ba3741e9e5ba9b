"""Tests for neurosim.plot (headless matplotlib figures)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from neurosim import plot

REPO_ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _assert_png(path):
    path = Path(path)
    assert path.is_file()
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 2000


def _data_axes(fig):
    """Axes that are not colour bars."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def _images(fig):
    return [im for ax in fig.axes for im in ax.get_images()]


# --------------------------------------------------------------------------- #
# import hygiene / global state
# --------------------------------------------------------------------------- #
def test_import_does_not_load_pyplot():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    env.pop("MPLBACKEND", None)
    code = (
        "import neurosim.plot, sys; "
        "print('matplotlib.pyplot' in sys.modules)"
    )
    res = subprocess.run([sys.executable, "-c", code], env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


def test_plotting_leaves_rcparams_untouched(tmp_path):
    before = dict(matplotlib.rcParams)
    plot.energy(np.ones((5, 2)))
    plot.dynamics({"a": np.zeros((5, 2))}, {"a": np.zeros((5, 2))})
    plot.weights({"W": np.eye(3)})
    plot.learning_curves({"loss": [1.0, 0.5]})
    plot.raster([0.1], [0])
    plot.comparison({"pc": ([1, 2], [3, 4])}, "x", "y")
    assert dict(matplotlib.rcParams) == before


# --------------------------------------------------------------------------- #
# save
# --------------------------------------------------------------------------- #
def test_save_creates_parent_dirs_and_writes_png(tmp_path):
    fig = plot.energy(np.linspace(1, 2, 10))
    target = tmp_path / "a" / "b" / "energy.png"
    out = plot.save(fig, target)
    assert Path(out) == target
    _assert_png(target)


def test_save_refuses_a_suffix_that_is_not_png(tmp_path):
    fig = plot.raster([1.0, 2.0], [0, 1])
    for name in ("e.xyz", "e.pdf"):
        with pytest.raises(ValueError, match=r"neurosim writes PNG figures; give the path a '\.png' suffix"):
            plot.save(fig, tmp_path / name)
        assert not (tmp_path / name).exists()
    _assert_png(plot.save(fig, tmp_path / "E.PNG"))
    _assert_png(plot.save(fig, tmp_path / "no_suffix"))


def test_weights_image_shape_that_matches_no_matrix_is_refused():
    """image_shape (7, 7) for 64 inputs drew plain matrices without a word; it names the shapes now."""
    w = {"W1": np.ones((16, 64)), "W2": np.ones((3, 16))}
    with pytest.raises(ValueError, match=r"image_shape \(7, 7\) has 49 pixels, but no weight matrix has 49 "
                                         r"columns \(n_pre\): W1 \(16, 64\), W2 \(3, 16\)"):
        plot.weights(w, image_shape=(7, 7))
    plot.weights(w, image_shape=(8, 8))


def test_save_accepts_str_path(tmp_path):
    fig = plot.raster([1.0, 2.0], [0, 1])
    target = str(tmp_path / "sub" / "raster.png")
    plot.save(fig, target)
    _assert_png(target)


# --------------------------------------------------------------------------- #
# energy
# --------------------------------------------------------------------------- #
def test_energy_array_lines_match_columns_and_total():
    rng = np.random.default_rng(0)
    e = rng.uniform(1.0, 2.0, size=(20, 3))
    fig = plot.energy(e)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert len(lines) == 4
    for k in range(3):
        np.testing.assert_allclose(lines[k].get_ydata(), e[:, k])
        np.testing.assert_allclose(lines[k].get_xdata(), np.arange(20))
    np.testing.assert_allclose(lines[3].get_ydata(), e.sum(axis=1))
    assert matplotlib.colors.same_color(lines[3].get_color(), "black")
    assert lines[3].get_linewidth() > lines[0].get_linewidth()
    # consistent tab10 colours per layer
    for k in range(3):
        assert matplotlib.colors.same_color(lines[k].get_color(), plot.TAB10[k])
    assert ax.get_xlabel() == "step"
    assert ax.get_ylabel() == "energy F"
    assert ax.get_title() == "Energy during relaxation"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "layer 0", "layer 1", "layer 2", "total"]


def test_energy_total_false_and_single_layer():
    e = np.ones((10, 3))
    assert len(plot.energy(e, total=False).axes[0].get_lines()) == 3
    fig = plot.energy(np.linspace(1.0, 2.0, 10))  # 1-D -> one layer, no total
    lines = fig.axes[0].get_lines()
    assert len(lines) == 1
    np.testing.assert_allclose(lines[0].get_ydata(), np.linspace(1.0, 2.0, 10))


def test_energy_mapping_labels_and_time_axis():
    e = {"input": np.full(8, 3.0), "hidden": np.full(8, 2.0), "output": np.full(8, 1.0)}
    t = np.linspace(0.0, 0.7, 8)
    fig = plot.energy(e, t=t)
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert len(lines) == 4
    np.testing.assert_allclose(lines[1].get_ydata(), e["hidden"])
    np.testing.assert_allclose(lines[0].get_xdata(), t)
    assert ax.get_xlabel() == "time (units of tau_x)"
    assert plot.energy(e, t=t, time_unit="ms").axes[0].get_xlabel() == "time (ms)"
    legend = [txt.get_text() for txt in ax.get_legend().get_texts()]
    assert legend == ["input", "hidden", "output", "total"]

    fig = plot.energy(np.ones((5, 2)), dt=0.1, labels=["a", "b"])
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), np.arange(5) * 0.1)
    assert ax.get_xlabel() == "time (units of tau_x)"
    assert [txt.get_text() for txt in ax.get_legend().get_texts()][:2] == ["a", "b"]


def test_energy_log_scale_auto_and_forced():
    decaying = np.column_stack([np.logspace(2, -2, 30), np.logspace(1, -1, 30)])
    assert plot.energy(decaying).axes[0].get_yscale() == "log"
    # small dynamic range -> linear
    assert plot.energy(np.linspace(1.0, 50.0, 30)).axes[0].get_yscale() == "linear"
    # a non-positive value -> linear even with a large ratio
    neg = np.logspace(3, -3, 30)
    neg[-1] = -1.0
    assert plot.energy(neg).axes[0].get_yscale() == "linear"
    # forced
    assert plot.energy(np.linspace(1.0, 2.0, 5), log=True).axes[0].get_yscale() == "log"
    assert plot.energy(decaying, log=False).axes[0].get_yscale() == "linear"


def test_energy_into_given_axes(tmp_path):
    host = plot.comparison({"a": ([0, 1], [0, 1])}, "x", "y")
    host_ax = host.axes[0]
    fig = plot.energy(np.ones((4, 2)), ax=host_ax, path=tmp_path / "e.png")
    assert fig is host
    assert len(host_ax.get_lines()) == 1 + 3
    _assert_png(tmp_path / "e.png")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"energies": np.ones((3, 2, 2))}, "shape"),
        ({"energies": np.ones((10, 2)), "t": np.arange(9)}, "t has length 9"),
        ({"energies": np.ones((10, 2)), "t": np.ones((10, 1))}, "1-D"),
        ({"energies": np.ones((10, 2)), "labels": ["a"]}, "labels"),
        ({"energies": {"a": np.ones(5), "b": np.ones(6)}}, "same length"),
        ({"energies": {"a": np.ones((5, 2))}}, "1-D"),
        ({"energies": {}}, "empty"),
        ({"energies": np.ones((0, 2))}, "empty"),
        ({"energies": np.ones(4), "dt": 0.0}, "dt"),
    ],
)
def test_energy_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot.energy(**kwargs)


# --------------------------------------------------------------------------- #
# dynamics
# --------------------------------------------------------------------------- #
def _traces(n_steps=30, sizes=(3, 12, 5), seed=1):
    rng = np.random.default_rng(seed)
    names = ["input", "hidden", "output"]
    values = {n: rng.normal(size=(n_steps, s)) for n, s in zip(names, sizes)}
    errors = {n: rng.normal(size=(n_steps, s)) for n, s in zip(names, sizes)}
    return values, errors


def test_dynamics_layout_labels_and_unit_cap():
    values, errors = _traces()
    fig = plot.dynamics(values, errors, max_units=8)
    assert isinstance(fig, Figure)
    axes = fig.axes
    assert len(axes) == 6
    names = list(values)
    for i, name in enumerate(names):
        ax_x, ax_e = axes[2 * i], axes[2 * i + 1]
        assert ax_x.get_ylabel() == f"x_{name}"
        assert ax_e.get_ylabel() == f"eps_{name}"
        n_expected = min(8, values[name].shape[1])
        assert len(ax_x.get_lines()) == n_expected
        assert len(ax_e.get_lines()) == n_expected
        for u, line in enumerate(ax_x.get_lines()):
            np.testing.assert_allclose(line.get_ydata(), values[name][:, u])
        for u, line in enumerate(ax_e.get_lines()):
            np.testing.assert_allclose(line.get_ydata(), errors[name][:, u])
        # same colour for x and eps of one population, tab10 by population index
        assert matplotlib.colors.same_color(ax_x.get_lines()[0].get_color(), plot.TAB10[i])
        assert matplotlib.colors.same_color(ax_e.get_lines()[0].get_color(), plot.TAB10[i])
    # shared time axis
    shared = axes[0].get_shared_x_axes()
    assert all(shared.joined(axes[0], ax) for ax in axes[1:])
    assert axes[-1].get_xlabel() == "step"
    assert fig.get_suptitle()


def test_dynamics_values_only_and_time_axis():
    values, _ = _traces(n_steps=10)
    t = np.linspace(0, 1, 10)
    fig = plot.dynamics(values, t=t, max_units=2, title="relax")
    assert len(fig.axes) == 3
    for ax in fig.axes:
        assert len(ax.get_lines()) == 2
        np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), t)
    assert fig.axes[-1].get_xlabel() == "time (units of tau_x)"
    assert fig.get_suptitle() == "relax"


def test_dynamics_population_in_one_mapping_only():
    values = {"a": np.zeros((6, 2)), "b": np.ones((6, 3))}
    errors = {"b": np.ones((6, 3)), "c": np.zeros((6, 4))}
    fig = plot.dynamics(values, errors)
    axes = fig.axes
    # populations a, b, c in two columns; no empty panel for eps_a or x_c
    assert sorted(ax.get_ylabel() for ax in axes) == sorted(["x_a", "x_b", "eps_b", "eps_c"])
    by_label = {ax.get_ylabel(): ax for ax in axes}
    assert len(by_label["x_a"].get_lines()) == 2
    assert len(by_label["eps_c"].get_lines()) == 4
    assert not any(txt.get_text() == "no data" for ax in axes for txt in ax.texts)
    # the lowest panel of each column carries the time label
    assert by_label["x_b"].get_xlabel() == "step" and by_label["eps_c"].get_xlabel() == "step"


def test_dynamics_png(tmp_path):
    values, errors = _traces(n_steps=15)
    fig = plot.dynamics(values, errors, path=tmp_path / "dyn" / "d.png")
    assert isinstance(fig, Figure)
    _assert_png(tmp_path / "dyn" / "d.png")


@pytest.mark.parametrize(
    "values, errors, kwargs, match",
    [
        ({"a": np.zeros(10)}, None, {}, "2-D"),
        ({"a": np.zeros((10, 2))}, {"a": np.zeros(10)}, {}, "2-D"),
        ({"a": np.zeros((10, 2))}, None, {"t": np.arange(11)}, "t has length 11"),
        ({"a": np.zeros((10, 2)), "b": np.zeros((9, 2))}, None, {}, "same number"),
        ({"a": np.zeros((10, 2))}, {"a": np.zeros((8, 2))}, {}, "same number"),
        ({}, None, {}, "no populations"),
        ({"a": np.zeros((10, 2))}, None, {"max_units": 0}, "max_units"),
    ],
)
def test_dynamics_bad_input(values, errors, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot.dynamics(values, errors, **kwargs)


def test_dynamics_requires_mapping():
    with pytest.raises(TypeError):
        plot.dynamics(np.zeros((10, 2)))


# --------------------------------------------------------------------------- #
# weights
# --------------------------------------------------------------------------- #
def test_weights_images_symmetric_limits_and_titles(tmp_path):
    rng = np.random.default_rng(2)
    w = {
        "W1": rng.normal(size=(6, 4)) + 0.5,
        "W2": -3.0 * rng.uniform(size=(3, 6)),
        "b1": rng.normal(size=6),
    }
    fig = plot.weights(w, path=tmp_path / "w.png")
    assert isinstance(fig, Figure)
    axes = _data_axes(fig)
    assert len(axes) == 3
    assert len(fig.axes) == 5  # one colour bar per matrix, none for the bias bars
    images = _images(fig)
    assert len(images) == 2
    for (name, arr), ax, im in zip(list(w.items())[:2], axes, images):
        vmin, vmax = im.get_clim()
        assert vmin == pytest.approx(-vmax)
        assert vmax == pytest.approx(np.abs(arr).max())
        assert im.get_cmap().name == "RdBu_r"
        assert name in ax.get_title()
        assert str(arr.shape) in ax.get_title()
    np.testing.assert_allclose(images[0].get_array(), w["W1"])
    # the bias is a bar chart: one bar per unit, labelled axes
    bars = axes[2].patches
    assert [b.get_height() for b in bars] == pytest.approx(w["b1"])
    assert (axes[2].get_xlabel(), axes[2].get_ylabel()) == ("unit", "bias")
    assert all(cb.get_ylabel() == "weight" for cb in fig.axes if cb.get_label() == "<colorbar>")
    assert fig.get_suptitle() == "Weights"
    _assert_png(tmp_path / "w.png")


def test_weights_grid_and_zero_matrix():
    w = {f"W{k}": np.full((2, 3), float(k)) for k in range(5)}
    fig = plot.weights(w, max_cols=2)
    axes = _data_axes(fig)
    assert len(axes) == 5  # 3x2 grid, the unused sixth axes removed
    assert len(_images(fig)) == 5
    vmin, vmax = _images(fig)[0].get_clim()  # all-zero matrix
    assert vmax > 0 and vmin == -vmax


@pytest.mark.parametrize(
    "w, match",
    [
        ({"W": np.zeros((2, 2, 2))}, "2-D"),
        ({}, "empty"),
        ({"W": np.zeros((0, 3))}, "empty"),
    ],
)
def test_weights_bad_input(w, match):
    with pytest.raises(ValueError, match=match):
        plot.weights(w)


# --------------------------------------------------------------------------- #
# learning_curves
# --------------------------------------------------------------------------- #
def _history(n_batches=200, n_epochs=4, seed=3):
    rng = np.random.default_rng(seed)
    b = np.arange(n_batches)
    return {
        "loss": list(np.exp(-b / 60) + 0.05 * rng.uniform(size=n_batches)),
        "energy": list(np.exp(-b / 40) * 10 + 0.01),
        "accuracy": list(np.clip(b / n_batches + 0.1 * rng.normal(size=n_batches), 0, 1)),
        "epoch_loss": list(np.linspace(0.8, 0.1, n_epochs)),
        "test_loss": list(np.linspace(0.9, 0.2, n_epochs)),
        "epoch_accuracy": list(np.linspace(0.5, 0.9, n_epochs)),
        "test_accuracy": list(np.linspace(0.4, 0.85, n_epochs)),
    }


def test_learning_curves_full_history(tmp_path):
    h = _history()
    fig = plot.learning_curves(h, path=tmp_path / "lc.png")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 3
    loss_ax, energy_ax, acc_ax = fig.axes
    assert loss_ax.get_ylabel() == "loss"
    # raw loss + moving average (window 200 // 50 = 4) + epoch + test
    lines = loss_ax.get_lines()
    assert len(lines) == 4
    np.testing.assert_allclose(lines[0].get_xdata(), np.arange(1, 201))
    np.testing.assert_allclose(lines[0].get_ydata(), h["loss"])
    loss = np.asarray(h["loss"])
    np.testing.assert_allclose(lines[1].get_ydata()[3:],
                               np.convolve(loss, np.ones(4) / 4, mode="valid"))
    np.testing.assert_allclose(lines[1].get_ydata()[0], loss[0])
    expected_x = (np.arange(4) + 1) * 200 / 4
    np.testing.assert_allclose(lines[2].get_xdata(), expected_x)
    np.testing.assert_allclose(lines[2].get_ydata(), h["epoch_loss"])
    np.testing.assert_allclose(lines[3].get_xdata(), expected_x)
    assert lines[2].get_marker() not in (None, "None", "")
    assert energy_ax.get_yscale() == "log"
    assert len(acc_ax.get_lines()) == 3
    assert acc_ax.get_ylim() == pytest.approx((0.0, 1.0))
    assert loss_ax.get_xlabel() == "batch"
    assert fig.get_suptitle() == "Learning curves"
    _assert_png(tmp_path / "lc.png")


def test_learning_curves_skips_absent_panels_and_smoothing():
    fig = plot.learning_curves({"loss": np.linspace(1, 0, 100)}, smooth=10)
    assert len(fig.axes) == 1
    assert len(fig.axes[0].get_lines()) == 2
    # window 1 -> no moving-average line
    fig = plot.learning_curves({"loss": np.linspace(1, 0, 30)})
    assert len(fig.axes[0].get_lines()) == 1
    fig = plot.learning_curves({"loss": np.linspace(1, 0, 100)}, smooth=1)
    assert len(fig.axes[0].get_lines()) == 1
    # energy with a negative value -> linear axis
    fig = plot.learning_curves({"energy": [1.0, -0.5, 0.2]})
    assert len(fig.axes) == 1
    assert fig.axes[0].get_yscale() == "linear"


def test_learning_curves_epoch_only_history():
    h = {"epoch_loss": [1.0, 0.5, 0.2], "test_accuracy": [0.3, 0.6, 0.7],
         "unrelated": "ignored", "energy": []}
    fig = plot.learning_curves(h, title=None)
    assert len(fig.axes) == 2
    loss_ax, acc_ax = fig.axes
    assert loss_ax.get_xlabel() == "epoch"
    np.testing.assert_allclose(loss_ax.get_lines()[0].get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(acc_ax.get_lines()[0].get_ydata(), [0.3, 0.6, 0.7])


def test_learning_curves_errors():
    with pytest.raises(ValueError, match="loss") as info:
        plot.learning_curves({})
    assert "test_accuracy" in str(info.value)
    with pytest.raises(ValueError, match="expected keys"):
        plot.learning_curves({"something": [1, 2]})
    with pytest.raises(ValueError, match="1-D"):
        plot.learning_curves({"loss": np.ones((3, 2))})
    with pytest.raises(ValueError, match="smooth"):
        plot.learning_curves({"loss": [1.0, 2.0]}, smooth=0)


# --------------------------------------------------------------------------- #
# raster
# --------------------------------------------------------------------------- #
def test_raster_basic(tmp_path):
    times = np.array([0.5, 1.0, 1.5, 2.0, 3.5])
    idx = np.array([0, 3, 1, 3, 2])
    fig = plot.raster(times, idx, path=tmp_path / "r.png")  # spike times in ms
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert len(lines) == 1
    np.testing.assert_allclose(lines[0].get_xdata(), times)
    np.testing.assert_allclose(lines[0].get_ydata(), idx)
    assert ax.get_ylim() == pytest.approx((-0.5, 3.5))
    assert ax.get_xlim() == pytest.approx((0.0, 3.5))
    assert ax.get_xlabel() == "time (ms)"
    assert ax.get_ylabel() == "neuron index"
    assert ax.get_title() == "Spikes"
    _assert_png(tmp_path / "r.png")


def test_raster_limits_empty_and_given_axes():
    fig = plot.raster([1.0], [2], n_neurons=10, t_max=5.0)
    ax = fig.axes[0]
    assert ax.get_ylim() == pytest.approx((-0.5, 9.5))
    assert ax.get_xlim() == pytest.approx((0.0, 5.0))
    fig = plot.raster([], [], n_neurons=4)
    assert isinstance(fig, Figure)
    host = plot.energy(np.ones(3))
    out = plot.raster([0.1, 0.2], [0, 1], ax=host.axes[0])
    assert out is host


@pytest.mark.parametrize(
    "times, idx, kwargs, match",
    [
        ([0.1, 0.2], [0], {}, "same length"),
        (np.zeros((2, 2)), np.zeros((2, 2)), {}, "1-D"),
        ([0.1, 0.2], [0, 5], {"n_neurons": 3}, "out of range"),
        ([0.1], [0.5], {}, "integers"),
        ([0.1], [-1], {}, "integers"),
        ([0.1], [0], {"t_max": -1.0}, "t_max"),
    ],
)
def test_raster_bad_input(times, idx, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot.raster(times, idx, **kwargs)


# --------------------------------------------------------------------------- #
# comparison
# --------------------------------------------------------------------------- #
def test_comparison_lines_and_bands(tmp_path):
    x = np.array([1, 2, 4, 8, 16], dtype=float)
    curves = {
        "PC": (x, 1 / x, 0.1 / x),
        "BP": (x, 1.2 / x),
        "PC (asym)": (x, 0.8 / x, np.vstack([0.05 / x, 0.2 / x])),
    }
    fig = plot.comparison(curves, "width", "test loss", title="PC vs BP",
                          logx=True, logy=True, path=tmp_path / "c.png")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert len(lines) == 3
    for line, (label, entry) in zip(lines, curves.items()):
        assert line.get_label() == label
        np.testing.assert_allclose(line.get_xdata(), entry[0])
        np.testing.assert_allclose(line.get_ydata(), entry[1])
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2
    # band of "PC" spans y - yerr .. y + yerr
    verts = bands[0].get_paths()[0].vertices
    assert verts[:, 1].min() == pytest.approx((1 / x - 0.1 / x).min())
    assert verts[:, 1].max() == pytest.approx((1 / x + 0.1 / x).max())
    assert matplotlib.colors.same_color(lines[0].get_color(), plot.TAB10[0])
    assert matplotlib.colors.same_color(lines[1].get_color(), plot.TAB10[1])
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert ax.get_xlabel() == "width" and ax.get_ylabel() == "test loss"
    assert ax.get_title() == "PC vs BP"
    _assert_png(tmp_path / "c.png")


def test_comparison_linear_default_and_given_axes():
    host = plot.energy(np.ones(3))
    out = plot.comparison({"a": ([0, 1, 2], [1, 2, 3], 0.5)}, "x", "y", ax=host.axes[0])
    assert out is host
    fig = plot.comparison({"a": ([0, 1], [1, 2])}, "x", "y")
    assert fig.axes[0].get_xscale() == "linear"
    assert fig.axes[0].get_yscale() == "linear"


@pytest.mark.parametrize(
    "curves, match",
    [
        ({"a": ([0, 1, 2], [1, 2])}, "length"),
        ({"a": ([0, 1],)}, "tuple"),
        ({"a": ([0, 1], [1, 2], [1, 1], [0, 0])}, "tuple"),
        ({"a": ([0, 1], [1, 2], [1, 1, 1])}, "yerr"),
        ({"a": (np.zeros((2, 2)), np.zeros((2, 2)))}, "1-D"),
        ({}, "empty"),
    ],
)
def test_comparison_bad_input(curves, match):
    with pytest.raises(ValueError, match=match):
        plot.comparison(curves, "x", "y")


# --------------------------------------------------------------------------- #
# every function returns a Figure and can write a PNG
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    "name, call",
    [
        ("energy", lambda p: plot.energy(np.logspace(2, -2, 20), path=p)),
        ("dynamics", lambda p: plot.dynamics({"a": np.ones((5, 2))}, path=p)),
        ("weights", lambda p: plot.weights({"W": np.eye(4) - 0.5}, path=p)),
        ("learning_curves", lambda p: plot.learning_curves({"loss": [3, 2, 1]}, path=p)),
        ("raster", lambda p: plot.raster([0.1, 0.4], [1, 0], path=p)),
        ("comparison", lambda p: plot.comparison({"a": ([1, 2], [2, 1])}, "x", "y", path=p)),
    ],
)
def test_every_function_writes_png(tmp_path, name, call):
    target = tmp_path / "nested" / f"{name}.png"
    fig = call(target)
    assert isinstance(fig, Figure)
    _assert_png(target)


def test_learning_curves_place_epochs_where_they_happened(tmp_path):
    """Three train calls -- 3 epochs of 10 batches with test data, 3 of 5 batches (batch 64) without, 2 of 10 with
    test data: the test points belong after epochs 1, 2, 3, 7, 8, i.e. batches 10, 20, 30, 55, 65 (they were
    spread evenly, 13, 26, 39, 52, 65, as if there were one test per epoch and equal epochs), and the epoch points
    at the epochs' last batches.  The History says where (``epoch_end_batch``, ``test_epoch``), survives a
    checkpoint, and its summary marks a test value that is not of the last epoch."""
    import neurosim as ns
    from neurosim.data import load_digits
    d = load_digits()
    sim = ns.Simulator(ns.hierarchy([64, 16, 10]), seed=0)
    X, Y, Xt, Yt = d.X_train[:320], d.Y_train[:320], d.X_test[:60], d.Y_test[:60]
    sim.train(X, Y, epochs=3, X_test=Xt, Y_test=Yt, progress=False)
    sim.train(X, Y, epochs=3, batch_size=64, progress=False)
    h = sim.train(X, Y, epochs=2, X_test=Xt, Y_test=Yt, progress=False)
    assert h["epoch_end_batch"] == [10, 20, 30, 35, 40, 45, 55, 65] and h["test_epoch"] == [1, 2, 3, 7, 8]
    fig = plot.learning_curves(h)
    xs = {ln.get_label(): list(ln.get_xdata()) for ax in fig.axes for ln in ax.lines}
    assert xs["test loss"] == xs["test accuracy"] == [10, 20, 30, 55, 65]
    assert xs["epoch loss"] == [10, 20, 30, 35, 40, 45, 55, 65]
    # an epoch-only history (no batch series) uses the epoch numbers
    fig = plot.learning_curves({k: h[k] for k in ("epoch_loss", "test_loss", "epoch_end_batch", "test_epoch")})
    xs = {ln.get_label(): list(ln.get_xdata()) for ax in fig.axes for ln in ax.lines}
    assert xs["test loss"] == [1, 2, 3, 7, 8] and xs["epoch loss"] == list(range(1, 9))
    # a mapping without the positions (or with positions that do not fit) keeps the even spacing
    fig = plot.learning_curves({"loss": h["loss"], "test_loss": h["test_loss"], "test_epoch": [0.5] * 5})
    xs = {ln.get_label(): list(ln.get_xdata()) for ax in fig.axes for ln in ax.lines}
    assert xs["test loss"] == [13, 26, 39, 52, 65]
    ck = tmp_path / "ck.npz"
    sim.save_checkpoint(ck)
    sim.train(X, Y, epochs=1, progress=False)
    assert "test_accuracy(after epoch 8)=" in repr(sim.history)
    other = ns.Simulator(ns.hierarchy([64, 16, 10]), seed=0)
    other.load_checkpoint(ck)
    assert other.history["test_epoch"] == [1, 2, 3, 7, 8] and all(type(v) is int for v in other.history["test_epoch"])
    assert "test_accuracy=" in repr(other.history)


def test_energy_of_many_populations_keeps_a_readable_legend():
    """A graph circuit's 109 vertices gave a 110-entry legend over the axes and a repeating colour cycle: the 10
    largest get colours and entries, the rest one grey entry."""
    E = np.outer(np.linspace(2.0, 1.0, 20), np.arange(1, 31))   # population k's energy grows with k
    fig = plot.energy(E, labels=[f"v{k}" for k in range(30)])
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert texts[0] == "the other 20 (smaller energies)" and texts[-1] == "total"
    assert sorted(texts[1:-1]) == sorted(f"v{k}" for k in range(20, 30))
    colours = [ln.get_color() for ln in fig.axes[0].get_lines() if ln.get_label().startswith("v")]
    assert len(set(colours)) == 10
    few = plot.energy(E[:, :5], labels=[f"v{k}" for k in range(5)])
    assert [t.get_text() for t in few.axes[0].get_legend().get_texts()] == ["v0", "v1", "v2", "v3", "v4", "total"]


def test_weights_draws_a_convolution_kernel_as_channel_tiles(tmp_path):
    """A 4-D kernel (out, in, kh, kw) of a graph circuit's convolution: a grid of kh x kw tiles, a row per output
    channel and a column per input channel (it was refused as not 2-D); at most max_tiles tiles."""
    rng = np.random.default_rng(0)
    K = rng.normal(size=(6, 2, 3, 3))
    fig = plot.weights({"conv": K, "b": rng.normal(size=6)}, path=tmp_path / "k.png")
    ax = fig.axes[0]
    img = ax.images[0].get_array()
    assert img.shape == (6 * 4 - 1, 2 * 4 - 1)
    np.testing.assert_array_equal(np.asarray(img[4:7, 4:7]), K[1, 1])   # output channel 1, input channel 1
    assert np.all(np.asarray(img.mask)[3, :]) or np.all(np.isnan(np.asarray(img.data)[3, :]))   # the gaps
    assert ax.get_xlabel() == "input channel" and ax.get_ylabel() == "output channel"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1"]
    assert (tmp_path / "k.png").exists()
    big = plot.weights({"conv": rng.normal(size=(40, 8, 3, 3))}, max_tiles=64)
    assert big.axes[0].images[0].get_array().shape == (8 * 4 - 1, 8 * 4 - 1)
    assert "first 8 x 8 channels" in big.axes[0].get_title()
    with pytest.raises(ValueError, match="4-D .* convolution kernel"):
        plot.weights({"W": np.zeros((2, 3, 4))})
    # image_shape of a CNN's input: its first weights are kernels, and a later (10, 64) matrix reads pooled features
    # (it was tiled as 8x8 "receptive fields")
    for order in ({"conv": K, "out": rng.normal(size=(10, 64))}, {"out": rng.normal(size=(10, 64)), "conv": K}):
        with pytest.raises(ValueError, match=r"weights\['conv'\] \(6, 2, 3, 3\) is a convolution kernel"):
            plot.weights(order, image_shape=(8, 8))   # in either order (a graph's vertices may be declared any way)
