"""Progress reports where tqdm draws nothing: plain lines every few seconds on a stream that is not a
terminal (pipes, log files, CI).  Time comes from an injected clock: nothing sleeps or reads the wall clock."""
from __future__ import annotations

import io

import numpy as np

import neurosim as ns
from neurosim import progress


class Clock:
    """Advances by ``step`` seconds every time it is read."""

    def __init__(self, step):
        self.t = 0.0
        self.step = step

    def __call__(self):
        self.t += self.step
        return self.t


class Pipe(io.StringIO):
    def isatty(self):
        return False


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_plain_lines_every_interval_on_a_stream_that_is_not_a_terminal():
    out = Pipe()
    bar = progress.progress_bar(total=20, desc="train", stream=out, interval=5.0, clock=Clock(1.0))
    for i in range(20):
        bar.update(1)
        bar.set_postfix({"loss": f"{0.5 / (i + 1):.3f}"})
    bar.close()
    bar.close()   # closing twice prints nothing more
    lines = out.getvalue().splitlines()
    # the clock reads 1 at the start and advances 1 s per update: a line after updates 5, 10, 15, 20, then the end
    assert [ln.split(",")[0] for ln in lines] == ["train: 5/20 (25%)", "train: 10/20 (50%)", "train: 15/20 (75%)",
                                                  "train: 20/20 (100%)", "train: 20/20 (100%)"]
    assert lines[0] == "train: 5/20 (25%), 5.0 s elapsed, ~15.0 s left, loss=0.125"
    assert lines[-1] == "train: 20/20 (100%), done in 21.0 s, loss=0.025"


def test_short_run_prints_nothing_and_early_end_says_stopped():
    out = Pipe()
    bar = progress.progress_bar(total=100, desc="sweep", stream=out, interval=5.0, clock=Clock(1.0))
    for _ in range(3):
        bar.update(1)
    bar.close()
    assert out.getvalue() == ""
    out = Pipe()
    bar = progress.progress_bar(total=100, desc="sweep", stream=out, interval=5.0, clock=Clock(10.0))
    bar.update(7)
    bar.close()
    # one update so far: its items may carry one-off costs, so no estimate of the time left yet
    assert out.getvalue().splitlines() == ["sweep: 7/100 (7%), 10.0 s elapsed",
                                           "sweep: 7/100 (7%), stopped after 20.0 s"]


def test_disabled_or_terminal_streams_print_no_plain_lines():
    assert isinstance(progress.progress_bar(10, enabled=False, stream=Pipe()), progress._NoBar)
    out = Terminal()
    bar = progress.progress_bar(10, desc="train", stream=out, interval=0.0, clock=Clock(1.0))
    assert not isinstance(bar, progress.LineProgress)   # a tqdm bar draws on a terminal
    bar.close()


def test_training_into_a_pipe_reports_progress(monkeypatch, capsys):
    """``Simulator.train`` with stderr captured (not a terminal) prints plain progress lines."""
    monkeypatch.setattr(progress, "_clock", Clock(1.0), raising=False)
    net = ns.hierarchy([4, 6, 2], phi="tanh", lr=0.01)
    sim = ns.Simulator(net, backend="reference", seed=0)
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(40, 4)), np.eye(2)[rng.integers(0, 2, 40)]
    sim.train(X, Y, epochs=2, batch_size=4, steps=2)         # 20 batches, the clock advancing 1 s per batch
    err = capsys.readouterr().err.splitlines()
    assert [ln.split(",")[0] for ln in err] == ["train: 5/20 (25%)", "train: 10/20 (50%)", "train: 15/20 (75%)",
                                                "train: 20/20 (100%)", "train: 20/20 (100%)"]
    assert "loss=" in err[0] and "acc=" in err[0]
    sim.train(X, Y, epochs=2, batch_size=4, steps=2, progress=False)
    assert capsys.readouterr().err == ""


def test_time_left_leaves_out_a_slow_first_item():
    """The first item compiles (16 s), the next ones take 0.1 s each: a line after the first item alone gives no
    estimate (it would extrapolate the compile: 16 s * 42 = 11 min 12 s); once 3 are done, the time left comes
    from the items after the first, (16.2 - 16.0) * 40 / 2 = 4.0 s, not 16.2 * 40 / 3 = 3 min 36 s."""
    times = iter([0.0, 16.0, 16.1, 16.2, 16.3])
    out = Pipe()
    bar = progress.progress_bar(total=43, desc="train", stream=out, interval=5.0, clock=lambda: next(times))
    bar.update(1)   # printed at 16.0: 1 item done, no estimate yet
    bar.update(1)
    bar.update(1)
    bar._print(16.2)
    lines = out.getvalue().splitlines()
    assert lines == ["train: 1/43 (2%), 16.0 s elapsed",
                     "train: 3/43 (7%), 16.2 s elapsed, ~4.0 s left"]
