"""Link-only compilation of the numba kernels' inner functions (neurosim/backends/numba/_linkonly.py).

The kernels' results are checked against the reference backend by the conformance suite, which runs kernels
compiled this way; these tests check the mechanism itself: that it is active with the installed numba, that an
inner function gets no machine code of its own while the kernel calling it runs correctly, that everything else
numba compiles in the same process is untouched, and that a numba whose internals moved is left alone.
"""
import numpy as np
import pytest

numba = pytest.importorskip("numba")

from neurosim.backends.numba import _linkonly  # noqa: E402


def test_active_with_the_installed_numba():
    """Active with the numba versions it was checked on; with a later numba whose internals moved it must have
    switched itself off with a reason (the kernels then compile the usual way, only slower), not fail."""
    checked = tuple(int(v) for v in _linkonly.CHECKED_NUMBA)
    installed = tuple(int(v) for v in numba.__version__.split(".")[:2])
    if installed <= checked:
        assert _linkonly.ACTIVE["active"], (
            f"link-only compilation is off with numba {numba.__version__}: {_linkonly.ACTIVE['reason']}")
    elif not _linkonly.ACTIVE["active"]:
        assert _linkonly.ACTIVE["reason"].startswith("numba has no"), _linkonly.ACTIVE["reason"]
        pytest.skip(f"numba {numba.__version__}: link-only compilation is off ({_linkonly.ACTIVE['reason']}); "
                    "cold starts take about a quarter longer: update neurosim/backends/numba/_linkonly.py")


def _lib_of(dispatcher):
    (cres,) = dispatcher.overloads.values()
    return cres.library


def _in_engine(lib) -> bool:
    """Whether the library's module was added to numba's JIT engine (which emits its machine code)."""
    return lib._final_module in lib._codegen._engine._ee._modules


def test_inner_function_is_compiled_only_into_its_caller():
    # fresh functions (not cached), so that this process compiles them whatever the disk cache holds
    @numba.njit(**_linkonly.JIT_INNER)
    def _scaled_sum(x, a):
        acc = 0.0
        for v in x:
            acc += a * v
        return acc

    @numba.njit(cache=False)
    def caller(x):
        return _scaled_sum(x, 2.0) + _scaled_sum(x[:2], -1.0)

    x = np.arange(5.0)
    assert caller(x) == pytest.approx(2 * 10.0 - 1.0)
    inner = _lib_of(_scaled_sum)
    assert getattr(inner, "_neurosim_link_only", False)
    # no machine code of its own: its module was never given to numba's JIT engine, the caller's was
    assert not _in_engine(inner)
    outer = _lib_of(caller)
    assert not getattr(outer, "_neurosim_link_only", False)
    assert _in_engine(outer)


def test_an_inner_function_can_raise_an_exception_with_a_computed_message():
    """A link-only function's environment (what its code needs to build Python objects, e.g. an exception's
    arguments) is set in the caller that links it: numba would set it when adding the function's own library to
    its JIT engine, which a link-only library never is (a review found this raised RuntimeError('Error creating
    Python tuple from runtime exception arguments') on a cold compile)."""
    @numba.njit(**_linkonly.JIT_INNER)
    def _checked(x):
        if x < 0:
            raise ValueError("negative value", x)
        return x + 1

    @numba.njit(cache=False)
    def caller(x):
        return _checked(x)

    assert caller(2) == 3
    with pytest.raises(ValueError) as e:
        caller(-7)
    assert e.value.args == ("negative value", -7)
    assert getattr(_lib_of(_checked), "_neurosim_link_only", False)


def test_ordinary_functions_compiled_in_the_same_process_are_untouched():
    # a user's function named like one of the kernels' inner functions, called from Python and from another
    # jitted function: numba's usual compilation (own machine code, callable from Python)
    @numba.njit
    def _predict(x):
        return x * 3.0

    @numba.njit
    def user(x):
        return _predict(x) + 1.0

    assert _predict(2.0) == 6.0
    assert user(2.0) == 7.0
    for d in (_predict, user):
        lib = _lib_of(d)
        assert not getattr(lib, "_neurosim_link_only", False) and _in_engine(lib)


def test_a_numba_whose_internals_moved_is_left_alone():
    from numba.core import codegen
    from numba.core.compiler import Compiler

    class Lib:   # no _optimize_final_module
        def _finalize_final_module(self):
            pass

    assert _linkonly._missing(Lib, codegen.JITCPUCodegen, Compiler).startswith("numba has no Lib._optimize_final")

    class Gen:
        def set_env(self, name):   # another signature
            pass

    assert "set_env" in _linkonly._missing(codegen.CPUCodeLibrary, Gen, Compiler)
    assert _linkonly._missing(codegen.CPUCodeLibrary, codegen.JITCPUCodegen, Compiler) == ""


def test_switched_off_by_the_environment(tmp_path):
    import os
    import subprocess
    import sys
    code = ("from neurosim.backends.numba import _linkonly as L; "
            "print(L.ACTIVE['active'], L.ACTIVE['reason'])")
    env = dict(os.environ, NEUROSIM_LINK_ONLY="0", NUMBA_CACHE_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split()[0] == "False" and "NEUROSIM_LINK_ONLY=0" in out
