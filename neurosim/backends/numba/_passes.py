"""The pieces of one relaxation step of the numba core: predictions (with the fused small-batch pass over W),
errors and energies, feedback, the drive dx/dt and the fused Euler updates (see :mod:`neurosim.backends.numba`)."""
from __future__ import annotations

from numba import njit

from ._linkonly import JIT_INNER
from ...plan import ROLE_INPUT, ROLE_TARGET
from ..base import MODE_NUDGE
from ..tables import (K_BOFF, K_POST, K_PRE, K_SKIP, K_SOFF, K_WOFF, KF_MULT, P_ERR, P_OFF, P_PHI, P_ROLE, P_SIZE,
                      PF_PARAM, PF_TAUE, PF_TAUX)
from ._common import add_into, add_row, blk, view2d, wblk
from ._products import _mm_ab, _mm_abt
from ._sparse import csr_feedback, csr_predict
from .activations import dphi_from, phi_block, tanh

_jit = JIT_INNER

#: whether the kernel being compiled may meet sparse projections: a module constant that
#: :func:`~neurosim.backends.numba._specialise.specialise` sets per kernel, so that a circuit without sparse
#: projections compiles none of their code (about 2 s of a cold start; see
#: :func:`~neurosim.backends.numba._relax.kernel`)
HAS_SPARSE = True


# columns of the per-population flag table computed at the start of each batch
G_FIXED, G_PHX, G_FB, G_SFB, G_MUC, G_FBW, G_FUSED = range(7)


@njit(**_jit)
def _predict(i, B, x, phx, mu, tmp, pi, ki, kf, ki_start, ki_end, W, b, S):
    """mu of population i from its incoming projections (sorted by post, so contiguous); a sparse projection
    (``ki[k, K_SOFF] >= 0``) goes through :func:`~neurosim.backends.numba._sparse.csr_predict` with index block
    ``S``."""
    n_post = pi[i, P_SIZE]
    opost = pi[i, P_OFF]
    M = blk(mu, B, opost, n_post)
    Mf = mu[B * opost:B * (opost + n_post)]
    written = False
    for k in range(ki_start[i], ki_end[i]):
        pre = ki[k, K_PRE]
        n_pre = pi[pre, P_SIZE]
        opre = pi[pre, P_OFF]
        if ki[k, K_WOFF] >= 0 and ki[k, K_SOFF] >= 0:
            if HAS_SPARSE:
                csr_predict(blk(phx, B, opre, n_pre), W, ki[k, K_WOFF], S, ki[k, K_SOFF], M, kf[k, KF_MULT], written)
            written = True
        elif ki[k, K_WOFF] >= 0:
            Wk = wblk(W, ki[k, K_WOFF], n_post, n_pre)
            m = kf[k, KF_MULT]
            if not written:
                _mm_abt(blk(phx, B, opre, n_pre), Wk, M)
                if m != 1.0:
                    for j in range(B * n_post):
                        Mf[j] *= m
                written = True
            else:
                T = tmp[:B * n_post]
                _mm_abt(blk(phx, B, opre, n_pre), Wk, view2d(T, 0, B, n_post))
                for j in range(B * n_post):
                    Mf[j] += m * T[j]
        if not written:
            for j in range(B * n_post):
                Mf[j] = 0.0
            written = True
        if ki[k, K_BOFF] >= 0:
            bo = ki[k, K_BOFF]
            add_row(M, b[bo:bo + n_post])
        if ki[k, K_SKIP] != 0:
            add_into(M, blk(x, B, opre, n_pre))
    if not written:
        for j in range(B * n_post):
            Mf[j] = 0.0


@njit(**_jit)
def _fused_rows(i, k, B, x, phx, mu, eps, F, pi, prec, ki, kf, W, b):
    r"""The one-pass prediction/error/feedback of population i (see :func:`_fused`): writes its mu and
    eps, adds its feedback into ``F`` (B, n_pre) and returns :math:`\sum \pi d^2` (not yet halved or
    divided by B)."""
    pre = ki[k, K_PRE]
    n_post = pi[i, P_SIZE]
    n_pre = pi[pre, P_SIZE]
    uo = pi[i, P_OFF]
    Wk = wblk(W, ki[k, K_WOFF], n_post, n_pre)
    m = kf[k, KF_MULT]
    hb = ki[k, K_BOFF] >= 0
    bo = ki[k, K_BOFF] if hb else 0
    bk = b[bo:bo + n_post] if hb else b[0:0]
    P = blk(phx, B, pi[pre, P_OFF], n_pre)
    Xb = blk(x, B, uo, n_post)
    Mb = blk(mu, B, uo, n_post)
    Eb = blk(eps, B, uo, n_post)
    pv = prec[uo:uo + n_post]
    # (written out by hand: a helper taking arrays inside these loops costs reference-count calls).
    # Rows go in blocks of 8 (then 4, then 1): one load of phi(x_pre) and one load/store of the feedback
    # serve 8 rows, which measured ~8% faster than blocks of 4 on a 256 x 256 pass (the pass is bound by
    # loads: each element of W is read twice, from L2 for the dot product and from L1 for the feedback).
    zero = Wk.dtype.type(0)  # dot products and feedback coefficients in the arrays' precision
    cast = Wk.dtype.type
    acc = 0.0
    j = 0
    while j < n_post:
        nb = 8 if j + 8 <= n_post else (4 if j + 4 <= n_post else 1)
        for s in range(B):
            a0 = zero
            a1 = zero
            a2 = zero
            a3 = zero
            a4 = zero
            a5 = zero
            a6 = zero
            a7 = zero
            if nb == 8:
                for q in range(n_pre):
                    v = P[s, q]
                    a0 += v * Wk[j, q]
                    a1 += v * Wk[j + 1, q]
                    a2 += v * Wk[j + 2, q]
                    a3 += v * Wk[j + 3, q]
                    a4 += v * Wk[j + 4, q]
                    a5 += v * Wk[j + 5, q]
                    a6 += v * Wk[j + 6, q]
                    a7 += v * Wk[j + 7, q]
            elif nb == 4:
                for q in range(n_pre):
                    v = P[s, q]
                    a0 += v * Wk[j, q]
                    a1 += v * Wk[j + 1, q]
                    a2 += v * Wk[j + 2, q]
                    a3 += v * Wk[j + 3, q]
            else:
                for q in range(n_pre):
                    a0 += P[s, q] * Wk[j, q]
            # mu = a dot + b, eps = pi (x - mu), energy += pi d^2, c = a eps (the feedback coefficient)
            m0 = m * a0 + (bk[j] if hb else 0.0)
            d0 = Xb[s, j] - m0
            Mb[s, j] = m0
            Eb[s, j] = pv[j] * d0
            acc += pv[j] * d0 * d0
            c0 = cast(m * (pv[j] * d0))
            if nb == 1:
                for q in range(n_pre):
                    F[s, q] += c0 * Wk[j, q]
                continue
            m1 = m * a1 + (bk[j + 1] if hb else 0.0)
            m2 = m * a2 + (bk[j + 2] if hb else 0.0)
            m3 = m * a3 + (bk[j + 3] if hb else 0.0)
            d1 = Xb[s, j + 1] - m1
            d2 = Xb[s, j + 2] - m2
            d3 = Xb[s, j + 3] - m3
            Mb[s, j + 1] = m1
            Mb[s, j + 2] = m2
            Mb[s, j + 3] = m3
            Eb[s, j + 1] = pv[j + 1] * d1
            Eb[s, j + 2] = pv[j + 2] * d2
            Eb[s, j + 3] = pv[j + 3] * d3
            acc += (pv[j + 1] * d1 * d1 + pv[j + 2] * d2 * d2) + pv[j + 3] * d3 * d3
            c1 = cast(m * (pv[j + 1] * d1))
            c2 = cast(m * (pv[j + 2] * d2))
            c3 = cast(m * (pv[j + 3] * d3))
            if nb == 4:
                for q in range(n_pre):
                    F[s, q] += (c0 * Wk[j, q] + c1 * Wk[j + 1, q]) + (c2 * Wk[j + 2, q] + c3 * Wk[j + 3, q])
                continue
            m4 = m * a4 + (bk[j + 4] if hb else 0.0)
            m5 = m * a5 + (bk[j + 5] if hb else 0.0)
            m6 = m * a6 + (bk[j + 6] if hb else 0.0)
            m7 = m * a7 + (bk[j + 7] if hb else 0.0)
            d4 = Xb[s, j + 4] - m4
            d5 = Xb[s, j + 5] - m5
            d6 = Xb[s, j + 6] - m6
            d7 = Xb[s, j + 7] - m7
            Mb[s, j + 4] = m4
            Mb[s, j + 5] = m5
            Mb[s, j + 6] = m6
            Mb[s, j + 7] = m7
            Eb[s, j + 4] = pv[j + 4] * d4
            Eb[s, j + 5] = pv[j + 5] * d5
            Eb[s, j + 6] = pv[j + 6] * d6
            Eb[s, j + 7] = pv[j + 7] * d7
            acc += (pv[j + 4] * d4 * d4 + pv[j + 5] * d5 * d5) + (pv[j + 6] * d6 * d6 + pv[j + 7] * d7 * d7)
            c4 = cast(m * (pv[j + 4] * d4))
            c5 = cast(m * (pv[j + 5] * d5))
            c6 = cast(m * (pv[j + 6] * d6))
            c7 = cast(m * (pv[j + 7] * d7))
            for q in range(n_pre):
                F[s, q] += (((c0 * Wk[j, q] + c1 * Wk[j + 1, q]) + (c2 * Wk[j + 2, q] + c3 * Wk[j + 3, q]))
                            + ((c4 * Wk[j + 4, q] + c5 * Wk[j + 5, q]) + (c6 * Wk[j + 6, q] + c7 * Wk[j + 7, q])))
        j += nb
    return acc


@njit(**_jit)
def _fused(i, k, B, x, phx, mu, eps, fb, g, pi, prec, ki, kf, W, b):
    r"""One pass over W_k for a population i whose only input is the weighted projection k (small batches).

    Row j of :math:`W_k` gives :math:`\mu_j = a\,W_j \cdot \phi(x_{pre}) + b_j`, hence
    :math:`\varepsilon_j = \pi_j (x_j - \mu_j)`, and is used again, while it is still in L1, for the
    feedback :math:`fb_{pre} \mathrel{+}= a\,\varepsilon_j W_j`: the matrix is read once per step
    instead of twice.  Returns the batch-mean energy of population i.
    """
    pre = ki[k, K_PRE]
    n_pre = pi[pre, P_SIZE]
    F = blk(fb, B, pi[pre, P_OFF], n_pre)
    if g[pre, G_FBW] == 0:
        for s in range(B):
            for q in range(n_pre):
                F[s, q] = 0.0
        g[pre, G_FBW] = 1
    return 0.5 * _fused_rows(i, k, B, x, phx, mu, eps, F, pi, prec, ki, kf, W, b) / B


@njit(**_jit)
def _instant_errors(Xb, Mb, Eb, pv):
    r"""Instantaneous errors :math:`\varepsilon = \pi (x - \mu)` into ``Eb`` for ``(B, n)`` views, per-unit precision
    ``pv``; returns :math:`\sum \pi d^2` (not yet halved or divided by B)."""
    acc = 0.0
    for s in range(Xb.shape[0]):
        for j in range(Xb.shape[1]):
            p = pv[j]
            d = Xb[s, j] - Mb[s, j]
            acc += p * d * d
            Eb[s, j] = p * d
    return acc


@njit(**_jit)
def _errors(i, B, x, es, mu, eps, deps, pi, pf, prec):
    """eps (and d eps/dt for dynamic error units) of population i; returns its batch-mean energy."""
    n = pi[i, P_SIZE]
    uo = pi[i, P_OFF]
    tau_e = pf[i, PF_TAUE]
    pv = prec[uo:uo + n]
    Xb = blk(x, B, uo, n)
    Mb = blk(mu, B, uo, n)
    Eb = blk(eps, B, uo, n)
    acc = 0.0
    if tau_e > 0:
        inv = 1.0 / tau_e
        Sb = blk(es, B, uo, n)
        Db = blk(deps, B, uo, n)
        for s in range(B):
            for j in range(n):
                p = pv[j]
                d = Xb[s, j] - Mb[s, j]
                acc += p * d * d
                e = Sb[s, j]
                Eb[s, j] = e
                Db[s, j] = (d - e / p) * inv
    else:
        acc = _instant_errors(Xb, Mb, Eb, pv)
    return 0.5 * acc / B


@njit(**_jit)
def _forward(B, x, es, mu, eps, phx, fb, deps, tmp, energy, g, pi, pf, prec, ki, kf, ki_start, ki_end, W, b,
             predict, S):
    """Predictions that can change (when ``predict``), then errors and energy of every population.

    With ``predict``, populations marked for the fused pass (:func:`_fused`) also get their feedback
    computed here; returns whether that happened (the next :func:`_feedback` then skips them).
    """
    npop = pi.shape[0]
    if predict:
        for i in range(npop):
            g[i, G_FBW] = 0
        for i in range(npop):
            if pi[i, P_ROLE] == ROLE_INPUT or g[i, G_MUC] != 0:
                continue
            if g[i, G_FUSED] > 0:
                energy[i] = _fused(i, g[i, G_FUSED] - 1, B, x, phx, mu, eps, fb, g, pi, prec, ki, kf, W, b)
            else:
                _predict(i, B, x, phx, mu, tmp, pi, ki, kf, ki_start, ki_end, W, b, S)
    for i in range(npop):
        if predict and g[i, G_FUSED] > 0:
            continue
        if pi[i, P_ERR] != 0:
            energy[i] = _errors(i, B, x, es, mu, eps, deps, pi, pf, prec)
        else:
            energy[i] = 0.0
    return predict


@njit(**_jit)
def _feedback(B, eps, fb, sfb, tmp, g, fused_done, pi, ki, kf, W, S):
    """fb = sum a W^T eps_post and sfb = sum eps_post (skips) into every moving population
    (projections already handled by the fused pass of :func:`_forward` are skipped; sparse projections scatter
    over their synapses, :func:`~neurosim.backends.numba._sparse.csr_feedback`)."""
    npop = pi.shape[0]
    nproj = ki.shape[0]
    if not fused_done:
        for i in range(npop):
            g[i, G_FBW] = 0
    for k in range(nproj):
        pre = ki[k, K_PRE]
        if ki[k, K_SKIP] != 0 and g[pre, G_FIXED] == 0:
            o = B * pi[pre, P_OFF]
            sfb[o:o + B * pi[pre, P_SIZE]] = 0.0
    for k in range(nproj):
        pre = ki[k, K_PRE]
        if g[pre, G_FIXED] != 0:
            continue
        post = ki[k, K_POST]
        if fused_done and g[post, G_FUSED] == k + 1:
            continue
        n_pre = pi[pre, P_SIZE]
        n_post = pi[post, P_SIZE]
        opre = pi[pre, P_OFF]
        E = blk(eps, B, pi[post, P_OFF], n_post)
        if ki[k, K_WOFF] >= 0 and ki[k, K_SOFF] >= 0:
            Fbf = fb[B * opre:B * (opre + n_pre)]
            if g[pre, G_FBW] == 0:
                for j in range(B * n_pre):
                    Fbf[j] = 0.0
                g[pre, G_FBW] = 1
            if HAS_SPARSE:
                csr_feedback(E, W, ki[k, K_WOFF], S, ki[k, K_SOFF], view2d(Fbf, 0, B, n_pre), kf[k, KF_MULT])
        elif ki[k, K_WOFF] >= 0:
            Wk = wblk(W, ki[k, K_WOFF], n_post, n_pre)
            m = kf[k, KF_MULT]
            Fbf = fb[B * opre:B * (opre + n_pre)]
            if g[pre, G_FBW] == 0:
                _mm_ab(E, Wk, view2d(Fbf, 0, B, n_pre))
                if m != 1.0:
                    for j in range(B * n_pre):
                        Fbf[j] *= m
                g[pre, G_FBW] = 1
            else:
                T = tmp[:B * n_pre]
                _mm_ab(E, Wk, view2d(T, 0, B, n_pre))
                for j in range(B * n_pre):
                    Fbf[j] += m * T[j]
        if ki[k, K_SKIP] != 0:
            add_into(blk(sfb, B, opre, n_pre), E)


@njit(**_jit)
def _drive(code, a, Xb, Eb, Pb, Fb, Sb, T, beta, hf, hs, nudge, D):
    """The drive of one population's (B, n) views into ``D`` (dx/dt before the division by tau_x):

    D = -eps + phi'(x) fb [if hf] + sfb [if hs] + beta (t - x) [if nudge].

    One loop per term, each adding to ``D`` in this order: a single loop testing the three flags and the
    activation per element is compiled by LLVM in one copy per combination of them (loop unswitching), which made
    this small function the largest of the kernel.
    """
    B, n = Xb.shape
    for s in range(B):
        for j in range(n):
            D[s, j] = -Eb[s, j]
    if hf:
        for s in range(B):
            for j in range(n):
                D[s, j] += dphi_from(code, a, Xb[s, j], Pb[s, j]) * Fb[s, j]
    if hs:
        for s in range(B):
            for j in range(n):
                D[s, j] += Sb[s, j]
    if nudge:
        for s in range(B):
            for j in range(n):
                D[s, j] += beta * (T[s, j] - Xb[s, j])


@njit(**_jit)
def _drive_block(i, B, x, eps, phx, fb, sfb, t, dx, mode, beta, pi, pf, g):
    """dx/dt of a moving population i into dx (general path)."""
    n = pi[i, P_SIZE]
    uo = pi[i, P_OFF]
    nudge = pi[i, P_ROLE] == ROLE_TARGET and mode == MODE_NUDGE
    D = blk(dx, B, uo, n)
    _drive(pi[i, P_PHI], pf[i, PF_PARAM], blk(x, B, uo, n), blk(eps, B, uo, n), blk(phx, B, uo, n),
           blk(fb, B, uo, n), blk(sfb, B, uo, n), t, beta, g[i, G_FB] != 0, g[i, G_SFB] != 0, nudge, D)
    c = 1.0 / pf[i, PF_TAUX]
    Df = dx[B * uo:B * (uo + n)]
    for j in range(B * n):
        Df[j] = c * Df[j]


@njit(**_jit)
def _euler_tanh_block(xs, es, ps, fs, dt_tau):
    """Fused: x += dt/tau (-eps + (1 - phx^2) fb); phx = tanh(x).  The hot loop of a tanh layer.

    Computed in the arrays' precision: ``dt_tau`` (a float64 setting) and the constant 1 are cast first, so a
    float32 run neither promotes every element to float64 nor takes tanh in float64 (5x slower, half the
    vector lanes); float64 runs compute exactly what they did."""
    cast = xs.dtype.type
    c = cast(dt_tau)
    one = cast(1)
    for q in range(xs.shape[0]):
        f = ps[q]
        xn = xs[q] + c * (-es[q] + (one - f * f) * fs[q])
        xs[q] = xn
        ps[q] = tanh(xn)


@njit(**_jit)
def _euler_fused(B, x, es, eps, phx, fb, sfb, deps, dx, t, dt, mode, beta, pi, pf, g):
    """Euler step of every unit, then phi(x): tanh layers with the drive computed on the fly, the others with
    the drive in ``dx`` (scratch on this path) first."""
    npop = pi.shape[0]
    for i in range(npop):
        n = pi[i, P_SIZE]
        uo = pi[i, P_OFF]
        o = B * uo
        m = B * n
        if pf[i, PF_TAUE] > 0 and pi[i, P_ERR] != 0:
            ev = es[o:o + m]
            dv = deps[o:o + m]
            for q in range(m):
                ev[q] += dt * dv[q]
        if g[i, G_FIXED] != 0:
            continue
        code = pi[i, P_PHI]
        a = pf[i, PF_PARAM]
        hf = g[i, G_FB] != 0
        hs = g[i, G_SFB] != 0
        nudge = pi[i, P_ROLE] == ROLE_TARGET and mode == MODE_NUDGE
        if code == 1 and hf and not hs and not nudge and g[i, G_PHX] != 0:
            _euler_tanh_block(x[o:o + m], eps[o:o + m], phx[o:o + m], fb[o:o + m], dt / pf[i, PF_TAUX])
            continue
        _drive(code, a, blk(x, B, uo, n), blk(eps, B, uo, n), blk(phx, B, uo, n), blk(fb, B, uo, n),
               blk(sfb, B, uo, n), t, beta, hf, hs, nudge, blk(dx, B, uo, n))
        c = dt * (1.0 / pf[i, PF_TAUX])
        xv = x[o:o + m]
        dv = dx[o:o + m]
        for q in range(m):
            xv[q] += c * dv[q]
        if g[i, G_PHX] != 0:
            phi_block(code, a, x, phx, o, m)


@njit(**_jit)
def _moving_derivs(B, x, eps, phx, fb, sfb, tmp, t, dx, mode, beta, pi, pf, ki, kf, W, g, fused_done, S):
    """Feedback and dx/dt of every moving population (the general path: tol, Heun)."""
    _feedback(B, eps, fb, sfb, tmp, g, fused_done, pi, ki, kf, W, S)
    for i in range(pi.shape[0]):
        if g[i, G_FIXED] == 0:
            _drive_block(i, B, x, eps, phx, fb, sfb, t, dx, mode, beta, pi, pf, g)


@njit(**_jit)
def _phi_all(B, x, phx, pi, pf, g, only_moving):
    for i in range(pi.shape[0]):
        if g[i, G_PHX] != 0 and not (only_moving and g[i, G_FIXED] != 0):
            phi_block(pi[i, P_PHI], pf[i, PF_PARAM], x, phx, B * pi[i, P_OFF], B * pi[i, P_SIZE])
