"""TCP byte-stream reassembly, per connection and direction, from raw sequence numbers.

We do this ourselves rather than trust tshark's desegmentation: it must keep going through
loss and reordering (tshark's ``tcp.reassemble_out_of_order`` is off by default), must never
glue bytes across a hole in the capture, and must not hold more than the TCP window.

Each direction (`HalfStream`) delivers, in sequence order, to a `StreamSink`:
``data`` for bytes we have, ``gap`` for bytes the capture lacks (lost by the capture
point or cut by its snaplen), and ``end`` once, when the direction is finished.
Retransmissions and overlaps are dropped (first copy wins, as a receiver would keep it).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Final, Protocol

from mypy_extensions import mypyc_attr

from .packets import ACK, FIN, RST, SYN, Packet

_MOD: Final = 1 << 32
_HALF: Final = 1 << 31
#: Out-of-order bytes we hold while waiting for a missing segment. Beyond this the missing
#: bytes are declared a gap; the peer's ACK usually proves it long before (see `ack`).
MAX_PENDING_BYTES = 16 << 20


@mypyc_attr(allow_interpreted_subclasses=True)
class StreamSink:
    """Receives one direction of a TCP connection, in order. A base class, not a Protocol:
    from the compiled modules a call to a subclass's method is then native, where a
    Protocol's is a Python call with its numbers boxed (every data segment makes one)."""

    __slots__ = ()

    def data(self, data: bytes, frame: int, time_ns: int) -> None:
        raise NotImplementedError

    def gap(self, nbytes: int, frame: int, time_ns: int, cause: str) -> None:
        """``cause`` is ``snaplen`` (the capture cut the packet short) or ``lost`` (segments
        the capture never saw)."""
        raise NotImplementedError

    def end(self, how: str, frame: int, time_ns: int) -> None:
        """``how`` is ``fin``, ``rst`` or ``eof`` (the capture ended first)."""
        raise NotImplementedError


@dataclass
class HalfStreamStats:
    """What the direction's segments looked like, for findings and timing."""

    packets: int = 0
    syns: int = 0
    payload_packets: int = 0
    delivered_bytes: int = 0
    gap_bytes: int = 0
    gaps: int = 0
    retransmitted_bytes: int = 0
    out_of_order: int = 0
    first_frame: int | None = None
    first_time_ns: int | None = None
    last_time_ns: int | None = None

    @property
    def stream_bytes(self) -> int:
        return self.delivered_bytes + self.gap_bytes


class HalfStream:
    """One direction of a TCP connection: sequence-ordered delivery to its sink."""

    __slots__ = (
        "sink", "stats", "_next", "_last_raw", "_last_abs", "_pending", "_pending_bytes",
        "_fin_at", "_ended", "syn_seen", "fin_seen", "rst_seen", "_heap", "acked_raw",
    )

    def __init__(self, sink: StreamSink) -> None:
        self.sink = sink
        self.stats = HalfStreamStats()
        self._next: int | None = None  # next expected absolute offset
        self._last_raw = 0
        self._last_abs = 0
        # absolute offset -> (payload, missing tail bytes, frame, time)
        self._pending: dict[int, tuple[bytes, int, int, int]] = {}
        self._heap: list[int] = []
        self._pending_bytes = 0
        self._fin_at: int | None = None
        #: the last ACK value acted on: the same value again can prove nothing new (the
        #: next expected byte only moves forward), so the connection skips the call
        self.acked_raw = -1
        self._ended = False
        self.syn_seen = False
        self.fin_seen = False
        self.rst_seen = False

    def _unwrap(self, raw: int) -> int:
        """32-bit sequence number -> 64-bit offset, nearest to the last one seen (RFC 9293)."""
        if self._next is None and not self._pending:
            self._last_raw, self._last_abs = raw, raw
            return raw
        delta = (raw - self._last_raw) % _MOD
        if delta >= _HALF:
            delta -= _MOD
        value = self._last_abs + delta
        if delta > 0:
            self._last_raw, self._last_abs = raw, value
        return value

    def segment(self, pkt: Packet) -> None:
        st = self.stats
        st.packets += 1
        if st.first_frame is None:
            st.first_frame, st.first_time_ns = pkt.frame, pkt.time_ns
        st.last_time_ns = pkt.time_ns
        if self._ended:
            if self.fin_seen and pkt.tcp_len:
                # after the FIN every byte was sent before: a copy sent again (a lost
                # A-RELEASE-RP, say)
                st.retransmitted_bytes += pkt.tcp_len
            return
        start = self._unwrap(pkt.seq)
        if pkt.flags & SYN:
            self.syn_seen = True
            st.syns += 1
            start += 1
            if self._next is None:
                self._next = start
        tcp_len = pkt.tcp_len
        if tcp_len:
            st.payload_packets += 1
            payload = pkt.payload
            if self._next is None:
                self._next = start  # capture began mid-connection
            if start == self._next and not self._heap and len(payload) == tcp_len:
                # the common case, in order and whole: straight to the sink
                st.delivered_bytes += tcp_len
                self._next = start + tcp_len
                self.sink.data(payload, pkt.frame, pkt.time_ns)
            else:
                self._accept(start, payload, tcp_len - len(payload), pkt.frame, pkt.time_ns)
        if pkt.flags & FIN:
            self.fin_seen = True
            self._fin_at = start + pkt.tcp_len
            if self._next is None:
                self._next = self._fin_at
        if pkt.flags & RST:
            self.rst_seen = True
            self.finish("rst", pkt.frame, pkt.time_ns)
            return
        self._maybe_fin(pkt.frame, pkt.time_ns)

    def _accept(self, start: int, payload: bytes, missing: int, frame: int, time_ns: int) -> None:
        assert self._next is not None
        if start > self._next:
            self._hold(start, payload, missing, frame, time_ns)
            return
        self._trim_deliver(start, payload, missing, frame, time_ns)
        self._drain()

    def _hold(self, start: int, payload: bytes, missing: int, frame: int, time_ns: int) -> None:
        """Keep a segment that arrived ahead of a missing one (a heap of offsets keeps the
        next one to deliver at hand)."""
        self.stats.out_of_order += 1
        size = len(payload) + missing
        held = self._pending.get(start)
        if held is None:
            heapq.heappush(self._heap, start)
        elif len(held[0]) + held[1] >= size:
            self.stats.retransmitted_bytes += size  # a copy of what we already hold
            return
        else:
            self.stats.retransmitted_bytes += len(held[0]) + held[1]
            self._pending_bytes -= len(held[0])
        self._pending[start] = (payload, missing, frame, time_ns)
        self._pending_bytes += len(payload)
        while self._pending_bytes > MAX_PENDING_BYTES and self._heap:
            self._skip_to(self._heap[0], frame, time_ns)

    def _trim_deliver(self, start: int, payload: bytes, missing: int, frame: int,
                      time_ns: int) -> None:
        """Deliver a segment that starts at or before the next expected byte, without the
        part already delivered (retransmission or overlap: the first copy wins)."""
        assert self._next is not None
        end = start + len(payload) + missing
        if end <= self._next:
            self.stats.retransmitted_bytes += end - start
            return
        if start < self._next:
            cut = self._next - start
            self.stats.retransmitted_bytes += cut
            if cut >= len(payload):
                missing -= cut - len(payload)
                payload = b""
            else:
                payload = payload[cut:]
        self._deliver(payload, missing, frame, time_ns)

    def _deliver(self, payload: bytes, missing: int, frame: int, time_ns: int) -> None:
        assert self._next is not None
        if payload:
            self.stats.delivered_bytes += len(payload)
            self._next += len(payload)
            self.sink.data(payload, frame, time_ns)
        if missing > 0:
            self._gap(missing, frame, time_ns, "snaplen")

    def _gap(self, nbytes: int, frame: int, time_ns: int, cause: str = "lost") -> None:
        assert self._next is not None
        self.stats.gaps += 1
        self.stats.gap_bytes += nbytes
        self._next += nbytes
        self.sink.gap(nbytes, frame, time_ns, cause)

    def _drain(self) -> None:
        """Deliver held segments that now follow on; a loop, not recursion (a 4 MB window
        after a loss can hold thousands of segments)."""
        heap, pending = self._heap, self._pending
        while heap:
            assert self._next is not None
            first = heap[0]
            if first > self._next:
                return
            heapq.heappop(heap)
            payload, missing, frame, time_ns = pending.pop(first)
            self._pending_bytes -= len(payload)
            self._trim_deliver(first, payload, missing, frame, time_ns)

    def _skip_to(self, offset: int, frame: int, time_ns: int) -> None:
        """Declare [next, offset) lost from the capture and carry on after it."""
        assert self._next is not None
        if offset > self._next:
            self._gap(offset - self._next, frame, time_ns)
        self._drain()

    def ack(self, raw_ack: int, frame: int, time_ns: int) -> None:
        """The peer acknowledged up to ``raw_ack``: bytes before it that we lack were
        delivered to the peer but missed by the capture, so they are a gap, not a wait."""
        if self._next is None or self._ended:
            return
        self.acked_raw = raw_ack
        limit = self._unwrap_peek(raw_ack)
        if self._fin_at is not None:
            limit = min(limit, self._fin_at)  # the FIN takes a sequence number, no byte
        while self._next < limit:
            target = min(self._heap[0], limit) if self._heap else limit
            self._skip_to(target, frame, time_ns)
        self._maybe_fin(frame, time_ns)

    def _unwrap_peek(self, raw: int) -> int:
        delta = (raw - self._last_raw) % _MOD
        if delta >= _HALF:
            delta -= _MOD
        return self._last_abs + delta

    def _maybe_fin(self, frame: int, time_ns: int) -> None:
        if self._fin_at is None:
            return
        if self._next is not None and self._next >= self._fin_at:
            self.finish("fin", frame, time_ns)

    def finish(self, how: str, frame: int, time_ns: int) -> None:
        """Deliver what is held, as gaps where bytes are missing, then end the direction."""
        if self._ended:
            return
        while self._heap:
            self._skip_to(self._heap[0], frame, time_ns)
        if self._fin_at is not None and self._next is not None and self._fin_at > self._next:
            self._gap(self._fin_at - self._next, frame, time_ns)
        self._ended = True
        self.sink.end("fin" if how == "eof" and self.fin_seen else how, frame, time_ns)

    @property
    def ended(self) -> bool:
        return self._ended


class TcpConnection:
    """Both directions of one tshark ``tcp.stream``. The caller supplies each direction's
    sink through ``sink_for(src, sport, dst, dport, first_packet)`` when it first appears."""

    __slots__ = ("stream", "halves", "_sink_for", "first_frame", "first_time_ns", "last_frame",
                 "last_time_ns", "client", "server", "observer", "_src0", "_port0", "_half0",
                 "_peer0", "_src1", "_port1", "_half1", "_peer1")

    def __init__(self, stream: int, sink_for: SinkFactory,
                 observer: PacketObserver | None = None) -> None:
        self.stream = stream
        #: sees every packet after reassembly has taken it (tcpevidence.TcpObserver)
        self.observer = observer
        self.halves: dict[tuple[str, int], HalfStream] = {}
        self._sink_for = sink_for
        self.first_frame: int | None = None
        self.first_time_ns: int | None = None
        self.last_frame = 0
        self.last_time_ns = 0
        self.client: tuple[str, int] | None = None  # who sent the SYN, if seen
        self.server: tuple[str, int] | None = None  # ... and to whom
        # The last two senders (address, port) seen, with their half and its peer's: every
        # packet looks its direction up here first, without a key tuple and a dict lookup.
        self._src0 = self._src1 = ""
        self._port0 = self._port1 = -1
        self._half0: HalfStream | None = None
        self._half1: HalfStream | None = None
        self._peer0: HalfStream | None = None
        self._peer1: HalfStream | None = None

    def feed(self, pkt: Packet) -> None:
        frame, time_ns, flags = pkt.frame, pkt.time_ns, pkt.flags
        if self.first_frame is None:
            self.first_frame, self.first_time_ns = frame, time_ns
        self.last_frame, self.last_time_ns = frame, time_ns
        sport = pkt.sport
        if sport == self._port0 and pkt.src == self._src0:
            half, peer = self._half0, self._peer0
        elif sport == self._port1 and pkt.src == self._src1:
            half, peer = self._half1, self._peer1
        else:
            half, peer = self._lookup(pkt)
        assert half is not None
        if flags & SYN and not flags & ACK and self.client is None:
            self.client, self.server = (pkt.src, sport), (pkt.dst, pkt.dport)
        half.segment(pkt)
        if flags & ACK and peer is not None and pkt.ack != peer.acked_raw:
            peer.ack(pkt.ack, frame, time_ns)
        if flags & RST:
            for other in self.halves.values():
                other.finish("rst", frame, time_ns)
        if self.observer is not None:
            self.observer.on_packet(pkt)

    def _lookup(self, pkt: Packet) -> tuple[HalfStream, HalfStream | None]:
        """The sender's half (made on its first packet) and its peer's, remembered in the
        older of the two slots."""
        key = (pkt.src, pkt.sport)
        half = self.halves.get(key)
        if half is None:
            half = HalfStream(self._sink_for(pkt.src, pkt.sport, pkt.dst, pkt.dport, pkt))
            self.halves[key] = half
            self._port0 = self._port1 = -1  # a new half: a remembered peer may have been None
        peer = self.halves.get((pkt.dst, pkt.dport))
        self._src1, self._port1, self._half1, self._peer1 = \
            self._src0, self._port0, self._half0, self._peer0
        self._src0, self._port0, self._half0, self._peer0 = pkt.src, pkt.sport, half, peer
        return half, peer

    @property
    def closed(self) -> bool:
        """Both directions ended (FIN or RST): nothing more can arrive that matters."""
        return len(self.halves) == 2 and all(h.ended for h in self.halves.values())

    def finish(self) -> None:
        """The capture ended: flush both directions."""
        for half in self.halves.values():
            half.finish("eof", self.last_frame, self.last_time_ns)


@mypyc_attr(allow_interpreted_subclasses=True)
class PacketObserver:
    """Gathers evidence from a connection's packets (it only reads them). A base class for
    the reason `StreamSink` is one."""

    __slots__ = ()

    def on_packet(self, pkt: Packet) -> None:
        raise NotImplementedError


class SinkFactory(Protocol):
    def __call__(self, src: str, sport: int, dst: str, dport: int, first: Packet) -> StreamSink: ...


@dataclass
class ConnectionAttempt:
    """A TCP connection that never carried a byte: the SYN refused (answered by RST) or
    never answered. Kept for hosts that speak DICOM in the capture, and for DICOM ports: a
    C-MOVE's callback that could not connect shows up as one, and so does an SCU that found
    no SCP listening."""

    tcp_stream: int
    client: tuple[str, int]
    server: tuple[str, int]
    first_ns: int
    last_ns: int
    frame: int
    syns: int  # SYN segments the client sent (retransmissions included)
    outcome: str  # refused | unanswered


def failed_attempt(conn: TcpConnection) -> ConnectionAttempt | None:
    """The connection as a failed attempt, if it is one: the client's SYN(s), no byte of
    payload either way, and from the server nothing (unanswered) or an RST (refused)."""
    client = conn.client
    if client is None or conn.first_frame is None or conn.first_time_ns is None:
        return None
    halves = conn.halves
    mine = halves.get(client)
    if mine is None or mine.stats.payload_packets:
        return None
    server = next((ep for ep in halves if ep != client), None)
    if server is None:
        outcome = "unanswered"
    else:
        theirs = halves[server]
        if theirs.syn_seen or theirs.stats.payload_packets or not theirs.rst_seen:
            return None  # answered: a handshake, or something other than a refusal
        outcome = "refused"
    peer = server or conn.server
    if peer is None:
        return None
    return ConnectionAttempt(conn.stream, client, peer, conn.first_time_ns, conn.last_time_ns,
                             conn.first_frame, mine.stats.syns, outcome)
