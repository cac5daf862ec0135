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

from .svg import missing

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

    @property
    def stored(self) -> int:
        return self.objects - self.not_stored

    @property
    def modality_text(self) -> str:
        """'CT, MR', the most frequent first."""
        return ", ".join(m for m, _ in self.modalities.most_common())

    def statuses_text(self, most: int | None = None) -> str:
        """'0xA700 \u00d72, 0xB000 \u00d71': the failure and warning statuses, the most
        frequent first (``most`` of them)."""
        return ", ".join(f"{h} \u00d7{n}" for h, n in self.statuses.most_common(most) if h)


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
            if missing(req) or (not missing(cat) and cat == "Success") \
                    or len(self._outcomes) >= OUTCOMES_KEPT:
                continue
            self._outcomes[(cap, int(aid), int(req))] = (
                "none" if missing(cat) else str(cat), "" if missing(hex_) else str(hex_))

    def add(self, objects: pd.DataFrame) -> None:
        stores = stores_of(objects)
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

    def ordered(self) -> list[Route]:
        """The routes, those with objects not stored first, then the largest."""
        return sorted(self.routes.values(), key=lambda r: (-r.not_stored, -r.objects))

    def frame(self) -> pd.DataFrame:
        """One row per study route (`COLUMNS`), in `ordered` order."""
        rows = [{
            "study_instance_uid": r.study or None, "accession_number": r.accession or None,
            "modalities": r.modality_text or None, "series": len(r.series),
            "sender_ae": r.sender or None, "receiver_ae": r.receiver or None,
            "objects": r.objects, "stored": r.stored, "not_stored": r.not_stored,
            "failed": r.failed, "unanswered": r.unanswered, "warned": r.warned,
            "incomplete": r.incomplete, "statuses": r.statuses_text() or None,
            "capture": r.link[0], "assoc_id": r.link[1]} for r in self.ordered()]
        df = pd.DataFrame(rows, columns=COLUMNS)
        ints = ["series", "objects", "stored", "not_stored", "failed", "unanswered", "warned",
                "incomplete", "assoc_id"]
        return df.astype({c: "Int64" for c in ints} | {
            c: "string" for c in COLUMNS if c not in ints})


class StoreCounts:
    """What the C-STOREs' data sets were of, for the summary: how many, of how many studies
    and series, by modality (the objects table a batch at a time)."""

    def __init__(self) -> None:
        self.count = 0
        self.studies: set[str] = set()
        self.series: set[str] = set()
        self.modalities = Counter[str]()

    def add(self, objects: pd.DataFrame) -> None:
        stores = stores_of(objects)
        self.count += len(stores)
        self.studies.update(stores["study_instance_uid"].dropna().tolist())
        self.series.update(stores["series_instance_uid"].dropna().tolist())
        self.modalities.update(stores["modality"].dropna().tolist())

    def lines(self) -> list[str]:
        """'C-STORE: 227 objects of 14 studies, 35 series (CT 120, MR 80, US 27)'."""
        if not self.count:
            return []
        common = self.modalities.most_common()
        kinds = ", ".join(f"{m} {n:,}" for m, n in common[:6]) + \
            (f", {len(common) - 6} more modalities" if len(common) > 6 else "")
        objects = f"{self.count:,} object" + ("" if self.count == 1 else "s")
        return [f"C-STORE: {objects} of "
                f"{len(self.studies):,} stud{'y' if len(self.studies) == 1 else 'ies'}, "
                f"{len(self.series):,} series" + (f" ({kinds})" if kinds else "")]


def stores_of(objects: pd.DataFrame) -> pd.DataFrame:
    """The rows of an objects batch that are C-STORE data sets."""
    return objects[objects["command"].eq("C-STORE-RQ").fillna(False)]


def _text(value: object) -> str:
    return "" if missing(value) else str(value)
