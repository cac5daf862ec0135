"""Tests for tshark_dicom.dimse: command sets, PDV control headers, statuses.

Fixtures are real command sets encoded by pynetdicom (its DIMSE message classes
and ``dsutils.encode``, Implicit VR Little Endian as PS3.7 6.3.1 requires), plus
one literal byte string, so the decoder is checked against an independent
encoder.
"""

from __future__ import annotations

import random
from io import BytesIO
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pynetdicom import dimse_messages as dm
from pynetdicom import dimse_primitives as dp
from pynetdicom.dsutils import encode

from tshark_dicom.dimse import (
    COMMAND_FIELDS,
    CommandSet,
    CommandSetError,
    MessageControl,
    command_name,
    decode_command_set,
    pdv_flags,
    status_category,
    status_text,
)

VERIFICATION = "1.2.840.10008.1.1"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STORAGE_COMMITMENT_PUSH = "1.2.840.10008.1.20.1"
STORAGE_COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"
MODALITY_WORKLIST_FIND = "1.2.840.10008.5.1.4.31"
INSTANCE = "1.2.826.0.1.3680043.2.1125.1.123"  # odd length: NUL-padded on the wire


def _encode(message: dm.DIMSEMessage, primitive: Any) -> bytes:
    """The command set pynetdicom would send for ``primitive``."""
    message.primitive_to_message(primitive)
    data = encode(message.command_set, True, True)
    assert data is not None
    return data


# C-ECHO-RQ, Message ID 1, Verification SOP Class, no data set: literal bytes
# (group length 56, UID padded with one NUL, CommandDataSetType 0x0101).
C_ECHO_RQ = (
    b"\x00\x00\x00\x00\x04\x00\x00\x00\x38\x00\x00\x00"  # (0000,0000) UL 56
    b"\x00\x00\x02\x00\x12\x00\x00\x001.2.840.10008.1.1\x00"  # (0000,0002) UI
    b"\x00\x00\x00\x01\x02\x00\x00\x00\x30\x00"  # (0000,0100) US 0x0030
    b"\x00\x00\x10\x01\x02\x00\x00\x00\x01\x00"  # (0000,0110) US 1
    b"\x00\x00\x00\x08\x02\x00\x00\x00\x01\x01"  # (0000,0800) US 0x0101
)


def c_echo_rq() -> bytes:
    """C-ECHO-RQ as pynetdicom encodes it (should equal the literal above)."""
    p = dp.C_ECHO()
    p.MessageID = 1
    p.AffectedSOPClassUID = VERIFICATION
    return _encode(dm.C_ECHO_RQ(), p)


def c_echo_rsp() -> bytes:
    """C-ECHO-RSP to message 1, Success."""
    p = dp.C_ECHO()
    p.MessageIDBeingRespondedTo = 1
    p.AffectedSOPClassUID = VERIFICATION
    p.Status = 0x0000
    return _encode(dm.C_ECHO_RSP(), p)


def c_store_rq() -> bytes:
    """C-STORE-RQ, a sub-operation of C-MOVE 3 from ORIGIN, with a data set."""
    p = dp.C_STORE()
    p.MessageID = 7
    p.AffectedSOPClassUID = CT_IMAGE_STORAGE
    p.AffectedSOPInstanceUID = INSTANCE
    p.Priority = 2  # LOW
    p.MoveOriginatorApplicationEntityTitle = "ORIGIN"
    p.MoveOriginatorMessageID = 3
    p.DataSet = BytesIO(b"\x08\x00\x16\x00")
    return _encode(dm.C_STORE_RQ(), p)


def c_store_rsp(status: int, comment: str | None = None) -> bytes:
    """C-STORE-RSP to message 7 with ``status`` (and an Error Comment)."""
    p = dp.C_STORE()
    p.MessageIDBeingRespondedTo = 7
    p.AffectedSOPClassUID = CT_IMAGE_STORAGE
    p.AffectedSOPInstanceUID = INSTANCE
    p.Status = status
    if comment is not None:
        p.ErrorComment = comment  # type: ignore[assignment]  # pynetdicom infers None
    return _encode(dm.C_STORE_RSP(), p)


def c_find_rsp_pending() -> bytes:
    """C-FIND-RSP Pending 0xFF00 to message 5, carrying an identifier."""
    p = dp.C_FIND()
    p.MessageIDBeingRespondedTo = 5
    p.AffectedSOPClassUID = STUDY_ROOT_FIND
    p.Status = 0xFF00
    p.Identifier = BytesIO(b"\x08\x00\x52\x00")
    return _encode(dm.C_FIND_RSP(), p)


def c_move_rq() -> bytes:
    """C-MOVE-RQ 9 to move destination STORESCP, with an identifier."""
    p = dp.C_MOVE()
    p.MessageID = 9
    p.AffectedSOPClassUID = STUDY_ROOT_MOVE
    p.Priority = 0
    p.MoveDestination = "STORESCP"
    p.Identifier = BytesIO(b"\x08\x00\x52\x00")
    return _encode(dm.C_MOVE_RQ(), p)


def c_move_rsp(status: int, remaining: int | None, completed: int, failed: int,
               warning: int) -> bytes:
    """C-MOVE-RSP to message 9 with sub-operation counts."""
    p = dp.C_MOVE()
    p.MessageIDBeingRespondedTo = 9
    p.AffectedSOPClassUID = STUDY_ROOT_MOVE
    p.Status = status
    p.NumberOfRemainingSuboperations = remaining
    p.NumberOfCompletedSuboperations = completed
    p.NumberOfFailedSuboperations = failed
    p.NumberOfWarningSuboperations = warning
    return _encode(dm.C_MOVE_RSP(), p)


def n_action_rq() -> bytes:
    """N-ACTION-RQ 11: Storage Commitment Request (action 1) with its data set."""
    p = dp.N_ACTION()
    p.MessageID = 11
    p.RequestedSOPClassUID = STORAGE_COMMITMENT_PUSH
    p.RequestedSOPInstanceUID = STORAGE_COMMITMENT_INSTANCE
    p.ActionTypeID = 1
    p.ActionInformation = BytesIO(b"\x08\x00\x55\x11")
    return _encode(dm.N_ACTION_RQ(), p)


def n_event_report_rq() -> bytes:
    """N-EVENT-REPORT-RQ 12: Storage Commitment result (event type 2)."""
    p = dp.N_EVENT_REPORT()
    p.MessageID = 12
    p.AffectedSOPClassUID = STORAGE_COMMITMENT_PUSH
    p.AffectedSOPInstanceUID = STORAGE_COMMITMENT_INSTANCE
    p.EventTypeID = 2
    p.EventInformation = BytesIO(b"\x08\x00\x55\x11")
    return _encode(dm.N_EVENT_REPORT_RQ(), p)


def c_cancel_rq() -> bytes:
    """C-CANCEL-RQ for message 5."""
    p = dp.C_CANCEL()
    p.MessageIDBeingRespondedTo = 5
    return _encode(dm.C_CANCEL_RQ(), p)


def hand_encoded(**elements: object) -> bytes:
    """A command set built element by element with pydicom (group length added)."""
    ds = Dataset()
    ds.CommandGroupLength = 0
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    body = encode(ds, True, True)
    assert body is not None
    ds.CommandGroupLength = len(body) - 12
    data = encode(ds, True, True)
    assert data is not None
    return data


ALL_FIXTURES = [
    C_ECHO_RQ,
    c_echo_rsp(),
    c_store_rq(),
    c_store_rsp(0xA700, "disk full"),
    c_store_rsp(0xB007),
    c_find_rsp_pending(),
    c_move_rq(),
    c_move_rsp(0xA801, None, 0, 0, 0),
    c_move_rsp(0xFF00, 3, 2, 1, 0),
    n_action_rq(),
    n_event_report_rq(),
    c_cancel_rq(),
]

EMPTY = {
    "message_id": None, "responds_to": None, "sop_class_uid": None, "sop_instance_uid": None,
    "priority": None, "move_destination": None, "move_originator_ae": None,
    "move_originator_message_id": None, "status": None, "error_comment": None,
    "remaining": None, "completed": None, "failed": None, "warning": None,
    "event_type_id": None, "action_type_id": None, "problems": (),
}


def check(cs: CommandSet, data: bytes, **expected: object) -> None:
    """Every field of ``cs`` is as expected (unnamed optional fields are None)."""
    want = dict(EMPTY, raw_length=len(data), group_length=len(data) - 12, **expected)
    got = {name: getattr(cs, name) for name in want}
    assert got == want


def test_literal_c_echo_rq_matches_pynetdicom() -> None:
    assert c_echo_rq() == C_ECHO_RQ


def test_c_echo_rq() -> None:
    cs = decode_command_set(C_ECHO_RQ)
    check(cs, C_ECHO_RQ, command_field=0x0030, command="C-ECHO-RQ", is_request=True,
          message_id=1, sop_class_uid=VERIFICATION, has_dataset=False, dataset_type=0x0101)


def test_c_echo_rsp() -> None:
    data = c_echo_rsp()
    cs = decode_command_set(data)
    check(cs, data, command_field=0x8030, command="C-ECHO-RSP", is_request=False,
          responds_to=1, sop_class_uid=VERIFICATION, status=0, has_dataset=False,
          dataset_type=0x0101)


def test_c_store_rq() -> None:
    data = c_store_rq()
    assert INSTANCE.encode() + b"\x00" in data  # the padding really is there
    cs = decode_command_set(data)
    check(cs, data, command_field=0x0001, command="C-STORE-RQ", is_request=True,
          message_id=7, sop_class_uid=CT_IMAGE_STORAGE, sop_instance_uid=INSTANCE,
          priority=2, move_originator_ae="ORIGIN", move_originator_message_id=3,
          has_dataset=True, dataset_type=0x0001)
    assert type(cs.sop_instance_uid) is str  # plain str, not pydicom's UID


def test_c_store_rsp_failure_out_of_resources() -> None:
    data = c_store_rsp(0xA700, "disk full")
    cs = decode_command_set(data)
    check(cs, data, command_field=0x8001, command="C-STORE-RSP", is_request=False,
          responds_to=7, sop_class_uid=CT_IMAGE_STORAGE, sop_instance_uid=INSTANCE,
          status=0xA700, error_comment="disk full", has_dataset=False, dataset_type=0x0101)
    assert status_category(0xA700) == "Failure"
    assert status_text(cs.command_field, 0xA700) == "Refused: Out of Resources"


def test_c_store_rsp_warning_b007() -> None:
    data = c_store_rsp(0xB007)
    cs = decode_command_set(data)
    check(cs, data, command_field=0x8001, command="C-STORE-RSP", is_request=False,
          responds_to=7, sop_class_uid=CT_IMAGE_STORAGE, sop_instance_uid=INSTANCE,
          status=0xB007, has_dataset=False, dataset_type=0x0101)
    assert status_category(0xB007) == "Warning"
    assert status_text(0x8001, 0xB007) == "Data Set Does Not Match SOP Class"


def test_c_find_rsp_pending() -> None:
    data = c_find_rsp_pending()
    cs = decode_command_set(data)
    check(cs, data, command_field=0x8020, command="C-FIND-RSP", is_request=False,
          responds_to=5, sop_class_uid=STUDY_ROOT_FIND, status=0xFF00, has_dataset=True,
          dataset_type=0x0001)
    assert status_category(0xFF00) == "Pending"
    assert "current match supplied" in status_text(0x8020, 0xFF00, STUDY_ROOT_FIND)


def test_c_move_rq() -> None:
    data = c_move_rq()
    cs = decode_command_set(data)
    check(cs, data, command_field=0x0021, command="C-MOVE-RQ", is_request=True,
          message_id=9, sop_class_uid=STUDY_ROOT_MOVE, priority=0,
          move_destination="STORESCP", has_dataset=True, dataset_type=0x0001)


def test_c_move_rsp_destination_unknown() -> None:
    data = c_move_rsp(0xA801, None, 0, 0, 0)
    cs = decode_command_set(data)
    check(cs, data, command_field=0x8021, command="C-MOVE-RSP", is_request=False,
          responds_to=9, sop_class_uid=STUDY_ROOT_MOVE, status=0xA801, completed=0,
          failed=0, warning=0, has_dataset=False, dataset_type=0x0101)
    assert status_category(0xA801) == "Failure"
    assert status_text(0x8021, 0xA801) == "Move destination unknown"


def test_c_move_rsp_pending_with_counts() -> None:
    data = c_move_rsp(0xFF00, 3, 2, 1, 0)
    cs = decode_command_set(data)
    check(cs, data, command_field=0x8021, command="C-MOVE-RSP", is_request=False,
          responds_to=9, sop_class_uid=STUDY_ROOT_MOVE, status=0xFF00, remaining=3,
          completed=2, failed=1, warning=0, has_dataset=False, dataset_type=0x0101)
    assert status_text(0x8021, 0xFF00) == "Sub-operations are continuing"


def test_n_action_rq_uses_requested_uids() -> None:
    data = n_action_rq()
    cs = decode_command_set(data)
    check(cs, data, command_field=0x0130, command="N-ACTION-RQ", is_request=True,
          message_id=11, sop_class_uid=STORAGE_COMMITMENT_PUSH,
          sop_instance_uid=STORAGE_COMMITMENT_INSTANCE, action_type_id=1,
          has_dataset=True, dataset_type=0x0001)


def test_n_event_report_rq() -> None:
    data = n_event_report_rq()
    cs = decode_command_set(data)
    check(cs, data, command_field=0x0100, command="N-EVENT-REPORT-RQ", is_request=True,
          message_id=12, sop_class_uid=STORAGE_COMMITMENT_PUSH,
          sop_instance_uid=STORAGE_COMMITMENT_INSTANCE, event_type_id=2,
          has_dataset=True, dataset_type=0x0001)


def test_c_cancel_rq() -> None:
    data = c_cancel_rq()
    cs = decode_command_set(data)
    check(cs, data, command_field=0x0FFF, command="C-CANCEL-RQ", is_request=True,
          responds_to=5, has_dataset=False, dataset_type=0x0101)


def test_decode_accepts_bytearray_and_memoryview() -> None:
    assert decode_command_set(bytearray(C_ECHO_RQ)) == decode_command_set(C_ECHO_RQ)
    assert decode_command_set(memoryview(C_ECHO_RQ)) == decode_command_set(C_ECHO_RQ)


def test_unknown_command_field_and_padding() -> None:
    # Hand-made: unknown command 0x0042, space-padded AE and UID with trailing space.
    with pytest.warns(UserWarning, match="Invalid value for VR UI"):  # pydicom objects
        data = hand_encoded(CommandField=0x0042, MessageID=1, CommandDataSetType=0x0101,
                            MoveDestination=" DEST  ", AffectedSOPClassUID="1.2.3 ")
    cs = decode_command_set(data)
    assert cs.command == "UNKNOWN-0x0042"
    assert cs.is_request
    assert cs.move_destination == "DEST"
    assert cs.sop_class_uid == "1.2.3"
    assert cs.problems == ()


def test_problems_are_reported_not_raised() -> None:
    # Group length wrong, CommandDataSetType missing, Message ID 3 bytes long.
    good = hand_encoded(CommandField=0x0030, MessageID=1)
    bad_length = b"\x00\x00\x00\x00\x04\x00\x00\x00\x99\x00\x00\x00" + good[12:]
    cs = decode_command_set(bad_length)
    assert cs.group_length == 0x99
    assert not cs.has_dataset and cs.dataset_type is None
    assert any("CommandGroupLength" in p for p in cs.problems)
    assert any("CommandDataSetType" in p for p in cs.problems)

    odd_id = (b"\x00\x00\x00\x01\x02\x00\x00\x00\x30\x00"
              b"\x00\x00\x10\x01\x03\x00\x00\x00\x01\x00\x00")
    cs = decode_command_set(odd_id)
    assert cs.message_id is None
    assert any("MessageID" in p and "3 bytes" in p for p in cs.problems)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (C_ECHO_RQ[:-1], "runs past the end"),
        (C_ECHO_RQ[:-10] + b"\x00\x00", "stray"),
        (C_ECHO_RQ + b"\x08\x00\x16\x00\x00\x00\x00\x00", "not in command group 0000"),
        (b"\x00\x00\x00\x01\xff\xff\xff\xff", "undefined length"),
        (C_ECHO_RQ[12:38] + C_ECHO_RQ[:12], "out of order"),
        (C_ECHO_RQ[:12], "no valid Command Field"),
        (b"\x00\x00\x00\x01\x04\x00\x00\x00\x30\x00\x00\x00", "no valid Command Field"),
    ],
)
def test_malformed_raises_command_set_error(data: bytes, message: str) -> None:
    with pytest.raises(CommandSetError, match=message):
        decode_command_set(data)


def test_command_set_error_is_value_error() -> None:
    assert issubclass(CommandSetError, ValueError)


@pytest.mark.filterwarnings("error")
def test_fuzz_only_command_set_error() -> None:
    """Random bytes, every truncation and random byte flips: CommandSet or CommandSetError."""
    rnd = random.Random(20240601)
    cases: list[bytes] = []
    for fixture in ALL_FIXTURES:
        cases.extend(fixture[:n] for n in range(len(fixture) + 1))
        for _ in range(300):
            mutated = bytearray(fixture)
            for _ in range(rnd.randrange(1, 4)):
                mutated[rnd.randrange(len(mutated))] = rnd.randrange(256)
            cases.append(bytes(mutated))
    cases.extend(rnd.randbytes(rnd.randrange(0, 200)) for _ in range(3000))
    # Well framed group 0000 elements with random lengths and values.
    for _ in range(2000):
        blob = bytearray()
        for elem in sorted(rnd.sample(range(0x1100), rnd.randrange(1, 8))):
            value = rnd.randbytes(rnd.randrange(0, 12))
            blob += (0).to_bytes(2, "little") + elem.to_bytes(2, "little")
            blob += len(value).to_bytes(4, "little") + value
        cases.append(bytes(blob))
    decoded = 0
    for data in cases:
        try:
            cs = decode_command_set(data)
        except CommandSetError as exc:
            assert "\n" not in str(exc)
        else:
            decoded += 1
            assert isinstance(cs.command, str)
            assert all(isinstance(p, str) for p in cs.problems)
    assert decoded > 100  # the flips leave many decodable


def test_command_fields_vocabulary() -> None:
    assert len(COMMAND_FIELDS) == 23
    for field, name in COMMAND_FIELDS.items():
        if field == 0x0FFF:
            continue
        assert name.endswith("-RSP") == bool(field & 0x8000)
        if not field & 0x8000:
            assert COMMAND_FIELDS[field | 0x8000] == name[:-3] + "-RSP"
    assert command_name(0x0FFF) == "C-CANCEL-RQ"
    assert command_name(0x1234) == "UNKNOWN-0x1234"


@pytest.mark.parametrize(
    ("header", "is_command", "is_last"),
    [(0x00, False, False), (0x01, True, False), (0x02, False, True), (0x03, True, True)],
)
def test_pdv_flags(header: int, is_command: bool, is_last: bool) -> None:
    assert pdv_flags(header) == (is_command, is_last)
    assert MessageControl.from_byte(header) == MessageControl(is_command, is_last, 0)


def test_message_control_reserved_bits() -> None:
    assert MessageControl.from_byte(0xFF) == MessageControl(True, True, 0xFC)
    with pytest.raises(ValueError):
        MessageControl.from_byte(0x100)


@pytest.mark.parametrize(
    ("status", "category"),
    [
        (0x0000, "Success"), (0xFF00, "Pending"), (0xFF01, "Pending"), (0xFE00, "Cancel"),
        (0x0001, "Warning"), (0x0107, "Warning"), (0x0116, "Warning"), (0xB000, "Warning"),
        (0xBFFF, "Warning"), (0xA700, "Failure"), (0xA801, "Failure"), (0xC000, "Failure"),
        (0x0110, "Failure"), (0x0122, "Failure"), (0x1234, "Failure"), (0xFFFF, "Failure"),
    ],
)
def test_status_category(status: int, category: str) -> None:
    assert status_category(status) == category


@pytest.mark.parametrize(
    ("command_field", "status", "sop_class", "text"),
    [
        (0x8030, 0x0000, None, "Success"),
        (0x8021, 0xFE00, None, "Cancel"),
        (0x8001, 0xA7FF, None, "Refused: Out of Resources"),
        (0x8001, 0xA9AB, None, "Data Set Does Not Match SOP Class"),
        (0x8001, 0xC123, None, "Cannot Understand"),
        (0x8001, 0xB000, None, "Coercion of Data Elements"),
        (0x8001, 0x0122, None, "Refused: SOP Class Not Supported"),
        (0x8020, 0xC001, None, "Unable to Process"),
        (0x8020, 0xA700, None, "Refused: Out of Resources"),
        (0x8021, 0xA702, None, "Refused: Out of resources, unable to perform sub-operations"),
        (0x8021, 0xB000, None, "Sub-operations completed, one or more failures"),
        (0x8010, 0xB000, None, "Sub-operations complete, one or more failures or warnings"),
        (0x8020, 0xFF01, MODALITY_WORKLIST_FIND,
         "Matches are continuing - warning that one or more Optional Keys were not "
         "supported for existence for this Identifier"),
        (0x8130, 0x0112, STORAGE_COMMITMENT_PUSH, "No Such SOP Instance"),
        (0x8120, 0xB600, "1.2.840.10008.5.1.1.1", "Memory allocation not supported"),
        (0x8030, 0xA700, None, "Refused: Out of Resources"),  # range fallback
        (0x8030, 0xB123, None, "Warning 0xB123"),
        (0x8030, 0x1234, None, "Unknown status 0x1234"),
        (0x8001, 0x1234, "not a uid \\ at all", "Unknown status 0x1234"),
        (0x4242, 0xA801, None, "Unknown status 0xA801"),
    ],
)
def test_status_text(command_field: int, status: int, sop_class: str | None, text: str) -> None:
    assert status_text(command_field, status, sop_class) == text


def test_status_text_never_raises() -> None:
    for status in (-1, 0x10000, 0xFFFF, 0x0001):
        assert isinstance(status_text(0x8001, status), str)
