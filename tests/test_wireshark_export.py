"""Fixture by fixture: we recover at least every data set Wireshark's own DICOM export recovers
correctly, and our Part-10 files have a valid meta header where Wireshark's is not.

Wireshark (tshark 4.0) is run twice per capture:

* ``default``: ``tshark -n -r CAP -Q --export-objects dicom,DIR`` (``dicom.export_minsize`` 4096,
  ``tcp.reassemble_out_of_order`` FALSE);
* ``tuned``: the same with ``-o dicom.export_minsize:0 -o tcp.reassemble_out_of_order:TRUE``.

How Wireshark 4.0.17 writes its export (checked on these fixtures): one file per PDV object,
named ``<frame:06d>-<n>-<label>.dcm``, where the label is the SOP Instance UID, a command name
(``C-STORE-RQ``), ``C-FIND-RQ-DATA``, ``Command`` or a SOP class name: the name says little, so
files are told apart by content. Every file is a 128-byte zero preamble, ``DICM`` and an explicit
VR little endian group 0002, then the PDV bytes. With ``export_minsize`` 0 it also writes every
command set (bytes starting with a group 0000 element): those are skipped here. (0002,0002) is the
SOP Class UID parsed from the data set with its name appended (``1.2.840.10008.5.1.4.1.1.2 (CT
Image Storage)``, not a valid UID); where the data set cannot be parsed (deflated) and for
command sets and C-FIND/C-MOVE identifiers it is Wireshark's own placeholder
``1.2.826.0.1.3680043.8.427.11.1``, a syntactically valid UID but not the object's SOP class.

An exported data set is "correct" when the bytes after its meta header hash to the
``dataset_sha256`` of a truth message whose data set is ``complete``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import struct
import subprocess
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.uid import UID

from .conftest import CAPTURES, capture_for, truth_files

#: Wireshark's DICOM export never sees inside TLS (the dissector is not handed decrypted
#: data): the TLS fixtures are compared with the clear traffic in test_tls.py instead.
TRUTHS = [t for t in truth_files() if not json.loads(t.read_text()).get("tls")]
IDS = [p.name.removesuffix(".truth.json") for p in TRUTHS]

DEFAULT_OPTS: tuple[str, ...] = ()
TUNED_OPTS: tuple[str, ...] = (
    "-o", "dicom.export_minsize:0",
    "-o", "tcp.reassemble_out_of_order:TRUE",
)
MODES = {"default": DEFAULT_OPTS, "tuned": TUNED_OPTS}
WIRESHARK_MINSIZE = 4096  # dicom.export_minsize default in Wireshark 4.0
DEFLATED = "1.2.840.10008.1.2.1.99"

# Explicit VR little endian VRs with a 2-byte reserved field and a 4-byte length.
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"}


# --------------------------------------------------------------------------------------------
# Wireshark's export files
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exported:
    """One file written by ``--export-objects dicom``."""

    name: str
    meta: dict[int, bytes]  # element number in group 0002 -> raw value
    payload_bytes: int
    sha256: str
    is_command: bool

    def meta_text(self, element: int) -> str:
        return self.meta.get(element, b"").rstrip(b"\x00 ").decode("latin-1")


def parse_export(path: Path) -> Exported:
    """Split a Wireshark export into its group 0002 and the bytes after it.

    The meta group is walked element by element (explicit VR little endian, as Wireshark
    writes it) rather than read with pydicom, so that Wireshark's invalid UI values (a UID
    with its name appended) cannot get in the way."""
    data = path.read_bytes()
    assert len(data) >= 132 and data[128:132] == b"DICM", f"{path.name}: no DICM prefix"
    pos = 132
    meta: dict[int, bytes] = {}
    while pos + 8 <= len(data):
        group, element = struct.unpack_from("<HH", data, pos)
        if group != 0x0002:
            break
        vr = data[pos + 4 : pos + 6]
        if vr in _LONG_VRS:
            (length,) = struct.unpack_from("<I", data, pos + 8)
            header = 12
        else:
            (length,) = struct.unpack_from("<H", data, pos + 6)
            header = 8
        meta[element] = data[pos + header : pos + header + length]
        pos += header + length
    payload = data[pos:]
    # A command set is always implicit VR little endian and starts with (0000,xxxx).
    is_command = len(payload) >= 8 and payload[:2] == b"\x00\x00"
    return Exported(
        name=path.name,
        meta=meta,
        payload_bytes=len(payload),
        sha256=hashlib.sha256(payload).hexdigest(),
        is_command=is_command,
    )


_WIRESHARK: dict[tuple[str, str], list[Exported]] = {}


@pytest.fixture(scope="module")
def wireshark(tshark_path: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """wireshark(capture, mode) -> the data set files (not command sets) tshark exported."""

    def run(capture: Path, mode: str) -> list[Exported]:
        key = (str(capture), mode)
        if key not in _WIRESHARK:
            out = tmp_path_factory.mktemp(f"ws_{mode}_{capture.name.replace('.', '_')}")
            target = out / "export"
            cmd = [tshark_path, "-n", "-r", str(capture), "-Q", *MODES[mode],
                   "--export-objects", f"dicom,{target}"]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, f"{' '.join(cmd)} failed: {proc.stderr}"
            files = sorted(target.iterdir()) if target.exists() else []
            parsed = [parse_export(f) for f in files if f.is_file()]
            _WIRESHARK[key] = [e for e in parsed if not e.is_command]
            shutil.rmtree(out, ignore_errors=True)  # only hashes and meta are kept
        return _WIRESHARK[key]

    return run


# --------------------------------------------------------------------------------------------
# Truth and per-fixture comparison
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TruthDataSet:
    command: str
    sop_class_uid: str | None
    sop_instance_uid: str | None
    transfer_syntax: str | None
    dataset_bytes: int
    sha256: str
    handshake: bool  # the association's A-ASSOCIATE-RQ is in the capture
    misencoded: bool = False  # not in its context's transfer syntax (encoding_mismatch)
    #: on a presentation context that was not accepted (off_context): it has no transfer syntax
    off_context: bool = False
    #: the data set's own SOP Class UID where it is not the command's (sop_mismatch)
    dataset_sop_class: str | None = None


@functools.cache
def load_truth(truth_path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(truth_path.read_text())
    return data


def complete_data_sets(truth_path: Path) -> list[TruthDataSet]:
    """Every data set the truth says the capture holds completely, with the transfer syntax
    it is in: its context's, or the encoding it was sent in (``encoding_mismatch``; native
    pixel data on a compressed context, ``native_pixel_data``, is Explicit VR Little Endian;
    a data set on a context not accepted, ``off_context``, has no context's)."""
    out = []
    truth = load_truth(truth_path)
    misencoded = {(w["assoc_index"], w["message_id"]): w["sent_as"]
                  for w in truth.get("encoding_mismatch", [])}
    sent_as = misencoded | {(w["assoc_index"], w["message_id"]): w["sent_as"]
                            for w in [*truth.get("native_pixel_data", []),
                                      *truth.get("off_context", [])]}
    off_context = {(w["assoc_index"], w["message_id"]) for w in truth.get("off_context", [])}
    own_class = {(w["assoc_index"], w["message_id"]): w["dataset_sop_class"]
                 for w in truth.get("sop_mismatch", []) if "dataset_class" in w["kinds"]}
    for index, assoc in enumerate(truth["associations"]):
        syntaxes = {c["context_id"]: c.get("transfer_syntax") for c in assoc["contexts"]}
        for msg in assoc["messages"]:
            if msg.get("dataset_sha256") and msg.get("complete") is True:
                out.append(TruthDataSet(
                    command=msg["command"],
                    sop_class_uid=msg.get("sop_class_uid"),
                    sop_instance_uid=msg.get("sop_instance_uid"),
                    transfer_syntax=sent_as.get((index, msg["message_id"]),
                                                syntaxes.get(msg["context_id"])),
                    misencoded=(index, msg["message_id"]) in misencoded,
                    off_context=(index, msg["message_id"]) in off_context,
                    dataset_sop_class=own_class.get((index, msg["message_id"])),
                    dataset_bytes=int(msg["dataset_bytes"]),
                    sha256=msg["dataset_sha256"],
                    handshake=bool(assoc["contexts"]),
                ))
    return out


def recovered(truth: list[TruthDataSet], hashes: list[str]) -> int:
    """How many truth data sets ``hashes`` covers (a multiset match: two identical data sets
    in the truth need two outputs)."""
    want = Counter(t.sha256 for t in truth)
    have = Counter(hashes)
    return sum(min(n, have[h]) for h, n in want.items())


@dataclass
class Comparison:
    fixture: str
    truth: list[TruthDataSet]
    ours: Any  # objects DataFrame
    out: Path
    ws: dict[str, list[Exported]]
    counts: dict[str, int] = field(default_factory=dict)

    def correct(self, mode: str) -> list[Exported]:
        good = {t.sha256 for t in self.truth}
        return [e for e in self.ws[mode] if e.sha256 in good]

    def wrong(self, mode: str) -> list[Exported]:
        good = {t.sha256 for t in self.truth}
        return [e for e in self.ws[mode] if e.sha256 not in good]

    def our_complete_hashes(self) -> list[str]:
        return [str(h) for h in self.ours.loc[self.ours["complete"], "sha256"]]


_COMPARISONS: dict[str, Comparison] = {}


@pytest.fixture(scope="module")
def compare(analysed: Any, wireshark: Any) -> Any:
    """compare(truth_path) -> Comparison; each capture analysed once (conftest's cache) and
    exported once per Wireshark mode."""

    def run(truth_path: Path) -> Comparison:
        name = truth_path.name.removesuffix(".truth.json")
        if name not in _COMPARISONS:
            truth = load_truth(truth_path)
            capture = capture_for(truth_path)
            ports = (truth["port_hint"],) if truth.get("port_hint") else ()
            report, out = analysed(capture, ports)
            ws = {mode: wireshark(capture, mode) for mode in MODES}
            cmp = Comparison(name, complete_data_sets(truth_path), report.objects, out, ws)
            cmp.counts = {
                "truth": len(cmp.truth),
                "ws_default": recovered(cmp.truth, [e.sha256 for e in cmp.correct("default")]),
                "ws_tuned": recovered(cmp.truth, [e.sha256 for e in cmp.correct("tuned")]),
                "ours": recovered(cmp.truth, cmp.our_complete_hashes()),
                "ws_default_wrong": len(cmp.wrong("default")),
                "ws_tuned_wrong": len(cmp.wrong("tuned")),
            }
            _COMPARISONS[name] = cmp
        return _COMPARISONS[name]

    return run


def truth_for(cmp: Comparison, sha256: str) -> TruthDataSet:
    return next(t for t in cmp.truth if t.sha256 == sha256)


def valid_uid(value: str) -> bool:
    with warnings.catch_warnings():  # pydicom warns on the invalid values it is shown here
        warnings.simplefilter("ignore")
        return bool(value) and UID(value).is_valid


def after_meta(path: Path) -> bytes:
    """The bytes of one of our Part-10 files after its meta header."""
    meta = pydicom.filereader.read_file_meta_info(path)
    offset = 128 + 4 + 12 + int(meta.FileMetaInformationGroupLength)
    return path.read_bytes()[offset:]


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


def test_tshark_has_the_preferences(tshark_path: str) -> None:
    """The two preferences the tuned run sets exist in this tshark, with the defaults
    the default run relies on."""
    proc = subprocess.run([tshark_path, "-G", "defaultprefs"], capture_output=True, text=True,
                          timeout=120, check=True)
    assert "#dicom.export_minsize: 4096" in proc.stdout
    assert "#tcp.reassemble_out_of_order: FALSE" in proc.stdout


@pytest.mark.parametrize("truth_path", TRUTHS, ids=IDS)
def test_we_recover_every_data_set_wireshark_recovers(truth_path: Path, compare: Any) -> None:
    cmp: Comparison = compare(truth_path)
    ours = Counter(cmp.our_complete_hashes())
    for mode in MODES:
        theirs = Counter(e.sha256 for e in cmp.correct(mode))
        missing = {
            h: (n, ours[h]) for h, n in theirs.items()
            if ours[h] < min(n, sum(t.sha256 == h for t in cmp.truth))
        }
        assert not missing, (
            f"{cmp.fixture}: Wireshark ({mode}) recovers data sets we do not "
            f"(sha256: (Wireshark files, our complete objects)): {missing}"
        )
    assert cmp.counts["ours"] >= cmp.counts["ws_tuned"]
    assert cmp.counts["ours"] >= cmp.counts["ws_default"]


# Fixtures without a complete C-STORE data set, and those where Wireshark exports none
# correctly (snaplen, mid_association, n_services), have nothing to compare here; the
# recovery test above covers them. hostile_uid's and hostile_values' commands carry invalid
# UIDs on purpose: we write them as sent (SPEC: from the command) and report them, so
# "valid" is not what to expect there.
def _has_complete_store(truth_path: Path) -> bool:
    data = json.loads(truth_path.read_text())
    return any(m["command"] == "C-STORE-RQ" and m.get("complete")
               for a in data["associations"] for m in a["messages"])


META_TRUTHS = [t for t in TRUTHS if _has_complete_store(t) and t.name.removesuffix(
    ".truth.json") not in ("snaplen", "mid_association", "n_services", "hostile_uid",
                           "hostile_values")]


@pytest.mark.parametrize("truth_path", META_TRUTHS,
                         ids=[t.name.removesuffix(".truth.json") for t in META_TRUTHS])
def test_our_meta_header_is_valid_where_wiresharks_is_not(truth_path: Path,
                                                          compare: Any) -> None:
    cmp: Comparison = compare(truth_path)
    stores = [e for e in cmp.correct("tuned") + cmp.correct("default")
              if truth_for(cmp, e.sha256).command == "C-STORE-RQ"]
    assert stores, f"{cmp.fixture}: Wireshark recovered no C-STORE data set correctly"
    seen: set[str] = set()
    for exp in stores:
        if exp.sha256 in seen:
            continue
        seen.add(exp.sha256)
        truth = truth_for(cmp, exp.sha256)
        rows = cmp.ours[cmp.ours["complete"] & (cmp.ours["sha256"] == exp.sha256)]
        assert len(rows), f"{cmp.fixture}: no complete object of ours for {exp.name}"
        for rel in rows["path"]:
            assert isinstance(rel, str), f"{cmp.fixture}: C-STORE object {exp.name} not written"
            path = cmp.out / rel
            ds = pydicom.dcmread(path)
            meta = ds.file_meta
            for keyword in ("MediaStorageSOPClassUID", "TransferSyntaxUID",
                            "MediaStorageSOPInstanceUID"):
                value = str(getattr(meta, keyword))
                assert valid_uid(value), f"{path.name}: {keyword} {value!r} is not a valid UID"
            assert meta.MediaStorageSOPClassUID == truth.sop_class_uid
            assert meta.MediaStorageSOPInstanceUID == truth.sop_instance_uid
            assert meta.TransferSyntaxUID == truth.transfer_syntax
            assert hashlib.sha256(after_meta(path)).hexdigest() == exp.sha256

        # Wireshark's (0002,0002) for the same object: never the object's SOP class UID as
        # a valid UID, and an invalid UID (name appended) whenever it could parse the data set.
        ws_class = exp.meta_text(0x0002)
        ws_valid = valid_uid(ws_class)
        assert not (ws_valid and ws_class == truth.sop_class_uid), (
            f"{cmp.fixture}: Wireshark's {exp.name} has a correct (0002,0002) {ws_class!r}"
        )
        if truth.transfer_syntax != DEFLATED and not truth.misencoded and not truth.off_context:
            assert not ws_valid, (
                f"{cmp.fixture}: Wireshark's {exp.name} has a valid (0002,0002) {ws_class!r}"
            )
            # Wireshark takes the SOP class from the data set, ours the command's (SPEC)
            assert ws_class.startswith(f"{truth.dataset_sop_class or truth.sop_class_uid} ("), \
                ws_class
        else:
            # Deflated, in another encoding than its context's, or on a context that was not
            # accepted: Wireshark cannot parse the data set, so it writes its placeholder SOP
            # class and instance UIDs instead of the object's.
            assert ws_class != truth.sop_class_uid
            assert exp.meta_text(0x0003) != truth.sop_instance_uid


def small_data_sets(truth_path: Path) -> list[TruthDataSet]:
    return [t for t in complete_data_sets(truth_path) if t.dataset_bytes < WIRESHARK_MINSIZE]


SMALL = [p for p in TRUTHS if small_data_sets(p)]


def test_some_fixtures_have_small_data_sets() -> None:
    names = {p.name.removesuffix(".truth.json") for p in SMALL}
    assert {"multi_store", "find_move", "transfer_syntaxes"} <= names, names


@pytest.mark.parametrize("truth_path", SMALL,
                         ids=[p.name.removesuffix(".truth.json") for p in SMALL])
def test_default_wireshark_skips_small_data_sets_we_recover(truth_path: Path,
                                                            compare: Any) -> None:
    """Data sets under dicom.export_minsize (4096) never reach the default export; we recover
    them, and so does Wireshark once the preference is 0 (where it sees the handshake)."""
    cmp: Comparison = compare(truth_path)
    small = small_data_sets(truth_path)
    default = {e.sha256 for e in cmp.ws["default"]}
    ours = set(cmp.our_complete_hashes())
    for t in small:
        assert t.sha256 not in default, (
            f"{cmp.fixture}: default Wireshark exported a {t.dataset_bytes}-byte {t.command}"
        )
        assert t.sha256 in ours, f"{cmp.fixture}: we miss a {t.dataset_bytes}-byte {t.command}"
        if t.handshake:  # Wireshark's dissector needs the A-ASSOCIATE-RQ (mid_association)
            assert t.sha256 in {e.sha256 for e in cmp.ws["tuned"]}, (
                f"{cmp.fixture}: tuned Wireshark misses a {t.dataset_bytes}-byte {t.command}"
            )
    assert cmp.counts["ws_default"] < cmp.counts["ours"]


def test_lossy_default_wireshark_recovers_fewer(compare: Any) -> None:
    cmp: Comparison = compare(CAPTURES / "lossy.truth.json")
    assert cmp.counts["truth"] > 0
    assert cmp.counts["ws_default"] < cmp.counts["ours"] == cmp.counts["truth"]
    # With out-of-order reassembly on, Wireshark gets there too: the default is what loses.
    assert cmp.counts["ws_tuned"] == cmp.counts["truth"]


def test_hole_wireshark_exports_the_damaged_data_set_we_mark_incomplete(compare: Any) -> None:
    """In ``hole`` a 61952-byte segment of the 2nd data set is missing. Both Wireshark runs
    still export a data set for it (``...-Command.dcm``, Wireshark's placeholder meta) that
    matches nothing the peer received; we report that object as incomplete and write no file.
    With out-of-order reassembly on, Wireshark also loses the 3rd object, after the hole."""
    cmp: Comparison = compare(CAPTURES / "hole.truth.json")
    ours = cmp.ours
    for mode in MODES:
        wrong = cmp.wrong(mode)
        assert len(wrong) == 1, [e.name for e in wrong]
        assert wrong[0].sha256 not in set(cmp.our_complete_hashes())
    incomplete = ours[~ours["complete"]]
    assert len(incomplete) == 1
    assert incomplete["path"].isna().all() and incomplete["problem"].notna().all()
    assert cmp.counts["ws_tuned"] < cmp.counts["ws_default"] == cmp.counts["ours"]


def test_summary_table(compare: Any) -> None:
    """Per fixture: truth data sets complete in the capture, how many Wireshark (default /
    tuned) and we recover byte-exactly, Wireshark's exports that match no truth data set, and
    how many of Wireshark's correct C-STORE files carry an invalid (0002,0002)."""
    rows = [compare(p) for p in TRUTHS]
    header = (f"{'fixture':<18} {'truth':>5} {'ws-def':>6} {'ws-tun':>6} {'ours':>5} "
              f"{'ws-wrong d/t':>12} {'ws-bad-0002':>11}")
    lines = [header, "-" * len(header)]
    for cmp in rows:
        c = cmp.counts
        stores = {e.sha256: e for e in cmp.correct("tuned") + cmp.correct("default")
                  if truth_for(cmp, e.sha256).command == "C-STORE-RQ"}
        bad = sum(not valid_uid(e.meta_text(0x0002)) for e in stores.values())
        lines.append(
            f"{cmp.fixture:<18} {c['truth']:>5} {c['ws_default']:>6} {c['ws_tuned']:>6} "
            f"{c['ours']:>5} {c['ws_default_wrong']:>5}/{c['ws_tuned_wrong']:<6} "
            f"{bad:>5}/{len(stores):<5}"
        )
    total = {k: sum(cmp.counts[k] for cmp in rows)
             for k in ("truth", "ws_default", "ws_tuned", "ours")}
    lines.append("-" * len(header))
    lines.append(f"{'total':<18} {total['truth']:>5} {total['ws_default']:>6} "
                 f"{total['ws_tuned']:>6} {total['ours']:>5}")
    print("\n" + "\n".join(lines))
    for cmp in rows:
        assert cmp.counts["ours"] >= cmp.counts["ws_tuned"], cmp.fixture
        assert cmp.counts["ours"] >= cmp.counts["ws_default"], cmp.fixture
    assert total["ours"] > total["ws_tuned"] > total["ws_default"]
