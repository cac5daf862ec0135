"""The worker processes of ``--jobs N``: where they come from, kept light to import.

Workers are forked from a fork server (multiprocessing's ``forkserver``) that has imported
the analysis once (pandas, pyarrow, pydicom, pynetdicom: about half a second); each worker
is a fork of it and starts with everything loaded, instead of importing it all again as a
spawned one would. The command line starts the server before it imports anything heavy
itself (`start_early`), so that the server's imports and ours run on two cores at once.

Not a plain fork of this process: it may run threads (tshark's stderr readers, the
progress display), and a fork taken while one of them holds a lock deadlocks the child.
The server is single-threaded. It is started once per process and stays until the process
ends; what a worker must see of this process's state at the time of the run (the umask of
`store.output_mode`; the working directory travels with multiprocessing's own preparation
data) is handed to it when the pool starts (batch.py).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
from collections.abc import Iterator
from multiprocessing.context import BaseContext

#: What the fork server imports before it forks the first worker.
PRELOAD = ["tshark_dicom.batch"]


def context() -> BaseContext:
    """The multiprocessing context the worker pools use (its server preloads PRELOAD)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def start_early() -> None:
    """Start the fork server now (it imports PRELOAD while this process goes on)."""
    from multiprocessing import forkserver

    context()
    forkserver.ensure_running()



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
