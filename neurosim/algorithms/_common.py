r"""Shared machinery of the inference-and-learning schedules (``strict``, ``fpa``, ``zil``, ``ipc``, ``bp``).

Everything here works on the flat arrays of a :class:`~neurosim.plan.Plan` and on the weights and
optimiser state held by ``sim.backend`` (``W, b, mW, vW, mb, vb, opt_t``), so one implementation serves
every circuit whose projections form a DAG.

Conventions (one for all schedules, the one of :mod:`neurosim.circuit`)
-----------------------------------------------------------------------
* error :math:`\varepsilon_l = \pi_l (x_l - \mu_l)`; energy
  :math:`F = \sum_l \tfrac{\pi_l}{2}\lVert x_l - \mu_l\rVert^2` (batch mean);
* the *drive* of a free population is :math:`-\partial F/\partial x_l = -\varepsilon_l + \phi'(x_l)\odot
  \sum_{l\to m} a_m W_m^T \varepsilon_m \;(+\,\varepsilon_m \text{ for skips})`; a discrete step of size
  ``eta`` is the Euler step :math:`x_l \leftarrow x_l + (\eta/\tau_{x,l})\,\mathrm{drive}_l` (with the
  default :math:`\tau_x = 1`, ``eta`` is the step on :math:`-\partial F/\partial x`);
* the local update direction of projection :math:`k` is the Hebbian term
  :math:`g_{W_k} = a_k\, c_B\, \varepsilon_{post}^T \phi(x_{pre})`, :math:`g_{b_k} = c_B \sum_{batch}
  \varepsilon_{post}` (:math:`c_B = 1/B` for ``batch_reduction="mean"``, 1 for ``"sum"``); it equals
  :math:`-\partial F/\partial W_k` (times :math:`B` for the sum reduction) and is applied through the
  projection's optimiser (:func:`neurosim.equations.optimizer_step`).

Output options shared by the PC schedules
-----------------------------------------
``output_precision`` (:math:`\lambda`)
    replaces the output precision :math:`\pi_L` during inference (Whittington & Bogacz's weak output
    precision; ``None`` keeps the circuit's value);
``beta`` (:math:`\beta`)
    nudging by a weak target: the output is clamped to :math:`\hat y + \beta (t - \hat y)` instead of
    :math:`t` (``None`` or 1: the target itself);
``compensate``
    divide the weight update by :math:`\beta\,\lambda/\pi_L` so that the learning rate keeps its meaning
    (the limits :math:`\lambda \to 0` and :math:`\beta \to 0` then have finite, comparable updates).

Step-counting conventions against peers (option ``convention``)
---------------------------------------------------------------
neurosim counts *value updates*: ``n`` steps means the errors and the Hebbian update are taken at the state
after ``n`` updates of the beliefs (``n = 0``: the feedforward state).  Peer codes count *iterations* of a
loop that computes the errors and then updates the beliefs, so their ``n`` iterations use the errors after
``n - 1`` updates.  ``convention`` (:data:`CONVENTIONS`) lets ``fpa``, ``strict`` and ``pc`` count as a
peer does; ``"neurosim"`` (the default) is the behaviour above:

* ``fpa``, ``"torch2pc"`` -- Torch2PC's ``FixedPred`` with ``n`` iterations: ``n - 1`` value updates
  (``n >= 1``; ``n=None`` is Torch2PC's default ``n = L``, exact at ``eta = 1`` like neurosim's ``n = L``);
* ``strict``, ``"torch2pc"`` -- Torch2PC's ``Strict`` with ``n`` iterations: the errors after ``n - 1``
  updates, the presynaptic beliefs after ``n`` (``n >= 1``);
* ``pc``, ``"song2024"`` -- the ``PCTrainer`` of Song et al. (2024) with ``T`` iterations and
  ``update_p_at="last"``: the weights are updated from the state after ``T - 1`` updates (``steps = T >= 1``).

The option reproduces the counting only, not the peers' other choices (Torch2PC's layers
:math:`f(v) = \sigma(Wv + b)` and its loss reduction, the optimiser Song et al. use for the values); on a
linear chain with unit precisions, a summed loss and plain gradient steps on the values they coincide.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backends.base import INIT_FEEDFORWARD, MODE_CLAMP, MODE_NUDGE, STATUS_DIVERGED, BatchResult
from ..backends.reference import rec_buffers
from ..circuit import _positive
from ..equations import LayeredEquations, first_bad, optimizer_step  # noqa: F401 (re-exported)
from ..errors import UnsupportedError
from ..plan import ROLE_FREE, Plan

__all__ = ["OUTPUT_OPTIONS", "CONVENTIONS", "convention", "OutputSettings", "output_settings", "Tables", "tables", "NumpyNet",
           "check_common", "uses_numba", "rec_buffers", "as_batch"]

OUTPUT_OPTIONS = {"output_precision": None, "beta": None, "compensate": True}

#: values of the option ``convention`` of each schedule (the first is the default; see the module docstring)
CONVENTIONS = {"fpa": ("neurosim", "torch2pc"), "strict": ("neurosim", "torch2pc"), "pc": ("neurosim", "song2024")}


# ----------------------------------------------------------------------------- options
@dataclass(frozen=True)
class OutputSettings:
    """Resolved output options: effective per-unit precision, weak-target ``beta`` and update factor."""

    prec: np.ndarray        # (n_units,) precision used during inference (output units possibly replaced)
    beta: float             # 1.0: clamp to the target itself
    factor: float           # multiplies the update direction (1 / (beta * lambda / pi_L) when compensating)
    overridden: bool        # whether anything differs from the plain circuit


def _positive_option(algo, name, value):
    """A positive finite number option as a float; a string or bool is refused (``float("1")`` would accept it)."""
    if isinstance(value, (str, bytes, bool, np.bool_)):
        raise ValueError(f"algorithm {algo!r}: option {name!r} must be a number, got {value!r}")
    return _positive(f"algorithm {algo!r}", f"option {name!r}", value)


def _user_stacklevel() -> int:
    """The ``stacklevel`` of the first frame outside the neurosim package (the user's call), counted from the
    caller of the function that calls this one."""
    import os
    import sys
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    frame, level = sys._getframe(2), 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(pkg):
        frame, level = frame.f_back, level + 1
    return level


def warn_if_not_exact(algo: str, plan, rate: float, name: str, owner=None) -> None:
    """Warn when the default rate (1) of an exact-backprop schedule (``fpa``'s ``eta``, ``zil``'s ``gamma``) is not
    exact for the circuit it runs on (``plan``: a layered :class:`~neurosim.plan.Plan` or a
    :class:`~neurosim.graph.plan.GraphPlan`; for Z-IL the levelled one, whose inserted identity populations count):
    a step moves a hidden error by ``rate * precision / tau_x`` of its drive, so both need that ratio to be 1 in
    every free population (vertex).  Only for rate 1 -- another rate is a deliberate choice (the exact
    ``tau_x / precision``, or e.g. a negative control).  Once per ``owner`` (the simulator) and algorithm, at the
    user's call."""
    if rate != 1.0:
        return
    key = (algo, name)
    if owner is not None:
        seen = owner.__dict__.setdefault("_exactness_warned", set())
        if key in seen:
            return
    if hasattr(plan, "VI"):   # a graph: its free vertices
        from ..graph.plan import V_ROLE
        free = [(plan.v_names[i], plan.UP[plan.units(i)], float(plan.VF[i, 1]))
                for i in range(plan.VI.shape[0]) if plan.VI[i, V_ROLE] == ROLE_FREE]
    else:
        free = [(plan.pop_names[k], plan.precision[int(plan.pop_off[k]):int(plan.pop_off[k] + plan.pop_size[k])],
                 float(plan.pop_tau_x[k])) for k in range(len(plan.pop_names)) if plan.pop_role[k] == ROLE_FREE]
    bad, ratios = [], set()
    for pop, prec, tau in free:
        ratios.update(float(r) for r in np.unique(tau / prec))
        if not np.all(rate * prec / tau == 1.0):
            p = np.unique(prec)
            bad.append(f"{pop} (precision {'/'.join(f'{v:g}' for v in p[:3])}{'...' if p.size > 3 else ''}, "
                       f"tau_x {tau:g})")
    if not bad:
        return
    if owner is not None:
        seen.add(key)
    if len(ratios) == 1:
        fix = f"pass options={{'{name}': {ratios.pop():g}}} (tau_x / precision)"
    else:
        fix = (f"no single {name} is: tau_x / precision takes the values "
               f"{', '.join(f'{r:g}' for r in sorted(ratios)[:5])}{' ...' if len(ratios) > 5 else ''} over the hidden "
               f"populations{' (identity populations Z-IL inserts to level the circuit included)' if algo == 'zil' else ''}"
               f"; make it the same everywhere (tau_x or precision per population), or use algorithm='bp'")
    import warnings
    warnings.warn(f"algorithm {algo!r}: {name}=1 gives exact backprop gradients only where {name} * precision / "
                  f"tau_x = 1 in every hidden population; here {', '.join(bad[:4])}{' ...' if len(bad) > 4 else ''}, "
                  f"so its updates are not backprop's. To be exact, {fix}", UserWarning,
                  stacklevel=_user_stacklevel())


def convention(algo: str, options: dict) -> str:
    """The step-counting convention of ``algo`` in ``options`` (validated; default ``"neurosim"``)."""
    allowed = CONVENTIONS[algo]
    c = options.get("convention")
    c = allowed[0] if c is None else c
    if not isinstance(c, str) or c not in allowed:
        raise ValueError(f"algorithm {algo!r}: option 'convention' must be one of {list(allowed)}, got {c!r}")
    return c


def output_settings(algo: str, plan: Plan, options: dict, dtype=np.float64) -> OutputSettings:
    """Resolve ``output_precision``, ``beta`` and ``compensate`` (see the module docstring)."""
    prec = plan.precision.astype(dtype).copy()
    lam = options.get("output_precision")
    beta = options.get("beta")
    comp = options.get("compensate", True)
    if not isinstance(comp, (bool, np.bool_)):
        raise ValueError(f"algorithm {algo!r}: option 'compensate' must be True or False, got {comp!r}")
    factor = 1.0
    overridden = False
    if plan.target_pop < 0:
        raise ValueError(f"algorithm {algo!r} needs a circuit with a target clamp (ns.Clamp(name, 'target'))")
    tsl = slice(int(plan.pop_off[plan.target_pop]),
                int(plan.pop_off[plan.target_pop] + plan.pop_size[plan.target_pop]))
    if lam is not None:
        lam = _positive_option(algo, "output_precision", lam)
        ref = plan.precision[tsl]
        if comp and not np.all(ref == ref[0]):
            raise ValueError(
                f"algorithm {algo!r}: output_precision={lam} with compensate=True needs a uniform output "
                f"precision in the circuit (population {plan.pop_names[plan.target_pop]!r} has per-unit "
                "precisions); pass compensate=False or give the circuit a scalar output precision")
        prec[tsl] = lam
        if comp:
            factor *= float(ref[0]) / lam
        overridden = True
    b = 1.0
    if beta is not None:
        b = _positive_option(algo, "beta", beta)
        if b != 1.0:
            overridden = True
            if comp:
                factor /= b
    return OutputSettings(prec=prec, beta=b, factor=factor, overridden=overridden)


def check_common(algo: str, sim, spec, *, modes=(MODE_CLAMP,), allow_tol=False, allow_dt_decay=False,
                 need_instant_errors=True) -> None:
    """Reject run settings an algorithm cannot honour, with a message naming the fix."""
    plan = sim.plan
    if plan.target_pop < 0:
        raise ValueError(f"algorithm {algo!r} needs a circuit with a target clamp (ns.Clamp(name, 'target'))")
    if spec.mode not in modes:
        names = {MODE_CLAMP: "'clamp'", MODE_NUDGE: "'nudge'"}
        extra = "" if MODE_NUDGE in modes else "; for a weak target use options={'beta': ...}"
        raise ValueError(f"algorithm {algo!r} supports mode {' or '.join(names[m] for m in modes)} only{extra}")
    if spec.init != INIT_FEEDFORWARD:
        raise ValueError(f"algorithm {algo!r} starts every batch from the feedforward pass; use init='feedforward'")
    if spec.tol > 0 and not allow_tol:
        raise ValueError(f"algorithm {algo!r} runs a fixed number of steps; tol is not supported (leave tol=None)")
    if spec.dt_decay < 1.0 and not allow_dt_decay:
        raise ValueError(f"algorithm {algo!r} uses a fixed step; dt_decay is not supported (leave dt_decay=1)")
    if need_instant_errors and np.any(plan.pop_tau_eps > 0):
        bad = [plan.pop_names[i] for i in range(plan.n_pops) if plan.pop_tau_eps[i] > 0]
        raise UnsupportedError(
            f"algorithm {algo!r} uses instantaneous error units, but the error populations of {bad} have "
            "tau_eps > 0; declare them with tau_eps=0")


def as_batch(sim, X, Y):
    """Validated ``(X, Y)`` arrays in the simulator's dtype (Y required)."""
    dt = sim.backend.dtype
    X = np.atleast_2d(np.asarray(X, dtype=dt))
    Y = np.atleast_2d(np.asarray(Y, dtype=dt))
    p = sim.plan
    if X.shape[1] != p.n_input or Y.shape[1] != p.n_target or X.shape[0] != Y.shape[0]:
        raise ValueError(f"X must be (B, {p.n_input}) and Y (B, {p.n_target}) with the same B; got {X.shape} and "
                         f"{Y.shape}")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(Y))):
        raise ValueError("X and Y must be finite")
    return X, Y


def uses_numba(sim) -> bool:
    """Whether the simulator's backend is the numba one (the compiled kernels run there)."""
    return getattr(sim.backend, "name", "") == "numba"


# ----------------------------------------------------------------------------- tables for the kernels
@dataclass
class Tables:
    """The distances of a plan's populations to the target (:func:`distances`), cached per plan."""

    dist: np.ndarray        # (n_pops,) levelled distance to the target (-1: none), see ``distances``
    depth: np.ndarray       # (n_pops,) longest path (in projections) to the target (-1: no path)
    levelled: bool
    level_problem: str


def distances(plan: Plan):
    """Longest path to the target of every population and whether the DAG is levelled.

    Returns ``(depth, dist, levelled, problem)``: ``depth[i]`` is the longest path (in projections) from
    population ``i`` to the target (-1 when it cannot reach it); ``dist`` equals ``depth`` when the graph
    is levelled, i.e. every projection out of a free population that reaches the target goes to a
    population exactly one level closer (all its paths to the target have the same length).
    """
    n = plan.n_pops
    depth = np.full(n, -1, dtype=np.int64)
    if plan.target_pop >= 0:
        depth[plan.target_pop] = 0
    problem = ""
    for i in reversed(range(n)):  # reverse topological order: children first
        if i == plan.target_pop:
            continue
        ds = [depth[plan.proj_post[k]] for k in range(plan.n_proj) if plan.proj_pre[k] == i]
        ds = [d for d in ds if d >= 0]
        if ds:
            depth[i] = 1 + max(ds)
            if plan.pop_role[i] == ROLE_FREE and min(ds) != max(ds) and not problem:
                problem = (f"population {plan.pop_names[i]!r} reaches the target along paths of different "
                           f"lengths ({sorted(set(int(d) + 1 for d in ds))} projections)")
    for k in range(plan.n_proj):
        if plan.proj_pre[k] == plan.target_pop and not problem:
            problem = (f"the target population predicts {plan.pop_names[plan.proj_post[k]]!r} "
                       f"(projection {plan.proj_names[k]!r})")
    return depth, depth.copy(), not problem, problem


def tables(plan: Plan) -> Tables:
    """The :class:`Tables` of ``plan`` (built once, cached in ``plan.extras``)."""
    key = "neurosim.algorithms.tables"
    if key not in plan.extras:
        depth, dist, levelled, problem = distances(plan)
        plan.extras[key] = Tables(dist=dist, depth=depth, levelled=levelled, level_problem=problem)
    return plan.extras[key]


def n_layers(plan: Plan) -> int:
    """Number of weight layers: the longest path (in projections) from a free population to the target, + 1."""
    t = tables(plan)
    free = [int(t.depth[i]) for i in range(plan.n_pops) if plan.pop_role[i] == ROLE_FREE and t.depth[i] >= 0]
    return 1 + max(free) if free else 1


# ----------------------------------------------------------------------------- the NumPy engine
#: the equations on ``(B, n_units)`` arrays, the oracle of the kernels: :class:`neurosim.equations.LayeredEquations`
#: (the same class the reference backend runs), under the name the schedules use
NumpyNet = LayeredEquations


def observe(net, x, mu, k, energies, recs, spec, r):
    """Errors and energies at step ``k`` (stored in ``energies[k]``), the probe record due then (record ``r``).

    Returns ``(eps, energy, r, bad)``: ``r`` counts the records written so far, ``bad`` is
    :func:`first_bad` (-1 while every value is finite).
    """
    eps, energy = net.errors(x, mu)
    energies[k] = energy
    if recs[0].shape[0] and k % spec.probe_every == 0:
        i = spec.probe_item
        recs[0][r], recs[1][r], recs[2][r], recs[3][r] = x[i], eps[i], mu[i], k
        r += 1
    return eps, energy, r, first_bad(energy, x, net.sl)


def diverged(energies, k, pop, y0, y, recs, r) -> BatchResult:
    rec_x, rec_eps, rec_mu, rec_steps = recs
    return BatchResult(steps=max(k, 0), energy=energies[:k + 1].copy(), status=STATUS_DIVERGED, fail_step=k,
                       fail_pop=pop, rec_steps=rec_steps[:r], rec_x=rec_x[:r], rec_eps=rec_eps[:r],
                       rec_mu=rec_mu[:r], y0=y0, y=y)
