"""The instances a capture's C-STOREs carried, remembered for the analyses that ask whether an
instance named elsewhere was sent (a Storage Commitment failure, the images an MPPS lists), and
the objects sent more than once: a SOP Instance UID reused for other content (an archive keeps
one of the two), or the same object sent again.

Bounded: past `STORES_KEPT` instances per capture nothing more is remembered, and the
answer for an instance not found is then "unknown" rather than "not sent", so memory stays
flat on a day of stores. Copies are told apart by the SHA-256 of their data set (objects
table), the first 16 hex digits of it kept. Where two copies differ and both were written
as Part-10 files, their content is compared attribute by attribute (copies.py, the first
`COMPARED` such pairs of a capture): re-encoded only (a note for the capture), attributes
changed on the way by another sender (an archive's or router's coercion), or two objects
under one UID, each with the attributes that differ.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .association import Association
from .copies import DIFFER, ONLY_ONE, Comparison, compare_files
from .records import FindingRecord, ObjectRecord, uid_name
from .timing import OperationRecord

#: C-STOREs remembered per capture (instance UID -> outcome, and the content's digest).
STORES_KEPT = 50_000
#: UIDs reused for other content reported per capture (each a finding); the rest counted.
REUSED_NAMED = 20
#: Pairs of copies with other bytes whose files are compared per capture (copies.py: each
#: reads the two files' attributes and hashes their pixel data); the rest only by digest.
COMPARED = 200


@dataclass(frozen=True, slots=True)
class Copy:
    """One complete copy of an object: where it went and what it held."""

    stream: int
    frame: int | None
    digest: str
    sender_ae: str | None
    receiver_ae: str | None
    msg_index: int
    transfer_syntax: str | None
    size: int  # the data set's bytes
    path: Path | None = None  # its Part-10 file, where one was written


class StoredInstances:
    """SOP Instance UID -> (frame of its C-STORE-RQ, status category of its C-STORE), a
    successful store winning over an earlier failed one; and the copies of each object."""

    def __init__(self, objects_dir: Path | None = None) -> None:
        #: where the capture's Part-10 files are written (None: none are, nothing compared)
        self.objects_dir = objects_dir
        self.seen: dict[str, tuple[int, str | None]] = {}
        self.classes: dict[str, str] = {}  # SOP Instance UID -> its SOP Class UID
        self.copies: dict[str, Copy] = {}  # the first complete copy of each instance
        #: UID, first copy, the copy with other content, and what comparing them found
        self.reused: list[tuple[str, Copy, Copy, Comparison | None]] = []
        self.reused_count = 0
        self.resent = 0  # copies identical to an earlier one
        self.resent_bytes = 0
        self.resent_example: tuple[str, Copy, Copy] | None = None
        self.compared = 0  # pairs whose files were compared
        self.recoded = 0  # copies with other bytes and the same content
        self.recoded_example: tuple[str, Copy, Copy, Comparison] | None = None

    @property
    def full(self) -> bool:
        return len(self.seen) >= STORES_KEPT

    def add(self, stream: int, assoc: Association, ops: Iterable[OperationRecord],
            objects: Iterable[ObjectRecord] = ()) -> None:
        """An association's C-STOREs, in one walk of its operations (request order) beside
        its objects (message order): each store's outcome, and each complete data set
        compared with an earlier copy of its instance. Nothing is gathered."""
        seen = self.seen
        stored = (o for o in objects
                  if o.command == "C-STORE-RQ" and o.complete and o.sop_instance_uid)
        obj = next(stored, None)
        for op in ops:
            if op.command != "C-STORE":
                continue
            uid = op.sop_instance_uid
            if uid:
                if op.sop_class_uid and len(self.classes) < STORES_KEPT:
                    self.classes.setdefault(uid, op.sop_class_uid)
                before = seen.get(uid)
                if (before is None and len(seen) < STORES_KEPT) or (
                        before is not None and before[1] != "Success"):
                    seen[uid] = (op.first_frame, op.status_category)
            while obj is not None and obj.msg_index < op.request_index:
                obj = next(stored, None)
            if obj is None or obj.msg_index != op.request_index:
                continue
            self._copy(str(obj.sop_instance_uid), obj, Copy(
                stream, op.first_frame, obj.sha256[:16],
                *((assoc.calling_ae, assoc.called_ae) if obj.sender == "requestor"
                  else (assoc.called_ae, assoc.calling_ae)), obj.msg_index,
                obj.transfer_syntax, obj.dataset_bytes,
                self.objects_dir / obj.path if self.objects_dir and obj.path else None))

    def _copy(self, uid: str, obj: ObjectRecord, copy: Copy) -> None:
        first = self.copies.get(uid)
        if first is None:
            if len(self.copies) < STORES_KEPT:
                self.copies[uid] = copy
            return
        if first.frame is not None and copy.frame is not None and copy.frame < first.frame:
            # associations are taken as they end: a router's forward ends before the
            # association it forwards from, yet its copy was sent later
            first, copy = copy, first
            self.copies[uid] = first
        if first.digest == copy.digest:
            self.resent += 1
            self.resent_bytes += obj.dataset_bytes
            self.resent_example = self.resent_example or (uid, first, copy)
        else:
            found = self._compare(first, copy)
            if found is not None and not found.changed and found.pixels not in (
                    DIFFER, ONLY_ONE):
                self.recoded += 1
                self.recoded_example = self.recoded_example or (uid, first, copy, found)
                return
            self.reused_count += 1
            if len(self.reused) < REUSED_NAMED:
                self.reused.append((uid, first, copy, found))

    def _compare(self, first: Copy, copy: Copy) -> Comparison | None:
        """The two copies' files compared (copies.py), for the first `COMPARED` pairs."""
        if first.path is None or copy.path is None or self.compared >= COMPARED:
            return None
        self.compared += 1
        return compare_files(first.path, copy.path, first.transfer_syntax,
                             copy.transfer_syntax)

    def sop_class(self, uid: str) -> str | None:
        """The SOP Class UID a C-STORE of ``uid`` named (None: none of this capture)."""
        return self.classes.get(uid)

    def get(self, uid: str) -> tuple[int, str | None] | None:
        return self.seen.get(uid)

    def stored(self, uid: str) -> bool:
        found = self.seen.get(uid)
        return found is not None and found[1] == "Success"

    def sent_text(self, uid: str) -> str:
        """Whether this capture holds a C-STORE of ``uid``, as a clause ("" if unknown)."""
        found = self.seen.get(uid)
        if found is None:
            return "" if self.full else "no C-STORE of it is in this capture"
        if found[1] == "Success":
            return f"it was stored successfully (C-STORE-RQ at frame {found[0]})"
        return f"its C-STORE (frame {found[0]}) ended {found[1] or 'unanswered'}"

    def findings(self) -> list[tuple[int | None, FindingRecord]]:
        """A SOP Instance UID sent with other content (one finding each, on the association
        of the later copy); objects sent again (one note for the capture)."""
        out: list[tuple[int | None, FindingRecord]] = []
        for uid, first, other, found in self.reused:
            out.append((other.stream, self._reused(uid, first, other, found)))
        if self.reused_count > len(self.reused):
            out.append((None, FindingRecord(
                None, None, "warning", "instance-uid-reused",
                f"{self.reused_count - len(self.reused)} more SOP Instance UIDs were sent with "
                "other content (see the objects table: the same sop_instance_uid with "
                "another sha256)")))
        if self.recoded_example is not None:
            out.append((None, _recoded_note(self.recoded, *self.recoded_example)))
        if self.resent_example is not None:
            uid, first, again = self.resent_example
            size = (f"{self.resent_bytes / 1e6:.1f} MB" if self.resent_bytes >= 1e6 else
                    f"{self.resent_bytes / 1e3:.0f} KB")
            out.append((None, FindingRecord(
                None, again.frame, "note", "instance-resent",
                f"{self.resent} object(s) were sent again with the same content ({size} "
                f"once more), e.g. {uid} at frames {first.frame} and {again.frame} "
                f"({_route(first, again)}): a retry after a failure or timeout, or a "
                "retrieval of what the destination already had")))
        return out

    def _reused(self, uid: str, first: Copy, other: Copy, found: Comparison | None
                ) -> FindingRecord:
        """The finding on a UID sent again with other content: attributes changed on the
        way (another sender, the pixel data not shown to differ), or two objects sharing
        it; with the attributes that differ where the files were compared."""
        route = _route(first, other)
        where = f"at frames {first.frame} and {other.frame} ({route})"
        if found is not None and first.sender_ae != other.sender_ae \
                and found.pixels not in (DIFFER, ONLY_ONE):
            pixels = found.pixels_text()
            return FindingRecord(
                other.msg_index, other.frame, "warning", "instance-changed",
                f"SOP Instance UID {uid} was sent on with {_count(found.changed)} changed "
                f"{where}: {found.changes_text()}" + (f"; {pixels}" if pixels else "") +
                f": {other.sender_ae or 'its later sender'}, or a system between the two, "
                "changed the object on the way (attribute coercion by an archive or router; "
                "a C-STORE answered with status 0xB000 says so): the two copies of one "
                "object now disagree; if that is not meant, look at the coercion (tag "
                "morphing) rules on that path")
        head = f"SOP Instance UID {uid} was sent with other content (data sets differ) {where}: "
        if found is not None:
            pixels = found.pixels_text()
            shown = found.pixels in (DIFFER, ONLY_ONE)
            differ = ", and ".join(part for part in (
                pixels if shown else "",
                f"{_count(found.changed)} "
                f"{'differs' if found.changed == 1 else 'differ'}: {found.changes_text()}"
                if found.changed
                else "") if part)
            rest = f"; {pixels}" if pixels and not shown else ""
            return FindingRecord(other.msg_index, other.frame, "warning", "instance-uid-reused",
                                 f"{head}{differ}{rest}: {_TWO_OBJECTS}")
        recoded = _recoded(first, other)
        unseen = "" if self.objects_dir is not None else (
            " (with the objects written, without --no-objects, the two are compared "
            "attribute by attribute)")
        return FindingRecord(
            other.msg_index, other.frame, "warning", "instance-uid-reused", head + (
                _TWO_OBJECTS if not recoded else
                "two different objects share it (an archive keeps only one), or the copies "
                f"are one object re-encoded: {recoded}; compare the two (objects table, or "
                "the Part-10 files), and if their content differs, the sender must give "
                "each object its own UID") + unseen)


#: What a UID reused for two objects does, and what to do.
_TWO_OBJECTS = ("two different objects share it, and an archive keeps only one (it rejects or "
                "overwrites the other): the sender must give each object its own UID (check "
                "its UID generator, or whether an edited object was sent again under the old "
                "UID)")


def _count(n: int) -> str:
    return f"{n} attribute{'s' if n != 1 else ''}"


def _recoded_note(n: int, uid: str, first: Copy, again: Copy, found: Comparison
                  ) -> FindingRecord:
    """One note for the capture: the objects sent again re-encoded (other bytes, every
    attribute the same), with one example."""
    pixels = found.pixels_text()
    syntaxes = (f"in {uid_name(first.transfer_syntax) or '?'} ({first.size:,} bytes), then in "
                f"{uid_name(again.transfer_syntax) or '?'} ({again.size:,} bytes)"
                if first.transfer_syntax != again.transfer_syntax else
                f"both in {uid_name(first.transfer_syntax) or '?'}, of {first.size:,} and "
                f"{again.size:,} bytes (group lengths, padding or lengths rewritten)")
    return FindingRecord(
        None, again.frame, "note", "instance-re-encoded",
        f"{n} object(s) were sent again re-encoded: other bytes, the same attributes"
        + (" and pixel data" if found.pixels == "same" else f"; {pixels}" if pixels else "")
        + f"; e.g. {uid} at frames {first.frame} and {again.frame} ({_route(first, again)}), "
        f"{syntaxes}: one object, converted or rewritten by its later sender, not two")


def _recoded(a: Copy, b: Copy) -> str:
    """Where the two copies came from two senders, or in two transfer syntaxes: the same
    object re-encoded has other bytes too (dcmtk's storescu rewrites a file's group
    lengths and padding as it sends it; a transfer syntax conversion rewrites it all), so
    the clause that says so; "" when one sender sent both in one transfer syntax."""
    senders = a.sender_ae != b.sender_ae
    syntaxes = a.transfer_syntax != b.transfer_syntax
    if not senders and not syntaxes:
        return ""
    how = []
    if senders:
        how.append(f"from two senders ({a.sender_ae or '?'} and {b.sender_ae or '?'})")
    if syntaxes:
        how.append(f"in two transfer syntaxes ({uid_name(a.transfer_syntax) or '?'} and "
                   f"{uid_name(b.transfer_syntax) or '?'})")
    return (f"they came {' and '.join(how)}, of {a.size:,} and {b.size:,} bytes, and a "
            "sender that re-encodes an object (dcmtk's storescu rewrites group lengths and "
            "padding; a transfer syntax conversion rewrites it all) sends other bytes for the "
            "same object")


def _route(a: Copy, b: Copy) -> str:
    one = f"{a.sender_ae or '?'} to {a.receiver_ae or '?'}"
    two = f"{b.sender_ae or '?'} to {b.receiver_ae or '?'}"
    return f"{one} both times" if one == two else f"{one}, then {two}"


__all__ = ["REUSED_NAMED", "STORES_KEPT", "Copy", "StoredInstances"]
