"""Two captures of one transfer, taken at two points of its path (twopoint.py, `compare`):
the real tshark on the pair the fixture generator captured at once on the client's and the
server's veth, with a forwarder between them that delays and drops frames, and on copies
that editcap (the Wireshark suite's own tool) shifts in time or cuts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tshark_dicom.twopoint import HELD_MS, compare_sources, estimate

from .conftest import CAPTURES

A = CAPTURES / "twopoint_scu_side.pcapng"
B = CAPTURES / "twopoint_scp_side.pcapng"
TRUTH = json.loads((CAPTURES / "twopoint_scu_side.truth.json").read_text())
PORT = 11255  # twopoint_scenarios.PORT


def _messages_in(truth: dict) -> int:
    return sum(len(a["messages"]) for a in truth["associations"])


@pytest.fixture(scope="module")
def ab():
    return compare_sources(A, B)


def test_the_clocks_and_the_transit_between_the_points(ab) -> None:
    tp = TRUTH["twopoint"]
    assert ab.offset_ms == pytest.approx(tp["clock_ahead_ms"], abs=1.0)
    # the forwarder's delay, and a little of its own time
    assert tp["one_way_delay_ms"] <= ab.transit_ms <= tp["one_way_delay_ms"] + 3
    both = ab.associations[ab.associations.seen == "both"]
    assert len(both) == len(TRUTH["associations"]) == len(ab.associations)
    assert set(both.requestor_side) == {"a"}  # A is the client's veth
    assert int(both.messages_both.sum()) == _messages_in(TRUTH)
    assert (ab.messages.seen == "both").all()
    overview = ab.findings[ab.findings.code == "two-points"].summary.iloc[0]
    assert "B's clock reads 1,750.0 ms ahead of A's" in overview
    assert "A is nearer the requestor" in overview


def test_what_the_network_between_the_points_held_up(ab) -> None:
    """The messages held up are those with a segment the forwarder dropped: tshark, TCP
    only, matched each segment of A with its sequence number at B."""
    late = TRUTH["twopoint"]["late_segments"]
    assert late
    m = ab.messages
    held = m[m.held_ms >= HELD_MS]
    assert len(held)

    def holds(row: pd.Series, t: float) -> bool:
        return row.started_at_a.timestamp() - 1e-6 <= t <= row.ended_at_a.timestamp() + 1e-6

    for _, row in held.iterrows():  # each has a late segment
        assert any(holds(row, s["a"]) for s in late), row.to_dict()
    for s in late:  # each segment late by far more than the threshold is in one
        if s["late_ms"] >= HELD_MS + 100:
            assert any(holds(row, s["a"]) for _, row in held.iterrows()), s
    f = ab.findings[ab.findings.code == "held-between-points"]
    assert len(f) == held.assoc_id_a.nunique()
    text = f.summary.iloc[0]
    assert "MODALITY-A" in text and "passed A on time" in text


def test_the_other_way_round(ab) -> None:
    ba = compare_sources(B, A)
    assert ba.offset_ms == pytest.approx(-ab.offset_ms, abs=0.01)
    assert ba.transit_ms == pytest.approx(ab.transit_ms, abs=0.01)
    assert set(ba.associations.requestor_side) == {"b"}
    assert sorted(ba.messages.held_ms.dropna()) == pytest.approx(
        sorted(ab.messages.held_ms.dropna()), abs=0.01)


def _editcap(*args: str | Path) -> None:
    subprocess.run(["editcap", *map(str, args)], check=True, capture_output=True)


def test_one_capture_and_a_copy_of_it_with_a_clock_behind(tmp_path: Path) -> None:
    shifted = tmp_path / "shifted.pcapng"
    _editcap("-t", "-3.25", A, shifted)
    c = compare_sources(A, shifted)
    assert c.offset_ms == pytest.approx(-3250.0, abs=0.002)
    assert c.transit_ms == pytest.approx(0.0, abs=0.002)
    assert c.messages.held_ms.max() == pytest.approx(0.0, abs=0.002)
    assert not (c.findings.severity == "warning").any()


def test_a_capture_that_began_inside_an_association(tmp_path: Path) -> None:
    """B started late: its first association has no A-ASSOCIATE-RQ and lacks its first
    messages; it still pairs (by what it shares), and what B never had a chance to see is
    not called missing."""
    late = tmp_path / "late.pcapng"
    _editcap("-r", B, late, "30-1000000")
    c = compare_sources(A, late, ports=[PORT])
    assert (c.associations.seen == "both").all()
    assert len(c.associations) == len(TRUTH["associations"])
    first = c.associations.sort_values("assoc_id_a").iloc[0]
    assert first.messages_both < first.messages_a
    assert not (c.findings.code == "message-at-one-point").any()
    assert c.offset_ms == pytest.approx(TRUTH["twopoint"]["clock_ahead_ms"], abs=1.0)


def test_a_message_one_point_never_saw(tmp_path: Path, ab) -> None:
    """The packets of one C-ECHO-RSP taken out of B (editcap): B's capture was running, so
    it is named, with the frame A saw it in."""
    m = ab.messages
    # one that crossed in one packet, once (not one the forwarder dropped)
    rsp = m[(m.command == "C-ECHO-RSP") & (m.first_frame_b == m.last_frame_b)
            & (m.held_ms < 1)].sort_values("first_frame_b").iloc[-1]
    cut = tmp_path / "cut.pcapng"
    _editcap(B, cut, f"{rsp.first_frame_b}-{rsp.last_frame_b}")
    c = compare_sources(A, cut)
    f = c.findings[c.findings.code == "message-at-one-point"]
    assert len(f) == 1
    assert "C-ECHO-RSP" in f.summary.iloc[0] and f"frame {rsp.first_frame_a}" in f.summary.iloc[0]
    assert "in A but not in B" in f.summary.iloc[0]
    assert (c.messages.seen == "a").sum() == 1


@pytest.mark.parametrize("forward,backward,offset,transit,first", [
    ([120, 150, 400], [80, 60], 100, 20, "a"),     # A nearer the requestor, 20 each way
    ([80, 60, -200], [120, 150], 100, 20, "b"),    # B nearer it
    ([5, 7], [6, 4], 6, 0, "a"),                   # one point (jitter): a transit of 0
])
def test_the_estimate(forward, backward, offset, transit, first) -> None:
    c = estimate(forward, backward)
    assert (c.offset, c.transit, c.requestor_first) == (offset, transit, first)


def test_one_direction_only_tells_nothing() -> None:
    c = estimate([1, 2], [])
    assert c.offset is None and c.transit is None and c.requestor_first is None


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tshark_dicom", "compare", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_the_command_line(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    p = _cli(A, B, "-o", out, "--format", "both")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"A: {A}\nB: {B}\n")
    assert "[held-between-points]" in p.stdout
    assert "B's clock +1,750.0 ms" in p.stdout
    for t in ("associations", "messages", "findings"):
        assert len(pd.read_parquet(out / f"point_{t}.parquet")) == len(
            pd.read_csv(out / f"point_{t}.csv"))
    assert pd.read_parquet(out / "point_messages.parquet").held_ms.max() >= HELD_MS
    page = (out / "report.html").read_text()
    assert "<h1>Two capture points of one path</h1>" in page
    assert page.count("<svg") == len(TRUTH["associations"])  # a flow per association
    held = pd.read_parquet(out / "point_messages.parquet").held_ms.dropna()
    for ms in held[held >= HELD_MS]:
        assert f"held up {ms:,.1f} ms" in page
    assert "<script" not in page and "http" not in page.replace("http://www.w3.org", "")
    again = _cli(A, A, "-o", out)  # an earlier comparison's folder is replaced
    assert again.returncode == 0, again.stderr
    assert pd.read_parquet(out / "point_messages.parquet").held_ms.max() == 0
    assert not (out / "point_messages.csv").exists()


def test_bad_input_is_one_line_and_an_exit_code(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pcapng"
    p = _cli(A, missing)
    assert p.returncode == 1 and p.stderr.strip() == f"Error: {missing}: no such file or folder"
    no_dicom = tmp_path / "handshake.pcapng"  # the TCP handshake, and no A-ASSOCIATE-RQ
    _editcap("-r", A, no_dicom, "1-3")
    p = _cli(no_dicom, A)
    assert p.returncode == 1, p.stderr
    assert p.stderr.strip() == f"Error: {no_dicom}: no DICOM association found, nothing to compare"
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    p = _cli(A, B, "-o", other)
    assert p.returncode == 2 and "is not an earlier comparison's folder" in p.stderr
    assert [f.name for f in other.iterdir()] == ["keep.txt"]
    p = _cli(A, B, "--format", "xml")
    assert p.returncode == 2 and "--format" in p.stderr


def test_an_out_folder_written_by_analyze(tmp_path: Path, ab) -> None:
    out = tmp_path / "a-out"
    p = subprocess.run([sys.executable, "-m", "tshark_dicom", "analyze", str(A), "-o", str(out),
                        "-q", "--no-objects"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    c = compare_sources(out, B)
    assert c.offset_ms == ab.offset_ms and c.transit_ms == ab.transit_ms
    assert c.messages.held_ms.tolist() == ab.messages.held_ms.tolist()


def test_where_the_data_was_lost(ab) -> None:
    """Every frame the forwarder between the points dropped: the bytes each sender lost
    there, as tshark counts them at the two points, and one finding per sender."""
    truth = TRUTH["twopoint"]["lost_between"]
    assert sum(v["frames"] for v in truth.values()) == TRUTH["forwarder"]["dropped"] > 0
    for sender in ("requestor", "acceptor"):
        col = ab.associations[f"lost_between_{sender}_bytes"]
        assert int(col.sum()) == truth[sender]["bytes"]
    f = ab.findings[ab.findings.code == "lost-between-points"]
    assert len(f) == sum(1 for v in truth.values() if v["bytes"])
    text = f.summary.iloc[0]
    assert f"{truth['requestor']['bytes']:,} bytes" in text
    assert "A saw them twice" in text and "MODALITY-A sent to PACS-B" in text
    # B, behind the loss, saw gaps; A, before it, none
    assert (ab.associations.gaps_requestor_b > 0).any()
    assert (ab.associations.gaps_requestor_a == 0).all()


def test_an_association_one_point_never_saw(tmp_path: Path) -> None:
    """The second of three associations taken out of B (editcap, by tshark's own stream
    numbers): B was capturing before and after it, so it is named."""
    frames = subprocess.run(["tshark", "-r", str(B), "-Y", "tcp.stream==1", "-T", "fields",
                             "-e", "frame.number"], capture_output=True, text=True,
                            check=True).stdout.split()
    cut = tmp_path / "cut.pcapng"
    _editcap(B, cut, f"{frames[0]}-{frames[-1]}")
    c = compare_sources(A, cut)
    assert sorted(c.associations.seen) == ["a", "both", "both"]
    f = c.findings[c.findings.code == "association-at-one-point"]
    assert len(f) == 1
    assert f.summary.iloc[0].startswith("1 association(s) in A are not in B, though B's capture "
                                        "was running then: MODALITY-A")


def test_from_python_with_reports(ab) -> None:
    import tshark_dicom

    c = tshark_dicom.compare(tshark_dicom.analyze(str(A)), str(B))
    assert c.captures == ("A", str(B))
    assert c.offset_ms == ab.offset_ms and c.transit_ms == ab.transit_ms
    assert c.findings.code.tolist() == ab.findings.code.tolist()


def test_one_point_alone_puts_a_request_lost_past_it_on_the_network(ab) -> None:
    """At the SCU's point, a C-STORE whose request segment the network lost further on
    looks answered late by the SCP; the SCU's own retransmission after the request's last
    byte shows it was the network (timing.py), as the comparison with B confirms."""
    import tshark_dicom

    report = tshark_dicom.analyze(str(A))
    late = [s for s in TRUTH["twopoint"]["late_segments"] if s["to_scp"]]
    assert late
    ops = report.operations
    for s in late:
        t = pd.Timestamp(s["a"], unit="s", tz="UTC")
        op = ops[(ops.request_first_at <= t) & (ops.request_complete_at >= t)].iloc[0]
        assert op.bottleneck == "network", op.bottleneck_detail
        assert "sent part of the request again" in op.bottleneck_detail
        assert op.scp_ms < 20
    assert "slow-scp-response" not in set(report.findings.code)


def test_one_point_alone_puts_a_response_lost_past_it_on_the_network() -> None:
    """At the SCP's point, a response the network lost further on makes the SCU's next
    request look late (as if it idled); the SCP's own retransmission of the response before
    that request shows it was the network (timing.py)."""
    import tshark_dicom

    report = tshark_dicom.analyze(str(B))
    late = [s for s in TRUTH["twopoint"]["late_segments"] if not s["to_scp"]]
    assert late
    ops = report.operations.sort_values("request_first_at")
    shift = pd.Timedelta(TRUTH["twopoint"]["clock_ahead_ms"], unit="ms")
    for s in late:
        t = pd.Timestamp(s["a"], unit="s", tz="UTC") + shift  # A's time, in B's clock
        after = ops[ops.request_first_at > t].iloc[0]
        assert after.bottleneck == "network", after.bottleneck_detail
        assert "the SCP sent part of its response again" in after.bottleneck_detail
        assert after.scu_ms < 50
    assert "scu-idle" not in set(report.findings.code)


def test_the_text_puts_the_associations_with_trouble_first(ab) -> None:
    from tshark_dicom.twopoint import render

    lines = render(ab).split("\n")
    first = lines.index("associations:") + 1
    trouble = [line for line in lines[first:] if "held up:" in line or "lost between" in line]
    assert trouble and lines[first:first + len(trouble)] == trouble
    assert any("lost between the points: " in line for line in trouble)
    # one direction only: no transit, nothing lost known; still a line
    one_way = ab.associations.copy()
    one_way.loc[0, ["lost_between_requestor_bytes", "held_messages"]] = pd.NA
    text = render(type(ab)(one_way, ab.messages, ab.findings, ab.captures, None, None))
    assert text.count("MODALITY-A -> PACS-B") == len(one_way)


def test_dicom_over_tls_at_both_points(tmp_path: Path) -> None:
    """tls_store_12 (pynetdicom peers, TLS 1.2) and a copy whose clock is 1.25 s ahead: one
    key log decrypts both (the sessions are the same), and every message pairs; without
    it, a one-line error that says what to give."""
    shifted = tmp_path / "shifted.pcapng"
    _editcap("-t", "1.25", CAPTURES / "tls_store_12.pcapng", shifted)
    keys = CAPTURES / "tls_store_12.keys"
    c = compare_sources(CAPTURES / "tls_store_12.pcapng", shifted, tls_keylogs=[keys])
    assert c.offset_ms == pytest.approx(1250.0, abs=0.002)
    [row] = c.associations.itertuples()
    assert row.messages_a == row.messages_b == row.messages_both > 0
    p = _cli(CAPTURES / "tls_store_12.pcapng", shifted, "--tls-keylog", keys)
    assert p.returncode == 0 and "B's clock reads 1,250.0 ms ahead of A's" in p.stdout
    p = _cli(CAPTURES / "tls_store_12.pcapng", shifted)
    assert p.returncode == 1
    assert p.stderr.strip() == (
        f"Error: {CAPTURES / 'tls_store_12.pcapng'}: no DICOM message found, nothing to "
        "compare (1 association(s) in TLS that was not decrypted: give its key log with "
        "--tls-keylog)")
