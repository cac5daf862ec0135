"""SVG text building blocks for the pictures: escaping of text from the traffic, number
formats people read at a glance, and a few elements (text, arrow, the document itself).

Everything that reaches SVG or HTML from the traffic goes through `esc`: HTML-escaped, with
control characters (which XML forbids) shown as ``\\x00``.
"""

from __future__ import annotations

import html
import math

import pandas as pd

from .safe import visible
from .units import fmt_bytes as fmt_bytes  # re-exported: the pages use it from here

_STYLE = (
    "<style>"
    ".tdp text{font-family:'DejaVu Sans',system-ui,sans-serif;font-size:12px;fill:#1f2937}"
    ".tdp .halo{paint-order:stroke;stroke:#fff;stroke-width:4px;stroke-linejoin:round}"
    ".tdp .small{font-size:11px;fill:#4b5563}"
    ".tdp .mono{font-family:'DejaVu Sans Mono',ui-monospace,monospace;font-size:11px;"
    "fill:#6b7280}"
    ".tdp .head{font-weight:600;font-size:13px}"
    ".tdp .note{font-style:italic;fill:#4b5563}"
    "</style>"
)


def esc(value: object, limit: int | None = None) -> str:
    """Text for SVG/HTML: control characters made visible (``\\x00``, `safe.visible`: XML
    forbids them), cut to ``limit`` characters with an ellipsis, then HTML-escaped."""
    text = visible("" if missing(value) else str(value))
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    return html.escape(text, quote=True)


def missing(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def ns(value: object) -> int | None:
    """A table timestamp as integer nanoseconds since the epoch."""
    if missing(value):
        return None
    if isinstance(value, pd.Timestamp):
        return int(value.value)
    return int(pd.Timestamp(value).value)  # type: ignore[arg-type]


def num(value: object) -> float | None:
    if missing(value):
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def to_int(value: object) -> int | None:
    number = num(value)
    return None if number is None else int(number)


def to_str(value: object) -> str | None:
    return None if missing(value) else str(value)


def fmt_ms(ms: float) -> str:
    """A duration people read at a glance: 0.21 ms, 3.4 ms, 502 ms, 5.02 s, 3 min 4 s."""
    if ms < 1:
        return f"{ms:.2f} ms"
    if ms < 10:
        return f"{ms:.1f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    minutes, seconds = divmod(ms / 1000, 60)
    return f"{minutes:.0f} min {seconds:.0f} s"


def text(x: float, y: float, content: str, cls: str = "", anchor: str = "start",
          fill: str | None = None, weight: str | None = None) -> str:
    """``content`` is already escaped."""
    attrs = f' class="{cls}"' if cls else ""
    attrs += f' text-anchor="{anchor}"' if anchor != "start" else ""
    attrs += f' style="fill:{fill}"' if fill else ""
    attrs += f' font-weight="{weight}"' if weight else ""
    return f'<text x="{x:.1f}" y="{y:.1f}"{attrs}>{content}</text>'


def arrow(x0: float, y0: float, x1: float, y1: float, colour: str, width: float,
           attrs: str = "", dashed: bool = False) -> str:
    """One path: the shaft and a filled head at (x1, y1)."""
    dx, dy = x1 - x0, y1 - y0
    length = math.hypot(dx, dy) or 1.0
    ux, uy = dx / length, dy / length
    head, half = 9.0, 4.0
    bx, by = x1 - ux * head, y1 - uy * head
    p1 = (bx - uy * half, by + ux * half)
    p2 = (bx + uy * half, by - ux * half)
    dash = ' stroke-dasharray="5 4"' if dashed else ""
    return (f'<path{attrs} d="M{x0:.1f},{y0:.1f} L{bx:.1f},{by:.1f} M{p1[0]:.1f},{p1[1]:.1f} '
            f'L{x1:.1f},{y1:.1f} L{p2[0]:.1f},{p2[1]:.1f} Z" stroke="{colour}" '
            f'stroke-width="{width}" fill="{colour}" stroke-linejoin="round"{dash}/>')


def document(width: float, height: float, cls: str, label: str, body: list[str],
         extra: str = "") -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="tdp {cls}" width="{width:.0f}" '
            f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
            f'aria-label="{label}"{extra}><title>{label}</title>{_STYLE}'
            + "".join(body) + "</svg>")


def empty(cls: str, message: str) -> str:
    return document(600, 40, cls, esc(message), [text(10, 24, esc(message), "note")])


def nice_step(span: float, target: int = 8) -> float:
    """The smallest 1-2-5 step that cuts ``span`` into at most ``target`` pieces."""
    if span <= 0:
        return 1.0
    raw = span / target
    power = 10.0 ** math.floor(math.log10(raw))
    for mult in (1, 2, 5, 10):
        if raw <= mult * power:
            return mult * power
    return 10 * power


def fmt_offset(ms: float, step_ms: float) -> str:
    if step_ms >= 1000:
        return f"{ms / 1000:g} s"
    return f"{ms:g} ms"

