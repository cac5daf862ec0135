"""What query/retrieve correlation says of a C-MOVE or C-GET as soon as its association
ended, before the capture's end (a live view: liveview.py): its callbacks refused,
unanswered or rejected, its sub-operations failed, told while the engineer watches rather
than at Ctrl-C.

The capture's end correlates every kept association once more (analysis.py), and that is
what the tables hold; a preview only says earlier what it will say, from the same rules
(correlate.py, qrfindings.py) run on copies: the rules amend operations and reword or fold
findings in place, and the associations' own records must stay as the end finds them.
analysis.py runs a preview only once no connection that could still be one of the
C-MOVE's callbacks is open (`waits_for`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from .association import Association
from .correlate import correlate, move_span
from .qrfindings import QrContext, qr_findings
from .queries import QueryRecord
from .records import FindingRecord
from .streams import ConnectionAttempt, TcpConnection, failed_attempt
from .timing import OperationRecord

RETRIEVES = ("C-MOVE", "C-GET")
#: Associations end in the order of their last packets, give or take a capture's clock
#: steps: a window reaches this much further back than it must.
SLACK_NS = 60_000_000_000


def window_start(ops: Iterable[OperationRecord]) -> int:
    """The earliest moment an association that correlation may link to these C-MOVEs or
    C-GETs can have begun (their callbacks, another C-MOVE that fits one of them too), less
    the slack: an association kept for correlation that ended before it has no part in
    their preview (its own rules do not look further)."""
    return min((move_span(op, 0)[0] for op in ops if op.command in RETRIEVES),
               default=0) - SLACK_NS


@dataclass(frozen=True)
class Kept:
    """One association correlation keeps: its records as analysis has them."""

    assoc: Association
    ops: list[OperationRecord]
    queries: Sequence[QueryRecord]


def _copy(assoc: Association) -> Association:
    """The association with findings of its own (rules fold, drop and reword them): the
    same findings in the same order, and its rejections pointing at the copies."""
    shadow = copy.copy(assoc)
    copies = {id(f): replace(f) for f in assoc.findings}
    shadow.findings = [copies[id(f)] for f in assoc.findings]
    shadow.rejections = {cid: copies.get(id(f), f) for cid, f in assoc.rejections.items()}
    return shadow


def waits_for(mover: Association, ops: Iterable[OperationRecord],
              open_conns: Iterable[TcpConnection]) -> bool:
    """Could a connection still open be a callback of one of the association's C-MOVEs?
    One that began while a C-MOVE ran, from the archive's address (or any, while its
    first bytes are still to come), and is not a SYN the archive gave up on: an
    unanswered attempt that began while the C-MOVE ran and sent nothing after its
    response is that C-MOVE's unanswered callback (`provisional_attempts`)."""
    spans = [move_span(op, mover.last_ns) for op in ops if op.command == "C-MOVE"]
    if not spans:
        return False
    archive = mover.acceptor[0] if mover.acceptor else None
    for conn in open_conns:
        first = conn.first_time_ns
        if first is None or not any(lo <= first <= hi for lo, hi in spans):
            continue
        if conn.client is not None and conn.client[0] != archive:
            continue  # not from the archive (a callback from another interface has
            # sent its A-ASSOCIATE-RQ long before its C-MOVE ended: it is a finished one)
        if syn_only(conn) and all(conn.last_time_ns <= hi for _, hi in spans):
            continue
        return True
    return False


def syn_only(conn: TcpConnection) -> bool:
    """Only the client's SYNs so far: nothing answered them."""
    return conn.client is not None and len(conn.halves) == 1 and conn.client in conn.halves \
        and not conn.halves[conn.client].stats.payload_packets


def provisional_attempts(open_conns: Iterable[TcpConnection]) -> list[ConnectionAttempt]:
    """The open connections that are only a client's SYNs, as the unanswered attempts
    the capture's end will make of them (streams.failed_attempt) if nothing answers
    meanwhile."""
    return [a for conn in open_conns if syn_only(conn)
            and (a := failed_attempt(conn)) is not None]


def preview(kept: Sequence[Kept], mover: int, attempts: Sequence[ConnectionAttempt],
            sop_class: Callable[[str], str | None],
            ) -> list[tuple[int, list[FindingRecord]]]:
    """Correlate ``kept`` (``mover`` indexes the association whose C-MOVE or C-GET ended)
    on copies, with the ``attempts`` known now; the findings the mover and each of its
    callbacks would have, (index into ``kept``, all its findings), mover last. The
    records in ``kept`` are untouched. ``sop_class``: as QrContext's."""
    assocs = [_copy(k.assoc) for k in kept]
    ops = [[copy.copy(op) for op in k.ops] for k in kept]
    links = correlate(assocs, ops, attempts)
    by_op = {(i, q.op_index): q for i, k in enumerate(kept) for q in k.queries}
    context = QrContext(assocs, links, attempts, by_op, sop_class)
    for index, finding in qr_findings(context):
        assocs[index].findings.append(finding)
    callbacks = sorted({aid for ml in links if ml.assoc_id == mover for aid in ml.callbacks})
    return [(i, assocs[i].findings) for i in (*callbacks, mover)]
