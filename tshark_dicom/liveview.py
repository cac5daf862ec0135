"""Watching an interface: each DICOM association told in a few lines as soon as it ends
(who called whom, how it ended, what it did, and its findings), while dumpcap captures
(livecapture.py) and, if asked, saves the packets for `analyze`.

The live view is the same analysis as `analyze`'s raw engine, fed as the packets come
(analysis.analyze_stream): what a finished association says here, it says in the tables.
What needs more than one association comes as soon as it is known: a C-MOVE's callbacks
and sub-operations when its association ended (analysis.py runs correlation's rules then:
qrpreview.py), again at the capture's end if correlation over everything says otherwise;
the capture's own findings (unanswered connections, devices, copies of one object) at the
end. Objects and TLS need the file: `watch` saves
it (``save``), and ``tshark-dicom watch -o OUT`` analyses it into OUT when the capture ends.
Memory stays flat however long the watch: an association is told, then forgotten (a
C-MOVE's, once no retrieval is in progress: analysis._Run._release).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from .analysis import analyze_stream
from .captureresult import FinishedAssociation
from .errors import OptionsError
from .livecapture import LiveCapture
from .qrpreview import RETRIEVES
from .records import FindingRecord, endpoint_text
from .safe import visible
from .schemas import SEVERITIES
from .streams import ConnectionAttempt
from .tables import association_row
from .tshark import find_tshark
from .units import fmt_bytes


def by_severity(findings: Iterable[FindingRecord]) -> tuple[FindingRecord, ...]:
    """Findings in the order a person reads them: errors, warnings, notes."""
    return tuple(sorted(findings, key=lambda f: SEVERITIES.index(f.severity)))


@dataclass(frozen=True)
class WatchedAssociation:
    """One association as the live view tells it; ``findings`` are those known when it
    ended, or (``later``) those only the capture's end could give it."""

    stream: int
    calling_ae: str | None
    called_ae: str | None
    requestor: str
    acceptor: str
    requested_ns: int | None
    ended_ns: int | None
    result: str
    ending: str
    why: str | None  # reject_text or abort_text
    #: per DIMSE command (C-STORE, C-FIND...): operations, failed, with a warning
    operations: tuple[tuple[str, int, int, int], ...]
    bytes: int
    findings: tuple[FindingRecord, ...]
    later: bool = False
    #: with ``later``: ``findings`` are all of its findings now, replacing those told when
    #: it ended (one was reworded or withdrawn once its C-MOVE's outcome was known)
    revised: bool = False
    #: the capture was saved: its Wireshark filter (``tcp.stream eq N``) finds it there
    saved: bool = False
    #: with ``later``: what gave the findings (None: the capture's end; else the C-MOVE or
    #: C-GET whose association ended, as "the C-MOVE's end"), and when (its end)
    at: str | None = None
    at_ns: int | None = None

    @property
    def told_ns(self) -> int | None:
        """When what is told became known: the association's end, or (``later``) the
        C-MOVE's or the capture's."""
        return self.at_ns if self.at_ns is not None else self.ended_ns

    def lines(self) -> list[str]:
        """The association's head line and its findings, most severe first; text from
        the traffic made visible (safe.visible: no control characters reach a terminal)."""
        who = f"{self.calling_ae or '?'} -> {self.called_ae or '?'}"
        if self.later:
            at = self.at or "the capture's end"
            head = f"{_clock(self.told_ns)}  at {at}, {who}" + (
                f" (tcp.stream eq {self.stream})" if self.saved else "") + (
                ", its findings now:" if self.revised else ", more findings:")
            return [visible(head), *(finding_line(f) for f in self.findings)]
        # accepted: how it ended; else what became of the request (a rejection ends it)
        state = self.ending if self.result == "accepted" else \
            self.result if self.result == "rejected" else f"{self.result}, {self.ending}"
        if self.why:
            state += f" ({self.why})"
        seconds = (self.ended_ns - self.requested_ns) / 1e9 \
            if self.ended_ns is not None and self.requested_ns is not None else None
        did = ", ".join(f"{command} {n}" + "".join(
            f" ({k} {what})" for k, what in ((failed, "failed"), (warned, "with warnings"))
            if k) for command, n, failed, warned in self.operations)
        head = (f"{_clock(self.requested_ns)}  {who} ({self.requestor} -> {self.acceptor}), "
                f"{state}" + (f", {seconds:.2f} s" if seconds is not None else "")
                + (f": {did}" if did else "") + (f", {fmt_bytes(self.bytes)}" if self.bytes else "")
                + (f"; tcp.stream eq {self.stream}" if self.saved else ""))
        return [visible(head), *(finding_line(f) for f in self.findings)]

    def as_json(self) -> dict[str, object]:
        """The association as one JSON Lines record (``watch --json``): ``event``
        ``association`` when it ended, ``findings`` when a C-MOVE's or C-GET's end
        (``when``: ``retrieve-ended``) or the capture's end (``capture-ended``) added
        findings (``revised``: they replace those said before)."""
        who = {"tcp_stream": self.stream, "calling_ae": self.calling_ae,
               "called_ae": self.called_ae, "requestor": self.requestor,
               "acceptor": self.acceptor, "requested": iso_time(self.requested_ns)}
        findings = [finding_json(f) for f in self.findings]
        if self.later:
            return {"event": "findings", "time": iso_time(self.told_ns),
                "when": "retrieve-ended" if self.at else "capture-ended",
                "revised": self.revised, **who, "findings": findings}
        seconds = (self.ended_ns - self.requested_ns) / 1e9 \
            if self.ended_ns is not None and self.requested_ns is not None else None
        return {"event": "association", "time": iso_time(self.ended_ns), **who,
                "result": self.result, "ending": self.ending, "why": self.why,
                "seconds": round(seconds, 6) if seconds is not None else None,
                "operations": [{"command": c, "count": n, "failed": failed,
                                "warnings": warned}
                               for c, n, failed, warned in self.operations],
                "bytes": self.bytes, "findings": findings}


@dataclass(frozen=True)
class WatchedAttempt:
    """A connection to a DICOM service that never opened, told as soon as it ended: refused
    (the server's RST: nothing listened), or unanswered (SYNs without a reply; told when
    the client tried again on a new connection, having waited a second or more, else at
    the capture's end, when it is known that no reply came)."""

    stream: int
    client: str
    server: str
    called_ae: str | None  # the AE title last called there, if any was
    first_ns: int
    outcome: str  # refused | unanswered
    syns: int
    saved: bool = False

    def lines(self) -> list[str]:
        what = "connection refused (TCP RST)" if self.outcome == "refused" else \
            "connection never answered"
        who = f" ({self.called_ae})" if self.called_ae else ""
        return [visible(f"{_clock(self.first_ns)}  {self.client} -> {self.server}{who}: {what}, "
                        f"{self.syns} SYN{'' if self.syns == 1 else 's'}"
                        + (f"; tcp.stream eq {self.stream}" if self.saved else ""))]

    def as_json(self) -> dict[str, object]:
        return {"event": "connection-" + self.outcome, "time": iso_time(self.first_ns),
                "tcp_stream": self.stream, "client": self.client, "server": self.server,
                "called_ae": self.called_ae, "syns": self.syns}


def finding_json(f: FindingRecord) -> dict[str, object]:
    return {"severity": f.severity, "code": f.code, "summary": f.summary, "frame": f.frame}


def iso_time(ns: int | None) -> str | None:
    """UTC, to the millisecond, as log collectors take it: 2026-12-08T01:23:45.678Z."""
    if ns is None:
        return None
    whole, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + \
        f".{frac // 1_000_000:03d}Z"


@dataclass
class Interval:
    """What was told over one stretch of a watch (``watch --every``): a heartbeat for a
    monitoring job, that says it still watches and how the traffic goes. Counted from
    what was told: associations as they ended (by how: rejected, aborted), their
    operations and the failed ones, their bytes, refused or unanswered connections, and
    the findings told in the stretch (those a C-MOVE's end added too) by severity."""

    seconds: float
    associations: int = 0
    rejected: int = 0
    aborted: int = 0
    operations: int = 0
    failed: int = 0
    bytes: int = 0
    unopened: int = 0
    findings: Counter[str] = field(default_factory=Counter)

    def add(self, told: WatchedAssociation | WatchedAttempt) -> None:
        if isinstance(told, WatchedAttempt):
            self.unopened += 1
            return
        self.findings.update(f.severity for f in told.findings)
        if told.later:
            return
        self.associations += 1
        self.rejected += told.result == "rejected"
        self.aborted += told.ending == "aborted"
        self.operations += sum(n for _, n, _, _ in told.operations)
        self.failed += sum(k for _, _, k, _ in told.operations)
        self.bytes += told.bytes

    def line(self, now_ns: int) -> str:
        how = ", ".join(f"{n} {what}" for n, what in ((self.rejected, "rejected"),
                                                       (self.aborted, "aborted")) if n)
        found = ", ".join(f"{self.findings[s]} {s}{'' if self.findings[s] == 1 else 's'}"
                          for s in SEVERITIES if self.findings[s])
        return (f"{_clock(now_ns)}  the last {self.seconds:g} s: {self.associations} "
                f"association{'' if self.associations == 1 else 's'}"
                + (f" ({how})" if how else "")
                + f", {self.operations} operation{'' if self.operations == 1 else 's'}"
                + (f" ({self.failed} failed)" if self.failed else "")
                + (f", {fmt_bytes(self.bytes)}" if self.bytes else "")
                + (f", {self.unopened} connection{'' if self.unopened == 1 else 's'} "
                   "never opened" if self.unopened else "")
                + f"; findings: {found or 'none'}")

    def as_json(self, now_ns: int) -> dict[str, object]:
        return {"event": "interval", "time": iso_time(now_ns), "seconds": self.seconds,
                "associations": self.associations, "rejected": self.rejected,
                "aborted": self.aborted, "operations": self.operations,
                "failed": self.failed, "bytes": self.bytes, "unopened": self.unopened,
                **{f"{s}s": self.findings[s] for s in SEVERITIES}}


def finding_line(f: FindingRecord, indent: str = "    ") -> str:
    """One finding as the live view prints it."""
    frame = f" (frame {f.frame})" if f.frame is not None else ""
    return visible(f"{indent}{f.severity}: [{f.code}] {f.summary}{frame}")


def _clock(ns: int | None) -> str:
    if ns is None:
        return "--:--:--.---"
    whole, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%H:%M:%S", time.localtime(whole)) + f".{frac // 1_000_000:03d}"


def _endpoint(ip: str | None, port: int | None) -> str:
    return "?" if ip is None or port is None else endpoint_text((ip, port))


def told(done: FinishedAssociation, label: str, saved: bool = False) -> WatchedAssociation:
    """What the live view says of an association analysed to its end (``saved``: in a
    capture file, where its stream number finds it)."""
    a = done.assoc
    row = association_row(label, a.stream, a)
    counts: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    warned: Counter[str] = Counter()
    for op in done.ops:
        counts[op.command] += 1
        if op.status_category == "Failure" or op.failed:
            failed[op.command] += 1
        elif op.status_category == "Warning" or op.warning:
            warned[op.command] += 1
    return WatchedAssociation(
        a.stream, row["calling_ae"], row["called_ae"],
        _endpoint(row["requestor_ip"], row["requestor_port"]),
        _endpoint(row["acceptor_ip"], row["acceptor_port"]),
        row["requested_at"], row["ended_at"] if row["ended_at"] is not None else a.last_ns,
        str(row["result"]), str(row["ending"]), row["reject_text"] or row["abort_text"],
        tuple((c, n, failed[c], warned[c]) for c, n in counts.items()),
        int(row["bytes_requestor"] or 0) + int(row["bytes_acceptor"] or 0),
        by_severity(a.findings), saved=saved)


class Teller:
    """Tells each association as soon as it is analysed on its own (`settled`), and again
    each time its findings change: when a C-MOVE or C-GET it took part in ended, what
    correlation says then (`previewed`: the C-MOVE's callbacks refused, unanswered or
    rejected, its sub-operations failed), and at the capture's end (`handed_on`; correlation
    keeps those associations until then): ``later``, with the findings added, or
    ``revised``, with all of them where one told before was reworded or withdrawn. The told
    findings are remembered only while correlation keeps the association (flat memory)."""

    def __init__(self, label: str, saved: bool,
                 on_association: Callable[[WatchedAssociation], None] | None) -> None:
        self.label = label
        self.saved = saved
        self.on_association = on_association
        self.said: dict[int, Counter[tuple[str, str]]] = {}

    def settled(self, done: FinishedAssociation) -> None:
        self.said[done.assoc.stream] = Counter((f.code, f.summary) for f in done.assoc.findings)
        if self.on_association is not None:
            self.on_association(told(done, self.label, self.saved))

    def previewed(self, mover: FinishedAssociation,
                  said: list[tuple[FinishedAssociation, list[FindingRecord]]]) -> None:
        commands = {op.command for op in mover.ops} & set(RETRIEVES)
        at = f"the {' and '.join(sorted(commands))}'s end"
        at_ns = mover.assoc.last_ns
        for done, findings in said:
            self._tell(done, findings, at, at_ns, keep=True)

    def handed_on(self, done: FinishedAssociation) -> None:
        self._tell(done, done.assoc.findings, None, None, keep=False)

    def _tell(self, done: FinishedAssociation, findings: list[FindingRecord], at: str | None,
              at_ns: int | None, keep: bool) -> None:
        stream = done.assoc.stream
        before = self.said.get(stream) if keep else self.said.pop(stream, None)
        if before is None or self.on_association is None:
            return
        now = Counter((f.code, f.summary) for f in findings)
        if now == before:
            return
        if keep:
            self.said[stream] = now
        revised = bool(before - now)
        added = now - before
        shown = [f for f in findings if revised or added[(f.code, f.summary)]]
        self.on_association(replace(
            told(done, self.label, self.saved), later=True, revised=revised,
            findings=by_severity(shown), at=at, at_ns=at_ns))


@dataclass
class Watched:
    """What a watch saw, when its capture ended."""

    interface: str
    #: the capture file dumpcap's packets were saved to (None: not saved); with a ring
    #: buffer, the name its files are numbered from
    saved: Path | None
    #: the files that hold the saved packets, in order: ``saved`` itself, or the ring
    #: buffer's (NAME_NNNNN_YYYYMMDDhhmmss.pcap: `analyze` reads them as one capture)
    saved_files: list[Path] = field(default_factory=list)
    #: packets read (dumpcap's), and dumpcap's own counts: packets the interface received,
    #: and those dropped before they were written (the kernel's buffer was full): the
    #: analysis never saw those, and says so in ``findings``
    packets: int = 0
    received: int | None = None
    dropped: int | None = None
    associations: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    #: True when `watch` was stopped (``stop``), False when its duration or packet count
    #: ended it
    stopped: bool = False
    #: the findings that belong to no association (refused connections, devices...) and
    #: those an association was given only at the capture's end, most severe first
    findings: list[FindingRecord] = field(default_factory=list)
    elapsed_s: float = 0.0

    def as_json(self, source: str) -> dict[str, object]:
        """The watch's end as one JSON Lines record (``event`` ``end``)."""
        return {"event": "end", "time": iso_time(self.last_ns), "source": source,
                "first": iso_time(self.first_ns), "packets": self.packets,
                "received": self.received, "dropped": self.dropped,
                "associations": self.associations, "stopped": self.stopped,
                "seconds": round(self.elapsed_s, 3),
                "saved": [str(p) for p in self.saved_files],
                "findings": [finding_json(f) for f in self.findings]}


def watch(interface: str, *, save: str | os.PathLike[str] | None = None,
          capture_filter: str | None = None, duration: float | None = None,
          packets: int | None = None, ports: Sequence[int] = (), tshark: str | None = None,
          on_association: Callable[[WatchedAssociation], None] | None = None,
          stop: threading.Event | None = None,
          on_start: Callable[[], None] | None = None,
          on_attempt: Callable[[WatchedAttempt], None] | None = None,
          file_size_mb: int | None = None, files: int | None = None) -> Watched:
    """Capture on ``interface`` (dumpcap: any interface it lists, ``any`` for all; ``-``:
    a pcap or pcapng stream on standard input, such as ``ssh host tcpdump -U -w -``) and
    analyse as the packets come: ``on_association`` hears of each DICOM association as
    soon as it ended (`WatchedAssociation`), and of the findings an association was given
    at the capture's end (``later``). The capture ends after ``duration`` seconds or
    ``packets`` packets, or when ``stop`` is set (from another thread, or a signal
    handler: the command line's Ctrl-C); every packet captured until then is analysed.

    ``save``: a pcap file that receives the packets exactly as dumpcap wrote them (the
    tables, objects and TLS of `analyze` come from it). ``capture_filter``: a BPF filter
    for dumpcap (``"tcp port 104"``). ``ports``: as `analyze`'s ``--port``. ``on_start``:
    called once dumpcap captures (it wrote its stream's header). ``on_attempt``: each
    connection to a DICOM service that never opened (`WatchedAttempt`). ``file_size_mb``:
    ``save`` becomes a set of files of about this size (dumpcap's ring buffer:
    SAVE_NNNNN_YYYYMMDDhhmmss.pcap), ``files``: only the newest that many are kept (the
    disk a days-long watch takes is bounded)."""
    for port in ports:
        if not 0 < port < 65536:
            raise OptionsError(f"--port {port}: not a TCP port (1-65535)")
    started = time.monotonic()
    tsk = find_tshark(tshark)
    path = Path(save) if save is not None else None
    capture = LiveCapture(tsk, interface, capture_filter=capture_filter, duration=duration,
                          packets=packets, save=path, file_size_mb=file_size_mb, files=files)
    label = str(path) if path is not None else capture.name
    watched = Watched(interface, path)
    # one file, whose stream numbers are the live view's: Wireshark's filter finds them
    # there (a ring's files each number their own, and its oldest are gone)
    one_file = path is not None and not capture.ringed
    teller = Teller(label, one_file, on_association)

    def attempted(a: ConnectionAttempt, called_ae: str | None) -> None:
        if on_attempt is not None:
            on_attempt(WatchedAttempt(a.tcp_stream, endpoint_text(a.client),
                                      endpoint_text(a.server), called_ae, a.first_ns,
                                      a.outcome, a.syns, one_file))

    ended = threading.Event()
    with capture:
        assert capture.stream is not None
        if on_start is not None:
            on_start()
        if stop is not None:
            def stopper() -> None:
                while not ended.is_set():
                    if stop.wait(0.1):
                        capture.stop()
                        return
            threading.Thread(target=stopper, daemon=True).start()
        try:
            result = analyze_stream(capture.stream, label=label, tshark=tsk, ports=ports,
                                    on_association=teller.handed_on,
                                    on_settled=teller.settled, on_attempt=attempted,
                                    on_previewed=teller.previewed)
        finally:
            ended.set()
    watched.saved_files = capture.saved_files
    watched.packets = result.records or 0
    watched.received, watched.dropped = capture.received, capture.dropped
    watched.associations = len(result.streams)
    watched.first_ns, watched.last_ns = result.first_ns, result.last_ns
    watched.stopped = capture.stopped
    findings = [f for _, f in result.findings]
    if capture.truncated:
        findings.append(FindingRecord(
            None, None, "warning", "capture-truncated",
            f"{capture.name} was cut short in the middle of a packet; everything before that "
            "point was analysed"))
    if capture.dropped:
        findings.append(FindingRecord(
            None, None, "warning", "capture-dropped",
            f"dumpcap dropped {capture.dropped} of the {capture.received} packets "
            f"{capture.name} received (its buffer was full): the associations they belonged "
            "to have capture gaps; capture with a filter (-f 'tcp port 104') or a larger "
            "buffer"))
    watched.findings = list(by_severity(findings))
    watched.elapsed_s = time.monotonic() - started
    return watched
