"""An A-ABORT while a request waits for its response says so: the aborter's own request
(it gave up waiting: a DIMSE timeout, dcmtk's storescu and pynetdicom), or the one it had
received and never answered (an SCP that will not serve it). On the real capture (fixture
dimse_timeout; the live-peer suite makes it afresh and runs `check_abort_lead`), and across
every fixture: the request the lead names is the one its request-unanswered finding names."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from .conftest import CAPTURES, capture_for, truth_files

FIXTURE = "dimse_timeout"
LEAD = re.compile(r"aborted the association \([^)]*\), ([\d,]+) ms after "
                  r"(its own|receiving) ([A-Z-]+) (\d+)")


def check_abort_lead(truth: dict[str, Any], report: Any) -> None:
    """Each planted A-ABORT's finding against the generator's truth (key ``abort_lead``)."""
    findings = report.findings
    assocs = report.associations.set_index("assoc_id")
    for want in truth["abort_lead"]:
        aid = want["assoc_index"]
        aborted = findings[(findings.assoc_id == aid) & (findings.code == "association-aborted")]
        assert len(aborted) == 1, (want, aborted)
        text = aborted["summary"].iloc[0]
        aborter = assocs.loc[aid, "calling_ae" if want["aborter"] == "requestor"
                             else "called_ae"]
        assert text.startswith(f"the {want['aborter']} ({aborter}) aborted"), text
        m = LEAD.search(text)
        assert m is not None, text
        ms, whose, command, mid = int(m[1].replace(",", "")), m[2], m[3], int(m[4])
        assert (command, mid) == (want["command"], want["message_id"]), text
        if want["waited_for"] == "own":
            assert whose == "its own" and "DIMSE timeout" in text, text
            # the SCU's own timeout, give or take the wire: its clock starts when its last
            # write returns, the capture sees the last segment leave (Nagle may hold it)
            assert 0.8 * want["timeout_s"] * 1000 <= ms <= want["timeout_s"] * 1000 + 500, text
        else:
            requestor = assocs.loc[aid, "calling_ae"]
            assert whose == "receiving" and f"from {requestor}, which it never answered" \
                in text, text


def test_the_capture_says_who_waited_for_what(analysed: Any) -> None:
    truth = json.loads((CAPTURES / f"{FIXTURE}.truth.json").read_text())
    report, _ = analysed(CAPTURES / truth["capture"])
    check_abort_lead(truth, report)


@pytest.mark.parametrize("truth_path", truth_files(),
                         ids=[t.name.removesuffix(".truth.json") for t in truth_files()])
def test_the_request_an_abort_waited_for_is_the_unanswered_one(truth_path: Path,
                                                               analysed: Any) -> None:
    truth = json.loads(truth_path.read_text())
    report, _ = analysed(capture_for(truth_path), tuple(filter(None, [truth.get("port_hint")])))
    findings = report.findings
    for row in findings[findings.code == "association-aborted"].itertuples():
        m = LEAD.search(row.summary)
        if m is None:
            continue
        unanswered = findings[(findings.assoc_id == row.assoc_id)
                              & (findings.code == "request-unanswered")]
        assert any(s.startswith(f"{m[3]} {m[4]} from ") for s in unanswered["summary"]), \
            (row.summary, unanswered["summary"].tolist())
