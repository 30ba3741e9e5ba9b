"""Matrix products of the numba core on the flat state buffers: BLAS (``np.dot``) above :data:`SMALL_BATCH`,
hand-written loops that keep rows of W in L1 below it (where call overhead dominates)."""
from __future__ import annotations

import numpy as np
from numba import njit

from ._linkonly import JIT_INNER

_jit = JIT_INNER

#: batches up to this size use hand-written loops instead of BLAS (call overhead dominates there)
SMALL_BATCH = 8


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
def _mm_atb(E, P, out):
    """out = E.T @ P  for E (B, n_post), P (B, n_pre): a projection's Hebbian term summed over the batch."""
    B = E.shape[0]
    if B > SMALL_BATCH:
        np.dot(E.T, P, out)
        return
    n_post = E.shape[1]
    n_pre = P.shape[1]
    for j in range(n_post):
        for i in range(n_pre):
            out[j, i] = 0.0
    for s in range(B):
        for j in range(n_post):
            e = E[s, j]
            for i in range(n_pre):
                out[j, i] += e * P[s, i]
