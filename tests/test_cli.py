"""The command line: exit codes, exact messages, output files, and replacing old results."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tshark_dicom.cli import app
from tshark_dicom.schemas import TABLES

from .conftest import CAPTURES

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_analyze_writes_every_table_and_summary(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = invoke("analyze", str(CAPTURES / "store_104.pcapng"), "-o", str(out),
                                  "--format", "both")
    assert code == 0, stderr
    assert stdout.splitlines()[0] == "1 capture(s): 1 association (1 accepted)"
    assert "2 data sets: 2 complete, 2 written as Part-10 files" in stdout
    for table in TABLES:
        assert (out / "tables" / table / "store_104.pcapng.parquet").is_file()
        assert (out / "csv" / table / "store_104.pcapng.csv").is_file()
    assert (out / "report.html").read_text().count("<table class='data'") >= 4
    assert (out / "summary.txt").read_text().splitlines()[0] == stdout.splitlines()[0]
    assert len(list((out / "objects").rglob("*.dcm"))) == 2
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_rerun_replaces_results_never_mixes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert invoke("analyze", str(CAPTURES / "multi_store.pcapng"), "-o", str(out))[0] == 0
    assert len(list((out / "objects").rglob("*.dcm"))) == 7
    assert invoke("analyze", str(CAPTURES / "echo.pcapng"), "-o", str(out), "--no-objects")[0] == 0
    assert not (out / "objects").exists()
    assocs = pd.read_parquet(out / "tables" / "associations")
    assert list(assocs["calling_ae"]) == ["ECHOSCU"]


def test_failed_run_leaves_previous_results(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert invoke("analyze", str(CAPTURES / "echo.pcapng"), "-o", str(out))[0] == 0
    before = sorted(p.name for p in out.iterdir())
    code, _, stderr = invoke("analyze", str(tmp_path / "missing.pcapng"), "-o", str(out))
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == before


def test_missing_file_is_one_line_exit_1(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pcapng"
    code, stdout, stderr = invoke("analyze", str(missing), "-o", str(tmp_path / "o"))
    assert code == 1
    assert stderr == f"Error: {missing}: no such file\n"
    assert not (tmp_path / "o").exists()


def test_not_a_capture_is_one_line_exit_1(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"\x00\x01garbage that is no capture format\xff" * 10)
    code, _, stderr = invoke("analyze", str(junk), "-o", str(tmp_path / "o"))
    assert code == 1
    assert stderr == f"Error: {junk}: not a capture file in a format tshark understands\n"


def test_text_file_read_as_media_is_rejected(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    code, _, stderr = invoke("analyze", str(text), "-o", str(tmp_path / "o"))
    assert code == 1
    assert stderr.startswith(f"Error: {text}: ") and stderr.count("\n") == 1


def test_empty_file_exit_1(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pcapng"
    empty.touch()
    code, _, stderr = invoke("analyze", str(empty), "-o", str(tmp_path / "o"))
    assert code == 1
    assert stderr == f"Error: {empty}: empty file, not a capture\n"


def test_truncated_capture_is_analysed_with_a_finding(tmp_path: Path) -> None:
    data = (CAPTURES / "multi_store.pcapng").read_bytes()
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(data[: len(data) * 2 // 3])
    out = tmp_path / "o"
    code, stdout, _ = invoke("analyze", str(cut), "-o", str(out))
    assert code == 0
    findings = pd.read_parquet(out / "tables" / "findings")
    assert "capture-truncated" in set(findings["code"])
    assocs = pd.read_parquet(out / "tables" / "associations")
    assert list(assocs["ending"]) == ["open"]
    objects = pd.read_parquet(out / "tables" / "objects")
    assert objects["complete"].sum() >= 1  # the objects before the cut are whole
    assert "capture-truncated" in stdout


def test_no_dicom_is_a_note_exit_0(tmp_path: Path) -> None:
    # A capture of plain TCP traffic: make one from a fixture by keeping only the handshake.
    src = CAPTURES / "echo.pcapng"
    plain = tmp_path / "plain.pcapng"
    subprocess.run(["editcap", "-r", str(src), str(plain), "1-3"], check=True,
                   capture_output=True)
    out = tmp_path / "o"
    code, stdout, _ = invoke("analyze", str(plain), "-o", str(out))
    assert code == 0
    assert "0 associations" in stdout and "no DICOM association found" in stdout
    assert len(pd.read_parquet(out / "tables" / "associations")) == 0
    assert list(pd.read_parquet(out / "tables" / "findings")["code"]) == ["no-dicom"]


def test_gzip_capture(tmp_path: Path) -> None:
    gz = tmp_path / "echo.pcapng.gz"
    gz.write_bytes(gzip.compress((CAPTURES / "echo.pcapng").read_bytes()))
    out = tmp_path / "o"
    assert invoke("analyze", str(gz), "-o", str(out))[0] == 0
    assert len(pd.read_parquet(out / "tables" / "associations")) == 1


@pytest.mark.parametrize("args, message", [
    (["--port", "70000"], "Error: --port 70000: not a TCP port (1-65535)\n"),
    (["--format", "xml"], "Error: --format 'xml': choose parquet, csv or both\n"),
    (["--jobs", "0"], "Error: --jobs 0: must be 1 or more\n"),
])
def test_bad_options_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    code, _, stderr = invoke("analyze", str(CAPTURES / "echo.pcapng"), "-o",
                             str(tmp_path / "o"), *args)
    assert code == 2
    assert stderr == message


@pytest.mark.parametrize("args, option, value", [
    (["--jobs", "two"], "'--jobs' / '-j'", "'two'"),
    (["--port", "1.5"], "'--port'", "'1.5'"),
    (["--tls-port", "x"], "'--tls-port'", "'x'"),
])
def test_value_of_the_wrong_type_exit_2(tmp_path: Path, args: list[str], option: str,
                                        value: str) -> None:
    code, _, stderr = invoke("analyze", str(CAPTURES / "echo.pcapng"), "-o",
                             str(tmp_path / "o"), *args)
    assert code == 2
    assert stderr.splitlines()[-1] == (
        f"Error: Invalid value for {option}: {value} is not a valid integer.")
    assert not (tmp_path / "o").exists()


def test_values_reach_the_command_converted(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Every parameter of both commands is converted by the CLI's own converter (typer
    0.29 would build a pydantic TypeAdapter for each, about 35 ms a run), with the same
    values: ints, Paths, lists of them, strings, flags."""
    import typer.main

    from tshark_dicom import archive, cliparams

    group = typer.main.get_command(app)
    for command in group.commands.values():  # type: ignore[attr-defined]
        for param in command.params:
            assert type(param.get_runtime_param()).__name__ == "Plain", param.name
    seen: dict[str, object] = {}

    def fake(sources: object, folder: object, **kw: object) -> None:
        seen.update(kw, sources=sources, folder=folder)
        raise SystemExit(0)

    monkeypatch.setattr(archive, "analyze_to", fake)
    code, _, stderr = invoke("analyze", str(CAPTURES / "echo.pcapng"), str(CAPTURES),
                             "-o", str(tmp_path / "o"), "--port", "104", "--port", " 11112",
                             "-j", "1", "--tls-port", "2763", "--engine", "raw", "-q")
    assert code == 0, stderr
    assert seen["sources"] == [CAPTURES / "echo.pcapng", CAPTURES]
    assert all(type(p) is type(CAPTURES) for p in seen["sources"])  # type: ignore[attr-defined]
    assert seen["folder"] == tmp_path / "o"
    assert seen["ports"] == [104, 11112] and seen["tls_ports"] == [2763]
    assert seen["jobs"] == 1 and seen["engine"] == "raw" and not seen["tls_keylogs"]
    assert cliparams.plain_class() is not None


def test_missing_out_is_usage_error() -> None:
    code, _, _ = invoke("analyze", str(CAPTURES / "echo.pcapng"))
    assert code == 2


def test_tshark_missing_says_how_to_install(tmp_path: Path) -> None:
    code, _, stderr = invoke("analyze", str(CAPTURES / "echo.pcapng"), "-o", str(tmp_path / "o"),
                             "--tshark", str(tmp_path / "no-tshark"))
    assert code == 1
    assert "apt-get install tshark" in stderr and stderr.count("\n") == 1


def test_folder_and_jobs(tmp_path: Path) -> None:
    folder = tmp_path / "caps"
    folder.mkdir()
    for name in ("echo.pcapng", "reject_called_ae.pcapng", "store_104.pcapng"):
        (folder / name).write_bytes((CAPTURES / name).read_bytes())
    out = tmp_path / "o"
    code, stdout, _ = invoke("analyze", str(folder), "-o", str(out), "--jobs", "2", "-q")
    assert code == 0 and stdout == ""
    assocs = pd.read_parquet(out / "tables" / "associations")
    assert sorted(assocs["result"]) == ["accepted", "accepted", "rejected"]
    objects = pd.read_parquet(out / "tables" / "objects")
    for path in objects["path"].dropna():
        assert (out / path).is_file()


def test_diagnose_help_and_readme() -> None:
    code, stdout, _ = invoke("diagnose", "--help")
    assert code == 0
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for option in ("--fail-on", "--port", "--tshark"):
        assert option in stdout
    assert "tshark-dicom diagnose CAPTURE_OR_DIR_OR_OUT... [--fail-on warning|error]" in readme


def test_help_documents_every_option() -> None:
    code, stdout, _ = invoke("analyze", "--help")
    assert code == 0
    for option in ("--out", "--format", "--port", "--no-objects", "--jobs", "--quiet",
                   "--tshark", "--cross-check", "--engine"):
        assert option in stdout
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for option in ("--format", "--port", "--no-objects", "--jobs", "--quiet", "--cross-check",
                   "--engine"):
        assert option in readme, f"README does not document {option}"


def test_python_dash_m_is_the_same_program(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "tshark_dicom", "--version"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and proc.stdout.startswith("tshark-dicom ")
    proc = subprocess.run([sys.executable, "-m", "tshark_dicom", "analyze",
                           str(tmp_path / "x.pcap"), "-o", str(tmp_path / "o")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("Error: ")
    assert "Traceback" not in proc.stderr
    # the process ends without the interpreter's teardown: exit codes and output still whole
    proc = subprocess.run([sys.executable, "-m", "tshark_dicom", "analyze",
                           str(CAPTURES / "echo.pcapng"), "-o", str(tmp_path / "o"),
                           "--jobs", "0"], capture_output=True, text=True, check=False)
    assert (proc.returncode, proc.stderr) == (2, "Error: --jobs 0: must be 1 or more\n")
    proc = subprocess.run([sys.executable, "-m", "tshark_dicom", "analyze",
                           str(CAPTURES / "echo.pcapng"), "-o", str(tmp_path / "o")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "1 capture(s): 1 association (1 accepted)"
    assert proc.stdout.endswith(f"results in {tmp_path / 'o'}/\n")



# A Ctrl-C in each window before a command's own handling, made deterministic: the
# KeyboardInterrupt a SIGINT raises there is raised by the code that runs there
_INTERRUPT_PRELUDE = """
import sys
"""


def _interrupted(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _INTERRUPT_PRELUDE + code, *args],
                          capture_output=True, text=True, check=False, timeout=120)


def test_ctrl_c_while_the_command_line_loads_is_one_line() -> None:
    """The console script's entry imports the command line itself: a Ctrl-C during that
    import (typer and the rest, ~30 ms of every start) is a line and 130, no traceback."""
    proc = _interrupted("""
class Interrupt:  # a Ctrl-C as tshark_dicom.cli is imported
    def find_spec(self, name, path=None, target=None):
        if name == "tshark_dicom.cli":
            raise KeyboardInterrupt
sys.meta_path.insert(0, Interrupt())
from tshark_dicom.__main__ import main
main()
""")
    assert (proc.returncode, proc.stderr) == (
        130, "Error: interrupted as it started; nothing was done\n")


def test_ctrl_c_before_a_command_catches_it_is_one_line(tmp_path: Path) -> None:
    """While typer parses and analyze starts its workers, a Ctrl-C is typer's: it exited 130
    with a blank line; now the line says why. Where the command says what it kept, only its
    own line is printed."""
    out = tmp_path / "o"
    early = """
import contextlib
import tshark_dicom.cli as cli
import tshark_dicom.workers as workers
@contextlib.contextmanager
def interrupted(n):  # a Ctrl-C as analyze forks its workers
    raise KeyboardInterrupt
    yield
workers.early_worker = interrupted
sys.argv = ["tshark-dicom", "analyze", sys.argv[1], "-o", sys.argv[2]]
cli.main()
"""
    proc = _interrupted(early, str(CAPTURES / "echo.pcapng"), str(out))
    assert proc.returncode == 130
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == ["Error: interrupted"]
    assert not out.exists()
    later = """
import tshark_dicom.archive as archive
import tshark_dicom.cli as cli
def interrupted(*args, **kwargs):  # a Ctrl-C once the analysis began
    raise KeyboardInterrupt
archive.analyze_to = interrupted
sys.argv = ["tshark-dicom", "analyze", sys.argv[1], "-o", sys.argv[2]]
cli.main()
"""
    proc = _interrupted(later, str(CAPTURES / "echo.pcapng"), str(out))
    assert (proc.returncode, proc.stderr) == (
        130, f"Error: interrupted before any capture was finished; {out} was not created\n")

# -- diagnose -------------------------------------------------------------------------------
GOLDEN = Path(__file__).parent / "golden" / "diagnose.txt"
GOLDEN_CAPTURES = ("qr_move_refused.pcapng", "qr_move_ok.pcapng", "qr_move_concurrent.pcapng",
                   "qr_find_nomatch.pcapng")


def test_diagnose_prints_the_golden_text() -> None:
    code, stdout, stderr = invoke("diagnose", *(str(CAPTURES / c) for c in GOLDEN_CAPTURES))
    assert code == 0, stderr
    assert stdout == GOLDEN.read_text(), (
        "diagnose output changed; if on purpose, regenerate tests/golden/diagnose.txt with "
        "tshark-dicom diagnose " + " ".join(f"fixtures/captures/{c}" for c in GOLDEN_CAPTURES))


def test_diagnose_reads_an_out_folder_like_the_captures(tmp_path: Path) -> None:
    out = tmp_path / "out"
    captures = [str(CAPTURES / c) for c in GOLDEN_CAPTURES]
    for fmt in ("parquet", "csv"):
        assert invoke("analyze", *captures, "-o", str(out), "--format", fmt,
                      "--no-objects")[0] == 0
        code, stdout, stderr = invoke("diagnose", str(out))
        assert code == 0, stderr
        assert stdout == GOLDEN.read_text(), fmt


def test_diagnose_needs_only_the_columns_it_declares() -> None:
    """The diagnosis of tables cut to diagnose.READS (what the command line reads of an OUT
    folder) is the diagnosis of the whole tables, over captures with every kind of line:
    C-MOVE callbacks and attempts, C-GET sub-operations, findings with and without an
    association. A column the diagnosis starts using without declaring it fails this."""
    import tshark_dicom
    from tshark_dicom.diagnose import READS
    from tshark_dicom.report import Report

    names = [*GOLDEN_CAPTURES, "qr_move_unanswered.pcapng", "qr_move_partial.pcapng",
             "c_get_cancel.pcapng", "qr_get_no_role.pcapng", "find_move.pcapng",
             "hostile_values.pcapng", "abort.pcapng"]
    whole = tshark_dicom.analyze([CAPTURES / n for n in names])
    cut = Report.concat([{t: whole.table(t)[cols] for t, cols in READS.items()}])
    text = whole.diagnose()
    assert cut.diagnose() == text
    assert cut.diagnose_records() == whole.diagnose_records()  # --json too
    for needle in ("callback association", "callback attempt", "C-STORE sub-operation",
                   "more like these", "C-GET (operation"):
        assert needle in text, needle


def test_diagnose_reads_an_out_folder_written_before_a_column_existed(tmp_path: Path) -> None:
    """Parts written by an earlier version lack the columns added since (TLS): diagnose
    reads the columns it needs of such a folder as it reads the tables whole, those
    missing empty."""
    import pyarrow.parquet as pq

    from tshark_dicom.tableread import read_table

    out = tmp_path / "out"
    captures = [str(CAPTURES / c) for c in GOLDEN_CAPTURES]
    assert invoke("analyze", *captures, "-o", str(out), "--no-objects")[0] == 0
    (out / "tables" / ".parts.json").unlink()
    added = ["tls", "tls_version", "tls_decrypted"]
    for part in (out / "tables" / "associations").glob("*.parquet"):
        pq.write_table(pq.read_table(part).drop_columns(added), part)
    code, stdout, stderr = invoke("diagnose", str(out))
    assert code == 0, stderr
    assert stdout == GOLDEN.read_text()
    old = read_table(out, "associations", ["capture", *added])
    assert old is not None and len(old) > 3 and not old["tls"].any()  # bool: False
    assert old[["tls_version", "tls_decrypted"]].isna().all().all()


@pytest.mark.parametrize(("capture", "fail_on", "code"), [
    ("qr_move_refused.pcapng", "error", 3),
    ("qr_move_refused.pcapng", "warning", 3),
    ("timing_slow_scp.pcapng", "error", 0),
    ("timing_slow_scp.pcapng", "warning", 3),
    ("timing_clean_control.pcapng", "warning", 0),
])
def test_diagnose_fail_on(capture: str, fail_on: str, code: int) -> None:
    got, stdout, _ = invoke("diagnose", str(CAPTURES / capture), "--fail-on", fail_on)
    assert got == code
    assert stdout.startswith(capture)


def test_diagnose_usage_errors(tmp_path: Path) -> None:
    code, _, stderr = invoke("diagnose", str(CAPTURES / "echo.pcapng"), "--fail-on", "note")
    assert code == 2 and stderr.strip() == "Error: --fail-on 'note': choose warning or error"
    code, _, stderr = invoke("diagnose", str(tmp_path / "missing.pcapng"))
    assert code == 1 and stderr.strip().startswith("Error: ") and "missing.pcapng" in stderr


def _folder_with_a_bad_capture(tmp_path: Path) -> Path:
    """Captures in a folder, in the order found: DICOM, one that is not a capture, one
    without DICOM (no association, a note), DICOM again."""
    folder = tmp_path / "caps"
    folder.mkdir()
    for name, source in (("1_echo.pcapng", "echo.pcapng"),
                         ("3_mid.pcapng", "mid_association.pcapng"),
                         ("4_abort.pcapng", "abort.pcapng")):
        (folder / name).write_bytes((CAPTURES / source).read_bytes())
    (folder / "2_bad.pcapng").write_bytes(b"not a capture at all, but named like one")
    return folder


def test_diagnose_names_a_capture_it_could_not_analyse_in_the_order_found(
        tmp_path: Path) -> None:
    """Not silently left out: a capture that could not be read has its line, in the order
    the captures were found (as does one without DICOM, which came last before), the
    same from the captures and from the OUT folder analyze wrote of them; --fail-on
    counts it as an error."""
    folder = _folder_with_a_bad_capture(tmp_path)
    code, stdout, stderr = invoke("diagnose", str(folder))
    assert code == 0, stderr
    heads = [line.split(":")[0] for line in stdout.splitlines() if not line.startswith(" ")]
    assert heads == ["1_echo.pcapng", "2_bad.pcapng", "3_mid.pcapng", "4_abort.pcapng"]
    assert "2_bad.pcapng: could not be analysed: not a capture file in a format tshark " \
        "understands\n3_mid.pcapng: 0 associations" in stdout  # the path not said twice
    assert invoke("analyze", str(folder), "-o", str(tmp_path / "out"), "--no-objects",
                  "-q")[0] == 0
    assert invoke("diagnose", str(tmp_path / "out"))[1] == stdout
    assert invoke("diagnose", str(folder), "--fail-on", "error")[0] == 3
    code, stdout, stderr = invoke("diagnose", str(folder / "1_echo.pcapng"), "--fail-on", "error")
    assert code == 0 and stdout.startswith("1_echo.pcapng: 1 association, 0 errors")


def test_diagnose_json_lines(tmp_path: Path) -> None:
    """``--json``: one JSON object a line, per capture (its counts; or capture-failed)
    then every finding with its association; the findings are the findings table's, all
    of them (the text shows three of a code per association), the same from an OUT folder;
    --fail-on as without --json."""
    import json

    import tshark_dicom

    folder = _folder_with_a_bad_capture(tmp_path)
    code, stdout, stderr = invoke("diagnose", str(folder), "--json", "--fail-on", "error")
    assert code == 3, stderr
    events = [json.loads(line) for line in stdout.splitlines()]
    heads = [(e["event"], Path(e["capture"]).name) for e in events if e["event"] != "finding"]
    assert heads == [("capture", "1_echo.pcapng"), ("capture-failed", "2_bad.pcapng"),
                     ("capture", "3_mid.pcapng"), ("capture", "4_abort.pcapng")]
    assert "not a capture file" in events[1]["error"]
    report = tshark_dicom.analyze(folder)
    findings = [e for e in events if e["event"] == "finding"]
    assert sorted((Path(e["capture"]).name, e["code"], e["summary"], e["frame"])
                  for e in findings) == sorted(
        (Path(c).name, code_, summary, None if pd.isna(frame) else int(frame))
        for c, code_, summary, frame in zip(report.findings["capture"], report.findings["code"],
                                             report.findings["summary"],
                                             report.findings["frame"], strict=True))
    a = report.associations
    aborted = [e for e in findings if e["code"] == "association-aborted"]
    assert len(aborted) == 2
    for e in aborted:  # each with its own association's fields
        row = a[a["capture"].str.endswith("4_abort.pcapng") & (a["assoc_id"] == e["assoc_id"])]
        assert (e["calling_ae"], e["called_ae"], e["ending"], e["tcp_stream"]) == (
            row["calling_ae"].iloc[0], row["called_ae"].iloc[0], "aborted",
            row["tcp_stream"].iloc[0])
        assert e["acceptor"] == f"{row['acceptor_ip'].iloc[0]}:{row['acceptor_port'].iloc[0]}"
    [mid] = [e for e in events if e["event"] == "capture" and e["capture"].endswith("3_mid.pcapng")]
    assert (mid["associations"], mid["notes"]) == (0, 1)
    out = tmp_path / "out"
    assert invoke("analyze", str(folder), "-o", str(out), "--no-objects", "-q")[0] == 0
    assert invoke("diagnose", str(out), "--json")[1] == stdout


def test_diagnose_of_nothing_readable_prints_the_error_alone(tmp_path: Path) -> None:
    folder = tmp_path / "caps"
    folder.mkdir()
    for name in ("a.pcapng", "b.pcapng"):
        (folder / name).write_bytes(b"not a capture at all, but named like one")
    code, stdout, stderr = invoke("diagnose", str(folder))
    assert code == 1 and stdout == ""
    assert stderr.startswith("Error: ") and "a.pcapng" in stderr


def test_diagnose_prints_each_capture_before_the_next_is_analysed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Captures stream through diagnose: each one's text is out before the next capture is
    read (its memory, flat over an archive, is measured in benchmarks/README)."""
    import click

    from tshark_dicom import batch, discovery

    folder = _folder_with_a_bad_capture(tmp_path)
    printed: list[str] = []
    seen_at_start: list[list[str]] = []
    echo = click.echo
    analyze = batch._analyze

    def record(message: object = None, *a: object, **k: object) -> None:
        printed.append(str(message))
        echo(message, *a, **k)  # type: ignore[arg-type]

    def watched(cap: discovery.CaptureFile, *a: object, **k: object) -> batch.Analysed:
        seen_at_start.append([p.split(":")[0] for p in printed])
        return analyze(cap, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr("typer.echo", record)
    monkeypatch.setattr(batch, "_analyze", watched)
    code, stdout, stderr = invoke("diagnose", str(folder))
    assert code == 0, stderr
    # the bad capture's line waits for a capture that could be read (if none can, the
    # error alone is shown): it comes out with 3_mid's
    assert seen_at_start == [[], ["1_echo.pcapng"], ["1_echo.pcapng"],
                             ["1_echo.pcapng", "2_bad.pcapng", "3_mid.pcapng"]]


def test_the_command_line_leaves_pydicom_s_validation_as_it_was(tmp_path: Path) -> None:
    """analyze and diagnose have pydicom read without validating (batch._reading, around
    each capture analysed in this process: diagnose's), and set it back: run in a caller's
    process (as here) they once left it off, and the caller's own reads silent
    (test_dimse's warning about a padded UID went missing after them)."""
    from pydicom import config

    before = config.settings.reading_validation_mode
    code, _, stderr = invoke("analyze", str(CAPTURES / "echo.pcapng"), "-o",
                             str(tmp_path / "out"), "-q")
    assert code == 0, stderr
    assert config.settings.reading_validation_mode == before
    code, _, stderr = invoke("diagnose", str(CAPTURES / "echo.pcapng"))
    assert code == 0, stderr
    assert config.settings.reading_validation_mode == before
    from pydicom.uid import UID

    with pytest.warns(UserWarning, match="Invalid value for VR UI"):
        UID("1.2.3 ")
