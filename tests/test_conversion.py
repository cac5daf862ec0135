"""The raw engine's conversion (tshark.raw_conversion) on captures Wireshark's converters
refuse: a pcapng whose TLS secrets come before its interface, as `editcap --inject-secrets`
writes it, goes the second way (editcap told the link type capinfos names) or, without
capinfos, the third (tshark's pcapng writer piped into editcap): the same bytes, and every
table the capture gives with its key log beside it; a capture pcap cannot hold (interfaces
of two link types) still goes to the ek engine. Real captures made from the fixtures with
Wireshark's editcap and mergecap; the real tshark reads them."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest

import tshark_dicom
from tshark_dicom.packets import read_raw_packets
from tshark_dicom.tshark import (
    Tshark,
    file_encapsulation,
    find_tshark,
    has_embedded_secrets,
    raw_conversion,
)

CAPTURES = Path(__file__).resolve().parent.parent / "fixtures" / "captures"
KEYS = CAPTURES / "tls_store_12.keys"
TABLES = ("associations", "presentation_contexts", "messages", "objects", "operations",
          "queries", "query_keys", "throughput", "connection_attempts")


def _site(tmp_path: Path) -> Path:
    """Clear C-FIND/C-MOVE traffic and a TLS 1.2 store in one capture (mergecap)."""
    (tmp_path / "plain").mkdir()
    merged = tmp_path / "plain" / "site.pcapng"
    subprocess.run(["mergecap", "-w", str(merged), str(CAPTURES / "qr_move_ok.pcapng"),
                    str(CAPTURES / "tls_store_12.pcapng")], check=True)
    return merged


def _inject(capture: Path, out: Path) -> Path:
    subprocess.run(["editcap", "--inject-secrets", f"tls,{KEYS}", str(capture), str(out)],
                   check=True)
    assert has_embedded_secrets(out)
    return out


def _same_tables(a: tshark_dicom.Report, b: tshark_dicom.Report) -> None:
    for table in TABLES:
        x, y = a.table(table), b.table(table)
        if "capture" in x.columns:
            x, y = x.drop(columns="capture"), y.drop(columns="capture")
        assert x.astype(str).equals(y.astype(str)), table
    assert sorted(a.findings["code"]) == sorted(b.findings["code"])


def test_secrets_before_the_interface_are_read_by_the_raw_engine(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    site = _site(tmp_path)
    (tmp_path / "keys").mkdir()  # the same name: object paths hold the capture's name
    embedded = _inject(site, tmp_path / "keys" / "site.pcapng")
    with caplog.at_level(logging.DEBUG, logger="tshark_dicom.tshark"):
        got = tshark_dicom.analyze(embedded, objects_dir=tmp_path / "e" / "objects")
    assert any("given to editcap" in r.getMessage() for r in caplog.records)
    want = tshark_dicom.analyze(site, tls_keylogs=[KEYS], objects_dir=tmp_path / "k" / "objects")
    assert got.captures["engine"].tolist() == want.captures["engine"].tolist() == ["raw"]
    assert got.captures["packets"].tolist() == want.captures["packets"].tolist()
    assert got.associations["tls_decrypted"].fillna(False).sum() == 1
    assert len(got.objects) > 1 and got.objects["complete"].all()
    _same_tables(got, want)


def test_a_capture_without_embedded_secrets_converts_the_first_way(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="tshark_dicom.tshark"):
        report = tshark_dicom.analyze(CAPTURES / "qr_move_ok.pcapng")
    assert report.captures["engine"].tolist() == ["raw"]
    assert not any("pcapng writer" in r.getMessage() for r in caplog.records)


def _without_capinfos(tmp_path: Path) -> Tshark:
    """This machine's tshark and editcap, beside each other in a folder without capinfos."""
    real = find_tshark()
    assert real.editcap is not None
    folder = tmp_path / "suite"
    if not folder.exists():
        folder.mkdir()
        (folder / "tshark").symlink_to(real.path)
        (folder / "editcap").symlink_to(real.editcap)
    return Tshark(str(folder / "tshark"))


def test_secrets_first_converts_with_the_link_type_capinfos_names(tmp_path: Path) -> None:
    """The second way (editcap -T, the link type capinfos names) gives the bytes of the
    third (tshark's pcapng writer into editcap), on an Ethernet and a raw-IP capture, and
    the same tables as the capture without secrets; without capinfos the third is taken."""
    raw_ip = tmp_path / "echo-rawip.pcapng"  # Ethernet headers cut off, link type raw IP
    subprocess.run(["editcap", "-C", "14", "-T", "rawip", str(CAPTURES / "echo.pcapng"),
                    str(raw_ip)], check=True)
    tsk, alone = find_tshark(), _without_capinfos(tmp_path)
    for plain, link in ((CAPTURES / "qr_move_ok.pcapng", "ether"), (raw_ip, "rawip")):
        embedded = _inject(plain, tmp_path / f"keys-{plain.name}")
        assert file_encapsulation(tsk, embedded) == link
        assert file_encapsulation(alone, embedded) is None
        with raw_conversion(tsk, embedded) as (out, run):
            second = out.read()
        assert run.argv[:3] == [tsk.editcap, "-T", link]
        with raw_conversion(alone, embedded) as (out, run):
            third = out.read()
        assert Path(run.argv[0]).name == "editcap" and "-T" not in run.argv
        assert second == third and len(second) > 1000, plain.name
        got, want = tshark_dicom.analyze(embedded), tshark_dicom.analyze(plain)
        assert got.captures["engine"].tolist() == ["raw"]
        assert len(got.associations) == len(want.associations) > 0
        _same_tables(got, want)


def test_the_second_way_without_editcap_gives_the_same_packets(tmp_path: Path) -> None:
    """Where editcap is not beside tshark, tshark converts tshark's pcapng from a pipe."""
    embedded = _inject(CAPTURES / "qr_move_ok.pcapng", tmp_path / "keys.pcapng")
    with_editcap = find_tshark()
    assert with_editcap.editcap is not None
    alone = Tshark(with_editcap.path)
    alone.editcap = None
    packets = []
    for tsk in (with_editcap, alone):
        with raw_conversion(tsk, embedded) as (out, _):
            packets.append([(p.frame, p.time_ns, p.stream, p.seq, p.payload)
                            for p in read_raw_packets(out)])
    with raw_conversion(with_editcap, CAPTURES / "qr_move_ok.pcapng") as (out, _):
        plain = [(p.frame, p.time_ns, p.stream, p.seq, p.payload) for p in read_raw_packets(out)]
    assert packets[0] == packets[1] == plain and plain


def test_embedded_secrets_in_a_capture_cut_short(tmp_path: Path) -> None:
    """tshark reads the capture in the pipeline: its "cut short" is still a finding, and
    every whole packet before it is analysed."""
    embedded = _inject(CAPTURES / "qr_move_ok.pcapng", tmp_path / "keys.pcapng")
    data = embedded.read_bytes()
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(data[:len(data) - 40])  # into the last packet's block
    whole = tshark_dicom.analyze(embedded)
    report = tshark_dicom.analyze(cut)
    assert report.captures["engine"].tolist() == ["raw"]
    assert report.captures["packets"].iloc[0] == whole.captures["packets"].iloc[0] - 1
    assert "capture-truncated" in set(report.findings["code"])
    assert len(report.associations) == len(whole.associations)


def test_interfaces_of_two_link_types_go_to_the_ek_engine(tmp_path: Path) -> None:
    """pcap holds one link type: a capture with Ethernet and raw-IP interfaces is read by
    the ek engine, with its secrets before the interfaces or without. With them, the second
    way fails too: editcap refuses at once, and tshark, feeding it more than the pipe holds
    (2.9 MB), dies of the closed pipe, which is not taken for the cause."""
    raw_ip = tmp_path / "echo-rawip.pcapng"  # Ethernet headers cut off, link type raw IP
    subprocess.run(["editcap", "-C", "14", "-T", "rawip", str(CAPTURES / "echo.pcapng"),
                    str(raw_ip)], check=True)
    two = tmp_path / "two.pcapng"
    subprocess.run(["mergecap", "-w", str(two), str(CAPTURES / "commit_large.pcapng"),
                    str(raw_ip)], check=True)
    assert two.stat().st_size > 2 << 20
    want = (len(tshark_dicom.analyze(CAPTURES / "commit_large.pcapng").associations)
            + len(tshark_dicom.analyze(CAPTURES / "echo.pcapng").associations))
    embedded = _inject(two, tmp_path / "two-keys.pcapng")
    assert file_encapsulation(find_tshark(), embedded) is None  # capinfos: per-packet
    for capture in (two, embedded):
        report = tshark_dicom.analyze(capture)
        assert report.captures["engine"].tolist() == ["ek"], capture.name
        assert len(report.associations) == want, capture.name
