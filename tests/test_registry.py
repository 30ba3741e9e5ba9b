"""The experiment registry (neurosim/registry.py): the library core never imports the experiments, one
name style (hyphens; old underscore names resolve with a notice), the fast path, other sources."""
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from neurosim import registry
from neurosim.experiment import Experiment

ROOT = Path(__file__).resolve().parents[1]


def test_the_library_core_never_imports_the_experiments():
    core = [p for p in (ROOT / "neurosim").rglob("*.py") if "circuits" not in p.relative_to(ROOT / "neurosim").parts]
    offenders = [str(p.relative_to(ROOT)) for p in core
                 if re.search(r"^\s*(import circuits|from circuits|import neurosim\.circuits|from neurosim\.circuits|"
                              r"from \.circuits|from \. import circuits)", p.read_text(), re.M)]
    assert not offenders, f"core modules importing the experiments: {offenders}"
    code = ("import sys, neurosim, neurosim.cli, neurosim.sweep, neurosim.experiment, neurosim.registry; "
            "print(sorted(m for m in sys.modules if 'circuits' in m.split('.')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_resolving_one_experiment_imports_only_its_module():
    code = ("import sys; from neurosim import registry; e = registry.get('digits'); "
            "print(e.NAME, sorted(m for m in sys.modules if m.startswith('neurosim.circuits.')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    name, mods = out.split(" ", 1)
    assert name == "digits"
    assert eval(mods) == ["neurosim.circuits._params", "neurosim.circuits.digits"]


def test_experiment_names_use_hyphens():
    names = registry.names()
    assert "brian2-bear" in names and "brian2-digits" in names
    assert [n for n in names if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", n)] == []


def test_an_old_underscore_name_resolves_with_a_one_line_notice(capsys):
    registry._NOTIFIED.discard("brian2_bear")
    assert registry.get("brian2_bear") is registry.get("brian2-bear")
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["neurosim: note: the experiment name 'brian2_bear' is deprecated; use 'brian2-bear'"]


def test_an_unknown_name_lists_the_available_ones():
    with pytest.raises(KeyError, match="unknown experiment 'no-such'; available: .*bear"):
        registry.get("no-such")
    with pytest.raises(KeyError, match="unknown experiment 'digitz'; did you mean 'digits'\\? available: "):
        registry.get("digitz")
    with pytest.raises(KeyError, match="did you mean 'digits'"):
        registry.get("Digits")


def test_the_bundled_experiments_are_installed_under_neurosim_not_as_a_top_level_package():
    import neurosim.circuits
    assert Path(neurosim.circuits.__file__).resolve().parent == (ROOT / "circuits").resolve()
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^include = \["neurosim\*"\]$', text, re.M), "only neurosim* packages are installed"
    assert re.search(r'^\[project\.entry-points\."neurosim\.experiments"\]\nbundled = "neurosim\.circuits"$', text,
                     re.M)


def _fake_source(monkeypatch, name, experiments):
    mod = types.ModuleType(name)
    mod.EXPERIMENTS = experiments
    monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.setattr(registry, "sources", lambda: (("bundled", registry.BUNDLED), ("lab", name)))
    registry._registry.cache_clear()


def test_other_packages_add_experiments_through_the_entry_point_group(monkeypatch):
    exp = Experiment("lab-demo", "a lab's own experiment", {"seed": 0}, lambda cfg, out, progress=True: {"x": 1})
    _fake_source(monkeypatch, "lab_experiments_for_test", [exp])
    try:
        assert registry.get("lab-demo") is exp
        assert ("lab-demo", "a lab's own experiment") in registry.list_experiments()
    finally:
        registry._registry.cache_clear()


def test_a_name_defined_twice_is_refused(monkeypatch):
    exp = Experiment("bear", "a second bear", {"seed": 0}, lambda cfg, out, progress=True: {})
    _fake_source(monkeypatch, "lab_duplicate_for_test", [exp])
    try:
        with pytest.raises(RuntimeError, match="experiment name 'bear' is defined twice .*lab_duplicate_for_test"):
            registry.names()
    finally:
        registry._registry.cache_clear()
