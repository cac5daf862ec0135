"""Records -> rows: what the analysis found, as the rows of the tables whose columns and
dtypes schemas.py defines (SPEC.md). Plain dicts, no pandas: a worker process that only
writes parts (batch.py, store.PartWriter: rows straight into Arrow) never loads it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .association import Association
from .captureresult import CaptureResult, FinishedAssociation
from .commitment import reason_text, wait_ms
from .mpps import StepMessage
from .queries import QueryRecord
from .records import (
    ABORT_REASONS,
    ABORT_SOURCES,
    CONTEXT_RESULTS,
    REJECT_REASONS,
    REJECT_RESULTS,
    REJECT_SOURCES,
    USER_IDENTITY_TYPES,
    FindingRecord,
    MessageRecord,
    uid_name,
)
from .tcpevidence import ConnectionEvidence
from .timing import AssociationTiming, OperationRecord, ms_between
from .tlsassoc import TlsAssociation

#: Throughput rows are written for associations that moved at least this much (bytes).
THROUGHPUT_MIN_BYTES = 1 << 20


def _timing_row(a: Association, t: AssociationTiming,
                ev: ConnectionEvidence | None) -> dict[str, Any]:
    ws: dict[str, int | None] = {"requestor": None, "acceptor": None}
    mw: dict[str, int | None] = {"requestor": None, "acceptor": None}
    if ev is not None:
        for ep, d in ev.directions.items():
            role = a.role_of(ep)
            ws[role], mw[role] = d.window_scale, d.max_window
    return {
        "rtt_ms": t.rtt_ms, "rtt_requestor_ms": t.rtt_requestor_ms,
        "rtt_acceptor_ms": t.rtt_acceptor_ms, "rtt_source": t.rtt_source,
        "capture_point": t.capture_point, "window_scale_known": t.window_scale_known,
        "window_scale_requestor": ws["requestor"], "window_scale_acceptor": ws["acceptor"],
        "max_window_requestor": mw["requestor"], "max_window_acceptor": mw["acceptor"],
        "zero_window_ms": t.zero_window_ms, "release_ms": t.release_ms,
        "active_ms": t.active_ms, "idle_ms": t.idle_ms, "idle_share": t.idle_share,
        "throughput_mbps": t.throughput_mbps, "scu_ms": t.parts["scu"],
        "network_ms": t.parts["network"], "scp_ms": t.parts["scp"],
        "bottleneck": t.bottleneck, "bottleneck_detail": t.bottleneck_detail,
    }


def _op_row(capture: str, aid: int, a: Association, op: OperationRecord) -> dict[str, Any]:
    ae = {"requestor": a.calling_ae, "acceptor": a.called_ae}
    return {
        "capture": capture, "assoc_id": aid, "op_index": op.op_index, "command": op.command,
        "scu": op.scu, "scp": op.scp, "scu_ae": ae[op.scu], "scp_ae": ae[op.scp],
        "message_id": op.message_id, "request_index": op.request_index,
        "final_response_index": op.final_response_index, "response_count": op.responses,
        "pending_response_count": op.pending_responses, "cancel_index": op.cancel_index,
        "sop_class_uid": op.sop_class_uid, "sop_class_name": uid_name(op.sop_class_uid),
        "sop_instance_uid": op.sop_instance_uid, "move_destination": op.move_destination,
        "status": op.status, "status_hex": op.status_hex,
        "status_category": op.status_category, "status_text": op.status_text,
        "error_comment": op.error_comment, "remaining": op.remaining,
        "completed": op.completed, "failed": op.failed, "warning": op.warning,
        "parent_assoc_id": op.parent_assoc_id, "parent_op_index": op.parent_op_index,
        "callback_assoc_ids": op.callback_assoc_ids,
        "callback_attempt_ids": op.callback_attempt_ids,
        "suboperations_seen": op.suboperations_seen,
        "suboperations_failed": op.suboperations_failed, "link": op.link,
        "request_first_at": op.request_first_ns, "request_complete_at": op.request_complete_ns,
        "response_first_at": op.response_first_ns,
        "response_complete_at": op.response_complete_ns,
        "gap_before_ms": op.gap_before_ms, "request_transfer_ms": op.request_transfer_ms,
        "turnaround_ms": op.turnaround_ms, "response_transfer_ms": op.response_transfer_ms,
        "total_ms": op.total_ms, "gap_network_ms": op.gap_network_ms,
        "turnaround_network_ms": op.turnaround_network_ms, "request_bytes": op.request_bytes,
        "response_bytes": op.response_bytes, "request_mbps": op.request_mbps,
        "retransmitted_bytes": op.retransmitted_bytes, "zero_window_ms": op.zero_window_ms,
        "window_full_ms": op.window_full_ms, "rtt_ms": op.rtt_ms,
        "scu_ms": op.parts["scu"], "network_ms": op.parts["network"],
        "scp_ms": op.parts["scp"], "bottleneck": op.bottleneck,
        "bottleneck_detail": op.bottleneck_detail,
        "first_frame": op.first_frame, "last_frame": op.last_frame,
    }


def _throughput_rows(capture: str, aid: int, a: Association,
                     ev: ConnectionEvidence | None) -> list[dict[str, Any]]:
    if ev is None or sum(d.data_bytes for d in ev.directions.values()) < THROUGHPUT_MIN_BYTES:
        return []
    bin_ms = ev.bin_ns / 1e6
    rows = []
    for ep, d in ev.directions.items():
        sender = a.role_of(ep)
        for start, nbytes in d.bins:
            rows.append({"capture": capture, "assoc_id": aid, "sender": sender,
                         "bin_start": start, "bin_ms": bin_ms, "bytes": nbytes,
                         "mbps": nbytes * 8 / (bin_ms * 1000)})
    rows.sort(key=lambda r: (r["bin_start"], r["sender"]))
    return rows


def _query_row(capture: str, aid: int, q: QueryRecord) -> dict[str, Any]:
    return {
        "capture": capture, "assoc_id": aid, "op_index": q.op_index, "command": q.command,
        "information_model": q.information_model, "query_level": q.query_level,
        "move_destination": q.move_destination, "matching_keys": q.matching_keys,
        "return_keys": q.return_keys, "match_count": q.matches, "status_hex": q.status_hex,
        "status_category": q.status_category, "refined_from_op": q.refined_from_op,
        "diagnosis": q.diagnosis, "diagnosis_detail": q.diagnosis_detail,
        "failed_sop_instances": q.failed_sop_instances,
        "identifier_problem": q.identifier_problem,
    }


def attempt_rows(res: CaptureResult, aid_of: Callable[[int], int]) -> list[dict[str, Any]]:
    """The connection_attempts rows; ``aid_of`` numbers an association given its stream."""
    owner = res.attempt_owners
    return [{
        "capture": res.capture, "attempt_id": i, "tcp_stream": t.tcp_stream,
        "client_ip": t.client[0], "client_port": t.client[1], "server_ip": t.server[0],
        "server_port": t.server[1], "first_at": t.first_ns, "last_at": t.last_ns,
        "frame": t.frame, "syn_count": t.syns, "outcome": t.outcome,
        "move_assoc_id": aid_of(owner[i][0]) if i in owner else None,
        "move_op_index": owner[i][1] if i in owner else None,
    } for i, t in enumerate(res.attempts)]


def commitment_rows(res: CaptureResult, aid_of: Callable[[int], int]) -> list[dict[str, Any]]:
    """The commitments rows, one per Storage Commitment transaction, in request order (a
    result whose request is not in the capture: where it came)."""
    rows = []
    for t in res.commitments:
        req, out = t.request, t.result
        first = req or out
        assert first is not None
        row: dict[str, Any] = {
            "capture": res.capture, "transaction_uid": first.transaction_uid,
            "scu_ae": first.sender_ae if req is not None else first.receiver_ae,
            "scp_ae": first.receiver_ae if req is not None else first.sender_ae,
            "outcome": t.outcome,
            "problem": "; ".join(f"{m.kind}: {m.problem}" for m in (req, out)
                                 if m is not None and m.problem) or None,
        }
        if req is not None:
            row.update({"assoc_id": aid_of(req.stream), "op_index": req.op.op_index,
                        "requested_at": req.op.request_complete_ns,
                        "requested_count": req.referenced,
                        "request_status_hex": req.op.status_hex})
        if out is not None:
            row.update({
                "result_assoc_id": aid_of(out.stream), "result_op_index": out.op.op_index,
                "result_on": None if req is None else "same-association"
                if req.stream == out.stream else "new-association",
                "result_at": out.op.request_complete_ns, "wait_ms": wait_ms(t),
                "committed_count": out.referenced, "failed_count": out.failed,
                "failure_reasons": [f"{reason_text(code)}: {n}" for code, n in
                                    sorted(out.reasons.items(), key=lambda kv: -kv[1])],
                "failed_sop_instances": [inst for _, inst, _ in out.failed_items],
            })
        rows.append(row)
    return rows


def step_rows(res: CaptureResult, aid_of: Callable[[int], int]) -> list[dict[str, Any]]:
    """The procedure_steps rows, one per MPPS instance, in the order first seen."""
    log = res.steps
    rows: list[dict[str, Any]] = []
    for step in log.steps if log is not None else ():
        msgs = [*([step.create] if step.create else []), *step.sets]
        first, create, final = step.first, step.create, step.final

        def seen(attr: str, msgs: list[StepMessage] = msgs) -> Any:
            return next((getattr(m, attr) for m in msgs if getattr(m, attr)), None)

        listing = step.images
        rows.append({
            "capture": res.capture, "sop_instance_uid": step.uid,
            "assoc_id": aid_of(create.stream) if create else None,
            "op_index": create.op.op_index if create else None,
            "scu_ae": first.sender_ae, "scp_ae": first.receiver_ae,
            "station_ae": seen("station_ae"), "pps_id": seen("pps_id"),
            "accession_number": seen("accession_number"),
            "study_instance_uid": seen("study_instance_uid"),
            "created_at": create.op.request_complete_ns if create else None,
            "create_status_hex": create.op.status_hex if create else None,
            "set_count": len(step.sets),
            "final_assoc_id": aid_of(final.stream) if final else None,
            "final_op_index": final.op.op_index if final else None,
            "status": step.status,
            "ended_at": final.op.request_complete_ns if final else None,
            "duration_ms": ms_between(create.op.request_complete_ns,
                                      final.op.request_complete_ns)
            if create and final else None,
            "image_count": listing.image_count if listing else None,
            "stored_count": log.stored_count(step) if log is not None else None,
            "discontinuation_reason": final.discontinuation if final else None,
            "outcome": step.outcome,
            "problem": "; ".join(f"N-{m.kind.upper()}: {m.problem}" for m in msgs
                                 if m.problem) or None,
        })
    return rows


def finding_row(capture: str, aid: int | None, f: FindingRecord) -> dict[str, Any]:
    return {"capture": capture, "assoc_id": aid, "msg_index": f.msg_index, "frame": f.frame,
            "severity": f.severity, "code": f.code, "summary": f.summary}


def association_row(capture: str, aid: int, a: Association) -> dict[str, Any]:
    """One association's row of the associations table, without its timing columns."""
    req = a.requestor or ("", None)
    acc = a.acceptor or ("", None)
    rj = a.reject
    ab = a.abort
    reject_text = None
    if rj:
        res, src, reason = rj
        reject_text = (f"{REJECT_RESULTS.get(res, f'result {res}')}; "
                       f"{REJECT_SOURCES.get(src, f'source {src}')}; "
                       f"{REJECT_REASONS.get((src, reason), f'reason {reason}')}")
    abort_text = None
    if ab:
        src, reason = ab
        abort_text = ABORT_SOURCES.get(src, f"source {src}")
        if src == 2:
            abort_text += f"; {ABORT_REASONS.get(reason, f'reason {reason}')}"
    dirs = {a.role_of(ep): d for ep, d in a.directions.items()}
    req_dir, acc_dir = dirs.get("requestor"), dirs.get("acceptor")
    ended = a.ended_ns if a.ended_ns is not None else a.last_ns
    aw_rq, aw_ac = a.async_window["requestor"], a.async_window["acceptor"]
    return {
        "capture": capture, "assoc_id": aid, "tcp_stream": a.stream,
        "requestor_ip": req[0] or None, "requestor_port": req[1],
        "acceptor_ip": acc[0] or None, "acceptor_port": acc[1],
        "calling_ae": a.calling_ae, "called_ae": a.called_ae,
        "requested_at": a.requested_ns, "responded_at": a.responded_ns,
        "ended_at": ended if a.ending != "open" else None,
        "result": a.result, "ending": a.ending,
        "reject_result": rj[0] if rj else None, "reject_source": rj[1] if rj else None,
        "reject_reason": rj[2] if rj else None,
        "abort_source": ab[0] if ab else None, "abort_reason": ab[1] if ab else None,
        "reject_text": reject_text, "abort_text": abort_text,
        "max_pdu_requestor": a.max_pdu["requestor"], "max_pdu_acceptor": a.max_pdu["acceptor"],
        "impl_class_uid_requestor": a.impl_uid["requestor"],
        "impl_version_requestor": a.impl_version["requestor"],
        "impl_class_uid_acceptor": a.impl_uid["acceptor"],
        "impl_version_acceptor": a.impl_version["acceptor"],
        "message_count": a.message_count, "object_count": a.object_count,
        "bytes_requestor": req_dir.parser.nbytes if req_dir else 0,
        "bytes_acceptor": acc_dir.parser.nbytes if acc_dir else 0,
        "application_context": a.application_context,
        "async_ops_invoked_requestor": aw_rq[0] if aw_rq else None,
        "async_ops_performed_requestor": aw_rq[1] if aw_rq else None,
        "async_ops_invoked_acceptor": aw_ac[0] if aw_ac else None,
        "async_ops_performed_acceptor": aw_ac[1] if aw_ac else None,
        "user_identity_type": a.user_identity_type,
        "user_identity_text": USER_IDENTITY_TYPES.get(a.user_identity_type or 0),
        "user_identity_username": a.user_identity_user,
        "first_frame": a.first_frame, "last_frame": a.last_frame,
        "pdus_requestor": sum(a.pdus["requestor"].values()),
        "pdus_acceptor": sum(a.pdus["acceptor"].values()),
        "gap_bytes": a.gap_bytes, "abort_sender": a.abort_sender,
        "retransmitted_bytes_requestor": a.tcp_retransmitted["requestor"],
        "retransmitted_bytes_acceptor": a.tcp_retransmitted["acceptor"],
        "out_of_order_requestor": a.tcp_out_of_order["requestor"],
        "out_of_order_acceptor": a.tcp_out_of_order["acceptor"],
        "duration_ms": ms_between(a.requested_ns or a.first_ns,
                                  ended if a.ending != "open" else None),
        "setup_ms": ms_between(a.requested_ns, a.responded_ns),
        **_tls_columns(a),
    }


def _tls_columns(a: Association) -> dict[str, Any]:
    if not isinstance(a, TlsAssociation):
        return {"tls": False}
    f = a.tls
    alert = a.tls_alert
    return {"tls": True, "tls_version": f.version_text, "tls_cipher_suite": f.cipher_suite,
            "tls_cipher_suite_id": f.cipher_suite_id, "tls_server_name": f.server_name,
            "tls_certificate_subject": f.certificate_subject, "tls_decrypted": f.decrypted,
            "tls_alert": alert[0] if alert else None,
            "tls_alert_sender": alert[1] if alert else None}


#: Rows of one table of one association come in pieces of at most this many (a long
#: association's messages never stand in memory as rows all at once).
PIECE_ROWS = 2048


def association_rows(done: FinishedAssociation, capture: str, objects_prefix: str = ""
                     ) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Every row one association gives, as (table, rows) pieces of at most PIECE_ROWS
    rows. Its ``assoc_id`` (and the ids in its correlation columns) are still TCP stream
    numbers: spool.py numbers them."""
    a, aid = done.assoc, done.assoc.stream
    row = association_row(capture, aid, a)
    row.update(_timing_row(a, done.timing, done.evidence))
    yield "associations", [row]
    yield from _pieces("operations", (_op_row(capture, aid, a, op) for op in done.ops))
    yield "throughput", _throughput_rows(capture, aid, a, done.evidence)
    yield from _pieces("queries", (_query_row(capture, aid, q) for q in done.queries))
    yield from _pieces("query_keys", (
        {"capture": capture, "assoc_id": aid, "op_index": op_index,
         "source": k.source, "response_number": k.response_number, "tag": k.tag,
         "keyword": k.keyword, "vr": k.vr, "value": k.value, "empty": k.empty}
        for op_index, k in done.query_keys))
    yield "presentation_contexts", [{
        "capture": capture, "assoc_id": aid, "context_id": c.context_id,
        "abstract_syntax": c.abstract_syntax,
        "abstract_syntax_name": uid_name(c.abstract_syntax),
        "proposed_transfer_syntaxes": list(c.proposed_transfer_syntaxes),
        "result": c.result,
        "result_text": CONTEXT_RESULTS.get(c.result) if c.result is not None else None,
        "transfer_syntax": c.transfer_syntax,
        "transfer_syntax_name": uid_name(c.transfer_syntax),
        "scu_role_proposed": c.scu_role_proposed,
        "scp_role_proposed": c.scp_role_proposed,
        "scu_role_accepted": c.scu_role_accepted,
        "scp_role_accepted": c.scp_role_accepted,
        "ext_neg_requested": c.ext_neg_requested,
        "ext_neg_accepted": c.ext_neg_accepted,
    } for c in a.context_rows()]
    yield from _pieces("messages", (_message_row(capture, aid, m) for m in done.messages))
    yield from _pieces("objects", ({
        "capture": capture, "assoc_id": aid, "msg_index": o.msg_index,
        "command": o.command, "sender": o.sender,
        "sop_class_uid": o.sop_class_uid, "sop_class_name": uid_name(o.sop_class_uid),
        "sop_instance_uid": o.sop_instance_uid,
        "study_instance_uid": o.study_instance_uid,
        "series_instance_uid": o.series_instance_uid, "modality": o.modality,
        "accession_number": o.accession_number,
        "transfer_syntax": o.transfer_syntax,
        "transfer_syntax_name": uid_name(o.transfer_syntax),
        "transfer_syntax_inferred": o.transfer_syntax_inferred,
        "dataset_bytes": o.dataset_bytes, "sha256": o.sha256 or None,
        "complete": o.complete, "problem": o.problem,
        "path": objects_prefix + o.path if o.path else None,
        "meta_notes": o.meta_notes,
    } for o in done.objects))
    yield "findings", [finding_row(capture, aid, f) for f in a.findings]


def _pieces(table: str, rows: Iterable[dict[str, Any]]
            ) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    piece: list[dict[str, Any]] = []
    for row in rows:
        piece.append(row)
        if len(piece) >= PIECE_ROWS:
            yield table, piece
            piece = []
    if piece:
        yield table, piece


def _message_row(capture: str, aid: int, m: MessageRecord) -> dict[str, Any]:
    mrow = {k: m.command_value(k) for k in MessageRecord.COMMAND_COLUMNS}
    mrow.update({k: getattr(m, k) for k in (
        "msg_index", "sender", "context_id", "request_index", "status_category",
        "status_text", "has_dataset", "dataset_bytes", "first_frame", "last_frame",
        "fragments", "problem")})
    status = mrow["status"]
    mrow.update(capture=capture, assoc_id=aid, started_at=m.started_ns,
                status_hex=f"0x{status:04X}" if status is not None else None,
                ended_at=m.ended_ns, duration_ms=ms_between(m.started_ns, m.ended_ns),
                sop_class_name=uid_name(mrow["sop_class_uid"]))
    return mrow


#: Per table: the columns that hold an association id, a list of them, and frame numbers.
ASSOC_ID_COLUMNS = {"operations": ("parent_assoc_id",)}
ASSOC_ID_LIST_COLUMNS = {"operations": ("callback_assoc_ids",)}
FRAME_COLUMNS = {
    "associations": ("first_frame", "last_frame"), "messages": ("first_frame", "last_frame"),
    "operations": ("first_frame", "last_frame"), "findings": ("frame",),
}


def renumber(table: str, rows: list[dict[str, Any]], aid: int,
             aid_of: Callable[[int], int], frame_offset: int = 0) -> None:
    """Stream numbers in ``rows`` (one association's) become association ids; frame
    numbers count from ``frame_offset`` (a set: the start of the row's own file)."""
    id_cols = ASSOC_ID_COLUMNS.get(table, ())
    list_cols = ASSOC_ID_LIST_COLUMNS.get(table, ())
    frame_cols = FRAME_COLUMNS.get(table, ()) if frame_offset else ()
    for row in rows:
        row["assoc_id"] = aid
        for col in id_cols:
            if row[col] is not None:
                row[col] = aid_of(row[col])
        for col in list_cols:
            if row[col]:
                row[col] = [aid_of(s) for s in row[col]]
        for col in frame_cols:
            if row[col] is not None:
                row[col] -= frame_offset
