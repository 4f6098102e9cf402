"""The run report page: one self-contained HTML file (inline CSS and SVG, no script, no external
resource), so it opens offline, from a workspace volume, or attached to a mail.

Each section pairs a chart (:mod:`lakedoc.report.svg`) with a table of the same numbers as text.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape

from lakedoc.report import svg
from lakedoc.report.data import ReportData

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;margin:24px;
color:#222;background:#fff;max-width:1400px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555;font-size:13px}.note{color:#8a5a00;font-size:13px}
.row{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
.row figure{margin:0}.row .numbers{flex:1;min-width:280px}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
.kpis{display:flex;gap:16px;flex-wrap:wrap;margin:12px 0}.kpi{border:1px solid #ddd;border-radius:6px;padding:8px 14px}
.kpi b{display:block;font-size:20px}.kpi span{color:#555;font-size:12px}
.status-failed,.status-abandoned{color:#b00020;font-weight:600}
"""


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]], numeric: Sequence[int] = ()) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for r in rows:
        cells = []
        for i, v in enumerate(r):
            cls = ' class="n"' if i in numeric else ""
            cells.append(f"<td{cls}>{escape(_str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not rows:
        body.append(f'<tr><td colspan="{len(headers)}">none</td></tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _str(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 100 else f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(v)


def _rate(v: float | None) -> str:
    return "" if v is None else f"{v:,.2f}"


def _section(sid: str, title: str, chart: str, numbers: str, intro: str = "") -> str:
    intro_html = f'<p class="meta">{escape(intro)}</p>' if intro else ""
    return (f'<section id="{sid}"><h2>{escape(title)}</h2>{intro_html}<div class="row">'
            f'<figure>{chart}</figure><div class="numbers">{numbers}</div></div></section>')


def _timeline(d: ReportData) -> str:
    starts = [t.started_at for t in d.tasks if t.started_at]
    t0 = min(starts) if starts else None
    items = []
    rows = []
    for t in d.tasks:
        start = (t.started_at - t0).total_seconds() if t.started_at and t0 else 0.0
        dur = t.duration_s if t.duration_s is not None else 0.0
        items.append((t.task, start, dur, t.status))
        rows.append([t.task, t.status, f"{start:.1f}", f"{dur:.1f}", t.rows_in, t.rows_out, (t.error or "")[:200]])
    chart = svg.timeline("chart-timeline", "Tasks of the run on a timeline (seconds from the run's start)", items)
    numbers = _table(["task", "status", "start +s", "seconds", "rows in", "rows out", "error"], rows, (2, 3, 4, 5))
    span = max([s + du for _, s, du, _ in items] + [0.0])
    return _section("tasks", "Tasks", chart, numbers, f"{len(d.tasks)} task(s); {span:.1f} s from the first "
                                                      f"start to the last end.")


def _files(d: ReportData) -> str:
    formats = sorted({f for f, _ in d.files_by_format_status})
    statuses = sorted({s for _, s in d.files_by_format_status}, key=lambda s: (s != "ok", s))
    chart = svg.stacked_bars("chart-files", "Files by format and status", formats, statuses,
                             d.files_by_format_status)
    rows = [[f, s, n] for (f, s), n in sorted(d.files_by_format_status.items())]
    numbers = _table(["format", "status", "files"], rows, (2,))
    ok = sum(n for (_, s), n in d.files_by_format_status.items() if s == "ok")
    return _section("files", "Files by format and status", chart, numbers,
                    f"{d.total_files} file(s) and attachments in the documents table (current state, deleted "
                    f"files excluded), {ok} ok.")


def _failed(d: ReportData) -> str:
    rows = [[f.name, f.format, f.stage, f.status, f.error] for f in d.failed_files]
    more = (f" Showing {len(d.failed_files)} of {d.failed_total}." if d.failed_total > len(d.failed_files) else "")
    return (f'<section id="failed"><h2>Failed files ({d.failed_total})</h2>'
            f'<p class="meta">Status and reason only; names are the redacted names of the silver table (a file '
            f'that never reached it is named by its document id).{escape(more)}</p>'
            + _table(["file (redacted)", "format", "stage", "status", "reason"], rows) + "</section>")


def _pii(d: ReportData) -> str:
    items = list(d.pii_by_entity.items())
    chart = svg.bar_chart("chart-pii", "PII findings by entity type", items, color=svg.PALETTE[6])
    numbers = _table(["entity type", "findings"], [[k, v] for k, v in items], (1,))
    total = sum(d.pii_by_entity.values())
    return _section("pii", "PII findings by entity type", chart, numbers,
                    f"{total} finding(s) in {d.pii_documents} document(s); counts only, never values.")


def _labels(d: ReportData) -> str:
    methods = list(d.labels_by_method)
    labels = sorted({lab for m in d.labels_by_method.values() for lab in m})
    values = {(lab, m): float(d.labels_by_method[m].get(lab, 0)) for lab in labels for m in methods}
    vmax = max(list(values.values()) + [1.0])
    chart = svg.grouped_bars("chart-labels", "Documents per predicted label and method", labels, methods, values,
                             max_value=vmax, value_fmt=lambda v: f"{v:,.0f}", skip_zero=True)
    rows = [[m, lab, n] for m in methods for lab, n in d.labels_by_method[m].items()]
    docs = ", ".join(f"{m}: {n}" for m, n in d.documents_by_method.items())
    numbers = _table(["method", "label", "documents"], rows, (2,))
    return _section("labels", "Label distribution per method", chart, numbers,
                    f"Documents scored per method: {docs or 'none'}.")


def _evaluations(d: ReportData) -> str:
    if not d.evaluations:
        return ('<section id="evaluation"><h2>Evaluation per method</h2>'
                '<p class="note">No evaluations recorded.</p></section>')
    methods = [e.method for e in d.evaluations]
    values: dict[tuple[str, str], float | None] = {}
    for e in d.evaluations:
        values[(e.method, "micro F1")] = e.micro_f1
        values[(e.method, "macro F1")] = e.macro_f1
    chart = svg.grouped_bars("chart-eval", "Micro and macro F1 per method", methods, ["micro F1", "macro F1"], values)
    numbers = _table(["method", "micro F1", "macro F1", "test documents"],
                     [[e.method, e.micro_f1, e.macro_f1, e.n_test] for e in d.evaluations], (1, 2, 3))
    out = _section("evaluation", "Evaluation per method", chart, numbers,
                   "On the held-out test split of the labelled data (the run's evaluations; the latest for a "
                   "method the run did not evaluate).")
    labels = sorted({lab for e in d.evaluations for lab in e.per_label_f1})
    if labels:
        cells = {(e.method, lab): e.per_label_f1.get(lab) for e in d.evaluations for lab in labels}
        heat = svg.heatmap("chart-f1-heatmap", "F1 per label and method", methods, labels, cells)
        rows = [[e.method, lab, e.per_label_f1[lab]] for e in d.evaluations for lab in labels if lab in e.per_label_f1]
        out += _section("per-label", "F1 per label (heat map)", heat, _table(["method", "label", "F1"], rows, (2,)))
    return out


def _throughput(d: ReportData) -> str:
    timed = [t for t in d.tasks if t.duration_s]
    items = [(t.task, t.rows_out_per_s or 0.0) for t in timed]
    chart = svg.bar_chart("chart-throughput", "Rows written per second, per task", items, color=svg.PALETTE[4],
                          value_fmt=lambda v: f"{v:,.1f}")
    rows = [[t.task, t.rows_in, t.rows_out, f"{t.duration_s or 0:.1f}", _rate(t.rows_in_per_s), _rate(t.rows_out_per_s)]
            for t in timed]
    numbers = _table(["task", "rows in", "rows out", "seconds", "rows in/s", "rows out/s"], rows, (1, 2, 3, 4, 5))
    return _section("throughput", "Throughput per task", chart, numbers,
                    "Rows read and written by each task divided by its wall-clock seconds.")


def _retrieval(d: ReportData) -> str:
    if not d.retrieval:
        return ('<section id="retrieval"><h2>Retrieval quality</h2>'
                '<p class="note">No retrieval metrics: lakedoc evaluate-search writes them.</p></section>')
    modes = list(d.retrieval)
    metrics = sorted({k for v in d.retrieval.values() for k in v})
    shown = [m for m in metrics if m.startswith(("recall", "mrr", "ndcg"))]  # the 0..1 ratios
    values = {(mode, m): d.retrieval[mode].get(m) for mode in modes for m in shown}
    chart = svg.grouped_bars("chart-retrieval", "Retrieval quality per search mode", modes, shown, values)
    rows = [[mode, m, d.retrieval[mode][m]] for mode in modes for m in metrics if m in d.retrieval[mode]]
    info = d.retrieval_info
    intro = "From lakedoc evaluate-search"
    if info is not None:
        intro += f", {_str(info.evaluated_at)}" if info.evaluated_at else ", undated"
        details = [f"{info.queries:,} queries" if info.queries is not None else "",
                   f"query set {info.queries_file}" if info.queries_file else "",
                   f"index backend {info.index_backend}" if info.index_backend else ""]
        if any(details):
            intro += " (" + "; ".join(x for x in details if x) + ")"
    return _section("retrieval", "Retrieval quality", chart, _table(["mode", "metric", "value"], rows, (2,)),
                    intro + ". The latest evaluation of the index, not necessarily of this run.")


def render(d: ReportData) -> str:
    """The whole page for ``d``."""
    failed_tasks = [t for t in d.tasks if t.status not in ("succeeded", "running")]
    kpis = [
        (str(len(d.tasks)), "tasks"), (str(len(failed_tasks)), "tasks not succeeded"),
        (f"{d.total_files:,}", "files and attachments"), (f"{d.failed_total:,}", "failed files"),
        (f"{sum(d.pii_by_entity.values()):,}", "PII findings"),
        (str(len(d.labels_by_method)), "classification methods"),
    ]
    kpi_html = "".join(f'<div class="kpi"><b>{escape(v)}</b><span>{escape(k)}</span></div>' for v, k in kpis)
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in d.notes)
    versions = ", ".join(f"{t} v{v}" for t, v in d.table_versions.items() if v is not None)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>lakedoc run {escape(d.run_id or '')}</title><style>{CSS}</style></head><body>",
        f"<h1>lakedoc run report</h1><p class=\"meta\">Run <b>{escape(d.run_id or '')}</b> · "
        f"{escape(d.source)} · generated {escape(_str(d.generated_at))}</p>",
        f'<p class="meta">Table versions read: {escape(versions)}</p>' if versions else "",
        f'<div class="kpis">{kpi_html}</div>', notes,
        _timeline(d), _files(d), _failed(d), _pii(d), _labels(d), _evaluations(d), _retrieval(d), _throughput(d),
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p)
