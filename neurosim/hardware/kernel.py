r"""The event-driven (send-on-delta) relaxation kernel: one jitted call per batch.

This is the compiled twin of :class:`neurosim.hardware.engine.ReferenceEngine` (read its docstring for the
model); it is tested against it operation by operation.  State arrays are ``(B, n_units)``; weights are
the flat Plan vector ``Wr`` (read weights, row-major ``(n_post, n_pre)`` blocks) and its block-transposed
copy ``WrT`` so that both kinds of event touch contiguous memory: a value event of pre-synaptic unit j
reads row j of ``WrT`` (a column of W), an error event of post-synaptic unit i reads row i of ``Wr``.
A sparse projection's block of ``Wr`` holds its synapses in CSR order and its block of ``WrT`` the same synapses
in CSC order (``Wr[perm]``); with the index vector ``S`` (:mod:`neurosim.plan`) a value event of pre unit j touches
only its out-synapses (column j of the CSC part) and an error event of post unit i only its in-synapses (row i
of the CSR part), and the synaptic-operation counts ``sops`` count those synapses.  In the send loops a sparse
projection is a branch of its own (per projection, tested once per event); the dense fan-out is unchanged.

Cost.  Per event: the fan-out (one multiply-add per receiving unit, contiguous, vectorised) and a few counters.
Per evaluation, only what can change: populations whose state does not move (inputs, the clamped target) are
skipped after the first evaluation of a call (their value units cannot fire again unless a site draws random
numbers; their predictions, errors and ``dx`` stay as they are), ``phi(x)`` is computed once per moving
population (a vectorised row loop) and reused for ``phi'``, reads are plain sums unless read noise or an adc
transform acts, and the Euler step touches only moving states.  What remains per step is the Euler integration
itself: ``phi``, the threshold test, the error and the drive of every moving unit (the model integrates every
unit at every step; an event only changes the currents).  Measured on the hw-event-driven workload with
``python -m benchmarks --only events``.  The results are those of the straightforward form of each phase: the
same events, states to rounding (sums may be vectorised in another order).

Caching.  The entry points called from Python (:func:`event_kernel`, :func:`site_array`) are cached on disk under a
name carrying a digest of every source they are compiled from (``event_kernel__<digest>``, see
:func:`_with_sources_digest`); the functions they call are neither cached on their own nor wrapped for Python, so
an edit of any of those sources compiles the kernel afresh instead of running a stale cache entry.

Randomness (noise, stochastic rounding) comes from numba's generator, seeded at the start of every call
with the ``seed`` argument; the NumPy twin uses ``numpy.random.default_rng(seed)``, so the two agree in
distribution, not draw by draw.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..backends.base import INIT_ZEROS, MODE_CLAMP, MODE_NUDGE
from ..backends.numba._common import decayed_dt, energy_total, first_nonfinite
from ..backends.numba.activations import dphi_from, phi, sigmoid, tanh
from ..backends.tables import (K_BOFF, K_LBIAS, K_MEAN, K_PLASTIC, K_POST, K_PRE, K_SKIP, K_SOFF, K_WOFF, KF_MULT,
                              P_ERR, P_OFF, P_PHI, P_ROLE, P_SIZE, PF_PARAM, PF_TAUE, PF_TAUX)
from ..config import CACHE, FASTMATH
from ..plan import ROLE_FREE, ROLE_INPUT, ROLE_TARGET
from .nonideal import K_ADD, K_MMGAIN, K_MMOFF, K_MUL, K_QNEAR, K_QSTOCH

_jit = dict(cache=CACHE, fastmath=FASTMATH, nogil=True)
#: the functions only the kernels call: neither cached on their own nor wrapped for Python (as the core's
#: ``JIT_INNER``).  A cached kernel's object code contains them; a callee cached on its own would be loaded from
#: its own cache entry -- which numba checks against this file only -- when a kernel is compiled again after an
#: edit of a module it calls (``activations``, ``_common``), and the new kernel would run the stale callee.
_jit_inner = dict(_jit, cache=False, no_cpython_wrapper=True)
_u = np.uint64
"""Indices inside a population are unsigned (``x[s, _u(off) + j]`` with ``j`` in ``range(_u(n))``): numba then
neither wraps them around as negative indices nor makes views (whose reference counting costs more than a
short row's arithmetic), and the loops vectorise."""


@njit(**_jit_inner)
def _site(si, u, v, tk, tp, tn, mm):
    """Apply the elementwise transforms of site ``si`` to the scalar ``v`` of unit ``u``."""
    for m in range(tn[si]):
        kind = tk[si, m]
        if kind == K_QNEAR or kind == K_QSTOCH:
            step = tp[si, m, 0]
            kmin = tp[si, m, 1]
            kmax = tp[si, m, 2]
            q = v / step
            if q < kmin:
                q = kmin
            elif q > kmax:
                q = kmax
            if kind == K_QNEAR:
                k = math.floor(q + 0.5)
            else:
                k = math.floor(q + np.random.random())
            if k < kmin:
                k = kmin
            elif k > kmax:
                k = kmax
            v = k * step
        elif kind == K_ADD:
            v = v + tp[si, m, 0] * np.random.standard_normal()
        elif kind == K_MUL:
            v = v * (1.0 + tp[si, m, 0] * np.random.standard_normal())
        elif kind == K_MMGAIN:
            v = v * mm[si, int(tp[si, m, 0]), u]
        elif kind == K_MMOFF:
            v = v + mm[si, int(tp[si, m, 0]), u]
    return v


def site_array(v, units, si, tk, tp, tn, mm, seed):
    """Apply site ``si`` to every element of ``v`` (unit ``units[j]`` for column j); for tests and tools."""
    np.random.seed(seed)
    out = np.empty_like(v)
    B, n = v.shape
    for s in range(B):
        for j in range(n):
            out[s, j] = _site(si, units[j], v[s, j], tk, tp, tn, mm)
    return out


@njit(**_jit_inner)
def _random(si, tk, tn):
    """Whether site ``si`` draws random numbers (stochastic rounding, additive or multiplicative noise)."""
    for m in range(tn[si]):
        kind = tk[si, m]
        if kind == K_QSTOCH or kind == K_ADD or kind == K_MUL:
            return True
    return False


@njit(**_jit_inner)
def _deliver(s, j, d, a, b, k, n, o, W, W2, cur, qw, qs, mult, noisy):
    """One event of unit ``j`` (batch item ``s``) over projection ``k``, to the ``n`` units from ``o`` on of the
    receiving population: ``cur[s, o:o+n] += m d W`` over the ``n`` entries of ``W`` (``WrT`` forward,
    ``Wr`` feedback) for ``j``; with read noise (``noisy``) also ``qw += m^2 a b W2`` and ``qs += m^2 a b``,
    where ``a b`` is the change of the sent value's square (``m^2 a b`` computed in that order)."""
    base = _u(k) + _u(j) * _u(n)
    ou = _u(o)
    c = mult * d
    for r in range(_u(n)):
        cur[s, ou + r] += c * W[base + r]
    if noisy:
        m2 = mult * mult
        for r in range(_u(n)):
            qw[s, ou + r] += m2 * a * b * W2[base + r]
            qs[s, ou + r] += m2 * a * b


@njit(**_jit_inner)
def _deliver_sparse(s, d, a, b, wo, lo, hi, ib, o, W, W2, cur, qw, qs, mult, noisy, S):
    """:func:`_deliver` over the synapses ``lo:hi`` of a sparse projection (weights ``W[wo + q]``, receiving unit
    ``o + S[ib + q]``): one synaptic operation per synapse."""
    c = mult * d
    for q in range(lo, hi):
        cur[s, o + S[ib + q]] += c * W[wo + q]
    if noisy:
        m2 = mult * mult
        for q in range(lo, hi):
            r = o + S[ib + q]
            qw[s, r] += m2 * a * b * W2[wo + q]
            qs[s, r] += m2 * a * b


@njit(**_jit_inner)
def _fan_out(s, i, j, d, a, b, cur_mu, qmw, qms, pi, ki, kf, WrT, Wr2T, noisy, sops, S):
    """Send the change ``d`` of value unit ``j`` of population ``i`` (batch item ``s``) over every weighted
    projection out of ``i`` into the prediction currents ``cur_mu`` (:func:`_deliver`, or
    :func:`_deliver_sparse` over the out-synapses of ``j`` of a sparse projection)."""
    for k in range(ki.shape[0]):
        if ki[k, K_PRE] != i or ki[k, K_WOFF] < 0:
            continue
        post = ki[k, K_POST]
        n_post = pi[post, P_SIZE]
        so = ki[k, K_SOFF]
        if so >= 0:   # sparse: the out-synapses of j, column j of the CSC part (WrT holds W in CSC order)
            c0 = so + n_post + 1 + S[so + n_post]
            lo = S[c0 + j]
            hi = S[c0 + j + 1]
            _deliver_sparse(s, d, a, b, ki[k, K_WOFF], lo, hi, c0 + pi[i, P_SIZE] + 1,
                            pi[post, P_OFF], WrT, Wr2T, cur_mu, qmw, qms, kf[k, KF_MULT], noisy, S)
            sops[k, 0] += hi - lo
            continue
        _deliver(s, j, d, a, b, ki[k, K_WOFF], n_post, pi[post, P_OFF], WrT, Wr2T, cur_mu, qmw, qms,
                 kf[k, KF_MULT], noisy)
        sops[k, 0] += n_post


@njit(**_jit_inner)
def _send_values(i, B, x, ph, sv, cur_mu, qmw, qms, pi, pf, ki, kf, WrT, Wr2T, noisy, theta,
                 tk, tp, tn, mm, cnt, sops, S):
    """The value units of population ``i`` send on delta.  ``ph[s, u] = phi(x[s, u])`` is computed a row at a
    time (a loop that vectorises) and kept: the drive of the same evaluation takes ``phi'`` from it
    (:func:`~neurosim.backends.numba.activations.dphi_from`).  The sites (0 values, 2 dac) are applied unit
    by unit in the order of the batch items and units, so that their random draws come in the same order.
    A sparse projection out of ``i`` delivers an event of unit ``j`` over its out-synapses only: column ``j`` of
    its CSC part in ``S`` (``colptr``, ``rows``), weights in CSC order in ``WrT``."""
    n = _u(pi[i, P_SIZE])
    o = _u(pi[i, P_OFF])
    code = pi[i, P_PHI]
    a = pf[i, PF_PARAM]
    s0 = tn[0] > 0
    s2 = tn[2] > 0
    for s in range(B):
        if code == 1:   # phi(x) of the row, tanh and sigmoid in loops of their own so that they vectorise
            for j in range(n):
                ph[s, o + j] = tanh(x[s, o + j])
        elif code == 2:
            for j in range(n):
                ph[s, o + j] = sigmoid(x[s, o + j])
        else:
            for j in range(n):
                ph[s, o + j] = phi(code, a, x[s, o + j])
        for j in range(n):
            v = ph[s, o + j]
            if s0:
                v = _site(0, o + j, v, tk, tp, tn, mm)
            if s2:
                v = _site(2, o + j, v, tk, tp, tn, mm)
            old = sv[s, o + j]
            if abs(v - old) > theta:
                sv[s, o + j] = v
                cnt[i, 0] += 1
                # _fan_out(s, i, j, v - old, v * v - old * old, 1.0, ...) written out: a call per event with
                # this many arrays costs more than the event (reference counting of every array argument)
                d = v - old
                ds2 = v * v - old * old
                for k in range(ki.shape[0]):
                    if ki[k, K_PRE] != i or ki[k, K_WOFF] < 0:
                        continue
                    post = ki[k, K_POST]
                    m = pi[post, P_SIZE]
                    nk = _u(m)
                    op = _u(pi[post, P_OFF])
                    mult = kf[k, KF_MULT]
                    c = mult * d
                    so = ki[k, K_SOFF]
                    if so >= 0:   # sparse: the out-synapses of j (colptr at c0, rows at c0 + n + 1)
                        c0 = _u(so + m + 1 + S[so + m])
                        lo = S[c0 + j]
                        hi = S[c0 + j + _u(1)]
                        rb = c0 + n + _u(1)
                        wo = _u(ki[k, K_WOFF])
                        for q in range(_u(lo), _u(hi)):
                            cur_mu[s, op + _u(S[rb + q])] += c * WrT[wo + q]
                        if noisy:
                            m2 = mult * mult
                            for q in range(_u(lo), _u(hi)):
                                r = op + _u(S[rb + q])
                                qmw[s, r] += m2 * ds2 * 1.0 * Wr2T[wo + q]
                                qms[s, r] += m2 * ds2 * 1.0
                        sops[k, 0] += hi - lo
                        continue
                    base = _u(ki[k, K_WOFF]) + j * nk
                    for r in range(nk):
                        cur_mu[s, op + r] += c * WrT[base + r]
                    if noisy:
                        m2 = mult * mult
                        for r in range(nk):
                            qmw[s, op + r] += m2 * ds2 * 1.0 * Wr2T[base + r]
                            qms[s, op + r] += m2 * ds2 * 1.0
                    sops[k, 0] += m


@njit(**_jit_inner)
def _send_x(i, B, x, sx, cur_sk, pi, ki, theta, cnt, skip_ops):
    """The x-channel of identity skips out of population ``i``: x sent on delta, accumulated one-to-one into
    the skip current of every post population."""
    n = _u(pi[i, P_SIZE])
    o = _u(pi[i, P_OFF])
    nproj = ki.shape[0]
    for s in range(B):
        for j in range(n):
            d = x[s, o + j] - sx[s, o + j]
            if abs(d) > theta:
                sx[s, o + j] = x[s, o + j]
                cnt[i, 0] += 1
                for k in range(nproj):
                    if ki[k, K_PRE] != i or ki[k, K_SKIP] == 0:
                        continue
                    cur_sk[s, _u(pi[ki[k, K_POST], P_OFF]) + j] += d
                    skip_ops[k, 0] += 1


@njit(**_jit_inner)
def _project_errors(i, s, j, d, ds2, pi, ki, kf, Wr, Wr2, noisy, cur_fb, qfw, qfs, ki_start, ki_end, sops,
                    cur_skfb, skip_ops, S):
    """Send the change ``d`` of error unit ``j`` of population ``i`` (batch item ``s``) back over every
    projection into ``i``: the skip currents one-to-one, the weighted ones into ``cur_fb`` (:func:`_deliver`,
    or :func:`_deliver_sparse` over the in-synapses of ``j`` of a sparse projection)."""
    for k in range(ki_start[i], ki_end[i]):
        pre = ki[k, K_PRE]
        if pi[pre, P_ROLE] == ROLE_INPUT:
            continue
        if ki[k, K_SKIP] != 0:
            cur_skfb[s, _u(pi[pre, P_OFF]) + _u(j)] += d
            skip_ops[k, 1] += 1
        if ki[k, K_WOFF] < 0:
            continue
        n_pre = pi[pre, P_SIZE]
        so = ki[k, K_SOFF]
        if so >= 0:   # sparse: the in-synapses of post unit j, row j of the CSR part
            lo = S[so + j]
            hi = S[so + j + 1]
            _deliver_sparse(s, d, ds2, 1.0, ki[k, K_WOFF], lo, hi, so + pi[i, P_SIZE] + 1,
                            pi[pre, P_OFF], Wr, Wr2, cur_fb, qfw, qfs, kf[k, KF_MULT], noisy, S)
            sops[k, 1] += hi - lo
            continue
        _deliver(s, j, d, ds2, 1.0, ki[k, K_WOFF], n_pre, pi[pre, P_OFF], Wr, Wr2, cur_fb, qfw, qfs,
                 kf[k, KF_MULT], noisy)
        sops[k, 1] += n_pre


@njit(**_jit_inner)
def _send_errors(i, B, oe, se, cur_fb, qfw, qfs, pi, ki, kf, Wr, Wr2, noisy, theta, tk, tp, tn, mm,
                 ki_start, ki_end, cnt, sops, cur_skfb, skip_ops, S):
    """The error units of population ``i`` send on delta (site 2, dac, applied unit by unit); an event of unit
    ``j`` goes back over every projection into ``i`` (see :func:`_project_errors`, written out here), over a
    sparse projection's in-synapses of ``j`` only (row ``j`` of its CSR part in ``S``)."""
    n = _u(pi[i, P_SIZE])
    o = _u(pi[i, P_OFF])
    s2 = tn[2] > 0
    for s in range(B):
        for j in range(n):
            v = oe[s, o + j]
            if s2:
                v = _site(2, o + j, v, tk, tp, tn, mm)
            old = se[s, o + j]
            if abs(v - old) > theta:
                se[s, o + j] = v
                cnt[i, 1] += 1
                # _project_errors(i, s, j, v - old, v * v - old * old, ...) written out (see _send_values)
                d = v - old
                ds2 = v * v - old * old
                for k in range(ki_start[i], ki_end[i]):
                    pre = ki[k, K_PRE]
                    if pi[pre, P_ROLE] == ROLE_INPUT:
                        continue
                    op = _u(pi[pre, P_OFF])
                    if ki[k, K_SKIP] != 0:
                        cur_skfb[s, op + j] += d
                        skip_ops[k, 1] += 1
                    if ki[k, K_WOFF] < 0:
                        continue
                    m = pi[pre, P_SIZE]
                    nk = _u(m)
                    mult = kf[k, KF_MULT]
                    c = mult * d
                    so = ki[k, K_SOFF]
                    if so >= 0:   # sparse: the in-synapses of j (indptr at so, indices at so + n + 1)
                        lo = S[_u(so) + j]
                        hi = S[_u(so) + j + _u(1)]
                        ib = _u(so) + n + _u(1)
                        wo = _u(ki[k, K_WOFF])
                        for q in range(_u(lo), _u(hi)):
                            cur_fb[s, op + _u(S[ib + q])] += c * Wr[wo + q]
                        if noisy:
                            m2 = mult * mult
                            for q in range(_u(lo), _u(hi)):
                                r = op + _u(S[ib + q])
                                qfw[s, r] += m2 * ds2 * 1.0 * Wr2[wo + q]
                                qfs[s, r] += m2 * ds2 * 1.0
                        sops[k, 1] += hi - lo
                        continue
                    base = _u(ki[k, K_WOFF]) + j * nk
                    for r in range(nk):
                        cur_fb[s, op + r] += c * Wr[base + r]
                    if noisy:
                        m2 = mult * mult
                        for r in range(nk):
                            qfw[s, op + r] += m2 * ds2 * 1.0 * Wr2[base + r]
                            qfs[s, op + r] += m2 * ds2 * 1.0
                    sops[k, 1] += m


@njit(**_jit_inner)
def _read(cur, qw, qs, s, u, noisy, sig_m2, sig_a2, tk, tp, tn, mm):
    c = cur[s, u]
    if noisy:
        var = sig_m2 * qw[s, u] + sig_a2 * qs[s, u]
        if var > 0:
            c += math.sqrt(var) * np.random.standard_normal()
    if tn[3] > 0:
        c = _site(3, u, c, tk, tp, tn, mm)
    return c


@njit(**_jit_inner)
def _read_mu(i, B, mu, cur_mu, qmw, qms, bsum, pi, has_in, noisy, sig_m2, sig_a2, tk, tp, tn, mm, has_skin, cur_sk):
    """``mu = adc(c^mu) + b (+ c^sk)`` of population ``i``; the read noise and the adc site draw unit by unit in
    the order of the batch items and units; without them the rows are plain sums."""
    n = _u(pi[i, P_SIZE])
    o = _u(pi[i, P_OFF])
    exact = noisy or tn[3] > 0
    for s in range(B):
        if pi[i, P_ROLE] == ROLE_INPUT:
            for j in range(n):
                mu[s, o + j] = 0.0
            continue
        elif has_in[i] != 0:
            if exact:
                for j in range(n):
                    mu[s, o + j] = (_read(cur_mu, qmw, qms, s, o + j, noisy, sig_m2, sig_a2, tk, tp, tn, mm)
                                    + bsum[o + j])
            else:
                for j in range(n):
                    mu[s, o + j] = cur_mu[s, o + j] + bsum[o + j]
        else:
            for j in range(n):
                mu[s, o + j] = bsum[o + j]
        if has_skin[i] != 0:
            for j in range(n):
                mu[s, o + j] = mu[s, o + j] + cur_sk[s, o + j]


@njit(**_jit_inner)
def _evaluate(cnt, init_es, first, B, t, mode, beta, x, ph, es, sv, se, oe, mu, cur_mu, cur_fb, qmw, qms, qfw, qfs,
              dx, deps, energy, pi, pf, prec, ki, kf, ki_start, ki_end, has_out, has_in, fb_recv, has_fbin,
              Wr, WrT, Wr2, Wr2T, bsum, noisy, sig_m2, sig_a2, theta_v, theta_e, tk, tp, tn, mm, sops,
              has_xout, has_skin, has_skfb, sx, cur_sk, cur_skfb, skip_ops, static, det_values, S):
    """One synchronous evaluation (order in :mod:`neurosim.hardware.engine`).  ``first``: the first evaluation
    of this call.  After it, a population whose state cannot move (``static``: an input, or the target when
    clamped) is skipped where that changes no result: its x-channel and -- when the value and dac sites draw
    no random numbers (``det_values``) -- its value units cannot fire again (their output is a function of
    the unchanged x, and the last evaluation left ``|o - sent| <= theta``), its read prediction (an input's
    is 0), its zero error outputs (no error units) and its zero ``dx``."""
    npop = pi.shape[0]
    for i in range(npop):
        if static[i] != 0 and not first:
            if has_out[i] != 0 and not det_values:
                _send_values(i, B, x, ph, sv, cur_mu, qmw, qms, pi, pf, ki, kf, WrT, Wr2T, noisy, theta_v,
                             tk, tp, tn, mm, cnt, sops, S)
            continue
        if has_out[i] != 0:
            _send_values(i, B, x, ph, sv, cur_mu, qmw, qms, pi, pf, ki, kf, WrT, Wr2T, noisy, theta_v,
                         tk, tp, tn, mm, cnt, sops, S)
        if has_xout[i] != 0:
            _send_x(i, B, x, sx, cur_sk, pi, ki, theta_v, cnt, skip_ops)
    for i in range(npop):
        if pi[i, P_ROLE] == ROLE_INPUT and not first:
            continue
        _read_mu(i, B, mu, cur_mu, qmw, qms, bsum, pi, has_in, noisy, sig_m2, sig_a2, tk, tp, tn, mm, has_skin,
                 cur_sk)
    s1 = tn[1] > 0
    for i in range(npop):
        n = _u(pi[i, P_SIZE])
        o = _u(pi[i, P_OFF])
        energy[i] = 0.0
        if pi[i, P_ERR] == 0:
            if first:
                for s in range(B):
                    for j in range(n):
                        oe[s, o + j] = 0.0
                        deps[s, o + j] = 0.0
            continue
        tau_e = pf[i, PF_TAUE]
        acc = 0.0
        for s in range(B):
            if tau_e > 0:
                for j in range(n):
                    p = prec[o + j]
                    d = x[s, o + j] - mu[s, o + j]
                    acc += p * d * d
                    if init_es:
                        es[s, o + j] = p * d
                    e = es[s, o + j]
                    deps[s, o + j] = (d - e / p) / tau_e
                    oe[s, o + j] = e
            else:
                for j in range(n):
                    p = prec[o + j]
                    d = x[s, o + j] - mu[s, o + j]
                    acc += p * d * d
                    oe[s, o + j] = p * d
                    deps[s, o + j] = 0.0
            if s1:
                for j in range(n):
                    oe[s, o + j] = _site(1, o + j, oe[s, o + j], tk, tp, tn, mm)
        energy[i] = 0.5 * acc / B
    for i in range(npop):
        if fb_recv[i] != 0:
            _send_errors(i, B, oe, se, cur_fb, qfw, qfs, pi, ki, kf, Wr, Wr2, noisy, theta_e, tk, tp, tn, mm,
                         ki_start, ki_end, cnt, sops, cur_skfb, skip_ops, S)
    exact_fb = noisy or tn[3] > 0
    for i in range(npop):
        n = _u(pi[i, P_SIZE])
        o = _u(pi[i, P_OFF])
        if static[i] != 0:
            if first:
                for s in range(B):
                    for j in range(n):
                        dx[s, o + j] = 0.0
            continue
        role = pi[i, P_ROLE]
        code = pi[i, P_PHI]
        a = pf[i, PF_PARAM]
        inv_tau = 1.0 / pf[i, PF_TAUX]
        nudge = role == ROLE_TARGET and mode == MODE_NUDGE
        hf = has_fbin[i] != 0
        hk = has_skfb[i] != 0
        # drive = -eps + phi'(x) fb (+ c^skfb) (+ beta (t - x)), dx = drive / tau_x, built in dx one term
        # at a time (loops that vectorise; the same operations in the same order as one expression).  Feedback
        # reaches only populations with a weighted projection out (has_fbin implies has_out), which have sent
        # their values in this evaluation: ph holds phi(x).  Without feedback phi'(x) fb = phi'(x) 0 = +0.
        for s in range(B):
            if hf and exact_fb:
                for j in range(n):
                    fb = _read(cur_fb, qfw, qfs, s, o + j, noisy, sig_m2, sig_a2, tk, tp, tn, mm)
                    dx[s, o + j] = -oe[s, o + j] + dphi_from(code, a, x[s, o + j], ph[s, o + j]) * fb
            elif hf:
                if code == 1:   # phi'(x) = 1 - phi(x)^2 of tanh in a loop of its own
                    for j in range(n):
                        f = ph[s, o + j]
                        dx[s, o + j] = -oe[s, o + j] + (1.0 - f * f) * cur_fb[s, o + j]
                else:
                    for j in range(n):
                        dx[s, o + j] = (-oe[s, o + j]
                                        + dphi_from(code, a, x[s, o + j], ph[s, o + j]) * cur_fb[s, o + j])
            else:
                for j in range(n):
                    dx[s, o + j] = -oe[s, o + j] + 0.0
            if hk:
                for j in range(n):
                    dx[s, o + j] += cur_skfb[s, o + j]
            if nudge:
                for j in range(n):
                    dx[s, o + j] += beta * (t[s, j] - x[s, o + j])
            for j in range(n):
                dx[s, o + j] *= inv_tau


@njit(**_jit_inner)
def _first_bad(energy, x, pi, static, all_pops):
    """:func:`~neurosim.backends.numba._common.first_bad_rows` that looks at the state of the populations which
    can move (not ``static``) only, unless ``all_pops``: the static ones keep the state checked at step 0."""
    bad = first_nonfinite(energy)
    if bad >= 0:
        return bad
    for i in range(pi.shape[0]):
        if static[i] != 0 and not all_pops:
            continue
        n = _u(pi[i, P_SIZE])
        o = _u(pi[i, P_OFF])
        ok = True
        for s in range(x.shape[0]):
            for j in range(n):
                if not math.isfinite(x[s, o + j]):
                    ok = False
        if not ok:
            return i
    return -1


@njit(**_jit_inner)
def _euler(dt, x, dx, es, deps, pi, pf, static):
    """The Euler step ``x += dt dx``, ``es += dt deps``, over the populations where they can change: ``dx`` is
    zero on ``static`` populations and ``deps`` off the dynamic error units (``tau_eps > 0``)."""
    for i in range(pi.shape[0]):
        n = _u(pi[i, P_SIZE])
        o = _u(pi[i, P_OFF])
        move_x = static[i] == 0
        move_e = pi[i, P_ERR] != 0 and pf[i, PF_TAUE] > 0
        for s in range(x.shape[0]):
            if move_x:
                for j in range(n):
                    x[s, o + j] += dt * dx[s, o + j]
            if move_e:
                for j in range(n):
                    es[s, o + j] += dt * deps[s, o + j]


def event_kernel(s_in, t, prev, mode, beta, init, n_steps, tol, dt, dt_decay, learn,
                 pi, pf, prec, ki, kf, ki_start, ki_end, inputs, input_off, target_pop,
                 has_out, has_in, fb_recv, has_fbin,
                 Wr, WrT, Wr2, Wr2T, bsum, noisy, sig_m2, sig_a2, theta_v, theta_e,
                 tk, tp, tn, mm, seed,
                 x, es, sv, se, oe, mu, cur_mu, cur_fb, qmw, qms, qfw, qfs, dx, deps,
                 energies, ev, ev_init, sops, y0, y, gW, gb, out,
                 has_xout, has_skin, has_skfb, sx, cur_sk, cur_skfb, skip_ops, S):
    """One batch of event-driven relaxation (and the Hebbian directions); ``out`` gets
    (steps, status, fail_step, fail_pop).  Identity skips use ``sx`` (x sent so far; restarts from 0 every
    call), the skip currents ``cur_sk`` / ``cur_skfb`` and count their one-to-one ops in ``skip_ops``.
    ``S`` is the index vector of the sparse projections (:func:`neurosim.backends.tables.sparse_index`)."""
    np.random.seed(seed)
    B = s_in.shape[0]
    npop = pi.shape[0]
    nproj = ki.shape[0]
    N = x.shape[1]
    energy = np.zeros(npop)
    ph = np.zeros((B, N))   # phi(x) of the value units, kept from their send to the drive of one evaluation
    # populations whose x does not move during the relaxation (dx = 0): inputs, and the target when clamped
    static = np.zeros(npop, dtype=np.int64)
    for i in range(npop):
        role = pi[i, P_ROLE]
        if role == ROLE_INPUT or (role == ROLE_TARGET and mode == MODE_CLAMP):
            static[i] = 1
    det_values = not (_random(0, tk, tn) or _random(2, tk, tn))
    cur_mu[:, :] = 0.0
    cur_fb[:, :] = 0.0
    qmw[:, :] = 0.0
    qms[:, :] = 0.0
    qfw[:, :] = 0.0
    qfs[:, :] = 0.0
    sx[:, :] = 0.0
    cur_sk[:, :] = 0.0
    cur_skfb[:, :] = 0.0
    for jj in range(inputs.shape[0]):
        i = inputs[jj]
        for s in range(B):
            for j in range(pi[i, P_SIZE]):
                x[s, pi[i, P_OFF] + j] = s_in[s, input_off[jj] + j]
    if prev:
        # the weights changed since the last batch: receivers rebuild their currents from what was sent
        for i in range(npop):
            for c in range(2):   # channel c: 0 the values sent (sv), 1 the errors sent (se)
                if (has_out[i] if c == 0 else fb_recv[i]) == 0:
                    continue
                sent = sv if c == 0 else se
                off = pi[i, P_OFF]
                for s in range(B):
                    for j in range(pi[i, P_SIZE]):
                        v = sent[s, off + j]
                        if v == 0.0:
                            continue
                        ev_init[i, c] += 1
                        if c == 0:
                            _fan_out(s, i, j, v, v, v, cur_mu, qmw, qms, pi, ki, kf, WrT, Wr2T, noisy, sops, S)
                        else:
                            _project_errors(i, s, j, v, v * v, pi, ki, kf, Wr, Wr2, noisy, cur_fb, qfw, qfs,
                                            ki_start, ki_end, sops, cur_skfb, skip_ops, S)
    elif init != INIT_ZEROS:
        for i in range(npop):  # feedforward sweep in topological order
            if pi[i, P_ROLE] != ROLE_INPUT:
                _read_mu(i, B, mu, cur_mu, qmw, qms, bsum, pi, has_in, noisy, sig_m2, sig_a2, tk, tp, tn, mm,
                         has_skin, cur_sk)
                for s in range(B):
                    for j in range(pi[i, P_SIZE]):
                        x[s, pi[i, P_OFF] + j] = mu[s, pi[i, P_OFF] + j]
            if has_out[i] != 0:
                _send_values(i, B, x, ph, sv, cur_mu, qmw, qms, pi, pf, ki, kf, WrT, Wr2T, noisy, theta_v,
                             tk, tp, tn, mm, ev_init, sops, S)
            if has_xout[i] != 0:
                _send_x(i, B, x, sx, cur_sk, pi, ki, theta_v, ev_init, skip_ops)
    if mode == MODE_CLAMP and target_pop >= 0:
        for s in range(B):
            for j in range(pi[target_pop, P_SIZE]):
                x[s, pi[target_pop, P_OFF] + j] = t[s, j]
    if init == INIT_ZEROS and not prev:
        for i in range(npop):
            role = pi[i, P_ROLE]
            if role == ROLE_FREE or (role == ROLE_TARGET and mode != MODE_CLAMP):
                for s in range(B):
                    for j in range(pi[i, P_SIZE]):
                        x[s, pi[i, P_OFF] + j] = 0.0
    _evaluate(ev[0], not prev, True, B, t, mode, beta, x, ph, es, sv, se, oe, mu, cur_mu, cur_fb, qmw, qms, qfw, qfs,
              dx, deps, energy, pi, pf, prec, ki, kf, ki_start, ki_end, has_out, has_in, fb_recv, has_fbin,
              Wr, WrT, Wr2, Wr2T, bsum, noisy, sig_m2, sig_a2, theta_v, theta_e, tk, tp, tn, mm, sops,
              has_xout, has_skin, has_skfb, sx, cur_sk, cur_skfb, skip_ops, static, det_values, S)
    if target_pop >= 0:
        for s in range(B):
            for j in range(pi[target_pop, P_SIZE]):
                y0[s, j] = mu[s, pi[target_pop, P_OFF] + j]
    status = 0
    fail_step = -1
    fail_pop = -1
    steps = 0
    for k in range(n_steps + 1):
        for i in range(npop):
            energies[k, i] = energy[i]
        bad = _first_bad(energy, x, pi, static, k == 0)
        if bad >= 0:
            status, fail_step, fail_pop = 1, k, bad
            break
        if k == n_steps:
            break
        if tol > 0:
            rate = 0.0
            for s in range(B):
                for u in range(N):
                    v = abs(dx[s, u])
                    if v > rate:
                        rate = v
                    v = abs(deps[s, u])
                    if v > rate:
                        rate = v
            if rate < tol:
                break
        _euler(dt, x, dx, es, deps, pi, pf, static)
        steps += 1
        prev_total = energy_total(energy)
        _evaluate(ev[k + 1], False, False, B, t, mode, beta, x, ph, es, sv, se, oe, mu, cur_mu, cur_fb, qmw, qms, qfw,
                  qfs, dx, deps, energy, pi, pf, prec, ki, kf, ki_start, ki_end, has_out, has_in, fb_recv,
                  has_fbin, Wr, WrT, Wr2, Wr2T, bsum, noisy, sig_m2, sig_a2, theta_v, theta_e, tk, tp, tn, mm,
                  sops, has_xout, has_skin, has_skfb, sx, cur_sk, cur_skfb, skip_ops, static, det_values, S)
        dt = decayed_dt(dt, dt_decay, prev_total, energy)
    if target_pop >= 0:
        for s in range(B):
            for j in range(pi[target_pop, P_SIZE]):
                y[s, j] = x[s, pi[target_pop, P_OFF] + j]
    if learn and status == 0:
        for k in range(nproj):
            post = ki[k, K_POST]
            pre = ki[k, K_PRE]
            n_post = pi[post, P_SIZE]
            n_pre = pi[pre, P_SIZE]
            opost = pi[post, P_OFF]
            opre = pi[pre, P_OFF]
            scale = 1.0 / B if ki[k, K_MEAN] != 0 else 1.0
            if ki[k, K_PLASTIC] != 0 and ki[k, K_SOFF] >= 0:   # on the synapses only, CSR order
                wo = ki[k, K_WOFF]
                so = ki[k, K_SOFF]
                c = kf[k, KF_MULT] * scale
                for r in range(n_post):
                    for q in range(S[so + r], S[so + r + 1]):
                        col = opre + S[so + n_post + 1 + q]
                        acc = 0.0
                        for s in range(B):
                            acc += oe[s, opost + r] * sv[s, col]
                        gW[wo + q] = c * acc
            elif ki[k, K_PLASTIC] != 0:
                wo = ki[k, K_WOFF]
                c = kf[k, KF_MULT] * scale
                for r in range(n_post):
                    for q in range(n_pre):
                        acc = 0.0
                        for s in range(B):
                            acc += oe[s, opost + r] * sv[s, opre + q]
                        gW[wo + r * n_pre + q] = c * acc
            if ki[k, K_LBIAS] != 0:
                bo = ki[k, K_BOFF]
                for r in range(n_post):
                    acc = 0.0
                    for s in range(B):
                        acc += oe[s, opost + r]
                    gb[bo + r] = scale * acc
    out[0] = steps
    out[1] = status
    out[2] = fail_step
    out[3] = fail_pop


#: the modules whose constants the kernels read (numba freezes a global into the machine code when it compiles)
_CONSTANT_MODULES = ("neurosim.backends.base", "neurosim.backends.tables", "neurosim.plan", "neurosim.hardware.nonideal",
                     "neurosim.config")


def _with_sources_digest(f):
    """``f`` jitted (cached) under the name ``<name>__<digest>``, the digest of every source it is compiled from:
    this file, the numba core's package (:mod:`~neurosim.backends.numba.activations`,
    :mod:`~neurosim.backends.numba._common`) and the modules of :data:`_CONSTANT_MODULES`
    (:func:`neurosim.backends.numba._specialise._sources_digest`, as the core's kernels).  numba checks only a
    cached function's own file, so without the digest an edited callee would run from a stale cache entry; with
    it, an edit gives new cache files (the kernel compiles once more)."""
    import sys

    from ..backends.numba._specialise import _rebind, _sources_digest
    modules = tuple(sys.modules[m] for m in _CONSTANT_MODULES)
    return njit(**_jit)(_rebind(f, f.__globals__, "__" + _sources_digest(f, modules)))


site_array = _with_sources_digest(site_array)
event_kernel = _with_sources_digest(event_kernel)
