"""Replacing the results in an output folder by a new run's so that, whenever the run is
killed (SIGKILL, power cut) or a move fails, the folder holds the old results or the new
ones, whole; and cleaning up after killed runs.

Work folders are hidden inside OUT, named ``.tshark-dicom-<kind>-<random>`` (never by PID
alone: in a container every run may be PID 1), and locked (``flock`` on their ``.lock``)
by the run that made them for as long as it lives, so a folder whose lock is free belongs
to a dead run, whatever its PID:

    .tshark-dicom-run-*      a new run being built (staging): removed when stale
    .tshark-dicom-partial-*  objects of an in-place run not yet moved in: removed when stale
    .tshark-dicom-old-*      the earlier results, moved aside during a swap

The swap (`replace`), from staging folder S into OUT:

    1. make A = OUT/.tshark-dicom-old-* (locked)
    2. move the earlier results into A, run.json first
    3. mark A complete (A/.complete)
    4. move the new results in from S, run.json last     <- the commit point
    5. remove A, then S

A swap that fails (an entry that cannot be moved) is undone at once and raises. A swap cut
short is finished by the next run or `tshark_dicom.load` (`recover`): for an old folder
whose lock is free, OUT/run.json there means the new run was committed (A is removed);
otherwise the swap is undone (the new entries that came in are removed, if A was complete,
and the old ones moved back).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import signal
import tempfile
from pathlib import Path

from .errors import TsharkDicomError
from .schemas import TABLES
from .store import MANIFEST, TABLES_DIR

log = logging.getLogger(__name__)

PREFIX = ".tshark-dicom-"
LOCK = ".lock"
COMPLETE = ".complete"
#: Set to a checkpoint's name, the run stops itself there (SIGSTOP): for tests that kill a
#: run at a known point. Never set in normal use.
PAUSE_ENV = "TSHARK_DICOM_PAUSE_AT"


def checkpoint(name: str) -> None:
    """A named point of a run where a test may stop it (``TSHARK_DICOM_PAUSE_AT``)."""
    if os.environ.get(PAUSE_ENV) == name:
        os.kill(os.getpid(), signal.SIGSTOP)


def result_entries(folder: Path) -> list[str]:
    """The names in ``folder`` that are results of a run (this layout or the one-file one
    of version 0.1), run.json first; anything else in the folder is not ours."""
    names = [MANIFEST, TABLES_DIR, "csv", "objects", "summary.txt", "report.html"]
    names += [f"{t}.{ext}" for t in TABLES for ext in ("parquet", "csv")]
    return [n for n in names if os.path.lexists(folder / n)]


class WorkDir:
    """A hidden work folder inside ``parent``, unique and locked while this run lives."""

    def __init__(self, parent: Path, kind: str) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{kind}-", dir=parent))
        self._fd: int | None = os.open(self.path / LOCK, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def remove(self) -> bool:
        """Remove the folder; False (and the folder left for a later sweep) if it could not
        all be removed."""
        ok = _rmtree(self.path)
        self.release()
        return ok


def _rmtree(path: Path) -> bool:
    shutil.rmtree(path, ignore_errors=True)
    return not os.path.lexists(path)


def held(folder: Path) -> bool:
    """Whether a live run holds this work folder's lock (a folder without one: no)."""
    try:
        fd = os.open(folder / LOCK, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


def _stale(folder: Path, kind: str) -> list[Path]:
    try:
        found = [p for p in folder.iterdir() if p.name.startswith(PREFIX + kind)
                 and p.is_dir() and not p.is_symlink()]
    except OSError:
        return []
    return sorted(p for p in found if not held(p))


def recover(folder: Path) -> None:
    """Finish or undo any swap a killed run left in ``folder``, then remove the work
    folders of killed runs. Raises TsharkDicomError when an undo cannot be done."""
    for old in _stale(folder, "old-"):
        if (folder / MANIFEST).is_file():  # committed: the new results are all in
            log.info("%s: removing the earlier results a killed run left in %s", folder,
                     old.name)
            if not _rmtree(old):
                log.warning("%s: cannot remove all of %s (earlier results); remove it by "
                            "hand", folder, old)
            continue
        log.info("%s: undoing a replacement a killed run left unfinished", folder)
        try:
            _undo(old, folder)
        except OSError as exc:
            raise TsharkDicomError(
                f"{folder}: a killed run left its earlier results in {old.name} and they "
                f"cannot be moved back ({_why(exc)}); move them back by hand") from None
        _rmtree(old)
    for kind in ("run-", "partial"):  # "partial": also the unsuffixed name of 0.1 runs
        for stale in _stale(folder, kind):
            log.info("%s: removing %s, left by a killed run", folder, stale.name)
            _rmtree(stale)


def _undo(old: Path, folder: Path) -> None:
    """Put the earlier results in ``old`` back into ``folder``; if the swap had begun moving
    the new ones in, those go first."""
    if (old / COMPLETE).exists():
        for name in result_entries(folder):
            path = folder / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    for item in sorted(old.iterdir(), key=lambda p: p.name == MANIFEST):  # run.json last
        if item.name not in (LOCK, COMPLETE):
            os.rename(item, folder / item.name)


def replace(staging: WorkDir, folder: Path) -> None:
    """Swap the finished run in ``staging`` for the results in ``folder`` (see the module
    docstring); the staging folder is removed. Raises TsharkDicomError, with the earlier
    results in place, when a move fails."""
    aside = WorkDir(folder, "old")
    name, what = "", "move the earlier results aside"
    try:
        for name in result_entries(folder):  # run.json first: OUT without it = not committed
            os.rename(folder / name, aside.path / name)
            checkpoint(f"old-aside:{name}")
        (aside.path / COMPLETE).touch()
        name, what = "", "move the new results in"
        new = [p for p in staging.path.iterdir() if p.name != LOCK]
        new.sort(key=lambda p: p.name == MANIFEST)  # run.json last: the commit point
        for item in new:
            name = item.name
            os.rename(item, folder / name)
            checkpoint(f"new-in:{name}")
    except BaseException as exc:  # a move failed, or Ctrl-C: the earlier results go back
        try:
            _undo(aside.path, folder)
        except OSError as again:
            aside.release()  # the next run or load() tries again
            raise TsharkDicomError(
                f"{folder}: cannot move the new results in nor the earlier ones back "
                f"({_why(again)}); they are in {aside.path.name}") from None
        aside.remove()
        if not isinstance(exc, OSError):
            raise
        raise TsharkDicomError(f"{folder}: cannot {what} ({name or exc.filename}: "
                               f"{_why(exc)}): the earlier results are kept as they were "
                               "and this run's are not") from None
    checkpoint("committed")
    if not aside.remove():
        log.warning("%s: the earlier results could not all be removed from %s; remove it "
                    "by hand", folder, aside.path)
    staging.remove()


def _why(exc: OSError) -> str:
    return exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
