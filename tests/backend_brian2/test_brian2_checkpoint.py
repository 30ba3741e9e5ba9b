"""Checkpoints on the brian2 backend: a run killed mid-way and resumed from its checkpoint repeats an
uninterrupted one, in rate and in spiking mode (whose per-batch random draws are seeded by a run counter
that the checkpoint keeps), for every circuit kind."""
from __future__ import annotations

import numpy as np
import pytest

from testkit import require_brian2  # noqa: E402

brian2 = require_brian2()

from conftest import checkpoint_circuit  # noqa: E402

import neurosim as ns  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated.*")   # pyparsing names used by brian2 2.9


def _simulator(net, mode):
    opts = {"mode": mode}
    if mode == "spiking":
        opts["spiking"] = {"record_spikes": False}
    return ns.Simulator(net, backend="brian2", seed=4, dt=0.1, backend_options=opts)


@pytest.mark.parametrize("kind", ["mlp", "dag", "mupc"])
@pytest.mark.parametrize("mode", ["rate", "spiking"])
def test_killed_run_resumes_to_the_numbers_of_an_uninterrupted_one(tmp_path, mode, kind):
    # spiking plasticity is plain SGD (no per-synapse optimiser state)
    net, X, Y = checkpoint_circuit(kind, optimizer=ns.SGD() if mode == "spiking" else None)
    X, Y = X[:12], Y[:12]     # 3 batches an epoch: an odd number of runs before the checkpoint
    kw = dict(batch_size=4, steps=5, progress=False, init="previous")
    full = _simulator(net, mode)
    full.train(X, Y, epochs=2, **kw)

    ck = tmp_path / "ck.npz"
    killed = _simulator(net, mode)
    run, calls = killed.backend.run_batch, [0]

    def run_batch(*args, **kwargs):           # killed at the second batch of epoch 2
        calls[0] += 1
        if calls[0] == 5:
            raise KeyboardInterrupt
        return run(*args, **kwargs)
    killed.backend.run_batch = run_batch
    with pytest.raises(KeyboardInterrupt):
        killed.train(X, Y, epochs=2, checkpoint=ck, **kw)

    resumed = _simulator(net, mode)
    resumed.load_checkpoint(ck)
    assert len(resumed.history["epoch_loss"]) == 1
    resumed.train(X, Y, epochs=1, **kw)
    for k, w in full.weights.items():       # one code path: equal up to rounding
        np.testing.assert_allclose(resumed.weights[k], w, rtol=0, atol=1e-12, err_msg=k)
    np.testing.assert_allclose(resumed.history["loss"], full.history["loss"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(resumed.history["energy"], full.history["energy"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(resumed.backend.state()["x"], full.backend.state()["x"], rtol=0, atol=1e-12)
    assert resumed.backend._n_runs == full.backend._n_runs
