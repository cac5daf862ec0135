"""The instances a capture's C-STOREs carried, remembered for the analyses that ask whether an
instance named elsewhere was sent (a Storage Commitment failure, the images an MPPS lists), and
the objects sent more than once: a SOP Instance UID reused for other content (an archive keeps
one of the two), or the same object sent again.

Bounded: past `STORES_KEPT` instances per capture nothing more is remembered, and the
answer for an instance not found is then "unknown" rather than "not sent", so memory stays
flat on a day of stores. Copies are told apart by the SHA-256 of their data set (objects
table), the first 16 hex digits of it kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .association import Association
from .records import FindingRecord, ObjectRecord, uid_name
from .timing import OperationRecord

#: C-STOREs remembered per capture (instance UID -> outcome, and the content's digest).
STORES_KEPT = 50_000
#: UIDs reused for other content reported per capture (each a finding); the rest counted.
REUSED_NAMED = 20


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


class StoredInstances:
    """SOP Instance UID -> (frame of its C-STORE-RQ, status category of its C-STORE), a
    successful store winning over an earlier failed one; and the copies of each object."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[int, str | None]] = {}
        self.copies: dict[str, Copy] = {}  # the first complete copy of each instance
        self.reused: list[tuple[str, Copy, Copy]] = []  # UID, first copy, other content
        self.reused_count = 0
        self.resent = 0  # copies identical to an earlier one
        self.resent_bytes = 0
        self.resent_example: tuple[str, Copy, Copy] | None = None

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
                obj.transfer_syntax, obj.dataset_bytes))

    def _copy(self, uid: str, obj: ObjectRecord, copy: Copy) -> None:
        first = self.copies.get(uid)
        if first is None:
            if len(self.copies) < STORES_KEPT:
                self.copies[uid] = copy
        elif first.digest == copy.digest:
            self.resent += 1
            self.resent_bytes += obj.dataset_bytes
            self.resent_example = self.resent_example or (uid, first, copy)
        else:
            self.reused_count += 1
            if len(self.reused) < REUSED_NAMED:
                self.reused.append((uid, first, copy))

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
        for uid, first, other in self.reused:
            route = _route(first, other)
            recoded = _recoded(first, other)
            out.append((other.stream, FindingRecord(
                other.msg_index, other.frame, "warning", "instance-uid-reused",
                f"SOP Instance UID {uid} was sent with other content (data sets differ) at "
                f"frames {first.frame} and {other.frame} ({route}): " + (
                    "two different objects share it, and an archive keeps only one (it "
                    "rejects or overwrites the other): the sender must give each object its "
                    "own UID (check its UID generator, or whether an edited object was sent "
                    "again under the old UID)" if not recoded else
                    "two different objects share it (an archive keeps only one), or the copies "
                    f"are one object re-encoded: {recoded}; compare the two (objects table, or "
                    "the Part-10 files), and if their content differs, the sender must give "
                    "each object its own UID"))))
        if self.reused_count > len(self.reused):
            out.append((None, FindingRecord(
                None, None, "warning", "instance-uid-reused",
                f"{self.reused_count - len(self.reused)} more SOP Instance UIDs were sent with "
                "other content (see the objects table: the same sop_instance_uid with "
                "another sha256)")))
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
