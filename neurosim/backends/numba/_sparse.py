r"""Sparse (CSR) projections in the numba core: prediction, feedback and Hebbian products over the synapses only.

A sparse projection ``k`` stores its ``nnz`` weights at ``W[wo:wo + nnz]`` in CSR order and its index block at
``S[so:]`` (``so = ki[k, K_SOFF]``; layout in :mod:`neurosim.plan`): ``indptr = S[so:so + n_post + 1]`` (0-based
within the projection), then ``indices`` (the pre unit of each synapse), then the CSC part (``colptr``, ``rows``,
``perm``) that the event-driven kernel uses.  Every loop here runs over the synapses, so time and memory grow with
``nnz``, never with ``n_post x n_pre``.  One sample loops over the synapses directly; a batch of more (above
:data:`SPARSE_ONE`) is transposed once per call into ``(n, B)`` scratch arrays, so that each synapse reads its weight
and index once and updates ``B`` contiguous values (a sparse-times-dense product: at 100,000 units and 30 synapses
per unit, 1.2 ns per synaptic op at batch 9 and 0.6 ns at batch 32, against 3 ns with the batch loop outermost).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ._linkonly import JIT_INNER

_jit = JIT_INNER

#: batches up to this size loop over the samples outermost; larger ones take the transposed (n, B) layout
SPARSE_ONE = 1


@njit(**_jit)
def _transposed(A):
    """A ``(n, B)`` C-contiguous copy of the ``(B, n)`` view ``A``."""
    B, n = A.shape
    T = np.empty((n, B), dtype=A.dtype)
    for s in range(B):
        for j in range(n):
            T[j, s] = A[s, j]
    return T


@njit(**_jit)
def csr_predict(P, W, wo, S, so, out, m, accumulate):
    r"""``out (=|+=) m * P W_k^T`` for ``P`` (B, n_pre) and ``out`` (B, n_post):
    :math:`out_{s,i} = m \sum_{q \in row(i)} W_q P_{s, idx_q}`."""
    B, n_post = out.shape
    ix0 = so + n_post + 1
    zero = W.dtype.type(0)
    if B > SPARSE_ONE:
        PT = _transposed(P)
        acc = np.empty(B, dtype=W.dtype)
        for i in range(n_post):
            for s in range(B):
                acc[s] = zero
            for q in range(S[so + i], S[so + i + 1]):
                w = W[wo + q]
                r = S[ix0 + q]
                for s in range(B):
                    acc[s] += w * PT[r, s]
            for s in range(B):
                if accumulate:
                    out[s, i] += m * acc[s]
                else:
                    out[s, i] = m * acc[s]
        return
    for s in range(B):
        for i in range(n_post):
            acc = zero
            for q in range(S[so + i], S[so + i + 1]):
                acc += W[wo + q] * P[s, S[ix0 + q]]
            if accumulate:
                out[s, i] += m * acc
            else:
                out[s, i] = m * acc


@njit(**_jit)
def csr_feedback(E, W, wo, S, so, F, m):
    r"""``F += m * E W_k`` for ``E`` (B, n_post) and ``F`` (B, n_pre) (the caller zeroes ``F`` first when it is
    the first contribution): each synapse scatters :math:`m\,\varepsilon_{s,i} W_q` into :math:`F_{s, idx_q}`."""
    B, n_post = E.shape
    ix0 = so + n_post + 1
    if B > SPARSE_ONE:
        n_pre = F.shape[1]
        ET = _transposed(E)
        FT = np.zeros((n_pre, B), dtype=F.dtype)
        for i in range(n_post):
            for q in range(S[so + i], S[so + i + 1]):
                w = m * W[wo + q]
                r = S[ix0 + q]
                for s in range(B):
                    FT[r, s] += w * ET[i, s]
        for s in range(B):
            for j in range(n_pre):
                F[s, j] += FT[j, s]
        return
    for s in range(B):
        for i in range(n_post):
            c = m * E[s, i]
            for q in range(S[so + i], S[so + i + 1]):
                F[s, S[ix0 + q]] += c * W[wo + q]


@njit(**_jit)
def csr_hebbian(E, P, S, so, g, c):
    r"""The Hebbian direction of a sparse projection into ``g[:nnz]`` (CSR order):
    :math:`g_q = c \sum_s \varepsilon_{s,i} P_{s, idx_q}` for synapse ``q`` of row ``i``."""
    B, n_post = E.shape
    ix0 = so + n_post + 1
    nnz = S[so + n_post]
    if B > SPARSE_ONE:
        ET = _transposed(E)
        PT = _transposed(P)
        for i in range(n_post):
            for q in range(S[so + i], S[so + i + 1]):
                r = S[ix0 + q]
                acc = 0.0
                for s in range(B):
                    acc += ET[i, s] * PT[r, s]
                g[q] = c * acc
        return
    for q in range(nnz):
        g[q] = 0.0
    for s in range(B):
        for i in range(n_post):
            e = E[s, i]
            for q in range(S[so + i], S[so + i + 1]):
                g[q] += e * P[s, S[ix0 + q]]
    for q in range(nnz):
        g[q] *= c
