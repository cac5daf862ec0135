"""What the association stage hands on (association.py makes them): its records, which
tables.py turns into rows and the analyses read; the protocols of the sinks it writes data
sets through (objects.py implements them); and the Upper Layer's codes in words (PS3.8 9.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from pydicom.uid import UID

from .dimse import CommandSet

REQUESTOR, ACCEPTOR = "requestor", "acceptor"


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


def endpoint_text(endpoint: tuple[str, int]) -> str:
    """``host:port``, an IPv6 host in brackets (``[::1]:104``), for findings' sentences."""
    host, port = endpoint
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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


def first_of(names: list[str], n: int) -> str:
    """The first ``n`` of ``names`` in a sentence, then how many more."""
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


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
    """What a stored object's first bytes say of it (datasethead.head_identity): the objects
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
    #: first bytes say, datasethead.head_identity)
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
