"""Tests for tshark_dicom.pdu: the Upper Layer PDU push parser (PS3.8 9.3).

Control PDUs are encoded by pynetdicom from its primitives, so the decoder is checked
against an independent encoder; P-DATA-TF PDUs (PS3.8 9.3.5, Annex E) are packed here
byte by byte, since the parser streams them rather than decoding them whole. Streams are
fed whole, in chunks and one byte at a time, with gaps where the capture lost bytes.
"""

from __future__ import annotations

import struct
import tracemalloc
from typing import Any

import pytest
from pynetdicom import pdu as pn_pdu
from pynetdicom import pdu_primitives as pp
from pynetdicom.presentation import build_context

from tshark_dicom.pdu import (
    A_ABORT,
    A_ASSOCIATE_AC,
    A_ASSOCIATE_RJ,
    A_ASSOCIATE_RQ,
    A_RELEASE_RP,
    A_RELEASE_RQ,
    MAX_CONTROL_PDU,
    P_DATA_TF,
    AssociatePdu,
    ControlPdu,
    PduParser,
    PdvHeader,
)

APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
VERIFICATION = "1.2.840.10008.1.1"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
IMPLICIT_VR_LE = "1.2.840.10008.1.2"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
IMPLEMENTATION_UID = "1.2.826.0.1.3680043.9.3811.3.0.4"
IMPLEMENTATION_VERSION = "PYNETDICOM_304"

Event = tuple[Any, ...]


# -- byte fixtures ------------------------------------------------------------------------


def _associate_primitive() -> pp.A_ASSOCIATE:
    primitive = pp.A_ASSOCIATE()
    primitive.application_context_name = APPLICATION_CONTEXT
    primitive.calling_ae_title = "STORESCU"
    primitive.called_ae_title = "ARCHIVE"
    max_length = pp.MaximumLengthNotification()
    max_length.maximum_length_received = 16384
    class_uid = pp.ImplementationClassUIDNotification()
    class_uid.implementation_class_uid = IMPLEMENTATION_UID
    version = pp.ImplementationVersionNameNotification()
    version.implementation_version_name = IMPLEMENTATION_VERSION
    primitive.user_information = [max_length, class_uid, version]
    return primitive


def a_associate_rq() -> bytes:
    """A-ASSOCIATE-RQ, STORESCU -> ARCHIVE, max PDU 16384, pynetdicom's implementation
    UID and version; context 1 Verification (pynetdicom's 4 default transfer syntaxes),
    context 3 CT Image Storage (Explicit then Implicit VR Little Endian)."""
    primitive = _associate_primitive()
    contexts = [
        build_context(VERIFICATION),
        build_context(CT_IMAGE_STORAGE, [EXPLICIT_VR_LE, IMPLICIT_VR_LE]),
    ]
    contexts[0].context_id, contexts[1].context_id = 1, 3
    primitive.presentation_context_definition_list = contexts
    return bytes(pn_pdu.A_ASSOCIATE_RQ(primitive).encode())


def a_associate_ac() -> bytes:
    """A-ASSOCIATE-AC answering a_associate_rq(): context 1 accepted with Implicit VR
    Little Endian, context 3 rejected (abstract syntax not supported, result 3)."""
    primitive = _associate_primitive()
    primitive.result = 0
    accepted = build_context(VERIFICATION, IMPLICIT_VR_LE)
    accepted.context_id, accepted.result = 1, 0
    rejected = build_context(CT_IMAGE_STORAGE, EXPLICIT_VR_LE)
    rejected.context_id, rejected.result = 3, 3
    primitive.presentation_context_definition_results_list = [accepted, rejected]
    return bytes(pn_pdu.A_ASSOCIATE_AC(primitive).encode())


def _rj(result: int, source: int, diagnostic: int) -> bytes:
    primitive = pp.A_ASSOCIATE()
    primitive.result, primitive.result_source, primitive.diagnostic = result, source, diagnostic
    return bytes(pn_pdu.A_ASSOCIATE_RJ(primitive).encode())


# A-ASSOCIATE-RJ: rejected-permanent (1), by the service-user (1), called AE title not
# recognised (7).
A_ASSOCIATE_RJ_PDU = _rj(1, 1, 7)
# A-ASSOCIATE-RJ, literal: type 03, length 4, reserved, result 1, source 1, reason 7.
assert A_ASSOCIATE_RJ_PDU == b"\x03\x00\x00\x00\x00\x04\x00\x01\x01\x07"

# A-RELEASE-RQ: type 05, length 4, 4 reserved bytes.
A_RELEASE_RQ_PDU = bytes(pn_pdu.A_RELEASE_RQ(pp.A_RELEASE()).encode())
assert A_RELEASE_RQ_PDU == b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00"


def _release_rp() -> bytes:
    primitive = pp.A_RELEASE()
    primitive.result = "affirmative"
    return bytes(pn_pdu.A_RELEASE_RP(primitive).encode())


# A-RELEASE-RP: type 06, length 4, 4 reserved bytes.
A_RELEASE_RP_PDU = _release_rp()
assert A_RELEASE_RP_PDU == b"\x06\x00\x00\x00\x00\x04\x00\x00\x00\x00"


def _abort(source: int, reason: int) -> bytes:
    primitive: pp.A_ABORT | pp.A_P_ABORT
    if source == 2:
        primitive = pp.A_P_ABORT()
        primitive.provider_reason = reason
    else:
        primitive = pp.A_ABORT()
        primitive.abort_source = source
    return bytes(pn_pdu.A_ABORT_RQ(primitive).encode())


# A-ABORT by the service-user (source 0, reason 0).
A_ABORT_USER_PDU = _abort(0, 0)
assert A_ABORT_USER_PDU == b"\x07\x00\x00\x00\x00\x04\x00\x00\x00\x00"
# A-ABORT by the service-provider (source 2), unexpected PDU (reason 2).
A_ABORT_PROVIDER_PDU = _abort(2, 2)
assert A_ABORT_PROVIDER_PDU == b"\x07\x00\x00\x00\x00\x04\x00\x00\x02\x02"


def pdv(context_id: int, control: int, value: bytes) -> bytes:
    """One PDV item (PS3.8 9.3.5.1): item length, context id, message control header
    (bit 0 command, bit 1 last fragment), value."""
    return struct.pack(">IBB", len(value) + 2, context_id, control) + value


def p_data_tf(*items: bytes) -> bytes:
    """A P-DATA-TF PDU (PS3.8 9.3.5) holding the given PDV items."""
    body = b"".join(items)
    return struct.pack(">BBI", P_DATA_TF, 0, len(body)) + body


COMMAND_LAST = 0x03
COMMAND_MORE = 0x01
DATASET_LAST = 0x02
DATASET_MORE = 0x00

# Stand-in command set and data set values: the PDU layer does not look inside them.
COMMAND = b"\x00\x00\x00\x00\x04\x00\x00\x00\x38\x00\x00\x00" + b"C" * 56  # 68 bytes
DATASET_1 = bytes(range(256)) * 4  # 1024 bytes
DATASET_2 = b"\xaa" * 300

# P-DATA-TF with two PDVs: the last command fragment on context 3, then the first data
# set fragment on context 3.
P_DATA_COMMAND_AND_DATA = p_data_tf(pdv(3, COMMAND_LAST, COMMAND), pdv(3, DATASET_MORE, DATASET_1))
# P-DATA-TF with the last data set fragment on context 3.
P_DATA_LAST_DATA = p_data_tf(pdv(3, DATASET_LAST, DATASET_2))
# P-DATA-TF: C-ECHO-RQ-sized command on context 1, whole in one PDV.
P_DATA_ECHO = p_data_tf(pdv(1, COMMAND_LAST, COMMAND))


# -- recording sink -----------------------------------------------------------------------


class RecordingSink:
    """An UpperLayerSink recording every call as a tuple (frames left out); with
    ``keep=False`` PDV chunks are only counted, for memory tests."""

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self.events: list[Event] = []
        self.controls: list[ControlPdu] = []
        self.pdvs: list[PdvHeader] = []
        self.pdv_bytes = 0

    def pdu_start(self, pdu_type: int, length: int, frame: int, time_ns: int) -> None:
        self.events.append(("pdu_start", pdu_type, length))

    def control_pdu(self, pdu: ControlPdu) -> None:
        self.controls.append(pdu)
        if isinstance(pdu.decoded, AssociatePdu):  # decoded field by field: what was wrong
            self.events.append(("partial", pdu.name, pdu.missing, tuple(pdu.problems)))
        else:
            self.events.append(("control", pdu.name, pdu.length, bytes(pdu.decoded.encode())))

    def pdv_start(self, pdv: PdvHeader) -> None:
        self.pdvs.append(pdv)
        self.events.append(("pdv_start", pdv.context_id, pdv.is_command, pdv.is_last, pdv.length))

    def pdv_data(self, chunk: memoryview, frame: int, time_ns: int) -> None:
        assert len(chunk), "empty pdv_data() call"
        self.pdv_bytes += len(chunk)
        if not self.keep:
            return
        if self.events and self.events[-1][0] == "pdv_data":
            self.events[-1] = ("pdv_data", self.events[-1][1] + bytes(chunk))
        else:
            self.events.append(("pdv_data", bytes(chunk)))

    def pdv_end(self, frame: int, time_ns: int) -> None:
        self.events.append(("pdv_end",))

    def lost(self, nbytes: int, where: str, cause: str, frame: int, time_ns: int) -> None:
        self.events.append(("lost", nbytes, where, cause))

    def malformed(self, text: str, frame: int, time_ns: int) -> None:
        self.events.append(("malformed", text))

    def resynced(self, pdu_name: str, skipped: int, frame: int, time_ns: int) -> None:
        self.events.append(("resynced", pdu_name, skipped))

    def end(self, how: str, frame: int, time_ns: int) -> None:
        self.events.append(("end", how))

    def kinds(self) -> list[str]:
        return [e[0] for e in self.events]


def parse(data: bytes, chunk: int | None = None, end: bool = True) -> RecordingSink:
    """Feed ``data`` to a new parser, whole or ``chunk`` bytes a call (frame = call number)."""
    sink = RecordingSink()
    parser = PduParser(sink)
    step = chunk or max(len(data), 1)
    frame = 0
    for frame, pos in enumerate(range(0, len(data), step), start=1):
        parser.data(data[pos:pos + step], frame, frame * 1000)
    if end:
        parser.end("fin", frame, frame * 1000)
    return sink


def pdv_events(item_context: int, control: int, value: bytes) -> list[Event]:
    """What a complete PDV item should produce."""
    out: list[Event] = [("pdv_start", item_context, bool(control & 1), bool(control & 2),
                         len(value))]
    if value:
        out.append(("pdv_data", value))
    return [*out, ("pdv_end",)]


# -- control PDUs -------------------------------------------------------------------------

CONTROL_PDUS = {
    "A-ASSOCIATE-RQ": a_associate_rq(),
    "A-ASSOCIATE-AC": a_associate_ac(),
    "A-ASSOCIATE-RJ": A_ASSOCIATE_RJ_PDU,
    "A-RELEASE-RQ": A_RELEASE_RQ_PDU,
    "A-RELEASE-RP": A_RELEASE_RP_PDU,
    "A-ABORT": A_ABORT_PROVIDER_PDU,
}


@pytest.mark.parametrize("chunk", [None, 1, 7], ids=["whole", "byte", "7-bytes"])
@pytest.mark.parametrize("name", list(CONTROL_PDUS))
def test_control_pdu_decoded_whole_and_in_pieces(name: str, chunk: int | None) -> None:
    raw = CONTROL_PDUS[name]
    sink = parse(raw, chunk)
    # Re-encoding what was decoded gives back the bytes: every item was understood.
    assert sink.events == [
        ("pdu_start", raw[0], len(raw) - 6),
        ("control", name, len(raw) - 6, raw),
        ("end", "fin"),
    ]
    (pdu,) = sink.controls
    assert pdu.pdu_type == raw[0]
    calls = 1 if chunk is None else -(-len(raw) // chunk)
    assert (pdu.first_frame, pdu.last_frame) == (1, calls)
    assert (pdu.first_time_ns, pdu.last_time_ns) == (1000, calls * 1000)


def test_associate_rq_fields() -> None:
    (pdu,) = parse(a_associate_rq()).controls
    assert pdu.pdu_type == A_ASSOCIATE_RQ
    rq = pdu.decoded
    assert rq.calling_ae_title == "STORESCU"
    assert rq.called_ae_title == "ARCHIVE"
    assert rq.application_context_name == APPLICATION_CONTEXT
    contexts = {c.context_id: (c.abstract_syntax, c.transfer_syntax)
                for c in rq.presentation_context}
    assert list(contexts) == [1, 3]
    assert contexts[1][0] == VERIFICATION
    assert IMPLICIT_VR_LE in contexts[1][1]
    assert contexts[3] == (CT_IMAGE_STORAGE, [EXPLICIT_VR_LE, IMPLICIT_VR_LE])
    user = rq.user_information
    assert user.maximum_length == 16384
    assert user.implementation_class_uid == IMPLEMENTATION_UID
    assert user.implementation_version_name == IMPLEMENTATION_VERSION


def test_associate_ac_fields() -> None:
    (pdu,) = parse(a_associate_ac()).controls
    assert pdu.pdu_type == A_ASSOCIATE_AC
    ac = pdu.decoded
    results = {c.context_id: (c.result, c.transfer_syntax) for c in ac.presentation_context}
    assert results == {1: (0, IMPLICIT_VR_LE), 3: (3, EXPLICIT_VR_LE)}
    assert ac.user_information.maximum_length == 16384


def test_associate_rj_fields() -> None:
    (pdu,) = parse(A_ASSOCIATE_RJ_PDU).controls
    assert (pdu.pdu_type, pdu.name, pdu.length) == (A_ASSOCIATE_RJ, "A-ASSOCIATE-RJ", 4)
    rj = pdu.decoded
    assert (rj.result, rj.source, rj.reason_diagnostic) == (1, 1, 7)


@pytest.mark.parametrize(
    ("raw", "source", "reason"),
    [(A_ABORT_USER_PDU, 0, 0), (A_ABORT_PROVIDER_PDU, 2, 2)],
    ids=["service-user", "service-provider"],
)
def test_abort_fields(raw: bytes, source: int, reason: int) -> None:
    (pdu,) = parse(raw).controls
    assert (pdu.pdu_type, pdu.name) == (A_ABORT, "A-ABORT")
    assert (pdu.decoded.source, pdu.decoded.reason_diagnostic) == (source, reason)


def test_release_pdus_in_sequence() -> None:
    sink = parse(A_RELEASE_RQ_PDU + A_RELEASE_RP_PDU, chunk=3)
    assert [c.pdu_type for c in sink.controls] == [A_RELEASE_RQ, A_RELEASE_RP]
    assert sink.kinds() == ["pdu_start", "control", "pdu_start", "control", "end"]


def test_undecodable_control_pdu_is_decoded_field_by_field_and_parsing_goes_on() -> None:
    # A-ASSOCIATE-RQ whose first variable item claims to run far past the PDU: the AE
    # titles are still there, the items are not decodable, and the next PDU is read.
    raw = bytearray(a_associate_rq())
    raw[76:78] = b"\xff\xff"
    sink = parse(bytes(raw) + A_RELEASE_RQ_PDU)
    assert sink.events[0] == ("pdu_start", A_ASSOCIATE_RQ, len(raw) - 6)
    assert sink.events[1] == ("partial", "A-ASSOCIATE-RQ", 0, (
        "application context item at byte 74 claims 65535 bytes, more than the PDU holds",))
    rq = sink.controls[0].decoded
    assert (rq.calling_ae_title, rq.called_ae_title) == ("STORESCU", "ARCHIVE")
    assert rq.presentation_context == [] and rq.items_kept == 0
    assert [c.pdu_type for c in sink.controls] == [A_ASSOCIATE_RQ, A_RELEASE_RQ]


def test_control_character_in_an_ae_title_is_decoded_as_sent() -> None:
    # pynetdicom refuses an AE title with a control character (PS3.5 6.2); the PDU is
    # still decoded whole, with no problem of its own (the association flags the title).
    raw = bytearray(a_associate_rq())
    raw[26:42] = b"EVIL\r\n\x1b[2J".ljust(16)
    sink = parse(bytes(raw))
    assert sink.events[1] == ("partial", "A-ASSOCIATE-RQ", 0, ())
    rq = sink.controls[0].decoded
    assert rq.calling_ae_title == "EVIL\r\n\x1b[2J"
    assert [c.context_id for c in rq.presentation_context] == [1, 3]
    assert rq.user_information.maximum_length == 16384


# -- P-DATA-TF ----------------------------------------------------------------------------

STREAM = P_DATA_COMMAND_AND_DATA + P_DATA_LAST_DATA + A_RELEASE_RQ_PDU
STREAM_EVENTS = [
    ("pdu_start", P_DATA_TF, len(P_DATA_COMMAND_AND_DATA) - 6),
    *pdv_events(3, COMMAND_LAST, COMMAND),
    *pdv_events(3, DATASET_MORE, DATASET_1),
    ("pdu_start", P_DATA_TF, len(P_DATA_LAST_DATA) - 6),
    *pdv_events(3, DATASET_LAST, DATASET_2),
    ("pdu_start", A_RELEASE_RQ, 4),
    ("control", "A-RELEASE-RQ", 4, A_RELEASE_RQ_PDU),
    ("end", "fin"),
]


@pytest.mark.parametrize("chunk", [None, 1, 5, 6, 100, 1460])
def test_p_data_pdvs_whole_and_in_chunks(chunk: int | None) -> None:
    sink = parse(STREAM, chunk)
    assert sink.events == STREAM_EVENTS
    assert [p.length for p in sink.pdvs] == [len(COMMAND), len(DATASET_1), len(DATASET_2)]


def test_pdv_spanning_data_calls_streams_its_value_in_chunks() -> None:
    frames: list[tuple[int, int]] = []

    class Chunks(RecordingSink):
        def pdv_data(self, chunk: memoryview, frame: int, time_ns: int) -> None:
            frames.append((frame, len(chunk)))
            super().pdv_data(chunk, frame, time_ns)

    sink = Chunks()
    parser = PduParser(sink)
    raw = p_data_tf(pdv(5, DATASET_LAST, DATASET_1))  # 6 + 6 + 1024 bytes
    parser.data(raw[:12 + 100], 1, 1000)
    parser.data(raw[112:612], 2, 2000)
    parser.data(raw[612:], 3, 3000)
    # Each chunk is handed on as it arrives, not held until the PDV is whole.
    assert frames == [(1, 100), (2, 500), (3, 424)]
    assert sink.pdvs[0] == PdvHeader(5, False, True, 1024, 1, 1000)
    assert sink.events[1:] == pdv_events(5, DATASET_LAST, DATASET_1)


def test_empty_pdv_and_empty_p_data() -> None:
    raw = p_data_tf(pdv(1, COMMAND_MORE, b""), pdv(1, COMMAND_LAST, b"x")) + p_data_tf()
    sink = parse(raw, chunk=1)
    assert sink.events == [
        ("pdu_start", P_DATA_TF, 13),
        *pdv_events(1, COMMAND_MORE, b""),
        *pdv_events(1, COMMAND_LAST, b"x"),
        ("pdu_start", P_DATA_TF, 0),
        ("end", "fin"),
    ]


def test_whole_association_one_direction() -> None:
    raw = a_associate_rq() + P_DATA_ECHO + A_RELEASE_RQ_PDU
    sink = parse(raw, chunk=9)
    assert sink.kinds() == [
        "pdu_start", "control", "pdu_start", "pdv_start", "pdv_data", "pdv_end",
        "pdu_start", "control", "end",
    ]


# -- gaps ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cause", ["lost", "snaplen"])
def test_gap_inside_pdv_value(cause: str) -> None:
    sink = RecordingSink()
    parser = PduParser(sink)
    first = P_DATA_COMMAND_AND_DATA
    cut = len(first) - 500  # inside DATASET_1
    parser.data(first[:cut], 1, 1000)
    parser.gap(200, 2, 2000, cause)
    parser.data(first[cut + 200:] + P_DATA_LAST_DATA, 3, 3000)
    parser.end("fin", 4, 4000)
    received = DATASET_1[: len(DATASET_1) - 500]
    assert sink.events == [
        ("pdu_start", P_DATA_TF, len(first) - 6),
        *pdv_events(3, COMMAND_LAST, COMMAND),
        ("pdv_start", 3, False, False, len(DATASET_1)),
        ("pdv_data", received),
        ("lost", 200, "pdv", cause),
        # no pdv_data after the gap, no pdv_end: the PDV is incomplete
        ("pdu_start", P_DATA_TF, len(P_DATA_LAST_DATA) - 6),
        *pdv_events(3, DATASET_LAST, DATASET_2),
        ("end", "fin"),
    ]
    assert parser.synced
    assert parser.nbytes == len(first) + len(P_DATA_LAST_DATA)


def test_gap_to_the_end_of_a_pdv_value() -> None:
    first = P_DATA_COMMAND_AND_DATA
    sink = RecordingSink()
    parser = PduParser(sink)
    parser.data(first[:-24], 1, 1000)
    parser.gap(24, 2, 2000, "lost")
    parser.data(A_RELEASE_RQ_PDU, 3, 3000)
    assert sink.events[-4:] == [
        ("pdv_data", DATASET_1[:-24]),
        ("lost", 24, "pdv", "lost"),
        ("pdu_start", A_RELEASE_RQ, 4),
        ("control", "A-RELEASE-RQ", 4, A_RELEASE_RQ_PDU),
    ]


def test_gap_across_pdvs_inside_one_pdu_skips_to_its_end() -> None:
    first = P_DATA_COMMAND_AND_DATA
    sink = RecordingSink()
    parser = PduParser(sink)
    parser.data(first[:12 + 10], 1, 1000)  # 10 bytes into the command value
    parser.gap(100, 2, 2000, "lost")  # the rest of the command and the next PDV header
    parser.data(first[12 + 10 + 100:] + P_DATA_ECHO, 3, 3000)
    assert sink.events == [
        ("pdu_start", P_DATA_TF, len(first) - 6),
        ("pdv_start", 3, True, True, len(COMMAND)),
        ("pdv_data", COMMAND[:10]),
        ("lost", 100, "pdu", "lost"),
        ("pdu_start", P_DATA_TF, len(P_DATA_ECHO) - 6),
        *pdv_events(1, COMMAND_LAST, COMMAND),
    ]
    assert parser.synced


def test_gap_across_pdu_boundary_resyncs_on_next_p_data() -> None:
    second = p_data_tf(pdv(3, DATASET_MORE, b"\xbb" * 400))
    third = P_DATA_LAST_DATA
    stream = P_DATA_COMMAND_AND_DATA + second + third
    start = 200  # into DATASET_1
    stop = len(P_DATA_COMMAND_AND_DATA) + 50  # into the value of second's PDV
    sink = RecordingSink()
    parser = PduParser(sink)
    parser.data(stream[:start], 1, 1000)
    parser.gap(stop - start, 2, 2000, "lost")
    assert not parser.synced
    # The rest of second's value arrives in pieces: no header in it, nothing to report.
    for frame, pos in enumerate(range(stop, len(P_DATA_COMMAND_AND_DATA + second), 64), 3):
        parser.data(stream[pos:min(pos + 64, len(P_DATA_COMMAND_AND_DATA + second))],
                    frame, frame * 1000)
    before = len(sink.events)
    parser.data(third + A_ABORT_USER_PDU, 50, 50000)
    parser.end("fin", 51, 51000)
    assert sink.events[before - 2:before] == [
        ("pdv_data", DATASET_1[:200 - 12 - len(COMMAND) - 6]),
        ("lost", stop - start, "stream", "lost"),
    ]
    # (How many bytes the resync skipped: see test_resync_counts_skipped_bytes_across_calls.)
    assert sink.events[before][:2] == ("resynced", "P-DATA-TF")
    assert sink.events[before + 1:] == [
        ("pdu_start", P_DATA_TF, len(third) - 6),
        *pdv_events(3, DATASET_LAST, DATASET_2),
        ("pdu_start", A_ABORT, 4),
        ("control", "A-ABORT", 4, A_ABORT_USER_PDU),
        ("end", "fin"),
    ]
    assert parser.synced


def test_gap_at_pdu_boundary_resyncs_on_release() -> None:
    sink = RecordingSink()
    parser = PduParser(sink)
    parser.data(P_DATA_ECHO, 1, 1000)
    parser.gap(1000, 2, 2000, "lost")  # a whole PDU or more: where it ends is unknown
    parser.data(A_RELEASE_RQ_PDU + P_DATA_ECHO, 3, 3000)
    assert sink.events[-8:] == [
        ("lost", 1000, "stream", "lost"),
        ("resynced", "A-RELEASE-RQ", 0),
        ("pdu_start", A_RELEASE_RQ, 4),
        ("control", "A-RELEASE-RQ", 4, A_RELEASE_RQ_PDU),
        ("pdu_start", P_DATA_TF, len(P_DATA_ECHO) - 6),
        *pdv_events(1, COMMAND_LAST, COMMAND),
    ]


def test_gap_inside_control_pdu_keeps_what_is_there() -> None:
    rq = a_associate_rq()
    sink = RecordingSink()
    parser = PduParser(sink)
    # context 1 is bytes 99-155: its header is there, 40 bytes of its value are not
    parser.data(rq[:110], 1, 1000)
    parser.gap(40, 2, 2000, "lost")
    parser.data(rq[150:] + P_DATA_ECHO, 3, 3000)
    assert sink.events == [
        ("pdu_start", A_ASSOCIATE_RQ, len(rq) - 6),
        ("lost", 40, "pdu", "lost"),
        ("partial", "A-ASSOCIATE-RQ", 40, ("40 bytes missing from the capture",
                                           "presentation context 1 item not whole in the "
                                           "capture")),
        ("pdu_start", P_DATA_TF, len(P_DATA_ECHO) - 6),
        *pdv_events(1, COMMAND_LAST, COMMAND),
    ]
    rq_seen = sink.controls[0].decoded
    # the items after the hole are whole: context 3 and the user information
    assert [c.context_id for c in rq_seen.presentation_context] == [3]
    assert rq_seen.application_context_name == APPLICATION_CONTEXT
    assert rq_seen.user_information.maximum_length == 16384


def test_gap_ending_exactly_at_control_pdu_end_stays_in_sync() -> None:
    rq = a_associate_rq()
    sink = RecordingSink()
    parser = PduParser(sink)
    parser.data(rq[:100], 1, 1000)
    parser.gap(len(rq) - 100, 2, 2000, "lost")
    parser.data(P_DATA_ECHO, 3, 3000)
    assert sink.events[:3] == [
        ("pdu_start", A_ASSOCIATE_RQ, len(rq) - 6),
        ("lost", len(rq) - 100, "pdu", "lost"),
        ("partial", "A-ASSOCIATE-RQ", len(rq) - 100, (
            f"{len(rq) - 100} bytes missing from the capture",
            "the items from byte 99 on are not in the capture")),
    ]
    assert sink.controls[0].decoded.calling_ae_title == "STORESCU"
    assert "resynced" not in sink.kinds()


def test_garbage_is_malformed_then_resync() -> None:
    garbage = b"\xde\xad\xbe\xef\x01\x02\x03\x10\x20\x30\x40\x50\x60"  # 13 bytes, no header
    sink = parse(garbage + P_DATA_ECHO + A_RELEASE_RP_PDU)
    assert sink.events == [
        ("malformed", "not a DICOM PDU header: deadbeef0102 (type 0xde)"),
        ("resynced", "P-DATA-TF", len(garbage)),  # every unreadable byte, header included
        ("pdu_start", P_DATA_TF, len(P_DATA_ECHO) - 6),
        *pdv_events(1, COMMAND_LAST, COMMAND),
        ("pdu_start", A_RELEASE_RP, 4),
        ("control", "A-RELEASE-RP", 4, A_RELEASE_RP_PDU),
        ("end", "fin"),
    ]


def test_resync_candidates_that_do_not_fit_are_passed_over() -> None:
    # "04 00" twice, neither a plausible P-DATA-TF: an even context id, then a PDV item
    # longer than its PDU.
    fake = b"\x04\x00\x00\x00\x00\x10\x00\x00\x00\x04\x02\x00" + \
        b"\x04\x00\x00\x00\x00\x10\x00\x00\x00\x20\x01\x00"
    sink = parse(b"\xff" * 6 + fake + P_DATA_ECHO)
    assert sink.events[:3] == [
        ("malformed", "not a DICOM PDU header: ffffffffffff (type 0xff)"),
        ("resynced", "P-DATA-TF", 6 + len(fake)),
        ("pdu_start", P_DATA_TF, len(P_DATA_ECHO) - 6),
    ]


def test_resync_counts_skipped_bytes_across_calls() -> None:
    sink = RecordingSink()
    parser = PduParser(sink)
    parser.data(P_DATA_ECHO, 1, 1000)
    parser.gap(1000, 2, 2000, "lost")
    parser.data(b"\xcc" * 500, 3, 3000)  # the unreadable rest of a PDU
    parser.data(b"\xcc" * 20 + P_DATA_ECHO, 4, 4000)
    assert ("resynced", "P-DATA-TF", 520) in sink.events


def test_resync_finds_pdu_overlapping_the_bad_header() -> None:
    sink = parse(b"\xde\xad\xbe" + P_DATA_ECHO + P_DATA_ECHO)
    assert sink.events[:3] == [
        ("malformed", "not a DICOM PDU header: deadbe040000 (type 0xde)"),
        ("resynced", "P-DATA-TF", 3),
        ("pdu_start", P_DATA_TF, len(P_DATA_ECHO) - 6),
    ]


@pytest.mark.parametrize("last", [A_RELEASE_RQ_PDU, A_ABORT_PROVIDER_PDU],
                         ids=["A-RELEASE-RQ", "A-ABORT"])
def test_resync_finds_release_or_abort_ending_the_stream(last: bytes) -> None:
    sink = RecordingSink()
    parser = PduParser(sink)
    parser.data(P_DATA_ECHO, 1, 1000)
    parser.gap(500, 2, 2000, "lost")
    parser.data(b"\xcc" * 20 + last, 3, 3000)
    parser.end("fin", 4, 4000)
    assert sink.controls and sink.controls[-1].decoded.encode() == last


def test_many_resyncs_in_one_chunk() -> None:
    # 50 rounds of: a tiny valid P-DATA-TF, then 6 bytes that are not a PDU header.
    tiny = p_data_tf(pdv(1, DATASET_LAST, b""))
    sink = parse((tiny + b"\xff" * 6) * 50)
    assert sink.kinds().count("malformed") == 50
    assert sink.kinds().count("resynced") == 49
    assert sink.kinds().count("pdv_end") == 50


def test_resync_over_hostile_chunk_does_not_recurse() -> None:
    tiny = p_data_tf(pdv(1, DATASET_LAST, b""))
    try:
        sink = parse((tiny + b"\xff" * 6) * 2000)  # 36 KB: one jumbo segment
        recursed = False
    except RecursionError:  # asserted outside the handler: a short report, not 1000 frames
        recursed = True
    assert not recursed, "RecursionError resyncing 2000 times in one data() call"
    assert sink.kinds().count("pdv_end") == 2000


# -- hostile lengths ----------------------------------------------------------------------


def test_p_data_claiming_4_gb_is_streamed_not_buffered() -> None:
    sink = RecordingSink(keep=False)
    parser = PduParser(sink)
    header = struct.pack(">BBI", P_DATA_TF, 0, 0xFFFFFFFF) + struct.pack(
        ">IBB", 0xFFFFFFFF - 4, 1, DATASET_MORE
    )
    chunk = bytes(range(256)) * 256  # 64 KiB
    rounds = 128  # 8 MiB in all
    parser.data(header, 1, 1000)
    tracemalloc.start()
    try:
        for frame in range(2, 2 + rounds):
            parser.data(chunk, frame, frame * 1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024, f"peak {peak} bytes while streaming {rounds * len(chunk)}"
    assert sink.pdv_bytes == rounds * len(chunk)
    assert len(parser._buf) == 0
    assert sink.pdvs == [PdvHeader(1, False, False, 0xFFFFFFFF - 6, 1, 1000)]
    parser.end("eof", 999, 999000)
    assert sink.events == [
        ("pdu_start", P_DATA_TF, 0xFFFFFFFF),
        ("pdv_start", 1, False, False, 0xFFFFFFFF - 6),
        ("lost", 0, "end", "end"),
        ("end", "eof"),
    ]


def test_associate_rq_claiming_4_gb_is_skipped_not_buffered() -> None:
    sink = RecordingSink()
    parser = PduParser(sink)
    parser.data(struct.pack(">BBI", A_ASSOCIATE_RQ, 0, 0xFFFFFFFF) + b"\x00\x01", 1, 1000)
    chunk = b"\x00" * (64 * 1024)
    tracemalloc.start()
    try:
        for frame in range(2, 2 + 64):
            parser.data(chunk, frame, frame * 1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024
    assert len(parser._buf) == 0
    assert sink.events == [
        ("pdu_start", A_ASSOCIATE_RQ, 0xFFFFFFFF),
        ("malformed", "A-ASSOCIATE-RQ with impossible length 4294967295"),
    ]


def test_control_pdu_over_the_limit_is_skipped_exactly() -> None:
    length = MAX_CONTROL_PDU + 1
    raw = struct.pack(">BBI", A_ASSOCIATE_AC, 0, length) + b"\x00" * length
    sink = parse(raw + A_RELEASE_RP_PDU, chunk=4096)
    assert sink.events == [
        ("pdu_start", A_ASSOCIATE_AC, length),
        ("malformed", f"A-ASSOCIATE-AC with impossible length {length}"),
        ("pdu_start", A_RELEASE_RP, 4),
        ("control", "A-RELEASE-RP", 4, A_RELEASE_RP_PDU),
        ("end", "fin"),
    ]


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"\x05\x00\x00\x00\x00\x05\x00\x00\x00\x00\x00", "A-RELEASE-RQ with impossible length 5"),
        (b"\x03\x00\x00\x00\x00\x00", "A-ASSOCIATE-RJ with impossible length 0"),
        (b"\x01\x00\x00\x00\x00\x10" + b"\x00" * 16, "A-ASSOCIATE-RQ with impossible length 16"),
    ],
    ids=["release-5", "rj-0", "rq-16"],
)
def test_wrong_fixed_lengths_are_malformed(raw: bytes, text: str) -> None:
    sink = parse(raw + A_ABORT_USER_PDU)
    assert sink.events[1] == ("malformed", text)
    assert sink.events[2:] == [
        ("pdu_start", A_ABORT, 4),
        ("control", "A-ABORT", 4, A_ABORT_USER_PDU),
        ("end", "fin"),
    ]


def test_pdv_item_longer_than_its_pdu_is_malformed() -> None:
    body = struct.pack(">IBB", 1000, 1, COMMAND_LAST) + b"x" * 20
    bad = struct.pack(">BBI", P_DATA_TF, 0, len(body)) + body
    sink = parse(bad + P_DATA_ECHO, chunk=3)
    assert sink.events == [
        ("pdu_start", P_DATA_TF, 26),
        ("malformed", "PDV item length 1000 does not fit its P-DATA-TF PDU"),
        ("lost", 0, "pdu", "malformed"),
        ("pdu_start", P_DATA_TF, len(P_DATA_ECHO) - 6),
        *pdv_events(1, COMMAND_LAST, COMMAND),
        ("end", "fin"),
    ]


@pytest.mark.parametrize("item", [0, 1], ids=["item-0", "item-1"])
def test_pdv_item_too_short_for_its_header_is_malformed(item: int) -> None:
    body = struct.pack(">IBB", item, 1, COMMAND_LAST) + b"x" * 4
    bad = struct.pack(">BBI", P_DATA_TF, 0, len(body)) + body
    sink = parse(bad + A_RELEASE_RQ_PDU)
    assert sink.events[1:3] == [
        ("malformed", f"PDV item length {item} does not fit its P-DATA-TF PDU"),
        ("lost", 0, "pdu", "malformed"),
    ]
    assert [c.pdu_type for c in sink.controls] == [A_RELEASE_RQ]


def test_pdv_bad_control_byte_is_malformed() -> None:
    bad = p_data_tf(pdv(1, 0x04, b"abc"))
    sink = parse(bad + A_RELEASE_RQ_PDU)
    assert sink.events[1][0] == "malformed"
    assert [c.pdu_type for c in sink.controls] == [A_RELEASE_RQ]


def test_p_data_too_short_for_a_pdv_header_does_not_eat_next_pdu() -> None:
    bad = struct.pack(">BBI", P_DATA_TF, 0, 4) + b"\x00\x00\x00\x02"
    sink = parse(bad + A_RELEASE_RQ_PDU)
    assert sink.events[0] == ("pdu_start", P_DATA_TF, 4)
    assert sink.events[1][0] == "malformed"
    assert [c.pdu_type for c in sink.controls] == [A_RELEASE_RQ]


# -- the end of the stream ----------------------------------------------------------------


def test_end_in_the_middle_of_a_pdv() -> None:
    sink = parse(P_DATA_COMMAND_AND_DATA[:-10], chunk=500)
    assert sink.events[-4:] == [
        ("pdv_start", 3, False, False, len(DATASET_1)),
        ("pdv_data", DATASET_1[:-10]),
        ("lost", 0, "end", "end"),
        ("end", "fin"),
    ]


def test_end_between_pdvs_of_a_pdu() -> None:
    sink = parse(P_DATA_COMMAND_AND_DATA[:12 + len(COMMAND) + 3])
    assert sink.events[-3:] == [("pdv_end",), ("lost", 0, "end", "end"), ("end", "fin")]


def test_end_in_the_middle_of_a_control_pdu() -> None:
    rq = a_associate_rq()
    sink = parse(rq[:40])  # the called AE title is whole, the calling one is not
    assert sink.events == [
        ("pdu_start", A_ASSOCIATE_RQ, len(rq) - 6),
        ("partial", "A-ASSOCIATE-RQ", len(rq) - 40, (
            f"{len(rq) - 40} bytes missing: the stream ends inside it",
            "calling AE title not in the capture",
            "the items from byte 74 on are not in the capture")),
        ("end", "fin"),
    ]
    assert sink.controls[0].decoded.called_ae_title == "ARCHIVE"


def test_end_in_the_middle_of_a_release_pdu() -> None:
    sink = parse(A_RELEASE_RQ_PDU[:8])
    assert sink.events == [
        ("pdu_start", A_RELEASE_RQ, 4),
        ("malformed", "A-RELEASE-RQ cut off by the end of the stream"),
        ("end", "fin"),
    ]


def test_end_in_the_middle_of_a_pdu_header() -> None:
    sink = parse(A_RELEASE_RQ_PDU + b"\x04\x00\x00")
    assert sink.events[-2:] == [
        ("malformed", "PDU cut off by the end of the stream"),
        ("end", "fin"),
    ]


def test_end_at_a_pdu_boundary_is_clean() -> None:
    sink = parse(STREAM)
    assert "lost" not in sink.kinds()
    assert "malformed" not in sink.kinds()
    assert sink.events[-1] == ("end", "fin")
