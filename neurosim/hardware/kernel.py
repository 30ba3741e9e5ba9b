r"""The event-driven (send-on-delta) relaxation kernel: one jitted call per batch.

This is the compiled twin of :class:`neurosim.hardware.engine.ReferenceEngine` (read its docstring for the
model); it is tested against it operation by operation.  State arrays are ``(B, n_units)``; weights are
the flat Plan vector ``Wr`` (read weights, row-major ``(n_post, n_pre)`` blocks) and its block-transposed
copy ``WrT`` so that both kinds of event touch contiguous memory: a value event of pre-synaptic unit j
reads row j of ``WrT`` (a column of W), an error event of post-synaptic unit i reads row i of ``Wr``.
A sparse projection's block of ``Wr`` holds its synapses in CSR order and its block of ``WrT`` the same synapses
in CSC order (``Wr[perm]``); with the index vector ``S`` (:mod:`neurosim.plan`) a value event of pre unit j touches
only its out-synapses (column j of the CSC part) and an error event of post unit i only its in-synapses (row i
of the CSR part), and the synaptic-operation counts ``sops`` count those synapses.

Randomness (noise, stochastic rounding) comes from numba's generator, seeded at the start of every call
with the ``seed`` argument; the NumPy twin uses ``numpy.random.default_rng(seed)``, so the two agree in
distribution, not draw by draw.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..backends.base import INIT_ZEROS, MODE_CLAMP, MODE_NUDGE
from ..backends.numba._common import decayed_dt, energy_total, first_bad_rows
from ..backends.numba.activations import dphi, phi
from ..backends.tables import (K_BOFF, K_LBIAS, K_MEAN, K_PLASTIC, K_POST, K_PRE, K_SKIP, K_SOFF, K_WOFF, KF_MULT,
                              P_ERR, P_OFF, P_PHI, P_ROLE, P_SIZE, PF_PARAM, PF_TAUE, PF_TAUX)
from ..config import CACHE, FASTMATH
from ..plan import ROLE_FREE, ROLE_INPUT, ROLE_TARGET
from .nonideal import K_ADD, K_MMGAIN, K_MMOFF, K_MUL, K_QNEAR, K_QSTOCH

_jit = dict(cache=CACHE, fastmath=FASTMATH, nogil=True)


@njit(**_jit)
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


@njit(**_jit)
def site_array(v, units, si, tk, tp, tn, mm, seed):
    """Apply site ``si`` to every element of ``v`` (unit ``units[j]`` for column j); for tests and tools."""
    np.random.seed(seed)
    out = np.empty_like(v)
    B, n = v.shape
    for s in range(B):
        for j in range(n):
            out[s, j] = _site(si, units[j], v[s, j], tk, tp, tn, mm)
    return out


@njit(**_jit)
def _on_delta(sent, s, u, v, theta, tk, tp, tn, mm):
    """Send-on-delta for unit ``u`` of batch item ``s``: ``v`` passes the transmission site (2); it is sent
    when ``|v - old| > theta`` (``old = sent[s, u]``, the value sent last), and then ``sent[s, u] = v``.
    Returns ``(v, old, sent or not)``."""
    if tn[2] > 0:
        v = _site(2, u, v, tk, tp, tn, mm)
    old = sent[s, u]
    fire = abs(v - old) > theta
    if fire:
        sent[s, u] = v
    return v, old, fire


@njit(**_jit)
def _deliver(s, j, d, a, b, k, n, o, W, W2, cur, qw, qs, mult, noisy):
    """One event of unit ``j`` (batch item ``s``) over projection ``k``, to the ``n`` units from ``o`` on of the
    receiving population: ``cur[s, o:o+n] += m d W`` over the ``n`` entries of ``W`` (``WrT`` forward,
    ``Wr`` feedback) for ``j``; with read noise (``noisy``) also ``qw += m^2 a b W2`` and ``qs += m^2 a b``,
    where ``a b`` is the change of the sent value's square (``m^2 a b`` computed in that order)."""
    base = k + j * n
    c = mult * d
    for r in range(n):
        cur[s, o + r] += c * W[base + r]
    if noisy:
        m2 = mult * mult
        for r in range(n):
            qw[s, o + r] += m2 * a * b * W2[base + r]
            qs[s, o + r] += m2 * a * b


@njit(**_jit)
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


@njit(**_jit)
def _fan_out(s, i, j, d, a, b, cur_mu, qmw, qms, pi, ki, kf, WrT, Wr2T, noisy, sops, S):
    """Send the change ``d`` of value unit ``j`` of population ``i`` (batch item ``s``) over every weighted
    projection out of ``i`` into the prediction currents ``cur_mu`` (:func:`_deliver`)."""
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
            _deliver_sparse(s, d, a, b, ki[k, K_WOFF], lo, hi, c0 + pi[ki[k, K_PRE], P_SIZE] + 1,
                            pi[post, P_OFF], WrT, Wr2T, cur_mu, qmw, qms, kf[k, KF_MULT], noisy, S)
            sops[k, 0] += hi - lo
            continue
        _deliver(s, j, d, a, b, ki[k, K_WOFF], n_post, pi[post, P_OFF], WrT, Wr2T, cur_mu, qmw, qms,
                 kf[k, KF_MULT], noisy)
        sops[k, 0] += n_post


@njit(**_jit)
def _send_values(i, B, x, sv, cur_mu, qmw, qms, pi, pf, ki, kf, WrT, Wr2T, noisy, theta,
                 tk, tp, tn, mm, cnt, sops, S):
    n = pi[i, P_SIZE]
    off = pi[i, P_OFF]
    code = pi[i, P_PHI]
    a = pf[i, PF_PARAM]
    for s in range(B):
        for j in range(n):
            u = off + j
            v = phi(code, a, x[s, u])
            if tn[0] > 0:
                v = _site(0, u, v, tk, tp, tn, mm)
            v, old, fire = _on_delta(sv, s, u, v, theta, tk, tp, tn, mm)
            if fire:
                cnt[i, 0] += 1
                _fan_out(s, i, j, v - old, v * v - old * old, 1.0, cur_mu, qmw, qms, pi, ki, kf, WrT, Wr2T, noisy,
                         sops, S)


@njit(**_jit)
def _send_x(i, B, x, sx, cur_sk, pi, ki, theta, cnt, skip_ops):
    """The x-channel of identity skips out of population ``i``: x sent on delta, accumulated one-to-one into
    the skip current of every post population."""
    n = pi[i, P_SIZE]
    off = pi[i, P_OFF]
    nproj = ki.shape[0]
    for s in range(B):
        for j in range(n):
            u = off + j
            d = x[s, u] - sx[s, u]
            if abs(d) > theta:
                sx[s, u] = x[s, u]
                cnt[i, 0] += 1
                for k in range(nproj):
                    if ki[k, K_PRE] != i or ki[k, K_SKIP] == 0:
                        continue
                    cur_sk[s, pi[ki[k, K_POST], P_OFF] + j] += d
                    skip_ops[k, 0] += 1


@njit(**_jit)
def _project_errors(i, s, j, d, ds2, pi, ki, kf, Wr, Wr2, noisy, cur_fb, qfw, qfs, ki_start, ki_end, sops,
                    cur_skfb, skip_ops, S):
    for k in range(ki_start[i], ki_end[i]):
        pre = ki[k, K_PRE]
        if pi[pre, P_ROLE] == ROLE_INPUT:
            continue
        if ki[k, K_SKIP] != 0:
            cur_skfb[s, pi[pre, P_OFF] + j] += d
            skip_ops[k, 1] += 1
        if ki[k, K_WOFF] < 0:
            continue
        n_pre = pi[pre, P_SIZE]
        so = ki[k, K_SOFF]
        if so >= 0:   # sparse: the in-synapses of post unit j, row j of the CSR part
            lo = S[so + j]
            hi = S[so + j + 1]
            _deliver_sparse(s, d, ds2, 1.0, ki[k, K_WOFF], lo, hi, so + pi[ki[k, K_POST], P_SIZE] + 1,
                            pi[pre, P_OFF], Wr, Wr2, cur_fb, qfw, qfs, kf[k, KF_MULT], noisy, S)
            sops[k, 1] += hi - lo
            continue
        _deliver(s, j, d, ds2, 1.0, ki[k, K_WOFF], n_pre, pi[pre, P_OFF], Wr, Wr2, cur_fb, qfw, qfs,
                 kf[k, KF_MULT], noisy)
        sops[k, 1] += n_pre


@njit(**_jit)
def _send_errors(i, B, oe, se, cur_fb, qfw, qfs, pi, ki, kf, Wr, Wr2, noisy, theta, tk, tp, tn, mm,
                 ki_start, ki_end, cnt, sops, cur_skfb, skip_ops, S):
    n = pi[i, P_SIZE]
    off = pi[i, P_OFF]
    for s in range(B):
        for j in range(n):
            u = off + j
            v, old, fire = _on_delta(se, s, u, oe[s, u], theta, tk, tp, tn, mm)
            if fire:
                cnt[i, 1] += 1
                _project_errors(i, s, j, v - old, v * v - old * old, pi, ki, kf, Wr, Wr2, noisy, cur_fb, qfw, qfs,
                                ki_start, ki_end, sops, cur_skfb, skip_ops, S)


@njit(**_jit)
def _read(cur, qw, qs, s, u, noisy, sig_m2, sig_a2, tk, tp, tn, mm):
    c = cur[s, u]
    if noisy:
        var = sig_m2 * qw[s, u] + sig_a2 * qs[s, u]
        if var > 0:
            c += math.sqrt(var) * np.random.standard_normal()
    if tn[3] > 0:
        c = _site(3, u, c, tk, tp, tn, mm)
    return c


@njit(**_jit)
def _read_mu(i, B, mu, cur_mu, qmw, qms, bsum, pi, has_in, noisy, sig_m2, sig_a2, tk, tp, tn, mm, has_skin, cur_sk):
    n = pi[i, P_SIZE]
    off = pi[i, P_OFF]
    for s in range(B):
        for j in range(n):
            u = off + j
            if pi[i, P_ROLE] == ROLE_INPUT:
                mu[s, u] = 0.0
                continue
            elif has_in[i] != 0:
                mu[s, u] = _read(cur_mu, qmw, qms, s, u, noisy, sig_m2, sig_a2, tk, tp, tn, mm) + bsum[u]
            else:
                mu[s, u] = bsum[u]
            if has_skin[i] != 0:
                mu[s, u] = mu[s, u] + cur_sk[s, u]


@njit(**_jit)
def _evaluate(cnt, init_es, B, t, mode, beta, x, es, sv, se, oe, mu, cur_mu, cur_fb, qmw, qms, qfw, qfs,
              dx, deps, energy, pi, pf, prec, ki, kf, ki_start, ki_end, has_out, has_in, fb_recv, has_fbin,
              Wr, WrT, Wr2, Wr2T, bsum, noisy, sig_m2, sig_a2, theta_v, theta_e, tk, tp, tn, mm, sops,
              has_xout, has_skin, has_skfb, sx, cur_sk, cur_skfb, skip_ops, S):
    npop = pi.shape[0]
    for i in range(npop):
        if has_out[i] != 0:
            _send_values(i, B, x, sv, cur_mu, qmw, qms, pi, pf, ki, kf, WrT, Wr2T, noisy, theta_v,
                         tk, tp, tn, mm, cnt, sops, S)
        if has_xout[i] != 0:
            _send_x(i, B, x, sx, cur_sk, pi, ki, theta_v, cnt, skip_ops)
    for i in range(npop):
        _read_mu(i, B, mu, cur_mu, qmw, qms, bsum, pi, has_in, noisy, sig_m2, sig_a2, tk, tp, tn, mm, has_skin,
                 cur_sk)
    for i in range(npop):
        n = pi[i, P_SIZE]
        off = pi[i, P_OFF]
        energy[i] = 0.0
        if pi[i, P_ERR] == 0:
            for s in range(B):
                for j in range(n):
                    oe[s, off + j] = 0.0
                    deps[s, off + j] = 0.0
            continue
        tau_e = pf[i, PF_TAUE]
        acc = 0.0
        for s in range(B):
            for j in range(n):
                u = off + j
                p = prec[u]
                d = x[s, u] - mu[s, u]
                acc += p * d * d
                if tau_e > 0:
                    if init_es:
                        es[s, u] = p * d
                    e = es[s, u]
                    deps[s, u] = (d - e / p) / tau_e
                else:
                    e = p * d
                    deps[s, u] = 0.0
                if tn[1] > 0:
                    e = _site(1, u, e, tk, tp, tn, mm)
                oe[s, u] = e
        energy[i] = 0.5 * acc / B
    for i in range(npop):
        if fb_recv[i] != 0:
            _send_errors(i, B, oe, se, cur_fb, qfw, qfs, pi, ki, kf, Wr, Wr2, noisy, theta_e, tk, tp, tn, mm,
                         ki_start, ki_end, cnt, sops, cur_skfb, skip_ops, S)
    for i in range(npop):
        n = pi[i, P_SIZE]
        off = pi[i, P_OFF]
        role = pi[i, P_ROLE]
        if role == ROLE_INPUT or (role == ROLE_TARGET and mode == MODE_CLAMP):
            for s in range(B):
                for j in range(n):
                    dx[s, off + j] = 0.0
            continue
        code = pi[i, P_PHI]
        a = pf[i, PF_PARAM]
        inv_tau = 1.0 / pf[i, PF_TAUX]
        nudge = role == ROLE_TARGET and mode == MODE_NUDGE
        for s in range(B):
            for j in range(n):
                u = off + j
                fb = 0.0
                if has_fbin[i] != 0:
                    fb = _read(cur_fb, qfw, qfs, s, u, noisy, sig_m2, sig_a2, tk, tp, tn, mm)
                drive = -oe[s, u] + dphi(code, a, x[s, u]) * fb
                if has_skfb[i] != 0:
                    drive += cur_skfb[s, u]
                if nudge:
                    drive += beta * (t[s, j] - x[s, u])
                dx[s, u] = drive * inv_tau


@njit(**_jit)
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
    call), the skip currents ``cur_sk`` / ``cur_skfb`` and count their one-to-one ops in ``skip_ops``."""
    np.random.seed(seed)
    B = s_in.shape[0]
    npop = pi.shape[0]
    nproj = ki.shape[0]
    N = x.shape[1]
    energy = np.zeros(npop)
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
                _send_values(i, B, x, sv, cur_mu, qmw, qms, pi, pf, ki, kf, WrT, Wr2T, noisy, theta_v,
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
    _evaluate(ev[0], not prev, B, t, mode, beta, x, es, sv, se, oe, mu, cur_mu, cur_fb, qmw, qms, qfw, qfs,
              dx, deps, energy, pi, pf, prec, ki, kf, ki_start, ki_end, has_out, has_in, fb_recv, has_fbin,
              Wr, WrT, Wr2, Wr2T, bsum, noisy, sig_m2, sig_a2, theta_v, theta_e, tk, tp, tn, mm, sops,
              has_xout, has_skin, has_skfb, sx, cur_sk, cur_skfb, skip_ops, S)
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
        bad = first_bad_rows(energy, x, pi)
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
        for s in range(B):
            for u in range(N):
                x[s, u] += dt * dx[s, u]
                es[s, u] += dt * deps[s, u]
        steps += 1
        prev_total = energy_total(energy)
        _evaluate(ev[k + 1], False, B, t, mode, beta, x, es, sv, se, oe, mu, cur_mu, cur_fb, qmw, qms, qfw,
                  qfs, dx, deps, energy, pi, pf, prec, ki, kf, ki_start, ki_end, has_out, has_in, fb_recv,
                  has_fbin, Wr, WrT, Wr2, Wr2T, bsum, noisy, sig_m2, sig_a2, theta_v, theta_e, tk, tp, tn, mm,
                  sops, has_xout, has_skin, has_skfb, sx, cur_sk, cur_skfb, skip_ops, S)
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
            if ki[k, K_PLASTIC] != 0 and ki[k, K_SOFF] >= 0:
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
