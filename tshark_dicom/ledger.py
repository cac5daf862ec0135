"""One association's records as they settle, on their way to the tables.

association.py hands on its finished messages and objects a thousand at a time
(`Association.drain`). Here they are logged (spill.py: on disk past the first chunk),
operations are built as their requests and responses arrive (`timing.OperationBuilder`)
and logged in request order once answered, and each query is decoded as its operation is
logged (`queries.QueryBuilder`). Memory holds the operations still waiting on an answer and
a chunk of each log, so a day of C-ECHOs or C-FINDs on one association stays flat; when the
association ends its operations are attributed (timing.py) a chunk at a time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from .commitment import COMMITMENT_COMMANDS, STORAGE_COMMITMENT
from .mpps import MPPS, MPPS_COMMANDS
from .queries import KeyRecord, ObjectTextTally, QueryBuilder, QueryRecord
from .records import MessageRecord, ObjectRecord
from .spill import Spill
from .timing import OperationBuilder, OperationRecord

#: Whose data sets (query/retrieve identifiers) queries.py decodes.
IDENTIFIER_COMMANDS = frozenset({"C-FIND-RQ", "C-FIND-RSP", "C-MOVE-RQ", "C-MOVE-RSP",
                                 "C-GET-RQ", "C-GET-RSP"})


#: DIMSE-N services whose operations (and their request's data set) are handed on whole
#: for a later stage: SOP class -> the requests whose data sets it reads.
N_SERVICES = {STORAGE_COMMITMENT: COMMITMENT_COMMANDS, MPPS: MPPS_COMMANDS}


def kept_dataset(command: str | None, sop_class_uid: str | None) -> bool:
    """Whose data sets are kept in memory for a later stage to read: query/retrieve
    identifiers (queries.py), Storage Commitment requests and results (commitment.py),
    MPPS N-CREATEs and N-SETs (mpps.py)."""
    return command in IDENTIFIER_COMMANDS or (
        sop_class_uid in N_SERVICES and command in N_SERVICES[sop_class_uid])
#: Operations kept waiting for their final response before the oldest is logged anyway;
#: what still comes for it is applied when the association ends (its query is decoded
#: from the answers that had come by then).
WAITING_MAX = 4096


class Ledger:
    """Messages, objects, operations, queries and their keys of one association, each in
    its table's order."""

    def __init__(self) -> None:
        self.messages: Spill[MessageRecord] = Spill()
        self.objects: Spill[ObjectRecord] = Spill()
        self.ops: Spill[OperationRecord] = Spill()
        self.queries: Spill[QueryRecord] = Spill()
        self.query_keys: Spill[tuple[int, KeyRecord]] = Spill()
        self._builder = OperationBuilder()
        self._queries = QueryBuilder()
        self._waiting: deque[OperationRecord] = deque()  # built, not logged, request order
        #: msg_index -> (identifier object, sent in a Pending response), until its
        #: operation is logged
        self._identifiers: dict[int, tuple[ObjectRecord, bool]] = {}
        self._identifier_order: deque[int] = deque()
        #: Storage Commitment and MPPS operations and their request's data set
        #: (commitment.py and mpps.py decode them once the association is known: its AE
        #: titles and addresses)
        self.n_operations: list[tuple[OperationRecord, ObjectRecord | None]] = []
        #: stored objects whose text their character set does not account for
        self.object_texts = ObjectTextTally()

    def take(self, messages: Sequence[MessageRecord], objects: Sequence[ObjectRecord]) -> None:
        """A batch of settled messages and their objects, in message order."""
        self.messages.extend(messages)
        self.objects.extend(objects)
        if objects:
            pending = {m.msg_index for m in messages if m.status_category == "Pending"}
            for o in objects:
                self.object_texts.add(o)
                if kept_dataset(o.command, o.sop_class_uid):
                    self._identifiers[o.msg_index] = (o, o.msg_index in pending)
                    self._identifier_order.append(o.msg_index)
        self._waiting.extend(self._builder.add(messages))
        self._log_ready()

    def finish(self) -> None:
        """The association ended and every message was taken: log the rest, apply what
        came late, and diagnose the queries (which needs all of them)."""
        self._log_ready(everything=True)
        if self._builder.patches:
            self.ops.rewrite(self._builder.patched)
        if self.queries:
            self.queries.rewrite(self._queries.diagnose)
        self._identifiers.clear()
        self._identifier_order.clear()

    def _identifier(self, msg_index: int) -> tuple[ObjectRecord | None, bool]:
        return self._identifiers.get(msg_index, (None, False))

    def _log_ready(self, everything: bool = False) -> None:
        waiting = self._waiting
        while waiting and (everything or waiting[0].final_response_index is not None
                           or len(waiting) > WAITING_MAX):
            op = waiting.popleft()
            self._builder.handed_on(op)
            self.ops.append(op)
            found = self._queries.add(op, self._identifier)
            if found is not None:
                self.queries.append(found[0])
                self.query_keys.extend(found[1])
            elif op.sop_class_uid in N_SERVICES:
                self.n_operations.append((op, self._identifier(op.request_index)[0]))
            self._identifiers.pop(op.request_index, None)
            for index in op.response_indices:
                self._identifiers.pop(index, None)
        # what no operation still waiting can use: answers to nothing, or to one logged
        bound = waiting[0].request_index if waiting else None
        deferred = self._builder.deferred_from
        if deferred is not None:
            bound = deferred if bound is None else min(bound, deferred)
        order = self._identifier_order
        while order and (bound is None or order[0] < bound):
            self._identifiers.pop(order.popleft(), None)
