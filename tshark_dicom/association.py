"""One TCP connection's DICOM association: PDU events -> association, context, message,
object and finding records (PS3.8 7 and 9; PS3.7 9-10).

`Association` is both the `streams.SinkFactory` of its connection (a `pdu.PduParser` per
direction) and the owner of each direction's `messages.MessageAssembler`. Data set bytes go
to sinks made by a `DatasetSinkFactory` the caller provides (objects.py), so this stage never
looks ahead to how objects are stored.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Protocol

from pydicom.uid import RE_VALID_UID, UID

from .dimse import CommandSet, status_category, status_text
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
from .streams import StreamSink
from .tls import DICOM_TLS_PORT

REQUESTOR, ACCEPTOR = "requestor", "acceptor"


def _message_name(cmd: CommandSet) -> str:
    """A message as the findings name it: ``C-STORE-RQ 7`` by its Message ID, a response
    by the one it answers (``C-FIND-RSP to 7``)."""
    if cmd.message_id is not None:
        return f"{cmd.command} {cmd.message_id}"
    if cmd.responds_to is not None:
        return f"{cmd.command} to {cmd.responds_to}"
    return cmd.command


def other_role(role: str) -> str:
    """The other side of an association: the acceptor for the requestor and back."""
    return ACCEPTOR if role == REQUESTOR else REQUESTOR


#: PS3.8 Table 9-18 (A-ASSOCIATE-AC presentation context result).
CONTEXT_RESULTS = {
    0: "acceptance",
    1: "user-rejection",
    2: "no-reason (provider rejection)",
    3: "abstract-syntax-not-supported (provider rejection)",
    4: "transfer-syntaxes-not-supported (provider rejection)",
}
#: PS3.8 Table 9-21 (A-ASSOCIATE-RJ).
REJECT_RESULTS = {1: "rejected-permanent", 2: "rejected-transient"}
REJECT_SOURCES = {
    1: "DICOM UL service-user",
    2: "DICOM UL service-provider (ACSE related function)",
    3: "DICOM UL service-provider (Presentation related function)",
}
REJECT_REASONS = {
    (1, 1): "no-reason-given",
    (1, 2): "application-context-name-not-supported",
    (1, 3): "calling-AE-title-not-recognized",
    (1, 7): "called-AE-title-not-recognized",
    (2, 1): "no-reason-given",
    (2, 2): "protocol-version-not-supported",
    (3, 1): "temporary-congestion",
    (3, 2): "local-limit-exceeded",
}
#: PS3.8 Table 9-26 (A-ABORT).
ABORT_SOURCES = {0: "DICOM UL service-user", 1: "reserved", 2: "DICOM UL service-provider"}
ABORT_REASONS = {
    0: "reason-not-specified",
    1: "unrecognized-PDU",
    2: "unexpected-PDU",
    4: "unrecognized-PDU-parameter",
    5: "unexpected-PDU-parameter",
    6: "invalid-PDU-parameter-value",
}
#: User identity types, PS3.7 D.3.3.7.
USER_IDENTITY_TYPES = {
    1: "username", 2: "username and passcode", 3: "Kerberos", 4: "SAML", 5: "JWT",
}
#: The user identity types whose primary field is a secret a listener can use: a passcode
#: (with the user name), a SAML assertion, a JSON Web Token (bearer credentials). A Kerberos
#: service ticket is made to cross an open network, and a user name alone is no secret.
SECRET_IDENTITIES = {2: "a user name and its passcode", 4: "a SAML assertion",
                     5: "a JSON Web Token"}
MAX_GAP_FINDINGS = 20
#: Finished messages an association holds before it asks to be drained (`on_settle`).
SETTLE_AT = 1024
#: Answered requests remembered for a late C-CANCEL-RQ or a repeated response (PS3.7 9.3.2.3).
ANSWERED_KEPT = 1024
#: Requests kept waiting behind an unanswered one with their Message ID (`Association._queued`),
#: per ID: an SCU reusing one ID for more outstanding requests than this is hostile traffic
QUEUED_KEPT = 1024
_VALID_UID = re.compile(RE_VALID_UID)


def reject_reason_text(reject: tuple[int, int, int] | None) -> str:
    """An A-ASSOCIATE-RJ's result, source and reason in words (PS3.8 Table 9-21)."""
    if reject is None:
        return "its reason is not in the capture"
    res, src, reason = reject
    return (f"{REJECT_RESULTS.get(res, res)}, source {REJECT_SOURCES.get(src, src)}, "
            f"reason {REJECT_REASONS.get((src, reason), reason)}")


def uid_name(uid: str | None) -> str | None:
    """The registered name of a UID (pydicom's dictionary), else None."""
    if not uid:
        return None
    name = UID(uid).name
    return None if name == uid else name


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    text = str(value).strip(" \x00")
    return text or None


# ---------------------------------------------------------------------------------------
# Records: what this stage produces. tables.py turns them into rows.
# ---------------------------------------------------------------------------------------
@dataclass(slots=True)
class ContextRecord:
    context_id: int
    abstract_syntax: str | None
    proposed_transfer_syntaxes: list[str]
    result: int | None = None
    transfer_syntax: str | None = None
    scu_role_proposed: bool | None = None
    scp_role_proposed: bool | None = None
    scu_role_accepted: bool | None = None
    scp_role_accepted: bool | None = None
    ext_neg_requested: str | None = None  # hex of the service-class application information
    ext_neg_accepted: str | None = None


def duration_text(ms: float) -> str:
    """A duration in a sentence: ``340 ms``, ``1,204 ms``, ``30.0 s``."""
    return f"{ms:,.0f} ms" if ms < 10_000 else f"{ms / 1000:,.1f} s"


@dataclass(slots=True)
class MessageRecord:
    """One message: its decoded command set (None if the capture lost it) and what the
    association added: the request it answers, status meaning, data set size, frames."""

    msg_index: int
    sender: str
    context_id: int
    cmd: CommandSet | None
    request_index: int | None
    status_category: str | None
    status_text: str | None
    dataset_bytes: int | None
    first_frame: int
    last_frame: int
    started_ns: int
    ended_ns: int
    fragments: int
    problem: str | None
    command_bytes: int = 0

    #: CommandSet fields that become message columns of the same name.
    COMMAND_COLUMNS = (
        "command", "command_field", "message_id", "responds_to", "sop_class_uid",
        "sop_instance_uid", "priority", "move_destination", "move_originator_ae",
        "move_originator_message_id", "status", "error_comment", "remaining", "completed",
        "failed", "warning",
    )

    def command_value(self, name: str) -> Any:
        return getattr(self.cmd, name) if self.cmd is not None else None

    @property
    def command(self) -> str | None:
        return self.cmd.command if self.cmd is not None else None

    @property
    def command_field(self) -> int | None:
        return self.cmd.command_field if self.cmd is not None else None

    @property
    def has_dataset(self) -> bool:
        return bool(self.cmd is not None and self.cmd.has_dataset)


class Identity(NamedTuple):
    """What a stored object's first bytes say of it (objects.head_identity): the objects
    table's study columns, and its Specific Character Set (0008,0005) and the text values
    beyond ASCII that it governs (keyword, VR, bytes), for the character set's check
    (queries.ObjectTextTally)."""

    columns: dict[str, str]
    charset: bytes | None = None
    texts: tuple[tuple[str, str, bytes], ...] = ()


@dataclass(slots=True)
class ObjectRecord:
    msg_index: int
    command: str | None
    sop_class_uid: str | None
    sop_instance_uid: str | None
    transfer_syntax: str | None
    transfer_syntax_inferred: bool
    dataset_bytes: int
    sha256: str
    complete: bool
    problem: str | None
    path: str | None
    sender: str
    meta_notes: str | None = None
    #: the data set's bytes, for query/retrieve identifiers only (queries.py decodes them)
    identifier: bytes | None = None
    #: which exam, study and series a stored object belongs to (C-STORE-RQ: its data set's
    #: first bytes say, objects.head_identity)
    accession_number: str | None = None
    modality: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    #: its Specific Character Set and text beyond ASCII (`Identity`): not in the tables
    charset: bytes | None = None
    texts: tuple[tuple[str, str, bytes], ...] = ()


@dataclass(slots=True)
class FindingRecord:
    msg_index: int | None
    frame: int | None
    severity: str  # error | warning | note
    code: str
    summary: str


class DatasetSinkLike(Protocol):
    """What association needs of objects.ObjectSink."""

    transfer_syntax: str | None

    def write(self, chunk: bytes | bytearray | memoryview) -> None: ...

    def finish(self) -> str | None: ...

    def discard(self, reason: str) -> None: ...

    @property
    def nbytes(self) -> int: ...

    @property
    def sha256(self) -> str: ...

    @property
    def digest_pending(self) -> bool: ...

    @property
    def head(self) -> bytes: ...

    @property
    def meta_notes(self) -> tuple[str, ...]: ...

    @property
    def kept(self) -> bytes | None: ...

    def check_encoding(self) -> str | None: ...

    def check_pixel_data(self, sop_class_uid: str | None) -> str | None: ...

    def check_uids(self) -> tuple[str | None, str | None] | None: ...

    def identity(self) -> Identity: ...


class DatasetSinkFactory(Protocol):
    def __call__(self, *, stream: int, msg_index: int, command: str, sop_class_uid: str | None,
                 sop_instance_uid: str | None, transfer_syntax: str | None,
                 source_ae: str | None) -> DatasetSinkLike: ...


class TransferSyntaxGuesser(Protocol):
    def __call__(self, head: bytes) -> str | None: ...


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


def endpoint_text(endpoint: tuple[str, int]) -> str:
    """``host:port``, an IPv6 host in brackets (``[::1]:104``), for findings' sentences."""
    host, port = endpoint
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Association:
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

    def finding(self, severity: str, code: str, summary: str, frame: int | None,
                msg_index: int | None = None) -> None:
        self.findings.append(FindingRecord(msg_index, frame, severity, code, summary))

    def _sender_ae(self, sender: str) -> str | None:
        return self.calling_ae if sender == REQUESTOR else self.called_ae

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
                f"data set of {_message_name(cmd)} ({cmd.sop_instance_uid or 'no UID'}) "
                f"from {self._sender_ae(m.sender) or m.sender} is incomplete: {problem}",
                m.last_frame, m.msg_index,
            )

    def _context_not_accepted(self, m: Message) -> None:
        """``context-not-accepted`` (error): a message on a presentation context the
        A-ASSOCIATE-AC rejected, or that the A-ASSOCIATE-RQ never proposed; once per sender
        and context, and remembered as the lead for its receiver's A-ABORT or silence."""
        cmd = m.command
        if (cmd is None or self.result != "accepted" or not self.contexts
                or m.msg_index == self._off_context_last):
            return
        ctx = self.contexts.get(m.context_id)
        if ctx is not None and ctx.result in (0, None):
            return
        self._off_context_last = m.msg_index
        receiver = other_role(m.sender)
        request = _message_name(cmd)
        self._off_context[receiver] = (request, m.context_id)
        if (m.sender, m.context_id) in self._off_context_found:
            return
        self._off_context_found.add((m.sender, m.context_id))
        what = uid_name(cmd.sop_class_uid) or cmd.sop_class_uid
        acceptor = self.called_ae or "the acceptor"
        refused = ctx is not None and ctx.abstract_syntax == cmd.sop_class_uid
        if ctx is None:
            why = f"{m.context_id}, which the A-ASSOCIATE-RQ did not propose"
        else:
            why = f"{m.context_id}" + ("" if refused else (
                f" ({uid_name(ctx.abstract_syntax) or ctx.abstract_syntax})")) + (
                f", which {acceptor} rejected ({CONTEXT_RESULTS.get(ctx.result or 0, ctx.result)})")
        self.finding(
            "error", "context-not-accepted",
            f"{self._sender_ae(m.sender) or m.sender} sent {request}"
            + (f" ({what}, {cmd.sop_instance_uid or 'no UID'})" if what else "")
            + f" on presentation context {why}: a message goes only on a "
            "context the A-ASSOCIATE-AC accepted (PS3.8 9.3.5.1), and "
            f"{self._sender_ae(receiver) or receiver} cannot tell how to read it (dcmtk's "
            "storescp and pynetdicom's SCP abort the association; dcmtk logs \"Bad "
            "presentation context ID\"); "
            + (f"{acceptor} does not take {what}: send it to an AE that does, or have "
               f"{acceptor} configured for it" if refused else
               "the sender must use a context accepted for its SOP class"),
            m.first_frame, m.msg_index)

    def _misencoded_finding(self, m: Message, command: str, code: str,
                            sentence: Callable[[str, str, str], str]) -> None:
        """A data set its receiver will read in the wrong encoding: remembered, so that the
        receiver's failure status, A-ABORT or silence points at it (`_misencoding_lead`),
        and an error finding ``code`` whose text is ``sentence(sender, request, receiver)``
        (the request with its SOP class and instance)."""
        cmd = m.command
        assert cmd is not None
        receiver = other_role(m.sender)
        request = f"{command} {cmd.message_id}"
        self._misencoded[receiver] = (request, code)
        what = uid_name(cmd.sop_class_uid) or cmd.sop_class_uid or "no SOP class"
        self.finding("error", code, sentence(
            self._sender_ae(m.sender) or m.sender,
            f"{request} ({what}, {cmd.sop_instance_uid or 'no UID'})",
            self._sender_ae(receiver) or receiver), m.first_frame, m.msg_index)

    def _encoding_mismatch(self, m: Message, command: str, ts: str, actual: str) -> None:
        """A data set not in its presentation context's encoding (objects.encoding_mismatch):
        a strict receiver fails on it, a lenient one guesses."""
        self._misencoded_finding(m, command, "dataset-encoding-mismatch", lambda s, rq, r: (
            f"{s} sent the data set of {rq} encoded as {uid_name(actual) or actual}, but "
            f"presentation context {m.context_id} was accepted with {uid_name(ts) or ts}: a "
            f"data set must be in its context's transfer syntax (PS3.5 10.1), and {r} expects "
            "it in that one: a strict reader fails (an error status, an A-ABORT, or no answer "
            "at all), a lenient one guesses and may store it as received; the sender must "
            "encode it in the accepted transfer syntax, or propose the one it sends in"))

    def _sop_mismatch(self, m: Message, command: str, ctx: ContextRecord | None,
                      own: tuple[str | None, str | None] | None) -> None:
        """A C-STORE whose SOP class is not its presentation context's abstract syntax, or
        whose data set names another SOP Class or Instance UID than its command (``own``:
        the data set's, `ObjectSink.check_uids`)."""
        cmd = m.command
        assert cmd is not None
        # on a context that was not accepted: context-not-accepted says so
        abstract = ctx.abstract_syntax if ctx is not None and ctx.result in (0, None) else None
        off_context = bool(abstract and cmd.sop_class_uid and abstract != cmd.sop_class_uid)
        if not off_context and own is None:
            return  # nearly every C-STORE: no names looked up, no sentences made
        sender = self._sender_ae(m.sender) or m.sender
        receiver_role = other_role(m.sender)
        receiver = self._sender_ae(receiver_role) or receiver_role
        request = f"{command} {cmd.message_id}"
        what = uid_name(cmd.sop_class_uid) or cmd.sop_class_uid or "no SOP class"
        if off_context:
            self.finding(
                "warning", "context-sop-class-mismatch",
                f"{sender} sent {request} ({what}, {cmd.sop_instance_uid or 'no UID'}) on "
                f"presentation context {m.context_id}, which was negotiated for "
                f"{uid_name(abstract) or abstract}: a message belongs on a context whose "
                f"abstract syntax is its SOP class, and {receiver} may file the object as the "
                "context's SOP class or refuse it (dcmtk's storescp, Orthanc and pynetdicom "
                f"accept it); the sender must propose {what} and send it on that context",
                m.first_frame, m.msg_index)
        if own is None:
            return
        differ = []
        if own[0] is not None and own[0] != cmd.sop_class_uid:
            differ.append(f"SOP Class UID {uid_name(own[0]) or own[0]} ({own[0]})")
        if own[1] is not None and own[1] != cmd.sop_instance_uid:
            differ.append(f"SOP Instance UID {own[1]}")
        self._mismatched[receiver_role] = (request, "dataset-uid-mismatch")
        self.finding(
            "error", "dataset-uid-mismatch",
            f"{sender} sent {request} for {what}, {cmd.sop_instance_uid or 'no UID'}, but its "
            f"data set says {' and '.join(differ)}: the command's Affected SOP Class and "
            "Instance UIDs name the data set's own (PS3.7 9.1.1); a strict receiver refuses it "
            f"(dcmtk's storescp and Orthanc answer 0xA900, Data Set does not match SOP Class), "
            f"a lenient one files it under UIDs the sender does not know it used; typically a "
            "file whose meta header disagrees with its data set, sent by its header, or a "
            "router that rewrote one and not the other", m.first_frame, m.msg_index)

    def _pixel_data_mismatch(self, m: Message, command: str, ts: str, pixels: str) -> None:
        """An image whose pixel data is not encoded as its context's transfer syntax says
        (`ObjectSink.check_pixel_data`): encapsulated (compressed) on a native context, or
        native on an encapsulated one."""
        if pixels == "encapsulated":
            self._misencoded_finding(
                m, command, "pixel-data-encoding-mismatch", lambda s, rq, r: (
                    f"{s} sent {rq} with its pixel data encapsulated (compressed fragments), "
                    f"but presentation context {m.context_id} was accepted with "
                    f"{uid_name(ts) or ts}, whose pixel data is native (PS3.5 A.4): {r} cannot "
                    "read the image (dcmtk's storescp and Orthanc answer 0xA700, Out of "
                    "resources, and store nothing); the sender must decompress the object for "
                    "this context, or propose the compressed transfer syntax it holds it in"))
            return
        self._misencoded_finding(
            m, command, "pixel-data-encoding-mismatch", lambda s, rq, r: (
                f"{s} sent {rq} with native (uncompressed) pixel data, a value of defined "
                f"length, but presentation context {m.context_id} was accepted with "
                f"{uid_name(ts) or ts}, whose pixel data must be encapsulated (compressed "
                f"fragments, PS3.5 A.4), and {r} reads it so: a strict receiver fails (dcmtk's "
                "storescp aborts the association, Orthanc does not answer), a lenient one "
                "stores an image no viewer can open; the sender must compress the object for "
                "this context, or propose a native transfer syntax such as Explicit VR Little "
                "Endian"))

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
            self._partial_pdu_finding(d, pdu)
        if t == A_ASSOCIATE_RQ:
            self._on_rq(d, pdu, p)
        elif t == A_ASSOCIATE_AC:
            self._on_ac(pdu, p)
        elif t == A_ASSOCIATE_RJ:
            self.reject = (int(p.result), int(p.source), int(p.reason_diagnostic))
        elif t == A_ABORT:
            self.abort = (int(p.source), int(p.reason_diagnostic))

    def _partial_pdu_finding(self, d: _Direction, pdu: ControlPdu) -> None:
        """An A-ASSOCIATE-RQ/AC decoded field by field: say what is missing or wrong and
        what was kept."""
        p = pdu.decoded
        kept = (f"kept {'the AE titles and ' if p.calling_ae_title is not None else ''}"
                f"{p.items_kept} of the {p.items_seen} items seen")
        problems = "; ".join(pdu.problems)
        if pdu.missing:
            self.finding("warning", "pdu-incomplete",
                         f"{pdu.name} from the {d.role} is not whole in the capture "
                         f"({problems}): {kept}", pdu.first_frame)
        else:
            self.finding("error", "malformed-pdu",
                         f"{d.role}: {pdu.name} decoded field by field ({problems}): {kept}",
                         pdu.first_frame)

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

    def _credentials_in_clear(self, ui: Any, frame: int) -> None:
        """A secret in the requestor's User Identity (`SECRET_IDENTITIES`) on a connection
        without TLS; never kept, only whether it is empty looked at."""
        ident = ui.user_identity if ui is not None else None
        kind = SECRET_IDENTITIES.get(self.user_identity_type or 0)
        if ident is None or kind is None or self.ENCRYPTED:
            return
        if not (ident.secondary if self.user_identity_type == 2 else ident.primary):
            return  # an empty passcode (dcmtk's -epw): only the user name crossed
        self.finding(
            "warning", "credentials-in-clear",
            f"{self.calling_ae or 'the requestor'} sent {kind} (User Identity "
            f"negotiation, PS3.7 D.3.3.7) in its A-ASSOCIATE-RQ to "
            f"{self.called_ae or 'the acceptor'} on a connection without TLS: it crossed "
            "the network in clear text, and this capture holds it (tshark-dicom writes "
            "it nowhere): anyone who can read the traffic, or the capture, can use it. "
            "Protect associations that authenticate with DICOM over TLS (PS3.15 B.1), "
            "and keep this capture as you would the credential", frame)

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

    def _identity_unconfirmed_finding(self, ending: str) -> str:
        """The requestor asked for a User Identity response and the A-ASSOCIATE-AC had none
        (PS3.7 D.3.3.7.2): an error when the requestor then sent no request, which is how an
        SCU that requires the response gives up, else a note. The lead for the ending's
        finding ("" when nothing is said)."""
        frame = self._identity_unconfirmed
        if frame is None:
            return ""
        calling = self.calling_ae or "the requestor"
        called = self.called_ae or "the acceptor"
        asked = (f"{calling} asked {called} to confirm its user identity (User Identity "
                 "negotiation with a positive response requested, PS3.7 D.3.3.7), and the "
                 "A-ASSOCIATE-AC carried no User Identity response")
        if self.pdus[REQUESTOR].get(PDU_NAMES[P_DATA_TF]):
            self.finding("note", "user-identity-not-confirmed",
                         f"{asked}; {calling} went on without it", frame)
            return ""
        how = {"closed": "the connection closed without A-RELEASE",
               "aborted": "the association was aborted",
               "released": "the association was released", "open": "the capture ended"}[ending]
        self.finding(
            "error", "user-identity-not-confirmed",
            f"{asked}; {calling} then sent no request, and {how}: an SCU that requires the "
            "confirmation gives up so (dcmtk's storescu with -rsp: \"Positive response "
            f"requested but none received\"). {called} does not take part in User Identity "
            "negotiation, or is not set to answer it: configure it to, or let the SCU go on "
            "without the response", frame)
        return " (see the user-identity-not-confirmed finding)"

    def _reject_abort_findings(self) -> None:
        if self.result == "rejected":
            why = reject_reason_text(self.reject)
            self.finding(
                "error", "association-rejected",
                f"{self.called_ae or 'the acceptor'} rejected the association from "
                f"{self.calling_ae or 'the requestor'}: {why}", self.reject_frame)
        if self.abort_sender is not None:
            role = self.abort_sender
            if self.abort is not None:
                src, reason = self.abort
                why = ABORT_REASONS.get(reason, str(reason)) if src == 2 else "not specified"
                detail = f"A-ABORT source {ABORT_SOURCES.get(src, src)}, reason {why}"
            else:
                detail = "its source and reason are not in the capture"
            self.finding(
                "error", "association-aborted",
                f"the {role} ({self._sender_ae(role) or 'AE unknown'}) aborted the association "
                f"({detail}){self._abort_lead(role)}", self.abort_frame)

    def _abort_lead(self, role: str) -> str:
        """What the traffic says of an A-ABORT from ``role``: the rejected contexts and
        what it had received in a form it could not take, or else a request unanswered."""
        lead = self._abort_after_rejections(role) + self._abort_after_misencoding(role)
        return lead or self._abort_while_waiting(role)

    def _abort_while_waiting(self, role: str) -> str:
        """An A-ABORT while a request had no final response: the aborter's own (it gave up
        waiting: a DIMSE timeout), or else the peer's (the aborter would not, or could not,
        serve it). The latest request of the side that counts."""
        if self.abort_ns is None:
            return ""
        peer = other_role(role)
        for sender in (role, peer):
            waiting = [(entry[4], mid, entry[1]) for (who, mid), entry in self._requests.items()
                       if who == sender and not entry[3] and entry[1] != "C-CANCEL-RQ"
                       and entry[4] <= self.abort_ns]
            if not waiting:
                continue
            sent_ns, mid, command = max(waiting)
            after = duration_text((self.abort_ns - sent_ns) / 1e6)
            if sender == role:
                return (f", {after} after its own {command} {mid}, which had no response: a "
                        "peer that gives up waiting for a response aborts so (its DIMSE "
                        "timeout: dcmtk's --dimse-timeout, pynetdicom's dimse_timeout); see "
                        f"the request-unanswered finding, and why {self._sender_ae(peer) or peer} "
                        "took so long")
            return (f", {after} after receiving {command} {mid} from "
                    f"{self._sender_ae(peer) or peer}, which it never answered: an SCP aborts "
                    "so on a request it will not serve (Orthanc 1.10 does on a C-FIND, C-MOVE "
                    "or C-GET from an AE title that is not among its DicomModalities) or "
                    "cannot read; its log says which")
        return ""

    def _abort_after_misencoding(self, role: str) -> str:
        """An A-ABORT from the receiver of a data set in the wrong encoding: what it could
        not read is the lead (dcmtk's storescp aborts when its parser fails)."""
        off = self._off_context.get(role)
        if off is not None:
            return (f", after receiving {off[0]} on presentation context {off[1]}, which was "
                    "not accepted (see the context-not-accepted finding)")
        got = self._misencoded.get(role)
        if got is None:
            got = self._mismatched.get(role)
            return "" if got is None else (
                f", after receiving the data set of {got[0]}, which names other UIDs than its "
                f"command (see the {got[1]} finding)")
        return (f", after receiving the data set of {got[0]} in an encoding its presentation "
                f"context was not accepted with (see the {got[1]} finding)")

    def _misencoding_lead(self, receiver: str, request: str) -> str:
        """What a failure, or the silence, of ``receiver`` after ``request`` owes to the
        request's data set being in the wrong encoding, or naming other UIDs than its
        command, or its presentation context not accepted; "" if it was none of them."""
        off = self._off_context.get(receiver)
        if off is not None and off[0] == request:
            return (f"; {request} went on presentation context {off[1]}, which was not "
                    "accepted (see the context-not-accepted finding)")
        got = self._mismatched.get(receiver)
        if got is not None and got[0] == request:
            return (f"; the data set of {request} names other UIDs than its command (see the "
                    f"{got[1]} finding)")
        got = self._misencoded.get(receiver)
        if got is None or got[0] != request:
            return ""
        return (f"; the data set of {request} was not in the encoding its presentation "
                f"context was accepted with (see the {got[1]} finding)")

    def _abort_after_rejections(self, role: str) -> str:
        """What the negotiation says of a requestor's A-ABORT with no request of its own
        outstanding while some of its presentation contexts were rejected: a sender whose
        remaining objects it can send on no accepted context (their SOP class rejected, or
        held in a transfer syntax the acceptor refused that the sender cannot convert) gives
        up this way (dcmtk's storescu and dcmsend do), so the rejections are the lead."""
        if role != REQUESTOR or self.result != "accepted":
            return ""
        if any(not entry[3] for key, entry in self._requests.items() if key[0] == REQUESTOR):
            return ""
        rejected = [self.contexts[c] for c in self._context_order
                    if self.contexts[c].result not in (None, 0)]
        if not rejected:
            return ""
        offered = Counter(", ".join(uid_name(t) or t for t in ctx.proposed_transfer_syntaxes)
                          for ctx in rejected if ctx.result == 4)
        why = "; ".join(f"{n} offering only {ts}" for ts, n in offered.most_common(2)) \
            if offered else ""
        sent = ("before sending any message" if self.message_count == 0 else
                "with no request of its own outstanding")
        n = len(rejected)
        return (f", {sent}, after {self.called_ae or 'the acceptor'} rejected {n} of its "
                f"{len(self.contexts)} presentation contexts"
                + (f" ({why}: transfer syntaxes not supported)" if why else "")
                + ": a requestor left with objects it can send on no accepted context (of a "
                "rejected SOP class, or in a transfer syntax the acceptor refused that it cannot "
                "convert) gives up this way; see the context-rejected finding"
                + ("s" if n > 1 else ""))

    def context_rows(self) -> list[ContextRecord]:
        return [self.contexts[c] for c in self._context_order]
