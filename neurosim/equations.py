r"""The equations of neurosim, in NumPy: the one statement of the model that the reference backend runs.

Read this module to learn what every backend computes; :class:`~neurosim.backends.reference.ReferenceBackend`
runs it (it adds only the relaxation loop: synchronous Euler or Heun steps, probes, ``tol``, ``dt_decay`` and the
divergence check), the NumPy engines of the schedules in :mod:`neurosim.algorithms` (``pc``, ``strict``, ``fpa``,
``zil``, ``ipc``) call the same class, and the compiled backends are tested against it.

The model (layered / DAG circuits)
----------------------------------
A circuit is a DAG of populations :math:`x_i` (state arrays are ``(B, n_units)``, one row per batch item,
populations are column slices) joined by projections :math:`k: pre \to post` with weight :math:`W_k`, optional
bias :math:`b_k`, multiplier :math:`a_k` and optional identity skip.  Every population with error units has the
energy

.. math::  F = \sum_i \tfrac12 \pi_i \lVert x_i - \mu_i \rVert^2 \quad(\text{mean over the batch}),\qquad
           \mu_i = \sum_{k \to i} a_k W_k\, \phi(x_{pre(k)}) + b_k \;(+\, x_{pre(k)} \text{ for a skip}),

with :math:`\pi_i` the (per-unit) precision and :math:`\phi` the activation of the *presynaptic* population
(:meth:`LayeredEquations.predictions`, :meth:`LayeredEquations.errors`).

Errors
    instantaneous error units: :math:`\varepsilon_i = \pi_i (x_i - \mu_i)`; error units with dynamics
    (``tau_eps > 0``) carry their own state, :math:`\tau_\varepsilon\, d\varepsilon_i/dt = (x_i - \mu_i) -
    \varepsilon_i/\pi_i`, whose fixed point is the instantaneous error.  Inputs and populations without error
    units have :math:`\varepsilon = 0`.
Feedback
    :math:`J^T\varepsilon`: population :math:`l` receives :math:`\phi'(x_l) \odot \sum_{k: l \to m} a_k W_k^T
    \varepsilon_m` plus :math:`\varepsilon_m` for every skip out of it (:meth:`LayeredEquations.feedback`).
Value dynamics
    :math:`\tau_x\, dx_l/dt = -\varepsilon_l + \phi'(x_l)\odot\sum a W^T\varepsilon_{post} + \sum_{skips}
    \varepsilon_{post}\;(+\,\beta (t - x_l)` for a nudged target), which is :math:`-\partial F/\partial x_l`
    for instantaneous errors (:meth:`LayeredEquations.drive`, :meth:`LayeredEquations.derivatives`).  Inputs are
    clamped to the data; the target population is clamped to ``t`` (mode ``"clamp"``), nudged (``"nudge"``) or
    free (``"free"``).
Hebbian directions
    :math:`g_{W_k} = a_k\, c_B\, \varepsilon_{post}^T \phi(x_{pre})`, :math:`g_{b_k} = c_B \sum_{batch}
    \varepsilon_{post}` with :math:`c_B = 1/B` (``batch_reduction="mean"``) or 1 (``"sum"``); for instantaneous
    errors :math:`g = -\partial F/\partial W` (times :math:`B` for the sum) (:meth:`LayeredEquations.directions`).
Optimiser
    :func:`optimizer_step` ascends :math:`g`: weight decay :math:`g \leftarrow g - \lambda\theta`, then SGD
    :math:`\theta \mathrel{+}= \eta g`, momentum :math:`m \leftarrow \mu m + g,\ \theta \mathrel{+}= \eta m`, or
    Adam (bias-corrected moments, :math:`\theta \mathrel{+}= \eta \hat m / (\sqrt{\hat v} + \epsilon)`).

Sparse projections
    A sparse projection (``Projection(connectivity=...)``, :mod:`neurosim.connectivity`) is the dense one with
    the weights off its pattern fixed at zero: the same prediction and feedback (computed with
    ``scipy.sparse`` products) and the Hebbian direction only on its synapses,
    :math:`g_{ij} = a_k c_B \sum_b \varepsilon_{b,i}\, \phi(x_{b,j})` for :math:`j \in \mathrm{in}(i)`, a vector
    of ``nnz`` values in CSR order (the optimiser acts on it as on a dense matrix's entries).

Graph circuits
--------------
Graph circuits (:mod:`neurosim.graph`) have the same energy, errors, value dynamics and optimiser, with a vertex
function :math:`g_i` per vertex in place of the affine prediction.  The per-kind array math of their projections
is stated here too: convolution :func:`conv2d`, its transpose :func:`conv2d_vjp` (feedback) and its kernel term
:func:`conv2d_kernel_grad` (Hebbian direction), max and average pooling :func:`pool` and :func:`pool_vjp`.  How
each vertex kind combines them -- dense, conv, scale, bias, product, activation and pooling vertices, with the
table of each kind's prediction, feedback and parameter term, and the per-read noise of weighted edges -- is
stated in :mod:`neurosim.graph.ops` (:func:`~neurosim.graph.ops.vertex_forward`,
:func:`~neurosim.graph.ops.vertex_vjp`, :func:`~neurosim.graph.ops.vertex_param_grads`), and the schedules
that run them on a graph in :mod:`neurosim.graph.reference`.
"""
from __future__ import annotations

import numpy as np

from . import activations as act
from .backends.base import MODE_CLAMP, MODE_NUDGE
from .plan import OPT_ADAM, ROLE_FREE, ROLE_INPUT

__all__ = ["LayeredEquations", "optimizer_step", "first_bad", "max_rate", "conv2d", "conv2d_vjp",
           "conv2d_kernel_grad", "pool", "pool_vjp"]

_PHI = {a.code: a.name for a in act.ACTIVATIONS.values()}


# ----------------------------------------------------------------------------------------------- optimiser
def optimizer_step(param, g, m, v, t, lr, kind, opt):
    """One optimiser step *ascending* the Hebbian direction ``g`` (= -dF/dparam), in place.

    ``opt`` = (momentum, weight_decay, beta1, beta2, eps); ``t`` is the 1-based step count (Adam).
    """
    momentum, wd, beta1, beta2, eps = opt
    if wd > 0:
        g = g - wd * param
    if kind == OPT_ADAM:
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * g * g
        mhat = m / (1 - beta1 ** t)
        vhat = v / (1 - beta2 ** t)
        param += lr * mhat / (np.sqrt(vhat) + eps)
    else:
        if momentum > 0:
            m *= momentum
            m += g
            g = m
        param += lr * g


# ----------------------------------------------------------------------------------------------- divergence, rates
def first_bad(energy, x, sl) -> int:
    """Index of the first population with a non-finite energy, else with a non-finite value (columns ``sl[i]``
    of ``x``), else -1: the population a diverging run reports."""
    bad = ~np.isfinite(energy)
    if bad.any():
        return int(np.argmax(bad))
    for i, cols in enumerate(sl):
        if not np.all(np.isfinite(x[:, cols])):
            return i
    return -1


def max_rate(dx, deps) -> float:
    r""":math:`\max(|dx/dt|, |d\varepsilon/dt|)` over every unit (0 for empty arrays): a run with ``tol`` stops
    once it falls below ``tol``."""
    return max(np.max(np.abs(dx)) if dx.size else 0.0, np.max(np.abs(deps)) if deps.size else 0.0)


# ----------------------------------------------------------------------------------------------- layered circuits
class LayeredEquations:
    """The equations of a layered/DAG circuit on ``(B, n_units)`` arrays (populations are column slices).

    ``backend`` supplies the plan and the parameters (``weight(k)``, ``bias(k)`` views of ``W`` / ``b`` and the
    optimiser state ``mW, vW, mb, vb, opt_t``), so in-place weight updates are seen immediately; ``prec``
    replaces the plan's per-unit precisions (e.g. a weak output precision of a schedule).
    """

    def __init__(self, backend, prec=None):
        self.be = backend
        self.p = p = backend.plan
        self.dtype = backend.dtype
        self.sl = [slice(int(p.pop_off[i]), int(p.pop_off[i] + p.pop_size[i])) for i in range(p.n_pops)]
        self.prec = (p.precision if prec is None else prec).astype(self.dtype)
        self.names = [_PHI[int(c)] for c in p.pop_phi]
        #: per-unit time constant tau_x (in the state's dtype, for the schedules' steps ``eta / tau``)
        self.tau = np.concatenate([np.full(int(p.pop_size[i]), p.pop_tau_x[i]) for i in range(p.n_pops)]
                                  ).astype(self.dtype)
        # the same in float64: dx/dt divides by the circuit's tau_x itself (a float32 state is rounded once, after)
        self._tau64 = np.concatenate([np.full(int(p.pop_size[i]), p.pop_tau_x[i]) for i in range(p.n_pops)]
                                     ).astype(np.float64)
        self.tsl = self.sl[p.target_pop] if p.target_pop >= 0 else slice(0, 0)
        self.err_units = np.zeros(p.n_units, dtype=bool)      # units with error units
        self.move_clamp = np.zeros(p.n_units, dtype=bool)     # units that move when the target is clamped
        for i in range(p.n_pops):
            if p.pop_has_err[i]:
                self.err_units[self.sl[i]] = True
            if p.pop_role[i] == ROLE_FREE:
                self.move_clamp[self.sl[i]] = True
        self.move_nudge = self.move_clamp.copy()              # ... when it is nudged or free
        self.move_nudge[self.tsl] = True
        #: populations whose error units have dynamics (tau_eps > 0)
        self.slow_err = [i for i in range(p.n_pops) if p.pop_has_err[i] and p.pop_tau_eps[i] > 0]

    # -- activations
    def _per_population(self, fn, x):
        """``fn(activation name, columns)`` applied to each population's columns of ``x``."""
        out = np.empty_like(x)
        for i, sl in enumerate(self.sl):
            out[:, sl] = fn(self.names[i], x[:, sl])
        return out

    def phi(self, x):
        r""":math:`\phi(x)` with each population's activation."""
        return self._per_population(act.phi, x)

    def dphi(self, x):
        r""":math:`\phi'(x)` with each population's activation."""
        return self._per_population(act.dphi, x)

    # -- predictions
    def _add_contrib(self, k, x, phx, out):
        """``out += a_k W_k phi(x_pre) + b_k (+ x_pre for a skip)``: projection ``k``'s share of ``mu_post``."""
        p = self.p
        pre = self.sl[p.proj_pre[k]]
        if p.w_off[k] >= 0:
            if p.is_sparse(k):   # (W phi^T)^T with W a csr_array: only the synapses are read
                out += p.proj_mult[k] * np.asarray(self.be.weight(k) @ phx[:, pre].T).T
            else:
                out += p.proj_mult[k] * (phx[:, pre] @ self.be.weight(k).T)
        if p.b_off[k] >= 0:
            out += self.be.bias(k)
        if p.proj_skip[k]:
            out += x[:, pre]

    def predictions(self, x, phx=None):
        r""":math:`\mu_i = \sum_{k\to i} a_k W_k \phi(x_{pre}) + b_k\,(+\,x_{pre})` of every population (0 for
        inputs); ``phx`` is :math:`\phi(x)` if already computed."""
        p = self.p
        phx = self.phi(x) if phx is None else phx
        mu = np.zeros_like(x)
        for k in range(p.n_proj):
            self._add_contrib(k, x, phx, mu[:, self.sl[p.proj_post[k]]])
        return mu

    def forward(self, X):
        """One feedforward sweep in topological order (inputs clamped to ``X``, every other population set to
        its prediction); returns ``(x, phi(x))``."""
        p = self.p
        B = X.shape[0]
        x = np.zeros((B, p.n_units), dtype=self.dtype)
        phx = np.zeros_like(x)
        for j, i in enumerate(p.input_pops):
            x[:, self.sl[i]] = X[:, p.input_off[j]:p.input_off[j] + p.pop_size[i]]
        for i in range(p.n_pops):   # topological order
            if p.pop_role[i] != ROLE_INPUT:
                for k in range(p.in_start[i], p.in_end[i]):
                    self._add_contrib(k, x, phx, x[:, self.sl[i]])
            phx[:, self.sl[i]] = act.phi(self.names[i], x[:, self.sl[i]])
        return x, phx

    def feedforward(self, X, t=None, mode=MODE_CLAMP):
        """:meth:`forward` values with the target clamped to ``t`` in mode ``"clamp"``."""
        x, _ = self.forward(X)
        if mode == MODE_CLAMP and self.p.target_pop >= 0:
            x[:, self.tsl] = t
        return x

    # -- errors and energy
    def errors(self, x, mu, eps_state=None):
        r"""``(eps, energy per population)``.

        :math:`\varepsilon = \pi (x - \mu)` on the units with error units (0 elsewhere); populations with
        ``tau_eps > 0`` take their error from ``eps_state`` when given.  The energy of population :math:`i` is
        :math:`\tfrac{1}{2B}\sum_{b} \pi_i \lVert x_i - \mu_i\rVert^2` (0 without error units).
        """
        d = np.where(self.err_units, x - mu, 0.0)
        eps = self.prec * d
        if eps_state is not None:
            for i in self.slow_err:
                eps[:, self.sl[i]] = eps_state[:, self.sl[i]]
        B = x.shape[0]
        energy = np.array([0.5 * np.sum(self.prec[sl] * d[:, sl] ** 2) / B for sl in self.sl])
        return eps, energy

    def error_rates(self, x, mu, eps):
        r""":math:`d\varepsilon/dt = ((x - \mu) - \varepsilon/\pi)/\tau_\varepsilon` of the populations with
        ``tau_eps > 0`` (0 elsewhere)."""
        deps = np.zeros_like(x)
        for i in self.slow_err:
            sl = self.sl[i]
            deps[:, sl] = ((x[:, sl] - mu[:, sl]) - eps[:, sl] / self.prec[sl]) / self.p.pop_tau_eps[i]
        return deps

    def initial_errors(self, x):
        """The error-unit state a relaxation starts from: the instantaneous error at ``x`` (0 without units)."""
        return self.errors(x, self.predictions(x))[0]

    # -- feedback and value dynamics
    def feedback_terms(self, eps):
        r"""``(fb, sfb)``: :math:`\sum_{k: l\to m} a_k W_k^T \varepsilon_m` and the skip feedback
        :math:`\sum_{skips\ l \to m} \varepsilon_m` of every population :math:`l`."""
        p = self.p
        fb = np.zeros_like(eps)
        sfb = np.zeros_like(eps)
        for k in range(p.n_proj):
            pre, post = self.sl[p.proj_pre[k]], self.sl[p.proj_post[k]]
            if p.w_off[k] >= 0:
                if p.is_sparse(k):
                    fb[:, pre] += p.proj_mult[k] * np.asarray(self.be.weight(k).T @ eps[:, post].T).T
                else:
                    fb[:, pre] += p.proj_mult[k] * (eps[:, post] @ self.be.weight(k))
            if p.proj_skip[k]:
                sfb[:, pre] += eps[:, post]
        return fb, sfb

    def feedback(self, eps, dph):
        r""":math:`J^T\varepsilon`: ``dphi * sum a W^T eps_post + sum eps_post (skips)`` for every population."""
        fb, sfb = self.feedback_terms(eps)
        return dph * fb + sfb

    def drive(self, x, eps, dph, mode=MODE_CLAMP, beta=0.0, t=None):
        r""":math:`\tau_x\, dx/dt = -\varepsilon + \phi'(x)\odot\sum a W^T\varepsilon_{post} + \sum_{skips}
        \varepsilon_{post}` of the moving populations (0 for inputs and a clamped target); in mode ``"nudge"``
        the target adds :math:`\beta (t - x)`.  ``dph`` is :math:`\phi'(x)`."""
        fb, sfb = self.feedback_terms(eps)
        d = -eps + dph * fb + sfb
        move = self.move_clamp if mode == MODE_CLAMP else self.move_nudge
        d = np.where(move, d, 0.0)
        if mode == MODE_NUDGE:
            d[:, self.tsl] += beta * (t - x[:, self.tsl])
        return d

    def derivatives(self, x, eps_state, t, mode=MODE_CLAMP, beta=0.0):
        """``(dx/dt, deps/dt, eps, mu, energy per population)`` at the state ``(x, eps_state)``."""
        mu = self.predictions(x)
        eps, energy = self.errors(x, mu, eps_state)
        deps = self.error_rates(x, mu, eps)
        dx = (self.drive(x, eps, self.dphi(x), mode, beta, t) / self._tau64).astype(x.dtype, copy=False)
        return dx, deps, eps, mu, energy

    # -- learning
    def direction(self, k, eps, phx):
        r"""``(g_W, g_b)`` of projection ``k``: :math:`a_k c_B \varepsilon_{post}^T\phi(x_{pre})` and
        :math:`c_B\sum_{batch}\varepsilon_{post}` (None where the projection has no weight / bias).  For a sparse
        projection ``g_W`` is the ``(nnz,)`` vector of the synapses' entries, in CSR order."""
        p = self.p
        B = eps.shape[0]
        scale = 1.0 / B if p.proj_mean[k] else 1.0
        e = eps[:, self.sl[p.proj_post[k]]]
        if p.w_off[k] >= 0 and p.is_sparse(k):
            indptr, indices = p.sparse_csr(k)
            rows = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
            P = phx[:, self.sl[p.proj_pre[k]]]
            gW = p.proj_mult[k] * scale * np.einsum("bn,bn->n", e[:, rows], P[:, indices])
        else:
            gW = p.proj_mult[k] * scale * (e.T @ phx[:, self.sl[p.proj_pre[k]]]) if p.w_off[k] >= 0 else None
        gb = scale * e.sum(axis=0) if p.b_off[k] >= 0 else None
        return gW, gb

    def directions(self, eps, phx):
        """Hebbian update directions ``{k: g_W}``, ``{k: g_b}`` of every projection (batch mean or sum)."""
        gW, gb = {}, {}
        for k in range(self.p.n_proj):
            w, b = self.direction(k, eps, phx)
            if w is not None:
                gW[k] = w
            if b is not None:
                gb[k] = b
        return gW, gb

    def apply(self, k, gW, gb, factor=1.0):
        """One optimiser step of projection ``k`` along ``factor * g`` (only if it is plastic)."""
        p, be = self.p, self.be
        plastic = p.proj_plastic[k] and gW is not None
        lbias = p.proj_learn_bias[k] and gb is not None
        if not (p.proj_plastic[k] or p.proj_learn_bias[k]):
            return
        be.opt_t[k] += 1
        if plastic:
            o, n = p.w_off[k], gW.size
            sh = gW.shape
            g = gW if factor == 1.0 else factor * gW
            optimizer_step(be.W[o:o + n].reshape(sh), g, be.mW[o:o + n].reshape(sh), be.vW[o:o + n].reshape(sh),
                           be.opt_t[k], p.proj_lr[k], p.opt_kind[k], p.opt_param[k])
        if lbias:
            o, n = p.b_off[k], gb.size
            g = gb if factor == 1.0 else factor * gb
            optimizer_step(be.b[o:o + n], g, be.mb[o:o + n], be.vb[o:o + n], be.opt_t[k], p.proj_lr[k],
                           p.opt_kind[k], p.opt_param[k])

    def learn(self, x, eps):
        """The Hebbian update at the state ``(x, eps)``: every plastic projection takes one optimiser step."""
        p = self.p
        phx = self.phi(x)
        for k in range(p.n_proj):
            if p.proj_plastic[k] or p.proj_learn_bias[k]:
                gW, gb = self.direction(k, eps, phx)
                self.apply(k, gW, gb)

    def set_target(self, x, t, beta):
        """Clamp the target population to ``t`` (beta = 1) or to ``yhat + beta (t - yhat)``."""
        if beta == 1.0:
            x[:, self.tsl] = t
        else:
            yh = x[:, self.tsl].copy()
            x[:, self.tsl] = yh + beta * (t - yh)


# ----------------------------------------------------------------------------------------------- graph: convolution
def _out_size(n, k, stride, pad):
    return (n + 2 * pad - k) // stride + 1


def conv2d(a: np.ndarray, K: np.ndarray, stride: int, pad: int) -> np.ndarray:
    r"""Cross-correlation with zero padding: ``a`` (B, C_in, H, W), ``K`` (C_out, C_in, kh, kw) ->
    (B, C_out, H_out, W_out), :math:`y_{o,r,c} = \sum_{i,u,v} K_{o,i,u,v} a_{i, rs+u-p, cs+v-p}`."""
    B, Ci, H, W = a.shape
    Co, _, kh, kw = K.shape
    Ho, Wo = _out_size(H, kh, stride, pad), _out_size(W, kw, stride, pad)
    ap = np.pad(a, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((B, Co, Ho, Wo), dtype=a.dtype)
    for u in range(kh):
        for v in range(kw):
            patch = ap[:, :, u:u + stride * (Ho - 1) + 1:stride, v:v + stride * (Wo - 1) + 1:stride]
            out += np.einsum("bihw,oi->bohw", patch, K[:, :, u, v])
    return out


def conv2d_vjp(e: np.ndarray, K: np.ndarray, in_shape: tuple, stride: int, pad: int) -> np.ndarray:
    """Transpose of :func:`conv2d` with respect to its input: ``e`` (B, C_out, H_out, W_out) -> (B, C_in, H, W)."""
    B, Co, Ho, Wo = e.shape
    Ci, H, W = in_shape
    _, _, kh, kw = K.shape
    gp = np.zeros((B, Ci, H + 2 * pad, W + 2 * pad), dtype=e.dtype)
    for u in range(kh):
        for v in range(kw):
            gp[:, :, u:u + stride * (Ho - 1) + 1:stride, v:v + stride * (Wo - 1) + 1:stride] += \
                np.einsum("bohw,oi->bihw", e, K[:, :, u, v])
    return gp[:, :, pad:pad + H, pad:pad + W]


def conv2d_kernel_grad(e: np.ndarray, a: np.ndarray, kshape: tuple, stride: int, pad: int) -> np.ndarray:
    """:math:`\\sum_{b,r,c} e_{b,o,r,c}\\, a_{b,i,rs+u-p,cs+v-p}`: shape ``kshape`` (C_out, C_in, kh, kw)."""
    B, Co, Ho, Wo = e.shape
    _, _, kh, kw = kshape
    ap = np.pad(a, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    G = np.zeros(kshape, dtype=e.dtype)
    for u in range(kh):
        for v in range(kw):
            patch = ap[:, :, u:u + stride * (Ho - 1) + 1:stride, v:v + stride * (Wo - 1) + 1:stride]
            G[:, :, u, v] = np.einsum("bohw,bihw->oi", e, patch)
    return G


# ----------------------------------------------------------------------------------------------- graph: pooling
def _windows(a, k, s):
    B, C, H, W = a.shape
    Ho, Wo = (H - k) // s + 1, (W - k) // s + 1
    return np.stack([a[:, :, u:u + s * (Ho - 1) + 1:s, v:v + s * (Wo - 1) + 1:s]
                     for u in range(k) for v in range(k)]), Ho, Wo


def pool(a: np.ndarray, k: int, s: int, kind: str) -> np.ndarray:
    """Max (``kind="max"``) or average pooling of ``a`` (B, C, H, W) over ``k x k`` windows, stride ``s``."""
    win, _, _ = _windows(a, k, s)
    if kind == "max":
        return win.max(axis=0)
    return win.mean(axis=0)


def pool_vjp(e: np.ndarray, a: np.ndarray, k: int, s: int, kind: str) -> np.ndarray:
    """Transpose of the pooling Jacobian at ``a``: max routes ``e`` to the first maximum of each window."""
    win, Ho, Wo = _windows(a, k, s)
    g = np.zeros_like(a)
    if kind == "max":
        arg = np.argmax(win, axis=0)  # first maximum, as in the numba kernel
    for j in range(k * k):
        u, v = divmod(j, k)
        contrib = e * (arg == j) if kind == "max" else e / (k * k)
        g[:, :, u:u + s * (Ho - 1) + 1:s, v:v + s * (Wo - 1) + 1:s] += contrib
    return g
