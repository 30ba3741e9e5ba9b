r"""Closed-form checks of :mod:`neurosim.equations`, the one NumPy statement of the model.

Each check is derived from the model, not from the code: the hand-written derivatives of a linear chain, the
energy :math:`\tfrac12\pi\lVert x-\mu\rVert^2/B`, the feedback and the value drive as :math:`-\partial F/\partial x`
(finite differences), the Hebbian direction as :math:`-\partial F/\partial W` (finite differences), the fixed
point of the error-unit dynamics, the first steps of each optimiser, and the adjoint identities of the graph
projection math (convolution, pooling).
"""
from __future__ import annotations

import numpy as np
import pytest

import neurosim as ns
from neurosim.backends.base import MODE_CLAMP, MODE_FREE, MODE_NUDGE, RunSpec
from neurosim.backends.reference import ReferenceBackend
from neurosim.equations import (LayeredEquations, conv2d, conv2d_kernel_grad, conv2d_vjp, optimizer_step, pool,
                                pool_vjp)
from neurosim.plan import OPT_ADAM, OPT_SGD

from testkit import dag_circuit


def linear_chain(tau_eps=0.0):
    """x0 (input, 3) -> x1 (4, tau_x 0.7) -> x2 (target, 2, tau_x 1.3); linear, biases, multipliers 0.8 and 1.2,
    precisions 0.6 and 1.7."""
    plast = ns.Hebbian(lr=0.05, optimizer=ns.SGD())
    pops = (ns.ValuePopulation("x0", 3), ns.ValuePopulation("x1", 4, tau_x=0.7),
            ns.ValuePopulation("x2", 2, tau_x=1.3))
    errs = (ns.ErrorPopulation("e1", "x1", precision=0.6, tau_eps=tau_eps),
            ns.ErrorPopulation("e2", "x2", precision=1.7, tau_eps=tau_eps))
    projs = (ns.Projection("W1", "x0", "x1", bias=True, multiplier=0.8, plasticity=plast),
             ns.Projection("W2", "x1", "x2", bias=True, multiplier=1.2, plasticity=plast))
    clamps = (ns.Clamp("x0", "input"), ns.Clamp("x2", "target"))
    return ns.Circuit(pops, errs, projs, clamps, name="chain")


def equations(circuit, seed=0):
    """A reference backend of ``circuit`` with random biases, and its equations."""
    be = ReferenceBackend(ns.lower(circuit, seed=seed))
    be.b[:] = np.random.default_rng(seed + 50).normal(scale=0.3, size=be.b.shape)
    return be, LayeredEquations(be)


def random_state(eq, B=5, seed=1):
    return np.random.default_rng(seed).normal(size=(B, eq.p.n_units))


def total_energy(eq, x):
    mu = eq.predictions(x)
    return float(np.sum(eq.errors(x, mu)[1]))


# ----------------------------------------------------------------------------- the linear chain by hand
@pytest.mark.parametrize("mode", [MODE_CLAMP, MODE_NUDGE, MODE_FREE], ids=["clamp", "nudge", "free"])
def test_linear_chain_derivatives_equal_the_hand_written_formula(mode):
    be, eq = equations(linear_chain())
    B = 5
    x = random_state(eq, B)
    t = np.random.default_rng(9).normal(size=(B, 2))
    beta = 0.4
    x0, x1, x2 = x[:, 0:3], x[:, 3:7], x[:, 7:9]
    W1, W2, b1, b2 = be.weight(0), be.weight(1), be.bias(0), be.bias(1)
    mu1 = 0.8 * x0 @ W1.T + b1
    mu2 = 1.2 * x1 @ W2.T + b2
    e1, e2 = 0.6 * (x1 - mu1), 1.7 * (x2 - mu2)
    dx1 = (-e1 + 1.2 * e2 @ W2) / 0.7
    dx2 = {MODE_CLAMP: np.zeros_like(x2), MODE_FREE: -e2 / 1.3, MODE_NUDGE: (-e2 + beta * (t - x2)) / 1.3}[mode]
    dx, deps, eps, mu, energy = eq.derivatives(x, None, t, mode, beta)
    np.testing.assert_allclose(mu, np.hstack([np.zeros((B, 3)), mu1, mu2]), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(eps, np.hstack([np.zeros((B, 3)), e1, e2]), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dx, np.hstack([np.zeros((B, 3)), dx1, dx2]), rtol=1e-12, atol=1e-14)
    assert np.all(deps == 0.0)   # instantaneous error units have no state
    # the energy of each population: 1/2 pi |x - mu|^2, mean over the batch
    np.testing.assert_allclose(energy, [0.0, 0.5 * 0.6 * np.sum((x1 - mu1) ** 2) / B,
                                        0.5 * 1.7 * np.sum((x2 - mu2) ** 2) / B], rtol=1e-12)


def test_feedforward_sets_every_prediction_error_to_zero_and_clamps_the_target():
    be, eq = equations(dag_circuit(tau_eps=0.0))
    rng = np.random.default_rng(3)
    X, T = rng.normal(size=(4, 5)), rng.normal(size=(4, 4))
    x, phx = eq.forward(X)
    np.testing.assert_array_equal(phx, eq.phi(x))
    np.testing.assert_allclose(x - eq.predictions(x), np.hstack([X, np.zeros((4, eq.p.n_units - 5))]), atol=1e-14)
    xc = eq.feedforward(X, T, MODE_CLAMP)
    np.testing.assert_array_equal(xc[:, eq.tsl], T)


# ----------------------------------------------------------------------------- gradients of the energy
def _fd_grad(f, a, h=1e-6):
    """Central finite-difference gradient of ``f()`` with respect to every entry of ``a`` (changed in place)."""
    g = np.zeros(a.shape)
    flat, gflat = a.reshape(-1), g.reshape(-1)
    for j in range(flat.size):
        v = flat[j]
        flat[j] = v + h
        fp = f()
        flat[j] = v - h
        fm = f()
        flat[j] = v
        gflat[j] = (fp - fm) / (2 * h)
    return g


def test_feedback_and_drive_are_minus_the_energy_gradient_in_x():
    """On the DAG (two sources into one population, a skip, a multiplier, per-unit precisions, tanh and sigmoid):
    -eps + J^T eps = -B dF/dx for every unit (inputs included: they have no error, only feedback)."""
    be, eq = equations(dag_circuit(tau_eps=0.0))
    B = 4
    x = random_state(eq, B, seed=2)
    eps, _ = eq.errors(x, eq.predictions(x))
    grad = _fd_grad(lambda: total_energy(eq, x), x)
    lhs = -eps + eq.feedback(eps, eq.dphi(x))
    np.testing.assert_allclose(lhs, -B * grad, rtol=1e-6, atol=1e-8)
    # the drive is the same on the moving units (free populations and a free target), 0 on inputs
    d = eq.drive(x, eps, eq.dphi(x), MODE_FREE)
    move = eq.move_nudge
    np.testing.assert_allclose(d[:, move], -B * grad[:, move], rtol=1e-6, atol=1e-8)
    assert np.all(d[:, ~move] == 0.0)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_hebbian_direction_is_minus_the_energy_gradient_in_the_parameters(reduction):
    plast = ns.Hebbian(lr=0.05, batch_reduction=reduction)
    be, eq = equations(dag_circuit(tau_eps=0.0, plasticity=plast))
    B = 4
    x = random_state(eq, B, seed=4)
    eps, _ = eq.errors(x, eq.predictions(x))
    gW, gb = eq.directions(eps, eq.phi(x))
    c = 1.0 if reduction == "mean" else float(B)   # the sum reduction is B times -dF/dtheta
    assert sorted(gW) == [k for k in range(eq.p.n_proj) if eq.p.w_off[k] >= 0]
    for k, g in gW.items():
        np.testing.assert_allclose(g, -c * _fd_grad(lambda: total_energy(eq, x), be.weight(k)), rtol=1e-6,
                                   atol=1e-8)
    assert sorted(gb) == [k for k in range(eq.p.n_proj) if eq.p.b_off[k] >= 0] and gb
    for k, g in gb.items():
        np.testing.assert_allclose(g, -c * _fd_grad(lambda: total_energy(eq, x), be.bias(k)), rtol=1e-6,
                                   atol=1e-8)


# ----------------------------------------------------------------------------- error units with dynamics
def test_error_unit_dynamics_have_the_instantaneous_error_as_fixed_point():
    be, eq = equations(linear_chain(tau_eps=0.5))
    x = random_state(eq, 3, seed=5)
    mu = eq.predictions(x)
    inst = eq.errors(x, mu)[0]                        # pi (x - mu)
    assert np.any(inst != 0.0)
    _, deps, eps, _, _ = eq.derivatives(x, inst, None, MODE_CLAMP)
    np.testing.assert_array_equal(eps, inst)          # the error read out is the state
    np.testing.assert_allclose(deps, 0.0, atol=1e-14)
    # away from it: tau_eps deps/dt = (x - mu) - eps / pi, and Euler steps at fixed x converge to pi (x - mu)
    state = np.zeros_like(x)
    _, deps, eps, _, _ = eq.derivatives(x, state, None, MODE_CLAMP)
    assert np.all(eps == 0.0)
    np.testing.assert_allclose(deps[:, 3:], (x - mu)[:, 3:] / 0.5, rtol=1e-12)
    for _ in range(400):
        state = state + 0.05 * eq.error_rates(x, mu, state)
    np.testing.assert_allclose(state, inst, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- optimisers
def test_optimizer_steps_have_their_closed_forms():
    rng = np.random.default_rng(6)
    p0, g1, g2 = rng.normal(size=5), rng.normal(size=5), rng.normal(size=5)
    lr, mom, wd, b1, b2, e = 0.1, 0.9, 0.01, 0.8, 0.99, 1e-8
    # SGD with weight decay: theta += lr (g - wd theta)
    p, m, v = p0.copy(), np.zeros(5), np.zeros(5)
    optimizer_step(p, g1, m, v, 1, lr, OPT_SGD, (0.0, wd, b1, b2, e))
    np.testing.assert_allclose(p, p0 + lr * (g1 - wd * p0), rtol=1e-14)
    # momentum: m = g1, then m = mom g1 + g2
    p, m = p0.copy(), np.zeros(5)
    optimizer_step(p, g1, m, v, 1, lr, OPT_SGD, (mom, 0.0, b1, b2, e))
    optimizer_step(p, g2, m, v, 2, lr, OPT_SGD, (mom, 0.0, b1, b2, e))
    np.testing.assert_allclose(p, p0 + lr * g1 + lr * (mom * g1 + g2), rtol=1e-14)
    # Adam: the first step is lr g / (|g| + eps); the second uses bias-corrected moments
    p, m, v = p0.copy(), np.zeros(5), np.zeros(5)
    optimizer_step(p, g1, m, v, 1, lr, OPT_ADAM, (0.0, 0.0, b1, b2, e))
    np.testing.assert_allclose(p, p0 + lr * g1 / (np.abs(g1) + e), rtol=1e-12)
    p1 = p.copy()
    optimizer_step(p, g2, m, v, 2, lr, OPT_ADAM, (0.0, 0.0, b1, b2, e))
    mh = (b1 * (1 - b1) * g1 + (1 - b1) * g2) / (1 - b1 ** 2)
    vh = (b2 * (1 - b2) * g1 ** 2 + (1 - b2) * g2 ** 2) / (1 - b2 ** 2)
    np.testing.assert_allclose(p, p1 + lr * mh / (np.sqrt(vh) + e), rtol=1e-12)


def test_learn_applies_the_hebbian_direction_through_the_optimiser():
    be, eq = equations(linear_chain())
    x = random_state(eq, 6, seed=8)
    eps, _ = eq.errors(x, eq.predictions(x))
    gW, gb = eq.directions(eps, eq.phi(x))
    W0, b0 = [be.weight(k).copy() for k in range(2)], [be.bias(k).copy() for k in range(2)]
    eq.learn(x, eps)
    for k in range(2):
        np.testing.assert_allclose(be.weight(k), W0[k] + 0.05 * gW[k], rtol=1e-14)
        np.testing.assert_allclose(be.bias(k), b0[k] + 0.05 * gb[k], rtol=1e-14)
    assert list(be.opt_t) == [1, 1]


# ----------------------------------------------------------------------------- graph projection math
def test_convolution_by_the_definition_and_its_adjoints():
    rng = np.random.default_rng(10)
    a, K = rng.normal(size=(2, 3, 5, 6)), rng.normal(size=(4, 3, 3, 2))
    s, pad = 2, 1
    y = conv2d(a, K, s, pad)
    ap = np.pad(a, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    direct = np.zeros_like(y)
    for r in range(y.shape[2]):
        for c in range(y.shape[3]):
            direct[:, :, r, c] = np.einsum("biuv,oiuv->bo", ap[:, :, r * s:r * s + 3, c * s:c * s + 2], K)
    np.testing.assert_allclose(y, direct, rtol=1e-12, atol=1e-13)
    e = rng.normal(size=y.shape)
    # <conv(a, K), e> = <a, conv_vjp(e, K)> = <K, kernel_grad(e, a)>
    ref = np.sum(y * e)
    assert np.sum(a * conv2d_vjp(e, K, a.shape[1:], s, pad)) == pytest.approx(ref, rel=1e-12)
    assert np.sum(K * conv2d_kernel_grad(e, a, K.shape, s, pad)) == pytest.approx(ref, rel=1e-12)


def test_pooling_and_its_vector_jacobian_products():
    rng = np.random.default_rng(11)
    a = rng.normal(size=(2, 3, 4, 6))
    e = rng.normal(size=(2, 3, 2, 3))
    avg = pool(a, 2, 2, "avg")
    np.testing.assert_allclose(avg, a.reshape(2, 3, 2, 2, 3, 2).mean(axis=(3, 5)), rtol=1e-12)
    assert np.sum(a * pool_vjp(e, a, 2, 2, "avg")) == pytest.approx(np.sum(avg * e), rel=1e-12)
    mx = pool(a, 2, 2, "max")
    np.testing.assert_array_equal(mx, a.reshape(2, 3, 2, 2, 3, 2).max(axis=(3, 5)))
    g = pool_vjp(e, a, 2, 2, "max")   # e routed to the maximum of each window (non-overlapping windows here)
    at_max = a == np.repeat(np.repeat(mx, 2, axis=2), 2, axis=3)
    np.testing.assert_array_equal(g != 0.0, at_max)
    np.testing.assert_array_equal(g.reshape(2, 3, 2, 2, 3, 2).sum(axis=(3, 5)), e)


# ----------------------------------------------------------------------------- the reference backend runs them
def test_reference_backend_steps_are_euler_steps_of_the_equations():
    """Same code path: one Euler step of ReferenceBackend.run_batch is x + dt dx/dt of LayeredEquations."""
    be, eq = equations(dag_circuit(tau_eps=0.3))
    rng = np.random.default_rng(12)
    X, T = rng.normal(size=(3, 5)), rng.normal(size=(3, 4))
    spec = RunSpec(n_steps=1, dt=0.1)
    be.run_batch(X, T, spec)
    x0 = eq.feedforward(X, T, MODE_CLAMP)
    e0 = eq.initial_errors(x0)
    dx, deps, _, _, _ = eq.derivatives(x0, e0, T, MODE_CLAMP)
    np.testing.assert_array_equal(be.state()["x"], x0 + 0.1 * dx)
    _, _, eps1, _, _ = eq.derivatives(x0 + 0.1 * dx, e0 + 0.1 * deps, T, MODE_CLAMP)
    np.testing.assert_array_equal(be.state()["eps"], eps1)
