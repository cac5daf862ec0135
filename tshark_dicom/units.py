"""Quantities as people read them, for every page and line that shows one. Imports nothing:
the live view (no pandas) and the pages (no pydicom) both use it."""

from __future__ import annotations


def fmt_bytes(n: float) -> str:
    """Decimal units, as network rates are: 512 B, 38.9 kB, 9.18 MB."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} B"
