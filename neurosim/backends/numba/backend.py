"""The numba backend class: packs the plan's tables once, keeps buffers across batches of one size and calls
:func:`~neurosim.backends.numba._relax.kernel` of the batch's variant once per batch."""
from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from concurrent.futures import wait

import numpy as np

from ..base import EULER, INIT_PREVIOUS, Backend, BatchResult, RunSpec
from ..tables import K_SOFF, pack, sparse_index, unflatten
from ._products import SMALL_BATCH
from ._relax import EPS, ES, LEARN_ONLY, MU, N_WORK, N_WORK2, PHX, X, kernel

#: batches of at least twice this many rows relax in row blocks of at least this many (:func:`row_blocks`): a
#: single-thread GEMM of 128 of the 256-wide rows runs at 94% (float32) and 98% (float64) of the rate of 256 rows on
#: this project's machine, and each block's state stays in the core's L2 cache.  Not fewer: blocks of 64-100 rows
#: made OpenBLAS sum some products in another order than for the whole batch (states differed by 5e-14 in float64,
#: 4e-5 in float32 after two batches), where blocks of 128 rows and more gave the whole batch's products to the bit
SPLIT_ROWS = 128


#: OpenBLAS's per-call setting (``openblas_set_num_threads_local``) is the process-wide thread count in the pthreads
#: builds SciPy ships (a thread reads the count another set), so every change of it goes through :func:`_blas_push` /
#: :func:`_blas_pop`: counted over every thread of the process, the first change saves BLAS's own setting (``base``)
#: and the last restore puts it back -- so simulators in several Python threads (row blocks on workers, a whole batch
#: on one thread) never leave the process on another count, and the default read while one of them runs is BLAS's
#: own (:func:`_blas_default_threads`).  In between, concurrent calls run with whichever count was set last, which
#: changes their speed, not their numbers (OpenBLAS splits a product's output between its threads).
_BLAS_STATE = {"depth": 0, "base": None, "fn": None}
_BLAS_LOCK = threading.Lock()


def _blas_push(fn, n):
    with _BLAS_LOCK:
        old = fn(int(n))
        if _BLAS_STATE["depth"] == 0:
            _BLAS_STATE["base"] = old
            _BLAS_STATE["fn"] = fn
        _BLAS_STATE["depth"] += 1


def _blas_after_fork():
    """In a child forked while a call of the parent had changed the count (another thread in a row-block run): no
    pop will come in the child, so put BLAS's own setting back and start the count afresh (and the lock, which the
    fork may have copied held)."""
    global _BLAS_LOCK
    _BLAS_LOCK = threading.Lock()
    if _BLAS_STATE["depth"] > 0 and _BLAS_STATE.get("fn") is not None:
        try:
            _BLAS_STATE["fn"](_BLAS_STATE["base"])
        except Exception:   # pragma: no cover - a C call that does not fail on the builds we know
            pass
    _BLAS_STATE["depth"] = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_blas_after_fork)


def _blas_pop(fn):
    with _BLAS_LOCK:
        _BLAS_STATE["depth"] -= 1
        if _BLAS_STATE["depth"] == 0:
            fn(_BLAS_STATE["base"])


@contextlib.contextmanager
def _one_blas_thread(setter):
    """One BLAS thread while row blocks run on workers and while their weight update runs (each worker setting and
    restoring the process-wide count itself left the other worker's products on two threads, or the process on
    one)."""
    _blas_push(setter.fn, 1)
    try:
        yield
    finally:
        _blas_pop(setter.fn)


_POOL = {"pool": None, "pid": None}
_POOL_LOCK = threading.Lock()


def block_pool():
    """The process's worker threads for row blocks (one per core it may run on; made on first use, made again in a
    forked child), shared by every backend so that many simulators do not each keep threads of their own."""
    import os
    with _POOL_LOCK:
        if _POOL["pool"] is None or _POOL["pid"] != os.getpid():
            from concurrent.futures import ThreadPoolExecutor
            _POOL["pool"] = ThreadPoolExecutor(max_workers=max(_ncpu(), 1), thread_name_prefix="neurosim-block")
            _POOL["pid"] = os.getpid()
        return _POOL["pool"]


def row_blocks(B: int):
    """The row blocks ``[(r0, r1), ...]`` a batch of ``B`` relaxes in, or None for one block: ``B // SPLIT_ROWS``
    blocks as equal as possible (from 256 items).  A function of ``B`` alone -- never of the cores, the load or the
    thread count -- so that a batch's numbers do not depend on the machine: the blocks run at once on two or more
    workers, in turn on one."""
    nb = int(B) // SPLIT_ROWS
    if nb < 2:
        return None
    q, rem = divmod(int(B), nb)
    out, r0 = [], 0
    for j in range(nb):
        r1 = r0 + q + (1 if j < rem else 0)
        out.append((r0, r1))
        r0 = r1
    return out


class _BlasThreads:
    """Sets the number of threads of the BLAS that numba's ``np.dot`` calls (SciPy's OpenBLAS) during a kernel
    call, and restores it afterwards (``openblas_set_num_threads_local``, OpenBLAS >= 0.3.27; despite its name the
    count it sets is the process's, in the pthreads builds SciPy ships: another thread reads it too, see
    :func:`_one_blas_thread`).  One BLAS thread is the robust choice on a machine whose cores are shared with
    other busy processes: a multi-threaded GEMM waits for its slowest thread, and a descheduled one
    stalls it for a whole time slice."""

    def __init__(self, n):
        import ctypes
        import glob
        import os

        import scipy
        libs = glob.glob(os.path.join(os.path.dirname(scipy.__file__), os.pardir, "scipy.libs", "libscipy_openblas*.so*"))
        self.n = n
        self.fn = None
        for path in libs:
            lib = ctypes.CDLL(path)
            fn = getattr(lib, "openblas_set_num_threads_local", None)
            if fn is not None:
                fn.argtypes = [ctypes.c_int]
                fn.restype = ctypes.c_int
                self.fn = fn
                self.lib = lib
                break
        if self.fn is None:
            raise ValueError("backend 'numba': blas_threads needs SciPy's bundled OpenBLAS >= 0.3.27 (found none); "
                             "set OPENBLAS_NUM_THREADS in the environment instead")

    def enter(self, n=None):
        """Set ``n`` threads (default: the object's ``n``) until :meth:`exit` (counted process-wide, see
        :func:`_blas_push`)."""
        _blas_push(self.fn, self.n if n is None else int(n))

    def exit(self):
        _blas_pop(self.fn)


class _AdaptiveBlas:
    """The timing-based BLAS threading of the numba core (``blas_threads="timed"``, and the fallback of ``"auto"``
    where ``/proc`` cannot be read): per workload (batch size, steps,
    integrator), each kernel call runs with **one** BLAS thread or with **BLAS's own default** (all cores),
    whichever its recent calls measured faster.

    On a quiet machine the default is faster for large batches (two threads share a GEMM); on a busy one it
    can collapse (a multi-threaded GEMM waits for a descheduled thread for a whole time slice), while one
    thread only loses its share of the cores.  So the choice follows the machine's state:

    * the first call of a workload (it may compile) is not measured; the next :attr:`TRIAL` calls alternate
      the two options;
    * after that the option with the lower median of its last :attr:`WINDOW` calls runs, and every
      :attr:`EXPLORE`-th call runs the other one, refreshing its window -- so a busy spell switches to one
      thread within a few calls, and a quiet one back within a few exploration periods.

    The results do not depend on the choice: OpenBLAS splits a GEMM's output between its threads, so every
    element is summed in the same order (one and two threads trained identically to the bit here; the tests
    compare them to 1e-10).  Without OpenBLAS's per-call thread setting (``openblas_set_num_threads_local``)
    BLAS's default runs.
    """

    TRIAL = 6
    WINDOW = 5
    EXPLORE = 8

    def __init__(self):
        try:
            self.one = _BlasThreads(1)
        except ValueError:
            self.one = None
        self.stats = {}   # workload -> [recent times with one thread, recent times with the default, calls]

    @staticmethod
    def _median(v):
        return float(np.median(v)) if v else float("inf")

    def _one_is_faster(self, st) -> bool:
        return self._median(st[0]) <= self._median(st[1])

    def pick(self, key) -> bool:
        """Whether the next call of workload ``key`` runs with one BLAS thread."""
        st = self.stats.setdefault(key, [[], [], 0])
        st[2] += 1
        n = st[2]
        if self.one is None or n == 1:
            return False
        if n <= 1 + self.TRIAL:
            return n % 2 == 0
        best_one = self._one_is_faster(st)
        return (not best_one) if n % self.EXPLORE == 0 else best_one

    def record(self, key, one: bool, seconds: float):
        st = self.stats[key]
        if st[2] == 1:   # the first call may have compiled
            return
        w = st[0 if one else 1]
        w.append(seconds)
        if len(w) > self.WINDOW:
            del w[0]

    def choices(self) -> dict:
        """``{workload: "1" or "default"}``: what each workload runs now (for benchmarks and reports)."""
        return {k: ("1" if self._one_is_faster(v) else "default") for k, v in self.stats.items()}


class _ProcSignals:
    """Cheap instantaneous signals of CPU contention on Linux, read from ``/proc`` through file descriptors kept
    open (``pread`` at offset 0 regenerates the text; ~30 us per call in all, against ~130 us when opening the
    files each time):

    * :meth:`others_running`: runnable threads of *other* processes right now: field 4 of ``/proc/loadavg``
      (``running/total``, system-wide, counting the reader) minus this process's own threads in state ``R``
      (``/proc/self/task/*/stat``: the reader, and BLAS workers still spinning after the previous product).

    Raises OSError where ``/proc`` does not exist (the caller then falls back to timing, :class:`_AdaptiveBlas`).
    """

    _shared = None
    _lock = threading.RLock()

    @classmethod
    def shared(cls):
        """The process's one instance (its file descriptors are opened once, not per backend)."""
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def __init__(self):
        import os
        self._os = os
        self._load = os.open("/proc/loadavg", os.O_RDONLY)
        self._tasks = {}
        self._pid = os.getpid()
        self.others_running()   # fails here, not in a kernel call, where the format differs

    def _task_fds(self):
        os = self._os
        if os.getpid() != self._pid:   # a forked child: the cached descriptors name the parent's threads
            for fd in self._tasks.values():
                os.close(fd)
            self._tasks = {}
            self._pid = os.getpid()
        tids = os.listdir("/proc/self/task")
        if len(tids) != len(self._tasks) or any(t not in self._tasks for t in tids):
            for t in [t for t in self._tasks if t not in tids]:
                os.close(self._tasks.pop(t))
            for t in tids:
                if t not in self._tasks:
                    try:
                        self._tasks[t] = os.open(f"/proc/self/task/{t}/stat", os.O_RDONLY)
                    except OSError:   # the thread ended in between
                        pass
        return self._tasks

    def others_running(self) -> int:
        with self._lock:
            os = self._os
            running = int(os.pread(self._load, 128, 0).split()[3].split(b"/")[0])
            own = 0
            for t, fd in list(self._task_fds().items()):
                try:
                    st = os.pread(fd, 512, 0)
                except OSError:   # the thread ended: forget it
                    os.close(self._tasks.pop(t))
                    continue
                i = st.rindex(b")")   # the state follows the command name, which may contain spaces
                own += st[i + 2:i + 3] == b"R"
            return max(running - own, 0)


class _LoadAwareBlas:
    r"""The BLAS threading of ``blas_threads="auto"`` (the default, :data:`DEFAULT_BLAS_THREADS`): decided before
    every kernel call from what the machine is doing *now*, so that other busy processes do not collapse a batch.

    A multi-threaded GEMM waits for its slowest thread: when other runnable processes leave fewer free cores
    than BLAS has threads, one of them is descheduled for a whole time slice at a time and a batch can take
    ten times as long; one thread only loses its share of the cores.  So each call with a batch above
    :data:`SMALL_BATCH` that relaxes whole (below ``2 * SPLIT_ROWS``, or with a tolerance stop or dt decay; a batch
    in row blocks on two or more workers runs one BLAS thread per block whatever the load, see
    :class:`NumbaBackend`) runs with

    .. math::  n = \min(n_{BLAS},\ \max(1,\ n_{cpu} - n_{others}))

    threads, :math:`n_{others}` the runnable threads of other processes at the start of the call
    (:class:`_ProcSignals`) and :math:`n_{cpu}` the cores this process may run on (``os.sched_getaffinity``);
    and with one thread whenever the calling thread got less than :attr:`CPU_SHARE_MIN` of the wall time of
    its previous call (``time.thread_time``: it was descheduled, so someone competes even if not runnable at
    the instant of the sample).  :math:`n = n_{BLAS}` leaves BLAS's own setting untouched.  On a 2-core
    machine: two threads when nothing else runs, one otherwise.

    Where ``/proc`` cannot be read (not Linux) the timing-based :class:`_AdaptiveBlas` decides instead.  The
    signals are injectable (``others``, ``ncpu``) so that the tests check the decisions without a clock.
    Results do not depend on the choice (see :class:`_AdaptiveBlas`).
    """

    #: below this share of the previous call's wall time on a CPU, the calling thread was descheduled
    CPU_SHARE_MIN = 0.9

    def __init__(self, ncpu=None, others=None, blas_max=None):
        import os
        try:
            self.setter = _BlasThreads(1)
        except ValueError:
            self.setter = None
        self.ncpu = int(ncpu) if ncpu is not None else len(os.sched_getaffinity(0))
        self.blas_max = int(blas_max) if blas_max is not None else _blas_default_threads(self.ncpu)
        self.fallback = None
        if others is None:
            try:
                others = _ProcSignals.shared().others_running
            except (OSError, ValueError, IndexError):
                others = None
                self.fallback = _AdaptiveBlas()
        self._others = others
        self.last_share = {}    # workload -> CPU share of the calling thread in its previous call
        self.counts = {}        # workload -> {threads: calls}

    def threads(self, key):
        """The BLAS threads of the next call of workload ``key``: an int, or None for BLAS's own setting."""
        if self.setter is None:
            return None
        if self.fallback is not None:
            return 1 if self.fallback.pick(key) else None
        n = self.decide(self._others(), self.last_share.get(key, 1.0))
        return None if n >= self.blas_max else n

    def decide(self, others: int, share: float) -> int:
        """Threads for ``others`` runnable threads of other processes and the previous call's CPU share."""
        if share < self.CPU_SHARE_MIN:
            return 1
        return min(self.blas_max, max(1, self.ncpu - int(others)))

    def record(self, key, n, wall_s, cpu_s):
        c = self.counts.setdefault(key, {})
        c[n or self.blas_max] = c.get(n or self.blas_max, 0) + 1
        if self.fallback is not None:
            self.fallback.record(key, n == 1, wall_s)
        elif wall_s > 0:
            self.last_share[key] = cpu_s / wall_s

    def choices(self) -> dict:
        """``{workload: "1" / "2" / ... }``: the thread counts each workload ran with so far, most used first."""
        return {k: "/".join(str(n) for n, _ in sorted(v.items(), key=lambda kv: -kv[1])) for k, v in self.counts.items()}


def _ncpu() -> int:
    """The cores this process may run on."""
    from ...config import usable_cores
    return usable_cores()


@functools.lru_cache(maxsize=None)
def _blas_default_threads(ncpu):
    """The threads SciPy's OpenBLAS uses by default (``openblas_get_num_threads``; while a call of this process has
    changed it, the setting it saved), else ``ncpu``."""
    try:
        import ctypes
        import glob
        import os

        import scipy
        for path in glob.glob(os.path.join(os.path.dirname(scipy.__file__), os.pardir, "scipy.libs",
                                           "libscipy_openblas*.so*")):
            lib = ctypes.CDLL(path)
            fn = getattr(lib, "openblas_get_num_threads", None) or getattr(lib, "scipy_openblas_get_num_threads", None)
            if fn is not None:
                fn.restype = ctypes.c_int
                with _BLAS_LOCK:   # BLAS's own setting, not one a running call has set (see _blas_push)
                    n = _BLAS_STATE["base"] if _BLAS_STATE["depth"] > 0 else fn()
                return max(1, int(n))
    except (ImportError, OSError):
        pass
    return max(1, int(ncpu))


#: the values of ``blas_threads`` that name a policy rather than a thread count (see :class:`NumbaBackend`)
BLAS_POLICIES = ("auto", "timed", "blas")
#: what ``blas_threads=None`` means: the load-aware choice (:class:`_LoadAwareBlas`) for batches relaxed whole, row
#: blocks on every core for larger ones.  How much BLAS's own two threads lose on a busy machine depends on the load:
#: beside the two busy processes of ``python -m benchmarks --only load`` a batch 256, T = 20 took 2-3x as long with
#: them as with one thread (whole batches; ``benchmarks/README.md``, e.g. 87 ms against 40 ms); beside a running test
#: suite, 1375 ms against 241 ms.  Results do not depend on the choice (tests, 1e-10).
DEFAULT_BLAS_THREADS = "auto"


def _writable(a, dtype):
    """C-contiguous and writeable: a read-only array is a different numba type (a second compile)."""
    a = np.ascontiguousarray(a, dtype=dtype)
    return a if a.flags.writeable else a.copy()


class NumbaBackend(Backend):
    """Runs the batch kernel (:func:`~neurosim.backends.numba._relax.kernel`); buffers are reused across batches of the same size.

    ``BatchResult.rec_x/rec_eps/rec_mu`` are views of a record buffer that the next ``run_batch`` call
    overwrites: copy them to keep them (``Simulator`` stores copies of what its probes select).

    Options (``Simulator(..., backend_options={...})``):

    * ``blas_threads`` (int, at most the cores the process may run on): BLAS threads of the matrix products of
      batches above :data:`SMALL_BATCH` during a call (see :class:`_BlasThreads`), or the workers of a batch in row
      blocks (one BLAS thread each); ``"auto"``: for a batch relaxed whole, decided before each call from the runnable
      processes of the machine at that instant and the calling thread's CPU share in its previous call
      (:class:`_LoadAwareBlas`), so that a busy machine does not collapse a batch; ``"timed"``: one thread or
      BLAS's default, whichever recent calls measured faster (:class:`_AdaptiveBlas`); ``"blas"``: BLAS's own
      setting; None (the default): :data:`DEFAULT_BLAS_THREADS` (``"auto"``).

    What was chosen is public: after each kernel call :attr:`last_run` (also ``Simulator.last_run``) is
    ``{"blas_policy": "auto" / "timed" / "blas" / the int given, "blas_threads": the BLAS threads of each of the
    call's matrix products (None: a batch up to SMALL_BATCH, which calls no BLAS; 1 in row blocks on several
    workers), "batch_size": B, "row_blocks": the row blocks the batch relaxed in (1: whole), "block_workers": the
    threads that relaxed them}``, and :attr:`blas_calls`
    counts ``{threads: kernel calls}`` over the backend's life (``None``: calls without BLAS).

    **Row blocks.**  A batch of at least ``2 * SPLIT_ROWS`` (256) items whose items do not interact (no tolerance
    stop, no dt decay: both act on the whole batch) relaxes as :func:`row_blocks` of about 128 rows, each a kernel
    call of its own, then learns once from the whole batch (:meth:`_run_blocks`).  With two or more threads
    (:meth:`block_workers`: ``blas_threads`` >= 2, or ``"auto"``/``"timed"`` on a machine with two or more cores)
    the blocks run at once, one per worker thread with one BLAS thread each, so that the elementwise work of a step
    runs on every core and the threads meet only at the end of the relaxation instead of inside every matrix
    product -- which also lets a busy machine cost a batch only its share of the cores, so block runs do not
    consult the load (beside two busy processes, batch 256, T = 20: 49-52 ms on two block workers, 59-64 ms on one
    thread, 75-79 ms when ``"auto"`` still chose one worker from the load); with one thread (``blas_threads=1``,
    ``"blas"``, one core) they run in turn.  Every item's arithmetic is the same as in one block (states, outputs
    and weight updates equal the whole batch's to the bit here); the batch-mean energies are summed per block,
    then over blocks.  The blocks depend only on the batch size, so a run's numbers do not depend on the threads.

    The kernel itself runs on the calling thread (a batch in row blocks: on worker threads).  The former ``threads``/``split_min`` options (a helper
    thread taking half of the large passes of small batches) were removed: the gain was within noise on
    2 cores and its results were not reproducible to the bit; passing them raises a ValueError.
    """

    name = "numba"
    #: run_batch writes probe records straight into a caller's array (see :meth:`run_batch`)
    accepts_rec_out = True
    supports = frozenset({"euler", "heun", "tol", "nudge", "tau_eps", "skip", "multiplier", "bias", "adam",
                          "dt_decay", "float32", "probes", "graph", "sparse"})
    #: the keys ``backend_options`` may hold
    options = ("blas_threads",)
    #: options that existed once, with the reason they are gone (passing one raises a ValueError saying so)
    removed_options = {
        "threads": "the helper thread of threads=2 was removed (on 2 cores it gained nothing measurable and "
                   "its results depended on which thread computed what); the kernel runs on the calling thread",
        "split_min": "it set the split of the removed threads=2 helper thread",
    }

    def __init__(self, plan, dtype=np.float64, blas_threads=None, **unknown):
        for key in unknown:
            why = self.removed_options.get(key)
            raise ValueError(f"backend 'numba': backend_options key {key!r} "
                             + (f"was removed: {why}; " if why else "is not an option; ")
                             + f"valid keys: {list(self.options)}")
        super().__init__(plan, dtype)
        p = plan
        if blas_threads is None:
            blas_threads = DEFAULT_BLAS_THREADS
        policy = blas_threads if isinstance(blas_threads, str) and blas_threads in BLAS_POLICIES else None
        if policy is None and (isinstance(blas_threads, bool) or not isinstance(blas_threads, int) or blas_threads < 1):
            raise ValueError(f"backend 'numba': blas_threads must be a positive int, one of {list(BLAS_POLICIES)} "
                             f"or None, got {blas_threads!r}")
        if policy is None and blas_threads > _ncpu():
            raise ValueError(f"backend 'numba': blas_threads={blas_threads} exceeds the {_ncpu()} core(s) this process "
                             f"may run on; more BLAS threads than cores make every matrix product wait for "
                             f"descheduled threads (batch 256 on 2 cores: 496 ms with 4 threads, 27 ms with 2). "
                             f"Use at most {_ncpu()}, or 'auto' (the default)")
        self._blas_threads = _BlasThreads(blas_threads) if policy is None else None
        self._auto_blas = _LoadAwareBlas() if policy == "auto" else _AdaptiveBlas() if policy == "timed" else None
        #: the ``blas_threads`` setting in force (``"auto"``, ``"timed"``, ``"blas"`` or an int)
        self.blas_setting = policy if policy is not None else int(blas_threads)
        #: what the last kernel call ran with: ``{"blas_policy", "blas_threads", "batch_size"}`` (see the class
        #: docstring), None before the first call
        self.last_run = None
        #: ``{BLAS threads (None: no BLAS): kernel calls}`` over this backend's life
        self.blas_calls = {}
        self.pi, self.pf, self.ki, self.kf = pack(p, self.dtype)
        self.S = sparse_index(p)
        #: the circuit has sparse projections: its kernel holds their code (others compile without it)
        self.has_sparse = bool(np.any(self.ki[:, K_SOFF] >= 0)) if self.ki.shape[0] else False
        self.prec = p.precision.astype(self.dtype)
        self.ki_start = p.in_start.astype(np.int64)
        self.ki_end = p.in_end.astype(np.int64)
        self.inputs = p.input_pops.astype(np.int64)
        self.input_off = p.input_off.astype(np.int64)
        self.tmp_units = int(p.pop_size.max())
        # the Hebbian gradient buffer: the largest weight block (a sparse projection's synapses, never n_post x n_pre)
        self.gtmp = np.zeros(max([p.weight_size(k) for k in range(p.n_proj)] + [self.tmp_units, 1]), dtype=self.dtype)
        self.have_prev = False
        self._work = None
        self._out = np.zeros(5, dtype=np.int64)
        self._rec = None
        self._no_target = None
        self._blockbufs = {}
        #: the key of the row blocks whose buffers hold the newest state (None: the batch's buffers do)
        self._block_state = None
        self._learn_out = np.zeros(5, dtype=np.int64)
        try:   # one BLAS thread while row blocks run on workers (none: the blocks run in turn)
            self._one_blas = _BlasThreads(1)
        except ValueError:
            self._one_blas = None

    def _buffers(self, B):
        if self._work is None or self.batch_size != B:
            self._work = np.zeros((N_WORK, B * self.plan.n_units), dtype=self.dtype)
            self._work2 = {}
            self._tmp = np.zeros(B * self.tmp_units, dtype=self.dtype)
            self._no_target = np.zeros((B, max(self.plan.n_target, 1)), dtype=self.dtype)
            self._blockbufs = {}
            self._block_state = None
            self.batch_size = B
            self.have_prev = False
        return self._work

    def run_batch(self, s, t, spec: RunSpec, rec_out=None) -> BatchResult:
        """One batch; ``rec_out``, if given, is a C-contiguous ``(n_records, 3, n_units)`` array of the
        backend's dtype that receives the probe records (x, eps, mu of the probed item) in place of the
        backend's own buffer: the Simulator passes its record store, so nothing is copied."""
        p = self.plan
        s = _writable(s, self.dtype)
        B = s.shape[0]
        work = self._buffers(B)
        heun = int(spec.integrator) != EULER
        work2 = self._work2.get(heun)
        if work2 is None:
            work2 = self._work2[heun] = np.zeros((N_WORK2, B * p.n_units if heun else 1), dtype=self.dtype)
        t = self._no_target if t is None else _writable(t, self.dtype)
        n_steps = int(spec.n_steps)
        every = int(spec.probe_every)
        n_rec = n_steps // every + 1 if every > 0 else 0
        # probe records go to a buffer kept across calls (fresh pages would cost a page fault every 4 KiB
        # inside the kernel): the returned rec_* are views that the next call overwrites (the Simulator
        # copies what its probes select at once)
        if rec_out is None:
            rec = self._rec_buffer(n_rec)
        else:
            rec = rec_out
            if (rec.dtype != self.dtype or rec.shape != (n_rec, 3, p.n_units)
                    or not rec.flags.c_contiguous or not rec.flags.writeable):
                raise ValueError(f"backend 'numba': rec_out must be a writeable C-contiguous {self.dtype} array of "
                                 f"shape {(n_rec, 3, p.n_units)}, got {rec.dtype} {rec.shape}")
        rec_steps = np.zeros(n_rec, dtype=np.int64)
        energies = np.zeros((n_steps + 1, p.n_pops))
        y0 = np.zeros(B * p.n_target, dtype=self.dtype)   # flat for the kernel (see read_pop)
        y = np.zeros(B * p.n_target, dtype=self.dtype)
        iargs = np.array([int(self.have_prev), int(spec.mode), int(spec.init), n_steps, int(spec.integrator),
                          int(bool(spec.learn)), every, int(spec.probe_item), int(p.target_pop)], dtype=np.int64)
        fargs = np.array([spec.beta, spec.tol, spec.dt, spec.dt_decay], dtype=np.float64)
        out = self._out
        # rows are independent unless the run couples them (a tolerance on the whole batch, dt decay on its energy)
        blocks = row_blocks(B) if spec.tol <= 0 and spec.dt_decay >= 1.0 else None
        workers = self.block_workers() if blocks is not None else 1
        with self.blas_policy(("pc", B, n_steps, heun, bool(spec.learn)), B,
                              workers if blocks is not None and workers >= 2 else None) as ctl:
            run_batch_kernel = kernel(heun or spec.tol > 0, self.has_sparse)
            if blocks is None:
                self._sync_blocks()
                run_batch_kernel(s, t, iargs, fargs, self.pi, self.pf, self.prec, self.ki, self.kf, self.ki_start,
                                 self.ki_end, self.S, self.inputs, self.input_off, self.W, self.b, self.mW, self.vW,
                                 self.mb, self.vb, self.opt_t, work, work2, self._tmp, self.gtmp, energies, rec,
                                 rec_steps, y0, y, out)
            else:
                self._run_blocks(run_batch_kernel, blocks, s, t, iargs, fargs, spec, heun, work, energies, rec,
                                 rec_steps, y0, y, out, ctl)
        workers = ctl["workers"] if blocks is not None else 1
        self._chose(ctl["threads"], B, len(blocks) if blocks is not None else 1, workers)
        self.have_prev = True
        steps, status, fail_step, fail_pop, r = (int(v) for v in out)
        rec = rec[:r]
        return BatchResult(steps=steps, energy=energies[:steps + 1], status=status, fail_step=fail_step,
                           fail_pop=fail_pop, rec_steps=rec_steps[:r], rec_x=rec[:, 0], rec_eps=rec[:, 1],
                           rec_mu=rec[:, 2], y0=y0.reshape(B, p.n_target), y=y.reshape(B, p.n_target))

    # -- batches relaxed in row blocks ---------------------------------------------------------------------------
    def _block_buffers(self, key):
        """Per row block of ``key = (blocks, heun)``: its state buffers, scratch, summary and where its rows lie in the
        batch's ``[population][item][unit]`` layout (kept while the batch size stays)."""
        blocks, heun = key
        bufs = self._blockbufs.get(key)
        if bufs is None:
            p = self.plan
            B = blocks[-1][1]
            nu = p.n_units
            bufs = []
            for r0, r1 in blocks:
                Bb = r1 - r0
                # per population: its rows in the batch's buffer and in the block's (both contiguous)
                spans = [(B * o + r0 * n, B * o + r1 * n, Bb * o, Bb * (o + n))
                         for n, o in zip(p.pop_size.tolist(), p.pop_off.tolist())]
                bufs.append({
                    "work": np.zeros((N_WORK, Bb * nu), dtype=self.dtype),
                    "work2": np.zeros((N_WORK2, Bb * nu if heun else 1), dtype=self.dtype),
                    "tmp": np.zeros(Bb * self.tmp_units, dtype=self.dtype),
                    "no_target": np.zeros((Bb, max(p.n_target, 1)), dtype=self.dtype),
                    "rec": np.zeros((0, 3, nu), dtype=self.dtype),
                    "rec_steps": np.zeros(0, dtype=np.int64),
                    "out": np.zeros(5, dtype=np.int64),
                    "spans": spans,
                })
            self._blockbufs[key] = bufs
        return bufs

    @staticmethod
    def _copy_rows(work, bb, rows, to_block):
        """Copy state rows ``rows`` (X, ES, ...) between the batch's buffers and block ``bb``'s."""
        for row in rows:
            full, part = work[row], bb["work"][row]
            for a0, a1, b0, b1 in bb["spans"]:
                if to_block:
                    part[b0:b1] = full[a0:a1]
                else:
                    full[a0:a1] = part[b0:b1]

    def _sync_blocks(self):
        """Bring the newest state (x, error state, mu) from the row blocks into the batch's buffers."""
        key = self._block_state
        if key is not None:
            for bb in self._blockbufs.get(key, ()):
                self._copy_rows(self._work, bb, (X, ES, MU), to_block=False)
            self._block_state = None

    def _run_blocks(self, fn, blocks, s, t, iargs, fargs, spec, heun, work, energies, rec, rec_steps, y0, y, out,
                    ctl):
        """Relax a batch as independent row blocks (:func:`row_blocks`), on ``ctl["workers"]`` threads with one BLAS
        thread each (or in turn on the calling thread), then learn once from the whole batch's errors.

        Every item's arithmetic is the same as in one block: the rows of a matrix product do not depend on the
        other rows (OpenBLAS sums each element in the same order for 128 or 256 rows: equal to the bit here), so
        states, outputs and weight updates are those of the whole batch; only the batch-mean energies are summed
        in another order (per block, then over blocks: rounding).  The block layout does not depend on the
        threads, so neither do the numbers."""
        from ._relax import I_LEARN, I_PEVERY, I_PITEM
        p = self.plan
        nt = p.n_target
        n_steps = int(spec.n_steps)
        key = (tuple(blocks), bool(heun))
        bufs = self._block_buffers(key)
        prev = int(spec.init) == INIT_PREVIOUS and self.have_prev
        if prev:
            # the start state into the batch's buffers (from whichever blocks hold the newest, e.g. those of the
            # other integrator), whence each block takes its rows -- and takes them again after a divergence
            self._sync_blocks()
        no_target = t is self._no_target
        calls = []
        probe_block = -1
        for j, ((r0, r1), bb) in enumerate(zip(blocks, bufs)):
            if prev:
                self._copy_rows(work, bb, (X, ES), to_block=True)
            ia = iargs.copy()
            ia[I_LEARN] = 0
            if int(spec.probe_every) > 0 and r0 <= int(spec.probe_item) < r1:
                ia[I_PITEM] = int(spec.probe_item) - r0
                rj, rsj = rec, rec_steps
                probe_block = j
            else:
                ia[I_PEVERY] = 0
                rj, rsj = bb["rec"], bb["rec_steps"]
            bb["energies"] = np.zeros((n_steps + 1, p.n_pops))
            calls.append((s[r0:r1], bb["no_target"] if no_target else t[r0:r1], ia, fargs, self.pi, self.pf,
                          self.prec, self.ki, self.kf, self.ki_start, self.ki_end, self.S, self.inputs, self.input_off,
                          self.W, self.b, self.mW, self.vW, self.mb, self.vb, self.opt_t, bb["work"], bb["work2"],
                          bb["tmp"], self.gtmp, bb["energies"], rj, rsj, y0[r0 * nt:r1 * nt], y[r0 * nt:r1 * nt],
                          bb["out"]))
        workers = min(int(ctl["workers"]), len(calls))
        # on workers: one BLAS thread from here to the end of the weight update (see _one_blas_thread; the update's
        # products on BLAS's own threads would leave OpenBLAS's worker spinning into the next batch's blocks,
        # measured 38 ms against 22 ms per batch); in turn: the BLAS threads the policy set
        with _one_blas_thread(self._one_blas) if workers > 1 else contextlib.nullcontext():
            if workers > 1:
                workers = self._blocks_on_workers(fn, calls, workers)
            else:
                for args in calls:
                    fn(*args)
            ctl["workers"] = workers
            self._finish_blocks(fn, blocks, bufs, calls, s, t, iargs, fargs, spec, prev, key, work, energies,
                                rec_steps, y0, y, out, probe_block)

    @staticmethod
    def _blocks_on_workers(fn, calls, workers) -> int:
        """Run the block calls on the process's pool (:func:`block_pool`); returns the workers used."""
        futures = []
        try:
            try:
                for args in calls:
                    futures.append(block_pool().submit(fn, *args))
            except RuntimeError:
                # the interpreter is shutting down (concurrent.futures takes no new work then, e.g. in an atexit
                # handler or a thread still running after the main one ended): the rest in turn here
                workers = min(workers, len(futures) + 1)
                for args in calls[len(futures):]:
                    fn(*args)
            for f in futures:
                f.result()
        except BaseException:
            # (an interrupt, or a block that raised): no block may still write the shared buffers when the caller
            # goes on, so wait for those already running (a kernel cannot be interrupted)
            for f in futures:
                f.cancel()
            wait([f for f in futures if not f.cancelled()])
            raise
        return workers

    def _finish_blocks(self, fn, blocks, bufs, calls, s, t, iargs, fargs, spec, prev, key, work, energies, rec_steps,
                       y0, y, out, probe_block):
        """The batch's summary from its blocks' (as the whole kernel would report it), the state after a divergence,
        and the weight update (see :meth:`_run_blocks`)."""
        from ._relax import I_LEARN, I_NSTEPS, I_PEVERY
        p = self.plan
        B = s.shape[0]
        n_steps = int(spec.n_steps)
        outs = [bb["out"] for bb in bufs]
        failed = [(int(o[2]), int(o[3])) for o in outs if o[1] != 0]
        last = n_steps if not failed else min(k for k, _ in failed)   # the rows every block recorded
        # each population's energy as the whole kernel sums it (sum of pi d^2 over the batch, halved, / B), so that
        # a sum too large for a float64 overflows here as there, although no block's part did
        acc = np.zeros((last + 1, p.n_pops))
        for (r0, r1), bb in zip(blocks, bufs):
            acc += (2.0 * (r1 - r0)) * bb["energies"][:last + 1]
        energies[:last + 1] = 0.5 * acc / B
        nonfinite = np.flatnonzero(~np.all(np.isfinite(energies[:last + 1]), axis=1))
        steps = int(nonfinite[0]) if nonfinite.size else last
        status, fail_step, fail_pop = 0, -1, -1
        if failed or nonfinite.size:
            # as one kernel: the first population whose batch energy is not finite, else whose values are not
            bad = np.flatnonzero(~np.isfinite(energies[steps]))
            status, fail_step = 1, steps
            fail_pop = int(bad[0]) if bad.size else min(q for k, q in failed if k == steps)
            # the whole batch stops every item at that step: relax the blocks that went on again, to it
            for j, o in enumerate(outs):
                if o[1] != 0 and int(o[2]) == steps:
                    continue
                if prev:
                    self._copy_rows(work, bufs[j], (X, ES), to_block=True)
                args = list(calls[j])
                args[2] = args[2].copy()
                args[2][I_NSTEPS] = steps
                args[2][I_PEVERY] = 0
                args[25] = np.zeros((steps + 1, p.n_pops))
                args[26], args[27] = bufs[j]["rec"], bufs[j]["rec_steps"]
                args[30] = np.zeros(5, dtype=np.int64)
                fn(*args)
        r = int(outs[probe_block][4]) if probe_block >= 0 else 0
        if status and r:
            r = int(np.count_nonzero(rec_steps[:r] <= steps))
        # the newest state is the blocks' (state() and a whole-batch run copy it back, _sync_blocks)
        self._block_state = key
        if spec.learn and status == 0:
            for bb in bufs:   # what the weight update reads
                self._copy_rows(work, bb, (EPS, PHX), to_block=False)
            ia = iargs.copy()
            ia[I_LEARN] = LEARN_ONLY
            fn(s, t, ia, fargs, self.pi, self.pf, self.prec, self.ki, self.kf, self.ki_start, self.ki_end, self.S,
               self.inputs, self.input_off, self.W, self.b, self.mW, self.vW, self.mb, self.vb, self.opt_t, work,
               bufs[0]["work2"], self._tmp, self.gtmp, energies, bufs[0]["rec"], bufs[0]["rec_steps"], y0, y,
               self._learn_out)
        out[:] = (steps, status, fail_step, fail_pop, r)

    def block_workers(self) -> int:
        """The threads a batch in row blocks (:func:`row_blocks`) relaxes on: ``blas_threads`` when it is an int;
        for ``"auto"`` and ``"timed"`` the threads BLAS would use (its own setting, e.g. ``OPENBLAS_NUM_THREADS``,
        capped by the cores this process may run on); 1 (the blocks in turn) for ``"blas"`` or without OpenBLAS's
        thread setting.  A function of the settings and the machine, never of its load."""
        if self._one_blas is None:
            return 1
        if self._blas_threads is not None:
            return self._blas_threads.n
        if self._auto_blas is None:
            return 1
        return min(_ncpu(), _blas_default_threads(_ncpu()))

    @contextlib.contextmanager
    def blas_policy(self, key, B, workers=None):
        """The threads of one kernel call on a batch of ``B``: the option ``blas_threads``, else the choice of the
        policy for workload ``key`` (:class:`_LoadAwareBlas`, :class:`_AdaptiveBlas`); batches up to
        :data:`SMALL_BATCH` use no BLAS.  ``workers`` (two or more): the batch relaxes in row blocks on that many
        threads with one BLAS thread each (:meth:`block_workers`; the policies' load-dependent choice is not
        consulted then: the block workers meet once per relaxation, not inside every product, so a busy machine
        costs them only its share of the cores); blocks in turn take the policy's threads like a whole batch.

        Yields ``ctl``: ``ctl["threads"]`` the BLAS threads of each of the call's products (None: a batch without
        BLAS; the caller records them, :meth:`_chose`); ``ctl["workers"]`` the block workers (the block runner
        replaces it by the number it used)."""
        if workers is not None:
            ctl = {"workers": int(workers), "threads": 1}
            if self._blas_threads is not None:
                self._blas_threads.enter()
                try:
                    yield ctl
                finally:
                    self._blas_threads.exit()
            else:
                yield ctl
            return
        ctl = {"workers": 1, "threads": None}
        if B <= SMALL_BATCH or (self._blas_threads is None and self._auto_blas is None):
            ctl["threads"] = None if B <= SMALL_BATCH else _blas_default_threads(_ncpu())
            yield ctl
            return
        if self._blas_threads is not None:
            ctl["threads"] = self._blas_threads.n
            self._blas_threads.enter()
            try:
                yield ctl
            finally:
                self._blas_threads.exit()
            return
        auto = self._auto_blas
        if isinstance(auto, _AdaptiveBlas):
            one = auto.pick(key)
            ctl["threads"] = 1 if one and auto.one is not None else _blas_default_threads(_ncpu())
            if one:
                auto.one.enter()
            t_start = time.perf_counter()
            try:
                yield ctl
            finally:
                elapsed = time.perf_counter() - t_start
                if one:
                    auto.one.exit()
                auto.record(key, one, elapsed)
            return
        n = auto.threads(key)
        ctl["threads"] = n if n is not None else auto.blas_max
        if n is not None:
            auto.setter.enter(n)
        t_start = time.perf_counter()
        c_start = time.thread_time()
        try:
            yield ctl
        finally:
            elapsed = time.perf_counter() - t_start
            cpu = time.thread_time() - c_start
            if n is not None:
                auto.setter.exit()
            auto.record(key, n, elapsed, cpu)

    def _chose(self, threads, B, blocks, workers):
        """Record the BLAS threads, row blocks and block workers of the kernel call that ran (:attr:`last_run`,
        :attr:`blas_calls`)."""
        self.last_run = {"blas_policy": self.blas_setting, "blas_threads": threads, "batch_size": int(B),
                         "row_blocks": int(blocks), "block_workers": int(workers)}
        self.blas_calls[threads] = self.blas_calls.get(threads, 0) + 1

    def _rec_buffer(self, n_rec):
        """A C-contiguous (n_rec, 3, n_units) view of a flat buffer that only grows."""
        n = 3 * n_rec * self.plan.n_units
        if self._rec is None or self._rec.size < n:
            self._rec = np.zeros(max(n, 1), dtype=self.dtype)
        return self._rec[:n].reshape(n_rec, 3, self.plan.n_units)

    def state(self):
        if not self.have_prev:
            return None
        self._sync_blocks()
        B, w = self.batch_size, self._work
        return {k: unflatten(self.plan, w[j], B, self.dtype) for k, j in (("x", X), ("eps", ES), ("mu", MU))}

    def state_rows(self):
        return self.batch_size if self.have_prev else None

    def set_state(self, x, eps):
        p = self.plan
        x = np.asarray(x, dtype=self.dtype)
        B = x.shape[0]
        work = self._buffers(B)
        self._block_state = None   # the state set here is the newest
        for row, src in ((X, x), (ES, np.asarray(eps, dtype=self.dtype))):
            buf = work[row]
            for i in range(p.n_pops):
                n, o = int(p.pop_size[i]), int(p.pop_off[i])
                buf[B * o:B * (o + n)] = src[:, o:o + n].ravel()
        self.have_prev = True

    def reset(self):
        super().reset()
        self.have_prev = False
        self._block_state = None
