r"""Sparse (CSR) projections in the numba core: prediction, feedback and Hebbian products over the synapses only.

A sparse projection ``k`` stores its ``nnz`` weights at ``W[wo:wo + nnz]`` in CSR order and its index block at
``S[so:]`` (``so = ki[k, K_SOFF]``; layout in :mod:`neurosim.plan`): ``indptr = S[so:so + n_post + 1]`` (0-based
within the projection), then ``indices`` (the pre unit of each synapse), then the CSC part (``colptr``, ``rows``,
``perm``) that the event-driven kernel uses.  Every loop here runs over the synapses, so time and memory grow with
``nnz``, never with ``n_post x n_pre``; the batch loop is outermost so that one sample's ``phi(x_pre)`` row (or
feedback row) is reused by every synapse.
"""
from __future__ import annotations

from numba import njit

from ...config import JIT_OPTIONS

_jit = JIT_OPTIONS


@njit(**_jit)
def csr_predict(P, W, wo, S, so, out, m, accumulate):
    r"""``out (=|+=) m * P W_k^T`` for ``P`` (B, n_pre) and ``out`` (B, n_post):
    :math:`out_{s,i} = m \sum_{q \in row(i)} W_q P_{s, idx_q}`."""
    B, n_post = out.shape
    ix0 = so + n_post + 1
    zero = W.dtype.type(0)
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
    for q in range(nnz):
        g[q] = 0.0
    for s in range(B):
        for i in range(n_post):
            e = E[s, i]
            for q in range(S[so + i], S[so + i + 1]):
                g[q] += e * P[s, S[ix0 + q]]
    for q in range(nnz):
        g[q] *= c


@njit(**_jit)
def csr_nnz(S, so, n_post):
    """Number of synapses of the sparse projection whose index block starts at ``S[so]``."""
    return S[so + n_post]
