"""qrpreview.py: what correlation says of a C-MOVE as soon as its association ended (the
live view), on copies; and when a connection still open holds it back."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

from tshark_dicom.analysis import analyze_stream
from tshark_dicom.captureresult import FinishedAssociation
from tshark_dicom.packets import ACK, SYN, Packet
from tshark_dicom.qrpreview import provisional_attempts, waits_for
from tshark_dicom.records import FindingRecord
from tshark_dicom.streams import StreamSink, TcpConnection
from tshark_dicom.tshark import find_tshark, raw_conversion

CAPTURES = Path(__file__).resolve().parent.parent / "fixtures" / "captures"
MS = 1_000_000


def _previews(name: str, tshark_path: str) -> list[tuple[str, dict[int, Counter[str]],
                                                          dict[int, Counter[str]]]]:
    """Each preview of the capture, as it was heard: the mover's first command, and per
    association the preview's finding codes and those of its own records at that moment."""
    heard = []

    def previewed(mover: FinishedAssociation,
                  said: list[tuple[FinishedAssociation, list[FindingRecord]]]) -> None:
        heard.append((mover.ops.as_list()[0].command,
                      {d.assoc.stream: Counter(f.code for f in fs) for d, fs in said},
                      {d.assoc.stream: Counter(f.code for f in d.assoc.findings)
                       for d, _ in said}))

    tsk = find_tshark(tshark_path)
    capture = CAPTURES / name
    with raw_conversion(tsk, capture) as (out, _):
        analyze_stream(out, label=str(capture), tshark=tsk, on_previewed=previewed)
    return heard


def test_a_c_move_whose_callback_lost_sub_operations(tshark_path: str) -> None:
    """qr_move_partial (dcmqrscp, a destination that refused 2 of 4 C-STOREs and 14 of the
    archive's contexts): the preview names the failed sub-operations on the C-MOVE and folds
    the callback's 14 rejection warnings into one note; the records themselves are left as
    they were, for the capture's end to correlate."""
    [(command, said, own)] = _previews("qr_move_partial.pcapng", tshark_path)
    assert command == "C-MOVE" and list(said) == [1, 0]  # the callback, then the C-MOVE
    assert said[0]["suboperations-failed"] == 1
    assert said[1]["context-rejected"] == 1 and own[1]["context-rejected"] == 14
    assert own[0]["suboperations-failed"] == 0  # not added to the records


def test_an_unanswered_callback_is_known_when_the_c_move_ended(tshark_path: str) -> None:
    """qr_move_unanswered: the callback's SYNs are an open connection when the C-MOVE's
    association ends; sent before the C-MOVE-RSP, they are its callback, unanswered."""
    [(_, said, _)] = _previews("qr_move_unanswered.pcapng", tshark_path)
    assert said == {0: Counter({"dimse-failure": 1, "callback-unanswered": 1,
                                "suboperations-failed": 1})}


def test_a_c_get_has_no_callback_to_wait_for(tshark_path: str) -> None:
    [(command, said, _)] = _previews("qr_get_no_role.pcapng", tshark_path)
    assert command == "C-GET" and said[0]["get-role-not-negotiated"] == 1


class _Sink(StreamSink):
    def data(self, data: bytes, frame: int, time_ns: int) -> None:
        pass

    def gap(self, nbytes: int, frame: int, time_ns: int, cause: str) -> None:
        pass

    def end(self, how: str, frame: int, time_ns: int) -> None:
        pass


def _conn(stream: int, client: str, t_ms: int, *, answered: bool = False,
          last_ms: int | None = None) -> TcpConnection:
    conn = TcpConnection(stream, lambda *_: _Sink())
    conn.feed(Packet(1, t_ms * MS, stream, client, 40000, "10.0.0.3", 11112, 100, 0, 0, SYN,
                     b""))
    if last_ms is not None:
        conn.feed(Packet(2, last_ms * MS, stream, client, 40000, "10.0.0.3", 11112, 100, 0, 0,
                         SYN, b""))
    if answered:
        conn.feed(Packet(3, (t_ms + 1) * MS, stream, "10.0.0.3", 11112, client, 40000, 500,
                         101, 0, SYN | ACK, b""))
    return conn


def test_waits_for_a_connection_that_may_be_a_callback(tshark_path: str) -> None:
    """The C-MOVE of qr_move_refused ran from its request to its response; a connection
    from the archive that began then and was answered may be its callback (wait); one from
    elsewhere, one that began before, and SYNs unanswered since the response are not."""
    heard: list[FinishedAssociation] = []
    tsk = find_tshark(tshark_path)
    capture = CAPTURES / "qr_move_refused.pcapng"
    with raw_conversion(tsk, capture) as (out, _):
        analyze_stream(out, label=str(capture), tshark=tsk,
                       on_settled=lambda d: heard.append(d))
    [mover] = [d for d in heard if any(op.command == "C-MOVE" for op in d.ops)]
    [op] = [op for op in mover.ops if op.command == "C-MOVE"]
    archive = mover.assoc.acceptor[0] if mover.assoc.acceptor else ""
    during = (op.request_first_ns + 1 * MS) // MS
    after = (op.response_complete_ns or 0) // MS + 1000
    ops = mover.ops.as_list()
    assert waits_for(mover.assoc, ops, [_conn(7, archive, during, answered=True)])
    assert not waits_for(mover.assoc, ops, [_conn(7, "192.0.2.9", during, answered=True)])
    assert not waits_for(mover.assoc, ops, [_conn(7, archive, during - 60_000,
                                                  answered=True)])
    unanswered = _conn(7, archive, during)
    assert not waits_for(mover.assoc, ops, [unanswered])
    assert waits_for(mover.assoc, ops, [_conn(7, archive, during, last_ms=after)])
    [attempt] = provisional_attempts([unanswered, _conn(8, archive, during, answered=True)])
    assert (attempt.tcp_stream, attempt.outcome, attempt.syns) == (7, "unanswered", 1)


def test_a_long_watch_hands_each_c_move_on_between_retrievals(tmp_path: Path,
                                                              tshark_path: str) -> None:
    """Three C-MOVEs one after another (qr_move_partial three times, 10 s apart): with
    previews (a live view), each C-MOVE's associations are correlated and handed on once
    no retrieval is in progress, before the next C-MOVE begins, not all kept to the end
    (memory flat however long the watch; benchmarks/watch_moves.py); what they say, with
    the capture's own findings, is the findings table of the same capture."""
    import tshark_dicom

    editcap = str(Path(tshark_path).with_name("editcap"))
    copies = []
    for i in range(3):
        copies.append(tmp_path / f"c{i}.pcap")
        subprocess.run([editcap, "-F", "pcap", "-t", str(10 * i),
                        str(CAPTURES / "qr_move_partial.pcapng"), str(copies[-1])], check=True)
    stream = tmp_path / "three.pcap"
    subprocess.run([str(Path(tshark_path).with_name("mergecap")), "-F", "pcap", "-a", "-w",
                    str(stream), *map(str, copies)], check=True)
    events: list[tuple[str, int]] = []
    handed: list[FinishedAssociation] = []

    def on_association(d: FinishedAssociation) -> None:
        events.append(("handed on", d.assoc.stream))
        handed.append(d)

    tsk = find_tshark(tshark_path)
    with stream.open("rb") as given:
        result = analyze_stream(given, label=str(stream), tshark=tsk,
                                on_settled=lambda d: events.append(("settled", d.assoc.stream)),
                                on_association=on_association,
                                on_previewed=lambda mover, said: None)
    assert sorted(s for what, s in events if what == "settled") == list(range(6))
    for first, second in ((0, 2), (2, 4)):  # the copies' streams: C-MOVE, callback
        assert events.index(("handed on", first)) < events.index(("settled", second))
        assert events.index(("handed on", first + 1)) < events.index(("settled", second))
    said = Counter(f.code for d in handed for f in d.assoc.findings)
    said.update(f.code for _, f in result.findings)
    assert said == Counter(tshark_dicom.analyze(stream).findings["code"])
