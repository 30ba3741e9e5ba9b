"""Datasets for the neurosim predictive-coding simulator.

Everything in this module works offline: nothing is downloaded at run time.

Available sources
-----------------
* :func:`load_digits` -- scikit-learn's bundled 8x8 handwritten digits
  (1797 samples, 64 features, 10 classes).
* :func:`linear_gaussian_teacher` -- synthetic regression data produced by a
  random (optionally non-linear) teacher network.
* :func:`load_mnist_idx` -- MNIST-format (IDX) files that the user already has
  on disk, read by :func:`read_idx` (and written by :func:`write_idx`).

All feature and target arrays are ``float64`` with samples in rows, label
vectors are ``int64``.  Randomness always comes from an explicit seed (or an
explicit :class:`numpy.random.Generator`); the global NumPy RNG is never used.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np

__all__ = [
    "Dataset",
    "one_hot",
    "stratified_split_indices",
    "load_digits",
    "linear_gaussian_teacher",
    "read_idx",
    "write_idx",
    "load_mnist_idx",
    "iterate_minibatches",
    "get_dataset",
    "DATASET_NAMES",
]

# --------------------------------------------------------------------------
# Dataset container
# --------------------------------------------------------------------------


def _as_labels(arr: Any, what: str) -> np.ndarray:
    """Convert ``arr`` to a 1-D int64 label vector or raise ValueError."""
    a = np.asarray(arr)
    if a.ndim != 1:
        raise ValueError(
            f"{what} must be a 1-D vector of integer class labels, got an array "
            f"of shape {a.shape}; pass e.g. labels.ravel() or labels.argmax(axis=1)."
        )
    if a.dtype.kind in "iu":
        return a.astype(np.int64, copy=False)
    if a.dtype.kind == "b":
        return a.astype(np.int64)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
            raise ValueError(
                f"{what} must contain integer class labels, but it has non-integer "
                f"or non-finite values; round or cast them to int first."
            )
        return a.astype(np.int64)
    raise ValueError(
        f"{what} must contain integer class labels, got dtype {a.dtype}; "
        f"cast it with .astype(np.int64)."
    )


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test dataset with samples in rows.

    Parameters
    ----------
    name : str
        Human-readable name of the dataset (e.g. ``"digits"``).
    X_train, X_test : ndarray of shape (n_train, n_features), (n_test, n_features)
        Inputs, stored as C-contiguous ``float64``.
    Y_train, Y_test : ndarray of shape (n_train, n_outputs), (n_test, n_outputs)
        Targets, stored as ``float64``.  One-hot coded (possibly with a
        non-zero "off" value) for classification, real-valued for regression.
    y_train, y_test : ndarray of shape (n_train,), (n_test,) or None
        ``int64`` class labels for classification, ``None`` for regression.
    n_classes : int or None
        Number of classes for classification (equal to ``n_outputs``),
        ``None`` for regression.

    Raises
    ------
    ValueError
        If arrays are not 2-D, row counts of inputs and targets disagree,
        train and test disagree on the number of columns, values are not
        finite, or the classification fields (``y_*``, ``n_classes``) are
        inconsistent.

    Notes
    -----
    The dataclass is frozen (fields cannot be re-assigned) but the arrays
    themselves are ordinary NumPy arrays.  Equality is identity-based
    (``eq=False``) because element-wise comparison of arrays has no single
    truth value.  ``n_test`` may be 0 (an empty ``(0, n_features)`` test set).
    """

    name: str
    X_train: np.ndarray
    Y_train: np.ndarray
    X_test: np.ndarray
    Y_test: np.ndarray
    y_train: np.ndarray | None = None
    y_test: np.ndarray | None = None
    n_classes: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Dataset name must be a non-empty string, got {self.name!r}.")
        arrays = {}
        for field_name in ("X_train", "Y_train", "X_test", "Y_test"):
            a = np.ascontiguousarray(getattr(self, field_name), dtype=np.float64)
            if a.ndim != 2:
                raise ValueError(
                    f"Dataset {self.name!r}: {field_name} must be 2-D (n_samples, n_columns), "
                    f"got shape {a.shape}; reshape it, e.g. arr.reshape(len(arr), -1)."
                )
            if not np.all(np.isfinite(a)):
                raise ValueError(
                    f"Dataset {self.name!r}: {field_name} contains NaN or infinite values; "
                    f"clean or impute them before building a Dataset."
                )
            arrays[field_name] = a
            object.__setattr__(self, field_name, a)

        for split in ("train", "test"):
            X, Y = arrays[f"X_{split}"], arrays[f"Y_{split}"]
            if X.shape[0] != Y.shape[0]:
                raise ValueError(
                    f"Dataset {self.name!r}: X_{split} has {X.shape[0]} rows but Y_{split} has "
                    f"{Y.shape[0]}; inputs and targets must have one row per sample."
                )
        if arrays["X_train"].shape[1] != arrays["X_test"].shape[1]:
            raise ValueError(
                f"Dataset {self.name!r}: X_train has {arrays['X_train'].shape[1]} features but "
                f"X_test has {arrays['X_test'].shape[1]}; both splits need the same features."
            )
        if arrays["Y_train"].shape[1] != arrays["Y_test"].shape[1]:
            raise ValueError(
                f"Dataset {self.name!r}: Y_train has {arrays['Y_train'].shape[1]} columns but "
                f"Y_test has {arrays['Y_test'].shape[1]}; both splits need the same outputs."
            )

        has_train, has_test = self.y_train is not None, self.y_test is not None
        if has_train != has_test:
            raise ValueError(
                f"Dataset {self.name!r}: give both y_train and y_test (classification) or "
                f"neither (regression); got only {'y_train' if has_train else 'y_test'}."
            )
        if not has_train:
            if self.n_classes is not None:
                raise ValueError(
                    f"Dataset {self.name!r}: n_classes={self.n_classes} was given without label "
                    f"vectors; pass y_train/y_test or set n_classes=None for regression."
                )
            return

        if self.n_classes is None:
            raise ValueError(
                f"Dataset {self.name!r}: labels were given but n_classes is None; "
                f"pass n_classes (the number of one-hot columns)."
            )
        if isinstance(self.n_classes, bool) or not isinstance(self.n_classes, (int, np.integer)):
            raise ValueError(
                f"Dataset {self.name!r}: n_classes must be an int, got {self.n_classes!r}."
            )
        n_classes = int(self.n_classes)
        object.__setattr__(self, "n_classes", n_classes)
        if n_classes < 1:
            raise ValueError(f"Dataset {self.name!r}: n_classes must be >= 1, got {n_classes}.")
        if arrays["Y_train"].shape[1] != n_classes:
            raise ValueError(
                f"Dataset {self.name!r}: Y has {arrays['Y_train'].shape[1]} columns but "
                f"n_classes={n_classes}; Y must be one-hot with one column per class."
            )
        for split in ("train", "test"):
            y = _as_labels(getattr(self, f"y_{split}"), f"Dataset {self.name!r}: y_{split}")
            n_rows = arrays[f"X_{split}"].shape[0]
            if y.shape[0] != n_rows:
                raise ValueError(
                    f"Dataset {self.name!r}: y_{split} has {y.shape[0]} labels but X_{split} "
                    f"has {n_rows} rows; there must be one label per sample."
                )
            if y.size and (y.min() < 0 or y.max() >= n_classes):
                raise ValueError(
                    f"Dataset {self.name!r}: y_{split} has labels in [{y.min()}, {y.max()}] but "
                    f"n_classes={n_classes}; labels must lie in [0, n_classes)."
                )
            object.__setattr__(self, f"y_{split}", y)

    # -- convenience properties -------------------------------------------
    @property
    def n_features(self) -> int:
        """int : Number of input features (columns of ``X_train``)."""
        return int(self.X_train.shape[1])

    @property
    def n_outputs(self) -> int:
        """int : Number of target columns (columns of ``Y_train``)."""
        return int(self.Y_train.shape[1])

    @property
    def n_train(self) -> int:
        """int : Number of training samples."""
        return int(self.X_train.shape[0])

    @property
    def n_test(self) -> int:
        """int : Number of test samples."""
        return int(self.X_test.shape[0])

    @property
    def is_classification(self) -> bool:
        """bool : True if the dataset carries class labels."""
        return self.y_train is not None

    def __repr__(self) -> str:
        kind = f"n_classes={self.n_classes}" if self.is_classification else "regression"
        return (
            f"Dataset(name={self.name!r}, n_train={self.n_train}, n_test={self.n_test}, "
            f"n_features={self.n_features}, n_outputs={self.n_outputs}, {kind})"
        )


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def one_hot(
    labels: Any,
    n_classes: int | None = None,
    on: float = 1.0,
    off: float = 0.0,
) -> np.ndarray:
    """Encode integer class labels as one-hot rows.

    Parameters
    ----------
    labels : array_like of shape (n,)
        Integer class labels in ``[0, n_classes)``.  Floats are accepted only
        if they hold integral values.
    n_classes : int, optional
        Number of classes (columns).  Defaults to ``max(labels) + 1``.
    on : float, default 1.0
        Value at the position of the true class.
    off : float, default 0.0
        Value everywhere else (e.g. 0.1 for "soft" targets of a sigmoid unit).

    Returns
    -------
    ndarray of shape (n, n_classes), float64
        The encoded targets.

    Raises
    ------
    ValueError
        If labels are not a 1-D integer vector, are negative, or are
        ``>= n_classes``, or if ``n_classes`` cannot be determined.

    Examples
    --------
    >>> one_hot([0, 2], 3)
    array([[1., 0., 0.],
           [0., 0., 1.]])
    """
    y = _as_labels(labels, "labels")
    if y.size and y.min() < 0:
        raise ValueError(
            f"one_hot: labels must be non-negative, found {y.min()}; "
            f"remap them to 0..n_classes-1 first."
        )
    if n_classes is None:
        if y.size == 0:
            raise ValueError("one_hot: cannot infer n_classes from empty labels; pass n_classes.")
        n_classes = int(y.max()) + 1
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)):
        raise ValueError(f"one_hot: n_classes must be an int, got {n_classes!r}.")
    n_classes = int(n_classes)
    if n_classes < 1:
        raise ValueError(f"one_hot: n_classes must be >= 1, got {n_classes}.")
    if y.size and y.max() >= n_classes:
        raise ValueError(
            f"one_hot: label {y.max()} is out of range for n_classes={n_classes}; "
            f"labels must lie in [0, n_classes) -- increase n_classes or fix the labels."
        )
    out = np.full((y.shape[0], n_classes), float(off), dtype=np.float64)
    out[np.arange(y.shape[0]), y] = float(on)
    return out


def _check_fraction(test_fraction: float) -> float:
    f = float(test_fraction)
    if not (0.0 <= f < 1.0):
        raise ValueError(
            f"test_fraction must be in [0, 1), got {test_fraction!r}; e.g. use 0.25 to hold "
            f"out a quarter of each class."
        )
    return f


def stratified_split_indices(
    labels: Any, test_fraction: float = 0.25, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified train/test split of sample indices.

    For every class ``c`` (in increasing order) the indices of that class are
    permuted with a single ``np.random.default_rng(seed)`` and the first
    ``round(test_fraction * n_c)`` go to the test set, the rest to training.

    Parameters
    ----------
    labels : array_like of shape (n,)
        Integer class labels.
    test_fraction : float, default 0.25
        Fraction of every class held out for testing, in ``[0, 1)``.
    seed : int, default 0
        Seed of the permutation.

    Returns
    -------
    train_idx, test_idx : ndarray of int64
        Sorted, disjoint index vectors whose union is ``range(n)``.

    Notes
    -----
    ``round`` is NumPy's round-half-to-even, like Python's built-in ``round``.
    """
    y = _as_labels(labels, "labels")
    f = _check_fraction(test_fraction)
    rng = np.random.default_rng(seed)
    train_parts, test_parts = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        perm = rng.permutation(idx)
        n_test_c = int(np.round(f * idx.size))
        test_parts.append(perm[:n_test_c])
        train_parts.append(perm[n_test_c:])
    empty = np.empty(0, dtype=np.int64)
    train_idx = np.sort(np.concatenate(train_parts or [empty])).astype(np.int64)
    test_idx = np.sort(np.concatenate(test_parts or [empty])).astype(np.int64)
    return train_idx, test_idx


_SCALES = ("unit", "standard", "none")


def _check_scale(scale: str, allowed: Sequence[str] = _SCALES) -> str:
    if scale not in allowed:
        raise ValueError(f"scale must be one of {list(allowed)}, got {scale!r}.")
    return scale


def _standardise(X_train: np.ndarray, X_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardise both splits with the training split's mean and std (std 0 -> 1)."""
    mean = X_train.mean(axis=0) if X_train.shape[0] else np.zeros(X_train.shape[1])
    std = X_train.std(axis=0) if X_train.shape[0] else np.ones(X_train.shape[1])
    std = np.where(std > 0, std, 1.0)
    return (X_train - mean) / std, (X_test - mean) / std


# --------------------------------------------------------------------------
# scikit-learn digits
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# Synthetic teacher data
# --------------------------------------------------------------------------

_PHIS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda a: a,
    "tanh": np.tanh,
}


def _check_count(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


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


# --------------------------------------------------------------------------
# IDX (MNIST) file format
# --------------------------------------------------------------------------

# type code -> big-endian dtype
_IDX_CODE_TO_DTYPE = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
# native dtype -> type code
_IDX_DTYPE_TO_CODE = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX (MNIST format) file, optionally gzip-compressed.

    Compression is detected from the gzip magic bytes ``1f 8b``, not from the
    file extension.  The IDX layout is: two zero bytes, a type byte
    (``0x08`` uint8, ``0x09`` int8, ``0x0B`` int16, ``0x0C`` int32,
    ``0x0D`` float32, ``0x0E`` float64), one byte with the number of
    dimensions, each dimension as a big-endian uint32, then the data in
    big-endian C order.

    Parameters
    ----------
    path : str or os.PathLike
        File to read.

    Returns
    -------
    ndarray
        Native-endian array with the stored dtype and shape.

    Raises
    ------
    ValueError
        If the file (named in the message) has a bad magic number, an
        unknown type code, a truncated header, truncated data or trailing
        bytes (stating expected vs actual byte counts), or is corrupt gzip.
    FileNotFoundError
        If the file does not exist.
    """
    fname = os.fspath(path)
    with open(fname, "rb") as fh:
        raw = fh.read()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(
                f"IDX file {fname!r} starts with the gzip magic bytes but could not be "
                f"decompressed ({exc}); the download is probably incomplete -- re-fetch it."
            ) from exc

    if len(raw) < 4:
        raise ValueError(
            f"IDX file {fname!r} is truncated: the header needs 4 bytes but the file has "
            f"{len(raw)}; it is not a valid IDX file."
        )
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(
            f"IDX file {fname!r} has a bad magic number {raw[:4].hex()} (the first two bytes "
            f"must be 00 00); it is not an IDX file (e.g. an HTML error page or another format)."
        )
    code, ndim = raw[2], raw[3]
    if code not in _IDX_CODE_TO_DTYPE:
        known = ", ".join(f"0x{c:02X}" for c in _IDX_CODE_TO_DTYPE)
        raise ValueError(
            f"IDX file {fname!r} has unknown data type code 0x{code:02X}; "
            f"supported codes are {known}."
        )
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise ValueError(
            f"IDX file {fname!r} is truncated inside the header: {ndim} dimensions need "
            f"{header_len} header bytes but the file has {len(raw)}."
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header_len])
    dtype = _IDX_CODE_TO_DTYPE[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    actual = len(raw) - header_len
    if actual != expected:
        problem = "truncated" if actual < expected else "over-long (trailing bytes)"
        raise ValueError(
            f"IDX file {fname!r} is {problem}: shape {tuple(dims)} of {dtype.newbyteorder('=')} "
            f"needs {expected} data bytes but the file has {actual}."
        )
    arr = np.frombuffer(raw, dtype=dtype, offset=header_len, count=expected // dtype.itemsize)
    return arr.astype(dtype.newbyteorder("="), copy=True).reshape(dims)


def write_idx(path: str | os.PathLike, array: Any) -> None:
    """Write an array as an IDX (MNIST format) file.

    Parameters
    ----------
    path : str or os.PathLike
        Destination.  A name ending in ``.gz`` is gzip-compressed
        (with a zero timestamp, so output is byte-for-byte reproducible).
    array : array_like
        Data of dtype uint8, int8, int16, int32, float32 or float64 with at
        most 255 dimensions, each < 2**32.  The IDX type code is chosen from
        the dtype; byte order is converted to big-endian.

    Raises
    ------
    ValueError
        If the dtype is not supported (cast first, e.g.
        ``labels.astype(np.uint8)``), or the shape cannot be represented.
    """
    fname = os.fspath(path)
    arr = np.asarray(array)
    native = arr.dtype.newbyteorder("=")
    if native not in _IDX_DTYPE_TO_CODE:
        raise ValueError(
            f"write_idx({fname!r}): dtype {arr.dtype} is not supported by the IDX format; "
            f"cast to one of uint8, int8, int16, int32, float32, float64 "
            f"(e.g. array.astype(np.int32))."
        )
    if arr.ndim > 255:
        raise ValueError(f"write_idx({fname!r}): IDX supports at most 255 dimensions, got {arr.ndim}.")
    if any(d >= 2**32 for d in arr.shape):
        raise ValueError(f"write_idx({fname!r}): every dimension must be < 2**32, got {arr.shape}.")
    code = _IDX_DTYPE_TO_CODE[native]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    payload = header + np.ascontiguousarray(arr, dtype=native.newbyteorder(">")).tobytes()
    if fname.endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    with open(fname, "wb") as fh:
        fh.write(payload)


def load_mnist_idx(
    train_images: str | os.PathLike,
    train_labels: str | os.PathLike,
    test_images: str | os.PathLike | None = None,
    test_labels: str | os.PathLike | None = None,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    flatten: bool = True,
    scale: str = "unit",
    limit: int | None = None,
) -> Dataset:
    """Load MNIST-format (IDX) image/label files that are already on disk.

    Works with the original MNIST / Fashion-MNIST / KMNIST files, e.g.
    ``train-images-idx3-ubyte`` and ``train-labels-idx1-ubyte``, gzipped
    or not.  Nothing is downloaded.

    Parameters
    ----------
    train_images, train_labels : str or os.PathLike
        IDX files with images of shape (n, h, w) (or (n, d)) and labels
        of shape (n,).
    test_images, test_labels : str or os.PathLike, optional
        Test files.  Give both or neither; with neither, the training files
        are split with a stratified split (``test_fraction``, ``seed``).
    test_fraction : float, default 0.2
        Fraction of each class held out when no test files are given.
    seed : int, default 0
        Seed of that split.
    flatten : bool, default True
        Flatten each image to a row of ``h * w`` features.  ``Dataset``
        stores 2-D arrays, so ``flatten=False`` is only accepted for files
        that are already (n, d); use :func:`read_idx` for image-shaped arrays.
    scale : {"unit", "standard", "none"}, default "unit"
        ``"unit"``: uint8 images are divided by 255; floating-point images
        already within [0, 1] are kept; anything else raises.
        ``"standard"``: standardise with the training split's mean/std
        (std 0 -> 1).  ``"none"``: keep raw values (as float64).
    limit : int, optional
        Keep only the first ``limit`` samples of each split (after splitting).

    Returns
    -------
    Dataset
        ``name="mnist-idx"``; targets one-hot with
        ``n_classes = max(label) + 1`` (at least 2).

    Raises
    ------
    ValueError
        If image and label counts differ (both files are named), labels are
        not a 1-D vector of non-negative integers, only one test file is
        given, images and test images have different shapes, or an argument
        is invalid.  Errors from :func:`read_idx` are propagated.
    """
    _check_scale(scale)
    if (test_images is None) != (test_labels is None):
        raise ValueError(
            "load_mnist_idx: pass both test_images and test_labels, or neither "
            "(then the training files are split with test_fraction)."
        )
    if limit is not None:
        limit = _check_count(limit, "limit", 1)

    def _read_pair(img_path, lab_path):
        imgs = read_idx(img_path)
        labs = read_idx(lab_path)
        img_name, lab_name = os.fspath(img_path), os.fspath(lab_path)
        if imgs.ndim < 2:
            raise ValueError(
                f"load_mnist_idx: images file {img_name!r} has shape {imgs.shape}; expected "
                f"(n, h, w) or (n, d) -- did you swap the images and labels files?"
            )
        if labs.ndim != 1 or labs.dtype.kind not in "iu":
            raise ValueError(
                f"load_mnist_idx: labels file {lab_name!r} must hold a 1-D integer vector, got "
                f"shape {labs.shape} dtype {labs.dtype} -- did you swap the images and labels files?"
            )
        if imgs.shape[0] != labs.shape[0]:
            raise ValueError(
                f"load_mnist_idx: images file {img_name!r} has {imgs.shape[0]} images but "
                f"labels file {lab_name!r} has {labs.shape[0]} labels; use matching files."
            )
        labs = labs.astype(np.int64)
        if labs.size and labs.min() < 0:
            raise ValueError(
                f"load_mnist_idx: labels file {lab_name!r} contains negative label {labs.min()}; "
                f"labels must be 0..n_classes-1."
            )
        if not flatten and imgs.ndim != 2:
            raise ValueError(
                f"load_mnist_idx: images in {img_name!r} have shape {imgs.shape[1:]} but Dataset "
                f"stores 2-D (n_samples, n_features) arrays; use flatten=True, or read_idx() "
                f"for image-shaped arrays."
            )
        return imgs, labs

    imgs_tr, labs_tr = _read_pair(train_images, train_labels)
    if test_images is not None:
        imgs_te, labs_te = _read_pair(test_images, test_labels)
        if imgs_te.shape[1:] != imgs_tr.shape[1:]:
            raise ValueError(
                f"load_mnist_idx: train images {os.fspath(train_images)!r} have shape "
                f"{imgs_tr.shape[1:]} but test images {os.fspath(test_images)!r} have "
                f"{imgs_te.shape[1:]}; use files from the same dataset."
            )
    else:
        tr, te = stratified_split_indices(labs_tr, test_fraction, seed)
        imgs_tr, labs_tr, imgs_te, labs_te = imgs_tr[tr], labs_tr[tr], imgs_tr[te], labs_tr[te]

    if limit is not None:
        imgs_tr, labs_tr = imgs_tr[:limit], labs_tr[:limit]
        imgs_te, labs_te = imgs_te[:limit], labs_te[:limit]

    raw_dtype = imgs_tr.dtype
    X_train = imgs_tr.reshape(imgs_tr.shape[0], -1).astype(np.float64)
    X_test = imgs_te.reshape(imgs_te.shape[0], -1).astype(np.float64)
    if scale == "unit":
        if raw_dtype == np.uint8:
            X_train /= 255.0
            X_test /= 255.0
        else:
            both = np.concatenate([X_train.ravel(), X_test.ravel()])
            if both.size and (raw_dtype.kind != "f" or both.min() < 0 or both.max() > 1):
                raise ValueError(
                    f"load_mnist_idx: scale='unit' divides uint8 images by 255, but "
                    f"{os.fspath(train_images)!r} holds {raw_dtype} values outside [0, 1]; "
                    f"use scale='standard' or scale='none'."
                )
    elif scale == "standard":
        X_train, X_test = _standardise(X_train, X_test)

    all_labels = np.concatenate([labs_tr, labs_te])
    n_classes = max(int(all_labels.max()) + 1 if all_labels.size else 0, 2)
    return Dataset(
        name="mnist-idx",
        X_train=X_train,
        Y_train=one_hot(labs_tr, n_classes),
        X_test=X_test,
        Y_test=one_hot(labs_te, n_classes),
        y_train=labs_tr,
        y_test=labs_te,
        n_classes=n_classes,
    )


# --------------------------------------------------------------------------
# Mini-batches
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------


def _teacher_dataset(**kwargs: Any) -> Dataset:
    params = {"n_samples": 1000, "n_in": 20, "n_out": 5, "n_test": 200}
    params.update(kwargs)
    return linear_gaussian_teacher(**params)[0]


def _mnist_dataset(**kwargs: Any) -> Dataset:
    missing = [k for k in ("train_images", "train_labels") if k not in kwargs]
    if missing:
        raise ValueError(
            f"get_dataset('mnist-idx') needs local IDX files: pass {', '.join(missing)}= "
            f"(e.g. train_images='train-images-idx3-ubyte.gz'); nothing is downloaded."
        )
    return load_mnist_idx(**kwargs)


_REGISTRY: dict[str, Callable[..., Dataset]] = {
    "digits": load_digits,
    "teacher": _teacher_dataset,
    "linear-gaussian-teacher": _teacher_dataset,
    "mnist-idx": _mnist_dataset,
}

#: Names accepted by :func:`get_dataset`.
DATASET_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def get_dataset(name: str, **kwargs: Any) -> Dataset:
    """Build a dataset by name.

    Parameters
    ----------
    name : str
        One of ``"digits"`` (:func:`load_digits`), ``"teacher"`` or
        ``"linear-gaussian-teacher"`` (:func:`linear_gaussian_teacher`
        with defaults ``n_samples=1000, n_in=20, n_out=5, n_test=200``;
        only the Dataset is returned), ``"mnist-idx"``
        (:func:`load_mnist_idx`; needs ``train_images`` and
        ``train_labels``).  Case and ``_`` vs ``-`` are ignored.
    **kwargs
        Passed on to the loader.

    Returns
    -------
    Dataset

    Raises
    ------
    ValueError
        For an unknown name (the known names are listed) or missing
        required arguments.
    """
    key = str(name).strip().lower().replace("_", "-")
    if key not in _REGISTRY:
        raise ValueError(
            f"Unknown dataset {name!r}; known datasets are: {', '.join(DATASET_NAMES)}."
        )
    return _REGISTRY[key](**kwargs)
