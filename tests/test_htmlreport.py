"""The HTML page, from tables built with `schemas.frame` (no tshark): the summary first,
findings most severe first and linked to their association, hex statuses, the negotiation
with rejected contexts first and long proposals collapsed, C-MOVE callbacks, caps that keep
a big run's page usable, escaping, and nothing fetched from anywhere. The page in a real
browser: test_report_browser.py."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from tshark_dicom import htmlparts, htmlreport, htmlsections
from tshark_dicom.report import Report
from tshark_dicom.schemas import frame

from .test_pictures import HOSTILE, assoc, at, op


def report(n_assocs: int, ops_per_assoc: int = 2, **kw: object) -> Report:
    assocs = [assoc(i, requested_at=at(1000 * i), responded_at=at(1000 * i + 5),
                    ended_at=at(1000 * i + 100 + i), duration_ms=100.0 + i, message_count=2,
                    **kw) for i in range(n_assocs)]
    ops = [op(k, 1000 * i + 10 + 20 * k, aid=i) for i in range(n_assocs)
           for k in range(ops_per_assoc)]
    return Report(associations=frame("associations", assocs), operations=frame("operations", ops))


def finding(aid: int | None, severity: str, code: str, summary: str) -> dict[str, object]:
    return {"capture": "c.pcapng", "assoc_id": aid, "severity": severity, "code": code,
            "summary": summary, "frame": 7}


def test_summary_comes_first_with_pairs_services_and_slowest() -> None:
    rep = report(3)
    rep.operations = frame("operations", [
        op(0, 10, aid=0), op(1, 30, turnaround=900.0, aid=0, status=0xA700,
                             status_hex="0xA700", status_category="Failure",
                             status_text="Refused: Out of Resources"),
        op(0, 1010, aid=1, command="C-ECHO")])
    page = rep.to_html()
    order = [page.index(f"id='{s}'") for s in ("summary", "ae-pairs", "services", "slowest",
                                               "findings", "timeline", "associations")]
    assert order == sorted(order)
    services = page[page.index("id='services'"):page.index("id='slowest'")]
    assert "C-STORE" in services and "C-ECHO" in services and "0xA700 \u00d71" in services
    slowest = page[page.index("id='slowest'"):page.index("id='findings-by-severity'")]
    assert "href='#assoc-0-0'" in slowest and "0xA700" in slowest and "900 ms" in slowest
    pairs = page[page.index("id='ae-pairs'"):page.index("id='services'")]
    assert "MODALITY" in pairs and "PACS" in pairs


def test_findings_most_severe_first_and_linked() -> None:
    rep = report(2)
    rep.findings = frame("findings", [
        finding(0, "note", "nagle-stall", "a note"),
        finding(1, "warning", "context-rejected", "a warning"),
        finding(1, "error", "dimse-failure", "status 0xA700 (Refused)"),
        finding(None, "warning", "capture-gap", "capture-wide")])
    page = rep.to_html()
    table = page[page.index("id='findings-table'"):]
    table = table[:table.index("</table>")]
    assert table.index("dimse-failure") < table.index("context-rejected") < table.index(
        "nagle-stall")
    assert "href='#assoc-0-1'" in table and "href='#assoc-0-0'" in table
    assert "id='assoc-0-1'" in page  # the link's target exists


def test_operations_show_hex_status_meaning_counts_and_callbacks() -> None:
    rep = report(2, ops_per_assoc=0)
    rep.operations = frame("operations", [op(
        0, 10, aid=0, command="C-MOVE", move_destination="DEST-AE", status=0xA702,
        status_hex="0xA702", status_category="Failure", error_comment="no space left",
        status_text="Refused: Out of resources", completed=1, failed=3, warning=0,
        callback_assoc_ids=[1], callback_attempt_ids=[0], suboperations_seen=1,
        suboperations_failed=0, link="ae-and-time")])
    rep.connection_attempts = frame("connection_attempts", [{
        "capture": "c.pcapng", "attempt_id": 0, "client_ip": "10.0.0.2",
        "server_ip": "10.0.0.9", "server_port": 11112, "syn_count": 2,
        "outcome": "refused", "move_assoc_id": 0, "move_op_index": 0}])
    page = rep.to_html()
    section = page[page.index("id='assoc-0-0'"):page.index("id='assoc-0-1'")]
    assert "0xA702" in section and "Refused: Out of resources" in section
    assert "no space left" in section and "DEST-AE" in section and "1 / 3 / 0 / -" in section
    assert "callback association <a href='#assoc-0-1'>" in section
    assert "10.0.0.2 \u2192 10.0.0.9:11112: refused (2 SYNs)" in section
    assert "42754" not in page  # never the decimal status


def test_rejected_contexts_first_and_long_proposals_collapsed() -> None:
    rep = report(1)
    contexts = [{"capture": "c.pcapng", "assoc_id": 0, "context_id": 2 * i + 1,
                 "abstract_syntax": f"1.2.840.10008.5.1.4.1.1.{i}",
                 "abstract_syntax_name": f"Storage {i}", "proposed_transfer_syntaxes":
                 ["1.2.840.10008.1.2"], "result": 0 if i != 40 else 3,
                 "result_text": "acceptance" if i != 40 else "abstract-syntax-not-supported"}
                for i in range(64)]
    rep.presentation_contexts = frame("presentation_contexts", contexts)
    page = rep.to_html()
    block = page[page.index("<details class='contexts'>"):page.index("</details>")]
    assert "64 presentation contexts proposed: 63 accepted, 1 rejected" in block
    assert block.index("Storage 40") < block.index("Storage 0 ")
    few = report(1)
    few.presentation_contexts = frame("presentation_contexts", contexts[:3])
    assert "<details class='contexts'>" not in few.to_html()


def test_services_count_cancelled_operations_apart_when_there_are_any() -> None:
    rep = report(1)
    rep.operations = frame("operations", [
        op(0, 10, command="C-MOVE", status=0xFE00, status_hex="0xFE00", status_category="Cancel"),
        op(1, 30, command="C-MOVE"), op(2, 50, command="C-MOVE", status=None, status_hex=None,
                                        status_category=None)])
    page = rep.to_html()
    services = page[page.index("Operations per service"):page.index("Slowest operations")]
    assert "<th" in services and ">cancelled<" in services
    row = re.search(r"<tr[^>]*><td[^>]*>C-MOVE</td>(.*?)</tr>", services)
    assert row is not None
    assert re.findall(r">(\d+)<", row.group(1))[:5] == ["3", "1", "0", "0", "1"]
    plain = report(1).to_html()  # no cancelled operation: no such column
    plain_services = plain[plain.index("Operations per service"):plain.index("Slowest")]
    assert ">cancelled<" not in plain_services


def test_a_tls_row_without_contexts_says_tls_hides_them() -> None:
    """A TLS connection not decrypted shows no contexts because of TLS, not because the
    capture started late; a clear one without contexts keeps the usual reason."""
    tls = report(1, tls=True, tls_decrypted=False).to_html()
    assert "the connection is TLS that was not decrypted" in tls
    assert "it starts after the association was set up" not in tls
    clear = report(1, tls=False, tls_decrypted=False).to_html()
    assert "it starts after the association was set up" in clear
    assert "the connection is TLS" not in clear


def test_page_written_a_part_at_a_time_is_the_page(tmp_path: Path) -> None:
    rep = report(70, ops_per_assoc=3)  # more than the sections drawn: the "others" list too
    rep.write_html(tmp_path / "r.html", "a title")
    assert (tmp_path / "r.html").read_text(encoding="utf-8") == rep.to_html("a title")


def test_records_are_the_rows_as_pandas_gives_them() -> None:
    """htmlparts.records reads a column at a time; the values are to_dict's (a null: None)
    for every dtype of the schemas."""
    ops = frame("operations", [op(k, 10 + 20 * k, aid=k % 3) for k in range(7)]
                + [{"capture": None, "assoc_id": None}])
    assocs = frame("associations", [assoc(i, requested_at=at(1000 * i)) for i in range(3)])
    for df in (ops, assocs, ops.iloc[[2, 5]], ops.head(0)):
        want = [{str(k): v for k, v in r.items()} for r in df.to_dict("records")]
        got = htmlparts.records(df)
        assert [list(r) for r in got] == [list(r) for r in want]
        for g, w in zip(got, want, strict=True):
            for name in w:
                assert type(g[name]) is type(w[name]), name
                assert g[name] == w[name] or (g[name] is w[name]) or (
                    w[name] != w[name] and g[name] != g[name]), name


def test_rows_by_association_are_each_handed_out_whole() -> None:
    rows = htmlparts.KeyedRows([("c", 1), ("c", 2), ("d", 1)])
    ops = frame("operations", [op(k, 10 * k, aid=1) for k in range(3)])
    rows.add(("c", 1), ops.iloc[:2], 10)
    rows.add(("c", 1), ops, 10, 2, 3)
    rows.add(("d", 1), ops.iloc[:1], 10)
    rows.add(("x", 9), ops, 10)  # not asked for: ignored
    assert [r["op_index"] for r in rows[("d", 1)]] == [0]
    assert [r["op_index"] for r in rows[("c", 1)]] == [0, 1, 2]
    assert rows[("c", 2)] == []
    # spans of one frame, apart, together, overlapping or capped: each key's own rows
    wide = frame("operations", [op(k, 10 * k, aid=1) for k in range(9)])
    keys = [("a", 1), ("b", 1), ("c", 1), ("d", 1), ("e", 1)]
    spans = htmlparts.KeyedRows(keys)
    spans.add(("a", 1), wide, 10, 0, 3)
    spans.add(("b", 1), wide, 10, 5, 6)
    spans.add(("c", 1), wide, 10, 3, 5)
    spans.add(("d", 1), wide, 2, 1, 9)  # capped at 2: rows 1 and 2
    spans.add(("e", 1), wide, 10, 7, 9)
    spans.add(("e", 1), wide.iloc[:1], 10)
    want = {("a", 1): [0, 1, 2], ("b", 1): [5], ("c", 1): [3, 4], ("d", 1): [1, 2],
            ("e", 1): [7, 8, 0]}
    assert {k: [r["op_index"] for r in spans[k]] for k in keys} == want
    assocs = htmlparts.RowsByKey(frame("associations", [assoc(i) for i in range(20)]),
                                 [("c.pcapng", i) for i in range(19, -1, -1)])
    assert assocs[("c.pcapng", 3)]["assoc_id"] == 3
    assert assocs.get(("c.pcapng", 99)) is None


def test_page_is_self_contained() -> None:
    page = report(2).to_html()
    assert page.lower().count("<script") == 1  # the inline sorting/filtering script
    assert not re.search(r"<script[^>]+src", page, re.I)
    urls = set(re.findall(r"https?://[^\s\"'<>]+", page))
    assert urls <= {"http://www.w3.org/2000/svg"}
    assert not re.search(r"""(src|href)=["'](?!#)""", page)


def test_page_caps_sections_and_lists_the_rest() -> None:
    n = htmlreport.MAX_DETAILED + 5
    page = report(n).to_html()
    assert page.count("<section class='association'") == htmlreport.MAX_DETAILED
    assert page.count('class="tdp ladder"') == htmlsections.MAX_LADDERS
    assert f"Sections for {htmlreport.MAX_DETAILED} of {n} associations" in page
    assert "id='other-associations'" in page
    # the slowest get sections; the fastest are listed at the end only
    assert f"id='assoc-0-{n - 1}'" in page and "id='assoc-0-0'" not in page


def test_page_escapes_values_from_the_traffic() -> None:
    rep = report(1, calling_ae=HOSTILE)
    rep.findings = frame("findings", [finding(0, "error", "x", HOSTILE)])
    page = rep.to_html()
    assert "<script>alert" not in page and "\x00" not in page and "\\x00" in page


def test_large_transfer_gets_a_throughput_chart() -> None:
    rep = report(1)
    rows = [{"capture": "c.pcapng", "assoc_id": 0, "sender": "requestor",
             "bin_start": at(10 + k), "bin_ms": 1.0, "bytes": 200_000} for k in range(10)]
    rep.throughput = frame("throughput", rows)
    assert 'class="tdp throughput"' in rep.to_html()
    rep.throughput = frame("throughput", rows[:2])
    assert 'class="tdp throughput"' not in rep.to_html()  # 400 kB: not worth a chart
    assert isinstance(rep.throughput, pd.DataFrame)


def test_timeline_rows_per_capture_whatever_the_order_and_chunks(monkeypatch) -> None:
    """Each capture's timeline gets its own associations, in table order, whether its rows
    follow one another or are interleaved with another capture's, and however many
    captures' rows are made dicts at once."""
    caps = ["a.pcapng", "b.pcapng", "c.pcapng", "d.pcapng"]
    # a and b interleaved (rows 0-3 hold both: a slice of them would mix them up), c in
    # a run, d without associations
    order = ["a.pcapng", "b.pcapng", "a.pcapng", "b.pcapng", "c.pcapng", "c.pcapng"]
    assocs = frame("associations", [assoc(i, capture=c, requested_at=at(10 * i))
                                    for i, c in enumerate(order)])
    want = {c: pictures_records(assocs[assocs["capture"] == c]) for c in caps}
    for rows in (1, 2, 3, htmlreport.TIMELINE_ROWS):
        monkeypatch.setattr(htmlreport, "TIMELINE_ROWS", rows)
        got = list(htmlreport._timeline_rows(assocs, caps))
        assert [c for c, _ in got] == caps
        for cap, made in got:
            assert [r["assoc_id"] for r in made] == [r["assoc_id"] for r in want[cap]], cap
            assert made == want[cap]
    # the page draws each capture's own bars
    rep = Report(associations=assocs)
    page = rep.to_html()
    for cap in ("a.pcapng", "b.pcapng", "c.pcapng"):
        start = page.index(f"<h3>{cap}</h3>")
        drawn = page[start:page.index("</svg>", start)]
        assert drawn.count("<rect") >= order.count(cap)


def pictures_records(df: pd.DataFrame) -> list[dict[str, object]]:
    from tshark_dicom import charts, pictures

    return pictures.records(df[[c for c in charts.TIMELINE_COLUMNS if c in df.columns]])


def test_the_page_marks_a_finding_on_its_operation_in_the_ladder() -> None:
    """The page reads of the operations table what the ladder needs to put a finding on
    the operation it names (by its request's msg_index): it read none of it, and every
    finding sat at the top of the ladder as the association's."""
    rep = report(1, 3)
    rep.findings = frame("findings", [
        {**finding(0, "warning", "async-window-exceeded", "three outstanding"), "msg_index": 2},
        finding(0, "note", "nagle-stall", "no message")])
    page = rep.to_html()
    ladder = page[page.index('data-findings="association"'):]
    ladder = ladder[:ladder.index("</svg>")]
    op1 = ladder[ladder.index('data-op="1"'):ladder.index('data-op="2"')]
    assert 'data-finding="async-window-exceeded"' in op1
    loose = ladder[ladder.index('data-findings="association"'):]
    assert "nagle-stall" in loose[:loose.index("</g>")]
    assert "async-window-exceeded" not in loose[:loose.index("</g>")]
