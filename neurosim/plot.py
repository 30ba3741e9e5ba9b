"""Headless matplotlib figures for predictive-coding circuit dynamics.

Every function in this module builds a :class:`matplotlib.figure.Figure`
directly (with a :class:`~matplotlib.backends.backend_agg.FigureCanvasAgg`
attached), so it works without a display and without touching pyplot's global
figure registry or any ``rcParams``.  ``matplotlib.pyplot`` is never imported.

Functions take plain arrays and mappings (never simulator objects), return the
figure, and accept ``path=None``: when a path is given the figure is also
written there as a PNG (see :func:`save`).  Functions for which a single axes
makes sense also accept ``ax=None``; when an axes is given they draw into it
and return the figure that owns it (its layout is then left untouched).

Colours are consistent across functions: layer / population ``k`` (in the
order given) is drawn in the ``k``-th colour of the ``tab10`` cycle.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = [
    "save",
    "energy",
    "dynamics",
    "weights",
    "learning_curves",
    "raster",
    "comparison",
]

#: The tab10 colour cycle used for layers / populations (index ``k % 10``).
TAB10 = tuple(matplotlib.colormaps["tab10"].colors)

#: Diverging colormap used for weight matrices.
WEIGHT_CMAP = "RdBu_r"

_DPI = 120

_BATCH_KEYS = ("loss", "energy", "accuracy")
_EPOCH_KEYS = ("epoch_loss", "epoch_accuracy", "test_loss", "test_accuracy")
_HISTORY_KEYS = _BATCH_KEYS + _EPOCH_KEYS


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #
def _color(k):
    """Colour of layer / population ``k`` (tab10 cycle)."""
    return TAB10[k % len(TAB10)]


def _new_figure(figsize):
    """A fresh figure with an Agg canvas attached (no pyplot, no globals)."""
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _root_figure(ax):
    """The top-level figure owning ``ax`` (also for axes inside subfigures)."""
    try:
        return ax.get_figure(root=True)
    except TypeError:  # matplotlib < 3.10
        fig = ax.figure
        while getattr(fig, "figure", fig) is not fig:
            fig = fig.figure
        return fig


def _axes(ax, figsize):
    """Return ``(fig, ax, owned)``; create a figure when ``ax`` is None."""
    if ax is None:
        fig = _new_figure(figsize)
        return fig, fig.add_subplot(1, 1, 1), True
    return _root_figure(ax), ax, False


def _finish(fig, owned, path):
    """Apply tight layout to figures we created and save if requested."""
    if owned:
        fig.tight_layout()
    if path is not None:
        save(fig, path)
    return fig


def _as_float_array(x, name):
    try:
        return np.asarray(x, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{name} must be a numeric array, could not convert it ({exc})"
        ) from None


def _as_1d(x, name):
    arr = _as_float_array(x, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got an array of shape {arr.shape}")
    return arr


def _as_2d(x, name, what="(n_steps, n_units)"):
    arr = _as_float_array(x, name)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D with shape {what}, got an array of shape {arr.shape}"
        )
    return arr


def _check_mapping(x, name):
    if not isinstance(x, Mapping):
        raise TypeError(f"{name} must be a mapping, got {type(x).__name__}")


def _time_axis(n_steps, t, dt, what):
    """Time values for ``n_steps`` samples: ``t`` (checked) or ``arange * dt``."""
    if t is None:
        dt = float(dt)
        if not (math.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a positive finite number, got {dt!r}")
        return np.arange(n_steps) * dt
    t = _as_1d(t, "t")
    if t.shape[0] != n_steps:
        raise ValueError(
            f"t has length {t.shape[0]} but {what} has {n_steps} time steps"
        )
    return t


def _time_label(t, dt):
    return "step" if (t is None and dt == 1) else "time"


def _finite(values):
    values = np.asarray(values, dtype=float).ravel()
    return values[np.isfinite(values)]


def _all_positive(values):
    v = _finite(values)
    return v.size > 0 and bool(np.all(v > 0))


def _moving_average(y, window):
    """Trailing moving average of ``y`` (same length, NaN-aware).

    Element ``i`` is the mean of the finite values in
    ``y[max(0, i - window + 1) : i + 1]``.
    """
    y = np.asarray(y, dtype=float)
    finite = np.isfinite(y)
    csum = np.concatenate([[0.0], np.cumsum(np.where(finite, y, 0.0))])
    ccnt = np.concatenate([[0], np.cumsum(finite)])
    idx = np.arange(y.shape[0])
    lo = np.maximum(0, idx - window + 1)
    total = csum[idx + 1] - csum[lo]
    count = ccnt[idx + 1] - ccnt[lo]
    out = np.full(y.shape, np.nan)
    np.divide(total, count, out=out, where=count > 0)
    return out


# --------------------------------------------------------------------------- #
# public API
# --------------------------------------------------------------------------- #
def save(fig, path):
    """Write ``fig`` to ``path`` as a PNG.

    This is the saver used by every plotting function of this module: PNG
    format, ``dpi=120``, ``bbox_inches="tight"``.  Missing parent directories
    are created.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        Figure to save.
    path : str or os.PathLike
        Destination file.  The content is PNG whatever the suffix.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(os.fspath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    if fig.canvas is None or not hasattr(fig.canvas, "print_png"):
        FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=_DPI, bbox_inches="tight")
    return path


def energy(
    energies,
    t=None,
    dt=1.0,
    labels=None,
    total=True,
    log=None,
    ax=None,
    path=None,
    title="Energy during relaxation",
):
    """Plot the energy (free energy F) against relaxation time.

    One line per layer, in layer order (line ``k`` holds column ``k``), plus
    -- when ``total`` is true and there is more than one layer -- a thick black
    line with the sum over layers, drawn last.

    Parameters
    ----------
    energies : array_like or Mapping[str, array_like]
        Either an array of shape ``(n_steps, n_layers)`` or ``(n_steps,)``
        (a single series), or a mapping ``layer name -> array (n_steps,)``
        whose series all have the same length.
    t : array_like, optional
        Time of every step, shape ``(n_steps,)``.  Defaults to
        ``np.arange(n_steps) * dt``.
    dt : float, default 1.0
        Step size used when ``t`` is None.
    labels : sequence of str, optional
        Legend labels, one per layer.  Defaults to the mapping keys, or
        ``"layer k"`` for array input.
    total : bool, default True
        Add the total (sum over layers) if there is more than one layer.
    log : bool or None, default None
        Use a logarithmic y axis.  ``None`` chooses automatically: log when
        all finite plotted values are > 0 and ``max / min > 100``.
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; a new figure is created when None.
    path : str or os.PathLike, optional
        If given, save the figure there as PNG (see :func:`save`).
    title : str or None, default "Energy during relaxation"
        Axes title (None for no title).

    Returns
    -------
    matplotlib.figure.Figure
        The new figure, or the figure owning ``ax``.

    Raises
    ------
    ValueError
        For arrays that are not 1-D / 2-D, mapping values that are not 1-D or
        differ in length, empty input, or ``t`` / ``labels`` of the wrong
        length.
    """
    if isinstance(energies, Mapping):
        if len(energies) == 0:
            raise ValueError("energies is an empty mapping; nothing to plot")
        names = [str(k) for k in energies]
        series = [_as_1d(v, f"energies[{k!r}]") for k, v in energies.items()]
        lengths = {s.shape[0] for s in series}
        if len(lengths) != 1:
            detail = ", ".join(f"{n}: {s.shape[0]}" for n, s in zip(names, series))
            raise ValueError(
                f"all energy series must have the same length, got {detail}"
            )
        data = np.column_stack(series)
    else:
        data = _as_float_array(energies, "energies")
        if data.ndim == 1:
            data = data[:, None]
        elif data.ndim != 2:
            raise ValueError(
                "energies must have shape (n_steps, n_layers) or (n_steps,), "
                f"got an array of shape {data.shape}"
            )
        names = [f"layer {k}" for k in range(data.shape[1])]
    n_steps, n_layers = data.shape
    if n_steps == 0 or n_layers == 0:
        raise ValueError(f"energies is empty (shape {data.shape})")
    if labels is not None:
        labels = [str(lab) for lab in labels]
        if len(labels) != n_layers:
            raise ValueError(
                f"got {len(labels)} labels for {n_layers} layers"
            )
        names = labels
    show_legend = n_layers > 1 or labels is not None or isinstance(energies, Mapping)

    x = _time_axis(n_steps, t, dt, "energies")
    fig, ax, owned = _axes(ax, (6.4, 4.0))

    plotted = [data]
    for k in range(n_layers):
        ax.plot(x, data[:, k], color=_color(k), lw=1.5, label=names[k])
    if total and n_layers > 1:
        tot = data.sum(axis=1)
        plotted.append(tot)
        ax.plot(x, tot, color="black", lw=2.8, label="total")

    if log is None:
        vals = _finite(np.concatenate([np.ravel(p) for p in plotted]))
        log = bool(
            vals.size > 0 and np.all(vals > 0) and vals.max() / vals.min() > 100
        )
    ax.set_yscale("log" if log else "linear")
    ax.set_xlabel(_time_label(t, dt))
    ax.set_ylabel("energy F")
    if title is not None:
        ax.set_title(title)
    if show_legend:
        ax.legend(loc="best", fontsize="small")
    ax.grid(True, alpha=0.3)
    return _finish(fig, owned, path)


def dynamics(values, errors=None, t=None, dt=1.0, max_units=8, path=None, title=None):
    """Plot value-neuron (x) and error-neuron (eps) traces per population.

    Layout: one row per population; one column (values) or two columns
    (values x, errors eps) when ``errors`` is given and non-empty.  All panels
    share the time axis.  Units of a population are drawn as thin lines in the
    population's colour; only the first ``max_units`` units are plotted.
    Populations present in only one of the mappings still get their row; the
    missing panel is kept (same axes count) and says "no data".

    Parameters
    ----------
    values : Mapping[str, array_like]
        Population name -> value-neuron trace of shape ``(n_steps, n_units)``.
    errors : Mapping[str, array_like], optional
        Population name -> error-neuron trace of shape ``(n_steps, n_units)``.
    t : array_like, optional
        Time of every step, shape ``(n_steps,)``.  Defaults to
        ``np.arange(n_steps) * dt``.
    dt : float, default 1.0
        Step size used when ``t`` is None.
    max_units : int, default 8
        Maximum number of units drawn per population (the first ones).
    path : str or os.PathLike, optional
        If given, save the figure there as PNG (see :func:`save`).
    title : str, optional
        Figure title; defaults to "Value and error neuron dynamics".

    Returns
    -------
    matplotlib.figure.Figure
        Figure with ``n_populations * n_columns`` data axes, in row-major
        order (``fig.axes[2 * i]`` is x and ``fig.axes[2 * i + 1]`` is eps of
        population ``i`` when errors are shown).

    Raises
    ------
    TypeError
        If ``values`` / ``errors`` are not mappings.
    ValueError
        For traces that are not 2-D, traces with different numbers of steps,
        ``t`` of the wrong length, no populations at all, or
        ``max_units < 1``.
    """
    _check_mapping(values, "values")
    if errors is not None:
        _check_mapping(errors, "errors")
        if len(errors) == 0:
            errors = None
    if int(max_units) != max_units or max_units < 1:
        raise ValueError(f"max_units must be a positive integer, got {max_units!r}")
    max_units = int(max_units)

    vals = {str(k): _as_2d(v, f"values[{k!r}]") for k, v in values.items()}
    errs = (
        {str(k): _as_2d(v, f"errors[{k!r}]") for k, v in errors.items()}
        if errors is not None
        else {}
    )
    pops = list(vals) + [k for k in errs if k not in vals]
    if not pops:
        raise ValueError("values (and errors) contain no populations; nothing to plot")

    steps = {}
    for kind, mapping in (("values", vals), ("errors", errs)):
        for name, arr in mapping.items():
            steps[f"{kind}[{name!r}]"] = arr.shape[0]
    if len(set(steps.values())) != 1:
        detail = ", ".join(f"{k}: {n}" for k, n in steps.items())
        raise ValueError(
            f"all traces must have the same number of time steps, got {detail}"
        )
    n_steps = next(iter(steps.values()))
    x = _time_axis(n_steps, t, dt, "the traces")

    columns = [("x", "values x", vals)]
    if errors is not None:
        columns.append(("eps", "errors eps", errs))
    n_rows, n_cols = len(pops), len(columns)

    fig = _new_figure((5.0 * n_cols + 0.8, 1.9 * n_rows + 1.1))
    axes = fig.subplots(n_rows, n_cols, sharex=True, squeeze=False)
    for i, name in enumerate(pops):
        color = _color(i)
        for j, (sym, heading, mapping) in enumerate(columns):
            ax = axes[i, j]
            ax.set_ylabel(f"{sym}_{name}")
            if i == 0:
                ax.set_title(heading)
            arr = mapping.get(name)
            if arr is None:
                ax.text(0.5, 0.5, "no data", transform=ax.transAxes,
                        ha="center", va="center", color="0.5")
                ax.set_yticks([])
                continue
            n_units = arr.shape[1]
            shown = min(n_units, max_units)
            for u in range(shown):
                ax.plot(x, arr[:, u], color=color, lw=0.8, alpha=0.85)
            if shown < n_units:
                ax.text(0.99, 0.97, f"first {shown} of {n_units} units",
                        transform=ax.transAxes, ha="right", va="top",
                        fontsize="x-small", color="0.35")
            ax.grid(True, alpha=0.3)
    for j in range(n_cols):
        axes[-1, j].set_xlabel(_time_label(t, dt))
    fig.suptitle(title if title is not None else "Value and error neuron dynamics")
    return _finish(fig, True, path)


def weights(weights, path=None, title="Weights", max_cols=4):
    """Show weight matrices (and bias vectors) as images.

    Each matrix gets its own panel with the diverging colormap ``"RdBu_r"``
    scaled symmetrically around zero (``vmin = -vmax``, ``vmax`` = max |w| of
    that matrix; 1 if the matrix is all zero), a colour bar, and a title with
    the name and shape.  1-D arrays (biases) are shown as a single-row image.

    Parameters
    ----------
    weights : Mapping[str, array_like]
        Name -> weight matrix of shape ``(n_post, n_pre)`` or bias of shape
        ``(n,)``.
    path : str or os.PathLike, optional
        If given, save the figure there as PNG (see :func:`save`).
    title : str or None, default "Weights"
        Figure title (None for no title).
    max_cols : int, default 4
        Maximum number of panels per row.

    Returns
    -------
    matplotlib.figure.Figure
        Figure with one image axes (plus one colour-bar axes) per entry.

    Raises
    ------
    TypeError
        If ``weights`` is not a mapping.
    ValueError
        For an empty mapping, arrays that are not 1-D / 2-D or are empty, or
        ``max_cols < 1``.
    """
    _check_mapping(weights, "weights")
    if len(weights) == 0:
        raise ValueError("weights is an empty mapping; nothing to plot")
    if int(max_cols) != max_cols or max_cols < 1:
        raise ValueError(f"max_cols must be a positive integer, got {max_cols!r}")
    items = []
    for name, w in weights.items():
        arr = _as_float_array(w, f"weights[{name!r}]")
        if arr.ndim not in (1, 2):
            raise ValueError(
                f"weights[{name!r}] must be 2-D (n_post, n_pre) or 1-D (n,), "
                f"got an array of shape {arr.shape}"
            )
        if arr.size == 0:
            raise ValueError(f"weights[{name!r}] is empty (shape {arr.shape})")
        items.append((str(name), arr))

    n = len(items)
    n_cols = min(n, int(max_cols))
    n_rows = math.ceil(n / n_cols)
    fig = _new_figure((4.0 * n_cols + 0.4, 3.4 * n_rows + 0.6))
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.remove()
    for ax, (name, arr) in zip(axes, items):
        image = arr[None, :] if arr.ndim == 1 else arr
        finite = _finite(image)
        vmax = float(np.abs(finite).max()) if finite.size else 0.0
        if vmax == 0.0:
            vmax = 1.0
        im = ax.imshow(image, cmap=WEIGHT_CMAP, vmin=-vmax, vmax=vmax,
                       aspect="auto", interpolation="nearest")
        ax.set_title(f"{name} {tuple(arr.shape)}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        if arr.ndim == 1:
            ax.set_xlabel("unit")
            ax.set_yticks([])
        else:
            ax.set_xlabel("pre (input unit)")
            ax.set_ylabel("post (output unit)")
        fig.colorbar(im, ax=ax)
    if title is not None:
        fig.suptitle(title)
    return _finish(fig, True, path)


def learning_curves(history, path=None, title="Learning curves", smooth=None):
    """Plot training histories: loss, energy and accuracy panels.

    Per-batch series are drawn against the number of batches seen
    (``1 .. n_batches``).  Per-epoch series are drawn as markers at the batch
    index where each epoch ends, ``(k + 1) * n_batches / n_epochs``; when the
    history has no per-batch series at all they are drawn against the epoch
    number ``1 .. n_epochs`` instead.

    Panels (in this order, each only if one of its keys is present):

    * loss: per-batch ``"loss"`` (thin) plus its trailing moving average over
      ``smooth`` batches (only drawn when the window is > 1), ``"epoch_loss"``
      and ``"test_loss"`` markers;
    * energy: per-batch ``"energy"``, log y axis if all values are positive;
    * accuracy: per-batch ``"accuracy"``, ``"epoch_accuracy"`` and
      ``"test_accuracy"`` markers; y limits ``[0, 1]`` (or ``[0, 100]`` if the
      values look like percentages).

    Parameters
    ----------
    history : Mapping[str, sequence of float]
        Per-batch keys ``"loss"``, ``"energy"``, ``"accuracy"`` (each of
        shape ``(n_batches,)``) and per-epoch keys ``"epoch_loss"``,
        ``"epoch_accuracy"``, ``"test_loss"``, ``"test_accuracy"`` (each of
        shape ``(n_epochs,)``), all optional.  Other keys are ignored, and
        so are empty sequences.
    path : str or os.PathLike, optional
        If given, save the figure there as PNG (see :func:`save`).
    title : str or None, default "Learning curves"
        Figure title (None for no title).
    smooth : int, optional
        Moving-average window for the per-batch loss; defaults to
        ``max(1, n_batches // 50)``.

    Returns
    -------
    matplotlib.figure.Figure
        Figure with one axes per panel present (1 to 3).

    Raises
    ------
    TypeError
        If ``history`` is not a mapping.
    ValueError
        If none of the expected keys is present (non-empty), if a series is not
        1-D, or if ``smooth < 1``.
    """
    _check_mapping(history, "history")
    h = {}
    for key in _HISTORY_KEYS:
        if key in history and history[key] is not None:
            arr = _as_1d(history[key], f"history[{key!r}]")
            if arr.size:
                h[key] = arr
    if not h:
        raise ValueError(
            "history contains none of the expected keys (non-empty): "
            + ", ".join(repr(k) for k in _HISTORY_KEYS)
        )
    if smooth is not None and (int(smooth) != smooth or smooth < 1):
        raise ValueError(f"smooth must be a positive integer, got {smooth!r}")

    batch_present = [k for k in _BATCH_KEYS if k in h]
    n_ref = h[batch_present[0]].shape[0] if batch_present else None
    xlabel = "batch" if batch_present else "epoch"

    def batch_x(arr):
        return np.arange(1, arr.shape[0] + 1)

    def epoch_x(arr, n_batches):
        n_epochs = arr.shape[0]
        if n_batches is None:
            return np.arange(1, n_epochs + 1, dtype=float)
        return (np.arange(n_epochs) + 1) * n_batches / n_epochs

    panels = []
    if any(k in h for k in ("loss", "epoch_loss", "test_loss")):
        panels.append("loss")
    if "energy" in h:
        panels.append("energy")
    if any(k in h for k in ("accuracy", "epoch_accuracy", "test_accuracy")):
        panels.append("accuracy")

    fig = _new_figure((4.8 * len(panels) + 0.4, 3.8))
    axes = fig.subplots(1, len(panels), sharex=True, squeeze=False)[0]
    train_c, test_c, smooth_c = _color(0), _color(1), _color(3)

    for ax, panel in zip(axes, panels):
        if panel == "loss":
            nb = h["loss"].shape[0] if "loss" in h else n_ref
            if "loss" in h:
                y = h["loss"]
                ax.plot(batch_x(y), y, color=train_c, lw=0.7, alpha=0.45,
                        label="loss (batch)")
                window = int(smooth) if smooth is not None else max(1, y.shape[0] // 50)
                if window > 1:
                    ax.plot(batch_x(y), _moving_average(y, window), color=train_c,
                            lw=2.0, label=f"loss (moving avg, {window})")
            if "epoch_loss" in h:
                y = h["epoch_loss"]
                ax.plot(epoch_x(y, nb), y, color=smooth_c, marker="o", ms=5,
                        lw=1.0, label="epoch loss")
            if "test_loss" in h:
                y = h["test_loss"]
                ax.plot(epoch_x(y, nb), y, color=test_c, marker="s", ms=5,
                        lw=1.0, label="test loss")
            ax.set_ylabel("loss")
            ax.set_title("loss")
        elif panel == "energy":
            y = h["energy"]
            ax.plot(batch_x(y), y, color=train_c, lw=1.0, label="energy (batch)")
            if _all_positive(y):
                ax.set_yscale("log")
            ax.set_ylabel("energy F")
            ax.set_title("energy")
        else:
            nb = h["accuracy"].shape[0] if "accuracy" in h else n_ref
            if "accuracy" in h:
                y = h["accuracy"]
                ax.plot(batch_x(y), y, color=train_c, lw=0.8, alpha=0.6,
                        label="accuracy (batch)")
            if "epoch_accuracy" in h:
                y = h["epoch_accuracy"]
                ax.plot(epoch_x(y, nb), y, color=smooth_c, marker="o", ms=5,
                        lw=1.0, label="epoch accuracy")
            if "test_accuracy" in h:
                y = h["test_accuracy"]
                ax.plot(epoch_x(y, nb), y, color=test_c, marker="s", ms=5,
                        lw=1.0, label="test accuracy")
            v = _finite(np.concatenate(
                [h[k] for k in ("accuracy", "epoch_accuracy", "test_accuracy") if k in h]))
            if v.size == 0 or (v.min() >= 0 and v.max() <= 1):
                ax.set_ylim(0.0, 1.0)
            elif v.min() >= 0 and v.max() <= 100:
                ax.set_ylim(0.0, 100.0)
            ax.set_ylabel("accuracy")
            ax.set_title("accuracy")
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    if title is not None:
        fig.suptitle(title)
    return _finish(fig, True, path)


def raster(spike_times, spike_indices, n_neurons=None, t_max=None, ax=None,
           path=None, title="Spikes"):
    """Spike raster plot: one tick per spike at (time, neuron index).

    Parameters
    ----------
    spike_times : array_like
        Spike times, shape ``(n_spikes,)``.
    spike_indices : array_like
        Integer index of the neuron emitting each spike, shape ``(n_spikes,)``.
    n_neurons : int, optional
        Number of neurons (y range ``0 .. n_neurons - 1``); defaults to
        ``max(spike_indices) + 1`` (1 when there are no spikes).
    t_max : float, optional
        Right end of the time axis (left end is ``min(0, first spike)``);
        defaults to the last spike time (1 when there are no spikes).
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; a new figure is created when None.
    path : str or os.PathLike, optional
        If given, save the figure there as PNG (see :func:`save`).
    title : str or None, default "Spikes"
        Axes title (None for no title).

    Returns
    -------
    matplotlib.figure.Figure
        The new figure, or the figure owning ``ax``.  All spikes are a single
        marker-only line.

    Raises
    ------
    ValueError
        If the arrays are not 1-D or differ in length, indices are not
        non-negative integers below ``n_neurons``, or ``n_neurons`` /
        ``t_max`` are not positive.
    """
    times = _as_1d(spike_times, "spike_times")
    idx = _as_1d(spike_indices, "spike_indices")
    if times.shape[0] != idx.shape[0]:
        raise ValueError(
            f"spike_times and spike_indices must have the same length, got "
            f"{times.shape[0]} and {idx.shape[0]}"
        )
    if idx.size and (not np.all(np.isfinite(idx)) or np.any(idx != np.round(idx))
                     or np.any(idx < 0)):
        raise ValueError("spike_indices must be non-negative integers")
    if n_neurons is None:
        n_neurons = int(idx.max()) + 1 if idx.size else 1
    elif int(n_neurons) != n_neurons or n_neurons < 1:
        raise ValueError(f"n_neurons must be a positive integer, got {n_neurons!r}")
    n_neurons = int(n_neurons)
    if idx.size and idx.max() >= n_neurons:
        raise ValueError(
            f"spike index {int(idx.max())} out of range for n_neurons={n_neurons}"
        )
    finite_t = _finite(times)
    t_min = min(0.0, float(finite_t.min())) if finite_t.size else 0.0
    if t_max is None:
        t_max = float(finite_t.max()) if finite_t.size else 1.0
        if t_max <= t_min:
            t_max = t_min + 1.0
    else:
        t_max = float(t_max)
        if not (math.isfinite(t_max) and t_max > t_min):
            raise ValueError(
                f"t_max must be finite and larger than the start time {t_min}, "
                f"got {t_max!r}"
            )

    fig, ax, owned = _axes(ax, (6.4, 3.6))
    ms = float(np.clip(180.0 / n_neurons, 1.0, 10.0))
    ax.plot(times, idx, linestyle="none", marker="|", markersize=ms,
            markeredgewidth=1.0, color="black")
    ax.set_xlim(t_min, t_max)
    ax.set_ylim(-0.5, n_neurons - 0.5)
    ax.set_xlabel("time")
    ax.set_ylabel("neuron index")
    if title is not None:
        ax.set_title(title)
    return _finish(fig, owned, path)


def comparison(curves, xlabel, ylabel, path=None, title=None, logx=False,
               logy=False, ax=None):
    """Generic line plot comparing methods (e.g. PC vs BP), with error bands.

    Curve ``k`` is drawn as a line in the ``k``-th tab10 colour; when it has
    a ``yerr`` a translucent band ``y - yerr .. y + yerr`` is added.

    Parameters
    ----------
    curves : Mapping[str, tuple]
        Label -> ``(x, y)`` or ``(x, y, yerr)``.  ``x`` and ``y`` have shape
        ``(n,)``; ``yerr`` is a scalar, shape ``(n,)`` (symmetric) or
        ``(2, n)`` (lower, upper); ``yerr=None`` means no band.
    xlabel, ylabel : str
        Axis labels.
    path : str or os.PathLike, optional
        If given, save the figure there as PNG (see :func:`save`).
    title : str, optional
        Axes title.
    logx, logy : bool, default False
        Logarithmic x / y axis.
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; a new figure is created when None.

    Returns
    -------
    matplotlib.figure.Figure
        The new figure, or the figure owning ``ax``.

    Raises
    ------
    TypeError
        If ``curves`` is not a mapping.
    ValueError
        For an empty mapping, entries that are not 2- or 3-tuples, arrays that
        are not 1-D, or mismatched lengths of ``x``, ``y`` and ``yerr``.
    """
    _check_mapping(curves, "curves")
    if len(curves) == 0:
        raise ValueError("curves is an empty mapping; nothing to plot")
    parsed = []
    for label, entry in curves.items():
        if isinstance(entry, (str, bytes)) or not isinstance(entry, (Sequence, np.ndarray)) \
                or len(entry) not in (2, 3):
            raise ValueError(
                f"curves[{label!r}] must be a tuple (x, y) or (x, y, yerr)"
            )
        x = _as_1d(entry[0], f"x of curves[{label!r}]")
        y = _as_1d(entry[1], f"y of curves[{label!r}]")
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"curves[{label!r}]: x has length {x.shape[0]} but y has length "
                f"{y.shape[0]}"
            )
        lo = hi = None
        if len(entry) == 3 and entry[2] is not None:
            err = _as_float_array(entry[2], f"yerr of curves[{label!r}]")
            n = y.shape[0]
            if err.ndim == 0:
                lo = hi = np.full(n, float(err))
            elif err.shape == (n,):
                lo = hi = err
            elif err.shape == (2, n):
                lo, hi = err
            else:
                raise ValueError(
                    f"curves[{label!r}]: yerr must be a scalar or have shape ({n},) "
                    f"or (2, {n}), got {err.shape}"
                )
        parsed.append((str(label), x, y, lo, hi))

    fig, ax, owned = _axes(ax, (6.0, 4.2))
    for k, (label, x, y, lo, hi) in enumerate(parsed):
        color = _color(k)
        ax.plot(x, y, color=color, lw=1.8, marker="o" if x.shape[0] <= 30 else None,
                ms=3.5, label=label)
        if lo is not None:
            ax.fill_between(x, y - lo, y + hi, color=color, alpha=0.22, linewidth=0)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    ax.grid(True, alpha=0.3, which="both" if (logx or logy) else "major")
    return _finish(fig, owned, path)
