"""Studies by route (studies.py): each route's counts against the same join done with pandas
on the tables (objects beside the C-STORE operations), on captures with failures, no
answers, cut-short data sets and C-MOVE sub-operations; `Report.studies` in memory and from
a folder; and report.html's "Studies stored" as drawn."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import tshark_dicom
from tshark_dicom import htmlstudies, studies
from tshark_dicom.studies import Studies

from .conftest import CAPTURES

NAMES = ("store_statuses", "qr_move_partial", "dimse_timeout", "hole", "abort",
         "store_104", "context_not_accepted", "qr_move_ok", "echo")


@pytest.fixture(scope="module")
def report() -> Any:
    return tshark_dicom.analyze([CAPTURES / f"{n}.pcapng" for n in NAMES])


def _expected(report: Any) -> dict[tuple[str, str, str], dict[str, int]]:
    """Per (study, sender AE, receiver AE): objects, failed, warned, unanswered,
    incomplete, from a pandas join of the tables."""
    objs = report.objects[report.objects["command"] == "C-STORE-RQ"]
    ops = report.operations[report.operations["command"] == "C-STORE"]
    joined = objs.merge(ops[["capture", "assoc_id", "request_index", "status_category"]],
                        left_on=["capture", "assoc_id", "msg_index"],
                        right_on=["capture", "assoc_id", "request_index"], how="left")
    joined = joined.merge(report.associations[["capture", "assoc_id", "calling_ae",
                                               "called_ae"]], on=["capture", "assoc_id"])
    out: dict[tuple[str, str, str], dict[str, int]] = {}
    for r in joined.itertuples():
        src, dst = (r.calling_ae, r.called_ae) if r.sender == "requestor" else \
            (r.called_ae, r.calling_ae)
        key = tuple("" if v is pd.NA or v is None else str(v)
                    for v in (r.study_instance_uid, src, dst))
        c = out.setdefault(key, dict.fromkeys(  # type: ignore[arg-type]
            ("objects", "failed", "warned", "unanswered", "incomplete"), 0))
        c["objects"] += 1
        cat = None if r.status_category is pd.NA else r.status_category
        c["incomplete"] += not r.complete  # apart: the receiver may have stored it all
        if cat in ("Failure", "Cancel"):
            c["failed"] += 1
        elif cat == "Warning":
            c["warned"] += 1
        elif cat is None:
            c["unanswered"] += 1
    return out


def test_each_route_counts_as_the_tables_join(report: Any) -> None:
    tally = Studies(report.associations)
    tally.outcomes(report.operations)
    tally.add(report.objects)
    got = {k: {"objects": r.objects, "failed": r.failed, "warned": r.warned,
               "unanswered": r.unanswered, "incomplete": r.incomplete}
           for k, r in tally.routes.items()}
    expected = _expected(report)
    assert got == expected
    # the captures hold every kind: failures, no answers, cut short, and plain successes
    totals = {k: sum(c[k] for c in expected.values())
              for k in ("objects", "failed", "unanswered", "incomplete")}
    assert all(totals.values()), totals
    assert tally.stores == totals["objects"]


def test_the_section_lists_the_studies_not_stored_first(report: Any, tmp_path: Path) -> None:
    report.write_html(tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text()
    start = page.index("<h3 id='studies'>")
    section = page[start:page.index("<h3", start + 5)]
    rows = [[html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
             for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr.*?</tr>", section, re.S)][1:]
    heads = re.findall(r"<th(?: [^>]*)?>(.*?)</th>", section)
    assert heads[:8] == ["study", "modality", "series", "from \u2192 to", "objects", "stored",
                         "not stored", "why not, or warnings"]
    not_stored = [int(row[6]) for row in rows]
    assert not_stored == sorted(not_stored, reverse=True) and not_stored[0] > 0
    assert all(int(r[4]) == int(r[5]) + int(r[6]) for r in rows)
    # hole: the capture lost part of a data set HOLE-SCP then stored (0x0000): stored
    assert any(r[3] == "HOLE-SCU \u2192 HOLE-SCP" and r[6] == "0"
               and "1 incomplete in the capture" in r[7] for r in rows), rows
    # store_statuses: STATUS-SCP refused two of five with 0xA700 (Out of Resources)
    assert any(r[3] == "STATUS-SCU \u2192 STATUS-SCP" and "0xA700" in r[7]
               and "failed" in r[7] for r in rows), rows
    # each route's arrow links to an association section that is on the page
    for target in re.findall(r"<a href='#(assoc-[0-9]+-[0-9]+)'>", section):
        assert f"id='{target}'" in page


def test_no_section_without_a_c_store(tmp_path: Path) -> None:
    echo = tshark_dicom.analyze(CAPTURES / "echo.pcapng")
    echo.write_html(tmp_path / "report.html")
    assert "id='studies'" not in (tmp_path / "report.html").read_text()


def test_bounded(report: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past KEPT study routes the objects are counted, not tallied."""
    monkeypatch.setattr(studies, "KEPT", 2)
    tally = Studies(report.associations)
    tally.outcomes(report.operations)
    tally.add(report.objects)
    assert len(tally.routes) == 2
    assert tally.more == tally.stores - sum(r.objects for r in tally.routes.values())
    assert tally.more > 0 and "were not tallied" in htmlstudies.section(tally, [])


def test_report_studies_in_memory_and_from_a_folder(report: Any, tmp_path: Path) -> None:
    """`Report.studies()`: one row per route, as the tally counts it, the same from the
    analysis in memory and from the folder it was written to (read a batch at a time)."""
    frame = report.studies()
    expected = _expected(report)
    assert len(frame) == len(expected)
    for r in frame.itertuples():
        key = tuple("" if v is pd.NA else str(v)
                    for v in (r.study_instance_uid, r.sender_ae, r.receiver_ae))
        want = expected[key]  # type: ignore[index]
        assert (r.objects, r.failed, r.unanswered, r.warned, r.incomplete) == (
            want["objects"], want["failed"], want["unanswered"], want["warned"],
            want["incomplete"]), key
        assert r.stored + r.not_stored == r.objects
    assert list(frame["not_stored"]) == sorted(frame["not_stored"], reverse=True)
    assert frame.loc[frame["failed"] > 0, "statuses"].str.contains("0x").all()
    report.write(tmp_path / "out")
    stored = tshark_dicom.load(tmp_path / "out").studies()
    pd.testing.assert_frame_equal(frame.drop(columns="capture"),
                                  stored.drop(columns="capture"))
