#!/usr/bin/env python3
"""Peak memory on a large capture: `analyze` of store_4gb (make it first with
`python3 benchmarks/make_captures.py store_4gb`), our process, tshark's, and the two together,
sampled from /proc every 50 ms (VmRSS) plus each process's own high-water mark (VmHWM).

    python3 benchmarks/large_capture.py [--capture store_4gb] [--objects]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(os.environ.get("TSHARK_DICOM_BENCH_DIR", "/var/tmp/tshark-dicom-bench"))


def _status(pid: int) -> dict[str, int]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])  # kB
    except OSError:
        pass
    return out


def _children(pid: int) -> list[int]:
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    found = [int(k) for k in kids]
    for k in list(found):
        found.extend(_children(k))
    return found


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture", default="store_4gb")
    ap.add_argument("--objects", action="store_true", help="also write the Part-10 files")
    args = ap.parse_args()
    capture = BENCH_DIR / f"{args.capture}.pcapng"
    if not capture.exists():
        print(f"{capture}: missing; make it with benchmarks/make_captures.py {args.capture}")
        return 1
    out = Path(tempfile.mkdtemp(prefix="tdc-large-")) / "out"
    argv = [sys.executable, "-m", "tshark_dicom", "analyze", str(capture), "-o", str(out),
            "--quiet", *([] if args.objects else ["--no-objects"])]
    started = time.monotonic()
    proc = subprocess.Popen(argv)
    peak = {"python": 0, "tshark": 0, "sum": 0}
    hwm: dict[int, tuple[str, int]] = {}
    while proc.poll() is None:
        pids = [proc.pid, *_children(proc.pid)]
        total = 0
        for pid in pids:
            st = _status(pid)
            rss, name = st.get("VmRSS", 0), _name(pid)
            total += rss
            kind = "tshark" if ("tshark" in name or "editcap" in name) else "python"
            peak[kind] = max(peak[kind], rss)
            if "VmHWM" in st:
                hwm[pid] = (kind, st["VmHWM"])
        peak["sum"] = max(peak["sum"], total)
        time.sleep(0.05)
    wall = time.monotonic() - started
    for kind, value in hwm.values():
        peak[kind] = max(peak[kind], value)
    size = capture.stat().st_size
    print(f"{args.capture} ({size / 2**30:.2f} GiB), exit {proc.returncode}, wall {wall:.1f} s"
          f"{' with objects' if args.objects else ', tables only'}: peak python "
          f"{peak['python'] / 1024:.0f} MiB, tshark/editcap {peak['tshark'] / 1024:.0f} MiB, "
          f"both at once {peak['sum'] / 1024:.0f} MiB (sampled)")
    shutil.rmtree(out.parent, ignore_errors=True)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
