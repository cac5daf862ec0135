"""Objects sent more than once (instances.py): a SOP Instance UID reused for other content and
the same object sent again, against what real peers sent (fixtures' ``duplicates`` truth), and
the bounded memory of the stores on records built here."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from tshark_dicom.association import Association
from tshark_dicom.instances import REUSED_NAMED, STORES_KEPT, StoredInstances
from tshark_dicom.records import REQUESTOR, ObjectRecord
from tshark_dicom.timing import OperationRecord

from .conftest import capture_for, truth_files

CT = "1.2.840.10008.5.1.4.1.1.2"
TRUTHS = [t for t in truth_files() if "duplicates" in json.loads(t.read_text())]


def test_there_is_a_fixture() -> None:
    assert sorted(t.name for t in TRUTHS) == ["store_copies_compared.truth.json",
                                              "store_uid_reused.truth.json"]


@pytest.mark.parametrize("truth_path", TRUTHS, ids=[t.name.split(".")[0] for t in TRUTHS])
def test_copies_are_told_apart_by_content(truth_path: Path, analysed: Any) -> None:
    report, _ = analysed(capture_for(truth_path), (), ())
    check_duplicates(json.loads(truth_path.read_text()), report)


def check_duplicates(truth: dict[str, Any], report: Any) -> None:
    """Each copy in the objects table and the findings against the truth's ``duplicates``
    key (also run on fresh traffic: test_live_peers)."""
    objects, findings = report.objects, report.findings
    for dup in truth["duplicates"]:
        uid = dup["sop_instance_uid"]
        rows = objects[objects["sop_instance_uid"] == uid]
        # the objects table has every copy, with the hash the peer sent
        assert sorted(rows["sha256"]) == sorted(c["dataset_sha256"] for c in dup["copies"])
        assert list(rows["assoc_id"]) == [c["assoc_index"] for c in dup["copies"]]
        about = findings[findings["summary"].str.contains(uid, regex=False)]
        assert list(about["code"]) == [dup["expected_finding"]]
        f = about.iloc[0]
        if dup.get("re_encoded"):  # other bytes, the same content (the peers' pydicom says)
            assert (f["severity"], f["assoc_id"]) == ("note", pd_na())
            assert "1 object(s) were sent again re-encoded: other bytes, the same " \
                "attributes and pixel data" in f["summary"]
        elif dup["same_content"]:
            assert (f["severity"], f["assoc_id"]) == ("note", pd_na())
            assert "1 object(s) were sent again with the same content" in f["summary"]
        elif "changed" in dup:  # what the router's rules changed, and nothing else
            later = max(dup["copies"], key=lambda c: c["assoc_index"])
            assert (f["severity"], f["assoc_id"]) == ("warning", later["assoc_index"])
            assert f"was sent on with {len(dup['changed'])} attributes changed" in f["summary"]
            for keyword in dup["changed"]:
                assert f"{keyword} (" in f["summary"]
            assert "the pixel data are the same" in f["summary"]
        else:
            assert (f["severity"], f["assoc_id"]) == ("warning", dup["copies"][-1]["assoc_index"])
            assert "was sent with other content (data sets differ)" in f["summary"]
            assert "REUSE-CT to REUSE-PACS both times" in f["summary"]
            # the one attribute the scenario changed, compared in the two files
            assert "1 attribute differs: WindowCenter (0028,1050)" in f["summary"]
            assert "the pixel data are the same" in f["summary"]


def pd_na() -> Any:
    import pandas as pd

    return pd.NA


def _assoc(calling: str = "CT01", called: str = "PACS") -> Association:
    return cast(Association, SimpleNamespace(calling_ae=calling, called_ae=called))


def _store(msg_index: int, uid: str, frame: int, status: str = "Success") -> OperationRecord:
    op = OperationRecord(msg_index // 2, "C-STORE", REQUESTOR, "acceptor", 1, msg_index, CT,
                         uid, None, frame, frame + 1, 0, 0, 100)
    op.status_category = status
    return op


def _obj(msg_index: int, uid: str, sha: str, complete: bool = True) -> ObjectRecord:
    return ObjectRecord(msg_index, "C-STORE-RQ", CT, uid, None, False, 1000, sha, complete,
                        None, None, "requestor")


def test_each_copy_gets_its_own_frame_and_route() -> None:
    stored = StoredInstances()
    first = [_store(0, "1.1", 10), _store(2, "1.2", 20)]
    stored.add(1, _assoc(), first, [_obj(0, "1.1", "a" * 64), _obj(2, "1.2", "b" * 64)])
    # a later association: 1.1 again with other content, 1.2 again unchanged, to another
    # destination; an incomplete copy is never compared
    again = [_store(0, "1.1", 50), _store(2, "1.2", 60), _store(4, "1.3", 70)]
    stored.add(4, _assoc(called="PACS2"), again, [
        _obj(0, "1.1", "c" * 64), _obj(2, "1.2", "b" * 64), _obj(4, "1.1", "d" * 64, False)])
    [(stream, reused), (nobody, resent)] = stored.findings()
    assert (stream, reused.code, reused.frame, reused.msg_index) == (4, "instance-uid-reused",
                                                                      50, 0)
    assert "at frames 10 and 50 (CT01 to PACS, then CT01 to PACS2)" in reused.summary
    assert (nobody, resent.code, resent.severity) == (None, "instance-resent", "note")
    assert "1 object(s) were sent again with the same content (1 KB once more)" in \
        resent.summary
    assert "at frames 20 and 60" in resent.summary


def test_reused_uids_are_named_up_to_a_bound_then_counted() -> None:
    stored = StoredInstances()
    n = REUSED_NAMED + 5
    for digest in ("a", "b"):
        ops = [_store(2 * i, f"1.{i}", i) for i in range(n)]
        stored.add(1, _assoc(), ops, [_obj(2 * i, f"1.{i}", digest * 64) for i in range(n)])
    found = stored.findings()
    assert len(found) == REUSED_NAMED + 1
    assert found[-1][0] is None and found[-1][1].summary.startswith(
        "5 more SOP Instance UIDs were sent with other content")


def test_stores_remembered_are_bounded() -> None:
    stored = StoredInstances()
    ops = [_store(2 * i, f"1.{i}", i) for i in range(STORES_KEPT + 10)]
    stored.add(1, _assoc(), ops, [_obj(2 * i, f"1.{i}", "a" * 64)
                                  for i in range(STORES_KEPT + 10)])
    assert len(stored.seen) == STORES_KEPT == len(stored.copies) and stored.full
    # past the bound an instance not found is unknown, not "not sent"
    assert stored.sent_text("9.9") == ""
    assert stored.sent_text("1.3") == "it was stored successfully (C-STORE-RQ at frame 3)"
    # a failed store is said so, and a later success wins over it
    other = StoredInstances()
    other.add(1, _assoc(), [_store(0, "2.1", 5, "Failure")])
    assert other.sent_text("2.1") == "its C-STORE (frame 5) ended Failure"
    assert other.sent_text("2.2") == "no C-STORE of it is in this capture"
    other.add(2, _assoc(), [_store(0, "2.1", 9)])
    assert other.stored("2.1")


def test_copies_from_two_senders_may_be_one_object_re_encoded() -> None:
    """dcmtk's storescu and pynetdicom sent the same file (CT_small) as 38,732 and 38,870
    bytes: a UID reused across two senders, or two transfer syntaxes, says that re-encoding
    gives other bytes too; one sender in one transfer syntax does not."""
    stored = StoredInstances()
    stored.add(1, _assoc(calling="STORESCU"), [_store(0, "1.1", 10)],
               [_obj(0, "1.1", "a" * 64)])
    stored.add(2, _assoc(calling="PYN-SCU"), [_store(0, "1.1", 30)],
               [_obj(0, "1.1", "b" * 64)])
    [(_, reused)] = stored.findings()
    assert "came from two senders (STORESCU and PYN-SCU)" in reused.summary
    assert "or the copies are one object re-encoded" in reused.summary
    assert "of 1,000 and 1,000 bytes" in reused.summary
    same = StoredInstances()
    for stream, frame, digest in ((1, 10, "a"), (2, 30, "b")):
        same.add(stream, _assoc(), [_store(0, "1.1", frame)], [_obj(0, "1.1", digest * 64)])
    [(_, once)] = same.findings()
    assert "re-encode" not in once.summary


def _files(tmp_path: Path, **changes: Any) -> tuple[Path, Path]:
    """CT_small as a modality sends it (Explicit VR Little Endian), and a second copy in
    Implicit VR Little Endian with ``changes`` made to it."""
    from pydicom import dcmread
    from pydicom.data import get_testdata_file

    ds = dcmread(str(get_testdata_file("CT_small.dcm")))
    ds.file_meta.TransferSyntaxUID = EXPLICIT
    ds.save_as(tmp_path / "first.dcm", enforce_file_format=True)
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    ds.file_meta.TransferSyntaxUID = IMPLICIT
    ds.save_as(tmp_path / "later.dcm", enforce_file_format=True)
    return tmp_path / "first.dcm", tmp_path / "later.dcm"


EXPLICIT, IMPLICIT = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2"


def _file_obj(msg_index: int, sha: str, name: str, ts: str) -> ObjectRecord:
    return ObjectRecord(msg_index, "C-STORE-RQ", CT, "1.1", ts, False, 1000, sha, True,
                        None, name, "requestor")


def _two_copies(tmp_path: Path, objects_dir: Path | None, later_calling: str = "PACS",
                **changes: Any) -> list[tuple[int | None, Any]]:
    _files(tmp_path, **changes)
    stored = StoredInstances(objects_dir)
    stored.add(1, _assoc("CT01", "PACS"), [_store(0, "1.1", 10)],
               [_file_obj(0, "a" * 64, "first.dcm", EXPLICIT)])
    stored.add(2, _assoc(later_calling, "VIEWER"), [_store(0, "1.1", 30)],
               [_file_obj(0, "b" * 64, "later.dcm", IMPLICIT)])
    return stored.findings()


def test_a_copy_re_encoded_is_one_note_for_the_capture(tmp_path: Path) -> None:
    [(stream, note)] = _two_copies(tmp_path, tmp_path)
    assert (stream, note.code, note.severity, note.frame) == (None, "instance-re-encoded",
                                                              "note", 30)
    assert note.summary.startswith("1 object(s) were sent again re-encoded: other bytes, the "
                                   "same attributes and pixel data; e.g. 1.1 at frames 10 and "
                                   "30 (CT01 to PACS, then PACS to VIEWER), in Explicit VR "
                                   "Little Endian (1,000 bytes), then in Implicit VR Little "
                                   "Endian (1,000 bytes)")


def test_attributes_changed_by_the_next_sender_are_named(tmp_path: Path) -> None:
    [(stream, found)] = _two_copies(tmp_path, tmp_path, PatientID="PACS-1CT1")
    assert (stream, found.code, found.severity) == (2, "instance-changed", "warning")
    assert ("was sent on with 1 attribute changed at frames 10 and 30 (CT01 to PACS, then "
            "PACS to VIEWER): PatientID (0010,0020) '1CT1' \u2192 'PACS-1CT1'; the pixel "
            "data are the same: PACS, or a system between the two, changed the object on "
            "the way") in found.summary


def test_one_sender_with_other_content_is_a_uid_reused(tmp_path: Path) -> None:
    [(_, found)] = _two_copies(tmp_path, tmp_path, later_calling="CT01", WindowCenter="40")
    assert found.code == "instance-uid-reused"
    assert "1 attribute differs: WindowCenter (0028,1050) added ('40')" in found.summary


def test_copies_without_their_files_say_how_to_compare_them(tmp_path: Path) -> None:
    [(_, found)] = _two_copies(tmp_path, None)
    assert found.code == "instance-uid-reused"
    assert "or the copies are one object re-encoded" in found.summary
    assert "(with the objects written, without --no-objects, the two are compared " \
        "attribute by attribute)" in found.summary


def test_the_copy_sent_first_is_the_first_whatever_ended_first(tmp_path: Path) -> None:
    """A router forwards inside its own C-STORE: the forward's association ends first, yet
    its copy went out later (frames say so)."""
    _files(tmp_path, PatientID="RTR-1CT1")
    stored = StoredInstances(tmp_path)
    stored.add(5, _assoc("ROUTER", "PACS"), [_store(0, "1.1", 30)],
               [_file_obj(0, "b" * 64, "later.dcm", IMPLICIT)])
    stored.add(4, _assoc("CT01", "ROUTER"), [_store(0, "1.1", 10)],
               [_file_obj(0, "a" * 64, "first.dcm", EXPLICIT)])
    [(stream, found)] = stored.findings()
    assert (stream, found.code, found.frame) == (5, "instance-changed", 30)
    assert "(CT01 to ROUTER, then ROUTER to PACS): PatientID (0010,0020) '1CT1' \u2192 " \
        "'RTR-1CT1'" in found.summary


def test_files_compared_are_bounded(tmp_path: Path, monkeypatch: Any) -> None:
    import tshark_dicom.instances as instances

    monkeypatch.setattr(instances, "COMPARED", 0)
    [(_, found)] = _two_copies(tmp_path, tmp_path)
    assert found.code == "instance-uid-reused" and "re-encoded: they came" in found.summary
