"""The dataset container and the helpers every source shares (labels, one-hot targets, stratified
splits, input scaling)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np


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


def _check_count(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)
