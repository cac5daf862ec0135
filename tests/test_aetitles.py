"""One AE title on several hosts (``ae-title-shared``), against a capture where two dcmtk
storescp keep their default AE title and two pynetdicom SCUs share one (fixtures/captures/
ae_title_shared; the truth says which hosts used which title, from what the peers did), and
on every other fixture, where no title is shared."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from tshark_dicom.aetitles import HOSTS_KEPT, AeTitles

from .conftest import capture_for, truth_files

TRUTHS = truth_files()


def _truth(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_there_is_a_shared_title_fixture() -> None:
    assert [t.name for t in TRUTHS if "ae_titles_shared" in _truth(t)] == \
        ["ae_title_shared.truth.json"]


@pytest.mark.parametrize("truth_path", TRUTHS, ids=[t.name.split(".")[0] for t in TRUTHS])
def test_a_finding_for_each_shared_title_and_none_elsewhere(truth_path: Path,
                                                            analysed: Any) -> None:
    """Each title the truth says was used on several hosts is one finding naming them (a
    warning for a calling AE title, a note for a called one); no other fixture has one."""
    truth = _truth(truth_path)
    report, _ = analysed(capture_for(truth_path))
    f = report.findings[report.findings["code"] == "ae-title-shared"]
    want = truth.get("ae_titles_shared", [])
    assert len(f) == len(want)
    for w in want:
        hosts = ", ".join(w["hosts"])
        verb = "called with" if w["role"] == "calling" else "answered as"
        row = f[f["summary"].str.contains(f"hosts {verb} the AE title {w['ae_title']}:",
                                          regex=False)]
        assert len(row) == 1, (w, list(f["summary"]))
        assert row.iloc[0]["severity"] == ("warning" if w["role"] == "calling" else "note")
        assert pd.isna(row.iloc[0]["assoc_id"])  # a capture's finding, of no one association
        text = row.iloc[0]["summary"]
        assert all(h in text for h in w["hosts"]), (hosts, text)


def _assoc(calling: str, host: str, called: str = "PACS", server: str = "10.0.0.1",
           result: str = "accepted", frame: int = 1) -> Any:
    return SimpleNamespace(result=result, requestor=(host, 40000), acceptor=(server, 104),
                           calling_ae=calling, called_ae=called, requested_frame=frame)


def test_only_accepted_associations_count_and_memory_is_bounded() -> None:
    titles = AeTitles()
    titles.add(_assoc("CT01", "10.0.0.2"))
    titles.add(_assoc("CT01", "10.0.0.2"))  # the same host again
    titles.add(_assoc("CT01", "10.0.0.3", result="rejected"))  # never accepted: not counted
    assert titles.findings() == []
    for i in range(HOSTS_KEPT + 5):
        titles.add(_assoc("STORESCU", f"10.1.0.{i}", frame=10 + i))
    (_, f), = titles.findings()
    assert f.severity == "warning" and f.frame == 11  # where the second host first called
    assert f.summary.startswith(f"{HOSTS_KEPT} hosts called with the AE title STORESCU: "
                                "10.1.0.0 (1 association), 10.1.0.1 (1 association)")
    assert f"and {HOSTS_KEPT - 4} more" in f.summary
    assert len(titles.calling["STORESCU"]) == HOSTS_KEPT
