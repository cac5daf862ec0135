"""Hostile and broken input on real traffic (issue 10): auxiliary tshark runs that fail,
environment errors, captures cut in their header or by a snapshot length, AE titles with
control characters, and values that attack whoever reads the results (spreadsheets,
terminals, browsers, file systems).

Captures are the real-peer fixtures (``hostile_values``, ``rq_segments``, ``store_104``...)
or derived from them with editcap/mergecap; tshark is the real one (a wrapper script around
it where a test needs it to die)."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import tshark_dicom
from tshark_dicom.safe import csv_cell, csv_uncell, visible
from tshark_dicom.tshark import file_encapsulation, find_tshark

from .conftest import CAPTURES, ROOT

PY = sys.executable
HOSTILE = CAPTURES / "hostile_values.pcapng"
SEGMENTS = CAPTURES / "rq_segments.pcapng"


def truth(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CAPTURES / f"{name}.truth.json").read_text())
    return data


def cli(*args: str | Path, cwd: Path | None = None, user: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    """The real program (python -m tshark_dicom), as another user if asked."""
    argv = [PY, "-m", "tshark_dicom", *map(str, args)]
    if user is not None:
        argv = ["setpriv", f"--reuid={user}", "--regid=nogroup", "--clear-groups", *argv]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd or ROOT, env=env,
                          timeout=300, check=False)


def frames(capture: Path) -> list[tuple[int, str, int, int, bytes]]:
    """(frame, epoch time, source port, tcp.len, payload) of every packet."""
    out = subprocess.run(["tshark", "-r", str(capture), "--disable-protocol", "dicom", "-T",
                          "fields", "-e", "frame.number", "-e", "frame.time_epoch", "-e",
                          "tcp.srcport", "-e", "tcp.len", "-e", "tcp.payload"],
                         capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        f, t, port, n, payload = line.split("\t")
        rows.append((int(f), t, int(port), int(n or 0), bytes.fromhex(payload)))
    return rows


def rq_segments() -> list[int]:
    """Frames of rq_segments' A-ASSOCIATE-RQ: the requestor's first data segments, until
    its 9.6 KB are there."""
    rows = frames(SEGMENTS)
    requestor = rows[0][2]
    first = next(r[4] for r in rows if r[3])
    assert first[0] == 0x01  # an A-ASSOCIATE-RQ
    need = int.from_bytes(first[2:6], "big") + 6
    out, got = [], 0
    for f, _, port, n, _ in rows:
        if port == requestor and n and got < need:
            out.append(f)
            got += n
    assert len(out) >= 3, out
    return out


# -- auxiliary tshark runs ----------------------------------------------------------------


def _dropped(tmp_path: Path) -> Path:
    middle = rq_segments()[2]
    out = tmp_path / "rq_dropped.pcapng"
    subprocess.run(["editcap", str(SEGMENTS), str(out), str(middle)], check=True)
    return out


def _swapped(tmp_path: Path) -> Path:
    """Two segments of the A-ASSOCIATE-RQ in swapped order: the first moved after the
    second (editcap -r to take it out with its time shifted, mergecap to merge by time)."""
    a, b = rq_segments()[:2]
    times = {f: t for f, t, _, _, _ in frames(SEGMENTS)}
    shift = f"{float(times[b]) - float(times[a]) + 0.000001:.6f}"
    rest, moved = tmp_path / "rest.pcapng", tmp_path / "moved.pcapng"
    subprocess.run(["editcap", str(SEGMENTS), str(rest), str(a)], check=True)
    subprocess.run(["editcap", "-r", "-t", shift, str(SEGMENTS), str(moved), str(a)],
                   check=True)
    out = tmp_path / "rq_swapped.pcapng"
    subprocess.run(["mergecap", "-w", str(out), str(rest), str(moved)], check=True)
    return out


def _wireshark_prints(capture: Path) -> int:
    return len(subprocess.run(
        ["tshark", "-r", str(capture), "-n", "--enable-heuristic", "dicom_tcp", "-Y", "dicom",
         "-T", "ek", "-e", "frame.number"], capture_output=True, check=False).stdout)


@pytest.mark.parametrize("make", [_dropped, _swapped], ids=["dropped", "swapped"])
def test_crosscheck_with_nothing_from_wireshark_is_a_finding(tmp_path: Path, make: Any) -> None:
    capture = make(tmp_path)
    assert _wireshark_prints(capture) == 0  # the situation of the issue: no output at all
    res = cli("analyze", capture, "-o", tmp_path / "out", "--cross-check")
    assert res.returncode == 0, res.stderr
    assert "internal error" not in res.stderr
    report = tshark_dicom.load(tmp_path / "out")
    want = truth("rq_segments")["associations"][0]
    (row,) = report.associations.to_dict("records")
    assert (row["calling_ae"], row["called_ae"], row["result"]) == (
        want["calling_ae"], want["called_ae"], "accepted")
    # complete tables: the C-STORE and its object are whole, whatever the RQ lost
    assert report.messages["command"].tolist() == ["C-STORE-RQ", "C-STORE-RSP"]
    assert report.objects["complete"].tolist() == [True]
    assert report.objects["sha256"].tolist() == [
        m["dataset_sha256"] for m in want["messages"] if m["command"] == "C-STORE-RQ"]
    codes = report.findings["code"].tolist()
    assert "crosscheck-summary" in codes
    mismatch = report.findings[report.findings["code"] == "crosscheck-mismatch"]
    assert mismatch["summary"].str.contains("did not recognise this stream").any()


def _wrapper(tmp_path: Path, match: str) -> Path:
    """A --tshark that is the real tshark, except that the run whose arguments contain
    ``match`` is killed (SIGKILL) after 3000 bytes of output."""
    path = tmp_path / "bin" / "tshark"
    path.parent.mkdir()
    path.write_text("#!/bin/sh\ncase \"$*\" in\n"
                    f"  *{match}*) {shutil.which('tshark')} \"$@\" | head -c 3000; "
                    "kill -9 $$ ;;\n"
                    f"  *) exec {shutil.which('tshark')} \"$@\" ;;\nesac\n")
    path.chmod(0o755)
    return path


def test_tshark_killed_under_the_ek_engine_is_tshark_failed(tmp_path: Path) -> None:
    tsk = _wrapper(tmp_path, "tcp.payload")
    res = cli("analyze", CAPTURES / "store_statuses.pcapng", "-o", tmp_path / "out",
              "--engine", "ek", "--tshark", tsk)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        f"Error: {CAPTURES / 'store_statuses.pcapng'}: tshark failed: killed by SIGKILL"]


def test_crosscheck_killed_is_a_finding_and_the_run_stands(tmp_path: Path) -> None:
    tsk = _wrapper(tmp_path, "dicom.pdu.type")
    res = cli("analyze", CAPTURES / "store_statuses.pcapng", "-o", tmp_path / "out",
              "--cross-check", "--tshark", tsk)
    assert res.returncode == 0, res.stderr
    report = tshark_dicom.load(tmp_path / "out")
    assert len(report.messages) == 10 and report.objects["complete"].all()
    failed = report.findings[report.findings["code"] == "crosscheck-failed"]
    assert failed["summary"].str.contains("tshark failed: killed by SIGKILL").all()
    assert len(failed) == 1 and "crosscheck-summary" not in report.findings["code"].tolist()


# -- environment errors and captures cut in their header ----------------------------------


def test_disk_full_is_one_line_exit_4(tmp_path: Path) -> None:
    """A 100 KB tmpfs (in a mount namespace of its own, gone with the command) fills up
    while the objects and tables are written."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    script = (f"mount -t tmpfs -o size=100k tmpfs {mnt} && exec {PY} -m tshark_dicom "
              f"analyze {CAPTURES / 'store_statuses.pcapng'} -o {mnt / 'out'} --format both")
    res = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True,
                         text=True, cwd=ROOT, timeout=300, check=False,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert res.returncode == 4, res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith(f"Error: {mnt / 'out'}") and "No space left on device" in line
    assert "internal error" not in line


@pytest.mark.usefixtures("checkout_reachable")
def test_output_folder_not_writable_as_another_user_exit_4(tmp_path: Path) -> None:
    capture = tmp_path / "in.pcapng"
    shutil.copy(CAPTURES / "echo.pcapng", capture)
    tmp_path.chmod(0o755)
    capture.chmod(0o644)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o755)  # root's: nobody may not write in it
    res = cli("analyze", capture, "-o", locked / "out", user="nobody")
    assert res.returncode == 4, res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith(f"Error: {locked / 'out'}: ") and line.endswith("Permission denied")


@pytest.mark.usefixtures("checkout_reachable")
def test_earlier_results_not_writable_as_another_user_exit_4(tmp_path: Path) -> None:
    """OUT is nobody's, but the earlier run's objects folder in it is root's."""
    capture = tmp_path / "in.pcapng"
    shutil.copy(CAPTURES / "store_statuses.pcapng", capture)
    tmp_path.chmod(0o755)
    capture.chmod(0o644)
    out = tmp_path / "out"
    assert cli("analyze", capture, "-o", out, "-q").returncode == 0
    for path in [out, *out.rglob("*")]:
        if path.parts[-2:-1] != ("objects",) and path.name != "objects":
            shutil.chown(path, "nobody")
    res = cli("analyze", capture, "-o", out, user="nobody")
    assert res.returncode == 4, res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("Error: ") and "Permission denied" in line
    assert str(out) in line and "internal error" not in line


@pytest.mark.parametrize("keep", [4, 10, 60])
def test_pcapng_cut_in_its_first_bytes_says_so(tmp_path: Path, keep: int) -> None:
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes((CAPTURES / "echo.pcapng").read_bytes()[:keep])
    res = cli("analyze", cut, "-o", tmp_path / "out")
    assert res.returncode == 1
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith(f"Error: {cut}: a pcapng file cut short in its first {keep} bytes")
    assert "mime" not in line and "json" not in line


def test_pcap_cut_in_its_header_says_so(tmp_path: Path) -> None:
    pcap = tmp_path / "whole.pcap"
    subprocess.run(["editcap", "-F", "pcap", str(CAPTURES / "echo.pcapng"), str(pcap)],
                   check=True)
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(pcap.read_bytes()[:16])
    res = cli("analyze", cut, "-o", tmp_path / "out")
    assert res.returncode == 1
    assert "a pcap file cut short in its first 16 bytes" in res.stderr


def test_captures_named_like_options_are_read_as_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A capture named ``-x.pcapng`` (pathlib makes ``./-x.pcapng`` that, and so does a scan
    of the folder ``.``) reaches editcap, capinfos and captype as a file, not an option
    ("editcap failed: invalid option -- 'x'" before): by the raw engine, by the ek engine
    (capinfos counts its packets) and with its TLS secrets before its interface (capinfos
    names its link type)."""
    folder = tmp_path / "caps"
    folder.mkdir()
    shutil.copy(CAPTURES / "qr_move_ok.pcapng", folder / "-x.pcapng")
    shutil.copy(CAPTURES / "tls_embedded.pcapng", folder / "-tls.pcapng")
    want = {name: len(tshark_dicom.analyze(CAPTURES / name).associations)
            for name in ("qr_move_ok.pcapng", "tls_embedded.pcapng")}
    runs = {"raw": (["./-x.pcapng"], [want["qr_move_ok.pcapng"]]),
            "ek": (["./-x.pcapng", "--engine", "ek"], [want["qr_move_ok.pcapng"]]),
            "secrets": (["./-tls.pcapng"], [want["tls_embedded.pcapng"]]),
            "folder": (["."], sorted(want.values()))}
    for name, (args, associations) in runs.items():
        out = tmp_path / f"out-{name}"
        res = cli("analyze", *args, "-o", out, "-q", cwd=folder)
        assert res.returncode == 0, (name, res.stderr)
        report = tshark_dicom.load(out)
        assert report.captures["status"].tolist() == ["ok"] * len(associations), name
        assert report.captures["packets"].gt(0).all(), name
        per_capture = report.associations.groupby("capture").size()
        assert sorted(per_capture.tolist()) == associations, name
    assert tshark_dicom.load(tmp_path / "out-secrets").associations["tls_decrypted"].all()
    monkeypatch.chdir(folder)  # the secrets' way: capinfos named the link type
    assert file_encapsulation(find_tshark(), Path("-tls.pcapng")) == "ether"


# -- decoding what was sent -----------------------------------------------------------------


def test_control_characters_in_ae_titles_decoded_and_flagged() -> None:
    report = tshark_dicom.analyze(HOSTILE)
    want = truth("hostile_values")["associations"]
    assert report.associations["calling_ae"].tolist() == [a["calling_ae"] for a in want]
    assert report.associations["called_ae"].tolist() == [a["called_ae"] for a in want]
    contexts = report.presentation_contexts
    for aid, a in enumerate(want):
        mine = contexts[contexts["assoc_id"] == aid]
        assert mine["abstract_syntax"].tolist() == [c["abstract_syntax"] for c in a["contexts"]]
        assert mine["result"].tolist() == [c["result"] for c in a["contexts"]]
    codes = report.findings["code"].tolist()
    assert "malformed-pdu" not in codes
    flagged = report.findings[report.findings["code"] == "invalid-ae-title"]
    assert flagged["assoc_id"].tolist() == [1, 2]
    assert "'X\\r\\n  error: FAKE'" in flagged["summary"].iloc[0]


def test_snapshot_length_200_keeps_ae_titles_and_whole_items(tmp_path: Path) -> None:
    cut = tmp_path / "store_104_s200.pcapng"
    subprocess.run(["editcap", "-s", "200", str(CAPTURES / "store_104.pcapng"), str(cut)],
                   check=True)
    report = tshark_dicom.analyze(cut)
    (want,) = truth("store_104")["associations"]
    (row,) = report.associations.to_dict("records")
    assert (row["calling_ae"], row["called_ae"], row["result"]) == (
        want["calling_ae"], want["called_ae"], "accepted")
    incomplete = report.findings[report.findings["code"] == "pdu-incomplete"]
    assert incomplete["summary"].str.startswith("A-ASSOCIATE-RQ from the requestor").any()
    assert incomplete["summary"].str.contains("cut by the capture's snapshot length").all()
    # the A-ASSOCIATE-AC's first contexts fit in 134 bytes: they are kept, as sent
    ctx = report.presentation_contexts
    results = {c["context_id"]: c["result"] for c in want["contexts"]}
    assert len(ctx) >= 1
    for c in ctx.to_dict("records"):
        assert c["result"] == results[c["context_id"]]


# -- safe outputs -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["=1+1", "+SUM(1)", "-2", "@x", "\tx", "\rx", "'=x", "''+y"])
def test_csv_cell_neutralises_and_is_undone(value: str) -> None:
    cell = csv_cell(value)
    assert isinstance(cell, str) and cell.startswith("'") and cell[1:] == value
    assert csv_uncell(cell) == value


@pytest.mark.parametrize("value", ["abc", "'abc", "", "1.2.3", 5, None, 2.5])
def test_csv_cell_leaves_the_rest(value: object) -> None:
    assert csv_cell(value) == value and csv_uncell(value) == value


def test_visible_leaves_no_control_character() -> None:
    text = visible("A\r\n\x1b[2J\x00\x9b\u202e\x7fB")
    assert text == "A\\r\\n\\x1b[2J\\x00\\x9b\\u202e\\x7fB"
    assert not re.search("[\x00-\x1f\x7f-\x9f]", text)


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_hostile_values_end_to_end(tmp_path: Path) -> None:
    """Done-when (issue 10): real traffic with hostile values through the CLI: CSV
    neutralised, Parquet exact, HTML inert, terminal escaped, the associations decoded,
    nothing written outside OUT."""
    spec = truth("hostile_values")
    hostile = spec["hostile"]
    work = tmp_path / "work"
    out = work / "deep" / "out"
    out.parent.mkdir(parents=True)
    capture = work / "hostile.pcapng"
    shutil.copy(HOSTILE, capture)
    before = _tree(tmp_path)
    res = cli("analyze", capture, "-o", out, "--format", "both", cwd=work / "deep")
    assert res.returncode == 0, res.stderr
    # nothing outside OUT (and the objects' names are ours, never the UID's path)
    assert {p for p in _tree(tmp_path) - before if not p.startswith("work/deep/out")} == set()
    names = [p.name for p in (out / "objects").rglob("*") if p.is_file()]
    assert names and all(re.fullmatch(r"[0-9A-Za-z._-]+", n) for n in names)
    assert all(".." not in n for n in names)
    # Parquet: exact
    report = tshark_dicom.load(out)
    ae = report.associations["calling_ae"].tolist()
    assert ae == [a["calling_ae"] for a in spec["associations"]]
    assert set(report.associations["called_ae"]) == {hostile["ae_titles"][3]}
    comments = report.messages["error_comment"].dropna().tolist()
    assert comments == hostile["error_comments"]
    assert hostile["sop_instance_uids"][0] in report.messages["sop_instance_uid"].tolist()
    # CSV: every text cell that starts a formula has its apostrophe; read back, exact
    raw = pd.read_csv(next((out / "csv" / "associations").glob("*.csv")), dtype=str,
                      keep_default_na=False)
    assert raw["calling_ae"].tolist()[0] == "'" + hostile["ae_titles"][0]
    messages_csv = pd.read_csv(next((out / "csv" / "messages").glob("*.csv")), dtype=str,
                               keep_default_na=False)
    assert "'" + hostile["error_comments"][1] in messages_csv["error_comment"].tolist()
    for part in (out / "csv").rglob("*.csv"):
        for cell in pd.read_csv(part, dtype=str, keep_default_na=False).to_numpy().ravel():
            assert not str(cell).startswith(("=", "+", "@", "\t", "\r")), (part, cell)
    numbers = pd.read_csv(next((out / "csv" / "messages").glob("*.csv")), dtype=str)
    assert not numbers["status"].dropna().str.startswith("'").any()  # numbers stay numbers
    # HTML: no raw control character, no tag from the traffic
    page = (out / "report.html").read_text()
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]", page)
    # one script, the report's own (sorting and filtering); none from the traffic
    assert page.count("<script") == 1 and "<script>alert" not in page
    assert "<svg/onload" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # terminal: escaped, no fake line, no ESC; the same for diagnose and summary.txt
    diag = cli("diagnose", capture)
    assert diag.returncode == 0, diag.stderr
    for text in (res.stdout, diag.stdout, (out / "summary.txt").read_text()):
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", text)
        assert not any(line.lstrip().startswith("error: FAKE") for line in text.splitlines())
    assert "X\\r\\n  error: FAKE" in diag.stdout
    assert "\\x1b[2J\\x1b]0;PWN\\x07" in diag.stdout


def test_report_html_of_a_nul_in_a_value(tmp_path: Path) -> None:
    report = tshark_dicom.analyze(HOSTILE)
    page = report.to_html()
    assert "\x00" not in page and "+SUM(1+1)\\x00\\x1b[31mred" in page


def test_files_written_stay_private_enough_to_read(tmp_path: Path) -> None:
    """The objects written for the hostile UID are regular files inside OUT/objects."""
    out = tmp_path / "out"
    assert cli("analyze", HOSTILE, "-o", out, "-q").returncode == 0
    for p in (out / "objects").rglob("*"):
        assert p.resolve().is_relative_to(out.resolve())
        assert stat.S_ISREG(p.lstat().st_mode) or p.is_dir()
