"""Many captures: find them, analyse each (in a worker pool with ``jobs > 1``), and join
the per-capture tables into one Report."""

from __future__ import annotations

import multiprocessing
import os
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

from .analysis import ENGINES, analyze_capture
from .errors import CaptureError, OptionsError
from .report import Report
from .tables import build
from .tshark import Tshark, find_tshark

#: What a folder's captures look like (anything tshark reads; these are the usual names).
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz", ".cap.gz", ".ntar",
                    ".erf", ".snoop", ".gz", ".zst", ".lz4")

Source = str | os.PathLike[str]


def discover(sources: Source | Sequence[Source]) -> list[Path]:
    """Files as given, folders expanded recursively to the captures inside them."""
    items = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    if not items:
        raise OptionsError("no capture given")
    found: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*")
                            if p.is_file() and p.name.lower().endswith(CAPTURE_SUFFIXES))
            if not inside:
                raise CaptureError(f"{path}: folder holds no capture files")
            found.extend(inside)
        else:
            found.append(path)
    return found


def _subdir(index: int, path: Path, total: int) -> str:
    stem = re.sub(r"[^0-9A-Za-z._-]", "_", path.name).lstrip(".") or "capture"
    return stem if total == 1 else f"{index:04d}-{stem}"


def _one(path: Path, label: str, tshark: Tshark, ports: Sequence[int],
         objects_dir: Path | None, sub: str, cross_check: bool, engine: str,
         progress: Callable[[int], None] | None = None) -> dict[str, pd.DataFrame]:
    target = objects_dir / sub if objects_dir is not None else None
    result = analyze_capture(path, label=label, tshark=tshark, ports=ports, objects_dir=target,
                             cross_check=cross_check, engine=engine, progress=progress)
    tables = build([result])
    if objects_dir is not None:
        objs = tables["objects"]
        prefix = f"{objects_dir.name}/{sub}/"
        objs["path"] = objs["path"].map(lambda p: prefix + p if isinstance(p, str) else p,
                                        na_action="ignore").astype("string")
    return tables


def run(
    sources: Source | Sequence[Source],
    *,
    objects_dir: Source | None = None,
    ports: Sequence[int] = (),
    jobs: int = 1,
    tshark: str | None = None,
    cross_check: bool = False,
    engine: str = "auto",
    on_progress: Callable[[str, int, int, int], None] | None = None,
) -> Report:
    """Analyse every capture and join the results (the body of `tshark_dicom.analyze`).

    ``on_progress(label, captures_done, captures_total, packets)`` is called now and then.
    """
    for port in ports:
        if not 0 < port < 65536:
            raise OptionsError(f"--port {port}: not a TCP port (1-65535)")
    if jobs < 1:
        raise OptionsError(f"--jobs {jobs}: must be 1 or more")
    if engine not in ENGINES:
        raise OptionsError(f"--engine {engine!r}: choose {', '.join(ENGINES)}")
    tsk = find_tshark(tshark)
    paths = discover(sources)
    for path in paths:
        if not path.exists():
            raise CaptureError(f"{path}: no such file")
    odir = Path(objects_dir) if objects_dir is not None else None
    labels = [str(p) for p in paths]
    subs = [_subdir(i, p, len(paths)) for i, p in enumerate(paths)]
    parts: list[dict[str, pd.DataFrame]] = []
    if jobs == 1 or len(paths) == 1:
        for done, (path, label, sub) in enumerate(zip(paths, labels, subs, strict=True)):
            def tick(packets: int, label: str = label, done: int = done) -> None:
                if on_progress:
                    on_progress(label, done, len(paths), packets)

            tick(0)
            parts.append(_one(path, label, tsk, ports, odir, sub, cross_check, engine, tick))
    else:
        tsk.version  # noqa: B018 - probe once here, not in every worker
        # spawn, not fork: this process runs threads (tshark's stderr readers, the object
        # writer), and a fork taken while one holds a lock deadlocks the child.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = [pool.submit(_one, p, lab, tsk, ports, odir, s, cross_check, engine)
                       for p, lab, s in zip(paths, labels, subs, strict=True)]
            for done, (label, fut) in enumerate(zip(labels, futures, strict=True)):
                parts.append(fut.result())
                if on_progress:
                    on_progress(label, done + 1, len(paths), 0)
    return Report.concat(parts, labels)
