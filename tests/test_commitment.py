"""Storage Commitment (commitment.py): requests matched to results by Transaction UID, on the
same association or a new one, against what real peers did (fixtures' ``commitment`` truth),
and the rules on records built here."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pandas as pd
import pytest
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

import tshark_dicom
from tshark_dicom.association import Association
from tshark_dicom.commitment import (
    FAILED_KEPT,
    STORAGE_COMMITMENT,
    CommitmentLog,
    commitment_message,
    failed_delivery,
    wait_ms,
)
from tshark_dicom.commitment import _items as commitment_items
from tshark_dicom.instances import StoredInstances
from tshark_dicom.records import REQUESTOR, ObjectRecord
from tshark_dicom.streams import ConnectionAttempt
from tshark_dicom.timing import OperationRecord

from .conftest import CAPTURES, capture_for, truth_files

CT = "1.2.840.10008.5.1.4.1.1.2"
TRUTHS = [t for t in truth_files() if "commitment" in json.loads(t.read_text())]


def test_there_are_commitment_fixtures() -> None:
    assert {t.name.removesuffix(".truth.json") for t in TRUTHS} >= {
        "commit_new_association", "commit_unanswered"}


@pytest.mark.parametrize("truth_path", TRUTHS, ids=[t.name.split(".")[0] for t in TRUTHS])
def test_commitments_match_what_the_peers_did(truth_path: Path, analysed: Any) -> None:
    report, _ = analysed(capture_for(truth_path), (), ())
    check_commitments(json.loads(truth_path.read_text()), report)


def check_commitments(truth: dict[str, Any], report: Any) -> None:
    """The commitments table, the result's link and the findings against the truth's
    ``commitment`` key (also run on fresh traffic: test_live_peers)."""
    rows = report.commitments
    ops = report.operations
    codes = set(report.findings["code"])
    assert len(rows) == len(truth["commitment"])
    for want in truth["commitment"]:
        row = rows[rows["transaction_uid"] == want["transaction_uid"]].iloc[0]
        req = want["request"]
        assert row["assoc_id"] == req["assoc_index"]
        # a large commitment's truth lists its first instances and counts them all
        assert row["requested_count"] == req.get("requested_count", len(req["requested"]))
        assert row["request_status_hex"] == f"0x{req['status']:04X}"
        request_op = ops[(ops["assoc_id"] == req["assoc_index"])
                         & (ops["op_index"] == row["op_index"])].iloc[0]
        assert request_op["command"] == "N-ACTION"
        assert request_op["message_id"] == req["message_id"]
        res = want["result"]
        if res is None:
            assert row["outcome"] == "unanswered"
            assert row["result_assoc_id"] is pd.NA
        else:
            assert row["result_assoc_id"] == res["assoc_index"]
            assert row["result_on"] == ("same-association" if res["assoc_index"]
                                        == req["assoc_index"] else "new-association")
            assert row["committed_count"] == len(res["committed"])
            assert row["failed_count"] == res.get("failed_count", len(res["failed"]))
            # the table keeps the first FAILED_KEPT failed instances
            assert row["failed_sop_instances"] == [uid for _, uid, _ in res["failed"]][
                :FAILED_KEPT]
            assert row["outcome"] == ("failures" if res["failed"] else "committed")
            assert row["wait_ms"] > 0
            result_op = ops[(ops["assoc_id"] == res["assoc_index"])
                            & (ops["op_index"] == row["result_op_index"])].iloc[0]
            assert result_op["command"] == "N-EVENT-REPORT"
            assert result_op["message_id"] == res["message_id"]
            # the result's operation points at the request it answers, also where the
            # result's association ended first (commit_orthanc)
            assert (result_op["parent_assoc_id"], result_op["parent_op_index"],
                    result_op["link"]) == (req["assoc_index"], row["op_index"],
                                           "transaction-uid")
        assert set(want["expected_findings"]) <= codes


def test_a_failed_instance_is_named_with_whether_it_was_sent(analysed: Any) -> None:
    report, _ = analysed(CAPTURES / "commit_new_association.pcapng", (), ())
    f = report.findings[report.findings["code"] == "commitment-failed"].iloc[0]
    assert f["severity"] == "error"
    assert f["assoc_id"] == 2  # the association that carried the result
    assert "COMMIT-PACS did not commit 1 of the 4 instance(s) MODALITY asked it to keep" in \
        f["summary"]
    assert "1 No such object instance (0x0112)" in f["summary"]
    assert "no C-STORE of it is in this capture" in f["summary"]
    row = report.commitments.iloc[0]
    assert row["failure_reasons"] == ["No such object instance (0x0112): 1"]


def test_an_unanswered_request_names_the_refused_callbacks(analysed: Any) -> None:
    report, _ = analysed(CAPTURES / "commit_unanswered.pcapng", (), ())
    f = report.findings[report.findings["code"] == "commitment-unanswered"].iloc[0]
    assert f["severity"] == "warning"
    assert f["assoc_id"] == 0  # the request's association
    assert "MODALITY asked COMMIT-PACS to commit 2 instance(s)" in f["summary"]
    tried = json.loads((CAPTURES / "commit_unanswered.truth.json").read_text())[
        "commitment"][0]["attempts"]
    assert (f"tried {tried['count']} time(s) to connect to MODALITY's host at "
            f"{tried['target_ip']}:{tried['target_port']} and the connection was "
            f"{tried['outcome']}") in f["summary"]
    # the attempts are kept (a host that speaks DICOM), but no C-MOVE owns them
    attempts = report.connection_attempts
    assert list(attempts["server_port"]) == [tried["target_port"]] * tried["count"]
    assert attempts["move_assoc_id"].isna().all()


def test_a_result_on_the_same_association(analysed: Any) -> None:
    report, _ = analysed(CAPTURES / "n_services.pcapng", (), ())
    row = report.commitments.iloc[0]
    assert (row["result_on"], row["outcome"], row["requested_count"],
            row["committed_count"], row["failed_count"]) == (
        "same-association", "committed", 2, 2, 0)
    assert not report.findings["code"].str.startswith("commitment").any()


def test_uids_in_commitments_are_redacted() -> None:
    path = CAPTURES / "commit_new_association.pcapng"
    clear = tshark_dicom.analyze(path)
    hidden = tshark_dicom.analyze(path, redact=tshark_dicom.Redaction.make("k", uids=True,
                                                                           network=True))
    a, b = clear.commitments.iloc[0], hidden.commitments.iloc[0]
    assert b["transaction_uid"] != a["transaction_uid"]
    assert b["failed_sop_instances"] != a["failed_sop_instances"]
    assert (b["scu_ae"], b["scp_ae"]) != ("MODALITY", "COMMIT-PACS")
    summaries = " ".join(hidden.findings["summary"])
    assert a["transaction_uid"] not in summaries
    assert a["failed_sop_instances"][0] not in summaries


# -- records built here ---------------------------------------------------------------------

def _bytes(ds: Dataset, syntax: str = ExplicitVRLittleEndian) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian = syntax != ExplicitVRBigEndian
    fp.is_implicit_VR = syntax == ImplicitVRLittleEndian
    write_dataset(fp, ds)
    return fp.getvalue()


def _info(txn: str, refs: list[str], failed: list[tuple[str, int]] = ()) -> Dataset:
    ds = Dataset()
    ds.TransactionUID = txn
    ds.ReferencedSOPSequence = [_ref(u) for u in refs]
    if failed:
        items = []
        for uid, reason in failed:
            item = _ref(uid)
            item.FailureReason = reason
            items.append(item)
        ds.FailedSOPSequence = items
    return ds


def _ref(uid: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = CT
    item.ReferencedSOPInstanceUID = uid
    return item


def _assoc() -> Association:
    """What commitment_message reads of an association: its two ends and AE titles."""
    return cast(Association, SimpleNamespace(
        requestor=("10.0.0.5", 40000), acceptor=("10.0.0.9", 104), calling_ae="CT01",
        called_ae="PACS"))


def _op(command: str, op_index: int, scu: str = REQUESTOR, status: str = "Success",
        at_ns: int = 1_000_000_000) -> OperationRecord:
    op = OperationRecord(op_index, command, scu, "acceptor" if scu == REQUESTOR else REQUESTOR,
                         op_index + 1, op_index * 2, STORAGE_COMMITMENT,
                         "1.2.840.10008.1.20.1.1", None, 1, 2, at_ns, at_ns, 100)
    op.status_category = status
    op.response_complete_ns = at_ns + 1_000_000
    return op


def _obj(data: bytes | None, syntax: str = ExplicitVRLittleEndian) -> ObjectRecord:
    return ObjectRecord(0, "N-ACTION-RQ", STORAGE_COMMITMENT, None, syntax, False,
                        len(data or b""), "", data is not None, None, None, "requestor",
                        identifier=data)


def _message(command: str, ds: Dataset | None, *, op_index: int = 0, scu: str = REQUESTOR,
             status: str = "Success", syntax: str = ExplicitVRLittleEndian,
             at_ns: int = 1_000_000_000) -> Any:
    op = _op(command, op_index, scu, status, at_ns)
    obj = _obj(_bytes(ds, syntax) if ds is not None else None, syntax)
    return commitment_message(7, _assoc(), op, lambda _i: (obj, False))


def test_a_request_and_a_result_are_decoded() -> None:
    req = _message("N-ACTION", _info("1.2.3", ["1.1", "1.2", "1.3"]), syntax=ImplicitVRLittleEndian)
    assert (req.kind, req.transaction_uid, req.referenced, req.failed) == ("request", "1.2.3", 3, 0)
    assert (req.sender_ae, req.receiver_ae) == ("CT01", "PACS")
    # the archive sends the result on the modality's association: it invoked the operation
    res = _message("N-EVENT-REPORT", _info("1.2.3", ["1.1"], [("1.2", 0x0112), ("1.3", 0x0110)]),
                   op_index=1, scu="acceptor")
    assert (res.kind, res.referenced, res.failed, res.sender_ae) == ("result", 1, 2, "PACS")
    assert res.failed_items == [(CT, "1.2", 0x0112), (CT, "1.3", 0x0110)]
    assert res.reasons == {0x0112: 1, 0x0110: 1}


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian,
                                    ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian])
@pytest.mark.parametrize("undefined", [False, True])
def test_sequences_read_from_their_items_bytes_say_what_pydicom_says(
        syntax: str, undefined: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The items of the Referenced and Failed SOP Sequences are counted, and the failed
    ones' reasons and UIDs read, from each item's bytes where the lengths are defined
    (pydicom's Dataset of each item is the slow part of a 12,000-item result); undefined
    lengths go pydicom's way. Both give what pydicom's Dataset gives, beyond FAILED_KEPT
    too, with items holding more than the three elements read."""
    import zlib

    from tshark_dicom import commitment

    failed = [(f"1.2.{i}", 0x0112 if i % 3 else 0x0110) for i in range(FAILED_KEPT + 5)]
    ds = _info("1.2.3", [f"1.1.{i}" for i in range(250)], failed)
    for item in ds.FailedSOPSequence[:3]:
        item.RetrieveAETitle = "ARCHIVE"  # an element that is not read
    del ds.FailedSOPSequence[4].FailureReason  # no reason given
    if undefined:
        for keyword in ("ReferencedSOPSequence", "FailedSOPSequence"):
            ds[keyword].is_undefined_length = True
            for item in ds[keyword].value:
                item.is_undefined_length_sequence_item = True
    data = _bytes(ds, syntax)
    if syntax == DeflatedExplicitVRLittleEndian:
        packer = zlib.compressobj(wbits=-15)
        data = packer.compress(data) + packer.flush()
    fast: list[list[bytes] | None] = []

    def items(*args: Any) -> list[bytes] | None:
        fast.append(commitment_items(*args))
        return fast[-1]

    monkeypatch.setattr(commitment, "_items", items)
    res = commitment_message(7, _assoc(), _op("N-EVENT-REPORT", 1, scu="acceptor"),
                             lambda _i: (_obj(data, syntax), False))
    assert res.problem is None
    assert (res.referenced, res.failed) == (250, FAILED_KEPT + 5)
    want = [(CT, uid, None if i == 4 else reason) for i, (uid, reason) in enumerate(failed)]
    assert res.failed_items == want[:FAILED_KEPT]
    assert res.reasons == {0x0110: 35, 0x0112: 69, None: 1}
    # the fast way where every length is defined, pydicom's where they are not
    assert len(fast) == 2 and all((f is None) == undefined for f in fast)


def test_damaged_sequences_give_what_pydicom_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bytes that are not whole items (cut short, another tag where an item starts, a
    length that runs over) give the message pydicom's Dataset gives, problem included:
    the fast way reads only what it can check and leaves the rest to pydicom."""
    from tshark_dicom import commitment

    ds = _info("1.2.3", ["1.1", "1.2", "1.3"], [("1.4", 0x0112), ("1.5", 0x0110)])
    data = _bytes(ds)
    read = commitment.read_identifier(data, ExplicitVRLittleEndian)
    assert commitment._items(read, commitment._REFERENCED, True) is not None
    raw = read.get_item(commitment._REFERENCED)
    for bad in (raw.value[:-3], b"\x08\x00\x50\x11" + raw.value[4:]):
        read[commitment._REFERENCED] = raw._replace(value=bad, length=len(bad))
        assert commitment._items(read, commitment._REFERENCED, True) is None
    item = b"\xfe\xff\x00\xe0"
    damaged = [data[:n] for n in range(20, len(data), 37)]
    damaged += [data.replace(item, b"\xfe\xff\x0d\xe0", 1),  # a delimiter for an item
                data.replace(item, b"\x08\x00\x50\x11", 4),  # not an item tag
                data.replace(item + b"\x38", item + b"\x70", 1)]  # runs over the sequence
    for bad in damaged:
        op = _op("N-ACTION", 0)
        fast = commitment_message(7, _assoc(), op, lambda _i, b=bad: (_obj(b), False))
        with monkeypatch.context() as m:
            m.setattr(commitment, "_items", lambda *a: None)
            slow = commitment_message(7, _assoc(), op, lambda _i, b=bad: (_obj(b), False))
        assert fast == slow, len(bad)


def test_other_operations_are_not_commitments() -> None:
    op = _op("N-ACTION", 0)
    op.sop_class_uid = "1.2.840.10008.5.1.1.40"  # a print job's N-ACTION
    assert commitment_message(7, _assoc(), op, lambda _i: (None, False)) is None


def test_a_bad_data_set_is_a_problem_not_an_error() -> None:
    op = _op("N-ACTION", 0)
    garbage = _obj(b"not a deflate stream", DeflatedExplicitVRLittleEndian)
    msg = commitment_message(7, _assoc(), op, lambda _i: (garbage, False))
    assert msg is not None and msg.problem and msg.transaction_uid is None
    none = commitment_message(7, _assoc(), op, lambda _i: (None, False))
    assert none is not None and none.problem == "no data set"


def test_results_are_matched_by_transaction_uid_only() -> None:
    log = CommitmentLog(StoredInstances())
    a = _message("N-ACTION", _info("1.9.1", ["1.1"]), op_index=0)
    b = _message("N-ACTION", _info("1.9.2", ["1.2", "1.3"]), op_index=1)
    assert log.add(a) is None and log.add(b) is None
    # b's result first, then a's, then one whose request is not in the capture
    assert log.add(_message("N-EVENT-REPORT", _info("1.9.2", ["1.2", "1.3"]), op_index=2,
                            scu="acceptor")) == (7, 1)
    assert log.add(_message("N-EVENT-REPORT", _info("1.9.1", ["1.1"]), op_index=3,
                            scu="acceptor")) == (7, 0)
    assert log.add(_message("N-EVENT-REPORT", _info("1.9.3", ["1.4"]), op_index=4,
                            scu="acceptor")) is None
    outcomes = [(t.request is not None, t.result is not None, t.outcome)
                for t in log.transactions]
    assert outcomes == [(True, True, "committed"), (True, True, "committed"),
                        (False, True, "committed")]
    assert log.findings([], set(), None) == []


def test_a_refused_request_is_not_unanswered() -> None:
    log = CommitmentLog(StoredInstances())
    log.add(_message("N-ACTION", _info("1.9.1", ["1.1"]), status="Failure"))
    assert log.transactions[0].outcome == "refused"
    assert log.findings([], set(), 5_000_000_000) == []


def test_unanswered_without_callback_attempts_says_it_may_come_later() -> None:
    log = CommitmentLog(StoredInstances())
    log.add(_message("N-ACTION", _info("1.9.1", ["1.1", "1.2"])))
    # an attempt before the request was answered, one owned by a C-MOVE, one elsewhere:
    # none is the archive calling back
    attempts = [
        ConnectionAttempt(1, ("10.0.0.9", 5000), ("10.0.0.5", 104), 500_000_000, 0, 1, 1,
                          "refused"),
        ConnectionAttempt(2, ("10.0.0.9", 5001), ("10.0.0.5", 104), 2_000_000_000, 0, 1, 1,
                          "refused"),
        ConnectionAttempt(3, ("10.0.0.7", 5002), ("10.0.0.5", 104), 2_000_000_000, 0, 1, 1,
                          "refused"),
    ]
    [(stream, f)] = log.findings(attempts, {1}, 61_001_000_000)
    assert (stream, f.code, f.severity) == (7, "commitment-unanswered", "warning")
    assert "came before the capture ended, 60.0 s after the N-ACTION-RSP" in f.summary
    assert "may still come later" in f.summary
    [(_, tried)] = log.findings(attempts[:2], set(), 61_001_000_000)
    assert "PACS's host tried 1 time(s) to connect to CT01's host at 10.0.0.5:104" in \
        tried.summary
    # Orthanc calls back before its N-ACTION-RSP is on the wire: that attempt counts too
    early = ConnectionAttempt(4, ("10.0.0.9", 5003), ("10.0.0.5", 104), 1_000_500_000, 0, 1,
                              1, "refused")
    [(_, orthanc)] = log.findings([early], set(), 61_001_000_000)
    assert "tried 1 time(s)" in orthanc.summary


def test_a_failed_instance_that_was_stored_says_so() -> None:
    log = CommitmentLog(StoredInstances())
    store = _op("C-STORE", 0)
    store.sop_instance_uid = "1.2"
    log.stored.add(3, _assoc(), [store])
    log.add(_message("N-ACTION", _info("1.9.1", ["1.2"])))
    log.add(_message("N-EVENT-REPORT", _info("1.9.1", [], [("1.2", 0x0110)]), op_index=1,
                     scu="acceptor"))
    [(_, f)] = log.findings([], set(), None)
    assert "1 Processing failure (0x0110)" in f.summary
    assert "it was stored successfully (C-STORE-RQ at frame 1)" in f.summary
    assert "did not commit 1 of the 1 instance(s)" in f.summary


def test_the_summary_counts_transactions_by_outcome(tmp_path: Path) -> None:
    captures = [CAPTURES / f"{n}.pcapng" for n in ("commit_new_association",
                                                   "commit_unanswered", "n_services")]
    line = ("storage commitment: 3 transactions (1 with failures, 1 unanswered, 1 committed); "
            "1 instance not committed")
    report = tshark_dicom.analyze(captures)
    assert line in report.summary().splitlines()
    report.write(tmp_path / "out")
    assert line in tshark_dicom.load(tmp_path / "out").summary().splitlines()
    # no line where there is no commitment
    echo = tshark_dicom.analyze(CAPTURES / "echo.pcapng")
    assert "storage commitment" not in echo.summary()


def test_a_result_whose_association_ended_first_still_meets_its_request() -> None:
    """The archive opens its own association for the result and closes it while the
    modality's association with the request is still open: the result settles first."""
    log = CommitmentLog(StoredInstances())
    result = _message("N-EVENT-REPORT", _info("1.9.1", ["1.1"], [("1.2", 0x0112)]),
                      op_index=0, scu="acceptor")
    assert log.add(result) is None
    assert log.add(_message("N-ACTION", _info("1.9.1", ["1.1", "1.2"]), op_index=4)) is None
    [t] = log.transactions
    assert t.request is not None and t.result is result and t.outcome == "failures"
    # the result's association was kept to the end, and its operation gets the link then
    assert log.waiting(7) and log.late_links == {(7, 0): (7, 4)}
    [(_, f)] = log.findings([], set(), None)
    assert f.code == "commitment-failed" and "1 of the 2 instance(s)" in f.summary


def test_the_page_lists_the_transactions_only_where_there_are_some() -> None:
    report = tshark_dicom.analyze([CAPTURES / "commit_new_association.pcapng",
                                   CAPTURES / "commit_unanswered.pcapng"])
    page = report.to_html()
    section = page[page.index("id='commitments'"):page.index("id='findings-by-severity'")]
    assert section.count("<tr class='error'>") == 1  # the result with failures
    assert section.count("<tr class='warning'>") == 1  # the request without a result
    assert "No such object instance (0x0112): 1" in section
    assert "new-association" in section and "MODALITY \u2192 COMMIT-PACS" in section
    assert "id='commitments'" not in tshark_dicom.analyze(CAPTURES / "echo.pcapng").to_html()


def test_the_wait_counts_from_the_request_not_its_response() -> None:
    """Orthanc sends the result on its own association while it answers the N-ACTION: the
    N-EVENT-REPORT-RQ can be complete before the N-ACTION-RSP is."""
    log = CommitmentLog(StoredInstances())
    log.add(_message("N-ACTION", _info("1.9.1", ["1.1"]), at_ns=1_000_000_000))
    # _op puts the N-ACTION-RSP 1 ms after the request; the result comes 0.5 ms after it
    log.add(_message("N-EVENT-REPORT", _info("1.9.1", ["1.1"]), op_index=1, scu="acceptor",
                     at_ns=1_000_500_000))
    assert wait_ms(log.transactions[0]) == 0.5


def test_a_request_whose_data_set_was_not_read_is_not_called_unanswered() -> None:
    """Without its Transaction UID no result can be matched to it: the row says why
    (``problem``), and no finding claims the result never came."""
    log = CommitmentLog(StoredInstances())
    op = _op("N-ACTION", 0)
    long = ObjectRecord(0, "N-ACTION-RQ", STORAGE_COMMITMENT, None, ExplicitVRLittleEndian,
                        False, 9 << 20, "", True, None, None, "requestor")  # complete, not kept
    unread = commitment_message(7, _assoc(), op, lambda _i: (long, False))
    assert unread is not None and unread.problem == "data set longer than the tool keeps"
    log.add(unread)
    assert log.transactions[0].outcome == "unanswered"
    assert log.findings([], set(), 5_000_000_000) == []


def test_an_unanswered_request_names_the_rejected_deliveries(analysed: Any) -> None:
    report, _ = analysed(CAPTURES / "commit_rejected.pcapng", (), ())
    truth = json.loads((CAPTURES / "commit_rejected.truth.json").read_text())
    want = truth["commitment"][0]["deliveries"]
    f = report.findings[report.findings["code"] == "commitment-unanswered"].iloc[0]
    assert (f"COMMIT-PACS's host opened {want['count']} association(s) to MODALITY's host that "
            f"did not deliver it (to 127.0.0.1:{want['target_port']}: {want['result']}") in \
        f["summary"]
    assert want["reason"] in f["summary"]
    assert "check that MODALITY accepts COMMIT-PACS's AE title" in f["summary"]
    assert (report.findings["code"] == "association-rejected").sum() == want["count"]


def _delivery(result: str, contexts: dict[int, Any], abort: Any = None) -> Any:
    return cast(Association, SimpleNamespace(
        requestor=("10.0.0.9", 5000), acceptor=("10.0.0.5", 11112), first_ns=2_000_000_000,
        result=result, reject=(1, 1, 3), abort=abort, contexts=contexts))


def test_what_counts_as_a_failed_delivery() -> None:
    sc_ok = {1: SimpleNamespace(abstract_syntax=STORAGE_COMMITMENT, result=0)}
    sc_no = {1: SimpleNamespace(abstract_syntax=STORAGE_COMMITMENT, result=3)}
    ct = {1: SimpleNamespace(abstract_syntax=CT, result=0)}
    cases = [
        (_delivery("rejected", sc_ok), False, "rejected (rejected-permanent"),
        (_delivery("no-response", sc_ok), False, "never answered"),
        (_delivery("accepted", sc_no), False, "its Storage Commitment context was rejected"),
        (_delivery("accepted", sc_ok, abort=(0, 0)), False, "aborted before any result"),
        (_delivery("accepted", sc_ok), False, "no N-EVENT-REPORT was sent on it"),
        (_delivery("accepted", sc_ok), True, None),  # it carried a result
        (_delivery("rejected", ct), False, None),  # not for Storage Commitment
    ]
    for assoc, carried, what in cases:
        found = failed_delivery(assoc, carried)
        if what is None:
            assert found is None, found
        else:
            assert found is not None and what in found.what, (what, found)
    # only those from the SCP's host to the SCU's host since the request are named
    log = CommitmentLog(StoredInstances())
    log.add(_message("N-ACTION", _info("1.9.1", ["1.1"])))
    log.add_association(_delivery("rejected", sc_ok), False)
    elsewhere = _delivery("rejected", sc_ok)
    elsewhere.requestor = ("10.0.0.7", 5000)
    log.add_association(elsewhere, False)
    [(_, f)] = log.findings([], set(), 9_000_000_000)
    assert "opened 1 association(s) to CT01's host" in f.summary


def test_large_counts_in_the_summary_are_grouped(analysed: Any) -> None:
    report, _ = analysed(CAPTURES / "commit_large.pcapng", (), ())
    assert ("storage commitment: 1 transaction (1 with failures); 12,000 instances not "
            "committed") in report.summary().splitlines()
