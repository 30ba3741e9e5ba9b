"""The numba backend class: packs the plan's tables once, keeps buffers across batches of one size and calls
:func:`~neurosim.backends.numba._relax.kernel` of the batch's variant once per batch."""
from __future__ import annotations

import contextlib
import functools
import threading
import time

import numpy as np

from ..base import EULER, Backend, BatchResult, RunSpec
from ..tables import K_SOFF, pack, sparse_index, unflatten
from ._products import SMALL_BATCH
from ._relax import N_WORK, N_WORK2, ES, MU, X, kernel


class _BlasThreads:
    """Sets the number of threads of the BLAS that numba's ``np.dot`` calls (SciPy's OpenBLAS) for the
    calling thread during a kernel call, and restores it afterwards (``openblas_set_num_threads_local``,
    OpenBLAS >= 0.3.27).  One BLAS thread is the robust choice on a machine whose cores are shared with
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
                break
        if self.fn is None:
            raise ValueError("backend 'numba': blas_threads needs SciPy's bundled OpenBLAS >= 0.3.27 (found none); "
                             "set OPENBLAS_NUM_THREADS in the environment instead")
        self.old = None

    def enter(self, n=None):
        """Set ``n`` threads (default: the object's ``n``) for the calling thread until :meth:`exit`."""
        self.old = self.fn(self.n if n is None else int(n))

    def exit(self):
        self.fn(self.old)


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
    :data:`SMALL_BATCH` runs with

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
    """The threads SciPy's OpenBLAS uses by default (``openblas_get_num_threads``), else ``ncpu``."""
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
                return max(1, int(fn()))
    except (ImportError, OSError):
        pass
    return max(1, int(ncpu))


#: the values of ``blas_threads`` that name a policy rather than a thread count (see :class:`NumbaBackend`)
BLAS_POLICIES = ("auto", "timed", "blas")
#: what ``blas_threads=None`` means: the load-aware choice (:class:`_LoadAwareBlas`).  How much BLAS's own two
#: threads lose on a busy machine depends on the load: beside the two busy processes of ``python -m benchmarks
#: --only load`` a batch 256, T = 20 took 2-3x as long with them as with "auto" (``benchmarks/README.md``, e.g.
#: 87 ms against 40 ms); beside a running test suite, 1375 ms against 241 ms.  Results do not depend on the choice
#: (tests, 1e-10).
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
      batches above :data:`SMALL_BATCH` during a call (see :class:`_BlasThreads`); ``"auto"``: decided before each call from the runnable
      processes of the machine at that instant and the calling thread's CPU share in its previous call
      (:class:`_LoadAwareBlas`), so that a busy machine does not collapse a batch; ``"timed"``: one thread or
      BLAS's default, whichever recent calls measured faster (:class:`_AdaptiveBlas`); ``"blas"``: BLAS's own
      setting; None (the default): :data:`DEFAULT_BLAS_THREADS` (``"auto"``).

    What was chosen is public: after each kernel call :attr:`last_run` (also ``Simulator.last_run``) is
    ``{"blas_policy": "auto" / "timed" / "blas" / the int given, "blas_threads": the BLAS threads the call's matrix
    products ran with (None: a batch up to SMALL_BATCH, which calls no BLAS), "batch_size": B}``, and
    :attr:`blas_calls` counts ``{threads: kernel calls}`` over the backend's life (``None``: calls without BLAS).

    The kernel itself runs on the calling thread.  The former ``threads``/``split_min`` options (a helper
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

    def _buffers(self, B):
        if self._work is None or self.batch_size != B:
            self._work = np.zeros((N_WORK, B * self.plan.n_units), dtype=self.dtype)
            self._work2 = {}
            self._tmp = np.zeros(B * self.tmp_units, dtype=self.dtype)
            self._no_target = np.zeros((B, max(self.plan.n_target, 1)), dtype=self.dtype)
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
        with self.blas_policy(("pc", B, n_steps, heun, bool(spec.learn)), B):
            run_batch_kernel = kernel(heun or spec.tol > 0, self.has_sparse)
            run_batch_kernel(s, t, iargs, fargs, self.pi, self.pf, self.prec, self.ki, self.kf, self.ki_start,
                             self.ki_end, self.S, self.inputs, self.input_off, self.W, self.b, self.mW, self.vW,
                             self.mb, self.vb, self.opt_t, work, work2, self._tmp, self.gtmp, energies, rec, rec_steps,
                             y0, y, out)
        self.have_prev = True
        steps, status, fail_step, fail_pop, r = (int(v) for v in out)
        rec = rec[:r]
        return BatchResult(steps=steps, energy=energies[:steps + 1], status=status, fail_step=fail_step,
                           fail_pop=fail_pop, rec_steps=rec_steps[:r], rec_x=rec[:, 0], rec_eps=rec[:, 1],
                           rec_mu=rec[:, 2], y0=y0.reshape(B, p.n_target), y=y.reshape(B, p.n_target))

    @contextlib.contextmanager
    def blas_policy(self, key, B):
        """The BLAS threads of one kernel call on a batch of ``B``: the option ``blas_threads``, else the choice
        of the policy for workload ``key`` (:class:`_LoadAwareBlas`, :class:`_AdaptiveBlas`); batches up to
        :data:`SMALL_BATCH` use no BLAS."""
        if B <= SMALL_BATCH or (self._blas_threads is None and self._auto_blas is None):
            self._chose(None if B <= SMALL_BATCH else _blas_default_threads(_ncpu()), B)
            yield
            return
        if self._blas_threads is not None:
            self._chose(self._blas_threads.n, B)
            self._blas_threads.enter()
            try:
                yield
            finally:
                self._blas_threads.exit()
            return
        auto = self._auto_blas
        if isinstance(auto, _AdaptiveBlas):
            one = auto.pick(key)
            self._chose(1 if one and auto.one is not None else _blas_default_threads(_ncpu()), B)
            if one:
                auto.one.enter()
            t_start = time.perf_counter()
            try:
                yield
            finally:
                elapsed = time.perf_counter() - t_start
                if one:
                    auto.one.exit()
                auto.record(key, one, elapsed)
            return
        n = auto.threads(key)
        self._chose(n if n is not None else auto.blas_max, B)
        if n is not None:
            auto.setter.enter(n)
        t_start = time.perf_counter()
        c_start = time.thread_time()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - t_start
            cpu = time.thread_time() - c_start
            if n is not None:
                auto.setter.exit()
            auto.record(key, n, elapsed, cpu)

    def _chose(self, threads, B):
        """Record the BLAS threads of the kernel call about to run (:attr:`last_run`, :attr:`blas_calls`)."""
        self.last_run = {"blas_policy": self.blas_setting, "blas_threads": threads, "batch_size": int(B)}
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
        B, w = self.batch_size, self._work
        return {k: unflatten(self.plan, w[j], B, self.dtype) for k, j in (("x", X), ("eps", ES), ("mu", MU))}

    def set_state(self, x, eps):
        p = self.plan
        x = np.asarray(x, dtype=self.dtype)
        B = x.shape[0]
        work = self._buffers(B)
        for row, src in ((X, x), (ES, np.asarray(eps, dtype=self.dtype))):
            buf = work[row]
            for i in range(p.n_pops):
                n, o = int(p.pop_size[i]), int(p.pop_off[i])
                buf[B * o:B * (o + n)] = src[:, o:o + n].ravel()
        self.have_prev = True

    def reset(self):
        super().reset()
        self.have_prev = False
