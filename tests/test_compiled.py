"""The compiled modules (setup.py builds them with mypyc) against the pure-Python ones: which
are in use in this install, that a source changed since the build never runs from the old
build, that ``TSHARK_DICOM_PURE=1`` forces the pure modules, and that both give the same
tables and objects on every fixture capture."""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.machinery
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

import tshark_dicom
from tshark_dicom.packets import Packet
from tshark_dicom.schemas import TABLES

from .conftest import CAPTURES, ROOT

PACKAGE = Path(tshark_dicom.__file__).resolve().parent
EXTENSIONS = tuple(importlib.machinery.EXTENSION_SUFFIXES)


def setup_compiled() -> tuple[str, ...]:
    """setup.py's COMPILED: the modules a build with a compiler compiles."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "COMPILED" for t in node.targets):
            value = ast.literal_eval(node.value)
            assert isinstance(value, tuple)
            return value
    raise AssertionError("setup.py has no COMPILED")


def build_manifest() -> tuple[dict[str, str], str]:
    """What the build that made this install compiled (module -> source SHA-256), or why
    it compiled nothing."""
    try:
        manifest = importlib.import_module("tshark_dicom._compiled")
    except ImportError:
        return {}, "no tshark_dicom/_compiled.py: not installed through setup.py"
    return dict(manifest.MODULES), str(manifest.REASON)


def compiled_in_use() -> set[str]:
    found = set()
    for name in setup_compiled():
        module = importlib.import_module(f"tshark_dicom.{name}")
        assert module.__spec__ is not None and module.__spec__.origin is not None
        if module.__spec__.origin.endswith(EXTENSIONS):
            found.add(name)
    return found


def python(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter that imports tshark_dicom from ``cwd``."""
    environ = {k: v for k, v in os.environ.items() if k != "TSHARK_DICOM_PURE"}
    environ.update(env, PYTHONPATH=str(cwd))
    return subprocess.run([sys.executable, "-W", "default", "-c", code], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=600, check=False)


ORIGINS = ("import importlib, json; print(json.dumps({n: importlib.import_module("
           "'tshark_dicom.' + n).__spec__.origin for n in %r}))")


def test_compiled_modules_in_use_are_the_build_s() -> None:
    """This install's compiled modules are in use exactly when the build compiled them, no
    source changed since and TSHARK_DICOM_PURE is not set (pytest's summary says which)."""
    modules, reason = build_manifest()
    assert "failed" not in reason, f"the build fell back to pure Python: {reason}"
    in_use = compiled_in_use()
    if os.environ.get("TSHARK_DICOM_PURE", "") not in ("", "0"):
        assert in_use == set()
    elif modules:
        assert set(modules) == set(setup_compiled())
        changed = [n for n, digest in modules.items() if hashlib.sha256(
            (PACKAGE / f"{n}.py").read_bytes()).hexdigest() != digest]
        assert not changed, (f"{changed} changed since the build: rebuild with "
                             "`pip install -e .` (make venv)")
        assert in_use == set(modules)
    else:
        assert in_use == set(), reason


def test_the_makefile_rebuilds_when_a_compiled_source_changes() -> None:
    makefile = (ROOT / "Makefile").read_text()
    listed = re.search(r"^COMPILED\s*:=\s*(.*)$", makefile, re.M)
    assert listed is not None
    assert tuple(listed.group(1).split()) == setup_compiled()


def copy_package(tmp_path: Path) -> Path:
    shutil.copytree(PACKAGE, tmp_path / "tshark_dicom",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "tshark_dicom"


def test_a_changed_source_is_never_run_from_an_old_build(tmp_path: Path) -> None:
    """A module edited after the build: every compiled module is imported from its source
    (a compiled module calls the others natively: all or none), with one warning."""
    modules, _ = build_manifest()
    copy = copy_package(tmp_path)
    names = setup_compiled()
    if modules:
        unchanged = python(ORIGINS % (names,), tmp_path)
        assert unchanged.returncode == 0, unchanged.stderr
        assert all(o.endswith(EXTENSIONS) for o in json.loads(unchanged.stdout).values())
        assert "warning" not in unchanged.stderr.lower()
    else:  # no compiler here: a build's leftovers, as a compiled install would have them
        (copy / f"streams{EXTENSIONS[0]}").write_bytes(b"not a shared object")
        digest = hashlib.sha256((copy / "streams.py").read_bytes()).hexdigest()
        (copy / "_compiled.py").write_text(f"MODULES = {{'streams': {digest!r}}}\nREASON = ''\n")
    with open(copy / "streams.py", "a") as f:
        f.write("\n# edited after the build\n")
    edited = python(ORIGINS % (names,), tmp_path)
    assert edited.returncode == 0, edited.stderr
    assert all(o.endswith(".py") for o in json.loads(edited.stdout).values())
    assert edited.stderr.count("streams.py changed since the compiled modules were built") == 1
    (copy / "_compiled.py").unlink()  # extension modules, and no record of their build
    unrecorded = python(ORIGINS % (names,), tmp_path)
    assert all(o.endswith(".py") for o in json.loads(unrecorded.stdout).values())
    assert unrecorded.stderr.count("without the record of their build") == 1


def test_tshark_dicom_pure_forces_the_pure_modules(tmp_path: Path) -> None:
    run = python(ORIGINS % (setup_compiled(),), ROOT, TSHARK_DICOM_PURE="1")
    assert run.returncode == 0, run.stderr
    assert all(o.endswith(".py") for o in json.loads(run.stdout).values())
    assert "changed since" not in run.stderr


#: Reads packets from a pipe fed without end (one real capture's short records, as
#: editcap converts them, over and over) until a Ctrl-C from another process arrives.
_READ_UNTIL_CTRL_C = r"""
import collections, os, signal, struct, subprocess, sys
from tshark_dicom import packets
signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
pcap = subprocess.run(["editcap", "-F", "nsecpcap", sys.argv[1], "-"], capture_output=True,
                      check=True).stdout
short, pos = [], 24
while pos < len(pcap):
    size = 16 + struct.unpack_from("<I", pcap, pos + 8)[0]
    if size < 120:
        short.append(pcap[pos:pos + size])
    pos += size
block = b"".join(short) * 64
feed = subprocess.Popen([sys.executable, "-c", "import sys\nh, b = sys.stdin.buffer.read()"
                         ".split(b'|', 1)\nsys.stdout.buffer.write(bytes.fromhex(h.decode()))"
                         "\nwhile True: sys.stdout.buffer.write(b)"],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
feed.stdin.write(pcap[:24].hex().encode() + b"|" + block)
feed.stdin.close()
subprocess.Popen(["sh", "-c", f"sleep 0.5; kill -INT {os.getpid()}"])
print(packets.__spec__.origin.endswith(".so"), flush=True)
try:  # consumed from C (a deque): no Python bytecode runs between packets
    collections.deque(packets.read_raw_packets(feed.stdout), maxlen=0)
except KeyboardInterrupt:
    print("KeyboardInterrupt")
feed.kill()
"""


def test_ctrl_c_in_the_compiled_reader_raises_keyboard_interrupt(tmp_path: Path) -> None:
    """Ctrl-C while the packet reader runs, as a notebook's interrupt comes, is a
    KeyboardInterrupt in the compiled modules as in pure Python. It aborted the process
    (exit 134, "fatal: out of memory"): the signal, pending in compiled code, failed the
    per-packet ``sec * 10**9`` (CPython's long multiplication checks for signals), which
    mypyc's runtime takes for exhausted memory (packets.product)."""
    script = tmp_path / "read.py"
    script.write_text(_READ_UNTIL_CTRL_C)
    run = subprocess.run([sys.executable, str(script), str(CAPTURES / "large_multiframe.pcapng")],
                         cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert (run.returncode, run.stderr) == (0, "")
    compiled = "packets" in compiled_in_use()
    assert run.stdout.split() == [str(compiled), "KeyboardInterrupt"]


def test_no_exception_class_is_compiled() -> None:
    """An exception class of a compiled module has no ``__dict__``: tblib's pickling
    (installed once distributed is imported) fails on it, and on every error whose chain
    holds it, in a worker sending its error back (errors.UnsupportedLinkType)."""
    found = [f"{name}.{k}" for name in setup_compiled()
             for k, v in vars(importlib.import_module(f"tshark_dicom.{name}")).items()
             if isinstance(v, type) and issubclass(v, BaseException)
             and v.__module__ == f"tshark_dicom.{name}"]
    assert found == []
    run = python("import io, pickle\n"
                 "from tshark_dicom.packets import read_raw_packets\n"
                 "import distributed  # after: its tblib pickles the classes made by then\n"
                 "try:\n"
                 "    try:\n"
                 "        next(read_raw_packets(io.BytesIO(b'not a pcap stream' * 4)))\n"
                 "    except Exception as exc:\n"
                 "        raise RuntimeError('editcap failed') from exc\n"
                 "except RuntimeError as exc:\n"
                 "    back = pickle.loads(pickle.dumps(exc))\n"
                 "    print(type(back.__cause__).__name__, back.__cause__)", ROOT)
    assert (run.returncode, run.stdout) == (0, "UnsupportedLinkType not a pcap stream\n"), \
        run.stderr


def test_records_of_the_compiled_modules_pickle_as_the_pure_ones() -> None:
    from tshark_dicom.streams import ConnectionAttempt
    from tshark_dicom.tcpevidence import TcpObserver

    observer = TcpObserver()
    packets = [Packet(1, 10, 0, "a", 1, "b", 2, 100, 0, 0, 0x02, b"", 500, 7),
               Packet(2, 20, 0, "b", 2, "a", 1, 900, 101, 0, 0x12, b"", 500, 7),
               Packet(3, 30, 0, "a", 1, "b", 2, 101, 901, 5, 0x18, b"hello", 500),
               Packet(4, 9_000_000, 0, "a", 1, "b", 2, 106, 901, 5, 0x18, b"again", 500)]
    for pkt in packets:
        observer.on_packet(pkt)
    evidence = observer.finish(10_000_000)
    back = pickle.loads(pickle.dumps(evidence))
    for endpoint, direction in evidence.directions.items():
        assert list(back.directions[endpoint].stalls) == list(direction.stalls) == [
            (30, 9_000_000, "ack-wait", 5)] * (endpoint == ("a", 1))
        assert back.directions[endpoint].bins == direction.bins
    assert back.handshake_ns == evidence.handshake_ns == (10, 20, 30)
    attempt = ConnectionAttempt(1, ("a", 1), ("b", 2), 1, 2, 3, 1, "refused")
    assert pickle.loads(pickle.dumps(attempt)) == attempt
    again = pickle.loads(pickle.dumps(packets[2]))
    assert (again.frame, again.payload, again.ack, again.wscale) == (3, b"hello", 901, -1)


def _tables(report: tshark_dicom.Report) -> dict[str, pd.DataFrame]:
    tables = {t: report.table(t).reset_index(drop=True) for t in TABLES}
    tables["captures"] = tables["captures"].drop(columns=["elapsed_s"])
    return tables


def _objects(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def fixture_arguments() -> tuple[list[int], list[str]]:
    """Every fixture's ports and TLS key logs, for one run over the whole folder."""
    ports: set[int] = set()
    keylogs: set[str] = set()
    for truth in CAPTURES.glob("*.truth.json"):
        data = json.loads(truth.read_text())
        if data.get("port_hint"):
            ports.add(int(data["port_hint"]))
        tls = data.get("tls") or {}
        if tls.get("keylog"):
            keylogs.add(str(CAPTURES / tls["keylog"]))
    return sorted(ports), sorted(keylogs)


def test_pure_and_compiled_give_the_same_tables_and_objects(tmp_path: Path) -> None:
    """Every fixture capture, analysed by this install (compiled where built) and by the
    pure modules in a fresh interpreter: identical tables and object files."""
    ports, keylogs = fixture_arguments()
    here, there = tmp_path / "compiled" / "objects", tmp_path / "pure" / "objects"
    report = tshark_dicom.analyze(CAPTURES, objects_dir=here, ports=ports, tls_keylogs=keylogs)
    code = (
        "import pickle, sys, tshark_dicom\n"
        "from tests.test_compiled import _tables\n"
        f"report = tshark_dicom.analyze({str(CAPTURES)!r}, objects_dir={str(there)!r},"
        f" ports={ports!r}, tls_keylogs={keylogs!r})\n"
        f"pickle.dump(_tables(report), open({str(tmp_path / 'pure.pickle')!r}, 'wb'))\n"
        "from tshark_dicom import streams; print(streams.__spec__.origin)\n"
    )
    run = python(code, ROOT, TSHARK_DICOM_PURE="1")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().endswith("streams.py")
    with open(tmp_path / "pure.pickle", "rb") as f:
        pure = pickle.load(f)
    mine = _tables(report)
    assert len(mine["associations"]) > 50 and len(mine["objects"]) > 50
    for table in TABLES:
        pd.testing.assert_frame_equal(mine[table], pure[table], obj=table)
    files = _objects(here)
    assert len(files) == len(mine["objects"]["path"].dropna())
    assert files == _objects(there)
