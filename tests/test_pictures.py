"""The SVG pictures: well-formed, one group per operation, hostile text escaped, big inputs
capped with a note. Tables are built here with `schemas.frame`, no tshark needed."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import pandas as pd

from tshark_dicom import charts, pictures
from tshark_dicom.schemas import frame

SVG = "{http://www.w3.org/2000/svg}"
T0 = pd.Timestamp("2026-01-05 10:00:00", tz="UTC").value
HOSTILE = "<script>alert('x')</script>\x00&\"AE"


def at(ms: float) -> int:
    return T0 + int(ms * 1e6)


def assoc(aid: int = 0, **kw: Any) -> dict[str, Any]:
    row = {"capture": "c.pcapng", "assoc_id": aid, "calling_ae": "MODALITY", "called_ae": "PACS",
           "requestor_ip": "10.0.0.1", "requestor_port": 50000, "acceptor_ip": "10.0.0.2",
           "acceptor_port": 104, "requested_at": at(0), "responded_at": at(10),
           "ended_at": at(1000), "result": "accepted", "ending": "released",
           "setup_ms": 10.0, "duration_ms": 1000.0}
    row.update(kw)
    return row


def op(i: int, start_ms: float, turnaround: float = 5.0, aid: int = 0,
       **kw: Any) -> dict[str, Any]:
    """A C-STORE: 0.2 ms of request, ``turnaround`` ms of SCP, an instant response."""
    row = {"capture": "c.pcapng", "assoc_id": aid, "op_index": i, "command": "C-STORE",
           "scu": "requestor", "scp": "acceptor", "message_id": i + 1,
           "request_index": 2 * i, "final_response_index": 2 * i + 1, "response_count": 1,
           "status": 0, "status_hex": "0x0000", "status_category": "Success",
           "request_first_at": at(start_ms), "request_complete_at": at(start_ms + 0.2),
           "response_first_at": at(start_ms + 0.2 + turnaround),
           "response_complete_at": at(start_ms + 0.2 + turnaround),
           "gap_before_ms": 1.0, "request_transfer_ms": 0.2, "turnaround_ms": turnaround,
           "response_transfer_ms": 0.0, "total_ms": 0.2 + turnaround, "request_bytes": 1000}
    row.update(kw)
    return row


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def op_groups(root: ET.Element) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if "data-op" in g.attrib]


def test_ladder_one_group_per_operation_with_both_arrows() -> None:
    ops = frame("operations", [op(i, 20 + 10 * i) for i in range(5)]
                + [op(0, 30, aid=1)])  # another association's: not drawn
    root = parse(pictures.ladder_svg(assoc(), ops, frame("findings", [])))
    groups = op_groups(root)
    assert [g.get("data-op") for g in groups] == ["0", "1", "2", "3", "4"]
    for g in groups:
        arrows = [e.get("data-arrow") for e in g.iter() if "data-arrow" in e.attrib]
        assert arrows == ["request", "response"]
    words = " ".join(texts(root))
    assert "MODALITY" in words and "PACS" in words and "10.0.0.2:104" in words
    assert "C-STORE-RQ #1" in words and "C-STORE-RSP 0x0000" in words
    assert "SCP 5.0 ms" in words and "A-RELEASE" in words
    assert root.get("data-operations") == "5"


def test_ladder_hostile_ae_titles_are_text_not_markup() -> None:
    a = assoc(calling_ae=HOSTILE, called_ae="</svg><img src=x>")
    ops = frame("operations", [op(0, 20, bottleneck="scp", bottleneck_detail=HOSTILE,
                                  status_hex=HOSTILE, command="<b>C-STORE")])
    findings = frame("findings", [{"capture": "c.pcapng", "assoc_id": 0, "msg_index": 1,
                                   "severity": "error", "code": "<x>", "summary": HOSTILE}])
    svg = pictures.ladder_svg(a, ops, findings)
    root = parse(svg)  # NUL and markup would make this fail
    assert "<script" not in svg and "<img" not in svg and "\x00" not in svg
    assert not [e for e in root.iter() if e.tag in (f"{SVG}script", "script", f"{SVG}img")]
    words = " ".join(texts(root))
    assert "<script>alert('x')</script>\\x00&\"AE" in words  # shown as it was sent
    assert "</svg><img src=x>" in words


def test_ladder_caps_operations_and_says_so() -> None:
    ops = frame("operations", [op(i, 20 + 3 * i, turnaround=1.0) for i in range(250)])
    root = parse(pictures.ladder_svg(assoc(ended_at=at(2000)), ops, None))
    assert len(op_groups(root)) == pictures.MAX_LADDER_OPERATIONS
    assert "showing 200 of 250 operations; the operations table holds all" in texts(root)
    assert root.get("data-operations") == "250"
    assert root.get("data-operations-shown") == "200"
    assert "A-RELEASE" not in " ".join(texts(root))  # the end is not drawn when cut


def test_ladder_compresses_long_gaps_into_a_broken_axis() -> None:
    def height(turnaround: float) -> float:
        ops = frame("operations", [op(0, 20, turnaround=turnaround), op(1, 10_000)])
        root = parse(pictures.ladder_svg(assoc(ended_at=at(20_000)), ops, None))
        return float(root.get("height", "0"))

    short, long = height(5.0), height(5000.0)
    assert 0 < long - short < 80  # 5 s is drawn only a little longer than 5 ms
    ops = frame("operations", [op(0, 20, turnaround=5020.0)])
    words = texts(parse(pictures.ladder_svg(assoc(ended_at=at(6000)), ops, None)))
    assert "// 5.02 s" in words and "SCP 5.02 s" in words


def test_ladder_highlights_bottlenecks_and_marks_findings() -> None:
    detail = "scp: 502 ms from the last request byte to the C-STORE-RSP"
    ops = frame("operations", [op(0, 20), op(1, 40, turnaround=502.0, bottleneck="scp",
                                              bottleneck_detail=detail, status_hex="0xA700",
                                              status_category="Failure"),
                               op(2, 600, gap_before_ms=300.0, bottleneck="scu",
                                  bottleneck_detail="scu: idle for 300 ms")])
    findings = frame("findings", [
        {"capture": "c.pcapng", "assoc_id": 0, "msg_index": 3, "severity": "error",
         "code": "dimse-failure", "summary": "C-STORE-RSP has status 0xA700"},
        {"capture": "c.pcapng", "assoc_id": 0, "msg_index": None, "severity": "note",
         "code": "association-per-object", "summary": "one object per association"}])
    root = parse(pictures.ladder_svg(assoc(), ops, findings))
    groups = {g.get("data-op"): g for g in op_groups(root)}
    slow = groups["1"]
    assert slow.get("data-bottleneck") == "scp"
    title = slow.find(f"{SVG}title")
    assert title is not None and title.text is not None and title.text.startswith(detail)
    assert pictures.BOTTLENECK_COLOURS["scp"] in ET.tostring(slow, encoding="unicode")
    marks = [g.get("data-finding") for g in slow.iter(f"{SVG}g") if "data-finding" in g.attrib]
    assert marks == ["dimse-failure"]
    assert groups["0"].get("data-bottleneck") == ""
    words = " ".join(texts(root))
    assert "SCP 502 ms" in words and "SCU idle 300 ms" in words
    assert "scp bottleneck" in words and "scu bottleneck" in words
    assert "association: association-per-object" in words


def test_ladder_without_operations_or_times() -> None:
    root = parse(pictures.ladder_svg(assoc(), frame("operations", []), None))
    assert op_groups(root) == [] and "A-ASSOCIATE-RQ" in texts(root)
    bare = assoc(requested_at=None, responded_at=None, ended_at=None)
    assert "no timed events" in " ".join(texts(parse(
        pictures.ladder_svg(bare, frame("operations", []), None))))


def test_ladder_scu_on_the_acceptor_side_points_left() -> None:
    ops = frame("operations", [op(0, 20, scu="acceptor", scp="requestor")])
    root = parse(pictures.ladder_svg(assoc(), ops, None))
    request = next(e for e in root.iter() if e.get("data-arrow") == "request")
    xs = [float(v) for v in re.findall(r"M([\d.]+),", request.get("d", ""))]
    assert xs[0] > xs[1]  # starts on the acceptor lane (right), heads left


def timeline(n: int, **kw: Any) -> ET.Element:
    assocs = frame("associations", [assoc(i, requested_at=at(100 * i),
                                          responded_at=at(100 * i + 5),
                                          ended_at=at(100 * i + 80)) for i in range(n)])
    ops = frame("operations", [op(0, 100 * i + 10, aid=i,
                                  bottleneck="scp" if i == 1 else None) for i in range(n)])
    return parse(charts.timeline_svg(assocs, ops, **kw))


def test_timeline_bar_per_association_coloured_by_bottleneck() -> None:
    root = timeline(4, anchors={1: "#assoc-0-1"})
    bars = [g for g in root.iter(f"{SVG}g") if "data-assoc" in g.attrib]
    assert [g.get("data-assoc") for g in bars] == ["0", "1", "2", "3"]
    assert [g.get("data-bottleneck") for g in bars] == ["", "scp", "", ""]
    assert "#1 MODALITY \u2192 PACS" in texts(root)
    links = [a.get("href") for a in root.iter(f"{SVG}a")]
    assert links == ["#assoc-0-1"]


def test_timeline_aggregates_beyond_the_cap() -> None:
    root = timeline(7, max_associations=3)
    bars = [g for g in root.iter(f"{SVG}g") if "data-assoc" in g.attrib]
    assert len(bars) == 3
    assert any(g.get("data-aggregate") == "concurrency" for g in root.iter(f"{SVG}g"))
    assert any(t.startswith("showing 3 of 7 associations") for t in texts(root))


def test_timeline_escapes_and_handles_rejections() -> None:
    assocs = frame("associations", [assoc(0, calling_ae=HOSTILE, result="rejected",
                                          ending="closed", ended_at=at(12))])
    svg = charts.timeline_svg(assocs, frame("operations", []))
    root = parse(svg)
    assert "<script" not in svg and any("<script>" in t for t in texts(root))
    assert "no associations" in texts(parse(charts.timeline_svg(
        frame("associations", []), None)))[0]


def test_throughput_mbit_per_second_per_sender() -> None:
    rows = [{"capture": "c", "assoc_id": 0, "sender": "requestor", "bin_start": at(10 * k),
             "bin_ms": 10.0, "bytes": 1_250_000} for k in range(20)]
    rows.append({"capture": "c", "assoc_id": 0, "sender": "acceptor", "bin_start": at(50),
                 "bin_ms": 10.0, "bytes": 100})
    tp = frame("throughput", rows)
    assert charts.transfer_bytes(tp) >= charts.LARGE_TRANSFER_BYTES
    root = parse(charts.throughput_svg(tp, labels={"requestor": HOSTILE}))
    senders = [g.get("data-sender") for g in root.iter(f"{SVG}g") if "data-sender" in g.attrib]
    assert senders == ["requestor", "acceptor"]
    words = " ".join(texts(root))
    assert "peak 1,000.0 Mbit/s" in words and "Mbit/s" in words and "25 MB" in words


def test_throughput_long_series_rebinned() -> None:
    rows = [{"capture": "c", "assoc_id": 0, "sender": "requestor", "bin_start": at(k),
             "bin_ms": 1.0, "bytes": 1000} for k in range(5000)]
    root = parse(charts.throughput_svg(frame("throughput", rows)))
    line = next(root.iter(f"{SVG}polyline"))
    points = line.get("points", "").split()
    assert len(points) <= 2 * charts.MAX_THROUGHPUT_POINTS + 4
    assert len({p.split(",")[1] for p in points[1:-1]}) == 1  # 1 Mbit/s flat, no aliasing
    assert "no throughput samples" in texts(parse(charts.throughput_svg(
        frame("throughput", []))))


def test_ladder_from_one_associations_rows_as_dicts_is_the_same_picture() -> None:
    """The report's sections hand the ladder an association's rows as dicts (as they have
    them): the same SVG as from frames holding other associations' rows too, with None
    where a frame has NaN or NA, and nothing of the dicts changed."""
    a = assoc(ended_at=at(400))
    mine = [op(i, 20 + 30 * i, turnaround=3.0 + i) for i in range(4)]
    mine[2].update(response_first_at=None, response_complete_at=None, status=None,
                   status_hex=None, final_response_index=None, turnaround_ms=None)
    found = [{"capture": "c.pcapng", "assoc_id": 0, "msg_index": 3, "severity": "warning",
              "code": "slow-scp", "summary": "slow"},
             {"capture": "c.pcapng", "assoc_id": 0, "msg_index": None, "severity": "note",
              "code": "loose", "summary": "no operation"}]
    others = [op(0, 25, aid=1)]
    other_findings = [{"capture": "c.pcapng", "assoc_id": 1, "msg_index": 1,
                       "severity": "error", "code": "x", "summary": "other"}]
    from_frames = pictures.ladder_svg(a, frame("operations", mine + others),
                                      frame("findings", found + other_findings))
    before = [dict(r) for r in mine], [dict(f) for f in found]
    from_dicts = pictures.ladder_svg(a, mine, found)
    assert from_dicts == from_frames
    assert (mine, found) == before
    assert len(op_groups(parse(from_dicts))) == 4 and "loose" in from_dicts


def test_operations_at_one_instant_each_get_a_row_of_their_own() -> None:
    """Requests sent without waiting share a frame with the one before, and their responses
    may share one too (asynchronous operations): each arrow gets its own row, where they
    were drawn over each other and the second request could not be seen."""
    same = {"request_first_at": at(30), "request_complete_at": at(30),
            "response_first_at": at(80), "response_complete_at": at(80)}
    ops = frame("operations", [op(0, 20, request_complete_at=at(30)), op(1, 30, **same),
                               op(2, 30, **same)])
    root = parse(pictures.ladder_svg(assoc(), ops, frame("findings", [])))
    ys = []
    for g in op_groups(root):
        for e in g.iter():
            if e.get("data-arrow") in ("request", "response"):
                ys.append((g.get("data-op"), e.get("data-arrow"), e.get("d") or e.get("y1")))
    requests = [y for _, kind, y in ys if kind == "request"]
    responses = [y for _, kind, y in ys if kind == "response"]
    assert len(set(requests)) == 3 and len(set(responses)) == 3
    words = " ".join(texts(root))
    assert "C-STORE-RQ #2" in words and "C-STORE-RQ #3" in words
