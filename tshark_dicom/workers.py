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

import multiprocessing
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
