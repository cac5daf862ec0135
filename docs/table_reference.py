#!/usr/bin/env python3
"""Rewrite the README's table reference from the schemas in code (tshark_dicom/schemas.py
for the dtypes, tshark_dicom/columns.py for the meaning); tests/test_docs.py fails when
the README and the code drift apart.

    .venv/bin/python docs/table_reference.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tshark_dicom import SCHEMAS  # noqa: E402
from tshark_dicom.columns import reference_markdown, replace_reference  # noqa: E402

if __name__ == "__main__":
    readme = ROOT / "README.md"
    readme.write_text(replace_reference(readme.read_text(), reference_markdown(SCHEMAS)))
    print("wrote the table reference into", readme.relative_to(ROOT))
