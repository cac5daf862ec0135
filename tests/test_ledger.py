"""Long associations flow through (association.drain, ledger.py, spill.py): messages leave
the association a batch at a time, operations are built and logged as they are answered,
records past a chunk wait on disk; and the tables are the same as when everything is held
to the end (here forced with tiny batches and chunks on real captures)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pandas as pd
import pytest

import tshark_dicom
from tshark_dicom import association, ledger, spill
from tshark_dicom.analysis import analyze_capture
from tshark_dicom.captureresult import FinishedAssociation
from tshark_dicom.dimse import decode_command_set
from tshark_dicom.records import REQUESTOR, MessageRecord
from tshark_dicom.schemas import TABLES
from tshark_dicom.spill import Spill
from tshark_dicom.timing import OperationBuilder, build_operations
from tshark_dicom.tshark import find_tshark

from .conftest import CAPTURES

#: Captures with many operations per association, pipelined or concurrent ones, queries
#: with matches and without, C-MOVE with callbacks, C-GET with a C-CANCEL, losses.
VARIED = ["concurrent.pcapng", "multi_store.pcapng", "qr_move_concurrent.pcapng",
          "qr_refine.pcapng", "qr_find_nomatch.pcapng", "find_move.pcapng",
          "c_get_cancel.pcapng", "lossy.pcapng", "store_statuses.pcapng",
          "n_services.pcapng", "hole.pcapng", "timing_slow_scp.pcapng",
          "timing_nagle.pcapng", "hostile_values.pcapng"]


@pytest.fixture
def tiny_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every association drains after each message and spills every third record."""
    monkeypatch.setattr(association, "SETTLE_AT", 1)
    monkeypatch.setattr(spill, "CHUNK", 3)


@pytest.mark.parametrize("name", VARIED)
def test_tiny_batches_and_chunks_give_the_same_tables(
        name: str, request: pytest.FixtureRequest) -> None:
    whole = tshark_dicom.analyze(CAPTURES / name)
    request.getfixturevalue("tiny_batches")
    streamed = tshark_dicom.analyze(CAPTURES / name)
    assert len(whole.messages) > 3
    for table in TABLES:
        if table == "captures":
            continue
        pd.testing.assert_frame_equal(whole.table(table), streamed.table(table),
                                      obj=f"{name}: {table}")


def test_a_long_association_leaves_its_messages_on_disk_while_packets_flow(
        tiny_batches: None) -> None:
    seen: list[tuple[int, int, bool]] = []

    def on_association(done: FinishedAssociation) -> None:
        seen.append((len(done.messages), done.assoc.message_count, done.messages.on_disk))
        assert not done.assoc.messages  # nothing left behind in the association

    analyze_capture(CAPTURES / "multi_store.pcapng", label="m", tshark=find_tshark(None),
                    on_association=on_association)
    assert seen and all(n == count for n, count, _ in seen)
    assert any(on_disk for n, _, on_disk in seen if n > 3)


def _command(field: int, mid: int, *, responds: bool = False, status: int | None = None
             ) -> bytes:
    """A command set, implicit VR little endian (PS3.7 E.1)."""
    def elem(tag: int, value: bytes) -> bytes:
        return (tag >> 16).to_bytes(2, "little") + (tag & 0xFFFF).to_bytes(2, "little") + \
            len(value).to_bytes(4, "little") + value

    def us(v: int) -> bytes:
        return v.to_bytes(2, "little")

    body = elem(0x00000002, b"1.2.840.10008.1.1\x00")  # Verification SOP Class
    body += elem(0x00000100, us(field))
    body += elem(0x00000120 if responds else 0x00000110, us(mid))
    body += elem(0x00000800, us(0x0101))  # no data set
    if status is not None:
        body += elem(0x00000900, us(status))
    return elem(0x00000000, len(body).to_bytes(4, "little")) + body


def _msg(index: int, sender: str, raw: bytes, request_index: int | None,
         category: str | None = None) -> MessageRecord:
    cmd = decode_command_set(raw)
    return MessageRecord(index, sender, 1, cmd, request_index, category, None, None,
                         index + 1, index + 1, index * 1000, index * 1000 + 10, 1, None,
                         len(raw))


def _echoes(n: int, unanswered_first: bool = False) -> list[MessageRecord]:
    """n C-ECHOs, two at a time in flight, answered out of order (after one never
    answered)."""
    out: list[MessageRecord] = []
    acceptor = "acceptor"
    if unanswered_first:
        out.append(_msg(0, REQUESTOR, _command(0x0030, 999), None))
    for i in range(0, n, 2):
        a, b = len(out), len(out) + 1
        out.append(_msg(a, REQUESTOR, _command(0x0030, i + 1), None))
        out.append(_msg(b, REQUESTOR, _command(0x0030, i + 2), None))
        out.append(_msg(b + 1, acceptor, _command(0x8030, i + 2, responds=True, status=0), b,
                        "Success"))
        out.append(_msg(b + 2, acceptor, _command(0x8030, i + 1, responds=True, status=0), a,
                        "Success"))
    return out


def _fields(ops: list) -> list[tuple]:  # type: ignore[type-arg]
    return [(o.op_index, o.request_index, o.final_response_index, o.responses,
             o.response_indices, o.cancel_index, o.last_frame, o.status) for o in ops]


@pytest.mark.parametrize("batch", [1, 2, 3, 7])
def test_operations_built_in_batches_equal_those_built_at_once(batch: int) -> None:
    messages = _echoes(20)
    builder = OperationBuilder()
    ops = []
    for i in range(0, len(messages), batch):
        ops.extend(builder.add(messages[i:i + batch]))
    assert _fields(ops) == _fields(build_operations(messages))
    assert len(ops) == 20 and all(o.final_response_index is not None for o in ops)


def test_an_operation_handed_on_before_its_answer_gets_it_as_a_patch() -> None:
    messages = _echoes(4)
    builder = OperationBuilder()
    first = builder.add(messages[:2])  # two requests, no answers yet
    builder.handed_on(first[0])  # logged while still waiting
    builder.add(messages[2:])
    assert first[0].final_response_index is None  # the record left: it was not touched
    patched = builder.patched(pickle.loads(pickle.dumps(first[0])))
    assert _fields([patched]) == _fields(build_operations(messages)[:1])


def test_a_ledger_logs_answered_operations_in_request_order_and_keeps_few_waiting(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spill, "CHUNK", 4)
    monkeypatch.setattr(ledger, "WAITING_MAX", 3)
    messages = _echoes(40, unanswered_first=True)
    book = ledger.Ledger()
    for i in range(0, len(messages), 5):
        book.take(messages[i:i + 5], [])
        assert len(book._waiting) <= 3  # the unanswered one does not hold the rest back
    book.finish()
    assert book.ops.on_disk and book.messages.on_disk
    assert _fields(list(book.ops)) == _fields(build_operations(messages))
    assert [m.msg_index for m in book.messages] == list(range(len(messages)))


def test_spill_keeps_order_across_chunks_and_rewrites(tmp_path: Path) -> None:
    s: Spill[int] = Spill(range(10), chunk=3)
    assert s.on_disk and len(s) == 10 and list(s) == list(range(10))
    assert [(a, b) for a in s for b in s][:12] == [(0, b) for b in range(10)] + [(1, 0), (1, 1)]
    s.rewrite(lambda x: x * 2)
    assert list(s) == [x * 2 for x in range(10)] and len(s) == 10
    s.append(99)
    assert list(s)[-1] == 99 and s.first() == 0
    items = s.as_list()
    assert items == [*(x * 2 for x in range(10)), 99] and not s.on_disk
    small: Spill[str] = Spill(["a"])
    assert not small.on_disk and list(small) == ["a"]
