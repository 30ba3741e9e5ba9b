"""The tutorial notebooks in examples/ run top to bottom in a real Jupyter kernel and show figures, and the
committed copies carry no outputs."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "examples").glob("*.ipynb"))


def test_there_are_three_tutorials():
    names = [p.stem for p in NOTEBOOKS]
    assert len(names) == 3, names
    for topic in ("prospective_configuration", "hardware", "dynamics"):
        assert any(topic in n for n in names), (topic, names)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_has_no_outputs(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    for k, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{path.name} cell {k} has outputs: strip them before committing"
            assert cell.get("execution_count") is None, f"{path.name} cell {k} has an execution count"


@pytest.fixture
def kernel_manager(tmp_path, monkeypatch):
    """A kernel manager for a 'python3' kernel spec that runs *this* interpreter (the venv under test),
    importing neurosim from this checkout."""
    pytest.importorskip("nbclient", reason="the notebook runner is part of the [dev] extra")
    pytest.importorskip("ipykernel", reason="the notebook kernel is part of the [dev] extra")
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec_dir = tmp_path / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (tests)", "language": "python"}))
    ksm = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
    assert ksm.get_kernel_spec("python3").argv[0] == sys.executable
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    return KernelManager(kernel_name="python3", kernel_spec_manager=ksm)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_shows_figures(path, tmp_path, kernel_manager):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    # a last cell reports which interpreter and which neurosim the kernel ran
    probe = nbformat.v4.new_code_cell("import sys, neurosim\nprint(sys.executable)\nprint(neurosim.__file__)")
    nb.cells.append(probe)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    client = NotebookClient(nb, km=kernel_manager, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(run_dir)}})
    client.execute()                                 # raises CellExecutionError on any failing cell
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2, f"{path.name} shows {len(images)} figures"
    if "prospective" in path.stem:
        # the paper's direction and size of effect (Song et al. 2024, Fig. 3 with plain SGD): PC's correct output
        # dips far less than BP's (0.932 vs 0.761 here; with hierarchy's default momentum 0.9 they were 0.697
        # and 0.440, which the notebook showed without saying so)
        import re
        text = "".join(o.get("text", "") for o in outputs)
        low = {k: float(v) for k, v in re.findall(r"(PC|BP): first step.*lowest salmon prediction ([0-9.]+)", text)}
        assert low["PC"] > 0.9 and low["BP"] < 0.8, low
    exe, mod = "".join(o.get("text", "") for o in probe.outputs).split()[:2]
    assert Path(exe).resolve() == Path(sys.executable).resolve()
    assert Path(mod).resolve().is_relative_to(ROOT)
