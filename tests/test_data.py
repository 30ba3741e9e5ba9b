"""Tests for neurosim.data."""

from __future__ import annotations

import gzip
import struct
from collections import Counter

import numpy as np
import pytest

from neurosim import data
from neurosim.data import (
    Dataset,
    get_dataset,
    iterate_minibatches,
    linear_gaussian_teacher,
    load_digits,
    load_mnist_idx,
    one_hot,
    read_idx,
    stratified_split_indices,
    write_idx,
)


@pytest.fixture(scope="module")
def raw_digits():
    from sklearn.datasets import load_digits as sk_load

    b = sk_load()
    return np.asarray(b.data, dtype=np.float64), np.asarray(b.target, dtype=np.int64)


@pytest.fixture(scope="module")
def digits():
    return load_digits()


# --------------------------------------------------------------------------
# Dataset / one_hot
# --------------------------------------------------------------------------


def test_one_hot_values_and_options():
    out = one_hot([0, 2, 1], 4, on=0.9, off=0.1)
    expected = np.array([[0.9, 0.1, 0.1, 0.1], [0.1, 0.1, 0.9, 0.1], [0.1, 0.9, 0.1, 0.1]])
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.float64
    assert one_hot(np.array([0, 3])).shape == (2, 4)  # inferred n_classes


@pytest.mark.parametrize(
    "labels, n_classes, match",
    [([0, -1], 3, "non-negative"), ([0, 3], 3, "out of range"), ([[0, 1]], 2, "1-D"),
     ([0.5, 1.0], 2, "integer")],
)
def test_one_hot_rejects_bad_labels(labels, n_classes, match):
    with pytest.raises(ValueError, match=match):
        one_hot(labels, n_classes)


def test_dataset_validation_and_properties():
    X = np.zeros((4, 3), dtype=np.float32)
    ds = Dataset("toy", X, np.ones((4, 2)), np.zeros((1, 3)), np.ones((1, 2)))
    assert ds.X_train.dtype == np.float64
    assert (ds.n_features, ds.n_outputs, ds.n_train, ds.n_test) == (3, 2, 4, 1)
    with pytest.raises(ValueError, match="rows"):
        Dataset("toy", X, np.ones((5, 2)), np.zeros((1, 3)), np.ones((1, 2)))
    with pytest.raises(ValueError, match="2-D"):
        Dataset("toy", np.zeros(4), np.ones((4, 2)), np.zeros((1, 3)), np.ones((1, 2)))
    with pytest.raises(ValueError, match="features"):
        Dataset("toy", X, np.ones((4, 2)), np.zeros((1, 5)), np.ones((1, 2)))
    with pytest.raises(ValueError, match="n_classes"):
        Dataset("toy", X, np.ones((4, 2)), np.zeros((1, 3)), np.ones((1, 2)),
                y_train=np.zeros(4, int), y_test=np.zeros(1, int), n_classes=3)
    with pytest.raises(ValueError, match="labels"):
        Dataset("toy", X, np.ones((4, 2)), np.zeros((1, 3)), np.ones((1, 2)),
                y_train=np.zeros(3, int), y_test=np.zeros(1, int), n_classes=2)
    with pytest.raises(Exception):  # frozen
        ds.name = "other"


# --------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------


def test_digits_shapes_and_ranges(digits):
    ds = digits
    assert ds.name == "digits"
    assert ds.n_train + ds.n_test == 1797
    assert ds.n_features == 64 and ds.n_outputs == 10 and ds.n_classes == 10
    for arr in (ds.X_train, ds.X_test, ds.Y_train, ds.Y_test):
        assert arr.dtype == np.float64 and arr.ndim == 2
    assert ds.y_train.dtype == np.int64 and ds.y_test.shape == (ds.n_test,)
    assert ds.X_train.min() >= 0.0 and ds.X_train.max() <= 1.0
    assert ds.X_test.min() >= 0.0 and ds.X_test.max() <= 1.0
    assert ds.X_train.max() == 1.0  # 16/16 occurs
    np.testing.assert_array_equal(ds.Y_train.sum(axis=1), 1.0)
    np.testing.assert_array_equal(ds.Y_test.sum(axis=1), 1.0)
    np.testing.assert_array_equal(ds.Y_train.argmax(axis=1), ds.y_train)
    np.testing.assert_array_equal(ds.Y_test.argmax(axis=1), ds.y_test)


@pytest.mark.parametrize("frac", [0.25, 0.1])
def test_digits_split_is_stratified(raw_digits, frac):
    _, y = raw_digits
    ds = load_digits(test_fraction=frac, seed=3)
    for c in range(10):
        n_c = int(np.sum(y == c))
        assert int(np.sum(ds.y_test == c)) == round(frac * n_c)
        assert int(np.sum(ds.y_train == c)) == n_c - round(frac * n_c)


def test_digits_split_deterministic_and_seed_dependent(digits):
    again = load_digits(seed=0)
    np.testing.assert_array_equal(digits.X_train, again.X_train)
    np.testing.assert_array_equal(digits.X_test, again.X_test)
    np.testing.assert_array_equal(digits.y_test, again.y_test)
    other = load_digits(seed=1)
    assert other.X_test.shape == digits.X_test.shape
    assert not np.array_equal(other.X_test, digits.X_test)


def test_digits_train_test_disjoint_and_complete(raw_digits, digits):
    X, y = raw_digits
    tr, te = stratified_split_indices(y, 0.25, seed=0)
    assert np.intersect1d(tr, te).size == 0
    np.testing.assert_array_equal(np.union1d(tr, te), np.arange(len(y)))
    # The Dataset rows are exactly those indices (unit scaling = X / 16).
    np.testing.assert_array_equal(digits.X_train, X[tr] / 16.0)
    np.testing.assert_array_equal(digits.X_test, X[te] / 16.0)
    # Independent check via row hashing: no row in both splits, multiset preserved.
    h_tr = Counter(r.tobytes() for r in digits.X_train)
    h_te = Counter(r.tobytes() for r in digits.X_test)
    assert not set(h_tr) & set(h_te)
    assert h_tr + h_te == Counter(r.tobytes() for r in X / 16.0)


def test_digits_scaling_options(raw_digits):
    X, _ = raw_digits
    std = load_digits(scale="standard")
    np.testing.assert_allclose(std.X_train.mean(axis=0), 0.0, atol=1e-10)
    nonconst = X.std(axis=0) > 0
    assert np.all(std.X_train.std(axis=0)[~nonconst] == 0.0)  # constant pixels stay 0
    np.testing.assert_allclose(
        std.X_train.std(axis=0)[std.X_train.std(axis=0) > 0], 1.0, rtol=1e-10
    )
    assert np.all(np.isfinite(std.X_test))
    raw = load_digits(scale="none")
    assert raw.X_train.max() == 16.0
    off = load_digits(target_off=0.1)
    assert set(np.unique(off.Y_train)) == {0.1, 1.0}
    with pytest.raises(ValueError, match="scale"):
        load_digits(scale="minmax")
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits(test_fraction=1.0)


# --------------------------------------------------------------------------
# teacher
# --------------------------------------------------------------------------


def _teacher_forward(X, weights, phi):
    a = X
    for W in weights[:-1]:
        a = phi(a @ W.T)
    return a @ weights[-1].T


def test_teacher_shapes_and_reproducible():
    ds, info = linear_gaussian_teacher(50, 4, 3, n_test=7, seed=5)
    assert ds.name == "linear-gaussian-teacher"
    assert ds.X_train.shape == (50, 4) and ds.Y_train.shape == (50, 3)
    assert ds.X_test.shape == (7, 4) and ds.Y_test.shape == (7, 3)
    assert ds.y_train is None and ds.y_test is None and ds.n_classes is None
    assert [W.shape for W in info["weights"]] == [(3, 4)]
    ds2, info2 = linear_gaussian_teacher(50, 4, 3, n_test=7, seed=5)
    np.testing.assert_array_equal(ds.X_train, ds2.X_train)
    np.testing.assert_array_equal(ds.Y_test, ds2.Y_test)
    np.testing.assert_array_equal(info["weights"][0], info2["weights"][0])
    ds3, _ = linear_gaussian_teacher(50, 4, 3, n_test=7, seed=6)
    assert not np.array_equal(ds.X_train, ds3.X_train)


@pytest.mark.parametrize("hidden, phi", [((), "linear"), ((8, 6), "tanh"), ((5,), "linear")])
def test_teacher_noise_free_part_matches_formula(hidden, phi):
    fn = np.tanh if phi == "tanh" else (lambda a: a)
    ds, info = linear_gaussian_teacher(400, 6, 2, n_test=100, hidden=hidden, phi=phi,
                                       noise=0.0, seed=1)
    sizes = (6, *hidden, 2)
    assert [W.shape for W in info["weights"]] == list(zip(sizes[1:], sizes[:-1]))
    np.testing.assert_allclose(ds.Y_train, _teacher_forward(ds.X_train, info["weights"], fn))
    np.testing.assert_allclose(ds.Y_test, _teacher_forward(ds.X_test, info["weights"], fn))

    # Same seed with noise: identical X and weights, residual has std ~= noise.
    dsn, infon = linear_gaussian_teacher(400, 6, 2, n_test=100, hidden=hidden, phi=phi,
                                         noise=0.3, seed=1)
    np.testing.assert_array_equal(dsn.X_train, ds.X_train)
    resid = dsn.Y_train - _teacher_forward(dsn.X_train, infon["weights"], fn)
    assert 0.25 < resid.std() < 0.35
    np.testing.assert_allclose(infon["Y_train_clean"], ds.Y_train)


def test_teacher_weight_scale_and_input_distribution():
    ds, info = linear_gaussian_teacher(4000, 50, 40, seed=2)
    W = info["weights"][0]
    assert abs(W.var() - 1.0 / 50) < 0.1 / 50  # N(0, 1/fan_in)
    assert abs(ds.X_train.mean()) < 0.02 and abs(ds.X_train.std() - 1.0) < 0.02


def test_teacher_rejects_bad_arguments():
    with pytest.raises(ValueError, match="phi"):
        linear_gaussian_teacher(10, 2, 2, phi="relu6")
    with pytest.raises(ValueError, match="noise"):
        linear_gaussian_teacher(10, 2, 2, noise=-1.0)
    with pytest.raises(ValueError, match="n_samples"):
        linear_gaussian_teacher(0, 2, 2)


# --------------------------------------------------------------------------
# IDX
# --------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    "dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]
)
def test_idx_round_trip(tmp_path, dtype, gz):
    rng = np.random.default_rng(0)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        arr = rng.integers(info.min, info.max, size=(4, 3, 5), endpoint=True).astype(dtype)
    else:
        arr = rng.standard_normal((4, 3, 5)).astype(dtype)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    write_idx(path, arr)
    with open(path, "rb") as fh:
        assert (fh.read(2) == b"\x1f\x8b") == gz
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    assert back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)


def test_idx_round_trip_images_and_labels(tmp_path):
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5, 9], dtype=np.uint8)
    write_idx(tmp_path / "img.gz", imgs)
    write_idx(tmp_path / "lab", labels)
    np.testing.assert_array_equal(read_idx(tmp_path / "img.gz"), imgs)
    np.testing.assert_array_equal(read_idx(str(tmp_path / "lab")), labels)


def test_idx_hand_built_bytes(tmp_path):
    # 2x3 uint8 array written byte by byte.
    raw = struct.pack(">BBBB", 0, 0, 0x08, 2) + struct.pack(">II", 2, 3) + bytes([1, 2, 3, 250, 5, 6])
    p = tmp_path / "hand.idx"
    p.write_bytes(raw)
    arr = read_idx(p)
    assert arr.dtype == np.uint8
    np.testing.assert_array_equal(arr, [[1, 2, 3], [250, 5, 6]])

    # int16 big-endian vector, gzip-compressed, with a misleading extension.
    raw16 = struct.pack(">BBBB", 0, 0, 0x0B, 1) + struct.pack(">I", 3) + struct.pack(">3h", -2, 300, 7)
    p16 = tmp_path / "vec.txt"
    p16.write_bytes(gzip.compress(raw16))
    np.testing.assert_array_equal(read_idx(p16), np.array([-2, 300, 7], dtype=np.int16))

    # float64 big-endian 1x2 array; compare with write_idx's bytes too.
    raw64 = struct.pack(">BBBB", 0, 0, 0x0E, 2) + struct.pack(">II", 1, 2) + struct.pack(">2d", 1.5, -0.25)
    p64 = tmp_path / "f64.idx"
    p64.write_bytes(raw64)
    np.testing.assert_array_equal(read_idx(p64), [[1.5, -0.25]])
    write_idx(tmp_path / "w.idx", np.array([[1.5, -0.25]]))
    assert (tmp_path / "w.idx").read_bytes() == raw64


def test_idx_errors_name_the_file(tmp_path):
    good = struct.pack(">BBBB", 0, 0, 0x08, 2) + struct.pack(">II", 2, 3) + bytes(range(6))

    trunc = tmp_path / "truncated.idx"
    trunc.write_bytes(good[:-2])
    with pytest.raises(ValueError, match="truncated") as ei:
        read_idx(trunc)
    assert "truncated.idx" in str(ei.value)
    assert "needs 6 data bytes but the file has 4" in str(ei.value)  # expected vs actual

    long_ = tmp_path / "long.idx"
    long_.write_bytes(good + b"\x00")
    with pytest.raises(ValueError, match="long.idx"):
        read_idx(long_)

    magic = tmp_path / "badmagic.idx"
    magic.write_bytes(b"\x01" + good[1:])
    with pytest.raises(ValueError, match="magic") as ei:
        read_idx(magic)
    assert "badmagic.idx" in str(ei.value)

    code = tmp_path / "badcode.idx"
    code.write_bytes(good[:2] + b"\x0A" + good[3:])
    with pytest.raises(ValueError, match="type code") as ei:
        read_idx(code)
    assert "badcode.idx" in str(ei.value)

    hdr = tmp_path / "shortheader.idx.gz"
    hdr.write_bytes(gzip.compress(good[:6]))
    with pytest.raises(ValueError, match="shortheader.idx.gz"):
        read_idx(hdr)

    with pytest.raises(ValueError, match="int64"):
        write_idx(tmp_path / "x.idx", np.zeros(3, dtype=np.int64))


# --------------------------------------------------------------------------
# load_mnist_idx
# --------------------------------------------------------------------------


@pytest.fixture()
def small_mnist(tmp_path):
    rng = np.random.default_rng(42)
    imgs = rng.integers(0, 256, size=(60, 5, 5), dtype=np.uint8)
    labels = np.repeat(np.arange(10, dtype=np.uint8), 6)
    rng.shuffle(labels)
    paths = {
        "train_images": tmp_path / "train-images-idx3-ubyte.gz",
        "train_labels": tmp_path / "train-labels-idx1-ubyte",
    }
    write_idx(paths["train_images"], imgs)
    write_idx(paths["train_labels"], labels)
    return imgs, labels, paths, tmp_path


def test_load_mnist_idx_split(small_mnist):
    imgs, labels, paths, _ = small_mnist
    ds = load_mnist_idx(paths["train_images"], paths["train_labels"], test_fraction=0.5, seed=0)
    assert ds.name == "mnist-idx" and ds.n_classes == 10
    assert ds.n_train == 30 and ds.n_test == 30 and ds.n_features == 25
    assert np.all(np.bincount(ds.y_test, minlength=10) == 3)
    tr, te = stratified_split_indices(labels, 0.5, seed=0)
    np.testing.assert_allclose(ds.X_train, imgs[tr].reshape(30, 25) / 255.0)
    np.testing.assert_allclose(ds.X_test, imgs[te].reshape(30, 25) / 255.0)
    np.testing.assert_array_equal(ds.y_train, labels[tr])
    np.testing.assert_array_equal(ds.Y_train, np.eye(10)[labels[tr]])
    assert 0.0 <= ds.X_train.min() and ds.X_train.max() <= 1.0


def test_load_mnist_idx_with_test_files_limit_and_scaling(small_mnist):
    imgs, labels, paths, tmp = small_mnist
    test_imgs = imgs[:12][:, ::-1]
    test_labels = np.array([0, 1] * 6, dtype=np.uint8)
    write_idx(tmp / "t10k-images", np.ascontiguousarray(test_imgs))
    write_idx(tmp / "t10k-labels.gz", test_labels)
    ds = load_mnist_idx(paths["train_images"], paths["train_labels"],
                        tmp / "t10k-images", tmp / "t10k-labels.gz", limit=8)
    assert (ds.n_train, ds.n_test) == (8, 8)
    np.testing.assert_allclose(ds.X_train, imgs[:8].reshape(8, 25) / 255.0)
    np.testing.assert_allclose(ds.X_test, test_imgs[:8].reshape(8, 25) / 255.0)
    np.testing.assert_array_equal(ds.y_test, test_labels[:8])
    np.testing.assert_array_equal(ds.Y_test.sum(axis=1), 1.0)

    raw = load_mnist_idx(paths["train_images"], paths["train_labels"], scale="none")
    assert raw.X_train.max() > 1.0
    std = load_mnist_idx(paths["train_images"], paths["train_labels"], scale="standard")
    np.testing.assert_allclose(std.X_train.mean(axis=0), 0.0, atol=1e-10)

    # Only labels 0 and 1 -> n_classes at least 2; a single class still gives 2.
    write_idx(tmp / "zeros", np.zeros(60, dtype=np.uint8))
    one = load_mnist_idx(paths["train_images"], tmp / "zeros", test_fraction=0.25)
    assert one.n_classes == 2 and one.Y_train.shape[1] == 2


def test_load_mnist_idx_errors(small_mnist):
    imgs, labels, paths, tmp = small_mnist
    write_idx(tmp / "short-labels", labels[:59])
    with pytest.raises(ValueError) as ei:
        load_mnist_idx(paths["train_images"], tmp / "short-labels")
    msg = str(ei.value)
    assert "train-images-idx3-ubyte.gz" in msg and "short-labels" in msg
    assert "60" in msg and "59" in msg
    with pytest.raises(ValueError, match="both"):
        load_mnist_idx(paths["train_images"], paths["train_labels"], tmp / "x")
    with pytest.raises(ValueError, match="flatten"):
        load_mnist_idx(paths["train_images"], paths["train_labels"], flatten=False)


# --------------------------------------------------------------------------
# minibatches
# --------------------------------------------------------------------------


def test_minibatches_cover_every_row_once():
    X = np.arange(23 * 2, dtype=np.float64).reshape(23, 2)
    Y = np.arange(23)[:, None] * 10.0
    batches = list(iterate_minibatches(X, Y, 5, seed=0))
    assert [len(b[0]) for b in batches] == [5, 5, 5, 5, 3]
    rows = np.concatenate([b[0][:, 0] for b in batches]) / 2
    assert sorted(rows.astype(int).tolist()) == list(range(23))
    assert not np.array_equal(rows, np.arange(23))  # actually shuffled
    for Xb, Yb in batches:  # X and Y stay aligned
        np.testing.assert_array_equal(Yb[:, 0], Xb[:, 0] / 2 * 10)

    dropped = list(iterate_minibatches(X, Y, 5, seed=0, drop_last=True))
    assert [len(b[0]) for b in dropped] == [5, 5, 5, 5]

    ordered = list(iterate_minibatches(X, Y, 10, shuffle=False))
    np.testing.assert_array_equal(np.concatenate([b[0] for b in ordered]), X)


def test_minibatches_seed_determinism_and_rng():
    X = np.arange(40.0)[:, None]
    Y = X.copy()
    a = [b[0] for b in iterate_minibatches(X, Y, 7, seed=3)]
    b = [b[0] for b in iterate_minibatches(X, Y, 7, seed=3)]
    c = [b[0] for b in iterate_minibatches(X, Y, 7, seed=4)]
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not np.array_equal(np.concatenate(a), np.concatenate(c))
    g1, g2 = np.random.default_rng(9), np.random.default_rng(9)
    e1 = np.concatenate([xb for xb, _ in iterate_minibatches(X, Y, 8, rng=g1)])
    e2 = np.concatenate([xb for xb, _ in iterate_minibatches(X, Y, 8, rng=g2)])
    np.testing.assert_array_equal(e1, e2)
    e1b = np.concatenate([xb for xb, _ in iterate_minibatches(X, Y, 8, rng=g1)])
    assert not np.array_equal(e1, e1b)  # generator advanced -> new epoch order


def test_minibatches_errors_raised_eagerly():
    X = np.zeros((5, 2))
    with pytest.raises(ValueError, match="batch_size"):
        iterate_minibatches(X, X, 0)
    with pytest.raises(ValueError, match="rows"):
        iterate_minibatches(X, np.zeros((4, 2)), 2)
    with pytest.raises(ValueError, match="seed or rng"):
        iterate_minibatches(X, X, 2, seed=1, rng=np.random.default_rng(1))


# --------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------


def test_get_dataset(small_mnist):
    _, _, paths, _ = small_mnist
    t = get_dataset("teacher")
    assert (t.n_train, t.n_test, t.n_features, t.n_outputs) == (1000, 200, 20, 5)
    t2 = get_dataset("linear-gaussian-teacher", n_samples=30, n_test=0, seed=1)
    np.testing.assert_array_equal(
        t2.X_train, linear_gaussian_teacher(30, 20, 5, seed=1)[0].X_train
    )
    d = get_dataset("digits", test_fraction=0.5)
    assert d.n_classes == 10 and abs(d.n_test - 1797 / 2) < 10
    m = get_dataset("mnist-idx", **paths)
    assert m.n_features == 25
    with pytest.raises(ValueError, match="train_images"):
        get_dataset("mnist-idx")
    with pytest.raises(ValueError) as ei:
        get_dataset("cifar10")
    for name in ("digits", "teacher", "linear-gaussian-teacher", "mnist-idx"):
        assert name in str(ei.value)
    assert set(data.DATASET_NAMES) == {"digits", "teacher", "linear-gaussian-teacher", "mnist-idx"}


def test_digits_fast_reader_equals_sklearn():
    """The direct CSV reader (no sklearn import) gives exactly scikit-learn's arrays."""
    from sklearn.datasets import load_digits as sk

    from neurosim.data import _digits_arrays
    X, y = _digits_arrays()
    b = sk()
    np.testing.assert_array_equal(X, b.data)
    np.testing.assert_array_equal(y, b.target)
