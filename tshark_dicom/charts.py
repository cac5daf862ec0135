"""Charts of a capture as inline SVG: its associations on one time axis, and throughput
over time. The same rules as pictures.py: pure functions from the tables, no script, every
text from the traffic escaped, big inputs capped and said so."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from statistics import median
from typing import Any, cast

import pandas as pd

from . import svg
from .pictures import BOTTLENECK_COLOURS, OP_TIMES, SENDER_COLOURS, WIDTH, records

MAX_TIMELINE_ASSOCIATIONS = 300  # bars drawn in one timeline; beyond, an aggregate strip
MAX_THROUGHPUT_POINTS = 600  # bins per sender; finer series are re-binned
LARGE_TRANSFER_BYTES = 1_000_000  # a throughput chart is worth drawing from here on
_SETUP, _ACTIVE, _RELEASE, _REJECTED = "#94a3b8", "#3b82f6", "#cbd5e1", "#f87171"


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
    cols = [c for c in OP_TIMES if c in operations.columns]
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


#: What the timeline reads of the operations table (`operation_aggregates`).
TIMELINE_OPERATION_COLUMNS = ["capture", "assoc_id", "bottleneck", "total_ms", *OP_TIMES]


def operation_aggregates(batches: Iterable[pd.DataFrame]
                         ) -> tuple[dict[tuple[Any, Any], str], dict[tuple[Any, Any], int]]:
    """What the timeline needs of the operations, from the table a batch at a time: per
    (capture, assoc_id), the bottleneck that cost the most time and the last op's end."""
    weights: dict[tuple[Any, Any, str], float] = {}
    last_end: dict[tuple[Any, Any], int] = {}
    for ops in batches:
        for key, value in _last_op_end(ops).items():
            last_end[key] = max(value, last_end.get(key, value))
        hit = ops[ops["bottleneck"].notna()]
        if hit.empty:
            continue
        w = hit["total_ms"].astype("Float64").fillna(1.0).astype(float)
        for cap, aid, bn, weight in zip(hit["capture"].astype(object),
                                        hit["assoc_id"].astype(object),
                                        hit["bottleneck"].astype(object), w, strict=True):
            weights[(cap, aid, bn)] = weights.get((cap, aid, bn), 0.0) + weight
    dominant: dict[tuple[Any, Any], str] = {}
    for (cap, aid, bn), _w in sorted(weights.items(), key=lambda kv: -kv[1]):
        dominant.setdefault((cap, aid), str(bn))
    return dominant, last_end


#: The associations' columns `timeline_svg` reads.
TIMELINE_COLUMNS = ("capture", "assoc_id", "requested_at", "responded_at", "ended_at",
                    "result", "ending", "calling_ae", "called_ae", "duration_ms",
                    "message_count", "bottleneck", "bottleneck_detail")


def timeline_svg(associations: pd.DataFrame | list[dict[str, Any]],
                 operations: pd.DataFrame | None = None, *,
                 max_associations: int = MAX_TIMELINE_ASSOCIATIONS,
                 anchors: Mapping[int, str] | None = None,
                 aggregates: tuple[dict[tuple[Any, Any], str],
                                   dict[tuple[Any, Any], int]] | None = None) -> str:
    """All associations of a capture as bars on one time axis: setup (A-ASSOCIATE-RQ to
    -AC), active (to the last operation's end) and release, labelled calling -> called AE
    and coloured by the bottleneck that cost the most time. ``anchors`` maps assoc_id to a
    page anchor (``#...``) the bar links to. Beyond ``max_associations`` bars, a strip of
    how many associations were open at once stands for all of them."""
    # only the columns drawn are made dicts: the associations table has 81, a timeline
    # reads 13, and a page draws a timeline per capture (rows: made already, as `records`
    # makes them, of these columns)
    rows = associations if isinstance(associations, list) else records(
        associations[[c for c in TIMELINE_COLUMNS if c in associations.columns]])
    if not rows:
        return svg.empty("timeline", "no associations")
    dominant, last_end = aggregates if aggregates is not None else (
        _dominant_bottlenecks(operations), _last_op_end(operations))
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
    x0, x1 = _TL_LABEL_W + 10, WIDTH - 80.0

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
        n_ops = svg.to_int(a.get("message_count"))
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
        if after and xe + 8 + 7 * len(after) < WIDTH:
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
    return svg.document(WIDTH, y_legend + 12, "timeline", "associations over time", body, extra)


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
    # plain lists and dicts: a few hundred bins per association, where pandas' per-call
    # cost would dominate (the report draws this for every large association)
    rows = []
    for start, width, sender, nbytes in zip(
            throughput_rows["bin_start"].tolist(), throughput_rows["bin_ms"].tolist(),
            throughput_rows["sender"].tolist(), throughput_rows["bytes"].tolist(), strict=True):
        at = svg.ns(start)
        if at is None:
            continue
        rows.append((at, max((1.0 if svg.missing(width) else float(width)) * 1e6, 1.0),
                     "?" if svg.missing(sender) else str(sender),
                     0 if svg.missing(nbytes) else int(nbytes)))
    if not rows:
        return svg.empty("throughput", "no throughput samples")
    t_min = min(r[0] for r in rows)  # from here on, offsets: floats stay exact
    span_ns = max(max(float(r[0] - t_min) + r[1] for r in rows), 1.0)
    total = sum(r[3] for r in rows)
    bins: dict[str, dict[float, list[float]]] = {}
    for at, width, sender, nbytes in rows:
        slot = bins.setdefault(sender, {}).setdefault(float(at - t_min), [0.0, 0.0])
        slot[0] = max(slot[0], width)
        slot[1] += nbytes
    series: dict[str, list[tuple[float, float, float]]] = {}
    order = {"requestor": 0, "acceptor": 1}
    for sender in sorted(bins, key=lambda name: (order.get(name, 2), name)):
        summed = sorted(bins[sender].items())
        if len(summed) > MAX_THROUGHPUT_POINTS:
            # a whole number of bins per bucket, or the buckets alias (8 bins, then 9 ...)
            bin_width = median(w for _, (w, _) in summed)
            per_bucket = math.ceil(span_ns / bin_width / MAX_THROUGHPUT_POINTS)
            bucket_ns = per_bucket * bin_width
            grouped: dict[int, float] = {}
            for offset, (_, nbytes_f) in summed:
                key = int(offset // bucket_ns)
                grouped[key] = grouped.get(key, 0.0) + nbytes_f
            points = [(k * bucket_ns, min(bucket_ns, span_ns - k * bucket_ns), v)
                      for k, v in sorted(grouped.items())]  # the last bucket ends with the data
        else:
            points = [(offset, w, b) for offset, (w, b) in summed]
        series[sender] = [(s, w, b * 8 / (w / 1e9) / 1e6) for s, w, b in points]
    peak = max((m for pts in series.values() for _, _, m in pts), default=0.0)
    ystep = svg.nice_step(peak, 4) if peak > 0 else 0.25
    top_mbps = max(math.ceil(peak / ystep - 1e-9), 1) * ystep
    w, h = float(WIDTH), 280.0
    px0, px1, py0, py1 = 80.0, w - 20, 40.0, h - 56

    def px(t: float) -> float:
        return px0 + t / span_ns * (px1 - px0)

    def py(mbps: float) -> float:
        return py1 - mbps / top_mbps * (py1 - py0)

    body: list[str] = []
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
