"""Two copies of one object compared attribute by attribute (copies.py), on Part-10 files that
pydicom writes here from its own test objects: one object in two encodings is the same, and
every attribute changed, added or removed, at any depth, is named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from tshark_dicom import copies
from tshark_dicom.copies import DIFFER, compare_files

IMPLICIT, EXPLICIT = str(ImplicitVRLittleEndian), str(ExplicitVRLittleEndian)


def _testfile(name: str) -> Any:
    path = get_testdata_file(name)
    assert path is not None
    return dcmread(path)


def _save(ds: Any, path: Path, ts: str) -> Path:
    ds.file_meta.TransferSyntaxUID = ts
    ds.save_as(path, enforce_file_format=True)
    return path


def test_one_object_in_two_encodings_is_the_same(tmp_path: Path) -> None:
    # CT_small has private attributes too; one block of an unknown creator, which Implicit
    # VR leaves undecoded (UN) while Explicit VR gives it its LO
    ds = _testfile("CT_small.dcm")
    block = ds.private_block(0x0011, "ACME 1.0", create=True)
    block.add_new(0x01, "LO", "a private value")
    a = _save(ds, tmp_path / "a.dcm", EXPLICIT)
    b = _save(dcmread(a), tmp_path / "b.dcm", IMPLICIT)
    assert a.read_bytes() != b.read_bytes()
    found = compare_files(a, b, EXPLICIT, IMPLICIT)
    assert found is not None and found.same, found
    assert (found.changed, found.pixels) == (0, "same")


def test_sequences_are_compared_item_by_item(tmp_path: Path) -> None:
    a = _save(_testfile("rtplan.dcm"), tmp_path / "a.dcm", IMPLICIT)
    ds = _testfile("rtplan.dcm")
    ds.BeamSequence[0].BeamName = "CHANGED"
    ds.FractionGroupSequence.append(ds.FractionGroupSequence[0])
    b = _save(ds, tmp_path / "b.dcm", EXPLICIT)
    found = compare_files(a, b, IMPLICIT, EXPLICIT)
    assert found is not None and not found.same
    # a sequence with another number of items is said so, not walked
    assert found.changes_text() == (
        "FractionGroupSequence (300A,0070) 1 item(s) \u2192 2 item(s); "
        "BeamSequence (300A,00B0)[0] > BeamName (300A,00C2) 'Field 1' \u2192 'CHANGED'")
    assert found.pixels == "absent" and found.pixels_text() == ""


def test_changed_added_and_removed_attributes_are_named_and_counted(tmp_path: Path) -> None:
    a = _save(_testfile("CT_small.dcm"), tmp_path / "a.dcm", EXPLICIT)
    ds = dcmread(a)
    ds.PatientID = "PACS-1CT1"
    del ds.InstitutionName
    ds.WindowCenter = "40"
    b = _save(ds, tmp_path / "b.dcm", IMPLICIT)
    found = compare_files(a, b, EXPLICIT, IMPLICIT)
    assert found is not None and found.changed == 3 and found.pixels == "same"
    assert found.changes_text() == (
        "InstitutionName (0008,0080) removed (was 'JFK IMAGING CENTER'); "
        "PatientID (0010,0020) '1CT1' \u2192 'PACS-1CT1'; WindowCenter (0028,1050) added ('40')")
    # past NAMED, the rest are counted
    for i in range(copies.NAMED + 2):
        ds.add_new(0x00090010 + i, "LO", f"creator {i}")
    c = _save(ds, tmp_path / "c.dcm", EXPLICIT)
    found = compare_files(a, c, EXPLICIT, EXPLICIT)
    assert found is not None and found.changed > copies.NAMED
    assert found.changes_text().endswith(f"; and {found.changed - copies.NAMED} more")


def test_pixel_data_that_differ_are_said_so(tmp_path: Path) -> None:
    a = _save(_testfile("MR_small.dcm"), tmp_path / "a.dcm", EXPLICIT)
    ds = dcmread(a)
    ds.PixelData = ds.PixelData[:-2] + b"\x01\x02"
    b = _save(ds, tmp_path / "b.dcm", IMPLICIT)
    found = compare_files(a, b, EXPLICIT, IMPLICIT)
    assert found is not None and (found.changed, found.pixels) == (0, DIFFER)
    assert found.pixels_text() == "the pixel data differ" and not found.same


def test_pixel_data_in_two_encodings_are_not_compared(tmp_path: Path) -> None:
    jpeg = _testfile("SC_rgb_small_odd_jpeg.dcm")  # the same image, JPEG and native
    a = tmp_path / "a.dcm"
    jpeg.save_as(a, enforce_file_format=True)
    native = _testfile("SC_rgb_small_odd.dcm")
    b = _save(native, tmp_path / "b.dcm", EXPLICIT)
    ts = str(jpeg.file_meta.TransferSyntaxUID)
    found = compare_files(a, b, ts, EXPLICIT)
    assert found is not None and found.pixels.startswith("in two encodings, JPEG")
    assert found.pixels_text().startswith("the pixel data were not compared (in two encodings")


def test_long_values_are_hashed_from_the_files(tmp_path: Path, monkeypatch: Any) -> None:
    """A value past DEFERRED stays in the file: pydicom never reads it, the comparison hashes
    it in pieces (memory flat for any object)."""
    monkeypatch.setattr(copies, "_CHUNK", 4096)
    base = _testfile("rtplan.dcm")
    base.add_new(0x00091010, "OB", b"\x01" * (copies.DEFERRED + 10))
    a = _save(base, tmp_path / "a.dcm", EXPLICIT)
    same = _save(dcmread(a), tmp_path / "b.dcm", IMPLICIT)
    other = dcmread(a)
    other[0x00091010].value = b"\x01" * copies.DEFERRED + b"\x02" * 10
    c = _save(other, tmp_path / "c.dcm", IMPLICIT)
    read: list[int] = []
    real = copies._digest

    def counted(f: Any, start: int, length: int) -> bytes:
        read.append(length)
        return real(f, start, length)

    monkeypatch.setattr(copies, "_digest", counted)
    found = compare_files(a, same, EXPLICIT, IMPLICIT)
    assert found is not None and found.same
    assert read == [copies.DEFERRED + 10] * 2
    found = compare_files(a, c, EXPLICIT, IMPLICIT)
    assert found is not None
    size = f"{copies.DEFERRED + 10:,} bytes"
    assert found.changes_text() == f"(0009,1010) {size} \u2192 {size}"


@pytest.mark.parametrize("ts", [str(ExplicitVRBigEndian), None])
def test_copies_it_cannot_read_value_by_value_are_not_compared(tmp_path: Path,
                                                                ts: str | None) -> None:
    a = _save(_testfile("MR_small.dcm"), tmp_path / "a.dcm", EXPLICIT)
    assert compare_files(a, a, EXPLICIT, ts) is None


def test_a_file_that_is_not_dicom_is_not_compared(tmp_path: Path) -> None:
    a = _save(_testfile("MR_small.dcm"), tmp_path / "a.dcm", EXPLICIT)
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"\x00" * 200)
    assert compare_files(a, junk, EXPLICIT, EXPLICIT) is None
    assert compare_files(a, tmp_path / "gone.dcm", EXPLICIT, EXPLICIT) is None


@pytest.mark.parametrize("undefined", [True, False])
def test_a_private_sequence_undecoded_in_implicit_vr_is_read_as_one(tmp_path: Path,
                                                                    undefined: bool) -> None:
    """A private sequence of a creator pydicom does not know has no VR in Implicit VR: of
    defined length it comes undecoded, and is read as the sequence it is."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = _testfile("CT_small.dcm")
    block = ds.private_block(0x0011, "ACME 1.0", create=True)
    inner = Dataset()
    inner.PatientID = "abc"
    block.add_new(0x02, "SQ", Sequence([inner]))
    ds[block.get_tag(0x02)].is_undefined_length = undefined
    a = _save(ds, tmp_path / "a.dcm", EXPLICIT)
    b = _save(ds, tmp_path / "b.dcm", IMPLICIT)
    found = compare_files(a, b, EXPLICIT, IMPLICIT)
    assert found is not None and found.same, found
    inner.PatientID = "abd"
    c = _save(ds, tmp_path / "c.dcm", IMPLICIT)
    found = compare_files(a, c, EXPLICIT, IMPLICIT)
    assert found is not None
    assert found.changes_text() == "(0011,1102)[0] > PatientID (0010,0020) 'abc' \u2192 'abd'"
