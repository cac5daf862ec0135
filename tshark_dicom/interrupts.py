"""Where a Ctrl-C that came while compiled code ran is delivered.

CPython runs a Python signal handler (Ctrl-C's is the one that raises KeyboardInterrupt)
between two bytecodes, and compiled code (setup.py's COMPILED, mypyc) runs none: a Ctrl-C
that comes while the packet reader runs stays pending until the loop calls Python code.
The reader calls `check` after each read of the converter's output (a MiB at most), so a
notebook's interrupt stops an analysis within milliseconds, by the ordinary exception
path. This module must stay uncompiled: a call into it is what runs the bytecode.
"""

from __future__ import annotations


def check() -> None:
    """Run the handlers of signals that arrived meanwhile (a KeyboardInterrupt is raised
    from here): calling any Python function does, as it starts."""
