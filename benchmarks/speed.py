#!/usr/bin/env python3
"""Issue 9's targets, measured side by side in one run and printed with ok / MISS.

Rows (each run --repeat times, medians; peak memory of our process and of the tools it
starts, from run.py's /proc monitor). The commands a ratio compares run in turn, one of each
a round, and the ratio printed is the median of the rounds' ratios: this machine's speed
drifts by a third within the hour, and runs of one command after the other's took it in.

  floor        tshark -r FILE -w - -F nsecpcap > /dev/null          (store_200mb, store_1gb)
  tables       tshark-dicom analyze FILE -o OUT --no-objects -q     target <= 3x floor
  objects      tshark-dicom analyze FILE -o OUT -q                  target <= 0.5x wireshark
  wireshark    tshark -r FILE --export-objects dicom,DIR -q
  22 MB        mixed_200mb_dicom_only: objects vs wireshark         target <= 1.0x
  tiny         analyze fixtures/captures/echo.pcapng -o OUT -q      target < 0.5 s
  version      tshark-dicom --version                               target < 0.2 s
  jobs         analyze ARCHIVE (40 fixture captures) --jobs 1 and 2 target >= 1.7x, and
               peak per worker process < 300 MB; then once over 500 copies (info only:
               the same ratio at archive scale, --large-archive N, 0 for none)

  python3 benchmarks/speed.py [--repeat N] [--captures store_200mb store_1gb] [--json PATH]
                              [--work DIR]
                              [--no-1gb-wireshark] [--only large 22mb tiny version jobs]
                              [--large-archive N]

Our package is byte-compiled first (``compileall``), as ``pip install`` leaves it: with
PYTHONDONTWRITEBYTECODE set and no ``__pycache__``, every run would compile its ~40 modules
again (about 0.07 s), a cost no installed copy pays.

Run it on a quiet machine: ratios taken in one run are what count.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import make_captures as mc  # noqa: E402
import run as bench  # noqa: E402

TSHARK = bench.TSHARK
FIXTURES = REPO / "fixtures" / "captures"
OURS = [sys.executable, "-m", "tshark_dicom"]


def timed(cmd: list[str], repeat: int, *, stdout: str | None = None,
          before=None) -> dict:
    """``cmd`` run ``repeat`` times in a row (`alternating` runs several in turn)."""
    return alternating({"x": (cmd, before)}, repeat, stdout=stdout)["x"]


def alternating(cmds: dict[str, tuple[list[str], object]], repeat: int, *,
                stdout: str | None = None) -> dict[str, dict]:
    """Each of ``cmds`` (name: (argv, what to do before each run)) run ``repeat`` times, in
    turn: round 1 runs each once, then round 2..., so that a ratio of two of them can be
    taken round by round (`ratio`) and the machine's drift during the call (this machine's
    speed moves by a third from one hour to the next) falls on both alike."""
    runs: dict[str, list[dict]] = {name: [] for name in cmds}
    for _ in range(repeat):
        for name, (cmd, before) in cmds.items():
            if before is not None:
                before()
            r = bench.measure(cmd, stdout=stdout, cwd=REPO, env=bench.ours_env())
            if r["rc"] != 0:
                raise SystemExit(f"failed ({r['rc']}): {' '.join(cmd)}\n{r['stderr_tail']}")
            runs[name].append(r)
    return {name: summary(cmds[name][0], rs) for name, rs in runs.items()}


def summary(cmd: list[str], runs: list[dict]) -> dict:
    return {
        "cmd": " ".join(cmd),
        "wall_s": statistics.median(r["wall_s"] for r in runs),
        "cpu_s": statistics.median(r["cpu_s"] for r in runs),
        "walls": [r["wall_s"] for r in runs],
        "self_peak_mb": max(r["self_peak_kb"] or 0 for r in runs) / 1024,
        # the run's process and its worker (analyze analyses in one, --jobs 1 too)
        "ours_peak_mb": max(bench.ours_peak_kb(r) for r in runs) / 1024,
        "tools_peak_mb": max(r["tshark_children_peak_kb"] or 0 for r in runs) / 1024,
        "children_peak_mb": max((k["hwm"] for r in runs for k in r["children"]),
                                default=0) / 1024,
        "tree_peak_mb": max(r["tree_maxrss_kb"] for r in runs) / 1024,
    }


def ratio(a: dict, b: dict) -> float:
    """a's wall time over b's, the median of the ratios of the runs made in the same round
    (`alternating`); of the medians where their counts differ (one run of a slow one)."""
    if len(a["walls"]) != len(b["walls"]):
        return a["wall_s"] / b["wall_s"]
    return statistics.median(x / y for x, y in zip(a["walls"], b["walls"], strict=True))


def clean(path: Path):
    return lambda: shutil.rmtree(path, ignore_errors=True)


def archive_of_fixtures(root: Path, count: int = 40) -> Path:
    """At least ``count`` small real-peer captures (the fixtures, copied as often as
    needed under distinct names)."""
    caps = sorted(p for p in FIXTURES.glob("*.pcapng"))
    folder = root / "archive"
    folder.mkdir(parents=True, exist_ok=True)
    i = 0
    while i < count:
        for cap in caps:
            shutil.copy(cap, folder / f"{i:03d}_{cap.name}")
            i += 1
    return folder


def jobs_1_and_2(archive: Path, out: Path, repeat: int) -> dict[str, dict]:
    """``analyze ARCHIVE -q`` with ``--jobs 1`` and ``--jobs 2``, by the jobs as text."""
    return alternating({str(j): ([*OURS, "analyze", str(archive), "-o", f"{out}{j}", "-q",
                                  "--jobs", str(j)], clean(Path(f"{out}{j}")))
                        for j in (1, 2)}, repeat)


#: The rows --only chooses from.
ROWS = ("large", "22mb", "tiny", "version", "jobs")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--captures", nargs="*", default=["store_200mb", "store_1gb"])
    ap.add_argument("--no-1gb-wireshark", action="store_true",
                    help="skip Wireshark's export of the 1 GB capture (about 35 s, 5 GB)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--work", type=Path, default=None, metavar="DIR",
                    help="where outputs and the archive copies go (default: a folder in the "
                    "system's temporary folder); a tmpfs such as /dev/shm takes the file "
                    "system's own cost out of the --jobs ratio (benchmarks/README.md)")
    ap.add_argument("--large-archive", type=int, default=500, metavar="N",
                    help="also time --jobs 1 and 2 once over N fixture copies (0: not)")
    ap.add_argument("--only", nargs="+", choices=ROWS, default=list(ROWS),
                    help="only these rows (default: all)")
    args = ap.parse_args(argv)
    only = set(args.only)
    compileall.compile_dir(str(REPO / "tshark_dicom"), quiet=1)
    work = Path(tempfile.mkdtemp(prefix="tdc-speed-", dir=args.work))
    results: dict[str, dict] = {}
    lines: list[str] = []

    def verdict(ok: bool) -> str:
        return "ok  " if ok else "MISS"

    try:
        needed = ((args.captures if "large" in only else [])
                  + (["mixed_200mb_dicom_only"] if "22mb" in only else []))
        if needed:
            mc.ensure(needed)
        for name in args.captures if "large" in only else []:
            path = str(mc.capture_path(name))
            out = work / name
            d = work / f"{name}-ws"
            export = ([TSHARK, "-r", path, "--export-objects", f"dicom,{d}", "-q"],
                      lambda d=d: (shutil.rmtree(d, ignore_errors=True), d.mkdir()))
            # in turn, round by round: the ratios are taken per round
            both = name != "store_1gb"  # its export: 35 s and 5 GB, once, after the rest
            r = results[name] = alternating({
                "floor": ([TSHARK, "-r", path, "-w", "-", "-F", "nsecpcap"], None),
                "tables": ([*OURS, "analyze", path, "-o", str(out), "--no-objects", "-q"],
                           clean(out)),
                "objects": ([*OURS, "analyze", path, "-o", str(out), "-q"], clean(out)),
                **({"wireshark": export} if both else {})}, args.repeat)
            if not both and not args.no_1gb_wireshark:
                r["wireshark"] = alternating({"wireshark": export}, 1)["wireshark"]
            x = ratio(r["tables"], r["floor"])
            lines.append(f"{verdict(x <= 3)} {name}: tables {r['tables']['wall_s']:.2f} s = "
                         f"{x:.1f}x the floor {r['floor']['wall_s']:.2f} s (target <= 3x)")
            if "wireshark" in r:
                y = ratio(r["objects"], r["wireshark"])
                lines.append(f"{verdict(y <= 0.5)} {name}: with objects "
                             f"{r['objects']['wall_s']:.2f} s = {y:.2f}x Wireshark's export "
                             f"{r['wireshark']['wall_s']:.2f} s (target <= 0.5x)")
            lines.append(f"info {name}: peak ours {r['objects']['ours_peak_mb']:.0f} MB, "
                         f"its tools {r['objects']['tools_peak_mb']:.0f} MB; Wireshark "
                         f"{r.get('wireshark', {}).get('self_peak_mb', 0):.0f} MB")
        small = str(mc.capture_path("mixed_200mb_dicom_only"))
        out = work / "small"
        d = work / "small-ws"
        s = results["mixed_200mb_dicom_only"] = {} if "22mb" not in only else alternating({
            "objects": ([*OURS, "analyze", small, "-o", str(out), "-q"], clean(out)),
            "wireshark": ([TSHARK, "-r", small, "--export-objects", f"dicom,{d}", "-q"],
                          lambda: (shutil.rmtree(d, ignore_errors=True), d.mkdir())),
        }, args.repeat)
        if s:
            z = ratio(s["objects"], s["wireshark"])
            lines.append(f"{verdict(z <= 1.0)} 22 MB DICOM-only: {s['objects']['wall_s']:.2f} s"
                         f" = {z:.2f}x Wireshark's export {s['wireshark']['wall_s']:.2f} s "
                         "(target <= 1x)")
        out = work / "tiny"
        if "tiny" in only:
            t = results["tiny"] = timed([*OURS, "analyze", str(FIXTURES / "echo.pcapng"), "-o",
                                         str(out), "-q"], max(args.repeat, 5), before=clean(out))
            lines.append(f"{verdict(t['wall_s'] < 0.5)} a capture of a few packets: "
                         f"{t['wall_s']:.2f} s (target < 0.5 s)")
        if "version" in only:
            v = results["version"] = timed([*OURS, "--version"], max(args.repeat, 5))
            lines.append(f"{verdict(v['wall_s'] < 0.2)} tshark-dicom --version: "
                         f"{v['wall_s']:.2f} s (target < 0.2 s)")
        if "jobs" in only:
            archive = archive_of_fixtures(work)
            n = len(list(archive.iterdir()))
            jobs = results["jobs"] = jobs_1_and_2(archive, work / "jobs", args.repeat)
            speedup = ratio(jobs["1"], jobs["2"])
            lines.append(f"{verdict(speedup >= 1.7)} {n} captures: --jobs 2 "
                         f"{jobs['2']['wall_s']:.2f} s vs --jobs 1 {jobs['1']['wall_s']:.2f} s = "
                         f"{speedup:.2f}x (target >= 1.7x)")
            # what no scheduling can beat: --jobs 1 keeps more than one core busy already
            # (editcap and tshark beside its worker, the run's own process), and --jobs 2
            # does the same work on the machine's cores
            busy = jobs["1"]["cpu_s"] / jobs["1"]["wall_s"]
            cores = min(2, os.cpu_count() or 1)
            lines.append(f"info --jobs 1 kept {busy:.2f} cores busy: on {cores} cores --jobs 2 "
                         f"is at most {cores / busy:.2f}x as fast, were nothing serial (CPU "
                         f"{jobs['1']['cpu_s']:.2f} s / {jobs['2']['cpu_s']:.2f} s)")
            worker = jobs["2"]["children_peak_mb"]
            lines.append(f"{verdict(worker < 300)} --jobs 2: peak per worker process "
                         f"{worker:.0f} MB (target < 300 MB)")
            lines.append(f"info --jobs 1: peak of the main process {jobs['1']['self_peak_mb']:.0f}"
                         f" MB (it also draws the summary and the page from every capture's "
                         "tables)")
            if args.large_archive:  # the same at archive scale, once each (about a minute)
                big = archive_of_fixtures(work / "large", args.large_archive)
                many = results["jobs_large"] = jobs_1_and_2(big, work / "large", 1)
                lines.append(
                    f"info {args.large_archive} captures: --jobs 2 {many['2']['wall_s']:.2f} s vs "
                    f"--jobs 1 {many['1']['wall_s']:.2f} s = "
                    f"{many['1']['wall_s'] / many['2']['wall_s']:.2f}x; main process peak "
                    f"{many['1']['self_peak_mb']:.0f} MB")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"results": results, "verdicts": lines}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
