"""PDV fragments -> DIMSE messages (PS3.7 6.3, PS3.8 9.3.5), one direction at a time.

A message is a command set (PDVs with the command bit, always Implicit VR Little Endian)
followed, if its CommandDataSetType says so, by a data set (PDVs without it) on the same
presentation context. Data set bytes are never gathered whole here: fragments go on in
pieces of at most `DATA_BATCH` bytes to a `DatasetSink` made by the caller (objects.py
writes files; this stage does not know).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol

from .dimse import CommandSet, CommandSetError, decode_command_set
from .pdu import PdvDataSink, PdvHeader

#: Command sets are a few hundred bytes; one larger than this is not a command set.
MAX_COMMAND_BYTES: Final = 1 << 16
#: Data set fragments (one TCP segment's worth each) are handed to the data set's sink in
#: pieces of this size, and the rest when the message ends: one call instead of one per
#: segment (the sink is only read once the message is done).
DATA_BATCH: Final = 1 << 18


class DatasetSink(Protocol):
    """Where one data set's bytes go, fragment by fragment (objects.ObjectSink is one)."""

    def write(self, chunk: bytes | bytearray | memoryview) -> None: ...

    @property
    def nbytes(self) -> int: ...


@dataclass
class Message:
    """One DIMSE message as it travelled: its command, and what became of its data set."""

    msg_index: int
    sender: str  # "requestor" | "acceptor"
    context_id: int
    first_frame: int
    started_ns: int
    last_frame: int = 0
    ended_ns: int = 0
    command: CommandSet | None = None
    command_problem: str | None = None
    dataset: DatasetSink | None = None
    dataset_complete: bool = False
    dataset_problem: str | None = None
    fragments: int = 0
    command_bytes: int = 0


class MessageObserver(Protocol):
    """The association that owns the assembler."""

    def next_msg_index(self) -> int: ...

    def open_dataset(self, message: Message) -> DatasetSink: ...

    def message_done(self, message: Message) -> None: ...

    def finding(self, severity: str, code: str, summary: str, frame: int,
                msg_index: int | None = None) -> None: ...


class MessageAssembler(PdvDataSink):
    """Joins one direction's PDV fragments into messages."""

    __slots__ = ("observer", "sender", "current", "_cmd", "_pdv", "_orphan_reported", "_data",
                 "_data_bytes")

    def __init__(self, observer: MessageObserver, sender: str) -> None:
        self.observer = observer
        self.sender = sender
        self.current: Message | None = None
        self._cmd = bytearray()
        self._pdv: PdvHeader | None = None
        self._orphan_reported = False
        #: data set fragments of the current message not yet handed to its sink (views of
        #: the segments' bytes: joined once, with one copy), and their length
        self._data: list[memoryview] = []
        self._data_bytes = 0

    # -- PDV events ------------------------------------------------------------------
    def pdv_start(self, pdv: PdvHeader) -> None:
        msg = self.current
        if pdv.is_command:
            if msg is None or msg.command is not None:
                if msg is not None:
                    self._interrupt(msg, "a new command began before the data set ended",
                                    pdv.frame, pdv.time_ns)
                msg = self._new(pdv)
            self._pdv = pdv
            return
        # data set fragment
        if msg is None or msg.command is None or not msg.command.has_dataset:
            self._pdv = None
            if not self._orphan_reported:
                self._orphan_reported = True
                self.observer.finding(
                    "note", "dataset-without-command",
                    f"data set fragments from the {self.sender} on context {pdv.context_id} "
                    "without their command set (the capture starts inside a message or lost "
                    "it); skipped until the next command", pdv.frame,
                )
            return
        if msg.dataset is None:
            msg.dataset = self.observer.open_dataset(msg)
        self._pdv = pdv

    def pdv_data(self, chunk: memoryview, frame: int, time_ns: int) -> None:
        pdv = self._pdv
        msg = self.current
        if pdv is None or msg is None:
            return
        if time_ns >= msg.ended_ns:  # see pdv_end
            msg.last_frame, msg.ended_ns = frame, time_ns
        if pdv.is_command:
            if len(self._cmd) + len(chunk) > MAX_COMMAND_BYTES:
                msg.command_problem = f"command set longer than {MAX_COMMAND_BYTES} bytes"
                self._pdv = None
                return
            self._cmd += chunk
        elif msg.dataset is not None:
            self._data.append(chunk)
            self._data_bytes += len(chunk)
            if self._data_bytes >= DATA_BATCH:
                self._flush(msg)

    def pdv_end(self, frame: int, time_ns: int) -> None:
        pdv = self._pdv
        msg = self.current
        self._pdv = None
        if pdv is None or msg is None:
            return
        msg.fragments += 1
        # The latest packet that carried its bytes: a segment the capture point saw after
        # later ones (a retransmission that filled a hole: its data come first, then those
        # held behind it, with their earlier times) is when the message was complete there.
        if time_ns >= msg.ended_ns:
            msg.last_frame, msg.ended_ns = frame, time_ns
        if not pdv.is_last:
            return
        if pdv.is_command:
            self._command_complete(msg, frame)
        else:
            msg.dataset_complete = True
            self._finish(msg)

    def lost(self, nbytes: int, where: str, cause: str, frame: int, time_ns: int) -> None:
        """Bytes missing from the capture: the message in progress cannot be complete."""
        msg = self.current
        self._pdv = None
        if msg is None:
            return
        if cause == "end":
            reason = "the stream ended inside the message"
        elif cause == "malformed":
            reason = f"a malformed PDV at frame {frame}"
        elif cause == "snaplen":
            reason = f"{nbytes} bytes cut by the capture's snapshot length at frame {frame}"
        else:
            reason = f"{nbytes} bytes missing from the capture at frame {frame}"
        self._interrupt(msg, reason, frame, time_ns)

    def interrupt(self, reason: str, frame: int, time_ns: int) -> None:
        """The association ended (abort, close, end of capture) with a message in progress."""
        if self.current is not None:
            self._interrupt(self.current, reason, frame, time_ns)

    # -- internals -------------------------------------------------------------------
    def _new(self, pdv: PdvHeader) -> Message:
        self._cmd = bytearray()
        self._orphan_reported = False
        msg = Message(self.observer.next_msg_index(), self.sender, pdv.context_id,
                      pdv.frame, pdv.time_ns, pdv.frame, pdv.time_ns)
        self.current = msg
        return msg

    def _command_complete(self, msg: Message, frame: int) -> None:
        msg.command_bytes = len(self._cmd)
        if msg.command_problem is None:
            try:
                msg.command = decode_command_set(bytes(self._cmd))
            except CommandSetError as exc:
                msg.command_problem = str(exc)
        self._cmd = bytearray()
        if msg.command is None:
            self.observer.finding(
                "error", "malformed-command",
                f"command set from the {self.sender} on context {msg.context_id} could not be "
                f"decoded: {msg.command_problem}", frame, msg.msg_index,
            )
            self._finish(msg)
        elif not msg.command.has_dataset:
            self._finish(msg)

    def _interrupt(self, msg: Message, reason: str, frame: int, time_ns: int) -> None:
        if msg.command is None and msg.command_problem is None:
            msg.command_problem = f"command set incomplete: {reason}"
        elif msg.command is not None and msg.command.has_dataset:
            msg.dataset_problem = reason
        self._cmd = bytearray()
        self._finish(msg)

    def _flush(self, msg: Message) -> None:
        """The data set bytes gathered so far to the message's sink, as one bytes object."""
        data = b"".join(self._data)
        self._data.clear()
        self._data_bytes = 0
        if data and msg.dataset is not None:
            msg.dataset.write(data)

    def _finish(self, msg: Message) -> None:
        if self._data:
            self._flush(msg)
        self.current = None
        self.observer.message_done(msg)

