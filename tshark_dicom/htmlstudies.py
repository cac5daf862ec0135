"""The page's "Studies stored" section: which studies the C-STOREs carried, from which AE to
which, and how many of each study's objects were not stored (a failure status, or no
answer; a warning, and a data set the capture holds only in part, are said apart), so that
"did the whole study arrive?" is answered at a glance. From the objects table (study,
series, modality, accession number of each C-STORE's data set) beside the operations'
outcomes, both read a batch at a time; memory is bounded by `KEPT` study routes and
`OUTCOMES_KEPT` C-STOREs that did not succeed."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .htmlparts import Col, anchor, num_col, table, text_col
from .svg import esc, missing

#: Study routes (study, sender AE, receiver AE) tallied; the rest are counted.
KEPT = 20_000
#: C-STOREs whose outcome was not Success remembered, to be found by their objects.
OUTCOMES_KEPT = 200_000
#: Rows on the page: the studies with objects not stored first, then the largest.
SHOWN = 200

#: The columns it reads.
OBJECT_COLUMNS = ["capture", "assoc_id", "msg_index", "command", "sender", "complete",
                  "study_instance_uid", "series_instance_uid", "modality",
                  "accession_number"]
OPERATION_COLUMNS = ["capture", "assoc_id", "request_index", "command", "status_category",
                     "status_hex"]


@dataclass
class _Route:
    """One study sent from one AE to another."""

    study: str
    accession: str
    sender: str
    receiver: str
    link: tuple[Any, Any]  # (capture, assoc_id) of the first association that carried it
    modalities: Counter[str] = field(default_factory=Counter)
    series: set[str] = field(default_factory=set)
    objects: int = 0
    warned: int = 0
    failed: int = 0
    unanswered: int = 0
    incomplete: int = 0
    statuses: Counter[str] = field(default_factory=Counter)

    @property
    def not_stored(self) -> int:
        """Refused, or never answered: a data set the capture holds only in part was stored
        all the same if the receiver said so (`incomplete` counts those apart)."""
        return self.failed + self.unanswered


class Studies:
    """The C-STOREs' outcomes (`outcomes`, every operations batch first), then their
    objects (`add`), tallied by study route."""

    def __init__(self, assocs: pd.DataFrame) -> None:
        self._aes = {(c, int(a)): (calling, called) for c, a, calling, called in zip(
            assocs["capture"].tolist(), assocs["assoc_id"].tolist(),
            assocs["calling_ae"].tolist(), assocs["called_ae"].tolist(), strict=True)}
        #: (capture, assoc_id, request msg_index) -> (category, status hex) of a C-STORE
        #: that did not end in Success; a C-STORE with a response not here succeeded
        self._outcomes: dict[tuple[Any, int, int], tuple[str, str]] = {}
        self.routes: dict[tuple[str, str, str], _Route] = {}
        self.more = 0  # objects of study routes past KEPT
        self.stores = 0

    def outcomes(self, ops: pd.DataFrame) -> None:
        stores = ops[ops["command"].eq("C-STORE").fillna(False)]
        for cap, aid, req, cat, hex_ in zip(
                stores["capture"].tolist(), stores["assoc_id"].tolist(),
                stores["request_index"].tolist(), stores["status_category"].tolist(),
                stores["status_hex"].tolist(), strict=True):
            if missing(req) or (not missing(cat) and cat == "Success") \
                    or len(self._outcomes) >= OUTCOMES_KEPT:
                continue
            self._outcomes[(cap, int(aid), int(req))] = (
                "none" if missing(cat) else str(cat), "" if missing(hex_) else str(hex_))

    def add(self, objects: pd.DataFrame) -> None:
        stores = objects[objects["command"].eq("C-STORE-RQ").fillna(False)]
        self.stores += len(stores)
        for cap, aid, msg, sender, complete, study, series, modality, accession in zip(
                *(stores[c].tolist() for c in OBJECT_COLUMNS if c != "command"), strict=True):
            aid = int(aid)
            calling, called = self._aes.get((cap, aid), (None, None))
            src, dst = (calling, called) if _text(sender) == "requestor" else (called, calling)
            key = (_text(study), _text(src), _text(dst))
            route = self.routes.get(key)
            if route is None:
                if len(self.routes) >= KEPT:
                    self.more += 1
                    continue
                route = self.routes[key] = _Route(key[0], _text(accession), key[1], key[2],
                                                  (cap, aid))
            route.objects += 1
            if not missing(modality):
                route.modalities[str(modality)] += 1
            if not missing(series):
                route.series.add(str(series))
            if not missing(accession) and not route.accession:
                route.accession = str(accession)
            if missing(complete) or not bool(complete):  # the capture's gap, not the peers'
                route.incomplete += 1
            outcome = self._outcomes.get((cap, aid, int(msg)))
            if outcome is None:
                continue  # succeeded (or its operation is not in the table)
            if outcome[0] == "Warning":
                route.warned += 1
                route.statuses[outcome[1]] += 1
            elif outcome[0] == "none":
                route.unanswered += 1
            else:
                route.failed += 1
                route.statuses[outcome[1]] += 1

    def section(self, caps: list[Any]) -> str:
        """The section (nothing when no C-STORE carried a data set)."""
        if not self.stores:
            return ""
        routes = sorted(self.routes.values(), key=lambda r: (-r.not_stored, -r.objects))
        studies = len({r.study for r in routes})
        bad = sum(1 for r in routes if r.not_stored)
        rows = [_row(r, caps) for r in routes[:SHOWN]]
        head = (f"{self.stores:,} C-STORE data set{'' if self.stores == 1 else 's'} of "
                f"{studies:,} stud{'y' if studies == 1 else 'ies'}, over {len(routes):,} "
                f"route{'' if len(routes) == 1 else 's'} (a study from one AE to another)"
                + (f"; {bad:,} with objects not stored, listed first" if bad else
                   "; every object stored") + ".")
        more = (f" {len(routes) - SHOWN:,} more study routes are in the objects table."
                if len(routes) > SHOWN else "") + (
            f" {self.more:,} objects of further studies were not tallied." if self.more else "")
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


def _row(r: _Route, caps: list[Any]) -> dict[str, Any]:
    cap, aid = r.link
    route = f"{esc(r.sender or '?')} \u2192 {esc(r.receiver or '?')}"
    if cap in caps:
        route = f"<a href='#{anchor(caps.index(cap), aid)}'>{route}</a>"
    why = [f"{n:,} failed" for n in [r.failed] if n] + \
        [f"{n:,} unanswered" for n in [r.unanswered] if n] + \
        [f"{n:,} incomplete in the capture" for n in [r.incomplete] if n] + \
        [f"{n:,} with a warning" for n in [r.warned] if n]
    statuses = ", ".join(f"{h} \u00d7{n}" for h, n in r.statuses.most_common(4) if h)
    return {"study": r.study or "(not read)", "accession": r.accession,
            "modalities": ", ".join(m for m, _ in r.modalities.most_common()),
            "series": len(r.series), "route": route, "objects": r.objects,
            "stored": r.objects - r.not_stored, "not_stored": r.not_stored,
            "warned": r.warned, "incomplete": r.incomplete,
            "why": "; ".join(why) + (f" ({statuses})" if statuses else "")}


def _text(value: object) -> str:
    return "" if missing(value) else str(value)
