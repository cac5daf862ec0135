"""A single self-contained HTML page for a Report: the summary, the findings first, then
one section per table. For people who open a file rather than a notebook."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from .report import Report

MAX_ROWS = 2000  # per table; the Parquet/CSV files hold everything

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


def _cell(value: object) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return '<span class="muted">-</span>'
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, list):
        return html.escape(" ".join(map(str, value)))
    return html.escape(str(value))


def _table(df: pd.DataFrame, columns: list[str] | None = None,
           row_class: str | None = None) -> str:
    cols = [c for c in (columns or list(df.columns)) if c in df.columns]
    if df.empty:
        return '<p class="muted">none</p>'
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    rows = []
    for rec in df.head(MAX_ROWS).to_dict("records"):
        cls = f' class="{html.escape(str(rec[row_class]))}"' if row_class else ""
        rows.append(f"<tr{cls}>" + "".join(f"<td>{_cell(rec[c])}</td>" for c in cols) + "</tr>")
    more = (f'<p class="muted">first {MAX_ROWS} of {len(df)} rows; the table files hold all</p>'
            if len(df) > MAX_ROWS else "")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"


def render(report: Report, title: str = "tshark-dicom report") -> str:
    """The page as a string."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<pre class='summary'>{html.escape(report.summary())}</pre>",
        "<p class='notice'>For analysis only: files and tables made by tshark-dicom are not "
        "for clinical use.</p>",
        "<h2>Findings</h2>",
        _table(report.findings, None, row_class="severity"),
    ]
    for name, cols in _COLUMNS.items():
        parts.append(f"<h2>{name.replace('_', ' ').capitalize()}</h2>")
        parts.append(_table(report.table(name), cols))
    parts.append("</body></html>")
    return "\n".join(parts)
