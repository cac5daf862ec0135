"""Where --jobs workers come from (workers.py): plain forks of a process that runs no other
thread, else forks of a fork server; the tables are the same either way, and the progress
display runs no thread that would take the fast way away."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from tshark_dicom import cli

from .conftest import CAPTURES, ROOT

#: Run in a fresh interpreter: pytest's own process may run threads of earlier tests.
_METHODS = """
import threading
from tshark_dicom import workers
seen = [workers.context().get_start_method()]
stop = threading.Event()
thread = threading.Thread(target=stop.wait)
thread.start()
seen.append(workers.context().get_start_method())
stop.set()
thread.join()
seen.append(workers.context().get_start_method())
print(" ".join(seen))
"""


def _python(code: str, *args: str) -> str:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}  # as the command line sets it
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_workers_are_forks_only_while_no_other_thread_runs() -> None:
    assert _python(_METHODS).split() == ["fork", "forkserver", "fork"]


_TABLES = """
import json, sys, threading
from tshark_dicom import batch, workers
used = []
def context():
    ctx = workers.context()
    used.append(ctx.get_start_method())
    return ctx
batch.worker_context = context
if sys.argv[1] == "thread":  # a caller's thread, as in a Jupyter kernel
    stop = threading.Event()
    threading.Thread(target=stop.wait, daemon=True).start()
report = batch.run(sys.argv[2:], jobs=2)
out = {t: getattr(report, t).drop(columns=["elapsed_s", "analysed_at"], errors="ignore")
          .to_json(orient="records", date_format="iso")
       for t in ("associations", "messages", "objects", "operations", "findings",
                 "captures")}
print(json.dumps({"used": used, "tables": out}))
"""


def test_the_tables_are_the_same_from_forks_and_from_the_fork_server() -> None:
    caps = [str(CAPTURES / c) for c in ("multi_store.pcapng", "qr_move_ok.pcapng",
                                        "abort.pcapng", "echo.pcapng")]
    forks = json.loads(_python(_TABLES, "alone", *caps))
    served = json.loads(_python(_TABLES, "thread", *caps))
    assert (forks["used"], served["used"]) == (["fork"], ["forkserver"])
    assert {r["capture"] for r in json.loads(forks["tables"]["associations"])} == set(caps)
    assert _by_capture(forks["tables"]) == _by_capture(served["tables"])


def _by_capture(tables: dict[str, str]) -> dict[str, dict[str, list[dict[str, object]]]]:
    """Each table's rows by capture (captures finish in any order with --jobs; within one,
    the rows are in their order)."""
    out: dict[str, dict[str, list[dict[str, object]]]] = {}
    for name, rows in tables.items():
        for row in json.loads(rows):
            out.setdefault(name, {}).setdefault(str(row["capture"]), []).append(row)
    return out


def test_the_progress_display_runs_no_thread_of_its_own() -> None:
    before = threading.active_count()
    with cli._progress(enabled=True) as update:
        assert update is not None
        update("a.pcapng", 0, 2, 10_000, 1_000, 2_000)
        update("b.pcapng", 1, 2, 0, 2_000, 2_000)
        assert threading.active_count() == before


def test_the_command_line_forks_its_workers(tmp_path: Path) -> None:
    """``analyze --jobs 2`` runs no thread of its own when its pool starts: its workers are
    forks of it (none of them imports the analysis again); with ``--resume`` too, which
    reads the earlier run's captures table first (without Arrow's threads)."""
    code = (
        "import sys\n"
        "from tshark_dicom import batch, cli, workers\n"
        "used = []\n"
        "def context():\n"
        "    ctx = workers.context()\n"
        "    used.append(ctx.get_start_method())\n"
        "    return ctx\n"
        "batch.worker_context = context\n"
        "sys.argv = ['tshark-dicom', *sys.argv[1:]]\n"
        "try:\n"
        "    cli.app()\n"
        "except SystemExit as exc:\n"
        "    print(used, exc.code)\n")
    out = _python(code, "analyze", str(CAPTURES / "echo.pcapng"),
                  str(CAPTURES / "multi_store.pcapng"), "-o", str(tmp_path / "out"),
                  "--jobs", "2", "-q")
    assert out.split("\n")[0] == "['fork'] 0"
    assert (tmp_path / "out" / "summary.txt").read_text().startswith("2 capture(s)")
    out = _python(code, "analyze", *(str(CAPTURES / c) for c in (
        "echo.pcapng", "multi_store.pcapng", "abort.pcapng", "qr_move_ok.pcapng")),
        "-o", str(tmp_path / "out"), "--jobs", "2", "-q", "--resume")
    assert out.split("\n")[0] == "['fork'] 0"
    assert (tmp_path / "out" / "summary.txt").read_text().startswith("4 capture(s)")
