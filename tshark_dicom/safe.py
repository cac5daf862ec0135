"""Text from the traffic made safe where it leaves the tool: terminal, CSV, HTML.

Captures carry whatever a peer chose to send: AE titles, error comments, UIDs and query
values with control characters, terminal escape sequences, spreadsheet formulas. The tables
keep them exactly (Parquet); these helpers are called at each output point so that

- a terminal never receives a control character (an ESC sequence could clear the screen or
  set the window title; a CR/LF inside an AE title could print a fake finding line):
  `visible` shows each as ``\\x1b``, ``\\r``...;
- a spreadsheet never runs a CSV cell as a formula (OWASP "CSV injection"): `csv_cell`
  puts an apostrophe before text starting with ``=``, ``+``, ``-``, ``@``, tab or CR, and
  `csv_uncell` takes it off again when the CSV is read back;
- HTML holds no raw control character (svg.esc, built on `visible`).

Nothing here imports from the rest of the package: every stage may use it.
"""

from __future__ import annotations

import re

#: C0 and C1 control characters, DEL, surrogates and non-characters, the line and
#: paragraph separators and the bidirectional overrides (which reorder what is shown).
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                     "\ud800-\udfff\ufffe\uffff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _show(match: re.Match[str]) -> str:
    ch = match.group()
    code = ord(ch)
    return _NAMED.get(ch) or (f"\\x{code:02x}" if code < 256 else f"\\u{code:04x}")


def visible(text: str) -> str:
    """``text`` with every control character shown as an escape (``\\x1b``, ``\\r``,
    ``\\u202e``): one line, and nothing a terminal or a browser would act on."""
    return CONTROL.sub(_show, text)


def visible_lines(lines: list[str]) -> str:
    """Lines built by the tool, each made `visible`, joined by newlines: the only line
    breaks in the result are the tool's own."""
    return "\n".join(visible(line) for line in lines)


#: First characters that make a spreadsheet read a cell as a formula (OWASP).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A text cell for CSV, neutralised: an apostrophe before text whose first character
    after any apostrophes starts a formula (so `csv_uncell` can always undo it). Other
    values (numbers, missing values) are returned as they are."""
    if isinstance(value, str) and value.lstrip("'").startswith(FORMULA_START):
        return "'" + value
    return value


def csv_uncell(value: object) -> object:
    """The inverse of `csv_cell`, for CSV read back."""
    if isinstance(value, str) and value.startswith("'") and \
            value.lstrip("'").startswith(FORMULA_START):
        return value[1:]
    return value
