"""Pictures of the traffic as inline SVG: a DICOM ladder per association (charts.py has the
timeline of a capture's associations and throughput over time).

Pure functions from the tables (SPEC.md: associations, operations, findings, throughput) to
SVG text: no JavaScript, no external resources, and every text taken from the traffic goes
through `svg.esc` (HTML-escaped, control characters shown as ``\\x00``), so a hostile AE
title is drawn, never run. Big inputs are capped and the picture says so.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from . import svg

MAX_LADDER_OPERATIONS = 200  # operations drawn in one ladder; the table holds all
BREAK_MS = 1000.0  # a ladder interval this long is drawn as a broken axis

BOTTLENECK_COLOURS = {"scu": "#7c3aed", "network": "#d97706", "scp": "#dc2626"}
SEVERITY_COLOURS = {"error": "#dc2626", "warning": "#d97706", "note": "#2563eb"}
SENDER_COLOURS = {"requestor": "#2563eb", "acceptor": "#ea580c"}
_STATUS_COLOURS = {"Failure": "#b91c1c", "Warning": "#b45309", "Cancel": "#6b7280"}
_NEUTRAL = "#1e3a5f"


# ---------------------------------------------------------------- table values


def records(df: pd.DataFrame | None) -> list[dict[str, Any]]:
    if df is None or df.empty:
        return []
    # column lists zipped: several times faster than to_dict("records") on nullable dtypes
    cols = [str(c) for c in df.columns]
    values = [df[c].tolist() for c in df.columns]
    return [dict(zip(cols, row, strict=True)) for row in zip(*values, strict=True)]


def _row(row: Mapping[str, Any] | pd.Series) -> dict[str, Any]:
    return {str(k): v for k, v in dict(row).items()}


def for_association(df: pd.DataFrame | None, assoc: Mapping[str, Any]) -> pd.DataFrame | None:
    """The rows of ``df`` that belong to ``assoc`` (by capture and assoc_id where known)."""
    if df is None or df.empty:
        return df
    mask = None
    for key in ("capture", "assoc_id"):
        value = assoc.get(key)
        if key in df.columns and not svg.missing(value):
            hit = (df[key] == value).to_numpy(dtype=bool, na_value=False)
            mask = hit if mask is None else mask & hit
    return df if mask is None else df[mask]


def _split_label(alone: str, party: str, ms: float, network_ms: float | None) -> str:
    """``SCP 502 ms``, or ``round trip 60 ms + SCP 2.5 ms`` where most of the wait was the
    round trip between the capture point and that peer."""
    if network_ms is not None and network_ms >= 0.5 * ms and network_ms >= 1.0:
        return f"round trip {svg.fmt_ms(network_ms)} + {party} {svg.fmt_ms(ms - network_ms)}"
    return f"{alone} {svg.fmt_ms(ms)}"


def _endpoint(ip: object, port: object) -> str:
    host = svg.to_str(ip) or "?"
    if ":" in host:
        host = f"[{host}]"
    port_i = svg.to_int(port)
    return f"{host}:{port_i}" if port_i is not None else host


# ---------------------------------------------------------------- ladder

WIDTH = 980
_XL, _XR = 300.0, 700.0  # requestor lane, acceptor lane
_TOP = 118.0  # y of the first event
_MIN_H, _BREAK_H = 24.0, 64.0
OP_TIMES = ("request_first_at", "request_complete_at", "response_first_at",
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
    t = [svg.ns(op.get(c)) for c in OP_TIMES]
    if t[0] is None:
        t[0] = t[1]
    if t[1] is None:
        t[1] = t[0]
    if t[2] is None:
        t[2] = t[3]
    if t[3] is None:
        t[3] = t[2]
    return t


def _apart(ops: list[Mapping[str, Any]], taken: set[int]) -> list[Mapping[str, Any]]:
    """``ops`` with their times moved on by a few nanoseconds where another operation's
    (or the association's ``taken`` events) are at the same instant, so that each gets a row
    of its own: requests sent without waiting for a response share a frame with the one
    before, and their responses may share one too (asynchronous operations)."""
    out: list[Mapping[str, Any]] = []
    for op in ops:
        times = _op_times(op)
        mine: list[int | None] = []
        for t in times:
            if t is not None:
                while t in taken:
                    t += 1
                if mine and mine[-1] is not None and t < mine[-1]:
                    t = mine[-1]
            mine.append(t)
        if mine != times:
            op = {**op, **dict(zip(OP_TIMES, mine, strict=True))}
        taken.update(t for t in mine if t is not None)
        out.append(op)
    return out


def _finding_marks(findings: Rows | None, assoc: Mapping[str, Any],
                   ops: list[Mapping[str, Any]]
                   ) -> tuple[dict[int, list[tuple[str, str, str, bool]]],
                              list[tuple[str, str, str]]]:
    """Findings of this association: per op_index (severity, code, summary, on_response),
    and those that point at no operation."""
    per_op: dict[int, list[tuple[str, str, str, bool]]] = {}
    loose: list[tuple[str, str, str]] = []
    rows = _rows_of(findings, assoc)
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


#: Rows of a table: a DataFrame, which may hold other associations too, or one
#: association's rows as dicts (the report's sections have them so already).
Rows = pd.DataFrame | Sequence[Mapping[str, Any]]


def _rows_of(rows: Rows | None, assoc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """This association's rows as dicts: a frame's filtered and converted, a list as it is
    (a frame made of the dicts only to be filtered and made dicts again cost the report's
    association sections a third of their time)."""
    if rows is None or isinstance(rows, pd.DataFrame):
        return list(records(for_association(rows, assoc)))
    return list(rows)


def ladder_svg(assoc_row: Mapping[str, Any] | pd.Series, operations: Rows,
               findings: Rows | None = None, *,
               max_operations: int = MAX_LADDER_OPERATIONS) -> str:
    """A DICOM ladder diagram of one association: requestor lane left, acceptor lane right,
    time downwards on a compressed scale; each operation (PS3.7 DIMSE request and its
    responses) one ``<g data-op=...>`` with a request and a response arrow (``data-arrow``).

    ``operations`` and ``findings`` as DataFrames may hold other associations too: only the
    rows with this association's capture and assoc_id are drawn; as lists of dicts they are
    this association's. At most ``max_operations`` are drawn; the
    picture says how many there were.
    """
    a = _row(assoc_row)
    ops = sorted(_rows_of(operations, a), key=lambda r: (svg.to_int(r.get("op_index")) or 0))
    total = len(ops)
    timed = [op for op in ops if any(t is not None for t in _op_times(op))]
    untimed = total - len(timed)
    shown = timed[:max_operations]
    truncated = len(timed) > len(shown)
    marks, loose = _finding_marks(findings, a, shown)

    requested, responded = svg.ns(a.get("requested_at")), svg.ns(a.get("responded_at"))
    ended = svg.ns(a.get("ended_at"))
    shown = _apart(shown, {t for t in (requested, responded) if t is not None})
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
        body.append(svg.text(WIDTH - 10, 25 + 15 * i, svg.esc(fact, 24), "small", "end"))
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
    return svg.document(WIDTH, legend_y + 16, "ladder", label, body, extra)


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
    first, last = svg.to_int(op.get("first_frame")), svg.to_int(op.get("last_frame"))
    if first is not None and last is not None:  # where to look in Wireshark
        tip.append(f"frames {first}\u2013{last}" if last != first else f"frame {first}")
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
        parts.append(svg.text(WIDTH - 10, ys + 4, svg.esc(f"{bottleneck} bottleneck"), "small",
                              "end", colour, "600"))

    # idle before the request, on the SCU lane
    idle_slow = bottleneck == "scu" and (gap or 0) >= (svg.num(op.get("request_transfer_ms")) or 0)
    if t0 is not None and gap is not None and (gap >= 1.0 or idle_slow):
        idle = colour if idle_slow and colour else "#94a3b8"
        bx = x_scu + 7 * out_scu
        parts.append(f'<line x1="{bx:.0f}" y1="{gap_start:.1f}" x2="{bx:.0f}" y2="{ys:.1f}" '
                     f'stroke="{idle}" stroke-width="2" stroke-dasharray="3 3"/>')
        parts.append(svg.text(x_scu + 14 * out_scu, (gap_start + ys) / 2 + 4,
                           svg.esc(_split_label("SCU idle", "SCU", gap,
                                                svg.num(op.get("gap_network_ms")))),
                           "small halo",
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
                               svg.esc(_split_label("SCP", "SCP", turnaround,
                                                    svg.num(op.get("turnaround_network_ms")))),
                               "small halo",
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
        responses = svg.to_int(op.get("response_count")) or 1
        pending = svg.to_int(op.get("pending_response_count")) or 0
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
