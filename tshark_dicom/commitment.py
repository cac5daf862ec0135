"""Storage Commitment (PS3.4 Annex J, Push Model): each request to keep instances safe to the
result that answers it, and what that result says of each instance. Pure functions and small
records; analysis.py feeds them as associations settle.

A storage SCU (a modality) asks with an N-ACTION (action type 1) whose Action Information
lists the instances (Referenced SOP Sequence) under a Transaction UID. The SCP answers the
N-ACTION at once, and sends the result later with an N-EVENT-REPORT carrying the same
Transaction UID (event type 1: all committed; 2: failures exist, each in the Failed SOP
Sequence with its Failure Reason), on the same association if it is still open, else on an
association the SCP opens to the SCU (J.3.3). The result is linked by Transaction UID only:
no other field ties the two, and an SCU may have several transactions open at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from io import BytesIO
from struct import unpack_from
from typing import Any

from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.filereader import data_element_generator
from pydicom.tag import BaseTag, Tag
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian

from .association import Association
from .instances import StoredInstances
from .queries import IdentifierFn, read_identifier
from .records import REQUESTOR, FindingRecord, ObjectRecord, reject_reason_text, uid_name
from .streams import ConnectionAttempt
from .timing import OperationRecord, ms_between, until_end_text

#: Storage Commitment Push Model SOP Class (PS3.4 J.3).
STORAGE_COMMITMENT = "1.2.840.10008.1.20.1"
#: The messages whose data sets this module reads (the sink keeps their bytes).
COMMITMENT_COMMANDS = frozenset({"N-ACTION-RQ", "N-EVENT-REPORT-RQ"})
#: Failure Reason (0008,1197) values a Storage Commitment result may give (PS3.3 C.14.1.1).
FAILURE_REASONS = {
    0x0110: "Processing failure",
    0x0112: "No such object instance",
    0x0119: "Class / Instance conflict",
    0x0122: "Referenced SOP Class not supported",
    0x0131: "Duplicate transaction UID",
    0x0213: "Resource limitation",
}
#: Failed instances named in a finding, and kept per result for the table.
FAILED_KEPT = 100


@dataclass(slots=True)
class CommitmentMessage:
    """One Storage Commitment request (N-ACTION) or result (N-EVENT-REPORT) as decoded."""

    kind: str  # request | result
    stream: int
    op: OperationRecord
    #: the AE titles of the side that sent the message and of the other side
    sender_ae: str | None
    receiver_ae: str | None
    sender: tuple[str, int] | None  # (address, port)
    receiver: tuple[str, int] | None
    transaction_uid: str | None = None
    referenced: int = 0  # request: instances asked for; result: committed
    failed: int = 0
    #: (SOP Class UID, SOP Instance UID, Failure Reason), the first FAILED_KEPT
    failed_items: list[tuple[str, str, int | None]] = field(default_factory=list)
    reasons: dict[int | None, int] = field(default_factory=dict)  # reason -> count
    problem: str | None = None


def commitment_message(stream: int, assoc: Association, op: OperationRecord,
                       identifier: IdentifierFn) -> CommitmentMessage | None:
    """The Storage Commitment request or result of ``op``; None for any other operation."""
    if op.sop_class_uid != STORAGE_COMMITMENT or op.command not in ("N-ACTION",
                                                                     "N-EVENT-REPORT"):
        return None
    # the request's sender invoked the operation: the SCU for an N-ACTION, the
    # commitment SCP for an N-EVENT-REPORT (which is why its scu side is the SCP)
    mine = op.scu == REQUESTOR
    ends = (assoc.requestor, assoc.acceptor) if mine else (assoc.acceptor, assoc.requestor)
    aes = (assoc.calling_ae, assoc.called_ae) if mine else (assoc.called_ae, assoc.calling_ae)
    msg = CommitmentMessage("request" if op.command == "N-ACTION" else "result", stream, op,
                            aes[0], aes[1], ends[0], ends[1])
    obj = identifier(op.request_index)[0]
    if obj is None:
        msg.problem = "no data set"
        return msg
    if obj.identifier is None:
        msg.problem = ("data set longer than the tool keeps" if obj.complete else
                       f"data set incomplete: {obj.problem}")
        return msg
    try:
        _read(msg, obj)
    except Exception as exc:  # pydicom converts values lazily: any of them may be bad
        msg.problem = f"data set not readable: {exc}"
    return msg


def _read(msg: CommitmentMessage, obj: ObjectRecord) -> None:
    assert obj.identifier is not None
    ds = read_identifier(obj.identifier, obj.transfer_syntax)
    uid = ds.get("TransactionUID")
    msg.transaction_uid = str(uid).strip(" \x00") if uid else None
    implicit = obj.transfer_syntax in (None, ImplicitVRLittleEndian)
    little = obj.transfer_syntax != ExplicitVRBigEndian
    referenced = _items(ds, _REFERENCED, little)
    msg.referenced = len(referenced if referenced is not None else ds.get(_REFERENCED) or [])
    for item in _failed(ds, implicit, little):
        reason = _value(item, _REASON)
        code = int(reason) if reason is not None else None
        msg.failed += 1
        msg.reasons[code] = msg.reasons.get(code, 0) + 1
        if len(msg.failed_items) < FAILED_KEPT:  # the UIDs of these only
            msg.failed_items.append((str(_value(item, _CLASS, "")),
                                     str(_value(item, _INSTANCE, "")), code))


_REFERENCED = "ReferencedSOPSequence"
_FAILED = "FailedSOPSequence"
_REASON = Tag("FailureReason")
_CLASS = Tag("ReferencedSOPClassUID")
_INSTANCE = Tag("ReferencedSOPInstanceUID")
_ITEM_TAG = (0xFFFE, 0xE000)
_UNDEFINED = 0xFFFFFFFF


def _items(ds: Dataset, keyword: str, little: bool) -> list[bytes] | None:
    """The items of sequence ``keyword`` as the bytes of each, read from the item headers of
    the sequence's raw value; None where pydicom must read the sequence (its length or an
    item's undefined, already read, or bytes that are not whole items).

    pydicom makes a Dataset of every item, whose making is the cost (a Storage Commitment
    request of 12,003 instances and a result of 12,000 failures: 1.11 s of the capture's
    1.15 s), where this module needs how many items there are and three values of a
    failed one."""
    elem = ds.get_item(keyword)
    if elem is None:
        return []
    if not isinstance(elem, RawDataElement) or elem.length == _UNDEFINED or \
            not isinstance(elem.value, bytes):
        return None
    data, fmt, pos, items = elem.value, "<HHL" if little else ">HHL", 0, []
    while pos < len(data):
        if pos + 8 > len(data):
            return None
        group, element, length = unpack_from(fmt, data, pos)
        if (group, element) != _ITEM_TAG or length == _UNDEFINED or \
                pos + 8 + length > len(data):
            return None
        items.append(data[pos + 8:pos + 8 + length])
        pos += 8 + length
    return items


def _failed(ds: Dataset, implicit: bool, little: bool
            ) -> Iterator[dict[int, RawDataElement | DataElement]]:
    """Failure Reason and the Referenced SOP Class and Instance UIDs of each item of the
    Failed SOP Sequence, unconverted (`_value` converts what is asked for): read by
    pydicom's raw element reader over each item's bytes where `_items` has them, else from
    pydicom's Dataset of each item."""
    items = _items(ds, _FAILED, little)
    if items is None:
        for item in ds.get(_FAILED) or []:
            yield {t: item.get_item(t) for t in _FAILED_READ if t in item}
        return
    for data in items:
        yield {raw.tag: raw for raw in data_element_generator(
            BytesIO(data), implicit, little, specific_tags=_FAILED_TAGS)
            if raw.tag in _FAILED_READ}


_FAILED_TAGS: list[BaseTag | int] = [_REASON, _CLASS, _INSTANCE]
_FAILED_READ = frozenset(_FAILED_TAGS)


def _value(item: dict[int, RawDataElement | DataElement], tag: int, default: Any = None
           ) -> Any:
    """The value of ``tag`` in ``item`` as pydicom converts it (``ds.get(tag)``)."""
    elem = item.get(tag)
    if elem is None:
        return default
    return (convert_raw_data_element(elem) if isinstance(elem, RawDataElement)
            else elem).value


def reason_text(code: int | None) -> str:
    if code is None:
        return "no reason given"
    return f"{FAILURE_REASONS.get(code, 'reason')} (0x{code:04X})"


#: Associations remembered per capture that may have been a result's failed delivery.
DELIVERIES_KEPT = 1000
#: Associations with a result whose request was not seen yet, kept to the capture's end so
#: that the result's operation can point at its request once that is seen.
WAITING_KEPT = 100


@dataclass(frozen=True, slots=True)
class FailedDelivery:
    """An association that could have carried a Storage Commitment result and did not: from
    ``requestor`` to ``acceptor``, opened at ``first_ns``; ``what`` says how it failed."""

    requestor: str
    acceptor: tuple[str, int]
    first_ns: int
    what: str


def failed_delivery(assoc: Association, carried_result: bool) -> FailedDelivery | None:
    """``assoc`` as a failed delivery of a Storage Commitment result: rejected, never
    answered, aborted, or accepted while its Storage Commitment context was rejected or
    while it carried no N-EVENT-REPORT of it; None for any other association."""
    if assoc.requestor is None or assoc.acceptor is None or carried_result:
        return None
    proposed = [c for c in assoc.contexts.values() if c.abstract_syntax == STORAGE_COMMITMENT]
    if not proposed:
        return None  # not one a commitment SCP opened for its result
    if assoc.result == "rejected":
        what = f"rejected ({reject_reason_text(assoc.reject)})"
    elif assoc.result == "no-response":
        what = "never answered"
    elif assoc.result != "accepted":
        return None
    elif not any(c.result == 0 for c in proposed):
        what = "accepted, but its Storage Commitment context was rejected"
    elif assoc.abort is not None:
        what = "aborted before any result was sent"
    else:
        what = "accepted, but no N-EVENT-REPORT was sent on it"
    return FailedDelivery(assoc.requestor[0], assoc.acceptor, assoc.first_ns, what)


@dataclass
class Transaction:
    """A request and the result that answers it (either may be missing from the capture)."""

    request: CommitmentMessage | None = None
    result: CommitmentMessage | None = None

    @property
    def outcome(self) -> str:
        if self.result is not None:
            return "failures" if self.result.failed else "committed"
        if self.request is not None and self.request.op.status_category not in (
                None, "Success", "Warning"):
            return "refused"
        return "unanswered"


class CommitmentLog:
    """A capture's Storage Commitment messages, matched by Transaction UID, and the C-STOREs
    the failed instances are looked up in."""

    def __init__(self, stored: StoredInstances) -> None:
        self.stored = stored
        self.transactions: list[Transaction] = []
        self._open: dict[str | None, Transaction] = {}  # transaction UID -> waiting for a result
        #: transaction UID -> a result whose request's association is still open (it
        #: settles later), or is not in the capture
        self._early: dict[str | None, Transaction] = {}
        #: associations that could have carried a result and did not (the first
        #: DELIVERIES_KEPT)
        self.deliveries: list[FailedDelivery] = []
        #: (stream, op_index) of a result that came before its request was settled -> the
        #: request's: the result's association is kept to the end for this link
        self.late_links: dict[tuple[int, int], tuple[int, int]] = {}

        #: streams of results waiting for their request (at most WAITING_KEPT)
        self._waiting: set[int] = set()

    def waiting(self, stream: int) -> bool:
        """Whether a result on ``stream`` waits for its request (whose association is still
        open, or not in the capture): then that association is kept to the end, the first
        WAITING_KEPT of them (a capture that starts after the requests keeps no more)."""
        return stream in self._waiting

    def add_association(self, assoc: Association, carried_result: bool) -> None:
        """Every settled association, for the results it failed to deliver."""
        found = failed_delivery(assoc, carried_result)
        if found is not None and len(self.deliveries) < DELIVERIES_KEPT:
            self.deliveries.append(found)

    def add(self, msg: CommitmentMessage) -> tuple[int, int] | None:
        """A request or result, in the order the capture settles them. For a result
        whose request came first: the request's (stream, op_index), its operation's
        parent (link ``transaction-uid``)."""
        uid = msg.transaction_uid
        if msg.kind == "request":
            early = self._early.pop(uid) if uid in self._early else None
            if early is not None:  # its result's association ended before this one
                early.request = msg
                assert early.result is not None
                self.late_links[(early.result.stream, early.result.op.op_index)] = (
                    msg.stream, msg.op.op_index)
                return None
            asked = Transaction(request=msg)
            self.transactions.append(asked)
            if uid:
                self._open[uid] = asked
            return None
        t = self._open.pop(uid) if uid in self._open else None
        if t is None or t.request is None:
            alone = Transaction(result=msg)
            self.transactions.append(alone)
            if uid:
                self._early[uid] = alone
                if len(self._waiting) < WAITING_KEPT:
                    self._waiting.add(msg.stream)
            return None
        t.result = msg
        return t.request.stream, t.request.op.op_index

    def findings(self, attempts: list[ConnectionAttempt], owned: set[int],
                 end_ns: int | None) -> list[tuple[int | None, FindingRecord]]:
        """Per transaction (stream of the association it belongs to, finding): results
        with failures, requests accepted with no result in the capture."""
        out: list[tuple[int | None, FindingRecord]] = []
        for t in self.transactions:
            if t.result is not None and t.result.failed:
                out.append((t.result.stream, self._failed(t)))
            elif t.result is None and t.request is not None and t.outcome == "unanswered" \
                    and t.request.transaction_uid:  # else no result could be matched to it
                tried = [a for i, a in enumerate(attempts) if i not in owned
                         and _calls_back(t.request, a)]
                opened = [d for d in self.deliveries if _delivers(t.request, d)]
                out.append((t.request.stream, _unanswered(t.request, tried, opened, end_ns)))
        return out

    def _failed(self, t: Transaction) -> FindingRecord:
        res, req = t.result, t.request
        assert res is not None
        asked = req.referenced if req is not None else res.referenced + res.failed
        scp, scu = res.sender_ae or "the commitment SCP", res.receiver_ae or "the SCU"
        reasons = ", ".join(f"{n} {reason_text(code)}" for code, n in
                            sorted(res.reasons.items(), key=lambda kv: -kv[1]))
        cls, inst, _ = res.failed_items[0] if res.failed_items else ("", "", None)
        sent = self.stored.sent_text(inst) if inst else ""
        example = (f"; e.g. {inst} ({uid_name(cls) or cls or 'class not given'})"
                   + (f": {sent}" if sent else "") if inst else "")
        return FindingRecord(
            res.op.request_index, res.op.first_frame, "error", "commitment-failed",
            f"{scp} did not commit {res.failed} of the {asked} instance(s) {scu} asked it to "
            f"keep (Storage Commitment transaction {res.transaction_uid}): {reasons}{example}; "
            f"{scu} will not treat them as safely archived: send them again, or check why "
            f"{scp} does not hold them")


def _calls_back(req: CommitmentMessage, a: ConnectionAttempt) -> bool:
    """A failed connection from the commitment SCP's host to the SCU's host once it had the
    request: the SCP trying to deliver the result on a new association (Orthanc tries
    before its N-ACTION-RSP is on the wire)."""
    after = req.op.request_complete_ns
    return (req.receiver is not None and req.sender is not None and a.first_ns >= after
            and a.client[0] == req.receiver[0] and a.server[0] == req.sender[0])


def _delivers(req: CommitmentMessage, d: FailedDelivery) -> bool:
    """An association from the commitment SCP's host to the SCU's host once it had the
    request (the port need not be the SCU's own: it listens on another)."""
    return (req.receiver is not None and req.sender is not None
            and d.first_ns >= req.op.request_complete_ns
            and d.requestor == req.receiver[0] and d.acceptor[0] == req.sender[0])


def _unanswered(req: CommitmentMessage, tried: list[ConnectionAttempt],
                opened: list[FailedDelivery], end_ns: int | None) -> FindingRecord:
    scp, scu = req.receiver_ae or "the commitment SCP", req.sender_ae or "the SCU"
    during = until_end_text(req.op, end_ns, "N-ACTION-RSP")
    head = (f"{scu} asked {scp} to commit {req.referenced} instance(s) (Storage Commitment "
            f"transaction {req.transaction_uid}) and {scp} accepted the request, but no result "
            f"(N-EVENT-REPORT) came {during}")
    if opened:
        ways = "; ".join(sorted({f"to {d.acceptor[0]}:{d.acceptor[1]}: {d.what}"
                                  for d in opened}))
        why = (f"; {scp}'s host opened {len(opened)} association(s) to {scu}'s host that "
               f"did not deliver it ({ways}): check that {scu} accepts {scp}'s AE title "
               f"and the Storage Commitment SOP class with the SCP role for {scp}")
    elif tried:
        targets = sorted({f"{a.server[0]}:{a.server[1]}" for a in tried})
        outcomes = sorted({a.outcome for a in tried})
        why = (f"; {scp}'s host tried {len(tried)} time(s) to connect to {scu}'s host at "
               f"{', '.join(targets)} and the connection was {' or '.join(outcomes)}: it "
               f"sends the result on a new association, so check that {scu} accepts "
               f"associations there and that {scp} has its address and port right")
    else:
        why = (f"; the result may still come later, on this association or on one {scp} "
               f"opens to {scu}: if it never does, check that {scp} knows {scu}'s AE title, "
               "address and port, and its log for the transaction")
    return FindingRecord(req.op.request_index, req.op.first_frame, "warning",
                         "commitment-unanswered", head + why)


def link_result(op: OperationRecord, parent: tuple[int, int] | None) -> OperationRecord:
    """A result's operation pointed at its request's (stream, op_index), if given."""
    if parent is not None:
        op.parent_assoc_id, op.parent_op_index = parent
        op.link = "transaction-uid"
    return op


def wait_ms(t: Transaction) -> float | None:
    """From the request's N-ACTION-RQ to the result's N-EVENT-REPORT-RQ (from the request,
    not its response: Orthanc sends the result as it answers)."""
    if t.request is None or t.result is None:
        return None
    return ms_between(t.request.op.request_complete_ns, t.result.op.request_complete_ns)


__all__ = ["COMMITMENT_COMMANDS", "FAILURE_REASONS", "STORAGE_COMMITMENT", "CommitmentLog",
           "CommitmentMessage", "Transaction", "commitment_message", "link_result",
           "reason_text", "wait_ms"]
