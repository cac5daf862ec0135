#!/usr/bin/env python3
"""`tshark-dicom watch` under a stream of associations: how soon each one is told after it
ends, and whether memory stays flat as the watch goes on.

Real peers on loopback: a pynetdicom storage SCP, and a pynetdicom SCU that opens
``--associations`` associations one after another (each a C-ECHO and a C-STORE of pydicom's
CT_small, the tenth of them refused 0xA700), while ``python -m tshark_dicom watch lo -f 'tcp
port N'`` runs as a process of its own. Measured:

- latency: from the SCU's release (A-RELEASE-RP received) to the association's line on the
  watch's standard output (median, 95th percentile and worst);
- memory: the watch process tree's resident size (the watch, dumpcap; VmRSS summed from
  /proc every 50 ms) after the first tenth of the associations and at the end; the last line
  is ``ok`` when the end is within 1.25x of the first tenth and every association was told.

    python3 benchmarks/watch_live.py [--associations N] [--checkout PATH]

Needs root (dumpcap on lo). Nothing is written but a scratch folder, removed after.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def tree_rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` and its descendants (KiB)."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(re.search(r"VmRSS:\s+(\d+)", status)[1])  # type: ignore[index]
            for task in Path(f"/proc/{p}/task").iterdir():
                children = (task / "children").read_text().split()
                todo.extend(int(c) for c in children)
        except (OSError, TypeError):
            continue
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--associations", type=int, default=2000)
    parser.add_argument("--checkout", type=Path, default=HERE.parent)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("watch_live.py captures with dumpcap on lo: run as root", file=sys.stderr)
        return 2
    from pydicom import dcmread
    from pydicom.data import get_testdata_file
    from pynetdicom import AE, StoragePresentationContexts, evt
    from pynetdicom.sop_class import CTImageStorage, Verification

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    scp = AE(ae_title="BENCH-SCP")
    scp.supported_contexts = StoragePresentationContexts
    scp.add_supported_context(Verification)
    count = [0]

    def on_store(event: object) -> int:
        count[0] += 1
        return 0xA700 if count[0] % 10 == 0 else 0

    server = scp.start_server(("127.0.0.1", port), block=False,
                              evt_handlers=[(evt.EVT_C_STORE, on_store)])
    python = os.environ.get("TSHARK_DICOM_PYTHON", sys.executable)
    env = {**os.environ, "PYTHONPATH": str(args.checkout)}
    proc = subprocess.Popen([python, "-m", "tshark_dicom", "watch", "lo", "-f",
                             f"tcp port {port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=tempfile.gettempdir())
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stderr.readline()
    if not first.startswith("watching"):
        print(first + proc.stderr.read(), file=sys.stderr)
        return 1
    # when each association's line came; one after the other, they end (and are told) in
    # the order they were opened (a requestor port may come again: the kernel reuses them)
    told: list[float] = []
    tail: list[str] = []  # what the watch printed after the associations

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("lo: ") or tail:
                tail.append(line.rstrip("\n"))
            if re.match(r"\d\d:\d\d:\d\d\.\d{3}  BENCH-SCU -> BENCH-SCP ", line):
                told.append(time.monotonic())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    peak = [0]
    sampling = [True]

    def sample() -> None:
        while sampling[0]:
            peak[0] = max(peak[0], tree_rss_kib(proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    scu = AE(ae_title="BENCH-SCU")
    scu.add_requested_context(Verification)
    scu.add_requested_context(CTImageStorage)
    ds = dcmread(get_testdata_file("CT_small.dcm"))
    released: list[float] = []
    tenth = max(1, args.associations // 10)
    peak_tenth = 0
    started = time.monotonic()
    for i in range(args.associations):
        assoc = scu.associate("127.0.0.1", port, ae_title="BENCH-SCP")
        assoc.send_c_echo()
        assoc.send_c_store(ds, msg_id=2)
        assoc.release()
        released.append(time.monotonic())
        if i + 1 == tenth:
            time.sleep(1.0)
            peak_tenth = peak[0]
    time.sleep(1.0)
    elapsed = time.monotonic() - started
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=120)
    finally:
        sampling[0] = False
        server.shutdown()
    reader.join(timeout=5)
    latencies = sorted(t - r for t, r in zip(told, released, strict=False))
    n = len(latencies)
    q95 = latencies[int(0.95 * (n - 1))] if n else float("nan")
    print(f"{args.associations} associations in {elapsed:.1f} s, {n} told "
          f"(watch exit {proc.returncode})")
    for line in tail[:6]:
        print(f"  watch: {line[:300]}")
    if n:
        print(f"latency from release to line: median {statistics.median(latencies) * 1e3:.0f} ms,"
              f" 95% {q95 * 1e3:.0f} ms, worst {latencies[-1] * 1e3:.0f} ms")
    print(f"tree peak RSS after {tenth}: {peak_tenth / 1024:.1f} MiB; at the end "
          f"({args.associations}): {peak[0] / 1024:.1f} MiB = "
          f"{peak[0] / max(peak_tenth, 1):.2f}x")
    ok = n == args.associations and peak[0] <= 1.25 * peak_tenth and proc.returncode == 0
    print("ok" if ok else "MISS")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
