"""Every vertex function: forward against a literal definition, feedback path (Jacobian transpose) and parameter
term against central finite differences, and the numba kernels against the NumPy reference."""
from __future__ import annotations

import numpy as np
import pytest

from neurosim import graph as ng
from neurosim.graph import Act, Conv2d, Dense, Graph, Identity, Input, Pool, Product, Sum
from neurosim.graph.ops import conv2d, pool, vertex_forward, vertex_param_grads, vertex_vjp

B = 3
H_FD = 1e-6

CASES = {
    "dense_tanh": ([(5,)], lambda p: Dense("v", p, 4, phi="tanh", multiplier=0.7)),
    "dense_relu_nobias": ([(6,)], lambda p: Dense("v", p, 3, phi="relu", bias=False)),
    "dense_two_parents": ([(3,), (2, 3, 2)], lambda p: Dense("v", p, 4, phi=("sigmoid", "leaky_relu"),
                                                              multiplier=(1.0, -0.5))),
    "dense_to_image": ([(4,)], lambda p: Dense("v", p, 18, shape=(2, 3, 3), phi="tanh")),
    "conv_s1_p1_tanh": ([(2, 5, 5)], lambda p: Conv2d("v", p[0], 3, kernel=3, stride=1, padding=1, phi="tanh",
                                                       multiplier=1.3)),
    "conv_s2_p0_rect": ([(2, 6, 7)], lambda p: Conv2d("v", p[0], 2, kernel=(2, 3), stride=2, padding=0,
                                                       phi="sigmoid")),
    "conv_s2_p1_relu": ([(3, 5, 4)], lambda p: Conv2d("v", p[0], 2, kernel=3, stride=2, padding=1, phi="relu",
                                                       bias=False)),
    "maxpool_2_2": ([(2, 4, 4)], lambda p: Pool("v", p[0], size=2, kind="max")),
    "maxpool_3_1": ([(2, 5, 5)], lambda p: Pool("v", p[0], size=3, stride=1, kind="max")),
    "avgpool_2_1": ([(2, 4, 5)], lambda p: Pool("v", p[0], size=2, stride=1, kind="avg")),
    "avgpool_3_2": ([(1, 7, 7)], lambda p: Pool("v", p[0], size=3, stride=2, kind="avg")),
    "sum_coefficients": ([(4,), (4,)], lambda p: Sum("v", p, coefficients=(0.5, -2.0))),
    "product_2": ([(2, 2, 2), (2, 2, 2)], lambda p: Product("v", p)),
    "product_3": ([(5,), (5,), (5,)], lambda p: Product("v", p)),
    "product_square": ([(4,)], lambda p: Product("v", (p[0], p[0]))),
    "act_sigmoid": ([(6,)], lambda p: Act("v", p[0], "sigmoid")),
    "act_tanh": ([(6,)], lambda p: Act("v", p[0], "tanh")),
    "act_relu": ([(6,)], lambda p: Act("v", p[0], "relu")),
    "act_leaky_relu": ([(6,)], lambda p: Act("v", p[0], "leaky_relu")),
    "identity": ([(3, 2, 1)], lambda p: Identity("v", p[0])),
}


def _setup(name, seed=0):
    shapes, make = CASES[name]
    verts = [Input(f"u{j}", s) for j, s in enumerate(shapes)] + [Identity(f"p{j}", f"u{j}") for j in range(len(shapes))]
    verts.append(make([f"p{j}" for j in range(len(shapes))]))
    plan = ng.lower_graph(Graph(verts, "v", name="case"), seed=seed)
    rng = np.random.default_rng(seed + 1)
    theta = plan.theta0 + 0.3 * rng.normal(size=plan.theta0.shape)  # biases non-zero too
    xs = [rng.normal(size=(B, int(plan.VI[i, 2]))) for i in range(plan.n_vertices)]
    i = plan.vertex_index("v")
    e = rng.normal(size=(B, int(plan.VI[i, 2])))
    parents = sorted({plan.vertex_index(f"p{j}") for j in range(len(shapes))})
    return plan, theta, xs, i, e, parents


def _fd_vjp(plan, theta, xs, i, e, p):
    """(dg_i/dx_p)^T e by central differences, one column of x_p at a time (batch rows are independent)."""
    out = np.zeros_like(xs[p])
    for j in range(xs[p].shape[1]):
        xp, xm = [a.copy() for a in xs], [a.copy() for a in xs]
        xp[p][:, j] += H_FD
        xm[p][:, j] -= H_FD
        d = (vertex_forward(plan, theta, xp, i) - vertex_forward(plan, theta, xm, i)) / (2 * H_FD)
        out[:, j] = np.sum(e * d, axis=1)
    return out


def _fd_param(plan, theta, xs, i, e, k):
    view = plan.param_view(theta, k)
    out = np.zeros(view.shape)
    for idx in np.ndindex(view.shape):
        tp, tm = theta.copy(), theta.copy()
        plan.param_view(tp, k)[idx] += H_FD
        plan.param_view(tm, k)[idx] -= H_FD
        out[idx] = np.sum(e * (vertex_forward(plan, tp, xs, i) - vertex_forward(plan, tm, xs, i))) / (2 * H_FD)
    return out


def _rel(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


def _summed_vjp(plan, theta, xs, i, e):
    out = {}
    for p, g in vertex_vjp(plan, theta, xs, i, e):
        out[p] = out.get(p, 0) + g
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_feedback_path_matches_finite_differences(name):
    plan, theta, xs, i, e, parents = _setup(name)
    got = _summed_vjp(plan, theta, xs, i, e)
    assert sorted(got) == parents
    for p in parents:
        fd = _fd_vjp(plan, theta, xs, i, e, p)
        assert np.linalg.norm(fd) > 0
        assert _rel(got[p], fd) < 1e-6, (name, plan.v_names[p])


@pytest.mark.parametrize("name", sorted(CASES))
def test_parameter_term_matches_finite_differences(name):
    plan, theta, xs, i, e, _ = _setup(name)
    got = {}
    for k, g in vertex_param_grads(plan, theta, xs, i, e):
        got[k] = got.get(k, 0) + g
    assert sorted(got) == sorted(plan.vertex_params(i))
    for k in got:
        assert _rel(got[k], _fd_param(plan, theta, xs, i, e, k)) < 1e-6, (name, plan.p_names[k])


def _naive_conv(a, K, s, p):
    Bn, Ci, H, W = a.shape
    Co, _, kh, kw = K.shape
    Ho, Wo = (H + 2 * p - kh) // s + 1, (W + 2 * p - kw) // s + 1
    out = np.zeros((Bn, Co, Ho, Wo))
    for b in range(Bn):
        for o in range(Co):
            for r in range(Ho):
                for c in range(Wo):
                    for i in range(Ci):
                        for u in range(kh):
                            for v in range(kw):
                                y, x = r * s + u - p, c * s + v - p
                                if 0 <= y < H and 0 <= x < W:
                                    out[b, o, r, c] += K[o, i, u, v] * a[b, i, y, x]
    return out


@pytest.mark.parametrize("s,p,k", [(1, 0, (3, 3)), (1, 1, (3, 3)), (2, 1, (3, 2)), (3, 2, (4, 3))])
def test_conv_and_pool_forward_match_their_definitions(s, p, k):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2, 3, 7, 6))
    K = rng.normal(size=(4, 3) + k)
    assert np.allclose(conv2d(a, K, s, p), _naive_conv(a, K, s, p), atol=1e-12)
    for size, stride in ((2, 2), (3, 1), (3, 2)):
        Ho, Wo = (7 - size) // stride + 1, (6 - size) // stride + 1
        mx = np.array([[[[a[b, c, r * stride:r * stride + size, q * stride:q * stride + size].max()
                          for q in range(Wo)] for r in range(Ho)] for c in range(3)] for b in range(2)])
        av = np.array([[[[a[b, c, r * stride:r * stride + size, q * stride:q * stride + size].mean()
                          for q in range(Wo)] for r in range(Ho)] for c in range(3)] for b in range(2)])
        assert np.array_equal(pool(a, size, stride, "max"), mx)
        assert np.allclose(pool(a, size, stride, "avg"), av, atol=1e-14)


# ----------------------------------------------------------------------------------------------- numba twins
def _blocks(plan, arrs):
    """Per-vertex (B, n) arrays -> the kernels' flat vertex-block layout."""
    buf = np.zeros(B * plan.n_units)
    for i, a in enumerate(arrs):
        if a is not None:
            o, n = int(plan.VI[i, 1]), int(plan.VI[i, 2])
            buf[B * o:B * (o + n)] = a.ravel()
    return buf


def _block(plan, buf, i):
    o, n = int(plan.VI[i, 1]), int(plan.VI[i, 2])
    return buf[B * o:B * (o + n)].reshape(B, n)


def _numba(plan, theta, xs, i, e, mode):
    from neurosim.graph.kernels import conv_scratch_sizes, vertex_kernel
    x = _blocks(plan, xs)
    eb = _blocks(plan, [e if j == i else None for j in range(plan.n_vertices)])
    out = np.zeros(plan.n_theta if mode == 2 else B * plan.n_units)
    ms = plan.max_size
    sG = np.zeros(max(int(plan.PI[:, 1].max()) if plan.n_params else 1, 1))
    nc, no = conv_scratch_sizes(plan, B)
    vertex_kernel(mode, i, B, x, eb, out, theta, plan.VI, plan.EI, plan.EF, plan.PI, np.zeros(B * ms),
                  np.zeros(B * ms), sG, np.zeros(nc), np.zeros(no))
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_numba_vertex_functions_equal_reference(name):
    plan, theta, xs, i, e, parents = _setup(name)
    mu = _block(plan, _numba(plan, theta, xs, i, e, 0), i)
    assert np.allclose(mu, vertex_forward(plan, theta, xs, i), rtol=1e-12, atol=1e-12)
    fb = _numba(plan, theta, xs, i, e, 1)
    ref = _summed_vjp(plan, theta, xs, i, e)
    for p in parents:
        got = _block(plan, fb, p)
        assert _rel(got, ref[p]) < 1e-12
        assert _rel(got, _fd_vjp(plan, theta, xs, i, e, p)) < 1e-6
    G = _numba(plan, theta, xs, i, e, 2)
    Gref = np.zeros(plan.n_theta)
    for k, g in vertex_param_grads(plan, theta, xs, i, e):
        plan.param_view(Gref, k)[...] += g
    assert np.allclose(G, Gref, rtol=1e-12, atol=1e-12)
