"""The command line: each command is options -> one library call -> output.

Library errors become one ``Error: ...`` line on stderr: exit 1 when an input could not be
analysed, 2 for usage errors. Results are built in a staging folder inside OUT and moved
into place only when complete, replacing the previous run's results.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from . import __version__
from .cliparams import Command, Group
from .errors import OptionsError, OutputError, TsharkDicomError, output_error
from .safe import visible

if TYPE_CHECKING:  # the library is imported by the commands, so --version and -h are instant
    import pandas as pd

    from .batch import ProgressFn
    from .redact import Redaction
    from .report import Report

KEY_ENV = "TSHARK_DICOM_REDACT_KEY"  # redact.KEY_ENV (a test checks they agree)



app = typer.Typer(
    cls=Group, add_completion=False, no_args_is_help=True, rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="See what happened in DICOM network traffic: captures -> tables, objects, findings.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tshark-dicom {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """tshark-dicom: DICOM network traffic analysis on top of tshark."""


PortOpt = Annotated[list[int] | None, typer.Option(
    "--port", help="Also decode streams on this TCP port that start mid-association "
    "(repeatable).", metavar="N", show_default=False)]
TsharkOpt = Annotated[str | None, typer.Option(
    "--tshark", help="The tshark executable (default: $TSHARK, then PATH).",
    metavar="PATH", show_default=False)]
FormatOpt = Annotated[str, typer.Option(
    "--format", help="Table format: parquet, csv or both.", metavar="parquet|csv|both")]
TlsKeylogOpt = Annotated[list[Path] | None, typer.Option(
    "--tls-keylog", help="A TLS key log (NSS format, as SSLKEYLOGFILE writes it) that "
    "decrypts DICOM over TLS (repeatable); secrets embedded in a pcapng need none.",
    metavar="FILE")]
TlsPortOpt = Annotated[list[int] | None, typer.Option(
    "--tls-port", help="A DICOM TLS port besides 2762: its TLS connections are shown "
    "even without keys (repeatable).", metavar="N")]
RedactOpt = Annotated[bool, typer.Option(
    "--redact", help="Replace patient-identifying values (names, IDs, birth dates, accession "
    "numbers and the other attributes of PS3.15 Annex E; user names; error comments) by "
    "keyed hashes in every table, the report and the summary; no objects are written.")]
RedactUidsOpt = Annotated[bool, typer.Option(
    "--redact-uids", help="Also replace SOP Instance, Study, Series... UIDs (implies "
    "--redact).")]
RedactNetworkOpt = Annotated[bool, typer.Option(
    "--redact-network", help="Also replace AE titles and IP addresses (implies --redact).")]
RedactKeyOpt = Annotated[str | None, typer.Option(
    "--redact-key", envvar=KEY_ENV, show_envvar=True, show_default=False, metavar="KEY",
    help="Key of the hashes: the same key gives the same tokens in every run (default: a "
    "random key per run). Prefer the environment variable: a command line is visible to "
    "other users.")]


def _redaction(redact: bool, uids: bool, network: bool, key: str | None) -> Redaction | None:
    if not (redact or uids or network):
        return None
    from .redact import Redaction

    return Redaction.make(key, uids=uids, network=network)


@app.command(cls=Command)
def analyze(
    captures: Annotated[list[Path], typer.Argument(
        help="Capture files (pcap, pcapng, gzip: anything tshark reads) or folders.",
        show_default=False, metavar="CAPTURE_OR_DIR...")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output folder.", show_default=False,
                                      metavar="OUT")],
    format: FormatOpt = "parquet",
    port: PortOpt = None,
    no_objects: Annotated[bool, typer.Option(
        "--no-objects", help="Do not write reconstructed Part-10 files.")] = False,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Captures analysed in parallel.",
                                      metavar="N")] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success.")] = False,
    tshark: TsharkOpt = None,
    cross_check: Annotated[bool, typer.Option(
        "--cross-check", help="Also run Wireshark's DICOM dissector and report every "
        "disagreement as a finding.")] = False,
    engine: Annotated[str, typer.Option(
        "--engine", help="auto (default): raw where the link type allows, else ek; raw: tshark "
        "converts, we read IP/TCP; ek: tshark dissects and selects DICOM streams.",
        metavar="auto|raw|ek")] = "auto",
    resume: Annotated[bool, typer.Option(
        "--resume", help="Skip captures whose complete results are in OUT and that are "
        "unchanged (path, size, modification time); go on after an interrupted run.")] = False,
    verify: Annotated[bool, typer.Option(
        "--verify", help="With --resume: also compare a SHA-256 of each capture's content "
        "(stored by a run with --resume --verify).")] = False,
    dask: Annotated[str | None, typer.Option(
        "--dask", help="Run the captures on this Dask distributed scheduler "
        "(tcp://HOST:PORT); workers need tshark, this package and the same paths.",
        metavar="ADDRESS")] = None,
    no_stitch: Annotated[bool, typer.Option(
        "--no-stitch", help="Analyse the files of a ring-buffer or split set (dumpcap "
        "NAME_NNNNN_YYYYMMDDhhmmss, tcpdump -C rotation) each on its own, not as one "
        "capture.")] = False,
    redact: RedactOpt = False,
    redact_uids: RedactUidsOpt = False,
    redact_network: RedactNetworkOpt = False,
    redact_key: RedactKeyOpt = None,
    shared_output: Annotated[bool, typer.Option(
        "--shared-output", help="Create files and folders as the umask allows (default: "
        "readable by their owner only, 0600 files in 0700 folders).")] = False,
    tls_keylog: TlsKeylogOpt = None,
    tls_port: TlsPortOpt = None,
    debug: Annotated[bool, typer.Option("--debug", help="Log details to stderr.")] = False,
) -> None:
    """Analyse captures into OUT: tables (associations, presentation_contexts, messages,
    objects, findings, operations, queries...), report.html, Part-10 objects under
    OUT/objects, and a summary."""
    from .memory import frozen_imports  # not at the top: --version stays instant
    from .workers import early_worker

    # the workers: forked now, they import the analysis while this process imports the
    # library, and the run takes them (ended here if the command ends before); no more
    # than the captures named (a folder may hold any number)
    with early_worker(0 if dask is not None else min(jobs, len(captures))
                      if _all_files(captures) else jobs):
        _logging(debug)
        redaction = _redaction(redact, redact_uids, redact_network, redact_key)
        try:
            with frozen_imports():  # inside: Ctrl-C meanwhile says so (typer: a silent 130)
                from .archive import analyze_to
            # validate=debug: pydicom's checks of each value only warn, and the command line
            # shows no warnings without --debug (batch._reading)
            with _progress(enabled=not quiet and sys.stderr.isatty()) as on_progress:
                done = analyze_to(captures, out, format=format, objects=not no_objects,
                                  ports=port or (), jobs=jobs, tshark=tshark,
                                  cross_check=cross_check, engine=engine, resume=resume,
                                  verify=verify, dask=dask, no_stitch=no_stitch,
                                  on_progress=on_progress, redact=redaction,
                                  shared=shared_output, tls_keylogs=tls_keylog or (),
                                  tls_ports=tls_port or (), validate=debug)
        except TsharkDicomError as exc:
            _fail(exc)
        except OSError as exc:
            _environment(exc, out, debug)
        except KeyboardInterrupt:
            # in place (a new folder, or --resume): what finished is kept; else OUT is as it was
            kept = resume or ((out / "tables").is_dir() and not (out / "summary.txt").exists())
            typer.echo(f"Error: interrupted; the captures finished so far are in {out}: rerun "
                       "with --resume to go on" if kept else
                       f"Error: interrupted before any capture was finished; {out} was not "
                       "created" if not out.exists() else
                       f"Error: interrupted; {out} holds the earlier results, unchanged", err=True)
            _INTERRUPTION_SAID.set()
            raise typer.Exit(130) from None
        except Exception as exc:  # never a traceback for the user; --debug shows one
            if debug:
                raise
            _internal(exc)
    if not quiet:
        typer.echo((out / "summary.txt").read_text().rstrip("\n"))
        if resume:
            typer.echo(f"resumed: {done.reused} capture(s) already done, {done.analysed} "
                       "analysed now")
        if redaction is not None:
            typer.echo("patient data replaced by keyed hashes" + (", with UIDs" if
                       redaction.uids else "") + (", AE titles and IP addresses" if
                       redaction.network else "") + "; no objects written")
        typer.echo(f"results in {out}/")


def _all_files(paths: list[Path]) -> bool:
    """Every path a file (one capture each, or fewer: a set's files are one); False where
    one cannot be looked at (the run then says why)."""
    try:
        return all(p.is_file() for p in paths)
    except OSError:
        return False


@app.command(cls=Command)
def diagnose(
    sources: Annotated[list[Path], typer.Argument(
        help="Captures, folders of captures, or OUT folders written by analyze.",
        show_default=False, metavar="CAPTURE_OR_DIR_OR_OUT...")],
    fail_on: Annotated[str | None, typer.Option(
        "--fail-on", help="Exit 3 when a finding of this severity or worse is found: "
        "warning or error (for monitoring); a capture that could not be analysed counts "
        "as an error.", metavar="warning|error",
        show_default=False)] = None,
    port: PortOpt = None,
    tshark: TsharkOpt = None,
    redact: RedactOpt = False,
    redact_uids: RedactUidsOpt = False,
    redact_network: RedactNetworkOpt = False,
    redact_key: RedactKeyOpt = None,
    tls_keylog: TlsKeylogOpt = None,
    tls_port: TlsPortOpt = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print one JSON object a line (JSON Lines) instead: each capture, "
        "then each of its findings with its association.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Log details to stderr.")] = False,
) -> None:
    """Print the findings grouped by association, most severe first, in plain sentences;
    a C-MOVE with its callback and sub-operations beneath it."""
    import json

    from .memory import frozen_imports  # not at the top: --version stays instant

    with frozen_imports():
        from .batch import run
        from .diagnose import FAIL_ON, RANK, records, render, worst_severity
        from .discovery import CaptureFile
        from .report import Report, load
        from .schemas import frame
        from .store import has_results

    _logging(debug)
    redaction = _redaction(redact, redact_uids, redact_network, redact_key)
    if fail_on is not None and fail_on not in FAIL_ON:
        _fail(OptionsError(f"--fail-on {fail_on!r}: choose warning or error"))
    outs = [p for p in sources if p.is_dir() and has_results(p)]
    worst = len(RANK)  # the rank of the worst severity so far (none: past the last)
    held: list[str] = []  # the text of captures that all failed, until one did not

    def show(part: Report, hold: bool = False) -> None:
        """One OUT folder's or one capture's diagnosis, printed as soon as it is made:
        nothing of a part is kept but its worst severity (an archive's tables together
        grew the process by 0.55 MB a capture)."""
        nonlocal worst
        text = "\n".join(json.dumps(r) for r in records(part)) if as_json else render(part)
        severity = worst_severity(part)
        if severity is not None:
            worst = min(worst, RANK[severity])
        if hold:
            held.append(text)
            return
        for earlier in [*held, text]:
            if earlier:
                typer.echo(earlier)
        held.clear()

    def on_result(cap: CaptureFile, tables: dict[str, pd.DataFrame],
                  rows: list[dict[str, Any]]) -> None:
        ok = any(row["status"] == "ok" for row in rows)
        # a capture that failed is shown once another did not: if none can be read, the
        # run ends with the first one's error alone (exit 1), as for a single capture
        show(Report.concat([{**tables, "captures": frame("captures", rows)}]), hold=not ok)

    try:
        if outs and len(outs) != len(sources):
            raise OptionsError("give either OUT folders written by analyze or captures, "
                               "not both")
        if outs:
            for p in outs:
                show(Report.concat([_stored_tables(p, load(p), redaction)]))
        else:
            with _interrupt_ends("interrupted"):
                run(sources, ports=port or (), tshark=tshark, redact=redaction,
                    tls_keylogs=tls_keylog or (), tls_ports=tls_port or (), keep=False,
                    on_result=on_result, validate=debug)
            show(Report())  # what is still held
    except TsharkDicomError as exc:
        _fail(exc)
    except Exception as exc:  # never a traceback for the user; --debug shows one
        if debug:
            raise
        _internal(exc)
    if fail_on is not None and worst <= RANK[fail_on]:
        raise typer.Exit(3)


@app.command(cls=Command)
def compare(
    first: Annotated[Path, typer.Argument(
        help="Point A: a capture, or an OUT folder written by analyze.", show_default=False,
        metavar="A")],
    second: Annotated[Path, typer.Argument(
        help="Point B: a capture of the same traffic taken elsewhere on its path, or an OUT "
        "folder.", show_default=False, metavar="B")],
    out: Annotated[Path | None, typer.Option(
        "-o", "--out", help="Also write the comparison's tables (point_associations, "
        "point_messages, point_findings) and report.html into this folder.",
        show_default=False,
        metavar="OUT")] = None,
    format: FormatOpt = "parquet",
    port: PortOpt = None,
    tls_keylog: TlsKeylogOpt = None,
    tls_port: TlsPortOpt = None,
    tshark: TsharkOpt = None,
    debug: Annotated[bool, typer.Option("--debug", help="Log details to stderr.")] = False,
) -> None:
    """Two captures of the same traffic, taken at two points of its path: which
    associations and messages passed both, the clocks' offset, the transit between the
    points, and what the network between them held up or one point never saw."""
    from .memory import frozen_imports  # not at the top: --version stays instant

    with frozen_imports():
        from .htmltwopoint import write
        from .twopoint import FORMATS, compare_sources, render

    _logging(debug)
    with _told_errors(out, debug):
        if format not in FORMATS:
            raise OptionsError(f"--format {format!r}: choose parquet, csv or both")
        with _interrupt_ends("interrupted"):
            result = compare_sources(first, second, ports=port or (), tshark=tshark,
                                     tls_keylogs=tls_keylog or (), tls_ports=tls_port or ())
            if out is not None:
                write(result, out, format=format)
    typer.echo(render(result))
    if out is not None:
        typer.echo(f"results in {out}/")


@app.command(cls=Command)
def watch(
    interface: Annotated[str, typer.Argument(
        help="The interface to capture on, as dumpcap -D lists them ('any': all); '-': a "
        "pcap or pcapng stream on standard input (ssh HOST tcpdump -U -w - ...).",
        show_default=False, metavar="INTERFACE")],
    write: Annotated[Path | None, typer.Option(
        "-w", "--write", help="Save the packets to this pcap file, as dumpcap wrote them.",
        show_default=False, metavar="FILE")] = None,
    out: Annotated[Path | None, typer.Option(
        "-o", "--out", help="When the capture ends, analyse it into OUT as analyze does "
        "(tables, report.html, objects); the packets are saved to OUT.pcap unless -w says "
        "where.", show_default=False, metavar="OUT")] = None,
    capture_filter: Annotated[str | None, typer.Option(
        "-f", "--filter", help="A capture filter (BPF) for dumpcap, e.g. 'tcp port 104'.",
        show_default=False, metavar="FILTER")] = None,
    duration: Annotated[int | None, typer.Option(
        "--duration", "-a", help="End the capture after this many seconds (default: at "
        "Ctrl-C).", show_default=False, metavar="SECONDS")] = None,
    packets: Annotated[int | None, typer.Option(
        "--packets", "-c", help="End the capture after this many packets.",
        show_default=False, metavar="N")] = None,
    file_size: Annotated[int | None, typer.Option(
        "--file-size", help="Save the packets in files of about this many megabytes "
        "(dumpcap's ring buffer: FILE_NNNNN_YYYYMMDDhhmmss.pcap; analyze reads them as one "
        "capture).", show_default=False, metavar="MB")] = None,
    files: Annotated[int | None, typer.Option(
        "--files", help="With --file-size: keep only the newest N files (the oldest are "
        "deleted), so a long watch takes a bounded disk.", show_default=False,
        metavar="N")] = None,
    format: FormatOpt = "parquet",
    port: PortOpt = None,
    no_objects: Annotated[bool, typer.Option(
        "--no-objects", help="With -o: do not write reconstructed Part-10 files.")] = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Print only the associations that have findings.")] = False,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print one JSON object a line (JSON Lines) for a log collector: each "
        "association, findings added later, each refused connection, and the end.")
    ] = False,
    every: Annotated[int | None, typer.Option(
        "--every", help="Every SECONDS, a line of what the stretch saw (associations, "
        "failed operations, findings): a heartbeat for a monitoring job.",
        show_default=False, metavar="SECONDS")] = None,
    fail_on: Annotated[str | None, typer.Option(
        "--fail-on", help="Exit 3 when a finding of this severity or worse was told: warning "
        "or error (a monitoring job: --duration 300 --fail-on error).",
        metavar="warning|error", show_default=False)] = None,
    tls_keylog: TlsKeylogOpt = None,
    tls_port: TlsPortOpt = None,
    tshark: TsharkOpt = None,
    debug: Annotated[bool, typer.Option("--debug", help="Log details to stderr.")] = False,
) -> None:
    """Capture on an interface and tell each DICOM association as soon as it ends: who
    called whom, how it ended, what it did, its findings. Ctrl-C ends the capture; every
    packet captured until then is analysed."""
    import json
    import time

    from .memory import frozen_imports  # not at the top: --version stays instant

    with frozen_imports():
        from .liveview import Interval, WatchedAssociation, WatchedAttempt, finding_line
        from .liveview import watch as watch_interface
        from .schemas import SEVERITIES

    _logging(debug)
    save = write if write is not None else \
        out.with_name(out.name + ".pcap") if out is not None else None
    name = "standard input" if interface == "-" else interface
    stop = threading.Event()
    if fail_on is not None and fail_on not in ("warning", "error"):
        _fail(OptionsError(f"--fail-on {fail_on!r}: choose warning or error"))
    if (tls_keylog or tls_port) and out is None:
        _fail(OptionsError("--tls-keylog, --tls-port: with -o only (the saved capture is "
                           "decrypted when it is analysed into OUT; the live view is not)"))
    if every is not None and every < 1:
        _fail(OptionsError(f"--every {every}: must be 1 second or more"))
    told_severities: set[str] = set()
    printing = threading.Lock()  # the heartbeat's thread prints too: whole lines
    stretch = Interval(float(every or 0))

    def say(told: WatchedAssociation | WatchedAttempt) -> None:
        with printing:
            stretch.add(told)
            typer.echo(json.dumps(told.as_json()) if as_json else "\n".join(told.lines()))
            sys.stdout.flush()

    def told(a: WatchedAssociation) -> None:
        told_severities.update(f.severity for f in a.findings)
        if not quiet or a.findings:
            say(a)
        else:
            with printing:
                stretch.add(a)

    watched = threading.Event()  # the capture ended and was analysed: no more heartbeats

    def heartbeat() -> None:
        nonlocal stretch
        assert every is not None
        while not watched.wait(every):
            with printing:
                if watched.is_set():
                    return
                done, stretch = stretch, Interval(float(every))
                now = time.time_ns()
                typer.echo(json.dumps(done.as_json(now)) if as_json else done.line(now))
                sys.stdout.flush()

    def ending(signum: int, frame: object) -> None:
        if stop.is_set():  # a second Ctrl-C: now
            os.write(2, b"Error: interrupted\n")
            os._exit(128 + signum)
        stop.set()
        os.write(2, b"ending the capture: analysing what was captured (Ctrl-C again to "
                 b"quit at once)\n")

    def started() -> None:
        if not quiet:
            typer.echo(f"watching {name}" + (f" ({capture_filter})" if capture_filter
                                                  else "")
                       + (f", saving the packets to {save}" if save is not None else "")
                       + "; Ctrl-C ends the capture", err=True)

    handlers = {}
    if threading.current_thread() is threading.main_thread():
        handlers = {s: signal.signal(s, ending) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with _told_errors(save, debug):
            if format not in ("parquet", "csv", "both"):
                raise OptionsError(f"--format {format!r}: choose parquet, csv or both")
            if every is not None:
                threading.Thread(target=heartbeat, daemon=True).start()
            seen = watch_interface(interface, save=save, capture_filter=capture_filter,
                                   duration=duration, packets=packets, ports=port or (),
                                   tshark=tshark, on_association=told, stop=stop,
                                   on_start=started, on_attempt=say,
                                   file_size_mb=file_size, files=files)
    finally:
        with printing:
            watched.set()
        for s, previous in handlers.items():
            signal.signal(s, previous)
    told_severities.update(f.severity for f in seen.findings)
    if as_json:
        typer.echo(json.dumps(seen.as_json(name)))
    else:
        typer.echo(f"{name}: {seen.packets} packet(s) in {seen.elapsed_s:.1f} s of "
                   f"watching, {seen.associations} DICOM association(s)"
                   + (f"; dumpcap dropped {seen.dropped}" if seen.dropped else ""))
        for f in seen.findings:
            if not quiet or f.severity != "note":
                typer.echo(finding_line(f, "  "))
    failed = fail_on is not None and bool(
        told_severities & set(SEVERITIES[:SEVERITIES.index(fail_on) + 1]))
    # where the packets are, as a shell takes it: the file, the ring's files, or their glob
    kept = seen.saved_files
    where = " ".join(str(p) for p in kept) if len(kept) < 4 or save is None else \
        str(save.with_name(f"{save.stem}_*{save.suffix}"))
    if out is None:
        if kept and not as_json:
            typer.echo(f"packets saved to {where}: tshark-dicom analyze {where} -o OUT for "
                       "the tables, objects and report")
        if failed:
            raise typer.Exit(3)
        return
    assert save is not None
    with _interrupt_ends(f"interrupted; the packets are saved in {where}"), \
            _told_errors(out, debug):
        with frozen_imports():
            from .archive import analyze_to
        analyze_to(kept or [save], out, format=format, objects=not no_objects,
                   ports=port or (), tshark=tshark, tls_keylogs=tls_keylog or (),
                   tls_ports=tls_port or (), validate=debug)
    if as_json:
        typer.echo(json.dumps({"event": "written", "out": str(out),
                               "saved": [str(p) for p in kept]}))
    else:
        if not quiet:
            typer.echo((out / "summary.txt").read_text().rstrip("\n"))
        typer.echo(f"packets in {where}, results in {out}/")
    if failed:
        raise typer.Exit(3)


def _stored_tables(folder: Path, report: Report, redaction: Redaction | None
                   ) -> dict[str, pd.DataFrame]:
    """The tables of an OUT folder, redacted as asked; what the folder's run redacted
    already is not redone (a UID token would change again). Unredacted, only the columns
    the diagnosis reads (an archive's whole tables are most of the time it takes)."""
    from dataclasses import replace

    from .diagnose import READS
    from .redact import redact_tables
    from .schemas import TABLES, frame
    from .store import manifest
    from .tableread import read_table

    if redaction is None:
        read = {t: read_table(folder, t, columns) for t, columns in READS.items()}
        return {t: frame(t, [])[READS[t]] if df is None else df for t, df in read.items()}
    tables = {t: report.table(t) for t in TABLES}
    done = manifest(folder).get("redaction") or {}
    if done.get("uids"):
        redaction = replace(redaction, uids=False)
    return redact_tables(tables, redaction)


@contextmanager
def _told_errors(out: Path | None, debug: bool) -> Iterator[None]:
    """Inside, a library error is its one ``Error:`` line and exit code, an OSError of
    writing ``out`` the environment's (`_environment`), anything else an internal error
    (no traceback but with ``--debug``)."""
    try:
        yield
    except TsharkDicomError as exc:
        _fail(exc)
    except OSError as exc:
        _environment(exc, out, debug)
    except Exception as exc:  # never a traceback for the user; --debug shows one
        if debug:
            raise
        _internal(exc)


@contextmanager
def _interrupt_ends(message: str) -> Iterator[None]:
    """Inside, Ctrl-C ends the process at once: ``Error: <message>`` and exit 130, with
    nothing unwound (a KeyboardInterrupt would end the capture under way, its tshark and
    the rest first). For what leaves nothing half-written (diagnose prints each capture as
    it is done); analyze analyses in worker processes that leave the same way (batch.py),
    and says what it kept."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is signal.SIG_IGN):
        yield
        return

    def leave(signum: int, frame: object) -> None:
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        os.write(2, f"Error: {message}\n".encode())
        os._exit(128 + signum)

    previous = signal.signal(signal.SIGINT, leave)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def _progress(enabled: bool) -> Iterator[ProgressFn | None]:
    """A one-line progress display on stderr, only for a person at a terminal: captures and
    bytes done of all, the rate and the time left (from the captures' sizes).

    Drawn as the run reports progress (at most REFRESH_S apart), not by rich's own refresh
    thread: a process without threads of its own forks its --jobs workers (workers.py)."""
    if not enabled:
        yield None
        return
    import time

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(TextColumn("{task.description}"), BarColumn(), TransferSpeedColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), transient=True,
                  auto_refresh=False, console=Console(stderr=True)) as bar:
        task = bar.add_task("starting tshark", total=None)
        bar.refresh()
        drawn = [time.monotonic()]

        def update(label: str, done: int, total: int, packets: int, done_bytes: int,
                   total_bytes: int) -> None:
            name = Path(label).name
            what = f"{packets:,} packets read, {name}" if packets else name
            now = time.monotonic()
            due = now - drawn[0] >= REFRESH_S
            bar.update(task, completed=done_bytes, total=total_bytes or None,
                       description=f"capture {min(done + 1, total)}/{total}: {what}",
                       refresh=due)
            if due:
                drawn[0] = now

        yield update


#: How often the progress display is drawn at most (s).
REFRESH_S = 0.1


def _logging(debug: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not debug:  # what the libraries say about odd traffic is in our findings already
        logging.getLogger("pydicom").setLevel(logging.ERROR)
        logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
        warnings.simplefilter("ignore")


def _environment(exc: OSError, out: Path | None, debug: bool) -> None:
    """An OSError of a command writing ``out``: disk full, permissions (the environment:
    one line, exit 4), else an internal error."""
    problem = output_error(exc, out) if out is not None else None
    if problem is None:
        if debug:
            raise exc
        _internal(exc)
    else:
        _fail(problem)


def _internal(exc: Exception) -> None:
    if isinstance(exc, BrokenPipeError):  # the reader went away (| head): main ends quietly
        raise exc
    typer.echo(visible(f"Error: internal error ({type(exc).__name__}: {exc}); rerun with "
                       "--debug and report it"), err=True)
    raise typer.Exit(1) from None


#: Exit codes (README): 1 input, 2 usage, 3 --fail-on, 4 the environment (disk, rights).
EXIT_OUTPUT = 4


def _fail(exc: TsharkDicomError) -> None:
    typer.echo(visible(f"Error: {exc}"), err=True)
    raise typer.Exit(2 if isinstance(exc, OptionsError) else
                     EXIT_OUTPUT if isinstance(exc, OutputError) else 1)


def main() -> None:
    """Console-script entry point.

    The process ends without the interpreter's teardown: every file is closed and every
    worker gone by then, and freeing pandas', pyarrow's and pydicom's modules one object at
    a time takes about 0.1 s of a run that may have taken half a second."""
    # Arrow's own allocator (mimalloc) keeps the memory of every batch read for the report
    # and the tables; the system's hands it back, so a long run stays flat (issue 8). Set
    # before pyarrow loads; --jobs workers (and their fork server) inherit it.
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    # numpy's OpenBLAS starts a spinning thread per core at import; nothing here does
    # linear algebra, and on two cores they took CPU from the analysis (3.5% at 200 MB)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from .memory import one_arena

    one_arena()
    try:
        app()
        code = 0
    except SystemExit as exc:  # how typer ends every command, with its exit code
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
            if code == 130 and not _INTERRUPTION_SAID.is_set():
                # typer's own answer to a Ctrl-C that no command caught (while it parsed
                # the options, or a command started its workers) is a blank line
                print("Error: interrupted", file=sys.stderr)
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BrokenPipeError:  # e.g. piped into head
        sys.stderr.close()
        code = 1
    _exit(code)


#: Set once a command has said what a Ctrl-C left (`main` says it otherwise).
_INTERRUPTION_SAID = threading.Event()


def _exit(code: int) -> None:
    """Flush what is buffered, then end the process at once (os._exit); under a profiler,
    debugger or coverage (they write their results at exit) the usual way."""
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed (a broken pipe), or gone
            code = code or 1
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
