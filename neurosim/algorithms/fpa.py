r"""``fpa``: predictive coding under the fixed-prediction assumption (Millidge et al. 2020; Rosenbaum 2022).

Predictions and Jacobians are frozen at the feedforward pass :math:`\hat x`; the output is clamped to the
target (so its error :math:`\varepsilon_L = \pi_L (t - \hat y)` is a fixed source) and the hidden values
take ``n`` synchronous (Jacobi) steps of size :math:`\eta`:

.. math::

    \varepsilon_l = \pi_l (x_l - \hat x_l), \qquad
    x_l \leftarrow x_l + \frac{\eta}{\tau_{x}}\Big(-\varepsilon_l + J_{l+1}(\hat x_l)^T \varepsilon_{l+1}\Big),
    \qquad J_{l+1}(\hat x_l)^T \varepsilon = \phi'(\hat x_l)\odot a W^T\varepsilon \;(+\,\varepsilon).

The update is the Hebbian term at the *feedforward* presynaptic values,
:math:`\Delta W_l \propto a_l\, \varepsilon_l\, \phi(\hat x_{l-1})^T`.

Exactness.  The fixed point is :math:`\varepsilon_l = J_{l+1}^T \varepsilon_{l+1} = -\delta_l` (BP's
errors), so the update converges to the negative BP gradient.  With :math:`\eta\pi_l/\tau_x = 1` the step
is a shift register, :math:`\varepsilon_l^{(i+1)} = J_{l+1}^T \varepsilon_{l+1}^{(i)}`: the exact
:math:`\delta` moves down one layer per step, so the update equals backprop's after ``L - 1`` steps
(``L`` = number of weight layers; the default ``n = L`` of Torch2PC is exact too), while with fewer steps the
errors of the first layers are still exactly 0.  For :math:`\eta < 1` the iteration contracts like
:math:`(1-\eta)^i` (times a polynomial) -- exact only asymptotically.

Step counting (option ``convention``).  ``"neurosim"`` (default): ``n`` is the number of value updates;
the errors of the update are those after ``n`` updates, :math:`\varepsilon_l^{(n)} = (1 - (1-\eta)^n)\,
J^T\varepsilon_{l+1}` on a two-layer chain with
:math:`\pi = \tau_x = 1`.  ``"torch2pc"``: ``n`` counts the iterations of Torch2PC's
``FixedPredPCPredErrs`` (Rosenbaum 2022), each of which computes the errors and *then* updates the values,
so the update uses the errors after ``n - 1`` value updates: Torch2PC's ``n`` equals neurosim's ``n - 1``
(``n >= 1``; ``n=None`` is Torch2PC's default ``n = L``, i.e. ``L - 1`` updates).  For :math:`\eta < 1`
the two differ; at :math:`\eta = 1` both defaults are exact (``L`` resp. ``L - 1 >= L - 1`` updates).
The values after Torch2PC's last update never enter its update and are not computed here
(``BatchResult.steps`` is the number of updates, ``n - 1``).

Works on any DAG of projections (the shift register needs as many steps as the longest path).  Options:
``eta`` (1.0), ``n`` (None: the number of weight layers), ``convention`` (``"neurosim"``), and the output
options ``output_precision``, ``beta``, ``compensate`` of :mod:`neurosim.algorithms._common`.
``train(steps=..., dt=...)`` are not used.

Backends: ``reference`` (the NumPy loop ``_numpy``, the executable specification), ``numba`` (the graph
kernels on the circuit's vertex form, :mod:`neurosim.algorithms._twin`) and ``brian2`` in ``mode="rate"``: the rate network whose value groups also hold the frozen :math:`\hat x`
(``xh``), from which its synapses compute the predictions, :math:`\phi'` and the Hebbian presynaptic rates,
with brian2's ``dt`` = :math:`\eta` and the update in the last time step
(:meth:`~neurosim.backends.brian2.Brian2Backend.run_sweep`).  The spiking mode refuses.
"""
from __future__ import annotations

import numpy as np

from ..backends.base import BatchResult
from ._common import OUTPUT_OPTIONS, NumpyNet, _positive_option, as_batch, check_common, convention, diverged, \
    n_layers, observe, output_settings, rec_buffers, uses_numba, warn_if_not_exact
from . import check_backend, register

OPTIONS = {"eta": 1.0, "n": None, **OUTPUT_OPTIONS, "convention": "neurosim"}


def _settings(sim, options):
    eta = _positive_option("fpa", "eta", options.get("eta", 1.0))
    warn_if_not_exact("fpa", sim.plan, eta, "eta", owner=sim)
    n = options.get("n")
    if n is None:
        n = n_layers(sim.plan)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"algorithm 'fpa': n must be a non-negative int or None, got {n!r}")
    if convention("fpa", options) == "torch2pc":
        # Torch2PC's n iterations compute the errors before each value update: n - 1 updates
        if n < 1:
            raise ValueError("algorithm 'fpa' with convention='torch2pc': n counts Torch2PC's FixedPred iterations, "
                             "whose errors are taken before the last value update, so n must be >= 1 (n=1: no "
                             f"value update), got {n!r}; for 0 updates use convention='neurosim' with n=0")
        n -= 1
    return eta, int(n)


def _numpy(sim, X, Y, spec, eta, n, st, learn, want_dirs=True):
    net = NumpyNet(sim.backend, st.prec)
    xh, phxh = net.forward(X)
    dph = net.dphi(xh)                 # Jacobians frozen at the feedforward pass
    mu = xh.copy()                     # predictions frozen too (mu_l = xhat_l)
    y0 = xh[:, net.tsl].copy()
    x = xh.copy()
    net.set_target(x, Y, st.beta)
    B = X.shape[0]
    energies = np.zeros((n + 1, sim.plan.n_pops))
    recs = rec_buffers(sim.plan, spec, n, B, net.dtype)
    step = eta / net.tau
    r = 0
    for k in range(n + 1):
        eps, _, r, bad = observe(net, x, mu, k, energies, recs, spec, r)
        if bad >= 0:
            return diverged(energies, k, bad, y0, x[:, net.tsl].copy(), recs, r), None
        if k == n:
            break
        x = x + step * net.drive(x, eps, dph)
    gW, gb = net.directions(eps, phxh)
    if learn:
        for k in range(sim.plan.n_proj):
            net.apply(k, gW.get(k), gb.get(k), st.factor)
    res = BatchResult(steps=n, energy=energies, rec_steps=recs[3][:r], rec_x=recs[0][:r], rec_eps=recs[1][:r],
                      rec_mu=recs[2][:r], y0=y0, y=x[:, net.tsl].copy())
    return res, (gW, gb)


def _numba(sim, X, Y, spec, eta, n, st, learn, want_dirs=True):
    """The graph kernels on the circuit's vertex form (:mod:`neurosim.algorithms._twin`)."""
    from ..graph.base import ALG_FPA, Schedule
    from ._twin import record_settings, twin_of
    return twin_of(sim).run(sim, X, Y, Schedule(ALG_FPA, int(n), float(eta), True, bool(learn),
                                                **record_settings(spec)), st)


def _brian2(sim, X, Y, spec, eta, n, st, learn, want_dirs=True):
    """The brian2 rate network with frozen predictions (:meth:`~neurosim.backends.brian2.Brian2Backend.run_sweep`):
    brian2's ``dt`` = ``eta``, ``n`` steps, every projection updated in the last (evaluation) time step from the
    errors after ``n`` updates and the frozen presynaptic rates."""
    from dataclasses import replace
    p = sim.plan
    return sim.backend.run_sweep(X, Y, replace(spec, learn=bool(learn)), "fpa", n=n, step=eta,
                                 upd_step={k: n for k in range(p.n_proj)}, prec=st.prec, factor=st.factor,
                                 target_beta=st.beta)


def fpa_updates(sim, X, Y, *, eta=1.0, n=None, learn=False, convention="neurosim", **output_options):
    r"""Run FPA on one batch and return ``(BatchResult, (g_W, g_b))``: the update directions per projection.

    ``g_W[k]`` is :math:`a_k c_B \varepsilon_{post}^T\phi(\hat x_{pre})` (without the compensation factor),
    i.e. minus the BP gradient once FPA is exact.  With ``learn=True`` the update is also applied.
    ``convention="torch2pc"`` counts ``n`` as Torch2PC does (``n - 1`` value updates, see the module docstring).
    """
    from ..backends.base import RunSpec
    X, Y = as_batch(sim, X, Y)
    options = {**OPTIONS, "eta": eta, "n": n, "convention": convention, **output_options}
    return _run(sim, X, Y, RunSpec(learn=learn), options)


def _run(sim, X, Y, spec, options, want_dirs=True):
    check_backend("fpa", sim, options)
    check_common("fpa", sim, spec)
    eta, n = _settings(sim, options)
    st = output_settings("fpa", sim.plan, options, sim.backend.dtype)
    if getattr(sim.backend, "name", "") == "brian2":
        impl = _brian2
    else:
        impl = _numba if uses_numba(sim) else _numpy
    return impl(sim, X, Y, spec, eta, n, st, spec.learn, want_dirs)


def run_batch(sim, X, Y, spec, options) -> BatchResult:
    """One FPA batch: frozen predictions, ``n`` steps of size ``eta``, one update per projection."""
    return _run(sim, X, Y, spec, options, want_dirs=False)[0]


register("fpa", run_batch, "fixed-prediction assumption (Millidge 2020, Rosenbaum 2022): predictions and "
                           "Jacobians frozen at the feedforward pass; exact BP gradients with eta=1 after L-1 steps "
                           "(convention='torch2pc': n counted as Torch2PC's FixedPred, n - 1 value updates)",
         OPTIONS, backends=("reference", "numba", "brian2:rate"),
         unsupported_reason={
             "brian2:spiking": "FPA freezes the predictions and Jacobians at the feedforward pass and shifts the "
                               "errors through them, while the spiking network's predictions are spike rates of the "
                               "live values; the rate network (mode='rate') runs it",
             "": "FPA freezes the predictions and Jacobians at the feedforward pass; this backend has no "
                 "implementation of that schedule"})
