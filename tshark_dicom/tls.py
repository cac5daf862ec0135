"""DICOM over TLS, at the streams stage: tshark decrypts, we read its decrypted byte streams.

DICOM's secure transport (PS3.15 B.1, the TLS profiles; IANA port 2762 ``dicom-tls``) wraps
the Upper Layer in TLS. Wireshark decrypts TLS with the session secrets from a key log
(NSS key log format: what ``SSLKEYLOGFILE``, Python's ``SSLContext.keylog_filename`` or a
peer's own option writes) or secrets embedded in a pcapng (``editcap --inject-secrets``);
it then hands the plaintext to no DICOM dissector, so we take the bytes themselves.

One tshark pass over the TLS streams (``tls_argv``) prints, in this order:

1. per packet of those streams, the TCP header fields (for `streams.TcpConnection` and the
   timing observer, exactly as for clear traffic) and what the TLS handshake shows:
   versions, the chosen cipher suite (its name from a custom column), the server name
   (SNI), the server's certificate, alerts;
2. at the end, per stream, a ``-z follow,tls,yaml,N`` block: every decrypted chunk with
   its frame number, time and sender, in order.

Measured on tshark 4.0.17 with a 101 MB TLS 1.3 capture (benchmarks/tls_cost.py --extract):
the follow tap prints all decrypted streams in about 0.5 s, where ``-T fields -e
data.data`` (the plaintext as hex, one pass for all streams) takes about 3 s, almost all
of it tshark formatting hex; so the follow tap it is, for every TLS stream in one run.
Either way tshark keeps the TLS and TCP reassembly state of the whole capture in memory
(about 290 MB for that capture); the follow tap adds the decrypted bytes until the end.
We read its output as it comes, one chunk at a time.
"""

from __future__ import annotations

import binascii
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .errors import OptionsError
from .packets import Packet, epoch_ns
from .tshark import Tshark, has_embedded_secrets, stream_set_expression

log = logging.getLogger(__name__)

#: IANA ``dicom-tls`` (PS3.15 B.1): DICOM over TLS.
DICOM_TLS_PORT = 2762
#: IANA ports for DICOM in clear: ``dicom`` 104 and 11112, ``dicom-iscl`` 2761.
CLEAR_DICOM_PORTS = frozenset({104, 11112, 2761})

#: Key log labels (NSS key log format; TLS 1.2 ``CLIENT_RANDOM``, TLS 1.3 traffic secrets).
KEYLOG_LABELS = (b"CLIENT_RANDOM", b"CLIENT_HANDSHAKE_TRAFFIC_SECRET",
                 b"SERVER_HANDSHAKE_TRAFFIC_SECRET", b"CLIENT_TRAFFIC_SECRET_0",
                 b"SERVER_TRAFFIC_SECRET_0", b"EXPORTER_SECRET", b"RSA",
                 b"CLIENT_EARLY_TRAFFIC_SECRET", b"EARLY_EXPORTER_SECRET")

#: TLS protocol versions (RFC 8446 4.2.1 and earlier).
VERSIONS = {0x0300: "SSL 3.0", 0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2",
            0x0304: "TLS 1.3"}

#: Alert descriptions (RFC 8446 6, RFC 5246 7.2), by code.
ALERTS = {
    0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac",
    21: "decryption_failed", 22: "record_overflow", 30: "decompression_failure",
    40: "handshake_failure", 41: "no_certificate", 42: "bad_certificate",
    43: "unsupported_certificate", 44: "certificate_revoked", 45: "certificate_expired",
    46: "certificate_unknown", 47: "illegal_parameter", 48: "unknown_ca", 49: "access_denied",
    50: "decode_error", 51: "decrypt_error", 60: "export_restriction", 70: "protocol_version",
    71: "insufficient_security", 80: "internal_error", 86: "inappropriate_fallback",
    90: "user_canceled", 100: "no_renegotiation", 109: "missing_extension",
    110: "unsupported_extension", 111: "certificate_unobtainable", 112: "unrecognized_name",
    113: "bad_certificate_status_response", 114: "bad_certificate_hash_value",
    115: "unknown_psk_identity", 116: "certificate_required", 120: "no_application_protocol",
}
ALERT_LEVELS = {1: "warning", 2: "fatal"}

#: X.500 attribute types as RFC 4514 names them (others are written as dotted OIDs).
_X500_NAMES = {
    "2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.9": "STREET",
    "2.5.4.10": "O", "2.5.4.11": "OU", "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID", "1.2.840.113549.1.9.1": "emailAddress",
    "2.5.4.5": "serialNumber",
}


@dataclass(frozen=True)
class TlsOptions:
    """What the user gave for TLS: key log files and DICOM TLS ports besides 2762."""

    keylogs: tuple[Path, ...] = ()
    ports: tuple[int, ...] = ()

    @property
    def dicom_ports(self) -> frozenset[int]:
        return frozenset({DICOM_TLS_PORT, *self.ports})


def check_tls_options(keylogs: Sequence[str | os.PathLike[str]], ports: Sequence[int]
                      ) -> TlsOptions:
    """Validate the options before any work starts: each key log must be a readable NSS
    key log, each port a TCP port. Raises OptionsError naming the option."""
    for port in ports:
        if not 0 < port < 65536:
            raise OptionsError(f"--tls-port {port}: not a TCP port (1-65535)")
    paths = []
    for item in keylogs:
        path = Path(item)
        try:
            with open(path, "rb") as f:
                head = f.read(1 << 16)
        except FileNotFoundError:
            raise OptionsError(f"--tls-keylog {path}: no such file") from None
        except IsADirectoryError:
            raise OptionsError(f"--tls-keylog {path}: a folder, not a key log file") from None
        except OSError as exc:
            raise OptionsError(f"--tls-keylog {path}: cannot read it ({exc.strerror})") from None
        lines = [ln.strip() for ln in head.splitlines()]
        if not any(ln.split(b" ", 1)[0] in KEYLOG_LABELS for ln in lines if ln):
            raise OptionsError(
                f"--tls-keylog {path}: not a TLS key log (NSS key log format: lines such as "
                "'CLIENT_RANDOM <hex> <hex>', as SSLKEYLOGFILE writes them)")
        paths.append(path.absolute())  # workers elsewhere (--dask) resolve it too
    return TlsOptions(tuple(paths), tuple(sorted(set(ports))))


def looks_like_tls(payload: bytes) -> bool:
    """The first bytes of a TCP stream are a TLS ClientHello: a handshake record (type 22,
    version 3.x) whose first message is of type 1 (RFC 8446 5.1, 4)."""
    return (len(payload) >= 6 and payload[0] == 0x16 and payload[1] == 3
            and payload[2] <= 4 and payload[5] == 1)


@contextmanager
def keylog_file(keylogs: Sequence[Path]) -> Iterator[Path | None]:
    """The key log for tshark's ``tls.keylog_file``: the one given, or several joined in a
    temporary file (the format is one secret per line, so joining is exact)."""
    if not keylogs:
        yield None
        return
    if len(keylogs) == 1:
        yield keylogs[0]
        return
    fd, name = tempfile.mkstemp(prefix="tshark-dicom-", suffix=".keys")
    try:
        with os.fdopen(fd, "wb") as out:
            for path in keylogs:
                with open(path, "rb") as f:
                    shutil.copyfileobj(f, out)
                out.write(b"\n")
        yield Path(name)
    finally:
        os.unlink(name)


# ---------------------------------------------------------------------------------------
# The tshark pass
# ---------------------------------------------------------------------------------------
#: Fields of the per-packet lines, in this order (one tab-separated line per packet).
TLS_FIELDS: tuple[str, ...] = (
    "frame.number", "frame.time_epoch", "tcp.stream", "ip.src", "ip.dst", "ipv6.src",
    "ipv6.dst", "tcp.srcport", "tcp.dstport", "tcp.seq_raw", "tcp.ack_raw", "tcp.len",
    "tcp.flags", "tcp.window_size_value", "tcp.options.wscale.shift",
    "tls.handshake.type", "tls.handshake.version", "tls.handshake.extensions.supported_version",
    "tls.handshake.ciphersuite", "_ws.col.tdcs", "tls.handshake.extensions_server_name",
    "tls.handshake.certificate", "tls.alert_message.level", "tls.alert_message.desc",
    "tls.record.content_type",
)
(_FRAME, _TIME, _STREAM, _IP_SRC, _IP_DST, _IP6_SRC, _IP6_DST, _SPORT, _DPORT, _SEQ, _ACK,
 _LEN, _FLAGS, _WIN, _WSCALE, _HS_TYPE, _HS_VERSION, _SUPPORTED, _SUITE, _SUITE_NAME, _SNI,
 _CERT, _ALERT_LEVEL, _ALERT_DESC, _CONTENT) = range(len(TLS_FIELDS))
#: A custom column resolves the chosen cipher suite's code to its name ("R").
_COLUMNS = '"tdcs","%Cus:tls.handshake.ciphersuite:0:R"'


def tls_argv(tshark: Tshark, capture: Path, keylogs: Sequence[Path],
             streams: Iterable[int] | None, ports: Iterable[int] = (),
             follow: Iterable[int] | None = None) -> list[str]:
    """One pass: the TLS streams' packets as fields, then a follow block per stream
    (``follow``: only for these of them; the others' handshakes alone are wanted).
    ``keylogs``: at most one file (see `keylog_file`); ``ports``: decoded as TLS even where
    tshark's heuristics would not (``-d tcp.port==N,tls``). ``streams=None``: all TLS."""
    argv = [tshark.path, "-n", "-r", str(capture), "--disable-protocol", "dicom",
            "-o", "tcp.check_checksum:FALSE", "-o", f"gui.column.format:{_COLUMNS}",
            # a segment captured after its successor (dumpcap on a busy loopback writes some
            # out of order) would otherwise leave a gap in the TLS records; TLS 1.3's nonces
            # then fail every later record, and the rest of the connection is lost
            "-o", "tcp.reassemble_out_of_order:TRUE"]
    for path in keylogs:
        argv += ["-o", f"tls.keylog_file:{path}"]
    for port in sorted(set(ports)):
        argv += ["-d", f"tcp.port=={port},tls"]
    chosen = sorted(set(streams)) if streams is not None else None
    argv += ["-Y", stream_set_expression(chosen) if chosen is not None else "tls", "-T", "fields",
             "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,"]
    for f in TLS_FIELDS:
        argv += ["-e", f]
    for stream in sorted(set(follow)) if follow is not None else chosen or ():
        argv += ["-z", f"follow,tls,yaml,{stream}"]
    return argv


def find_tls_argv(tshark: Tshark, capture: Path, ports: Iterable[int] = ()) -> list[str]:
    """For the ek engine (which does not see payloads itself): the stream and server port of
    every TLS ClientHello."""
    argv = [tshark.path, "-n", "-r", str(capture), "--disable-protocol", "dicom"]
    for port in sorted(set(ports)):
        argv += ["-d", f"tcp.port=={port},tls"]
    return argv + ["-Y", "tls.handshake.type == 1", "-T", "fields", "-E", "occurrence=l",
                   "-e", "tcp.stream", "-e", "ip.dst", "-e", "ipv6.dst", "-e", "tcp.dstport"]


@dataclass
class Alert:
    frame: int
    sender: tuple[str, int]
    level: int
    description: int

    @property
    def text(self) -> str:
        return ALERTS.get(self.description, f"alert {self.description}")

    @property
    def fatal(self) -> bool:
        return self.level == 2


@dataclass
class TlsFacts:
    """What one TLS connection's handshake showed, as tshark dissected it."""

    stream: int
    client_hello_frame: int | None = None
    version: int | None = None  # the version the ServerHello chose
    cipher_suite_id: int | None = None
    cipher_suite: str | None = None
    server_name: str | None = None
    certificate_subject: str | None = None
    alerts: list[Alert] = field(default_factory=list)
    #: the decrypted bytes per sender endpoint (filled while the follow block is read)
    decrypted_bytes: dict[tuple[str, int], int] = field(default_factory=dict)
    #: TCP payload bytes per sender endpoint, and the senders of at least one TLS record,
    #: until a ServerHello: a server that answers a ClientHello with bytes but no record
    #: does not speak TLS
    sent: dict[tuple[str, int], int] = field(default_factory=dict)
    record_senders: set[tuple[str, int]] = field(default_factory=set)

    @property
    def version_text(self) -> str | None:
        v = self.version
        return VERSIONS.get(v, f"0x{v:04x}") if v is not None else None

    @property
    def decrypted(self) -> bool:
        return any(self.decrypted_bytes.values())


@dataclass
class TlsPacket:
    """A TCP segment of a TLS stream (payload-less: only its headers matter here)."""

    packet: Packet


@dataclass
class Chunk:
    """Decrypted bytes from one sender, in the frame that completed their TLS record."""

    frame: int
    time_ns: int
    peer: int  # 0 or 1, as the follow block numbers its two peers
    data: bytes


@dataclass
class FollowBlock:
    """One ``follow,tls,yaml`` block: its first peer's address (None if it has no data)
    and its chunks, to be read in order before the next block."""

    peer0: tuple[str, int] | None
    chunks: Iterator[Chunk]


def _hex_int(text: bytes) -> int:
    return int(text, 16) if text.startswith(b"0x") else int(text)


def read_tls_output(stdout: IO[bytes], facts: dict[int, TlsFacts]
                    ) -> Iterator[TlsPacket | FollowBlock]:
    """tshark's output of `tls_argv`: a TlsPacket per packet line (``facts`` updated as the
    handshake goes), then a FollowBlock per stream."""
    src = _Buffered(stdout)
    #: the time of each frame that completed an application data record: the follow block
    #: prints times as floating-point seconds, which lose the nanoseconds (about 0.2 us)
    times: dict[int, int] = {}
    while True:
        line = src.readline()
        if not line or line.startswith(b"peers:"):
            break
        cols = line.rstrip(b"\r\n").split(b"\t")
        if len(cols) < len(TLS_FIELDS) or not cols[_STREAM]:
            continue
        pkt = _packet(cols, facts)
        if b"23" in cols[_CONTENT].split(b","):
            times[pkt.frame] = pkt.time_ns
        yield TlsPacket(pkt)
    while line.startswith(b"peers:"):
        reader = _FollowReader(src, times)
        yield FollowBlock(reader.peer0(), reader.chunks())
        reader.drain()
        line = src.readline()


def _last(value: bytes) -> str:
    return value.rsplit(b",", 1)[-1].decode()


def _packet(cols: list[bytes], facts: dict[int, TlsFacts]) -> Packet:
    stream = int(cols[_STREAM].split(b",")[0])
    if cols[_IP_SRC]:
        src, dst = _last(cols[_IP_SRC]), _last(cols[_IP_DST])
    else:
        src, dst = _last(cols[_IP6_SRC]), _last(cols[_IP6_DST])
    sport, dport = int(cols[_SPORT].split(b",")[0]), int(cols[_DPORT].split(b",")[0])
    pkt = Packet(
        int(cols[_FRAME]), epoch_ns(cols[_TIME].decode()), stream, src, sport, dst, dport,
        int(cols[_SEQ].split(b",")[0]), int(cols[_ACK].split(b",")[0] or 0),
        int(cols[_LEN].split(b",")[0]), int(cols[_FLAGS].split(b",")[0], 16), b"",
        int(cols[_WIN].split(b",")[0] or -1),
        int(cols[_WSCALE].split(b",")[0]) if cols[_WSCALE] else -1)
    f = facts.get(stream)
    if pkt.tcp_len and (f is None or f.version is None):
        # counted only until a ServerHello: after it nothing asks (tlsassoc._not_tls), and
        # a decrypted transfer's packets need not pay for it
        if f is None:
            f = facts[stream] = TlsFacts(stream)
        sender = (src, sport)
        f.sent[sender] = f.sent.get(sender, 0) + pkt.tcp_len
        if cols[_CONTENT]:
            f.record_senders.add(sender)
    if cols[_HS_TYPE] or cols[_ALERT_DESC] or cols[_CONTENT]:
        _handshake(cols, pkt, facts.setdefault(stream, TlsFacts(stream)))
    return pkt


def _handshake(cols: list[bytes], pkt: Packet, f: TlsFacts) -> None:
    types = [int(t) for t in cols[_HS_TYPE].split(b",") if t]
    if 1 in types and f.client_hello_frame is None:  # ClientHello
        f.client_hello_frame = pkt.frame
        if cols[_SNI]:
            f.server_name = cols[_SNI].split(b",")[0].decode("utf-8", "replace")
    if 2 in types and f.version is None:  # ServerHello: its supported_versions, else version
        chosen = [_hex_int(v) for v in cols[_SUPPORTED].split(b",") if v]
        hello = [_hex_int(v) for v in cols[_HS_VERSION].split(b",") if v]
        f.version = chosen[0] if chosen else (hello[0] if hello else None)
        if cols[_SUITE]:
            f.cipher_suite_id = _hex_int(cols[_SUITE].split(b",")[0])
        if cols[_SUITE_NAME]:
            f.cipher_suite = cols[_SUITE_NAME].split(b",")[0].decode()
    if 11 in types and f.certificate_subject is None and cols[_CERT]:  # Certificate
        try:
            f.certificate_subject = certificate_subject(
                binascii.unhexlify(cols[_CERT].split(b",")[0].replace(b":", b"")))
        except (ValueError, IndexError):
            log.debug("stream %d: certificate in frame %d not readable", f.stream, pkt.frame)
    if cols[_ALERT_DESC]:
        levels = [int(v) for v in cols[_ALERT_LEVEL].split(b",") if v]
        for i, desc in enumerate(int(v) for v in cols[_ALERT_DESC].split(b",") if v):
            level = levels[i] if i < len(levels) else 0
            f.alerts.append(Alert(pkt.frame, (pkt.src, pkt.sport), level, desc))


class _Buffered:
    """tshark's stdout, read in 1 MiB pieces: lines for the packet lines and block headers,
    and whole base64 runs for the data (a block's data is most of the output: taken line by
    line it cost more than tshark's whole pass)."""

    _READ = 1 << 20

    def __init__(self, stdout: IO[bytes]) -> None:
        self.stdout = stdout
        self.buf = b""
        self.pos = 0
        self.eof = False

    def _more(self) -> bool:
        if self.eof:
            return False
        piece = self.stdout.read(self._READ)
        if not piece:
            self.eof = True
            return False
        self.buf = self.buf[self.pos:] + piece
        self.pos = 0
        return True

    def readline(self) -> bytes:
        while True:
            nl = self.buf.find(b"\n", self.pos)
            if nl >= 0:
                line = self.buf[self.pos:nl + 1]
                self.pos = nl + 1
                return line
            if not self._more():
                line = self.buf[self.pos:]
                self.pos = len(self.buf)
                return line

    def peek(self, n: int) -> bytes:
        while len(self.buf) - self.pos < n and self._more():
            pass
        return self.buf[self.pos:self.pos + n]

    def base64_run(self) -> bytes:
        """The data lines that start here (indented base64), as one string: up to the next
        ``  - packet:`` or ``peers:`` line (neither can occur inside base64 text)."""
        scanned = self.pos
        while True:
            nxt = self.buf.find(b"\n  - ", scanned)
            block = self.buf.find(b"\npeers:", scanned, nxt if nxt >= 0 else len(self.buf))
            stop = (block if block >= 0 else nxt) + 1
            if stop:
                run = self.buf[self.pos:stop]
                self.pos = stop
                return run
            offset = max(len(self.buf) - self.pos - 8, 0)  # a marker may straddle the reads
            if not self._more():
                run = self.buf[self.pos:]
                self.pos = len(self.buf)
                return run
            scanned = self.pos + offset


class _FollowReader:
    """Reads one ``follow,tls,yaml`` block (tshark 4.0's layout)::

        peers:
          - peer: 0
            host: 127.0.0.1
            port: 2762
          - peer: 1 ...
        packets:
          - packet: 10
            peer: 1
            timestamp: 1796433640.026807547
            data: !!binary |
              AQAAAADdAAEAAEJF...
    """

    def __init__(self, src: _Buffered, times: dict[int, int]) -> None:
        self.src = src
        self.times = times
        self._peers: list[tuple[str, int]] = []
        host = ""
        while True:
            s = src.readline()
            if not s:
                break
            s = s.strip()
            if s.startswith(b"host:"):
                host = s[5:].strip().decode()
            elif s.startswith(b"port:"):
                self._peers.append((host, int(s[5:].strip() or 0)))
            elif s == b"packets:":
                break
        self._done = False

    def peer0(self) -> tuple[str, int] | None:
        if not self._peers or not self._peers[0][0]:
            return None
        return self._peers[0]

    def chunks(self) -> Iterator[Chunk]:
        src = self.src
        frame = peer = time_ns = 0
        while src.peek(4) == b"  - ":
            s = src.readline().strip()
            if s.startswith(b"- packet:"):
                frame = int(s[9:])
            while True:
                s = src.readline().strip()
                if s.startswith(b"peer:"):
                    peer = int(s[5:])
                elif s.startswith(b"timestamp:"):
                    time_ns = epoch_ns(s[10:].strip().decode())
                elif s.startswith(b"data:") or not s:
                    break
            yield Chunk(frame, self.times.get(frame, time_ns), peer,
                        binascii.a2b_base64(src.base64_run()))
        self._done = True

    def drain(self) -> None:
        """Skip what the consumer left of this block."""
        if not self._done:
            for _ in self.chunks():
                pass


# ---------------------------------------------------------------------------------------
# X.509 subject (DER), for the certificate the server sent
# ---------------------------------------------------------------------------------------
def _tlv(der: bytes, i: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the DER element at ``i`` (X.690 8.1)."""
    tag = der[i]
    n = der[i + 1]
    i += 2
    if n & 0x80:
        count = n & 0x7F
        n = int.from_bytes(der[i:i + count], "big")
        i += count
    if i + n > len(der):
        raise ValueError("DER element runs past the end")
    return tag, i, i + n


def _children(der: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    while start < end:
        tag, vs, ve = _tlv(der, start)
        out.append((tag, vs, ve))
        start = ve
    return out


def _oid(raw: bytes) -> str:
    parts = [raw[0] // 40, raw[0] % 40]
    value = 0
    for b in raw[1:]:
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            parts.append(value)
            value = 0
    return ".".join(map(str, parts))


def _escape(value: str) -> str:
    """RFC 4514 2.4 escaping of an attribute value."""
    out = "".join("\\" + c if c in ',+"\\<>;' else c for c in value)
    if out.startswith(("#", " ")):
        out = "\\" + out
    if out.endswith(" ") and not out.endswith("\\ "):
        out = out[:-1] + "\\ "
    return out


def certificate_subject(der: bytes) -> str:
    """A certificate's subject as an RFC 4514 string (``CN=host,O=org``: the last RDN
    first, as ``openssl x509 -subject -nameopt RFC2253`` prints it). RFC 5280 4.1."""
    _, cs, ce = _tlv(der, 0)  # Certificate
    tbs = _children(der, *_tlv(der, cs)[1:])  # TBSCertificate's fields
    if tbs and tbs[0][0] == 0xA0:  # [0] version
        tbs = tbs[1:]
    _, ss, se = tbs[4]  # serialNumber, signature, issuer, validity, subject
    rdns = []
    for _, rs, re_ in _children(der, ss, se):  # RelativeDistinguishedName (SET)
        parts = []
        for _, as_, ae in _children(der, rs, re_):  # AttributeTypeAndValue
            (_, os_, oe), (vtag, vs, ve) = _children(der, as_, ae)[:2]
            oid = _oid(der[os_:oe])
            raw = der[vs:ve]
            text = raw.decode("utf-16-be" if vtag == 0x1E else "utf-8", "replace")
            parts.append(f"{_X500_NAMES.get(oid, oid)}={_escape(text)}")
        rdns.append("+".join(parts))
    return ",".join(reversed(rdns))


__all__ = ["ALERTS", "CLEAR_DICOM_PORTS", "DICOM_TLS_PORT", "Chunk", "FollowBlock", "TlsFacts",
           "TlsOptions", "TlsPacket", "certificate_subject", "check_tls_options", "find_tls_argv",
           "has_embedded_secrets", "keylog_file", "looks_like_tls", "read_tls_output",
           "tls_argv"]
