"""The packed tables of a layered :class:`~neurosim.plan.Plan` that the compiled kernels read, and their columns.

Every numba kernel of a layered plan (the core in :mod:`neurosim.backends.numba`, the algorithm kernels, the
event-driven hardware kernel) indexes these tables by the column constants below; they are stated here once
and :func:`pack` is the one place that builds the tables (NumPy only: importing this compiles nothing).

* ``pi`` (n_pops, 5) int64: size, unit offset, activation code, role, has error units;
* ``pf`` (n_pops, 3) float: activation parameter, ``tau_x``, ``tau_eps``;
* ``ki`` (n_proj, 10) int64: pre, post, weight offset, bias offset (-1: none), skip, plastic, learns its bias,
  mean over the batch, optimiser kind, offset of a sparse projection's index block in the plan's ``S`` (-1:
  dense; the block is ``indptr, indices, colptr, rows, perm``, see :mod:`neurosim.plan`, and the kernels read
  it with the helpers of :mod:`neurosim.backends.numba._sparse`);
* ``kf`` (n_proj, 7) float: multiplier, learning rate, then the optimiser parameters (momentum, weight
  decay, beta1, beta2, eps).
"""
from __future__ import annotations

import numpy as np

P_SIZE, P_OFF, P_PHI, P_ROLE, P_ERR = range(5)
PF_PARAM, PF_TAUX, PF_TAUE = range(3)
K_PRE, K_POST, K_WOFF, K_BOFF, K_SKIP, K_PLASTIC, K_LBIAS, K_MEAN, K_OPT, K_SOFF = range(10)
KF_MULT, KF_LR, KF_MOM, KF_WD, KF_B1, KF_B2, KF_EPS = range(7)


def pack(plan, dtype=np.float64):
    """``(pi, pf, ki, kf)`` of ``plan``, C-contiguous; the float tables in ``dtype``.  The index vector of the
    sparse projections is ``sparse_index(plan)``."""
    p = plan
    pi = np.stack([p.pop_size, p.pop_off, p.pop_phi, p.pop_role, p.pop_has_err], axis=1).astype(np.int64)
    pf = np.stack([p.pop_phi_param, p.pop_tau_x, p.pop_tau_eps], axis=1).astype(dtype)
    s_off = p.s_off if p.s_off is not None else np.full(p.n_proj, -1, dtype=np.int64)
    ki = np.stack([p.proj_pre, p.proj_post, p.w_off, p.b_off, p.proj_skip, p.proj_plastic, p.proj_learn_bias,
                   p.proj_mean, p.opt_kind, s_off], axis=1).astype(np.int64).reshape(-1, 10)
    kf = np.concatenate([p.proj_mult[:, None], p.proj_lr[:, None], p.opt_param], axis=1).astype(dtype).reshape(-1, 7)
    return tuple(np.ascontiguousarray(a) for a in (pi, pf, ki, kf))


def unflatten(plan, buf, B: int, dtype) -> np.ndarray:
    """A population-major flat state buffer of the kernels (population ``i`` owns the C-contiguous block
    ``[B off_i, B (off_i + n_i))`` viewed as ``(B, n_i)``) as one ``(B, n_units)`` array (a copy)."""
    out = np.empty((B, plan.n_units), dtype=dtype)
    for i in range(plan.n_pops):
        n, o = int(plan.pop_size[i]), int(plan.pop_off[i])
        out[:, o:o + n] = buf[B * o:B * (o + n)].reshape(B, n)
    return out


def sparse_index(plan) -> np.ndarray:
    """The plan's index vector ``S`` of sparse projections (int64, C-contiguous; one unused entry when the plan
    has none, so that every kernel call passes an array of the same type)."""
    S = getattr(plan, "S", None)
    if S is None or S.size == 0:
        return np.zeros(1, dtype=np.int64)
    return np.ascontiguousarray(S, dtype=np.int64)
