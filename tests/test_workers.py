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

import pytest

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


#: The start of a script run in a fresh interpreter: each worker pool's start method is
#: noted in ``used``.
_CONTEXTS = """
from tshark_dicom import batch, workers
used = []
def context():
    ctx = workers.context()
    used.append(ctx.get_start_method())
    return ctx
batch.worker_context = context
take = batch.take_early
def take_early(jobs):
    early = take(jobs)
    if early is not None:
        used.append("early")
    return early
batch.take_early = take_early
"""

_TABLES = _CONTEXTS + """
import json, sys, threading
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
    """``analyze --jobs 2`` forks its workers as it starts (`workers.early_worker`), before
    it runs any thread of its own: the run takes them (no pool of its own, no fork server
    that imports the analysis again); with ``--resume`` too."""
    code = _CONTEXTS + (
        "import sys\n"
        "from tshark_dicom import cli\n"
        "sys.argv = ['tshark-dicom', *sys.argv[1:]]\n"
        "try:\n"
        "    cli.app()\n"
        "except SystemExit as exc:\n"
        "    print(used, exc.code)\n")
    out = _python(code, "analyze", str(CAPTURES / "echo.pcapng"),
                  str(CAPTURES / "multi_store.pcapng"), "-o", str(tmp_path / "out"),
                  "--jobs", "2", "-q")
    assert out.split("\n")[0] == "['early'] 0"
    assert (tmp_path / "out" / "summary.txt").read_text().startswith("2 capture(s)")
    out = _python(code, "analyze", *(str(CAPTURES / c) for c in (
        "echo.pcapng", "multi_store.pcapng", "abort.pcapng", "qr_move_ok.pcapng")),
        "-o", str(tmp_path / "out"), "--jobs", "2", "-q", "--resume")
    assert out.split("\n")[0] == "['early'] 0"
    assert (tmp_path / "out" / "summary.txt").read_text().startswith("4 capture(s)")


#: analyze with --jobs 1, each worker noting (in the file named by TD_NOTE) its pid and
#: whether it imported pandas, and pyarrow.compute, by the time its capture's parts were
#: written, how pydicom validated what it read, and whether it imported Pillow; the run's
#: process says at its end whether it ever imported pydicom.
_NOTED = _CONTEXTS + """
import os, sys
from tshark_dicom import cli
analyze = batch._analyze_read
def noted(*args, **kwargs):
    out = analyze(*args, **kwargs)
    with open(os.environ["TD_NOTE"], "a") as f:
        from pydicom import config
        f.write(f"{os.getpid()} {'pandas' in sys.modules} "
                f"{'pyarrow.compute' in sys.modules} "
                f"{config.settings.reading_validation_mode == config.IGNORE} "
                f"{'PIL' in sys.modules}\\n")
    return out
batch._analyze_read = noted
sys.argv = ['tshark-dicom', *sys.argv[1:]]
try:
    cli.app()
except SystemExit as exc:
    print(os.getpid(), used, 'pydicom' in sys.modules, exc.code)
"""


def test_one_job_is_a_worker_that_writes_parts_without_pandas(tmp_path: Path) -> None:
    """``analyze`` (``--jobs 1``) analyses in one forked worker, started as the command
    starts (`workers.early_worker`), before the run's process imports the library, pandas
    and the report's modules: the worker never imports pandas
    (where store.KNOWN_FIELDS holds for this pandas and pyarrow), nor pyarrow.compute
    (0.04 s of the imports before the worker starts); the run's process never imports
    pydicom (nor the rest of the analysis: the worker imports it, workers.ANALYSIS); the
    worker reads without pydicom's validation (only warnings, which the command line does
    not show), and imports it without Pillow (batch.WORKER_HIDES); and the parts it
    writes are byte for byte those written by a process that has pandas and validates."""
    from tshark_dicom import store
    from tshark_dicom.batch import Work, analyze_one
    from tshark_dicom.discovery import CaptureFile
    from tshark_dicom.schemas import TABLES
    from tshark_dicom.tshark import find_tshark

    caps = [CAPTURES / n for n in ("multi_store.pcapng", "qr_move_ok.pcapng",
                                   "commit_orthanc.pcapng", "mpps_open_and_discontinued.pcapng")]
    note = tmp_path / "note"
    os.environ["TD_NOTE"] = str(note)
    try:
        out = _python(_NOTED, "analyze", *map(str, caps), "-o", str(tmp_path / "out"), "-q",
                      "--no-objects")
    finally:
        os.environ.pop("TD_NOTE")
    parent, used, pydicom_here, code = out.split("\n")[0].split(" ", 3)
    assert (used, pydicom_here, code) == ("['early']", "False", "0")
    workers_seen = {line.split()[0]: " ".join(line.split()[1:])
                    for line in note.read_text().split("\n") if line}
    assert len(note.read_text().split("\n")) - 1 == len(caps)  # every capture noted
    assert list(workers_seen) != [parent] and len(workers_seen) == 1  # one worker, not us
    assert set(workers_seen.values()) == {f"{not store._known_versions()} "
                                          f"{not store._known_versions()} True False"}
    # the same parts from this process, which has pandas and has pydicom warn of odd
    # values (a capture's key: its file name)
    from pydicom import config

    written = tmp_path / "out" / "tables"
    before = config.settings.reading_validation_mode
    config.settings.reading_validation_mode = config.WARN
    try:
        for cap in caps:
            st = cap.stat()
            analyze_one(CaptureFile(cap, str(cap), cap.name, st.st_size, st.st_mtime_ns),
                        Work(find_tshark(None), parts_dir=tmp_path / "here"))
    finally:
        config.settings.reading_validation_mode = before
    for cap in caps:
        here = tmp_path / "here"
        parts = sorted((here / cap.name / "tables" / cap.name).glob("*.parquet"))
        assert len(parts) == len(TABLES) - 1  # every table but captures
        for part in parts:
            table = part.name.removesuffix(".parquet")
            theirs = written / table / f"{cap.name}.parquet"
            assert theirs.read_bytes() == part.read_bytes(), (cap.name, table)


#: A worker's start (batch.worker_ready), then what it has of Pillow; then the same in
#: this process, which imports the analysis the way a caller's process does.
_HIDDEN = """
import multiprocessing, os, sys
from tshark_dicom import batch
if os.fork() == 0:
    batch.worker_ready(multiprocessing.Array("q", 1, lock=False), multiprocessing.Value("i", 0))
else:
    os.wait()
    batch.load_analysis()
from pydicom.pixels.decoders import pillow
try:
    import PIL
    imported = True
except ModuleNotFoundError:
    imported = False
print(os.getpid(), 'pydicom' in sys.modules, pillow.is_available('1.2.840.10008.1.2.4.50'),
      imported, flush=True)
"""


def test_a_worker_has_no_pillow_and_a_callers_process_has() -> None:
    """batch.WORKER_HIDES: a worker imports pydicom without Pillow, which pydicom then
    takes as not installed, then and later (its JPEG decoder is not available, and an
    import of Pillow fails as if it were not installed); a caller's process that imports
    the analysis has Pillow and pydicom's decoder."""
    pytest.importorskip("PIL")  # the dev dependencies have it (matplotlib)
    worker, caller = (line.split()[1:] for line in _python(_HIDDEN).splitlines())
    assert worker == ["True", "False", "False"]
    assert caller == ["True", "True", "True"]


#: A process whose child (a worker) asked to die with it; prints the child's pid.
_PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
    "from tshark_dicom.workers import die_with_parent; die_with_parent(); "
    "print('ready', flush=True); import time; time.sleep(60)"], stdout=subprocess.PIPE)
assert child.stdout.readline().strip() == b"ready"
print(child.pid, flush=True)
time.sleep(60)
"""


def test_a_worker_dies_with_the_run_that_started_it() -> None:
    """workers.die_with_parent: a run killed (SIGKILL) leaves no worker analysing on into
    its output folder (a --resume started next would find it writing there)."""
    import signal
    import time

    parent = subprocess.Popen([sys.executable, "-c", _PARENT], stdout=subprocess.PIPE,
                              cwd=ROOT, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert _alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child)
    finally:
        parent.kill()


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie waiting to be reaped does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


_WITH_DISTRIBUTED = """
import sys
from tshark_dicom.archive import analyze_to
# tblib's pickling, installed for every exception class defined by then (ours too), as a
# Dask user who imports distributed after tshark_dicom has it
import distributed
done = analyze_to(sys.argv[1:-1], sys.argv[-1], objects=False)
rows = done.report.captures
print(done.failed, rows.loc[rows["status"] == "failed", "error"].iloc[0])
"""


def test_a_capture_that_fails_in_a_worker_is_a_failed_row_with_distributed_imported(
        tmp_path: Path) -> None:
    """A capture's error comes back from its worker whatever else the process imported:
    with distributed (tblib's pickling of exceptions) an error caused by one of the
    compiled modules' exceptions (no ``__dict__``) could not be pickled, and the worker
    died (BrokenProcessPool: the run an internal error)."""
    corrupt = tmp_path / "corrupt.pcapng"
    corrupt.write_bytes((CAPTURES / "echo.pcapng").read_bytes()[:40] + b"\xff" * 200)
    out = _python(_WITH_DISTRIBUTED, str(corrupt), str(CAPTURES / "echo.pcapng"),
                  str(tmp_path / "out"))
    failed, error = out.strip().split(" ", 1)
    assert failed == "1"
    assert error.startswith(f"{corrupt}: ") and "damaged or corrupt" in error


def _suite_version() -> str:
    """Wireshark's version as its editcap says it."""
    import re

    from tshark_dicom.tshark import find_tshark

    editcap = find_tshark().editcap
    assert editcap is not None
    out = subprocess.run([editcap, "--version"], capture_output=True, text=True,
                         check=True).stdout
    found = re.search(r"\(Wireshark\) (\d+\.\d+\.\d+)", out)
    assert found is not None
    return found[1]


def test_every_capture_row_names_wireshark_s_version_with_one_or_more_workers(
        tmp_path: Path) -> None:
    """The captures table's tshark_version: probed once by the run's process for several
    workers, by the one worker beside its first capture's analysis (Tshark.start_suite_probe)
    for one; every analysed capture's row has it either way, beside a failed one's."""
    import tshark_dicom

    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"\xd4\xc3\xb2\xa1" + b"\0" * 10)  # a pcap header cut short
    caps = [str(CAPTURES / c) for c in ("echo.pcapng", "multi_store.pcapng", "abort.pcapng")]
    version = _suite_version()
    for jobs in ("1", "2"):
        out = tmp_path / f"out{jobs}"
        _python(_CONTEXTS + "import sys\nfrom tshark_dicom import cli\n"
                "sys.argv = ['tshark-dicom', *sys.argv[1:]]\n"
                "try:\n    cli.app()\nexcept SystemExit as exc:\n    print(used, exc.code)\n",
                "analyze", *caps, str(bad), "-o", str(out), "-q", "--jobs", jobs)
        captures = tshark_dicom.load(out).captures
        assert sorted(captures["status"]) == ["failed", "ok", "ok", "ok"], jobs
        assert set(captures.loc[captures["status"] == "ok", "tshark_version"]) == {version}


def test_the_suite_s_version_probed_beside_other_work_is_the_one_probed_alone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """start_suite_probe starts editcap --version and returns; version_text reads it (the
    child reaped), and later Tshark objects of the same path have it without a probe."""
    from tshark_dicom import tshark

    path = tshark.find_tshark().path
    # as in a new process: neither tshark's version nor the suite's probed yet
    monkeypatch.setattr(tshark, "_VERSIONS", {})
    monkeypatch.setattr(tshark, "_SUITES", {})
    tsk = tshark.Tshark(path)
    tsk.start_suite_probe()
    probe = tsk._suite_probe
    assert probe is not None
    assert tsk.version_text == _suite_version()
    assert probe.returncode == 0 and tsk._suite_probe is None
    again = tshark.Tshark(path)
    again.start_suite_probe()
    assert again._suite_probe is None and again.version_text == _suite_version()


def test_stopping_a_pool_kills_its_workers() -> None:
    """`workers.stop` kills a worker busy with a task: shutting the pool down first had
    made it forget its processes, so that none was killed and a stopped run's worker went
    on with its capture (into a work folder its caller was removing)."""
    import multiprocessing
    import time

    from tshark_dicom import workers

    running = workers.pool(multiprocessing.get_context("fork"), 1)
    busy = running.executor.submit(time.sleep, 60)
    while not busy.running():
        time.sleep(0.01)
    pids = [p.pid for p in running.executor._processes.values()]  # type: ignore[union-attr]
    assert len(pids) == 1 and _running(pids[0])
    workers.stop(running.executor)
    deadline = time.monotonic() + 10  # not the minute of its task
    while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(_running(pid) for pid in pids)


def _running(pid: int) -> bool:
    """The process runs (a zombie, ended and not yet reaped, does not: the pool's own
    thread reaps its workers, so waiting for one here races with it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in "ZX"
    except FileNotFoundError:
        return False


_EARLY = """
import multiprocessing, sys, time
from tshark_dicom import cli, workers
started = []
pool = workers.pool
def noted(*args):
    started.append(pool(*args))
    return started[-1]
workers.pool = noted
sys.argv = ['tshark-dicom', *sys.argv[1:]]
try:
    cli.app()
except SystemExit as exc:
    code = exc.code
deadline = time.monotonic() + 10
while multiprocessing.active_children() and time.monotonic() < deadline:
    time.sleep(0.05)
print(len(started), code, len(multiprocessing.active_children()), len(workers._EARLY))
"""


@pytest.mark.parametrize("case", ["no output folder", "nothing to analyse"])
def test_the_worker_analyze_starts_early_is_ended_when_no_run_takes_it(
        tmp_path: Path, case: str) -> None:
    """``analyze`` forks its one worker as it starts (`workers.early_worker`); when the
    command ends before any capture is analysed (an error first, or a ``--resume`` with
    everything done), that worker is ended, not left importing or waiting."""
    out = tmp_path / "out"
    if case == "no output folder":
        (tmp_path / "file").write_text("")
        args = [str(CAPTURES / "echo.pcapng"), "-o", str(tmp_path / "file" / "out"), "-q"]
        expected_code = str(cli.EXIT_OUTPUT)
    else:
        _python(_EARLY, "analyze", str(CAPTURES / "echo.pcapng"), "-o", str(out), "-q")
        args = [str(CAPTURES / "echo.pcapng"), "-o", str(out), "-q", "--resume"]
        expected_code = "0"
    started, code, children, early = _python(_EARLY, "analyze", *args).split()
    assert (started, code, children, early) == ("1", expected_code, "0", "0")


_FEWER = """
import multiprocessing, time
from tshark_dicom import workers
with workers.early_worker(1):
    few = workers.take_early(2)  # two wanted, one started: not taken
    print(few is None, len(workers._EARLY), len(multiprocessing.active_children()))
deadline = time.monotonic() + 10
while multiprocessing.active_children() and time.monotonic() < deadline:
    time.sleep(0.05)
print(len(workers._EARLY), len(multiprocessing.active_children()))
"""


def test_a_run_that_wants_more_workers_than_started_early_starts_its_own() -> None:
    """A run that wants more workers than `workers.early_worker` started (it starts none
    above `workers.EARLY_MAX`) does not take them, and they are ended with the command."""
    assert _python(_FEWER).split("\n")[:2] == ["True 1 1", "0 0"]
    assert _python(_FEWER.replace("early_worker(1)", "early_worker(3)")
                   ).split("\n")[:2] == ["True 0 0", "0 0"]
