"""The devices that took part (devices.py, `Report.devices`, report.html's "Devices"),
checked against what the peers that made each fixture reported (its truth file)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import tshark_dicom
from tshark_dicom import devices as devices_mod
from tshark_dicom.devices import COLUMNS

from .conftest import CAPTURES, capture_for, tls_keylogs, truth_files


def _expected(truth: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Each device's tally, from the truth file's associations alone."""
    out: dict[tuple[str, str], dict[str, Any]] = {}

    def device(ae: Any, ip: Any) -> dict[str, Any] | None:
        ident = (ae or "", ip or "")
        if ident == ("", ""):
            return None
        return out.setdefault(ident, {"calls": 0, "called": 0, "refused_to_it": 0,
                                      "refused_by_it": 0, "aborted": 0, "ports": set(),
                                      "versions": set(), "sent": set(), "answered": set()})

    for a in truth["associations"]:
        req = device(a.get("calling_ae"), a.get("requestor_ip"))
        acc = device(a.get("called_ae"), a.get("acceptor_ip"))
        if req is not None:
            req["calls"] += 1
            req["refused_to_it"] += a.get("result") in ("rejected", "no-response")
            if a.get("impl_version_requestor"):
                req["versions"].add(a["impl_version_requestor"])
        if acc is not None:
            acc["called"] += 1
            acc["refused_by_it"] += a.get("result") == "rejected"
            if a.get("acceptor_port") is not None:
                acc["ports"].add(a["acceptor_port"])
            if a.get("impl_version_acceptor"):
                acc["versions"].add(a["impl_version_acceptor"])
        for d in {id(x): x for x in (req, acc) if x is not None}.values():
            d["aborted"] += a.get("ending") == "aborted"
        for m in a.get("messages") or ():  # each request: the sender's, and the other's
            if m["command"].endswith("-RQ") and m["command"] != "C-CANCEL-RQ":
                by, to = (req, acc) if m["sender"] == "requestor" else (acc, req)
                if by is not None:
                    by["sent"].add(m["command"].removesuffix("-RQ"))
                if to is not None:
                    to["answered"].add(m["command"].removesuffix("-RQ"))
    return out


def check_devices(truth: dict[str, Any], report: tshark_dicom.Report) -> None:
    """One row per AE title and host of the peers' own account, with the associations it
    requested and was asked for, those refused to it and by it, those aborted, the ports it
    listened on and the Implementation Version Names it sent (the live-peer suite runs this
    on fresh captures too)."""
    frame = report.devices()
    assert list(frame.columns) == COLUMNS
    expected = _expected(truth)
    got = {(r["ae_title"], r["ip"]): r for r in frame.to_dict("records")}
    assert set(got) == set(expected)
    counts = ("calls", "called", "refused_to_it", "refused_by_it", "aborted")
    for ident, want in expected.items():
        row = got[ident]
        assert {k: row[k] for k in counts} == {k: want[k] for k in counts}, ident
        assert set(row["listening_ports"]) == want["ports"], ident
        assert set(row["implementation_versions"]) == want["versions"], ident
        for ours, theirs in (("requests_sent", "sent"), ("requests_answered", "answered")):
            assert {x.split(" ")[0] for x in row[ours]} == want[theirs], (ident, ours)


@pytest.mark.parametrize("truth_path", truth_files(), ids=lambda p: p.name)
def test_each_device_is_what_the_peers_did(truth_path: Path, analysed: Any) -> None:
    """Every fixture (`check_devices`)."""
    truth = json.loads(truth_path.read_text())
    hint = truth.get("port_hint")
    report, _ = analysed(capture_for(truth_path), (hint,) if hint else (), tls_keylogs(truth))
    check_devices(truth, report)


def test_the_requests_each_device_sent_and_answered_name_their_sop_class(
        analysed: Any) -> None:
    """qr_move_ok: the C-MOVE's archive answered the move and sent the C-STOREs of its
    callback, which the destination answered; each by command and SOP class name, the most
    frequent first."""
    report, _ = analysed(CAPTURES / "qr_move_ok.pcapng")
    ops = report.operations
    frame = report.devices().set_index("ae_title")
    move = ops[ops["command"] == "C-MOVE"].iloc[0]
    stores = ops[ops["command"] == "C-STORE"]
    assert len(stores) > 0
    archive, mover = move["scp_ae"], move["scu_ae"]
    assert frame.loc[mover, "requests_sent"] == [f"C-MOVE {move['sop_class_name']}"]
    counts = stores["sop_class_name"].value_counts()
    names = sorted(counts.index, key=lambda n: (-counts[n], n))
    assert frame.loc[archive, "requests_sent"] == [f"C-STORE {n}" for n in names]
    assert f"C-MOVE {move['sop_class_name']}" in frame.loc[archive, "requests_answered"]
    destination = stores["scp_ae"].iloc[0]
    assert frame.loc[destination, "requests_answered"] == [f"C-STORE {n}" for n in names]


def test_one_title_on_two_hosts_is_two_devices(analysed: Any) -> None:
    """ae_title_shared: dcmtk's default ANY-SCP on two hosts (each listening on its own
    port) and pynetdicom's STORESCU on two: four rows, each with its own host's software."""
    report, _ = analysed(CAPTURES / "ae_title_shared.pcapng")
    frame = report.devices().set_index(["ae_title", "ip"])
    scp = frame.loc["ANY-SCP"]
    assert sorted(scp.index) == ["127.0.0.4", "127.0.0.5"]
    assert sorted(p for ports in scp["listening_ports"] for p in ports) == [11219, 11220]
    assert all(v[0].startswith("OFFIS_DCMTK") for v in scp["implementation_versions"])
    assert sorted(frame.loc["STORESCU"].index) == ["127.0.0.2", "127.0.0.3"]
    assert all(v[0].startswith("PYNETDICOM")
               for v in frame.loc["STORESCU"]["implementation_versions"])


def test_failed_operations_count_to_both_sides_and_put_them_first(analysed: Any) -> None:
    """store_statuses: the C-STOREs answered with a failure status count to the sender and
    to the receiver, and devices with trouble come first."""
    report, _ = analysed(CAPTURES / "store_statuses.pcapng")
    ops = report.operations
    failed = int((ops["status_category"] == "Failure").sum())
    assert failed > 0
    frame = report.devices()
    assoc = report.associations.iloc[0]
    for ae, ip in ((assoc["calling_ae"], assoc["requestor_ip"]),
                   (assoc["called_ae"], assoc["acceptor_ip"])):
        row = frame[(frame["ae_title"] == ae) & (frame["ip"] == ip)]
        assert int(row["failed_operations"].iloc[0]) == failed
    trouble = frame[["refused_to_it", "refused_by_it", "aborted", "failed_operations"]
                    ].sum(axis=1).tolist()
    assert trouble == sorted(trouble, reverse=True)


def test_the_page_lists_the_devices_escaped_and_linked(tmp_path: Path) -> None:
    """report.html: a "Devices" section, in the nav, a row per device linked to its first
    association's section; AE titles from the traffic escaped (hostile_values sends HTML as
    an AE title)."""
    out = tmp_path / "out"
    run = tshark_dicom.analyze(CAPTURES / "hostile_values.pcapng")
    run.write_html(out.with_suffix(".html"))
    page = out.with_suffix(".html").read_text()
    assert "<a href='#devices'>Devices</a>" in page
    section = page[page.index("<h3 id='devices'>"):]
    section = section[:section.index("</table>")]
    frame = run.devices()
    assert section.count("<tr") - 1 == len(frame)  # a heading row, then one per device
    assert "<svg" not in section and "&lt;svg/onload=1&gt;" in section
    assert re.search(r"<a href='#assoc-0-\d+'>", section)
    versions = {v for vs in frame["implementation_versions"] for v in vs}
    assert versions and all(v in section for v in versions)


def test_past_the_kept_devices_the_rest_are_counted(monkeypatch: pytest.MonkeyPatch
                                                   ) -> None:
    """Bounded memory: past KEPT devices no more are tallied; their associations are
    counted, and the page says so."""
    report = tshark_dicom.analyze(CAPTURES / "ae_title_shared.pcapng")
    everyone = report.devices()
    assert len(everyone) > 2
    monkeypatch.setattr(devices_mod, "KEPT", 2)
    tally = devices_mod.Devices()
    tally.add(report.associations)
    assert len(tally.devices) == 2 and tally.more > 0
    kept = tally.frame()
    pd.testing.assert_frame_equal(
        kept[["ae_title", "ip"]].sort_values(["ae_title", "ip"], ignore_index=True),
        everyone[everyone.set_index(["ae_title", "ip"]).index.isin(
            list(tally.devices))][["ae_title", "ip"]].sort_values(
            ["ae_title", "ip"], ignore_index=True))
    from tshark_dicom import htmldevices

    assert f"{tally.more:,} associations of further devices were not tallied" in \
        htmldevices.section(tally, [])


def test_the_summary_names_the_software_most_common_first(tmp_path: Path) -> None:
    """summary.txt's devices line: how many devices, and each Implementation Version Name
    with how many devices announced it, the most common first, then those that announced
    none; past the names it gives, how many more."""
    report = tshark_dicom.analyze([CAPTURES / "qr_move_ok.pcapng",
                                   CAPTURES / "reject_called_ae.pcapng"])
    frame = report.devices()
    counts: dict[str, int] = {}
    for versions in frame["implementation_versions"]:
        for v in versions:
            counts[v] = counts.get(v, 0) + 1
    silent = int((frame["implementation_versions"].map(len) == 0).sum())
    assert len(counts) >= 2 and silent >= 1  # WRONG-AE rejected: its RJ names no software
    common = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    line = next(x for x in report.summary().splitlines() if x.startswith("devices:"))
    assert line == (f"devices: {len(frame)} (AE titles on hosts); software announced: "
                    + ", ".join(f"{v} by {n}" for v, n in common) + f", none by {silent}")
    tally = devices_mod.Devices()
    tally.add(report.associations)
    assert tally.summary_line(named=1) == (
        f"devices: {len(frame)} (AE titles on hosts); software announced: "
        f"{common[0][0]} by {common[0][1]}, {len(common) - 1} more by "
        f"{sum(n for _, n in common[1:])}, none by {silent}")
    assert devices_mod.Devices().summary_line() is None
    out = tmp_path / "out"
    report.write(out)
    assert line in tshark_dicom.load(out).summary().splitlines()


def test_a_slow_scp_answers_in_the_time_its_peer_was_made_to_take(analysed: Any) -> None:
    """timing_slow_scp: the SCP was made to wait 500 ms before each C-STORE-RSP. Its
    device's median and 95th percentile response time (last request byte to first response
    byte) are the operations' own, to within half a bucket (`BUCKET_WIDTH`); the SCU, which
    answered nothing, has none. timing_clean_control's SCP answers in milliseconds."""
    report, _ = analysed(CAPTURES / "timing_slow_scp.pcapng")
    ops = report.operations
    frame = report.devices().set_index("ae_title")
    scp = ops["scp_ae"].iloc[0]
    took = ops.loc[ops["scp_ae"] == scp, "turnaround_ms"].astype(float)
    row = frame.loc[scp]
    assert row["responses_timed"] == len(took) > 0
    half = devices_mod.BUCKET_WIDTH / 2
    for column, q in (("response_median_ms", 0.5), ("response_p95_ms", 0.95)):
        exact = float(took.quantile(q, interpolation="lower"))
        assert abs(row[column] - exact) <= exact * half, (column, row[column], exact)
    assert 500 <= row["response_median_ms"] < 600
    scu = frame.loc[ops["scu_ae"].iloc[0]]
    assert scu["responses_timed"] == 0 and pd.isna(scu["response_median_ms"])
    clean, _ = analysed(CAPTURES / "timing_clean_control.pcapng")
    fast = clean.devices().dropna(subset=["response_median_ms"])
    assert len(fast) == 1 and float(fast["response_p95_ms"].iloc[0]) < 50


def test_a_retrieval_is_not_its_archives_response_time(analysed: Any) -> None:
    """qr_move_ok: a C-MOVE's response waits for its sub-operations, so the archive that
    answered only the C-MOVE has no response time; the destination that answered its
    C-STOREs has theirs."""
    report, _ = analysed(CAPTURES / "qr_move_ok.pcapng")
    ops = report.operations
    frame = report.devices().set_index("ae_title")
    move = ops[ops["command"] == "C-MOVE"].iloc[0]
    assert frame.loc[move["scp_ae"], "responses_timed"] == 0
    stores = ops[ops["command"] == "C-STORE"]
    destination = stores["scp_ae"].iloc[0]
    assert frame.loc[destination, "responses_timed"] == int(stores["turnaround_ms"].notna().sum())


def test_quantiles_of_bucketed_times_are_within_half_a_bucket() -> None:
    """`devices.bucket` and `devices.quantile` on known times: each quantile within half
    `BUCKET_WIDTH` of the exact one (the lower of two middles), zero and sub-floor times in
    bucket 0, nothing counted giving None."""
    times = [0.0, 0.005, 0.3, 1.0, 2.0, 3.0, 40.0, 41.0, 500.0, 504.0, 3_600_000.0]
    buckets: dict[int, int] = {}
    for t in times:
        b = devices_mod.bucket(t)
        buckets[b] = buckets.get(b, 0) + 1
    assert devices_mod.bucket(0.0) == devices_mod.bucket(0.005) == 0
    for q in (0.5, 0.6, 0.9, 1.0):
        exact = sorted(times)[max(0, -(-int(q * 100) * len(times) // 100) - 1)]
        got = devices_mod.quantile(buckets, q)
        assert got is not None
        assert abs(got - exact) <= exact * devices_mod.BUCKET_WIDTH / 2 + 1e-9, (q, got, exact)
    assert devices_mod.quantile({}, 0.5) is None
