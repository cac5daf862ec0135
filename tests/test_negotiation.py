"""What each device accepted (negotiation.py, `Report.negotiation`, report.html's
"Negotiation", summary.txt's negotiation line), checked against what the peers that made
each fixture reported of every presentation context (its truth file)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import UID

import tshark_dicom
from tshark_dicom import negotiation as negotiation_mod
from tshark_dicom.devices import Devices
from tshark_dicom.negotiation import COLUMNS, Negotiation

from .conftest import CAPTURES, capture_for, tls_keylogs, truth_files

#: PS3.8 Table 9-18: a presentation context's result, when not acceptance.
REASONS = {1: "user-rejection", 2: "no-reason", 3: "abstract-syntax-not-supported",
           4: "transfer-syntaxes-not-supported"}


def _expected(truth: dict[str, Any]) -> dict[tuple[tuple[str, str], str], dict[str, Any]]:
    """Each (device, abstract syntax)'s tally, from the truth file's contexts alone."""
    out: dict[tuple[tuple[str, str], str], dict[str, Any]] = {}
    spared = _lossless_callbacks(truth)
    for index, a in enumerate(truth["associations"]):
        device = (a.get("called_ae") or "", a.get("acceptor_ip") or "")
        if device == ("", ""):
            continue
        caller = a.get("calling_ae") if a.get("calling_ae") or a.get("requestor_ip") else None
        for c in a.get("contexts") or ():
            e = out.setdefault((device, c["abstract_syntax"] or ""), {
                "proposed": 0, "accepted": 0, "ts": set(), "rejected": 0, "reasons": set(),
                "refused": set(), "unanswered": 0, "callers": set(), "spared": 0})
            e["proposed"] += 1
            if caller:
                e["callers"].add(caller)
            result = c.get("result")
            if result is None:
                e["unanswered"] += 1
            elif result == 0:
                e["accepted"] += 1
                e["ts"].add(UID(c["transfer_syntax"]).name)
            else:
                e["rejected"] += 1
                e["spared"] += index in spared
                e["reasons"].add(REASONS[result])
                if result == 4:
                    e["refused"] |= {UID(t).name for t in c["proposed_transfer_syntaxes"]}
    return out


def _lossless_callbacks(truth: dict[str, Any]) -> set[int]:
    """The callback associations of the C-MOVEs the peers saw complete every sub-operation
    (final status Success, or Cancel after those it did) with none failed (the truth's
    ``qr`` operations)."""
    return {i for op in (truth.get("qr") or {}).get("operations") or ()
            if op["command"] == "C-MOVE" and op.get("final_status") in (0x0000, 0xFE00)
            and op.get("completed") and not op.get("failed")
            for i in op.get("callback_assoc_indexes") or ()}


def check_negotiation(truth: dict[str, Any], report: tshark_dicom.Report) -> None:
    """One row per device asked for associations and abstract syntax proposed to it, as the
    peers recorded their contexts: how many proposed, accepted (with which transfer
    syntaxes), rejected (why, and the transfer syntaxes of those rejected for them),
    unanswered, and by whom; those rejected first (the live-peer suite runs this on fresh
    captures too)."""
    frame = report.negotiation()
    assert list(frame.columns) == COLUMNS
    expected = _expected(truth)
    got = {((r["ae_title"], r["ip"]), r["abstract_syntax"] or ""): r
           for r in frame.to_dict("records")}
    assert len(got) == len(frame)  # one row each
    assert set(got) == set(expected)
    for key, want in expected.items():
        row = got[key]
        counts = {k: row[k] for k in ("proposed", "accepted", "rejected", "unanswered")}
        assert counts == {k: want[k] for k in counts}, key
        assert row["rejected_not_needed"] == want["spared"], key
        assert set(row["accepted_transfer_syntaxes"]) == want["ts"], key
        assert set(row["rejections"]) == want["reasons"], key
        assert set(row["refused_transfer_syntaxes"]) == want["refused"], key
        assert set(row["proposed_by"]) == want["callers"], key
    # on each device, those it never accepted first, then those it refused in some
    # contexts, then the rest
    for _, rows in frame.groupby(["ae_title", "ip"], sort=False):
        rank = [2 if r.rejected <= r.rejected_not_needed else 1 if r.accepted else 0
                for r in rows.itertuples()]
        assert rank == sorted(rank)


@pytest.mark.parametrize("truth_path", truth_files(), ids=lambda p: p.name)
def test_what_each_device_accepted_is_what_the_peers_negotiated(truth_path: Path,
                                                                 analysed: Any) -> None:
    """Every fixture (`check_negotiation`)."""
    truth = json.loads(truth_path.read_text())
    hint = truth.get("port_hint")
    report, _ = analysed(capture_for(truth_path), (hint,) if hint else (), tls_keylogs(truth))
    check_negotiation(truth, report)


def test_a_context_refused_for_its_transfer_syntax_names_them(analysed: Any) -> None:
    """contexts_rejected: CX-SCP took CT Image Storage in Implicit VR Little Endian and
    refused it in Explicit VR Big Endian alone; it refused MR Image Storage whatever the
    transfer syntax. Both rows come before what it only accepted, and link to the
    association that shows the rejection."""
    report, _ = analysed(CAPTURES / "contexts_rejected.pcapng")
    frame = report.negotiation().set_index("abstract_syntax_name")
    ct, mr = frame.loc["CT Image Storage"], frame.loc["MR Image Storage"]
    assert (ct["proposed"], ct["accepted"], ct["rejected"]) == (2, 1, 1)
    assert ct["accepted_transfer_syntaxes"] == ["Implicit VR Little Endian"]
    assert ct["rejections"] == ["transfer-syntaxes-not-supported"]
    assert ct["refused_transfer_syntaxes"] == ["Explicit VR Big Endian"]
    assert mr["rejections"] == ["abstract-syntax-not-supported"]
    assert mr["refused_transfer_syntaxes"] == []  # refused for its SOP class, not for these
    assert frame.index.tolist()[-1] == "Verification SOP Class"
    assert (int(ct["assoc_id"]), int(mr["assoc_id"])) == (0, 0)


def test_an_association_refused_whole_leaves_its_contexts_unanswered(analysed: Any) -> None:
    """reject_called_ae: WRONG-AE rejected the association, so the A-ASSOCIATE-AC that
    answers each context never came: unanswered, neither accepted nor rejected."""
    report, _ = analysed(CAPTURES / "reject_called_ae.pcapng")
    row = report.negotiation().iloc[0]
    assert (row["ae_title"], row["abstract_syntax_name"]) == ("WRONG-AE",
                                                              "Verification SOP Class")
    assert (row["proposed"], row["accepted"], row["rejected"], row["unanswered"]) == \
        (1, 0, 0, 1)
    assert row["proposed_by"] == ["ECHOSCU"]


def test_the_page_lists_each_sop_class_of_each_device_rejected_first(tmp_path: Path
                                                                     ) -> None:
    """report.html: a "Negotiation" section, in the nav, a row per device and SOP class,
    the rejected ones marked and first, each linked to its association's section; the
    transfer syntaxes a device refused named; AE titles from the traffic escaped."""
    run = tshark_dicom.analyze([CAPTURES / "contexts_rejected.pcapng",
                                CAPTURES / "hostile_values.pcapng"])
    path = tmp_path / "report.html"
    run.write_html(path)
    page = path.read_text()
    assert "<a href='#negotiation'>Negotiation</a>" in page
    section = page[page.index("<h3 id='negotiation'>"):]
    section = section[:section.index("</table>")]
    frame = run.negotiation()
    rows = re.findall(r"<tr[^>]*>", section)[1:]  # a heading row, then one per SOP class
    assert len(rows) == len(frame)
    classes = [re.search(r"class='([^']*)'", r)[1] for r in rows]  # type: ignore[index]
    ranks = [2 if not r.rejected else 1 if r.accepted else 0 for r in frame.itertuples()]
    assert classes == [{0: "rejected", 1: "warning", 2: ""}[n] for n in ranks]
    assert {"rejected", "warning"} <= set(classes) and classes[0] == "rejected"
    assert "refused transfer syntaxes: Explicit VR Big Endian" in section
    assert "<svg" not in section and "&lt;svg/onload=1&gt;" in section
    assert re.search(r"<a href='#assoc-0-\d+'>", section)


def test_the_summary_names_the_devices_that_rejected_some(tmp_path: Path) -> None:
    """summary.txt's negotiation line: how many SOP classes were proposed to how many
    devices, then the devices that never accepted some, with how many each, then those that
    accepted some only in some of their contexts (CX-SCP took CT Image Storage in Implicit
    VR Little Endian, not in Big Endian); past the devices it names, how many more; the
    same from a written folder; "none rejected" where nothing was."""
    report = tshark_dicom.analyze([CAPTURES / "contexts_rejected.pcapng",
                                   CAPTURES / "context_not_accepted.pcapng"])
    frame = report.negotiation()
    devices = len(frame.groupby(["ae_title", "ip"]))
    syntaxes = frame["abstract_syntax"].nunique()  # each SOP class once, however many took it
    assert syntaxes < len(frame)
    never = frame[(frame["rejected"] > 0) & (frame["accepted"] == 0)]
    assert never.groupby("ae_title").size().to_dict() == {"CT-ONLY": 1, "CX-SCP": 1,
                                                          "STORE-SCP": 1}
    line = next(x for x in report.summary().splitlines() if x.startswith("negotiation:"))
    # CT-ONLY and STORE-SCP never accepted one of the two proposed to them, CX-SCP one of 3
    assert line == (f"negotiation: {syntaxes} SOP classes proposed to {devices} devices; "
                    "never accepted: 1 by CT-ONLY, 1 by STORE-SCP, 1 by CX-SCP; accepted, but "
                    "refused in some contexts: 1 by CX-SCP")
    devices_tally = Devices()
    devices_tally.add(report.associations)
    tally = Negotiation(devices_tally)
    tally.contexts(report.presentation_contexts)
    assert tally.summary_line(named=1) == (
        f"negotiation: {syntaxes} SOP classes proposed to {devices} devices; never accepted: "
        "1 by CT-ONLY, 2 by 2 more devices; accepted, but refused in some contexts: 1 by "
        "CX-SCP")
    out = tmp_path / "out"
    report.write(out)
    stored = tshark_dicom.load(out)
    assert line in stored.summary().splitlines()
    assert stored.negotiation().equals(frame)
    clean = tshark_dicom.analyze(CAPTURES / "transfer_syntaxes.pcapng")
    assert "negotiation: 4 SOP classes proposed to 1 device; none rejected" in \
        clean.summary().splitlines()
    assert Negotiation(Devices()).summary_line() is None


def test_past_the_kept_sop_classes_the_rest_are_counted(monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    """Bounded memory: past SYNTAXES_KEPT abstract syntaxes on a device no more are
    tallied; their contexts are counted, and the page says so."""
    report = tshark_dicom.analyze(CAPTURES / "transfer_syntaxes.pcapng")
    everything = report.negotiation()
    assert len(everything) == 4
    monkeypatch.setattr(negotiation_mod, "SYNTAXES_KEPT", 2)
    devices = Devices()
    devices.add(report.associations)
    tally = Negotiation(devices)
    tally.contexts(report.presentation_contexts)
    kept = tally.frame()
    assert len(kept) == 2
    assert tally.more == int(everything["proposed"].sum() - kept["proposed"].sum()) > 0
    from tshark_dicom import htmlnegotiation

    assert f"{tally.more:,} presentation contexts of further SOP classes were not " \
        "tallied" in htmlnegotiation.section(tally, [])


def test_a_callback_destinations_many_sop_classes_fold_into_rows(analysed: Any) -> None:
    """qr_move_ok: the archive proposes every storage SOP class it knows to the C-MOVE's
    destination, which rejects those it does not take. The frame has a row for each; the
    page shows REJECTED_SHOWN of those it rejected and one row for the rest of them, then
    ACCEPTED_SHOWN of the others and one row for the rest, each naming how many. (Tallied
    here without the C-MOVEs: with them those rejections were not needed, next test.)"""
    from tshark_dicom import htmlnegotiation

    rejected_shown, accepted_shown = (htmlnegotiation.REJECTED_SHOWN,
                                      htmlnegotiation.ACCEPTED_SHOWN)
    report, _ = analysed(CAPTURES / "qr_move_ok.pcapng")
    tally = Devices()
    tally.add(report.associations)
    negotiation = Negotiation(tally)
    negotiation.contexts(report.presentation_contexts)
    frame = negotiation.frame()
    by_device = frame.assign(ok=frame["rejected"] == 0).groupby(["ae_title", "ip"],
                                                                 sort=False)["ok"]
    accepted, rejected = by_device.sum(), by_device.size() - by_device.sum()
    assert (accepted > accepted_shown).any() and (rejected > rejected_shown).any()
    section = htmlnegotiation.section(negotiation, [])
    section = section[:section.index("</table>")]
    for n in accepted[accepted > accepted_shown]:
        assert f"{n - accepted_shown:,} more SOP classes, none rejected" in section
    for n in rejected[rejected > rejected_shown]:
        assert f"{n - rejected_shown:,} more SOP classes with contexts rejected: " in section
    rows = re.findall(r"<tr[^>]*>", section)[1:]

    def drawn(n: int, limit: int) -> int:
        return min(n, limit) + (n > limit)

    assert len(rows) == sum(drawn(int(r), rejected_shown) + drawn(int(a), accepted_shown)
                            for r, a in zip(rejected, accepted, strict=True))
    assert sum("rejected" in r or "warning" in r for r in rows) == sum(
        drawn(int(r), rejected_shown) for r in rejected)


@pytest.mark.parametrize("name", ["qr_move_ok", "store_copies_compared"])
def test_rejections_a_lossless_c_move_did_not_need_are_not_marked(name: str, tmp_path: Path,
                                                                   analysed: Any) -> None:
    """The destination of a C-MOVE that ended in success with no sub-operation failed
    rejected the storage classes it does not take, which the archive proposed as it
    proposes every one: counted as not needed, never red or yellow, named apart on the
    summary's line and the page."""
    report, _ = analysed(CAPTURES / f"{name}.pcapng")
    frame = report.negotiation()
    spared = frame[frame["rejected_not_needed"] > 0]
    assert len(spared) and (spared["rejected_not_needed"] == spared["rejected"]).all()
    destination = spared["ae_title"].iloc[0]
    path = tmp_path / "report.html"
    report.write_html(path)
    section = path.read_text()
    section = section[section.index("<h3 id='negotiation'>"):]
    section = section[:section.index("</table>")]
    assert "rejected some on the callbacks of C-MOVEs that lost nothing" in section
    assert "on the callbacks of C-MOVEs that lost nothing: not needed" in section \
        or "only where not needed" in section
    line = next(x for x in report.summary().splitlines() if x.startswith("negotiation:"))
    never = len(spared[spared["accepted"] == 0])
    assert f"rejected only where not needed (a C-MOVE's destination; the C-MOVE lost " \
        f"nothing): {never:,} by {destination}" in line
    assert f"never accepted: {never:,} by {destination}" not in line


def test_a_c_move_that_lost_sub_operations_spares_nothing() -> None:
    """A sub-operation that failed (by the counts, or a C-STORE linked to it), or none
    done: the rejections on its callbacks may be why, and stay marked; the rule of the
    findings' one note for them (qrfindings.unneeded_callback_rejections)."""
    import pandas as pd

    from tshark_dicom.negotiation import Retrievals

    ops = pd.DataFrame({
        "capture": ["a"] * 7,
        "command": ["C-MOVE", "C-MOVE", "C-MOVE", "C-FIND", "C-MOVE", "C-MOVE", "C-MOVE"],
        "status_category": ["Success", "Warning", "Success", "Success", "Cancel", "Success",
                            "Failure"],
        "completed": [2, 1, 1, 0, 1, 0, 0], "failed": [0, 1, 0, 0, 0, 0, 1],
        "suboperations_failed": [0, 1, 1, 0, pd.NA, 0, 0],
        "callback_assoc_ids": [[1, 2], [3], [4], [5], [6], [7], [8]]})
    retrievals = Retrievals()
    retrievals.add(ops)
    # cancelled after the one it did; not: failed by its counts, or by a C-STORE linked to
    # it, none done, a failure, not a C-MOVE
    assert retrievals.lossless == {("a", 1), ("a", 2), ("a", 6)}
    retrievals.add(ops.drop(columns=["callback_assoc_ids"]))  # without the column: nothing
    assert retrievals.lossless == {("a", 1), ("a", 2), ("a", 6)}


def test_the_page_names_refused_transfer_syntaxes_without_pydicom(tmp_path: Path) -> None:
    """The run's process draws the page without importing pydicom (0.1 s): a refused
    transfer syntax is named as the tables name it where a context was accepted with it
    (transfer_syntaxes accepts Explicit VR Big Endian, which CX-SCP refused); pydicom's
    dictionary is asked only for one the tables never name."""
    out = tmp_path / "out"
    tshark_dicom.analyze([CAPTURES / "contexts_rejected.pcapng",
                          CAPTURES / "transfer_syntaxes.pcapng"]).write(out)
    code = ("import sys, tshark_dicom; r = tshark_dicom.load(sys.argv[1]); page = r.to_html('');"
            " print('pydicom' in sys.modules, 'refused transfer syntaxes: Explicit VR Big "
            "Endian' in page)")
    done = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True,
                          text=True, check=True)
    assert done.stdout.split() == ["False", "True"]
    alone = tmp_path / "alone"
    tshark_dicom.analyze(CAPTURES / "contexts_rejected.pcapng").write(alone)
    done = subprocess.run([sys.executable, "-c", code, str(alone)], capture_output=True,
                          text=True, check=True)
    assert done.stdout.split() == ["True", "True"]  # named by pydicom: BE accepted nowhere
