"""One batch of the numba core in one jitted call: initialise, relax (Euler or Heun, fixed steps or until
max |dx/dt| < tol), record probes, check divergence, learn (see :mod:`neurosim.backends.numba`)."""
from __future__ import annotations

import numpy as np

from ...config import JIT_OPTIONS
from ...plan import ROLE_FREE, ROLE_INPUT, ROLE_TARGET
from ..base import EULER, INIT_PREVIOUS, INIT_ZEROS, MODE_CLAMP
from ..tables import K_PRE, K_SKIP, K_SOFF, K_WOFF, P_ERR, P_OFF, P_PHI, P_ROLE, P_SIZE, PF_PARAM, PF_TAUE
from ._common import all_finite, blk, decayed_dt, energy_total, first_nonfinite, load_inputs, read_pop, report
from ._products import SMALL_BATCH
from ._specialise import specialise
from .activations import phi_block

from ._passes import (G_FB, G_FIXED, G_FUSED, G_MUC, G_PHX, G_SFB, _euler_fused, _feedback, _forward,
                      _instant_errors, _moving_derivs, _phi_all, _predict)
from ._plasticity import _hebbian

_jit = JIT_OPTIONS

# integer and float run settings (packed so that the kernel has one signature per dtype)
I_HAVE_PREV, I_MODE, I_INIT, I_NSTEPS, I_INTEG, I_LEARN, I_PEVERY, I_PITEM, I_TARGET = range(9)
F_BETA, F_TOL, F_DT, F_DECAY = range(4)
# rows of the work array (every run) and of work2 (only Heun steps use it; 1 column otherwise)
X, ES, MU, EPS, PHX, FB, SFB, DX, DEPS = range(9)
X2, ES2, DX2, DEPS2 = range(4)
N_WORK, N_WORK2 = 9, 4
#: ``iargs[I_LEARN]``: 0 relax only, 1 relax then learn, LEARN_ONLY learn from the eps and phi(x) in ``work`` without
#: initialising or relaxing (the last call of a batch relaxed in row blocks)
LEARN_ONLY = 2


def _make_kernel(general: bool):
    """The batch kernel of one *variant* (a Python function; :func:`kernel` jits it): ``general`` compiles the
    general relaxation path (Heun steps, or a tolerance ``tol > 0``) instead of the fused Euler path.  Both variants
    hold both batch paths (the hand-written loops of batches up to :data:`SMALL_BATCH`, the fused
    prediction/error/feedback pass among them, and the BLAS products of larger ones), chosen per call.

    A variant compiles only the code its runs can take: ``general`` is a constant of the closure, so numba prunes
    the branches it rules out before typing them.  Each variant is cached on disk on its own (numba keys a closure's
    cache entries by the values it closes over) and has one signature per dtype."""

    def run_batch_kernel(s, t, iargs, fargs, pi, pf, prec, ki, kf, ki_start, ki_end, S, inputs, input_off,
                         W, b, mW, vW, mb, vb, opt_t, work, work2, tmp, gtmp, energies, rec, rec_steps, y0, y, out):
        """One batch: initialise, relax ``n_steps`` (or until max|d/dt| < tol), optionally learn.

        ``iargs`` = (have_prev, mode, init, n_steps, integrator, learn, probe_every, probe_item, target_pop), ``learn``
        0 (relax), 1 (relax, then learn) or :data:`LEARN_ONLY`,
        ``fargs`` = (beta, tol, dt, dt_decay); ``work`` holds the 9 state buffers (see ``X``..``DEPS``) and
        ``work2`` the 4 of Heun's predictor step (``X2``..``DEPS2``);
        ``S`` is the index vector of sparse projections (:func:`neurosim.backends.tables.sparse_index`);
        ``rec`` is (n_records, 3, n_units): x, eps, mu of the probed item, one record per row.  ``out`` receives
        (steps, status, fail_step, fail_pop, n_records).
        """
        B = s.shape[0]
        npop = pi.shape[0]
        nproj = ki.shape[0]
        have_prev = iargs[I_HAVE_PREV] != 0
        mode = iargs[I_MODE]
        init = iargs[I_INIT]
        n_steps = iargs[I_NSTEPS]
        integrator = iargs[I_INTEG]
        learn = iargs[I_LEARN] != 0
        learn_only = iargs[I_LEARN] == LEARN_ONLY
        probe_every = iargs[I_PEVERY]
        probe_item = iargs[I_PITEM]
        target_pop = iargs[I_TARGET]
        beta = fargs[F_BETA]
        tol = fargs[F_TOL]
        dt = fargs[F_DT]
        dt_decay = fargs[F_DECAY]
        x = work[X]
        es = work[ES]
        mu = work[MU]
        eps = work[EPS]
        phx = work[PHX]
        fb = work[FB]
        sfb = work[SFB]
        dx = work[DX]
        deps = work[DEPS]
        x2 = work2[X2]
        es2 = work2[ES2]
        dx2 = work2[DX2]
        deps2 = work2[DEPS2]
        N = x.shape[0]

        # ---- the state's buffers only: learn from eps and phi(x) already in ``work`` (a batch relaxed in row
        #      blocks, see NumbaBackend._run_split)
        status = 0
        fail_step = -1
        fail_pop = -1
        steps = 0
        r = 0
        if not learn_only:
            # ---- which work can change during this relaxation (see the G_* columns)
            g = np.zeros((npop, 7), dtype=np.int64)
            for i in range(npop):
                role = pi[i, P_ROLE]
                if role == ROLE_INPUT or (role == ROLE_TARGET and mode == MODE_CLAMP):
                    g[i, G_FIXED] = 1   # x does not move (inputs, clamped target)
            for k in range(nproj):
                pre = ki[k, K_PRE]
                if ki[k, K_WOFF] >= 0:
                    g[pre, G_PHX] = 1   # phi(x) feeds a weighted projection
                    g[pre, G_FB] = 1    # receives weighted feedback
                if ki[k, K_SKIP] != 0:
                    g[pre, G_SFB] = 1   # receives skip feedback
            for i in range(npop):
                if pi[i, P_ROLE] == ROLE_INPUT:
                    continue
                c = 1
                for k in range(ki_start[i], ki_end[i]):
                    if g[ki[k, K_PRE], G_FIXED] == 0:
                        c = 0
                g[i, G_MUC] = c         # every input of the prediction is fixed: mu is computed once
                k = ki_start[i]
                if (B <= SMALL_BATCH and c == 0 and ki_end[i] - k == 1 and ki[k, K_WOFF] >= 0 and ki[k, K_SKIP] == 0
                        and ki[k, K_SOFF] < 0 and pi[i, P_ERR] != 0 and pf[i, PF_TAUE] <= 0):
                    g[i, G_FUSED] = k + 1   # prediction, error and feedback in one pass over W_k
            energy = np.zeros(npop)
            energy2 = np.zeros(npop)
            sfb[:] = 0.0
            dx[:] = 0.0
            dx2[:] = 0.0
            deps2[:] = 0.0

            # ---- initial state
            prev = init == INIT_PREVIOUS and have_prev
            if not prev:
                x[:] = 0.0
                es[:] = 0.0
                deps[:] = 0.0
                eps[:] = 0.0
            load_inputs(s, x, B, pi, inputs, input_off)
            if not prev:
                # one forward sweep in topological order: x_i = mu_i
                for i in range(npop):
                    role = pi[i, P_ROLE]
                    o = B * pi[i, P_OFF]
                    n = pi[i, P_SIZE]
                    if role != ROLE_INPUT:
                        _predict(i, B, x, phx, mu, tmp, pi, ki, kf, ki_start, ki_end, W, b, S)
                        xv = x[o:o + B * n]
                        mv = mu[o:o + B * n]
                        for j in range(B * n):   # (a loop: an array assignment compiles a shape check and its message)
                            xv[j] = mv[j]
                    if g[i, G_PHX] != 0:
                        phi_block(pi[i, P_PHI], pf[i, PF_PARAM], x, phx, o, B * n)
            # what changed after the sweep: its predictions and phi are recomputed (everything after a 'previous' start)
            dirty = np.zeros(npop, dtype=np.int64)
            if prev:
                dirty[:] = 1
            if mode == MODE_CLAMP and target_pop >= 0:
                n = pi[target_pop, P_SIZE]
                Xt = blk(x, B, pi[target_pop, P_OFF], n)
                for q in range(B):
                    for j in range(n):
                        Xt[q, j] = t[q, j]
                dirty[target_pop] = 1
            if init == INIT_ZEROS:
                for i in range(npop):
                    role = pi[i, P_ROLE]
                    if role == ROLE_FREE or (role == ROLE_TARGET and mode != MODE_CLAMP):
                        o = B * pi[i, P_OFF]
                        x[o:o + B * pi[i, P_SIZE]] = 0.0
                        dirty[i] = 1
            for i in range(npop):
                if dirty[i] != 0 and g[i, G_PHX] != 0:
                    phi_block(pi[i, P_PHI], pf[i, PF_PARAM], x, phx, B * pi[i, P_OFF], B * pi[i, P_SIZE])
            for i in range(npop):
                if pi[i, P_ROLE] == ROLE_INPUT:
                    continue
                redo = prev
                for k in range(ki_start[i], ki_end[i]):
                    if dirty[ki[k, K_PRE]] != 0:
                        redo = True
                if redo:
                    _predict(i, B, x, phx, mu, tmp, pi, ki, kf, ki_start, ki_end, W, b, S)
            if not prev:
                # error units start at their instantaneous value
                for i in range(npop):
                    if pi[i, P_ERR] != 0 and pf[i, PF_TAUE] > 0:
                        n = pi[i, P_SIZE]
                        uo = pi[i, P_OFF]
                        _instant_errors(blk(x, B, uo, n), blk(mu, B, uo, n), blk(es, B, uo, n), prec[uo:uo + n])
            # run-time booleans: a literal True/False argument would compile a second copy of the callee
            yes = B >= 0
            no = B < 0
            fused_done = _forward(B, x, es, mu, eps, phx, fb, deps, tmp, energy, g, pi, pf, prec, ki, kf, ki_start, ki_end,
                                  W, b, no, S)  # every prediction is already up to date
            if target_pop >= 0:
                read_pop(mu, target_pop, B, pi, y0)

            # ---- relaxation
            for k in range(n_steps + 1):
                for i in range(npop):
                    energies[k, i] = energy[i]
                if probe_every > 0 and probe_item < B and k % probe_every == 0:
                    for i in range(npop):
                        n = pi[i, P_SIZE]
                        uo = pi[i, P_OFF]
                        o = B * uo + probe_item * n
                        for j in range(n):
                            rec[r, 0, uo + j] = x[o + j]
                            rec[r, 1, uo + j] = eps[o + j]
                            rec[r, 2, uo + j] = mu[o + j]
                    rec_steps[r] = k
                    r += 1
                # as the reference: the first population with a non-finite energy, else with a non-finite value.
                # A non-finite value in a population with error units makes its energy non-finite, so only the
                # values of populations without error units need scanning.
                bad = first_nonfinite(energy)
                if bad < 0:
                    for i in range(npop):
                        if pi[i, P_ERR] != 0 or (g[i, G_FIXED] != 0 and k > 0):  # fixed values were checked at step 0
                            continue
                        o = B * pi[i, P_OFF]
                        if not all_finite(x[o:o + B * pi[i, P_SIZE]]):
                            bad = i
                            break
                if bad >= 0:
                    status, fail_step, fail_pop = 1, k, bad
                    break
                if k == n_steps:
                    break
                if not general:
                    _feedback(B, eps, fb, sfb, tmp, g, fused_done, pi, ki, kf, W, S)
                    _euler_fused(B, x, es, eps, phx, fb, sfb, deps, dx, t, dt, mode, beta, pi, pf, g)
                else:
                    _moving_derivs(B, x, eps, phx, fb, sfb, tmp, t, dx, mode, beta, pi, pf, ki, kf, W, g, fused_done, S)
                    if tol > 0:
                        rate = 0.0
                        for j in range(N):
                            v = abs(dx[j])
                            rate = v if v > rate else rate
                            v = abs(deps[j])
                            rate = v if v > rate else rate
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
                        _phi_all(B, x2, phx, pi, pf, g, yes)
                        fused_done = _forward(B, x2, es2, mu, eps, phx, fb, deps2, tmp, energy2, g, pi, pf, prec, ki, kf,
                                              ki_start, ki_end, W, b, yes, S)
                        _moving_derivs(B, x2, eps, phx, fb, sfb, tmp, t, dx2, mode, beta, pi, pf, ki, kf, W, g,
                                       fused_done, S)
                        h = 0.5 * dt
                        for j in range(N):
                            x[j] += h * (dx[j] + dx2[j])
                            es[j] += h * (deps[j] + deps2[j])
                    _phi_all(B, x, phx, pi, pf, g, yes)
                steps += 1
                prev_total = energy_total(energy)
                fused_done = _forward(B, x, es, mu, eps, phx, fb, deps, tmp, energy, g, pi, pf, prec, ki, kf, ki_start,
                                      ki_end, W, b, yes, S)
                dt = decayed_dt(dt, dt_decay, prev_total, energy)
            # keep the actual errors in es: they are the error state a 'previous' start continues from
            for j in range(N):
                es[j] = eps[j]
            if target_pop >= 0:
                read_pop(x, target_pop, B, pi, y)
        # ---- plasticity from the final state
        if learn and status == 0:
            _hebbian(B, eps, phx, gtmp, pi, ki, kf, W, b, mW, vW, mb, vb, opt_t, S)
        report(out, steps, status, fail_step, fail_pop, r)

    return run_batch_kernel


_KERNELS = {}


def kernel(general: bool, sparse: bool = True):
    """The batch kernel of a variant (see :func:`_make_kernel`), built once per process.

    ``general``: the run integrates with Heun or stops at a tolerance (``integrator != EULER or tol > 0``); other
    runs take the fused Euler path, which is what ``Simulator.learn`` and the experiments' training batches run.
    ``sparse``: the circuit has sparse projections; a kernel compiled without (``HAS_SPARSE`` false in its passes,
    see :mod:`._specialise`) has none of their code and compiles in about 2 s less.  Both are properties of the run
    and the circuit, never of the batch: a run's numbers do not depend on which kernels happen to be compiled or
    cached.  (Kernels specialised by batch kind, small batches or BLAS, compiled in 0.75-0.9 of the time, but a
    training run whose last batch is small, or that evaluates on another batch size, would compile both.  So
    there are none.)"""
    key = (bool(general), bool(sparse))
    k = _KERNELS.get(key)
    if k is None:
        k = _KERNELS[key] = specialise(_make_kernel(key[0]), {"HAS_SPARSE": key[1]}, _jit)
    return k
