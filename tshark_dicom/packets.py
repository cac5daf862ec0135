"""tshark's ``-T ek`` output, streamed through ijson, into TCP segment records.

Each ek document is one packet; with ``-e`` every field is a list of strings. Nothing is
kept beyond the packet in hand: memory does not grow with the capture.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Iterator
from typing import IO, Any, Final

import ijson

from .errors import UnsupportedLinkType
from .interrupts import check as check_signals

# TCP flag bits (RFC 9293 3.1).
FIN: Final = 0x01
SYN: Final = 0x02
RST: Final = 0x04
ACK: Final = 0x10


class Packet:
    """One TCP segment as tshark saw it. ``__slots__``: this is the hot path."""

    __slots__ = (
        "frame", "time_ns", "stream", "src", "sport", "dst", "dport",
        "seq", "ack", "tcp_len", "flags", "payload", "win", "wscale",
    )

    def __init__(
        self, frame: int, time_ns: int, stream: int, src: str, sport: int, dst: str, dport: int,
        seq: int, ack: int, tcp_len: int, flags: int, payload: bytes, win: int = -1,
        wscale: int = -1,
    ) -> None:
        self.frame = frame
        self.time_ns = time_ns
        self.stream = stream
        self.src = src
        self.sport = sport
        self.dst = dst
        self.dport = dport
        self.seq = seq
        self.ack = ack
        self.tcp_len = tcp_len
        self.flags = flags
        self.payload = payload
        #: the advertised window as sent (unscaled; -1 unknown) and, on a SYN, the
        #: window-scale option's shift count (-1: no option), RFC 7323 2.2-2.3
        self.win = win
        self.wscale = wscale

    def __reduce__(self) -> tuple[type[Packet], tuple[int | str | bytes, ...]]:
        # the same pickle compiled (setup.py) or not: a compiled class has no default one
        return Packet, (self.frame, self.time_ns, self.stream, self.src, self.sport, self.dst,
                        self.dport, self.seq, self.ack, self.tcp_len, self.flags, self.payload,
                        self.win, self.wscale)

    def __repr__(self) -> str:
        return (
            f"Packet(frame={self.frame}, stream={self.stream}, {self.src}:{self.sport}->"
            f"{self.dst}:{self.dport}, seq={self.seq}, len={self.tcp_len}, flags={self.flags:#x})"
        )


def epoch_ns(text: str) -> int:
    """``"1796072273.591710344"`` -> integer nanoseconds, without float rounding."""
    whole, _, frac = text.partition(".")
    return stamp_ns(int(whole), int((frac + "000000000")[:9]), 1)


def stamp_ns(sec: int, frac: int, frac_ns: int) -> int:
    """``sec`` seconds and ``frac`` units of ``frac_ns`` nanoseconds, in nanoseconds (a
    pcap record's time: ``sec * 10**9`` is a `product` too large to multiply natively)."""
    return product(1_000_000_000, sec) + frac * frac_ns


def product(a: int, b: int) -> int:
    """``a * b``, exactly, for any ints; compiled, with native multiplications only for
    ``0 <= a < 2**30`` and ``0 <= b < 2**60``. mypyc multiplies natively only factors below
    2**30 and hands the rest to CPython's long multiplication, which checks for signals: a
    Ctrl-C pending there fails the product, which mypyc's runtime takes for exhausted
    memory, and the process aborts ("fatal: out of memory", measured mid-capture from
    Python with every packet's ``sec * 10**9``). ``b`` is split at bit 30 instead."""
    if b < 1 << 30:
        return a * b
    return ((a * (b >> 30)) << 30) + a * (b & 0x3FFFFFFF)


def ek_layers(stdout: IO[bytes]) -> Iterator[dict[str, Any]]:
    """The ``layers`` object of every document of tshark's ``-T ek`` output. No output at
    all (tshark printed nothing: no packet matched) is no documents, not an error; output
    cut inside a document raises ``ValueError`` (ijson's errors are ValueErrors)."""
    peek = getattr(stdout, "peek", None)
    if callable(peek) and not peek(1):
        return
    yield from ijson.items(stdout, "layers", multiple_values=True)


def read_packets(stdout: IO[bytes]) -> Iterator[Packet]:
    """Yield a Packet for every TCP segment in tshark's ek output (see tshark.FIELDS)."""
    for layers in ek_layers(stdout):
        stream = layers.get("tcp_stream")
        if not stream:
            continue  # not TCP (an ICMP error quoting a TCP header has no stream of its own)
        if "ip_src" in layers:
            src, dst = layers["ip_src"][-1], layers["ip_dst"][-1]  # innermost, for tunnels
        else:
            src, dst = layers["ipv6_src"][-1], layers["ipv6_dst"][-1]
        payload_hex = layers.get("tcp_payload")
        yield Packet(
            int(layers["frame_number"][0]),
            epoch_ns(layers["frame_time_epoch"][0]),
            int(stream[0]),
            src,
            int(layers["tcp_srcport"][0]),
            dst,
            int(layers["tcp_dstport"][0]),
            int(layers["tcp_seq_raw"][0]),
            int(layers["tcp_ack_raw"][0]) if "tcp_ack_raw" in layers else 0,
            int(layers["tcp_len"][0]),
            int(layers["tcp_flags"][0], 16),
            bytes.fromhex(payload_hex[0]) if payload_hex else b"",
            int(layers["tcp_window_size_value"][0]),
            int(layers["tcp_options_wscale_shift"][0]) if "tcp_options_wscale_shift" in layers
            else -1,
        )


# ---------------------------------------------------------------------------------------
# The raw engine: tshark converts any capture (format, compression) into a nanosecond pcap
# stream on stdout (``-w - -F nsecpcap``, no dissection: about 1 s for 229 MB, where field
# extraction with the payload as JSON hex takes 10-18 s) and we read the link, IP and TCP
# headers ourselves. Only the few link types below are read here; any other makes the
# caller use the ek engine, where tshark dissects everything.
# ---------------------------------------------------------------------------------------
_PCAP_NSEC: Final = 0xA1B23C4D
_PCAP_USEC: Final = 0xA1B2C3D4
#: link type -> how to find the network layer (RFC/tcpdump LINKTYPE_* values)
ETHERNET: Final = 1
LINUX_SLL: Final = 113
LINUX_SLL2: Final = 276
NULL: Final = 0
LOOP: Final = 108
RAW_IP = frozenset({101, 12, 14, 228, 229})
RAW_LINK_TYPES = frozenset({ETHERNET, LINUX_SLL, LINUX_SLL2, NULL, LOOP, *RAW_IP})
_VLAN: Final = (0x8100, 0x88A8, 0x9100)
_SEQ_ACK: Final = struct.Struct("!II")
_CHUNK: Final = 1 << 20


class CaptureStats:
    """What the raw reader saw of the whole capture (every record, DICOM or not): filled in
    as it reads, complete when the stream ends."""

    __slots__ = ("records", "first_ns", "last_ns", "link_type")

    def __init__(self) -> None:
        self.records = 0
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self.link_type: int | None = None


class TcpStreamNumbers:
    """tshark's ``tcp.stream`` numbering, reproduced: conversations numbered in order of
    their first packet, a new number when a SYN reopens a closed conversation."""

    __slots__ = ("_table", "_next")

    def __init__(self) -> None:
        self._table: dict[tuple[str, int, str, int], list[int]] = {}  # key -> [index, closed]
        self._next = 0

    def number(self, src: str, sport: int, dst: str, dport: int, flags: int) -> int:
        direct = (src, sport, dst, dport)
        entry = self._table.get(direct)
        if entry is None:
            # both directions share one entry, stored under each direction's key
            entry = [self._next, 0]
            self._next += 1
            self._table[direct] = self._table[(dst, dport, src, sport)] = entry
        elif entry[1] and flags & SYN and not flags & ACK:
            entry[0], entry[1] = self._next, 0  # the SYN reopens a closed conversation
            self._next += 1
        if flags & (FIN | RST):
            entry[1] = 1
        return entry[0]


def _ip_text(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6 if len(raw) == 16 else socket.AF_INET, raw)


def read_raw_packets(stdout: IO[bytes], numbers: TcpStreamNumbers | None = None,
                     skip: set[int] | None = None,
                     fragments: Callable[[int], None] | None = None,
                     stats: CaptureStats | None = None,
                     frame_offset: int = 0) -> Iterator[Packet]:
    """Yield a Packet for every TCP segment of a pcap stream (frame number = record index).

    ``skip``: streams of no interest (it may grow while packets are read): their packets
    are not yielded, their payload not copied out.
    ``fragments(frame)`` hears of IP fragments, which this engine does not reassemble.
    Raises UnsupportedLinkType before yielding anything if the link type is not ours.
    """
    header = stdout.read(24)
    if len(header) < 24:
        raise UnsupportedLinkType("no pcap stream came out of tshark")
    magic_le = struct.unpack("<I", header[:4])[0]
    if magic_le in (_PCAP_NSEC, _PCAP_USEC):
        endian = "<"
    elif struct.unpack(">I", header[:4])[0] in (_PCAP_NSEC, _PCAP_USEC):
        endian = ">"
    else:
        raise UnsupportedLinkType("not a pcap stream")
    magic = struct.unpack(endian + "I", header[:4])[0]
    frac_ns = 1 if magic == _PCAP_NSEC else 1000
    linktype = struct.unpack(endian + "I", header[20:24])[0] & 0x0FFFFFFF
    if linktype not in RAW_LINK_TYPES:
        raise UnsupportedLinkType(f"link type {linktype}")
    stats = stats or CaptureStats()
    stats.link_type = linktype
    record = struct.Struct(endian + "IIII")
    little = endian == "<"
    fast = linktype == ETHERNET
    numbers = numbers or TcpStreamNumbers()
    names: dict[bytes, str] = {}  # address bytes -> text: few distinct addresses, many packets
    # read1: what the pipe holds now (one system call, waiting only while it is empty), not
    # read's 1 MiB at any cost: read waits for the rest of its MiB 4 KiB at a time, as
    # editcap writes it, the two processes waking each other for every page (store_1gb,
    # tables only: 4.53-4.74 -> 3.89-4.06 s side by side). A record longer than what came
    # is completed by one read (up to a MiB at a time), not a join per piece.
    read = getattr(stdout, "read1", stdout.read)
    whole_read = stdout.read
    buf, pos, frame = b"", 0, frame_offset
    # Typed once here: struct's values are Any, and the compiled module (setup.py, mypyc)
    # then does native arithmetic on these.
    sec: int = 0
    frac: int = 0
    incl: int = 0
    orig: int = 0
    total: int
    sport: int
    dport: int
    seq: int
    ack: int
    hoff: int
    flags: int
    win: int
    src4: int
    dst4: int
    src: bytes
    dst: bytes
    # The last two conversations seen (IPv4 fast path): their addresses as text and stream
    # number, so that the data and the ACKs of one connection need no table lookup. Valid
    # until a SYN, FIN or RST passes (those may renumber a conversation).
    a_src = a_dst = b_src = b_dst = -1
    a_ports = b_ports = -1
    a_sip = a_dip = b_sip = b_dip = ""
    a_stream = b_stream = 0
    waiting_first = True
    # A record cut by the end of a read is completed into a small buffer of its own (the
    # "bridge": the tail of this read and the head of the next), and parsing goes on in the
    # next read where the bridge ends. Joining the tail to the whole next read instead
    # copied every byte of the capture once more (0.1 s a GB).
    after: bytes = b""  # the read that follows the bridge now in buf
    after_pos = 0
    while True:
        # Records are parsed in place from 1 MiB reads: no per-packet read call or copy.
        avail = len(buf) - pos
        if avail >= 16:
            if little:  # byte by byte: native in the compiled module, no tuple per record
                sec = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16 | buf[pos + 3] << 24
                frac = (buf[pos + 4] | buf[pos + 5] << 8 | buf[pos + 6] << 16
                        | buf[pos + 7] << 24)
                incl = (buf[pos + 8] | buf[pos + 9] << 8 | buf[pos + 10] << 16
                        | buf[pos + 11] << 24)
                orig = (buf[pos + 12] | buf[pos + 13] << 8 | buf[pos + 14] << 16
                        | buf[pos + 15] << 24)
            else:
                sec, frac, incl, orig = record.unpack_from(buf, pos)
            whole = avail - 16 >= incl
        else:
            whole = False
        if not whole:
            if after:  # the bridge held one whole record: on with the read after it
                buf, pos, after = after, after_pos, b""
                continue
            more = read(_CHUNK)
            check_signals()  # a Ctrl-C meanwhile: KeyboardInterrupt (interrupts.py)
            if not more:
                break  # the stream ended (inside a record: tshark says why on stderr)
            if not avail:
                buf, pos = more, 0
                continue
            head = buf[pos:pos + 16] + more[:max(0, 16 - avail)]
            need = 16 + record.unpack_from(head, 0)[2] - avail if len(head) >= 16 else -1
            if 0 < need <= len(more):
                buf, pos, after, after_pos = buf[pos:] + more[:need], 0, more, need
            else:  # a record longer than a read, or a header cut twice: join, read on
                buf, pos = buf[pos:] + more, 0
                if need > len(more):  # the rest of the record in one read, not piecemeal
                    buf += whole_read(min(need - len(more), _CHUNK))
            continue
        base = pos + 16
        limit = base + incl  # captured bytes of this frame end here
        pos = limit
        frame += 1
        if waiting_first:
            stats.first_ns, waiting_first = stamp_ns(sec, frac, frac_ns), False
        if fast and incl >= 54 and buf[base + 12] == 0x08 and buf[base + 13] == 0 \
                and buf[base + 14] == 0x45 and buf[base + 23] == 6 \
                and not (buf[base + 20] & 0x3F or buf[base + 21]):
            # Ethernet + IPv4 without options + TCP (not a fragment), by far the most common:
            # the fields read byte by byte (native when compiled; struct.unpack_from made a
            # tuple of 14 ints per packet)
            total = buf[base + 16] << 8 | buf[base + 17]
            src4 = (buf[base + 26] << 24 | buf[base + 27] << 16 | buf[base + 28] << 8
                    | buf[base + 29])
            dst4 = (buf[base + 30] << 24 | buf[base + 31] << 16 | buf[base + 32] << 8
                    | buf[base + 33])
            sport = buf[base + 34] << 8 | buf[base + 35]
            dport = buf[base + 36] << 8 | buf[base + 37]
            seq = (buf[base + 38] << 24 | buf[base + 39] << 16 | buf[base + 40] << 8
                   | buf[base + 41])
            ack = (buf[base + 42] << 24 | buf[base + 43] << 16 | buf[base + 44] << 8
                   | buf[base + 45])
            hoff = buf[base + 46]
            flags = buf[base + 47]
            win = buf[base + 48] << 8 | buf[base + 49]
            start = base + 34 + (hoff >> 4) * 4
            ip_end = base + 14 + total if total else base + orig
            ports = sport << 16 | dport
            if flags & 0x07:  # SYN, FIN or RST
                a_src = b_src = -1
                wscale = _wscale(buf, base + 54, min(start, limit)) if flags & SYN else -1
            else:
                wscale = -1
                if src4 == a_src and dst4 == a_dst and ports == a_ports:
                    stream, s_ip, d_ip = a_stream, a_sip, a_dip
                elif src4 == b_src and dst4 == b_dst and ports == b_ports:
                    stream, s_ip, d_ip = b_stream, b_sip, b_dip
                else:
                    stream = -1
                if stream >= 0:
                    if skip is not None and stream in skip:
                        continue
                    yield Packet(frame, stamp_ns(sec, frac, frac_ns), stream, s_ip,
                                 sport, d_ip, dport, seq, ack,
                                 ip_end - start if ip_end > start else 0, flags,
                                 buf[start:min(ip_end, limit)], win, -1)
                    continue
            s_ip = names.get(src := buf[base + 26:base + 30]) or _name(names, src)
            d_ip = names.get(dst := buf[base + 30:base + 34]) or _name(names, dst)
            stream = numbers.number(s_ip, sport, d_ip, dport, flags)
            if not flags & 0x07:
                b_src, b_dst, b_ports, b_stream, b_sip, b_dip = \
                    a_src, a_dst, a_ports, a_stream, a_sip, a_dip
                a_src, a_dst, a_ports, a_stream, a_sip, a_dip = \
                    src4, dst4, ports, stream, s_ip, d_ip
            if skip is not None and stream in skip:
                continue
            yield Packet(frame, stamp_ns(sec, frac, frac_ns), stream, s_ip, sport,
                         d_ip, dport, seq, ack, ip_end - start if ip_end > start else 0,
                         flags, buf[start:min(ip_end, limit)], win, wscale)
            continue
        found = _parse_headers(buf, base, limit, orig, linktype)
        if found is None:
            continue
        if found[0] == -1:  # an IP fragment
            if fragments is not None:
                fragments(frame)
            continue
        _, src, dst, sport, dport, seq, ack, flags, start, ip_end, win, wscale = found
        if flags & 0x07:
            a_src = b_src = -1
        s_ip = names.get(src) or _name(names, src)
        d_ip = names.get(dst) or _name(names, dst)
        stream = numbers.number(s_ip, sport, d_ip, dport, flags)
        if skip is not None and stream in skip:
            continue
        yield Packet(frame, stamp_ns(sec, frac, frac_ns), stream, s_ip, sport, d_ip,
                     dport, seq, ack, ip_end - start if ip_end > start else 0, flags,
                     buf[start:min(ip_end, limit)], win, wscale)
    stats.records = frame - frame_offset
    if stats.records:
        stats.last_ns = stamp_ns(sec, frac, frac_ns)


def _name(names: dict[bytes, str], raw: bytes) -> str:
    """An address as text, remembered."""
    text = names[raw] = _ip_text(raw)
    return text


def _wscale(buf: bytes, pos: int, end: int) -> int:
    """The window-scale option's shift count among a SYN's TCP options, -1 if absent
    (RFC 7323 2.2: kind 3, length 3). Options are walked only on SYNs: rare."""
    while pos < end:
        kind = buf[pos]
        if kind == 0:  # end of options
            break
        if kind == 1:  # no-operation
            pos += 1
            continue
        if pos + 1 >= end or buf[pos + 1] < 2:
            break
        if kind == 3 and buf[pos + 1] == 3 and pos + 2 < end:
            return buf[pos + 2]
        pos += buf[pos + 1]
    return -1


_Headers = tuple[int, bytes, bytes, int, int, int, int, int, int, int, int, int]


def _parse_headers(buf: bytes, base: int, limit: int, orig: int,
                   linktype: int) -> _Headers | None:
    """Link, IP and TCP headers of any supported kind: (6, src, dst, sport, dport, seq, ack,
    flags, payload start, IP end), (-1, ...) for an IP fragment, None if not TCP."""
    # -- link layer -> offset of the IP header
    if linktype == ETHERNET:
        if limit - base < 14:
            return None
        etype = (buf[base + 12] << 8) | buf[base + 13]
        off = base + 14
        while etype in _VLAN and limit >= off + 4:
            etype = (buf[off + 2] << 8) | buf[off + 3]
            off += 4
        if etype != 0x0800 and etype != 0x86DD:
            return None
    elif linktype == LINUX_SLL:
        off = base + 16
    elif linktype == LINUX_SLL2:
        off = base + 20
    elif linktype == NULL or linktype == LOOP:
        off = base + 4
    else:
        off = base
    # -- IP (tunnels of IP in IP unwrapped); ip_end may lie past the captured bytes
    proto = 0
    ip_end = base + orig
    src = dst = b""
    while off < limit:
        version = buf[off] >> 4
        if version == 4:
            if limit < off + 20:
                break
            total = (buf[off + 2] << 8) | buf[off + 3]
            ip_end = off + total if total else base + orig  # 0: segmentation offload
            if (buf[off + 6] & 0x3F) or buf[off + 7]:
                proto = -1  # an IP fragment: not reassembled here
                break
            proto = buf[off + 9]
            src, dst = buf[off + 12:off + 16], buf[off + 16:off + 20]
            off += (buf[off] & 0x0F) * 4
        elif version == 6:
            if limit < off + 40:
                break
            plen = (buf[off + 4] << 8) | buf[off + 5]
            ip_end = off + 40 + plen if plen else base + orig
            proto = buf[off + 6]
            src, dst = buf[off + 8:off + 24], buf[off + 24:off + 40]
            off += 40
            while proto in (0, 43, 60) and off + 8 <= limit:  # extension headers
                proto, off = buf[off], off + (buf[off + 1] + 1) * 8
            if proto == 44:
                proto = -1
                break
        else:
            break
        if proto != 4 and proto != 41:
            break
    if proto == -1:
        return (-1, b"", b"", 0, 0, 0, 0, 0, 0, 0, 0, -1)
    if proto != 6 or off + 20 > limit:
        return None
    sport = (buf[off] << 8) | buf[off + 1]
    dport = (buf[off + 2] << 8) | buf[off + 3]
    seq, ack = _SEQ_ACK.unpack_from(buf, off + 4)
    start = off + ((buf[off + 12] >> 4) * 4)
    flags = buf[off + 13]
    win = (buf[off + 14] << 8) | buf[off + 15]
    wscale = _wscale(buf, off + 20, min(start, limit)) if flags & SYN else -1
    return (6, src, dst, sport, dport, seq, ack, flags, start, ip_end, win, wscale)
