"""Which files are captures, found by their content, not their names; rotated files of one
capture in order (`stitch`); and the stable key each capture gets, built from its path below
the folder it was found in (or its file name), that names its parts in an output folder and
its objects folder: adding files to an archive renames nothing.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import CaptureError, OptionsError
from .store import safe_key
from .tshark import RING_NAME

#: Usual names of captures; a file of another name is a capture when its content says so.
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz", ".cap.gz", ".ntar",
                    ".erf", ".snoop", ".gz", ".zst", ".lz4")
#: Names that say "capture" whatever the content: such a file that cannot be read is a
#: failed capture, not a file to pass over (a ``.gz`` alone may be any compressed file).
CAPTURE_NAMES = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz", ".cap.gz", ".ntar",
                 ".erf", ".snoop")
#: First bytes of pcap (both byte orders, micro- and nanosecond) and pcapng files.
CAPTURE_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1",
                  b"\xa1\xb2\x3c\x4d", b"\x0a\x0d\x0d\x0a")
GZIP_MAGIC = b"\x1f\x8b"
#: zstd and lz4 frames: tshark reads them; the standard library cannot look inside.
OTHER_COMPRESSED = (b"\x28\xb5\x2f\xfd", b"\x04\x22\x4d\x18")

Source = str | os.PathLike[str]


@dataclass(frozen=True)
class CaptureFile:
    """One capture to analyse: its path, the label its rows carry, its stable key."""

    path: Path
    label: str
    key: str
    size: int
    mtime_ns: int
    #: the following files of a ring-buffer or split set, analysed with this one
    more: tuple[CaptureFile, ...] = ()

    @property
    def files(self) -> tuple[CaptureFile, ...]:
        return (self, *self.more)

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)


@dataclass
class Discovery:
    captures: list[CaptureFile]
    skipped: list[tuple[Path, str]]  # files in a folder that are not captures, and why


def capture_kind(path: Path) -> str | None:
    """What a file's first bytes say it is: ``capture``, or why not (None: can't tell)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        return f"unreadable: {exc.strerror}"
    if head in CAPTURE_MAGICS:
        return "capture"
    if head[:2] == GZIP_MAGIC:
        try:
            with gzip.open(path, "rb") as g:
                inner = g.read(4)
        except (OSError, EOFError):
            return "gzip that cannot be read"
        return "capture" if inner in CAPTURE_MAGICS else "gzip, but not a capture inside"
    if head in OTHER_COMPRESSED:
        return None
    return "not a capture (unknown content)"


def _key(path: Path, root: Path | None) -> str:
    rel = path.relative_to(root) if root is not None else Path(path.name)
    return safe_key("__".join(rel.parts))


#: tcpdump -C rotation: trace.pcap, trace.pcap1, trace.pcap2 ...
_ROTATED = re.compile(r"(?P<base>.+\.(?:pcap|pcapng|cap))(?P<n>\d*)")


def stitch(captures: list[CaptureFile]) -> list[CaptureFile]:
    """Files of one ring-buffer or split set (dumpcap's and editcap's numbered names,
    tcpdump's rotation) in the same folder become one capture: the first file, with the
    others in ``more``, in the set's order; everything else stays as it is."""
    sets: dict[tuple[str, str, str, str], list[tuple[int, CaptureFile]]] = {}
    for cap in captures:
        for kind, pattern in (("numbered", RING_NAME), ("rotated", _ROTATED)):
            m = pattern.fullmatch(cap.path.name)
            if m:
                ext = m.groupdict().get("ext") or ""
                key = (kind, str(cap.path.parent), m["base"], ext)
                sets.setdefault(key, []).append((int(m["n"] or 0), cap))
                break
    heads: dict[str, CaptureFile] = {}
    members: set[str] = set()
    for group in sets.values():
        if len(group) < 2:
            continue
        ordered = [c for _, c in sorted(group, key=lambda nc: nc[0])]
        heads[ordered[0].key] = ordered[0]
        members.update(c.key for c in ordered[1:])
        heads[ordered[0].key] = CaptureFile(
            ordered[0].path, ordered[0].label, ordered[0].key, ordered[0].size,
            ordered[0].mtime_ns, tuple(ordered[1:]))
    return [heads.get(c.key, c) for c in captures if c.key not in members]


def discover(sources: Source | Sequence[Source]) -> Discovery:
    """Files as given; folders searched recursively for files whose content is a capture
    (pcap, pcapng, gzip of either; zstd/lz4 by name), so that rotated ``trace.pcap1`` files
    are found and a stray ``.gz`` log is skipped, not fatal."""
    items = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    if not items:
        raise OptionsError("no capture given")
    found: list[CaptureFile] = []
    skipped: list[tuple[Path, str]] = []
    keys: set[str] = set()
    for item in items:
        path = Path(item)
        if path.is_dir():
            inside = []
            for p in sorted(q for q in path.rglob("*") if q.is_file()):
                if any(part.startswith(".tshark-dicom") for part in p.parts):
                    continue
                kind = capture_kind(p)
                named = p.name.lower().endswith(CAPTURE_NAMES)
                if kind == "capture" or named or (kind is None and p.name.lower().endswith(
                        CAPTURE_SUFFIXES)):
                    inside.append((p, path))  # a capture by name that is not one: failed row
                elif p.name.lower().endswith(CAPTURE_SUFFIXES):
                    skipped.append((p, kind or "not a capture"))
            if not inside:
                raise CaptureError(f"{path}: folder holds no capture files")
            pairs: list[tuple[Path, Path | None]] = list(inside)
        else:
            pairs = [(path, None)]
        for p, root in pairs:
            key = base = _key(p, root)
            n = 2
            while key in keys:
                key, n = f"{base}-{n}", n + 1
            keys.add(key)
            try:
                st = p.stat()
                size, mtime = st.st_size, st.st_mtime_ns
            except OSError:
                size, mtime = 0, 0
            found.append(CaptureFile(p, str(p), key, size, mtime))
    return Discovery(found, skipped)


def content_hash(path: Path) -> str:
    """SHA-256 of a capture's bytes (``--verify``), read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
