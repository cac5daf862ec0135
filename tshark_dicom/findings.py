"""Expert rules over finished records: timing patterns (PS3.7 operations, PS3.8 PDUs, TCP).
Query/retrieve and character sets: qrfindings.py; the association's own, as it decodes:
assocfindings.py.

Each rule is a small function: its code, severity and sentence, naming the AE titles, the
numbers and what to change. Rules read records only (association, operations, timing,
TCP evidence); they never decode anything. Thresholds live beside the rule that uses them
and in timing.py (what "stands out").
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import median

from .association import Association
from .pdu import P_DATA_TF, PDU_NAMES
from .records import (
    ACCEPTOR,
    REQUESTOR,
    FindingRecord,
    duration_text,
    other_role,
)
from .spill import Spill
from .tcpevidence import ConnectionEvidence
from .timing import STANDOUT_MIN_MS, AssociationTiming, OperationRecord, standout_limit_ms

#: small-pdu: a receiver's maximum PDU length under this (bytes) ...
SMALL_PDU_BYTES = 16_384
#: ... against data sets of at least this many PDUs each on average ...
SMALL_PDU_RATIO = 4
#: ... and at least this much data set data in the direction (bytes).
SMALL_PDU_MIN_DATA = 1 << 20
#: retransmissions: at least this many segments, and this share of the bytes.
RETRANSMIT_MIN_SEGMENTS = 3
RETRANSMIT_MIN_SHARE = 0.01
#: scu-idle: the association waited on the SCU at least this share of its time.
SCU_IDLE_MIN_SHARE = 0.5
#: nagle-stall: at least this many stalls on one side.
NAGLE_MIN_STALLS = 3
#: slow-association-setup: A-ASSOCIATE-RQ to its answer, less the round trip (ms).
SLOW_SETUP_MS = 250.0
#: association-per-object: at least this many one-object associations between one AE pair
#: whose setup and release take at least this share of their time.
PER_OBJECT_MIN_ASSOCIATIONS = 5
PER_OBJECT_MIN_SHARE = 0.2

TIMING_CODES = (
    "slow-scp-response", "scu-idle", "network-latency", "receiver-window", "retransmissions",
    "small-pdu", "nagle-stall", "association-per-object", "slow-association-setup",
)


@dataclass
class TimingContext:
    """What a timing rule reads about one association."""

    assoc: Association
    ops: Spill[OperationRecord]  # read again by each rule, a chunk at a time
    timing: AssociationTiming
    evidence: ConnectionEvidence | None

    def ae(self, role: str) -> str:
        a = self.assoc
        name = a.calling_ae if role == REQUESTOR else a.called_ae
        ep = a.requestor if role == REQUESTOR else a.acceptor
        where = f" ({ep[0]}:{ep[1]})" if ep else ""
        return (name or f"the {role}") + where

    def title(self, role: str) -> str:
        """The AE title of a side, without its address."""
        a = self.assoc
        return (a.calling_ae if role == REQUESTOR else a.called_ae) or f"the {role}"

    def ae_of(self, op: OperationRecord, party: str) -> str:
        """The AE title of an operation's SCU or SCP (without address)."""
        role = op.scu if party == "scu" else op.scp
        a = self.assoc
        return (a.calling_ae if role == REQUESTOR else a.called_ae) or f"the {role}"


_n = duration_text


def _rtt(ms: float | None) -> str:
    if ms is None:
        return "unknown"
    return f"{ms:,.1f} ms" if ms >= 1 else f"{ms * 1000:,.0f} µs"


class _Picked:
    """The operations a rule picked, one at a time: the first, and a value of each."""

    def __init__(self) -> None:
        self.first: OperationRecord | None = None
        self.values: array[float] = array("d")
        self.commands: set[str] = set()

    def add(self, op: OperationRecord, value: float) -> None:
        if self.first is None:
            self.first = op
        self.values.append(value)
        self.commands.add(op.command)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def op(self) -> OperationRecord:
        assert self.first is not None
        return self.first

    def where(self) -> tuple[int | None, int | None]:
        """The frame and message of the first one."""
        return self.op.first_frame, self.op.request_index

    def command_names(self) -> str:
        return "/".join(sorted(self.commands))


#: Retrieves answer after (C-GET: between) their sub-operations: their time is the
#: sub-operations', which the query/retrieve correlation accounts for, not a slow answer.
RETRIEVES = frozenset({"C-MOVE", "C-GET"})


def slow_scp_response(c: TimingContext) -> list[FindingRecord]:
    slow = _Picked()
    for op in c.ops:
        if op.bottleneck == "scp" and op.command not in RETRIEVES and op.scp_turnaround_ms \
                >= standout_limit_ms("scp", op.rtt_ms, op.request_bytes + op.response_bytes):
            slow.add(op, op.scp_turnaround_ms)
    if not slow:
        return []
    waits = slow.values
    same = sum(1 for op in c.ops if op.command in slow.commands)
    frame, msg = slow.where()
    return [FindingRecord(msg, frame, "warning", "slow-scp-response", (
        f"{c.ae_of(slow.op, 'scp')} took a median {_n(median(waits))} (max {_n(max(waits))}) "
        f"from the last request byte to its response on {len(slow)} of {same} "
        f"{slow.command_names()} operations from {c.ae_of(slow.op, 'scu')} ({_n(sum(waits))} "
        "in all, round trip already taken off): the SCP is slow to answer; check what it does "
        "before responding (storage, database, forwarding, logs)"))]


def scu_idle(c: TimingContext) -> list[FindingRecord]:
    share = c.timing.idle_share
    if share is None or share < SCU_IDLE_MIN_SHARE:
        return []
    slow = _Picked()
    for op in c.ops:
        if op.bottleneck == "scu" and op.scu_gap_ms >= standout_limit_ms(
                "scu", op.rtt_ms, op.request_bytes + op.response_bytes):
            slow.add(op, op.scu_gap_ms)
    if not slow:
        return []
    gaps = slow.values
    frame, msg = slow.where()
    return [FindingRecord(msg, frame, "warning", "scu-idle", (
        f"{c.ae_of(slow.op, 'scu')} waited a median {_n(median(gaps))} (max {_n(max(gaps))}) "
        f"before {len(slow)} of {len(c.ops)} requests to {c.ae_of(slow.op, 'scp')}, "
        f"{_n(sum(gaps))} in all; the association was idle {share:.0%} of its time: the "
        "SCU is slow to send its next request (think time, reading files, one "
        "request at a time); send requests back to back or check the SCU"))]


def network_latency(c: TimingContext) -> list[FindingRecord]:
    rtt = c.timing.rtt_ms
    if rtt is None or rtt < STANDOUT_MIN_MS:
        return []
    slow = _Picked()
    for op in c.ops:
        if op.bottleneck == "network":
            slow.add(op, op.parts["network"])
    if not slow:
        return []
    ms = sum(slow.values)
    point = {REQUESTOR: "near the requestor", ACCEPTOR: "near the acceptor",
             "between": "between the peers"}.get(c.timing.capture_point or "", "unknown")
    frame, msg = slow.where()
    return [FindingRecord(msg, frame, "warning", "network-latency", (
        f"the round trip between {c.ae(REQUESTOR)} and {c.ae(ACCEPTOR)} is {_rtt(rtt)} "
        f"(capture point {point}); {len(slow)} of {len(c.ops)} operations waited mostly on "
        f"the network, {_n(ms)} in all: every operation costs at least one round trip, so "
        "send more per association, use asynchronous operations, or bring the peers closer"))]


def receiver_window(c: TimingContext) -> list[FindingRecord]:
    out: list[FindingRecord] = []
    for receiver_party in ("scp", "scu"):
        slow = _Picked()
        full = 0.0
        for op in c.ops:
            if op.bottleneck == receiver_party and op.zero_window_ms + op.window_full_ms \
                    >= standout_limit_ms(receiver_party, op.rtt_ms,
                                         op.request_bytes + op.response_bytes):
                slow.add(op, op.zero_window_ms)
                full += op.window_full_ms
        if not slow:
            continue
        zero = sum(slow.values)
        rcv = slow.op.scp if receiver_party == "scp" else slow.op.scu
        snd = slow.op.scu if receiver_party == "scp" else slow.op.scp
        ev = c.evidence
        largest = None
        if ev is not None:
            ep = c.assoc.requestor if rcv == REQUESTOR else c.assoc.acceptor
            d = ev.directions.get(ep) if ep else None
            largest = d.max_window if d else None
        frame, msg = slow.where()
        out.append(FindingRecord(msg, frame, "warning", "receiver-window", (
            f"{c.ae(rcv)}'s receive window was zero for {_n(zero)} and full for {_n(full)} "
            f"while {c.ae(snd)} sent, on {len(slow)} of {len(c.ops)} operations"
            + (f" (largest window it advertised: {largest:,} bytes)" if largest else "")
            + f": {c.title(rcv)} reads slower than the data arrives; check its "
            "disk, CPU and socket receive buffer")))
    return out


def retransmissions(c: TimingContext) -> list[FindingRecord]:
    a = c.assoc
    segs = 0
    waited = c.timing.stalls.get("retransmission", 0.0) + c.timing.stalls.get("ack-wait", 0.0)
    rbytes = sum(a.tcp_retransmitted.values())  # bytes this point saw twice
    ooo = sum(a.tcp_out_of_order.values())
    sent = rbytes  # bytes sent again, as this point saw them (twice, or once filling a gap)
    if c.evidence is not None:
        segs = sum(len(d.retransmissions) for d in c.evidence.directions.values())
        sent = max(rbytes, sum(d.retransmitted_bytes for d in c.evidence.directions.values()))
    total = sum(d.parser.nbytes for d in a.directions.values()) or 1
    if segs + ooo < RETRANSMIT_MIN_SEGMENTS or (rbytes / total < RETRANSMIT_MIN_SHARE
                                                 and ooo < RETRANSMIT_MIN_SEGMENTS):
        return []
    # where the losses were, as one point can tell: a copy whose original passed it was
    # lost beyond it; a copy that filled a gap, before it
    where = ("" if not sent else
             "; the capture point saw their originals too: lost beyond it, toward the "
             "receivers" if rbytes >= sent else
             "; the capture point saw only the copies, filling gaps: lost before it, on the "
             "senders' side" if rbytes == 0 else
             f"; {rbytes:,} of those bytes passed the capture point twice (lost beyond it), "
             "the rest once, filling gaps (lost before it)")
    return [FindingRecord(None, a.first_frame, "warning", "retransmissions", (
        f"{segs} TCP segments ({sent:,} bytes, {sent / total:.1%} of {total:,}) were "
        f"retransmitted and {ooo} arrived out of order between {c.ae(REQUESTOR)} and "
        f"{c.ae(ACCEPTOR)}{where}; the senders waited {_n(waited)} on acknowledgements: "
        "packets are lost or reordered on the path (check duplex settings, interface errors, "
        "congestion, and the capture point's own drops; `tshark-dicom compare` of a capture "
        "at each end tells which part of the path)"))]


def small_pdu(c: TimingContext) -> list[FindingRecord]:
    a = c.assoc
    out: list[FindingRecord] = []
    for sender in (REQUESTOR, ACCEPTOR):
        receiver = other_role(sender)
        limit = a.max_pdu[receiver]
        if not limit or limit >= SMALL_PDU_BYTES:
            continue
        sets, data = a.dataset_totals[sender]
        if data < SMALL_PDU_MIN_DATA or data / sets < SMALL_PDU_RATIO * limit:
            continue
        pdus = a.pdus[sender].get(PDU_NAMES[P_DATA_TF], 0)
        busy = sum(op.request_transfer_ms for op in c.ops
                   if op.scu == sender and op.request_bytes)
        rate = f"; data went at {data * 8 / (busy * 1000):,.1f} Mbit/s" if busy >= 1 else ""
        out.append(FindingRecord(None, a.first_frame, "warning", "small-pdu", (
            f"{c.ae(sender)} sent {data / 1e6:,.1f} MB of data sets in {pdus:,} P-DATA-TF "
            f"PDUs because {c.ae(receiver)} accepts at most {limit:,} bytes per PDU "
            f"({pdus * 12:,} bytes of PDU and PDV headers, and one PDU to write, read and "
            f"parse every {limit:,} bytes){rate}: configure {c.title(receiver)} "
            "for a maximum PDU length of 64 KB or more")))
    return out


def nagle_stall(c: TimingContext) -> list[FindingRecord]:
    out: list[FindingRecord] = []
    for role, stalls in sorted(c.timing.nagle_stalls.items()):
        if len(stalls) < NAGLE_MIN_STALLS:
            continue
        peer = other_role(role)
        out.append(FindingRecord(None, c.assoc.first_frame, "warning", "nagle-stall", (
            f"{c.ae(role)} stalled {len(stalls)} times, a median {_n(median(stalls))} each "
            f"({_n(sum(stalls))} in all), after sending a short segment: it held the rest "
            f"until {c.title(peer)}'s delayed ACK (Nagle's algorithm with delayed "
            f"ACKs); set TCP_NODELAY on {c.title(role)}'s socket (dcmtk: "
            "environment variable TCP_NODELAY=1), or have it write each PDU in one piece")))
    return out


def slow_association_setup(c: TimingContext) -> list[FindingRecord]:
    setup = c.timing.setup_ms
    if setup is None:
        return []
    rtt = c.timing.rtt_acceptor_ms or 0.0
    if setup - rtt < SLOW_SETUP_MS:
        return []
    a = c.assoc
    answer = "rejected" if a.result == "rejected" else "accepted"
    return [FindingRecord(None, a.requested_frame, "warning", "slow-association-setup", (
        f"{c.ae(ACCEPTOR)} took {_n(setup)} to answer ({answer}) the A-ASSOCIATE-RQ from "
        f"{c.ae(REQUESTOR)} (round trip {_rtt(c.timing.rtt_ms)}): {SLOW_SETUP_ADVICE}"))]


#: What slow-association-setup advises in general; `late_own_callback` says more of a
#: C-MOVE's callback to the C-MOVE's own SCU.
SLOW_SETUP_ADVICE = ("check the SCP's reverse DNS lookups, AE title and certificate checks, "
                     "and its load")


ASSOCIATION_RULES: tuple[Callable[[TimingContext], list[FindingRecord]], ...] = (
    slow_association_setup, slow_scp_response, scu_idle, network_latency, receiver_window,
    retransmissions, small_pdu, nagle_stall,
)


def timing_findings(c: TimingContext) -> list[FindingRecord]:
    """Every per-association timing rule."""
    return [f for rule in ASSOCIATION_RULES for f in rule(c)]


@dataclass(slots=True)
class _PerObjectGroup:
    """One AE pair's one-object associations (PerObjectTally)."""

    key: int  # the first association's (first-packet order)
    frame: int | None  # its first frame
    members: int = 0
    total_ms: float = 0.0
    overhead_ms: float = 0.0  # what connecting, negotiating and releasing took
    moves: int = 0  # of them, C-MOVE sub-operations
    originators: set[str] = field(default_factory=set)  # their Move Originators (two at most)


class PerObjectTally:
    """association-per-object, fed one association at a time (memory: one entry per AE
    pair and addresses): many associations between one AE pair with one object each,
    whose setup and release take a large share of their time. The finding goes on the
    group's first association (the smallest ``key``: first-packet order)."""

    def __init__(self) -> None:
        #: (calling, called, requestor ip, acceptor ip) -> the group
        self.groups: dict[tuple[str, str, str, str], _PerObjectGroup] = {}

    def add(self, key: int, c: TimingContext) -> None:
        a = c.assoc
        if a.result != "accepted" or len(c.ops) != 1:
            return
        op = c.ops.first()
        if op.command != "C-STORE":
            return
        group = (a.calling_ae or "", a.called_ae or "",
                 a.requestor[0] if a.requestor else "", a.acceptor[0] if a.acceptor else "")
        end = a.ended_ns if a.ended_ns is not None else a.last_ns
        span = (end - a.first_ns) / 1e6
        g = self.groups.setdefault(group, _PerObjectGroup(key, a.first_frame))
        g.members += 1
        g.total_ms += span
        g.overhead_ms += span - (op.total_ms or 0.0)
        if key < g.key:
            g.key, g.frame = key, a.first_frame
        if op.move_originator_ae is not None or op.move_originator_message_id is not None:
            g.moves += 1  # a C-MOVE's sub-operation (PS3.7 9.1.1.1: only those carry it)
            if op.move_originator_ae and len(g.originators) < 2:
                g.originators.add(op.move_originator_ae)

    def findings(self) -> list[tuple[int, FindingRecord]]:
        """(key of the group's first association, finding)."""
        out: list[tuple[int, FindingRecord]] = []
        for (calling, called, _, _), g in self.groups.items():
            if g.members < PER_OBJECT_MIN_ASSOCIATIONS:
                continue
            share = g.overhead_ms / g.total_ms if g.total_ms else 0.0
            if share < PER_OBJECT_MIN_SHARE:
                continue
            if g.moves * 2 > g.members:  # mostly the callbacks of C-MOVEs of one object each
                if len(g.originators) > 1:
                    continue  # several SCUs' retrievals of one object: nothing to change
                who = f" from {next(iter(g.originators))}" if g.originators else ""
                advice = (f"{g.moves} of them are the callbacks of C-MOVEs{who} that moved one "
                          "object each, and every C-MOVE gets an association of its own: "
                          "retrieving a series or study with one C-MOVE, not image by image, "
                          f"lets {calling or 'the archive'} send its objects over one")
            else:
                advice = ("send the objects over one association (for dcmtk storescu: all "
                          "files in one call)")
            out.append((g.key, FindingRecord(None, g.frame, "warning", "association-per-object", (
                f"{calling or 'the requestor'} opened {g.members} associations to "
                f"{called or 'the acceptor'}, one per object: connecting, negotiating and "
                f"releasing took {_n(g.overhead_ms)} of their {_n(g.total_ms)} ({share:.0%}); "
                f"{advice}"))))
        return out
