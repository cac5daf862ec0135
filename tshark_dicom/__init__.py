"""tshark-dicom: see what happened in DICOM network traffic.

    import tshark_dicom
    report = tshark_dicom.analyze("capture.pcapng", objects_dir="out/objects")
    report.associations, report.presentation_contexts, report.messages, report.objects,
    report.findings
    report.write("out", format="parquet")

Files written by this tool are for analysis only, never for clinical use.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from .batch import run
from .errors import (
    CaptureError,
    OptionsError,
    TsharkDicomError,
    TsharkError,
    TsharkNotFoundError,
)
from .report import Report, load
from .tables import SCHEMAS, TABLES

__version__ = "0.1.0"

__all__ = [
    "CaptureError",
    "OptionsError",
    "Report",
    "SCHEMAS",
    "TABLES",
    "TsharkDicomError",
    "TsharkError",
    "TsharkNotFoundError",
    "__version__",
    "analyze",
    "load",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())


def analyze(
    captures: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    objects_dir: str | os.PathLike[str] | None = None,
    ports: Sequence[int] = (),
    jobs: int = 1,
    tshark: str | None = None,
    cross_check: bool = False,
    engine: str = "auto",
    stitch: bool = True,
    tls_keylogs: Sequence[str | os.PathLike[str]] = (),
    tls_ports: Sequence[int] = (),
) -> Report:
    """Analyse one capture, a list of them, or a folder (recursively).

    ``objects_dir``: where reconstructed Part-10 files go (none are written without it);
    ``ports``: also decode streams on these TCP ports whose association setup is not in the
    capture; ``tshark``: the tshark executable (default: ``$TSHARK``, then PATH);
    ``cross_check``: also run Wireshark's DICOM dissector and report where it disagrees;
    ``engine``: ``auto`` (default), ``raw`` or ``ek`` (see README, "How it works");
    ``stitch``: analyse the files of a ring-buffer or split set as one capture;
    ``tls_keylogs``: TLS key logs (NSS key log format, as SSLKEYLOGFILE writes them) that
    decrypt DICOM over TLS (secrets embedded in a pcapng are used without them);
    ``tls_ports``: DICOM TLS ports besides 2762 (shown without keys; README, "DICOM over TLS").
    Raises a `TsharkDicomError` subclass when a capture cannot be analysed at all.
    """
    return run(captures, objects_dir=objects_dir, ports=ports, jobs=jobs, tshark=tshark,
               cross_check=cross_check, engine=engine, no_stitch=not stitch,
               tls_keylogs=tls_keylogs, tls_ports=tls_ports)
