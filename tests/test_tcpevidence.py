"""TCP evidence from hand-made segments: each stall kind, windows, RTT halves, bins."""

from __future__ import annotations

from tshark_dicom.packets import ACK, FIN, SYN, Packet
from tshark_dicom.tcpevidence import MAX_BINS, TcpObserver

C, S = ("10.0.0.1", 40000), ("10.0.0.2", 104)
MS = 1_000_000


class Wire:
    """Builds packets of one connection: client C, server S, times in ms."""

    def __init__(self, c_scale: int | None = 7, s_scale: int | None = 7) -> None:
        self.obs = TcpObserver()
        self.seq = {C: 1000, S: 5000}
        self.frame = 0
        self.c_scale, self.s_scale = c_scale, s_scale

    def send(self, at_ms: float, who: tuple[str, int], n: int = 0, *, flags: int = ACK,
             win: int = 1000, seq: int | None = None, wscale: int = -1) -> None:
        peer = S if who == C else C
        self.frame += 1
        start = self.seq[who] if seq is None else seq
        self.obs.on_packet(Packet(
            self.frame, int(at_ms * MS), 0, who[0], who[1], peer[0], peer[1], start,
            self.seq[peer], n, flags, b"x" * n, win, wscale))
        self.last = int(at_ms * MS)
        if seq is None:
            self.seq[who] += n + (1 if flags & (SYN | FIN) else 0)

    def handshake(self, rtt_server_ms: float = 10.0, rtt_client_ms: float = 0.5) -> None:
        self.send(0, C, flags=SYN, wscale=self.c_scale if self.c_scale is not None else -1)
        self.send(rtt_server_ms, S, flags=SYN | ACK,
                  wscale=self.s_scale if self.s_scale is not None else -1)
        self.send(rtt_server_ms + rtt_client_ms, C)


def stalls(w: Wire, who: tuple[str, int]) -> list[tuple[float, float, str]]:
    ev = w.obs.finish(w.last)
    return [(s / MS, e / MS, k) for s, e, k, _ in ev.directions[who].stalls]


def test_handshake_gives_both_halves_and_the_capture_point() -> None:
    w = Wire()
    w.handshake(rtt_server_ms=30.0, rtt_client_ms=0.2)
    ev = w.obs.finish(w.last)
    assert ev.half_rtt_ns(S) == 30 * MS
    assert ev.half_rtt_ns(C) == int(0.2 * MS)
    assert ev.scale_known
    assert ev.directions[C].window_scale == 7


def test_data_to_ack_samples_take_the_minimum() -> None:
    w = Wire()
    w.send(100, C, 100)
    w.send(105, S)  # ACK 5 ms later
    w.send(200, C, 100)
    w.send(202, S)  # 2 ms
    ev = w.obs.finish(w.last)
    assert ev.handshake_ns is None
    assert ev.half_rtt_ns(S) == 2 * MS
    assert ev.directions[C].rtt_samples == 2


def test_idle_sender_with_nothing_in_flight() -> None:
    w = Wire()
    w.handshake()
    w.send(20, C, 100)
    w.send(21, S)  # all acked
    w.send(320, C, 100)  # 300 ms later: the sender simply had nothing to send
    # waiting for the ACK until it came, then idle with the window open
    assert stalls(w, C) == [(20.0, 21.0, "ack-wait"), (21.0, 320.0, "idle")]


def test_nagle_stall_short_segment_waits_for_a_pure_delayed_ack() -> None:
    w = Wire()
    w.handshake()
    w.send(20, C, 12)  # PDU header alone
    w.send(60, S)  # delayed ACK, 40 ms
    w.send(60.1, C, 4000)  # the rest leaves at once
    assert stalls(w, C) == [(20.0, 60.0, "nagle")]


def test_response_carrying_the_ack_is_not_a_nagle_stall() -> None:
    w = Wire()
    w.handshake()
    w.send(20, C, 80)  # a short request
    w.send(60, S, 80)  # the response, ACK riding on it, 40 ms later
    w.send(60.5, C, 80)  # next request at once
    kinds = [k for _, _, k in stalls(w, C)]
    assert "nagle" not in kinds
    assert kinds == ["ack-wait"]


def test_zero_window_then_reopened() -> None:
    w = Wire()
    w.handshake()
    w.send(20, C, 1000)
    w.send(21, S, win=0)  # ACKs everything, advertises no window
    w.send(521, S, win=500)  # window update 500 ms later
    w.send(521.2, C, 1000)
    ev = w.obs.finish(w.last)
    assert [(s / MS, e / MS) for s, e in ev.directions[S].zero_windows] == [(21.0, 521.0)]
    assert [(s / MS, e / MS, k) for s, e, k, _ in ev.directions[C].stalls] == [
        (20.0, 521.0, "zero-window")]


def test_window_full_needs_the_scale() -> None:
    # window 8 << 7 = 1024 bytes; 1000 bytes in flight + a segment would not fit. Without
    # the handshake the scale is unknown, and a full window cannot be told.
    for handshake, want in ((True, "window-full"), (False, "ack-wait")):
        w = Wire()
        if handshake:
            w.handshake()
        w.send(20, S, win=8)
        w.send(21, C, 1000)
        w.send(121, S, win=8)  # ACK 100 ms later
        w.send(121.1, C, 1000)
        ev_stalls = stalls(w, C)
        assert [k for _, _, k in ev_stalls] == [want]


def test_retransmission_after_a_pause_is_the_network() -> None:
    w = Wire()
    w.handshake()
    w.send(20, C, 1000)
    first = w.seq[C] - 1000
    w.send(220, C, 1000, seq=first)  # the same bytes again, 200 ms later (RTO)
    ev = w.obs.finish(w.last)
    d = ev.directions[C]
    assert d.retransmitted_bytes == 1000 and len(d.retransmissions) == 1
    assert [k for _, _, k, _ in d.stalls] == ["retransmission"]


def test_bins_stay_bounded() -> None:
    w = Wire()
    w.handshake()
    for i in range(5000):
        w.send(20 + i * 10.0, C, 100)
    ev = w.obs.finish(w.last)
    bins = ev.directions[C].bins
    assert len(bins) <= MAX_BINS
    assert sum(b for _, b in bins) == 500_000
    assert ev.bin_ns > 10 * MS


def test_bins_of_a_connection_of_hours_start_on_their_boundaries() -> None:
    """A connection of 3 hours widens its bins past 2**30 ns, where the compiled module
    computes their bounds in pieces (packets.product): each bin starts on a multiple
    of the final width from the first packet, and no byte is lost or counted twice."""
    w = Wire()
    w.handshake()
    base = 0
    for i in range(1080):  # every 10 s for 3 hours, 7 ms apart within each pair
        w.send(20 + i * 10_000.0, C, 100)
        w.send(27 + i * 10_000.0, C, 50)
    ev = w.obs.finish(w.last)
    bins = ev.directions[C].bins
    assert ev.bin_ns >= 1 << 30
    assert 0 < len(bins) <= MAX_BINS
    assert all((start - base) % ev.bin_ns == 0 for start, _ in bins)
    assert [start for start, _ in bins] == sorted({start for start, _ in bins})
    assert sum(b for _, b in bins) == 1080 * 150
    # each pair of sends falls in the bin whose bounds hold its time
    for i in (0, 1, 539, 1079):
        at = (20 + i * 10_000) * MS
        start = base + (at - base) // ev.bin_ns * ev.bin_ns
        assert start in dict(bins)
