"""Which exam, study and series a stored object is of (objects table: accession_number,
modality, study_instance_uid, series_instance_uid), read from its data set's first bytes as
it streams. The fixtures check every stored object against pydicom's reading of the whole
file (test_fixtures.check_identity); these check the encodings, the character sets, a head
cut short and hostile bytes, and that writing files or not reads the same."""

from __future__ import annotations

import zlib
from pathlib import Path

import pandas as pd
import pytest
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import generate_uid

import tshark_dicom
from tshark_dicom.datasethead import head_identity
from tshark_dicom.objects import IDENTITY_HEAD_SIZE, ObjectSink

from .conftest import CAPTURES

EXPLICIT_LE, IMPLICIT_LE = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2"
EXPLICIT_BE, DEFLATED = "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"
CT = "1.2.840.10008.5.1.4.1.1.2"
STUDY, SERIES = generate_uid(), generate_uid()


def _dataset(accession: str = "ACC-0042", charset: str | list[str] | None = None,
             pixels: int = 0) -> Dataset:
    ds = Dataset()
    if charset is not None:
        ds.SpecificCharacterSet = charset
    ds.SOPClassUID = CT
    ds.SOPInstanceUID = generate_uid()
    ds.AccessionNumber = accession
    ds.Modality = "CT"
    ds.PatientName = "Synthetic^Patient"
    ds.PatientID = "SYN-0001"
    ds.StudyInstanceUID = STUDY
    ds.SeriesInstanceUID = SERIES
    ds.InstanceNumber = 7
    if pixels:
        ds.Rows, ds.Columns, ds.BitsAllocated = pixels // 1024, 512, 16
        ds.PixelData = bytes(range(256)) * (pixels // 256)
    return ds


def _encoded(ds: Dataset, transfer_syntax: str = EXPLICIT_LE) -> bytes:
    buf = DicomBytesIO()
    buf.is_implicit_VR = transfer_syntax == IMPLICIT_LE
    buf.is_little_endian = transfer_syntax != EXPLICIT_BE
    write_dataset(buf, ds)
    data = buf.getvalue()
    if transfer_syntax == DEFLATED:
        deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        data = deflate.compress(data) + deflate.flush()
    return data


def dataset_identity(head: bytes, transfer_syntax: str | None) -> dict[str, str]:
    """The study columns `head_identity` reads."""
    return head_identity(head, transfer_syntax).columns


WHOLE = {"accession_number": "ACC-0042", "modality": "CT", "study_instance_uid": STUDY,
         "series_instance_uid": SERIES}


@pytest.mark.parametrize("transfer_syntax", [EXPLICIT_LE, IMPLICIT_LE, EXPLICIT_BE, DEFLATED])
def test_every_encoding(transfer_syntax: str) -> None:
    assert dataset_identity(_encoded(_dataset(), transfer_syntax), transfer_syntax) == WHOLE


def test_the_encoding_inferred_without_a_transfer_syntax() -> None:
    assert dataset_identity(_encoded(_dataset(), IMPLICIT_LE), None) == WHOLE


@pytest.mark.parametrize(("charset", "accession", "encoded"), [
    ("ISO_IR 100", "MÜLLER-1", "MÜLLER-1".encode("latin-1")),
    ("ISO_IR 144", "ИВАН-1", "ИВАН-1".encode("iso8859-5")),
    ("ISO_IR 192", "Ωμέγα-1", "Ωμέγα-1".encode()),
])
def test_the_accession_number_in_its_character_set(charset: str, accession: str,
                                                   encoded: bytes) -> None:
    data = _encoded(_dataset(accession, charset))
    assert encoded + (b" " if len(encoded) % 2 else b"") in data  # as pydicom encoded it
    assert dataset_identity(data, EXPLICIT_LE)["accession_number"] == accession


def test_bytes_not_in_the_declared_set_are_kept_as_latin_1() -> None:
    """UTF-8 bytes under no declared set (ASCII): every byte kept, read as Latin-1."""
    data = _encoded(_dataset("ACC-X")).replace(b"ACC-X ", "ÄCC-X".encode())
    assert dataset_identity(data, EXPLICIT_LE)["accession_number"] == "Ã\x84CC-X"


def test_a_head_cut_short_reads_what_is_whole() -> None:
    data = _encoded(_dataset())
    cut = data.index(SERIES.encode()) + 5  # inside the Series Instance UID
    assert dataset_identity(data[:cut], EXPLICIT_LE) == {
        k: v for k, v in WHOLE.items() if k != "series_instance_uid"}
    assert dataset_identity(data[:8], EXPLICIT_LE) == {}


@pytest.mark.parametrize("garbage", [b"", b"\xff" * 64, bytes(range(256)) * 8,
                                     b"\x08\x00\x50\x00SH\xff\xff" + b"A" * 40])
def test_hostile_bytes_read_as_nothing(garbage: bytes) -> None:
    for ts in (EXPLICIT_LE, IMPLICIT_LE, EXPLICIT_BE, DEFLATED, None, "not a uid"):
        assert dataset_identity(garbage, ts) == {}


@pytest.mark.parametrize("out", [False, True])
def test_a_streamed_image_in_chunks(tmp_path: Path, out: bool) -> None:
    """An image of 1 MB streamed in packet-sized pieces, to a file or only hashed: its
    identity from the head the sink kept (no more than IDENTITY_HEAD_SIZE of it)."""
    data = _encoded(_dataset(pixels=1 << 20))
    sink = ObjectSink(tmp_path if out else None, "image", sop_class_uid=CT,
                      sop_instance_uid=None, transfer_syntax=EXPLICIT_LE, source_ae="SCU")
    for i in range(0, len(data), 1448):
        sink.write(data[i:i + 1448])
    assert sink.identity().columns == WHOLE
    assert len(sink.head) <= IDENTITY_HEAD_SIZE
    sink.finish()


def test_with_and_without_files_the_same(tmp_path: Path) -> None:
    """The columns do not depend on whether the objects are written."""
    capture = CAPTURES / "store_104.pcapng"
    with_files = tshark_dicom.analyze(capture, objects_dir=tmp_path / "objects").objects
    without = tshark_dicom.analyze(capture).objects
    columns = ["msg_index", *WHOLE]
    assert with_files["study_instance_uid"].notna().sum() >= 2
    pd.testing.assert_frame_equal(with_files[columns], without[columns])


def test_only_a_c_store_has_them(tmp_path: Path) -> None:
    """A C-FIND's identifier names a study it asks for: not the object's own."""
    objs = tshark_dicom.analyze(CAPTURES / "find_move.pcapng").objects
    assert set(objs["command"]) > {"C-STORE-RQ"}
    others = objs[objs["command"] != "C-STORE-RQ"]
    assert others[list(WHOLE)].isna().all().all()
    stores = objs[objs["command"] == "C-STORE-RQ"]
    assert stores["study_instance_uid"].notna().all()


def test_redaction_replaces_the_accession_number_and_on_request_the_uids() -> None:
    """--redact: the Accession Number (PS3.15 E.1 removes it) is a token; --redact-uids: the
    study and series UIDs too. Modality stays."""
    from tshark_dicom.redact import Redaction, redact_tables

    ds = _dataset("ACC-7781")
    objects = tshark_dicom.analyze(CAPTURES / "store_104.pcapng").objects.head(1).copy()
    for column, value in dataset_identity(_encoded(ds), EXPLICIT_LE).items():
        objects[column] = pd.Series([value], dtype="string", index=objects.index)
    plain = redact_tables({"objects": objects}, Redaction.make("k"))["objects"].iloc[0]
    assert plain["accession_number"].startswith("redacted-")
    assert (plain["study_instance_uid"], plain["modality"]) == (STUDY, "CT")
    uids = redact_tables({"objects": objects}, Redaction.make("k", uids=True))["objects"].iloc[0]
    assert uids["study_instance_uid"].startswith("2.25.") and uids["study_instance_uid"] != STUDY
    assert uids["series_instance_uid"].startswith("2.25.")


def test_what_lies_beyond_the_kept_head_is_not_read() -> None:
    """A Referenced Image Sequence of 600 items (about 80 KiB) before group 0020: the
    Modality and Accession Number before it are read, the UIDs after it are not."""
    ds = _dataset(pixels=1 << 16)
    ds.ReferencedImageSequence = [Dataset() for _ in range(600)]
    for item in ds.ReferencedImageSequence:
        item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = CT, generate_uid()
    data = _encoded(ds)
    assert data.index(STUDY.encode()) > IDENTITY_HEAD_SIZE
    sink = ObjectSink(None, "far", sop_class_uid=CT, sop_instance_uid=None,
                      transfer_syntax=EXPLICIT_LE, source_ae="SCU")
    for i in range(0, len(data), 16384):
        sink.write(data[i:i + 16384])
    assert sink.identity().columns == {"accession_number": "ACC-0042", "modality": "CT"}
    assert dataset_identity(data, EXPLICIT_LE) == WHOLE  # all of it: all read
    sink.discard("test")
