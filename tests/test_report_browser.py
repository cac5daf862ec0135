"""The HTML report in a real browser: Debian's headless Chromium opens the page of a real
fixture capture, driven over the Chrome DevTools protocol (CDP) with a small client below.

It checks what a person would see: the page loads with no console error, no script
exception and no request beyond the file itself, and the ladder of the fixture draws one
group with a request and a response arrow per DIMSE operation.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tshark_dicom

from .conftest import CAPTURES

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--remote-debugging-port=0",
]
FIXTURE = CAPTURES / "store_statuses.pcapng"
TRUTH = CAPTURES / "store_statuses.truth.json"


def chromium_path() -> str:
    path = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if path is None:
        pytest.fail("chromium is not installed: run `make test` (it installs Debian's chromium)")
    return path


class Cdp:
    """Just enough of the Chrome DevTools protocol: commands by id, events kept in order."""

    def __init__(self, url: str) -> None:
        try:
            import websocket  # websocket-client, a dev extra
        except ImportError:
            pytest.fail("websocket-client is not installed: run `make setup`")
        self.ws = websocket.create_connection(url, timeout=30, suppress_origin=True)
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        msg_id = next(self.ids)
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for event in self.events[seen:]:
                if event.get("method") == method:
                    return event
            seen = len(self.events)
            self.ws.settimeout(max(deadline - time.monotonic(), 0.1))
            self.events.append(json.loads(self.ws.recv()))
        raise AssertionError(f"no {method} within {timeout} s")

    def close(self) -> None:
        self.ws.close()


@pytest.fixture()
def browser(tmp_path: Path) -> Iterator[Cdp]:
    """A headless Chromium with its own profile, closed network use, and a CDP connection."""
    profile = tmp_path / "profile"
    profile.mkdir()
    proc = subprocess.Popen([chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                             "about:blank"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
                pytest.fail(f"chromium did not start (exit {proc.poll()}): {err}")
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        cdp = Cdp(f"ws://127.0.0.1:{port}{path}")
        try:
            yield cdp
            with contextlib.suppress(Exception):  # it may close the socket before replying
                cdp.send("Browser.close")
        finally:
            cdp.close()
    finally:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def test_report_in_chromium(browser: Cdp, tmp_path: Path) -> None:
    report = tshark_dicom.analyze(FIXTURE)
    truth = json.loads(TRUTH.read_text())
    expected_ops = sum(1 for msg in truth["associations"][0]["messages"]
                       if msg["command"].endswith("-RQ"))
    assert len(report.operations) == expected_ops
    page_file = tmp_path / "report.html"
    page_file.write_text(report.to_html(), encoding="utf-8")

    target = browser.send("Target.createTarget", url="about:blank")["targetId"]
    session = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        browser.send(f"{domain}.enable", session)
    browser.send("Page.navigate", session, url=page_file.as_uri())
    browser.wait_for("Page.loadEventFired")

    def evaluate(expression: str) -> Any:
        reply = browser.send("Runtime.evaluate", session, expression=expression,
                             returnByValue=True)
        assert "exceptionDetails" not in reply, reply
        return reply["result"].get("value")

    counts = evaluate("""(() => {
        const ladder = document.querySelector('svg.ladder');
        const ops = [...ladder.querySelectorAll('g[data-op]')];
        return {
          ops: ops.length,
          drawn: ops.filter(g => g.getBBox().height > 0 && g.getBBox().width > 0).length,
          requests: ladder.querySelectorAll('[data-arrow="request"]').length,
          responses: ladder.querySelectorAll('[data-arrow="response"]').length,
          bars: document.querySelectorAll('svg.timeline g[data-assoc]').length,
          tableRows: document.querySelectorAll('#operations-table tbody tr').length,
          width: ladder.getBoundingClientRect().width,
        };
    })()""")
    assert counts == {"ops": expected_ops, "drawn": expected_ops, "requests": expected_ops,
                      "responses": expected_ops, "bars": 1, "tableRows": expected_ops,
                      "width": counts["width"]}
    assert counts["width"] > 500  # the ladder is drawn at a readable size

    errors = [e for e in browser.events if e.get("method") == "Runtime.exceptionThrown"
              or (e.get("method") == "Runtime.consoleAPICalled"
                  and e["params"]["type"] in ("error", "assert"))
              or (e.get("method") == "Log.entryAdded"
                  and e["params"]["entry"]["level"] == "error")]
    assert errors == []
    fetched = [e["params"]["request"]["url"] for e in browser.events
               if e.get("method") == "Network.requestWillBeSent"]
    assert fetched == [page_file.as_uri()]  # self-contained: nothing else is loaded
