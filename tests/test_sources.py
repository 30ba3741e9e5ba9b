"""Every Python source of the project compiles without warnings: an invalid escape sequence in a docstring (``\\s``
in LaTeX) is a DeprecationWarning on Python 3.11 and a SyntaxWarning from 3.12, printed to a user on import."""
import pathlib
import warnings

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCES = sorted({p.resolve() for d in ("neurosim", "circuits", "tests", "benchmarks", "examples")
                  for p in (ROOT / d).rglob("*.py")})   # neurosim/circuits links to circuits: once each


def test_the_sources_were_found():
    assert len(SOURCES) > 100 and any(p.name == "simulator.py" for p in SOURCES)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_source_compiles_without_warnings(path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compile(path.read_text(encoding="utf-8"), str(path), "exec")
