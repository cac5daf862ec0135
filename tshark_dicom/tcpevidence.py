"""TCP evidence for timing, gathered while packets flow: one observer per connection.

What a PACS engineer reads off a capture by hand to say who made a transfer slow, kept per
direction (a sender, and the receiver that ACKs it and advertises the window):

- **stalls**: pauses of at least `STALL_NS` in the sender's new data, each classified by
  what the capture shows at that moment (the classic TCP triage):
  ``zero-window`` (the receiver advertised no window), ``window-full`` (bytes in flight
  filled the receiver's advertised window), ``nagle`` (a short segment was unacknowledged
  and the rest followed the peer's delayed ACK at once: Nagle's algorithm, RFC 896, with a
  delayed ACK, RFC 1122 4.2.3.2), ``ack-wait`` (data in flight, waiting on the peer's ACK:
  round trip, congestion window or loss recovery), ``retransmission`` (the pause ended
  with a retransmitted segment), ``idle`` (nothing in flight, the window open: the sender
  simply had nothing to send);
- zero-window periods, retransmitted segments (time and bytes);
- round-trip time at the capture point, split in the two halves (capture point to each
  end and back), from the handshake and from data-to-ACK samples (Karn's rule: never from
  a retransmitted segment; the minimum, which delayed ACKs cannot inflate);
- the advertised receive window, scaled by the window-scale options of the SYNs
  (RFC 7323 2.2); without the handshake the scale is unknown and only zero windows count;
- bytes per time bin for throughput plots (bins widen so that there are never more than
  `MAX_BINS`).

Memory grows with the number of stalls and retransmissions, never with packets. The
observer only reads packets: it never calls back into the decoding stages.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from .packets import ACK, FIN, RST, SYN, Packet, product
from .streams import PacketObserver

_MASK: Final = 0xFFFFFFFF
_HALF: Final = 1 << 31
#: A pause in a sender's new data shorter than this is not a stall (1 ms).
STALL_NS: Final = 1_000_000
#: Delayed-ACK timers seen in practice: Linux about 40 ms, Windows and BSD about 200 ms.
NAGLE_DELAYS_NS: Final = ((30_000_000, 60_000_000), (150_000_000, 250_000_000))
#: After the ACK that ends a Nagle stall the held data leaves at once (within this).
NAGLE_RESUME_NS: Final = 2_000_000
#: A segment this short or shorter can be the small unacknowledged one Nagle waits on
#: (576 bytes: the smallest datagram every IPv4 host accepts, RFC 1122).
SHORT_SEGMENT: Final = 576
FIRST_BIN_NS: Final = 10_000_000
MAX_BINS: Final = 1024

#: Stall kinds, and who is waiting on whom (sender, receiver or the network).
STALL_PARTY = {
    "idle": "sender",
    "nagle": "sender",
    "zero-window": "receiver",
    "window-full": "receiver",
    "ack-wait": "network",
    "retransmission": "network",
}

Stall = tuple[int, int, str, int]  # start ns, end ns, kind, bytes in flight at the start
_KINDS: Final = tuple(STALL_PARTY)
_KIND_CODE: Final = {k: i for i, k in enumerate(_KINDS)}


class StallLog:
    """A direction's stalls as `Stall` tuples, kept in four arrays (about 25 bytes a
    stall instead of 150: a request/response flood pauses at every turn)."""

    __slots__ = ("starts", "ends", "kinds", "flights", "_last", "ordered")

    def __init__(self) -> None:
        self.starts = array("q")
        self.ends = array("q")
        self.kinds = array("b")
        self.flights = array("q")
        self._last: Stall | None = None
        self.ordered = True  # appended in sorted order (as sorted() would put them)

    def append(self, stall: Stall) -> None:
        t0, t1, kind, flight = stall
        if self._last is not None and stall < self._last:
            self.ordered = False
        self._last = stall
        self.starts.append(t0)
        self.ends.append(t1)
        self.kinds.append(_KIND_CODE[kind])
        self.flights.append(flight)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> Stall:
        return self.starts[i], self.ends[i], _KINDS[self.kinds[i]], self.flights[i]

    def __iter__(self) -> Iterator[Stall]:
        for i in range(len(self.starts)):
            yield self[i]

    def sorted(self) -> StallLog:
        """The stalls in tuple order (this log itself when appended in that order)."""
        if self.ordered:
            return self
        out = StallLog()
        for stall in sorted(self):
            out.append(stall)
        return out


@dataclass
class DirectionEvidence:
    """What one sender's direction showed. ``rtt_min_ns`` is the smallest data-to-ACK
    time of this sender's segments: the capture point to the receiver and back."""

    endpoint: tuple[str, int]
    stalls: StallLog = field(default_factory=StallLog)
    zero_windows: list[tuple[int, int]] = field(default_factory=list)
    retransmissions: list[tuple[int, int]] = field(default_factory=list)  # time ns, bytes
    retransmitted_bytes: int = 0
    rtt_min_ns: int | None = None
    rtt_samples: int = 0
    window_scale: int | None = None  # the shift this side's SYN announced (None: unknown)
    max_window: int | None = None  # largest window this side advertised (scaled if known)
    max_segment: int = 0
    data_bytes: int = 0
    bins: list[tuple[int, int]] = field(default_factory=list)  # bin start ns, bytes


@dataclass
class ConnectionEvidence:
    """Both directions of a connection, and its handshake (SYN, SYN-ACK, ACK times)."""

    directions: dict[tuple[str, int], DirectionEvidence]
    client: tuple[str, int] | None
    handshake_ns: tuple[int, int, int] | None
    scale_known: bool
    bin_ns: int

    def half_rtt_ns(self, endpoint: tuple[str, int]) -> int | None:
        """Capture point -> ``endpoint`` -> capture point: from the handshake and from the
        peer's data-to-ACK samples (the peer sends, ``endpoint`` ACKs), the smallest."""
        peer = next((d for ep, d in self.directions.items() if ep != endpoint), None)
        found = [peer.rtt_min_ns] if peer is not None and peer.rtt_min_ns is not None else []
        if self.handshake_ns is not None and self.client is not None:
            syn, synack, ack = self.handshake_ns
            found.append(ack - synack if endpoint == self.client else synack - syn)
        return min(found) if found else None


class _Dir:
    """Live state of one sender's direction (hot path: slots, plain ints)."""

    __slots__ = (
        "ev", "peer", "snd_max", "acked", "unblock_ns", "last_data_ns", "last_len", "flight",
        "peer_win_at", "win", "scale", "zero_since", "rtt_seq", "rtt_t", "bins",
        "syn_seen", "unblock_pure", "max_window", "bin_key", "bin_bytes", "bin_end",
        "max_segment", "win_raw",
    )

    def __init__(self, endpoint: tuple[str, int]) -> None:
        self.ev = DirectionEvidence(endpoint)
        self.peer: _Dir = self
        self.snd_max: int | None = None  # highest sequence number sent + 1 (raw, mod 2**32)
        self.acked: int | None = None  # highest ACK the peer sent for this direction
        self.unblock_ns = 0  # when the peer last advanced its ACK or reopened its window
        self.unblock_pure = False  # ... with a pure ACK (no data of its own)
        self.last_data_ns: int | None = None
        self.last_len = 0
        self.flight = 0  # bytes in flight right after the last new data
        self.peer_win_at = -1  # the peer's window when the last new data left
        self.win = -1  # the window this side advertises (scaled when the scale is known)
        self.scale = 0
        self.zero_since: int | None = None
        self.rtt_seq: int | None = None
        self.rtt_t = 0
        self.bins: dict[int, int] = {}
        self.bin_key = -1  # the bin being filled, kept out of the dict until the next one
        self.bin_bytes = 0
        self.bin_end = -1  # the time the current bin ends (ns)
        self.max_segment = 0
        self.win_raw = -1  # the window field as last sent, before scaling
        self.syn_seen = False
        self.max_window = -1


class TcpObserver(PacketObserver):
    """Fed every packet of one TCP connection (`on_packet`); `finish` hands back the
    evidence as plain records. It never looks at the payload."""

    __slots__ = ("_dirs", "_client", "_syn_ns", "_synack_ns", "_hs", "_hs_pending",
                 "_scale_known", "_base_ns", "_bin_ns", "_first", "_first_src", "_first_port",
                 "_peer_src", "_peer_port")

    def __init__(self) -> None:
        self._dirs: dict[tuple[str, int], _Dir] = {}
        self._client: tuple[str, int] | None = None
        self._syn_ns: int | None = None
        self._synack_ns: int | None = None
        self._hs: tuple[int, int, int] | None = None
        self._hs_pending = False  # SYN and SYN-ACK seen, the client's ACK not yet
        self._scale_known = False
        self._base_ns: int | None = None
        self._bin_ns = FIRST_BIN_NS
        # the direction of the first packet, its sender and its peer: every packet is of
        # one of the two, told apart without a key tuple or a dict lookup
        self._first: _Dir | None = None
        self._first_src = self._peer_src = ""
        self._first_port = self._peer_port = -1

    def _pair(self, pkt: Packet) -> _Dir:
        a, b = _Dir((pkt.src, pkt.sport)), _Dir((pkt.dst, pkt.dport))
        a.peer, b.peer = b, a
        self._dirs[a.ev.endpoint], self._dirs[b.ev.endpoint] = a, b
        self._base_ns = pkt.time_ns
        if self._first is None:
            self._first, self._first_src, self._first_port = a, pkt.src, pkt.sport
            self._peer_src, self._peer_port = pkt.dst, pkt.dport
        return a

    def on_packet(self, pkt: Packet) -> None:
        """One packet of the connection. The hot path: every packet
        of every DICOM connection passes here, so the common cases come first and cheap,
        and the rarer ones (a new window, a new ACK, a pause) go to methods of their own."""
        t = pkt.time_ns
        d = self._first
        if d is None:
            d = self._pair(pkt)
        elif pkt.sport != self._first_port or pkt.src != self._first_src:
            d = d.peer
            if pkt.sport != self._peer_port or pkt.src != self._peer_src:
                # never within one connection (a stream has two endpoints)
                d = self._dirs.get((pkt.src, pkt.sport)) or self._pair(pkt)
        flags = pkt.flags
        if flags & SYN:
            self._syn(d, pkt, t)
            return
        if self._hs_pending:
            self._handshake_done(d, t)
        n = pkt.tcp_len
        p = d.peer
        if pkt.win != d.win_raw and not flags & RST:
            self._window(d, p, pkt.win, t, n)
        if flags & ACK and pkt.ack != p.acked and p.snd_max is not None:
            self._ack(p, pkt.ack, t, n)
        if n:
            # the common case inline: new data soon after the last, in the same time bin
            snd_max, last = d.snd_max, d.last_data_ns
            end = (pkt.seq + n) & _MASK
            if snd_max is not None and last is not None and t - last < STALL_NS \
                    and t < d.bin_end and 0 < (end - snd_max) & _MASK < _HALF:
                d.snd_max = end
                d.bin_bytes += n
                if n > d.max_segment:
                    d.max_segment = n
                if d.rtt_seq is None:
                    d.rtt_seq, d.rtt_t = end, t
                d.last_data_ns, d.last_len = t, n
                d.flight = (end - d.acked) & _MASK if d.acked is not None else n
                d.peer_win_at = p.win
            else:
                self._data(d, p, pkt.seq, n, t)
        if flags & FIN and d.snd_max is not None:
            fin_end = (pkt.seq + n + 1) & _MASK  # the FIN takes a sequence number
            if 0 < (fin_end - d.snd_max) & _MASK < _HALF:
                d.snd_max = fin_end

    def _handshake_done(self, d: _Dir, t: int) -> None:
        if d.ev.endpoint == self._client:
            self._hs_pending = False
            assert self._syn_ns is not None and self._synack_ns is not None
            self._hs = (self._syn_ns, self._synack_ns, t)

    def _window(self, d: _Dir, p: _Dir, raw: int, t: int, n: int) -> None:
        """``d`` advertises a new window (for ``p``'s sending)."""
        d.win_raw = raw
        if raw < 0:
            return
        if raw == 0:
            if d.zero_since is None:
                d.zero_since = t
            d.win = 0
            return
        w = raw << d.scale
        if d.zero_since is not None:
            d.ev.zero_windows.append((d.zero_since, t))
            d.zero_since = None
            p.unblock_ns, p.unblock_pure = t, not n
        elif w > d.win >= 0:
            p.unblock_ns, p.unblock_pure = t, not n
        if w > d.max_window:
            d.max_window = w
        d.win = w

    def _ack(self, p: _Dir, a: int, t: int, n: int) -> None:
        """A new ACK for ``p``'s data (from a packet carrying ``n`` bytes of its own)."""
        if p.acked is not None and not 0 < (a - p.acked) & _MASK < _HALF:
            return  # an old ACK, reordered
        p.acked = a
        p.unblock_ns = t
        p.unblock_pure = not n
        if p.rtt_seq is not None and (a - p.rtt_seq) & _MASK < _HALF:
            sample = t - p.rtt_t
            ev = p.ev
            ev.rtt_samples += 1
            if ev.rtt_min_ns is None or sample < ev.rtt_min_ns:
                ev.rtt_min_ns = sample
            p.rtt_seq = None

    def _syn(self, d: _Dir, pkt: Packet, t: int) -> None:
        d.syn_seen = True
        d.ev.window_scale = pkt.wscale if pkt.wscale >= 0 else None
        d.snd_max = (pkt.seq + 1) & _MASK
        d.win = pkt.win  # a SYN's window is never scaled (RFC 7323 2.2)
        if pkt.flags & ACK:
            if self._synack_ns is None:
                self._synack_ns = t
                self._hs_pending = self._syn_ns is not None
            p = d.peer
            if p.syn_seen:
                # both SYNs seen: scaling is in force only if both sent the option
                both = d.ev.window_scale is not None and p.ev.window_scale is not None
                d.scale = d.ev.window_scale or 0 if both else 0
                p.scale = p.ev.window_scale or 0 if both else 0
                self._scale_known = True
            if pkt.ack and p.snd_max is not None:
                p.acked = pkt.ack
        elif self._syn_ns is None:
            self._syn_ns, self._client = t, d.ev.endpoint

    def _data(self, d: _Dir, p: _Dir, seq: int, n: int, t: int) -> None:
        """New data after a pause or in a new time bin, or a retransmission."""
        end = (seq + n) & _MASK
        ev = d.ev
        if d.snd_max is None:
            d.snd_max = seq  # the capture began mid-connection
        last = d.last_data_ns
        if 0 < (end - d.snd_max) & _MASK < _HALF:  # new data (at least in part)
            if last is not None and t - last >= STALL_NS:
                self._stall(d, last, t)
            d.snd_max = end
            if d.rtt_seq is None:
                d.rtt_seq, d.rtt_t = end, t
        else:  # a retransmission: what was sent before
            ev.retransmissions.append((t, n))
            ev.retransmitted_bytes += n
            d.rtt_seq = None  # Karn: no RTT sample across a retransmission
            if last is not None and t - last >= STALL_NS:
                ev.stalls.append((last, t, "retransmission", d.flight))
        if n > d.max_segment:
            d.max_segment = n
        d.last_data_ns, d.last_len = t, n
        d.flight = (d.snd_max - d.acked) & _MASK if d.acked is not None else n
        d.peer_win_at = p.win
        base = self._base_ns or 0
        key = (t - base) // self._bin_ns
        if key == d.bin_key:
            d.bin_bytes += n
        else:
            self._flush_bin(d)
            d.bin_key, d.bin_bytes = key, n
            d.bin_end = base + product(key + 1, self._bin_ns)

    def _flush_bin(self, d: _Dir) -> None:
        if d.bin_key >= 0:
            bins = d.bins
            bins[d.bin_key] = bins.get(d.bin_key, 0) + d.bin_bytes
            d.bin_key, d.bin_bytes, d.bin_end = -1, 0, -1
            if len(bins) > MAX_BINS:
                self._widen_bins()

    def _stall(self, d: _Dir, t0: int, t1: int) -> None:
        """Classify a pause [t0, t1) in ``d``'s new data by what held the sender back."""
        stalls = d.ev.stalls
        flight = d.flight
        # the receiver's window was zero at some time in the pause
        p = d.peer
        zero = p.zero_since is not None or bool(p.ev.zero_windows
                                                and p.ev.zero_windows[-1][1] > t0)
        if flight <= 0 and not zero:
            stalls.append((t0, t1, "idle", 0))
            return
        if zero:
            kind = "zero-window"
        elif self._scale_known and d.peer_win_at >= 0 and \
                flight + max(d.max_segment, 1) > d.peer_win_at:
            kind = "window-full"
        else:
            kind = "ack-wait"
        resumed = d.unblock_ns if t0 < d.unblock_ns <= t1 else t1
        # Nagle: a short segment waited on the peer's delayed, pure ACK, and the rest left at
        # once after it (an ACK riding on the peer's response is a request/response turn).
        if kind == "ack-wait" and d.last_len <= SHORT_SEGMENT and d.unblock_pure \
                and resumed < t1 and t1 - resumed <= NAGLE_RESUME_NS:
            waited = resumed - t0
            if any(lo <= waited <= hi for lo, hi in NAGLE_DELAYS_NS):
                kind = "nagle"
        stalls.append((t0, resumed, kind, flight))
        if t1 - resumed >= STALL_NS:
            stalls.append((resumed, t1, "idle", 0))

    def _widen_bins(self) -> None:
        self._bin_ns <<= 1
        for d in self._dirs.values():
            if d.bin_key >= 0:
                d.bin_key //= 2
                d.bin_end = (self._base_ns or 0) + product(d.bin_key + 1, self._bin_ns)
            merged: dict[int, int] = {}
            for k, v in d.bins.items():
                merged[k // 2] = merged.get(k // 2, 0) + v
            d.bins = merged

    def finish(self, last_ns: int) -> ConnectionEvidence:
        """The connection ended (or the capture did, at ``last_ns``): the evidence, as
        plain records."""
        base = self._base_ns or 0
        for d in self._dirs.values():
            self._flush_bin(d)
        for d in self._dirs.values():
            if d.zero_since is not None:
                d.ev.zero_windows.append((d.zero_since, last_ns))
                d.zero_since = None
            d.ev.max_window = d.max_window if d.max_window >= 0 else None
            d.ev.max_segment = d.max_segment
            d.ev.bins = [(base + product(k, self._bin_ns), v)
                         for k, v in sorted(d.bins.items())]
            d.ev.data_bytes = sum(b for _, b in d.ev.bins) - d.ev.retransmitted_bytes
            d.bins = {}
            if not self._scale_known:
                d.ev.window_scale = None
        return ConnectionEvidence(
            {ep: d.ev for ep, d in self._dirs.items()}, self._client, self._hs,
            self._scale_known, self._bin_ns)
