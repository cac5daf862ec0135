#!/usr/bin/env python3
"""Memory against message count: `analyze` of a busy archive's day of small operations, 10,000
and 1,000,000 DIMSE messages, peak memory compared (issue 8: "peak memory the same as for 10,000").

Captures (made once, as root, and cached in ``$TSHARK_DICOM_BENCH_DIR``, default
``/var/tmp/tshark-dicom-bench/``, with a ``<name>.pcapng.json`` manifest; ``--force`` remakes):

  many_10k.pcapng   about 10,000 DIMSE messages     (SCP on 127.0.0.1:11510)
  many_1m.pcapng    at least 1,000,000 of the same  (SCP on 127.0.0.1:11511)

Same shape at both sizes (counts scale with the target): dcmtk ``dcmqrscp`` (a database made by
``dcmqridx`` from pydicom's dicomdirtests files) answers C-ECHO and C-FIND; long-lived
associations run from the start (two dcmtk ``echoscu --repeat`` of 100,000 C-ECHOs each, one
``findscu --repeat`` of 20,000 C-FINDs, one pynetdicom association of 10,000 mixed C-ECHO/C-FIND
at 1M) while three lanes run short associations one after another (5-50 operations each:
``echoscu --repeat``, ``findscu --repeat`` or a pynetdicom association mixing both), so many
associations are concurrent.  ``dumpcap -i lo -f 'tcp port N'`` captures.  The messages the
peers exchanged (from the plan, the query match counts measured first, and the pynetdicom SCU's
own count) are checked against tshark's DICOM dissector (command PDVs, flags 0x03) and both go
in the manifest.

Measurement: ``python -m tshark_dicom analyze CAPTURE -o OUT --quiet`` run from the checkout
(``--checkout``, default the current directory) with /work/main/.venv/bin/python (or
``$TSHARK_DICOM_PYTHON``), wall time, peak RSS of the process tree (our process plus its
tshark/editcap children, VmRSS summed per /proc sample every 50 ms, and each process's VmHWM),
and the rows of the written messages and operations tables (Parquet metadata only).  The last
line is ``ok`` when the 1M tree peak is within 1.25x of the 10k one and under 1 GiB.

    python3 benchmarks/many_messages.py [--only 10k|1m] [--checkout PATH] [--force]
                                        [--make-only] [--keep-output]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_captures as mc  # noqa: E402
import run as bench_run  # noqa: E402

GENERATOR_VERSION = 2
DCMTK = Path(os.environ.get("DCMTK_BIN", "/usr/bin"))
DUMPCAP, TSHARK = "/usr/bin/dumpcap", "/usr/bin/tshark"
VENV_PYTHON = os.environ.get("TSHARK_DICOM_PYTHON", "/work/main/.venv/bin/python")
HOST, ARCHIVE_AE = "127.0.0.1", "ARCHIVE"
LANES = 3
RATIO_TARGET, ABS_TARGET_MIB = 1.25, 1024
POLL_S = 0.05

CAPTURES = {
    "10k": {"name": "many_10k", "target_messages": 10_000, "port": 11510},
    "1m": {"name": "many_1m", "target_messages": 1_000_000, "port": 11511},
}
# Long-lived associations at 1,000,000 messages; scaled down with the target.
LONG_ECHO_ASSOCS, LONG_ECHOES, LONG_FINDS, LONG_PYN_OPS = 2, 100_000, 20_000, 10_000
SHORT_OPS = (5, 50)

# C-FIND identifiers: (information model, [(keyword, value)]); "" asks for a return key.
# Match counts come from the archive itself (measured before each capture).
QUERIES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "study_by_id": ("S", [("QueryRetrieveLevel", "STUDY"), ("PatientID", "77654033"),
                          ("StudyInstanceUID", ""), ("StudyDate", ""), ("ModalitiesInStudy", "")]),
    "studies_of_peter": ("S", [("QueryRetrieveLevel", "STUDY"), ("PatientID", "98890234"),
                               ("StudyInstanceUID", ""), ("StudyDescription", "")]),
    "patient_by_name": ("P", [("QueryRetrieveLevel", "PATIENT"), ("PatientName", "Doe*"),
                              ("PatientID", ""), ("PatientBirthDate", "")]),
    "patient_by_id": ("P", [("QueryRetrieveLevel", "PATIENT"), ("PatientID", "12345678"),
                            ("PatientName", "")]),
    "no_such_patient": ("S", [("QueryRetrieveLevel", "STUDY"), ("PatientID", "NOSUCH00"),
                              ("StudyInstanceUID", "")]),
}
ECHO_AES = ["MONITOR", "CT01", "CT02", "MR01", "US01", "CR01", "WS01", "WS02", "WS03"]
FIND_AES = ["RIS", "WS01", "WS02", "WS03", "WS04", "VIEWER1", "VIEWER2", "ROUTER"]


def log(*a: object) -> None:
    print(*a, flush=True)


def capture_path(key: str) -> Path:
    return mc.bench_dir() / f"{CAPTURES[key]['name']}.pcapng"


def manifest_path(key: str) -> Path:
    return mc.bench_dir() / f"{CAPTURES[key]['name']}.pcapng.json"


def read_manifest(key: str) -> dict | None:
    try:
        return json.loads(manifest_path(key).read_text())
    except (OSError, ValueError):
        return None


def is_valid(key: str) -> tuple[bool, str]:
    path, man = capture_path(key), read_manifest(key)
    if not path.exists():
        return False, "missing"
    if man is None:
        return False, "no manifest"
    if man.get("generator_version") != GENERATOR_VERSION:
        return False, "made by another generator version"
    if man.get("bytes") != path.stat().st_size:
        return False, "size differs from manifest"
    if man.get("messages_tshark", 0) < CAPTURES[key]["target_messages"] * 0.99:
        return False, "fewer messages than the target"
    return True, "ok"


# --------------------------------------------------------------------------- plan


def query_dataset(name: str):  # -> pydicom Dataset
    from pydicom.dataset import Dataset

    ds = Dataset()
    for kw, value in QUERIES[name][1]:
        setattr(ds, kw, value)
    return ds


def plan(key: str, matches: dict[str, int]) -> tuple[list[dict], list[dict]]:
    """Long-lived and short association tasks, each with the messages it will exchange:
    2 for a C-ECHO, matches + 2 for a C-FIND (request, pendings, final response)."""
    spec = CAPTURES[key]
    scale = spec["target_messages"] / 1_000_000
    rng = random.Random(f"many-messages-{key}")
    find_msgs = {q: m + 2 for q, m in matches.items()}

    def pyn_ops(n: int) -> list[str]:
        return ["echo" if rng.random() < 0.4 else rng.choice(list(QUERIES)) for _ in range(n)]

    def pyn_msgs(ops: list[str]) -> int:
        return sum(2 if op == "echo" else find_msgs[op] for op in ops)

    long: list[dict] = []
    for i in range(LONG_ECHO_ASSOCS):
        n = max(5, round(LONG_ECHOES * scale))
        long.append({"kind": "echoscu", "ae": f"PINGER{i + 1}", "repeat": n, "messages": 2 * n})
    n = max(5, round(LONG_FINDS * scale))
    long.append({"kind": "findscu", "ae": "BROKER", "repeat": n, "query": "study_by_id",
                 "messages": n * find_msgs["study_by_id"]})
    ops = pyn_ops(max(5, round(LONG_PYN_OPS * scale)))
    long.append({"kind": "pyn", "ae": "PYNLONG", "ops": ops, "messages": pyn_msgs(ops)})

    total = sum(t["messages"] for t in long)
    short: list[dict] = []
    while total < spec["target_messages"]:
        k = rng.randint(*SHORT_OPS)
        kind = rng.choices(["echoscu", "findscu", "pyn"], weights=[35, 35, 30])[0]
        if kind == "echoscu":
            task = {"kind": kind, "ae": rng.choice(ECHO_AES), "repeat": k, "messages": 2 * k}
        elif kind == "findscu":
            q = rng.choice(list(QUERIES))
            task = {"kind": kind, "ae": rng.choice(FIND_AES), "repeat": k, "query": q,
                    "messages": k * find_msgs[q]}
        else:
            ops = pyn_ops(k)
            task = {"kind": kind, "ae": rng.choice(FIND_AES), "ops": ops,
                    "messages": pyn_msgs(ops)}
        short.append(task)
        total += task["messages"]
    return long, short


# --------------------------------------------------------------------------- peers


def dcmtk_env() -> dict:
    # dcmtk disables Nagle only when asked; with Nagle and delayed ACKs every C-ECHO on
    # loopback costs ~90 ms (measured: 5,000 in 7.5 min), which would make 1M take hours.
    return {**os.environ, "TCP_NODELAY": "1"}


class Archive:
    """dcmtk dcmqrscp (a process per association) over a dcmqridx database of pydicom's
    dicomdirtests files (synthetic: 3 patients, 5 studies)."""

    def __init__(self, work: Path, port: int):
        from pydicom.data import get_testdata_file

        src = Path(get_testdata_file("CT_small.dcm")).parent / "dicomdirtests"
        self.db = work / "db"
        self.db.mkdir(parents=True)
        files = sorted(p for sub in ("77654033", "98892001", "98892003", "TINY_ALPHA")
                       for p in (src / sub).rglob("*")
                       if p.is_file() and p.name not in ("DICOMDIR", "README"))
        for i, p in enumerate(files):
            shutil.copy(p, self.db / f"f{i:04d}.dcm")
        db_files = sorted(map(str, self.db.iterdir()))
        subprocess.run([str(DCMTK / "dcmqridx"), str(self.db), *db_files], check=True,
                       capture_output=True)
        self.cfg = work / "dcmqrscp.cfg"
        self.cfg.write_text("\n".join([
            f"NetworkTCPPort  = {port}", "MaxPDUSize      = 16384", "MaxAssociations = 64",
            "HostTable BEGIN", "HostTable END", "VendorTable BEGIN", "VendorTable END",
            "AETable BEGIN", f"{ARCHIVE_AE} {self.db} R (200, 1024mb) ANY", "AETable END", ""]))
        self.port, self.log = port, work / "dcmqrscp.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "w") as fh:
            self.proc = subprocess.Popen([str(DCMTK / "dcmqrscp"), "-dhl", "-c", str(self.cfg),
                                          str(self.port)], stdout=fh, stderr=subprocess.STDOUT,
                                         env=dcmtk_env())
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = subprocess.run(["ss", "-Hltn", f"sport = :{self.port}"], capture_output=True,
                               text=True)
            if r.stdout.strip():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"dcmqrscp did not listen on {self.port}: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # its per-association children finish on their own
            self.proc.wait(timeout=10)


def dcmtk_cmd(task: dict, port: int) -> list[str]:
    common = ["-q", "-aet", task["ae"], "-aec", ARCHIVE_AE, "--repeat", str(task["repeat"])]
    if task["kind"] == "echoscu":
        return [str(DCMTK / "echoscu"), *common, HOST, str(port)]
    model, keys = QUERIES[task["query"]]
    kargs = [a for kw, v in keys for a in ("-k", f"{kw}={v}" if v else kw)]
    return [str(DCMTK / "findscu"), f"-{model}", *common, *kargs, HOST, str(port)]


def pyn_worker(port: int) -> int:
    """`many_messages.py --pyn-worker PORT`: one pynetdicom SCU, one association per JSON line
    on stdin ({"ae", "ops"}); answers one JSON line: messages exchanged and matches per find."""
    import socket

    from pynetdicom import AE, _config, evt
    from pynetdicom.sop_class import (
        PatientRootQueryRetrieveInformationModelFind,
        StudyRootQueryRetrieveInformationModelFind,
        Verification,
    )

    _config.LOG_HANDLER_LEVEL = "none"
    models = {"S": StudyRootQueryRetrieveInformationModelFind,
              "P": PatientRootQueryRetrieveInformationModelFind}
    ae = AE()
    for ctx in (Verification, *models.values()):
        ae.add_requested_context(ctx)
    ae.dimse_timeout = ae.acse_timeout = ae.network_timeout = 30

    def nodelay(event: evt.Event) -> None:
        # pynetdicom sends a C-FIND-RQ's command and identifier in two writes: with Nagle
        # each C-FIND waits ~40 ms for a delayed ACK.
        event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def pause_reactor(assoc: object) -> None:
        # pynetdicom 3.0.4 race (pydicom/pynetdicom#875, "Received unexpected C-FIND service
        # message"): send_* clears the reactor's checkpoint and trusts `_is_paused`, which the
        # reactor sets just before it waits; if it had already passed the wait it goes on and
        # takes the response off the queue (a fast SCP answers in ~0.1 ms), and the SCU waits
        # for the DIMSE timeout.  Here: clear the checkpoint and wait until the reactor thread
        # really blocks in it; send_* then finds it paused and sets the checkpoint when done.
        checkpoint = assoc._reactor_checkpoint  # type: ignore[attr-defined]
        checkpoint.clear()
        while not checkpoint._cond._waiters and assoc.is_alive():  # type: ignore[attr-defined]
            time.sleep(0.00005)

    queries = {name: query_dataset(name) for name in QUERIES}
    for line in sys.stdin:
        task = json.loads(line)
        ae.ae_title = task["ae"]
        result: dict = {"messages": 0, "matches": [], "error": None}
        assoc = ae.associate(HOST, port, ae_title=ARCHIVE_AE,
                             evt_handlers=[(evt.EVT_CONN_OPEN, nodelay)])
        if not assoc.is_established:
            result["error"] = "association not established"
        else:
            # distinct Message IDs: pynetdicom reuses 1 otherwise, and then now and again
            # takes a response for an unexpected one and times out
            for i, op in enumerate(task["ops"]):
                msg_id = i % 65535 + 1
                pause_reactor(assoc)
                if op == "echo":
                    status = assoc.send_c_echo(msg_id=msg_id)
                    ok = bool(status) and status.Status == 0
                    result["messages"] += 2 if status else 1
                else:
                    pending = 0
                    ok = False
                    for status, _ident in assoc.send_c_find(queries[op], models[QUERIES[op][0]],
                                                            msg_id=msg_id):
                        if not status:
                            break
                        result["messages"] += 1
                        if status.Status in (0xFF00, 0xFF01):
                            pending += 1
                        else:
                            ok = status.Status == 0
                    result["messages"] += 1  # the request
                    result["matches"].append(pending)
                if not ok:
                    result["error"] = f"operation {i} ({op}) failed"
                    break
            if assoc.is_established:
                assoc.release()
            else:
                result["error"] = result["error"] or "association ended early"
        print(json.dumps(result), flush=True)
    return 0


class PynSCU:
    """A pynetdicom SCU in its own process (this script with --pyn-worker)."""

    def __init__(self, port: int):
        self.proc = subprocess.Popen([sys.executable, __file__, "--pyn-worker", str(port)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(self, task: dict) -> dict:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps({"ae": task["ae"], "ops": task["ops"]}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"pynetdicom SCU exited ({self.proc.wait()})")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------- capture


def start_dumpcap(path: Path, port: int) -> tuple[subprocess.Popen, Path]:
    errpath = path.with_suffix(".dumpcap.log")
    with open(errpath, "w") as errf:
        p = subprocess.Popen([DUMPCAP, "-i", "lo", "-f", f"tcp port {port}", "-B", "256", "-q",
                              "-w", str(path)], stdout=subprocess.DEVNULL, stderr=errf)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if "Capturing on" in errpath.read_text() and path.exists():
            time.sleep(0.2)
            return p, errpath
        if p.poll() is not None:
            break
        time.sleep(0.05)
    p.kill()
    raise RuntimeError(f"dumpcap did not start: {errpath.read_text()}")


RUNNING: set[subprocess.Popen] = set()  # dcmtk SCUs of the lanes, stopped if we stop early


def run_task(task: dict, port: int, pyn: PynSCU | None) -> int:
    """Run one association; the messages it exchanged (checked against the plan)."""
    if task["kind"] == "pyn":
        assert pyn is not None
        res = pyn.run(task)
        if res["error"]:
            raise RuntimeError(f"pynetdicom {task['ae']}: {res['error']}")
        return int(res["messages"])
    proc = subprocess.Popen(dcmtk_cmd(task, port), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=dcmtk_env())
    RUNNING.add(proc)
    try:
        _, err = proc.communicate(timeout=3600)
    finally:
        RUNNING.discard(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(dcmtk_cmd(task, port))}: exit {proc.returncode}: "
                           f"{err[-500:]}")
    return int(task["messages"])


def generate(key: str, tmp: Path, work: Path) -> dict:
    port = CAPTURES[key]["port"]
    archive = Archive(work, port)
    archive.start()
    pyns: list[PynSCU] = []
    dumpcap, errpath = None, tmp.with_suffix(".dumpcap.log")
    try:
        # the archive's answers before capturing: match count of every query
        probe = PynSCU(port)
        pyns.append(probe)
        res = probe.run({"ae": "PROBE", "ops": list(QUERIES)})
        if res["error"]:
            raise RuntimeError(f"probe: {res['error']}")
        matches = dict(zip(QUERIES, res["matches"], strict=True))
        long, short = plan(key, matches)
        lanes = [short[i::LANES] for i in range(LANES)]
        log(f"  plan: {len(long)} long-lived + {len(short)} short associations, "
            f"{sum(t['messages'] for t in long + short):,} messages; matches {matches}")

        dumpcap, errpath = start_dumpcap(tmp, port)
        t0 = time.monotonic()
        sent = [0] * (len(long) + LANES)
        errors: list[str] = []

        def worker(slot: int, tasks: list[dict]) -> None:
            pyn = PynSCU(port) if any(t["kind"] == "pyn" for t in tasks) else None
            if pyn:
                pyns.append(pyn)
            try:
                for task in tasks:
                    got = run_task(task, port, pyn)
                    if got != task["messages"]:
                        raise RuntimeError(f"{task['kind']} {task['ae']}: {got} messages, "
                                           f"planned {task['messages']}")
                    sent[slot] += got
            except Exception as exc:  # reported by the main thread
                errors.append(str(exc))

        threads = [threading.Thread(target=worker, args=(i, [t]), daemon=True)
                   for i, t in enumerate(long)]
        threads += [threading.Thread(target=worker, args=(len(long) + i, lane), daemon=True)
                    for i, lane in enumerate(lanes)]
        for t in threads:
            t.start()
        last = time.monotonic()
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(timeout=1)
            if time.monotonic() - last > 30:
                log(f"  ... {sum(sent):,} messages in {time.monotonic() - t0:.0f} s")
                last = time.monotonic()
        if errors:
            raise RuntimeError("; ".join(errors[:5]))
        traffic_s = time.monotonic() - t0
        stats = mc.Lab.stop_dumpcap(dumpcap, errpath)
        dumpcap = None
    finally:
        if dumpcap is not None:
            dumpcap.send_signal(signal.SIGINT)
            dumpcap.wait(timeout=60)
        errpath.unlink(missing_ok=True)
        for scu in list(RUNNING):
            scu.terminate()
        for p in pyns:
            p.close()
        archive.stop()
    return {
        "port": port, "query_matches": matches, "traffic_seconds": round(traffic_s, 1),
        "associations_planned": len(long) + len(short),
        "long_lived": [{k: (len(v) if k == "ops" else v) for k, v in t.items()} for t in long],
        "short_associations": len(short),
        "messages_peers": sum(sent), **stats,
    }


def tshark_counts(path: Path) -> dict:
    """DIMSE messages and A-ASSOCIATE-RQs in the capture, counted without tshark_dicom:
    tshark gives each TCP segment's payload (its DICOM dissector off: on a 300k-packet slice
    of the 1M capture it took 177 s, against 5 s for 100k, its per-association PDV lists grow
    quadratically), this function joins each direction's bytes in sequence order, cuts PDUs
    at their 6-byte headers (PS3.8 9.3.1) and pynetdicom decodes every P-DATA-TF; a message
    is a command PDV whose control header says last fragment (0x03)."""
    from pynetdicom.pdu import P_DATA_TF

    cmd = [TSHARK, "-n", "-r", str(path), "--disable-protocol", "dicom",
           "-o", "tcp.desegment_tcp_streams:FALSE", "-o", "tcp.analyze_sequence_numbers:FALSE",
           "-Y", "tcp.len > 0", "-T", "fields", "-e", "tcp.stream", "-e", "tcp.srcport",
           "-e", "tcp.seq_raw", "-e", "tcp.payload"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout
    buffers: dict[tuple[str, str], bytearray] = {}
    next_seq: dict[tuple[str, str], int] = {}
    counts = {"messages_tshark": 0, "associations_tshark": 0, "pdus": 0, "gaps": 0,
              "retransmitted_segments": 0}
    for line in proc.stdout:
        stream, port, seq_text, payload = line.rstrip("\n").split("\t")
        key, seq, data = (stream, port), int(seq_text), bytes.fromhex(payload)
        if key in next_seq and seq != next_seq[key]:
            if (next_seq[key] - seq) % 2**32 < 2**31:  # old bytes again
                counts["retransmitted_segments"] += 1
                continue
            counts["gaps"] += 1  # lost bytes: this direction's PDUs can no longer be cut
            buffers[key] = bytearray()
            next_seq[key] = (seq + len(data)) % 2**32
            continue
        next_seq[key] = (seq + len(data)) % 2**32
        buf = buffers.setdefault(key, bytearray())
        buf += data
        while len(buf) >= 6:
            size = 6 + int.from_bytes(buf[2:6], "big")
            if len(buf) < size:
                break
            counts["pdus"] += 1
            if buf[0] == 0x01:
                counts["associations_tshark"] += 1
            elif buf[0] == 0x04:
                pdu = P_DATA_TF()
                pdu.decode(bytes(buf[:size]))
                counts["messages_tshark"] += sum(
                    1 for item in pdu.presentation_data_value_items
                    if item.presentation_data_value[0] & 0x03 == 0x03)
            del buf[:size]
    if proc.wait() != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {proc.returncode}")
    counts["count_seconds"] = round(time.monotonic() - t0, 1)
    return counts


def make(key: str, force: bool = False) -> dict:
    ok, why = is_valid(key)
    if ok and not force:
        return read_manifest(key) or {}
    if os.geteuid() != 0:
        raise SystemExit(f"{capture_path(key)}: {why}; making it needs root (dumpcap)")
    name = CAPTURES[key]["name"]
    log(f"make {name} ({'forced' if ok else why}) ...")
    final = capture_path(key)
    tmp, work = final.with_name(f".{name}.tmp.pcapng"), mc.bench_dir() / f".work-{name}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    tmp.unlink(missing_ok=True)
    t0 = time.monotonic()
    try:
        stats = generate(key, tmp, work)
        if stats.get("dropped"):
            raise RuntimeError(f"dumpcap dropped {stats['dropped']} ({stats['dumpcap_stats']})")
        counts = tshark_counts(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if counts["messages_tshark"] != stats["messages_peers"]:
        log(f"  note: tshark counts {counts['messages_tshark']:,} messages, the peers "
            f"{stats['messages_peers']:,}")
    manifest_path(key).unlink(missing_ok=True)
    os.chmod(tmp, 0o644)
    os.replace(tmp, final)
    man = {"generator_version": GENERATOR_VERSION, "name": name,
           "target_messages": CAPTURES[key]["target_messages"],
           "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "bytes": final.stat().st_size,
           "generate_seconds": round(time.monotonic() - t0, 1),
           **mc.capinfos(final), **stats, **counts}
    manifest_path(key).write_text(json.dumps(man, indent=2) + "\n")
    log(f"made {describe(key)}")
    return man


def describe(key: str) -> str:
    man = read_manifest(key) or {}
    return (f"{capture_path(key).name}: {mc.human(man.get('bytes', 0))}, "
            f"{man.get('packets', '?'):,} packets, {man.get('messages_tshark', '?'):,} DIMSE "
            f"messages (peers {man.get('messages_peers', '?'):,}), "
            f"{man.get('associations_tshark', '?'):,} associations, made in "
            f"{man.get('generate_seconds', '?')} s")


@contextlib.contextmanager
def locked():
    d = mc.bench_dir()
    d.mkdir(parents=True, exist_ok=True)
    with open(d / ".many_messages.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(f"another many_messages run holds {d / '.many_messages.lock'}") \
                from None
        yield


# --------------------------------------------------------------------------- measure


class TreeSampler(threading.Thread):
    """Every POLL_S: VmRSS of the process and each descendant, summed (the tree's peak at
    one instant), and every process's VmHWM by name."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.done = pid, threading.Event()
        self.tree_peak_kb = 0
        self.hwm: dict[int, tuple[str, int]] = {}

    def run(self) -> None:
        while not self.done.is_set():
            total = 0
            mine = bench_run.cmdline(self.pid)
            for pid in (self.pid, *bench_run._descendants(self.pid)):
                if pid != self.pid and bench_run.pre_exec_copy(pid, mine):
                    continue  # the parent's memory, seen through a fork not yet exec'd
                st = bench_run._status(pid)
                if st and "VmRSS" in st:
                    total += st["VmRSS"]
                    self.hwm[pid] = (st["Name"], max(st["VmHWM"], self.hwm.get(pid, ("", 0))[1]))
            self.tree_peak_kb = max(self.tree_peak_kb, total)
            self.done.wait(POLL_S)

    def peak(self, root: bool) -> int:
        """Largest VmHWM of the root process (root=True) or of its children."""
        vals = [kb for pid, (_n, kb) in self.hwm.items() if (pid == self.pid) == root]
        return max(vals, default=0)


def count_rows(table_dir: Path) -> int | None:
    import pyarrow.parquet as pq

    if not table_dir.is_dir():
        return None
    return sum(pq.ParquetFile(p).metadata.num_rows for p in table_dir.glob("*.parquet"))


def measure(key: str, checkout: Path, keep: bool) -> dict:
    capture = capture_path(key)
    out_root = mc.bench_dir() / "many-out"
    out = out_root / key
    shutil.rmtree(out, ignore_errors=True)
    out_root.mkdir(parents=True, exist_ok=True)
    argv = [VENV_PYTHON, "-m", "tshark_dicom", "analyze", str(capture), "-o", str(out), "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    log(f"  {capture.name}: (cd {checkout} && {' '.join(argv)})")
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=checkout, env=env, stderr=subprocess.PIPE, text=True)
    sampler = TreeSampler(proc.pid)
    sampler.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - t0
    sampler.done.set()
    sampler.join()
    row = {"key": key, "rc": proc.returncode, "wall_s": wall,
           "python_kb": sampler.peak(root=True), "children_kb": sampler.peak(root=False),
           "tree_kb": max(sampler.tree_peak_kb, sampler.peak(True), sampler.peak(False)),
           "messages_rows": count_rows(out / "tables" / "messages"),
           "operations_rows": count_rows(out / "tables" / "operations"),
           "manifest": read_manifest(key) or {}}
    if proc.returncode:
        tail = "\n".join(ln for ln in err.splitlines() if "could be dangerous" not in ln)[-800:]
        log(f"  exit {proc.returncode}: {tail}")
    if not keep:
        shutil.rmtree(out, ignore_errors=True)
    return row


def mib(kb: int) -> str:
    return f"{kb / 1024:.0f}"


def report(rows: list[dict]) -> bool | None:
    head = ("capture", "packets", "messages (tshark)", "messages rows", "operations rows",
            "wall s", "python MiB", "children MiB", "tree MiB")
    lines = [head]
    for r in rows:
        man = r["manifest"]
        lines.append((man.get("name", r["key"]), f"{man.get('packets', 0):,}",
                      f"{man.get('messages_tshark', 0):,}",
                      "-" if r["messages_rows"] is None else f"{r['messages_rows']:,}",
                      "-" if r["operations_rows"] is None else f"{r['operations_rows']:,}",
                      f"{r['wall_s']:.1f}", mib(r["python_kb"]), mib(r["children_kb"]),
                      mib(r["tree_kb"])))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for line in lines:
        log("  ".join(c.rjust(w) if i else c.ljust(w)
                      for i, (c, w) in enumerate(zip(line, widths, strict=True))))
    for r in rows:
        if r["rc"] or r["messages_rows"] != r["manifest"].get("messages_tshark"):
            log(f"note: {r['key']}: exit {r['rc']}, {r['messages_rows']} message rows for "
                f"{r['manifest'].get('messages_tshark')} messages in the capture")
    by = {r["key"]: r for r in rows}
    if set(by) != {"10k", "1m"}:
        log("(ok / NOT ok needs both captures)")
        return None
    small, big = by["10k"]["tree_kb"], by["1m"]["tree_kb"]
    ratio = big / small if small else float("inf")
    good = (ratio <= RATIO_TARGET and big < ABS_TARGET_MIB * 1024
            and not by["1m"]["rc"] and not by["10k"]["rc"])
    log(f"tree peak 1m / 10k = {mib(big)} / {mib(small)} MiB = {ratio:.2f}x "
        f"(target <= {RATIO_TARGET}x and < {ABS_TARGET_MIB} MiB)")
    log("ok" if good else "NOT ok")
    return good


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--pyn-worker"]:
        return pyn_worker(int(argv[1]))
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=list(CAPTURES), help="one capture only")
    ap.add_argument("--checkout", type=Path, default=Path.cwd(),
                    help="the checkout whose tshark_dicom is measured (default: .)")
    ap.add_argument("--force", action="store_true", help="remake the captures")
    ap.add_argument("--make-only", action="store_true", help="make (or check) the captures only")
    ap.add_argument("--keep-output", action="store_true",
                    help=f"keep OUT in {mc.bench_dir() / 'many-out'}")
    args = ap.parse_args(argv)
    keys = [args.only] if args.only else list(CAPTURES)
    checkout = args.checkout.resolve()
    if not args.make_only and not (checkout / "tshark_dicom" / "__main__.py").is_file():
        ap.error(f"{checkout}: no tshark_dicom package there (--checkout)")
    signal.signal(signal.SIGTERM, mc._sigterm)
    log(f"captures in {mc.bench_dir()}")
    with locked():
        for key in keys:
            make(key, force=args.force)
            log(f"  {describe(key)}")
    if args.make_only:
        return 0
    where = subprocess.run([VENV_PYTHON, "-c", "import tshark_dicom; print(tshark_dicom.__file__)"],
                           cwd=checkout, env={**os.environ, "PYTHONPATH": str(checkout)},
                           capture_output=True, text=True)
    log(f"measuring {where.stdout.strip() or where.stderr.strip()[-300:]} ({VENV_PYTHON})")
    rows = [measure(key, checkout, args.keep_output) for key in keys]
    good = report(rows)
    return 0 if good in (True, None) else 1


if __name__ == "__main__":
    sys.exit(main())
