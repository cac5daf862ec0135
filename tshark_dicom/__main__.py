"""``python -m tshark_dicom`` is the same program as ``tshark-dicom``, whose console script
calls `main` here."""

import os
import sys


def main() -> None:
    """The command line (`cli.main`), imported here: a Ctrl-C while it loads (typer, click
    and the rest, about 30 ms of every start) is one line and exit 130, as it is later, not
    a traceback of the import under way. (Before this module runs, Python's own start-up
    answers one with its own message: nothing of ours is loaded yet.)"""
    try:
        from .cli import main as command
    except KeyboardInterrupt:
        sys.stderr.write("Error: interrupted as it started; nothing was done\n")
        sys.stderr.flush()
        os._exit(130)
    command()


if __name__ == "__main__":
    main()
