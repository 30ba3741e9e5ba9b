"""MNIST-format (IDX) files the user already has on disk: read, write, load as a dataset."""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from typing import Any

import numpy as np

from ._common import Dataset, _check_count, _check_scale, _standardise, one_hot, stratified_split_indices


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
