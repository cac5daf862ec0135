"""The worker processes of ``--jobs N``: where they come from.

Each worker must start with the analysis imported (pandas, pyarrow, pydicom, pynetdicom:
about half a second): a spawned one would import it all again. Where this process runs no
other thread (the command line, a script), the workers are plain forks of it, taken when
the pool starts: they have everything this process imported, at no cost. Where it does run
threads (a Jupyter kernel's, a caller's), a fork taken while one of them holds a lock
deadlocks the child, so the workers are forked from a fork server (multiprocessing's
``forkserver``) that imports the analysis once, single-threaded. What a worker must see
of the run's state (the umask of `store.output_mode`) is handed to it with each capture
(batch.py).

The command line's ``analyze`` with one or two workers forks them as the command starts
(`early_worker`), before the run's process imports the library: they import pyarrow and the
analysis while the run's process imports pyarrow, pandas and the report's modules, instead
of after the first two (and, with ``--jobs 2``, after the analysis too).

Forks of this process against forks of the server (64 fixture captures, ``--jobs 2``, out on
tmpfs, 7 pairs): 2.68 against 2.82 s, and about 0.35 s less CPU: the server imported the
analysis a second time beside this process's own imports, and the first worker started at
0.69 s instead of 0.34 s.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.context import BaseContext
from typing import Any, NamedTuple

#: The analysis's modules (pydicom and pynetdicom among their imports): imported by the
#: process that analyses (batch.load_analysis). The run's process reads and reports the
#: tables without them (schemas.py), so a single worker is forked before they are loaded and
#: imports them while the run's process imports pandas and the report's modules: each on
#: its own core.
ANALYSIS = ("tshark_dicom.analysis", "tshark_dicom.spool")
#: What the fork server imports before it forks the first worker.
PRELOAD = ["tshark_dicom.batch", *ANALYSIS]


def context() -> BaseContext:
    """The multiprocessing context of a worker pool started now: ``fork`` where that is
    safe (`single_threaded`), else ``forkserver`` (its server preloads PRELOAD)."""
    if single_threaded():
        return multiprocessing.get_context("fork")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


#: Threads that are not ours and fork safely: pyarrow's jemalloc starts this one at import
#: and forks cleanly (its own fork handlers); the fork server forks with it too.
FORK_SAFE_THREADS = frozenset({"jemalloc_bg_thd"})


def single_threaded() -> bool:
    """Linux, and this process runs no thread but the main one and FORK_SAFE_THREADS (the
    kernel's list of them: native threads too, which Python's own count does not see).

    A thread just joined is gone for Python before the kernel's list drops it: the list is
    looked at again for up to EXITING_S before a thread there counts as running."""
    if not sys.platform.startswith("linux") or threading.active_count() != 1:
        return False
    deadline = time.monotonic() + EXITING_S
    while True:
        names: list[str] = []
        try:
            for task in os.listdir("/proc/self/task"):
                with open(f"/proc/self/task/{task}/comm") as f:
                    names.append(f.read().strip())
        except FileNotFoundError:  # a task that ended while the list was read: again
            names = ["ending", "ending"]
        except OSError:
            return False
        if sum(name not in FORK_SAFE_THREADS for name in names) == 1:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.001)


#: How long a thread Python has seen end may still be in the kernel's list (s).
EXITING_S = 0.05


@contextlib.contextmanager
def main_left_alone() -> Iterator[None]:
    """While worker processes start: keep them from running the parent's main module.

    multiprocessing has each worker import the parent's ``__main__`` again (from its
    ``__spec__`` name or its ``__file__``), so that functions defined there can be
    unpickled. Ours need nothing from it: they run `batch._analyze_in_worker` on our own
    types. Left to it, a script read from standard input (``python - <<EOF``, file
    ``<stdin>``) broke every worker at start (BrokenProcessPool), a script without the
    ``if __name__ == "__main__"`` guard started its analysis again in each worker
    (RuntimeError, the same), and any script's top-level work was repeated in each. With
    neither attribute set a worker leaves its main alone, as it does under ``python -c``."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {name: main.__dict__[name] for name in ("__spec__", "__file__")
             if name in main.__dict__}
    main.__dict__["__spec__"] = None  # multiprocessing reads it: None, not absent
    main.__dict__.pop("__file__", None)
    try:
        yield
    finally:
        for name in ("__spec__", "__file__"):
            if name in saved:
                main.__dict__[name] = saved[name]
            else:
                main.__dict__.pop(name, None)


def die_with_parent() -> None:
    """Linux: this process (a worker) is killed when its parent ends, so that a run killed
    (SIGKILL) leaves no worker analysing on into its output folder. Elsewhere, nothing."""
    if not sys.platform.startswith("linux"):
        return
    import signal

    from .memory import libc

    prctl = getattr(libc(), "prctl", None)
    if prctl is None:
        return
    parent = os.getppid()
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it ended before the call: no signal will come
        os._exit(1)


#: prctl(2): the signal this process gets when its parent ends.
PR_SET_PDEATHSIG = 1


class Pool(NamedTuple):
    """A pool of ``jobs`` worker processes and what they share with the run: each worker's
    count of packets read (``slots``) and the next slot to claim (``claimed``)."""

    executor: ProcessPoolExecutor
    slots: Any
    claimed: Any
    jobs: int


def pool(context: BaseContext, jobs: int) -> Pool:
    """A pool of ``jobs`` workers (none started yet: they start with the first task), each
    of which imports the analysis as it starts (`worker_init`)."""
    slots = context.Array("q", jobs, lock=False)  # packets read, per worker
    claimed = context.Value("i", 0)
    return Pool(ProcessPoolExecutor(max_workers=jobs, mp_context=context,
                                    initializer=worker_init, initargs=(slots, claimed)),
                slots, claimed, jobs)


def worker_init(slots: Any, claimed: Any) -> None:
    """A worker's start: Ctrl-C and its parent's end handled first, then the analysis
    imported (`batch.worker_ready`)."""
    # Ctrl-C reaches the workers too (one process group): the run's process says what was
    # kept; a worker leaves at once, without unwinding a capture half done. Unless the run
    # ignores it (started so: nohup, a script's background job): so do its workers, or a
    # SIGINT to the group ended them alone, and the run with a BrokenProcessPool
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, _leave)
    die_with_parent()  # a run killed leaves no worker writing into its folder
    from .memory import frozen_imports

    with frozen_imports():  # a worker started early (`early_worker`) has not imported it
        from .batch import worker_ready
    worker_ready(slots, claimed)


def _leave(signum: int, frame: object) -> None:
    os._exit(128 + signum)


def stop(executor: ProcessPoolExecutor) -> None:
    """The pool's queued tasks dropped and its workers killed: leaving the pool waits for
    its workers, which would otherwise finish every task queued first (a run told to stop,
    or whose own process failed, went on for as long as the archive took)."""
    kill = getattr(executor, "kill_workers", None)  # Python 3.14: shuts down, then kills
    if kill is not None:
        kill()
        return
    # taken first: shutting down forgets them (the kill after it, as it was, killed none)
    processes = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.kill()


#: The most workers `early_worker` starts. Each imports the analysis on its own, where
#: workers forked once the run's process has imported it share those pages: the 72
#: fixture captures' peak PSS (the processes' sum) is 174 against 165 MiB with one worker,
#: 218 against 185 MiB with two. The head start (0.05-0.3 s a run) is worth that for the
#: runs of one or two workers, not for a long archive run on many (+16 MiB a worker).
EARLY_MAX = 2

#: The workers `early_worker` started, until the run takes them (`take_early`).
_EARLY: list[Pool] = []


@contextlib.contextmanager
def early_worker(jobs: int) -> Iterator[None]:
    """The command line's ``analyze`` with ``jobs`` workers (0: none here; none either
    above `EARLY_MAX`): they are forked as the command starts, before this process imports
    the library (pyarrow and our modules, 0.1-0.15 s), and import the analysis beside it;
    the run takes them (`take_early`) when its captures are found, and they are ended here
    if it did not (the command failed first, had nothing to analyse, or wanted more
    workers). Not where this process runs threads (`single_threaded`)."""
    if 0 < jobs <= EARLY_MAX and not _EARLY and single_threaded():
        early = pool(multiprocessing.get_context("fork"), jobs)
        with main_left_alone():
            early.executor.submit(int)  # the workers start (forks) with a task of nothing
        _EARLY.append(early)
    try:
        yield
    finally:
        while _EARLY:
            stop(_EARLY.pop().executor)


def take_early(jobs: int) -> Pool | None:
    """The workers `early_worker` started, now the caller's to use and to end, if there
    are at least ``jobs`` of them (more are left idle); else None."""
    return _EARLY.pop() if _EARLY and _EARLY[0].jobs >= jobs else None
