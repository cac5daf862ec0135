"""One capture, end to end: tshark passes -> TCP connections -> associations -> records.

This is the streaming core every output is built on: packets flow through once, each
connection's state lives only while its packets do, and data sets flow to disk.
"""

from __future__ import annotations

import bisect
import logging
import os
import resource
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .association import Association, FindingRecord
from .correlate import MoveLinks, correlate
from .crosscheck import crosscheck
from .errors import OptionsError
from .findings import (
    QrContext,
    TimingContext,
    association_per_object,
    qr_findings,
    timing_findings,
)
from .objects import ObjectSink, infer_transfer_syntax, safe_object_name
from .packets import (
    CaptureStats,
    Packet,
    TcpStreamNumbers,
    UnsupportedLinkType,
    epoch_ns,
    read_packets,
    read_raw_packets,
)
from .queries import KeyRecord, QueryRecord, build_queries
from .streams import ConnectionAttempt, TcpConnection, failed_attempt
from .tcpevidence import ConnectionEvidence, TcpObserver
from .timing import AssociationTiming, OperationRecord, association_timing, build_operations
from .tls import TlsOptions, looks_like_tls
from .tlsassoc import tls_streams_ek, with_tls
from .tshark import (
    Tshark,
    check_capture,
    find_streams_argv,
    packets_argv,
    raw_argv,
    run_tshark,
)

log = logging.getLogger(__name__)

#: Which data sets become Part-10 files (SPEC: C-STORE, including C-GET/C-MOVE sub-operations).
FILE_COMMANDS = frozenset({"C-STORE-RQ"})
#: Whose data sets (query/retrieve identifiers) are kept for queries.py to decode, up to
#: IDENTIFIER_MAX bytes each.
IDENTIFIER_COMMANDS = frozenset({"C-FIND-RQ", "C-FIND-RSP", "C-MOVE-RQ", "C-MOVE-RSP",
                                 "C-GET-RQ", "C-GET-RSP"})
IDENTIFIER_MAX = 1 << 20


@dataclass
class FileStats:
    """One file of a capture (set), as the raw reader saw it."""

    label: str
    records: int
    first_ns: int | None
    last_ns: int | None
    link_type: int | None
    truncated: bool


@dataclass
class CaptureResult:
    """Everything one capture gave: its associations (DICOM only, in first-packet order)
    and the findings that belong to no association."""

    capture: str
    associations: list[Association]
    findings: list[FindingRecord] = field(default_factory=list)
    packets: int = 0
    payload_bytes: int = 0
    #: each file of the capture (several for a ring-buffer set) and, for a set, each
    #: association's file (the one its first packet is in)
    files: list[FileStats] = field(default_factory=list)
    assoc_labels: list[str] | None = None
    #: the whole capture, every record (raw engine; capinfos for the ek engine)
    records: int | None = None
    first_ns: int | None = None
    last_ns: int | None = None
    link_type: str | None = None
    elapsed_s: float = 0.0
    truncated: bool = False
    engine: str = ""
    #: per association, in the same order: its operations, timing and TCP evidence
    operations: list[list[OperationRecord]] = field(default_factory=list)
    timings: list[AssociationTiming] = field(default_factory=list)
    evidence: list[ConnectionEvidence | None] = field(default_factory=list)
    attempts: list[ConnectionAttempt] = field(default_factory=list)
    #: per association: its queries and their keys (op_index, key)
    queries: list[list[QueryRecord]] = field(default_factory=list)
    query_keys: list[list[tuple[int, KeyRecord]]] = field(default_factory=list)
    links: list[MoveLinks] = field(default_factory=list)


ProgressFn = Callable[[int], None]
ENGINES = ("auto", "raw", "ek")


class _Run:
    """The state of one capture's analysis: live connections, finished associations."""

    def __init__(self, result: CaptureResult, ports: frozenset[int], objects_dir: Path | None,
                 provisional: dict[int, int], decide: bool) -> None:
        self.result = result
        self.ports = ports
        self.objects_dir = objects_dir
        self.provisional = provisional
        self.decide = decide  # raw engine: drop streams that turn out not to be DICOM
        self.assocs: dict[int, Association] = {}
        self.conns: dict[int, TcpConnection] = {}
        self.done: set[int] = set()  # streams finished, or not DICOM: their packets skipped
        self.evidence: dict[int, ConnectionEvidence] = {}
        self.attempts: list[ConnectionAttempt] = []
        self.snaplen_cut = 0
        self.first_cut_frame: int | None = None
        #: streams that open with a TLS ClientHello: tcp.stream -> the server's endpoint
        self.tls_seen: dict[int, tuple[str, int]] = {}

    def dataset_sink(self, *, stream: int, msg_index: int, command: str,
                     sop_class_uid: str | None, sop_instance_uid: str | None,
                     transfer_syntax: str | None, source_ae: str | None) -> ObjectSink:
        write = self.objects_dir is not None and command in FILE_COMMANDS
        number = self.provisional.setdefault(stream, len(self.provisional))
        return ObjectSink(
            self.objects_dir if write else None,
            safe_object_name(sop_instance_uid, number, msg_index),
            sop_class_uid=sop_class_uid, sop_instance_uid=sop_instance_uid,
            transfer_syntax=transfer_syntax, source_ae=source_ae,
            keep=IDENTIFIER_MAX if command in IDENTIFIER_COMMANDS else 0)

    def consume(self, packets: Iterator[Packet], progress: ProgressFn | None) -> None:
        """The hot loop: every packet of the capture (raw) or of its DICOM streams (ek)."""
        result, conns, assocs, decide = self.result, self.conns, self.assocs, self.decide
        count = result.packets
        payload_bytes = result.payload_bytes
        for pkt in packets:
            count += 1
            stream = pkt.stream
            conn = conns.get(stream)
            if conn is None:
                if stream in self.done:
                    continue
                assoc = Association(stream, ports=self.ports, dataset_sink=self.dataset_sink,
                                    guess_transfer_syntax=infer_transfer_syntax)
                assocs[stream] = assoc
                conn = conns[stream] = TcpConnection(stream, assoc.sink_for, TcpObserver())
                assoc.note_packet(pkt)
            else:
                assoc = assocs[stream]
                assoc.last_frame, assoc.last_ns = pkt.frame, pkt.time_ns
            tcp_len = pkt.tcp_len
            if tcp_len > len(pkt.payload):
                self.snaplen_cut += 1
                self.first_cut_frame = self.first_cut_frame or pkt.frame
            payload_bytes += tcp_len
            conn.feed(pkt)
            if decide and not assoc.saw_rq and assoc.not_dicom:
                if looks_like_tls(pkt.payload):
                    self.tls_seen[stream] = (pkt.dst, pkt.dport)
                self.done.add(stream)
                del conns[stream], assocs[stream]
            elif pkt.flags & 0x05 and conn.closed:  # FIN or RST: perhaps both sides done
                self._finish(stream)
            if progress is not None and not count & 0xFFF:
                progress(count)
        result.packets, result.payload_bytes = count, payload_bytes

    def _finish(self, stream: int) -> None:
        conn = self.conns.pop(stream)
        assoc = self.assocs[stream]
        self.done.add(stream)
        conn.finish()
        if isinstance(conn.observer, TcpObserver):
            self.evidence[stream] = conn.observer.finish(conn.last_time_ns)
        for endpoint, half in conn.halves.items():
            role = assoc.role_of(endpoint)
            assoc.tcp_retransmitted[role] += half.stats.retransmitted_bytes
            assoc.tcp_out_of_order[role] += half.stats.out_of_order
        assoc.finish()
        if not assoc.is_dicom:
            del self.assocs[stream]
            self.evidence.pop(stream, None)
            attempt = failed_attempt(conn)
            if attempt is not None:
                self.attempts.append(attempt)

    def finish(self) -> list[Association]:
        for stream in list(self.conns):
            self._finish(stream)
        return [a for a in sorted(self.assocs.values(), key=lambda a: a.stream) if a.is_dicom]


def analyze_capture(
    path: Path,
    *,
    label: str,
    more: Sequence[tuple[Path, str]] = (),
    tshark: Tshark,
    ports: Sequence[int] = (),
    objects_dir: Path | None = None,
    cross_check: bool = False,
    engine: str = "auto",
    progress: ProgressFn | None = None,
    tls: TlsOptions | None = None,
) -> CaptureResult:
    """Analyse one capture file; ``objects_dir`` (if given) receives its Part-10 files.

    Engines: ``raw`` has tshark convert the capture to a pcap stream and reads link, IP and
    TCP headers itself (fast: no per-field output); ``ek`` has tshark dissect and select
    the DICOM streams in two passes and reads its ``-T ek`` JSON; ``auto`` is raw where
    the link type allows, else ek.

    ``more``: the following files (path, label) of a ring-buffer or split set, read as one
    continuous capture with ``path`` (raw engine): associations and objects that cross
    file boundaries are whole, frame numbers count through the set, and each
    association's rows carry the label of the file its first packet is in.

    ``tls``: key logs and DICOM TLS ports; TLS streams are decrypted by a tshark pass of
    their own and analysed like clear ones (tlsassoc.py).
    """
    started = time.monotonic()
    check_capture(tshark, path)
    for extra, _ in more:
        check_capture(tshark, extra)
    result = CaptureResult(label, [])
    portset = frozenset(ports)
    run: _Run | None = None
    if engine in ("auto", "raw"):
        run = _Run(result, portset, objects_dir, {}, decide=True)
        try:
            if more:
                run.consume(_set_packets(tshark, [(path, label), *more], run, result),
                            progress)
            else:  # one file: no generator in between (every packet passes here)
                stats = CaptureStats()
                with run_tshark(raw_argv(tshark, path), path) as (out, tsk):
                    run.consume(read_raw_packets(out, skip=run.done.__contains__,
                                                 stats=stats), progress)
                result.truncated = tsk.truncated
                result.files.append(FileStats(label, stats.records, stats.first_ns,
                                              stats.last_ns, stats.link_type, tsk.truncated))
            result.engine = "raw"
            first = result.files[0]
            result.records, result.first_ns = sum(f.records for f in result.files), \
                first.first_ns
            result.last_ns = result.files[-1].last_ns
            result.link_type = LINK_TYPES.get(first.link_type or -1, str(first.link_type))
        except UnsupportedLinkType as exc:
            if more:
                raise OptionsError(f"{path}: a set of captures whose link type the raw engine "
                                   f"cannot read ({exc}): use --no-stitch") from None
            if engine == "raw":
                raise OptionsError(f"{path}: --engine raw cannot read it ({exc}); "
                                   "use --engine ek") from None
            log.debug("%s: %s, using the ek engine", label, exc)
            run = None
    if run is None:
        with run_tshark(find_streams_argv(tshark, path, ports), path) as (out, tsk):
            candidates = sorted({int(tok) for tok in out.read().split() if tok.isdigit()})
        result.truncated = tsk.truncated
        result.engine = "ek"
        _capinfos(tshark, path, result)
        run = _Run(result, portset, objects_dir,
                   {stream: i for i, stream in enumerate(candidates)}, decide=False)
        if candidates:
            with run_tshark(packets_argv(tshark, path, candidates), path) as (out, tsk):
                run.consume(read_packets(out), progress)
        run.tls_seen = tls_streams_ek(tshark, path, tls or TlsOptions())
    with_tls(tshark, path, label, tls or TlsOptions(), run.tls_seen, set_of_files=bool(more),
             ports=portset, dataset_sink=run.dataset_sink,
             guess_transfer_syntax=infer_transfer_syntax, associations=run.assocs,
             evidence=run.evidence, findings=result.findings)
    dicom = run.finish()
    if len(result.files) > 1:  # each association to the file its first packet is in
        starts = [f.first_ns if f.first_ns is not None else 0 for f in result.files]
        result.assoc_labels = [
            result.files[max(bisect.bisect_right(starts, a.first_ns) - 1, 0)].label
            for a in dicom]
    if result.truncated:
        result.findings.append(FindingRecord(
            None, None, "warning", "capture-truncated",
            f"{label} was cut short in the middle of a packet; everything before that point "
            "was analysed"))
    if run.snaplen_cut:
        result.findings.append(FindingRecord(
            None, run.first_cut_frame, "warning", "capture-snaplen",
            f"{run.snaplen_cut} DICOM packets in {label} were cut by the capture's snapshot "
            "length; their missing bytes are treated as capture gaps"))
    _settle_object_names(dicom, run.provisional, objects_dir)
    result.associations = dicom
    dicom_hosts = {ep[0] for a in dicom for ep in (a.requestor, a.acceptor) if ep}
    result.attempts = [t for t in run.attempts
                       if t.client[0] in dicom_hosts or t.server[0] in dicom_hosts]
    _timing(result, run.evidence)
    _query_retrieve(result)
    if not dicom:
        result.findings.append(_no_dicom(label, ports))
    elif cross_check:
        for aid, finding in crosscheck(tshark, path, label, dicom, ports):
            (dicom[aid].findings if aid is not None else result.findings).append(finding)
    result.elapsed_s = time.monotonic() - started
    log.debug("%s: %s engine, %d packets, %d associations in %.1f s (peak RSS %d MB)", label,
              result.engine, result.packets, len(dicom), result.elapsed_s,
              resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
    return result


#: pcap link types by name (as capinfos and Wireshark say them)
LINK_TYPES = {0: "null", 1: "ether", 12: "rawip", 14: "rawip", 101: "rawip", 108: "loop",
              113: "linux-sll", 228: "rawip4", 229: "rawip6", 276: "linux-sll2"}


def _set_packets(tshark: Tshark, files: Sequence[tuple[Path, str]], run: _Run,
                 result: CaptureResult) -> Iterator[Packet]:
    """The packets of one capture, or of the files of a set one after the other: one tshark
    conversion each, TCP stream numbers and frame numbers continued through the set."""
    numbers = TcpStreamNumbers()
    offset = 0
    for path, label in files:
        stats = CaptureStats()
        with run_tshark(raw_argv(tshark, path), path) as (out, tsk):
            yield from read_raw_packets(out, numbers=numbers, skip=run.done.__contains__,
                                        stats=stats, frame_offset=offset)
        offset += stats.records
        result.truncated = result.truncated or tsk.truncated
        result.files.append(FileStats(label, stats.records, stats.first_ns, stats.last_ns,
                                      stats.link_type, tsk.truncated))


def _capinfos(tshark: Tshark, path: Path, result: CaptureResult) -> None:
    """Packet count, first and last time and link type of the whole capture, for the ek
    engine (which sees only DICOM streams): Wireshark's capinfos reads them."""
    capinfos = Path(tshark.path).with_name("capinfos")
    if not capinfos.exists():
        return
    try:
        out = subprocess.run([str(capinfos), "-T", "-r", "-c", "-a", "-e", "-E", "-S", str(path)],
                             capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.SubprocessError):
        return
    fields = out.stdout.strip().split("\t")
    if len(fields) >= 5:
        result.link_type = fields[1] or None
        result.records = int(fields[2]) if fields[2].isdigit() else None
        try:
            result.first_ns, result.last_ns = epoch_ns(fields[3]), epoch_ns(fields[4])
        except ValueError:  # capinfos printed no times (an empty capture)
            pass




def _timing(result: CaptureResult, evidence: dict[int, ConnectionEvidence]) -> None:
    """Operations, their timing and attribution, and the timing findings."""
    contexts = []
    for assoc in result.associations:
        ev = evidence.get(assoc.stream)
        ops = build_operations(assoc)
        timing = association_timing(assoc, ops, ev)
        result.operations.append(ops)
        result.timings.append(timing)
        result.evidence.append(ev)
        context = TimingContext(assoc, ops, timing, ev)
        contexts.append(context)
        assoc.findings.extend(timing_findings(context))
    for index, finding in association_per_object(contexts):
        result.associations[index].findings.append(finding)


def _query_retrieve(result: CaptureResult) -> None:
    """Queries and their keys, C-MOVE/C-GET correlation, and the query/retrieve findings."""
    by_op: dict[tuple[int, int], QueryRecord] = {}
    for aid, (assoc, ops) in enumerate(zip(result.associations, result.operations,
                                           strict=True)):
        queries, keys = build_queries(assoc, ops)
        result.queries.append(queries)
        result.query_keys.append(keys)
        by_op.update(((aid, q.op_index), q) for q in queries)
    result.links = correlate(result.associations, result.operations, result.attempts)
    context = QrContext(result.associations, result.links, result.attempts, by_op)
    for aid, finding in qr_findings(context, result.operations):
        result.associations[aid].findings.append(finding)


def _settle_object_names(dicom: list[Association], provisional: dict[int, int],
                         objects_dir: Path | None) -> None:
    """File names carry the association number; if a candidate stream turned out not to be
    DICOM the numbers shift, and the few files concerned are renamed to match."""
    if objects_dir is None:
        return
    for assoc_id, assoc in enumerate(dicom):
        if provisional.get(assoc.stream) == assoc_id:
            continue
        for obj in assoc.objects:
            if obj.path:
                new = safe_object_name(obj.sop_instance_uid, assoc_id, obj.msg_index)
                os.replace(objects_dir / obj.path, objects_dir / new)
                obj.path = new


def _no_dicom(label: str, ports: Sequence[int]) -> FindingRecord:
    where = "on any port" + (f" (also tried port {', '.join(map(str, ports))})" if ports else "")
    return FindingRecord(
        None, None, "note", "no-dicom",
        f"no DICOM association found in {label} {where}: no TCP stream opens with an "
        "A-ASSOCIATE-RQ; use --port for captures that start mid-association, and --engine ek "
        "for traffic inside tunnels such as GRE or VXLAN")
