"""Damage a log the way crashes and bad disks do, to test what readers and ``resume`` make of it.

Crash traces (``resume`` must cut them and carry on): a tear inside the last commit batch,
zeros or garbage after the last record, unsynced writes lost.
Corruption (every command must refuse it, exit 4, naming the line): anything else, e.g.
``flip_byte`` in an early line.
"""

from __future__ import annotations

import os
import random


def tear(path: str, offset: int) -> bytes:
    """Truncate the log at byte ``offset``; returns the bytes removed."""
    with open(path, "rb+") as log:
        log.seek(offset)
        removed = log.read()
        log.truncate(offset)
    return removed


def append_zeros(path: str, count: int = 4096) -> None:
    """What a file system can leave after a crash: the size grew, the data never landed."""
    with open(path, "ab") as log:
        log.write(b"\0" * count)


def append_garbage(path: str, count: int = 64, seed: int = 0) -> None:
    data = bytes(random.Random(seed).randrange(256) for _ in range(count))
    with open(path, "ab") as log:
        log.write(data.replace(b"\n", b"\0"))


def flip_byte(path: str, offset: int) -> None:
    """Silent corruption: one byte changed in place (bit rot, a bad editor)."""
    with open(path, "rb+") as log:
        log.seek(offset)
        byte = log.read(1)
        log.seek(offset)
        log.write(bytes([byte[0] ^ 0x20]))


def lose_unsynced(path: str, synced_size: int, seed: int = 0, keep: float = 0.5) -> None:
    """Keep the fsynced prefix plus a random subset of the pages written after it.

    Models a power cut: pages of the unsynced suffix reach the disk in any order; those that did
    not read back as zeros (as a file system that had allocated them would show).
    """
    size = os.path.getsize(path)
    if size <= synced_size:
        return
    rng = random.Random(seed)
    page = 512
    with open(path, "rb+") as log:
        for start in range(synced_size, size, page):
            if rng.random() >= keep:
                length = min(page, size - start)
                log.seek(start)
                log.write(b"\0" * length)
        if rng.random() < 0.5:
            log.truncate(synced_size + rng.randrange(size - synced_size + 1))


def batch_boundaries(path: str) -> list[int]:
    """Byte offsets where each commit batch ends (the fsynced sizes the log went through)."""
    from wf_engine.log.eventlog import LogScan

    ends: list[int] = []
    offset = 0
    for record in LogScan(path):
        offset += len(_encoded_line(record))
        if record["seq"] == record["batch"] + record["batch_size"] - 1:
            ends.append(offset)
    return ends


def _encoded_line(record: dict[str, object]) -> bytes:
    from wf_engine.log.eventlog import encode_record

    copy = {key: value for key, value in record.items() if key != "crc"}
    return encode_record(copy)
