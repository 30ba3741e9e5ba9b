r"""The jitted activation functions: the one compiled form of every activation of :mod:`neurosim.activations`.

Every numba kernel (the core, the algorithm kernels, the graph kernels, the event-driven hardware kernel)
takes ``phi``/``dphi`` from here, so that one implementation is tested against the NumPy reference
(``tests/test_activations.py``, float64 and float32).  They dispatch on the integer code of
:data:`neurosim.activations.ACTIVATIONS` (0 linear, 1 tanh, 2 sigmoid, 3 relu, 4 leaky relu with slope ``a``).

:func:`tanh` and :func:`sigmoid` are vectorisable: a Cody-Waite reduced exponential (:func:`exp_le40`) and
Cephes' rational tanh, at most 3 ulp from NumPy's ``tanh`` (measured in the tests), so that LLVM vectorises
the loops that call them; the libm scalar ``tanh`` costs ~20 ns per element and blocks vectorisation.  relu
passes NaN through (as ``np.maximum``), so that divergence is seen by the finiteness checks.

This module imports numba: it is imported by the kernels, never by ``import neurosim``.
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit
from numba.core import types as nbtypes
from numba.extending import intrinsic

from ...config import JIT_OPTIONS

__all__ = ["tanh", "sigmoid", "exp_le40", "phi", "dphi", "dphi_from", "phi_block"]

_jit = JIT_OPTIONS
#: the transcendental functions allow only FMA contraction: reassociating the Cody-Waite reduction
#: ``(y - k ln2_hi) - k ln2_lo`` would cost ~|k| ulp (200 ulp at exp(-700)); vectorisation does not need it
_jit_strict = dict(JIT_OPTIONS, fastmath={"contract"})


@intrinsic
def _bits_to_f64(typingctx, v):
    """Reinterpret the bits of an int64 as a float64 (used to build powers of two)."""
    if isinstance(v, nbtypes.Integer) and v.bitwidth == 64:
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.DoubleType())
        return nbtypes.float64(v), codegen
    return None


@njit(**_jit_strict)
def exp_le40(y):
    r"""exp(y) for y <= 40 (underflows to 0 below about -745); branch-free so loops vectorise.

    Cody-Waite reduction :math:`y = k \ln 2 + r`, :math:`|r| \le \ln 2 / 2`, a degree-13 Taylor
    polynomial for :math:`e^r` (truncation < 1e-17) and :math:`2^k` split into two factors built from
    the exponent bits so that subnormal results round once.
    """
    y = -746.0 if y < -746.0 else y  # NaN passes through the comparison unchanged
    y = 40.0 if y > 40.0 else y
    kf = math.floor(y * 1.4426950408889634 + 0.5)
    r = (y - kf * 6.93147180369123816490e-01) - kf * 1.90821492927058770002e-10
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    k = np.int64(kf)
    k = min(max(k, np.int64(-1080)), np.int64(60))  # NaN converts to garbage: keep the exponent valid
    k1 = k >> 1
    k2 = k - k1
    s1 = _bits_to_f64((k1 + np.int64(1023)) << np.int64(52))
    s2 = _bits_to_f64((k2 + np.int64(1023)) << np.int64(52))
    return (p * s1) * s2


@njit(**_jit_strict)
def tanh(x):
    r"""tanh(x), vectorisable: Cephes' rational form :math:`x + x^3 P(x^2)/Q(x^2)` for
    :math:`|x| < 0.625`, :math:`1 - 2 / (e^{2|x|} + 1)` above (exactly 1 beyond 20)."""
    ax = abs(x)
    e = exp_le40(2.0 * (20.0 if ax > 20.0 else ax))
    big = 1.0 - 2.0 / (e + 1.0)
    big = math.copysign(big, x)
    s = x * x
    num = (-9.64399179425052238628E-1 * s - 9.92877231001918586564E1) * s - 1.61468768441708447952E3
    den = ((s + 1.12811678491632931402E2) * s + 2.23548839060100448583E3) * s + 4.84406305325125486048E3
    small = x + x * s * (num / den)
    return small if ax < 0.625 else big


@njit(**_jit_strict)
def sigmoid(x):
    r"""Logistic :math:`1/(1+e^{-x})`, vectorisable; for :math:`x < 0` the form :math:`e^x/(1+e^x)`."""
    t = exp_le40(-abs(x))
    d = 1.0 + t
    return 1.0 / d if x >= 0 else t / d


@njit(**_jit)
def phi(code, a, x):
    """phi(x) of the activation with integer ``code`` and parameter ``a`` (the leaky slope)."""
    if code == 0:
        return x
    if code == 1:
        return tanh(x)
    if code == 2:
        return sigmoid(x)
    if code == 3:
        return x if (x > 0 or x != x) else 0.0
    return x if x > 0 else a * x


@njit(**_jit)
def dphi_from(code, a, x, fx):
    """dphi(x) given fx = phi(x): tanh and sigmoid reuse fx instead of a second transcendental."""
    if code == 0:
        return 1.0
    if code == 1:
        return 1.0 - fx * fx
    if code == 2:
        return fx * (1.0 - fx)
    if code == 3:
        return 1.0 if x > 0 else 0.0
    return 1.0 if x > 0 else a


@njit(**_jit)
def dphi(code, a, x):
    """dphi(x) of the activation with integer ``code`` and parameter ``a``."""
    return dphi_from(code, a, x, phi(code, a, x))


@njit(**_jit)
def phi_block(code, a, x, out, o, m):
    """out[o:o+m] = phi(x[o:o+m]), one loop per activation so that each vectorises.

    Loops run over views from index 0: numba's negative-index wrap-around on an index of unknown sign
    (``x[o + j]``) turns every access into a gather/scatter and stops vectorisation.
    """
    xs = x[o:o + m]
    ys = out[o:o + m]
    if code == 0:
        for j in range(m):
            ys[j] = xs[j]
    elif code == 1:
        for j in range(m):
            ys[j] = tanh(xs[j])
    elif code == 2:
        for j in range(m):
            ys[j] = sigmoid(xs[j])
    elif code == 3:
        for j in range(m):
            v = xs[j]
            ys[j] = v if (v > 0 or v != v) else 0.0
    else:
        for j in range(m):
            v = xs[j]
            ys[j] = v if v > 0 else a * v
