"""Operations outstanding at once: the Asynchronous Operations Window and Message IDs
(pure rules over one association's operations, in request order).

An association's operations are one at a time unless both ends negotiate more: the
A-ASSOCIATE-RQ may propose an Asynchronous Operations Window, and only what the
A-ASSOCIATE-AC grants holds; with no window in the A-ASSOCIATE-AC, each side may have one
operation outstanding (PS3.7 D.3.3.3; 0 is no limit). The requestor's invoked operations are
held to the granted "invoked" number, the acceptor's (a C-GET's C-STORE sub-operations,
Storage Commitment's N-EVENT-REPORT) to the "performed" one.

- ``async-window-exceeded``: a side sent a request while as many of its own were still
  unanswered as it may have outstanding. Peers that do not do asynchronous operations
  (pynetdicom's and dcmtk's SCPs) read and answer such requests one after the other, which
  hides the fault until the SCU meets an SCP that holds to the window.
- ``message-id-reused``: a side sent a request with the Message ID of one of its own still
  unanswered. A response names only the Message ID Being Responded To (PS3.7 E.1), so
  it cannot say which of the two it answers; association.py pairs them in the order sent.

An operation counts as outstanding from its request's first byte to its final response's
last; one with no final response in the capture is not counted (its response may only be
missing from the capture; request-unanswered says so).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import NamedTuple

from .association import Association
from .findings import TimingContext
from .records import ACCEPTOR, REQUESTOR, FindingRecord, other_role
from .timing import OperationRecord

__all__ = ["async_window", "async_window_exceeded", "message_id_reused", "outstanding_findings"]


def async_window(assoc: Association, invoker: str) -> int | None:
    """How many operations ``invoker`` may have outstanding on ``assoc``: the A-ASSOCIATE-AC's
    window (invoked for the requestor, performed for the acceptor), 1 if it has none, 0 for
    no limit; None when the negotiation is not in the capture."""
    if assoc.result != "accepted" or assoc.responded_ns is None:
        return None
    granted = assoc.async_window[ACCEPTOR]
    if granted is None:
        return 1
    return granted[0] if invoker == REQUESTOR else granted[1]


def _listed(ops: Sequence[_Brief]) -> str:
    names = [o.name for o in ops[:3]]
    more = len(ops) - len(names)
    if more:
        names.append(f"{more:,} more")
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _why(c: TimingContext, invoker: str, limit: int) -> str:
    """Where the window of ``limit`` comes from, as a clause."""
    a = c.assoc
    asked, granted = a.async_window[REQUESTOR], a.async_window[ACCEPTOR]
    what = "invoke" if invoker == REQUESTOR else "perform"
    i = 0 if invoker == REQUESTOR else 1
    if granted is not None:
        return (f"{c.title(ACCEPTOR)} granted an Asynchronous Operations Window of {limit} "
                f"(operations the requestor may {what})"
                + (f", where {c.title(REQUESTOR)} asked for {asked[i]}" if asked else ""))
    if asked is not None:
        return (f"{c.title(REQUESTOR)} asked for an Asynchronous Operations Window of "
                f"{asked[i]} but {c.title(ACCEPTOR)} granted none (no window in its "
                "A-ASSOCIATE-AC), so operations are one at a time")
    return "no Asynchronous Operations Window was negotiated, so operations are one at a time"


class _Brief(NamedTuple):
    """What the sentences need of an operation (not the record: a rule may keep thousands)."""

    request_index: int
    first_frame: int
    command: str
    message_id: int | None

    @property
    def name(self) -> str:
        return f"{self.command} {self.message_id}" if self.message_id is not None \
            else self.command


class _Side:
    """One invoking side's sweep over its operations, in request order."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit  # None: the window is not known; 0: no limit
        #: (final response's end, request order, operation) of those still outstanding
        self.open: list[tuple[int, int, _Brief]] = []
        self.most = 0
        self.beyond: tuple[_Brief, list[_Brief]] | None = None  # the first beyond the window
        #: Message ID -> (final response's end, operation) of the last answered with it
        self.last: dict[int, tuple[int, _Brief]] = {}
        self.reused: tuple[_Brief, _Brief] | None = None  # the first, and its earlier
        self.reused_count = 0
        self.n = 0

    def add(self, op: OperationRecord) -> None:
        brief = _Brief(op.request_index, op.first_frame, op.command, op.message_id)
        start = op.request_first_ns
        end = op.response_complete_ns if op.final_response_index is not None else None
        if self.limit:
            open_ops = self.open
            while open_ops and open_ops[0][0] <= start:
                heapq.heappop(open_ops)
            now = len(open_ops) + 1
            if now > self.limit:
                self.most = max(self.most, now)
                if self.beyond is None:
                    self.beyond = (brief, [b for _, _, b in sorted(open_ops,
                                                                   key=lambda e: e[1])])
            if end is not None:
                heapq.heappush(open_ops, (end, self.n, brief))
        self.n += 1
        if op.message_id is not None:
            earlier = self.last.get(op.message_id)
            if earlier is not None and start < earlier[0]:
                self.reused_count += 1
                if self.reused is None:
                    self.reused = (brief, earlier[1])
            if end is not None:
                self.last[op.message_id] = (end, brief)


def _sweep(c: TimingContext) -> dict[str, _Side]:
    """Both rules' evidence, per invoking side, in one pass over the operations (a long
    association's wait on disk, `Spill`)."""
    sides = {role: _Side(async_window(c.assoc, role)) for role in (REQUESTOR, ACCEPTOR)}
    for op in c.ops:
        side = sides.get(op.scu)
        if side is not None:
            side.add(op)
    return sides


def _exceeded(c: TimingContext, invoker: str, side: _Side) -> FindingRecord | None:
    if side.beyond is None or not side.limit:
        return None
    op, before = side.beyond
    peer = c.title(other_role(invoker))
    return FindingRecord(
        op.request_index, op.first_frame, "warning", "async-window-exceeded",
        f"{c.ae(invoker)} had up to {side.most:,} operations outstanding at once, where the "
        f"association allows it {side.limit:,}: {_why(c, invoker, side.limit)}. The first "
        f"beyond it: {op.name} (frame {op.first_frame}), sent while {_listed(before)} had no "
        f"final response. {peer} answered them here, but an SCP that holds to the window "
        "reads no further request until it has answered, or aborts: negotiate "
        "asynchronous operations at both ends (PS3.7 D.3.3.3), or wait for each final "
        "response before sending the next request")


def _reused(c: TimingContext, invoker: str, side: _Side) -> FindingRecord | None:
    if side.reused is None:
        return None
    op, earlier = side.reused
    count = side.reused_count
    return FindingRecord(
        op.request_index, op.first_frame, "warning", "message-id-reused",
        f"{c.ae(invoker)} sent {op.command}-RQ with Message ID {op.message_id} (frame "
        f"{op.first_frame}) while its {earlier.name} of frame {earlier.first_frame} "
        "had no final response yet: a response names only the Message ID, so it cannot "
        "say which of the two it answers (the Message ID tells a request from the others "
        "outstanding, PS3.7 E.1); they are paired here in the order sent"
        + (f"; {count:,} requests in all reused a Message ID still outstanding"
           if count > 1 else "")
        + ". Give each outstanding request its own Message ID")


def async_window_exceeded(c: TimingContext) -> list[FindingRecord]:
    """``async-window-exceeded`` (warning), once per side that went beyond its window: how
    many it had outstanding at most, and the first request beyond the window."""
    return [f for role, side in _sweep(c).items() if (f := _exceeded(c, role, side))]


def message_id_reused(c: TimingContext) -> list[FindingRecord]:
    """``message-id-reused`` (warning), once per side that sent a request with the Message
    ID of one of its own still unanswered: the first such request, and how many there were."""
    return [f for role, side in _sweep(c).items() if (f := _reused(c, role, side))]


def outstanding_findings(c: TimingContext) -> list[FindingRecord]:
    """Both rules, for one association, from one pass over its operations."""
    sides = _sweep(c)
    found = [_exceeded(c, role, side) for role, side in sides.items()]
    found += [_reused(c, role, side) for role, side in sides.items()]
    return [f for f in found if f is not None]
