"""``wf logs`` (every step, one step, ``--stderr``, ``--follow``) and ``wf status --watch``."""

from __future__ import annotations

import os
import select
import subprocess
import time
from pathlib import Path

from pytest_wf import WfHarness, dag, step, wait_until


def read_until(process: subprocess.Popen[bytes], needle: bytes, timeout: float = 60) -> bytes:
    """What ``process`` printed on stdout until ``needle`` showed up."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {needle!r} in {seen!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            assert chunk, f"EOF before {needle!r}: {seen!r}"
            seen += chunk
    return seen


def test_follow_and_watch_a_live_run_to_its_end(wf: WfHarness) -> None:
    workflow = dag(
        "talk",
        [
            step(
                "talk", "echo one; while [ ! -f go ]; do sleep 0.05; done; echo two; echo err >&2"
            ),
            step("last", "echo done", ["talk"]),
        ],
    )
    running = wf.start(workflow)
    run_id = running.run_id
    wait_until(
        lambda: (Path(wf.home) / "runs" / run_id / "steps" / "talk" / "1.out").exists(),
        60,
        "talk to print its first line",
    )
    follow = subprocess.Popen(
        wf.command("logs", run_id[:-1], "--follow"),  # a prefix names the run too
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=wf.env(),
    )
    watch = subprocess.Popen(
        wf.command("status", "--watch", "@last"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=wf.env(),
    )
    try:
        early = read_until(follow, b"talk | one\n")
        first_page = read_until(watch, b"RUNNING")
        (wf.workdir / "go").touch()
        rest, errors = follow.communicate(timeout=60)
        pages, _ = watch.communicate(timeout=60)
    finally:
        for process in (follow, watch):
            if process.poll() is None:
                process.kill()
    assert running.wait().returncode == 0
    assert follow.returncode == 0, errors
    assert (early + rest).decode().splitlines() == ["talk | one", "talk | two", "last | done"]
    assert errors.decode().splitlines() == ["talk | err"]
    assert watch.returncode == 0
    text = (first_page + pages).decode()
    assert text.count("run ") >= 2  # a new page when the run changed
    assert text.rsplit("run ", 1)[1].startswith(f"{run_id}  SUCCEEDED")


def test_logs_of_every_step_one_step_and_stderr_only(wf: WfHarness) -> None:
    workflow = dag(
        "logs",
        [
            step("a", "echo a-out; echo a-err >&2"),
            step("bb", "printf 'no newline'", ["a"]),
            step("c", "true", ["a"]),
        ],
    )
    result = wf.run(workflow, run_id="logs-1")
    assert result.state == "SUCCEEDED"
    every = wf.cli("logs", "logs-1")
    assert every.stdout.splitlines() == ["a  | a-out", "bb | no newline"]
    assert every.stderr.splitlines() == ["a  | a-err"]
    one = wf.cli("logs", "logs", "a")  # one step: its output as written
    assert (one.stdout, one.stderr) == ("a-out\n", "a-err\n")
    assert wf.cli("logs", "@last", "--stderr").stdout == "a  | a-err\n"
    assert wf.cli("logs", "@last", "a", "--stderr").stdout == "a-err\n"
    missing = wf.cli("logs", "logs-1", "cc")
    assert missing.returncode == 2
    assert "has no step 'cc'; did you mean 'c'" in missing.stderr
