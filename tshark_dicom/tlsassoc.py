"""DICOM over TLS at the association stage: the decrypted byte streams go through the same
`Association` machinery as clear ones (PDUs, messages, objects; then timing and correlation
like any association), and a TLS connection on a DICOM TLS port that cannot be decrypted
becomes one association row with what its handshake shows.

The TCP side of each TLS connection (segments, windows, retransmissions, FIN/RST) is fed,
without payload, to a `streams.TcpConnection` with the timing observer, so a decrypted
association has the same TCP evidence and ending as a clear one; its DICOM bytes come from
tshark's decrypted chunks, each with the frame that completed its TLS record.

Findings: ``tls-handshake-failed`` (error: a fatal alert, or no ServerHello, before any
application data: an untrusted or expired certificate is a common reason an association
never starts), ``tls-mismatch`` (error: the server answered the ClientHello with bytes that
are not TLS, or closed without a word: it takes DICOM in clear there), ``tls-alert``
(warning: a fatal alert later), ``tls-keys-needed`` (note: the connection is encrypted and
no key for it was given), ``capture-gap`` (warning: TCP bytes missing from an encrypted
stream; tshark cannot decrypt past a missing record) and, for the capture,
``tls-not-decrypted`` (note: TLS connections on other ports, without keys).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

from .association import Association
from .packets import Packet
from .records import DatasetSinkFactory, FindingRecord, TransferSyntaxGuesser
from .streams import StreamSink, TcpConnection
from .tcpevidence import ConnectionEvidence, TcpObserver
from .tls import (
    CLEAR_DICOM_PORTS,
    Chunk,
    FollowBlock,
    TlsFacts,
    TlsOptions,
    TlsPacket,
    find_tls_argv,
    has_embedded_secrets,
    keylog_file,
    read_tls_output,
    tls_argv,
)
from .tshark import Tshark, run_tshark

log = logging.getLogger(__name__)

#: What a fatal alert during the handshake usually means (RFC 8446 6.2), for findings.
ALERT_MEANINGS = {
    40: "the two sides share no acceptable cipher suite or parameters",
    42: "it rejected the certificate it was shown",
    43: "it does not support the type of certificate it was shown",
    44: "the certificate it was shown has been revoked",
    45: "the certificate it was shown has expired or is not yet valid",
    46: "it could not accept the certificate it was shown",
    48: "it does not trust the certificate authority that signed the certificate it was "
        "shown (or lacks an intermediate certificate)",
    70: "the two sides support no common TLS version",
    71: "the other side's security parameters are too weak for it",
    112: "it does not know the server name the client asked for",
    116: "the server requires a client certificate and got none",
}


class TlsAssociation(Association):
    """An association (or attempt) carried by TLS: the handshake's facts ride along."""

    ENCRYPTED = True

    def __init__(self, stream: int, *, ports: frozenset[int], dataset_sink: DatasetSinkFactory,
                 guess_transfer_syntax: TransferSyntaxGuesser, facts: TlsFacts) -> None:
        super().__init__(stream, ports=ports, dataset_sink=dataset_sink,
                         guess_transfer_syntax=guess_transfer_syntax)
        self.tls = facts
        #: a DICOM TLS port connection shown although no A-ASSOCIATE-RQ could be read
        self.tls_row = False

    @property
    def is_dicom(self) -> bool:
        return super().is_dicom or self.tls_row

    @property
    def tls_alert(self) -> tuple[str, str] | None:
        """The first fatal alert (else the first other than close_notify): its RFC name and
        the role that sent it."""
        alerts = self.tls.alerts
        first = next((a for a in alerts if a.fatal), None) or next(
            (a for a in alerts if a.description != 0), None)
        if first is None:
            return None
        return first.text, self.role_of(first.sender)


@dataclass
class TlsOutcome:
    """What the TLS pass gave: associations (by tcp.stream), their TCP evidence, and the
    findings that belong to the capture."""

    associations: dict[int, TlsAssociation] = field(default_factory=dict)
    evidence: dict[int, ConnectionEvidence] = field(default_factory=dict)
    findings: list[FindingRecord] = field(default_factory=list)


class _Ends(StreamSink):
    """The StreamSink of a payload-less TLS connection's direction: how it ended, and the
    bytes the capture lost (those tshark cannot decrypt past)."""

    __slots__ = ("how", "frame", "time_ns", "lost", "lost_frame")

    def __init__(self) -> None:
        self.how: str | None = None
        self.frame = 0
        self.time_ns = 0
        self.lost = 0
        self.lost_frame: int | None = None

    def data(self, data: bytes, frame: int, time_ns: int) -> None:
        pass

    def gap(self, nbytes: int, frame: int, time_ns: int, cause: str) -> None:
        if cause == "lost":  # "snaplen" is every byte here: the pass carries no payload
            self.lost += nbytes
            self.lost_frame = self.lost_frame or frame

    def end(self, how: str, frame: int, time_ns: int) -> None:
        self.how, self.frame, self.time_ns = how, frame, time_ns


class _Conn:
    """One TLS connection's TCP side while its packets flow."""

    def __init__(self, first: Packet) -> None:
        self.first = first
        self.ends: dict[tuple[str, int], _Ends] = {}
        self.tcp = TcpConnection(first.stream, self._sink_for, TcpObserver())

    def _sink_for(self, src: str, sport: int, dst: str, dport: int, first: Packet) -> _Ends:
        sink = self.ends[(src, sport)] = _Ends()
        return sink


def with_tls(tshark: Tshark, capture: Path, label: str, options: TlsOptions,
             seen: dict[int, tuple[str, int]], *, set_of_files: bool, ports: frozenset[int],
             dataset_sink: DatasetSinkFactory, guess_transfer_syntax: TransferSyntaxGuesser,
             associations: MutableMapping[int, Association],
             evidence: MutableMapping[int, ConnectionEvidence],
             findings: list[FindingRecord],
             clients: Mapping[int, str] | None = None, clear_hosts: Collection[str] = (),
             clear_dicom: bool = True) -> None:
    """The capture's TLS streams (``seen``), decrypted and analysed, added to the clear
    streams' associations and evidence (by tcp.stream); capture findings to ``findings``.
    ``clients``: the client address of TLS streams (where known); ``clear_hosts``: the
    addresses that took part in DICOM in clear in this capture;
    ``clear_dicom``: whether it had any DICOM in clear (`decrypt`: which handshakes to read)."""
    if not seen:
        return
    if set_of_files:
        findings.append(FindingRecord(
            None, None, "note", "tls-not-decrypted",
            f"{len(seen)} TLS connection(s) in the set of files that starts with {label} were "
            "not analysed: tshark decrypts a TLS session only within one file; merge the "
            "files first (mergecap -a) and analyse the result"))
        return
    out = decrypt(tshark, capture, label, options, seen, ports=ports,
                  dataset_sink=dataset_sink, guess_transfer_syntax=guess_transfer_syntax,
                  clients=clients, clear_hosts=clear_hosts, clear_dicom=clear_dicom)
    associations.update(out.associations)
    evidence.update(out.evidence)
    findings.extend(out.findings)


def tls_streams_ek(tshark: Tshark, capture: Path, options: TlsOptions
                   ) -> dict[int, tuple[str, int]]:
    """For the ek engine: the TLS streams (tcp.stream -> server endpoint), found by a tshark
    pass of their own; run only when there may be something to decrypt or show (key logs,
    --tls-port, or secrets in the capture), since it dissects the whole capture."""
    if not (options.keylogs or options.ports or has_embedded_secrets(capture)):
        return {}
    seen: dict[int, tuple[str, int]] = {}
    with run_tshark(find_tls_argv(tshark, capture, options.ports), capture) as (stdout, _):
        for line in stdout:
            cols = line.decode("utf-8", "replace").rstrip("\r\n").split("\t")
            if len(cols) == 4 and cols[0].isdigit() and cols[3].isdigit():
                seen.setdefault(int(cols[0]), (cols[1] or cols[2], int(cols[3])))
    return seen


def decrypt(tshark: Tshark, capture: Path, label: str, options: TlsOptions,
            seen: dict[int, tuple[str, int]], *, ports: frozenset[int],
            dataset_sink: DatasetSinkFactory, guess_transfer_syntax: TransferSyntaxGuesser,
            clients: Mapping[int, str] | None = None, clear_hosts: Collection[str] = (),
            clear_dicom: bool = True) -> TlsOutcome:
    """The TLS streams of a capture (``seen``: tcp.stream -> the server's endpoint) as
    associations. With keys (``options.keylogs`` or secrets embedded in the capture) every
    TLS stream is decrypted and kept if it carries DICOM; without, only those on a DICOM
    TLS port (2762, ``options.ports``) are looked at, as rows of their handshake.

    Besides, the handshakes (not the data) of TLS streams to where DICOM in clear is
    expected (`_clear_side`) are read: a server there that answers a ClientHello with no
    ServerHello is a TLS mismatch, and becomes a row with its finding."""
    out = TlsOutcome()
    dicom_ports = options.dicom_ports
    have_keys = bool(options.keylogs) or has_embedded_secrets(capture)
    chosen = sorted(s for s, server in seen.items() if have_keys or server[1] in dicom_ports)
    picked = set(chosen)
    clients = clients or {}
    clear_side = {s for s, server in seen.items() if s not in picked and _clear_side(
        server, clients.get(s), clear_hosts, clear_dicom, ports)}
    if chosen or clear_side:
        _pass(tshark, capture, options, seen, chosen, clear_side, out, ports, dataset_sink,
              guess_transfer_syntax, dicom_ports, have_keys)
    # those not decrypted nor shown as a row (a clear-side stream whose handshake went on)
    others = [s for s in seen if s not in picked and s not in out.associations]
    if others:
        out.findings.append(FindingRecord(
            None, None, "note", "tls-not-decrypted",
            f"{len(others)} TLS connection(s) in {label} to port(s) "
            f"{', '.join(map(str, sorted({seen[s][1] for s in others})))} were not analysed: "
            "without session keys only TLS on DICOM TLS ports (2762, --tls-port) is shown; "
            "give the peers' key log with --tls-keylog to decrypt them"))
    return out


def _clear_side(server: tuple[str, int], client: str | None, clear_hosts: Collection[str],
                clear_dicom: bool, ports: frozenset[int]) -> bool:
    """Whether a TLS connection is one where DICOM in clear may have been expected: to a
    port registered for DICOM in clear or a --port, or between hosts of which one took part
    in DICOM in clear in the capture; or any, when the capture holds no DICOM in clear (a
    capture of the failing attempts alone)."""
    return (not clear_dicom or server[1] in CLEAR_DICOM_PORTS or server[1] in ports
            or server[0] in clear_hosts or client in clear_hosts)


def _pass(tshark: Tshark, capture: Path, options: TlsOptions, seen: dict[int, tuple[str, int]],
          chosen: list[int], clear_side: set[int], out: TlsOutcome, ports: frozenset[int],
          dataset_sink: DatasetSinkFactory, guess_transfer_syntax: TransferSyntaxGuesser,
          dicom_ports: frozenset[int], have_keys: bool) -> None:
    """The TLS pass over ``chosen`` (decrypted where keys allow) and ``clear_side`` (their
    handshakes only), its associations and findings into ``out``."""
    conns: dict[int, _Conn] = {}
    facts: dict[int, TlsFacts] = {}
    built: set[int] = set()
    with keylog_file(options.keylogs) as keys, run_tshark(
            tls_argv(tshark, capture, [keys] if keys else [], [*chosen, *clear_side],
                     options.ports, follow=chosen), capture) as (stdout, _):
        packets_done = False
        for item in read_tls_output(stdout, facts):
            if isinstance(item, TlsPacket):
                pkt = item.packet
                conn = conns.get(pkt.stream)
                if conn is None:
                    conn = conns[pkt.stream] = _Conn(pkt)
                conn.tcp.feed(pkt)
                continue
            if not packets_done:
                for conn in conns.values():
                    conn.tcp.finish()
                packets_done = True
            # only the chosen streams have follow blocks: the others are not candidates
            candidates = conns if not clear_side else {
                s: c for s, c in conns.items() if s not in clear_side}
            _block(item, candidates, facts, built, out, ports, dataset_sink,
                   guess_transfer_syntax, seen, dicom_ports, have_keys)
    for stream, conn in conns.items():
        if not packets_done:
            conn.tcp.finish()
        if stream not in built:
            _build(stream, conn, facts.setdefault(stream, TlsFacts(stream)), iter(()), None,
                   out, ports, dataset_sink, guess_transfer_syntax, seen, dicom_ports,
                   have_keys, clear_side=stream in clear_side)


def _block(block: FollowBlock, conns: dict[int, _Conn], facts: dict[int, TlsFacts],
           built: set[int], out: TlsOutcome, ports: frozenset[int],
           dataset_sink: DatasetSinkFactory, guess: TransferSyntaxGuesser,
           seen: dict[int, tuple[str, int]], dicom_ports: frozenset[int],
           have_keys: bool) -> None:
    """Which stream a follow block is: the one whose endpoints include its first peer and
    whose frames include its first chunk (tshark prints the blocks without stream numbers)."""
    first = next(block.chunks, None)
    if first is None or block.peer0 is None:
        return  # nothing decrypted: the stream is built without data at the end
    host, port = block.peer0
    for stream, conn in conns.items():
        tcp = conn.tcp
        if stream in built or not (tcp.first_frame or 0) <= first.frame <= tcp.last_frame:
            continue
        ends = list(tcp.halves)
        peer0 = next((ep for ep in ends if ep == (host, port)), None) or next(
            (ep for ep in ends if ep[1] == port), None)
        if peer0 is None:
            continue
        built.add(stream)
        chunks = _chain(first, block.chunks)
        _build(stream, conn, facts.setdefault(stream, TlsFacts(stream)), chunks, peer0, out,
               ports, dataset_sink, guess, seen, dicom_ports, have_keys)
        return
    log.debug("a follow block (first frame %d, peer %s) matches no TLS stream", first.frame,
              block.peer0)


def _chain(first: Chunk, rest: Iterator[Chunk]) -> Iterator[Chunk]:
    yield first
    yield from rest


def _build(stream: int, conn: _Conn, facts: TlsFacts, chunks: Iterator[Chunk],
           peer0: tuple[str, int] | None, out: TlsOutcome, ports: frozenset[int],
           dataset_sink: DatasetSinkFactory, guess: TransferSyntaxGuesser,
           seen: dict[int, tuple[str, int]], dicom_ports: frozenset[int],
           have_keys: bool, clear_side: bool = False) -> None:
    """Feed one stream's decrypted chunks to a TlsAssociation and settle it. A
    ``clear_side`` stream (`decrypt`) becomes a row only if its handshake failed."""
    tcp = conn.tcp
    ends = {*tcp.halves, (conn.first.src, conn.first.sport), (conn.first.dst, conn.first.dport)}
    server = seen.get(stream)
    if server not in ends:  # the raw pass numbered this stream otherwise: trust tshark's view
        server = tcp.server or (conn.first.dst, conn.first.dport)
    client = next((ep for ep in tcp.halves if ep != server), None) or tcp.client or (
        conn.first.src, conn.first.sport)
    assoc = TlsAssociation(stream, ports=ports, dataset_sink=dataset_sink,
                           guess_transfer_syntax=guess, facts=facts)
    assoc.note_packet(conn.first)
    parsers = {ep: assoc.sink_for(ep[0], ep[1], other[0], other[1], conn.first)
               for ep, other in ((client, server), (server, client))}
    if peer0 is not None:
        by_peer = {0: peer0, 1: server if peer0 == client else client}
        for chunk in chunks:
            ep = by_peer[chunk.peer]
            facts.decrypted_bytes[ep] = facts.decrypted_bytes.get(ep, 0) + len(chunk.data)
            parsers[ep].data(chunk.data, chunk.frame, chunk.time_ns)
    for ep, parser in parsers.items():
        end = conn.ends.get(ep)
        if end is not None and end.how is not None:
            parser.end(end.how, end.frame, end.time_ns)
        else:
            parser.end("eof", tcp.last_frame, tcp.last_time_ns)
    assoc.last_frame, assoc.last_ns = tcp.last_frame, tcp.last_time_ns
    for endpoint, half in tcp.halves.items():
        role = assoc.role_of(endpoint)
        assoc.tcp_retransmitted[role] += half.stats.retransmitted_bytes
        assoc.tcp_out_of_order[role] += half.stats.out_of_order
    assoc.tls_row = not assoc.saw_rq and not facts.decrypted and (
        server[1] in dicom_ports or clear_side and facts.version is None)
    assoc.finish()
    if not assoc.is_dicom:
        return
    _findings(assoc, conn, client, server, have_keys)
    out.associations[stream] = assoc
    if isinstance(tcp.observer, TcpObserver):
        out.evidence[stream] = tcp.observer.finish(tcp.last_time_ns)


def _not_tls(facts: TlsFacts, conn: _Conn, server: tuple[str, int]) -> str | None:
    """How a server that sent no ServerHello showed it does not speak TLS, else None:
    bytes that are no TLS record (a DICOM SCP in clear answers the ClientHello, a PDU of
    type 0x16 to it, with an A-ABORT), or the connection closed without a word or an
    alert. A server still silent when the capture ended says nothing either way."""
    if server in facts.record_senders:
        return None
    sent = facts.sent.get(server, 0)
    if sent:
        return (f"answered with {sent} bytes that are not TLS, and no ServerHello: it does "
                "not speak TLS on that port (a DICOM SCP in clear reads the ClientHello as a "
                "PDU of type 0x16 and answers with an A-ABORT)")
    end = conn.ends.get(server)
    if end is None or end.how not in ("fin", "rst"):
        return None
    return (f"closed the connection ({end.how.upper()}) without a ServerHello or a TLS alert: "
            "it most likely does not speak TLS on that port (a DICOM SCP in clear does this: "
            "dcmtk's storescp logs 'Unrecognized PDU type: 16')")


def _where(client: tuple[str, int], server: tuple[str, int], facts: TlsFacts) -> str:
    name = f" (server name {facts.server_name})" if facts.server_name else ""
    return f"{client[0]}:{client[1]} -> {server[0]}:{server[1]}{name}"


def _findings(assoc: TlsAssociation, conn: _Conn, client: tuple[str, int],
              server: tuple[str, int], have_keys: bool) -> None:
    facts = assoc.tls
    where = _where(client, server, facts)
    fatal = next((a for a in facts.alerts if a.fatal), None)
    if fatal is not None:
        role = assoc.role_of(fatal.sender)
        side = "client" if fatal.sender == client else "server"
        meaning = ALERT_MEANINGS.get(fatal.description)
        what = f"the {side} ({role}, {fatal.sender[0]}:{fatal.sender[1]}) sent a fatal " \
               f"alert {fatal.text} ({fatal.description})" + (f": {meaning}" if meaning else "")
        if assoc.saw_rq:
            assoc.finding("warning", "tls-alert", f"TLS connection {where}: {what}",
                          fatal.frame)
        else:
            cert = f"; the server's certificate is {facts.certificate_subject}" \
                if facts.certificate_subject else ""
            assoc.finding("error", "tls-handshake-failed",
                          f"the TLS handshake {where} failed, so no association was "
                          f"requested: {what}{cert}", fatal.frame)
    elif facts.version is None and not assoc.saw_rq:
        frame = facts.client_hello_frame or assoc.first_frame
        answer = _not_tls(facts, conn, server)
        if answer is None:
            assoc.finding("error", "tls-handshake-failed",
                          f"the TLS handshake {where} never completed: the server sent no "
                          "ServerHello, so no association was requested", frame)
        else:
            assoc.finding("error", "tls-mismatch",
                          f"{client[0]}:{client[1]} started TLS (a ClientHello, frame {frame}) "
                          f"with {server[0]}:{server[1]}, which {answer}; so no association "
                          "was requested. The SCU uses TLS and the SCP does not: turn TLS off "
                          "at the SCU, or send to the SCP's TLS port (2762 by convention) if "
                          "it has one", frame)
    elif not facts.decrypted and not assoc.saw_rq:
        shown = [facts.version_text, facts.cipher_suite,
                 f"server name {facts.server_name}" if facts.server_name else None,
                 f"server certificate {facts.certificate_subject}"
                 if facts.certificate_subject else None]
        given = ("the key logs given (and any secrets in the capture) hold none for this "
                 "session; ") if have_keys else ""
        assoc.finding("note", "tls-keys-needed",
                      f"the TLS connection {client[0]}:{client[1]} -> {server[0]}:{server[1]} "
                      f"({', '.join(x for x in shown if x)}) on a DICOM TLS port is "
                      f"encrypted: {given}give its session keys with --tls-keylog (a key log "
                      "written by either peer, e.g. through SSLKEYLOGFILE) to see the "
                      "association inside", facts.client_hello_frame or assoc.first_frame)
    for ep, end in conn.ends.items():
        if end.lost and facts.decrypted:
            role = assoc.role_of(ep)
            assoc.finding("warning", "capture-gap",
                          f"{end.lost} bytes of the TLS stream from the {role} "
                          f"({ep[0]}:{ep[1]}) are missing from the capture before frame "
                          f"{end.lost_frame}: TLS records after a missing one cannot be "
                          "decrypted, so what followed is not analysed", end.lost_frame)
