"""DICOM Upper Layer PDUs (PS3.8 9.3), decoded from one direction's reassembled bytes.

`PduParser` is a push parser: it is a `streams.StreamSink`, fed bytes and gaps in sequence
order, and it tells an `UpperLayerSink` what it finds:

- control PDUs (A-ASSOCIATE-RQ/AC/RJ, A-RELEASE-RQ/RP, A-ABORT) whole and decoded with
  pynetdicom's PDU classes (they decode every item and sub-item of PS3.8 9.3 and Annex D);
- P-DATA-TF PDUs as a stream of PDV fragments (PS3.8 9.3.5): a header, then the value in
  chunks as the bytes arrive. A PDV is never buffered whole: a PDU may be megabytes (or
  claim 4 GB) long, so P-DATA is parsed here rather than with ``P_DATA_TF.decode``.

Bytes missing from the capture are reported with where they fell; parsing resumes at the
next PDU boundary it knows (from the PDU length) or can find by scanning for a plausible
PDU header. Malformed PDUs are reported, never raised.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from mypy_extensions import mypyc_attr
from pynetdicom import pdu as pn_pdu
from pynetdicom import pdu_items as pn_items

from .streams import StreamSink

log = logging.getLogger(__name__)

A_ASSOCIATE_RQ: Final = 0x01
A_ASSOCIATE_AC: Final = 0x02
A_ASSOCIATE_RJ: Final = 0x03
P_DATA_TF: Final = 0x04
A_RELEASE_RQ: Final = 0x05
A_RELEASE_RP: Final = 0x06
A_ABORT: Final = 0x07

PDU_NAMES: Final = {
    A_ASSOCIATE_RQ: "A-ASSOCIATE-RQ",
    A_ASSOCIATE_AC: "A-ASSOCIATE-AC",
    A_ASSOCIATE_RJ: "A-ASSOCIATE-RJ",
    P_DATA_TF: "P-DATA-TF",
    A_RELEASE_RQ: "A-RELEASE-RQ",
    A_RELEASE_RP: "A-RELEASE-RP",
    A_ABORT: "A-ABORT",
}

_DECODERS: dict[int, Any] = {
    A_ASSOCIATE_RQ: pn_pdu.A_ASSOCIATE_RQ,
    A_ASSOCIATE_AC: pn_pdu.A_ASSOCIATE_AC,
    A_ASSOCIATE_RJ: pn_pdu.A_ASSOCIATE_RJ,
    A_RELEASE_RQ: pn_pdu.A_RELEASE_RQ,
    A_RELEASE_RP: pn_pdu.A_RELEASE_RP,
    A_ABORT: pn_pdu.A_ABORT_RQ,
}

#: Fixed lengths (PS3.8 9.3.6-9.3.8) and the largest association PDU we will buffer: an
#: A-ASSOCIATE-RQ with 128 contexts is about 10 KB; 1 MiB leaves room for user identity etc.
_FIXED_LENGTH: Final = {A_ASSOCIATE_RJ: 4, A_RELEASE_RQ: 4, A_RELEASE_RP: 4, A_ABORT: 4}
MAX_CONTROL_PDU: Final = 1 << 20
#: Smallest A-ASSOCIATE-RQ/AC body: version, reserved, AE titles, reserved (PS3.8 9.3.2).
_MIN_ASSOCIATE: Final = 68


_CAUSE_TEXT: Final = {
    "lost": "missing from the capture",
    "snaplen": "cut by the capture's snapshot length",
    "end": "missing: the stream ends inside it",
}

#: Where a PDU header may start during resynchronisation: P-DATA-TF, A-RELEASE-RQ/RP, A-ABORT.
_CANDIDATE: Final = re.compile(rb"[\x04-\x07]\x00")


@dataclass(frozen=True)
class ControlPdu:
    """A decoded non-P-DATA PDU. ``decoded`` is the pynetdicom PDU object, or, for an
    A-ASSOCIATE-RQ/AC that pynetdicom refuses or that the capture lacks bytes of, an
    `AssociatePdu` with what was there. ``missing``: bytes of it the capture lacks."""

    pdu_type: int
    length: int
    first_frame: int
    last_frame: int
    first_time_ns: int
    last_time_ns: int
    decoded: Any
    missing: int = 0

    @property
    def name(self) -> str:
        return PDU_NAMES[self.pdu_type]

    @property
    def problems(self) -> tuple[str, ...]:
        """What was wrong with it or missing from it (only for an `AssociatePdu`)."""
        return tuple(getattr(self.decoded, "problems", ()))


@dataclass
class AssociatePdu:
    """An A-ASSOCIATE-RQ or -AC as it was sent (PS3.8 9.3.2, 9.3.3), decoded field by
    field where pynetdicom refuses the whole (an AE title with a control character) or
    the capture lacks some of its bytes (a snapshot length, a gap): the AE titles as text
    (Latin-1, every byte kept) and every item whose bytes are all there, each decoded with
    pynetdicom's item classes. The attribute names are pynetdicom's PDU's."""

    called_ae_title: str | None = None
    calling_ae_title: str | None = None
    application_context_name: str | None = None
    presentation_context: list[Any] = field(default_factory=list)
    user_information: Any = None
    #: items not decoded, and why (missing bytes, malformed), for the association's findings
    problems: list[str] = field(default_factory=list)
    #: items that were whole and decoded, of all the items whose header was seen
    items_kept: int = 0
    items_seen: int = 0


#: Items of an A-ASSOCIATE-RQ/AC (PS3.8 9.3.2.1-9.3.2.3, 9.3.3.1-9.3.3.3).
_ITEM_NAMES: Final = {0x10: "application context", 0x20: "presentation context",
               0x21: "presentation context", 0x50: "user information"}
#: Where the variable items start: after type, reserved, length, version, reserved, the
#: two AE titles and 32 reserved bytes (PS3.8 Table 9-11).
_ITEMS_AT: Final = 74


_AE_FORBIDDEN: Final = re.compile(r"[\x00-\x1f\x7f\\]")


def ae_title_problem(title: str | None) -> str | None:
    """What makes an AE title as sent break PS3.5 6.2 (AE: at most 16 characters of the
    default repertoire, no control characters, no backslash), else None."""
    if not title:
        return None
    if _AE_FORBIDDEN.search(title):
        return "control characters or a backslash, which AE titles may not hold"
    if not title.isascii():
        return "characters outside the default character repertoire"
    return None


def _overlaps(holes: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(a < end and start < b for a, b in holes)


def decode_associate(raw: bytes, holes: list[tuple[int, int]]) -> AssociatePdu:
    """What an A-ASSOCIATE-RQ/AC (``raw``: the whole PDU, header included) says, keeping
    everything whose bytes are there: ``holes`` are [start, end) offsets the capture
    lacks (their bytes in ``raw`` are placeholders). Never raises."""
    pdu = AssociatePdu()
    expected = 0x20 if raw[:1] == b"\x01" else 0x21
    for attr, start in (("called_ae_title", 10), ("calling_ae_title", 26)):
        if len(raw) >= start + 16 and not _overlaps(holes, start, start + 16):
            # PS3.8 Table 9-11: leading and trailing spaces are not significant
            setattr(pdu, attr, raw[start:start + 16].decode("latin-1").strip(" "))
        else:
            pdu.problems.append(f"{attr.replace('_', ' ').replace('ae', 'AE')} not in "
                                "the capture")
    offset, end = _ITEMS_AT, len(raw)
    while offset < end:
        if _overlaps(holes, offset, offset + 4):
            pdu.problems.append(f"the items from byte {offset} on are not in the capture")
            break
        if offset + 4 > end:
            pdu.problems.append(f"{end - offset} stray bytes after the last item")
            break
        item_type = raw[offset]
        length = int.from_bytes(raw[offset + 2:offset + 4], "big")
        stop = offset + 4 + length
        pdu.items_seen += 1
        name = _ITEM_NAMES.get(item_type, f"item type {item_type:#04x}")
        if stop > end:
            pdu.problems.append(f"{name} item at byte {offset} claims {length} bytes, more "
                                "than the PDU holds")
            break
        if _overlaps(holes, offset, stop):
            ctx = f" {raw[offset + 4]}" if item_type in (0x20, 0x21) and not _overlaps(
                holes, offset + 4, offset + 5) and length else ""
            pdu.problems.append(f"{name}{ctx} item not whole in the capture")
        elif item_type not in _ITEM_NAMES or (item_type in (0x20, 0x21)
                                              and item_type != expected):
            pdu.problems.append(f"unexpected {name} item at byte {offset}")
        else:
            try:
                item: Any = pn_items.PDU_ITEM_TYPES[item_type]()
                item.decode(raw[offset:stop])
            except Exception as exc:  # pynetdicom raises many kinds on bad bytes
                pdu.problems.append(f"{name} item at byte {offset} could not be decoded: "
                                    f"{type(exc).__name__}: {exc}")
            else:
                pdu.items_kept += 1
                if item_type == 0x10:
                    pdu.application_context_name = str(item.application_context_name or "")
                elif item_type == 0x50:
                    pdu.user_information = item
                else:
                    pdu.presentation_context.append(item)
        offset = stop
    return pdu


@dataclass(frozen=True)
class PdvHeader:
    """The start of one Presentation Data Value item (PS3.8 9.3.5.1, Annex E.2)."""

    context_id: int
    is_command: bool
    is_last: bool
    length: int  # of the value: the item length minus the context id and control header
    frame: int
    time_ns: int


class UpperLayerSink(Protocol):
    """Receives what one direction's `PduParser` finds, in stream order."""

    def pdu_start(self, pdu_type: int, length: int, frame: int, time_ns: int) -> None: ...

    def control_pdu(self, pdu: ControlPdu) -> None: ...

    def pdv_start(self, pdv: PdvHeader) -> None: ...

    def pdv_data(self, chunk: memoryview, frame: int, time_ns: int) -> None: ...

    def pdv_end(self, frame: int, time_ns: int) -> None: ...

    def lost(self, nbytes: int, where: str, cause: str, frame: int, time_ns: int) -> None:
        """Bytes the capture lacks (``cause``: ``lost``, ``snaplen``, or ``end``/``malformed``
        with nbytes 0); the PDV or PDU in progress (if any) is incomplete."""
        ...

    def malformed(self, text: str, frame: int, time_ns: int) -> None: ...

    def resynced(self, pdu_name: str, skipped: int, frame: int, time_ns: int) -> None: ...

    def end(self, how: str, frame: int, time_ns: int) -> None: ...


@mypyc_attr(allow_interpreted_subclasses=True)
class PdvDataSink:
    """Where a `PduParser` may send PDV value bytes instead of its `UpperLayerSink`
    (`PduParser.data_sink`): the one event of every data segment then goes there without a
    hop, and, this being a base class and not a Protocol, by a native call when compiled."""

    __slots__ = ()

    def pdv_data(self, chunk: memoryview, frame: int, time_ns: int) -> None:
        raise NotImplementedError


# Parser states
_HEADER: Final = 0
_CONTROL: Final = 1
_PDV_HEADER: Final = 2
_PDV_VALUE: Final = 3
_SKIP: Final = 4
_RESYNC: Final = 5


class PduParser(StreamSink):
    """One direction's PDU decoder; a `streams.StreamSink`."""

    __slots__ = (
        "sink", "state", "_buf", "_pdu_type", "_pdu_left", "_pdv_left", "_skip_left",
        "_first_frame", "_first_time", "_pdv_damaged", "pdus", "synced", "nbytes", "_cause",
        "_skipped", "_holes", "data_sink",
    )

    def __init__(self, sink: UpperLayerSink) -> None:
        self.sink = sink
        #: receives the PDV value bytes when set, else ``sink`` does
        self.data_sink: PdvDataSink | None = None
        self.state = _HEADER
        self._buf = bytearray()
        self._pdu_type = 0
        self._pdu_left = 0
        self._pdv_left = 0
        self._skip_left = 0
        self._first_frame = 0
        self._first_time = 0
        self._pdv_damaged = False
        self.pdus = 0
        self.synced = True
        self.nbytes = 0  # stream bytes seen, gaps included
        self._cause = "lost"
        self._skipped = 0  # unreadable bytes passed over while resynchronising
        self._holes: list[tuple[int, int]] = []  # bytes of the control PDU the capture lacks

    # -- StreamSink --------------------------------------------------------------------
    def data(self, data: bytes, frame: int, time_ns: int) -> None:
        self.nbytes += len(data)
        self._feed(data, frame, time_ns)

    def _feed(self, data: bytes, frame: int, time_ns: int) -> None:
        view = memoryview(data)
        pos, n = 0, len(data)
        while pos < n:
            state = self.state
            if state == _PDV_VALUE:
                take = min(self._pdv_left, n - pos)
                if not self._pdv_damaged:
                    fast = self.data_sink
                    if fast is not None:
                        fast.pdv_data(view[pos:pos + take], frame, time_ns)
                    else:
                        self.sink.pdv_data(view[pos:pos + take], frame, time_ns)
                pos += take
                self._pdv_left -= take
                self._pdu_left -= take
                if self._pdv_left == 0:
                    self._end_pdv(frame, time_ns)
            elif state == _HEADER:
                if not self._buf:
                    self._first_frame, self._first_time = frame, time_ns
                take = min(6 - len(self._buf), n - pos)
                self._buf += view[pos:pos + take]
                pos += take
                if len(self._buf) == 6:
                    self._start_pdu(frame, time_ns)
            elif state == _PDV_HEADER:
                take = min(6 - len(self._buf), n - pos)
                self._buf += view[pos:pos + take]
                pos += take
                if len(self._buf) == 6:
                    self._start_pdv(frame, time_ns)
            elif state == _CONTROL:
                take = min(self._pdu_left, n - pos)
                self._buf += view[pos:pos + take]
                pos += take
                self._pdu_left -= take
                if self._pdu_left == 0:
                    self._finish_control(frame, time_ns)
            elif state == _SKIP:
                take = min(self._skip_left, n - pos)
                pos += take
                self._skip_left -= take
                if self._skip_left == 0:
                    self.state = _HEADER
            else:  # _RESYNC: continue on what follows a provable PDU start, if any
                rest = self._resync(view[pos:], frame, time_ns)
                if rest is None:
                    return
                view, pos, n = memoryview(rest), 0, len(rest)

    def gap(self, nbytes: int, frame: int, time_ns: int, cause: str = "lost") -> None:
        self.nbytes += nbytes
        self._cause = cause
        state = self.state
        if state == _PDV_VALUE and nbytes <= self._pdv_left:
            # Inside one PDV: we still know where it and its PDU end.
            self.sink.lost(nbytes, "pdv", self._cause, frame, time_ns)
            self._pdv_damaged = True
            self._pdv_left -= nbytes
            self._pdu_left -= nbytes
            if self._pdv_left == 0:
                self._end_pdv(frame, time_ns)
            return
        if state in (_PDV_VALUE, _PDV_HEADER) and nbytes <= self._pdu_left - len(self._buf):
            # Inside one P-DATA PDU but across PDV boundaries: skip to the PDU's end.
            self.sink.lost(nbytes, "pdu", self._cause, frame, time_ns)
            left = self._pdu_left - len(self._buf) - nbytes
            self._buf.clear()
            self._pdv_damaged = False
            self._enter_skip(left)
            return
        if state == _CONTROL:
            # Keep what is there (a snapshot length cuts every A-ASSOCIATE-RQ, yet its AE
            # titles and first items are in the capture): the missing bytes become a hole.
            inside = min(nbytes, self._pdu_left)
            self.sink.lost(inside, "pdu", self._cause, frame, time_ns)
            start = len(self._buf)
            self._holes.append((start, start + inside))
            self._buf += bytes(inside)
            self._pdu_left -= inside
            if self._pdu_left == 0:
                self._finish_control(frame, time_ns)
            nbytes -= inside
            if nbytes == 0:
                return
            state = self.state
        if state == _SKIP and nbytes <= self._skip_left:
            self._skip_left -= nbytes
            self.sink.lost(nbytes, "skipped", self._cause, frame, time_ns)
            if self._skip_left == 0:
                self.state = _HEADER
            return
        # At or across a PDU boundary: what follows the gap is at an unknown offset.
        self.sink.lost(nbytes, "stream", self._cause, frame, time_ns)
        self._buf.clear()
        self._pdv_damaged = False
        self.state = _RESYNC
        self.synced = False

    def end(self, how: str, frame: int, time_ns: int) -> None:
        if self.state == _CONTROL and self._pdu_type in (A_ASSOCIATE_RQ, A_ASSOCIATE_AC):
            # what the stream held of it is kept; the rest is a hole
            start = len(self._buf)
            self._holes.append((start, start + self._pdu_left))
            self._buf += bytes(self._pdu_left)
            self._pdu_left = 0
            self._cause = "end"
            self._finish_control(frame, time_ns)
        if self.state != _RESYNC and (self.state != _HEADER or self._buf):
            if self.state in (_PDV_VALUE, _PDV_HEADER):
                self.sink.lost(0, "end", "end", frame, time_ns)
            elif self.state == _CONTROL or self._buf:
                name = PDU_NAMES.get(self._pdu_type, "PDU") if self.state == _CONTROL else "PDU"
                self.sink.malformed(f"{name} cut off by the end of the stream", frame, time_ns)
        self.sink.end(how, frame, time_ns)

    # -- internals ---------------------------------------------------------------------
    def _enter_skip(self, nbytes: int) -> None:
        if nbytes > 0:
            self._skip_left = nbytes
            self.state = _SKIP
        else:
            self.state = _HEADER

    def _start_pdu(self, frame: int, time_ns: int) -> None:
        hdr = self._buf
        pdu_type, reserved = hdr[0], hdr[1]
        length = int.from_bytes(hdr[2:6], "big")
        self._buf = bytearray()
        if pdu_type not in PDU_NAMES or reserved != 0:
            self.sink.malformed(
                f"not a DICOM PDU header: {bytes(hdr).hex()} (type {pdu_type:#04x})",
                self._first_frame, self._first_time,
            )
            self._buf = bytearray(hdr[1:])  # a real PDU may start inside these bytes
            self._skipped = 1
            self.state = _RESYNC
            self.synced = False
            return
        self.pdus += 1
        self._pdu_type = pdu_type
        self._pdu_left = length
        self.sink.pdu_start(pdu_type, length, self._first_frame, self._first_time)
        if pdu_type == P_DATA_TF:
            self._enter_pdv_header(frame, time_ns)
            return
        fixed = _FIXED_LENGTH.get(pdu_type)
        too_short = pdu_type in (A_ASSOCIATE_RQ, A_ASSOCIATE_AC) and length < _MIN_ASSOCIATE
        if (fixed is not None and length != fixed) or too_short or length > MAX_CONTROL_PDU:
            self.sink.malformed(
                f"{PDU_NAMES[pdu_type]} with impossible length {length}", frame, time_ns
            )
            self._enter_skip(length)
            return
        self._buf = bytearray(hdr)
        self._holes = []
        self.state = _CONTROL

    def _finish_control(self, frame: int, time_ns: int) -> None:
        raw = bytes(self._buf)
        holes, self._holes = self._holes, []
        self._buf = bytearray()
        self.state = _HEADER
        name = PDU_NAMES[self._pdu_type]
        missing = sum(b - a for a, b in holes)
        decoded: Any = None
        refused = ""
        if not holes:
            try:
                decoded = _DECODERS[self._pdu_type]()
                decoded.decode(raw)
            except Exception as exc:  # pynetdicom raises many kinds on bad bytes
                decoded = None
                refused = f"{type(exc).__name__}: {exc}"
        if decoded is None and self._pdu_type in (A_ASSOCIATE_RQ, A_ASSOCIATE_AC):
            # decode what was sent, item by item; the association flags what was wrong
            decoded = decode_associate(raw, holes)
            if missing:
                decoded.problems.insert(0, f"{missing} bytes "
                                        f"{_CAUSE_TEXT.get(self._cause, 'missing')}")
            elif not decoded.problems and not any(
                    ae_title_problem(t) for t in (decoded.called_ae_title,
                                                  decoded.calling_ae_title)):
                decoded.problems.append(f"pynetdicom refused it ({refused})")
        elif decoded is None:
            self.sink.malformed(
                f"{name} incomplete: {missing} bytes "
                f"{_CAUSE_TEXT.get(self._cause, 'missing')}" if holes else
                f"{name} could not be decoded: {refused}", frame, time_ns)
            return
        self.sink.control_pdu(
            ControlPdu(self._pdu_type, len(raw) - 6, self._first_frame, frame,
                       self._first_time, time_ns, decoded, missing)
        )

    def _start_pdv(self, frame: int, time_ns: int) -> None:
        hdr = self._buf
        item_len = int.from_bytes(hdr[0:4], "big")
        ctx, mch = hdr[4], hdr[5]
        self._buf = bytearray()
        self._pdu_left -= 6
        if item_len < 2 or item_len - 2 > self._pdu_left or mch > 3:
            self.sink.malformed(
                f"PDV item length {item_len} does not fit its P-DATA-TF PDU", frame, time_ns
            )
            self.sink.lost(0, "pdu", "malformed", frame, time_ns)
            self._enter_skip(self._pdu_left)
            return
        self._pdv_left = item_len - 2
        self._pdv_damaged = False
        self.sink.pdv_start(
            PdvHeader(ctx, bool(mch & 1), bool(mch & 2), item_len - 2, frame, time_ns))
        self.state = _PDV_VALUE
        if self._pdv_left == 0:
            self._end_pdv(frame, time_ns)

    def _end_pdv(self, frame: int, time_ns: int) -> None:
        if not self._pdv_damaged:
            self.sink.pdv_end(frame, time_ns)
        self._pdv_damaged = False
        self._enter_pdv_header(frame, time_ns)

    def _enter_pdv_header(self, frame: int, time_ns: int) -> None:
        """Next PDV item, if the P-DATA-TF has room for one (PS3.8 9.3.5: 6-byte header)."""
        if self._pdu_left == 0:
            self.state = _HEADER
        elif self._pdu_left < 6:
            self.sink.malformed(
                f"P-DATA-TF ends with {self._pdu_left} bytes, too few for a PDV item",
                frame, time_ns)
            self._enter_skip(self._pdu_left)
        else:
            self.state = _PDV_HEADER

    def _resync(self, view: memoryview, frame: int, time_ns: int) -> bytes | None:
        """Find the next offset that is provably a PDU start and return the bytes from it;
        else keep a short tail for next time and return None.

        Accepted: a P-DATA-TF header whose first PDV item fits it, with an odd context id
        and a valid control byte; or an exact A-RELEASE-RQ/RP or A-ABORT PDU (10 bytes).
        """
        buf = self._buf
        buf += view
        found = -1
        for match in _CANDIDATE.finditer(buf):
            i = match.start()
            t = buf[i]
            need = 12 if t == P_DATA_TF else 10
            if i + need > len(buf):
                break
            length = int.from_bytes(buf[i + 2:i + 6], "big")
            if t == P_DATA_TF:
                item = int.from_bytes(buf[i + 6:i + 10], "big")
                if 2 <= item <= length - 4 and buf[i + 10] & 1 and buf[i + 11] <= 3:
                    found = i
                    break
            elif length == 4 and buf[i + 6] == 0 and buf[i + 7] == 0:
                found = i
                break
        if found < 0:
            keep = len(buf) - 11 if len(buf) > 11 else 0
            self._skipped += keep
            self._buf = bytearray(buf[keep:])
            return None
        rest = bytes(buf[found:])
        self._skipped += found
        self._buf = bytearray()
        self.state = _HEADER
        self.synced = True
        self.sink.resynced(PDU_NAMES[rest[0]], self._skipped, frame, time_ns)
        self._skipped = 0
        return rest
