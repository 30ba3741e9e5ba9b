"""Shared fixtures of the algorithm / theory tests: small circuits, data, a chain backprop oracle."""
from __future__ import annotations

import numpy as np

import neurosim as ns
from neurosim.mupc import mupc_network

from testkit import TOL, assert_close  # noqa: F401  (numba vs reference to 1e-10, relative to max(1, |value|))

BACKENDS = ["reference", "numba"]


def data(n=12, n_in=5, n_out=4, seed=0, onehot=False):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in))
    Y = np.eye(n_out)[rng.integers(0, n_out, n)] if onehot else rng.normal(size=(n, n_out))
    return X, Y


def mlp(sizes=(5, 7, 6, 6, 4), phi="tanh", **kw):
    kw.setdefault("bias", True)
    kw.setdefault("lr", 0.01)
    kw.setdefault("optimizer", ns.SGD())
    return ns.hierarchy(list(sizes), phi=phi, **kw)


def residual_graph(levelled=True, n=5, lr=0.05):
    """h1 -> h2 -> out plus an identity skip h1 -> out (through an identity population when levelled)."""
    P = ns.ValuePopulation
    pops = [P("input", 4), P("h1", n, "tanh"), P("h2", n, "tanh"), P("out", n)]
    errs = [ns.ErrorPopulation(f"eps_{p}", p) for p in ("h1", "h2", "out")]
    heb = ns.Hebbian(lr=lr)
    projs = [ns.Projection("W1", "input", "h1", bias=True, plasticity=heb),
             ns.Projection("W2", "h1", "h2", bias=True, plasticity=heb),
             ns.Projection("W3", "h2", "out", plasticity=heb)]
    if levelled:
        pops.insert(2, P("id1", n))
        errs.append(ns.ErrorPopulation("eps_id1", "id1"))
        projs += [ns.Projection("I1", "h1", "id1", weights=False, skip=True, plasticity=None),
                  ns.Projection("S1", "id1", "out", weights=False, skip=True, plasticity=None)]
    else:
        projs.append(ns.Projection("S1", "h1", "out", weights=False, skip=True, plasticity=None))
    return ns.Circuit(pops, errs, projs, [ns.Clamp("input", "input"), ns.Clamp("out", "target")],
                      name="resgraph" + ("-levelled" if levelled else ""))


def circuits():
    """A spread of layered circuits: biases, muPC skips/multipliers, Adam, momentum, sum reduction, precisions."""
    return {
        "mlp": mlp(lr=0.05),
        "mupc": mupc_network(5, 6, 3, 4, phi="tanh", lr=0.01),
        "adam_sum": mlp((5, 6, 5, 4), phi="sigmoid", lr=0.01, optimizer=ns.Adam(), batch_reduction="sum",
                        precision=0.8, output_precision=1.5),
        "momentum_relu": mlp((5, 6, 6, 4), phi="leaky_relu", lr=0.02, optimizer=ns.SGD(momentum=0.9, weight_decay=1e-3)),
        "graph": residual_graph(levelled=True),
        # settings users change: a slower time constant and non-unit precisions (a dropped 1/tau_x or
        # precision factor in one implementation shows here)
        "tau_prec": tau_prec_mlp(),
        # one precision per unit in a hidden population (the numba schedules run the circuit's vertex form,
        # whose vertices take per-unit precisions)
        "per_unit_prec": per_unit_precision_mlp(),
    }


def per_unit_precision_mlp():
    import dataclasses
    c = mlp((5, 6, 4), phi="tanh", lr=0.05)
    errs = tuple(dataclasses.replace(e, precision=(0.5, 0.8, 1.0, 1.2, 1.5, 2.0)) if e.value == "h1" else e
                 for e in c.errors)
    return dataclasses.replace(c, errors=errs)


def tau_prec_mlp(sizes=(5, 7, 6, 4), tau_x=2.0, precision=0.5, output_precision=1.3, **kw):
    """A non-square MLP with tau_x != 1 and hidden/output precisions != 1."""
    return mlp(sizes, tau_x=tau_x, precision=precision, output_precision=output_precision, **kw)


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(b))


def max_rel(dirs, grads):
    """max over projections of || g - (-grad) || / || grad || for (g_W, g_b) vs BP (grad_W, grad_b)."""
    dW, db = dirs
    gW, gb = grads
    return max([rel(dW[k], -gW[k]) for k in gW] + [rel(db[k], -gb[k]) for k in gb])


def chain_backprop(sim, X, delta_L):
    """Gradients (batch mean) of a layered circuit for an arbitrary output error signal ``delta_L`` (B, n_L):
    the vector-Jacobian product (d yhat / d theta)^T delta_L, written independently of the package code."""
    from neurosim import activations as act
    from neurosim.algorithms.backprop import forward
    p = sim.plan
    names = {a.code: a.name for a in act.ACTIVATIONS.values()}
    x = forward(sim.backend, X)
    sl = [p.units(n) for n in p.pop_names]
    delta = np.zeros_like(x)
    delta[:, sl[p.target_pop]] = delta_L
    gW, gb = {}, {}
    B = X.shape[0]
    for k in reversed(range(p.n_proj)):
        pre, post = p.proj_pre[k], p.proj_post[k]
        d = delta[:, sl[post]]
        nm = names[int(p.pop_phi[pre])]
        if p.w_off[k] >= 0:
            gW[k] = p.proj_mult[k] * d.T @ act.phi(nm, x[:, sl[pre]]) / B
            if pre not in p.input_pops:
                delta[:, sl[pre]] += act.dphi(nm, x[:, sl[pre]]) * (p.proj_mult[k] * d @ sim.backend.weight(k))
        if p.b_off[k] >= 0:
            gb[k] = d.sum(0) / B
        if p.proj_skip[k] and pre not in p.input_pops:
            delta[:, sl[pre]] += d
    return gW, gb


def output_jacobians(sim, X):
    """Per-sample Jacobians J_k = d yhat / d z_k (B, n_L, n_k) of a chain at the feedforward point, k = 1..L-1."""
    from neurosim import activations as act
    from neurosim.algorithms.backprop import forward
    p = sim.plan
    names = {a.code: a.name for a in act.ACTIVATIONS.values()}
    x = forward(sim.backend, X)
    B = X.shape[0]
    L = p.n_pops - 1
    J = [None] * L
    nL = int(p.pop_size[L])
    cur = np.broadcast_to(np.eye(nL), (B, nL, nL)).copy()   # d yhat / d z_L
    for l in range(L, 1, -1):                                 # from z_l to z_{l-1}
        k = p.in_start[l]
        zp = x[:, p.units(p.pop_names[l - 1])]
        loc = p.proj_mult[k] * sim.backend.weight(k)[None] * act.dphi(names[int(p.pop_phi[l - 1])], zp)[:, None, :]
        if p.proj_skip[k]:
            loc = loc + np.eye(zp.shape[1])[None]
        cur = cur @ loc
        J[l - 1] = cur
    return J[1:]
