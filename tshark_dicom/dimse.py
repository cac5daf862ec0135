"""DIMSE command vocabulary and command-set decoding.

A DIMSE message travels in P-DATA-TF PDVs (PS3.8 9.3.5, Annex E): first the
fragments of its *command set*, then, if the command says so, the fragments of
its *data set*.  This module knows the command side of that:

* the Message Control Header of each PDV (PS3.8 E.2) -> :class:`MessageControl`;
* the command set, always Implicit VR Little Endian (PS3.7 6.3.1) and made only
  of group 0000 elements (PS3.7 Annex E) -> :class:`CommandSet`;
* the Command Field vocabulary (PS3.7 9.3, 10.3) -> :data:`COMMAND_FIELDS`;
* the meaning of a Status (PS3.7 Annex C, and the service-specific tables of
  PS3.4), taken from ``pynetdicom.status`` -> :func:`status_category`,
  :func:`status_text`.

Malformed command sets raise :class:`CommandSetError` (a ``ValueError``) and
nothing else: the caller turns it into a finding and carries on.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import RawDataElement
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pydicom.values import convert_value
from pynetdicom import status as _status
from pynetdicom.sop_class import uid_to_service_class

__all__ = [
    "COMMAND_FIELDS",
    "CommandSet",
    "CommandSetError",
    "MessageControl",
    "command_name",
    "decode_command_set",
    "pdv_flags",
    "status_category",
    "status_text",
]

#: Command Field (0000,0100) values and their names, PS3.7 9.3 (DIMSE-C),
#: 10.3 (DIMSE-N) and Annex E.  Bit 15 set means a response.
COMMAND_FIELDS: Final[dict[int, str]] = {
    0x0001: "C-STORE-RQ",
    0x8001: "C-STORE-RSP",
    0x0010: "C-GET-RQ",
    0x8010: "C-GET-RSP",
    0x0020: "C-FIND-RQ",
    0x8020: "C-FIND-RSP",
    0x0021: "C-MOVE-RQ",
    0x8021: "C-MOVE-RSP",
    0x0030: "C-ECHO-RQ",
    0x8030: "C-ECHO-RSP",
    0x0100: "N-EVENT-REPORT-RQ",
    0x8100: "N-EVENT-REPORT-RSP",
    0x0110: "N-GET-RQ",
    0x8110: "N-GET-RSP",
    0x0120: "N-SET-RQ",
    0x8120: "N-SET-RSP",
    0x0130: "N-ACTION-RQ",
    0x8130: "N-ACTION-RSP",
    0x0140: "N-CREATE-RQ",
    0x8140: "N-CREATE-RSP",
    0x0150: "N-DELETE-RQ",
    0x8150: "N-DELETE-RSP",
    0x0FFF: "C-CANCEL-RQ",
}

#: Command Data Set Type (0000,0800) value meaning "no data set", PS3.7 E.1.
NO_DATASET: Final = 0x0101

_C_STORE, _C_GET, _C_FIND, _C_MOVE, _C_ECHO = 0x0001, 0x0010, 0x0020, 0x0021, 0x0030

# Value lengths of the fixed-size VRs found in command sets (PS3.5 6.2).
_FIXED_SIZE: Final[dict[str, int]] = {"US": 2, "UL": 4, "AT": 4}


class CommandSetError(ValueError):
    """A command set that cannot be decoded (truncated, not group 0000, no Command Field)."""


@dataclass(frozen=True, slots=True)
class MessageControl:
    """The Message Control Header byte of a PDV, PS3.8 E.2.

    Bit 0: 1 = command information, 0 = data set information.
    Bit 1: 1 = last fragment of the command or data set, 0 = not last.
    Bits 2-7 are reserved and shall be 0; ``reserved`` keeps them for a finding.
    """

    is_command: bool
    is_last: bool
    reserved: int = 0

    @classmethod
    def from_byte(cls, header: int) -> MessageControl:
        """Decode the header byte (0-255); raise ``ValueError`` outside that range."""
        if not 0 <= header <= 0xFF:
            raise ValueError(f"PDV message control header must be a byte, got {header}")
        return cls(bool(header & 0x01), bool(header & 0x02), header & 0xFC)


def pdv_flags(header: int) -> tuple[bool, bool]:
    """Return ``(is_command, is_last)`` for a PDV message control header byte, PS3.8 E.2."""
    mc = MessageControl.from_byte(header)
    return mc.is_command, mc.is_last


def command_name(command_field: int) -> str:
    """The name of a Command Field value (PS3.7 E.1), or ``UNKNOWN-0xNNNN``."""
    return COMMAND_FIELDS.get(command_field, f"UNKNOWN-0x{command_field & 0xFFFF:04X}")


@dataclass(frozen=True, slots=True)
class CommandSet:
    """The decoded command set of one DIMSE message (PS3.7 9.3, 10.3, Annex E).

    Codes stay integers; ``command`` is the readable companion of
    ``command_field``.  UIDs and AE titles have their padding removed.
    ``problems`` lists what was wrong but not fatal (a field with a bad value
    is left ``None`` and named there), for the caller's findings.
    """

    command_field: int
    command: str
    is_request: bool
    message_id: int | None
    responds_to: int | None
    sop_class_uid: str | None
    sop_instance_uid: str | None
    priority: int | None
    move_destination: str | None
    move_originator_ae: str | None
    move_originator_message_id: int | None
    status: int | None
    error_comment: str | None
    remaining: int | None
    completed: int | None
    failed: int | None
    warning: int | None
    has_dataset: bool
    event_type_id: int | None
    action_type_id: int | None
    raw_length: int
    dataset_type: int | None = None
    group_length: int | None = None
    problems: tuple[str, ...] = ()


def _walk_implicit_le(data: bytes) -> list[RawDataElement]:
    """Split Implicit VR Little Endian bytes into raw elements (PS3.5 7.1.3).

    Done here rather than by ``pydicom.filereader.read_dataset`` because that
    silently stops at a truncated element and switches to explicit VR when the
    first bytes look like one; a command set must be exactly framed.
    """
    elements: list[RawDataElement] = []
    offset, end = 0, len(data)
    previous = -1
    while offset < end:
        if end - offset < 8:
            raise CommandSetError(
                f"command set truncated: {end - offset} stray byte(s) at offset {offset}"
            )
        group, elem, length = struct.unpack_from("<HHL", data, offset)
        tag = group << 16 | elem
        if group != 0x0000:
            raise CommandSetError(
                f"element ({group:04X},{elem:04X}) at offset {offset} is not in command group 0000"
            )
        if length == 0xFFFFFFFF:
            raise CommandSetError(f"element (0000,{elem:04X}) has undefined length")
        value_at = offset + 8
        if value_at + length > end:
            raise CommandSetError(
                f"element (0000,{elem:04X}) value of {length} bytes runs past the end "
                f"of the {end}-byte command set"
            )
        if tag <= previous:
            raise CommandSetError(
                f"element (0000,{elem:04X}) out of order or repeated at offset {offset}"
            )
        previous = tag
        value = data[value_at : value_at + length]
        elements.append(RawDataElement(BaseTag(tag), None, length, value, value_at, True, True))
        offset = value_at + length
    return elements


#: String VRs of command elements (PS3.7 E.1): UI, AE, LO.
_TEXT_VRS: Final = frozenset({"UI", "AE", "LO", "SH", "ST", "CS", "LT"})


def _convert(raw: RawDataElement, problems: list[str]) -> tuple[str, Any]:
    """Decode one element with pydicom's dictionary and value converters.

    Returns ``(keyword, value)``; ``("", None)`` for an element pydicom does not
    know and ``(keyword, None)`` for a value that cannot be decoded (noted in
    ``problems``).
    """
    tag = raw.tag
    try:
        vr = str(dictionary_VR(tag))
        keyword = keyword_for_tag(tag)
    except KeyError:
        problems.append(f"unknown command element {tag} ignored")
        return "", None
    if vr in _TEXT_VRS:
        # Decoded here, not by convert_value: pydicom validates UIs as it reads them and
        # warns for each invalid one, while we want the value exactly as it travelled
        # (a hostile UID is reported by the association as a finding).
        text = bytes(raw.value or b"").decode("latin-1")
        if "\\" in text:
            problems.append(f"{keyword} {tag} has several values")
        # UI is padded with NUL, AE/LO with spaces (PS3.5 6.2); AE leading spaces too
        text = text.rstrip("\0 ").lstrip(" ")
        return keyword, text or None
    size = _FIXED_SIZE.get(vr)
    if size is not None and raw.length != size:
        problems.append(f"{keyword} {tag} has {raw.length} bytes, expected {size}")
        return keyword, None
    try:
        value = convert_value(vr, raw)
    except Exception as exc:  # pydicom raises many types on bad values
        problems.append(f"{keyword} {tag} could not be decoded: {exc}")
        return keyword, None
    if isinstance(value, MultiValue | list):
        # only string VRs get here (numeric ones were size-checked to one value)
        problems.append(f"{keyword} {tag} has several values")
        value = "\\".join(str(v) for v in value)
    if isinstance(value, str):
        # UI is padded with NUL, AE/LO with spaces (PS3.5 6.2); AE leading spaces too
        value = str(value).rstrip("\0 ").lstrip(" ")
        return keyword, value or None
    return keyword, value


def decode_command_set(data: bytes | bytearray | memoryview) -> CommandSet:
    """Decode a DIMSE command set (Implicit VR Little Endian, PS3.7 6.3.1, Annex E).

    Element framing is checked here; values are decoded with pydicom's data
    dictionary and value converters.  Raises :class:`CommandSetError` for bytes
    that are not a well-framed group 0000 command set or lack a Command Field,
    and never any other exception.
    """
    try:
        blob = bytes(data)
    except Exception as exc:
        raise CommandSetError(f"command set is not bytes: {type(data).__name__}") from exc
    if not blob:
        raise CommandSetError("command set is empty")
    elements = _walk_implicit_le(blob)
    problems: list[str] = []
    values: dict[str, Any] = {}
    for raw in elements:
        keyword, value = _convert(raw, problems)
        if keyword and value is not None:
            values[keyword] = value

    command_field = values.get("CommandField")
    if not isinstance(command_field, int):
        raise CommandSetError("command set has no valid Command Field (0000,0100)")

    def _int(keyword: str) -> int | None:
        v = values.get(keyword)
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    def _str(*keywords: str) -> str | None:
        for keyword in keywords:
            v = values.get(keyword)
            if isinstance(v, str) and v:
                return v
        return None

    group_length = _int("CommandGroupLength")
    if group_length is None:
        problems.append("CommandGroupLength (0000,0000) missing")
    elif group_length != len(blob) - 12:
        problems.append(
            f"CommandGroupLength (0000,0000) is {group_length}, "
            f"but {len(blob) - 12} bytes follow it"
        )
    dataset_type = _int("CommandDataSetType")
    if dataset_type is None:
        problems.append("CommandDataSetType (0000,0800) missing")

    return CommandSet(
        command_field=command_field,
        command=command_name(command_field),
        is_request=not command_field & 0x8000,
        message_id=_int("MessageID"),
        responds_to=_int("MessageIDBeingRespondedTo"),
        sop_class_uid=_str("AffectedSOPClassUID", "RequestedSOPClassUID"),
        sop_instance_uid=_str("AffectedSOPInstanceUID", "RequestedSOPInstanceUID"),
        priority=_int("Priority"),
        move_destination=_str("MoveDestination"),
        move_originator_ae=_str("MoveOriginatorApplicationEntityTitle"),
        move_originator_message_id=_int("MoveOriginatorMessageID"),
        status=_int("Status"),
        error_comment=_str("ErrorComment"),
        remaining=_int("NumberOfRemainingSuboperations"),
        completed=_int("NumberOfCompletedSuboperations"),
        failed=_int("NumberOfFailedSuboperations"),
        warning=_int("NumberOfWarningSuboperations"),
        has_dataset=dataset_type is not None and dataset_type != NO_DATASET,
        event_type_id=_int("EventTypeID"),
        action_type_id=_int("ActionTypeID"),
        raw_length=len(blob),
        dataset_type=dataset_type,
        group_length=group_length,
        problems=tuple(problems),
    )


# -- Status -------------------------------------------------------------------


def status_category(status: int) -> str:
    """The class of a Status value, PS3.7 Annex C.

    ``Success`` (0x0000), ``Pending`` (0xFF00, 0xFF01), ``Cancel`` (0xFE00),
    ``Warning`` (0x0001, 0x0107, 0x0116, 0xB000-0xBFFF), else ``Failure``.
    """
    if status == 0x0000:
        return "Success"
    if status in (0xFF00, 0xFF01):
        return "Pending"
    if status == 0xFE00:
        return "Cancel"
    if status in (0x0001, 0x0107, 0x0116) or 0xB000 <= status <= 0xBFFF:
        return "Warning"
    return "Failure"


# C-FIND services whose statuses differ from Query/Retrieve (PS3.4 K, Q, V, CC).
# Chosen by name: pynetdicom's BasicWorklistManagementServiceClass.statuses is the
# Q/R table, not MODALITY_WORKLIST_SERVICE_CLASS_STATUS.
_FIND_TABLES: Final[dict[str, Mapping[int, tuple[str, str]]]] = {
    "BasicWorklistManagementServiceClass": _status.MODALITY_WORKLIST_SERVICE_CLASS_STATUS,
    "RelevantPatientInformationQueryServiceClass": (
        _status.RELEVANT_PATIENT_SERVICE_CLASS_STATUS
    ),
    "SubstanceAdministrationQueryServiceClass": (
        _status.SUBSTANCE_ADMINISTRATION_SERVICE_CLASS_STATUS
    ),
    "UnifiedProcedureStepServiceClass": _status.UNIFIED_PROCEDURE_STEP_SERVICE_CLASS_STATUS,
}


def _service_table(sop_class_uid: str | None) -> Mapping[int, tuple[str, str]] | None:
    """pynetdicom's status table for the service class of a SOP Class UID."""
    if not sop_class_uid:
        return None
    try:
        service = uid_to_service_class(sop_class_uid)
    except Exception:
        return None
    table = getattr(service, "statuses", None)
    return table if isinstance(table, dict) else None


def _status_table(command_field: int, sop_class_uid: str | None) -> Mapping[int, tuple[str, str]]:
    """Choose the status table (PS3.4 service annexes) for a command."""
    base = command_field & 0x7FFF
    if base == _C_STORE:
        service = _service_table(sop_class_uid)
        if service is _status.NON_PATIENT_SERVICE_CLASS_STATUS:
            return service
        return _status.STORAGE_SERVICE_CLASS_STATUS
    if base == _C_FIND:
        try:
            name = uid_to_service_class(sop_class_uid or "").__name__
        except Exception:
            name = ""
        return _FIND_TABLES.get(name, _status.QR_FIND_SERVICE_CLASS_STATUS)
    if base == _C_MOVE:
        return _status.QR_MOVE_SERVICE_CLASS_STATUS
    if base == _C_GET:
        return _status.QR_GET_SERVICE_CLASS_STATUS
    if base == _C_ECHO:
        return _status.VERIFICATION_SERVICE_CLASS_STATUS
    if 0x0100 <= base <= 0x0150:  # DIMSE-N: the SOP class names the service
        return _service_table(sop_class_uid) or _status.GENERAL_STATUS
    return _status.GENERAL_STATUS


# Statuses whose pynetdicom meaning is empty.
_EMPTY_MEANINGS: Final[dict[int, str]] = {0x0000: "Success", 0xFE00: "Cancel"}


def status_text(command_field: int, status: int, sop_class_uid: str | None = None) -> str:
    """What a Status value means for a command, from ``pynetdicom.status``.

    The service-specific table for the command (C-STORE: PS3.4 B.2.3; C-FIND,
    C-MOVE, C-GET: PS3.4 C.4; DIMSE-N: the SOP class's service) comes first,
    then the general statuses (PS3.7 Annex C), then the Storage ranges
    (0xA7xx out of resources, 0xA9xx data set mismatch, 0xCxxx cannot
    understand).  Never raises: an unknown code gives ``Unknown status 0xNNNN``.
    """
    try:
        tables = (
            _status_table(command_field, sop_class_uid),
            _status.GENERAL_STATUS,
            _status.STORAGE_SERVICE_CLASS_STATUS,
        )
        for table in tables:
            entry = table.get(status)
            if entry is not None:
                return entry[1] or _EMPTY_MEANINGS.get(status, entry[0])
    except Exception:  # a hostile sop_class_uid must not break reporting
        pass
    if isinstance(status, int) and status_category(status) == "Warning":
        return f"Warning 0x{status:04X}"
    try:
        return f"Unknown status 0x{status:04X}"
    except (TypeError, ValueError):
        return f"Unknown status {status!r}"
