"""Long runs write checkpoints atomically and resume to the same numbers as an uninterrupted run."""
import numpy as np
import pytest

import neurosim as ns


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 6))
    Y = np.eye(3)[rng.integers(0, 3, size=40)]
    return X, Y


@pytest.mark.parametrize("backend", ["reference", "numba"])
@pytest.mark.parametrize("optimizer", [ns.SGD(momentum=0.9), ns.Adam()])
def test_resume_equals_uninterrupted(tmp_path, backend, optimizer):
    X, Y = _data()
    net = ns.hierarchy([6, 8, 3], phi="tanh", lr=0.02, optimizer=optimizer)
    full = ns.Simulator(net, backend=backend, seed=4)
    full.train(X, Y, epochs=3, batch_size=8, steps=10, progress=False)

    ck = tmp_path / "ck.npz"
    first = ns.Simulator(net, backend=backend, seed=4)
    first.train(X, Y, epochs=1, batch_size=8, steps=10, progress=False, checkpoint=ck)
    assert ck.exists()
    resumed = ns.Simulator(net, backend=backend, seed=4)
    resumed.train(X, Y, epochs=3, batch_size=8, steps=10, progress=False, checkpoint=ck)
    for k, w in full.weights.items():
        np.testing.assert_array_equal(resumed.weights[k], w)
    assert resumed.history["loss"] == full.history["loss"]
    assert len(resumed.history["epoch_loss"]) == 3
    # a finished run resumed again does nothing more
    again = ns.Simulator(net, backend=backend, seed=4)
    again.train(X, Y, epochs=3, batch_size=8, steps=10, progress=False, checkpoint=ck)
    for k, w in full.weights.items():
        np.testing.assert_array_equal(again.weights[k], w)


def test_checkpoint_of_another_circuit_is_refused(tmp_path):
    X, Y = _data()
    a = ns.Simulator(ns.hierarchy([6, 8, 3], name="a"), backend="reference")
    a.train(X, Y, epochs=1, progress=False, checkpoint=tmp_path / "a.npz")
    b = ns.Simulator(ns.hierarchy([6, 5, 3], name="b"), backend="reference")
    with pytest.raises(ValueError, match="different circuit"):
        b.load_checkpoint(tmp_path / "a.npz")


def test_no_temporary_files_left(tmp_path):
    X, Y = _data()
    sim = ns.Simulator(ns.hierarchy([6, 8, 3]), backend="reference")
    sim.train(X, Y, epochs=2, progress=False, checkpoint=tmp_path / "c.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]
