"""Progress reports with one small interface (``update``, ``set_postfix``, ``close``) for the rest of the code.

On a terminal this is a tqdm bar on stderr.  Where stderr is not a terminal (a pipe, a log file, CI, a
notebook) tqdm draws nothing, so a long run prints a plain line instead, at most every
:data:`INTERVAL` seconds::

    train: 850/1700 (50%), 4.9 s elapsed, ~4.9 s left, loss=0.1234 acc=0.912

The time left is estimated from the items after the first update,
``(now - t_1) * (total - n) / (n - n_1)`` with ``t_1``, ``n_1`` the clock and count at the first update
(the first item often includes one-off costs, e.g. compiling kernels: a line printed after it alone
would have extrapolated a 10 s compile to half an hour); until an item after the first is done, a line
gives no estimate.

and, if it printed any, one last line when it finishes.  Runs shorter than the interval print nothing.
"""
from __future__ import annotations

import sys
import time

#: seconds between two plain progress lines
INTERVAL = 5.0
#: the clock of the plain progress lines (a module attribute, so that tests can inject their own)
_clock = time.monotonic


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix(self, *a, **k):
        pass

    def close(self):
        pass


def _fmt_s(s: float) -> str:
    if s < 60:
        return f"{s:.1f} s"
    m, s = divmod(int(round(s)), 60)
    return f"{m} min {s:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"


class LineProgress:
    """Plain progress lines for a stream that is not a terminal: ``desc: n/total (pct), elapsed, ~left``
    plus the last ``set_postfix`` values, at most once every ``interval`` seconds of ``clock`` (checked
    on ``update``), and a final line on ``close`` ("done in" or, for a run that ended early, "stopped
    after") if any line was printed."""

    def __init__(self, total: int, desc: str = "", stream=None, interval: float = INTERVAL, clock=None):
        self.total = int(total)
        self.desc = desc
        self.stream = sys.stderr if stream is None else stream
        self.interval = float(interval)
        self.clock = _clock if clock is None else clock
        self.n = 0
        self.postfix = {}
        self.lines = 0
        self.closed = False
        self.start = self.last = self.clock()
        self.first = None  # (clock, count) at the first update: the rate is estimated after it

    def update(self, n=1):
        self.n += n
        now = self.clock()
        if self.first is None:
            self.first = (now, self.n)
        if now - self.last >= self.interval:
            self.last = now
            self._print(now)

    def set_postfix(self, ordered_dict=None, **kwargs):
        self.postfix = {**dict(ordered_dict or {}), **kwargs}

    def close(self):
        if self.closed:
            return
        self.closed = True
        if self.lines:
            self._print(self.clock(), done=True)

    def _left(self, now):
        """Seconds left from the items after the first update; None until one of them is done."""
        if self.first is not None and self.n > self.first[1]:
            t1, n1 = self.first
            return (now - t1) * (self.total - self.n) / (self.n - n1)
        return None

    def _print(self, now, done=False):
        elapsed = now - self.start
        head = f"{self.desc}: " if self.desc else ""
        parts = [f"{head}{self.n}/{self.total}" + (f" ({self.n / self.total:.0%})" if self.total > 0 else "")]
        if done:
            parts.append(f"{'done in' if self.n >= self.total else 'stopped after'} {_fmt_s(elapsed)}")
        else:
            parts.append(f"{_fmt_s(elapsed)} elapsed")
            left = self._left(now) if 0 < self.n < self.total else None
            if left is not None:
                parts.append(f"~{_fmt_s(left)} left")
        text = ", ".join(parts)
        if self.postfix:
            text += ", " + " ".join(f"{k}={v}" for k, v in self.postfix.items())
        try:
            self.stream.write(text + "\n")
            self.stream.flush()
        except (OSError, ValueError):   # a closed pipe or stream: progress is not worth failing the run for
            return
        self.lines += 1


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def progress_bar(total: int, desc: str = "", enabled: bool = True, *, stream=None, interval: float | None = None,
                 clock=None):
    """A progress report on ``stream`` (default stderr): a tqdm bar on a terminal, plain lines every
    ``interval`` seconds (default :data:`INTERVAL`) elsewhere (:class:`LineProgress`), or a no-op object
    when ``enabled`` is False."""
    if not enabled:
        return _NoBar()
    stream = sys.stderr if stream is None else stream
    if not _isatty(stream):
        return LineProgress(total, desc, stream, INTERVAL if interval is None else interval, clock)
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, file=stream, dynamic_ncols=True, leave=False, mininterval=0.5)
