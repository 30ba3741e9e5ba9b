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
import textwrap
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PathCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine, PlaceHolderLayoutEngine
from matplotlib.patches import Rectangle
from matplotlib.ticker import (AutoLocator, FixedLocator, Formatter, LogFormatter, LogFormatterMathtext,
                               LogFormatterSciNotation, LogLocator, MaxNLocator, NullFormatter, NullLocator)

__all__ = [
    "save",
    "tidy",
    "caption",
    "readable_log_ticks",
    "mark_image",
    "receptive_fields",
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
        _format_ticks(fig)               # before the layout, so that it fits the final tick labels
        fig.tight_layout()
        _place_legends(fig)
    if path is not None:
        save(fig, path, _tidy=not owned)
    return fig


#: a sparse matrix (a sparse projection's ``sim.weights[name]``) is drawn as its dense form up to this many entries
_MAX_DENSE_DRAW = 2 ** 24


def _as_float_array(x, name):
    if hasattr(x, "toarray") and hasattr(x, "nnz"):   # scipy.sparse: a figure shows every entry, zeros included
        n = int(np.prod(x.shape))
        if n > _MAX_DENSE_DRAW:
            raise ValueError(f"{name} is a sparse {x.shape[0]} x {x.shape[1]} matrix ({n:,d} entries, more than a "
                             f"figure can show); draw a block of it, e.g. {name}[:256, :256]")
        x = x.toarray()
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


def _time_label(t, dt, time_unit):
    """``"step"`` for a bare step index (no ``t``, ``dt == 1``), else ``"time (<unit>)"``."""
    if t is None and dt == 1:
        return "step"
    return f"time ({time_unit})" if time_unit else "time"


_TIME_SCALES = ("auto", "linear", "log", "symlog")


def _scale_note(ax) -> str:
    """What the time axis label adds for a non-linear axis: ``", log scale"``, or for a symlog axis
    ``", log scale above 0.1"`` (linear below that), so a reader does not misjudge how fast a trace settles."""
    scale = ax.get_xscale()
    if scale == "log":
        return ", log scale"
    if scale == "symlog":
        return f", log scale above {_format_number(ax.xaxis.get_transform().linthresh)}"
    return ""


def _settle_fraction(x, series):
    """Fraction of the time window after which every series stays within 5% of its total change from its
    final value (``None`` when nothing changes)."""
    span = x[-1] - x[0]
    if not span > 0:
        return None
    settle = None
    devs = []
    for y in series:
        y = np.asarray(y, dtype=float)
        ok = np.isfinite(y)
        if ok.sum() < 2:
            continue
        dev = np.abs(y[ok] - y[ok][-1])
        devs.append((x[ok], dev, dev.max()))
    r_max = max((r for _, _, r in devs), default=0.0)
    for xx, dev, r in devs:
        if not r > 0.05 * r_max:       # a trace that barely moves does not decide
            continue
        moving = np.nonzero(dev > 0.05 * r)[0]
        t_s = xx[min(moving[-1] + 1, xx.size - 1)] - x[0]
        settle = t_s if settle is None else max(settle, t_s)
    return None if settle is None else settle / span


def _apply_time_scale(ax, x, series, time_scale):
    """Put the time axis on a scale that shows the transient of a relaxation.

    ``"auto"``: when every series settles (stays within 5% of its total change from its final value)
    within the first third of the window and there are at least 20 samples, a log time axis --
    ``"symlog"`` when the window starts at 0: linear up to the decade below the first step, logarithmic
    after it -- otherwise linear.  Returns the scale used.
    """
    if time_scale not in _TIME_SCALES:
        raise ValueError(f"time_scale must be one of {list(_TIME_SCALES)}, got {time_scale!r}")
    x = np.asarray(x, dtype=float)
    if time_scale == "auto":
        time_scale = "linear"
        if x.size >= 20 and np.all(np.diff(x) > 0) and x[0] >= 0:
            frac = _settle_fraction(x, series)
            if frac is not None and frac <= 1 / 3:
                time_scale = "symlog" if x[0] == 0 else "log"
    if time_scale == "log" and not x[0] > 0:
        raise ValueError(f"time_scale='log' needs times > 0 (the first is {x[0]:g}); use 'symlog'")
    if time_scale == "symlog":
        positive = x[x > 0]
        first = float(positive.min()) if positive.size else 1.0
        linthresh = 10.0 ** math.floor(math.log10(first) + 1e-9)   # a decade at or below the first step
        ax.set_xscale("symlog", linthresh=linthresh, linscale=0.4)
        ax.set_xlim(x[0], x[-1])
    elif time_scale == "log":
        ax.set_xscale("log")
        ax.set_xlim(x[0], x[-1])
    return time_scale


# --------------------------------------------------------------------------- #
# tidying: readable ticks, legends that do not hide data, captions
# --------------------------------------------------------------------------- #
#: ``gid`` that marks an axes showing an image (weight matrix, receptive-field tiles), whose x / y are
#: pixel positions rather than quantities; see :func:`mark_image`.
IMAGE_GID = "neurosim:image"


def mark_image(ax):
    """Mark ``ax`` as an image axes (pixels, not quantities: no x / y axis labels needed); returns ``ax``."""
    ax.set_gid(IMAGE_GID)
    return ax


def _format_number(v):
    """Plain decimal for 1e-3 <= |v| < 1e4 (``0.05``, ``2``, ``300``), ``10^k`` / ``m x 10^k`` otherwise."""
    v = float(v)
    if v == 0 or not math.isfinite(v):
        return "0" if v == 0 else ""
    a = abs(v)
    if 1e-3 * (1 - 1e-9) <= a < 1e4:
        return f"{v:.6g}"
    e = int(math.floor(math.log10(a) + 1e-9))
    m = v / 10.0 ** e
    sign = "-" if m < 0 else ""
    if abs(abs(m) - 1) < 1e-6:
        return f"${sign}10^{{{e}}}$"
    return f"${m:.3g}\\times10^{{{e}}}$"


class _LogTickFormatter(Formatter):
    """Tick labels of a log / symlog axis as plain numbers (see :func:`_format_number`).

    Minor ticks of a log axis are labelled only when the view holds fewer than three major ticks: at
    mantissas 2 and 5 (two majors) or 2, 3 and 5 (one or none), so a short axis still has labels
    without crowding.  ``thin`` (raised by :func:`tidy` while labels overlap) drops to fewer mantissas.
    """

    _MANTISSAS = ((2, 3, 5), (2, 5), (3,), ())

    def __init__(self, minor=False):
        self.minor = minor
        self.thin = 0

    def __call__(self, x, pos=None):
        if not self.minor:
            return _format_number(x)
        axis = self.axis
        if axis is None or axis.get_scale() != "log" or not x > 0:
            return ""
        lo, hi = sorted(axis.get_view_interval())
        if not lo > 0:
            return ""
        n_major = sum(1 for t in axis.get_majorticklocs() if lo <= t <= hi)
        if n_major >= 3:
            return ""
        mant = x / 10.0 ** math.floor(math.log10(x) + 1e-9)
        level = min(len(self._MANTISSAS) - 1, (1 if n_major == 2 else 0) + self.thin)
        keep = self._MANTISSAS[level]
        if not any(abs(mant - k) < 1e-6 for k in keep):
            return ""
        return _format_number(x)


def readable_log_ticks(ax):
    """Label the log / symlog axes of ``ax`` with plain numbers (``0.01, 0.1, 1``, not ``10^{-2}``)
    where that is shorter, and label a few minor ticks when fewer than three decades are in view.

    Axes whose tick formatter was set by the caller (anything but matplotlib's default log formatters)
    are left alone.  Returns ``ax``.
    """
    _readable_log_ticks(ax)
    return ax


def _readable_log_ticks(ax):
    """:func:`readable_log_ticks`; True if a formatter was replaced."""
    changed = False
    for axis in (ax.xaxis, ax.yaxis):
        if axis.get_scale() not in ("log", "symlog"):
            continue
        for fmt, setter, minor in ((axis.get_major_formatter(), axis.set_major_formatter, False),
                                   (axis.get_minor_formatter(), axis.set_minor_formatter, True)):
            if type(fmt) in (LogFormatterSciNotation, LogFormatter, LogFormatterMathtext, NullFormatter) \
                    and not (minor and isinstance(fmt, NullFormatter) and axis.get_scale() == "symlog"):
                setter(_LogTickFormatter(minor=minor))
                changed = True
    return changed


def _integer_ticks(ax):
    """Integer x ticks when every plotted x value is an integer (depths, epochs, layer numbers)."""
    axis = ax.xaxis
    if axis.get_scale() != "linear" or type(axis.get_major_locator()) is not AutoLocator or ax.get_images():
        return False
    allx = _x_values(ax)
    if not allx.size:
        return False
    if np.unique(allx).size >= 2 and np.all(allx == np.round(allx)):
        axis.set_major_locator(MaxNLocator(integer=True))
        return True
    return False


def _x_values(ax):
    """Every x value plotted in data coordinates (lines and scatter points), finite ones only."""
    xs = [np.asarray(line.get_xdata(), dtype=float) for line in ax.get_lines()
          if line.get_transform() == ax.transData]
    xs += [np.asarray(c.get_offsets(), dtype=float)[:, 0] for c in ax.collections
           if isinstance(c, PathCollection) and c.get_offset_transform() == ax.transData]
    xs = [x[np.isfinite(x)] for x in xs if np.size(x)]
    return np.concatenate(xs) if xs else np.empty(0)


def _sample_ticks(ax):
    """On a log x axis showing a few chosen values (depths, widths, learning rates: 2 to 8 values of at
    most two significant digits), put the ticks at exactly those values.  Returns the axis changed (or
    None)."""
    axis = ax.xaxis
    if axis.get_scale() != "log" or type(axis.get_major_locator()) is not LogLocator:
        return None
    vals = np.unique(_x_values(ax))
    vals = vals[vals > 0]
    if not 2 <= vals.size <= 8 or not all(abs(float(f"{v:.2g}") - v) <= 1e-9 * v for v in vals):
        return None        # not a few chosen values (measured ones are not round)
    axis.set_major_locator(FixedLocator(vals))
    axis.set_minor_locator(NullLocator())
    axis.set_major_formatter(_LogTickFormatter())
    return axis


def _data_points(ax):
    """Display coordinates of what is drawn in ``ax`` (lines densified every ~3 px, markers, scatter
    points, error bars), clipped to the axes; plus the display boxes of bars and texts."""
    pts = []
    box = ax.bbox

    def add_path(xy, connect):
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        ok = np.all(np.isfinite(xy), axis=1)
        if connect and xy.shape[0] > 1:
            for a, b, good in zip(xy[:-1], xy[1:], ok[:-1] & ok[1:]):
                if good:
                    n = int(min(2000, max(2, math.ceil(np.hypot(*(b - a)) / 3.0))))
                    s = np.linspace(0.0, 1.0, n)[:, None]
                    pts.append(a + s * (b - a))
        pts.append(xy[ok])

    for line in ax.get_lines():
        if not line.get_visible():
            continue
        xy = line.get_transform().transform(np.asarray(line.get_xydata(), dtype=float))
        connect = line.get_linestyle() not in ("None", "none", "", " ")
        add_path(xy, connect)
    boxes = []
    for c in ax.collections:
        if not c.get_visible() or isinstance(c, PolyCollection):
            continue
        if isinstance(c, LineCollection):
            tr = c.get_transform()
            for seg in c.get_segments():
                add_path(tr.transform(np.asarray(seg, dtype=float)), True)
        elif isinstance(c, PathCollection):
            offs = np.asarray(c.get_offsets(), dtype=float)
            if offs.size:
                add_path(c.get_offset_transform().transform(offs), False)
    for p in ax.patches:
        if p.get_visible() and isinstance(p, Rectangle) and p.get_transform() == ax.transData:
            boxes.append(p.get_window_extent())
    for txt in ax.texts:
        if txt.get_visible() and txt.get_text().strip():
            boxes.append(txt.get_window_extent())
    pts = np.concatenate(pts) if pts else np.empty((0, 2))
    inside = ((pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1) & (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1))
    return pts[inside], boxes


def _covers(legend_box, pts, boxes, pad):
    x0, y0, x1, y1 = legend_box.x0 - pad, legend_box.y0 - pad, legend_box.x1 + pad, legend_box.y1 + pad
    if pts.size and np.any((pts[:, 0] >= x0) & (pts[:, 0] <= x1) & (pts[:, 1] >= y0) & (pts[:, 1] <= y1)):
        return True
    return any(b.x0 < x1 and b.x1 > x0 and b.y0 < y1 and b.y1 > y0 for b in boxes)


_INNER_LOCS = ("upper right", "upper left", "lower left", "lower right", "center right", "center left",
               "upper center", "lower center", "center")


def _inside(ax, legend_box):
    cx, cy = (legend_box.x0 + legend_box.x1) / 2, (legend_box.y0 + legend_box.y1) / 2
    return ax.bbox.contains(cx, cy)


def _labels_overlap(axis, renderer):
    boxes = sorted((t.get_window_extent(renderer) for t in axis.get_ticklabels(which="both")
                    if t.get_visible() and t.get_text()), key=lambda b: (b.x0, b.y0))
    return any(a.x1 > b.x0 and b.x1 > a.x0 and a.y1 > b.y0 and b.y1 > a.y0 for a, b in zip(boxes, boxes[1:]))


def _plot_axes(fig):
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def _format_ticks(fig):
    """Plain-number log ticks, integer ticks for integer x data, ticks at the sampled values of a short
    log x axis; then, while tick labels overlap, sampled ticks go back to decades and log axes label
    fewer minor ticks.  True if anything changed."""
    axes = _plot_axes(fig)
    changed = False
    sampled = []
    for ax in axes:
        changed |= _readable_log_ticks(ax)
        changed |= _integer_ticks(ax)
        axis = _sample_ticks(ax)
        if axis is not None:
            sampled.append(axis)
            changed = True
    if fig.canvas is None or not hasattr(fig.canvas, "get_renderer"):
        FigureCanvasAgg(fig)
    thin = [axis for ax in axes for axis in (ax.xaxis, ax.yaxis)
            if axis.get_scale() == "log" and isinstance(axis.get_minor_formatter(), _LogTickFormatter)
            and axis not in sampled]
    for _ in range(len(_LogTickFormatter._MANTISSAS)):
        if not (sampled or thin):
            break
        fig.draw_without_rendering()
        renderer = fig.canvas.get_renderer()
        for axis in [a for a in sampled if _labels_overlap(a, renderer)]:   # too close: back to decades
            axis.set_major_locator(LogLocator())
            axis.set_minor_locator(LogLocator(subs="auto"))
            thin.append(axis)
        sampled = []
        thin = [axis for axis in thin if _labels_overlap(axis, renderer)]
        for axis in thin:
            axis.get_minor_formatter().thin += 1
            changed = True
    return changed


def tidy(fig):
    """Make a figure readable as a slide: plain-number log ticks (:func:`readable_log_ticks`), integer
    ticks on axes whose x values are all integers, ticks at the sampled values of a short log x axis,
    and no legend covering data.

    A legend inside its axes that covers a plotted point, line, bar or text is moved to the first of
    the nine inner positions where it covers nothing, and outside the axes (to the right) when there is
    none; the figure is then laid out again (``tight_layout``, unless it uses constrained layout).  A
    figure laid out with ``tight_layout`` before is laid out again when its tick labels changed.
    :func:`save` calls this, so every figure neurosim writes is tidied.  Returns ``fig``.
    """
    if _format_ticks(fig) and isinstance(fig.get_layout_engine(), PlaceHolderLayoutEngine):
        _relayout(fig)
    _place_legends(fig)
    return fig


def _place_legends(fig):
    legends = [(ax, ax.get_legend()) for ax in _plot_axes(fig)]
    legends = [(ax, leg) for ax, leg in legends if leg is not None and leg.get_visible()]
    if not legends:
        return
    renderer = fig.canvas.get_renderer()
    moved_out = False
    for ax, leg in legends:
        box = leg.get_window_extent(renderer)
        if not _inside(ax, box):
            continue
        pts, boxes = _data_points(ax)
        pad = 2.0 * fig.dpi / 72.0
        if not _covers(box, pts, boxes, pad):
            continue
        for loc in _INNER_LOCS:
            leg.set_loc(loc)
            if not _covers(leg.get_window_extent(renderer), pts, boxes, pad):
                break
        else:
            leg.set_bbox_to_anchor((1.02, 1.0), transform=ax.transAxes)
            leg.set_loc("upper left")
            moved_out = True
    if moved_out and not isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine):
        _relayout(fig)


def _relayout(fig):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # axes tight_layout cannot handle stay as they are
        fig.tight_layout()


def caption(fig, text, width=110, fontsize="small"):
    """Write an explanatory caption under the figure (wrapped at ``width`` characters); returns ``fig``.

    The caption sits below the axes; :func:`save` (``bbox_inches="tight"``) keeps it in the PNG.
    """
    wrapped = "\n".join(textwrap.fill(par, width) for par in str(text).split("\n"))
    fig.text(0.5, 0.0, wrapped, ha="center", va="top", fontsize=fontsize, wrap=False, color="0.2",
             gid="neurosim:caption")
    return fig


# --------------------------------------------------------------------------- #
# public API
# --------------------------------------------------------------------------- #
def save(fig, path, _tidy=True):
    """Write ``fig`` to ``path`` as a PNG.

    This is the saver used by every plotting function of this module: PNG
    format, ``dpi=120``, ``bbox_inches="tight"``.  Missing parent directories
    are created.  The figure is first tidied (:func:`tidy`: plain-number log
    ticks, integer ticks for integer data, no legend covering data).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        Figure to save.
    path : str or os.PathLike
        Destination file, ending in ``.png`` (or without a suffix).

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ValueError
        If ``path`` has another suffix (the content would be PNG under a name that says otherwise).
    """
    path = Path(os.fspath(path))
    if path.suffix and path.suffix.lower() != ".png":
        raise ValueError(f"cannot save a figure to {str(path)!r}: neurosim writes PNG figures; give the path a "
                         f"'.png' suffix (e.g. {str(path.with_suffix('.png'))!r})")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fig.canvas is None or not hasattr(fig.canvas, "print_png"):
        FigureCanvasAgg(fig)
    if _tidy:
        tidy(fig)
    fig.savefig(path, format="png", dpi=_DPI, bbox_inches="tight")
    return path


#: populations :func:`energy` draws in colour, one legend entry each; the others are grey under one entry
ENERGY_SHOWN = 10


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
    time_unit="units of tau_x",
    time_scale="auto",
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
        ``"layer k"`` for array input.  With more than :data:`ENERGY_SHOWN`
        layers (a graph circuit's vertices) the ones with the largest energy
        get colours and legend entries, the others are drawn thin and grey
        under one entry.
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
    time_unit : str, default "units of tau_x"
        Unit of ``t`` / ``dt`` shown in the x label, ``"time (<time_unit>)"``
        (a bare step index -- no ``t``, ``dt == 1`` -- is labelled
        ``"step"``).  The simulator's time is measured in the unit of its
        time constants, so with ``tau_x = 1`` it is in units of ``tau_x``.
    time_scale : {"auto", "linear", "symlog", "log"}, default "auto"
        Scale of the time axis.  ``"auto"`` uses ``"symlog"`` (linear up to
        the decade below the first step, logarithmic after it) when every
        line settles within the first third of the window, so a fast transient is not squeezed
        against the y axis; otherwise ``"linear"``.

    Returns
    -------
    matplotlib.figure.Figure
        The new figure, or the figure owning ``ax``.

    Raises
    ------
    ValueError
        For arrays that are not 1-D / 2-D, mapping values that are not 1-D or
        differ in length, empty input, ``t`` / ``labels`` of the wrong length,
        or an unknown ``time_scale``.
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
    # many populations (a graph circuit's vertices): the ENERGY_SHOWN with the largest energy in colour, the
    # others thin and grey under one legend entry (a legend of 110 entries covered the axes and the 10-colour
    # cycle repeated, so no curve could be told from another)
    shown = range(n_layers)
    if n_layers > ENERGY_SHOWN:
        peak = np.nanmax(np.where(np.isfinite(data), np.abs(data), np.nan), axis=0)
        peak = np.where(np.isnan(peak), -np.inf, peak)
        shown = sorted(np.argsort(-peak, kind="stable")[:ENERGY_SHOWN].tolist())
        rest = [k for k in range(n_layers) if k not in set(shown)]
        for j, k in enumerate(rest):
            ax.plot(x, data[:, k], color="0.7", lw=0.8, zorder=1,
                    label=f"the other {len(rest)} (smaller energies)" if j == 0 else "_nolegend_")
    for j, k in enumerate(shown):
        ax.plot(x, data[:, k], color=_color(j), lw=1.5, label=names[k])
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
    _apply_time_scale(ax, x, [data[:, k] for k in range(n_layers)], time_scale)
    ax.set_xlabel(_time_label(t, dt, time_unit) + _scale_note(ax))
    ax.set_ylabel("energy F")
    if title is not None:
        ax.set_title(title)
    if show_legend:
        ax.legend(loc="best", fontsize="small")
    ax.grid(True, alpha=0.3)
    return _finish(fig, owned, path)


def dynamics(values, errors=None, t=None, dt=1.0, max_units=10, path=None, title=None,
             time_unit="units of tau_x", time_scale="auto"):
    """Plot value-neuron (x) and error-neuron (eps) traces per population.

    Layout: one row per population; one column (values) or two columns
    (values x, errors eps) when ``errors`` is given and non-empty.  All panels
    share the time axis.  Units of a population are drawn as thin lines in the
    population's colour; only the first ``max_units`` units are plotted (a
    note above the panel says so).  Populations present in only one of the
    mappings still get their row, with only the panel that has data (no
    empty panels).

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
    max_units : int, default 10
        Maximum number of units drawn per population (the first ones); a
        layer of up to 10 units is shown whole.
    path : str or os.PathLike, optional
        If given, save the figure there as PNG (see :func:`save`).
    title : str, optional
        Figure title; defaults to "Value and error neuron dynamics".
    time_unit : str, default "units of tau_x"
        Unit of the time axis, as in :func:`energy`.
    time_scale : {"auto", "linear", "symlog", "log"}, default "auto"
        Scale of the shared time axis, as in :func:`energy` (``"auto"``
        looks at every plotted trace).

    Returns
    -------
    matplotlib.figure.Figure
        Figure with one axes per (population, column) that has data, in
        row-major order (``fig.axes[2 * i]`` is x and ``fig.axes[2 * i + 1]``
        is eps of population ``i`` when errors are shown and every
        population has both).

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
    traces = []
    for i, name in enumerate(pops):
        color = _color(i)
        for j, (sym, heading, mapping) in enumerate(columns):
            ax = axes[i, j]
            arr = mapping.get(name)
            if arr is None:
                ax.remove()
                axes[i, j] = None
                continue
            ax.set_ylabel(f"{sym}_{name}")
            if i == 0 or all(axes[k, j] is None for k in range(i)):
                ax.set_title(heading)
            n_units = arr.shape[1]
            shown = min(n_units, max_units)
            for u in range(shown):
                ax.plot(x, arr[:, u], color=color, lw=0.8, alpha=0.85)
                traces.append(arr[:, u])
            if shown < n_units:
                ax.text(1.0, 1.01, f"first {shown} of {n_units} units",
                        transform=ax.transAxes, ha="right", va="bottom",
                        fontsize="x-small", color="0.35")
            ax.grid(True, alpha=0.3)
    present = [ax for ax in axes.ravel() if ax is not None]
    _apply_time_scale(present[0], x, traces, time_scale)
    for j in range(n_cols):
        col = [axes[i, j] for i in range(n_rows) if axes[i, j] is not None]
        if col:
            col[-1].set_xlabel(_time_label(t, dt, time_unit) + _scale_note(present[0]))
            col[-1].tick_params(axis="x", labelbottom=True)
    fig.suptitle(title if title is not None else "Value and error neuron dynamics")
    return _finish(fig, True, path)


def _tile_mosaic(W, image_shape):
    """Rows of ``W`` reshaped to ``image_shape`` and laid out in a grid (few empty tiles, about twice as
    wide as tall), separated by one-pixel NaN gaps; returns the mosaic."""
    h, w = image_shape
    n = W.shape[0]

    def badness(cols):  # empty tiles first, then distance from a 2:1 mosaic
        rows = math.ceil(n / cols)
        return (rows * cols - n, abs(math.log((cols * w) / (rows * h) / 2.0)))

    lo = max(1, math.floor(math.sqrt(n * h / w)))
    cols = min(range(lo, min(n, max(lo, math.ceil(math.sqrt(4.0 * n * h / w)))) + 1), key=badness)
    rows = int(math.ceil(n / cols))
    mosaic = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), np.nan)
    for k in range(n):
        r, c = divmod(k, cols)
        mosaic[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = W[k].reshape(h, w)
    return mosaic


def _kernel_mosaic(K, max_tiles):
    """A convolution kernel ``(out, in, kh, kw)`` as a grid of ``kh x kw`` tiles, a row per output channel and a
    column per input channel, separated by one-pixel NaN gaps; at most about ``max_tiles`` tiles (the first
    channels).  Returns ``(mosaic, (rows shown, columns shown))``."""
    o, i, kh, kw = K.shape
    cols = min(i, max(1, int(max_tiles)))
    rows = min(o, max(1, int(max_tiles) // cols))
    mosaic = np.full((rows * (kh + 1) - 1, cols * (kw + 1) - 1), np.nan)
    for r in range(rows):
        for c in range(cols):
            mosaic[r * (kh + 1):r * (kh + 1) + kh, c * (kw + 1):c * (kw + 1) + kw] = K[r, c]
    return mosaic, (rows, cols)


def _check_image_shape(image_shape, name="image_shape"):
    try:
        h, w = (int(v) for v in image_shape)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (height, width), got {image_shape!r}") from None
    if h < 1 or w < 1 or (h, w) != tuple(image_shape):
        raise ValueError(f"{name} must be a pair of positive integers (height, width), got {image_shape!r}")
    return h, w


def receptive_fields(W, image_shape, ax=None, path=None, title=None, max_units=128, colorbar=True):
    """Input weights of image data as receptive-field tiles: row ``k`` of ``W`` (the weights from every
    pixel to unit ``k``) drawn as a ``height x width`` image, all tiles in one mosaic.

    Tiles share one diverging colour scale, symmetric around zero (``"RdBu_r"``, ``vmax`` = max |w|
    over the tiles shown), with a colour bar labelled "weight"; the gaps between tiles are grey.  The
    axes is marked as an image axes (:func:`mark_image`): its x / y are pixels.

    Parameters
    ----------
    W : array_like, shape (n_units, height * width)
        Weights into ``n_units`` units from a flattened image (row-major, as ``X.reshape(n, -1)``).
    image_shape : (int, int)
        ``(height, width)`` of the image, e.g. ``(8, 8)`` for the bundled digits.
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; a new figure is created when None.
    path : str or os.PathLike, optional
        If given, save the figure there as PNG (see :func:`save`).
    title : str, optional
        Axes title; defaults to "receptive fields of N units (HxW input)".
    max_units : int, default 128
        At most this many units (the first ones) are tiled; the title then says "first k of N".
    colorbar : bool, default True
        Add a colour bar.

    Returns
    -------
    matplotlib.figure.Figure
        The new figure, or the figure owning ``ax``.

    Raises
    ------
    ValueError
        If ``W`` is not 2-D or is empty, ``image_shape`` is not a pair of positive integers, ``W`` has
        a number of columns other than ``height * width``, or ``max_units < 1``.
    """
    W = _as_2d(W, "W", what="(n_units, height * width)")
    h, w = _check_image_shape(image_shape)
    if W.size == 0:
        raise ValueError(f"W is empty (shape {W.shape})")
    if W.shape[1] != h * w:
        raise ValueError(
            f"W has {W.shape[1]} columns but image_shape {(h, w)} has {h * w} pixels; pass the image "
            "shape of the layer's input (W is (n_units, n_pixels))")
    if int(max_units) != max_units or max_units < 1:
        raise ValueError(f"max_units must be a positive integer, got {max_units!r}")
    n_total = W.shape[0]
    shown = W[:int(max_units)]
    mosaic = _tile_mosaic(shown, (h, w))
    finite = _finite(shown)
    vmax = float(np.abs(finite).max()) if finite.size else 0.0
    vmax = vmax or 1.0
    n = shown.shape[0]
    cols = (mosaic.shape[1] + 1) // (w + 1)
    rows = (mosaic.shape[0] + 1) // (h + 1)
    fig, ax, owned = _axes(ax, (min(11.0, 0.45 * cols + 1.6), min(8.0, 0.45 * rows + 1.0)))
    cmap = matplotlib.colormaps[WEIGHT_CMAP].with_extremes(bad="0.8")
    im = ax.imshow(mosaic, cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    mark_image(ax)
    if title is None:
        which = f"{n} units" if n == n_total else f"first {n} of {n_total} units"
        title = f"receptive fields of {which} ({h}x{w} input)"
    ax.set_title(title)
    if colorbar:
        from mpl_toolkits.axes_grid1 import make_axes_locatable
        cax = make_axes_locatable(ax).append_axes("right", size=0.15, pad=0.08)
        cax.set_label("<colorbar>")              # as the axes fig.colorbar(..., ax=...) makes
        fig.colorbar(im, cax=cax).set_label("weight")
    return _finish(fig, owned, path)


def weights(weights, path=None, title="Weights", max_cols=4, image_shape=None, max_tiles=128):
    """Show weight matrices as images, input weights of image data as receptive-field tiles, and biases
    as bars.

    Each matrix gets its own panel with the diverging colormap ``"RdBu_r"``
    scaled symmetrically around zero (``vmin = -vmax``, ``vmax`` = max |w| of
    that matrix; 1 if the matrix is all zero), a colour bar labelled "weight",
    and a title with the name and shape.  With ``image_shape``, the input
    weights are drawn as receptive-field tiles instead (see
    :func:`receptive_fields`).  1-D arrays (biases) are drawn as bar charts.

    Parameters
    ----------
    weights : Mapping[str, array_like]
        Name -> weight matrix of shape ``(n_post, n_pre)``, convolution kernel
        ``(out channels, in channels, kh, kw)`` (drawn as a grid of kernel
        tiles: a row per output channel, a column per input channel; at most
        ``max_tiles`` tiles) or bias of shape ``(n,)``.
    path : str or os.PathLike, optional
        If given, save the figure there as PNG (see :func:`save`).
    title : str or None, default "Weights"
        Figure title (None for no title).
    max_cols : int, default 4
        Maximum number of panels per row.
    image_shape : (int, int) or Mapping[str, (int, int)], optional
        ``(height, width)`` of the input images: the first matrix whose
        ``n_pre`` equals ``height * width`` (the input weights) is drawn as
        tiles.  A mapping ``name -> (height, width)`` chooses the matrices.
    max_tiles : int, default 128
        At most this many receptive fields per tiled matrix (and kernel tiles
        per convolution kernel).

    Returns
    -------
    matplotlib.figure.Figure
        Figure with one axes per entry (plus one colour-bar axes per matrix).

    Raises
    ------
    TypeError
        If ``weights`` is not a mapping.
    ValueError
        For an empty mapping, arrays that are not 1-D / 2-D / 4-D or are empty,
        ``max_cols < 1``, a bad ``image_shape``, an ``image_shape`` that
        matches no matrix's ``n_pre``, or an ``image_shape`` mapping that
        names a missing entry or one whose ``n_pre`` does not match.
    """
    _check_mapping(weights, "weights")
    if len(weights) == 0:
        raise ValueError("weights is an empty mapping; nothing to plot")
    if int(max_cols) != max_cols or max_cols < 1:
        raise ValueError(f"max_cols must be a positive integer, got {max_cols!r}")
    items = []
    for name, w in weights.items():
        arr = _as_float_array(w, f"weights[{name!r}]")
        if arr.ndim not in (1, 2, 4):
            raise ValueError(
                f"weights[{name!r}] must be 2-D (n_post, n_pre), 4-D (out channels, in channels, kh, kw: a "
                f"convolution kernel) or 1-D (n,), got an array of shape {arr.shape}"
            )
        if arr.size == 0:
            raise ValueError(f"weights[{name!r}] is empty (shape {arr.shape})")
        items.append((str(name), arr))

    tiled = {}
    if isinstance(image_shape, Mapping):
        for name, shape in image_shape.items():
            match = [arr for n, arr in items if n == str(name)]
            if not match:
                raise ValueError(f"image_shape names {name!r}, which is not in weights "
                                 f"({', '.join(n for n, _ in items)})")
            hw = _check_image_shape(shape, f"image_shape[{name!r}]")
            if match[0].ndim != 2 or match[0].shape[1] != hw[0] * hw[1]:
                raise ValueError(f"weights[{name!r}] has shape {match[0].shape}, which is not "
                                 f"(n_units, {hw[0] * hw[1]}) for image_shape {hw}")
            tiled[str(name)] = hw
    elif image_shape is not None:
        hw = _check_image_shape(image_shape)
        kernels = [(name, arr) for name, arr in items if arr.ndim == 4]
        if kernels:   # a convolutional circuit: its input weights are kernels, and a matrix of as many columns reads
            name, arr = kernels[0]   # features, not pixels
            raise ValueError(
                f"image_shape {hw}: weights[{name!r}] {tuple(arr.shape)} is a convolution kernel (drawn as kernel "
                f"tiles), so the input images are read by kernels, and a matrix of {hw[0] * hw[1]} columns reads "
                "features, not pixels; leave image_shape out, or name a matrix with image_shape={name: (height, "
                "width)}")
        for name, arr in items:
            if arr.ndim == 2 and arr.shape[1] == hw[0] * hw[1]:
                tiled[name] = hw
                break
        else:
            shapes = ", ".join(f"{n} {tuple(a.shape)}" for n, a in items)
            raise ValueError(f"image_shape {hw} has {hw[0] * hw[1]} pixels, but no weight matrix has "
                             f"{hw[0] * hw[1]} columns (n_pre): {shapes}; pass the shape of the input images "
                             f"(e.g. (8, 8) for 64 inputs), or leave image_shape out")

    # receptive-field mosaics get a full-width row each (on top); the other entries fill a grid below
    grid_items = [(name, arr) for name, arr in items if name not in tiled]
    tile_items = [(name, arr) for name, arr in items if name in tiled]
    n = len(grid_items)
    n_cols = min(n, int(max_cols)) if n else 1
    n_rows = math.ceil(n / n_cols) if n else 0
    width = max(4.0 * n_cols + 0.4, 8.0 if tile_items else 0.0)
    tile_h = [min(4.5, max(2.0, 0.42 * ((_tile_mosaic(arr[:int(max_tiles)], tiled[name]).shape[0] + 1)
                                         // (tiled[name][0] + 1)) + 0.9)) for name, arr in tile_items]
    fig = _new_figure((width, sum(tile_h) + 3.4 * n_rows + 0.6))
    gs = fig.add_gridspec(len(tile_items) + n_rows, n_cols, height_ratios=tile_h + [3.4] * n_rows)
    for r, (name, arr) in enumerate(tile_items):
        receptive_fields(arr, tiled[name], ax=fig.add_subplot(gs[r, :]), max_units=max_tiles,
                         title=f"{name} {tuple(arr.shape)}: receptive fields")
    axes = [fig.add_subplot(gs[len(tile_items) + k // n_cols, k % n_cols]) for k in range(n)]
    for ax, (name, arr) in zip(axes, grid_items):
        if arr.ndim == 1:
            ax.bar(np.arange(arr.shape[0]), arr, width=0.8, color=_color(0))
            ax.axhline(0.0, color="0.4", lw=0.6)
            ax.set_title(f"{name} {tuple(arr.shape)}")
            ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))   # few enough not to touch
            ax.set_xlabel("unit")
            ax.set_ylabel("bias")
            ax.grid(True, axis="y", alpha=0.3)
            continue
        finite = _finite(arr)
        vmax = float(np.abs(finite).max()) if finite.size else 0.0
        if vmax == 0.0:
            vmax = 1.0
        if arr.ndim == 4:   # a convolution kernel: one kh x kw tile per (out, in) channel pair
            mosaic, shown = _kernel_mosaic(arr, max_tiles)
            im = ax.imshow(mosaic, cmap=matplotlib.colormaps[WEIGHT_CMAP].with_extremes(bad="0.8"), vmin=-vmax,
                           vmax=vmax, aspect="equal", interpolation="nearest")   # grey gaps (white is a zero weight)
            o, i, kh, kw = arr.shape
            ax.set_title(f"{name} {tuple(arr.shape)}" + ("" if shown == (o, i) else
                                                          f": first {shown[0]} x {shown[1]} channels"))
            for n_shown, k, set_ticks in ((shown[1], kw, ax.set_xticks), (shown[0], kh, ax.set_yticks)):
                step = max(1, math.ceil(n_shown / 8))   # a channel label at the centre of every step-th tile
                chans = list(range(0, n_shown, step))
                set_ticks([(k + 1) * c + (k - 1) / 2 for c in chans], [str(c) for c in chans])
            ax.set_xlabel("input channel")
            ax.set_ylabel("output channel")
            fig.colorbar(im, ax=ax).set_label("weight")
            continue
        im = ax.imshow(arr, cmap=WEIGHT_CMAP, vmin=-vmax, vmax=vmax,
                       aspect="auto", interpolation="nearest")
        ax.set_title(f"{name} {tuple(arr.shape)}")
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("pre-synaptic unit")
        ax.set_ylabel("post-synaptic unit")
        fig.colorbar(im, ax=ax).set_label("weight")
    if title is not None:
        fig.suptitle(title)
    return _finish(fig, True, path)


def learning_curves(history, path=None, title="Learning curves", smooth=None):
    """Plot training histories: loss, energy and accuracy panels.

    Per-batch series are drawn against the number of batches seen
    (``1 .. n_batches``).  Per-epoch series are drawn as markers at the batch
    where each epoch ends: ``history["epoch_end_batch"]``, and for the test
    values the epochs ``history["test_epoch"]`` (a :class:`neurosim.History`
    records both, so several ``train`` calls, other batch sizes and calls
    without test data are drawn where they happened); without them, evenly at
    ``(k + 1) * n_batches / n_epochs``.  When the history has no per-batch
    series at all they are drawn against the epoch number instead.

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

    # where the per-epoch values belong (a neurosim History records it; other mappings may not): the batch count
    # at each epoch's end, and the epoch of each test value -- several train calls, other batch sizes or calls
    # without test data put them elsewhere than evenly spaced
    ends = _positions(history, "epoch_end_batch")
    test_epoch = _positions(history, "test_epoch")

    def epoch_x(key, arr, n_batches):
        n = arr.shape[0]
        epochs = None
        if key.startswith("test_") and test_epoch is not None and test_epoch.size == n:
            epochs = test_epoch.astype(int)
        elif key.startswith("epoch_") and ends is not None and ends.size == n:
            epochs = np.arange(1, n + 1)
        if epochs is not None:
            if n_batches is None:
                return epochs.astype(float)
            if ends is not None and epochs.max() <= ends.size and ends[-1] == n_batches:
                return ends[epochs - 1].astype(float)
        if n_batches is None:
            return np.arange(1, n + 1, dtype=float)
        return (np.arange(n) + 1) * n_batches / n

    def epoch_lines(ax, name, nb):
        """The per-epoch training and test values of ``name`` ("loss" or "accuracy"), at the epochs' ends."""
        for key, color, marker, label in ((f"epoch_{name}", smooth_c, "o", f"epoch {name}"),
                                          (f"test_{name}", test_c, "s", f"test {name}")):
            if key in h:
                y = h[key]
                ax.plot(epoch_x(key, y, nb), y, color=color, marker=marker, ms=5, lw=1.0, label=label)

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
            epoch_lines(ax, "loss", nb)
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
            epoch_lines(ax, "accuracy", nb)
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


def _positions(history, key):
    """``history[key]`` as a 1-D array of positive integers (epoch or batch numbers), or None when it is missing,
    empty or not such numbers (then the per-epoch points are spaced evenly)."""
    v = history.get(key) if hasattr(history, "get") else None
    if v is None:
        return None
    try:
        a = np.asarray(v, dtype=float).ravel()
    except (TypeError, ValueError):
        return None
    if a.size == 0 or not np.all(np.isfinite(a)) or np.any(a < 1) or np.any(a != np.round(a)):
        return None
    return a.astype(int)


def raster(spike_times, spike_indices, n_neurons=None, t_max=None, ax=None,
           path=None, title="Spikes", time_unit="ms"):
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
    time_unit : str, default "ms"
        Unit of ``spike_times``, shown in the x label ``"time (<time_unit>)"``
        (the spiking backend reports spike times in ms).

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
    ax.set_xlabel(f"time ({time_unit})" if time_unit else "time")
    ax.set_ylabel("neuron index")
    if title is not None:
        ax.set_title(title)
    return _finish(fig, owned, path)


def comparison(curves, xlabel, ylabel, path=None, title=None, logx=False,
               logy=False, ax=None, styles=None, time_scale=None):
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
    styles : Mapping[str, dict], optional
        Label -> extra keyword arguments for that curve's line (``color``,
        ``ls``, ``marker``, ...), e.g. to draw a reference dashed in the
        colour of the curve it belongs to, or to tell apart curves that
        coincide.
    time_scale : {"auto", "linear", "symlog", "log"}, optional
        For curves over relaxation time: scale the x axis as in
        :func:`energy` (``"auto"`` picks a symlog axis when every curve
        settles early).  Not combined with ``logx``.

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
    styles = {} if styles is None else styles
    _check_mapping(styles, "styles")
    unknown = [str(k) for k in styles if str(k) not in {p[0] for p in parsed}]
    if unknown:
        raise ValueError(f"styles names curves that do not exist: {', '.join(unknown)} "
                         f"(curves: {', '.join(p[0] for p in parsed)})")
    styles = {str(k): dict(v) for k, v in styles.items()}
    if time_scale is not None and logx:
        raise ValueError("pass either logx=True or time_scale, not both")

    fig, ax, owned = _axes(ax, (6.0, 4.2))
    for k, (label, x, y, lo, hi) in enumerate(parsed):
        kw = {"color": _color(k), "lw": 1.8, "marker": "o" if x.shape[0] <= 30 else None,
              "ms": 3.5, **styles.get(label, {}), "label": label}
        line, = ax.plot(x, y, **kw)
        if lo is not None:
            ax.fill_between(x, y - lo, y + hi, color=line.get_color(), alpha=0.22, linewidth=0)
    if time_scale is not None:
        longest = max(parsed, key=lambda p: p[1].shape[0])[1]
        _apply_time_scale(ax, longest, [np.interp(longest, p[1], p[2]) for p in parsed
                                        if p[1].shape[0] > 1 and np.all(np.diff(p[1]) > 0)], time_scale)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel + (_scale_note(ax) if time_scale is not None and xlabel else ""))
    ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    ax.grid(True, alpha=0.3, which="both" if (logx or logy) else "major")
    return _finish(fig, owned, path)
