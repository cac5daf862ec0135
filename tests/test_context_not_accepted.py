"""A message on a presentation context the A-ASSOCIATE-AC did not accept
(``context-not-accepted``, association.py), against fixtures/captures/context_not_accepted
(a pynetdicom SCU; real pynetdicom and dcmtk storescp receivers, which abort; the truth says
which context the SCU used, from its own view), and on every other fixture, where every
message goes on an accepted context."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .conftest import CAPTURES, capture_for, tls_keylogs, truth_files

TRUTHS = truth_files()
CODE = "context-not-accepted"


def check_off_context(truth: dict[str, Any], report: Any) -> None:
    """Each message the truth says went on a rejected context has the finding, which names
    the context and what the SCP does not take, and is the lead of the A-ABORT and of the
    request's request-unanswered."""
    findings, msgs = report.findings, report.messages
    assert len(truth["off_context"]) == len(report.associations) == 3
    for plan in truth["off_context"]:
        aid = plan["assoc_index"]
        mine = findings[findings.assoc_id == aid]
        assert set(plan["expected_findings"]) <= set(mine.code)
        assert "dataset-without-command" not in set(mine.code)  # the rest of the data set
        (row,) = mine[mine.code == CODE].itertuples()
        assert row.severity == "error"
        # it points at the message, which went on the context the truth names
        (msg,) = msgs[(msgs.assoc_id == aid) & (msgs.msg_index == row.msg_index)].itertuples()
        assert msg.command == plan["command"] and msg.message_id == plan["message_id"]
        assert msg.context_id == plan["context_id"]
        text = str(row.summary)
        assert text.startswith(f"OFF-CONTEXT sent C-STORE-RQ {plan['message_id']} (MR Image "
                               f"Storage, ")
        assert f"on presentation context {plan['context_id']}" in text
        if plan["abstract_syntax"] is None:  # never proposed
            assert f"{plan['context_id']}, which the A-ASSOCIATE-RQ did not propose:" in text
        else:
            assert f"which {plan['called_ae']} rejected (abstract-syntax-not-supported" in text
        same_class = plan["abstract_syntax"] == "1.2.840.10008.5.1.4.1.1.4"
        assert (f"{plan['called_ae']} does not take MR Image Storage" in text) == same_class
        # the A-ABORT and the unanswered request point at it
        lead = f"C-STORE-RQ {plan['message_id']} on presentation context {plan['context_id']}"
        (abort,) = mine[mine.code == "association-aborted"].summary
        assert f"after receiving {lead}, which was not accepted" in abort
        (unanswered,) = mine[mine.code == "request-unanswered"].summary
        assert "went on presentation context" in unanswered and CODE in unanswered


def test_a_message_on_a_rejected_context_is_the_lead_for_the_abort(analysed: Any) -> None:
    truth = json.loads((CAPTURES / "context_not_accepted.truth.json").read_text())
    report, _ = analysed(CAPTURES / "context_not_accepted.pcapng")
    check_off_context(truth, report)


@pytest.mark.parametrize("truth_path", TRUTHS, ids=[t.name.split(".")[0] for t in TRUTHS])
def test_no_other_fixture_sends_on_a_context_not_accepted(truth_path: Path,
                                                           analysed: Any) -> None:
    if truth_path.name == "context_not_accepted.truth.json":
        return
    truth = json.loads(truth_path.read_text())
    report, _ = analysed(capture_for(truth_path), tuple(filter(None, [truth.get("port_hint")])),
                         tls_keylogs(truth))
    assert CODE not in set(report.findings.code)
