"""C-STOREs whose command disagrees with its presentation context (``context-sop-class-
mismatch``) or with its own data set (``dataset-uid-mismatch``), against fixtures/captures/
store_sop_mismatch (real dcmtk storescp, pynetdicom and Orthanc receivers; the truth lists
what the SCU sent, never read from the capture), and on every other fixture, where commands,
contexts and data sets agree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydicom import data as pydicom_data
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

from tshark_dicom.datasethead import dataset_uids_differ

from .conftest import capture_for, truth_files

TRUTHS = truth_files()
CODES = {"context": "context-sop-class-mismatch", "dataset_class": "dataset-uid-mismatch",
         "dataset_instance": "dataset-uid-mismatch"}
CT = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"
DEFLATED = "1.2.840.10008.1.2.1.99"


def _truth(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_there_is_a_mismatch_fixture() -> None:
    assert [t.name for t in TRUTHS if "sop_mismatch" in _truth(t)] == \
        ["store_sop_mismatch.truth.json"]


@pytest.mark.parametrize("truth_path", TRUTHS, ids=[t.name.split(".")[0] for t in TRUTHS])
def test_a_finding_for_each_mismatch_and_none_elsewhere(truth_path: Path,
                                                        analysed: Any) -> None:
    truth = _truth(truth_path)
    report, _ = analysed(capture_for(truth_path))
    f = report.findings[report.findings["code"].isin(set(CODES.values()))]
    want = sorted((w["assoc_index"], w["message_id"], CODES[k])
                  for w in truth.get("sop_mismatch", []) for k in w["kinds"])
    msgs = report.messages
    got = []
    for row in f.itertuples():
        (mid,) = msgs[(msgs.assoc_id == row.assoc_id) & (msgs.msg_index == row.msg_index)
                      ]["message_id"]
        got.append((row.assoc_id, mid, row.code))
    # one finding per kind, but one dataset-uid-mismatch for a class and an instance both
    assert sorted(set(got)) == sorted(set(want))
    assert len(got) == len(set(got))


def test_the_findings_name_the_uids_and_the_refusals_point_at_them(analysed: Any) -> None:
    path = next(t for t in TRUTHS if t.name == "store_sop_mismatch.truth.json")
    items = _truth(path)["sop_mismatch"]
    report, out = analysed(capture_for(path))
    f = report.findings
    for w in items:
        rows = f[(f.assoc_id == w["assoc_index"])
                 & f.summary.str.contains(f"C-STORE-RQ {w['message_id']} ", regex=False)]
        for kind in w["kinds"]:
            (text,) = rows[rows.code == CODES[kind]]["summary"]
            if kind == "context":
                assert "MR Image Storage" in text and "negotiated for CT Image Storage" in text
            elif kind == "dataset_class":
                assert f"says SOP Class UID MR Image Storage ({w['dataset_sop_class']})" in text
                assert w["command_sop_instance"] in text
            else:
                assert f"says SOP Instance UID {w['dataset_sop_instance']}" in text
                assert w["command_sop_instance"] in text
    # every refusal of a mismatched data set (0xA900 from storescp and Orthanc, 0xC000 from
    # the pynetdicom SCP) says why
    failures = f[f.code == "dimse-failure"]
    assert len(failures) == 6
    assert failures.summary.str.contains("names other UIDs than its command (see the "
                                         "dataset-uid-mismatch finding)", regex=False).all()
    # the Part-10 files keep the command's UIDs in their header and say what the data set has
    objs = report.objects
    noted = objs[objs.meta_notes.fillna("").str.contains("the data set says")]
    assert len(noted) == 6
    for row in noted.itertuples():
        ds = dcmread(out / row.path)
        assert ds.file_meta.MediaStorageSOPInstanceUID == row.sop_instance_uid
        assert (ds.SOPClassUID, ds.SOPInstanceUID) != \
            (row.sop_class_uid, row.sop_instance_uid)
        assert f"the data set says {ds.SOPInstanceUID}" in row.meta_notes or \
            f"the data set says {ds.SOPClassUID}" in row.meta_notes


def _encode(ds: Dataset, implicit: bool, little: bool = True) -> bytes:
    buf = DicomBytesIO()
    buf.is_implicit_VR, buf.is_little_endian = implicit, little
    write_dataset(buf, ds)
    return buf.getvalue()


@pytest.mark.parametrize(("implicit", "little", "ts"), [
    (True, True, "1.2.840.10008.1.2"), (False, True, "1.2.840.10008.1.2.1"),
    (False, False, "1.2.840.10008.1.2.2")])
def test_dataset_uids_differ(implicit: bool, little: bool, ts: str) -> None:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = ENHANCED_CT, "1.2.3.4.5"
    ds.Modality = "CT"
    data = _encode(ds, implicit, little)
    assert dataset_uids_differ(data, ts, ENHANCED_CT, "1.2.3.4.5") is None
    # a command UID that is a prefix of the data set's is no match
    assert dataset_uids_differ(data, ts, CT, "1.2.3.4.5") == (ENHANCED_CT, "1.2.3.4.5")
    assert dataset_uids_differ(data, ts, ENHANCED_CT, "1.2.3.4") == (ENHANCED_CT, "1.2.3.4.5")
    # cut before the instance UID: only what is there counts
    cut = data[:data.index(b"1.2.3.4.5")]
    assert dataset_uids_differ(cut, ts, ENHANCED_CT, "9.9") is None
    assert dataset_uids_differ(cut, ts, CT, "9.9") == (ENHANCED_CT, None)
    # nothing to compare with, or bytes that are no data set
    assert dataset_uids_differ(data, ts, None, "1.2.3.4.5") is None
    assert dataset_uids_differ(b"\xff" * 64, ts, CT, "1.2") is None


def test_pydicoms_files_agree_with_their_own_uids() -> None:
    """Every test file pydicom ships with a meta header: its data set's first 512 bytes as
    they would travel (any transfer syntax, deflated included) agree with its own UIDs, and
    not with another instance UID."""
    from pynetdicom.dsutils import split_dataset

    checked = 0
    for path in sorted(Path(pydicom_data.__file__).parent.glob("test_files/*.dcm")):
        try:
            meta, offset = split_dataset(path)
            ds = dcmread(path, stop_before_pixels=True)
            ts, sop_class, sop_instance = (str(meta.TransferSyntaxUID), str(ds.SOPClassUID),
                                           str(ds.SOPInstanceUID))
        except Exception:  # no meta header, no UIDs: not a file a C-STORE sends as it is
            continue
        head = path.read_bytes()[offset:offset + 512]
        assert dataset_uids_differ(head, ts, sop_class, sop_instance) is None, path.name
        if sop_instance.encode() in head or ts == DEFLATED:  # inflated to be read
            assert dataset_uids_differ(head, ts, sop_class, "1.2.3") is not None, path.name
        checked += 1
    assert checked >= 60
