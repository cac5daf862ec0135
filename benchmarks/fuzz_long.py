#!/usr/bin/env python3
"""The long fuzz run (issue 10): the properties of tests/test_fuzz.py with fresh random data,
far longer than the bounded run of the test suite, and mutated fixture captures through
the whole command line (both engines, --cross-check, --port, random per case).

    python benchmarks/fuzz_long.py                       # 10 minutes in-process, 200 CLI cases
    python benchmarks/fuzz_long.py --minutes 2 --cli 50 --json fuzz.json

Prints the figures to report: cases, time, peak memory of this process after the
in-process part and after all, failures (each with hypothesis's minimal example, or the
mutation, the options and the output). Exit 1 if anything failed.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import random
import resource
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, given, settings  # noqa: E402

from tests import fuzzgen as F  # noqa: E402
from tests.test_fuzz import PROPERTIES, run_mutated  # noqa: E402

CAPTURES = ROOT / "fixtures" / "captures"
#: fixtures the CLI cases draw from, with the ports their traffic uses (for --port)
CLI_FIXTURES = {
    "echo": 11112, "store_statuses": 11122, "find_move": 11124, "mid_association": 11126,
    "store_11112": 11112, "abort": 11116, "n_services": 11130, "hostile_values": 11300,
    "c_get_cancel": 11131, "qr_refine": 11168, "rq_segments": 11310,
    "reject_called_ae": 11114, "hostile_uid": 11132, "qr_move_ok": 11160,
    "contexts_rejected": 11115, "concurrent": 11123,
}


def _mb(kb: int) -> float:
    return kb / 1024


def in_process(minutes: float, round_cases: int) -> dict[str, Any]:
    """Every property in rounds of ``round_cases`` random cases until the time is up."""
    counts = {p.__name__: 0 for p, _, _ in PROPERTIES}
    failures: list[dict[str, str]] = []
    slowest = 0.0
    started = time.monotonic()
    rounds = 0
    while time.monotonic() - started < minutes * 60:
        rounds += 1
        for prop, strategies, _ in PROPERTIES:
            if sum(f["property"] == prop.__name__ for f in failures) >= 3:
                continue  # failing every round: reported already

            def counted(*args: Any, prop: Any = prop) -> None:
                nonlocal slowest
                counts[prop.__name__] += 1
                t0 = time.monotonic()
                prop(*args)
                slowest = max(slowest, time.monotonic() - t0)

            counted.__signature__ = inspect.signature(prop)  # type: ignore[attr-defined]

            test = settings(max_examples=round_cases, deadline=None, database=None,
                            derandomize=False, suppress_health_check=list(HealthCheck),
                            print_blob=True)(given(*strategies)(counted))
            try:
                test()
            except Exception as exc:  # a failure: keep hypothesis's minimal example
                failures.append({"property": prop.__name__, "error": f"{type(exc).__name__}: "
                                 f"{exc}"[:3000], "traceback": traceback.format_exc()[-3000:]})
    return {"cases": sum(counts.values()), "per_property": counts, "rounds": rounds,
            "seconds": round(time.monotonic() - started, 1),
            "slowest_case_s": round(slowest, 2), "failures": failures}


def cli_cases(n: int, seed: int) -> dict[str, Any]:
    """``n`` mutated fixture captures through the command line, options drawn per case."""
    rng = random.Random(seed)
    failures: list[dict[str, Any]] = []
    codes: dict[int, int] = {}
    slowest = 0.0
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fuzz-long-") as tmp_name:
        tmp = Path(tmp_name)
        pcaps = dict(F.fixture_pcaps(CAPTURES, tmp, sorted(CLI_FIXTURES)))
        for i in range(n):
            name = rng.choice(sorted(pcaps))
            options = rng.choice([[], ["--engine", "raw"], ["--engine", "ek"]])
            if rng.random() < 0.4:
                options += ["--cross-check"]
            if rng.random() < 0.3:
                options += ["--port", str(CLI_FIXTURES[name])]
            mutated, how = F.mutate_capture(pcaps[name], rng)
            work = tmp / f"case{i}"
            work.mkdir()
            capture = work / "in.pcap"
            capture.write_bytes(mutated)
            t0 = time.monotonic()
            try:
                code, output = run_mutated(capture, work / "out", options)
            except Exception as exc:  # the runner itself must not fail either
                code, output = -1, f"{type(exc).__name__}: {exc}"
            took = time.monotonic() - t0
            slowest = max(slowest, took)
            codes[code] = codes.get(code, 0) + 1
            outside = sorted({p.name for p in work.iterdir()} - {"in.pcap", "out"})
            bad = (code not in (0, 1) or "internal error" in output or "Traceback" in output
                   or (code == 1 and len(output.strip().splitlines()) != 1) or outside
                   or took > 120)
            if bad:
                kept = Path(tempfile.gettempdir()) / f"fuzz-long-failure-{seed}-{i}.pcap"
                kept.write_bytes(mutated)
                failures.append({"fixture": name, "mutation": how, "options": options,
                                 "exit": code, "output": output[-2000:], "outside": outside,
                                 "seconds": round(took, 1), "capture": str(kept)})
            for p in sorted(work.rglob("*"), reverse=True):  # keep the disk use small
                p.unlink() if p.is_file() else p.rmdir()
    return {"cases": n, "seconds": round(time.monotonic() - started, 1), "exit_codes": codes,
            "slowest_case_s": round(slowest, 1), "failures": failures}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="in-process fuzz time")
    ap.add_argument("--round", type=int, default=2000, help="cases per property per round")
    ap.add_argument("--cli", type=int, default=200, help="mutated captures through the CLI")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--json", type=Path, help="also write the figures here")
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    figures: dict[str, Any] = {"seed": a.seed}
    figures["in_process"] = in_process(a.minutes, a.round)
    figures["peak_rss_mb_in_process"] = round(_mb(resource.getrusage(
        resource.RUSAGE_SELF).ru_maxrss), 1)
    figures["cli"] = cli_cases(a.cli, a.seed)
    # (children's ru_maxrss is not reported: a fork of this process counts its pages)
    figures["peak_rss_mb"] = round(_mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss), 1)
    text = json.dumps(figures, indent=1)
    print(text)
    if a.json:
        a.json.write_text(text + "\n")
    return 1 if figures["in_process"]["failures"] or figures["cli"]["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
