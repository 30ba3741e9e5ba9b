"""scikit-learn's bundled 8x8 handwritten digits (1797 samples, 64 features, 10 classes)."""

from __future__ import annotations

import numpy as np

from ._common import Dataset, _check_fraction, _check_scale, _standardise, one_hot, stratified_split_indices


_DIGITS_CACHE: dict = {}


def _digits_arrays():
    """(X, y) of scikit-learn's bundled digits, read from the CSV that ships inside the package.

    Reading the file directly avoids importing scikit-learn (about 1 s of start-up, mostly scipy.stats);
    if the file is not where scikit-learn keeps it, ``sklearn.datasets.load_digits`` is used instead.
    The arrays are cached per process.
    """
    if "digits" not in _DIGITS_CACHE:
        import importlib.util
        from pathlib import Path
        X = y = None
        spec = importlib.util.find_spec("sklearn")
        if spec is None:
            raise ImportError("load_digits needs scikit-learn (it ships the digits data); "
                              "install it with `pip install scikit-learn`.")
        if spec.submodule_search_locations:
            path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"
            if path.is_file():
                data = np.loadtxt(path, delimiter=",")
                if data.ndim == 2 and data.shape == (1797, 65):
                    X, y = data[:, :-1].astype(np.float64), data[:, -1].astype(np.int64)
        if X is None:
            from sklearn.datasets import load_digits as _sk_load_digits
            bunch = _sk_load_digits()
            X, y = np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target, dtype=np.int64)
        X.setflags(write=False)
        y.setflags(write=False)
        _DIGITS_CACHE["digits"] = (X, y)
    return _DIGITS_CACHE["digits"]


def load_digits(
    test_fraction: float = 0.25,
    seed: int = 0,
    scale: str = "unit",
    target_off: float = 0.0,
) -> Dataset:
    """Load scikit-learn's bundled 8x8 handwritten digits (no download).

    Parameters
    ----------
    test_fraction : float, default 0.25
        Fraction of each class held out for testing, in ``[0, 1)``; the
        split is stratified (see :func:`stratified_split_indices`).
    seed : int, default 0
        Seed of the split.  Same seed -> same split.
    scale : {"unit", "standard", "none"}, default "unit"
        ``"unit"`` divides pixels (0..16) by 16 so ``X`` lies in ``[0, 1]``;
        ``"standard"`` standardises every feature with the mean and std of
        the *training* split (features with std 0 get std 1);
        ``"none"`` keeps the raw 0..16 values.
    target_off : float, default 0.0
        "Off" value of the one-hot targets (the "on" value is 1).

    Returns
    -------
    Dataset
        ``name="digits"``, 64 features, 10 classes, 1797 samples in total.

    Raises
    ------
    ValueError
        For an invalid ``scale`` or ``test_fraction``.
    ImportError
        If scikit-learn is not installed.
    """
    _check_scale(scale)
    _check_fraction(test_fraction)
    X, y = _digits_arrays()
    n_classes = 10

    tr, te = stratified_split_indices(y, test_fraction, seed)
    X_train, X_test = X[tr], X[te]
    if scale == "unit":
        X_train, X_test = X_train / 16.0, X_test / 16.0
    elif scale == "standard":
        X_train, X_test = _standardise(X_train, X_test)

    return Dataset(
        name="digits",
        X_train=X_train,
        Y_train=one_hot(y[tr], n_classes, on=1.0, off=target_off),
        X_test=X_test,
        Y_test=one_hot(y[te], n_classes, on=1.0, off=target_off),
        y_train=y[tr],
        y_test=y[te],
        n_classes=n_classes,
    )
