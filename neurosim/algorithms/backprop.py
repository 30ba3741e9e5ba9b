r"""Backpropagation on the same network and loss: the baseline every PC comparison needs.

The network is the feedforward reading of the circuit (``x_l = mu_l`` in topological order) and the loss
is the output term of the energy at the feedforward state,
:math:`\mathcal{L} = \tfrac{\pi_L}{2}\lVert t - \hat y\rVert^2` (batch mean), so that BP and PC start from
the same number: with the output clamped, :math:`F(\hat x) = \mathcal{L}`.  Backward pass, in reverse
topological order, for any DAG of projections:

.. math::

    \delta_L = \pi_L(\hat y - t), \qquad
    \delta_{pre} \mathrel{+}= \phi'(\hat x_{pre}) \odot a\, W^T \delta_{post} \;(+\, \delta_{post}\text{ for skips}),
    \qquad \nabla_W \mathcal{L} = a\, \delta_{post}^T \phi(\hat x_{pre}).

The update uses each projection's own optimiser (SGD / Adam) with the sign convention of the Hebbian rule
(``g = -grad``), so a single-layer network gets identical updates under ``pc`` and ``bp``.
The NumPy code below is the reference; on the numba backend :func:`run_batch` runs the same step in one
compiled call, the graph kernels' backprop on the circuit's vertex form (:mod:`neurosim.algorithms._twin`),
tested equal to it to 1e-10.
"""
from __future__ import annotations

import numpy as np

from .. import activations as act
from ..backends.base import MODE_CLAMP, BatchResult
from ..equations import optimizer_step
from ..errors import UnsupportedError
from ..plan import ROLE_INPUT
from . import check_backend, register

_PHI = {a.code: a.name for a in act.ACTIVATIONS.values()}


def forward(backend, X):
    """Feedforward values (B, n_units) of every population (inputs clamped to X)."""
    p = backend.plan
    B = X.shape[0]
    x = np.zeros((B, p.n_units), dtype=backend.dtype)
    sl = [p.units(n) for n in p.pop_names]
    for j, i in enumerate(p.input_pops):
        x[:, sl[i]] = X[:, p.input_off[j]:p.input_off[j] + p.pop_size[i]]
    for i in range(p.n_pops):
        if p.pop_role[i] == ROLE_INPUT:
            continue
        mu = np.zeros((B, int(p.pop_size[i])), dtype=backend.dtype)
        for k in range(p.in_start[i], p.in_end[i]):
            pre = p.proj_pre[k]
            xs = x[:, sl[pre]]
            if p.w_off[k] >= 0:
                mu += p.proj_mult[k] * (act.phi(_PHI[int(p.pop_phi[pre])], xs) @ backend.weight(k).T)
            if p.b_off[k] >= 0:
                mu += backend.bias(k)
            if p.proj_skip[k]:
                mu += xs
        x[:, sl[i]] = mu
    return x


def gradients(backend, X, Y):
    """Loss, output, and the gradients dL/dW_k, dL/db_k (batch mean) of the feedforward network."""
    p = backend.plan
    if p.target_pop < 0:
        raise ValueError("backprop needs a circuit with a target clamp")
    sl = [p.units(n) for n in p.pop_names]
    x = forward(backend, X)
    tsl = sl[p.target_pop]
    prec = p.precision[tsl]
    y = x[:, tsl]
    B = X.shape[0]
    loss = 0.5 * np.sum(prec * (Y - y) ** 2) / B
    delta = np.zeros_like(x)
    delta[:, tsl] = prec * (y - Y)
    gW, gb = {}, {}
    for k in reversed(range(p.n_proj)):  # projections are sorted by topological position of post
        pre, post = p.proj_pre[k], p.proj_post[k]
        d = delta[:, sl[post]]
        if p.w_off[k] >= 0:
            name = _PHI[int(p.pop_phi[pre])]
            xs = x[:, sl[pre]]
            W = backend.weight(k)
            gW[k] = p.proj_mult[k] * (d.T @ act.phi(name, xs)) / B
            if p.pop_role[pre] != ROLE_INPUT:
                delta[:, sl[pre]] += act.dphi(name, xs) * (p.proj_mult[k] * (d @ W))
        if p.b_off[k] >= 0:
            gb[k] = d.sum(axis=0) / B
        if p.proj_skip[k] and p.pop_role[pre] != ROLE_INPUT:
            delta[:, sl[pre]] += d
    return loss, y, gW, gb


def apply_update(backend, gW, gb, scale_sum_B=None):
    """Apply ``-grad`` through each plastic projection's optimiser (mean reduction unless the rule says sum)."""
    p = backend.plan
    for k in range(p.n_proj):
        if not (p.proj_plastic[k] or p.proj_learn_bias[k]):
            continue
        s = 1.0 if p.proj_mean[k] or scale_sum_B is None else float(scale_sum_B)
        backend.opt_t[k] += 1
        if p.proj_plastic[k] and k in gW:
            o, n = p.w_off[k], gW[k].size
            sh = gW[k].shape
            optimizer_step(backend.W[o:o + n].reshape(sh), -s * gW[k], backend.mW[o:o + n].reshape(sh),
                           backend.vW[o:o + n].reshape(sh), backend.opt_t[k], p.proj_lr[k], p.opt_kind[k],
                           p.opt_param[k])
        if p.proj_learn_bias[k] and k in gb:
            o, n = p.b_off[k], gb[k].size
            optimizer_step(backend.b[o:o + n], -s * gb[k], backend.mb[o:o + n], backend.vb[o:o + n],
                           backend.opt_t[k], p.proj_lr[k], p.opt_kind[k], p.opt_param[k])


def _run_numba(sim, X, Y, spec) -> BatchResult:
    """The same step in one compiled call: the graph kernels' backprop on the circuit's vertex form
    (:mod:`neurosim.algorithms._twin`)."""
    from ..graph.base import ALG_BP, Schedule
    from ._common import output_settings
    from ._twin import twin_of
    st = output_settings("bp", sim.plan, {}, sim.backend.dtype)
    return twin_of(sim).run(sim, X, Y, Schedule(ALG_BP, 0, 1.0, True, bool(spec.learn)), st)[0]


def brian2_sweep(sim, X, Y, spec):
    r"""Backprop on the brian2 rate network, as the FPA error sweep that equals it exactly (Rosenbaum 2022).

    With the predictions and Jacobians frozen at the feedforward pass and a step of :math:`\tau_x/\pi`
    per unit (``eta = 1`` for unit precisions and time constants), one FPA step maps the errors to
    :math:`\varepsilon_l \leftarrow J_{l+1}^T \varepsilon_{above}` -- the backward pass, one layer per step,
    starting from :math:`\varepsilon_L = \pi_L (t - \hat y) = -\delta_L`.  After as many steps as the longest
    path from a free population to the output, :math:`\varepsilon_l = -\delta_l` everywhere (and stays: it is
    the fixed point), so the Hebbian term :math:`a\,c_B\,\varepsilon_{post}^T\phi(\hat x_{pre})` in the last
    step is minus the gradient (times :math:`B` for the sum reduction), exactly as :func:`apply_update` uses
    it.  brian2 computes the errors, their sweep, the loss (the output energy at step 0) and the update
    (:meth:`~neurosim.backends.brian2.Brian2Backend.run_sweep`); the host sets the feedforward state.
    Returns ``(BatchResult, (g_W, g_b))`` with ``g = -grad`` (summed over the batch where a rule says so).
    """
    from ._common import tables
    p = sim.plan
    for i in range(p.n_pops):
        if p.pop_role[i] != ROLE_INPUT and i != p.target_pop and not p.pop_has_err[i]:
            raise UnsupportedError(
                f"backend 'brian2' runs algorithm 'bp' as the exact FPA error sweep, which needs error units in "
                f"every free population, but {p.pop_names[i]!r} has none; give it an ErrorPopulation or use "
                "backend 'reference' or 'numba'")
    depth = tables(p).depth
    n = max([int(depth[i]) for i in range(p.n_pops) if p.pop_role[i] != ROLE_INPUT] + [0])
    tau = np.concatenate([np.full(int(p.pop_size[i]), float(p.pop_tau_x[i])) for i in range(p.n_pops)])
    gain = tau / p.precision                  # step 1 * gain / tau_x = 1 / precision: the exact shift register
    res, dirs = sim.backend.run_sweep(X, Y, spec, "fpa", n=n, step=1.0, upd_step={k: n for k in range(p.n_proj)},
                                      prec=p.precision.astype(np.float64), gain=gain)
    e = np.zeros((1, p.n_pops))
    e[0, p.target_pop] = res.energy[0, p.target_pop]   # the loss: the output energy at the feedforward state
    if res.status != 0 or not np.isfinite(e[0, p.target_pop]):
        return BatchResult(steps=0, energy=e, status=1, fail_step=0, fail_pop=int(p.target_pop), y0=res.y0,
                           y=res.y0), None
    return BatchResult(steps=0, energy=e, y0=res.y0, y=res.y0), dirs


def run_batch(sim, X, Y, spec, options) -> BatchResult:
    """One BP step on a batch; returns a BatchResult whose energy row is the loss at the output.

    On the numba backend the step runs in one compiled call (forward, backward, optimiser), equal to this
    NumPy code to rounding error; on the reference backend the NumPy code below runs; on brian2 (rate mode)
    the brian2 network computes it as the exact FPA error sweep (:func:`brian2_sweep`).  The spiking mode is
    refused (:func:`neurosim.algorithms.check_backend`): the step never runs on the host in its place.
    """
    check_backend("bp", sim, options)
    be = sim.backend
    if be.plan.target_pop < 0:
        raise ValueError("backprop needs a circuit with a target clamp")
    if spec.mode != MODE_CLAMP:   # it trained on the loss and ignored mode='nudge' and its beta
        raise ValueError("algorithm 'bp' descends the loss to the target (mode 'clamp') only: mode='nudge' and beta "
                         "have no meaning for it; leave mode='clamp'")
    if getattr(be, "name", "") == "numba":
        return _run_numba(sim, X, Y, spec)
    if getattr(be, "name", "") == "brian2":
        return brian2_sweep(sim, X, Y, spec)[0]
    loss, y, gW, gb = gradients(be, X, Y)
    if not np.isfinite(loss):
        e = np.zeros((1, be.plan.n_pops))
        e[0, be.plan.target_pop] = loss
        return BatchResult(steps=0, energy=e, status=1, fail_step=0, fail_pop=int(be.plan.target_pop), y0=y, y=y)
    if spec.learn:
        apply_update(be, gW, gb, scale_sum_B=X.shape[0])
    e = np.zeros((1, be.plan.n_pops))
    e[0, be.plan.target_pop] = loss
    return BatchResult(steps=0, energy=e, y0=y, y=y)


register("bp", run_batch, "backpropagation on the same feedforward network and loss (the baseline)",
         backends=("reference", "numba", "brian2:rate"),
         unsupported_reason={
             "brian2:spiking": "backprop is a forward and a backward pass, which brian2 computes as the exact FPA "
                               "error sweep of the rate network (frozen predictions, one layer per step); the "
                               "spiking network has no frozen predictions; use mode='rate'",
             "": "backprop is a forward and a backward pass; this backend has no implementation of it"})
