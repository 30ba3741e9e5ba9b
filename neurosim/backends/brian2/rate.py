r"""Rate mode: a lowered :class:`~neurosim.plan.Plan` as brian2 NeuronGroups and Synapses.

Every batch item is a copy of the circuit (unit ``b * n + j`` of a group is unit ``j`` of item ``b``);
all copies read one shared weight matrix.

Objects (``P`` = population, ``K`` = projection)
------------------------------------------------
``V_P`` (value neurons, one per unit)
    .. math:: \tau_x \dot x = g\,\big(-\varepsilon + \phi'(x) \odot fb + sfb + \nu\beta (t - x)\big)

    where ``fb`` and ``sfb`` are summed variables written by the projections ``P`` predicts, and ``g``
    is 0 for clamped units and after the run has stopped (``go`` of the control group).
``E_P`` (error neurons, one per unit of a predicted population)
    .. math:: \mu = \sum_K a_K W_K \phi(x_{pre}) + b_K (+ x_{pre}),\qquad
              \varepsilon = \pi (x - \mu)\ \text{ or }\ \tau_\varepsilon \dot\varepsilon = x - \mu - \varepsilon/\pi

    ``x`` arrives from ``V_P`` through one-to-one synapses (a summed variable), ``mu`` through the
    projections' summed variables.
``W_K`` (one neuron per weight) and ``B_K`` (one per bias)
    hold the shared parameters and the optimiser state; the prediction synapses read them as linked
    variables, so prediction (``mu_post += a w phi(x_pre)``) and feedback (``fb_pre += a w eps_post``)
    use *one* weight.  The Hebbian sum :math:`\sum_b \varepsilon_{post} \phi(x_{pre})` is a summed
    variable of synapses ``E_post -> W_K``; the optimiser step is a ``run_regularly`` operation of ``W_K``
    that acts only in the last time step of a learning run (standard PC) or, in a network built with
    ``every_step=True`` (iPC, :mod:`neurosim.algorithms.ipc`), in every time step that moves the values.
``ctl`` (one neuron)
    receives the energy of every population and the count of units still moving faster than ``tol``,
    and holds ``go`` (0 once the run is over or has converged) and the ``dt_decay`` factor.

Update order inside one time step (all from the state at t, then all states advance)::

    before_groups, order 0   summed: x copies, predictions mu
    before_groups, order 1   summed: error copies, feedback, energies, tol counts, Hebbian sums
    before_groups, order 2   ctl: converged? go, steps, dt_decay
    before_groups, order 3   monitors
    groups                   Euler step of x (and eps) of every group
    after_groups             optimiser step (last time step of a learning run only; every_step: every
                             time step but the last)

A run of ``n`` steps is ``n + 1`` brian2 time steps: the last one evaluates (and records) the final
state without moving it, and applies the weight update.  With ``every_step`` the optimiser step acts
in the ``n`` time steps that move the values instead, so time step ``t`` computes every input (errors,
feedback, Hebbian sums) from :math:`(x_t, \theta_t)` and then advances both, which is iPC's joint step

.. math:: x_{t+1} = x_t + \frac{dt}{\tau_x}\,\mathrm{drive}(x_t, \theta_t),\qquad
          \theta_{t+1} = \theta_t + \mathrm{opt}\big(\mathrm{gfac}\; g(x_t, \theta_t)\big),

with Adam's step count ``opt_t`` advancing at every step; the last time step only evaluates
:math:`F(x_n, \theta_n)`.  The initial state (feedforward sweep, zeros,
or the previous state) is set from the host with the same NumPy code as the reference backend.

Sweep schedules (``schedule="fpa"`` / ``"zil"``, :mod:`neurosim.algorithms.fpa`, ``zil``, ``backprop``)
------------------------------------------------------------------------------------------------------
Every weight and bias group computes its own gate in its ``run_regularly`` operation,
``sel = [|t - t_upd| < dt/2]``, ``lrn = learn_k * sel``, keeps the Hebbian sum of that time step in ``gk``
(the update direction, read out after the run, also when nothing learns) and takes its optimiser step along
``gfac * g`` there; ``t_upd`` (the time step of that projection's update) and ``learn_k`` are inputs of every
run.  Z-IL sets ``t_upd`` of projection :math:`k` to its distance :math:`d(k)` from the output; FPA sets it
to the last time step.  ``schedule="fpa"`` also gives every value group the frozen feedforward value ``xh``
and a per-unit step ``gain``; ``phi``, ``phi'``, the skip's value and the Hebbian presynaptic rate are read at
``xh``, so the predictions are :math:`\mu(\hat x)` and the value step is

.. math:: x \leftarrow x + \frac{dt\cdot\mathrm{gain}}{\tau_x}\big(-\varepsilon + \phi'(\hat x)\odot
          fb + sfb\big), \qquad \varepsilon = \pi\,(x - \mu(\hat x)).

Per-read noise (``noisy=True``; a hardware model with ``AdditiveNoise`` / ``MultiplicativeNoise`` on ``reads``)
-------------------------------------------------------------------------------------------------------------
Every synapse of a weighted projection ``S_K`` holds four normals ``zf1, zf2, zb1, zb2``, redrawn by a
``run_regularly`` operation before the summed variables of every time step (``before_groups``, order -1), and
reads its weight as

.. math:: \tilde w^{\mu} = w (1 + s_m z_{f1}) + s_a z_{f2} \ \text{(prediction)}, \qquad
          \tilde w^{fb} = w (1 + s_m z_{b1}) + s_a z_{b2} \ \text{(feedback)},

a fresh draw of every weight at every read, so a prediction row is the exact Gaussian
:math:`\sum_j a w_{ij} \phi_j + a\sqrt{s_m^2 \sum_j w_{ij}^2 \phi_j^2 + s_a^2 \sum_j \phi_j^2}\,\xi` of the
event engine's reads (:func:`neurosim.hardware.nonideal.read_noise_std`), and likewise the feedback.  ``sm`` and
``sa`` (standard deviations) are set per run and brian2's generator is seeded with the run's noise seed, so a run
is reproducible.  The weight groups, the Hebbian sums and the optimiser read no device and draw nothing.  A
network built without ``noisy`` has none of this code.
"""
from __future__ import annotations

import functools

import numpy as np

import brian2 as b2

from ...plan import OPT_ADAM, ROLE_INPUT, ROLE_TARGET
from ..base import MODE_CLAMP, MODE_NUDGE, RunSpec
from . import _common as C

#: 1 plan time unit in brian2 (only ratios dt / tau matter in rate mode)
TIME_UNIT = b2.ms

#: one Heun stage of variable ``v`` with rate ``r`` (the clock's dt is half a value step ``h``): the predictor
#: (``ph = 0``) keeps ``s = v``, ``k = r(v)`` and moves ``v`` to ``v + h k``; the corrector (``ph = 1``), whose
#: inputs brian2 computed at that predicted state, sets ``v = s + h/2 (k + r(v_pred))``
_HEUN_CODE = ("{k} = (1 - ph)*{r} + ph*{k}\n"
              "{s} = (1 - ph)*{v} + ph*{s}\n"
              "{v} = (1 - ph)*({v} + 2*dt*{r}) + ph*({s} + dt*({k} + {r}))")

#: what a RateNetwork's learning does (see the module docstring, "Sweep schedules")
SCHEDULES = ("pc", "fpa", "zil")


def _optimizer_code(kind, lr, mom, wd, b1, b2_, eps_opt, scale, gname, pname, every_step=False, gated=False):
    """brian2 code of one optimiser step on ``pname`` from the summed Hebbian term ``gname``.

    ``lrn`` (1 in the learning step, else 0) gates the update so that a gated step leaves every
    state bit-identical: ``s = lrn * new + (1 - lrn) * s``.  ``every_step`` (iPC): the direction is
    also multiplied by the group's ``gfac`` (the compensation factor of the output options) and the
    Adam step count ``opt_t`` (then a per-neuron variable) advances after every step taken.  ``gated``
    (the sweep schedules ``fpa``/``zil``/``bp``): the group computes its own ``lrn``, 1 only in the time step
    ``t_upd`` of this projection (and only if ``learn_k``), keeps the Hebbian sum of that step in
    ``gk`` (the update direction, read out after the run) and multiplies the direction by ``gfac``.
    """
    lr, mom, wd, b1, b2_, eps_opt, scale = (float(v) for v in (lr, mom, wd, b1, b2_, eps_opt, scale))
    lines = []
    if gated:
        lines += ["sel = int(abs(t - t_upd) < 0.5*dt)", "lrn = learn_k*sel", f"gk = sel*{gname} + (1 - sel)*gk"]
    use_gfac = every_step or gated
    lines += [f"geff = {scale!r}*{'gfac*' if use_gfac else ''}{gname}" + (f" - {wd!r}*{pname}" if wd > 0 else "")]
    if kind == OPT_ADAM:
        lines += [f"m = lrn*({b1!r}*m + {1.0 - b1!r}*geff) + (1 - lrn)*m",
                  f"v = lrn*({b2_!r}*v + {1.0 - b2_!r}*geff*geff) + (1 - lrn)*v",
                  f"{pname} = {pname} + lrn*{lr!r}*(m/(1.0 - {b1!r}**opt_t))/(sqrt(v/(1.0 - {b2_!r}**opt_t)) + {eps_opt!r})"]
    elif mom > 0:
        lines += [f"m = lrn*({mom!r}*m + geff) + (1 - lrn)*m",
                  f"{pname} = {pname} + lrn*{lr!r}*m"]
    else:
        lines += [f"{pname} = {pname} + lrn*{lr!r}*geff"]
    if every_step:
        lines += ["opt_t = opt_t + lrn"]
    return "\n".join(lines)


class RateNetwork:
    """The brian2 objects of one plan for one batch size, and how to run them.

    Parameters
    ----------
    plan : Plan
    B : int
        Batch size (number of circuit copies).
    dt : float
        Time step in plan time units.
    probe_item : int or None
        Batch item whose x / eps / mu are monitored every step (None: no probe monitors).
    standalone : dict or None
        ``{"directory": path, "n_steps": n}`` to build a cpp_standalone binary for runs of exactly
        ``n`` steps; None for the runtime target.
    dtype : numpy float type
        brian2's float type for every variable of this network (float32 or float64, see
        :func:`_common.float_dtype`).
    every_step : bool
        False (standard PC): the optimiser step acts once, in the last (evaluation) time step of a
        learning run.  True (iPC, :mod:`neurosim.algorithms.ipc`): it acts in every time step that also
        moves the values (all but the last), so values and weights step together from the same state;
        the error precisions and the update factor ``gfac`` are then inputs of every run.
    schedule : {"pc", "fpa", "zil"}
        ``"pc"`` (default): the learning above.  ``"fpa"`` / ``"zil"``: a sweep network (see the module
        docstring, "Sweep schedules"); ``"fpa"`` also freezes predictions and Jacobians at ``xh``.
    noisy : bool
        Per-read weight noise (see the module docstring, "Per-read noise"): every weighted synapse draws fresh
        normals for its prediction read and its feedback read in every time step; standard PC
        (``schedule="pc"``, not ``every_step``), Euler, on the runtime target only.
    """

    def __init__(self, plan, B, dt, probe_item=None, standalone=None, every_step=False, schedule="pc",
                 dtype=np.float64, heun=False, noisy=False):
        self.dtype = np.dtype(dtype)
        self.heun = bool(heun)
        self.noisy = bool(noisy)
        if self.noisy and (every_step or schedule != "pc" or standalone is not None or self.heun):
            raise ValueError("RateNetwork: noisy goes with schedule='pc', every_step=False, Euler and the runtime "
                             "target")
        if self.heun and (every_step or schedule != "pc" or standalone is not None):
            raise ValueError("RateNetwork: heun goes with schedule='pc', every_step=False and the runtime target")
        #: brian2 time steps per value step (Heun: a predictor and a corrector time step)
        self.sub = 2 if self.heun else 1
        with C.float_dtype(self.dtype):   # every array of this network in brian2's float type = dtype
            self._build(plan, B, dt, probe_item, standalone, every_step, schedule)

    def _build(self, plan, B, dt, probe_item, standalone, every_step, schedule):
        self.plan = p = plan
        self.B = B
        self.dt = float(dt)
        self.every_step = bool(every_step)
        if schedule not in SCHEDULES:
            raise ValueError(f"RateNetwork: schedule must be one of {list(SCHEDULES)}, got {schedule!r}")
        if schedule != "pc" and self.every_step:
            raise ValueError("RateNetwork: every_step (iPC) goes with schedule='pc'")
        self.schedule = schedule
        self.frozen = schedule == "fpa"          # predictions, Jacobians, Hebbian pre at the frozen xh
        self.gated = schedule in ("fpa", "zil")  # one update per projection, at its own time step
        # the Adam step count: shared (set once per run) or, when it advances at every step, per neuron
        if self.gated:
            opt_t_decl = ("opt_t : 1 (shared)\ngfac : 1 (shared)\nlrn : 1 (shared)\nsel : 1 (shared)\n"
                          "t_upd : second (shared)\nlearn_k : 1 (shared)\ngk : 1")
        else:
            opt_t_decl = ("opt_t : 1\ngfac : 1 (shared)" if self.every_step else "opt_t : 1 (shared)") + \
                "\nlrn : 1 (linked)"
        self.probe_item = probe_item
        self.standalone = standalone
        self.pfx = C.unique_prefix("r")
        self.clock = b2.Clock(dt=self.dt / self.sub * TIME_UNIT, name=self.pfx + "clock")
        self._syn = functools.partial(b2.Synapses, clock=self.clock)   # every object on one explicit clock
        objs = []
        pfx = self.pfx
        npop = p.n_pops
        self.err_pops = [i for i in range(npop) if p.pop_role[i] != ROLE_INPUT]
        has_err = [bool(p.pop_has_err[i]) for i in range(npop)]
        dyn_err = [has_err[i] and p.pop_tau_eps[i] > 0 for i in range(npop)]
        self.dyn_err = dyn_err
        pn = [C.ident(n) for n in p.pop_names]
        kn = [C.ident(n) for n in p.proj_names]
        out_w = {i: [k for k in range(p.n_proj) if p.proj_pre[k] == i and p.w_off[k] >= 0] for i in range(npop)}
        out_s = {i: [k for k in range(p.n_proj) if p.proj_pre[k] == i and p.proj_skip[k]] for i in range(npop)}
        in_w = {i: [k for k in range(p.n_proj) if p.proj_post[k] == i and p.w_off[k] >= 0] for i in range(npop)}
        in_b = {i: [k for k in range(p.n_proj) if p.proj_post[k] == i and p.b_off[k] >= 0] for i in range(npop)}
        in_s = {i: [k for k in range(p.n_proj) if p.proj_post[k] == i and p.proj_skip[k]] for i in range(npop)}

        # ---- control group
        F_names = [f"F_{pn[i]}" for i in range(npop) if has_err[i]]
        nb_names = [f"nbv_{pn[i]}" for i in range(npop)] + [f"nbe_{pn[i]}" for i in range(npop) if dyn_err[i]]
        self.ctl = ctl = C.control_group(self.clock, pfx, F_names, nb_names, extra=("ph",))
        # Heun: ph = 0 (predictor) / 1 (corrector); the control acts in predictor time steps only
        ctl.run_regularly(C.control_update(self.every_step, self.heun), when="before_groups", order=2,
                          name=pfx + "ctl_update")
        objs.append(ctl)
        self.F_names = {i: f"F_{pn[i]}" for i in range(npop) if has_err[i]}

        zeros = lambda n: np.zeros(n, dtype=int)  # noqa: E731
        summed_stage = []   # (synapses, {varname: stage})

        # ---- value and error groups
        self.V, self.E = {}, {}
        self.Wg, self.Bg = {}, {}
        self._tol_syn = []

        def to_ctl(src, var, expr, name, tol):
            """A summed variable ``{var}_post = sum over src of expr`` on the control group (stage 1); ``tol``:
            a counter of units still moving, reset by the runs without a tolerance (``self._tol_syn``)."""
            S = self._syn(src, ctl, f"{var}_post = {expr} : 1 (summed)", name=f"{pfx}{name}")
            S.connect(namespace={})
            summed_stage.append((S, {f"{var}_post": 1}))
            objs.append(S)
            if tol:
                self._tol_syn.append(S)

        for i in range(npop):
            n = int(p.pop_size[i])
            N = B * n
            code, a = int(p.pop_phi[i]), float(p.pop_phi_param[i])
            fbs = [f"fb_{kn[k]}" for k in out_w[i]]
            sfbs = [f"sfb_{kn[k]}" for k in out_s[i]]
            xs = "xh" if self.frozen else "x"   # where phi, phi' (and the skip's value) are evaluated
            if p.pop_role[i] == ROLE_INPUT:
                xeq = ["x : 1"]
            elif self.heun:   # the two stages as a run_regularly operation (below)
                xeq = ["x : 1", "xs : 1", "k1 : Hz", "drv = go*dtf*free*drive/tau_x : Hz", "ph : 1 (linked)"]
            else:
                xeq = [f"dx/dt = go*dtf*free*{'gain*' if self.frozen else ''}drive/tau_x : 1"]
            eqs = [
                *xeq,
                "drive = -eps_in + dphi_x*fb + sfb + nud*beta*(tgt - x) : 1",
                f"phx = {C.phi_expr(code, a, xs)} : 1",
                f"dphi_x = {C.dphi_expr(code, a, xs)} : 1",
                *(["xh : 1", "gain : 1"] if self.frozen else []),
                f"fb = {' + '.join(fbs) if fbs else '0.0'} : 1",
                f"sfb = {' + '.join(sfbs) if sfbs else '0.0'} : 1",
                *[f"{f} : 1" for f in fbs + sfbs],
                "eps_in : 1", "tgt : 1", "free : 1", "nud : 1 (shared)", "beta : 1 (shared)",
                "tau_x : second (shared, constant)", "taup : 1 (shared, constant)",
                "go : 1 (linked)", "dtf : 1 (linked)",
            ]
            V = b2.NeuronGroup(N, "\n".join(eqs), method="euler", clock=self.clock, name=f"{pfx}V_{pn[i]}")
            V.tau_x = float(p.pop_tau_x[i]) * TIME_UNIT
            V.taup = float(p.pop_tau_x[i])
            V.go = b2.linked_var(ctl, "go", index=zeros(N))
            V.dtf = b2.linked_var(ctl, "dtf", index=zeros(N))
            if self.heun and p.pop_role[i] != ROLE_INPUT:
                V.ph = b2.linked_var(ctl, "ph", index=zeros(N))
                V.run_regularly(_HEUN_CODE.format(v="x", k="k1", s="xs", r="drv"), when="groups",
                                name=f"{pfx}heunV_{pn[i]}")
            self.V[i] = V
            objs.append(V)
            if i not in self.err_pops:
                continue
            # tol counter for this group
            to_ctl(V, f"nbv_{pn[i]}", "int(abs(free_pre*drive_pre/taup_pre) >= tolv_post)", f"tolV_{pn[i]}", True)
            mus = [f"mu_{kn[k]}" for k in in_w[i]] + [f"b_{kn[k]}" for k in in_b[i]] + [f"msk_{kn[k]}" for k in in_s[i]]
            eqs = ["x_in : 1", f"mu = {' + '.join(mus) if mus else '0.0'} : 1",
                   *[f"mu_{kn[k]} : 1" for k in in_w[i]], *[f"msk_{kn[k]} : 1" for k in in_s[i]],
                   *[f"b_{kn[k]} : 1" for k in in_b[i]], "prec : 1 (constant)"]
            if dyn_err[i] and self.heun:
                eqs += ["eps : 1", "es : 1", "ke : Hz", "rate_e = go*dtf*(x_in - mu - eps/prec)/tau_eps : Hz",
                        "ph : 1 (linked)", "tau_eps : second (shared, constant)", "taue : 1 (shared, constant)",
                        "go : 1 (linked)", "dtf : 1 (linked)"]
            elif dyn_err[i]:
                eqs += ["deps/dt = go*dtf*(x_in - mu - eps/prec)/tau_eps : 1",
                        "tau_eps : second (shared, constant)", "taue : 1 (shared, constant)",
                        "go : 1 (linked)", "dtf : 1 (linked)"]
            elif has_err[i]:
                eqs += ["eps = prec*(x_in - mu) : 1"]
            else:
                eqs += ["eps = 0.0 : 1"]
            E = b2.NeuronGroup(N, "\n".join(eqs), method="euler", clock=self.clock, name=f"{pfx}E_{pn[i]}")
            o = int(p.pop_off[i])
            E.prec = np.tile(p.precision[o:o + n], B)
            if dyn_err[i]:
                E.tau_eps = float(p.pop_tau_eps[i]) * TIME_UNIT
                E.taue = float(p.pop_tau_eps[i])
                E.go = b2.linked_var(ctl, "go", index=zeros(N))
                E.dtf = b2.linked_var(ctl, "dtf", index=zeros(N))
                if self.heun:
                    E.ph = b2.linked_var(ctl, "ph", index=zeros(N))
                    E.run_regularly(_HEUN_CODE.format(v="eps", k="ke", s="es", r="rate_e"), when="groups",
                                    name=f"{pfx}heunE_{pn[i]}")
            self.E[i] = E
            objs.append(E)
            for k in in_b[i]:   # a bias is a synapse from a bias unit holding b (and its optimiser state)
                Bg = b2.NeuronGroup(n, f"bb : 1\ngb : 1\nm : 1\nv : 1\n{opt_t_decl}",
                                    clock=self.clock, name=f"{pfx}B_{kn[k]}")
                if not self.gated:
                    Bg.lrn = b2.linked_var(ctl, "lrn", index=zeros(n))
                Sb = self._syn(Bg, E, f"b_{kn[k]}_post = bb_pre : 1 (summed)", name=f"{pfx}Sb_{kn[k]}")
                Sb.connect(j=f"q for q in range(i, {N}, {n})", namespace={})   # bias unit j -> unit j of every copy
                summed_stage.append((Sb, {f"b_{kn[k]}_post": 0}))
                self.Bg[k] = Bg
                objs += [Bg, Sb]
            # one-to-one value <-> error copies
            model = "x_in_post = x_pre : 1 (summed)"
            stages = {"x_in_post": 0}
            if has_err[i]:
                model += "\neps_in_pre = eps_post : 1 (summed)"
                stages["eps_in_pre"] = 1
            Sc = self._syn(V, E, model, name=f"{pfx}VE_{pn[i]}")
            Sc.connect(j="i", namespace={})
            summed_stage.append((Sc, stages))
            objs.append(Sc)
            if has_err[i]:
                to_ctl(E, f"F_{pn[i]}", f"0.5*prec_pre*(x_in_pre - mu_pre)**2/{float(B)!r}", f"F_{pn[i]}", False)
            if dyn_err[i]:
                to_ctl(E, f"nbe_{pn[i]}", "int(abs((x_in_pre - mu_pre - eps_pre/prec_pre)/taue_pre) >= tolv_post)",
                       f"tolE_{pn[i]}", True)

        # ---- projections
        self._learn_objs = []
        self._noisy_syn = []   # weighted synapses that draw per-read noise
        for k in range(p.n_proj):
            pre, post = int(p.proj_pre[k]), int(p.proj_post[k])
            n_pre, n_post = int(p.pop_size[pre]), int(p.pop_size[post])
            Vpre, Epost = self.V[pre], self.E[post]
            mult = float(p.proj_mult[k])
            am = "" if mult == 1.0 else f"{mult!r}*"
            opt = p.opt_param[k]
            scale = 1.0 / B if p.proj_mean[k] else 1.0
            if p.w_off[k] >= 0:
                Wg = b2.NeuronGroup(n_post * n_pre, f"w : 1\ng : 1\nm : 1\nv : 1\n{opt_t_decl}",
                                    clock=self.clock, name=f"{pfx}W_{kn[k]}")
                if not self.gated:
                    Wg.lrn = b2.linked_var(ctl, "lrn", index=zeros(n_post * n_pre))
                self.Wg[k] = Wg
                objs.append(Wg)
                # the weight as read: per-read noise draws zf (prediction) and zb (feedback) every time step
                wf, wb = ("(wl*(1 + sm*zf1) + sa*zf2)", "(wl*(1 + sm*zb1) + sa*zb2)") if self.noisy else ("wl", "wl")
                S = self._syn(Vpre, Epost, "\n".join([
                    "wl : 1 (linked)", "widx : integer (constant)",
                    f"mu_{kn[k]}_post = {am}{wf}*phx_pre : 1 (summed)",
                    f"fb_{kn[k]}_pre = {am}{wb}*eps_post : 1 (summed)",
                    *(["zf1 : 1", "zf2 : 1", "zb1 : 1", "zb2 : 1", "sm : 1 (shared)", "sa : 1 (shared)"]
                      if self.noisy else [])]), name=f"{pfx}S_{kn[k]}")
                C.batch_connect_all(S, n_pre, n_post)
                C.set_expr(S, "widx", C.weight_index_expr(n_pre, n_post))
                S.wl = b2.linked_var(Wg, "w", index="widx")
                if self.noisy:   # before every summed variable of the time step (they are at orders 0-1)
                    S.run_regularly("zf1 = randn()\nzf2 = randn()\nzb1 = randn()\nzb2 = randn()",
                                    when="before_groups", order=-1, name=f"{pfx}Z_{kn[k]}")
                    self._noisy_syn.append(S)
                summed_stage.append((S, {f"mu_{kn[k]}_post": 0, f"fb_{kn[k]}_pre": 1}))
                objs.append(S)
                if p.proj_plastic[k] or self.gated:   # gated: every direction is read out, plastic or not
                    code, a = int(p.pop_phi[pre]), float(p.pop_phi_param[pre])
                    H = self._syn(Epost, Wg, "\n".join([
                        "xl : 1 (linked)", "pidx : integer (constant)",
                        f"g_post = eps_pre*{C.phi_expr(code, a, 'xl')} : 1 (summed)"]), name=f"{pfx}H_{kn[k]}")
                    H.connect(j=f"q for q in range((i % {n_post}) * {n_pre}, (i % {n_post} + 1) * {n_pre})", namespace={})
                    C.set_expr(H, "pidx", f"(i // {n_post}) * {n_pre} + (j % {n_pre})")
                    H.xl = b2.linked_var(Vpre, "xh" if self.frozen else "x", index="pidx")
                    summed_stage.append((H, {"g_post": 1}))
                    objs.append(H)
                    rr = Wg.run_regularly(
                        _optimizer_code(p.opt_kind[k], float(p.proj_lr[k]), opt[0], opt[1], opt[2], opt[3], opt[4],
                                        mult * scale, "g", "w", self.every_step, self.gated),
                        when="after_groups", name=f"{pfx}opt_{kn[k]}")
                    self._learn_objs += [H, rr]
            if p.b_off[k] >= 0:
                Bg = self.Bg[k]
                if p.proj_learn_bias[k] or self.gated:
                    Hb = self._syn(Epost, Bg, "gb_post = eps_pre : 1 (summed)", name=f"{pfx}Hb_{kn[k]}")
                    Hb.connect(j=f"i % {n_post}", namespace={})
                    summed_stage.append((Hb, {"gb_post": 1}))
                    objs.append(Hb)
                    rr = Bg.run_regularly(
                        _optimizer_code(p.opt_kind[k], float(p.proj_lr[k]), opt[0], opt[1], opt[2], opt[3], opt[4],
                                        scale, "gb", "bb", self.every_step, self.gated),
                        when="after_groups", name=f"{pfx}optb_{kn[k]}")
                    self._learn_objs += [Hb, rr]
            if p.proj_skip[k]:
                Ss = self._syn(Vpre, Epost, f"msk_{kn[k]}_post = {'xh' if self.frozen else 'x'}_pre : 1 (summed)\n"
                                              f"sfb_{kn[k]}_pre = eps_post : 1 (summed)", name=f"{pfx}skip_{kn[k]}")
                Ss.connect(j="i", namespace={})
                summed_stage.append((Ss, {f"msk_{kn[k]}_post": 0, f"sfb_{kn[k]}_pre": 1}))
                objs.append(Ss)

        # the two stages of summed variables, before any state update
        C.stage_summed(summed_stage)

        # ---- monitors
        self.mon_F = b2.StateMonitor(ctl, list(self.F_names.values()) or ["steps"], record=[0],
                                     when="before_groups", order=3, name=pfx + "monF")
        objs.append(self.mon_F)
        self.mon_x, self.mon_e = {}, {}
        if probe_item is not None and probe_item < B:
            for i in range(npop):
                n = int(p.pop_size[i])
                idx = list(range(probe_item * n, (probe_item + 1) * n))
                self.mon_x[i] = b2.StateMonitor(self.V[i], "x", record=idx, when="before_groups", order=3,
                                                name=f"{pfx}monx_{pn[i]}")
                objs.append(self.mon_x[i])
                if i in self.E:
                    self.mon_e[i] = b2.StateMonitor(self.E[i], ["eps", "mu"], record=idx, when="before_groups",
                                                    order=3, name=f"{pfx}mone_{pn[i]}")
                    objs.append(self.mon_e[i])
        self.net = b2.Network(*objs, name=pfx + "net")
        self._built_standalone = False

    # ------------------------------------------------------------------ parameters in and out
    def _inputs(self, x0, es0, t, spec: RunSpec, W, b, mW, vW, mb, vb, opt_t, t_start, prec=None, factor=1.0,
                sweep=None):
        """``{variable view: value}`` of everything a run needs (for run_args or direct setting).

        ``prec`` (per-unit error precisions, None: the plan's) and ``factor`` (multiplies the update
        direction) are inputs of an ``every_step`` or sweep (``fpa``/``zil``) network only.  ``sweep`` (sweep
        networks): ``{"upd_step": {k: time step of projection k's update, -1: none}, "learn": {k: bool},
        "xh": (B, n_units) frozen values, "gain": (n_units,) step gains}`` (the last two: ``fpa`` only).
        """
        p, B = self.plan, self.B
        if (prec is not None or factor != 1.0) and not (self.every_step or self.gated):
            raise ValueError("RateNetwork: prec and factor are inputs of an every_step or sweep network only")
        if self.gated and sweep is None:
            raise ValueError(f"RateNetwork: a {self.schedule!r} network needs the sweep inputs")
        prec = p.precision if prec is None else np.asarray(prec, dtype=float)
        vals = []
        for i in range(p.n_pops):
            n, o = int(p.pop_size[i]), int(p.pop_off[i])
            V = self.V[i]
            role = p.pop_role[i]
            clamped = role == ROLE_INPUT or (role == ROLE_TARGET and spec.mode == MODE_CLAMP)
            vals += [(V.x, x0[:, o:o + n].ravel()), (V.free, np.full(B * n, 0.0 if clamped else 1.0)),
                     (V.nud, 1.0 if (role == ROLE_TARGET and spec.mode == MODE_NUDGE) else 0.0),
                     (V.beta, float(spec.beta))]
            tg = np.zeros(B * n)
            if role == ROLE_TARGET and t is not None:
                tg = np.asarray(t, dtype=float).ravel()
            vals.append((V.tgt, tg))
            if self.dyn_err[i]:
                vals.append((self.E[i].eps, es0[:, o:o + n].ravel()))
            if (self.every_step or self.gated) and i in self.E:
                vals.append((self.E[i].prec, np.tile(prec[o:o + n], B)))
            if self.frozen:
                vals += [(V.xh, sweep["xh"][:, o:o + n].ravel()), (V.gain, np.tile(sweep["gain"][o:o + n], B))]
        for k, Wg in self.Wg.items():
            o = int(p.w_off[k])
            n = len(Wg)
            vals += [(Wg.w, W[o:o + n]), (Wg.m, mW[o:o + n]), (Wg.v, vW[o:o + n]),
                     (Wg.opt_t, float(max(opt_t[k], 1)))]
            if self.every_step or self.gated:
                vals.append((Wg.gfac, float(factor)))
            if self.gated:
                vals += self._gate_inputs(Wg, k, sweep, spec, t_start, bool(p.proj_plastic[k]))
        for k, Bg in self.Bg.items():
            o = int(p.b_off[k])
            n = len(Bg)
            vals += [(Bg.bb, b[o:o + n]), (Bg.m, mb[o:o + n]), (Bg.v, vb[o:o + n]), (Bg.opt_t, float(max(opt_t[k], 1)))]
            if self.every_step or self.gated:
                vals.append((Bg.gfac, float(factor)))
            if self.gated:
                vals += self._gate_inputs(Bg, k, sweep, spec, t_start, bool(p.proj_learn_bias[k]))
        c = self.ctl
        vals += [(c.running, 1.0), (c.go, 1.0), (c.dtf, 1.0), (c.Fprev, 1e308 if self.dtype == np.float64 else 3e38), (c.steps, 0.0), (c.lrn, 0.0),
                 (c.learn_on, 1.0 if spec.learn else 0.0),
                 (c.t_stop, float(t_start + (self.sub * spec.n_steps - 0.5) * spec.dt / self.sub
                                  * float(TIME_UNIT)) * b2.second), (c.ph, 1.0),
                 (c.tolv, float(spec.tol)), (c.decay, float(spec.dt_decay))]
        return vals

    def _gate_inputs(self, G, k, sweep, spec, t_start, plastic):
        """Update time and switch of projection ``k``'s parameter group ``G`` in a sweep network (``plastic``:
        whether that parameter learns at all)."""
        step = int(sweep["upd_step"].get(k, -1))
        t_upd = t_start + step * spec.dt * float(TIME_UNIT) if step >= 0 else -1.0
        on = 1.0 if (spec.learn and plastic and step >= 0 and k in sweep["learn"]) else 0.0
        return [(G.t_upd, t_upd * b2.second), (G.learn_k, on), (G.gk, np.zeros(len(G)))]

    def build_standalone(self, n_steps):
        """Generate and compile the cpp_standalone project for runs of ``n_steps`` steps (once)."""
        self.net.run((n_steps + 1) * self.dt * TIME_UNIT, namespace={})
        C.raise_if_stopped()
        b2.device.build(directory=self.standalone["directory"], compile=True, run=False, with_output=False)
        self._built_standalone = True
        self.n_steps_built = n_steps

    def run(self, x0, es0, t, spec: RunSpec, W, b, mW, vW, mb, vb, opt_t, seed=0, prec=None, factor=1.0,
            sweep=None, noise=(0.0, 0.0)):
        """Run ``spec.n_steps`` Euler steps from ``x0`` (B, n_units); returns a dict of results.

        ``prec``, ``factor`` and ``sweep``: see :meth:`_inputs` (``every_step`` and sweep networks).
        ``noise`` (a ``noisy`` network): ``(sigma_m^2, sigma_a^2)`` of the per-read noise; brian2's random
        numbers are seeded with ``seed``.
        """
        if self.standalone is not None:
            vals = self._inputs(x0, es0, t, spec, W, b, mW, vW, mb, vb, opt_t, 0.0, prec, factor, sweep)
            run_args = {}
            for view, v in vals:
                run_args[view] = v
            self.device.run(directory=self.standalone["directory"], with_output=False, run_args=run_args)
        else:
            t_start = float(self.net.t)
            for view, v in self._inputs(x0, es0, t, spec, W, b, mW, vW, mb, vb, opt_t, t_start, prec, factor,
                                        sweep):
                view[:] = v
            for S in self._tol_syn:
                for u in S.summed_updaters.values():
                    u.active = spec.tol > 0
            for obj in self._learn_objs:   # a sweep network always computes the directions (learn_k gates)
                obj.active = bool(spec.learn) or self.gated
                for u in getattr(obj, "summed_updaters", {}).values():
                    u.active = bool(spec.learn) or self.gated
            for mon in [self.mon_F, *self.mon_x.values(), *self.mon_e.values()]:
                mon.resize(0)
            for S in self._noisy_syn:
                S.sm = float(np.sqrt(noise[0]))
                S.sa = float(np.sqrt(noise[1]))
            with C.isolated_seed(seed), C.float_dtype(self.dtype):
                self.net.run((self.sub * spec.n_steps + 1) * self.dt / self.sub * TIME_UNIT, namespace={})
                C.raise_if_stopped()
        return self._collect(spec)

    def _collect(self, spec):
        """Results of the last run; every array is copied out of brian2 (see :func:`_common.copy_out`)."""
        p, B = self.plan, self.B
        N = p.n_units
        x = np.zeros((B, N), dtype=self.dtype)
        eps = np.zeros((B, N), dtype=self.dtype)
        mu = np.zeros((B, N), dtype=self.dtype)
        for i in range(p.n_pops):
            n, o = int(p.pop_size[i]), int(p.pop_off[i])
            x[:, o:o + n] = C.copy_out(self.V[i].x[:]).reshape(B, n)
            if i in self.E:
                eps[:, o:o + n] = C.copy_out(self.E[i].eps[:]).reshape(B, n)
                mu[:, o:o + n] = C.copy_out(self.E[i].mu[:]).reshape(B, n)
        n_rows = spec.n_steps + 1
        sub = self.sub   # Heun: the records of the predictor time steps (the states x_0 ... x_n)
        energy = np.zeros((n_rows, p.n_pops))
        for i, name in self.F_names.items():
            energy[:, i] = C.copy_out(getattr(self.mon_F, name))[0, ::sub][:n_rows]
        out = {"x": x, "eps": eps, "mu": mu, "energy": energy, "steps": int(round(float(C.copy_out(self.ctl.steps[:])[0])))}
        if self.mon_x:
            rx = np.zeros((n_rows, N), dtype=self.dtype)
            re_ = np.zeros((n_rows, N), dtype=self.dtype)
            rm = np.zeros((n_rows, N), dtype=self.dtype)
            for i, mon in self.mon_x.items():
                n, o = int(p.pop_size[i]), int(p.pop_off[i])
                rx[:, o:o + n] = C.copy_out(mon.x).T[::sub][:n_rows]
                if i in self.mon_e:
                    re_[:, o:o + n] = C.copy_out(self.mon_e[i].eps).T[::sub][:n_rows]
                    rm[:, o:o + n] = C.copy_out(self.mon_e[i].mu).T[::sub][:n_rows]
            out.update(rec_x=rx, rec_eps=re_, rec_mu=rm)
        out["W"] = {k: C.copy_out(Wg.w[:]) for k, Wg in self.Wg.items()}
        out["mW"] = {k: C.copy_out(Wg.m[:]) for k, Wg in self.Wg.items()}
        out["vW"] = {k: C.copy_out(Wg.v[:]) for k, Wg in self.Wg.items()}
        out["b"] = {k: C.copy_out(Bg.bb[:]) for k, Bg in self.Bg.items()}
        out["mb"] = {k: C.copy_out(Bg.m[:]) for k, Bg in self.Bg.items()}
        out["vb"] = {k: C.copy_out(Bg.v[:]) for k, Bg in self.Bg.items()}
        if self.gated:   # the Hebbian sums of each projection's update step
            out["gW"] = {k: C.copy_out(Wg.gk[:]) for k, Wg in self.Wg.items()}
            out["gb"] = {k: C.copy_out(Bg.gk[:]) for k, Bg in self.Bg.items()}
        return out
