"""The findings as a person reads them: grouped by association, most severe first, in plain
sentences; a C-MOVE shown with its callback associations, connection attempts and
sub-operations beneath it. Reads only the tables, so it works the same on a fresh analysis
and on an OUT folder written before (report.load)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from .safe import visible_lines
from .tables import SEVERITIES, ReportLike

RANK = {s: i for i, s in enumerate(SEVERITIES)}
FAIL_ON = ("warning", "error")


def _v(value: Any) -> Any:
    return None if value is None or value is pd.NA or (isinstance(value, float)
                                                       and pd.isna(value)) else value


def _name(capture: object) -> str:
    return Path(str(capture)).name


def _assoc_line(a: dict[str, Any]) -> str:
    def ep(ip: Any, port: Any) -> str:
        if _v(ip) is None:
            return "?"
        host = f"[{ip}]" if ":" in str(ip) else str(ip)
        return f"{host}:{port}" if _v(port) is not None else host
    return (f"association #{a['assoc_id']}: {_v(a['calling_ae']) or '?'} -> "
            f"{_v(a['called_ae']) or '?'} ({ep(a['requestor_ip'], a['requestor_port'])} -> "
            f"{ep(a['acceptor_ip'], a['acceptor_port'])}), {a['result']}, {a['ending']}"
            f"{_tls_text(a)}")


def _tls_text(a: dict[str, Any]) -> str:
    """``, TLS 1.3`` for an association over TLS (``, TLS 1.3, not decrypted``)."""
    if _v(a.get("tls")) is not True:
        return ""
    text = f", {_v(a.get('tls_version')) or 'TLS'}"
    return text if _v(a.get("tls_decrypted")) else text + ", not decrypted"


def worst_severity(report: ReportLike) -> str | None:
    """The most severe finding's severity, or None without findings."""
    found = [s for s in SEVERITIES if (report.findings["severity"] == s).any()]
    return found[0] if found else None


def render(report: ReportLike) -> str:
    """The whole diagnosis as text: captures in the order given, and in each, the findings
    that belong to no association first, then associations by their worst finding."""
    f, a, ops = report.findings, report.associations, report.operations
    attempts = report.connection_attempts
    lines: list[str] = []
    captures = list(dict.fromkeys([*a["capture"].tolist(), *f["capture"].tolist()]))
    for cap in captures:
        cf = f[f["capture"] == cap]
        ca = a[a["capture"] == cap]
        counts = ", ".join(f"{int((cf['severity'] == s).sum())} {s}"
                           f"{'' if (cf['severity'] == s).sum() == 1 else 's'}"
                           for s in SEVERITIES)
        lines.append(f"{_name(cap)}: {len(ca)} association{'' if len(ca) == 1 else 's'}, "
                     f"{counts}")
        loose = cf[cf["assoc_id"].isna()]
        for row in _sorted(loose).to_dict("records"):
            lines.append(f"  {row['severity']}: [{row['code']}] {row['summary']}")
        worst = {aid: min(RANK.get(s, 9) for s in group["severity"])
                 for aid, group in cf[cf["assoc_id"].notna()].groupby("assoc_id")}
        order = sorted(ca.to_dict("records"),
                       key=lambda r: (worst.get(r["assoc_id"], 9), r["assoc_id"]))
        cops = ops[ops["capture"] == cap]
        catt = attempts[attempts["capture"] == cap]
        quiet = 0
        for assoc in order:
            aid = assoc["assoc_id"]
            mine = cf[cf["assoc_id"] == aid]
            moves = cops[(cops["assoc_id"] == aid) & cops["command"].isin(["C-MOVE", "C-GET"])]
            if mine.empty and moves.empty:
                quiet += 1
                continue
            lines.append("  " + _assoc_line(assoc))
            lines.extend(_finding_lines(_sorted(mine)))
            for op in moves.to_dict("records"):
                lines.extend(_retrieve_lines(op, ca, cops, catt))
        if quiet > 0:
            lines.append(f"  ({quiet} other association{'s' if quiet > 1 else ''} without "
                         "findings)")
    return visible_lines(lines)  # values from the traffic cannot break a line or the terminal


#: Findings of one code on one association shown before the rest are counted (a proposal
#: of 128 contexts can have a hundred rejected).
SHOWN_PER_CODE = 3


def _finding_lines(findings: pd.DataFrame) -> list[str]:
    lines: list[str] = []
    shown: dict[str, int] = {}
    rows = findings.to_dict("records")
    total = findings["code"].value_counts().to_dict()
    for row in rows:
        code = row["code"]
        shown[code] = shown.get(code, 0) + 1
        if shown[code] <= SHOWN_PER_CODE:
            lines.append(f"    {row['severity']}: [{code}] {row['summary']}")
        elif shown[code] == SHOWN_PER_CODE + 1:
            more = total[code] - SHOWN_PER_CODE
            lines.append(f"    {row['severity']}: [{code}] ... and {more} more like these "
                         "(see the findings table)")
    return lines


def _sorted(findings: pd.DataFrame) -> pd.DataFrame:
    return findings.assign(_r=findings["severity"].map(RANK)).sort_values(
        ["_r", "frame"], kind="stable", na_position="last")


def _retrieve_lines(op: dict[str, Any], assocs: pd.DataFrame, ops: pd.DataFrame,
                    attempts: pd.DataFrame) -> list[str]:
    counts = ", ".join(f"{_v(op[k])} {k}" for k in ("completed", "failed", "warning")
                       if _v(op[k]) is not None)
    dest = f" to {op['move_destination']}" if _v(op["move_destination"]) else ""
    out = [f"    {op['command']} (operation {op['op_index']}){dest}: final status "
           f"{_v(op['status_hex']) or 'none'}" + (f", {counts}" if counts else "")
           + (f"; linked by {op['link']}" if _v(op["link"]) else "")]
    subs = ops[(ops["parent_assoc_id"] == op["assoc_id"])
               & (ops["parent_op_index"] == op["op_index"])]
    if op["command"] == "C-GET":
        failed = int((subs["status_category"] == "Failure").sum())
        out.append(f"      on this association: {len(subs)} C-STORE sub-operation"
                   f"{'s' if len(subs) != 1 else ''}, {failed} failed")
        return out
    callbacks = op["callback_assoc_ids"]
    for cb in (callbacks if isinstance(callbacks, list) else []):
        row = assocs[assocs["assoc_id"] == cb]
        if row.empty:
            continue
        mine = subs[subs["assoc_id"] == cb]
        failed = int((mine["status_category"] == "Failure").sum())
        out.append(f"      callback {_assoc_line(row.iloc[0].to_dict())}: {len(mine)} "
                   f"C-STORE{'s' if len(mine) != 1 else ''}, {failed} failed")
    tried = op.get("callback_attempt_ids")
    for i in (tried if isinstance(tried, list) else []):
        t = attempts[attempts["attempt_id"] == i]
        if t.empty:
            continue
        t0 = t.iloc[0]
        out.append(f"      callback attempt {t0['client_ip']} -> {t0['server_ip']}:"
                   f"{t0['server_port']}: {t0['outcome']} ({t0['syn_count']} SYN"
                   f"{'s' if t0['syn_count'] != 1 else ''})")
    if not (isinstance(callbacks, list) and callbacks) and not (
            isinstance(tried, list) and tried):
        out.append("      no callback association or connection attempt in the capture")
    return out
