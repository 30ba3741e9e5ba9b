r"""Run a :class:`~neurosim.Simulator` on a modelled substrate: :class:`HardwareSimulator`.

The wrapped simulator holds the *stored* weights (the device state) and the optimiser state; the
:class:`~neurosim.hardware.nonideal.HardwareModel` says what the substrate does to them:

* **writes** (``updates`` and ``weights`` sites): the initial weights are programmed through the ``weights``
  transforms when the wrapper is built; after every update the intended change
  :math:`W_{target} - W_{old}` (computed by the ideal optimiser) is written through the device
  (:meth:`Device.write`).  Biases are neuron parameters in digital registers and are stored exactly.
* **relaxation** (``values``, ``errors``, ``dac``, ``adc``, ``reads`` sites, or ``coding="event"``): the
  relaxation runs in the event-driven engine matching the simulator's backend (``numba`` or
  ``reference``, :mod:`neurosim.hardware.engine`) on the read weights at the current device time.
  Without relaxation effects the simulator's own backend kernel runs, so a model that switches everything
  off trains bit for bit like the plain simulator.

Support matrix (anything else raises :class:`~neurosim.UnsupportedError` when the wrapper is built or
when ``train`` starts, never half-way):

=======================  =====================================  ===========================================
path                      transforms                             limits
=======================  =====================================  ===========================================
PC, backend kernel        updates, weights                       whatever the backend supports
PC, event engine          all sites, clock or event coding       numba/reference backends, float64, Euler,
                                                                 no skip projections, no probes
BP (``algorithm="bp"``)   all sites, clock coding                as the event engine when signal sites or
                                                                 reads are active; event coding unsupported
=======================  =====================================  ===========================================

The wrapper counts operations (:attr:`HardwareSimulator.counts`, a :class:`~neurosim.hardware.cost.OpCounts`)
for every training batch: measured events and synaptic ops under event coding, the clock-driven counts of
:func:`~neurosim.hardware.cost.count_pc` otherwise, and :func:`~neurosim.hardware.cost.count_bp` for BP.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from ..backends.base import INIT_FEEDFORWARD, MODE_CLAMP, MODE_NUDGE, BatchResult
from ..errors import DivergenceError, UnsupportedError
from ..simulator import History, RelaxResult, Simulator, _as_2d
from .bp import hw_gradients
from .cost import NetworkShape, OpCounts, count_bp, count_events, count_pc
from .engine import make_engine
from .nonideal import Device, HardwareModel, _stream

__all__ = ["HardwareSimulator", "HardwareRelaxResult"]

_MODE_NAME = {0: "free", MODE_CLAMP: "clamp", MODE_NUDGE: "nudge"}


@dataclass
class HardwareRelaxResult(RelaxResult):
    """A :class:`~neurosim.RelaxResult` plus what the substrate did.

    ``events`` (steps + 1, n_pops, 2), ``events_init`` (n_pops, 2) and ``sops`` (n_proj, 2) come from the
    event engine (None when the backend kernel ran); ``counts`` are the operation counts of this run.
    """

    events: np.ndarray | None = None
    events_init: np.ndarray | None = None
    sops: np.ndarray | None = None
    counts: OpCounts | None = None


class HardwareSimulator:
    """A :class:`~neurosim.Simulator` on a substrate described by a :class:`HardwareModel`.

    Parameters
    ----------
    sim : Simulator
        Holds the stored weights (modified in place: it *is* the chip) and the optimiser state.
    model : HardwareModel, optional
        Default: the ideal substrate.

    Examples
    --------
    >>> import neurosim as ns
    >>> from neurosim import hardware as hw
    >>> sim = ns.Simulator(ns.hierarchy([64, 32, 10]), backend="numba", seed=0)        # doctest: +SKIP
    >>> model = hw.HardwareModel(weights=[hw.Quantize(4, bound=1.0, rounding="stochastic")],
    ...                          coding="event", threshold=0.01)                       # doctest: +SKIP
    >>> chip = hw.HardwareSimulator(sim, model)                                         # doctest: +SKIP
    >>> chip.train(X, Y, epochs=5)                                                      # doctest: +SKIP
    >>> chip.counts.per_sample()["events"]                                              # doctest: +SKIP
    """

    def __init__(self, sim: Simulator, model: HardwareModel | None = None):
        if not isinstance(sim, Simulator):
            raise TypeError(f"HardwareSimulator needs a neurosim Simulator, got {type(sim).__name__}")
        model = HardwareModel() if model is None else model
        if not isinstance(model, HardwareModel):
            raise TypeError(f"model must be a neurosim.hardware.HardwareModel, got {type(model).__name__}")
        self.sim = sim
        self.model = model
        self.plan = sim.plan
        self.shape = NetworkShape.from_plan(sim.plan)
        self.engine = None
        if model.relaxation_effects:
            reasons = []
            if sim.dtype != np.float64:
                reasons.append("dtype float32 (the hardware engines compute in float64)")
            if sim.integrator != "euler":
                reasons.append(f"integrator {sim.integrator!r} (the event engine takes Euler steps)")
            if sim.probes:
                reasons.append("probes (the hardware engine records events, not probes; drop the probes)")
            if reasons:
                raise UnsupportedError(f"HardwareSimulator: the model changes the relaxation, which needs the "
                                       f"event engine, and it cannot run {'; '.join(reasons)}")
            self.engine = make_engine(sim.backend_name, sim.plan)
        self._setup()

    def _setup(self):
        self.device = Device(self.model, self.plan)
        self.tables = self.device.tables()
        self.sigmas = self.device.read_sigmas
        self.time = 0.0
        self._batch = 0
        self._eval = 0
        self.counts = OpCounts()
        self.history = History()
        if self.engine is not None:
            self.engine.reset()
        if self.model.active("weights"):
            be = self.sim.backend
            be.W[:] = self.device.program(be.W.astype(float), _stream(self.model.seed, 9, 0), now=0.0)

    # ------------------------------------------------------------------ state
    @property
    def weights(self) -> dict:
        """Stored weights and biases (as :attr:`neurosim.Simulator.weights`)."""
        return self.sim.weights

    def read_weights(self) -> dict:
        """Effective weights of a read at the current device time (mismatch and drift applied)."""
        Wr = self.device.read_weights(self.sim.backend.W.astype(float), self.time)
        p = self.plan
        return {p.proj_names[k]: Wr[p.w_off[k]:p.w_off[k] + int(np.prod(p.weight_shape(k)))].reshape(
            p.weight_shape(k)).copy() for k in range(p.n_proj) if p.w_off[k] >= 0}

    def advance(self, seconds: float):
        """Let ``seconds`` of device time pass (conductance drift)."""
        if not (seconds >= 0 and math.isfinite(seconds)):
            raise ValueError(f"advance: seconds must be finite and >= 0, got {seconds!r}")
        self.time += float(seconds)

    def reset(self):
        """Clear the network state (also the event engine's) and the probe data, as
        :meth:`neurosim.Simulator.reset`; the stored weights, device clock, operation counts and history stay.
        To start over from the initial weights use :meth:`reinitialize`."""
        self.sim.reset()
        if self.engine is not None:
            self.engine.reset()

    def reinitialize(self):
        """Start over: ideal initial weights back and re-programmed; device clock, operation counts, network
        state and history cleared (as :meth:`neurosim.Simulator.reinitialize`)."""
        self.sim.reinitialize()
        self._setup()

    def _seed(self, stream: int, counter: int) -> int:
        return int(np.random.SeedSequence([self.model.seed, stream, counter]).generate_state(1)[0] % (2 ** 31 - 1))

    # ------------------------------------------------------------------ one batch
    def _write(self, W_before: np.ndarray) -> int:
        be = self.sim.backend
        W_new, n = self.device.write(W_before, be.W.astype(float), _stream(self.model.seed, 8, self._batch), self.time)
        be.W[:] = W_new
        return n

    def _optimizer_step(self, gW, gb):
        """The ideal optimiser step of every plastic projection (as the reference backend's Hebbian update)."""
        from ..backends.reference import optimizer_step
        p = self.plan
        be = self.sim.backend
        for k in range(p.n_proj):
            if not (p.proj_plastic[k] or p.proj_learn_bias[k]):
                continue
            be.opt_t[k] += 1
            if p.proj_plastic[k]:
                o = p.w_off[k]
                sh = p.weight_shape(k)
                n = sh[0] * sh[1]
                optimizer_step(be.W[o:o + n].reshape(sh), gW[o:o + n].reshape(sh), be.mW[o:o + n].reshape(sh),
                               be.vW[o:o + n].reshape(sh), be.opt_t[k], p.proj_lr[k], p.opt_kind[k], p.opt_param[k])
            if p.proj_learn_bias[k]:
                o = p.b_off[k]
                n = int(p.pop_size[p.proj_post[k]])
                optimizer_step(be.b[o:o + n], gb[o:o + n], be.mb[o:o + n], be.vb[o:o + n], be.opt_t[k],
                               p.proj_lr[k], p.opt_kind[k], p.opt_param[k])

    def _pc_batch(self, X, Y, spec):
        be = self.sim.backend
        B = X.shape[0]
        mode = _MODE_NAME[spec.mode]
        sweep = spec.init == INIT_FEEDFORWARD
        if self.engine is None:
            W_before = be.W.copy() if spec.learn and self.model.write_effects else None
            res = be.run_batch(X, Y, spec)
            ok = res.status == 0
            if W_before is not None and ok:
                self._write(W_before)
            counts = count_pc(self.shape, res.steps, B, mode=mode, learn=spec.learn and ok, sweep=sweep)
        else:
            Wr = self.device.read_weights(be.W.astype(float), self.time)
            res = self.engine.run(X, Y, spec, Wr, be.b.astype(float), self.tables, self.sigmas,
                                  self.model.theta_values, self.model.theta_errors, self._seed(7, self._batch))
            ok = res.status == 0
            written = 0
            if spec.learn and ok:
                W_before, b_before = be.W.copy(), be.b.copy()
                self._optimizer_step(res.gW, res.gb)
                written = self._write(W_before) if self.model.write_effects else int(np.count_nonzero(be.W != W_before))
                written += int(np.count_nonzero(be.b != b_before))
            if self.model.coding == "event":
                counts = count_events(self.shape, res, B, mode=mode, learn=spec.learn and ok, sweep=sweep,
                                      weight_writes=written)
            else:
                counts = count_pc(self.shape, res.steps, B, mode=mode, learn=spec.learn and ok, sweep=sweep)
        self._batch += 1
        if spec.learn and ok:
            self.time += self.model.seconds_per_batch
        return res, counts

    def _bp_batch(self, X, Y, spec):
        be = self.sim.backend
        B = X.shape[0]
        if self.engine is None:
            from ..algorithms.backprop import run_batch as bp_run_batch
            W_before = be.W.copy() if spec.learn and self.model.write_effects else None
            res = bp_run_batch(self.sim, X, Y, spec, {})
        else:
            from ..algorithms.backprop import apply_update
            Wr = self.device.read_weights(be.W.astype(float), self.time)
            loss, y, gW, gb = hw_gradients(self.plan, Wr, be.b.astype(float), X, Y, self.tables, self.sigmas,
                                           _stream(self.model.seed, 10, self._batch))
            e = np.zeros((1, self.plan.n_pops))
            e[0, self.plan.target_pop] = loss
            W_before = None
            if not np.isfinite(loss):
                res = BatchResult(steps=0, energy=e, status=1, fail_step=0, fail_pop=int(self.plan.target_pop),
                                  y0=y, y=y)
            else:
                if spec.learn:
                    W_before = be.W.copy() if self.model.write_effects else None
                    apply_update(be, gW, gb, scale_sum_B=B)
                res = BatchResult(steps=0, energy=e, y0=y, y=y)
        ok = res.status == 0
        if W_before is not None and ok:
            self._write(W_before)
        self._batch += 1
        if spec.learn and ok:
            self.time += self.model.seconds_per_batch
        return res, count_bp(self.shape, B, learn=spec.learn and ok)

    def _raise_if_diverged(self, res, batch=None):
        if res.status != 0:
            pop = self.plan.pop_names[res.fail_pop]
            where = f" in training batch {batch}" if batch is not None else ""
            raise DivergenceError(f"the hardware run diverged (NaN/inf) at step {res.fail_step} in population "
                                  f"{pop!r}{where}; reduce dt, the learning rate or the noise",
                                  step=res.fail_step, population=pop, batch=batch)

    # ------------------------------------------------------------------ public runs
    def run(self, X, Y=None, *, steps: int = 100, mode: str | None = None, beta: float = 0.0,
            init: str = "feedforward", tol: float | None = None, dt: float | None = None, dt_decay: float = 1.0,
            learn: bool = False) -> HardwareRelaxResult:
        """Relax one batch on the substrate (as :meth:`neurosim.Simulator.run`: ``mode`` defaults to
        ``"clamp"`` when ``Y`` is given, else ``"free"``); training runs (``learn=True``) add to :attr:`counts`."""
        sim = self.sim
        sim._check_open()
        if mode is None:
            mode = "free" if Y is None else "clamp"
        spec = sim._spec(steps, mode, beta, init, tol, dt, dt_decay, None, learn, record=False)
        X, Y = sim._inputs(X, Y, spec.mode)
        res, counts = self._pc_batch(X, Y, spec)
        self._raise_if_diverged(res)
        if learn:
            self.counts = self.counts + counts
        p = self.plan
        if self.engine is not None:
            st = {"x": res.x, "eps": res.eps, "mu": res.mu}
        else:
            st = sim.backend.state()
        return HardwareRelaxResult(
            steps=res.steps, energy=res.energy, populations=list(p.pop_names),
            x={n: st["x"][:, p.units(n)] for n in p.pop_names}, eps={n: st["eps"][:, p.units(n)] for n in p.pop_names},
            mu={n: st["mu"][:, p.units(n)] for n in p.pop_names}, y0=res.y0, dt=spec.dt,
            events=getattr(res, "events", None), events_init=getattr(res, "events_init", None),
            sops=getattr(res, "sops", None), counts=counts)

    def predict(self, X, *, relax: bool = False, steps: int = 50, batch_size: int = 1024) -> np.ndarray:
        """Output of the target population with the output free, read on the substrate (noise, converters,
        events at the model's threshold); ``relax=False`` is the feedforward sweep."""
        sim = self.sim
        sim._check_open()
        if self.engine is None:
            return sim.predict(X, relax=relax, steps=steps, batch_size=batch_size)
        X = _as_2d("X", X, self.plan.n_input, sim.dtype, allow_empty=True)
        spec = sim._spec(steps if relax else 0, "free", 0.0, "feedforward", None, None, 1.0, None, False,
                         record=False)
        Wr = self.device.read_weights(sim.backend.W.astype(float), self.time)
        outs = []
        for i in range(0, X.shape[0], batch_size):
            res = self.engine.run(X[i:i + batch_size], None, spec, Wr, sim.backend.b.astype(float), self.tables,
                                  self.sigmas, self.model.theta_values, self.model.theta_errors,
                                  self._seed(11, self._eval))
            self._eval += 1
            self._raise_if_diverged(res)
            outs.append(res.y)
        return np.concatenate(outs, axis=0) if outs else np.zeros((0, self.plan.n_target))

    def evaluate(self, X, Y, **kwargs) -> dict:
        """Loss ½‖t − ŷ‖² (mean over samples) and, for one-hot Y, accuracy of :meth:`predict`."""
        X = _as_2d("X", X, self.plan.n_input, self.sim.dtype)
        Y = _as_2d("Y", Y, self.plan.n_target, self.sim.dtype)
        if Y.shape[0] != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} samples but Y has {Y.shape[0]}")
        Yhat = self.predict(X, **kwargs)
        out = {"loss": float(0.5 * np.mean(np.sum((Y - Yhat) ** 2, axis=1)))}
        if Y.shape[1] > 1:
            out["accuracy"] = float(np.mean(np.argmax(Yhat, axis=1) == np.argmax(Y, axis=1)))
        return out

    def train(self, X, Y, *, epochs: int = 10, batch_size: int = 32, steps: int = 20, algorithm: str = "pc",
              shuffle: bool = True, X_test=None, Y_test=None, progress: bool = True, mode: str = "clamp",
              beta: float = 0.0, tol: float | None = None, dt: float | None = None, dt_decay: float = 1.0,
              init: str = "feedforward", callback=None) -> History:
        """Train on the substrate with ``algorithm="pc"`` (relaxation + Hebbian update) or ``"bp"``.

        Same schedule, defaults (``epochs`` more epochs, 10 by default; 20 relaxation steps), shuffling and
        history as :meth:`neurosim.Simulator.train` (per-batch ``loss`` and
        ``accuracy`` of the substrate's feedforward prediction before the update; test metrics from
        :meth:`evaluate`); operation counts accumulate in :attr:`counts`.
        """
        sim = self.sim
        sim._check_open()
        if algorithm not in ("pc", "bp"):
            raise ValueError(f"HardwareSimulator trains with algorithm 'pc' or 'bp', got {algorithm!r}")
        if algorithm == "bp" and self.model.coding == "event":
            raise UnsupportedError("event (send-on-delta) coding applies to the PC relaxation; backprop has no "
                                   "relaxation to event-code: use coding='clock' for the BP baseline")
        if algorithm == "bp" and self.engine is None:   # BP then runs on the wrapped simulator's backend
            from .. import algorithms
            algorithms.check_backend("bp", sim)
        if mode not in ("clamp", "nudge"):
            raise ValueError(f"training needs mode 'clamp' or 'nudge', got {mode!r}")
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"epochs must be a non-negative int, got {epochs!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        spec = sim._spec(steps, mode, beta, init, tol, dt, dt_decay, None, True, record=False)
        X, Y = sim._inputs(X, Y, spec.mode)
        if (X_test is None) != (Y_test is None):
            raise ValueError("train: X_test and Y_test go together; pass both (or neither)")
        if X_test is not None:
            X_test, Y_test = sim._inputs(X_test, Y_test, spec.mode, names=("X_test", "Y_test"))
        batch_fn = self._pc_batch if algorithm == "pc" else self._bp_batch
        classify = Y.shape[1] > 1
        n = X.shape[0]
        n_batches = -(-n // batch_size)
        h = self.history
        from ..progress import progress_bar
        bar = progress_bar(total=epochs * n_batches, desc=f"train {algorithm} on hardware", enabled=progress)
        try:
            for epoch in range(epochs):
                t0 = time.perf_counter()
                order = np.random.default_rng([sim.seed, len(h["epoch_loss"])]).permutation(n) if shuffle \
                    else np.arange(n)
                losses, accs = [], []
                for bi in range(n_batches):
                    idx = order[bi * batch_size:(bi + 1) * batch_size]
                    xb, yb = X[idx], Y[idx]
                    res, counts = batch_fn(xb, yb, spec)
                    self._raise_if_diverged(res, batch=self._batch - 1)
                    self.counts = self.counts + counts
                    loss = float(0.5 * np.mean(np.sum((yb - res.y0) ** 2, axis=1)))
                    h["loss"].append(loss)
                    h["energy"].append(float(res.energy[-1].sum()))
                    h["steps"].append(res.steps)
                    losses.append(loss * len(idx))
                    if classify:
                        acc = float(np.mean(np.argmax(res.y0, 1) == np.argmax(yb, 1)))
                        h["accuracy"].append(acc)
                        accs.append(acc * len(idx))
                    bar.update(1)
                h["epoch_loss"].append(sum(losses) / n)
                if classify:
                    h["epoch_accuracy"].append(sum(accs) / n)
                if X_test is not None and Y_test is not None:
                    ev = self.evaluate(X_test, Y_test)
                    h["test_loss"].append(ev["loss"])
                    if "accuracy" in ev:
                        h["test_accuracy"].append(ev["accuracy"])
                h["epoch_time"].append(time.perf_counter() - t0)
                if callback is not None and callback(self, epoch):
                    break
        finally:
            bar.close()
        return h

    def __repr__(self):
        return (f"HardwareSimulator({self.sim!r}, coding={self.model.coding!r}, engine="
                f"{self.engine.name if self.engine else 'backend'})")
