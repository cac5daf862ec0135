"""Query/retrieve identifiers: every key of every C-FIND, C-MOVE and C-GET request and
response, exactly as sent, and why a query that matched nothing probably did not match
(PS3.4 C.2.2: matching keys, return keys, matching rules). Pure functions over records.

Identifiers are decoded with pydicom's dataset reader, element by element without value
conversion, so a value keeps every byte that was sent (padding included); only the bytes'
text is chosen here (the Specific Character Set's: UTF-8 for ISO_IR 192, else Latin-1,
which maps every byte).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.tag import Tag
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ImplicitVRLittleEndian

from .association import ObjectRecord, uid_name
from .timing import OperationRecord

QUERY_COMMANDS = frozenset({"C-FIND", "C-MOVE", "C-GET"})
#: Keys that shape a query rather than select: never matching keys (PS3.4 C.4.1.1.3).
NOT_MATCHING = frozenset({"QueryRetrieveLevel", "SpecificCharacterSet", "TimezoneOffsetFromUTC",
                          "QueryRetrieveView"})
#: Value representations whose values are text (PS3.5 6.2).
TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST",
                      "TM", "UC", "UI", "UR", "UT"})
#: ... and those on which wildcard matching is allowed (PS3.4 C.2.2.2.4).
WILDCARD_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
#: over-defined without a control query to compare with: this many matching keys or more
#: besides the unique keys of the level.
OVER_DEFINED_KEYS = 3
UNIQUE_KEYS = frozenset({"PatientID", "StudyInstanceUID", "SeriesInstanceUID",
                         "SOPInstanceUID"})
#: Keys whose values an SCU takes from an earlier answer rather than from a person
#: (with every UID): what refined_from_op follows.
IDENTIFYING_KEYS = frozenset({"PatientID", "AccessionNumber", "StudyID", "OtherPatientIDs",
                              "IssuerOfPatientID", "RequestedProcedureID"})
_DATE = re.compile(r"\d{8}|\d{8}-|-\d{8}|\d{8}-\d{8}")
_TIME = r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?"
_TIME_RANGE = re.compile(f"{_TIME}|{_TIME}-|-{_TIME}|{_TIME}-{_TIME}")


@dataclass(slots=True)
class KeyRecord:
    """One element of an identifier (query_keys table)."""

    source: str  # request | response
    response_number: int  # 0 for the request, 1... for the responses in order
    tag: str
    keyword: str | None
    vr: str
    value: str | None  # as sent, padding kept; None for a sequence
    empty: bool
    #: a sequence's keys: those of its first item (a query's sequence has one, PS3.4
    #: C.2.2.2.6), one level deep (a sequence in it is listed, not opened)
    nested: list[KeyRecord] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The value without padding (trailing spaces and NULs), for comparing."""
        return (self.value or "").rstrip(" \x00")


@dataclass(slots=True)
class QueryRecord:
    """One C-FIND, C-MOVE or C-GET request (queries table)."""

    op_index: int
    command: str
    information_model: str | None
    query_level: str | None
    move_destination: str | None
    matching_keys: list[str]
    return_keys: list[str]
    matches: int
    status_hex: str | None
    status_category: str | None
    refined_from_op: int | None = None
    diagnosis: str | None = None
    diagnosis_detail: str | None = None
    identifier_problem: str | None = None
    keys: list[KeyRecord] = field(default_factory=list)  # the request's
    #: Failed SOP Instance UID List (0008,0058) of the final response, if it has one
    failed_sop_instances: list[str] = field(default_factory=list)


def decode_identifier(data: bytes, transfer_syntax: str | None, source: str,
                      number: int) -> list[KeyRecord]:
    """Every element of an identifier, in the order encoded. Raises ValueError when the
    bytes are not a data set in that transfer syntax."""
    ds = read_identifier(data, transfer_syntax)
    charset = ds.get_item(Tag(0x0008, 0x0005))
    utf8 = charset is not None and b"192" in bytes(charset.value or b"")
    return _elements(ds, utf8, source, number, nest=True)


def read_identifier(data: bytes, transfer_syntax: str | None) -> Dataset:
    """A small data set sent with a DIMSE message (an identifier, an action or event
    information), read lazily by pydicom. Raises ValueError when the bytes are not a data
    set in that transfer syntax."""
    implicit = transfer_syntax in (None, ImplicitVRLittleEndian)
    little = transfer_syntax != ExplicitVRBigEndian
    if transfer_syntax == DeflatedExplicitVRLittleEndian:
        data = _inflate(data)
    try:
        return read_dataset(BytesIO(data), implicit, little)
    except Exception as exc:  # pydicom raises many kinds on bad bytes
        raise ValueError(f"not a data set in {uid_name(transfer_syntax) or 'its syntax'}: "
                         f"{exc}") from exc


def _elements(ds: Dataset, utf8: bool, source: str, number: int, nest: bool
              ) -> list[KeyRecord]:
    keys = []
    for tag in ds.keys():
        elem = ds.get_item(tag)
        raw = elem.value
        vr = elem.VR or _dictionary_vr(tag)
        nested: list[KeyRecord] = []
        if vr == "SQ":
            value: str | None = None
            empty = not raw
            if nest and not empty:
                items = ds[tag].value  # pydicom reads the items now
                if items:
                    nested = _elements(items[0], utf8, source, number, nest=False)
        elif isinstance(raw, bytes | bytearray):
            empty = not raw
            if vr in TEXT_VRS:
                value = bytes(raw).decode("utf-8" if utf8 else "latin-1", "replace")
            else:
                value = _binary_text(ds, tag, bytes(raw))
        else:  # already converted by pydicom (zero-length values)
            empty = raw in (None, "", b"")
            value = "" if empty else str(raw)
        keys.append(KeyRecord(source, number, f"({tag.group:04X},{tag.element:04X})",
                              keyword_for_tag(tag) or None, vr, value, empty, nested))
    return keys


#: An identifier is a few hundred bytes; one that inflates to more is not read (a deflate
#: bomb from the traffic must not take the memory).
MAX_INFLATED = 16 << 20


def _inflate(data: bytes) -> bytes:
    """A Deflated Explicit VR Little Endian data set inflated (PS3.5 A.5, raw deflate)."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, MAX_INFLATED)
    except zlib.error as exc:
        raise ValueError(f"deflated identifier that cannot be inflated ({exc})") from None
    if inflater.unconsumed_tail:
        raise ValueError(f"deflated identifier inflates to more than {MAX_INFLATED} bytes")
    return out


def _dictionary_vr(tag: int) -> str:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


def _binary_text(ds: object, tag: int, raw: bytes) -> str:
    try:
        return str(ds[tag].value)  # type: ignore[index]
    except Exception:  # an unknown or malformed binary value: its bytes
        return raw.hex()


#: identifier(msg_index): the data set a message carried, if any, and whether the message
#: is a Pending response (an answer that counts as a match)
IdentifierFn = Callable[[int], tuple["ObjectRecord | None", bool]]


class QueryBuilder:
    """One association's queries and their keys, an operation at a time in request order
    (an operation comes when its final response has arrived)."""

    def __init__(self) -> None:
        self.answered: dict[tuple[str, str], int] = {}  # (keyword, value) -> op that taught it
        self.sent: set[tuple[str, str]] = set()  # (keyword, value) sent in earlier requests
        #: per (level, information model, matching keys): the first query that matched
        #: something, all that `diagnose_no_match` compares with (a few, not every query)
        self.matched: dict[tuple[Any, ...], QueryRecord] = {}
        self._others: list[QueryRecord] | None = None

    def add(self, op: OperationRecord, identifier: IdentifierFn
            ) -> tuple[QueryRecord, list[tuple[int, KeyRecord]]] | None:
        """The query of ``op`` and its keys as (op_index, key); None if it is no query."""
        if op.command not in QUERY_COMMANDS:
            return None
        answered, sent = self.answered, self.sent
        q = QueryRecord(op.op_index, op.command, uid_name(op.sop_class_uid), None,
                        op.move_destination, [], [], 0, op.status_hex, op.status_category)
        keys: list[tuple[int, KeyRecord]] = []
        try:
            q.keys = _keys(identifier(op.request_index)[0], "request", 0)
        except ValueError as exc:
            q.identifier_problem = str(exc)
        keys.extend((op.op_index, k) for k in q.keys)
        for k in q.keys:
            if k.keyword == "QueryRetrieveLevel":
                q.query_level = k.text or None
            elif k.keyword not in NOT_MATCHING:
                _list_key(q, k, k.keyword or k.tag)
        q.refined_from_op = _refined_from(q, answered)
        sent.update((k.keyword, k.text) for k in q.keys if k.keyword and k.text)
        for number, msg_index in enumerate(op.response_indices, start=1):
            obj, pending = identifier(msg_index)
            try:
                found = _keys(obj, "response", number)
            except ValueError:
                found = []
            if found and pending:
                q.matches += 1
            keys.extend((op.op_index, k) for k in found)
            for k in found:
                # what the answer taught: identifiers the SCU had not sent before
                if k.keyword and k.text and _identifying(k) and (k.keyword, k.text) not in sent:
                    answered.setdefault((k.keyword, k.text), op.op_index)
                if k.keyword == "FailedSOPInstanceUIDList" and k.text:
                    q.failed_sop_instances = [u.strip(" \x00") for u in k.text.split("\\")]
        if q.matches:
            group = (q.query_level, q.information_model,
                     frozenset((k.keyword, k.text) for k in _matching(q)))
            self.matched.setdefault(group, q)
        return q, keys

    def diagnose(self, q: QueryRecord) -> QueryRecord:
        """Once every query of the association is in: why a C-FIND matched nothing."""
        if q.command == "C-FIND" and q.matches == 0 and q.status_category == "Success":
            if self._others is None:
                self._others = sorted(self.matched.values(), key=lambda o: o.op_index)
            q.diagnosis, q.diagnosis_detail = diagnose_no_match(q, self._others)
        return q


def _list_key(q: QueryRecord, k: KeyRecord, name: str) -> None:
    """``k`` into the query's matching or return keys. A sequence's own keys are listed as
    ``Sequence>Keyword``: the Scheduled Procedure Step Sequence of a worklist query holds
    what it matches on (modality, station AE title, start date), where "(sequence)" told
    nothing (PS3.4 C.2.2.2.6, K.6.1.2)."""
    if k.empty:
        q.return_keys.append(name)
    elif k.nested:
        for n in _inside(k, name):
            if n.empty:
                q.return_keys.append(str(n.keyword))
            elif n.value is None:  # a sequence in the sequence: listed, not opened
                q.matching_keys.append(f"{n.keyword}=(sequence)")
            else:
                q.matching_keys.append(f"{n.keyword}={n.value.rstrip(chr(0))}")
    elif k.value is None:  # a sequence with an item of no keys
        q.return_keys.append(name)
    else:  # as sent, but without a UID's NUL padding: this list is for reading
        q.matching_keys.append(f"{name}={k.value.rstrip(chr(0))}")


#: Between a sequence's keyword and that of a key inside it (``Sequence>Keyword``).
INSIDE = ">"


def _inside(k: KeyRecord, name: str) -> list[KeyRecord]:
    """A sequence's own keys, each named ``name>Keyword`` (`INSIDE`)."""
    return [KeyRecord(n.source, n.response_number, n.tag,
                      f"{name}{INSIDE}{n.keyword or n.tag}", n.vr, n.value, n.empty)
            for n in k.nested]


def _keys(obj: ObjectRecord | None, source: str, number: int) -> list[KeyRecord]:
    if obj is None:
        return []
    if obj.identifier is None:
        if obj.complete:
            raise ValueError("identifier longer than the tool keeps")
        raise ValueError(f"identifier incomplete: {obj.problem}")
    return decode_identifier(obj.identifier, obj.transfer_syntax, source, number)


def _identifying(k: KeyRecord) -> bool:
    """A value a person does not type but copies from an answer: a UID or an ID."""
    return k.vr == "UI" or k.keyword in IDENTIFYING_KEYS


def _refined_from(q: QueryRecord, answered: dict[tuple[str, str], int]) -> int | None:
    """The latest earlier operation whose answer first returned a value this query sends."""
    found = [answered[(k.keyword, k.text)] for k in q.keys
             if k.keyword and not k.empty and k.keyword not in NOT_MATCHING
             and (k.keyword, k.text) in answered]
    return max(found) if found else None


def _matching(q: QueryRecord) -> list[KeyRecord]:
    """The query's keys with a value, a sequence's own ones too (named Sequence>Keyword)."""
    keys = [k for k in q.keys if k.keyword not in NOT_MATCHING and not k.empty]
    return [k for k in keys if k.value is not None] + [
        n for k in keys if k.nested for n in _inside(k, k.keyword or k.tag)
        if not n.empty and n.value is not None]


def diagnose_no_match(q: QueryRecord, others: Iterable[QueryRecord]) -> tuple[str, str]:
    """The likely reason a C-FIND matched nothing, and the key behind it (PS3.4 C.2.2.2)."""
    keys = _matching(q)
    for k in keys:
        value = k.value or ""
        name = k.keyword or k.tag
        if k.vr != "UI" and value.endswith(" "):
            # one trailing space may be the padding to an even length (PS3.5 6.2)
            unpadded = value[:-1] if len(value) % 2 == 0 else value
            if unpadded.endswith(" "):
                return "trailing-space", (f"{name} is {value!r}: a space is part of the value "
                                          "beyond the padding; matching is byte for byte")
    for k in keys:
        text, name = k.text, k.keyword or k.tag
        if k.vr == "PN" and "^" not in text and "=" not in text and not set(text) & set("*?") \
                and (" " in text or "," in text):
            return "pn-without-caret", (f"{name} is {text!r}: person names are sent as "
                                        "Family^Given (PS3.5 6.2), so this matches no stored "
                                        "name")
    for k in keys:
        text, name = k.text, k.keyword or k.tag
        if set(text) & set("*?") and k.vr not in WILDCARD_VRS:
            return "wildcard-not-allowed", (f"{name} ({k.vr}) is {text!r}: wildcards are not "
                                            f"allowed on {k.vr} keys (PS3.4 C.2.2.2.4)")
        if k.vr == "DA" and not _DATE.fullmatch(text):
            return "date-format", (f"{name} is {text!r}: dates are YYYYMMDD, or ranges of them "
                                   "(PS3.5 6.2, PS3.4 C.2.2.2.5)")
        if k.vr == "TM" and not _TIME_RANGE.fullmatch(text):
            return "date-format", (f"{name} is {text!r}: times are HHMMSS.FFFFFF, or ranges "
                                   "of them (PS3.5 6.2)")
    mine = {(k.keyword, k.text) for k in keys}
    comparable = [(other, {(k.keyword, k.text) for k in _matching(other)}) for other in others
                  if other is not q and other.matches and other.query_level == q.query_level
                  and other.information_model == q.information_model]
    for other, theirs in comparable:
        if theirs < mine:
            extra = ", ".join(sorted(f"{kw}={v}" for kw, v in mine - theirs))
            return "over-defined", (f"operation {other.op_index} with fewer keys matched "
                                    f"{other.matches}; this one adds {extra}")
    names = {kw for kw, _ in mine}
    for other, theirs in comparable:
        if {kw for kw, _ in theirs} != names or len(mine - theirs) != 1:
            continue
        ((kw, value),) = mine - theirs
        was = next(t for k2, t in theirs if k2 == kw)
        return "one-value-differs", (f"operation {other.op_index} with {kw}={was} matched "
                                     f"{other.matches}; this one sends {kw}={value} with the "
                                     "same other keys: no record has that value with them")
    worklist = bool(q.information_model and "Worklist" in q.information_model)
    selective = [k for k in keys if k.keyword not in UNIQUE_KEYS]
    # a worklist query's usual keys (modality, station AE title, start date) are three
    if len(selective) >= OVER_DEFINED_KEYS and not worklist:
        return "over-defined", (f"{len(selective)} matching keys at once ("
                                + ", ".join(k.keyword or k.tag for k in selective)
                                + "): every one must match the same record")
    if worklist:
        return "unknown", ("no key looks wrong: the worklist may simply hold no such scheduled "
                           "procedure step (compare the keys with the step's modality, "
                           "station AE title and start date on the worklist server)")
    return "unknown", "no key looks wrong: the archive may simply hold no such record"
