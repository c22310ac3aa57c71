"""The append-only event log: one JSON object per line, written in fsynced commit batches.

Layout of a record (see docs/log-format.md)::

    {"seq":7,"batch":6,"batch_size":2,"type":"step","ts":"…", …payload…,"crc":"1c291ca3"}

* ``seq`` numbers records 1, 2, 3 … with no gap; ``batch``/``batch_size`` name the commit batch
  (seq of its first record, record count). A batch is written with one ``write`` and made durable
  with one ``fsync``: that is group commit, and it is also what tells a crash from corruption.
* ``crc`` is the last member: CRC-32 of the line's bytes with the ``,"crc":"…"`` member removed.

Reading is strict. Only an fsync that never returned can leave damage, so damage confined to the
last, incomplete batch (an incomplete or checksum-failing line, zeros or garbage after the last
good record) is a *torn tail*: readers ignore it and report it; ``cut_torn_tail`` removes it,
keeping the cut bytes beside the log. Anything else — damage before the last batch or inside a
batch whose records are all there, a seq gap or a duplicate — is corruption, and every reader
refuses the log naming the line.
"""

from __future__ import annotations

import json
import json.scanner
import os
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from wf_engine.core.records import Record as Record  # what a reader gets: re-exported
from wf_engine.errors import CorruptLog, LogWriteError
from wf_engine.log import durable
from wf_engine.log.storefiles import open_regular

#: Called with the records of a batch: before the write, then before the fsync.
BatchObserver = Callable[[Sequence[Record]], None]

_CRC_PREFIX = b',"crc":"'
_CRC_SUFFIX_LEN = len(_CRC_PREFIX) + 8 + 2  # ,"crc":"xxxxxxxx"}
#: Members every record has besides its payload (``crc`` always last); no payload reuses them.
ENVELOPE_FIELDS = ("seq", "batch", "batch_size", "type", "ts", "crc")


def _not_json(name: str) -> Any:
    """Python's parser reads ``NaN`` and ``Infinity``; strict JSON, and so the log, has neither."""
    raise ValueError(f"{name} is not JSON")


_STRICT_JSON = json.JSONDecoder(parse_constant=_not_json)


#: One encoder for every record: ``json.dumps`` with these options builds a new one per call.
_ENCODE_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def encode_record(record: Record) -> bytes:
    """Serialise ``record`` (no ``crc`` yet) as one checksummed line; sets ``record["crc"]``.

    Strict JSON only: a NaN or an infinity raises ``ValueError`` before anything is written.
    """
    try:
        text = _ENCODE_JSON(record)
    except ValueError as exc:
        raise ValueError(
            f"{record.get('type')} record holds a NaN or an infinity, which JSON cannot carry"
        ) from exc
    body = text.encode()
    crc = f"{zlib.crc32(body):08x}"
    record["crc"] = crc
    return body[:-1] + _CRC_PREFIX + crc.encode() + b'"}\n'


#: The strict decoder's C scanner (what its ``decode`` calls): one JSON value from an index,
#: without ``loads``' per-call work (type tests, encoding sniffing, whitespace regexes).
#: typeshed types its argument as a scanner; a decoder is what ``json.decoder`` passes too.
_SCAN_JSON = json.scanner.make_scanner(_STRICT_JSON)  # type: ignore[arg-type]
#: ``,"crc":"xxxxxxxx"}\n`` at the end of a whole line: where its parts start, from the end.
_CRC_MEMBER_AT = -_CRC_SUFFIX_LEN - 1
_CRC_HEX_AT = _CRC_MEMBER_AT + len(_CRC_PREFIX)


def _decode_line(raw: bytes) -> Record | str:
    """The record on a line, or what is wrong with it (damage: torn or corrupt, by position).

    Run on every line of every log read, so the checks cost no copy of the line beyond its
    head for the CRC, and the JSON is parsed by the C scanner directly. Anything unusual (a
    line the scanner does not read to its end in one value) is left to ``_decode_json``, the
    one judge of what is and is not JSON here.
    """
    if raw[-1:] != b"\n":
        return "incomplete line"
    if len(raw) <= _CRC_SUFFIX_LEN or raw[_CRC_MEMBER_AT:_CRC_HEX_AT] != _CRC_PREFIX:
        return "no checksum as last member"
    # The CRC of the line without its crc member: its head, then the closing brace.
    if b"%08x" % zlib.crc32(b"}", zlib.crc32(raw[:_CRC_MEMBER_AT])) != raw[_CRC_HEX_AT:-3]:
        return "checksum mismatch"
    try:
        text = raw.decode()
        value, end = _SCAN_JSON(text, 0)
    except (ValueError, StopIteration, RecursionError):
        return _decode_json(raw)
    if end != len(text) - 1 or type(value) is not dict:
        return _decode_json(raw)  # leading spaces, or something after the value
    return value


def _decode_json(raw: bytes) -> Record | str:
    """A checksummed line as a record, or why it is none: the slow, complete judgement."""
    try:
        value = _STRICT_JSON.decode(raw[:-1].decode())
    except ValueError:  # also UnicodeDecodeError, and NaN / Infinity (see _not_json)
        return "not valid JSON"
    except RecursionError:  # nested deeper than Python's parser goes: no writer made it
        return "not valid JSON"
    if not isinstance(value, dict):
        return "not a JSON object"
    return value


def _check_envelope(path: str, line_no: int, record: Record) -> None:
    """A line whose checksum holds was written as it is: a bad envelope is never a crash trace."""
    for key in ("seq", "batch", "batch_size"):
        if type(record.get(key)) is not int:
            raise CorruptLog(path, line_no, f"envelope field {key!r} missing or not an integer")
    if not isinstance(record.get("type"), str):
        raise CorruptLog(path, line_no, "envelope field 'type' missing")


@dataclass(frozen=True, slots=True)
class TornTail:
    """Bytes after the last complete commit batch: the trace of a crash during a write."""

    offset: int
    length: int
    last_seq: int
    line: int
    #: What was wrong with the first damaged line ("incomplete line", "checksum mismatch", …).
    reason: str = field(default="incomplete commit batch", compare=False)

    def describe(self) -> str:
        return (
            f"torn tail: {self.length} bytes from line {self.line} (after seq {self.last_seq}; "
            f"{self.reason}) belong to a commit batch that was never fully written"
        )


class LogScan:
    """One streaming pass over a log: iterate for the committed records, then read ``torn``.

    Records are yielded a whole batch at a time, once the batch is known to be complete, so a
    reader never sees a record that a crash may have left half-committed.
    """

    def __init__(self, path: str) -> None:
        #: Opened with ``open_regular``: a FIFO, directory or symlink is refused, never waited on.
        self.path = path
        self.torn: TornTail | None = None
        self.committed_size = 0
        self.last_seq = 0
        self.lines = 0

    def __iter__(self) -> Iterator[Record]:
        # One pass, every check of every line: kept inline (locals, no call per check), since
        # ``status``, ``replay`` and ``list`` spend here most of what they do not spend in JSON.
        path = self.path
        pending: list[Record] = []
        expected = self.last_seq + 1  # the seq of the next record
        first = size = 0  # the batch being read: its first seq and its size
        offset = 0
        reason = "incomplete commit batch"
        with open_regular(path) as file:
            for line_no, raw in enumerate(file, start=1):
                record = _decode_line(raw)
                if isinstance(record, str):
                    self._check_tail(file, line_no, record, pending)
                    reason = record
                    break
                seq: Any = record.get("seq")
                batch: Any = record.get("batch")
                batch_size: Any = record.get("batch_size")
                if (  # as ``_check_envelope``, which names the member only when one is wrong
                    type(seq) is not int
                    or type(batch) is not int
                    or type(batch_size) is not int
                    or not isinstance(record.get("type"), str)
                ):
                    _check_envelope(path, line_no, record)
                if seq != expected:
                    kind = "duplicate or out-of-order" if seq < expected else "gap"
                    raise CorruptLog(path, line_no, f"seq {kind}: expected {expected}, found {seq}")
                if not pending:
                    first, size = seq, batch_size
                if batch != first or batch_size != size or size < 1:
                    raise CorruptLog(
                        path, line_no, "commit batch fields disagree with the records before"
                    )
                pending.append(record)
                offset += len(raw)
                expected += 1
                if len(pending) == size:
                    yield from pending
                    pending = []
                    self.committed_size = offset
                    self.last_seq = seq
                    self.lines = line_no
            else:
                if not pending:
                    return
            length = os.fstat(file.fileno()).st_size - self.committed_size
        self.torn = TornTail(self.committed_size, length, self.last_seq, self.lines + 1, reason)

    def _check_tail(self, file: Any, damaged: int, reason: str, pending: list[Record]) -> None:
        """Damage at line ``damaged``: a torn tail only if it lies inside the last batch.

        That batch is the one in flight after the last complete batch. The damage is a crash
        trace only if nothing after it belongs to a later batch and the in-flight batch is not
        complete (a complete batch was fsynced before anything followed, so it cannot be torn).
        """
        in_flight = self.last_seq + 1
        intact = len(pending)
        size = pending[0]["batch_size"] if pending else None
        previous = pending[-1]["seq"] if pending else self.last_seq
        for later, raw in enumerate(file, start=damaged + 1):
            decoded = _decode_line(raw)
            if isinstance(decoded, str):
                continue
            _check_envelope(self.path, later, decoded)
            if decoded["batch"] != in_flight:
                raise CorruptLog(
                    self.path,
                    damaged,
                    f"damaged line ({reason}) before the last commit batch "
                    f"(line {later} follows it)",
                )
            size = size if size is not None else decoded["batch_size"]
            seq = decoded["seq"]
            if decoded["batch_size"] != size or not previous < seq < in_flight + size:
                raise CorruptLog(self.path, later, "record out of place in the last commit batch")
            previous = seq
            intact += 1
        if size is not None and intact >= size:
            raise CorruptLog(
                self.path, damaged, f"damaged line ({reason}) inside a complete commit batch"
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
    with open_regular(path) as log:
        log.seek(torn.offset)
        tail = log.read()
    backup, fd = _new_backup(f"{path}.torn-{torn.offset}")
    try:
        durable.write_all(fd, tail)
        durable.sync(fd)
    finally:
        os.close(fd)
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.ftruncate(fd, torn.offset)
        durable.sync(fd)
    finally:
        os.close(fd)
    durable.sync_dir(os.path.dirname(path) or ".")
    return backup


def _new_backup(base: str) -> tuple[str, int]:
    """Create ``base`` (or ``base.1``, ``base.2`` …): an earlier cut is never overwritten."""
    for attempt in range(1000):
        name = base if attempt == 0 else f"{base}.{attempt}"
        try:
            return name, os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, durable.file_mode())
        except FileExistsError:
            continue
    raise FileExistsError(base)


class LogSink(Protocol):
    """Where a writer's bytes go: one ``write`` and one ``sync`` per commit batch.

    The writer owns the envelope, the encoding and the failure rules; a sink only stores bytes.
    ``FileSink`` is the engine's; the simulation tier (``pytest_wf.simulation``) keeps a log in
    memory behind this seam, so a simulated log has the very bytes a real one would.
    """

    def write(self, data: bytes) -> None: ...

    def sync(self) -> None: ...

    def close(self) -> None: ...


class FileSink:
    """A log file's descriptor, written and fsynced through ``durable`` (fault injection's seam)."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, data: bytes) -> None:
        durable.write_all(self.fd, data)

    def sync(self) -> None:
        durable.sync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


class EventLog:
    """The writer: appends commit batches with one write and one fsync each (write-ahead)."""

    def __init__(self, path: str, sink: LogSink, next_seq: int) -> None:
        self.path = path
        self._sink = sink
        self.next_seq = next_seq
        self.before_write: BatchObserver | None = None
        self.before_sync: BatchObserver | None = None
        self._failed: OSError | None = None

    @classmethod
    def create(cls, path: str) -> EventLog:
        """A new, empty log; fails if one exists. The folder entry is made durable."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, durable.file_mode())
        durable.sync_dir(os.path.dirname(path) or ".")
        return cls(path, FileSink(fd), 1)

    @classmethod
    def open(cls, path: str, last_seq: int) -> EventLog:
        """Append to an existing log whose committed records end at ``last_seq``."""
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            return cls.continuing(path, FileSink(fd), last_seq)
        except BaseException:
            os.close(fd)
            raise

    @classmethod
    def continuing(cls, path: str, sink: LogSink, last_seq: int) -> EventLog:
        """A writer after ``last_seq`` of the log in ``sink``, once the bytes there are durable.

        A dead writer may have written its last batch without fsyncing it (killed in between):
        readers rightly take a whole batch as committed, yet a power cut can still lose pages of
        it. Were new batches appended before an fsync covered it, such a cut could leave damage
        *before* the last batch, which every reader must refuse as corruption (exit 4). So the
        log is fsynced once here, before anything follows it. (Found by the simulation tier:
        a SIGKILL between a write and its fsync, a resume, a power cut before its first fsync.)
        """
        sink.sync()
        return cls(path, sink, last_seq + 1)

    def append(self, events: Sequence[tuple[str, dict[str, Any]]], ts: str) -> list[Record]:
        """Write ``(type, payload)`` events as one batch and fsync it; returns the records.

        The pairs are what ``wf_engine.core.events.encode`` gives: this layer knows the envelope
        and the bytes, not what a payload means (``wf_engine.runtime.commit`` is its one caller
        in the engine).

        On an ``OSError`` the log is left as the disk left it (at worst a torn tail) and the error
        propagates: the caller must stop, since nothing in this batch may be assumed durable.
        """
        if self._failed is not None:
            raise LogWriteError(
                f"{self.path}: log unusable after a failed write: {self._failed}",
                self._failed.errno,
            )
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
            if not payload.keys().isdisjoint(ENVELOPE_FIELDS):
                raise ValueError(f"payload of {event_type} reuses an envelope field")
            record.update(payload)
            lines.append(encode_record(record))
            records.append(record)
        if self.before_write is not None:
            self.before_write(records)
        try:
            self._sink.write(b"".join(lines))
            if self.before_sync is not None:
                self.before_sync(records)
            self._sink.sync()
        except OSError as exc:
            # Never retried: after a failed fsync the kernel may have dropped the dirty pages.
            self._failed = exc
            raise LogWriteError(
                f"{self.path}: cannot record events ({exc.strerror or exc}); stopped without "
                "claiming them: fix the disk, then `wf resume`",
                exc.errno,
            ) from exc
        self.next_seq = first + len(events)
        return records

    def close(self) -> None:
        self._sink.close()
