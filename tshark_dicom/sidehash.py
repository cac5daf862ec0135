"""SHA-256 of large data sets in a helper process, on a core that would otherwise idle.

The objects table's ``sha256`` is taken of every data set, written to a file or not. With
``--no-objects`` nothing else is done with a data set's bytes, and hashing them was a
quarter of the process that decodes the packets (store_1gb: 0.55 s of 2.3 s) while the
second core ran only editcap (40 % busy). A thread cannot take that work: the compiled
packet loop holds the GIL between its pipe reads, so a hashing thread waits for it after
every batch (measured, benchmarks/README: 0.2-0.4 s more CPU in the hand-overs, slower
overall). A process has no GIL to wait for: the batches go into a ring of shared memory (a
``memfd``, one copy, about a tenth of the hashing's cost), a 24-byte request per batch
says where (written to the helper a MiB of batches at a time), and the helper hashes them
in order, at the lowest priority (`_helper`), and answers a digest when asked: the
association asks for its objects' digests when their rows leave it (`Association.drain`),
by when the helper has long caught up. store_1gb, tables only: 2.33 -> 2.04 s.

Only data sets that fill a batch (256 KiB, objects.py) come here, and only while a
session allows it (`session`): on a machine of one core, or with as many worker
processes as cores (``--jobs``), every core is busy already and the data sets are hashed
where they are decoded, as before. The helper is started by the first such data set of a
capture and ended with the capture (`session`); it is ``python -I -S`` running this file,
which imports nothing but the standard library for that reason.

Requests (worker -> helper, in order; the helper takes them in that order):
  UPDATE key offset length   hash the ring's bytes there into the key's SHA-256
  DIGEST key final           answer its 32-byte digest (final: and forget the key)
  SYNC                       answer one byte: every earlier request is done, the ring free
"""

from __future__ import annotations

import hashlib
import mmap
import os
import signal
import struct
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: The shared ring's size: 64 batches of 256 KiB. Writing starts again at its beginning
#: once a batch would not fit, after a SYNC (the helper, at 1.8 GB/s, has long caught up).
RING = 16 << 20
#: Requests are written to the helper once they ask it to hash this many bytes (or a
#: digest or SYNC is asked).
FLUSH = 1 << 20
_REQUEST = struct.Struct("<BxxxIqq")  # op, key, offset (DIGEST: final), length
UPDATE, DIGEST, SYNC = 1, 2, 3
#: one read of requests by the helper
_READ = 1 << 16


class SideHasher:
    """This process's helper, when one runs (`HASHER`). Thread-safe; a process forked from
    one that had a helper starts without one (the helper and its pipes are the parent's)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._allowed = False
        self._broken = False  # the helper could not start: no second try this session
        self._proc: Any = None  # subprocess.Popen (imported when a helper starts)
        self._pid = 0
        self._ring: mmap.mmap | None = None
        self._requests = -1  # write end of the requests pipe
        self._answers = -1  # read end of the answers pipe
        self._pos = 0  # where the next batch goes in the ring
        self._queued = bytearray()  # requests not yet written to the helper
        self._queued_bytes = 0  # the bytes they ask it to hash
        self._next_key = 0

    # -- sessions ---------------------------------------------------------------

    def allow(self, allowed: bool) -> None:
        """Whether data sets may go to a helper from now on (`session`)."""
        with self._lock:
            self._allowed = allowed and usable()
            self._broken = False

    def close(self) -> None:
        """End the helper, if one runs: it sees the end of its requests and exits."""
        with self._lock:
            proc, mine = self._proc, self._pid == os.getpid()
            self._release()
            if proc is not None and mine:
                try:
                    proc.wait(timeout=5)
                except Exception:  # noqa: BLE001 - stuck: it goes with us
                    proc.kill()
                    proc.wait()

    # -- data sets ----------------------------------------------------------------

    def open(self) -> int | None:
        """A key for one more data set's hash in the helper (started now if need be), or
        None: hash it here (not allowed, or no helper could start)."""
        with self._lock:
            if not self._allowed or self._broken:
                return None
            if self._proc is not None and self._pid != os.getpid():
                self._release()  # forked: the helper is the parent's
            if self._proc is None and not self._start():
                self._broken = True
                return None
            self._next_key += 1
            return self._next_key

    def update(self, key: int, data: bytes | bytearray | memoryview) -> None:
        """Add ``data`` to the key's hash: copied into the ring, hashed by the helper. The
        requests go to it FLUSH bytes at a time (each wakes it: 4,000 a GB cost 0.1 s of
        the machine's time in switches)."""
        view = memoryview(data).cast("B")
        with self._lock:
            ring = self._ring
            if ring is None:
                raise RuntimeError("no hashing helper process runs")
            done, size = 0, len(view)
            while done < size:
                piece = min(size - done, RING)
                if self._pos + piece > RING:
                    self._sync()
                ring[self._pos:self._pos + piece] = view[done:done + piece]
                self._queued += _REQUEST.pack(UPDATE, key, self._pos, piece)
                self._queued_bytes += piece
                self._pos += piece
                done += piece
            if self._queued_bytes >= FLUSH:
                self._flush()

    def digest(self, key: int, final: bool) -> str:
        """The hex SHA-256 of what the key was given so far; ``final``: the helper then
        forgets the key."""
        with self._lock:
            self._queued += _REQUEST.pack(DIGEST, key, int(final), 0)
            self._flush()
            return self._answer(32).hex()

    # -- inside -------------------------------------------------------------------

    def _start(self) -> bool:
        import subprocess

        if not sys.executable:  # embedded: no interpreter to start
            return False
        memfd = rq = wq = ra = wa = -1
        try:
            memfd = os.memfd_create("tshark-dicom-sidehash", os.MFD_CLOEXEC)
            os.ftruncate(memfd, RING)
            ring = mmap.mmap(memfd, RING)
            rq, wq = os.pipe()
            ra, wa = os.pipe()
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", __file__, str(memfd), str(rq), str(wa)],
                pass_fds=(memfd, rq, wa), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError:
            for fd in (wq, ra):
                if fd >= 0:
                    os.close(fd)
            return False
        finally:
            for fd in (memfd, rq, wa):  # the helper's now (or no one's)
                if fd >= 0:
                    os.close(fd)
        os.set_inheritable(wq, False)
        os.set_inheritable(ra, False)
        self._proc, self._pid, self._ring = proc, os.getpid(), ring
        self._requests, self._answers, self._pos = wq, ra, 0
        self._queued.clear()
        self._queued_bytes = 0
        return True

    def _release(self) -> None:
        """Let go of the helper's pipes and ring (a forked child: the parent's helper,
        which this leaves alone)."""
        for fd in (self._requests, self._answers):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        if self._ring is not None:
            self._ring.close()
        self._proc, self._ring, self._requests, self._answers = None, None, -1, -1

    def _flush(self) -> None:
        """The requests queued so far, to the helper."""
        queued = self._queued
        try:
            sent = 0
            while sent < len(queued):
                sent += os.write(self._requests, queued[sent:])
        except OSError:
            raise self._ended() from None
        finally:
            queued.clear()
            self._queued_bytes = 0

    def _answer(self, size: int) -> bytes:
        got = b""
        while len(got) < size:
            more = os.read(self._answers, size - len(got))
            if not more:
                raise self._ended()
            got += more
        return got

    def _sync(self) -> None:
        """Wait until the helper has taken every request so far: the ring is free."""
        self._queued += _REQUEST.pack(SYNC, 0, 0, 0)
        self._flush()
        self._answer(1)
        self._pos = 0

    def _ended(self) -> Exception:
        """The helper is gone: the data sets it was given cannot be hashed any more."""
        from .errors import HelperError  # here: the helper itself imports no package

        code = self._proc.poll() if self._proc is not None else None
        return HelperError("the process that hashed the data sets (SHA-256) ended "
                           "unexpectedly" + (f", exit status {code}" if code is not None
                                             else ""))


def usable() -> bool:
    """A second core to hash on, and the shared memory this needs (Linux's memfd)."""
    return (os.cpu_count() or 1) >= 2 and hasattr(os, "memfd_create")


#: This process's helper.
HASHER = SideHasher()


@contextmanager
def session(allowed: bool = True) -> Iterator[None]:
    """One capture's analysis: large data sets may be hashed by a helper process inside
    (if ``allowed`` and `usable`), which ends with it."""
    HASHER.allow(allowed)
    try:
        yield
    finally:
        HASHER.allow(False)
        HASHER.close()


def _helper(memfd: int, requests: int, answers: int) -> None:
    """The helper's loop: requests in order until the worker closes its end."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the worker's to handle
    # The lowest priority: the helper takes what editcap (or tshark) and the worker leave
    # of the cores. At the same priority it slowed them: a waking editcap waited for the
    # helper's turn to end, the 1 MiB pipe ran dry and the worker waited for it
    # (store_1gb, tables only: 2.33 s at the same priority, 2.04 s at nice 19, 2.34-2.44 s
    # hashing in the worker). Where nothing else is free, the worker's own core is, while
    # it waits for an answer.
    try:
        os.nice(19)
    except OSError:
        pass
    ring = memoryview(mmap.mmap(memfd, RING))
    hashes: dict[int, Any] = {}
    size = _REQUEST.size
    pending = b""
    while True:
        more = os.read(requests, _READ)
        if not more:
            return
        pending += more
        count = len(pending) // size
        for i in range(count):
            op, key, offset, length = _REQUEST.unpack_from(pending, i * size)
            if op == UPDATE:
                h = hashes.get(key)
                if h is None:
                    h = hashes[key] = hashlib.sha256()
                h.update(ring[offset:offset + length])
            elif op == DIGEST:
                h = hashes.pop(key, None) if offset else hashes.get(key)
                os.write(answers, (h if h is not None else hashlib.sha256()).digest())
            elif op == SYNC:
                os.write(answers, b"\1")
        pending = pending[count * size:]


if __name__ == "__main__":
    _helper(*(int(a) for a in sys.argv[1:4]))
