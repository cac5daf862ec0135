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

from .association import ACCEPTOR, REQUESTOR, Association, FindingRecord, other_role
from .findings import TimingContext
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


def _name(op: OperationRecord) -> str:
    return f"{op.command} {op.message_id}" if op.message_id is not None else op.command


def _listed(ops: Sequence[OperationRecord]) -> str:
    names = [_name(o) for o in ops[:3]]
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


def async_window_exceeded(c: TimingContext) -> list[FindingRecord]:
    """``async-window-exceeded`` (warning), once per side that went beyond its window: how
    many it had outstanding at most, and the first request beyond the window."""
    found = []
    for invoker in (REQUESTOR, ACCEPTOR):
        limit = async_window(c.assoc, invoker)
        if not limit:
            continue
        # (final response's end, request order, operation) of the invoker's operations
        # still outstanding
        open_ops: list[tuple[int, int, OperationRecord]] = []
        most = 0
        first: tuple[OperationRecord, list[OperationRecord]] | None = None
        for n, op in enumerate(o for o in c.ops if o.scu == invoker):
            while open_ops and open_ops[0][0] <= op.request_first_ns:
                heapq.heappop(open_ops)
            now = len(open_ops) + 1
            if now > limit:
                most = max(most, now)
                if first is None:
                    first = (op, [o for _, _, o in sorted(open_ops, key=lambda e: e[1])])
            if op.final_response_index is not None and op.response_complete_ns is not None:
                heapq.heappush(open_ops, (op.response_complete_ns, n, op))
        if first is None:
            continue
        op, before = first
        peer = c.title(other_role(invoker))
        found.append(FindingRecord(
            op.request_index, op.first_frame, "warning", "async-window-exceeded",
            f"{c.ae(invoker)} had up to {most:,} operations outstanding at once, where the "
            f"association allows it {limit:,}: {_why(c, invoker, limit)}. The first beyond "
            f"it: {_name(op)} (frame {op.first_frame}), sent while {_listed(before)} had no "
            f"final response. {peer} answered them here, but an SCP that holds to the window "
            "reads no further request until it has answered, or aborts: negotiate "
            "asynchronous operations at both ends (PS3.7 D.3.3.3), or wait for each final "
            "response before sending the next request"))
    return found


def message_id_reused(c: TimingContext) -> list[FindingRecord]:
    """``message-id-reused`` (warning), once per side that sent a request with the Message
    ID of one of its own still unanswered: the first such request, and how many there were."""
    found = []
    for invoker in (REQUESTOR, ACCEPTOR):
        #: Message ID -> the last of the invoker's operations with it that was answered
        last: dict[int, OperationRecord] = {}
        first: tuple[OperationRecord, OperationRecord] | None = None
        count = 0
        for op in c.ops:
            if op.scu != invoker or op.message_id is None:
                continue
            earlier = last.get(op.message_id)
            if (earlier is not None and earlier.response_complete_ns is not None
                    and op.request_first_ns < earlier.response_complete_ns):
                count += 1
                if first is None:
                    first = (op, earlier)
            if op.final_response_index is not None and op.response_complete_ns is not None:
                last[op.message_id] = op
        if first is None:
            continue
        op, earlier = first
        found.append(FindingRecord(
            op.request_index, op.first_frame, "warning", "message-id-reused",
            f"{c.ae(invoker)} sent {op.command}-RQ with Message ID {op.message_id} (frame "
            f"{op.first_frame}) while its {_name(earlier)} of frame {earlier.first_frame} "
            "had no final response yet: a response names only the Message ID, so it cannot "
            "say which of the two it answers (the Message ID tells a request from the others "
            "outstanding, PS3.7 E.1); they are paired here in the order sent"
            + (f"; {count:,} requests in all reused a Message ID still outstanding"
               if count > 1 else "")
            + ". Give each outstanding request its own Message ID"))
    return found


def outstanding_findings(c: TimingContext) -> list[FindingRecord]:
    """Both rules, for one association."""
    return [*async_window_exceeded(c), *message_id_reused(c)]
