"""The page's "Devices" section (devices.py's tally): each AE title on each host, the
software it announced, and what it did, those with trouble first, each linked to its first
association."""

from __future__ import annotations

from typing import Any

from .devices import Device, Devices, quantile, ranked
from .htmlparts import Col, anchor, num_col, table
from .svg import esc, fmt_ms

#: Rows on the page: those with trouble first, then the busiest.
SHOWN = 200
#: Services (a command and its SOP class) named per device and direction.
SERVICES_SHOWN = 4


def section(devices: Devices, caps: list[Any]) -> str:
    """The section (nothing when no association named a device)."""
    if not devices.devices:
        return ""
    ordered = devices.ordered()
    troubled = sum(1 for d in ordered if d.trouble)
    software = {v for d in ordered for v in d.versions}
    head = (f"{len(ordered):,} device{'' if len(ordered) == 1 else 's'} (an AE title on a "
            f"host), announcing {len(software):,} implementation"
            f"{'' if len(software) == 1 else 's'}"
            + (f"; {troubled:,} with associations refused or aborted, or operations "
               "failed, listed first" if troubled else "") + ".")
    more = (f" {len(ordered) - SHOWN:,} more devices are in report.devices()."
            if len(ordered) > SHOWN else "") + (
        f" {devices.more:,} associations of further devices were not tallied."
        if devices.more else "")
    return (f"<h3 id='devices'>Devices</h3><p class='facts'>{esc(head + more)}</p>"
            + table([_row(d, caps) for d in ordered[:SHOWN]], [
                Col("AE title", lambda r: r["device"], cls="tight"),
                Col("host", lambda r: f"<span class='mono'>{esc(r['ip'])}</span>"
                    + (f" <span class='muted'>listening on {esc(r['ports'])}</span>"
                       if r["ports"] else "")),
                Col("software (Implementation Version Name)", lambda r: r["software"]),
                Col("max PDU", lambda r: esc(r["pdus"]), cls="num"),
                Col("requests sent, answered", lambda r: r["services"]),
                Col("response (median, p95)", lambda r: r["responses"], cls="num"),
                num_col("calls", "calls"), num_col("called", "called"),
                num_col("refused to it", "refused_to_it"),
                num_col("refused by it", "refused_by_it"), num_col("aborted", "aborted"),
                num_col("failed operations", "failed")],
                row_class=lambda r: "rejected" if r["trouble"] else "", what="devices"))


def title(d: Device) -> str:
    """A device's AE title on the page, escaped (also htmlnegotiation.py's)."""
    return esc(d.ae) if d.ae else "<span class='muted'>(AE title not seen)</span>"


def _row(d: Device, caps: list[Any]) -> dict[str, Any]:
    cap, aid = d.link
    name = title(d)
    if cap in caps:
        name = f"<a href='#{anchor(caps.index(cap), aid)}'>{name}</a>"
    versions = ", ".join(esc(v) for v in d.versions)
    uids = ", ".join(d.class_uids)
    software = (f"<span title='Implementation Class UID {esc(uids)}'>{versions}</span>"
                if versions else
                f"<span class='muted' title='Implementation Class UID {esc(uids)}'>"
                "(no version name)</span>" if uids else
                "<span class='muted'>(not seen)</span>")
    said = [f"{verb}: " + ", ".join(f"{esc(s)} {n:,}" for s, n in
                                    ranked(counts)[:SERVICES_SHOWN])
        + (f", {len(counts) - SERVICES_SHOWN} more" if len(counts) > SERVICES_SHOWN else "")
        for verb, counts in (("sent", d.sent), ("answered", d.answered)) if counts]
    median, p95 = quantile(d.responses, 0.5), quantile(d.responses, 0.95)
    responses = (f"<span title='{sum(d.responses.values()):,} requests answered, from the "
                 "last request byte to the first response byte (C-MOVE and C-GET left out: "
                 f"they wait for their sub-operations)'>{fmt_ms(median)}, {fmt_ms(p95)}"
                 "</span>" if median is not None and p95 is not None else "")
    return {"services": "<br>".join(said), "device": name, "ip": d.ip, "responses": responses,
            "ports": ", ".join(map(str, sorted(d.ports))),
            "software": software, "pdus": ", ".join(f"{p:,}" for p in d.pdus),
            "calls": d.calls, "called": d.called, "refused_to_it": d.refused_to_it,
            "refused_by_it": d.refused_by_it, "aborted": d.aborted, "failed": d.failed,
            "trouble": d.trouble}
