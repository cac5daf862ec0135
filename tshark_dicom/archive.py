"""Analyse captures into an output folder, one capture at a time to disk (the body of
``tshark-dicom analyze``): memory does not grow with the number of captures, each capture's
results appear whole or not at all, and ``resume`` skips the captures already done.

- Into a new or empty folder, or with ``resume``: parts go straight into OUT as each
  capture finishes (objects via a hidden work folder, OUT/.tshark-dicom-partial-*), so a
  run killed halfway keeps what it finished and ``resume`` goes on from there.
- Into a folder holding an earlier run, without ``resume``: the run is built in a staging
  folder inside OUT (.tshark-dicom-run-*) and swapped in only when complete (swap.py): the
  earlier run stays whole until then, is never mixed with the new one, and a run killed
  during the swap leaves the old results or the new ones.
"""

from __future__ import annotations

import importlib
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import memory
from .batch import ProgressFn, run
from .discovery import CaptureFile, Source, content_hash
from .errors import OptionsError, OutputError, TsharkDicomError
from .schemas import plain
from .store import (
    FORMATS,
    TABLES_DIR,
    has_results,
    manifest,
    move_parts,
    output_mode,
    part_keys,
    private_tree,
    remove_parts,
    write_captures_part,
    write_manifest,
    write_part_index,
)
from .swap import WorkDir, checkpoint, recover, replace
from .tableread import read_table

if TYPE_CHECKING:  # imported once the captures are being analysed (`report_modules`)
    import pandas as pd
    import pyarrow as pa

    from .redact import Redaction
    from .report import Handed, Report

#: What the run's process reads the results with (pandas among their imports): imported
#: while worker processes analyse the captures, not before they start (batch.run's warm).
REPORT_MODULES = ("tshark_dicom.report", "tshark_dicom.htmlreport")


def report_modules(busy: Callable[[], bool] = lambda: False) -> None:
    """Import `REPORT_MODULES` (memory.frozen_imports); then, while the captures are still
    being analysed (``busy``), run the report's code once on no tables (`exercise`)."""
    with memory.frozen_imports():
        for name in REPORT_MODULES:
            importlib.import_module(name)
    if busy():
        exercise()


def exercise() -> None:
    """The summary and the page of a report of no tables, thrown away: what pandas and the
    report do only the first time in a process (their lazy imports, caches, first frames:
    0.01-0.03 s) is done while this process would wait anyway, not after the last capture
    (the 22 MB capture's summary and page 87-105 -> 78-88 ms)."""
    from .report import Report

    empty = Report()
    empty.summary()
    empty.to_html("")


@dataclass
class ArchiveRun:
    """What a run into a folder did: its report (tables read from the folder on demand),
    and how many captures were analysed, reused (resume) and failed."""

    report: Report
    analysed: int
    reused: int
    failed: int


def analyze_to(
    sources: Source | Sequence[Source],
    out: str | os.PathLike[str],
    *,
    format: str = "parquet",
    objects: bool = True,
    ports: Sequence[int] = (),
    jobs: int = 1,
    tshark: str | None = None,
    cross_check: bool = False,
    engine: str = "auto",
    resume: bool = False,
    verify: bool = False,
    dask: str | None = None,
    no_stitch: bool = False,
    tls_keylogs: Sequence[Source] = (),
    tls_ports: Sequence[int] = (),
    title: str | None = None,
    on_progress: ProgressFn | None = None,
    redact: Redaction | None = None,
    shared: bool = False,
    validate: bool = True,
) -> ArchiveRun:
    """Analyse captures into ``out``: every table as a dataset with one part per capture,
    objects under ``out/objects/<capture key>/``, ``summary.txt`` and ``report.html``.

    ``resume``: captures whose complete results are in ``out`` and that are unchanged
    (path, size, modification time; with ``verify`` also a SHA-256 of their content) are
    not analysed again. ``redact``: identifying values replaced in every table (redact.py);
    no objects are written. Files and folders are created readable by their owner only
    unless ``shared``. ``validate=False``: pydicom does not check each value it reads
    (batch.run).
    """
    if format not in FORMATS:
        raise OptionsError(f"--format {format!r}: choose parquet, csv or both")
    if verify and not resume:
        raise OptionsError("--verify goes with --resume")
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise OptionsError(f"-o {folder}: exists and is not a folder")
    if folder.is_dir():
        recover(folder)  # a swap a killed run left unfinished; killed runs' work folders
    if resume and has_results(folder):
        _same_redaction(folder, redact)
    objects = objects and redact is None
    with output_mode(shared):
        return _analyze_to(sources, folder, format=format, objects=objects, ports=ports,
                           jobs=jobs, tshark=tshark, cross_check=cross_check, engine=engine,
                           resume=resume, verify=verify, dask=dask, no_stitch=no_stitch,
                           title=title, on_progress=on_progress, redact=redact,
                           shared=shared, tls_keylogs=tls_keylogs, tls_ports=tls_ports,
                           validate=validate)


def _analyze_to(sources: Source | Sequence[Source], folder: Path, *, format: str,
                objects: bool, ports: Sequence[int], jobs: int, tshark: str | None,
                cross_check: bool, engine: str, resume: bool, verify: bool,
                dask: str | None, no_stitch: bool, title: str | None,
                on_progress: ProgressFn | None, redact: Redaction | None,
                shared: bool, tls_keylogs: Sequence[Source],
                tls_ports: Sequence[int], validate: bool) -> ArchiveRun:
    created = not folder.exists()
    in_place = resume or created or not has_results(folder)
    workdir: WorkDir | None = None  # made first: what an interruption finds to remove
    try:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            # in place: objects wait in a work folder until their capture is done; else the
            # whole run is built in one and swapped in at the end
            workdir = WorkDir(folder, "partial" if in_place else "run")
        except OSError as exc:
            raise OutputError(f"{exc.filename or folder}: cannot create the output folder: "
                              f"{exc.strerror}") from None
        work = folder if in_place else workdir.path
        objects_dir = workdir.path / "objects" if objects else None
        parts_dir = workdir.path / ".parts"  # each capture's tables, until it is done
        parts_dir.mkdir(parents=True, exist_ok=True)
        earlier = _earlier(folder) if resume else {}
        counts = {"analysed": 0, "reused": 0}
        handed: list[Handed] = []  # made once the report's modules are imported

        def hand(key: str, tables: Mapping[str, pa.Table | bytes]) -> None:
            if not handed:
                from .htmlreport import page_reads
                from .report import SUMMARY_READS, Handed

                handed.append(Handed(SUMMARY_READS, page_reads()))
            handed[0].add(key, tables)

        def on_handed(cap: CaptureFile, tables: Mapping[str, Mapping[str, bytes]]) -> None:
            for key, parts in tables.items():
                hand(key, parts)

        def on_result(cap: CaptureFile, tables: dict[str, pd.DataFrame],
                      rows: list[dict[str, Any]]) -> None:
            counts["analysed"] += 1
            if verify:  # each file's own (a set's files each have a row)
                paths = {f.key: f.path for f in cap.files}
                for row in rows:
                    row["sha256"] = content_hash(paths.get(str(row["key"]), cap.path))
            done = objects_dir / cap.key if objects_dir is not None else None
            if dask is not None and not shared and done is not None and done.exists():
                private_tree(done)  # written by a worker, under its umask
            if in_place:
                for f in cap.files:
                    remove_parts(folder, f.key)
                if done is not None and done.exists():
                    (folder / "objects").mkdir(exist_ok=True)
                    os.replace(done, folder / "objects" / cap.key)
            staged = parts_dir / cap.key  # the tables the worker wrote
            if dask is not None and not shared and staged.exists():
                private_tree(staged)  # written by a worker, under its umask
            move_parts(staged, work)
            # written last: the capture is complete; a set's files each in their own parts
            # (objects: the first's)
            for f in cap.files:
                data = write_captures_part(work, f.key, [r for r in rows if r["capture"] == f.label]
                                           if cap.more else rows, format)
                if data is not None:
                    hand(f.key, {"captures": data})
            checkpoint("capture-written")

        def skip(cap: CaptureFile) -> list[dict[str, Any]] | None:
            rows = [earlier.get(f.key) for f in cap.files]
            if any(row is None or not _unchanged(f, row, verify)
                   for f, row in zip(cap.files, rows, strict=True)):
                return None
            counts["reused"] += 1
            return [r for r in rows if r is not None]

        report = run(sources, objects_dir=objects_dir, ports=ports, jobs=jobs, tshark=tshark,
                     cross_check=cross_check, engine=engine, on_progress=on_progress,
                     on_result=on_result, skip=skip if resume else None, keep=False,
                     dask=dask, no_stitch=no_stitch, parts_dir=parts_dir, format=format,
                     redact=redact, tls_keylogs=tls_keylogs, tls_ports=tls_ports,
                     warm=report_modules, validate=validate, on_handed=on_handed)
        from .htmlreport import page_reads
        from .report import SUMMARY_READS, StoredReport, load

        shutil.rmtree(parts_dir, ignore_errors=True)
        keys = report.captures["key"].tolist()
        if in_place:
            for stale in part_keys(folder) - set(keys):
                remove_parts(folder, stale)
        write_manifest(work, keys, format, redact.settings() if redact is not None else None)
        memory.release()  # before the report reads the tables back
        stored = load(work)
        stored.skipped = report.skipped
        stored.expect(SUMMARY_READS)
        stored.expect(page_reads())
        if handed and isinstance(stored, StoredReport):
            stored.hand(handed.pop())  # what the workers handed back: not read again
        summary = stored.summary()
        (work / "summary.txt").write_text(summary + "\n")
        stored.write_html(work / "report.html", title or f"tshark-dicom: {folder.name}")
        write_part_index(work)  # what the report read of every part, for later readers
        checkpoint("staged")
        if not in_place:
            replace(workdir, folder)
        workdir.remove()
    except TsharkDicomError:  # nothing could be analysed: leave no folder that looks done
        if workdir is not None:
            workdir.remove()
        if created:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    except BaseException:  # interrupted: what finished in place stays, for --resume; one
        # made as it began (Ctrl-C as the output folder appeared) goes too
        if workdir is not None:
            workdir.remove()
        if in_place and created and not part_keys(folder):
            shutil.rmtree(folder, ignore_errors=True)
        raise
    final = load(folder)
    final.skipped = report.skipped
    failed = int((report.captures["status"] == "failed").sum())
    return ArchiveRun(final, counts["analysed"], counts["reused"], failed)


def _same_redaction(folder: Path, redact: Redaction | None) -> None:
    """--resume adds to a folder: only with the redaction (options and key) it was
    written with, or its tables would mix redacted and clear, or two keys' tokens."""
    stored = manifest(folder).get("redaction")
    wanted = redact.settings() if redact is not None else None
    if stored == wanted:
        return
    if stored is None:
        why = "was written without --redact"
    elif wanted is None:
        why = "was written with --redact"
    elif stored.get("key_check") != wanted["key_check"]:
        why = "was written with another --redact-key"
    else:
        why = "was written with other --redact options"
    raise OptionsError(f"--resume: {folder} {why}; rerun with the same options and key, "
                       "or without --resume to replace its results")


def _earlier(folder: Path) -> dict[str, dict[str, object]]:
    """The captures rows of the folder's earlier run, by key (complete captures only)."""
    rows = read_table(folder, "captures")
    if rows is None:
        return {}
    out: dict[str, dict[str, object]] = {}
    for row in rows.to_dict("records"):
        key = row.get("key")
        if isinstance(key, str) and ((folder / TABLES_DIR / "captures" / f"{key}.parquet")
                                     .exists() or (folder / "csv" / "captures" /
                                                   f"{key}.csv").exists()):
            out[str(key)] = {str(k): plain(v) for k, v in row.items()}
    return out


def _unchanged(cap: CaptureFile, row: dict[str, object], verify: bool) -> bool:
    if row.get("status") != "ok":
        return False  # a capture that failed is tried again
    if row.get("path") != str(cap.path.resolve()) or row.get("size_bytes") != cap.size \
            or row.get("mtime_ns") != cap.mtime_ns:
        return False
    if verify:
        return bool(row.get("sha256")) and row.get("sha256") == content_hash(cap.path)
    return True
