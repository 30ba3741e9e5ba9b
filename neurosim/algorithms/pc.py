r"""``pc`` (standard PC with the output options) and ``strict`` (Rosenbaum's strict PC).

Both relax in the backend's own kernel (:meth:`Backend.run_batch`), so they run wherever the backend runs.

``pc`` -- inference learning / prospective configuration: per batch the values start at the feedforward
pass, the output is clamped to the target (or nudged, ``mode="nudge"``), the network relaxes with the
simulator's integrator (``steps``, ``dt``, ``tol``, ``dt_decay``), then one Hebbian update.  Without options
this is exactly the backend's kernel (learning included).  The output options of
:mod:`neurosim.algorithms._common` (``output_precision`` :math:`\lambda`, weak target ``beta``,
``compensate``) relax with the output precision replaced by :math:`\lambda` and the output clamped to
:math:`\hat y + \beta(t - \hat y)`, and then apply the Hebbian update scaled by :math:`\pi_L/(\beta\lambda)`
(one BLAS product per projection in NumPy, on both backends).  Option ``convention``: ``"neurosim"``
(default) updates the weights from the state after ``steps`` value updates; ``"song2024"`` counts ``steps``
as the ``T`` iterations of the ``PCTrainer`` of Song et al. (2024) (``update_p_at="last"``), each of which
computes the energy's gradients at the current state and *then* updates the values, so the weights are
updated from the state after ``T - 1`` updates: the kernel runs ``steps - 1`` steps (``steps >= 1``).  This
only re-counts the steps, so it runs on every backend.

``strict`` -- Rosenbaum (2022), ``ErrType="Strict"``: beliefs start at the feedforward pass and take ``n``
discrete gradient-descent steps of size :math:`\eta` on

.. math::

    F = \sum_{l<L} \tfrac{\pi_l}{2}\lVert x_l - f_l(x_{l-1})\rVert^2
        + \tfrac{\pi_L}{2}\lVert t - f_L(x_{L-1})\rVert^2 ,

predictions recomputed from the beliefs at every step; the loss term at the output is exactly the PC
energy of the hard-clamped output, so ``strict`` **shares the pc kernel**: it is that kernel with the Euler
integrator, :math:`dt = \eta\,\tau_x` (a step :math:`\eta` on :math:`-\partial F/\partial x`), ``n``
steps, instantaneous errors.  The update is the Hebbian term at the final beliefs.  At equilibrium the
errors obey BP's recursion with Jacobians at the beliefs, so strict PC is *not* backprop: for a vector
output and a weak target (:math:`\beta \to 0`) the update tends to the preconditioned gradient
:math:`-(\partial\hat y/\partial\theta)^T S_J^{-1}(\hat y - t)`, :math:`S_J = I/\lambda + \sum_k J_kJ_k^T`;
only the weak-output-precision limit (:math:`\lambda \to 0`, update :math:`\times \pi_L/\lambda`) gives BP.
Options: ``eta`` (None: the simulator's ``dt``; Rosenbaum used 0.1), ``n`` (None: ``train(steps=...)``;
Rosenbaum used 20), ``convention`` and the output options.

Step counting (option ``convention``).  ``"neurosim"`` (default): errors and presynaptic beliefs both after
``n`` belief updates, :math:`g_{W_l} = \varepsilon_l^{(n)} \phi(x_{l-1}^{(n)})^T`.  ``"torch2pc"``: ``n``
counts the iterations of Torch2PC's ``StrictPCPredErrs``, each of which computes the errors and *then*
updates the beliefs; its ``SetPCGrads`` then combines the errors of the last iteration (after ``n - 1``
updates) with the beliefs it returns (after ``n``):

.. math::

    g_{W_l} = \varepsilon_l^{(n-1)}\, \phi\big(x_{l-1}^{(n)}\big)^T, \qquad
    x^{(n)} = x^{(n-1)} + \eta\,\big(-\partial F/\partial x\big)\big|_{x^{(n-1)}} .

The kernel runs ``n - 1`` steps (``BatchResult`` describes them); the ``n``-th belief step and the update
are computed in NumPy from the backend's state (``reference`` and ``numba``; ``n >= 1``, target clamped, no
``tol`` or ``dt_decay``, as in Torch2PC).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..backends.base import EULER, INTEGRATORS, MODE_CLAMP, MODE_NUDGE, STATUS_DIVERGED, BatchResult, RunSpec
from ..errors import UnsupportedError
from ..plan import ROLE_INPUT
from ._common import (OUTPUT_OPTIONS, NumpyNet, _positive_option, as_batch, check_common, convention, first_bad,
                      output_settings)
from . import check_backend, register

PC_OPTIONS = {**OUTPUT_OPTIONS, "convention": "neurosim"}
STRICT_OPTIONS = {"eta": None, "n": None, **OUTPUT_OPTIONS, "convention": "neurosim"}


def _relax(sim, X, Y, spec, options, algo, extra_step=False):
    """Backend relaxation with the output options; returns (BatchResult, directions or None, settings).

    ``extra_step`` (strict, ``convention="torch2pc"``): after the relaxation, one more Euler step of the
    beliefs from the final state, and the update from the final errors and the stepped presynaptic beliefs.
    """
    check_backend(algo, sim, options)
    be = sim.backend
    st = output_settings(algo, sim.plan, options, be.dtype)
    if not st.overridden and not extra_step:
        return be.run_batch(X, Y, spec), None, st
    if not hasattr(be, "prec") or not hasattr(be, "state"):
        what = "the output options need" if st.overridden else "convention='torch2pc' needs"
        raise UnsupportedError(f"algorithm {algo!r}: {what} a backend exposing its state and precision "
                               f"vector ('reference' or 'numba'), not {be.name!r}")
    net = NumpyNet(be, st.prec)
    teff = Y
    if st.beta != 1.0:
        yhat = net.forward(X)[0][:, net.tsl]
        teff = yhat + st.beta * (Y - yhat)
    saved = be.prec.copy()
    be.prec[:] = st.prec
    try:
        res = be.run_batch(X, teff, replace(spec, learn=False))
    finally:
        be.prec[:] = saved
    if res.status != 0:
        return res, None, st
    state = be.state()
    x, eps = state["x"], state["eps"]
    if extra_step:
        # the beliefs after one more step (Euler, dt = eta tau_x) from the state whose errors are used
        x = x + (spec.dt / net.tau) * net.drive(x, eps, net.dphi(x))
        bad = first_bad(np.zeros(sim.plan.n_pops), x, net.sl)
        if bad >= 0:
            return replace(res, status=STATUS_DIVERGED, fail_step=res.steps + 1, fail_pop=bad), None, st
    gW, gb = net.directions(eps, net.phi(x))
    if spec.learn:
        for k in range(sim.plan.n_proj):
            net.apply(k, gW.get(k), gb.get(k), st.factor)
    return res, (gW, gb), st


def _pc_spec(spec, options):
    """The run settings of ``pc`` under its step-counting convention (``song2024``: ``steps - 1`` updates)."""
    if convention("pc", options) == "song2024":
        if spec.n_steps < 1:
            raise ValueError("algorithm 'pc' with convention='song2024': steps counts the T iterations of Song et "
                             "al.'s PCTrainer, which updates the weights from the state after T - 1 value updates, "
                             f"so steps must be >= 1, got {spec.n_steps}; for 0 updates use convention='neurosim'")
        spec = replace(spec, n_steps=spec.n_steps - 1)
    return spec


def run_pc(sim, X, Y, spec, options) -> BatchResult:
    """Standard PC: the backend's relaxation and Hebbian update (with the output options if given)."""
    return _relax(sim, X, Y, _pc_spec(spec, options), options, "pc")[0]


def _strict_spec(sim, spec, options):
    """``(spec, extra_step)``: the pc-kernel settings of ``strict`` and whether the Torch2PC update follows."""
    p = sim.plan
    eta = options.get("eta")
    eta = spec.dt if eta is None else _positive_option("strict", "eta", eta)
    n = options.get("n")
    n = spec.n_steps if n is None else n
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"algorithm 'strict': n must be a non-negative int or None, got {n!r}")
    taus = {float(p.pop_tau_x[i]) for i in range(p.n_pops) if p.pop_role[i] != ROLE_INPUT}
    if len(taus) > 1:
        raise ValueError(f"algorithm 'strict' takes one step size for all beliefs, but circuit "
                         f"{sim.circuit.name!r} has several tau_x values {sorted(taus)}; give every population the "
                         "same tau_x")
    if spec.integrator != EULER:
        raise ValueError("algorithm 'strict' takes Euler steps (n gradient steps of size eta on the beliefs); build "
                         "the Simulator with integrator='euler' (or pass integrator='euler' to the run)")
    tau = taus.pop() if taus else 1.0
    extra = convention("strict", options) == "torch2pc"
    if extra:
        label = "algorithm 'strict' with convention='torch2pc'"
        if n < 1:
            raise ValueError(f"{label}: n counts Torch2PC's Strict iterations, whose errors are taken before the "
                             f"last belief update, so n must be >= 1, got {n!r}; for 0 updates use "
                             "convention='neurosim' with n=0")
        if spec.mode != MODE_CLAMP:
            raise ValueError(f"{label} reproduces Torch2PC, whose output enters only through the loss (a clamped "
                             "target); use mode='clamp' (for a weak target use options={'beta': ...})")
        if spec.tol > 0 or spec.dt_decay < 1.0:
            raise ValueError(f"{label} runs Torch2PC's fixed n iterations of one step size; leave tol=None and "
                             "dt_decay=1")
        n = n - 1   # the kernel takes n - 1 steps; the n-th belief step follows in _relax
    return replace(spec, dt=eta * tau, n_steps=int(n), integrator=EULER), extra


def run_strict(sim, X, Y, spec, options) -> BatchResult:
    """Strict PC: ``n`` gradient steps of size ``eta`` on the beliefs (the pc kernel, Euler), one update."""
    check_common("strict", sim, spec, modes=(MODE_CLAMP, MODE_NUDGE), allow_tol=True, allow_dt_decay=True)
    spec, extra = _strict_spec(sim, spec, options)
    return _relax(sim, X, Y, spec, options, "strict", extra)[0]


def strict_updates(sim, X, Y, *, eta=0.1, n=20, learn=False, mode="clamp", nudge_beta=0.0, tol=None,
                   convention="neurosim", **output_options):
    r"""Strict PC on one batch; returns ``(BatchResult, (g_W, g_b))``: the Hebbian directions at the final
    beliefs (without the compensation factor).  ``learn=True`` also applies the (compensated) update.

    ``mode="nudge"`` with ``nudge_beta`` frees the output and pulls it toward the target; the output options
    (``output_precision``, ``beta`` -- the weak target --, ``compensate``) are keyword arguments.
    ``convention="torch2pc"`` counts ``n`` as Torch2PC's ``Strict`` (see the module docstring).
    """
    from ..backends.base import MODES
    X, Y = as_batch(sim, X, Y)
    options = {**STRICT_OPTIONS, "eta": eta, "n": n, "convention": convention, **output_options}
    spec = RunSpec(mode=MODES[mode], beta=float(nudge_beta), tol=0.0 if tol is None else float(tol), learn=False,
                   dt=float(eta), n_steps=int(n), integrator=INTEGRATORS[sim.integrator])
    check_common("strict", sim, spec, modes=(MODE_CLAMP, MODE_NUDGE), allow_tol=True)
    spec, extra = _strict_spec(sim, spec, options)
    be = sim.backend
    res, dirs, st = _relax(sim, X, Y, spec, options, "strict", extra)
    net = NumpyNet(be, st.prec)
    if dirs is None and res.status == 0:
        state = be.state()
        dirs = net.directions(state["eps"], net.phi(state["x"]))
    if learn and dirs is not None:
        for k in range(sim.plan.n_proj):
            net.apply(k, dirs[0].get(k), dirs[1].get(k), st.factor)
    return res, dirs


register("pc", run_pc, "standard PC / prospective configuration: relax with the target clamped, then one Hebbian "
                       "update (options: output_precision, beta, compensate, convention)", PC_OPTIONS)
register("strict", run_strict, "strict PC (Rosenbaum 2022): n gradient steps of size eta on the beliefs with "
                               "predictions recomputed, loss at the output; shares the pc kernel (convention="
                               "'torch2pc': n counted as Torch2PC's Strict)", STRICT_OPTIONS)
