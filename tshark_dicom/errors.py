"""The exception tree of tshark-dicom.

Library errors are raised only for input that cannot be analysed at all; malformed traffic
inside a readable capture is never an exception but a row in the findings table.

    TsharkDicomError            base of everything we raise
     ├── TsharkNotFoundError     no tshark executable (says how to install it)
     ├── TsharkError             tshark started but failed or is too old
     ├── CaptureError            a capture file is missing, unreadable or not a capture
     └── OptionsError            the options asked for cannot work (bad port, jobs, format...)

The command line turns each of these into one ``Error: ...`` line: exit code 1, except
``OptionsError`` which is a usage error, exit code 2.
"""

from __future__ import annotations


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
