"""The event log on real files: round trip, group commit, torn tails, corruption, write failures.

The reader's contract (``wf_engine/log/eventlog.py``, ``docs/log-format.md``): a *damaged*
line (incomplete, no checksum as last member, checksum mismatch, not JSON) is classified by its
POSITION, not by its kind. Damage inside the last, incomplete commit batch is a *torn tail*
(reported with the kind of its first damaged line, cut only on request, the cut bytes kept
beside the log under a name that never overwrites an earlier cut). Damage before the last batch or
inside a complete batch, and any intact line that no writer could have written (bad envelope, seq
gap or duplicate, disagreeing batch fields), is ``CorruptLog`` naming the 1-based line; reading
never changes the file. The writer rejects payload keys that reuse envelope members, and after a
failed write or fsync it refuses every further append.
"""

from __future__ import annotations

import errno
import json
import os
import threading
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from wf_engine.errors import EXIT_CORRUPT, CorruptLog, StoreError
from wf_engine.log import durable
from wf_engine.log.eventlog import (
    EventLog,
    LogScan,
    Record,
    TornTail,
    cut_torn_tail,
    encode_record,
    read_log,
)
from wf_engine.log.storefiles import open_regular, open_regular_fd

TS = "2026-01-02T03:04:05.000006Z"
Event = tuple[str, dict[str, Any]]


# -- helpers ------------------------------------------------------------------------------------


def events(count: int, tag: str = "e") -> list[Event]:
    """``count`` step-like events with unicode and nested payload values."""
    return [
        (
            "step",
            {
                "step": f"{tag}{i}",
                "from": "READY",
                "to": "RUNNING",
                "attempt": i,
                "note": "ünïcødé ✓ 日本語 🚀",
                "nested": {"list": [1, 2.5, None, True, {"k": "v"}], "empty": {}},
            },
        )
        for i in range(count)
    ]


def build_log(path: Path, sizes: Sequence[int]) -> tuple[list[list[Record]], list[int]]:
    """A log of batches of ``sizes`` records; returns the batches and the end offset of each."""
    log = EventLog.create(str(path))
    batches: list[list[Record]] = []
    ends: list[int] = []
    try:
        for number, size in enumerate(sizes):
            batches.append(log.append(events(size, f"b{number}-"), TS))
            ends.append(path.stat().st_size)
    finally:
        log.close()
    return batches, ends


def flat(batches: Sequence[Sequence[Record]]) -> list[Record]:
    return [record for batch in batches for record in batch]


def raw_lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def forge(record: Record) -> bytes:
    """A line for ``record`` with a *valid* checksum, whatever its envelope says."""
    body = {key: value for key, value in record.items() if key != "crc"}
    return encode_record(body)


def assert_corrupt(path: Path, line: int, reason: str) -> CorruptLog:
    """Every reader refuses the log, naming ``line``, and the file is left byte for byte."""
    before = path.read_bytes()
    with pytest.raises(CorruptLog) as caught:
        read_log(str(path))
    error = caught.value
    assert error.line == line, error
    assert reason in error.reason, error
    assert f"line {line}:" in str(error)
    assert error.path == str(path)
    assert error.exit_code == EXIT_CORRUPT
    with pytest.raises(CorruptLog):
        list(LogScan(str(path)))
    assert path.read_bytes() == before
    return error


def crc_of_line(line: bytes) -> str:
    """The checksum rule, independently of the implementation: CRC-32 without the crc member."""
    assert line.endswith(b'"}\n')
    head, sep, tail = line.rpartition(b',"crc":"')
    assert sep and len(tail) == len('xxxxxxxx"}\n')
    return f"{zlib.crc32(head + b'}'):08x}"


# -- round trip ---------------------------------------------------------------------------------


def test_empty_log_has_no_records_and_no_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    EventLog.create(str(path)).close()
    assert path.read_bytes() == b""
    assert read_log(str(path)) == ([], None)
    scan = LogScan(str(path))
    assert list(scan) == []
    assert (scan.torn, scan.last_seq, scan.committed_size, scan.lines) == (None, 0, 0, 0)


def test_create_refuses_an_existing_log(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    build_log(path, [1])
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        EventLog.create(str(path))
    assert path.read_bytes() == before


@pytest.mark.parametrize("sizes", [[1], [3], [50], [1, 3, 50], [50, 1, 1, 3]])
def test_round_trip(tmp_path: Path, sizes: list[int]) -> None:
    path = tmp_path / "events.jsonl"
    batches, ends = build_log(path, sizes)
    records, torn = read_log(str(path))
    assert torn is None
    assert records == flat(batches)  # every field, crc included
    assert [r["seq"] for r in records] == list(range(1, sum(sizes) + 1))
    for batch in batches:
        first = batch[0]["seq"]
        assert [(r["batch"], r["batch_size"]) for r in batch] == [(first, len(batch))] * len(batch)
    assert all(r["ts"] == TS and r["type"] == "step" for r in records)
    assert records[0]["note"] == "ünïcødé ✓ 日本語 🚀"
    assert records[0]["nested"] == {"list": [1, 2.5, None, True, {"k": "v"}], "empty": {}}
    scan = LogScan(str(path))
    assert list(scan) == records
    assert (scan.torn, scan.last_seq, scan.committed_size) == (None, sum(sizes), ends[-1])
    assert scan.lines == sum(sizes)


def test_line_layout_envelope_first_crc_last(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    build_log(path, [1, 3])
    lines = raw_lines(path)
    assert len(lines) == 4
    for line in lines:
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        value = json.loads(line)
        assert list(value)[:5] == ["seq", "batch", "batch_size", "type", "ts"]
        assert list(value)[-1] == "crc"
        assert value["crc"] == crc_of_line(line)
        assert b" " not in line.split(b'"note"')[0]  # compact separators
        assert "ünïcødé".encode() in line  # UTF-8 as is, not \u escapes


def test_strings_with_line_breaks_stay_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog.create(str(path))
    tricky = 'a\nb\r\nc\u2028d\u2029e\x00f"g\\h'
    written = log.append([("step", {"text": tricky}), ("step", {"text": "\n"})], TS)
    log.close()
    assert len(raw_lines(path)) == 2
    records, torn = read_log(str(path))
    assert torn is None and records == written
    assert records[0]["text"] == tricky


def test_seq_continues_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    batches, _ = build_log(path, [2, 1])
    scan = LogScan(str(path))
    assert list(scan) == flat(batches)
    log = EventLog.open(str(path), scan.last_seq)
    assert log.next_seq == 4
    more = log.append(events(3), TS)
    again = log.append(events(1), TS)
    log.close()
    assert [r["seq"] for r in more] == [4, 5, 6]
    assert [(r["batch"], r["batch_size"]) for r in more] == [(4, 3)] * 3
    assert [(r["seq"], r["batch"], r["batch_size"]) for r in again] == [(7, 7, 1)]
    records, torn = read_log(str(path))
    assert torn is None
    assert records == flat(batches) + more + again


# -- group commit -------------------------------------------------------------------------------


def _counting(monkeypatch: pytest.MonkeyPatch, calls: list[tuple[str, Any]]) -> None:
    real_write, real_sync = durable.write_all, durable.sync

    def write_all(fd: int, data: bytes) -> None:
        calls.append(("write", bytes(data)))
        real_write(fd, data)

    def sync(fd: int) -> None:
        calls.append(("sync", fd))
        real_sync(fd)

    monkeypatch.setattr(durable, "write_all", write_all)
    monkeypatch.setattr(durable, "sync", sync)


@pytest.mark.parametrize("size", [1, 3, 50])
def test_each_batch_is_one_write_and_one_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog.create(str(path))
    calls: list[tuple[str, Any]] = []
    _counting(monkeypatch, calls)
    for _ in range(3):
        before = path.stat().st_size
        calls.clear()
        log.append(events(size), TS)
        assert [kind for kind, _ in calls] == ["write", "sync"]
        data = calls[0][1]
        assert data.count(b"\n") == size
        assert path.read_bytes()[before:] == data
    log.close()


def test_observers_see_the_batch_before_write_then_before_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog.create(str(path))
    calls: list[tuple[str, Any]] = []
    _counting(monkeypatch, calls)
    sizes_seen: list[int] = []

    def observer(kind: str) -> Callable[[Sequence[Record]], None]:
        def observe(records: Sequence[Record]) -> None:
            calls.append((kind, [dict(r) for r in records]))
            sizes_seen.append(path.stat().st_size)

        return observe

    log.before_write = observer("before_write")
    log.before_sync = observer("before_sync")
    written = log.append(events(3), TS)
    log.close()
    assert [kind for kind, _ in calls] == ["before_write", "write", "before_sync", "sync"]
    assert calls[0][1] == written and calls[2][1] == written
    assert [r["seq"] for r in calls[0][1]] == [1, 2, 3]
    assert all("crc" in r for r in calls[0][1])
    assert sizes_seen == [0, len(calls[1][1])]  # nothing written yet, then the whole batch


# -- torn tails ---------------------------------------------------------------------------------


def test_torn_tail_at_every_byte_of_the_last_batch(tmp_path: Path) -> None:
    source = tmp_path / "source.jsonl"
    batches, ends = build_log(source, [2, 1, 3])
    data = source.read_bytes()
    committed = flat(batches[:-1])
    start = ends[-2]
    assert len(batches[-1]) == 3 and ends[-1] == len(data)
    line_ends = {start + len(b"".join(raw_lines(source)[3:k])) for k in range(4, 7)}
    for end in range(start, len(data)):
        path = tmp_path / str(end) / "events.jsonl"
        path.parent.mkdir()
        path.write_bytes(data[:end])
        records, torn = read_log(str(path))
        assert records == committed, end
        assert path.read_bytes() == data[:end]  # reading never changes the file
        if end == start:
            assert torn is None
        else:
            assert torn == TornTail(
                offset=start, length=end - start, last_seq=len(committed), line=len(committed) + 1
            ), end
            # cut at a line boundary: every line is intact, the batch just lacks records
            expected = "incomplete commit batch" if end in line_ends else "incomplete line"
            assert torn.reason == expected, end
            backup = cut_torn_tail(str(path), torn)
            assert backup == f"{path}.torn-{start}"
            assert Path(backup).read_bytes() == data[start:end]
            assert path.read_bytes() == data[:start]
            assert read_log(str(path)) == (committed, None)
        log = EventLog.open(str(path), len(committed))
        more = log.append(events(2, "after"), TS)
        log.close()
        assert [r["seq"] for r in more] == [len(committed) + 1, len(committed) + 2]
        assert read_log(str(path)) == (committed + more, None)


def test_torn_later_record_cuts_the_whole_batch_even_if_its_first_record_is_intact(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.jsonl"
    batches, ends = build_log(path, [1, 3])
    lines = raw_lines(path)
    # first record of the last batch whole, second one half written, third missing
    path.write_bytes(b"".join(lines[:2]) + lines[2][: len(lines[2]) // 2])
    records, torn = read_log(str(path))
    assert records == batches[0]
    torn_length = len(lines[1]) + len(lines[2]) // 2
    assert torn == TornTail(offset=ends[0], length=torn_length, last_seq=1, line=2)
    assert torn.reason == "incomplete line"
    backup = cut_torn_tail(str(path), torn)
    assert Path(backup).read_bytes() == lines[1] + lines[2][: len(lines[2]) // 2]
    assert path.read_bytes() == lines[0]


def test_unwritten_block_inside_the_last_batch_is_a_torn_tail(tmp_path: Path) -> None:
    """A block that never reached the disk reads back as zeros; later records of the batch may."""
    path = tmp_path / "events.jsonl"
    batches, ends = build_log(path, [2, 3])
    lines = raw_lines(path)
    zeroed = b"\0" * (len(lines[3]) - 1) + b"\n"
    path.write_bytes(b"".join(lines[:3]) + zeroed + lines[4])
    records, torn = read_log(str(path))
    assert records == batches[0]
    assert torn == TornTail(offset=ends[0], length=ends[1] - ends[0], last_seq=2, line=3)
    assert torn.reason == "no checksum as last member"


@pytest.mark.parametrize(
    ("tail", "reason"),
    [
        pytest.param(b"\0" * 4096, "incomplete line", id="zeros"),
        pytest.param(b"\0\0\0\n", "no checksum as last member", id="zeros-and-newline"),
        pytest.param(b"\xff\xfe{garbage", "incomplete line", id="garbage-bytes"),
        pytest.param(b"this is not json\n", "no checksum as last member", id="garbage-line"),
        pytest.param(b'{"seq":4,"batch":4,"batch_size":1,"ty', "incomplete line", id="torn-line"),
        pytest.param(b"\n", "no checksum as last member", id="empty-line"),
    ],
)
def test_damage_after_the_last_good_line_is_a_torn_tail(
    tmp_path: Path, tail: bytes, reason: str
) -> None:
    path = tmp_path / "events.jsonl"
    batches, ends = build_log(path, [1, 2])
    path.write_bytes(path.read_bytes() + tail)
    records, torn = read_log(str(path))
    assert records == flat(batches)
    assert torn == TornTail(offset=ends[-1], length=len(tail), last_seq=3, line=4)
    assert torn.reason == reason
    assert "torn tail" in torn.describe() and "line 4" in torn.describe()
    assert reason in torn.describe()
    backup = cut_torn_tail(str(path), torn)
    assert Path(backup).read_bytes() == tail
    assert read_log(str(path)) == (flat(batches), None)


def test_zeros_over_the_whole_last_batch_is_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    batches, ends = build_log(path, [1, 3])
    path.write_bytes(path.read_bytes()[: ends[0]] + b"\0" * (ends[1] - ends[0]))
    records, torn = read_log(str(path))
    assert records == batches[0]
    assert torn is not None and (torn.offset, torn.length) == (ends[0], ends[1] - ends[0])
    assert torn.reason == "incomplete line"


def test_a_log_that_is_all_torn_has_no_records(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    build_log(path, [2])
    path.write_bytes(path.read_bytes()[:-1])  # the first batch lost its last newline
    records, torn = read_log(str(path))
    assert records == []
    assert torn == TornTail(offset=0, length=path.stat().st_size, last_seq=0, line=1)
    assert torn.reason == "incomplete line"


def test_torn_tail_reason_is_reported_but_not_compared() -> None:
    default = TornTail(offset=10, length=5, last_seq=2, line=3)
    assert default.reason == "incomplete commit batch"
    mismatch = TornTail(10, 5, 2, 3, "checksum mismatch")
    assert mismatch == default and hash(mismatch) == hash(default)
    assert mismatch != TornTail(10, 6, 2, 3, "checksum mismatch")
    text = mismatch.describe()
    assert "5 bytes from line 3" in text and "after seq 2" in text
    assert "checksum mismatch" in text and "never fully written" in text
    assert "incomplete commit batch" in default.describe()


# -- torn tail or corruption: damage is classified by position --------------------------------


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    """Seven lines in four batches: [1] [2 3 4] [5] [6 7]."""
    path = tmp_path / "events.jsonl"
    build_log(path, [1, 3, 1, 2])
    return path


def _rewrite(path: Path, edit: Callable[[list[bytes]], list[bytes]]) -> None:
    path.write_bytes(b"".join(edit(raw_lines(path))))


def _replace(line: bytes, old: bytes, new: bytes) -> bytes:
    assert line.count(old) == 1
    return line.replace(old, new)


def _checksummed(body: bytes) -> bytes:
    """``body`` (any bytes ending in ``}``) with a crc member that matches it."""
    assert body.endswith(b"}")
    return body[:-1] + b',"crc":"%08x"}\n' % zlib.crc32(body)


def _flip_crc(line: bytes) -> bytes:
    crc = json.loads(line)["crc"].encode()
    flipped = b"0" if crc[:1] != b"0" else b"1"
    return _replace(line, b'"crc":"' + crc, b'"crc":"' + flipped + crc[1:])


def _without_crc(line: bytes) -> bytes:
    value = json.loads(line)
    del value["crc"]
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def _crc_first(line: bytes) -> bytes:
    value = json.loads(line)
    moved = {"crc": value.pop("crc"), **value}
    return json.dumps(moved, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


#: Ways to damage a complete line, and the kind the reader reports. "not a JSON object" never
#: shows up: a line that ends with the crc member ends with "}", so if it parses it is an object;
#: a JSON array is damage of kind "no checksum as last member".
DAMAGE = [
    pytest.param(lambda line: b"garbage\n", "no checksum as last member", id="garbage"),
    pytest.param(
        lambda line: line[: len(line) // 2] + b"\n", "no checksum as last member", id="half-a-line"
    ),
    pytest.param(
        lambda line: b"\0" * (len(line) - 1) + b"\n", "no checksum as last member", id="zeros"
    ),
    pytest.param(lambda line: b"\n", "no checksum as last member", id="empty-line"),
    pytest.param(lambda line: b'["seq", 2]\n', "no checksum as last member", id="json-array"),
    pytest.param(_without_crc, "no checksum as last member", id="crc-removed"),
    pytest.param(_crc_first, "no checksum as last member", id="crc-not-last"),
    pytest.param(
        lambda line: _replace(line, b'"from":"READY"', b'"from":"PENDING"'),
        "checksum mismatch",
        id="altered-value",
    ),
    pytest.param(
        lambda line: _replace(line, b'"type":"step",', b'"type": "step",'),
        "checksum mismatch",
        id="same-value-other-bytes",
    ),
    pytest.param(_flip_crc, "checksum mismatch", id="altered-crc"),
    pytest.param(lambda line: _checksummed(b"{not json}"), "not valid JSON", id="not-json"),
    # A checksum that holds over what a parser cannot take as one JSON object: every way the
    # reader's fast path (one scan of the line) can stop early, and what it cannot parse at all.
    pytest.param(
        lambda line: _checksummed(line[: line.rindex(b',"crc":')] + b"} {}"),
        "not valid JSON",
        id="two-objects",
    ),
    pytest.param(
        lambda line: _checksummed(line[: line.rindex(b',"crc":')] + b'},{"seq":9}'),
        "not valid JSON",
        id="two-objects-with-comma",
    ),
    pytest.param(
        lambda line: _checksummed(b'{"note":"\xff\xfe"}'), "not valid JSON", id="not-utf-8"
    ),
    pytest.param(
        lambda line: _checksummed(b'{"deep":' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        "not valid JSON",
        id="nested-too-deep",
    ),
]


def assert_torn(path: Path, torn: TornTail, reason: str, records: list[Record]) -> None:
    """Readers return ``records`` and report ``torn`` (with ``reason``); the file is unchanged."""
    before = path.read_bytes()
    got, got_torn = read_log(str(path))
    assert got == records
    assert got_torn == torn
    assert got_torn is not None and got_torn.reason == reason
    scan = LogScan(str(path))
    assert list(scan) == records
    assert scan.torn == torn and scan.torn is not None and scan.torn.reason == reason
    assert path.read_bytes() == before


@pytest.mark.parametrize(("damage", "kind"), DAMAGE)
@pytest.mark.parametrize("index", [5, 6], ids=["first-of-last-batch", "last-line"])
def test_damage_inside_the_last_batch_is_a_torn_tail(
    log_path: Path, damage: Callable[[bytes], bytes], kind: str, index: int
) -> None:
    """Lines 6 and 7 are batch [6 7]: one of them damaged, the batch has 1 of its 2 records."""
    records, _ = read_log(str(log_path))
    original = raw_lines(log_path)
    committed_size = len(b"".join(original[:5]))
    _rewrite(log_path, lambda ls: [*ls[:index], damage(ls[index]), *ls[index + 1 :]])
    damaged = log_path.read_bytes()
    torn = TornTail(offset=committed_size, length=len(damaged) - committed_size, last_seq=5, line=6)
    assert_torn(log_path, torn, kind, records[:5])
    backup = cut_torn_tail(str(log_path), torn)
    assert backup == f"{log_path}.torn-{committed_size}"
    assert Path(backup).read_bytes() == damaged[committed_size:]
    assert log_path.read_bytes() == b"".join(original[:5])
    assert read_log(str(log_path)) == (records[:5], None)


@pytest.mark.parametrize(("damage", "kind"), DAMAGE)
@pytest.mark.parametrize(
    ("index", "follows"),
    [
        pytest.param(0, 2, id="first-line"),
        pytest.param(2, 5, id="middle-of-a-batch"),
        pytest.param(4, 6, id="single-record-batch"),
    ],
)
def test_damage_before_the_last_batch_is_corruption(
    log_path: Path, damage: Callable[[bytes], bytes], kind: str, index: int, follows: int
) -> None:
    # ``follows``: the first later line of another batch than the one in flight at the damage
    _rewrite(log_path, lambda ls: [*ls[:index], damage(ls[index]), *ls[index + 1 :]])
    assert_corrupt(
        log_path,
        index + 1,
        f"damaged line ({kind}) before the last commit batch (line {follows} follows it)",
    )


@pytest.mark.parametrize(("damage", "kind"), DAMAGE)
@pytest.mark.parametrize("index", [5, 6], ids=["before-the-last-batch", "inside-the-last-batch"])
def test_damaged_line_inserted_into_a_complete_last_batch_is_corruption(
    log_path: Path, damage: Callable[[bytes], bytes], kind: str, index: int
) -> None:
    """Both records of batch [6 7] are intact after the extra line: no crash explains it."""
    _rewrite(log_path, lambda ls: [*ls[:index], damage(ls[index]), *ls[index:]])
    assert_corrupt(log_path, index + 1, f"damaged line ({kind}) inside a complete commit batch")


@pytest.mark.parametrize(("damage", "kind"), DAMAGE)
def test_damaged_line_appended_after_the_last_batch_is_a_torn_tail(
    log_path: Path, damage: Callable[[bytes], bytes], kind: str
) -> None:
    records, _ = read_log(str(log_path))
    size = log_path.stat().st_size
    extra = damage(raw_lines(log_path)[-1])
    log_path.write_bytes(log_path.read_bytes() + extra)
    torn = TornTail(offset=size, length=len(extra), last_seq=7, line=8)
    assert_torn(log_path, torn, kind, records)


def test_altered_last_line_in_a_single_record_last_batch_is_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    batches, ends = build_log(path, [1, 3, 1])
    _rewrite(path, lambda ls: [*ls[:-1], _replace(ls[-1], b'"to":"RUNNING"', b'"to":"SUCCESS"')])
    assert json.loads(raw_lines(path)[-1])["to"] == "SUCCESS"  # still valid JSON, whole line
    torn = TornTail(offset=ends[1], length=ends[2] - ends[1], last_seq=4, line=5)
    assert_torn(path, torn, "checksum mismatch", flat(batches[:2]))
    _, got = read_log(str(path))
    assert got is not None and "(after seq 4; checksum mismatch)" in got.describe()


def test_altered_last_line_of_a_multi_record_last_batch_cuts_the_whole_batch(
    log_path: Path,
) -> None:
    """Line 6 (seq 6) is intact, line 7 altered: batch [6 7] has 1 intact record of 2."""
    records, _ = read_log(str(log_path))
    lines = raw_lines(log_path)
    _rewrite(log_path, lambda ls: [*ls[:-1], _replace(ls[-1], b'"attempt":1', b'"attempt":7')])
    committed_size = len(b"".join(lines[:5]))
    torn = TornTail(committed_size, len(lines[5]) + len(lines[6]), last_seq=5, line=6)
    assert_torn(log_path, torn, "checksum mismatch", records[:5])  # seq 6 is not returned


def test_altered_middle_line_followed_by_later_batches_is_corruption(log_path: Path) -> None:
    _rewrite(
        log_path, lambda ls: [*ls[:2], _replace(ls[2], b'"attempt":1', b'"attempt":7'), *ls[3:]]
    )
    assert json.loads(raw_lines(log_path)[2])["attempt"] == 7  # still valid JSON
    error = assert_corrupt(
        log_path, 3, "damaged line (checksum mismatch) before the last commit batch"
    )
    assert error.reason.endswith("(line 5 follows it)")


def test_removed_crc_in_the_middle_is_corruption_but_torn_in_the_last_batch(
    log_path: Path,
) -> None:
    original = log_path.read_bytes()
    _rewrite(log_path, lambda ls: [*ls[:3], _without_crc(ls[3]), *ls[4:]])
    assert_corrupt(log_path, 4, "damaged line (no checksum as last member) before the last")
    log_path.write_bytes(original)
    _rewrite(log_path, lambda ls: [*ls[:6], _without_crc(ls[6])])
    _, torn = read_log(str(log_path))
    assert torn is not None and (torn.line, torn.last_seq) == (6, 5)
    assert torn.reason == "no checksum as last member"


def test_garbage_line_inserted_between_earlier_batches_is_corruption(log_path: Path) -> None:
    _rewrite(log_path, lambda ls: [ls[0], b"garbage\n", *ls[1:]])
    assert_corrupt(
        log_path,
        2,
        "damaged line (no checksum as last member) before the last commit batch "
        "(line 6 follows it)",
    )


def test_garbage_line_before_a_complete_last_batch_is_corruption(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    build_log(path, [1, 3])
    _rewrite(path, lambda ls: [ls[0], b"garbage\n", *ls[1:]])
    # lines 3-5 are all three records of batch 2, each intact: no crash can explain line 2
    assert_corrupt(
        path, 2, "damaged line (no checksum as last member) inside a complete commit batch"
    )


def test_checksum_mismatch_after_a_torn_line_in_the_last_batch_is_a_torn_tail(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.jsonl"
    batches, ends = build_log(path, [1, 3])
    _rewrite(
        path,
        lambda ls: [ls[0], ls[1], b"torn\n", _replace(ls[3], b'"attempt":2', b'"attempt":9')],
    )
    # both damaged lines lie in batch 2, which has only one intact record (seq 2) of three
    torn = TornTail(offset=ends[0], length=path.stat().st_size - ends[0], last_seq=1, line=2)
    assert_torn(path, torn, "no checksum as last member", batches[0])


def test_checksum_mismatch_after_a_torn_line_followed_by_a_batch_is_corruption(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.jsonl"
    build_log(path, [1, 3, 1])
    _rewrite(
        path,
        lambda ls: [
            ls[0],
            ls[1],
            b"torn\n",
            _replace(ls[3], b'"attempt":2', b'"attempt":9'),
            ls[4],
        ],
    )
    # reported at the FIRST damaged line; line 5 (batch 5) follows the in-flight batch 2
    assert_corrupt(
        path,
        3,
        "damaged line (no checksum as last member) before the last commit batch "
        "(line 5 follows it)",
    )


def _forge_lines(path: Path, edit: Callable[[list[Record]], None]) -> None:
    """Rewrite the log from its records after ``edit``: every line keeps a valid checksum."""
    records, torn = read_log(str(path))
    assert torn is None
    edit(records)
    path.write_bytes(b"".join(forge(record) for record in records))


def _set(*changes: tuple[int, dict[str, Any]]) -> Callable[[list[Record]], None]:
    def edit(records: list[Record]) -> None:
        for index, fields in changes:
            records[index].update(fields)

    return edit


@pytest.mark.parametrize("index", [2, 5, 6], ids=["middle", "first-of-last-batch", "last-line"])
@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("seq", "3", "envelope field 'seq'"),
        ("batch", None, "envelope field 'batch'"),
        ("batch_size", 3.0, "envelope field 'batch_size'"),
        ("batch_size", True, "envelope field 'batch_size'"),
        ("type", 7, "envelope field 'type'"),
    ],
)
def test_envelope_field_of_the_wrong_type_is_corruption_even_in_the_last_batch(
    log_path: Path, field: str, value: Any, reason: str, index: int
) -> None:
    # the checksum holds, so the line was written as it is: never a crash trace
    _forge_lines(log_path, _set((index, {field: value})))
    assert_corrupt(log_path, index + 1, reason)


@pytest.mark.parametrize("index", [4, 6], ids=["middle", "last-line"])
def test_missing_envelope_field_is_corruption(log_path: Path, index: int) -> None:
    _forge_lines(log_path, lambda records: records[index].pop("type"))
    assert_corrupt(log_path, index + 1, "envelope field 'type'")


def test_bad_envelope_after_a_torn_line_is_corruption_at_its_own_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    batches, _ = build_log(path, [1, 3])
    bad = {key: value for key, value in batches[1][1].items() if key != "type"}
    _rewrite(path, lambda ls: [ls[0], ls[1], b"torn\n", forge(bad)])
    assert_corrupt(path, 4, "envelope field 'type' missing")


@pytest.mark.parametrize(
    ("removed", "line"),
    [
        pytest.param(2, 3, id="middle-of-a-batch"),
        pytest.param(4, 5, id="whole-single-record-batch"),
        pytest.param(0, 1, id="first-line"),
    ],
)
def test_removed_line_is_a_seq_gap(log_path: Path, removed: int, line: int) -> None:
    _rewrite(log_path, lambda ls: ls[:removed] + ls[removed + 1 :])
    assert_corrupt(log_path, line, "seq gap")


@pytest.mark.parametrize(
    ("duplicated", "line"),
    [
        pytest.param(2, 4, id="middle"),
        pytest.param(4, 6, id="single-record-batch"),
        pytest.param(5, 7, id="inside-the-last-batch"),
        pytest.param(6, 8, id="last-line"),
    ],
)
def test_duplicated_line_is_corruption(log_path: Path, duplicated: int, line: int) -> None:
    _rewrite(log_path, lambda ls: ls[: duplicated + 1] + ls[duplicated:])
    assert_corrupt(log_path, line, "seq duplicate or out-of-order")


def test_swapped_lines_are_corruption(log_path: Path) -> None:
    _rewrite(log_path, lambda ls: [*ls[:4], ls[5], ls[4], ls[6]])
    assert_corrupt(log_path, 5, "seq gap")


@pytest.mark.parametrize(
    ("edit", "line"),
    [
        pytest.param(_set((2, {"batch_size": 4})), 3, id="size-changes-inside-a-batch"),
        pytest.param(_set((2, {"batch": 3})), 3, id="batch-start-changes-inside-a-batch"),
        pytest.param(_set((4, {"batch": 4})), 5, id="first-record-batch-is-not-its-seq"),
        pytest.param(
            _set((1, {"batch_size": 2}), (2, {"batch_size": 2})),
            4,
            id="batch-ends-early-then-its-last-record-claims-it",
        ),
        pytest.param(_set((4, {"batch_size": 0})), 5, id="batch-size-zero"),
        pytest.param(_set((4, {"batch_size": -1})), 5, id="batch-size-negative"),
        pytest.param(_set((6, {"batch_size": 3})), 7, id="last-record-claims-a-bigger-batch"),
        pytest.param(_set((6, {"batch": 7})), 7, id="last-record-claims-another-batch"),
    ],
)
def test_inconsistent_batch_fields_are_corruption(
    log_path: Path, edit: Callable[[list[Record]], None], line: int
) -> None:
    _forge_lines(log_path, edit)
    assert_corrupt(log_path, line, "commit batch fields disagree")


@pytest.mark.parametrize(
    ("build", "offending"),
    [
        pytest.param(lambda ls, rec: [ls[0], ls[1], b"torn\n", ls[1]], 4, id="duplicate"),
        pytest.param(lambda ls, rec: [ls[0], b"torn\n", ls[3], ls[2]], 4, id="seq-backwards"),
        pytest.param(
            lambda ls, rec: [ls[0], b"torn\n", forge({**rec, "seq": 9})], 3, id="seq-after-batch"
        ),
        pytest.param(
            lambda ls, rec: [ls[0], b"torn\n", forge({**rec, "seq": 1})], 3, id="seq-before-batch"
        ),
        pytest.param(
            lambda ls, rec: [ls[0], ls[1], b"torn\n", forge({**rec, "seq": 4, "batch_size": 5})],
            4,
            id="batch-size-disagrees",
        ),
    ],
)
def test_intact_records_after_a_torn_line_must_still_be_consistent(
    tmp_path: Path, build: Callable[[list[bytes], Record], list[bytes]], offending: int
) -> None:
    path = tmp_path / "events.jsonl"
    batches, _ = build_log(path, [1, 3])  # [1] [2 3 4]
    record = {key: value for key, value in batches[1][1].items() if key != "crc"}  # seq 3
    _rewrite(path, lambda ls: build(ls, record))
    before = path.read_bytes()
    with pytest.raises(CorruptLog) as caught:
        read_log(str(path))
    damaged = raw_lines(path).index(b"torn\n") + 1
    assert caught.value.line in (damaged, offending)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("edit", "seen_before", "line"),
    [
        pytest.param(
            lambda ls: [*ls[:4], _replace(ls[4], b'"attempt":0', b'"attempt":1'), *ls[5:]],
            [1, 2, 3, 4],
            5,
            id="damage-before-the-last-batch",
        ),
        pytest.param(
            lambda ls: [*ls[:6], b"garbage\n", ls[6]],
            [1, 2, 3, 4, 5],
            7,
            id="damage-inside-a-complete-last-batch",
        ),
        pytest.param(
            lambda ls: [*ls[:6], forge({**json.loads(ls[6]), "batch_size": 3})],
            [1, 2, 3, 4, 5],
            7,
            id="disagreeing-batch-fields",
        ),
    ],
)
def test_committed_batches_before_corruption_stream_out_first(
    log_path: Path, edit: Callable[[list[bytes]], list[bytes]], seen_before: list[int], line: int
) -> None:
    _rewrite(log_path, edit)
    scan = LogScan(str(log_path))
    seen: list[int] = []
    with pytest.raises(CorruptLog) as caught:
        for record in scan:
            seen.append(record["seq"])
    assert seen == seen_before
    assert caught.value.line == line


def test_committed_batches_before_a_torn_tail_stream_out_first(log_path: Path) -> None:
    _rewrite(log_path, lambda ls: [*ls[:5], _replace(ls[5], b'"attempt":0', b'"attempt":1'), ls[6]])
    scan = LogScan(str(log_path))
    seen: list[int] = []
    for record in scan:
        seen.append(record["seq"])
        assert scan.torn is None  # known only once the pass is over
    assert seen == [1, 2, 3, 4, 5]
    assert scan.torn is not None and scan.torn.reason == "checksum mismatch"
    assert (scan.last_seq, scan.lines, scan.torn.line) == (5, 5, 6)


# -- write failures -----------------------------------------------------------------------------


def _committed_log(tmp_path: Path) -> tuple[Path, EventLog, list[Record], int]:
    path = tmp_path / "events.jsonl"
    log = EventLog.create(str(path))
    committed = log.append(events(2), TS) + log.append(events(1), TS)
    return path, log, committed, path.stat().st_size


def _reads_as_committed_plus_at_most_the_failed_batch(
    path: Path, committed: list[Record], failed_size: int
) -> None:
    """Never corruption: the failed batch is absent, torn, or (written, unsynced) whole."""
    records, torn = read_log(str(path))
    seqs = [r["seq"] for r in records]
    before = list(range(1, len(committed) + 1))
    with_failed = list(range(1, len(committed) + failed_size + 1))
    assert records[: len(committed)] == committed
    assert seqs in (before, with_failed)
    if torn is not None:
        assert seqs == before
        cut_torn_tail(str(path), torn)
    # what `wf resume` does next: reopen after the last committed record and go on
    last_seq = seqs[-1]
    log = EventLog.open(str(path), last_seq)
    log.append(events(1, "resumed"), TS)
    log.close()
    records, torn = read_log(str(path))
    assert torn is None
    assert [r["seq"] for r in records] == list(range(1, last_seq + 2))


@pytest.mark.parametrize("size", [1, 3])
def test_fsync_failure_propagates_and_seq_does_not_advance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    path, log, committed, _ = _committed_log(tmp_path)

    def failing_sync(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    with monkeypatch.context() as patch:
        patch.setattr(durable, "sync", failing_sync)
        with pytest.raises(OSError) as caught:
            log.append(events(size), TS)
    assert caught.value.errno == errno.EIO
    assert log.next_seq == len(committed) + 1
    log.close()
    _reads_as_committed_plus_at_most_the_failed_batch(path, committed, size)


@pytest.mark.parametrize("size", [1, 3])
def test_partial_write_then_enospc_leaves_a_torn_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    path, log, committed, committed_size = _committed_log(tmp_path)
    syncs: list[int] = []
    half: list[bytes] = []

    def full_disk(fd: int, data: bytes) -> None:
        half.append(bytes(data[: len(data) // 2]))
        os.write(fd, half[0])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patch:
        patch.setattr(durable, "write_all", full_disk)
        patch.setattr(durable, "sync", syncs.append)
        with pytest.raises(OSError) as caught:
            log.append(events(size), TS)
    assert caught.value.errno == errno.ENOSPC
    assert syncs == []  # never fsyncs (let alone claims) a batch it could not write
    assert log.next_seq == len(committed) + 1
    log.close()
    records, torn = read_log(str(path))
    assert records == committed
    assert torn == TornTail(committed_size, len(half[0]), len(committed), len(committed) + 1)
    _reads_as_committed_plus_at_most_the_failed_batch(path, committed, size)


def test_write_failure_before_any_byte_leaves_the_log_clean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, log, committed, _ = _committed_log(tmp_path)
    before = path.read_bytes()

    def eio(fd: int, data: bytes) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    with monkeypatch.context() as patch:
        patch.setattr(durable, "write_all", eio)
        with pytest.raises(OSError):
            log.append(events(3), TS)
    assert log.next_seq == len(committed) + 1
    log.close()
    assert path.read_bytes() == before
    assert read_log(str(path)) == (committed, None)


def test_unencodable_payload_writes_nothing(tmp_path: Path) -> None:
    path, log, committed, _ = _committed_log(tmp_path)
    before = path.read_bytes()
    with pytest.raises(ValueError):  # a lone surrogate is not UTF-8
        log.append([("step", {"text": "ok"}), ("step", {"text": "\udc80"})], TS)
    assert log.next_seq == len(committed) + 1
    log.close()
    assert path.read_bytes() == before


@pytest.mark.parametrize("field", ["seq", "batch", "batch_size", "type", "ts", "crc"])
def test_payload_reusing_an_envelope_field_is_rejected_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, field: str
) -> None:
    path, log, committed, _ = _committed_log(tmp_path)
    before = path.read_bytes()
    calls: list[tuple[str, Any]] = []
    _counting(monkeypatch, calls)
    observed: list[Sequence[Record]] = []
    log.before_write = observed.append
    bad = {"step": "b", field: 99}
    with pytest.raises(ValueError, match="envelope field"):
        log.append([("step", {"step": "a"}), ("step", bad)], TS)
    assert bad == {"step": "b", field: 99}  # the caller's payload is left alone
    assert calls == [] and observed == []  # nothing written, nothing synced, nothing observed
    assert path.read_bytes() == before
    assert log.next_seq == len(committed) + 1
    # nothing reached the disk, so the writer stays usable
    more = log.append(events(1), TS)
    log.close()
    assert [r["seq"] for r in more] == [len(committed) + 1]
    assert read_log(str(path)) == (committed + more, None)


def _fail_sync(calls: list[tuple[str, Any]]) -> tuple[str, Callable[..., None], int]:
    def sync(fd: int) -> None:
        calls.append(("sync", fd))
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    return "sync", sync, errno.EIO


def _fail_write_partially(calls: list[tuple[str, Any]]) -> tuple[str, Callable[..., None], int]:
    def write_all(fd: int, data: bytes) -> None:
        calls.append(("write", bytes(data)))
        os.write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    return "write_all", write_all, errno.ENOSPC


def _fail_write_at_once(calls: list[tuple[str, Any]]) -> tuple[str, Callable[..., None], int]:
    def write_all(fd: int, data: bytes) -> None:
        calls.append(("write", bytes(data)))
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    return "write_all", write_all, errno.EIO


@pytest.mark.parametrize(
    ("failure", "kinds"),
    [
        pytest.param(_fail_sync, ["write", "sync"], id="fsync-eio"),
        pytest.param(_fail_write_partially, ["write"], id="partial-write-enospc"),
        pytest.param(_fail_write_at_once, ["write"], id="write-eio"),
    ],
)
def test_append_after_a_failed_write_or_fsync_raises_without_writing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failure: Callable[[list[tuple[str, Any]]], tuple[str, Callable[..., None], int]],
    kinds: list[str],
) -> None:
    path, log, committed, _ = _committed_log(tmp_path)
    calls: list[tuple[str, Any]] = []
    _counting(monkeypatch, calls)
    name, failing, code = failure(calls)
    with monkeypatch.context() as patch:
        patch.setattr(durable, name, failing)
        with pytest.raises(OSError) as caught:
            log.append(events(2), TS)
    assert caught.value.errno == code
    assert [kind for kind, _ in calls] == kinds  # one attempt: an fsync is never retried
    after = path.read_bytes()
    observed: list[Sequence[Record]] = []
    log.before_write = observed.append
    log.before_sync = observed.append
    for _ in range(2):  # the disk works again: the writer still refuses, every time
        calls.clear()
        with pytest.raises(OSError) as refused:
            log.append(events(1), TS)
        assert refused.value.errno == code
        assert calls == [] and observed == []  # no write, no fsync, no observer
        assert path.read_bytes() == after
        assert log.next_seq == len(committed) + 1
    log.close()
    # what is on disk still reads as a log; a new writer (``wf resume``) can go on
    _reads_as_committed_plus_at_most_the_failed_batch(path, committed, 2)


# -- cutting ------------------------------------------------------------------------------------


def test_cut_makes_the_backup_durable_before_truncating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "events.jsonl"
    build_log(path, [1, 2])
    path.write_bytes(path.read_bytes() + b'{"seq":4,"ba')
    _, torn = read_log(str(path))
    assert torn is not None
    backup = Path(f"{path}.torn-{torn.offset}")
    seen: list[tuple[bool, int]] = []
    real_sync = durable.sync

    def sync(fd: int) -> None:
        seen.append(
            (backup.exists() and backup.read_bytes() == b'{"seq":4,"ba', path.stat().st_size)
        )
        real_sync(fd)

    monkeypatch.setattr(durable, "sync", sync)
    cut_torn_tail(str(path), torn)
    # first fsync: the complete backup, while the log is still whole; then the truncated log
    assert seen[0] == (True, torn.offset + torn.length)
    assert seen[1] == (True, torn.offset)


def test_later_cuts_at_the_same_offset_never_overwrite_earlier_backups(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    build_log(path, [1])
    good = path.read_bytes()
    offset = len(good)
    crashes = [b"first crash", b"second crash", b"third crash\n"]
    backups = []
    for crash in crashes:
        path.write_bytes(good + crash)
        _, torn = read_log(str(path))
        assert torn is not None and torn.offset == offset
        backups.append(cut_torn_tail(str(path), torn))
        assert path.read_bytes() == good
    base = f"{path}.torn-{offset}"
    assert backups == [base, f"{base}.1", f"{base}.2"]
    assert [Path(backup).read_bytes() for backup in backups] == crashes
    names = sorted(child.name for child in tmp_path.iterdir())
    assert names == sorted(["events.jsonl", *(Path(backup).name for backup in backups)])


def test_a_cut_at_another_offset_gets_its_own_backup(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    build_log(path, [1])
    first_end = path.stat().st_size
    path.write_bytes(path.read_bytes() + b"crash one")
    _, torn = read_log(str(path))
    assert torn is not None
    first = cut_torn_tail(str(path), torn)
    log = EventLog.open(str(path), 1)
    log.append(events(2), TS)
    log.close()
    second_end = path.stat().st_size
    path.write_bytes(path.read_bytes() + b"crash two")
    _, torn = read_log(str(path))
    assert torn is not None and torn.offset == second_end
    second = cut_torn_tail(str(path), torn)
    assert (first, second) == (f"{path}.torn-{first_end}", f"{path}.torn-{second_end}")
    assert Path(first).read_bytes() == b"crash one"
    assert Path(second).read_bytes() == b"crash two"


# -- strict JSON and what stands in place of the log --------------------------------------------


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")], ids=str)
def test_a_nan_or_infinity_is_refused_before_writing_naming_the_record_type(
    tmp_path: Path, value: float
) -> None:
    path, log, committed, _ = _committed_log(tmp_path)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="cancel_requested record holds a NaN or an infinity"):
        log.append([("step", {"text": "ok"}), ("cancel_requested", {"grace_sec": value})], TS)
    assert path.read_bytes() == before
    assert log.append(events(1), TS)[0]["seq"] == len(committed) + 1  # the writer is usable
    log.close()


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_a_checksummed_nan_is_not_json(log_path: Path, literal: bytes) -> None:
    """Python's parser reads NaN; the log format (strict JSON) has none: position decides."""
    lines = raw_lines(log_path)
    body = lines[2][: lines[2].rindex(b',"crc":')] + b',"extra":' + literal + b"}"
    lines[2] = body[:-1] + b',"crc":"%08x"}\n' % zlib.crc32(body)
    log_path.write_bytes(b"".join(lines))
    assert_corrupt(log_path, 3, "damaged line (not valid JSON) before the last commit batch")


def test_a_checksummed_line_reads_as_any_json_parser_reads_it(log_path: Path) -> None:
    """Spaces before the object are JSON (the checksum covers them): the record reads the same.

    The reader parses a line in one scan from its first byte and leaves anything else to the
    complete parser; this pins that the two agree on a line only the latter reads.
    """
    records, _ = read_log(str(log_path))
    lines = raw_lines(log_path)
    lines[2] = _checksummed(b" \t" + lines[2][: lines[2].rindex(b',"crc":')] + b"}")
    log_path.write_bytes(b"".join(lines))
    got, torn = read_log(str(log_path))
    assert torn is None
    assert [{k: v for k, v in r.items() if k != "crc"} for r in got] == [
        {k: v for k, v in r.items() if k != "crc"} for r in records
    ]


def _make_fifo(path: Path) -> str:
    os.mkfifo(path)
    return "a FIFO"


def _make_directory(path: Path) -> str:
    path.mkdir()
    return "a directory"


def _make_symlink(path: Path) -> str:
    build_log(path.with_name("real.jsonl"), [1])
    path.symlink_to(path.with_name("real.jsonl"))
    return "a symbolic link"


def _make_dangling_symlink(path: Path) -> str:
    path.symlink_to(path.with_name("nowhere"))
    return "a symbolic link"


@pytest.mark.parametrize(
    "make", [_make_fifo, _make_directory, _make_symlink, _make_dangling_symlink], ids=repr
)
def test_the_reader_refuses_what_is_not_a_regular_file_without_blocking(
    tmp_path: Path, make: Callable[[Path], str]
) -> None:
    path = tmp_path / "events.jsonl"
    kind = make(path)
    outcome: list[BaseException] = []

    def scan() -> None:
        try:
            read_log(str(path))
        except BaseException as exc:  # handed over to the test thread
            outcome.append(exc)

    reader = threading.Thread(target=scan, daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive(), "the reader blocked"
    (error,) = outcome
    assert isinstance(error, StoreError) and error.exit_code == EXIT_CORRUPT
    assert str(error) == f"{path}: not a regular file ({kind}); refusing to read it"


def test_open_regular_reads_a_regular_file_and_passes_other_errors_through(
    tmp_path: Path,
) -> None:
    path = tmp_path / "plain"
    path.write_bytes(b"data")
    with open_regular(str(path)) as file:
        assert file.read() == b"data"
    fd = open_regular_fd(str(path))
    try:
        assert os.get_inheritable(fd) is False
    finally:
        os.close(fd)
    with pytest.raises(FileNotFoundError):
        open_regular(str(tmp_path / "missing"))
