"""report.html: one self-contained page built for troubleshooting, the first thing a PACS
engineer opens. From the top: a summary (captures, associations per AE pair, operations per
service with their failures, the slowest operations, findings by severity), the findings
most severe first (each linked to its association), a timeline per capture, then per
capture and association a section with the negotiation, the ladder, the operations with
hex status, and each C-MOVE with its callbacks.

Nothing is fetched: pictures are inline SVG (`pictures`, `charts`) and a small inline script
makes the tables sortable and filterable (without it they are plain tables). Large runs are
read a batch at a time (`ReportLike.batches`): the summary aggregates every row, the page
details the associations that matter most and says so.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from . import charts, htmldevices, htmlnegotiation, htmlstudies, pictures
from . import studies as studies_tally
from .devices import OPERATION_COLUMNS as DEVICE_OPERATION_COLUMNS
from .devices import Devices
from .htmlparts import (
    Col,
    RowsByKey,
    anchor,
    count,
    gather,
    ms,
    name,
    num_col,
    records,
    rows_at,
    status,
    table,
    text_col,
    when,
)
from .htmlsections import (
    CONTEXT_COLUMNS,
    FINDING_COLUMNS,
    MAX_LADDERS,
    OP_COLUMNS,
    SectionRows,
    association_section,
    frame_code,
)
from .negotiation import CONTEXT_COLUMNS as NEGOTIATION_COLUMNS
from .negotiation import RETRIEVAL_COLUMNS, Negotiation, Retrievals
from .schemas import SCHEMAS, SEVERITIES, ReportLike
from .svg import esc, missing

MAX_DETAILED = 60  # associations with a section of their own (most severe, then slowest)
MAX_TIMELINES = 50  # captures with a timeline
MAX_FINDINGS = 1000  # findings listed; counted all
SLOWEST = 10  # slowest operations in the summary
RANK = {s: i for i, s in enumerate(SEVERITIES)}

ASSOC_COLUMNS = [
    "capture", "assoc_id", "calling_ae", "called_ae", "requestor_ip", "requestor_port",
    "acceptor_ip", "acceptor_port", "requested_at", "responded_at", "ended_at", "result",
    "ending", "reject_text", "abort_text", "setup_ms", "duration_ms", "message_count",
    "object_count", "bytes_requestor", "bytes_acceptor", "gap_bytes", "max_pdu_requestor",
    "max_pdu_acceptor", "impl_version_requestor", "impl_version_acceptor",
    "impl_class_uid_requestor", "impl_class_uid_acceptor", "rtt_ms",
    "bottleneck", "bottleneck_detail", "tls", "tls_decrypted", "tcp_stream"]
OP_SUMMARY_COLUMNS = list(dict.fromkeys([
    "capture", "assoc_id", "op_index", "command", "status_category", "status_hex",
    "status_text", "total_ms", "scu_ae", "scp_ae", "bottleneck_detail",
    *studies_tally.OPERATION_COLUMNS, *DEVICE_OPERATION_COLUMNS, *RETRIEVAL_COLUMNS]))
CAPTURE_COLUMNS = ["capture", "key", "packets", "first_packet_at", "association_count",
                   "status", "error"]


def page_reads() -> dict[str, list[str]]:
    """The columns the page reads of each table, those its filters test included: told to
    a stored report before it renders (`Report.expect`), each table is read once."""
    return {
        "associations": ASSOC_COLUMNS, "captures": CAPTURE_COLUMNS,
        "findings": FINDING_COLUMNS,
        "operations": list(dict.fromkeys([*OP_SUMMARY_COLUMNS,
                                           *charts.TIMELINE_OPERATION_COLUMNS,
                                           *OP_COLUMNS])),
        "messages": ["command"], "objects": studies_tally.OBJECT_COLUMNS,
        "presentation_contexts": list(dict.fromkeys([*CONTEXT_COLUMNS,
                                                     *NEGOTIATION_COLUMNS])),
        "throughput": list(SCHEMAS["throughput"]),
        "connection_attempts": list(SCHEMAS["connection_attempts"]),
        "commitments": COMMITMENT_COLUMNS, "procedure_steps": STEP_COLUMNS,
    }


#: The columns of the MPPS table on the page.
STEP_COLUMNS = ["capture", "assoc_id", "final_assoc_id", "scu_ae", "scp_ae", "pps_id",
                "accession_number", "created_at", "status", "duration_ms", "image_count",
                "stored_count", "discontinuation_reason", "outcome"]
#: The columns of the Storage Commitment table on the page.
COMMITMENT_COLUMNS = ["capture", "assoc_id", "result_assoc_id", "scu_ae", "scp_ae",
                      "requested_at", "requested_count", "result_on", "wait_ms",
                      "committed_count", "failed_count", "failure_reasons", "outcome"]


_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,sans-serif;margin:0 auto;padding:1rem 1.5rem;max-width:1400px;
 color:#1f2937;line-height:1.35}
h1{font-size:1.45rem;margin:.2rem 0} h2{font-size:1.2rem;margin:2rem 0 .5rem;
 border-bottom:2px solid #e5e7eb;padding-bottom:.2rem}
h3{font-size:1.05rem;margin:1.6rem 0 .3rem} h4{font-size:.95rem;margin:1rem 0 .3rem}
nav a{margin-right:1rem} a{color:#1d4ed8}
.cards{display:flex;flex-wrap:wrap;gap:.6rem;margin:.6rem 0}
.card{border:1px solid #e5e7eb;border-radius:8px;padding:.5rem .8rem;min-width:10rem}
.card b{font-size:1.3rem;display:block}
.tablewrap{max-width:100%}
table.data{border-collapse:collapse;font-size:.8rem;margin:.4rem 0;width:100%;
 table-layout:auto}
table.data th,table.data td{border:1px solid #e5e7eb;padding:2px 6px;text-align:left;
 vertical-align:top;overflow-wrap:anywhere;word-break:break-word}
table.data th{background:#f3f4f6;position:sticky;top:0;cursor:pointer;user-select:none;
 overflow-wrap:normal;word-break:normal}
table.data th[data-dir=asc]::after{content:" \\25B2"} table.data th[data-dir=desc]::after{
 content:" \\25BC"}
td.num,th.num{text-align:right;white-space:nowrap}
td.tight{white-space:nowrap;overflow-wrap:normal;word-break:normal}
tr.error td{background:#fde2e1} tr.warning td{background:#fff4ce} tr.note td{background:#eef6ff}
tr.rejected td{background:#fde2e1}
.status{font-family:ui-monospace,monospace;white-space:nowrap} .bad{color:#b00020;
 font-weight:600} .warn{color:#92400e;font-weight:600} .muted{color:#6b7280}
.sev{font-weight:600;text-transform:uppercase;font-size:.72rem}
.sev.error{color:#b00020} .sev.warning{color:#92400e} .sev.note{color:#1d4ed8}
p.notice{font-size:.82rem;color:#4b5563;margin:.3rem 0}
p.facts{font-size:.86rem;margin:.2rem 0}
section.association{border-top:1px solid #e5e7eb;margin-top:1.2rem}
div.picture{overflow-x:auto;margin:.4rem 0 1rem}
div.picture svg{max-width:100%;height:auto;display:block}
details{margin:.3rem 0} summary{cursor:pointer}
input.filter{font-size:.8rem;padding:2px 6px;margin:.3rem 0 0;width:16rem;max-width:100%}
ul.findings{margin:.2rem 0;padding-left:1.2rem;font-size:.85rem}
code,.mono{font-family:ui-monospace,monospace;font-size:.85em}
.wsf{cursor:copy;background:#eef2ff;border-radius:3px;padding:0 .25em;white-space:nowrap}
.wsf.copied{background:#d1fae5}
"""

# Sorting by a column header, filtering by a text box above each table, a Wireshark filter
# copied on a click (`htmlsections.wireshark_code`); without the script the tables are
# plain. No console output, nothing fetched.
_SCRIPT = """
(function(){
 function key(td){var v=td.getAttribute('data-v');return v===null?null:parseFloat(v);}
 document.querySelectorAll('table.data').forEach(function(t){
  var body=t.tBodies[0];if(!body)return;
  var rows=Array.prototype.slice.call(body.rows);
  var box=document.createElement('input');box.type='search';box.className='filter';
  box.placeholder='filter rows ('+rows.length+')';box.setAttribute('aria-label','filter');
  t.parentNode.parentNode.insertBefore(box,t.parentNode);
  box.addEventListener('input',function(){var q=box.value.toLowerCase();
   rows.forEach(function(r){r.hidden=q!==''&&r.textContent.toLowerCase().indexOf(q)<0;});});
  var heads=t.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads,function(th,i){
   th.title='sort';th.addEventListener('click',function(){
    var dir=th.getAttribute('data-dir')==='asc'?'desc':'asc';
    Array.prototype.forEach.call(heads,function(h){h.removeAttribute('data-dir');});
    th.setAttribute('data-dir',dir);var s=dir==='asc'?1:-1;
    rows.sort(function(a,b){var x=a.cells[i],y=b.cells[i];if(!x||!y)return 0;
     var p=key(x),q=key(y);
     if(p!==null||q!==null){if(p===null)return 1;if(q===null)return -1;return s*(p-q);}
     return s*x.textContent.localeCompare(y.textContent,undefined,{numeric:true});});
    rows.forEach(function(r){body.appendChild(r);});});});
 });
 document.querySelectorAll('.wsf').forEach(function(c){
  c.addEventListener('click',function(){
   var f=c.getAttribute('data-filter')||c.textContent;
   if(navigator.clipboard){navigator.clipboard.writeText(f).catch(function(){});}
   c.classList.add('copied');setTimeout(function(){c.classList.remove('copied');},800);});
 });
})();
"""


@dataclass
class _Findings:
    """The findings, read a batch at a time: counts, the most severe first (capped), and
    the worst severity of each association."""

    total: int = 0
    by_severity: Counter[str] = field(default_factory=Counter)
    by_code: Counter[tuple[str, str]] = field(default_factory=Counter)
    kept: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    worst: dict[tuple[Any, int], int] = field(default_factory=dict)

    def add(self, batch: pd.DataFrame) -> None:
        for r in records(batch):
            sev = str(r.get("severity"))
            self.total += 1
            self.by_severity[sev] += 1
            self.by_code[(sev, str(r.get("code")))] += 1
            kept = self.kept.setdefault(sev, [])
            if len(kept) < MAX_FINDINGS:
                kept.append(r)
            if not missing(r.get("assoc_id")):
                k = (r.get("capture"), int(r["assoc_id"]))
                self.worst[k] = min(self.worst.get(k, 9), RANK.get(sev, 9))

    def sorted_rows(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for sev in sorted(self.kept, key=lambda s: RANK.get(s, 9)):
            out.extend(self.kept[sev])
        return out[:MAX_FINDINGS]


@dataclass
class _Operations:
    """Operations per service, failures per association and the slowest, a batch at a
    time."""

    total: int = 0
    per_command: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: Counter[tuple[Any, int]] = field(default_factory=Counter)
    count: Counter[tuple[Any, int]] = field(default_factory=Counter)
    slowest: list[tuple[float, int, dict[str, Any]]] = field(default_factory=list)

    def add(self, batch: pd.DataFrame) -> None:
        for r in records(batch):
            self.total += 1
            cmd = str(r.get("command") or "?")
            s = self.per_command.setdefault(cmd, {
                "command": cmd, "operations": 0, "Success": 0, "Warning": 0, "Failure": 0,
                "Cancel": 0, "other": 0, "statuses": Counter(), "sum_ms": 0.0, "timed": 0,
                "max_ms": None})
            s["operations"] += 1
            cat = str(r.get("status_category"))
            s[cat if cat in ("Success", "Warning", "Failure", "Cancel") else "other"] += 1
            if cat in ("Warning", "Failure") and not missing(r.get("status_hex")):
                s["statuses"][str(r["status_hex"])] += 1
            key = (r.get("capture"), int(r["assoc_id"]))
            self.count[key] += 1
            if cat == "Failure":
                self.failed[key] += 1
            total: Any = r.get("total_ms")
            if not missing(total):
                t = float(total)
                s["sum_ms"] += t
                s["timed"] += 1
                s["max_ms"] = t if s["max_ms"] is None else max(s["max_ms"], t)
                item = (t, self.total, r)
                if len(self.slowest) < SLOWEST:
                    heapq.heappush(self.slowest, item)
                elif t > self.slowest[0][0]:
                    heapq.heapreplace(self.slowest, item)


def _cards(assocs: pd.DataFrame, caps: pd.DataFrame, ops: _Operations, objects: tuple[int, int],
           findings: _Findings, messages: int) -> str:
    results = Counter(assocs["result"].fillna("unknown").tolist())
    failed_caps = int((caps["status"] == "failed").sum()) if len(caps) else 0
    n_caps = max(len(caps), assocs["capture"].nunique())
    failed_ops = sum(s["Failure"] for s in ops.per_command.values())
    cards = [
        ("captures", f"{n_caps:,}", f"{failed_caps} could not be analysed" if failed_caps
         else "all analysed"),
        ("associations", f"{len(assocs):,}",
         ", ".join(f"{n} {r}" for r, n in sorted(results.items())) or "none"),
        ("operations", f"{ops.total:,}", f"{failed_ops} failed; {messages:,} DIMSE messages"),
        ("data sets", f"{objects[0]:,}", f"{objects[0] - objects[1]} incomplete"),
        ("findings", f"{findings.total:,}", ", ".join(
            _plural(findings.by_severity.get(s, 0), s) for s in SEVERITIES)),
    ]
    return "<div class='cards'>" + "".join(
        f"<div class='card'><span class='muted'>{esc(t)}</span><b>{esc(v)}</b>"
        f"<span class='muted'>{esc(d)}</span></div>" for t, v, d in cards) + "</div>"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _ae_pairs(assocs: pd.DataFrame, ops: _Operations) -> str:
    pairs: dict[tuple[str, str], dict[str, Any]] = {}
    for r in records(assocs):
        k = (str(r.get("calling_ae") or ""), str(r.get("called_ae") or ""))
        p = pairs.setdefault(k, {"calling_ae": k[0], "called_ae": k[1], "associations": 0,
                                 "accepted": 0, "rejected": 0, "aborted": 0,
                                 "operations": 0, "failed": 0})
        p["associations"] += 1
        p["accepted"] += r.get("result") == "accepted"
        p["rejected"] += r.get("result") in ("rejected", "no-response")
        p["aborted"] += r.get("ending") == "aborted"
        key = (r.get("capture"), int(r["assoc_id"]))
        p["operations"] += ops.count.get(key, 0)
        p["failed"] += ops.failed.get(key, 0)
    rows = sorted(pairs.values(), key=lambda p: (-p["failed"], -p["rejected"],
                                                  -p["associations"]))
    return table(rows, [
        text_col("calling AE", "calling_ae"), text_col("called AE", "called_ae"),
        num_col("associations", "associations"), num_col("accepted", "accepted"),
        num_col("rejected / no answer", "rejected"), num_col("aborted", "aborted"),
        num_col("operations", "operations"), num_col("failed operations", "failed")],
        row_class=lambda p: "rejected" if p["rejected"] or p["failed"] else "",
        what="AE pairs")


def _services(ops: _Operations) -> str:
    rows = []
    for s in sorted(ops.per_command.values(), key=lambda s: -s["operations"]):
        mean = s["sum_ms"] / s["timed"] if s["timed"] else None
        rows.append({**s, "mean_ms": mean, "failing": ", ".join(
            f"{h} \u00d7{n}" for h, n in sorted(s["statuses"].items()))})
    # a column for cancelled operations (C-FIND, C-MOVE, C-GET ended 0xFE00) only where any was
    cancelled = [num_col("cancelled", "Cancel")] if any(r["Cancel"] for r in rows) else []
    return table(rows, [
        text_col("service", "command"), num_col("operations", "operations"),
        num_col("success", "Success"), num_col("warning", "Warning"),
        num_col("failure", "Failure"), *cancelled, num_col("other / no answer", "other"),
        Col("warning and failure statuses", lambda r: esc(r["failing"]), cls="status"),
        num_col("mean", "mean_ms", ms), num_col("slowest", "max_ms", ms)],
        row_class=lambda r: "error" if r["Failure"] else "warning" if r["Warning"] else "",
        what="services")


def _link(caps: list[Any], r: dict[str, Any], label: str | None = None) -> str:
    cap = r.get("capture")
    if cap not in caps or missing(r.get("assoc_id")):
        return esc(label or name(cap))
    text = label if label is not None else f"{name(cap)} #{r['assoc_id']}"
    return f"<a href='#{anchor(caps.index(cap), r['assoc_id'])}'>{esc(text)}</a>"


def _assoc_col(heading: str, caps: list[Any], key: str = "assoc_id") -> Col:
    """A link to the association whose id is in ``key`` (nothing where it is null)."""
    return Col(heading, lambda r: "" if missing(r.get(key)) else _link(
        caps, {"capture": r.get("capture"), "assoc_id": r.get(key)}))


def _pair_col(heading: str) -> Col:
    """The row's ``scu_ae`` \u2192 ``scp_ae``."""
    return Col(heading, lambda r: esc(f"{r.get('scu_ae') or ''} \u2192 {r.get('scp_ae') or ''}"))


def _slowest(ops: _Operations, caps: list[Any]) -> str:
    rows = [r for _, _, r in sorted(ops.slowest, key=lambda x: -x[0])]
    return table(rows, [
        Col("association", lambda r: _link(caps, r)),
        num_col("op", "op_index"), text_col("command", "command", cls="tight"),
        _pair_col("SCU \u2192 SCP"),
        Col("status", lambda r: status(r.get("status_hex"), r.get("status_category"),
                                       r.get("status_text"))),
        num_col("total", "total_ms", ms), text_col("why", "bottleneck_detail")],
        what="operations", empty="no timed operations")


def _commitments(report: ReportLike, caps: list[Any]) -> list[str]:
    """Storage Commitment transactions, where the run has any: each request, its result and
    what the result says (commitment.py)."""
    if not report.row_count("commitments"):
        return []
    rows = records(gather(report, "commitments", COMMITMENT_COLUMNS))
    return ["<h3 id='commitments'>Storage Commitment</h3>", table(rows, [
        _assoc_col("request", caps), _assoc_col("result", caps, "result_assoc_id"),
        _pair_col("SCU \u2192 SCP"),
        Col("requested", lambda r: esc(when(r.get("requested_at")))),
        num_col("instances", "requested_count"), text_col("result on", "result_on"),
        num_col("wait", "wait_ms", ms), num_col("committed", "committed_count"),
        num_col("failed", "failed_count"),
        Col("reasons", lambda r: esc("; ".join(r.get("failure_reasons") or []))),
        text_col("outcome", "outcome", cls="tight")],
        row_class=lambda r: {"failures": "error", "refused": "error",
                             "unanswered": "warning"}.get(str(r.get("outcome")), ""),
        what="transactions")]


def _procedure_steps(report: ReportLike, caps: list[Any]) -> list[str]:
    """MPPS procedure steps, where the run has any: each N-CREATE, the N-SET that ended it,
    and the images it lists against those stored (mpps.py)."""
    if not report.row_count("procedure_steps"):
        return []
    rows = records(gather(report, "procedure_steps", STEP_COLUMNS))

    def stored(r: dict[str, Any]) -> str:
        if missing(r.get("image_count")):
            return ""
        return f"{count(r.get('stored_count'))} of {count(r.get('image_count'))}"

    def flag(r: dict[str, Any]) -> str:
        if r.get("outcome") == "in-progress":
            return "warning"
        partial = not missing(r.get("stored_count")) and 0 < int(r["stored_count"]) < int(
            r["image_count"])
        return "warning" if partial else "note" if r.get("outcome") == "discontinued" else ""

    return ["<h3 id='procedure-steps'>Procedure steps (MPPS)</h3>", table(rows, [
        _assoc_col("N-CREATE", caps), _assoc_col("ended by", caps, "final_assoc_id"),
        _pair_col("modality \u2192 RIS"),
        text_col("step", "pps_id"), text_col("accession", "accession_number"),
        Col("created", lambda r: esc(when(r.get("created_at")))),
        text_col("status", "status", cls="tight"), num_col("took", "duration_ms", ms),
        Col("images stored", stored), text_col("reason", "discontinuation_reason"),
        text_col("outcome", "outcome", cls="tight")],
        row_class=flag, what="procedure steps")]


def _findings_table(findings: _Findings, caps: list[Any], pairs: dict[tuple[Any, int], str],
                    assocs: dict[tuple[Any, int], dict[str, Any]]) -> str:
    rows = findings.sorted_rows()

    def frame(r: dict[str, Any]) -> str:
        a = None if missing(r.get("assoc_id")) else assocs.get(
            (r.get("capture"), int(r["assoc_id"])))
        return frame_code(r, a, lambda n: f"{n:,}")

    return table(rows, [
        Col("severity", lambda r: f"<span class='sev {esc(r.get('severity'))}'>"
            f"{esc(r.get('severity'))}</span>", lambda r: float(RANK.get(
                str(r.get("severity")), 9)), cls="tight"),
        text_col("code", "code", cls="tight mono"),
        Col("association", lambda r: _link(caps, r, None if missing(r.get("assoc_id")) else
                                           f"{name(r.get('capture'))} #{r['assoc_id']} "
                                           + pairs.get((r.get("capture"),
                                                        int(r["assoc_id"])), ""))),
        Col("frame", frame, lambda r: None if missing(r.get("frame")) else float(r["frame"]),
            cls="num"),
        text_col("what happened", "summary")],
        total=findings.total, row_class=lambda r: str(r.get("severity")),
        table_id="findings-table", what="findings", empty="no findings")


def _captures_table(caps: pd.DataFrame) -> str:
    return table(records(caps), [
        text_col("capture", "capture"), text_col("key", "key", cls="mono"),
        num_col("packets", "packets"), Col("first packet", lambda r: esc(when(
            r.get("first_packet_at")))), num_col("associations", "association_count"),
        text_col("status", "status"), text_col("error", "error")],
        row_class=lambda r: "error" if r.get("status") == "failed" else "", what="captures",
        table_id="captures-table")


def _choose(assocs: pd.DataFrame, findings: _Findings, ops: _Operations) -> list[tuple[Any, int]]:
    """The associations with a section: the most severe findings first, then failures,
    then the slowest; at most MAX_DETAILED."""
    scored = []
    for r in records(assocs):
        key = (r.get("capture"), int(r["assoc_id"]))
        duration: Any = r.get("duration_ms")
        scored.append((findings.worst.get(key, 9), -ops.failed.get(key, 0),
                       -(float(duration) if not missing(duration) else 0.0), key))
    scored.sort(key=lambda s: s[:3])
    return [s[3] for s in scored[:MAX_DETAILED]]


def _timelines(report: ReportLike, assocs: pd.DataFrame, caps: list[Any],
               detailed: set[tuple[Any, int]]) -> list[str]:
    aggregates = charts.operation_aggregates(
        report.batches("operations", charts.TIMELINE_OPERATION_COLUMNS))
    parts = ["<h2 id='timeline'>Timeline</h2>"]
    if len(caps) > MAX_TIMELINES:
        parts.append(f"<p class='notice'>Timelines for the first {MAX_TIMELINES} of "
                     f"{len(caps):,} captures.</p>")
    for ci, (cap, sub) in enumerate(_timeline_rows(assocs, caps[:MAX_TIMELINES])):
        links = {int(a): "#" + anchor(ci, a) for c, a in detailed if c == cap}
        if len(caps) > 1:
            parts.append(f"<h3>{esc(name(cap))}</h3>")
        parts.append("<div class='picture'>" + charts.timeline_svg(
            sub, anchors=links, aggregates=aggregates) + "</div>")
        if len(sub) > charts.MAX_TIMELINE_ASSOCIATIONS:
            parts.append(f"<p class='notice'>The timeline draws the first "
                         f"{charts.MAX_TIMELINE_ASSOCIATIONS} of {len(sub):,} associations "
                         "as bars and counts all of them in the strip above them.</p>")
    return parts


#: `_timeline_rows` makes dicts of the associations of this many rows' captures at once.
TIMELINE_ROWS = 5_000


def _timeline_rows(assocs: pd.DataFrame, caps: list[Any]
                   ) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    """Each capture of ``caps`` with its associations' rows as `charts.timeline_svg`
    draws them (its columns only, as `pictures.records` makes them), several captures'
    rows made at once (about `TIMELINE_ROWS`), in one slice where they follow one another
    as read. A mask of the whole table and a conversion per capture were most of the
    timelines' time (72 captures: 0.18 of 0.3 s)."""
    drawn = assocs[[c for c in charts.TIMELINE_COLUMNS if c in assocs.columns]]
    at: dict[Any, list[int]] = {}
    for i, c in enumerate(drawn["capture"].tolist()):
        if not missing(c):
            at.setdefault(c, []).append(i)
    pending: list[Any] = []
    held = 0  # the pending captures' rows
    for n, cap in enumerate(caps):
        pending.append(cap)
        held += len(at.get(cap, ()))
        if n + 1 < len(caps) and held < TIMELINE_ROWS:
            continue
        made = pictures.records(rows_at(drawn, [i for c in pending for i in at.get(c, ())]))
        start = 0
        for c in pending:
            stop = start + len(at.get(c, ()))
            yield c, made[start:stop]
            start = stop
        pending, held = [], 0


def _other_associations(assocs: pd.DataFrame, detailed: set[tuple[Any, int]]) -> str:
    rest = [r for r in records(assocs) if (r.get("capture"), int(r["assoc_id"]))
            not in detailed]
    if not rest:
        return ""
    return ("<h3 id='other-associations'>The other associations</h3>"
            "<p class='notice'>Without findings and quicker than those above: one row "
            "each.</p>" + table(rest, [
                Col("capture", lambda r: esc(name(r.get("capture")))),
                num_col("#", "assoc_id"), text_col("calling AE", "calling_ae"),
                text_col("called AE", "called_ae"), text_col("result", "result"),
                text_col("ending", "ending"), num_col("messages", "message_count"),
                num_col("duration", "duration_ms", ms)], what="associations"))


def render(report: ReportLike, title: str = "tshark-dicom report") -> str:
    """The page as a string."""
    return "\n".join(render_parts(report, title))


def write(report: ReportLike, path: Path, title: str = "tshark-dicom report") -> None:
    """The page written to ``path`` a part at a time (a page of several MB is not copied
    whole into one string and then into its bytes)."""
    with open(path, "w", encoding="utf-8") as f:
        for i, part in enumerate(render_parts(report, title)):
            f.write(f"\n{part}" if i else part)


def render_parts(report: ReportLike, title: str) -> list[str]:
    """The page, in the parts it is made of."""
    assocs = gather(report, "associations", ASSOC_COLUMNS)
    caps_table = gather(report, "captures", CAPTURE_COLUMNS)
    caps = list(dict.fromkeys(caps_table["capture"].tolist() + assocs["capture"].tolist()))
    findings = _Findings()
    for batch in report.batches("findings", FINDING_COLUMNS):
        findings.add(batch)
    ops = _Operations()
    studies = studies_tally.Studies(assocs)
    devices = Devices()
    devices.add(assocs)
    retrievals = Retrievals()
    for batch in report.batches("operations", OP_SUMMARY_COLUMNS):
        ops.add(batch)
        studies.outcomes(batch)
        devices.outcomes(batch)
        retrievals.add(batch)
    negotiation = Negotiation(devices, retrievals.lossless)
    for batch in report.batches("presentation_contexts", NEGOTIATION_COLUMNS):
        negotiation.contexts(batch)
    messages = sum(len(b) for b in report.batches("messages", ["command"]))
    n_objects = n_complete = 0
    for b in report.batches("objects", studies_tally.OBJECT_COLUMNS):
        n_objects += len(b)
        n_complete += int(b["complete"].sum())
        studies.add(b)
    named = records(assocs[["capture", "assoc_id", "calling_ae", "called_ae", "tcp_stream"]])
    pairs = {(r.get("capture"), int(r["assoc_id"])): f"{r.get('calling_ae') or ''} \u2192 "
             f"{r.get('called_ae') or ''}" for r in named}
    by_key = {(r.get("capture"), int(r["assoc_id"])): r for r in named}
    chosen = _choose(assocs, findings, ops)
    detailed = set(chosen)

    stored = htmlstudies.section(studies, caps)
    devices_part = htmldevices.section(devices, caps)
    negotiation_part = htmlnegotiation.section(negotiation, caps)
    services = [*_commitments(report, caps), *_procedure_steps(report, caps)]
    extra_nav = "".join(f"<a href='#{anchor_id}'>{label}</a>" for anchor_id, label in (
        ("devices", "Devices"), ("negotiation", "Negotiation"), ("studies", "Studies"),
        ("commitments", "Storage Commitment"), ("procedure-steps", "MPPS"))
        if any(f"id='{anchor_id}'" in part
               for part in [devices_part, negotiation_part, stored, *services]))
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        "<nav><a href='#summary'>Summary</a><a href='#findings'>Findings</a>"
        f"{extra_nav}<a href='#timeline'>Timeline</a><a href='#associations'>Associations</a>"
        "</nav>",
        "<p class='notice'>For analysis only: files and tables made by tshark-dicom are "
        "never for clinical use.</p>",
        "<h2 id='summary'>Summary</h2>",
        _cards(assocs, caps_table, ops, (n_objects, n_complete), findings, messages),
    ]
    if len(assocs) > MAX_DETAILED or ops.total > 5000:
        parts.append(f"<p class='notice'>A large run: {len(assocs):,} associations and "
                     f"{ops.total:,} operations. The summary and the counts cover every "
                     "row; sections are drawn for the "
                     f"{min(len(assocs), MAX_DETAILED)} associations with the most severe "
                     "findings, then the slowest; the table files in OUT hold every row."
                     "</p>")
    if len(caps_table) > 1 or (len(caps_table) and (caps_table["status"] == "failed").any()):
        parts += ["<h3 id='captures'>Captures</h3>", _captures_table(caps_table)]
    parts += ["<h3 id='ae-pairs'>Associations per AE pair</h3>", _ae_pairs(assocs, ops),
              devices_part, negotiation_part,
              "<h3 id='services'>Operations per service</h3>", _services(ops),
              "<h3 id='slowest'>Slowest operations</h3>", _slowest(ops, caps),
              stored,
              *services,
              "<h3 id='findings-by-severity'>Findings by severity</h3>",
              table([{"severity": s, "code": c, "n": n} for (s, c), n in sorted(
                  findings.by_code.items(), key=lambda kv: (RANK.get(kv[0][0], 9),
                                                            -kv[1]))], [
                  Col("severity", lambda r: f"<span class='sev {esc(r['severity'])}'>"
                      f"{esc(r['severity'])}</span>", cls="tight"),
                  text_col("code", "code", cls="tight mono"), num_col("findings", "n")],
                  row_class=lambda r: str(r["severity"]), what="codes",
                  empty="no findings"),
              "<h2 id='findings'>Findings, most severe first</h2>",
              _findings_table(findings, caps, pairs, by_key)]
    parts.extend(_timelines(report, assocs, caps, detailed))
    parts.append("<h2 id='associations'>Associations</h2>")
    if len(assocs) > len(chosen):
        parts.append(f"<p class='notice'>Sections for {len(chosen)} of {len(assocs):,} "
                     "associations: those with the most severe findings, then the "
                     "slowest. The others are listed at the end.</p>")
    by_capture: dict[Any, list[int]] = {}
    for cap, aid in chosen:
        by_capture.setdefault(cap, []).append(aid)
    # the sections in the order they are drawn: each table's rows are made dicts in it
    order = [(cap, a) for cap in caps if cap in by_capture for a in sorted(by_capture[cap])]
    assoc_rows = RowsByKey(assocs, order)
    ladders = MAX_LADDERS
    data = SectionRows(report, order, dict(ops.count))
    for ci, cap in enumerate(caps):
        if cap not in by_capture:
            continue
        if len(caps) > 1:
            parts.append(f"<h3 class='capture'>{esc(name(cap))}</h3>")
        sections, ladders = association_section(
            data, ci, [assoc_rows[(cap, a)] for a in sorted(by_capture[cap])], assoc_rows,
            caps, ladders)
        parts.extend(sections)
    parts.append(_other_associations(assocs, detailed))
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return parts

