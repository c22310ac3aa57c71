"""What the end of a run says, and the small formatters every view shares.

The end of every ``wf run`` / ``wf resume`` (whatever the view: live, plain, quiet) says what
happened and what to do next: the counts and the duration; for each step that failed, why
(exit code, signal, timeout with its limit, the spawn error) and the last lines of its stderr;
the run folder; the exact command that continues the run. Text from a step (its stderr) is
shown with its control characters made visible, so it can never move the cursor, change
colours or retitle the terminal.
"""

from __future__ import annotations

import shlex
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: States, in the order the views list them, and how they are spelt in a count.
COUNT_WORDS = (
    ("SUCCEEDED", "succeeded"),
    ("FAILED", "failed"),
    ("RETRYING", "retrying"),
    ("RUNNING", "running"),
    ("READY", "ready"),
    ("PENDING", "pending"),
    ("SKIPPED", "skipped"),
    ("CANCELLED", "cancelled"),
)

#: Colours of states (click / rich colour names).
COLOURS = {
    "RUNNING": "cyan",
    "SUCCEEDED": "green",
    "FAILED": "red",
    "RETRYING": "yellow",
    "SKIPPED": "yellow",
    "CANCELLED": "magenta",
    "INTERRUPTED": "yellow",
    "UNREADABLE": "red",
}

#: Fill and border of a node by state, in the graphs (Mermaid, dot, HTML).
FILLS = {
    "PENDING": ("#f4f4f5", "#a1a1aa"),
    "READY": ("#eef2ff", "#818cf8"),
    "RUNNING": ("#e0f2fe", "#0284c7"),
    "SUCCEEDED": ("#dcfce7", "#16a34a"),
    "FAILED": ("#fee2e2", "#dc2626"),
    "SKIPPED": ("#fef9c3", "#ca8a04"),
    "CANCELLED": ("#f3e8ff", "#9333ea"),
}

# C0 controls (but tab), DEL and C1 controls (0x9b is a one-byte CSI): shown, never obeyed.
_VISIBLE = {code: f"^{chr(code + 64)}" for code in range(32) if code != 9}
_VISIBLE.update({127: "^?", **{code: "?" for code in range(0x80, 0xA0)}})


def visible(text: str) -> str:
    """``text`` with every control character (escape sequences too) made harmless."""
    return text.translate(_VISIBLE)


def tail_lines(text: str | None, count: int = 5, width: int = 200) -> list[str]:
    """The last ``count`` non-blank lines of ``text``, made visible and cut to ``width``."""
    if not text:
        return []
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    lines = [line for line in lines if line.strip()][-count:]
    out = []
    for line in lines:
        shown = visible(line.expandtabs(4))
        out.append(shown if len(shown) <= width else shown[: width - 3] + "...")
    return out


def duration(seconds: float | None) -> str:
    """``0.42s``, ``12.3s``, ``4m05s``, ``2h03m``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def clock_time(seconds: float) -> str:
    """Elapsed time as a clock: ``0:07``, ``12:34``, ``1:02:03``."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    if hours:
        return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{rest // 60}:{rest % 60:02d}"


def local_time(us: int | None, with_date: bool = True) -> str:
    """A log time (µs since the epoch) in local time, labelled with the zone: the log itself
    keeps UTC. ``-`` when unknown."""
    if us is None:
        return "-"
    moment = time.localtime(us / 1e6)
    return time.strftime("%Y-%m-%d %H:%M:%S %Z" if with_date else "%H:%M:%S %Z", moment)


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def counts_text(counts: Mapping[str, int], skip_zero: bool = True) -> str:
    """``45 succeeded, 2 failed, 3 skipped``."""
    parts = [
        f"{counts.get(state, 0)} {word}"
        for state, word in COUNT_WORDS
        if counts.get(state, 0) or not skip_zero
    ]
    return ", ".join(parts) or "nothing"


@dataclass(frozen=True, slots=True)
class FailedStep:
    """A step that failed, with everything needed to say why."""

    step: str
    attempt: int
    attempts_allowed: int
    reason: str | None
    exit_code: int | None
    timeout_sec: float | None
    error: str | None
    stderr_tail: str | None

    @classmethod
    def from_event(cls, event: Mapping[str, Any], definition: Mapping[str, Any]) -> FailedStep:
        """From a FAILED ``step`` record and the step's (normalised) definition."""
        return cls(
            step=str(event["step"]),
            attempt=int(event.get("attempt") or 0),
            attempts_allowed=int(definition.get("retries") or 0) + 1,
            reason=event.get("reason"),
            exit_code=event.get("exit_code"),
            timeout_sec=definition.get("timeout_sec"),
            error=event.get("error"),
            stderr_tail=event.get("stderr_tail"),
        )

    def why(self) -> str:
        """``exit 1``, ``timed out after 5s``, ``killed by SIGKILL``, ``could not start: …``."""
        if self.reason == "timeout":
            limit = f" after {self.timeout_sec:g}s" if self.timeout_sec else ""
            text = f"timed out{limit}"
        elif self.reason == "spawn_error":
            text = f"could not start: {visible(self.error or 'spawn error')}"
        elif self.exit_code is not None and self.exit_code < 0:
            text = f"killed by {signal_name(-self.exit_code)}"
        elif self.exit_code is not None:
            text = f"exit {self.exit_code}"
        else:
            text = self.reason or "failed"
        return f"{text}, attempt {self.attempt} of {self.attempts_allowed}"


def continue_command(run_id: str, state: str, home: str | None) -> str | None:
    """The command that picks the run up: ``wf rerun`` a FAILED or CANCELLED run (a new run
    reusing what succeeded), ``wf resume`` an unfinished one; nothing for a SUCCEEDED run."""
    where = f"--home {shlex.quote(home)} " if home else ""
    if state in ("FAILED", "CANCELLED"):
        return f"wf {where}rerun {run_id}"
    if state == "RUNNING":
        return f"wf {where}resume {run_id}"
    return None


@dataclass(frozen=True, slots=True)
class RunEnd:
    """Everything the end of a run reports."""

    run_id: str
    state: str
    counts: Mapping[str, int]
    total: int
    elapsed: float
    resumed: bool
    failed: Sequence[FailedStep]
    run_dir: str
    home: str | None

    def lines(self, max_failed: int = 10) -> list[tuple[str, str | None]]:
        """The summary as ``(text, colour or None)`` lines, ending with ``run ID STATE``."""
        took = duration(self.elapsed) + (" (this runner)" if self.resumed else "")
        out: list[tuple[str, str | None]] = [
            (f"summary: {counts_text(self.counts)} of {self.total} steps in {took}", None)
        ]
        for failure in self.failed[:max_failed]:
            out.append((f"failed: {failure.step}: {failure.why()}", "red"))
            out.extend((f"    {line}", None) for line in tail_lines(failure.stderr_tail))
        if len(self.failed) > max_failed:
            more = len(self.failed) - max_failed
            out.append((f"failed: {more} more step(s): wf status {self.run_id}", "red"))
        out.append((f"folder: {self.run_dir}", None))
        command = continue_command(self.run_id, self.state, self.home)
        if command is not None:
            out.append((f"next: {command}", "bold"))
        out.append((f"run {self.run_id} {self.state}", COLOURS.get(self.state)))
        return out
