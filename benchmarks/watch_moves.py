#!/usr/bin/env python3
"""What telling each C-MOVE's outcome when it ends (qrpreview.py) costs a long watch, and
whether its memory stays flat however many C-MOVEs it sees.

A stream of N C-MOVEs, each as in fixture qr_move_partial (dcmqrscp moves four CTs to a
destination that refuses two and rejects 14 contexts: the preview adds findings to the
C-MOVE and rewords its callback's), one after another 10 s apart (editcap -t, mergecap -a),
is analysed as `watch -` does (analysis.analyze_stream on the pcap stream, each association
handed on as told) with the previews, and without them (as before: correlation kept every
C-MOVE's associations to the end), at N and at 4N. A preview reads only the kept
associations that ended since its C-MOVE began (qrpreview.window_start), and between
retrievals the kept ones are correlated and handed on (analysis._Run._release). Printed:
seconds and peak resident memory (the process's) at each size; ``ok`` when, with the
previews, the time per C-MOVE at 4N is within 1.5x of N's, the peak within 1.25x, and
every C-MOVE was previewed once.

    python3 benchmarks/watch_moves.py [--moves N] [--checkout PATH]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def build(work: Path, n: int, fixture: Path) -> Path:
    """``n`` copies of the fixture, 10 s apart, as one pcap stream (built in doubling
    steps: a few editcap and mergecap runs, not n)."""
    unit = work / "unit.pcap"
    subprocess.run(["editcap", "-F", "pcap", str(fixture), str(unit)], check=True)
    have, count, span = unit, 1, 10
    while count < n:
        shifted = work / f"shift{count}.pcap"
        subprocess.run(["editcap", "-F", "pcap", "-t", str(span * count), str(have),
                        str(shifted)], check=True)
        joined = work / f"joined{count * 2}.pcap"
        subprocess.run(["mergecap", "-F", "pcap", "-a", "-w", str(joined), str(have),
                        str(shifted)], check=True)
        have, count = joined, count * 2
    return have if count == n else _first(work, have, n, fixture)


def _first(work: Path, have: Path, n: int, fixture: Path) -> Path:
    """The first ``n`` copies of a larger stream (its packets per copy are the fixture's)."""
    per = int(subprocess.run(["capinfos", "-c", "-M", "-T", "-r", str(fixture)],
                             capture_output=True, text=True, check=True).stdout.split()[-1])
    out = work / f"moves{n}.pcap"
    subprocess.run(["editcap", "-F", "pcap", "-r", str(have), str(out), f"1-{per * n}"],
                   check=True)
    return out


def run(checkout: Path, stream: Path, previews: bool) -> tuple[float, int, int, int]:
    """Seconds, peak resident KiB, previews heard, associations."""
    code = f"""
import resource, sys, time
sys.path.insert(0, {str(checkout)!r})
from tshark_dicom.analysis import analyze_stream
from tshark_dicom.tshark import find_tshark
heard = []
started = time.perf_counter()
with open({str(stream)!r}, "rb") as f:
    r = analyze_stream(f, label="bench", tshark=find_tshark(None), on_settled=lambda d: None,
                       on_association=lambda d: None,
                       on_previewed=(lambda m, said: heard.append(m.assoc.stream)) if {previews}
                       else None)
print(time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
      len(heard), len(r.streams))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    return float(out[0]), int(out[1]), int(out[2]), int(out[3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--moves", type=int, default=200)
    parser.add_argument("--checkout", type=Path, default=HERE.parent)
    args = parser.parse_args()
    fixture = args.checkout / "fixtures" / "captures" / "qr_move_partial.pcapng"
    work = Path(tempfile.mkdtemp(prefix="watch-moves-"))
    try:
        per_move, peaks = [], []
        ok = True
        for n in (args.moves, args.moves * 4):
            stream = build(work, n, fixture)
            best: dict[bool, tuple[float, int]] = {}
            for previews in (False, True, False, True):  # best of two, interleaved
                seconds, peak, heard, assocs = run(args.checkout, stream, previews)
                was = best.get(previews, (seconds, peak))
                best[previews] = (min(was[0], seconds), min(was[1], peak))
                if previews and heard != n:
                    ok = False
                    print(f"{n} C-MOVEs: {heard} previewed, NOT each once")
            per_move.append(best[True][0] / n * 1000)
            peaks.append(best[True][1])
            print(f"{n} C-MOVEs ({assocs} associations): without the previews {best[False][0]:.2f}"
                  f" s, peak {best[False][1] / 1024:.0f} MiB; with them {best[True][0]:.2f} s "
                  f"({per_move[-1]:.2f} ms a C-MOVE), peak {best[True][1] / 1024:.0f} MiB")
        time_ratio, peak_ratio = per_move[1] / per_move[0], peaks[1] / peaks[0]
        ok = ok and time_ratio <= 1.5 and peak_ratio <= 1.25
        print(f"with the previews, {args.moves * 4} against {args.moves} C-MOVEs: time per "
              f"C-MOVE {time_ratio:.2f}x (target <= 1.5x), peak {peak_ratio:.2f}x (target "
              f"<= 1.25x) {'ok' if ok else 'NOT ok'}")
        if not ok:
            sys.exit(1)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
