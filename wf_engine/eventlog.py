"""The append-only event log: one JSON object per line, written in fsynced commit batches.

Layout of a record (see docs/log-format.md)::

    {"seq":7,"batch":6,"batch_size":2,"type":"step","ts":"…", …payload…,"crc":"1c291ca3"}

* ``seq`` numbers records 1, 2, 3 … with no gap; ``batch``/``batch_size`` name the commit batch
  (seq of its first record, record count). A batch is written with one ``write`` and made durable
  with one ``fsync``: that is group commit, and it is also what tells a crash from corruption.
* ``crc`` is the last member: CRC-32 of the line's bytes with the ``,"crc":"…"`` member removed.

Reading is strict. Only an fsync that never returned can leave damage, so damage confined to the
last, incomplete batch (a torn line, zeros or garbage after the last good record) is a *torn tail*:
readers ignore it and report it; ``cut_torn_tail`` removes it, keeping the cut bytes beside the log.
Anything else — damage before the last batch, a checksum mismatch on a complete line, a seq gap or a
duplicate — is corruption, and every reader refuses the log naming the line.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from wf_engine import durable
from wf_engine.errors import CorruptLog

Record = dict[str, Any]
#: Called with the records of a batch: before the write, then before the fsync.
BatchObserver = Callable[[Sequence[Record]], None]

_CRC_PREFIX = b',"crc":"'
_CRC_SUFFIX_LEN = len(_CRC_PREFIX) + 8 + 2  # ,"crc":"xxxxxxxx"}
ENVELOPE_FIELDS = ("seq", "batch", "batch_size", "type", "ts", "crc")


def encode_record(record: Record) -> bytes:
    """Serialise ``record`` (no ``crc`` yet) as one checksummed line; sets ``record["crc"]``."""
    body = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()
    crc = f"{zlib.crc32(body):08x}"
    record["crc"] = crc
    return body[:-1] + _CRC_PREFIX + crc.encode() + b'"}\n'


def _decode_line(line: bytes) -> Record | str | None:
    """A record, ``None`` for a line that is not JSON (a crash trace), or a corruption message."""
    try:
        value = json.loads(line)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return "not a JSON object"
    if len(line) < _CRC_SUFFIX_LEN or line[-_CRC_SUFFIX_LEN:-10] != _CRC_PREFIX:
        return "no checksum as last member"
    body = line[:-_CRC_SUFFIX_LEN] + b"}"
    if f"{zlib.crc32(body):08x}" != value.get("crc"):
        return "checksum mismatch (the line was altered)"
    for key in ("seq", "batch", "batch_size"):
        if type(value.get(key)) is not int:
            return f"envelope field {key!r} missing or not an integer"
    if not isinstance(value.get("type"), str):
        return "envelope field 'type' missing"
    return value


@dataclass(frozen=True, slots=True)
class TornTail:
    """Bytes after the last complete commit batch: the trace of a crash during a write."""

    offset: int
    length: int
    last_seq: int
    line: int

    def describe(self) -> str:
        return (
            f"torn tail: {self.length} bytes from line {self.line} (after seq {self.last_seq}) "
            "belong to a commit batch that was never fully written"
        )


class LogScan:
    """One streaming pass over a log: iterate for the committed records, then read ``torn``.

    Records are yielded a whole batch at a time, once the batch is known to be complete, so a
    reader never sees a record that a crash may have left half-committed.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.torn: TornTail | None = None
        self.committed_size = 0
        self.last_seq = 0
        self.lines = 0

    def __iter__(self) -> Iterator[Record]:
        pending: list[Record] = []
        offset = 0
        with open(self.path, "rb") as file:
            for line_no, raw in enumerate(file, start=1):
                decoded = _decode_line(raw[:-1]) if raw.endswith(b"\n") else None
                if decoded is None:
                    self._check_tail(file, line_no)
                    break
                if isinstance(decoded, str):
                    raise CorruptLog(self.path, line_no, decoded)
                self._check_order(decoded, pending, line_no)
                pending.append(decoded)
                offset += len(raw)
                if len(pending) == decoded["batch_size"]:
                    yield from pending
                    pending = []
                    self.committed_size = offset
                    self.last_seq = decoded["seq"]
                    self.lines = line_no
            else:
                if not pending:
                    return
        size = os.path.getsize(self.path)
        length = size - self.committed_size
        self.torn = TornTail(self.committed_size, length, self.last_seq, self.lines + 1)

    def _check_order(self, record: Record, pending: list[Record], line_no: int) -> None:
        expected = self.last_seq + len(pending) + 1
        if record["seq"] != expected:
            kind = "duplicate or out-of-order" if record["seq"] < expected else "gap"
            raise CorruptLog(
                self.path, line_no, f"seq {kind}: expected {expected}, found {record['seq']}"
            )
        batch_start = pending[0]["seq"] if pending else expected
        batch_size = pending[0]["batch_size"] if pending else record["batch_size"]
        if record["batch"] != batch_start or record["batch_size"] != batch_size or batch_size < 1:
            raise CorruptLog(
                self.path, line_no, "commit batch fields disagree with the records before"
            )

    def _check_tail(self, file: Any, damaged_line: int) -> None:
        """Damage at ``damaged_line``: a torn tail only if nothing durable can follow it."""
        in_flight = self.last_seq + 1
        for later_no, raw in enumerate(file, start=damaged_line + 1):
            decoded = _decode_line(raw[:-1]) if raw.endswith(b"\n") else None
            if decoded is None:
                continue
            if isinstance(decoded, str) or decoded["batch"] != in_flight:
                raise CorruptLog(
                    self.path,
                    damaged_line,
                    f"damaged line before the last commit batch (line {later_no} follows it)",
                )


def read_log(path: str) -> tuple[list[Record], TornTail | None]:
    """All committed records and the torn tail, if any (for small logs and tests)."""
    scan = LogScan(path)
    records = list(scan)
    return records, scan.torn


def cut_torn_tail(path: str, torn: TornTail) -> str:
    """Move the torn tail into ``events.jsonl.torn-<offset>`` and truncate the log to its batches.

    The copy is made durable before the truncation, so the cut bytes are never lost.
    """
    backup = f"{path}.torn-{torn.offset}"
    with open(path, "rb") as log:
        log.seek(torn.offset)
        tail = log.read()
    fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        durable.write_all(fd, tail)
        durable.sync(fd)
    finally:
        os.close(fd)
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, torn.offset)
        durable.sync(fd)
    finally:
        os.close(fd)
    durable.sync_dir(os.path.dirname(path) or ".")
    return backup


class EventLog:
    """The writer: appends commit batches with one write and one fsync each (write-ahead)."""

    def __init__(self, path: str, fd: int, next_seq: int) -> None:
        self.path = path
        self._fd = fd
        self.next_seq = next_seq
        self.before_write: BatchObserver | None = None
        self.before_sync: BatchObserver | None = None

    @classmethod
    def create(cls, path: str) -> EventLog:
        """A new, empty log; fails if one exists. The folder entry is made durable."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        durable.sync_dir(os.path.dirname(path) or ".")
        return cls(path, fd, 1)

    @classmethod
    def open(cls, path: str, last_seq: int) -> EventLog:
        """Append to an existing log whose committed records end at ``last_seq``."""
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        return cls(path, fd, last_seq + 1)

    def append(self, events: Sequence[tuple[str, dict[str, Any]]], ts: str) -> list[Record]:
        """Write ``(type, payload)`` events as one batch and fsync it; returns the records.

        On an ``OSError`` the log is left as the disk left it (at worst a torn tail) and the error
        propagates: the caller must stop, since nothing in this batch may be assumed durable.
        """
        first = self.next_seq
        records: list[Record] = []
        lines: list[bytes] = []
        for offset, (event_type, payload) in enumerate(events):
            record: Record = {
                "seq": first + offset,
                "batch": first,
                "batch_size": len(events),
                "type": event_type,
                "ts": ts,
            }
            record.update(payload)
            lines.append(encode_record(record))
            records.append(record)
        if self.before_write is not None:
            self.before_write(records)
        durable.write_all(self._fd, b"".join(lines))
        if self.before_sync is not None:
            self.before_sync(records)
        durable.sync(self._fd)
        self.next_seq = first + len(events)
        return records

    def close(self) -> None:
        os.close(self._fd)
