"""Modality Performed Procedure Step (mpps.py): each step's N-CREATE followed to the N-SET
that ends it, against what real peers did (fixtures' ``mpps`` truth), and the rules on
records built here."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import ExplicitVRLittleEndian

import tshark_dicom
from tshark_dicom.association import Association
from tshark_dicom.instances import StoredInstances
from tshark_dicom.mpps import MPPS, StepLog, step_message
from tshark_dicom.records import REQUESTOR, ObjectRecord
from tshark_dicom.timing import OperationRecord

from .conftest import CAPTURES, capture_for, truth_files

CT = "1.2.840.10008.5.1.4.1.1.2"
TRUTHS = [t for t in truth_files() if "mpps" in json.loads(t.read_text())]


def test_there_are_mpps_fixtures() -> None:
    assert {t.name.removesuffix(".truth.json") for t in TRUTHS} >= {
        "mpps_images_missing", "mpps_open_and_discontinued", "mpps_uid_assigned"}


@pytest.mark.parametrize("truth_path", TRUTHS, ids=[t.name.split(".")[0] for t in TRUTHS])
def test_procedure_steps_match_what_the_peers_did(truth_path: Path, analysed: Any) -> None:
    report, _ = analysed(capture_for(truth_path), (), ())
    check_steps(json.loads(truth_path.read_text()), report)


def check_steps(truth: dict[str, Any], report: Any) -> None:
    """The procedure_steps table and the findings against the truth's ``mpps`` key (also
    run on fresh traffic: test_live_peers)."""
    rows, ops = report.procedure_steps, report.operations
    findings = report.findings
    assert len(rows) == len(truth["mpps"])
    for want in truth["mpps"]:
        row = rows[rows["sop_instance_uid"] == want["sop_instance_uid"]].iloc[0]
        create = want["create"]
        assert row["assoc_id"] == create["assoc_index"]
        created = ops[(ops["assoc_id"] == row["assoc_id"])
                      & (ops["op_index"] == row["op_index"])].iloc[0]
        assert (created["command"], created["message_id"]) == ("N-CREATE",
                                                               create["message_id"])
        assert row["create_status_hex"] == f"0x{create['status']:04X}"
        assert (row["pps_id"], row["station_ae"], row["accession_number"],
                row["study_instance_uid"]) == (create["pps_id"], create["station_ae"],
                                               create["accession_number"],
                                               create["study_instance_uid"])
        sets = want["sets"]
        assert row["set_count"] == len(sets)
        statuses = [create["pps_status"], *(s["pps_status"] for s in sets)]
        assert row["status"] == statuses[-1]
        assert row["outcome"] == {"IN PROGRESS": "in-progress", "COMPLETED": "completed",
                                  "DISCONTINUED": "discontinued"}[statuses[-1]]
        if sets and statuses[-1] != "IN PROGRESS":
            final = sets[-1]
            assert row["final_assoc_id"] == final["assoc_index"]
            ended = ops[(ops["assoc_id"] == row["final_assoc_id"])
                        & (ops["op_index"] == row["final_op_index"])].iloc[0]
            assert (ended["command"], ended["message_id"]) == ("N-SET", final["message_id"])
            if final["discontinuation_reason"]:
                assert row["discontinuation_reason"].startswith(
                    final["discontinuation_reason"])
            images = final["referenced_images"]
            if images:
                assert row["image_count"] == len(images)
                assert row["stored_count"] == len(want["stored"])
        uid = want["sop_instance_uid"]
        about = set(findings[findings["summary"].str.contains(uid, regex=False)]["code"])
        assert about == set(want["expected_findings"])


def test_a_completed_step_names_the_images_not_stored(analysed: Any) -> None:
    report, _ = analysed(CAPTURES / "mpps_images_missing.pcapng", (), ())
    truth = json.loads((CAPTURES / "mpps_images_missing.truth.json").read_text())["mpps"][0]
    images = [uid for _, uid in truth["sets"][-1]["referenced_images"]]
    missing = [uid for uid in images if uid not in truth["stored"]]
    f = report.findings[report.findings["code"] == "mpps-images-not-stored"].iloc[0]
    assert f["severity"] == "warning"
    assert (f"completed with {len(images)} image(s) listed, but only {len(truth['stored'])} "
            "of them were stored successfully in this capture") in f["summary"]
    assert f"not stored: {missing[0]} (no C-STORE of it is in this capture)" in f["summary"]


def test_a_step_left_in_progress_while_the_modality_moved_on(analysed: Any) -> None:
    report, _ = analysed(CAPTURES / "mpps_open_and_discontinued.pcapng", (), ())
    f = report.findings.set_index("code")
    assert f.loc["mpps-not-completed", "severity"] == "warning"
    assert "PPS-A (accession ACC-A" in f.loc["mpps-not-completed", "summary"]
    assert "MR-MODALITY went on to procedure step PPS-B afterwards" in \
        f.loc["mpps-not-completed", "summary"]
    assert f.loc["mpps-discontinued", "severity"] == "note"
    assert "with reason 'Incorrect worklist entry selected (110514)'" in \
        f.loc["mpps-discontinued", "summary"]


def test_the_summary_and_the_page(tmp_path: Path) -> None:
    captures = [CAPTURES / f"{n}.pcapng" for n in ("mpps_images_missing",
                                                   "mpps_open_and_discontinued",
                                                   "n_services")]
    line = ("procedure steps (MPPS): 4 (2 completed, 1 still in progress, 1 discontinued); "
            "1 listed image not stored")
    report = tshark_dicom.analyze(captures)
    assert line in report.summary().splitlines()
    report.write(tmp_path / "out")
    assert line in tshark_dicom.load(tmp_path / "out").summary().splitlines()
    page = report.to_html()
    section = page[page.index("id='procedure-steps'"):page.index("id='findings-by-severity'")]
    assert section.count("<tr class='warning'>") == 2  # in progress; 3 of 4 stored
    assert "3 of 4" in section and "Incorrect worklist entry selected" in section
    nav = page[page.index("<nav>"):page.index("</nav>")]
    assert "href='#procedure-steps'" in nav and "href='#commitments'" in nav  # n_services'
    assert "href='#procedure-steps'" not in tshark_dicom.analyze(
        CAPTURES / "echo.pcapng").to_html()
    echo = tshark_dicom.analyze(CAPTURES / "echo.pcapng")
    assert "procedure steps" not in echo.summary()
    assert "id='procedure-steps'" not in echo.to_html()


def test_exam_identifiers_are_redacted() -> None:
    path = CAPTURES / "mpps_open_and_discontinued.pcapng"
    hidden = tshark_dicom.analyze(path, redact=tshark_dicom.Redaction.make("k", uids=True))
    rows = hidden.procedure_steps
    assert not rows["accession_number"].isin(["ACC-A", "ACC-B"]).any()
    assert not rows["pps_id"].isin(["PPS-A", "PPS-B"]).any()
    text = " ".join(hidden.findings["summary"])
    assert "ACC-A" not in text and "PPS-B" not in text


# -- records built here ---------------------------------------------------------------------

def _bytes(ds: Dataset) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_dataset(fp, ds)
    return fp.getvalue()


def _assoc(modality: str = "CT01") -> Association:
    return cast(Association, SimpleNamespace(
        requestor=("10.0.0.5", 40000), acceptor=("10.0.0.9", 104), calling_ae=modality,
        called_ae="RIS"))


def _step(command: str, uid: str, ds: Dataset | None, *, at_s: float = 1.0,
          status: str = "Success", modality: str = "CT01", stream: int = 1) -> Any:
    at = int(at_s * 1e9)
    op = OperationRecord(0, command, REQUESTOR, "acceptor", 1, 0, MPPS, uid, None, 1, 2, at,
                         at, 100)
    op.status_category = status
    op.status = 0x0000 if status == "Success" else 0x0110
    obj = ObjectRecord(0, command + "-RQ", MPPS, uid, ExplicitVRLittleEndian, False, 0, "",
                       True, None, None, "requestor",
                       identifier=_bytes(ds) if ds is not None else None)
    return step_message(stream, _assoc(modality), op, lambda _i: (obj, False))


def _pps(status: str, pps_id: str = "P1", images: tuple[str, ...] = ()) -> Dataset:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = status
    ds.PerformedProcedureStepID = pps_id
    if images:
        series = Dataset()
        refs = []
        for uid in images:
            ref = Dataset()
            ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = CT, uid
            refs.append(ref)
        series.ReferencedImageSequence = refs
        ds.PerformedSeriesSequence = [series]
    return ds


def _stored(*uids: str) -> StoredInstances:
    stored = StoredInstances()
    ops = []
    for uid in uids:
        op = OperationRecord(0, "C-STORE", REQUESTOR, "acceptor", 1, 0, CT, uid, None, 1, 2,
                             0, 0, 10)
        op.status_category = "Success"
        ops.append(op)
    stored.add(5, _assoc(), ops)
    return stored


def test_other_operations_are_not_steps() -> None:
    op = OperationRecord(0, "N-CREATE", REQUESTOR, "acceptor", 1, 0, "1.2.840.10008.5.1.1.1",
                         None, None, 1, 2, 0, 0, 10)  # a print film session
    assert step_message(1, _assoc(), op, lambda _i: (None, False)) is None


def test_a_step_alone_in_progress_is_only_a_note() -> None:
    log = StepLog(StoredInstances())
    log.add(_step("N-CREATE", "1.7", _pps("IN PROGRESS")))
    [(stream, f)] = log.findings(61_000_000_000)
    assert (stream, f.code, f.severity) == (1, "mpps-not-completed", "note")
    assert "the capture may have ended before the exam did" in f.summary
    assert "60.0 s after the N-CREATE" in f.summary


def test_a_refused_final_n_set_is_named() -> None:
    log = StepLog(StoredInstances())
    log.add(_step("N-CREATE", "1.7", _pps("IN PROGRESS")))
    log.add(_step("N-SET", "1.7", _pps("COMPLETED"), at_s=2.0, status="Failure"))
    [(_, f)] = log.findings(None)
    assert f.severity == "warning"
    assert "its N-SET to COMPLETED was refused (0x0110)" in f.summary
    assert log.steps[0].outcome == "in-progress" and log.steps[0].status == "IN PROGRESS"


def test_images_are_checked_only_where_the_capture_sees_the_stores() -> None:
    images = ("2.1", "2.2", "2.3")
    for stored, expect in ((_stored(), None), (_stored(*images), None),
                           (_stored("2.1", "2.3"), "2.2")):
        log = StepLog(stored)
        log.add(_step("N-CREATE", "1.7", _pps("IN PROGRESS")))
        log.add(_step("N-SET", "1.7", _pps("COMPLETED", images=images), at_s=2.0))
        found = [f for _, f in log.findings(None) if f.code == "mpps-images-not-stored"]
        assert [f.summary.split("not stored: ")[1].split(" ")[0] for f in found] == \
            ([expect] if expect else [])
        assert log.stored_count(log.steps[0]) == len([u for u in images if stored.stored(u)])


def test_a_step_without_its_n_create_is_still_followed() -> None:
    log = StepLog(StoredInstances())
    log.add(_step("N-SET", "1.8", _pps("DISCONTINUED")))
    [(_, f)] = log.findings(None)
    assert (f.code, f.severity) == ("mpps-discontinued", "note")
    assert "without a reason" in f.summary
    assert log.steps[0].create is None and log.steps[0].outcome == "discontinued"


def test_a_bad_data_set_is_a_problem_not_an_error() -> None:
    msg = _step("N-CREATE", "1.7", None)
    assert msg.problem == "data set longer than the tool keeps" and msg.pps_status is None
