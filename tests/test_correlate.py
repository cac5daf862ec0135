"""C-MOVE correlation on hand-made records: exact where the evidence is, uncertain (never a
guess) where two C-MOVEs fit, and nothing outside a C-MOVE's lifetime. The real-capture
checks are in test_queries.py."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from tshark_dicom.correlate import correlate
from tshark_dicom.streams import ConnectionAttempt
from tshark_dicom.timing import OperationRecord

MS = 1_000_000
ARCHIVE = ("10.0.0.9", 104)


def _assoc(calling: str, called: str, requestor: tuple[str, int], acceptor: tuple[str, int],
           start_ms: float) -> Any:
    return SimpleNamespace(calling_ae=calling, called_ae=called, requestor=requestor,
                           acceptor=acceptor, requested_ns=int(start_ms * MS),
                           first_ns=int(start_ms * MS), last_ns=int((start_ms + 1000) * MS))


def _correlate(assocs: list[Any], ops: list[Any], attempts: list[Any]) -> Any:
    """correlate(), each association's stream its place in the list (as in a capture with
    only DICOM streams): the ids it writes are streams."""
    for i, a in enumerate(assocs):
        a.stream = i
    return correlate(assocs, ops, attempts)


def _op(index: int, command: str, start_ms: float, end_ms: float | None, *,
        request_index: int = 0, scu: str = "requestor", dest: str | None = None,
        message_id: int = 1, status: str = "Success") -> OperationRecord:
    op = OperationRecord(index, command, scu, "acceptor" if scu == "requestor" else "requestor",
                         message_id, request_index, None, None, dest, 1, 2,
                         int(start_ms * MS), int(start_ms * MS) + 1, 100)
    op.response_complete_ns = None if end_ms is None else int(end_ms * MS)
    op.status_category = status
    return op


def _store(start_ms: float, end_ms: float, originator: str | None, originator_id: int | None
           ) -> OperationRecord:
    """A C-STORE sub-operation with its Move Originator AE and Message ID."""
    op = _op(0, "C-STORE", start_ms, end_ms)
    op.move_originator_ae, op.move_originator_message_id = originator, originator_id
    return op


def _two_moves(originators: list[tuple[str | None, int | None]]) -> tuple[list[Any], list[Any]]:
    """Two SCUs C-MOVE at once to DEST through ARCHIVE; two callbacks from ARCHIVE to DEST."""
    assocs = [
        _assoc("SCU-A", "ARCHIVE", ("10.0.0.1", 40000), ARCHIVE, 0),
        _assoc("SCU-B", "ARCHIVE", ("10.0.0.2", 40000), ARCHIVE, 5),
        _assoc("ARCHIVE", "DEST", (ARCHIVE[0], 50000), ("10.0.0.3", 11112), 20),
        _assoc("ARCHIVE", "DEST", (ARCHIVE[0], 50001), ("10.0.0.3", 11112), 25),
    ]
    ops = [
        [_op(0, "C-MOVE", 10, 500, dest="DEST", message_id=7)],
        [_op(0, "C-MOVE", 15, 600, dest="DEST", message_id=9)],
        [_store(30, 40, *originators[0])],
        [_store(35, 45, *originators[1])],
    ]
    return assocs, ops


def test_two_moves_to_one_destination_with_originators_are_exact() -> None:
    assocs, ops = _two_moves([("SCU-B", 9), ("SCU-A", 7)])
    _correlate(assocs, ops, [])
    assert ops[0][0].callback_assoc_ids == [3] and ops[1][0].callback_assoc_ids == [2]
    assert (ops[2][0].parent_assoc_id, ops[2][0].link) == (1, "move-originator")
    assert (ops[3][0].parent_assoc_id, ops[3][0].link) == (0, "move-originator")


def test_two_moves_to_one_destination_without_originators_stay_uncertain() -> None:
    assocs, ops = _two_moves([("ARCHIVE", 1), ("ARCHIVE", 2)])  # the archive's own AE
    _correlate(assocs, ops, [])
    for store in (ops[2][0], ops[3][0]):
        assert store.parent_assoc_id is None and store.link == "uncertain"
    for move in (ops[0][0], ops[1][0]):
        assert move.callback_assoc_ids == [] and move.link == "uncertain"


def test_a_callback_outside_the_move_is_not_its_own() -> None:
    assocs = [_assoc("SCU", "ARCHIVE", ("10.0.0.1", 40000), ARCHIVE, 0),
              _assoc("ARCHIVE", "DEST", (ARCHIVE[0], 50000), ("10.0.0.3", 11112), 900)]
    ops = [[_op(0, "C-MOVE", 10, 500, dest="DEST")], [_op(0, "C-STORE", 901, 902)]]
    _correlate(assocs, ops, [])
    assert ops[0][0].callback_assoc_ids == [] and ops[1][0].parent_assoc_id is None


def test_refused_attempts_belong_to_the_move_in_progress() -> None:
    assocs = [_assoc("SCU", "ARCHIVE", ("10.0.0.1", 40000), ARCHIVE, 0)]
    ops = [[_op(0, "C-MOVE", 10, 500, dest="DEST")]]
    attempts = [
        ConnectionAttempt(3, (ARCHIVE[0], 50000), ("10.0.0.3", 11112), 20 * MS, 21 * MS, 9, 1,
                          "refused"),
        ConnectionAttempt(4, ("10.0.0.7", 50000), ("10.0.0.3", 11112), 20 * MS, 21 * MS, 9, 1,
                          "refused"),  # another host: not the archive
        ConnectionAttempt(5, (ARCHIVE[0], 50001), ("10.0.0.3", 11112), 800 * MS, 801 * MS, 19,
                          1, "refused"),  # after the C-MOVE ended
    ]
    _correlate(assocs, ops, attempts)
    assert ops[0][0].callback_attempt_ids == [0]


def test_c_get_sub_operations_on_its_own_association() -> None:
    assocs = [_assoc("SCU", "ARCHIVE", ("10.0.0.1", 40000), ARCHIVE, 0)]
    ops = [[_op(0, "C-GET", 10, 500), _op(1, "C-STORE", 20, 30, scu="acceptor",
                                          status="Failure"),
            _op(2, "C-STORE", 40, 50, scu="acceptor"), _op(3, "C-STORE", 700, 710)]]
    _correlate(assocs, ops, [])
    get = ops[0][0]
    assert (get.suboperations_seen, get.suboperations_failed, get.link) == (2, 1,
                                                                           "same-association")
    assert [o.parent_op_index for o in ops[0][1:]] == [0, 0, None]
