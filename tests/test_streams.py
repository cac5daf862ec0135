"""Tests for tshark_dicom.streams: TCP reassembly from synthetic Packet records.

Every test builds the segments a capture would hold (raw 32-bit sequence numbers, flags,
payloads possibly cut by the snaplen) and checks the exact events the sink receives:
the delivered bytes in order, each gap with its size and cause, and the one end.
"""

from __future__ import annotations

from typing import Any

import pytest

from tshark_dicom import streams
from tshark_dicom.packets import ACK, FIN, RST, SYN, Packet
from tshark_dicom.streams import HalfStream, StreamSink, TcpConnection

CLIENT = ("10.0.0.1", 40000)
SERVER = ("10.0.0.2", 104)
ISN = 1_000_000  # client's initial sequence number
SERVER_ISN = 7_000_000

Event = tuple[Any, ...]


class RecordingSink(StreamSink):
    """A StreamSink that records every call, with its frame."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def data(self, data: bytes, frame: int, time_ns: int) -> None:
        assert data, "empty data() call"
        assert time_ns == frame * 1000
        self.events.append(("data", bytes(data), frame))

    def gap(self, nbytes: int, frame: int, time_ns: int, cause: str) -> None:
        assert nbytes > 0, "empty gap() call"
        self.events.append(("gap", nbytes, cause, frame))

    def end(self, how: str, frame: int, time_ns: int) -> None:
        assert not any(e[0] == "end" for e in self.events), "end() called twice"
        self.events.append(("end", how, frame))

    def merged(self) -> list[Event]:
        """Events without frames, adjacent data joined: what a byte-stream reader sees."""
        out: list[Event] = []
        for event in self.events:
            if event[0] == "data" and out and out[-1][0] == "data":
                out[-1] = ("data", out[-1][1] + event[1])
            else:
                out.append(event[:-1])
        return out


def seg(
    frame: int,
    seq: int,
    payload: bytes = b"",
    flags: int = ACK,
    *,
    ack: int = 0,
    tcp_len: int | None = None,
    reverse: bool = False,
) -> Packet:
    """One segment client -> server (or server -> client with ``reverse``); ``seq`` is
    taken modulo 2**32 as on the wire; ``tcp_len`` larger than the payload is a snaplen cut."""
    (src, sport), (dst, dport) = (SERVER, CLIENT) if reverse else (CLIENT, SERVER)
    length = len(payload) if tcp_len is None else tcp_len
    return Packet(
        frame, frame * 1000, 0, src, sport, dst, dport, seq % 2**32, ack % 2**32, length,
        flags, payload,
    )


def half() -> tuple[HalfStream, RecordingSink]:
    sink = RecordingSink()
    return HalfStream(sink), sink


class Connection:
    """A TcpConnection whose two directions record into sinks keyed by sender."""

    def __init__(self) -> None:
        self.sinks: dict[tuple[str, int], RecordingSink] = {}

        def sink_for(src: str, sport: int, dst: str, dport: int, first: Packet) -> RecordingSink:
            sink = RecordingSink()
            self.sinks[(src, sport)] = sink
            return sink

        self.conn = TcpConnection(0, sink_for)

    def feed(self, *packets: Packet) -> None:
        for pkt in packets:
            self.conn.feed(pkt)

    @property
    def client(self) -> RecordingSink:
        return self.sinks[CLIENT]

    @property
    def server(self) -> RecordingSink:
        return self.sinks[SERVER]

    def handshake(self) -> None:
        """Frames 1-3: SYN, SYN-ACK, ACK."""
        self.feed(
            seg(1, ISN, flags=SYN),
            seg(2, SERVER_ISN, flags=SYN | ACK, ack=ISN + 1, reverse=True),
            seg(3, ISN + 1, ack=SERVER_ISN + 1),
        )


# -- in-order delivery --------------------------------------------------------------------


def test_in_order_after_syn() -> None:
    h, sink = half()
    h.segment(seg(1, ISN, flags=SYN))
    h.segment(seg(2, ISN + 1, b"hello "))
    h.segment(seg(3, ISN + 7, b"world"))
    assert sink.events == [("data", b"hello ", 2), ("data", b"world", 3)]
    assert h.syn_seen and not h.ended
    assert h.stats.packets == 3
    assert h.stats.payload_packets == 2
    assert h.stats.delivered_bytes == 11
    assert h.stats.stream_bytes == 11
    assert h.stats.retransmitted_bytes == h.stats.out_of_order == h.stats.gaps == 0
    assert h.stats.first_frame == 1
    assert h.stats.first_time_ns == 1000
    assert h.stats.last_time_ns == 3000


def test_syn_retransmitted_does_not_move_the_stream() -> None:
    h, sink = half()
    h.segment(seg(1, ISN, flags=SYN))
    h.segment(seg(2, ISN, flags=SYN))
    h.segment(seg(3, ISN + 1, b"abc"))
    assert sink.merged() == [("data", b"abc")]


def test_capture_starts_mid_connection() -> None:
    h, sink = half()
    h.segment(seg(10, 5_000_000, b"middle"))
    h.segment(seg(11, 5_000_006, b" and on"))
    # A retransmission of bytes sent before the capture began: nothing to deliver.
    h.segment(seg(12, 4_999_990, b"0123456789"))
    assert sink.events == [("data", b"middle", 10), ("data", b" and on", 11)]
    assert not h.syn_seen
    assert h.stats.retransmitted_bytes == 10


def test_pure_acks_deliver_nothing() -> None:
    h, sink = half()
    h.segment(seg(1, ISN, flags=SYN))
    h.segment(seg(2, ISN + 1))
    h.segment(seg(3, ISN + 1, b"x"))
    h.segment(seg(4, ISN + 2))
    assert sink.events == [("data", b"x", 3)]
    assert h.stats.packets == 4
    assert h.stats.payload_packets == 1


# -- reordering, retransmission, overlap ---------------------------------------------------


def test_out_of_order_delivered_in_order_when_missing_arrives() -> None:
    h, sink = half()
    h.segment(seg(1, ISN, flags=SYN))
    h.segment(seg(2, ISN + 1 + 8, b"CCCC"))
    h.segment(seg(3, ISN + 1 + 4, b"BBBB"))
    assert sink.events == []
    h.segment(seg(4, ISN + 1, b"AAAA"))
    # All three at once, in sequence order, each with the frame that carried it.
    assert sink.events == [("data", b"AAAA", 4), ("data", b"BBBB", 3), ("data", b"CCCC", 2)]
    assert h.stats.out_of_order == 2
    assert h.stats.retransmitted_bytes == 0
    assert h.stats.delivered_bytes == 12


def test_exact_duplicate_dropped() -> None:
    h, sink = half()
    h.segment(seg(1, ISN, flags=SYN))
    h.segment(seg(2, ISN + 1, b"abcdef"))
    h.segment(seg(3, ISN + 1, b"abcdef"))
    h.segment(seg(4, ISN + 7, b"ghi"))
    assert sink.events == [("data", b"abcdef", 2), ("data", b"ghi", 4)]
    assert h.stats.retransmitted_bytes == 6


def test_partial_overlap_first_copy_wins() -> None:
    h, sink = half()
    h.segment(seg(1, ISN, flags=SYN))
    h.segment(seg(2, ISN + 1, b"abcdef"))
    # Re-sends "def" with different bytes and adds "ghi": only the new tail is kept.
    h.segment(seg(3, ISN + 4, b"XYZghi"))
    assert sink.events == [("data", b"abcdef", 2), ("data", b"ghi", 3)]
    assert h.stats.retransmitted_bytes == 3
    assert h.stats.delivered_bytes == 9


def test_overlapping_out_of_order_segments() -> None:
    h, sink = half()
    h.segment(seg(1, ISN, flags=SYN))
    h.segment(seg(2, ISN + 1 + 10, b"KLMNOPQRST"))  # [10, 20)
    h.segment(seg(3, ISN + 1 + 15, b"PQRSTUVWXY"))  # [15, 25): 5 bytes overlap
    h.segment(seg(4, ISN + 1, b"ABCDEFGHIJ"))  # [0, 10)
    assert sink.merged() == [("data", b"ABCDEFGHIJKLMNOPQRSTUVWXY")]
    assert h.stats.retransmitted_bytes == 5
    assert h.stats.delivered_bytes == 25


def test_longer_copy_at_same_offset_replaces_shorter_pending() -> None:
    h, sink = half()
    h.segment(seg(1, ISN, flags=SYN))
    h.segment(seg(2, ISN + 1 + 3, b"de"))
    h.segment(seg(3, ISN + 1 + 3, b"defgh"))  # repacketised retransmission, longer
    h.segment(seg(4, ISN + 1, b"abc"))
    assert sink.merged() == [("data", b"abcdefgh")]


def test_duplicate_of_out_of_order_segment_counts_as_retransmitted() -> None:
    h, sink = half()
    h.segment(seg(1, ISN, flags=SYN))
    h.segment(seg(2, ISN + 1 + 4, b"BBBB"))
    h.segment(seg(3, ISN + 1 + 4, b"BBBB"))  # the same segment again, still held
    h.segment(seg(4, ISN + 1, b"AAAA"))
    assert sink.merged() == [("data", b"AAAABBBB")]
    assert h.stats.retransmitted_bytes == 4


# -- holes in the capture -----------------------------------------------------------------


def test_hole_acked_by_peer_becomes_gap_immediately() -> None:
    c = Connection()
    c.handshake()
    c.feed(
        seg(4, ISN + 1, b"A" * 10),
        # frame with [ISN+11, ISN+21) never captured
        seg(5, ISN + 21, b"C" * 10),
    )
    assert c.client.events == [("data", b"A" * 10, 4)]
    # Duplicate ACK up to the hole proves nothing yet.
    c.feed(seg(6, SERVER_ISN + 1, ack=ISN + 11, reverse=True))
    assert c.client.events == [("data", b"A" * 10, 4)]
    # The server acknowledges past the hole: it got those bytes, the capture did not.
    c.feed(seg(7, SERVER_ISN + 1, ack=ISN + 31, reverse=True))
    assert c.client.events == [
        ("data", b"A" * 10, 4),
        ("gap", 10, "lost", 7),
        ("data", b"C" * 10, 5),
    ]
    c.feed(seg(8, ISN + 31, b"D" * 5))
    assert c.client.events[-1] == ("data", b"D" * 5, 8)
    st = c.conn.halves[CLIENT].stats
    assert (st.delivered_bytes, st.gap_bytes, st.gaps, st.stream_bytes) == (25, 10, 1, 35)
    assert c.conn.client == CLIENT
    assert c.server.events == []


def test_hole_without_ack_becomes_gap_at_finish_never_glued() -> None:
    c = Connection()
    c.handshake()
    c.feed(
        seg(4, ISN + 1, b"A" * 10),
        seg(5, ISN + 21, b"C" * 10),  # [ISN+11, ISN+21) never captured
        seg(6, SERVER_ISN + 1, b"reply", ack=ISN + 11, reverse=True),
    )
    assert c.client.events == [("data", b"A" * 10, 4)]
    c.conn.finish()
    assert c.client.events == [
        ("data", b"A" * 10, 4),
        ("gap", 10, "lost", 6),
        ("data", b"C" * 10, 5),
        ("end", "eof", 6),
    ]
    assert c.server.events == [("data", b"reply", 6), ("end", "eof", 6)]


def test_several_holes_flushed_at_finish() -> None:
    h, sink = half()
    h.segment(seg(1, ISN, flags=SYN))
    h.segment(seg(2, ISN + 1, b"a"))
    h.segment(seg(3, ISN + 3, b"c"))
    h.segment(seg(4, ISN + 6, b"f"))
    h.finish("eof", 9, 9000)
    assert sink.merged() == [
        ("data", b"a"), ("gap", 1, "lost"), ("data", b"c"), ("gap", 2, "lost"),
        ("data", b"f"), ("end", "eof"),
    ]
    assert (h.stats.gaps, h.stats.gap_bytes) == (2, 3)


def test_ack_beyond_several_holes_declares_them_all() -> None:
    c = Connection()
    c.handshake()
    c.feed(
        seg(4, ISN + 1, b"a" * 10),
        seg(5, ISN + 21, b"c" * 10),  # [11, 21) lost
        seg(6, ISN + 41, b"e" * 10),  # [31, 41) lost
        seg(7, SERVER_ISN + 1, ack=ISN + 51, reverse=True),
    )
    assert c.client.merged() == [
        ("data", b"a" * 10), ("gap", 10, "lost"), ("data", b"c" * 10),
        ("gap", 10, "lost"), ("data", b"e" * 10),
    ]


def test_ack_beyond_lost_last_segment_is_gap_immediately() -> None:
    c = Connection()
    c.handshake()
    c.feed(
        seg(4, ISN + 1, b"request-start"),
        # the rest of the request, [ISN+14, ISN+24), never captured
        seg(5, SERVER_ISN + 1, b"response", ack=ISN + 24, reverse=True),
    )
    assert c.client.events == [("data", b"request-start", 4), ("gap", 10, "lost", 5)]


def test_snaplen_cut_gives_data_then_gap() -> None:
    h, sink = half()
    h.segment(seg(1, ISN, flags=SYN))
    h.segment(seg(2, ISN + 1, b"x" * 60, tcp_len=100))
    h.segment(seg(3, ISN + 101, b"next"))
    h.segment(seg(4, ISN + 105, b"", tcp_len=8))  # nothing of the payload captured
    h.segment(seg(5, ISN + 113, b"z"))
    assert sink.events == [
        ("data", b"x" * 60, 2),
        ("gap", 40, "snaplen", 2),
        ("data", b"next", 3),
        ("gap", 8, "snaplen", 4),
        ("data", b"z", 5),
    ]
    assert (h.stats.delivered_bytes, h.stats.gap_bytes, h.stats.gaps) == (65, 48, 2)


def test_snaplen_cut_out_of_order_segment() -> None:
    h, sink = half()
    h.segment(seg(1, ISN, flags=SYN))
    h.segment(seg(2, ISN + 11, b"y" * 4, tcp_len=10))
    h.segment(seg(3, ISN + 1, b"x" * 10))
    assert sink.merged() == [("data", b"x" * 10 + b"y" * 4), ("gap", 6, "snaplen")]


def test_retransmission_fills_bytes_the_snaplen_cut() -> None:
    h, sink = half()
    h.segment(seg(1, ISN, flags=SYN))
    h.segment(seg(2, ISN + 1, b"x" * 4, tcp_len=10))
    h.segment(seg(3, ISN + 1, b"x" * 10))  # whole, but the gap was already declared
    h.segment(seg(4, ISN + 11, b"after"))
    assert sink.merged() == [("data", b"xxxx"), ("gap", 6, "snaplen"), ("data", b"after")]
    assert h.stats.retransmitted_bytes == 10


# -- sequence numbers ---------------------------------------------------------------------


def test_sequence_wraparound() -> None:
    isn = 2**32 - 5
    h, sink = half()
    h.segment(seg(1, isn, flags=SYN))
    h.segment(seg(2, isn + 1, b"0123456789"))  # crosses 2**32: raw seq wraps mid-segment
    h.segment(seg(3, isn + 21, b"KLMNO"))  # raw seq 16: after a hole, out of order
    h.segment(seg(4, isn + 11, b"ABCDEFGHIJ"))  # raw seq 6
    h.segment(seg(5, isn + 1, b"0123456789"))  # retransmission, raw seq 2**32 - 4
    assert sink.merged() == [("data", b"0123456789ABCDEFGHIJKLMNO")]
    assert h.stats.retransmitted_bytes == 10


def test_sequence_wraparound_with_peer_ack() -> None:
    c = Connection()
    isn = 2**32 - 3
    c.feed(
        seg(1, isn, flags=SYN),
        seg(2, SERVER_ISN, flags=SYN | ACK, ack=isn + 1, reverse=True),
        seg(3, isn + 1, b"ab"),  # [2**32-2, 2**32)
        seg(4, isn + 5, b"ef"),  # raw seq 2: [2, 4) held, [0, 2) missing
        seg(5, SERVER_ISN + 1, ack=isn + 7, reverse=True),  # raw ack 4
    )
    assert c.client.merged() == [("data", b"ab"), ("gap", 2, "lost"), ("data", b"ef")]


# -- how a direction ends -----------------------------------------------------------------


def test_fin_with_data_ends_direction() -> None:
    h, sink = half()
    h.segment(seg(1, ISN, flags=SYN))
    h.segment(seg(2, ISN + 1, b"bye", flags=FIN | ACK))
    h.segment(seg(3, ISN + 4, b"late"))  # after the end: ignored
    assert sink.events == [("data", b"bye", 2), ("end", "fin", 2)]
    assert h.ended and h.fin_seen
    assert h.stats.packets == 3


def test_fin_before_reordered_last_segment() -> None:
    h, sink = half()
    h.segment(seg(1, ISN, flags=SYN))
    h.segment(seg(2, ISN + 1, b"first"))
    h.segment(seg(3, ISN + 11, flags=FIN | ACK))  # FIN after "last!", which is late
    assert sink.events == [("data", b"first", 2)]
    assert h.fin_seen and not h.ended
    h.segment(seg(4, ISN + 6, b"last!"))
    assert sink.events == [("data", b"first", 2), ("data", b"last!", 4), ("end", "fin", 4)]


def test_fin_after_a_hole_ends_at_finish_with_gap() -> None:
    h, sink = half()
    h.segment(seg(1, ISN, flags=SYN))
    h.segment(seg(2, ISN + 1, b"first"))
    h.segment(seg(3, ISN + 11, flags=FIN | ACK))  # [6, 11) never captured
    h.finish("eof", 5, 5000)
    assert sink.events == [("data", b"first", 2), ("gap", 5, "lost", 5), ("end", "fin", 5)]


def test_ack_that_completes_stream_up_to_fin_ends_it() -> None:
    c = Connection()
    c.handshake()
    c.feed(
        seg(4, ISN + 1, b"a" * 10),
        seg(5, ISN + 21, b"c" * 10, flags=FIN | ACK),  # [11, 21) lost; FIN at 31
        seg(6, SERVER_ISN + 1, ack=ISN + 32, reverse=True),  # ACKs everything and the FIN
    )
    assert c.client.events == [
        ("data", b"a" * 10, 4), ("gap", 10, "lost", 6), ("data", b"c" * 10, 5),
        ("end", "fin", 6),
    ]


def test_rst_ends_both_directions() -> None:
    c = Connection()
    c.handshake()
    c.feed(
        seg(4, ISN + 1, b"ping"),
        seg(5, SERVER_ISN + 1, b"pong", ack=ISN + 5, reverse=True),
        seg(6, ISN + 9, b"held"),  # after a hole [5, 9): never delivered in order
        seg(7, SERVER_ISN + 5, flags=RST | ACK, ack=ISN + 5, reverse=True),
        seg(8, ISN + 13, b"after"),  # after the reset: ignored
    )
    assert c.server.events == [("data", b"pong", 5), ("end", "rst", 7)]
    assert c.client.events == [
        ("data", b"ping", 4), ("gap", 4, "lost", 7), ("data", b"held", 6), ("end", "rst", 7),
    ]
    assert c.conn.halves[SERVER].rst_seen
    c.conn.finish()  # no second end
    assert c.client.events[-1] == ("end", "rst", 7)


def test_finish_without_fin_is_eof() -> None:
    c = Connection()
    c.handshake()
    c.feed(seg(4, ISN + 1, b"data"), seg(5, SERVER_ISN + 1, ack=ISN + 5, reverse=True))
    c.conn.finish()
    assert c.client.events == [("data", b"data", 4), ("end", "eof", 5)]
    assert c.server.events == [("end", "eof", 5)]
    assert (c.conn.first_frame, c.conn.last_frame) == (1, 5)


def test_fin_in_both_directions() -> None:
    c = Connection()
    c.handshake()
    c.feed(
        seg(4, ISN + 1, b"q", flags=FIN | ACK),
        seg(5, SERVER_ISN + 1, b"r", flags=FIN | ACK, ack=ISN + 3, reverse=True),
        seg(6, ISN + 3, ack=SERVER_ISN + 3),
    )
    assert c.client.events == [("data", b"q", 4), ("end", "fin", 4)]
    assert c.server.events == [("data", b"r", 5), ("end", "fin", 5)]
    c.conn.finish()
    assert c.client.events[-1] == ("end", "fin", 4)


# -- memory bound -------------------------------------------------------------------------


def _held(h: HalfStream) -> int:
    """Payload bytes the direction holds out of order (what MAX_PENDING_BYTES bounds)."""
    held = sum(len(payload) for payload, *_ in h._pending.values())
    assert held == h._pending_bytes
    return held


def test_max_pending_declares_persistent_hole_a_gap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams, "MAX_PENDING_BYTES", 100)
    h, sink = half()
    h.segment(seg(1, ISN, flags=SYN))
    h.segment(seg(2, ISN + 1, b"a" * 10))
    # [11, 21) never arrives and nobody ACKs it; 10-byte segments keep coming after it.
    frame = 3
    for offset in range(21, 21 + 10 * 30, 10):
        h.segment(seg(frame, ISN + offset, bytes([frame]) * 10))
        assert _held(h) <= 100
        frame += 1
    events = sink.merged()
    assert events[:2] == [("data", b"a" * 10), ("gap", 10, "lost")]
    assert h.stats.gaps == 1
    # Once the hole was given up, everything after it flowed through in order.
    assert events[2] == ("data", b"".join(bytes([f]) * 10 for f in range(3, frame)))
    assert _held(h) == 0


def test_max_pending_with_every_other_segment_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams, "MAX_PENDING_BYTES", 100)
    h, sink = half()
    h.segment(seg(1, ISN, flags=SYN))
    h.segment(seg(2, ISN + 1, b"a" * 10))
    for i in range(50):  # a lossy capture: [11 + 20i, 21 + 20i) missing each time
        h.segment(seg(3 + i, ISN + 21 + 20 * i, b"b" * 10))
        assert _held(h) <= 100
    h.finish("eof", 99, 99000)
    assert _held(h) == 0
    assert sink.merged() == (
        [("data", b"a" * 10)] + [("gap", 10, "lost"), ("data", b"b" * 10)] * 50 + [("end", "eof")]
    )


def test_max_pending_bound_holds_for_uneven_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams, "MAX_PENDING_BYTES", 100)
    h, _ = half()
    h.segment(seg(1, ISN, flags=SYN))
    h.segment(seg(2, ISN + 1, b"a"))
    frame = 3
    for i in range(50):  # 1-byte segments, each after a 1-byte hole: 50 bytes held
        h.segment(seg(frame, ISN + 3 + 2 * i, b"b"))
        frame += 1
    for i in range(20):  # then 50-byte segments far ahead, each after a hole
        h.segment(seg(frame, ISN + 1000 + 100 * i, b"c" * 50))
        frame += 1
        # Not even "the bound plus the segment in hand": it grows by 49 bytes a segment.
        assert _held(h) <= 100 + 50


def test_many_held_segments_drain_without_recursion() -> None:
    h, sink = half()
    h.segment(seg(1, ISN, flags=SYN))
    n = 3000  # a 4 MB window of 1448-byte segments waiting for one retransmission
    for i in range(n):
        h.segment(seg(3 + i, ISN + 1 + 10 * (i + 1), b"%010d" % (i + 1)))
    try:
        h.segment(seg(3 + n, ISN + 1, b"%010d" % 0))  # the retransmission
        recursed = False
    except RecursionError:  # asserted outside the handler: a short report, not 1000 frames
        recursed = True
    assert not recursed, "RecursionError draining the held segments"
    assert sink.merged() == [("data", b"".join(b"%010d" % i for i in range(n + 1)))]
