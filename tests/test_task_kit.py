"""Tests for the task kit (``python -m fault_injection.task``), run as real subprocesses."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from pytest_wf import TaskKit, process_alive

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from fault_injection.task import (  # noqa: E402
    count_starts,
    overlap_lock_path,
    read_overlaps,
    read_records,
)

TIMEOUT = 30.0  # upper bound for anything we wait for; never a fixed sleep


def kit_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "fault_injection.task", *args]


def kit_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("WF_ATTEMPT", None)
    env.pop("WF_STEP_ID", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def run_kit(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        kit_command(*args),
        cwd=cwd,
        env=kit_env() if env is None else env,
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )


def wait_until(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def read_line(fd: int, timeout: float = TIMEOUT) -> bytes:
    """Read one line from a raw pipe fd, failing after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no complete line within {timeout}s, got {data!r}")
        readable, _, _ = select.select([fd], [], [], left)
        if readable:
            chunk = os.read(fd, 1)
            if not chunk:
                raise AssertionError(f"EOF before a complete line, got {data!r}")
            data += chunk
    return data


def at_eof(fd: int) -> bool:
    """True if reading *fd* would return EOF right now (every writer is gone)."""
    readable, _, _ = select.select([fd], [], [], 0)
    return bool(readable) and os.read(fd, 65536) == b""


class Procs:
    """Starts kit processes, each leading its own process group; kills the groups on exit."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.started: list[subprocess.Popen[bytes]] = []

    def start(
        self, *args: str, env: dict[str, str] | None = None, **popen: Any
    ) -> subprocess.Popen[bytes]:
        popen.setdefault("stdin", subprocess.DEVNULL)
        popen.setdefault("stdout", subprocess.DEVNULL)
        popen.setdefault("stderr", subprocess.DEVNULL)
        proc: subprocess.Popen[bytes] = subprocess.Popen(
            kit_command(*args),
            cwd=self.cwd,
            env=kit_env() if env is None else env,
            start_new_session=True,  # pgid == pid, so killpg cannot hit the test runner
            bufsize=0,
            **popen,
        )
        self.started.append(proc)
        return proc

    def cleanup(self) -> None:
        for proc in self.started:
            # The group can outlive its leader (an orphaned grandchild), so always killpg.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            try:
                proc.wait(timeout=TIMEOUT)
            finally:
                for pipe in (proc.stdout, proc.stderr):
                    if pipe is not None:
                        pipe.close()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    p = Procs(tmp_path)
    try:
        yield p
    finally:
        p.cleanup()


def events(path: Path) -> list[object]:
    return [r["event"] for r in read_records(path)]


# --------------------------------------------------------------------------- records


def test_ok_records_start_and_end(tmp_path: Path, procs: Procs) -> None:
    record = tmp_path / "rec.jsonl"
    env = kit_env(WF_ATTEMPT="3", WF_STEP_ID="build")
    proc = procs.start("--record", str(record), "ok", env=env)
    assert proc.wait(timeout=TIMEOUT) == 0

    start, end = read_records(record)
    assert start["event"] == "start"
    assert start["label"] == "build"
    assert start["pid"] == proc.pid
    assert start["pgid"] == proc.pid  # started with start_new_session
    assert start["attempt"] == 3
    assert isinstance(start["time"], float)
    assert end["event"] == "end"
    assert end["label"] == "build"
    assert end["pid"] == proc.pid
    assert end["exit_code"] == 0
    assert isinstance(end["time"], float)
    assert end["time"] >= start["time"]
    # One JSON object per line, newline-terminated.
    lines = record.read_bytes().split(b"\n")
    assert lines[-1] == b""
    assert [json.loads(line)["event"] for line in lines[:-1]] == ["start", "end"]


def test_label_defaults_and_null_attempt(tmp_path: Path) -> None:
    record = tmp_path / "rec.jsonl"
    assert run_kit(tmp_path, "--record", str(record), "ok").returncode == 0
    assert run_kit(tmp_path, "--record", str(record), "--label", "mine", "ok").returncode == 0
    env = kit_env(WF_STEP_ID="step-a")
    assert run_kit(tmp_path, "--record", str(record), "ok", env=env).returncode == 0

    starts = [r for r in read_records(record) if r["event"] == "start"]
    assert [r["label"] for r in starts] == ["task", "mine", "step-a"]
    assert [r["attempt"] for r in starts] == [None, None, None]


def test_no_record_file_without_option(tmp_path: Path) -> None:
    assert run_kit(tmp_path, "ok").returncode == 0
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- fail


@pytest.mark.parametrize(("extra", "code"), [((), 1), (("--code", "7"), 7), (("--code", "0"), 0)])
def test_fail(tmp_path: Path, extra: tuple[str, ...], code: int) -> None:
    record = tmp_path / "rec.jsonl"
    result = run_kit(tmp_path, "--record", str(record), "fail", *extra)
    assert result.returncode == code
    assert b"exit code" in result.stderr
    assert [(r["event"], r.get("exit_code")) for r in read_records(record)] == [
        ("start", None),
        ("end", code),
    ]


def test_fail_first_counts_executions_across_runs(tmp_path: Path) -> None:
    record = tmp_path / "rec.jsonl"
    args = ("--record", str(record), "--label", "flaky", "fail-first", "2", "--code", "3")
    codes = [run_kit(tmp_path, *args).returncode for _ in range(3)]
    assert codes == [3, 3, 0]
    assert count_starts(record, "flaky") == 3
    ends = [r["exit_code"] for r in read_records(record) if r["event"] == "end"]
    assert ends == [3, 3, 0]

    # Another label has its own count; a later execution of "flaky" keeps succeeding.
    other = ("--record", str(record), "--label", "other", "fail-first", "1")
    assert run_kit(tmp_path, *other).returncode == 1
    assert run_kit(tmp_path, *args).returncode == 0
    assert count_starts(record, "other") == 1
    assert count_starts(record, "flaky") == 4
    assert count_starts(record) == 5


def test_fail_first_zero_never_fails(tmp_path: Path) -> None:
    record = tmp_path / "rec.jsonl"
    assert run_kit(tmp_path, "--record", str(record), "fail-first", "0").returncode == 0


def test_fail_first_requires_record(tmp_path: Path) -> None:
    result = run_kit(tmp_path, "fail-first", "1")
    assert result.returncode == 2
    assert b"--record" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["nope"],
        ["fail", "--code", "x"],
        ["fail", "--code", "256"],
        ["fail-first"],
        ["fail-first", "-1"],
        ["sleep"],
        ["sleep", "-1"],
        ["sleep", "nan"],
        ["hang-with-grandchild"],
        ["ignore-term", "soon"],
        ["print-lot", "-5"],
        ["print-lot", "10", "--stream", "sideways"],
        ["exit-signal", "NOPE"],
        ["exit-signal", "CHLD"],
        ["exit-signal", "STOP"],
        ["exit-signal", "0"],
    ],
)
def test_bad_arguments_exit_2_without_records(tmp_path: Path, args: list[str]) -> None:
    record = tmp_path / "rec.jsonl"
    result = run_kit(tmp_path, "--record", str(record), *args)
    assert result.returncode == 2, result.stderr
    assert b"usage:" in result.stderr
    assert not record.exists()


# --------------------------------------------------------------------------- sleep / hang


def test_sleep(tmp_path: Path) -> None:
    record = tmp_path / "rec.jsonl"
    assert run_kit(tmp_path, "--record", str(record), "sleep", "0.2").returncode == 0
    start, end = read_records(record)
    assert end["exit_code"] == 0
    assert isinstance(start["time"], float)
    assert isinstance(end["time"], float)
    assert end["time"] - start["time"] >= 0.2


def test_hang_runs_until_killed(tmp_path: Path, procs: Procs) -> None:
    record = tmp_path / "rec.jsonl"
    proc = procs.start("--record", str(record), "hang")
    wait_until(lambda: count_starts(record) == 1, "the start record")
    assert proc.poll() is None
    proc.terminate()
    assert proc.wait(timeout=TIMEOUT) == -signal.SIGTERM
    assert events(record) == ["start"]  # killed: no end record


# --------------------------------------------------------------------------- ignore-term


def test_ignore_term_survives_sigterm_until_sigkill(tmp_path: Path, procs: Procs) -> None:
    record = tmp_path / "rec.jsonl"
    proc = procs.start("--record", str(record), "ignore-term", "600", stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert read_line(proc.stdout.fileno()) == b"ready\n"
    assert events(record) == ["start", "ready"]

    proc.send_signal(signal.SIGTERM)
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=0.5)  # must still be running: SIGTERM is ignored
    proc.kill()
    assert proc.wait(timeout=TIMEOUT) == -signal.SIGKILL
    assert events(record) == ["start", "ready"]


def test_ignore_term_finishes_normally_after_sigterm(tmp_path: Path, procs: Procs) -> None:
    record = tmp_path / "rec.jsonl"
    proc = procs.start("--record", str(record), "ignore-term", "1", stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert read_line(proc.stdout.fileno()) == b"ready\n"
    for _ in range(3):
        proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=TIMEOUT) == 0
    assert [(r["event"], r.get("exit_code")) for r in read_records(record)] == [
        ("start", None),
        ("ready", None),
        ("end", 0),
    ]


# --------------------------------------------------------------------------- print-lot


@pytest.mark.parametrize("nbytes", [0, 1, 79, 80, 81, 1_000_003])
@pytest.mark.parametrize("stream", ["out", "err", "both"])
def test_print_lot_exact_size(tmp_path: Path, stream: str, nbytes: int) -> None:
    record = tmp_path / "rec.jsonl"
    result = run_kit(
        tmp_path, "--record", str(record), "print-lot", str(nbytes), "--stream", stream
    )
    assert result.returncode == 0
    expected_out = nbytes if stream in ("out", "both") else 0
    expected_err = nbytes if stream in ("err", "both") else 0
    assert len(result.stdout) == expected_out
    assert len(result.stderr) == expected_err
    for data in (result.stdout, result.stderr):
        if data:
            assert data.endswith(b"\n")
            lines = data.split(b"\n")[:-1]
            assert all(len(line) < 80 for line in lines)
            data.decode("ascii")  # text
    assert events(record) == ["start", "end"]


def test_print_lot_default_stream_is_stdout(tmp_path: Path) -> None:
    result = run_kit(tmp_path, "print-lot", "1000")
    assert (len(result.stdout), len(result.stderr), result.returncode) == (1000, 0, 0)


@pytest.mark.skipif(sys.platform not in ("linux", "darwin"), reason="ru_maxrss units")
def test_print_lot_does_not_hold_output_in_memory(procs: Procs) -> None:
    def peak_rss(nbytes: int) -> int:
        proc = procs.start("print-lot", str(nbytes))
        _, status, usage = os.wait4(proc.pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        return usage.ru_maxrss * (1024 if sys.platform == "linux" else 1)

    # A forked child starts with its parent's footprint: compare with a tiny run, not a constant.
    baseline = peak_rss(1000)
    nbytes = 64 * 1024 * 1024
    peak = peak_rss(nbytes)
    assert peak - baseline < 16 * 1024 * 1024, f"peak RSS {peak} (baseline {baseline}) for {nbytes}"


# --------------------------------------------------------------------------- exit-signal


@pytest.mark.parametrize(
    ("name", "sig"),
    [
        ("TERM", signal.SIGTERM),
        ("KILL", signal.SIGKILL),
        ("SEGV", signal.SIGSEGV),
        ("sigint", signal.SIGINT),
        ("PIPE", signal.SIGPIPE),
        (str(signal.SIGUSR1.value), signal.SIGUSR1),
    ],
)
def test_exit_signal(tmp_path: Path, name: str, sig: signal.Signals) -> None:
    record = tmp_path / "rec.jsonl"
    result = run_kit(tmp_path, "--record", str(record), "exit-signal", name)
    assert result.returncode == -sig.value
    assert [(r["event"], r.get("exit_code")) for r in read_records(record)] == [
        ("start", None),
        ("end", -sig.value),
    ]
    no_core = ["rec.jsonl", "rec.jsonl.task.running"]  # the record and the overlap lock
    assert sorted(p.name for p in tmp_path.iterdir()) == no_core


# --------------------------------------------------------------------------- grandchild


def start_with_grandchild(
    procs: Procs, tmp_path: Path, **popen: Any
) -> tuple[subprocess.Popen[bytes], int, Path]:
    record = tmp_path / "rec.jsonl"
    pidfile = tmp_path / "grandchild.pid"
    proc = procs.start(
        "--record", str(record), "hang-with-grandchild", "--pidfile", str(pidfile), **popen
    )
    wait_until(pidfile.exists, "the pidfile")
    text = pidfile.read_text()  # written atomically: never partial
    assert text.endswith("\n")
    return proc, int(text), record


def test_hang_with_grandchild_same_group_killpg_kills_both(tmp_path: Path, procs: Procs) -> None:
    proc, grandchild, record = start_with_grandchild(procs, tmp_path)
    assert grandchild != proc.pid
    assert process_alive(grandchild)
    assert os.getpgid(grandchild) == os.getpgid(proc.pid) == proc.pid
    assert proc.poll() is None

    start, gc = read_records(record)
    assert start["event"] == "start"
    assert start["pid"] == proc.pid
    assert gc["event"] == "grandchild"
    assert gc["pid"] == grandchild
    assert gc["parent_pid"] == proc.pid
    # Only the pidfile and the record: the temp file was renamed into place.
    names = ["grandchild.pid", "rec.jsonl", "rec.jsonl.task.running"]  # + the overlap lock
    assert sorted(p.name for p in tmp_path.iterdir()) == names

    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=TIMEOUT) == -signal.SIGKILL
    wait_until(lambda: not process_alive(grandchild), "the grandchild to die")
    assert events(record) == ["start", "grandchild"]


def test_grandchild_keeps_inherited_fds_but_not_output(tmp_path: Path, procs: Procs) -> None:
    lock_r, lock_w = os.pipe()  # stands in for the engine's lock fd
    try:
        proc, grandchild, _ = start_with_grandchild(
            procs,
            tmp_path,
            pass_fds=(lock_w,),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        os.close(lock_w)
        lock_w = -1
        assert proc.stdout is not None
        assert proc.stderr is not None
        assert not at_eof(lock_r)

        # Kill only the task: its output pipes close, the grandchild still holds the lock fd.
        proc.kill()
        assert proc.wait(timeout=TIMEOUT) == -signal.SIGKILL
        out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
        wait_until(lambda: at_eof(out_fd), "EOF on the task's stdout")
        wait_until(lambda: at_eof(err_fd), "EOF on the task's stderr")
        assert process_alive(grandchild)
        assert not at_eof(lock_r)

        # The group outlives its leader: killpg reaches the orphaned grandchild.
        os.killpg(proc.pid, signal.SIGKILL)
        wait_until(lambda: at_eof(lock_r), "EOF on the lock pipe")
        wait_until(lambda: not process_alive(grandchild), "the grandchild to die")
    finally:
        os.close(lock_r)
        if lock_w != -1:
            os.close(lock_w)


# --------------------------------------------------------------------------- concurrency


def test_concurrent_appends_stay_intact(tmp_path: Path, procs: Procs) -> None:
    record = tmp_path / "rec.jsonl"
    # Long labels make each line several KiB, so interleaved writes would be visible.
    labels = [f"{i}-" + "x" * 8000 for i in range(8)]
    started = [procs.start("--record", str(record), "--label", label, "ok") for label in labels]
    assert [p.wait(timeout=TIMEOUT) for p in started] == [0] * 8

    raw = record.read_bytes()
    assert raw.endswith(b"\n")
    lines = raw.split(b"\n")[:-1]
    assert len(lines) == 16
    parsed = [json.loads(line) for line in lines]
    starts = [r for r in parsed if r["event"] == "start"]
    assert len(starts) == 8
    assert sorted(r["label"] for r in starts) == sorted(labels)
    assert sorted(r["pid"] for r in starts) == sorted(p.pid for p in started)
    for label in labels:
        assert count_starts(record, label) == 1
    assert count_starts(record) == 8


# --------------------------------------------------------------------------- helpers


def _write(path: Path, chunks: Sequence[bytes]) -> None:
    path.write_bytes(b"".join(chunks))


def test_read_records_ignores_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    good = [b'{"event":"start","label":"a"}\n', b'{"event":"start","label":"b"}\n']
    _write(path, [*good, b'{"event":"sta'])
    assert [r["label"] for r in read_records(path)] == ["a", "b"]
    assert count_starts(path) == 2
    assert count_starts(path, "a") == 1
    assert count_starts(path, "c") == 0
    # Even a complete-looking object without its newline is a torn append.
    _write(path, [*good, b'{"event":"start","label":"c"}'])
    assert count_starts(path) == 2
    _write(path, good)
    assert count_starts(str(path)) == 2


def test_read_records_missing_file_and_corruption(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    assert read_records(path) == []
    assert count_starts(path) == 0
    _write(path, [b'{"event":"st\n', b'{"event":"start"}\n'])
    with pytest.raises(ValueError, match="corrupt"):
        read_records(path)
    _write(path, [b"[1, 2]\n"])
    with pytest.raises(ValueError, match="not an object"):
        read_records(path)


# --------------------------------------------------------------------------- overlap detector


def test_two_executions_of_one_label_at_once_record_an_overlap(
    tmp_path: Path, procs: Procs
) -> None:
    record = tmp_path / "rec.jsonl"
    first = procs.start("--record", str(record), "--label", "build", "hang")
    wait_until(lambda: count_starts(record, "build") == 1, "the first start")
    other = run_kit(tmp_path, "--record", str(record), "--label", "other", "ok")
    second = run_kit(
        tmp_path, "--record", str(record), "--label", "build", "ok", env=kit_env(WF_ATTEMPT="2")
    )
    assert other.returncode == 0 and second.returncode == 0  # the behaviour runs anyway
    overlaps = read_overlaps(record)
    assert [(r["label"], r["attempt"]) for r in overlaps] == [("build", 2)]
    assert overlaps[0]["pid"] != first.pid
    assert Path(overlap_lock_path(record, "build")).exists()


def test_executions_one_after_the_other_do_not_overlap(tmp_path: Path) -> None:
    record = tmp_path / "rec.jsonl"
    for _ in range(2):
        assert run_kit(tmp_path, "--record", str(record), "--label", "a/b", "ok").returncode == 0
    assert read_overlaps(record) == []
    assert overlap_lock_path(record, "a/b") == f"{record}.a%2Fb.running"
    long_name = os.path.basename(overlap_lock_path(record, "x" * 8000))
    assert len(long_name) < 255 and long_name != os.path.basename(overlap_lock_path(record, "x"))


def test_a_grandchild_keeps_the_overlap_lock(tmp_path: Path, procs: Procs) -> None:
    record, pidfile = tmp_path / "rec.jsonl", tmp_path / "gc.pid"
    task = procs.start("--record", str(record), "hang-with-grandchild", "--pidfile", str(pidfile))
    wait_until(pidfile.exists, "the grandchild pid file")
    task.kill()
    task.wait(timeout=TIMEOUT)
    assert run_kit(tmp_path, "--record", str(record), "ok").returncode == 0
    assert [r["label"] for r in read_overlaps(record)] == ["task"]


def test_task_kit_assert_no_overlap_names_the_step(tmp_path: Path, procs: Procs) -> None:
    kit = TaskKit(tmp_path / "rec.jsonl")
    procs.start(*kit("hang", label="deploy")[3:])
    wait_until(lambda: kit.starts("deploy") == 1, "the first start")
    kit.assert_no_overlap()
    assert subprocess.run(kit("ok", label="deploy"), env=kit_env(), check=False).returncode == 0
    assert [r["label"] for r in kit.overlaps("deploy")] == ["deploy"] and kit.overlaps("x") == []
    with pytest.raises(AssertionError, match="two executions of step 'deploy' overlapped"):
        kit.assert_no_overlap()


# --------------------------------------------------------------------------- daemons, closed fds


def _open_fds(pid: int) -> set[int]:
    return {int(name) for name in os.listdir(f"/proc/{pid}/fd")}


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@linux_only
@pytest.mark.parametrize("close_fds", [False, True])
def test_daemonize_leaves_a_daemon_in_its_own_session(tmp_path: Path, close_fds: bool) -> None:
    record, pidfile = tmp_path / "rec.jsonl", tmp_path / "daemon.pid"
    args = ["--record", str(record), "daemonize", "30", "--pidfile", str(pidfile)]
    command = kit_command(*args, *(["--close-fds"] if close_fds else []))
    # No pipes: a daemon that keeps its fds would hold them open (as daemons do).
    done = subprocess.run(command, env=kit_env(), stdout=subprocess.DEVNULL, timeout=TIMEOUT)
    assert done.returncode == 0  # the task exits at once; the daemon lives on
    daemon = int(pidfile.read_text())
    try:
        assert process_alive(daemon)
        records = {str(r["event"]): r for r in read_records(record)}
        assert sorted(records) == ["daemon", "end", "start"]
        start, note = records["start"], records["daemon"]
        assert note["pid"] == daemon and note["sid"] == os.getsid(daemon) != start["pgid"]
        assert os.getpgid(daemon) != start["pgid"]
        assert (_open_fds(daemon) == set()) is close_fds
    finally:
        os.kill(daemon, signal.SIGKILL)
    wait_until(lambda: not process_alive(daemon), "the daemon to die")


@linux_only
def test_close_fds_hang_closes_what_it_inherited(tmp_path: Path, procs: Procs) -> None:
    record = tmp_path / "rec.jsonl"
    inherited = os.open(tmp_path / "held", os.O_RDWR | os.O_CREAT)
    try:
        os.set_inheritable(inherited, True)
        proc = procs.start("--record", str(record), "close-fds-hang", pass_fds=(inherited,))
        wait_until(lambda: "ready" in events(record), "the ready record")
    finally:
        os.close(inherited)
    lock = Path(overlap_lock_path(record, "task")).resolve()
    fds = {fd: os.readlink(f"/proc/{proc.pid}/fd/{fd}") for fd in _open_fds(proc.pid)}
    assert list(fds.values()) == [str(lock)]  # stdio and the inherited fd are gone
    assert proc.poll() is None
