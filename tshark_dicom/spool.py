"""One capture's rows, from associations as they finish to tables in association order.

analysis.py hands each association on as soon as it is complete, in the order they end;
the tables number associations in the order they began (SPEC), and only at the end of the
capture is it known which streams were DICOM. So each association's rows go to a spool
file (in memory while small) as it finishes, and `Spool.drain` reads them back in
association order, numbers them, settles the object file names and hands the rows to a
sink a batch at a time: memory holds one association's rows, never the capture's.
"""

from __future__ import annotations

import bisect
import os
import pickle
import tempfile
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from . import memory
from .captureresult import CaptureResult, FinishedAssociation
from .objects import safe_object_name
from .schemas import TABLES, frame
from .tables import (
    association_rows,
    attempt_rows,
    commitment_rows,
    finding_row,
    renumber,
    step_rows,
)

if TYPE_CHECKING:
    import pandas as pd

#: The spool stays in memory up to this size, then moves to a temporary file.
IN_MEMORY_MAX = 8 << 20


class RowSink(Protocol):
    """Where drained rows go: store.PartWriter (files) or FrameSink (DataFrames)."""

    def add(self, table: str, label: str, rows: list[dict[str, Any]]) -> None: ...


class FrameSink:
    """Rows kept in memory and made into DataFrames (the Python API's in-memory Report)."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {t: [] for t in TABLES}

    def add(self, table: str, label: str, rows: list[dict[str, Any]]) -> None:
        self.rows[table].extend(rows)

    def frames(self) -> dict[str, pd.DataFrame]:
        return {t: frame(t, self.rows[t]) for t in TABLES}


class Spool:
    """Receives FinishedAssociations (analyze_capture's ``on_association``)."""

    def __init__(self, label: str, objects_dir: Path | None = None,
                 objects_prefix: str = "", folder: Path | None = None) -> None:
        self.label = label
        self.objects_dir = objects_dir
        self.objects_prefix = objects_prefix
        self.file = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - closed by drain
            max_size=IN_MEMORY_MAX, dir=str(folder) if folder is not None else None)
        self.labels: list[str] = []  # file labels of a set, by first use
        # one entry per association (arrays: a few bytes each, not a Python object)
        self.streams = array("q")
        self.offsets = array("q")
        self.numbers = array("q")  # provisional object number, -1 for none
        self.label_index = array("l")
        self.pieces = array("l")  # (table, rows) pieces pickled for it

    def __call__(self, done: FinishedAssociation) -> None:
        label = done.label or self.label
        if label not in self.labels:
            self.labels.append(label)
        self.streams.append(done.assoc.stream)
        self.offsets.append(self.file.tell())
        self.numbers.append(done.number if done.number is not None else -1)
        self.label_index.append(self.labels.index(label))
        pieces = 0
        for piece in association_rows(done, label, self.objects_prefix):
            if piece[1]:
                pickle.dump(piece, self.file, protocol=pickle.HIGHEST_PROTOCOL)
                pieces += 1
        self.pieces.append(pieces)

    def drain(self, result: CaptureResult, sink: RowSink) -> None:
        """Every table's rows of the capture into ``sink``, associations in first-packet
        order (SPEC), then the spool is gone."""
        streams = result.streams

        def aid_of(stream: int) -> int:
            return bisect.bisect_left(streams, stream)

        offsets = _file_offsets(result)
        sink.add("connection_attempts", result.capture, attempt_rows(result, aid_of))
        sink.add("commitments", result.capture, commitment_rows(result, aid_of))
        sink.add("procedure_steps", result.capture, step_rows(result, aid_of))
        late: dict[int, list[Any]] = {}
        early = []
        for stream, finding in result.findings:
            if stream is None:
                early.append(finding_row(result.capture, None, finding))
            else:
                late.setdefault(stream, []).append(finding)
        sink.add("findings", result.capture, early)
        order = sorted(range(len(self.streams)), key=self.streams.__getitem__)
        pieces = 0
        try:
            for i in order:
                stream = self.streams[i]
                aid = aid_of(stream)
                label = self.labels[self.label_index[i]]
                extra = [finding_row(label, None, f) for f in late.pop(stream, ())]
                for table, trows in self._read(i, extra):
                    if table == "objects" and self.numbers[i] not in (-1, aid):
                        self._rename(trows, aid)
                    renumber(table, trows, aid, aid_of, offsets.get(label, 0))
                    sink.add(table, label, trows)
                    pieces += 1
                    if not pieces % 64:
                        memory.release()  # what the rows written so far freed
        finally:
            self.file.close()

    def _read(self, i: int, findings: list[dict[str, Any]]
              ) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """Association ``i``'s pieces, in the order written; ``findings`` (found only at
        the end of the capture) with its own findings."""
        self.file.seek(self.offsets[i])
        for _ in range(self.pieces[i]):
            table, rows = pickle.load(self.file)  # noqa: S301 - our own spool, written above
            if table == "findings":
                rows.extend(findings)
                findings = []
            yield table, rows
        if findings:
            yield "findings", findings

    def _rename(self, objects: list[dict[str, Any]], aid: int) -> None:
        """Object files were named with a provisional association number (analysis.py
        names them while the data arrives); now the number is known."""
        if self.objects_dir is None:
            return
        for row in objects:
            path = row["path"]
            if not path:
                continue
            old = path[len(self.objects_prefix):]
            new = safe_object_name(row["sop_instance_uid"], aid, row["msg_index"])
            os.replace(self.objects_dir / old, self.objects_dir / new)
            row["path"] = self.objects_prefix + new


def _file_offsets(result: CaptureResult) -> dict[str, int]:
    """A set's files: how many records come before each (frame numbers in a row count
    from the start of the file in its ``capture`` column)."""
    offsets: dict[str, int] = {}
    before = 0
    for f in result.files if len(result.files) > 1 else ():
        offsets[f.label] = before
        before += f.records
    return offsets
