"""The expert findings an association writes as its PDUs and messages go by, and what led
to an A-ABORT, a failure status or a silence (the clauses those findings add): a mixin of
`association.Association`, which keeps the state they read and calls them as it decodes.

Kept apart from the decoding so that each reads on its own: the state machine (PS3.8 9.2)
is association.py's, the sentences are here. Reasoning over finished records (timing,
query/retrieve, the archive) is findings.py's, qrfindings.py's and the other analyses'.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar

from .dimse import CommandSet
from .messages import Message
from .pdu import P_DATA_TF, PDU_NAMES, ControlPdu
from .records import (
    ABORT_REASONS,
    ABORT_SOURCES,
    CONTEXT_RESULTS,
    REQUESTOR,
    SECRET_IDENTITIES,
    ContextRecord,
    FindingRecord,
    duration_text,
    other_role,
    reject_reason_text,
    uid_name,
)


def message_name(cmd: CommandSet) -> str:
    """A message as the findings name it: ``C-STORE-RQ 7`` by its Message ID, a response
    by the one it answers (``C-FIND-RSP to 7``)."""
    if cmd.message_id is not None:
        return f"{cmd.command} {cmd.message_id}"
    if cmd.responds_to is not None:
        return f"{cmd.command} to {cmd.responds_to}"
    return cmd.command


class AssociationFindings:
    """The findings of `association.Association` (its base). What they read of it is
    declared here; the association sets it."""

    ENCRYPTED: ClassVar[bool]  # over TLS (tlsassoc.TlsAssociation)
    calling_ae: str | None
    called_ae: str | None
    result: str | None
    reject: tuple[int, int, int] | None
    reject_frame: int | None
    abort: tuple[int, int] | None
    abort_sender: str | None
    abort_frame: int | None
    abort_ns: int | None
    user_identity_type: int | None
    pdus: dict[str, dict[str, int]]
    contexts: dict[int, ContextRecord]
    message_count: int
    findings: list[FindingRecord]
    _context_order: list[int]
    _requests: dict[tuple[str, int], list[Any]]
    _misencoded: dict[str, tuple[str, str]]
    _mismatched: dict[str, tuple[str, str]]
    _off_context: dict[str, tuple[str, int]]
    _off_context_found: set[tuple[str, int]]
    _off_context_last: int
    _identity_unconfirmed: int | None

    def finding(self, severity: str, code: str, summary: str, frame: int | None,
                msg_index: int | None = None) -> None:
        self.findings.append(FindingRecord(msg_index, frame, severity, code, summary))

    def _sender_ae(self, sender: str) -> str | None:
        return self.calling_ae if sender == REQUESTOR else self.called_ae

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
        request = message_name(cmd)
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
        """A data set not in its presentation context's encoding (datasethead.encoding_mismatch):
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

    def _partial_pdu_finding(self, role: str, pdu: ControlPdu) -> None:
        """An A-ASSOCIATE-RQ/AC decoded field by field: say what is missing or wrong and
        what was kept."""
        p = pdu.decoded
        kept = (f"kept {'the AE titles and ' if p.calling_ae_title is not None else ''}"
                f"{p.items_kept} of the {p.items_seen} items seen")
        problems = "; ".join(pdu.problems)
        if pdu.missing:
            self.finding("warning", "pdu-incomplete",
                         f"{pdu.name} from the {role} is not whole in the capture "
                         f"({problems}): {kept}", pdu.first_frame)
        else:
            self.finding("error", "malformed-pdu",
                         f"{role}: {pdu.name} decoded field by field ({problems}): {kept}",
                         pdu.first_frame)

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
