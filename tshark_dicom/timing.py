"""Operations and where their time went: SCU, network or SCP (pure functions over records).

An operation is a DIMSE request with every response to it (pending and final) and a
C-CANCEL sent for it (PS3.7 9.1). Its time on the capture clock splits into:

    gap before      the association idle before the request (since the A-ASSOCIATE-AC or
                    the previous final response): the SCU's time, less one half round trip
                    (capture point -> SCU -> capture point) that is the network's; 0 when
                    the SCU sent it while one of its operations was outstanding
                    (asynchronous operations, asyncops.py)
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
from array import array
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from statistics import median

import numpy as np
import numpy.typing as npt

from .association import ANSWERED_KEPT, Association
from .records import ACCEPTOR, REQUESTOR, MessageRecord, other_role
from .spill import Spill
from .tcpevidence import STALL_PARTY, ConnectionEvidence, DirectionEvidence, StallLog

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
    #: when the C-CANCEL-RQ started, and its first frame (qrfindings.operation_cancelled)
    cancel_ns: int | None = None
    cancel_frame: int | None = None
    status: int | None = None
    status_category: str | None = None
    status_text: str | None = None
    error_comment: str | None = None
    remaining: int | None = None
    completed: int | None = None
    failed: int | None = None
    warning: int | None = None
    response_indices: list[int] = field(default_factory=list)  # msg_index, in order
    #: a C-STORE sub-operation's Move Originator (PS3.7 9.3.1.1), for correlate.py
    move_originator_ae: str | None = None
    move_originator_message_id: int | None = None
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


def until_end_text(op: OperationRecord, end_ns: int | None, answer: str) -> str:
    """How long a capture went on after ``op`` was answered, for a finding about what never
    came: "before the capture ended, 4 ms after the N-ACTION-RSP" (``answer`` names the
    response; ``1.1 s`` from a second on), or "in the capture" when the end is unknown."""
    waited = ms_between(op.response_complete_ns or op.request_complete_ns, end_ns)
    if waited is None:
        return "in the capture"
    ms = max(waited, 0.0)
    return (f"before the capture ended, "
            f"{f'{ms:.0f} ms' if ms < 1000 else f'{ms / 1000:.1f} s'} after the {answer}")


class OperationBuilder:
    """Requests with their responses and cancels (PS3.7 9.1), built as messages settle.

    ``add`` takes each batch of settled messages, in message order, and returns the new
    operations in request order (identity and raw times; `attribute` adds the rest). The
    caller may hand an operation on (`handed_on`) before its final response: its later
    messages then wait as patches, applied by `patched` when it is read back. Answered ones
    handed on still take a late C-CANCEL-RQ for `ANSWERED_KEPT` operations."""

    def __init__(self) -> None:
        self.count = 0
        self.live: dict[int, OperationRecord] = {}  # request msg_index -> op, not handed on
        self.gone: dict[int, int] = {}  # request msg_index -> op_index, handed on
        self._gone_answered: deque[int] = deque()
        self.patches: dict[int, list[MessageRecord]] = {}
        self._deferred: list[MessageRecord] = []

    def add(self, messages: Sequence[MessageRecord]) -> list[OperationRecord]:
        new: list[OperationRecord] = []
        for m in messages:
            cmd = m.cmd
            if cmd is None or not cmd.is_request or cmd.command == "C-CANCEL-RQ":
                continue
            op = OperationRecord(
                op_index=self.count, command=cmd.command.removesuffix("-RQ"), scu=m.sender,
                scp=other_role(m.sender), message_id=cmd.message_id, request_index=m.msg_index,
                sop_class_uid=cmd.sop_class_uid, sop_instance_uid=cmd.sop_instance_uid,
                move_destination=cmd.move_destination, first_frame=m.first_frame,
                last_frame=m.last_frame, request_first_ns=m.started_ns,
                request_complete_ns=m.ended_ns, request_bytes=_bytes(m),
                move_originator_ae=(cmd.move_originator_ae or "").strip() or None,
                move_originator_message_id=cmd.move_originator_message_id)
            self.count += 1
            new.append(op)
            self.live[m.msg_index] = op
        todo = self._deferred
        self._deferred = []
        todo.extend(m for m in messages if m.request_index is not None and m.cmd is not None)
        for m in todo:
            index = m.request_index
            assert index is not None
            found = self.live.get(index)
            if found is not None:
                _attach(found, m)
            elif index in self.gone:
                self.patches.setdefault(self.gone[index], []).append(m)
            elif index > m.msg_index:  # it answers a request that settles in a later batch
                self._deferred.append(m)
        return new

    @property
    def deferred_from(self) -> int | None:
        """The lowest message index still waiting for its request to settle."""
        return min((m.msg_index for m in self._deferred), default=None)

    def handed_on(self, op: OperationRecord) -> None:
        """``op`` has left the caller's memory: what still comes for it is a patch."""
        del self.live[op.request_index]
        self.gone[op.request_index] = op.op_index
        if op.final_response_index is not None:
            answered = self._gone_answered
            answered.append(op.request_index)
            if len(answered) > ANSWERED_KEPT:
                self.gone.pop(answered.popleft(), None)

    def patched(self, op: OperationRecord) -> OperationRecord:
        """``op`` with the messages that came for it after it was handed on."""
        for m in self.patches.pop(op.op_index, ()):
            _attach(op, m)
        return op


def build_operations(messages: Iterable[MessageRecord]) -> list[OperationRecord]:
    """Every operation of these messages (all of one association, in message order)."""
    builder = OperationBuilder()
    return builder.add(list(messages))


def _attach(op: OperationRecord, m: MessageRecord) -> None:
    """A response or C-CANCEL-RQ to ``op``'s request, in message order."""
    cmd = m.cmd
    assert cmd is not None
    if cmd.is_request:  # C-CANCEL-RQ
        if op.cancel_index is None:
            op.cancel_index, op.cancel_ns, op.cancel_frame = (m.msg_index, m.started_ns,
                                                              m.first_frame)
        op.last_frame = max(op.last_frame, m.last_frame)
        return
    if op.final_response_index is not None:
        return  # after the final response nothing more belongs to it
    op.responses += 1
    op.response_indices.append(m.msg_index)
    op.response_bytes += _bytes(m)
    op.last_frame = max(op.last_frame, m.last_frame)
    if op.response_first_ns is None:
        op.response_first_ns = m.started_ns
    if m.status_category == "Pending":
        op.pending_responses += 1
        return
    op.final_response_index = m.msg_index
    op.response_complete_ns = m.ended_ns
    if op.sop_instance_uid is None and op.command == "N-CREATE":
        # the SCU left the instance's UID to the SCP, which gives it in its response
        # (PS3.7 10.1.5.1.4; an MPPS a RIS numbers, PS3.4 F.7.2.1.1)
        op.sop_instance_uid = cmd.sop_instance_uid
    _final_status(op, m)


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
        self.items = ev.stalls.sorted() if ev is not None else StallLog()
        self.starts = self.items.starts

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


class _Attribute:
    """Fills one operation's gap, TCP evidence, parts and bottleneck (called on each in
    request order; ``finals``: every final response's time, sorted)."""

    def __init__(self, assoc: Association, ev: ConnectionEvidence | None,
                 timing: AssociationTiming, finals: npt.NDArray[np.int64]) -> None:
        self.responded_ns = assoc.responded_ns
        self.rtt_ms = timing.rtt_ms
        self.halves = {REQUESTOR: (timing.rtt_requestor_ms or 0.0),
                       ACCEPTOR: (timing.rtt_acceptor_ms or 0.0)}
        dirs: dict[str, DirectionEvidence | None] = {REQUESTOR: None, ACCEPTOR: None}
        if ev is not None:
            for ep, d in ev.directions.items():
                dirs[assoc.role_of(ep)] = d
        self.stalls = {role: _Stalls(d) for role, d in dirs.items()}
        self.zero = [z for d in dirs.values() if d is not None for z in d.zero_windows]
        self.retrans = sorted(r for d in dirs.values() if d is not None
                              for r in d.retransmissions)
        self.retrans_t = [r[0] for r in self.retrans]
        self.finals = finals
        #: per invoking side: the latest final response of its operations so far
        self.answered_until = {REQUESTOR: -1, ACCEPTOR: -1}

    def __call__(self, op: OperationRecord) -> OperationRecord:
        # idle before each request: since the AC or the latest final response before it;
        # none when the same side had an operation outstanding (asynchronous operations:
        # it sent this one without waiting, so it kept nobody waiting)
        finals = self.finals
        i = int(np.searchsorted(finals, op.request_first_ns, side="right"))
        since = int(finals[i - 1]) if i else self.responded_ns
        queued = op.request_first_ns < self.answered_until.get(op.scu, -1)
        if queued:
            op.gap_before_ms = 0.0
        elif since is not None and since <= op.request_first_ns:
            op.gap_before_ms = (op.request_first_ns - since) / 1e6
        if op.final_response_index is not None and op.response_complete_ns is not None:
            self.answered_until[op.scu] = max(self.answered_until.get(op.scu, -1),
                                              op.response_complete_ns)
        end = op.response_complete_ns or op.response_first_ns or op.request_complete_ns
        if self.retrans:
            lo = bisect.bisect_left(self.retrans_t, op.request_first_ns)
            hi = bisect.bisect_right(self.retrans_t, end)
            op.retransmitted_bytes = sum(b for _, b in self.retrans[lo:hi])
        op.zero_window_ms = _overlap_ms(self.zero, op.request_first_ns, end)
        op.rtt_ms = self.rtt_ms
        _parts(op, self.stalls, self.halves, queued)
        _decide(op)
        return op


def _add(op: OperationRecord, party: str, ms: float, why: str) -> None:
    if ms <= 0:
        return
    op.parts[party] += ms
    if ms > op._why.get(party, (0.0, ""))[0]:
        op._why[party] = (ms, why)


def _parts(op: OperationRecord, stalls: dict[str, _Stalls], halves: dict[str, float],
           queued: bool = False) -> None:
    """``queued``: the request went while an earlier one of its SCU was outstanding
    (asynchronous operations); the SCP's data then stalled in the turnaround is its
    responses to the earlier requests, which held this one back."""
    scu, scp = op.scu, op.scp
    if op.gap_before_ms is not None:
        # the SCP sent part of its last response again in the gap: the SCU could not have
        # it before (a segment, or the ACK that would have stopped it, lost beyond the
        # capture point), so that wait is the network's, not the SCU's idling
        gap_ns = int(op.gap_before_ms * 1e6)
        resent = min(op.gap_before_ms, sum(
            ms for kind, ms in stalls[scp].within(op.request_first_ns - gap_ns,
                                                  op.request_first_ns)
            if kind == "retransmission"))
        if resent > 0:
            _add(op, "network", resent, f"{resent:,.0f} ms until the SCP sent part of its "
                 "response again, before the request (a segment, or the answer to it, lost "
                 "beyond the capture point)")
        net = min(op.gap_before_ms - resent, halves[scu])
        op.gap_network_ms = net + resent
        _add(op, "network", net, f"{net:,.0f} ms round trip to the SCU before the request")
        op.scu_gap_ms = op.gap_before_ms - resent - net
        _add(op, "scu", op.scu_gap_ms, f"idle {op.scu_gap_ms:,.0f} ms before the request")
    legs = [(scu, op.request_first_ns, op.request_complete_ns, "request", False)]
    if op.response_first_ns is not None and op.response_complete_ns is not None:
        legs.append((scp, op.response_first_ns, op.response_complete_ns, "responses", False))
        if queued:  # in the turnaround
            legs.append((scp, op.request_complete_ns, op.response_first_ns,
                         "responses to the requests before it", True))
    held = 0.0  # of the turnaround, in the SCP's stalls before this response
    for sender, a, b, what, in_turnaround in legs:
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
            if in_turnaround:
                held += ms
            _add(op, party, ms, _STALL_WHY[kind].format(ms=ms, what=what))
    if op.response_first_ns is not None:
        # the SCU sent part of the request again after its last byte: its segment, or the
        # ACK (or response) that would have stopped it, was lost past the capture point,
        # so the SCP could not answer before: the network's time, not the SCP's
        resent = sum(ms for kind, ms in stalls[scu].within(op.request_complete_ns,
                                                           op.response_first_ns)
                     if kind == "retransmission")
        if resent > 0:
            held += resent
            _add(op, "network", resent, f"{resent:,.0f} ms until the SCU sent part of the "
                 "request again after its last byte (a segment, or the answer to it, lost "
                 "beyond the capture point)")
    turn = op.turnaround_ms
    if turn is not None and turn - held > 0:
        turn -= held
        net = op.turnaround_network_ms = min(turn, halves[scp])
        _add(op, "network", net, f"{net:,.0f} ms round trip to the SCP")
        resp = op.command + "-RSP"
        op.scp_turnaround_ms = turn - net
        _add(op, "scp", turn - net, f"{turn - net:,.0f} ms from the last request byte to the "
             f"{resp}" + (f" (less {net:,.1f} ms round trip)" if net >= 0.05 else "")
             + (f" (less {held:,.0f} ms of stalls sending the responses before it)"
                if held >= 1 else ""))


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


class _Totals:
    """What the association's timing needs of its operations, gathered one at a time."""

    def __init__(self) -> None:
        self.count = 0
        self.idle_ms = 0.0
        self.last_ns: int | None = None  # the latest end of an operation
        self.parts = dict.fromkeys(PARTIES, 0.0)
        #: per bottleneck party, in order of first appearance: its operations' share
        self.by_party: dict[str, array[float]] = {}

    def __call__(self, op: OperationRecord) -> OperationRecord:
        self.count += 1
        self.idle_ms += op.gap_before_ms or 0.0
        end = op.response_complete_ns or op.request_complete_ns
        if self.last_ns is None or end > self.last_ns:
            self.last_ns = end
        if op.bottleneck:
            for party in PARTIES:
                self.parts[party] += op.parts[party]
            self.by_party.setdefault(op.bottleneck, array("d")).append(
                op.parts[op.bottleneck])
        return op


def association_timing(assoc: Association, ops: Spill[OperationRecord],
                       ev: ConnectionEvidence | None) -> AssociationTiming:
    """Attribute every operation (rewriting ``ops``) and sum up the association."""
    t = AssociationTiming()
    association_rtt(assoc, ev, t)
    finals = np.fromiter((op.response_complete_ns for op in ops
                          if op.response_complete_ns is not None), dtype=np.int64)
    finals.sort()
    attribute = _Attribute(assoc, ev, t, finals)
    totals = _Totals()
    ops.rewrite(lambda op: totals(attribute(op)))
    t.setup_ms = ms_between(assoc.requested_ns, assoc.responded_ns)
    if assoc.release_rq_ns is not None and assoc.release_rp:
        t.release_ms = ms_between(assoc.release_rq_ns, assoc.ended_ns)
    start = assoc.requested_ns or assoc.first_ns
    end = assoc.ended_ns if assoc.ended_ns is not None else assoc.last_ns
    duration = ms_between(start, end)
    if assoc.responded_ns is not None and assoc.result == "accepted":
        stop = assoc.release_rq_ns or end
        t.active_ms = ms_between(assoc.responded_ns, stop)
        idle = totals.idle_ms
        last = totals.last_ns if totals.count else assoc.responded_ns
        if stop is not None and last is not None and stop > last:
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
    t.parts = totals.parts
    if totals.by_party:
        party, group = max(totals.by_party.items(), key=lambda kv: sum(kv[1]))
        ms = sum(group)
        t.bottleneck = party
        t.bottleneck_detail = (
            f"{party}: {len(group)} of {totals.count} operations waited mostly on the "
            f"{party.upper() if party != 'network' else 'network'}, {ms:,.0f} ms in all"
            + (f" (median {median(group):,.0f} ms)" if len(group) > 1 else ""))
    return t
