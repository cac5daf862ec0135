"""Query/retrieve correlation across a capture: each C-MOVE to the callback associations
(and failed connection attempts) its sub-operations travelled on, each sub-operation
C-STORE to the C-MOVE or C-GET it serves (PS3.4 C.4.2, C.4.3; PS3.7 9.1.3-9.1.4).

Clues, strongest first:
- ``move-originator``: the sub-operation C-STOREs carry the C-MOVE's requestor AE title and
  Message ID in Move Originator AE Title / Message ID (0000,1030)/(0000,1031), the callback's
  called AE is the move destination, and it ran while the C-MOVE did.
- ``ae-and-time``: the callback association's called AE is the move destination, it comes
  from the archive (the C-MOVE's acceptor address, or its called AE as calling AE) and it
  starts while the C-MOVE is in progress - and exactly one C-MOVE fits. Some archives fill
  the originator fields with their own AE title (pynetdicom) or not at all: then this is
  the evidence, and when two C-MOVEs fit, the link is left out and said to be uncertain.
- ``same-association``: C-GET sub-operations come on the C-GET's own association, from its
  SCP, while exactly one C-GET is in progress.
A link is never guessed: where the evidence admits more than one parent, ``link`` says
``uncertain`` and the parent stays null.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .association import Association
from .records import REQUESTOR
from .streams import ConnectionAttempt
from .timing import OperationRecord

#: A callback may open a moment before the C-MOVE-RQ's last byte is seen at the capture
#: point (the archive answers as soon as it has the request): allow this much (ns).
EARLY_NS = 50_000_000


@dataclass
class MoveLinks:
    """What correlation found for one C-MOVE or C-GET, for the findings."""

    assoc_id: int
    op: OperationRecord
    callbacks: list[int] = field(default_factory=list)  # assoc ids
    attempts: list[int] = field(default_factory=list)  # indexes into the capture's attempts
    uncertain: list[int] = field(default_factory=list)  # callbacks another C-MOVE fits too
    stores: list[tuple[int, OperationRecord]] = field(default_factory=list)


def move_span(op: OperationRecord, end_ns: int) -> tuple[int, int]:
    """When a C-MOVE's callbacks may begin: from (a moment before) its request to its
    final response (``end_ns``: still running when the capture ended)."""
    return op.request_first_ns - EARLY_NS, op.response_complete_ns or end_ns


def correlate(associations: Sequence[Association], operations: Sequence[list[OperationRecord]],
              attempts: Sequence[ConnectionAttempt]) -> list[MoveLinks]:
    """Fill the correlation fields of ``operations`` (per association, same order as
    ``associations``; the ids written there are the associations' streams, as everywhere
    after analysis) and return one MoveLinks per C-MOVE and C-GET (whose ``assoc_id`` and
    lists are indexes into ``associations``)."""
    end_ns = max((a.last_ns for a in associations), default=0)
    links: list[MoveLinks] = []
    for aid, ops in enumerate(operations):
        links.extend(_c_gets(aid, associations[aid].stream, ops, end_ns))
    moves = [MoveLinks(aid, op) for aid, ops in enumerate(operations) for op in ops
             if op.command == "C-MOVE"]
    for aid, assoc in enumerate(associations):
        _link_callback(aid, assoc, operations[aid], associations, moves, end_ns)
    for ml in moves:
        _link_attempts(ml, associations, attempts, end_ns)
        op = ml.op
        op.callback_assoc_ids = [associations[i].stream for i in ml.callbacks]
        op.callback_attempt_ids = ml.attempts
        op.suboperations_seen = len(ml.stores)
        op.suboperations_failed = sum(s.status_category == "Failure" for _, s in ml.stores)
        if ml.callbacks:
            kinds = {s.link for _, s in ml.stores} - {None}
            op.link = "move-originator" if kinds == {"move-originator"} else "ae-and-time"
        elif ml.uncertain:
            op.link = "uncertain"
    return links + moves


def _c_gets(aid: int, stream: int, ops: list[OperationRecord], end_ns: int
            ) -> list[MoveLinks]:
    gets = [MoveLinks(aid, op) for op in ops if op.command == "C-GET"]
    if not gets:
        return []
    for store in ops:
        if store.command != "C-STORE":
            continue
        fits = [g for g in gets if store.scu == g.op.scp
                and move_span(g.op, end_ns)[0] <= store.request_first_ns
                <= move_span(g.op, end_ns)[1]]
        if len(fits) == 1:
            g = fits[0]
            store.parent_assoc_id, store.parent_op_index = stream, g.op.op_index
            store.link = "same-association"
            g.stores.append((aid, store))
        elif len(fits) > 1:
            store.link = "uncertain"
    for g in gets:
        g.op.suboperations_seen = len(g.stores)
        g.op.suboperations_failed = sum(s.status_category == "Failure" for _, s in g.stores)
        g.op.link = "same-association" if g.stores else None
    return gets


def _from_archive(callback: Association, move_assoc: Association) -> bool:
    """The callback comes from the archive that got the C-MOVE: its address, or (for an
    archive that connects from another interface) its AE title as the calling AE."""
    if callback.requestor and move_assoc.acceptor and \
            callback.requestor[0] == move_assoc.acceptor[0]:
        return True
    return bool(callback.calling_ae) and callback.calling_ae == move_assoc.called_ae


def _link_callback(aid: int, assoc: Association, ops: list[OperationRecord],
                   associations: Sequence[Association], moves: list[MoveLinks],
                   end_ns: int) -> None:
    """Is this association a callback, and of which C-MOVE?"""
    start = assoc.requested_ns if assoc.requested_ns is not None else assoc.first_ns
    fits = [ml for ml in moves if ml.assoc_id != aid
            and ml.op.move_destination and ml.op.move_destination == assoc.called_ae
            and _from_archive(assoc, associations[ml.assoc_id])
            and move_span(ml.op, end_ns)[0] <= start <= move_span(ml.op, end_ns)[1]]
    if not fits:
        return
    stores = [op for op in ops if op.command == "C-STORE" and op.scu == REQUESTOR]
    chosen: MoveLinks | None = None
    how = "ae-and-time"
    by_originator = [ml for ml in fits if stores and all(
        (s.move_originator_ae, s.move_originator_message_id)
        == (_scu_ae(associations[ml.assoc_id], ml.op), ml.op.message_id) for s in stores)]
    if len(by_originator) == 1:
        chosen, how = by_originator[0], "move-originator"
    elif len(fits) == 1:
        chosen = fits[0]
    if chosen is None:
        for ml in fits:
            ml.uncertain.append(aid)
        for s in stores:
            s.link = "uncertain"
        return
    chosen.callbacks.append(aid)
    for s in stores:
        s.parent_assoc_id, s.parent_op_index, s.link = (
            associations[chosen.assoc_id].stream, chosen.op.op_index, how)
        chosen.stores.append((aid, s))


def _scu_ae(assoc: Association, op: OperationRecord) -> str | None:
    return assoc.calling_ae if op.scu == REQUESTOR else assoc.called_ae


def _link_attempts(ml: MoveLinks, associations: Sequence[Association],
                   attempts: Sequence[ConnectionAttempt], end_ns: int) -> None:
    """Failed connections from the archive while the C-MOVE ran: its callback, refused or
    unanswered (only when no callback association of it was seen: else they are another
    destination's or a retry's, and the association says what happened)."""
    if ml.callbacks:
        return
    archive = associations[ml.assoc_id].acceptor
    lo, hi = move_span(ml.op, end_ns)
    ml.attempts = [i for i, t in enumerate(attempts)
                   if archive and t.client[0] == archive[0] and lo <= t.first_ns <= hi]
