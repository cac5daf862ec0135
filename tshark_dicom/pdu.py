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
from dataclasses import dataclass
from typing import Any, Protocol

from pynetdicom import pdu as pn_pdu

log = logging.getLogger(__name__)

A_ASSOCIATE_RQ = 0x01
A_ASSOCIATE_AC = 0x02
A_ASSOCIATE_RJ = 0x03
P_DATA_TF = 0x04
A_RELEASE_RQ = 0x05
A_RELEASE_RP = 0x06
A_ABORT = 0x07

PDU_NAMES = {
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
_FIXED_LENGTH = {A_ASSOCIATE_RJ: 4, A_RELEASE_RQ: 4, A_RELEASE_RP: 4, A_ABORT: 4}
MAX_CONTROL_PDU = 1 << 20
#: Smallest A-ASSOCIATE-RQ/AC body: version, reserved, AE titles, reserved (PS3.8 9.3.2).
_MIN_ASSOCIATE = 68


_CAUSE_TEXT = {
    "lost": "missing from the capture",
    "snaplen": "cut by the capture's snapshot length",
}

#: Where a PDU header may start during resynchronisation: P-DATA-TF, A-RELEASE-RQ/RP, A-ABORT.
_CANDIDATE = re.compile(rb"[\x04-\x07]\x00")


@dataclass(frozen=True)
class ControlPdu:
    """A decoded non-P-DATA PDU. ``decoded`` is the pynetdicom PDU object."""

    pdu_type: int
    length: int
    first_frame: int
    last_frame: int
    first_time_ns: int
    last_time_ns: int
    decoded: Any

    @property
    def name(self) -> str:
        return PDU_NAMES[self.pdu_type]


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


# Parser states
_HEADER, _CONTROL, _PDV_HEADER, _PDV_VALUE, _SKIP, _RESYNC = range(6)


class PduParser:
    """One direction's PDU decoder; a `streams.StreamSink`."""

    __slots__ = (
        "sink", "state", "_buf", "_pdu_type", "_pdu_left", "_pdv_left", "_skip_left",
        "_first_frame", "_first_time", "_pdv_damaged", "pdus", "synced", "nbytes", "_cause",
        "_skipped",
    )

    def __init__(self, sink: UpperLayerSink) -> None:
        self.sink = sink
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

    # -- StreamSink --------------------------------------------------------------------
    def data(self, data: bytes, frame: int, time_ns: int) -> None:
        self.nbytes += len(data)
        self._feed(data, frame, time_ns)

    def _feed(self, data: bytes, frame: int, time_ns: int) -> None:
        view = memoryview(data)
        pos, n = 0, len(data)
        sink = self.sink
        while pos < n:
            state = self.state
            if state == _PDV_VALUE:
                take = min(self._pdv_left, n - pos)
                if not self._pdv_damaged:
                    sink.pdv_data(view[pos:pos + take], frame, time_ns)
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
        if state == _CONTROL and nbytes <= self._pdu_left:
            name = PDU_NAMES.get(self._pdu_type, "PDU")
            self.sink.lost(nbytes, "pdu", self._cause, frame, time_ns)
            self.sink.malformed(
                f"{name} incomplete: {nbytes} bytes {_CAUSE_TEXT.get(self._cause, 'missing')}",
                frame, time_ns,
            )
            left = self._pdu_left - nbytes
            self._buf.clear()
            self._enter_skip(left)
            return
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
        self.state = _CONTROL

    def _finish_control(self, frame: int, time_ns: int) -> None:
        raw = bytes(self._buf)
        self._buf = bytearray()
        self.state = _HEADER
        cls = _DECODERS[self._pdu_type]
        try:
            decoded = cls()
            decoded.decode(raw)
        except Exception as exc:  # pynetdicom raises many kinds on bad bytes
            self.sink.malformed(
                f"{PDU_NAMES[self._pdu_type]} could not be decoded: {exc}", frame, time_ns
            )
            return
        self.sink.control_pdu(
            ControlPdu(self._pdu_type, len(raw) - 6, self._first_frame, frame,
                       self._first_time, time_ns, decoded)
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
