"""The hashing helper process (sidehash.py): the digests it gives are hashlib's, data sets
reach it only where a session allows, it ends with its session, and its death is an error
that says so."""

from __future__ import annotations

import hashlib
import os
import random
import signal
from pathlib import Path

import pytest

from tshark_dicom import sidehash
from tshark_dicom.analysis import analyze_capture
from tshark_dicom.batch import side_hash_allowed
from tshark_dicom.errors import HelperError
from tshark_dicom.objects import ObjectSink
from tshark_dicom.sidehash import HASHER, RING
from tshark_dicom.tshark import find_tshark

CAPTURES = Path(__file__).resolve().parent.parent / "fixtures" / "captures"


@pytest.fixture
def allowed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sessions may start a helper even on a machine of one core; the list counts the
    helpers started."""
    monkeypatch.setattr(sidehash, "usable", lambda: True)
    started: list[int] = []
    start = HASHER._start

    def counted() -> bool:
        ok = start()
        started.append(HASHER._proc.pid if ok else -1)
        return ok

    monkeypatch.setattr(HASHER, "_start", counted)
    return started


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_digests_are_hashlibs_across_ring_wraps_and_interleaved_keys(
        allowed: list[int]) -> None:
    """Three keys fed interleaved pieces of every size from 1 byte to more than the ring
    (which wraps, and splits a piece larger than itself): each digest is hashlib's of the
    same bytes; a digest asked midway goes on; the helper is gone after the session."""
    rng = random.Random(7)
    expect = {}
    with sidehash.session():
        keys = [HASHER.open() for _ in range(3)]
        assert None not in keys
        expect = {k: hashlib.sha256() for k in keys}
        sizes = [1, 3, 4096, 255 * 1024, 256 * 1024, 1 << 20, RING - 5, RING + 12345, 17]
        for round_ in range(3):
            for size in sizes:
                key = keys[rng.randrange(3)]
                data = rng.randbytes(size)
                HASHER.update(key, data)
                expect[key].update(data)
            midway = keys[round_]
            assert HASHER.digest(midway, final=False) == expect[midway].hexdigest()
        for key in keys:
            assert HASHER.digest(key, final=True) == expect[key].hexdigest()
        assert len(allowed) == 1 and allowed[0] > 0
    assert HASHER._proc is None
    assert _gone(allowed[0])


def test_a_large_data_set_is_hashed_by_the_helper_small_ones_here(allowed: list[int]) -> None:
    """Without files, a data set that fills a batch goes to the helper (its digest then
    pending until asked) and one that does not is hashed here; written segment by segment,
    both digests are hashlib's. A discarded one's is of the bytes handed on before, as
    without a helper."""
    rng = random.Random(1)
    big, small = rng.randbytes(3_000_000), rng.randbytes(100_000)

    def fed(data: bytes, finish: bool = True) -> ObjectSink:
        sink = ObjectSink(None, "x.dcm", sop_class_uid=None, sop_instance_uid=None,
                          transfer_syntax=None, source_ae=None)
        for i in range(0, len(data), 1448):
            sink.write(data[i:i + 1448])
        if finish:
            sink.finish()
        else:
            sink.discard("cut")
        return sink

    with sidehash.session():
        sink = fed(big)
        assert sink.digest_pending
        assert sink.sha256 == hashlib.sha256(big).hexdigest()
        assert not sink.digest_pending
        assert len(allowed) == 1
        little = fed(small)
        assert not little.digest_pending
        assert little.sha256 == hashlib.sha256(small).hexdigest()
        cut = fed(big, finish=False)
        cut_digest = cut.sha256
    assert cut_digest == fed(big, finish=False).sha256  # no session: hashed here
    assert len(allowed) == 1


def test_no_helper_where_the_session_does_not_allow_one(allowed: list[int]) -> None:
    with sidehash.session(allowed=False):
        assert HASHER.open() is None
    assert HASHER.open() is None  # outside any session either
    assert allowed == []


def test_a_helper_killed_is_an_error_that_says_so(allowed: list[int]) -> None:
    with sidehash.session():
        key = HASHER.open()
        assert key is not None
        HASHER.update(key, b"x" * 1000)
        os.kill(allowed[0], signal.SIGKILL)
        with pytest.raises(HelperError, match=r"ended unexpectedly.*exit status -9"):
            for _ in range(100):  # until the kill has landed
                HASHER.update(key, b"x" * (1 << 20))
                HASHER.digest(key, final=False)
    assert HASHER._proc is None


@pytest.mark.parametrize("name", ["large_multiframe.pcapng", "lossy.pcapng"])
def test_a_capture_hashed_by_the_helper_gives_the_same_objects(allowed: list[int],
                                                                tmp_path: Path,
                                                                name: str) -> None:
    """Real traffic (an 8 MB multi-frame image; C-STOREs through loss, some of whose data
    sets are cut): the objects with the helper hashing (no files) are those the writer
    thread hashed while writing the files."""
    tshark = find_tshark(None)
    capture = CAPTURES / name

    def objects(objects_dir: Path | None) -> list[tuple[int, str, bool]]:
        result = analyze_capture(capture, label="m", tshark=tshark, objects_dir=objects_dir)
        return [(o.dataset_bytes, o.sha256, o.complete)
                for a in result.associations for o in a.objects]

    with sidehash.session():
        side = objects(None)
    assert len(allowed) == 1
    written = objects(tmp_path / "objects")
    assert side == written
    assert any(size >= 1 << 18 for size, _, _ in side)
    assert all(len(sha) == 64 for _, sha, _ in side)


def test_a_run_allows_a_helper_only_with_a_core_left_free() -> None:
    assert side_hash_allowed(1, 40, None, cores=2)
    assert side_hash_allowed(2, 1, None, cores=2)  # one capture: one worker
    assert not side_hash_allowed(2, 40, None, cores=2)
    assert not side_hash_allowed(1, 1, None, cores=1)
    assert side_hash_allowed(3, 40, None, cores=4)
    assert not side_hash_allowed(1, 1, "tcp://scheduler:8786", cores=8)
