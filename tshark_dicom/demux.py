"""The packet loop: every packet of a capture to its TCP connection (streams.py).

Compiled with the per-packet modules (setup.py): every packet passes through here, and from
compiled code the calls into the connection (``TcpConnection.feed``) and the reads of the
packet's fields are native. What a stream is (an association, or nothing worth keeping)
is its owner's business (analysis.py), asked through `StreamOwner` only when a stream
opens, ends or has yet to show what it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from .packets import Packet
from .streams import TcpConnection


class StreamOwner(Protocol):
    """What the loop asks of the analysis that owns the streams."""

    def open(self, pkt: Packet) -> TcpConnection:
        """A new stream's connection (its first packet is ``pkt``, not yet fed)."""
        ...

    def undecided(self, stream: int) -> bool:
        """Whether the stream may still turn out not to be DICOM (asked when it opens and
        after each of its packets until it says no; once no, always no)."""
        ...

    def drop(self, stream: int, pkt: Packet) -> bool:
        """After ``pkt``: drop the stream if it turned out not to be DICOM (True if so)."""
        ...

    def ended(self, stream: int) -> None:
        """Both directions of the stream ended: finish it."""
        ...


class Totals:
    """What the loop counted, for the capture's result."""

    __slots__ = ("packets", "payload_bytes", "snaplen_cut", "first_cut_frame")

    def __init__(self, packets: int = 0, payload_bytes: int = 0) -> None:
        self.packets = packets
        self.payload_bytes = payload_bytes
        #: DICOM packets cut by the capture's snapshot length, and the first such frame
        self.snaplen_cut = 0
        self.first_cut_frame = 0


def consume(packets: Iterator[Packet], owner: StreamOwner, conns: dict[int, TcpConnection],
            done: set[int], decide: bool, totals: Totals,
            progress: Callable[[int], None] | None) -> None:
    """Feed every packet to its stream's connection (made through ``owner.open``); packets
    of ``done`` streams are skipped. ``decide``: ask ``owner.drop`` after each packet of a
    stream still ``undecided`` (the raw engine drops streams that are not DICOM)."""
    count = totals.packets
    payload_bytes = totals.payload_bytes
    # the last packet's stream, its connection and whether it is still undecided: data
    # come in runs of one connection, which then need no lookup
    last = -1
    conn: TcpConnection | None = None
    open_question = False
    for pkt in packets:
        count += 1
        stream = pkt.stream
        if stream != last or conn is None:
            conn = conns.get(stream)
            if conn is None:
                if stream in done:
                    last = -1
                    continue
                conn = owner.open(pkt)
            last = stream
            open_question = decide and owner.undecided(stream)
        tcp_len = pkt.tcp_len
        if tcp_len > len(pkt.payload):
            totals.snaplen_cut += 1
            if not totals.first_cut_frame:
                totals.first_cut_frame = pkt.frame
        payload_bytes += tcp_len
        conn.feed(pkt)
        if open_question and owner.drop(stream, pkt):
            last = -1
            conn = None
        else:
            if open_question:
                open_question = owner.undecided(stream)
            if pkt.flags & 0x05 and conn.closed:  # FIN or RST: perhaps both sides done
                owner.ended(stream)
                last = -1
                conn = None
        if progress is not None and not count & 0xFFF:
            progress(count)
    totals.packets, totals.payload_bytes = count, payload_bytes
