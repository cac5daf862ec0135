"""Report: the tables, written as Parquet/CSV, and a short human summary."""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pandas as pd
import pyarrow as pa

from . import memory
from .devices import ASSOCIATION_COLUMNS as DEVICE_READS
from .devices import OPERATION_COLUMNS as DEVICE_OPERATION_READS
from .devices import Devices
from .errors import OptionsError, TsharkDicomError
from .negotiation import CONTEXT_COLUMNS as NEGOTIATION_READS
from .negotiation import COUNT_COLUMNS as NEGOTIATION_COUNT_READS
from .negotiation import RETRIEVAL_COLUMNS as RETRIEVAL_READS
from .negotiation import Negotiation, Retrievals
from .safe import visible_lines
from .schemas import SCHEMAS, SEVERITIES, TABLES, frame
from .store import (
    FORMATS,
    TABLES_DIR,
    handed_table,
    has_results,
    output_mode,
    rows_of,
    safe_key,
    write_manifest,
    write_parts,
)
from .studies import StoreCounts
from .swap import recover
from .tableread import (
    filter_frame,
    part_rows,
    read_table,
    run_order,
    scan_table,
    typed_frame,
    wanted_schema,
)

log = logging.getLogger(__name__)


@dataclass
class Report:
    """What `tshark_dicom.analyze` returns: one DataFrame per table (SPEC.md)."""

    associations: pd.DataFrame = field(default_factory=lambda: frame("associations", []))
    presentation_contexts: pd.DataFrame = field(
        default_factory=lambda: frame("presentation_contexts", []))
    messages: pd.DataFrame = field(default_factory=lambda: frame("messages", []))
    objects: pd.DataFrame = field(default_factory=lambda: frame("objects", []))
    findings: pd.DataFrame = field(default_factory=lambda: frame("findings", []))
    operations: pd.DataFrame = field(default_factory=lambda: frame("operations", []))
    queries: pd.DataFrame = field(default_factory=lambda: frame("queries", []))
    query_keys: pd.DataFrame = field(default_factory=lambda: frame("query_keys", []))
    connection_attempts: pd.DataFrame = field(
        default_factory=lambda: frame("connection_attempts", []))
    commitments: pd.DataFrame = field(default_factory=lambda: frame("commitments", []))
    procedure_steps: pd.DataFrame = field(
        default_factory=lambda: frame("procedure_steps", []))
    throughput: pd.DataFrame = field(default_factory=lambda: frame("throughput", []))
    captures: pd.DataFrame = field(default_factory=lambda: frame("captures", []))
    #: files in the folders given that were not captures, and why (not a table)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def concat(cls, parts: list[dict[str, pd.DataFrame]]) -> Report:
        tables = {}
        for t in TABLES:
            frames = [p[t] for p in parts if t in p and len(p[t])]
            tables[t] = (pd.concat(frames, ignore_index=True) if frames else frame(t, []))
        return cls(**cast(Any, tables))

    def table(self, name: str) -> pd.DataFrame:
        if name not in SCHEMAS:
            raise KeyError(name)
        df: pd.DataFrame = getattr(self, name)
        return df

    def write(self, out: str | os.PathLike[str], format: str = "parquet",
              shared: bool = False) -> list[Path]:
        """Write every table into ``out`` as datasets with one part per capture (see
        store.py for the layout), and the run's manifest.

        Each part is written under a temporary name and renamed into place, so a part is
        always whole. Files and folders are created readable by their owner only unless
        ``shared``.
        """
        if format not in FORMATS:
            raise OptionsError(f"unknown format {format!r}: choose parquet, csv or both")
        folder = Path(out)
        written: list[Path] = []
        keys = []
        with output_mode(shared):
            folder.mkdir(parents=True, exist_ok=True)
            for label, key in self._capture_keys():
                keys.append(key)
                tables = {t: rows_of(self.table(t), label) for t in TABLES}
                written.extend(write_parts(folder, key, tables, format))
            write_manifest(folder, keys, format)
        return written

    def _capture_keys(self) -> list[tuple[str, str]]:
        """(label, key) of every capture: from the captures table, else from the labels
        the tables carry (a Report put together by hand)."""
        caps = self.captures
        if len(caps):
            return list(zip(caps["capture"].tolist(), caps["key"].tolist(), strict=True))
        labels: list[str] = []
        for t in TABLES:
            labels.extend(str(c) for c in self.table(t)["capture"].dropna().tolist())
        return [(c, safe_key(Path(c).name))
                for c in dict.fromkeys(labels)]

    def diagnose(self) -> str:
        """The findings grouped by association, most severe first, in plain sentences, a
        C-MOVE with its callbacks and sub-operations beneath it (`tshark-dicom diagnose`)."""
        from .diagnose import render

        return render(self)

    def diagnose_records(self) -> list[dict[str, Any]]:
        """The diagnosis as JSON Lines records (`tshark-dicom diagnose --json`): per capture
        its counts, then each of its findings with its association."""
        from .diagnose import records

        return records(self)

    def to_html(self, title: str = "tshark-dicom report") -> str:
        """The whole report as one self-contained HTML page."""
        from .htmlreport import page_reads, render

        self.expect(page_reads())
        return render(self, title)

    def write_html(self, path: str | Path, title: str = "tshark-dicom report") -> None:
        """`to_html` written to ``path`` (UTF-8) without the whole page in one string."""
        from .htmlreport import page_reads, write

        self.expect(page_reads())
        write(self, Path(path), title)

    def batches(self, table: str, columns: list[str] | None = None,
                filters: Sequence[tuple[str, str, Any]] = ()) -> Iterator[pd.DataFrame]:
        """A table a batch at a time (only ``columns``; rows where every
        ``(column, op, value)`` holds, ops as pyarrow's filters: ``==``, ``<``, ``in``...):
        for aggregates over tables too large to load."""
        df = filter_frame(self.table(table), filters)
        yield df[columns] if columns else df

    def expect(self, reads: Mapping[str, Sequence[str]]) -> None:
        """Columns of these tables that will be asked for: nothing to plan for tables in
        memory (`StoredReport.expect`)."""

    def _gather(self, table: str, columns: list[str]) -> pd.DataFrame:
        chunks = list(self.batches(table, columns))
        return pd.concat(chunks, ignore_index=True) if chunks else frame(table, [])[columns]

    def summary(self) -> str:
        """A few lines a person reads first: what happened, and what to look at. Reads
        the large tables a batch at a time."""
        a = self._gather("associations", SUMMARY_READS["associations"])
        f = self._gather("findings", SUMMARY_READS["findings"])
        messages, commands = 0, Counter[str]()
        for m in self.batches("messages", SUMMARY_READS["messages"]):
            messages += len(m)
            commands.update(m["command"].fillna("").tolist())
        objects = complete = written = 0
        stored = StoreCounts()
        for o in self.batches("objects", SUMMARY_READS["objects"]):
            objects += len(o)
            complete += int(o["complete"].sum())
            written += int(o["path"].notna().sum())
            stored.add(o)
        results = a["result"].value_counts().to_dict() if len(a) else {}
        parts = [f"{n:,} {r}" for r, n in sorted(results.items())]
        caps = self.captures
        failed = caps[caps["status"] == "failed"] if len(caps) else caps
        retrievals = Retrievals()  # the C-MOVEs that lost nothing, for the negotiation
        lines = [
            f"{max(len(caps), len(set(a['capture']))):,} capture(s): "
            f"{_plural(len(a), 'association')}"
            + (f" ({', '.join(parts)})" if parts else "")
            + (f"; {len(failed):,} could not be analysed" if len(failed) else ""),
            _messages_line(messages, commands),
            f"{objects:,} data sets: {complete:,} complete, {written:,} written as Part-10 files",
            *stored.lines(),
            _operations_line(self.batches("operations", SUMMARY_READS["operations"]),
                             retrievals),
            *_device_lines(a, self.batches("presentation_contexts",
                                           SUMMARY_READS["presentation_contexts"]),
                           retrievals),
            *self._commitments_line(),
            *self._steps_line(),
            "findings: " + ", ".join(_plural(int((f["severity"] == s).sum()), s)
                                     for s in SEVERITIES),
        ]
        rank = {s: i for i, s in enumerate(SEVERITIES)}
        serious = f[f["severity"].isin(["error", "warning"])]
        worst = serious.assign(_r=serious["severity"].map(rank)).sort_values(
            ["_r", "capture", "frame"], kind="stable").head(8)
        many = len(set(a["capture"]) | set(f["capture"])) > 1
        for row in worst.itertuples():
            where = f"{Path(str(row.capture)).name}: " if many else ""
            lines.append(f"  {row.severity}: {where}[{row.code}] {row.summary}")
        if len(serious) > len(worst):
            lines.append("  ... (see findings table)")
        notes = f[f["code"] == "no-dicom"]
        for row in notes.head(8).itertuples():
            lines.append(f"  note: {row.summary}")
        if len(notes) > 8:
            lines.append(f"  ... and {len(notes) - 8} more captures without a DICOM "
                         "association (see findings, code no-dicom)")
        for row in failed.head(8).itertuples():
            lines.append(f"  failed: {row.error}")
        if len(failed) > 8:
            lines.append(f"  ... and {len(failed) - 8} more failed (see the captures table)")
        for path, why in self.skipped[:8]:
            lines.append(f"  skipped: {path}: {why}")
        if len(self.skipped) > 8:
            lines.append(f"  ... and {len(self.skipped) - 8} more files skipped")
        return visible_lines(lines)  # values from the traffic cannot break a line or the terminal

    def studies(self) -> pd.DataFrame:
        """Which studies the C-STOREs carried, by route (from which AE to which): one row
        each with its modalities, series and objects, how many were stored and why the
        others were not (failed, unanswered; warned and incomplete in the capture counted
        apart), those with objects not stored first; the tables read a batch at a time
        (studies.py, as report.html's "Studies stored")."""
        from .studies import ASSOCIATION_COLUMNS, OBJECT_COLUMNS, OPERATION_COLUMNS, Studies

        tally = Studies(self._gather("associations", ASSOCIATION_COLUMNS))
        for ops in self.batches("operations", OPERATION_COLUMNS):
            tally.outcomes(ops)
        for objs in self.batches("objects", OBJECT_COLUMNS):
            tally.add(objs)
        return tally.frame()

    def devices(self) -> pd.DataFrame:
        """The DICOM devices that took part (an AE title on a host): the ports each
        listened on, the software it announced (Implementation Version Name and Class
        UID), its maximum PDU length, the requests it sent and answered (by command and
        SOP class), the associations it requested and those requested of it, those refused
        to it and by it, aborted, and the operations that failed in them; those with
        trouble first (devices.py, as report.html's "Devices")."""
        tally = self._devices_of_associations()
        for ops in self.batches("operations", DEVICE_OPERATION_READS):
            tally.outcomes(ops)
        return tally.frame()

    def negotiation(self) -> pd.DataFrame:
        """What each device accepted: every abstract syntax (SOP class) proposed to a
        device (an AE title on a host, as `devices`), how often, how often it accepted it
        and with which transfer syntaxes, how often it rejected it and why, the transfer
        syntaxes offered in the contexts it refused for them, how many went unanswered
        (the association refused whole, or never answered), and who proposed it; the devices
        that never accepted the largest share of what they were proposed first, and on
        each the SOP classes it never accepted, then those it refused in some contexts only
        (negotiation.py, as report.html's "Negotiation"). ``rejected_not_needed`` counts the
        rejections on the callbacks of C-MOVEs that lost nothing (the archive proposes every
        storage class it knows): those alone do not put a SOP class first."""
        retrievals = Retrievals()
        for ops in self.batches("operations", RETRIEVAL_READS):
            retrievals.add(ops)
        negotiation = Negotiation(self._devices_of_associations(), retrievals.lossless)
        for pcs in self.batches("presentation_contexts", NEGOTIATION_READS):
            negotiation.contexts(pcs)
        return negotiation.frame()

    def _devices_of_associations(self) -> Devices:
        """The devices of every association, read a batch at a time (`devices`,
        `negotiation`)."""
        tally = Devices()
        for assocs in self.batches("associations", DEVICE_READS):
            tally.add(assocs)
        return tally

    def _commitments_line(self) -> list[str]:
        """Storage Commitment transactions by outcome, when the captures have any."""
        found = self._outcomes("commitments", lambda c: c["failed_count"])
        if found is None:
            return []
        outcomes, failed = found
        words = {"failures": "with failures", "refused": "refused (N-ACTION failed)"}
        return [f"storage commitment: {_plural(sum(outcomes.values()), 'transaction')} "
                f"({_counted(outcomes, words)})"
                + (f"; {_plural(failed, 'instance')} not committed" if failed else "")]

    def _steps_line(self) -> list[str]:
        """MPPS procedure steps by outcome, when the captures have any."""
        found = self._outcomes("procedure_steps", lambda p: (
            p["image_count"] - p["stored_count"]).where(p["stored_count"] > 0))
        if found is None:
            return []
        outcomes, missing = found
        words = {"in-progress": "still in progress", "refused": "refused (N-CREATE failed)"}
        return [f"procedure steps (MPPS): {sum(outcomes.values()):,} "
                f"({_counted(outcomes, words)})"
                + (f"; {_plural(missing, 'listed image')} not stored" if missing else "")]

    def _outcomes(self, table: str, amount: Callable[[pd.DataFrame], pd.Series]
                  ) -> tuple[Counter[str], int] | None:
        """A table's rows by ``outcome`` and the sum of ``amount`` over them; None when the
        table has no row."""
        if not self.row_count(table):
            return None
        outcomes: Counter[str] = Counter()
        total = 0
        for batch in self.batches(table, SUMMARY_READS[table]):
            outcomes.update(batch["outcome"].fillna("").tolist())
            total += int(amount(batch).fillna(0).sum())
        return outcomes, total

    def row_count(self, table: str) -> int:
        """How many rows a table has."""
        return len(self.table(table))


def _counted(outcomes: Counter[str], words: Mapping[str, str]) -> str:
    """``2 committed, 1 with failures``: most first, each in ``words`` where it has one."""
    return ", ".join(f"{n:,} {words.get(o, o)}" for o, n in outcomes.most_common())


def _device_lines(assocs: pd.DataFrame, contexts: Iterator[pd.DataFrame],
                  retrievals: Retrievals) -> list[str]:
    """The devices and the software they announced (devices.py), then the SOP classes
    proposed to them and those they rejected (negotiation.py); nothing without devices."""
    tally = Devices()
    tally.add(assocs)
    negotiation = Negotiation(tally, retrievals.lossless)
    for pcs in contexts:
        negotiation.contexts(pcs)
    return [line for line in (tally.summary_line(), negotiation.summary_line()) if line]


def _messages_line(total: int, commands: Counter[str]) -> str:
    """Every command seen, by service (C-STORE-RQ next to C-STORE-RSP), and the messages
    whose command set could not be read (cut by the capture) counted as such."""
    unread = commands.pop("", 0)
    parts = [f"{n:,} {c}" for c, n in sorted(
        commands.items(), key=lambda cn: (cn[0].rsplit("-", 1)[0], cn[0].endswith("-RSP")))]
    if unread:
        parts.append(f"{unread:,} whose command could not be read")
    return f"{_plural(total, 'DIMSE message')}" + (f" ({', '.join(parts)})" if parts else "")


def _operations_line(batches: Iterable[pd.DataFrame], retrievals: Retrievals) -> str:
    """How many operations, how many were slow and on whom, and the slowest one; the
    C-MOVEs that lost nothing to ``retrievals``."""
    total, slow = 0, Counter[str]()
    worst: dict[str, Any] | None = None
    for ops in batches:
        total += len(ops)
        retrievals.add(ops)
        hit = ops[ops["bottleneck"].notna()]
        if not len(hit):
            continue
        slow.update(hit["bottleneck"].tolist())
        top = hit.sort_values("total_ms", ascending=False, na_position="last").iloc[0]
        if worst is None or _longer(top["total_ms"], worst["total_ms"]):
            worst = {str(k): v for k, v in top.items()}
    line = _plural(total, "operation")
    if worst is None:
        return line + ", none slow"
    who = {"scu": "the SCU", "scp": "the SCP", "network": "the network"}
    line += ", slow: " + ", ".join(f"{n} waiting on {who.get(str(b), b)}"
                                   for b, n in slow.most_common())
    return (line + f"; slowest: {worst['command']} {_ms_text(worst['total_ms'])} "
            f"({worst['bottleneck_detail']})")


def _longer(a: object, b: object) -> bool:
    """a > b for durations that may be missing (missing is shortest)."""
    if a is None or a is pd.NA or (isinstance(a, float) and pd.isna(a)):
        return False
    if b is None or b is pd.NA or (isinstance(b, float) and pd.isna(b)):
        return True
    return float(cast(float, a)) > float(cast(float, b))


def _ms_text(ms: object) -> str:
    if not isinstance(ms, float) or pd.isna(ms):
        return "unfinished"
    return f"{ms:,.0f} ms" if ms < 10_000 else f"{ms / 1000:,.1f} s"


def load(out: str | os.PathLike[str]) -> Report:
    """A run written by `Report.write` or ``tshark-dicom analyze -o OUT``, opened: each
    table is read on first use, with the schema's dtypes (Parquet first, else CSV); a table
    the folder lacks is empty. ``report.read(table, columns=..., filters=...)`` reads a
    selection without loading the whole table. A replacement of the results that a
    killed run left unfinished is first finished or undone (swap.py)."""
    folder = Path(out)
    if not folder.is_dir():
        raise OptionsError(f"{folder}: no such folder")
    try:  # a replacement a killed run left half done is finished or undone first
        recover(folder)
    except (OSError, TsharkDicomError) as exc:
        log.warning("%s", exc)
    if not has_results(folder):
        raise OptionsError(f"{folder}: no tables of tshark-dicom in it (run analyze -o first)")
    return StoredReport(folder)


#: A stored table of at most this many rows is loaded whole on first use by `batches`
#: (the report reads some tables once per association); larger ones are scanned a batch
#: at a time, so memory stays flat.
IN_MEMORY_ROWS = 2_000
#: Of larger tables of many parts (an archive: a part per capture), the columns `batches`
#: is asked for are kept (each read once) while all kept columns of all tables hold at most
#: this many values (rows x columns; 12-27 bytes a value measured, so 6-13 MB): the report
#: asks for the same columns of a table up to four times, and each scan opens every part
#: again (2,000 captures: 2,000 parts a scan). A table of few parts is scanned as before:
#: its scans are cheap, and memory stays flat however many rows one capture has.
KEPT_CELLS = 500_000
KEPT_MIN_PARTS = 32
#: Of the parts a run's workers hand back (`Handed`), the run's process keeps at most this
#: many values (rows x columns) for its report; a table beyond that is read back instead.
HANDED_CELLS = 1_000_000
#: `Handed` copies the parts it holds into one block per table this many parts at a time.
HANDED_BLOCK = 64


def merge_reads(into: dict[str, list[str]], *reads: Mapping[str, Sequence[str]]
                ) -> dict[str, list[str]]:
    """``reads`` (columns by table, as `SUMMARY_READS`) added to ``into``, each table's
    columns once, in the order first named; ``into``."""
    for wanted in reads:
        for table, columns in wanted.items():
            into[table] = list(dict.fromkeys([*into.get(table, []), *columns]))
    return into


class Handed:
    """The Parquet parts a run's workers handed back as they wrote them
    (`batch.Analysed.handed`), of the columns the report will read (``reads``: the summary's
    and the page's), while all of them hold at most `HANDED_CELLS` values (the largest
    table is let go first when they would not): the report then takes them from here
    (`StoredReport.hand`) instead of opening every part again (72 fixture captures: 473
    parts, 0.34 of the summary and page's 0.63 s). The ``captures`` table is kept whole:
    the report loads it whole.

    A part's columns are views of what its worker sent (all of its columns): they are
    copied out `HANDED_BLOCK` parts at a time into one block per table, which lets the
    rest go (504 captures: the run's peak 58 MB above reading the parts back while each
    part held on to all it was sent, 8-12 MB so)."""

    def __init__(self, *reads: Mapping[str, Sequence[str]]) -> None:
        self.columns = merge_reads({}, *reads)
        self.columns["captures"] = list(SCHEMAS["captures"])
        self.schemas = {t: wanted_schema(t, c) for t, c in self.columns.items()}
        #: by table: the blocks, where each capture key's rows are in them (block, first
        #: row, rows), and the parts not yet in a block
        self.blocks: dict[str, list[pa.Table]] = {}
        self.where: dict[str, dict[str, tuple[int, int, int]]] = {}
        self.pending: dict[str, list[tuple[str, pa.Table]]] = {}
        self.cells = 0
        self.dropped: set[str] = set()  # beyond the budget: read back

    def add(self, key: str, tables: Mapping[str, pa.Table | bytes]) -> None:
        """A capture's (file's) parts, by table (`store.handed_table`)."""
        for table, sent in tables.items():
            columns = self.columns.get(table)
            if columns is None or table in self.dropped or key in self.where.get(table, {}):
                continue
            data = handed_table(sent)
            cells = data.num_rows * len(columns)
            while self.cells + cells > HANDED_CELLS and table not in self.dropped:
                self._drop(max({*self.where, table}, key=self._cells))  # the largest
            if table in self.dropped:
                continue
            self.cells += cells
            pending = self.pending.setdefault(table, [])
            pending.append((key, pa.Table.from_arrays(data.select(columns).columns,
                                                      schema=self.schemas[table])))
            self.where.setdefault(table, {})[key] = (-1, 0, data.num_rows)
            if len(pending) >= HANDED_BLOCK:
                self._block(table)

    def keys(self, table: str) -> set[str]:
        """The capture keys whose part of ``table`` is here."""
        return set(self.where.get(table, {}))

    def take(self, table: str, order: Sequence[str]) -> pa.Table:
        """The parts of ``table`` of the keys ``order``, in that order, as one table; they
        are no longer held here."""
        self._block(table)
        blocks, where = self.blocks.pop(table, []), self.where.pop(table, {})
        pieces = [blocks[b].slice(first, rows) for b, first, rows in map(where.__getitem__,
                                                                         order)]
        return pa.concat_tables(pieces) if pieces else self.schemas[table].empty_table()

    def _block(self, table: str) -> None:
        pending = self.pending.pop(table, [])
        if not pending:
            return
        blocks = self.blocks.setdefault(table, [])
        # combined: copied out of what was sent (but for a last part alone, about to be
        # made a frame anyway)
        blocks.append(pa.concat_tables([data for _, data in pending]).combine_chunks())
        first = 0
        for key, data in pending:
            self.where[table][key] = (len(blocks) - 1, first, data.num_rows)
            first += data.num_rows

    def _cells(self, table: str) -> int:
        """How many values of ``table`` are held."""
        return sum(rows for _, _, rows in self.where.get(table, {}).values()) * \
            len(self.columns[table])

    def _drop(self, table: str) -> None:
        """``table`` no longer held (its parts are read back): the largest goes first when
        the budget is reached, so that the many small tables stay."""
        self.cells -= self._cells(table)
        self.where.pop(table, None)
        self.blocks.pop(table, None)
        self.pending.pop(table, None)
        self.dropped.add(table)


class StoredReport(Report):
    """A Report whose tables stay on disk until asked for (`load`)."""

    def __init__(self, folder: Path) -> None:  # no tables yet: __getattr__ reads them
        self.folder = folder
        self.skipped = []
        self._summary: str | None = None

    def summary(self) -> str:
        """As Report.summary; computed once (the tables on disk do not change)."""
        if self._summary is None:
            self._summary = super().summary()
        return self._summary

    def __getattr__(self, name: str) -> pd.DataFrame:
        if name in SCHEMAS:
            df = read_table(self.folder, name)
            value = df if df is not None else frame(name, [])
            setattr(self, name, value)
            return value
        raise AttributeError(name)

    def batches(self, table: str, columns: list[str] | None = None,
                filters: Sequence[tuple[str, str, Any]] = ()) -> Iterator[pd.DataFrame]:
        if table not in SCHEMAS:
            raise KeyError(table)
        names = [*(columns or SCHEMAS[table]),
                 *(c for c, _, _ in filters if c not in (columns or ()))]
        if table in self.__dict__:
            yield from super().batches(table, columns, filters)
            return
        small = self._rows(table) <= IN_MEMORY_ROWS
        kept = self._kept(table, names, small)
        if kept is not None:
            df = filter_frame(kept, filters)
            yield df[columns] if columns else df
            return
        if small:  # loaded once, whole: the report asks many times
            yield from super().batches(table, columns, filters)
            return
        yield from scan_table(self.folder, table, columns, filters)
        memory.release()  # what the scan freed, before the next one

    def hand(self, handed: Handed) -> None:
        """Tables the workers handed back whole (`Handed`): each one every part of which
        (this folder's, by their files) was handed is kept as if read, its columns
        (`_kept`), or whole for ``captures``; the others are read as usual."""
        kept: dict[str, pd.DataFrame] = self.__dict__.setdefault("_kept_columns", {})
        for table in handed.columns:
            base = self.folder / TABLES_DIR / table
            keys = [f.stem for f in run_order(self.folder, base.glob("*.parquet"))] \
                if base.is_dir() else []
            if not keys or set(keys) != handed.keys(table):
                continue  # parts not handed (an earlier run's, resumed): read them
            data = handed.take(table, keys)
            columns = handed.columns[table]
            # no rows (most tables of a small capture): the schema's empty frame, which is
            # what Arrow's conversion gives, without its 2-3 ms a table
            df = typed_frame(table, data.to_pandas(use_threads=False), columns) \
                if data.num_rows else frame(table, [])[list(columns)]
            del data  # the blocks it was made of go now, not after every table
            if table == "captures":
                setattr(self, table, df)
            else:
                kept[table] = df

    def expect(self, reads: Mapping[str, Sequence[str]]) -> None:
        """Columns of these tables that will be asked for (`SUMMARY_READS`, the page's
        `htmlreport.page_reads`): a table whose columns are kept is read with all of them
        at the first ask that reads it, while they fit, instead of once more for each
        later ask (each read opens every part: 2,000 captures, operations read 4 times)."""
        merge_reads(self.__dict__.setdefault("_expected", {}), reads)

    def _kept(self, table: str, names: list[str], small: bool = False
              ) -> pd.DataFrame | None:
        """The columns ``names`` of a table of Parquet parts, read once and kept while
        `KEPT_CELLS` allows; None if they would not fit (then the table is scanned). The
        columns `expect` was told of come along, when they fit too.

        A ``small`` table (`IN_MEMORY_ROWS`) is kept with the columns `expect` was told of
        when they hold ``names``, whatever the budget; else None (it is loaded whole). The
        summary and the page read 29 of the associations table's 81 columns and one of
        the messages table's 35, and each part's columns are decoded one by one: the 72
        fixture captures' summary and page read their tables in 0.65 s whole, 0.36 s so."""
        kept: dict[str, pd.DataFrame] = self.__dict__.setdefault("_kept_columns", {})
        have = kept.get(table)
        missing = [c for c in dict.fromkeys(names) if have is None or c not in have.columns]
        if missing:
            rows = self._rows(table)
            expected = self.__dict__.get("_expected", {}).get(table, [])
            more = [c for c in expected
                    if c not in missing and (have is None or c not in have.columns)]
            if small:
                if not self._parts(table) or not set(names) <= set(expected):
                    return None
                missing += more
            else:
                held = sum(df.size for t, df in kept.items() if self._rows(t) > IN_MEMORY_ROWS)
                if self._parts(table) < KEPT_MIN_PARTS or \
                        held + rows * len(missing) > KEPT_CELLS:
                    return None
                if more and held + rows * (len(missing) + len(more)) <= KEPT_CELLS:
                    missing += more
            df = read_table(self.folder, table, missing)
            if df is None or len(df) != rows:
                return None  # the parts changed meanwhile: scanned instead
            have = kept[table] = df if have is None else pd.concat(
                [have, df.set_axis(have.index)], axis=1)
        assert have is not None
        return have[list(dict.fromkeys(names))]

    def _rows(self, table: str) -> int:
        """How many rows a table has, from the Parquet footers (no data read)."""
        return self._counts(table)[0]

    def row_count(self, table: str) -> int:
        rows, parts = self._counts(table)
        return rows if parts else len(self.table(table))  # CSV: read

    def _parts(self, table: str) -> int:
        """How many Parquet parts a table has (0: CSV or the old one-file layout)."""
        return self._counts(table)[1]

    def _counts(self, table: str) -> tuple[int, int]:
        counts: dict[str, tuple[int, int]] = self.__dict__.setdefault("_part_counts", {})
        if table not in counts:
            parts = self.folder / TABLES_DIR / table
            files = sorted(parts.glob("*.parquet")) if parts.is_dir() else []
            counts[table] = ((part_rows(files, table), len(files)) if files
                             else (IN_MEMORY_ROWS + 1, 0))  # CSV or old layout: scan
        return counts[table]

    def read(self, table: str, columns: list[str] | None = None,
             filters: Any = None) -> pd.DataFrame:
        """Some columns and rows of a table (pyarrow filters, e.g.
        ``[("command", "==", "C-MOVE")]``), read from the Parquet parts."""
        if table not in SCHEMAS:
            raise KeyError(table)
        df = read_table(self.folder, table, columns, filters)
        return df if df is not None else frame(table, [])[list(columns) if columns else
                                                           slice(None)]


#: The columns `Report.summary` reads of each table (`StoredReport.expect`).
SUMMARY_READS: dict[str, list[str]] = {
    "associations": list(dict.fromkeys(["capture", "result", *DEVICE_READS])),
    "findings": ["capture", "severity", "code", "summary", "frame"],
    "messages": ["command"],
    "objects": ["complete", "path", "command", "study_instance_uid", "series_instance_uid",
                "modality"],
    "operations": list(dict.fromkeys(["command", "total_ms", "bottleneck",
                                      "bottleneck_detail", *RETRIEVAL_READS])),
    "commitments": ["outcome", "failed_count"],
    "procedure_steps": ["outcome", "image_count", "stored_count"],
    "presentation_contexts": NEGOTIATION_COUNT_READS,
}


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")









