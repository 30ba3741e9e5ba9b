r"""A second, deliberately naive implementation of the predictive-coding equations, written from the
model statement (not from the backends), used by the tests as an independent oracle.

It works on the *declaration* (a :class:`neurosim.Circuit`) and a weight dictionary as returned by
``Simulator.weights`` (``{proj: W (n_post, n_pre), proj + ".b": b (n_post,)}``); states are dictionaries
``{population: array (B, n)}``.

.. math::

    \mu_l = \sum_{k \to l} a_k W_k \phi(x_k) + b_k (+ x_k), \qquad
    \varepsilon_l = \pi_l (x_l - \mu_l) \text{ or the state } e_l \text{ when } \tau_\varepsilon > 0,

    \tau_\varepsilon \dot e_l = x_l - \mu_l - e_l / \pi_l, \qquad
    \tau_x \dot x_l = -\varepsilon_l + \phi'(x_l) \odot \sum_{l \to m} a_m W_m^T \varepsilon_m (+ \varepsilon_m),

    F = \sum_l \tfrac{1}{2B} \sum_b \sum_i \pi_{l,i} (x_l - \mu_l)_{b,i}^2 .
"""
from __future__ import annotations

import numpy as np

LEAK = 0.01


def phi(name, x):
    x = np.asarray(x, dtype=float)
    if name == "linear":
        return x.copy()
    if name == "tanh":
        return np.tanh(x)
    if name == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * x))  # = 1 / (1 + exp(-x)), written differently on purpose
    if name == "relu":
        return np.where(x > 0, x, 0.0)
    if name == "leaky_relu":
        return np.where(x > 0, x, LEAK * x)
    raise KeyError(name)


def dphi(name, x):
    x = np.asarray(x, dtype=float)
    if name == "linear":
        return np.ones_like(x)
    if name == "tanh":
        return 1.0 / np.cosh(x) ** 2
    if name == "sigmoid":
        s = phi("sigmoid", x)
        return s - s * s
    if name == "relu":
        return np.where(x > 0, 1.0, 0.0)
    if name == "leaky_relu":
        return np.where(x > 0, 1.0, LEAK)
    raise KeyError(name)


def _pop(circuit, name):
    return next(p for p in circuit.populations if p.name == name)


def _err(circuit, name):
    return next((e for e in circuit.errors if e.value == name), None)


def _prec(circuit, name):
    e = _err(circuit, name)
    n = _pop(circuit, name).size
    if isinstance(e.precision, tuple):
        return np.array(e.precision, dtype=float)
    return np.full(n, float(e.precision))


def input_names(circuit):
    """Input populations in the column order of ``X`` (topological = declaration order of the inputs)."""
    ins = set(circuit.inputs)
    return [n for n in circuit.topological_order() if n in ins]


def target_name(circuit):
    return circuit.targets[0] if circuit.targets else None


def split_inputs(circuit, X):
    out, o = {}, 0
    for n in input_names(circuit):
        k = _pop(circuit, n).size
        out[n] = np.asarray(X, dtype=float)[:, o:o + k]
        o += k
    assert o == X.shape[1]
    return out


def prediction(circuit, W, x, name):
    """mu of population ``name`` from the state dict ``x``."""
    B = next(iter(x.values())).shape[0]
    mu = np.zeros((B, _pop(circuit, name).size))
    for pr in circuit.projections:
        if pr.post != name:
            continue
        pre = x[pr.pre]
        if pr.weights:
            mu += pr.multiplier * phi(_pop(circuit, pr.pre).phi, pre) @ W[pr.name].T
        if pr.bias:
            mu += W[pr.name + ".b"]
        if pr.skip:
            mu += pre
    return mu


def feedforward(circuit, W, X, Y=None):
    """Feedforward state (every non-input population at its prediction), target set to Y if given."""
    x = split_inputs(circuit, X)
    for n in circuit.topological_order():
        if n not in x:
            x[n] = prediction(circuit, W, x, n)
    if Y is not None:
        x[target_name(circuit)] = np.asarray(Y, dtype=float).copy()
    return x


def derivatives(circuit, W, x, es=None, t=None, mode="clamp", beta=0.0):
    """(dx, de, eps, mu, energy) as dicts; ``es`` holds the error state of populations with tau_eps > 0."""
    es = es or {}
    mu, eps, de, energy = {}, {}, {}, {}
    for e in circuit.errors:
        n = e.value
        B = x[n].shape[0]
        mu[n] = prediction(circuit, W, x, n)
        d = x[n] - mu[n]
        pi = _prec(circuit, n)
        energy[n] = 0.5 * np.sum(pi * d * d) / B
        if e.tau_eps > 0:
            eps[n] = es[n]
            de[n] = (d - es[n] / pi) / e.tau_eps
        else:
            eps[n] = pi * d
    dx = {}
    clamped = set(circuit.inputs)
    if mode == "clamp" and target_name(circuit) is not None:
        clamped.add(target_name(circuit))
    for p in circuit.populations:
        n = p.name
        if n in clamped:
            dx[n] = np.zeros_like(x[n])
            continue
        fb = np.zeros_like(x[n])
        sk = np.zeros_like(x[n])
        for pr in circuit.projections:
            if pr.pre != n:
                continue
            if pr.weights:
                fb += pr.multiplier * eps[pr.post] @ W[pr.name]
            if pr.skip:
                sk += eps[pr.post]
        drive = -eps[n] + dphi(p.phi, x[n]) * fb + sk
        if mode == "nudge" and n == target_name(circuit):
            drive = drive + beta * (t - x[n])
        dx[n] = drive / p.tau_x
    return dx, de, eps, mu, energy


def initial_error_state(circuit, W, x):
    return {e.value: _prec(circuit, e.value) * (x[e.value] - prediction(circuit, W, x, e.value))
            for e in circuit.errors if e.tau_eps > 0}


def step(circuit, W, x, es, dt, t=None, mode="clamp", beta=0.0, integrator="euler"):
    """One synchronous explicit step (Euler or Heun)."""
    dx, de, *_ = derivatives(circuit, W, x, es, t, mode, beta)
    x1 = {n: x[n] + dt * dx[n] for n in x}
    e1 = {n: es[n] + dt * de[n] for n in es}
    if integrator == "euler":
        return x1, e1
    dx2, de2, *_ = derivatives(circuit, W, x1, e1, t, mode, beta)
    return ({n: x[n] + 0.5 * dt * (dx[n] + dx2[n]) for n in x},
            {n: es[n] + 0.5 * dt * (de[n] + de2[n]) for n in es})


def total_energy(circuit, W, x, es=None):
    return sum(derivatives(circuit, W, x, es, mode="clamp")[4].values())


def max_rate(circuit, W, x, es=None, t=None, mode="clamp", beta=0.0):
    """max |dx/dt| and |de/dt| over all units (what ``tol`` compares)."""
    dx, de, *_ = derivatives(circuit, W, x, es, t, mode, beta)
    vals = [np.max(np.abs(v)) for v in list(dx.values()) + list(de.values()) if v.size]
    return max(vals)
