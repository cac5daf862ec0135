"""Building blocks of report.html: cells, tables that fit the width (sortable and filterable
by the page's little script, plain tables without it), and rows of a stored run read a batch
at a time. Every value from the traffic goes through `svg.esc`."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .schemas import ReportLike
from .svg import esc, fmt_ms, missing

#: Rows of one table on the page; the table files hold every row.
MAX_ROWS = 1000

STATUS_CLASSES = {"Failure": "bad", "Warning": "warn", "Cancel": "muted"}


def name(capture: object) -> str:
    """A capture's file name (the column holds the path as given)."""
    return Path(str(capture)).name


def anchor(capture_index: int, assoc_id: object) -> str:
    return f"assoc-{capture_index}-{assoc_id}"


def when(value: object) -> str:
    """A capture timestamp as people read it: 2026-01-05 10:00:00.123456 (UTC)."""
    if missing(value):
        return ""
    return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S.%f")  # type: ignore[arg-type]


def ms(value: object) -> str:
    return "" if missing(value) else fmt_ms(float(value))  # type: ignore[arg-type]


def count(value: object) -> str:
    return "" if missing(value) else f"{int(value):,}"  # type: ignore[call-overload]


def status(hex_text: object, category: object, text: object = None) -> str:
    """A status as DICOM engineers read it (0xA700), coloured by category, its meaning as
    the tooltip."""
    if missing(hex_text):
        return ""
    cls = STATUS_CLASSES.get(str(category), "")
    title = f' title="{esc(text)}"' if not missing(text) else ""
    return f"<span class='status {cls}'{title}>{esc(hex_text)}</span>"


class Col:
    """One column of a page table: its heading, how a row renders (HTML, already escaped)
    and the value it sorts by (a number, or None to sort by the text)."""

    def __init__(self, heading: str, render: Callable[[dict[str, Any]], str],
                 sort: Callable[[dict[str, Any]], float | None] | None = None,
                 cls: str = "") -> None:
        self.heading, self.render, self.sort, self.cls = heading, render, sort, cls


def text_col(heading: str, key: str, cls: str = "") -> Col:
    """A column of text from the traffic (``cls`` "tight": kept on one line)."""
    return Col(heading, lambda r: esc(r.get(key)), cls=cls)


def num_col(heading: str, key: str, fmt: Callable[[object], str] = count) -> Col:
    return Col(heading, lambda r: fmt(r.get(key)), lambda r: _num(r.get(key)), cls="num")


def _num(value: object) -> float | None:
    if missing(value):
        return None
    if isinstance(value, pd.Timestamp):
        return float(value.value)
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def table(rows: Sequence[dict[str, Any]], cols: Sequence[Col], *, total: int | None = None,
          row_class: Callable[[dict[str, Any]], str] | None = None, table_id: str = "",
          what: str = "rows", empty: str = "none") -> str:
    """A ``table.data`` (the script makes it sortable and filterable), at most MAX_ROWS
    rows, with a line saying how many there are in all when that is more."""
    if not rows:
        return f"<p class='muted'>{esc(empty)}</p>"
    total = len(rows) if total is None else total
    head = "".join(f"<th class='{c.cls}'>{esc(c.heading)}</th>" if c.cls else
                   f"<th>{esc(c.heading)}</th>" for c in cols)
    body = []
    for r in rows[:MAX_ROWS]:
        cls = f" class='{esc(row_class(r))}'" if row_class else ""
        cells = []
        for c in cols:
            key = c.sort(r) if c.sort else None
            data = f" data-v='{key!r}'" if key is not None else ""
            kind = f" class='{c.cls}'" if c.cls else ""
            cells.append(f"<td{kind}{data}>{c.render(r)}</td>")
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    ident = f" id='{esc(table_id)}'" if table_id else ""
    more = (f"<p class='notice'>The first {min(len(rows), MAX_ROWS):,} of {total:,} {what} "
            "are shown; the table files hold all of them.</p>"
            if total > min(len(rows), MAX_ROWS) else "")
    return (f"<div class='tablewrap'><table class='data'{ident}><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>{more}")


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows as dicts, values as ``DataFrame.to_dict("records")`` gives them (a null is
    None), a column at a time: to_dict reads every column of the frame anew for each call,
    which the report's many small frames (one association's rows) paid again and again."""
    names = [str(c) for c in df.columns]
    if not names:
        return [{} for _ in range(len(df))]
    columns = [col.tolist() if col.dtype == object else
               [None if v is pd.NA else v for v in col.tolist()] for _, col in df.items()]
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def gather(report: ReportLike, name_: str, columns: list[str] | None = None,
           filters: Sequence[tuple[str, str, Any]] = ()) -> pd.DataFrame:
    """A (small) table, or a selection of one, read a batch at a time."""
    chunks = [b for b in report.batches(name_, columns, filters) if len(b)]
    if chunks:
        return pd.concat(chunks, ignore_index=True)
    from .schemas import frame

    empty = frame(name_, [])
    return empty[columns] if columns else empty


#: How many associations' rows become dicts together (`records` costs about a millisecond a
#: call whatever the rows: one call per association was most of a large report's time).
CONVERT_KEYS = 8


def _together(key: tuple[Any, int], order: Iterable[tuple[Any, int]],
              done: Container[tuple[Any, int]]) -> list[tuple[Any, int]]:
    """``key`` and the next keys of ``order`` not yet ``done``: `CONVERT_KEYS` in all."""
    return [key] + [k for k in order if k not in done and k != key][:CONVERT_KEYS - 1]


class RowsByKey(Mapping[tuple[Any, int], dict[str, Any]]):
    """The rows of a table with one row per association (capture, assoc_id), made dicts
    only when asked for, `CONVERT_KEYS` at a time in the order of ``first`` (the keys a
    page will ask for): thousands of associations held as dicts cost tens of MB."""

    def __init__(self, df: pd.DataFrame, first: Iterable[tuple[Any, int]] = ()) -> None:
        self.df = df.reset_index(drop=True)
        self.at = {(c, int(a)): i for i, (c, a) in enumerate(zip(
            self.df["capture"].tolist(), self.df["assoc_id"].tolist(), strict=True))}
        self.first = [k for k in first if k in self.at]
        self.made: dict[tuple[Any, int], dict[str, Any]] = {}

    def __getitem__(self, key: tuple[Any, int]) -> dict[str, Any]:
        row = self.made.get(key)
        if row is None:
            at = self.at[key]  # KeyError: not a row of the table
            keys = _together(key, self.first, self.made)
            rows = records(self.df.iloc[[at] + [self.at[k] for k in keys[1:]]])
            self.made.update(zip(keys, rows, strict=True))
            row = self.made[key]
        return row

    def __iter__(self) -> Iterator[tuple[Any, int]]:
        return iter(self.at)

    def __len__(self) -> int:
        return len(self.at)


class KeyedRows(Mapping[tuple[Any, int], list[dict[str, Any]]]):
    """Rows of some associations, kept as spans of the DataFrames they were read in (a
    fraction of the memory of Python dicts: 60 associations of 200 operations were 40 MB
    as dicts) and made dict rows `CONVERT_KEYS` associations at a time, in the order of
    the keys (the order the page asks for them), each association's handed out once."""

    def __init__(self, keys: Iterable[tuple[Any, int]]) -> None:
        #: (frame, start, stop): rows start to stop of the frame, in the order added
        self.pieces: dict[tuple[Any, int], list[tuple[pd.DataFrame, int, int]]] = {
            k: [] for k in keys}
        self.counts: dict[tuple[Any, int], int] = dict.fromkeys(self.pieces, 0)
        self.made: dict[tuple[Any, int], list[dict[str, Any]]] = {}
        self.done: set[tuple[Any, int]] = set()  # converted (and perhaps handed out)

    def __getitem__(self, key: tuple[Any, int]) -> list[dict[str, Any]]:
        if key not in self.pieces:
            raise KeyError(key)
        if key not in self.done:
            keys = _together(key, self.pieces, self.done)
            made = _spans_as_records([p for k in keys for p in self.pieces[k]])
            for k in keys:
                self.made[k] = [r for df, a, b in self.pieces[k] for r in made[id(df), a, b]]
                self.pieces[k] = []
                self.done.add(k)
        return self.made.pop(key, [])

    def add(self, key: tuple[Any, int], rows: pd.DataFrame, limit: int,
            start: int = 0, stop: int | None = None) -> None:
        """Rows ``start`` to ``stop`` of ``rows`` (all: None) of ``key``, as many as keep
        its rows within ``limit`` (a long association has hundreds of thousands: the
        first are kept); keys not asked for are ignored."""
        room = self.room(key, limit)
        stop = len(rows) if stop is None else stop
        if room > 0 and stop > start:
            n = min(room, stop - start)
            self.pieces[key].append((rows, start, start + n))
            self.counts[key] += n

    def room(self, key: tuple[Any, int], limit: int) -> int:
        """How many more rows of ``key`` `add` would keep (0: a key not asked for)."""
        return limit - self.counts.get(key, limit)

    def __iter__(self) -> Iterator[tuple[Any, int]]:
        return iter(self.pieces)

    def __len__(self) -> int:
        return len(self.pieces)


def rows_for(report: ReportLike, table_name: str, columns: list[str] | None,
             keys: Iterable[tuple[Any, int]], per_assoc: int, index: str | None = None
             ) -> KeyedRows:
    """The rows of the associations ``keys`` ((capture, assoc_id) pairs), at most
    ``per_assoc`` each, in one pass over the table a batch at a time (never the whole
    table in memory). ``index``: a column that numbers each association's rows from 0
    (op_index): only the first ``per_assoc`` are read at all."""
    out = KeyedRows(keys)
    captures = {c for c, _ in out}
    aids = {a for _, a in out}
    if not out:
        return out
    filters: list[tuple[str, str, Any]] = [("assoc_id", "in", sorted(aids))]
    if index is not None:
        filters.append((index, "<", per_assoc))
    for batch in report.batches(table_name, columns, filters):
        hit = batch[(batch["capture"].isin(captures) & batch["assoc_id"].isin(aids)).fillna(
            False).to_numpy(dtype=bool)]
        # each association's rows found in one pass, those kept taken from the batch in
        # one go and handed out as slices of it: a groupby took the rows of every
        # association apart (a third of the sections' time)
        groups: dict[tuple[Any, int], list[int]] = {}
        for i, (c, a) in enumerate(zip(hit["capture"].tolist(), hit["assoc_id"].tolist(),
                                       strict=True)):
            groups.setdefault((c, int(a)), []).append(i)
        kept: list[int] = []
        spans = []
        for key, at in groups.items():
            room = out.room(key, per_assoc)
            if room > 0:
                spans.append((key, len(kept), len(kept) + min(room, len(at))))
                kept.extend(at[:room])
        if kept:
            rows = hit.iloc[kept]
            for key, start, stop in spans:
                out.add(key, rows, per_assoc, start, stop)
    return out


def _spans_as_records(spans: list[tuple[pd.DataFrame, int, int]]
                      ) -> dict[tuple[int, int, int], list[dict[str, Any]]]:
    """`records` of each (frame, start, stop), by (id(frame), start, stop): a frame's spans
    made dicts together, in one slice where they follow one another (the rows of several
    associations as read), else in one take. Sliced apart first, each association's rows
    cost a slice of every column, and their concatenation a copy."""
    by_frame: dict[int, tuple[pd.DataFrame, list[tuple[int, int]]]] = {}
    for df, a, b in spans:
        by_frame.setdefault(id(df), (df, []))[1].append((a, b))
    out: dict[tuple[int, int, int], list[dict[str, Any]]] = {}
    for fid, (df, ranges) in by_frame.items():
        ranges = sorted(set(ranges))
        made = records(rows_at(df, [i for a, b in ranges for i in range(a, b)]))
        at = itertools.accumulate((b - a for a, b in ranges[:-1]), initial=0)
        for (a, b), i in zip(ranges, at, strict=True):
            out[fid, a, b] = made[i:i + b - a]
    return out


def rows_at(df: pd.DataFrame, index: list[int]) -> pd.DataFrame:
    """Rows ``index`` (positions) of ``df``: one slice where they follow one another (as
    read, the usual case), else a take, which copies every column."""
    if index and index == list(range(index[0], index[0] + len(index))):
        return df.iloc[index[0]:index[0] + len(index)]
    return df.iloc[index]
