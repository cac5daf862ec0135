"""Data set bytes -> Part-10 files, streamed to disk.

:class:`ObjectSink` receives one data set's bytes as its P-DATA fragments
arrive, hashes them, and writes a DICOM Part-10 file (PS3.10 7.1): a 128-byte
preamble, ``DICM``, the File Meta Information (group 0002, written by pydicom)
and then the data set bytes exactly as they travelled.  It never holds the
whole data set in memory, and a data set that does not complete is never left
behind as a file that looks complete.

It keeps the data set's first bytes and asks datasethead.py what they say (its transfer
syntax when the capture lacks the negotiation, its encoding and UIDs against its context
and command, the study it belongs to).
"""

from __future__ import annotations

import hashlib
import os
import queue
import re
import shutil
import threading
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Final

from pydicom import config
from pydicom.datadict import keyword_dict
from pydicom.dataelem import DataElement
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID

from .datasethead import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    HEAD_SIZE,
    TAIL_SIZE,
    dataset_uids,
    dataset_uids_differ,
    encapsulated_image,
    encoding_mismatch,
    head_identity,
    infer_transfer_syntax,
    pixel_data_encapsulated_on_native,
    pixel_data_native_on_encapsulated,
    valid_uid,
)
from .records import Identity
from .sidehash import HASHER

__all__ = [
    "IMPLEMENTATION_CLASS_UID",
    "IMPLEMENTATION_VERSION_NAME",
    "ObjectSink",
    "safe_object_name",
]

#: Our Implementation Class UID (PS3.7 D.3.3.2), under the UUID-derived 2.25
#: root (PS3.5 B.2); generated once and fixed.
IMPLEMENTATION_CLASS_UID: Final = "2.25.62779613234802761010803823464633997489"
#: Our Implementation Version Name (PS3.7 D.3.3.2.2, at most 16 characters).
IMPLEMENTATION_VERSION_NAME: Final = "TSHARK_DICOM_01"

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
        self._head_size = PIXEL_HEAD_SIZE if encapsulated_image(transfer_syntax, sop_class_uid) \
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
        ts = valid_uid(self.transfer_syntax)
        if ts and valid_uid(self.sop_class_uid) and valid_uid(self.sop_instance_uid):
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
            ts = valid_uid(self.transfer_syntax)
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
            value = valid_uid(given)
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
            value = valid_uid(own[index])
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
