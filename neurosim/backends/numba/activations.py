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
from numba.extending import intrinsic, overload

from ...config import JIT_OPTIONS

__all__ = ["tanh", "tanh32", "tanh64", "sigmoid", "exp_le40", "exp_0to40_f32", "phi", "dphi", "dphi_from",
           "phi_block"]

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
def tanh64(x):
    r"""tanh(x) in float64 (whatever the argument's type), vectorisable: Cephes' rational form :math:`x + x^3 P(x^2)/Q(x^2)` for
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


@intrinsic
def _bits_to_f32(typingctx, v):
    """Reinterpret the low 32 bits of an integer as a float32 (used to build powers of two)."""
    if isinstance(v, nbtypes.Integer) and v.bitwidth >= 32:
        def codegen(context, builder, signature, args):
            a = args[0] if v.bitwidth == 32 else builder.trunc(args[0], ir.IntType(32))
            return builder.bitcast(a, ir.FloatType())
        return nbtypes.float32(v), codegen
    return None


# float32 constants (numba types a global np.float32 as a float32 constant: no promotion to float64)
_F32 = {k: np.float32(v) for k, v in dict(
    zero=0.0, half=0.5, one=1.0, two=2.0, twenty=20.0, forty=40.0, branch=0.625, log2e=1.44269504088896341,
    ln2_hi=0.693359375, ln2_lo=-2.12194440e-4,
    e5=1.9875691500e-4, e4=1.3981999507e-3, e3=8.3334519073e-3, e2=4.1665795894e-2, e1=1.6666665459e-1,
    e0=5.0000001201e-1,
    t4=-5.70498872745e-3, t3=2.06390887954e-2, t2=-5.37397155531e-2, t1=1.33314422036e-1,
    t0=-3.33332819422e-1).items()}
_F32_ZERO, _F32_HALF, _F32_ONE, _F32_TWO = _F32["zero"], _F32["half"], _F32["one"], _F32["two"]
_F32_20, _F32_40, _F32_BRANCH, _F32_LOG2E = _F32["twenty"], _F32["forty"], _F32["branch"], _F32["log2e"]
_F32_LN2_HI, _F32_LN2_LO = _F32["ln2_hi"], _F32["ln2_lo"]
_E5, _E4, _E3, _E2, _E1, _E0 = (_F32[f"e{i}"] for i in (5, 4, 3, 2, 1, 0))
_T4, _T3, _T2, _T1, _T0 = (_F32[f"t{i}"] for i in (4, 3, 2, 1, 0))


@njit(**_jit_strict)
def exp_0to40_f32(y):
    r"""exp(y) in float32 for 0 <= y <= 40 (tanh's range), branch-free: Cephes' ``expf`` (Cody-Waite
    reduction :math:`y = k \ln 2 + r` with a two-part :math:`\ln 2`, degree-7 polynomial, about 1 ulp) and
    :math:`2^k` from the exponent bits (no subnormal or overflowing results in this range)."""
    y = _F32_ZERO if y < _F32_ZERO else y   # NaN passes through the comparisons unchanged
    y = _F32_40 if y > _F32_40 else y
    k = np.int32(y * _F32_LOG2E + _F32_HALF)   # y >= 0: truncation is floor
    k = min(max(k, np.int32(0)), np.int32(60))  # NaN converts to garbage: keep the exponent valid
    kf = np.float32(k)
    r = (y - kf * _F32_LN2_HI) - kf * _F32_LN2_LO
    z = r * r
    p = _E5 * r + _E4
    p = p * r + _E3
    p = p * r + _E2
    p = p * r + _E1
    p = p * r + _E0
    p = (p * z + r) + _F32_ONE
    return p * _bits_to_f32((k + np.int32(127)) << np.int32(23))


@njit(**_jit_strict)
def tanh32(x):
    r"""tanh(x) computed in float32 (float32 argument), vectorisable in twice as many lanes as :func:`tanh64`:
    Cephes' ``tanhf``, :math:`x + x^3 P(x^2)` for :math:`|x| < 0.625`, :math:`1 - 2 / (e^{2|x|} + 1)` above
    (:func:`exp_0to40_f32`; exactly 1 beyond 20)."""
    ax = abs(x)
    e = exp_0to40_f32(_F32_TWO * (_F32_20 if ax > _F32_20 else ax))
    big = _F32_ONE - _F32_TWO / (e + _F32_ONE)
    big = -big if x < _F32_ZERO else big
    s = x * x
    poly = (((_T4 * s + _T3) * s + _T2) * s + _T1) * s + _T0
    small = x + x * s * poly
    return small if ax < _F32_BRANCH else big


def _tanh_of_type(x):
    """Typing stub: inside jitted code, :func:`tanh32` for a float32 argument, else :func:`tanh64`."""
    raise NotImplementedError("only callable from jitted code")


@overload(_tanh_of_type, jit_options=_jit_strict)
def _tanh_of_type_impl(x):
    if isinstance(x, nbtypes.Float) and x.bitwidth == 32:
        return lambda x: tanh32(x)
    return lambda x: tanh64(x)


@njit(**_jit_strict)
def tanh(x):
    r"""tanh(x) in the argument's precision: :func:`tanh32` for float32 (computing a float32 activation in
    float64 costs 5x its time and halves the vector lanes), :func:`tanh64` otherwise; at most 3 ulp from
    NumPy's ``tanh`` in either precision (tests)."""
    return _tanh_of_type(x)


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
