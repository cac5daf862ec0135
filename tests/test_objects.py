"""Tests for tshark_dicom.objects: Part-10 writing, names, transfer syntax inference.

Data sets come from pydicom's own test files (the bytes after their meta header,
exactly as a peer would send them) or are encoded by pydicom in each transfer
syntax; files written are read back with ``pydicom.dcmread``.
"""

from __future__ import annotations

import hashlib
import json
import re
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_file_meta_info
from pydicom.filewriter import write_dataset
from pydicom.uid import UID

from tshark_dicom.datasethead import (
    EXPLICIT_VR_BIG_ENDIAN,
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    dataset_uids,
    encoding_mismatch,
    infer_transfer_syntax,
    pixel_data_encapsulated_on_native,
    pixel_data_native_on_encapsulated,
)
from tshark_dicom.objects import (
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    ObjectSink,
    safe_object_name,
)

from .conftest import capture_for, truth_files

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
DEFLATED = "1.2.840.10008.1.2.1.99"


def sample_dataset(name: str) -> tuple[bytes, str, str, str]:
    """(data set bytes after the meta header, transfer syntax, SOP class, SOP instance)."""
    path = get_testdata_file(name)
    assert isinstance(path, str)
    meta = read_file_meta_info(path)
    offset = 128 + 4 + 12 + int(meta.FileMetaInformationGroupLength)
    data = Path(path).read_bytes()[offset:]
    return (data, str(meta.TransferSyntaxUID), str(meta.MediaStorageSOPClassUID),
            str(meta.MediaStorageSOPInstanceUID))


def encoded(ds: Dataset, implicit: bool, little: bool) -> bytes:
    """``ds`` encoded by pydicom without a meta header, as it would travel."""
    buf = DicomBytesIO()
    buf.is_implicit_VR = implicit
    buf.is_little_endian = little
    write_dataset(buf, ds)
    return buf.getvalue()


def small_dataset() -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.2.1125.42.7"
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "X1"
    ds.Rows = 2
    ds.Columns = 2
    return ds


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def after_meta(path: Path) -> bytes:
    """The bytes of a Part-10 file after its File Meta Information."""
    meta = read_file_meta_info(path)
    return path.read_bytes()[128 + 4 + 12 + int(meta.FileMetaInformationGroupLength) :]


# -- constants ------------------------------------------------------------------


def test_implementation_identity_is_valid() -> None:
    uid = UID(IMPLEMENTATION_CLASS_UID)
    assert uid.is_valid and IMPLEMENTATION_CLASS_UID.startswith("2.25.")
    assert len(IMPLEMENTATION_CLASS_UID) <= 64
    assert 0 < len(IMPLEMENTATION_VERSION_NAME) <= 16


# -- safe names -----------------------------------------------------------------

SAFE = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]*")


@pytest.mark.parametrize(
    "uid",
    [None, "", "../../x", "..", "...", "/", "\\", "\x00", "a/../../b", "C:\\windows\\x",
     "1.2.3\x00", ".hidden", "é1.2", "x" * 500, "1..2...3", "nul\x00/..\\..", " 1.2 "],
)
def test_safe_object_name_hostile(uid: str | None) -> None:
    name = safe_object_name(uid, 3, 17)
    assert SAFE.fullmatch(name), name
    assert ".." not in name and "/" not in name and "\\" not in name
    assert name.startswith("0003-000017") and name.endswith(".dcm")
    assert len(name) <= 120
    assert Path(name).name == name


def test_safe_object_name_shape_and_uniqueness() -> None:
    assert safe_object_name("1.2.3.4", 1, 2) == "0001-000002-1.2.3.4.dcm"
    assert safe_object_name(None, 1, 2) == "0001-000002.dcm"
    names = {safe_object_name("1.2.3", a, m) for a in range(20) for m in range(50)}
    assert len(names) == 1000
    with pytest.raises(ValueError):
        safe_object_name("1.2", -1, 0)


@pytest.mark.parametrize("name", ["../x.dcm", "a/b.dcm", ".x", "", "a..b", "x\x00"])
def test_object_sink_rejects_unsafe_names(name: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        ObjectSink(tmp_path, name, sop_class_uid=None, sop_instance_uid=None,
                   transfer_syntax=None, source_ae=None)


# -- writing --------------------------------------------------------------------


def test_write_ct_small_in_small_chunks(tmp_path: Path) -> None:
    data, ts, sop_class, sop_instance = sample_dataset("CT_small.dcm")
    name = safe_object_name(sop_instance, 1, 3)
    sink = ObjectSink(tmp_path, name, sop_class_uid=sop_class, sop_instance_uid=sop_instance,
                      transfer_syntax=ts, source_ae="STORESCU")
    for chunk in chunks(data, 97):
        sink.write(chunk)
    # small data sets wait in a 256 KiB batch; nothing looks complete before finish()
    assert not (tmp_path / name).exists()
    assert sink.finish() == name
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]

    path = tmp_path / name
    raw = path.read_bytes()
    assert raw[:128] == b"\0" * 128 and raw[128:132] == b"DICM"
    ds = pydicom.dcmread(path)
    meta = ds.file_meta
    assert meta.FileMetaInformationVersion == b"\x00\x01"
    assert meta.MediaStorageSOPClassUID == sop_class == CT_IMAGE_STORAGE
    assert meta.MediaStorageSOPInstanceUID == sop_instance
    assert meta.TransferSyntaxUID == ts
    assert meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert meta.ImplementationVersionName == IMPLEMENTATION_VERSION_NAME
    assert meta.SourceApplicationEntityTitle == "STORESCU"
    for keyword in ("MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID",
                    "TransferSyntaxUID", "ImplementationClassUID"):
        assert UID(meta[keyword].value).is_valid
    # Real UIDs on disk: no names appended (unlike tshark's export).
    assert b"CT Image Storage" not in raw[:132 + 12 + int(meta.FileMetaInformationGroupLength)]

    assert after_meta(path) == data
    assert hashlib.sha256(after_meta(path)).hexdigest() == sink.sha256
    assert sink.nbytes == len(data)
    assert sink.head == data[:512]
    original = pydicom.dcmread(get_testdata_file("CT_small.dcm"))  # type: ignore[arg-type]
    assert ds == original
    assert ds.pixel_array.shape == original.pixel_array.shape


@pytest.mark.parametrize("name", ["MR_small_bigendian.dcm", "MR_small_implicit.dcm",
                                  "image_dfl.dcm"])
def test_write_other_transfer_syntaxes(name: str, tmp_path: Path) -> None:
    data, ts, sop_class, sop_instance = sample_dataset(name)
    sink = ObjectSink(tmp_path, "obj.dcm", sop_class_uid=sop_class,
                      sop_instance_uid=sop_instance, transfer_syntax=ts, source_ae=None)
    for chunk in chunks(data, 1000):
        sink.write(memoryview(chunk))
    sink.finish()
    ds = pydicom.dcmread(tmp_path / "obj.dcm")
    assert ds.file_meta.TransferSyntaxUID == ts
    assert "SourceApplicationEntityTitle" not in ds.file_meta
    assert ds.SOPInstanceUID == sop_instance
    assert after_meta(tmp_path / "obj.dcm") == data


def test_hash_only_mode_writes_nothing(tmp_path: Path) -> None:
    data, ts, sop_class, sop_instance = sample_dataset("CT_small.dcm")
    sink = ObjectSink(None, "x.dcm", sop_class_uid=sop_class, sop_instance_uid=sop_instance,
                      transfer_syntax=ts, source_ae="A")
    for chunk in chunks(data, 500):
        sink.write(chunk)
    assert sink.finish() is None
    assert sink.sha256 == hashlib.sha256(data).hexdigest()
    assert sink.nbytes == len(data)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("ts", [EXPLICIT_VR_LITTLE_ENDIAN, None])
def test_discard_leaves_no_file(ts: str | None, tmp_path: Path) -> None:
    data, _, sop_class, sop_instance = sample_dataset("CT_small.dcm")
    sink = ObjectSink(tmp_path, "obj.dcm", sop_class_uid=sop_class,
                      sop_instance_uid=sop_instance, transfer_syntax=ts, source_ae=None)
    sink.write(data[:1000])
    sink.write(b"\0" * (1 << 18))  # past one batch: a partial file is on disk now
    assert any(tmp_path.iterdir())
    sink.discard("capture gap at frame 12")
    assert list(tmp_path.iterdir()) == []
    assert sink.problem == "capture gap at frame 12"
    assert sink.nbytes == 1000 + (1 << 18)
    with pytest.raises(RuntimeError):
        sink.write(b"more")
    with pytest.raises(RuntimeError):
        sink.finish()


def test_context_manager_discards_unfinished(tmp_path: Path) -> None:
    with pytest.raises(KeyError):
        with ObjectSink(tmp_path, "obj.dcm", sop_class_uid="1.2.3", sop_instance_uid="1.2.4",
                        transfer_syntax=EXPLICIT_VR_LITTLE_ENDIAN, source_ae=None) as sink:
            sink.write(b"\x08\x00\x16\x00")
            raise KeyError("boom")
    assert list(tmp_path.iterdir()) == []


def test_unknown_transfer_syntax_set_later_or_inferred(tmp_path: Path) -> None:
    # As when the capture starts mid-association: the caller learns the syntax
    # after the data (and sets it), or not at all (the sink infers it).
    ds = small_dataset()
    data = encoded(ds, implicit=True, little=True)
    later = ObjectSink(tmp_path, "later.dcm", sop_class_uid=ds.SOPClassUID,
                       sop_instance_uid=ds.SOPInstanceUID, transfer_syntax=None, source_ae=None)
    later.write(data)
    later.transfer_syntax = IMPLICIT_VR_LITTLE_ENDIAN
    later.finish()
    inferred = ObjectSink(tmp_path, "inferred.dcm", sop_class_uid=ds.SOPClassUID,
                          sop_instance_uid=ds.SOPInstanceUID, transfer_syntax=None,
                          source_ae=None)
    inferred.write(data)
    inferred.finish()
    assert any("inferred" in note for note in inferred.meta_notes)
    for name in ("later.dcm", "inferred.dcm"):
        back = pydicom.dcmread(tmp_path / name)
        assert back.file_meta.TransferSyntaxUID == IMPLICIT_VR_LITTLE_ENDIAN
        assert back.PatientName == "Doe^Jane"
        assert after_meta(tmp_path / name) == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inferred.dcm", "later.dcm"]


def test_transfer_syntax_changed_after_header_was_written(tmp_path: Path) -> None:
    ds = small_dataset()
    data = encoded(ds, implicit=False, little=True)
    sink = ObjectSink(tmp_path, "o.dcm", sop_class_uid=ds.SOPClassUID,
                      sop_instance_uid=ds.SOPInstanceUID,
                      transfer_syntax=IMPLICIT_VR_LITTLE_ENDIAN, source_ae=None)
    sink.write(data)
    sink.transfer_syntax = EXPLICIT_VR_LITTLE_ENDIAN
    sink.finish()
    back = pydicom.dcmread(tmp_path / "o.dcm")
    assert back.file_meta.TransferSyntaxUID == EXPLICIT_VR_LITTLE_ENDIAN
    assert after_meta(tmp_path / "o.dcm") == data
    assert back.PatientID == "X1"


def test_invalid_command_uid_is_written_as_sent_missing_one_taken_from_data_set(
        tmp_path: Path) -> None:
    ds = small_dataset()
    data = encoded(ds, implicit=False, little=True)
    sink = ObjectSink(tmp_path, "o.dcm", sop_class_uid="1.2.840.10008.5.1.4.1.1.7 (SC)",
                      sop_instance_uid=None, transfer_syntax=EXPLICIT_VR_LITTLE_ENDIAN,
                      source_ae="A\\B")
    sink.write(data)
    sink.finish()
    meta = pydicom.dcmread(tmp_path / "o.dcm").file_meta
    # SPEC: the command's value, as it travelled (the association reports it as invalid)
    assert meta.MediaStorageSOPClassUID == "1.2.840.10008.5.1.4.1.1.7 (SC)"
    assert meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert "SourceApplicationEntityTitle" not in meta
    assert len(sink.meta_notes) == 3


def test_invalid_uids_written_as_sent_and_missing_ones_left_out(tmp_path: Path) -> None:
    ds = Dataset()
    ds.PatientName = "Doe^Jane"
    data = encoded(ds, implicit=False, little=True)
    sink = ObjectSink(tmp_path, "o.dcm", sop_class_uid="not-a-uid", sop_instance_uid=None,
                      transfer_syntax="garbage", source_ae="X" * 17)
    sink.write(data)
    sink.finish()
    back = pydicom.dcmread(tmp_path / "o.dcm")
    assert back.file_meta.MediaStorageSOPClassUID == "not-a-uid"
    assert "MediaStorageSOPInstanceUID" not in back.file_meta  # not in command nor data set
    assert back.file_meta.TransferSyntaxUID == EXPLICIT_VR_LITTLE_ENDIAN  # inferred
    assert back.PatientName == "Doe^Jane"
    assert after_meta(tmp_path / "o.dcm") == data


def test_empty_data_set_still_gets_a_file(tmp_path: Path) -> None:
    sink = ObjectSink(tmp_path, "e.dcm", sop_class_uid="1.2.3", sop_instance_uid="1.2.4",
                      transfer_syntax=EXPLICIT_VR_LITTLE_ENDIAN, source_ae="AE")
    assert sink.finish() == "e.dcm"
    back = pydicom.dcmread(tmp_path / "e.dcm")
    assert back.file_meta.MediaStorageSOPInstanceUID == "1.2.4"
    assert len(back) == 0
    assert sink.sha256 == hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize("ts", [EXPLICIT_VR_LITTLE_ENDIAN, None])
def test_memory_stays_bounded_for_50_mb(ts: str | None, tmp_path: Path) -> None:
    ds = small_dataset()
    header = encoded(ds, implicit=False, little=True)
    pixel_len = 50 * 1024 * 1024
    # (7FE0,0010) OB, 4-byte length, then the pixel bytes.
    header += b"\xe0\x7f\x10\x00OB\x00\x00" + pixel_len.to_bytes(4, "little")
    block = bytes(range(256)) * 64  # 16 KiB
    expected = hashlib.sha256(header)
    sink = ObjectSink(tmp_path, "big.dcm", sop_class_uid=ds.SOPClassUID,
                      sop_instance_uid=ds.SOPInstanceUID, transfer_syntax=ts,
                      source_ae=None)
    tracemalloc.start()
    try:
        sink.write(header)
        for _ in range(pixel_len // len(block)):
            sink.write(block)
            expected.update(block)
        sink.finish()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024, peak
    path = tmp_path / "big.dcm"
    assert sink.sha256 == expected.hexdigest()
    assert sink.nbytes == len(header) + pixel_len
    back = pydicom.dcmread(path, stop_before_pixels=True)
    assert back.file_meta.TransferSyntaxUID == EXPLICIT_VR_LITTLE_ENDIAN
    assert back.PatientID == "X1"
    meta_len = 132 + 12 + int(back.file_meta.FileMetaInformationGroupLength)
    assert path.stat().st_size == meta_len + sink.nbytes
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(meta_len)
        while block := f.read(1 << 20):
            digest.update(block)
    assert digest.hexdigest() == sink.sha256


# -- transfer syntax inference and data set UIDs --------------------------------


@pytest.mark.parametrize(
    ("implicit", "little", "ts"),
    [(True, True, IMPLICIT_VR_LITTLE_ENDIAN), (False, True, EXPLICIT_VR_LITTLE_ENDIAN),
     (False, False, EXPLICIT_VR_BIG_ENDIAN)],
)
def test_infer_transfer_syntax_pydicom_encoded(implicit: bool, little: bool, ts: str) -> None:
    ds = small_dataset()
    data = encoded(ds, implicit, little)
    assert infer_transfer_syntax(data) == ts
    assert infer_transfer_syntax(data[:512]) == ts
    assert infer_transfer_syntax(data[:10]) == ts  # one element header is enough
    # A C-FIND identifier: starts at (0008,0052), no (0008,0016).
    ident = Dataset()
    ident.QueryRetrieveLevel = "STUDY"
    ident.PatientID = ""
    ident.StudyInstanceUID = ""
    assert infer_transfer_syntax(encoded(ident, implicit, little)) == ts
    # A Print Management data set: starts at group 2000.
    film = Dataset()
    film.NumberOfCopies = "1"
    film.PrintPriority = "HIGH"
    assert infer_transfer_syntax(encoded(film, implicit, little)) == ts


@pytest.mark.parametrize(
    ("name", "ts"),
    [("CT_small.dcm", EXPLICIT_VR_LITTLE_ENDIAN), ("MR_small_implicit.dcm",
      IMPLICIT_VR_LITTLE_ENDIAN), ("MR_small_bigendian.dcm", EXPLICIT_VR_BIG_ENDIAN),
     ("image_dfl.dcm", None)],
)
def test_infer_transfer_syntax_test_files(name: str, ts: str | None) -> None:
    data = sample_dataset(name)[0]
    assert infer_transfer_syntax(data[:512]) == ts


@pytest.mark.parametrize("head", [b"", b"\x08\x00", b"\x00" * 64, b"\xff" * 64,
                                  bytes(range(256)), zlib.compress(b"hello" * 100)])
def test_infer_transfer_syntax_gives_up(head: bytes) -> None:
    assert infer_transfer_syntax(head) is None


ENCODINGS = [(True, True, IMPLICIT_VR_LITTLE_ENDIAN), (False, True, EXPLICIT_VR_LITTLE_ENDIAN),
             (False, False, EXPLICIT_VR_BIG_ENDIAN)]
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"  # explicit VR little endian, pixel data aside


@pytest.mark.parametrize("source", ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "small"])
@pytest.mark.parametrize(("implicit", "little", "sent_as"), ENCODINGS)
def test_encoding_mismatch_says_the_encoding_a_data_set_is_really_in(
        source: str, implicit: bool, little: bool, sent_as: str) -> None:
    ds = small_dataset() if source == "small" else pydicom.dcmread(get_testdata_file(source))
    data = encoded(ds, implicit, little)
    for _, _, context in ENCODINGS:
        assert encoding_mismatch(context, data) == (None if context == sent_as else sent_as)
    # a compressed transfer syntax is explicit VR little endian around its pixel data
    assert encoding_mismatch(JPEG_BASELINE, data) == (
        None if sent_as == EXPLICIT_VR_LITTLE_ENDIAN else sent_as)


@pytest.mark.parametrize("context", [DEFLATED, "1.2.3.4.5", "not a uid", None])
def test_encoding_mismatch_says_nothing_where_it_cannot_tell(context: str | None) -> None:
    """Deflated data, a transfer syntax pydicom does not know (a private one), no context."""
    data = encoded(small_dataset(), True, True)
    assert encoding_mismatch(context, data) is None


def test_encoding_mismatch_needs_several_elements_that_fit_another_encoding() -> None:
    ident = Dataset()
    ident.QueryRetrieveLevel = "STUDY"
    one = encoded(ident, False, True)  # one element: nothing to go on
    assert encoding_mismatch(IMPLICIT_VR_LITTLE_ENDIAN, one) is None
    for head in (b"", b"\x00" * 64, b"\xff" * 64, bytes(range(256))):
        assert encoding_mismatch(IMPLICIT_VR_LITTLE_ENDIAN, head) is None
        assert encoding_mismatch(EXPLICIT_VR_LITTLE_ENDIAN, head) is None


def test_a_misencoded_data_set_is_written_with_the_encoding_it_is_in(tmp_path: Path) -> None:
    """The file says the encoding the bytes are in, so that it opens; the bytes stay as they
    travelled, and meta_notes says why the header differs from the context."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    data = encoded(ds, False, True)
    sink = ObjectSink(tmp_path, "x.dcm", sop_class_uid=CT_IMAGE_STORAGE,
                      sop_instance_uid=str(ds.SOPInstanceUID),
                      transfer_syntax=IMPLICIT_VR_LITTLE_ENDIAN, source_ae="A")
    sink.write(data)
    assert sink.check_encoding() == EXPLICIT_VR_LITTLE_ENDIAN
    assert sink.finish() == "x.dcm"
    back = pydicom.dcmread(tmp_path / "x.dcm")
    assert back.file_meta.TransferSyntaxUID == EXPLICIT_VR_LITTLE_ENDIAN
    assert back.PatientName == ds.PatientName and back.Rows == ds.Rows
    assert (tmp_path / "x.dcm").read_bytes().endswith(data)
    assert sink.meta_notes == (
        "TransferSyntaxUID: the data set is encoded as Explicit VR Little Endian, not in the "
        f"context's Implicit VR Little Endian ({IMPLICIT_VR_LITTLE_ENDIAN}); "
        f"{EXPLICIT_VR_LITTLE_ENDIAN} written",)
    good = ObjectSink(tmp_path, "y.dcm", sop_class_uid=CT_IMAGE_STORAGE,
                      sop_instance_uid=str(ds.SOPInstanceUID),
                      transfer_syntax=EXPLICIT_VR_LITTLE_ENDIAN, source_ae="A")
    good.write(data)
    assert good.check_encoding() is None and good.meta_notes == ()


@pytest.mark.parametrize(
    ("implicit", "little", "ts"),
    [(True, True, IMPLICIT_VR_LITTLE_ENDIAN), (False, True, EXPLICIT_VR_LITTLE_ENDIAN),
     (False, False, EXPLICIT_VR_BIG_ENDIAN)],
)
def test_dataset_uids(implicit: bool, little: bool, ts: str) -> None:
    ds = small_dataset()
    data = encoded(ds, implicit, little)
    want = (ds.SOPClassUID, ds.SOPInstanceUID)
    assert dataset_uids(data, ts) == want
    assert dataset_uids(data, None) == want  # inferred
    # Cut inside the instance UID: it counts as absent, the class UID survives.
    cut = data.index(ds.SOPInstanceUID.encode()) + 5
    assert dataset_uids(data[:cut], ts) == (ds.SOPClassUID, None)


def test_dataset_uids_test_files() -> None:
    for name in ("CT_small.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm",
                 "image_dfl.dcm"):
        data, ts, sop_class, sop_instance = sample_dataset(name)
        assert dataset_uids(data[:512], ts) == (sop_class, sop_instance), name


@pytest.mark.parametrize(
    ("head", "ts"),
    [(b"", None), (b"\xff" * 40, None), (b"\xff" * 40, EXPLICIT_VR_LITTLE_ENDIAN),
     (b"\x08\x00\x16\x00UI\xff\xff", EXPLICIT_VR_LITTLE_ENDIAN), (b"junk", DEFLATED),
     (b"\x08\x00\x05\x00\xff\xff\xff\xff\xfe\xff", IMPLICIT_VR_LITTLE_ENDIAN),
     (b"\x08\x00\x16\x00UI\x02\x00ab", "1.2.3.4"), (b"\x10\x00\x10\x00PN\x00\x00", "nonsense")],
)
def test_dataset_uids_never_raises(head: bytes, ts: str | None) -> None:
    uids = dataset_uids(head, ts)
    assert isinstance(uids, tuple) and len(uids) == 2


# -- a data set not in its context's encoding, against what real peers did --------------------
ENCODING_TRUTHS = [t for t in truth_files()
                   if "encoding_mismatch" in json.loads(t.read_text())]


def test_there_is_an_encoding_mismatch_fixture() -> None:
    assert [t.name for t in ENCODING_TRUTHS] == ["store_encoding_mismatch.truth.json"]


@pytest.mark.parametrize("truth_path", ENCODING_TRUTHS, ids=[t.name.split(".")[0]
                                                            for t in ENCODING_TRUTHS])
def test_data_sets_not_in_their_contexts_encoding(truth_path: Path, analysed: Any) -> None:
    """Each misencoded data set is an error finding naming both encodings; the receiver's
    A-ABORT, or the request it never answered, points at it; its objects row and Part-10
    file say the encoding the bytes are in (the file opens), meta_notes the context's; a
    correctly encoded data set says nothing."""
    truth = json.loads(truth_path.read_text())
    report, out = analysed(capture_for(truth_path), (), ())
    msgs, objs, findings = report.messages, report.objects, report.findings
    hits = findings[findings["code"] == "dataset-encoding-mismatch"]
    want = truth["encoding_mismatch"]
    assert len(hits) == len(want)
    wrong: set[tuple[int, int]] = set()
    for w in want:
        rq = msgs[(msgs["assoc_id"] == w["assoc_index"]) & (msgs["command"] == "C-STORE-RQ")
                  & (msgs["message_id"] == w["message_id"])].iloc[0]
        wrong.add((w["assoc_index"], int(rq["msg_index"])))
        f = hits[(hits["assoc_id"] == w["assoc_index"])
                 & (hits["msg_index"] == rq["msg_index"])].iloc[0]
        assert f["severity"] == "error"
        assert (f"C-STORE-RQ {w['message_id']} " in f["summary"]
                and f"encoded as {UID(w['sent_as']).name}, but presentation context "
                f"{rq['context_id']} was accepted with {UID(w['context_transfer_syntax']).name}"
                in f["summary"]), f["summary"]
        obj = objs[(objs["assoc_id"] == w["assoc_index"])
                   & (objs["msg_index"] == rq["msg_index"])].iloc[0]
        assert obj["transfer_syntax"] == w["sent_as"]  # as the file says
        assert f"the data set is encoded as {UID(w['sent_as']).name}" in obj["meta_notes"]
        back = pydicom.dcmread(out / obj["path"])
        assert back.file_meta.TransferSyntaxUID == w["sent_as"]
        assert back.SOPInstanceUID == w["sop_instance_uid"]
    others = objs[[(int(a), int(i)) not in wrong
                   for a, i in zip(objs["assoc_id"], objs["msg_index"], strict=True)]]
    assert len(others) > 0 and others["meta_notes"].isna().all()
    pointer = "see the dataset-encoding-mismatch finding"
    unanswered = 0
    for i, a in enumerate(truth["associations"]):
        aborted = findings[(findings["assoc_id"] == i)
                           & (findings["code"] == "association-aborted")]
        if a["abort_sender"] == "acceptor" and any(w["assoc_index"] == i for w in want):
            assert pointer in aborted.iloc[0]["summary"]
        answered = {m["responds_to"] for m in a["messages"] if m["command"] == "C-STORE-RSP"}
        for w in (w for w in want if w["assoc_index"] == i):
            if w["message_id"] in answered:
                continue
            unanswered += 1
            f = findings[(findings["assoc_id"] == i) & (findings["code"] == "request-unanswered")]
            assert len(f) == 1 and pointer in f.iloc[0]["summary"]
    assert unanswered >= 2  # storescp's A-ABORT, Orthanc's silence


# -- encapsulated pixel data on a native context ----------------------------------------------
SC = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage
DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


@pytest.mark.parametrize(("ts", "sop_class", "tail", "expected"), [
    (EXPLICIT_VR_LITTLE_ENDIAN, SC, DELIMITER, True),
    (IMPLICIT_VR_LITTLE_ENDIAN, CT_IMAGE_STORAGE, DELIMITER, True),
    ("1.2.840.10008.1.2.4.91", SC, DELIMITER, False),  # JPEG 2000: encapsulated is right
    ("1.2.840.10008.1.2.5", SC, DELIMITER, False),  # RLE Lossless
    (DEFLATED, SC, DELIMITER, False),  # its bytes are deflated: nothing to see
    (EXPLICIT_VR_BIG_ENDIAN, SC, DELIMITER, False),  # not how it would end there
    (EXPLICIT_VR_LITTLE_ENDIAN, "1.2.840.10008.5.1.4.1.1.88.11", DELIMITER, False),  # an SR
    (EXPLICIT_VR_LITTLE_ENDIAN, SC, b"\x00" * 8, False),
    (EXPLICIT_VR_LITTLE_ENDIAN, None, DELIMITER, False),
    (None, SC, DELIMITER, False),
])
def test_pixel_data_encapsulated_on_native(ts: str | None, sop_class: str | None, tail: bytes,
                                           expected: bool) -> None:
    """An image's data set ending in the Sequence Delimitation Item of encapsulated pixel
    data on a native context; an SR ends so after its Content Sequence, and is not an image."""
    assert pixel_data_encapsulated_on_native(ts, sop_class, tail) is expected


def test_the_sink_sees_the_last_bytes_however_they_come(tmp_path: Path) -> None:
    data = sample_dataset("JPEG2000.dcm")[0]
    for piece in (1, 7, 1000, 1 << 20):
        sink = ObjectSink(None, "x.dcm", sop_class_uid=SC, sop_instance_uid="1.2.3",
                          transfer_syntax=EXPLICIT_VR_LITTLE_ENDIAN, source_ae="A")
        for i in range(0, len(data), piece):
            sink.write(memoryview(data)[i:i + piece])
        assert sink.check_pixel_data(SC)
        assert "the pixel data is encapsulated" in sink.meta_notes[0]
    # the last 8 bytes split between a batch handed on and the one still gathered
    from tshark_dicom import objects

    big = b"\x00" * (objects._BATCH - 4) + DELIMITER
    for hashed_only in (True, False):
        sink = ObjectSink(None if hashed_only else tmp_path, "z.dcm", sop_class_uid=SC,
                          sop_instance_uid="1.2.3", transfer_syntax=EXPLICIT_VR_LITTLE_ENDIAN,
                          source_ae="A")
        for i in range(0, len(big), 1000):
            sink.write(big[i:i + 1000])
        assert sink.check_pixel_data(SC)
        sink.discard("test")
    native = ObjectSink(None, "y.dcm", sop_class_uid=CT_IMAGE_STORAGE, sop_instance_uid="1.2.3",
                        transfer_syntax=EXPLICIT_VR_LITTLE_ENDIAN, source_ae="A")
    native.write(sample_dataset("CT_small.dcm")[0])
    assert not native.check_pixel_data(CT_IMAGE_STORAGE) and native.meta_notes == ()


PIXEL_TRUTHS = [t for t in truth_files() if "pixel_data_mismatch" in json.loads(t.read_text())]


def test_there_is_a_pixel_data_mismatch_fixture() -> None:
    assert [t.name for t in PIXEL_TRUTHS] == ["store_pixel_data_mismatch.truth.json"]


@pytest.mark.parametrize("truth_path", PIXEL_TRUTHS, ids=[t.name.split(".")[0]
                                                          for t in PIXEL_TRUTHS])
def test_compressed_images_on_uncompressed_contexts(truth_path: Path, analysed: Any) -> None:
    """Each compressed image sent on a native context is an error finding; the receiver's
    failure status points at it; its objects row keeps the context's transfer syntax (the
    compressed one is not told by the pixel data's end) and meta_notes says the file will
    not read; the native images beside them say nothing."""
    truth = json.loads(truth_path.read_text())
    report, _ = analysed(capture_for(truth_path), (), ())
    msgs, objs, findings = report.messages, report.objects, report.findings
    hits = findings[findings["code"] == "pixel-data-encoding-mismatch"]
    want = truth["pixel_data_mismatch"]
    assert len(hits) == len(want) > 0
    flagged: set[tuple[int, int]] = set()
    for w in want:
        rq = msgs[(msgs["assoc_id"] == w["assoc_index"]) & (msgs["command"] == "C-STORE-RQ")
                  & (msgs["message_id"] == w["message_id"])].iloc[0]
        flagged.add((w["assoc_index"], int(rq["msg_index"])))
        f = hits[(hits["assoc_id"] == w["assoc_index"])
                 & (hits["msg_index"] == rq["msg_index"])].iloc[0]
        assert f["severity"] == "error" and w["sop_instance_uid"] in f["summary"]
        assert (f"with its pixel data encapsulated (compressed fragments), but presentation "
                f"context {rq['context_id']} was accepted with "
                f"{UID(w['context_transfer_syntax']).name}") in f["summary"]
        obj = objs[(objs["assoc_id"] == w["assoc_index"])
                   & (objs["msg_index"] == rq["msg_index"])].iloc[0]
        assert obj["transfer_syntax"] == w["context_transfer_syntax"]
        assert "the pixel data is encapsulated" in obj["meta_notes"]
        failed = [m for m in truth["associations"][w["assoc_index"]]["messages"]
                  if m["command"] == "C-STORE-RSP" and m["responds_to"] == w["message_id"]
                  and m["status"] >= 0xA000]
        if failed:
            rsp = findings[(findings["assoc_id"] == w["assoc_index"])
                           & (findings["code"] == "dimse-failure")]
            assert "see the pixel-data-encoding-mismatch finding" in rsp.iloc[0]["summary"]
    others = objs[[(int(a), int(i)) not in flagged
                   for a, i in zip(objs["assoc_id"], objs["msg_index"], strict=True)]]
    assert len(others) > 0 and others["meta_notes"].isna().all()


# -- native pixel data on an encapsulated (compressed) context --------------------------------
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"


def _pydicom_images() -> Iterator[tuple[str, bytes, str, str]]:
    """(name, data set bytes, transfer syntax, SOP class) of every image storage file among
    pydicom's test files on this machine (those it ships; none is downloaded)."""
    folder = Path(pydicom.__file__).parent / "data" / "test_files"
    for path in sorted(folder.rglob("*.dcm")):
        try:
            meta = read_file_meta_info(path)
            ts, sop = str(meta.TransferSyntaxUID), str(meta.MediaStorageSOPClassUID)
            offset = 128 + 4 + 12 + int(meta.FileMetaInformationGroupLength)
        except Exception:  # noqa: BLE001 - pydicom ships deliberately broken files too
            continue
        if "Image Storage" in UID(sop).name:
            yield path.name, path.read_bytes()[offset:], ts, sop


def test_native_pixel_data_on_encapsulated_contexts_across_pydicoms_images() -> None:
    """Every compressed image pydicom ships is not flagged on its own transfer syntax; every
    Explicit VR Little Endian image it ships is, sent as it is on a JPEG Lossless context.
    Images of many makers (GE, Philips, Siemens, GDCM, dcmtk...), with sequences, private
    elements and icons before the pixel data."""
    compressed, native = [], []
    for name, data, ts, sop in _pydicom_images():
        uid = UID(ts)
        if uid.is_encapsulated and ts not in ("1.2.840.10008.1.2.4.94", "1.2.840.10008.1.2.4.95"):
            compressed.append((name, pixel_data_native_on_encapsulated(ts, sop, data)))
        elif ts == EXPLICIT_VR_LITTLE_ENDIAN:
            native.append((name, pixel_data_native_on_encapsulated(JPEG_LOSSLESS_SV1, sop, data)))
    assert len(compressed) >= 30 and len(native) >= 5, (len(compressed), len(native))
    assert [n for n, hit in compressed if hit] == []
    assert [n for n, hit in native if not hit] == []


def _with_icon(pixel_data: bytes, *, encapsulated: bool) -> bytes:
    """CT_small with an Icon Image Sequence (native icon pixel data, of defined length)
    before its own Pixel Data, the top-level one encapsulated or not; Explicit VR LE."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    icon = Dataset()
    icon.Rows, icon.Columns, icon.BitsAllocated = 4, 4, 8
    icon.PixelData = b"\x01" * 16
    ds.IconImageSequence = [icon]
    ds.PixelData = pixel_data
    if encapsulated:
        ds["PixelData"].is_undefined_length = True
        ds["PixelData"].VR = "OB"
    return encoded(ds, False, True)


def test_an_icons_native_pixel_data_is_not_the_images() -> None:
    """The icon's Pixel Data inside a sequence is stepped over; only the top-level one
    counts (PS3.5 A.4 asks undefined length of it alone)."""
    fragments = (b"\xfe\xff\x00\xe0\x00\x00\x00\x00"  # empty basic offset table
                 + b"\xfe\xff\x00\xe0\x04\x00\x00\x00\xff\xd8\xff\xd9" + DELIMITER)
    good = _with_icon(fragments, encapsulated=True)
    bad = _with_icon(b"\x00" * 128, encapsulated=False)
    assert not pixel_data_native_on_encapsulated(JPEG_LOSSLESS_SV1, CT_IMAGE_STORAGE, good)
    assert pixel_data_native_on_encapsulated(JPEG_LOSSLESS_SV1, CT_IMAGE_STORAGE, bad)
    # encapsulated with VR OW: not the quick match, the walk says so
    walked = good.replace(b"\xe0\x7f\x10\x00OB", b"\xe0\x7f\x10\x00OW")
    assert walked != good
    assert not pixel_data_native_on_encapsulated(JPEG_LOSSLESS_SV1, CT_IMAGE_STORAGE, walked)
    # not judged: a native context, JPIP Referenced (no pixel data), no image, a cut head
    assert not pixel_data_native_on_encapsulated(EXPLICIT_VR_LITTLE_ENDIAN, CT_IMAGE_STORAGE, bad)
    assert not pixel_data_native_on_encapsulated("1.2.840.10008.1.2.4.94", CT_IMAGE_STORAGE, bad)
    assert not pixel_data_native_on_encapsulated(JPEG_LOSSLESS_SV1, "1.2.840.10008.5.1.4.1.1.88.11",
                                                 bad)
    pixel_at = bad.index(b"\xe0\x7f\x10\x00")
    assert not pixel_data_native_on_encapsulated(JPEG_LOSSLESS_SV1, CT_IMAGE_STORAGE,
                                                 bad[:pixel_at + 6])


def test_the_sink_relabels_native_pixel_data_so_the_file_opens(tmp_path: Path) -> None:
    """On a JPEG Lossless context, CT_small's native data set however it comes: the sink says
    ``native``, and its file says Explicit VR Little Endian (the bytes as they travelled), so
    pydicom reads the image; a Pixel Data header beyond the head kept is not judged."""
    data, _, sop, uid = sample_dataset("CT_small.dcm")
    for piece in (1, 1000, 1 << 20):
        sink = ObjectSink(tmp_path, f"n{piece}.dcm", sop_class_uid=sop, sop_instance_uid=uid,
                          transfer_syntax=JPEG_LOSSLESS_SV1, source_ae="A")
        for i in range(0, len(data), piece):
            sink.write(memoryview(data)[i:i + piece])
        assert sink.check_pixel_data(sop) == "native"
        assert sink.transfer_syntax == EXPLICIT_VR_LITTLE_ENDIAN
        assert "the pixel data is native" in sink.meta_notes[0]
        name = sink.finish()
        assert name is not None
        back = pydicom.dcmread(tmp_path / name)
        assert back.file_meta.TransferSyntaxUID == EXPLICIT_VR_LITTLE_ENDIAN
        assert back.pixel_array.shape == (128, 128)
        assert hashlib.sha256(data).hexdigest() == sink.sha256
    from tshark_dicom import datasethead, objects

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.add_new(0x00091010, "OB", b"\x00" * objects.PIXEL_HEAD_SIZE)  # a large private value
    far = encoded(ds, False, True)
    sink = ObjectSink(None, "far.dcm", sop_class_uid=sop, sop_instance_uid=uid,
                      transfer_syntax=JPEG_LOSSLESS_SV1, source_ae="A")
    sink.write(far)
    assert sink.check_pixel_data(sop) is None and sink.meta_notes == ()
    assert len(sink.head) == datasethead.HEAD_SIZE


NATIVE_TRUTHS = [t for t in truth_files() if "native_pixel_data" in json.loads(t.read_text())]


def test_there_is_a_native_pixel_data_fixture() -> None:
    assert [t.name for t in NATIVE_TRUTHS] == ["store_native_pixel_data.truth.json"]


@pytest.mark.parametrize("truth_path", NATIVE_TRUTHS, ids=[t.name.split(".")[0]
                                                           for t in NATIVE_TRUTHS])
def test_native_images_on_compressed_contexts(truth_path: Path, analysed: Any) -> None:
    """Each native image sent on a compressed context is an error finding; the receiver's
    A-ABORT or silence points at it; its objects row and file say Explicit VR Little Endian
    (the file opens, pixels included) and meta_notes the context's; the properly compressed
    images beside them say nothing."""
    truth = json.loads(truth_path.read_text())
    report, out = analysed(capture_for(truth_path), (), ())
    msgs, objs, findings = report.messages, report.objects, report.findings
    hits = findings[findings["code"] == "pixel-data-encoding-mismatch"]
    want = truth["native_pixel_data"]
    assert len(hits) == len(want) > 0
    flagged: set[tuple[int, int]] = set()
    pointer = "see the pixel-data-encoding-mismatch finding"
    for w in want:
        i = w["assoc_index"]
        rq = msgs[(msgs["assoc_id"] == i) & (msgs["command"] == "C-STORE-RQ")
                  & (msgs["message_id"] == w["message_id"])].iloc[0]
        flagged.add((i, int(rq["msg_index"])))
        f = hits[(hits["assoc_id"] == i) & (hits["msg_index"] == rq["msg_index"])].iloc[0]
        assert f["severity"] == "error" and w["sop_instance_uid"] in f["summary"]
        assert (f"with native (uncompressed) pixel data, a value of defined length, but "
                f"presentation context {rq['context_id']} was accepted with "
                f"{UID(w['context_transfer_syntax']).name}") in f["summary"]
        obj = objs[(objs["assoc_id"] == i) & (objs["msg_index"] == rq["msg_index"])].iloc[0]
        assert obj["transfer_syntax"] == w["sent_as"]
        assert "the pixel data is native" in obj["meta_notes"]
        back = pydicom.dcmread(out / obj["path"])
        assert back.file_meta.TransferSyntaxUID == w["sent_as"]
        assert back.SOPInstanceUID == w["sop_instance_uid"] and back.pixel_array.size > 0
        a = truth["associations"][i]
        answered = {m["responds_to"] for m in a["messages"] if m["command"] == "C-STORE-RSP"}
        if a["abort_sender"] == "acceptor":
            aborted = findings[(findings["assoc_id"] == i)
                               & (findings["code"] == "association-aborted")]
            assert pointer in aborted.iloc[0]["summary"]
        if w["message_id"] not in answered:
            f = findings[(findings["assoc_id"] == i) & (findings["code"] == "request-unanswered")]
            assert len(f) == 1 and pointer in f.iloc[0]["summary"]
    others = objs[[(int(a), int(i)) not in flagged
                   for a, i in zip(objs["assoc_id"], objs["msg_index"], strict=True)]]
    assert len(others) > 0 and others["meta_notes"].isna().all()
    assert (others["transfer_syntax"] == JPEG_LOSSLESS_SV1).all()
