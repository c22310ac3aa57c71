"""``wf logs RUN [STEP] --follow``: print a live run's output as its steps write it.

Two things are followed, by polling (five times a second): the event log, read on from where it
was left (only new, complete lines; a line is only ever read once), to learn which attempts have
started and when the run has ended; and each attempt's output files, also read on from where
they were left. Only whole lines are printed (a partial last line waits for its newline, or for
the end). Following ends once the run has ended (or no runner owns it any more) and everything
written has been printed.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from typing import BinaryIO

from wf_engine.cli.context import note
from wf_engine.log.storefiles import open_regular
from wf_engine.runtime.ownership import is_owned
from wf_engine.runtime.store import RunPaths

POLL_SEC = 0.2


@dataclass
class LogTail:
    """What the growing event log says so far: each step's latest attempt, the end."""

    path: str
    offset: int = 0
    attempts: dict[str, int] = field(default_factory=dict)
    finished: str | None = None

    def poll(self) -> None:
        with open_regular(self.path) as log:
            log.seek(self.offset)
            data = log.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        for line in data[:end].splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # advisory: ``status`` is the one that judges the log
            if not isinstance(record, dict):
                continue
            if record.get("type") == "step" and record.get("to") == "RUNNING":
                self.attempts[str(record.get("step"))] = int(record.get("attempt") or 0)
            elif record.get("type") == "run_finished":
                self.finished = str(record.get("state"))


@dataclass
class Follower:
    """One output file, read on from where it was left; only whole lines come out."""

    path: str
    file: BinaryIO | None = None
    partial: bytes = b""

    def lines(self, final: bool = False) -> list[bytes]:
        if self.file is None:
            try:
                self.file = open_regular(self.path)
            except FileNotFoundError:
                return []  # created at the stream's first byte
        data = self.partial + self.file.read()
        end = len(data) if final else data.rfind(b"\n") + 1
        self.partial = data[end:]
        return data[:end].splitlines(keepends=True)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def follow_logs(
    paths: RunPaths, names: list[str], step: str | None, attempt: int | None, stderr_only: bool
) -> int:
    """Follow the output of ``step`` (else of every step) until the run ends; exit code 0."""
    wanted = [step] if step is not None else names
    width = max(len(name) for name in wanted)
    tail = LogTail(paths.events)
    tail.poll()
    followers: dict[tuple[str, int, str], Follower] = {}
    suffixes = ("err",) if stderr_only else ("out", "err")
    first = {name: attempt or max(1, tail.attempts.get(name, 0)) for name in wanted}
    last_owner_check = 0.0
    alive = True
    try:
        while True:
            ended = tail.finished is not None or not alive
            for name in wanted:
                latest = attempt or tail.attempts.get(name, 0)
                for number in range(first[name], latest + 1):
                    for suffix in suffixes:
                        key = (name, number, suffix)
                        if key not in followers:
                            path = paths.attempt_file(name, number, suffix)
                            followers[key] = Follower(path)
                            if step is not None and attempt is None and number > first[name]:
                                note(f"{name}: attempt {number}")
                        _emit(followers[key], name, suffix, step is None, width, stderr_only, ended)
            if ended:
                if tail.finished is None:
                    note("no runner owns the run any more: it is interrupted ('wf resume' it)")
                return 0
            time.sleep(POLL_SEC)
            tail.poll()
            if time.monotonic() - last_owner_check > 1.0:
                last_owner_check = time.monotonic()
                alive = is_owned(paths.runner_lock) or tail.finished is not None
    finally:
        for follower in followers.values():
            follower.close()


def _emit(
    follower: Follower,
    step: str,
    suffix: str,
    prefixed: bool,
    width: int,
    stderr_only: bool,
    final: bool,
) -> None:
    lines = follower.lines(final)
    if not lines:
        return
    stream = sys.stdout if suffix == "out" or stderr_only else sys.stderr
    prefix = f"{step:<{width}} | ".encode() if prefixed else b""
    out = stream.buffer
    stream.flush()
    for line in lines:
        out.write(prefix + (line if line.endswith(b"\n") else line + b"\n"))
    stream.flush()
