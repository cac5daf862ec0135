"""Which studies the C-STOREs carried, from which AE to which, and how many of each study's
objects were not stored (a failure status, or no answer; a warning, and a data set the
capture holds only in part, are counted apart): "did the whole study arrive?". From the
objects table (study, series, modality, accession number of each C-STORE's data set) beside
the operations' outcomes, both read a batch at a time; memory is bounded by `KEPT` study
routes and `OUTCOMES_KEPT` C-STOREs that did not succeed. `Report.studies` gives it as a
frame, report.html's "Studies stored" draws it (htmlstudies.py)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

#: Study routes (study, sender AE, receiver AE) tallied; the rest are counted.
KEPT = 20_000
#: C-STOREs whose outcome was not Success remembered, to be found by their objects.
OUTCOMES_KEPT = 200_000

#: The columns it reads.
OBJECT_COLUMNS = ["capture", "assoc_id", "msg_index", "command", "sender", "complete",
                  "study_instance_uid", "series_instance_uid", "modality",
                  "accession_number"]
OPERATION_COLUMNS = ["capture", "assoc_id", "request_index", "command", "status_category",
                     "status_hex"]
ASSOCIATION_COLUMNS = ["capture", "assoc_id", "calling_ae", "called_ae"]
#: `Studies.frame`'s columns.
COLUMNS = ["study_instance_uid", "accession_number", "modalities", "series", "sender_ae",
           "receiver_ae", "objects", "stored", "not_stored", "failed", "unanswered",
           "warned", "incomplete", "statuses", "capture", "assoc_id"]


@dataclass
class Route:
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
        self.routes: dict[tuple[str, str, str], Route] = {}
        self.more = 0  # objects of study routes past KEPT
        self.stores = 0

    def outcomes(self, ops: pd.DataFrame) -> None:
        stores = ops[ops["command"].eq("C-STORE").fillna(False)]
        for cap, aid, req, cat, hex_ in zip(
                stores["capture"].tolist(), stores["assoc_id"].tolist(),
                stores["request_index"].tolist(), stores["status_category"].tolist(),
                stores["status_hex"].tolist(), strict=True):
            if _missing(req) or (not _missing(cat) and cat == "Success") \
                    or len(self._outcomes) >= OUTCOMES_KEPT:
                continue
            self._outcomes[(cap, int(aid), int(req))] = (
                "none" if _missing(cat) else str(cat), "" if _missing(hex_) else str(hex_))

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
                route = self.routes[key] = Route(key[0], _text(accession), key[1], key[2],
                                                  (cap, aid))
            route.objects += 1
            if not _missing(modality):
                route.modalities[str(modality)] += 1
            if not _missing(series):
                route.series.add(str(series))
            if not _missing(accession) and not route.accession:
                route.accession = str(accession)
            if _missing(complete) or not bool(complete):  # the capture's gap, not the peers'
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

    def ordered(self) -> list[Route]:
        """The routes, those with objects not stored first, then the largest."""
        return sorted(self.routes.values(), key=lambda r: (-r.not_stored, -r.objects))

    def frame(self) -> pd.DataFrame:
        """One row per study route (`COLUMNS`), in `ordered` order."""
        rows = [{
            "study_instance_uid": r.study or None, "accession_number": r.accession or None,
            "modalities": ", ".join(m for m, _ in r.modalities.most_common()) or None,
            "series": len(r.series), "sender_ae": r.sender or None,
            "receiver_ae": r.receiver or None, "objects": r.objects,
            "stored": r.objects - r.not_stored, "not_stored": r.not_stored,
            "failed": r.failed, "unanswered": r.unanswered, "warned": r.warned,
            "incomplete": r.incomplete,
            "statuses": ", ".join(f"{h} \u00d7{n}" for h, n in r.statuses.most_common() if h)
            or None, "capture": r.link[0], "assoc_id": r.link[1]} for r in self.ordered()]
        df = pd.DataFrame(rows, columns=COLUMNS)
        ints = ["series", "objects", "stored", "not_stored", "failed", "unanswered", "warned",
                "incomplete", "assoc_id"]
        return df.astype({c: "Int64" for c in ints} | {
            c: "string" for c in COLUMNS if c not in ints})


def _text(value: object) -> str:
    return "" if _missing(value) else str(value)


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)
