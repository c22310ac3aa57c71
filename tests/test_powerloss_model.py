"""The power-loss model (``fault_injection.powerloss``) on hand-made run folders: no engine runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fault_injection.crash import crash_env, journal_entry
from fault_injection.powerloss import drop_unsynced, read_journal, unsynced_batch_start
from wf_engine.log.eventlog import EventLog, read_log

TS = "2026-01-01T00:00:00.000000Z"
SEEDS = range(40)


def make_run(root: Path) -> Path:
    """A run folder as a killed engine leaves it: two synced batches, one unsynced, steps/."""
    root.mkdir()
    log = EventLog.create(str(root / "events.jsonl"))
    log.append([("runner_started", {"pid": 1}), ("runner_started", {"pid": 2})], TS)
    log.append([("runner_started", {"pid": 3})], TS)
    log.append([("runner_started", {"pid": 4}), ("runner_started", {"pid": 5})], TS)
    log.close()
    (root / "runner.lock").write_text("4242\n")
    (root / "cancel.request").write_text('{"source": "wf cancel"}\n')
    (root / "events.jsonl.torn-10").write_bytes(b"cut bytes")
    for name in ("a", "b"):
        folder = root / "steps" / name
        folder.mkdir(parents=True)
        (folder / "1.lock").write_text("4243 linux:1\n")
        (folder / "1.out").write_text("output\n" * 100)
    return root


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {
        str(path.relative_to(root)): path.read_bytes() if path.is_file() else None
        for path in sorted(root.rglob("*"))
    }


def test_unsynced_batch_start_is_where_the_last_batch_begins(tmp_path: Path) -> None:
    root = make_run(tmp_path / "run")
    lines = (root / "events.jsonl").read_bytes().splitlines(keepends=True)
    assert unsynced_batch_start(str(root / "events.jsonl")) == sum(map(len, lines[:3]))
    single = tmp_path / "single.jsonl"
    EventLog.create(str(single)).append([("runner_started", {"pid": 1})], TS)
    assert unsynced_batch_start(str(single)) == 0  # the first batch was never fsynced


@pytest.mark.parametrize("seed", SEEDS)
def test_what_the_engine_fsyncs_is_kept(tmp_path: Path, seed: int) -> None:
    root = make_run(tmp_path / "run")
    before = snapshot(root)
    synced = unsynced_batch_start(str(root / "events.jsonl"))
    drop_unsynced(root, synced, seed)
    after = snapshot(root)
    for name in ("cancel.request", "events.jsonl.torn-10"):
        assert after[name] == before[name]
    assert "runner.lock" in after
    log = after["events.jsonl"]
    assert log is not None and log[:synced] == before["events.jsonl"][:synced]  # type: ignore[index]
    records, _ = read_log(str(root / "events.jsonl"))  # a torn tail at worst, never corruption
    assert [r["seq"] for r in records][:3] == [1, 2, 3]


def test_seeds_drop_names_and_contents_reproducibly(tmp_path: Path) -> None:
    outcomes = []
    for seed in SEEDS:
        root = make_run(tmp_path / f"run-{seed}")
        loss = drop_unsynced(root, unsynced_batch_start(str(root / "events.jsonl")), seed)
        again = make_run(tmp_path / f"again-{seed}")
        assert drop_unsynced(again, unsynced_batch_start(str(again / "events.jsonl")), seed) == loss
        assert snapshot(root) == snapshot(again)
        outcomes.append((loss, snapshot(root)))
    removed = {name for loss, _ in outcomes for name in loss.removed}
    assert {"steps", "steps/a", "steps/b/1.lock"} <= removed
    assert any(files.get("steps/a/1.lock") == b"" for _, files in outcomes)  # pid lost
    assert any(files.get("runner.lock") not in (None, b"4242\n") for _, files in outcomes)
    assert any("steps" in files for _, files in outcomes)  # and sometimes the name survives


def test_a_removed_file_stays_open_for_its_holder(tmp_path: Path) -> None:
    root = make_run(tmp_path / "run")
    probes = {s: drop_unsynced(make_run(tmp_path / f"probe-{s}"), 0, s) for s in SEEDS}
    seed = next(s for s, loss in probes.items() if "steps" in loss.removed)
    held = os.open(root / "steps" / "a" / "1.out", os.O_RDWR)
    try:
        drop_unsynced(root, 0, seed)
        assert not (root / "steps").exists()
        os.write(held, b"still writing")  # a live step keeps its output file
        assert os.fstat(held).st_nlink == 0
    finally:
        os.close(held)


def _journal(path: Path, *targets: Path) -> None:
    """Journal an fsync of each target, as the crash plugin does in the engine."""
    with path.open("a") as journal:
        for target in targets:
            fd = os.open(target, os.O_RDONLY)
            try:
                journal.write(json.dumps(journal_entry(fd)) + "\n")
            finally:
                os.close(fd)


@pytest.mark.parametrize("seed", SEEDS)
def test_what_a_journaled_fsync_made_durable_survives(tmp_path: Path, seed: int) -> None:
    root = make_run(tmp_path / "run")
    journal = tmp_path / "syncs.jsonl"
    lock = root / "steps" / "a" / "1.lock"
    _journal(journal, root, root / "steps", root / "steps" / "a", lock)
    lock_bytes = lock.read_bytes()
    with lock.open("a") as more:
        more.write("unsynced tail\n")
    loss = drop_unsynced(root, 0, seed, journal)
    assert lock.read_bytes().startswith(lock_bytes)
    assert not {"steps", "steps/a", "steps/a/1.lock"} & set(loss.removed)


def test_read_journal_merges_entries_and_keeps_the_largest_size(tmp_path: Path) -> None:
    journal, target = tmp_path / "syncs.jsonl", tmp_path / "file"
    target.write_text("ab")
    _journal(journal, target, tmp_path)
    target.write_text("a")
    _journal(journal, target)
    info = target.stat()
    read = read_journal(journal)
    assert read.durable_size(info) == 2
    assert read.entry_durable(tmp_path.stat(), "file", info)
    assert read_journal(tmp_path / "missing") == read_journal(None)


def test_the_journal_goes_with_power_loss_only() -> None:
    assert crash_env(3, "power_loss", journal="/j")["WF_FAULT_SYNC_JOURNAL"] == "/j"
    with pytest.raises(ValueError, match="power_loss"):
        crash_env(3, "before_sync", journal="/j")
