"""The notebooks in notebooks/ run top to bottom against the public API (without Jupyter:
their code cells are executed in order in one namespace, as a kernel would)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_is_a_notebook() -> None:
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(path.parent)
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
