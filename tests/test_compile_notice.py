"""The one-time compile notice (neurosim.config): the first real numba compilation of a neurosim kernel in a
process logs one message to the ``neurosim`` logger (stderr without any logging set up); a load from numba's disk
cache says nothing, and the logger's level silences it.  Tiny stand-in kernels keep this cheap: no neurosim kernel
is compiled."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap

import numba

import neurosim.backends.numba._common  # noqa: F401  (installs the listener, as every kernel module does)
from neurosim import config

NOTICE = "neurosim: compiling numba kernel"


def _kernel(name, module="neurosim.fake_kernels"):
    ns = {}
    exec(f"def {name}(x):\n    return x + 1\n", ns)
    f = ns[name]
    f.__module__ = module
    return numba.njit(cache=False)(f)


def test_the_first_compile_in_a_process_is_announced_once(monkeypatch, caplog):
    monkeypatch.setitem(config._NOTICE, "given", False)
    with caplog.at_level(logging.WARNING, logger="neurosim"):
        _kernel("not_neurosim", module="someone_else")(1)       # another library's numba function: no notice
        assert not [r for r in caplog.records if NOTICE in r.getMessage()]
        _kernel("first_kernel")(1)
        _kernel("second_kernel")(1)
    said = [r.getMessage() for r in caplog.records if NOTICE in r.getMessage()]
    assert len(said) == 1 and "first_kernel (neurosim.fake_kernels)" in said[0] and "10 s" in said[0]
    assert 'logging.getLogger("neurosim").setLevel(logging.ERROR)' in said[0]
    assert [r.name for r in caplog.records if NOTICE in r.getMessage()] == ["neurosim"]


def test_a_process_told_by_the_cli_stays_quiet(monkeypatch, caplog):
    """NEUROSIM_COMPILE_NOTICE=0 (set by the CLI once it has given its own notice, inherited by Dask workers)."""
    monkeypatch.setitem(config._NOTICE, "given", False)
    monkeypatch.setenv("NEUROSIM_COMPILE_NOTICE", "0")
    with caplog.at_level(logging.WARNING, logger="neurosim"):
        _kernel("worker_kernel")(1)
    assert not [r for r in caplog.records if NOTICE in r.getMessage()]


def test_the_notice_is_silenced_by_the_loggers_level(monkeypatch, caplog):
    monkeypatch.setitem(config._NOTICE, "given", False)
    monkeypatch.setattr(logging.getLogger("neurosim"), "level", logging.ERROR)
    with caplog.at_level(logging.DEBUG):
        _kernel("silenced_kernel")(1)
    assert not [r for r in caplog.records if NOTICE in r.getMessage()]


def test_stderr_of_a_fresh_process_says_it_on_a_compile_and_not_on_a_cache_hit(tmp_path):
    """Two processes with one fresh NUMBA_CACHE_DIR run a cached stand-in kernel: the first compiles it and prints
    the notice on stderr (no logging set up), the second loads it from the cache and prints nothing."""
    (tmp_path / "fake_cached.py").write_text(textwrap.dedent("""
        def cached_kernel(x):
            return x * 2
    """))
    script = ("import sys, numba, neurosim\n"
              "neurosim.__path__.append(sys.argv[1])   # the stand-in is the module neurosim.fake_cached\n"
              "import neurosim.backends.numba._common\n"
              "from neurosim.fake_cached import cached_kernel\n"
              "assert numba.njit(cache=True)(cached_kernel)(3) == 6\n")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    runs = [subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env, cwd=root, capture_output=True,
                           text=True, timeout=120) for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], [r.stderr for r in runs]
    assert NOTICE + " cached_kernel (neurosim.fake_cached)" in runs[0].stderr
    assert NOTICE not in runs[1].stderr
