"""Pictures of the traffic as inline SVG: a DICOM ladder per association, a timeline of a
capture's associations, and throughput over time.

Pure functions from the tables (SPEC.md: associations, operations, findings, throughput) to
SVG text: no JavaScript, no external resources, and every text taken from the traffic goes
through `svg.esc` (HTML-escaped, control characters shown as ``\\x00``), so a hostile AE
title is drawn, never run. Big inputs are capped and the picture says so.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping
from typing import Any, cast

import pandas as pd

from . import svg

MAX_LADDER_OPERATIONS = 200  # operations drawn in one ladder; the table holds all
MAX_TIMELINE_ASSOCIATIONS = 300  # bars drawn in one timeline; beyond, an aggregate strip
MAX_THROUGHPUT_POINTS = 600  # bins per sender; finer series are re-binned
LARGE_TRANSFER_BYTES = 1_000_000  # a throughput chart is worth drawing from here on
BREAK_MS = 1000.0  # a ladder interval this long is drawn as a broken axis

BOTTLENECK_COLOURS = {"scu": "#7c3aed", "network": "#d97706", "scp": "#dc2626"}
SEVERITY_COLOURS = {"error": "#dc2626", "warning": "#d97706", "note": "#2563eb"}
SENDER_COLOURS = {"requestor": "#2563eb", "acceptor": "#ea580c"}
_STATUS_COLOURS = {"Failure": "#b91c1c", "Warning": "#b45309", "Cancel": "#6b7280"}
_NEUTRAL = "#1e3a5f"
_SETUP, _ACTIVE, _RELEASE, _REJECTED = "#94a3b8", "#3b82f6", "#cbd5e1", "#f87171"


# ---------------------------------------------------------------- table values


def _records(df: pd.DataFrame | None) -> list[dict[str, Any]]:
    if df is None or df.empty:
        return []
    return [{str(k): v for k, v in rec.items()} for rec in df.to_dict("records")]


def _row(row: Mapping[str, Any] | pd.Series) -> dict[str, Any]:
    return {str(k): v for k, v in dict(row).items()}


def for_association(df: pd.DataFrame | None, assoc: Mapping[str, Any]) -> pd.DataFrame | None:
    """The rows of ``df`` that belong to ``assoc`` (by capture and assoc_id where known)."""
    if df is None or df.empty:
        return df
    mask = pd.Series(True, index=df.index)
    for key in ("capture", "assoc_id"):
        value = assoc.get(key)
        if key in df.columns and not svg.missing(value):
            mask &= (df[key] == value).fillna(False).astype(bool)
    return df[mask]














def _endpoint(ip: object, port: object) -> str:
    host = svg.to_str(ip) or "?"
    if ":" in host:
        host = f"[{host}]"
    port_i = svg.to_int(port)
    return f"{host}:{port_i}" if port_i is not None else host


# ---------------------------------------------------------------- ladder

_W = 980
_XL, _XR = 300.0, 700.0  # requestor lane, acceptor lane
_TOP = 118.0  # y of the first event
_MIN_H, _BREAK_H = 24.0, 64.0
_OP_TIMES = ("request_first_at", "request_complete_at", "response_first_at",
             "response_complete_at")


def _interval_height(d_ns: int) -> float:
    """Height of the gap between two consecutive events: logarithmic in the duration, so a
    0.2 ms transfer and a 900 ms wait are both readable; longer ones are broken."""
    ms = d_ns / 1e6
    if ms >= BREAK_MS:
        return _BREAK_H
    return _MIN_H + 14.0 * math.log10(1.0 + ms)


class _Scale:
    """Piecewise-linear capture time -> y through every event time."""

    def __init__(self, times: list[int], top: float) -> None:
        self.times = sorted(set(times))
        self.ys = [top]
        for prev, cur in zip(self.times, self.times[1:], strict=False):
            self.ys.append(self.ys[-1] + _interval_height(cur - prev))

    def __call__(self, t: int) -> float:
        i = bisect_right(self.times, t) - 1
        if i < 0:
            return self.ys[0]
        if i >= len(self.times) - 1:
            return self.ys[-1]
        frac = (t - self.times[i]) / (self.times[i + 1] - self.times[i])
        return self.ys[i] + frac * (self.ys[i + 1] - self.ys[i])

    def breaks(self) -> list[tuple[float, float]]:
        """(y centre, duration ms) of every interval drawn as a broken axis."""
        out = []
        for i in range(len(self.times) - 1):
            ms = (self.times[i + 1] - self.times[i]) / 1e6
            if ms >= BREAK_MS:
                out.append(((self.ys[i] + self.ys[i + 1]) / 2, ms))
        return out


def _op_times(op: Mapping[str, Any]) -> list[int | None]:
    t = [svg.ns(op.get(c)) for c in _OP_TIMES]
    if t[0] is None:
        t[0] = t[1]
    if t[1] is None:
        t[1] = t[0]
    if t[2] is None:
        t[2] = t[3]
    if t[3] is None:
        t[3] = t[2]
    return t


def _finding_marks(findings: pd.DataFrame | None, assoc: Mapping[str, Any],
                   ops: list[dict[str, Any]]) -> tuple[dict[int, list[tuple[str, str, str, bool]]],
                                                       list[tuple[str, str, str]]]:
    """Findings of this association: per op_index (severity, code, summary, on_response),
    and those that point at no operation."""
    per_op: dict[int, list[tuple[str, str, str, bool]]] = {}
    loose: list[tuple[str, str, str]] = []
    rows = _records(for_association(findings, assoc))
    exact: dict[int, tuple[int, bool]] = {}
    spans: list[tuple[int, int, int]] = []
    for op in ops:
        idx = svg.to_int(op.get("op_index"))
        if idx is None:
            continue
        rq, final = svg.to_int(op.get("request_index")), svg.to_int(op.get("final_response_index"))
        if rq is not None:
            exact[rq] = (idx, False)
            if final is not None:
                spans.append((rq, final, idx))
        if final is not None:
            exact[final] = (idx, True)
        cancel = svg.to_int(op.get("cancel_index"))
        if cancel is not None:
            exact[cancel] = (idx, False)
    for f in rows:
        item = (svg.to_str(f.get("severity")) or "note", svg.to_str(f.get("code")) or "",
                svg.to_str(f.get("summary")) or "")
        msg = svg.to_int(f.get("msg_index"))
        hit = exact.get(msg) if msg is not None else None
        if hit is None and msg is not None:
            hit = next(((i, True) for lo, hi, i in spans if lo <= msg <= hi), None)
        if hit is None:
            loose.append(item)
        else:
            per_op.setdefault(hit[0], []).append((*item, hit[1]))
    return per_op, loose


def ladder_svg(assoc_row: Mapping[str, Any] | pd.Series, operations: pd.DataFrame,
               findings: pd.DataFrame | None = None, *,
               max_operations: int = MAX_LADDER_OPERATIONS) -> str:
    """A DICOM ladder diagram of one association: requestor lane left, acceptor lane right,
    time downwards on a compressed scale; each operation (PS3.7 DIMSE request and its
    responses) one ``<g data-op=...>`` with a request and a response arrow (``data-arrow``).

    ``operations`` and ``findings`` may hold other associations too: only the rows with this
    association's capture and assoc_id are drawn. At most ``max_operations`` are drawn; the
    picture says how many there were.
    """
    a = _row(assoc_row)
    sub = for_association(operations, a)
    ops = sorted(_records(sub), key=lambda r: (svg.to_int(r.get("op_index")) or 0))
    total = len(ops)
    timed = [op for op in ops if any(t is not None for t in _op_times(op))]
    untimed = total - len(timed)
    shown = timed[:max_operations]
    truncated = len(timed) > len(shown)
    marks, loose = _finding_marks(findings, a, shown)

    requested, responded = svg.ns(a.get("requested_at")), svg.ns(a.get("responded_at"))
    ended = svg.ns(a.get("ended_at"))
    times: list[int] = []
    for op in shown:
        times.extend(t for t in _op_times(op) if t is not None)
    times.extend(t for t in (requested, responded) if t is not None)
    if ended is not None and not truncated:
        times.append(ended)
    if not times:
        return svg.empty("ladder", "no timed events in this association")
    top = _TOP + (18.0 if loose else 0.0)
    y = _Scale(times, top)
    origin = requested if requested is not None else min(times)
    calling, called = svg.esc(a.get("calling_ae"), 32), svg.esc(a.get("called_ae"), 32)
    label = f"DICOM ladder: {calling} to {called}"

    body: list[str] = []
    bottom = y.ys[-1] + 34
    # headers and lanes
    for x, role, ae, ep in ((_XL, "requestor \u00b7 calling AE", calling,
                             _endpoint(a.get("requestor_ip"), a.get("requestor_port"))),
                            (_XR, "acceptor \u00b7 called AE", called,
                             _endpoint(a.get("acceptor_ip"), a.get("acceptor_port")))):
        body.append(f'<rect x="{x - 115:.0f}" y="8" width="230" height="62" rx="6" '
                    'fill="#f1f5f9" stroke="#cbd5e1"/>')
        body.append(svg.text(x, 25, svg.esc(role), "small", "middle"))
        body.append(svg.text(x, 44, ae or "(empty)", "head", "middle"))
        body.append(svg.text(x, 61, svg.esc(ep), "mono", "middle"))
        body.append(f'<line x1="{x:.0f}" y1="70" x2="{x:.0f}" y2="{bottom:.0f}" '
                    'stroke="#94a3b8" stroke-width="1.5"/>')
    body.append(svg.text(10, 25, "time", "small"))
    body.append(svg.text(10, 40, "since A-ASSOCIATE-RQ" if requested is not None
                      else "since first event", "small"))
    facts = []
    rtt = svg.num(a.get("rtt_ms"))
    if rtt is not None:
        facts.append(f"RTT {svg.fmt_ms(rtt)}")
    point = svg.to_str(a.get("capture_point"))
    if point:
        facts.append(f"captured {point}")
    for i, fact in enumerate(facts):
        body.append(svg.text(_W - 10, 25 + 15 * i, svg.esc(fact, 24), "small", "end"))
    if loose:
        summary = "; ".join(f"{s} {c}: {t}" for s, c, t in loose)
        worst = min(loose, key=lambda f: ("error", "warning", "note").index(f[0])
                    if f[0] in ("error", "warning", "note") else 3)
        body.append(f'<g data-findings="association"><title>{svg.esc(summary)}</title>'
                    + _mark(118, 96, worst[0])
                    + svg.text(132, 100, svg.esc(
                        "association: " + ", ".join(c for _, c, _ in loose), 110), "small")
                    + "</g>")

    # association setup
    if requested is not None:
        ry = y(requested)
        body.append(svg.arrow(_XL, ry, _XR, ry, "#475569", 1.4, ' data-arrow="associate-rq"'))
        body.append(svg.text(_XL + 12, ry - 6, "A-ASSOCIATE-RQ", "small halo"))
        body.append(svg.text(10, ry + 4, "0", "mono"))
    if responded is not None:
        result = svg.to_str(a.get("result")) or ""
        name = {"rejected": "A-ASSOCIATE-RJ"}.get(result, "A-ASSOCIATE-AC")
        setup = svg.num(a.get("setup_ms"))
        text = name + (f" \u00b7 setup {svg.fmt_ms(setup)}" if setup is not None else "")
        ay = y(responded)
        colour = "#b91c1c" if result == "rejected" else "#475569"
        tip = svg.to_str(a.get("reject_text"))
        body.append((f"<g><title>{svg.esc(tip)}</title>" if tip else "<g>")
                    + svg.arrow(_XR, ay, _XL, ay, colour, 1.4, ' data-arrow="associate-ac"')
                    + svg.text(_XR - 12, ay - 6, svg.esc(text), "small halo", "end", colour)
                    + "</g>")
        body.append(svg.text(10, ay + 4, svg.esc(f"+{_offset(responded, origin)}"), "mono"))

    last_label = -100.0
    floor = y(responded) if responded is not None else top
    for op in shown:
        body.append(_ladder_op(op, y, floor, marks.get(svg.to_int(op.get("op_index")) or 0, [])))
        floor = max(floor, *(y(t) for t in _op_times(op) if t is not None))
        t0 = _op_times(op)[0]
        if t0 is not None:
            ty = y(t0)
            if ty - last_label >= 13:
                body.append(svg.text(10, ty + 4, svg.esc(f"+{_offset(t0, origin)}"), "mono"))
                last_label = ty

    # broken axis
    for cy, ms in y.breaks():
        for x in (_XL, _XR):
            body.append(f'<rect x="{x - 9:.0f}" y="{cy - 6:.1f}" width="18" height="12" '
                        'fill="#fff"/>')
            for dy in (-5, 1):
                body.append(f'<line x1="{x - 9:.0f}" y1="{cy + dy + 4:.1f}" x2="{x + 9:.0f}" '
                            f'y2="{cy + dy - 2:.1f}" stroke="#64748b" stroke-width="1.5"/>')
        body.append(svg.text(10, cy + 4, svg.esc(f"// {svg.fmt_ms(ms)}"), "mono note"))

    # the end
    end_y = y.ys[-1] + 22
    if truncated:
        note = (f"showing {len(shown):,} of {total:,} operations; "
                "the operations table holds all")
        body.append(svg.text((_XL + _XR) / 2, end_y + 4, svg.esc(note), "note", "middle",
                          weight="600"))
    else:
        ending = svg.to_str(a.get("ending"))
        if ended is not None and ending is not None:
            ey = y(ended)
            word = {"released": "A-RELEASE", "aborted": "A-ABORT", "closed": "TCP closed",
                    "open": "capture ends"}.get(ending, ending)
            colour = "#b91c1c" if ending == "aborted" else "#475569"
            tip = svg.to_str(a.get("abort_text"))
            body.append((f"<g><title>{svg.esc(tip)}</title>" if tip else "<g>")
                        + f'<line x1="{_XL:.0f}" y1="{ey:.1f}" x2="{_XR:.0f}" y2="{ey:.1f}" '
                        f'stroke="{colour}" stroke-width="1.4" stroke-dasharray="6 4"/>'
                        + svg.text((_XL + _XR) / 2, ey - 6, svg.esc(word), "small halo", "middle",
                                colour) + "</g>")
            body.append(svg.text(10, ey + 4, svg.esc(f"+{_offset(ended, origin)}"), "mono"))
        elif ending == "open" or ending is None:
            body.append(svg.text((_XL + _XR) / 2, end_y, "capture ends", "small note", "middle"))
    if untimed:
        end_y += 18
        body.append(svg.text((_XL + _XR) / 2, end_y + 4,
                          svg.esc(f"{untimed:,} operation(s) without timing are not drawn"),
                          "note", "middle"))
    legend_y = end_y + 30
    body.append(_legend(legend_y))
    extra = (f' data-operations="{total}" data-operations-shown="{len(shown)}"')
    return svg.document(_W, legend_y + 16, "ladder", label, body, extra)


def _offset(t: int, origin: int) -> str:
    return svg.fmt_ms(max(0, t - origin) / 1e6)


def _mark(x: float, y: float, severity: str) -> str:
    colour = SEVERITY_COLOURS.get(severity, "#2563eb")
    return (f'<circle cx="{x:.0f}" cy="{y:.1f}" r="7" fill="{colour}"/>'
            f'<text x="{x:.0f}" y="{y + 4:.1f}" text-anchor="middle" font-weight="700" '
            f'style="fill:#fff;font-size:11px">!</text>')


def _legend(y: float) -> str:
    items = [("scu bottleneck", BOTTLENECK_COLOURS["scu"]),
             ("network bottleneck", BOTTLENECK_COLOURS["network"]),
             ("scp bottleneck", BOTTLENECK_COLOURS["scp"]),
             ("finding", SEVERITY_COLOURS["warning"])]
    out = [svg.text(10, y, "time runs downwards, compressed: log-scaled gaps, "
                 "// marks a broken axis", "small")]
    x = 470.0
    for name, colour in items:
        if name == "finding":
            out.append(_mark(x + 6, y - 4, "warning"))
        else:
            out.append(f'<rect x="{x:.0f}" y="{y - 9:.0f}" width="12" height="10" rx="2" '
                       f'fill="{colour}"/>')
        out.append(svg.text(x + 16, y, name, "small"))
        x += 16 + 6.5 * len(name) + 16
    return "".join(out)


def _ladder_op(op: Mapping[str, Any], y: _Scale, floor: float,
               marks: list[tuple[str, str, str, bool]]) -> str:
    """One operation's group; ``floor`` is where the one before it ended (its idle time
    cannot start earlier, whatever gap_before_ms says)."""
    t0, t1, t2, t3 = _op_times(op)
    idx = svg.to_int(op.get("op_index"))
    command = svg.to_str(op.get("command")) or "?"
    bottleneck = svg.to_str(op.get("bottleneck"))
    colour = BOTTLENECK_COLOURS.get(bottleneck or "")
    scu_left = svg.to_str(op.get("scu")) != "acceptor"
    x_scu, x_scp = (_XL, _XR) if scu_left else (_XR, _XL)
    out_scu, out_scp = (-1, 1) if scu_left else (1, -1)  # which way is "outside" each lane
    status_hex = svg.to_str(op.get("status_hex"))
    category = svg.to_str(op.get("status_category"))
    attrs = (f' data-op="{idx if idx is not None else ""}" data-command="{svg.esc(command)}"'
             f' data-bottleneck="{svg.esc(bottleneck or "")}"'
             f' data-status="{svg.esc(status_hex or "")}"')
    status_text = svg.to_str(op.get("status_text"))
    tip = [f"operation {idx}: {command}" + (f" {status_hex}" if status_hex else "")
           + (f" ({status_text})" if status_text else "")]
    detail = svg.to_str(op.get("bottleneck_detail"))
    if detail:
        tip.insert(0, detail)
    total_ms = svg.num(op.get("total_ms"))
    if total_ms is not None:
        tip.append(f"total {svg.fmt_ms(total_ms)}")
    for name in ("scu_ms", "network_ms", "scp_ms"):
        value = svg.num(op.get(name))
        if value is not None:
            tip.append(f"{name[:-3]} {svg.fmt_ms(value)}")
    if svg.to_int(op.get("cancel_index")) is not None:
        tip.append("C-CANCEL sent")
    parts = [f"<g class=\"op\"{attrs}><title>{svg.esc('; '.join(tip))}</title>"]

    start = t0 if t0 is not None else t2
    end = t3 if t3 is not None else t1
    assert start is not None and end is not None  # the op is timed
    ys, ye = y(start), y(end)
    gap = svg.num(op.get("gap_before_ms"))
    gap_start = ys
    if gap is not None and t0 is not None:
        gap_start = max(min(y(int(start - gap * 1e6)), ys), min(floor, ys))
    if colour:
        band_top = min(gap_start + 3, ys - 18)
        parts.append(f'<rect x="{_XL - 20:.0f}" y="{band_top:.1f}" '
                     f'width="{_XR - _XL + 40:.0f}" height="{ye - band_top + 4:.1f}" rx="4" '
                     f'fill="{colour}" fill-opacity="0.07" stroke="{colour}" '
                     'stroke-opacity="0.35"/>')
        parts.append(svg.text(_W - 10, ys + 4, svg.esc(f"{bottleneck} bottleneck"), "small", "end",
                           colour, "600"))

    # idle before the request, on the SCU lane
    idle_slow = bottleneck == "scu" and (gap or 0) >= (svg.num(op.get("request_transfer_ms")) or 0)
    if t0 is not None and gap is not None and (gap >= 1.0 or idle_slow):
        idle = colour if idle_slow and colour else "#94a3b8"
        bx = x_scu + 7 * out_scu
        parts.append(f'<line x1="{bx:.0f}" y1="{gap_start:.1f}" x2="{bx:.0f}" y2="{ys:.1f}" '
                     f'stroke="{idle}" stroke-width="2" stroke-dasharray="3 3"/>')
        parts.append(svg.text(x_scu + 14 * out_scu, (gap_start + ys) / 2 + 4,
                           svg.esc(f"SCU idle {svg.fmt_ms(gap)}"), "small halo",
                           "end" if out_scu < 0 else "start",
                           idle if idle_slow else None, "600" if idle_slow else None))

    # the request
    if t0 is not None and t1 is not None:
        y0, y1 = y(t0), y(t1)
        # the request is the slow part for the network, and for an SCU that sends slowly
        # (Nagle stalls, small PDUs) rather than waits before sending
        slow = bottleneck == "network" or (
            bottleneck == "scu" and (svg.num(op.get("request_transfer_ms")) or 0) > (gap or 0))
        rq_colour = colour if slow and colour else _NEUTRAL
        width = 2.6 if slow else 1.6
        parts.append(svg.arrow(x_scu, y0, x_scp, y1, rq_colour, width, ' data-arrow="request"'))
        bits = [f"{command}-RQ"]
        msg_id = svg.to_int(op.get("message_id"))
        if msg_id is not None:
            bits[0] += f" #{msg_id}"
        size = svg.to_int(op.get("request_bytes"))
        if size is not None:
            bits.append(svg.fmt_bytes(size))
        transfer = svg.num(op.get("request_transfer_ms"))
        if transfer is not None:
            bits.append(svg.fmt_ms(transfer))
        parts.append(svg.text(x_scu - 12 * out_scu, y0 - 6, svg.esc(" \u00b7 ".join(bits), 60),
                           "halo", "start" if scu_left else "end"))

    # the SCP at work
    turnaround = svg.num(op.get("turnaround_ms"))
    if t1 is not None and t2 is not None and t2 >= t1:
        y1, y2 = y(t1), y(t2)
        busy = colour if bottleneck == "scp" and colour else "#cbd5e1"
        parts.append(f'<rect x="{x_scp - 4:.0f}" y="{y1:.1f}" width="8" '
                     f'height="{max(y2 - y1, 1):.1f}" fill="{busy}" rx="2"/>')
        if turnaround is not None:
            parts.append(svg.text(x_scp + 14 * out_scp, (y1 + y2) / 2 + 4,
                               svg.esc(f"SCP {svg.fmt_ms(turnaround)}"), "small halo",
                               "start" if out_scp > 0 else "end",
                               busy if bottleneck == "scp" else None,
                               "600" if bottleneck == "scp" else None))

    # the response(s)
    if t2 is not None and t3 is not None:
        y2, y3 = y(t2), y(t3)
        rsp_colour = colour if bottleneck == "network" and colour else "#0f766e"
        width = 2.6 if bottleneck == "network" else 1.6
        parts.append(svg.arrow(x_scp, y2, x_scu, y3, rsp_colour, width,
                            ' data-arrow="response"'))
        responses = svg.to_int(op.get("responses")) or 1
        pending = svg.to_int(op.get("pending_responses")) or 0
        text = f"{command}-RSP" + (f" \u00d7{responses}" if responses > 1 else "")
        if status_hex:
            text += f" {status_hex}"
        if category and category != "Success":
            text += f" {category}"
        if pending:
            text += f" ({pending} pending)"
        parts.append(svg.text(x_scp + 12 * out_scu, y2 - 6, svg.esc(text, 60), "halo",
                           "end" if scu_left else "start",
                           _STATUS_COLOURS.get(category or "")))
    elif t1 is not None:
        parts.append(svg.text(x_scp + 12 * out_scu, y(t1) + 16, "no response in the capture",
                           "small note", "end" if scu_left else "start"))

    # findings that point at this operation: a mark at the start of the arrow's row that
    # the finding is about (the response's, at the SCU end; the request's, at the SCP end)
    for i, (severity, code, summary, on_response) in enumerate(marks[:3]):
        if on_response and t2 is not None:
            mx, my = x_scu - (22 + 18 * i) * out_scu, y(t2) - 10
        else:
            mx, my = x_scp + (22 + 18 * i) * out_scp * -1, y(start) - 10
        tip_text = svg.esc(f"{severity} {code}: {summary}")
        parts.append(f'<g data-finding="{svg.esc(code)}"><title>{tip_text}</title>'
                     + _mark(mx, my, severity) + "</g>")
    parts.append("</g>")
    return "".join(parts)


# ---------------------------------------------------------------- timeline

_TL_LABEL_W = 250.0
_TL_ROW = 20.0


def _dominant_bottlenecks(operations: pd.DataFrame | None) -> dict[tuple[Any, Any], str]:
    """(capture, assoc_id) -> the bottleneck that cost its operations the most time."""
    if operations is None or operations.empty or "bottleneck" not in operations.columns:
        return {}
    ops = operations[operations["bottleneck"].notna()]
    if ops.empty:
        return {}
    weight = ops["total_ms"].astype("Float64").fillna(1.0) if "total_ms" in ops else 1.0
    frame = pd.DataFrame({"capture": ops["capture"].astype(object),
                          "assoc_id": ops["assoc_id"].astype(object),
                          "bottleneck": ops["bottleneck"].astype(object),
                          "w": pd.Series(weight, index=ops.index).astype(float)})
    sums = frame.groupby(["capture", "assoc_id", "bottleneck"], dropna=False)["w"].sum()
    out: dict[tuple[Any, Any], str] = {}
    for key, _w in sums.sort_values(ascending=False).items():
        cap, aid, bn = cast(tuple[Any, Any, Any], key)
        out.setdefault((cap, aid), str(bn))
    return out


def _last_op_end(operations: pd.DataFrame | None) -> dict[tuple[Any, Any], int]:
    if operations is None or operations.empty:
        return {}
    cols = [c for c in _OP_TIMES if c in operations.columns]
    ends = operations[cols].max(axis=1)
    frame = pd.DataFrame({"capture": operations["capture"].astype(object),
                          "assoc_id": operations["assoc_id"].astype(object), "end": ends})
    last = frame.dropna(subset=["end"]).groupby(["capture", "assoc_id"], dropna=False)["end"].max()
    out: dict[tuple[Any, Any], int] = {}
    for key, value in last.items():
        ns = svg.ns(value)
        if ns is not None:
            out[key] = ns  # type: ignore[index]
    return out


def timeline_svg(associations: pd.DataFrame, operations: pd.DataFrame | None = None, *,
                 max_associations: int = MAX_TIMELINE_ASSOCIATIONS,
                 anchors: Mapping[int, str] | None = None) -> str:
    """All associations of a capture as bars on one time axis: setup (A-ASSOCIATE-RQ to
    -AC), active (to the last operation's end) and release, labelled calling -> called AE
    and coloured by the bottleneck that cost the most time. ``anchors`` maps assoc_id to a
    page anchor (``#...``) the bar links to. Beyond ``max_associations`` bars, a strip of
    how many associations were open at once stands for all of them."""
    rows = _records(associations)
    if not rows:
        return svg.empty("timeline", "no associations")
    dominant = _dominant_bottlenecks(operations)
    last_end = _last_op_end(operations)
    bars = []
    for a in rows:
        key = (a.get("capture"), a.get("assoc_id"))
        start = svg.ns(a.get("requested_at"))
        responded = svg.ns(a.get("responded_at"))
        ops_end = last_end.get(key)
        end = svg.ns(a.get("ended_at"))
        start = start if start is not None else (responded if responded is not None
                                                 else ops_end)
        if start is None:
            continue
        end = end if end is not None else max(t for t in (start, responded, ops_end)
                                              if t is not None)
        bars.append((start, responded, ops_end, end, a,
                     svg.to_str(a.get("bottleneck")) or dominant.get(key)))
    if not bars:
        return svg.empty("timeline", "no timed associations")
    bars.sort(key=lambda b: (b[0], svg.to_int(b[4].get("assoc_id")) or 0))
    t_min = min(b[0] for b in bars)
    t_max = max(b[3] for b in bars)
    span_ms = max((t_max - t_min) / 1e6, 0.001)
    shown = bars[:max_associations]
    x0, x1 = _TL_LABEL_W + 10, _W - 80.0

    def x(t: int) -> float:
        return x0 + (t - t_min) / 1e6 / span_ms * (x1 - x0)

    body: list[str] = []
    aggregated = len(bars) > len(shown)
    axis_y = 44.0
    if aggregated:  # the strip that counts all of them comes first, the bars after it
        body.append(svg.text(10, 40, svg.esc(
            f"showing {len(shown):,} of {len(bars):,} associations as bars; the strip counts "
            "all of them, the associations table holds all"), "note", weight="600"))
        _concurrency_strip(body, bars, t_min, span_ms, x0, x1, 56)
        axis_y += 84
    top = axis_y + 12
    height_rows = _TL_ROW * len(shown)
    step = svg.nice_step(span_ms)
    origin = pd.Timestamp(t_min, unit="ns", tz="UTC").strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    body.append(svg.text(10, 18, svg.esc(f"time since {origin} UTC"), "small"))
    if aggregated:
        body.append(svg.text(10, axis_y - 6, "associations:", "small"))
    tick = 0.0
    while tick <= span_ms * 1.0001:
        tx = x0 + tick / span_ms * (x1 - x0)
        body.append(f'<line x1="{tx:.1f}" y1="{56 if aggregated else axis_y:.0f}" x2="{tx:.1f}" '
                    f'y2="{top + height_rows:.0f}" stroke="#e5e7eb"/>')
        body.append(svg.text(tx, axis_y - 6, svg.esc(svg.fmt_offset(round(tick, 9), step)), "mono",
                          "middle"))
        tick += step
    for i, (start, responded, ops_end, end, a, bottleneck) in enumerate(shown):
        ry = top + i * _TL_ROW
        aid = svg.to_int(a.get("assoc_id"))
        result = svg.to_str(a.get("result")) or ""
        ending = svg.to_str(a.get("ending")) or ""
        calling = svg.to_str(a.get("calling_ae")) or "?"
        name = f"#{aid} {calling} \u2192 {svg.to_str(a.get('called_ae')) or '?'}"
        dur = svg.num(a.get("duration_ms"))
        tip = [name, f"{result}, {ending}"]
        if dur is not None:
            tip.append(svg.fmt_ms(dur))
        n_ops = svg.to_int(a.get("messages"))
        if n_ops is not None:
            tip.append(f"{n_ops} messages")
        if bottleneck:
            tip.append(f"bottleneck {bottleneck}")
        detail = svg.to_str(a.get("bottleneck_detail"))
        if detail:
            tip.append(detail)
        row = [f'<g data-assoc="{aid if aid is not None else ""}" '
               f'data-bottleneck="{svg.esc(bottleneck or "")}">'
               f'<title>{svg.esc("; ".join(tip))}</title>']
        row.append(svg.text(10, ry + 13, svg.esc(name, 38), "small" if result == "accepted" else
                         "small note"))
        bar_y = ry + 4
        xs = x(start)
        if result != "accepted":
            xe = x(responded if responded is not None else end)
            dash = ' stroke-dasharray="3 2"' if result == "no-response" else ""
            row.append(f'<rect x="{xs:.1f}" y="{bar_y:.1f}" width="{max(xe - xs, 3):.1f}" '
                       f'height="12" rx="2" fill="{_REJECTED if result == "rejected" else "#fff"}"'
                       f' stroke="#b91c1c"{dash}/>')
            after = svg.esc(result)
        else:
            active_from = responded if responded is not None else start
            active_to = ops_end if ops_end is not None and ops_end >= active_from else end
            fill = BOTTLENECK_COLOURS.get(bottleneck or "", _ACTIVE)
            for t_a, t_b, colour in ((start, active_from, _SETUP),
                                     (active_from, active_to, fill),
                                     (active_to, end, _RELEASE)):
                if t_b > t_a:
                    row.append(f'<rect x="{x(t_a):.1f}" y="{bar_y:.1f}" '
                               f'width="{max(x(t_b) - x(t_a), 1.5):.1f}" height="12" '
                               f'fill="{colour}"/>')
            if end <= start:
                row.append(f'<rect x="{xs:.1f}" y="{bar_y:.1f}" width="2" height="12" '
                           f'fill="{fill}"/>')
            if ending == "aborted":
                row.append(f'<line x1="{x(end):.1f}" y1="{bar_y - 2:.1f}" x2="{x(end):.1f}" '
                           f'y2="{bar_y + 14:.1f}" stroke="#b91c1c" stroke-width="2.5"/>')
            after = svg.esc(svg.fmt_ms(dur)) if dur is not None else ""
            if ending in ("aborted", "open", "closed"):
                after += f" {svg.esc(ending)}"
        xe = max(x(end), xs + 3)
        if after and xe + 8 + 7 * len(after) < _W:
            row.append(svg.text(xe + 6, ry + 13, after, "mono"))
        row.append("</g>")
        link = anchors.get(aid) if anchors is not None and aid is not None else None
        if link:
            body.append(f'<a href="{svg.esc(link)}">' + "".join(row) + "</a>")
        else:
            body.extend(row)
    y_end = top + height_rows + 8
    y_legend = y_end + 20
    legend = [("setup", _SETUP), ("active", _ACTIVE), ("release", _RELEASE),
              ("scu", BOTTLENECK_COLOURS["scu"]), ("network", BOTTLENECK_COLOURS["network"]),
              ("scp", BOTTLENECK_COLOURS["scp"]), ("rejected", _REJECTED)]
    lx = 10.0
    body.append(svg.text(lx, y_legend, "bars:", "small"))
    lx += 44
    for name, colour in legend:
        body.append(f'<rect x="{lx:.0f}" y="{y_legend - 9:.0f}" width="12" height="10" '
                    f'rx="2" fill="{colour}"/>')
        body.append(svg.text(lx + 16, y_legend, name, "small"))
        lx += 16 + 6.5 * len(name) + 16
    body.append(svg.text(lx + 6, y_legend, "(active coloured by its dominant bottleneck)", "small"))
    extra = f' data-associations="{len(bars)}" data-associations-shown="{len(shown)}"'
    return svg.document(_W, y_legend + 12, "timeline", "associations over time", body, extra)


def _concurrency_strip(body: list[str], bars: list[Any], t_min: int, span_ms: float,
                       x0: float, x1: float, top: float) -> None:
    """An area chart of how many associations were open over time, for all of them."""
    n_bins = 200
    starts = sorted(b[0] for b in bars)
    ends = sorted(b[3] for b in bars)
    width_ns = span_ms * 1e6 / n_bins
    counts = []
    for i in range(n_bins):
        lo, hi = t_min + i * width_ns, t_min + (i + 1) * width_ns
        counts.append(bisect_right(starts, hi) - bisect_right(ends, lo - 1))
    peak = max(max(counts), 1)
    h = 40.0
    pts = [f"{x0:.1f},{top + h:.1f}"]
    for i, c in enumerate(counts):
        xa = x0 + i / n_bins * (x1 - x0)
        xb = x0 + (i + 1) / n_bins * (x1 - x0)
        yy = top + h - c / peak * h
        pts.append(f"{xa:.1f},{yy:.1f} {xb:.1f},{yy:.1f}")
    pts.append(f"{x1:.1f},{top + h:.1f}")
    body.append(f'<g data-aggregate="concurrency"><polygon points="{" ".join(pts)}" '
                f'fill="{_ACTIVE}" fill-opacity="0.35" stroke="{_ACTIVE}"/></g>')
    body.append(svg.text(10, top + 16, svg.esc(f"open associations (all {len(bars):,})"), "small"))
    body.append(svg.text(10, top + 32, svg.esc(f"peak {peak:,} at once"), "mono"))


# ---------------------------------------------------------------- throughput


def transfer_bytes(throughput_rows: pd.DataFrame | None) -> int:
    """Bytes in the throughput rows: what decides whether a chart is worth drawing."""
    if throughput_rows is None or throughput_rows.empty:
        return 0
    return int(throughput_rows["bytes"].fillna(0).sum())


def throughput_svg(throughput_rows: pd.DataFrame, *,
                   labels: Mapping[str, str] | None = None) -> str:
    """Mbit/s per time bin and sender (one association or a whole capture, bins summed),
    as step areas on one time axis. ``labels`` names the senders (e.g. their AE titles).
    Long series are re-binned to at most `MAX_THROUGHPUT_POINTS` bins per sender."""
    if throughput_rows is None or throughput_rows.empty:
        return svg.empty("throughput", "no throughput samples")
    df = throughput_rows.dropna(subset=["bin_start"])
    if df.empty:
        return svg.empty("throughput", "no throughput samples")
    ns = df["bin_start"].astype("int64") if df["bin_start"].dtype.kind == "M" else pd.Series(
        [svg.ns(v) for v in df["bin_start"]], index=df.index)
    bin_ns = (df["bin_ms"].astype("Float64").fillna(1.0).astype(float) * 1e6).clip(lower=1.0)
    data = pd.DataFrame({"sender": df["sender"].astype(object).fillna("?"),
                         "start": ns.astype("int64"), "width": bin_ns,
                         "bytes": df["bytes"].astype("Int64").fillna(0).astype("int64")})
    t_min = int(data["start"].min())
    data["start"] = data["start"] - t_min  # from here on, offsets: floats stay exact
    span_ns = max(float((data["start"] + data["width"]).max()), 1.0)
    series: dict[str, list[tuple[float, float, float]]] = {}
    order = {"requestor": 0, "acceptor": 1}
    groups = sorted(data.groupby("sender"), key=lambda g: (order.get(str(g[0]), 2), str(g[0])))
    for sender, part in groups:
        summed = part.groupby("start", sort=True).agg(width=("width", "max"),
                                                     bytes=("bytes", "sum"))
        if len(summed) > MAX_THROUGHPUT_POINTS:
            # a whole number of bins per bucket, or the buckets alias (8 bins, then 9 ...)
            bin_width = float(summed["width"].median())
            per_bucket = math.ceil(span_ns / bin_width / MAX_THROUGHPUT_POINTS)
            bucket_ns = per_bucket * bin_width
            key = (summed.index.to_numpy() // bucket_ns).astype("int64")
            grouped = summed.groupby(key)["bytes"].sum()
            points = [(int(cast(int, k)) * bucket_ns,  # the last bucket ends with the data
                       min(bucket_ns, span_ns - int(cast(int, k)) * bucket_ns), float(v))
                      for k, v in grouped.items()]
        else:
            points = [(float(s), float(w), float(b))
                      for s, w, b in zip(summed.index, summed["width"], summed["bytes"],
                                         strict=True)]
        series[str(sender)] = [(s, w, b * 8 / (w / 1e9) / 1e6) for s, w, b in points]
    peak = max((m for pts in series.values() for _, _, m in pts), default=0.0)
    ystep = svg.nice_step(peak, 4) if peak > 0 else 0.25
    top_mbps = max(math.ceil(peak / ystep - 1e-9), 1) * ystep
    w, h = float(_W), 280.0
    px0, px1, py0, py1 = 80.0, w - 20, 40.0, h - 56

    def px(t: float) -> float:
        return px0 + t / span_ns * (px1 - px0)

    def py(mbps: float) -> float:
        return py1 - mbps / top_mbps * (py1 - py0)

    body: list[str] = []
    total = int(data["bytes"].sum())
    origin = pd.Timestamp(t_min, unit="ns", tz="UTC").strftime("%H:%M:%S.%f")[:-3]
    heading = (f"throughput, Mbit/s per bin \u00b7 {svg.fmt_bytes(total)} "
               f"\u00b7 peak {peak:,.1f} Mbit/s")
    body.append(svg.text(10, 18, svg.esc(heading), "small", weight="600"))
    for i in range(round(top_mbps / ystep) + 1):
        value = ystep * i
        yy = py(value)
        body.append(f'<line x1="{px0:.0f}" y1="{yy:.1f}" x2="{px1:.0f}" y2="{yy:.1f}" '
                    f'stroke="{"#9ca3af" if i == 0 else "#e5e7eb"}"/>')
        body.append(svg.text(px0 - 6, yy + 4, svg.esc(f"{value:g}"), "mono", "end"))
    body.append(f'<text x="16" y="{(py0 + py1) / 2:.0f}" class="small" text-anchor="middle" '
                f'transform="rotate(-90 16 {(py0 + py1) / 2:.0f})">Mbit/s</text>')
    span_ms = span_ns / 1e6
    step = svg.nice_step(span_ms, 8)
    tick = 0.0
    while tick <= span_ms * 1.0001:
        tx = px(tick * 1e6)
        body.append(f'<line x1="{tx:.1f}" y1="{py1:.0f}" x2="{tx:.1f}" y2="{py1 + 5:.0f}" '
                    'stroke="#9ca3af"/>')
        body.append(svg.text(tx, py1 + 18, svg.esc(svg.fmt_offset(round(tick, 9), step)), "mono",
                          "middle"))
        tick += step
    body.append(svg.text((px0 + px1) / 2, h - 18, svg.esc(f"time since {origin} UTC"), "small",
                      "middle"))
    lx = 520.0
    for sender, pts in series.items():
        colour = SENDER_COLOURS.get(sender, "#6b7280")
        line = []
        prev_end: float | None = None
        for s, width, mbps in pts:
            if prev_end is None or s - prev_end > 1.0:
                if prev_end is not None:
                    line.append(f"{px(prev_end):.1f},{py(0):.1f}")
                line.append(f"{px(s):.1f},{py(0):.1f}")
            line.append(f"{px(s):.1f},{py(mbps):.1f} {px(s + width):.1f},{py(mbps):.1f}")
            prev_end = s + width
        if prev_end is not None:
            line.append(f"{px(prev_end):.1f},{py(0):.1f}")
        pts_text = " ".join(line)
        body.append(f'<g data-sender="{svg.esc(sender)}"><polygon points="{pts_text}" '
                    f'fill="{colour}" fill-opacity="0.18"/><polyline points="{pts_text}" '
                    f'fill="none" stroke="{colour}" stroke-width="1.6" '
                    'stroke-linejoin="round"/></g>')
        name = (labels or {}).get(sender)
        legend = f"{sender}" + (f" ({name})" if name else "") + " sends"
        body.append(f'<rect x="{lx:.0f}" y="9" width="12" height="10" rx="2" '
                    f'fill="{colour}"/>')
        body.append(svg.text(lx + 16, 18, svg.esc(legend, 32), "small"))
        lx += 230
    return svg.document(w, h, "throughput", "throughput over time", body)
