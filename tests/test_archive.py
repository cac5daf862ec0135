"""Archives of captures through the real command line: one bad file never stops a run,
results are datasets every reader opens, object folders keep their names when files are
added, and a run killed with SIGKILL and resumed equals an uninterrupted one."""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import tshark_dicom
from tshark_dicom.cli import app
from tshark_dicom.schemas import SCHEMAS
from tshark_dicom.schemas import frame as tables_frame

from .conftest import CAPTURES, ROOT

runner = CliRunner()
#: 28 captures: the first 26 by name, and two with a C-MOVE far down the alphabet (the read
#: order test needs C-MOVEs further apart than a group of parts, whatever fixtures are added)
GOOD = sorted({*sorted(p for p in CAPTURES.iterdir() if p.name.endswith(".pcapng")
                       and p.name != "mid_association.pcapng")[:26],
               CAPTURES / "qr_move_ok.pcapng", CAPTURES / "qr_move_partial.pcapng"})


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 captures (one a tcpdump rotation named trace.pcap1), a corrupt and an empty one,
    and a gzip log that is not a capture, in nested folders."""
    root = tmp_path_factory.mktemp("archive")
    for i, cap in enumerate(GOOD):
        sub = root / ("day1" if i % 2 else "day2")
        sub.mkdir(exist_ok=True)
        shutil.copy(cap, sub / cap.name)
    shutil.copy(CAPTURES / "echo.pcapng", root / "trace.pcap1")
    shutil.copy(CAPTURES / "store_gzip.pcapng.gz", root / "day1" / "store_gzip.pcapng.gz")
    (root / "corrupt.pcapng").write_bytes((CAPTURES / "echo.pcapng").read_bytes()[:40]
                                         + b"\xff" * 200)
    (root / "empty.pcap").write_bytes(b"")
    with gzip.open(root / "day2" / "app.log.gz", "wt") as f:
        f.write("not a capture\n" * 100)
    return root


@pytest.fixture(scope="module")
def archive_out(archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out") / "run"
    code, stdout, stderr = invoke("analyze", str(archive), "-o", str(out))
    assert code == 0, stderr
    assert "2 could not be analysed" in stdout
    assert "skipped: " in stdout and "app.log.gz: gzip, but not a capture inside" in stdout
    return out


def _tables(out: Path) -> dict[str, pd.DataFrame]:
    report = tshark_dicom.load(out)
    return {t: report.table(t) for t in SCHEMAS}


def test_bad_files_are_failed_rows_and_the_rest_is_analysed(archive: Path,
                                                             archive_out: Path) -> None:
    caps = tshark_dicom.load(archive_out).captures
    assert len(caps) == len(GOOD) + 4  # trace.pcap1, the .gz capture, corrupt, empty
    failed = caps[caps["status"] == "failed"].set_index("key")
    assert set(failed.index) == {"corrupt.pcapng", "empty.pcap"}
    assert "empty file" in failed.loc["empty.pcap", "error"]
    assert "corrupt.pcapng" in failed.loc["corrupt.pcapng", "error"]
    ok = caps[caps["status"] == "ok"]
    assert "trace.pcap1" in set(ok["key"])  # found by its content
    assert ok["packets"].min() > 0 and ok["link_type"].notna().all()


def test_archive_tables_equal_each_capture_alone(archive: Path, archive_out: Path) -> None:
    tables = _tables(archive_out)
    for cap in [archive / "day2" / GOOD[0].name, archive / "day1" / GOOD[1].name,
                archive / "trace.pcap1"]:
        alone = tshark_dicom.analyze(cap)
        for t in ("associations", "messages", "operations", "findings", "queries"):
            mine = tables[t][tables[t]["capture"] == str(cap)].reset_index(drop=True)
            theirs = alone.table(t)
            assert mine.drop(columns=["capture"]).astype(str).equals(
                theirs.drop(columns=["capture"]).astype(str)), (cap.name, t)


def test_every_reader_opens_the_datasets(archive_out: Path) -> None:
    import duckdb

    report = tshark_dicom.load(archive_out)
    want = len(report.messages)
    assert want > 100
    folder = archive_out / "tables" / "messages"
    assert len(pd.read_parquet(folder)) == want
    assert pads.dataset(folder, format="parquet").count_rows() == want
    got = duckdb.sql(f"select count(*) from read_parquet('{folder}/*.parquet')").fetchall()
    assert got[0][0] == want
    # nanosecond timestamps compute in DuckDB after a cast (NOTES; issue 11 changes that)
    span = duckdb.sql(f"select max(epoch_ms(response_complete_at::timestamptz) - epoch_ms("
                      f"request_first_at::timestamptz)) from read_parquet('{archive_out}/"
                      "tables/operations/*.parquet')").fetchall()
    assert span[0][0] > 0
    moves = report.read("operations", columns=["capture", "command", "status_hex"],
                        filters=[("command", "==", "C-MOVE")])
    assert list(moves.columns) == ["capture", "command", "status_hex"]
    assert len(moves) and set(moves["command"]) == {"C-MOVE"}


def test_tables_read_a_group_of_parts_at_a_time_whole_and_in_order(
        archive_out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """read_table reads READ_GROUP parts at a time (memory: a dataset over every part held
    them all to the end); groups of 4 give what one read of all gives, in the run's order,
    with columns and filters too."""
    from tshark_dicom import store, tableread

    parts = len(list((archive_out / "tables" / "messages").glob("*.parquet")))
    assert parts > 8
    wanted = {}
    monkeypatch.setattr(tableread, "READ_GROUP", 10**6)
    for t in ("messages", "associations", "findings"):
        wanted[t] = tableread.read_table(archive_out, t)
    moves = tableread.read_table(archive_out, "messages", ["capture", "command", "msg_index"],
                             [("command", "in", ["C-MOVE-RQ", "C-MOVE-RSP"])])
    monkeypatch.setattr(tableread, "READ_GROUP", 4)
    for t, whole in wanted.items():
        got = tableread.read_table(archive_out, t)
        assert got is not None and whole is not None and len(got) == len(whole) > 0
        assert got.astype(str).equals(whole.astype(str)), t
        assert list(got.dtypes) == list(whole.dtypes), t
    got = tableread.read_table(archive_out, "messages", ["capture", "command", "msg_index"],
                           [("command", "in", ["C-MOVE-RQ", "C-MOVE-RSP"])])
    assert got is not None and moves is not None and len(moves) > 0
    assert got.astype(str).equals(moves.astype(str))
    rank = {key: i for i, key in enumerate(store.manifest(archive_out)["captures"])}
    caps = tshark_dicom.load(archive_out).captures
    keys = dict(zip(caps["capture"], caps["key"], strict=True))
    seen = [rank[keys[c]] for c in dict.fromkeys(got["capture"])]
    # the run's order, across groups (READ_GROUP 4: the captures with a C-MOVE are further
    # apart than that)
    assert len(seen) >= 2 and seen == sorted(seen) and seen[-1] - seen[0] > 4


def test_parts_as_written_are_typed_without_rebuilding_them(
        archive_out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Parquet parts of this version come back with the schema's dtypes: typed_frame takes
    their columns as they are (tableread._as_written) and gives, for every table, whole and
    for a choice of columns, the frame it builds column by column from any other input."""
    from tshark_dicom import tableread
    from tshark_dicom.schemas import TABLES

    fast = {}
    for t in TABLES:
        parts = sorted((archive_out / "tables" / t).glob("*.parquet"))
        df = pd.concat([pq.read_table(p).to_pandas() for p in parts], ignore_index=True)
        cols = list(SCHEMAS[t])[1::3]
        fast[t] = (df, tableread.typed_frame(t, df), tableread.typed_frame(t, df, cols), cols)
        assert tableread._as_written(t, df, None) is not None, t  # the fast way was taken
    assert any(len(f[1]) for f in fast.values())
    monkeypatch.setattr(tableread, "_as_written", lambda *args: None)
    for t, (df, whole, some, cols) in fast.items():
        pd.testing.assert_frame_equal(whole, tableread.typed_frame(t, df), check_exact=True)
        pd.testing.assert_frame_equal(some, tableread.typed_frame(t, df, cols), check_exact=True)
        assert list(whole.columns) == list(SCHEMAS[t]) and list(some.columns) == cols
    # a frame of other dtypes (CSV's strings) is rebuilt, as before
    csv_like = fast["associations"][0].astype(object)
    monkeypatch.undo()
    assert tableread._as_written("associations", csv_like, None) is None


def test_parts_without_rows_are_not_opened(archive_out: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """read_table and scan_table open only the parts whose footers (known from the part
    index) say they have rows, and give what reading every part gave: the same rows and
    dtypes, with columns and filters, and a table of the schema where no part has a row."""
    from tshark_dicom import tableread

    opened: list[str] = []
    real = pq.ParquetFile

    def counting(path: object, *args: object, **kwargs: object) -> object:
        opened.append(Path(str(path)).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(pq, "ParquetFile", counting)
    for table in ("queries", "findings", "connection_attempts", "commitments"):
        files = sorted((archive_out / "tables" / table).glob("*.parquet"))
        full = [f.name for f in files if pq.read_metadata(f).num_rows]
        opened.clear()
        got = tableread.read_table(archive_out, table)
        assert sorted(opened) == sorted(full), table
        assert len(files) > len(full), table  # some parts are empty
        whole = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        assert got is not None and len(got) == len(whole), table
        opened.clear()
        scanned = list(tableread.scan_table(archive_out, table))
        assert sorted(opened) == sorted(full), table  # a scan too
        assert sum(len(b) for b in scanned) == len(whole), table
        alone = tableread.read_table(archive_out, table, ["capture"],
                                 [("capture", "==", "no such capture")])
        assert alone is not None and list(alone.columns) == ["capture"] and not len(alone)
    copy = tmp_path / "run"  # the same run, with only the queries parts without rows
    shutil.copytree(archive_out, copy)
    for f in (copy / "tables" / "queries").glob("*.parquet"):
        if pq.read_metadata(f).num_rows:
            f.unlink()
    opened.clear()
    empty = tableread.read_table(copy, "queries")
    assert not opened and empty is not None and not len(empty)
    assert list(empty.columns) == list(SCHEMAS["queries"])
    assert [str(t) for t in empty.dtypes] == [str(t) for t in tables_frame(
        "queries", []).dtypes]


def test_the_report_keeps_the_columns_it_reads_and_says_what_scans_say(
        archive_out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every table treated as large (IN_MEMORY_ROWS 0) and of many parts: the columns the
    summary and the page ask for are kept within KEPT_CELLS (none, some, all), and the
    text is the same; of few parts (KEPT_MIN_PARTS), nothing is kept."""
    from tshark_dicom import report as report_module

    monkeypatch.setattr(report_module, "IN_MEMORY_ROWS", 0)
    monkeypatch.setattr(report_module, "KEPT_MIN_PARTS", 2)
    pages = {}
    for cells in (0, 2_000, 10**7):
        monkeypatch.setattr(report_module, "KEPT_CELLS", cells)
        report = tshark_dicom.load(archive_out)
        echoes = pd.concat(list(report.batches("messages", ["capture", "msg_index"], [
            ("command", "in", ["C-ECHO-RQ", "C-ECHO-RSP"])])), ignore_index=True)
        pages[cells] = (report.summary(), report.to_html(), echoes.astype(str).to_csv())
        kept = report.__dict__.get("_kept_columns", {})
        held = sum(df.size for df in kept.values())
        assert held <= cells and (held > 0) == (cells > 0), cells
    assert pages[0] == pages[2_000] == pages[10**7]
    monkeypatch.setattr(report_module, "KEPT_MIN_PARTS", 10**6)
    report = tshark_dicom.load(archive_out)
    assert report.summary() == pages[0][0] and not report.__dict__.get("_kept_columns")
    assert "associations" in pages[0][0] and pages[0][2].count("\n") > 4


def test_summary_and_page_read_each_table_once_when_told_what_they_read(
        archive_out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every table treated as large and of many parts, its columns kept: told the columns
    the summary and the page read (Report.expect, as analyze does), each table is read
    once; the page tells its own, so alone it reads each table once too, and after the
    summary the tables the summary read first twice. The text is the same either way. A
    column the summary or the page starts reading without declaring it fails this."""
    from tshark_dicom import report as report_module
    from tshark_dicom.htmlreport import page_reads

    monkeypatch.setattr(report_module, "IN_MEMORY_ROWS", 0)
    monkeypatch.setattr(report_module, "KEPT_MIN_PARTS", 2)
    monkeypatch.setattr(report_module, "KEPT_CELLS", 10**8)
    reads: list[str] = []
    read_table = report_module.read_table
    monkeypatch.setattr(report_module, "read_table", lambda folder, table, *a, **k: (
        reads.append(table), read_table(folder, table, *a, **k))[1])
    pages = []
    for told in (False, True):
        reads.clear()
        report = tshark_dicom.load(archive_out)
        if told:
            report.expect(report_module.SUMMARY_READS)
            report.expect(page_reads())
        pages.append((report.summary(), report.to_html()))
        counts = pd.Series(reads).value_counts()
        if told:
            assert counts.max() == 1, counts[counts > 1].to_dict()
        else:  # the page tells its own columns, after the summary's first reads
            assert counts["associations"] == 2 and counts.max() == 2
    assert pages[0] == pages[1]
    reads.clear()  # the page alone (a notebook's report.to_html()): each table once
    assert tshark_dicom.load(archive_out).to_html() == pages[0][1]
    assert pd.Series(reads).value_counts().max() == 1


def test_small_tables_are_read_once_with_the_columns_told(
        archive_out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables small enough to load (IN_MEMORY_ROWS, as an archive of small captures has):
    told what the summary and the page read, each is read once with those columns only
    (the associations table: 29 of 81), not whole; the captures table, which the summary
    takes whole, excepted. The text is the same as from whole tables."""
    from tshark_dicom import report as report_module
    from tshark_dicom.htmlreport import page_reads

    reads: list[tuple[str, int]] = []
    read_table = report_module.read_table
    monkeypatch.setattr(report_module, "read_table", lambda folder, table, cols=None, *a, **k: (
        reads.append((table, len(cols) if cols else 0)), read_table(folder, table, cols, *a,
                                                                    **k))[1])
    whole = tshark_dicom.load(archive_out)
    summary = whole.summary()
    assert reads and all(n == 0 for _, n in reads)  # not told: whole tables
    pages = [(summary, whole.to_html())]  # (the page tells its own)
    reads.clear()
    told = tshark_dicom.load(archive_out)
    told.expect(report_module.SUMMARY_READS)
    told.expect(page_reads())
    pages.append((told.summary(), told.to_html()))
    assert pages[0] == pages[1]
    tables = [t for t, _ in reads]
    assert len(tables) == len(set(tables)) >= 8, reads  # each once
    wanted = {t: len(dict.fromkeys([*report_module.SUMMARY_READS.get(t, []), *cols]))
              for t, cols in page_reads().items()}
    for table, n in reads:
        if table == "captures":
            assert n == 0
        else:
            assert 0 < n == wanted[table] <= len(SCHEMAS[table]), table
    assert dict(reads)["associations"] < len(SCHEMAS["associations"]) // 2
    # a choice of columns read is what the whole table has of them, dtypes too
    monkeypatch.undo()
    for table, cols in page_reads().items():
        some = report_module.read_table(archive_out, table, cols)
        all_ = report_module.read_table(archive_out, table)
        assert some is not None and all_ is not None
        pd.testing.assert_frame_equal(some, all_[cols], check_exact=True)


def test_a_run_knows_the_footers_of_the_parts_it_wrote(tmp_path: Path) -> None:
    """The parts a run writes (the workers' through their staged `PART_INDEX`, its own
    captures parts) are known to part_footer with the row count and schema their footers
    hold: the report that follows reads no footer again."""
    import pyarrow.parquet as pq

    from tshark_dicom import store
    from tshark_dicom.archive import analyze_to

    folder = tmp_path / "caps"
    folder.mkdir()
    for name in ("echo.pcapng", "store_104.pcapng", "find_move.pcapng"):
        shutil.copy(CAPTURES / name, folder / name)
    for jobs in (1, 2):
        out = tmp_path / f"out{jobs}"
        store._FOOTERS.clear()
        analyze_to(folder, out, jobs=jobs)
        parts = sorted((out / "tables").glob("*/*.parquet"))
        assert len(parts) == 3 * len(SCHEMAS)
        for part in parts:
            st = part.stat()
            key = (str(part), st.st_mtime_ns, st.st_size, part.parent.name)
            assert store._FOOTERS.get(key) == (pq.read_metadata(part).num_rows, True), key
        assert any(store._FOOTERS[k][0] > 0 for k in store._FOOTERS)


def test_a_later_reader_takes_the_row_counts_from_the_part_index(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run leaves each part's row count, size and time in tables/.parts.json: a later
    process reads the summary and the page without opening a footer, except of a part
    changed since; an index of another schema is not believed."""
    import json

    import pyarrow.parquet as pq

    from tshark_dicom import store
    from tshark_dicom.archive import analyze_to

    folder = tmp_path / "caps"
    folder.mkdir()
    for name in ("echo.pcapng", "store_104.pcapng", "find_move.pcapng"):
        shutil.copy(CAPTURES / name, folder / name)
    out = tmp_path / "out"
    analyze_to(folder, out, jobs=1)
    index = json.loads((out / "tables" / ".parts.json").read_text())
    parts = sorted((out / "tables").glob("*/*.parquet"))
    assert len(index["parts"]) == len(parts) == 3 * len(SCHEMAS)
    for part in parts:
        rows, size, mtime = index["parts"][f"{part.parent.name}/{part.name}"]
        assert (rows, size, mtime) == (pq.read_metadata(part).num_rows, part.stat().st_size,
                                       part.stat().st_mtime_ns)
    opened: list[str] = []
    read_metadata = pq.read_metadata
    monkeypatch.setattr(store.pq, "read_metadata", lambda path, *a, **k: (
        opened.append(str(path)), read_metadata(path, *a, **k))[1])

    def fresh_report() -> str:
        store._FOOTERS.clear()
        store._INDEXES.clear()
        opened.clear()
        report = tshark_dicom.load(out)
        return report.summary() + report.to_html()

    first = fresh_report()
    assert opened == []
    changed = out / "tables" / "messages" / "store_104.pcapng.parquet"
    os.utime(changed, ns=(time.time_ns(), time.time_ns()))
    assert fresh_report() == first and opened == [str(changed)]
    index_path = out / "tables" / ".parts.json"
    kept = index_path.read_bytes()
    index_path.unlink()
    assert fresh_report() == first
    without = sorted(opened)
    assert len(without) > 2 * len(SCHEMAS)  # the report asks for most tables' footers
    index_path.write_bytes(kept)
    monkeypatch.setattr(store, "_fingerprint", lambda table: "another schema")
    assert fresh_report() == first and sorted(opened) == without

    def full(path: Path, write: object) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "_atomic", full)  # the index is a shortcut, not a result
    store.write_part_index(out)


def test_object_folders_keep_their_names_when_files_are_added(tmp_path: Path) -> None:
    folder = tmp_path / "caps"
    folder.mkdir()
    shutil.copy(CAPTURES / "store_104.pcapng", folder / "b.pcapng")
    out1, out2 = tmp_path / "o1", tmp_path / "o2"
    assert invoke("analyze", str(folder), "-o", str(out1))[0] == 0
    shutil.copy(CAPTURES / "echo.pcapng", folder / "a.pcapng")  # sorts before b
    assert invoke("analyze", str(folder), "-o", str(out2))[0] == 0
    first = sorted(str(p.relative_to(out1)) for p in (out1 / "objects").rglob("*.dcm"))
    second = sorted(str(p.relative_to(out2)) for p in (out2 / "objects").rglob("*.dcm"))
    assert first == second and first[0].startswith("objects/b.pcapng/")


def test_resume_skips_what_is_done_and_redoes_what_changed(tmp_path: Path) -> None:
    folder = tmp_path / "caps"
    folder.mkdir()
    for name in ("echo.pcapng", "store_104.pcapng", "multi_store.pcapng"):
        shutil.copy(CAPTURES / name, folder / name)
    out = tmp_path / "out"
    code, stdout, _ = invoke("analyze", str(folder), "-o", str(out), "--resume", "--verify")
    assert code == 0 and "resumed: 0 capture(s) already done, 3 analysed now" in stdout
    code, stdout, _ = invoke("analyze", str(folder), "-o", str(out), "--resume", "--verify")
    assert code == 0 and "resumed: 3 capture(s) already done, 0 analysed now" in stdout
    os.utime(folder / "echo.pcapng", ns=(time.time_ns(), time.time_ns()))
    code, stdout, _ = invoke("analyze", str(folder), "-o", str(out), "--resume")
    assert code == 0 and "resumed: 2 capture(s) already done, 1 analysed now" in stdout
    (folder / "store_104.pcapng").unlink()
    code, stdout, _ = invoke("analyze", str(folder), "-o", str(out), "--resume")
    assert code == 0
    assert set(tshark_dicom.load(out).captures["key"]) == {"echo.pcapng", "multi_store.pcapng"}
    assert not (out / "objects" / "store_104.pcapng").exists()
    code, _, stderr = invoke("analyze", str(folder), "-o", str(out), "--verify")
    assert code == 2 and stderr.strip() == "Error: --verify goes with --resume"


def test_resume_after_sigkill_equals_an_uninterrupted_run(archive: Path, tmp_path: Path
                                                         ) -> None:
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert invoke("analyze", str(archive), "-o", str(whole))[0] == 0
    argv = [sys.executable, "-m", "tshark_dicom", "analyze", str(archive), "-o", str(killed),
            "--resume", "--quiet"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = killed / "tables" / "captures"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if parts.is_dir() and len(list(parts.glob("*.parquet"))) >= 8:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(parts.glob("*.parquet")))
    assert 8 <= done < len(GOOD) + 4
    assert not (killed / "summary.txt").exists()
    code, stdout, stderr = invoke("analyze", str(archive), "-o", str(killed), "--resume")
    assert code == 0, stderr
    line = next(x for x in stdout.splitlines() if x.startswith("resumed: "))
    reused, analysed = (int(w) for w in line.split() if w.isdigit())
    # every capture done before the kill is reused, but a failed one (tried again)
    assert done - 2 <= reused <= done and reused + analysed == len(GOOD) + 4
    a, b = _tables(whole), _tables(killed)
    for t in SCHEMAS:
        x, y = a[t], b[t]
        if t == "captures":
            x, y = x.drop(columns=["elapsed_s", "path"]), y.drop(columns=["elapsed_s", "path"])
        assert x.astype(str).equals(y.astype(str)), t
    assert sorted(p.relative_to(whole).as_posix() for p in (whole / "objects").rglob("*")) == \
        sorted(p.relative_to(killed).as_posix() for p in (killed / "objects").rglob("*"))
    assert not any(p.name.startswith(".tshark-dicom") for p in killed.iterdir())


def _interrupted_run(out: Path, *args: str, command: str = "analyze", ignored: bool = False
                     ) -> tuple[subprocess.Popen[str], Path]:
    """``analyze`` (or ``command``) of 40 copies of a 9 MB capture in a session of its own
    (SIGINT as a terminal's Ctrl-C sends it: to the whole group), started and left
    running; standard output is a pipe, ``-o out`` only for analyze. ``ignored``: started
    with SIGINT ignored (nohup, a script's background job)."""
    caps = out.parent / "caps"
    caps.mkdir(exist_ok=True)
    for i in range(40):
        link = caps / f"m{i:02}.pcapng"
        if not link.exists():
            link.symlink_to(CAPTURES / "large_multiframe.pcapng")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tshark_dicom", command, str(caps),
         *(["-o", str(out), "-q"] if command == "analyze" else []), *args],
        stdout=subprocess.DEVNULL if command == "analyze" else subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
        start_new_session=True, cwd=ROOT,
        # Ctrl-C as at a terminal, even if this process was started with it ignored
        preexec_fn=lambda: signal.signal(  # noqa: PLW1509
            signal.SIGINT, signal.SIG_IGN if ignored else signal.SIG_DFL),
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    return proc, caps


def _in_session(sid: int) -> list[int]:
    """The live processes of a session (zombies left to be reaped are not)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[3]) == sid:
            found.append(int(entry))
    return found


@pytest.mark.parametrize(("jobs", "more"), [("1", ()), ("2", ()), ("1", ("--no-objects",))])
def test_ctrl_c_stops_the_run_at_once_and_keeps_what_finished(tmp_path: Path, jobs: str,
                                                              more: tuple[str, ...]) -> None:
    """Ctrl-C mid-archive: the run ends within seconds with exit 130 and its one line
    (no worker aborting inside the compiled packet loop), no process of it is left (with
    --no-objects on two cores, the hashing helper's neither: sidehash.py), the captures
    finished are kept, and --resume finishes the rest."""
    out = tmp_path / "out"
    proc, caps = _interrupted_run(out, "--jobs", jobs, *more)
    parts = out / "tables" / "captures"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if parts.is_dir() and any(parts.glob("*.parquet")):
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert stderr.splitlines() == [f"Error: interrupted; the captures finished so far are in "
                                   f"{out}: rerun with --resume to go on"]
    deadline = time.monotonic() + 5
    while _in_session(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _in_session(proc.pid) == []
    done = len(list(parts.glob("*.parquet")))
    assert 1 <= done < 40
    assert not (out / "summary.txt").exists()
    code, stdout, stderr = invoke("analyze", str(caps), "-o", str(out), "--resume", "--jobs",
                                  jobs, *more)
    assert code == 0, stderr
    assert stdout.startswith("40 capture(s)")
    assert f"resumed: {done} capture(s) already done, {40 - done} analysed now" in stdout


def test_ctrl_c_before_any_capture_finished_leaves_no_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc, _ = _interrupted_run(out)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not out.exists():
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert stderr.splitlines() == [f"Error: interrupted before any capture was finished; "
                                   f"{out} was not created"]
    assert not out.exists()


def test_a_run_started_with_ctrl_c_ignored_ignores_it(tmp_path: Path) -> None:
    """A run started with SIGINT ignored goes on when the group gets one, its workers too:
    before, they left on it, and the run ended in a BrokenProcessPool ("internal error")."""
    out = tmp_path / "out"
    proc, _ = _interrupted_run(out, ignored=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(out.glob("tables/captures/*")):
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGINT)  # a capture finished, the others under way
    _, stderr = proc.communicate(timeout=120)
    assert (proc.returncode, stderr) == (0, "")
    assert (out / "summary.txt").read_text().startswith("40 capture(s)")


_STOPPED_IMPORT = """
import importlib.abc, sys
class Stop(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "tshark_dicom.archive":
            raise KeyboardInterrupt
sys.meta_path.insert(0, Stop())
sys.argv = ["tshark-dicom", *sys.argv[1:]]
from tshark_dicom.cli import main
main()
"""


def test_ctrl_c_while_the_library_loads_says_so(tmp_path: Path) -> None:
    """Ctrl-C while ``analyze`` imports the library (its first tenth of a second) ends it
    with the same line as later, not the silent exit 130 typer makes of it."""
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", _STOPPED_IMPORT, "analyze",
                           str(CAPTURES / "echo.pcapng"), "-o", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 130
    assert proc.stderr.splitlines() == [f"Error: interrupted before any capture was "
                                        f"finished; {out} was not created"]
    assert not out.exists()


@pytest.mark.parametrize("where", ["WorkDir", "_earlier"])
def test_interrupted_as_the_output_folder_appears_leaves_none(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """Ctrl-C after the output folder is made and before the analysis starts (where the
    test above's signal lands at times): the folder the run made goes, with its work
    folder, as it does when the run is interrupted later, and the command line then says
    it was not created. Before, it stayed behind, "holding the earlier results"."""
    from tshark_dicom import archive

    real = getattr(archive, where)

    def interrupted(*args: object, **kwargs: object) -> object:
        real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(archive, where, interrupted)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        archive.analyze_to(CAPTURES / "echo.pcapng", out, resume=True)
    assert not out.exists()


def test_ctrl_c_ends_diagnose_at_once(tmp_path: Path) -> None:
    """diagnose analyses in its own process: Ctrl-C there ends it with exit 130 and one
    line, not the abort a KeyboardInterrupt inside the compiled packet loop caused."""
    proc, _ = _interrupted_run(tmp_path / "out", command="diagnose")
    assert proc.stdout is not None
    first = proc.stdout.readline()  # the first capture's diagnosis: the run is under way
    assert first.startswith("m00.pcapng"), first
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=20)
    assert (proc.returncode, stderr.splitlines()) == (130, ["Error: interrupted"])
    deadline = time.monotonic() + 5
    while _in_session(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _in_session(proc.pid) == []


def test_diagnose_into_a_reader_that_goes_away_ends_quietly(tmp_path: Path) -> None:
    """``diagnose ARCHIVE | head -1``: the reader leaves after a line, and diagnose ends
    without a word (before: "Error: internal error (BrokenPipeError ...)")."""
    proc, _ = _interrupted_run(tmp_path / "out", command="diagnose")
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith("m00.pcapng")
    proc.stdout.close()
    assert proc.wait(timeout=120) == 1
    assert proc.stderr.read() == ""


# -- ring-buffer and split sets -------------------------------------------------------------
def _cap(path: Path) -> tshark_dicom.discovery.CaptureFile:
    from tshark_dicom.discovery import CaptureFile

    return CaptureFile(path, str(path), path.as_posix().replace("/", "__"), 1, 1)


def test_sets_are_recognised_by_their_names() -> None:
    from tshark_dicom.discovery import stitch

    names = ["ring_00002_20260101120500.pcapng", "ring_00001_20260101120000.pcapng",
             "ring_00003_20260101121000.pcapng", "trace.pcap", "trace.pcap2", "trace.pcap1",
             "other.pcapng", "single_00001_20260101120000.pcapng"]
    caps = [_cap(Path("/a") / n) for n in names] + [_cap(Path("/b/trace.pcap1"))]
    heads = stitch(caps)
    by = {h.path.as_posix(): [m.path.name for m in h.more] for h in heads}
    assert by["/a/ring_00001_20260101120000.pcapng"] == [
        "ring_00002_20260101120500.pcapng", "ring_00003_20260101121000.pcapng"]
    assert by["/a/trace.pcap"] == ["trace.pcap1", "trace.pcap2"]
    assert by["/a/other.pcapng"] == [] and by["/a/single_00001_20260101120000.pcapng"] == []
    assert by["/b/trace.pcap1"] == []  # another folder: not the same set
    assert len(heads) == 5


def test_a_split_capture_is_analysed_as_one(tmp_path: Path) -> None:
    parts = tmp_path / "set"
    parts.mkdir()
    subprocess.run(["editcap", "-c", "12", str(CAPTURES / "multi_store.pcapng"),
                    str(parts / "ms.pcapng")], check=True, capture_output=True)
    assert len(list(parts.iterdir())) == 5
    whole = tshark_dicom.analyze(CAPTURES / "multi_store.pcapng")
    stitched = tshark_dicom.analyze(parts)
    assert sorted(stitched.objects["sha256"]) == sorted(whole.objects["sha256"])
    assert stitched.objects["complete"].all() and len(stitched.messages) == len(whole.messages)
    first = sorted(parts.iterdir())[0]
    assert set(stitched.associations["capture"]) == {str(first)}
    assert list(stitched.captures["association_count"]) == [1, 0, 0, 0, 0]
    alone = tshark_dicom.analyze(parts, stitch=False)
    assert len(alone.messages) < len(whole.messages)  # without stitching the set breaks up


RINGS = sorted((CAPTURES / "ring").glob("*/*.truth.json"))


@pytest.mark.parametrize("truth_path", RINGS, ids=[t.parent.name for t in RINGS])
def test_ring_buffer_sets_from_real_peers_give_every_object_whole(truth_path: Path,
                                                                  tmp_path: Path) -> None:
    import hashlib
    import json

    truth = json.loads(truth_path.read_text())
    out = tmp_path / "out"
    code, _, stderr = invoke("analyze", str(truth_path.parent), "-o", str(out))
    assert code == 0, stderr
    report = tshark_dicom.load(out)
    assert list(report.captures["key"]) == truth["ring"]["files"]
    assert (report.captures["status"] == "ok").all()
    want = [m for a in truth["associations"] for m in a["messages"] if m["dataset_sha256"]]
    objs = report.objects
    assert sorted(objs["sha256"]) == sorted(m["dataset_sha256"] for m in want)
    assert objs["complete"].all() and len(truth["associations"]) == len(report.associations)
    for row in objs.itertuples():  # byte-exact Part-10 files, under the first file's key
        data = (out / row.path).read_bytes()
        assert row.path.startswith(f"objects/{truth['ring']['files'][0]}/")
        assert hashlib.sha256(data[-row.dataset_bytes:]).hexdigest() == row.sha256
    firsts = [Path(c).name for c in report.associations["capture"]]
    assert firsts == truth["ring"]["association_first_files"]
    for a in report.associations.itertuples():  # frames count from the start of that file
        ports = subprocess.run(
            ["tshark", "-r", str(a.capture), "-Y", f"frame.number == {a.first_frame}",
             "-T", "fields", "-e", "tcp.srcport", "-e", "tcp.dstport"],
            capture_output=True, text=True, check=True).stdout.split()
        assert sorted(map(int, ports)) == sorted([a.requestor_port, a.acceptor_port])
    assert truth["ring"]["objects_crossing_files"] >= 1
    code, _, _ = invoke("analyze", str(truth_path.parent), "-o", str(tmp_path / "alone"),
                        "--no-stitch")
    alone = tshark_dicom.load(tmp_path / "alone")
    assert alone.objects["complete"].sum() < len(want)  # each file alone loses them


def test_a_set_resumed_with_verify_keeps_each_files_own_hash(tmp_path: Path) -> None:
    """--resume --verify over a ring-buffer set: each file's captures row carries its own
    file's SHA-256, and a second run finds the set done. (A set's rows were given one hash
    between them: the run ended in an internal error.)"""
    import hashlib

    ring = RINGS[0].parent
    out = tmp_path / "out"
    code, stdout, stderr = invoke("analyze", str(ring), "-o", str(out), "--resume", "--verify")
    assert code == 0, stderr
    caps = tshark_dicom.load(out).captures
    assert len(caps) > 1 and caps["sha256"].notna().all()
    for row in caps.itertuples():
        assert row.sha256 == hashlib.sha256(Path(str(row.path)).read_bytes()).hexdigest()
    code, stdout, _ = invoke("analyze", str(ring), "-o", str(out), "--resume", "--verify")
    assert code == 0 and "resumed: 1 capture(s) already done, 0 analysed now" in stdout


# -- replacing results: never neither, never mixed, nothing left behind ----------------------
OLD_SET = ("store_statuses.pcapng", "echo.pcapng")
NEW_SET = ("multi_store.pcapng", "abort.pcapng")
#: (checkpoint, what OUT holds after a SIGKILL there): the commit point is run.json moved in
KILL_POINTS = [("capture-written", "old"), ("staged", "old"), ("old-aside:run.json", "old"),
               ("old-aside:tables", "old"), ("old-aside:objects", "old"),
               ("new-in:tables", "old"), ("new-in:run.json", "new"), ("committed", "new")]


def _snapshot(out: Path) -> tuple[dict[str, str], list[str]]:
    """Every table of a run (as text, without run-dependent times) and its object files."""
    report = tshark_dicom.load(out)
    tables = {}
    for t in SCHEMAS:
        df = report.table(t)
        if t == "captures":
            df = df.drop(columns=["elapsed_s", "tshark_version"])  # probed lazily: may be blank
        tables[t] = df.astype(str).to_csv(index=False)
    objects = sorted(p.relative_to(out).as_posix() for p in (out / "objects").rglob("*"))
    return tables, objects


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An old run (OLD_SET) and a new one (NEW_SET), each analysed whole."""
    root = tmp_path_factory.mktemp("swap")
    made = {}
    for name, caps in (("old", OLD_SET), ("new", NEW_SET)):
        out = root / name
        code, _, stderr = invoke("analyze", *(str(CAPTURES / c) for c in caps), "-o", str(out))
        assert code == 0, stderr
        made[name] = out
    return made


def _stopped(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
    except OSError:
        return False


def _kill_at(point: str, out: Path) -> None:
    """Run analyze of NEW_SET into ``out``, stop it at ``point`` and SIGKILL it there;
    return once its worker, which the kernel kills when the run's process dies
    (workers.die_with_parent), has gone too: until then it holds the work folder's lock, and
    a reader leaves a live run's work folder alone."""
    argv = [sys.executable, "-m", "tshark_dicom", "analyze",
            *(str(CAPTURES / c) for c in NEW_SET), "-o", str(out), "--quiet"]
    env = {**os.environ, "TSHARK_DICOM_PAUSE_AT": point}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and not _stopped(proc.pid):
        time.sleep(0.01)
    assert proc.poll() is None, f"the run ended before {point}: {proc.stderr.read()!r}" \
        if proc.stderr else point
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if proc.stderr:
        proc.stderr.close()
    deadline = time.monotonic() + 30
    while _in_session(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _in_session(proc.pid), "a process of the killed run lives on"


@pytest.mark.parametrize(("point", "holds"), KILL_POINTS)
def test_a_run_killed_while_replacing_leaves_old_or_new_whole(
        two_runs: dict[str, Path], tmp_path: Path, point: str, holds: str) -> None:
    out = tmp_path / "out"
    shutil.copytree(two_runs["old"], out)
    _kill_at(point, out)
    assert any(p.name.startswith(".tshark-dicom-") for p in out.iterdir()) or \
        point == "committed" or point == "new-in:run.json"
    # any reader (load) finishes or undoes the swap first: then OUT is one run, whole
    assert _snapshot(out) == _snapshot(two_runs[holds])
    assert not any(p.name.startswith(".tshark-dicom-") for p in out.iterdir())
    code, _, stderr = invoke("analyze", *(str(CAPTURES / c) for c in NEW_SET), "-o", str(out))
    assert code == 0, stderr
    assert _snapshot(out) == _snapshot(two_runs["new"])


def test_a_killed_swap_is_finished_by_the_next_run_too(two_runs: dict[str, Path],
                                                       tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(two_runs["old"], out)
    _kill_at("new-in:tables", out)
    # not read in between: the next run undoes the swap, then replaces OUT as usual
    code, _, stderr = invoke("analyze", *(str(CAPTURES / c) for c in OLD_SET), "-o", str(out))
    assert code == 0, stderr
    assert _snapshot(out) == _snapshot(two_runs["old"])
    assert sorted(p.name for p in out.iterdir()) == ["objects", "report.html", "run.json",
                                                     "summary.txt", "tables"]


def test_stale_work_folders_are_removed_and_live_ones_left(two_runs: dict[str, Path],
                                                           tmp_path: Path) -> None:
    from tshark_dicom.swap import WorkDir

    out = tmp_path / "out"
    shutil.copytree(two_runs["old"], out)
    dcm = next((two_runs["old"] / "objects").rglob("*.dcm")).read_bytes()
    # what killed runs leave: 0.1's PID-named folders (the PID repeats in a container) and
    # this version's, whose lock no live process holds; each with a whole-looking object
    for name in (".tshark-dicom-run-1", ".tshark-dicom-partial", ".tshark-dicom-run-x1y2z3"):
        (out / name / "objects" / "cap").mkdir(parents=True)
        (out / name / "objects" / "cap" / "0000-000001-1.2.3.dcm").write_bytes(dcm)
    (out / ".tshark-dicom-run-x1y2z3" / ".lock").touch()
    live = WorkDir(out, "run")  # another run at work in the same folder: left alone
    try:
        code, _, stderr = invoke("analyze", *(str(CAPTURES / c) for c in NEW_SET), "-o",
                                 str(out))
        assert code == 0, stderr
        assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == \
            [live.path.name]
        assert _snapshot(out) == _snapshot(two_runs["new"])
    finally:
        live.remove()


def test_output_is_owner_only_unless_shared(two_runs: dict[str, Path], tmp_path: Path
                                           ) -> None:
    modes = {p.stat().st_mode & 0o777 for p in two_runs["new"].rglob("*")}
    assert modes == {0o600, 0o700}
    assert two_runs["new"].stat().st_mode & 0o777 == 0o700
    shared = tmp_path / "shared"
    proc = subprocess.run([sys.executable, "-m", "tshark_dicom", "analyze",
                           str(CAPTURES / NEW_SET[0]), "-o", str(shared), "--format", "both",
                           "--shared-output", "-q"], capture_output=True, text=True,
                          preexec_fn=lambda: os.umask(0o022))
    assert proc.returncode == 0, proc.stderr
    files = [p for p in shared.rglob("*") if p.is_file()]
    assert {p.stat().st_mode & 0o777 for p in files} == {0o644}
    assert {p.stat().st_mode & 0o777 for p in shared.rglob("*") if p.is_dir()} == {0o755}
    assert any(p.suffix == ".dcm" for p in files) and any(p.suffix == ".csv" for p in files)


@pytest.mark.parametrize("shared", [False, True])
def test_jobs_workers_write_with_the_runs_umask(tmp_path: Path, shared: bool) -> None:
    """--jobs workers (forks of the run's process, or of a fork server started earlier:
    batch.py, workers.py) write what is owner-only all the same, or as the umask allows
    with --shared-output."""
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "tshark_dicom", "analyze",
                           *(str(CAPTURES / c) for c in NEW_SET), "-o", str(out), "--jobs",
                           "2", "-q", *(["--shared-output"] if shared else [])],
                          capture_output=True, text=True, cwd=ROOT,
                          preexec_fn=lambda: os.umask(0o022))
    assert proc.returncode == 0, proc.stderr
    written = list(out.rglob("*"))
    assert any(p.suffix == ".dcm" for p in written)  # written by a worker
    files = {p.stat().st_mode & 0o777 for p in written if p.is_file()}
    folders = {p.stat().st_mode & 0o777 for p in written if p.is_dir()}
    assert (files, folders) == (({0o644}, {0o755}) if shared else ({0o600}, {0o700}))


# -- as a user without root's powers ---------------------------------------------------------
def _as_nobody(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI run as nobody:nogroup (setpriv), with this worktree's package."""
    argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
            sys.executable, "-m", "tshark_dicom", *args]
    env = {**os.environ, "HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=120)


@pytest.fixture
def nobody_dir(checkout_reachable: None) -> Iterator[Path]:
    """A folder nobody owns (pytest's own are root's, 0700); nobody can reach the code."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="tdc-nobody-"))
    os.chown(path, 65534, 65534)
    try:
        yield path
    finally:
        for p in path.rglob("*"):
            if p.is_dir():
                p.chmod(0o700)
        shutil.rmtree(path)


def _chown_tree(path: Path) -> None:
    for p in [path, *path.rglob("*")]:
        os.chown(p, 65534, 65534)


def test_as_nobody_a_move_that_fails_keeps_the_old_results(two_runs: dict[str, Path],
                                                           nobody_dir: Path) -> None:
    out = nobody_dir / "out"
    shutil.copytree(two_runs["old"], out)
    _chown_tree(out)
    (out / "objects").chmod(0o555)  # a folder its owner cannot move (nor change)
    proc = _as_nobody(nobody_dir, "analyze", *(str(CAPTURES / c) for c in NEW_SET), "-o",
                      str(out), "-q")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith(f"Error: {out}: cannot move the earlier results aside "
                                  "(objects: Permission denied)"), proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) == 1
    (out / "objects").chmod(0o755)
    assert _snapshot(out) == _snapshot(two_runs["old"])
    assert not any(p.name.startswith(".tshark-dicom-") for p in out.iterdir())


def test_as_nobody_old_results_that_cannot_be_removed_do_not_block_the_new(
        two_runs: dict[str, Path], nobody_dir: Path) -> None:
    out = nobody_dir / "out"
    shutil.copytree(two_runs["old"], out)
    _chown_tree(out)
    stuck = next(p for p in (out / "objects").iterdir() if p.is_dir())
    stuck.chmod(0o555)  # its files cannot be deleted
    proc = _as_nobody(nobody_dir, "analyze", *(str(CAPTURES / c) for c in NEW_SET), "-o",
                      str(out), "-q")
    assert proc.returncode == 0, proc.stderr
    assert "could not all be removed" in proc.stderr and "remove it by hand" in proc.stderr
    assert _snapshot(out) == _snapshot(two_runs["new"])


def test_as_nobody_an_output_folder_it_cannot_create_is_one_line(nobody_dir: Path) -> None:
    locked = nobody_dir / "locked"
    locked.mkdir()
    os.chown(locked, 0, 0)
    proc = _as_nobody(nobody_dir, "analyze", str(CAPTURES / "echo.pcapng"), "-o",
                      str(locked / "out"))
    assert proc.returncode == 4  # the environment, not the input (OutputError)
    assert proc.stderr == (f"Error: {locked / 'out'}: cannot create the output folder: "
                           "Permission denied\n")


def test_a_table_handed_back_without_rows_is_the_frame_arrow_would_give() -> None:
    """`StoredReport.hand` makes a table of no rows the schema's empty frame, without
    Arrow's conversion: the same columns, in the order handed, the same dtypes and index,
    for every table and the columns the summary and the page read."""
    from tshark_dicom.htmlreport import page_reads
    from tshark_dicom.report import SUMMARY_READS, Handed
    from tshark_dicom.tableread import typed_frame, wanted_schema

    handed = Handed(SUMMARY_READS, page_reads())
    assert {"associations", "captures", "operations"} <= set(handed.columns)
    for table, columns in handed.columns.items():
        arrow = wanted_schema(table, columns).empty_table()
        expected = typed_frame(table, arrow.to_pandas(use_threads=False), columns)
        got = tables_frame(table, [])[list(columns)]
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
        assert list(got.columns) == list(columns)
        assert type(got.index) is type(expected.index)


def test_the_runs_report_takes_what_its_workers_handed_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The summary and page a run writes come from the parts its workers handed back
    (report.Handed), none read again: the same text and page as drawn afresh from the
    parts on disk, a failed capture's row among them. A run that adds to earlier parts
    (--resume) reads them all back instead."""
    from tshark_dicom import report as report_module
    from tshark_dicom.archive import analyze_to
    from tshark_dicom.htmlreport import page_reads

    reads: list[str] = []
    read_table = report_module.read_table
    monkeypatch.setattr(report_module, "read_table", lambda folder, table, *a, **k: (
        reads.append(table), read_table(folder, table, *a, **k))[1])
    folder = tmp_path / "caps"
    folder.mkdir()
    for name in ("echo.pcapng", "qr_move_ok.pcapng", "find_move.pcapng"):
        shutil.copy(CAPTURES / name, folder / name)
    (folder / "corrupt.pcapng").write_bytes((CAPTURES / "echo.pcapng").read_bytes()[:40]
                                            + b"\xff" * 200)
    out = tmp_path / "out"
    for jobs in (1, 2):
        analyze_to(folder, out, jobs=jobs)
        assert reads == [], jobs  # every table the report reads was handed back
        fresh = tshark_dicom.load(out)
        fresh.expect(report_module.SUMMARY_READS)
        fresh.expect(page_reads())
        assert (out / "summary.txt").read_text() == fresh.summary() + "\n"
        assert "1 could not be analysed" in fresh.summary()
        fresh.write_html(tmp_path / "page.html", "tshark-dicom: out")
        assert (tmp_path / "page.html").read_bytes() == (out / "report.html").read_bytes()
        reads.clear()
    shutil.copy(CAPTURES / "store_104.pcapng", folder / "store_104.pcapng")
    analyze_to(folder, out, resume=True)  # the earlier parts, not handed: read
    assert {"associations", "captures", "operations"} <= set(reads)
    again = tshark_dicom.load(out)
    assert (out / "summary.txt").read_text() == again.summary() + "\n"
