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


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator[Cdp]:
    """A headless Chromium with its own profile, closed network use, and a CDP connection
    (also used by docs/screenshots.py)."""
    profile.mkdir(parents=True, exist_ok=True)
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


@pytest.fixture()
def browser(tmp_path: Path) -> Iterator[Cdp]:
    with chromium(tmp_path / "profile") as cdp:
        yield cdp


class Page:
    """One page opened in a new tab at a given window width, with its events."""

    def __init__(self, browser: Cdp, url: str, width: int = 1280, height: int = 900) -> None:
        self.browser = browser
        target = browser.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = browser.send("Target.attachToTarget", targetId=target,
                                    flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", self.session)
        browser.send("Emulation.setDeviceMetricsOverride", self.session, width=width,
                     height=height, deviceScaleFactor=1, mobile=False)
        browser.send("Page.navigate", self.session, url=url)
        browser.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        reply = self.browser.send("Runtime.evaluate", self.session, expression=expression,
                                  returnByValue=True)
        assert "exceptionDetails" not in reply, reply
        return reply["result"].get("value")

    def errors(self) -> list[dict[str, Any]]:
        return [e for e in self.browser.events if e.get("method") == "Runtime.exceptionThrown"
                or (e.get("method") == "Runtime.consoleAPICalled"
                    and e["params"]["type"] in ("error", "assert", "warning"))
                or (e.get("method") == "Log.entryAdded"
                    and e["params"]["entry"]["level"] in ("error", "warning"))]

    def fetched(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.browser.events
                if e.get("method") == "Network.requestWillBeSent"]


def _truth(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CAPTURES / name).with_suffix(".truth.json").read_text())
    return data


def _open(browser: Cdp, report: tshark_dicom.Report, path: Path) -> Page:
    path.write_text(report.to_html(), encoding="utf-8")
    return Page(browser, path.as_uri())


def _check_page(page: Page, url: str) -> dict[str, Any]:
    """What every report must satisfy in the browser: no console error or warning, nothing
    fetched, the sections there, every in-page link lands, nothing wider than the window.
    Returns the page's visible text and a few facts for the caller."""
    facts: dict[str, Any] = page.evaluate("""(() => {
        const ids = ['summary', 'ae-pairs', 'services', 'slowest', 'findings', 'timeline',
                     'associations'];
        const links = [...document.querySelectorAll('a[href^="#"]')].map(
            a => a.getAttribute('href').slice(1));
        const wide = [...document.querySelectorAll('table, svg, section, p, h3')]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
            .map(e => e.tagName + '#' + (e.id || e.className.baseVal || e.className));
        return {
          missing: ids.filter(id => !document.getElementById(id)),
          broken: links.filter(id => !document.getElementById(id)),
          scrollWidth: document.documentElement.scrollWidth,
          innerWidth: window.innerWidth,
          wide: wide,
          text: document.body.innerText,
          filters: document.querySelectorAll('input.filter').length,
          tables: document.querySelectorAll('table.data').length,
        };
    })()""")
    assert page.errors() == []
    assert page.fetched() == [url]  # self-contained: nothing else is loaded
    assert facts["missing"] == [] and facts["broken"] == []
    assert facts["innerWidth"] == 1280
    assert facts["scrollWidth"] <= facts["innerWidth"], facts["wide"]
    assert facts["wide"] == []
    assert facts["filters"] == facts["tables"] > 0  # the script gave each table its filter
    return facts


def test_store_statuses_in_chromium(browser: Cdp, tmp_path: Path) -> None:
    truth = _truth("store_statuses.pcapng")
    report = tshark_dicom.analyze(FIXTURE)
    expected_ops = sum(1 for msg in truth["associations"][0]["messages"]
                       if msg["command"].endswith("-RQ"))
    assert len(report.operations) == expected_ops
    page_file = tmp_path / "report.html"
    page = _open(browser, report, page_file)
    facts = _check_page(page, page_file.as_uri())
    statuses = {f"0x{m['status']:04X}" for m in truth["associations"][0]["messages"]
                if m.get("status") is not None}
    assert statuses and all(s in facts["text"] for s in statuses)
    assert not any(str(m["status"]) in facts["text"].split() for m in
                   truth["associations"][0]["messages"] if m.get("status"))  # no decimal

    counts = page.evaluate("""(() => {
        const ladder = document.querySelector('svg.ladder');
        const ops = [...ladder.querySelectorAll('g[data-op]')];
        return {
          ops: ops.length,
          drawn: ops.filter(g => g.getBBox().height > 0 && g.getBBox().width > 0).length,
          requests: ladder.querySelectorAll('[data-arrow="request"]').length,
          responses: ladder.querySelectorAll('[data-arrow="response"]').length,
          bars: document.querySelectorAll('svg.timeline g[data-assoc]').length,
          tableRows: document.querySelectorAll('#ops-0-0 tbody tr').length,
          width: ladder.getBoundingClientRect().width,
          firstFinding: document.querySelector('#findings-table tbody tr').className,
        };
    })()""")
    assert counts == {"ops": expected_ops, "drawn": expected_ops, "requests": expected_ops,
                      "responses": expected_ops, "bars": 1, "tableRows": expected_ops,
                      "width": counts["width"], "firstFinding": "error"}
    assert counts["width"] > 500  # the ladder is drawn at a readable size

    # the inline script: a click on a header sorts, the box above a table filters
    order = page.evaluate("""(() => {
        const t = document.getElementById('ops-0-0');
        const th = [...t.tHead.rows[0].cells].find(c => c.textContent === 'total');
        const col = [...t.tHead.rows[0].cells].indexOf(th);
        const read = () => [...t.tBodies[0].rows].map(r => parseFloat(
            r.cells[col].getAttribute('data-v')));
        th.click(); const up = read(); th.click(); const down = read();
        const box = t.parentNode.previousElementSibling;
        box.value = 'C-STORE-RSP-that-is-not-there';
        box.dispatchEvent(new Event('input'));
        const shown = [...t.tBodies[0].rows].filter(r => !r.hidden).length;
        return {up, down, shown, isBox: box.tagName};
    })()""")
    assert order["up"] == sorted(order["up"]) and order["down"] == sorted(order["down"],
                                                                          reverse=True)
    assert order["shown"] == 0 and order["isBox"] == "INPUT"
    assert page.errors() == []

    # a click on an operation's frames takes its Wireshark filter (and marks it copied)
    copied = page.evaluate("""(() => {
        const t = document.getElementById('ops-0-0');
        const code = t.querySelector('code.wsf');
        code.click();
        return {filter: code.getAttribute('data-filter'), shown: code.textContent,
                copied: code.classList.contains('copied'),
                stream: [...document.querySelectorAll('p.facts code.wsf')].map(
                    c => c.textContent)};
    })()""")
    spans = {f"{int(a)}\u2013{int(b)}": (int(a), int(b)) for a, b in zip(
        report.operations["first_frame"], report.operations["last_frame"], strict=True)}
    first, last = spans[copied["shown"]]  # the rows are sorted by now: one of them
    assert copied == {"filter": f"tcp.stream eq 0 && frame.number >= {first} && "
                                f"frame.number <= {last}", "shown": copied["shown"],
                      "copied": True, "stream": ["tcp.stream eq 0"]}
    assert page.errors() == []


def test_move_refused_in_chromium(browser: Cdp, tmp_path: Path) -> None:
    truth = _truth("qr_move_refused.pcapng")
    want = truth["qr"]["operations"][0]
    page_file = tmp_path / "report.html"
    page = _open(browser, tshark_dicom.analyze(CAPTURES / "qr_move_refused.pcapng"), page_file)
    text = _check_page(page, page_file.as_uri())["text"]
    assert f"0x{want['final_status']:04X}" in text
    assert f"to {want['move_destination']}" in text
    assert f"0 / {want['failed']} / 0 / -" in text  # completed / failed / warning / left
    assert "callback connection attempt" in text and "refused (1 SYN)" in text
    for code in truth["qr"]["expected_findings"]:
        assert code in text


def test_rejected_contexts_in_chromium(browser: Cdp, tmp_path: Path) -> None:
    truth = _truth("contexts_rejected.pcapng")
    contexts = truth["associations"][0]["contexts"]
    page_file = tmp_path / "report.html"
    page = _open(browser, tshark_dicom.analyze(CAPTURES / "contexts_rejected.pcapng"),
                 page_file)
    _check_page(page, page_file.as_uri())
    shown = page.evaluate("""[...document.querySelectorAll('section.association')[0]
        .querySelector('table.data').tBodies[0].rows].map(r => [r.className,
        parseInt(r.cells[0].textContent)])""")
    rejected = [c["context_id"] for c in contexts if c["result"] != 0]
    assert len(shown) == len(contexts)
    assert [cid for cls, cid in shown[:len(rejected)]] == rejected  # rejected first
    assert {cls for cls, _ in shown[:len(rejected)]} == {"rejected"}


def test_many_captures_in_chromium(browser: Cdp, tmp_path: Path) -> None:
    names = ["store_statuses.pcapng", "qr_move_refused.pcapng", "contexts_rejected.pcapng",
             "qr_move_ok.pcapng", "reject_called_ae.pcapng", "timing_assoc_per_object.pcapng"]
    out = tmp_path / "out"
    from typer.testing import CliRunner

    from tshark_dicom.cli import app  # the command writes report.html from the stored run

    result = CliRunner().invoke(app, ["analyze", *[str(CAPTURES / n) for n in names],
                                      "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    url = (out / "report.html").as_uri()
    page = Page(browser, url)
    facts = _check_page(page, url)
    rows = page.evaluate("document.querySelector('#captures-table').tBodies[0].rows.length")
    assert rows == len(names)
    sections = page.evaluate("document.querySelectorAll('section.association').length")
    assert sections == sum(len(_truth(n)["associations"]) for n in names)
    for n in names:
        for a in _truth(n)["associations"]:
            assert a["calling_ae"] in facts["text"] and a["called_ae"] in facts["text"]
