"""What ``wf run`` shows while it runs: the live view in a real terminal, plain lines in a pipe.

The live view is driven through a real pseudo-terminal (``os.openpty``, a window size set with
``TIOCSWINSZ``), and what reaches it is played on a small terminal emulator (``Screen``: the
cursor moves, erases and scrolls of a VT100, colours ignored), so the tests read the screen a
person would see: that it is redrawn in place (the overview stays on one row while its numbers
change, nothing scrolls by), which rows it shows, and what is left once the run ended.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import termios
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_wf import WfHarness, dag, step

ESC = "\x1b"
ROWS, COLS = 40, 110

#: Ten steps: a retry, a final failure (and its dependent skipped), a timeout, parallel work.
WORKFLOW = dag(
    "live",
    [
        step("fetch", "sleep 0.4; echo fetched"),
        step(
            "flaky",
            "test -f flaky.done || { touch flaky.done; echo 'flaky: try again' >&2; exit 1; }",
            ["fetch"],
            retries=1,
            retry_backoff_sec=1.0,
        ),
        step("boom", "echo 'boom: disk full' >&2; exit 3", ["fetch"]),
        step("slow", "echo started; sleep 30", ["fetch"], timeout_sec=1.0, kill_grace_sec=0.2),
        step("after_boom", "true", ["boom"]),
        *[step(f"work{i}", "sleep 0.3", ["fetch"]) for i in range(1, 5)],
        step("join", "true", ["flaky", "work1", "work2"]),
    ],
    max_parallel=4,
)
FINAL = {
    "SUCCEEDED": {"fetch", "flaky", "work1", "work2", "work3", "work4", "join"},
    "FAILED": {"boom", "slow"},
    "SKIPPED": {"after_boom"},
}


# -- a terminal --------------------------------------------------------------------------------


class Screen:
    """Just enough of a VT100 to show what a person sees: text, cursor moves, erases, scrolling."""

    CSI = re.compile(r"\x1b\[([?0-9;]*)([@-~])")
    OSC = re.compile(r"\x1b\][^\x07\x1b]*(\x07|\x1b\\)")

    def __init__(self, rows: int, cols: int) -> None:
        self.rows, self.cols = rows, cols
        self.grid = [[" "] * cols for _ in range(rows)]
        self.history: list[str] = []
        self.row = self.col = 0
        self.pending = ""

    def feed(self, text: str) -> None:
        text = self.pending + text
        self.pending = ""
        i = 0
        while i < len(text):
            char = text[i]
            if char == ESC:
                match = self.CSI.match(text, i) or self.OSC.match(text, i)
                if match is None:
                    if len(text) - i < 32:  # an incomplete sequence: wait for the rest
                        self.pending = text[i:]
                        return
                    i += 1
                    continue
                if match.re is self.CSI:
                    self._csi(match.group(1), match.group(2))
                i = match.end()
                continue
            if char == "\r":
                self.col = 0
            elif char == "\n":
                self._down()
            elif char == "\b":
                self.col = max(0, self.col - 1)
            elif char >= " ":
                if self.col >= self.cols:
                    self.col = 0
                    self._down()
                self.grid[self.row][self.col] = char
                self.col += 1
            i += 1

    def _down(self) -> None:
        if self.row == self.rows - 1:
            self.history.append("".join(self.grid.pop(0)).rstrip())
            self.grid.append([" "] * self.cols)
        else:
            self.row += 1

    def _csi(self, params: str, final: str) -> None:
        if params.startswith("?"):
            return  # modes (cursor shown or hidden, …)
        numbers = [int(p) if p else 0 for p in params.split(";")] if params else []
        n = numbers[0] if numbers else 0
        if final == "A":
            self.row = max(0, self.row - max(n, 1))
        elif final == "B":
            self.row = min(self.rows - 1, self.row + max(n, 1))
        elif final == "C":
            self.col = min(self.cols, self.col + max(n, 1))
        elif final == "D":
            self.col = max(0, self.col - max(n, 1))
        elif final == "G":
            self.col = max(n, 1) - 1
        elif final in "Hf":
            self.row = max(n, 1) - 1
            self.col = (numbers[1] if len(numbers) > 1 and numbers[1] else 1) - 1
        elif final == "K":
            line = self.grid[self.row]
            start, end = {0: (self.col, self.cols), 1: (0, self.col + 1)}.get(n, (0, self.cols))
            line[start:end] = [" "] * (end - start)
        elif final == "J":
            if n == 2:
                self.grid = [[" "] * self.cols for _ in range(self.rows)]
            elif n == 0:
                self.grid[self.row][self.col :] = [" "] * (self.cols - self.col)
                for row in range(self.row + 1, self.rows):
                    self.grid[row] = [" "] * self.cols

    def lines(self) -> list[str]:
        """Everything on screen and scrolled off it, trailing blank lines dropped."""
        out = self.history + ["".join(row).rstrip() for row in self.grid]
        while out and not out[-1]:
            out.pop()
        return out


def run_in_terminal(
    wf: WfHarness,
    args: list[str],
    env: dict[str, str] | None = None,
    on_screen: Callable[[Screen], None] | None = None,
    timeout: float = 90,
) -> tuple[int, str, Screen]:
    """``wf ARGS`` with a pseudo-terminal as stdin, stdout and stderr: its exit code, every byte
    it wrote (decoded) and the screen; ``on_screen`` looks at the screen after every read."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    child_env = {
        k: v for k, v in wf.env().items() if k not in ("CI", "NO_COLOR", "COLUMNS", "LINES")
    }
    child_env.update({"TERM": "xterm-256color", **(env or {})})
    process = subprocess.Popen(
        wf.command(*args),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=child_env,
        cwd=wf.workdir,
        start_new_session=True,
    )
    os.close(slave)
    screen, raw = Screen(ROWS, COLS), bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer is gone
                break
            if not chunk:
                break
            raw += chunk
            screen.feed(chunk.decode("utf-8", "replace"))
            if on_screen is not None:
                on_screen(screen)
        code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait()
    return code, raw.decode("utf-8", "replace"), screen


@pytest.fixture
def workflow(wf: WfHarness) -> str:
    return wf.workflow_file(WORKFLOW)


# -- the live view -------------------------------------------------------------------------------


def test_the_live_view_redraws_in_place_and_ends_with_every_state_and_the_summary(
    wf: WfHarness, workflow: str
) -> None:
    run_id = wf.new_run_id("live")
    progress: dict[int, set[str]] = {}  # screen row -> the "n/10" it showed
    rows_seen: set[str] = set()

    def look(screen: Screen) -> None:
        for index, line in enumerate("".join(row) for row in screen.grid):
            found = re.search(r"━.* (\d+)/10\b", line)
            if found:
                progress.setdefault(index, set()).add(found.group(1))
            for kind in ("RUNNING", "RETRY", "FAILED"):
                if f" {kind} " in line:
                    rows_seen.add(line.strip())

    code, raw, screen = run_in_terminal(wf, ["run", workflow, "--run-id", run_id], on_screen=look)
    lines = screen.lines()
    assert code == 1, "\n".join(lines)

    # Redrawn in place: one row showed the overview with different counts, and nothing scrolled.
    assert any(len(seen) >= 3 for seen in progress.values()), progress
    assert f"{ESC}[2K" in raw and f"{ESC}[1A" in raw  # erase line, cursor up
    assert screen.history == [], screen.history
    # Rows of the steps that ran, waited to be retried, failed: with what a person needs.
    assert any("slow" in row and "timeout in" in row for row in rows_seen), rows_seen
    assert any(
        "flaky" in row and "retry in" in row and "flaky: try again" in row for row in rows_seen
    ), rows_seen
    assert any("boom" in row and "exit 3" in row and "disk full" in row for row in rows_seen)

    # The view gave way to every step's final state and the summary.
    text = "\n".join(lines)
    assert not re.search(r" \d+/10\b", text.split("summary:")[0].split("SUCCEEDED")[0])
    for state, steps in FINAL.items():
        (listed,) = [line for line in lines if re.match(rf"\S+ {state}\s+{len(steps)} ", line)]
        assert set(listed.split()[3:]) == steps, listed
    # The summary, as written (long lines are left to the terminal to wrap: they copy whole).
    summary = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw.split("summary:", 1)[1]).splitlines()
    assert summary[0].startswith(" 7 succeeded, 2 failed, 1 skipped of 10 steps in ")
    assert "failed: boom: exit 3, attempt 1 of 1" in summary
    assert "    boom: disk full" in summary
    assert "failed: slow: timed out after 1s, attempt 1 of 1" in summary
    assert f"folder: {Path(wf.home) / 'runs' / run_id}" in summary
    assert f"next: wf --home {wf.home} rerun {run_id}" in summary
    assert summary[-1] == f"run {run_id} FAILED"
    assert lines[-1] == f"run {run_id} FAILED"


def test_no_color_means_no_escape_sequence_at_all(wf: WfHarness, workflow: str) -> None:
    """``NO_COLOR`` on a terminal: the status line is redrawn with a carriage return only."""
    run_id = wf.new_run_id("mono")
    code, raw, screen = run_in_terminal(
        wf, ["run", workflow, "--run-id", run_id], env={"NO_COLOR": "1"}
    )
    assert code == 1, raw
    assert ESC not in raw
    assert re.search(r"\r\[[#.]{20}\] \d+/10 ", raw)  # the overview, rewritten in place
    lines = screen.lines()
    assert lines[-1] == f"run {run_id} FAILED"
    assert not any(re.match(r"\[[#.]{20}\]", line) for line in lines)  # erased at the end
    assert any(re.match(r"\d\d:\d\d:\d\d\.\d{3} boom: RUNNING -> FAILED \(", ln) for ln in lines)
    assert not any("PENDING -> READY" in line for line in lines)  # a terminal is spared those
    # The readers, on the same terminal: colour without NO_COLOR, not a byte of escape with it.
    for args in (["status", run_id], ["list"], ["graph", run_id]):
        _, coloured, _ = run_in_terminal(wf, args)
        assert f"{ESC}[" in coloured, args
        code, plain, _ = run_in_terminal(wf, [*args], env={"NO_COLOR": "1"})
        assert code == 0 and ESC not in plain, (args, plain)
    _, flagged, _ = run_in_terminal(wf, ["run", workflow, "--run-id", run_id, "--no-color"])
    assert ESC not in flagged and "already finished" in flagged


# -- a pipe --------------------------------------------------------------------------------------


def test_plain_lines_through_a_pipe_one_per_transition_then_the_summary(
    wf: WfHarness, workflow: str
) -> None:
    run_id = wf.new_run_id("plain")
    done = wf.cli("run", workflow, "--run-id", run_id, env={"CI": ""})
    assert done.returncode == 1, done.stderr
    assert ESC not in done.stdout
    lines = done.stdout.splitlines()
    assert lines[0] == f"run {run_id} started"
    transitions = [line for line in lines if " -> " in line]
    events = wf.status(run_id)  # the log's own account
    records = [
        r
        for r in read_events(Path(wf.home) / "runs" / run_id / "events.jsonl")
        if r["type"] == "step"
    ]
    assert len(transitions) == len(records), done.stdout
    for line, record in zip(transitions, records, strict=True):
        assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3}Z .+", line)  # UTC, labelled
        assert line.split(" ", 1)[1].startswith(f"{record['step']}: {record['from']} -> ")
    tail = lines[len(transitions) + 1 :]
    assert tail[0].startswith("summary: 7 succeeded, 2 failed, 1 skipped of 10 steps in ")
    assert "failed: boom: exit 3, attempt 1 of 1" in tail
    assert "    boom: disk full" in tail
    assert f"next: wf --home {wf.home} rerun {run_id}" in tail
    assert tail[-1] == f"run {run_id} FAILED"
    assert events["counts"]["SUCCEEDED"] == 7


def test_quiet_says_nothing_when_the_run_succeeds_and_the_summary_when_it_fails(
    wf: WfHarness,
) -> None:
    ok = wf.workflow_file(dag("ok", [step("a", "true")]))
    bad = wf.workflow_file(dag("bad", [step("a", "echo 'no luck' >&2; exit 5")]))
    quiet_ok = wf.cli("run", ok, "--quiet")
    assert (quiet_ok.returncode, quiet_ok.stdout) == (0, "")
    quiet_bad = wf.cli("run", bad, "-q", "--run-id", "bad-1")
    assert quiet_bad.returncode == 1
    assert quiet_bad.stdout.splitlines() == [
        quiet_bad.stdout.splitlines()[0],
        "failed: a: exit 5, attempt 1 of 1",
        "    no luck",
        f"folder: {Path(wf.home) / 'runs' / 'bad-1'}",
        f"next: wf --home {wf.home} rerun bad-1",
        "run bad-1 FAILED",
    ]


def read_events(path: Path) -> list[dict[str, Any]]:
    import json

    return [json.loads(line) for line in path.read_text().splitlines()]
