#!/usr/bin/env python3
"""What any design pays on this machine before our own work: the parts of issue 9's targets
that no change to tshark-dicom can remove, measured side by side in one run.

  cores        os.cpu_count()
  imports      python -c "import ..." for the libraries the brief prescribes: pydicom and
               pynetdicom (needed before the first PDU can be decoded), pandas and pyarrow
               (the tables, the summary and the report), all four
  receive      editcap -F nsecpcap FILE - into a Python reader of 1 MiB reads that does
               nothing with the bytes: the least it costs to get the packets into our
               process (wall; CPU of editcap and of the reader)
  sha256       hashlib.sha256 over the capture's data-set bytes (the objects table's sha256
               column, SPEC): bytes from the capture's .json (object_bytes), rate measured
  floor        tshark -r FILE -w - -F nsecpcap > /dev/null (speed.py's floor)
  wireshark    tshark -r FILE --export-objects dicom,DIR -q (the 22 MB capture)

  python3 benchmarks/limits.py [--repeat N] [--captures store_200mb store_1gb]

Read with benchmarks/README.md ("What the remaining targets need").
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_captures as mc  # noqa: E402
import run as bench  # noqa: E402

EDITCAP = shutil.which("editcap") or "/usr/bin/editcap"
IMPORTS = {
    "pydicom + pynetdicom": "import pydicom, pynetdicom",
    "pandas + pyarrow.parquet": "import pandas, pyarrow.parquet",
    "all four": "import pydicom, pynetdicom, pandas, pyarrow.parquet",
    "nothing (interpreter)": "pass",
}
READER = ("import os, sys\nbuf = bytearray(1 << 20)\nn = 0\nwhile True:\n"
          "    k = sys.stdin.buffer.raw.readinto(buf)\n    if not k:\n        break\n"
          "    n += k\nprint(n)\n")


def best(cmd: list[str] | str, repeat: int, **kw: object) -> tuple[float, float]:
    """Fastest wall of ``repeat`` runs and its CPU (user + system of the whole tree)."""
    runs = []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        runs.append((wall, cpu))
    return min(runs)


def sha256_rate() -> float:
    """Bytes per second of hashlib.sha256 fed 1 MiB pieces (as the objects are)."""
    piece = os.urandom(1 << 20)
    h = hashlib.sha256()
    t0 = time.perf_counter()
    for _ in range(256):
        h.update(piece)
    return (256 << 20) / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--captures", nargs="*", default=["store_200mb", "store_1gb"])
    args = ap.parse_args(argv)
    mc.ensure([*args.captures, "mixed_200mb_dicom_only"])
    print(f"cores: {os.cpu_count()}")
    for what, code in IMPORTS.items():
        wall, _ = best([sys.executable, "-c", code], max(args.repeat, 5))
        print(f"imports, {what}: {wall:.3f} s")
    rate = sha256_rate()
    print(f"sha256: {rate / 1e9:.2f} GB/s")
    with tempfile.TemporaryDirectory(prefix="tdc-limits-") as tmp:
        dicom_only = mc.capture_path("mixed_200mb_dicom_only")
        wall, _ = best([bench.TSHARK, "-r", str(dicom_only), "--export-objects",
                        f"dicom,{tmp}/w", "-q"], args.repeat)
        print(f"wireshark export, {dicom_only.name}: {wall:.3f} s")
        for name in [*args.captures, "mixed_200mb_dicom_only"]:
            path = mc.capture_path(name)
            facts = json.loads(Path(f"{path}.json").read_text())
            floor, _ = best([bench.TSHARK, "-r", str(path), "-w", "-", "-F", "nsecpcap"],
                            args.repeat)
            recv, recv_cpu = best(
                f"{EDITCAP} -F nsecpcap {path} - | {sys.executable} -c '{READER}'",
                args.repeat, shell=True)
            hashing = facts.get("object_bytes", 0) / rate
            print(f"{name}: floor {floor:.3f} s (3x = {3 * floor:.3f} s); receive {recv:.3f} s "
                  f"wall, {recv_cpu:.3f} s CPU; sha256 of {facts.get('object_bytes', 0) / 1e6:.0f}"
                  f" MB of data sets {hashing:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
