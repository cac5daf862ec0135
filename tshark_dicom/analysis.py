"""One capture, end to end: tshark passes -> TCP connections -> associations -> records.

This is the streaming core every output is built on: packets flow through once, each
connection's state lives only while its packets do, and data sets flow to disk.
"""

from __future__ import annotations

import logging
import os
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .association import Association, FindingRecord
from .crosscheck import crosscheck
from .objects import ObjectSink, infer_transfer_syntax, safe_object_name
from .packets import read_packets
from .streams import TcpConnection
from .tshark import Tshark, check_capture, find_streams_argv, packets_argv, run_tshark

log = logging.getLogger(__name__)

#: Which data sets become Part-10 files (SPEC: C-STORE, including C-GET/C-MOVE sub-operations).
FILE_COMMANDS = frozenset({"C-STORE-RQ"})


@dataclass
class CaptureResult:
    """Everything one capture gave: its associations (DICOM only, in first-packet order)
    and the findings that belong to no association."""

    capture: str
    associations: list[Association]
    findings: list[FindingRecord] = field(default_factory=list)
    packets: int = 0
    payload_bytes: int = 0
    elapsed_s: float = 0.0
    truncated: bool = False


ProgressFn = Callable[[int], None]


def analyze_capture(
    path: Path,
    *,
    label: str,
    tshark: Tshark,
    ports: Sequence[int] = (),
    objects_dir: Path | None = None,
    cross_check: bool = False,
    progress: ProgressFn | None = None,
) -> CaptureResult:
    """Analyse one capture file; ``objects_dir`` (if given) receives its Part-10 files."""
    started = time.monotonic()
    check_capture(tshark, path)
    result = CaptureResult(label, [])
    portset = frozenset(ports)

    with run_tshark(find_streams_argv(tshark, path, ports), path) as (out, run1):
        candidates = sorted({int(tok) for tok in out.read().split() if tok.isdigit()})
    if run1.truncated:
        result.truncated = True
        result.findings.append(FindingRecord(
            None, None, "warning", "capture-truncated",
            f"{label} was cut short in the middle of a packet; everything before that point "
            "was analysed"))
    if not candidates:
        result.findings.append(_no_dicom(label, ports))
        result.elapsed_s = time.monotonic() - started
        return result
    provisional = {stream: i for i, stream in enumerate(candidates)}

    def dataset_sink(*, stream: int, msg_index: int, command: str, sop_class_uid: str | None,
                     sop_instance_uid: str | None, transfer_syntax: str | None,
                     source_ae: str | None) -> ObjectSink:
        write = objects_dir is not None and command in FILE_COMMANDS
        return ObjectSink(
            objects_dir if write else None,
            safe_object_name(sop_instance_uid, provisional[stream], msg_index),
            sop_class_uid=sop_class_uid, sop_instance_uid=sop_instance_uid,
            transfer_syntax=transfer_syntax, source_ae=source_ae)

    assocs: dict[int, Association] = {}
    conns: dict[int, TcpConnection] = {}
    snaplen_cut = 0
    first_cut_frame: int | None = None
    with run_tshark(packets_argv(tshark, path, candidates), path) as (out, run2):
        for pkt in read_packets(out):
            result.packets += 1
            result.payload_bytes += pkt.tcp_len
            conn = conns.get(pkt.stream)
            if conn is None:
                assoc = Association(pkt.stream, ports=portset, dataset_sink=dataset_sink,
                                    guess_transfer_syntax=infer_transfer_syntax)
                assocs[pkt.stream] = assoc
                conn = conns[pkt.stream] = TcpConnection(pkt.stream, assoc.sink_for)
            else:
                assoc = assocs[pkt.stream]
            if pkt.tcp_len > len(pkt.payload):
                snaplen_cut += 1
                first_cut_frame = first_cut_frame or pkt.frame
            assoc.note_packet(pkt)
            conn.feed(pkt)
            if progress is not None and result.packets % 4096 == 0:
                progress(result.packets)
    if run2.truncated and not result.truncated:
        result.truncated = True
    for stream, conn in conns.items():
        conn.finish()
        assoc = assocs[stream]
        for endpoint, half in conn.halves.items():
            role = assoc.role_of(endpoint)
            assoc.tcp_retransmitted[role] += half.stats.retransmitted_bytes
            assoc.tcp_out_of_order[role] += half.stats.out_of_order
        assoc.finish()
    if snaplen_cut:
        result.findings.append(FindingRecord(
            None, first_cut_frame, "warning", "capture-snaplen",
            f"{snaplen_cut} DICOM packets in {label} were cut by the capture's snapshot length; "
            "their missing bytes are treated as capture gaps"))
    dicom = [a for a in sorted(assocs.values(), key=lambda a: a.stream) if a.is_dicom]
    _settle_object_names(dicom, provisional, objects_dir)
    result.associations = dicom
    if not dicom:
        result.findings.append(_no_dicom(label, ports))
    elif cross_check:
        for aid, finding in crosscheck(tshark, path, label, dicom, ports):
            (dicom[aid].findings if aid is not None else result.findings).append(finding)
    result.elapsed_s = time.monotonic() - started
    log.debug("%s: %d packets, %d associations in %.1f s (peak RSS %d MB)", label,
              result.packets, len(dicom), result.elapsed_s,
              resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
    return result


def _settle_object_names(dicom: list[Association], provisional: dict[int, int],
                         objects_dir: Path | None) -> None:
    """File names carry the association number; if a candidate stream turned out not to be
    DICOM the numbers shift, and the few files concerned are renamed to match."""
    if objects_dir is None:
        return
    for assoc_id, assoc in enumerate(dicom):
        if provisional[assoc.stream] == assoc_id:
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
        "A-ASSOCIATE-RQ; use --port for captures that start mid-association")
