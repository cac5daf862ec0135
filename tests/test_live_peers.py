"""Fresh traffic, not saved captures: real peers (dcmtk and pynetdicom) talk on loopback now,
dumpcap captures it, and the whole pipeline must agree with what the peers report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import tshark_dicom

from .conftest import ROOT
from .test_abort_lead import check_abort_lead
from .test_asyncops import check_outstanding
from .test_charset import check_charset, check_object_charset
from .test_commitment import check_commitments
from .test_context_not_accepted import check_off_context
from .test_devices import check_devices
from .test_fixtures import check_associations, check_contexts, check_messages, check_objects
from .test_instances import check_duplicates
from .test_mpps import check_steps
from .test_negotiation import check_negotiation
from .test_wireshark import check_against_tshark

SCENARIOS = ["echo", "store_104", "store_11112", "reject_called_ae", "contexts_rejected",
             "abort", "ipv6", "find_move", "n_services", "c_get_cancel", "hostile_uid",
             "commit_new_association", "mpps_images_missing", "store_uid_reused", "async_ops",
             "context_not_accepted", "qr_find_charset", "dimse_timeout", "store_charset",
             "store_copies_compared", "qr_move_class_rejected"]


@pytest.fixture(scope="module")
def live_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.geteuid() != 0:
        pytest.fail("live-peer tests capture with dumpcap and listen on port 104: run as root")
    out = tmp_path_factory.mktemp("live")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "fixtures" / "generate.py"), *SCENARIOS, "--out", str(out)],
        capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


@pytest.mark.parametrize("name", SCENARIOS)
def test_fresh_capture_matches_peers(live_dir: Path, name: str, tmp_path: Path,
                                     tshark_path: str) -> None:
    truth = json.loads((live_dir / f"{name}.truth.json").read_text())
    report = tshark_dicom.analyze(live_dir / truth["capture"], objects_dir=tmp_path / "objects")
    check_associations(truth, report)
    assert check_against_tshark(report, live_dir / truth["capture"], tshark_path) == 0
    check_contexts(truth, report)
    check_messages(truth, report)
    check_objects(truth, report, tmp_path)
    check_devices(truth, report)
    check_negotiation(truth, report)
    if "commitment" in truth:
        check_commitments(truth, report)
    if "mpps" in truth:
        check_steps(truth, report)
    if "duplicates" in truth:
        check_duplicates(truth, report)
    if "outstanding" in truth:
        check_outstanding(truth, report)
    if "off_context" in truth:
        check_off_context(truth, report)
    if "charset" in truth.get("qr", {}):
        check_charset(truth, report)
    if "abort_lead" in truth:
        check_abort_lead(truth, report)
    if "object_charset" in truth:
        check_object_charset(truth, report)
