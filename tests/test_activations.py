"""The activations: the jitted forms (:mod:`neurosim.backends.numba.activations`, the one copy every numba kernel
uses) against the NumPy reference (:mod:`neurosim.activations`), in float64 and float32, over all magnitudes."""
from __future__ import annotations

import numpy as np
import pytest
from numba import njit

import neurosim.activations as act
from neurosim.backends.numba import activations as jit_act

NAMES = act.names()


@njit
def _map_phi(code, a, x, out):
    for j in range(x.shape[0]):
        out[j] = jit_act.phi(code, a, x[j])


@njit
def _map_dphi(code, a, x, out):
    for j in range(x.shape[0]):
        out[j] = jit_act.dphi(code, a, x[j])


def jphi(name, x):
    a = act.get(name)
    out = np.empty_like(x)
    _map_phi(a.code, x.dtype.type(a.param), x, out)   # the float tables are in the run's dtype
    return out


def jdphi(name, x):
    a = act.get(name)
    out = np.empty_like(x)
    _map_dphi(a.code, x.dtype.type(a.param), x, out)
    return out


def jphi_block(name, x):
    a = act.get(name)
    out = np.empty_like(x)
    jit_act.phi_block(a.code, x.dtype.type(a.param), x, out, 0, x.size)
    return out


def ulps(a, b):
    """Distance in units in the last place of ``b``'s precision."""
    return np.abs(a.astype(float) - b.astype(float)) / np.spacing(np.maximum(np.abs(b), np.finfo(b.dtype).tiny))


def inputs(dtype):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=5000) * s for s in (1e-8, 1e-3, 0.1, 0.5, 1, 3, 10, 30)]
                       + [np.linspace(-25, 25, 5001), np.linspace(0.6, 0.65, 1001),   # 0.625: tanh's branch switch
                          [0.0, -0.0, 1e-300, -1e-300, 700.0, -700.0]])
    return x.astype(dtype)


# max ulps of the jitted form against NumPy (the piecewise-linear ones are exact)
ULPS = {"linear": 0, "relu": 0, "leaky_relu": 0, "tanh": 3, "sigmoid": 4}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", NAMES)
def test_jitted_phi_matches_numpy(name, dtype):
    x = inputs(dtype)
    ref = act.phi(name, x)
    assert ref.dtype == dtype
    normal = np.abs(ref) > np.finfo(dtype).tiny * 2 ** 20      # deep underflow of the logistic: compared below
    for f in (jphi, jphi_block):
        y = f(name, x)
        assert y.dtype == dtype
        assert ulps(y[normal], ref[normal]).max() <= ULPS[name], f.__name__
        assert np.max(np.abs(y[~normal].astype(float) - ref[~normal].astype(float)), initial=0.0) <= 1e-30


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", NAMES)
def test_jitted_dphi_matches_numpy(name, dtype):
    x = inputs(dtype)
    ref = act.dphi(name, x).astype(float)
    y = jdphi(name, x).astype(float)
    # 1 - phi^2 and phi (1 - phi) lose relative precision where phi' is tiny: compare absolutely, at the
    # precision of phi (float64: 1e-15; float32: a few float32 ulps of 1)
    tol = 4e-16 * 4 if dtype == np.float64 else 4 * np.finfo(np.float32).eps
    np.testing.assert_allclose(y, ref, rtol=0, atol=tol)
    if name in ("linear", "relu", "leaky_relu"):
        np.testing.assert_array_equal(y, ref)


def test_tanh_special_values():
    x = np.array([0.0, -0.0, np.inf, -np.inf, 1e300, -1e300, 5e-324, -5e-324, 1e-310, 19.0, 20.0, 21.0, 710.0])
    y = jphi_block("tanh", x)
    assert ulps(y, np.tanh(x)).max() <= 1   # (tanh(19) = 1 - 6.3e-17 rounds to 1 - 2^-53; NumPy says 1)
    np.testing.assert_array_equal(y[[0, 1, 2, 3, 4, 5, 10, 11, 12]], [0, 0, 1, -1, 1, -1, 1, 1, 1])


def test_logistic_special_values_and_deep_tails():
    x = np.linspace(-740, 740, 20001)
    y, ref = jphi_block("sigmoid", x), act.phi("sigmoid", x)
    normal = ref > 1e-300
    assert ulps(y[normal], ref[normal]).max() <= 4
    assert np.max(np.abs(y[~normal] - ref[~normal])) < 1e-300  # deep underflow: both ~0
    np.testing.assert_array_equal(jphi_block("sigmoid", np.array([np.inf, -np.inf, -800.0, 800.0])), [1, 0, 0, 1])


@pytest.mark.parametrize("name", NAMES)
def test_nan_propagates_as_in_numpy(name):
    """Divergence detection relies on phi(NaN) = NaN, as NumPy's forms give."""
    x = np.array([np.nan, 1.0])
    assert np.isnan(act.phi(name, x)[0])
    assert np.isnan(jphi(name, x)[0]) and np.isnan(jphi_block(name, x)[0])


@pytest.mark.parametrize("name", ["linear", "relu", "leaky_relu"])
def test_piecewise_exact_at_special_points(name):
    x = np.array([-3.0, -0.0, 0.0, 2.5, -np.inf, np.inf, -1e-300])
    np.testing.assert_array_equal(jphi_block(name, x), act.phi(name, x))
    np.testing.assert_array_equal(jphi(name, x), act.phi(name, x))
    np.testing.assert_array_equal(jdphi(name, x), act.dphi(name, x))


def test_lookup_by_name_or_code():
    for name, a in act.ACTIVATIONS.items():
        assert act.get(a.code) is a
        x = np.linspace(-2, 2, 9)
        np.testing.assert_array_equal(act.phi(a.code, x), act.phi(name, x))
    with pytest.raises(ValueError, match="unknown activation 7.*choose one of"):
        act.get(7)
    with pytest.raises(ValueError, match="unknown activation True"):
        act.get(True)


def test_every_kernel_uses_the_one_jitted_form():
    """No numba kernel module defines its own phi/dphi/tanh: they all take the shared ones."""
    import importlib
    import inspect
    for mod in ("neurosim.backends.numba._passes", "neurosim.backends.numba._relax", "neurosim.graph.kernels",
                "neurosim.hardware.kernel"):
        m = importlib.import_module(mod)
        src = inspect.getsource(m)
        assert "math.tanh" not in src and "def _phi(" not in src and "def _dphi(" not in src, mod
        for fname in ("phi", "dphi", "tanh", "phi_block", "dphi_from"):
            if hasattr(m, fname):
                assert getattr(m, fname) is getattr(jit_act, fname), (mod, fname)


@njit
def _tanh_into_f64(x, out):
    for j in range(x.shape[0]):
        out[j] = jit_act.tanh(x[j])


def test_tanh_of_float32_is_computed_in_float32():
    """A float32 argument gets the float32 tanh (``tanh32``: twice the vector lanes, no float64 detour): its
    result is a float32 number even when stored into a float64 array, and float64 arguments keep the float64 one."""
    x = inputs(np.float32)
    y = np.empty(x.size)
    _tanh_into_f64(x, y)
    np.testing.assert_array_equal(y, y.astype(np.float32).astype(np.float64))
    assert ulps(y.astype(np.float32), np.tanh(x)).max() <= ULPS["tanh"]
    x64 = np.linspace(-3, 3, 1001)
    y64 = np.empty(x64.size)
    _tanh_into_f64(x64, y64)
    assert np.any(y64 != y64.astype(np.float32).astype(np.float64))
    assert ulps(y64, np.tanh(x64)).max() <= ULPS["tanh"]
