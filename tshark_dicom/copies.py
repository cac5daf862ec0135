"""Two copies of one object, compared attribute by attribute: what an archive, a router or a
sender changed when it sent an object on, or the proof that it only re-encoded it.

Where one SOP Instance UID crosses the capture twice with other bytes (instances.py), the
bytes alone cannot say which of three things happened: the object was re-encoded (a transfer
syntax conversion, group lengths and padding rewritten: the same content), its attributes
were changed on the way (an archive's or router's attribute coercion, "tag morphing"), or
two different objects share the UID. The two Part-10 files (objects.py wrote them) are read
here with pydicom and their data sets compared by value:

- each attribute's value bytes as the transfer syntax holds them (Implicit and Explicit VR
  Little Endian hold a value in the same bytes; only the element headers differ), or where
  pydicom has already decoded one of the two (an empty value, the character set) the decoded
  values; sequences item by item; group lengths (gggg,0000) and the data set's trailing
  padding (FFFC,FFFC) left out: re-encoding rewrites them;
- values longer than `DEFERRED` are not read into memory: pydicom defers them and their
  bytes are hashed from the file in pieces, so memory stays flat for any size of object;
- a private sequence that one copy holds undecoded (Implicit VR gives a creator pydicom
  does not know no VR; UN carries one in Implicit VR) is read as the sequence it is;
- the pixel data (7FE0,0010), where both copies hold it in one encoding (the same transfer
  syntax, or both native and little endian), hashed from the file likewise; in two encodings
  (a JPEG and a native copy) they are not compared, and the sentence says so. What follows
  the pixel data (a trailing padding, a rare signature sequence) is not compared.

A copy in big endian, or deflated, is not compared (its bytes are not the values' bytes in
the file): the caller then says only that the bytes differ. Nothing here reads the capture.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

#: Values longer than this stay in the file (pydicom's ``defer_size``) and are hashed from it.
DEFERRED = 256 * 1024
#: Differences named in a sentence; the rest are counted.
NAMED = 6
#: A value's text in a sentence is cut at this length.
VALUE_TEXT = 40
_CHUNK = 1 << 20
#: `Comparison.pixels` where the pixel data are not the same bytes, or one copy has none.
DIFFER = "differ"
ONLY_ONE = "only one copy has pixel data"


@dataclass(frozen=True, slots=True)
class Change:
    """One attribute that differs: ``where`` its name and tag (with the sequence items
    above it), ``was`` and ``now`` its value in the first and the later copy (None: absent)."""

    where: str
    was: str | None
    now: str | None

    def text(self) -> str:
        if self.was is None:
            return f"{self.where} added ({self.now})"
        if self.now is None:
            return f"{self.where} removed (was {self.was})"
        return f"{self.where} {self.was} \u2192 {self.now}"


@dataclass(slots=True)
class Comparison:
    """What two copies hold: the attributes that differ (at most `NAMED` kept, all counted),
    and their pixel data: "same", "differ", "absent" (neither has any), or why they were
    not compared."""

    changes: list[Change] = field(default_factory=list)
    changed: int = 0
    pixels: str = "absent"

    @property
    def same(self) -> bool:
        """Every attribute equal, and the pixel data too (or neither has any)."""
        return not self.changed and self.pixels in ("same", "absent")

    def add(self, change: Change) -> None:
        self.changed += 1
        if len(self.changes) < NAMED:
            self.changes.append(change)

    def changes_text(self) -> str:
        """The differences as a clause: "PatientID (0010,0020) '1' → '2'; ...; and 3 more"."""
        named = "; ".join(c.text() for c in self.changes)
        more = self.changed - len(self.changes)
        return named + (f"; and {more} more" if more else "")

    def pixels_text(self) -> str:
        """The pixel data's part of a sentence ("" where neither copy has any)."""
        if self.pixels == "same":
            return "the pixel data are the same"
        if self.pixels == DIFFER:
            return "the pixel data differ"
        if self.pixels == ONLY_ONE:
            return ONLY_ONE
        if self.pixels == "absent":
            return ""
        return f"the pixel data were not compared ({self.pixels})"


def compare_files(first: Path, later: Path, first_ts: str | None,
                  later_ts: str | None) -> Comparison | None:
    """The two Part-10 files' data sets compared (``*_ts``: the transfer syntax each was
    sent in); None where one cannot be read, or is big endian or deflated."""
    if first_ts is None or later_ts is None or not (_stored_as_read(first_ts)
                                                    and _stored_as_read(later_ts)):
        return None
    try:
        # pydicom's warnings on odd values are the objects' business, not this comparison's
        with warnings.catch_warnings(), open(first, "rb") as fa, open(later, "rb") as fb:
            warnings.simplefilter("ignore")
            a, b = _read(fa), _read(fb)
            if a is None or b is None:
                return None
            out = Comparison()
            _compare(a[0], b[0], fa, fb, "", out)
            out.pixels = _pixels(fa, a[1], first_ts, fb, b[1], later_ts)
            return out
    except Exception:  # a file gone, or one pydicom cannot read (it raises many kinds)  # noqa: BLE001
        return None


def _stored_as_read(ts: str) -> bool:
    """Whether a file in ``ts`` holds each value in the bytes it is read as: little endian
    and not deflated (pydicom's reading of the UID; one it does not know is taken so, as an
    encapsulated one's attributes are Explicit VR Little Endian)."""
    from pydicom.uid import UID

    try:
        return bool(UID(ts).is_little_endian and not UID(ts).is_deflated)
    except ValueError:  # not a transfer syntax pydicom knows
        return True


def _native(ts: str | None) -> bool:
    """Pixel data not encapsulated (pydicom: not compressed); unknown: encapsulated."""
    from pydicom.uid import UID

    try:
        return ts is not None and not UID(ts).is_compressed
    except ValueError:
        return False


def _read(f: IO[bytes]) -> tuple[Any, int] | None:
    """The data set up to its pixel data (values past `DEFERRED` left in the file), and
    where the pixel data's element starts (pydicom stops before it, at its tag)."""
    from pydicom import dcmread

    ds = dcmread(f, defer_size=DEFERRED, stop_before_pixels=True)
    if not ds.file_meta or ds.original_encoding[1] is False:
        return None  # no header (not a file of ours), or big endian after all
    return ds, f.tell()


def _tags(a: Any, b: Any) -> Iterator[int]:
    """The tags of either data set in order, without group lengths and trailing padding."""
    for tag in sorted(set(a.keys()) | set(b.keys())):
        if tag & 0xFFFF and tag != 0xFFFCFFFC:
            yield int(tag)


def _compare(a: Any, b: Any, fa: IO[bytes], fb: IO[bytes], above: str,
             out: Comparison) -> None:
    for tag in _tags(a, b):
        where = f"{above}{_name(tag)}"
        if tag not in b:
            out.add(Change(where, _value_text(a, tag), None))
            continue
        if tag not in a:
            out.add(Change(where, None, _value_text(b, tag)))
            continue
        ea, eb = a.get_item(tag, keep_deferred=True), b.get_item(tag, keep_deferred=True)
        sa, sb = _items(a, tag, ea), _items(b, tag, eb)
        if sa is None and sb is not None:  # a sequence in one, undecoded in the other
            sa = _undecoded(ea)
        elif sb is None and sa is not None:
            sb = _undecoded(eb)
        if sa is not None and sb is not None:
            if len(sa) != len(sb):
                out.add(Change(where, f"{len(sa)} item(s)", f"{len(sb)} item(s)"))
                continue
            for i, (ia, ib) in enumerate(zip(sa, sb, strict=True)):
                _compare(ia, ib, fa, fb, f"{where}[{i}] > ", out)
            continue
        if not _same(a, b, tag, ea, eb, fa, fb):
            out.add(Change(where, _value_text(a, tag), _value_text(b, tag)))


def _items(ds: Any, tag: int, elem: Any) -> Any:
    """The element's items where it is a sequence, else None."""
    return ds[tag].value if _is_sequence(ds, tag, elem) else None


def _undecoded(elem: Any) -> Any:
    """A sequence that one copy holds undecoded: a private one of a creator pydicom does not
    know, in Implicit VR (no VR to say so), or one sent as UN (whose value is then encoded
    in Implicit VR Little Endian, PS3.5 6.2.2), read as such; None where it is not one."""
    from pydicom.values import convert_SQ

    value = getattr(elem, "value", None)
    if not isinstance(value, bytes) or getattr(elem, "is_raw", False) and _deferred(elem):
        return None
    try:
        return convert_SQ(value, True, True)
    except Exception:  # not a sequence after all: compared as bytes  # noqa: BLE001
        return None


def _is_sequence(ds: Any, tag: int, elem: Any) -> bool:
    vr = getattr(elem, "VR", None)
    if vr is None:  # Implicit VR, not decoded yet: what the dictionary says
        from pydicom.datadict import dictionary_VR

        try:
            vr = dictionary_VR(tag)
        except KeyError:
            return False
    return bool(vr == "SQ")


def _same(a: Any, b: Any, tag: int, ea: Any, eb: Any, fa: IO[bytes], fb: IO[bytes]) -> bool:
    if getattr(ea, "is_raw", False) and getattr(eb, "is_raw", False):
        if _deferred(ea) and _deferred(eb):  # both left in their files
            return bool(ea.length == eb.length
                        and _digest(fa, ea.value_tell, ea.length)
                        == _digest(fb, eb.value_tell, eb.length))
        if _deferred(ea) or _deferred(eb):
            return False  # one left in its file, the other not: other lengths
        return bool((ea.value or b"") == (eb.value or b""))  # an empty one may be None
    va, vb = a[tag].value, b[tag].value
    if va == vb:
        return True
    return _as_bytes(va) == _as_bytes(vb)


def _deferred(elem: Any) -> bool:
    """A raw element whose value pydicom left in the file (longer than `DEFERRED`)."""
    return bool(elem.value is None and elem.length)


def _as_bytes(value: Any) -> bytes | None:
    """A value as its stored bytes where one copy holds it undecoded (UN: a private
    attribute in Implicit VR) and the other decoded: text as its bytes without padding."""
    if isinstance(value, bytes):
        return value.rstrip(b" \x00")
    if isinstance(value, str):
        return value.encode("latin-1", "replace").rstrip(b" \x00")
    return None


def _digest(f: IO[bytes], start: int, length: int) -> bytes:
    """SHA-256 of ``length`` bytes of the file from ``start`` (to its end: -1), in pieces."""
    h = hashlib.sha256()
    f.seek(start)
    left = length
    while left != 0:
        piece = f.read(_CHUNK if left < 0 else min(_CHUNK, left))
        if not piece:
            break
        h.update(piece)
        left -= len(piece) if left > 0 else 0
    return h.digest()


def _pixels(fa: IO[bytes], at_a: int, ts_a: str | None, fb: IO[bytes], at_b: int,
            ts_b: str | None) -> str:
    """Whether the two copies' pixel data are the same bytes (see `Comparison.pixels`)."""
    pa, pb = _pixel_value(fa, at_a, ts_a), _pixel_value(fb, at_b, ts_b)
    if pa is None and pb is None:
        return "absent"
    if pa is None or pb is None:
        return ONLY_ONE
    if ts_a != ts_b and not (_native(ts_a) and _native(ts_b)):
        from .records import uid_name

        return (f"in two encodings, {uid_name(ts_a) or ts_a} and {uid_name(ts_b) or ts_b}")
    same = _digest(fa, *pa) == _digest(fb, *pb)
    return "same" if same else DIFFER


def _pixel_value(f: IO[bytes], at: int, ts: str | None) -> tuple[int, int] | None:
    """Where the pixel data's value starts and how long it is (-1: to the file's end, an
    encapsulated value), or None where the data set ends before pixel data."""
    f.seek(at)
    head = f.read(12)
    if len(head) < 8 or int.from_bytes(head[:4], "little") != (0x7FE0 | 0x0010 << 16):
        return None
    if ts == "1.2.840.10008.1.2":  # Implicit VR: tag, 4-byte length
        length, start = int.from_bytes(head[4:8], "little"), at + 8
    elif head[4:6] in (b"OB", b"OW", b"UN", b"OF", b"OD", b"OL", b"OV", b"UT") and len(head) == 12:
        length, start = int.from_bytes(head[8:12], "little"), at + 12
    else:
        length, start = int.from_bytes(head[6:8], "little"), at + 8
    return start, -1 if length == 0xFFFFFFFF else length


def _name(tag: int) -> str:
    from pydicom.datadict import keyword_for_tag

    code = f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
    keyword = keyword_for_tag(tag)
    return f"{keyword} {code}" if keyword else code


def _value_text(ds: Any, tag: int) -> str:
    """A value as a sentence shows it: quoted text cut at `VALUE_TEXT`, or its size."""
    elem = ds.get_item(tag, keep_deferred=True)
    if getattr(elem, "is_raw", False) and _deferred(elem):
        return f"{elem.length:,} bytes"
    try:
        value = ds[tag].value
    except Exception:  # a value pydicom cannot decode: its size  # noqa: BLE001
        return f"{len(elem.value or b''):,} bytes"
    if isinstance(value, bytes):
        return f"{len(value):,} bytes"
    if hasattr(value, "__len__") and not isinstance(value, str) and _is_sequence(ds, tag, elem):
        return f"{len(value)} item(s)"
    text = str(value)
    if len(text) > VALUE_TEXT:
        text = text[:VALUE_TEXT - 1] + "\u2026"
    return repr(text)
