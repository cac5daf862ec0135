#!/usr/bin/env python3
"""What decrypting DICOM over TLS costs: `analyze` of a >= 100 MB TLS capture with its key
log against `analyze` of the same traffic in clear, in one process, alternating runs
(A B A B ...). Not run by the tests.

    sudo python3 benchmarks/tls_cost.py             # make the captures if missing, 3 pairs
    python3 benchmarks/tls_cost.py --pairs 5 --skip-make
    python3 benchmarks/tls_cost.py --extract        # also time the tshark extraction
                                                    # alternatives (follow tap vs fields)
    python3 benchmarks/tls_cost.py --no-embedded    # without the embedded-secrets row

Then keys embedded against a key log: a site-like capture (``tls_site.pcapng``: the TLS
capture merged with run.py's ``store_200mb``, clear DICOM beside TLS) analysed with
``--tls-keylog`` and, alternately, as ``editcap --inject-secrets`` left it
(``tls_site_keys.pcapng``, the secrets before the interface): target <= 1.25x, the same
tables. Before raw_conversion's second way the embedded one went to the ek engine.

The captures (in ``$TSHARK_DICOM_BENCH_DIR``, default ``/var/tmp/tshark-dicom-bench/``):
``tls_100mb.pcapng`` with ``tls_100mb.keys`` and ``tls_100mb_clear.pcapng``, each one
association of pynetdicom BENCH-SCU -> pynetdicom BENCH-SCP on loopback (TLS 1.3 on port
11790, clear on 11791) carrying the same 26 synthetic 4 MiB multi-frame objects (noise
pixels built with numpy from a fixed seed; no patient data). The SCU writes the key log
(``SSLContext.keylog_filename``); the certificates are made with openssl in a scratch folder.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(os.environ.get("TSHARK_DICOM_BENCH_DIR", "/var/tmp/tshark-dicom-bench"))
ROOT = Path(__file__).resolve().parent.parent
TLS_PORT, CLEAR_PORT = 11790, 11791
OBJECTS, FRAMES, SIZE = 26, 8, 512  # 26 x 4 MiB: 110 MB
NAME = "tls_100mb"
VERSION = 2  # of the captures; bump when what they hold changes


def _paths() -> tuple[Path, Path, Path, Path]:
    return (BENCH_DIR / f"{NAME}.pcapng", BENCH_DIR / f"{NAME}.keys",
            BENCH_DIR / f"{NAME}_clear.pcapng", BENCH_DIR / f"{NAME}.json")


def _objects(work: Path) -> list[Path]:
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    rng = np.random.default_rng(20241205)
    sop_class = "1.2.840.10008.5.1.4.1.1.7.3"  # Multi-frame Grayscale Word SC
    files = []
    for i in range(OBJECTS):
        uid = generate_uid(entropy_srcs=["tshark-dicom", "tls_cost", str(i)])
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = sop_class, uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, uid
        ds.StudyInstanceUID = generate_uid(entropy_srcs=["tshark-dicom", "tls_cost", "study"])
        ds.SeriesInstanceUID = generate_uid(entropy_srcs=["tshark-dicom", "tls_cost", "series"])
        ds.PatientName, ds.PatientID, ds.Modality = "Synthetic^Bench", "SYNTH-TLS", "OT"
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.NumberOfFrames, ds.Rows, ds.Columns = FRAMES, SIZE, SIZE
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = rng.integers(0, 4096, (FRAMES, SIZE, SIZE), dtype=np.uint16).tobytes()
        path = work / f"obj{i:02d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files


def _pki(work: Path) -> tuple[Path, Path, Path]:
    def ossl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=work, check=True, capture_output=True)

    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
         "-days", "30", "-subj", "/CN=bench CA")
    (work / "ext").write_text("subjectAltName=DNS:bench-scp.test\n")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
         "-subj", "/CN=bench-scp.test")
    ossl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "srv.pem", "-days", "30", "-extfile", "ext")
    return work / "ca.pem", work / "srv.pem", work / "srv.key"


def _session(files: list[Path], port: int, capture: Path, work: Path, keys: Path | None) -> None:
    from pynetdicom import AE, AllStoragePresentationContexts, evt

    tls_args = server_ctx = None
    if keys is not None:
        ca, cert, key = _pki(work)
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(cert, key)
        client_ctx = ssl.create_default_context(cafile=str(ca))
        client_ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        client_ctx.keylog_filename = str(keys)
        tls_args = (client_ctx, "bench-scp.test")
    scp = AE(ae_title="BENCH-SCP")
    scp.supported_contexts = AllStoragePresentationContexts
    server = scp.start_server(("127.0.0.1", port), block=False, ssl_context=server_ctx,
                              evt_handlers=[(evt.EVT_C_STORE, lambda event: 0x0000)])
    dumpcap = None
    try:
        dumpcap = subprocess.Popen(["dumpcap", "-q", "-i", "lo", "-B", "256", "-f",
                                    f"tcp port {port}", "-w", str(capture)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.5)
        scu = AE(ae_title="BENCH-SCU")
        scu.add_requested_context("1.2.840.10008.5.1.4.1.1.7.3", "1.2.840.10008.1.2.1")
        assoc = scu.associate("127.0.0.1", port, ae_title="BENCH-SCP", tls_args=tls_args)
        assert assoc.is_established
        for i, f in enumerate(files, 1):
            status = assoc.send_c_store(f, msg_id=i)
            assert status.get("Status") == 0, status
        assoc.release()
        time.sleep(1.0)
    finally:
        if dumpcap is not None:
            dumpcap.send_signal(2)
            dumpcap.wait(30)
        server.shutdown()


def make(force: bool = False) -> None:
    tls, keys, clear, manifest = _paths()
    if not force and manifest.exists() and json.loads(manifest.read_text()).get(
            "version") == VERSION and tls.exists() and clear.exists() and keys.exists():
        return
    if os.geteuid() != 0:
        raise SystemExit("making the captures needs root (dumpcap on lo); or --skip-make")
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="tls-cost-"))
    try:
        started = time.monotonic()
        files = _objects(work)
        keys.unlink(missing_ok=True)
        _session(files, TLS_PORT, tls, work, keys)
        _session(files, CLEAR_PORT, clear, work, None)
        for p in (tls, clear, keys):
            os.chmod(p, 0o644)
        manifest.write_text(json.dumps({"version": VERSION, "tls_bytes": tls.stat().st_size,
                                        "clear_bytes": clear.stat().st_size,
                                        "made_s": round(time.monotonic() - started, 1)}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


_HASHES: dict[bool, list[str]] = {}


def _once(capture: Path, keys: Path | None) -> float:
    """One analysis; checks that every object is complete and that the TLS and the clear
    capture give the same objects (SHA-256 of the data sets, in order)."""
    import tshark_dicom

    started = time.perf_counter()
    report = tshark_dicom.analyze(capture, tls_keylogs=[keys] if keys else ())
    elapsed = time.perf_counter() - started
    objs = report.objects
    assert len(objs) == OBJECTS and bool(objs["complete"].all()), objs
    _HASHES[keys is not None] = list(objs["sha256"])
    if len(_HASHES) == 2:
        assert _HASHES[True] == _HASHES[False], "TLS and clear objects differ"
    return elapsed


def child(capture: str, keys: str) -> None:
    """Run once and print the peak RSS (MiB) of this process and of its largest child
    (a tshark)."""
    _once(Path(capture), Path(keys) if keys != "-" else None)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
          resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)


def extract(tls: Path, keys: Path, tshark: str = "tshark") -> None:
    """Time the ways of getting the decrypted bytes out of tshark (output to /dev/null)."""
    ways = {
        "follow,tls,raw (one stream)": [tshark, "-r", str(tls), "-q", "-o",
                                        f"tls.keylog_file:{keys}", "-z", "follow,tls,raw,0"],
        "follow,tls,yaml (one stream)": [tshark, "-r", str(tls), "-q", "-o",
                                         f"tls.keylog_file:{keys}", "-z", "follow,tls,yaml,0"],
        "fields data.data (all streams)": [
            tshark, "-r", str(tls), "-n", "-o", f"tls.keylog_file:{keys}", "--disable-protocol",
            "dicom", "-Y", "tls", "-T", "fields", "-e", "frame.number", "-e", "tcp.stream",
            "-e", "data.data"],
        "tshark-dicom's pass (fields + follow,tls,yaml)": None,
    }
    for name, argv in ways.items():
        if argv is None:
            from tshark_dicom.tls import tls_argv
            from tshark_dicom.tshark import find_tshark

            argv = tls_argv(find_tshark(tshark), tls, [keys], streams=[0])
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           check=True)
            times.append(time.perf_counter() - t0)
        print(f"  {name}: {min(times):.2f} s (best of 2)")


def _site() -> tuple[Path, Path] | None:
    """``tls_site.pcapng`` (TLS and clear DICOM) and its copy with the keys embedded, made
    with mergecap and editcap if missing; None without run.py's store_200mb."""
    tls, keys, _, _ = _paths()
    store = BENCH_DIR / "store_200mb.pcapng"
    site, embedded = BENCH_DIR / "tls_site.pcapng", BENCH_DIR / "tls_site_keys.pcapng"
    if not store.exists():
        return None
    if not site.exists() or site.stat().st_mtime < max(tls.stat().st_mtime,
                                                       store.stat().st_mtime):
        subprocess.run(["mergecap", "-w", str(site), str(tls), str(store)], check=True)
        embedded.unlink(missing_ok=True)
    if not embedded.exists():
        subprocess.run(["editcap", "--inject-secrets", f"tls,{keys}", str(site),
                        str(embedded)], check=True)
    return site, embedded


def embedded_row(pairs: int) -> None:
    """Keys embedded against a key log, alternating, tables only (the same tables)."""
    import tshark_dicom

    made = _site()
    if made is None:
        print("embedded secrets: skipped (no store_200mb.pcapng: run benchmarks/run.py first)")
        return
    site, embedded = made
    _, keys, _, _ = _paths()
    times: dict[str, list[float]] = {"keylog": [], "embedded": []}
    seen: dict[str, tuple[list[str], int, int]] = {}
    for _ in range(pairs):
        for variant in times:
            started = time.perf_counter()
            report = (tshark_dicom.analyze(site, tls_keylogs=[keys])
                      if variant == "keylog" else tshark_dicom.analyze(embedded))
            times[variant].append(time.perf_counter() - started)
            seen[variant] = (report.captures["engine"].tolist(), len(report.messages),
                             int(report.associations["tls_decrypted"].fillna(False).sum()))
    assert seen["keylog"][1:] == seen["embedded"][1:], seen
    a, b = statistics.median(times["embedded"]), statistics.median(times["keylog"])
    verdict = "ok  " if a <= 1.25 * b else "MISS"
    print(f"{verdict} {embedded.name} ({embedded.stat().st_size / 2**20:.0f} MiB, keys "
          f"embedded): {a:.2f} s, engine {seen['embedded'][0][0]}; with --tls-keylog "
          f"{b:.2f} s, engine {seen['keylog'][0][0]} (median of {pairs}): {a / b:.2f}x "
          f"(target <= 1.25x); {seen['embedded'][1]} messages, "
          f"{seen['embedded'][2]} decrypted association(s) either way")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--skip-make", action="store_true")
    ap.add_argument("--force", action="store_true", help="remake the captures")
    ap.add_argument("--extract", action="store_true",
                    help="also time tshark's extraction alternatives")
    ap.add_argument("--no-embedded", action="store_true",
                    help="without the keys-embedded against key-log row")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    if args.child:
        child(*args.child)
        return 0
    if not args.skip_make:
        make(args.force)
    tls, keys, clear, _ = _paths()
    print(f"{tls.name}: {tls.stat().st_size / 2**20:.1f} MiB; {clear.name}: "
          f"{clear.stat().st_size / 2**20:.1f} MiB")
    if args.extract:
        extract(tls, keys)
    _once(clear, None)  # warm-up: imports, caches
    dec, plain = [], []
    for _ in range(args.pairs):
        dec.append(_once(tls, keys))
        plain.append(_once(clear, None))
    ratios = [a / b for a, b in zip(dec, plain, strict=True)]
    peaks = {}
    for variant, cap, k in (("tls", tls, str(keys)), ("clear", clear, "-")):
        out = subprocess.run([sys.executable, __file__, "--child", str(cap), k],
                             capture_output=True, text=True, check=True, cwd=ROOT)
        own, kid = out.stdout.strip().splitlines()[-1].split()
        peaks[variant] = (float(own), float(kid))
    print(f"analyze TLS with key log {statistics.median(dec):.2f} s, same traffic in clear "
          f"{statistics.median(plain):.2f} s (median of {args.pairs}); TLS/clear "
          f"{statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f}); "
          f"peak RSS: Python {peaks['tls'][0]:.0f} MiB TLS, {peaks['clear'][0]:.0f} MiB clear; "
          f"largest tshark {peaks['tls'][1]:.0f} MiB TLS, {peaks['clear'][1]:.0f} MiB clear")
    if not args.no_embedded:
        embedded_row(args.pairs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
