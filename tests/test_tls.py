"""DICOM over TLS: the tls_* captures of real peers (pynetdicom and dcmtk over Python's ssl
and OpenSSL), decrypted by the real tshark with their key logs, against the truth the peers
reported and against the same traffic in clear (tls_clear).

The generic checks (associations, contexts, messages, objects byte-exact against each
truth) run for these captures in test_fixtures.py, with the key log each truth names."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

import tshark_dicom
from tshark_dicom.cli import app
from tshark_dicom.errors import OptionsError
from tshark_dicom.tls import (
    DICOM_TLS_PORT,
    certificate_subject,
    check_tls_options,
    has_embedded_secrets,
    looks_like_tls,
    read_tls_output,
)

from .conftest import CAPTURES, tls_keylogs

TLS_TRUTHS = sorted(p for p in CAPTURES.glob("tls_*.truth.json")
                    if json.loads(p.read_text()).get("tls"))
WITH_KEYS = [p for p in TLS_TRUTHS if json.loads(p.read_text())["tls"]["handshake"] == "ok"]
IDS = [p.name.removesuffix(".truth.json") for p in WITH_KEYS]
#: the pynetdicom sessions that carry exactly the tls_clear traffic
SAME_AS_CLEAR = ["tls_store_13", "tls_store_12", "tls_embedded", "tls_port"]
VERSIONS = {"TLSv1.2": "TLS 1.2", "TLSv1.3": "TLS 1.3"}


def _truth(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CAPTURES / f"{name}.truth.json").read_text())
    return data


def _report(analysed: Any, name: str, keys: bool = True) -> tuple[Any, Path]:
    """The capture analysed once per session (conftest), with its key log or without."""
    truth = _truth(name)
    keylogs = tls_keylogs(truth) if keys else ()
    return analysed(CAPTURES / truth["capture"], (), keylogs)  # type: ignore[no-any-return]


def _datasets(name: str) -> int:
    """How many data sets the peers of a fixture sent (its truth)."""
    return sum(1 for a in _truth(name)["associations"] for m in a["messages"]
               if m["has_dataset"])


def _v(value: Any) -> Any:
    return None if value is None or value is pd.NA else value


def test_there_are_tls_fixtures() -> None:
    names = {p.name.removesuffix(".truth.json") for p in TLS_TRUTHS}
    assert {"tls_store_13", "tls_store_12", "tls_embedded", "tls_port", "tls_bad_ca",
            "tls_dcmtk", "tls_dcmtk_scp"} <= names
    versions = {_truth(n)["tls"]["version"] for n in names}
    assert {"TLSv1.2", "TLSv1.3"} <= versions


@pytest.mark.parametrize("truth_path", WITH_KEYS, ids=IDS)
def test_tls_columns_match_what_the_peers_negotiated(truth_path: Path, analysed: Any) -> None:
    name = truth_path.name.removesuffix(".truth.json")
    want = _truth(name)["tls"]
    report, _ = _report(analysed, name)
    (row,) = report.associations.to_dict("records")
    assert row["tls"] is True and row["tls_decrypted"] is True
    assert row["tls_version"] == VERSIONS[want["version"]]
    assert row["tls_cipher_suite_id"] == want["cipher_suite_id"]
    if want["version"] == "TLSv1.3":  # OpenSSL names TLS 1.3 suites as IANA does
        assert row["tls_cipher_suite"] == want["cipher_suite"]
    else:
        assert row["tls_cipher_suite"].startswith("TLS_ECDHE_RSA_WITH_AES_")
    assert _v(row["tls_server_name"]) == want["server_name"]
    assert row["tls_certificate_subject"] == want["certificate_subject"]
    assert _v(row["tls_alert"]) is None
    assert row["acceptor_port"] == want["port"]
    assert not (report.findings["code"].str.startswith("tls-")).any()


@pytest.mark.parametrize("name", SAME_AS_CLEAR)
def test_decrypted_tables_equal_the_clear_traffic(name: str, analysed: Any) -> None:
    tls, tls_out = _report(analysed, name)
    clear, clear_out = _report(analysed, "tls_clear")
    cols = ["msg_index", "sender", "context_id", "command", "message_id", "responds_to",
            "request_index", "sop_class_uid", "sop_instance_uid", "status", "status_category",
            "has_dataset", "dataset_bytes", "fragments"]
    pd.testing.assert_frame_equal(tls.messages[cols], clear.messages[cols])
    pc = ["context_id", "abstract_syntax", "result", "transfer_syntax"]
    pd.testing.assert_frame_equal(tls.presentation_contexts[pc], clear.presentation_contexts[pc])
    oc = ["msg_index", "command", "sop_instance_uid", "transfer_syntax", "dataset_bytes",
          "sha256", "complete"]
    pd.testing.assert_frame_equal(tls.objects[oc], clear.objects[oc])
    ac = ["calling_ae", "called_ae", "result", "ending", "max_pdu_requestor",
          "max_pdu_acceptor", "impl_class_uid_requestor", "impl_version_acceptor", "message_count",
          "object_count", "bytes_requestor", "bytes_acceptor", "pdus_requestor", "pdus_acceptor"]
    pd.testing.assert_frame_equal(tls.associations[ac], clear.associations[ac])
    qc = ["op_index", "command", "query_level", "matching_keys", "return_keys", "match_count"]
    pd.testing.assert_frame_equal(tls.queries[qc], clear.queries[qc])
    kc = ["op_index", "source", "response_number", "tag", "value"]
    pd.testing.assert_frame_equal(tls.query_keys[kc], clear.query_keys[kc])
    opc = ["op_index", "command", "scu", "message_id", "status_hex", "response_count"]
    pd.testing.assert_frame_equal(tls.operations[opc], clear.operations[opc])
    # the Part-10 files: the same bytes, file for file
    tls_files = sorted(tls.objects["path"].dropna(), key=lambda p: Path(p).name)
    clear_files = sorted(clear.objects["path"].dropna(), key=lambda p: Path(p).name)
    assert [Path(p).name for p in tls_files] == [Path(p).name for p in clear_files]
    assert len(tls_files) == 3
    for a, b in zip(tls_files, clear_files, strict=True):
        assert (tls_out / a).read_bytes() == (clear_out / b).read_bytes()
    # timing comes from the TLS connection's own TCP segments
    ops = tls.operations
    assert ops["total_ms"].notna().all() and (ops["request_bytes"] > 0).any()
    assert tls.associations["rtt_source"].iloc[0] == "handshake"


def test_without_keys_a_dicom_tls_port_stream_is_one_row_and_a_note(analysed: Any) -> None:
    report, _ = _report(analysed, "tls_store_13", keys=False)
    truth = _truth("tls_store_13")
    want = truth["associations"][0]
    (row,) = report.associations.to_dict("records")
    assert (row["requestor_ip"], row["requestor_port"]) == (want["requestor_ip"],
                                                            want["requestor_port"])
    assert (row["acceptor_ip"], row["acceptor_port"]) == (want["acceptor_ip"], DICOM_TLS_PORT)
    assert row["tls"] and row["tls_decrypted"] is False
    assert (row["tls_version"], row["tls_server_name"]) == ("TLS 1.3",
                                                            truth["tls"]["server_name"])
    assert _v(row["tls_certificate_subject"]) is None  # encrypted in TLS 1.3
    assert (row["result"], row["ending"], row["message_count"]) == ("unknown", "closed", 0)
    assert _v(row["calling_ae"]) is None
    assert report.messages.empty and report.objects.empty
    notes = report.findings[report.findings["code"] == "tls-keys-needed"]
    assert len(notes) == 1 and notes.iloc[0]["severity"] == "note"
    assert "--tls-keylog" in notes.iloc[0]["summary"]
    assert "TLS_AES_256_GCM_SHA384" in notes.iloc[0]["summary"]


def test_without_keys_tls_1_2_shows_the_certificate(analysed: Any) -> None:
    report, _ = _report(analysed, "tls_store_12", keys=False)
    (row,) = report.associations.to_dict("records")
    assert row["tls_certificate_subject"] == _truth("tls_store_12")["tls"]["certificate_subject"]
    assert row["tls_cipher_suite_id"] == _truth("tls_store_12")["tls"]["cipher_suite_id"]


def test_other_port_needs_tls_port_without_keys(analysed: Any) -> None:
    plain, _ = _report(analysed, "tls_port", keys=False)
    assert plain.associations.empty
    codes = set(plain.findings["code"])
    assert {"tls-not-decrypted", "no-dicom"} <= codes
    port = _truth("tls_port")["tls"]["port"]
    assert port != DICOM_TLS_PORT
    hinted = tshark_dicom.analyze(CAPTURES / "tls_port.pcapng", tls_ports=[port])
    (row,) = hinted.associations.to_dict("records")
    assert row["acceptor_port"] == port and row["tls_decrypted"] is False
    assert "tls-keys-needed" in set(hinted.findings["code"])


def test_keys_of_another_session_say_so() -> None:
    report = tshark_dicom.analyze(CAPTURES / "tls_store_13.pcapng",
                                  tls_keylogs=[CAPTURES / "tls_port.keys"])
    (note,) = report.findings[report.findings["code"] == "tls-keys-needed"]["summary"]
    assert "hold none for this session" in note
    both = tshark_dicom.analyze(CAPTURES / "tls_store_13.pcapng",
                                tls_keylogs=[CAPTURES / "tls_port.keys",
                                             CAPTURES / "tls_store_13.keys"])
    assert both.associations["tls_decrypted"].tolist() == [True]
    assert len(both.messages) == len(_truth("tls_store_13")["associations"][0]["messages"])


def test_embedded_secrets_need_no_option(analysed: Any) -> None:
    report, _ = _report(analysed, "tls_embedded")
    assert report.associations["tls_decrypted"].tolist() == [True]
    # Wireshark's converters refuse it (secrets before the interface): the raw engine
    # reads it another way (test_conversion.py), no longer the ek engine
    assert report.captures["engine"].tolist() == ["raw"]
    assert has_embedded_secrets(CAPTURES / "tls_embedded.pcapng")
    assert not has_embedded_secrets(CAPTURES / "tls_store_13.pcapng")
    assert not has_embedded_secrets(CAPTURES / "store_gzip.pcapng.gz")


def test_embedded_secrets_in_gzip(tmp_path: Path) -> None:
    gz = tmp_path / "tls_embedded.pcapng.gz"
    gz.write_bytes(gzip.compress((CAPTURES / "tls_embedded.pcapng").read_bytes()))
    assert has_embedded_secrets(gz)
    report = tshark_dicom.analyze(gz)
    assert report.associations["tls_decrypted"].tolist() == [True]
    assert report.objects["complete"].all()
    assert len(report.objects) == _datasets("tls_embedded")


def test_failed_handshake_is_an_error_finding(analysed: Any) -> None:
    report, _ = _report(analysed, "tls_bad_ca")
    truth = _truth("tls_bad_ca")["tls"]
    (row,) = report.associations.to_dict("records")
    assert (row["tls_alert"], row["tls_alert_sender"]) == (truth["alert"],
                                                           truth["alert_sender"])
    assert row["tls_version"] == VERSIONS[truth["version"]]
    assert row["tls_certificate_subject"] == truth["certificate_subject"]
    failed = report.findings[report.findings["code"] == "tls-handshake-failed"]
    assert len(failed) == 1
    f = failed.iloc[0]
    assert f["severity"] == "error" and f["assoc_id"] == 0
    assert "unknown_ca" in f["summary"] and truth["certificate_subject"] in f["summary"]
    assert "tls-keys-needed" not in set(report.findings["code"])
    text = report.diagnose()
    assert "TLS 1.2, not decrypted" in text and "tls-handshake-failed" in text


def test_tls_on_one_side_only_is_a_tls_mismatch(analysed: Any) -> None:
    """tls_mismatch: two SCUs in clear against TLS SCPs (pynetdicom on 2762, dcmtk storescp
    +tls on another port), and two SCUs with TLS against SCPs in clear (dcmtk storescp
    resets, pynetdicom answers with an A-ABORT). Each connection is one row with the finding
    that says which side wanted TLS; nothing is left in a tls-not-decrypted note."""
    truth = _truth("tls_mismatch")
    report, _ = _report(analysed, "tls_mismatch", keys=False)
    assocs = report.associations.set_index("acceptor_port")
    findings = report.findings
    assert "tls-not-decrypted" not in set(findings["code"])
    for case in truth["tls"]["mismatch"]:
        port = case["port"]
        row = assocs.loc[port]
        mine = findings[findings.assoc_id == row["assoc_id"]]
        codes = set(mine["code"])
        text = " ".join(mine["summary"])
        if case["tls_side"] == "acceptor":  # an A-ASSOCIATE-RQ in clear, answered by a reset
            assert row["result"] == "no-response" and row["calling_ae"] == "CLEAR-SCU"
            if port == DICOM_TLS_PORT:
                assert codes == {"tls-mismatch"}
                assert (f"CLEAR-SCU sent its A-ASSOCIATE-RQ in clear to TLS-SCP at "
                        f"127.0.0.1:{port}, a DICOM TLS port, and TLS-SCP closed the "
                        "connection (RST) without a byte") in text
            else:  # not known as a TLS port: the reset is one of two possible reasons
                assert codes == {"association-no-response"}
                assert "an SCP that expects TLS on this port does that" in text
        else:  # a ClientHello to an SCP in clear
            assert row["tls"] and not row["tls_decrypted"] and row["result"] == "unknown"
            assert codes == {"tls-mismatch"}
            assert "started TLS (a ClientHello, frame " in text
            if case["answer"] == "reset":
                assert "closed the connection (RST) without a ServerHello or a TLS alert" in text
            else:
                assert re.search(r"answered with \d+ bytes that are not TLS, and no "
                                 r"ServerHello", text)
    # the port storescp +tls listens on, named as a TLS port: the same reset is a mismatch
    other = next(c["port"] for c in truth["tls"]["mismatch"]
                 if c["tls_side"] == "acceptor" and c["port"] != DICOM_TLS_PORT)
    hinted = tshark_dicom.analyze(CAPTURES / "tls_mismatch.pcapng", tls_ports=[other])
    row = hinted.associations.set_index("acceptor_port").loc[other]
    f = hinted.findings[hinted.findings.assoc_id == row["assoc_id"]]
    assert set(f["code"]) == {"tls-mismatch"}


def test_ek_engine_decrypts_the_same(analysed: Any) -> None:
    raw, _ = _report(analysed, "tls_port")
    ek = tshark_dicom.analyze(CAPTURES / "tls_port.pcapng", engine="ek",
                              tls_keylogs=[CAPTURES / "tls_port.keys"])
    assert list(ek.captures["engine"]) == ["ek"]
    assert list(ek.objects["sha256"]) == list(raw.objects["sha256"])
    assert list(ek.messages["command"]) == list(raw.messages["command"])


def test_tls_and_clear_in_one_capture(tmp_path: Path) -> None:
    """Association ids follow first packets, TLS or not (mergecap interleaves by time)."""
    merged = tmp_path / "merged.pcapng"
    subprocess.run(["mergecap", "-w", str(merged), str(CAPTURES / "echo.pcapng"),
                    str(CAPTURES / "tls_store_13.pcapng"), str(CAPTURES / "tls_bad_ca.pcapng")],
                   check=True, capture_output=True)
    report = tshark_dicom.analyze(merged, tls_keylogs=[CAPTURES / "tls_store_13.keys"])
    a = report.associations.sort_values("first_frame")
    assert list(a["assoc_id"]) == list(range(3))
    by_port = {r.acceptor_port: r for r in a.itertuples()}
    assert by_port[11112].tls is False and by_port[11112].message_count == 2
    tls_rows = a[a["tls"]]
    assert sorted(tls_rows["tls_decrypted"].tolist()) == [False, True]
    assert list(report.findings["code"]).count("tls-handshake-failed") == 1


# -- the command line ---------------------------------------------------------------------
runner = CliRunner()


def test_cli_tls_keylog(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["analyze", str(CAPTURES / "tls_store_12.pcapng"), "-o",
                                 str(out), "--tls-keylog", str(CAPTURES / "tls_store_12.keys")])
    assert result.exit_code == 0, result.output
    n = _datasets("tls_store_12")
    assert f"{n} data sets: {n} complete, 3 written as Part-10 files" in result.output
    assoc = pd.read_parquet(out / "tables" / "associations")
    assert assoc["tls_version"].tolist() == ["TLS 1.2"]
    assert assoc["tls_decrypted"].tolist() == [True]
    files = list((out / "objects").rglob("*.dcm"))
    assert len(files) == 3


def test_cli_tls_port_and_diagnose() -> None:
    port = str(_truth("tls_port")["tls"]["port"])
    result = runner.invoke(app, ["diagnose", str(CAPTURES / "tls_port.pcapng"), "--tls-port",
                                 port])
    assert result.exit_code == 0, result.output
    assert f":{port}), unknown, closed, TLS 1.2, not decrypted" in result.output
    assert "[tls-keys-needed]" in result.output
    result = runner.invoke(app, ["diagnose", str(CAPTURES / "tls_port.pcapng"),
                                 "--tls-keylog", str(CAPTURES / "tls_port.keys")])
    assert result.exit_code == 0, result.output
    assert "TLS-SCU -> TLS-SCP" in result.output and "released, TLS 1.2\n" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--tls-keylog", "/nonexistent/keys.log"],
     "Error: --tls-keylog /nonexistent/keys.log: no such file"),
    (["--tls-keylog", str(CAPTURES / "tls_store_13.truth.json")], "not a TLS key log"),
    (["--tls-keylog", str(CAPTURES)], "a folder, not a key log file"),
    (["--tls-port", "70000"], "Error: --tls-port 70000: not a TCP port (1-65535)"),
])
def test_cli_bad_tls_options(args: list[str], message: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["analyze", str(CAPTURES / "tls_store_13.pcapng"), "-o",
                                 str(tmp_path / "o"), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "o" / "tables").exists()


def test_help_mentions_the_options() -> None:
    for command in ("analyze", "diagnose"):
        text = runner.invoke(app, [command, "--help"]).output
        assert "--tls-keylog" in text and "--tls-port" in text


# -- units ----------------------------------------------------------------------------------
def test_looks_like_tls() -> None:
    # a TLS 1.0-framed ClientHello record header (RFC 8446 5.1) and the start of its body
    assert looks_like_tls(bytes.fromhex("16030100f5010000f10303"))
    assert not looks_like_tls(bytes.fromhex("01000000025300010000"))  # A-ASSOCIATE-RQ
    assert not looks_like_tls(bytes.fromhex("170303001a"))  # application data, too short
    assert not looks_like_tls(b"GET / HTTP/1.1\r\n")


def test_check_tls_options(tmp_path: Path) -> None:
    keys = tmp_path / "k.log"
    keys.write_text("# comment\nCLIENT_RANDOM " + "ab" * 32 + " " + "cd" * 48 + "\n")
    opts = check_tls_options([keys], [11701, 2762, 11701])
    assert opts.keylogs == (keys.absolute(),) and opts.ports == (2762, 11701)
    assert opts.dicom_ports == frozenset({2762, 11701})
    with pytest.raises(OptionsError, match="--tls-port 0"):
        check_tls_options([], [0])


@pytest.mark.parametrize("subject", [
    "/O=tshark-dicom fixtures/CN=dicom-scp.test",
    "/C=DE/O=Klinik, Radiologie/OU=PACS+RIS/CN=scp.example",
])
def test_certificate_subject_as_openssl_prints_it(subject: str, tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make a certificate")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(tmp_path / "k"), "-out", str(tmp_path / "c.der"), "-outform", "DER",
                    "-days", "1", "-subj", subject], check=True, capture_output=True)
    want = subprocess.run(["openssl", "x509", "-inform", "DER", "-in", str(tmp_path / "c.der"),
                           "-noout", "-subject", "-nameopt", "RFC2253"], check=True,
                          capture_output=True, text=True).stdout.strip().removeprefix("subject=")
    assert certificate_subject((tmp_path / "c.der").read_bytes()) == want


def test_read_tls_output_from_saved_bytes() -> None:
    """tshark 4.0's output of the TLS pass: packet lines, then follow blocks (peer 0 is
    whoever tshark saw first; an undecrypted stream's block has no packets)."""
    fields = ["7", "1796433482.001174153", "0", "127.0.0.1", "127.0.0.1", "", "", "2762",
              "36401", "100", "200", "1401", "0x0018", "512", "", "2,11", "0x0303", "0x0304",
              "0x1302", "TLS_AES_256_GCM_SHA384", "", "", "", "", "22,22"]
    text = ("\t".join(fields) + "\n"
            "peers:\n  - peer: 0\n    host: 127.0.0.1\n    port: 2762\n"
            "  - peer: 1\n    host: \n    port: 0\n"
            "packets:\n"
            "  - packet: 10\n    peer: 1\n    timestamp: 1796433482.002621532\n"
            "    data: !!binary |\n      AQAAAA==\n"
            "  - packet: 13\n    peer: 0\n    timestamp: 1796433482.045678605\n"
            "    data: !!binary |\n      AgAA\n      AAE=\n"
            "peers:\n  - peer: 0\n    host: \n    port: 0\n  - peer: 1\n    host: \n"
            "    port: 0\npackets:\n").encode()
    import io

    facts: dict[int, Any] = {}
    items = list(read_tls_output(io.BytesIO(text), facts))
    assert len(items) == 3
    pkt = items[0].packet  # type: ignore[union-attr]
    assert (pkt.frame, pkt.stream, pkt.sport, pkt.dport, pkt.tcp_len, pkt.flags) == (
        7, 0, 2762, 36401, 1401, 0x18)
    f = facts[0]
    assert (f.version_text, f.cipher_suite, f.cipher_suite_id) == (
        "TLS 1.3", "TLS_AES_256_GCM_SHA384", 0x1302)
    # blocks are read lazily, one after the other: the list above drained them
    assert items[1].peer0 == ("127.0.0.1", 2762)  # type: ignore[union-attr]
    assert items[2].peer0 is None  # type: ignore[union-attr]
    again = read_tls_output(io.BytesIO(text), {})
    next(again)  # the packet line
    block = next(again)
    chunks = [(c.frame, c.peer, c.time_ns, c.data) for c in block.chunks]  # type: ignore[union-attr]
    assert chunks == [(10, 1, 1796433482002621532, b"\x01\x00\x00\x00"),
                      (13, 0, 1796433482045678605, b"\x02\x00\x00\x00\x01")]


@pytest.mark.parametrize("piece", [1, 5, 7, 64, 1 << 20])
def test_follow_blocks_read_in_any_pieces(piece: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real output of the TLS pass, read in pieces of every size: markers that straddle
    two reads are still found, and the decrypted bytes are the same."""
    import io

    from tshark_dicom import tls
    from tshark_dicom.tshark import find_tshark

    argv = tls.tls_argv(find_tshark(), CAPTURES / "tls_store_13.pcapng",
                        [CAPTURES / "tls_store_13.keys"], [0])
    text = subprocess.run(argv, capture_output=True, check=True).stdout

    def decrypted() -> list[tuple[int, int, bytes]]:
        out = []
        for item in tls.read_tls_output(io.BytesIO(text), {}):
            if isinstance(item, tls.FollowBlock):
                out += [(c.frame, c.peer, c.data) for c in item.chunks]
        return out

    whole = decrypted()
    monkeypatch.setattr(tls._Buffered, "_READ", piece)
    assert decrypted() == whole
    assert len(whole) > 10
    assert whole[0][2][:2] == b"\x01\x00"  # the A-ASSOCIATE-RQ opens the plaintext


def test_a_split_set_says_tls_is_not_decrypted(tmp_path: Path) -> None:
    """The files of a split set are read as one capture, but tshark decrypts a TLS session
    only within one file: a note says so and what to do."""
    parts = tmp_path / "set"
    parts.mkdir()
    subprocess.run(["editcap", "-c", "15", str(CAPTURES / "tls_store_13.pcapng"),
                    str(parts / "tls.pcapng")], check=True, capture_output=True)
    assert len(list(parts.iterdir())) >= 3
    report = tshark_dicom.analyze(parts, tls_keylogs=[CAPTURES / "tls_store_13.keys"])
    notes = report.findings[report.findings["code"] == "tls-not-decrypted"]
    assert len(notes) == 1 and "mergecap -a" in notes.iloc[0]["summary"]
    merged = tmp_path / "merged.pcapng"
    subprocess.run(["mergecap", "-a", "-w", str(merged), *sorted(map(str, parts.iterdir()))],
                   check=True, capture_output=True)
    whole = tshark_dicom.analyze(merged, tls_keylogs=[CAPTURES / "tls_store_13.keys"])
    assert whole.objects["complete"].all()
    assert len(whole.objects) == _datasets("tls_store_13")


def test_cross_check_leaves_tls_associations_alone() -> None:
    """Wireshark's DICOM dissector does not see decrypted TLS: no mismatch is claimed."""
    report = tshark_dicom.analyze(CAPTURES / "tls_store_13.pcapng", cross_check=True,
                                  tls_keylogs=[CAPTURES / "tls_store_13.keys"])
    codes = list(report.findings["code"])
    assert "crosscheck-mismatch" not in codes
    (summary,) = report.findings[report.findings["code"] == "crosscheck-summary"]["summary"]
    assert "1 over TLS not compared" in summary
