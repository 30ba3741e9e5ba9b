"""Plasticity of the numba core: the Hebbian weight and bias updates from the final state, SGD (momentum,
weight decay) and Adam steps; plain SGD on a small batch updates W in one rank-B pass without a gradient buffer.
A sparse projection's direction is computed on its synapses only (:func:`~neurosim.backends.numba._sparse.csr_hebbian`)
and stepped by the same optimiser on its ``nnz`` weights."""
from __future__ import annotations

import math

from numba import njit

from ._linkonly import JIT_INNER
from ...plan import OPT_ADAM
from ..tables import (K_BOFF, K_LBIAS, K_MEAN, K_OPT, K_PLASTIC, K_POST, K_PRE, K_SOFF, K_WOFF, KF_B1, KF_B2, KF_EPS,
                      KF_LR, KF_MOM, KF_MULT, KF_WD, P_OFF, P_SIZE)
from ._common import blk, view2d, wblk
from ._products import SMALL_BATCH, _mm_atb
from ._sparse import csr_hebbian

_jit = JIT_INNER

#: see :data:`neurosim.backends.numba._passes.HAS_SPARSE` (set per kernel by its specialisation)
HAS_SPARSE = True


@njit(**_jit)
def _opt_update(P, G, Mo, V, lr, kind, mom, wd, b1, b2, epsopt, tcount):
    """One optimiser step of the parameters ``P`` along the direction ``G`` (overwritten: it is scratch), with
    weight decay ``G -= wd P`` first: Adam, SGD with momentum, or plain SGD ``P += lr G``.

    The decay is its own loop, so that each step's loop has no branch (LLVM compiles a loop that tests a flag per
    element once per value of the flag)."""
    if wd > 0:
        for j in range(P.shape[0]):
            G[j] -= wd * P[j]
    if kind == OPT_ADAM:
        c1 = 1.0 / (1.0 - b1 ** tcount)
        c2 = 1.0 / (1.0 - b2 ** tcount)
        for j in range(P.shape[0]):
            g = G[j]
            Mo[j] = b1 * Mo[j] + (1.0 - b1) * g
            V[j] = b2 * V[j] + (1.0 - b2) * g * g
            P[j] += lr * (Mo[j] * c1) / (math.sqrt(V[j] * c2) + epsopt)
    elif mom > 0:
        for j in range(P.shape[0]):
            Mo[j] = mom * Mo[j] + G[j]
            P[j] += lr * Mo[j]
    else:
        for j in range(P.shape[0]):
            P[j] += lr * G[j]


@njit(**_jit)
def _gradient_step(B, E, P, G, gtmp, W, mW, vW, wo, nw, k, kf, kind, scale, tc):
    """The optimiser step of projection ``k``'s weights along the Hebbian direction ``a E^T P`` (times ``scale``)."""
    _mm_atb(E, P, G)
    g = gtmp[:nw]
    c = kf[k, KF_MULT] * scale
    for j in range(nw):
        g[j] *= c
    _opt_update(W[wo:wo + nw], g, mW[wo:wo + nw], vW[wo:wo + nw], kf[k, KF_LR], kind,
                kf[k, KF_MOM], kf[k, KF_WD], kf[k, KF_B1], kf[k, KF_B2], kf[k, KF_EPS], tc)


@njit(**_jit)
def _hebbian(B, eps, phx, gtmp, pi, ki, kf, W, b, mW, vW, mb, vb, opt_t, S):
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
        E = blk(eps, B, pi[post, P_OFF], n_post)
        scale = 1.0 / B if ki[k, K_MEAN] != 0 else 1.0
        opt_t[k] += 1
        tc = opt_t[k]
        kind = ki[k, K_OPT]
        if plastic and ki[k, K_SOFF] >= 0:
            wo = ki[k, K_WOFF]
            so = ki[k, K_SOFF]
            nw = S[so + n_post]
            g = gtmp[:nw]
            if HAS_SPARSE:
                csr_hebbian(E, blk(phx, B, pi[pre, P_OFF], n_pre), S, so, g, kf[k, KF_MULT] * scale)
            _opt_update(W[wo:wo + nw], g, mW[wo:wo + nw], vW[wo:wo + nw], kf[k, KF_LR], kind,
                        kf[k, KF_MOM], kf[k, KF_WD], kf[k, KF_B1], kf[k, KF_B2], kf[k, KF_EPS], tc)
        elif plastic:
            wo = ki[k, K_WOFF]
            nw = n_post * n_pre
            G = view2d(gtmp, 0, n_post, n_pre)
            P = blk(phx, B, pi[pre, P_OFF], n_pre)
            if B <= SMALL_BATCH and kind != OPT_ADAM and kf[k, KF_MOM] <= 0 and kf[k, KF_WD] <= 0:
                # plain SGD on a small batch: one rank-B update of W, no gradient buffer
                Wk = wblk(W, wo, n_post, n_pre)
                lrc = kf[k, KF_LR] * kf[k, KF_MULT] * scale
                for s in range(B):
                    for j in range(n_post):
                        f = lrc * E[s, j]
                        for i2 in range(n_pre):
                            Wk[j, i2] += f * P[s, i2]
            else:
                _gradient_step(B, E, P, G, gtmp, W, mW, vW, wo, nw, k, kf, kind, scale, tc)
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
