"""The DICOM devices that took part in the traffic: "who is on this network, what software
do they run, and which of them had trouble?". A device is an AE title on a host: the calling
AE title on the requestor's address, the called AE title on the acceptor's. For each, from
the associations table (and the operations' outcomes), both read a batch at a time: the
ports it listened on, the implementation (PS3.7 D.3.3.2: the Implementation Class UID and
Version Name each side sends in its A-ASSOCIATE, which name the software and its release),
the maximum PDU length it announced, the requests it sent and those it answered (by command
and SOP class: "C-STORE CT Image Storage"), the associations it requested (calls) and those
requested of it (called), those refused to it and by it, those aborted, and the operations
that failed in them.

A device that announced two implementations (a software update within the captures, or two
devices behind one address with the same title) lists both, in the order seen. Memory is
bounded by `KEPT` devices (the rest are counted), `VALUES_KEPT` values of a list and
`SERVICES_KEPT` services a direction.
`Report.devices` gives it as a frame, report.html's "Devices" draws it (htmldevices.py)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .svg import missing

#: Devices tallied; associations of further ones are counted (`Devices.more`).
KEPT = 10_000
#: Values kept in each of a device's lists (ports, implementations, PDU lengths).
VALUES_KEPT = 8
#: Services (a command and its SOP class) counted per device and direction.
SERVICES_KEPT = 16

#: The columns it reads.
ASSOCIATION_COLUMNS = ["capture", "assoc_id", "calling_ae", "called_ae", "requestor_ip",
                       "acceptor_ip", "acceptor_port", "requested_at", "result", "ending",
                       "impl_class_uid_requestor", "impl_version_requestor",
                       "impl_class_uid_acceptor", "impl_version_acceptor",
                       "max_pdu_requestor", "max_pdu_acceptor"]
OPERATION_COLUMNS = ["capture", "assoc_id", "scu", "command", "sop_class_name",
                     "status_category", "turnaround_ms"]
#: `Devices.frame`'s columns.
COLUMNS = ["ae_title", "ip", "listening_ports", "implementation_versions",
           "implementation_class_uids", "max_pdu_lengths", "requests_sent",
           "requests_answered", "responses_timed", "response_median_ms", "response_p95_ms",
           "calls", "called",
           "refused_to_it", "refused_by_it", "aborted", "failed_operations", "first_seen",
           "last_seen", "capture", "assoc_id"]

#: Commands whose response waits for their sub-operations (their turnaround is the
#: retrieval's, not the device's answer): left out of its response times.
RETRIEVALS = ("C-MOVE", "C-GET")
#: Response times are counted in buckets `BUCKET_WIDTH` wide on a log scale from
#: `BUCKET_FLOOR_MS` (below it, bucket 0): a device's median and 95th percentile to within
#: half that width, in bounded memory (about 1,000 buckets from 0.01 ms to an hour).
BUCKET_WIDTH = 0.02
BUCKET_FLOOR_MS = 0.01
_LOG_WIDTH = math.log1p(BUCKET_WIDTH)

#: Association results that refused the requestor: rejected, or never answered.
REFUSED = ("rejected", "no-response")


@dataclass(eq=False)  # a device is itself: two with the same counts are two
class Device:
    """One AE title on one host."""

    ae: str
    ip: str
    link: tuple[Any, Any]  # (capture, assoc_id) of its first association
    ports: list[int] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    class_uids: list[str] = field(default_factory=list)
    pdus: list[int] = field(default_factory=list)
    #: "C-STORE CT Image Storage" -> the requests it sent, and those it answered
    sent: dict[str, int] = field(default_factory=dict)
    answered: dict[str, int] = field(default_factory=dict)
    #: its response times (the turnaround of the requests it answered, not C-MOVE or C-GET):
    #: how many fell in each bucket (`bucket`)
    responses: dict[int, int] = field(default_factory=dict)
    calls: int = 0  # associations it requested
    called: int = 0  # associations requested of it (whatever it answered)
    refused_to_it: int = 0
    refused_by_it: int = 0
    aborted: int = 0
    failed: int = 0
    first: Any = None
    last: Any = None

    @property
    def trouble(self) -> int:
        return self.refused_to_it + self.refused_by_it + self.aborted + self.failed


def _each(sides: dict[str, Device]) -> list[Device]:
    """The devices of an association's sides, each once (a device may call itself)."""
    return list({id(d): d for d in sides.values()}.values())


def keep(values: list[Any], value: Any) -> None:
    """``value`` appended to ``values`` if new, while fewer than `VALUES_KEPT` are kept."""
    if not missing(value) and value != "" and value not in values \
            and len(values) < VALUES_KEPT:
        values.append(value)


def _count(counts: dict[str, int], service: str, n: int) -> None:
    """``n`` more of ``service``, a new one only while fewer than `SERVICES_KEPT` are."""
    if service in counts or len(counts) < SERVICES_KEPT:
        counts[service] = counts.get(service, 0) + n


def bucket(ms: float) -> int:
    """The bucket of a response time (`BUCKET_WIDTH`)."""
    return 0 if ms <= BUCKET_FLOOR_MS else 1 + int(math.log(ms / BUCKET_FLOOR_MS) / _LOG_WIDTH)


def quantile(buckets: dict[int, int], q: float) -> float | None:
    """The ``q`` quantile of the times counted in ``buckets``: the middle of the bucket it
    falls in (within half `BUCKET_WIDTH` of the exact value); None without any."""
    total = sum(buckets.values())
    if not total:
        return None
    seen = 0
    for b in sorted(buckets):
        seen += buckets[b]
        if seen >= q * total:
            break
    return 0.0 if b == 0 else BUCKET_FLOOR_MS * math.exp((b - 0.5) * _LOG_WIDTH)


def ranked(counts: dict[str, int]) -> list[tuple[str, int]]:
    """``counts``' items, the most frequent first, then by name."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


class Devices:
    """The devices of the associations added (`add`), with the operations of those
    associations (`outcomes`, after the associations)."""

    def __init__(self) -> None:
        self.devices: dict[tuple[str, str], Device] = {}
        #: (capture, assoc_id) -> the devices of its requestor and acceptor (a side past KEPT
        #: devices, or with neither AE title nor address, is absent)
        self.sides: dict[tuple[Any, int], dict[str, Device]] = {}
        self.more = 0  # associations with a side past KEPT devices

    def add(self, assocs: pd.DataFrame) -> None:
        # rows from each column's list: a third of the time of to_dict("records")
        for values in zip(*(assocs[c].tolist() for c in ASSOCIATION_COLUMNS), strict=True):
            r = dict(zip(ASSOCIATION_COLUMNS, values, strict=True))
            key = (r["capture"], int(r["assoc_id"]))
            sides = {}
            for role, ae, ip in (("requestor", r["calling_ae"], r["requestor_ip"]),
                                 ("acceptor", r["called_ae"], r["acceptor_ip"])):
                device = self._device(ae, ip, key)
                if device is not None:
                    sides[role] = device
                    self._note(device, role, r)
            if sides:
                self.sides[key] = sides
                for device in _each(sides):
                    device.aborted += r["ending"] == "aborted"

    def _device(self, ae: Any, ip: Any, key: tuple[Any, int]) -> Device | None:
        ident = ("" if missing(ae) else str(ae), "" if missing(ip) else str(ip))
        if ident == ("", ""):
            return None
        device = self.devices.get(ident)
        if device is None:
            if len(self.devices) >= KEPT:
                self.more += 1
                return None
            device = self.devices[ident] = Device(ident[0], ident[1], key)
        return device

    @staticmethod
    def _note(device: Device, role: str, r: Mapping[Any, Any]) -> None:
        result = r["result"]
        if role == "requestor":
            device.calls += 1
            device.refused_to_it += result in REFUSED
        else:
            device.called += 1
            device.refused_by_it += result == "rejected"
            if not missing(r["acceptor_port"]):
                keep(device.ports, int(r["acceptor_port"]))
        keep(device.versions, r[f"impl_version_{role}"])
        keep(device.class_uids, r[f"impl_class_uid_{role}"])
        if not missing(r[f"max_pdu_{role}"]):
            keep(device.pdus, int(r[f"max_pdu_{role}"]))
        at = r["requested_at"]
        if not missing(at):
            device.first = at if device.first is None or at < device.first else device.first
            device.last = at if device.last is None or at > device.last else device.last

    def outcomes(self, ops: pd.DataFrame) -> None:
        """The operations of ``ops``: each request counted to the device that sent it (its
        ``scu`` side) and to the one that answered it, by command and SOP class; each that
        failed to both."""
        # counted in a dict from each column's list: a groupby of these five columns cost
        # 4-5 ms a batch of operations whatever its size (0.3 s of the page of 395,000)
        groups: dict[tuple[Any, ...], tuple[list[int], dict[int, int]]] = {}
        failures = (ops["status_category"] == "Failure").fillna(False).tolist()
        turnarounds = ops["turnaround_ms"].tolist() if "turnaround_ms" in ops else \
            [None] * len(ops)
        for cap, aid, scu, command, sop_class, failure, took in zip(
                *(ops[c].tolist() for c in OPERATION_COLUMNS[:5]), failures, turnarounds,
                strict=True):
            group = groups.get((cap, aid, scu, command, sop_class))
            if group is None:
                group = groups[(cap, aid, scu, command, sop_class)] = ([0, 0], {})
            group[0][0] += 1
            group[0][1] += failure
            if not missing(took) and command not in RETRIEVALS:
                b = bucket(float(took))
                group[1][b] = group[1].get(b, 0) + 1
        for (cap, aid, scu, command, sop_class), ((n, failed), times) in groups.items():
            service = " ".join(str(x) for x in (command, sop_class) if not missing(x)) or "?"
            sides = self.sides.get((cap, int(aid)))
            if sides is None:
                continue
            sender = sides.get(str(scu)) if not missing(scu) else None
            receiver = sides.get("acceptor" if scu == "requestor" else "requestor") \
                if sender is not None else None
            if sender is not None:
                _count(sender.sent, service, int(n))
            if receiver is not None:
                _count(receiver.answered, service, int(n))
                for b, k in times.items():
                    receiver.responses[b] = receiver.responses.get(b, 0) + k
            for device in _each(sides):
                device.failed += int(failed)

    def summary_line(self, named: int = 4) -> str | None:
        """The summary's line: how many devices, and the software they announced, the most
        common first (``named`` of them, then how many more); None without devices."""
        if not self.devices:
            return None
        software: dict[str, int] = {}
        silent = 0
        for d in self.devices.values():
            for v in d.versions:
                software[v] = software.get(v, 0) + 1
            silent += not d.versions
        common = ranked(software)
        said = [f"{v} by {n:,}" for v, n in common[:named]]
        if len(common) > named:
            said.append(f"{len(common) - named:,} more by "
                        f"{sum(n for _, n in common[named:]):,}")
        if silent:
            said.append(f"none by {silent:,}")
        return (f"devices: {len(self.devices):,} (AE titles on hosts); software announced: "
                + ", ".join(said)
                + (f"; associations of further devices not tallied: {self.more:,}"
                   if self.more else ""))

    def ordered(self) -> list[Device]:
        """Those with trouble first (most first), then by associations, then by name."""
        return sorted(self.devices.values(), key=lambda d: (
            -d.trouble, -(d.calls + d.called), d.ae, d.ip))

    def frame(self) -> pd.DataFrame:
        rows = [{"ae_title": d.ae, "ip": d.ip, "listening_ports": sorted(d.ports),
                 "implementation_versions": list(d.versions),
                 "implementation_class_uids": list(d.class_uids),
                 "max_pdu_lengths": list(d.pdus), "requests_sent": [s for s, _ in ranked(d.sent)],
                 "requests_answered": [s for s, _ in ranked(d.answered)],
                 "responses_timed": sum(d.responses.values()),
                 "response_median_ms": quantile(d.responses, 0.5),
                 "response_p95_ms": quantile(d.responses, 0.95), "calls": d.calls,
                 "called": d.called, "refused_to_it": d.refused_to_it,
                 "refused_by_it": d.refused_by_it, "aborted": d.aborted,
                 "failed_operations": d.failed, "first_seen": d.first, "last_seen": d.last,
                 "capture": d.link[0], "assoc_id": d.link[1]} for d in self.ordered()]
        return pd.DataFrame(rows, columns=COLUMNS)
