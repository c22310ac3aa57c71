"""A power cut, modelled on a whole run folder after the engine was SIGKILLed.

A SIGKILL loses nothing that was written: the page cache still holds it. A power cut loses
everything that was not fsynced. ``drop_unsynced(run_dir, synced_log_size, seed)`` turns the
first into the second, after the fact, so that ``wf resume`` meets what a machine coming back
from a power cut would show. Steps the dead engine started may still run (in their own
sessions, as after a real cut of the engine's machine while a step ran elsewhere or survived in
a container): they keep every file they hold open, even one whose name the model removes.

What the model keeps (what the engine fsyncs, see ``docs/log-format.md``):

* ``events.jsonl`` up to ``synced_log_size`` (the end of the last fsynced commit batch);
* the names ``events.jsonl``, ``runner.lock``, ``cancel.request`` and ``events.jsonl.torn-*`` in
  the run folder (made durable by the folder fsyncs of log creation, ``wf cancel`` and the tail
  cut), and the whole contents of ``cancel.request`` and ``events.jsonl.torn-*`` (fsynced before
  they are renamed into place or before the log is cut);
* the run folder itself;
* with a sync journal (``fault_injection.crash`` writes one when ``WF_FAULT_SYNC_JOURNAL`` is
  set): every name a journaled folder fsync saw, and every file's contents up to the size a
  journaled fsync of it saw. So whatever the engine makes durable survives, whatever it is.

What it drops, at random by ``seed`` (same seed, same run folder: same result):

* in ``events.jsonl``, a random subset of the pages after ``synced_log_size``
  (:func:`fault_injection.logfaults.lose_unsynced`);
* any other name no journaled fsync made durable (everything under ``steps/``, and ``steps``
  itself, on an engine that never fsyncs them): removed with probability 3/4, a folder with
  everything in it (a name created a moment before the cut rarely reached the disk);
* the contents of every file still there beyond its durable size (the attempt lock files with
  the pid the runner wrote, ``.out`` / ``.err`` output, ``runner.lock``): truncated with
  probability 1/2, to the durable size (0 without a journal) or to a random length above it.

Known limits: only fsyncs made by processes running the crash plugin with a journal are known,
so a power cut applied after an earlier process (a previous resume) made something durable is
harsher than reality; data is lost by truncation, never by holes in the middle of a file.

Usable without pytest, from a shell::

    WF_PLUGINS=fault_injection.crash WF_FAULT_CRASH_AT=9 WF_FAULT_CRASH_POINT=power_loss \
        WF_FAULT_SYNC_JOURNAL=/tmp/syncs.jsonl wf run flow.json --run-id r1   # dies at record 9
    python -c 'from fault_injection.powerloss import drop_unsynced, unsynced_batch_start as u
    print(drop_unsynced(".wf/runs/r1", u(".wf/runs/r1/events.jsonl"), 9, "/tmp/syncs.jsonl"))'
    wf resume r1
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass, field

from fault_injection.logfaults import batch_boundaries, lose_unsynced

__all__ = ["PowerLoss", "SyncJournal", "drop_unsynced", "read_journal", "unsynced_batch_start"]

LOG = "events.jsonl"
#: A name the engine makes durable (the folder fsync of log creation), not its contents.
RUNNER_LOCK = "runner.lock"
#: Files the engine fsyncs whole before they get their (durable) name.
CANCEL_REQUEST = "cancel.request"
TORN_PREFIX = "events.jsonl.torn-"
Inode = tuple[int, int]


@dataclass(frozen=True)
class SyncJournal:
    """What journaled fsyncs made durable: file sizes, and folder entries (name and inode)."""

    sizes: dict[Inode, int] = field(default_factory=dict)
    entries: dict[Inode, set[tuple[str, int]]] = field(default_factory=dict)

    def durable_size(self, info: os.stat_result) -> int:
        return self.sizes.get((info.st_dev, info.st_ino), 0)

    def entry_durable(self, folder: os.stat_result, name: str, info: os.stat_result) -> bool:
        return (name, info.st_ino) in self.entries.get((folder.st_dev, folder.st_ino), set())


@dataclass(frozen=True)
class PowerLoss:
    """What ``drop_unsynced`` did, paths relative to the run folder (for failure messages)."""

    removed: list[str] = field(default_factory=list)
    truncated: dict[str, int] = field(default_factory=dict)


def unsynced_batch_start(events_path: str) -> int:
    """The log's fsynced size after a kill at ``before_sync``: where its last batch begins.

    The engine writes a batch whole, then fsyncs it; a kill between the two leaves that batch,
    complete, as the last one in the file, and every batch before it fsynced.
    """
    ends = batch_boundaries(events_path)
    return ends[-2] if len(ends) >= 2 else 0


def read_journal(path: str | os.PathLike[str] | None) -> SyncJournal:
    """The journal ``fault_injection.crash`` wrote (none, or a missing file: nothing synced)."""
    journal = SyncJournal()
    if path is None or not os.path.exists(path):
        return journal
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            entry = json.loads(line)
            inode = (entry["dev"], entry["ino"])
            if "entries" in entry:
                names = {(name, ino) for name, ino in entry["entries"].items()}
                journal.entries.setdefault(inode, set()).update(names)
            else:
                journal.sizes[inode] = max(journal.sizes.get(inode, 0), entry["size"])
    return journal


def drop_unsynced(
    run_dir: str | os.PathLike[str],
    synced_log_size: int,
    seed: int = 0,
    journal: str | os.PathLike[str] | None = None,
) -> PowerLoss:
    """Make a run folder look as after a power cut (see the module docstring for the model)."""
    root = os.fspath(run_dir)
    rng = random.Random(seed)
    synced = read_journal(journal)
    loss = PowerLoss()
    lose_unsynced(os.path.join(root, LOG), synced_log_size, seed=seed)
    folder = os.stat(root)
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if name in (LOG, CANCEL_REQUEST) or name.startswith(TORN_PREFIX):
            continue
        if name == RUNNER_LOCK:
            _truncate(path, root, rng, synced, loss)
        else:
            _drop_entry(path, folder, root, rng, synced, loss)
    return loss


def _drop_entry(
    path: str,
    folder: os.stat_result,
    root: str,
    rng: random.Random,
    synced: SyncJournal,
    loss: PowerLoss,
) -> None:
    """Remove a name no fsync made durable (by seed), else lose its unsynced contents."""
    info = os.lstat(path)
    if not synced.entry_durable(folder, os.path.basename(path), info) and rng.random() < 0.75:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
        loss.removed.append(os.path.relpath(path, root))
    elif os.path.isdir(path) and not os.path.islink(path):
        for name in sorted(os.listdir(path)):
            _drop_entry(os.path.join(path, name), info, root, rng, synced, loss)
    else:
        _truncate(path, root, rng, synced, loss)


def _truncate(
    path: str, root: str, rng: random.Random, synced: SyncJournal, loss: PowerLoss
) -> None:
    """Cut a file's unsynced end (by seed): to its durable size or a random length above it."""
    info = os.stat(path)
    durable = min(synced.durable_size(info), info.st_size)
    if info.st_size == durable or rng.random() < 0.5:
        return
    size = durable if rng.random() < 0.5 else rng.randrange(durable, info.st_size)
    os.truncate(path, size)
    loss.truncated[os.path.relpath(path, root)] = size
