"""Shared test fixtures: the real-peer captures in fixtures/captures and their truth."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import tshark_dicom

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "fixtures" / "captures"


def truth_files() -> list[Path]:
    return sorted(CAPTURES.glob("*.truth.json"))


def capture_for(truth: Path) -> Path:
    data = json.loads(truth.read_text())
    return CAPTURES / data["capture"]


@pytest.fixture(scope="session")
def tshark_path() -> str:
    path = shutil.which("tshark")
    if path is None:
        pytest.fail("tshark is not installed: run `make setup` (apt-get install tshark)")
    return path


_CACHE: dict[tuple[str, tuple[int, ...], tuple[Path, ...]],
             tuple[tshark_dicom.Report, Path]] = {}


def tls_keylogs(truth: dict[str, Any]) -> tuple[Path, ...]:
    """The key log a TLS fixture's truth names (next to the capture), if any."""
    tls = truth.get("tls") or {}
    return (CAPTURES / tls["keylog"],) if tls.get("keylog") else ()


@pytest.fixture(scope="session")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """analysed(capture_path, ports, tls_keylogs) -> (Report, out_dir): each capture
    analysed once per session, with objects written under out_dir/objects."""

    def run(capture: Path, ports: tuple[int, ...] = (), keylogs: tuple[Path, ...] = ()
            ) -> tuple[tshark_dicom.Report, Path]:
        key = (str(capture), ports, keylogs)
        if key not in _CACHE:
            out = tmp_path_factory.mktemp(capture.name.replace(".", "_"))
            report = tshark_dicom.analyze(capture, objects_dir=out / "objects", ports=ports,
                                          tls_keylogs=keylogs)
            _CACHE[key] = (report, out)
        return _CACHE[key]

    return run
