#!/usr/bin/env python3
"""Remake the README's pictures: ladders and a timeline from the bundled fixtures, rendered
by Debian's headless Chromium exactly as report.html draws them.

    .venv/bin/python docs/screenshots.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import tshark_dicom  # noqa: E402
from tshark_dicom import charts, pictures  # noqa: E402

CAPTURES = ROOT / "fixtures" / "captures"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


def shoot(svg_text: str, out: Path, height: int) -> None:
    page = ("<!doctype html><meta charset='utf-8'><body style='margin:16px;"
            "font-family:system-ui,sans-serif;background:#fff'>" + svg_text + "</body>")
    with tempfile.TemporaryDirectory() as tmp:
        html = Path(tmp) / "page.html"
        html.write_text(page, encoding="utf-8")
        subprocess.run([shutil.which("chromium") or "/usr/bin/chromium", *FLAGS,
                        f"--user-data-dir={tmp}/profile", f"--window-size=1280,{height}",
                        f"--screenshot={out}", html.as_uri()],
                       check=True, capture_output=True, timeout=120)
    print("wrote", out.relative_to(ROOT))


def ladder(capture: str, out: str, height: int) -> None:
    report = tshark_dicom.analyze(CAPTURES / capture)
    row = report.associations.iloc[0].to_dict()
    shoot(pictures.ladder_svg(row, report.operations, report.findings), HERE / out, height)


def main() -> None:
    ladder("timing_slow_scp.pcapng", "ladder.png", 840)
    ladder("store_statuses.pcapng", "ladder-statuses.png", 1000)
    ladder("timing_latency_scp_side.pcapng", "ladder-latency.png", 900)
    report = tshark_dicom.analyze(CAPTURES / "timing_assoc_per_object.pcapng")
    shoot(charts.timeline_svg(report.associations, report.operations), HERE / "timeline.png",
          360)


if __name__ == "__main__":
    main()
