"""Find tshark, check it, build its command lines, run it, and map its failures to errors.

tshark is our packet engine: it reads every capture format and link layer and dissects
IP and TCP. We ask it for raw TCP payload bytes only (its DICOM dissector is disabled, see
NOTES: it gives no PDV bytes and cuts values at 50 characters) and decode DICOM ourselves.

Two passes, so that unrelated traffic never travels through JSON:
1. ``find_dicom_streams``: a display filter that matches a segment opening with an
   A-ASSOCIATE-RQ PDU header (PS3.8 9.3.2: type 01, reserved 00, length, version 0001),
   or any segment on a ``--port``; only the ``tcp.stream`` number is printed.
2. ``packet_stream``: ``-T ek`` with the few fields we need, for those streams only.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import re
import shutil
import signal
import struct
import subprocess
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast

from .errors import CaptureError, TsharkDicomError, TsharkError, TsharkNotFoundError

log = logging.getLogger(__name__)

#: How the packets are read: ``raw`` a pcap stream (editcap's or tshark's conversion),
#: ``ek`` tshark's dissection as JSON, ``auto`` raw where the capture allows (analysis.py).
ENGINES = ("auto", "raw", "ek")
MIN_VERSION = (3, 6, 0)  # tcp.seq_raw and "a..b" ranges in display-filter sets
INSTALL_HINT = (
    "install it with 'apt-get install tshark' (Debian/Ubuntu) or set TSHARK=/path/to/tshark"
)
#: How dumpcap names the files of a ring buffer (``-w NAME.EXT -b ...``) and editcap those
#: of a split (``-c``/``-i``): NAME_NNNNN_YYYYMMDDhhmmss.EXT. discovery.py stitches such
#: sets; livecapture.py finds the files of its own ring.
RING_NAME = re.compile(r"(?P<base>.+)_(?P<n>\d{5})_\d{14}(?P<ext>\.[A-Za-z0-9.]+)")

#: The fields of pass 2, in the order `packets.py` reads them (ek names: dots become '_').
FIELDS: tuple[str, ...] = (
    "frame.number",
    "frame.time_epoch",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "tcp.stream",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.seq_raw",
    "tcp.ack_raw",
    "tcp.len",
    "tcp.flags",
    "tcp.payload",
    "tcp.window_size_value",
    "tcp.options.wscale.shift",
)

#: TCP analysis and desegmentation are ours to do (streams.py); turning tshark's off saves
#: about a third of its time (NOTES) and keeps its memory from growing with the capture.
PREFERENCES: tuple[str, ...] = (
    "tcp.analyze_sequence_numbers:FALSE",
    "tcp.desegment_tcp_streams:FALSE",
    "tcp.relative_sequence_numbers:FALSE",
    "tcp.check_checksum:FALSE",
    "tcp.try_heuristic_first:FALSE",
)

#: A segment that opens with an A-ASSOCIATE-RQ PDU header. dcmtk may send the 6-byte PDU
#: header as a segment of its own, hence the ``tcp.len == 6`` alternative.
ASSOCIATE_RQ_FILTER = "tcp.payload[0:2] == 01:00 && (tcp.len == 6 || tcp.payload[6:2] == 00:01)"

#: File types that tshark's wiretap opens but that are not packet captures.
NOT_PACKET_CAPTURES = frozenset(
    {"mp4", "mpeg", "jpeg", "jfif", "mime", "ruby_marshal", "json", "log", "tfshark"}
)


class CannotConvert(TsharkError):
    """The capture cannot be written as a pcap stream (the raw engine's input), either way
    `raw_conversion` knows: interfaces of several link types. The ek engine reads it
    instead."""


class Tshark:
    """A tshark executable, and the editcap beside it (the same Wireshark build).

    The raw engine has editcap convert captures (the same bytes as ``tshark -r FILE -w -
    -F nsecpcap``, in a hundredth of the start-up time and memory); tshark itself is run
    where dissection is needed. Its version is probed (``tshark --version``, 0.3-0.5 s)
    only when asked for: the ek engine and the cross-check need it."""

    def __init__(self, path: str, version: tuple[int, int, int] | None = None,
                 suite: str | None = None) -> None:
        self.path = path
        self._version = version or _VERSIONS.get(path)
        self._error: TsharkDicomError | None = None
        self._suite = suite if suite is not None else _SUITES.get(path)
        self._suite_probe: subprocess.Popen[str] | None = None
        self.editcap = self.beside("editcap")
        self.capinfos = self.beside("capinfos")

    def beside(self, tool: str) -> str | None:
        """A tool of the same Wireshark build (editcap, capinfos, captype): its path beside
        tshark's, or None where it is not there."""
        path = Path(self.path).with_name(tool)
        return str(path) if os.access(path, os.X_OK) else None

    def _run_probe(self) -> None:
        try:
            out = subprocess.run([self.path, "--version"], capture_output=True, text=True,
                                 timeout=60, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            self._error = TsharkNotFoundError(f"cannot run {self.path}: {exc}")
            return
        match = re.search(r"TShark \(Wireshark\) (\d+)\.(\d+)\.(\d+)", out.stdout)
        if not match:
            self._error = TsharkError(
                f"{self.path} does not look like tshark (unknown --version output)")
            return
        self._version = _VERSIONS[self.path] = (int(match[1]), int(match[2]), int(match[3]))

    @property
    def version(self) -> tuple[int, int, int]:
        """The version (probed once); raises TsharkError if it is not a usable tshark."""
        if self._version is None and self._error is None:
            self._run_probe()
        if self._error is not None:
            raise self._error
        assert self._version is not None
        if self._version < MIN_VERSION:
            need = ".".join(map(str, MIN_VERSION))
            raise TsharkError(f"tshark {self.version_text} is too old: need {need} or newer")
        return self._version

    @property
    def version_text(self) -> str:
        """The Wireshark version: tshark's if probed, else editcap's (the same build,
        asked in milliseconds); "" if neither says."""
        if self._version is not None:
            return ".".join(str(v) for v in self._version)
        if self._suite is None:
            self.start_suite_probe()
            out = ""
            if self._suite_probe is not None:
                try:
                    out = self._suite_probe.communicate(timeout=30)[0]
                except subprocess.SubprocessError:
                    self._suite_probe.kill()
                    self._suite_probe.wait()
                self._suite_probe = None
            match = re.search(r"\(Wireshark\) (\d+\.\d+\.\d+)", out)
            self._suite = _SUITES[self.path] = match[1] if match else ""
        return self._suite

    def start_suite_probe(self) -> None:
        """Start ``editcap --version`` for `version_text` if it is not known yet: asked
        at a capture's start and read at its end, the probe (0.02 s) runs beside the
        analysis instead of before it (a worker's first capture, batch.py)."""
        if self._version is not None or self._suite is not None or \
                self._suite_probe is not None or self.editcap is None:
            return
        try:
            self._suite_probe = subprocess.Popen(
                [self.editcap, "--version"], stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        except OSError:
            self._suite = _SUITES[self.path] = ""

    def __getstate__(self) -> dict[str, object]:  # for worker processes
        return {"path": self.path, "version": self._version, "suite": self._suite}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(state["path"], state["version"], state.get("suite"))  # type: ignore[misc]


#: What the probes found, by executable path, for the life of the process: a worker
#: process gets a new Tshark with every capture (unpickled) and must not run
#: ``editcap --version`` or ``tshark --version`` again for each.
_VERSIONS: dict[str, tuple[int, int, int]] = {}
_SUITES: dict[str, str] = {}


def find_tshark(explicit: str | os.PathLike[str] | None = None) -> Tshark:
    """Locate tshark (argument, then ``TSHARK`` environment variable, then PATH)."""
    candidate = str(explicit) if explicit else os.environ.get("TSHARK") or shutil.which("tshark")
    if not candidate:
        raise TsharkNotFoundError(f"tshark not found on PATH: {INSTALL_HINT}")
    resolved = shutil.which(candidate) if os.sep not in candidate else candidate
    if not resolved or not os.access(resolved, os.X_OK) or os.path.isdir(resolved):
        raise TsharkNotFoundError(f"tshark not found at {candidate}: {INSTALL_HINT}")
    return Tshark(resolved)


def operand(path: Path) -> str:
    """A capture's path as editcap's, capinfos' or captype's operand: a relative one that
    starts with "-" (``./-x.pcapng`` is ``-x.pcapng`` to pathlib) would be taken for an
    option, so it is given whole. tshark's ``-r`` takes its value as it is."""
    text = str(path)
    return os.path.abspath(text) if text.startswith("-") else text


def check_capture(tshark: Tshark, path: Path) -> None:
    """Fail early and clearly on a capture we cannot read at all."""
    if not path.exists():
        raise CaptureError(f"{path}: no such file")
    if not path.is_file():
        raise CaptureError(f"{path}: not a file")
    if not os.access(path, os.R_OK):
        raise CaptureError(f"{path}: permission denied")
    if path.stat().st_size == 0:
        raise CaptureError(f"{path}: empty file, not a capture")
    cut = cut_in_header(path)
    if cut:
        raise CaptureError(f"{path}: {cut}")
    with open(path, "rb") as f:
        if f.read(4) in (*_PCAP_MAGICS, _PCAPNG_MAGIC):
            return  # what captype would say (wiretap tries the magic numbers first)
    captype = tshark.beside("captype")
    if captype is None:
        return
    out = subprocess.run(
        [captype, operand(path)], capture_output=True, text=True, timeout=120, check=False
    )
    kind = out.stdout.rsplit(":", 1)[-1].strip() if out.stdout else ""
    if kind == "unknown":
        raise CaptureError(f"{path}: not a capture file in a format tshark understands")
    if kind in NOT_PACKET_CAPTURES:
        raise CaptureError(f"{path}: a {kind} file, not a packet capture")


_PCAP_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1",
                b"\xa1\xb2\x3c\x4d")
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
_PCAP_HEADER = 24  # pcap's global header
_PCAPNG_BYTE_ORDER = (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d")


def cut_in_header(path: Path) -> str | None:
    """Why a file that starts as a pcap or pcapng file cannot be read at all (cut short
    before its file header ends), else None. Such a file is a capture cut short, not
    the other formats tshark's wiretap would guess from its few bytes (a "mime" file)."""
    try:
        with open(path, "rb") as f:
            head = f.read(28)
    except OSError:
        return None
    size = len(head)
    if head[:4] in _PCAP_MAGICS and size < _PCAP_HEADER:
        return (f"a pcap file cut short in its first {size} bytes (its 24-byte file header "
                "is incomplete): no packet can be read")
    if head[:4] == _PCAPNG_MAGIC:
        order = head[8:12]
        if size < 12 or order not in _PCAPNG_BYTE_ORDER:
            return (f"a pcapng file cut short in its first {size} bytes (its section header "
                    "block is incomplete): no packet can be read")
        length = int.from_bytes(head[4:8], "little" if order == _PCAPNG_BYTE_ORDER[0]
                                else "big")
        if path.stat().st_size < length:
            return (f"a pcapng file cut short in its first {path.stat().st_size} bytes (its "
                    f"{length}-byte section header block is incomplete): no packet can be read")
    return None


def _stderr_lines(text: str) -> list[str]:
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.startswith('Running as user "root"')
    ]


def _base_argv(tshark: Tshark, capture: Path) -> list[str]:
    argv = [tshark.path, "-n", "-r", str(capture), "--disable-protocol", "dicom"]
    for pref in PREFERENCES:
        argv += ["-o", pref]
    return argv


def find_streams_argv(tshark: Tshark, capture: Path, ports: Sequence[int] = ()) -> list[str]:
    """Pass 1: print the tcp.stream of every segment that could start a DICOM association."""
    tshark.version  # noqa: B018 - the ek engine needs tcp.seq_raw and set ranges (3.6)
    expr = f"({ASSOCIATE_RQ_FILTER})"
    if ports:
        expr += " || tcp.port in {" + ",".join(str(p) for p in sorted(set(ports))) + "}"
    return _base_argv(tshark, capture) + ["-Y", expr, "-T", "fields", "-e", "tcp.stream"]


def stream_set_expression(streams: Iterable[int]) -> str:
    """``tcp.stream in {0..4,7,9..12}``: consecutive runs as ranges keep the filter short."""
    ordered = sorted(set(streams))
    parts: list[str] = []
    start = prev = None
    for s in [*ordered, None]:
        if s is not None and prev is not None and s == prev + 1:
            prev = s
            continue
        if start is not None and prev is not None:
            parts.append(str(start) if start == prev else f"{start}..{prev}")
        start = prev = s
    return "tcp.stream in {" + ",".join(parts) + "}"


def raw_argv(tshark: Tshark, capture: Path, encapsulation: str | None = None) -> list[str]:
    """The raw engine: the capture, whatever its format or compression, as a nanosecond
    pcap stream on stdout. No dissection, so no preferences or filters apply: editcap
    (Wireshark's converter, the same reader) where it is installed, else tshark.
    ``encapsulation``: the link type editcap gives every packet (``-T``; editcap only)."""
    if tshark.editcap is not None:
        relabel = ["-T", encapsulation] if encapsulation is not None else []
        return [tshark.editcap, *relabel, "-F", "nsecpcap", operand(capture), "-"]
    return [tshark.path, "-n", "-r", str(capture), "-w", "-", "-F", "nsecpcap"]


def packets_argv(tshark: Tshark, capture: Path, streams: Iterable[int]) -> list[str]:
    """Pass 2: ``-T ek`` with only FIELDS, for the selected TCP streams only."""
    argv = _base_argv(tshark, capture) + ["-Y", stream_set_expression(streams), "-T", "ek"]
    for f in FIELDS:
        argv += ["-e", f]
    return argv


@dataclass
class TsharkRun:
    """What a finished tshark run left behind: the notes worth keeping from its stderr."""

    argv: list[str]
    truncated: bool = False
    warnings: list[str] = field(default_factory=list)


class _StderrCollector(threading.Thread):
    """Drains stderr on a thread so a chatty tshark can never block on a full pipe."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.lines: deque[str] = deque(maxlen=200)

    def run(self) -> None:
        for raw in self.stream:
            self.lines.append(raw.decode("utf-8", "replace").rstrip())


#: The pipe size asked: 1 MiB, the most an unprivileged process may ask by default
#: (/proc/sys/fs/pipe-max-size)
_PIPE_BYTES = 1 << 20


def _widen(stream: IO[bytes]) -> None:
    """Give the pipe from tshark or editcap 1 MiB instead of 64 KiB. They write it 4 KiB at
    a time; with room for one whole read of ours they and we wake each other far less
    often (the 1 GB capture read 1.16 -> 0.92 s, side by side)."""
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    except (ImportError, AttributeError, OSError, ValueError):
        pass  # another system, or a lower limit: the pipe works as it is, more slowly


@dataclass
class Tool:
    """One process of a run: its Popen, the thread draining its stderr, its name."""

    proc: subprocess.Popen[bytes]
    stderr: _StderrCollector
    name: str  # tshark, or editcap for the raw engine's conversion

    def lines(self) -> list[str]:
        self.stderr.join(timeout=10)
        return _stderr_lines("\n".join(self.stderr.lines))


def start_tool(argv: list[str], stdin: IO[bytes] | int, new_session: bool = False,
               pass_fds: tuple[int, ...] = ()) -> Tool:
    """Start one tool of the suite (or tee), its stdout a widened pipe, its stderr drained
    on a thread. ``new_session``: in a session of its own, out of reach of the terminal's
    Ctrl-C (livecapture.py ends it itself); ``pass_fds``: descriptors it inherits."""
    log.debug("running %s", " ".join(argv))
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=stdin, bufsize=1 << 20, start_new_session=new_session,
                                pass_fds=pass_fds)
    except OSError as exc:
        raise TsharkNotFoundError(f"cannot run {argv[0]}: {exc.strerror}: {INSTALL_HINT}") from exc
    assert proc.stdout is not None and proc.stderr is not None
    _widen(proc.stdout)
    collector = _StderrCollector(proc.stderr)
    collector.start()
    return Tool(proc, collector, Path(argv[0]).name)


@contextmanager
def run_tshark(argv: list[str], capture: Path, feed: list[str] | None = None
               ) -> Iterator[tuple[IO[bytes], TsharkRun]]:
    """Run tshark, yield its stdout (binary, streamed) and a TsharkRun filled in at exit.
    ``feed``: the command line of a tool run first, whose output is ``argv``'s input (a
    pipeline, `raw_conversion`); its failures are the run's as its own are.

    A capture cut short is not an error: tshark still gave us every whole packet, and the
    caller records a finding. Any other non-zero exit is a TsharkError naming the capture.
    """
    tools: list[Tool] = []
    try:
        stdin: IO[bytes] | int = subprocess.DEVNULL
        if feed is not None:
            tools.append(start_tool(feed, stdin))
            assert tools[0].proc.stdout is not None
            stdin = tools[0].proc.stdout
        tools.append(start_tool(argv, stdin))
    except BaseException:
        _kill(tools)
        raise
    if feed is not None:
        first = tools[0].proc.stdout
        assert first is not None
        first.close()  # the pipe is the second tool's now: it ends when the first exits
    proc = tools[-1].proc
    assert proc.stdout is not None
    result = TsharkRun(argv)
    try:
        yield proc.stdout, result
    except Exception as exc:
        # Reading failed. If a tool died first (killed, crashed), its output was cut short
        # because of that: say so, not what the reader tripped over.
        failed: list[tuple[int, list[str], str]] = []
        for tool in tools:
            try:
                code = tool.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                code = 0
            if code != 0:
                failed.append((code, tool.lines(), tool.name))
        if not failed or isinstance(exc, TsharkDicomError):
            _kill(tools)
            raise
        raise _failure(capture, *_cause(failed)) from exc
    except BaseException:
        _kill(tools)
        raise
    finally:
        proc.stdout.close()
    result.warnings = []
    failures: list[tuple[int, list[str], str]] = []
    for tool in tools:
        code = tool.proc.wait()
        lines = tool.lines()
        cut_short = [line for line in lines if "cut short" in line]
        if cut_short:
            result.truncated = True
        errors = [line for line in lines
                  if line.startswith(f"{tool.name}:") and line not in cut_short]
        result.warnings += [line for line in lines if line not in errors and line not in cut_short]
        if code != 0 and not (cut_short and not errors):
            failures.append((code, errors, tool.name))
    if failures:
        raise _failure(capture, *_cause(failures))


def _kill(tools: list[Tool]) -> None:
    for tool in tools:
        tool.proc.kill()
        tool.proc.wait()


def _cause(failures: list[tuple[int, list[str], str]]) -> tuple[int, list[str], str]:
    """The failure (exit code, error lines, tool) to report of a run's failed tools: not a
    feeding tool's death of the closed pipe when its reader failed first."""
    return next((f for f in failures if not _broken_pipe(f[0], f[1])), failures[0])


def _broken_pipe(code: int, errors: list[str]) -> bool:
    return code == -signal.SIGPIPE or any("Broken pipe" in line for line in errors)


def _failure(capture: Path, code: int, lines: list[str], tool: str = "tshark"
             ) -> TsharkDicomError:
    """The error for a tshark (or editcap) run that exited with ``code`` (negative: killed
    by a signal), from its last error line."""
    errors = [line for line in lines if line.startswith(f"{tool}:")]
    if errors:
        detail = errors[-1].removeprefix(f"{tool}: ")
    elif code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        detail = f"killed by {name}"
    else:
        detail = f"exit status {code}"
    if "isn't a capture file" in detail or "unknown" in detail and "format" in detail:
        return CaptureError(f"{capture}: not a capture file in a format tshark understands")
    if "doesn't exist" in detail:
        return CaptureError(f"{capture}: no such file")
    if "cut short" in detail:
        return CaptureError(f"{capture}: cut short before its first packet: nothing to read")
    if "ermission denied" in detail:
        return CaptureError(f"{capture}: permission denied")
    if "can't be written as" in detail:
        return CannotConvert(f"{capture}: {tool} failed: {detail}")
    return TsharkError(f"{capture}: {tool} failed: {detail}")


def has_embedded_secrets(path: Path) -> bool:
    """Whether a pcapng (plain or gzip) holds a Decryption Secrets Block before its first
    packet, as ``editcap --inject-secrets`` writes it (pcapng spec, block type 0x0A)."""
    try:
        with open(path, "rb") as raw:
            magic = raw.read(2)
        opener = gzip.open if magic == b"\x1f\x8b" else open
        with opener(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"\x0a\x0d\x0d\x0a":
                return False
            order = "<" if head[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
            length = struct.unpack(order + "I", head[4:8])[0]
            f.read(length - 12)
            for _ in range(1000):
                hdr = f.read(8)
                if len(hdr) < 8:
                    return False
                kind, length = struct.unpack(order + "II", hdr)
                if kind == 0x0A:
                    return True
                if kind in (2, 3, 6) or length < 12:  # a packet: secrets come before it
                    return False
                f.read(length - 8)
    except (OSError, EOFError, struct.error):
        return False
    return False


def capinfos_fields(tshark: Tshark, capture: Path, *flags: str) -> list[str] | None:
    """What capinfos, beside tshark, says of the whole capture: its one line of ``-T -r``
    output (the file's name, then the fields ``flags`` ask for, tab-separated), split at the
    tabs; None where capinfos is not there or does not run. Its exit code is not looked
    at: for a capture cut short it is 1, and the fields are still there."""
    if tshark.capinfos is None:
        return None
    try:
        out = subprocess.run([tshark.capinfos, "-T", "-r", *flags, operand(capture)],
                             stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             errors="replace", timeout=600, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().split("\t")


def file_encapsulation(tshark: Tshark, capture: Path) -> str | None:
    """The link type of every packet of a capture, by Wireshark's name for it (``ether``,
    ``rawip``...), as capinfos reads it from the whole file (`capinfos_fields`, ``-E``):
    None where capinfos is not there, names none, or names ``per-packet`` (packets of two
    link types or more)."""
    fields = capinfos_fields(tshark, capture, "-E")
    name = fields[-1] if fields else ""
    if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", name) or \
            name in ("per-packet", "unknown", "none"):
        return None
    return name


def secrets_first_argv(tshark: Tshark, capture: Path) -> tuple[list[str], list[str]]:
    """`raw_conversion`'s third way: tshark rewrites the capture as pcapng (its interface
    first), and editcap (tshark where editcap is not beside it) converts that, from a pipe."""
    feed = [tshark.path, "-n", "-r", str(capture), "-w", "-", "-F", "pcapng"]
    if tshark.editcap is not None:
        return feed, [tshark.editcap, "-F", "nsecpcap", "-", "-"]
    return feed, [tshark.path, "-n", "-r", "-", "-w", "-", "-F", "nsecpcap"]


def _peek(out: IO[bytes]) -> bool:
    """Whether a tool's output has a first byte (waiting for it), none consumed."""
    return bool(cast(io.BufferedReader, out).peek(1))


@contextmanager
def raw_conversion(tshark: Tshark, capture: Path) -> Iterator[tuple[IO[bytes], TsharkRun]]:
    """The raw engine's input, `raw_argv`'s pcap stream, as `run_tshark` yields it.

    A pcapng whose Decryption Secrets Block comes before its interface description, as
    ``editcap --inject-secrets`` writes it, is one that Wireshark 4.0's editcap and tshark
    write neither as pcap nor as pcapng ("can't be written as ..."): the block is read
    before any interface is known. Only a conversion that fails before its first byte is
    tried another way:
    - the second: editcap told the link type (``-T``) that capinfos finds every packet
      of the capture has (`file_encapsulation`): the same bytes as the third way, without
      a tshark's start (0.25 s) and its pcapng writer; capinfos reads the file once more
      first (5 ms for the fixtures, 0.3 s a GB). ``-T`` relabels every packet, so it is
      given only when capinfos names one link type for them all;
    - the third: tshark's own pcapng writer puts the interface first, and its output
      converts (`secrets_first_argv`). Without it such a capture went to the ek engine:
      16 times slower on 213 MB of DICOM (28.3 s against 1.7 s); a capture whose packets
      have two link types still does, as it would without secrets."""
    started = False
    try:
        with run_tshark(raw_argv(tshark, capture), capture) as (out, run):
            if _peek(out) or not has_embedded_secrets(capture):
                started = True
                yield out, run
    except CannotConvert:
        if started:
            raise
    if started:
        return
    if tshark.editcap is not None and \
            (encapsulation := file_encapsulation(tshark, capture)) is not None:
        log.debug("%s: its decryption secrets come before its interface; converting it "
                  "with its link type, %s, given to editcap", capture, encapsulation)
        with run_tshark(raw_argv(tshark, capture, encapsulation), capture) as (out, run):
            yield out, run
        return
    feed, argv = secrets_first_argv(tshark, capture)
    log.debug("%s: its decryption secrets come before its interface; converting it "
              "through tshark's pcapng writer", capture)
    with run_tshark(argv, capture, feed=feed) as (out, run):
        yield out, run
