"""Datasets for the neurosim predictive-coding simulator.

Everything in this package works offline: nothing is downloaded at run time.

Available sources (one module each)
-----------------------------------
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

from typing import Any, Callable

from ._common import Dataset, one_hot, stratified_split_indices
from .batches import iterate_minibatches
from .digits import _digits_arrays, load_digits  # noqa: F401 - _digits_arrays: read by the tests
from .idx import load_mnist_idx, read_idx, write_idx
from .teacher import linear_gaussian_teacher

Dataset.__module__ = __name__  # its public home (pickles and reprs name neurosim.data.Dataset)

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
