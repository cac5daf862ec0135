"""report.html's section per association: what was negotiated (rejected contexts first,
long proposals collapsed), its findings, the ladder (and throughput of a large transfer),
the operations with hex status, meaning, counts and duration, and each C-MOVE with its
callback associations and failed connection attempts (query/retrieve correlation)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from . import charts, pictures, wireshark
from .htmlparts import (
    Col,
    anchor,
    count,
    ms,
    name,
    num_col,
    records,
    rows_for,
    status,
    table,
    text_col,
    when,
)
from .schemas import ReportLike
from .svg import esc, fmt_bytes, missing

MAX_OPERATIONS = pictures.MAX_LADDER_OPERATIONS  # operations listed per association
MAX_CONTEXTS = 256  # presentation contexts listed per association (at most 128 proposed)
OPEN_CONTEXTS = 12  # proposals longer than this are collapsed
MAX_ASSOC_FINDINGS = 30
MAX_LADDERS = 40  # ladders drawn (the chosen associations come most severe first)

OP_COLUMNS = [
    "capture", "assoc_id", "op_index", "command", "scu", "scp", "scu_ae", "scp_ae",
    "message_id", "response_count", "pending_response_count", "sop_class_name",
    "sop_instance_uid", "move_destination", "status", "status_hex", "status_category",
    "status_text", "error_comment", "remaining", "completed", "failed", "warning",
    "parent_assoc_id", "parent_op_index", "callback_assoc_ids", "callback_attempt_ids",
    "suboperations_seen", "suboperations_failed", "link", "request_first_at",
    "request_complete_at", "response_first_at", "response_complete_at", "gap_before_ms",
    "request_transfer_ms", "turnaround_ms", "response_transfer_ms", "total_ms",
    "request_bytes", "bottleneck", "bottleneck_detail", "first_frame", "last_frame",
    # the ladder's: which operation a finding marks, and the round trips in its labels
    "request_index", "final_response_index", "cancel_index", "gap_network_ms",
    "turnaround_network_ms"]
FINDING_COLUMNS = ["capture", "assoc_id", "msg_index", "frame", "severity", "code", "summary"]
CONTEXT_COLUMNS = ["capture", "assoc_id", "context_id", "abstract_syntax",
                   "abstract_syntax_name", "proposed_transfer_syntaxes", "result",
                   "result_text", "transfer_syntax", "transfer_syntax_name",
                   "scu_role_proposed", "scp_role_proposed", "scu_role_accepted",
                   "scp_role_accepted"]


def _endpoint(ip: object, port: object) -> str:
    if missing(ip):
        return "?"
    text = str(ip)
    text = f"[{text}]" if ":" in text else text
    return text + (f":{port}" if not missing(port) else "")


def wireshark_code(display_filter: str | None, shown: str | None = None) -> str:
    """A Wireshark display filter that a click copies (the page's script): ``shown`` in
    its place where given (an operation's frames), the filter itself otherwise."""
    if display_filter is None:
        return esc(shown)
    if shown is None:
        return f"<code class='wsf' title='click to copy'>{esc(display_filter)}</code>"
    return (f"<code class='wsf' data-filter='{esc(display_filter)}' title='copy the "
            f"Wireshark filter {esc(display_filter)}'>{esc(shown)}</code>")


def _wireshark(a: dict[str, Any]) -> str:
    """The association's filter in Wireshark and what else it needs there."""
    display_filter = wireshark.stream_filter(a.get("tcp_stream"))
    if display_filter is None:
        return ""
    note = wireshark.association_note(a)
    return f"in Wireshark: {wireshark_code(display_filter)}" + (
        f"; {esc(note)}" if note else "")


def _facts(a: dict[str, Any], n_ops: int) -> str:
    facts = [f"<b>{esc(a.get('result'))}</b>, {esc(a.get('ending'))}",
             esc(f"{_endpoint(a.get('requestor_ip'), a.get('requestor_port'))} \u2192 "
                 f"{_endpoint(a.get('acceptor_ip'), a.get('acceptor_port'))}")]
    if not missing(a.get("requested_at")):
        facts.append(esc(when(a.get("requested_at")) + " UTC"))
    if not missing(a.get("setup_ms")):
        facts.append(f"setup {esc(ms(a.get('setup_ms')))}")
    if not missing(a.get("duration_ms")):
        facts.append(f"lasted {esc(ms(a.get('duration_ms')))}")
    facts.append(f"{n_ops:,} operation{'' if n_ops == 1 else 's'}, "
                 f"{count(a.get('message_count')) or 0} messages")
    sent = sum(int(a[k]) for k in ("bytes_requestor", "bytes_acceptor") if not missing(a.get(k)))
    facts.append(esc(fmt_bytes(sent)))
    if not missing(a.get("gap_bytes")) and int(a["gap_bytes"]):
        facts.append(f"<span class='bad'>{esc(fmt_bytes(int(a['gap_bytes'])))} missing from "
                     "the capture</span>")
    lines = [" \u00b7 ".join(facts)]
    for key, label in (("reject_text", "rejected"), ("abort_text", "aborted")):
        if not missing(a.get(key)):
            lines.append(f"<span class='bad'>{label}: {esc(a.get(key))}</span>")
    pdu = [f"max PDU {side} {count(a.get(f'max_pdu_{side}'))}"
           for side in ("requestor", "acceptor") if not missing(a.get(f"max_pdu_{side}"))]
    impl = [f"{side} {a.get(f'impl_version_{side}')}" for side in ("requestor", "acceptor")
            if not missing(a.get(f"impl_version_{side}"))]
    if pdu or impl:
        lines.append(esc("; ".join(pdu + (["implementations: " + ", ".join(impl)]
                                           if impl else []))))
    if not missing(a.get("bottleneck_detail")):
        party, _, why = str(a["bottleneck_detail"]).partition(": ")
        lines.append(f"slow: <b>{esc(party)}</b>: {esc(why)}")
    if wireshark_line := _wireshark(a):
        lines.append(wireshark_line)
    return "".join(f"<p class='facts'>{line}</p>" for line in lines)


def frame_code(f: dict[str, Any], a: dict[str, Any] | None,
               label: Callable[[int], str]) -> str:
    """A finding's frame, shown as ``label(frame)``; a click copies the filter of its
    packets (`wireshark.finding_filter`, with association ``a``'s connection where it has
    one). "" without a frame."""
    if missing(f.get("frame")):
        return ""
    return wireshark_code(wireshark.finding_filter(f, a), label(int(f["frame"])))


def _finding_frame(f: dict[str, Any], a: dict[str, Any]) -> str:
    """`` (frame 57)`` after a finding in its association's section."""
    code = frame_code(f, a, lambda n: f"frame {n}")
    return f" <span class='muted'>({code})</span>" if code else ""


def _roles(r: dict[str, Any]) -> str:
    out = []
    for role in ("scu", "scp"):
        proposed, accepted = r.get(f"{role}_role_proposed"), r.get(f"{role}_role_accepted")
        if missing(proposed):
            continue
        out.append(f"{role.upper()} {'yes' if proposed else 'no'}"
                   + ("" if missing(accepted) else f"\u2192{'yes' if accepted else 'no'}"))
    return esc(", ".join(out))


def _negotiation(contexts: list[dict[str, Any]], a: dict[str, Any]) -> str:
    if not contexts:
        tls, decrypted = a.get("tls"), a.get("tls_decrypted")
        if not missing(tls) and bool(tls) and (missing(decrypted) or not bool(decrypted)):
            return ("<p class='muted'>No presentation contexts in the capture: the connection "
                    "is TLS that was not decrypted, so an A-ASSOCIATE-RQ inside it, if there "
                    "was one, is not seen (the findings above say why).</p>")
        return "<p class='muted'>No presentation contexts in the capture (it starts after " \
               "the association was set up, or the A-ASSOCIATE-RQ could not be read).</p>"
    accepted = [c for c in contexts if c.get("result") == 0]
    rejected = [c for c in contexts if c.get("result") not in (0, None)
                and not missing(c.get("result"))]
    unanswered = len(contexts) - len(accepted) - len(rejected)
    ordered = sorted(contexts, key=lambda c: (
        0 if c in rejected else 1 if c in accepted else 2,
        int(c["context_id"]) if not missing(c.get("context_id")) else 0))
    line = (f"{len(contexts)} presentation context{'s' if len(contexts) != 1 else ''} "
            f"proposed: {len(accepted)} accepted, {len(rejected)} rejected"
            + (f", {unanswered} unanswered" if unanswered else ""))
    cols = [
        num_col("id", "context_id"),
        Col("abstract syntax", lambda r: f"{esc(r.get('abstract_syntax_name'))} "
            f"<span class='muted mono'>{esc(r.get('abstract_syntax'))}</span>"),
        Col("result", lambda r: f"<span class='{'bad' if r.get('result') not in (0, None) and not missing(r.get('result')) else ''}'>"  # noqa: E501
            f"{esc(r.get('result_text') or 'no answer')}</span>"),
        Col("accepted transfer syntax", lambda r: esc(r.get("transfer_syntax_name") or "")),
        Col("proposed transfer syntaxes", lambda r: esc(", ".join(
            str(t) for t in (r.get("proposed_transfer_syntaxes") or []))), cls="mono"),
        Col("roles proposed\u2192accepted", _roles)]
    body = table(ordered, cols, row_class=lambda r: "rejected" if r in rejected else "",
                 what="contexts")
    if len(contexts) <= OPEN_CONTEXTS:
        return f"<p class='facts'>{esc(line)}</p>{body}"
    used = ", ".join(sorted({str(c.get("abstract_syntax_name")) for c in accepted}))[:300]
    return (f"<details class='contexts'><summary>{esc(line)} (show all; rejected first)"
            f"</summary>{body}</details>"
            + (f"<p class='facts muted'>accepted: {esc(used)}</p>" if used else ""))


def _counts(r: dict[str, Any]) -> str:
    keys = ("completed", "failed", "warning", "remaining")
    if all(missing(r.get(k)) for k in keys):
        return ""
    return esc(" / ".join("-" if missing(r.get(k)) else str(int(r[k])) for k in keys))


def _what(r: dict[str, Any]) -> str:
    parts = []
    if not missing(r.get("move_destination")):
        parts.append(f"to <b>{esc(r.get('move_destination'))}</b>")
    if not missing(r.get("sop_class_name")):
        parts.append(esc(r.get("sop_class_name")))
    if not missing(r.get("sop_instance_uid")):
        parts.append(f"<span class='muted mono'>{esc(r.get('sop_instance_uid'))}</span>")
    if not missing(r.get("parent_op_index")):
        parts.append(f"sub-operation of #{esc(r.get('parent_assoc_id'))} op "
                     f"{esc(r.get('parent_op_index'))}")
    return " ".join(parts)


def _frames(r: dict[str, Any], tcp_stream: object) -> str:
    """An operation's first and last frames; a click copies the filter of its packets."""
    if missing(r.get("first_frame")) or missing(r.get("last_frame")):
        return ""
    first, last = int(r["first_frame"]), int(r["last_frame"])
    shown = f"{first}" if first == last else f"{first}\u2013{last}"
    return wireshark_code(wireshark.span_filter(tcp_stream, first, last), shown)


def _operations(ops: list[dict[str, Any]], total: int, table_id: str,
                tcp_stream: object = None) -> str:
    return table(ops, [
        num_col("op", "op_index"), text_col("command", "command", cls="tight"),
        num_col("msg id", "message_id"), Col("what", _what),
        Col("status", lambda r: status(r.get("status_hex"), r.get("status_category"),
                                       r.get("status_text"))),
        Col("meaning", lambda r: esc(r.get("status_text") or (
            "" if not missing(r.get("status_hex")) else "no final response in the capture"))),
        text_col("error comment", "error_comment"),
        Col("sub-ops done/ failed/ warn/ left", _counts, cls="num"),
        Col("requested (UTC)", lambda r: esc(when(r.get("request_first_at"))[11:]),
            lambda r: None if missing(r.get("request_first_at")) else float(
                pd.Timestamp(r["request_first_at"]).value), cls="tight"),
        num_col("total", "total_ms", ms), text_col("slow because", "bottleneck_detail"),
        Col("frames", lambda r: _frames(r, tcp_stream),
            lambda r: None if missing(r.get("first_frame")) else float(r["first_frame"]),
            cls="tight")],
        total=total, what="operations", table_id=table_id,
        row_class=lambda r: {"Failure": "error", "Warning": "warning"}.get(
            str(r.get("status_category")), ""), empty="no operations")


def _retrieves(a: dict[str, Any], ops: list[dict[str, Any]], ci: int,
               assoc_rows: Mapping[tuple[Any, int], dict[str, Any]],
               attempts: list[dict[str, Any]]) -> str:
    out = []
    cap = a.get("capture")
    for op in ops:
        if op.get("command") not in ("C-MOVE", "C-GET"):
            continue
        dest = f" to {op['move_destination']}" if not missing(op.get("move_destination")) \
            else ""
        head = (f"{op['command']} (op {op['op_index']}){dest}: final status "
                f"{op.get('status_hex') or 'none'}"
                + (f" ({op['status_text']})" if not missing(op.get("status_text")) else "")
                + f"; {_counts(op) or 'no counts'} (done / failed / warning / left)")
        items = []
        seen: Any = op.get("suboperations_seen")
        bad: Any = op.get("suboperations_failed")
        if not missing(seen):
            items.append(f"{int(seen)} sub-operation C-STORE{'s' if seen != 1 else ''} "
                         f"linked in the capture, {int(bad or 0)} failed"
                         + (f" (link: {op['link']})" if not missing(op.get("link")) else ""))
        callbacks = op.get("callback_assoc_ids")
        for cb in callbacks if isinstance(callbacks, list) else []:
            row = assoc_rows.get((cap, int(cb)))
            label = f"#{cb}"
            if row is not None:
                label += (f" {row.get('calling_ae') or ''} \u2192 {row.get('called_ae') or ''}"
                          f" ({row.get('result')}, {row.get('ending')})")
            items.append(f"callback association <a href='#{anchor(ci, cb)}'>{esc(label)}</a>")
        tried = op.get("callback_attempt_ids")
        for i in tried if isinstance(tried, list) else []:
            for t in (t for t in attempts if t["attempt_id"] == i):
                items.append(esc(
                    f"callback connection attempt {t['client_ip']} \u2192 {t['server_ip']}:"
                    f"{t['server_port']}: {t['outcome']} ({t['syn_count']} SYN"
                    f"{'s' if t['syn_count'] != 1 else ''})"))
        if op.get("command") == "C-MOVE" and not (
                isinstance(callbacks, list) and callbacks) and not (
                isinstance(tried, list) and tried):
            items.append("<span class='bad'>no callback association or connection attempt in "
                         "the capture</span>")
        out.append(f"<li>{esc(head)}<ul>" + "".join(f"<li>{i}</li>" for i in items)
                   + "</ul></li>")
    if not out:
        return ""
    return "<h4>Retrieves and their callbacks</h4><ul class='retrieves'>" + "".join(out) + \
        "</ul>"


class SectionRows:
    """The rows the chosen associations' sections need, each large table read once, a
    batch at a time, keeping only those associations' rows (capped)."""

    def __init__(self, report: ReportLike, keys: list[tuple[Any, int]],
                 n_ops: dict[tuple[Any, int], int]) -> None:
        self.n_ops = n_ops
        self.ops = rows_for(report, "operations", OP_COLUMNS, keys, MAX_OPERATIONS,
                            index="op_index")
        self.contexts = rows_for(report, "presentation_contexts", CONTEXT_COLUMNS, keys,
                                 MAX_CONTEXTS)
        self.findings = rows_for(report, "findings", FINDING_COLUMNS, keys,
                                 MAX_ASSOC_FINDINGS)
        self.throughput = rows_for(report, "throughput", None, keys, 10**9)
        captures = {c for c, _ in keys}
        #: the chosen associations' captures' connection attempts, by capture, as dicts
        #: (made once: a frame filtered per capture and per C-MOVE cost 2 ms a section)
        self.attempts: dict[Any, list[dict[str, Any]]] = {}
        for b in report.batches("connection_attempts"):
            for t in records(b[b["capture"].isin(captures).fillna(False).to_numpy(
                    dtype=bool)]):
                self.attempts.setdefault(t["capture"], []).append(t)


def association_section(data: SectionRows, ci: int, rows: list[dict[str, Any]],
                        assoc_rows: Mapping[tuple[Any, int], dict[str, Any]],
                        caps: list[Any], ladders: int) -> tuple[list[str], int]:
    """The sections of one capture's chosen associations (``rows``); at most ``ladders``
    ladders drawn. Returns the sections and how many ladders are left to draw."""
    cap = rows[0]["capture"]
    attempts = data.attempts.get(cap, [])
    out = []
    for a in rows:
        aid = int(a["assoc_id"])
        key = (cap, aid)
        n_ops = {aid: data.n_ops.get(key, 0)}
        ops = {aid: data.ops[key]}
        contexts = {aid: data.contexts[key]}
        found = {aid: data.findings[key]}
        through = {aid: data.throughput[key]}
        where = f" <span class='muted'>{esc(name(cap))}</span>" if len(caps) > 1 else ""
        out.append(f"<section class='association' id='{anchor(ci, aid)}'>"
                   f"<h3>#{aid} {esc(a.get('calling_ae'))} \u2192 {esc(a.get('called_ae'))}"
                   f"{where}</h3>")
        out.append(_facts(a, n_ops[aid]))
        mine = found[aid]
        if mine:
            rank = {"error": 0, "warning": 1, "note": 2}
            mine = sorted(mine, key=lambda f: rank.get(str(f.get("severity")), 9))
            out.append("<ul class='findings'>" + "".join(
                f"<li><span class='sev {esc(f.get('severity'))}'>{esc(f.get('severity'))}"
                f"</span> <code>{esc(f.get('code'))}</code> {esc(f.get('summary'))}"
                f"{_finding_frame(f, a)}</li>" for f in mine) + "</ul>")
        out.append("<h4>Negotiation</h4>" + _negotiation(contexts[aid], a))
        op_rows = sorted(ops[aid], key=lambda r: int(r["op_index"]))
        if ladders > 0:
            ladders -= 1
            out.append("<h4>Ladder</h4>")
            if n_ops[aid] > MAX_OPERATIONS:
                out.append(f"<p class='notice'>The ladder and the list show the first "
                           f"{MAX_OPERATIONS:,} of {n_ops[aid]:,} operations; the operations "
                           "table holds all.</p>")
            out.append("<div class='picture'>" + pictures.ladder_svg(a, op_rows, mine)
                       + "</div>")
        tp = pd.DataFrame(through[aid]) if through[aid] else None
        if tp is not None and charts.transfer_bytes(tp) >= charts.LARGE_TRANSFER_BYTES:
            labels = {"requestor": str(a.get("calling_ae") or ""),
                      "acceptor": str(a.get("called_ae") or "")}
            out.append("<div class='picture'>" + charts.throughput_svg(tp, labels=labels)
                       + "</div>")
        out.append(_retrieves(a, op_rows, ci, assoc_rows, attempts))
        out.append("<h4>Operations</h4>" + _operations(op_rows, n_ops[aid],
                                                       f"ops-{ci}-{aid}", a.get("tcp_stream")))
        out.append("</section>")
    return out, ladders
