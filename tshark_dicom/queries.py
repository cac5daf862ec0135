"""Query/retrieve identifiers: every key of every C-FIND, C-MOVE and C-GET request and
response, exactly as sent, and why a query that matched nothing probably did not match
(PS3.4 C.2.2: matching keys, return keys, matching rules). Pure functions over records.

Identifiers are decoded with pydicom's dataset reader, element by element without value
conversion, so a value keeps every byte that was sent (padding included); its text is read
in the identifier's own Specific Character Set (0008,0005) by pydicom's character set
decoder (`Text`), Latin-1 where it declares none (every byte maps to a character).
"""

from __future__ import annotations

import re
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any, NamedTuple

from pydicom import config
from pydicom.charset import convert_encodings, decode_bytes
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.tag import Tag
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ImplicitVRLittleEndian
from pydicom.valuerep import TEXT_VR_DELIMS

from .records import ObjectRecord, uid_name
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
    #: bytes outside ASCII that the identifier's character set does not account for
    #: (`Text.read`): why a receiver may read another text than the sender meant
    charset_problem: CharsetProblem | None = None
    #: the value's length in bytes as sent (its text may have fewer characters)
    size: int | None = None

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
    #: the first key of the request, and of the responses, whose bytes its identifier's
    #: character set does not account for, and how many responses had one
    #: (findings.character_set_findings)
    request_charset: CharsetNote | None = None
    response_charset: CharsetNote | None = None
    responses_with_charset_problem: int = 0


class CharsetNote(NamedTuple):
    """A key whose bytes its identifier's character set does not account for."""

    response_number: int  # 0: the request
    name: str  # keyword, Sequence>Keyword inside a sequence
    vr: str
    text: str
    problem: CharsetProblem


@dataclass(frozen=True, slots=True)
class CharsetProblem:
    """A text value whose bytes are not plainly text in its identifier's character set."""

    kind: str  # undeclared | invalid | utf-8-declared-otherwise | ascii-only
    declared: str | None  # the Specific Character Set's value(s) as sent; None: none
    other_reading: str | None  # the bytes read as their sender probably meant them, if told


#: Character sets that are UTF-8, or hold UTF-8's bytes as they are: a value in them is not
#: suspected of being UTF-8 sent under another name.
UTF8_LIKE = frozenset({"ISO_IR 192", "GB18030", "GBK"})
#: Value representations whose text the Specific Character Set applies to (PS3.5 6.1.2.2);
#: the other text ones (AE, CS, DA, UI...) hold the default repertoire (ASCII) only.
CHARSET_VRS = frozenset({"SH", "LO", "ST", "LT", "PN", "UC", "UT"})
#: Where an ISO 2022 code extension falls back to the value's first character set: a
#: person name's component groups and components, a text's lines, a value's end.
PN_DELIMITERS = TEXT_VR_DELIMS | {ord("^"), ord("="), ord("\\")}
VALUE_DELIMITERS = TEXT_VR_DELIMS | {ord("\\")}


class Text:
    """How one identifier's text values read: in its Specific Character Set (0008,0005),
    by pydicom's decoder (the single-byte sets, UTF-8, GB18030, and the ISO 2022 code
    extensions of Japanese, Korean and Chinese), or Latin-1 where it declares none (every
    byte maps to a character). Text in plain ASCII reads as ASCII in any of them."""

    def __init__(self, ds: Dataset | None = None, charset: bytes | None = None) -> None:
        """The character set of ``ds``, or the raw value of a (0008,0005) ``charset``."""
        if ds is not None:
            item = ds.get_item(Tag(0x0008, 0x0005))
            charset = bytes(item.value or b"") if item is not None else None
        raw = charset or b""
        terms = [t.strip(" \x00") for t in raw.decode("latin-1").split("\\")]
        self.declared = "\\".join(terms) if any(terms) else None
        self.encodings, self.known = (["latin_1"], True) if self.declared is None else \
            _encodings(terms)
        self.single_byte = self.declared is not None and len(terms) == 1 \
            and terms[0] not in UTF8_LIKE

    def read(self, raw: bytes, vr: str) -> tuple[str, CharsetProblem | None]:
        """The value's text, and what is wrong with its bytes in this character set."""
        if raw.isascii() and 0x1B not in raw:  # no byte that a character set reads otherwise
            return raw.decode("ascii"), None
        if vr not in CHARSET_VRS:
            return raw.decode("latin-1"), (None if raw.isascii() else
                                           CharsetProblem("ascii-only", self.declared, None))
        if self.declared is None:
            return raw.decode("latin-1"), CharsetProblem("undeclared", None, _utf8(raw))
        text = self._decode(raw, vr)
        if text is None or not self.known:  # every byte kept, as where none is declared
            return raw.decode("latin-1"), CharsetProblem("invalid", self.declared, _utf8(raw))
        if self.single_byte:
            utf8 = _utf8(raw)
            if utf8 is not None:
                return text, CharsetProblem("utf-8-declared-otherwise", self.declared, utf8)
        return text, None

    def _decode(self, raw: bytes, vr: str) -> str | None:
        """The value's text in this character set; None if its bytes are not text in it.

        Without an escape sequence, one codec reads it (pydicom's shortcut, which would warn
        and log each failure: the finding says it once). With one, pydicom's decoder,
        told to raise instead (its ISO 2022 code extensions)."""
        if 0x1B not in raw:
            try:
                return raw.decode(self.encodings[0])
            except (UnicodeError, LookupError):
                return None
        before = config.settings.reading_validation_mode
        config.settings.reading_validation_mode = config.RAISE
        try:
            return decode_bytes(raw, self.encodings,
                                PN_DELIMITERS if vr == "PN" else VALUE_DELIMITERS)
        except (UnicodeError, LookupError, ValueError):
            return None
        finally:
            config.settings.reading_validation_mode = before


class ObjectTextTally:
    """Stored objects (C-STORE data sets) holding text that their Specific Character Set
    does not account for (`Text.read` of the text `datasethead.head_identity` kept), per sender:
    how many, and the first with its attribute, text and problem
    (qrfindings.object_charset_findings)."""

    def __init__(self) -> None:
        self.count: Counter[str] = Counter()
        self.first: dict[str, tuple[ObjectRecord, str, str, CharsetProblem]] = {}

    def add(self, o: ObjectRecord) -> None:
        if not o.texts:  # kept of C-STORE data sets only (association._object_done)
            return
        text = Text(charset=o.charset)
        for keyword, vr, raw in o.texts:
            value, problem = text.read(raw, vr)
            if problem is not None:
                self.count[o.sender] += 1
                self.first.setdefault(o.sender, (o, keyword, value, problem))
                return


def _encodings(terms: list[str]) -> tuple[list[str], bool]:
    """The Python codecs of Specific Character Set terms (pydicom's mapping), and whether
    pydicom knew every term (it warns, and falls back, of one it does not)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        encodings = convert_encodings(terms)
    return encodings, not caught


def _utf8(raw: bytes) -> str | None:
    """The bytes as UTF-8, if they are UTF-8 with a character beyond ASCII; else None."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if text.isascii() else text


def decode_identifier(data: bytes, transfer_syntax: str | None, source: str,
                      number: int) -> list[KeyRecord]:
    """Every element of an identifier, in the order encoded. Raises ValueError when the
    bytes are not a data set in that transfer syntax."""
    ds = read_identifier(data, transfer_syntax)
    return _elements(ds, Text(ds), source, number, nest=True)


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


def _elements(ds: Dataset, text: Text, source: str, number: int, nest: bool
              ) -> list[KeyRecord]:
    keys = []
    for tag in ds.keys():
        elem = ds.get_item(tag)
        raw = elem.value
        vr = elem.VR or _dictionary_vr(tag)
        nested: list[KeyRecord] = []
        problem: CharsetProblem | None = None
        if vr == "SQ":
            value: str | None = None
            empty = not raw
            if nest and not empty:
                items = ds[tag].value  # pydicom reads the items now
                if items:
                    nested = _elements(items[0], text, source, number, nest=False)
        elif isinstance(raw, bytes | bytearray):
            empty = not raw
            if vr in TEXT_VRS:
                value, problem = text.read(bytes(raw), vr)
            else:
                value = _binary_text(ds, tag, bytes(raw))
        else:  # already converted by pydicom (zero-length values)
            empty = raw in (None, "", b"")
            value = "" if empty else str(raw)
        keys.append(KeyRecord(source, number, f"({tag.group:04X},{tag.element:04X})",
                              keyword_for_tag(tag) or None, vr, value, empty, nested, problem,
                              len(raw) if isinstance(raw, bytes | bytearray) else None))
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
        q.request_charset = _charset_note(q.keys)
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
            note = _charset_note(found)
            if note is not None:
                q.responses_with_charset_problem += 1
                if q.response_charset is None:
                    q.response_charset = note
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


def _charset_note(keys: list[KeyRecord]) -> CharsetNote | None:
    """The first of ``keys`` (a sequence's own keys too) whose bytes its identifier's
    character set does not account for."""
    for k in keys:
        if k.charset_problem is not None:
            return CharsetNote(k.response_number, k.keyword or k.tag, k.vr, k.text,
                               k.charset_problem)
        if k.nested:  # named Sequence>Keyword (`_inside`) only when one is found
            note = _charset_note(_inside(k, k.keyword or k.tag))
            if note is not None:
                return note
    return None


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
                      f"{name}{INSIDE}{n.keyword or n.tag}", n.vr, n.value, n.empty,
                      charset_problem=n.charset_problem, size=n.size)
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


def charset_detail(name: str, vr: str, text: str, problem: CharsetProblem,
                   reader: str = "the SCP") -> str:
    """What is wrong with a key's bytes in its identifier's character set, in words
    (PS3.5 6.1.2); ``reader``: who receives them."""
    other = (problem.other_reading or "").rstrip(" \x00")
    if problem.kind == "undeclared":
        meant = f"; read as UTF-8, they are {other!r}" if other else ""
        return (f"{name} is {text!r} (as Latin-1) with bytes beyond ASCII, and the identifier "
                "declares no Specific Character Set (0008,0005): the default repertoire is "
                f"ASCII (PS3.5 6.1.2.1), so {reader} reads those bytes as it guesses{meant}")
    if problem.kind == "ascii-only":
        return (f"{name} is {text!r} (as Latin-1): a {vr} value holds ASCII only, whatever "
                "the Specific Character Set (PS3.5 6.1.2.2)")
    if problem.kind == "utf-8-declared-otherwise":
        return (f"{name} is {text!r} in {problem.declared}, the Specific Character Set the "
                f"identifier declares, but its bytes are UTF-8 for {other!r}: declare "
                f"ISO_IR 192, or encode the value in {problem.declared}")
    as_utf8 = f"; read as UTF-8, they are {other!r}" if other else ""
    return (f"{name} is {text!r} (as Latin-1): its bytes are not text in the Specific "
            f"Character Set the identifier declares ({problem.declared}){as_utf8}")


def other_readings(text: str, declared: str | None) -> list[str]:
    """What a value `Text.read` read as ``text`` may say to its sender: its bytes read as
    UTF-8, where they are UTF-8 beyond ASCII (the readings `charset_detail` quotes, which
    `redact` must know to replace). The bytes are ``text`` in Latin-1 (no set declared, or
    not text in it) or in the one declared."""
    if text.isascii():
        return []
    codecs = ["latin-1"]
    if declared is not None and "\\" not in declared and declared not in UTF8_LIKE:
        codecs += _encodings([declared])[0]
    out = []
    for codec in codecs:
        try:
            reading = _utf8(text.encode(codec))
        except (UnicodeError, LookupError):
            continue
        if reading is not None and reading not in out:
            out.append(reading)
    return out


def diagnose_no_match(q: QueryRecord, others: Iterable[QueryRecord]) -> tuple[str, str]:
    """The likely reason a C-FIND matched nothing, and the key behind it (PS3.4 C.2.2.2)."""
    keys = _matching(q)
    for k in keys:
        if k.charset_problem is not None:
            return "character-set", charset_detail(k.keyword or k.tag, k.vr, k.text,
                                                   k.charset_problem)
    for k in keys:
        value = k.value or ""
        name = k.keyword or k.tag
        if k.vr != "UI" and value.endswith(" "):
            # one trailing space may be the padding to an even length in bytes (PS3.5 6.2)
            even = (k.size if k.size is not None else len(value)) % 2 == 0
            unpadded = value[:-1] if even else value
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
