"""The instances a capture's C-STOREs carried, remembered for the analyses that ask whether an
instance named elsewhere was sent (a Storage Commitment failure, the images an MPPS lists).

Bounded: past `STORES_KEPT` instances per capture nothing more is remembered, and the
answer for an instance not found is then "unknown" rather than "not sent", so memory stays
flat on a day of stores.
"""

from __future__ import annotations

from collections.abc import Iterable

from .timing import OperationRecord

#: C-STOREs remembered per capture (instance UID -> outcome).
STORES_KEPT = 50_000


class StoredInstances:
    """SOP Instance UID -> (stream of the association, status category of its C-STORE),
    a successful store winning over an earlier failed one."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[int, str | None]] = {}

    @property
    def full(self) -> bool:
        return len(self.seen) >= STORES_KEPT

    def add(self, stream: int, ops: Iterable[OperationRecord]) -> None:
        seen = self.seen
        for op in ops:
            if op.command == "C-STORE" and op.sop_instance_uid:
                before = seen.get(op.sop_instance_uid)
                if before is None and len(seen) >= STORES_KEPT:
                    continue
                if before is None or before[1] != "Success":
                    seen[op.sop_instance_uid] = (stream, op.status_category)

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
            return f"it was stored successfully in association {found[0]}"
        return f"its C-STORE in association {found[0]} ended {found[1] or 'unanswered'}"


__all__ = ["STORES_KEPT", "StoredInstances"]
