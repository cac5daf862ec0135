"""The two packet sources agree: our own link/IP/TCP header reader (raw engine) yields
exactly the records tshark's dissection gives as -T ek fields (ek engine), on every
real capture; and both engines give the same tables."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path
from typing import Any

import pytest

import tshark_dicom
from tshark_dicom.errors import UnsupportedLinkType
from tshark_dicom.packets import (
    Packet,
    TcpStreamNumbers,
    epoch_ns,
    read_packets,
    read_raw_packets,
    stamp_ns,
)
from tshark_dicom.tshark import find_tshark, packets_argv, raw_argv, raw_conversion, run_tshark

from .conftest import CAPTURES

CAPS = sorted(p for p in CAPTURES.iterdir() if p.name.endswith((".pcapng", ".pcapng.gz")))


def _fields(p: Packet) -> tuple[object, ...]:
    return (p.frame, p.time_ns, p.stream, p.src, p.sport, p.dst, p.dport, p.seq, p.ack,
            p.tcp_len, p.flags, p.payload, p.win, p.wscale)


#: Every fixture, those with TLS secrets before their interface too (raw_conversion's second
#: way, test_conversion.py).
RAW_CAPS = CAPS


@pytest.mark.parametrize("cap", RAW_CAPS, ids=[c.name for c in RAW_CAPS])
def test_raw_reader_equals_tshark_dissection(cap: Path) -> None:
    tshark = find_tshark()
    with raw_conversion(tshark, cap) as (out, _):
        raw = [_fields(p) for p in read_raw_packets(out)]
    streams = sorted({r[2] for r in raw})
    with run_tshark(packets_argv(tshark, cap, streams), cap) as (out, _):
        ek = [_fields(p) for p in read_packets(out)]
    assert raw and raw == ek


#: Failed connection attempts come from the raw engine only (the ek engine selects streams
#: that carry an A-ASSOCIATE-RQ): where a capture has them, the callback and connection
#: findings differ.
ATTEMPTS_ONLY_RAW = {"qr_move_refused.pcapng", "qr_move_unanswered.pcapng", "scp_down.pcapng"}


@pytest.mark.parametrize("cap", RAW_CAPS, ids=[c.name for c in RAW_CAPS])
def test_engines_give_the_same_tables(cap: Path, tmp_path: Path) -> None:
    """Every table, timing evidence and attribution included, from either engine. The ek
    engine looks for TLS only when told (key logs, TLS ports, embedded secrets): the TLS
    fixtures get their key log and port, as a user of the ek engine would give them."""
    truth = CAPTURES / (cap.name.split(".")[0] + ".truth.json")
    tls = json.loads(truth.read_text()).get("tls") if truth.exists() else None
    kw: dict[str, Any] = {}
    if tls:
        kw = {"tls_keylogs": [CAPTURES / tls["keylog"]] if tls["keylog"] else [],
              "tls_ports": [tls["port"]]}
    raw = tshark_dicom.analyze(cap, engine="raw", objects_dir=tmp_path / "r" / "objects", **kw)
    ek = tshark_dicom.analyze(cap, engine="ek", objects_dir=tmp_path / "e" / "objects", **kw)
    for table in ("associations", "presentation_contexts", "messages", "objects",
                  "operations", "queries", "query_keys", "throughput"):
        a, b = raw.table(table), ek.table(table)
        if cap.name in ATTEMPTS_ONLY_RAW and table == "operations":
            a, b = a.drop(columns="callback_attempt_ids"), b.drop(columns="callback_attempt_ids")
        assert a.astype(str).equals(b.astype(str)), table
    codes = {"callback-refused", "callback-unanswered", "callback-missing",
             "connection-refused", "connection-unanswered"}
    if cap.name in ATTEMPTS_ONLY_RAW:
        assert sorted(set(raw.findings["code"]) - codes) == sorted(
            set(ek.findings["code"]) - codes)
        assert len(raw.connection_attempts) and not len(ek.connection_attempts)
    else:
        assert sorted(raw.findings["code"]) == sorted(ek.findings["code"])


def test_stream_numbers_follow_tshark_on_port_reuse() -> None:
    numbers = TcpStreamNumbers()
    a = ("10.0.0.1", 40000, "10.0.0.2", 104)
    assert numbers.number(*a, 0x02) == 0          # SYN
    assert numbers.number(a[2], a[3], a[0], a[1], 0x12) == 0  # SYN-ACK, other direction
    assert numbers.number("10.0.0.3", 1, "10.0.0.2", 104, 0x02) == 1
    assert numbers.number(*a, 0x11) == 0          # FIN-ACK closes it
    assert numbers.number(*a, 0x02) == 2          # a new SYN on the same ports: new stream


def test_unsupported_link_type_is_signalled(tmp_path: Path) -> None:
    # a pcap header (nanosecond magic) with link type 127 (802.11 radiotap)
    header = bytes.fromhex("4d3cb2a1020004000000000000000000ffff00007f000000")
    with pytest.raises(UnsupportedLinkType):
        list(read_raw_packets(io.BytesIO(header)))


class _Pieces(io.RawIOBase):
    """A pipe that hands out its bytes in pieces of the given sizes (then what is left):
    records cut anywhere, headers included, as reads from tshark or editcap can be."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self._data, self._pos, self._sizes = data, 0, list(sizes)
        self.reads = 0  # calls of read (each may wait for several pieces)
        self.taken = 0  # calls of read1 (one piece each)

    def read1(self, n: int = -1) -> bytes:
        """What the pipe holds now: the next piece (at most ``n``)."""
        self.taken += 1
        return self._piece(n)

    def _piece(self, n: int) -> bytes:
        size = self._sizes.pop(0) if self._sizes else len(self._data)
        size = min(size, n) if n >= 0 else size
        out = self._data[self._pos:self._pos + size]
        self._pos += len(out)
        return out

    def read(self, n: int = -1) -> bytes:  # type: ignore[override]
        """As a buffered pipe reads: pieces until ``n`` bytes (or the end)."""
        out = b""
        while n < 0 or len(out) < n:
            piece = self._piece(n - len(out) if n >= 0 else -1)
            if not piece:
                break
            out += piece
        self.reads += 1
        return out


def test_records_cut_by_reads_are_read_whole() -> None:
    """Records that straddle two reads (their 16-byte header too), reads shorter than one
    record, and a record spread over three reads all give the packets of one whole read."""
    tshark = find_tshark()
    cap = CAPTURES / "store_11112.pcapng"
    with run_tshark(raw_argv(tshark, cap), cap) as (out, _):
        pcap = out.read()
    want = [_fields(p) for p in read_raw_packets(io.BytesIO(pcap))]
    assert len(want) > 20
    # record boundaries, to cut right before, inside and right after headers
    starts, pos = [], 24
    while pos + 16 <= len(pcap):
        starts.append(pos)
        pos += 16 + struct.unpack_from("<I", pcap, pos + 8)[0]
    cuts = [[24 + 5, 1, 2, 3],  # the file header itself in pieces
            [starts[3] + 7 - 24, 9, 100],  # inside a record header, then short reads
            [starts[5] + 16 - 24, 1 << 20],  # right after a header, then the rest
            [starts[8] - 24 - 1, 2, 1, 1, 1 << 20],
            [starts[2] + 200, 3, 1 << 20]]
    for sizes in cuts:
        got = [_fields(p) for p in read_raw_packets(_Pieces(pcap, [24, *sizes]))]
        assert got == want, sizes
    # every read one byte short of a whole number of records, and reads of 37 bytes
    got = [_fields(p) for p in read_raw_packets(_Pieces(pcap, [24] + [37] * len(pcap)))]
    assert got == want


def test_a_record_longer_than_the_pipe_held_is_completed_in_one_read() -> None:
    """What the pipe holds is taken as it comes (read1); a record cut by it is completed by
    one read of exactly what it lacks, not joined piece by piece."""
    tshark = find_tshark()
    cap = CAPTURES / "store_11112.pcapng"
    with run_tshark(raw_argv(tshark, cap), cap) as (out, _):
        pcap = out.read()
    want = [_fields(p) for p in read_raw_packets(io.BytesIO(pcap))]
    first = struct.unpack_from("<I", pcap, 24 + 8)[0]
    assert first > 40
    pipe = _Pieces(pcap, [24, 20, *[7] * (first // 7 + 2)])  # then the rest at once
    assert [_fields(p) for p in read_raw_packets(pipe)] == want
    assert pipe.reads == 2  # the file header, then the rest of the first record
    assert pipe.taken >= 2  # its first 20 bytes, ..., the rest of the capture


def test_epoch_ns_is_exact() -> None:
    assert epoch_ns("1796072273.591710344") == 1796072273591710344
    assert epoch_ns("5.1") == 5_100_000_000
    assert epoch_ns("-5.25") == -5 * 10**9 + 250_000_000  # as int("-5") * 10**9 + 0.25 s


def test_stamp_ns_is_exact_about_its_splits() -> None:
    """The compiled reader's pcap times (packets.stamp_ns: the seconds split at bit 30 by
    packets.product): exact on both sides of each split, and for negative counts and
    counts beyond 32 bits."""
    seconds = [0, 1, (1 << 30) - 1, 1 << 30, 1796072273, (1 << 31) - 1, 1 << 31,
               (3 << 30) + 5, (1 << 32) - 1, 1 << 32, 10**12, -1, -(1 << 31)]
    fractions = [(0, 1), (999_999_999, 1), (999_999, 1000), ((1 << 30) - 1, 1),
                 (1 << 30, 1), ((1 << 32) - 1, 1000)]
    for sec in seconds:
        for frac, unit in fractions:
            assert stamp_ns(sec, frac, unit) == sec * 10**9 + frac * unit, (sec, frac, unit)


def _relink(pcap: bytes, linktype: int, convert: object) -> bytes:
    """Rewrite every record of an Ethernet nanosecond pcap with ``convert(frame) -> frame``."""
    header = bytearray(pcap[:24])
    header[20:24] = struct.pack("<I", linktype)
    out, pos = [bytes(header)], 24
    while pos + 16 <= len(pcap):
        sec, frac, incl, orig = struct.unpack_from("<IIII", pcap, pos)
        frame = convert(pcap[pos + 16:pos + 16 + incl])  # type: ignore[operator]
        grow = len(frame) - incl
        out.append(struct.pack("<IIII", sec, frac, len(frame), orig + grow) + frame)
        pos += 16 + incl
    return b"".join(out)


@pytest.mark.parametrize("kind", ["vlan", "qinq", "sll", "sll2", "raw", "null"])
def test_other_link_layers_read_the_same(kind: str) -> None:
    tshark = find_tshark()
    cap = CAPTURES / "store_11112.pcapng"
    with run_tshark(raw_argv(tshark, cap), cap) as (out, _):
        pcap = out.read()
    with run_tshark(raw_argv(tshark, cap), cap) as (out, _):
        want = [_fields(p) for p in read_raw_packets(out)]
    if kind == "vlan":
        linktype, conv = 1, lambda f: f[:12] + b"\x81\x00\x00\x05" + f[12:]
    elif kind == "qinq":
        linktype, conv = 1, lambda f: f[:12] + b"\x88\xa8\x00\x07\x81\x00\x00\x05" + f[12:]
    elif kind == "sll":  # Linux cooked v1: 16-byte header, protocol at 14
        linktype, conv = 113, lambda f: b"\x00\x00\x03\x04\x00\x06" + f[6:12] + b"\0\0" + f[12:]
    elif kind == "sll2":  # Linux cooked v2: 20-byte header, protocol at 0
        linktype, conv = 276, lambda f: f[12:14] + b"\0" * 18 + f[14:]
    elif kind == "raw":
        linktype, conv = 101, lambda f: f[14:]
    else:  # BSD loopback: 4-byte address family in host order
        linktype, conv = 0, lambda f: struct.pack("<I", 2) + f[14:]
    got = [_fields(p) for p in read_raw_packets(io.BytesIO(_relink(pcap, linktype, conv)))]
    assert got == want
