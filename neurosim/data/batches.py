"""Mini-batches of a dataset."""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np


def iterate_minibatches(
    X: Any,
    Y: Any,
    batch_size: int,
    *,
    shuffle: bool = True,
    seed: int | None = None,
    rng: np.random.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Iterate once (one epoch) over ``(X, Y)`` in mini-batches.

    Arguments are validated when the function is called, before iteration.

    Parameters
    ----------
    X, Y : array_like
        Arrays with the same number of rows (first axis).
    batch_size : int
        Rows per batch (>= 1).
    shuffle : bool, default True
        Visit rows in a random order.  Without shuffling rows come in order
        and batches are views (slices) of the inputs.
    seed : int, optional
        Seed for the shuffle (a fresh ``np.random.default_rng(seed)``).
    rng : numpy.random.Generator, optional
        Generator to draw the permutation from instead of ``seed`` (it is
        advanced, so successive epochs differ).  If neither ``seed`` nor
        ``rng`` is given the order comes from fresh OS entropy, i.e. is not
        reproducible; the global NumPy RNG is never used.
    drop_last : bool, default False
        Drop the final batch if it has fewer than ``batch_size`` rows.

    Yields
    ------
    Xb, Yb : ndarray
        Corresponding rows of ``X`` and ``Y``.

    Raises
    ------
    ValueError
        If ``batch_size < 1``, the row counts differ, both ``seed`` and
        ``rng`` are given, or ``rng`` is not a ``numpy.random.Generator``.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    X = np.asarray(X)
    Y = np.asarray(Y)
    if X.ndim == 0 or Y.ndim == 0:
        raise ValueError("iterate_minibatches: X and Y must be arrays with samples along axis 0.")
    if X.shape[0] != Y.shape[0]:
        raise ValueError(
            f"iterate_minibatches: X has {X.shape[0]} rows but Y has {Y.shape[0]}; "
            f"they must have one row per sample."
        )
    if seed is not None and rng is not None:
        raise ValueError("iterate_minibatches: pass either seed or rng, not both.")
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise ValueError(
            f"iterate_minibatches: rng must be a numpy.random.Generator, got {type(rng).__name__}; "
            f"create one with np.random.default_rng(seed)."
        )

    n = X.shape[0]
    order = None
    if shuffle:
        gen = rng if rng is not None else np.random.default_rng(seed)
        order = gen.permutation(n)
    stop = n - (n % batch_size) if drop_last else n

    def _gen() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, stop, batch_size):
            end = min(start + batch_size, stop)
            if order is None:
                yield X[start:end], Y[start:end]
            else:
                idx = order[start:end]
                yield X[idx], Y[idx]

    return _gen()
