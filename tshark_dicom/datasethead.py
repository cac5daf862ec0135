"""What a data set's first bytes say, read without the rest: its transfer syntax when the
capture lacks the negotiation (`infer_transfer_syntax`), whether it is encoded as its
presentation context says (`encoding_mismatch`, the pixel data checks), whether its SOP
Class and Instance UIDs are its command's (`dataset_uids_differ`), and which exam, study and
series a stored object belongs to (`head_identity`). objects.ObjectSink keeps the bytes
(its ``*_HEAD_SIZE``) and asks these.
"""

from __future__ import annotations

import functools
import io
import re
import struct
import zlib
from typing import Final

from pydicom.datadict import keyword_dict
from pydicom.dataelem import RawDataElement
from pydicom.filereader import data_element_generator
from pydicom.uid import RE_VALID_UID, UID
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, VR

from .queries import Text
from .records import Identity

__all__ = [
    "CHECKED_TEXT",
    "EXPLICIT_VR_BIG_ENDIAN",
    "EXPLICIT_VR_LITTLE_ENDIAN",
    "HEAD_SIZE",
    "IDENTITY",
    "IMPLICIT_VR_LITTLE_ENDIAN",
    "dataset_uids",
    "dataset_uids_differ",
    "encoding_mismatch",
    "head_identity",
    "infer_transfer_syntax",
    "pixel_data_encapsulated_on_native",
    "pixel_data_native_on_encapsulated",
    "valid_uid",
]

#: How many leading bytes of a data set are looked at to infer its transfer syntax, check
#: its encoding and UIDs (an :class:`objects.ObjectSink` keeps at least these).
HEAD_SIZE: Final = 512

IMPLICIT_VR_LITTLE_ENDIAN: Final = "1.2.840.10008.1.2"
EXPLICIT_VR_LITTLE_ENDIAN: Final = "1.2.840.10008.1.2.1"
EXPLICIT_VR_BIG_ENDIAN: Final = "1.2.840.10008.1.2.2"

#: What `head_identity` reads: tag -> the objects table's column.
IDENTITY: Final = {0x00080050: "accession_number", 0x00080060: "modality",
                   0x0020000D: "study_instance_uid", 0x0020000E: "series_instance_uid"}
#: Text a stored object's Specific Character Set governs, checked against it
#: (queries.ObjectTextTally): tag -> (keyword, VR), all before (0020,000E), where the walk
#: ends anyway. The names, places and free text a site writes in its own language: the
#: patient's, the physicians' and the operators' names, the institution, its department and
#: address, the station, the study, series and protocol descriptions, the patient comments.
CHECKED_TEXT: Final = {0x00080080: ("InstitutionName", "LO"),
                       0x00080081: ("InstitutionAddress", "ST"),
                       0x00080090: ("ReferringPhysicianName", "PN"),
                       0x00081010: ("StationName", "SH"),
                       0x00081030: ("StudyDescription", "LO"),
                       0x0008103E: ("SeriesDescription", "LO"),
                       0x00081040: ("InstitutionalDepartmentName", "LO"),
                       0x00081050: ("PerformingPhysicianName", "PN"),
                       0x00081070: ("OperatorsName", "PN"),
                       0x00100010: ("PatientName", "PN"),
                       0x00101001: ("OtherPatientNames", "PN"),
                       0x00104000: ("PatientComments", "LT"),
                       0x00181030: ("ProtocolName", "LO")}
_CHARSET_TAG: Final = 0x00080005
_IDENTITY_TAGS: Final = frozenset({*IDENTITY, *CHECKED_TEXT, _CHARSET_TAG})
_SOP_TAGS: Final = frozenset({0x00080016, 0x00080018})


def valid_uid(value: str | None) -> str | None:
    """``value`` without padding if it is a valid UID (PS3.5 9.1), else None."""
    if not isinstance(value, str):
        return None
    value = value.rstrip("\0 ")
    # The regex, not UID(value).is_valid: constructing a UID from an invalid
    # string makes pydicom warn and log, which hostile traffic must not cause.
    return value if len(value) <= 64 and re.fullmatch(RE_VALID_UID, value) else None


# -- Transfer syntax inference --------------------------------------------------

_VRS: Final = frozenset(v.value.encode("ascii") for v in VR if len(v.value) == 2)
_LONG_VRS: Final = frozenset(str(v).encode("ascii") for v in EXPLICIT_VR_LENGTH_32)
# Standard groups from pydicom's dictionary, plus repeating groups (PS3.5 7.6).
_STANDARD_GROUPS: Final = frozenset(
    {tag >> 16 for tag in keyword_dict.values()} - {0x0000, 0x0002, 0xFFFE}
    | {0x1000, 0x1010}
    | set(range(0x5000, 0x5100, 2))
    | set(range(0x6000, 0x6100, 2))
)


_KNOWN_TAGS: Final = frozenset(keyword_dict.values())


def _walk_score(head: bytes, implicit: bool, little: bool) -> int:
    """How many element headers parse consistently in ``head``; -1 if one does not.

    Consistent means (PS3.5 7.1): the first tag is in pydicom's dictionary,
    later groups are standard or private (odd), tags ascend, explicit VRs are real
    VRs, 4-byte-length VRs have zero reserved bytes, and defined lengths are
    even.  The walk stops at the end of ``head`` or at an undefined length.
    """
    order = "<" if little else ">"
    offset, count, previous = 0, 0, -1
    while offset + 8 <= len(head):
        group, elem = struct.unpack_from(f"{order}HH", head, offset)
        tag = group << 16 | elem
        if count == 0:  # a known tag, or a group length in a standard group
            plausible = tag in _KNOWN_TAGS or (elem == 0 and group in _STANDARD_GROUPS)
        else:
            plausible = group in _STANDARD_GROUPS or (group & 1 and group > 0x0008)
        if not plausible or tag <= previous:
            return -1
        previous = tag
        if implicit:
            (length,) = struct.unpack_from(f"{order}L", head, offset + 4)
            offset += 8
        else:
            vr = head[offset + 4 : offset + 6]
            if vr not in _VRS:
                return -1
            if vr in _LONG_VRS:
                if head[offset + 6 : offset + 8] != b"\0\0":
                    return -1
                if offset + 12 > len(head):
                    return count + 1
                (length,) = struct.unpack_from(f"{order}L", head, offset + 8)
                offset += 12
            else:
                (length,) = struct.unpack_from(f"{order}H", head, offset + 6)
                offset += 8
        count += 1
        if length == 0xFFFFFFFF:
            break
        if length & 1:
            return -1
        offset += length
    return count


def infer_transfer_syntax(head: bytes) -> str | None:
    """Guess a data set's transfer syntax from its first bytes (PS3.5 7.1, A.1-A.3).

    Tries Explicit VR Little Endian, Implicit VR Little Endian and Explicit VR
    Big Endian, and returns the UID of the one under which the most element
    headers parse consistently (ties in that order).  Returns None when none
    does, e.g. for deflated data, or when fewer than 8 bytes are given.
    """
    head = bytes(head[:HEAD_SIZE])
    if len(head) < 8:
        return None
    best: tuple[int, str | None] = (0, None)
    for uid, implicit, little in _ENCODINGS:
        score = _walk_score(head, implicit, little)
        if score > best[0]:
            best = (score, uid)
    return best[1]


#: The three encodings a data set's bytes can be in (deflate and pixel data compression
#: aside): transfer syntax, implicit VR, little endian (PS3.5 7.1, A.1-A.3).
_ENCODINGS: Final = (
    (EXPLICIT_VR_LITTLE_ENDIAN, False, True),
    (IMPLICIT_VR_LITTLE_ENDIAN, True, True),
    (EXPLICIT_VR_BIG_ENDIAN, False, False),
)
#: Element headers that must parse in a row in another encoding before a data set is said
#: not to be in its transfer syntax's.
MISMATCH_ELEMENTS: Final = 3


@functools.lru_cache(maxsize=64)
def _encoding(transfer_syntax: str) -> tuple[bool, bool] | None:
    """(implicit VR, little endian) of a transfer syntax pydicom knows and that is not
    deflated; None otherwise (a few transfer syntaxes, asked for every data set)."""
    ts = valid_uid(transfer_syntax)
    if ts is None:
        return None
    try:
        uid = UID(ts)
        if not uid.is_transfer_syntax or uid.is_deflated:
            return None
        return uid.is_implicit_VR, uid.is_little_endian
    except ValueError:  # a private transfer syntax: its encoding is not known
        return None


def encoding_mismatch(transfer_syntax: str | None, head: bytes) -> str | None:
    """The encoding (as the transfer syntax UID of that name: Explicit or Implicit VR Little
    Endian, Explicit VR Big Endian) a data set's first bytes are in, when they plainly are
    not in ``transfer_syntax``'s: at most one element header parses in its encoding, and at
    least MISMATCH_ELEMENTS in a row in the other's. A data set is encoded in its
    presentation context's transfer syntax (PS3.5 10.1; PS3.7 9.3.1); a receiver reading
    it in another misreads every element. None when they agree or it cannot be told
    (deflated data, a transfer syntax pydicom does not know, a short head)."""
    mine = _encoding(transfer_syntax) if transfer_syntax is not None else None
    if mine is None:
        return None
    head = bytes(head[:HEAD_SIZE])
    if _walk_score(head, *mine) >= 2:
        return None
    for other, implicit, little in _ENCODINGS:
        if (implicit, little) != mine and _walk_score(head, implicit, little) >= \
                MISMATCH_ELEMENTS:
            return other
    return None


#: A data set's last bytes kept (`ObjectSink.check_pixel_data`).
TAIL_SIZE: Final = 8
#: The Sequence Delimitation Item (FFFE,E0DD) with its zero length, little endian: how
#: encapsulated pixel data, the last element of an image, ends (PS3.5 A.4).
SEQUENCE_DELIMITER: Final = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def pixel_data_encapsulated_on_native(transfer_syntax: str | None, sop_class_uid: str | None,
                                      tail: bytes) -> bool:
    """Whether an image's data set ends as encapsulated pixel data does (its fragments'
    Sequence Delimitation Item: compressed, JPEG and the like) though ``transfer_syntax`` is
    a native one, whose pixel data is a value of defined length (PS3.5 A.4, 8.2): a
    compressed object sent on an uncompressed context without being decompressed. Told
    from the last bytes only: an image's last element is its pixel data (Data Set Trailing
    Padding after it hides the case; a Digital Signatures Sequence of undefined length after
    native pixel data would end so too, and is rare)."""
    if tail != SEQUENCE_DELIMITER:  # nearly every data set: nothing more to look up
        return False
    mine = _encoding(transfer_syntax) if transfer_syntax is not None else None
    if mine is None or not mine[1] or UID(str(transfer_syntax)).is_compressed:
        return False
    return _image(sop_class_uid)


#: Encapsulated transfer syntaxes whose data sets carry no pixel data (JPIP Referenced,
#: PS3.5 A.6: a Pixel Data Provider URL instead).
_NO_PIXEL_DATA: Final = frozenset({"1.2.840.10008.1.2.4.94", "1.2.840.10008.1.2.4.95"})
#: Pixel Data (7FE0,0010), and the length that says encapsulated (undefined).
_PIXEL_DATA: Final = 0x7FE00010
_UNDEFINED_LENGTH: Final = 0xFFFFFFFF
#: Its header when encapsulated (OB, undefined length) and the Basic Offset Table's item tag
#: after it (PS3.5 A.4), little endian.
_ENCAPSULATED_PIXEL_DATA: Final = b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff\xfe\xff\x00\xe0"


@functools.lru_cache(maxsize=256)
def _image(sop_class_uid: str | None) -> bool:
    """A SOP class whose name says Image Storage (a few in a capture, asked per data set)."""
    sop = valid_uid(sop_class_uid)
    return sop is not None and "Image Storage" in UID(sop).name


@functools.lru_cache(maxsize=256)
def encapsulated_image(transfer_syntax: str | None, sop_class_uid: str | None) -> bool:
    """An image storage SOP class on an encapsulated transfer syntax that carries pixel
    data (asked for every data set: a few of each in a capture)."""
    ts = valid_uid(transfer_syntax)
    if ts is None or ts in _NO_PIXEL_DATA:
        return False
    uid = UID(ts)
    return uid.is_transfer_syntax and uid.is_encapsulated and _image(sop_class_uid)


def pixel_data_native_on_encapsulated(transfer_syntax: str | None,
                                      sop_class_uid: str | None,
                                      head: bytes | bytearray) -> bool:
    """Whether an image's top-level Pixel Data (7FE0,0010), found in its first bytes
    ``head``, has a defined length though ``transfer_syntax`` is encapsulated (compressed),
    whose Pixel Data must be of undefined length, its fragments in items (PS3.5 A.4): native
    pixel data sent on a compressed context, as by a sender that negotiated JPEG and sent
    its file's uncompressed bytes. pydicom walks the elements before it (sequences, and the
    pixel data of an icon inside one, are stepped over as a whole); the walk stops at the
    header. False when it cannot be told: no Pixel Data header within ``head``, or bytes
    that do not parse."""
    if not encapsulated_image(transfer_syntax, sop_class_uid):
        return False
    if _ENCAPSULATED_PIXEL_DATA in head:
        # Pixel Data as it must be here, its first item after it: no walk (pydicom's took
        # 0.1-0.5 ms a compressed image). Missed so: native pixel data after an icon whose
        # own pixel data is encapsulated, a sender that compressed the icon alone.
        return False
    found: list[int] = []

    def at_pixel_data(tag: int, vr: str | None, length: int) -> bool:
        if tag < _PIXEL_DATA:
            return False
        if tag == _PIXEL_DATA:
            found.append(length)
        return True

    try:
        # every encapsulated transfer syntax is Explicit VR Little Endian (PS3.5 A.4)
        for _ in data_element_generator(io.BytesIO(head), False, True,
                                        stop_when=at_pixel_data, defer_size=256):
            pass
    except Exception:  # cut off mid-sequence, or bytes that are not a data set
        return False
    return bool(found) and found[0] != _UNDEFINED_LENGTH


def _uid_element(tag: bytes, uid: str) -> tuple[bytes, bytes]:
    """A UI element as Explicit and as Implicit VR Little Endian write it (padded with a
    NUL to an even length, PS3.5 9.1)."""
    value = uid.encode("ascii", "replace")
    if len(value) % 2:
        value += b"\0"
    return (tag + b"UI" + struct.pack("<H", len(value)) + value,
            tag + struct.pack("<I", len(value)) + value)


def dataset_uids_differ(head: bytes | bytearray, transfer_syntax: str | None,
                        sop_class_uid: str | None, sop_instance_uid: str | None
                        ) -> tuple[str | None, str | None] | None:
    """The data set's SOP Class and Instance UIDs, from its first bytes ``head``, when one
    of them is present and is not the command's ``sop_class_uid`` / ``sop_instance_uid``
    (a file whose meta header disagrees with its data set, sent by its header; a router that
    rewrote one and not the other); None when they agree or cannot be told (not in
    ``head``, no command UID to compare with)."""
    if not sop_class_uid or not sop_instance_uid:
        return None
    # Both elements exactly as the command's values would be written: no parse (nearly
    # every data set). A UID that is a prefix of another (CT Image Storage of Enhanced CT)
    # is no false match: the length comes first.
    if any(form in head for form in _uid_element(b"\x08\x00\x16\x00", sop_class_uid)) and \
            any(form in head for form in _uid_element(b"\x08\x00\x18\x00", sop_instance_uid)):
        return None
    own = dataset_uids(bytes(head), transfer_syntax)
    if (own[0] is not None and own[0] != sop_class_uid) or \
            (own[1] is not None and own[1] != sop_instance_uid):
        return own
    return None


def head_values(head: bytes, transfer_syntax: str | None, tags: frozenset[int],
                last: int) -> dict[int, bytes]:
    """The values of ``tags`` among a data set's top-level elements up to tag ``last``,
    from its first bytes ``head``, as they travelled.

    Parsed with pydicom, stopping after ``last``; a value cut off by the end of ``head``
    counts as absent, as does everything after bytes that do not parse.  Deflated data
    (PS3.5 A.5) is inflated as far as ``head`` goes.  Without a usable transfer syntax it
    is inferred.  Never raises: ``{}`` when nothing can be read.
    """
    found: dict[int, bytes] = {}
    try:
        data = bytes(head)
        ts = valid_uid(transfer_syntax)
        uid = UID(ts) if ts else None
        if uid is None or not uid.is_transfer_syntax:
            ts = infer_transfer_syntax(data)
            uid = UID(ts) if ts else None
        if uid is None:
            return found
        if uid.is_deflated:
            data = zlib.decompressobj(-zlib.MAX_WBITS).decompress(data)
        # tags as ints: pydicom's BaseTag compares in Python (a third of the walk's time
        # as a stop_when); the element after ``last`` is read, then left
        for elem in data_element_generator(io.BytesIO(data), uid.is_implicit_VR,
                                           uid.is_little_endian):
            tag = int(elem.tag)
            if tag > last:
                break
            if tag not in tags or not isinstance(elem, RawDataElement):
                continue
            value = elem.value
            if isinstance(value, bytes) and len(value) == elem.length:
                found[tag] = value
    except Exception:  # noqa: BLE001 - truncated or hostile bytes: what came before stays
        pass
    return found


def dataset_uids(head: bytes, transfer_syntax: str | None) -> tuple[str | None, str | None]:
    """SOP Class and Instance UID, (0008,0016) and (0008,0018), from a data set's head
    (`head_values`): ``(None, None)`` when nothing can be read."""
    found = head_values(head, transfer_syntax, _SOP_TAGS, 0x00080018)
    texts = [(found[tag].decode("ascii", "replace").rstrip("\0 ") or None)
             if tag in found else None for tag in (0x00080016, 0x00080018)]
    return texts[0], texts[1]


def head_identity(head: bytes, transfer_syntax: str | None) -> Identity:
    """Which exam, study and series a stored object belongs to: its Accession Number,
    Modality and Study and Series Instance UIDs (`IDENTITY`) from its first bytes
    (`head_values`), by column; one not there, cut off or empty is left out. The Accession
    Number is read in the data set's Specific Character Set as query keys are
    (`queries.Text`: bytes that are not text in it are read as Latin-1, so every byte is
    kept), the rest as ASCII. With
    them the Specific Character Set as sent and the `CHECKED_TEXT` values beyond ASCII,
    whose bytes another stage checks against it."""
    found = head_values(head, transfer_syntax, _IDENTITY_TAGS, max(IDENTITY))
    texts = tuple((*CHECKED_TEXT[tag], found[tag]) for tag in CHECKED_TEXT
                  if tag in found and (not found[tag].isascii() or 0x1B in found[tag]))
    identity: dict[str, str] = {}
    for tag, column in IDENTITY.items():
        value = found.get(tag)
        if value is None:
            continue
        if tag == 0x00080050:  # read as query_keys reads text (queries.Text)
            text = Text(charset=found.get(_CHARSET_TAG)).read(value, "SH")[0]
        else:
            text = value.decode("ascii", "replace")
        text = text.strip("\0 ")
        if text:
            identity[column] = text
    return Identity(identity, found.get(_CHARSET_TAG), texts)
