"""``python -m tshark_dicom`` is the same program as ``tshark-dicom``."""

from .cli import main

main()
