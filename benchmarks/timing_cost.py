#!/usr/bin/env python3
"""What timing costs: `analyze` with and without the TCP evidence observer, in one process,
alternating runs (A B A B ...), on the benchmark captures (make_captures.py).

    python3 benchmarks/timing_cost.py                    # store_200mb, 5 pairs
    python3 benchmarks/timing_cost.py --captures store_200mb store_1gb --pairs 3

"Without" gives every TCP connection no observer, so no evidence is gathered and every
operation's attribution falls back to message times only: what the pipeline cost before
timing. Wall times are medians; the ratio is taken pair by pair. Peak memory (ru_maxrss) is
read in a child process per variant, since it only grows within a process.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(os.environ.get("TSHARK_DICOM_BENCH_DIR", "/var/tmp/tshark-dicom-bench"))
ROOT = Path(__file__).resolve().parent.parent


def _switch(observer: bool) -> None:
    from tshark_dicom import streams

    original = getattr(streams.TcpConnection, "_original_init", streams.TcpConnection.__init__)
    streams.TcpConnection._original_init = original  # type: ignore[attr-defined]

    def without(self, stream, sink_for, observer=None):  # type: ignore[no-untyped-def]
        original(self, stream, sink_for, None)

    streams.TcpConnection.__init__ = original if observer else without  # type: ignore[method-assign]


def _once(capture: Path, observer: bool) -> float:
    import tshark_dicom

    _switch(observer)
    started = time.perf_counter()
    report = tshark_dicom.analyze(capture)
    elapsed = time.perf_counter() - started
    assert len(report.operations)
    return elapsed


def child(capture: str, observer: str) -> None:
    """Run once and print the peak RSS of this process (MiB)."""
    _once(Path(capture), observer == "on")
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--captures", nargs="+", default=["store_200mb"])
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    sys.path.insert(0, str(ROOT))
    _once(ROOT / "fixtures" / "captures" / "echo.pcapng", True)  # warm-up: imports, caches
    for name in args.captures:
        capture = BENCH_DIR / f"{name}.pcapng"
        if not capture.exists():
            print(f"{name}: missing, make it with benchmarks/make_captures.py")
            continue
        on, off = [], []
        for _ in range(args.pairs):
            on.append(_once(capture, True))
            off.append(_once(capture, False))
        ratios = [a / b for a, b in zip(on, off, strict=True)]
        peaks = {}
        for variant in ("on", "off"):
            out = subprocess.run([sys.executable, __file__, "--child", str(capture), variant],
                                 capture_output=True, text=True, check=True)
            peaks[variant] = float(out.stdout.strip().splitlines()[-1])
        print(f"{name}: analyze with timing {statistics.median(on):.2f} s, without "
              f"{statistics.median(off):.2f} s (median of {args.pairs}); with/without "
              f"{statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}); "
              f"peak RSS {peaks['on']:.0f} MiB with, {peaks['off']:.0f} MiB without")
    return 0


if __name__ == "__main__":
    sys.exit(main())
