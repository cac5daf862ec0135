"""The findings as a person reads them: grouped by association, most severe first, in plain
sentences; a C-MOVE shown with its callback associations, connection attempts and
sub-operations beneath it. Reads only the tables, so it works the same on a fresh analysis
and on an OUT folder written before (report.load)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from . import wireshark
from .records import endpoint_text
from .safe import visible_lines
from .schemas import SEVERITIES, ReportLike

RANK = {s: i for i, s in enumerate(SEVERITIES)}
FAIL_ON = ("warning", "error")


def _v(value: Any) -> Any:
    return None if value is None or value is pd.NA or (isinstance(value, float)
                                                       and pd.isna(value)) else value


def _name(capture: object) -> str:
    return Path(str(capture)).name


def _endpoint(ip: Any, port: Any) -> str | None:
    """``host:port`` (records.endpoint_text), the host alone without a port, None
    without a host."""
    if _v(ip) is None:
        return None
    if _v(port) is None:
        return f"[{ip}]" if ":" in str(ip) else str(ip)
    return endpoint_text((str(ip), int(port)))


def _assoc_line(a: dict[str, Any]) -> str:
    requestor = _endpoint(a["requestor_ip"], a["requestor_port"]) or "?"
    acceptor = _endpoint(a["acceptor_ip"], a["acceptor_port"]) or "?"
    return (f"association #{a['assoc_id']}: {_v(a['calling_ae']) or '?'} -> "
            f"{_v(a['called_ae']) or '?'} ({requestor} -> {acceptor}), {a['result']}, "
            f"{a['ending']}{_tls_text(a)}")


def _wireshark_line(a: dict[str, Any]) -> list[str]:
    """The association's filter for Wireshark, and what else it needs there
    (`wireshark.association_hint`)."""
    hint = wireshark.association_hint(a)
    return [] if hint is None else [f"    in Wireshark: {hint}"]


def _stream_text(stream: Any) -> str:
    shown = wireshark.stream_filter(stream)
    return "" if shown is None else f"; {shown}"


def _tls_text(a: dict[str, Any]) -> str:
    """``, TLS 1.3`` for an association over TLS (``, TLS 1.3, not decrypted``)."""
    if _v(a.get("tls")) is not True:
        return ""
    text = f", {_v(a.get('tls_version')) or 'TLS'}"
    return text if _v(a.get("tls_decrypted")) else text + ", not decrypted"


def worst_severity(report: ReportLike) -> str | None:
    """The most severe finding's severity, or None without findings. A capture that could
    not be analysed counts as an error: a monitoring run (``--fail-on``) must not pass
    over a capture it could not read."""
    caps = report.table("captures")
    if "status" in caps and (caps["status"] == "failed").any():
        return SEVERITIES[0]
    found = [s for s in SEVERITIES if (report.findings["severity"] == s).any()]
    return found[0] if found else None


#: The columns `render` reads of each table (the command line reads no others of an OUT
#: folder): a test renders from these alone.
READS: dict[str, list[str]] = {
    "captures": ["capture", "status", "error"],
    "findings": ["capture", "assoc_id", "severity", "code", "summary", "frame"],
    "associations": ["capture", "assoc_id", "tcp_stream", "calling_ae", "called_ae",
                     "requestor_ip", "requestor_port", "acceptor_ip", "acceptor_port",
                     "result", "ending", "tls", "tls_version", "tls_decrypted"],
    "operations": ["capture", "assoc_id", "op_index", "command", "move_destination",
                   "status_hex", "status_category", "completed", "failed", "warning", "link",
                   "parent_assoc_id", "parent_op_index", "callback_assoc_ids",
                   "callback_attempt_ids"],
    "connection_attempts": ["capture", "attempt_id", "tcp_stream", "client_ip", "server_ip",
                            "server_port", "outcome", "syn_count"],
}
RETRIEVES = ("C-MOVE", "C-GET")


def _records(df: pd.DataFrame, table: str, plain: bool = False
             ) -> dict[Any, list[dict[str, Any]]]:
    """A table's rows as dicts (only `READS` columns; ``plain``: missing values None), by
    capture, in their order: made once, where filtering each table again for every capture
    and every association took 35 s for an archive of 2,000 captures."""
    out: dict[Any, list[dict[str, Any]]] = {}
    for row in df[READS[table]].to_dict("records"):
        out.setdefault(row["capture"], []).append(
            {str(k): _v(v) for k, v in row.items()} if plain else
            {str(k): v for k, v in row.items()})
    return out


def _per_capture(report: ReportLike, plain: bool = False
                 ) -> Iterator[tuple[Any, str | None, list[dict[str, Any]],
                                     list[dict[str, Any]]]]:
    """Each capture in the order given (that of the captures table, then any other the
    tables name): why it could not be analysed (None: it was), and its findings' and
    associations' rows (`_records`)."""
    f, a = report.findings, report.associations
    caps = report.table("captures")
    failed = {c: e for c, st, e in zip(caps["capture"], caps["status"], caps["error"],
                                       strict=True) if st == "failed"} \
        if "status" in caps and len(caps) else {}
    findings = _records(f, "findings", plain=plain)
    assocs = _records(a, "associations", plain=plain)
    for cap in dict.fromkeys([*caps["capture"].tolist(), *a["capture"].tolist(),
                              *f["capture"].tolist()]):
        if cap in failed:
            yield cap, str(_v(failed[cap]) or "unknown error"), [], []
        else:
            yield cap, None, findings.get(cap, []), assocs.get(cap, [])


def render(report: ReportLike) -> str:
    """The whole diagnosis as text: captures in the order given (that of the captures
    table, then any other the tables name), a capture that could not be analysed with
    why, and in each capture the findings that belong to no association first, then
    associations by their worst finding."""
    ops = report.operations
    # of the operations, the retrieves and the sub-operations they caused
    ops = ops[(ops["command"].isin(RETRIEVES) | ops["parent_assoc_id"].notna()).fillna(
        False).to_numpy(dtype=bool)]
    operations = _records(ops, "operations", plain=True)
    attempts = _records(report.connection_attempts, "connection_attempts")
    lines: list[str] = []
    for cap, error, cf, ca in _per_capture(report):
        if error is not None:
            why = error.removeprefix(f"{cap}: ")  # the error names the file already
            lines.append(f"{_name(cap)}: could not be analysed: {why}")
            continue
        if not cf and not ca:
            continue  # analysed, with nothing to say (a capture without DICOM has a finding)
        n = Counter(r["severity"] for r in cf)
        counts = ", ".join(f"{n[s]} {s}{'' if n[s] == 1 else 's'}" for s in SEVERITIES)
        lines.append(f"{_name(cap)}: {len(ca)} association{'' if len(ca) == 1 else 's'}, "
                     f"{counts}")
        for row in _sorted([r for r in cf if _v(r["assoc_id"]) is None]):
            lines.append(f"  {row['severity']}: [{row['code']}] {row['summary']}{_frame(row)}")
        by_assoc: dict[Any, list[dict[str, Any]]] = {}
        for r in cf:
            if _v(r["assoc_id"]) is not None:
                by_assoc.setdefault(r["assoc_id"], []).append(r)
        worst = {aid: min(RANK.get(r["severity"], 9) for r in group)
                 for aid, group in by_assoc.items()}
        order = sorted(ca, key=lambda r: (worst.get(r["assoc_id"], 9), r["assoc_id"]))
        cops = operations.get(cap, [])
        retrieves: dict[Any, list[dict[str, Any]]] = {}
        for op in cops:
            if op["command"] in RETRIEVES:
                retrieves.setdefault(op["assoc_id"], []).append(op)
        by_id = {r["assoc_id"]: r for r in reversed(ca)}  # the first of an id, as filtered
        tried = {t["attempt_id"]: t for t in reversed(attempts.get(cap, []))}
        quiet = 0
        for assoc in order:
            aid = assoc["assoc_id"]
            mine = by_assoc.get(aid, [])
            moves = retrieves.get(aid, [])
            if not mine and not moves:
                quiet += 1
                continue
            lines.append("  " + _assoc_line(assoc))
            lines.extend(_wireshark_line(assoc))
            lines.extend(_finding_lines(_sorted(mine)))
            for op in moves:
                lines.extend(_retrieve_lines(op, by_id, cops, tried))
        if quiet > 0:
            lines.append(f"  ({quiet} other association{'s' if quiet > 1 else ''} without "
                         "findings)")
    return visible_lines(lines)  # values from the traffic cannot break a line or the terminal


def records(report: ReportLike) -> list[dict[str, Any]]:
    """The diagnosis as JSON Lines records (``diagnose --json``), in the order `render`
    tells it: per capture a ``capture`` record (its associations and findings counted; or
    ``capture-failed`` with the error), then one ``finding`` record per finding, with its
    association's AE titles, addresses, result and ending where it has one. Every finding
    is there (the text shows three of a code per association)."""
    out: list[dict[str, Any]] = []
    for cap, error, cf, ca in _per_capture(report, plain=True):
        if error is not None:
            out.append({"event": "capture-failed", "capture": str(cap), "error": error})
            continue
        n = Counter(r["severity"] for r in cf)
        out.append({"event": "capture", "capture": str(cap), "associations": len(ca),
                    **{f"{s}s": n[s] for s in SEVERITIES}})
        by_id = {r["assoc_id"]: r for r in reversed(ca)}
        for row in _sorted(cf):
            assoc = by_id.get(row["assoc_id"]) if row["assoc_id"] is not None else None
            record: dict[str, Any] = {
                "event": "finding", "capture": str(cap), "severity": row["severity"],
                "code": row["code"], "summary": row["summary"], "frame": _int(row["frame"]),
                "assoc_id": _int(row["assoc_id"])}
            if assoc is not None:
                record.update(
                    tcp_stream=_int(assoc["tcp_stream"]), calling_ae=assoc["calling_ae"],
                    called_ae=assoc["called_ae"],
                    requestor=_endpoint(assoc["requestor_ip"], assoc["requestor_port"]),
                    acceptor=_endpoint(assoc["acceptor_ip"], assoc["acceptor_port"]),
                    result=assoc["result"], ending=assoc["ending"])
            out.append(record)
    return out


def _int(value: Any) -> int | None:
    return None if _v(value) is None else int(value)


#: Findings of one code on one association shown before the rest are counted (a proposal
#: of 128 contexts can have a hundred rejected).
SHOWN_PER_CODE = 3


def _finding_lines(findings: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    shown: dict[str, int] = {}
    total = Counter(row["code"] for row in findings)
    for row in findings:
        code = row["code"]
        shown[code] = shown.get(code, 0) + 1
        if shown[code] <= SHOWN_PER_CODE:
            lines.append(f"    {row['severity']}: [{code}] {row['summary']}{_frame(row)}")
        elif shown[code] == SHOWN_PER_CODE + 1:
            more = total[code] - SHOWN_PER_CODE
            lines.append(f"    {row['severity']}: [{code}] ... and {more} more like these "
                         "(see the findings table)")
    return lines


def _frame(finding: dict[str, Any]) -> str:
    """`` (frame 57)``: the packet a finding points at, as Wireshark numbers it."""
    frame = _v(finding.get("frame"))
    return "" if frame is None else f" (frame {frame})"


def _sorted(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Most severe first (an unknown severity last), then by frame (none last); stable."""
    def key(row: dict[str, Any]) -> tuple[bool, int, bool, int]:
        rank, frame = RANK.get(row["severity"]), _v(row["frame"])
        return rank is None, rank or 0, frame is None, frame or 0
    return sorted(findings, key=key)


def _retrieve_lines(op: dict[str, Any], assocs: dict[Any, dict[str, Any]],
                    ops: list[dict[str, Any]], attempts: dict[Any, dict[str, Any]]
                    ) -> list[str]:
    counts = ", ".join(f"{op[k]} {k}" for k in ("completed", "failed", "warning")
                       if op[k] is not None)
    dest = f" to {op['move_destination']}" if op["move_destination"] else ""
    out = [f"    {op['command']} (operation {op['op_index']}){dest}: final status "
           f"{op['status_hex'] or 'none'}" + (f", {counts}" if counts else "")
           + (f"; linked by {op['link']}" if op["link"] else "")]
    subs = [o for o in ops if o["parent_assoc_id"] == op["assoc_id"]
            and o["parent_op_index"] == op["op_index"]]
    if op["command"] == "C-GET":
        failed = sum(o["status_category"] == "Failure" for o in subs)
        out.append(f"      on this association: {len(subs)} C-STORE sub-operation"
                   f"{'s' if len(subs) != 1 else ''}, {failed} failed")
        return out
    callbacks = op["callback_assoc_ids"]
    for cb in (callbacks if isinstance(callbacks, list) else []):
        row = assocs.get(cb)
        if row is None:
            continue
        mine = [o for o in subs if o["assoc_id"] == cb]
        failed = sum(o["status_category"] == "Failure" for o in mine)
        out.append(f"      callback {_assoc_line(row)}: {len(mine)} "
                   f"C-STORE{'s' if len(mine) != 1 else ''}, {failed} failed"
                   f"{_stream_text(row.get('tcp_stream'))}")
    tried = op["callback_attempt_ids"]
    for i in (tried if isinstance(tried, list) else []):
        t0 = attempts.get(i)
        if t0 is None:
            continue
        out.append(f"      callback attempt {t0['client_ip']} -> {t0['server_ip']}:"
                   f"{t0['server_port']}: {t0['outcome']} ({t0['syn_count']} SYN"
                   f"{'s' if t0['syn_count'] != 1 else ''}{_stream_text(t0.get('tcp_stream'))})")
    if not (isinstance(callbacks, list) and callbacks) and not (
            isinstance(tried, list) and tried):
        out.append("      no callback association or connection attempt in the capture")
    return out
