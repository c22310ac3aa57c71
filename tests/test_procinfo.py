"""Process identity on both paths: ``/proc`` and ``ps`` must find the same marked processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from pytest_wf.harness import process_alive, wait_until
from wf_engine.runtime import oscaps, procinfo

PATHS = ["procfs", "ps"] if sys.platform.startswith("linux") else ["ps"]


@pytest.fixture(params=PATHS)
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(oscaps, "HAS_PROCFS", request.param == "procfs")
    yield str(request.param)


def marked_child(key: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, procinfo.ATTEMPT_KEY_VAR: key}
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], env=env, start_new_session=True
    )


def test_find_marked_finds_the_attempt_and_only_it(path: str, tmp_path: object) -> None:
    key = procinfo.attempt_key(str(tmp_path), "step", 1)
    other = procinfo.attempt_key(str(tmp_path), "step", 11)
    mine, theirs = marked_child(key), marked_child(other)
    try:
        found = wait_until(
            lambda: [p for p in procinfo.find_marked(key) if p.key == key], 10, "marked child"
        )
        assert [(p.pid, p.pgid) for p in found] == [(mine.pid, mine.pid)]
        assert procinfo.same_process(mine.pid, found[0].start_id)
        run_wide = procinfo.find_marked(procinfo.run_mark(str(tmp_path)) + "/")
        assert {p.pid for p in run_wide} == {mine.pid, theirs.pid}
    finally:
        for child in (mine, theirs):
            child.kill()
            child.wait()


def test_a_zombie_or_a_dead_pid_is_gone(path: str) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    wait_until(lambda: not process_alive(child.pid), 10, "child to exit")
    assert procinfo.start_id(child.pid) is None  # a zombie until reaped
    child.wait()
    assert procinfo.start_id(child.pid) is None
    assert not procinfo.same_process(child.pid, "linux:1")


def test_pipe_holders_names_the_processes_holding_a_pipe(path: str) -> None:
    read_end, write_end = os.pipe()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], stdout=write_end
    )
    os.close(write_end)
    inode = os.fstat(read_end).st_ino
    try:
        if path == "ps":
            assert procinfo.pipe_holders({inode}) is None  # only /proc can tell
            return
        wait_until(
            lambda: holder.pid in (procinfo.pipe_holders({inode}) or {}).get(inode, []),
            10,
            "holder",
        )
        assert os.getpid() in (procinfo.pipe_holders({inode}) or {})[inode]  # the read end
    finally:
        holder.kill()
        holder.wait()
        os.close(read_end)


@pytest.mark.skipif(not oscaps.HAS_PROCFS, reason="the incremental scan reads /proc")
def test_the_mark_scanner_reads_only_processes_new_since_its_last_scan(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the pid layout (a wrapped pid counter below a long-lived high pid included),
    a scan right after another reads the environment of new processes only, and finds them."""
    read: list[int] = []
    real_read = procinfo._read_marked

    def counting(pid: int, needle: bytes) -> object:  # whatever the real reader answers
        read.append(pid)
        return real_read(pid, needle)

    monkeypatch.setattr(procinfo, "_read_marked", counting)
    key = procinfo.attempt_key(str(tmp_path), "step", 1)
    scanner = procinfo.MarkScanner(procinfo.run_mark(str(tmp_path)) + "/")
    # However slowly the child starts on a loaded machine, the next scan is an incremental one.
    scanner.FULL_SCAN_AFTER_SEC = 600.0
    scanner.MAX_NEW_PIDS = 100_000
    before = {int(name) for name in os.listdir("/proc") if name.isdigit()}
    assert scanner.scan() == []  # a full scan: it reads every process
    assert before - set(read) <= {os.getpid()} | (before - _living())
    child = marked_child(key)
    try:
        read.clear()
        found = wait_until(scanner.scan, 10, "the marked child")
        assert [p.pid for p in found] == [child.pid]
        assert child.pid in read
        assert not set(read) & before  # nothing the first scan read is read again
    finally:
        child.kill()
        child.wait()


@pytest.mark.skipif(not oscaps.HAS_PROCFS, reason="the incremental scan reads /proc")
def test_the_mark_scanner_reads_again_a_process_caught_without_an_environment(
    tmp_path: object,
) -> None:
    """A process being exec'd shows an empty environment for a moment, even when the program
    it becomes carries a mark. Judged then as unmarked, it was never read again. Here the
    moment is stretched: the process waits with no environment, then execs into a marked one
    (the same pid)."""
    key = procinfo.attempt_key(str(tmp_path), "step", 1)
    scanner = procinfo.MarkScanner(procinfo.run_mark(str(tmp_path)) + "/")
    scanner.FULL_SCAN_AFTER_SEC = 600.0
    scanner.MAX_NEW_PIDS = 100_000
    scanner.UNSURE_FOR_SEC = 600.0  # the window is stretched on purpose, however slowly
    assert scanner.scan() == []
    sleep = shutil.which("sleep")
    assert sleep is not None
    # One execve from no environment to the marked one: nothing in between shows another.
    become_marked = (
        "import os, sys\n"
        "sys.stdin.readline()\n"
        f"os.execve({sleep!r}, [{sleep!r}, '60'], {{{procinfo.ATTEMPT_KEY_VAR!r}: {key!r}}})\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", become_marked],
        env={},
        stdin=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_until(lambda: _environment(child.pid) == b"", 10, "the child without environment")
        assert scanner.scan() == []  # read now: an empty environment, judged later
        assert child.stdin is not None
        child.stdin.write(b"go\n")
        child.stdin.close()
        found = wait_until(scanner.scan, 10, "the child, marked since")
        assert [(p.pid, p.key) for p in found] == [(child.pid, key)]
    finally:
        child.kill()
        child.wait()
        scanner.close()


@pytest.mark.skipif(not oscaps.HAS_PROCFS, reason="reads /proc")
def test_find_marked_does_not_list_a_process_without_an_environment(tmp_path: object) -> None:
    key = procinfo.attempt_key(str(tmp_path), "step", 1)
    bare = subprocess.Popen(["/bin/sh", "-c", "read go"], env={}, stdin=subprocess.PIPE)
    mine = marked_child(key)
    try:
        wait_until(lambda: _environment(bare.pid) == b"", 10, "the child without environment")
        found = wait_until(lambda: procinfo.find_marked(key), 10, "the marked child")
        assert [p.pid for p in found] == [mine.pid]
    finally:
        for child in (bare, mine):
            child.kill()
            child.wait()


def _environment(pid: int) -> bytes | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as file:
            return file.read()
    except OSError:
        return None


def _living() -> set[int]:
    return {int(name) for name in os.listdir("/proc") if name.isdigit()}


@pytest.mark.skipif(not oscaps.HAS_PROCFS, reason="the incremental scan reads /proc")
def test_the_mark_scanner_reports_processes_not_their_threads_and_forgets_the_dead(
    tmp_path: object,
) -> None:
    key = procinfo.attempt_key(str(tmp_path), "step", 1)
    scanner = procinfo.MarkScanner(procinfo.run_mark(str(tmp_path)) + "/")
    assert scanner.scan() == []
    threaded = (
        "import threading, time\n"
        "for _ in range(4): threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
        "print('ready', flush=True); time.sleep(60)\n"
    )
    env = {**os.environ, procinfo.ATTEMPT_KEY_VAR: key}
    child = subprocess.Popen(
        [sys.executable, "-c", threaded], env=env, stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        assert len(os.listdir(f"/proc/{child.pid}/task")) == 5
        found = scanner.scan()  # the threads' ids were allocated since the last scan too
        assert [(p.pid, p.key) for p in found] == [(child.pid, key)]
        assert [p.pid for p in scanner.scan()] == [child.pid]  # read again: still marked
    finally:
        child.kill()
        child.wait()
    assert scanner.scan() == []
