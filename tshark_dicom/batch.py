"""Many captures: analyse each (in a worker pool with ``jobs > 1``, or on a Dask cluster),
keep going past the ones that cannot be read, and hand each capture's tables on as soon as
it is done, so that a folder of thousands costs the memory of one. Which files are
captures, and the key each gets, is discovery.py's.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from . import memory
from .discovery import CaptureFile, Discovery, Source, discover, stitch
from .errors import OptionsError, TsharkDicomError
from .schemas import TABLES, frame, plain_rows
from .store import PartWriter, Without, arrow_without_pandas
from .tls import TlsOptions, check_tls_options
from .tshark import ENGINES, Tshark, find_tshark
from .workers import ANALYSIS, main_left_alone, single_threaded, take_early
from .workers import context as worker_context
from .workers import pool as worker_pool
from .workers import stop as stop_pool

if TYPE_CHECKING:  # pandas, the report and redaction are imported where they are used: a
    # worker that writes parts (Work.parts_dir) loads none of them (store.py); the analysis
    # (workers.ANALYSIS) is imported by whichever process analyses
    import pandas as pd

    from .redact import Redaction
    from .report import Report

#: on_progress(label, captures_done, captures_total, packets, bytes_done, bytes_total)
ProgressFn = Callable[[str, int, int, int, int, int], None]


@dataclass(frozen=True)
class Work:
    """What every capture of a run is analysed with (sent to worker processes and Dask)."""

    tshark: Tshark
    ports: tuple[int, ...] = ()
    objects_dir: Path | None = None
    cross_check: bool = False
    engine: str = "auto"
    #: write the tables here (``<parts_dir>/<key>/``, store.PartWriter) in ``format``
    #: instead of returning them
    parts_dir: Path | None = None
    format: str = "parquet"
    #: identifying values replaced in the tables written to ``parts_dir``
    redact: Redaction | None = None
    #: key logs and DICOM TLS ports (tls.py)
    tls: TlsOptions | None = None
    #: pydicom checks each value it reads, to warn of odd ones (`_reading`)
    validate: bool = True
    #: with ``parts_dir``: the parts of at most this many rows are also handed back
    #: (`Analysed.handed`), for the run's report; 0: none
    hand_rows: int = 0
    #: large data sets not written as files may be hashed by a helper process
    #: (sidehash.py): the run leaves a core free for it
    side_hash: bool = False


def side_hash_allowed(jobs: int, captures: int, dask: str | None,
                      cores: int | None = None) -> bool:
    """Whether a run's workers leave a core free for a hashing helper (sidehash.py): fewer
    workers than cores. A Dask node's cores are its own scheduler's."""
    cores = cores if cores is not None else os.cpu_count() or 1
    return dask is None and min(jobs, captures) < cores


def analyze_one(cap: CaptureFile, work: Work,
                progress: Callable[[int], None] | None = None) -> dict[str, pd.DataFrame]:
    """One capture's tables (the unit a cluster node runs): objects go to
    ``objects_dir/<key>/``, their paths in the table relative to objects_dir's parent.
    With ``work.parts_dir`` the tables are written there as they are made (memory stays
    flat however long the capture) and only the ``captures`` table is returned."""
    tables, rows, _ = _analyze(cap, work, progress)
    return {**tables, "captures": frame("captures", rows)}


class Analysed(NamedTuple):
    """What a worker process hands back of a capture."""

    #: its tables but ``captures`` (none with ``Work.parts_dir``: they are written)
    tables: dict[str, pd.DataFrame]
    #: its ``captures`` rows (plain values, so that a worker writing parts needs no pandas)
    rows: list[dict[str, Any]]
    #: with ``Work.hand_rows``: the parts written of at most that many rows, by capture
    #: key and table (`store.PartWriter.handed`)
    handed: Mapping[str, Mapping[str, bytes]] = {}


def _analyze(cap: CaptureFile, work: Work, progress: Callable[[int], None] | None
             ) -> Analysed:
    """`analyze_one`, its ``captures`` table as rows."""
    work.tshark.start_suite_probe()  # read for the captures rows, at the end
    try:
        with _reading(work.validate):
            return _analyze_read(cap, work, progress)
    finally:
        work.tshark.version_text  # noqa: B018 - the probe ended (read), whatever happened


@contextmanager
def _reading(validate: bool) -> Iterator[None]:
    """Inside, unless ``validate``, pydicom reads without checking each value only to warn
    (what the traffic has wrong is in the findings). Its checks were 0.02-0.03 s of the
    22 MB benchmark capture's 0.15 s of analysis (the A-ASSOCIATE items' UIDs, each matched
    against a pattern). Set around each capture, where it is analysed (a worker, a Dask
    node, this process), and set back after, for a caller's own reads."""
    if validate:
        yield
        return
    from pydicom import config

    before = config.settings.reading_validation_mode
    config.settings.reading_validation_mode = config.IGNORE
    try:
        yield
    finally:
        config.settings.reading_validation_mode = before


def _analyze_read(cap: CaptureFile, work: Work, progress: Callable[[int], None] | None
                  ) -> Analysed:
    from .analysis import analyze_capture
    from .sidehash import session as side_hashing
    from .spool import FrameSink, Spool

    odir = work.objects_dir
    target = odir / cap.key if odir is not None else None
    started = time.monotonic()
    spool = Spool(cap.label, target, f"{odir.name}/{cap.key}/" if odir is not None else "",
                  folder=work.parts_dir)
    with side_hashing(work.side_hash):
        result = analyze_capture(cap.path, label=cap.label, tshark=work.tshark,
                                 ports=work.ports, more=[(m.path, m.label) for m in cap.more],
                                 objects_dir=target, cross_check=work.cross_check,
                                 engine=work.engine, progress=progress,
                                 on_association=spool, tls=work.tls)
    tables: dict[str, pd.DataFrame] = {}
    handed: dict[str, dict[str, bytes]] = {}
    memory.release()  # what the analysis freed, before the tables are written
    if work.parts_dir is not None:
        redact = None
        if work.redact is not None:
            from .redact import redactor

            redact = redactor(work.redact)
        writer = PartWriter(work.parts_dir / cap.key, {f.label: f.key for f in cap.files},
                            work.format, redact, work.hand_rows)
        try:
            spool.drain(result, writer)
            writer.close()
        except BaseException:
            writer.abandon()
            raise
        handed = writer.handed()
        memory.release()
    else:
        sink = FrameSink()
        spool.drain(result, sink)
        tables = sink.frames()
    elapsed = time.monotonic() - started
    version = work.tshark.version_text or None
    if cap.more:  # a set: a row per file, its own packets and the associations begun in it
        rows = [capture_row(
            f, status="ok", error=None, elapsed_s=elapsed if f is cap else 0.0,
            packets=st.records, first_ns=st.first_ns, last_ns=st.last_ns,
            link_type=result.link_type, engine=result.engine, tshark_version=version,
            association_count=result.label_counts.get(f.label, 0))
            for f, st in zip(cap.files, result.files, strict=True)]
    else:
        rows = [capture_row(
            cap, status="ok", error=None, elapsed_s=elapsed, packets=result.records,
            first_ns=result.first_ns, last_ns=result.last_ns, link_type=result.link_type,
            engine=result.engine, tshark_version=version,
            association_count=len(result.streams))]
    return Analysed(tables, rows, handed)


def capture_row(cap: CaptureFile, *, status: str, error: str | None, elapsed_s: float,
                packets: int | None = None, first_ns: int | None = None,
                last_ns: int | None = None, link_type: str | None = None,
                engine: str | None = None, tshark_version: str | None = None,
                association_count: int | None = None, sha256: str | None = None
                ) -> dict[str, Any]:
    return {"capture": cap.label, "path": str(cap.path.resolve()), "key": cap.key,
            "size_bytes": cap.size, "mtime_ns": cap.mtime_ns, "sha256": sha256,
            "packets": packets, "first_packet_at": first_ns, "last_packet_at": last_ns,
            "link_type": link_type, "engine": engine, "tshark_version": tshark_version,
            "status": status, "error": error, "elapsed_s": elapsed_s,
            "association_count": association_count}


#: on_result(capture, tables, rows): a capture is done; ``tables`` are its tables but
#: ``captures`` (none if it failed, or if they were written as parts: Work.parts_dir),
#: ``rows`` its ``captures`` rows as `capture_row` makes them
ResultFn = Callable[[CaptureFile, dict[str, "pd.DataFrame"], list[dict[str, Any]]], None]
#: on_handed(capture, handed): what its worker handed back of its parts (`Analysed.handed`)
HandedFn = Callable[[CaptureFile, Mapping[str, Mapping[str, bytes]]], None]
#: The parts a worker hands back (`Work.hand_rows`) when there is an ``on_handed``:
#: a report of an archive of small captures read most of its time from hundreds of small
#: parts (72 fixture captures: 0.34 of its 0.63 s)
HAND_ROWS = 2_000


def check_options(ports: Sequence[int], jobs: int, engine: str) -> None:
    for port in ports:
        if not 0 < port < 65536:
            raise OptionsError(f"--port {port}: not a TCP port (1-65535)")
    if jobs < 1:
        raise OptionsError(f"--jobs {jobs}: must be 1 or more")
    if engine not in ENGINES:
        raise OptionsError(f"--engine {engine!r}: choose {', '.join(ENGINES)}")


def run(
    sources: Source | Sequence[Source],
    *,
    objects_dir: Source | None = None,
    ports: Sequence[int] = (),
    jobs: int = 1,
    tshark: str | None = None,
    cross_check: bool = False,
    engine: str = "auto",
    on_progress: ProgressFn | None = None,
    on_result: ResultFn | None = None,
    skip: Callable[[CaptureFile], list[dict[str, Any]] | None] | None = None,
    keep: bool = True,
    dask: str | None = None,
    no_stitch: bool = False,
    parts_dir: Path | None = None,
    format: str = "parquet",
    redact: Redaction | None = None,
    tls_keylogs: Sequence[Source] = (),
    tls_ports: Sequence[int] = (),
    warm: Callable[[Callable[[], bool]], object] | None = None,
    validate: bool = True,
    on_handed: HandedFn | None = None,
) -> Report:
    """Analyse every capture (the body of `tshark_dicom.analyze` and of the CLI).

    A capture that cannot be read becomes a ``failed`` row of the captures table and the
    run goes on; if none could be analysed, the first one's error is raised. ``on_result``
    hears of each capture as it is done; with ``keep=False`` the returned Report holds
    only the captures table (the tables went to ``on_result``). ``skip(capture)`` may return
    the captures rows of a capture already done (``--resume``): it is then not analysed
    again.
    ``dask``: the address of a Dask distributed scheduler that runs the captures.
    ``on_result`` is not called for the captures ``skip`` returned. The files of a
    ring-buffer or split set are one capture (`stitch`) unless ``no_stitch`` or the ek
    engine was asked for. ``parts_dir``: each capture's tables are written there as
    they are made, in ``format`` (store.PartWriter), not returned (archive.py).
    ``redact``: every capture's tables have their identifying values replaced
    (redact.py) before anything else sees them (in the worker, for ``parts_dir``); no
    objects are written. ``tls_keylogs``: TLS key logs (NSS format) that decrypt DICOM
    over TLS; ``tls_ports``: DICOM TLS ports besides 2762 (tls.py). ``warm``: called
    once worker processes have the captures, while they analyse them (with ``parts_dir``
    they do, even with ``jobs=1``): what this process should import meanwhile; it is given
    a callable that says whether none of them has finished yet.
    ``validate=False``: pydicom reads each capture's values without checking them (it
    only warns of odd ones; the command line, which shows no warnings, asks for it).
    ``on_handed``: hears what the workers hand back of the Parquet parts they wrote
    (``parts_dir``; `HAND_ROWS`).
    """
    check_options(ports, jobs, engine)
    if redact is not None and objects_dir is not None:
        raise OptionsError("objects are not written when patient data is redacted: give "
                           "no objects folder with redact")
    tls = check_tls_options(tls_keylogs, tls_ports)
    tsk = find_tshark(tshark)
    found = discover(sources)
    if not no_stitch and engine != "ek":
        found.captures[:] = stitch(found.captures)
    odir = Path(objects_dir) if objects_dir is not None else None
    hand = HAND_ROWS if on_handed is not None and format != "csv" else 0
    work = Work(tsk, tuple(ports), odir, cross_check, engine, parts_dir, format, redact, tls,
                validate, hand, side_hash_allowed(jobs, len(found.captures), dask))
    total_bytes = sum(c.total_size for c in found.captures)
    parts: list[dict[str, pd.DataFrame]] = []
    rank = {c.key: i for i, c in enumerate(found.captures)}
    # the captures rows, in the order their captures finish, ranked as the captures were
    # found; kept as dicts and made a frame GATHER_CAPTURES rows at a time (a frame of each
    # capture's row was 2.3 ms of this process's time a capture, while the workers run)
    gathered: list[pd.DataFrame] = []
    pending: list[dict[str, Any]] = []
    ranks: list[int] = []
    errors: list[TsharkDicomError] = []
    done = done_bytes = 0

    def finished(cap: CaptureFile, tables: dict[str, pd.DataFrame], rows: list[dict[str, Any]],
                 handed: Mapping[str, Mapping[str, bytes]], fresh: bool = True) -> None:
        nonlocal done, done_bytes
        if redact is not None and fresh:  # tables made in memory (parts_dir: PartWriter)
            from .redact import redact_tables

            tables = redact_tables({**tables, "captures": frame("captures", rows)}, redact)
            rows = plain_rows(tables.pop("captures"))
        pending.extend(rows)
        ranks.extend([rank[cap.key]] * len(rows))
        if len(pending) >= GATHER_CAPTURES:
            gathered.append(frame("captures", pending).assign(_rank=ranks))
            pending.clear()
            ranks.clear()
        if on_result is not None and fresh:
            on_result(cap, tables, rows)
        if on_handed is not None and handed:
            on_handed(cap, handed)
        if keep:
            parts.append({**tables, "captures": frame("captures", rows)})
        done += 1
        done_bytes += cap.total_size
        if on_progress:
            on_progress(cap.label, done, len(found.captures), 0, done_bytes, total_bytes)

    todo: list[CaptureFile] = []
    for cap in found.captures:
        earlier = skip(cap) if skip is not None else None
        if earlier is not None:
            finished(cap, {}, earlier, {}, fresh=False)
        else:
            todo.append(cap)
    for cap, outcome in _analyse_all(todo, work, jobs, dask, on_progress, found,
                                     lambda: (done, done_bytes, total_bytes), warm):
        if isinstance(outcome, TsharkDicomError):
            errors.append(outcome)
            outcome = Analysed({}, [capture_row(f, status="failed", error=str(outcome),
                                                elapsed_s=0.0) for f in cap.files])
        finished(cap, *outcome)
    import pandas as pd

    from .report import Report

    if pending:
        gathered.append(frame("captures", pending).assign(_rank=ranks))
    captures = pd.concat(gathered, ignore_index=True).sort_values(
        "_rank", kind="stable").drop(columns="_rank").reset_index(drop=True) if gathered \
        else frame("captures", [])
    if errors and len(errors) == len(found.captures):
        raise errors[0]
    report = Report.concat(parts) if keep else Report()
    report.captures = captures
    report.skipped = [(str(p), why) for p, why in found.skipped]
    return report


def _analyse_all(todo: list[CaptureFile], work: Work, jobs: int,
                 dask: str | None, on_progress: ProgressFn | None, found: Discovery,
                 state: Callable[[], tuple[int, int, int]],
                 warm: Callable[[Callable[[], bool]], object] | None = None
                 ) -> Iterator[tuple[CaptureFile, Analysed | TsharkDicomError]]:
    """Each capture's tables and captures rows (`Analysed`), or the error that stopped it,
    in the order they finish.

    Captures whose tables are written as parts (``work.parts_dir``) are analysed in worker
    processes, one with ``jobs=1``: a worker forked before this process imports pandas and
    the report's modules (0.3-0.5 s) starts on the first capture at once, and ``warm``
    imports them here meanwhile (on two cores, store_200mb tables only: 1.50 -> 1.31 s)."""
    if dask is not None:
        yield from _on_dask(dask, todo, work)
        return
    if not todo:
        return
    # the workers the command line started as it began (`workers.early_worker`), if any
    early = take_early(min(jobs, len(todo))) if work.parts_dir is not None else None
    if early is None and (jobs == 1 or len(todo) <= 1) and (
            work.parts_dir is None or not single_threaded()):
        # in this process: tables wanted in memory, or no worker can be forked (a process
        # running threads: one from a fork server imports the analysis again)
        # the suite's version (captures table) probed now, while this process is small: a
        # child started later is forked from however large it has grown
        work.tshark.version_text  # noqa: B018
        for cap in todo:
            def tick(packets: int, cap: CaptureFile = cap) -> None:
                if on_progress:
                    done, done_bytes, total_bytes = state()
                    on_progress(cap.label, done, len(found.captures), packets, done_bytes,
                                total_bytes)

            tick(0)
            try:
                yield cap, _analyze(cap, work, tick)
            except TsharkDicomError as exc:
                yield cap, exc
        return
    if work.engine == "ek" or work.cross_check:  # they need tshark's version: probe once
        work.tshark.version  # noqa: B018 - here, not in every worker
    # forks of this process when it runs no other thread, else of a fork server that
    # imported the analysis once (workers.py): decided here, just before they start
    jobs = min(jobs, len(todo))
    if jobs > 1 and early is None:
        # the analysis imported and the suite's version probed once here, for every fork;
        # a single worker does both itself, beside this process's imports of pandas and the
        # report (`warm`) and beside its first capture's analysis (`_analyze`)
        load_analysis()
        work.tshark.version_text  # noqa: B018
    running = early if early is not None else worker_pool(worker_context(), jobs)
    mask = os.umask(0o077)  # read it (never looser meanwhile): the server's may be older
    os.umask(mask)
    with running.executor as pool:
        # the largest first, so that no long capture starts last while the other
        # workers have nothing left to do (one worker takes them in the order given)
        order = todo if jobs == 1 else sorted(todo, key=lambda c: -c.total_size)
        with main_left_alone():  # the workers start as work is submitted
            futures: dict[Future[Analysed], CaptureFile] = {
                pool.submit(_analyze_in_worker, cap, work, mask): cap for cap in order}
        try:
            yield from _results(futures, warm, on_progress, found, state, running.slots)
        except BaseException:  # interrupted, or the caller failed: stop now, not after
            stop_pool(pool)    # every capture queued (the workers' parts are in the run's
            raise              # work folder, which its caller removes: archive.py)


def _results(futures: dict[Future[Analysed], CaptureFile],
             warm: Callable[[Callable[[], bool]], object] | None,
             on_progress: ProgressFn | None, found: Discovery,
             state: Callable[[], tuple[int, int, int]], slots: Any
             ) -> Iterator[tuple[CaptureFile, Analysed | TsharkDicomError]]:
    """The workers' captures as they finish (`_analyse_all`)."""
    if warm is not None:
        warm(lambda: not any(f.done() for f in futures))
    pending: set[Future[Analysed]] = set(futures)
    while pending:
        finished, pending = wait(pending, timeout=PROGRESS_S, return_when=FIRST_COMPLETED)
        if on_progress:
            running = [futures[f].label for f in pending if f.running()]
            label = running[0] + (f" and {len(running) - 1} more" if len(running) > 1
                                  else "") if running else ""
            done, done_bytes, total_bytes = state()
            on_progress(label, done, len(found.captures), sum(slots), done_bytes,
                        total_bytes)
        for fut in finished:
            cap = futures.pop(fut)  # its result (24 KB or more) is not kept to the end
            problem = fut.exception()
            if isinstance(problem, TsharkDicomError):
                yield cap, problem
            elif problem is not None:
                raise problem
            else:
                yield cap, fut.result()
    if on_progress:  # the packets of them all
        done, done_bytes, total_bytes = state()
        on_progress("", done, len(found.captures), sum(slots), done_bytes, total_bytes)


#: `run` gathers the captures rows of this many captures into one frame as they finish: a
#: one-row frame kept per capture took 24 KB in the run's process (2,000 captures: 49 MB;
#: 20,000: 490 MB); gathered, 2,000 rows take 0.2 MB.
GATHER_CAPTURES = 256
#: How often the progress display hears from the worker processes (s).
PROGRESS_S = 0.5
#: In a worker process: the shared packet counters and this worker's slot in them.
_WORKER: dict[str, Any] = {}


#: Packages that pydicom imports at its own import only to decode pixel data, which the
#: analysis never does: Pillow (pydicom.pixels asks for it, and it is there wherever
#: matplotlib is). A worker has none of them, for its whole life (`worker_ready`): its
#: imports of the analysis take 0.035 s less of their 0.22 s, in front of its first
#: capture, and pydicom takes them as not installed, then and later. Never hidden in
#: this process, where a caller's own code may decode pixels with the same pydicom.
WORKER_HIDES = ("PIL",)


def load_analysis() -> None:
    """Import the analysis (workers.ANALYSIS; memory.frozen_imports: out of the
    collector's way)."""
    with memory.frozen_imports():
        for name in ANALYSIS:
            importlib.import_module(name)


def worker_ready(slots: Any, claimed: Any) -> None:
    """The rest of a worker's start (`workers.worker_init`)."""
    arrow_without_pandas()  # forked before the run's process imported pandas: stay so
    # the analysis, unless forked with it (`_analyse_all`); then what the worker started
    # with lives as long as it: out of the collector's way, so that its passes neither walk
    # it nor copy its pages (50 captures --jobs 2: 0.1 s less CPU)
    sys.meta_path.insert(0, Without(*WORKER_HIDES))
    load_analysis()
    gc.freeze()
    with claimed.get_lock():
        _WORKER["slot"] = claimed.value
        claimed.value += 1
    _WORKER["slots"] = slots


def _analyze_in_worker(cap: CaptureFile, work: Work, umask: int) -> Analysed:
    """analyze_one in a worker process, sharing with the parent how many packets this
    worker has read in all its captures so far (--jobs: real packet counts in progress).
    ``umask``: the run's (store.output_mode), which a worker started before it was set
    (`workers.early_worker`), or forked from a fork server, does not have."""
    os.umask(umask)
    slots, slot = _WORKER["slots"], _WORKER["slot"]
    base = _WORKER.get("base", 0)

    def tick(packets: int) -> None:
        slots[slot] = base + packets

    try:
        analysed = _analyze(cap, work, tick)
    except TsharkDicomError as exc:
        slots[slot] = base
        # sent back by pickle without its chain: the run reports the error's type and text
        # (which say what its causes were), and a cause that does not pickle would kill the
        # worker (BrokenProcessPool), as errors.UnsupportedLinkType did while it was a
        # compiled class, once distributed was imported (tblib's pickling)
        exc.__cause__ = exc.__context__ = None
        exc.__suppress_context__ = True
        raise
    except BaseException:
        slots[slot] = base
        raise
    _WORKER["base"] = base + sum(row["packets"] or 0 for row in analysed[1])
    slots[slot] = _WORKER["base"]
    return analysed


#: How long --dask waits for the scheduler to answer, and for a first worker to join it.
DASK_CONNECT_S = 10.0
DASK_WORKERS_S = 60.0


def _on_dask(address: str, todo: list[CaptureFile], work: Work
             ) -> Iterator[tuple[CaptureFile, Analysed | TsharkDicomError]]:
    """The same per-capture work on an existing Dask distributed cluster. The workers need
    tshark and this package, and must see the captures and the output folder at the same
    paths (a shared file system): README, "Archives on a cluster (Dask)".

    What is wrong with the address or the cluster is an OptionsError naming ``--dask``; a
    capture a worker cannot analyse is a failed capture, as it is on this machine."""
    try:
        from distributed import CancelledError, Client, KilledWorker, as_completed
    except ImportError:
        raise OptionsError("--dask needs the 'distributed' package: pip install "
                           "'tshark-dicom[dask]'") from None
    tsk = work.tshark
    tsk.version  # noqa: B018 - probe once here, not on every worker
    dask_completed: Callable[..., Iterator[Any]] = as_completed
    client = _dask_client(address, Client)
    with client:
        _check_workers(client, address, tsk)
        # absolute paths: a worker's working directory is not ours
        absolute = replace(
            work, objects_dir=work.objects_dir.absolute() if work.objects_dir else None,
            parts_dir=work.parts_dir.absolute() if work.parts_dir else None)
        futures = {client.submit(analyze_one, _absolute(cap), absolute, pure=False): cap
                   for cap in todo}
        for fut in dask_completed(list(futures), loop=client.loop):
            cap = futures[fut]
            if fut.status == "finished":
                try:
                    tables = fut.result()
                    yield cap, Analysed(tables, plain_rows(tables.pop("captures")))
                    continue
                except CancelledError:
                    pass
            elif fut.status == "error":
                problem = fut.exception()
                if isinstance(problem, TsharkDicomError):
                    yield cap, _as_given(problem, cap)
                    continue
                if isinstance(problem, KilledWorker):
                    yield cap, TsharkDicomError(
                        f"{cap.label}: every Dask worker that analysed it died (out of "
                        "memory?); see the workers' logs")
                    continue
                if isinstance(problem, ImportError):
                    raise OptionsError(f"--dask {address}: a worker cannot run tshark-dicom "
                                       f"({type(problem).__name__}: {problem})")
                raise problem
            yield cap, TsharkDicomError(
                f"{cap.label}: not analysed: the Dask cluster at {address} lost it "
                f"({fut.status}); rerun with --resume")


def _as_given(problem: TsharkDicomError, cap: CaptureFile) -> TsharkDicomError:
    """A worker's error about a capture, naming it as it was given here (the worker had its
    absolute path), so that a failed row reads the same as without --dask."""
    sent, given = str(cap.path.absolute()), str(cap.path)
    text = str(problem)
    if sent == given or sent not in text:
        return problem
    try:
        return type(problem)(text.replace(sent, given))
    except Exception:  # a subclass that wants other arguments: keep it as it came
        return problem


def _dask_client(address: str, client_class: Callable[..., Any]) -> Any:
    """A Client of the scheduler at ``address``, or an OptionsError saying why not.

    The address is tried first: one TCP connection (nothing listening is said at once, not
    after the Client's retries), then the scheduler's ``identity`` over Dask's own protocol
    (a server that is not a Dask scheduler, or a TLS address without a TLS configuration,
    is said plainly, and no half-made Client is left to time out at exit)."""
    import asyncio
    import socket
    from concurrent.futures import ThreadPoolExecutor

    from distributed.comm.addressing import parse_address, parse_host_port

    where = f"--dask {address}"
    try:
        scheme, location = parse_address(address)
        if scheme == "tcp":
            host, port = parse_host_port(location)
            if not 0 < port < 65536:
                raise ValueError(f"port {port} is not a TCP port")
            socket.create_connection((host, port), timeout=DASK_CONNECT_S).close()
    except ConnectionRefusedError:
        raise OptionsError(f"{where}: nothing listens there (connection refused); start a "
                           "scheduler with: dask scheduler") from None
    except TimeoutError:
        raise OptionsError(f"{where}: no answer within {DASK_CONNECT_S:.0f} s") from None
    except OSError as exc:  # name not resolved, network unreachable...
        raise OptionsError(f"{where}: cannot connect ({exc.strerror or exc})") from None
    except (ValueError, OverflowError) as exc:
        raise OptionsError(f"{where}: not a scheduler address such as tcp://HOST:8786 "
                           f"({exc})") from None
    with ThreadPoolExecutor(1) as thread:  # its own event loop, even under a running one
        probe = thread.submit(asyncio.run, _dask_identity(address))
        try:
            kind = probe.result()
        except Exception as exc:
            text = " ".join(str(exc).split()) or type(exc).__name__
            raise OptionsError(f"{where}: no Dask scheduler answers there ({text})") from None
    if kind != "Scheduler":
        raise OptionsError(f"{where}: a Dask {kind or 'server'} answers there, not the "
                           "scheduler (dask scheduler prints its address)")
    try:
        return client_class(address, timeout=f"{DASK_CONNECT_S:.0f}s", set_as_default=False)
    except Exception as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise OptionsError(f"{where}: no Dask scheduler answers there ({text})") from None


async def _dask_identity(address: str) -> str | None:
    """What the Dask server at ``address`` says it is (``Scheduler``, ``Worker``...)."""
    import asyncio

    from distributed.core import rpc
    from distributed.security import Security

    security: Callable[[], Any] = Security  # TLS settings from the Dask configuration
    connect: Callable[..., Any] = rpc
    args = security().get_connection_args("client")

    async def ask() -> Any:
        async with connect(address, timeout=DASK_CONNECT_S, connection_args=args) as server:
            return await server.identity()

    info = await asyncio.wait_for(ask(), DASK_CONNECT_S + 5)
    kind = info.get("type") if isinstance(info, dict) else None
    return str(kind) if kind is not None else None


def _worker_facts(tshark_path: str) -> tuple[str, bool]:
    """Run on each worker: this package's version there, and whether it has the tshark."""
    from . import __version__

    return __version__, os.access(tshark_path, os.X_OK)


def _check_workers(client: Any, address: str, tsk: Tshark) -> None:
    """The cluster has a worker, and every worker runs this version of tshark-dicom and has
    tshark at the path this machine uses (the Tshark travels to the workers with its path)."""
    from . import __version__

    try:
        client.wait_for_workers(1, timeout=DASK_WORKERS_S)
    except TimeoutError:
        raise OptionsError(f"--dask {address}: no worker joined the scheduler within "
                           f"{DASK_WORKERS_S:.0f} s; start one with: dask worker "
                           f"{address}") from None
    facts = client.run(_worker_facts, tsk.path, on_error="return")
    for worker, fact in sorted(facts.items()):
        if isinstance(fact, BaseException):
            raise OptionsError(f"--dask {address}: worker {worker} cannot run tshark-dicom "
                               f"({type(fact).__name__}: {fact}); install this version "
                               "on every worker and restart them")
        version, has_tshark = fact
        if version != __version__:
            raise OptionsError(f"--dask {address}: worker {worker} runs tshark-dicom "
                               f"{version}, this machine {__version__}: install the same "
                               "version everywhere")
        if not has_tshark:
            raise OptionsError(f"--dask {address}: worker {worker} has no tshark at "
                               f"{tsk.path} (give --tshark a path that every worker has)")


__all__ = ["TABLES", "analyze_one", "run"]


def _absolute(cap: CaptureFile) -> CaptureFile:
    """The capture (and its set's files) with absolute paths, for a worker elsewhere."""
    return replace(cap, path=cap.path.absolute(),
                   more=tuple(replace(m, path=m.path.absolute()) for m in cap.more))
