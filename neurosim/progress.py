"""Progress bars (tqdm) that can be switched off, with one small interface for the rest of the code."""
from __future__ import annotations

import sys


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix(self, *a, **k):
        pass

    def close(self):
        pass


def progress_bar(total: int, desc: str = "", enabled: bool = True):
    """A tqdm bar on stderr, or a no-op object when ``enabled`` is False."""
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm
    # disable=None: shown on a terminal, silent when stderr is not a TTY (CI logs, pipes)
    return tqdm(total=total, desc=desc, file=sys.stderr, dynamic_ncols=True, leave=False, mininterval=0.5,
                disable=None)
