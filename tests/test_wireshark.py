"""wireshark.py: the display filters and Decode As hints, as text, and against the real
tshark: each association's filter selects its own connection in Wireshark, and Wireshark
decodes it as DICOM by itself exactly where no Decode As is given."""

from __future__ import annotations

import json
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import tshark_dicom
from tshark_dicom import wireshark

from .conftest import CAPTURES, capture_for, tls_keylogs, truth_files

# -- as text -----------------------------------------------------------------------------


def test_filters_as_text() -> None:
    assert wireshark.stream_filter(3) == "tcp.stream eq 3"
    assert wireshark.stream_filter(pd.NA) is None
    assert wireshark.span_filter(3, 10, 20) == \
        "tcp.stream eq 3 && frame.number >= 10 && frame.number <= 20"
    assert wireshark.span_filter(3, 10, 10) == "tcp.stream eq 3 && frame.number == 10"
    assert wireshark.span_filter(3, None, 20) == "tcp.stream eq 3"
    assert wireshark.span_filter(None, 10, 20) == "frame.number >= 10 && frame.number <= 20"
    assert wireshark.frame_filter(57) == "frame.number == 57"
    assert wireshark.frame_filter(float("nan")) is None
    assert wireshark.finding_filter({"frame": 57}, {"tcp_stream": 2}) == \
        "frame.number == 57 || (tcp.stream eq 2 && frame.number >= 57)"
    assert wireshark.finding_filter({"frame": 57}) == "frame.number == 57"
    assert wireshark.finding_filter({"frame": pd.NA}, {"tcp_stream": 2}) == "tcp.stream eq 2"
    assert wireshark.finding_filter({"frame": None}) is None


@pytest.mark.parametrize(("row", "decode"), [
    ({"result": "unknown", "acceptor_port": 11112}, "tcp.port==11112,dicom"),
    ({"result": "unknown", "acceptor_port": 104}, None),  # the dissector's own port
    ({"result": "accepted", "acceptor_port": 11112}, None),  # its A-ASSOCIATE-RQ is there
    ({"result": "rejected", "acceptor_port": 4242}, None),
    ({"result": "no-response", "acceptor_port": 4242}, None),
    ({"result": "unknown", "acceptor_port": 2762, "tls": True}, None),
    ({"result": "unknown", "acceptor_port": pd.NA}, None),
])
def test_decode_as_only_where_wireshark_would_not_see_dicom(row: dict[str, Any],
                                                           decode: str | None) -> None:
    assert wireshark.decode_as(row) == decode


def test_hints_say_what_else_wireshark_needs() -> None:
    mid = {"tcp_stream": 0, "result": "unknown", "acceptor_port": 11128}
    assert wireshark.association_hint(mid) == (
        "tcp.stream eq 0; Wireshark shows it as plain TCP until it is decoded as DICOM: "
        "tshark -d tcp.port==11128,dicom, or Analyze > Decode As... (the capture starts "
        "after its A-ASSOCIATE-RQ)")
    plain = {"tcp_stream": 4, "result": "accepted", "acceptor_port": 11112, "tls": False}
    assert wireshark.association_hint(plain) == "tcp.stream eq 4"
    tls = {"tcp_stream": 1, "result": "accepted", "tls": True, "tls_decrypted": False}
    assert "needs the session keys" in str(wireshark.association_hint(tls))
    assert "decrypts it" in str(wireshark.association_hint({**tls, "tls_decrypted": True}))
    assert wireshark.association_hint({"tcp_stream": pd.NA, "result": "unknown"}) is None


def test_tshark_command_is_quoted_for_a_shell() -> None:
    command = wireshark.tshark_command("my cap's.pcapng", "tcp.stream eq 0",
                                       "tcp.port==11128,dicom")
    assert command == ("tshark -r 'my cap'\"'\"'s.pcapng' -d tcp.port==11128,dicom -Y "
                       "'tcp.stream eq 0'")
    assert wireshark.tshark_command("a.pcap", None) == "tshark -r a.pcap"


# -- against tshark ----------------------------------------------------------------------

def _packets(tshark_path: str, capture: Path, decodes: list[str]
             ) -> dict[int, dict[str, Any]]:
    """Per tcp.stream, as tshark sees it: its frames, its ports and whether its DICOM
    dissector decoded any of its packets."""
    argv = [tshark_path, "-n", "-r", str(capture)]
    for decode in decodes:
        argv += ["-d", decode]
    argv += ["-Y", "tcp", "-T", "fields", "-E", "occurrence=f", "-e", "frame.number",
             "-e", "tcp.stream", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e",
             "dicom.pdu.type"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    streams: dict[int, dict[str, Any]] = defaultdict(
        lambda: {"frames": set(), "ports": set(), "dicom": False, "dicom_frames": set()})
    for line in out.splitlines():
        frame, stream, sport, dport, pdu = (line.split("\t") + [""] * 5)[:5]
        s = streams[int(stream)]
        s["frames"].add(int(frame))
        s["ports"] |= {int(sport), int(dport)}
        if pdu:
            s["dicom"] = True
            s["dicom_frames"].add(int(frame))
    return streams


def check_against_tshark(report: tshark_dicom.Report, capture: Path, tshark_path: str
                         ) -> int:
    """Every association's filter selects its connection in tshark (its first and last
    frames, its two ports); a non-TLS one is decoded as DICOM by tshark as it is where
    `decode_as` gives nothing, and only with the Decode As where it gives one. Returns
    how many associations needed one."""
    rows = report.associations.to_dict("records")
    decodes = sorted({d for r in rows if (d := wireshark.decode_as(r)) is not None})
    plain = _packets(tshark_path, capture, [])
    decoded = _packets(tshark_path, capture, decodes) if decodes else plain
    for r in rows:
        what = f"{capture.name} #{r['assoc_id']}"
        assert wireshark.stream_filter(r["tcp_stream"]) == f"tcp.stream eq {r['tcp_stream']}"
        seen = plain[int(r["tcp_stream"])]
        assert {int(r["first_frame"]), int(r["last_frame"])} <= seen["frames"], what
        assert {int(r["requestor_port"]), int(r["acceptor_port"])} == seen["ports"], what
        if r.get("tls") is True:
            continue
        if wireshark.decode_as(r) is None:
            assert seen["dicom"], f"{what}: tshark did not decode it as DICOM by itself"
        else:
            assert not seen["dicom"], f"{what}: tshark decoded it without the Decode As"
            assert decoded[int(r["tcp_stream"])]["dicom"], \
                f"{what}: not decoded as DICOM even with -d {wireshark.decode_as(r)}"
    # a finding on a message, pointing at a frame of its connection (not a callback's):
    # from that frame on, Wireshark shows the message decoded by the frame that ends it
    # (the PDU that completes there), as finding_filter's docstring says
    by_key = {(r["assoc_id"], r["msg_index"]): r for r in report.messages.to_dict("records")}
    assocs = {r["assoc_id"]: r for r in rows}
    for f in report.findings.dropna(subset=["assoc_id", "msg_index", "frame"]).to_dict(
            "records"):
        a = assocs[f["assoc_id"]]
        start = int(f["frame"])
        assert wireshark.finding_filter(f, a) == (
            f"frame.number == {start} || (tcp.stream eq {a['tcp_stream']} && "
            f"frame.number >= {start})")
        if a.get("tls") is True or start not in plain[int(a["tcp_stream"])]["frames"]:
            continue
        message = by_key[(f["assoc_id"], f["msg_index"])]
        shown = decoded[int(a["tcp_stream"])]["dicom_frames"]
        assert any(start <= n <= int(message["last_frame"]) for n in shown), \
            (capture.name, f["code"], start, message["last_frame"])
    return sum(wireshark.decode_as(r) is not None for r in rows)


@pytest.mark.parametrize("truth_path", truth_files(), ids=lambda p: p.name.split(".")[0])
def test_filters_select_each_fixture_association_in_tshark(
        truth_path: Path, analysed: Any, tshark_path: str) -> None:
    truth = json.loads(truth_path.read_text())
    ports = (truth["port_hint"],) if truth.get("port_hint") else ()
    report, _ = analysed(capture_for(truth_path), ports, tls_keylogs(truth))
    needed = check_against_tshark(report, capture_for(truth_path), tshark_path)
    assert needed == (1 if truth["capture"] == "mid_association.pcapng" else 0)


def _cut_after_setup(capture: Path, first_frame: int, out: Path) -> Path:
    """The capture from ``first_frame`` on (editcap -r): what came before (the TCP
    handshake, the A-ASSOCIATE-RQ and -AC) is gone, as when a capture starts late."""
    subprocess.run(["editcap", "-r", str(capture), str(out), f"{first_frame}-999999999"],
                   check=True, capture_output=True)
    return out


@pytest.mark.parametrize(("name", "port", "needs"), [
    ("store_104.pcapng", 104, False),  # dcmtk storescu -> storescp on the dissector's port
    ("find_move.pcapng", None, True),  # dcmtk findscu/movescu -> dcmqrscp
    ("multi_store.pcapng", None, True),  # pynetdicom
])
def test_a_capture_cut_mid_association_gets_a_decode_as_only_off_port_104(
        name: str, port: int | None, needs: bool, tmp_path: Path, tshark_path: str) -> None:
    """Captures made here by cutting real-peer captures after their first association's
    set-up (not fixtures of their own): that association is found with --port, decoded by
    Wireshark by itself on port 104 only, elsewhere with the Decode As the hint names;
    the later associations, whole in the cut, need none."""
    whole = tshark_dicom.analyze(CAPTURES / name)
    acceptor = int(whole.associations["acceptor_port"].iloc[0])
    first_message = int(whole.messages["first_frame"].min())
    cut = _cut_after_setup(CAPTURES / name, first_message, tmp_path / f"cut_{name}")
    report = tshark_dicom.analyze(cut, ports=(port or acceptor,))
    late = int((report.associations["result"] == "unknown").sum())
    assert late >= 1
    assert check_against_tshark(report, cut, tshark_path) == (late if needs else 0)
    assert ("Analyze > Decode As" in report.diagnose()) == needs


def test_the_page_and_the_diagnosis_show_them(analysed: Any) -> None:
    """report.html: each association's filter and the Decode As it needs, each finding's
    frame with its filter; diagnose: the same filter line and the frames."""
    import html

    report, _ = analysed(CAPTURES / "mid_association.pcapng", (11128,))
    page = html.unescape(report.to_html())
    assert "in Wireshark: <code class='wsf' title='click to copy'>tcp.stream eq 0</code>; " \
        "Wireshark shows it as plain TCP until it is decoded as DICOM: tshark -d " \
        "tcp.port==11128,dicom" in page
    frames = report.findings["frame"].dropna().astype(int).tolist()
    assert frames
    table = page[page.index("id='findings-table'"):]
    table = table[:table.index("</table>")]
    for frame in frames:  # in the association's section and in the findings table
        wanted = (f"data-filter='frame.number == {frame} || (tcp.stream eq 0 && frame.number "
                  f">= {frame})'")
        assert page.count(wanted) >= 2 and wanted in table, frame
    ladder = page[page.index('class="tdp ladder"'):]
    for first, last in zip(report.operations["first_frame"], report.operations["last_frame"],
                           strict=True):  # each operation's tooltip says where to look
        assert f"frames {int(first)}\u2013{int(last)}</title>" in ladder
    text = report.diagnose()
    assert "    in Wireshark: tcp.stream eq 0; Wireshark shows it as plain TCP" in text
    assert all(f"(frame {frame})" in text for frame in frames)
