"""Two captures of the same traffic, taken at two points of its path (at the modality and at
the archive, either side of a firewall or a WAN link): which associations and DIMSE messages
passed both points, how far apart the two capture clocks are, how long a message takes from
one point to the other at its fastest, and which messages the network between the points
held up, or which passed one point only.

It reads the finished tables of each capture (associations, messages, captures) and
nothing else: the stage after the tables, beside the findings; `compare` is its entry point.

How the two captures are lined up (no packet is assumed to carry a common clock):

- **associations** pair by what they carry: the AE titles and their first DIMSE messages
  (command, Message ID, SOP Instance UID). Addresses and ports are not used: a NAT between
  the points changes them. Where several associations carry the same (a C-ECHO every
  minute), they pair in time order, once the clocks' offset is known from the unique ones.
- **messages** of a pair line up by sender, command, Message ID (or the one responded to)
  and SOP Instance UID, in order.
- **the clocks**: a message passes the point nearer its sender first. For each paired
  message, d = (time at B) - (time at A). For the messages of one direction that pass A
  first, d = offset + transit + delay; for the other direction, which passes B first,
  d = offset - transit - delay. The fastest message of each direction (delay 0) gives
  offset = (min d + max d') / 2 and transit = (min d - max d') / 2, the transit assumed
  the same both ways (as NTP does). Which point is nearer the requestor is the reading
  that gives a transit of at least 0. With messages of one direction only, offset and
  transit cannot be told apart, and the capture-wide offset (the median of the
  associations') is used.
- **held up**: a message whose last byte reached the second point `HELD_MS` or more after
  the fastest transit: the network between the points (loss and retransmission, a queue,
  a window closed by the receiver beyond the second point) kept it, not the sender.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .records import endpoint_text, first_of
from .svg import missing, to_int, to_str

#: A message is held up between the points when its last byte arrives this much later than
#: the fastest transit (ms): past a delayed ACK and a retransmission timer's floor (200 ms
#: on Linux) it is something a user waits on.
HELD_MS = 100.0
#: How many messages of one association a sentence names.
NAMED = 3
#: The first messages of an association that identify it.
SIGNATURE = 4
#: Associations with the same signature pair when their times (the clocks' offset taken
#: off) are this close (ns), at most half the time between two of them in a capture.
PAIR_WITHIN_NS = 10_000_000_000
#: A message key found in at most this many associations of B tells associations apart.
DISTINCT = 8
#: Pairs of associations agree on the clocks when their differences are this close (ns):
#: the transit both ways, and the drift of two clocks over hours (50 ppm: 0.18 s an hour).
AGREE_NS = 1_000_000_000
POINTS = ("a", "b")
SENDERS = ("requestor", "acceptor")

MessageKey = tuple[str, str, int, str]


@dataclass
class _Message:
    index: int
    key: MessageKey
    first_frame: int | None
    last_frame: int | None
    started: int | None  # ns since the epoch, each capture's own clock
    ended: int | None


@dataclass
class _Association:
    assoc_id: int
    calling: str
    called: str
    requestor: str
    acceptor: str
    requested: int | None
    responded: int | None
    first: int | None  # the earliest time the capture has of it
    messages: list[_Message] = field(default_factory=list)
    #: per sender (requestor, acceptor): bytes this point saw twice (sent again), and
    #: segments it saw ahead of a missing one (the associations table's TCP columns)
    resent: dict[str, int | None] = field(default_factory=dict)
    holes: dict[str, int | None] = field(default_factory=dict)

    @property
    def signature(self) -> tuple[Any, ...]:
        return (self.calling, self.called, tuple(m.key for m in self.messages[:SIGNATURE]))


@dataclass
class _Side:
    """One capture's tables as this module reads them."""

    label: str
    associations: list[_Association]
    span: tuple[int | None, int | None]  # first and last packet (ns)

    def covers(self, t: int | None) -> bool:
        lo, hi = self.span
        return t is not None and lo is not None and hi is not None and lo <= t <= hi


def _ns(series: pd.Series) -> list[int | None]:
    """Timestamps as ns since the epoch (None for NaT)."""
    naive = pd.to_datetime(series, utc=True).dt.tz_localize(None).dt.as_unit("ns")
    raw = naive.to_numpy(dtype="datetime64[ns]").view("int64").tolist()
    nat = np.iinfo(np.int64).min  # NaT
    return [None if v == nat else int(v) for v in raw]


def _text(v: object) -> str:
    return to_str(v) or ""


def _endpoint(ip: object, port: object) -> str:
    return "?" if missing(ip) else endpoint_text((str(ip), to_int(port) or 0))


def _side(label: str, associations: pd.DataFrame, messages: pd.DataFrame,
          captures: pd.DataFrame) -> _Side:
    """One capture's associations with their messages, in time order."""
    req = _ns(associations["requested_at"])
    rsp = _ns(associations["responded_at"])
    assocs: dict[int, _Association] = {}
    for i, row in enumerate(associations.itertuples(index=False)):
        aid = to_int(row.assoc_id)
        if aid is None:
            continue
        assocs[aid] = _Association(
            aid, _text(row.calling_ae), _text(row.called_ae),
            _endpoint(row.requestor_ip, row.requestor_port),
            _endpoint(row.acceptor_ip, row.acceptor_port),
            req[i], rsp[i], req[i],
            resent={s: to_int(getattr(row, f"retransmitted_bytes_{s}", None)) for s in SENDERS},
            holes={s: to_int(getattr(row, f"out_of_order_{s}", None)) for s in SENDERS})
    started = _ns(messages["started_at"])
    ended = _ns(messages["ended_at"])
    cols = {c: messages[c].tolist() for c in (
        "assoc_id", "msg_index", "sender", "command", "message_id", "responds_to",
        "sop_instance_uid", "first_frame", "last_frame")}
    order = sorted(range(len(messages)), key=lambda i: (
        to_int(cols["assoc_id"][i]) or 0, to_int(cols["msg_index"][i]) or 0))
    for i in order:
        aid = to_int(cols["assoc_id"][i])
        assoc = None if aid is None else assocs.get(aid)
        if assoc is None:
            continue
        mid = to_int(cols["message_id"][i])
        if mid is None:
            mid = to_int(cols["responds_to"][i])
        key = (_text(cols["sender"][i]), _text(cols["command"][i]),
               -1 if mid is None else mid, _text(cols["sop_instance_uid"][i]))
        assoc.messages.append(_Message(
            to_int(cols["msg_index"][i]) or 0, key, to_int(cols["first_frame"][i]),
            to_int(cols["last_frame"][i]), started[i], ended[i]))
        t = started[i]
        if t is not None and (assoc.first is None or t < assoc.first):
            assoc.first = t
    spans = [(a, b) for a, b in zip(_ns(captures["first_packet_at"]),
                                    _ns(captures["last_packet_at"]), strict=True)
             if a is not None and b is not None] if len(captures) else []
    span = (min(a for a, _ in spans), max(b for _, b in spans)) if spans else (None, None)
    ordered = sorted(assocs.values(), key=lambda a: (a.first is None, a.first or 0, a.assoc_id))
    return _Side(label, ordered, span)


# ---------------------------------------------------------------------------------------
# Pairing
# ---------------------------------------------------------------------------------------


def _pair_associations(a: _Side, b: _Side) -> tuple[list[tuple[_Association, _Association]],
                                                     int | None]:
    """Associations of A and B that are the same one, and a first estimate of B's clock
    minus A's (ns; None without a pair).

    First by the messages they share whose key is found in few associations (a SOP
    Instance UID, a Message ID that is not 1 of every association): each such pair gives
    a difference of the clocks, and the pairs whose differences agree (within
    `AGREE_NS` of the most common one) are the same associations; a capture that began or
    ended inside an association still shares the rest of its messages. Then what is left
    (associations alike in all they carry, a C-ECHO every minute) pairs by signature in
    time order, once the offset is known."""
    index: dict[MessageKey, list[tuple[int, int | None]]] = defaultdict(list)
    for j, y in enumerate(b.associations):
        for m in y.messages:
            index[m.key].append((j, m.started))
    candidates: list[tuple[int, int, int, int]] = []  # shared, i, j, delta
    for i, x in enumerate(a.associations):
        shared: dict[int, int] = defaultdict(int)
        delta: dict[int, int] = {}
        for m in x.messages:
            hits = index.get(m.key, ())
            if not 0 < len(hits) <= DISTINCT or m.started is None:
                continue
            for j, t in hits:
                shared[j] += 1
                if t is not None and j not in delta:
                    delta[j] = t - m.started
        candidates += [(n, i, j, delta[j]) for j, n in shared.items()
                       if j in delta and _same_titles(x, b.associations[j])]
    offset = _mode([(d, n) for n, _, _, d in candidates])
    pairs = []
    taken_a: set[int] = set()
    taken_b: set[int] = set()
    if offset is not None:
        mode = offset
        for _, i, j, _ in sorted((c for c in candidates if abs(c[3] - mode) <= AGREE_NS),
                                 key=lambda c: (-c[0], abs(c[3] - mode))):
            if i not in taken_a and j not in taken_b:
                taken_a.add(i)
                taken_b.add(j)
                pairs.append((a.associations[i], b.associations[j]))
    groups_a: dict[tuple[Any, ...], list[_Association]] = defaultdict(list)
    groups_b: dict[tuple[Any, ...], list[_Association]] = defaultdict(list)
    for i, x in enumerate(a.associations):
        if i not in taken_a:
            groups_a[x.signature].append(x)
    for j, y in enumerate(b.associations):
        if j not in taken_b:
            groups_b[y.signature].append(y)
    common = [s for s in groups_a if s in groups_b]
    if offset is None:  # nothing distinctive: the k-th of A with the k-th of B
        offset = _mode([(y.first - x.first, 1) for s in common
                        for x, y in zip(groups_a[s], groups_b[s], strict=False)
                        if x.first is not None and y.first is not None])
    for s in common:
        pairs.extend(_pair_in_time(groups_a[s], groups_b[s], offset or 0))
    pairs.sort(key=lambda p: (p[0].first is None, p[0].first or 0))
    return pairs, offset


def _mode(weighted: list[tuple[int, int]]) -> int | None:
    """The value around which most weight lies (within `AGREE_NS`): the median of the
    values in the heaviest window."""
    if not weighted:
        return None
    weighted.sort()
    best, best_lo, best_hi = -1, 0, 0
    hi = total = 0
    for lo in range(len(weighted)):
        while hi < len(weighted) and weighted[hi][0] - weighted[lo][0] <= AGREE_NS:
            total += weighted[hi][1]
            hi += 1
        if total > best:
            best, best_lo, best_hi = total, lo, hi
        total -= weighted[lo][1]
    return int(statistics.median(v for v, _ in weighted[best_lo:best_hi]))


def _same_titles(x: _Association, y: _Association) -> bool:
    """The same AE titles, where both captures have them."""
    return all(not u or not v or u == v for u, v in ((x.calling, y.calling),
                                                     (x.called, y.called)))


def _pair_in_time(xs: list[_Association], ys: list[_Association], offset: int
                  ) -> list[tuple[_Association, _Association]]:
    """Associations of one signature paired by time (each list in time order)."""
    gaps = [q.first - p.first for p, q in zip(xs, xs[1:], strict=False) if p.first is not None
            and q.first is not None and q.first > p.first]
    within = min([PAIR_WITHIN_NS, *(g // 2 for g in gaps)])
    out = []
    i = j = 0
    while i < len(xs) and j < len(ys):
        tx, ty = xs[i].first, ys[j].first
        if tx is None:
            i += 1
            continue
        if ty is None:
            j += 1
            continue
        d = ty - offset - tx
        if abs(d) <= within:
            out.append((xs[i], ys[j]))
            i += 1
            j += 1
        elif d < 0:
            j += 1
        else:
            i += 1
    return out


def _pair_messages(x: _Association, y: _Association) -> list[tuple[_Message, _Message]]:
    kx = [m.key for m in x.messages]
    ky = [m.key for m in y.messages]
    if kx == ky:
        return list(zip(x.messages, y.messages, strict=True))
    out = []
    for block in SequenceMatcher(None, kx, ky, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            out.append((x.messages[block.a + k], y.messages[block.b + k]))
    return out


# ---------------------------------------------------------------------------------------
# The clocks and the transit
# ---------------------------------------------------------------------------------------


@dataclass
class Clocks:
    """One pair's clocks: B's minus A's (ns), the fastest transit between the points (ns),
    and which point the requestor's messages pass first ("a" or "b"; None: unknown)."""

    offset: int | None
    transit: int | None
    requestor_first: str | None

    def first_point(self, sender: str) -> str | None:
        """The point a message of this sender passes first."""
        if self.requestor_first is None:
            return None
        return self.requestor_first if sender == "requestor" else _other(self.requestor_first)


def _other(point: str) -> str:
    return "b" if point == "a" else "a"


def estimate(forward: Sequence[int], backward: Sequence[int]) -> Clocks:
    """The clocks from B-minus-A differences of the requestor's messages (``forward``) and
    the acceptor's (``backward``): the reading (A or B nearer the requestor) whose transit
    is not negative; where both are (jitter around a transit of 0), the larger, as 0."""
    if not forward or not backward:
        return Clocks(None, None, None)
    # A nearer the requestor: forward = offset + transit + delay,
    # backward = offset - transit - delay
    t_a = (min(forward) - max(backward)) / 2
    # B nearer the requestor: the other way round
    t_b = (min(backward) - max(forward)) / 2
    if t_a >= t_b:
        return Clocks(int(round((min(forward) + max(backward)) / 2)), max(0, int(round(t_a))), "a")
    return Clocks(int(round((max(forward) + min(backward)) / 2)), max(0, int(round(t_b))), "b")


def _samples(x: _Association, y: _Association, pairs: Iterable[tuple[_Message, _Message]]
             ) -> tuple[list[int], list[int]]:
    forward: list[int] = []
    backward: list[int] = []
    if x.requested is not None and y.requested is not None:
        forward.append(y.requested - x.requested)
    if x.responded is not None and y.responded is not None:
        backward.append(y.responded - x.responded)
    for m, n in pairs:
        if m.started is None or n.started is None:
            continue
        (forward if m.key[0] == "requestor" else backward).append(n.started - m.started)
    return forward, backward


# ---------------------------------------------------------------------------------------
# The comparison
# ---------------------------------------------------------------------------------------


@dataclass
class Comparison:
    """What `compare` found: three tables (pandas) and the capture-wide clocks."""

    associations: pd.DataFrame
    messages: pd.DataFrame
    findings: pd.DataFrame
    captures: tuple[str, str]
    offset_ms: float | None
    transit_ms: float | None

    TABLES = ("associations", "messages", "findings")

    def table(self, name: str) -> pd.DataFrame:
        frame: pd.DataFrame = getattr(self, name)
        return frame

    def write(self, out: Path, format: str = "parquet") -> None:
        """The tables into ``out`` (`write_comparison`)."""
        write_comparison(self, out, format)


def _ms(ns: int | None) -> float | None:
    return None if ns is None else round(ns / 1e6, 3)


def _when(t: int | None) -> str:
    return "?" if t is None else pd.Timestamp(t, unit="ns", tz="UTC").strftime(
        "%Y-%m-%d %H:%M:%S.%f")[:-3]


def _n(ms: float) -> str:
    return f"{ms:,.1f} ms"


def _msg_text(m: _Message) -> str:
    sender, command, mid, _ = m.key
    return f"{command} {mid}" if command.endswith("-RQ") and mid >= 0 else \
        f"{command} (to {mid})" if mid >= 0 else command


@dataclass
class _Pair:
    x: _Association
    y: _Association
    messages: list[tuple[_Message, _Message]]
    clocks: Clocks


def compare_tables(a: Any, b: Any, labels: tuple[str, str] = ("A", "B"),
                   names: tuple[str, str] | None = None) -> Comparison:
    """Compare two captures' tables (anything with ``associations``, ``messages`` and
    ``captures`` frames: a `Report`, or one loaded from OUT). ``labels``: what the sentences
    call them; ``names``: what they are (the paths given)."""
    sa = _side(labels[0], a.associations, a.messages, a.captures)
    sb = _side(labels[1], b.associations, b.messages, b.captures)
    assoc_pairs, coarse = _pair_associations(sa, sb)
    pairs = []
    for x, y in assoc_pairs:
        msgs = _pair_messages(x, y)
        pairs.append(_Pair(x, y, msgs, estimate(*_samples(x, y, msgs))))
    known = [p.clocks.offset for p in pairs if p.clocks.offset is not None]
    offset = int(statistics.median(known)) if known else coarse
    transits = [p.clocks.transit for p in pairs if p.clocks.transit is not None]
    transit = int(statistics.median(transits)) if transits else None

    assoc_rows: list[dict[str, Any]] = []
    msg_rows: list[dict[str, Any]] = []
    findings: list[dict[str, Any]] = []
    for p in pairs:
        _pair_rows(p, offset, sa, sb, assoc_rows, msg_rows, findings)
    findings += _loss_findings(pairs)
    paired_a = {id(p.x) for p in pairs}
    paired_b = {id(p.y) for p in pairs}
    for side, other, paired, point in ((sa, sb, paired_a, "a"), (sb, sa, paired_b, "b")):
        lost = []
        for x in side.associations:
            if id(x) in paired:
                continue
            assoc_rows.append(_lone_row(x, point))
            # in the other capture's clock
            t = x.first if x.first is None or offset is None else \
                x.first + (offset if point == "a" else -offset)
            if other.covers(t):
                lost.append(x)
        if lost:
            findings.append(_unpaired_finding(lost, point, side, other))
    findings.insert(0, _overview(pairs, sa, sb, offset, transit, assoc_rows))
    return Comparison(
        _frame(assoc_rows, ASSOCIATION_COLUMNS), _frame(msg_rows, MESSAGE_COLUMNS),
        _frame(findings, FINDING_COLUMNS), names or labels, _ms(offset), _ms(transit))


ASSOCIATION_COLUMNS = {
    "seen": "string", "assoc_id_a": "Int64", "assoc_id_b": "Int64", "calling_ae": "string",
    "called_ae": "string", "requestor_a": "string", "acceptor_a": "string",
    "requestor_b": "string", "acceptor_b": "string", "requested_at_a": "datetime64[us, UTC]",
    "requested_at_b": "datetime64[us, UTC]", "messages_a": "Int64", "messages_b": "Int64",
    "messages_both": "Int64", "clock_offset_ms": "Float64", "transit_ms": "Float64",
    "requestor_side": "string", "held_messages": "Int64", "max_held_ms": "Float64",
    "lost_between_requestor_bytes": "Int64", "lost_between_acceptor_bytes": "Int64",
    "gaps_requestor_a": "Int64", "gaps_requestor_b": "Int64", "gaps_acceptor_a": "Int64",
    "gaps_acceptor_b": "Int64",
}
MESSAGE_COLUMNS = {
    "seen": "string", "assoc_id_a": "Int64", "assoc_id_b": "Int64", "msg_index_a": "Int64",
    "msg_index_b": "Int64", "sender": "string", "command": "string", "message_id": "Int64",
    "sop_instance_uid": "string", "first_frame_a": "Int64", "last_frame_a": "Int64",
    "first_frame_b": "Int64", "last_frame_b": "Int64", "started_at_a": "datetime64[us, UTC]",
    "ended_at_a": "datetime64[us, UTC]", "started_at_b": "datetime64[us, UTC]",
    "ended_at_b": "datetime64[us, UTC]", "first_point": "string",
    "transit_first_ms": "Float64", "transit_last_ms": "Float64", "held_ms": "Float64",
}
FINDING_COLUMNS = {
    "severity": "string", "code": "string", "assoc_id_a": "Int64", "assoc_id_b": "Int64",
    "summary": "string",
}


def _frame(rows: list[dict[str, Any]], columns: dict[str, str]) -> pd.DataFrame:
    data = {}
    for col, dtype in columns.items():
        values = [r.get(col) for r in rows]
        if dtype.startswith("datetime64"):
            data[col] = pd.Series([pd.NaT if v is None else pd.Timestamp(v, unit="ns", tz="UTC")
                                   for v in values], dtype=dtype)
        else:
            data[col] = pd.Series(values, dtype=dtype)
    return pd.DataFrame(data, columns=list(columns))


def _lone_row(x: _Association, point: str) -> dict[str, Any]:
    return {"seen": point, f"assoc_id_{point}": x.assoc_id, "calling_ae": x.calling or None,
            "called_ae": x.called or None, f"requestor_{point}": x.requestor,
            f"acceptor_{point}": x.acceptor, f"requested_at_{point}": x.requested,
            f"messages_{point}": len(x.messages), "messages_both": 0}


def _pair_rows(p: _Pair, offset: int | None, sa: _Side, sb: _Side,
               assoc_rows: list[dict[str, Any]], msg_rows: list[dict[str, Any]],
               findings: list[dict[str, Any]]) -> None:
    x, y, c = p.x, p.y, p.clocks
    theta = c.offset if c.offset is not None else offset
    held: list[tuple[float, _Message, str]] = []
    for m, n in p.messages:
        row = _message_row("both", x, y, m, n)
        first = c.first_point(m.key[0])
        row["first_point"] = first
        if theta is not None and first is not None:
            sign = 1 if first == "a" else -1
            if m.started is not None and n.started is not None:
                row["transit_first_ms"] = _ms(sign * (n.started - theta - m.started))
            if m.ended is not None and n.ended is not None:
                late = sign * (n.ended - theta - m.ended)
                row["transit_last_ms"] = _ms(late)
                if c.transit is not None:
                    row["held_ms"] = _ms(max(0, late - c.transit))
                    if row["held_ms"] is not None and row["held_ms"] >= HELD_MS:
                        held.append((row["held_ms"], m, first))
        msg_rows.append(row)
    both_a = {id(m) for m, _ in p.messages}
    both_b = {id(n) for _, n in p.messages}
    only: dict[str, list[_Message]] = {"a": [], "b": []}
    for point, assoc, both, other in (("a", x, both_a, sb), ("b", y, both_b, sa)):
        for m in assoc.messages:
            if id(m) in both:
                continue
            msg_rows.append(_message_row(point, x if point == "a" else None,
                                         y if point == "b" else None,
                                         m if point == "a" else None,
                                         m if point == "b" else None))
            t = m.started
            if t is not None and theta is not None:
                t = t + theta if point == "a" else t - theta
            if other.covers(t):
                only[point].append(m)
    assoc_rows.append({
        "seen": "both", "assoc_id_a": x.assoc_id, "assoc_id_b": y.assoc_id,
        "calling_ae": x.calling or None, "called_ae": x.called or None,
        "requestor_a": x.requestor, "acceptor_a": x.acceptor, "requestor_b": y.requestor,
        "acceptor_b": y.acceptor, "requested_at_a": x.requested, "requested_at_b": y.requested,
        "messages_a": len(x.messages), "messages_b": len(y.messages),
        "messages_both": len(p.messages), "clock_offset_ms": _ms(c.offset),
        "transit_ms": _ms(c.transit), "requestor_side": c.requestor_first,
        "held_messages": len(held), "max_held_ms": max((h for h, _, _ in held), default=None)
        if c.transit is not None else None,
        **{f"lost_between_{s}_bytes": lost_between(x, y, c, s) for s in SENDERS},
        **{f"gaps_{s}_{q}": z.holes.get(s) for s in SENDERS for q, z in (("a", x), ("b", y))}})
    if held:
        findings.append(_held_finding(p, held, sa, sb))
    for point in POINTS:
        if only[point]:
            findings.append(_only_finding(p, point, only[point], sa, sb))


def lost_between(x: _Association, y: _Association, c: Clocks, sender: str) -> int | None:
    """Bytes of ``sender``'s data the network between the points lost: the point its data
    pass first saw them twice (the original and the copy sent again), the other point once
    (the copy, filling a gap). Data lost before the first point is sent again past both (a
    gap at each); data lost beyond the second, or sent again needlessly, passes both twice."""
    first = c.first_point(sender)
    if first is None:
        return None
    near, far = (x, y) if first == "a" else (y, x)
    a, b = near.resent.get(sender), far.resent.get(sender)
    return None if a is None or b is None else max(0, a - b)


def _message_row(seen: str, x: _Association | None, y: _Association | None,
                 m: _Message | None, n: _Message | None) -> dict[str, Any]:
    some = m or n
    assert some is not None
    sender, command, mid, uid = some.key
    row: dict[str, Any] = {"seen": seen, "sender": sender, "command": command,
                           "message_id": mid if mid >= 0 else None,
                           "sop_instance_uid": uid or None}
    for point, assoc, msg in (("a", x, m), ("b", y, n)):
        if assoc is not None:
            row[f"assoc_id_{point}"] = assoc.assoc_id
        if msg is not None:
            row.update({f"msg_index_{point}": msg.index, f"first_frame_{point}": msg.first_frame,
                        f"last_frame_{point}": msg.last_frame,
                        f"started_at_{point}": msg.started, f"ended_at_{point}": msg.ended})
    return row


def _who(x: _Association) -> str:
    return f"{x.calling or '?'} ({x.requestor}) to {x.called or '?'} ({x.acceptor})"


def _held_finding(p: _Pair, held: list[tuple[float, _Message, str]], sa: _Side, sb: _Side
                  ) -> dict[str, Any]:
    x, c = p.x, p.clocks
    held.sort(key=lambda h: -h[0])
    ae = {"requestor": x.calling or "?", "acceptor": x.called or "?"}
    worst = [f"{_msg_text(m)} from {ae[m.key[0]]} {_n(h)} late" for h, m, _ in held]
    points = {first for _, _, first in held}
    passed = ("passed " + " or ".join(sorted(q.upper() for q in points)) +
              " on time and reached the other point late")
    transit = _ms(c.transit) or 0.0
    return {
        "severity": "warning", "code": "held-between-points",
        "assoc_id_a": x.assoc_id, "assoc_id_b": p.y.assoc_id,
        "summary": (
            f"{len(held)} of the {len(p.messages)} messages of the association from "
            f"{_who(x)} took {HELD_MS:.0f} ms or more longer between the two capture points "
            f"than the fastest ({_n(transit)} one way): "
            f"{first_of(worst, NAMED)}. Each {passed}: the time was lost on the "
            f"path between the points (a lost segment and its retransmission, a queue, a "
            f"middlebox that held the data), not in the sending application")}


def _loss_findings(pairs: list[_Pair]) -> list[dict[str, Any]]:
    """One finding per sender (its AE title, to the other's) whose data the network
    between the points lost (`lost_between`), over all its associations."""
    tally: dict[tuple[str, str, str], list[Any]] = {}
    for p in pairs:
        for sender in SENDERS:
            lost = lost_between(p.x, p.y, p.clocks, sender)
            first = p.clocks.first_point(sender)
            if first is None or lost is None:
                continue
            x = p.x
            src, dst = (x.calling, x.called) if sender == "requestor" else (x.called, x.calling)
            t = tally.setdefault((src or "?", dst or "?", first), [0, 0, 0, 0, p])
            t[0] += 1  # associations
            if lost:
                t[1] += 1
                t[2] += lost
            near, far = (p.x, p.y) if first == "a" else (p.y, p.x)
            t[3] += (far.holes.get(sender) or 0)
    out = []
    for (src, dst, first), (n, with_loss, lost, gaps, p) in tally.items():
        if not lost:
            continue
        second = _other(first).upper()
        out.append({
            "severity": "warning", "code": "lost-between-points",
            "assoc_id_a": p.x.assoc_id, "assoc_id_b": p.y.assoc_id,
            "summary": (
                f"The network between the two capture points lost data that {src} sent to "
                f"{dst}: {lost:,} bytes in {with_loss} of {n} association(s). {first.upper()} "
                f"saw them twice (the original and the copy sent again), {second} once"
                + (f", where {gaps:,} segments arrived ahead of a missing one" if gaps else "")
                + f". Each loss costs {src} a retransmission and part of its sending rate: "
                f"look at the links and devices between {first.upper()} and {second} (errors "
                f"and drops on switch ports, a firewall, a WAN link)")})
    return out


def _only_finding(p: _Pair, point: str, msgs: list[_Message], sa: _Side, sb: _Side
                  ) -> dict[str, Any]:
    here, there = (sa, sb) if point == "a" else (sb, sa)
    names = [_msg_text(m) + (f" (frame {m.first_frame})" if m.first_frame is not None else "")
             for m in msgs]
    return {
        "severity": "warning", "code": "message-at-one-point",
        "assoc_id_a": p.x.assoc_id, "assoc_id_b": p.y.assoc_id,
        "summary": (
            f"{len(msgs)} message(s) of the association from {_who(p.x)} are in "
            f"{here.label} but not in {there.label}, though {there.label}'s capture was "
            f"running then: {first_of(names, NAMED)}. TCP delivers every byte in "
            f"order, so either {there.label} is not on that message's path (another route, a "
            f"bond or a second link), or {there.label}'s capture dropped packets "
            f"(its capture-gap findings say)")}


def _unpaired_finding(lost: list[_Association], point: str, side: _Side, other: _Side
                      ) -> dict[str, Any]:
    names = [f"{_who(x)} at {_when(x.first)}" for x in lost]
    return {
        "severity": "warning", "code": "association-at-one-point",
        "assoc_id_a": lost[0].assoc_id if point == "a" else None,
        "assoc_id_b": lost[0].assoc_id if point == "b" else None,
        "summary": (
            f"{len(lost)} association(s) in {side.label} are not in {other.label}, though "
            f"{other.label}'s capture was running then: {first_of(names, NAMED)}. "
            f"{other.label} is not on their path, or they are other associations than they "
            f"seem (the same AE titles, other messages)")}


def _overview(pairs: list[_Pair], sa: _Side, sb: _Side, offset: int | None,
              transit: int | None, rows: list[dict[str, Any]]) -> dict[str, Any]:
    n_both = len(pairs)
    msgs = sum(len(p.messages) for p in pairs)
    text = (f"{sa.label} has {len(sa.associations)} association(s), {sb.label} "
            f"{len(sb.associations)}; {n_both} are in both, with {msgs:,} message(s) in both.")
    if offset is not None:
        off = offset / 1e6
        ahead = "ahead of" if off >= 0 else "behind"
        known = [p.clocks.offset for p in pairs if p.clocks.offset is not None]
        spread = (f" (from {len(known)} association(s): {min(known) / 1e6:,.1f} to "
                  f"{max(known) / 1e6:,.1f} ms)" if len(known) > 1 else "")
        text += f" {sb.label}'s clock reads {_n(abs(off))} {ahead} {sa.label}'s{spread}."
    if transit is not None:
        sides = {p.clocks.requestor_first for p in pairs if p.clocks.requestor_first}
        where = (f" In each, {(sa if 'a' in sides else sb).label} is nearer the requestor;"
                 if len(sides) == 1 else " The requestor is nearer A in some, B in others;")
        text += (f"{where} a message takes {_n(transit / 1e6)} from one point to the other "
                 f"at its fastest.")
    elif n_both:
        text += (" The clocks' offset and the transit between the points cannot be told "
                 "apart: no association has messages in both directions at both points.")
    return {"severity": "note", "code": "two-points", "assoc_id_a": None, "assoc_id_b": None,
            "summary": text}


# ---------------------------------------------------------------------------------------
# Sources, output, text
# ---------------------------------------------------------------------------------------

FORMATS = ("parquet", "csv", "both")
#: Associations `render` gives a line each.
LINES = 40
#: The marker of a folder this module wrote (replaced by the next comparison into it).
MARKER = "compare.json"


def compare_sources(first: Any, second: Any, *, ports: Sequence[int] = (),
                    tshark: str | None = None, tls_keylogs: Sequence[Any] = (),
                    tls_ports: Sequence[int] = ()) -> Comparison:
    """`compare_tables` of two sources, each a capture (analysed now, no objects written;
    DICOM over TLS decrypted with ``tls_keylogs``: one key log serves both points, the
    sessions are the same), an OUT folder written by analyze, or the tables themselves (a
    `Report`)."""
    reports = [_source(p, ports, tshark, tls_keylogs, tls_ports) for p in (first, second)]
    names = tuple(str(p) if isinstance(p, str | Path) else label
                  for p, label in zip((first, second), ("A", "B"), strict=True))
    return compare_tables(reports[0], reports[1], ("A", "B"), (names[0], names[1]))


def _source(source: Any, ports: Sequence[int], tshark: str | None,
            tls_keylogs: Sequence[Any] = (), tls_ports: Sequence[int] = ()) -> Any:
    from .batch import run
    from .errors import CaptureError
    from .report import load
    from .store import has_results

    if not isinstance(source, str | Path):
        return source  # tables already
    path = Path(source)
    if path.is_dir():
        if not has_results(path):
            raise CaptureError(f"{path}: a folder, but not one written by analyze (give one "
                               "capture file, or an OUT folder)")
        report = load(path)
    elif path.is_file():
        report = run([path], ports=ports, tshark=tshark, tls_keylogs=tls_keylogs,
                     tls_ports=tls_ports)
    else:
        raise CaptureError(f"{path}: no such file or folder")
    a = report.associations
    if not len(a):
        raise CaptureError(f"{path}: no DICOM association found, nothing to compare")
    hidden = int(a["tls_decrypted"].eq(False).sum()) if "tls_decrypted" in a else 0
    if hidden and not len(report.messages):  # seen from outside only: nothing to pair by
        raise CaptureError(f"{path}: no DICOM message found, nothing to compare ({hidden} "
                           "association(s) in TLS that was not decrypted: give its key log "
                           "with --tls-keylog)")
    return report


def write_comparison(self: Comparison, out: Path, format: str = "parquet",
                     files: dict[str, str] | None = None) -> None:
    """The three tables into ``out`` (point_associations, point_messages, point_findings),
    and ``files`` (name: text; the page, htmltwopoint.write), whole or not at all: written
    beside it, then put in its place. ``out`` may be new, or an earlier comparison's folder
    (replaced); anything else is left alone."""
    import json
    import os
    import shutil
    import tempfile

    from .errors import OptionsError

    out = Path(out)
    if out.exists() and not (out.is_dir() and ((out / MARKER).is_file()
                                               or not any(out.iterdir()))):
        raise OptionsError(f"{out}: exists and is not an earlier comparison's folder; give "
                           "a new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name in self.TABLES:
            df = self.table(name)
            if format in ("parquet", "both"):
                df.to_parquet(tmp / f"point_{name}.parquet", index=False)
            if format in ("csv", "both"):
                df.to_csv(tmp / f"point_{name}.csv", index=False)
        for name, content in (files or {}).items():
            (tmp / name).write_text(content, encoding="utf-8")
        (tmp / MARKER).write_text(json.dumps(
            {"a": self.captures[0], "b": self.captures[1], "format": format}) + "\n")
        for f in tmp.iterdir():
            os.chmod(f, 0o600)
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            os.replace(out, old / "x")
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise



def render(c: Comparison) -> str:
    """The comparison in plain text: the findings, then one line per association."""
    lines = [f"A: {c.captures[0]}", f"B: {c.captures[1]}"]
    for f in c.findings.itertuples(index=False):
        lines.append(f"{f.severity} [{f.code}] {f.summary}")
    rows = c.associations.to_dict("records")
    # those with something to see first (held up, data lost between, at one point only)
    rows.sort(key=lambda r: not (r["seen"] != "both" or any(
        not missing(r[k]) and r[k] > 0 for k in (
            "held_messages", "lost_between_requestor_bytes", "lost_between_acceptor_bytes"))))
    lines.append("associations:" if len(rows) <= LINES else
                 f"associations (the first {LINES} of {len(rows)}, those with something to "
                 "see first; the tables have all):")
    lines += [_association_line(r) for r in rows[:LINES]]
    return "\n".join(lines)


def _association_line(r: dict[Any, Any]) -> str:
    who = f"{_text(r['calling_ae']) or '?'} -> {_text(r['called_ae']) or '?'}"
    if r["seen"] != "both":
        aid = r["assoc_id_a"] if r["seen"] == "a" else r["assoc_id_b"]
        return f"  {who}  only in {str(r['seen']).upper()} (association {aid})"
    parts = [f"  {who}  A#{r['assoc_id_a']} B#{r['assoc_id_b']}",
             f"{r['messages_both']} of {max(r['messages_a'], r['messages_b'])} messages at both"]
    if not missing(r["clock_offset_ms"]):
        parts.append(f"B's clock {r['clock_offset_ms']:+,.1f} ms")
    if not missing(r["transit_ms"]):
        parts.append(f"transit {r['transit_ms']:,.1f} ms, requestor nearer "
                     f"{str(r['requestor_side']).upper()}")
    if not missing(r["held_messages"]) and r["held_messages"]:
        parts.append(f"held up: {r['held_messages']} (at most {r['max_held_ms']:,.1f} ms)")
    lost = [f"{r[f'lost_between_{s}_bytes']:,} of the {s}'s" for s in SENDERS
            if not missing(r[f"lost_between_{s}_bytes"]) and r[f"lost_between_{s}_bytes"]]
    if lost:
        parts.append("lost between the points: " + " and ".join(lost) + " bytes")
    return "; ".join(parts)
