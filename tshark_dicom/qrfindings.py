"""Expert rules over finished records: query/retrieve (correlate.py, queries.py), one
finding per C-MOVE, C-GET or C-FIND that went wrong, and the character sets of identifiers
and stored objects' text; each names the AE titles, addresses, UIDs and values, and what to
check. The timing rules are findings.py's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from pydicom.uid import UID

from .association import Association
from .correlate import MoveLinks
from .findings import SLOW_SETUP_ADVICE, SLOW_SETUP_MS
from .queries import (
    QUERY_COMMANDS,
    CharsetNote,
    CharsetProblem,
    ObjectTextTally,
    QueryRecord,
    charset_detail,
)
from .records import (
    CONTEXT_RESULTS,
    REQUESTOR,
    ContextRecord,
    FindingRecord,
    duration_text,
    endpoint_text,
    first_of,
    reject_reason_text,
    uid_name,
)
from .streams import ConnectionAttempt
from .timing import OperationRecord
from .tls import CLEAR_DICOM_PORTS, DICOM_TLS_PORT

_n = duration_text


# ---------------------------------------------------------------------------------------
# Query/retrieve (correlate.py, queries.py): one finding per C-MOVE, C-GET or C-FIND
# that went wrong, naming the AE titles, addresses, UIDs and values, and what to check.
# ---------------------------------------------------------------------------------------
QR_CODES = (
    "move-destination-unknown", "callback-refused", "callback-unanswered", "callback-rejected",
    "callback-missing", "suboperations-failed", "suboperation-counts-mismatch",
    "get-role-not-negotiated", "query-no-match", "query-failed", "query-cancelled",
    "retrieve-cancelled", "identifier-character-set",
)
#: Status 0xA801: Refused: Move Destination unknown (PS3.4 C.4.2.1.5).
MOVE_DESTINATION_UNKNOWN = 0xA801
#: How many UIDs of a Failed SOP Instance UID List a sentence names.
MAX_UIDS_NAMED = 3


@dataclass
class QrContext:
    """What a query/retrieve rule reads about a capture."""

    associations: Sequence[Association]
    links: Sequence[MoveLinks]
    attempts: Sequence[ConnectionAttempt]
    queries: dict[tuple[int, int], QueryRecord]  # (assoc_id, op_index) -> query
    #: the SOP Class UID of an instance a C-STORE of this capture carried (None: unknown)
    sop_class: Callable[[str], str | None] = lambda uid: None

    def ae(self, aid: int, role: str) -> str:
        a = self.associations[aid]
        return (a.calling_ae if role == REQUESTOR else a.called_ae) or f"the {role}"

    def scu(self, aid: int, op: OperationRecord) -> str:
        return self.ae(aid, op.scu)

    def scp(self, aid: int, op: OperationRecord) -> str:
        return self.ae(aid, op.scp)


def _where(ep: tuple[str, int] | None) -> str:
    return "an unknown address" if ep is None else endpoint_text(ep)


def _moves(c: QrContext, command: str = "C-MOVE") -> list[MoveLinks]:
    return [ml for ml in c.links if ml.op.command == command]


def move_destination_unknown(c: QrContext, ml: MoveLinks) -> FindingRecord | None:
    op = ml.op
    if op.status != MOVE_DESTINATION_UNKNOWN:
        return None
    return FindingRecord(op.final_response_index, op.first_frame, "error",
                         "move-destination-unknown", (
        f"{c.scp(ml.assoc_id, op)} answered the C-MOVE from {c.scu(ml.assoc_id, op)} with "
        f"0xA801 (Move Destination unknown): it has no address for the destination AE "
        f"'{op.move_destination}'; add {op.move_destination} (AE title, host and port) to "
        f"{c.scp(ml.assoc_id, op)}'s known destinations, or correct the AE title the SCU "
        "asks for"))


#: Ports registered for DICOM (IANA: dicom 104 and 11112, dicom-iscl 2761, dicom-tls
#: 2762): a failed connection to one of them is taken for a DICOM one.
DICOM_PORTS = frozenset({*CLEAR_DICOM_PORTS, DICOM_TLS_PORT})


def dicom_port(port: int, ports: Sequence[int] = ()) -> bool:
    """A registered DICOM port, or one the user gave (--port)."""
    return port in DICOM_PORTS or port in ports


def unreachable_scps(attempts: Sequence[ConnectionAttempt],
                     services: dict[tuple[str, int], str | None],
                     ports: Sequence[int] = ()) -> list[FindingRecord]:
    """connection-refused / connection-unanswered: connections that never opened (no
    C-MOVE's callback: those have their own finding) to an address and port that served
    DICOM associations in the capture, or to a DICOM port (registered, or given with
    --port). One finding per server, with every client that tried."""
    by_server: dict[tuple[str, int], list[ConnectionAttempt]] = {}
    for t in attempts:
        if t.server in services or dicom_port(t.server[1], ports):
            by_server.setdefault(t.server, []).append(t)
    out = []
    for server, tries in by_server.items():
        refused = [t for t in tries if t.outcome == "refused"]
        group = refused or tries
        clients = sorted({t.client[0] for t in group})
        ae = services.get(server)
        known = (f"{ae} at {_where(server)}" if ae else _where(server)) + (
            ", where DICOM associations were accepted in this capture" if server in services
            else ", a DICOM port")
        n = len(group)
        times = f"{n} times" if n > 1 else "once"
        if refused:
            code, what = "connection-refused", (
                f"the connection was refused (TCP RST) {times}: nothing listened there then; "
                "check that the SCP is running and listens on that port")
        else:
            syns = sum(t.syns for t in tries)
            code, what = "connection-unanswered", (
                f"{times} the connection was never answered ({syns} SYN"
                f"{'s' if syns > 1 else ''} without a reply): the host is down, unreachable, "
                "or a firewall drops the connection")
        out.append(FindingRecord(None, group[0].frame, "error", code, (
            f"{', '.join(clients)} tried to connect to {known}, and {what}")))
    return out


def callback_failed(c: QrContext, ml: MoveLinks) -> FindingRecord | None:
    """callback-refused / callback-unanswered: the archive's connection attempts."""
    if not ml.attempts:
        return None
    tries = [c.attempts[i] for i in ml.attempts]
    refused = [t for t in tries if t.outcome == "refused"]
    op = ml.op
    group = refused or tries
    first = group[0]
    targets = sorted({_where(t.server) for t in group})
    source = first.client[0]
    if refused:
        code, what = "callback-refused", (
            "was refused (TCP RST) "
            + (f"{len(refused)} times" if len(refused) > 1 else "once") + ": "
            "nothing listens there")
    else:
        syns = sum(t.syns for t in tries)
        code, what = "callback-unanswered", (
            f"was never answered ({syns} SYN{'s' if syns > 1 else ''} without a reply): the "
            "host is down, unreachable, or a firewall drops the connection")
    return FindingRecord(op.request_index, first.frame, "error", code, (
        f"{c.scp(ml.assoc_id, op)} ({source}) tried to open the callback to "
        f"{op.move_destination} at {', '.join(targets)} for the C-MOVE from "
        f"{c.scu(ml.assoc_id, op)}, and the connection {what}; check that "
        f"{op.move_destination} is running and that {c.scp(ml.assoc_id, op)}'s entry for it "
        "has the right host and port"))


def callback_rejected(c: QrContext, ml: MoveLinks) -> list[tuple[int, FindingRecord]]:
    """On each rejected callback association of the C-MOVE: (its assoc_id, finding)."""
    out = []
    for aid in ml.callbacks:
        cb = c.associations[aid]
        if cb.result != "rejected":
            continue
        why = reject_reason_text(cb.reject)
        out.append((aid, FindingRecord(None, cb.reject_frame or cb.first_frame, "error",
                                       "callback-rejected", (
            f"{cb.called_ae or ml.op.move_destination} ({_where(cb.acceptor)}) rejected the "
            f"callback association from {cb.calling_ae or 'the archive'} "
            f"({_where(cb.requestor)}) for the C-MOVE from {c.scu(ml.assoc_id, ml.op)}: {why}; "
            f"the destination must accept {cb.calling_ae or 'the archive'} as calling AE and "
            f"{cb.called_ae or ml.op.move_destination} as called AE"))))
    return out


def callback_missing(c: QrContext, ml: MoveLinks) -> FindingRecord | None:
    op = ml.op
    attempted = sum(n or 0 for n in (op.completed, op.failed, op.warning))
    if ml.callbacks or ml.attempts or ml.uncertain or not attempted:
        return None
    return FindingRecord(op.final_response_index, op.first_frame, "warning",
                         "callback-missing", (
        f"{c.scp(ml.assoc_id, op)} reports {attempted} sub-operation"
        f"{'s' if attempted > 1 else ''} for the C-MOVE from {c.scu(ml.assoc_id, op)} to "
        f"{op.move_destination}, but no association or connection attempt to "
        f"{op.move_destination} is in the capture: the capture point may not see the path "
        f"from {c.scp(ml.assoc_id, op)} to {op.move_destination} (capture there, or on the "
        "archive)"))


def suboperations_failed(c: QrContext, ml: MoveLinks) -> FindingRecord | None:
    op = ml.op
    if not op.failed and not op.suboperations_failed:
        return None
    statuses: dict[str, int] = {}
    for _, s in ml.stores:
        if s.status_category in ("Failure", "Warning") and s.status_hex:
            statuses[s.status_hex] = statuses.get(s.status_hex, 0) + 1
    seen = ", ".join(f"{n} x {h}" for h, n in sorted(statuses.items()))
    q = c.queries.get((ml.assoc_id, op.op_index))
    uids = q.failed_sop_instances if q else []
    named = first_of(uids, MAX_UIDS_NAMED)
    where = (f" to {op.move_destination}" if op.command == "C-MOVE" else "")
    if statuses:
        advice = "check the destination's log for why it refused those objects"
    elif op.command == "C-GET":
        advice = _get_unsent(c, ml)
    elif not ml.stores and (ml.callbacks or ml.attempts):
        advice = _move_unsent(c, ml, uids)
    else:
        advice = "check the archive's and the destination's logs"
    return FindingRecord(op.final_response_index, op.first_frame, "error",
                         "suboperations-failed", (
        f"{op.failed if op.failed is not None else op.suboperations_failed} sub-operation"
        f"{'s' if (op.failed or 0) != 1 else ''} of the {op.command} from "
        f"{c.scu(ml.assoc_id, op)}{where} failed (final status {op.status_hex or 'unknown'}"
        + (f"; the C-STOREs seen answered {seen}" if seen else "")
        + (f"; Failed SOP Instance UID List: {named}" if named else "")
        + f"): {advice}"))


def _move_unsent(c: QrContext, ml: MoveLinks, uids: list[str]) -> str:
    """Why a C-MOVE's failed sub-operations never came as C-STOREs on its callback, from
    what the callback negotiated: the destination rejected the SOP class of the failed
    instances (their class known from a C-STORE of them in this capture), or took only a
    few of those proposed; else the callback's own findings say (refused, rejected)."""
    never = ("they were never sent: the objects could not reach the destination (see the "
             "callback findings)")
    rejected: dict[str, int] = {}  # abstract syntax -> result, where never accepted
    accepted: list[str] = []
    destination = ""
    for aid in ml.callbacks:
        cb = c.associations[aid]
        destination = destination or cb.called_ae or ""
        for ctx in cb.contexts.values():
            if ctx.abstract_syntax and ctx.result == 0:
                accepted.append(ctx.abstract_syntax)
            elif ctx.abstract_syntax and ctx.result is not None:
                rejected.setdefault(ctx.abstract_syntax, ctx.result)
    for uid in accepted:
        rejected.pop(uid, None)
    if not rejected:
        return never
    who = destination or "the destination"
    classes = [k for k in dict.fromkeys(c.sop_class(u) for u in uids) if k]
    refused = [k for k in classes if k in rejected]
    if refused:
        names = ", ".join(str(uid_name(k) or k) for k in refused)
        why = CONTEXT_RESULTS.get(rejected[refused[0]], f"result {rejected[refused[0]]}")
        return (f"they were never sent: {who} rejected {names} on the callback ({why}), the "
                f"SOP class of the failed instance{'s' if len(uids) != 1 else ''} (a C-STORE "
                f"of {'them' if len(uids) != 1 else 'it'} is in this capture): the destination "
                f"does not take it; have {who} accept {names}, or retrieve to a destination "
                "that does")
    took = list(dict.fromkeys(str(uid_name(k) or k) for k in accepted))
    return (f"{never}; {who} accepted " + (first_of(took, MAX_UIDS_NAMED) if took else "none")
            + f" of the SOP classes proposed on the callback and rejected {len(rejected)}: an "
            "object of a rejected class cannot be sent to it")


def suboperation_counts_mismatch(c: QrContext, ml: MoveLinks) -> FindingRecord | None:
    op = ml.op
    if op.status_category not in ("Success", "Warning", "Failure") or not (
            ml.callbacks or ml.op.command == "C-GET"):
        return None
    if op.completed is None and op.failed is None:
        return None
    claimed = sum(n or 0 for n in (op.completed, op.failed, op.warning))
    seen = op.suboperations_seen or 0
    seen_failed = sum(s.status_category == "Failure" for _, s in ml.stores)
    # failed sub-operations may never have been sent (callback refused, no role): only
    # successes not seen, or more failures seen than counted, disagree
    if seen - seen_failed == (op.completed or 0) + (op.warning or 0) and \
            seen_failed <= (op.failed or 0):
        return None
    return FindingRecord(op.final_response_index, op.first_frame, "warning",
                         "suboperation-counts-mismatch", (
        f"the final {op.command}-RSP from {c.scp(ml.assoc_id, op)} counts {claimed} "
        f"sub-operations ({op.completed or 0} completed, {op.failed or 0} failed, "
        f"{op.warning or 0} warning) but the capture holds {seen} C-STORE"
        f"{'s' if seen != 1 else ''} for it: some sub-operations are not in the capture, or "
        "the SCP counts wrongly"))


def _get_unsent(c: QrContext, ml: MoveLinks) -> str:
    """Why a C-GET's failed sub-operations never came as C-STOREs, from what the
    association negotiated: no storage context with the SCP role for the SCU (its own
    finding), else an object of another SOP class or held in a transfer syntax the SCU did
    not propose and the SCP could not convert (the SCP's log says which)."""
    op = ml.op
    scu, scp = c.scu(ml.assoc_id, op), c.scp(ml.assoc_id, op)
    one = op.failed == 1
    storage = [ctx for ctx in _storage_contexts(c.associations[ml.assoc_id])
               if ctx.scp_role_accepted]
    if not storage:
        return (f"{'it was' if one else 'they were'} never sent: no storage SOP class is "
                f"accepted with the SCP role for {scu} on this association (see "
                "get-role-not-negotiated)")
    classes = list(dict.fromkeys(str(uid_name(ctx.abstract_syntax) or ctx.abstract_syntax)
                                 for ctx in storage))
    named = " and ".join(classes) if len(classes) <= 2 else f"{len(classes)} storage SOP classes"
    proposed = list(dict.fromkeys(ts for ctx in storage for ts in ctx.proposed_transfer_syntaxes))
    it, its = ("it", "its") if one else ("them", "their")
    text = (f"{scp} sent no C-STORE for {it}, though {named} "
            f"{'is' if len(classes) == 1 else 'are'} accepted with the SCP role for {scu}: "
            f"either {its} SOP class is not among {'it' if len(classes) == 1 else 'those'}, or "
            f"{scp} holds {it} in a transfer syntax {scu} did not propose and could not "
            f"convert {it}")
    if proposed and not any(UID(ts).is_compressed for ts in proposed):
        names = ", ".join(str(uid_name(ts) or ts) for ts in proposed)
        text += (f" ({scu} proposed only uncompressed transfer syntaxes: {names}; an object "
                 "stored compressed, as JPEG, JPEG 2000 or RLE, comes back only if the archive "
                 "decompresses it)")
    return text + f"; {scp}'s log names which"


def _storage_contexts(a: Association) -> list[ContextRecord]:
    """The accepted presentation contexts of storage SOP classes."""
    return [ctx for ctx in a.contexts.values() if ctx.result == 0 and ctx.abstract_syntax
            and ctx.abstract_syntax.startswith("1.2.840.10008.5.1.4.1.1.")]


def get_role_not_negotiated(c: QrContext, ml: MoveLinks) -> FindingRecord | None:
    a = c.associations[ml.assoc_id]
    storage = _storage_contexts(a)
    if any(ctx.scp_role_accepted for ctx in storage):
        return None
    op = ml.op
    what = ("proposed no storage SOP class at all" if not storage else
            f"proposed {len(storage)} storage SOP class{'es' if len(storage) > 1 else ''} "
            "without SCP/SCU role selection giving the SCU the SCP role")
    outcome = f"; final status {op.status_hex}" if op.status_hex else ""
    return FindingRecord(op.request_index, op.first_frame, "error", "get-role-not-negotiated", (
        f"{c.scu(ml.assoc_id, op)}'s C-GET to {c.scp(ml.assoc_id, op)} {what} (PS3.7 D.3.3.4), "
        f"so {c.scp(ml.assoc_id, op)} cannot send the objects back on this association"
        f"{outcome}; propose each storage SOP class with role selection (SCP role) on the "
        "C-GET association"))


def query_findings(c: QrContext, aid: int, q: QueryRecord,
                   op: OperationRecord) -> FindingRecord | None:
    # a worklist query has no Query/Retrieve Level: its information model says what it is
    what = (f"{q.query_level} level" if q.query_level else
            q.information_model or "no level")
    keys = ", ".join(q.matching_keys) or "no matching key"
    if q.command == "C-FIND" and q.status_category == "Failure":
        return FindingRecord(op.final_response_index, op.first_frame, "error", "query-failed", (
            f"{c.scp(aid, op)} answered the C-FIND from {c.scu(aid, op)} ({what}, {keys})"
            f" with {q.status_hex} ({op.status_text or 'failure'})"
            + (f": {op.error_comment}" if op.error_comment else "")))
    if q.diagnosis is None:
        return None
    return FindingRecord(op.request_index, op.first_frame, "warning", "query-no-match", (
        f"the C-FIND from {c.scu(aid, op)} to {c.scp(aid, op)} ({what}, {keys}) "
        f"matched nothing; likely reason: {q.diagnosis} ({q.diagnosis_detail})"))


class CharsetTally:
    """identifier-character-set (a warning), one association's: identifiers whose text
    bytes their Specific Character Set (0008,0005) does not account for (queries.Text), at
    most one finding for the requestor's requests and one for the acceptor's answers, each
    naming the first and counting the rest. A request whose C-FIND matched nothing for it
    is its query-no-match finding's instead (diagnosis character-set)."""

    def __init__(self) -> None:
        #: the first such request and answer: (the key, its query, its operation)
        self.request: tuple[CharsetNote, QueryRecord, OperationRecord] | None = None
        self.request_count = 0
        self.response: tuple[CharsetNote, QueryRecord, OperationRecord] | None = None
        self.response_count = 0

    def add(self, q: QueryRecord, op: OperationRecord) -> None:
        if q.request_charset is not None and q.diagnosis != "character-set":
            self.request_count += 1
            self.request = self.request or (q.request_charset, q, op)
        if q.response_charset is not None:
            self.response_count += q.responses_with_charset_problem
            self.response = self.response or (q.response_charset, q, op)

    def findings(self, c: QrContext, aid: int) -> list[FindingRecord]:
        out = []
        if self.request is not None:
            note, q, op = self.request
            scu, scp = c.scu(aid, op), c.scp(aid, op)
            n = self.request_count
            answered = (f"{scp} matched it nonetheless ({q.matches} match"
                        f"{'es' if q.matches != 1 else ''}), reading the bytes its own way: an "
                        "SCP that reads them otherwise finds nothing, or other records"
                        if q.matches else f"{scp} answered {q.status_hex or 'nothing'}")
            out.append(FindingRecord(op.request_index, op.first_frame, "warning",
                                     "identifier-character-set", (
                f"{scu} sent {n} {q.command} request{'s' if n > 1 else ''} whose identifier "
                "holds text its Specific Character Set does not account for; the first, "
                f"{q.command}-RQ {op.message_id}: "
                f"{charset_detail(note.name, note.vr, note.text, note.problem, scp)}; "
                f"{answered}")))
        if self.response is not None:
            note, q, op = self.response
            scu, scp = c.scu(aid, op), c.scp(aid, op)
            n = self.response_count
            index = (op.response_indices[note.response_number - 1]
                     if 0 < note.response_number <= len(op.response_indices) else None)
            out.append(FindingRecord(index, op.first_frame, "warning",
                                     "identifier-character-set", (
                f"{scp} answered with {n} identifier{'s' if n > 1 else ''} holding text "
                "their Specific Character Set does not account for; the first, response "
                f"{note.response_number} to {scu}'s {q.command}-RQ {op.message_id}: "
                f"{charset_detail(note.name, note.vr, note.text, note.problem, scu)}; "
                f"{scu} shows and stores such values as it reads them, not as {scp} "
                "holds them")))
        return out


def object_charset_findings(assoc: Association, tally: ObjectTextTally,
                            ops: Iterable[OperationRecord]) -> list[FindingRecord]:
    """``object-character-set`` (warning): a sender's stored objects hold text (a patient's
    or physician's name, a description) that their Specific Character Set (0008,0005) does
    not account for, so the receiver stores and shows it as it guesses; one per association
    and sender, naming the first. The value is not quoted: no table holds it, so --redact
    would not know to replace it."""
    if not tally.first:
        return []
    wanted = {o.msg_index for o, *_ in tally.first.values()}
    found = {op.request_index: op for op in ops if op.request_index in wanted}
    out = []
    for sender, (o, keyword, _, problem) in tally.first.items():
        n = tally.count[sender]
        src, dst = (assoc.calling_ae, assoc.called_ae) if sender == REQUESTOR else \
            (assoc.called_ae, assoc.calling_ae)
        src, dst = src or f"the {sender}", dst or "the receiver"
        op = found.get(o.msg_index)
        which = f"C-STORE-RQ {op.message_id}" if op is not None and op.message_id is not None \
            else "a C-STORE-RQ"
        out.append(FindingRecord(
            o.msg_index, op.first_frame if op is not None else None, "warning",
            "object-character-set",
            f"{src} sent {n} object{'s' if n != 1 else ''} to {dst} holding text that the "
            f"Specific Character Set (0008,0005) does not account for; the first, {which} "
            f"({o.sop_instance_uid or 'no UID'}): {_object_text(keyword, problem, dst)}"))
    return out


def _object_text(keyword: str, problem: CharsetProblem, reader: str) -> str:
    utf8 = " (they are UTF-8)" if problem.other_reading else ""
    if problem.kind == "undeclared":
        return (f"{keyword} has bytes beyond ASCII{utf8} and the data set declares no "
                "Specific Character Set: the default repertoire is ASCII (PS3.5 6.1.2.1), so "
                f"{reader} reads those bytes as it guesses, and stores and shows them so "
                "(archives guess differently); declare the set the sender writes (ISO_IR 192 "
                "for UTF-8)")
    if problem.kind == "utf-8-declared-otherwise":
        return (f"{keyword}'s bytes are UTF-8, but the data set declares {problem.declared}: "
                f"{reader} reads them as {problem.declared} (a \u00fc becomes \u00c3\u00bc) "
                f"and stores and shows them so; declare ISO_IR 192, or encode the value in "
                f"{problem.declared}")
    return (f"{keyword}'s bytes are not text in the Specific Character Set the data set "
            f"declares ({problem.declared}){utf8}: {reader} reads them as best it can")


def operation_cancelled(c: QrContext, aid: int, op: OperationRecord,
                        q: QueryRecord | None) -> FindingRecord | None:
    """query-cancelled (a note) / retrieve-cancelled (a warning): a C-FIND, C-MOVE or
    C-GET that its SCP ended with status Cancel (0xFE00), most often because the SCU sent a
    C-CANCEL-RQ while it ran. The SCU's list of matches, or the objects at the destination,
    are then only part of the answer. A C-CANCEL-RQ that comes after the final response (too
    late to stop anything), or one the SCP did not act on, says nothing here."""
    # the queries' services are those a C-CANCEL-RQ applies to (PS3.7 9.3.2.3, 9.3.3.3, 9.3.4.3)
    if op.command not in QUERY_COMMANDS or op.status_category != "Cancel":
        return None
    scu, scp = c.scu(aid, op), c.scp(aid, op)
    what = _query_words(q)
    index: int | None
    frame: int | None
    if op.cancel_index is not None and op.cancel_ns is not None:
        after = (op.cancel_ns - op.request_complete_ns) / 1e6
        how = (f"{scu} cancelled its {op.command}{what} to {scp} {_n(max(after, 0.0))} after "
               f"sending it (C-CANCEL-RQ), and {scp} stopped")
        why = (f"a C-CANCEL comes from {scu} itself: "
               + ("a limit on results, a timeout, or its user" if op.command == "C-FIND"
                  else "a timeout, or its user"))
        index, frame = op.cancel_index, op.cancel_frame
    else:
        how = (f"{scp} ended the {op.command}{what} from {scu} with Cancel, though the "
               f"capture holds no C-CANCEL-RQ from {scu} for it")
        why = f"{scp}'s log says why it stopped"
        index, frame = op.final_response_index, op.first_frame
    if op.command == "C-FIND":
        matches = op.pending_responses  # each pending C-FIND-RSP carries one match
        return FindingRecord(index, frame, "note", "query-cancelled", (
            f"{how} (0xFE00) after {matches} match{'es' if matches != 1 else ''}: {scu} has "
            + ("only that one" if matches == 1 else "none" if not matches else "only those")
            + f", not every record that matches; {why}"))
    done = ", ".join(f"{n} {k}" for k, n in (("completed", op.completed),
                                              ("failed", op.failed), ("warning", op.warning))
                     if n is not None)
    dest = op.move_destination if op.command == "C-MOVE" else scu
    if op.remaining:
        missing = (f"{dest} did not get the {op.remaining} object"
                   f"{'s' if op.remaining != 1 else ''} still to send")
    else:
        missing = f"{dest} may not have every object asked for"
    return FindingRecord(index, frame, "warning", "retrieve-cancelled", (
        f"{how} (0xFE00)" + (f" with {done}" if done else "") + f": {missing}; {why}; "
        f"retrieve again what is missing"))


def _query_words(q: QueryRecord | None) -> str:
    """`` (STUDY level, StudyInstanceUID=...)``: a query's level and matching keys."""
    if q is None:
        return ""
    level = f"{q.query_level} level" if q.query_level else q.information_model
    parts = [p for p in (level, ", ".join(q.matching_keys)) if p]
    return f" ({', '.join(parts)})" if parts else ""


MOVE_RULES: tuple[Callable[[QrContext, MoveLinks], FindingRecord | None], ...] = (
    move_destination_unknown, callback_failed, callback_missing, suboperations_failed,
    suboperation_counts_mismatch,
)


#: How many rejected SOP classes a callback's summary names.
REJECTED_NAMED = 3


def unneeded_callback_rejections(c: QrContext, ml: MoveLinks) -> None:
    """A C-MOVE that completed every sub-operation (or every one it did before it was
    cancelled): the contexts its destination rejected on the callback were not needed (an
    archive proposes every storage SOP class it might send, dcmqrscp some 14 retired ones a
    storage SCP seldom takes). Their warnings, one a context, become one note on the
    callback that says so; where a sub-operation failed, or on any other association, each
    rejection stays a warning (a storage SCU may skip a file it has no context for and still
    release normally)."""
    op = ml.op
    if op.status_category not in ("Success", "Cancel") or op.failed != 0 or not op.completed:
        return
    done = (f"{op.completed} sub-operation{'s' if op.completed != 1 else ''} all completed"
            if op.status_category == "Success" else
            f"{op.completed} sub-operation{'s' if op.completed != 1 else ''} done before it "
            f"was cancelled all completed" + (
                f" (the {op.remaining} never started may have needed one)"
                if op.remaining else ""))
    for aid in ml.callbacks:
        if aid not in ml.uncertain:
            cb = c.associations[aid]
            _fold_rejections(c, ml, cb, list(cb.rejections), False, f"the C-MOVE's {done}")


def rejections_beside_the_failed(c: QrContext, ml: MoveLinks) -> None:
    """A C-MOVE that lost sub-operations whose failed instances' SOP classes are all known
    (a C-STORE of each in the capture): on its callbacks, the rejected contexts of those
    classes are why (their warnings stay, and `suboperations_failed` names them); those of
    every other class were not needed, and become one note, as on a callback that lost
    nothing (`unneeded_callback_rejections`)."""
    op = ml.op
    q = c.queries.get((ml.assoc_id, op.op_index))
    uids = q.failed_sop_instances if q else []
    if not (op.failed or op.suboperations_failed) or not uids:
        return
    classes = {c.sop_class(u) for u in uids}
    if None in classes:
        return
    for aid in ml.callbacks:
        if aid in ml.uncertain:
            continue
        cb = c.associations[aid]
        others = [cid for cid, ctx in cb.contexts.items()
                  if ctx.result not in (None, 0) and ctx.abstract_syntax not in classes]
        if sum(cid in cb.rejections for cid in others) < 2:  # one stays: nothing to fold
            continue
        wanted = ", ".join(sorted(str(uid_name(k) or k) for k in classes if k))
        refused = any(ctx.result not in (None, 0) and ctx.abstract_syntax in classes
                      for ctx in cb.contexts.values())
        _fold_rejections(c, ml, cb, others, refused, (
            f"the failed instance{'s are' if len(uids) != 1 else ' is'} of {wanted}, "
            + ("whose rejection is the warning that stays" if refused else
               "which it accepted (see suboperations-failed for why they failed)")))


def _fold_rejections(c: QrContext, ml: MoveLinks, cb: Association, cids: list[int],
                     more: bool, why: str) -> None:
    """The context-rejected warnings of contexts ``cids`` of callback ``cb`` made one note
    that names their SOP classes and says ``why`` none was needed (``more``: beside a
    rejection that stays a warning)."""
    folded = [cb.rejections[cid] for cid in sorted(cids) if cid in cb.rejections]
    if not folded:
        return
    gone = {id(f) for f in folded}
    cb.findings[:] = [f for f in cb.findings if id(f) not in gone]
    names = list(dict.fromkeys(
        str(uid_name(cb.contexts[cid].abstract_syntax) or cb.contexts[cid].abstract_syntax)
        for cid in sorted(cids)))
    cb.findings.append(FindingRecord(None, folded[0].frame, "note", "context-rejected", (
        f"{cb.called_ae or 'the destination'} rejected {len(folded)} {'more ' if more else ''}"
        f"of the {len(cb.contexts)} presentation contexts {cb.calling_ae or 'the archive'} "
        f"proposed on the callback of the C-MOVE from {c.scu(ml.assoc_id, ml.op)} "
        f"({first_of(names, REJECTED_NAMED)}); none was needed: {why}")))


def _to_own_scu(callback: Association, mover: Association) -> bool:
    """The callback goes back to the C-MOVE's own SCU: to its host, and to its AE title."""
    return bool(mover.calling_ae) and callback.called_ae == mover.calling_ae \
        and callback.acceptor is not None and mover.requestor is not None \
        and callback.acceptor[0] == mover.requestor[0]


def late_own_callback(c: QrContext, ml: MoveLinks) -> None:
    """A C-MOVE whose destination is its own SCU (the callback association goes back to the
    SCU's host, to the SCU's own AE title) and whose callback was answered late: the SCU
    was waiting for the C-MOVE-RSP and took the callback only between those waits (dcmtk's
    movescu looks about once a second), not a slow SCP as slow-association-setup supposes
    of any association. Its advice on the callback is made to say so."""
    mover = c.associations[ml.assoc_id]
    for aid in ml.callbacks:
        cb = c.associations[aid]
        if not _to_own_scu(cb, mover):
            continue
        for f in cb.findings:
            if f.code == "slow-association-setup" and f.summary.endswith(SLOW_SETUP_ADVICE):
                f.summary = f.summary.removesuffix(SLOW_SETUP_ADVICE) + (
                    f"{cb.called_ae} is the C-MOVE's own SCU (it asked "
                    f"{c.scp(ml.assoc_id, ml.op)} to move to itself) and was waiting for the "
                    "C-MOVE-RSP: an SCU that takes its callback association only between those "
                    "waits answers it late (dcmtk's movescu looks about once a second), on "
                    "every C-MOVE; a destination that listens all the time (a storage SCP of its "
                    "own, or the SCU on a thread of its own) does not")


def callback_wait_in_detail(c: QrContext, ml: MoveLinks) -> None:
    """A C-MOVE held up by its destination accepting the callback late: the operation's
    bottleneck_detail (the SCP's time, which includes it) says how much of it that was, and
    whom it waited for, so that the summary's slowest C-MOVE does not read as a slow
    archive alone."""
    op = ml.op
    if op.bottleneck != "scp" or not op.bottleneck_detail:
        return
    waits = []
    for aid in ml.callbacks:
        cb = c.associations[aid]
        if cb.requested_ns is not None and cb.responded_ns is not None:
            ms = (cb.responded_ns - cb.requested_ns) / 1e6
            if ms >= SLOW_SETUP_MS:
                waits.append((ms, aid))
    if not waits:
        return
    ms, aid = max(waits)
    cb = c.associations[aid]
    own = " (the C-MOVE's own SCU)" if _to_own_scu(cb, c.associations[ml.assoc_id]) else ""
    op.bottleneck_detail += (f"; {_n(ms)} of the wait was {cb.called_ae or 'the destination'}"
                             f"{own} answering the callback's A-ASSOCIATE-RQ")


def qr_findings(c: QrContext) -> list[tuple[int, FindingRecord]]:
    """Every C-MOVE and C-GET rule, across the capture's associations; (assoc_id,
    finding). The C-FIND rule (`query_findings`) needs one association only: analysis.py
    runs it as each association ends."""
    out: list[tuple[int, FindingRecord]] = []
    for ml in c.links:
        if ml.op.command == "C-MOVE":
            late_own_callback(c, ml)
            callback_wait_in_detail(c, ml)
            unneeded_callback_rejections(c, ml)
            rejections_beside_the_failed(c, ml)
            out.extend((ml.assoc_id, f) for rule in MOVE_RULES
                       if (f := rule(c, ml)) is not None)
            out.extend(callback_rejected(c, ml))
        else:
            for get_rule in (get_role_not_negotiated, suboperations_failed,
                             suboperation_counts_mismatch):
                f = get_rule(c, ml)
                if f is not None:
                    out.append((ml.assoc_id, f))
    return out
