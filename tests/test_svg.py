"""SVG building blocks: text from the traffic made safe, durations and sizes made readable."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pandas as pd
import pytest

from tshark_dicom import svg


def test_escaping_control_characters_and_limits() -> None:
    assert svg.esc("A\x00B\x1b<") == "A\\x00B\\x1b&lt;"
    assert svg.esc("\ud800") == "\\ud800"  # a lone surrogate cannot be encoded
    assert svg.esc(None) == "" and svg.esc(pd.NA) == "" and svg.esc(float("nan")) == ""
    assert svg.esc("ABCDEFGHIJ", 5) == "ABCD\u2026"
    assert svg.esc("\"'&") == "&quot;&#x27;&amp;"


def test_document_is_well_formed_svg() -> None:
    doc = svg.document(100, 50, "x", svg.esc("<label>"), [svg.text(1, 2, svg.esc("a&b"))])
    root = ET.fromstring(doc)
    assert root.tag == "{http://www.w3.org/2000/svg}svg" and root.get("width") == "100"
    assert ET.fromstring(svg.arrow(0, 0, 10, 10, "#000", 1.5, ' data-arrow="x"')) is not None


@pytest.mark.parametrize(("ms", "text"), [(0.213, "0.21 ms"), (3.42, "3.4 ms"), (502.4, "502 ms"),
                                          (5020.0, "5.02 s"), (184_000.0, "3 min 4 s")])
def test_durations_read_at_a_glance(ms: float, text: str) -> None:
    assert svg.fmt_ms(ms) == text


@pytest.mark.parametrize(("n", "text"), [(512, "512 B"), (38_870, "38.9 kB"),
                                         (9_175_616, "9.18 MB")])
def test_sizes_in_decimal_units(n: int, text: str) -> None:
    assert svg.fmt_bytes(n) == text


@pytest.mark.parametrize(("span", "step"), [(432.0, 100.0), (9.0, 2.0), (1800.0, 500.0),
                                             (0.37, 0.05)])
def test_nice_steps_cut_a_span_into_at_most_eight(span: float, step: float) -> None:
    assert svg.nice_step(span) == pytest.approx(step)
    assert span / svg.nice_step(span) <= 8
