"""Rows flow to disk as associations finish (spool.py, store.PartWriter): associations are
handed on from inside the packet loop, not held to the end; the tables come out numbered in
first-packet order whatever order the associations ended in, the same as in memory; a
spool larger than memory's share goes to a file; a stored run reads back a batch at a time;
and --jobs shares real packet counts with the progress display."""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

import tshark_dicom
from tshark_dicom import batch, spool
from tshark_dicom.analysis import analyze_capture
from tshark_dicom.archive import analyze_to
from tshark_dicom.captureresult import FinishedAssociation
from tshark_dicom.schemas import SCHEMAS, TABLES, frame
from tshark_dicom.tshark import find_tshark

from .conftest import CAPTURES, ROOT


def _handed_on(capture: Path) -> tuple[list[tuple[int, bool]], list[int]]:
    """(stream, handed on from inside the packet loop) per association, and the streams."""
    calls: list[tuple[int, bool]] = []

    def on_association(done: FinishedAssociation) -> None:
        in_loop = any(f.function == "consume" for f in inspect.stack())
        calls.append((done.assoc.stream, in_loop))

    result = analyze_capture(capture, label=str(capture), tshark=find_tshark(None),
                             on_association=on_association)
    return calls, result.streams


def test_finished_associations_leave_memory_while_packets_still_flow() -> None:
    calls, streams = _handed_on(CAPTURES / "timing_assoc_per_object.pcapng")
    assert len(streams) >= 5 and sorted(s for s, _ in calls) == streams
    # released associations are handed on at their FIN, from inside the packet loop
    assert sum(in_loop for _, in_loop in calls) >= len(streams) - 1


def test_a_move_and_its_callback_are_kept_for_correlation_to_the_end() -> None:
    calls, streams = _handed_on(CAPTURES / "qr_move_ok.pcapng")
    kept = [s for s, in_loop in calls if not in_loop]
    assert len(kept) >= 2  # the C-MOVE association and its callback
    report = tshark_dicom.analyze(CAPTURES / "qr_move_ok.pcapng")
    move = report.operations[report.operations["command"] == "C-MOVE"].iloc[0]
    assert list(move["callback_assoc_ids"])  # the link survived the spool


@pytest.mark.parametrize("name", ["concurrent.pcapng", "qr_move_concurrent.pcapng",
                                  "timing_assoc_per_object.pcapng"])
def test_spool_on_disk_gives_the_tables_of_the_spool_in_memory(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    in_memory = tshark_dicom.analyze(CAPTURES / name)
    rolled: list[bool] = []
    drain = spool.Spool.drain

    def spy(self: spool.Spool, *args: object) -> None:
        rolled.append(bool(getattr(self.file, "_rolled", False)))
        drain(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(spool, "IN_MEMORY_MAX", 1)
    monkeypatch.setattr(spool.Spool, "drain", spy)
    on_disk = tshark_dicom.analyze(CAPTURES / name)
    assert rolled == [True]
    for table in TABLES:
        if table == "captures":
            continue
        pd.testing.assert_frame_equal(in_memory.table(table), on_disk.table(table))
    ids = on_disk.associations["assoc_id"].tolist()
    assert ids == list(range(len(ids)))  # first-packet order
    assert on_disk.associations["tcp_stream"].is_monotonic_increasing


def test_tables_are_written_in_row_groups_with_one_schema(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    from tshark_dicom import store

    monkeypatch.setattr(store.PartWriter, "ROW_GROUP", 4)
    monkeypatch.setattr(store.PartWriter, "CONVERT_ROWS", 2)
    out = tmp_path / "out"
    analyze_to([CAPTURES / "timing_assoc_per_object.pcapng", CAPTURES / "qr_move_ok.pcapng"],
                            out)
    part = next((out / "tables" / "messages").glob("timing_assoc_per_object*.parquet"))
    assert pq.ParquetFile(part).num_row_groups > 1
    schemas = {str(pq.read_schema(p)) for p in (out / "tables" / "operations").iterdir()}
    assert len(schemas) == 1 and "list<element: int64>" in schemas.pop()
    assert not list(out.rglob(".*.tmp")) and not (out / ".tshark-dicom-partial").exists()
    stored = tshark_dicom.load(out)
    chunks = list(stored.batches("messages", ["capture", "command"]))
    whole = stored.read("messages", ["capture", "command"])
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), whole)
    moves = pd.concat(stored.batches("operations", ["command"],
                                     [("command", "==", "C-MOVE")]))
    assert len(moves) == 1


def _write_calls() -> int:
    """This process's write system calls so far (Linux's /proc/self/io)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("syscw:"):
            return int(line.split()[1])
    raise AssertionError("no syscw in /proc/self/io")


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="Linux's /proc/self/io")
def test_parts_reach_the_disk_in_few_writes_with_pyarrows_own_bytes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """store.parquet_sink: a part written in row groups reaches its file in a few write
    calls (pyarrow's writer alone makes one per page header, statistic and column chunk,
    hundreds for a part of a few rows), and its bytes are those pyarrow writes to a file
    of its own opening; the part's file is closed when the writer is."""
    import os

    from tshark_dicom import store

    monkeypatch.setattr(store.PartWriter, "ROW_GROUP", 4)
    monkeypatch.setattr(store.PartWriter, "CONVERT_ROWS", 2)
    from tshark_dicom.spool import FrameSink, Spool

    name = "timing_assoc_per_object.pcapng"
    rolled = Spool(name)
    result = analyze_capture(CAPTURES / name, label="cap", tshark=find_tshark(None),
                             on_association=rolled)
    sink = FrameSink()
    rolled.drain(result, sink)
    rows = sink.rows["messages"]
    assert len(rows) > 8
    fds = len(os.listdir("/proc/self/fd"))
    writer = store.PartWriter(tmp_path / "w", {"cap": "cap"}, "parquet")
    before = _write_calls()
    for i in range(0, len(rows), 2):
        writer.add("messages", "cap", rows[i:i + 2])
    written = [p for p in writer.close() if p.parent.name == "cap" and
               p.name == "messages.parquet"]
    buffered = _write_calls() - before
    assert len(os.listdir("/proc/self/fd")) == fds  # every part's file closed
    part = written[0]
    assert pq.ParquetFile(part).num_row_groups > 1
    # the same row groups by pyarrow alone, into a file it opens itself
    plain = tmp_path / "plain.parquet"
    before = _write_calls()
    with pq.ParquetWriter(plain, store.arrow_schema("messages")) as direct:
        for i in range(0, len(rows), 4):
            direct.write_table(store.arrow_rows("messages", rows[i:i + 4]),
                               row_group_size=4)
    unbuffered = _write_calls() - before
    assert plain.read_bytes() == part.read_bytes()
    assert unbuffered > 100 and buffered < unbuffered / 10, (buffered, unbuffered)


def test_jobs_share_real_packet_counts_with_the_progress_display(tmp_path: Path) -> None:
    folder = tmp_path / "caps"
    folder.mkdir()
    for name in ("multi_store.pcapng", "large_multiframe.pcapng", "concurrent.pcapng",
                 "qr_move_ok.pcapng"):
        shutil.copy(CAPTURES / name, folder / name)
    seen: list[int] = []
    report = batch.run(folder, jobs=2,
                       on_progress=lambda label, done, total, packets, b, tb: seen.append(
                           packets))
    total = int(report.captures["packets"].sum())
    assert total > 500 and seen[-1] == total  # read by the workers, shared with us
    live = [p for p in seen if p]
    assert live == sorted(live)  # a running count of all the workers' packets


def test_the_captures_rows_are_gathered_as_they_finish_in_the_order_found(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """run keeps the captures rows as dicts and makes a frame of them a few at a time (not
    a one-row frame each: 24 KB and 2.3 ms a capture), and gives them in the order the
    captures were found whatever order the workers finish them in, with the schema's
    dtypes, a failed capture's too."""
    folder = tmp_path / "caps"
    folder.mkdir()
    names = ["large_multiframe.pcapng", "echo.pcapng", "multi_store.pcapng",
             "qr_move_ok.pcapng", "store_104.pcapng"]
    for name in names:
        shutil.copy(CAPTURES / name, folder / name)
    (folder / "bad.pcapng").write_bytes(b"\xff" * 100)
    gathers: list[int] = []
    joined: list[int] = []

    concat, made = pd.concat, batch.frame

    def counted(frames: list[pd.DataFrame], *a: object, **k: object) -> pd.DataFrame:
        if frames and all("_rank" in f.columns for f in frames):  # run's gathering
            joined.append(len(frames))
        return concat(frames, *a, **k)  # type: ignore[call-overload]

    def frame_counted(table: str, rows: object) -> pd.DataFrame:
        rows = list(rows)  # type: ignore[call-overload]
        if table == "captures":
            gathers.append(len(rows))
        return made(table, rows)

    monkeypatch.setattr(pd, "concat", counted)
    monkeypatch.setattr(batch, "frame", frame_counted)
    monkeypatch.setattr(batch, "GATHER_CAPTURES", 2)
    caps = batch.run(folder, jobs=2, keep=False).captures  # (keep: a Report's tables too)
    monkeypatch.undo()
    # three frames of two rows as they come, joined once at the end
    assert gathers == [2, 2, 2] and joined == [3]
    found = sorted([*names, "bad.pcapng"])
    assert [Path(c).name for c in caps["capture"]] == found
    assert caps["status"].tolist() == ["failed" if n == "bad.pcapng" else "ok" for n in found]
    assert list(caps.columns) == list(SCHEMAS["captures"])
    assert caps.dtypes.equals(frame("captures", []).dtypes)
    assert caps.index.tolist() == list(range(len(found)))


def test_empty_tables_are_tables_of_no_rows() -> None:
    """schemas.frame of no rows (made from one empty column per dtype) has the columns and
    dtypes a table with rows has, and what is done to one copy is not seen in another."""
    import pandas as pd

    from tshark_dicom.schemas import SCHEMAS, TABLES, column_of, frame

    for table in TABLES:
        empty = frame(table, [])
        want = pd.DataFrame({name: column_of(dtype, [])
                             for name, dtype in SCHEMAS[table].items()})
        pd.testing.assert_frame_equal(empty, want, check_exact=True)
        assert list(empty.dtypes) == list(frame(table, [{}]).dtypes), table
    first = frame("findings", [])
    first["extra"] = 1
    assert "extra" not in frame("findings", []).columns


def test_table_schemas_are_what_pyarrow_makes_of_an_empty_frame() -> None:
    """store.arrow_schema, made from one column per dtype, is byte for byte the schema
    pyarrow's from_pandas gives an empty frame of each table (plus our list types and the
    columns' descriptions): the pandas metadata included, which gives readers our dtypes."""
    import pyarrow as pa

    from tshark_dicom.columns import DESCRIPTIONS
    from tshark_dicom.schemas import TABLES, frame
    from tshark_dicom.store import LIST_TYPES, arrow_schema

    for table in TABLES:
        want = pa.Schema.from_pandas(frame(table, []), preserve_index=False)
        for i, name in enumerate(want.names):
            field = want.field(i)
            if name in LIST_TYPES:
                field = pa.field(name, pa.list_(LIST_TYPES[name]))
            want = want.set(i, field.with_metadata({"description": DESCRIPTIONS[table][name]}))
        got = arrow_schema(table)
        assert got.equals(want, check_metadata=True), table
        assert got.serialize().to_pybytes() == want.serialize().to_pybytes(), table


def test_the_known_fields_are_what_pyarrow_makes_from_pandas() -> None:
    """store.KNOWN_FIELDS (a schema made without pandas) is what pyarrow's from_pandas
    makes of an empty column of each dtype, and the pandas metadata made without pandas
    is from_pandas's, wherever this pandas and pyarrow are those of KNOWN_VERSIONS."""
    import pyarrow as pa

    from tshark_dicom import store
    from tshark_dicom.schemas import SCHEMAS

    assert set(store.KNOWN_FIELDS) == {d for t in SCHEMAS.values() for d in t.values()}
    if not store._known_versions():  # schemas made from pandas: nothing known to check
        pytest.skip(f"pandas {store._pandas_version()}, pyarrow {pa.__version__}: not in "
                    f"KNOWN_VERSIONS {sorted(store.KNOWN_VERSIONS)}")
    for dtype in store.KNOWN_FIELDS:
        assert store._dtype_field(dtype) == store._dtype_field_from_pandas(dtype), dtype
        assert isinstance(store._dtype_field(dtype)[0], pa.DataType)
    made = store._pandas_metadata()
    want = store._pandas_metadata_from_pandas()
    assert list(made) == list(want) and made == {**want, "columns": []}


#: A fresh interpreter: pyarrow told there is no pandas, then given a value only the
#: pandas way takes (a float NaN, which pandas makes null); the table as IPC bytes.
_FALLBACK = """
import sys
from tshark_dicom import store
store.arrow_without_pandas()
rows = [{"capture": "c", "assoc_id": 1, "sender": "scu", "bin_start": 10**18,
         "bin_ms": 250.0, "bytes": 5, "mbps": 1.5}]
first = store.arrow_rows("throughput", rows)
before = "pandas" in sys.modules
nan = store.arrow_rows("throughput", [{**rows[0], "mbps": float("nan"), "bytes": None,
                                      "bin_start": None, "sender": None}, *rows])
again = store.arrow_rows("throughput", rows)
import pyarrow as pa
sink = pa.BufferOutputStream()
with pa.ipc.new_stream(sink, nan.schema) as w:
    for t in (first, nan, again):
        w.write_table(t)
sys.stdout.write(f"{before} {'pandas' in sys.modules} ")
sys.stdout.flush()
sys.stdout.buffer.write(sink.getvalue().to_pybytes().hex().encode())
"""


def test_arrow_after_it_was_told_there_is_no_pandas() -> None:
    """After store.arrow_without_pandas (a worker's start), rows of plain values go to Arrow
    without pandas; a row only the pandas way takes imports it then, and gives the table a
    process that always had pandas gives (pyarrow told to look for pandas again)."""
    import subprocess
    import sys

    import pyarrow as pa

    from tshark_dicom import store

    done = subprocess.run([sys.executable, "-c", _FALLBACK], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    before, after, data = done.stdout.split(" ")
    assert (before, after) == (str(not store._known_versions()), "True")
    tables = pa.ipc.open_stream(bytes.fromhex(data)).read_all()
    rows = [{"capture": "c", "assoc_id": 1, "sender": "scu", "bin_start": 10**18,
             "bin_ms": 250.0, "bytes": 5, "mbps": 1.5}]
    odd = [{**rows[0], "mbps": float("nan"), "bytes": None, "bin_start": None,
            "sender": None}, *rows]
    here = [store.arrow_rows("throughput", r) for r in (rows, odd, rows)]
    assert store.direct_arrow_rows("throughput", odd) is None  # the pandas way
    assert tables.equals(pa.concat_tables(here))
    assert tables.column("mbps").to_pylist() == [1.5, None, 1.5, 1.5]
    assert tables.column("bytes").to_pylist() == [5, None, 5, 5]


@pytest.mark.parametrize("name", ["qr_move_ok.pcapng", "hostile_values.pcapng", "lossy.pcapng",
                                  "timing_slow_scp.pcapng", "qr_refine.pcapng",
                                  "transfer_syntaxes.pcapng"])
def test_rows_go_to_arrow_columns_as_they_would_through_pandas(name: str) -> None:
    """store.arrow_rows (the Parquet writer's way, no DataFrame) gives the table that
    schemas.frame and pandas give."""
    import pyarrow as pa

    from tshark_dicom.schemas import frame
    from tshark_dicom.spool import FrameSink, Spool
    from tshark_dicom.store import arrow_rows, arrow_schema, direct_arrow_rows

    rolled = Spool(name)
    result = analyze_capture(CAPTURES / name, label=name, tshark=find_tshark(None),
                             on_association=rolled)
    sink = FrameSink()
    rolled.drain(result, sink)
    assert sink.rows["messages"]
    for table, rows in sink.rows.items():
        via_pandas = pa.Table.from_pandas(frame(table, rows), schema=arrow_schema(table),
                                          preserve_index=False)
        assert arrow_rows(table, rows).equals(via_pandas), table
        assert direct_arrow_rows(table, rows) is not None, table  # not the pandas way


def test_parts_handed_back_are_the_parts_as_read(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker hands back each part of at most `hand` rows (PartWriter.handed) as the
    same Arrow data a reader of the part gets, the schema's metadata aside; a longer part
    (written in row groups here) is not handed, however short it was when it began."""
    from tshark_dicom import store

    monkeypatch.setattr(store.PartWriter, "ROW_GROUP", 4)
    monkeypatch.setattr(store.PartWriter, "CONVERT_ROWS", 2)
    sink = spool.Spool("c", folder=tmp_path)
    result = analyze_capture(CAPTURES / "store_104.pcapng", label="c",
                             tshark=find_tshark(None), on_association=sink)
    writer = store.PartWriter(tmp_path, {"c": "k"}, "parquet", hand=6)
    sink.drain(result, writer)
    writer.close()
    handed = writer.handed()
    assert set(handed) == {"k"}
    rows = {t: pq.read_metadata(tmp_path / "tables" / "k" / f"{t}.parquet").num_rows
            for t in TABLES if t != "captures"}
    longer = {t for t, n in rows.items() if n > 6}
    assert longer and set(handed["k"]) == set(rows) - longer
    for table, sent in handed["k"].items():
        data = store.handed_table(sent)
        read = pq.read_table(tmp_path / "tables" / "k" / f"{table}.parquet")
        assert data.equals(read.replace_schema_metadata(None).cast(data.schema)), table
        assert data.schema.metadata is None  # sent without the pandas metadata


def test_handed_parts_are_kept_in_blocks_in_the_runs_order_while_they_fit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """report.Handed copies the columns the report reads into one block per table a few
    parts at a time, gives them back in the order asked, and drops a table that outgrows
    its budget (it is then read from its parts)."""
    import pyarrow as pa

    from tshark_dicom import report

    monkeypatch.setattr(report, "HANDED_BLOCK", 2)
    handed = report.Handed({"findings": ["capture", "code"]})
    rows = {k: [{"capture": k, "assoc_id": i, "code": f"{k}-{i}", "severity": "note"}
                for i in range(n)] for k, n in (("a", 2), ("b", 0), ("c", 3))}
    for key, found in rows.items():
        handed.add(key, {"findings": store_rows("findings", found), "queries": b"ignored"})
    assert handed.keys("findings") == {"a", "b", "c"} and handed.blocks["findings"]
    taken = handed.take("findings", ["c", "a", "b"])
    assert taken.column_names == ["capture", "code"]
    assert taken.column("code").to_pylist() == ["c-0", "c-1", "c-2", "a-0", "a-1"]
    assert handed.keys("findings") == set()  # taken: no longer held
    monkeypatch.setattr(report, "HANDED_CELLS", 9)
    small = report.Handed({"findings": ["capture", "code"], "throughput": ["capture"]})
    small.add("a", {"findings": store_rows("findings", rows["a"]),
                    "throughput": store_rows("throughput", [{"capture": "a"}])})
    assert small.keys("findings") == {"a"} and small.cells == 5
    small.add("c", {"findings": store_rows("findings", rows["c"]),
                    "throughput": store_rows("throughput", [{"capture": "c"}])})
    # the largest table goes, the small one stays
    assert small.keys("findings") == set() and small.dropped == {"findings"}
    assert small.keys("throughput") == {"a", "c"} and small.cells == 2
    assert isinstance(taken, pa.Table)


def store_rows(table: str, rows: list[dict[str, object]]) -> bytes:
    """Rows of a table sent as a worker sends a part (store.hand_over)."""
    from tshark_dicom import store

    return store.hand_over(store.arrow_rows(
        table, [{**{c: None for c in SCHEMAS[table]}, **r} for r in rows]))
