"""What one capture's analysis gives (analysis.py): each DICOM association analysed to its
end (`FinishedAssociation`), the capture's own records (`CaptureResult`), and the callbacks
that hear of them as the packets flow. Records only: the tables (tables.py), the spool
(spool.py) and the live view (liveview.py) read these without the engine that makes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .association import Association
from .commitment import Transaction
from .mpps import StepLog
from .queries import KeyRecord, QueryRecord
from .records import FindingRecord, MessageRecord, ObjectRecord
from .spill import Spill
from .streams import ConnectionAttempt
from .tcpevidence import ConnectionEvidence
from .timing import AssociationTiming, OperationRecord


@dataclass
class FileStats:
    """One file of a capture (set), as the raw reader saw it."""

    label: str
    records: int
    first_ns: int | None
    last_ns: int | None
    link_type: int | None
    truncated: bool


@dataclass
class FinishedAssociation:
    """One DICOM association analysed to its end: what the tables need of it. Every
    association id in it (correlation columns, findings' owners) is a TCP stream number:
    tables.py numbers the associations of a capture."""

    assoc: Association
    messages: Spill[MessageRecord]
    objects: Spill[ObjectRecord]
    ops: Spill[OperationRecord]
    timing: AssociationTiming
    evidence: ConnectionEvidence | None
    queries: Spill[QueryRecord]
    query_keys: Spill[tuple[int, KeyRecord]]  # (op_index, key)
    #: the file its first packet is in (a ring-buffer set), else None
    label: str | None = None
    #: the provisional number its object files were named with (see _settle_object_names)
    number: int | None = None


#: on_attempt(attempt, called_ae): a connection to a DICOM service that never opened, and
#: the AE title last called there (None: none seen yet)
AttemptFn = Callable[[ConnectionAttempt, str | None], None]
#: on_association(finished): called once per DICOM association as soon as nothing later
#: in the capture can change its rows; the association is then dropped (flat memory).
AssociationFn = Callable[[FinishedAssociation], None]
#: on_previewed(mover, [(association, findings)]): a C-MOVE or C-GET association ended
#: (``mover``), and what correlation says now of it and of its callbacks: each one's
#: findings as they would be (qrpreview.py); the capture's end says it again, for the tables
PreviewFn = Callable[[FinishedAssociation,
                      list[tuple[FinishedAssociation, list[FindingRecord]]]], None]


@dataclass
class CaptureResult:
    """What one capture gave besides its associations (which went to ``on_association``,
    or, without one, are in ``associations`` in first-packet order)."""

    capture: str
    associations: list[FinishedAssociation] = field(default_factory=list)
    #: the TCP streams of every DICOM association, in first-packet order
    streams: list[int] = field(default_factory=list)
    #: findings of the capture (stream None) or of an association given by its stream,
    #: known only at the end (association-per-object)
    findings: list[tuple[int | None, FindingRecord]] = field(default_factory=list)
    packets: int = 0
    payload_bytes: int = 0
    #: each file of the capture (several for a ring-buffer set)
    files: list[FileStats] = field(default_factory=list)
    #: the whole capture, every record (raw engine; capinfos for the ek engine)
    records: int | None = None
    first_ns: int | None = None
    last_ns: int | None = None
    link_type: str | None = None
    elapsed_s: float = 0.0
    truncated: bool = False
    engine: str = ""
    attempts: list[ConnectionAttempt] = field(default_factory=list)
    #: per attempt (same order): the C-MOVE (stream, op_index) whose callback it was
    attempt_owners: dict[int, tuple[int, int]] = field(default_factory=dict)
    #: association counts per file label (sets)
    label_counts: dict[str, int] = field(default_factory=dict)
    #: Storage Commitment requests and results, matched (commitment.py)
    commitments: list[Transaction] = field(default_factory=list)
    #: MPPS procedure steps (mpps.py)
    steps: StepLog | None = None


ProgressFn = Callable[[int], None]
