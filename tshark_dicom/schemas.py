"""Every table's columns and dtypes, in one place (SPEC.md), and frames built to them.

Nullable integers (``Int64``), ``string``, ``boolean``/``bool``, UTC ``datetime64[us, UTC]``
(microseconds: Parquet ``timestamp[us, tz=UTC]``, on which pandas, pyarrow and DuckDB all
compute without casts); an empty result is a zero-row frame with the same columns. What
each column means is in columns.py; how the analysis's records become rows, in tables.py.

This module imports nothing of the analysis, and pandas only where a frame is made: the
run's process reads and reports tables without loading pydicom and pynetdicom (its worker,
forked before they are imported, loads them: batch.py), and a worker that only writes
parts (store.PartWriter: rows straight into Arrow) never loads pandas.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    import pandas as pd

TS = "datetime64[us, UTC]"
LIST = "object"  # a Python list of strings per row (Parquet: list<string>)

SCHEMAS: dict[str, dict[str, str]] = {
    "associations": {
        "capture": "string", "assoc_id": "Int64", "tcp_stream": "Int64",
        "requestor_ip": "string", "requestor_port": "Int64",
        "acceptor_ip": "string", "acceptor_port": "Int64",
        "calling_ae": "string", "called_ae": "string",
        "requested_at": TS, "responded_at": TS, "ended_at": TS,
        "result": "string", "ending": "string",
        "reject_result": "Int64", "reject_source": "Int64", "reject_reason": "Int64",
        "abort_source": "Int64", "abort_reason": "Int64",
        "reject_text": "string", "abort_text": "string",
        "max_pdu_requestor": "Int64", "max_pdu_acceptor": "Int64",
        "impl_class_uid_requestor": "string", "impl_version_requestor": "string",
        "impl_class_uid_acceptor": "string", "impl_version_acceptor": "string",
        "message_count": "Int64", "object_count": "Int64",
        "bytes_requestor": "Int64", "bytes_acceptor": "Int64",
        "application_context": "string",
        "async_ops_invoked_requestor": "Int64", "async_ops_performed_requestor": "Int64",
        "async_ops_invoked_acceptor": "Int64", "async_ops_performed_acceptor": "Int64",
        "user_identity_type": "Int64", "user_identity_text": "string",
        "user_identity_username": "string",
        "first_frame": "Int64", "last_frame": "Int64",
        "pdus_requestor": "Int64", "pdus_acceptor": "Int64",
        "gap_bytes": "Int64", "abort_sender": "string",
        "retransmitted_bytes_requestor": "Int64", "retransmitted_bytes_acceptor": "Int64",
        "out_of_order_requestor": "Int64", "out_of_order_acceptor": "Int64",
        "duration_ms": "Float64", "setup_ms": "Float64",
        # timing (timing.py): round trip at the capture point and its two halves
        "rtt_ms": "Float64", "rtt_requestor_ms": "Float64", "rtt_acceptor_ms": "Float64",
        "rtt_source": "string", "capture_point": "string",
        "window_scale_known": "bool", "window_scale_requestor": "Int64",
        "window_scale_acceptor": "Int64", "max_window_requestor": "Int64",
        "max_window_acceptor": "Int64", "zero_window_ms": "Float64",
        "release_ms": "Float64", "active_ms": "Float64", "idle_ms": "Float64",
        "idle_share": "Float64", "throughput_mbps": "Float64",
        "scu_ms": "Float64", "network_ms": "Float64", "scp_ms": "Float64",
        "bottleneck": "string", "bottleneck_detail": "string",
        # DICOM over TLS (tlsassoc.py): what the handshake showed
        "tls": "bool", "tls_version": "string", "tls_cipher_suite": "string",
        "tls_cipher_suite_id": "Int64", "tls_server_name": "string",
        "tls_certificate_subject": "string", "tls_decrypted": "boolean",
        "tls_alert": "string", "tls_alert_sender": "string",
    },
    "presentation_contexts": {
        "capture": "string", "assoc_id": "Int64", "context_id": "Int64",
        "abstract_syntax": "string", "abstract_syntax_name": "string",
        "proposed_transfer_syntaxes": LIST,
        "result": "Int64", "result_text": "string",
        "transfer_syntax": "string", "transfer_syntax_name": "string",
        "scu_role_proposed": "boolean", "scp_role_proposed": "boolean",
        "scu_role_accepted": "boolean", "scp_role_accepted": "boolean",
        "ext_neg_requested": "string", "ext_neg_accepted": "string",
    },
    "messages": {
        "capture": "string", "assoc_id": "Int64", "msg_index": "Int64", "sender": "string",
        "context_id": "Int64", "command": "string", "command_field": "Int64",
        "message_id": "Int64", "responds_to": "Int64", "request_index": "Int64",
        "sop_class_uid": "string", "sop_class_name": "string", "sop_instance_uid": "string",
        "priority": "Int64", "move_destination": "string", "move_originator_ae": "string",
        "move_originator_message_id": "Int64",
        "status": "Int64", "status_hex": "string", "status_category": "string",
        "status_text": "string", "error_comment": "string",
        "remaining": "Int64", "completed": "Int64", "failed": "Int64", "warning": "Int64",
        "has_dataset": "bool", "dataset_bytes": "Int64",
        "first_frame": "Int64", "last_frame": "Int64", "started_at": TS, "ended_at": TS,
        "duration_ms": "Float64", "fragments": "Int64", "problem": "string",
    },
    "objects": {
        "capture": "string", "assoc_id": "Int64", "msg_index": "Int64", "command": "string",
        "sender": "string",
        "sop_class_uid": "string", "sop_class_name": "string", "sop_instance_uid": "string",
        "study_instance_uid": "string", "series_instance_uid": "string", "modality": "string",
        "accession_number": "string",
        "transfer_syntax": "string", "transfer_syntax_name": "string",
        "transfer_syntax_inferred": "bool",
        "dataset_bytes": "Int64", "sha256": "string", "complete": "bool",
        "problem": "string", "path": "string", "meta_notes": "string",
    },
    "findings": {
        "capture": "string", "assoc_id": "Int64", "msg_index": "Int64", "frame": "Int64",
        "severity": "string", "code": "string", "summary": "string",
    },
    "operations": {
        # identity
        "capture": "string", "assoc_id": "Int64", "op_index": "Int64", "command": "string",
        "scu": "string", "scp": "string", "scu_ae": "string", "scp_ae": "string",
        "message_id": "Int64", "request_index": "Int64", "final_response_index": "Int64",
        "response_count": "Int64", "pending_response_count": "Int64",
        "cancel_index": "Int64",
        "sop_class_uid": "string", "sop_class_name": "string", "sop_instance_uid": "string",
        "move_destination": "string", "status": "Int64", "status_hex": "string",
        "status_category": "string", "status_text": "string", "error_comment": "string",
        "remaining": "Int64", "completed": "Int64", "failed": "Int64", "warning": "Int64",
        # correlation (query/retrieve)
        "parent_assoc_id": "Int64", "parent_op_index": "Int64", "callback_assoc_ids": LIST,
        "callback_attempt_ids": LIST,
        "suboperations_seen": "Int64", "suboperations_failed": "Int64", "link": "string",
        # timing, on the capture clock
        "request_first_at": TS, "request_complete_at": TS, "response_first_at": TS,
        "response_complete_at": TS, "gap_before_ms": "Float64", "request_transfer_ms": "Float64",
        "turnaround_ms": "Float64", "response_transfer_ms": "Float64", "total_ms": "Float64",
        "gap_network_ms": "Float64", "turnaround_network_ms": "Float64",
        "request_bytes": "Int64", "response_bytes": "Int64", "request_mbps": "Float64",
        "retransmitted_bytes": "Int64", "zero_window_ms": "Float64", "window_full_ms": "Float64",
        "rtt_ms": "Float64",
        # attribution
        "scu_ms": "Float64", "network_ms": "Float64", "scp_ms": "Float64",
        "bottleneck": "string", "bottleneck_detail": "string",
        "first_frame": "Int64", "last_frame": "Int64",
    },
    "queries": {
        "capture": "string", "assoc_id": "Int64", "op_index": "Int64", "command": "string",
        "information_model": "string", "query_level": "string", "move_destination": "string",
        "matching_keys": LIST, "return_keys": LIST, "match_count": "Int64",
        "status_hex": "string",
        "status_category": "string", "refined_from_op": "Int64", "diagnosis": "string",
        "diagnosis_detail": "string", "failed_sop_instances": LIST,
        "identifier_problem": "string",
    },
    "query_keys": {
        "capture": "string", "assoc_id": "Int64", "op_index": "Int64", "source": "string",
        "response_number": "Int64", "tag": "string", "keyword": "string", "vr": "string",
        "value": "string", "empty": "bool",
    },
    "connection_attempts": {
        "capture": "string", "attempt_id": "Int64", "tcp_stream": "Int64",
        "client_ip": "string", "client_port": "Int64", "server_ip": "string",
        "server_port": "Int64", "first_at": TS, "last_at": TS, "frame": "Int64",
        "syn_count": "Int64", "outcome": "string", "move_assoc_id": "Int64",
        "move_op_index": "Int64",
    },
    "commitments": {
        "capture": "string", "transaction_uid": "string", "assoc_id": "Int64",
        "op_index": "Int64", "scu_ae": "string", "scp_ae": "string", "requested_at": TS,
        "requested_count": "Int64", "request_status_hex": "string",
        "result_assoc_id": "Int64", "result_op_index": "Int64", "result_on": "string",
        "result_at": TS, "wait_ms": "Float64", "committed_count": "Int64",
        "failed_count": "Int64", "failure_reasons": LIST, "failed_sop_instances": LIST,
        "outcome": "string", "problem": "string",
    },
    "procedure_steps": {
        "capture": "string", "sop_instance_uid": "string", "assoc_id": "Int64",
        "op_index": "Int64", "scu_ae": "string", "scp_ae": "string", "station_ae": "string",
        "pps_id": "string", "accession_number": "string", "study_instance_uid": "string",
        "created_at": TS, "create_status_hex": "string", "set_count": "Int64",
        "final_assoc_id": "Int64", "final_op_index": "Int64", "status": "string",
        "ended_at": TS, "duration_ms": "Float64", "image_count": "Int64",
        "stored_count": "Int64", "discontinuation_reason": "string", "outcome": "string",
        "problem": "string",
    },
    "captures": {
        "capture": "string", "path": "string", "key": "string", "size_bytes": "Int64",
        "mtime_ns": "Int64", "sha256": "string", "packets": "Int64",
        "first_packet_at": TS, "last_packet_at": TS, "link_type": "string",
        "engine": "string", "tshark_version": "string", "status": "string",
        "error": "string", "elapsed_s": "Float64", "association_count": "Int64",
    },
    "throughput": {
        "capture": "string", "assoc_id": "Int64", "sender": "string", "bin_start": TS,
        "bin_ms": "Float64", "bytes": "Int64", "mbps": "Float64",
    },
}

TABLES: tuple[str, ...] = tuple(SCHEMAS)


class ReportLike(Protocol):
    """What the renderers (htmlreport, diagnose) read of a report.Report: its tables and
    summary. They take this, not the Report, so that report.py alone imports them."""

    associations: pd.DataFrame
    findings: pd.DataFrame
    operations: pd.DataFrame
    throughput: pd.DataFrame
    connection_attempts: pd.DataFrame

    def table(self, name: str) -> pd.DataFrame: ...

    def batches(self, table: str, columns: list[str] | None = None,
                filters: Sequence[tuple[str, str, Any]] = ()) -> Iterator[pd.DataFrame]: ...

    def summary(self) -> str: ...

    def row_count(self, table: str) -> int: ...
SEVERITIES = ("error", "warning", "note")


def frame(table: str, rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Build ``table`` from row dicts with exactly its schema's columns and dtypes."""
    data = list(rows)
    if not data:  # asked for often (every empty table of every capture): built once
        return _empty(table).copy()
    return _frame(table, data)


@functools.cache
def _empty(table: str) -> pd.DataFrame:
    """The table without rows, from one empty column of each dtype: 0.03 -> 0.006 s for the
    14 tables (a run's first Report() asks for them all)."""
    import pandas as pd

    columns = {name: _empty_column(dtype) for name, dtype in SCHEMAS[table].items()}
    return pd.DataFrame(columns, index=pd.RangeIndex(0))


@functools.cache
def _empty_column(dtype: str) -> Any:
    return column_of(dtype, [])


def _frame(table: str, data: list[Mapping[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    columns = {name: column_of(dtype, [row.get(name) for row in data])
               for name, dtype in SCHEMAS[table].items()}
    return pd.DataFrame(columns, index=pd.RangeIndex(len(data)))


def plain_rows(df: pd.DataFrame) -> list[dict[str, Any]]:
    """A table's rows as `frame` takes them back: None for a missing value, nanoseconds
    since the epoch for a time."""
    return [{str(k): plain(v) for k, v in row.items()} for row in df.to_dict("records")]


def plain(value: object) -> object:
    """A value as `frame` takes it: None for missing, nanoseconds for a time."""
    import pandas as pd

    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.value
    return value


def column_of(dtype: str, values: list[Any]) -> Any:
    """A column of a SCHEMAS dtype from Python values (times: ns since the epoch)."""
    import pandas as pd

    if dtype == TS:
        return pd.to_datetime(pd.array(values, dtype="Int64"), unit="ns", utc=True).astype(TS)
    if dtype == LIST:
        return pd.Series(values, dtype="object")
    return pd.array(values, dtype=cast(Any, dtype))
