"""Integration: every real-peer capture in fixtures/captures, through the real tshark,
compared table by table with what the peers reported (the .truth.json beside it)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pydicom
import pytest
from pydicom.filereader import _read_file_meta_info, read_preamble

from .conftest import capture_for, tls_keylogs, truth_files

TRUTHS = truth_files()
IDS = [t.name.removesuffix(".truth.json") for t in TRUTHS]

ASSOC_FIELDS = (
    "requestor_ip", "requestor_port", "acceptor_ip", "acceptor_port", "calling_ae", "called_ae",
    "result", "ending", "reject_result", "reject_source", "reject_reason", "abort_source",
    "abort_reason", "max_pdu_requestor", "max_pdu_acceptor", "impl_class_uid_requestor",
    "impl_version_requestor", "impl_class_uid_acceptor", "impl_version_acceptor",
)
MESSAGE_FIELDS = (
    "sender", "context_id", "command", "message_id", "responds_to", "sop_class_uid",
    "sop_instance_uid", "status", "priority", "move_destination", "error_comment",
    "remaining", "completed", "failed", "warning",
)


def _value(v: Any) -> Any:
    if v is None or v is pd.NA or (isinstance(v, float) and pd.isna(v)):
        return None
    if hasattr(v, "item"):
        return v.item()
    return v


def _load(truth_path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(truth_path.read_text())
    return data


def test_there_are_fixtures() -> None:
    assert len(TRUTHS) >= 9, "fixtures/captures lost its captures: run make fixtures"


def check_associations(truth: dict[str, Any], report: Any) -> None:
    assocs = report.associations
    assert len(assocs) == len(truth["associations"])
    for aid, want in enumerate(truth["associations"]):
        row = assocs.iloc[aid]
        assert row["assoc_id"] == aid
        got = {f: _value(row[f]) for f in ASSOC_FIELDS if f in want}
        expected = {f: want[f] for f in ASSOC_FIELDS if f in want}
        assert got == expected, f"association {aid}"
        if want["result"] == "rejected":
            assert isinstance(row["reject_text"], str) and row["reject_text"]
        if want["ending"] == "aborted":
            assert isinstance(row["abort_text"], str) and row["abort_text"]
        assert row["message_count"] == len(want["messages"])


def check_contexts(truth: dict[str, Any], report: Any) -> None:
    pcs = report.presentation_contexts
    for aid, want in enumerate(truth["associations"]):
        rows = pcs[pcs["assoc_id"] == aid]
        got = [
            {
                "context_id": _value(r.context_id),
                "abstract_syntax": _value(r.abstract_syntax),
                "proposed_transfer_syntaxes": list(r.proposed_transfer_syntaxes),
                "result": _value(r.result),
                "transfer_syntax": _value(r.transfer_syntax),
            }
            for r in rows.itertuples()
        ]
        expected = [
            {k: c[k] for k in ("context_id", "abstract_syntax", "proposed_transfer_syntaxes",
                               "result", "transfer_syntax")}
            for c in want["contexts"]
        ]
        assert got == expected, f"association {aid}"
        for r in rows.itertuples():
            if _value(r.result) is not None:
                assert isinstance(r.result_text, str)
            if _value(r.abstract_syntax):
                assert isinstance(r.abstract_syntax_name, str)


def check_messages(truth: dict[str, Any], report: Any) -> None:
    msgs = report.messages
    for aid, want in enumerate(truth["associations"]):
        rows = msgs[msgs["assoc_id"] == aid].sort_values("msg_index")
        got = [{f: _value(getattr(r, f)) for f in MESSAGE_FIELDS} for r in rows.itertuples()]
        expected = [{f: m.get(f) for f in MESSAGE_FIELDS} for m in want["messages"]]
        assert got == expected, f"association {aid}"
        # every response points at its request
        for r in rows.itertuples():
            if _value(r.responds_to) is not None and r.command.endswith("-RSP"):
                req = rows[rows["msg_index"] == r.request_index].iloc[0]
                assert req["message_id"] == r.responds_to
                assert isinstance(r.status_category, str) and isinstance(r.status_text, str)


def check_objects(truth: dict[str, Any], report: Any, out: Path) -> None:
    objs, msgs = report.objects, report.messages
    for aid, want in enumerate(truth["associations"]):
        rows = msgs[msgs["assoc_id"] == aid].sort_values("msg_index").reset_index(drop=True)
        for i, m in enumerate(want["messages"]):
            if not m.get("has_dataset") and m.get("dataset_sha256") is None:
                continue
            if m.get("cut_by_abort"):  # the receiver aborted while it was being sent
                continue
            msg_index = rows.iloc[i]["msg_index"]
            obj = objs[(objs["assoc_id"] == aid) & (objs["msg_index"] == msg_index)]
            assert len(obj) == 1, f"no object row for message {i} of association {aid}"
            o = obj.iloc[0]
            if m.get("complete") is False:
                assert not o["complete"] and isinstance(o["problem"], str)
                assert o["path"] is pd.NA
                continue
            assert o["complete"], o["problem"]
            assert o["sha256"] == m["dataset_sha256"]
            assert o["dataset_bytes"] == m["dataset_bytes"]
            if m["command"] == "C-STORE-RQ":
                path = out / o["path"]
                ds = pydicom.dcmread(path)
                meta = ds.file_meta
                # the command's UIDs exactly as they travelled (raw: a hostile value may hold
                # a backslash, which pydicom would split into two values)
                raw_iuid = meta.get_item(0x00020003).value
                assert raw_iuid.decode("ascii").rstrip("\0 ") == m["sop_instance_uid"]
                assert meta.MediaStorageSOPClassUID == m["sop_class_uid"]
                assert path.resolve().is_relative_to(out.resolve())
                assert meta.TransferSyntaxUID == o["transfer_syntax"]
                assert meta.TransferSyntaxUID.is_valid
                check_identity(o, ds)
                raw = path.read_bytes()
                f = io.BytesIO(raw)
                read_preamble(f, False)
                _read_file_meta_info(f)
                assert hashlib.sha256(raw[f.tell():]).hexdigest() == m["dataset_sha256"]


#: The objects table's columns of which exam, study and series, and their attributes
IDENTITY = (("study_instance_uid", "StudyInstanceUID"),
            ("series_instance_uid", "SeriesInstanceUID"), ("modality", "Modality"),
            ("accession_number", "AccessionNumber"))


def check_identity(row: Any, ds: pydicom.Dataset) -> None:
    """A stored object's row says which exam, study and series it is of as pydicom reads
    the whole file (the row is read from the data set's first 64 KiB as it streamed)."""
    for column, keyword in IDENTITY:
        read = ds.get(keyword)
        value = read if read is None or isinstance(read, str) else str(read)
        expected = value.strip("\0 ") or None if value is not None else None
        got = None if row[column] is pd.NA else row[column]
        assert got == expected, (column, row["sop_instance_uid"])


def _analyse(truth_path: Path, analysed: Any) -> tuple[dict[str, Any], Any, Path]:
    truth = _load(truth_path)
    ports = (truth["port_hint"],) if truth.get("port_hint") else ()
    report, out = analysed(capture_for(truth_path), ports, tls_keylogs(truth))
    return truth, report, out


@pytest.mark.parametrize("truth_path", TRUTHS, ids=IDS)
def test_associations_match_truth(truth_path: Path, analysed: Any) -> None:
    truth, report, _ = _analyse(truth_path, analysed)
    check_associations(truth, report)


@pytest.mark.parametrize("truth_path", TRUTHS, ids=IDS)
def test_presentation_contexts_match_truth(truth_path: Path, analysed: Any) -> None:
    truth, report, _ = _analyse(truth_path, analysed)
    check_contexts(truth, report)


@pytest.mark.parametrize("truth_path", TRUTHS, ids=IDS)
def test_messages_match_truth(truth_path: Path, analysed: Any) -> None:
    truth, report, _ = _analyse(truth_path, analysed)
    check_messages(truth, report)


@pytest.mark.parametrize("truth_path", TRUTHS, ids=IDS)
def test_objects_are_byte_exact(truth_path: Path, analysed: Any) -> None:
    truth, report, out = _analyse(truth_path, analysed)
    check_objects(truth, report, out)


@pytest.mark.parametrize("truth_path", TRUTHS, ids=IDS)
def test_an_incomplete_object_is_named_by_its_message_id(truth_path: Path,
                                                         analysed: Any) -> None:
    """object-incomplete says which message as the other findings do, by its Message ID
    (it gave the message's index: "C-STORE-RQ 0" for the capture's first, Message ID 1)."""
    _, report, _ = _analyse(truth_path, analysed)
    msgs = report.messages
    for f in report.findings[report.findings.code == "object-incomplete"].itertuples():
        (m,) = msgs[(msgs.assoc_id == f.assoc_id) & (msgs.msg_index == f.msg_index)
                    ].itertuples()
        assert str(f.summary).startswith(f"data set of {m.command} {m.message_id} (")


def test_lossy_decodes_like_clean(analysed: Any) -> None:
    from .conftest import CAPTURES

    lossy, _ = analysed(CAPTURES / "lossy.pcapng")
    clean, _ = analysed(CAPTURES / "lossy_clean.pcapng")
    cols = ["command", "message_id", "responds_to", "sop_instance_uid", "status"]
    assert lossy.messages[cols].equals(clean.messages[cols])
    assert list(lossy.objects["sha256"]) == list(clean.objects["sha256"])
    assert lossy.objects["complete"].all()
    pc = ["context_id", "abstract_syntax", "result", "transfer_syntax"]
    assert lossy.presentation_contexts[pc].equals(clean.presentation_contexts[pc])
    assert not (lossy.findings["code"] == "capture-gap").any()


def test_tls_through_loss_and_reordering_decodes_like_clear(analysed: Any) -> None:
    """tls_lossy: the lossy traffic over TLS 1.3. tshark reassembles the TLS records (our
    streams module does not see them), so a segment captured after its successor must not
    cost the rest of the connection (TLS 1.3's per-record nonces)."""
    from .conftest import CAPTURES

    tls, _ = analysed(CAPTURES / "tls_lossy.pcapng", (), (CAPTURES / "tls_lossy.keys",))
    clean, _ = analysed(CAPTURES / "lossy_clean.pcapng")
    assert tls.associations["tls_decrypted"].all()
    assert sum(tls.associations[f"out_of_order_{r}"].sum() for r in ("requestor", "acceptor")) \
        + tls.associations["retransmitted_bytes_requestor"].sum() > 0
    assert list(tls.objects["sha256"]) == list(clean.objects["sha256"])
    assert tls.objects["complete"].all()
    cols = ["command", "message_id", "responds_to", "sop_instance_uid", "status"]
    assert tls.messages[cols].equals(clean.messages[cols])
    assert set(tls.findings["code"]) <= {"retransmissions"}


def test_an_abort_after_rejected_contexts_points_at_them(analysed: Any) -> None:
    """dcmsend aborts when a file has no accepted context (its RLE Lossless refused): the
    abort finding says the requestor had nothing outstanding and which contexts were
    rejected; an abort with nothing rejected and nothing outstanding (abort.pcapng's first)
    says no more than before, one from an SCP inside its C-STORE handler (its second) names
    the request it never answered (tests/test_abort_lead.py)."""
    from .conftest import CAPTURES

    report, _ = analysed(CAPTURES / "abort_after_rejection.pcapng")
    f = report.findings
    assert sorted(f["code"]) == ["association-aborted", "context-rejected"]
    text = f[f["code"] == "association-aborted"]["summary"].iloc[0]
    assert text == (
        "the requestor (DCMSEND) aborted the association (A-ABORT source DICOM UL "
        "service-user, reason not specified), with no request of its own outstanding, after "
        "UNCOMP-SCP rejected 1 of its 2 presentation contexts (1 offering only RLE Lossless: "
        "transfer syntaxes not supported): a requestor left with objects it can send on no "
        "accepted context (of a rejected SOP class, or in a transfer syntax the acceptor "
        "refused that it cannot convert) gives up this way; see the context-rejected finding")
    assert len(report.messages) == 2 and len(report.objects) == 1
    report, _ = analysed(CAPTURES / "abort.pcapng")
    aborts = report.findings[report.findings["code"] == "association-aborted"]["summary"]
    assert aborts.iloc[0].endswith("(A-ABORT source DICOM UL service-user, reason not "
                                   "specified)")
    assert "reason not specified), " in aborts.iloc[1] and \
        "after receiving C-STORE-RQ 1 from ABORT-SCU, which it never answered" in aborts.iloc[1]


def test_an_scp_that_went_down_is_named_by_the_refused_connections(analysed: Any) -> None:
    """Connections refused at an address and port that accepted an association earlier in
    the capture: one connection-refused error naming the SCP and how often; failed
    connections to other ports (qr_move_refused's callback has its own finding) are not."""
    from .conftest import CAPTURES

    report, _ = analysed(CAPTURES / "scp_down.pcapng")
    f = report.findings
    assert f["code"].tolist() == ["connection-refused"]
    assert f["summary"].iloc[0] == (
        "127.0.0.1 tried to connect to DOWN-SCP at 127.0.0.1:11138, where DICOM associations "
        "were accepted in this capture, and the connection was refused (TCP RST) 2 times: "
        "nothing listened there then; check that the SCP is running and listens on that port")
    attempts = report.connection_attempts
    assert attempts["outcome"].tolist() == ["refused", "refused"]
    assert attempts["server_port"].tolist() == [11138, 11138]
    report, _ = analysed(CAPTURES / "qr_move_refused.pcapng")
    assert "connection-refused" not in set(report.findings["code"])
    assert "callback-refused" in set(report.findings["code"])


def test_a_capture_of_connections_that_never_opened_says_so(tmp_path: Path) -> None:
    """scp_down cut (editcap) to the refused retries alone: no association, so the port is a
    DICOM one only when given with --port; then the refusals are the finding and the
    no-dicom note points at them instead of at --port and tunnels."""
    import subprocess

    import tshark_dicom

    from .conftest import CAPTURES

    whole = tshark_dicom.analyze(CAPTURES / "scp_down.pcapng")
    first = int(whole.connection_attempts["frame"].min())
    cut = tmp_path / "refused_only.pcapng"
    subprocess.run(["editcap", "-r", str(CAPTURES / "scp_down.pcapng"), str(cut),
                    f"{first}-{first + 1000}"], check=True)  # editcap 4.0 wants both ends
    plain = tshark_dicom.analyze(cut)
    assert plain.findings["code"].tolist() == ["no-dicom"]
    assert "use --port" in plain.findings["summary"].iloc[0]
    told = tshark_dicom.analyze(cut, ports=[11138])
    f = told.findings
    assert f["code"].tolist() == ["connection-refused", "no-dicom"]
    assert f["summary"].iloc[0].startswith("127.0.0.1 tried to connect to 127.0.0.1:11138, a "
                                           "DICOM port, and the connection was refused")
    assert f["summary"].iloc[1].endswith(
        "the connections to DICOM ports never opened (see connection-refused or "
        "connection-unanswered)")
