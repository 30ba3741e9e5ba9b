"""Named activation functions ``phi`` and their derivatives ``dphi``.

Every activation is registered under a name and an integer code.  The NumPy forms
(:func:`phi`, :func:`dphi`, by name or code) are the reference.  Their one compiled form is
:mod:`neurosim.backends.numba.activations` (``phi(code, a, x)``, ``dphi(code, a, x)``, a
vectorisable ``tanh``), which every numba kernel uses and ``tests/test_activations.py``
checks against these at float64 and float32; it is imported only by the kernels, so
``import neurosim`` compiles nothing.

=============  ===========================  ===============================
name           phi(x)                        dphi(x)
=============  ===========================  ===============================
linear         x                             1
tanh           tanh(x)                       1 - tanh(x)^2
sigmoid        1 / (1 + exp(-x))             s (1 - s)
relu           max(x, 0)                     1[x > 0]
leaky_relu     x if x > 0 else a x           1 if x > 0 else a   (a = 0.01)
=============  ===========================  ===============================
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Activation", "ACTIVATIONS", "get", "phi", "dphi", "names"]


@dataclass(frozen=True)
class Activation:
    """A registered activation: name, integer code for compiled backends, a parameter."""

    name: str
    code: int
    param: float = 0.0
    description: str = ""


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation("linear", 0, 0.0, "identity"),
    "tanh": Activation("tanh", 1, 0.0, "hyperbolic tangent"),
    "sigmoid": Activation("sigmoid", 2, 0.0, "logistic sigmoid"),
    "relu": Activation("relu", 3, 0.0, "rectified linear"),
    "leaky_relu": Activation("leaky_relu", 4, 0.01, "leaky rectified linear, slope 0.01 below 0"),
}


def names() -> list[str]:
    """Names of the registered activations."""
    return sorted(ACTIVATIONS)


_BY_CODE = {a.code: a for a in ACTIVATIONS.values()}


def get(name) -> Activation:
    """Look up an activation by name (or by its integer code, as the packed plans store it); unknown ones
    raise a ValueError listing the known names."""
    try:
        if isinstance(name, (int, np.integer)) and not isinstance(name, bool):
            return _BY_CODE[int(name)]
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown activation {name!r}; choose one of {names()} (codes {sorted(_BY_CODE)})"
        ) from None


def _sigmoid(x):
    # numerically stable logistic
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


def phi(name, x: np.ndarray) -> np.ndarray:
    """Apply activation ``name`` (a name or an integer code) elementwise (NumPy reference form)."""
    a = get(name)
    x = np.asarray(x)
    if a.code == 0:
        return x.copy()
    if a.code == 1:
        return np.tanh(x)
    if a.code == 2:
        return _sigmoid(x)
    if a.code == 3:
        return np.maximum(x, 0.0)
    return np.where(x > 0, x, a.param * x)


def dphi(name, x: np.ndarray) -> np.ndarray:
    """Derivative of activation ``name`` (a name or an integer code) at ``x`` (NumPy reference form)."""
    a = get(name)
    x = np.asarray(x)
    if a.code == 0:
        return np.ones_like(x)
    if a.code == 1:
        t = np.tanh(x)
        return 1.0 - t * t
    if a.code == 2:
        s = _sigmoid(x)
        return s * (1.0 - s)
    if a.code == 3:
        return (x > 0).astype(x.dtype)
    return np.where(x > 0, 1.0, a.param).astype(x.dtype)
