"""watch: dumpcap on an interface, each association told as it ends (liveview.py,
livecapture.py). Real peers (pynetdicom) on loopback, the real dumpcap, the real command
line; and the live view's engine checked against analyze's on the fixture captures."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pynetdicom import AE, StoragePresentationContexts, VerificationPresentationContexts, evt
from pynetdicom.sop_class import CTImageStorage, Verification

import tshark_dicom
from tshark_dicom.analysis import analyze_stream
from tshark_dicom.livecapture import _COUNTS, _tool_error
from tshark_dicom.liveview import Teller, WatchedAssociation
from tshark_dicom.records import FindingRecord
from tshark_dicom.tshark import find_tshark, has_embedded_secrets, raw_conversion

from .conftest import CAPTURES, capture_for, truth_files

CLI = [sys.executable, "-m", "tshark_dicom"]


@pytest.fixture(autouse=True)
def _root() -> None:
    if os.geteuid() != 0:
        pytest.fail("watch tests capture with dumpcap on loopback: run as root")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _peers(port: int) -> dict[str, Any]:
    """Three associations of real pynetdicom peers: an echo and two C-STOREs (the second
    refused 0xA700), one rejected (called AE unknown), one aborted by the requestor."""
    scp = AE(ae_title="WATCH-SCP")
    scp.require_called_aet = True
    scp.supported_contexts = StoragePresentationContexts + VerificationPresentationContexts

    def on_store(event: Any) -> int:
        return 0xA700 if event.request.MessageID == 3 else 0x0000

    server = scp.start_server(("127.0.0.1", port), block=False,
                              evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        scu = AE(ae_title="WATCH-SCU")
        scu.add_requested_context(Verification)
        scu.add_requested_context(CTImageStorage)
        ds = dcmread(get_testdata_file("CT_small.dcm"))
        assoc = scu.associate("127.0.0.1", port, ae_title="WATCH-SCP")
        assert assoc.is_established
        assoc.send_c_echo()
        statuses = [assoc.send_c_store(ds, msg_id=i).Status for i in (2, 3)]
        assoc.release()
        rejected = scu.associate("127.0.0.1", port, ae_title="NOT-HERE")
        assert rejected.is_rejected
        aborted = scu.associate("127.0.0.1", port, ae_title="WATCH-SCP")
        aborted.send_c_echo()
        aborted.abort()
        time.sleep(0.3)
    finally:
        server.shutdown()
    return {"statuses": statuses}


def _check_told(heads: list[str]) -> None:
    """The three associations, in the order they ended, as the peers made them."""
    assert len(heads) == 3, heads
    assert re.search(r"WATCH-SCU -> WATCH-SCP \(127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+\), "
                     r"released, [\d.]+ s: C-ECHO 1, C-STORE 2 \(1 failed\), [\d.]+ kB",
                     heads[0]), heads[0]
    assert "WATCH-SCU -> NOT-HERE" in heads[1]
    assert "), rejected (rejected-permanent; DICOM UL service-user; " \
        "called-AE-title-not-recognized)" in heads[1], heads[1]
    assert re.search(r"WATCH-SCU -> WATCH-SCP .*aborted .*C-ECHO 1", heads[2]), heads[2]


def _start(args: list[str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen([*CLI, "watch", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    first = proc.stderr.readline()  # said once dumpcap captures
    assert first.startswith("watching lo"), first + (proc.stderr.read() if proc.poll() else "")
    return proc


def test_watch_duration_tells_each_association_and_writes_out(tmp_path: Path) -> None:
    port = _free_port()
    out = tmp_path / "OUT"
    proc = _start(["lo", "-f", f"tcp port {port}", "--duration", "8", "-o", str(out)])
    truth = _peers(port)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert [s for s in truth["statuses"]] == [0x0000, 0xA700]
    lines = stdout.splitlines()
    heads = [line for line in lines if re.match(r"\d\d:\d\d:\d\d\.\d{3}  ", line)]
    _check_told(heads)
    assert all(re.search(r"; tcp\.stream eq \d+$", h) for h in heads)  # saved: findable
    assert re.search(r"^lo: \d+ packet\(s\) in [\d.]+ s of watching, 3 DICOM association",
                     stdout, re.M)
    assert f"packets in {out}.pcap, results in {out}/" in stdout
    # OUT is analyze's, of the saved packets: the tables agree with what was told live
    report = tshark_dicom.load(out)
    assert len(report.associations) == 3
    assert report.captures["path"].tolist() == [str((tmp_path / "OUT.pcap").resolve())]
    assert sorted(report.associations["result"]) == ["accepted", "accepted", "rejected"]
    live = {(m[1], int(m[2])) for m in re.finditer(r"\[([a-z-]+)\] .*\(frame (\d+)\)$",
                                                   stdout, re.M)}
    tables = {(c, int(f)) for c, f in zip(report.findings["code"], report.findings["frame"],
                                          strict=True) if f is not None and f == f}
    assert ("dimse-failure" in {c for c, _ in live})
    assert live <= tables, live - tables
    stored = report.objects[report.objects["command"] == "C-STORE-RQ"]
    assert len(stored) == 2 and stored["path"].notna().all()


def test_ctrl_c_ends_the_capture_and_analyses_all_of_it(tmp_path: Path) -> None:
    port = _free_port()
    saved = tmp_path / "live.pcap"
    proc = _start(["lo", "-f", f"tcp port {port}", "-w", str(saved)])
    _peers(port)
    assert proc.stdout is not None
    heads: list[str] = []
    deadline = time.monotonic() + 60
    while len(heads) < 3 and time.monotonic() < deadline:  # told before the capture ends
        line = proc.stdout.readline()
        if re.match(r"\d\d:\d\d:\d\d\.\d{3}  ", line):
            heads.append(line.rstrip("\n"))
    _check_told(heads)
    proc.send_signal(signal.SIGINT)
    rest, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "ending the capture" in stderr
    assert "3 DICOM association(s)" in rest
    assert f"packets saved to {saved}: tshark-dicom analyze {saved} -o OUT" in rest
    report = tshark_dicom.analyze(saved)  # the saved file is whole: dumpcap's own end
    assert len(report.associations) == 3
    assert (report.findings["code"] == "dimse-failure").sum() == 1


def test_python_watch_stops_on_an_event(tmp_path: Path) -> None:
    port = _free_port()
    stop = threading.Event()
    heard: list[WatchedAssociation] = []
    result: list[Any] = []
    started = threading.Event()

    def run() -> None:
        result.append(tshark_dicom.watch("lo", capture_filter=f"tcp port {port}",
                                         on_association=heard.append, stop=stop,
                                         on_start=started.set, save=tmp_path / "py.pcap",
                                         file_size_mb=1, files=2))

    thread = threading.Thread(target=run)
    thread.start()
    assert started.wait(30)
    _peers(port)
    time.sleep(0.5)
    stop.set()
    thread.join(60)
    assert not thread.is_alive()
    watched = result[0]
    assert watched.stopped and watched.saved == tmp_path / "py.pcap"
    [saved] = watched.saved_files  # a ring buffer of 1 MB files: one so far
    assert re.fullmatch(r"py_00001_\d{14}\.pcap", saved.name)
    assert watched.associations == 3 and watched.packets > 20
    assert len(tshark_dicom.analyze(saved).associations) == 3
    assert watched.dropped == 0 and watched.received == watched.packets
    first = heard[0]
    assert (first.calling_ae, first.called_ae, first.result, first.ending) == \
        ("WATCH-SCU", "WATCH-SCP", "accepted", "released")
    assert first.operations == (("C-ECHO", 1, 0, 0), ("C-STORE", 2, 1, 0))
    assert [f.code for f in first.findings] == ["dimse-failure"]
    assert heard[1].result == "rejected" and heard[2].ending == "aborted"
    assert first.as_json()["operations"][1] == {"command": "C-STORE", "count": 2,
                                                "failed": 1, "warnings": 0}
    # a ring's files number their own streams: no Wireshark filter to send anyone to
    assert not any("tcp.stream" in line for a in heard for line in a.lines())


@pytest.mark.parametrize("args, code, message, given", [
    (["nosuch0"], 1, "Error: cannot capture on 'nosuch0': There is no device named", b""),
    (["-"], 1, "Error: standard input: not a pcap or pcapng stream", b"GET / HTTP/1.1\r\n"),
    (["-"], 1, "Error: standard input: no capture came (it ended empty)", b""),
    (["-", "-f", "tcp"], 2, "Error: --filter: a stream on standard input is filtered where it "
     "is captured", b""),
    (["-", "--packets", "5"], 2, "Error: --packets: standard input holds a pcapng stream",
     (CAPTURES / "echo.pcapng").read_bytes()),
    (["lo", "-f", "tcp port banana"], 2, "Error: --filter: Invalid capture filter", b""),
    (["lo", "--duration", "0"], 2, "Error: --duration 0: must be more than 0 seconds", b""),
    (["lo", "--fail-on", "note"], 2, "Error: --fail-on 'note': choose warning or error", b""),
    (["lo", "--tls-port", "2763"], 2, "Error: --tls-keylog, --tls-port: with -o only", b""),
    (["lo", "-w", "/nonexistent-dir/x.pcap"], 4,
     "Error: /nonexistent-dir/x.pcap: cannot save the capture there: No such file or directory",
     b""),
    (["lo", "--file-size", "10"], 2, "Error: --file-size, --files: the capture is saved in "
     "files only with -w or -o", b""),
    (["lo", "-w", "x.pcap", "--files", "3"], 2, "Error: --files: give --file-size too", b""),
    (["lo", "-w", "x.pcap", "--file-size", "0"], 2, "Error: --file-size 0: from 1 to 2000000 MB",
     b""),
    (["lo", "-w", "x.pcap", "--file-size", "1", "--files", "1"], 2,
     "Error: --files 1: from 2 to 100000", b""),
    (["lo", "-w", "/nonexistent-dir/x.pcap", "--file-size", "5"], 4,
     "Error: /nonexistent-dir/x.pcap: cannot save the capture there: No such file or directory",
     b""),
], ids=["no-device", "stdin-not-a-capture", "stdin-empty", "stdin-filter", "stdin-packets",
        "bad-filter", "duration-0", "fail-on-note", "tls-without-out", "unwritable",
        "ring-unsaved", "ring-files-alone", "ring-size-0", "ring-one-file", "ring-unwritable"])
def test_bad_input_is_one_line(args: list[str], code: int, message: str, given: bytes) -> None:
    done = subprocess.run([*CLI, "watch", *args], capture_output=True, input=given,
                          timeout=60, check=False)
    proc = subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(),
                                       done.stderr.decode())
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.startswith(message), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("kind", ["pcapng", "pcap"])
def test_standard_input(kind: str, tmp_path: Path, tshark_path: str) -> None:
    """``watch -``: what ``ssh host tcpdump -U -w - ...`` sends (pcap, read by dumpcap) or a
    pcapng stream (read by editcap), told as from an interface; a C-MOVE whose callback was
    never answered is told again, with why, once its association ended."""
    capture = CAPTURES / "qr_move_unanswered.pcapng"
    if kind == "pcap":
        pcap = tmp_path / "in.pcap"
        subprocess.run([str(Path(tshark_path).with_name("editcap")), "-F", "pcap",
                        str(capture), str(pcap)], check=True)
        capture = pcap
    with capture.open("rb") as given:
        proc = subprocess.run([*CLI, "watch", "-", "-w", str(tmp_path / "saved.pcap")],
                              stdin=given, capture_output=True, text=True, timeout=60,
                              check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("watching standard input, saving the packets to ")
    lines = proc.stdout.splitlines()
    assert re.match(r"\d\d:\d\d:\d\d\.\d{3}  MOVE-SCU -> QR-ARCHIVE \(10\.79\.0\.2:\d+ -> "
                    r"10\.79\.0\.1:11165\), released, [\d.]+ s: C-MOVE 1 \(1 failed\)", lines[0])
    assert "[dimse-failure]" in lines[1] and "0xA702" in lines[1]
    assert lines[2].endswith("at the C-MOVE's end, MOVE-SCU -> QR-ARCHIVE (tcp.stream eq 0), "
                             "more findings:")
    assert any("[callback-unanswered]" in line for line in lines[3:5])
    assert "standard input: 24 packet(s) in " in proc.stdout
    report = tshark_dicom.analyze(tmp_path / "saved.pcap")  # what came in, saved whole
    assert report.captures["packets"].tolist() == [24]
    assert sorted(report.findings["code"]) == ["callback-unanswered", "dimse-failure",
                                               "suboperations-failed"]


@pytest.mark.parametrize("kind", ["pcapng", "pcap"])
def test_standard_input_cut_mid_packet_is_a_finding(kind: str, tmp_path: Path,
                                                     tshark_path: str) -> None:
    """A sender that died in the middle of a packet (an ssh session dropped): what came
    is analysed, and the pcapng stream's cut is said (dumpcap drops a pcap's last piece)."""
    capture = CAPTURES / "find_move.pcapng"
    if kind == "pcap":
        capture = tmp_path / "in.pcap"
        subprocess.run([str(Path(tshark_path).with_name("editcap")), "-F", "pcap",
                        str(CAPTURES / "find_move.pcapng"), str(capture)], check=True)
    data = capture.read_bytes()
    proc = subprocess.run([*CLI, "watch", "-"], input=data[:len(data) * 2 // 3],
                          capture_output=True, timeout=60, check=False)
    out = proc.stdout.decode()
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^standard input: \d+ packet\(s\) in [\d.]+ s of watching, 3 DICOM "
                     r"association", out, re.M), out
    if kind == "pcapng":
        assert "  warning: [capture-truncated] standard input was cut short in the middle of " \
            "a packet; everything before that point was analysed" in out


@pytest.mark.parametrize("fixture, fail_on, code", [
    ("qr_move_unanswered", "error", 3),  # its errors come from correlation
    ("commit_unanswered", "error", 0),   # a commitment never answered: a warning
    ("commit_unanswered", "warning", 3),
])
def test_fail_on_for_monitoring(fixture: str, fail_on: str, code: int) -> None:
    with (CAPTURES / f"{fixture}.pcapng").open("rb") as given:
        proc = subprocess.run([*CLI, "watch", "-", "-q", "--fail-on", fail_on], stdin=given,
                              capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "standard input: " in proc.stdout  # told in full either way


def test_tls_is_said_live_and_decrypted_into_out(tmp_path: Path) -> None:
    """A DICOM TLS connection (pynetdicom peers, TLS 1.2, their key log): the live view says
    it did not look into it; -o OUT with --tls-keylog decrypts the saved capture."""
    out = tmp_path / "OUT"
    with (CAPTURES / "tls_store_12.pcapng").open("rb") as given:
        proc = subprocess.run([*CLI, "watch", "-", "-o", str(out), "--tls-keylog",
                               str(CAPTURES / "tls_store_12.keys")], stdin=given,
                              capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "  note: [tls-not-decrypted] 1 TLS connection(s) in " in proc.stdout
    assert "to port(s) 2762 were not looked into" in proc.stdout
    report = tshark_dicom.load(out)
    a = report.associations
    assert len(a) == 1 and bool(a["tls_decrypted"].iloc[0]) and a["result"].iloc[0] == "accepted"
    assert (report.objects["command"] == "C-STORE-RQ").sum() >= 1


def test_a_refused_connection_is_told_as_it_happens() -> None:
    """An SCU that finds nothing listening where an SCP served a moment before (scp_down:
    a pynetdicom modality, its SCP stopped between two sends): each refused connection is a
    line when its RST came, between the associations, not only a finding at the end."""
    with (CAPTURES / "scp_down.pcapng").open("rb") as given:
        proc = subprocess.run([*CLI, "watch", "-"], stdin=given, capture_output=True,
                              text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    refused = [i for i, line in enumerate(lines) if re.match(
        r"\d\d:\d\d:\d\d\.\d{3}  127\.0\.0\.1:\d+ -> 127\.0\.0\.1:11138 \(DOWN-SCP\): "
        r"connection refused \(TCP RST\), 1 SYN$", line)]
    assert len(refused) == 2, proc.stdout
    end = next(i for i, line in enumerate(lines) if line.startswith("standard input: "))
    assert "MODALITY -> DOWN-SCP" in lines[0] and refused[-1] < end
    assert "[connection-refused]" in proc.stdout[proc.stdout.index("standard input: "):]


@pytest.mark.parametrize("fixture, code", [("qr_move_unanswered", "callback-unanswered"),
                                           ("qr_move_refused", "callback-refused")])
def test_a_c_moves_callback_is_told_when_the_c_move_ends(fixture: str, code: str,
                                                         tmp_path: Path, tshark_path: str
                                                         ) -> None:
    """A C-MOVE whose callback could not connect (nothing answered its SYNs; a destination
    that refused it): why the sub-operations failed is told as soon as the C-MOVE's
    association ended, while the capture goes on, not at its end (Ctrl-C). The stream
    stays open until the line came."""
    pcap = tmp_path / "in.pcap"
    subprocess.run([str(Path(tshark_path).with_name("editcap")), "-F", "pcap",
                    str(CAPTURES / f"{fixture}.pcapng"), str(pcap)], check=True)
    proc = subprocess.Popen([*CLI, "watch", "-", "--duration", "50"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(pcap.read_bytes())
        proc.stdin.flush()
        told = b""
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and b"[suboperations-failed]" not in told:
            ready, _, _ = select.select([proc.stdout], [], [], 1)
            if ready:
                told += os.read(proc.stdout.fileno(), 65536)
        assert proc.poll() is None  # the capture goes on: the stream is still open
        told_text = told.decode()
        assert "at the C-MOVE's end, MOVE-SCU -> QR-ARCHIVE, more findings:" in told_text, \
            told_text
        assert f"[{code}]" in told_text and "[suboperations-failed]" in told_text
    finally:
        proc.stdin.close()
        rest = proc.stdout.read().decode()
        proc.wait(timeout=60)
    assert proc.returncode == 0
    # the capture's end has nothing to add: the tables say what was told
    assert "at the capture's end" not in rest and "standard input: " in rest


def test_json_lines_for_a_log_collector(tmp_path: Path) -> None:
    """``--json``: every line of standard output is one JSON object; the association, the
    findings its C-MOVE's end added, the end and what -o wrote, in that order; what they
    say is what OUT's tables say."""
    out = tmp_path / "OUT"
    with (CAPTURES / "qr_move_refused.pcapng").open("rb") as given:
        proc = subprocess.run([*CLI, "watch", "-", "--json", "-o", str(out), "--fail-on",
                               "error"], stdin=given, capture_output=True, text=True,
                              timeout=120, check=False)
    assert proc.returncode == 3, proc.stderr  # --fail-on as without --json
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [e["event"] for e in events] == ["association", "findings", "end", "written"]
    first, later, end, written = events
    report = tshark_dicom.load(out)
    row = report.associations.iloc[0]
    for key in ("calling_ae", "called_ae", "result", "ending", "tcp_stream"):
        assert first[key] == row[key], key
    assert first["requestor"] == f"{row['requestor_ip']}:{row['requestor_port']}"
    assert first["operations"] == [{"command": "C-MOVE", "count": 1, "failed": 1,
                                    "warnings": 0}]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    assert pd.Timestamp(first["time"]) == pd.Timestamp(row["ended_at"]).floor("ms")
    assert (later["when"], later["revised"], later["tcp_stream"]) == ("retrieve-ended", False,
                                                                       first["tcp_stream"])
    said = Counter(f["code"] for e in (first, later, end) for f in e["findings"])
    assert said == Counter(report.findings["code"])
    assert {f["frame"] for f in first["findings"] + later["findings"]} <= set(
        report.findings["frame"].dropna().astype(int))
    assert (end["packets"], end["associations"], end["source"]) == (22, 1, "standard input")
    assert written == {"event": "written", "out": str(out), "saved": [f"{out}.pcap"]}


def test_json_refused_connections_and_what_the_end_said() -> None:
    with (CAPTURES / "scp_down.pcapng").open("rb") as given:
        proc = subprocess.run([*CLI, "watch", "-", "--json"], stdin=given,
                              capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    refused = [e for e in events if e["event"] == "connection-refused"]
    assert [(e["server"], e["called_ae"], e["syns"]) for e in refused] == \
        [("127.0.0.1:11138", "DOWN-SCP", 1)] * 2
    assert events[-1]["event"] == "end" and "connection-refused" in {
        f["code"] for f in events[-1]["findings"]}
    # findings the capture's end added (a callback still open when a C-MOVE ended)
    later = WatchedAssociation(3, "A", "B", "10.0.0.1:5000", "10.0.0.2:104", 10**18, None,
                               "accepted", "open", None, (), 0, (FindingRecord(
                                   None, 7, "error", "callback-missing", "x"),), later=True)
    assert later.as_json() | {"findings": None} == {
        "event": "findings", "time": None, "when": "capture-ended", "revised": False,
        "tcp_stream": 3, "calling_ae": "A", "called_ae": "B", "requestor": "10.0.0.1:5000",
        "acceptor": "10.0.0.2:104", "requested": "2001-09-09T01:46:40.000Z",
        "findings": None}
    assert later.as_json()["findings"] == [{"severity": "error", "code": "callback-missing",
                                            "summary": "x", "frame": 7}]


def _times(tshark_path: str, *files: Path) -> list[str]:
    """Each packet's time, as tshark reads the files one after the other."""
    out: list[str] = []
    for f in files:
        out += subprocess.run([tshark_path, "-r", str(f), "-T", "fields", "-e",
                               "frame.time_epoch"], capture_output=True, text=True,
                              check=True).stdout.split()
    return out


def test_a_ring_buffer_keeps_the_newest_files(tmp_path: Path, tshark_path: str) -> None:
    """``--file-size 2 --files 2`` over a 9 MB capture (large_multiframe, through ``watch
    -``): dumpcap's ring, two files of about 2 MB kept, the newest; together they are the
    last packets of the stream, in order, and analyse as one capture. The live view told
    every association all the same."""
    capture = CAPTURES / "large_multiframe.pcapng"
    ring = tmp_path / "ring"
    ring.mkdir()
    (ring / "night_00001_20260101000000.pcap").write_bytes(b"not ours")  # left alone
    with capture.open("rb") as given:
        proc = subprocess.run([*CLI, "watch", "-", "-w", str(ring / "night.pcap"),
                               "--file-size", "2", "--files", "2"], stdin=given,
                              capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    kept = sorted(p for p in ring.iterdir() if p.name != "night_00001_20260101000000.pcap")
    assert len(kept) == 2 and all(re.fullmatch(r"night_\d{5}_\d{14}\.pcap", p.name)
                                  for p in kept), kept
    assert int(kept[0].name[6:11]) > 2  # the older files were deleted
    assert 1_900_000 < kept[0].stat().st_size < 2_100_000
    assert (ring / "night_00001_20260101000000.pcap").read_bytes() == b"not ours"
    everything = _times(tshark_path, capture)
    tail = _times(tshark_path, *kept)
    assert 0 < len(tail) < len(everything) and everything[-len(tail):] == tail
    whole = tshark_dicom.analyze(capture).associations
    told = len(re.findall(r"^\d\d:\d\d:\d\d\.\d{3}  \S+ -> \S+ \(", proc.stdout, re.M))
    assert told == len(whole)  # all, as from the stream
    assert f"packets saved to {kept[0]} {kept[1]}: tshark-dicom analyze {kept[0]} {kept[1]}" \
        in proc.stdout
    # the newest files begin inside the association: found with the SCP's port
    report = tshark_dicom.analyze(kept, ports=[int(whole["acceptor_port"].iloc[-1])])
    assert report.captures["packets"].sum() == len(tail)
    assert len(report.associations) == 1  # the two files, stitched


def test_a_set_of_files_analysed_into_out(tmp_path: Path) -> None:
    """``--file-size`` without ``--files``: every file kept; ``-o OUT`` analyses the set as
    one capture, the same associations the live view told."""
    out = tmp_path / "OUT"
    with (CAPTURES / "large_multiframe.pcapng").open("rb") as given:
        proc = subprocess.run([*CLI, "watch", "-", "-o", str(out), "--file-size", "3",
                               "--json"], stdin=given, capture_output=True, text=True,
                              timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    written = events[-1]
    assert written["event"] == "written" and len(written["saved"]) == 4
    assert events[-2]["saved"] == written["saved"]
    report = tshark_dicom.load(out)
    assert sorted(report.captures["capture"]) == written["saved"]
    told = [e for e in events if e["event"] == "association"]
    assert sorted((e["calling_ae"], e["called_ae"], e["ending"]) for e in told) == sorted(
        zip(report.associations["calling_ae"], report.associations["called_ae"],
            report.associations["ending"], strict=True))
    assert "tcp_stream" in told[0]


def _syn_pcap(syns: list[tuple[float, int]]) -> tuple[bytes, list[bytes]]:
    """A pcap stream (Ethernet, IPv4, TCP) of SYNs from 192.0.2.5 to 192.0.2.9:104, each
    at (seconds, source port): a modality whose PACS host does not answer. Synthetic
    bytes: nothing on this machine answers nothing (loopback refuses)."""
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    records = []
    for t, sport in syns:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 1, 0x4000, 64, 6, 0,
                         bytes([192, 0, 2, 5]), bytes([192, 0, 2, 9]))
        tcp = struct.pack("!HHIIBBHHH", sport, 104, 1000, 0, 5 << 4, 0x02, 64240, 0, 0)
        frame = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + tcp
        sec = 1_800_000_000 + int(t)
        records.append(struct.pack("<IIII", sec, int(t % 1 * 1e6), len(frame), len(frame))
                       + frame)
    return header, records


def _told_while_open(first: bytes, rest: bytes, until: bytes | Callable[[bytes], bool] | None,
                     wait: float = 40, args: tuple[str, ...] = ()) -> tuple[str, str]:
    """``watch -`` given ``first``: what it told while the stream stayed open (until
    ``until`` came, or held for what was told, or ``wait`` seconds), then, given ``rest``
    and the stream's end, the rest of what it said."""
    done: Callable[[bytes], bool] = (lambda told: False) if until is None else \
        until if callable(until) else (lambda told: until in told)
    proc = subprocess.Popen([*CLI, "watch", "-", "--duration", "60", *args],
                            stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(first)
        proc.stdin.flush()
        told = b""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and not done(told):
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                told += os.read(proc.stdout.fileno(), 65536)
        assert proc.poll() is None  # the capture goes on
        proc.stdin.write(rest)
    finally:
        proc.stdin.close()
        after = proc.stdout.read().decode()
        proc.wait(timeout=60)
    assert proc.returncode == 0
    return told.decode(), after


def test_a_connection_never_answered_is_told_when_the_client_tries_again() -> None:
    """A modality sends SYNs to its PACS (3, over 3 s), nothing answers, and it tries again
    on a new connection: the first attempt is told as never answered right then, while
    the capture goes on (once: not again at the end); the retry, still unanswered when
    the capture ends, then."""
    header, records = _syn_pcap([(0, 40001), (1, 40001), (3, 40001), (10, 40002),
                                 (11, 40002)])
    told, rest = _told_while_open(header + b"".join(records[:4]), records[4],
                                  b"never answered")
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.000  192\.0\.2\.5:40001 -> 192\.0\.2\.9:104: "
                        r"connection never answered, 3 SYNs\n", told), told
    assert "40001" not in rest
    assert re.search(r"192\.0\.2\.5:40002 -> 192\.0\.2\.9:104: connection never answered, "
                     r"2 SYNs", rest), rest
    assert "[connection-unanswered] 192.0.2.5 tried to connect to 192.0.2.9:104, a DICOM " \
        "port, and 2 times the connection was never answered (5 SYNs without a reply)" in rest


def test_connections_opened_at_once_are_not_a_client_giving_up() -> None:
    """Two connections opened 0.2 s apart (an SCU with two associations), their SYNs not
    yet answered: nothing is told while the capture goes on; both at its end."""
    header, records = _syn_pcap([(0, 40001), (0.2, 40002), (1, 40001), (1.2, 40002)])
    told, rest = _told_while_open(header + b"".join(records), b"", None, wait=3)
    assert told == ""
    assert len(re.findall(r"connection never answered, 2 SYNs", rest)) == 2, rest


def test_a_heartbeat_for_a_monitoring_job(tmp_path: Path, tshark_path: str) -> None:
    """``--every 1``: a line each second of what the stretch saw, while the capture goes
    on, the quiet ones too (the watch is alive); the C-MOVE of qr_move_refused in the
    first, with its failed operation and the errors told for it."""
    pcap = tmp_path / "in.pcap"
    subprocess.run([str(Path(tshark_path).with_name("editcap")), "-F", "pcap",
                    str(CAPTURES / "qr_move_refused.pcapng"), str(pcap)], check=True)
    def quiet_after_busy(told: bytes) -> bool:
        busy = told.find(b'"event": "interval", "time": ')
        while busy >= 0 and b'"associations": 1,' not in told[busy:told.find(b"\n", busy)]:
            busy = told.find(b'"event": "interval", "time": ', busy + 1)
        return busy >= 0 and b'"associations": 0,' in told[busy:]

    told, rest = _told_while_open(pcap.read_bytes(), b"", quiet_after_busy, wait=30,
                                  args=("--every", "1", "--json"))
    events = [json.loads(line) for line in (told + rest).splitlines()]
    beats = [e for e in events if e["event"] == "interval"]
    busy = [e for e in beats if e["associations"]]
    assert len(busy) == 1 and busy[0]["associations"] == 1
    assert (busy[0]["operations"], busy[0]["failed"], busy[0]["errors"]) == (1, 1, 3)
    assert busy[0]["bytes"] == next(e["bytes"] for e in events if e["event"] == "association")
    assert beats[-1]["associations"] == 0 and beats[-1]["seconds"] == 1.0  # quiet, alive
    assert events[-1]["event"] == "end"
    proc = subprocess.run([*CLI, "watch", "-", "--every", "0"], input=b"", capture_output=True,
                          timeout=60, check=False)
    assert proc.returncode == 2
    assert proc.stderr.decode().strip() == "Error: --every 0: must be 1 second or more"


def test_a_heartbeat_line() -> None:
    from tshark_dicom.liveview import Interval, WatchedAttempt

    stretch = Interval(300.0)
    assert stretch.line(10**18).endswith("  the last 300 s: 0 associations, 0 operations; "
                                         "findings: none")
    error = FindingRecord(None, 3, "error", "association-rejected", "x")
    stretch.add(WatchedAssociation(1, "A", "B", "h:1", "h:2", 1, 2, "rejected", "rejected",
                                   None, (), 900, (error,)))
    stretch.add(WatchedAssociation(2, "A", "B", "h:1", "h:2", 1, 2, "accepted", "aborted",
                                   None, (("C-STORE", 3, 1, 0),), 2_000_000, ()))
    stretch.add(WatchedAssociation(2, "A", "B", "h:1", "h:2", 1, 2, "accepted", "aborted",
                                   None, (("C-STORE", 3, 1, 0),), 2_000_000, (error,),
                                   later=True))  # findings added later: not a second one
    stretch.add(WatchedAttempt(3, "h:1", "h:2", None, 1, "refused", 1))
    assert stretch.line(10**18).split("  ", 1)[1] == (
        "the last 300 s: 2 associations (1 rejected, 1 aborted), 3 operations (1 failed), "
        "2 MB, 1 connection never opened; findings: 2 errors")


def test_standard_input_that_stays_open_ends_at_its_duration(tmp_path: Path) -> None:
    """A sender that goes quiet but does not hang up: --duration ends the watch, and what
    came is analysed."""
    fifo = tmp_path / "in"
    os.mkfifo(fifo)
    data = (CAPTURES / "find_move.pcapng").read_bytes()

    def send() -> None:
        with fifo.open("wb") as w:
            w.write(data)
            w.flush()
            time.sleep(20)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    with fifo.open("rb") as given:
        started = time.monotonic()
        proc = subprocess.run([*CLI, "watch", "-", "--duration", "2"], stdin=given,
                              capture_output=True, text=True, timeout=60, check=False)
        took = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert "standard input: 84 packet(s)" in proc.stdout and "3 DICOM association(s)" in \
        proc.stdout
    assert took < 15  # not the sender's 20 s


def test_dumpcap_words() -> None:
    """dumpcap's stderr as it wrote it (4.0.17): its reason in one line, and its counts."""
    assert _tool_error("dumpcap", ["Capturing on 'nosuch0'", 'dumpcap: There is no device named '
                           '"nosuch0".', "(No such device exists)"], 1) == \
        'There is no device named "nosuch0" (No such device exists)'
    filter_error = ["dumpcap: Invalid capture filter \"tcp port x\" for interface 'lo'.", "",
                    "That string isn't a valid capture filter (unknown port 'x').",
                    "See the User's Guide for a description of the capture filter syntax."]
    assert _tool_error("dumpcap", filter_error, 1) == (
        "Invalid capture filter \"tcp port x\" for interface 'lo': That string isn't a valid "
        "capture filter (unknown port 'x').")
    assert _tool_error("dumpcap", [], -9) == "dumpcap was killed by SIGKILL"
    assert _tool_error("editcap", ["editcap: The standard input appears to have been cut "
                                   "short in the middle of a packet or other data."], 2) == \
        "The standard input appears to have been cut short in the middle of a packet or " \
        "other data"
    match = _COUNTS.search("Packets received/dropped on interface 'any': 1834/12 (pcap:0/"
                           "dumpcap:0/flushed:0/ps_ifdrop:0) (99.3%)")
    assert match is not None and (match["received"], match["dropped"]) == ("1834", "12")


def _fixture_truths() -> list[Path]:
    """Every bundled capture's truth but those with TLS to decrypt (a key log, or secrets
    embedded in the pcapng): the live view decrypts no TLS; the saved file does, through
    analyze."""
    return [t for t in truth_files() if "tls" not in json.loads(t.read_text())
            and not has_embedded_secrets(capture_for(t))]


@pytest.mark.parametrize("truth_path", _fixture_truths(), ids=lambda p: p.name.split(".")[0])
def test_live_view_says_what_the_tables_say(truth_path: Path, tshark_path: str,
                                            analysed: Any) -> None:
    """The live engine (a pcap stream analysed as it comes) on each fixture capture fed
    through editcap: every association told once, as the associations table has it; what
    it was told then, later, and at the end are the findings table, no more, no less."""
    truth = json.loads(truth_path.read_text())
    capture = capture_for(truth_path)
    ports = (truth["port_hint"],) if truth.get("port_hint") else ()
    name = capture.name
    tsk = find_tshark(tshark_path)
    heard: list[WatchedAssociation] = []
    teller = Teller(str(capture), False, heard.append)
    with raw_conversion(tsk, capture) as (out, _):
        result = analyze_stream(out, label=str(capture), tshark=tsk, ports=ports,
                                on_settled=teller.settled, on_association=teller.handed_on,
                                on_previewed=teller.previewed)
    report = tshark_dicom.analyze(capture, ports=ports)  # no objects, as the live view
    a = report.associations
    first = [w for w in heard if not w.later]
    assert sorted(w.stream for w in first) == sorted(a["tcp_stream"].tolist())  # each once
    assert not teller.said  # nothing remembered past the end
    final: dict[int, Counter[tuple[str, str]]] = {}
    for w in heard:  # as a reader of the live view puts it together
        found = Counter((f.code, f.summary) for f in w.findings)
        if w.later and not w.revised:
            final[w.stream].update(found)
        else:
            final[w.stream] = found
        if not w.later:
            row = a[a["tcp_stream"] == w.stream].iloc[0]
            assert (w.calling_ae, w.called_ae, w.result, w.ending) == tuple(
                None if pd.isna(row[c]) else row[c]
                for c in ("calling_ae", "called_ae", "result", "ending"))
    # the associations' findings as told, and the capture's own: the findings table
    got = sum(final.values(), Counter())
    got.update((f.code, f.summary) for _, f in result.findings)
    assert got == Counter(zip(report.findings["code"], report.findings["summary"],
                              strict=True))
    if name == "qr_move_partial.pcapng":  # a callback's findings, reworded once the C-MOVE ended
        assert any(w.revised and w.at == "the C-MOVE's end" for w in heard)
    # every fixture's C-MOVEs and C-GETs ended before its capture did: what correlation
    # says of them was told then, and the capture's end had nothing to change
    assert not [w for w in heard if w.later and w.at is None]

