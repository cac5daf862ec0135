"""Cross-check with Wireshark's own DICOM dissector (``--cross-check``).

A second tshark run with its DICOM dissector on reports, per TCP stream, the PDUs it saw
and the association fields it decoded; we compare them with our own associations and make
every disagreement a finding (code ``crosscheck-mismatch``), plus one note per capture that
says how many associations agreed. This is how someone who trusts Wireshark learns to
trust us, and where the two differ, which one to believe (see the finding's text).

Wireshark's values are display text: AE titles padded, UIDs as ``Name (1.2.3)``; the
transfer syntaxes of all contexts of an A-ASSOCIATE-RQ come as one flat list.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .association import Association
from .errors import TsharkDicomError
from .packets import ek_layers
from .pdu import PDU_NAMES
from .records import ACCEPTOR, REQUESTOR, FindingRecord
from .tlsassoc import TlsAssociation
from .tshark import Tshark, run_tshark, stream_set_expression

_UID_IN_PARENS = re.compile(r"\(([0-9.]+)\)\s*$")

CROSSCHECK_FIELDS = (
    "tcp.stream", "frame.number", "dicom.pdu.type", "dicom.assoc.ae.called",
    "dicom.assoc.ae.calling", "dicom.assoc.reject.result", "dicom.assoc.reject.source",
    "dicom.assoc.reject.reason", "dicom.assoc.abort.source", "dicom.assoc.abort.reason",
    "dicom.pctx.id", "dicom.pctx.result", "dicom.pctx.abss.syntax", "dicom.pctx.xfer.syntax",
    "dicom.max_pdu_len", "dicom.userinfo.uid", "dicom.userinfo.version",
)


@dataclass
class WiresharkView:
    """What Wireshark's dissector reported for one TCP stream."""

    pdu_counts: dict[str, int] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)


def _uid(text: str) -> str:
    m = _UID_IN_PARENS.search(text)
    return m.group(1) if m else text.strip()


def crosscheck_argv(tshark: Tshark, capture: Path, streams: Sequence[int],
                    ports: Sequence[int]) -> list[str]:
    tshark.version  # noqa: B018 - fails clearly if this is no usable tshark
    argv = [tshark.path, "-n", "-r", str(capture), "--enable-heuristic", "dicom_tcp"]
    for port in ports:
        argv += ["-d", f"tcp.port=={port},dicom"]
    argv += ["-Y", f"dicom && {stream_set_expression(streams)}", "-T", "ek"]
    for f in CROSSCHECK_FIELDS:
        argv += ["-e", f]
    return argv


def wireshark_views(tshark: Tshark, capture: Path, streams: Sequence[int],
                    ports: Sequence[int]) -> dict[int, WiresharkView]:
    """Run tshark with its DICOM dissector and gather its view per tcp.stream."""
    views: dict[int, WiresharkView] = {}
    if not streams:
        return views
    with run_tshark(crosscheck_argv(tshark, capture, streams, ports), capture) as (out, _):
        for layers in ek_layers(out):
            if "tcp_stream" not in layers:
                continue
            view = views.setdefault(int(layers["tcp_stream"][0]), WiresharkView())
            types = [int(t, 16) for t in layers.get("dicom_pdu_type", [])]
            for t in types:
                name = PDU_NAMES.get(t, f"type {t:#04x}")
                view.pdu_counts[name] = view.pdu_counts.get(name, 0) + 1
            f = view.fields
            if 0x01 in types:
                f["calling_ae"] = layers.get("dicom_assoc_ae_calling", [""])[0].strip()
                f["called_ae"] = layers.get("dicom_assoc_ae_called", [""])[0].strip()
                f["rq_context_ids"] = [int(x, 16) for x in layers.get("dicom_pctx_id", [])]
                f["rq_abstract"] = [_uid(x) for x in layers.get("dicom_pctx_abss_syntax", [])]
                f["rq_transfer"] = [_uid(x) for x in layers.get("dicom_pctx_xfer_syntax", [])]
                f["max_pdu_requestor"] = _first_int(layers, "dicom_max_pdu_len")
                f["impl_class_uid_requestor"] = _first(layers, "dicom_userinfo_uid")
                f["impl_version_requestor"] = _first(layers, "dicom_userinfo_version")
            if 0x02 in types:
                ids = [int(x, 16) for x in layers.get("dicom_pctx_id", [])]
                results = [int(x, 16) for x in layers.get("dicom_pctx_result", [])]
                tss = [_uid(x) for x in layers.get("dicom_pctx_xfer_syntax", [])]
                f["ac_results"] = dict(zip(ids, results, strict=False))
                if len(tss) == len(ids):
                    f["ac_transfer"] = {i: ts for i, ts, r in zip(ids, tss, results, strict=False)
                                          if r == 0}
                f["max_pdu_acceptor"] = _first_int(layers, "dicom_max_pdu_len")
                f["impl_class_uid_acceptor"] = _first(layers, "dicom_userinfo_uid")
                f["impl_version_acceptor"] = _first(layers, "dicom_userinfo_version")
            if 0x03 in types:
                f["reject"] = tuple(_first_int(layers, f"dicom_assoc_reject_{k}")
                                    for k in ("result", "source", "reason"))
            if 0x07 in types:
                f["abort"] = (_first_int(layers, "dicom_assoc_abort_source"),
                              _first_int(layers, "dicom_assoc_abort_reason"))
    return views


def _first(layers: dict[str, list[str]], key: str) -> str | None:
    values = layers.get(key)
    return values[0].strip() if values else None


def _first_int(layers: dict[str, list[str]], key: str) -> int | None:
    value = _first(layers, key)
    if value is None:
        return None
    return int(value, 16) if value.startswith("0x") else int(value)


def compare(assoc: Association, view: WiresharkView | None) -> list[str]:
    """Our association against Wireshark's view of the same stream: the differences."""
    if view is None:
        return ["Wireshark's DICOM dissector did not recognise this stream as DICOM"]
    diffs: list[str] = []
    ours_counts: dict[str, int] = {}
    for role in (REQUESTOR, ACCEPTOR):
        for name, n in assoc.pdus[role].items():
            ours_counts[name] = ours_counts.get(name, 0) + n
    for name in sorted(set(ours_counts) | set(view.pdu_counts)):
        a, b = ours_counts.get(name, 0), view.pdu_counts.get(name, 0)
        if a != b:
            diffs.append(f"{name} PDUs: ours {a}, Wireshark {b}")
    f = view.fields
    ours: dict[str, Any] = {
        "calling_ae": assoc.calling_ae or "", "called_ae": assoc.called_ae or "",
        "max_pdu_requestor": assoc.max_pdu[REQUESTOR],
        "max_pdu_acceptor": assoc.max_pdu[ACCEPTOR],
        "impl_class_uid_requestor": assoc.impl_uid[REQUESTOR],
        "impl_version_requestor": assoc.impl_version[REQUESTOR],
        "impl_class_uid_acceptor": assoc.impl_uid[ACCEPTOR],
        "impl_version_acceptor": assoc.impl_version[ACCEPTOR],
        "reject": assoc.reject, "abort": assoc.abort,
    }
    contexts = assoc.context_rows()
    if assoc.saw_rq:
        ours["rq_context_ids"] = [c.context_id for c in contexts]
        ours["rq_abstract"] = [c.abstract_syntax for c in contexts]
        ours["rq_transfer"] = [ts for c in contexts for ts in c.proposed_transfer_syntaxes]
    if assoc.result == "accepted":
        ours["ac_results"] = {c.context_id: c.result for c in contexts if c.result is not None}
        ours["ac_transfer"] = {c.context_id: c.transfer_syntax for c in contexts
                               if c.result == 0}
    for key, value in ours.items():
        if key not in f:
            if value not in (None, "", [], {}) and key not in ("reject", "abort"):
                diffs.append(f"{key}: ours {value!r}, Wireshark reports none")
            elif key in ("reject", "abort") and value is not None:
                diffs.append(f"{key}: ours {value!r}, Wireshark reports none")
            continue
        if f[key] != value:
            diffs.append(f"{key}: ours {value!r}, Wireshark {f[key]!r}")
    return diffs


def crosscheck(tshark: Tshark, capture: Path, label: str, associations: Sequence[Association],
               ports: Sequence[int]) -> list[tuple[int | None, FindingRecord]]:
    """Findings (with the index of the association they concern) from the comparison.

    The cross-check is an auxiliary run: when it fails (tshark crashes, is killed, or its
    output is cut or not JSON) that is one ``crosscheck-failed`` finding, and the
    analysis, which never depended on it, stands."""
    try:
        # Wireshark's DICOM dissector never sees inside TLS: those are not compared
        clear = [a for a in associations if not isinstance(a, TlsAssociation)]
        views = wireshark_views(tshark, capture, [a.stream for a in clear], ports)
    except (TsharkDicomError, ValueError, KeyError, IndexError) as exc:
        failure = str(exc).removeprefix(f"{capture}: ")
        if not isinstance(exc, TsharkDicomError):
            failure = f"its output could not be read ({type(exc).__name__}: {exc})"
        return [(None, FindingRecord(
            None, None, "warning", "crosscheck-failed",
            f"the cross-check with Wireshark's DICOM dissector on {label} could not be done: "
            f"{' '.join(failure.split())}; the tables are our own decoding, unaffected"))]
    out: list[tuple[int | None, FindingRecord]] = []
    agreed = 0
    for aid, assoc in enumerate(associations):
        if isinstance(assoc, TlsAssociation):
            continue
        diffs = compare(assoc, views.get(assoc.stream))
        if not diffs:
            agreed += 1
        reorder = sum(assoc.tcp_out_of_order.values())
        if diffs and (reorder or assoc.gap_bytes):
            why = []
            if reorder:
                why.append(f"{reorder} out-of-order segments, which Wireshark's DICOM reassembly "
                           "drops unless tcp.reassemble_out_of_order is on")
            if assoc.gap_bytes:
                why.append(f"{assoc.gap_bytes} bytes missing from the capture")
            diffs = [f"{d} (this stream has {'; '.join(why)})" for d in diffs]
        for diff in diffs:
            out.append((aid, FindingRecord(
                None, assoc.first_frame, "warning", "crosscheck-mismatch",
                f"Wireshark's DICOM dissector disagrees on association {aid} "
                f"({assoc.calling_ae} -> {assoc.called_ae}, tcp.stream {assoc.stream}): {diff}")))
    out.append((None, FindingRecord(
        None, None, "note", "crosscheck-summary",
        f"cross-check with Wireshark's DICOM dissector on {label}: {agreed} of "
        f"{len(clear)} associations agree on every PDU count and association field"
        + (f" ({len(associations) - len(clear)} over TLS not compared: Wireshark's DICOM "
           "dissector does not see decrypted TLS)" if len(clear) < len(associations) else ""))))
    return out
