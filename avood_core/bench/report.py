"""The markdown rendering of an ``avood bench`` record (``bench.md``)."""

from __future__ import annotations

from typing import Any

from avood_core.bench.meter import STAGES
from avood_core.eval.render import md_table


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, list):
        return "/".join(_fmt(x, 2) for x in v)
    if isinstance(v, float):
        return f"{v:,.0f}" if v >= 1000 else f"{v:.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


# The columns of a stage row, in table order, and their headers.
HEADERS = {"wall_s": "wall s", "cpu_s": "CPU s", "steps": "steps", "steps_per_s": "steps/s", "samples": "samples",
           "samples_per_s": "samples/s", "peak_rss_mb": "peak RSS MB", "epochs_factor": "epochs factor",
           "full_wall_s": "full-epochs wall s (extrap.)", "full_cpu_s": "full-epochs CPU s (extrap.)", "load_avg": "load avg (start/end)",
           "precision": "precision (training)"}


def stage_table(rows: dict[str, dict[str, Any]]) -> list[str]:
    body = [[f"{name} ({rows[name]['process']})" if rows[name].get("process") else name,
             *(_fmt(rows[name].get(c), 3 if c == "epochs_factor" else 1) for c in HEADERS)]
            for name in STAGES if name in rows]
    return md_table(["stage", *HEADERS.values()], body).splitlines()


def isa_line(m: dict[str, Any]) -> str:
    """The CPU's ISA (AVX2 / AVX-512 / AVX512-BF16 / AMX) and torch's kernel level, one sentence."""
    isa = m.get("isa")
    if not isa:
        return "ISA: not recorded."
    yes = {True: "yes", False: "no", None: "unknown"}
    text = (f"ISA ({isa.get('flags_source') or 'no flag source'}): AVX2 {yes[isa['avx2']]}, AVX-512 {yes[isa['avx512']]}, "
            f"AVX512-BF16 {yes[isa['avx512_bf16']]}, AMX {yes[isa['amx']]}; torch CPU capability "
            f"{isa.get('torch_capability') or 'unknown'}; native bf16 on the CPU: {yes[isa.get('native_bf16_cpu')]}")
    if "native_bf16_cuda" in isa:
        text += f", on CUDA: {yes[isa['native_bf16_cuda']]}"
    return text + " (precision auto picks bf16 where native)."


def idle_lines(rec: dict[str, Any]) -> list[str]:
    """The schedule's idle core-seconds (stage 2's fit; stage 1's too when it ran)."""
    fits = (("Stage 1 fit", (rec.get("protocol") or {}).get("stage1", {}).get("idle")), ("Fit", rec.get("idle")))
    return [f"{label}: {_fmt(idle['idle_core_s'])} idle core-seconds of {idle['cores']} cores x "
            f"{_fmt(idle['fit_wall_s'])} s ({100 * (idle['idle_share'] or 0):.0f} %; {idle['method']}, "
            f"CPU {_fmt(idle['cpu_s'])} s; other programs' use counts as idle); the main process waited "
            f"{_fmt(idle['main_wait_s'])} s with no stage of its own." for label, idle in fits if idle]


def assist_lines(rec: dict[str, Any]) -> list[str]:
    """When and how long the main process assisted a worker's fit (jobs = 2, avood_core.train.strategy)."""
    return [f"The main process assisted the {kind} worker from {_fmt(a['start_s'])} s into the fit for "
            f"{_fmt(a['wall_s'])} s, computing the negative half of {a['steps']} steps (same bits as one process)."
            + (" Its full-epochs figure has the worker step alone at its measured rate until the main process's "
               "full-epochs path ends and at the assisted rate after it."
               if row.get("epochs_factor", 1.0) != 1.0 else "")
            for kind, row in rec.get("stages", {}).items() if isinstance(row, dict) and (a := row.get("assist"))]


def breakdown_lines(b: dict[str, Any] | None) -> list[str]:
    """The step breakdown (avood_core.bench.breakdown): a table of categories and the top ops."""
    if not b:
        return []
    if "skipped" in b:
        return [f"Step breakdown: none ({b['skipped']}).", ""]
    cats = b["categories"]
    body = [[name, f"{100 * c['share']:.1f}", f"{c['ms_per_step']:.2f}", f"{c['calls_per_step']:g}"]
            for name, c in cats.items()]
    timed = b.get("steps_per_s_timed")
    return [f"Step breakdown of {b['stage']} ({b['component']}, {b['precision'] or 'precision not recorded'}, {b['threads']} thread(s)): "
            f"torch.profiler over {b['steps']} steps after a warm-up, {b['time']} per op by category. "
            f"{b['wall_ms_per_step']:.2f} ms per step under the profiler"
            + (f" ({1000 / timed:.2f} ms in the timed run)" if timed else "")
            + f"; the ops account for {100 * (b['ops_share_of_wall'] or 0):.0f} % of it (the rest: Python and "
            "profiler overhead).", "",
            *md_table(["category", "share %", "ms/step", "calls/step"], body).splitlines(), "",
            "Top ops: " + ", ".join(f"{o['op']} {100 * o['share']:.1f} % ({o['calls_per_step']:g}/step)"
                                    for o in b["top_ops"]) + ".", ""]


def render_markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = ["# avood bench", "",
             f"Machine: {m['cpu']}, {m['cpus_usable']} usable cores ({', '.join(m['cpu_flags']) or 'no AVX flags read'}), "
             f"{m['memory_gb']} GB; torch {m['torch']} with {m['torch_threads']} threads; device {m['device']}"
             + (f" ({m['cuda_device']})" if m.get("cuda_device") else "") + f"; git {m['git']}.",
             isa_line(m),
             f"Load average (1/5/15 min) at start: {_fmt(m['load_avg_start'])}"
             + (f"; at end: {_fmt(m['load_avg_end'])}" if m.get("load_avg_end") else "") + ".",
             f"Created {result['created']}; options: epochs scale {result['options']['epochs_scale']}, "
             f"stages {result['options']['stages']}, data scale {result['options']['data_scale']}, "
             f"precision {result['options']['precision'] or 'as configured'}.", ""]
    for ds, rec in result["datasets"].items():
        t = rec["task"]
        lines += [f"## {ds}", "",
                  f"{rec['stages_run']}; config: {rec['config_source']}; tree {rec['tree']['tree']} "
                  f"({rec['tree']['splits']} splits); train {(t.get('train') or {}).get('samples')}, "
                  f"test {(t.get('test') or {}).get('samples')} clips; "
                  f"syn_num {rec['syn_num']}.", ""]
        if "protocol" in rec:
            lines += ["Stage 1 (fit on training, select on val):", "",
                      *stage_table(rec["protocol"]["stage1"]["stages"]),
                      "", "Stage 2 (fit on train_val, report on test):", ""]
        lines += stage_table(rec["stages"])
        mt = rec["metrics"]
        lines += ["",
                  f"Total wall {_fmt(rec['total_wall_s'])} s, CPU {_fmt(rec['total_cpu_s'])} s; full epochs (extrapolated where "
                  f"scaled) {_fmt(rec['full_epochs_total_wall_s'])} s = {rec['full_epochs_total_wall_s'] / 60:.1f} min "
                  f"(CPU {rec['full_epochs_total_cpu_s'] / 60:.1f} min); "
                  f"peak RSS {_fmt(rec['peak_rss_mb'])} MB (the largest stage peak; {rec['rss_method']})"
                  + (f" + {_fmt(rec['peak_rss_workers_mb'])} MB in worker processes" if rec.get("peak_rss_workers_mb") else "")
                  + ".",
                  *([f"jobs = {rec['jobs']}: the stages marked 'worker' ran in a worker process beside the others; the "
                     f"fit took {_fmt(rec['fit_wall_s'])} s of wall time in all, and the full-epochs total counts the "
                     "longer of the two processes' paths."] if rec.get("jobs", 1) > 1 else []),
                  *idle_lines(rec),
                  *assist_lines(rec),
                  f"Test metrics: S {mt['S']:.2f}, U {mt['U']:.2f}, HM {mt['HM']:.2f}, ZSL {mt['ZSL']:.2f}, gate AUROC {mt['AUROC']:.2f}.",
                  ""]
        lines += breakdown_lines(rec.get("step_breakdown"))
        if rec.get("profile_top_ops"):
            lines += ["Profile (torch.profiler, share of each stage's self CPU time; top 6 ops):", "",
                      *(f"- {stage}: " + ", ".join(f"{o['op']} {o['self_cpu_pct']}%" for o in ops[:6])
                        for stage, ops in rec["profile_top_ops"].items()), ""]
    return "\n".join(lines)
