"""The public Python API: names, errors, table schemas and dtypes, writing."""

from __future__ import annotations

import inspect
from pathlib import Path

import pandas as pd
import pytest

import tshark_dicom
from tshark_dicom import errors
from tshark_dicom.report import Report
from tshark_dicom.schemas import SCHEMAS, TS, frame

from .conftest import CAPTURES

SPEC_COLUMNS = {
    "associations": [
        "capture", "assoc_id", "tcp_stream", "requestor_ip", "requestor_port", "acceptor_ip",
        "acceptor_port", "calling_ae", "called_ae", "requested_at", "responded_at", "ended_at",
        "result", "ending", "reject_result", "reject_source", "reject_reason", "abort_source",
        "abort_reason", "reject_text", "abort_text", "max_pdu_requestor", "max_pdu_acceptor",
        "impl_class_uid_requestor", "impl_version_requestor", "impl_class_uid_acceptor",
        "impl_version_acceptor", "message_count", "object_count", "bytes_requestor",
        "bytes_acceptor"],
    "presentation_contexts": [
        "capture", "assoc_id", "context_id", "abstract_syntax", "abstract_syntax_name",
        "proposed_transfer_syntaxes", "result", "result_text", "transfer_syntax",
        "transfer_syntax_name"],
    "messages": [
        "capture", "assoc_id", "msg_index", "sender", "context_id", "command", "message_id",
        "responds_to", "request_index", "sop_class_uid", "sop_instance_uid", "priority",
        "move_destination", "status", "status_category", "status_text", "error_comment",
        "remaining", "completed", "failed", "warning", "has_dataset", "dataset_bytes",
        "first_frame", "last_frame", "started_at", "ended_at"],
    "objects": [
        "capture", "assoc_id", "msg_index", "command", "sop_class_uid", "sop_instance_uid",
        "transfer_syntax", "dataset_bytes", "sha256", "complete", "problem", "path"],
    "findings": ["capture", "assoc_id", "msg_index", "frame", "severity", "code", "summary"],
    "operations": [
        "capture", "assoc_id", "op_index", "command", "scu", "scp", "message_id",
        "request_index", "final_response_index", "response_count", "pending_response_count",
        "cancel_index", "sop_class_uid", "sop_instance_uid", "move_destination", "status",
        "status_hex", "status_category", "status_text", "remaining", "completed", "failed",
        "warning", "parent_assoc_id", "parent_op_index", "callback_assoc_ids",
        "suboperations_seen", "suboperations_failed", "link", "request_first_at",
        "request_complete_at", "response_first_at", "response_complete_at", "gap_before_ms",
        "request_transfer_ms", "turnaround_ms", "response_transfer_ms", "total_ms",
        "request_bytes", "request_mbps", "retransmitted_bytes", "zero_window_ms", "rtt_ms",
        "bottleneck", "bottleneck_detail"],
    "queries": [
        "capture", "assoc_id", "op_index", "command", "information_model", "query_level",
        "matching_keys", "return_keys", "match_count", "status_hex", "refined_from_op",
        "diagnosis"],
    "query_keys": [
        "capture", "assoc_id", "op_index", "source", "response_number", "tag", "keyword", "vr",
        "value", "empty"],
}


def test_all_is_complete_and_sorted() -> None:
    public = {n for n in dir(tshark_dicom) if not n.startswith("_")
              and not inspect.ismodule(getattr(tshark_dicom, n))} - {
        "annotations", "Sequence", "run"}
    assert set(tshark_dicom.__all__) - {"__version__"} == public
    assert tshark_dicom.__all__ == sorted(tshark_dicom.__all__)


def test_error_tree() -> None:
    for cls in (errors.TsharkNotFoundError, errors.TsharkError, errors.CaptureError,
                errors.OptionsError):
        assert issubclass(cls, tshark_dicom.TsharkDicomError)


@pytest.mark.parametrize("table", list(SPEC_COLUMNS))
def test_every_spec_column_present_in_order(table: str) -> None:
    cols = list(SCHEMAS[table])
    assert cols[:2] == SPEC_COLUMNS[table][:2]
    missing = [c for c in SPEC_COLUMNS[table] if c not in cols]
    assert not missing


def test_empty_report_has_typed_zero_row_frames() -> None:
    report = Report()
    for table, schema in SCHEMAS.items():
        df = report.table(table)
        assert len(df) == 0
        assert list(df.columns) == list(schema)
        for col, dtype in schema.items():
            if dtype == TS:
                assert str(df[col].dtype) == "datetime64[us, UTC]"
            elif dtype != "object":
                assert str(df[col].dtype) == dtype, (table, col)


def test_analyze_gives_explicit_dtypes() -> None:
    report = tshark_dicom.analyze(CAPTURES / "store_104.pcapng")
    a = report.associations
    assert str(a["requested_at"].dtype) == "datetime64[us, UTC]"
    assert str(a["acceptor_port"].dtype) == "Int64"
    assert str(a["calling_ae"].dtype) == "string"
    assert a["acceptor_port"].iloc[0] == 104
    assert report.objects["path"].isna().all()  # no objects_dir: no files
    assert report.objects["complete"].all()
    assert str(report.objects["complete"].dtype) == "bool"


def test_write_roundtrip_parquet_and_csv(tmp_path: Path) -> None:
    report = tshark_dicom.analyze(CAPTURES / "contexts_rejected.pcapng")
    report.write(tmp_path, format="both")
    pcs = pd.read_parquet(tmp_path / "tables" / "presentation_contexts")
    assert list(pcs["result"]) == list(report.presentation_contexts["result"])
    assert [list(x) for x in pcs["proposed_transfer_syntaxes"]] == [
        list(x) for x in report.presentation_contexts["proposed_transfer_syntaxes"]]
    csv = pd.concat(pd.read_csv(p) for p in (tmp_path / "csv" / "presentation_contexts").glob(
        "*.csv"))
    assert len(csv) == len(pcs)
    with pytest.raises(tshark_dicom.OptionsError):
        report.write(tmp_path, format="xlsx")


def test_mid_association_needs_port_and_infers_transfer_syntax() -> None:
    cap = CAPTURES / "mid_association.pcapng"
    without = tshark_dicom.analyze(cap)
    assert len(without.associations) == 0
    assert list(without.findings["code"]) == ["no-dicom"]
    report = tshark_dicom.analyze(cap, ports=[11128])
    assert list(report.associations["result"]) == ["unknown"]
    assert report.associations["acceptor_port"].iloc[0] == 11128
    objs = report.objects
    assert objs["complete"].all()
    assert objs["transfer_syntax_inferred"].all()
    assert objs["transfer_syntax"].notna().all()


def test_several_captures_number_associations_per_capture() -> None:
    report = tshark_dicom.analyze([CAPTURES / "echo.pcapng", CAPTURES / "abort.pcapng"])
    a = report.associations
    assert list(a["capture"].str.rsplit("/", n=1).str[-1]) == [
        "echo.pcapng", "abort.pcapng", "abort.pcapng"]
    assert list(a["assoc_id"]) == [0, 0, 1]
    caps = report.captures
    assert list(caps["capture"]) == [str(CAPTURES / "echo.pcapng"), str(CAPTURES / "abort.pcapng")]
    assert list(caps["status"]) == ["ok", "ok"] and list(caps["association_count"]) == [1, 2]
    assert list(caps["key"]) == ["echo.pcapng", "abort.pcapng"]


def test_frame_rejects_unknown_table() -> None:
    with pytest.raises(KeyError):
        frame("nope", [])


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_load_reads_back_every_table(tmp_path: Path, fmt: str) -> None:
    report = tshark_dicom.analyze([CAPTURES / "qr_find_nomatch.pcapng",
                                   CAPTURES / "qr_move_refused.pcapng"])
    report.write(tmp_path, format=fmt)
    loaded = tshark_dicom.load(tmp_path)
    for table in SCHEMAS:
        a, b = report.table(table), loaded.table(table)
        assert list(b.columns) == list(a.columns), table
        assert (b.dtypes == a.dtypes).all(), table
        assert a.astype(str).equals(b.astype(str)), table
    with pytest.raises(tshark_dicom.OptionsError):
        tshark_dicom.load(tmp_path / "nothing-here")


def test_the_summary_lists_a_few_captures_without_dicom_and_counts_the_rest() -> None:
    """An archive where most captures hold no DICOM: the summary stays a few lines (eight
    notes, then how many more), as it does for failed and skipped files."""
    rows = [{"capture": f"c{i:02}.pcapng", "assoc_id": None, "msg_index": None, "frame": None,
             "severity": "note", "code": "no-dicom",
             "summary": f"no DICOM association found in c{i:02}.pcapng on any port"}
            for i in range(11)]
    report = tshark_dicom.Report(findings=frame("findings", rows))
    lines = report.summary().splitlines()
    notes = [line for line in lines if line.startswith("  note: ")]
    assert [n.split(" in ")[1].split()[0] for n in notes] == [f"c{i:02}.pcapng"
                                                              for i in range(8)]
    assert lines[-1] == ("  ... and 3 more captures without a DICOM association (see "
                         "findings, code no-dicom)")
    assert len(lines) == 5 + 8 + 1


@pytest.mark.parametrize("how", ["stdin", "file"])
def test_jobs_from_a_script_read_on_standard_input(tmp_path: Path, how: str) -> None:
    """``analyze(..., jobs=2)`` from ``python - <<EOF`` and from a script file without the
    ``if __name__ == "__main__"`` guard: multiprocessing had each worker run the main
    script again, from the file ``<stdin>`` (no such file) or from the script, whose
    top-level analyze then started workers of its own: either way every worker failed at
    start (BrokenProcessPool)."""
    import subprocess
    import sys

    script = (
        "import tshark_dicom\n"
        f"r = tshark_dicom.analyze([{str(CAPTURES / 'echo.pcapng')!r}, "
        f"{str(CAPTURES / 'multi_store.pcapng')!r}, {str(CAPTURES / 'abort.pcapng')!r}], "
        "jobs=2)\n"
        "print(r.captures['status'].tolist(), len(r.associations), "
        "sorted(set(r.associations['capture'].str.rsplit('/', n=1).str[-1])))\n")
    if how == "stdin":
        args, text = [sys.executable, "-"], script
    else:
        (tmp_path / "run.py").write_text(script)
        args, text = [sys.executable, str(tmp_path / "run.py")], ""
    done = subprocess.run(args, input=text, capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    one = tshark_dicom.analyze([CAPTURES / "echo.pcapng", CAPTURES / "multi_store.pcapng",
                                CAPTURES / "abort.pcapng"])
    assert done.stdout.split("\n")[0] == (
        f"['ok', 'ok', 'ok'] {len(one.associations)} "
        "['abort.pcapng', 'echo.pcapng', 'multi_store.pcapng']")
