"""Data set bytes -> Part-10 files, streamed to disk; data set helpers.

:class:`ObjectSink` receives one data set's bytes as its P-DATA fragments
arrive, hashes them, and writes a DICOM Part-10 file (PS3.10 7.1): a 128-byte
preamble, ``DICM``, the File Meta Information (group 0002, written by pydicom)
and then the data set bytes exactly as they travelled.  It never holds the
whole data set in memory, and a data set that does not complete is never left
behind as a file that looks complete.

Helpers look at the first bytes of a data set: :func:`infer_transfer_syntax`
for captures that start after the association was negotiated, and
:func:`dataset_uids` to check the SOP Class/Instance UIDs against the command.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import queue
import re
import shutil
import struct
import threading
import zlib
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Final

from pydicom import config
from pydicom.datadict import keyword_dict
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import data_element_generator
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import RE_VALID_UID, UID
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, VR

from .queries import Text
from .records import Identity
from .sidehash import HASHER

__all__ = [
    "EXPLICIT_VR_BIG_ENDIAN",
    "EXPLICIT_VR_LITTLE_ENDIAN",
    "IMPLEMENTATION_CLASS_UID",
    "IMPLEMENTATION_VERSION_NAME",
    "IMPLICIT_VR_LITTLE_ENDIAN",
    "ObjectSink",
    "dataset_uids",
    "dataset_uids_differ",
    "encoding_mismatch",
    "infer_transfer_syntax",
    "pixel_data_encapsulated_on_native",
    "pixel_data_native_on_encapsulated",
    "safe_object_name",
]

#: Our Implementation Class UID (PS3.7 D.3.3.2), under the UUID-derived 2.25
#: root (PS3.5 B.2); generated once and fixed.
IMPLEMENTATION_CLASS_UID: Final = "2.25.62779613234802761010803823464633997489"
#: Our Implementation Version Name (PS3.7 D.3.3.2.2, at most 16 characters).
IMPLEMENTATION_VERSION_NAME: Final = "TSHARK_DICOM_01"

IMPLICIT_VR_LITTLE_ENDIAN: Final = "1.2.840.10008.1.2"
EXPLICIT_VR_LITTLE_ENDIAN: Final = "1.2.840.10008.1.2.1"
EXPLICIT_VR_BIG_ENDIAN: Final = "1.2.840.10008.1.2.2"

#: How many leading bytes of a data set an :class:`ObjectSink` keeps.
HEAD_SIZE: Final = 512
#: How many it keeps of an image on an encapsulated (compressed) context, where the Pixel
#: Data element's header is looked for (`pixel_data_native_on_encapsulated`): a CT or MR's
#: is within its first few KiB; an enhanced multi-frame image's per-frame functional groups
#: can push it further (about 300 bytes a frame), beyond this it is not judged.
PIXEL_HEAD_SIZE: Final = 1 << 18
#: How many it keeps of any other data set, where `head_identity` looks for the exam,
#: study and series it belongs to: groups 0008 to 0020 come first, within a few KiB of an
#: image's start (pydicom's CT_small.dcm has (0020,000E) at 1.4 KiB; a scanner's private
#: group 0009 or 0019, or a long Referenced Image Sequence, adds some KiB before it); one
#: that is further on (200 referenced images: 28 KiB) is not read. Deflated data sets:
#: 64 KiB of their deflated bytes.
IDENTITY_HEAD_SIZE: Final = 1 << 16
#: What `head_identity` reads: tag -> the objects table's column.
IDENTITY: Final = {0x00080050: "accession_number", 0x00080060: "modality",
                   0x0020000D: "study_instance_uid", 0x0020000E: "series_instance_uid"}
#: Text a stored object's Specific Character Set governs, checked against it
#: (queries.ObjectTextTally): tag -> (keyword, VR), all before (0020,000E).
CHECKED_TEXT: Final = {0x00080080: ("InstitutionName", "LO"),
                       0x00080090: ("ReferringPhysicianName", "PN"),
                       0x00081030: ("StudyDescription", "LO"),
                       0x0008103E: ("SeriesDescription", "LO"),
                       0x00100010: ("PatientName", "PN")}
_CHARSET_TAG: Final = 0x00080005
_IDENTITY_TAGS: Final = frozenset({*IDENTITY, *CHECKED_TEXT, _CHARSET_TAG})
_SOP_TAGS: Final = frozenset({0x00080016, 0x00080018})

_PREAMBLE: Final = b"\x00" * 128 + b"DICM"
_COPY_CHUNK: Final = 1 << 20
_BATCH: Final = 1 << 18
_NAME_RE: Final = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]*")
_MAX_UID_PART: Final = 100


def safe_object_name(sop_instance_uid: str | None, assoc_id: int, msg_index: int) -> str:
    """A file name for an object, made only of ``[0-9A-Za-z._-]``.

    ``AAAA-MMMMMM-UID.dcm``: the association and message numbers make it unique
    and keep it from starting with a dot; the UID from the traffic is only
    decoration, cleaned (other characters become ``_``, runs of dots one dot,
    no leading dot) and capped at 100 characters, so it can never be a path.
    """
    if assoc_id < 0 or msg_index < 0:
        raise ValueError("assoc_id and msg_index must not be negative")
    uid = sop_instance_uid if isinstance(sop_instance_uid, str) else ""
    cleaned = re.sub(r"[^0-9A-Za-z.-]", "_", uid)
    cleaned = re.sub(r"\.{2,}", ".", cleaned).strip(".")[:_MAX_UID_PART].rstrip(".")
    stem = f"{assoc_id:04d}-{msg_index:06d}"
    return f"{stem}-{cleaned}.dcm" if cleaned else f"{stem}.dcm"


def _valid_uid(value: str | None) -> str | None:
    """``value`` without padding if it is a valid UID (PS3.5 9.1), else None."""
    if not isinstance(value, str):
        return None
    value = value.rstrip("\0 ")
    # The regex, not UID(value).is_valid: constructing a UID from an invalid
    # string makes pydicom warn and log, which hostile traffic must not cause.
    return value if len(value) <= 64 and re.fullmatch(RE_VALID_UID, value) else None


def _valid_ae(value: str | None) -> str | None:
    """``value`` stripped if it is a valid AE title (PS3.5 6.2: <= 16, no ``\\``)."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or len(value) > 16 or "\\" in value:
        return None
    if not all(0x20 <= ord(c) < 0x7F for c in value):
        return None
    return value


class _Writer:
    """One daemon thread that hashes and writes data-set batches in submission order."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[ObjectSink, bytes]] = queue.Queue(maxsize=8)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, sink: ObjectSink, data: bytes) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="tshark-dicom-writer",
                                                daemon=True)
                self._thread.start()
        self._queue.put((sink, data))

    def drain(self) -> None:
        self._queue.join()

    def _run(self) -> None:
        while True:
            sink, data = self._queue.get()
            try:
                sink._consume(data)
            finally:
                self._queue.task_done()


_WRITER = _Writer()


class ObjectSink:
    """Streams one data set to a Part-10 file while hashing it (PS3.10 7.1).

    With ``out_dir=None`` it only hashes and counts.  Otherwise the bytes go to
    ``out_dir/NAME.partial``; :meth:`finish` turns that into ``out_dir/NAME``,
    :meth:`discard` deletes it.  When the transfer syntax is known up front the
    meta header is written first and ``finish`` is a rename; when it is not, the
    data goes to the partial file alone and ``finish`` writes the meta header
    (transfer syntax inferred from the data set's first bytes) and copies the
    partial file after it in 1 MiB chunks.  Either way memory stays bounded.

    Meta UIDs (the choice, PS3.10 7.1): Media Storage SOP Class/Instance UID come
    from the command when valid, else from the data set's own (0008,0016)/
    (0008,0018) when valid, else the element is left out, which keeps the file
    readable rather than writing bytes that are not a UID; ``meta_notes`` says
    what was left out or substituted.
    """

    def __init__(
        self,
        out_dir: Path | None,
        name: str,
        *,
        sop_class_uid: str | None,
        sop_instance_uid: str | None,
        transfer_syntax: str | None,
        source_ae: str | None,
        keep: int = 0,
    ) -> None:
        if not _NAME_RE.fullmatch(name) or ".." in name:
            raise ValueError(f"unsafe object file name {name!r}")
        self.out_dir = out_dir
        self.name = name
        self.sop_class_uid = sop_class_uid
        self.sop_instance_uid = sop_instance_uid
        self.transfer_syntax = transfer_syntax
        self.source_ae = source_ae
        self.problem: str | None = None
        self._hash = hashlib.sha256()
        #: the data set's key in the hashing helper (sidehash.py) once its first batch went
        #: there, and its digest once asked for after `finish` or `discard`
        self._side: int | None = None
        self._side_digest: str | None = None
        self._batch = bytearray()
        self._submitted = False  # a batch went to the writer thread
        self._error: OSError | None = None
        self._nbytes = 0
        self._nbytes_hashed = 0  # by this process (`_consume`)
        self._head = bytearray()
        self._head_size = PIXEL_HEAD_SIZE if _encapsulated_image(transfer_syntax, sop_class_uid) \
            else IDENTITY_HEAD_SIZE
        self._tail = b""  # the last TAIL_SIZE bytes handed on (`_submit`)
        #: up to ``keep`` bytes kept in memory (query identifiers, which later stages
        #: decode); None once the data set is longer than that
        self._keep = keep
        self._kept: bytearray | None = bytearray() if keep else None
        self._file: BinaryIO | None = None
        self._meta_first = False
        self._meta_ts: str | None = None
        self._meta_len = 0
        self._notes: list[str] = []
        self._state = "open"  # -> "finished" | "discarded"

    # -- properties -----------------------------------------------------------

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the data set bytes received so far."""
        if self._state == "open":
            self._settle()
        if self._side is not None:
            if self._state == "open":
                return HASHER.digest(self._side, final=False)
            if self._side_digest is None:  # no more bytes: the helper forgets it
                self._side_digest = HASHER.digest(self._side, final=True)
            return self._side_digest
        return self._hash.hexdigest()

    @property
    def digest_pending(self) -> bool:
        """Asking for `sha256` now would wait for the hashing helper (sidehash.py), which
        may still be hashing this data set's last bytes: better asked later (the
        association asks for a batch of them at once, in `Association.drain`)."""
        return self._side is not None and self._side_digest is None

    @property
    def nbytes(self) -> int:
        """Number of data set bytes received so far."""
        return self._nbytes

    @property
    def head(self) -> bytes:
        """The first (up to 512) bytes of the data set."""
        return bytes(self._head[:HEAD_SIZE])

    def identity(self) -> Identity:
        """Which exam, study and series the data set belongs to, as far as its first bytes
        say, and its text beyond ASCII (`head_identity`)."""
        return head_identity(bytes(self._head), self.transfer_syntax)

    @property
    def kept(self) -> bytes | None:
        """The whole data set when it was kept (``keep`` > 0 and no longer than that)."""
        return bytes(self._kept) if self._kept is not None else None

    @property
    def meta_notes(self) -> tuple[str, ...]:
        """What the meta header left out or took from elsewhere, and why."""
        return tuple(self._notes)

    def check_encoding(self) -> str | None:
        """The encoding the data set is in when its first bytes plainly are not in
        ``transfer_syntax``'s (`encoding_mismatch`). The Part-10 file then says that one, so
        that it opens (the data set's bytes stay as they travelled), and ``meta_notes`` why.
        Before `finish`."""
        stated = self.transfer_syntax
        actual = encoding_mismatch(stated, self.head)
        if actual is not None and stated is not None:
            self._notes.append(
                f"TransferSyntaxUID: the data set is encoded as {UID(actual).name}, not in "
                f"the context's {UID(stated).name} ({stated}); {actual} written")
            self.transfer_syntax = actual
        return actual

    def check_pixel_data(self, sop_class_uid: str | None) -> str | None:
        """How an image's pixel data is encoded when that is not what ``transfer_syntax``
        says, else None; ``meta_notes`` says what the file then is. Before `finish`.

        - ``"encapsulated"``: the data set ends in encapsulated pixel data
          (`pixel_data_encapsulated_on_native`) though the transfer syntax is native. The
          file keeps the context's transfer syntax and will not read: which compression the
          fragments hold is not known here.
        - ``"native"``: its Pixel Data has a defined length (`pixel_data_native_on_encapsulated`)
          though the transfer syntax is encapsulated. Every encapsulated transfer syntax is
          Explicit VR Little Endian around the pixel data, so the file says Explicit VR Little
          Endian and opens, pixel data included.
        """
        # the data set's last bytes: those still gathered, after those handed on
        tail = (self._tail + bytes(self._batch[-TAIL_SIZE:]))[-TAIL_SIZE:]
        stated = self.transfer_syntax
        if stated is None:
            return None
        if pixel_data_encapsulated_on_native(stated, sop_class_uid, tail):
            self._notes.append(
                f"TransferSyntaxUID: the context's {UID(stated).name} written, "
                "but the pixel data is encapsulated (compressed fragments): a reader takes "
                "it for native pixel data and fails")
            return "encapsulated"
        if pixel_data_native_on_encapsulated(stated, sop_class_uid, self._head):
            self._notes.append(
                f"TransferSyntaxUID: the pixel data is native (a value of defined length), "
                f"not encapsulated as the context's {UID(stated).name} ({stated}) says; "
                f"{EXPLICIT_VR_LITTLE_ENDIAN} written, the encoding the data set is in")
            self.transfer_syntax = EXPLICIT_VR_LITTLE_ENDIAN
            return "native"
        return None

    def check_uids(self) -> tuple[str | None, str | None] | None:
        """The data set's own SOP Class and Instance UIDs, (0008,0016) and (0008,0018), when
        one of them is not the command's (`dataset_uids_differ`), else None; ``meta_notes``
        then says which the file's header took. Before `finish`."""
        own = dataset_uids_differ(self._head[:HEAD_SIZE], self.transfer_syntax,
                                  self.sop_class_uid, self.sop_instance_uid)
        if own is not None:
            for keyword, command, data in (
                    ("MediaStorageSOPClassUID", self.sop_class_uid, own[0]),
                    ("MediaStorageSOPInstanceUID", self.sop_instance_uid, own[1])):
                if data is not None and data != command:
                    self._notes.append(f"{keyword}: the command's {command}; the data set "
                                       f"says {data}")
        return own

    @property
    def partial_path(self) -> Path | None:
        """Where the incomplete file lives while bytes arrive."""
        return None if self.out_dir is None else self.out_dir / f"{self.name}.partial"

    # -- streaming ------------------------------------------------------------

    def write(self, chunk: bytes | bytearray | memoryview) -> None:
        """Add the next bytes of the data set.

        Chunks (one TCP segment's worth, ~1.4 KB) are gathered into 256 KiB batches before
        they are hashed and written: one call per batch instead of two per segment. A bytes
        chunk of a batch's size or more (messages.py gathers them) goes on without a copy.
        """
        if self._state != "open":
            raise RuntimeError(f"ObjectSink {self.name} is {self._state}")
        batch = self._batch
        whole: bytes | None = None
        data: bytes | bytearray = batch
        before = len(batch)
        if not batch and isinstance(chunk, bytes) and len(chunk) >= _BATCH:
            whole = data = chunk
            self._nbytes += len(chunk)
        else:
            batch += chunk
            self._nbytes += len(batch) - before
        if len(self._head) < self._head_size:
            self._head += data[before:before + self._head_size - len(self._head)]
        if self._kept is not None:
            if self._nbytes > self._keep:
                self._kept = None
            else:
                self._kept += chunk
        if whole is not None:
            self._submit(whole)
        elif len(batch) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        """Hand the batch on (`_submit`): to the writer thread when there is a file to
        write (writing and hashing release the GIL and run on another core while packets
        are decoded; the queue is bounded), else to the hash right here."""
        batch = self._batch
        if not batch:
            return
        self._submit(bytes(batch))
        batch.clear()

    def _handed_on(self, data: bytes) -> bytes:
        """``data`` leaves the batch: its last bytes are remembered (once a batch, not once
        a packet), for `check_pixel_data`."""
        self._tail = (self._tail + data[-TAIL_SIZE:])[-TAIL_SIZE:]
        return data

    def _submit(self, data: bytes) -> None:
        self._handed_on(data)
        if self.out_dir is None:
            # Only hashing (no file): by the hashing helper process where a session allows
            # one (sidehash.py: store_1gb --no-objects 2.6 -> 2.1 s), else here. Handing the
            # batch to the writer thread cost more than the hashing itself once the packet
            # loop was compiled (its GIL hand-overs): 1 GB 3.3 -> 3.1 s, side by side.
            if self._side is None and self._nbytes_hashed == 0:
                self._side = HASHER.open()
            if self._side is not None:
                HASHER.update(self._side, data)
            else:
                self._consume(data)
            return
        self._open_once()
        self._submitted = True
        _WRITER.submit(self, data)

    def _consume(self, data: bytes) -> None:
        """On the writer thread: one batch, in order."""
        if self._error is not None:
            return
        self._nbytes_hashed += len(data)
        try:
            self._hash.update(data)
            if self._file is not None:
                self._file.write(data)
        except OSError as exc:  # disk full and the like: reported at finish()
            self._error = exc

    def _settle(self) -> None:
        """Wait until every batch of this sink is hashed and written. A data set that
        never filled a batch (a query identifier, a small object) is done here: handing
        it to the writer thread and waiting for it costs more than the work (a capture
        of a million C-FIND messages: 138.6 -> 132.6 s)."""
        if self._side is not None:  # the rest to the helper too, in order
            if self._batch:
                HASHER.update(self._side, self._handed_on(bytes(self._batch)))
                self._batch.clear()
        elif not self._submitted:
            self._open_once()
            self._consume(self._handed_on(bytes(self._batch)))
            self._batch.clear()
        else:
            self._flush()
            _WRITER.drain()
        if self._error is not None:
            raise self._error

    def _open_once(self) -> None:
        if self.out_dir is not None and self._file is None:
            self._open()

    def _open(self) -> None:
        path = self.partial_path
        assert path is not None and self.out_dir is not None
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "wb")  # noqa: SIM115 - closed in finish/discard
        ts = _valid_uid(self.transfer_syntax)
        if ts and _valid_uid(self.sop_class_uid) and _valid_uid(self.sop_instance_uid):
            # The usual case: the header needs nothing from the data set, so it
            # goes first and finish() is a rename.
            meta = self._meta_bytes(ts)
            self._file.write(meta)
            self._meta_first, self._meta_ts, self._meta_len = True, ts, len(meta)

    def finish(self) -> str | None:
        """The data set is complete: write the Part-10 file, return its name.

        Returns ``None`` when not writing files (``out_dir`` is None).
        """
        if self._state != "open":
            raise RuntimeError(f"ObjectSink {self.name} is {self._state}")
        self._settle()
        self._state = "finished"
        if self.out_dir is None:
            return None
        if self._file is None:
            self._open()  # an empty data set still gets its file
        assert self._file is not None
        partial = self.partial_path
        assert partial is not None
        final = self.out_dir / self.name
        try:
            self._file.close()
            ts = _valid_uid(self.transfer_syntax)
            if self._meta_first and ts == self._meta_ts:
                os.replace(partial, final)
            else:
                # No header yet, or the caller changed transfer_syntax after it
                # was written: build the file as header + a copy of the data.
                if ts is None:
                    ts = infer_transfer_syntax(self.head)
                    self._notes.append(
                        f"TransferSyntaxUID: {self.transfer_syntax!r} unusable, "
                        f"inferred {ts!r} from the data set"
                    )
                staging = self.out_dir / f"{self.name}.staging"
                try:
                    with open(staging, "wb") as out, open(partial, "rb") as src:
                        out.write(self._meta_bytes(ts))
                        src.seek(self._meta_len)
                        shutil.copyfileobj(src, out, _COPY_CHUNK)
                    os.replace(staging, final)
                finally:
                    staging.unlink(missing_ok=True)
                partial.unlink(missing_ok=True)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return self.name

    def discard(self, reason: str) -> None:
        """The data set did not complete: delete what was written, keep the reason."""
        if self._state == "finished":
            raise RuntimeError(f"ObjectSink {self.name} is finished")
        self._batch.clear()
        _WRITER.drain()
        self._state = "discarded"
        self.problem = reason
        if self._file is not None:
            self._file.close()
        path = self.partial_path
        if path is not None:
            path.unlink(missing_ok=True)

    def __enter__(self) -> ObjectSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._state == "open":
            self.discard(f"not finished ({exc_type.__name__ if exc_type else 'closed'})")

    # -- meta header ----------------------------------------------------------

    def _meta_bytes(self, transfer_syntax: str | None) -> bytes:
        """Preamble, ``DICM`` and group 0002 (PS3.10 7.1), encoded by pydicom.

        ``transfer_syntax`` must already be a valid UID or None.
        """
        meta = FileMetaDataset()
        meta.FileMetaInformationGroupLength = 0  # pydicom fills in the real length
        meta.FileMetaInformationVersion = b"\x00\x01"
        own: tuple[str | None, str | None] = (None, None)
        for index, (keyword, given) in enumerate(
            (
                ("MediaStorageSOPClassUID", self.sop_class_uid),
                ("MediaStorageSOPInstanceUID", self.sop_instance_uid),
            )
        ):
            value = _valid_uid(given)
            if value is not None:
                setattr(meta, keyword, UID(value))
                continue
            raw = given.rstrip("\0 ") if isinstance(given, str) else ""
            if raw:
                # SPEC: the value comes from the command. An invalid one is written exactly
                # as it travelled (pydicom's validation off), so the file says what was sent;
                # the association reports the invalid UID as a finding.
                tag = keyword_dict[keyword]
                meta[tag] = DataElement(tag, "UI", raw, validation_mode=config.IGNORE)
                self._notes.append(f"{keyword}: {raw!r} is not a valid UID, written as sent")
                continue
            if own == (None, None):
                own = dataset_uids(self.head, transfer_syntax)
            value = _valid_uid(own[index])
            if value is not None:
                setattr(meta, keyword, UID(value))
            what = "taken from the data set" if value else "left out"
            self._notes.append(f"{keyword}: not in the command, {what}")
        if transfer_syntax is not None:
            meta.TransferSyntaxUID = UID(transfer_syntax)
        else:
            self._notes.append("TransferSyntaxUID: unknown, left out")
        meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
        meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
        ae = _valid_ae(self.source_ae)
        if ae is not None:
            meta.SourceApplicationEntityTitle = ae
        elif self.source_ae:
            self._notes.append(
                f"SourceApplicationEntityTitle: {self.source_ae!r} invalid, left out"
            )
        buf = DicomBytesIO()
        # enforce_standard=False: we set every element ourselves, and it must
        # not refuse a header that had to leave out an invalid UID.
        # pydicom validates values as it writes them and warns (and logs) for each invalid
        # one; an invalid UID here is deliberate and already in meta_notes and the findings.
        previous = config.settings.writing_validation_mode
        config.settings.writing_validation_mode = config.IGNORE
        try:
            write_file_meta_info(buf, meta, enforce_standard=False)
        finally:
            config.settings.writing_validation_mode = previous
        return _PREAMBLE + buf.getvalue()


# -- Transfer syntax inference --------------------------------------------------

_VRS: Final = frozenset(v.value.encode("ascii") for v in VR if len(v.value) == 2)
_LONG_VRS: Final = frozenset(str(v).encode("ascii") for v in EXPLICIT_VR_LENGTH_32)
# Standard groups from pydicom's dictionary, plus repeating groups (PS3.5 7.6).
_STANDARD_GROUPS: Final = frozenset(
    {tag >> 16 for tag in keyword_dict.values()} - {0x0000, 0x0002, 0xFFFE}
    | {0x1000, 0x1010}
    | set(range(0x5000, 0x5100, 2))
    | set(range(0x6000, 0x6100, 2))
)


_KNOWN_TAGS: Final = frozenset(keyword_dict.values())


def _walk_score(head: bytes, implicit: bool, little: bool) -> int:
    """How many element headers parse consistently in ``head``; -1 if one does not.

    Consistent means (PS3.5 7.1): the first tag is in pydicom's dictionary,
    later groups are standard or private (odd), tags ascend, explicit VRs are real
    VRs, 4-byte-length VRs have zero reserved bytes, and defined lengths are
    even.  The walk stops at the end of ``head`` or at an undefined length.
    """
    order = "<" if little else ">"
    offset, count, previous = 0, 0, -1
    while offset + 8 <= len(head):
        group, elem = struct.unpack_from(f"{order}HH", head, offset)
        tag = group << 16 | elem
        if count == 0:  # a known tag, or a group length in a standard group
            plausible = tag in _KNOWN_TAGS or (elem == 0 and group in _STANDARD_GROUPS)
        else:
            plausible = group in _STANDARD_GROUPS or (group & 1 and group > 0x0008)
        if not plausible or tag <= previous:
            return -1
        previous = tag
        if implicit:
            (length,) = struct.unpack_from(f"{order}L", head, offset + 4)
            offset += 8
        else:
            vr = head[offset + 4 : offset + 6]
            if vr not in _VRS:
                return -1
            if vr in _LONG_VRS:
                if head[offset + 6 : offset + 8] != b"\0\0":
                    return -1
                if offset + 12 > len(head):
                    return count + 1
                (length,) = struct.unpack_from(f"{order}L", head, offset + 8)
                offset += 12
            else:
                (length,) = struct.unpack_from(f"{order}H", head, offset + 6)
                offset += 8
        count += 1
        if length == 0xFFFFFFFF:
            break
        if length & 1:
            return -1
        offset += length
    return count


def infer_transfer_syntax(head: bytes) -> str | None:
    """Guess a data set's transfer syntax from its first bytes (PS3.5 7.1, A.1-A.3).

    Tries Explicit VR Little Endian, Implicit VR Little Endian and Explicit VR
    Big Endian, and returns the UID of the one under which the most element
    headers parse consistently (ties in that order).  Returns None when none
    does, e.g. for deflated data, or when fewer than 8 bytes are given.
    """
    head = bytes(head[:HEAD_SIZE])
    if len(head) < 8:
        return None
    best: tuple[int, str | None] = (0, None)
    for uid, implicit, little in _ENCODINGS:
        score = _walk_score(head, implicit, little)
        if score > best[0]:
            best = (score, uid)
    return best[1]


#: The three encodings a data set's bytes can be in (deflate and pixel data compression
#: aside): transfer syntax, implicit VR, little endian (PS3.5 7.1, A.1-A.3).
_ENCODINGS: Final = (
    (EXPLICIT_VR_LITTLE_ENDIAN, False, True),
    (IMPLICIT_VR_LITTLE_ENDIAN, True, True),
    (EXPLICIT_VR_BIG_ENDIAN, False, False),
)
#: Element headers that must parse in a row in another encoding before a data set is said
#: not to be in its transfer syntax's.
MISMATCH_ELEMENTS: Final = 3


@functools.lru_cache(maxsize=64)
def _encoding(transfer_syntax: str) -> tuple[bool, bool] | None:
    """(implicit VR, little endian) of a transfer syntax pydicom knows and that is not
    deflated; None otherwise (a few transfer syntaxes, asked for every data set)."""
    ts = _valid_uid(transfer_syntax)
    if ts is None:
        return None
    try:
        uid = UID(ts)
        if not uid.is_transfer_syntax or uid.is_deflated:
            return None
        return uid.is_implicit_VR, uid.is_little_endian
    except ValueError:  # a private transfer syntax: its encoding is not known
        return None


def encoding_mismatch(transfer_syntax: str | None, head: bytes) -> str | None:
    """The encoding (as the transfer syntax UID of that name: Explicit or Implicit VR Little
    Endian, Explicit VR Big Endian) a data set's first bytes are in, when they plainly are
    not in ``transfer_syntax``'s: at most one element header parses in its encoding, and at
    least MISMATCH_ELEMENTS in a row in the other's. A data set is encoded in its
    presentation context's transfer syntax (PS3.5 10.1; PS3.7 9.3.1); a receiver reading
    it in another misreads every element. None when they agree or it cannot be told
    (deflated data, a transfer syntax pydicom does not know, a short head)."""
    mine = _encoding(transfer_syntax) if transfer_syntax is not None else None
    if mine is None:
        return None
    head = bytes(head[:HEAD_SIZE])
    if _walk_score(head, *mine) >= 2:
        return None
    for other, implicit, little in _ENCODINGS:
        if (implicit, little) != mine and _walk_score(head, implicit, little) >= \
                MISMATCH_ELEMENTS:
            return other
    return None


#: A data set's last bytes kept (`ObjectSink.check_pixel_data`).
TAIL_SIZE: Final = 8
#: The Sequence Delimitation Item (FFFE,E0DD) with its zero length, little endian: how
#: encapsulated pixel data, the last element of an image, ends (PS3.5 A.4).
SEQUENCE_DELIMITER: Final = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def pixel_data_encapsulated_on_native(transfer_syntax: str | None, sop_class_uid: str | None,
                                      tail: bytes) -> bool:
    """Whether an image's data set ends as encapsulated pixel data does (its fragments'
    Sequence Delimitation Item: compressed, JPEG and the like) though ``transfer_syntax`` is
    a native one, whose pixel data is a value of defined length (PS3.5 A.4, 8.2): a
    compressed object sent on an uncompressed context without being decompressed. Told
    from the last bytes only: an image's last element is its pixel data (Data Set Trailing
    Padding after it hides the case; a Digital Signatures Sequence of undefined length after
    native pixel data would end so too, and is rare)."""
    if tail != SEQUENCE_DELIMITER:  # nearly every data set: nothing more to look up
        return False
    mine = _encoding(transfer_syntax) if transfer_syntax is not None else None
    if mine is None or not mine[1] or UID(str(transfer_syntax)).is_compressed:
        return False
    return _image(sop_class_uid)


#: Encapsulated transfer syntaxes whose data sets carry no pixel data (JPIP Referenced,
#: PS3.5 A.6: a Pixel Data Provider URL instead).
_NO_PIXEL_DATA: Final = frozenset({"1.2.840.10008.1.2.4.94", "1.2.840.10008.1.2.4.95"})
#: Pixel Data (7FE0,0010), and the length that says encapsulated (undefined).
_PIXEL_DATA: Final = 0x7FE00010
_UNDEFINED_LENGTH: Final = 0xFFFFFFFF
#: Its header when encapsulated (OB, undefined length) and the Basic Offset Table's item tag
#: after it (PS3.5 A.4), little endian.
_ENCAPSULATED_PIXEL_DATA: Final = b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff\xfe\xff\x00\xe0"


@functools.lru_cache(maxsize=256)
def _image(sop_class_uid: str | None) -> bool:
    """A SOP class whose name says Image Storage (a few in a capture, asked per data set)."""
    sop = _valid_uid(sop_class_uid)
    return sop is not None and "Image Storage" in UID(sop).name


@functools.lru_cache(maxsize=256)
def _encapsulated_image(transfer_syntax: str | None, sop_class_uid: str | None) -> bool:
    """An image storage SOP class on an encapsulated transfer syntax that carries pixel
    data (asked for every data set: a few of each in a capture)."""
    ts = _valid_uid(transfer_syntax)
    if ts is None or ts in _NO_PIXEL_DATA:
        return False
    uid = UID(ts)
    return uid.is_transfer_syntax and uid.is_encapsulated and _image(sop_class_uid)


def pixel_data_native_on_encapsulated(transfer_syntax: str | None,
                                      sop_class_uid: str | None,
                                      head: bytes | bytearray) -> bool:
    """Whether an image's top-level Pixel Data (7FE0,0010), found in its first bytes
    ``head``, has a defined length though ``transfer_syntax`` is encapsulated (compressed),
    whose Pixel Data must be of undefined length, its fragments in items (PS3.5 A.4): native
    pixel data sent on a compressed context, as by a sender that negotiated JPEG and sent
    its file's uncompressed bytes. pydicom walks the elements before it (sequences, and the
    pixel data of an icon inside one, are stepped over as a whole); the walk stops at the
    header. False when it cannot be told: no Pixel Data header within ``head``, or bytes
    that do not parse."""
    if not _encapsulated_image(transfer_syntax, sop_class_uid):
        return False
    if _ENCAPSULATED_PIXEL_DATA in head:
        # Pixel Data as it must be here, its first item after it: no walk (pydicom's took
        # 0.1-0.5 ms a compressed image). Missed so: native pixel data after an icon whose
        # own pixel data is encapsulated, a sender that compressed the icon alone.
        return False
    found: list[int] = []

    def at_pixel_data(tag: int, vr: str | None, length: int) -> bool:
        if tag < _PIXEL_DATA:
            return False
        if tag == _PIXEL_DATA:
            found.append(length)
        return True

    try:
        # every encapsulated transfer syntax is Explicit VR Little Endian (PS3.5 A.4)
        for _ in data_element_generator(io.BytesIO(head), False, True,
                                        stop_when=at_pixel_data, defer_size=256):
            pass
    except Exception:  # cut off mid-sequence, or bytes that are not a data set
        return False
    return bool(found) and found[0] != _UNDEFINED_LENGTH


def _uid_element(tag: bytes, uid: str) -> tuple[bytes, bytes]:
    """A UI element as Explicit and as Implicit VR Little Endian write it (padded with a
    NUL to an even length, PS3.5 9.1)."""
    value = uid.encode("ascii", "replace")
    if len(value) % 2:
        value += b"\0"
    return (tag + b"UI" + struct.pack("<H", len(value)) + value,
            tag + struct.pack("<I", len(value)) + value)


def dataset_uids_differ(head: bytes | bytearray, transfer_syntax: str | None,
                        sop_class_uid: str | None, sop_instance_uid: str | None
                        ) -> tuple[str | None, str | None] | None:
    """The data set's SOP Class and Instance UIDs, from its first bytes ``head``, when one
    of them is present and is not the command's ``sop_class_uid`` / ``sop_instance_uid``
    (a file whose meta header disagrees with its data set, sent by its header; a router that
    rewrote one and not the other); None when they agree or cannot be told (not in
    ``head``, no command UID to compare with)."""
    if not sop_class_uid or not sop_instance_uid:
        return None
    # Both elements exactly as the command's values would be written: no parse (nearly
    # every data set). A UID that is a prefix of another (CT Image Storage of Enhanced CT)
    # is no false match: the length comes first.
    if any(form in head for form in _uid_element(b"\x08\x00\x16\x00", sop_class_uid)) and \
            any(form in head for form in _uid_element(b"\x08\x00\x18\x00", sop_instance_uid)):
        return None
    own = dataset_uids(bytes(head), transfer_syntax)
    if (own[0] is not None and own[0] != sop_class_uid) or \
            (own[1] is not None and own[1] != sop_instance_uid):
        return own
    return None


def head_values(head: bytes, transfer_syntax: str | None, tags: frozenset[int],
                last: int) -> dict[int, bytes]:
    """The values of ``tags`` among a data set's top-level elements up to tag ``last``,
    from its first bytes ``head``, as they travelled.

    Parsed with pydicom, stopping after ``last``; a value cut off by the end of ``head``
    counts as absent, as does everything after bytes that do not parse.  Deflated data
    (PS3.5 A.5) is inflated as far as ``head`` goes.  Without a usable transfer syntax it
    is inferred.  Never raises: ``{}`` when nothing can be read.
    """
    found: dict[int, bytes] = {}
    try:
        data = bytes(head)
        ts = _valid_uid(transfer_syntax)
        uid = UID(ts) if ts else None
        if uid is None or not uid.is_transfer_syntax:
            ts = infer_transfer_syntax(data)
            uid = UID(ts) if ts else None
        if uid is None:
            return found
        if uid.is_deflated:
            data = zlib.decompressobj(-zlib.MAX_WBITS).decompress(data)
        # tags as ints: pydicom's BaseTag compares in Python (a third of the walk's time
        # as a stop_when); the element after ``last`` is read, then left
        for elem in data_element_generator(io.BytesIO(data), uid.is_implicit_VR,
                                           uid.is_little_endian):
            tag = int(elem.tag)
            if tag > last:
                break
            if tag not in tags or not isinstance(elem, RawDataElement):
                continue
            value = elem.value
            if isinstance(value, bytes) and len(value) == elem.length:
                found[tag] = value
    except Exception:  # noqa: BLE001 - truncated or hostile bytes: what came before stays
        pass
    return found


def dataset_uids(head: bytes, transfer_syntax: str | None) -> tuple[str | None, str | None]:
    """SOP Class and Instance UID, (0008,0016) and (0008,0018), from a data set's head
    (`head_values`): ``(None, None)`` when nothing can be read."""
    found = head_values(head, transfer_syntax, _SOP_TAGS, 0x00080018)
    texts = [(found[tag].decode("ascii", "replace").rstrip("\0 ") or None)
             if tag in found else None for tag in (0x00080016, 0x00080018)]
    return texts[0], texts[1]


def head_identity(head: bytes, transfer_syntax: str | None) -> Identity:
    """Which exam, study and series a stored object belongs to: its Accession Number,
    Modality and Study and Series Instance UIDs (`IDENTITY`) from its first bytes
    (`head_values`), by column; one not there, cut off or empty is left out. The Accession
    Number is read in the data set's Specific Character Set as query keys are
    (`queries.Text`: bytes that are not text in it are read as Latin-1, so every byte is
    kept), the rest as ASCII. With
    them the Specific Character Set as sent and the `CHECKED_TEXT` values beyond ASCII,
    whose bytes another stage checks against it."""
    found = head_values(head, transfer_syntax, _IDENTITY_TAGS, max(IDENTITY))
    texts = tuple((*CHECKED_TEXT[tag], found[tag]) for tag in CHECKED_TEXT
                  if tag in found and (not found[tag].isascii() or 0x1B in found[tag]))
    identity: dict[str, str] = {}
    for tag, column in IDENTITY.items():
        value = found.get(tag)
        if value is None:
            continue
        if tag == 0x00080050:  # read as query_keys reads text (queries.Text)
            text = Text(charset=found.get(_CHARSET_TAG)).read(value, "SH")[0]
        else:
            text = value.decode("ascii", "replace")
        text = text.strip("\0 ")
        if text:
            identity[column] = text
    return Identity(identity, found.get(_CHARSET_TAG), texts)
