#!/usr/bin/env python3
"""Remake the README's pictures from the bundled fixtures, rendered by Debian's headless
Chromium exactly as report.html draws them: the report's summary and one association's
section, ladders and a timeline.

    .venv/bin/python docs/screenshots.py
"""

from __future__ import annotations

import base64
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import tshark_dicom  # noqa: E402
from tests.test_report_browser import Cdp, Page, chromium  # noqa: E402
from tshark_dicom import charts, pictures  # noqa: E402

CAPTURES = ROOT / "fixtures" / "captures"


def shoot(cdp: Cdp, html_text: str, out: Path, selector: str | None = None,
          height: int | None = None) -> None:
    """A 1280 px wide screenshot of the page, or of the element ``selector`` (its first
    ``height`` px)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "page.html"
        path.write_text(html_text, encoding="utf-8")
        page = Page(cdp, path.as_uri(), width=1280, height=900)
        box = page.evaluate(
            f"(() => {{const e = document.querySelector({selector!r}); e.scrollIntoView();"
            "const r = e.getBoundingClientRect();"
            "return {x: r.x + scrollX, y: r.y + scrollY, w: r.width, h: r.height};})()"
            if selector else "({x: 0, y: 0, w: 1280, h: document.body.scrollHeight})")
        clip = {"x": 0, "y": max(box["y"] - 8, 0), "width": 1280,
                "height": min(box["h"] + 16, height or box["h"] + 16), "scale": 1}
        shot = cdp.send("Page.captureScreenshot", page.session, format="png", clip=clip,
                        captureBeyondViewport=True)
    out.write_bytes(base64.b64decode(shot["data"]))
    print("wrote", out.relative_to(ROOT))


def svg_page(svg_text: str) -> str:
    return ("<!doctype html><meta charset='utf-8'><body style='margin:16px;"
            "font-family:system-ui,sans-serif;background:#fff'>" + svg_text + "</body>")


def ladder(cdp: Cdp, capture: str, out: str) -> None:
    report = tshark_dicom.analyze(CAPTURES / capture)
    row = report.associations.iloc[0].to_dict()
    shoot(cdp, svg_page(pictures.ladder_svg(row, report.operations, report.findings)),
          HERE / out, "svg")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, chromium(Path(tmp) / "profile") as cdp:
        run = tshark_dicom.analyze([CAPTURES / n for n in (
            "store_statuses.pcapng", "qr_move_refused.pcapng", "contexts_rejected.pcapng",
            "qr_move_ok.pcapng", "reject_called_ae.pcapng")])
        page = run.to_html()
        shoot(cdp, page, HERE / "report.png", "body", height=1500)
        shoot(cdp, page, HERE / "report-findings.png", "#findings", height=700)
        move = tshark_dicom.analyze(CAPTURES / "qr_move_refused.pcapng").to_html()
        shoot(cdp, move, HERE / "report-association.png", "section.association", height=1400)
        ladder(cdp, "timing_slow_scp.pcapng", "ladder.png")
        ladder(cdp, "store_statuses.pcapng", "ladder-statuses.png")
        ladder(cdp, "timing_latency_scp_side.pcapng", "ladder-latency.png")
        report = tshark_dicom.analyze(CAPTURES / "timing_assoc_per_object.pcapng")
        shoot(cdp, svg_page(charts.timeline_svg(report.associations, report.operations)),
              HERE / "timeline.png", "svg")


if __name__ == "__main__":
    main()
