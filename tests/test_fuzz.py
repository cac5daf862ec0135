"""Fuzzing (issue 10): nothing escapes as an exception, memory stays bounded, every run ends.

In-process, property-based (hypothesis, generators in tests/fuzzgen.py), 10,500 cases in
all, derandomized so that the suite is repeatable (benchmarks/fuzz_long.py runs the same
properties with fresh random data, far longer):

- the PDU parser on conversations and raw bytes, in any chunking, with gaps;
- the command-set decoder on command sets right and wrong;
- the identifier decoder on identifiers with nested sequences of undefined length;
- the whole chain after tshark (streams, PDUs, DIMSE, associations, objects, operations,
  timing, queries, correlation, findings) on damaged conversations in damaged TCP.

Then a mutation fuzzer over real fixture captures through the command line (both engines,
``--cross-check``, ``--port``): exit 0 or 1, one line on error, never an internal error,
nothing written outside OUT.
"""

from __future__ import annotations

import random
import resource
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tshark_dicom.cli import app
from tshark_dicom.dimse import CommandSetError, decode_command_set
from tshark_dicom.pdu import PduParser
from tshark_dicom.queries import decode_identifier

from . import fuzzgen as F
from .conftest import CAPTURES

#: per case: anything slower than this is a hang
CASE_LIMIT_S = 10.0
#: what the whole in-process fuzz may add to the process's peak memory
MEMORY_LIMIT_MB = 300


def fuzz_settings(n: int) -> Any:
    return settings(max_examples=n, deadline=None, database=None, derandomize=True,
                    suppress_health_check=list(HealthCheck), print_blob=True)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.fixture(scope="module", autouse=True)
def bounded_memory() -> Any:
    """The fuzz cases of this module together may not grow the peak RSS by more than
    MEMORY_LIMIT_MB (a 4 GB length field must never be believed)."""
    before = _peak_mb()
    yield
    grown = _peak_mb() - before
    assert grown < MEMORY_LIMIT_MB, f"peak memory grew by {grown:.0f} MB during the fuzz"


class CountingSink:
    """An UpperLayerSink that only checks what it is told is well-formed."""

    def __init__(self) -> None:
        self.events = 0

    def __getattr__(self, name: str) -> Any:
        def event(*args: Any) -> None:
            self.events += 1
        return event


def _timed(fn: Any, *args: Any) -> Any:
    started = time.monotonic()
    out = fn(*args)
    assert time.monotonic() - started < CASE_LIMIT_S, "a case took too long (a hang?)"
    return out


# -- the PDU parser ----------------------------------------------------------------------------


def prop_pdu_parser(conv: F.Conversation, chunks: list[int], gaps: list[tuple[int, int]],
                    garbage: bytes) -> None:
    """The PDU parser takes any bytes, in any chunking, with gaps anywhere."""
    data = garbage + b"".join(p for _, p in conv.pdus)

    def run() -> None:
        parser = PduParser(CountingSink())
        pos, i, frame = 0, 0, 1
        gap_at = {at: n for at, n in gaps}
        while pos < len(data):
            size = chunks[i % len(chunks)]
            parser.data(data[pos:pos + size], frame, frame * 1000)
            if pos in gap_at:
                parser.gap(gap_at[pos], frame, frame * 1000, "lost" if i % 2 else "snaplen")
            pos, i, frame = pos + size, i + 1, frame + 1
        parser.end("fin", frame, frame * 1000)

    _timed(run)


# -- the command-set decoder -------------------------------------------------------------------


def prop_command_set(made: tuple[bytes, bool], cut: int, tail: bytes) -> None:
    """The command-set decoder raises only CommandSetError."""
    data = made[0]
    for blob in (data, data[:cut], data + tail):
        try:
            cmd = _timed(decode_command_set, blob)
        except CommandSetError:
            continue
        assert isinstance(cmd.command, str) and isinstance(cmd.problems, tuple)


# -- the identifier decoder --------------------------------------------------------------------


def prop_identifier(data: bytes, syntax: str | None, cut: int) -> None:
    """The identifier decoder raises only ValueError (a deflate bomb included)."""
    for blob in (data, data[:cut]):
        try:
            keys = _timed(decode_identifier, blob, syntax, "request", 0)
        except ValueError:
            continue
        for k in keys:
            assert k.value is None or isinstance(k.value, str)


# -- everything after tshark -------------------------------------------------------------------


def prop_whole_chain(conv: F.Conversation, plan: F.TcpPlan, port: bool) -> None:
    """Everything after tshark takes any damaged conversation in damaged TCP."""
    pkts = F.packets(conv, plan)
    result = _timed(F.analyse_packets, pkts, frozenset({104}) if port else frozenset())
    for assoc in (done.assoc for done in result.associations):
        assert assoc.result in ("accepted", "rejected", "no-response", "unknown")
        assert all(f.severity in ("error", "warning", "note") for f in assoc.findings)
        assert all(isinstance(f.summary, str) for f in assoc.findings)


#: (property, its strategies, cases in the bounded run): 10,500 in all
PROPERTIES: list[tuple[Any, tuple[Any, ...], int]] = [
    (prop_pdu_parser, (F.conversation(), st.lists(st.integers(1, 70000), min_size=1, max_size=8),
                       st.lists(st.tuples(st.integers(0, 5000), st.integers(1, 0xFFFFFFFF)),
                                max_size=3), st.binary(max_size=64)), 3000),
    (prop_command_set, (F.command_set(), st.integers(0, 200), st.binary(max_size=8)), 2500),
    (prop_identifier, (F.identifier(), st.sampled_from(
        [None, "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2",
         "1.2.840.10008.1.2.1.99"]), st.integers(0, 400)), 1500),
    (prop_whole_chain, (F.conversation(), F.tcp_plan, st.booleans()), 3500),
]


@pytest.mark.parametrize(("prop", "strategies", "cases"), PROPERTIES,
                         ids=[p[0].__name__.removeprefix("prop_") for p in PROPERTIES])
def test_fuzz(prop: Any, strategies: tuple[Any, ...], cases: int) -> None:
    fuzz_settings(cases)(given(*strategies)(prop))()


def test_a_deflate_bomb_is_not_inflated() -> None:
    """Found by the fuzz: a deflated identifier that cannot be inflated raised zlib.error
    and ended the capture; one that inflates to gigabytes must not take the memory."""
    import zlib

    bomb = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    data = bomb.compress(b"\0" * (64 << 20)) + bomb.flush()
    for blob in (data, b"\x08\x00R\x00\x06\x00\x00\x00STUDY "):
        with pytest.raises(ValueError, match="deflated identifier"):
            decode_identifier(blob, "1.2.840.10008.1.2.1.99", "request", 0)


# -- mutated real captures through the command line --------------------------------------------

#: (fixture, options) pairs the bounded run goes through; benchmarks/fuzz_long.py draws many
CLI_CASES = [
    ("echo", ["--engine", "raw"]), ("store_statuses", ["--engine", "ek"]),
    ("find_move", ["--cross-check"]), ("mid_association", ["--port", "11126"]),
    ("store_11112", ["--engine", "ek", "--cross-check"]), ("abort", ["--engine", "raw"]),
    ("n_services", ["--port", "11130", "--engine", "ek"]), ("hostile_values", ["--cross-check"]),
    ("c_get_cancel", []), ("qr_refine", ["--engine", "ek"]), ("rq_segments", ["--cross-check"]),
    ("reject_called_ae", ["--port", "11114"]),
]


def run_mutated(capture: Path, out: Path, options: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["analyze", str(capture), "-o", str(out), "-q",
                                      *options])
    return result.exit_code, result.output


@pytest.mark.parametrize(("name", "options"), CLI_CASES,
                         ids=[f"{n}{''.join(o)}" for n, o in CLI_CASES])
def test_mutated_captures_through_the_cli(tmp_path: Path, name: str, options: list[str]) -> None:
    rng = random.Random(f"{name}{options}")
    ((_, data),) = F.fixture_pcaps(CAPTURES, tmp_path, [name])
    for i in range(2):
        mutated, how = F.mutate_capture(data, rng)
        work = tmp_path / f"case{i}"
        work.mkdir()
        capture = work / "in.pcap"
        capture.write_bytes(mutated)
        started = time.monotonic()
        code, output = run_mutated(capture, work / "out", options)
        assert time.monotonic() - started < 120, how
        assert code in (0, 1), f"{how}: exit {code}: {output}"
        assert "internal error" not in output and "Traceback" not in output, (how, output)
        if code == 1:
            assert len(output.strip().splitlines()) == 1, (how, output)
        outside = {p.name for p in work.iterdir()} - {"in.pcap", "out"}
        assert not outside, (how, outside)
