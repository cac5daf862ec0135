"""The output folder: every table a dataset with one part per capture, written so that a
part is always whole and a capture is complete once its ``captures`` part is there.

    OUT/tables/<table>/<key>.parquet  a Parquet dataset per table:
                                    pd.read_parquet(OUT / "tables" / "messages"),
                                    pyarrow.dataset.dataset(OUT / "tables" / "messages") and
                                    DuckDB read_parquet('OUT/tables/messages/*.parquet') read
                                    each as one table
    OUT/csv/<table>/<key>.csv       the same as CSV (--format csv|both)
    OUT/objects/<key>/...           the capture's Part-10 files
    OUT/run.json                    the captures in the order given, the format
    OUT/summary.txt, report.html

``<key>`` is the capture's stable key (batch.py). Parts are written under a temporary name
and renamed; a capture's ``captures`` part is written last, so after a crash a capture
either has it (complete) or is analysed again by ``--resume``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .safe import csv_cell, csv_uncell
from .tables import SCHEMAS, TABLES, frame

FORMATS = ("parquet", "csv", "both")
MANIFEST = "run.json"
TABLES_DIR = "tables"
#: Written first into OUT, removed last: a run in progress, or killed (hidden from readers).
PARTIAL = ".tshark-dicom-partial"


def safe_key(text: str) -> str:
    """A capture key built only from ``[0-9A-Za-z._-]`` (never a path from elsewhere)."""
    return re.sub(r"[^0-9A-Za-z._-]", "_", text).lstrip(".") or "capture"


def rows_of(df: pd.DataFrame, label: str) -> pd.DataFrame:
    """The rows of one capture (by its label in the ``capture`` column)."""
    return df[(df["capture"] == label).fillna(False).to_numpy(dtype=bool)].reset_index(
        drop=True)


def _atomic(path: Path, write: Callable[[Path], object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)


def csv_frame(table: str, df: pd.DataFrame) -> pd.DataFrame:
    """Lists (proposed transfer syntaxes, query keys, callback ids) become JSON arrays in
    CSV: values may hold spaces and commas. Text that a spreadsheet would run as a formula
    gets a leading apostrophe (`safe.csv_cell`; `read_table` takes it off again)."""
    out = df.copy()
    for col, dtype in SCHEMAS[table].items():
        if dtype == "object":
            out[col] = out[col].map(lambda v: json.dumps(list(v)) if isinstance(v, list) else v)
        elif dtype == "string":
            out[col] = out[col].map(csv_cell, na_action="ignore")
    return out


def write_parts(folder: Path, key: str, tables: dict[str, pd.DataFrame],
                format: str) -> list[Path]:
    """One capture's tables as parts of the folder's datasets (every table, empty ones too,
    so that each dataset has its schema); the ``captures`` part last."""
    written = []
    for name in sorted(tables, key=lambda t: t == "captures"):
        df = tables[name]
        if format in ("parquet", "both"):
            written.append(_atomic(folder / TABLES_DIR / name / f"{key}.parquet",
                                   _parquet_writer(df)))
        if format in ("csv", "both"):
            written.append(_atomic(folder / "csv" / name / f"{key}.csv",
                                   _csv_writer(csv_frame(name, df))))
    return written


def _parquet_writer(df: pd.DataFrame) -> Callable[[Path], object]:
    return lambda path: _write_parquet(df, path)


def _csv_writer(df: pd.DataFrame) -> Callable[[Path], object]:
    return lambda path: df.to_csv(path, index=False)


def remove_parts(folder: Path, key: str) -> None:
    """A capture's parts and objects, gone (its ``captures`` part first)."""
    for name in sorted(TABLES, key=lambda t: t != "captures"):
        (folder / TABLES_DIR / name / f"{key}.parquet").unlink(missing_ok=True)
        (folder / "csv" / name / f"{key}.csv").unlink(missing_ok=True)
    shutil.rmtree(folder / "objects" / key, ignore_errors=True)


def part_keys(folder: Path) -> set[str]:
    """Keys of the captures that have any part in the folder."""
    keys: set[str] = set()
    for name in TABLES:
        for base in (folder / TABLES_DIR / name, folder / "csv" / name):
            if base.is_dir():
                keys.update(p.name.rsplit(".", 1)[0] for p in base.iterdir()
                            if not p.name.startswith("."))
    return keys


def write_manifest(folder: Path, keys: Sequence[str], format: str) -> None:
    _atomic(folder / MANIFEST, lambda p: p.write_text(json.dumps(
        {"captures": list(keys), "format": format}, indent=1) + "\n"))


def has_results(folder: Path) -> bool:
    """A folder holding results of an earlier run (this layout or the old one-file one)."""
    return (folder / MANIFEST).is_file() or (folder / TABLES_DIR).is_dir() or any(
        (folder / f"{t}.{ext}").is_file() for t in ("associations", "findings")
        for ext in ("parquet", "csv"))


def _order(folder: Path) -> list[str] | None:
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    keys = data.get("captures")
    return [str(k) for k in keys] if isinstance(keys, list) else None


def read_table(folder: Path, table: str, columns: Sequence[str] | None = None,
               filters: Any = None) -> pd.DataFrame | None:
    """A table of an output folder with the schema's dtypes, parts in the order of the run
    (``columns``/``filters`` as pyarrow takes them, Parquet only); None if it is not there."""
    parts = folder / TABLES_DIR / table
    keys = _order(folder)
    if parts.is_dir() and any(parts.glob("*.parquet")):
        files = sorted(parts.glob("*.parquet"))
        if keys is not None:
            rank = {k: i for i, k in enumerate(keys)}
            files.sort(key=lambda p: rank.get(p.stem, len(rank)))
        chunks = [pq.read_table(f, columns=list(columns) if columns else None,
                                filters=filters).to_pandas() for f in files]
        df = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()
    elif (folder / "csv" / table).is_dir():
        files = sorted((folder / "csv" / table).glob("*.csv"))
        if keys is not None:
            rank = {k: i for i, k in enumerate(keys)}
            files.sort(key=lambda p: rank.get(p.stem, len(rank)))
        chunks = [_read_csv(f) for f in files]
        df = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()
    elif (folder / f"{table}.parquet").is_file():  # the one-file layout of version 0.1
        df = pd.read_parquet(folder / f"{table}.parquet")
    elif (folder / f"{table}.csv").is_file():
        df = pd.read_csv(folder / f"{table}.csv", dtype=str, keep_default_na=False,
                         na_values=[""])
    else:
        return None
    typed = typed_frame(table, df)
    return typed[list(columns)] if columns else typed


def _read_csv(path: Path) -> pd.DataFrame:
    """A CSV part as text, with the apostrophes `csv_frame` put before formulas taken off."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    return df.apply(lambda col: col.map(csv_uncell, na_action="ignore")) if len(df) else df


def typed_frame(table: str, df: pd.DataFrame) -> pd.DataFrame:
    """A table as read from disk, with the schema's columns and dtypes."""
    out: dict[str, Any] = {}
    for col, dtype in SCHEMAS[table].items():
        values = df[col] if col in df.columns else pd.Series([None] * len(df), dtype=object)
        if dtype == "object":  # lists: arrays from Parquet, JSON arrays in CSV
            out[col] = values.map(_list_value)
        elif dtype.startswith("datetime64"):
            out[col] = pd.to_datetime(values, utc=True).astype(cast(Any, dtype))
        elif dtype == "bool":
            out[col] = values.map(lambda v: v if isinstance(v, bool) else str(v) == "True")
            out[col] = out[col].astype(bool)
        elif dtype == "boolean":
            out[col] = values.map(lambda v: None if v is None or v is pd.NA or v != v else
                                  v if isinstance(v, bool) else str(v) == "True")
            out[col] = out[col].astype("boolean")
        elif dtype in ("Int64", "Float64"):
            out[col] = pd.to_numeric(values, errors="coerce").astype(cast(Any, dtype))
        else:
            out[col] = values.astype("string")
    typed = pd.DataFrame(out, index=pd.RangeIndex(len(df)))
    if table == "query_keys":  # CSV cannot tell "" from null: only a sequence has no value
        blank = typed["value"].isna() & (typed["vr"] != "SQ").fillna(True)
        typed.loc[blank, "value"] = ""
    return typed if len(typed.columns) else frame(table, [])


def _list_value(v: object) -> list[Any] | None:
    if isinstance(v, str):
        return list(json.loads(v)) if v.startswith("[") else v.split(" ") if v else None
    if v is None or not hasattr(v, "__len__"):
        return None
    return [x.item() if hasattr(x, "item") else x for x in v]  # type: ignore[attr-defined]


def replace_results(staging: Path, out: Path) -> None:
    """Move a finished run from ``staging`` into ``out``, removing the previous run's
    tables, objects and report first, so results are never mixed."""
    out.mkdir(parents=True, exist_ok=True)
    for name in TABLES:
        for ext in ("parquet", "csv"):
            (out / f"{name}.{ext}").unlink(missing_ok=True)
    for extra in ("report.html", "summary.txt", MANIFEST):
        (out / extra).unlink(missing_ok=True)
    for folder in ("objects", "csv", TABLES_DIR):
        shutil.rmtree(out / folder, ignore_errors=True)
    for item in staging.iterdir():
        os.replace(item, out / item.name)
    staging.rmdir()
