"""Back to the packets: the display filter that shows an association, an operation or a
finding in Wireshark or tshark, and the Decode As it needs where Wireshark would not see
DICOM there by itself.

The filters hold in Wireshark as they are: ``tcp_stream`` is Wireshark's own ``tcp.stream``
number (the raw engine reproduces its numbering, `packets.TcpStreamNumbers`; the ek engine
reads it from tshark) and frames are numbered as Wireshark numbers them.

Wireshark's DICOM dissector claims a TCP connection by itself in two cases only: it saw the
A-ASSOCIATE-RQ open it (the heuristic ``dicom_tcp``, on by default) or the connection is on
port 104, its one registered port (NOTES.md; tests/test_wireshark.py checks both against
tshark). An association the capture holds only from its middle (found with ``--port``) on
any other port shows there as plain TCP until it is decoded as DICOM: Analyze > Decode As
in Wireshark, ``-d tcp.port==P,dicom`` for tshark. Over TLS, Wireshark shows the
association's bytes only with its session keys.

Each function reads rows of the tables as dicts, as `diagnose` and the HTML report hold
them.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from .svg import missing, to_int

#: The one TCP port Wireshark's DICOM dissector is registered on (packet-dcm.c's
#: DICOM_DEFAULT_RANGE): there it decodes a connection without its A-ASSOCIATE-RQ.
DICOM_PORT = 104


def _true(value: object) -> bool:
    return not missing(value) and bool(value)


def stream_filter(tcp_stream: object) -> str | None:
    """``tcp.stream eq N``: every packet of the connection (None without a stream)."""
    n = to_int(tcp_stream)
    return None if n is None else f"tcp.stream eq {n}"


def span_filter(tcp_stream: object, first_frame: object, last_frame: object) -> str | None:
    """The packets of the connection from ``first_frame`` to ``last_frame`` (an operation,
    a message): ``tcp.stream eq N && frame.number >= A && frame.number <= B``; the
    connection's filter alone where the frames are not known."""
    stream = stream_filter(tcp_stream)
    first, last = to_int(first_frame), to_int(last_frame)
    if first is None or last is None:
        return stream
    span = (f"frame.number == {first}" if first == last else
            f"frame.number >= {first} && frame.number <= {last}")
    return span if stream is None else f"{stream} && {span}"


def frame_filter(frame: object) -> str | None:
    """``frame.number == N`` (None without a frame)."""
    n = to_int(frame)
    return None if n is None else f"frame.number == {n}"


def finding_filter(finding: Mapping[str, Any], association: Mapping[str, Any] | None = None
                   ) -> str | None:
    """A finding's packets: the frame it points at, and its association's connection from
    that frame on (``frame.number == F || (tcp.stream eq N && frame.number >= F)``).

    The frame is where the message or event starts; Wireshark shows a PDU decoded in the
    frame that completes it, a few packets later, so the frame alone would show a TCP
    segment. And it may lie on another connection (a C-MOVE's callback refused: its SYN),
    so the connection alone could miss it. Without an association, the frame; without a
    frame, the connection."""
    frame = to_int(finding.get("frame"))
    stream = None if association is None else stream_filter(association.get("tcp_stream"))
    if frame is None:
        return stream
    if stream is None:
        return frame_filter(frame)
    return f"frame.number == {frame} || ({stream} && frame.number >= {frame})"


def decode_as(association: Mapping[str, Any]) -> str | None:
    """``tcp.port==P,dicom`` where Wireshark would show the association as plain TCP: the
    capture lacks its A-ASSOCIATE-RQ (``result`` unknown), it is not over TLS and its
    acceptor's port is not 104. Else None: Wireshark decodes it as it is."""
    port = to_int(association.get("acceptor_port"))
    if association.get("result") != "unknown" or _true(association.get("tls")) \
            or port is None or port == DICOM_PORT:
        return None
    return f"tcp.port=={port},dicom"


def tshark_command(capture: object, display_filter: str | None,
                   decode: str | None = None) -> str:
    """The tshark command line that prints those packets (shell-quoted):
    ``tshark -r CAPTURE [-d tcp.port==P,dicom] -Y FILTER``."""
    argv = ["tshark", "-r", str(capture)]
    if decode:
        argv += ["-d", decode]
    if display_filter:
        argv += ["-Y", display_filter]
    return shlex.join(argv)


def association_note(association: Mapping[str, Any]) -> str | None:
    """What else Wireshark needs to show the association as DICOM, in a sentence: the
    Decode As (`decode_as`), or the session keys over TLS; None when the filter is all."""
    decode = decode_as(association)
    if decode is not None:
        return ("Wireshark shows it as plain TCP until it is decoded as DICOM: tshark -d "
                f"{decode}, or Analyze > Decode As... (the capture starts after its "
                "A-ASSOCIATE-RQ)")
    if _true(association.get("tls")):
        return ("over TLS: Wireshark decrypts it with the same session keys (Follow > TLS "
                "Stream)" if _true(association.get("tls_decrypted")) else
                "over TLS: Wireshark needs the session keys (a key log) to show its bytes")
    return None


def association_hint(association: Mapping[str, Any]) -> str | None:
    """One line for a person: the filter and `association_note` (``tcp.stream eq 3; over
    TLS: ...``). None without a stream."""
    text = stream_filter(association.get("tcp_stream"))
    note = association_note(association)
    return text if text is None or note is None else f"{text}; {note}"
