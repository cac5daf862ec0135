"""One TCP connection's DICOM association: PDU events -> association, context, message,
object and finding records (PS3.8 7 and 9; PS3.7 9-10).

`Association` is both the `streams.SinkFactory` of its connection (a `pdu.PduParser` per
direction) and the owner of each direction's `messages.MessageAssembler`. Data set bytes go
to sinks made by a `DatasetSinkFactory` the caller provides (objects.py), so this stage never
looks ahead to how objects are stored. What it hands on (the records, the sinks' protocols,
the codes in words) is records.py; the findings it writes as it goes, and their leads, are
its base `assocfindings.AssociationFindings`.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar

from pydicom.uid import RE_VALID_UID

from .assocfindings import AssociationFindings, message_name
from .dimse import status_category, status_text
from .messages import Message, MessageAssembler
from .packets import Packet
from .pdu import (
    A_ABORT,
    A_ASSOCIATE_AC,
    A_ASSOCIATE_RJ,
    A_ASSOCIATE_RQ,
    A_RELEASE_RP,
    A_RELEASE_RQ,
    P_DATA_TF,
    PDU_NAMES,
    ControlPdu,
    PduParser,
    PdvHeader,
    ae_title_problem,
)
from .records import (
    ACCEPTOR,
    CONTEXT_RESULTS,
    REQUESTOR,
    ContextRecord,
    DatasetSinkFactory,
    DatasetSinkLike,
    FindingRecord,
    Identity,
    MessageRecord,
    ObjectRecord,
    TransferSyntaxGuesser,
    endpoint_text,
    other_role,
    uid_name,
)
from .streams import StreamSink
from .tls import DICOM_TLS_PORT

MAX_GAP_FINDINGS = 20
#: Finished messages an association holds before it asks to be drained (`on_settle`).
SETTLE_AT = 1024
#: Answered requests remembered for a late C-CANCEL-RQ or a repeated response (PS3.7 9.3.2.3).
ANSWERED_KEPT = 1024
#: Requests kept waiting behind an unanswered one with their Message ID (`Association._queued`),
#: per ID: an SCU reusing one ID for more outstanding requests than this is hostile traffic
QUEUED_KEPT = 1024
_VALID_UID = re.compile(RE_VALID_UID)


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    text = str(value).strip(" \x00")
    return text or None


# ---------------------------------------------------------------------------------------
class _Direction:
    """The `pdu.UpperLayerSink` of one direction; forwards to its association with the
    direction's endpoint attached."""

    __slots__ = ("assoc", "endpoint", "peer", "assembler", "parser", "ended_how", "ended_ns",
                 "over_max_reported")

    def __init__(self, assoc: Association, endpoint: tuple[str, int], peer: tuple[str, int]):
        self.assoc = assoc
        self.endpoint = endpoint
        self.peer = peer
        self.assembler: MessageAssembler | None = None
        self.parser = PduParser(self)
        self.ended_how: str | None = None
        self.ended_ns = 0
        self.over_max_reported = False

    @property
    def role(self) -> str:
        return self.assoc.role_of(self.endpoint)

    def _asm(self) -> MessageAssembler:
        if self.assembler is None:
            self.assembler = MessageAssembler(self.assoc, self.role)
            self.parser.data_sink = self.assembler  # PDV bytes go to it directly (hot path)
        return self.assembler

    def pdu_start(self, pdu_type: int, length: int, frame: int, time_ns: int) -> None:
        self.assoc.on_pdu_start(self, pdu_type, length, frame, time_ns)

    def control_pdu(self, pdu: ControlPdu) -> None:
        self.assoc.on_control(self, pdu)

    def pdv_start(self, pdv: PdvHeader) -> None:
        self._asm().pdv_start(pdv)

    def pdv_data(self, chunk: memoryview, frame: int, time_ns: int) -> None:
        if self.assembler is not None:
            self.assembler.pdv_data(chunk, frame, time_ns)

    def pdv_end(self, frame: int, time_ns: int) -> None:
        if self.assembler is not None:
            self.assembler.pdv_end(frame, time_ns)

    def lost(self, nbytes: int, where: str, cause: str, frame: int, time_ns: int) -> None:
        self.assoc.on_lost(self, nbytes, cause, frame)
        if self.assembler is not None:
            self.assembler.lost(nbytes, where, cause, frame, time_ns)

    def malformed(self, text: str, frame: int, time_ns: int) -> None:
        self.assoc.on_malformed(self, text, frame)

    def resynced(self, pdu_name: str, skipped: int, frame: int, time_ns: int) -> None:
        self.assoc.finding(
            "note", "pdu-resync",
            f"{self.role} stream resynchronised on a {pdu_name} header after {skipped} "
            "unreadable bytes", frame,
        )

    def end(self, how: str, frame: int, time_ns: int) -> None:
        self.ended_how, self.ended_ns = how, time_ns


class Association(AssociationFindings):
    """The DICOM state of one TCP connection (one association, PS3.8 9.1)."""

    #: whether its bytes crossed the network encrypted (DICOM over TLS, `TlsAssociation`)
    ENCRYPTED: ClassVar[bool] = False

    def __init__(self, stream: int, *, ports: frozenset[int],
                 dataset_sink: DatasetSinkFactory,
                 guess_transfer_syntax: TransferSyntaxGuesser,
                 tls_ports: frozenset[int] = frozenset({DICOM_TLS_PORT})) -> None:
        self.stream = stream
        self.ports = ports
        #: DICOM TLS ports (2762, --tls-port): an SCP there expects TLS (`finish`)
        self.tls_ports = tls_ports
        self._dataset_sink = dataset_sink
        self._guess_ts = guess_transfer_syntax
        self.directions: dict[tuple[str, int], _Direction] = {}
        self.requestor: tuple[str, int] | None = None
        self.acceptor: tuple[str, int] | None = None
        self.syn_client: tuple[str, int] | None = None
        self.saw_rq = False
        self.valid_pdus = 0
        self.bad_first_pdu = False
        self.port_hinted = False
        self.first_frame = 0
        self.first_ns = 0
        self.last_frame = 0
        self.last_ns = 0
        # association fields
        self.calling_ae: str | None = None
        self.called_ae: str | None = None
        self.application_context: str | None = None
        self.requested_ns: int | None = None
        self.requested_frame: int | None = None
        self.responded_ns: int | None = None
        self.ended_ns: int | None = None
        self.result: str | None = None
        self.reject: tuple[int, int, int] | None = None
        self.abort: tuple[int, int] | None = None
        self.reject_frame: int | None = None
        self.abort_sender: str | None = None
        self.abort_frame: int | None = None
        self.abort_ns: int | None = None
        self.release_rq = False
        self.release_rq_ns: int | None = None
        self.release_rp = False
        self.max_pdu: dict[str, int | None] = {REQUESTOR: None, ACCEPTOR: None}
        self.impl_uid: dict[str, str | None] = {REQUESTOR: None, ACCEPTOR: None}
        self.impl_version: dict[str, str | None] = {REQUESTOR: None, ACCEPTOR: None}
        self.async_window: dict[str, tuple[int, int] | None] = {REQUESTOR: None, ACCEPTOR: None}
        self.user_identity_type: int | None = None
        self.user_identity_user: str | None = None
        self.user_identity_response: bool | None = None
        #: the A-ASSOCIATE-AC's frame when it had no User Identity response though the
        #: requestor asked for one
        self._identity_unconfirmed: int | None = None
        self.pdus: dict[str, dict[str, int]] = {REQUESTOR: {}, ACCEPTOR: {}}
        self.contexts: dict[int, ContextRecord] = {}
        self._context_order: list[int] = []
        # outputs
        self.messages: list[MessageRecord] = []
        self.objects: list[ObjectRecord] = []
        #: objects whose sha256 a hashing helper was still making (`_object_done`): asked
        #: for in `drain`, when it has long caught up, instead of waiting for each
        self._digests: list[tuple[ObjectRecord, DatasetSinkLike]] = []
        self.findings: list[FindingRecord] = []
        #: context id -> its context-rejected warning (qrfindings folds those a C-MOVE's
        #: callback did not need into one note)
        self.rejections: dict[int, FindingRecord] = {}
        self._msg_counter = 0
        #: (sender, message id) -> [msg_index, command, first frame, answered]: requests
        #: unanswered, and the latest `ANSWERED_KEPT` answered ones (a late C-CANCEL or a
        #: repeated response still finds them; older ones go, so a day of operations on one
        #: association keeps a bounded table)
        self._requests: dict[tuple[str, int], list[Any]] = {}
        #: requests sent with the Message ID of one of the sender's still unanswered: they
        #: wait here, in order, for the one before them to be answered. Responses name only
        #: the Message ID, and SCPs answer in the order they read, so the oldest is paired
        #: first (asyncops.py says the ID was reused)
        self._queued: dict[tuple[str, int], deque[list[Any]]] = {}
        #: the last data set in the wrong encoding each role received: which message, and
        #: the code of the finding that says so
        self._misencoded: dict[str, tuple[str, str]] = {}
        #: the same for a data set whose SOP Class or Instance UID is not its command's
        self._mismatched: dict[str, tuple[str, str]] = {}
        #: ... and for a message on a presentation context that was not accepted: which
        #: request, on which context (`_context_not_accepted`)
        self._off_context: dict[str, tuple[str, int]] = {}
        self._off_context_found: set[tuple[str, int]] = set()
        self._off_context_last = -1
        self._answered: deque[tuple[tuple[str, int], int]] = deque()
        #: what the tables and rules need of messages and objects that have moved on
        self.message_count = 0
        self.object_count = 0
        self.dataset_totals: dict[str, list[int]] = {REQUESTOR: [0, 0], ACCEPTOR: [0, 0]}
        self.move_destinations: set[str] = set()
        #: called with the association when `SETTLE_AT` finished messages wait in
        #: ``messages``: the caller takes them with `drain` (flat memory on long associations)
        self.on_settle: Callable[[Association], None] | None = None
        self._settle_at = SETTLE_AT
        self._gap_findings = 0
        self.gap_bytes = 0
        self._sinks: dict[int, DatasetSinkLike] = {}
        #: per role: TCP retransmitted bytes and out-of-order segments (set by the driver)
        self.tcp_retransmitted: dict[str, int] = {REQUESTOR: 0, ACCEPTOR: 0}
        self.tcp_out_of_order: dict[str, int] = {REQUESTOR: 0, ACCEPTOR: 0}

    # -- connection side --------------------------------------------------------------
    def sink_for(self, src: str, sport: int, dst: str, dport: int, first: Packet) -> StreamSink:
        d = _Direction(self, (src, sport), (dst, dport))
        self.directions[(src, sport)] = d
        return d.parser

    def note_packet(self, pkt: Packet) -> None:
        if not self.first_frame:
            self.first_frame, self.first_ns = pkt.frame, pkt.time_ns
            self.port_hinted = pkt.sport in self.ports or pkt.dport in self.ports
            if pkt.flags & 0x02 and not pkt.flags & 0x10:
                self.syn_client = (pkt.src, pkt.sport)
        self.last_frame, self.last_ns = pkt.frame, pkt.time_ns

    @property
    def is_dicom(self) -> bool:
        """A stream that opened with an A-ASSOCIATE-RQ, or a --port stream that held PDUs."""
        if self.saw_rq:
            return True
        return self.port_hinted and self.valid_pdus > 0 and not self.bad_first_pdu

    @property
    def not_dicom(self) -> bool:
        """Decided already: the stream's first bytes are not an A-ASSOCIATE-RQ (and it is
        not on a --port). Undecided streams (no payload yet) are not DICOM either, yet."""
        if self.saw_rq or self.port_hinted:
            return False
        return self.bad_first_pdu or self.valid_pdus > 0

    def role_of(self, endpoint: tuple[str, int]) -> str:
        if self.requestor is None:
            self._infer_roles(endpoint)
        return REQUESTOR if endpoint == self.requestor else ACCEPTOR

    def _infer_roles(self, hint: tuple[str, int]) -> None:
        """No A-ASSOCIATE-RQ seen: the --port side is the acceptor, else the SYN's sender is
        the requestor, else whoever speaks first."""
        ends = list(self.directions)
        if len(ends) == 1:
            d = self.directions[ends[0]]
            ends.append(d.peer)
        a, b = ends[0], ends[1]
        if (a[1] in self.ports) != (b[1] in self.ports):
            req = b if a[1] in self.ports else a
        elif self.syn_client in (a, b):
            assert self.syn_client is not None
            req = self.syn_client
        else:
            req = hint
        self.requestor = req
        self.acceptor = b if req == a else a

    # -- observer of the messages stage -------------------------------------------------
    def next_msg_index(self) -> int:
        self._msg_counter += 1
        return self._msg_counter - 1

    def open_dataset(self, message: Message) -> DatasetSinkLike:
        cmd = message.command
        assert cmd is not None
        self._context_not_accepted(message)  # now: its receiver may abort inside the data set
        ctx = self.contexts.get(message.context_id)
        sink = self._dataset_sink(
            stream=self.stream, msg_index=message.msg_index, command=cmd.command,
            sop_class_uid=cmd.sop_class_uid, sop_instance_uid=cmd.sop_instance_uid,
            transfer_syntax=ctx.transfer_syntax if ctx else None,
            source_ae=self._sender_ae(message.sender),
        )
        self._sinks[message.msg_index] = sink
        return sink

    def message_done(self, m: Message) -> None:
        cmd = m.command
        problem = m.command_problem or m.dataset_problem
        self._context_not_accepted(m)
        request_index = None
        status_cat = status_txt = None
        if cmd is not None:
            if cmd.is_request and cmd.message_id is not None:
                self._request(m.sender, cmd.message_id, [
                    m.msg_index, cmd.command, m.first_frame, False, m.ended_ns])
            if cmd.responds_to is not None:
                # a response answers the peer's request; a C-CANCEL-RQ names the sender's own
                # request (PS3.7 9.3.2.3: Message ID Being Responded To)
                side = m.sender if cmd.is_request else other_role(m.sender)
                key = (side, cmd.responds_to)
                entry = self._requests.get(key)
                if entry is not None:
                    request_index = entry[0]
                    if not cmd.is_request and not entry[3] and (
                            cmd.status is None or status_category(cmd.status) != "Pending"):
                        entry[3] = True
                        self._forget_answered(key, request_index)
                        waiting = self._queued.get(key)
                        if waiting:  # the next request that reused the ID: its turn
                            self._requests[key] = waiting.popleft()
                            if not waiting:
                                del self._queued[key]
            if cmd.command == "C-MOVE-RQ" and cmd.move_destination:
                self.move_destinations.add(cmd.move_destination)
            if cmd.status is not None:
                status_cat = status_category(cmd.status)
                status_txt = status_text(cmd.command_field, cmd.status, cmd.sop_class_uid)
        sink = self._sinks.pop(m.msg_index, None)
        self.messages.append(MessageRecord(
            m.msg_index, m.sender, m.context_id, cmd, request_index, status_cat, status_txt,
            sink.nbytes if sink else None, m.first_frame, m.last_frame, m.started_ns,
            m.ended_ns, m.fragments, problem, m.command_bytes,
        ))
        self.message_count += 1
        if sink is not None and sink.nbytes:
            totals = self.dataset_totals[m.sender]
            totals[0] += 1
            totals[1] += sink.nbytes
        if cmd is not None:
            for what, uid in (("SOP Class", cmd.sop_class_uid),
                              ("SOP Instance", cmd.sop_instance_uid)):
                if uid and not _VALID_UID.fullmatch(uid):
                    self.finding(
                        "warning", "invalid-uid",
                        f"{cmd.command} {m.msg_index} from {self._sender_ae(m.sender) or m.sender}"
                        f" carries an invalid {what} UID {uid!r} (PS3.5 9.1)", m.first_frame,
                        m.msg_index)
        if cmd is not None and status_cat in ("Failure", "Warning"):
            sev, code = ("error", "dimse-failure") if status_cat == "Failure" else (
                "warning", "dimse-warning")
            text = f"{cmd.command} from {self._sender_ae(m.sender) or m.sender} has status "
            text += f"0x{cmd.status:04X} ({status_txt})"
            if cmd.error_comment:
                text += f": {cmd.error_comment}"
            if cmd.sop_instance_uid:
                text += f" for {cmd.sop_instance_uid}"
            text += self._misencoding_lead(
                m.sender, f"{cmd.command.removesuffix('-RSP')}-RQ {cmd.responds_to}")
            self.finding(sev, code, text, m.first_frame, m.msg_index)
        if cmd is not None and cmd.has_dataset:
            self._object_done(m, cmd.command, sink, problem)
        if len(self.messages) >= self._settle_at and self.on_settle is not None:
            self.on_settle(self)

    def _request(self, sender: str, message_id: int, entry: list[Any]) -> None:
        key = (sender, message_id)
        earlier = self._requests.get(key)
        if (earlier is not None and not earlier[3] and earlier[1] != "C-CANCEL-RQ"
                and entry[1] != "C-CANCEL-RQ"):
            waiting = self._queued.setdefault(key, deque())
            waiting.append(entry)
            if len(waiting) > QUEUED_KEPT:  # hostile traffic: bounded, the oldest go
                waiting.popleft()
        else:
            self._requests[key] = entry

    def _forget_answered(self, key: tuple[str, int], msg_index: int) -> None:
        answered = self._answered
        answered.append((key, msg_index))
        if len(answered) > ANSWERED_KEPT:
            old_key, old_index = answered.popleft()
            entry = self._requests.get(old_key)
            if entry is not None and entry[0] == old_index:
                del self._requests[old_key]

    def drain(self) -> tuple[list[MessageRecord], list[ObjectRecord]]:
        """The finished messages and objects that nothing before them still waits on
        (no message with a lower index is in progress), in message order; they leave the
        association. After `finish`, all of them."""
        for record, sink in self._digests:
            record.sha256 = sink.sha256
        self._digests.clear()
        busy = [d.assembler.current.msg_index for d in self.directions.values()
                if d.assembler is not None and d.assembler.current is not None]
        bound = min(busy) if busy else None
        if bound is None:
            settled, self.messages = self.messages, []
            objects, self.objects = self.objects, []
        else:
            settled = [m for m in self.messages if m.msg_index < bound]
            self.messages = [m for m in self.messages if m.msg_index >= bound]
            objects = [o for o in self.objects if o.msg_index < bound]
            self.objects = [o for o in self.objects if o.msg_index >= bound]
        # a message stuck in progress holds the rest back: ask again only when twice as
        # many wait (no quadratic rescans)
        self._settle_at = max(SETTLE_AT, 2 * len(self.messages))
        settled.sort(key=lambda r: r.msg_index)
        objects.sort(key=lambda r: r.msg_index)
        return settled, objects

    def _object_done(self, m: Message, command: str, sink: DatasetSinkLike | None,
                     problem: str | None) -> None:
        cmd = m.command
        assert cmd is not None
        ctx = self.contexts.get(m.context_id)
        ts = ctx.transfer_syntax if ctx else None
        inferred = False
        complete = m.dataset_complete and problem is None and sink is not None
        if sink is None:
            problem = problem or "no data set fragments in the capture"
            self.objects.append(ObjectRecord(
                m.msg_index, command, cmd.sop_class_uid, cmd.sop_instance_uid, ts, False, 0,
                "", False, problem, None, m.sender))
            self.object_count += 1
        else:
            if ts is None:
                ts = self._guess_ts(sink.head)
                inferred = ts is not None
                sink.transfer_syntax = ts
            else:
                actual = sink.check_encoding()
                if actual is not None:  # the object (and its file) is in the one it is in
                    self._encoding_mismatch(m, command, ts, actual)
                    ts = actual
                pixels = sink.check_pixel_data(cmd.sop_class_uid)
                if pixels is not None:
                    self._pixel_data_mismatch(m, command, ts, pixels)
                    ts = sink.transfer_syntax or ts  # native pixel data: what the file says
            identity = Identity({})
            if command == "C-STORE-RQ":
                self._sop_mismatch(m, command, ctx, sink.check_uids())
                identity = sink.identity()
            columns = identity.columns
            path = None
            if complete:
                path = sink.finish()
            else:
                problem = problem or "data set incomplete"
                sink.discard(problem)
            notes = sink.meta_notes
            later = sink.digest_pending
            record = ObjectRecord(
                m.msg_index, command, cmd.sop_class_uid, cmd.sop_instance_uid, ts, inferred,
                sink.nbytes, "" if later else sink.sha256, complete, problem, path, m.sender,
                "; ".join(notes) if path and notes else None,
                sink.kept if complete else None,
                columns.get("accession_number"), columns.get("modality"),
                columns.get("study_instance_uid"), columns.get("series_instance_uid"),
                identity.charset, identity.texts)
            self.objects.append(record)
            if later:
                self._digests.append((record, sink))
            self.object_count += 1
        if not complete:
            self.finding(
                "warning", "object-incomplete",
                f"data set of {message_name(cmd)} ({cmd.sop_instance_uid or 'no UID'}) "
                f"from {self._sender_ae(m.sender) or m.sender} is incomplete: {problem}",
                m.last_frame, m.msg_index,
            )

    # -- PDU events ------------------------------------------------------------------------
    def on_pdu_start(self, d: _Direction, pdu_type: int, length: int, frame: int,
                     time_ns: int) -> None:
        """The PDU type alone settles the association's state (PS3.8 9.2): a PDU whose body
        the capture lacks still says accepted, rejected, released or aborted."""
        if pdu_type == A_ASSOCIATE_RQ and self.valid_pdus == 0:
            self.saw_rq = True
            self.requestor, self.acceptor = d.endpoint, d.peer
            self.requested_ns, self.requested_frame = time_ns, frame
        self.valid_pdus += 1
        role = d.role
        counts = self.pdus[role]
        name = PDU_NAMES[pdu_type]
        counts[name] = counts.get(name, 0) + 1
        if pdu_type == P_DATA_TF:
            if not d.over_max_reported:
                receiver = ACCEPTOR if role == REQUESTOR else REQUESTOR
                limit = self.max_pdu[receiver]
                if limit and length > limit:
                    d.over_max_reported = True
                    self.finding(
                        "warning", "pdu-exceeds-max-length",
                        f"P-DATA-TF of {length} bytes from the {role} exceeds the {receiver}'s "
                        f"maximum PDU length of {limit} bytes", frame)
        elif pdu_type == A_ASSOCIATE_AC and self.result is None:
            self.result, self.responded_ns = "accepted", time_ns
        elif pdu_type == A_ASSOCIATE_RJ and self.result is None:
            self.result, self.responded_ns, self.reject_frame = "rejected", time_ns, frame
        elif pdu_type == A_RELEASE_RQ:
            self.release_rq = True
            if self.release_rq_ns is None:
                self.release_rq_ns = time_ns
        elif pdu_type == A_RELEASE_RP:
            self.release_rp = True
            self.ended_ns = time_ns
        elif pdu_type == A_ABORT and self.abort_sender is None:
            self.abort_sender, self.abort_frame, self.abort_ns = role, frame, time_ns
            if self.ended_ns is None:
                self.ended_ns = time_ns
            # the aborter's own message ends here; the peer's may still be arriving (sent
            # before it heard of the A-ABORT): it goes on, whole if its bytes all come (as
            # Wireshark's export has it), else `finish` says the A-ABORT cut it
            if d.assembler is not None:
                d.assembler.interrupt(f"A-ABORT from the {role}", frame, time_ns)

    def on_control(self, d: _Direction, pdu: ControlPdu) -> None:
        """A whole PDU, decoded: fill in the details of what on_pdu_start settled."""
        t = pdu.pdu_type
        p = pdu.decoded
        if pdu.problems:
            self._partial_pdu_finding(d.role, pdu)
        if t == A_ASSOCIATE_RQ:
            self._on_rq(d, pdu, p)
        elif t == A_ASSOCIATE_AC:
            self._on_ac(pdu, p)
        elif t == A_ASSOCIATE_RJ:
            self.reject = (int(p.result), int(p.source), int(p.reason_diagnostic))
        elif t == A_ABORT:
            self.abort = (int(p.source), int(p.reason_diagnostic))

    def _on_rq(self, d: _Direction, pdu: ControlPdu, p: Any) -> None:
        if self.contexts or self.calling_ae is not None or d.endpoint != self.requestor:
            self.finding("error", "unexpected-pdu",
                         f"an A-ASSOCIATE-RQ from the {d.role} after the association began",
                         pdu.first_frame)
            return
        self.calling_ae = _clean(p.calling_ae_title)
        self.called_ae = _clean(p.called_ae_title)
        for which, title in (("calling", self.calling_ae), ("called", self.called_ae)):
            problem = ae_title_problem(title)
            if problem:
                self.finding("warning", "invalid-ae-title",
                             f"the {which} AE title {title!r} of the A-ASSOCIATE-RQ holds "
                             f"{problem} (PS3.5 6.2); it is kept as sent", pdu.first_frame)
        self.application_context = _clean(p.application_context_name)
        for item in p.presentation_context:
            cid = int(item.context_id)
            self.contexts[cid] = ContextRecord(
                cid, _clean(item.abstract_syntax), [str(ts) for ts in item.transfer_syntax])
            self._context_order.append(cid)
        self._user_info(REQUESTOR, p.user_information)
        self._credentials_in_clear(p.user_information, pdu.first_frame)

    def _on_ac(self, pdu: ControlPdu, p: Any) -> None:
        for item in p.presentation_context:
            cid = int(item.context_id)
            ctx = self.contexts.get(cid)
            if ctx is None:  # capture lacks the RQ, or the acceptor invented a context
                ctx = self.contexts[cid] = ContextRecord(cid, None, [])
                self._context_order.append(cid)
            ctx.result = int(item.result)
            ts = item.transfer_syntax
            ctx.transfer_syntax = str(ts) if ts and ctx.result == 0 else None
        self._user_info(ACCEPTOR, p.user_information)
        if self.user_identity_response and (
                p.user_information is None or p.user_information.user_identity is None):
            self._identity_unconfirmed = pdu.first_frame
        for cid in self._context_order:
            ctx = self.contexts[cid]
            if ctx.result not in (None, 0):
                self.finding(
                    "warning", "context-rejected",
                    f"{self.called_ae or 'the acceptor'} rejected presentation context {cid} "
                    f"({uid_name(ctx.abstract_syntax) or ctx.abstract_syntax}) proposed by "
                    f"{self.calling_ae or 'the requestor'}: "
                    f"{CONTEXT_RESULTS.get(ctx.result, ctx.result)}; proposed "
                    f"{', '.join(uid_name(t) or t for t in ctx.proposed_transfer_syntaxes)}",
                    pdu.first_frame)
                self.rejections[cid] = self.findings[-1]

    def _user_info(self, role: str, ui: Any) -> None:
        if ui is None:
            return
        self.max_pdu[role] = ui.maximum_length
        self.impl_uid[role] = _clean(ui.implementation_class_uid)
        self.impl_version[role] = _clean(ui.implementation_version_name)
        if ui.async_ops_window is not None:
            w = ui.async_ops_window
            self.async_window[role] = (w.max_operations_invoked, w.max_operations_performed)
        for item in ui.role_selection.values() if isinstance(ui.role_selection, dict) else []:
            for ctx in self.contexts.values():
                if ctx.abstract_syntax == _clean(item.sop_class_uid):
                    if role == REQUESTOR:
                        ctx.scu_role_proposed = bool(item.scu_role)
                        ctx.scp_role_proposed = bool(item.scp_role)
                    else:
                        ctx.scu_role_accepted = bool(item.scu_role)
                        ctx.scp_role_accepted = bool(item.scp_role)
        for item in ui.ext_neg or []:
            for ctx in self.contexts.values():
                if ctx.abstract_syntax == _clean(item.sop_class_uid):
                    info = bytes(item.app_info or b"").hex()
                    if role == REQUESTOR:
                        ctx.ext_neg_requested = info
                    else:
                        ctx.ext_neg_accepted = info
        if role == REQUESTOR and ui.user_identity is not None:
            uid = ui.user_identity
            self.user_identity_type = int(uid.id_type)
            self.user_identity_response = bool(uid.response_requested)
            if self.user_identity_type in (1, 2):  # never the passcode
                self.user_identity_user = _clean(uid.primary)

    def on_lost(self, d: _Direction, nbytes: int, cause: str, frame: int) -> None:
        self.gap_bytes += nbytes
        if nbytes == 0 or cause == "snaplen":  # snaplen: one capture-level finding says it
            return
        self._gap_findings += 1
        if self._gap_findings <= MAX_GAP_FINDINGS:
            self.finding(
                "warning", "capture-gap",
                f"{nbytes} bytes from the {d.role} ({d.endpoint[0]}:{d.endpoint[1]}) are "
                f"missing from the capture before frame {frame}", frame)

    def on_malformed(self, d: _Direction, text: str, frame: int) -> None:
        if self.valid_pdus == 0 and not self.port_hinted:
            self.bad_first_pdu = True
            return
        self.finding("error", "malformed-pdu", f"{d.role}: {text}", frame)

    # -- end ----------------------------------------------------------------------------
    def _no_response(self, why: str) -> None:
        """association-no-response; or tls-mismatch where the request went in clear to a
        DICOM TLS port and the acceptor closed without a byte. An acceptor that closes so
        elsewhere gets the same hint, as one possible reason of two."""
        called = self.called_ae or "the acceptor"
        calling = self.calling_ae or "the requestor"
        acc = self.directions.get(self.acceptor) if self.acceptor is not None else None
        closed = (acc is not None and acc.parser.nbytes == 0
                  and acc.ended_how in ("fin", "rst"))
        hint = ""
        if closed and acc is not None:
            how = (acc.ended_how or "").upper()
            where = endpoint_text(acc.endpoint)
            if acc.endpoint[1] in self.tls_ports:
                self.finding(
                    "error", "tls-mismatch",
                    f"{calling} sent its A-ASSOCIATE-RQ in clear to {called} at {where}, a "
                    f"DICOM TLS port, and {called} closed the connection ({how}) without a "
                    f"byte: it expects DICOM over TLS there. Turn TLS on at {calling}, or send "
                    f"to {called}'s port for DICOM in clear", self.requested_frame)
                return
            hint = (f"; it sent nothing and closed the connection ({how}): an SCP that expects "
                    "TLS on this port does that (it reads the A-ASSOCIATE-RQ as a broken TLS "
                    f"record), and so does one that will not take connections from {calling}'s "
                    "address")
        self.finding(
            "error", "association-no-response",
            f"{called} never answered the A-ASSOCIATE-RQ from {calling} ({why}){hint}",
            self.requested_frame)

    def finish(self) -> None:
        """The capture ended: settle the ending and whatever messages are in progress."""
        closed = [d for d in self.directions.values() if d.ended_how in ("fin", "rst")]
        self._reject_abort_findings()
        if self.abort_sender is not None:
            ending, why = "aborted", f"A-ABORT from the {self.abort_sender}"
        elif self.release_rq and self.release_rp:
            ending, why = "released", "the association was released"
        elif closed:
            ending, why = "closed", "the TCP connection closed"
            if self.ended_ns is None:
                self.ended_ns = min(d.ended_ns for d in closed)
        else:
            ending, why = "open", "the capture ended"
        self.ending = ending
        for d in self.directions.values():
            if d.assembler is not None:
                d.assembler.interrupt(f"{why} inside the message", self.last_frame, self.last_ns)
        if self.result is None:
            self.result = "no-response" if self.saw_rq else "unknown"
            if self.saw_rq:
                self._no_response(why)
        lead = self._identity_unconfirmed_finding(ending)
        if ending == "closed" and self.result == "accepted":
            self.finding(
                "warning", "association-not-released",
                f"the TCP connection of {self.calling_ae} -> {self.called_ae} closed without "
                f"A-RELEASE{lead}", self.last_frame)
        waiting = [(key, entry) for key, q in self._queued.items() for entry in q]
        for (sender, mid), (idx, command, first_frame, answered, _sent_ns) in [
                *self._requests.items(), *waiting]:
            if answered or command == "C-CANCEL-RQ":
                continue
            lead = self._misencoding_lead(other_role(sender), f"{command} {mid}")
            self.finding(
                "warning", "request-unanswered",
                f"{command} {mid} from {self._sender_ae(sender) or sender} got no final "
                f"response before {why}{lead}", first_frame, idx)
        self.messages.sort(key=lambda r: r.msg_index)
        self.objects.sort(key=lambda r: r.msg_index)

    def context_rows(self) -> list[ContextRecord]:
        return [self.contexts[c] for c in self._context_order]
