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

Writing a capture's parts needs no pandas: rows go straight into Arrow (`arrow_rows`) in a
schema made without it (`arrow_schema`); reading the tables back into frames is
tableread.py's, which imports pandas. A worker process that only analyses and writes
(batch.py) never loads either, and the run's process loads them meanwhile (archive.py):
about 0.3 s of every run. Both sides share the parts' index (`part_footer`).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.abc
import importlib.machinery
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pyarrow as pa
import pyarrow.parquet as pq

from .columns import DESCRIPTIONS
from .safe import csv_cell
from .schemas import SCHEMAS, TABLES, column_of, frame

if TYPE_CHECKING:
    import pandas as pd

FORMATS = ("parquet", "csv", "both")


MANIFEST = "run.json"


TABLES_DIR = "tables"


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


#: The write buffer of a Parquet file being written (`parquet_sink`).
SINK_BUFFER = 1 << 16


def parquet_sink(path: Path) -> pa.NativeFile:
    """Where a Parquet file is written: through a buffer. pyarrow's writer writes each
    page header, statistic and column chunk on its own, and asks the file its position
    before each: 68,000 writes of 10-20 bytes and 36,000 lseeks in the worker for the 79
    fixture captures, which an ext4 disk costs more than a tmpfs (``--jobs 1`` over them
    took 0.4 s longer on the disk). The buffer hands the file a call per 64 KiB and
    keeps the position itself. The caller closes it, after the writer."""
    return pa.output_stream(str(path), compression=None, buffer_size=SINK_BUFFER)


def write_whole(table: pa.Table, path: Path) -> None:
    """``table`` as the Parquet file ``path`` (`parquet_sink`)."""
    with parquet_sink(path) as sink:
        pq.write_table(table, sink)


def _write_parquet(df: pd.DataFrame, path: Path, table: str | None = None) -> None:
    schema = arrow_schema(table) if table is not None else None
    write_whole(pa.Table.from_pandas(df, schema=schema, preserve_index=False), path)


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
            written.append(_parquet_part(folder, name, key, _parquet_writer(df, name), len(df)))
        if format in ("csv", "both"):
            written.append(_atomic(folder / "csv" / name / f"{key}.csv",
                                   _csv_writer(csv_frame(name, df))))
    return written


def _parquet_part(folder: Path, table: str, key: str, write: Callable[[Path], object],
                  rows: int) -> Path:
    """A capture's Parquet part of ``table`` written whole by ``write`` (`_atomic`), its
    footer's facts remembered (`seed_footer`)."""
    path = _atomic(folder / TABLES_DIR / table / f"{key}.parquet", write)
    seed_footer(path, table, rows)
    return path


def write_captures_part(folder: Path, key: str, rows: list[dict[str, Any]],
                        format: str) -> pa.Table | None:
    """A capture's ``captures`` part (its rows as `batch.capture_row` makes them), which a
    run writes last, once the capture's other parts and objects are in place. Parquet
    straight from the rows into Arrow: a frame of the row and pyarrow's conversion of it
    were 4.7 ms of the run's own process a capture, while its workers analyse the next.
    The Parquet part's data as written (None: CSV only)."""
    data = None
    if format in ("parquet", "both"):
        part = arrow_rows("captures", rows)
        _parquet_part(folder, "captures", key, lambda path: write_whole(part, path),
                      part.num_rows)
        data = part
    if format in ("csv", "both"):
        write_parts(folder, key, {"captures": frame("captures", rows)}, "csv")
    return data


@functools.cache
def arrow_schema(table: str) -> pa.Schema:
    """The Parquet schema of a table, the same in every part and row group (list columns
    typed even when a part has no list value), each field carrying its column's sentence
    (columns.py) as ``description`` metadata, and the whole pyarrow's ``pandas`` metadata
    (what gives a reader back our pandas dtypes).

    Made from one column of each dtype, not from an empty frame of the table: the same
    schema, byte for byte (tests/test_spool.py), in 0.01 s instead of 0.09 s for the 14
    tables, a cost every process that writes a part pays once (a capture of a few packets
    takes under a second in all)."""
    template = [_dtype_field(dtype) for dtype in SCHEMAS[table].values()]
    fields, columns = [], []
    for name, (arrow_type, column) in zip(SCHEMAS[table], template, strict=True):
        arrow_type = pa.list_(LIST_TYPES[name]) if name in LIST_TYPES else arrow_type
        fields.append(pa.field(name, arrow_type).with_metadata(
            {"description": DESCRIPTIONS[table][name]}))
        columns.append({"name": name, "field_name": name, **column})
    pandas = {**_pandas_metadata(), "columns": columns}
    return pa.schema(fields, metadata={b"pandas": json.dumps(pandas).encode("utf8")})


@functools.cache
def _dtype_field(dtype: str) -> tuple[pa.DataType, dict[str, Any]]:
    """The Arrow type and pyarrow's pandas metadata (but the names) of a column of
    ``dtype``, as pyarrow's from_pandas makes them: from `KNOWN_FIELDS` with the pandas and
    pyarrow they were taken from, else from an empty column (pandas imported)."""
    if _known_versions():
        arrow_type, pandas_type, numpy_type, metadata = KNOWN_FIELDS[dtype]
        return arrow_type, {"pandas_type": pandas_type, "numpy_type": numpy_type,
                            "metadata": metadata}
    return _dtype_field_from_pandas(dtype)


def _dtype_field_from_pandas(dtype: str) -> tuple[pa.DataType, dict[str, Any]]:
    """`_dtype_field` from an empty column of ``dtype`` (pandas imported)."""
    import pandas as pd

    schema = pa.Schema.from_pandas(pd.DataFrame({"c": column_of(dtype, [])}),
                                   preserve_index=False)
    column = json.loads(schema.metadata[b"pandas"])["columns"][0]
    return schema.field(0).type, {k: v for k, v in column.items()
                                  if k not in ("name", "field_name")}


@functools.cache
def _pandas_metadata() -> dict[str, Any]:
    """pyarrow's pandas metadata of a frame without an index, its columns left out."""
    if _known_versions():
        return {"index_columns": [], "column_indexes": [], "columns": [], "attributes": {},
                "creator": {"library": "pyarrow", "version": pa.__version__},
                "pandas_version": _pandas_version()}
    return _pandas_metadata_from_pandas()


def _pandas_metadata_from_pandas() -> dict[str, Any]:
    """`_pandas_metadata` from an empty frame (pandas imported)."""
    import pandas as pd

    schema = pa.Schema.from_pandas(pd.DataFrame({"c": column_of("string", [])}),
                                   preserve_index=False)
    metadata: dict[str, Any] = json.loads(schema.metadata[b"pandas"])
    return metadata


#: What pyarrow's from_pandas makes of an empty column of each SCHEMAS dtype (Arrow type;
#: pandas metadata: pandas_type, numpy_type, metadata) with the pandas and pyarrow of
#: KNOWN_VERSIONS (tests/test_spool.py holds them to it). Known, a schema is made without
#: importing pandas (0.3-0.5 s), which a worker that only writes parts never needs.
KNOWN_FIELDS: dict[str, tuple[pa.DataType, str, str, dict[str, str] | None]] = {
    "Float64": (pa.float64(), "float64", "Float64", None),
    "Int64": (pa.int64(), "int64", "Int64", None),
    "bool": (pa.bool_(), "bool", "bool", None),
    "boolean": (pa.bool_(), "bool", "boolean", None),
    "datetime64[us, UTC]": (pa.timestamp("us", tz="UTC"), "datetimetz", "datetime64[us]",
                            {"timezone": "UTC"}),
    "object": (pa.null(), "empty", "object", None),
    "string": (pa.large_string(), "object", "string", None),
}


#: The major versions of pandas and pyarrow KNOWN_FIELDS was checked with; with others the
#: schema is made from pandas' own columns, as pyarrow makes it.
KNOWN_VERSIONS = frozenset({(3, 26)})


def _pandas_version() -> str:
    """The installed pandas' version: its own once imported, else read from its package
    metadata without importing it. importlib.metadata is imported here, not with this
    module: 0.016 s of the imports made before a run's worker is forked (the worker has it
    from pydicom)."""
    pandas = sys.modules.get("pandas")
    if pandas is not None:
        return str(pandas.__version__)
    import importlib.metadata

    return importlib.metadata.version("pandas")


@functools.cache
def _known_versions() -> bool:
    """Whether this pandas and pyarrow are the ones `KNOWN_FIELDS` holds true for."""
    try:
        majors = (int(_pandas_version().split(".")[0]), int(pa.__version__.split(".")[0]))
    except (ModuleNotFoundError, ValueError):  # importlib.metadata.PackageNotFoundError
        return False
    return majors in KNOWN_VERSIONS


class Without(importlib.abc.MetaPathFinder):
    """An import finder that has none of these packages (`arrow_without_pandas`,
    `hidden`): importing one or a module of it raises ModuleNotFoundError, as if it were
    not installed."""

    def __init__(self, *packages: str) -> None:
        self.packages = frozenset(packages)

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        if fullname.partition(".")[0] in self.packages:
            raise ModuleNotFoundError("not in this worker", name=fullname)
        return None


@contextmanager
def hidden(*packages: str) -> Iterator[None]:
    """Inside, these packages cannot be imported (`Without`)."""
    finder = Without(*packages)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def arrow_without_pandas() -> None:
    """Have pyarrow convert Python values without importing pandas, in a process that has
    not imported it (a worker that writes parts: batch.py).

    pyarrow's first conversion of Python values (``pa.array``) asks whether each is a
    pandas object, and imports pandas to know: 0.3-0.5 s, as long as the analysis of 200
    MB. No object made before pandas was imported can be a pandas one, so the question is
    asked here, pandas held back for its duration. A frame converted later (rows only the
    pandas way takes: `arrow_rows`) has pyarrow's from_pandas import pandas and look
    again (tests/test_spool.py). Where pyarrow has no such lazy importer (another
    version) nothing is done: it imports pandas as before."""
    shim = getattr(pa.lib, "_pandas_api", None)
    if "pandas" in sys.modules or shim is None or not hasattr(type(shim), "pd"):
        return
    with hidden("pandas"):
        pa.array([], type=pa.int64())


#: The element type of each list column (SCHEMAS: "object").
LIST_TYPES = {"proposed_transfer_syntaxes": pa.string(), "callback_assoc_ids": pa.int64(),
              "callback_attempt_ids": pa.int64(), "matching_keys": pa.string(),
              "return_keys": pa.string(), "failed_sop_instances": pa.string(),
              "failure_reasons": pa.string()}


_NS_PER = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


def arrow_rows(table: str, rows: list[dict[str, Any]]) -> pa.Table:
    """Rows straight into Arrow columns of the table's schema: the same as through
    `schemas.frame` and pandas, with a fraction of the memory. Rows with a value Arrow does
    not take as it is (or a float NaN, which pandas makes null) go the pandas way."""
    data = direct_arrow_rows(table, rows)
    if data is not None:
        return data
    return pa.Table.from_pandas(frame(table, rows), schema=arrow_schema(table),
                                preserve_index=False, nthreads=1)


def direct_arrow_rows(table: str, rows: list[dict[str, Any]]) -> pa.Table | None:
    """`arrow_rows` without pandas, or None where only pandas' conversions would do."""
    schema = arrow_schema(table)
    try:
        arrays = []
        for field in schema:
            values = [row.get(field.name) for row in rows]
            if pa.types.is_timestamp(field.type):  # our times are ns since the epoch
                per = _NS_PER[field.type.unit]
                values = [None if v is None else v // per for v in values]
            elif pa.types.is_floating(field.type) and any(
                    isinstance(v, float) and v != v for v in values):
                return None  # NaN: pandas makes it a null
            arrays.append(pa.array(values, type=field.type))
        return pa.Table.from_arrays(arrays, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
        return None


class PartWriter:
    """One capture's tables written as they come (a store of spool.RowSink): rows are
    buffered per table and file label and written a row group at a time, so memory holds
    at most ``ROW_GROUP`` rows per table. Files are written under temporary names in
    ``folder`` and renamed by ``close``: every table of every file label (empty ones too,
    so that each dataset has its schema), ``captures`` excepted (the caller writes it
    last, when the capture is complete)."""

    ROW_GROUP = 16_384
    #: ... and at most about this many values (rows x columns): a reader holds a row group
    #: of every column it reads at once, so a wide table has shorter ones
    ROW_GROUP_CELLS = 131_072
    #: Rows buffered as Python dicts before they become Arrow columns (a tenth of the
    #: memory) to wait for the rest of their row group.
    CONVERT_ROWS = 1_024

    def __init__(self, folder: Path, keys: dict[str, str], format: str,
                 redact: Callable[[dict[str, pd.DataFrame]], dict[str, pd.DataFrame]] | None
                 = None, hand: int = 0) -> None:
        self.folder = folder
        self.keys = keys  # file label -> capture key (one, or each file of a set)
        self.format = format
        #: redact.redactor: it learns values in some tables (query keys, AE titles) and
        #: replaces them in every table's sentences, so all tables of a file label are
        #: flushed together, those it learns from first
        self.redact = redact
        self.buffers: dict[tuple[str, str], list[dict[str, Any]]] = {}
        #: converted rows of the row group in progress, and how many
        self.columns: dict[tuple[str, str], tuple[list[pa.Table], int]] = {}
        self.parquet: dict[tuple[str, str], pq.ParquetWriter] = {}
        self.sinks: list[pa.NativeFile] = []  # the parts' files (`parquet_sink`)
        self.csv_started: set[tuple[str, str]] = set()
        self.empty: set[tuple[str, str]] = set()  # Parquet parts without rows, written
        #: rows of each Parquet part (for its `PART_INDEX`)
        self.rows: dict[tuple[str, str], int] = {}
        #: `handed`: the Arrow data of each Parquet part of at most ``hand`` rows, as
        #: written (None: a part longer than that)
        self.hand = hand
        self.kept: dict[tuple[str, str], list[pa.Table] | None] = {}

    def add(self, table: str, label: str, rows: list[dict[str, Any]]) -> None:
        buffer = self.buffers.setdefault((table, label), [])
        buffer.extend(rows)
        if self.redact is None:
            if len(buffer) >= self.CONVERT_ROWS:
                self._flush(table, label, whole=False)
        elif len(buffer) >= self.ROW_GROUP:
            self._flush_all(label)

    def _flush_all(self, label: str) -> None:
        frames = {t: frame(t, self.buffers.pop((t, label), [])) for t in TABLES
                  if (t, label) in self.buffers}
        assert self.redact is not None
        for t, df in self.redact(frames).items():
            self._write(t, label, df)

    def _group_rows(self, table: str) -> int:
        return min(self.ROW_GROUP, max(1_024, self.ROW_GROUP_CELLS // len(SCHEMAS[table])))

    def _tmp(self, kind: str, table: str, label: str) -> Path:
        """Where a part is written until `close` renames it: ``<kind>/<key>/.<table>.<ext>
        .tmp``, one folder for a capture's tables (`move_parts` takes each to its dataset
        as ``<table>/<key>.<ext>``). A folder per table was 14 folders a capture to make
        and remove again, at 0.2-0.3 ms each on the disk measured: a quarter of the run's
        own process's time per capture in an archive of small ones."""
        ext = "parquet" if kind == TABLES_DIR else "csv"
        return self.folder / kind / self.keys[label] / f".{table}.{ext}.tmp"

    def _new(self, kind: str, table: str, label: str) -> Path:
        """`_tmp`, its folder made: the part is about to be written."""
        path = self._tmp(kind, table, label)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _flush(self, table: str, label: str, whole: bool = True) -> None:
        """The buffered rows on their way; ``whole``: the row group ends here."""
        rows = self.buffers.pop((table, label), [])
        if self.format == "parquet":  # no DataFrame needed
            self._parquet(table, label, arrow_rows(table, rows), whole)
        else:
            self._write(table, label, frame(table, rows), whole)

    def _parquet(self, table: str, label: str, data: pa.Table, whole: bool) -> None:
        key = (table, label)
        self.rows[key] = self.rows.get(key, 0) + data.num_rows
        if self.hand:
            kept = self.kept.setdefault(key, [])
            if kept is not None:
                if self.rows[key] > self.hand:
                    self.kept[key] = None  # too long to hand: read back
                else:
                    kept.append(data)
        parts, n = self.columns.pop(key, ([], 0))
        parts.append(data)
        n += data.num_rows
        if not whole and n < self._group_rows(table):
            self.columns[key] = (parts, n)
            return
        writer = self.parquet.get(key)
        if writer is None:
            path = self._new(TABLES_DIR, table, label)
            if n == 0:  # a table with no rows: its bytes are made once
                path.write_bytes(_empty_part(table))
                self.empty.add(key)
                return
            self.sinks.append(parquet_sink(path))
            writer = self.parquet[key] = pq.ParquetWriter(self.sinks[-1], arrow_schema(table))
        # one row group from the pieces as they are (no combined copy)
        writer.write_table(pa.concat_tables(parts), row_group_size=max(n, 1))

    def _write(self, table: str, label: str, df: pd.DataFrame, whole: bool = True) -> None:
        if self.format in ("parquet", "both"):
            self._parquet(table, label, pa.Table.from_pandas(
                df, schema=arrow_schema(table), preserve_index=False, nthreads=1), whole)
        if self.format in ("csv", "both"):
            first = (table, label) not in self.csv_started
            self.csv_started.add((table, label))
            path = self._new("csv", table, label)
            csv_frame(table, df).to_csv(path, index=False, mode="w" if first else "a",
                                        header=first)

    def close(self) -> list[Path]:
        """Everything buffered written, every part renamed into place; the paths."""
        if self.redact is not None:
            for label in self.keys:
                self._flush_all(label)
        for table in TABLES:
            if table == "captures":
                continue
            for label in self.keys:
                if (table, label) in self.buffers or (table, label) in self.columns or (
                        (table, label) not in self.parquet and (table, label) not in self.empty
                        and (table, label) not in self.csv_started):
                    self._flush(table, label)
        self._close_files()
        written = []
        facts: dict[str, list[int]] = {}
        for (table, label) in sorted(set(self.parquet) | self.empty | self.csv_started):
            for kind in (TABLES_DIR, "csv"):
                tmp = self._tmp(kind, table, label)
                if tmp.exists():
                    written.append(tmp.with_name(tmp.name[1:].removesuffix(".tmp")))
                    os.replace(tmp, written[-1])
                    if kind == TABLES_DIR:
                        st = written[-1].stat()
                        facts[f"{table}/{self.keys[label]}.parquet"] = [
                            self.rows.get((table, label), 0), st.st_size, st.st_mtime_ns]
        _write_index(self.folder / TABLES_DIR, facts)  # for move_parts
        return written

    def handed(self) -> dict[str, dict[str, bytes]]:
        """After `close`: the Parquet parts of at most ``hand`` rows, the same data a reader
        of the part gets, by capture key and table, each an Arrow IPC stream without the
        schema's metadata (`handed_table` takes it back): what the run's process reports
        from without reading the parts again (`report.Handed`). A pickled Arrow table
        cost 9 ms a capture to send and 6 ms to receive (a pickle per column); this 0.9
        and 0.5 ms."""
        out: dict[str, dict[str, bytes]] = {}
        for (table, label), kept in self.kept.items():
            if kept is not None:
                out.setdefault(self.keys[label], {})[table] = hand_over(pa.concat_tables(kept))
        return out

    def _close_files(self) -> None:
        for writer in self.parquet.values():
            writer.close()
        for sink in self.sinks:
            sink.close()

    def abandon(self) -> None:
        self._close_files()
        shutil.rmtree(self.folder, ignore_errors=True)


@functools.cache
def _empty_part(table: str) -> bytes:
    """A Parquet part of ``table`` without rows, as `PartWriter` writes one (the schema and
    an empty row group: always the same bytes)."""
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(sink, arrow_schema(table)) as writer:
        writer.write_table(arrow_rows(table, []), row_group_size=1)
    return bytes(sink.getvalue())


def _parquet_writer(df: pd.DataFrame, table: str) -> Callable[[Path], object]:
    return lambda path: _write_parquet(df, path, table)


def _csv_writer(df: pd.DataFrame) -> Callable[[Path], object]:
    return lambda path: df.to_csv(path, index=False)


def move_parts(staged: Path, folder: Path) -> None:
    """A capture's parts written by PartWriter under ``staged``, moved into ``folder``'s
    datasets (each by one rename); ``staged`` is gone afterwards. What PartWriter's
    `PART_INDEX` says of the parts becomes what `part_footer` knows of the moved ones."""
    index = _load_index(staged / TABLES_DIR / PART_INDEX)
    for kind in (TABLES_DIR, "csv"):
        base = staged / kind
        if not base.is_dir():
            continue
        ext = ".parquet" if kind == TABLES_DIR else ".csv"
        for key in sorted(base.iterdir()):
            if key.name.startswith("."):
                continue  # the staged PART_INDEX
            for part in sorted(key.iterdir()):
                table = part.name.removesuffix(ext)
                if part.name.startswith(".") or table == part.name:
                    continue
                (folder / kind / table).mkdir(parents=True, exist_ok=True)
                moved = folder / kind / table / f"{key.name}{ext}"
                os.replace(part, moved)
                if kind == TABLES_DIR and table in SCHEMAS:
                    st = moved.stat()
                    facts = _index_facts(index, table, moved.name, st)
                    if facts is not None:
                        _remember(_footer_key(moved, table, st), facts)
    shutil.rmtree(staged, ignore_errors=True)


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


def write_manifest(folder: Path, keys: Sequence[str], format: str,
                   redaction: dict[str, Any] | None = None) -> None:
    """run.json: the captures in order, the format and, for a run with --redact, its
    settings (`redact.Redaction.settings`)."""
    data: dict[str, Any] = {"captures": list(keys), "format": format}
    if redaction is not None:
        data["redaction"] = redaction
    _atomic(folder / MANIFEST, lambda p: p.write_text(json.dumps(data, indent=1) + "\n"))


def manifest(folder: Path) -> dict[str, Any]:
    """run.json of an output folder ({} when it has none or it cannot be read)."""
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def private_tree(path: Path) -> None:
    """Make a folder written elsewhere (a Dask worker, with its own umask) owner-only."""
    for p in [path, *path.rglob("*")]:
        if not p.is_symlink():
            p.chmod(0o700 if p.is_dir() else 0o600)


@contextmanager
def output_mode(shared: bool) -> Iterator[None]:
    """Files and folders created inside are readable by their owner only (umask 077:
    0600 files, 0700 folders) unless ``shared`` (the process umask then applies).

    The umask is the process's: worker processes started inside inherit it; other threads
    of the process creating files meanwhile get owner-only files too."""
    if shared:
        yield
        return
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def has_results(folder: Path) -> bool:
    """A folder holding results of an earlier run (this layout or the old one-file one)."""
    return (folder / MANIFEST).is_file() or (folder / TABLES_DIR).is_dir() or any(
        (folder / f"{t}.{ext}").is_file() for t in ("associations", "findings")
        for ext in ("parquet", "csv"))


def manifest_order(folder: Path) -> list[str] | None:
    """The capture keys in the order the run was given them (its manifest), if it says."""
    keys = manifest(folder).get("captures")
    return [str(k) for k in keys] if isinstance(keys, list) else None


def hand_over(data: pa.Table) -> bytes:
    """A part's data to send to another process: an Arrow IPC stream of its columns
    without the schema's metadata (`handed_table` takes it back)."""
    plain = pa.Table.from_arrays(data.columns, names=data.column_names)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, plain.schema) as stream:
        stream.write_table(plain)
    return cast(bytes, sink.getvalue().to_pybytes())  # bytes already: no copy


def handed_table(data: pa.Table | bytes) -> pa.Table:
    """A part `hand_over` sent (or an Arrow table as it is)."""
    if isinstance(data, bytes):
        return pa.ipc.open_stream(data).read_all()
    return data


def part_footer(path: Path, table: str) -> tuple[int, bool]:
    """A Parquet part's row count and whether it has this version's schema of ``table``,
    from its footer, read once while the file is unchanged: the report asks both of every
    part of several tables, and an archive has a part per capture (2,000 captures: two
    footer reads of every part were 3 s of the report's 13 s)."""
    st = path.stat()
    key = _footer_key(path, table, st)
    facts = _FOOTERS.get(key)
    if facts is None:
        index_path = path.parent.parent / PART_INDEX
        facts = _index_facts(_indexes(index_path), table, path.name, st)
        if facts is None:
            meta = pq.read_metadata(path)
            facts = (meta.num_rows, meta.schema.to_arrow_schema().equals(
                arrow_schema(table), check_metadata=False))
        _remember(key, facts)
    return facts


def seed_footer(path: Path, table: str, rows: int) -> None:
    """What `part_footer` would read of a part just written with this version's schema of
    ``table`` and ``rows`` rows (write_parts): the report that follows the run then reads
    none of their footers again (2,000 captures: 18,000 footers)."""
    _remember(_footer_key(path, table, path.stat()), (rows, True))


def _footer_key(path: Path, table: str, st: os.stat_result) -> tuple[str, int, int, str]:
    return str(path), st.st_mtime_ns, st.st_size, table


def _remember(key: tuple[str, int, int, str], facts: tuple[int, bool]) -> None:
    if len(_FOOTERS) >= FOOTERS_KEPT:
        _FOOTERS.clear()
    _FOOTERS[key] = facts


#: Beside a folder's datasets (``tables/.parts.json``): each Parquet part's row count, size
#: and time, and the schema they were checked against. PartWriter leaves one beside a
#: capture's staged parts (for `move_parts`: a worker writes them, the run's process moves
#: them), and a run leaves one in OUT as it ends, so that a later process (load, diagnose,
#: --resume) need not read the footers again (2,000 captures: 22,000 parts).
PART_INDEX = ".parts.json"


@functools.cache
def _fingerprint(table: str) -> str:
    """This version's schema of ``table``, in a few characters."""
    return hashlib.sha256(arrow_schema(table).serialize().to_pybytes()).hexdigest()[:16]


def write_part_index(folder: Path) -> None:
    """`PART_INDEX` of ``folder``'s Parquet parts whose footers this process knows to have
    this version's schema (the run's report has asked for every one); the others are left
    out and a reader reads their footers."""
    base = folder / TABLES_DIR
    facts: dict[str, list[int]] = {}
    for table in TABLES:
        for path in sorted((base / table).glob("*.parquet")):
            st = path.stat()
            known = _FOOTERS.get(_footer_key(path, table, st))
            if known is not None and known[1]:
                facts[f"{table}/{path.name}"] = [known[0], st.st_size, st.st_mtime_ns]
    _write_index(base, facts)


def _write_index(base: Path, facts: dict[str, list[int]]) -> None:
    """`PART_INDEX` in ``base`` (a tables folder) of ``facts``: ``{"table/part": [rows,
    size, mtime_ns]}``, the parts having this version's schema; nothing when empty."""
    if not facts:
        return
    index = {"schemas": {t: _fingerprint(t) for t in TABLES}, "parts": facts}
    try:
        _atomic(base / PART_INDEX, lambda tmp: tmp.write_text(json.dumps(index)))
    except OSError:  # disk full and the like: only a shortcut for later readers, who
        pass  # read the footers (an older index is right about the parts it matches)


def _load_index(path: Path) -> dict[str, Any]:
    """A `PART_INDEX` file's content; empty if it is missing or unreadable."""
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return index if isinstance(index, dict) else {}


def _indexes(path: Path) -> dict[str, Any]:
    """`_load_index`, read once while the file is unchanged (its size and time)."""
    try:
        st = path.stat()
    except OSError:
        return {}
    stamp = (st.st_size, st.st_mtime_ns)
    cached = _INDEXES.get(path)
    if cached is None or cached[0] != stamp:
        cached = _INDEXES[path] = (stamp, _load_index(path))
    return cached[1]


def _index_facts(index: dict[str, Any], table: str, name: str, st: os.stat_result
                 ) -> tuple[int, bool] | None:
    """What ``index`` says of the part ``table/name``: its row count, if the part is
    unchanged since (size and time) and the index's schema of the table is this
    version's; else None (its footer is read)."""
    schemas, parts = index.get("schemas"), index.get("parts")
    if not isinstance(schemas, dict) or not isinstance(parts, dict) \
            or schemas.get(table) != _fingerprint(table):
        return None
    entry = parts.get(f"{table}/{name}")
    if isinstance(entry, list) and len(entry) == 3 and all(isinstance(v, int) for v in entry) \
            and entry[1] == st.st_size and entry[2] == st.st_mtime_ns:
        return entry[0], True
    return None


#: Part indexes read by this process: the index file's size and time when read, its content.
_INDEXES: dict[Path, tuple[tuple[int, int], dict[str, Any]]] = {}


#: How many parts' footer facts `part_footer` remembers (about 300 bytes each).
FOOTERS_KEPT = 65_536


_FOOTERS: dict[tuple[str, int, int, str], tuple[int, bool]] = {}
