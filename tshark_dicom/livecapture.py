"""A live interface as a capture: Wireshark's dumpcap captures it and writes a pcap stream,
which the raw engine reads as it reads editcap's conversion of a file (packets.py).

    dumpcap -i IFACE -P -w - [-f FILTER] [-a duration:S] [-c N]  [| tee -i FILE]  -> us

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
import threading
from collections import deque
from pathlib import Path
from typing import IO

from .errors import CaptureError, OptionsError, OutputError, TsharkNotFoundError
from .tshark import INSTALL_HINT, Tshark

log = logging.getLogger(__name__)

#: dumpcap's last words: "Packets received/dropped on interface 'lo': 8/0 (pcap:0/dumpcap:0/...)"
_COUNTS = re.compile(r"Packets received/dropped on interface '(?P<name>[^']*)': "
                     r"(?P<received>\d+)/(?P<dropped>\d+)")
#: the pipe asked for dumpcap's output (as tshark.py's): bursts wait there, not in the kernel
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
                 save: Path | None = None) -> None:
        if not interface or interface.startswith("-"):
            raise OptionsError(f"{interface!r}: not an interface name")
        if duration is not None and duration <= 0:
            raise OptionsError(f"--duration {duration:g}: must be more than 0 seconds")
        if packets is not None and packets < 1:
            raise OptionsError(f"--packets {packets}: must be 1 or more")
        dumpcap = tshark.beside("dumpcap")
        if dumpcap is None:
            raise TsharkNotFoundError(f"dumpcap not found beside {tshark.path}: {INSTALL_HINT}")
        self.interface = interface
        self.save = save
        argv = [dumpcap, "-i", interface, "-P", "-w", "-"]
        if capture_filter:
            argv += ["-f", capture_filter]
        if duration is not None:
            # dumpcap counts whole seconds; a fraction is rounded up, never to 0
            argv += ["-a", f"duration:{max(1, int(-(-duration // 1)))}"]
        if packets is not None:
            argv += ["-c", str(packets)]
        self.argv = argv
        self.received: int | None = None
        self.dropped: int | None = None
        self._procs: list[subprocess.Popen[bytes]] = []
        self._errors: list[deque[str]] = []
        self._threads: list[threading.Thread] = []
        self._stopped = threading.Event()
        self.stream: IO[bytes] | None = None

    @property
    def stopped(self) -> bool:
        """Whether `stop` was called (the capture did not end by itself)."""
        return self._stopped.is_set()

    def __enter__(self) -> LiveCapture:
        if self.save is not None:  # refused now, not after a whole capture
            try:
                self.save.open("wb").close()
            except OSError as exc:
                raise OutputError(f"{self.save}: cannot save the capture there: "
                                  f"{exc.strerror or exc}") from None
        try:
            dumpcap = self._start(self.argv, subprocess.DEVNULL)
            out = dumpcap.stdout
            if self.save is not None:
                assert out is not None
                # -i: tee ignores SIGINT (a terminal's Ctrl-C), to copy all dumpcap writes
                tee = self._start(["tee", "-i", "--", str(self.save)], out)
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

    def _start(self, argv: list[str], stdin: IO[bytes] | int) -> subprocess.Popen[bytes]:
        log.debug("running %s", " ".join(argv))
        try:
            proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, bufsize=_PIPE_BYTES,
                                    start_new_session=True)
        except OSError as exc:
            raise TsharkNotFoundError(f"cannot run {argv[0]}: {exc.strerror}") from exc
        assert proc.stdout is not None and proc.stderr is not None
        try:
            import fcntl

            fcntl.fcntl(proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        except (ImportError, AttributeError, OSError, ValueError):
            pass
        lines: deque[str] = deque(maxlen=50)
        thread = threading.Thread(target=_drain, args=(proc.stderr, lines), daemon=True)
        thread.start()
        self._procs.append(proc)
        self._errors.append(lines)
        self._threads.append(thread)
        return proc

    def stop(self) -> None:
        """End the capture as dumpcap's own Ctrl-C does: it writes what it captured and
        exits, and the stream ends. Safe from a signal handler and to call twice."""
        self._stopped.set()
        if self._procs and self._procs[0].poll() is None:
            try:
                os.kill(self._procs[0].pid, signal.SIGTERM)
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
        codes = [proc.wait() for proc in self._procs]
        for thread in self._threads:
            thread.join(timeout=5)
        dumpcap_lines = list(self._errors[0]) if self._errors else []
        for line in dumpcap_lines:
            match = _COUNTS.search(line)
            if match:
                self.received = (self.received or 0) + int(match["received"])
                self.dropped = (self.dropped or 0) + int(match["dropped"])
        if codes and codes[0] not in (0, -signal.SIGTERM):
            detail = _dumpcap_error(dumpcap_lines, codes[0])
            if detail.startswith("Invalid capture filter"):  # the user's words, not the host
                raise OptionsError(f"--filter: {detail}")
            raise CaptureError(f"cannot capture on {self.interface!r}: {detail}")
        if len(codes) > 1 and codes[1] != 0:
            tee_lines = [line for line in self._errors[1] if line.startswith("tee:")]
            detail = tee_lines[-1].removeprefix("tee: ") if tee_lines else \
                f"exit status {codes[1]}"
            raise CaptureError(f"{self.save}: cannot save the capture there: {detail}")

    def _kill(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


def _drain(stream: IO[bytes], lines: deque[str]) -> None:
    for raw in stream:
        lines.append(raw.decode("utf-8", "replace").rstrip())
    stream.close()


def _dumpcap_error(lines: list[str], code: int) -> str:
    """dumpcap's reason, in one line: its ``dumpcap: ...`` line and the explanation after
    it ("(No such device exists)", "(unknown port 'x')"), else how it ended."""
    text = [line.strip() for line in lines if line.strip()]
    for i, line in enumerate(text):
        if line.startswith("dumpcap: "):
            detail = line.removeprefix("dumpcap: ").rstrip(".")
            why = next((t for t in text[i + 1:i + 3]
                        if t.startswith("(") or "isn't a valid" in t), None)
            if why is not None:
                detail += f" {why}" if why.startswith("(") else f": {why}"
            return detail
    if code < 0:
        try:
            return f"dumpcap was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"dumpcap was killed by signal {-code}"
    return f"dumpcap exited with status {code}"
