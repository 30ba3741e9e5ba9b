r"""The numba backend: a whole batch relaxation (all populations, T steps, the weight update) in one
jitted call.

Memory layout: each state buffer is one flat vector; population ``i`` owns the C-contiguous block
``[B * off_i, B * (off_i + n_i))`` viewed as ``(B, n_i)``.  Matrix products go to BLAS through
``np.dot`` on these contiguous views; elementwise work is fused into explicit loops.  Kernels are pure:
arrays and scalars in, preallocated buffers out, no allocation in the step loop.

The kernel mirrors :mod:`neurosim.backends.reference` operation by operation and is tested against it
(``tests/conformance``).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..config import CACHE, FASTMATH
from ..plan import OPT_ADAM, ROLE_FREE, ROLE_INPUT, ROLE_TARGET
from .base import (EULER, INIT_FEEDFORWARD, INIT_PREVIOUS, INIT_ZEROS, MODE_CLAMP, MODE_NUDGE, Backend,
                   BatchResult, RunSpec)

# column indices of the packed metadata tables
P_SIZE, P_OFF, P_PHI, P_ROLE, P_ERR = 0, 1, 2, 3, 4
PF_PARAM, PF_TAUX, PF_TAUE = 0, 1, 2
K_PRE, K_POST, K_WOFF, K_BOFF, K_SKIP, K_PLASTIC, K_LBIAS, K_MEAN, K_OPT = range(9)
KF_MULT, KF_LR, KF_MOM, KF_WD, KF_B1, KF_B2, KF_EPS = range(7)

_jit = dict(cache=CACHE, fastmath=FASTMATH, nogil=True)


@njit(**_jit)
def _phi(code, a, x):
    if code == 0:
        return x
    if code == 1:
        return math.tanh(x)
    if code == 2:
        if x >= 0:
            return 1.0 / (1.0 + math.exp(-x))
        e = math.exp(x)
        return e / (1.0 + e)
    if code == 3:
        return x if x > 0 else 0.0
    return x if x > 0 else a * x


@njit(**_jit)
def _dphi(code, a, x):
    if code == 0:
        return 1.0
    if code == 1:
        t = math.tanh(x)
        return 1.0 - t * t
    if code == 2:
        if x >= 0:
            s = 1.0 / (1.0 + math.exp(-x))
        else:
            e = math.exp(x)
            s = e / (1.0 + e)
        return s * (1.0 - s)
    if code == 3:
        return 1.0 if x > 0 else 0.0
    return 1.0 if x > 0 else a


@njit(**_jit)
def _dphi_from(code, a, x, fx):
    """dphi(x) given fx = phi(x): tanh and sigmoid reuse fx instead of a second transcendental."""
    if code == 0:
        return 1.0
    if code == 1:
        return 1.0 - fx * fx
    if code == 2:
        return fx * (1.0 - fx)
    if code == 3:
        return 1.0 if x > 0 else 0.0
    return 1.0 if x > 0 else a


#: batches up to this size use hand-written loops instead of BLAS (call overhead dominates there)
SMALL_BATCH = 8


@njit(**_jit)
def _mm_abt(A, Wk, out):
    """out = A @ Wk.T  for A (B, n_pre), Wk (n_post, n_pre)."""
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
    """out = E @ Wk  for E (B, n_post), Wk (n_post, n_pre)."""
    B = E.shape[0]
    if B <= SMALL_BATCH:
        n_post, n_pre = Wk.shape
        out[:, :] = 0.0
        for s in range(B):
            for j in range(n_post):
                e = E[s, j]
                if e != 0.0:
                    for i in range(n_pre):
                        out[s, i] += e * Wk[j, i]
    else:
        np.dot(E, Wk, out)


@njit(**_jit)
def _blk(buf, B, off, n):
    return buf[B * off:B * (off + n)].reshape(B, n)


@njit(**_jit)
def _derivs(x, es, t, B, mode, beta, pi, pf, prec, ki, kf, ki_start, ki_end, W, b,
            mu, eps, phx, fb, sfb, dx, deps, energy, dxsum, tmp, fbw):
    """Everything the dynamics need at state (x, es): mu, eps, dx/dt, deps/dt, energy per population."""
    npop = pi.shape[0]
    nproj = ki.shape[0]
    # phi(x) of every population
    for i in range(npop):
        n = pi[i, P_SIZE]
        o = B * pi[i, P_OFF]
        code = pi[i, P_PHI]
        a = pf[i, PF_PARAM]
        if code == 0:
            phx[o:o + B * n] = x[o:o + B * n]
        else:
            for j in range(B * n):
                phx[o + j] = _phi(code, a, x[o + j])
    # predictions, population by population (projections are sorted by post); the first weighted
    # projection writes its product straight into mu, the others go through tmp
    for i in range(npop):
        if pi[i, P_ROLE] == ROLE_INPUT:
            continue
        n_post = pi[i, P_SIZE]
        opost = pi[i, P_OFF]
        M = _blk(mu, B, opost, n_post)
        written = False
        k0 = ki_start[i]
        k1 = ki_end[i]
        # a weighted projection that comes first can write directly
        if k1 > k0 and ki[k0, K_WOFF] < 0:
            M[:, :] = 0.0
            written = True
        for k in range(k0, k1):
            pre = ki[k, K_PRE]
            n_pre = pi[pre, P_SIZE]
            opre = pi[pre, P_OFF]
            if ki[k, K_WOFF] >= 0:
                wo = ki[k, K_WOFF]
                Wk = W[wo:wo + n_post * n_pre].reshape(n_post, n_pre)
                m = kf[k, KF_MULT]
                if not written:
                    _mm_abt(_blk(phx, B, opre, n_pre), Wk, M)
                    if m != 1.0:
                        for s in range(B):
                            for j in range(n_post):
                                M[s, j] *= m
                    written = True
                else:
                    T = tmp[:B * n_post].reshape(B, n_post)
                    _mm_abt(_blk(phx, B, opre, n_pre), Wk, T)
                    for s in range(B):
                        for j in range(n_post):
                            M[s, j] += m * T[s, j]
            if ki[k, K_BOFF] >= 0:
                bo = ki[k, K_BOFF]
                for s in range(B):
                    for j in range(n_post):
                        M[s, j] += b[bo + j]
            if ki[k, K_SKIP] != 0:
                X = _blk(x, B, opre, n_pre)
                for s in range(B):
                    for j in range(n_post):
                        M[s, j] += X[s, j]
        if not written:
            M[:, :] = 0.0
    # errors and energy
    for i in range(npop):
        energy[i] = 0.0
        n = pi[i, P_SIZE]
        o = B * pi[i, P_OFF]
        if pi[i, P_ERR] == 0:
            for j in range(B * n):
                eps[o + j] = 0.0
                deps[o + j] = 0.0
            continue
        uo = pi[i, P_OFF]
        tau_e = pf[i, PF_TAUE]
        acc = 0.0
        for s in range(B):
            for j in range(n):
                q = o + s * n + j
                p = prec[uo + j]
                d = x[q] - mu[q]
                acc += p * d * d
                if tau_e > 0:
                    eps[q] = es[q]
                    deps[q] = (d - es[q] / p) / tau_e
                else:
                    eps[q] = p * d
                    deps[q] = 0.0
        energy[i] = 0.5 * acc / B
    # feedback through the transposed weights; fbw[i] says whether fb of population i is written yet
    for i in range(npop):
        fbw[i] = 0
    sfb[:] = 0.0
    for k in range(nproj):
        pre = ki[k, K_PRE]
        post = ki[k, K_POST]
        n_pre = pi[pre, P_SIZE]
        n_post = pi[post, P_SIZE]
        opre = pi[pre, P_OFF]
        opost = pi[post, P_OFF]
        E = _blk(eps, B, opost, n_post)
        if ki[k, K_WOFF] >= 0:
            wo = ki[k, K_WOFF]
            Wk = W[wo:wo + n_post * n_pre].reshape(n_post, n_pre)
            m = kf[k, KF_MULT]
            Fb = _blk(fb, B, opre, n_pre)
            if fbw[pre] == 0:
                _mm_ab(E, Wk, Fb)
                if m != 1.0:
                    for s in range(B):
                        for j in range(n_pre):
                            Fb[s, j] *= m
                fbw[pre] = 1
            else:
                T = tmp[:B * n_pre].reshape(B, n_pre)
                _mm_ab(E, Wk, T)
                for s in range(B):
                    for j in range(n_pre):
                        Fb[s, j] += m * T[s, j]
        if ki[k, K_SKIP] != 0:
            S = _blk(sfb, B, opre, n_pre)
            for s in range(B):
                for j in range(n_pre):
                    S[s, j] += E[s, j]
    for i in range(npop):
        if fbw[i] == 0:
            n = pi[i, P_SIZE]
            o = B * pi[i, P_OFF]
            for j in range(B * n):
                fb[o + j] = 0.0
    # value dynamics
    for i in range(npop):
        n = pi[i, P_SIZE]
        o = B * pi[i, P_OFF]
        role = pi[i, P_ROLE]
        dxsum[i] = 0.0
        if role == ROLE_INPUT or (role == ROLE_TARGET and mode == MODE_CLAMP):
            for j in range(B * n):
                dx[o + j] = 0.0
            continue
        code = pi[i, P_PHI]
        a = pf[i, PF_PARAM]
        inv_tau = 1.0 / pf[i, PF_TAUX]
        nudge = role == ROLE_TARGET and mode == MODE_NUDGE
        acc = 0.0
        for s in range(B):
            for j in range(n):
                q = o + s * n + j
                drive = -eps[q] + _dphi_from(code, a, x[q], phx[q]) * fb[q] + sfb[q]
                if nudge:
                    drive += beta * (t[s, j] - x[q])
                dx[q] = drive * inv_tau
                acc += dx[q]
        dxsum[i] = acc


@njit(**_jit)
def _opt_update(P, G, Mo, V, lr, kind, mom, wd, b1, b2, epsopt, tcount):
    for j in range(P.shape[0]):
        g = G[j]
        if wd > 0:
            g -= wd * P[j]
        if kind == OPT_ADAM:
            Mo[j] = b1 * Mo[j] + (1.0 - b1) * g
            V[j] = b2 * V[j] + (1.0 - b2) * g * g
            mhat = Mo[j] / (1.0 - b1 ** tcount)
            vhat = V[j] / (1.0 - b2 ** tcount)
            P[j] += lr * mhat / (math.sqrt(vhat) + epsopt)
        else:
            if mom > 0:
                Mo[j] = mom * Mo[j] + g
                g = Mo[j]
            P[j] += lr * g


@njit(**_jit)
def run_batch_kernel(s, t, have_prev, mode, beta, init, n_steps, tol, integrator, dt, dt_decay, learn,
                     probe_every, probe_item,
                     pi, pf, prec, ki, kf, ki_start, ki_end, inputs, input_off, target_pop,
                     W, b, mW, vW, mb, vb, opt_t,
                     x, es, mu, eps, phx, fb, sfb, dx, deps, x2, es2, dx2, deps2, tmp, gtmp,
                     energies, rec_x, rec_eps, rec_mu, rec_steps, y0, y, out):
    """One batch: initialise, relax ``n_steps`` (or until max|d/dt| < tol), optionally learn.

    ``out`` receives (steps, status, fail_step, fail_pop, n_records).
    """
    B = s.shape[0]
    npop = pi.shape[0]
    nproj = ki.shape[0]
    energy = np.zeros(npop)
    dxsum = np.zeros(npop)
    energy2 = np.zeros(npop)
    dxsum2 = np.zeros(npop)
    fbw = np.zeros(npop, dtype=np.int64)
    # ---- initial state
    if init == INIT_PREVIOUS and have_prev:
        pass
    else:
        x[:] = 0.0
        es[:] = 0.0
    for jj in range(inputs.shape[0]):
        i = inputs[jj]
        n = pi[i, P_SIZE]
        X = _blk(x, B, pi[i, P_OFF], n)
        for q in range(B):
            for j in range(n):
                X[q, j] = s[q, input_off[jj] + j]
    if not (init == INIT_PREVIOUS and have_prev):
        # one forward sweep in topological order: x_i = mu_i
        for i in range(npop):
            if pi[i, P_ROLE] == ROLE_INPUT:
                continue
            _derivs(x, es, t, B, 0, beta, pi, pf, prec, ki, kf, ki_start, ki_end, W, b,
                    mu, eps, phx, fb, sfb, dx, deps, energy, dxsum, tmp, fbw)
            n = pi[i, P_SIZE]
            o = B * pi[i, P_OFF]
            for j in range(B * n):
                x[o + j] = mu[o + j]
    if mode == MODE_CLAMP and target_pop >= 0:
        n = pi[target_pop, P_SIZE]
        X = _blk(x, B, pi[target_pop, P_OFF], n)
        for q in range(B):
            for j in range(n):
                X[q, j] = t[q, j]
    if init == INIT_ZEROS:
        for i in range(npop):
            role = pi[i, P_ROLE]
            if role == ROLE_FREE or (role == ROLE_TARGET and mode != MODE_CLAMP):
                n = pi[i, P_SIZE]
                o = B * pi[i, P_OFF]
                for j in range(B * n):
                    x[o + j] = 0.0
    _derivs(x, es, t, B, mode, beta, pi, pf, prec, ki, kf, ki_start, ki_end, W, b,
            mu, eps, phx, fb, sfb, dx, deps, energy, dxsum, tmp, fbw)
    if not (init == INIT_PREVIOUS and have_prev):
        # error units start at their instantaneous value
        any_dyn = False
        for i in range(npop):
            if pi[i, P_ERR] != 0 and pf[i, PF_TAUE] > 0:
                any_dyn = True
                n = pi[i, P_SIZE]
                o = B * pi[i, P_OFF]
                uo = pi[i, P_OFF]
                for q in range(B):
                    for j in range(n):
                        r = o + q * n + j
                        es[r] = prec[uo + j] * (x[r] - mu[r])
        if any_dyn:
            _derivs(x, es, t, B, mode, beta, pi, pf, prec, ki, kf, ki_start, ki_end, W, b,
                    mu, eps, phx, fb, sfb, dx, deps, energy, dxsum, tmp, fbw)
    if target_pop >= 0:
        n = pi[target_pop, P_SIZE]
        Mt = _blk(mu, B, pi[target_pop, P_OFF], n)
        for q in range(B):
            for j in range(n):
                y0[q, j] = Mt[q, j]
    # ---- relaxation
    status = 0
    fail_step = -1
    fail_pop = -1
    steps = 0
    r = 0
    N = x.shape[0]
    for k in range(n_steps + 1):
        for i in range(npop):
            energies[k, i] = energy[i]
        if probe_every > 0 and probe_item < B and k % probe_every == 0:
            for i in range(npop):
                n = pi[i, P_SIZE]
                o = B * pi[i, P_OFF] + probe_item * n
                uo = pi[i, P_OFF]
                for j in range(n):
                    rec_x[r, uo + j] = x[o + j]
                    rec_eps[r, uo + j] = eps[o + j]
                    rec_mu[r, uo + j] = mu[o + j]
            rec_steps[r] = k
            r += 1
        # as the reference: the first population with a non-finite energy, else with a non-finite value
        bad = -1
        for i in range(npop):
            if not math.isfinite(energy[i]):
                bad = i
                break
        if bad < 0:
            for i in range(npop):
                o = B * pi[i, P_OFF]
                for j in range(B * pi[i, P_SIZE]):
                    if not math.isfinite(x[o + j]):
                        bad = i
                        break
                if bad >= 0:
                    break
        if bad >= 0:
            status = 1
            fail_step = k
            fail_pop = bad
            break
        if k == n_steps:
            break
        if tol > 0:
            rate = 0.0
            for j in range(N):
                v = abs(dx[j])
                if v > rate:
                    rate = v
                v = abs(deps[j])
                if v > rate:
                    rate = v
            if rate < tol:
                break
        if integrator == EULER:
            for j in range(N):
                x[j] += dt * dx[j]
                es[j] += dt * deps[j]
        else:
            for j in range(N):
                x2[j] = x[j] + dt * dx[j]
                es2[j] = es[j] + dt * deps[j]
            _derivs(x2, es2, t, B, mode, beta, pi, pf, prec, ki, kf, ki_start, ki_end, W, b,
                    mu, eps, phx, fb, sfb, dx2, deps2, energy2, dxsum2, tmp, fbw)
            h = 0.5 * dt
            for j in range(N):
                x[j] += h * (dx[j] + dx2[j])
                es[j] += h * (deps[j] + deps2[j])
        steps += 1
        prev_total = 0.0
        for i in range(npop):
            prev_total += energy[i]
        _derivs(x, es, t, B, mode, beta, pi, pf, prec, ki, kf, ki_start, ki_end, W, b,
                mu, eps, phx, fb, sfb, dx, deps, energy, dxsum, tmp, fbw)
        if dt_decay < 1.0:
            tot = 0.0
            for i in range(npop):
                tot += energy[i]
            if tot >= prev_total:
                dt *= dt_decay
    # keep eps of dynamic units in es; store the actual errors for 'previous' starts
    for j in range(N):
        es[j] = eps[j]
    if target_pop >= 0:
        n = pi[target_pop, P_SIZE]
        Xt = _blk(x, B, pi[target_pop, P_OFF], n)
        for q in range(B):
            for j in range(n):
                y[q, j] = Xt[q, j]
    # ---- plasticity from the final state
    if learn and status == 0:
        for k in range(nproj):
            plastic = ki[k, K_PLASTIC] != 0
            lbias = ki[k, K_LBIAS] != 0
            if not (plastic or lbias):
                continue
            pre = ki[k, K_PRE]
            post = ki[k, K_POST]
            n_pre = pi[pre, P_SIZE]
            n_post = pi[post, P_SIZE]
            E = _blk(eps, B, pi[post, P_OFF], n_post)
            scale = 1.0 / B if ki[k, K_MEAN] != 0 else 1.0
            opt_t[k] += 1
            tc = opt_t[k]
            kind = ki[k, K_OPT]
            if plastic:
                wo = ki[k, K_WOFF]
                nw = n_post * n_pre
                G = gtmp[:nw].reshape(n_post, n_pre)
                np.dot(E.T, _blk(phx, B, pi[pre, P_OFF], n_pre), G)
                g = gtmp[:nw]
                c = kf[k, KF_MULT] * scale
                for j in range(nw):
                    g[j] *= c
                _opt_update(W[wo:wo + nw], g, mW[wo:wo + nw], vW[wo:wo + nw], kf[k, KF_LR], kind,
                            kf[k, KF_MOM], kf[k, KF_WD], kf[k, KF_B1], kf[k, KF_B2], kf[k, KF_EPS], tc)
            if lbias:
                bo = ki[k, K_BOFF]
                g = gtmp[:n_post]
                for j in range(n_post):
                    acc = 0.0
                    for q in range(B):
                        acc += E[q, j]
                    g[j] = acc * scale
                _opt_update(b[bo:bo + n_post], g, mb[bo:bo + n_post], vb[bo:bo + n_post], kf[k, KF_LR], kind,
                            kf[k, KF_MOM], kf[k, KF_WD], kf[k, KF_B1], kf[k, KF_B2], kf[k, KF_EPS], tc)
    out[0] = steps
    out[1] = status
    out[2] = fail_step
    out[3] = fail_pop
    out[4] = r


class NumbaBackend(Backend):
    """Runs :func:`run_batch_kernel`; buffers are reused across batches of the same size."""

    name = "numba"
    supports = frozenset({"euler", "heun", "tol", "nudge", "tau_eps", "skip", "multiplier", "bias", "adam",
                          "dt_decay", "float32", "probes", "graph"})

    def __init__(self, plan, dtype=np.float64):
        super().__init__(plan, dtype)
        p = plan
        self.pi = np.stack([p.pop_size, p.pop_off, p.pop_phi, p.pop_role, p.pop_has_err], axis=1).astype(np.int64)
        self.pf = np.stack([p.pop_phi_param, p.pop_tau_x, p.pop_tau_eps], axis=1).astype(self.dtype)
        self.ki = np.stack([p.proj_pre, p.proj_post, p.w_off, p.b_off, p.proj_skip, p.proj_plastic,
                            p.proj_learn_bias, p.proj_mean, p.opt_kind], axis=1).astype(np.int64).reshape(-1, 9)
        self.kf = np.concatenate([p.proj_mult[:, None], p.proj_lr[:, None], p.opt_param], axis=1
                                 ).astype(self.dtype).reshape(-1, 7)
        self.prec = p.precision.astype(self.dtype)
        self.ki_start = p.in_start.astype(np.int64)
        self.ki_end = p.in_end.astype(np.int64)
        self.inputs = p.input_pops.astype(np.int64)
        self.input_off = p.input_off.astype(np.int64)
        max_n = int(p.pop_size.max())
        self.tmp_units = max_n
        shapes = [p.weight_shape(k) for k in range(p.n_proj)]
        self.gtmp = np.zeros(max([a * c for a, c in shapes] + [max_n, 1]), dtype=self.dtype)
        self.have_prev = False
        self._bufs = None

    def _buffers(self, B):
        if self._bufs is None or self.batch_size != B:
            N = B * self.plan.n_units
            self._bufs = [np.zeros(N, dtype=self.dtype) for _ in range(13)]
            self._tmp = np.zeros(B * self.tmp_units, dtype=self.dtype)
            self.batch_size = B
            self.have_prev = False
        return self._bufs

    def run_batch(self, s, t, spec: RunSpec) -> BatchResult:
        p = self.plan
        s = np.ascontiguousarray(s, dtype=self.dtype)
        B = s.shape[0]
        t = np.zeros((B, max(p.n_target, 1)), dtype=self.dtype) if t is None else np.ascontiguousarray(t, dtype=self.dtype)
        bufs = self._buffers(B)
        n_rec = spec.n_steps // spec.probe_every + 1 if spec.probe_every > 0 else 0
        rec_x = np.zeros((n_rec, p.n_units), dtype=self.dtype)
        rec_eps = np.zeros_like(rec_x)
        rec_mu = np.zeros_like(rec_x)
        rec_steps = np.zeros(n_rec, dtype=np.int64)
        energies = np.zeros((spec.n_steps + 1, p.n_pops))
        out = np.zeros(5, dtype=np.int64)
        y0 = np.zeros((B, p.n_target), dtype=self.dtype)
        y = np.zeros((B, p.n_target), dtype=self.dtype)
        run_batch_kernel(s, t, self.have_prev, spec.mode, spec.beta, spec.init, spec.n_steps, spec.tol,
                         spec.integrator, spec.dt, spec.dt_decay, spec.learn, spec.probe_every, spec.probe_item,
                         self.pi, self.pf, self.prec, self.ki, self.kf, self.ki_start, self.ki_end, self.inputs, self.input_off,
                         int(p.target_pop), self.W, self.b, self.mW, self.vW, self.mb, self.vb, self.opt_t,
                         *bufs, self._tmp, self.gtmp, energies, rec_x, rec_eps, rec_mu, rec_steps, y0, y, out)
        self.have_prev = True
        steps, status, fail_step, fail_pop, r = (int(v) for v in out)
        return BatchResult(steps=steps, energy=energies[:steps + 1].copy(), status=status, fail_step=fail_step,
                           fail_pop=fail_pop, rec_steps=rec_steps[:r], rec_x=rec_x[:r], rec_eps=rec_eps[:r],
                           rec_mu=rec_mu[:r], y0=y0, y=y)

    def _unflatten(self, buf):
        """Population-major flat buffer -> (B, n_units) array."""
        p = self.plan
        B = self.batch_size
        outa = np.empty((B, p.n_units), dtype=self.dtype)
        for i in range(p.n_pops):
            n, o = int(p.pop_size[i]), int(p.pop_off[i])
            outa[:, o:o + n] = buf[B * o:B * (o + n)].reshape(B, n)
        return outa

    def state(self):
        if not self.have_prev:
            return None
        x, es, mu = self._bufs[0], self._bufs[1], self._bufs[2]
        return {"x": self._unflatten(x), "eps": self._unflatten(es), "mu": self._unflatten(mu)}

    def set_state(self, x, eps):
        p = self.plan
        x = np.asarray(x, dtype=self.dtype)
        B = x.shape[0]
        bufs = self._buffers(B)
        for buf, src in ((bufs[0], x), (bufs[1], np.asarray(eps, dtype=self.dtype))):
            for i in range(p.n_pops):
                n, o = int(p.pop_size[i]), int(p.pop_off[i])
                buf[B * o:B * (o + n)] = src[:, o:o + n].ravel()
        self.have_prev = True

    def reset(self):
        super().reset()
        self.have_prev = False
