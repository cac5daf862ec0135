#!/usr/bin/env python3
"""Speed and memory of tshark-dicom against plain tshark, measured side by side in one run.

For each benchmark capture (see make_captures.py) it runs, in this order:

  reference   tshark -n -r FILE --disable-protocol dicom -T ek -e frame.number -e frame.time_epoch
              -e tcp.stream -e tcp.seq -e tcp.len -e tcp.payload > /dev/null
  tables      python3 -m tshark_dicom analyze FILE -o OUT --no-objects --quiet
  objects     python3 -m tshark_dicom analyze FILE -o OUT --quiet
  wireshark   tshark -n -r FILE --export-objects dicom,DIR -q
              (not on store_1gb unless --with-wireshark-1gb: 313 s and 5.3 GB there)

and prints wall time, CPU time, and peak memory: for our rows SEPARATELY for our Python process and
for the tshark processes it starts (VmHWM from /proc/PID/status, polled every 50 ms for the
process and every descendant); for tshark rows, tshark's own peak.  Also the exact peak of the
whole process tree from wait4() (ru_maxrss) as a cross-check.

  python3 benchmarks/run.py [--captures NAME...] [--repeat N] [--skip-make] [--json PATH]
                            [--with-wireshark-1gb] [--variants] [--no-main] [--keep-output]

--variants also times the tshark variants useful for designing the extraction (on store_200mb and
mixed_200mb; see README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import make_captures as mc  # noqa: E402

TSHARK = shutil.which("tshark") or "/usr/bin/tshark"
POLL_S = 0.05
OWN_TARGET_MB = 300
DEFAULT_CAPTURES = ["store_200mb", "store_1gb", "mixed_200mb", "mixed_200mb_dicom_only"]

REF_FIELDS = ["frame.number", "frame.time_epoch", "tcp.stream", "tcp.seq", "tcp.len", "tcp.payload"]
NO_TCP_ANALYSIS = [
    "-o",
    "tcp.analyze_sequence_numbers:FALSE",
    "-o",
    "tcp.desegment_tcp_streams:FALSE",
]
ASSOC_RQ_FILTER = "tcp.payload[0:2] == 01:00 && tcp.payload[6:2] == 00:01"


def ek_cmd(path: Path, fields=REF_FIELDS, extra=()) -> list[str]:
    cmd = [TSHARK, "-n", "-r", str(path), *extra, "--disable-protocol", "dicom", "-T", "ek"]
    for f in fields:
        cmd += ["-e", f]
    return cmd


# --------------------------------------------------------------------------- process-tree monitor


def _read(path: str, size: int = 4096) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, size)
    except OSError:
        return None
    finally:
        os.close(fd)


def _status(pid: int) -> dict | None:
    data = _read(f"/proc/{pid}/status")
    if data is None:
        return None
    text = data.decode(errors="replace")
    out = {}
    for line in text.splitlines():
        key, _, val = line.partition(":")
        if key in ("Name", "PPid", "VmHWM", "VmRSS"):
            v = val.strip()
            out[key] = int(v.split()[0]) if key != "Name" else v
    return out


_HAVE_CHILDREN_FILE = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")


def _children(pid: int) -> list[int]:
    kids = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                kids += [int(x) for x in fh.read().split()]
    except OSError:
        pass
    return kids


def _descendants(root: int) -> list[int]:
    if _HAVE_CHILDREN_FILE:
        out, todo = [], [root]
        while todo:
            kids = _children(todo.pop())
            out += kids
            todo += kids
        return out
    # no CONFIG_PROC_CHILDREN: build the parent map from /proc/*/stat
    parent: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        data = _read(f"/proc/{entry}/stat", 512)
        if not data:
            continue
        ppid = int(data[data.rindex(b")") + 2 :].split(None, 2)[1])
        parent.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        kids = parent.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def cmdline(pid: int) -> bytes | None:
    return _read(f"/proc/{pid}/cmdline")


def pre_exec_copy(pid: int, parent_cmdline: bytes | None) -> bool:
    """Whether ``pid`` is a fork of the parent that has not exec'd yet (subprocess forks,
    then runs editcap): until it does, /proc shows the parent's memory as its own, and a
    sample taken in that instant counted the parent twice (a "135 MB editcap")."""
    return parent_cmdline is not None and cmdline(pid) == parent_cmdline


class TreeMonitor(threading.Thread):
    """Polls VmHWM/VmRSS of a process and all its descendants every POLL_S seconds."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.stop_event = threading.Event()
        self.main = {"hwm": 0, "rss": 0, "name": None}
        self.kids: dict[int, dict] = {}
        self.kids_rss_sum_max = 0
        self.polls = 0

    def run(self):
        while not self.stop_event.is_set():
            self.sample()
            self.stop_event.wait(POLL_S)

    def sample(self):
        st = _status(self.pid)
        if st and "VmHWM" in st:
            self.main["hwm"] = max(self.main["hwm"], st["VmHWM"])
            self.main["rss"] = max(self.main["rss"], st["VmRSS"])
            self.main["name"] = st["Name"]
        rss_sum = 0
        mine = cmdline(self.pid)
        for kid in _descendants(self.pid):
            kst = _status(kid)
            if not kst or "VmHWM" not in kst or pre_exec_copy(kid, mine):
                continue
            rec = self.kids.setdefault(kid, {"pid": kid, "name": kst["Name"], "hwm": 0, "rss": 0})
            rec["name"] = kst["Name"]
            rec["hwm"] = max(rec["hwm"], kst["VmHWM"])
            rec["rss"] = max(rec["rss"], kst["VmRSS"])
            rss_sum += kst["VmRSS"]
        self.kids_rss_sum_max = max(self.kids_rss_sum_max, rss_sum)
        self.polls += 1

    def stop(self):
        self.stop_event.set()
        self.join()


def ours_peak_kb(rec: dict) -> int:
    """The largest of our processes: the run's and its worker (``analyze`` analyses in a
    worker process, with --jobs 1 too), sampled, and the tree's exact peak (wait4's
    ru_maxrss: the largest process of the tree, tshark's and editcap's included, which
    are a few MB)."""
    return max(rec["self_peak_kb"] or 0, rec.get("other_children_peak_kb") or 0,
               rec.get("tree_maxrss_kb") or 0)


def is_tshark(name: str | None) -> bool:
    return bool(name) and name.startswith(("tshark", "dumpcap", "editcap"))


def measure(cmd: list[str], *, stdout=None, cwd=None, env=None) -> dict:
    """Run cmd to completion; wall, CPU, peaks. stdout: path to write to, or None for /dev/null."""
    errf = tempfile.TemporaryFile()
    outf = open(stdout, "wb") if stdout else subprocess.DEVNULL
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=outf, stderr=errf, cwd=cwd, env=env)
    mon = TreeMonitor(proc.pid)
    mon.start()
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    mon.stop()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if stdout:
        outf.close()
    errf.seek(0)
    err = errf.read().decode(errors="replace")
    errf.close()
    err = "\n".join(ln for ln in err.splitlines() if "could be dangerous" not in ln)
    kids = sorted(mon.kids.values(), key=lambda k: -k["hwm"])
    tshark_kids = [k for k in kids if is_tshark(k["name"])]
    other_kids = [k for k in kids if not is_tshark(k["name"])]
    return {
        "rc": proc.returncode,
        "wall_s": round(wall, 3),
        "cpu_s": round(ru.ru_utime + ru.ru_stime, 3),
        "self_name": mon.main["name"],
        "self_peak_kb": mon.main["hwm"],
        "self_rss_max_kb": mon.main["rss"],
        "tshark_children_peak_kb": max((k["hwm"] for k in tshark_kids), default=None),
        "other_children_peak_kb": max((k["hwm"] for k in other_kids), default=None),
        "children_rss_sum_max_kb": mon.kids_rss_sum_max if kids else None,
        "children": kids,
        "tree_maxrss_kb": ru.ru_maxrss,
        "polls": mon.polls,
        "stderr_tail": err[-1500:] if proc.returncode else "",
    }


# --------------------------------------------------------------------------- rows


def ours_available() -> tuple[bool, str]:
    code = (
        "import importlib.util, tshark_dicom; "
        "assert importlib.util.find_spec('tshark_dicom.__main__'), 'no tshark_dicom.__main__'"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=ours_env(), capture_output=True, text=True
    )
    if r.returncode == 0:
        return True, ""
    last = (r.stderr.strip().splitlines() or ["?"])[-1]
    return False, last


def ours_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    return env


def dir_stats(d: Path) -> tuple[int, int]:
    files = size = 0
    if d.exists():
        for p in d.rglob("*"):
            if p.is_file():
                files += 1
                size += p.stat().st_size
    return files, size


def row_commands(name: str, path: Path, out_root: Path, args) -> list[dict]:
    rows = [
        {
            "row": "reference",
            "label": "reference extraction (tshark -T ek)",
            "cmd": ek_cmd(path),
            "display": shlex.join(ek_cmd(path)) + " > /dev/null",
        }
    ]
    for row, label, extra in (
        ("tables", "ours, tables only", ["--no-objects"]),
        ("objects", "ours, with objects", []),
    ):
        out = out_root / row
        cmd = [
            sys.executable,
            "-m",
            "tshark_dicom",
            "analyze",
            str(path),
            "-o",
            str(out),
            *extra,
            "--quiet",
        ]
        rows.append(
            {
                "row": row,
                "label": label,
                "cmd": cmd,
                "display": shlex.join(cmd),
                "ours": True,
                "out": out,
                "objects_dir": out / "objects",
            }
        )
    if name != "store_1gb" or args.with_wireshark_1gb:
        d = out_root / "wireshark-export"
        cmd = [TSHARK, "-n", "-r", str(path), "--export-objects", f"dicom,{d}", "-q"]
        rows.append(
            {
                "row": "wireshark",
                "label": "tshark --export-objects dicom",
                "cmd": cmd,
                "display": shlex.join(cmd),
                "out": d,
                "objects_dir": d,
                "mkdir": True,
            }
        )
    return rows


def warm_cache(path: Path) -> float:
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as fh:
        while fh.read(8 * 1024 * 1024):
            pass
    return time.perf_counter() - t0


def mb(kb) -> str:
    return "-" if kb in (None, 0) else f"{kb / 1024:.0f}"


def run_main(args, captures: list[str], manifests: dict, results: dict):
    have_ours, why = ours_available()
    if not have_ours:
        print(f"\ntshark_dicom not importable ({why}): its rows are skipped\n", flush=True)
    out_base = mc.bench_dir() / "run-out"
    for name in captures:
        path = mc.capture_path(name)
        man = manifests.get(name) or mc.read_manifest(name) or {}
        rows = row_commands(name, path, out_base / name, args)
        print(
            f"\n=== {name}.pcapng: {mc.human(path.stat().st_size)}, "
            f"{man.get('packets', '?')} packets, "
            f"{man.get('associations', '?')} associations, {man.get('objects', '?')} objects",
            flush=True,
        )
        t = warm_cache(path)
        print(f"    (read once into the page cache in {t:.2f} s)", flush=True)
        for r in rows:
            print(f"    $ {r['display']}", flush=True)
        for rep in range(args.repeat):
            for r in rows:
                rec = {
                    "capture": name,
                    "row": r["row"],
                    "label": r["label"],
                    "repeat": rep,
                    "command": r["display"],
                }
                if r.get("ours") and not have_ours:
                    rec["skipped"] = "tshark_dicom not importable: skipped"
                    print(f"    {r['label']:<36} tshark_dicom not importable: skipped", flush=True)
                    results["runs"].append(rec)
                    continue
                if "out" in r:
                    shutil.rmtree(r["out"], ignore_errors=True)
                    if r.get("mkdir"):
                        r["out"].mkdir(parents=True)
                m = measure(r["cmd"], cwd=REPO, env=ours_env() if r.get("ours") else None)
                rec.update(m)
                if "objects_dir" in r:
                    rec["objects_written"], rec["objects_bytes"] = dir_stats(r["objects_dir"])
                if "out" in r:
                    rec["output_files"], rec["output_bytes"] = dir_stats(r["out"])
                    if not args.keep_output:
                        shutil.rmtree(r["out"], ignore_errors=True)
                results["runs"].append(rec)
                print("    " + one_line(rec), flush=True)
                if rec["rc"]:
                    print(
                        "      stderr: " + rec["stderr_tail"].replace("\n", "\n      "), flush=True
                    )
    if not args.keep_output:
        shutil.rmtree(out_base, ignore_errors=True)


def one_line(rec: dict) -> str:
    if r := rec.get("skipped"):
        return f"{rec['label']:<36} {r}"
    s = f"{rec['label']:<36} wall {rec['wall_s']:7.2f} s  cpu {rec['cpu_s']:7.2f} s  "
    if rec["row"] in ("tables", "objects"):
        s += (
            f"python peak {mb(rec['self_peak_kb'])} MB, "
            f"tshark peak {mb(rec['tshark_children_peak_kb'])} MB"
        )
        if rec.get("other_children_peak_kb"):
            s += f", other children peak {mb(rec['other_children_peak_kb'])} MB"
    else:
        s += f"tshark peak {mb(rec['self_peak_kb'])} MB"
    s += f" (tree exact {mb(rec['tree_maxrss_kb'])} MB)"
    if "objects_written" in rec:
        s += f"  objects {rec['objects_written']}"
    if rec["rc"]:
        s += f"  EXIT {rec['rc']}"
    return s


# --------------------------------------------------------------------------- summary


def summarise(runs: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["capture"], r["row"]), []).append(r)
    out = []
    for (cap, row), rs in groups.items():
        ok = [r for r in rs if not r.get("skipped") and r.get("rc") == 0]
        rec = {
            "capture": cap,
            "row": row,
            "label": rs[0]["label"],
            "command": rs[0]["command"],
            "n": len(ok),
            "failed": sum(1 for r in rs if not r.get("skipped") and r.get("rc")),
            "skipped": rs[0].get("skipped"),
        }
        if ok:
            walls = [r["wall_s"] for r in ok]
            rec.update(
                wall_median_s=round(statistics.median(walls), 3),
                wall_min_s=min(walls),
                cpu_median_s=round(statistics.median(r["cpu_s"] for r in ok), 3),
                self_peak_kb=max(r["self_peak_kb"] for r in ok),
                tshark_children_peak_kb=max((r["tshark_children_peak_kb"] or 0) for r in ok)
                or None,
                other_children_peak_kb=max((r["other_children_peak_kb"] or 0) for r in ok) or None,
                tree_maxrss_kb=max(r["tree_maxrss_kb"] for r in ok),
                objects_written=ok[-1].get("objects_written"),
            )
        out.append(rec)
    # ratio to the reference of the same capture
    ref = {s["capture"]: s for s in out if s["row"] == "reference" and s.get("wall_median_s")}
    for s in out:
        if s.get("wall_median_s") and s["capture"] in ref:
            s["x_reference"] = round(s["wall_median_s"] / ref[s["capture"]]["wall_median_s"], 2)
    return out


def print_table(summary: list[dict], repeat: int):
    print("\n" + "=" * 110)
    wall_hdr = "wall s (med)" if repeat > 1 else "wall s"
    hdr = (
        f"{'capture':<24} {'row':<34} {wall_hdr:>12} {'x ref':>6} {'cpu s':>7} "
        f"{'python MB':>9} {'tshark MB':>9} {'tree MB':>8} {'objects':>7}"
    )
    print(hdr)
    print("-" * len(hdr))
    for s in summary:
        if s.get("skipped"):
            print(f"{s['capture']:<24} {s['label']:<34} {s['skipped']}")
            continue
        if not s.get("wall_median_s"):
            print(f"{s['capture']:<24} {s['label']:<34} FAILED")
            continue
        ours = s["row"] in ("tables", "objects")
        py = mb(s["self_peak_kb"]) if ours else "-"
        ts = mb(s["tshark_children_peak_kb"]) if ours else mb(s["self_peak_kb"])
        objs = "" if s.get("objects_written") is None else str(s["objects_written"])
        wall = f"{s['wall_median_s']:.2f}" + (f" ({s['wall_min_s']:.2f})" if repeat > 1 else "")
        print(
            f"{s['capture']:<24} {s['label']:<34} {wall:>12} {s.get('x_reference', ''):>6} "
            f"{s['cpu_median_s']:>7.2f} {py:>9} {ts:>9} {mb(s['tree_maxrss_kb']):>8} {objs:>7}"
        )
    print(
        "python MB = VmHWM of our python process; tshark MB = VmHWM of the tshark it starts\n"
        "(or of the tshark run itself); tree MB = wait4() ru_maxrss, the largest single process\n"
        "of the tree, exact. MB = MiB."
    )


def check_targets(summary: list[dict]) -> list[str]:
    by = {(s["capture"], s["row"]): s for s in summary if s.get("wall_median_s")}
    lines = []

    def verdict(ok: bool) -> str:
        return "ok  " if ok else "MISS"

    for cap in DEFAULT_CAPTURES:
        t, ref = by.get((cap, "tables")), by.get((cap, "reference"))
        if t and ref:
            x = t["wall_median_s"] / ref["wall_median_s"]
            lines.append(
                f"{verdict(x <= 1.2)} {cap}: tables-only wall {x:.2f}x the reference "
                "extraction (target <= 1.2x)"
            )
        for row in ("tables", "objects"):
            s = by.get((cap, row))
            if s:
                p = ours_peak_kb(s) / 1024
                lines.append(
                    f"{verdict(p < OWN_TARGET_MB)} {cap}: {row}: our processes' peak {p:.0f} MB "
                    f"(target < {OWN_TARGET_MB} MB)"
                )
        o, w = by.get((cap, "objects")), by.get((cap, "wireshark"))
        if o and w:
            lines.append(
                f"{verdict(o['wall_median_s'] <= w['wall_median_s'])} {cap}: with objects "
                f"{o['wall_median_s']:.2f} s vs tshark --export-objects {w['wall_median_s']:.2f} s"
            )
    for row in ("tables", "objects"):
        a, b = by.get(("store_200mb", row)), by.get(("store_1gb", row))
        if a and b:
            r = ours_peak_kb(b) / ours_peak_kb(a)
            sizes = [mc.capture_path(c).stat().st_size for c in ("store_200mb", "store_1gb")]
            lines.append(
                f"{verdict(r <= 1.25)} flat memory ({row}): our peak "
                f"{ours_peak_kb(a) / 1024:.0f} MB at 200 MB, "
                f"{ours_peak_kb(b) / 1024:.0f} MB at 1 GB ({r:.2f}x; "
                f"capture {sizes[1] / sizes[0]:.1f}x)"
            )
    for row in ("reference", "tables", "objects"):
        m, d = by.get(("mixed_200mb", row)), by.get(("mixed_200mb_dicom_only", row))
        if m and d:
            lines.append(
                f"info mixed vs its DICOM-only part ({row}): {m['wall_median_s']:.2f} s vs "
                f"{d['wall_median_s']:.2f} s ({m['wall_median_s'] / d['wall_median_s']:.1f}x)"
            )
    return lines


# --------------------------------------------------------------------------- tshark variants


def run_variants(args, results: dict):
    store, mixed = mc.capture_path("store_200mb"), mc.capture_path("mixed_200mb")
    dicom_only = mc.capture_path("mixed_200mb_dicom_only")
    tmp = Path(tempfile.mkdtemp(prefix="variants-", dir=mc.bench_dir()))
    b_fields = [f if f != "tcp.seq" else "tcp.seq_raw" for f in REF_FIELDS]
    b_extra = NO_TCP_ANALYSIS

    def first_pass(path: Path) -> list[str]:
        return [
            TSHARK,
            "-n",
            "-r",
            str(path),
            *NO_TCP_ANALYSIS,
            "--disable-protocol",
            "dicom",
            "-Y",
            ASSOC_RQ_FILTER,
            "-T",
            "fields",
            "-e",
            "tcp.stream",
        ]

    def fields_cmd(path: Path) -> list[str]:
        cmd = [
            TSHARK,
            "-n",
            "-r",
            str(path),
            *NO_TCP_ANALYSIS,
            "--disable-protocol",
            "dicom",
            "-T",
            "fields",
        ]
        for f in b_fields:
            cmd += ["-e", f]
        return cmd

    # key, capture, label, command (None: built from (d)'s result), file for stdout
    variants: list[tuple[str, str, str, list[str] | None, Path | None]] = [
        ("a", "store_200mb", "reference extraction", ek_cmd(store), None),
        (
            "b",
            "store_200mb",
            "(a) + TCP analysis/desegmentation off, tcp.seq_raw",
            ek_cmd(store, b_fields, b_extra),
            None,
        ),
        (
            "c",
            "store_200mb",
            "first pass: streams opening with A-ASSOCIATE-RQ",
            first_pass(store),
            tmp / "c.txt",
        ),
        ("f", "store_200mb", "extra: (b) with -T fields instead of -T ek", fields_cmd(store), None),
        ("d", "mixed_200mb", "(c) on the mixed capture", first_pass(mixed), tmp / "d.txt"),
        ("a-mixed", "mixed_200mb", "(a) on the mixed capture", ek_cmd(mixed), None),
        (
            "b-mixed",
            "mixed_200mb",
            "(b) on the mixed capture, all streams",
            ek_cmd(mixed, b_fields, b_extra),
            None,
        ),
        ("e", "mixed_200mb", "(b) + -Y 'tcp.stream in {DICOM streams from (d)}'", None, None),
        (
            "g",
            "mixed_200mb",
            "extra: (e)'s filter, writing pcap (-F pcap -w -) instead of ek",
            None,
            None,
        ),
        (
            "b-dicom-only",
            "mixed_200mb_dicom_only",
            "(b) on the DICOM-only part",
            ek_cmd(dicom_only, b_fields, b_extra),
            None,
        ),
    ]
    print("\n=== tshark variants (each side by side in this run)", flush=True)
    for p in (store, mixed, dicom_only):
        warm_cache(p)
    recs = []
    for key, cap, label, cmd, out in variants:
        if key in ("e", "g"):
            d_out = tmp / "d.txt"
            streams = sorted({int(x) for x in d_out.read_text().split()}) if d_out.exists() else []
            if not streams:
                print(f"    ({key}) skipped: (d) found no DICOM streams", flush=True)
                continue
            filt = "tcp.stream in {" + ",".join(map(str, streams)) + "}"  # tshark 4.0: commas
            if key == "e":
                cmd = ek_cmd(mixed, b_fields, [*b_extra, "-Y", filt])
            else:
                cmd = [
                    TSHARK,
                    "-n",
                    "-r",
                    str(mixed),
                    *b_extra,
                    "--disable-protocol",
                    "dicom",
                    "-Y",
                    filt,
                    "-F",
                    "pcap",
                    "-w",
                    "-",
                ]
        assert cmd is not None
        for rep in range(args.repeat):
            display = shlex.join(cmd) + (f" > {out.name}" if out else " > /dev/null")
            m = measure(cmd, stdout=out)
            rec = {
                "variant": key,
                "capture": cap,
                "label": label,
                "command": display,
                "repeat": rep,
                **m,
            }
            extra = ""
            if out:
                lines = out.read_text().split()
                rec["matching_packets"] = len(lines)
                rec["streams"] = sorted({int(x) for x in lines})
                extra = f"  {rec['matching_packets']} packets, streams {rec['streams']}"
            recs.append(rec)
            print(f"    ({key}) {label}\n      $ {display}", flush=True)
            print(
                f"      wall {m['wall_s']:.2f} s  cpu {m['cpu_s']:.2f} s  "
                f"tshark peak {mb(m['self_peak_kb'])} MB{extra}"
                + (f"  EXIT {m['rc']}" if m["rc"] else ""),
                flush=True,
            )
            if m["rc"]:
                print("      stderr: " + m["stderr_tail"].replace("\n", "\n      "), flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    results["variants"] = recs
    print(f"\n{'variant':<14} {'capture':<24} {'wall s':>7} {'cpu s':>7} {'tshark MB':>9}  label")
    for r in recs:
        print(
            f"{r['variant']:<14} {r['capture']:<24} {r['wall_s']:>7.2f} {r['cpu_s']:>7.2f} "
            f"{mb(r['self_peak_kb']):>9}  {r['label']}"
        )


# --------------------------------------------------------------------------- main


def environment() -> dict:
    tv = subprocess.run([TSHARK, "--version"], capture_output=True, text=True).stdout.splitlines()
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "tshark": tv[0] if tv else None,
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "poll_s": POLL_S,
        "proc_children_file": _HAVE_CHILDREN_FILE,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--captures",
        nargs="+",
        metavar="NAME",
        default=None,
        help=f"captures to measure (default: {' '.join(DEFAULT_CAPTURES)})",
    )
    ap.add_argument(
        "--repeat", type=int, default=1, help="runs of each row (default 1); median reported"
    )
    ap.add_argument(
        "--skip-make", action="store_true", help="do not (re)make captures; use what exists"
    )
    ap.add_argument("--json", metavar="PATH", help="save every measurement as JSON")
    ap.add_argument(
        "--with-wireshark-1gb",
        action="store_true",
        help="also run tshark --export-objects dicom on store_1gb (slow, ~5 GB RAM)",
    )
    ap.add_argument(
        "--variants", action="store_true", help="also time the tshark extraction variants"
    )
    ap.add_argument("--no-main", action="store_true", help="skip the main table (with --variants)")
    ap.add_argument(
        "--keep-output", action="store_true", help=f"keep outputs under {mc.bench_dir()}/run-out"
    )
    args = ap.parse_args(argv)
    captures = args.captures or DEFAULT_CAPTURES
    unknown = [c for c in captures if c not in mc.CAPTURES]
    if unknown:
        ap.error(f"unknown capture(s) {unknown}; known: {', '.join(mc.CAPTURES)}")
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    needed = list(captures)
    if args.variants:
        needed += [
            c for c in ("store_200mb", "mixed_200mb", "mixed_200mb_dicom_only") if c not in needed
        ]
    if args.skip_make:
        manifests = {}
        for c in needed:
            if not mc.capture_path(c).exists():
                print(f"{mc.capture_path(c)} missing (run without --skip-make)", file=sys.stderr)
                return 1
            manifests[c] = mc.read_manifest(c) or {}
    else:
        if os.geteuid() != 0 and not all(mc.is_valid(c)[0] for c in needed):
            print(
                "making captures needs root; run benchmarks/make_captures.py as root first",
                file=sys.stderr,
            )
            return 1
        manifests = mc.ensure([c for c in mc.DEFAULT_ORDER if c in needed])

    results = {"environment": environment(), "captures": manifests, "runs": []}
    print(
        f"\ntshark: {results['environment']['tshark']}; python: {sys.executable}; "
        f"{os.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    if not args.no_main:
        run_main(args, captures, manifests, results)
        results["summary"] = summarise(results["runs"])
        print_table(results["summary"], args.repeat)
        results["targets"] = check_targets(results["summary"])
        if results["targets"]:
            print("\nTargets:")
            for line in results["targets"]:
                print("  " + line)
    if args.variants:
        run_variants(args, results)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"\nresults saved to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
