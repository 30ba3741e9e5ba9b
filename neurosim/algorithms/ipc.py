r"""``ipc``: incremental predictive coding (Salvatori et al., ICLR 2024), from incremental EM.

Per batch the values start at the feedforward pass (output clamped to the target, or nudged toward it in
``mode="nudge"``) and, at **every** step, values and weights take one step together from the same state:

.. math::

    x_{t+1} = x_t + \frac{\gamma}{\tau_x}\Big(-\frac{\partial F}{\partial x}(x_t, \theta_t)\Big), \qquad
    \theta_{t+1} = \theta_t + \mathrm{opt}\big(g(x_t, \theta_t)\big), \qquad t = 0 \dots T-1,

with :math:`g` the Hebbian direction (:math:`= -\partial F/\partial\theta` for the batch-mean energy) and
``opt`` the projection's optimiser (SGD with learning rate :math:`\alpha` = the plasticity ``lr``).  This is
joint gradient descent on :math:`F(x, \theta)` with block step sizes: for small enough :math:`\gamma,
\alpha` the energy :math:`F(x_t, \theta_t)` never increases.  Standard PC (``pc``) is the same loop with
the weight step taken only after the last value step.

``T = train(steps=...)``; the value step :math:`\gamma` is ``options["gamma"]`` or, when None, the
simulator's ``dt``.  Options also include the output options ``output_precision``, ``beta``,
``compensate``.  ``BatchResult.energy[t]`` is :math:`F(x_t, \theta_t)` per population.

Backends: ``reference`` (the NumPy loop ``_numpy``, the executable specification), ``numba`` (the graph
kernels on the circuit's vertex form, :mod:`neurosim.algorithms._twin`) and ``brian2`` in ``mode="rate"``: the
rate network with its optimiser step acting in every time step that moves the values (:meth:`~neurosim.backends.brian2.Brian2Backend.run_ipc`; brian2 computes every input
from the state at :math:`t` before any state advances, which is the joint step above, with brian2's ``dt`` =
:math:`\gamma`).  ``brian2`` in ``mode="spiking"`` refuses: its weights change only by event-driven plasticity
in the learning window at the end of a run.
"""
from __future__ import annotations

import numpy as np

from dataclasses import replace

from ..backends.base import EULER, MODE_CLAMP, MODE_NUDGE, BatchResult, RunSpec
from ._common import OUTPUT_OPTIONS, NumpyNet, as_batch, check_common, diverged, observe, output_settings, \
    rec_buffers, uses_numba
from . import check_backend, register

OPTIONS = {"gamma": None, **OUTPUT_OPTIONS}


def _settings(spec, options):
    gamma = options.get("gamma")
    gamma = spec.dt if gamma is None else float(gamma)
    if not (np.isfinite(gamma) and gamma > 0):
        raise ValueError(f"algorithm 'ipc': gamma must be finite and > 0, got {options.get('gamma')!r}")
    if spec.integrator != EULER:
        raise ValueError("algorithm 'ipc' takes discrete (Euler) steps; build the Simulator with integrator='euler'")
    return gamma


def _numpy(sim, X, Y, spec, gamma, st, learn):
    p = sim.plan
    net = NumpyNet(sim.backend, st.prec)
    x, _ = net.forward(X)
    y0 = x[:, net.tsl].copy()
    teff = Y if st.beta == 1.0 else y0 + st.beta * (Y - y0)
    if spec.mode == MODE_CLAMP:
        x[:, net.tsl] = teff
    T = spec.n_steps
    B = X.shape[0]
    energies = np.zeros((T + 1, p.n_pops))
    recs = rec_buffers(p, spec, T, B, net.dtype)
    step = gamma / net.tau
    r = 0
    for k in range(T + 1):
        phx = net.phi(x)
        mu = net.predictions(x, phx)
        eps, _, r, bad = observe(net, x, mu, k, energies, recs, spec, r)
        if bad >= 0:
            return diverged(energies, k, bad, y0, x[:, net.tsl].copy(), recs, r)
        if k == T:
            break
        d = net.drive(x, eps, net.dphi(x), spec.mode, spec.beta, teff)
        gW, gb = net.directions(eps, phx)
        x = x + step * d
        if learn:
            for kk in range(p.n_proj):
                net.apply(kk, gW.get(kk), gb.get(kk), st.factor)
    return BatchResult(steps=T, energy=energies, rec_steps=recs[3][:r], rec_x=recs[0][:r], rec_eps=recs[1][:r],
                       rec_mu=recs[2][:r], y0=y0, y=x[:, net.tsl].copy())


def _numba(sim, X, Y, spec, gamma, st, learn):
    """The graph kernels on the circuit's vertex form (:mod:`neurosim.algorithms._twin`)."""
    from ..graph.base import ALG_IPC, Schedule
    from ._twin import clamped, record_settings, twin_of
    clamp = clamped(spec)
    sch = Schedule(ALG_IPC, int(spec.n_steps), float(gamma), clamp, bool(learn),
                   beta=0.0 if clamp else float(spec.beta), **record_settings(spec))
    return twin_of(sim).run(sim, X, Y, sch, st)[0]


def _brian2(sim, X, Y, spec, gamma, st, learn):
    """The brian2 rate network with the optimiser step at every value step (brian2's dt = gamma)."""
    return sim.backend.run_ipc(X, Y, replace(spec, dt=gamma, learn=bool(learn)), prec=st.prec, factor=st.factor,
                               target_beta=st.beta)


def run_batch(sim, X, Y, spec, options) -> BatchResult:
    """One iPC batch: ``spec.n_steps`` joint steps of values and weights."""
    check_backend("ipc", sim, options)
    check_common("ipc", sim, spec, modes=(MODE_CLAMP, MODE_NUDGE))
    gamma = _settings(spec, options)
    st = output_settings("ipc", sim.plan, options, sim.backend.dtype)
    if getattr(sim.backend, "name", "") == "brian2":
        impl = _brian2
    else:
        impl = _numba if uses_numba(sim) else _numpy
    return impl(sim, X, Y, spec, gamma, st, spec.learn)


def ipc_run(sim, X, Y, *, steps, gamma, learn=True, mode="clamp", nudge_beta=0.0, **output_options) -> BatchResult:
    """Run one iPC batch outside ``train`` (e.g. to inspect ``F(x_t, theta_t)``); returns the BatchResult.

    ``mode="nudge"`` with ``nudge_beta`` frees the output and pulls it toward the target; the output options
    (``output_precision``, ``beta`` -- the weak target --, ``compensate``) are keyword arguments.
    """
    from ..backends.base import MODES
    X, Y = as_batch(sim, X, Y)
    spec = RunSpec(mode=MODES[mode], beta=float(nudge_beta), n_steps=int(steps), dt=float(gamma), learn=learn)
    return run_batch(sim, X, Y, spec, {**OPTIONS, "gamma": gamma, **output_options})


register("ipc", run_batch, "incremental PC (Salvatori et al. 2024): values and weights updated together at every "
                           "step from the same state", OPTIONS,
         backends=("reference", "numba", "brian2:rate"),
         unsupported_reason={
             "brian2:spiking": "iPC updates the weights at every step, while the spiking network changes them "
                               "only by event-driven plasticity inside the learning window at the end of a run, "
                               "with no optimiser step at every value step",
             "": "iPC updates the weights at every step, together with the values; this backend has no "
                 "implementation of that loop"})
