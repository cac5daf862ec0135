"""A list that waits on disk: records past the first few thousand go to a temporary file.

A long association (a day of C-ECHOs or C-FINDs on one connection) gives hundreds of
thousands of messages and operations; each stage hands them on as they settle, and this is
where they wait until the association ends and its rows are written. In memory it holds at
most `CHUNK` records; the rest are pickled to an unnamed temporary file in chunks and read
back, in order, a chunk at a time. A short association never touches the disk.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Generic, TypeVar

T = TypeVar("T")

#: Records held in memory before a chunk goes to disk.
CHUNK = 256


class Spill(Generic[T]):
    """Append-only records, iterated in the order appended (any number of times)."""

    __slots__ = ("_items", "_file", "_chunks", "_count", "chunk")

    def __init__(self, items: Iterable[T] = (), chunk: int | None = None) -> None:
        self._items: list[T] = []
        self._file: IO[bytes] | None = None
        self._chunks = 0
        self._count = 0
        self.chunk = chunk or CHUNK
        self.extend(items)

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def append(self, item: T) -> None:
        self._items.append(item)
        self._count += 1
        if len(self._items) >= self.chunk:
            self._flush()

    def extend(self, items: Iterable[T]) -> None:
        for item in items:
            self.append(item)

    @property
    def on_disk(self) -> bool:
        return self._chunks > 0

    def _flush(self) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()/GC
            self._file.seek(0, 2)
        pickle.dump(self._items, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        self._chunks += 1
        self._items = []

    def _disk(self) -> Iterator[list[T]]:
        if self._file is None:
            return
        file = self._file
        file.flush()
        file.seek(0)
        for _ in range(self._chunks):
            chunk: list[T] = pickle.load(file)  # noqa: S301 - our own file, written above
            end = file.tell()
            yield chunk
            file.seek(end)  # a nested iteration may have moved it
        file.seek(0, 2)

    def __iter__(self) -> Iterator[T]:
        for chunk in self._disk():
            yield from chunk
        yield from list(self._items)

    def first(self) -> T:
        return next(iter(self))

    def rewrite(self, fn: Callable[[T], T]) -> None:
        """Replace every record by ``fn(record)``, in order (``fn`` may mutate and return
        its argument)."""
        if self._file is None:
            self._items = [fn(x) for x in self._items]
            return
        old, chunks, tail = self._file, self._chunks, self._items
        self._file, self._chunks, self._items, self._count = None, 0, [], 0
        old.seek(0)
        try:
            for _ in range(chunks):
                for x in pickle.load(old):  # noqa: S301 - our own file
                    self.append(fn(x))
        finally:
            old.close()
        for x in tail:
            self.append(fn(x))

    def as_list(self) -> list[T]:
        """Every record in memory from now on (for the few associations that query/retrieve
        correlation needs whole): changes to the records stay."""
        if self._file is not None:
            items = list(self)
            self.close()
            self._items = items
        return self._items

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._chunks = 0
