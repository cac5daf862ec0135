"""The page's "Studies stored" section (studies.py's tally): each study by route, those with
objects not stored first, each route linked to its first association."""

from __future__ import annotations

from typing import Any

from .htmlparts import Col, anchor, num_col, table, text_col
from .studies import Route, Studies
from .svg import esc

#: Rows on the page: the studies with objects not stored first, then the largest.
SHOWN = 200


def section(studies: Studies, caps: list[Any]) -> str:
    """The section (nothing when no C-STORE carried a data set)."""
    if not studies.stores:
        return ""
    routes = studies.ordered()
    n_studies = len({r.study for r in routes})
    bad = sum(1 for r in routes if r.not_stored)
    rows = [_row(r, caps) for r in routes[:SHOWN]]
    head = (f"{studies.stores:,} C-STORE data set{'' if studies.stores == 1 else 's'} of "
            f"{n_studies:,} stud{'y' if n_studies == 1 else 'ies'}, over {len(routes):,} "
            f"route{'' if len(routes) == 1 else 's'} (a study from one AE to another)"
            + (f"; {bad:,} with objects not stored, listed first" if bad else
               "; every object stored") + ".")
    more = (f" {len(routes) - SHOWN:,} more study routes are in the objects table."
            if len(routes) > SHOWN else "") + (
        f" {studies.more:,} objects of further studies were not tallied."
        if studies.more else "")
    return (f"<h3 id='studies'>Studies stored</h3><p class='facts'>{esc(head + more)}</p>"
            + table(rows, [
                Col("study", lambda r: f"<span class='mono'>{esc(r['study'])}</span>"
                    + (f" <span class='muted'>accession {esc(r['accession'])}</span>"
                       if r["accession"] else "")),
                text_col("modality", "modalities", cls="tight"),
                num_col("series", "series"),
                Col("from \u2192 to", lambda r: r["route"]),
                num_col("objects", "objects"), num_col("stored", "stored"),
                num_col("not stored", "not_stored"),
                Col("why not, or warnings", lambda r: esc(r["why"]), cls="status")],
                row_class=lambda r: "error" if r["not_stored"] else
                "warning" if r["warned"] or r["incomplete"] else "", what="study routes"))


def _row(r: Route, caps: list[Any]) -> dict[str, Any]:
    cap, aid = r.link
    route = f"{esc(r.sender or '?')} \u2192 {esc(r.receiver or '?')}"
    if cap in caps:
        route = f"<a href='#{anchor(caps.index(cap), aid)}'>{route}</a>"
    why = [f"{n:,} failed" for n in [r.failed] if n] + \
        [f"{n:,} unanswered" for n in [r.unanswered] if n] + \
        [f"{n:,} incomplete in the capture" for n in [r.incomplete] if n] + \
        [f"{n:,} with a warning" for n in [r.warned] if n]
    statuses = r.statuses_text(4)
    return {"study": r.study or "(not read)", "accession": r.accession,
            "modalities": r.modality_text, "series": len(r.series), "route": route,
            "objects": r.objects, "stored": r.stored, "not_stored": r.not_stored,
            "warned": r.warned, "incomplete": r.incomplete,
            "why": "; ".join(why) + (f" ({statuses})" if statuses else "")}
