r"""Compiled (numba) kernels of the schedules ``fpa``, ``zil``, ``ipc`` and ``bp``: one jitted call per batch.

Memory layout as in :mod:`neurosim.backends.numba`: every state buffer is one flat vector in which
population ``i`` owns the C-contiguous block ``[B off_i, B (off_i + n_i))`` viewed as ``(B, n_i)``.  Matrix
products go to BLAS (``np.dot``) for batches above ``SMALL_BATCH`` and to explicit loops below; elementwise
work is fused into loops; no allocation happens inside the step loops.

Each kernel mirrors, operation by operation, the NumPy implementation of its module (the oracle it is
tested against to 1e-10): the same synchronous order (drive from the state at step t, then values and
weights advance), the same Hebbian directions and optimiser arithmetic.

Argument bundles (tuples, to keep signatures short):

* ``tabs = (pi, pf, ki, kf, ki_start, ki_end, inputs, input_off)`` -- :class:`._common.Tables`;
* ``params = (W, b, mW, vW, mb, vb, opt_t)`` -- the backend's weights and optimiser state (updated in place);
* ``bufs = (x, phx, dph, mu, eps, fb, sfb, dx, tmp)`` -- state buffers, ``B * n_units`` each except
  ``tmp`` (``B * max_n``);
* ``recs = (rec_x, rec_eps, rec_mu, rec_steps)`` -- probe records of sample ``probe_item``.

``out`` receives ``(steps, status, fail_step, fail_pop, n_records)``.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..backends.base import MODE_CLAMP as M_CLAMP, MODE_NUDGE as M_NUDGE
from ..backends.numba._common import add_into, add_row, add_scaled, blk, load_inputs, read_pop, report, wblk
from ..backends.numba._common import first_bad as _first_bad
from ..backends.numba._products import _mm_atb
from ..backends.numba.activations import dphi, phi
from ..backends.tables import (K_BOFF, K_LBIAS, K_MEAN, K_OPT, K_PLASTIC, K_POST, K_PRE, K_SKIP, K_WOFF, KF_B1, KF_B2,
                              KF_EPS, KF_LR, KF_MOM, KF_MULT, KF_WD, P_ERR, P_OFF, P_PHI, P_ROLE, P_SIZE, PF_PARAM, PF_TAUX)
from ..config import CACHE, FASTMATH
from ..plan import OPT_ADAM as O_ADAM, ROLE_FREE as R_FREE, ROLE_INPUT as R_INPUT, ROLE_TARGET as R_TARGET

_jit = dict(cache=CACHE, fastmath=FASTMATH, nogil=True)


#: batches up to this size use hand-written loops instead of BLAS (call overhead dominates there)
SMALL_BATCH = 8


# ----------------------------------------------------------------------------- scalar pieces
@njit(**_jit)
def _mm_abt(A, Wk, out):
    """out = A @ Wk.T for A (B, n_pre), Wk (n_post, n_pre)."""
    B = A.shape[0]
    if B <= SMALL_BATCH:
        n_post, n_pre = Wk.shape
        for s in range(B):
            for j in range(n_post):
                acc = 0.0
                for i in range(n_pre):
                    acc += A[s, i] * Wk[j, i]
                out[s, j] = acc
    else:
        np.dot(A, Wk.T, out)


@njit(**_jit)
def _mm_ab(E, Wk, out):
    """out = E @ Wk for E (B, n_post), Wk (n_post, n_pre)."""
    B = E.shape[0]
    if B <= SMALL_BATCH:
        n_post, n_pre = Wk.shape
        for s in range(B):
            for i in range(n_pre):
                out[s, i] = 0.0
            for j in range(n_post):
                e = E[s, j]
                if e != 0.0:
                    for i in range(n_pre):
                        out[s, i] += e * Wk[j, i]
    else:
        np.dot(E, Wk, out)


# ----------------------------------------------------------------------------- network pieces
@njit(**_jit)
def _phi_pop(i, x, phx, B, pi, pf):
    n = pi[i, P_SIZE]
    o = B * pi[i, P_OFF]
    code = pi[i, P_PHI]
    a = pf[i, PF_PARAM]
    if code == 0:
        for j in range(B * n):
            phx[o + j] = x[o + j]
    else:
        for j in range(B * n):
            phx[o + j] = phi(code, a, x[o + j])


@njit(**_jit)
def _dphi_all(x, dph, B, pi, pf):
    for i in range(pi.shape[0]):
        n = pi[i, P_SIZE]
        o = B * pi[i, P_OFF]
        code = pi[i, P_PHI]
        a = pf[i, PF_PARAM]
        for j in range(B * n):
            dph[o + j] = dphi(code, a, x[o + j])


@njit(**_jit)
def _predict_pop(i, x, phx, mu, B, pi, ki, kf, ki_start, ki_end, W, b, tmp):
    """mu_i = sum over incoming projections of a W phi(x_pre) + b (+ x_pre)."""
    n_post = pi[i, P_SIZE]
    M = blk(mu, B, pi[i, P_OFF], n_post)
    for s in range(B):
        for j in range(n_post):
            M[s, j] = 0.0
    for k in range(ki_start[i], ki_end[i]):
        pre = ki[k, K_PRE]
        n_pre = pi[pre, P_SIZE]
        opre = pi[pre, P_OFF]
        if ki[k, K_WOFF] >= 0:
            Wk = wblk(W, ki[k, K_WOFF], n_post, n_pre)
            T = tmp[:B * n_post].reshape(B, n_post)
            _mm_abt(blk(phx, B, opre, n_pre), Wk, T)
            add_scaled(M, T, kf[k, KF_MULT])
        if ki[k, K_BOFF] >= 0:
            bo = ki[k, K_BOFF]
            add_row(M, b[bo:bo + n_post])
        if ki[k, K_SKIP] != 0:
            add_into(M, blk(x, B, opre, n_pre))


@njit(**_jit)
def _eval(x, phx, mu, B, pi, pf, ki, kf, ki_start, ki_end, W, b, tmp):
    """phi(x) of every population and mu of every predicted one."""
    for i in range(pi.shape[0]):
        _phi_pop(i, x, phx, B, pi, pf)
    for i in range(pi.shape[0]):
        if pi[i, P_ROLE] != R_INPUT:
            _predict_pop(i, x, phx, mu, B, pi, ki, kf, ki_start, ki_end, W, b, tmp)


@njit(**_jit)
def _forward(s, x, phx, mu, B, tabs, W, b, tmp):
    """Feedforward sweep in topological order: inputs from s, x_i = mu_i, phx = phi(x)."""
    pi, pf, ki, kf, ki_start, ki_end, inputs, input_off = tabs
    x[:] = 0.0
    mu[:] = 0.0
    load_inputs(s, x, B, pi, inputs, input_off)
    for i in range(pi.shape[0]):
        if pi[i, P_ROLE] != R_INPUT:
            _predict_pop(i, x, phx, mu, B, pi, ki, kf, ki_start, ki_end, W, b, tmp)
            n = pi[i, P_SIZE]
            o = B * pi[i, P_OFF]
            for j in range(B * n):
                x[o + j] = mu[o + j]
        _phi_pop(i, x, phx, B, pi, pf)


@njit(**_jit)
def _target(x, t, teff, y0, beta_t, clamp, target_pop, B, pi):
    """y0 = yhat; teff = t (beta_t = 1) or yhat + beta_t (t - yhat); clamp the target to teff if asked."""
    n = pi[target_pop, P_SIZE]
    X = blk(x, B, pi[target_pop, P_OFF], n)
    for q in range(B):
        for j in range(n):
            yh = X[q, j]
            y0[q, j] = yh
            if beta_t == 1.0:
                teff[q, j] = t[q, j]
            else:
                teff[q, j] = yh + beta_t * (t[q, j] - yh)
            if clamp:
                X[q, j] = teff[q, j]


@njit(**_jit)
def _errors(x, mu, eps, prec, energy, B, pi):
    """eps = precision (x - mu) where there are error units; energy per population (batch mean)."""
    for i in range(pi.shape[0]):
        n = pi[i, P_SIZE]
        o = B * pi[i, P_OFF]
        energy[i] = 0.0
        if pi[i, P_ERR] == 0:
            for j in range(B * n):
                eps[o + j] = 0.0
            continue
        uo = pi[i, P_OFF]
        acc = 0.0
        for q in range(B):
            for j in range(n):
                r = o + q * n + j
                p = prec[uo + j]
                d = x[r] - mu[r]
                eps[r] = p * d
                acc += p * d * d
        energy[i] = 0.5 * acc / B


@njit(**_jit)
def _feedback(k, eps, fb, sfb, B, pi, ki, kf, W, tmp):
    """Add projection k's feedback into its presynaptic population: fb_pre += a eps_post W_k (weighted),
    sfb_pre += eps_post (skip)."""
    pre = ki[k, K_PRE]
    post = ki[k, K_POST]
    n_pre = pi[pre, P_SIZE]
    n_post = pi[post, P_SIZE]
    E = blk(eps, B, pi[post, P_OFF], n_post)
    if ki[k, K_WOFF] >= 0:
        Wk = wblk(W, ki[k, K_WOFF], n_post, n_pre)
        T = tmp[:B * n_pre].reshape(B, n_pre)
        _mm_ab(E, Wk, T)
        add_scaled(blk(fb, B, pi[pre, P_OFF], n_pre), T, kf[k, KF_MULT])
    if ki[k, K_SKIP] != 0:
        add_into(blk(sfb, B, pi[pre, P_OFF], n_pre), E)


@njit(**_jit)
def _drive(x, eps, dph, fb, sfb, dx, B, pi, ki, kf, W, tmp, mode, beta, teff, target_pop):
    """dx = -eps + dphi * sum a W^T eps_post + sum eps_post (skips) for moving populations, else 0."""
    fb[:] = 0.0
    sfb[:] = 0.0
    for k in range(ki.shape[0]):
        if pi[ki[k, K_PRE], P_ROLE] != R_INPUT:
            _feedback(k, eps, fb, sfb, B, pi, ki, kf, W, tmp)
    for i in range(pi.shape[0]):
        n = pi[i, P_SIZE]
        o = B * pi[i, P_OFF]
        role = pi[i, P_ROLE]
        nudge = role == R_TARGET and mode == M_NUDGE
        if not (role == R_FREE or nudge):
            for j in range(B * n):
                dx[o + j] = 0.0
            continue
        for q in range(B):
            for j in range(n):
                r = o + q * n + j
                d = -eps[r] + dph[r] * fb[r] + sfb[r]
                if nudge:
                    d += beta * (teff[q, j] - x[r])
                dx[r] = d


@njit(**_jit)
def _step(x, dx, B, pi, pf, eta):
    """x += (eta / tau_x) dx, population by population."""
    for i in range(pi.shape[0]):
        n = pi[i, P_SIZE]
        o = B * pi[i, P_OFF]
        h = eta / pf[i, PF_TAUX]
        for j in range(B * n):
            x[o + j] += h * dx[o + j]


@njit(**_jit)
def _direction(k, eps, phx, B, pi, ki, kf, G, Gb):
    """Hebbian direction of projection k: G_k = a c_B eps_post^T phi(x_pre), Gb_k = c_B sum eps_post."""
    pre = ki[k, K_PRE]
    post = ki[k, K_POST]
    n_pre = pi[pre, P_SIZE]
    n_post = pi[post, P_SIZE]
    scale = 1.0 / B if ki[k, K_MEAN] != 0 else 1.0
    E = blk(eps, B, pi[post, P_OFF], n_post)
    if ki[k, K_WOFF] >= 0:
        wo = ki[k, K_WOFF]
        nw = n_post * n_pre
        Gk = G[wo:wo + nw].reshape(n_post, n_pre)
        _mm_atb(E, blk(phx, B, pi[pre, P_OFF], n_pre), Gk)
        c = kf[k, KF_MULT] * scale
        for j in range(nw):
            G[wo + j] *= c
    if ki[k, K_BOFF] >= 0:
        bo = ki[k, K_BOFF]
        for j in range(n_post):
            acc = 0.0
            for q in range(B):
                acc += E[q, j]
            Gb[bo + j] = scale * acc


@njit(**_jit)
def _opt(P, G, Mo, V, factor, lr, kind, mom, wd, b1, b2, epsopt, tc):
    """One optimiser step ascending factor * G (as ``neurosim.backends.reference.optimizer_step``)."""
    for j in range(P.shape[0]):
        g = G[j] if factor == 1.0 else factor * G[j]
        if wd > 0:
            g = g - wd * P[j]
        if kind == O_ADAM:
            Mo[j] = b1 * Mo[j] + (1.0 - b1) * g
            V[j] = b2 * V[j] + (1.0 - b2) * g * g
            mhat = Mo[j] / (1.0 - b1 ** tc)
            vhat = V[j] / (1.0 - b2 ** tc)
            P[j] += lr * mhat / (math.sqrt(vhat) + epsopt)
        else:
            if mom > 0:
                Mo[j] = mom * Mo[j] + g
                g = Mo[j]
            P[j] += lr * g


@njit(**_jit)
def _apply(k, G, Gb, factor, pi, ki, kf, params):
    """Optimiser step of projection k along factor * (G_k, Gb_k), if it is plastic."""
    W, b, mW, vW, mb, vb, opt_t = params
    plastic = ki[k, K_PLASTIC] != 0
    lbias = ki[k, K_LBIAS] != 0
    if not (plastic or lbias):
        return
    opt_t[k] += 1
    tc = opt_t[k]
    n_post = pi[ki[k, K_POST], P_SIZE]
    n_pre = pi[ki[k, K_PRE], P_SIZE]
    lr = kf[k, KF_LR]
    kind = ki[k, K_OPT]
    if plastic and ki[k, K_WOFF] >= 0:
        wo = ki[k, K_WOFF]
        nw = n_post * n_pre
        _opt(W[wo:wo + nw], G[wo:wo + nw], mW[wo:wo + nw], vW[wo:wo + nw], factor, lr, kind, kf[k, KF_MOM],
             kf[k, KF_WD], kf[k, KF_B1], kf[k, KF_B2], kf[k, KF_EPS], tc)
    if lbias and ki[k, K_BOFF] >= 0:
        bo = ki[k, K_BOFF]
        _opt(b[bo:bo + n_post], Gb[bo:bo + n_post], mb[bo:bo + n_post], vb[bo:bo + n_post], factor, lr, kind,
             kf[k, KF_MOM], kf[k, KF_WD], kf[k, KF_B1], kf[k, KF_B2], kf[k, KF_EPS], tc)


@njit(**_jit)
def _observe(k, r, x, mu, eps, prec, energy, energies, probe_every, probe_item, recs, B, pi):
    """Errors and energies at step k (row k of ``energies``), the probe record due then (record r).
    Returns (records so far, the first population that is not finite or -1)."""
    _errors(x, mu, eps, prec, energy, B, pi)
    for i in range(pi.shape[0]):
        energies[k, i] = energy[i]
    if probe_every > 0 and probe_item < B and k % probe_every == 0:
        _record(r, k, x, eps, mu, recs, B, pi, probe_item)
        r += 1
    return r, _first_bad(energy, x, B, pi)


@njit(**_jit)
def _record(r, k, x, eps, mu, recs, B, pi, item):
    rec_x, rec_eps, rec_mu, rec_steps = recs
    for i in range(pi.shape[0]):
        n = pi[i, P_SIZE]
        o = B * pi[i, P_OFF] + item * n
        uo = pi[i, P_OFF]
        for j in range(n):
            rec_x[r, uo + j] = x[o + j]
            rec_eps[r, uo + j] = eps[o + j]
            rec_mu[r, uo + j] = mu[o + j]
    rec_steps[r] = k


# ----------------------------------------------------------------------------- kernels
@njit(**_jit)
def fpa_kernel(s, t, teff, eta, n_iter, beta_t, learn, factor, probe_every, probe_item, target_pop,
               tabs, prec, params, bufs, G, Gb, energies, recs, y0, y, out):
    """Fixed-prediction assumption: mu and the Jacobians frozen at the feedforward pass, n_iter steps."""
    pi, pf, ki, kf, ki_start, ki_end, inputs, input_off = tabs
    W = params[0]
    b = params[1]
    x, phx, dph, mu, eps, fb, sfb, dx, tmp = bufs
    B = s.shape[0]
    npop = pi.shape[0]
    energy = np.zeros(npop)
    _forward(s, x, phx, mu, B, tabs, W, b, tmp)
    _dphi_all(x, dph, B, pi, pf)
    _target(x, t, teff, y0, beta_t, True, target_pop, B, pi)
    status = 0
    fail_step = -1
    fail_pop = -1
    steps = 0
    r = 0
    for k in range(n_iter + 1):
        r, bad = _observe(k, r, x, mu, eps, prec, energy, energies, probe_every, probe_item, recs, B, pi)
        if bad >= 0:
            status, fail_step, fail_pop = 1, k, bad
            break
        if k == n_iter:
            break
        _drive(x, eps, dph, fb, sfb, dx, B, pi, ki, kf, W, tmp, M_CLAMP, 0.0, teff, target_pop)
        _step(x, dx, B, pi, pf, eta)
        steps += 1
    read_pop(x, target_pop, B, pi, y)
    if status == 0:
        for k in range(ki.shape[0]):
            _direction(k, eps, phx, B, pi, ki, kf, G, Gb)   # phx: presynaptic feedforward values
            if learn:
                _apply(k, G, Gb, factor, pi, ki, kf, params)
    report(out, steps, status, fail_step, fail_pop, r)


@njit(**_jit)
def zil_kernel(s, t, teff, gamma, n_upd, all_at_zero, beta_t, learn, factor, probe_every, probe_item, target_pop,
               dist, tabs, prec, params, bufs, G, Gb, energies, recs, y0, y, out):
    """Z-IL: feedforward start, inference rate gamma, projection k updated once at step dist(post_k)."""
    pi, pf, ki, kf, ki_start, ki_end, inputs, input_off = tabs
    W = params[0]
    b = params[1]
    x, phx, dph, mu, eps, fb, sfb, dx, tmp = bufs
    B = s.shape[0]
    npop = pi.shape[0]
    energy = np.zeros(npop)
    _forward(s, x, phx, mu, B, tabs, W, b, tmp)
    _target(x, t, teff, y0, beta_t, True, target_pop, B, pi)
    status = 0
    fail_step = -1
    fail_pop = -1
    steps = 0
    r = 0
    for step in range(n_upd):
        _eval(x, phx, mu, B, pi, pf, ki, kf, ki_start, ki_end, W, b, tmp)
        r, bad = _observe(step, r, x, mu, eps, prec, energy, energies, probe_every, probe_item, recs, B, pi)
        if bad >= 0:
            status, fail_step, fail_pop = 1, step, bad
            break
        last = step == n_upd - 1
        if not last:
            _dphi_all(x, dph, B, pi, pf)
            _drive(x, eps, dph, fb, sfb, dx, B, pi, ki, kf, W, tmp, M_CLAMP, 0.0, teff, target_pop)
        for k in range(ki.shape[0]):
            d = dist[ki[k, K_POST]]
            if (all_at_zero and step == 0 and d >= 0) or ((not all_at_zero) and d == step):
                _direction(k, eps, phx, B, pi, ki, kf, G, Gb)
                if learn:
                    _apply(k, G, Gb, factor, pi, ki, kf, params)
        if not last:
            _step(x, dx, B, pi, pf, gamma)
            steps += 1
    read_pop(x, target_pop, B, pi, y)
    report(out, steps, status, fail_step, fail_pop, r)


@njit(**_jit)
def ipc_kernel(s, t, teff, gamma, n_steps, mode, nudge_beta, beta_t, learn, factor, probe_every, probe_item,
               target_pop, tabs, prec, params, bufs, G, Gb, energies, recs, y0, y, out):
    """Incremental PC: values and weights take one step together, from the same state, at every step."""
    pi, pf, ki, kf, ki_start, ki_end, inputs, input_off = tabs
    W = params[0]
    b = params[1]
    x, phx, dph, mu, eps, fb, sfb, dx, tmp = bufs
    B = s.shape[0]
    npop = pi.shape[0]
    energy = np.zeros(npop)
    _forward(s, x, phx, mu, B, tabs, W, b, tmp)
    _target(x, t, teff, y0, beta_t, mode == M_CLAMP, target_pop, B, pi)
    status = 0
    fail_step = -1
    fail_pop = -1
    steps = 0
    r = 0
    for k in range(n_steps + 1):
        _eval(x, phx, mu, B, pi, pf, ki, kf, ki_start, ki_end, W, b, tmp)
        r, bad = _observe(k, r, x, mu, eps, prec, energy, energies, probe_every, probe_item, recs, B, pi)
        if bad >= 0:
            status, fail_step, fail_pop = 1, k, bad
            break
        if k == n_steps:
            break
        _dphi_all(x, dph, B, pi, pf)
        _drive(x, eps, dph, fb, sfb, dx, B, pi, ki, kf, W, tmp, mode, nudge_beta, teff, target_pop)
        for kk in range(ki.shape[0]):
            _direction(kk, eps, phx, B, pi, ki, kf, G, Gb)
        _step(x, dx, B, pi, pf, gamma)
        if learn:
            for kk in range(ki.shape[0]):
                _apply(kk, G, Gb, factor, pi, ki, kf, params)
        steps += 1
    read_pop(x, target_pop, B, pi, y)
    report(out, steps, status, fail_step, fail_pop, r)


@njit(**_jit)
def bp_kernel(s, t, learn, target_pop, tabs, prec, params, bufs, G, Gb, y0, out_loss):
    """Backpropagation: forward sweep, errors e = -dL/dx in reverse topological order, gradient step."""
    pi, pf, ki, kf, ki_start, ki_end, inputs, input_off = tabs
    W = params[0]
    b = params[1]
    x, phx, dph, mu, eps, fb, sfb, dx, tmp = bufs
    B = s.shape[0]
    npop = pi.shape[0]
    _forward(s, x, phx, mu, B, tabs, W, b, tmp)
    _dphi_all(x, dph, B, pi, pf)
    eps[:] = 0.0
    n = pi[target_pop, P_SIZE]
    o = B * pi[target_pop, P_OFF]
    uo = pi[target_pop, P_OFF]
    loss = 0.0
    for q in range(B):
        for j in range(n):
            r = o + q * n + j
            y0[q, j] = x[r]
            d = t[q, j] - x[r]
            eps[r] = prec[uo + j] * d
            loss += prec[uo + j] * d * d
    out_loss[0] = 0.5 * loss / B
    for i in range(npop - 1, -1, -1):
        if pi[i, P_ROLE] != R_FREE:
            continue
        n_pre = pi[i, P_SIZE]
        opre = pi[i, P_OFF]
        Fb = blk(fb, B, opre, n_pre)
        S = blk(sfb, B, opre, n_pre)
        for q in range(B):
            for j in range(n_pre):
                Fb[q, j] = 0.0
                S[q, j] = 0.0
        for k in range(ki.shape[0]):
            if ki[k, K_PRE] == i:
                _feedback(k, eps, fb, sfb, B, pi, ki, kf, W, tmp)
        Ei = blk(eps, B, opre, n_pre)
        D = blk(dph, B, opre, n_pre)
        for q in range(B):
            for j in range(n_pre):
                Ei[q, j] = D[q, j] * Fb[q, j] + S[q, j]
    if math.isfinite(out_loss[0]):
        for k in range(ki.shape[0]):
            _direction(k, eps, phx, B, pi, ki, kf, G, Gb)
            if learn:
                _apply(k, G, Gb, 1.0, pi, ki, kf, params)
