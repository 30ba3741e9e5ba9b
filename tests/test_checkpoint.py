"""Long runs write checkpoints atomically and resume to the same numbers as an uninterrupted run; a
damaged checkpoint is refused, naming the file, before anything is loaded."""
import os
import signal
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from conftest import checkpoint_circuit

import neurosim as ns


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 6))
    Y = np.eye(3)[rng.integers(0, 3, size=40)]
    return X, Y


@pytest.mark.parametrize("backend", ["reference", "numba"])
@pytest.mark.parametrize("optimizer", [ns.SGD(momentum=0.9), ns.Adam()])
def test_resume_equals_uninterrupted(tmp_path, backend, optimizer, caplog):
    X, Y = _data()
    net = ns.hierarchy([6, 8, 3], phi="tanh", lr=0.02, optimizer=optimizer)
    full = ns.Simulator(net, backend=backend, seed=4)
    full.train(X, Y, epochs=3, batch_size=8, steps=10, progress=False)

    ck = tmp_path / "ck.npz"
    first = ns.Simulator(net, backend=backend, seed=4)
    first.train(X, Y, epochs=1, batch_size=8, steps=10, progress=False, checkpoint=ck)
    assert ck.exists()
    resumed = ns.Simulator(net, backend=backend, seed=4)
    caplog.clear()
    with caplog.at_level("WARNING", logger="neurosim"):
        resumed.train(X, Y, epochs=3, batch_size=8, steps=10, progress=False, checkpoint=ck)
    notes = [r.getMessage() for r in caplog.records if "resuming" in r.getMessage()]
    assert len(notes) == 1 and "holds 1 epoch(s); training the 2 remaining of epochs=3" in notes[0], notes
    for k, w in full.weights.items():
        np.testing.assert_array_equal(resumed.weights[k], w)
    assert resumed.history["loss"] == full.history["loss"]
    assert len(resumed.history["epoch_loss"]) == 3
    # a finished run resumed again does nothing more
    again = ns.Simulator(net, backend=backend, seed=4)
    caplog.clear()
    with caplog.at_level("WARNING", logger="neurosim"):
        again.train(X, Y, epochs=3, batch_size=8, steps=10, progress=False, checkpoint=ck)
    assert any("holds 3 epoch(s); epochs=3 are done already, so nothing more is trained" in r.getMessage()
               for r in caplog.records)
    for k, w in full.weights.items():
        np.testing.assert_array_equal(again.weights[k], w)


def test_checkpoint_of_another_circuit_is_refused(tmp_path):
    X, Y = _data()
    a = ns.Simulator(ns.hierarchy([6, 8, 3], name="a"), backend="reference")
    a.train(X, Y, epochs=1, progress=False, checkpoint=tmp_path / "a.npz")
    b = ns.Simulator(ns.hierarchy([6, 5, 3], name="b"), backend="reference")
    with pytest.raises(ValueError, match="different circuit"):
        b.load_checkpoint(tmp_path / "a.npz")
    # the message says what differs (it named only the circuit's name, the same for every hierarchy)
    c = ns.Simulator(ns.hierarchy([6, 5, 3], name="a"), backend="reference")
    with pytest.raises(ValueError, match=r"different circuit \(population sizes \[6, 8, 3\] \(this simulator: "
                                         r"\[6, 5, 3\]\); weight parameters 72 \(this simulator: 45\)"):
        c.load_checkpoint(tmp_path / "a.npz")


def test_no_temporary_files_left(tmp_path):
    X, Y = _data()
    sim = ns.Simulator(ns.hierarchy([6, 8, 3]), backend="reference")
    sim.train(X, Y, epochs=2, progress=False, checkpoint=tmp_path / "c.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]


# ----------------------------------------------------------------------------- resume = uninterrupted
def _kill_after(sim, n_calls):
    """Make the simulator's backend raise KeyboardInterrupt (a kill) on its ``n_calls``-th batch."""
    run, calls = sim.backend.run_batch, [0]

    def run_batch(*args, **kwargs):
        calls[0] += 1
        if calls[0] == n_calls:
            raise KeyboardInterrupt
        return run(*args, **kwargs)
    sim.backend.run_batch = run_batch


def _assert_same_run(a, b, atol=1e-12):
    """Same weights, optimiser state, network state, counters and history (one code path: rounding only)."""
    for k, w in b.weights.items():
        np.testing.assert_allclose(a.weights[k], w, rtol=0, atol=atol, err_msg=k)
    for name in ("mW", "vW", "mb", "vb"):
        np.testing.assert_allclose(getattr(a.backend, name), getattr(b.backend, name), rtol=0, atol=atol,
                                   err_msg=name)
    np.testing.assert_array_equal(a.backend.opt_t, b.backend.opt_t)
    sa, sb = a.backend.state(), b.backend.state()
    for k in ("x", "eps"):
        np.testing.assert_allclose(sa[k], sb[k], rtol=0, atol=atol, err_msg=k)
    assert (a._global_step, a._n_batches) == (b._global_step, b._n_batches)
    for k in ("loss", "energy", "epoch_loss", "accuracy"):
        np.testing.assert_allclose(a.history[k], b.history[k], rtol=0, atol=atol, err_msg=k)
    assert a.history["steps"] == b.history["steps"]


@pytest.mark.parametrize("backend", ["reference", "numba"])
@pytest.mark.parametrize("kind", ["mlp", "dag", "mupc"])
def test_killed_run_resumes_to_the_numbers_of_an_uninterrupted_one(tmp_path, backend, kind):
    """Killed in epoch 2, resumed from the checkpoint of epoch 1: the same numbers as 3 epochs in one go.
    ``init="previous"`` makes each batch start from the state the batch before it left, so the network
    state is part of what a checkpoint must keep."""
    net, X, Y = checkpoint_circuit(kind)
    kw = dict(batch_size=8, steps=10, progress=False, init="previous")
    full = ns.Simulator(net, backend=backend, seed=4)
    full.train(X, Y, epochs=3, **kw)

    ck = tmp_path / "ck.npz"
    killed = ns.Simulator(net, backend=backend, seed=4)
    _kill_after(killed, 3 + 2)                 # 3 batches per epoch: killed in the middle of epoch 2
    with pytest.raises(KeyboardInterrupt):
        killed.train(X, Y, epochs=3, checkpoint=ck, **kw)
    resumed = ns.Simulator(net, backend=backend, seed=4)
    resumed.load_checkpoint(ck)
    assert len(resumed.history["epoch_loss"]) == 1 and len(resumed.history["loss"]) == 3
    resumed.train(X, Y, epochs=2, **kw)
    _assert_same_run(resumed, full)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.npz"]


# ----------------------------------------------------------------------------- all or nothing
def _two_simulators(tmp_path):
    """A checkpoint (of one trained simulator) and another simulator of the same circuit in another state."""
    X, Y = _data()
    net = ns.hierarchy([6, 8, 3], phi="tanh", lr=0.02, optimizer=ns.Adam(), name="ck")
    a = ns.Simulator(net, backend="reference", seed=1)
    ck = tmp_path / "a.npz"
    a.train(X, Y, epochs=2, batch_size=8, steps=10, progress=False, checkpoint=ck)
    b = ns.Simulator(net, backend="reference", seed=2)
    b.train(X, Y, epochs=1, batch_size=16, steps=5, progress=False)
    return ck, b


def _snapshot(sim):
    be = sim.backend
    return {"arrays": {n: getattr(be, n).copy() for n in ("W", "b", "mW", "vW", "mb", "vb", "opt_t")},
            "state": {k: v.copy() for k, v in (be.state() or {}).items() if k != "mu"},   # mu follows from x
            "history": {k: list(v) for k, v in sim.history.items()},
            "counters": (sim._global_step, sim._n_batches)}


def _assert_unchanged(sim, snap):
    now = _snapshot(sim)
    assert sorted(now["state"]) == sorted(snap["state"]), "network state lost"
    for group in ("arrays", "state"):
        for k, v in snap[group].items():
            np.testing.assert_array_equal(now[group][k], v, err_msg=f"{k} changed by a refused checkpoint")
    assert now["history"] == snap["history"] and now["counters"] == snap["counters"]


def _member_payload(path, member):
    """Byte range of a member's stored data inside the (uncompressed) .npz archive."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member + ".npy")
    data = path.read_bytes()
    o = info.header_offset
    n_name, n_extra = struct.unpack("<HH", data[o + 26:o + 30])
    start = o + 30 + n_name + n_extra
    return start, start + info.compress_size


def _rewrite(path, drop=(), **replace):
    with np.load(path) as z:
        members = {k: z[k] for k in z.files if k not in drop}
    members.update(replace)
    np.savez(path, **members)


@pytest.mark.parametrize("damage", ["flipped byte", "missing member", "nan weights"])
def test_a_bad_checkpoint_is_refused_and_changes_nothing(tmp_path, damage):
    ck, sim = _two_simulators(tmp_path)
    if damage == "flipped byte":     # in the last member the loader reads, after the weights
        start, end = _member_payload(ck, "history")
        data = bytearray(ck.read_bytes())
        data[end - 3] ^= 0x5A
        ck.write_bytes(bytes(data))
        match = "damaged or truncated"
    elif damage == "missing member":
        _rewrite(ck, drop=("history",))
        match = "lacks 'history'"
    else:
        with np.load(ck) as z:
            W = z["W"].copy()
        W[3] = np.nan
        _rewrite(ck, W=W)
        match = "NaN or inf"
    snap = _snapshot(sim)
    with pytest.raises(ns.CheckpointError, match=match) as err:
        sim.load_checkpoint(ck)
    assert str(ck) in str(err.value) and "delete it" in str(err.value)
    _assert_unchanged(sim, snap)


@pytest.mark.parametrize("content", ["truncated", "garbage"])
def test_a_corrupt_checkpoint_given_to_train_names_the_file_and_the_way_out(tmp_path, content):
    ck, trained = _two_simulators(tmp_path)
    data = ck.read_bytes()
    ck.write_bytes(data[:len(data) // 2] if content == "truncated" else b"not a checkpoint\n" * 40)
    X, Y = _data()
    # a simulator that has not trained yet reads the file (resumes); one that has trained overwrites it
    sim = ns.Simulator(trained.circuit, backend="reference", seed=2)
    snap = _snapshot(sim)
    with pytest.raises(ns.CheckpointError) as err:
        sim.train(X, Y, epochs=3, progress=False, checkpoint=ck)
    msg = str(err.value)
    assert str(ck) in msg and "delete it (or pass another checkpoint path)" in msg
    assert "allow_pickle" not in msg
    _assert_unchanged(sim, snap)


def test_non_finite_weights_are_not_saved_over_a_good_checkpoint(tmp_path):
    ck, sim = _two_simulators(tmp_path)
    good = ck.read_bytes()
    with pytest.raises(ValueError, match="W holds NaN or inf"):   # set_weights refuses them ...
        sim.set_weights("W1", np.full(sim.weights["W1"].shape, np.nan))
    sim.backend.weight(sim.plan.proj_index("W1"))[...] = np.nan     # ... so they come from a diverged run
    with pytest.raises(ValueError, match="NaN or inf"):
        sim.save_checkpoint(ck)
    assert ck.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz"]


_KILLED_WRITER = """
import os, signal, sys
import numpy as np
import neurosim as ns

def savez_then_killed(f, **members):      # the process dies half-way through writing the archive
    if isinstance(f, (str, os.PathLike)):
        f = open(f, "ab")
    f.write(b"PK\\x03\\x04 half an archive")
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)

sim = ns.Simulator(ns.hierarchy([6, 8, 3], name="ck"), backend="reference", seed=3)
np.savez = savez_then_killed
sim.save_checkpoint(sys.argv[1])
"""


def test_a_kill_during_a_save_keeps_the_old_checkpoint_and_its_debris_is_removed(tmp_path):
    ck, sim = _two_simulators(tmp_path)
    good = ck.read_bytes()
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(ns.__file__))}
    proc = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(ck)], env=env, capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert ck.read_bytes() == good                           # the checkpoint itself is untouched
    assert len(list(tmp_path.iterdir())) == 2                # ... and the killed writer left a temporary file
    sim.load_checkpoint(ck)                                  # which nothing reads
    X, Y = _data()
    sim.train(X, Y, epochs=3, progress=False, checkpoint=ck)  # the next save removes it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz"]


def test_every_flipped_byte_is_refused_or_harmless(tmp_path):
    """Flip bytes all over a checkpoint (every payload, header and the zip directory): each load either
    refuses the file, leaving the simulator as it was, or loads exactly what was saved."""
    ck, sim = _two_simulators(tmp_path)
    good = ck.read_bytes()
    ref = ns.Simulator(sim.circuit, backend="reference", seed=1)
    ref.load_checkpoint(ck)
    want, before = _snapshot(ref), _snapshot(sim)
    with zipfile.ZipFile(ck) as zf:
        directory = max(i.header_offset + i.compress_size for i in zf.infolist())
    n = len(good)   # a sample of the payloads, a third of the zip directory and all of its end record
    positions = sorted(set(range(0, directory, 31)) | set(range(directory, n - 22, 3)) | set(range(n - 22, n)))
    bad = tmp_path / "bad.npz"
    outcomes = {"refused": 0, "harmless": 0}
    for pos in positions:
        data = bytearray(good)
        data[pos] ^= 0xFF
        bad.write_bytes(bytes(data))
        try:
            sim.load_checkpoint(bad)
        except ns.CheckpointError:
            outcomes["refused"] += 1
            _assert_unchanged(sim, before)
        else:
            outcomes["harmless"] += 1
            _assert_unchanged(sim, want)
            for k, v in before["arrays"].items():      # back to the state before, for the next flip
                getattr(sim.backend, k)[...] = v
            sim.backend.set_state(before["state"]["x"], before["state"]["eps"])
            sim.history = ns.History()
            sim.history.update({k: list(v) for k, v in before["history"].items()})
            sim._global_step, sim._n_batches = before["counters"]
    assert outcomes["refused"] > len(positions) // 2


def test_a_checkpoint_of_the_previous_format_still_loads(tmp_path):
    """Files written before the format held its 'meta' record (weights, optimiser state, counters, history)."""
    import json
    X, Y = _data()
    net = ns.hierarchy([6, 8, 3], phi="tanh", lr=0.02, optimizer=ns.Adam(), name="ck")
    a = ns.Simulator(net, backend="reference", seed=1)
    a.train(X, Y, epochs=1, batch_size=8, steps=10, progress=False)
    be = a.backend
    old = tmp_path / "old.npz"
    np.savez(old, W=be.W, b=be.b, mW=be.mW, vW=be.vW, mb=be.mb, vb=be.vb, opt_t=be.opt_t,
             counters=np.array([a._global_step, a._n_batches], dtype=np.int64),
             history=np.array(json.dumps({k: list(map(float, v)) for k, v in a.history.items()})),
             fingerprint=np.array(a._fingerprint()))
    b = ns.Simulator(net, backend="reference", seed=2)
    b.load_checkpoint(old)
    for k, w in a.weights.items():
        np.testing.assert_array_equal(b.weights[k], w)
    for name in ("mW", "vW", "opt_t"):
        np.testing.assert_array_equal(getattr(b.backend, name), getattr(be, name))
    assert b.history == a.history and (b._global_step, b._n_batches) == (a._global_step, a._n_batches)


def test_a_checkpoint_gets_the_permissions_of_the_users_umask(tmp_path):
    umask = os.umask(0o022)
    try:
        sim = ns.Simulator(ns.hierarchy([6, 8, 3]), backend="reference")
        sim.save_checkpoint(tmp_path / "c.npz")
    finally:
        os.umask(umask)
    assert (tmp_path / "c.npz").stat().st_mode & 0o777 == 0o644


def test_resuming_with_other_train_settings_is_refused_and_changes_nothing(tmp_path):
    """A checkpoint records the settings of its train() call; resuming it with others (another batch size,
    algorithm, seed, relaxation, data) would mix two runs silently (4 PC epochs, then Z-IL ones): refused,
    naming what differs, before anything is loaded. More epochs (finishing a longer run) are not a difference."""
    X, Y = _data()
    net = ns.hierarchy([6, 8, 3], phi="tanh", lr=0.02, name="ck")
    ck = tmp_path / "ck.npz"
    a = ns.Simulator(net, backend="reference", seed=1)
    a.train(X, Y, epochs=1, batch_size=8, steps=10, progress=False, checkpoint=ck)
    base = dict(epochs=2, batch_size=8, steps=10, progress=False, checkpoint=ck)
    cases = [({"batch_size": 16}, "batch_size 8 in the checkpoint, 16 now"),
             ({"algorithm": "zil"}, "algorithm 'pc' in the checkpoint, 'zil' now"),
             ({"steps": 20}, "steps 10 in the checkpoint, 20 now"),
             ({"mode": "nudge", "beta": 0.5}, "mode 'clamp' in the checkpoint, 'nudge' now; beta 0.0 in the "
                                              "checkpoint, 0.5 now"),
             ({"init": "zeros"}, "init 'feedforward' in the checkpoint, 'zeros' now"),
             ({"shuffle": False}, "shuffle True in the checkpoint, False now"),
             ({"dt": 0.05}, "dt 0.1 in the checkpoint, 0.05 now")]
    for change, message in cases:
        b = ns.Simulator(net, backend="reference", seed=1)
        before = _snapshot(b)
        with pytest.raises(ns.CheckpointError, match="other settings") as e:
            b.train(X, Y, **{**base, **change})
        assert message in str(e.value) and "delete the file" in str(e.value), str(e.value)
        _assert_unchanged(b, before)
    other_seed = ns.Simulator(net, backend="reference", seed=2)
    with pytest.raises(ns.CheckpointError, match="seed 1 in the checkpoint, 2 now"):
        other_seed.train(X, Y, **base)
    other_data = ns.Simulator(net, backend="reference", seed=1)
    with pytest.raises(ns.CheckpointError, match="data '40 samples, sha256 [0-9a-f]+' in the checkpoint, "
                                                 "'40 samples, sha256 [0-9a-f]+' now"):
        other_data.train(X + 1e-9, Y, **base)
    # the same settings (and more epochs) resume
    same = ns.Simulator(net, backend="reference", seed=1)
    same.train(X, Y, **base)
    assert len(same.history["epoch_loss"]) == 2
    full = ns.Simulator(net, backend="reference", seed=1)
    full.train(X, Y, epochs=2, batch_size=8, steps=10, progress=False)
    for k, w in full.weights.items():
        np.testing.assert_array_equal(same.weights[k], w)


def test_a_checkpoint_without_train_settings_resumes_as_before(tmp_path):
    """save_checkpoint outside train (and files of earlier neurosim) hold no train settings: train resumes them
    without a check, as before."""
    X, Y = _data()
    net = ns.hierarchy([6, 8, 3], phi="tanh", lr=0.02, name="ck")
    a = ns.Simulator(net, backend="reference", seed=1)
    a.train(X, Y, epochs=1, batch_size=8, steps=10, progress=False)
    ck = a.save_checkpoint(tmp_path / "ck.npz")
    b = ns.Simulator(net, backend="reference", seed=1)
    b.train(X, Y, epochs=2, batch_size=16, steps=5, progress=False, checkpoint=ck)
    assert len(b.history["epoch_loss"]) == 2


def test_train_settings_record_what_changes_the_numbers_and_nothing_else(tmp_path):
    """The circuit's settings (here the learning rate) and the dtype are part of a run; the same data given as
    float32, NumPy scalars in options and options only one side has are not differences."""
    X, Y = _data()
    X = X.astype(np.float32).astype(np.float64)   # values that float32 holds exactly
    ck = tmp_path / "ck.npz"
    net = ns.hierarchy([6, 8, 3], phi="tanh", lr=0.02, name="ck")
    a = ns.Simulator(net, backend="reference", seed=1)
    a.train(X, Y, epochs=1, batch_size=8, steps=6, progress=False, checkpoint=ck, algorithm="fpa",
            options={"eta": 0.5})
    base = dict(epochs=2, batch_size=8, steps=6, progress=False, checkpoint=ck, algorithm="fpa")
    other_lr = ns.Simulator(ns.hierarchy([6, 8, 3], phi="tanh", lr=0.5, name="ck"), backend="reference", seed=1)
    with pytest.raises(ns.CheckpointError, match=r"circuit: projections 'W1' plasticity.lr 0.02 in the checkpoint, "
                                                 r"0.5 now; circuit: projections 'W2' plasticity.lr 0.02"):
        other_lr.train(X, Y, options={"eta": 0.5}, **base)
    # the same numbers as another type are the same setting (np.float64(0.02) is 0.02)
    np_lr = ns.Simulator(ns.hierarchy([6, 8, 3], phi="tanh", lr=np.float64(0.02), name="ck"), backend="reference",
                         seed=1)
    np_lr.train(X, Y, options={"eta": 0.5}, **{**base, "epochs": 1})
    f32 = ns.Simulator(net, backend="reference", seed=1, dtype="float32")
    with pytest.raises(ns.CheckpointError, match="other settings") as e:
        f32.train(X, Y, options={"eta": 0.5}, **base)
    assert "dtype 'float64' in the checkpoint, 'float32' now" in str(e.value) and "data" not in str(e.value)
    # NumPy scalars and float32 data of the same values; probes do not change the numbers
    same = ns.Simulator(net.with_probes(ns.Probe("h1")), backend="reference", seed=1)
    same.train(X.astype(np.float32), Y, options={"eta": np.float64(0.5)}, **base)
    assert len(same.history["epoch_loss"]) == 2
    from neurosim.simulator import _settings_diff
    old = {"options": {"eta": 0.5}, "steps": 6}
    assert _settings_diff(old, {"options": {"eta": 0.5, "added_later": None}, "steps": 6, "new": 1}) == ""
    assert _settings_diff(old, {"options": {"eta": 0.7}, "steps": 6}) == (
        "options {'eta': 0.5} in the checkpoint, {'eta': 0.7} now")


def test_start_from_goes_on_with_new_settings_and_the_new_run_resumes(tmp_path, caplog):
    """The way out the refusal names: train(start_from=old, checkpoint=new) with new settings loads the old run only
    while the new run has no checkpoint yet; re-running the same call (a new process) resumes the new run, and
    epochs counts the old run's epochs too. (sim.load_checkpoint + train resumed the old run again and overwrote the
    new file.)"""
    X, Y = _data()
    net = ns.hierarchy([6, 8, 3], phi="tanh", lr=0.02, name="ck")
    old, new = tmp_path / "old.npz", tmp_path / "new.npz"
    ns.Simulator(net, backend="reference", seed=1).train(X, Y, epochs=2, batch_size=8, steps=6, progress=False,
                                                         checkpoint=old)
    call = dict(epochs=4, batch_size=16, steps=6, progress=False, checkpoint=new, start_from=old)
    # the uninterrupted new run: 2 old epochs, then 2 with batch size 16
    full = ns.Simulator(net, backend="reference", seed=1)
    full.load_checkpoint(old)
    full.train(X, Y, epochs=2, batch_size=16, steps=6, progress=False)
    # interrupted after its first new epoch (epochs=3), then the same call with epochs=4 in a new simulator
    first = ns.Simulator(net, backend="reference", seed=1)
    with caplog.at_level("WARNING", logger="neurosim"):
        first.train(X, Y, **{**call, "epochs": 3})
    assert any("starting from checkpoint" in r.getMessage() and "holds 2 epoch(s); training the 1 remaining"
               in r.getMessage() for r in caplog.records)
    caplog.clear()
    again = ns.Simulator(net, backend="reference", seed=1)
    with caplog.at_level("WARNING", logger="neurosim"):
        again.train(X, Y, **call)
    assert any("resuming from checkpoint" in r.getMessage() and "holds 3 epoch(s)" in r.getMessage()
               for r in caplog.records)
    assert len(again.history["epoch_loss"]) == 4
    for k, w in full.weights.items():
        np.testing.assert_array_equal(again.weights[k], w)
    # once the new run has its file, the old one is not needed to resume it
    old.rename(tmp_path / "moved.npz")
    done = ns.Simulator(net, backend="reference", seed=1)
    done.train(X, Y, **call)
    for k, w in full.weights.items():
        np.testing.assert_array_equal(done.weights[k], w)
    (tmp_path / "moved.npz").rename(old)
    # the new file is the new run's (its settings), the old one untouched
    with pytest.raises(ns.CheckpointError, match="batch_size 16 in the checkpoint, 8 now"):
        ns.Simulator(net, backend="reference", seed=1).train(X, Y, epochs=4, batch_size=8, steps=6, progress=False,
                                                             checkpoint=new)
    trained = ns.Simulator(net, backend="reference", seed=1)
    trained.train(X, Y, epochs=1, progress=False)
    with pytest.raises(ValueError, match="start_from needs a simulator that has not trained yet"):
        trained.train(X, Y, **call)
    with pytest.raises(ValueError, match="start_from and checkpoint are the same file"):
        ns.Simulator(net, backend="reference", seed=1).train(X, Y, **{**call, "checkpoint": old})


def test_a_graph_circuits_added_param_settings_are_a_difference(tmp_path):
    """A Param (here freezing W1) added to a graph circuit changes the run: refused, named (a part on one side only
    was skipped)."""
    from neurosim import graph as ng
    X, Y = _data()
    ck = tmp_path / "g.npz"
    g = ng.mlp([6, 8, 3])
    ns.Simulator(g, backend="reference", seed=1).train(X, Y, epochs=1, batch_size=8, steps=4, progress=False,
                                                      checkpoint=ck)
    import dataclasses
    frozen = dataclasses.replace(g, params=(ng.Param("W1", plasticity=None),))
    with pytest.raises(ns.CheckpointError, match=r"circuit: params 'W1' only now"):
        ns.Simulator(frozen, backend="reference", seed=1).train(X, Y, epochs=2, batch_size=8, steps=4, progress=False,
                                                               checkpoint=ck)
