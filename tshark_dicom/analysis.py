"""One capture, end to end: tshark passes -> TCP connections -> associations -> records.

This is the streaming core every output is built on: packets flow through once, each
connection's state lives only while its packets do, and data sets flow to disk.
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from .aetitles import AeTitles
from .association import Association
from .asyncops import outstanding_findings
from .captureresult import (
    AssociationFn,
    AttemptFn,
    CaptureResult,
    FileStats,
    FinishedAssociation,
    PreviewFn,
    ProgressFn,
)
from .commitment import CommitmentLog, commitment_message, link_result
from .correlate import MoveLinks, correlate
from .crosscheck import crosscheck
from .datasethead import infer_transfer_syntax
from .demux import Totals, consume
from .errors import OptionsError, UnsupportedLinkType
from .findings import PerObjectTally, TimingContext, timing_findings
from .instances import StoredInstances
from .ledger import N_SERVICES, Ledger, kept_dataset
from .mpps import StepLog, step_message
from .objects import ObjectSink, safe_object_name
from .packets import (
    ACK,
    SYN,
    CaptureStats,
    Packet,
    TcpStreamNumbers,
    epoch_ns,
    read_packets,
    read_raw_packets,
)
from .qrfindings import (
    CharsetTally,
    QrContext,
    dicom_port,
    object_charset_findings,
    operation_cancelled,
    qr_findings,
    query_findings,
    unreachable_scps,
)
from .qrpreview import (
    RETRIEVES,
    Kept,
    preview,
    provisional_attempts,
    syn_only,
    waits_for,
    window_start,
)
from .records import FindingRecord, ObjectRecord
from .streams import ConnectionAttempt, TcpConnection, failed_attempt
from .tcpevidence import ConnectionEvidence, TcpObserver
from .timing import association_timing
from .tls import TlsOptions, looks_like_tls
from .tlsassoc import tls_streams_ek, with_tls
from .tshark import (
    CannotConvert,
    Tshark,
    capinfos_fields,
    check_capture,
    find_streams_argv,
    packets_argv,
    raw_conversion,
    run_tshark,
)

log = logging.getLogger(__name__)

#: Which data sets become Part-10 files (SPEC: C-STORE, including C-GET/C-MOVE sub-operations).
FILE_COMMANDS = frozenset({"C-STORE-RQ"})
#: A live view tells a connection whose SYNs went unanswered this long (ns) once its client
#: opens another to the same server (`_Run._given_up`): TCP's first retransmission timeout.
GIVEN_UP_NS = 1_000_000_000
#: Query/retrieve identifiers (ledger.kept_dataset) are kept for queries.py to decode, up
#: to IDENTIFIER_MAX bytes each; Storage Commitment and MPPS data sets, which list every
#: instance of a study (about 90 bytes each), up to N_SERVICE_MAX (some 90,000 instances).
IDENTIFIER_MAX = 1 << 20
N_SERVICE_MAX = 8 << 20


class _Run:
    """The state of one capture's analysis: live connections, and the few finished
    associations that query/retrieve correlation still needs (the rest are handed on)."""

    def __init__(self, result: CaptureResult, ports: frozenset[int], objects_dir: Path | None,
                 provisional: dict[int, int], decide: bool,
                 on_association: AssociationFn | None, keep_all: bool,
                 tls_ports: frozenset[int] = TlsOptions().dicom_ports,
                 on_settled: AssociationFn | None = None,
                 on_attempt: AttemptFn | None = None,
                 on_previewed: PreviewFn | None = None) -> None:
        self.result = result
        self.ports = ports
        self.objects_dir = objects_dir
        self.provisional = provisional
        self.decide = decide  # raw engine: drop streams that turn out not to be DICOM
        self.on_association = on_association
        #: hears of every association as soon as it is analysed on its own, before
        #: correlation may keep it to the capture's end (a live view: liveview.py)
        self.on_settled = on_settled
        #: hears of a connection that never opened, as soon as it ended, where it was to a
        #: DICOM port or to where DICOM was served before (a live view: liveview.py)
        self.on_attempt = on_attempt
        #: hears, as each C-MOVE or C-GET association ends, what correlation says of it
        #: so far (a live view: qrpreview.py)
        self.on_previewed = on_previewed
        #: C-MOVE and C-GET associations ended, whose preview waits for a connection still
        #: open that may be one of their callbacks
        self.previews: list[FinishedAssociation] = []
        self.ending = False  # the capture ended: correlation proper, no more previews
        #: a live view: kept associations are correlated and handed on between
        #: retrievals (`_release`), not all at the end
        self.release = on_previewed is not None
        #: connections told as never answered while still open (`_given_up`)
        self.told_attempts: set[int] = set()
        #: attempts linked to a C-MOVE by `_release`: tcp.stream -> (its stream, op_index)
        self.released_owners: dict[int, tuple[int, int]] = {}
        self.keep_all = keep_all  # --cross-check compares every association at the end
        self.tls_ports = tls_ports  # DICOM TLS ports: an A-ASSOCIATE-RQ in clear there fails
        self.assocs: dict[int, Association] = {}
        self.conns: dict[int, TcpConnection] = {}
        self.done: set[int] = set()  # streams finished, or not DICOM: their packets skipped
        self.attempts: list[ConnectionAttempt] = []
        self.snaplen_cut = 0
        self.first_cut_frame: int | None = None
        self.streams: list[int] = []  # every DICOM association's stream
        self.hosts: set[str] = set()  # every DICOM association's addresses
        #: every acceptor's address and port, with its called AE title (the last seen)
        self.services: dict[tuple[str, int], str | None] = {}
        self.kept: list[FinishedAssociation] = []  # C-MOVE/C-GET and callback candidates
        self.tally = PerObjectTally()
        self.stored = StoredInstances(objects_dir)  # what the C-STOREs carried (bounded)
        self.titles = AeTitles()  # which hosts used each AE title (bounded)
        self.commitments = CommitmentLog(self.stored)  # Storage Commitment, across associations
        self.steps = StepLog(self.stored)  # MPPS procedure steps, across associations
        self.destinations: set[str] = set()  # move destinations of C-MOVE-RQs seen
        #: open stream -> its records so far (long associations: see ledger.py)
        self.ledgers: dict[int, Ledger] = {}
        self.label: str | None = None  # the file being read (a set)
        self.labels: dict[int, str] = {}  # open stream -> file of its first packet (a set)
        #: streams that open with a TLS ClientHello: tcp.stream -> the server's endpoint
        self.tls_seen: dict[int, tuple[str, int]] = {}
        self.tls_clients: dict[int, str] = {}  # ... and the client's address (raw engine)

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
            keep=0 if not kept_dataset(command, sop_class_uid) else
            N_SERVICE_MAX if sop_class_uid in N_SERVICES else IDENTIFIER_MAX)

    def consume(self, packets: Iterator[Packet], progress: ProgressFn | None) -> None:
        """The hot loop (demux.py, compiled): every packet of the capture (raw) or of its
        DICOM streams (ek)."""
        result = self.result
        totals = Totals(result.packets, result.payload_bytes)
        try:
            consume(packets, self, self.conns, self.done, self.decide, totals, progress)
        finally:
            result.packets, result.payload_bytes = totals.packets, totals.payload_bytes
            self.snaplen_cut += totals.snaplen_cut
            self.first_cut_frame = self.first_cut_frame or totals.first_cut_frame or None

    # -- StreamOwner (demux.py) ------------------------------------------------------
    def open(self, pkt: Packet) -> TcpConnection:
        stream = pkt.stream
        if self.release and pkt.flags & SYN and not pkt.flags & ACK:
            self._given_up(pkt)
        assoc = Association(stream, ports=self.ports, dataset_sink=self.dataset_sink,
                            guess_transfer_syntax=infer_transfer_syntax,
                            tls_ports=self.tls_ports)
        self.assocs[stream] = assoc
        assoc.on_settle = self._settled
        conn = self.conns[stream] = TcpConnection(stream, assoc.sink_for, TcpObserver())
        assoc.note_packet(pkt)
        if self.label is not None:
            self.labels[stream] = self.label
        return conn

    def _given_up(self, syn: Packet) -> None:
        """A live view: a client that opens a new connection to a server whose answer it
        has waited for on another, SYNs unanswered for a second (TCP's first
        retransmission timeout) or more, has given up on that one (the SCU tries again):
        it is told as never answered now (on_attempt), not only when the capture ends.
        The connection itself stays open: were an answer to come after all, it is
        analysed as ever, and the end does not tell it again."""
        if self.on_attempt is None:
            return
        waited = [c for c in self.conns.values()
                  if c.server == (syn.dst, syn.dport) and c.client is not None
                  and c.client[0] == syn.src and c.stream not in self.told_attempts
                  and c.first_time_ns is not None
                  and c.first_time_ns <= syn.time_ns - GIVEN_UP_NS and syn_only(c)]
        for attempt in provisional_attempts(waited):
            if self._of_dicom(attempt):
                self.told_attempts.add(attempt.tcp_stream)
                self.on_attempt(attempt, self.services.get(attempt.server))

    def _of_dicom(self, attempt: ConnectionAttempt) -> bool:
        """An attempt the live view tells: to a DICOM port, or to where DICOM was served."""
        return attempt.server in self.services or dicom_port(attempt.server[1],
                                                             sorted(self.ports))

    def undecided(self, stream: int) -> bool:
        assoc = self.assocs[stream]
        return not (assoc.saw_rq or assoc.port_hinted)

    def drop(self, stream: int, pkt: Packet) -> bool:
        if not self.assocs[stream].not_dicom:
            return False
        if looks_like_tls(pkt.payload):
            self.tls_seen[stream] = (pkt.dst, pkt.dport)
            self.tls_clients[stream] = pkt.src
        self.done.add(stream)
        del self.conns[stream], self.assocs[stream]
        self.ledgers.pop(stream, None)
        self.labels.pop(stream, None)
        return True

    def ended(self, stream: int) -> None:
        self._finish(stream)

    def _settled(self, assoc: Association) -> None:
        """A long association's finished messages move on (flat memory)."""
        ledger = self.ledgers.get(assoc.stream)
        if ledger is None:
            ledger = self.ledgers[assoc.stream] = Ledger()
        ledger.take(*assoc.drain())

    def _finish(self, stream: int) -> None:
        conn = self.conns.pop(stream)
        assoc = self.assocs.pop(stream)
        assoc.last_frame, assoc.last_ns = conn.last_frame, conn.last_time_ns
        label = self.labels.pop(stream, None)
        self.done.add(stream)
        conn.finish()
        evidence = None
        if isinstance(conn.observer, TcpObserver):
            evidence = conn.observer.finish(conn.last_time_ns)
        for endpoint, half in conn.halves.items():
            role = assoc.role_of(endpoint)
            assoc.tcp_retransmitted[role] += half.stats.retransmitted_bytes
            assoc.tcp_out_of_order[role] += half.stats.out_of_order
        assoc.finish()
        if not assoc.is_dicom:
            self.ledgers.pop(stream, None)
            attempt = failed_attempt(conn)
            if attempt is not None:
                self.attempts.append(attempt)
                if self.on_attempt is not None and stream not in self.told_attempts \
                        and self._of_dicom(attempt):
                    self.on_attempt(attempt, self.services.get(attempt.server))
        else:
            self.accept(assoc, evidence, label)
        self.told_attempts.discard(stream)
        if self.previews:
            self._preview()
        if self.release and self.kept and not self.ending and not self._retrieving():
            self._release()

    def accept(self, assoc: Association, evidence: ConnectionEvidence | None,
               label: str | None) -> None:
        """A finished DICOM association (here, or decrypted by tlsassoc.py) into the
        capture: analysed on its own, then kept for correlation or handed on."""
        self.streams.append(assoc.stream)
        self.hosts.update(ep[0] for ep in (assoc.requestor, assoc.acceptor) if ep)
        if assoc.acceptor is not None:
            self.services[assoc.acceptor] = assoc.called_ae or self.services.get(assoc.acceptor)
        if label is not None:
            counts = self.result.label_counts
            counts[label] = counts.get(label, 0) + 1
        done = self._settle(assoc, evidence, label)
        if self.on_settled is not None:
            self.on_settled(done)
        if self.keep_all or self._for_correlation(done) or self.commitments.waiting(assoc.stream):
            self.kept.append(done)
            if self.on_previewed is not None and not self.ending and any(
                    op.command in RETRIEVES for op in done.ops):
                self.previews.append(done)
        else:
            self._hand_on(done)

    def _preview(self) -> None:
        """Each ended C-MOVE or C-GET association that no open connection may still be a
        callback of: what correlation says of it now (on_previewed)."""
        if self.ending or self.on_previewed is None:
            self.previews.clear()
            return
        conns = self.conns.values()
        ready = [d for d in self.previews if not waits_for(d.assoc, d.ops, conns)]
        if not ready:
            return
        self.previews = [d for d in self.previews if all(d is not r for r in ready)]
        attempts = [*self.attempts, *provisional_attempts(conns)]
        for done in ready:
            # the kept associations that ended since the C-MOVE began: a long watch keeps
            # every C-MOVE's, and a preview reads only those that may be linked to this one
            since = window_start(done.ops)
            window: list[FinishedAssociation] = []
            for d in reversed(self.kept):
                if d.assoc.last_ns < since:
                    break
                window.append(d)
            window.reverse()
            mover = next(i for i, d in enumerate(window) if d is done)
            said = preview([Kept(d.assoc, d.ops.as_list(), d.queries.as_list())
                            for d in window], mover, attempts, self.stored.sop_class)
            self.on_previewed(done, [(window[i], findings) for i, findings in said])

    def _settle(self, assoc: Association, evidence: ConnectionEvidence | None,
                label: str | None) -> FinishedAssociation:
        """Everything one association gives on its own: operations, timing, queries and
        their findings."""
        ledger = self.ledgers.pop(assoc.stream, None) or Ledger()
        ledger.take(*assoc.drain())
        ledger.finish()
        ops = ledger.ops
        self.stored.add(assoc.stream, assoc, ops, ledger.objects)
        assoc.findings.extend(object_charset_findings(assoc, ledger.object_texts, ops))
        self.titles.add(assoc)
        self._n_services(assoc, ledger)
        timing = association_timing(assoc, ops, evidence)
        context = TimingContext(assoc, ops, timing, evidence)
        assoc.findings.extend(timing_findings(context))
        assoc.findings.extend(outstanding_findings(context))
        self.tally.add(assoc.stream, context)
        if ledger.queries:  # every C-FIND, C-MOVE and C-GET: its query's findings
            alone = QrContext([assoc], [], [], {})
            in_order = iter(ops)
            charsets = CharsetTally()
            for q in ledger.queries:
                op = next(o for o in in_order if o.op_index == q.op_index)
                for finding in (query_findings(alone, 0, q, op),
                                operation_cancelled(alone, 0, op, q)):
                    if finding is not None:
                        assoc.findings.append(finding)
                charsets.add(q, op)
            assoc.findings.extend(charsets.findings(alone, 0))
        return FinishedAssociation(assoc, ledger.messages, ledger.objects, ops, timing,
                                   evidence, ledger.queries, ledger.query_keys, label,
                                   self.provisional.get(assoc.stream))

    def _n_services(self, assoc: Association, ledger: Ledger) -> None:
        """Storage Commitment and MPPS: the association's requests and results logged, and
        each commitment result linked to its request (operations' parent)."""
        parents: dict[int, tuple[int, int]] = {}
        results = 0
        for op, obj in ledger.n_operations:
            def data(_index: int, o: ObjectRecord | None = obj) -> tuple[ObjectRecord | None,
                                                                          bool]:
                return o, False

            msg = commitment_message(assoc.stream, assoc, op, data)
            if msg is not None:
                results += msg.kind == "result"
                parent = self.commitments.add(msg)
                if parent is not None:
                    parents[op.op_index] = parent
            step = step_message(assoc.stream, assoc, op, data)
            if step is not None:
                self.steps.add(step)
        self.commitments.add_association(assoc, results > 0)
        if parents:
            ledger.ops.rewrite(lambda op: link_result(op, parents.get(op.op_index)))

    def _for_correlation(self, done: FinishedAssociation) -> bool:
        """Kept to the end: a C-MOVE or C-GET association, or one that may be a C-MOVE's
        callback (its called AE is the destination of a C-MOVE-RQ seen so far: the
        callback always opens after the C-MOVE-RQ and ends before the C-MOVE does)."""
        retrieves = [op for op in done.ops if op.command in ("C-MOVE", "C-GET")]
        if retrieves:
            self.destinations.update(op.move_destination for op in retrieves
                                     if op.move_destination)
            return True
        called = done.assoc.called_ae
        if not called:
            return False
        if called not in self.destinations:
            for assoc in self.assocs.values():  # C-MOVEs still in progress
                self.destinations.update(assoc.move_destinations)
        return called in self.destinations

    def _correlate(self, kept: list[FinishedAssociation], attempts: Sequence[ConnectionAttempt]
                   ) -> list[MoveLinks]:
        """Query/retrieve correlation over ``kept`` (by stream): their operations amended,
        their findings added; the links (indexes into ``kept`` and ``attempts``)."""
        assocs = [d.assoc for d in kept]
        ops = [d.ops.as_list() for d in kept]  # a few, and correlate.py amends them
        late = self.commitments.late_links  # results settled before their requests
        for d, op_list in zip(kept, ops, strict=True):
            for op in op_list:
                link_result(op, late.get((d.assoc.stream, op.op_index)))
        links = correlate(assocs, ops, attempts)
        by_op = {(i, q.op_index): q for i, d in enumerate(kept) for q in d.queries}
        context = QrContext(assocs, links, attempts, by_op, self.stored.sop_class)
        for index, finding in qr_findings(context):
            assocs[index].findings.append(finding)
        return links

    def _release(self) -> None:
        """A live view, between retrievals (no C-MOVE open, none waiting for its
        preview): nothing later can be linked to the kept associations (a callback begins
        while its C-MOVE runs), so they are correlated now, as the previews had them (the
        connections that are still only SYNs as unanswered attempts), and handed on:
        memory and the end's work stay flat however many C-MOVEs a long watch sees. Those
        kept for a Storage Commitment result still to come wait for it."""
        kept = sorted((d for d in self.kept if not self.commitments.waiting(d.assoc.stream)),
                      key=lambda d: d.assoc.stream)
        if not kept:
            return
        attempts = [*self.attempts, *provisional_attempts(self.conns.values())]
        for ml in self._correlate(kept, attempts):
            for i in ml.attempts:
                self.released_owners[attempts[i].tcp_stream] = (
                    kept[ml.assoc_id].assoc.stream, ml.op.op_index)
        gone = {id(d) for d in kept}
        self.kept = [d for d in self.kept if id(d) not in gone]
        for done in kept:
            self._hand_on(done)

    def _retrieving(self) -> bool:
        """A C-MOVE association is open, or one that ended waits for its preview."""
        return bool(self.previews) or any(a.move_destinations for a in self.assocs.values())

    def _hand_on(self, done: FinishedAssociation) -> None:
        if self.on_association is not None:
            self.on_association(done)
        else:
            self.result.associations.append(done)

    def finish(self, tshark: Tshark, path: Path, label: str, ports: Sequence[int],
               cross_check: bool) -> None:
        """The capture ended: the open associations end, the kept ones are correlated
        and handed on, and the capture-wide findings are made."""
        self.ending = True
        self.previews.clear()
        for stream in list(self.conns):
            self._finish(stream)
        result = self.result
        result.streams = sorted(self.streams)
        result.attempts = [t for t in self.attempts
                           if t.client[0] in self.hosts or t.server[0] in self.hosts
                           or dicom_port(t.server[1], ports)]
        kept = sorted(self.kept, key=lambda d: d.assoc.stream)
        assocs = [d.assoc for d in kept]
        links = self._correlate(kept, result.attempts)
        if cross_check and assocs:
            for which, finding in crosscheck(tshark, path, label, assocs, ports):
                if which is None:
                    result.findings.append((None, finding))
                else:
                    assocs[which].findings.append(finding)
        ids = [a.stream for a in assocs]  # from here on an association is its stream
        result.attempt_owners = {i: (ids[ml.assoc_id], ml.op.op_index)
                                 for ml in links for i in ml.attempts}
        result.attempt_owners.update(  # correlated before the end (`_release`)
            (i, self.released_owners[t.tcp_stream]) for i, t in enumerate(result.attempts)
            if t.tcp_stream in self.released_owners)
        unowned = [t for i, t in enumerate(result.attempts) if i not in result.attempt_owners]
        result.findings.extend((None, f) for f in unreachable_scps(unowned, self.services,
                                                                   ports))
        result.findings.extend(self.tally.findings())
        owned = set(result.attempt_owners)
        result.findings.extend(self.commitments.findings(result.attempts, owned,
                                                         result.last_ns))
        result.commitments = self.commitments.transactions
        result.findings.extend(self.steps.findings(result.last_ns))
        result.findings.extend(self.stored.findings())
        result.findings.extend(self.titles.findings())
        result.steps = self.steps
        for done in kept:
            self._hand_on(done)
        result.associations.sort(key=lambda d: d.assoc.stream)


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
    on_association: AssociationFn | None = None,
    tls: TlsOptions | None = None,
) -> CaptureResult:
    """Analyse one capture file; ``objects_dir`` (if given) receives its Part-10 files.

    Engines: ``raw`` has tshark convert the capture to a pcap stream and reads link, IP and
    TCP headers itself (fast: no per-field output); ``ek`` has tshark dissect and select
    the DICOM streams in two passes and reads its ``-T ek`` JSON; ``auto`` is raw where
    the link type allows, else ek.

    ``on_association`` receives each DICOM association as soon as it is complete, and
    the association is then forgotten: memory holds only open connections and the
    associations query/retrieve correlation needs (all of them with ``cross_check``).
    Without it, they are in the result's ``associations``. Object files are named with
    provisional association numbers (``FinishedAssociation.number``); tables.py settles them.

    ``more``: the following files (path, label) of a ring-buffer or split set, read as one
    continuous capture with ``path`` (raw engine): associations and objects that cross
    file boundaries are whole, frame numbers count through the set, and each
    association carries the label of the file its first packet is in.

    ``tls``: key logs and DICOM TLS ports; TLS streams are decrypted by a tshark pass of
    their own and analysed like clear ones (tlsassoc.py).
    """
    started = time.monotonic()
    check_capture(tshark, path)
    for extra, _ in more:
        check_capture(tshark, extra)
    result = CaptureResult(label)
    portset = frozenset(ports)
    tls_options = tls or TlsOptions()
    run: _Run | None = None
    if engine in ("auto", "raw"):
        run = _Run(result, portset, objects_dir, {}, decide=True,
                   on_association=on_association, keep_all=cross_check,
                   tls_ports=tls_options.dicom_ports)
        try:
            if more:
                run.consume(_set_packets(tshark, [(path, label), *more], run, result),
                            progress)
            else:  # one file: no generator in between (every packet passes here)
                with raw_conversion(tshark, path) as (out, tsk):
                    _consume_pcap(run, out, label, progress)
                _truncated(result, tsk.truncated)
            result.engine = "raw"
            _file_totals(result)
        except (UnsupportedLinkType, CannotConvert) as exc:
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
                   {stream: i for i, stream in enumerate(candidates)}, decide=False,
                   on_association=on_association, keep_all=cross_check,
                   tls_ports=tls_options.dicom_ports)
        if candidates:
            with run_tshark(packets_argv(tshark, path, candidates), path) as (out, tsk):
                run.consume(read_packets(out), progress)
        run.tls_seen = tls_streams_ek(tshark, path, tls_options)
    decrypted: dict[int, Association] = {}
    decrypted_evidence: dict[int, ConnectionEvidence] = {}
    tls_findings: list[FindingRecord] = []
    with_tls(tshark, path, label, tls_options, run.tls_seen, set_of_files=bool(more),
             ports=portset, dataset_sink=run.dataset_sink,
             guess_transfer_syntax=infer_transfer_syntax, associations=decrypted,
             evidence=decrypted_evidence, findings=tls_findings,
             clients=run.tls_clients, clear_hosts=run.hosts, clear_dicom=bool(run.streams))
    result.findings.extend((None, f) for f in tls_findings)
    for stream in sorted(decrypted):
        run.accept(decrypted[stream], decrypted_evidence.get(stream), None)
    _end(run, tshark, path, label, ports, cross_check)
    result.elapsed_s = time.monotonic() - started
    log.debug("%s: %s engine, %d packets, %d associations in %.1f s (peak RSS %d MB)", label,
              result.engine, result.packets, len(result.streams), result.elapsed_s,
              resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
    return result


def analyze_stream(stream: IO[bytes], *, label: str, tshark: Tshark, ports: Sequence[int] = (),
                   on_association: AssociationFn | None = None,
                   on_settled: AssociationFn | None = None,
                   on_attempt: AttemptFn | None = None,
                   on_previewed: PreviewFn | None = None,
                   progress: ProgressFn | None = None) -> CaptureResult:
    """Analyse a pcap stream as it arrives (a live capture: livecapture.py), with the raw
    engine, as `analyze_capture` analyses a file's conversion; the stream's end is the
    capture's end. ``on_settled`` hears of each association as soon as it is analysed on
    its own (its findings but the cross-association ones), before ``on_association`` may
    hear of it at the end; ``on_attempt`` of each connection to a DICOM service that never
    opened (refused: at its RST; unanswered: at the end); ``on_previewed`` of what
    correlation says of each C-MOVE or C-GET association (and its callbacks) as soon as it
    ended and no open connection may be its callback. No objects are written and TLS is
    not decrypted: both need the capture file (save it, then `analyze_capture`)."""
    started = time.monotonic()
    result = CaptureResult(label)
    run = _Run(result, frozenset(ports), None, {}, decide=True, on_association=on_association,
               keep_all=False, on_settled=on_settled, on_attempt=on_attempt,
               on_previewed=on_previewed)
    try:
        _consume_pcap(run, stream, label, progress)
    except UnsupportedLinkType as exc:
        raise OptionsError(f"{label}: the raw engine cannot read this link type ({exc})"
                           ) from None
    result.engine = "raw"
    _file_totals(result)
    if run.tls_seen:
        result.findings.append((None, FindingRecord(
            None, None, "note", "tls-not-decrypted",
            f"{len(run.tls_seen)} TLS connection(s) in {label} to port(s) "
            f"{', '.join(map(str, sorted({port for _, port in run.tls_seen.values()})))} were "
            "not looked into: a capture stream is not decrypted as it comes; analyse the "
            "saved capture (with --tls-keylog where its secrets are not embedded)")))
    _end(run, tshark, Path(label), label, ports, cross_check=False)
    result.elapsed_s = time.monotonic() - started
    return result


def _consume_pcap(run: _Run, stream: IO[bytes], label: str, progress: ProgressFn | None
                  ) -> None:
    """One pcap stream through the hot loop, its totals a file of the result."""
    stats = CaptureStats()
    run.consume(read_raw_packets(stream, skip=run.done, stats=stats), progress)
    run.result.files.append(FileStats(label, stats.records, stats.first_ns, stats.last_ns,
                                      stats.link_type, False))


def _truncated(result: CaptureResult, truncated: bool) -> None:
    result.truncated = truncated
    if result.files:
        result.files[-1].truncated = truncated


def _file_totals(result: CaptureResult) -> None:
    first = result.files[0]
    result.records, result.first_ns = sum(f.records for f in result.files), first.first_ns
    result.last_ns = result.files[-1].last_ns
    result.link_type = LINK_TYPES.get(first.link_type or -1, str(first.link_type))


def _end(run: _Run, tshark: Tshark, path: Path, label: str, ports: Sequence[int],
         cross_check: bool) -> None:
    """The capture's end: its own findings, correlation, and no-dicom if nothing was."""
    result = run.result
    if result.truncated:
        result.findings.append((None, FindingRecord(
            None, None, "warning", "capture-truncated",
            f"{label} was cut short in the middle of a packet; everything before that point "
            "was analysed")))
    if run.snaplen_cut:
        result.findings.append((None, FindingRecord(
            None, run.first_cut_frame, "warning", "capture-snaplen",
            f"{run.snaplen_cut} DICOM packets in {label} were cut by the capture's snapshot "
            "length; their missing bytes are treated as capture gaps")))
    run.finish(tshark, path, label, ports, cross_check)
    if not result.streams:
        unopened = any(f.code in ("connection-refused", "connection-unanswered")
                       for _, f in result.findings)
        result.findings.append((None, _no_dicom(label, ports, unopened)))


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
        run.label = label
        stats = CaptureStats()
        with raw_conversion(tshark, path) as (out, tsk):
            yield from read_raw_packets(out, numbers=numbers, skip=run.done,
                                        stats=stats, frame_offset=offset)
        offset += stats.records
        result.truncated = result.truncated or tsk.truncated
        result.files.append(FileStats(label, stats.records, stats.first_ns, stats.last_ns,
                                      stats.link_type, tsk.truncated))


def _capinfos(tshark: Tshark, path: Path, result: CaptureResult) -> None:
    """Packet count, first and last time and link type of the whole capture, for the ek
    engine (which sees only DICOM streams): Wireshark's capinfos reads them."""
    fields = capinfos_fields(tshark, path, "-c", "-a", "-e", "-E", "-S")
    if fields is not None and len(fields) >= 5:
        result.link_type = fields[1] or None
        result.records = int(fields[2]) if fields[2].isdigit() else None
        try:
            result.first_ns, result.last_ns = epoch_ns(fields[3]), epoch_ns(fields[4])
        except ValueError:  # capinfos printed no times (an empty capture)
            pass




def _no_dicom(label: str, ports: Sequence[int], unopened: bool = False) -> FindingRecord:
    where = "on any port" + (f" (also tried port {', '.join(map(str, ports))})" if ports else "")
    if unopened:  # the connections to DICOM ports never opened: that is the story
        return FindingRecord(
            None, None, "note", "no-dicom",
            f"no DICOM association found in {label} {where}: the connections to DICOM ports "
            "never opened (see connection-refused or connection-unanswered)")
    return FindingRecord(
        None, None, "note", "no-dicom",
        f"no DICOM association found in {label} {where}: no TCP stream opens with an "
        "A-ASSOCIATE-RQ; use --port for captures that start mid-association, and --engine ek "
        "for traffic inside tunnels such as GRE or VXLAN")
