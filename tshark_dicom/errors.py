"""The exception tree of tshark-dicom.

Library errors are raised only for input that cannot be analysed at all; malformed traffic
inside a readable capture is never an exception but a row in the findings table.

    TsharkDicomError            base of everything we raise
     ├── TsharkNotFoundError     no tshark executable (says how to install it)
     ├── TsharkError             tshark started but failed or is too old
     ├── CaptureError            a capture file is missing, unreadable or not a capture
     ├── OptionsError            the options asked for cannot work (bad port, jobs, format...)
     ├── OutputError             the environment refused a write (disk full, permission
     │                           denied, read-only file system): not the input's fault
     └── HelperError             a helper process of ours ended before it answered (killed,
                                 out of memory): the capture's analysis cannot finish

The command line turns each of these into one ``Error: ...`` line: exit code 1, except
``OptionsError`` which is a usage error, exit code 2, and ``OutputError``, exit code 4.
"""

from __future__ import annotations

import errno
import os


class TsharkDicomError(Exception):
    """Base class of every error tshark-dicom raises."""


class TsharkNotFoundError(TsharkDicomError):
    """tshark is not installed or not where we were told it is."""


class TsharkError(TsharkDicomError):
    """tshark ran but failed, or its version is too old for what we ask of it."""


class CaptureError(TsharkDicomError):
    """A capture file is missing, unreadable or not a packet capture."""


class OptionsError(TsharkDicomError):
    """The options given cannot work together (a usage error)."""


class OutputError(TsharkDicomError):
    """Results could not be written: the file system is full, read-only, or not ours."""


class HelperError(TsharkDicomError):
    """A helper process (sidehash.py's) ended before it answered: killed, out of memory."""


#: errno values that say "the environment", not "a bug": full, quota, permissions,
#: read-only, too big, out of descriptors or memory, an I/O error of the device.
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM,
                                errno.EROFS, errno.EFBIG, errno.EMFILE, errno.ENFILE,
                                errno.ENOMEM, errno.EIO})


def output_error(exc: OSError, where: str | os.PathLike[str]) -> OutputError | None:
    """An OSError of the environment as an OutputError naming the path (the file the
    error names, else ``where``); None for any other OSError."""
    if exc.errno not in ENVIRONMENT_ERRNOS:
        return None
    path = exc.filename if exc.filename is not None else where
    reason = exc.strerror or os.strerror(exc.errno or 0)
    return OutputError(f"{os.fsdecode(path)}: cannot write: {reason}")


class UnsupportedLinkType(Exception):
    """The pcap stream's link type is not one the raw engine reads (use the ek engine).

    Internal (the raw engine's way of saying so, never an error a caller sees), raised by
    the compiled reader (packets.py) but defined here, uncompiled: an exception class of a
    compiled module has no ``__dict__``, and tblib's pickling (installed once `distributed`
    is imported) then failed on it, and on any error whose chain held it, in a worker."""
