"""Shared test fixtures: the real-peer captures in fixtures/captures and their truth."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# as the command line does (cli.main): numpy's OpenBLAS starts no thread per core, so that
# this process runs no thread of its own and archive runs fork their workers (workers.py:
# with --jobs 1 too), as they do from the command line; set before numpy loads
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import tshark_dicom  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "fixtures" / "captures"


def truth_files() -> list[Path]:
    return sorted(CAPTURES.glob("*.truth.json"))


def capture_for(truth: Path) -> Path:
    data = json.loads(truth.read_text())
    return CAPTURES / data["capture"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say (also with -q) whether this run used the modules compiled by setup.py (mypyc)
    or the pure ones."""
    from .test_compiled import build_manifest, compiled_in_use

    in_use = sorted(compiled_in_use())
    if in_use:
        line = f"compiled modules in use (mypyc): {', '.join(in_use)}"
    else:
        modules, reason = build_manifest()
        why = ("TSHARK_DICOM_PURE set" if os.environ.get("TSHARK_DICOM_PURE", "") not in
               ("", "0") else "sources changed since the build" if modules else reason)
        line = f"pure-Python modules ({why})"
    terminalreporter.write_line(f"tshark_dicom: {line}")


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


@pytest.fixture(scope="session")
def checkout_reachable() -> Iterator[None]:
    """Tests that run the CLI as another user (nobody) need to reach this checkout and the
    venv inside it. A checkout in a private folder (``mktemp -d`` makes it 0700) is opened
    for traversal only (o+x, no listing) for the session, and closed again after."""
    opened = []
    for folder in [ROOT, *ROOT.parents]:
        mode = folder.stat().st_mode
        if not mode & 0o001 and folder.stat().st_uid == os.getuid():
            folder.chmod(mode | 0o001)
            opened.append((folder, mode))
    try:
        yield
    finally:
        for folder, mode in reversed(opened):
            folder.chmod(mode)
