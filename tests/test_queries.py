"""Query/retrieve on real captures: every C-MOVE linked to exactly its callbacks, every
sub-operation to its C-MOVE or C-GET, every query key exactly as sent, and each planted
problem found (and nothing else); plus the no-match diagnosis on hand-made identifiers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

from tshark_dicom.qrfindings import QR_CODES
from tshark_dicom.queries import QueryRecord, decode_identifier, diagnose_no_match

from .conftest import capture_for, truth_files

QR = [t for t in truth_files() if "qr" in json.loads(t.read_text())]
QR_IDS = [t.name.removesuffix(".truth.json") for t in QR]
OTHERS = [t for t in truth_files() if t not in QR]
#: Query/retrieve findings in fixtures made for other issues, planted there.
PLANTED_ELSEWHERE = {"find_move": {"query-no-match"},  # PatientID=NO-SUCH-PATIENT
                     "c_get_cancel": {"query-cancelled"}}  # its C-FIND, cancelled


def _truth(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _none(v: Any) -> Any:
    return None if v is None or v is pd.NA or (isinstance(v, float) and pd.isna(v)) else v


@pytest.mark.parametrize("truth_path", QR, ids=QR_IDS)
def test_operations_and_links_equal_the_truth(truth_path: Path, analysed: Any) -> None:
    want = _truth(truth_path)["qr"]["operations"]
    report, _ = analysed(capture_for(truth_path))
    ops = report.operations.set_index(["assoc_id", "op_index"])
    assert len(ops) == len(want)
    for w in want:
        got = ops.loc[(w["assoc_index"], w["op_index"])]
        where = (truth_path.name, w["assoc_index"], w["op_index"])
        assert got["command"] == w["command"], where
        assert _none(got["status"]) == w["final_status"], where
        if "pending_responses" in w:
            assert got["pending_response_count"] == w["pending_responses"], where
        for key in ("completed", "failed", "warning", "remaining"):
            if key in w:
                assert _none(got[key]) == w[key], (where, key)
        parent = w["parent"]
        got_parent = (None if pd.isna(got["parent_assoc_id"]) else
                      [int(got["parent_assoc_id"]), int(got["parent_op_index"])])
        assert got_parent == parent, where
        if parent is not None:
            assert got["link"] == w["link_evidence"], where
        if w["command"] == "C-MOVE":
            callbacks = got["callback_assoc_ids"]
            assert sorted(callbacks or []) == sorted(w["callback_assoc_indexes"]), where
            seen = sum(1 for o in want if o["parent"] == [w["assoc_index"], w["op_index"]])
            assert got["suboperations_seen"] == seen, where


@pytest.mark.parametrize("truth_path", QR, ids=QR_IDS)
def test_every_query_key_is_exactly_as_sent(truth_path: Path, analysed: Any) -> None:
    queries = _truth(truth_path)["qr"]["queries"]
    report, _ = analysed(capture_for(truth_path))
    q_table = report.queries.set_index(["assoc_id", "op_index"])
    keys = report.query_keys
    for q in queries:
        where = (truth_path.name, q["assoc_index"], q["op_index"])
        got = q_table.loc[(q["assoc_index"], q["op_index"])]
        assert got["command"] == q["command"], where
        assert _none(got["query_level"]) == ((q["query_level"] or "").strip() or None), where
        assert got["match_count"] == q["matches"], where
        assert _none(got["diagnosis"]) == q["diagnosis"], where
        refined = _none(got["refined_from_op"])
        if q["refined_from"] is not None or refined is None:
            assert (None if refined is None else [q["assoc_index"], int(refined)]) == \
                q["refined_from"], where
        else:  # the generator knew the value, but the traffic shows an answer gave it first
            sends = {(k["keyword"], k["value"].rstrip(" \x00")) for k in q["request_keys"]
                     if k["value"]}
            answer = keys[(keys.assoc_id == q["assoc_index"]) & (keys.op_index == refined)
                          & (keys.source == "response")]
            assert any((k.keyword, (k.value or "").rstrip(" \x00")) in sends
                       for k in answer.itertuples()), where
        sent = keys[(keys.assoc_id == q["assoc_index"]) & (keys.op_index == q["op_index"])
                    & (keys.source == "request")]
        assert [(k.tag, k.keyword, k.vr, _none(k.value)) for k in sent.itertuples()] == [
            (k["tag"], k["keyword"], k["vr"], k["value"]) for k in q["request_keys"]], where


@pytest.mark.parametrize("truth_path", QR, ids=QR_IDS)
def test_connection_attempts_equal_the_truth(truth_path: Path, analysed: Any) -> None:
    want = _truth(truth_path)["qr"]["connection_attempts"]
    report, _ = analysed(capture_for(truth_path))
    got = report.connection_attempts
    assert [(r.server_ip, r.server_port, r.outcome, r.client_ip) for r in got.itertuples()] == [
        (w["server_ip"], w["server_port"], w["outcome"], w["client_ip"]) for w in want]
    for row in got.itertuples():  # each one belongs to the C-MOVE it failed
        assert pd.notna(row.move_assoc_id)


@pytest.mark.parametrize("truth_path", QR, ids=QR_IDS)
def test_planted_problems_give_their_findings_and_nothing_else(truth_path: Path,
                                                               analysed: Any) -> None:
    qr = _truth(truth_path)["qr"]
    report, _ = analysed(capture_for(truth_path))
    codes = set(report.findings["code"]) & set(QR_CODES)
    assert set(qr["expected_findings"]) <= codes
    assert codes <= set(qr["expected_findings"]) | set(qr.get("secondary_findings") or [])


@pytest.mark.parametrize("truth_path", OTHERS, ids=[t.name.removesuffix(".truth.json")
                                                    for t in OTHERS])
def test_other_fixtures_give_no_query_retrieve_finding(truth_path: Path, analysed: Any) -> None:
    truth = _truth(truth_path)
    report, _ = analysed(capture_for(truth_path), tuple(filter(None, [truth.get("port_hint")])))
    codes = set(report.findings["code"]) & set(QR_CODES)
    assert codes <= PLANTED_ELSEWHERE.get(truth_path.name.removesuffix(".truth.json"), set())


def test_findings_name_what_was_planted(analysed: Any) -> None:
    from .conftest import CAPTURES

    report, _ = analysed(CAPTURES / "qr_move_refused.pcapng")
    refused = report.findings[report.findings.code == "callback-refused"].summary.iloc[0]
    assert "127.0.0.1:11164" in refused and "DEAD-DEST" in refused
    report, _ = analysed(CAPTURES / "qr_move_unknown_dest.pcapng")
    unknown = report.findings[report.findings.code == "move-destination-unknown"].summary.iloc[0]
    assert "NO-SUCH-AE" in unknown and "0xA801" in unknown
    report, _ = analysed(CAPTURES / "qr_move_rejected.pcapng")
    rejected = report.findings[report.findings.code == "callback-rejected"].summary.iloc[0]
    assert "calling-AE-title-not-recognized" in rejected
    report, _ = analysed(CAPTURES / "qr_move_partial.pcapng")
    failed = report.findings[report.findings.code == "suboperations-failed"].summary.iloc[0]
    assert "2 x 0xA700" in failed


def test_a_c_get_that_sent_nothing_says_why_from_the_negotiation(analysed: Any) -> None:
    """Failed C-GET sub-operations that never came as C-STOREs: without a storage context in
    the SCP role the role finding is named; with them, the SOP classes accepted and, when the
    SCU offered only uncompressed transfer syntaxes, that an object stored compressed comes
    back only if the archive decompresses it (dcmqrscp held the MR as RLE Lossless)."""
    from .conftest import CAPTURES

    def summary(name: str) -> str:
        report, _ = analysed(CAPTURES / name)
        rows = report.findings[report.findings.code == "suboperations-failed"]
        assert len(rows) == 1
        return str(rows.summary.iloc[0])

    text = summary("qr_get_unconvertible.pcapng")
    assert "1 sub-operation of the C-GET from GET-SCU failed" in text
    assert ("QR-ARCHIVE sent no C-STORE for it, though MR Image Storage and CT Image Storage "
            "are accepted with the SCP role for GET-SCU") in text
    assert ("GET-SCU proposed only uncompressed transfer syntaxes: Explicit VR Little Endian, "
            "Implicit VR Little Endian") in text
    text = summary("qr_get_no_role.pcapng")
    assert text.endswith("they were never sent: no storage SOP class is accepted with the SCP "
                         "role for GET-SCU on this association (see get-role-not-negotiated)")


# -- the diagnosis, on hand-made identifiers ---------------------------------------------
def _identifier(**keys: str) -> bytes:
    ds = Dataset()
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, True
    write_dataset(fp, ds)
    return fp.getvalue()


def _query(op_index: int, matches: int, **keys: str) -> QueryRecord:
    q = QueryRecord(op_index, "C-FIND", "Study Root", "STUDY", None, [], [], matches,
                    "0x0000", "Success")
    q.keys = decode_identifier(_identifier(QueryRetrieveLevel="STUDY", **keys), None,
                               "request", 0)
    return q


@pytest.mark.parametrize(("keys", "diagnosis"), [
    ({"PatientID": "PAT001 "}, "trailing-space"),
    ({"PatientID": "PAT01"}, "unknown"),  # padded to even length: not a trailing space
    ({"PatientName": "John Doe"}, "pn-without-caret"),
    ({"PatientName": "Doe"}, "unknown"),
    ({"StudyDate": "2024-01-05"}, "date-format"),
    ({"StudyDate": "20240101-20240131"}, "unknown"),
    ({"StudyInstanceUID": "1.2.3*"}, "wildcard-not-allowed"),
    ({"PatientName": "Doe*"}, "unknown"),
    ({"PatientName": "Doe^John", "StudyDate": "20240105", "Modality": "CT",
      "AccessionNumber": "A1"}, "over-defined"),
])
def test_no_match_diagnosis(keys: dict[str, str], diagnosis: str) -> None:
    q = _query(0, 0, **keys)
    assert diagnose_no_match(q, [q])[0] == diagnosis


def test_over_defined_against_a_query_that_matched() -> None:
    wide = _query(0, 2, StudyDate="20240212")
    narrow = _query(1, 0, StudyDate="20240212", PatientID="PAT001")
    reason, detail = diagnose_no_match(narrow, [wide, narrow])
    assert reason == "over-defined" and "PatientID=PAT001" in detail


def test_values_keep_their_padding() -> None:
    keys = decode_identifier(_identifier(PatientID="ABC", StudyInstanceUID="1.2.3"), None,
                             "request", 0)
    by = {k.keyword: k for k in keys}
    assert by["PatientID"].value == "ABC " and by["PatientID"].text == "ABC"
    assert by["StudyInstanceUID"].value == "1.2.3\x00"


def test_readme_documents_every_finding_code() -> None:
    from tshark_dicom.findings import TIMING_CODES

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for code in (*QR_CODES, *TIMING_CODES):
        assert f"`{code}`" in readme, code
    for diagnosis in ("trailing-space", "pn-without-caret", "wildcard-not-allowed",
                      "date-format", "over-defined", "one-value-differs", "unknown"):
        assert f"| `{diagnosis}` |" in readme, diagnosis


def test_c_cancel_points_at_the_request_it_cancels(analysed: Any) -> None:
    from .conftest import CAPTURES

    report, _ = analysed(CAPTURES / "c_get_cancel.pcapng")
    m = report.messages
    cancel = m[m.command == "C-CANCEL-RQ"].iloc[0]
    cancelled = m[m.msg_index == cancel.request_index].iloc[0]
    # the sender's own C-FIND-RQ (not a C-STORE-RQ of the peer with the same Message ID)
    assert cancelled.command == "C-FIND-RQ" and cancelled.sender == cancel.sender
    assert cancelled.message_id == cancel.responds_to
    ops = report.operations
    find = ops[ops.command == "C-FIND"].iloc[0]
    assert find.cancel_index == cancel.msg_index and find.status_hex == "0xFE00"


def test_a_cancelled_retrieve_says_what_the_destination_did_not_get(analysed: Any) -> None:
    """qr_move_cancel: MOVE-SCU sends a C-CANCEL-RQ while dcmqrscp moves the study to a slow
    destination; dcmqrscp stops with 0xFE00. The finding points at the C-CANCEL-RQ and says
    how many objects the destination did not get (the counts of the final response, as the
    peers saw them)."""
    from .conftest import CAPTURES

    truth = _truth(CAPTURES / "qr_move_cancel.truth.json")["qr"]["operations"]
    move = next(o for o in truth if o["command"] == "C-MOVE")
    report, _ = analysed(CAPTURES / "qr_move_cancel.pcapng")
    f = report.findings[report.findings.code == "retrieve-cancelled"]
    assert len(f) == 1 and f.severity.iloc[0] == "warning"
    m = report.messages
    cancel = m[m.command == "C-CANCEL-RQ"].iloc[0]
    assert f.msg_index.iloc[0] == cancel.msg_index and f.frame.iloc[0] == cancel.first_frame
    text = str(f.summary.iloc[0])
    assert text.startswith("MOVE-SCU cancelled its C-MOVE (STUDY level, StudyInstanceUID=")
    assert (f"QR-ARCHIVE stopped (0xFE00) with {move['completed']} completed, {move['failed']} "
            f"failed, {move['warning']} warning: SLOW-DEST did not get the {move['remaining']} "
            "objects still to send") in text
    assert "a timeout, or its user" in text and "limit on results" not in text
    # the destination's rejected contexts: none needed by what was done, one note, no warnings
    rejected = report.findings[report.findings.code == "context-rejected"]
    assert list(rejected.severity) == ["note"]
    assert str(rejected.summary.iloc[0]).endswith(
        f"none was needed: the C-MOVE's {move['completed']} sub-operations done before it was "
        f"cancelled all completed (the {move['remaining']} never started may have needed one)")


def test_a_cancelled_query_says_the_list_is_not_whole(analysed: Any) -> None:
    """c_get_cancel's C-FIND: cancelled after its first match, answered 0xFE00: a note."""
    from .conftest import CAPTURES

    report, _ = analysed(CAPTURES / "c_get_cancel.pcapng")
    f = report.findings[report.findings.code == "query-cancelled"]
    assert len(f) == 1 and f.severity.iloc[0] == "note"
    text = str(f.summary.iloc[0])
    assert text.startswith("GET-SCU cancelled its C-FIND (STUDY level) to QR-GET-SCP ")
    assert "QR-GET-SCP stopped (0xFE00) after 1 match: GET-SCU has only that one" in text


def _op(status: int | None, category: str | None, cancel: int | None, final: int | None) -> Any:
    from tshark_dicom.timing import OperationRecord

    op = OperationRecord(op_index=0, command="C-FIND", scu="requestor", scp="acceptor",
                         message_id=1, request_index=0, sop_class_uid=None,
                         sop_instance_uid=None, move_destination=None, first_frame=4,
                         last_frame=9, request_first_ns=0, request_complete_ns=1_000_000,
                         request_bytes=100, final_response_index=final, status=status,
                         status_category=category, pending_responses=2)
    if cancel is not None:
        op.cancel_index, op.cancel_ns, op.cancel_frame = cancel, 51_000_000, 8
    return op


def test_only_a_cancel_that_stopped_the_operation_is_a_finding() -> None:
    """The rule's decisions: a C-CANCEL-RQ after the final response (dcmqrscp had sent every
    match before it came), or one the SCP did not act on, is no finding; a Cancel status
    with no C-CANCEL-RQ in the capture says so."""
    from types import SimpleNamespace

    from tshark_dicom.qrfindings import QrContext, operation_cancelled

    c = QrContext([SimpleNamespace(calling_ae="FIND-SCU", called_ae="QR-SCP")],  # type: ignore[list-item]
                  [], [], {})
    assert operation_cancelled(c, 0, _op(0, "Success", cancel=4, final=3), None) is None
    assert operation_cancelled(c, 0, _op(0, "Success", cancel=2, final=3), None) is None
    assert operation_cancelled(c, 0, _op(None, None, cancel=None, final=None), None) is None
    timely = operation_cancelled(c, 0, _op(0xFE00, "Cancel", cancel=2, final=3), None)
    assert timely is not None and (timely.msg_index, timely.frame) == (2, 8)
    assert timely.summary.startswith("FIND-SCU cancelled its C-FIND to QR-SCP 50 ms after")
    assert "after 2 matches: FIND-SCU has only those" in timely.summary
    unprompted = operation_cancelled(c, 0, _op(0xFE00, "Cancel", cancel=None, final=3), None)
    assert unprompted is not None and (unprompted.msg_index, unprompted.frame) == (3, 4)
    assert "the capture holds no C-CANCEL-RQ from FIND-SCU" in unprompted.summary


def test_a_late_callback_to_the_c_moves_own_scu_is_explained_as_such(analysed: Any) -> None:
    """dcmtk movescu as its own destination answers the callback about a second late (it
    looks for it between waits for the C-MOVE-RSP): the slow-association-setup finding says
    that, not the generic advice about the SCP's DNS lookups and load."""
    from tshark_dicom.findings import SLOW_SETUP_ADVICE

    from .conftest import CAPTURES

    report, _ = analysed(CAPTURES / "qr_move_to_self.pcapng")
    slow = report.findings[report.findings.code == "slow-association-setup"]
    assert len(slow) == 1
    text = str(slow.summary.iloc[0])
    assert text.startswith("SELF-MOVER (127.0.0.1:11179) took ")
    assert SLOW_SETUP_ADVICE not in text
    assert text.endswith(
        "SELF-MOVER is the C-MOVE's own SCU (it asked QR-SCP to move to itself) and was "
        "waiting for the C-MOVE-RSP: an SCU that takes its callback association only between "
        "those waits answers it late (dcmtk's movescu looks about once a second), on every "
        "C-MOVE; a destination that listens all the time (a storage SCP of its own, or the SCU "
        "on a thread of its own) does not")


def test_a_worklist_query_is_read_by_the_keys_inside_its_sequence(analysed: Any) -> None:
    """Modality Worklist C-FINDs (dcmtk wlmscpfs): the Scheduled Procedure Step Sequence's
    own keys are the matching and return keys (not "(sequence)"), the finding names the
    information model for the level a worklist query has not, and a query that differs from
    one that matched in one value says so (three keys are a worklist's usual, not over-defined)."""
    from .conftest import CAPTURES

    report, _ = analysed(CAPTURES / "qr_worklist_wrong_station.pcapng")
    q = report.queries.sort_values("op_index")
    sps = "ScheduledProcedureStepSequence>"
    assert [list(k) for k in q["matching_keys"]] == [
        [f"{sps}Modality={m}", f"{sps}ScheduledStationAETitle=CT01",
         f"{sps}ScheduledProcedureStepStartDate=20261205"] for m in ("CT", "MR")]
    assert [list(k) for k in q["return_keys"]] == [
        ["AccessionNumber", "PatientName", "PatientID", f"{sps}ScheduledProcedureStepID"]] * 2
    assert q["match_count"].tolist() == [1, 0]
    assert q["diagnosis"].tolist()[1] == "one-value-differs"
    f = report.findings
    text = f[f.code == "query-no-match"].summary.iloc[0]
    assert text.startswith("the C-FIND from CT01 to WORKLIST (Modality Worklist Information "
                           f"Model - FIND, {sps}Modality=MR, ")
    assert text.endswith(f"likely reason: one-value-differs (operation 0 with {sps}Modality=CT "
                         f"matched 1; this one sends {sps}Modality=MR with the same other "
                         "keys: no record has that value with them)")


def test_a_c_moves_time_says_how_much_was_its_callback_being_answered(analysed: Any) -> None:
    """The slowest C-MOVE of qr_move_to_self waited on its SCP, which waited about a second
    for the destination (the SCU itself) to answer the callback: its bottleneck_detail says
    how much, and whom; a C-MOVE whose callback was answered at once says nothing more."""
    from .conftest import CAPTURES

    report, _ = analysed(CAPTURES / "qr_move_to_self.pcapng")
    move = report.operations[report.operations.command == "C-MOVE"].iloc[0]
    assert move.bottleneck == "scp"
    assert re.search(r"; (9\d\d|1,0\d\d) ms of the wait was SELF-MOVER \(the C-MOVE's own "
                     r"SCU\) answering the callback's A-ASSOCIATE-RQ$", move.bottleneck_detail)
    report, _ = analysed(CAPTURES / "qr_move_ok.pcapng")
    moves = report.operations[report.operations.command == "C-MOVE"]
    assert not moves.bottleneck_detail.fillna("").str.contains("callback").any()


def test_rejected_contexts_a_completed_c_move_never_needed_are_one_note(analysed: Any) -> None:
    """dcmqrscp proposes some 14 retired storage SOP classes on every callback, and the
    destination rejects them: when the C-MOVE completed every sub-operation they were not
    needed, and its callback gets one note naming them instead of a warning each. When a
    sub-operation failed (qr_move_partial: two CT images answered 0xA700) but the failed
    instances' class is known and was accepted, they were not needed either, and the note
    says so; with that class unknown, each stays a warning (next test). The
    presentation_contexts table keeps every rejection either way."""
    from .conftest import CAPTURES

    report, _ = analysed(CAPTURES / "qr_move_ok.pcapng")
    f = report.findings[report.findings.code == "context-rejected"]
    assert f.severity.tolist() == ["note"]
    assert f.summary.iloc[0] == (
        "STORE-DEST rejected 14 of the 120 presentation contexts QR-ARCHIVE proposed on the "
        "callback of the C-MOVE from MOVE-SCU (Hardcopy Color Image Storage SOP Class, Hardcopy "
        "Grayscale Image Storage SOP Class, Nuclear Medicine Image Storage and 11 more); none was "
        "needed: the C-MOVE's 4 sub-operations all completed")
    assert (report.presentation_contexts.result == 3).sum() == 14
    report, _ = analysed(CAPTURES / "qr_move_partial.pcapng")
    f = report.findings[report.findings.code == "context-rejected"]
    assert f.severity.tolist() == ["note"]
    assert f.summary.iloc[0].startswith("STORE-DEST rejected 14 of the 120 presentation ")
    assert f.summary.iloc[0].endswith("none was needed: the failed instances are of CT Image "
                                      "Storage, which it accepted (see suboperations-failed "
                                      "for why they failed)")


def test_a_move_whose_class_the_destination_rejected_names_it(analysed: Any,
                                                               monkeypatch: Any) -> None:
    """qr_move_class_rejected: CT-DEST takes CT Image Storage only; the MR image stored
    earlier in the capture could not be sent on the callback. The finding names the class
    the destination rejected, the failed instance's own (from its C-STORE in the capture);
    without that C-STORE it says what the destination took of what was proposed."""
    from pydicom.uid import UID

    import tshark_dicom
    from tshark_dicom.instances import StoredInstances

    capture = capture_for(next(t for t in truth_files() if t.name.startswith(
        "qr_move_class_rejected.")))
    truth = json.loads(capture.with_suffix(".truth.json").read_text())
    name = UID(truth["qr"]["failed_sop_class"]).name
    report, _ = analysed(capture)
    f = report.findings
    [text] = f[f["code"] == "suboperations-failed"]["summary"].tolist()
    assert (f"they were never sent: CT-DEST rejected {name} on the callback "
            "(abstract-syntax-not-supported (provider rejection)), the SOP class of the failed "
            f"instance (a C-STORE of it is in this capture): the destination does not take it; "
            f"have CT-DEST accept {name}") in text
    # on the callback, the rejection of that class stays a warning; the 118 others, which
    # no failed instance needed, are one note
    rejected = f[f["code"] == "context-rejected"]
    [warning] = rejected[rejected["severity"] == "warning"]["summary"].tolist()
    assert f"({name}) proposed by QR-ARCHIVE" in warning
    [note] = rejected[rejected["severity"] == "note"]["summary"].tolist()
    assert note.startswith("CT-DEST rejected 118 more of the 120 presentation contexts ")
    assert f"none was needed: the failed instance is of {name}" in note
    monkeypatch.setattr(StoredInstances, "sop_class", lambda self, uid: None)
    f = tshark_dicom.analyze(capture).findings
    [text] = f[f["code"] == "suboperations-failed"]["summary"].tolist()
    assert "(see the callback findings); CT-DEST accepted CT Image Storage of the SOP classes " \
        "proposed on the callback and rejected 119: an object of a rejected class cannot be " \
        "sent to it" in text
    # the failed instance's class unknown: which rejection mattered is too, all stay
    assert (f[f["code"] == "context-rejected"]["severity"] == "warning").sum() == 119
