r"""numba kernels for graph circuits: one jitted call runs a whole batch of any schedule (PC, FPA, Z-IL, BP, iPC).

Memory layout (as the layered numba backend): every state buffer (``x``, ``mu``, ``eps``, ``drive``,
``xhat``) is one flat vector; vertex ``i`` owns the C-contiguous block ``[B off_i, B (off_i + n_i))``
viewed as ``(B, n_i)``.  Dense products go to BLAS through ``np.dot`` on these views; convolution (stride,
zero padding), its transpose and its kernel gradient, pooling, products and activations are explicit
loops.  Kernels are pure: arrays and scalars in, preallocated buffers out, no allocation in the step loop.

Each function mirrors one of :mod:`neurosim.graph.ops` (the vertex functions) or
:mod:`neurosim.graph.reference` (the schedules) and is tested equal to it to 1e-10.

The kernels are dtype-generic: the state buffers, parameters and scratch are all float64 or all float32 (one
specialisation each, the float32 one compiled the first time it is used); the plan's tables stay float64 and
int64, and the energies are accumulated in float64 whatever the state's dtype.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .. import activations
from ..backends.numba._common import blk, view2d
from ..backends.numba.activations import dphi, phi
from ..backends.numba._linkonly import JIT_INNER
from ..config import JIT_OPTIONS
from ..plan import OPT_ADAM
from .base import ALG_BP, ALG_FPA, ALG_IPC, ALG_PC, ALG_ZIL, INIT_FEEDFORWARD, INIT_PREVIOUS, INIT_ZEROS
from .plan import (BIAS_UNIT, E_CONV, E_DENSE, E_SCALE, EI_KH, EI_KIND, EI_KW, EI_PAD, EI_PARAM,
                   EI_PHI, EI_SRC, EI_STRIDE, OP_ACT, OP_AFFINE, OP_AVGPOOL, OP_INPUT, OP_MAXPOOL, OP_PRODUCT,
                   P_MEAN, P_OFF, P_OPT, P_PLASTIC, P_SIZE, PF_B1, PF_B2, PF_EPS, PF_LR, PF_MOM, PF_WD, ROLE_FREE,
                   ROLE_TARGET, V_BIAS, V_BKIND, V_C, V_E0, V_E1, V_H, V_INOFF, V_LEVEL, V_OFF, V_OP, V_PHI, V_PK,
                   V_PS, V_ROLE, V_SIZE, V_W, VF_TAU, VF_TAU_EPS)

__all__ = ["graph_batch_kernel", "vertex_kernel", "conv_scratch_sizes"]


def conv_scratch_sizes(plan, B: int) -> tuple:
    """Lengths of the convolution scratch buffers ``cb`` (Ci kh kw x B Ho Wo) and ``ob`` (Co x B Ho Wo) for batch
    size ``B`` (at least 1 each)."""
    nc = no = 1
    for e in range(plan.EI.shape[0]):
        if plan.EI[e, EI_KIND] != E_CONV:
            continue
        src = plan.EI[e, EI_SRC]
        dst = int(np.searchsorted(plan.VI[:, V_E1], e, side="right"))
        hw = int(plan.VI[dst, V_H] * plan.VI[dst, V_W])
        nk = int(plan.VI[src, V_C] * plan.EI[e, EI_KH] * plan.EI[e, EI_KW])
        nc = max(nc, nk * B * hw)
        no = max(no, int(plan.VI[dst, V_C]) * B * hw)
    return nc, no

_LEAKY = float(activations.ACTIVATIONS["leaky_relu"].param)
_ALG_PC, _ALG_FPA, _ALG_ZIL, _ALG_BP, _ALG_IPC = ALG_PC, ALG_FPA, ALG_ZIL, ALG_BP, ALG_IPC
_INIT_FF, _INIT_ZEROS, _INIT_PREVIOUS = INIT_FEEDFORWARD, INIT_ZEROS, INIT_PREVIOUS

#: which vertex operations the kernels compile: True here (every circuit); :func:`graph_batch_kernel` runs copies
#: with the ones a circuit does not use set False (see :mod:`neurosim.backends.numba._specialise`), so that a dense
#: circuit compiles no convolution, pooling, product or read-noise code
HAS_CONV = True
HAS_POOL = True
HAS_PRODUCT = True
HAS_NOISE = True


@njit(**JIT_INNER)
def _act_in(code, Xs, s1, B, n):
    """phi(Xs) in the scratch buffer (or Xs itself for the identity)."""
    if code == 0:
        return Xs
    A = view2d(s1, 0, B, n)
    for b in range(B):
        for j in range(n):
            A[b, j] = phi(code, _LEAKY, Xs[b, j])
    return A


# ----------------------------------------------------------------------------------------------- convolution
@njit(**JIT_INNER)
def _im2col(A, Ci, H, W, Ho, Wo, kh, kw, s, p, col):
    """col[(ci kh + u) kw + v, b Ho Wo + oh Wo + ow] = A[b, ci, oh s + u - p, ow s + v - p] (0 outside)."""
    B = A.shape[0]
    hw = Ho * Wo
    for ci in range(Ci):
        for u in range(kh):
            for v in range(kw):
                r = (ci * kh + u) * kw + v
                for b in range(B):
                    for oh in range(Ho):
                        ih = oh * s + u - p
                        base = b * hw + oh * Wo
                        if ih < 0 or ih >= H:
                            for ow in range(Wo):
                                col[r, base + ow] = 0.0
                            continue
                        ib = (ci * H + ih) * W
                        for ow in range(Wo):
                            iw = ow * s + v - p
                            col[r, base + ow] = A[b, ib + iw] if 0 <= iw < W else 0.0


@njit(**JIT_INNER)
def _col2im(col, Ci, H, W, Ho, Wo, kh, kw, s, p, T):
    """T (B, Ci H W) = the adjoint of :func:`_im2col` applied to col (zeroed here)."""
    B = T.shape[0]
    hw = Ho * Wo
    for b in range(B):
        for j in range(Ci * H * W):
            T[b, j] = 0.0
    for ci in range(Ci):
        for u in range(kh):
            for v in range(kw):
                r = (ci * kh + u) * kw + v
                for b in range(B):
                    for oh in range(Ho):
                        ih = oh * s + u - p
                        if ih < 0 or ih >= H:
                            continue
                        ib = (ci * H + ih) * W
                        base = b * hw + oh * Wo
                        for ow in range(Wo):
                            iw = ow * s + v - p
                            if 0 <= iw < W:
                                T[b, ib + iw] += col[r, base + ow]


@njit(**JIT_INNER)
def _chan_to_rows(E, Co, hw, out):
    """out[co, b hw + q] = E[b, co hw + q] (the (B, Co, hw) block as a (Co, B hw) matrix)."""
    B = E.shape[0]
    for b in range(B):
        for co in range(Co):
            for q in range(hw):
                out[co, b * hw + q] = E[b, co * hw + q]


@njit(**JIT_INNER)
def _conv_fwd(A, K, Ci, H, W, Co, Ho, Wo, kh, kw, s, p, coef, M, cbuf, obuf):
    """M += coef * conv(A, K): im2col and one GEMM, (Co, Ci kh kw) @ (Ci kh kw, B Ho Wo)."""
    B = A.shape[0]
    hw = Ho * Wo
    nk = Ci * kh * kw
    col = view2d(cbuf, 0, nk, B * hw)
    out = view2d(obuf, 0, Co, B * hw)
    _im2col(A, Ci, H, W, Ho, Wo, kh, kw, s, p, col)
    np.dot(view2d(K, 0, Co, nk), col, out)
    for b in range(B):
        for co in range(Co):
            for q in range(hw):
                M[b, co * hw + q] += coef * out[co, b * hw + q]


@njit(**JIT_INNER)
def _conv_vjp(E, K, Ci, H, W, Co, Ho, Wo, kh, kw, s, p, T, cbuf, obuf):
    """T (B, Ci H W) = K^T * E: GEMM (Ci kh kw, Co) @ (Co, B Ho Wo), then col2im (T zeroed here)."""
    B = E.shape[0]
    hw = Ho * Wo
    nk = Ci * kh * kw
    Er = view2d(obuf, 0, Co, B * hw)
    dcol = view2d(cbuf, 0, nk, B * hw)
    _chan_to_rows(E, Co, hw, Er)
    np.dot(view2d(K, 0, Co, nk).T, Er, dcol)
    _col2im(dcol, Ci, H, W, Ho, Wo, kh, kw, s, p, T)


@njit(**JIT_INNER)
def _conv_grad(E, A, Ci, H, W, Co, Ho, Wo, kh, kw, s, p, coef, G, goff, cbuf, obuf, sG):
    """G[kernel] += coef * sum over batch and positions of E x patches: GEMM (Co, B Ho Wo) @ (B Ho Wo, Ci kh kw)."""
    B = E.shape[0]
    hw = Ho * Wo
    nk = Ci * kh * kw
    col = view2d(cbuf, 0, nk, B * hw)
    Er = view2d(obuf, 0, Co, B * hw)
    Gk = view2d(sG, 0, Co, nk)
    _im2col(A, Ci, H, W, Ho, Wo, kh, kw, s, p, col)
    _chan_to_rows(E, Co, hw, Er)
    np.dot(Er, col.T, Gk)
    for j in range(Co * nk):
        G[goff + j] += coef * sG[j]


# ----------------------------------------------------------------------------------------------- pooling
@njit(**JIT_INNER)
def _argmax_window(Xs, b, c, H, W, oh, ow, k, s):
    base = c * H * W
    best = base + (oh * s) * W + ow * s
    m = Xs[b, best]
    for u in range(k):
        for v in range(k):
            j = base + (oh * s + u) * W + ow * s + v
            if Xs[b, j] > m:
                m = Xs[b, j]
                best = j
    return best


@njit(**JIT_INNER)
def _pool_fwd(is_max, Xs, C, H, W, Ho, Wo, k, s, M):
    B = Xs.shape[0]
    inv = 1.0 / (k * k)
    for b in range(B):
        for c in range(C):
            for oh in range(Ho):
                for ow in range(Wo):
                    o = (c * Ho + oh) * Wo + ow
                    if is_max:
                        M[b, o] = Xs[b, _argmax_window(Xs, b, c, H, W, oh, ow, k, s)]
                    else:
                        acc = 0.0
                        for u in range(k):
                            for v in range(k):
                                acc += Xs[b, (c * H + oh * s + u) * W + ow * s + v]
                        M[b, o] = acc * inv


@njit(**JIT_INNER)
def _pool_vjp(is_max, E, Xs, C, H, W, Ho, Wo, k, s, O):
    """O += J^T E (accumulates)."""
    B = E.shape[0]
    inv = 1.0 / (k * k)
    for b in range(B):
        for c in range(C):
            for oh in range(Ho):
                for ow in range(Wo):
                    g = E[b, (c * Ho + oh) * Wo + ow]
                    if is_max:
                        O[b, _argmax_window(Xs, b, c, H, W, oh, ow, k, s)] += g
                    else:
                        for u in range(k):
                            for v in range(k):
                                O[b, (c * H + oh * s + u) * W + ow * s + v] += g * inv


# ----------------------------------------------------------------------------------------------- read noise
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@njit(**JIT_INNER)
def _splitmix64(z):
    z = z + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(**JIT_OPTIONS)
def _read_normal(rn):
    """The next draw of the counter-based stream ``rn[2]`` (counter ``rn[3]``, advanced here): the numba twin of
    :func:`neurosim.graph.ops.read_normals`."""
    c2 = np.uint64(2) * np.uint64(rn[3])
    rn[3] += 1.0
    key = _splitmix64(np.uint64(rn[2]))
    h1 = _splitmix64(key + c2)
    h2 = _splitmix64(key + c2 + np.uint64(1))
    u1 = (float(h1 >> np.uint64(11)) + 1.0) * 2.0 ** -53
    u2 = float(h2 >> np.uint64(11)) * 2.0 ** -53
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


@njit(**JIT_INNER)
def _read_noise_fwd(i, B, x, M, theta, VI, EI, EF, PI, s1, cb, ob, rn):
    """M += sqrt(var) xi: the per-read noise of vertex i's weighted current,
    var = sum over its dense/conv edges of a^2 sum_j (sigma_m^2 w_ij^2 + sigma_a^2) phi(x_j)^2 (allocates; the
    noiseless path never calls it).  Drawn before the edges are summed into ``M`` (its values do not matter)."""
    n = VI[i, V_SIZE]
    var = np.zeros((B, n), theta.dtype)
    weighted = False
    for e in range(VI[i, V_E0], VI[i, V_E1]):
        kind = EI[e, EI_KIND]
        if kind == E_SCALE:
            continue
        weighted = True
        src = EI[e, EI_SRC]
        sn = VI[src, V_SIZE]
        A = _act_in(EI[e, EI_PHI], blk(x, B, VI[src, V_OFF], sn), s1, B, sn)
        A2 = np.empty((B, sn), theta.dtype)
        for b in range(B):
            for q in range(sn):
                A2[b, q] = A[b, q] * A[b, q]
        k = EI[e, EI_PARAM]
        po, ps = PI[k, P_OFF], PI[k, P_SIZE]
        K2 = np.empty(ps, theta.dtype)
        for j in range(ps):
            K2[j] = rn[0] * theta[po + j] * theta[po + j] + rn[1]
        c2 = EF[e] * EF[e]
        if kind == E_DENSE:
            for b in range(B):
                for r in range(n):
                    acc = 0.0
                    for q in range(sn):
                        acc += K2[r * sn + q] * A2[b, q]
                    var[b, r] += c2 * acc
        else:
            _conv_fwd(A2, K2, VI[src, V_C], VI[src, V_H], VI[src, V_W], VI[i, V_C], VI[i, V_H], VI[i, V_W],
                      EI[e, EI_KH], EI[e, EI_KW], EI[e, EI_STRIDE], EI[e, EI_PAD], c2, var, cb, ob)
    if weighted:
        for b in range(B):
            for r in range(n):
                v = var[b, r]
                M[b, r] += math.sqrt(v if v > 0.0 else 0.0) * _read_normal(rn)


@njit(**JIT_INNER)
def _read_noise_vjp(i, e, B, E, T, theta, VI, EI, PI, cb, ob, rn):
    """T += sqrt(var) xi: the per-read noise of the feedback read W^T e of weighted edge ``e`` into vertex i,
    var_j = sum_i (sigma_m^2 w_ij^2 + sigma_a^2) e_i^2 (allocates; the noiseless path never calls it)."""
    n = VI[i, V_SIZE]
    src = EI[e, EI_SRC]
    sn = VI[src, V_SIZE]
    k = EI[e, EI_PARAM]
    po, ps = PI[k, P_OFF], PI[k, P_SIZE]
    K2 = np.empty(ps, theta.dtype)
    for j in range(ps):
        K2[j] = rn[0] * theta[po + j] * theta[po + j] + rn[1]
    E2 = np.empty((B, n), theta.dtype)
    for b in range(B):
        for r in range(n):
            E2[b, r] = E[b, r] * E[b, r]
    var = np.zeros((B, sn), theta.dtype)
    if EI[e, EI_KIND] == E_DENSE:
        for b in range(B):
            for r in range(n):
                for q in range(sn):
                    var[b, q] += K2[r * sn + q] * E2[b, r]
    else:
        _conv_vjp(E2, K2, VI[src, V_C], VI[src, V_H], VI[src, V_W], VI[i, V_C], VI[i, V_H], VI[i, V_W],
                  EI[e, EI_KH], EI[e, EI_KW], EI[e, EI_STRIDE], EI[e, EI_PAD], var, cb, ob)
    for b in range(B):
        for q in range(sn):
            v = var[b, q]
            T[b, q] += math.sqrt(v if v > 0.0 else 0.0) * _read_normal(rn)


# ----------------------------------------------------------------------------------------------- vertices
@njit(**JIT_INNER)
def _forward_vertex(i, B, x, mu, theta, VI, EI, EF, PI, s1, s2, cb, ob, rn):
    """mu block of vertex i = g_i(parents' blocks of x); ``rn`` = (sigma_m^2, sigma_a^2, seed, counter) of per-read
    noise on the weighted current (:mod:`neurosim.graph.ops`), (0, 0, 0, 0) for none."""
    op = VI[i, V_OP]
    n = VI[i, V_SIZE]
    M = blk(mu, B, VI[i, V_OFF], n)
    e0, e1 = VI[i, V_E0], VI[i, V_E1]
    if op == OP_AFFINE:
        for b in range(B):
            for j in range(n):
                M[b, j] = 0.0
        if HAS_NOISE:
            if rn[0] > 0 or rn[1] > 0:
                _read_noise_fwd(i, B, x, M, theta, VI, EI, EF, PI, s1, cb, ob, rn)
        for e in range(e0, e1):
            src = EI[e, EI_SRC]
            kind = EI[e, EI_KIND]
            coef = EF[e]
            sn = VI[src, V_SIZE]
            Xs = blk(x, B, VI[src, V_OFF], sn)
            if kind == E_SCALE:
                for b in range(B):
                    for j in range(n):
                        M[b, j] += coef * Xs[b, j]
                continue
            A = _act_in(EI[e, EI_PHI], Xs, s1, B, sn)
            k = EI[e, EI_PARAM]
            po, ps = PI[k, P_OFF], PI[k, P_SIZE]
            if kind == E_DENSE:
                Wm = view2d(theta, po, n, sn)
                T = view2d(s2, 0, B, n)
                np.dot(A, Wm.T, T)
                for b in range(B):
                    for j in range(n):
                        M[b, j] += coef * T[b, j]
            elif HAS_CONV:
                _conv_fwd(A, theta[po:po + ps], VI[src, V_C], VI[src, V_H], VI[src, V_W], VI[i, V_C], VI[i, V_H],
                          VI[i, V_W], EI[e, EI_KH], EI[e, EI_KW], EI[e, EI_STRIDE], EI[e, EI_PAD], coef, M, cb, ob)
        kb = VI[i, V_BIAS]
        if kb >= 0:
            bo = PI[kb, P_OFF]
            if VI[i, V_BKIND] == BIAS_UNIT:
                for b in range(B):
                    for j in range(n):
                        M[b, j] += theta[bo + j]
            else:
                hw = VI[i, V_H] * VI[i, V_W]
                for b in range(B):
                    for c in range(VI[i, V_C]):
                        bc = theta[bo + c]
                        for r in range(hw):
                            M[b, c * hw + r] += bc
    elif HAS_PRODUCT and op == OP_PRODUCT:
        X0 = blk(x, B, VI[EI[e0, EI_SRC], V_OFF], n)
        for b in range(B):
            for j in range(n):
                M[b, j] = X0[b, j]
        for e in range(e0 + 1, e1):
            Xe = blk(x, B, VI[EI[e, EI_SRC], V_OFF], n)
            for b in range(B):
                for j in range(n):
                    M[b, j] *= Xe[b, j]
    elif op == OP_ACT:
        Xs = blk(x, B, VI[EI[e0, EI_SRC], V_OFF], n)
        code = VI[i, V_PHI]
        for b in range(B):
            for j in range(n):
                M[b, j] = phi(code, _LEAKY, Xs[b, j])
    elif HAS_POOL and (op == OP_MAXPOOL or op == OP_AVGPOOL):
        src = EI[e0, EI_SRC]
        Xs = blk(x, B, VI[src, V_OFF], VI[src, V_SIZE])
        _pool_fwd(op == OP_MAXPOOL, Xs, VI[src, V_C], VI[src, V_H], VI[src, V_W], VI[i, V_H], VI[i, V_W],
                  VI[i, V_PK], VI[i, V_PS], M)


@njit(**JIT_INNER)
def _vjp_vertex(i, B, xJ, ebuf, out, theta, VI, EI, EF, PI, s2, cb, ob, rn):
    """out[parent] += (d g_i / d x_parent)(xJ)^T e_i for every non-input parent (e_i read from ebuf)."""
    op = VI[i, V_OP]
    n = VI[i, V_SIZE]
    E = blk(ebuf, B, VI[i, V_OFF], n)
    e0, e1 = VI[i, V_E0], VI[i, V_E1]
    for e in range(e0, e1):
        src = EI[e, EI_SRC]
        if VI[src, V_OP] == OP_INPUT:
            continue
        sn = VI[src, V_SIZE]
        O = blk(out, B, VI[src, V_OFF], sn)
        Xs = blk(xJ, B, VI[src, V_OFF], sn)
        if op == OP_AFFINE:
            kind = EI[e, EI_KIND]
            coef = EF[e]
            if kind == E_SCALE:
                for b in range(B):
                    for j in range(n):
                        O[b, j] += coef * E[b, j]
                continue
            k = EI[e, EI_PARAM]
            po, ps = PI[k, P_OFF], PI[k, P_SIZE]
            T = view2d(s2, 0, B, sn)
            if kind == E_DENSE:
                np.dot(E, view2d(theta, po, n, sn), T)
            elif HAS_CONV:
                _conv_vjp(E, theta[po:po + ps], VI[src, V_C], VI[src, V_H], VI[src, V_W], VI[i, V_C], VI[i, V_H],
                          VI[i, V_W], EI[e, EI_KH], EI[e, EI_KW], EI[e, EI_STRIDE], EI[e, EI_PAD], T, cb, ob)
            if HAS_NOISE:
                if rn[0] > 0 or rn[1] > 0:
                    _read_noise_vjp(i, e, B, E, T, theta, VI, EI, PI, cb, ob, rn)
            code = EI[e, EI_PHI]
            if code == 0:
                for b in range(B):
                    for j in range(sn):
                        O[b, j] += coef * T[b, j]
            else:
                for b in range(B):
                    for j in range(sn):
                        O[b, j] += coef * dphi(code, _LEAKY, Xs[b, j]) * T[b, j]
        elif HAS_PRODUCT and op == OP_PRODUCT:
            for b in range(B):
                for j in range(n):
                    g = E[b, j]
                    for m in range(e0, e1):
                        if m != e:
                            g *= xJ[B * VI[EI[m, EI_SRC], V_OFF] + b * n + j]
                    O[b, j] += g
        elif op == OP_ACT:
            code = VI[i, V_PHI]
            for b in range(B):
                for j in range(n):
                    O[b, j] += dphi(code, _LEAKY, Xs[b, j]) * E[b, j]
        elif HAS_POOL:
            _pool_vjp(op == OP_MAXPOOL, E, Xs, VI[src, V_C], VI[src, V_H], VI[src, V_W], VI[i, V_H], VI[i, V_W],
                      VI[i, V_PK], VI[i, V_PS], O)


@njit(**JIT_INNER)
def _grad_vertex(i, B, xP, ebuf, G, theta, VI, EI, EF, PI, s1, sG, cb, ob):
    """G[params of i] += (d g_i / d theta)^T e_i summed over the batch, parents' values from xP."""
    if VI[i, V_OP] != OP_AFFINE:
        return
    n = VI[i, V_SIZE]
    E = blk(ebuf, B, VI[i, V_OFF], n)
    for e in range(VI[i, V_E0], VI[i, V_E1]):
        kind = EI[e, EI_KIND]
        if kind == E_SCALE:
            continue
        src = EI[e, EI_SRC]
        sn = VI[src, V_SIZE]
        coef = EF[e]
        A = _act_in(EI[e, EI_PHI], blk(xP, B, VI[src, V_OFF], sn), s1, B, sn)
        k = EI[e, EI_PARAM]
        po, ps = PI[k, P_OFF], PI[k, P_SIZE]
        if kind == E_DENSE:
            Gm = view2d(sG, 0, n, sn)
            np.dot(E.T, A, Gm)
            for j in range(ps):
                G[po + j] += coef * sG[j]
        elif HAS_CONV:
            _conv_grad(E, A, VI[src, V_C], VI[src, V_H], VI[src, V_W], VI[i, V_C], VI[i, V_H], VI[i, V_W],
                       EI[e, EI_KH], EI[e, EI_KW], EI[e, EI_STRIDE], EI[e, EI_PAD], coef, G, po, cb, ob, sG)
    kb = VI[i, V_BIAS]
    if kb >= 0:
        bo = PI[kb, P_OFF]
        if VI[i, V_BKIND] == BIAS_UNIT:
            for b in range(B):
                for j in range(n):
                    G[bo + j] += E[b, j]
        else:
            hw = VI[i, V_H] * VI[i, V_W]
            for b in range(B):
                for c in range(VI[i, V_C]):
                    acc = 0.0
                    for r in range(hw):
                        acc += E[b, c * hw + r]
                    G[bo + c] += acc


# ----------------------------------------------------------------------------------------------- optimiser
@njit(**JIT_INNER)
def _apply(G, B, theta, m, v, opt_t, PI, PF, mask, use_mask, factor):
    """theta += lr * (optimiser of ``factor`` times the reduced direction G / B (mean) or G (sum)); mirrors
    optimizer_step."""
    for k in range(PI.shape[0]):
        if PI[k, P_PLASTIC] == 0 or (use_mask and mask[k] == 0):
            continue
        opt_t[k] += 1
        t = opt_t[k]
        scale = 1.0 / B if PI[k, P_MEAN] == 1 else 1.0
        lr, mom, wd, b1, b2, eps = PF[k, PF_LR], PF[k, PF_MOM], PF[k, PF_WD], PF[k, PF_B1], PF[k, PF_B2], PF[k, PF_EPS]
        adam = PI[k, P_OPT] == OPT_ADAM
        c1 = 1.0 - b1 ** t
        c2 = 1.0 - b2 ** t
        for j in range(PI[k, P_OFF], PI[k, P_OFF] + PI[k, P_SIZE]):
            g = G[j] * scale
            if factor != 1.0:
                g = factor * g
            if wd > 0:
                g -= wd * theta[j]
            if adam:
                m[j] = b1 * m[j] + (1.0 - b1) * g
                v[j] = b2 * v[j] + (1.0 - b2) * g * g
                theta[j] += lr * (m[j] / c1) / (math.sqrt(v[j] / c2) + eps)
            else:
                if mom > 0:
                    m[j] = mom * m[j] + g
                    g = m[j]
                theta[j] += lr * g


# ----------------------------------------------------------------------------------------------- schedules
@njit(**JIT_INNER)
def _predict_all(B, x, mu, theta, VI, EI, EF, PI, s1, s2, cb, ob, rn):
    for i in range(VI.shape[0]):
        if VI[i, V_OP] != OP_INPUT:
            _forward_vertex(i, B, x, mu, theta, VI, EI, EF, PI, s1, s2, cb, ob, rn)


@njit(**JIT_INNER)
def _error_vertex(i, B, x, mu, eps, VI, UP):
    """eps_i = precision (x_i - mu_i), with the precision of each unit (``UP``); returns the batch-mean energy
    of vertex i, sum(precision (x_i - mu_i)^2) / (2 B)."""
    o = VI[i, V_OFF]
    n = VI[i, V_SIZE]
    acc = 0.0
    for b in range(B):
        lo = B * o + b * n
        for u in range(n):
            r = x[lo + u] - mu[lo + u]
            e = UP[o + u] * r
            eps[lo + u] = e
            acc += e * r
    return 0.5 * acc / B


@njit(**JIT_INNER)
def _errors(B, x, mu, eps, VI, UP, energy_row):
    """Errors and energies of every vertex; returns the first vertex with a non-finite energy (or -1)."""
    bad = -1
    for i in range(VI.shape[0]):
        if VI[i, V_OP] == OP_INPUT:
            energy_row[i] = 0.0
            continue
        energy_row[i] = _error_vertex(i, B, x, mu, eps, VI, UP)
        if bad < 0 and not math.isfinite(energy_row[i]):
            bad = i
    return bad


@njit(**JIT_INNER)
def _feedback_all(B, xJ, eps, drive, theta, VI, EI, EF, PI, s2, cb, ob, rn):
    drive[:] = 0.0
    for i in range(VI.shape[0]):
        if VI[i, V_OP] != OP_INPUT:
            _vjp_vertex(i, B, xJ, eps, drive, theta, VI, EI, EF, PI, s2, cb, ob, rn)


@njit(**JIT_INNER)
def _movable(i, clamp, VI):
    """Whether vertex i relaxes: a free vertex, or the output when it is not clamped."""
    role = VI[i, V_ROLE]
    return role == ROLE_FREE or (role == ROLE_TARGET and not clamp)


@njit(**JIT_INNER)
def _step(B, x, eps, drive, rate, clamp, only_level, VI, VF, beta, Y, target):
    """Euler step x_i += (rate / tau_i) (drive_i - eps_i) of every movable vertex (``only_level`` >= 0: only
    those at that level); an unclamped output with ``beta > 0`` adds the nudge ``beta (Y - x_out)``."""
    for i in range(VI.shape[0]):
        if only_level >= 0 and VI[i, V_LEVEL] != only_level:
            continue
        if _movable(i, clamp, VI):
            h = rate / VF[i, VF_TAU]
            if i == target and beta > 0:
                n = VI[i, V_SIZE]
                lo = B * VI[i, V_OFF]
                for b in range(B):
                    for jj in range(n):
                        j = lo + b * n + jj
                        x[j] += h * ((drive[j] - eps[j]) + beta * (Y[b, jj] - x[j]))
            else:
                for j in range(B * VI[i, V_OFF], B * (VI[i, V_OFF] + VI[i, V_SIZE])):
                    x[j] += h * (drive[j] - eps[j])


@njit(**JIT_INNER)
def _has_parent_at(i, level, VI, EI):
    for e in range(VI[i, V_E0], VI[i, V_E1]):
        if VI[EI[e, EI_SRC], V_LEVEL] == level:
            return True
    return False


@njit(**JIT_INNER)
def _zil_wavefront(B, n, rate, learn, factor, Y, target, theta, m, v, opt_t, VI, VF, UP, EI, EF, PI, PF, used, x, mu, eps,
                   drive, G, s1, s2, sG, cb, ob, energies, status, rn):
    """Z-IL with only the wave-front moving (``values="wavefront"``, deferred updates), touching only what changes.

    ``mu`` must hold the predictions at the initial state.  At step t the vertices at level t have just moved
    (step t - 1), so only their errors and the predictions of their children change; the next movers (level
    t + 1) need the feedback of their children only.  Everything
    else keeps its value, so this computes exactly what the full sweep of :func:`graph_batch_kernel` computes,
    at the cost of about one backward pass instead of ``depth`` forward passes.
    """
    nv = VI.shape[0]
    for t in range(n + 1):
        if t == 0:
            bad = _errors(B, x, mu, eps, VI, UP, energies[0])  # mu holds the initial predictions
        else:
            bad = -1
            for i in range(nv):
                energies[t, i] = energies[t - 1, i]
            for i in range(nv):
                if VI[i, V_OP] == OP_INPUT:
                    continue
                fresh = _has_parent_at(i, t, VI, EI)
                if fresh:
                    _forward_vertex(i, B, x, mu, theta, VI, EI, EF, PI, s1, s2, cb, ob, rn)
                if fresh or VI[i, V_LEVEL] == t:
                    energies[t, i] = _error_vertex(i, B, x, mu, eps, VI, UP)
                    if bad < 0 and not math.isfinite(energies[t, i]):
                        bad = i
        if bad >= 0:
            status[0], status[1], status[2] = 1, t, bad
            return
        if t < n:
            drive[:] = 0.0
            for i in range(nv):
                if VI[i, V_OP] != OP_INPUT and _has_parent_at(i, t + 1, VI, EI):
                    _vjp_vertex(i, B, x, eps, drive, theta, VI, EI, EF, PI, s2, cb, ob, rn)
        for i in range(nv):
            if VI[i, V_OP] != OP_INPUT and VI[i, V_LEVEL] == t:
                _grad_vertex(i, B, x, eps, G, theta, VI, EI, EF, PI, s1, sG, cb, ob)
        if t < n:
            _step(B, x, eps, drive, rate, True, t + 1, VI, VF, 0.0, Y, target)
    if learn:
        _apply(G, B, theta, m, v, opt_t, PI, PF, used[0], False, factor)


# ----------------------------------------------------------------------------------------------- PC and iPC
@njit(**JIT_INNER)
def _has_eps_state(i, VI, VF):
    """Whether vertex i's error units are a state of their own (``tau_eps > 0``; PC and iPC only)."""
    return VI[i, V_OP] != OP_INPUT and VF[i, VF_TAU_EPS] > 0


@njit(**JIT_INNER)
def _errors_state(B, x, mu, eps, deps, VI, VF, UP, energy_row):
    """As :func:`_errors`, but a vertex with ``tau_eps > 0`` keeps its error state ``eps`` and gets its rate
    ``deps = ((x - mu) - eps / precision) / tau_eps`` instead; the energy is ``prec/2 |x - mu|^2`` (batch mean)
    either way."""
    bad = -1
    for i in range(VI.shape[0]):
        if VI[i, V_OP] == OP_INPUT:
            energy_row[i] = 0.0
            continue
        if _has_eps_state(i, VI, VF):
            te = VF[i, VF_TAU_EPS]
            o = VI[i, V_OFF]
            n = VI[i, V_SIZE]
            acc = 0.0
            for b in range(B):
                lo = B * o + b * n
                for u in range(n):
                    prec = UP[o + u]
                    r = x[lo + u] - mu[lo + u]
                    deps[lo + u] = (r - eps[lo + u] / prec) / te
                    acc += prec * r * r
            energy_row[i] = 0.5 * acc / B
        else:
            energy_row[i] = _error_vertex(i, B, x, mu, eps, VI, UP)
        if bad < 0 and not math.isfinite(energy_row[i]):
            bad = i
    return bad


@njit(**JIT_INNER)
def _send(B, a, sent, theta, sends, ptr, idx, fan, fan_off, VI, k, col, events, sops, eev):
    """Send on delta (:mod:`neurosim.graph.events`): every unit of a sending vertex whose ``a`` moved by more than
    ``theta`` from ``sent`` is sent (``sent = a`` there; one event, ``fan`` operations on each of the vertex's edges
    ``idx[ptr[i]:ptr[i+1]]``); a vertex that sends nothing to anyone passes ``a`` through."""
    for i in range(VI.shape[0]):
        lo = B * VI[i, V_OFF]
        n = VI[i, V_SIZE]
        if not sends[i]:
            for j in range(lo, lo + B * n):
                sent[j] = a[j]
            continue
        for b in range(B):
            for jj in range(n):
                j = lo + b * n + jj
                if abs(a[j] - sent[j]) > theta:
                    sent[j] = a[j]
                    events[k, i, col] += 1
                    for q in range(ptr[i], ptr[i + 1]):
                        e = idx[q]
                        sops[e, col] += fan[fan_off[e] + jj]
                        eev[e, col] += 1.0


@njit(**JIT_INNER)
def _derivs(B, x, mu, eps, drive, deps, theta, VI, VF, UP, EI, EF, PI, s1, s2, cb, ob, energy_row, feedback, rn, ev,
            k):
    """Predictions, errors (and error rates), energies and, when ``feedback``, the feedback ``drive = J^T eps``
    at the state ``(x, eps)``; returns the first vertex with a non-finite energy (or -1).

    Event coding (``ev[0]`` holds the thresholds and the switch, see :func:`graph_batch_kernel`): the value units
    send first and the predictions read the sent copies; the error units send before the feedback, which reads
    the sent values and errors; evaluation ``k`` is counted."""
    th, xr, er, sendv, sende, optr, oidx, iptr, iidx, FO, FOo, FI, FIo, events, sops, eev = ev
    on = th[2] > 0
    if on:
        _send(B, x, xr, th[0], sendv, optr, oidx, FO, FOo, VI, k, 0, events, sops, eev)
    _predict_all(B, xr if on else x, mu, theta, VI, EI, EF, PI, s1, s2, cb, ob, rn)
    bad = _errors_state(B, x, mu, eps, deps, VI, VF, UP, energy_row)
    if feedback:
        if on:
            _send(B, eps, er, th[1], sende, iptr, iidx, FI, FIo, VI, k, 1, events, sops, eev)
        _feedback_all(B, xr if on else x, er if on else eps, drive, theta, VI, EI, EF, PI, s2, cb, ob, rn)
    return bad


@njit(**JIT_INNER)
def _vertex_rates(i, B, x, eps, drive, beta, Y, target, VI, VF, out):
    """dx/dt = (drive - eps [+ beta (Y - x_out)]) / tau_x over the units of the movable vertex i, written to
    ``out`` unless ``out`` is empty (``out`` may be ``drive`` itself); returns the largest |dx/dt|."""
    n = VI[i, V_SIZE]
    lo = B * VI[i, V_OFF]
    tau = VF[i, VF_TAU]
    nudge = i == target and beta > 0
    write = out.shape[0] > 0
    top = 0.0
    for b in range(B):
        for jj in range(n):
            j = lo + b * n + jj
            d = drive[j] - eps[j]
            if nudge:
                d += beta * (Y[b, jj] - x[j])
            r = d / tau
            if write:
                out[j] = r
            a = abs(r)
            if a > top:
                top = a
    return top


@njit(**JIT_INNER)
def _rates(B, x, eps, drive, clamp, beta, Y, target, VI, VF, out):
    """out = dx/dt (:func:`_vertex_rates`) on movable vertices, 0 elsewhere (elementwise, so ``out`` may be
    ``drive`` itself)."""
    for i in range(VI.shape[0]):
        if not _movable(i, clamp, VI) or VI[i, V_OP] == OP_INPUT:
            for j in range(B * VI[i, V_OFF], B * (VI[i, V_OFF] + VI[i, V_SIZE])):
                out[j] = 0.0
            continue
        _vertex_rates(i, B, x, eps, drive, beta, Y, target, VI, VF, out)


@njit(**JIT_INNER)
def _max_rate(B, x, eps, drive, deps, clamp, beta, Y, target, VI, VF):
    """max |dx/dt| over the movable vertices and |d eps/dt| over the error states (the ``tol`` test)."""
    top = 0.0
    for i in range(VI.shape[0]):
        if VI[i, V_OP] == OP_INPUT:
            continue
        if _movable(i, clamp, VI):
            a = _vertex_rates(i, B, x, eps, drive, beta, Y, target, VI, VF, x[:0])
            if a > top:
                top = a
        if _has_eps_state(i, VI, VF):
            for j in range(B * VI[i, V_OFF], B * (VI[i, V_OFF] + VI[i, V_SIZE])):
                a = abs(deps[j])
                if a > top:
                    top = a
    return top


@njit(**JIT_INNER)
def _record(B, item, buf, VI, row):
    """row (n_units, the plan's flat layout) = batch item ``item`` of the vertex-block buffer ``buf``."""
    for i in range(VI.shape[0]):
        o = VI[i, V_OFF]
        n = VI[i, V_SIZE]
        for jj in range(n):
            row[o + jj] = buf[B * o + item * n + jj]


@njit(**JIT_INNER)
def _take_record(B, item, x, eps, mu, VI, rec_x, rec_eps, rec_mu, rec_steps, r, t):
    """Record row ``r`` (step ``t``): x, eps, mu of batch item ``item``; returns the next row."""
    _record(B, item, x, VI, rec_x[r])
    _record(B, item, eps, VI, rec_eps[r])
    _record(B, item, mu, VI, rec_mu[r])
    rec_steps[r] = t
    return r + 1


@njit(**JIT_INNER)
def _relax(algo, B, n, rate, clamp, learn, factor, target, beta, init, tol, heun, dt_decay, rec_every, rec_item, Y,
           eps_init, theta, m, v, opt_t, VI, VF, UP, EI, EF, PI, PF, used, x, mu, eps, drive, x0, deps, e0, k1, ke1,
           G, Gt, s1, s2, sG, cb, ob, energies, erow, rec_steps, rec_x, rec_eps, rec_mu, status, rn, ev):
    """Standard PC (``ALG_PC``) or iPC (``ALG_IPC``) from the initial values in ``x``, as
    :func:`neurosim.backends.reference.ReferenceBackend.run_batch` and :func:`neurosim.algorithms.ipc._numpy`.

    Error states (``tau_eps > 0``) start at ``prec (x - mu)`` (or ``eps_init`` with ``INIT_PREVIOUS``) and follow
    ``d eps/dt = ((x - mu) - eps / prec) / tau_eps`` with the step of the values (not divided by ``tau_x``).
    For t = 0, 1, ...: energies[t]; record; divergence check; stop at t = n or (``tol > 0``) once
    max |dx/dt|, |d eps/dt| < tol; iPC: Hebbian direction at (x_t, eps_t); the step (Euler, or ``heun``:
    x + rate/2 (f(x) + f(x + rate f(x)))); iPC with ``learn``: the update through the optimisers; then
    (``dt_decay < 1``) ``rate *= dt_decay`` when the total energy did not decrease.  PC: the Hebbian direction
    at the final state (applied when ``learn``); iPC: the same direction, reported only.
    """
    nv = VI.shape[0]
    ipc = algo == _ALG_IPC
    has_es = False
    for i in range(nv):
        if _has_eps_state(i, VI, VF):
            has_es = True
    if has_es:
        if init == _INIT_PREVIOUS and eps_init.shape[0] > 0:
            for i in range(nv):
                if _has_eps_state(i, VI, VF):
                    for j in range(B * VI[i, V_OFF], B * (VI[i, V_OFF] + VI[i, V_SIZE])):
                        eps[j] = eps_init[j]
        else:
            _predict_all(B, x, mu, theta, VI, EI, EF, PI, s1, s2, cb, ob, rn)
            for i in range(nv):
                if _has_eps_state(i, VI, VF):
                    o = VI[i, V_OFF]
                    n_i = VI[i, V_SIZE]
                    for b in range(B):
                        lo = B * o + b * n_i
                        for u in range(n_i):
                            eps[lo + u] = UP[o + u] * (x[lo + u] - mu[lo + u])
    track = rec_every > 0 and rec_item < B
    steps = 0
    r = 0
    bad = _derivs(B, x, mu, eps, drive, deps, theta, VI, VF, UP, EI, EF, PI, s1, s2, cb, ob, energies[0], n > 0, rn,
                  ev, 0)
    for t in range(n + 1):
        if track and t % rec_every == 0:
            r = _take_record(B, rec_item, x, eps, mu, VI, rec_x, rec_eps, rec_mu, rec_steps, r, t)
        if bad >= 0:
            status[0], status[1], status[2], status[3], status[4] = 1, t, bad, t, r
            return
        if t == n:
            break
        if tol > 0 and _max_rate(B, x, eps, drive, deps, clamp, beta, Y, target, VI, VF) < tol:
            break
        if ipc:
            Gt[:] = 0.0
            for i in range(nv):
                if VI[i, V_OP] != OP_INPUT:
                    _grad_vertex(i, B, x, eps, Gt, theta, VI, EI, EF, PI, s1, sG, cb, ob)
        if heun:
            for j in range(x.shape[0]):   # (loops: an array assignment compiles a shape check and its message)
                x0[j] = x[j]
                e0[j] = eps[j]
                ke1[j] = deps[j]
            _rates(B, x, eps, drive, clamp, beta, Y, target, VI, VF, k1)
            for j in range(x.shape[0]):
                x[j] = x0[j] + rate * k1[j]
            for i in range(nv):
                if _has_eps_state(i, VI, VF):
                    for j in range(B * VI[i, V_OFF], B * (VI[i, V_OFF] + VI[i, V_SIZE])):
                        eps[j] = e0[j] + rate * ke1[j]
            _derivs(B, x, mu, eps, drive, deps, theta, VI, VF, UP, EI, EF, PI, s1, s2, cb, ob, erow, True, rn, ev, 0)
            _rates(B, x, eps, drive, clamp, beta, Y, target, VI, VF, drive)  # f(x + rate f(x)), in place
            for j in range(x.shape[0]):
                x[j] = x0[j] + 0.5 * rate * (k1[j] + drive[j])
            for i in range(nv):
                if _has_eps_state(i, VI, VF):
                    for j in range(B * VI[i, V_OFF], B * (VI[i, V_OFF] + VI[i, V_SIZE])):
                        eps[j] = e0[j] + 0.5 * rate * (ke1[j] + deps[j])
        else:
            _step(B, x, eps, drive, rate, clamp, -1, VI, VF, beta, Y, target)
            if has_es:
                for i in range(nv):
                    if _has_eps_state(i, VI, VF):
                        for j in range(B * VI[i, V_OFF], B * (VI[i, V_OFF] + VI[i, V_SIZE])):
                            eps[j] += rate * deps[j]
        if ipc and learn:
            _apply(Gt, B, theta, m, v, opt_t, PI, PF, used[0], False, factor)
        steps += 1
        bad = _derivs(B, x, mu, eps, drive, deps, theta, VI, VF, UP, EI, EF, PI, s1, s2, cb, ob, energies[t + 1],
                      t + 1 < n, rn, ev, t + 1)
        if dt_decay < 1.0:
            before = 0.0
            after = 0.0
            for i in range(nv):
                before += energies[t, i]
                after += energies[t + 1, i]
            if after >= before:
                rate *= dt_decay
    status[3], status[4] = steps, r
    xP = ev[1] if ev[0][2] > 0 else x   # event coding: the synapses hold the received presynaptic values
    for i in range(nv):
        if VI[i, V_OP] != OP_INPUT:
            _grad_vertex(i, B, xP, eps, G, theta, VI, EI, EF, PI, s1, sG, cb, ob)
    if learn and not ipc:
        _apply(G, B, theta, m, v, opt_t, PI, PF, used[0], False, factor)


# ----------------------------------------------------------------------------------------------- one batch
@njit(**JIT_INNER)
def _start(B, n, target, target_beta, X, Y, theta, VI, EI, EF, PI, x, mu, G, s1, s2, cb, ob, y0, status, rn):
    """The start of every schedule: status reset, inputs loaded, the feedforward pass (``y0`` = its output);
    returns the output's target (``Y``, or the weak target ``y0 + target_beta (Y - y0)``)."""
    nv = VI.shape[0]
    status[0] = 0
    status[1] = -1
    status[2] = -1
    status[3] = n
    status[4] = 0
    G[:] = 0.0
    for i in range(nv):
        if VI[i, V_OP] == OP_INPUT:
            sz = VI[i, V_SIZE]
            Xb = blk(x, B, VI[i, V_OFF], sz)
            io = VI[i, V_INOFF]
            for b in range(B):
                for j in range(sz):
                    Xb[b, j] = X[b, io + j]
    for i in range(nv):  # feedforward pass (topological order)
        if VI[i, V_OP] != OP_INPUT:
            _forward_vertex(i, B, x, mu, theta, VI, EI, EF, PI, s1, s2, cb, ob, rn)
            for j in range(B * VI[i, V_OFF], B * (VI[i, V_OFF] + VI[i, V_SIZE])):
                x[j] = mu[j]
    nt = VI[target, V_SIZE]
    Xt = blk(x, B, VI[target, V_OFF], nt)
    for b in range(B):
        for j in range(nt):
            y0[b, j] = Xt[b, j]
    if target_beta != 1.0:   # the weak target y0 + target_beta (Y - y0) (the layered schedules' option beta)
        Yw = np.empty_like(Y)
        for b in range(B):
            for j in range(nt):
                Yw[b, j] = y0[b, j] + target_beta * (Y[b, j] - y0[b, j])
        return Yw
    return Y


@njit(**JIT_INNER)
def _set_initial(B, algo, init, clamp, target, x, xhat, x_init, Y, VI):
    """The values a relaxation starts from: FPA freezes the feedforward pass in ``xhat``; ``INIT_ZEROS`` sets
    the movable vertices to 0, ``INIT_PREVIOUS`` every computing vertex to ``x_init``; a clamped output takes
    ``Y``."""
    nv = VI.shape[0]
    nt = VI[target, V_SIZE]
    Xt = blk(x, B, VI[target, V_OFF], nt)
    if algo == _ALG_FPA:
        for j in range(x.shape[0]):
            xhat[j] = x[j]
    if init == _INIT_ZEROS:
        for i in range(nv):
            if VI[i, V_OP] != OP_INPUT and _movable(i, clamp, VI):
                for j in range(B * VI[i, V_OFF], B * (VI[i, V_OFF] + VI[i, V_SIZE])):
                    x[j] = 0.0
    elif init == _INIT_PREVIOUS:
        for i in range(nv):
            if VI[i, V_OP] != OP_INPUT:
                for j in range(B * VI[i, V_OFF], B * (VI[i, V_OFF] + VI[i, V_SIZE])):
                    x[j] = x_init[j]
    if clamp:
        for b in range(B):
            for j in range(nt):
                Xt[b, j] = Y[b, j]


@njit(**JIT_OPTIONS)
def graph_pc_kernel(algo, n, rate, clamp, learn, immediate, wavefront, target, beta, init, tol, heun, dt_decay,
                    rec_every, rec_item, target_beta, factor, all_at_zero, X, Y, x_init, eps_init, theta, m, v, opt_t,
                    VI, VF, UP, EI, EF, PI, PF, used, x, mu, eps, drive, xhat, deps, e0, k1, ke1, G, Gt, s1, s2, sG, cb,
                    ob, energies, erow, y0, rec_steps, rec_x, rec_eps, rec_mu, status, rn, ev):
    """PC and iPC (``ALG_PC``, ``ALG_IPC``), with the arguments of :func:`graph_sweep_kernel`: :func:`_start`,
    :func:`_set_initial`, then :func:`_relax`.  A kernel of its own, so that the sweeps compile without the
    relaxation loop (events, Heun, error dynamics) and the relaxation without the sweeps."""
    B = X.shape[0]
    Y = _start(B, n, target, target_beta, X, Y, theta, VI, EI, EF, PI, x, mu, G, s1, s2, cb, ob, y0, status, rn)
    nt = VI[target, V_SIZE]
    _set_initial(B, algo, init, clamp, target, x, xhat, x_init, Y, VI)
    if init != _INIT_FF:  # y0: the output's prediction at the initial state (as the layered backends)
        _predict_all(B, x, mu, theta, VI, EI, EF, PI, s1, s2, cb, ob, rn)
        Mt = blk(mu, B, VI[target, V_OFF], nt)
        for b in range(B):
            for j in range(nt):
                y0[b, j] = Mt[b, j]
    _relax(algo, B, n, rate, clamp, learn, factor, target, beta, init, tol, heun, dt_decay, rec_every, rec_item, Y,
           eps_init, theta, m, v, opt_t, VI, VF, UP, EI, EF, PI, PF, used, x, mu, eps, drive, xhat, deps, e0, k1,
           ke1, G, Gt, s1, s2, sG, cb, ob, energies, erow, rec_steps, rec_x, rec_eps, rec_mu, status, rn, ev)
    return


@njit(**JIT_OPTIONS)
def graph_sweep_kernel(algo, n, rate, clamp, learn, immediate, wavefront, target, beta, init, tol, heun, dt_decay,
                       rec_every, rec_item, target_beta, factor, all_at_zero, X, Y, x_init, eps_init, theta, m, v,
                       opt_t, VI, VF, UP, EI, EF, PI, PF, used, x, mu, eps, drive, xhat, deps, e0, k1, ke1, G, Gt, s1,
                       s2, sG, cb, ob, energies, erow, y0, rec_steps, rec_x, rec_eps, rec_mu, status, rn, ev):
    """One batch of schedule ``algo`` (see :mod:`neurosim.graph.reference` and :class:`~neurosim.graph.base.Schedule`),
    in place: FPA, Z-IL and BP here; PC and iPC in :func:`graph_pc_kernel`, which takes the same arguments
    (:func:`graph_batch_kernel` picks).

    Start: the feedforward pass (``y0`` = its output; PC/iPC with another ``init``: the output's prediction at
    the initial state); FPA freezes it in ``xhat``; then ``init``
    (``INIT_ZEROS``: movable vertices to 0; ``INIT_PREVIOUS``: every computing vertex from ``x_init``, vertex-block
    layout) and, with ``clamp``, the output set to ``Y``.  An unclamped output with ``beta > 0`` is nudged
    toward ``Y`` (:func:`_step`).  PC and iPC run :func:`_relax` (error states, ``tol``, ``heun``, ``dt_decay``,
    records); FPA and Z-IL their own loops below (``tau_eps`` ignored); BP ignores every relaxation setting.

    Scratch: ``s1``, ``s2`` (B max_size), ``sG`` (largest parameter), ``cb`` / ``ob`` (the im2col and channel-row
    matrices of the largest convolution, see :func:`conv_scratch_sizes`); ``xhat`` (FPA: the frozen
    values; Heun: the state at the start of a step), ``deps``, ``e0``, ``k1``, ``ke1`` (B n_units), ``erow``
    (n_vertices, float64).

    Outputs: the state buffers ``x, mu, eps`` (vertex blocks), ``G`` (the update direction summed over the
    batch), ``energies`` (n + 1, n_vertices; float64 whatever the state's dtype), ``y0`` (B, n_out),
    ``rec_steps, rec_x, rec_eps, rec_mu`` (the first ``status[4]`` rows), ``status`` = (code, step, vertex, steps
    taken, records); the parameters and optimiser state are updated when ``learn``.  ``rn`` = (sigma_m^2,
    sigma_a^2, seed, counter) of per-read noise (float64; (0, 0, 0, 0): none), the counter advanced per draw.
    ``ev`` = (thresholds (value, error, on), sent values, sent errors (vertex blocks), value senders, error senders,
    out-edge CSR (ptr, idx), in-edge CSR from non-input parents (ptr, idx), per-edge fan-out and fan-in with their
    offsets, events (n + 1, n_vertices, 2), sops (n_edges, 2), edge events (n_edges, 2)): event coding of PC
    (:mod:`neurosim.graph.events`; on when ``thresholds[2] > 0``; the caller allows it with Euler PC only).
    """
    B = X.shape[0]
    Y = _start(B, n, target, target_beta, X, Y, theta, VI, EI, EF, PI, x, mu, G, s1, s2, cb, ob, y0, status, rn)
    nv = VI.shape[0]
    nt = VI[target, V_SIZE]
    if algo == _ALG_BP:
        status[3] = 0
        eps[:] = 0.0
        Et = blk(eps, B, VI[target, V_OFF], nt)
        ot = VI[target, V_OFF]
        acc = 0.0
        for b in range(B):
            for j in range(nt):
                r = Y[b, j] - y0[b, j]
                Et[b, j] = UP[ot + j] * r
                acc += Et[b, j] * r
        energies[0, target] = 0.5 * acc / B
        if not math.isfinite(energies[0, target]):
            status[0], status[1], status[2], status[3] = 1, 0, target, 0
            return
        for i in range(nv - 1, -1, -1):
            if VI[i, V_OP] != OP_INPUT:
                _vjp_vertex(i, B, x, eps, eps, theta, VI, EI, EF, PI, s2, cb, ob, rn)
        for i in range(nv):
            if VI[i, V_OP] != OP_INPUT:
                _grad_vertex(i, B, x, eps, G, theta, VI, EI, EF, PI, s1, sG, cb, ob)
        if learn:
            _apply(G, B, theta, m, v, opt_t, PI, PF, used[0], False, factor)
        return

    _set_initial(B, algo, init, clamp, target, x, xhat, x_init, Y, VI)
    track = rec_every > 0 and rec_item < B
    if algo == _ALG_ZIL and wavefront and not immediate and not track and not all_at_zero:
        if init != _INIT_FF:  # the wave-front sweep starts from the predictions at the initial state
            _predict_all(B, x, mu, theta, VI, EI, EF, PI, s1, s2, cb, ob, rn)
        _zil_wavefront(B, n, rate, learn, factor, Y, target, theta, m, v, opt_t, VI, VF, UP, EI, EF, PI, PF, used, x, mu, eps,
                       drive, G, s1, s2, sG, cb, ob, energies, status, rn)
        return
    xJ = xhat if algo == _ALG_FPA else x
    r = 0
    for t in range(n + 1):
        if algo != _ALG_FPA:
            _predict_all(B, x, mu, theta, VI, EI, EF, PI, s1, s2, cb, ob, rn)
        bad = _errors(B, x, mu, eps, VI, UP, energies[t])
        if track and t % rec_every == 0:
            r = _take_record(B, rec_item, x, eps, mu, VI, rec_x, rec_eps, rec_mu, rec_steps, r, t)
            status[4] = r
        if bad >= 0:
            status[0], status[1], status[2], status[3] = 1, t, bad, t
            return
        if t < n:
            _feedback_all(B, xJ, eps, drive, theta, VI, EI, EF, PI, s2, cb, ob, rn)
        if algo == _ALG_ZIL:
            Gt[:] = 0.0
            for i in range(nv):
                if VI[i, V_OP] != OP_INPUT and ((t == 0) if all_at_zero else (VI[i, V_LEVEL] == t)):
                    _grad_vertex(i, B, x, eps, Gt, theta, VI, EI, EF, PI, s1, sG, cb, ob)
            G += Gt
            if learn and immediate:
                _apply(Gt, B, theta, m, v, opt_t, PI, PF, used[t], True, factor)
        if t < n:
            _step(B, x, eps, drive, rate, clamp, t + 1 if (algo == _ALG_ZIL and wavefront) else -1, VI, VF, beta, Y,
                  target)
    if algo != _ALG_ZIL:
        for i in range(nv):
            if VI[i, V_OP] != OP_INPUT:
                _grad_vertex(i, B, xJ, eps, G, theta, VI, EI, EF, PI, s1, sG, cb, ob)
    if learn and not (algo == _ALG_ZIL and immediate):
        _apply(G, B, theta, m, v, opt_t, PI, PF, used[0], False, factor)


@njit(**JIT_OPTIONS)
def vertex_kernel(mode, i, B, x, ebuf, out, theta, VI, EI, EF, PI, s1, s2, sG, cb, ob):
    """One vertex function on its own (for the finite-difference tests of :mod:`neurosim.graph.ops`'s twin):
    ``mode`` 0 forward into ``out`` (mu layout), 1 feedback (accumulates into ``out``), 2 parameter term
    (accumulates into ``out``, a flat theta-shaped vector)."""
    rn = np.zeros(4)   # no read noise
    if mode == 0:
        _forward_vertex(i, B, x, out, theta, VI, EI, EF, PI, s1, s2, cb, ob, rn)
    elif mode == 1:
        _vjp_vertex(i, B, x, ebuf, out, theta, VI, EI, EF, PI, s2, cb, ob, rn)
    else:
        _grad_vertex(i, B, x, ebuf, out, theta, VI, EI, EF, PI, s1, sG, cb, ob)


_SPECIALISED = {}
#: positions of the plan's vertex and edge tables and of the read-noise parameters in the kernels' arguments after
#: ``algo`` (see :func:`graph_sweep_kernel`)
_PARAMS = graph_sweep_kernel.py_func.__code__.co_varnames[1:graph_sweep_kernel.py_func.__code__.co_argcount]
_ARG_VI, _ARG_EI, _ARG_RN = _PARAMS.index("VI"), _PARAMS.index("EI"), _PARAMS.index("rn")


def features(VI, EI, rn) -> dict:
    """The vertex operations a circuit's tables use, as the constants of :data:`HAS_CONV` and its siblings."""
    ops = VI[:, V_OP]
    return {"HAS_CONV": bool(EI.shape[0] and np.any(EI[:, EI_KIND] == E_CONV)),
            "HAS_POOL": bool(np.any((ops == OP_MAXPOOL) | (ops == OP_AVGPOOL))),
            "HAS_PRODUCT": bool(np.any(ops == OP_PRODUCT)),
            "HAS_NOISE": bool(rn[0] > 0 or rn[1] > 0)}


def specialised(pc: bool, feats: dict):
    """:func:`graph_pc_kernel` (``pc``) or :func:`graph_sweep_kernel` compiled for the vertex operations ``feats``
    (see :func:`features`), built once per process; each has its own cache files."""
    key = (pc, tuple(sorted(feats.items())))
    k = _SPECIALISED.get(key)
    if k is None:
        from ..backends.numba._specialise import specialise
        import sys
        base = graph_pc_kernel if pc else graph_sweep_kernel
        k = _SPECIALISED[key] = specialise(base.py_func, feats, JIT_OPTIONS, modules=(sys.modules[__name__],))
    return k


def graph_batch_kernel(algo, *args):
    """The kernel of schedule ``algo``: :func:`graph_pc_kernel` for PC and iPC, :func:`graph_sweep_kernel` for FPA,
    Z-IL and BP (same arguments, see the latter), each compiled for the vertex operations the circuit uses
    (:func:`specialised`)."""
    feats = features(args[_ARG_VI], args[_ARG_EI], args[_ARG_RN])
    return specialised(algo in (_ALG_PC, _ALG_IPC), feats)(algo, *args)
