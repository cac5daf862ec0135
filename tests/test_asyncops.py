"""Operations outstanding at once (asyncops.py, and the pairing and timing they need): the
real peers of ``async_ops`` send three C-STORE-RQs before reading a response, and the rules'
decisions on operations made by hand."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from tshark_dicom.asyncops import async_window, async_window_exceeded, message_id_reused
from tshark_dicom.findings import TimingContext
from tshark_dicom.records import ACCEPTOR, REQUESTOR, FindingRecord
from tshark_dicom.timing import OperationRecord

from .conftest import CAPTURES, capture_for, tls_keylogs, truth_files

ALL = truth_files()
ALL_IDS = [t.name.removesuffix(".truth.json") for t in ALL]

ASYNC_CODES = {"async-window-exceeded", "message-id-reused"}


def check_outstanding(truth: dict[str, Any], report: Any) -> None:
    """Per association, from what the SCU did and what the SCP granted (the generator's
    truth, not the capture): the findings, the most outstanding and the window they name;
    each response paired with its request in the order sent (one Message ID for three
    outstanding requests, to dcmtk storescp, included), none unanswered; and no idle gap
    before a request sent without waiting (it counted the SCU idle since the
    A-ASSOCIATE-AC: 54 ms each, and scu-idle said the association was idle 130% of its
    time)."""
    findings, ops, msgs = report.findings, report.operations, report.messages
    assert len(report.associations) == len(truth["outstanding"]) == 4
    for plan in truth["outstanding"]:
        aid = plan["assoc_index"]
        mine = findings[(findings.assoc_id == aid) & findings.code.isin(ASYNC_CODES)]
        assert sorted(mine.code) == sorted(plan["expected_findings"]), plan
        for row in mine.itertuples():
            assert row.severity == "warning"
            assert str(row.summary).startswith("ASYNC-SCU (")
        ids = plan["message_ids"]
        exceeded = mine[mine.code == "async-window-exceeded"]
        if len(exceeded):
            text = str(exceeded.summary.iloc[0])
            assert (f"had up to {plan['sent_before_first_response']} operations outstanding "
                    f"at once, where the association allows it {plan['window_granted']}:") in text
            assert f"The first beyond it: C-STORE {ids[1]} " in text
            assert f"sent while C-STORE {ids[0]} had no final response" in text
            if plan["window_asked"] is None:
                assert "no Asynchronous Operations Window was negotiated" in text
            else:
                assert (f"ASYNC-SCP granted an Asynchronous Operations Window of "
                        f"{plan['window_granted']}") in text
                assert f"where ASYNC-SCU asked for {plan['window_asked']}" in text
        reused = mine[mine.code == "message-id-reused"]
        if len(reused):
            text = str(reused.summary.iloc[0])
            assert f"with Message ID {ids[1]} " in text
            assert f"; {len(ids) - 1} requests in all reused" in text
        # pairing
        theirs = ops[ops.assoc_id == aid].sort_values("op_index")
        assert list(theirs.message_id) == ids
        assert list(theirs.status) == [0] * len(ids)
        finals = list(theirs.final_response_index)
        assert all(pd.notna(f) for f in finals) and finals == sorted(finals)
        assert len(set(finals)) == len(ids)
        rsp = msgs[(msgs.assoc_id == aid) & (msgs.command == "C-STORE-RSP")]
        assert list(rsp.responds_to) == plan["responds_to"]
        assert list(rsp.request_index) == list(theirs.request_index)
        # timing
        queued = theirs[theirs.op_index > 0]
        assert (queued.gap_before_ms == 0.0).all()
        assert not (queued.bottleneck.fillna("") == "scu").any()
    assert "request-unanswered" not in set(findings.code)
    assert (report.associations.idle_share.dropna() <= 1.0).all()
    assert not {"scu-idle", "slow-scp-response"} & set(findings.code)


def test_requests_sent_without_waiting_are_held_to_the_window(analysed: Any) -> None:
    truth = json.loads((CAPTURES / "async_ops.truth.json").read_text())
    report, _ = analysed(CAPTURES / "async_ops.pcapng")
    check_outstanding(truth, report)
    # what held the later ones back: the SCP's answers to the requests before, which
    # pynetdicom and dcmtk send one after the other (and Nagle holds, here)
    ops = report.operations
    held = ops[(ops.op_index > 0) & (ops.bottleneck.fillna("") == "scp")]
    assert len(held)
    assert held.bottleneck_detail.str.contains("the requests before it").all()


# -- the rules' decisions, on operations made by hand --------------------------------------


def _op(index: int, start_ms: float, end_ms: float | None, *, mid: int | None = None,
        scu: str = REQUESTOR) -> OperationRecord:
    op = OperationRecord(index, "C-STORE", scu, ACCEPTOR if scu == REQUESTOR else REQUESTOR,
                         index + 1 if mid is None else mid, 2 * index, None, None, None,
                         10 + index, 20 + index, int(start_ms * 1e6), int(start_ms * 1e6),
                         100)
    if end_ms is not None:
        op.final_response_index = 2 * index + 1
        op.response_first_ns = op.response_complete_ns = int(end_ms * 1e6)
    return op


def _context(ops: list[OperationRecord], asked: tuple[int, int] | None = None,
             granted: tuple[int, int] | None = None, result: str = "accepted") -> TimingContext:
    assoc = SimpleNamespace(calling_ae="SCU", called_ae="SCP", requestor=("10.0.0.1", 5000),
                            acceptor=("10.0.0.2", 104), result=result,
                            responded_ns=0 if result == "accepted" else None,
                            async_window={REQUESTOR: asked, ACCEPTOR: granted})
    return TimingContext(assoc, ops, None, None)  # type: ignore[arg-type]


def _codes(found: list[FindingRecord]) -> list[str]:
    return [f.code for f in found]


def test_the_window_is_what_the_associate_ac_granted() -> None:
    two = [_op(0, 0, 10), _op(1, 1, 11)]  # the second sent while the first was outstanding
    assert _codes(async_window_exceeded(_context(two))) == ["async-window-exceeded"]
    assert not async_window_exceeded(_context(two, asked=(2, 2), granted=(2, 1)))
    assert not async_window_exceeded(_context(two, asked=(0, 0), granted=(0, 0)))  # no limit
    # asked for, not granted: one at a time, and the sentence says so
    found = async_window_exceeded(_context(two, asked=(2, 2)))
    assert "SCP granted none (no window in its A-ASSOCIATE-AC)" in found[0].summary
    # the negotiation not in the capture: the window is not known, so no finding
    assert not async_window_exceeded(_context(two, result="unknown"))
    assert async_window(_context(two, result="unknown").assoc, REQUESTOR) is None


def test_the_acceptor_is_held_to_the_window_it_may_perform() -> None:
    """A C-GET's C-STORE sub-operations, or Storage Commitment's N-EVENT-REPORT, are the
    acceptor's own operations: the granted "performed" number holds them."""
    ops = [_op(0, 0, 10, scu=ACCEPTOR), _op(1, 1, 11, scu=ACCEPTOR)]
    assert not async_window_exceeded(_context(ops, asked=(1, 2), granted=(1, 2)))
    found = async_window_exceeded(_context(ops, asked=(2, 1), granted=(2, 1)))
    assert _codes(found) == ["async-window-exceeded"]
    assert found[0].summary.startswith("SCP (10.0.0.2:104) had up to 2")
    # one side's operations do not count against the other's window
    mixed = [_op(0, 0, 10), _op(1, 1, 11, scu=ACCEPTOR)]
    assert not async_window_exceeded(_context(mixed))


def test_only_an_answer_after_the_next_request_makes_two_outstanding() -> None:
    one_at_a_time = [_op(0, 0, 10), _op(1, 10.5, 20), _op(2, 21, None)]
    assert not async_window_exceeded(_context(one_at_a_time))
    # a request with no final response in the capture is not counted: its response may
    # only be missing from the capture (request-unanswered says so)
    lost = [_op(0, 0, None), _op(1, 1, 2), _op(2, 3, 4)]
    assert not async_window_exceeded(_context(lost))
    most = async_window_exceeded(_context([_op(i, i, 50) for i in range(5)]))
    assert "had up to 5 operations outstanding" in most[0].summary
    assert "sent while C-STORE 1 had no final response" in most[0].summary


def test_a_message_id_is_reused_only_while_its_request_is_outstanding() -> None:
    again = [_op(0, 0, 10, mid=1), _op(1, 11, 20, mid=1)]  # after the answer: allowed
    assert not message_id_reused(_context(again))
    found = message_id_reused(_context([_op(0, 0, 10, mid=1), _op(1, 1, 11, mid=1),
                                        _op(2, 2, 12, mid=1), _op(3, 3, 13, mid=2)]))
    assert _codes(found) == ["message-id-reused"]
    text = found[0].summary
    assert "sent C-STORE-RQ with Message ID 1 (frame 11) while its C-STORE 1 of frame 10" in text
    assert "2 requests in all reused a Message ID still outstanding" in text


@pytest.mark.parametrize("truth_path", ALL, ids=ALL_IDS)
def test_no_other_fixture_has_operations_outstanding_beyond_its_window(
        truth_path: Path, analysed: Any) -> None:
    """Every other peer here waits for each final response (a C-GET's C-STORE
    sub-operations are the acceptor's, one at a time, while its C-GET is outstanding)."""
    if truth_path.name == "async_ops.truth.json":
        return
    truth = json.loads(truth_path.read_text())
    report, _ = analysed(capture_for(truth_path), tuple(filter(None, [truth.get("port_hint")])),
                         tls_keylogs(truth))
    assert not ASYNC_CODES & set(report.findings.code)
    ops = report.operations
    if len(ops):
        assert (ops.gap_before_ms.dropna() > 0).all()
