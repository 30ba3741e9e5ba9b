"""The install-time compilation (neurosim/precompile.py, run by setup.py's build_py and by `neurosim compile`):
the kernels it compiles must be exactly the ones the runs then use, so that a fresh install's first run loads them
instead of compiling."""
import os
import subprocess
import sys
import textwrap

import pytest

from neurosim import precompile
from neurosim.cli import main as cli_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# a fresh process that runs the core group's calls on another circuit than the one precompile uses (sizes, batch
# sizes, activations, biases) and counts the neurosim kernels numba had to compile for them (numba sends
# "numba:compile" only for a real compilation, not for a load from its cache)
_CHILD = textwrap.dedent("""
    import numpy as np
    from numba.core import event
    import neurosim as ns
    compiled = []
    class L(event.Listener):
        def on_start(self, ev):
            d = ev.data.get("dispatcher")
            f = getattr(d, "py_func", None)
            if f is not None and f.__module__.startswith("neurosim.") and \\
                    not d.targetoptions.get("no_cpython_wrapper", False):
                compiled.append(f.__qualname__)
        def on_end(self, ev):
            pass
    event.register("numba:compile", L())
    rng = np.random.default_rng(1)
    for dtype in ("float64", "float32"):
        sim = ns.Simulator(ns.hierarchy([5, 7, 6, 3], ["relu", "sigmoid"], bias=False), backend="numba",
                           dtype=dtype, seed=3)
        for B in (1, 40):
            X = rng.normal(size=(B, 5)).astype(dtype)
            Y = rng.normal(size=(B, 3)).astype(dtype)
            sim.learn(X, Y, steps=5)
            sim.predict(X, steps=5)
            sim.learn(X, Y, steps=5, integrator="heun")
            sim.predict(X, steps=50, tol=1e-3)
    n = len(compiled)
    # the listener's own check: a function of a neurosim module compiled here is seen
    import numba
    def probe(x):
        return x + 1
    probe.__module__ = "neurosim._probe"
    numba.njit(probe)(1)
    print("COMPILED", n, sorted(set(compiled[:n])), "PROBE", compiled[n:])
""")


def test_compile_command_arguments(capsys):
    for args in (["--jobs", "0"], ["--group", "nonsense"]):
        with pytest.raises(SystemExit) as e:
            cli_main(["compile", *args])
        assert e.value.code == 2
    assert "--jobs must be at least 1" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown group 'nonsense'"):
        precompile.run(["nonsense"])
    assert set(precompile.GROUPS) == {"core", "graph"}


def test_core_group_compiles_the_kernels_the_runs_use(tmp_path):
    """After `python -m neurosim.precompile --group core` into an empty cache, learning and predicting (Euler and
    Heun, fixed steps and a tolerance, float64 and float32, batch 1 and 40) compile no neurosim kernel."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=ROOT)
    env.pop("NEUROSIM_PRECOMPILE", None)
    r = subprocess.run([sys.executable, "-m", "neurosim.precompile", "--group", "core", "--jobs", "1"], env=env,
                       capture_output=True, text=True, timeout=1200, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "compiled core kernels" in r.stdout
    assert any(p.suffix == ".nbi" for p in (tmp_path / "cache").rglob("*"))
    c = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=1200,
                       cwd=ROOT)
    assert c.returncode == 0, c.stderr[-3000:]
    line = [ln for ln in c.stdout.splitlines() if ln.startswith("COMPILED")][0]
    assert line.startswith("COMPILED 0 "), line
    assert line.endswith("PROBE ['probe']"), line


def test_the_compile_notice_says_why_the_kernels_compiled_ahead_are_not_used(tmp_path, monkeypatch):
    """The record written after a compile (per cache location: numba and Python versions) lets the compile notice
    name the reason a fresh-looking install compiles after all: another numba, or another NUMBA_CACHE_DIR."""
    import json

    import numba
    marker = tmp_path / "marker.json"
    monkeypatch.setattr(precompile, "_marker_path", lambda: str(marker))
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    assert precompile.mismatch() == ""                     # nothing compiled ahead: nothing to say
    precompile._write_marker(["core", "graph"], "")
    assert precompile.mismatch() == ""                     # compiled for this setup
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert "another cache location (next to the modules)" in precompile.mismatch()
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    info = json.loads(marker.read_text())
    info[""]["numba"] = "0.60.0"
    marker.write_text(json.dumps(info))
    assert precompile.mismatch() == f"numba 0.60.0, this process runs {numba.__version__}"
