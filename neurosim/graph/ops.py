r"""NumPy reference of every vertex function: forward :math:`g_i`, the feedback path
:math:`(\partial g_i/\partial x_p)^T e` (vector-Jacobian product into each parent) and the parameter term
:math:`(\partial g_i/\partial \theta)^T e` (the Hebbian update direction), all batched.

These are the executable specification the numba kernels (:mod:`neurosim.graph.kernels`) are tested
against, and they are themselves tested against finite differences.  The array math of the projection kinds
(:func:`~neurosim.equations.conv2d`, :func:`~neurosim.equations.conv2d_vjp`,
:func:`~neurosim.equations.conv2d_kernel_grad`, :func:`~neurosim.equations.pool`,
:func:`~neurosim.equations.pool_vjp`) is stated in :mod:`neurosim.equations` with the layered equations; this
module combines it per vertex.  States are lists ``xs`` with one
``(B, n_i)`` array per vertex (flat, C order of the vertex shape ``(C, H, W)``).

Conventions (for one sample; :math:`\phi` is the edge activation, :math:`a` its multiplier):

=========  ==============================================  ==============================================
op         :math:`\mu`                                     feedback into parent / parameter term
=========  ==============================================  ==============================================
dense      :math:`a W \phi(x)`                             :math:`a\,\phi'(x)\odot W^T e` / :math:`a\, e\,\phi(x)^T`
conv       :math:`a K \star \phi(x)` (stride, padding)     :math:`a\,\phi'(x)\odot K^T \star e` /
                                                            :math:`a\sum_{pos} e\,\phi(x)_{window}`
scale      :math:`c\, x`                                   :math:`c\, e`
bias       :math:`b` (per unit or per channel)             -- / :math:`e` (summed over positions)
product    :math:`\prod_j x_j`                             :math:`e \odot \prod_{m\ne j} x_m`
act        :math:`\phi(x)`                                 :math:`\phi'(x)\odot e`
maxpool    window max                                      :math:`e` routed to the first maximum
avgpool    window mean                                     :math:`e / k^2` spread over the window
=========  ==============================================  ==============================================

Per-read noise (``noise=(sigma_m^2, sigma_a^2, rng)``, the ``reads`` noise of a hardware model, as in the layered
event engine): every read of a weighted edge (dense or conv) sees fresh per-read weights
:math:`\tilde w = w(1 + \sigma_m \xi) + \sigma_a \zeta`, which is drawn in the exact distribution of the read
current: the summed weighted current of an affine vertex gets
:math:`\sqrt{\sum_{e} a_e^2 \sum_j (\sigma_m^2 w_{ij}^2 + \sigma_a^2) s_j^2}\,\xi_i` (:math:`s = \phi(x)`,
the sum over the vertex's dense and conv edges, the bias and scale edges exact), and each feedback read
:math:`W^T e` of a weighted edge gets :math:`\sqrt{\sum_i (\sigma_m^2 w_{ij}^2 + \sigma_a^2) e_i^2}\,\xi_j`
before :math:`a\,\phi'(x)\odot` (not into inputs: that feedback is never read); one draw per batch item and unit at
every read, from the counter-based stream of :class:`ReadNoiseStream`.  Vertices without
weights (products, activations, pooling) read no device.  ``noise=None`` (or both variances 0) is the noiseless
function, unchanged.
"""
from __future__ import annotations

import numpy as np

from ..activations import dphi, phi  # the NumPy reference forms, called with the plan's integer codes
# the per-kind array math (convolution, pooling) is stated in neurosim.equations; importable from here too
from ..equations import conv2d, conv2d_kernel_grad, conv2d_vjp, pool, pool_vjp
from .plan import (BIAS_CHANNEL, BIAS_UNIT, E_DENSE, E_SCALE, EI_KIND, EI_PAD, EI_PARAM, EI_PHI, EI_SRC,
                   EI_STRIDE, OP_ACT, OP_AFFINE, OP_AVGPOOL, OP_INPUT, OP_MAXPOOL, OP_PRODUCT, V_BIAS, V_BKIND, V_C,
                   V_E0, V_E1, V_H, V_OP, V_PHI, V_PK, V_PS, V_SIZE, V_W, GraphPlan)

__all__ = ["phi", "dphi", "vertex_forward", "vertex_vjp", "vertex_param_grads", "conv2d", "conv2d_vjp",
           "conv2d_kernel_grad", "pool", "pool_vjp", "ReadNoiseStream", "read_normals", "conv_connectivity", "pool_connectivity"]


# ----------------------------------------------------------------------------------------------- read noise draws
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser of a uint64 array (wrapping arithmetic); the numba twin is in kernels.py."""
    z = z + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def read_normals(seed: int, start: int, size: int) -> np.ndarray:
    r"""Standard normal draws number ``start .. start + size - 1`` of the counter-based stream ``seed``:
    :math:`h_{1,2} = \mathrm{sm}(\mathrm{sm}(seed) + 2c\,(+1))` (SplitMix64), :math:`u_1 = (\lfloor h_1/2^{11}
    
floor + 1)\,2^{-53}`, :math:`u_2 = \lfloor h_2/2^{11}
floor\,2^{-53}`, Box-Muller
    :math:`\sqrt{-2\ln u_1}\cos 2\pi u_2`.  The numba graph kernel computes the same numbers draw by draw, so
    both graph engines see the same read noise wherever they read in the same order."""
    key = _splitmix64(np.array([seed], dtype=np.uint64))
    c2 = np.uint64(2) * np.arange(start, start + size, dtype=np.uint64)
    h1 = _splitmix64(key + c2)
    h2 = _splitmix64(key + c2 + np.uint64(1))
    u1 = ((h1 >> np.uint64(11)).astype(np.float64) + 1.0) * 2.0 ** -53
    u2 = (h2 >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


class ReadNoiseStream:
    """The counter-based normal stream of one batch (:func:`read_normals`): ``standard_normal(shape)`` returns the
    next draws in C order and advances the counter."""

    def __init__(self, seed: int):
        self.seed = int(seed)
        self.count = 0

    def standard_normal(self, shape) -> np.ndarray:
        size = int(np.prod(shape))
        z = read_normals(self.seed, self.count, size).reshape(shape)
        self.count += size
        return z


# ----------------------------------------------------------------------------------------------- vertices
def _shape(plan: GraphPlan, i: int):
    return int(plan.VI[i, V_C]), int(plan.VI[i, V_H]), int(plan.VI[i, V_W])


def _noisy(noise) -> bool:
    return noise is not None and (noise[0] > 0 or noise[1] > 0)


def vertex_forward(plan: GraphPlan, theta: np.ndarray, xs: list, i: int, noise=None) -> np.ndarray:
    """Prediction :math:`\\mu_i = g_i(\\text{parents})`, shape (B, n_i), from the parents' values ``xs``
    (``noise``: per-read noise of the weighted current, see the module docstring)."""
    VI, EI, EF = plan.VI, plan.EI, plan.EF
    noisy = _noisy(noise)
    op = VI[i, V_OP]
    e0, e1 = VI[i, V_E0], VI[i, V_E1]
    B = xs[EI[e0, EI_SRC]].shape[0]
    n = int(VI[i, V_SIZE])
    C, H, W = _shape(plan, i)
    if op == OP_AFFINE:
        mu = np.zeros((B, n), dtype=xs[EI[e0, EI_SRC]].dtype)
        var = np.zeros((B, n)) if noisy else None
        weighted = False
        for e in range(e0, e1):
            src, kind, coef = EI[e, EI_SRC], EI[e, EI_KIND], EF[e]
            if kind == E_SCALE:
                mu += coef * xs[src]
                continue
            weighted = True
            a = phi(EI[e, EI_PHI], xs[src])
            P = plan.param_view(theta, EI[e, EI_PARAM])
            if kind == E_DENSE:
                mu += coef * (a @ P.T)
                if noisy:
                    var += coef ** 2 * ((a * a) @ (noise[0] * P * P + noise[1]).T)
            else:  # E_CONV
                y = conv2d(a.reshape((B,) + _shape(plan, src)), P, int(EI[e, EI_STRIDE]), int(EI[e, EI_PAD]))
                mu += coef * y.reshape(B, n)
                if noisy:
                    v = conv2d((a * a).reshape((B,) + _shape(plan, src)), noise[0] * P * P + noise[1],
                               int(EI[e, EI_STRIDE]), int(EI[e, EI_PAD]))
                    var += coef ** 2 * v.reshape(B, n)
        if noisy and weighted:
            mu += np.sqrt(np.maximum(var, 0.0)) * noise[2].standard_normal((B, n))
        if VI[i, V_BIAS] >= 0:
            b = plan.param_view(theta, VI[i, V_BIAS])
            mu += b if VI[i, V_BKIND] == BIAS_UNIT else np.repeat(b, H * W)
        return mu
    if op == OP_PRODUCT:
        mu = xs[EI[e0, EI_SRC]].copy()
        for e in range(e0 + 1, e1):
            mu = mu * xs[EI[e, EI_SRC]]
        return mu
    src = EI[e0, EI_SRC]
    if op == OP_ACT:
        return phi(VI[i, V_PHI], xs[src])
    if op in (OP_MAXPOOL, OP_AVGPOOL):
        y = pool(xs[src].reshape((B,) + _shape(plan, src)), int(VI[i, V_PK]), int(VI[i, V_PS]),
                 "max" if op == OP_MAXPOOL else "avg")
        return y.reshape(B, n)
    raise ValueError(f"vertex {plan.v_names[i]!r} (op {op}) has no forward function")


def vertex_vjp(plan: GraphPlan, theta: np.ndarray, xs: list, i: int, e_i: np.ndarray, noise=None) -> list:
    """Feedback of vertex ``i``'s error: ``[(parent, (dg_i/dx_parent)^T e_i)]``, one entry per edge (a
    parent reached by two edges appears twice; the contributions add).  Jacobians are taken at ``xs``
    (``noise``: per-read noise of the feedback read of each weighted edge, see the module docstring)."""
    VI, EI, EF = plan.VI, plan.EI, plan.EF
    noisy = _noisy(noise)
    op = VI[i, V_OP]
    e0, e1 = int(VI[i, V_E0]), int(VI[i, V_E1])
    B = e_i.shape[0]
    out = []
    if op == OP_AFFINE:
        for e in range(e0, e1):
            src, kind, coef = int(EI[e, EI_SRC]), EI[e, EI_KIND], EF[e]
            if kind == E_SCALE:
                out.append((src, coef * e_i))
                continue
            P = plan.param_view(theta, EI[e, EI_PARAM])
            if kind == E_DENSE:
                g = e_i @ P
                if noisy:
                    var = (e_i * e_i) @ (noise[0] * P * P + noise[1])
            else:
                g = conv2d_vjp(e_i.reshape((B,) + _shape(plan, i)), P, _shape(plan, src), int(EI[e, EI_STRIDE]),
                               int(EI[e, EI_PAD])).reshape(B, -1)
                if noisy:
                    var = conv2d_vjp((e_i * e_i).reshape((B,) + _shape(plan, i)), noise[0] * P * P + noise[1],
                                     _shape(plan, src), int(EI[e, EI_STRIDE]), int(EI[e, EI_PAD])).reshape(B, -1)
            if noisy and VI[src, V_OP] != OP_INPUT:   # feedback into an input is never read
                g = g + np.sqrt(np.maximum(var, 0.0)) * noise[2].standard_normal(g.shape)
            out.append((src, coef * dphi(EI[e, EI_PHI], xs[src]) * g))
        return out
    if op == OP_PRODUCT:
        for e in range(e0, e1):
            g = e_i.copy()
            for m in range(e0, e1):
                if m != e:
                    g = g * xs[EI[m, EI_SRC]]
            out.append((int(EI[e, EI_SRC]), g))
        return out
    src = int(EI[e0, EI_SRC])
    if op == OP_ACT:
        return [(src, dphi(VI[i, V_PHI], xs[src]) * e_i)]
    if op in (OP_MAXPOOL, OP_AVGPOOL):
        g = pool_vjp(e_i.reshape((B,) + _shape(plan, i)), xs[src].reshape((B,) + _shape(plan, src)),
                     int(VI[i, V_PK]), int(VI[i, V_PS]), "max" if op == OP_MAXPOOL else "avg")
        return [(src, g.reshape(B, -1))]
    return out


def vertex_param_grads(plan: GraphPlan, theta: np.ndarray, xs: list, i: int, e_i: np.ndarray) -> list:
    """Hebbian terms ``[(param, (dg_i/dtheta)^T e_i summed over the batch)]`` of vertex ``i``, with the
    parents' values ``xs`` (one entry per use; a shared parameter used twice by ``i`` appears twice)."""
    VI, EI, EF = plan.VI, plan.EI, plan.EF
    if VI[i, V_OP] != OP_AFFINE:
        return []
    B = e_i.shape[0]
    out = []
    for e in range(int(VI[i, V_E0]), int(VI[i, V_E1])):
        kind = EI[e, EI_KIND]
        if kind == E_SCALE:
            continue
        src, coef, k = int(EI[e, EI_SRC]), EF[e], int(EI[e, EI_PARAM])
        a = phi(EI[e, EI_PHI], xs[src])
        if kind == E_DENSE:
            out.append((k, coef * (e_i.T @ a)))
        else:
            G = conv2d_kernel_grad(e_i.reshape((B,) + _shape(plan, i)), a.reshape((B,) + _shape(plan, src)),
                                   plan.p_shapes[k], int(EI[e, EI_STRIDE]), int(EI[e, EI_PAD]))
            out.append((k, coef * G))
    if VI[i, V_BIAS] >= 0:
        k = int(VI[i, V_BIAS])
        if VI[i, V_BKIND] == BIAS_CHANNEL:
            C, H, W = _shape(plan, i)
            out.append((k, e_i.reshape(B, C, H * W).sum(axis=(0, 2))))
        else:
            out.append((k, e_i.sum(axis=0)))
    return out


def is_input(plan: GraphPlan, i: int) -> bool:
    return plan.VI[i, V_OP] == OP_INPUT


# ----------------------------------------------------------------------------------------------- connectivity
def conv_connectivity(in_shape, out_shape, kshape, stride, pad):
    """``(pre, post, widx)`` of one batch item of a 2-d convolution: input unit ``pre`` (C order of
    ``in_shape``) feeds output unit ``post`` through kernel element ``widx`` (C order of ``kshape``), for every
    output position and every kernel tap that lands inside the input (zero padding has no synapse)."""
    Ci, H, W = in_shape
    Co, Ho, Wo = out_shape
    _, _, kh, kw = kshape
    o, i, r, c, u, v = np.meshgrid(np.arange(Co), np.arange(Ci), np.arange(Ho), np.arange(Wo), np.arange(kh),
                                   np.arange(kw), indexing="ij")
    hr, hc = r * stride + u - pad, c * stride + v - pad
    ok = (hr >= 0) & (hr < H) & (hc >= 0) & (hc < W)
    o, i, r, c, u, v, hr, hc = (a[ok] for a in (o, i, r, c, u, v, hr, hc))
    pre = (i * H + hr) * W + hc
    post = (o * Ho + r) * Wo + c
    widx = ((o * Ci + i) * kh + u) * kw + v
    return pre.astype(int), post.astype(int), widx.astype(int)


def pool_connectivity(in_shape, out_shape, k, s, q):
    """``(pre, post)`` of one batch item for window position ``q = u k + v`` of a ``k x k`` pooling with stride
    ``s``: output unit ``post`` reads input unit ``pre`` at offset ``(u, v)`` of its window."""
    C_, H, W = in_shape
    _, Ho, Wo = out_shape
    u, v = divmod(q, k)
    c, r, w = np.meshgrid(np.arange(C_), np.arange(Ho), np.arange(Wo), indexing="ij")
    pre = (c * H + r * s + u) * W + w * s + v
    post = (c * Ho + r) * Wo + w
    return pre.ravel().astype(int), post.ravel().astype(int)
