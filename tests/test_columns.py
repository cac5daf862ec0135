"""Data people load elsewhere: every column described (in the Parquet files and the README's
generated reference), timestamps that pandas, pyarrow and DuckDB compute on without casts,
runs of earlier versions still read under the new column names, and a capture key that is
the same from any working folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import tshark_dicom
from tshark_dicom.columns import DESCRIPTIONS, RENAMED, TABLE_DESCRIPTIONS, reference_markdown
from tshark_dicom.schemas import SCHEMAS

from .conftest import CAPTURES, ROOT

README = ROOT / "README.md"


def test_every_column_has_one_sentence() -> None:
    assert set(TABLE_DESCRIPTIONS) == set(SCHEMAS) == set(DESCRIPTIONS)
    for table, columns in SCHEMAS.items():
        assert set(DESCRIPTIONS[table]) == set(columns), table
        assert all(text.strip().endswith((".", ")")) for text in DESCRIPTIONS[table].values())
    for table, renames in RENAMED.items():
        assert set(renames.values()) <= set(SCHEMAS[table]), table
        assert not set(renames) & set(SCHEMAS[table]), table


def test_readme_table_reference_is_generated_from_the_schema() -> None:
    """Fails when a column is added, renamed or re-described without regenerating the
    README (python docs/table_reference.py)."""
    text = README.read_text()
    assert reference_markdown(SCHEMAS) in text
    for table, columns in SCHEMAS.items():
        for name in columns:
            assert f"| `{name}` |" in text, (table, name)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("interop") / "out"
    report = tshark_dicom.analyze([CAPTURES / "qr_move_ok.pcapng",
                                   CAPTURES / "store_statuses.pcapng"])
    report.write(out)
    return out


def test_parquet_fields_carry_their_description(run: Path) -> None:
    for table, columns in SCHEMAS.items():
        part = next((run / "tables" / table).glob("*.parquet"))
        schema = pq.read_schema(part)
        for name in columns:
            meta = schema.field(name).metadata or {}
            assert meta.get(b"description") == DESCRIPTIONS[table][name].encode(), name


def test_timestamps_compute_in_pandas_pyarrow_and_duckdb(run: Path) -> None:
    folder = run / "tables" / "operations"
    df = pd.read_parquet(folder)
    assert str(df["request_first_at"].dtype) == "datetime64[us, UTC]"
    pandas_ms = ((df["response_complete_at"] - df["request_first_at"]).dt.total_seconds()
                 * 1000).tolist()
    table = ds.dataset(folder).to_table()
    assert table.schema.field("request_first_at").type == pa.timestamp("us", tz="UTC")
    arrow_us = pc.subtract(table["response_complete_at"], table["request_first_at"])
    arrow_ms = [None if d is None else d.total_seconds() * 1000 for d in arrow_us.to_pylist()]
    duck = duckdb.sql(
        f"select epoch_ms(response_complete_at) - epoch_ms(request_first_at) as ms, "
        f"date_diff('microsecond', request_first_at, response_complete_at) as us, "
        f"response_complete_at - request_first_at as span, total_ms "
        f"from read_parquet('{folder}/*.parquet')").df()
    # the same operations in the same order (parts sorted alike): every engine agrees with
    # total_ms, which was computed from the nanosecond capture clock (microseconds kept)
    totals = df["total_ms"].tolist()
    assert len(totals) == len(duck) > 0
    for p, a, t in zip(pandas_ms, arrow_ms, totals, strict=True):
        assert abs(p - t) < 0.002 and abs(a - t) < 0.002
    for us, ms, t in zip(duck["us"], duck["ms"], duck["total_ms"], strict=True):
        assert abs(us / 1000 - t) < 0.002 and abs(ms - t) <= 1.0


def test_a_run_of_version_0_1_is_read_under_the_new_names(run: Path, tmp_path: Path) -> None:
    """Parts written before the renames (old names, nanosecond timestamps) are read with the
    new names and types, whole, by column, and a batch at a time."""
    old = tmp_path / "old"
    shutil.copytree(run, old)
    for table, renames in RENAMED.items():
        for part in (old / "tables" / table).glob("*.parquet"):
            t = pq.read_table(part).rename_columns(
                [{v: k for k, v in renames.items()}.get(n, n) for n in pq.read_schema(
                    part).names])
            fields = [pa.field(f.name, pa.timestamp("ns", tz="UTC")) if
                      pa.types.is_timestamp(f.type) else f for f in t.schema]
            pq.write_table(t.cast(pa.schema(fields)), part)
    new, legacy = tshark_dicom.load(run), tshark_dicom.load(old)
    for table in RENAMED:
        pd.testing.assert_frame_equal(legacy.table(table), new.table(table))
    assert list(legacy.read("associations", columns=["message_count"])["message_count"]) == \
        list(new.associations["message_count"])
    batches = list(tshark_dicom.load(old).batches("captures", ["association_count"]))
    assert sum(b["association_count"].sum() for b in batches) == len(new.associations)


def test_capture_key_is_the_same_from_any_working_folder(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "archive" / "day1"
    archive.mkdir(parents=True)
    shutil.copy(CAPTURES / "echo.pcapng", archive / "echo.pcapng")
    keys = []
    for cwd, given in ((tmp_path, Path("archive")), (archive.parent, Path(".")),
                       (ROOT, tmp_path / "archive")):
        monkeypatch.chdir(cwd)
        report = tshark_dicom.analyze(given)
        keys.append(report.captures["key"].tolist())
        assert os.getcwd() == str(cwd)
    assert keys[0] == keys[1] == keys[2] == ["day1__echo.pcapng"]
