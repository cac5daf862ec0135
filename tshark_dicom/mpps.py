"""Modality Performed Procedure Step (PS3.4 F.7): each procedure step a modality reports
(N-CREATE, ``IN PROGRESS``) followed to the N-SET that ends it (``COMPLETED`` or
``DISCONTINUED``), and the images the final N-SET lists against the C-STOREs of the capture.
Pure functions and small records; analysis.py feeds them as associations settle and asks
for the findings when the capture ends (images are often stored after the MPPS completes).

A step is known by its SOP Instance UID: the N-CREATE's Affected SOP Instance UID (the
modality's, or the one the SCP gave in its response) and each N-SET's Requested SOP
Instance UID. A RIS shows a step whose N-SET never came as still in progress.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .association import Association
from .instances import StoredInstances
from .queries import IdentifierFn, read_identifier
from .records import REQUESTOR, FindingRecord, ObjectRecord
from .timing import OperationRecord, until_end_text

#: Modality Performed Procedure Step SOP Class (PS3.4 F.7).
MPPS = "1.2.840.10008.3.1.2.3.3"
#: The messages whose data sets this module reads (the sink keeps their bytes).
MPPS_COMMANDS = frozenset({"N-CREATE-RQ", "N-SET-RQ"})
#: Instance UIDs of the listed images kept per step (all are counted).
IMAGES_KEPT = 10_000
#: Missing images named in a finding.
NAMED = 3
IN_PROGRESS, COMPLETED, DISCONTINUED = "IN PROGRESS", "COMPLETED", "DISCONTINUED"

@dataclass(slots=True)
class StepMessage:
    """One N-CREATE or N-SET of a procedure step, as decoded."""

    kind: str  # create | set
    stream: int
    op: OperationRecord
    sender_ae: str | None  # the modality
    receiver_ae: str | None  # the MPPS SCP (a RIS)
    sop_instance_uid: str | None
    pps_status: str | None = None
    pps_id: str | None = None
    station_ae: str | None = None
    accession_number: str | None = None
    study_instance_uid: str | None = None
    image_count: int = 0  # images listed (Performed Series Sequence)
    images: list[str] = field(default_factory=list)  # their instance UIDs, IMAGES_KEPT
    discontinuation: str | None = None  # the reason's code meaning (and value)
    problem: str | None = None

    @property
    def accepted(self) -> bool:
        return self.op.status_category in ("Success", "Warning")


def step_message(stream: int, assoc: Association, op: OperationRecord,
                 identifier: IdentifierFn) -> StepMessage | None:
    """The MPPS N-CREATE or N-SET of ``op``; None for any other operation."""
    if op.sop_class_uid != MPPS or op.command not in ("N-CREATE", "N-SET"):
        return None
    mine = op.scu == REQUESTOR
    aes = (assoc.calling_ae, assoc.called_ae) if mine else (assoc.called_ae, assoc.calling_ae)
    msg = StepMessage("create" if op.command == "N-CREATE" else "set", stream, op, aes[0],
                      aes[1], op.sop_instance_uid)
    obj = identifier(op.request_index)[0]
    if obj is None:
        msg.problem = "no data set"
    elif obj.identifier is None:
        msg.problem = ("data set longer than the tool keeps" if obj.complete else
                       f"data set incomplete: {obj.problem}")
    else:
        try:
            _read(msg, obj)
        except Exception as exc:  # pydicom converts values lazily: any of them may be bad
            msg.problem = f"data set not readable: {exc}"
    return msg


def _text(ds: Any, keyword: str) -> str | None:
    value = ds.get(keyword)
    text = str(value).strip(" \x00") if value is not None else ""
    return text or None


def _read(msg: StepMessage, obj: ObjectRecord) -> None:
    assert obj.identifier is not None
    ds = read_identifier(obj.identifier, obj.transfer_syntax)
    msg.pps_status = _text(ds, "PerformedProcedureStepStatus")
    msg.pps_id = _text(ds, "PerformedProcedureStepID")
    msg.station_ae = _text(ds, "PerformedStationAETitle")
    scheduled = ds.get("ScheduledStepAttributesSequence") or []
    if scheduled:
        msg.accession_number = _text(scheduled[0], "AccessionNumber")
        msg.study_instance_uid = _text(scheduled[0], "StudyInstanceUID")
    for series in ds.get("PerformedSeriesSequence") or []:
        for image in series.get("ReferencedImageSequence") or []:
            msg.image_count += 1
            uid = _text(image, "ReferencedSOPInstanceUID")
            if uid and len(msg.images) < IMAGES_KEPT:
                msg.images.append(uid)
    reasons = ds.get("PerformedProcedureStepDiscontinuationReasonCodeSequence") or []
    if reasons:
        meaning, value = _text(reasons[0], "CodeMeaning"), _text(reasons[0], "CodeValue")
        msg.discontinuation = (f"{meaning} ({value})" if meaning and value else
                               meaning or value)


@dataclass
class Step:
    """A procedure step: its N-CREATE (if in the capture) and every N-SET of it."""

    uid: str | None
    create: StepMessage | None = None
    sets: list[StepMessage] = field(default_factory=list)

    @property
    def first(self) -> StepMessage:
        first = self.create or (self.sets[0] if self.sets else None)
        assert first is not None
        return first

    @property
    def final(self) -> StepMessage | None:
        """The last accepted N-SET that ended the step (COMPLETED or DISCONTINUED)."""
        ended = [s for s in self.sets if s.accepted and s.pps_status in (COMPLETED,
                                                                           DISCONTINUED)]
        return ended[-1] if ended else None

    @property
    def status(self) -> str | None:
        """The step's status as the SCP accepted it last."""
        for msg in reversed([*([self.create] if self.create else []), *self.sets]):
            if msg.accepted and msg.pps_status:
                return msg.pps_status
        return None

    @property
    def outcome(self) -> str:
        status = self.status
        if status == COMPLETED:
            return "completed"
        if status == DISCONTINUED:
            return "discontinued"
        if self.create is not None and not self.create.accepted:
            return "refused"
        return "in-progress"

    @property
    def images(self) -> StepMessage | None:
        """The last accepted N-SET that lists images (the final one, usually)."""
        listing = [s for s in self.sets if s.accepted and s.image_count]
        return listing[-1] if listing else None


class StepLog:
    """A capture's procedure steps, by SOP Instance UID, in the order first seen."""

    def __init__(self, stored: StoredInstances) -> None:
        self.stored = stored
        self.steps: list[Step] = []
        self._by_uid: dict[str, Step] = {}

    def add(self, msg: StepMessage) -> None:
        uid = msg.sop_instance_uid
        step = self._by_uid.get(uid) if uid else None
        if step is None or (msg.kind == "create" and step.create is not None):
            step = Step(uid)
            self.steps.append(step)
            if uid:
                self._by_uid[uid] = step
        if msg.kind == "create":
            step.create = msg
        else:
            step.sets.append(msg)

    def findings(self, end_ns: int | None) -> list[tuple[int | None, FindingRecord]]:
        """Per step (stream of the association the finding belongs to, finding): left in
        progress, discontinued, images listed but not stored in the capture."""
        out: list[tuple[int | None, FindingRecord]] = []
        for step in self.steps:
            if step.outcome == "in-progress" and step.create is not None \
                    and step.create.accepted:
                out.append((step.create.stream,
                            _not_completed(step, self._next(step), end_ns)))
            final = step.final
            if step.outcome == "discontinued" and final is not None:
                out.append((final.stream, _discontinued(step, final)))
            listing = step.images
            if listing is not None and step.outcome == "completed":
                finding = self._not_stored(step, listing)
                if finding is not None:
                    out.append((listing.stream, finding))
        return out

    def _next(self, step: Step) -> Step | None:
        """A step the same modality created later: it went on to another exam."""
        create = step.create
        assert create is not None
        return next((o for o in self.steps if o.create is not None and o is not step
                     and o.create.sender_ae == create.sender_ae
                     and o.create.op.request_first_ns > create.op.request_complete_ns), None)

    def stored_count(self, step: Step) -> int | None:
        """How many of the images the step lists were stored successfully in the capture
        (None when it lists none, or lists more than are kept)."""
        listing = step.images
        if listing is None or len(listing.images) < listing.image_count:
            return None
        return sum(self.stored.stored(uid) for uid in listing.images)

    def _not_stored(self, step: Step, listing: StepMessage) -> FindingRecord | None:
        stored = self.stored_count(step)
        # none stored: this capture point does not see the modality's stores at all
        if stored is None or stored == 0 or stored == listing.image_count:
            return None
        if self.stored.full:
            return None  # past the stores remembered, "not stored" is not known
        missing = [uid for uid in listing.images if not self.stored.stored(uid)]
        named = ", ".join(f"{uid} ({self.stored.sent_text(uid)})" for uid in missing[:NAMED])
        more = f" and {len(missing) - NAMED} more" if len(missing) > NAMED else ""
        who = _who(step)
        return FindingRecord(
            listing.op.request_index, listing.op.first_frame, "warning",
            "mpps-images-not-stored",
            f"{who} completed with {listing.image_count} image(s) listed, but only {stored} "
            f"of them were stored successfully in this capture; not stored: {named}{more}; "
            "the study may be incomplete on the archive: check the modality's send queue "
            "and the archive's log for them")


def _who(step: Step) -> str:
    """'Procedure step PPS1 (accession ACC1) of CT01 to RIS' from what the messages said."""
    msgs = [m for m in ([step.create] if step.create else []) + step.sets]
    pps_id = next((m.pps_id for m in msgs if m.pps_id), None)
    accession = next((m.accession_number for m in msgs if m.accession_number), None)
    first = step.first
    named = f"procedure step {pps_id}" if pps_id else "a procedure step"
    details = ", ".join(x for x in (f"accession {accession}" if accession else "",
                                    f"MPPS {step.uid}" if step.uid else "") if x)
    return (f"{first.sender_ae or 'the modality'}'s {named}" + (f" ({details})" if details
                                                                 else "")
            + f" reported to {first.receiver_ae or 'the MPPS SCP'}")


def _not_completed(step: Step, later: Step | None, end_ns: int | None) -> FindingRecord:
    """A warning where the traffic shows the step will not be ended (its N-SET was
    refused, or the modality went on to another exam); else a note: the capture may have
    ended before the exam did (exams take minutes)."""
    create = step.create
    assert create is not None
    when = until_end_text(create.op, end_ns, "N-CREATE")
    refused = [s for s in step.sets if not s.accepted]
    if refused:
        last = refused[-1]
        text = f": {last.op.status_text}" if last.op.status_text else ""
        why = (f"; its N-SET to {last.pps_status or 'a new status'} was refused "
               f"({last.op.status_hex}{text})")
    elif later is not None:
        pps = later.first.pps_id
        why = (f"; {create.sender_ae or 'the modality'} went on to "
               f"{'procedure step ' + pps if pps else 'another procedure step'} afterwards")
    else:
        why = "; the capture may have ended before the exam did"
    severity = "warning" if refused or later is not None else "note"
    return FindingRecord(
        create.op.request_index, create.op.first_frame, severity, "mpps-not-completed",
        f"{_who(step)} is still IN PROGRESS: no N-SET completed or discontinued it {when}"
        f"{why}; the RIS shows the exam as in progress until one does: check that the "
        "modality ends the step (and whether the RIS accepted it)")


def _discontinued(step: Step, final: StepMessage) -> FindingRecord:
    reason = (f" with reason '{final.discontinuation}'" if final.discontinuation
              else " without a reason")
    return FindingRecord(
        final.op.request_index, final.op.first_frame, "note", "mpps-discontinued",
        f"{_who(step)} was DISCONTINUED{reason}")


__all__ = ["MPPS", "MPPS_COMMANDS", "Step", "StepLog", "StepMessage", "step_message"]
