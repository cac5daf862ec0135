"""The notebooks in notebooks/ run top to bottom against the public API (without Jupyter:
their code cells are executed in order in one namespace, as a kernel would), are stored
without outputs, and never change a Report's tables in place."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

import tshark_dicom
from tshark_dicom.schemas import TABLES

from .conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def fingerprint(report: tshark_dicom.Report) -> dict[str, str]:
    """A digest of every table's columns, dtypes and values."""
    out = {}
    for table in TABLES:
        df = report.table(table)
        text = "|".join(f"{c}:{df[c].dtype}" for c in df.columns) + df.astype(str).to_csv()
        out[table] = hashlib.sha256(text.encode()).hexdigest()
    return out


def test_the_notebooks_are_there_and_stripped() -> None:
    assert {p.stem for p in NOTEBOOKS} >= {"first_look", "query_retrieve", "archive",
                                          "why_slow"}
    for path in NOTEBOOKS:
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(path.parent)
    made: list[tuple[tshark_dicom.Report, dict[str, str]]] = []
    analyze = tshark_dicom.analyze

    def recording(*args: Any, **kw: Any) -> tshark_dicom.Report:
        report = analyze(*args, **kw)
        made.append((report, fingerprint(report)))
        return report

    monkeypatch.setattr(tshark_dicom, "analyze", recording)
    cells = json.loads(path.read_text())["cells"]
    namespace: dict[str, object] = {"__name__": "__main__"}
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        try:
            exec(compile(source, f"{path.name}[cell {index}]", "exec"), namespace)  # noqa: S102
        except Exception as exc:  # pragma: no cover - reported with the cell
            raise AssertionError(f"{path.name} cell {index} failed: {exc!r}") from exc
    assert os.getcwd() == str(path.parent)
    assert made  # every notebook analyses something
    for report, before in made:
        assert fingerprint(report) == before, f"{path.name} changed a Report's tables in place"
