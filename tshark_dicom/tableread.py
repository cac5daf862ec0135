"""The output folder's tables read back (store.py writes them): a table, or the columns
asked for, a group of parts at a time (`read_table`), or scanned a batch at a time with
filters (`scan_table`), each with every table's dtypes (`typed_frame`). What the run's
process, `load(OUT)` and the summary and report.html read; a worker that only writes parts
never imports this (nor pandas).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pyarrow as pa
import pyarrow.parquet as pq

from .columns import RENAMED
from .safe import csv_uncell
from .schemas import SCHEMAS, frame
from .store import TABLES_DIR, arrow_schema, manifest_order, part_footer

if TYPE_CHECKING:
    import pandas as pd


#: Parts `read_table` reads together. A dataset over every part held each part's metadata
#: and buffers to the end of the read: the 81-column associations table of 500 captures
#: took 220 MB to read 700 rows; 32 parts at a time take 13-33 MB, and no longer.
READ_GROUP = 32


def read_table(folder: Path, table: str, columns: Sequence[str] | None = None,
               filters: Any = None) -> pd.DataFrame | None:
    """A table of an output folder with the schema's dtypes, parts in the order of the run
    (``columns``/``filters`` as pyarrow takes them, Parquet only); None if it is not there."""
    import pandas as pd

    parts = folder / TABLES_DIR / table
    if parts.is_dir() and any(parts.glob("*.parquet")):
        files = run_order(folder, parts.glob("*.parquet"))
        if _current(files, table):  # this version's parts: read READ_GROUP at a time
            # without Arrow's thread pool, as every read here: its threads, once started,
            # live on, and a process with threads forks no --jobs workers (workers.py;
            # --resume reads the captures table first). Parts without rows (their footers
            # say so, known already) are not opened: in an archive of small captures about
            # half the parts, most of queries, commitments and the like.
            files = with_rows(files, table)
            df = pa.concat_tables([_read_group(files[i:i + READ_GROUP], table, columns, filters)
                                   for i in range(0, len(files), READ_GROUP)]
                                  or [wanted_schema(table, columns).empty_table()]).to_pandas(
                                       use_threads=False)
            # typed as read (`_as_written`): typing them as the whole table first made
            # each column not read an empty one, and took the slow way for all of them
            return typed_frame(table, df, columns)
        else:
            chunks = [_read_part(f, table, columns, filters) for f in files]
            df = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()
    elif (folder / "csv" / table).is_dir():
        files = run_order(folder, (folder / "csv" / table).glob("*.csv"))
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


def _read_group(files: Sequence[Path], table: str, columns: Sequence[str] | None,
                filters: Any) -> pa.Table:
    """Some parts of this version as one Arrow table (a chunk per column). Without
    filters a part at a time: twice as fast as a pyarrow dataset over the same parts
    (2,000 parts, 4 columns: 0.5 s against 1.0-1.2 s), whose per-fragment machinery costs
    more than these small parts' data."""
    if filters is not None:
        import pyarrow.dataset as ds  # its import asks pyarrow's pandas question

        return ds.dataset([str(f) for f in files], schema=arrow_schema(table),
                          format="parquet").to_table(
            columns=list(columns) if columns else None, filter=_expression(filters),
            use_threads=False).combine_chunks()
    wanted = wanted_schema(table, columns)
    names = wanted.names
    pieces = []
    for f in files:
        with pq.ParquetFile(f, pre_buffer=False) as part:
            pieces.append(pa.Table.from_arrays(
                part.read(columns=names, use_threads=False).columns, schema=wanted))
    return pa.concat_tables(pieces).combine_chunks()


def run_order(folder: Path, files: Iterable[Path]) -> list[Path]:
    """A table's parts (files named by capture key) in the order they are read: the run's
    (its manifest), then the others by name."""
    rank = {k: i for i, k in enumerate(manifest_order(folder) or ())}
    return sorted(files, key=lambda p: (rank.get(p.stem, len(rank)), p.name))


def wanted_schema(table: str, columns: Sequence[str] | None) -> pa.Schema:
    """The schema of ``columns`` of ``table`` (all of them: None), as parts are read."""
    schema = arrow_schema(table)
    names = list(columns) if columns else schema.names
    return pa.schema([schema.field(n) for n in names], metadata=schema.metadata)


def _expression(filters: Any) -> Any:
    """pyarrow's filters for pq.read_table (a list of (column, op, value) tuples, or an
    Expression) as a dataset Expression."""
    import pyarrow.compute as pc  # not at the top: 0.04 s of every run's start

    if filters is None or isinstance(filters, pc.Expression):
        return filters
    return pq.filters_to_expression(filters)


def _read_csv(path: Path) -> pd.DataFrame:
    """A CSV part as text, with the apostrophes `csv_frame` put before formulas taken off."""
    import pandas as pd

    df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    return df.apply(lambda col: col.map(csv_uncell, na_action="ignore")) if len(df) else df


def _read_part(path: Path, table: str, columns: Sequence[str] | None,
               filters: Any) -> pd.DataFrame:
    """One Parquet part; a part written before a column was renamed (columns.RENAMED) is
    read under its old names and renamed, and of ``columns`` those a part written before
    they existed lacks are not asked of it (typed_frame adds them, empty)."""
    old = {new: o for o, new in RENAMED.get(table, {}).items()}
    names = set(pq.read_schema(path).names) if old or columns else set()
    legacy = {new: o for new, o in old.items() if o in names and new not in names}
    cols = [c for c in (legacy.get(c, c) for c in columns) if c in names] if columns else None
    df: pd.DataFrame = pq.read_table(path, columns=cols, filters=filters,
                                     use_threads=False).to_pandas(use_threads=False)
    return df.rename(columns={o: new for new, o in legacy.items()}) if legacy else df


def _current(files: Sequence[Path], table: str) -> bool:
    """Whether every part has this version's schema (names and types)."""
    return all(part_footer(f, table)[1] for f in files)


def with_rows(files: Sequence[Path], table: str) -> list[Path]:
    """The parts that hold rows, from their footers (known from the part index: none read)."""
    return [f for f in files if part_footer(f, table)[0]]


def part_rows(files: Sequence[Path], table: str) -> int:
    """How many rows the parts hold, from their footers (no data read)."""
    return sum(part_footer(f, table)[0] for f in files)


#: A scanned batch holds about this many values (rows x columns): a narrow one has many rows.
BATCH_CELLS = 65_536


#: The comparisons `scan_table` and `filter_frame` take, as pyarrow's filters do.
_COMPARE: dict[str, Callable[[pd.Series, Any], pd.Series]] = {
    "==": lambda s, v: s == v, "!=": lambda s, v: s != v, "<": lambda s, v: s < v,
    "<=": lambda s, v: s <= v, ">": lambda s, v: s > v, ">=": lambda s, v: s >= v,
    "in": lambda s, v: s.isin(list(v)), "not in": lambda s, v: ~s.isin(list(v)),
}


def filter_frame(df: pd.DataFrame, filters: Sequence[tuple[str, str, Any]]) -> pd.DataFrame:
    """The rows of ``df`` where every ``(column, op, value)`` holds (a null never does)."""
    for col, op, value in filters:
        df = df[_COMPARE[op](df[col], value).fillna(False).to_numpy(dtype=bool)]
    return df


def scan_table(folder: Path, table: str, columns: Sequence[str] | None = None,
               filters: Sequence[tuple[str, str, Any]] = (),
               batch_rows: int | None = None) -> Iterator[pd.DataFrame]:
    """A table of an output folder a batch at a time (typed as the schema says, only
    ``columns``), rows matching every ``(column, op, value)`` filter (`filter_frame`'s
    ops): memory holds one batch, however large the table (``batch_rows``, by default
    about `BATCH_CELLS` values). Parquet parts are read one at a time, in the order of the
    run; a CSV-only folder is read whole."""
    parts = folder / TABLES_DIR / table
    files = run_order(folder, parts.glob("*.parquet")) if parts.is_dir() else []
    cols = list(columns) if columns else list(SCHEMAS[table])
    if batch_rows is None:
        batch_rows = max(1_024, min(16_384, BATCH_CELLS // len(cols)))
    if not files:
        df = read_table(folder, table)
        if df is None:
            return
        df = filter_frame(df, filters)
        yield df[cols].reset_index(drop=True)
        return
    if not _current(files, table):  # parts of an earlier version: one whole part at a time
        for f in files:
            df = filter_frame(typed_frame(table, _read_part(f, table, None, None)), filters)
            if len(df):
                yield df[cols].reset_index(drop=True)
        return
    files = with_rows(files, table)
    expr = pq.filters_to_expression(list(filters)) if filters else None
    wanted = cols + [c for c, _, _ in filters if c not in cols]
    # One part, one batch at a time, filtered in pyarrow before pandas sees it. Not
    # pyarrow.dataset: its scanner (even without read-ahead) keeps several decoded row
    # groups in flight, which on a table of a million rows was the run's peak of memory.
    # Batches of small parts (an archive of many captures) are gathered up to batch_rows
    # before they become one DataFrame: the conversion costs milliseconds a call whatever
    # the rows, and a report scans a table of a thousand parts several times.
    pending: list[pa.Table] = []
    held = 0
    for f in files:
        # no pre-buffering either: it reads every row group's columns ahead
        for batch in pq.ParquetFile(f, pre_buffer=False).iter_batches(
                batch_size=batch_rows, columns=wanted, use_threads=False):
            if expr is not None:
                batch = batch.filter(expr)
            if not batch.num_rows:
                continue
            # without the parts' metadata (older parts' column descriptions may differ)
            pending.append(pa.Table.from_arrays(batch.select(cols).columns, names=cols))
            held += batch.num_rows
            if held >= batch_rows:
                yield typed_frame(table, pa.concat_tables(pending).to_pandas(use_threads=False),
                                  cols)
                pending, held = [], 0
    if pending:
        yield typed_frame(table, pa.concat_tables(pending).to_pandas(use_threads=False), cols)


def typed_frame(table: str, df: pd.DataFrame,
                columns: Sequence[str] | None = None) -> pd.DataFrame:
    """A table as read from disk, with the schema's columns and dtypes."""
    import pandas as pd

    fast = _as_written(table, df, columns)
    if fast is not None:
        return fast
    out: dict[str, Any] = {}
    renamed = {o: new for o, new in RENAMED.get(table, {}).items()
               if o in df.columns and new not in df.columns}
    if renamed:  # written before the rename (CSV, the one-file layout)
        df = df.rename(columns=renamed)
    wanted = set(columns) if columns is not None else None
    for col, dtype in SCHEMAS[table].items():
        if wanted is not None and col not in wanted:
            continue
        values = df[col] if col in df.columns else pd.Series([None] * len(df), dtype=object)
        if dtype != "object" and values.dtype == _pandas_dtype(dtype):
            out[col] = values  # as Parquet's pandas metadata gave it back: nothing to do
        elif dtype == "object":  # lists: arrays from Parquet, JSON arrays in CSV
            out[col] = values.map(_list_value).astype(object)  # no rows: map keeps str
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
    if table == "query_keys" and "vr" in typed and "value" in typed:
        # CSV cannot tell "" from null: only a sequence has no value
        blank = typed["value"].isna() & (typed["vr"] != "SQ").fillna(True)
        typed.loc[blank, "value"] = ""
    if len(typed.columns):
        return typed[list(columns)] if columns is not None else typed
    empty = frame(table, [])
    return empty[list(columns)] if columns is not None else empty


def _as_written(table: str, df: pd.DataFrame,
                columns: Sequence[str] | None) -> pd.DataFrame | None:
    """`typed_frame` of a frame whose columns all have the schema's dtypes already (Parquet
    parts of this version: their pandas metadata gives them back): the columns taken as
    they are, only the lists made lists. None for any other frame. Rebuilding such a frame
    column by column took as long as reading it (the 81 columns of associations: 5 ms
    against 1 ms), for each table the summary and the page read."""
    import pandas as pd

    schema = SCHEMAS[table]
    wanted = set(columns) if columns is not None else None
    names = [c for c in schema if wanted is None or c in wanted]
    have = df.dtypes.to_dict()
    if not names or not df.index.equals(pd.RangeIndex(len(df))) or \
            not all(c in have and (schema[c] == "object" or have[c] == _pandas_dtype(schema[c]))
                    for c in names):
        return None
    typed = df[names].copy(deep=False)  # a frame of its own (no chained assignment below)
    for col in names:
        if schema[col] == "object":  # lists: arrays from Parquet
            typed[col] = typed[col].map(_list_value).astype(object)
    return typed[list(columns)] if columns is not None else typed


@functools.cache
def _pandas_dtype(dtype: str) -> Any:
    """SCHEMAS' dtype name as the dtype pandas compares with (``string`` with its storage)."""
    import pandas as pd

    return pd.api.types.pandas_dtype(dtype)


def _list_value(v: object) -> list[Any] | None:
    if isinstance(v, str):
        return list(json.loads(v)) if v.startswith("[") else v.split(" ") if v else None
    if v is None or not hasattr(v, "__len__"):
        return None
    return [x.item() if hasattr(x, "item") else x for x in v]  # type: ignore[attr-defined]
