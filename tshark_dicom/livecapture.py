"""A live interface as a capture: Wireshark's dumpcap captures it and writes a pcap stream,
which the raw engine reads as it reads editcap's conversion of a file (packets.py).

    dumpcap -i IFACE -P -w - [-f FILTER] [-a duration:S] [-c N]  [| tee -i FILE]  -> us

With a ring buffer (``file_size_mb``, ``files``), tee copies into a pipe that a second
dumpcap reads (``dumpcap -i - -P -w FILE -b filesize:KB [-b files:N]``): Wireshark's own
ring buffer, files named FILE_NNNNN_YYYYMMDDhhmmss as `analyze` stitches them, the oldest
deleted; dumpcap writes its ring only to files, never to the pipe the analysis reads.

dumpcap is Wireshark's own capture engine (tshark captures through it too), the tool of
the suite that starts in milliseconds. It and tee run in a session of their own: a Ctrl-C
at the terminal reaches this process only, and `LiveCapture.stop` ends the capture the way
dumpcap's own Ctrl-C does (SIGTERM: it writes what it holds and exits 0), so the stream
ends cleanly and every packet captured is analysed and saved. A capture file saved with
``save`` is what dumpcap wrote, byte for byte (tee), never written by us.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import IO

from .errors import CaptureError, OptionsError, OutputError, TsharkNotFoundError
from .tshark import INSTALL_HINT, RING_NAME, Tool, Tshark, start_tool

log = logging.getLogger(__name__)

#: dumpcap's last words: "Packets received/dropped on interface 'lo': 8/0 (pcap:0/dumpcap:0/...)"
_COUNTS = re.compile(r"Packets received/dropped on interface '(?P<name>[^']*)': "
                     r"(?P<received>\d+)/(?P<dropped>\d+)")
#: the magic numbers of a pcap stream (micro- and nanosecond, either byte order), and of
#: a pcapng one (its Section Header Block)
_PCAP_MAGICS = frozenset({b"\xa1\xb2\xc3\xd4", b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\x3c\x4d",
                          b"\x4d\x3c\xb2\xa1"})
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
#: what the pump reads of standard input at a time
_PIPE_BYTES = 1 << 20


class LiveCapture:
    """dumpcap on one interface, its pcap stream readable from `stream` (a context
    manager: entering starts the capture, leaving waits for its tools and checks them).

    ``duration`` (seconds) and ``packets`` stop the capture by themselves (dumpcap's
    ``-a duration:`` and ``-c``); `stop` stops it at any time, from any thread or a
    signal handler. After the stream ended: ``received`` and ``dropped`` are dumpcap's
    counts (the kernel's and its own drops: packets the analysis never saw)."""

    def __init__(self, tshark: Tshark, interface: str, *, capture_filter: str | None = None,
                 duration: float | None = None, packets: int | None = None,
                 save: Path | None = None, input_fd: int = 0,
                 file_size_mb: int | None = None, files: int | None = None) -> None:
        self.from_input = interface == "-"
        if not interface or interface.startswith("-") and not self.from_input:
            raise OptionsError(f"{interface!r}: not an interface name")
        if duration is not None and duration <= 0:
            raise OptionsError(f"--duration {duration:g}: must be more than 0 seconds")
        if packets is not None and packets < 1:
            raise OptionsError(f"--packets {packets}: must be 1 or more")
        if self.from_input and capture_filter:
            raise OptionsError("--filter: a stream on standard input is filtered where it is "
                               "captured (tcpdump -w - 'tcp port 104')")
        if (file_size_mb is not None or files is not None) and save is None:
            raise OptionsError("--file-size, --files: the capture is saved in files only "
                               "with -w or -o")
        if files is not None and file_size_mb is None:
            raise OptionsError("--files: give --file-size too (when to start the next file)")
        if file_size_mb is not None and not 0 < file_size_mb <= 2_000_000:
            raise OptionsError(f"--file-size {file_size_mb}: from 1 to 2000000 MB")
        if files is not None and not 2 <= files <= 100_000:
            raise OptionsError(f"--files {files}: from 2 to 100000")
        dumpcap = tshark.beside("dumpcap")
        if dumpcap is None:
            raise TsharkNotFoundError(f"dumpcap not found beside {tshark.path}: {INSTALL_HINT}")
        self.dumpcap = dumpcap
        self.interface = interface
        self.save = save
        self.file_size_mb = file_size_mb
        self.files = files
        #: ring-buffer files that were there before the capture began (not ours)
        self._before: set[Path] = set()
        self.input_fd = input_fd
        self.editcap = tshark.editcap
        self.duration = duration
        self.packets = packets
        argv = [dumpcap, "-i", interface, "-P", "-w", "-"]
        if capture_filter:
            argv += ["-f", capture_filter]
        if duration is not None and not self.from_input:
            # dumpcap counts whole seconds; a fraction is rounded up, never to 0
            argv += ["-a", f"duration:{max(1, int(-(-duration // 1)))}"]
        if packets is not None:
            argv += ["-c", str(packets)]
        self.argv = argv
        self.received: int | None = None
        self.dropped: int | None = None
        #: the stream on standard input ended in the middle of a packet
        self.truncated = False
        #: the tools started, in order: the reader, then the ring's dumpcap, then tee
        self._tools: list[Tool] = []
        self._tee: Tool | None = None
        self._ring: Tool | None = None
        self._stopped = threading.Event()
        self._feed: IO[bytes] | None = None  # the first tool's input, from standard input
        self._feed_lock = threading.Lock()
        self.stream: IO[bytes] | None = None

    @property
    def name(self) -> str:
        """The interface, or "standard input"."""
        return "standard input" if self.from_input else self.interface

    @property
    def stopped(self) -> bool:
        """Whether `stop` was called (the capture did not end by itself)."""
        return self._stopped.is_set()

    @property
    def ringed(self) -> bool:
        """The packets are saved in a set of files (a ring buffer, or files of a size)."""
        return self.file_size_mb is not None

    @property
    def saved_files(self) -> list[Path]:
        """The files the packets were saved to, in the set's order (one without a ring)."""
        if self.save is None:
            return []
        if not self.ringed:
            return [self.save]
        return sorted(set(_ring_files(self.save)) - self._before)

    def __enter__(self) -> LiveCapture:
        if self.save is not None:  # refused now, not after a whole capture
            try:
                if self.ringed:  # dumpcap writes FILE_NNNNN_...: the folder must take files
                    self._before = set(_ring_files(self.save))
                    fd, probe = tempfile.mkstemp(dir=self.save.parent or ".",
                                                 prefix=f".{self.save.name}.")
                    os.close(fd)
                    os.unlink(probe)
                else:
                    self.save.open("wb").close()
            except OSError as exc:
                raise OutputError(f"{self.save}: cannot save the capture there: "
                                  f"{exc.strerror or exc}") from None
        try:
            if self.from_input:
                first = self._first_bytes()
                argv = self._input_argv(first)
                tool = self._start(argv, subprocess.PIPE)
                self._feed = tool.stdin
                pump = threading.Thread(target=self._pump, args=(first,), daemon=True)
                pump.start()
                if self.duration is not None:
                    timer = threading.Timer(self.duration, self.stop)
                    timer.daemon = True
                    timer.start()
            else:
                tool = self._start(self.argv, subprocess.DEVNULL)
            out = tool.stdout
            if self.save is not None:
                assert out is not None
                # -i: tee ignores SIGINT (a terminal's Ctrl-C), to copy all dumpcap writes
                if self.ringed:
                    ring = self._start_ring()
                    try:  # -p: were the ring's dumpcap to fail, the watch goes on (it says so)
                        tee = self._start(["tee", "-i", "-p", "--", f"/dev/fd/{ring}"], out,
                                          pass_fds=(ring,))
                    finally:
                        os.close(ring)
                else:
                    tee = self._start(["tee", "-i", "--", str(self.save)], out)
                self._tee = self._tools[-1]
                out.close()  # tee's input now: it ends when dumpcap exits
                out = tee.stdout
        except BaseException:
            self._kill()
            raise
        assert out is not None
        self.stream = out
        # dumpcap writes the pcap header as it starts capturing, or exits with its error
        peek = getattr(out, "peek", None)
        if callable(peek) and not peek(1):
            self._wait_checked()
        return self

    def _start_ring(self) -> int:
        """The second dumpcap, saving a ring buffer of what it reads on standard input;
        the descriptor that writes to it (for tee)."""
        assert self.save is not None and self.file_size_mb is not None
        read, write = os.pipe()
        argv = [self.dumpcap, "-i", "-", "-P", "-w", str(self.save),
                "-b", f"filesize:{self.file_size_mb * 1000}"]
        if self.files is not None:
            argv += ["-b", f"files:{self.files}"]
        try:
            self._start(argv, read)
        except BaseException:
            os.close(write)
            raise
        finally:
            os.close(read)
        self._ring = self._tools[-1]
        return write

    def _first_bytes(self) -> bytes:
        """The first bytes of standard input: enough to tell pcap from pcapng."""
        first = b""
        while len(first) < 4:
            chunk = os.read(self.input_fd, _PIPE_BYTES)
            if not chunk:
                raise CaptureError("standard input: no capture came (it ended empty)"
                                   if not first else "standard input: not a capture")
            first += chunk
        return first

    def _input_argv(self, first: bytes) -> list[str]:
        """Which tool of the suite reads standard input: dumpcap for a pcap stream (what
        ``tcpdump -w -`` and ``dumpcap -P -w -`` send; it hands each packet on as it
        comes), editcap for a pcapng stream (dumpcap would pass it on as pcapng, which the
        raw engine does not read). Only the magic number is looked at."""
        if first[:4] in _PCAP_MAGICS:
            return self.argv
        if first[:4] == _PCAPNG_MAGIC:
            if self.packets is not None:
                raise OptionsError("--packets: standard input holds a pcapng stream; send "
                                   "pcap (tcpdump -w -, dumpcap -P -w -) or leave it out")
            if self.editcap is None:
                raise TsharkNotFoundError(f"editcap not found beside dumpcap: {INSTALL_HINT}")
            return [self.editcap, "-F", "nsecpcap", "-", "-"]
        raise CaptureError("standard input: not a pcap or pcapng stream")

    def _pump(self, first: bytes) -> None:
        """Standard input to the tool that reads it, until it ends or `stop`."""
        chunk = first
        try:
            while chunk and not self._stopped.is_set():
                with self._feed_lock:
                    if self._feed is None:
                        return
                    self._feed.write(chunk)
                    self._feed.flush()
                chunk = os.read(self.input_fd, _PIPE_BYTES)
        except (OSError, ValueError):  # the tool ended first (a broken pipe), or was stopped
            pass
        finally:
            self._end_feed()

    def _end_feed(self) -> None:
        """The tool's input ends: it reads what it has, writes it, and exits."""
        with self._feed_lock:
            feed, self._feed = self._feed, None
        if feed is not None:
            try:
                feed.close()
            except OSError:
                pass

    def _start(self, argv: list[str], stdin: IO[bytes] | int,
               pass_fds: tuple[int, ...] = ()) -> subprocess.Popen[bytes]:
        tool = start_tool(argv, stdin, new_session=True, pass_fds=pass_fds)
        self._tools.append(tool)
        return tool.proc

    def stop(self) -> None:
        """End the capture as dumpcap's own Ctrl-C does: it writes what it captured and
        exits, and the stream ends. Safe from a signal handler and to call twice."""
        self._stopped.set()
        if self.from_input:
            # at the end of its input, as when the sender stops: it writes what it has
            threading.Thread(target=self._end_feed, daemon=True).start()
            return
        if self._tools and self._tools[0].proc.poll() is None:
            try:
                os.kill(self._tools[0].proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        if kind is not None:
            self._kill()
            if self.stream is not None:
                self.stream.close()
            return
        if self.stream is not None:
            self.stream.close()
        self._wait_checked()

    def _wait_checked(self) -> None:
        """Wait for dumpcap (and tee); an exit that was not the end of the capture is a
        one-line error naming the interface (or the file tee could not write)."""
        codes = [tool.proc.wait() for tool in self._tools]
        dumpcap_lines = self._tools[0].lines() if self._tools else []
        for line in dumpcap_lines:
            match = _COUNTS.search(line)
            if match:
                self.received = (self.received or 0) + int(match["received"])
                self.dropped = (self.dropped or 0) + int(match["dropped"])
        if any("cut short" in line for line in dumpcap_lines):
            self.truncated = True  # a sender that stopped mid-packet: not an error
        elif codes and codes[0] not in (0, -signal.SIGTERM):
            detail = _tool_error(self._tools[0].name, dumpcap_lines, codes[0])
            if detail.startswith("Invalid capture filter"):  # the user's words, not the host
                raise OptionsError(f"--filter: {detail}")
            if self.from_input:
                raise CaptureError(f"standard input: {detail}")
            raise CaptureError(f"cannot capture on {self.interface!r}: {detail}")
        tee, ring = self._tee, self._ring
        if ring is not None and ring.proc.returncode != 0:
            detail = _tool_error("dumpcap", ring.lines(), ring.proc.returncode)
            raise CaptureError(f"{self.save}: cannot save the capture there: {detail}")
        if tee is not None and tee.proc.returncode != 0:
            tee_lines = [line for line in tee.lines() if line.startswith("tee:")]
            detail = tee_lines[-1].removeprefix("tee: ") if tee_lines else \
                f"exit status {tee.proc.returncode}"
            raise CaptureError(f"{self.save}: cannot save the capture there: {detail}")

    def _kill(self) -> None:
        for tool in self._tools:
            proc = tool.proc
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


def _tool_error(tool: str, lines: list[str], code: int) -> str:
    """dumpcap's (or editcap's) reason, in one line: its ``dumpcap: ...`` line and the
    explanation after it ("(No such device exists)", "(unknown port 'x')"), else how it
    ended."""
    text = [line.strip() for line in lines if line.strip()]
    for i, line in enumerate(text):
        if line.startswith(f"{tool}: "):
            detail = line.removeprefix(f"{tool}: ").rstrip(".")
            why = next((t for t in text[i + 1:i + 3]
                        if t.startswith("(") or "isn't a valid" in t), None)
            if why is not None:
                detail += f" {why}" if why.startswith("(") else f": {why}"
            return detail
    if code < 0:
        try:
            return f"{tool} was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"{tool} was killed by signal {-code}"
    return f"{tool} exited with status {code}"


def _ring_files(save: Path) -> list[Path]:
    """dumpcap's ring-buffer files for ``-w save`` (tshark.RING_NAME)."""
    folder = save.parent
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return [folder / n for n in names if (m := RING_NAME.fullmatch(n)) is not None
            and (m["base"], m["ext"]) == (save.stem, save.suffix)]
