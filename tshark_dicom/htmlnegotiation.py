"""The page's "Negotiation" section (negotiation.py's tally): for each device asked for
associations, each SOP class proposed to it, what it accepted it with and what it rejected,
those rejected first, each linked to the association that shows it."""

from __future__ import annotations

from itertools import groupby
from typing import Any

from .devices import Device, ranked
from .htmldevices import title
from .htmlparts import Col, anchor, num_col, table
from .negotiation import Negotiation, Syntax, extent
from .svg import esc

#: Rows on the page (a device and a SOP class each): those rejected first.
SHOWN = 300
#: SOP classes shown per device, of those it rejected and of the others (a C-MOVE's
#: destination is proposed every storage class its archive knows, and rejects those it does
#: not take); the rest of each kind folded into one row.
REJECTED_SHOWN = 4
ACCEPTED_SHOWN = 6
#: Transfer syntaxes, reasons and callers named in a cell.
NAMED = 4


def section(negotiation: Negotiation, caps: list[Any]) -> str:
    """The section (nothing when no device was proposed a SOP class)."""
    pairs = negotiation.ordered()
    if not pairs:
        return ""
    syntaxes, devices = extent(pairs)
    refusing = len({id(d) for d, s in pairs if s.rank < 2})
    never = len({id(d) for d, s in pairs if s.rank == 0})
    spared = len({id(d) for d, s in pairs if s.spared})
    rows = _rows(negotiation, pairs, caps)
    head = (f"{syntaxes:,} SOP class{'' if syntaxes == 1 else 'es'} (abstract syntaxes) "
            f"proposed to {devices:,} device{'' if devices == 1 else 's'}: what each accepted "
            "them with, as the traffic shows it (set it beside the device's Conformance "
            "Statement)" + (f"; {refusing:,} rejected some ({never:,} never accepted some: "
                            "red; the others accepted them in other contexts: yellow), those "
                            "that rejected the largest share of what they were proposed first"
                            if refusing else "; none rejected where it mattered" if spared
                            else "; none rejected") + (
        f"; {spared:,} rejected some on the callbacks of C-MOVEs that lost nothing (the "
        "archive proposes every storage class it knows, the destination takes those it "
        "needs): not needed, not marked" if spared else "") + ".")
    more = (f" {len(rows) - SHOWN:,} more rows are in report.negotiation()."
            if len(rows) > SHOWN else "") + (
        f" {negotiation.more:,} presentation contexts of further SOP classes were not "
        "tallied." if negotiation.more else "")
    return (f"<h3 id='negotiation'>Negotiation</h3><p class='facts'>{esc(head + more)}</p>"
            + table(rows[:SHOWN], [
                Col("device", lambda r: r["device"], cls="tight"),
                Col("SOP class (abstract syntax)", lambda r: r["syntax"]),
                Col("accepted with", lambda r: r["accepted"]),
                Col("rejected", lambda r: r["rejected"]),
                num_col("proposed", "proposed"), num_col("unanswered", "unanswered"),
                Col("proposed by", lambda r: r["callers"])],
                row_class=lambda r: r["class"], what="SOP classes"))


#: A row's class by `Syntax.rank`: never accepted, refused in some contexts only, neither.
_ROW_CLASS = {0: "rejected", 1: "warning", 2: ""}


def _rows(negotiation: Negotiation, pairs: list[tuple[Device, Syntax]], caps: list[Any]
          ) -> list[dict[str, Any]]:
    """A row per device and SOP class, in the tally's order: on each device, the first
    `REJECTED_SHOWN` it rejected, then one row for the rest of those, then the first
    `ACCEPTED_SHOWN` of the others, then one row for the rest of them."""
    rows: list[dict[str, Any]] = []
    for d, group in groupby(pairs, key=lambda pair: pair[0]):
        mine = [s for _, s in group]
        for rejected, limit in ((True, REJECTED_SHOWN), (False, ACCEPTED_SHOWN)):
            kind = [s for s in mine if (s.rank < 2) is rejected]
            rows += [_row(negotiation, d, s, caps) for s in kind[:limit]]
            if kind[limit:]:
                rows.append(_folded(d, kind[limit:], rejected))
    return rows


def _folded(d: Device, rest: list[Syntax], rejected: bool) -> dict[str, Any]:
    """One row for ``rest``, SOP classes of ``d`` of one kind not shown one by one."""
    accepted: dict[str, int] = {}
    reasons: dict[str, int] = {}
    callers: list[str] = []
    for s in rest:
        for counts, into in ((s.accepted, accepted), (s.rejected, reasons)):
            for k, n in counts.items():
                into[k] = into.get(k, 0) + n
        callers += [c for c in s.callers if c not in callers]
    names = [s.name or s.uid for s in rest]
    said = (f"{len(rest):,} more SOP classes with contexts rejected: "
            + ", ".join(names[:NAMED])
            + (f" and {len(names) - NAMED:,} more" if len(names) > NAMED else "")
            if rejected else f"{len(rest):,} more SOP classes, none rejected"
            + (f" where it mattered ({sum(s.spared > 0 for s in rest):,} only where not "
               "needed)" if any(s.spared for s in rest) else ""))
    return {"device": _device(d), "accepted": _named(accepted), "rejected": _named(reasons),
            "syntax": f"<span class='muted'>{esc(said)} (all in report.negotiation())"
                      "</span>",
            "proposed": sum(s.proposed for s in rest),
            "unanswered": sum(s.unanswered for s in rest), "callers": _callers(callers),
            "class": _ROW_CLASS[min(s.rank for s in rest)]}


def _device(d: Device) -> str:
    return f"{title(d)} <span class='muted mono'>{esc(d.ip)}</span>"


def _callers(callers: list[str]) -> str:
    return ", ".join(esc(c) for c in callers[:NAMED]) + (
        f", {len(callers) - NAMED} more" if len(callers) > NAMED else "")


def _named(counts: dict[str, int]) -> str:
    items = ranked(counts)
    return "<br>".join(f"{esc(k or '?')} {n:,}" for k, n in items[:NAMED]) + (
        f"<br>{len(items) - NAMED} more" if len(items) > NAMED else "")


def _row(negotiation: Negotiation, d: Device, s: Syntax, caps: list[Any]
         ) -> dict[str, Any]:
    cap, aid = s.link
    syntax = f"<span title='{esc(s.uid)}'>{esc(s.name or s.uid)}</span>"
    if cap in caps:
        syntax = f"<a href='#{anchor(caps.index(cap), aid)}'>{syntax}</a>"
    rejected = _named(s.rejected)
    if s.spared:
        rejected += (f"<br><span class='muted'>{'all' if s.spared == s.rejections else s.spared}"
                     " on the callbacks of C-MOVEs that lost nothing: not needed</span>")
    if s.refused:
        rejected += ("<br><span class='muted'>refused transfer syntaxes: "
                     + esc(", ".join(negotiation.transfer_syntax_names(s.refused))) + "</span>")
    return {"device": _device(d), "syntax": syntax,
            "accepted": _named(s.accepted), "rejected": rejected, "proposed": s.proposed,
            "unanswered": s.unanswered, "callers": _callers(s.callers),
            "class": _ROW_CLASS[s.rank]}
