"""Operations and where their time went: SCU, network or SCP (pure functions over records).

An operation is a DIMSE request with every response to it (pending and final) and a
C-CANCEL sent for it (PS3.7 9.1). Its time on the capture clock splits into:

    gap before      the association idle before the request (since the A-ASSOCIATE-AC or
                    the previous final response): the SCU's time, less one half round trip
                    (capture point -> SCU -> capture point) that is the network's
    request         first to last byte of the request: stalls in the SCU's data are the
                    SCU's (idle, Nagle), the SCP's (its window zero or full) or the
                    network's (waiting on ACKs, retransmissions) - see tcpevidence.py
    turnaround      last request byte to first response byte: the SCP's time, less one
                    half round trip (capture point -> SCP -> capture point)
    response        first to final response byte: stalls in the SCP's data, the same way

A party "stands out" when its time is at least all of: `STANDOUT_MIN_MS`,
`STANDOUT_RTT_FACTOR` round trips (for the SCU and SCP), and the time the operation's bytes
would take at `EXPECTED_BYTES_PER_MS`. The bottleneck is the party that stands out with the
most time; null when none does. Every threshold lives here, and the README repeats them.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from statistics import median

from .association import ACCEPTOR, REQUESTOR, Association, MessageRecord
from .tcpevidence import STALL_PARTY, ConnectionEvidence, DirectionEvidence

#: Nothing shorter than this is ever called slow (ms).
STANDOUT_MIN_MS = 20.0
#: The SCU's or SCP's time must also exceed this many round trips.
STANDOUT_RTT_FACTOR = 2.0
#: ... and the time the operation's bytes take at 100 Mbit/s (12,500 bytes per ms).
EXPECTED_BYTES_PER_MS = 12_500.0
#: Capture point: the side whose half of the round trip is at most this share of it.
CAPTURE_POINT_SHARE = 0.25
#: Below this round trip (ms) the capture point cannot be told (loopback, one switch).
CAPTURE_POINT_MIN_RTT_MS = 1.0

PARTIES = ("scu", "network", "scp")


@dataclass(slots=True)
class OperationRecord:
    """One operation: identity, correlation (filled by correlate.py), timing, attribution."""

    op_index: int
    command: str
    scu: str
    scp: str
    message_id: int | None
    request_index: int
    sop_class_uid: str | None
    sop_instance_uid: str | None
    move_destination: str | None
    first_frame: int
    last_frame: int
    request_first_ns: int
    request_complete_ns: int
    request_bytes: int
    final_response_index: int | None = None
    responses: int = 0
    pending_responses: int = 0
    cancel_index: int | None = None
    status: int | None = None
    status_category: str | None = None
    status_text: str | None = None
    error_comment: str | None = None
    remaining: int | None = None
    completed: int | None = None
    failed: int | None = None
    warning: int | None = None
    response_indices: list[int] = field(default_factory=list)  # msg_index, in order
    # correlation (query/retrieve): correlate.py
    parent_assoc_id: int | None = None
    parent_op_index: int | None = None
    callback_assoc_ids: list[int] | None = None
    callback_attempt_ids: list[int] | None = None
    suboperations_seen: int | None = None
    suboperations_failed: int | None = None
    link: str | None = None
    # timing
    response_first_ns: int | None = None
    response_complete_ns: int | None = None
    response_bytes: int = 0
    gap_before_ms: float | None = None
    retransmitted_bytes: int = 0
    zero_window_ms: float = 0.0
    window_full_ms: float = 0.0
    nagle_ms: float = 0.0
    rtt_ms: float | None = None
    scu_gap_ms: float = 0.0  # the SCU's share of the gap before the request
    gap_network_ms: float = 0.0  # ... and the network's (a half round trip at most)
    scp_turnaround_ms: float = 0.0  # the SCP's share of the turnaround
    turnaround_network_ms: float = 0.0  # ... and the network's
    # attribution
    parts: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PARTIES, 0.0))
    bottleneck: str | None = None
    bottleneck_detail: str | None = None
    #: the phrase behind each party's largest share, for the detail sentence
    _why: dict[str, tuple[float, str]] = field(default_factory=dict, repr=False)

    @property
    def status_hex(self) -> str | None:
        return None if self.status is None else f"0x{self.status:04X}"

    @property
    def request_transfer_ms(self) -> float:
        return ms_between(self.request_first_ns, self.request_complete_ns) or 0.0

    @property
    def turnaround_ms(self) -> float | None:
        return ms_between(self.request_complete_ns, self.response_first_ns)

    @property
    def response_transfer_ms(self) -> float | None:
        return ms_between(self.response_first_ns, self.response_complete_ns)

    @property
    def total_ms(self) -> float | None:
        return ms_between(self.request_first_ns, self.response_complete_ns)

    @property
    def request_mbps(self) -> float | None:
        ms = self.request_transfer_ms
        return self.request_bytes * 8 / (ms * 1000) if ms >= 1.0 else None


@dataclass
class AssociationTiming:
    """The association as a whole: round trip, capture point, setup, release, idle share,
    throughput and its dominant bottleneck."""

    rtt_ms: float | None = None
    rtt_requestor_ms: float | None = None
    rtt_acceptor_ms: float | None = None
    rtt_source: str | None = None  # handshake | data
    capture_point: str | None = None  # requestor | acceptor | between | None (cannot tell)
    window_scale_known: bool = False
    setup_ms: float | None = None
    release_ms: float | None = None
    active_ms: float | None = None
    idle_ms: float | None = None
    idle_share: float | None = None
    throughput_mbps: float | None = None
    zero_window_ms: float = 0.0
    stalls: dict[str, float] = field(default_factory=dict)  # kind -> ms, both directions
    nagle_stalls: dict[str, list[float]] = field(default_factory=dict)  # role -> stall ms
    parts: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PARTIES, 0.0))
    bottleneck: str | None = None
    bottleneck_detail: str | None = None


def ms_between(a: int | None, b: int | None) -> float | None:
    """Milliseconds from ``a`` to ``b`` (ns), None if either is unknown."""
    return None if a is None or b is None else (b - a) / 1e6


def _other(role: str) -> str:
    return ACCEPTOR if role == REQUESTOR else REQUESTOR


def build_operations(assoc: Association) -> list[OperationRecord]:
    """Requests with their responses and cancels, in request order (identity and raw
    times only; `attribute` adds the rest)."""
    ops: list[OperationRecord] = []
    by_request: dict[int, OperationRecord] = {}
    for m in assoc.messages:
        cmd = m.cmd
        if cmd is None or not cmd.is_request or cmd.command == "C-CANCEL-RQ":
            continue
        op = OperationRecord(
            op_index=len(ops), command=cmd.command.removesuffix("-RQ"), scu=m.sender,
            scp=_other(m.sender), message_id=cmd.message_id, request_index=m.msg_index,
            sop_class_uid=cmd.sop_class_uid, sop_instance_uid=cmd.sop_instance_uid,
            move_destination=cmd.move_destination, first_frame=m.first_frame,
            last_frame=m.last_frame, request_first_ns=m.started_ns,
            request_complete_ns=m.ended_ns, request_bytes=_bytes(m))
        ops.append(op)
        by_request[m.msg_index] = op
    for m in assoc.messages:
        found = by_request.get(m.request_index) if m.request_index is not None else None
        if found is None or m.cmd is None:
            continue
        op = found
        if m.cmd.is_request:  # C-CANCEL-RQ
            op.cancel_index = m.msg_index if op.cancel_index is None else op.cancel_index
            op.last_frame = max(op.last_frame, m.last_frame)
            continue
        if op.final_response_index is not None:
            continue  # after the final response nothing more belongs to it
        op.responses += 1
        op.response_indices.append(m.msg_index)
        op.response_bytes += _bytes(m)
        op.last_frame = max(op.last_frame, m.last_frame)
        if op.response_first_ns is None:
            op.response_first_ns = m.started_ns
        if m.status_category == "Pending":
            op.pending_responses += 1
            continue
        op.final_response_index = m.msg_index
        op.response_complete_ns = m.ended_ns
        _final_status(op, m)
    return ops


def _bytes(m: MessageRecord) -> int:
    return m.command_bytes + (m.dataset_bytes or 0)


def _final_status(op: OperationRecord, m: MessageRecord) -> None:
    cmd = m.cmd
    assert cmd is not None
    op.status, op.status_category, op.status_text = cmd.status, m.status_category, m.status_text
    op.error_comment = cmd.error_comment
    op.remaining, op.completed = cmd.remaining, cmd.completed
    op.failed, op.warning = cmd.failed, cmd.warning


# ---------------------------------------------------------------------------------------
class _Stalls:
    """One direction's stalls, searchable by time."""

    def __init__(self, ev: DirectionEvidence | None) -> None:
        self.items = sorted(ev.stalls) if ev is not None else []
        self.starts = [s[0] for s in self.items]

    def within(self, a: int, b: int) -> Iterable[tuple[str, float]]:
        """(kind, ms) of every stall's overlap with [a, b)."""
        if b <= a or not self.items:
            return
        i = max(bisect.bisect_right(self.starts, a) - 1, 0)
        items = self.items
        while i < len(items) and items[i][0] < b:
            s, e, kind, _ = items[i]
            lo, hi = max(s, a), min(e, b)
            if hi > lo:
                yield kind, (hi - lo) / 1e6
            i += 1


def _overlap_ms(spans: Sequence[tuple[int, int]], a: int, b: int) -> float:
    return sum(max(0, min(e, b) - max(s, a)) for s, e in spans) / 1e6


def association_rtt(assoc: Association, ev: ConnectionEvidence | None,
                    timing: AssociationTiming) -> None:
    """Round trip and its halves at the capture point, and where the capture was taken."""
    if ev is None or assoc.requestor is None or assoc.acceptor is None:
        return
    timing.window_scale_known = ev.scale_known
    h_req, h_acc = ev.half_rtt_ns(assoc.requestor), ev.half_rtt_ns(assoc.acceptor)
    if h_req is None or h_acc is None:
        return
    timing.rtt_source = "handshake" if ev.handshake_ns is not None else "data"
    timing.rtt_requestor_ms, timing.rtt_acceptor_ms = h_req / 1e6, h_acc / 1e6
    rtt = timing.rtt_ms = (h_req + h_acc) / 1e6
    if rtt < CAPTURE_POINT_MIN_RTT_MS:
        return
    if h_req / 1e6 <= CAPTURE_POINT_SHARE * rtt:
        timing.capture_point = REQUESTOR
    elif h_acc / 1e6 <= CAPTURE_POINT_SHARE * rtt:
        timing.capture_point = ACCEPTOR
    else:
        timing.capture_point = "between"


def attribute(assoc: Association, ops: list[OperationRecord], ev: ConnectionEvidence | None,
              timing: AssociationTiming) -> None:
    """Fill each operation's gap, TCP evidence, parts and bottleneck."""
    halves = {REQUESTOR: (timing.rtt_requestor_ms or 0.0), ACCEPTOR: (timing.rtt_acceptor_ms
                                                                      or 0.0)}
    dirs: dict[str, DirectionEvidence | None] = {REQUESTOR: None, ACCEPTOR: None}
    if ev is not None:
        for ep, d in ev.directions.items():
            dirs[assoc.role_of(ep)] = d
    stalls = {role: _Stalls(d) for role, d in dirs.items()}
    zero = [z for d in dirs.values() if d is not None for z in d.zero_windows]
    retrans = sorted(r for d in dirs.values() if d is not None for r in d.retransmissions)
    retrans_t = [r[0] for r in retrans]
    # idle before each request: since the AC or the latest final response before it
    finals = sorted((op.response_complete_ns, op.op_index) for op in ops
                    if op.response_complete_ns is not None)
    final_t = [f[0] for f in finals]
    for op in ops:
        i = bisect.bisect_right(final_t, op.request_first_ns)
        since = final_t[i - 1] if i else assoc.responded_ns
        if since is not None and since <= op.request_first_ns:
            op.gap_before_ms = (op.request_first_ns - since) / 1e6
        end = op.response_complete_ns or op.response_first_ns or op.request_complete_ns
        lo = bisect.bisect_left(retrans_t, op.request_first_ns)
        hi = bisect.bisect_right(retrans_t, end)
        op.retransmitted_bytes = sum(b for _, b in retrans[lo:hi])
        op.zero_window_ms = _overlap_ms(zero, op.request_first_ns, end)
        op.rtt_ms = timing.rtt_ms
        _parts(op, stalls, halves)
        _decide(op)


def _add(op: OperationRecord, party: str, ms: float, why: str) -> None:
    if ms <= 0:
        return
    op.parts[party] += ms
    if ms > op._why.get(party, (0.0, ""))[0]:
        op._why[party] = (ms, why)


def _parts(op: OperationRecord, stalls: dict[str, _Stalls], halves: dict[str, float]) -> None:
    scu, scp = op.scu, op.scp
    if op.gap_before_ms is not None:
        net = op.gap_network_ms = min(op.gap_before_ms, halves[scu])
        _add(op, "network", net, f"{net:,.0f} ms round trip to the SCU before the request")
        op.scu_gap_ms = op.gap_before_ms - net
        _add(op, "scu", op.scu_gap_ms, f"idle {op.scu_gap_ms:,.0f} ms before the request")
    legs = [(scu, op.request_first_ns, op.request_complete_ns, "request")]
    if op.response_first_ns is not None and op.response_complete_ns is not None:
        legs.append((scp, op.response_first_ns, op.response_complete_ns, "responses"))
    for sender, a, b, what in legs:
        by_kind: dict[str, float] = {}
        for kind, ms in stalls[sender].within(a, b):
            by_kind[kind] = by_kind.get(kind, 0.0) + ms
        receiver = scp if sender == scu else scu
        for kind, ms in by_kind.items():
            who = STALL_PARTY[kind]
            party = ("scu" if sender == scu else "scp") if who == "sender" else (
                ("scu" if receiver == scu else "scp") if who == "receiver" else "network")
            if kind == "window-full":
                op.window_full_ms += ms
            if kind == "nagle":
                op.nagle_ms += ms
            _add(op, party, ms, _STALL_WHY[kind].format(ms=ms, what=what))
    turn = op.turnaround_ms
    if turn is not None and turn > 0:
        net = op.turnaround_network_ms = min(turn, halves[scp])
        _add(op, "network", net, f"{net:,.0f} ms round trip to the SCP")
        resp = op.command + "-RSP"
        op.scp_turnaround_ms = turn - net
        _add(op, "scp", turn - net, f"{turn - net:,.0f} ms from the last request byte to the "
             f"{resp}" + (f" (less {net:,.1f} ms round trip)" if net >= 0.05 else ""))


_STALL_WHY = {
    "idle": "{ms:,.0f} ms idle while sending the {what}",
    "nagle": "{ms:,.0f} ms of Nagle stalls (a short segment waiting for the delayed ACK) "
             "while sending the {what}",
    "zero-window": "its receive window was zero for {ms:,.0f} ms of the {what}",
    "window-full": "its receive window was full for {ms:,.0f} ms of the {what}",
    "ack-wait": "{ms:,.0f} ms waiting on ACKs (round trip, congestion window) during the {what}",
    "retransmission": "{ms:,.0f} ms waiting on retransmissions during the {what}",
}


def standout_limit_ms(party: str, rtt_ms: float | None, nbytes: int) -> float:
    """The time from which a party's share of an operation counts as slow."""
    limit = max(STANDOUT_MIN_MS, nbytes / EXPECTED_BYTES_PER_MS)
    if party != "network" and rtt_ms:
        limit = max(limit, STANDOUT_RTT_FACTOR * rtt_ms)
    return limit


def _decide(op: OperationRecord) -> None:
    nbytes = op.request_bytes + op.response_bytes
    best: tuple[float, str] | None = None
    for party in PARTIES:
        ms = op.parts[party]
        if ms >= standout_limit_ms(party, op.rtt_ms, nbytes) and (best is None or ms > best[0]):
            best = (ms, party)
    if best is None:
        return
    ms, party = best
    op.bottleneck = party
    total = (op.total_ms or op.request_transfer_ms) + (op.gap_before_ms or 0.0)
    why = op._why[party][1]
    op.bottleneck_detail = f"{party}: {why}" + (
        f"; {ms:,.0f} of {total:,.0f} ms in all" if abs(ms - op._why[party][0]) >= 1 else "")


def association_timing(assoc: Association, ops: list[OperationRecord],
                       ev: ConnectionEvidence | None) -> AssociationTiming:
    """Attribute every operation and sum up the association."""
    t = AssociationTiming()
    association_rtt(assoc, ev, t)
    attribute(assoc, ops, ev, t)
    t.setup_ms = ms_between(assoc.requested_ns, assoc.responded_ns)
    if assoc.release_rq_ns is not None and assoc.release_rp:
        t.release_ms = ms_between(assoc.release_rq_ns, assoc.ended_ns)
    start = assoc.requested_ns or assoc.first_ns
    end = assoc.ended_ns if assoc.ended_ns is not None else assoc.last_ns
    duration = ms_between(start, end)
    if assoc.responded_ns is not None and assoc.result == "accepted":
        stop = assoc.release_rq_ns or end
        t.active_ms = ms_between(assoc.responded_ns, stop)
        idle = sum(op.gap_before_ms or 0.0 for op in ops)
        last = max((op.response_complete_ns or op.request_complete_ns for op in ops),
                   default=assoc.responded_ns)
        if stop is not None and stop > last:
            idle += (stop - last) / 1e6
        t.idle_ms = idle
        t.idle_share = idle / duration if duration else None
    if duration and duration > 0:
        nbytes = sum(d.parser.nbytes for d in assoc.directions.values())
        t.throughput_mbps = nbytes * 8 / (duration * 1000)
    if ev is not None:
        for ep, d in ev.directions.items():
            t.zero_window_ms += sum(e - s for s, e in d.zero_windows) / 1e6
            for s, e, kind, _ in d.stalls:
                t.stalls[kind] = t.stalls.get(kind, 0.0) + (e - s) / 1e6
                if kind == "nagle":
                    t.nagle_stalls.setdefault(assoc.role_of(ep), []).append((e - s) / 1e6)
    slow = [op for op in ops if op.bottleneck]
    for op in slow:
        for party in PARTIES:
            t.parts[party] += op.parts[party]
    if slow:
        by_party: dict[str, list[OperationRecord]] = {}
        for op in slow:
            assert op.bottleneck is not None
            by_party.setdefault(op.bottleneck, []).append(op)
        party, group = max(by_party.items(), key=lambda kv: sum(o.parts[kv[0]] for o in kv[1]))
        ms = sum(o.parts[party] for o in group)
        t.bottleneck = party
        t.bottleneck_detail = (
            f"{party}: {len(group)} of {len(ops)} operations waited mostly on the "
            f"{party.upper() if party != 'network' else 'network'}, {ms:,.0f} ms in all"
            + (f" (median {median(o.parts[party] for o in group):,.0f} ms)"
               if len(group) > 1 else ""))
    return t
