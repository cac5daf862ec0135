"""What each device accepted: the observed side of a conformance check. "Its Conformance
Statement says it takes MR with JPEG 2000: what did it take?" For every device that was asked
for associations (an AE title on a host, devices.py), each abstract syntax (SOP class)
proposed to it: how often, how often it accepted it and with which transfer syntax, how often
it rejected it and why (PS3.8 9.3.3.2, the A-ASSOCIATE-AC's result of each presentation
context: user-rejection, no-reason, abstract-syntax-not-supported,
transfer-syntaxes-not-supported), the transfer syntaxes offered in the contexts it refused
for their transfer syntaxes (none of which it takes), how many went unanswered (the
association refused whole, or never answered), and who proposed it.

A C-MOVE's archive proposes to the destination every storage class it knows (dcmqrscp:
120), and a destination that takes a few rejects the rest: harmless where the C-MOVE
completed every sub-operation, for then no object the archive had to send was of a class
it rejected. Such rejections (on the callbacks of a C-MOVE that lost nothing: `Retrievals`)
are counted as not needed (`Syntax.spared`) and do not make a SOP class red or yellow.

Read a batch of presentation contexts at a time, after the devices' associations
(`Negotiation(devices, retrievals)`: the tally's ``sides`` say which device answered each
association) and the operations' C-MOVEs (`Retrievals`).
Bounded: `SYNTAXES_KEPT` abstract syntaxes a device and `TOTAL_KEPT` in all (contexts of
further ones are counted), devices.VALUES_KEPT values in each list. `Report.negotiation`
gives it as a frame, report.html's "Negotiation" draws it (htmlnegotiation.py), and
summary.txt names what was rejected."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .devices import Device, Devices, keep, ranked
from .svg import missing

#: Abstract syntaxes tallied per device, and in all; contexts of further ones are counted. A
#: C-MOVE SCP proposes every storage SOP class it knows to the destination (pynetdicom: 128,
#: the most one association may carry), and PS3.6 registers about 300.
SYNTAXES_KEPT = 512
TOTAL_KEPT = 50_000
#: PS3.8 Table 9-18: the result of a presentation context that was accepted, and the one
#: that rejected it for its transfer syntaxes.
ACCEPTANCE = 0
TRANSFER_SYNTAXES_NOT_SUPPORTED = 4

#: The presentation contexts' columns it reads.
CONTEXT_COLUMNS = ["capture", "assoc_id", "abstract_syntax", "abstract_syntax_name",
                   "proposed_transfer_syntaxes", "result", "result_text", "transfer_syntax",
                   "transfer_syntax_name"]
#: Those the summary's line needs (the others are read as absent: `Negotiation.contexts`).
COUNT_COLUMNS = ["capture", "assoc_id", "abstract_syntax", "result"]
#: Transfer syntax names learnt from the contexts accepted with them (`Negotiation.names`).
NAMES_KEPT = 256
#: `Negotiation.frame`'s columns.
COLUMNS = ["ae_title", "ip", "abstract_syntax", "abstract_syntax_name", "proposed",
           "accepted", "accepted_transfer_syntaxes", "rejected", "rejected_not_needed",
           "rejections", "refused_transfer_syntaxes", "unanswered", "proposed_by", "capture",
           "assoc_id"]
#: `Syntax.kind` of a SOP class rejected only where it was not needed, never accepted.
SPARED = 3
#: The operations' columns `Retrievals` reads.
RETRIEVAL_COLUMNS = ["capture", "command", "status_category", "completed", "failed",
                     "suboperations_failed", "callback_assoc_ids"]
#: Callback associations remembered (`Retrievals`); past it, rejections count as needed.
CALLBACKS_KEPT = 100_000


class Retrievals:
    """The callback associations of the C-MOVEs that lost nothing: every sub-operation
    completed (final status Success, or Cancel after those it did), none failed, by its
    counts and by the linked C-STOREs. A SOP class rejected there was not needed: the rule
    by which the findings make those rejections one note (qrfindings.py,
    `unneeded_callback_rejections`)."""

    def __init__(self) -> None:
        self.lossless: set[tuple[Any, int]] = set()

    def add(self, ops: pd.DataFrame) -> None:
        """A batch of operations (`RETRIEVAL_COLUMNS`; without them, nothing)."""
        if not all(c in ops for c in RETRIEVAL_COLUMNS):
            return
        moves = ops[(ops["command"] == "C-MOVE")
                    & ops["status_category"].isin(["Success", "Cancel"])]
        for cap, completed, failed, linked, ids in zip(
                *(moves[c].tolist() for c in RETRIEVAL_COLUMNS if c not in (
                    "command", "status_category")), strict=True):
            if missing(completed) or not int(completed) \
                    or any(not missing(n) and int(n) for n in (failed, linked)) \
                    or isinstance(ids, str) or not hasattr(ids, "__iter__") \
                    or len(self.lossless) >= CALLBACKS_KEPT:
                continue  # none done, some lost, no callback (a null), or past the bound
            self.lossless.update((cap, int(i)) for i in ids if not missing(i))


@dataclass(eq=False)
class Syntax:
    """One abstract syntax as proposed to one device."""

    uid: str
    name: str
    #: (capture, assoc_id): the first association that proposed it, or once one did, the
    #: first that saw it rejected
    link: tuple[Any, Any]
    proposed: int = 0
    accepted: dict[str, int] = field(default_factory=dict)  # transfer syntax -> contexts
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> contexts
    refused: list[str] = field(default_factory=list)  # transfer syntax UIDs it refused
    unanswered: int = 0
    callers: list[str] = field(default_factory=list)
    #: rejections on the callbacks of C-MOVEs that lost nothing (`Retrievals`): not needed
    spared: int = 0

    @property
    def rejections(self) -> int:
        return sum(self.rejected.values())

    @property
    def kind(self) -> int:
        """`rank`, or `SPARED` for a SOP class never accepted and rejected only where it
        was not needed."""
        return SPARED if self.spared and not self.accepted and self.rank == 2 else self.rank

    @property
    def rank(self) -> int:
        """0: rejected and never accepted; 1: accepted, but refused in some contexts (in
        some transfer syntaxes: an SCU that offers each in a context of its own); 2: never
        rejected, or only where it was not needed (`spared`)."""
        return 2 if self.rejections <= self.spared else 1 if self.accepted else 0


def extent(pairs: list[tuple[Device, Syntax]]) -> tuple[int, int]:
    """How many distinct SOP classes, and how many devices, ``pairs`` hold."""
    return len({s.uid for _, s in pairs}), len({id(d) for d, _ in pairs})


def reason(result: Any, text: Any) -> str:
    """A rejection's reason in a word: the result's text without its source, which is
    always the provider's ("abstract-syntax-not-supported (provider rejection)")."""
    if not missing(text) and str(text):
        return str(text).split(" (")[0]
    return f"result {result}"


class Negotiation:
    """The abstract syntaxes proposed to each device of ``devices`` (`contexts`)."""

    def __init__(self, devices: Devices, spared: set[tuple[Any, int]] | None = None) -> None:
        self.devices = devices
        #: associations where a rejection was not needed (`Retrievals.lossless`)
        self.spared = spared or set()
        self.syntaxes: dict[Device, dict[str, Syntax]] = {}
        self.kept = 0  # Syntax entries, on all devices
        #: transfer syntax UID -> its name, as the tables give it where one was accepted
        self.names: dict[str, str] = {}
        self.more = 0  # contexts of abstract syntaxes past SYNTAXES_KEPT or TOTAL_KEPT

    def contexts(self, pcs: pd.DataFrame) -> None:
        """The presentation contexts of ``pcs``, each counted to the device its
        association asked. Of `CONTEXT_COLUMNS`, those ``pcs`` lacks are taken as absent
        (the summary reads `COUNT_COLUMNS` only)."""
        sides = self.devices.sides
        nothing = [None] * len(pcs)
        for cap, aid, uid, name, proposed, result, text, chosen_uid, chosen in zip(
                *(pcs[c].tolist() if c in pcs else nothing for c in CONTEXT_COLUMNS),
                strict=True):
            assoc = sides.get((cap, int(aid)))
            if assoc is None or "acceptor" not in assoc:
                continue
            acceptor = assoc["acceptor"]
            uid = "" if missing(uid) else str(uid)
            mine = self.syntaxes.setdefault(acceptor, {})
            syntax = mine.get(uid)
            if syntax is None:
                if len(mine) >= SYNTAXES_KEPT or self.kept >= TOTAL_KEPT:
                    self.more += 1
                    continue
                syntax = mine[uid] = Syntax(uid, "" if missing(name) else str(name),
                                            (cap, aid))
                self.kept += 1
            syntax.proposed += 1
            requestor = assoc.get("requestor")
            if requestor is not None:
                keep(syntax.callers, requestor.ae)
            if missing(result):
                syntax.unanswered += 1
            elif int(result) == ACCEPTANCE:
                ts = "" if missing(chosen) else str(chosen)
                syntax.accepted[ts] = syntax.accepted.get(ts, 0) + 1
                if ts and not missing(chosen_uid) and len(self.names) < NAMES_KEPT:
                    self.names.setdefault(str(chosen_uid), ts)
            else:
                not_needed = (cap, int(aid)) in self.spared
                if not syntax.rejected or (not not_needed and syntax.rejections
                                           == syntax.spared):
                    syntax.link = (cap, aid)  # the first rejection (that mattered) to see
                syntax.spared += not_needed
                why = reason(result, text)
                syntax.rejected[why] = syntax.rejected.get(why, 0) + 1
                if int(result) == TRANSFER_SYNTAXES_NOT_SUPPORTED:
                    for ts in proposed if not missing(proposed) else ():
                        keep(syntax.refused, ts)

    def ordered(self) -> list[tuple[Device, Syntax]]:
        """Devices that never accepted the largest share of the SOP classes proposed to them
        first, then those that refused the largest share at least once (a C-MOVE's
        destination, proposed every storage class the archive knows, rejects many of them
        and a small share), then by name; on each, the SOP classes it never accepted first,
        then those it refused in some contexts only (`Syntax.rank`), then those it accepted,
        then those rejected only where not needed, the most proposed first, then by name."""
        def shares(d: Device) -> tuple[float, float]:
            mine = self.syntaxes[d].values()
            return (-sum(s.rank == 0 for s in mine) / len(mine),
                    -sum(s.rank < 2 for s in mine) / len(mine))

        devices = sorted(self.syntaxes, key=lambda d: (*shares(d), d.ae, d.ip))
        return [(d, s) for d in devices for s in sorted(
            self.syntaxes[d].values(),
            key=lambda s: (s.rank, s.kind == SPARED, -s.proposed, s.name or s.uid))]

    def summary_line(self, named: int = 3) -> str | None:
        """The summary's line: how many SOP classes were proposed to how many devices, the
        devices that never accepted some, with how many each, then those that accepted some
        only in some of the contexts that proposed them (``named`` devices each, in
        `ordered`'s order, then how many more); None when no device was proposed any."""
        pairs = self.ordered()
        if not pairs:
            return None
        syntaxes, devices = extent(pairs)
        said = []
        for kind, words in (
                (0, "never accepted"), (1, "accepted, but refused in some contexts"),
                (SPARED, "rejected only where not needed (a C-MOVE's destination; the C-MOVE "
                 "lost nothing)")):
            counts: dict[Device, int] = {}
            for d, s in pairs:
                if s.kind == kind:
                    counts[d] = counts.get(d, 0) + 1
            if not counts:
                continue
            each = [f"{n:,} by {d.ae or d.ip}" for d, n in list(counts.items())[:named]]
            if len(counts) > named:
                each.append(f"{sum(list(counts.values())[named:]):,} by "
                            f"{len(counts) - named:,} more devices")
            said.append(f"{words}: " + ", ".join(each))
        return (f"negotiation: {syntaxes:,} SOP class{'' if syntaxes == 1 else 'es'} "
                f"proposed to {devices:,} device{'' if devices == 1 else 's'}; "
                + ("; ".join(said) if said else "none rejected"))

    def transfer_syntax_names(self, uids: list[str]) -> list[str]:
        """Each transfer syntax's name: as the tables named it where a context was accepted
        with it, else pydicom's registered name, else its UID. pydicom is imported only for
        a name the tables do not hold: the run's process draws the page without it (its
        import took 0.1 s of the fixture archive's page)."""
        found: dict[str, str] = {}
        if any(u not in self.names for u in uids):
            from .records import uid_name

            found = {u: uid_name(u) or u for u in uids if u not in self.names}
            for u, name in found.items():
                if len(self.names) < NAMES_KEPT:
                    self.names[u] = name
        return [self.names.get(u) or found.get(u) or u for u in uids]

    def frame(self) -> pd.DataFrame:
        rows = [{"ae_title": d.ae, "ip": d.ip, "abstract_syntax": s.uid or None,
                 "abstract_syntax_name": s.name or None, "proposed": s.proposed,
                 "accepted": sum(s.accepted.values()),
                 "accepted_transfer_syntaxes": [t for t, _ in ranked(s.accepted) if t],
                 "rejected": s.rejections, "rejected_not_needed": s.spared,
                 "rejections": [r for r, _ in ranked(s.rejected)],
                 "refused_transfer_syntaxes": self.transfer_syntax_names(s.refused),
                 "unanswered": s.unanswered, "proposed_by": list(s.callers),
                 "capture": s.link[0], "assoc_id": s.link[1]}
                for d, s in self.ordered()]
        return pd.DataFrame(rows, columns=COLUMNS)
