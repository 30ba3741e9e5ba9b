"""Cost reports: operations, energy per sample, time to settle and the PC/BP ratio on every target.

:func:`cost_report` builds a JSON-able dict from the operation counts of a PC run and of the BP baseline on
the same network; :func:`write_report` writes it as ``<stem>.json`` and a readable ``<stem>.md`` (tables of
counts per sample, energy and time per target, and the parameter table of every target with its sources).
"""
from __future__ import annotations

from pathlib import Path

from ..io import write_json_atomic
from .cost import OpCounts, energy, get_target, latency, targets

__all__ = ["cost_report", "write_report"]


def cost_report(pc: OpCounts, bp: OpCounts | None = None, target_names=None, bits: float | None = None,
                extra: dict | None = None, *, weight_bits: float | None = None,
                activity_bits: float | None = None) -> dict:
    """Per-sample operations, energy and latency of ``pc`` (and ``bp``) on each target.

    Parameters
    ----------
    pc, bp : OpCounts
        Counts of the PC run and of the BP baseline (same network and samples); ``bp`` is optional.
    target_names : sequence of str, optional
        Targets to evaluate (default: all known, see :func:`neurosim.hardware.cost.targets`).
    bits, weight_bits, activity_bits : float, optional
        Operand widths for targets whose energies scale with precision (``bits`` sets both).
    extra : dict, optional
        Anything else to record (network, settings).
    """
    names = list(target_names) if target_names is not None else sorted(targets())
    rep = {"operations_per_sample": {"pc": pc.per_sample()}, "targets": {}, "bits": bits,
           "weight_bits": weight_bits, "activity_bits": activity_bits}
    widths = dict(bits=bits, weight_bits=weight_bits, activity_bits=activity_bits)
    if bp is not None:
        rep["operations_per_sample"]["bp"] = bp.per_sample()
    for name in names:
        t = get_target(name)
        row = {"description": t.description, "kind": t.kind}
        e_pc, l_pc = energy(pc, t, **widths), latency(pc, t)
        row["pc_energy_per_sample_J"] = e_pc["per_sample_J"]
        row["pc_energy_breakdown_J"] = {k: v / pc.samples for k, v in e_pc["breakdown_J"].items()}
        row["pc_time_to_settle_s"] = l_pc["settle_s"]
        row["pc_time_per_sample_s"] = l_pc["total_s"]
        if bp is not None:
            e_bp, l_bp = energy(bp, t, **widths), latency(bp, t)
            row["bp_energy_per_sample_J"] = e_bp["per_sample_J"]
            row["bp_time_per_sample_s"] = l_bp["total_s"]
            row["bp_forward_backward_s"] = l_bp["settle_s"]
            row["pc_bp_energy_ratio"] = (e_pc["per_sample_J"] / e_bp["per_sample_J"]
                                         if e_bp["per_sample_J"] > 0 else float("inf"))
            row["pc_bp_time_ratio"] = (l_pc["total_s"] / l_bp["total_s"] if l_bp["total_s"] > 0 else float("inf"))
        row["parameters"] = [{"quantity": q, "value": v, "unit": u, "source": s, "evidence": ev}
                             for q, v, u, s, ev in t.table()]
        row["notes"] = _notes(t, widths)
        rep["targets"][t.name] = row
    if bp is not None:
        rep["pc_bp_mac_ratio"] = pc.per_sample()["macs"] / bp.per_sample()["macs"]
    if extra:
        rep["run"] = dict(extra)
    return rep


def _notes(t, widths) -> list:
    """What a reader of a target's row must know to read it: a latency that does not grow with the network, and
    weights wider than the target stores."""
    notes = []
    lat = t.latency_s
    if lat.get("timestep", 0.0) > 0 and not any(v > 0 for k, v in lat.items() if k not in ("timestep", "weight_write")):
        ev = (t.sources.get("latency.timestep") or ("", ""))[1]
        notes.append(f"time = relaxation steps x latency.timestep ({lat['timestep']:.3g} s per step, "
                     f"{ev or 'see its source'}): all cores are taken to work in parallel, so it does not grow with "
                     "the network; neurosim.hardware.map_circuit charges the mapped cores' serial time instead")
    wmax = (t.resources or {}).get("weight_bits_max")
    wb = widths.get("weight_bits") if widths.get("weight_bits") is not None else widths.get("bits")
    if wmax is not None and wb is not None and float(wb) > float(wmax):
        notes.append(f"does not fit: {t.name} stores weights of at most {wmax:g} bits; these energies price "
                     f"{float(wb):g}-bit weights as if it stored them")
    return notes


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def write_report(report: dict, out, stem: str = "cost_report") -> tuple:
    """Write ``report`` (from :func:`cost_report`) to ``out/<stem>.json`` and ``out/<stem>.md``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jpath = write_json_atomic(out / f"{stem}.json", report)
    ops = report["operations_per_sample"]
    algs = list(ops)
    lines = ["# Hardware cost report", ""]
    if report.get("run"):
        lines += ["## Run", ""] + [f"- {k}: {_fmt(v)}" for k, v in report["run"].items()] + [""]
    lines += ["## Operations per training sample", "", "| counter | " + " | ".join(algs) + " |",
              "|---|" + "---|" * len(algs)]
    for key in ops[algs[0]]:
        lines.append(f"| {key} | " + " | ".join(_fmt(ops[a][key]) for a in algs) + " |")
    if "pc_bp_mac_ratio" in report:
        lines += ["", f"PC/BP ratio of MACs per sample: {report['pc_bp_mac_ratio']:.4g}"]
    lines += ["", "## Energy and time per training sample", ""]
    has_bp = "bp" in ops
    head = "| target | PC energy (J) | PC time to settle (s) | PC time (s) |"
    sep = "|---|---|---|---|"
    if has_bp:
        head += " BP energy (J) | BP time (s) | PC/BP energy | PC/BP time |"
        sep += "---|---|---|---|"
    lines += [head, sep]
    for name, row in report["targets"].items():
        cells = [name, row["pc_energy_per_sample_J"], row["pc_time_to_settle_s"], row["pc_time_per_sample_s"]]
        if has_bp:
            cells += [row["bp_energy_per_sample_J"], row["bp_time_per_sample_s"], row["pc_bp_energy_ratio"],
                      row["pc_bp_time_ratio"]]
        lines.append("| " + " | ".join(_fmt(c) for c in cells) + " |")
    bits = {k: report.get(k) for k in ("bits", "weight_bits", "activity_bits") if report.get(k) is not None}
    lines += ["", "Operand widths: " + (", ".join(f"{k} {_fmt(v)}" for k, v in bits.items()) if bits else
                                        "each target's reference width (no bits given)")]
    notes = [(name, n) for name, row in report["targets"].items() for n in row.get("notes", [])]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {name}: {n}" for name, n in notes]
    lines += ["", "## Target parameters and their sources", ""]
    for name, row in report["targets"].items():
        lines += [f"### {name}", "", row["description"], "", "| quantity | value | unit | evidence | source |",
                  "|---|---|---|---|---|"]
        for prm in row["parameters"]:
            lines.append(f"| {prm['quantity']} | {_fmt(prm['value'])} | {prm['unit']} | {prm['evidence']} | "
                         f"{prm['source']} |")
        lines.append("")
    mpath = out / f"{stem}.md"
    tmp = out / f".{stem}.md.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(mpath)
    return jpath, mpath
