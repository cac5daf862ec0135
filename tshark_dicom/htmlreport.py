"""A single self-contained HTML page for a Report: the summary, the findings first, the
pictures (a timeline per capture, a ladder per association, throughput of large transfers),
then one section per table. For people who open a file rather than a notebook.

No script and nothing fetched: the pictures are inline SVG (`pictures`)."""

from __future__ import annotations

import html
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from . import charts, pictures
from .svg import esc, fmt_ms
from .tables import ReportLike, frame

MAX_ROWS = 2000  # per table; the Parquet/CSV files hold everything
MAX_LADDERS = 20  # ladders drawn, for the slowest associations
MAX_TIMELINES = 50  # captures with a timeline

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}
h1{font-size:1.4rem} h2{font-size:1.1rem;margin-top:2rem}
pre.summary{background:#f6f8fa;padding:.8rem;border-radius:6px;white-space:pre-wrap}
table{border-collapse:collapse;font-size:.8rem;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#f0f0f0;position:sticky;top:0}
tr.error td{background:#fde2e1} tr.warning td{background:#fff4ce} tr.note td{background:#eef6ff}
.bad{color:#b00020;font-weight:600} .muted{color:#777}
p.notice{font-size:.8rem;color:#555}
h3{font-size:1rem;margin:1.6rem 0 .3rem} h3 .muted{font-weight:normal;font-size:.85rem}
p.facts{font-size:.85rem;margin:.2rem 0}
div.picture{overflow-x:auto;margin:.4rem 0 1rem}
div.picture svg{max-width:100%;height:auto;display:block}
"""

_COLUMNS = {
    "associations": ["capture", "assoc_id", "calling_ae", "called_ae", "requestor_ip",
                     "requestor_port", "acceptor_ip", "acceptor_port", "result", "ending",
                     "reject_text", "abort_text", "requested_at", "setup_ms", "duration_ms",
                     "messages", "objects", "bytes_requestor", "bytes_acceptor", "gap_bytes"],
    "presentation_contexts": ["capture", "assoc_id", "context_id", "abstract_syntax_name",
                              "abstract_syntax", "result_text", "transfer_syntax_name"],
    "messages": ["capture", "assoc_id", "msg_index", "sender", "command", "message_id",
                 "responds_to", "sop_class_name", "sop_instance_uid", "status", "status_text",
                 "dataset_bytes", "duration_ms", "problem"],
    "objects": ["capture", "assoc_id", "msg_index", "command", "sop_class_name",
                "sop_instance_uid", "transfer_syntax_name", "dataset_bytes", "complete",
                "problem", "path"],
}

OPERATION_COLUMNS = ["capture", "assoc_id", "op_index", "command", "scu_ae", "scp_ae",
                     "status_hex", "total_ms", "gap_before_ms", "turnaround_ms", "bottleneck",
                     "bottleneck_detail"]


def _cell(value: object) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return '<span class="muted">-</span>'
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, list):
        return esc(" ".join(map(str, value)))
    return esc(value)  # control characters shown as \x00, as in the pictures


def _first(batches: Iterable[pd.DataFrame], n: int) -> tuple[pd.DataFrame, int]:
    """The first ``n`` rows of a table read a batch at a time, and how many there are."""
    kept: list[pd.DataFrame] = []
    total = have = 0
    for df in batches:
        total += len(df)
        if have < n:
            kept.append(df.head(n - have))
            have += len(kept[-1])
    return (pd.concat(kept, ignore_index=True) if kept else pd.DataFrame()), total


def _table(df: pd.DataFrame, columns: list[str] | None = None,
           row_class: str | None = None, total: int | None = None) -> str:
    cols = [c for c in (columns or list(df.columns)) if c in df.columns]
    if df.empty:
        return '<p class="muted">none</p>'
    total = len(df) if total is None else total
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    rows = []
    for rec in df.head(MAX_ROWS).to_dict("records"):
        cls = f' class="{html.escape(str(rec[row_class]))}"' if row_class else ""
        rows.append(f"<tr{cls}>" + "".join(f"<td>{_cell(rec[c])}</td>" for c in cols) + "</tr>")
    more = (f'<p class="muted">first {MAX_ROWS:,} of {total:,} rows; the table files hold '
            'all</p>' if total > MAX_ROWS else "")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"


def _anchor(captures: list[object], row: dict[str, object]) -> str:
    return f"assoc-{captures.index(row.get('capture'))}-{row.get('assoc_id')}"


def _ladder_section(row: dict[str, object], anchor: str, report: ReportLike,
                    findings: pd.DataFrame, throughput: pd.DataFrame, many: bool) -> str:
    ops, n_ops = _first(report.batches("operations", None, [
        ("capture", "==", row.get("capture")), ("assoc_id", "==", row.get("assoc_id"))]),
        pictures.MAX_LADDER_OPERATIONS)
    where = f" <span class='muted'>{esc(Path(str(row.get('capture'))).name)}</span>" if many \
        else ""
    parts = [f"<section class='association' id='{esc(anchor)}'>",
             f"<h3>#{esc(row.get('assoc_id'))} {esc(row.get('calling_ae'))} \u2192 "
             f"{esc(row.get('called_ae'))}{where}</h3>"]
    facts = [f"{esc(row.get('result'))}, {esc(row.get('ending'))}"]
    duration = row.get("duration_ms")
    if isinstance(duration, float) and not pd.isna(duration):
        facts.append(esc(fmt_ms(duration)))
    facts.append(f"{n_ops:,} operation{'' if n_ops == 1 else 's'}")
    detail = row.get("bottleneck_detail")
    if isinstance(detail, str):
        party, _, why = detail.partition(": ")  # the detail starts with its party
        facts.append(f"<b>{esc(party)}</b>: {esc(why)}")
    parts.append("<p class='facts'>" + " \u00b7 ".join(facts) + "</p>")
    if n_ops > pictures.MAX_LADDER_OPERATIONS:
        parts.append(f"<p class='notice'>The ladder shows the first "
                     f"{pictures.MAX_LADDER_OPERATIONS:,} of {n_ops:,} operations; the "
                     "operations table holds all.</p>")
    parts.append("<div class='picture'>"
                 + pictures.ladder_svg(row, ops if len(ops) else frame("operations", []),
                                       findings)
                 + "</div>")
    tp = pictures.for_association(throughput, row)
    if tp is not None and charts.transfer_bytes(tp) >= charts.LARGE_TRANSFER_BYTES:
        labels = {"requestor": str(row.get("calling_ae") or ""),
                  "acceptor": str(row.get("called_ae") or "")}
        parts.append("<div class='picture'>" + charts.throughput_svg(tp, labels=labels)
                     + "</div>")
    parts.append("</section>")
    return "\n".join(parts)


def _pictures(report: ReportLike, throughput: pd.DataFrame) -> list[str]:
    """Timelines per capture and ladders for the slowest associations, each capped."""
    assocs = report.associations
    if assocs.empty:
        return []
    captures = list(dict.fromkeys(assocs["capture"].tolist()))
    many = len(captures) > 1
    ranked = assocs.assign(_d=assocs["duration_ms"].astype("Float64")).sort_values(
        "_d", ascending=False, na_position="last", kind="stable").head(MAX_LADDERS)
    chosen = sorted(ranked.drop(columns="_d").to_dict("records"),
                    key=lambda r: (captures.index(r["capture"]), r["assoc_id"]))
    rows = [{str(k): v for k, v in r.items()} for r in chosen]
    aggregates = charts.operation_aggregates(
        report.batches("operations", charts.TIMELINE_OPERATION_COLUMNS))
    parts = ["<h2 id='timeline'>Timeline</h2>"]
    if len(captures) > MAX_TIMELINES:
        parts.append(f"<p class='notice'>Timelines for the first {MAX_TIMELINES} of "
                     f"{len(captures):,} captures.</p>")
    for cap in captures[:MAX_TIMELINES]:
        sub = assocs[assocs["capture"] == cap]
        anchors = {int(r["assoc_id"]): "#" + _anchor(captures, r) for r in rows
                   if r["capture"] == cap}
        if many:
            parts.append(f"<h3>{esc(Path(str(cap)).name)}</h3>")
        parts.append("<div class='picture'>"
                     + charts.timeline_svg(sub, anchors=anchors, aggregates=aggregates)
                     + "</div>")
        if len(sub) > charts.MAX_TIMELINE_ASSOCIATIONS:
            parts.append(f"<p class='notice'>The timeline draws the first "
                         f"{charts.MAX_TIMELINE_ASSOCIATIONS} of {len(sub):,} associations "
                         "as bars and counts all of them in the strip below them.</p>")
    parts.append("<h2 id='ladders'>Associations</h2>")
    if len(assocs) > len(rows):
        parts.append(f"<p class='notice'>Ladders for the {len(rows)} slowest of "
                     f"{len(assocs):,} associations (by duration); the tables below hold "
                     "all of them.</p>")
    parts.append("<p class='notice'>Time runs downwards on a compressed scale: every gap "
                 "between two events gets room for its label, long waits are drawn shorter "
                 "(// marks a broken axis) and the numbers say how long each took. Hover "
                 "an operation for its details.</p>")
    for r in rows:
        parts.append(_ladder_section(r, _anchor(captures, r), report, report.findings,
                                     throughput, many))
    return parts


def render(report: ReportLike, title: str = "tshark-dicom report") -> str:
    """The page as a string."""
    throughput = report.throughput
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        "<pre class='summary'>" + "\n".join(esc(line) for line in report.summary().split("\n"))
        + "</pre>",
        "<p class='notice'>For analysis only: files and tables made by tshark-dicom are not "
        "for clinical use.</p>",
        "<h2>Findings</h2>",
        _table(report.findings, None, row_class="severity"),
    ]
    parts.extend(_pictures(report, throughput))
    parts.append("<h2 id='operations'>Operations</h2>")
    ops, total = _first(report.batches("operations", OPERATION_COLUMNS), MAX_ROWS)
    parts.append(f"<section id='operations-table'>{_table(ops, OPERATION_COLUMNS, total=total)}"
                 "</section>")
    for name, cols in _COLUMNS.items():
        parts.append(f"<h2>{name.replace('_', ' ').capitalize()}</h2>")
        head, total = _first(report.batches(name, cols), MAX_ROWS)
        parts.append(_table(head, cols, total=total))
    parts.append("</body></html>")
    return "\n".join(parts)
