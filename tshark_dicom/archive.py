"""Analyse captures into an output folder, one capture at a time to disk (the body of
``tshark-dicom analyze``): memory does not grow with the number of captures, each capture's
results appear whole or not at all, and ``resume`` skips the captures already done.

- Into a new or empty folder, or with ``resume``: parts go straight into OUT as each
  capture finishes (objects via OUT/.tshark-dicom-partial), so a run killed halfway keeps
  what it finished and ``resume`` goes on from there.
- Into a folder holding an earlier run, without ``resume``: the run is built in a staging
  folder inside OUT and swapped in only when complete; the earlier run stays whole until
  then and is never mixed with the new one.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .batch import CaptureFile, ProgressFn, Source, content_hash, run
from .errors import OptionsError, TsharkDicomError
from .report import Report, load
from .store import (
    FORMATS,
    PARTIAL,
    TABLES_DIR,
    has_results,
    part_keys,
    read_table,
    remove_parts,
    replace_results,
    rows_of,
    write_manifest,
    write_parts,
)
from .tables import frame


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
) -> ArchiveRun:
    """Analyse captures into ``out``: every table as a dataset with one part per capture,
    objects under ``out/objects/<capture key>/``, ``summary.txt`` and ``report.html``.

    ``resume``: captures whose complete results are in ``out`` and that are unchanged
    (path, size, modification time; with ``verify`` also a SHA-256 of their content) are
    not analysed again.
    """
    if format not in FORMATS:
        raise OptionsError(f"--format {format!r}: choose parquet, csv or both")
    if verify and not resume:
        raise OptionsError("--verify goes with --resume")
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise OptionsError(f"-o {folder}: exists and is not a folder")
    created = not folder.exists()
    in_place = resume or created or not has_results(folder)
    work = folder if in_place else folder / f".tshark-dicom-run-{os.getpid()}"
    partial = folder / PARTIAL
    try:
        shutil.rmtree(partial, ignore_errors=True)  # a killed run's leftovers
        (partial if in_place else work).mkdir(parents=True, exist_ok=not in_place)
    except OSError as exc:
        raise TsharkDicomError(f"{folder}: cannot create the output folder: "
                               f"{exc.strerror}") from None
    objects_dir = None if not objects else (partial / "objects" if in_place else
                                            work / "objects")
    earlier = _earlier(folder) if resume else {}
    counts = {"analysed": 0, "reused": 0}

    def on_result(cap: CaptureFile, tables: dict[str, pd.DataFrame]) -> None:
        counts["analysed"] += 1
        if verify:
            tables["captures"]["sha256"] = pd.array([content_hash(cap.path)], dtype="string")
        if in_place:
            for f in cap.files:
                remove_parts(folder, f.key)
            done = objects_dir / cap.key if objects_dir is not None else None
            if done is not None and done.exists():
                (folder / "objects").mkdir(exist_ok=True)
                os.replace(done, folder / "objects" / cap.key)
        if not cap.more:
            write_parts(work, cap.key, tables, format)
            return
        for f in cap.files:  # a set: each file's rows in its own parts (objects: the first's)
            write_parts(work, f.key, {t: rows_of(df, f.label) for t, df in tables.items()},
                        format)

    def skip(cap: CaptureFile) -> dict[str, pd.DataFrame] | None:
        rows = [earlier.get(f.key) for f in cap.files]
        if any(row is None or not _unchanged(f, row, verify)
               for f, row in zip(cap.files, rows, strict=True)):
            return None
        counts["reused"] += 1
        return {"captures": frame("captures", [r for r in rows if r is not None])}

    try:
        report = run(sources, objects_dir=objects_dir, ports=ports, jobs=jobs, tshark=tshark,
                     cross_check=cross_check, engine=engine, on_progress=on_progress,
                     on_result=on_result, skip=skip if resume else None, keep=False,
                     dask=dask, no_stitch=no_stitch, tls_keylogs=tls_keylogs,
                     tls_ports=tls_ports)
        keys = report.captures["key"].tolist()
        if in_place:
            for stale in part_keys(folder) - set(keys):
                remove_parts(folder, stale)
        write_manifest(work, keys, format)
        stored = load(work)
        stored.skipped = report.skipped
        summary = stored.summary()
        (work / "summary.txt").write_text(summary + "\n")
        (work / "report.html").write_text(stored.to_html(title or f"tshark-dicom: "
                                                         f"{folder.name}"))
        if not in_place:
            replace_results(work, folder)
        shutil.rmtree(partial, ignore_errors=True)
    except TsharkDicomError:  # nothing could be analysed: leave no folder that looks done
        if not in_place:
            shutil.rmtree(work, ignore_errors=True)
        elif created:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    except BaseException:  # interrupted: what finished in place stays, for --resume
        if not in_place:
            shutil.rmtree(work, ignore_errors=True)
        elif created and not part_keys(folder):
            shutil.rmtree(folder, ignore_errors=True)
        raise
    final = load(folder)
    final.skipped = report.skipped
    failed = int((report.captures["status"] == "failed").sum())
    return ArchiveRun(final, counts["analysed"], counts["reused"], failed)


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
            out[str(key)] = {str(k): _plain(v) for k, v in row.items()}
    return out


def _plain(value: object) -> object:
    """A value as tables.frame takes it: None for missing, nanoseconds for a time."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.value
    return value


def _unchanged(cap: CaptureFile, row: dict[str, object], verify: bool) -> bool:
    if row.get("status") != "ok":
        return False  # a capture that failed is tried again
    if row.get("path") != str(cap.path.resolve()) or row.get("size_bytes") != cap.size \
            or row.get("mtime_ns") != cap.mtime_ns:
        return False
    if verify:
        return bool(row.get("sha256")) and row.get("sha256") == content_hash(cap.path)
    return True
