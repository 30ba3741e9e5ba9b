r"""Metrics of prospective configuration (Song et al. 2024) and of model-versus-data fits.

All functions take plain arrays (never simulators), so they apply equally to PC, BP or any other rule.

Target alignment and the prospective index
------------------------------------------
For one training step :math:`W \to W'` on a sample with input :math:`s` and target :math:`t`,

.. math::

    \mathrm{TA} = \cos\big(y_{W'}(s) - y_W(s),\; t - y_W(s)\big)
               = \frac{\langle \Delta y,\, t - y_W\rangle}{\lVert\Delta y\rVert\,\lVert t - y_W\rVert},

computed per sample and averaged over the batch (``nature_target_alignment/base*.yaml`` of the authors'
code).  ``TA = 1`` means the output moved straight towards the target.  For a single weight layer both
PC and BP give :math:`\Delta y = \alpha \lVert s\rVert^2 (t - y)` and hence ``TA = 1``.

The prospective index of layer :math:`l` compares the activity that relaxation inferred (target clamped,
before any weight change), :math:`x^+_W`, with the activity that the weight change then produces in a
feedforward pass, :math:`x^-_{W'}`, both relative to the feedforward activity before learning
:math:`x^-_W`:

.. math::

    \mathrm{PI}_l = \cos\big(x^-_{l,W'} - x^-_{l,W},\; x^+_{l,W} - x^-_{l,W}\big).

For the output layer :math:`x^+ = t`, so :math:`\mathrm{PI}_L = \mathrm{TA}`.

Weight trajectories
-------------------
For a sequence of (flattened) weights :math:`w_0, \dots, w_K`: the path length
:math:`\sum_k \lVert w_{k+1} - w_k\rVert`, the displacement :math:`\lVert w_K - w_0\rVert`, their ratio
(the *erraticness*, :math:`\ge 1`, equal to 1 for a straight path) and the cosines between successive
steps (negative cosines are the zig-zags of backprop in the 1-2-2 example).

Fits of a model to behavioural / physiological data
---------------------------------------------------
:func:`linear_fit` maps model numbers :math:`m_i` onto data :math:`d_i` by least squares,
:math:`\hat d_i = k m_i + b` (or :math:`k m_i`), the procedure of the authors' ``fit_data.py``; the
fitting error is :math:`\sum_i (\hat d_i - d_i)^2`.

Conventions: vectors live on the last axis; a zero-length vector has no direction, so its cosine is NaN
(returned, not hidden) -- e.g. the target alignment of a step that did not change the output.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "cosine", "target_alignment", "target_alignment_angle", "prospective_index", "trajectory_length",
    "displacement", "erraticness", "step_cosines", "zigzags", "linear_fit",
]


def _as_float(name: str, a) -> np.ndarray:
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a numeric array, got {type(a).__name__}") from None
    if arr.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension (a vector or a batch of vectors)")
    return arr


def cosine(a, b) -> np.ndarray:
    r"""Cosine similarity :math:`\langle a, b\rangle / (\lVert a\rVert \lVert b\rVert)` along the last axis.

    Parameters
    ----------
    a, b : array_like, same shape ``(..., n)``

    Returns
    -------
    ndarray, shape ``(...)``
        NaN where either vector has zero norm.
    """
    a = _as_float("a", a)
    b = _as_float("b", b)
    if a.shape != b.shape:
        raise ValueError(f"cosine: a has shape {a.shape} but b has shape {b.shape}; they must match")
    num = np.sum(a * b, axis=-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return np.clip(out, -1.0, 1.0)


def _batch(name: str, a) -> np.ndarray:
    a = _as_float(name, a)
    return a[None, :] if a.ndim == 1 else a


def _batches(who: str, **arrays) -> list:
    """The arrays as batches (:func:`_batch`), in order; a ValueError naming ``who`` and every shape if they differ."""
    out = [_batch(name, a) for name, a in arrays.items()]
    if len({a.shape for a in out}) > 1:
        raise ValueError(f"{who}: shapes differ: " + ", ".join(f"{n} {a.shape}" for n, a in zip(arrays, out)))
    return out


def target_alignment(y_before, y_after, target, per_sample: bool = False):
    r"""Target alignment :math:`\cos(y_{after} - y_{before},\; t - y_{before})`.

    Parameters
    ----------
    y_before : array_like, shape ``(B, n)`` or ``(n,)``
        Feedforward output before the training step.
    y_after : array_like, same shape
        Feedforward output on the same input after the step.
    target : array_like, same shape
    per_sample : bool
        Return the ``(B,)`` per-sample values instead of their mean.

    Returns
    -------
    float or ndarray
        The batch mean of the per-sample cosines (Song et al.'s definition); NaN if the output did not
        move or already equals the target for some sample.
    """
    yb, ya, t = _batches("target_alignment", y_before=y_before, y_after=y_after, target=target)
    ta = cosine(ya - yb, t - yb)
    return ta if per_sample else float(np.mean(ta))


def target_alignment_angle(ta) -> np.ndarray | float:
    r"""The angle variant :math:`\arccos(\min(\mathrm{TA}, 1))` in degrees (0 = straight to the target)."""
    arr = np.degrees(np.arccos(np.clip(np.asarray(ta, dtype=np.float64), -1.0, 1.0)))
    return float(arr) if arr.ndim == 0 else arr


def prospective_index(x_before, x_relaxed, x_after, per_sample: bool = False):
    r"""Prospective index :math:`\cos(x^-_{W'} - x^-_W,\; x^+_W - x^-_W)` of one layer.

    Parameters
    ----------
    x_before : array_like, shape ``(B, n)`` or ``(n,)``
        :math:`x^-_W`: the layer's feedforward activity before learning (output free).
    x_relaxed : array_like, same shape
        :math:`x^+_W`: its activity after relaxation with the target clamped, before the weight change.
    x_after : array_like, same shape
        :math:`x^-_{W'}`: its feedforward activity after the weight change.
    per_sample : bool
        Return the per-sample values instead of their mean.

    Returns
    -------
    float or ndarray
        1 means relaxation inferred exactly the direction in which learning then moved the activity.
    """
    xb, xr, xa = _batches("prospective_index", x_before=x_before, x_relaxed=x_relaxed, x_after=x_after)
    pi = cosine(xa - xb, xr - xb)
    return pi if per_sample else float(np.mean(pi))


def _trajectory(ws) -> np.ndarray:
    w = _as_float("weights", ws)
    if w.shape[0] < 2:
        raise ValueError(f"a weight trajectory needs at least 2 points, got {w.shape[0]}")
    return w.reshape(w.shape[0], -1)


def trajectory_length(ws) -> float:
    r"""Path length :math:`\sum_k \lVert w_{k+1} - w_k\rVert` of a trajectory ``ws`` (``(K+1, ...)``)."""
    w = _trajectory(ws)
    return float(np.sum(np.linalg.norm(np.diff(w, axis=0), axis=1)))


def displacement(ws) -> float:
    r"""Straight-line distance :math:`\lVert w_K - w_0\rVert` of a trajectory ``ws`` (``(K+1, ...)``)."""
    w = _trajectory(ws)
    return float(np.linalg.norm(w[-1] - w[0]))


def erraticness(ws) -> float:
    r"""Path length divided by displacement (:math:`\ge 1`; 1 for a straight path, NaN if it returns home)."""
    d = displacement(ws)
    return trajectory_length(ws) / d if d > 0 else float("nan")


def step_cosines(ws) -> np.ndarray:
    r"""Cosines :math:`\cos(w_{k+1} - w_k,\; w_{k+2} - w_{k+1})` between successive steps, shape ``(K-1,)``."""
    w = _trajectory(ws)
    steps = np.diff(w, axis=0)
    if steps.shape[0] < 2:
        return np.zeros(0)
    return cosine(steps[:-1], steps[1:])


def zigzags(ws) -> int:
    """Number of direction reversals: successive steps with a negative cosine (zero-length steps skipped)."""
    c = step_cosines(ws)
    return int(np.sum(c[np.isfinite(c)] < 0))


def linear_fit(model, data, offset: bool = True) -> dict:
    r"""Least-squares map of model numbers onto data: :math:`\hat d = k m + b` (or :math:`k m`).

    This is the fit of the authors' ``fit_data.py`` (``fit_with='kb'`` or ``'k'``), in closed form.

    Parameters
    ----------
    model, data : array_like, shape ``(n,)``
        One number per experimental condition, in the same order.
    offset : bool
        Fit the offset ``b`` too (needs ``n >= 2``).

    Returns
    -------
    dict
        ``k``, ``b`` (0 without offset), ``fitted`` (:math:`\hat d`, shape ``(n,)``) and ``sse``
        :math:`= \sum_i (\hat d_i - d_i)^2`.  A model that is constant across conditions (or all zero
        without offset) cannot be scaled: ``k = 0`` and the fit is the data mean (or 0).
    """
    m = _as_float("model", model).ravel()
    d = _as_float("data", data).ravel()
    if m.shape != d.shape:
        raise ValueError(f"linear_fit: {m.size} model values for {d.size} data values; give one per condition")
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(d))):
        raise ValueError("linear_fit: model and data must be finite")
    if offset:
        if m.size < 2:
            raise ValueError("linear_fit with offset needs at least 2 conditions")
        mc = m - m.mean()
        var = float(mc @ mc)
        k = float(mc @ (d - d.mean()) / var) if var > 0 else 0.0
        b = float(d.mean() - k * m.mean())
    else:
        ss = float(m @ m)
        k = float(m @ d / ss) if ss > 0 else 0.0
        b = 0.0
    fitted = k * m + b
    return {"k": k, "b": b, "fitted": fitted, "sse": float(np.sum((fitted - d) ** 2))}
