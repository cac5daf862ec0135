"""Generators for fuzzing (tests/test_fuzz.py, benchmarks/fuzz_long.py): hypothesis
strategies of DICOM Upper Layer conversations, valid and invalid, and the TCP segments
that carry them; a driver that feeds them in-process through every decoding stage; and a
mutator of real capture files for runs through the whole command line.

What the strategies make (PS3.8 9.3, PS3.7 Annex E, PS3.5 7):
- A-ASSOCIATE-RQ/AC encoded by pynetdicom, with AE titles of any bytes (control bytes
  included), random context ids, abstract and transfer syntaxes, maximum PDU lengths;
- P-DATA-TF PDUs of command sets built element by element (known and unknown commands,
  wrong VRs and value lengths, repeated or unordered elements, wrong group lengths, control
  bytes in every text field) and of data sets (identifiers with nested sequences of
  undefined length, text with control bytes), split into PDV fragments;
- A-RELEASE, A-ABORT, A-ASSOCIATE-RJ, and raw garbage;
- then mutations of the bytes: item and PDU lengths set to 0, small values or 0xFFFFFFFF
  (4 GB), flipped flags and context ids, truncation, inserted and deleted bytes;
- TCP: random segment sizes, lost, duplicated and reordered segments, snapshot-length cuts.
"""

from __future__ import annotations

import functools
import random
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from pynetdicom import pdu as pn_pdu
from pynetdicom import pdu_primitives as pp
from pynetdicom.presentation import PresentationContext

from tshark_dicom import analysis
from tshark_dicom.captureresult import CaptureResult
from tshark_dicom.packets import ACK, FIN, RST, SYN, Packet
from tshark_dicom.spool import FrameSink, Spool

PSH = 0x08

UIDS = ["1.2.840.10008.1.1", "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.2.2.1",
        "1.2.840.10008.5.1.4.1.2.2.2", "1.2.840.10008.5.1.4.1.2.1.3", "1.2.840.10008.1.2",
        "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99",
        "1.2.840.10008.3.1.2.3.3", "../../x", "1.2.3\x00../../y"]
TRANSFER = ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2",
            "1.2.840.10008.1.2.1.99"]
COMMANDS = [0x0001, 0x8001, 0x0010, 0x8010, 0x0020, 0x8020, 0x0021, 0x8021, 0x0030, 0x8030,
            0x0100, 0x8100, 0x0110, 0x8110, 0x0120, 0x8120, 0x0130, 0x8130, 0x0140, 0x8140,
            0x0150, 0x8150, 0x0FFF]
STATUSES = [0x0000, 0xFF00, 0xFF01, 0xFE00, 0xB000, 0xA700, 0xC000, 0x0107, 0xA801]

#: text with the bytes that break readers: control bytes, ESC sequences, formulas, tags
HOSTILE_TEXT = [b"\x1b[2J", b"\r\n  error: FAKE", b"=HYPERLINK(\"x\")", b"<script>", b"\x00",
                b"\\", b"../", b"\x9b31m", b"\xff\xfe", b"+SUM(1)", b"@x", b"\t"]


def _freeze(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    return value


class _Strategies:
    """``hypothesis.strategies`` with every strategy made once per set of arguments and
    reused: building (and validating) strategies, not drawing from them, is what costs
    when composite strategies build their parts on every draw."""

    def __init__(self) -> None:
        self._memo: dict[Any, Any] = {}

    def __getattr__(self, name: str) -> Any:
        factory = getattr(st, name)

        def make(*args: Any, **kw: Any) -> Any:
            key = (name, _freeze(args), _freeze(kw))
            try:
                return self._memo[key]
            except KeyError:
                made = self._memo[key] = factory(*args, **kw)
                return made
            except TypeError:  # an unhashable argument: not cached
                return factory(*args, **kw)
        return make


S = _Strategies()


_TEXT: dict[int, st.SearchStrategy[bytes]] = {}


def _text_bytes(max_size: int) -> st.SearchStrategy[bytes]:
    """Text field values: any bytes, pieces of hostile text, UIDs (made once per size:
    building strategies is what costs in hypothesis)."""
    if max_size not in _TEXT:
        _TEXT[max_size] = S.one_of(
            S.binary(max_size=max_size),
            S.lists(S.sampled_from([*HOSTILE_TEXT, b"A", b"1.2", b" ", b"STORE"]),
                     max_size=6).map(lambda parts: b"".join(parts)[:max_size]),
            S.sampled_from([s.encode("latin-1") for s in UIDS]),
        )
    return _TEXT[max_size]


def _ae_field(text: bytes) -> bytes:
    """16 bytes of an AE title field as sent (PS3.8 Table 9-11: space padded)."""
    return text[:16].ljust(16, b" ")


# -- association PDUs ------------------------------------------------------------------------


def _lenient(fn: Callable[[], bytes]) -> bytes:
    """pynetdicom validates AE titles as it encodes; the generators want any bytes there."""
    from pynetdicom import _config

    saved = _config.VALIDATORS["AE"]
    _config.VALIDATORS["AE"] = lambda value: (True, "")
    try:
        return fn()
    finally:
        _config.VALIDATORS["AE"] = saved


@st.composite
def associate_rq(draw: st.DrawFn) -> tuple[bytes, list[tuple[int, str, list[str]]]]:
    """An A-ASSOCIATE-RQ (pynetdicom-encoded, then AE titles of any bytes put in) and the
    contexts it proposes."""
    calling = draw(_text_bytes(16))
    called = draw(_text_bytes(16))
    n = draw(S.integers(1, 5))
    ids = draw(S.lists(S.integers(0, 255), min_size=n, max_size=n))
    contexts = []
    for cid in ids:
        contexts.append((cid, draw(S.sampled_from(UIDS[:10])),
                         draw(S.lists(S.sampled_from(TRANSFER), min_size=1, max_size=3))))
    max_pdu = draw(S.sampled_from([0, 1, 16384, 0xFFFFFFFF]))
    raw = _encoded_rq(tuple((cid, a, tuple(t)) for cid, a, t in contexts), max_pdu)
    # the AE titles exactly as drawn, whatever their bytes (pynetdicom would refuse them)
    raw = raw[:10] + _ae_field(called) + _ae_field(calling) + raw[42:]
    return raw, [(cid | 1, a, t) for cid, a, t in contexts]


@functools.lru_cache(maxsize=4096)
def _encoded_rq(contexts: tuple[tuple[int, str, tuple[str, ...]], ...], max_pdu: int) -> bytes:
    def encode() -> bytes:
        primitive = pp.A_ASSOCIATE()
        primitive.application_context_name = "1.2.840.10008.3.1.1.1"
        primitive.calling_ae_title = "CALLING"
        primitive.called_ae_title = "CALLED"
        ml = pp.MaximumLengthNotification()
        ml.maximum_length_received = max_pdu
        uid = pp.ImplementationClassUIDNotification()
        uid.implementation_class_uid = "1.2.3.4"
        primitive.user_information = [ml, uid]
        pcs = []
        for cid, abstract, tss in contexts:
            pc = PresentationContext()
            pc.context_id = cid | 1
            pc.abstract_syntax = abstract
            pc.transfer_syntax = list(tss)
            pcs.append(pc)
        primitive.presentation_context_definition_list = pcs
        return bytes(pn_pdu.A_ASSOCIATE_RQ(primitive).encode())

    return _lenient(encode)


@st.composite
def associate_ac(draw: st.DrawFn, contexts: tuple[tuple[int, str, tuple[str, ...]], ...]
                 ) -> bytes:
    results = draw(S.lists(S.sampled_from([0, 0, 0, 1, 2, 3, 4]), max_size=len(contexts)))
    return _encoded_ac(tuple((cid, a, tuple(t)) for cid, a, t in contexts), tuple(results))


@functools.lru_cache(maxsize=4096)
def _encoded_ac(contexts: tuple[tuple[int, str, tuple[str, ...]], ...],
                drawn: tuple[int, ...]) -> bytes:
    results = list(drawn)

    def encode() -> bytes:
        primitive = pp.A_ASSOCIATE()
        primitive.application_context_name = "1.2.840.10008.3.1.1.1"
        primitive.calling_ae_title = "A"
        primitive.called_ae_title = "B"
        primitive.result = 0x00
        ml = pp.MaximumLengthNotification()
        ml.maximum_length_received = 16384
        uid = pp.ImplementationClassUIDNotification()
        uid.implementation_class_uid = "1.2.3.4"
        primitive.user_information = [ml, uid]
        pcs = []
        for cid, abstract, tss in contexts:
            pc = PresentationContext()
            pc.context_id = cid
            pc.abstract_syntax = abstract
            pc.transfer_syntax = [tss[0]]
            pc.result = results.pop() if results else 0
            pcs.append(pc)
        primitive.presentation_context_definition_results_list = pcs
        return bytes(pn_pdu.A_ASSOCIATE_AC(primitive).encode())

    return _lenient(encode)


A_RELEASE_RQ = bytes.fromhex("05000000000400000000")
A_RELEASE_RP = bytes.fromhex("06000000000400000000")


def a_abort(source: int, reason: int) -> bytes:
    return bytes([7, 0, 0, 0, 0, 4, 0, 0, source & 0xFF, reason & 0xFF])


def a_associate_rj(result: int, source: int, reason: int) -> bytes:
    return bytes([3, 0, 0, 0, 0, 4, 0, result & 0xFF, source & 0xFF, reason & 0xFF])


# -- DIMSE --------------------------------------------------------------------------------------


def element(tag: int, value: bytes, length: int | None = None) -> bytes:
    """One Implicit VR Little Endian element (PS3.5 7.1.3)."""
    n = len(value) if length is None else length
    return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, n & 0xFFFFFFFF) + value


def _us(v: int) -> bytes:
    return struct.pack("<H", v & 0xFFFF)


@st.composite
def command_set(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A command set (PS3.7 Annex E) and whether a data set follows; often wrong."""
    field = draw(S.one_of(S.sampled_from(COMMANDS), S.integers(0, 0xFFFF)))
    has_dataset = draw(S.booleans())
    elems: list[tuple[int, bytes]] = [(0x00000100, _us(field))]
    if draw(S.booleans()):
        elems.append((0x00000002, draw(_text_bytes(64))))
    if draw(S.booleans()):
        elems.append((0x00001000, draw(_text_bytes(64))))
    elems.append((0x00000110 if not field & 0x8000 else 0x00000120,
                  _us(draw(S.integers(0, 0xFFFF)))))
    elems.append((0x00000800, _us(0x0001 if has_dataset else 0x0101)))
    if field & 0x8000:
        elems.append((0x00000900, _us(draw(S.sampled_from(STATUSES)))))
        if draw(S.booleans()):
            elems.append((0x00000902, draw(_text_bytes(64))))
        if draw(S.booleans()):
            for tag in (0x00001020, 0x00001021, 0x00001022, 0x00001023):
                elems.append((tag, _us(draw(S.integers(0, 0xFFFF)))))
    if draw(S.booleans()):
        elems.append((0x00000600, draw(_text_bytes(16))))  # Move Destination
    if draw(S.booleans()):
        elems.append((0x00000700, _us(draw(S.integers(0, 3)))))  # Priority
    elems.sort()
    # the wrongs: a US of the wrong size, a repeated or unordered element, an unknown one
    wrong = draw(S.sampled_from(["none", "none", "size", "repeat", "order", "unknown",
                                  "length", "group"]))
    if wrong == "size" and elems:
        i = draw(S.integers(0, len(elems) - 1))
        elems[i] = (elems[i][0], elems[i][1] + b"\x00")
    elif wrong == "repeat":
        elems.append(elems[0])
    elif wrong == "order":
        elems.reverse()
    elif wrong == "unknown":
        elems.append((0x0000FFF0, b"zz"))
    body = b"".join(element(t, v) for t, v in elems)
    if wrong == "length":
        body += element(0x0000FFFE, b"", draw(S.sampled_from([1, 0xFFFF, 0xFFFFFFFF])))
    group = len(body) if wrong != "group" else draw(S.integers(0, 0xFFFFFFFF))
    return element(0x00000000, struct.pack("<I", group)) + body, has_dataset


@st.composite
def identifier(draw: st.DrawFn, depth: int = 0) -> bytes:
    """A query identifier in Implicit VR Little Endian: text keys with control bytes, a
    Query/Retrieve Level, and sequences of undefined length nested up to three deep."""
    parts = [element(0x00080052, draw(S.sampled_from([b"STUDY ", b"PATIENT", b"\x1b[2J",
                                                       b""])))]
    for tag in sorted(draw(S.sets(S.sampled_from(
            [0x00080020, 0x00080050, 0x00100010, 0x00100020, 0x0020000D, 0x00081030,
             0x00090010, 0x00200010]), max_size=4))):
        parts.append(element(tag, draw(_text_bytes(40))))
    if depth < 3 and draw(S.booleans()):
        inner = draw(_cached(identifier, depth + 1))
        item = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF) + inner + \
            struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
        parts.append(element(0x00400275, item + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0),
                             0xFFFFFFFF))
    return b"".join(parts)


def pdvs(context_id: int, data: bytes, command: bool, max_fragment: int) -> list[bytes]:
    """The PDV items of one command set or data set, fragments of at most max_fragment."""
    out = []
    chunks = [data[i:i + max_fragment] for i in range(0, len(data), max_fragment)] or [b""]
    for i, chunk in enumerate(chunks):
        control = (1 if command else 0) | (2 if i == len(chunks) - 1 else 0)
        out.append(struct.pack(">IBB", len(chunk) + 2, context_id & 0xFF, control) + chunk)
    return out


def p_data(items: list[bytes]) -> bytes:
    body = b"".join(items)
    return struct.pack(">BBI", 4, 0, len(body)) + body


@st.composite
def message_pdus(draw: st.DrawFn, context_ids: tuple[int, ...]) -> list[bytes]:
    """One DIMSE message as P-DATA-TF PDUs (one or more PDVs per PDU)."""
    cid = draw(S.one_of(S.sampled_from(context_ids), S.integers(0, 255)))
    cmd, has_dataset = draw(_cached(command_set))
    frag = draw(S.sampled_from([4, 64, 1 << 16]))
    items = pdvs(cid, cmd, True, frag)
    if has_dataset:
        data = draw(S.one_of(_cached(identifier), S.binary(max_size=300)))
        items += pdvs(cid, data, False, frag)
    per_pdu = draw(S.integers(1, 4))
    return [p_data(items[i:i + per_pdu]) for i in range(0, len(items), per_pdu)]


# -- whole conversations and their mutations ------------------------------------------------


@functools.cache
def _cached(make: Any, *args: Any) -> Any:
    """A composite strategy made once per arguments (see _Strategies)."""
    return make(*args)


@dataclass
class Conversation:
    """The PDUs each side sent, in order: (sender, bytes), sender 0 requestor, 1 acceptor."""

    pdus: list[tuple[int, bytes]]


def _mutate(draw: st.DrawFn, data: bytes) -> bytes:
    """One change of the kind real damage and attacks make."""
    if not data:
        return data
    kind = draw(S.sampled_from(["length", "byte", "truncate", "insert", "delete", "flags"]))
    buf = bytearray(data)
    at = draw(S.integers(0, len(buf) - 1))
    if kind == "length" and len(buf) >= 6:
        # a PDU length (bytes 2-5) or an item length somewhere: 0, small, or 4 GB
        where = draw(S.sampled_from([2, at]))
        value = draw(S.sampled_from([0, 1, 2, 5, 0xFFFF, 0xFFFFFFFF]))
        size = draw(S.sampled_from([2, 4]))
        buf[where:where + size] = value.to_bytes(4, "big")[-size:]
    elif kind == "byte":
        buf[at] = draw(S.integers(0, 255))
    elif kind == "truncate":
        del buf[at:]
    elif kind == "insert":
        buf[at:at] = draw(S.binary(min_size=1, max_size=8))
    elif kind == "delete":
        del buf[at:at + draw(S.integers(1, 8))]
    else:  # PDV flags and context id (bytes 10 and 11 of a P-DATA-TF)
        if len(buf) > 11:
            buf[10] = draw(S.integers(0, 255))
            buf[11] = draw(S.integers(0, 255))
    return bytes(buf)


@st.composite
def conversation(draw: st.DrawFn) -> Conversation:
    rq, contexts = draw(_cached(associate_rq))
    pdus: list[tuple[int, bytes]] = [(0, rq)]
    answer = draw(S.sampled_from(["ac", "ac", "ac", "rj", "none", "abort"]))
    ids = [c[0] for c in contexts]
    if answer == "ac":
        pdus.append((1, draw(_cached(associate_ac, _freeze(contexts)))))
        for _ in range(draw(S.integers(0, 5))):
            sender = draw(S.sampled_from([0, 0, 1]))
            pdus += [(sender, p) for p in draw(_cached(message_pdus, tuple(ids)))]
        end = draw(S.sampled_from(["release", "abort", "none"]))
        if end == "release":
            pdus += [(0, A_RELEASE_RQ), (1, A_RELEASE_RP)]
        elif end == "abort":
            pdus.append((draw(S.integers(0, 1)), a_abort(draw(S.integers(0, 3)),
                                                          draw(S.integers(0, 7)))))
    elif answer == "rj":
        pdus.append((1, a_associate_rj(*draw(S.tuples(S.integers(0, 3), S.integers(0, 4),
                                                       S.integers(0, 8))))))
    elif answer == "abort":
        pdus.append((1, a_abort(2, draw(S.integers(0, 7)))))
    if draw(S.booleans()):
        pdus.append((draw(S.integers(0, 1)), draw(S.binary(min_size=1, max_size=40))))
    for _ in range(draw(S.integers(0, 3))):  # damage
        i = draw(S.integers(0, len(pdus) - 1))
        pdus[i] = (pdus[i][0], _mutate(draw, pdus[i][1]))
    return Conversation(pdus)


@dataclass
class TcpPlan:
    """How the conversation travels: segment sizes and what the capture does to them."""

    seed: int
    loss: float
    dup: float
    reorder: float
    snaplen: int | None
    handshake: bool
    close: str


tcp_plan = st.builds(
    TcpPlan, seed=S.integers(0, 2**32 - 1), loss=S.sampled_from([0.0, 0.0, 0.05, 0.3]),
    dup=S.sampled_from([0.0, 0.1]), reorder=S.sampled_from([0.0, 0.0, 0.2]),
    snaplen=S.sampled_from([None, None, None, 30, 200]), handshake=S.booleans(),
    close=S.sampled_from(["fin", "rst", "none"]))

REQUESTOR = ("10.0.0.1", 40000)
ACCEPTOR = ("10.0.0.2", 104)


def packets(conv: Conversation, plan: TcpPlan, stream: int = 0) -> list[Packet]:
    """The TCP segments of a conversation on one connection, with the plan's damage."""
    rng = random.Random(plan.seed)
    ends = (REQUESTOR, ACCEPTOR)
    seq = [1000, 900000]
    segs: list[tuple[int, int, bytes, int]] = []  # (sender, seq, payload, flags)
    if plan.handshake:
        segs += [(0, seq[0] - 1, b"", SYN), (1, seq[1] - 1, b"", SYN | ACK), (0, seq[0], b"", ACK)]
    for sender, data in conv.pdus:
        pos = 0
        while pos < len(data):
            size = rng.choice([1, 6, 12, 100, 1448, 65483])
            chunk = data[pos:pos + size]
            segs.append((sender, seq[sender], chunk, ACK | PSH))
            seq[sender] = (seq[sender] + len(chunk)) & 0xFFFFFFFF
            pos += size
    if plan.close != "none":
        flag = FIN if plan.close == "fin" else RST
        segs += [(0, seq[0], b"", flag | ACK), (1, seq[1], b"", flag | ACK)]
    out: list[tuple[int, int, bytes, int]] = []
    for s in segs:
        r = rng.random()
        if r < plan.loss:
            continue
        out.append(s)
        if rng.random() < plan.dup:
            out.append(s)
    for i in range(len(out) - 1):
        if rng.random() < plan.reorder:
            out[i], out[i + 1] = out[i + 1], out[i]
    pkts = []
    t = 1_700_000_000_000_000_000
    for frame, (sender, sq, payload, flags) in enumerate(out, 1):
        src, dst = ends[sender], ends[1 - sender]
        t += rng.choice([1000, 50_000, 40_000_000])
        kept = payload[:plan.snaplen] if plan.snaplen is not None else payload
        pkts.append(Packet(frame, t, stream, src[0], src[1], dst[0], dst[1], sq,
                           seq[1 - sender], len(payload), flags, kept, 512, 7))
    return pkts


def analyse_packets(pkts: list[Packet], ports: frozenset[int] = frozenset()
                    ) -> CaptureResult:
    """Everything after tshark, in-process: streams, PDUs, DIMSE, associations, objects
    (hashed, not written), operations and timing, queries and correlation, findings."""
    result = CaptureResult("fuzz")
    run = analysis._Run(result, ports, None, {}, decide=True, on_association=None,
                        keep_all=False)
    run.consume(iter(pkts), None)
    run.finish(None, Path("fuzz"), "fuzz", (), cross_check=False)  # type: ignore[arg-type]
    spool = Spool("fuzz")  # and on to the rows of every table
    for done in result.associations:
        spool(done)
    sink = FrameSink()
    spool.drain(result, sink)
    return result


# -- mutating real capture files --------------------------------------------------------------


def pcap_records(data: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """A pcap file as its global header and (record header, packet bytes) pairs."""
    if data[:4] not in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        raise ValueError("not a little-endian pcap file")
    records, pos = [], 24
    while pos + 16 <= len(data):
        incl = struct.unpack_from("<I", data, pos + 8)[0]
        records.append((data[pos:pos + 16], data[pos + 16:pos + 16 + incl]))
        pos += 16 + incl
    return data[:24], records


def _tcp_payload_at(frame: bytes) -> int | None:
    """Where the TCP payload starts in an Ethernet/IPv4 frame, else None."""
    if len(frame) < 54 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
        return None
    ihl = (frame[14] & 0x0F) * 4
    at = 14 + ihl + (frame[14 + ihl + 12] >> 4) * 4
    return at if at <= len(frame) else None


def mutate_capture(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One damaged copy of a pcap file and what was done to it: payload bytes and bit
    flips, PDU/PDV/item lengths set to 0, small values or 0xFFFFFFFF, truncation of the
    file, duplicated, dropped and swapped packets."""
    header, records = pcap_records(data)
    kind = rng.choice(["flip", "bytes", "length", "truncate", "dup", "drop", "swap", "many"])
    steps = [kind] if kind != "many" else rng.choices(
        ["flip", "bytes", "length", "dup", "drop", "swap"], k=rng.randint(2, 6))
    recs = list(records)
    for step in steps:
        with_payload = [i for i, (_, f) in enumerate(recs)
                        if (_tcp_payload_at(f) or len(f)) < len(f)]
        if step in ("flip", "bytes", "length") and with_payload:
            i = rng.choice(with_payload)
            rh, frame = recs[i]
            at = _tcp_payload_at(frame)
            assert at is not None
            buf = bytearray(frame)
            if step == "flip":
                j = rng.randrange(at, len(buf))
                buf[j] ^= 1 << rng.randrange(8)
            elif step == "bytes":
                for _ in range(rng.randint(1, 8)):
                    buf[rng.randrange(at, len(buf))] = rng.randrange(256)
            else:  # a PDU length, a PDV item length, or any 4 bytes of the payload
                j = rng.choice([at + 2, at + 6, rng.randrange(at, len(buf))])
                value = rng.choice([0, 1, 2, 3, 6, 0xFFFF, 0xFFFFFFFF])
                buf[j:j + 4] = value.to_bytes(4, "big")[:max(0, len(buf) - j)]
                del buf[len(frame):]
            recs[i] = (rh, bytes(buf))
        elif step == "dup" and recs:
            i = rng.randrange(len(recs))
            recs.insert(i, recs[i])
        elif step == "drop" and recs:
            del recs[rng.randrange(len(recs))]
        elif step == "swap" and len(recs) > 1:
            i = rng.randrange(len(recs) - 1)
            recs[i], recs[i + 1] = recs[i + 1], recs[i]
    out = header + b"".join(rh + f for rh, f in recs)
    if kind == "truncate":
        out = out[:rng.randrange(25, len(out))]
    return out, "+".join(steps)


def fixture_pcaps(captures: Path, tmp: Path, names: list[str]) -> Iterator[tuple[str, bytes]]:
    """Fixture captures as little-endian pcap bytes (editcap -F pcap), by name."""
    import subprocess

    for name in names:
        target = tmp / f"{name}.pcap"
        subprocess.run(["editcap", "-F", "pcap", str(captures / f"{name}.pcapng"),
                        str(target)], check=True, capture_output=True)
        yield name, target.read_bytes()


def describe(value: Any) -> str:
    """A short text of a failing example, for reports."""
    return repr(value)[:2000]
