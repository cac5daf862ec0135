"""The page of a two-point comparison (twopoint.py): what `compare -o OUT` writes as
OUT/report.html. The findings, the associations, and for each association a flow drawn
between the two points: a row per DIMSE message, an arrow from the point it passed first
to the other, red where the network between the points held it up, and a cross where it
passed one point only."""

from __future__ import annotations

from typing import Any

import pandas as pd

from .htmlparts import count
from .svg import arrow, document, esc, missing, ns, text
from .twopoint import HELD_MS, Comparison, write_comparison

#: Messages drawn per association (the first ones); the table has them all.
DRAWN = 150
ROW = 22
SLOW_MS = 10.0  # held up this much or more: drawn orange

_CSS = (
    "body{font-family:system-ui,sans-serif;margin:24px;color:#1f2937;max-width:1200px}"
    "h1{font-size:22px}h2{font-size:17px;margin-top:28px}"
    "table{border-collapse:collapse;font-size:13px}td,th{border-bottom:1px solid #e5e7eb;"
    "padding:4px 8px;text-align:left;vertical-align:top}th{background:#f9fafb}"
    ".warning{color:#b45309}.error{color:#b91c1c}.note{color:#374151}"
    ".facts td:first-child{color:#6b7280}.num{text-align:right}"
    "li{margin:6px 0;line-height:1.4}"
)


def write(c: Comparison, out: Any, format: str = "parquet") -> None:
    """The comparison's tables and this page (report.html) into ``out``, whole or not at
    all (twopoint.write_comparison)."""
    write_comparison(c, out, format, {"report.html": page(c)})


def page(c: Comparison) -> str:
    """The whole page, standalone (no script, no external resource)."""
    assocs = c.associations
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<title>tshark-dicom: two capture points</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Two capture points of one path</h1>",
        "<table class='facts'>",
        f"<tr><td>A</td><td>{esc(c.captures[0])}</td></tr>",
        f"<tr><td>B</td><td>{esc(c.captures[1])}</td></tr>",
        f"<tr><td>B's clock minus A's</td><td>{_ms(c.offset_ms, signed=True)}</td></tr>",
        f"<tr><td>transit between the points (fastest, one way)</td>"
        f"<td>{_ms(c.transit_ms)}</td></tr>",
        f"<tr><td>associations in both</td><td>{int((assocs.seen == 'both').sum())} of "
        f"{len(assocs)}</td></tr></table>",
        "<h2>Findings</h2><ul>",
        *(f"<li class='{esc(f.severity)}'><b>{esc(f.severity)}</b> [{esc(f.code)}] "
          f"{esc(f.summary)}</li>" for f in c.findings.itertuples(index=False)),
        "</ul>",
        "<h2>Associations</h2>",
        _table(assocs),
    ]
    for r in assocs.to_dict("records"):
        if r["seen"] == "both":
            parts.append(_flow(r, c.messages))
    parts.append("<p class='note'>Files written by this tool are for analysis only, never "
                 "for clinical use.</p></body></html>")
    return "".join(parts)


def _ms(value: object, signed: bool = False) -> str:
    if missing(value):
        return "unknown"
    v = float(value)  # type: ignore[arg-type]
    return f"{v:+,.1f} ms" if signed else f"{v:,.1f} ms"


def _table(assocs: pd.DataFrame) -> str:
    head = ("<table><tr><th>association</th><th>in A</th><th>in B</th><th>messages "
            "(A / B / both)</th><th>B's clock</th><th>transit</th><th>requestor nearer</th>"
            "<th>held up</th><th>lost between (bytes: requestor's, acceptor's)</th></tr>")
    rows = []
    for r in assocs.to_dict("records"):
        rows.append(
            f"<tr><td>{esc(r['calling_ae'])} &rarr; {esc(r['called_ae'])}</td>"
            f"<td class='num'>{count(r['assoc_id_a'])}</td><td class='num'>"
            f"{count(r['assoc_id_b'])}</td><td class='num'>{count(r['messages_a'])} / "
            f"{count(r['messages_b'])} / {count(r['messages_both'])}</td>"
            f"<td class='num'>{_ms(r['clock_offset_ms'], signed=True)}</td>"
            f"<td class='num'>{_ms(r['transit_ms'])}</td>"
            f"<td>{'' if missing(r['requestor_side']) else esc(str(r['requestor_side']).upper())}"
            f"</td><td class='num'>{_held(r)}</td><td class='num'>"
            f"{count(r['lost_between_requestor_bytes'])}, "
            f"{count(r['lost_between_acceptor_bytes'])}</td></tr>")
    return head + "".join(rows) + "</table>"


def _held(r: dict[Any, Any]) -> str:
    n = r["held_messages"]
    if missing(n) or not n:
        return ""
    return f"{int(n)} (at most {float(r['max_held_ms']):,.1f} ms)"


def _flow(r: dict[Any, Any], messages: pd.DataFrame) -> str:
    """One association's messages between the two points."""
    m = messages[(messages.assoc_id_a == r["assoc_id_a"]) | (
        messages.assoc_id_b == r["assoc_id_b"])]
    m = m.assign(_order=m.started_at_a.fillna(m.started_at_b)).sort_values(
        ["_order"], kind="stable")
    total = len(m)
    m = m.head(DRAWN)
    offset = r["clock_offset_ms"]
    x_a, x_b, width = 330.0, 730.0, 1060.0
    height = 70 + ROW * len(m)
    body = [text(x_a, 24, "A", "head", "middle"), text(x_b, 24, "B", "head", "middle"),
            f'<line x1="{x_a}" y1="34" x2="{x_a}" y2="{height - 10}" stroke="#9ca3af"/>',
            f'<line x1="{x_b}" y1="34" x2="{x_b}" y2="{height - 10}" stroke="#9ca3af"/>',
            text(12, 24, "ms since the first message (A's clock; B's less the offset)",
                 "small")]
    rows = m.to_dict("records")
    t0 = _first_time(rows, offset)
    for i, msg in enumerate(rows):
        y = 50 + ROW * i
        label = esc(f"{msg['command']}" + ("" if missing(msg["message_id"]) else
                                            f" {int(msg['message_id'])}"))
        body.append(text(12, y + 4, label, "mono"))
        ta = _rel(msg["ended_at_a"], 0.0, t0)
        tb = _rel(msg["ended_at_b"], offset, t0)
        if ta is not None:
            body.append(text(x_a - 8, y + 4, f"{ta:,.1f}", "small", "end"))
        if tb is not None:
            body.append(text(x_b + 8, y + 4, f"{tb:,.1f}", "small"))
        if msg["seen"] != "both":
            x = x_a if msg["seen"] == "a" else x_b
            other = "B" if msg["seen"] == "a" else "A"
            body.append(text(x + (30 if x == x_a else -30), y + 4, f"\u2716 not in {other}",
                             "head", "start" if x == x_a else "end", fill="#b91c1c"))
            continue
        held = None if missing(msg["held_ms"]) else float(msg["held_ms"])
        colour = ("#b91c1c" if held is not None and held >= HELD_MS else
                  "#d97706" if held is not None and held >= SLOW_MS else "#6b7280")
        x0, x1 = (x_a, x_b) if msg["first_point"] == "a" else (x_b, x_a)
        body.append(arrow(x0, y - 4, x1, y + 6, colour, 1.6))
        if held is not None and held >= SLOW_MS:
            body.append(text((x_a + x_b) / 2, y - 6, f"held up {held:,.1f} ms", "small halo",
                             "middle", fill=colour))
    more = (f" (the first {DRAWN} of {total} messages; the table has all)"
            if total > DRAWN else "")
    title = (f"{r['calling_ae']} \u2192 {r['called_ae']}: association {count(r['assoc_id_a'])} "
             f"in A, {count(r['assoc_id_b'])} in B")
    return (f"<h2>{esc(title)}</h2><p>Each message from the point it passed first to the "
            f"other, at the time it was whole there; red: held up {HELD_MS:.0f} ms or more "
            f"beyond the fastest transit{esc(more)}.</p>"
            + document(width, height, "twopoint", esc(title), body))


def _first_time(rows: list[dict[Any, Any]], offset: object) -> float | None:
    times = [t for r in rows for t in (_abs(r["started_at_a"], 0.0),
                                       _abs(r["started_at_b"], offset)) if t is not None]
    return min(times) if times else None


def _abs(ts: object, offset: object) -> float | None:
    """A time in ms since the epoch in A's clock (B's with the offset taken off)."""
    t = ns(ts)
    if t is None:
        return None
    return t / 1e6 - (0.0 if missing(offset) else float(offset))  # type: ignore[arg-type]


def _rel(ts: object, offset: object, t0: float | None) -> float | None:
    t = _abs(ts, offset)
    return None if t is None or t0 is None else t - t0
