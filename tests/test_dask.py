"""`tshark-dicom analyze --dask ADDRESS` on a real Dask distributed cluster: a `dask scheduler`
and two `dask worker` processes on the loopback, started from the venv's console scripts.

The same captures (one of them a text file that no worker can analyse) go through the
cluster and through this machine; both OUT folders must hold the same tables (but for the
time each capture took), the same failed row and the same objects, byte for byte.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import tshark_dicom
from tshark_dicom.schemas import TABLES

from .conftest import CAPTURES

distributed = pytest.importorskip("distributed")

DASK = Path(sys.executable).with_name("dask")
CAPTURE_NAMES = ("echo.pcapng", "abort.pcapng", "multi_store.pcapng", "store_gzip.pcapng.gz",
                 "qr_move_ok.pcapng", "concurrent.pcapng")
NOT_A_CAPTURE = "notes.pcap"
#: Columns that differ from run to run whatever runs them.
VOLATILE = {"captures": ["elapsed_s"]}
#: Natural keys of each table's rows within a capture (rows are also kept in their order).
KEYS = ("capture", "assoc_id")


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """Terminate each process group we started, then kill what is left."""
    for proc in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 10
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        try:  # the group: a worker's nanny has a child process
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait(timeout=10)


def _start(argv: list[str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A scheduler on a free loopback port and two single-thread workers; its address."""
    if not DASK.exists():
        pytest.fail(f"{DASK} missing: pip install -e '.[dev]' installs distributed")
    home = tmp_path_factory.mktemp("dask")
    info = home / "scheduler.json"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(_start([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0",
                             "--no-dashboard", "--scheduler-file", str(info)],
                            home, home / "scheduler.log"))
        deadline = time.monotonic() + 30
        address = None
        while address is None:
            if procs[0].poll() is not None or time.monotonic() > deadline:
                pytest.fail("dask scheduler did not start:\n" +
                            (home / "scheduler.log").read_text())
            try:
                address = json.loads(info.read_text())["address"]
            except (OSError, ValueError, KeyError):
                time.sleep(0.1)
        assert address.startswith("tcp://127.0.0.1:")
        for n in (1, 2):  # working directories that are not the client's
            wdir = home / f"worker{n}"
            wdir.mkdir()
            procs.append(_start([str(DASK), "worker", address, "--nthreads", "1",
                                 "--nworkers", "1", "--no-dashboard", "--local-directory",
                                 str(wdir), "--name", f"w{n}"], wdir, home / f"worker{n}.log"))
        with distributed.Client(address, timeout="20s", set_as_default=False) as client:
            try:
                client.wait_for_workers(2, timeout=30)
            except TimeoutError:
                logs = "\n".join((home / f"worker{n}.log").read_text() for n in (1, 2))
                pytest.fail(f"dask workers did not register:\n{logs}")
        yield address
    finally:
        _stop(procs)


def _analyze(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tshark_dicom", "analyze", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def _objects(out: Path) -> dict[str, bytes]:
    base = out / "objects"
    return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*"))
            if p.is_file()}


def _table(out: Path, name: str) -> pd.DataFrame:
    df = tshark_dicom.load(out).table(name).drop(columns=VOLATILE.get(name, []))
    keys = [k for k in KEYS if k in df.columns]
    return df.sort_values(keys, kind="stable").reset_index(drop=True) if keys else df


def test_dask_cluster_gives_the_same_results(cluster: str, tmp_path: Path) -> None:
    caps = tmp_path / "caps"
    caps.mkdir()
    for name in CAPTURE_NAMES:
        shutil.copy(CAPTURES / name, caps / name)
    (caps / NOT_A_CAPTURE).write_text("these are notes, not a capture\n")
    # relative paths, as a person types them: the workers run in other folders
    given = [f"caps/{name}" for name in (*CAPTURE_NAMES, NOT_A_CAPTURE)]

    local = _analyze(tmp_path, *given, "-o", "out-local", "--format", "both")
    assert local.returncode == 0, local.stderr
    remote = _analyze(tmp_path, *given, "-o", "out-dask", "--format", "both", "--dask", cluster)
    assert remote.returncode == 0, remote.stderr
    assert "Traceback" not in remote.stderr
    with distributed.Client(cluster, timeout="20s", set_as_default=False) as client:
        # the workers did the work (a lambda travels by value: the scheduler has no tests)
        assert client.run_on_scheduler(lambda dask_scheduler: "analyze_one" in
                                       dask_scheduler.task_prefixes)
    assert remote.stdout.replace("out-dask", "OUT") == local.stdout.replace("out-local", "OUT")

    a, b = tmp_path / "out-local", tmp_path / "out-dask"
    captures = tshark_dicom.load(b).captures
    assert captures["capture"].tolist() == given
    failed = captures[captures["status"] == "failed"]
    assert failed["capture"].tolist() == [f"caps/{NOT_A_CAPTURE}"]
    assert failed["error"].iloc[0].startswith(f"caps/{NOT_A_CAPTURE}: ")  # as given, not
    assert (captures["status"] == "ok").sum() == len(CAPTURE_NAMES)       # the worker's path
    for name in TABLES:
        left, right = _table(a, name), _table(b, name)
        assert list(left.columns) == list(right.columns), name
        assert left.astype(str).equals(right.astype(str)), name
    assert len(_table(a, "objects")) > 0
    objects = _objects(a)
    assert objects and _objects(b) == objects
    assert sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file()) == \
        sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    assert (a / "summary.txt").read_text() == (b / "summary.txt").read_text()
    for csv in sorted((a / "csv").rglob("*.csv")):  # CSV too, byte for byte
        if csv.parent.name != "captures":  # elapsed_s
            assert csv.read_bytes() == (b / csv.relative_to(a)).read_bytes(), csv


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("address,says", [
    (f"tcp://127.0.0.1:{_free_port()}", "nothing listens there"),
    ("tcp://127.0.0.1:99999", "not a scheduler address"),
    ("http://127.0.0.1:8786", "no Dask scheduler answers there"),
])
def test_wrong_address_is_one_line_exit_2(tmp_path: Path, address: str, says: str) -> None:
    started = time.monotonic()
    proc = _analyze(tmp_path, str(CAPTURES / "echo.pcapng"), "-o", "out", "--dask", address)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"Error: --dask {address}: {says}"), proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert time.monotonic() - started < 20
    assert not (tmp_path / "out").exists()


def test_a_worker_is_not_the_scheduler(cluster: str, tmp_path: Path) -> None:
    with distributed.Client(cluster, timeout="20s", set_as_default=False) as client:
        worker = sorted(client.scheduler_info()["workers"])[0]
    proc = _analyze(tmp_path, str(CAPTURES / "echo.pcapng"), "-o", "out", "--dask", worker)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (f"Error: --dask {worker}: a Dask Worker answers there, not the "
                           "scheduler (dask scheduler prints its address)\n")
