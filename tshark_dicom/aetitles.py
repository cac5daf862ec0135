"""The AE titles of a capture's associations against the hosts that used them: one AE title on
several hosts is a finding (``ae-title-shared``).

A PACS tells DICOM devices apart by AE title: who may store or query, where a C-MOVE sends
its images (the AE title is looked up in its table of destinations). Two devices left with a
tool's default title (dcmtk's ANY-SCP, STORESCU; pynetdicom's PYNETDICOM) or a copied
configuration cannot be told apart: the archive sends one device's images to the other, or
refuses one of them. The evidence is in the traffic: the calling AE title of accepted
associations against their requestor's address, the called AE title against the acceptor's.

Bounded: past `TITLES_KEPT` titles and `HOSTS_KEPT` hosts a title, nothing more is remembered
(the counts stay right for what is kept), so memory stays flat on a day of traffic.
"""

from __future__ import annotations

from .association import Association
from .records import FindingRecord

#: AE titles remembered per capture and role.
TITLES_KEPT = 10_000
#: Hosts remembered per AE title (the finding names the first few).
HOSTS_KEPT = 16
#: Hosts named in a finding.
HOSTS_NAMED = 4


class AeTitles:
    """Calling AE titles against requestor addresses, called ones against acceptor
    addresses, over the accepted associations of a capture: title -> host -> [associations,
    first frame]."""

    def __init__(self) -> None:
        self.calling: dict[str, dict[str, list[int]]] = {}
        self.called: dict[str, dict[str, list[int]]] = {}

    def add(self, assoc: Association) -> None:
        if assoc.result != "accepted" or assoc.requestor is None or assoc.acceptor is None:
            return
        frame = assoc.requested_frame or 0
        for titles, title, host in ((self.calling, assoc.calling_ae, assoc.requestor[0]),
                                    (self.called, assoc.called_ae, assoc.acceptor[0])):
            if not title:
                continue
            hosts = titles.get(title)
            if hosts is None:
                if len(titles) >= TITLES_KEPT:
                    continue
                hosts = titles[title] = {}
            seen = hosts.get(host)
            if seen is not None:
                seen[0] += 1
            elif len(hosts) < HOSTS_KEPT:
                hosts[host] = [1, frame]

    def findings(self) -> list[tuple[None, FindingRecord]]:
        """One finding per AE title used on more than one host: a warning for a calling AE
        title (devices the acceptor cannot tell apart), a note for a called one (an SCU or
        archive that knows the title reaches one of them, by its own configuration)."""
        out: list[tuple[None, FindingRecord]] = []
        for role, titles in (("calling", self.calling), ("called", self.called)):
            for title, used in titles.items():
                if len(used) < 2:
                    continue
                hosts = sorted(used.items(), key=lambda kv: kv[1][1])
                named = ", ".join(f"{host} ({n} association{'s' if n > 1 else ''})"
                                  for host, (n, _) in hosts[:HOSTS_NAMED])
                more = len(hosts) - HOSTS_NAMED
                named += f" and {more} more" if more > 0 else ""
                frame = hosts[1][1][1]  # where the second host first used it
                if role == "calling":
                    text = (
                        f"{len(hosts)} hosts called with the AE title {title}: {named}; an "
                        "acceptor tells DICOM devices apart by AE title (who may store or "
                        "query, where a C-MOVE sends its images), so it cannot tell these "
                        "apart, unless they are nodes of one system: give each device its own "
                        "AE title (a tool's default one, such as STORESCU, is the usual cause)")
                    severity = "warning"
                else:
                    text = (
                        f"{len(hosts)} hosts answered as the AE title {title}: {named}; an SCU "
                        "or an archive that knows the title (a C-MOVE destination) reaches "
                        "whichever its configuration names, unless they are nodes of one "
                        "system: give each SCP its own AE title (a tool's default one, such as "
                        "dcmtk's ANY-SCP, is the usual cause)")
                    severity = "note"
                out.append((None, FindingRecord(None, frame, severity, "ae-title-shared",
                                                text)))
        return out


__all__ = ["HOSTS_KEPT", "TITLES_KEPT", "AeTitles"]
