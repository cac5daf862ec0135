"""--cross-check: Wireshark's own DICOM dissector against ours, on real captures."""

from __future__ import annotations

import pytest

import tshark_dicom
from tshark_dicom.association import Association
from tshark_dicom.crosscheck import WiresharkView, _uid, compare

from .conftest import CAPTURES

AGREE = ["echo", "store_104", "store_11112", "reject_called_ae", "contexts_rejected", "abort",
         "ipv6", "multi_store", "large_multiframe", "concurrent", "find_move", "lossy_clean"]


@pytest.mark.parametrize("name", AGREE)
def test_wireshark_agrees_on_clean_captures(name: str) -> None:
    cap = next(CAPTURES.glob(f"{name}.pcapng*"))
    report = tshark_dicom.analyze(cap, cross_check=True)
    f = report.findings
    assert not (f["code"] == "crosscheck-mismatch").any(), list(f["summary"])
    summary = f[f["code"] == "crosscheck-summary"]["summary"].tolist()
    n = len(report.associations)
    assert summary == [f"cross-check with Wireshark's DICOM dissector on {cap}: {n} of {n} "
                       "associations agree on every PDU count and association field"]


def test_disagreement_on_reordered_capture_names_the_reason() -> None:
    report = tshark_dicom.analyze(CAPTURES / "lossy.pcapng", cross_check=True)
    mismatches = report.findings[report.findings["code"] == "crosscheck-mismatch"]
    assert len(mismatches) >= 1
    for text in mismatches["summary"]:
        assert "P-DATA-TF PDUs" in text or "A-RELEASE" in text
        assert "out-of-order segments" in text and "tcp.reassemble_out_of_order" in text
    # and we are the ones that are right: every object is complete and the same as the clean run
    assert report.objects["complete"].all()


def _assoc() -> Association:
    a = Association(0, ports=frozenset(), dataset_sink=None,  # type: ignore[arg-type]
                    guess_transfer_syntax=lambda head: None)
    a.saw_rq = True
    a.calling_ae, a.called_ae = "SCU", "SCP"
    a.pdus["requestor"]["A-ASSOCIATE-RQ"] = 1
    return a


def test_compare_reports_each_field_difference() -> None:
    view = WiresharkView({"A-ASSOCIATE-RQ": 1}, {"calling_ae": "SCU", "called_ae": "OTHER",
                                                  "rq_context_ids": [], "rq_abstract": [],
                                                  "rq_transfer": []})
    assert compare(_assoc(), view) == ["called_ae: ours 'SCP', Wireshark 'OTHER'"]
    view.pdu_counts["A-ABORT"] = 1
    assert compare(_assoc(), view)[0] == "A-ABORT PDUs: ours 0, Wireshark 1"
    assert compare(_assoc(), None) == [
        "Wireshark's DICOM dissector did not recognise this stream as DICOM"]


def test_uid_display_text_is_reduced_to_the_uid() -> None:
    assert _uid("CT Image Storage (1.2.840.10008.5.1.4.1.1.2)") == "1.2.840.10008.5.1.4.1.1.2"
    assert _uid("Explicit VR Big Endian (Retired) (1.2.840.10008.1.2.2)") == "1.2.840.10008.1.2.2"
    assert _uid("1.2.3") == "1.2.3"
