"""The HTML page: pictures per capture and association, the operations table, caps that
keep a big capture's page usable, and nothing fetched from anywhere."""

from __future__ import annotations

import re

import pandas as pd

from tshark_dicom import htmlreport
from tshark_dicom.report import Report
from tshark_dicom.tables import frame

from .test_pictures import HOSTILE, assoc, at, op


def report(n_assocs: int, ops_per_assoc: int = 2, **kw: object) -> Report:
    assocs = [assoc(i, requested_at=at(1000 * i), responded_at=at(1000 * i + 5),
                    ended_at=at(1000 * i + 100 + i), duration_ms=100.0 + i, messages=2,
                    **kw) for i in range(n_assocs)]
    ops = [op(k, 1000 * i + 10 + 20 * k, aid=i) for i in range(n_assocs)
           for k in range(ops_per_assoc)]
    rep = Report(associations=frame("associations", assocs))
    rep.operations = frame("operations", ops)  # type: ignore[attr-defined]
    return rep


def test_page_has_timeline_ladders_and_operations_table() -> None:
    page = report(3).to_html()
    assert page.count("<svg") == 4  # one timeline, three ladders
    assert page.count('class="tdp ladder"') == 3
    assert len(re.findall(r'data-op="\d+"', page)) == 6
    assert "id='operations'" in page and "<th>turnaround_ms</th>" in page
    assert "<th>bottleneck_detail</th>" in page
    assert 'href="#assoc-0-2"' in page and "id='assoc-0-2'" in page


def test_page_is_self_contained() -> None:
    page = report(2).to_html()
    assert "<script" not in page.lower()
    urls = set(re.findall(r"https?://[^\s\"'<>]+", page))
    assert urls <= {"http://www.w3.org/2000/svg"}
    assert not re.search(r"""(src|href)=["'](?!#)""", page)


def test_page_caps_ladders_to_the_slowest() -> None:
    page = report(htmlreport.MAX_LADDERS + 5).to_html()
    assert page.count('class="tdp ladder"') == htmlreport.MAX_LADDERS
    assert (f"Ladders for the {htmlreport.MAX_LADDERS} slowest of "
            f"{htmlreport.MAX_LADDERS + 5} associations") in page
    assert "id='assoc-0-24'" in page and "id='assoc-0-0'" not in page  # the fastest left out


def test_page_escapes_hostile_ae_titles() -> None:
    page = report(1, calling_ae=HOSTILE).to_html()
    assert "<script" not in page and "\x00" not in page


def test_page_without_operations_attribute() -> None:
    rep = Report(associations=frame("associations", [assoc()]))
    if hasattr(rep, "operations"):
        rep.operations = frame("operations", [])  # type: ignore[attr-defined]
    page = rep.to_html()
    assert 'class="tdp ladder"' in page and "data-op=" not in page


def test_large_transfer_gets_a_throughput_chart() -> None:
    rep = report(1)
    rows = [{"capture": "c.pcapng", "assoc_id": 0, "sender": "requestor",
             "bin_start": at(10 + k), "bin_ms": 1.0, "bytes": 200_000} for k in range(10)]
    rep.throughput = frame("throughput", rows)  # type: ignore[attr-defined]
    assert 'class="tdp throughput"' in rep.to_html()
    rep.throughput = frame("throughput", rows[:2])  # type: ignore[attr-defined]
    assert 'class="tdp throughput"' not in rep.to_html()  # 400 kB: not worth a chart
    assert isinstance(rep.throughput, pd.DataFrame)  # type: ignore[attr-defined]
