"""Every script in examples/ runs (so they never rot) and produces its figures."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
#: the scripts run in a temporary directory but import neurosim from this checkout
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}


def test_there_are_examples():
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(script, tmp_path):
    args = [sys.executable, str(script), "--out", str(tmp_path)]
    if script.stem == "train_digits":
        args += ["--epochs", "2"]
    proc = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=ENV)
    assert proc.returncode == 0, proc.stderr[-2000:]
    pngs = list(tmp_path.glob("*.png"))
    assert pngs, "an example should write at least one figure"
    for p in pngs:
        assert p.read_bytes()[:4] == b"\x89PNG"


def test_error_dynamics_example_reaches_same_equilibrium(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "error_dynamics.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, env=ENV)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = [l for l in proc.stdout.splitlines() if "max difference" in l][0]
    assert float(line.rsplit(":", 1)[1]) < 1e-6
