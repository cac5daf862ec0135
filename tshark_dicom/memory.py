"""Freed memory handed back to the system between the stages of a run.

glibc's malloc keeps memory a program has freed for its next allocations; after a stage
that made and dropped millions of small objects (the analysis of a long capture, the
writing of its tables) the pages stay with the process, and the next stage's peak comes
on top of them. `malloc_trim(0)` returns the free pages, so each stage starts from what is
really in use. Elsewhere (another C library, another system) it does nothing.

`one_arena` (the command line calls it first) keeps malloc to one arena: each thread that
allocates (pyarrow's and pandas' helpers) would otherwise get an arena of its own, whose
free pages no other thread reuses.

`frozen_imports` keeps the collector away from what a process imports once and keeps.
"""

from __future__ import annotations

import ctypes
import functools
import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: mallopt's M_ARENA_MAX (malloc.h)
_M_ARENA_MAX = -8


@functools.cache
def libc() -> ctypes.CDLL | None:
    """glibc, if this is a glibc system (no ldconfig search: a run must start fast)."""
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def one_arena() -> None:
    """Every thread's allocations from one malloc arena (glibc only)."""
    mallopt = getattr(libc(), "mallopt", None)
    if mallopt is not None:
        mallopt(_M_ARENA_MAX, 1)


def release() -> None:
    """Give free heap pages back to the system (glibc only; a millisecond on a small
    heap)."""
    trim = getattr(libc(), "malloc_trim", None)
    if trim is not None:
        trim(0)


@contextmanager
def frozen_imports() -> Iterator[None]:
    """Imports (pandas, pyarrow, pydicom, pynetdicom: a few hundred thousand objects that
    live as long as the process) without the garbage collector running over them again and
    again meanwhile, then moved out of its way for the rest of the run."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
