"""tshark-dicom: see what happened in DICOM network traffic.

    import tshark_dicom
    report = tshark_dicom.analyze("capture.pcapng", objects_dir="out/objects")
    report.associations, report.presentation_contexts, report.messages, report.objects,
    report.findings
    report.write("out", format="parquet")

Files written by this tool are for analysis only, never for clinical use.
"""

from __future__ import annotations

import importlib as _importlib
import logging
import os
import typing as _typing
from collections.abc import Sequence

from .errors import (
    CaptureError,
    HelperError,
    OptionsError,
    OutputError,
    TsharkDicomError,
    TsharkError,
    TsharkNotFoundError,
)

if _typing.TYPE_CHECKING:
    from .redact import Redaction
    from .report import Report, load
    from .schemas import SCHEMAS, TABLES

__version__ = "0.1.0"

__all__ = [
    "CaptureError",
    "HelperError",
    "OptionsError",
    "OutputError",
    "Redaction",
    "Report",
    "SCHEMAS",
    "TABLES",
    "TsharkDicomError",
    "TsharkError",
    "TsharkNotFoundError",
    "__version__",
    "analyze",
    "compare",
    "load",
    "watch",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())


class _CompiledGuard:
    """Decides, on the first import of a module compiled by setup.py (mypyc), whether the
    compiled modules may be used: only if each was built from the source beside it (the
    SHA-256 in the generated ``_compiled.py``) and ``TSHARK_DICOM_PURE`` is not set.
    Otherwise every compiled module is imported from its ``.py`` instead, all together
    (compiled modules call each other natively: a compiled one cannot take a class of a
    pure one), with one warning when sources changed since the build. Cheap until then:
    ``import tshark_dicom`` and ``--version`` import no compiled module (a meta path finder,
    PEP 451)."""

    def __init__(self, directory: str, built: dict[str, str]) -> None:
        self.directory = directory
        self.built = built  # module name -> its extension module's file, beside the source
        self.pure: bool | None = None  # undecided until the first of them is imported

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> _typing.Any:
        package, _, name = fullname.rpartition(".")
        if package != __name__ or name not in self.built:
            return None
        if self.pure is None:
            self.pure = self._decide()
        source = os.path.join(self.directory, name + ".py")
        from importlib.util import spec_from_file_location

        if not self.pure or not os.path.exists(source):  # the extension module beside it
            return spec_from_file_location(fullname, os.path.join(self.directory,
                                                                  self.built[name]))
        return spec_from_file_location(fullname, source)

    def _record(self) -> dict[str, str]:
        """MODULES of the ``_compiled.py`` in this directory, read as a file: the record
        beside these sources, never one another finder (an editable install's) would
        import under the same name."""
        import ast

        try:
            with open(os.path.join(self.directory, "_compiled.py"), encoding="utf-8") as f:
                tree = ast.parse(f.read())
        except (OSError, SyntaxError, ValueError):
            return {}
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "MODULES" for t in node.targets):
                try:
                    value = ast.literal_eval(node.value)
                except ValueError:
                    return {}
                return {str(k): str(v) for k, v in value.items()} if isinstance(
                    value, dict) else {}
        return {}

    def _decide(self) -> bool:
        if os.environ.get("TSHARK_DICOM_PURE", "") not in ("", "0"):
            return True
        modules = self._record()
        import hashlib
        import warnings

        if not modules:
            warnings.warn("tshark_dicom: compiled modules without the record of their build "
                          "(_compiled.py): using the pure-Python modules (rebuild with "
                          "`pip install -e .`)", RuntimeWarning, stacklevel=2)
            return True
        changed = []
        digest: str | None
        for name in sorted(self.built):
            source = os.path.join(self.directory, name + ".py")
            try:
                with open(source, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            except OSError:
                digest = modules.get(name)  # no source to fall back on: keep the build's
            if digest != modules.get(name):
                changed.append(name + ".py")
        if not changed:
            return False
        warnings.warn(f"tshark_dicom: {', '.join(changed)} changed since the compiled modules "
                      "were built: using the pure-Python modules (rebuild with "
                      "`pip install -e .`, or set TSHARK_DICOM_PURE=1)", RuntimeWarning,
                      stacklevel=2)
        return True


def _install_guard() -> None:
    import _imp

    here = os.path.dirname(os.path.abspath(__file__))
    suffixes = tuple(_imp.extension_suffixes())
    try:
        names = os.listdir(here)
    except OSError:
        return
    built: dict[str, str] = {}
    for suffix in suffixes:  # in the order the import system tries them
        for n in names:
            stem = n[:-len(suffix)]
            if n.endswith(suffix) and "." not in stem and not stem.endswith("__mypyc"):
                built.setdefault(stem, n)
    if built:
        import sys

        sys.meta_path.insert(0, _CompiledGuard(here, built))


_install_guard()

#: Public names imported on first use, so that ``import tshark_dicom`` (and ``tshark-dicom
#: --version``) does not pay for pandas and pyarrow until they are needed (PEP 562).
_LAZY = {"Redaction": "redact", "Report": "report", "load": "report", "SCHEMAS": "schemas",
         "TABLES": "schemas"}


def __getattr__(name: str) -> _typing.Any:
    if name in _LAZY:
        value = getattr(_importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def compare(first: _typing.Any, second: _typing.Any, *, ports: Sequence[int] = (),
            tshark: str | None = None,
            tls_keylogs: Sequence[str | os.PathLike[str]] = (),
            tls_ports: Sequence[int] = ()) -> _typing.Any:
    """Two captures of the same traffic taken at two points of its path (README, "Two
    capture points"): each a capture file, an OUT folder written by analyze, or a `Report`;
    ``tls_keylogs`` decrypt DICOM over TLS in the captures (as for `analyze`).
    Returns a `twopoint.Comparison`: ``associations``, ``messages`` and ``findings`` frames,
    ``offset_ms`` (B's clock minus A's), ``transit_ms``, and ``write(OUT)``."""
    from .twopoint import compare_sources

    return compare_sources(first, second, ports=ports, tshark=tshark,
                           tls_keylogs=tls_keylogs, tls_ports=tls_ports)


def watch(interface: str, *, save: str | os.PathLike[str] | None = None,
          capture_filter: str | None = None, duration: float | None = None,
          packets: int | None = None, ports: Sequence[int] = (), tshark: str | None = None,
          on_association: _typing.Any = None, stop: _typing.Any = None,
          on_start: _typing.Any = None, on_attempt: _typing.Any = None,
          file_size_mb: int | None = None, files: int | None = None) -> _typing.Any:
    """Capture on ``interface`` (dumpcap) and analyse as the packets come (README,
    "Watching an interface"): ``on_association`` hears of each DICOM association as soon
    as it ended, and again where a C-MOVE's end or the capture's end added findings (a
    `liveview.WatchedAssociation`; ``lines()`` tells it, ``as_json()`` gives it as a dict).
    Ends after ``duration`` seconds, ``packets`` packets, or when the ``threading.Event``
    ``stop`` is set; ``on_start()`` is called once dumpcap captures; ``on_attempt`` hears
    of each connection to a DICOM service that never opened. ``save``: a pcap file for the
    packets (analyze it for the tables); with ``file_size_mb`` a set of files of that size
    (dumpcap's ring buffer), of which ``files`` are kept. Returns a `liveview.Watched`:
    packets, dumpcap's drops, associations, the capture's findings, the saved files."""
    from .liveview import watch as watch_interface

    return watch_interface(interface, save=save, capture_filter=capture_filter,
                           duration=duration, packets=packets, ports=ports, tshark=tshark,
                           on_association=on_association, stop=stop, on_start=on_start,
                           on_attempt=on_attempt, file_size_mb=file_size_mb, files=files)


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
    redact: bool | Redaction = False,
    shared: bool = False,
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
    ``redact``: replace patient-identifying values by keyed hashes in every table (True:
    ``Redaction.make()``, keyed by ``$TSHARK_DICOM_REDACT_KEY`` or a random key; or a
    `Redaction` for a given key, UIDs, AE titles and addresses); no objects are then
    written (README, "Patient data"); ``shared``: objects readable as the umask allows
    (default: by their owner only, 0600 files in 0700 folders);
    ``tls_keylogs``: TLS key logs (NSS key log format, as SSLKEYLOGFILE writes them) that
    decrypt DICOM over TLS (secrets embedded in a pcapng are used without them);
    ``tls_ports``: DICOM TLS ports besides 2762 (shown without keys; README, "DICOM over TLS").
    Raises a `TsharkDicomError` subclass when a capture cannot be analysed at all.
    """
    from .batch import run
    from .redact import Redaction
    from .store import output_mode

    redaction = Redaction.make() if redact is True else redact or None
    with output_mode(shared=shared or objects_dir is None):
        return run(captures, objects_dir=objects_dir, ports=ports, jobs=jobs, tshark=tshark,
                   cross_check=cross_check, engine=engine, no_stitch=not stitch,
                   redact=redaction, tls_keylogs=tls_keylogs, tls_ports=tls_ports)
