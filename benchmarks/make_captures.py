#!/usr/bin/env python3
"""Make (or reuse) the benchmark captures for tshark-dicom.

Real peers only: dcmtk ``/usr/bin/storescu`` -> ``/usr/bin/storescp`` (absolute paths on purpose:
pynetdicom installs console scripts of the same names that shadow dcmtk on PATH), across a veth
pair between two network namespaces that this script creates and removes itself (MTU 1500,
offloads off, so TCP segments carry <= 1448 bytes like on a real wire).  ``dumpcap`` captures
inside the server namespace.  Host interfaces are never touched.

Captures (in ``$TSHARK_DICOM_BENCH_DIR``, default ``/var/tmp/tshark-dicom-bench/``):

  store_200mb.pcapng             >= 200 MiB of C-STORE traffic, several associations
  store_1gb.pcapng               >= 1 GiB of the same kind
  store_4gb.pcapng               >= 4 GiB of the same kind (by name only: not in the default set)
  mixed_200mb.pcapng             ~200 MiB: ~1/10 DICOM, ~9/10 HTTP bulk downloads, interleaved
  mixed_200mb_dicom_only.pcapng  the DICOM packets (tcp.port == 11112) of mixed_200mb only

Each capture gets a ``<name>.pcapng.json`` manifest; a capture is reused when its manifest
matches this generator's version and the file's size.  ``--force`` regenerates.

Usage: python3 benchmarks/make_captures.py [NAME ...] [--force] [--list]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

GENERATOR_VERSION = 6
MiB = 1024 * 1024

STORESCU = "/usr/bin/storescu"
STORESCP = "/usr/bin/storescp"
DUMPCAP = "/usr/bin/dumpcap"
TSHARK = "/usr/bin/tshark"
CAPINFOS = "/usr/bin/capinfos"
IP = shutil.which("ip") or "/usr/sbin/ip"
ETHTOOL = shutil.which("ethtool") or "/usr/sbin/ethtool"

NS_CLI, NS_SRV = "tdcb-cli", "tdcb-srv"
IF_CLI, IF_SRV = "tdcb-c", "tdcb-s"
ADDR_CLI, ADDR_SRV, PREFIX = "10.78.0.1", "10.78.0.2", 24
DICOM_PORT = 11112
HTTP_PORT = 8080  # registered to Wireshark's HTTP dissector: realistic cost
SCP_AET = "BENCHSCP"

# Object sizes: 512 x 512 x 16 bit frames (512 KiB each).
FRAME_BYTES = 512 * 512 * 2
STORE_FRAMES = (4, 8, 12)  # 2, 4, 6 MiB objects, cycled
MIXED_FRAMES = (4, 8)  # 2, 4 MiB in the mixed capture
OBJECTS_PER_ASSOC = 10

CAPTURES = {
    "store_200mb": {"kind": "store", "target_bytes": 200 * MiB},
    "store_1gb": {"kind": "store", "target_bytes": 1024 * MiB},
    "store_4gb": {"kind": "store", "target_bytes": 4096 * MiB},
    "mixed_200mb": {"kind": "mixed", "target_bytes": 200 * MiB, "other_per_dicom": 9},
    "mixed_200mb_dicom_only": {
        "kind": "filter",
        "source": "mixed_200mb",
        "filter": f"tcp.port=={DICOM_PORT}",
    },
}
DEFAULT_ORDER = ["store_200mb", "store_1gb", "mixed_200mb", "mixed_200mb_dicom_only"]


def log(*a):
    print(*a, flush=True)


def bench_dir() -> Path:
    return Path(os.environ.get("TSHARK_DICOM_BENCH_DIR", "/var/tmp/tshark-dicom-bench"))


def capture_path(name: str) -> Path:
    return bench_dir() / f"{name}.pcapng"


def manifest_path(name: str) -> Path:
    return bench_dir() / f"{name}.pcapng.json"


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return str(n)


# --------------------------------------------------------------------------- validity / manifest


def read_manifest(name: str) -> dict | None:
    try:
        return json.loads(manifest_path(name).read_text())
    except (OSError, ValueError):
        return None


def is_valid(name: str) -> tuple[bool, str]:
    spec = CAPTURES[name]
    path, man = capture_path(name), read_manifest(name)
    if not path.exists():
        return False, "missing"
    if man is None:
        return False, "no manifest"
    if man.get("generator_version") != GENERATOR_VERSION:
        return False, "made by another generator version"
    size = path.stat().st_size
    if man.get("bytes") != size:
        return False, "size differs from manifest"
    if "target_bytes" in spec and size < spec["target_bytes"]:
        return False, "smaller than target"
    if spec["kind"] == "filter":
        src_man = read_manifest(spec["source"])
        if not src_man or src_man.get("created") != man.get("source_created"):
            return False, "source capture changed"
    return True, "ok"


def capinfos(path: Path) -> dict:
    """Packet count, file size, duration (machine-readable capinfos output)."""
    info = {}
    if not os.path.exists(CAPINFOS):
        return info
    r = subprocess.run(
        [CAPINFOS, "-M", "-T", "-c", "-s", "-d", "-u", "-r", str(path)],
        capture_output=True,
        text=True,
    )
    if r.returncode == 0 and r.stdout.strip():
        fields = r.stdout.strip().split("\t")
        keys = ["file", "packets", "file_bytes", "data_bytes", "duration_s"]
        for k, v in zip(keys[1:], fields[1:], strict=False):
            try:
                info[k] = float(v) if k == "duration_s" else int(v)
            except ValueError:
                info[k] = v
    return info


def tcp_len_histogram(path: Path, count: int = 5000, top: int = 6) -> list[tuple[int, int]]:
    r = subprocess.run(
        [
            TSHARK,
            "-n",
            "-r",
            str(path),
            "-c",
            str(count),
            "-Y",
            "tcp",
            "-T",
            "fields",
            "-e",
            "tcp.len",
        ],
        capture_output=True,
        text=True,
    )
    hist: dict[int, int] = {}
    for line in r.stdout.split():
        hist[int(line)] = hist.get(int(line), 0) + 1
    return sorted(hist.items(), key=lambda kv: -kv[1])[:top]


def describe(name: str) -> str:
    path, man = capture_path(name), read_manifest(name) or {}
    parts = [f"{name}.pcapng: {human(path.stat().st_size)} ({path.stat().st_size} bytes)"]
    if "packets" in man:
        parts.append(f"{man['packets']} packets")
    if "duration_s" in man:
        parts.append(f"{man['duration_s']:.1f} s of traffic")
    if "associations" in man:
        parts.append(
            f"{man['associations']} associations, {man['objects']} objects "
            f"({human(man['object_bytes'])})"
        )
    if man.get("http_bytes"):
        parts.append(f"{man['http_requests']} HTTP downloads ({human(man['http_bytes'])})")
    if man.get("dropped") is not None:
        parts.append(f"dropped {man['dropped']}")
    if man.get("tcp_retransmitted_segments") is not None:
        parts.append(
            f"TCP retransmissions {man['tcp_retransmitted_segments']}, "
            f"out-of-order {man['tcp_out_of_order_arrivals']}"
        )
    if man.get("generate_seconds") is not None:
        parts.append(f"generated in {man['generate_seconds']:.1f} s")
    return ", ".join(parts)


# --------------------------------------------------------------------------- DICOM objects


class ObjectFactory:
    """Synthetic multi-frame objects made from pydicom's shipped CT_small.dcm (synthetic only)."""

    def __init__(self, seed: str):
        import numpy as np
        import pydicom
        from pydicom.data import get_testdata_file

        self.np, self.pydicom = np, pydicom
        self.seed = seed
        self.template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        self.rng = np.random.default_rng(
            int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "little")
        )

    def uid(self, *parts) -> str:
        from pydicom.uid import generate_uid

        return generate_uid(entropy_srcs=[self.seed, *map(str, parts)])

    def make(self, path: Path, assoc: int, index: int, frames: int) -> int:
        from pydicom.uid import ExplicitVRLittleEndian

        ds = self.template.copy()
        sop_class = "1.2.840.10008.5.1.4.1.1.7.3"  # Multi-frame Grayscale Word SC Image Storage
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = self.uid("sop", assoc, index)
        ds.StudyInstanceUID = self.uid("study", assoc)
        ds.SeriesInstanceUID = self.uid("series", assoc)
        ds.PatientName = f"BENCH^ASSOC{assoc:03d}"
        ds.PatientID = f"BENCH{assoc:05d}"
        ds.InstanceNumber = index + 1
        ds.Modality = "OT"
        ds.ConversionType = "WSD"
        ds.Rows, ds.Columns = 512, 512
        ds.NumberOfFrames = frames
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        for kw in ("RescaleIntercept", "RescaleSlope", "WindowCenter", "WindowWidth"):
            if kw in ds:
                delattr(ds, kw)
        # noisy gradient: incompressible enough, looks like something in a viewer
        np = self.np
        base = (np.add.outer(np.arange(512), np.arange(512)) * 4).astype(np.uint16)
        noise = self.rng.integers(0, 512, size=(frames, 512, 512), dtype=np.uint16)
        ds.PixelData = ((base[None, :, :] + noise) & 0x0FFF).astype("<u2").tobytes()
        ds["PixelData"].VR = "OW"
        ds.file_meta.MediaStorageSOPClassUID = sop_class
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(path, enforce_file_format=True)
        return path.stat().st_size


# --------------------------------------------------------------------------- namespaces


class Lab:
    """Two namespaces joined by a veth pair; tracks every process it starts and cleans up."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []

    # -- helpers
    @staticmethod
    def run(*cmd, check=True, quiet=False):
        r = subprocess.run(list(cmd), capture_output=True, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
        return r

    def ns(self, ns: str, *cmd, check=True):
        return self.run(IP, "netns", "exec", ns, *cmd, check=check)

    def popen(self, ns: str, cmd: list[str], **kw) -> subprocess.Popen:
        p = subprocess.Popen([IP, "netns", "exec", ns, *cmd], **kw)
        self.procs.append(p)
        return p

    @staticmethod
    def existing_namespaces() -> set[str]:
        r = subprocess.run([IP, "netns", "list"], capture_output=True, text=True)
        return {line.split()[0] for line in r.stdout.splitlines() if line.strip()}

    # -- lifecycle
    def up(self):
        if not os.path.exists(ETHTOOL):
            raise SystemExit("ethtool is required (apt-get install ethtool)")
        stale = self.existing_namespaces() & {NS_CLI, NS_SRV}
        for ns in stale:  # left over from an interrupted run of this script (our own names)
            log(f"  removing stale namespace {ns}")
            self.run(IP, "netns", "del", ns, check=False)
        self.run(IP, "netns", "add", NS_CLI)
        self.run(IP, "netns", "add", NS_SRV)
        # create the veth pair directly inside the client namespace, then move one end
        self.run(IP, "-n", NS_CLI, "link", "add", IF_CLI, "type", "veth", "peer", "name", IF_SRV)
        self.run(IP, "-n", NS_CLI, "link", "set", IF_SRV, "netns", NS_SRV)
        for ns, ifname, addr in ((NS_CLI, IF_CLI, ADDR_CLI), (NS_SRV, IF_SRV, ADDR_SRV)):
            for key in ("all", "default"):
                self.ns(ns, "sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1", check=False)
            self.run(IP, "-n", ns, "link", "set", "lo", "up")
            self.run(IP, "-n", ns, "link", "set", ifname, "mtu", "1500")
            self.run(IP, "-n", ns, "addr", "add", f"{addr}/{PREFIX}", "dev", ifname)
            self.ns(
                ns,
                ETHTOOL,
                "-K",
                ifname,
                "tso",
                "off",
                "gso",
                "off",
                "gro",
                "off",
                "tx",
                "off",
                "rx",
                "off",
            )
            self.run(IP, "-n", ns, "link", "set", ifname, "up")
        # Receive Packet Steering on the veth receive queues: veth delivers through the per-CPU
        # backlog of the *sending* CPU, so a sender that migrates between CPUs makes its own
        # segments arrive out of order (hundreds of spurious fast retransmits per association).
        # RPS steers each flow to one CPU, restoring in-order delivery, like a real link.
        mask = format((1 << min(os.cpu_count() or 1, 32)) - 1, "x")
        for ns, ifname in ((NS_CLI, IF_CLI), (NS_SRV, IF_SRV)):
            self.ns(
                ns,
                "sh",
                "-c",
                f"for q in /sys/class/net/{ifname}/queues/rx-*; do echo {mask} > $q/rps_cpus; done",
            )
        # check offloads really are off
        for ns, ifname in ((NS_CLI, IF_CLI), (NS_SRV, IF_SRV)):
            feats = self.ns(ns, ETHTOOL, "-k", ifname).stdout
            for feat in (
                "tcp-segmentation-offload",
                "generic-segmentation-offload",
                "generic-receive-offload",
            ):
                m = re.search(rf"^{feat}: (\w+)", feats, re.M)
                if not m or m.group(1) != "off":
                    raise RuntimeError(f"{feat} still on for {ifname} in {ns}")
        self.ns(NS_CLI, "ping", "-c", "1", "-W", "2", ADDR_SRV, check=False)

    def down(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.terminate()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        p.kill()
                    p.wait(timeout=5)
        self.procs.clear()
        for ns in (NS_CLI, NS_SRV):
            if ns in self.existing_namespaces():
                self.run(IP, "netns", "del", ns, check=False)

    def tcp_counters(self) -> dict:
        """Per-namespace TCP counters: retransmissions and out-of-order arrivals."""
        out = {}
        for ns in (NS_CLI, NS_SRV):
            text = self.ns(ns, "cat", "/proc/net/snmp", "/proc/net/netstat", check=False).stdout
            lines = text.splitlines()
            vals = {}
            for head, data in zip(lines[::2], lines[1::2], strict=False):
                hk, hv = head.split(":", 1)
                dk, dv = data.split(":", 1)
                if hk == dk:
                    for k, v in zip(hv.split(), dv.split(), strict=False):
                        vals[f"{hk}.{k}"] = v
            out[ns] = {
                "retrans_segs": int(vals.get("Tcp.RetransSegs", 0)),
                "ofo_queued": int(vals.get("TcpExt.TCPOFOQueue", 0)),
            }
        return out

    def wait_listening(self, port: int, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.ns(NS_SRV, "ss", "-Hltn", f"sport = :{port}", check=False).stdout
            if out.strip():
                return
            time.sleep(0.05)
        raise RuntimeError(f"nothing listening on port {port} in {NS_SRV}")

    # -- capture
    def start_dumpcap(self, path: Path) -> tuple[subprocess.Popen, Path]:
        errpath = path.with_suffix(".dumpcap.log")
        errf = open(errpath, "w")
        p = self.popen(
            NS_SRV,
            [DUMPCAP, "-i", IF_SRV, "-B", "256", "-q", "-w", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=errf,
        )
        errf.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if "Capturing on" in errpath.read_text() and path.exists():
                break
            if p.poll() is not None:
                raise RuntimeError(f"dumpcap exited: {errpath.read_text()}")
            time.sleep(0.05)
        else:
            raise RuntimeError("dumpcap did not start")
        time.sleep(0.2)
        return p, errpath

    @staticmethod
    def stop_dumpcap(p: subprocess.Popen, errpath: Path) -> dict:
        time.sleep(0.5)  # let the last ACKs/FINs land
        p.send_signal(signal.SIGINT)
        p.wait(timeout=60)
        text = errpath.read_text()
        errpath.unlink()
        m = re.search(r"received/dropped on interface '[^']*': (\d+)/(\d+) \(([^)]*)\)", text)
        if not m:
            raise RuntimeError(f"could not read dumpcap statistics:\n{text}")
        drops = int(m.group(2)) + sum(int(x) for x in re.findall(r":(\d+)", m.group(3)))
        return {"received": int(m.group(1)), "dropped": drops, "dumpcap_stats": m.group(0)}


# --------------------------------------------------------------------------- traffic


def storescu_cmd(files: list[Path], assoc: int) -> list[str]:
    cmd = [STORESCU, "-aet", f"BENCHSCU{assoc % 3}", "-aec", SCP_AET]
    if (
        assoc % 2
    ):  # odd associations propose only what the files need; even: dcmtk default (128 contexts)
        cmd.append("-R")
    return cmd + [ADDR_SRV, str(DICOM_PORT), *map(str, files)]


def start_storescp(lab: Lab) -> subprocess.Popen:
    p = lab.popen(
        NS_SRV,
        [STORESCP, "--ignore", "-aet", SCP_AET, "-dhl", str(DICOM_PORT)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    lab.wait_listening(DICOM_PORT)
    return p


def run_storescu(lab: Lab, files: list[Path], assoc: int):
    r = lab.ns(NS_CLI, *storescu_cmd(files, assoc), check=False)
    if r.returncode != 0:
        raise RuntimeError(
            f"storescu association {assoc} failed ({r.returncode}): {r.stderr[-2000:]}"
        )


def gen_store(name: str, path: Path, work: Path, spec: dict) -> dict:
    factory = ObjectFactory(name)
    lab = Lab()
    stats = {"associations": 0, "objects": 0, "object_bytes": 0}
    try:
        lab.up()
        start_storescp(lab)
        dumpcap, errpath = lab.start_dumpcap(path)
        assoc = 0
        obj_no = 0
        while path.stat().st_size < spec["target_bytes"]:
            files = []
            for i in range(OBJECTS_PER_ASSOC):
                f = work / f"a{assoc:03d}_{i:02d}.dcm"
                stats["object_bytes"] += factory.make(
                    f, assoc, i, STORE_FRAMES[obj_no % len(STORE_FRAMES)]
                )
                obj_no += 1
                files.append(f)
            run_storescu(lab, files, assoc)
            for f in files:
                f.unlink()
            stats["associations"] += 1
            stats["objects"] += len(files)
            assoc += 1
            if assoc % 5 == 0:
                log(f"    {assoc} associations, capture {human(path.stat().st_size)}")
        stats.update(lab.stop_dumpcap(dumpcap, errpath))
        counters = lab.tcp_counters()
        stats["tcp_retransmitted_segments"] = sum(c["retrans_segs"] for c in counters.values())
        stats["tcp_out_of_order_arrivals"] = sum(c["ofo_queued"] for c in counters.values())
    finally:
        lab.down()
    return stats


HTTP_CLIENT = r"""
import http.client, sys, time
host, port, url, rate = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
deadline = time.monotonic() + 10
while True:
    try:
        c = http.client.HTTPConnection(host, port, timeout=60)
        c.request("GET", url, headers={"User-Agent": "tdcb-bench/1"})
        break
    except ConnectionRefusedError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.05)
r = c.getresponse()
want = int(r.getheader("Content-Length"))
print("ready", flush=True)
got, t0 = 0, time.monotonic()
while True:
    b = r.read(65536)
    if not b:
        break
    got += len(b)
    ahead = got / rate - (time.monotonic() - t0)   # paced reads: TCP flow control stretches the
    if ahead > 0:                                   # download over the association's lifetime
        time.sleep(ahead)
c.close()
assert got == want, (got, want)
print(got, flush=True)
"""


def gen_mixed(name: str, path: Path, work: Path, spec: dict) -> dict:
    """Rounds: an HTTP download of 9x the bytes of one C-STORE association, started together and
    paced (client reads) to last ~1.4x as long as the previous round's association, so that the
    association's packets fall among the download's."""
    factory = ObjectFactory(name)
    ratio = spec["other_per_dicom"]
    lab = Lab()
    stats = {
        "associations": 0,
        "objects": 0,
        "object_bytes": 0,
        "http_requests": 0,
        "http_bytes": 0,
    }
    www = work / "www"
    www.mkdir()
    rng = factory.rng
    try:
        lab.up()
        start_storescp(lab)
        lab.popen(
            NS_SRV,
            [
                sys.executable,
                "-m",
                "http.server",
                str(HTTP_PORT),
                "--bind",
                ADDR_SRV,
                "--directory",
                str(www),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        lab.wait_listening(HTTP_PORT)
        dumpcap, errpath = lab.start_dumpcap(path)
        round_no, assoc_s = 0, 0.3
        while path.stat().st_size < spec["target_bytes"]:
            frames = MIXED_FRAMES[round_no % len(MIXED_FRAMES)]
            f = work / f"m{round_no:03d}.dcm"
            size = factory.make(f, round_no, 0, frames)
            blob = www / f"blob_{round_no:03d}.bin"
            with open(blob, "wb") as fh:  # 9x the DICOM bytes, incompressible
                left = ratio * size
                while left > 0:
                    n = min(left, 8 * MiB)
                    fh.write(rng.bytes(n))
                    left -= n
            http = lab.popen(
                NS_CLI,
                [
                    sys.executable,
                    "-c",
                    HTTP_CLIENT,
                    ADDR_SRV,
                    str(HTTP_PORT),
                    f"/{blob.name}",
                    f"{ratio * size / (1.4 * assoc_s):.0f}",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            if http.stdout.readline().strip() != "ready":
                raise RuntimeError(f"HTTP client failed: {http.stderr.read()[-2000:]}")
            t0 = time.monotonic()
            run_storescu(lab, [f], round_no)
            assoc_s = time.monotonic() - t0
            out, err = http.communicate(timeout=600)
            if http.returncode != 0:
                raise RuntimeError(f"HTTP client failed: {err[-2000:]}")
            stats["http_requests"] += 1
            stats["http_bytes"] += int(out.strip())
            stats["associations"] += 1
            stats["objects"] += 1
            stats["object_bytes"] += size
            f.unlink()
            blob.unlink()
            round_no += 1
        stats.update(lab.stop_dumpcap(dumpcap, errpath))
        counters = lab.tcp_counters()
        stats["tcp_retransmitted_segments"] = sum(c["retrans_segs"] for c in counters.values())
        stats["tcp_out_of_order_arrivals"] = sum(c["ofo_queued"] for c in counters.values())
    finally:
        lab.down()
    return stats


def gen_filter(name: str, path: Path, work: Path, spec: dict) -> dict:
    src = capture_path(spec["source"])
    # the selection only needs TCP ports: keep tshark from reassembling/dissecting payloads
    r = subprocess.run(
        [
            TSHARK,
            "-n",
            "-r",
            str(src),
            "-o",
            "tcp.desegment_tcp_streams:FALSE",
            "-o",
            "tcp.analyze_sequence_numbers:FALSE",
            "--disable-protocol",
            "dicom",
            "--disable-protocol",
            "http",
            "-Y",
            spec["filter"],
            "-w",
            str(path),
        ],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise RuntimeError(f"tshark filter failed: {r.stderr}")
    src_man = read_manifest(spec["source"]) or {}
    return {
        "source": spec["source"],
        "filter": spec["filter"],
        "source_created": src_man.get("created"),
        "associations": src_man.get("associations"),
        "objects": src_man.get("objects"),
        "object_bytes": src_man.get("object_bytes"),
    }


GENERATORS = {"store": gen_store, "mixed": gen_mixed, "filter": gen_filter}


_checked: set[str] = set()


def make(name: str, force: bool = False) -> dict:
    spec = CAPTURES[name]
    if name in _checked and not force and is_valid(name)[0]:
        return read_manifest(name)
    if spec["kind"] == "filter" and spec["source"] not in _checked:
        make(spec["source"], force=False)
    _checked.add(name)
    ok, why = is_valid(name)
    if ok and not force:
        log(f"reuse {describe(name)}")
        return read_manifest(name)
    log(f"make {name} ({'forced' if force and ok else why}) ...")
    final = capture_path(name)
    tmp = final.with_name(f".{name}.tmp.pcapng")
    work = bench_dir() / f".work-{name}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    tmp.unlink(missing_ok=True)
    t0 = time.monotonic()
    try:
        stats = GENERATORS[spec["kind"]](name, tmp, work, spec)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    elapsed = time.monotonic() - t0
    if stats.get("dropped"):
        tmp.unlink(missing_ok=True)
        raise RuntimeError(
            f"{name}: dumpcap dropped {stats['dropped']} packets ({stats['dumpcap_stats']})"
        )
    manifest_path(name).unlink(missing_ok=True)
    os.chmod(tmp, 0o644)
    os.replace(tmp, final)
    info = capinfos(final)
    man = {
        "generator_version": GENERATOR_VERSION,
        "name": name,
        "kind": spec["kind"],
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "bytes": final.stat().st_size,
        "generate_seconds": round(elapsed, 1),
        **{k: v for k, v in spec.items() if k != "kind"},
        **info,
        **stats,
    }
    man["bytes"] = final.stat().st_size
    manifest_path(name).write_text(json.dumps(man, indent=2) + "\n")
    log(f"made  {describe(name)}")
    hist = tcp_len_histogram(final)
    log(
        "      most common TCP payload lengths (first 5000 TCP packets): "
        + ", ".join(f"{ln} B x{n}" for ln, n in hist)
    )
    return man


@contextlib.contextmanager
def locked():
    d = bench_dir()
    d.mkdir(parents=True, exist_ok=True)
    with open(d / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(f"another make_captures run holds {d / '.lock'}") from None
        yield


def ensure(names: list[str] | None = None, force: bool = False) -> dict[str, dict]:
    names = names or DEFAULT_ORDER
    out = {}
    with locked():
        for name in names:
            out[name] = make(name, force=force)
    return out


def _sigterm(signum, frame):
    raise SystemExit(f"signal {signum}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"captures to make (default: all): {', '.join(CAPTURES)}",
    )
    ap.add_argument(
        "--force", action="store_true", help="regenerate even if a valid capture exists"
    )
    ap.add_argument(
        "--list", action="store_true", help="only show what exists and whether it is valid"
    )
    args = ap.parse_args(argv)
    if os.geteuid() != 0 and not args.list:
        print("make_captures needs root (network namespaces, dumpcap)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _sigterm)
    names = args.names or DEFAULT_ORDER
    unknown = [n for n in names if n not in CAPTURES]
    if unknown:
        ap.error(f"unknown capture(s) {unknown}; known: {', '.join(CAPTURES)}")
    log(f"benchmark captures in {bench_dir()}")
    if args.list:
        for name in names:
            ok, why = is_valid(name)
            log(f"  {describe(name) if ok else name + ': ' + why}")
        return 0
    t0 = time.monotonic()
    ensure(names, force=args.force)
    log(f"done in {time.monotonic() - t0:.1f} s")
    for name in names:
        log(f"  {describe(name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
