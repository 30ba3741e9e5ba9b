r"""The numba backend: a whole batch relaxation (all populations, T steps, the weight update) in one
jitted call.

Memory layout
-------------
Each state buffer is one flat vector; population ``i`` owns the C-contiguous block
``[B * off_i, B * (off_i + n_i))`` viewed as ``(B, n_i)``.  Matrix products go to BLAS (``np.dot`` on
these contiguous views) for batches above :data:`SMALL_BATCH` and to hand-written, vectorised loops
below it, where call overhead dominates.  No allocation happens inside the relaxation loop.

What one step costs
-------------------
The kernel mirrors :mod:`neurosim.backends.reference` (the conformance suite checks it to 1e-10 in
float64) but does only the work whose result can change:

* predictions :math:`\mu_i` of populations whose inputs are all fixed (clamped inputs, a clamped
  target) are computed once per batch, not once per step;
* feedback :math:`a W^T \varepsilon` is computed only into populations that move;
* :math:`\phi(x)` is computed only for populations that project through weights, fused with the
  Euler update of :math:`x`; :math:`\phi'` is taken from :math:`\phi` (tanh: :math:`1 - \phi^2`,
  sigmoid: :math:`\phi (1 - \phi)`);
* errors, energy and the value update are each one fused pass over a population's block;
* for batches up to :data:`SMALL_BATCH`, a population whose only input is one weighted projection gets
  its prediction, error, energy and the feedback into its input population from one pass over the
  weight matrix (:func:`_fused`): row j gives :math:`\mu_j` and :math:`\varepsilon_j` and is reused for
  :math:`fb \mathrel{+}= a \varepsilon_j W_j` while it is in L1 (one read of W per step, not two);
* plain SGD on a small batch updates W in one rank-B pass without a gradient buffer.

Loops run over views indexed from 0 (numba's negative-index wrap-around on ``x[o + j]`` turns loads
into gathers), accumulate in the arrays' precision (float32 runs use 16-lane vectors), and helpers with
array arguments stay out of inner loops (each call costs reference-count updates).  Probe records go to
the caller's record store (``rec_out``: the Simulator's, so nothing is copied) or to a buffer reused
across calls.  ``backend_options={"blas_threads": n}`` limits the BLAS threads of the
products during a call (see :class:`_BlasThreads`).

Elementwise transcendental functions are vectorised: :func:`tanh` and :func:`sigmoid` are written
with a Cody-Waite reduced exponential and a Cephes rational approximation (max error against NumPy's
``tanh`` 3 ulp, see ``tests/perf``) so that LLVM can vectorise the loops (the libm scalar ``tanh``
costs ~20 ns per element).  Kernels are compiled with ``error_model="numpy"`` (divisions without
Python's zero checks, which would block vectorisation) and the fast-math flags of
:mod:`neurosim.config` (never ``nnan``/``ninf``: divergence is detected with finiteness checks).
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit
from numba.core import types as nbtypes
from numba.extending import intrinsic

from ..config import JIT_OPTIONS
from ..plan import OPT_ADAM, ROLE_FREE, ROLE_INPUT, ROLE_TARGET
from .base import EULER, INIT_PREVIOUS, INIT_ZEROS, MODE_CLAMP, MODE_NUDGE, Backend, BatchResult, RunSpec

# column indices of the packed metadata tables
P_SIZE, P_OFF, P_PHI, P_ROLE, P_ERR = 0, 1, 2, 3, 4
PF_PARAM, PF_TAUX, PF_TAUE = 0, 1, 2
K_PRE, K_POST, K_WOFF, K_BOFF, K_SKIP, K_PLASTIC, K_LBIAS, K_MEAN, K_OPT = range(9)
KF_MULT, KF_LR, KF_MOM, KF_WD, KF_B1, KF_B2, KF_EPS = range(7)
# integer and float run settings (packed so that the kernel has one signature per dtype)
I_HAVE_PREV, I_MODE, I_INIT, I_NSTEPS, I_INTEG, I_LEARN, I_PEVERY, I_PITEM, I_TARGET = range(9)
F_BETA, F_TOL, F_DT, F_DECAY = range(4)
# rows of the work array (every run) and of work2 (only Heun steps use it; 1 column otherwise)
X, ES, MU, EPS, PHX, FB, SFB, DX, DEPS = range(9)
X2, ES2, DX2, DEPS2 = range(4)
N_WORK, N_WORK2 = 9, 4

#: batches up to this size use hand-written loops instead of BLAS (call overhead dominates there)
SMALL_BATCH = 8

_jit = JIT_OPTIONS
#: the transcendental functions allow only FMA contraction: reassociating the Cody-Waite reduction
#: ``(y - k ln2_hi) - k ln2_lo`` would cost ~|k| ulp (200 ulp at exp(-700)); vectorisation does not need it
_jit_strict = dict(JIT_OPTIONS, fastmath={"contract"})


# ----------------------------------------------------------------------------- vectorisable math
@intrinsic
def _bits_to_f64(typingctx, v):
    """Reinterpret the bits of an int64 as a float64 (used to build powers of two)."""
    if isinstance(v, nbtypes.Integer) and v.bitwidth == 64:
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.DoubleType())
        return nbtypes.float64(v), codegen
    return None


@njit(**_jit_strict)
def _exp_le40(y):
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
    e = _exp_le40(2.0 * (20.0 if ax > 20.0 else ax))
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
    t = _exp_le40(-abs(x))
    d = 1.0 + t
    return 1.0 / d if x >= 0 else t / d


@njit(**_jit)
def _phi(code, a, x):
    if code == 0:
        return x
    if code == 1:
        return tanh(x)
    if code == 2:
        return sigmoid(x)
    if code == 3:
        return x if (x > 0 or x != x) else 0.0 * x + 0.0
    return x if x > 0 else a * x


@njit(**_jit)
def _dphi_from(code, a, x, fx):
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
def _phi_block(code, a, x, out, o, m):
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


# ----------------------------------------------------------------------------- matrix products
@njit(**_jit)
def _mm_abt(A, Wk, out):
    """out = A @ Wk.T  for A (B, n_pre), Wk (n_post, n_pre).

    Small batches: four rows of Wk at a time share the loads of A and stay in L1 across the batch.
    """
    B = A.shape[0]
    if B > SMALL_BATCH:
        np.dot(A, Wk.T, out)
        return
    n_post, n_pre = Wk.shape
    zero = Wk.dtype.type(0)  # accumulate in the arrays' precision (float32 stays float32: twice the lanes)
    j = 0
    while j + 4 <= n_post:
        for s in range(B):
            a0 = zero
            a1 = zero
            a2 = zero
            a3 = zero
            for i in range(n_pre):
                v = A[s, i]
                a0 += v * Wk[j, i]
                a1 += v * Wk[j + 1, i]
                a2 += v * Wk[j + 2, i]
                a3 += v * Wk[j + 3, i]
            out[s, j] = a0
            out[s, j + 1] = a1
            out[s, j + 2] = a2
            out[s, j + 3] = a3
        j += 4
    while j < n_post:
        for s in range(B):
            acc = zero
            for i in range(n_pre):
                acc += A[s, i] * Wk[j, i]
            out[s, j] = acc
        j += 1


@njit(**_jit)
def _mm_ab(E, Wk, out):
    """out = E @ Wk  for E (B, n_post), Wk (n_post, n_pre)."""
    B = E.shape[0]
    if B > SMALL_BATCH:
        np.dot(E, Wk, out)
        return
    n_post, n_pre = Wk.shape
    for s in range(B):
        for i in range(n_pre):
            out[s, i] = 0.0
    j = 0
    while j + 4 <= n_post:
        for s in range(B):
            c0 = E[s, j]
            c1 = E[s, j + 1]
            c2 = E[s, j + 2]
            c3 = E[s, j + 3]
            for i in range(n_pre):  # four rows per sweep: a quarter of the loads and stores of out
                out[s, i] += (c0 * Wk[j, i] + c1 * Wk[j + 1, i]) + (c2 * Wk[j + 2, i] + c3 * Wk[j + 3, i])
        j += 4
    while j < n_post:
        for s in range(B):
            c = E[s, j]
            for i in range(n_pre):
                out[s, i] += c * Wk[j, i]
        j += 1


@njit(**_jit)
def _blk(buf, B, off, n):
    return buf[B * off:B * (off + n)].reshape(B, n)


# ----------------------------------------------------------------------------- the pieces of a step
# columns of the per-population flag table computed at the start of each batch
G_FIXED, G_PHX, G_FB, G_SFB, G_MUC, G_FBW, G_FUSED = range(7)


@njit(**_jit)
def _predict(i, B, x, phx, mu, tmp, pi, ki, kf, ki_start, ki_end, W, b):
    """mu of population i from its incoming projections (sorted by post, so contiguous)."""
    n_post = pi[i, P_SIZE]
    opost = pi[i, P_OFF]
    M = _blk(mu, B, opost, n_post)
    Mf = mu[B * opost:B * (opost + n_post)]
    written = False
    for k in range(ki_start[i], ki_end[i]):
        pre = ki[k, K_PRE]
        n_pre = pi[pre, P_SIZE]
        opre = pi[pre, P_OFF]
        if ki[k, K_WOFF] >= 0:
            wo = ki[k, K_WOFF]
            Wk = W[wo:wo + n_post * n_pre].reshape(n_post, n_pre)
            m = kf[k, KF_MULT]
            if not written:
                _mm_abt(_blk(phx, B, opre, n_pre), Wk, M)
                if m != 1.0:
                    for j in range(B * n_post):
                        Mf[j] *= m
                written = True
            else:
                T = tmp[:B * n_post]
                _mm_abt(_blk(phx, B, opre, n_pre), Wk, T.reshape(B, n_post))
                for j in range(B * n_post):
                    Mf[j] += m * T[j]
        if not written:
            for j in range(B * n_post):
                Mf[j] = 0.0
            written = True
        if ki[k, K_BOFF] >= 0:
            bo = ki[k, K_BOFF]
            bk = b[bo:bo + n_post]
            for s in range(B):
                for j in range(n_post):
                    M[s, j] += bk[j]
        if ki[k, K_SKIP] != 0:
            Xp = _blk(x, B, opre, n_pre)
            for s in range(B):
                for j in range(n_post):
                    M[s, j] += Xp[s, j]
    if not written:
        for j in range(B * n_post):
            Mf[j] = 0.0


@njit(**_jit)
def _fused_rows(i, k, B, x, phx, mu, eps, F, pi, prec, ki, kf, W, b):
    r"""The one-pass prediction/error/feedback of population i (see :func:`_fused`): writes its mu and
    eps, adds its feedback into ``F`` (B, n_pre) and returns :math:`\sum \pi d^2` (not yet halved or
    divided by B)."""
    pre = ki[k, K_PRE]
    n_post = pi[i, P_SIZE]
    n_pre = pi[pre, P_SIZE]
    uo = pi[i, P_OFF]
    wo = ki[k, K_WOFF]
    Wk = W[wo:wo + n_post * n_pre].reshape(n_post, n_pre)
    m = kf[k, KF_MULT]
    hb = ki[k, K_BOFF] >= 0
    bo = ki[k, K_BOFF] if hb else 0
    bk = b[bo:bo + n_post] if hb else b[0:0]
    P = _blk(phx, B, pi[pre, P_OFF], n_pre)
    Xb = _blk(x, B, uo, n_post)
    Mb = _blk(mu, B, uo, n_post)
    Eb = _blk(eps, B, uo, n_post)
    pv = prec[uo:uo + n_post]
    # (written out by hand: a helper taking arrays inside these loops costs reference-count calls).
    # Rows go in blocks of 8 (then 4, then 1): one load of phi(x_pre) and one load/store of the feedback
    # serve 8 rows, which measured ~8% faster than blocks of 4 on a 256 x 256 pass (the pass is bound by
    # loads: each element of W is read twice, from L2 for the dot product and from L1 for the feedback).
    zero = Wk.dtype.type(0)  # dot products and feedback coefficients in the arrays' precision
    cast = Wk.dtype.type
    acc = 0.0
    j = 0
    while j < n_post:
        nb = 8 if j + 8 <= n_post else (4 if j + 4 <= n_post else 1)
        for s in range(B):
            a0 = zero
            a1 = zero
            a2 = zero
            a3 = zero
            a4 = zero
            a5 = zero
            a6 = zero
            a7 = zero
            if nb == 8:
                for q in range(n_pre):
                    v = P[s, q]
                    a0 += v * Wk[j, q]
                    a1 += v * Wk[j + 1, q]
                    a2 += v * Wk[j + 2, q]
                    a3 += v * Wk[j + 3, q]
                    a4 += v * Wk[j + 4, q]
                    a5 += v * Wk[j + 5, q]
                    a6 += v * Wk[j + 6, q]
                    a7 += v * Wk[j + 7, q]
            elif nb == 4:
                for q in range(n_pre):
                    v = P[s, q]
                    a0 += v * Wk[j, q]
                    a1 += v * Wk[j + 1, q]
                    a2 += v * Wk[j + 2, q]
                    a3 += v * Wk[j + 3, q]
            else:
                for q in range(n_pre):
                    a0 += P[s, q] * Wk[j, q]
            # mu = a dot + b, eps = pi (x - mu), energy += pi d^2, c = a eps (the feedback coefficient)
            m0 = m * a0 + (bk[j] if hb else 0.0)
            d0 = Xb[s, j] - m0
            Mb[s, j] = m0
            Eb[s, j] = pv[j] * d0
            acc += pv[j] * d0 * d0
            c0 = cast(m * (pv[j] * d0))
            if nb == 1:
                for q in range(n_pre):
                    F[s, q] += c0 * Wk[j, q]
                continue
            m1 = m * a1 + (bk[j + 1] if hb else 0.0)
            m2 = m * a2 + (bk[j + 2] if hb else 0.0)
            m3 = m * a3 + (bk[j + 3] if hb else 0.0)
            d1 = Xb[s, j + 1] - m1
            d2 = Xb[s, j + 2] - m2
            d3 = Xb[s, j + 3] - m3
            Mb[s, j + 1] = m1
            Mb[s, j + 2] = m2
            Mb[s, j + 3] = m3
            Eb[s, j + 1] = pv[j + 1] * d1
            Eb[s, j + 2] = pv[j + 2] * d2
            Eb[s, j + 3] = pv[j + 3] * d3
            acc += (pv[j + 1] * d1 * d1 + pv[j + 2] * d2 * d2) + pv[j + 3] * d3 * d3
            c1 = cast(m * (pv[j + 1] * d1))
            c2 = cast(m * (pv[j + 2] * d2))
            c3 = cast(m * (pv[j + 3] * d3))
            if nb == 4:
                for q in range(n_pre):
                    F[s, q] += (c0 * Wk[j, q] + c1 * Wk[j + 1, q]) + (c2 * Wk[j + 2, q] + c3 * Wk[j + 3, q])
                continue
            m4 = m * a4 + (bk[j + 4] if hb else 0.0)
            m5 = m * a5 + (bk[j + 5] if hb else 0.0)
            m6 = m * a6 + (bk[j + 6] if hb else 0.0)
            m7 = m * a7 + (bk[j + 7] if hb else 0.0)
            d4 = Xb[s, j + 4] - m4
            d5 = Xb[s, j + 5] - m5
            d6 = Xb[s, j + 6] - m6
            d7 = Xb[s, j + 7] - m7
            Mb[s, j + 4] = m4
            Mb[s, j + 5] = m5
            Mb[s, j + 6] = m6
            Mb[s, j + 7] = m7
            Eb[s, j + 4] = pv[j + 4] * d4
            Eb[s, j + 5] = pv[j + 5] * d5
            Eb[s, j + 6] = pv[j + 6] * d6
            Eb[s, j + 7] = pv[j + 7] * d7
            acc += (pv[j + 4] * d4 * d4 + pv[j + 5] * d5 * d5) + (pv[j + 6] * d6 * d6 + pv[j + 7] * d7 * d7)
            c4 = cast(m * (pv[j + 4] * d4))
            c5 = cast(m * (pv[j + 5] * d5))
            c6 = cast(m * (pv[j + 6] * d6))
            c7 = cast(m * (pv[j + 7] * d7))
            for q in range(n_pre):
                F[s, q] += (((c0 * Wk[j, q] + c1 * Wk[j + 1, q]) + (c2 * Wk[j + 2, q] + c3 * Wk[j + 3, q]))
                            + ((c4 * Wk[j + 4, q] + c5 * Wk[j + 5, q]) + (c6 * Wk[j + 6, q] + c7 * Wk[j + 7, q])))
        j += nb
    return acc


@njit(**_jit)
def _fused(i, k, B, x, phx, mu, eps, fb, g, pi, prec, ki, kf, W, b):
    r"""One pass over W_k for a population i whose only input is the weighted projection k (small batches).

    Row j of :math:`W_k` gives :math:`\mu_j = a\,W_j \cdot \phi(x_{pre}) + b_j`, hence
    :math:`\varepsilon_j = \pi_j (x_j - \mu_j)`, and is used again, while it is still in L1, for the
    feedback :math:`fb_{pre} \mathrel{+}= a\,\varepsilon_j W_j`: the matrix is read once per step
    instead of twice.  Returns the batch-mean energy of population i.
    """
    pre = ki[k, K_PRE]
    n_post = pi[i, P_SIZE]
    n_pre = pi[pre, P_SIZE]
    F = _blk(fb, B, pi[pre, P_OFF], n_pre)
    if g[pre, G_FBW] == 0:
        for s in range(B):
            for q in range(n_pre):
                F[s, q] = 0.0
        g[pre, G_FBW] = 1
    return 0.5 * _fused_rows(i, k, B, x, phx, mu, eps, F, pi, prec, ki, kf, W, b) / B


@njit(**_jit)
def _errors(i, B, x, es, mu, eps, deps, pi, pf, prec):
    """eps (and d eps/dt for dynamic error units) of population i; returns its batch-mean energy."""
    n = pi[i, P_SIZE]
    uo = pi[i, P_OFF]
    tau_e = pf[i, PF_TAUE]
    pv = prec[uo:uo + n]
    Xb = _blk(x, B, uo, n)
    Mb = _blk(mu, B, uo, n)
    Eb = _blk(eps, B, uo, n)
    acc = 0.0
    if tau_e > 0:
        inv = 1.0 / tau_e
        Sb = _blk(es, B, uo, n)
        Db = _blk(deps, B, uo, n)
        for s in range(B):
            for j in range(n):
                p = pv[j]
                d = Xb[s, j] - Mb[s, j]
                acc += p * d * d
                e = Sb[s, j]
                Eb[s, j] = e
                Db[s, j] = (d - e / p) * inv
    else:
        for s in range(B):
            for j in range(n):
                p = pv[j]
                d = Xb[s, j] - Mb[s, j]
                acc += p * d * d
                Eb[s, j] = p * d
    return 0.5 * acc / B


@njit(**_jit)
def _forward(B, x, es, mu, eps, phx, fb, deps, tmp, energy, g, pi, pf, prec, ki, kf, ki_start, ki_end, W, b,
             predict):
    """Predictions that can change (when ``predict``), then errors and energy of every population.

    With ``predict``, populations marked for the fused pass (:func:`_fused`) also get their feedback
    computed here; returns whether that happened (the next :func:`_feedback` then skips them).
    """
    npop = pi.shape[0]
    if predict:
        for i in range(npop):
            g[i, G_FBW] = 0
        for i in range(npop):
            if pi[i, P_ROLE] == ROLE_INPUT or g[i, G_MUC] != 0:
                continue
            if g[i, G_FUSED] > 0:
                energy[i] = _fused(i, g[i, G_FUSED] - 1, B, x, phx, mu, eps, fb, g, pi, prec, ki, kf, W, b)
            else:
                _predict(i, B, x, phx, mu, tmp, pi, ki, kf, ki_start, ki_end, W, b)
    for i in range(npop):
        if predict and g[i, G_FUSED] > 0:
            continue
        if pi[i, P_ERR] != 0:
            energy[i] = _errors(i, B, x, es, mu, eps, deps, pi, pf, prec)
        else:
            energy[i] = 0.0
    return predict


@njit(**_jit)
def _feedback(B, eps, fb, sfb, tmp, g, fused_done, pi, ki, kf, W):
    """fb = sum a W^T eps_post and sfb = sum eps_post (skips) into every moving population
    (projections already handled by the fused pass of :func:`_forward` are skipped)."""
    npop = pi.shape[0]
    nproj = ki.shape[0]
    if not fused_done:
        for i in range(npop):
            g[i, G_FBW] = 0
    for k in range(nproj):
        pre = ki[k, K_PRE]
        if ki[k, K_SKIP] != 0 and g[pre, G_FIXED] == 0:
            o = B * pi[pre, P_OFF]
            sfb[o:o + B * pi[pre, P_SIZE]] = 0.0
    for k in range(nproj):
        pre = ki[k, K_PRE]
        if g[pre, G_FIXED] != 0:
            continue
        post = ki[k, K_POST]
        if fused_done and g[post, G_FUSED] == k + 1:
            continue
        n_pre = pi[pre, P_SIZE]
        n_post = pi[post, P_SIZE]
        opre = pi[pre, P_OFF]
        E = _blk(eps, B, pi[post, P_OFF], n_post)
        if ki[k, K_WOFF] >= 0:
            wo = ki[k, K_WOFF]
            Wk = W[wo:wo + n_post * n_pre].reshape(n_post, n_pre)
            m = kf[k, KF_MULT]
            Fbf = fb[B * opre:B * (opre + n_pre)]
            if g[pre, G_FBW] == 0:
                _mm_ab(E, Wk, Fbf.reshape(B, n_pre))
                if m != 1.0:
                    for j in range(B * n_pre):
                        Fbf[j] *= m
                g[pre, G_FBW] = 1
            else:
                T = tmp[:B * n_pre]
                _mm_ab(E, Wk, T.reshape(B, n_pre))
                for j in range(B * n_pre):
                    Fbf[j] += m * T[j]
        if ki[k, K_SKIP] != 0:
            S = _blk(sfb, B, opre, n_pre)
            for s in range(B):
                for j in range(n_pre):
                    S[s, j] += E[s, j]


@njit(**_jit)
def _drive(code, a, inv_tau, Xb, Eb, Pb, Fb, Sb, T, beta, hf, hs, nudge, out, accumulate, dt):
    """For one population's (B, n) views: out = dx/dt, or (``accumulate``) out += dt * dx/dt.

    dx/dt = (-eps + phi'(x) fb [if hf] + sfb [if hs] + beta (t - x) [if nudge]) / tau_x.
    """
    B, n = Xb.shape
    c = dt * inv_tau if accumulate else inv_tau
    for s in range(B):
        for j in range(n):
            drive = -Eb[s, j]
            if hf:
                drive += _dphi_from(code, a, Xb[s, j], Pb[s, j]) * Fb[s, j]
            if hs:
                drive += Sb[s, j]
            if nudge:
                drive += beta * (T[s, j] - Xb[s, j])
            if accumulate:
                out[s, j] += c * drive
            else:
                out[s, j] = c * drive


@njit(**_jit)
def _drive_block(i, B, x, eps, phx, fb, sfb, t, dx, mode, beta, pi, pf, g):
    """dx/dt of a moving population i into dx (general path)."""
    n = pi[i, P_SIZE]
    uo = pi[i, P_OFF]
    nudge = pi[i, P_ROLE] == ROLE_TARGET and mode == MODE_NUDGE
    _drive(pi[i, P_PHI], pf[i, PF_PARAM], 1.0 / pf[i, PF_TAUX], _blk(x, B, uo, n), _blk(eps, B, uo, n),
           _blk(phx, B, uo, n), _blk(fb, B, uo, n), _blk(sfb, B, uo, n), t, beta, g[i, G_FB] != 0,
           g[i, G_SFB] != 0, nudge, _blk(dx, B, uo, n), False, 0.0)


@njit(**_jit)
def _euler_tanh_block(xs, es, ps, fs, dt_tau):
    """Fused: x += dt/tau (-eps + (1 - phx^2) fb); phx = tanh(x).  The hot loop of a tanh layer."""
    for q in range(xs.shape[0]):
        f = ps[q]
        xn = xs[q] + dt_tau * (-es[q] + (1.0 - f * f) * fs[q])
        xs[q] = xn
        ps[q] = tanh(xn)


@njit(**_jit)
def _euler_fused(B, x, es, eps, phx, fb, sfb, deps, t, dt, mode, beta, pi, pf, g):
    """Euler step of every unit with the drive computed on the fly (no dx buffer), then phi(x)."""
    npop = pi.shape[0]
    for i in range(npop):
        n = pi[i, P_SIZE]
        uo = pi[i, P_OFF]
        o = B * uo
        m = B * n
        if pf[i, PF_TAUE] > 0 and pi[i, P_ERR] != 0:
            ev = es[o:o + m]
            dv = deps[o:o + m]
            for q in range(m):
                ev[q] += dt * dv[q]
        if g[i, G_FIXED] != 0:
            continue
        code = pi[i, P_PHI]
        a = pf[i, PF_PARAM]
        hf = g[i, G_FB] != 0
        hs = g[i, G_SFB] != 0
        nudge = pi[i, P_ROLE] == ROLE_TARGET and mode == MODE_NUDGE
        if code == 1 and hf and not hs and not nudge and g[i, G_PHX] != 0:
            _euler_tanh_block(x[o:o + m], eps[o:o + m], phx[o:o + m], fb[o:o + m], dt / pf[i, PF_TAUX])
            continue
        _drive(code, a, 1.0 / pf[i, PF_TAUX], _blk(x, B, uo, n), _blk(eps, B, uo, n), _blk(phx, B, uo, n),
               _blk(fb, B, uo, n), _blk(sfb, B, uo, n), t, beta, hf, hs, nudge, _blk(x, B, uo, n), True, dt)
        if g[i, G_PHX] != 0:
            _phi_block(code, a, x, phx, o, m)


@njit(**_jit)
def _moving_derivs(B, x, eps, phx, fb, sfb, tmp, t, dx, mode, beta, pi, pf, ki, kf, W, g, fused_done):
    """Feedback and dx/dt of every moving population (the general path: tol, Heun)."""
    _feedback(B, eps, fb, sfb, tmp, g, fused_done, pi, ki, kf, W)
    for i in range(pi.shape[0]):
        if g[i, G_FIXED] == 0:
            _drive_block(i, B, x, eps, phx, fb, sfb, t, dx, mode, beta, pi, pf, g)


@njit(**_jit)
def _phi_all(B, x, phx, pi, pf, g, only_moving):
    for i in range(pi.shape[0]):
        if g[i, G_PHX] != 0 and not (only_moving and g[i, G_FIXED] != 0):
            _phi_block(pi[i, P_PHI], pf[i, PF_PARAM], x, phx, B * pi[i, P_OFF], B * pi[i, P_SIZE])


# ----------------------------------------------------------------------------- plasticity
@njit(**_jit)
def _opt_update(P, G, Mo, V, lr, kind, mom, wd, b1, b2, epsopt, tcount):
    if kind == OPT_ADAM:
        c1 = 1.0 / (1.0 - b1 ** tcount)
        c2 = 1.0 / (1.0 - b2 ** tcount)
        for j in range(P.shape[0]):
            g = G[j]
            if wd > 0:
                g -= wd * P[j]
            Mo[j] = b1 * Mo[j] + (1.0 - b1) * g
            V[j] = b2 * V[j] + (1.0 - b2) * g * g
            P[j] += lr * (Mo[j] * c1) / (math.sqrt(V[j] * c2) + epsopt)
    elif mom > 0:
        for j in range(P.shape[0]):
            g = G[j]
            if wd > 0:
                g -= wd * P[j]
            Mo[j] = mom * Mo[j] + g
            P[j] += lr * Mo[j]
    else:
        for j in range(P.shape[0]):
            g = G[j]
            if wd > 0:
                g -= wd * P[j]
            P[j] += lr * g


@njit(**_jit)
def _hebbian(B, eps, phx, gtmp, pi, ki, kf, W, b, mW, vW, mb, vb, opt_t):
    nproj = ki.shape[0]
    for k in range(nproj):
        plastic = ki[k, K_PLASTIC] != 0
        lbias = ki[k, K_LBIAS] != 0
        if not (plastic or lbias):
            continue
        pre = ki[k, K_PRE]
        post = ki[k, K_POST]
        n_pre = pi[pre, P_SIZE]
        n_post = pi[post, P_SIZE]
        E = _blk(eps, B, pi[post, P_OFF], n_post)
        scale = 1.0 / B if ki[k, K_MEAN] != 0 else 1.0
        opt_t[k] += 1
        tc = opt_t[k]
        kind = ki[k, K_OPT]
        if plastic:
            wo = ki[k, K_WOFF]
            nw = n_post * n_pre
            G = gtmp[:nw].reshape(n_post, n_pre)
            P = _blk(phx, B, pi[pre, P_OFF], n_pre)
            if B <= SMALL_BATCH and kind != OPT_ADAM and kf[k, KF_MOM] <= 0 and kf[k, KF_WD] <= 0:
                # plain SGD on a small batch: one rank-B update of W, no gradient buffer
                Wk = W[wo:wo + nw].reshape(n_post, n_pre)
                lrc = kf[k, KF_LR] * kf[k, KF_MULT] * scale
                for s in range(B):
                    for j in range(n_post):
                        f = lrc * E[s, j]
                        for i2 in range(n_pre):
                            Wk[j, i2] += f * P[s, i2]
            else:
                if B <= SMALL_BATCH:
                    for j in range(n_post):
                        for i2 in range(n_pre):
                            G[j, i2] = 0.0
                    for s in range(B):
                        for j in range(n_post):
                            e = E[s, j]
                            for i2 in range(n_pre):
                                G[j, i2] += e * P[s, i2]
                else:
                    np.dot(E.T, P, G)
                g = gtmp[:nw]
                c = kf[k, KF_MULT] * scale
                for j in range(nw):
                    g[j] *= c
                _opt_update(W[wo:wo + nw], g, mW[wo:wo + nw], vW[wo:wo + nw], kf[k, KF_LR], kind,
                            kf[k, KF_MOM], kf[k, KF_WD], kf[k, KF_B1], kf[k, KF_B2], kf[k, KF_EPS], tc)
        if lbias:
            bo = ki[k, K_BOFF]
            g = gtmp[:n_post]
            for j in range(n_post):
                g[j] = 0.0
            for q in range(B):
                for j in range(n_post):
                    g[j] += E[q, j]
            for j in range(n_post):
                g[j] *= scale
            _opt_update(b[bo:bo + n_post], g, mb[bo:bo + n_post], vb[bo:bo + n_post], kf[k, KF_LR], kind,
                        kf[k, KF_MOM], kf[k, KF_WD], kf[k, KF_B1], kf[k, KF_B2], kf[k, KF_EPS], tc)


# ----------------------------------------------------------------------------- one batch
@njit(**_jit)
def run_batch_kernel(s, t, iargs, fargs, pi, pf, prec, ki, kf, ki_start, ki_end, inputs, input_off,
                     W, b, mW, vW, mb, vb, opt_t, work, work2, tmp, gtmp, energies, rec, rec_steps, y0, y, out):
    """One batch: initialise, relax ``n_steps`` (or until max|d/dt| < tol), optionally learn.

    ``iargs`` = (have_prev, mode, init, n_steps, integrator, learn, probe_every, probe_item, target_pop),
    ``fargs`` = (beta, tol, dt, dt_decay); ``work`` holds the 9 state buffers (see ``X``..``DEPS``) and
    ``work2`` the 4 of Heun's predictor step (``X2``..``DEPS2``);
    ``rec`` is (n_records, 3, n_units): x, eps, mu of the probed item, one record per row.  ``out`` receives
    (steps, status, fail_step, fail_pop, n_records).
    """
    B = s.shape[0]
    npop = pi.shape[0]
    nproj = ki.shape[0]
    have_prev = iargs[I_HAVE_PREV] != 0
    mode = iargs[I_MODE]
    init = iargs[I_INIT]
    n_steps = iargs[I_NSTEPS]
    integrator = iargs[I_INTEG]
    learn = iargs[I_LEARN] != 0
    probe_every = iargs[I_PEVERY]
    probe_item = iargs[I_PITEM]
    target_pop = iargs[I_TARGET]
    beta = fargs[F_BETA]
    tol = fargs[F_TOL]
    dt = fargs[F_DT]
    dt_decay = fargs[F_DECAY]
    x = work[X]
    es = work[ES]
    mu = work[MU]
    eps = work[EPS]
    phx = work[PHX]
    fb = work[FB]
    sfb = work[SFB]
    dx = work[DX]
    deps = work[DEPS]
    x2 = work2[X2]
    es2 = work2[ES2]
    dx2 = work2[DX2]
    deps2 = work2[DEPS2]
    N = x.shape[0]

    # ---- which work can change during this relaxation (see the G_* columns)
    g = np.zeros((npop, 7), dtype=np.int64)
    for i in range(npop):
        role = pi[i, P_ROLE]
        if role == ROLE_INPUT or (role == ROLE_TARGET and mode == MODE_CLAMP):
            g[i, G_FIXED] = 1   # x does not move (inputs, clamped target)
    for k in range(nproj):
        pre = ki[k, K_PRE]
        if ki[k, K_WOFF] >= 0:
            g[pre, G_PHX] = 1   # phi(x) feeds a weighted projection
            g[pre, G_FB] = 1    # receives weighted feedback
        if ki[k, K_SKIP] != 0:
            g[pre, G_SFB] = 1   # receives skip feedback
    for i in range(npop):
        if pi[i, P_ROLE] == ROLE_INPUT:
            continue
        c = 1
        for k in range(ki_start[i], ki_end[i]):
            if g[ki[k, K_PRE], G_FIXED] == 0:
                c = 0
        g[i, G_MUC] = c         # every input of the prediction is fixed: mu is computed once
        k = ki_start[i]
        if (B <= SMALL_BATCH and c == 0 and ki_end[i] - k == 1 and ki[k, K_WOFF] >= 0 and ki[k, K_SKIP] == 0
                and pi[i, P_ERR] != 0 and pf[i, PF_TAUE] <= 0):
            g[i, G_FUSED] = k + 1   # prediction, error and feedback in one pass over W_k
    energy = np.zeros(npop)
    energy2 = np.zeros(npop)
    sfb[:] = 0.0
    dx[:] = 0.0
    dx2[:] = 0.0
    deps2[:] = 0.0

    # ---- initial state
    prev = init == INIT_PREVIOUS and have_prev
    if not prev:
        x[:] = 0.0
        es[:] = 0.0
        deps[:] = 0.0
        eps[:] = 0.0
    for jj in range(inputs.shape[0]):
        i = inputs[jj]
        n = pi[i, P_SIZE]
        Xi = _blk(x, B, pi[i, P_OFF], n)
        for q in range(B):
            for j in range(n):
                Xi[q, j] = s[q, input_off[jj] + j]
    if not prev:
        # one forward sweep in topological order: x_i = mu_i
        for i in range(npop):
            role = pi[i, P_ROLE]
            o = B * pi[i, P_OFF]
            n = pi[i, P_SIZE]
            if role != ROLE_INPUT:
                _predict(i, B, x, phx, mu, tmp, pi, ki, kf, ki_start, ki_end, W, b)
                x[o:o + B * n] = mu[o:o + B * n]
            if g[i, G_PHX] != 0:
                _phi_block(pi[i, P_PHI], pf[i, PF_PARAM], x, phx, o, B * n)
    # what changed after the sweep: its predictions and phi are recomputed (everything after a 'previous' start)
    dirty = np.zeros(npop, dtype=np.int64)
    if prev:
        dirty[:] = 1
    if mode == MODE_CLAMP and target_pop >= 0:
        n = pi[target_pop, P_SIZE]
        Xt = _blk(x, B, pi[target_pop, P_OFF], n)
        for q in range(B):
            for j in range(n):
                Xt[q, j] = t[q, j]
        dirty[target_pop] = 1
    if init == INIT_ZEROS:
        for i in range(npop):
            role = pi[i, P_ROLE]
            if role == ROLE_FREE or (role == ROLE_TARGET and mode != MODE_CLAMP):
                o = B * pi[i, P_OFF]
                x[o:o + B * pi[i, P_SIZE]] = 0.0
                dirty[i] = 1
    for i in range(npop):
        if dirty[i] != 0 and g[i, G_PHX] != 0:
            _phi_block(pi[i, P_PHI], pf[i, PF_PARAM], x, phx, B * pi[i, P_OFF], B * pi[i, P_SIZE])
    for i in range(npop):
        if pi[i, P_ROLE] == ROLE_INPUT:
            continue
        redo = prev
        for k in range(ki_start[i], ki_end[i]):
            if dirty[ki[k, K_PRE]] != 0:
                redo = True
        if redo:
            _predict(i, B, x, phx, mu, tmp, pi, ki, kf, ki_start, ki_end, W, b)
    if not prev:
        # error units start at their instantaneous value
        for i in range(npop):
            if pi[i, P_ERR] != 0 and pf[i, PF_TAUE] > 0:
                n = pi[i, P_SIZE]
                uo = pi[i, P_OFF]
                pv = prec[uo:uo + n]
                Sb = _blk(es, B, uo, n)
                Xb = _blk(x, B, uo, n)
                Mb = _blk(mu, B, uo, n)
                for q in range(B):
                    for j in range(n):
                        Sb[q, j] = pv[j] * (Xb[q, j] - Mb[q, j])
    fused_done = _forward(B, x, es, mu, eps, phx, fb, deps, tmp, energy, g, pi, pf, prec, ki, kf, ki_start, ki_end,
                          W, b, False)  # every prediction is already up to date
    if target_pop >= 0:
        n = pi[target_pop, P_SIZE]
        Mt = _blk(mu, B, pi[target_pop, P_OFF], n)
        for q in range(B):
            for j in range(n):
                y0[q, j] = Mt[q, j]

    # ---- relaxation
    fast = integrator == EULER and tol <= 0
    status = 0
    fail_step = -1
    fail_pop = -1
    steps = 0
    r = 0
    for k in range(n_steps + 1):
        for i in range(npop):
            energies[k, i] = energy[i]
        if probe_every > 0 and probe_item < B and k % probe_every == 0:
            for i in range(npop):
                n = pi[i, P_SIZE]
                uo = pi[i, P_OFF]
                o = B * uo + probe_item * n
                rec[r, 0, uo:uo + n] = x[o:o + n]
                rec[r, 1, uo:uo + n] = eps[o:o + n]
                rec[r, 2, uo:uo + n] = mu[o:o + n]
            rec_steps[r] = k
            r += 1
        # as the reference: the first population with a non-finite energy, else with a non-finite value.
        # A non-finite value in a population with error units makes its energy non-finite, so only the
        # values of populations without error units need scanning.
        bad = -1
        for i in range(npop):
            if not math.isfinite(energy[i]):
                bad = i
                break
        if bad < 0:
            for i in range(npop):
                if pi[i, P_ERR] != 0 or (g[i, G_FIXED] != 0 and k > 0):  # fixed values were checked at step 0
                    continue
                o = B * pi[i, P_OFF]
                xs = x[o:o + B * pi[i, P_SIZE]]
                ok = True
                for j in range(xs.shape[0]):
                    if not math.isfinite(xs[j]):
                        ok = False
                if not ok:
                    bad = i
                    break
        if bad >= 0:
            status = 1
            fail_step = k
            fail_pop = bad
            break
        if k == n_steps:
            break
        if fast:
            _feedback(B, eps, fb, sfb, tmp, g, fused_done, pi, ki, kf, W)
            _euler_fused(B, x, es, eps, phx, fb, sfb, deps, t, dt, mode, beta, pi, pf, g)
        else:
            _moving_derivs(B, x, eps, phx, fb, sfb, tmp, t, dx, mode, beta, pi, pf, ki, kf, W, g, fused_done)
            if tol > 0:
                rate = 0.0
                for j in range(N):
                    v = abs(dx[j])
                    rate = v if v > rate else rate
                    v = abs(deps[j])
                    rate = v if v > rate else rate
                if rate < tol:
                    break
            if integrator == EULER:
                for j in range(N):
                    x[j] += dt * dx[j]
                    es[j] += dt * deps[j]
            else:
                for j in range(N):
                    x2[j] = x[j] + dt * dx[j]
                    es2[j] = es[j] + dt * deps[j]
                _phi_all(B, x2, phx, pi, pf, g, True)
                fused_done = _forward(B, x2, es2, mu, eps, phx, fb, deps2, tmp, energy2, g, pi, pf, prec, ki, kf,
                                      ki_start, ki_end, W, b, True)
                _moving_derivs(B, x2, eps, phx, fb, sfb, tmp, t, dx2, mode, beta, pi, pf, ki, kf, W, g,
                               fused_done)
                h = 0.5 * dt
                for j in range(N):
                    x[j] += h * (dx[j] + dx2[j])
                    es[j] += h * (deps[j] + deps2[j])
            _phi_all(B, x, phx, pi, pf, g, True)
        steps += 1
        prev_total = 0.0
        for i in range(npop):
            prev_total += energy[i]
        fused_done = _forward(B, x, es, mu, eps, phx, fb, deps, tmp, energy, g, pi, pf, prec, ki, kf, ki_start,
                              ki_end, W, b, True)
        if dt_decay < 1.0:
            tot = 0.0
            for i in range(npop):
                tot += energy[i]
            if tot >= prev_total:
                dt *= dt_decay
    # keep the actual errors in es: they are the error state a 'previous' start continues from
    for j in range(N):
        es[j] = eps[j]
    if target_pop >= 0:
        n = pi[target_pop, P_SIZE]
        Xt = _blk(x, B, pi[target_pop, P_OFF], n)
        for q in range(B):
            for j in range(n):
                y[q, j] = Xt[q, j]
    # ---- plasticity from the final state
    if learn and status == 0:
        _hebbian(B, eps, phx, gtmp, pi, ki, kf, W, b, mW, vW, mb, vb, opt_t)
    out[0] = steps
    out[1] = status
    out[2] = fail_step
    out[3] = fail_pop
    out[4] = r


class _BlasThreads:
    """Sets the number of threads of the BLAS that numba's ``np.dot`` calls (SciPy's OpenBLAS) for the
    calling thread during a kernel call, and restores it afterwards (``openblas_set_num_threads_local``,
    OpenBLAS >= 0.3.27).  One BLAS thread is the robust choice on a machine whose cores are shared with
    other busy processes: a multi-threaded GEMM waits for its slowest thread, and a descheduled one
    stalls it for a whole time slice."""

    def __init__(self, n):
        import ctypes
        import glob
        import os

        import scipy
        libs = glob.glob(os.path.join(os.path.dirname(scipy.__file__), os.pardir, "scipy.libs", "libscipy_openblas*.so*"))
        self.n = n
        self.fn = None
        for path in libs:
            lib = ctypes.CDLL(path)
            fn = getattr(lib, "openblas_set_num_threads_local", None)
            if fn is not None:
                fn.argtypes = [ctypes.c_int]
                fn.restype = ctypes.c_int
                self.fn = fn
                break
        if self.fn is None:
            raise ValueError("backend 'numba': blas_threads needs SciPy's bundled OpenBLAS >= 0.3.27 (found none); "
                             "set OPENBLAS_NUM_THREADS in the environment instead")
        self.old = None

    def enter(self):
        self.old = self.fn(self.n)

    def exit(self):
        self.fn(self.old)


def _writable(a, dtype):
    """C-contiguous and writeable: a read-only array is a different numba type (a second compile)."""
    a = np.ascontiguousarray(a, dtype=dtype)
    return a if a.flags.writeable else a.copy()


class NumbaBackend(Backend):
    """Runs :func:`run_batch_kernel`; buffers are reused across batches of the same size.

    ``BatchResult.rec_x/rec_eps/rec_mu`` are views of a record buffer that the next ``run_batch`` call
    overwrites: copy them to keep them (``Simulator`` stores copies of what its probes select).

    Options (``Simulator(..., backend_options={...})``):

    * ``blas_threads`` (int): BLAS threads of the matrix products of batches above :data:`SMALL_BATCH`
      during a call (see :class:`_BlasThreads`).

    The kernel itself runs on the calling thread.  The former ``threads``/``split_min`` options (a helper
    thread taking half of the large passes of small batches) were removed: the gain was within noise on
    2 cores and its results were not reproducible to the bit; passing them raises a ValueError.
    """

    name = "numba"
    #: run_batch writes probe records straight into a caller's array (see :meth:`run_batch`)
    accepts_rec_out = True
    supports = frozenset({"euler", "heun", "tol", "nudge", "tau_eps", "skip", "multiplier", "bias", "adam",
                          "dt_decay", "float32", "probes", "graph"})
    #: the keys ``backend_options`` may hold
    options = ("blas_threads",)
    #: options that existed once, with the reason they are gone (passing one raises a ValueError saying so)
    removed_options = {
        "threads": "the helper thread of threads=2 was removed (on 2 cores it gained nothing measurable and "
                   "its results depended on which thread computed what); the kernel runs on the calling thread",
        "split_min": "it set the split of the removed threads=2 helper thread",
    }

    def __init__(self, plan, dtype=np.float64, blas_threads=None, **unknown):
        for key in unknown:
            why = self.removed_options.get(key)
            raise ValueError(f"backend 'numba': backend_options key {key!r} "
                             + (f"was removed: {why}; " if why else "is not an option; ")
                             + f"valid keys: {list(self.options)}")
        super().__init__(plan, dtype)
        p = plan
        if blas_threads is not None and (isinstance(blas_threads, bool) or not isinstance(blas_threads, int)
                                         or blas_threads < 1):
            raise ValueError(f"backend 'numba': blas_threads must be a positive int or None, got {blas_threads!r}")
        self._blas_threads = _BlasThreads(blas_threads) if blas_threads is not None else None
        self.pi = np.ascontiguousarray(np.stack([p.pop_size, p.pop_off, p.pop_phi, p.pop_role, p.pop_has_err],
                                                axis=1).astype(np.int64))
        self.pf = np.ascontiguousarray(np.stack([p.pop_phi_param, p.pop_tau_x, p.pop_tau_eps], axis=1)
                                       .astype(self.dtype))
        self.ki = np.ascontiguousarray(np.stack([p.proj_pre, p.proj_post, p.w_off, p.b_off, p.proj_skip,
                                                 p.proj_plastic, p.proj_learn_bias, p.proj_mean, p.opt_kind], axis=1)
                                       .astype(np.int64).reshape(-1, 9))
        self.kf = np.ascontiguousarray(np.concatenate([p.proj_mult[:, None], p.proj_lr[:, None], p.opt_param],
                                                      axis=1).astype(self.dtype).reshape(-1, 7))
        self.prec = p.precision.astype(self.dtype)
        self.ki_start = p.in_start.astype(np.int64)
        self.ki_end = p.in_end.astype(np.int64)
        self.inputs = p.input_pops.astype(np.int64)
        self.input_off = p.input_off.astype(np.int64)
        self.tmp_units = int(p.pop_size.max())
        shapes = [p.weight_shape(k) for k in range(p.n_proj)]
        self.gtmp = np.zeros(max([a * c for a, c in shapes] + [self.tmp_units, 1]), dtype=self.dtype)
        self.have_prev = False
        self._work = None
        self._out = np.zeros(5, dtype=np.int64)
        self._rec = None
        self._no_target = None

    def _buffers(self, B):
        if self._work is None or self.batch_size != B:
            self._work = np.zeros((N_WORK, B * self.plan.n_units), dtype=self.dtype)
            self._work2 = {}
            self._tmp = np.zeros(B * self.tmp_units, dtype=self.dtype)
            self._no_target = np.zeros((B, max(self.plan.n_target, 1)), dtype=self.dtype)
            self.batch_size = B
            self.have_prev = False
        return self._work

    def run_batch(self, s, t, spec: RunSpec, rec_out=None) -> BatchResult:
        """One batch; ``rec_out``, if given, is a C-contiguous ``(n_records, 3, n_units)`` array of the
        backend's dtype that receives the probe records (x, eps, mu of the probed item) in place of the
        backend's own buffer: the Simulator passes its record store, so nothing is copied."""
        p = self.plan
        s = _writable(s, self.dtype)
        B = s.shape[0]
        work = self._buffers(B)
        heun = int(spec.integrator) != EULER
        work2 = self._work2.get(heun)
        if work2 is None:
            work2 = self._work2[heun] = np.zeros((N_WORK2, B * p.n_units if heun else 1), dtype=self.dtype)
        t = self._no_target if t is None else _writable(t, self.dtype)
        n_steps = int(spec.n_steps)
        every = int(spec.probe_every)
        n_rec = n_steps // every + 1 if every > 0 else 0
        # probe records go to a buffer kept across calls (fresh pages would cost a page fault every 4 KiB
        # inside the kernel): the returned rec_* are views that the next call overwrites (the Simulator
        # copies what its probes select at once)
        if rec_out is None:
            rec = self._rec_buffer(n_rec)
        else:
            rec = rec_out
            if (rec.dtype != self.dtype or rec.shape != (n_rec, 3, p.n_units)
                    or not rec.flags.c_contiguous or not rec.flags.writeable):
                raise ValueError(f"backend 'numba': rec_out must be a writeable C-contiguous {self.dtype} array of "
                                 f"shape {(n_rec, 3, p.n_units)}, got {rec.dtype} {rec.shape}")
        rec_steps = np.zeros(n_rec, dtype=np.int64)
        energies = np.zeros((n_steps + 1, p.n_pops))
        y0 = np.zeros((B, p.n_target), dtype=self.dtype)
        y = np.zeros((B, p.n_target), dtype=self.dtype)
        iargs = np.array([int(self.have_prev), int(spec.mode), int(spec.init), n_steps, int(spec.integrator),
                          int(bool(spec.learn)), every, int(spec.probe_item), int(p.target_pop)], dtype=np.int64)
        fargs = np.array([spec.beta, spec.tol, spec.dt, spec.dt_decay], dtype=np.float64)
        out = self._out
        limit = self._blas_threads is not None and B > SMALL_BATCH
        if limit:
            self._blas_threads.enter()
        try:
            run_batch_kernel(s, t, iargs, fargs, self.pi, self.pf, self.prec, self.ki, self.kf, self.ki_start,
                             self.ki_end, self.inputs, self.input_off, self.W, self.b, self.mW, self.vW, self.mb,
                             self.vb, self.opt_t, work, work2, self._tmp, self.gtmp, energies, rec, rec_steps, y0, y,
                             out)
        finally:
            if limit:
                self._blas_threads.exit()
        self.have_prev = True
        steps, status, fail_step, fail_pop, r = (int(v) for v in out)
        rec = rec[:r]
        return BatchResult(steps=steps, energy=energies[:steps + 1], status=status, fail_step=fail_step,
                           fail_pop=fail_pop, rec_steps=rec_steps[:r], rec_x=rec[:, 0], rec_eps=rec[:, 1],
                           rec_mu=rec[:, 2], y0=y0, y=y)

    def _rec_buffer(self, n_rec):
        """A C-contiguous (n_rec, 3, n_units) view of a flat buffer that only grows."""
        n = 3 * n_rec * self.plan.n_units
        if self._rec is None or self._rec.size < n:
            self._rec = np.zeros(max(n, 1), dtype=self.dtype)
        return self._rec[:n].reshape(n_rec, 3, self.plan.n_units)

    def _unflatten(self, buf):
        """Population-major flat buffer -> (B, n_units) array."""
        p = self.plan
        B = self.batch_size
        outa = np.empty((B, p.n_units), dtype=self.dtype)
        for i in range(p.n_pops):
            n, o = int(p.pop_size[i]), int(p.pop_off[i])
            outa[:, o:o + n] = buf[B * o:B * (o + n)].reshape(B, n)
        return outa

    def state(self):
        if not self.have_prev:
            return None
        w = self._work
        return {"x": self._unflatten(w[X]), "eps": self._unflatten(w[ES]), "mu": self._unflatten(w[MU])}

    def set_state(self, x, eps):
        p = self.plan
        x = np.asarray(x, dtype=self.dtype)
        B = x.shape[0]
        work = self._buffers(B)
        for row, src in ((X, x), (ES, np.asarray(eps, dtype=self.dtype))):
            buf = work[row]
            for i in range(p.n_pops):
                n, o = int(p.pop_size[i]), int(p.pop_off[i])
                buf[B * o:B * (o + n)] = src[:, o:o + n].ravel()
        self.have_prev = True

    def reset(self):
        super().reset()
        self.have_prev = False

