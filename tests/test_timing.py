"""Timing on real captures: each planted slowness is attributed where it was planted, the
numbers agree with the capture's own timestamps, and nothing is flagged that the traffic
does not show (checked independently with tshark)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import tshark_dicom
from tshark_dicom.findings import TIMING_CODES
from tshark_dicom.packets import epoch_ns

from .conftest import CAPTURES, capture_for, tls_keylogs, truth_files

TIMING = [t for t in truth_files() if "timing" in json.loads(t.read_text())]
TIMING_IDS = [t.name.removesuffix(".truth.json") for t in TIMING]
ALL = truth_files()
ALL_IDS = [t.name.removesuffix(".truth.json") for t in ALL]

#: Timing findings on the fixtures made for other issues, and why each is true of the
#: traffic (the generator planted it, or the peer really behaves so; see the checks below).
OTHER_FIXTURES: dict[str, set[str]] = {
    "large_multiframe": {"small-pdu"},  # planted: acceptor max PDU 4096 for 9.2 MB
    "lossy": {"retransmissions"},  # planted: the forwarder drops and reorders
    "tls_lossy": {"retransmissions"},  # the same forwarder, over TLS
    "hole": {"scu-idle"},  # planted: the SCU sleeps 0.4 s between stores (editcap's gap)
    "concurrent": {"scu-idle", "nagle-stall"},  # planted: gap=0.25 s between A's stores
    "n_services": {"scu-idle", "nagle-stall"},  # planted: the SCP waits before N-EVENT-REPORT
    "qr_move_concurrent": {"scu-idle"},  # planted: the Q/R SCP waits 120 ms per sub-operation
    # planted: the destination takes 1 s over each C-STORE, and the SCU cancels the C-MOVE
    "qr_move_cancel": {"slow-scp-response"},
    # the peer: movescu, its own C-MOVE destination, answers the callback about 1 s late
    "qr_move_to_self": {"slow-association-setup"},
    # planted: the destination waits 250 ms before answering each of 7 callbacks
    "qr_move_image_by_image": {"slow-association-setup", "association-per-object"},
    # pynetdicom takes about half a second to encode, and to decode, 12,000 instances
    "commit_large": {"scu-idle", "slow-scp-response"},
    # planted: the router answers its C-STORE once it has forwarded the object (about 0.1 s)
    "store_copies_compared": {"slow-scp-response"},
    # planted: 20 ms each way and dropped frames between the two capture points
    "twopoint_scu_side": {"retransmissions", "network-latency"},
    "twopoint_scp_side": {"retransmissions", "network-latency"},
}
#: pynetdicom 3.0.4 does not set TCP_NODELAY: its command PDU and data set PDU are separate
#: writes, so the data set waits for the peer's delayed ACK. Where that shows, nagle-stall
#: is true; `test_nagle_stalls_are_in_the_capture` proves it from tshark's fields alone.
NAGLE_ALLOWED = "nagle-stall"


def _truth(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.mark.parametrize("truth_path", TIMING, ids=TIMING_IDS)
def test_each_operation_has_the_planted_bottleneck(truth_path: Path, analysed: Any) -> None:
    truth = _truth(truth_path)
    report, _ = analysed(capture_for(truth_path))
    ops = report.operations
    want = truth["timing"]["operations"]
    assert len(ops) == len(want)
    for w in want:
        row = ops[(ops.assoc_id == w["assoc_index"]) & (ops.op_index == w["op_index"])]
        assert len(row) == 1
        got = row.iloc[0]
        assert got["command"] == w["command"]
        bottleneck = None if pd.isna(got["bottleneck"]) else got["bottleneck"]
        assert bottleneck == w["bottleneck"], (w, got["bottleneck_detail"])
        if bottleneck is not None:
            assert got["bottleneck_detail"].startswith(bottleneck + ": ")


@pytest.mark.parametrize("truth_path", TIMING, ids=TIMING_IDS)
def test_planted_patterns_give_their_findings_and_nothing_else(truth_path: Path,
                                                               analysed: Any) -> None:
    truth = _truth(truth_path)
    report, _ = analysed(capture_for(truth_path))
    codes = set(report.findings["code"]) & set(TIMING_CODES)
    assert codes == set(truth["timing"]["expected_findings"])


@pytest.mark.parametrize("truth_path", TIMING, ids=TIMING_IDS)
def test_round_trip_and_capture_point(truth_path: Path, analysed: Any) -> None:
    timing = _truth(truth_path)["timing"]
    report, _ = analysed(capture_for(truth_path))
    assoc = report.associations.iloc[0]
    if timing["rtt_ms"] is not None:
        assert assoc["rtt_ms"] == pytest.approx(timing["rtt_ms"], rel=0.1)
        assert assoc["capture_point"] == timing["capture_point"]
    else:  # loopback: too close to tell, and said so by a null
        assert assoc["rtt_ms"] < 1.0
        assert pd.isna(assoc["capture_point"])


@pytest.mark.parametrize("truth_path", ALL, ids=ALL_IDS)
def test_no_timing_finding_the_traffic_does_not_show(truth_path: Path, analysed: Any) -> None:
    truth = _truth(truth_path)
    if "timing" in truth:
        return  # test_planted_patterns_give_their_findings_and_nothing_else
    report, _ = analysed(capture_for(truth_path), tuple(filter(None, [truth.get("port_hint")])))
    codes = set(report.findings["code"]) & set(TIMING_CODES)
    allowed = OTHER_FIXTURES.get(truth_path.name.removesuffix(".truth.json"), set())
    assert codes - {NAGLE_ALLOWED} <= allowed


def _frame_times(capture: Path) -> dict[int, int]:
    out = subprocess.run(["tshark", "-r", str(capture), "-T", "fields", "-e", "frame.number",
                          "-e", "frame.time_epoch"], capture_output=True, text=True, check=True)
    times = {}
    for line in out.stdout.split("\n"):
        if line.strip():
            num, epoch = line.split("\t")
            times[int(num)] = epoch_ns(epoch)
    return times


@pytest.mark.parametrize("truth_path", ALL, ids=ALL_IDS)
def test_times_agree_with_the_capture_timestamps(truth_path: Path, analysed: Any) -> None:
    truth = _truth(truth_path)
    capture = capture_for(truth_path)
    report, _ = analysed(capture, tuple(filter(None, [truth.get("port_hint")])),
                         tls_keylogs(truth))
    times = _frame_times(capture)
    msgs = report.messages.set_index(["assoc_id", "msg_index"])
    assocs = report.associations.set_index("assoc_id")
    for op in report.operations.itertuples():
        req = msgs.loc[(op.assoc_id, op.request_index)]
        # the tables keep microseconds (what pandas, pyarrow and DuckDB share): truncated
        assert op.request_first_at.value == times[int(req.first_frame)] // 1000 * 1000
        assert op.request_complete_at.value == times[int(req.last_frame)] // 1000 * 1000
        ms = (times[int(req.last_frame)] - times[int(req.first_frame)]) / 1e6
        assert abs(op.request_transfer_ms - ms) < 1.0
        responses = report.messages[(report.messages.assoc_id == op.assoc_id)
                                    & (report.messages.request_index == op.request_index)
                                    & (report.messages.command.str.endswith("-RSP"))]
        if len(responses):
            first = int(responses.first_frame.min())
            turnaround = (times[first] - times[int(req.last_frame)]) / 1e6
            assert abs(op.turnaround_ms - turnaround) < 1.0
        ops = report.operations
        outstanding = ops[(ops.assoc_id == op.assoc_id) & (ops.op_index < op.op_index)
                          & (ops.scu == op.scu) & ops.final_response_index.notna()
                          & (ops.response_complete_at > op.request_first_at)]
        if len(outstanding):  # sent without waiting (asynchronous operations): not idle
            assert op.gap_before_ms == 0.0
        elif pd.notna(op.gap_before_ms):
            earlier = ops[(ops.assoc_id == op.assoc_id)
                          & (ops.response_complete_at <= op.request_first_at)]
            if len(earlier):
                since = earlier.response_complete_at.max().value
            else:
                since = assocs.loc[op.assoc_id, "responded_at"].value
            gap = (times[int(req.first_frame)] - since) / 1e6
            assert abs(op.gap_before_ms - gap) < 1.0
        parts = op.scu_ms + op.network_ms + op.scp_ms
        if pd.notna(op.total_ms):  # the parts never add up to more than the time there was
            gap = 0.0 if pd.isna(op.gap_before_ms) else op.gap_before_ms
            assert parts <= op.total_ms + gap + 0.01


def _nagle_signatures(capture: Path) -> dict[tuple[str, str], int]:
    """Independently of our code: a segment of <= 576 bytes, the peer's pure ACK 30-60 ms
    later, and the sender's next data within 2 ms of that ACK, per (sender ip, port)."""
    out = subprocess.run(
        ["tshark", "-r", str(capture), "-T", "fields", "-E", "separator=,", "-e",
         "frame.time_epoch", "-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport",
         "-e", "tcp.len", "-e", "tcp.stream"], capture_output=True, text=True, check=True)
    last: dict[tuple[str, str, str], tuple[float, int]] = {}  # (stream, ip, port) -> data
    pending: dict[tuple[str, str, str], float] = {}  # sender -> when its pure ACK came
    found: dict[tuple[str, str], int] = {}
    for line in out.stdout.split("\n"):
        if not line:
            continue
        t_s, ip4, ip6, port, length, stream = line.split(",")
        t, n, me = float(t_s), int(length), (stream, ip4 or ip6, port)
        if n:
            ack_at = pending.pop(me, None)
            if ack_at is not None and t - ack_at <= 0.002:
                found[me[1:]] = found.get(me[1:], 0) + 1
            last[me] = (t, n)
            continue
        for other, (sent, size) in last.items():  # a pure ACK: for the other side's data
            if other[0] == stream and other != me and size <= 576 and 0.03 <= t - sent <= 0.06:
                pending[other] = t
    return found


@pytest.mark.parametrize("truth_path", ALL, ids=ALL_IDS)
def test_nagle_stalls_are_in_the_capture(truth_path: Path, analysed: Any) -> None:
    truth = _truth(truth_path)
    capture = capture_for(truth_path)
    report, _ = analysed(capture, tuple(filter(None, [truth.get("port_hint")])))
    flagged = report.findings[report.findings.code == "nagle-stall"]
    signatures = _nagle_signatures(capture)
    for summary in flagged.summary:
        who = summary.split("(", 1)[1].split(")", 1)[0]  # ip:port of the stalling side
        ip, port = who.rsplit(":", 1)
        assert signatures.get((ip, port), 0) >= 3, summary
    if truth.get("timing", {}).get("expected_findings") == []:
        assert not any(n >= 3 for n in signatures.values())


def test_both_engines_give_the_same_timing(tmp_path: Path) -> None:
    for name in ("timing_slow_reader.pcapng.gz", "timing_latency_scu_side.pcapng",
                 "timing_nagle.pcapng", "lossy.pcapng"):
        cap = CAPTURES / name
        raw = tshark_dicom.analyze(cap, engine="raw")
        ek = tshark_dicom.analyze(cap, engine="ek")
        for table in ("associations", "operations", "throughput"):
            a, b = raw.table(table), ek.table(table)
            assert a.astype(str).equals(b.astype(str)), (name, table)
        assert sorted(raw.findings["code"]) == sorted(ek.findings["code"])


def test_readme_states_the_thresholds_the_code_uses() -> None:
    from tshark_dicom import findings, tcpevidence, timing

    readme = (CAPTURES.parent.parent / "README.md").read_text()
    assert f"least all of: {timing.STANDOUT_MIN_MS:.0f} ms (`STANDOUT_MIN_MS`)" in readme
    assert f"{timing.STANDOUT_RTT_FACTOR:.0f} round trips\n(`STANDOUT_RTT_FACTOR`)" in readme
    assert f"(`EXPECTED_BYTES_PER_MS` = {timing.EXPECTED_BYTES_PER_MS:,.0f}" in readme
    assert f"within {timing.CAPTURE_POINT_SHARE:.0%} of the round trip" in readme
    assert f"below {timing.CAPTURE_POINT_MIN_RTT_MS:.0f} ms of round trip" in readme
    assert f"pause of {tcpevidence.STALL_NS // 1_000_000} ms or more" in readme
    assert f"short (<= {tcpevidence.SHORT_SEGMENT} bytes)" in readme
    assert f"answered {findings.SLOW_SETUP_MS:.0f} ms or more" in readme
    assert f"{findings.NAGLE_MIN_STALLS} or more `nagle` pauses" in readme
    assert f"{findings.PER_OBJECT_MIN_ASSOCIATIONS} or more associations" in readme
    assert f"{findings.PER_OBJECT_MIN_SHARE:.0%} of their time" in readme
    assert "under 16 KiB" in readme and findings.SMALL_PDU_BYTES == 16 * 1024
    assert "idle at least half its time" in readme and findings.SCU_IDLE_MIN_SHARE == 0.5


def test_per_object_callbacks_of_one_scus_c_moves_point_at_the_retrieval(analysed: Any) -> None:
    """association-per-object on the callbacks of one SCU's image-by-image C-MOVEs advises a
    C-MOVE per series or study (the archive can only open one association per C-MOVE), not
    "send the objects over one association" as for a storage SCU; the storage SCU's advice
    stays."""
    report, _ = analysed(CAPTURES / "qr_move_image_by_image.pcapng")
    f = report.findings
    text = f[f.code == "association-per-object"].summary.iloc[0]
    assert text.startswith("QR-ARCHIVE opened 7 associations to SLOW-DEST, one per object")
    assert text.endswith(
        "7 of them are the callbacks of C-MOVEs from IMG-MOVER that moved one object each, and "
        "every C-MOVE gets an association of its own: retrieving a series or study with one "
        "C-MOVE, not image by image, lets QR-ARCHIVE send its objects over one")
    report, _ = analysed(CAPTURES / "timing_assoc_per_object.pcapng")
    f = report.findings
    assert f[f.code == "association-per-object"].summary.iloc[0].endswith(
        "send the objects over one association (for dcmtk storescu: all files in one call)")
