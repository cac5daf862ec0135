"""tshark's ``-T ek`` output, streamed through ijson, into TCP segment records.

Each ek document is one packet; with ``-e`` every field is a list of strings. Nothing is
kept beyond the packet in hand: memory does not grow with the capture.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

import ijson

# TCP flag bits (RFC 9293 3.1).
FIN = 0x01
SYN = 0x02
RST = 0x04
ACK = 0x10


class Packet:
    """One TCP segment as tshark saw it. ``__slots__``: this is the hot path."""

    __slots__ = (
        "frame", "time_ns", "stream", "src", "sport", "dst", "dport",
        "seq", "ack", "tcp_len", "flags", "payload",
    )

    def __init__(
        self, frame: int, time_ns: int, stream: int, src: str, sport: int, dst: str, dport: int,
        seq: int, ack: int, tcp_len: int, flags: int, payload: bytes,
    ) -> None:
        self.frame = frame
        self.time_ns = time_ns
        self.stream = stream
        self.src = src
        self.sport = sport
        self.dst = dst
        self.dport = dport
        self.seq = seq
        self.ack = ack
        self.tcp_len = tcp_len
        self.flags = flags
        self.payload = payload

    @property
    def missing(self) -> int:
        """Payload bytes the capture does not hold (cut by the snapshot length)."""
        return max(0, self.tcp_len - len(self.payload))

    def __repr__(self) -> str:
        return (
            f"Packet(frame={self.frame}, stream={self.stream}, {self.src}:{self.sport}->"
            f"{self.dst}:{self.dport}, seq={self.seq}, len={self.tcp_len}, flags={self.flags:#x})"
        )


def epoch_ns(text: str) -> int:
    """``"1796072273.591710344"`` -> integer nanoseconds, without float rounding."""
    whole, _, frac = text.partition(".")
    return int(whole) * 1_000_000_000 + int((frac + "000000000")[:9])


def read_packets(stdout: IO[bytes]) -> Iterator[Packet]:
    """Yield a Packet for every TCP segment in tshark's ek output (see tshark.FIELDS)."""
    for layers in ijson.items(stdout, "layers", multiple_values=True):
        stream = layers.get("tcp_stream")
        if not stream:
            continue  # not TCP (an ICMP error quoting a TCP header has no stream of its own)
        if "ip_src" in layers:
            src, dst = layers["ip_src"][-1], layers["ip_dst"][-1]  # innermost, for tunnels
        else:
            src, dst = layers["ipv6_src"][-1], layers["ipv6_dst"][-1]
        payload_hex = layers.get("tcp_payload")
        yield Packet(
            int(layers["frame_number"][0]),
            epoch_ns(layers["frame_time_epoch"][0]),
            int(stream[0]),
            src,
            int(layers["tcp_srcport"][0]),
            dst,
            int(layers["tcp_dstport"][0]),
            int(layers["tcp_seq_raw"][0]),
            int(layers["tcp_ack_raw"][0]) if "tcp_ack_raw" in layers else 0,
            int(layers["tcp_len"][0]),
            int(layers["tcp_flags"][0], 16),
            bytes.fromhex(payload_hex[0]) if payload_hex else b"",
        )
