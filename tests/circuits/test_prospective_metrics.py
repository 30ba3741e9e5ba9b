"""Metrics of prospective configuration against hand-computed cases (neurosim.metrics)."""
from __future__ import annotations

import numpy as np
import pytest

import neurosim as ns
from neurosim import metrics

from neurosim.circuits._prospective_common import Relax, learn_step, output


def test_cosine_hand_cases():
    assert metrics.cosine([1.0, 0.0], [0.0, 2.0]) == pytest.approx(0.0)
    assert metrics.cosine([1.0, 1.0], [3.0, 3.0]) == pytest.approx(1.0)
    assert metrics.cosine([1.0, 2.0], [-2.0, -4.0]) == pytest.approx(-1.0)
    assert metrics.cosine([3.0, 4.0], [4.0, 3.0]) == pytest.approx(24.0 / 25.0)
    assert np.isnan(metrics.cosine([0.0, 0.0], [1.0, 0.0]))
    rows = metrics.cosine([[1.0, 0.0], [1.0, 1.0]], [[1.0, 0.0], [1.0, -1.0]])
    np.testing.assert_allclose(rows, [1.0, 0.0], atol=1e-15)
    with pytest.raises(ValueError, match="shape"):
        metrics.cosine([1.0, 0.0], [1.0, 0.0, 0.0])


def test_target_alignment_hand_case_and_batch_mean():
    # y moves from (1, 1) to (0.5, 1.5) with target (0, 1): Delta y = (-.5, .5), t - y = (-1, 0)
    assert metrics.target_alignment([1.0, 1.0], [0.5, 1.5], [0.0, 1.0]) == pytest.approx(np.sqrt(0.5))
    yb = np.array([[1.0, 1.0], [0.0, 0.0]])
    ya = np.array([[0.5, 1.5], [0.0, 2.0]])
    t = np.array([[0.0, 1.0], [0.0, 1.0]])
    per = metrics.target_alignment(yb, ya, t, per_sample=True)
    np.testing.assert_allclose(per, [np.sqrt(0.5), 1.0])
    assert metrics.target_alignment(yb, ya, t) == pytest.approx(np.mean(per))
    assert metrics.target_alignment_angle(1.0) == pytest.approx(0.0)
    assert metrics.target_alignment_angle(0.0) == pytest.approx(90.0)
    np.testing.assert_allclose(metrics.target_alignment_angle(np.array([np.sqrt(0.5), -1.0])), [45.0, 180.0])
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.target_alignment([1.0, 1.0], [0.5, 1.5], [0.0, 1.0, 2.0])


def test_bear_target_alignment_fractions():
    """Hand computation of the first bear step (s=1, w=1, v=(1,1), t=(0,1), lr=0.2).

    PC: eps_out = (I + v v^T)^-1 (t - y) = (-2, 1)/3, eps_h = -1/3, x_h = 2/3, so w' = 14/15,
    v' = (41/45, 47/45), y' = (574/675, 658/675), Delta y = -(101, 17)/675 and TA = 101/sqrt(101^2 + 17^2).
    BP: w' = 0.8, v' = (0.8, 1), y' = (0.64, 0.8), Delta y = -(0.36, 0.2), TA = 9/sqrt(106).
    """
    y0, t = np.array([1.0, 1.0]), np.array([0.0, 1.0])
    assert metrics.target_alignment(y0, [574 / 675, 658 / 675], t) == pytest.approx(101 / np.sqrt(101 ** 2 + 17 ** 2))
    assert metrics.target_alignment(y0, [0.64, 0.8], t) == pytest.approx(9 / np.sqrt(106))


@pytest.mark.parametrize("backend", ["numba", "reference"])
@pytest.mark.parametrize("bias", [False, True])
def test_single_weight_layer_has_target_alignment_one_under_both_rules(backend, bias):
    """One weight layer: Delta y = lr (||s||^2 + [bias]) (t - y) for PC and BP alike, so TA = 1 (one sample)
    and the two rules take identical steps (also on a mini-batch)."""
    net = ns.hierarchy([5, 3], bias=bias, lr=0.05, optimizer=ns.SGD(), init=ns.Init("normal", std=0.5))
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(4, 5)), rng.normal(size=(4, 3))
    relax = Relax(steps=20, dt=0.1, dt_decay=0.5)
    batch_after = {}
    for rule in ("pc", "bp"):
        sim = ns.Simulator(net, dt=0.1, backend=backend, seed=1)
        y0 = output(sim, X[:1])
        learn_step(sim, rule, X[:1], Y[:1], relax)
        y1 = output(sim, X[:1])
        np.testing.assert_allclose(y1 - y0, 0.05 * (np.sum(X[0] ** 2) + bias) * (Y[:1] - y0), atol=1e-12)
        assert metrics.target_alignment(y0, y1, Y[:1]) == pytest.approx(1.0, abs=1e-12)
        simb = ns.Simulator(net, dt=0.1, backend=backend, seed=1)
        learn_step(simb, rule, X, Y, relax)
        batch_after[rule] = simb.weights["W1"]
    np.testing.assert_allclose(batch_after["pc"], batch_after["bp"], atol=1e-12)


def test_prospective_index_definition():
    # x- = (0, 0), x+ = (1, 0), x-' = (1, 1): cos 45 degrees
    assert metrics.prospective_index([0.0, 0.0], [1.0, 0.0], [1.0, 1.0]) == pytest.approx(np.sqrt(0.5))
    assert metrics.prospective_index([1.0, 2.0], [0.0, 0.0], [0.5, 1.0]) == pytest.approx(1.0)
    assert metrics.prospective_index([1.0, 2.0], [0.0, 0.0], [2.0, 4.0]) == pytest.approx(-1.0)
    # for the output layer x+ = t, so PI equals the target alignment
    yb, ya, t = np.array([0.3, -1.0, 2.0]), np.array([0.1, -0.5, 2.5]), np.array([-1.0, 1.0, 1.0])
    assert metrics.prospective_index(yb, t, ya) == pytest.approx(metrics.target_alignment(yb, ya, t))
    per = metrics.prospective_index([[0.0, 0.0], [0.0, 0.0]], [[1.0, 0.0], [1.0, 0.0]], [[1.0, 1.0], [2.0, 0.0]],
                                    per_sample=True)
    np.testing.assert_allclose(per, [np.sqrt(0.5), 1.0])


def test_prospective_index_of_a_linear_two_layer_net_by_hand():
    """1-2-1 linear, W1 = (1, 2)^T, W2 = (1, 1), s = 1, t = 0, lr = 0.1.

    y = 3; eps_out = (t - y) / (1 + |W2|^2) = -1; eps_h = W2^T eps_out = (-1, -1); x+ = W1 s + eps_h = (0, 1).
    One Hebbian step: W1' = W1 + lr eps_h s^T = (0.9, 1.9)^T, so x-' - x- = (-0.1, -0.1) || x+ - x- and the
    hidden PI is 1; W2' = W2 + lr eps_out x+^T = (1, 0.9), y' = 0.9*1 + ... = 0.9 + 1.71 = 2.61.
    """
    net = ns.hierarchy([1, 2, 1], phi="linear", bias=False, lr=0.1, optimizer=ns.SGD(), init=ns.Init("zeros"))
    sim = ns.Simulator(net, dt=0.1, backend="reference", seed=0)
    sim.set_weights("W1", W=[[1.0], [2.0]])
    sim.set_weights("W2", W=[[1.0, 1.0]])
    X, Y = np.ones((1, 1)), np.zeros((1, 1))
    res = sim.run(X, Y, steps=400, mode="clamp")
    np.testing.assert_allclose(res.x["h1"], [[0.0, 1.0]], atol=1e-12)
    sim.run(X, Y, steps=0, mode="clamp", init="previous", learn=True)
    np.testing.assert_allclose(sim.weights["W1"], [[0.9], [1.9]], atol=1e-12)
    np.testing.assert_allclose(sim.weights["W2"], [[1.0, 0.9]], atol=1e-12)
    assert output(sim, X)[0, 0] == pytest.approx(2.61, abs=1e-12)
    assert metrics.prospective_index([[1.0, 2.0]], res.x["h1"], [[0.9, 1.9]]) == pytest.approx(1.0, abs=1e-12)
    assert metrics.prospective_index([[3.0]], [[0.0]], [[2.61]]) == pytest.approx(1.0)


def test_trajectory_metrics_hand_cases():
    straight = np.array([[0.0, 0.0], [1.0, 1.0], [3.0, 3.0]])
    assert metrics.trajectory_length(straight) == pytest.approx(3 * np.sqrt(2))
    assert metrics.displacement(straight) == pytest.approx(3 * np.sqrt(2))
    assert metrics.erraticness(straight) == pytest.approx(1.0)
    assert metrics.zigzags(straight) == 0
    zz = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0], [3.0, 1.0]])
    assert metrics.trajectory_length(zz) == pytest.approx(3 * np.sqrt(2))
    assert metrics.displacement(zz) == pytest.approx(np.sqrt(10))
    assert metrics.erraticness(zz) == pytest.approx(3 * np.sqrt(2) / np.sqrt(10))
    np.testing.assert_allclose(metrics.step_cosines(zz), [0.0, 0.0], atol=1e-15)
    back = np.array([[0.0], [1.0], [0.5], [1.5]])
    np.testing.assert_allclose(metrics.step_cosines(back), [-1.0, -1.0])
    assert metrics.zigzags(back) == 2
    assert np.isnan(metrics.erraticness(np.array([[0.0], [1.0], [0.0]])))
    with pytest.raises(ValueError, match="at least 2"):
        metrics.trajectory_length(np.zeros((1, 3)))


def test_linear_fit_closed_form():
    m = np.array([1.0, 2.0, 4.0])
    f = metrics.linear_fit(m, 3 * m - 1)
    assert f["k"] == pytest.approx(3.0) and f["b"] == pytest.approx(-1.0) and f["sse"] == pytest.approx(0.0, abs=1e-20)
    g = metrics.linear_fit(m, 2 * m, offset=False)
    assert g["k"] == pytest.approx(2.0) and g["b"] == 0.0
    # least squares by hand: model (0, 1, 2), data (0, 2, 1): k = 0.5, b = 0.5, residuals (.5, -1, .5)
    h = metrics.linear_fit([0.0, 1.0, 2.0], [0.0, 2.0, 1.0])
    assert h["k"] == pytest.approx(0.5) and h["b"] == pytest.approx(0.5) and h["sse"] == pytest.approx(1.5)
    const = metrics.linear_fit([1.0, 1.0, 1.0], [1.0, 2.0, 6.0])
    assert const["k"] == 0.0 and const["b"] == pytest.approx(3.0) and const["sse"] == pytest.approx(14.0)
    with pytest.raises(ValueError, match="one per condition"):
        metrics.linear_fit([1.0, 2.0], [1.0, 2.0, 3.0])
