"""Synthetic regression data produced by a random (optionally non-linear) teacher network."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ._common import Dataset, _check_count


_PHIS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda a: a,
    "tanh": np.tanh,
}


def linear_gaussian_teacher(
    n_samples: int,
    n_in: int,
    n_out: int,
    *,
    n_test: int = 0,
    noise: float = 0.1,
    hidden: Sequence[int] = (),
    phi: str = "linear",
    seed: int = 0,
) -> tuple[Dataset, dict]:
    """Regression data from a random teacher network with Gaussian inputs.

    With layer sizes ``(n_in, *hidden, n_out)`` and weights ``W_l`` of shape
    ``(size_{l+1}, size_l)`` drawn i.i.d. from ``N(0, 1/size_l)``::

        a_0 = x,                     x ~ N(0, I_{n_in})
        a_{l+1} = phi(a_l @ W_l.T)   for the hidden layers
        y = a_L @ W_L.T + noise * eps,  eps ~ N(0, I_{n_out})

    i.e. ``phi`` is applied on hidden layers only; the output layer is linear.

    Parameters
    ----------
    n_samples : int
        Number of training samples (>= 1).
    n_in, n_out : int
        Input and output dimensions (>= 1).
    n_test : int, default 0
        Number of additional test samples from the same distribution.
    noise : float, default 0.1
        Standard deviation of the additive output noise (>= 0).
    hidden : sequence of int, default ()
        Hidden layer sizes of the teacher; empty gives a linear map.
    phi : {"linear", "tanh"}, default "linear"
        Hidden-layer non-linearity.
    seed : int, default 0
        Seed.  Weights are drawn first, then train and test inputs, then
        the noise, all from one ``np.random.default_rng(seed)``.

    Returns
    -------
    dataset : Dataset
        Regression dataset (``y_* = None``, ``n_classes = None``,
        ``name = "linear-gaussian-teacher"``).
    info : dict
        ``"weights"`` (list of the teacher weight matrices, shapes
        ``(size_{l+1}, size_l)``), ``"sizes"``, ``"phi"``, ``"noise"``,
        ``"seed"``, and the noise-free targets ``"Y_train_clean"`` and
        ``"Y_test_clean"``.

    Raises
    ------
    ValueError
        For non-positive sizes, negative ``n_test`` or ``noise``, or an
        unknown ``phi``.
    """
    n_samples = _check_count(n_samples, "n_samples", 1)
    n_in = _check_count(n_in, "n_in", 1)
    n_out = _check_count(n_out, "n_out", 1)
    n_test = _check_count(n_test, "n_test", 0)
    hidden = tuple(_check_count(h, "each hidden layer size", 1) for h in hidden)
    noise = float(noise)
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite standard deviation >= 0, got {noise!r}.")
    if phi not in _PHIS:
        raise ValueError(f"phi must be one of {sorted(_PHIS)}, got {phi!r}.")
    f = _PHIS[phi]

    sizes = (n_in, *hidden, n_out)
    rng = np.random.default_rng(seed)
    weights = [
        rng.standard_normal((fan_out, fan_in)) / np.sqrt(fan_in)
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:])
    ]
    X = rng.standard_normal((n_samples + n_test, n_in))

    a = X
    for W in weights[:-1]:
        a = f(a @ W.T)
    Y_clean = a @ weights[-1].T
    Y = Y_clean + noise * rng.standard_normal(Y_clean.shape)

    ds = Dataset(
        name="linear-gaussian-teacher",
        X_train=X[:n_samples],
        Y_train=Y[:n_samples],
        X_test=X[n_samples:],
        Y_test=Y[n_samples:],
        y_train=None,
        y_test=None,
        n_classes=None,
    )
    info = {
        "weights": weights,
        "sizes": sizes,
        "phi": phi,
        "noise": noise,
        "seed": seed,
        "Y_train_clean": Y_clean[:n_samples].copy(),
        "Y_test_clean": Y_clean[n_samples:].copy(),
    }
    return ds, info
