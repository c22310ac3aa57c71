"""The CLI's progress output, as an internal plugin (``wf.progress``) on the hooks any plugin gets.

Which one ``wf run`` / ``wf resume`` registers is chosen in ``wf_engine.cli.display``:

* ``ProgressReporter``: one plain line per step transition (stable, greppable, good for CI
  logs), the time of day in UTC as the log has it, labelled ``Z``; on a terminal without colour
  (``NO_COLOR``) the same lines in local time, without the PENDING -> READY noise, under one
  status line redrawn with a carriage return (no escape sequence at all);
* ``QuietReporter`` (``--quiet``): nothing while the run goes; the summary if it did not succeed;
* ``wf_engine.cli.liveview.LiveReporter``: the live view of a colour terminal.

All of them count steps per state and keep each failed step's last record, in O(1) per
transition, and end the run with the same summary (``wf_engine.cli.summary``), whose last line is
``run ID STATE``.

Hooks run in the scheduler thread, so they must never slow the run: lines are queued, and
written in one ``write`` per commit batch (when the batch's last record is announced) or by a
small timer thread (for a batch that ends with a record that is not a step transition), never
once per line.

Progress is a courtesy: when its stream fails (``wf run | head -2`` broke the pipe, stdout was
closed) the reporter goes quiet for the rest of the run instead of raising into the plugin guard
at every transition. The run, and the exit code reporting its state, go on as if nobody left.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from typing import TYPE_CHECKING, Any, TextIO

import click

from wf_engine.cli.summary import (
    COLOURS,
    FailedStep,
    RunEnd,
    clock_time,
    counts_text,
)
from wf_engine.plugins.manager import hookimpl

if TYPE_CHECKING:
    from wf_engine.core.fold import RunState

_STATES = ("PENDING", "READY", "RUNNING", "SUCCEEDED", "FAILED", "SKIPPED", "CANCELLED")
#: How often queued lines are written at the latest (and a status line redrawn).
TICK_SEC = 0.2


def describe_transition(event: dict[str, Any]) -> str:
    """``download: RUNNING -> FAILED (attempt 1, exit 3, retry in 2s)``."""
    details = [f"attempt {event['attempt']}"] if event.get("attempt") else []
    if event.get("exit_code") is not None:
        details.append(f"exit {event['exit_code']}")
    if event.get("reason") not in (None, "exit"):
        details.append(str(event["reason"]))
    if "retry_delay_sec" in event:
        details.append(f"retry in {event['retry_delay_sec']:g}s")
    if event.get("final"):
        details.append("final")
    suffix = f" ({', '.join(details)})" if details else ""
    return f"{event['step']}: {event['from']} -> {event['to']}{suffix}"


class LocalClock:
    """``HH:MM:SS.mmm`` in local time from a log ``ts`` (UTC), cheaply: the records of a batch
    share their ``ts``, and the zone's offset is looked up once an hour of log time."""

    def __init__(self) -> None:
        self._ts = ""
        self._text = ""
        self._hour = ""
        self._offset = 0

    def __call__(self, ts: str) -> str:
        if ts == self._ts:
            return self._text
        if ts[:13] != self._hour:
            from wf_engine.core.clock import from_iso

            self._hour = ts[:13]
            self._offset = time.localtime(from_iso(ts) // 1_000_000).tm_gmtoff
        seconds = (
            int(ts[11:13]) * 3600 + int(ts[14:16]) * 60 + int(ts[17:19]) + self._offset
        ) % 86400
        self._ts = ts
        self._text = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}{ts[19:23]}"
        return self._text


class Reporter:
    """What every progress output shares: failures, counts, the summary at the end.

    ``attach`` (called by ``wf run`` / ``wf resume`` before the runner executes) hands over the
    runner's state: the counts at the end are the state's, and a view that shows counts while
    the run goes (``counting``) starts from them. Without it, they are read from the log once,
    at the end.
    """

    #: Keep counts per state up to date at every transition (views that show them live).
    counting = True

    def __init__(self, stream: TextIO, *, colour: bool = False, home: str | None = None) -> None:
        #: None once a write failed: nobody reads it any more.
        self.stream: TextIO | None = stream
        self.colour = colour
        #: ``--home`` as given on the command line: repeated in the command that continues.
        self.home = home
        self.run_id = ""
        self.run_dir = ""
        self.workflow: dict[str, Any] = {}
        self.resumed = False
        self.started = time.monotonic()
        self.total = 0
        self.counts: dict[str, int] = dict.fromkeys(_STATES, 0)
        #: Records up to this seq are already in ``counts`` (``attach``); -1: not counting yet.
        self.seen = -1
        #: Steps now FAILED, with their FAILED record (at the end: the final failures).
        self.failures: dict[str, dict[str, Any]] = {}
        self.state: RunState | None = None

    def attach(self, state: RunState) -> None:
        """Start counting from the runner's ``state`` (before it executes)."""
        from wf_engine.runtime.runview import state_counts

        self.state = state
        self.counts = state_counts(state)
        self.total = len(state.steps)
        self.seen = state.last_seq

    # -- hooks -----------------------------------------------------------------------------

    @hookimpl
    def wf_run_started(
        self, run_id: str, run_dir: str, workflow: dict[str, Any], resumed: bool
    ) -> None:
        self.run_id, self.run_dir, self.workflow, self.resumed = run_id, run_dir, workflow, resumed
        self.started = time.monotonic()
        self.failures = {}
        self.state = None
        self.total = len(workflow["steps"])
        self.counts = dict.fromkeys(_STATES, 0)
        if resumed:
            self.seen = -1  # until ``attach``, or the log at the end
        else:
            self.counts["PENDING"] = self.total
            self.seen = 0
        self.run_started()

    @hookimpl
    def wf_step_transition(
        self, event: dict[str, Any], step: str, from_state: str, to_state: str
    ) -> None:
        if self.counting and 0 <= self.seen < event["seq"]:
            counts = self.counts
            counts[from_state] -= 1
            counts[to_state] += 1
        if to_state == "FAILED":
            self.failures[step] = event
        elif from_state == "FAILED":
            self.failures.pop(step, None)
        self.transition(event, step, from_state, to_state)

    @hookimpl
    def wf_run_finished(self, run_id: str, state: str) -> None:
        self.run_finished(self.run_end(state))

    # -- for subclasses --------------------------------------------------------------------

    def run_started(self) -> None:
        """After the common bookkeeping of ``wf_run_started``."""

    def transition(self, event: dict[str, Any], step: str, from_state: str, to_state: str) -> None:
        """After the common bookkeeping of ``wf_step_transition``."""

    def run_finished(self, end: RunEnd) -> None:
        """The run ended: say so."""
        self.write_lines(end.lines())

    # -- the end ---------------------------------------------------------------------------

    def run_end(self, state: str) -> RunEnd:
        """What the end of the run reports (the log is read only for a resumed run that was
        never ``attach``\\ ed)."""
        from wf_engine.runtime.runview import state_counts

        failed: list[FailedStep] = []
        definitions = {str(step["id"]): step for step in self.workflow.get("steps", ())}
        for event in self.failures.values():
            failed.append(FailedStep.from_event(event, definitions.get(event["step"], {})))
        if self.state is not None:
            counts = state_counts(self.state)
            if counts["FAILED"] > len(failed):
                self._failed_before(self.state, failed, definitions)
        elif self.counting and self.seen >= 0:
            counts = self.counts
        else:
            counts = self._read_back(failed, definitions)
        return RunEnd(
            run_id=self.run_id,
            state=state,
            counts=counts,
            total=self.total,
            elapsed=time.monotonic() - self.started,
            resumed=self.resumed,
            failed=failed,
            run_dir=self.run_dir,
            home=self.home,
        )

    def _failed_before(
        self, state: RunState, failed: list[FailedStep], definitions: dict[str, dict[str, Any]]
    ) -> None:
        """Steps that had failed before this runner took over: told from the state, their
        stderr from the attempt's file."""
        from wf_engine.runtime.processes import read_tail
        from wf_engine.runtime.store import RunPaths

        known = {failure.step for failure in failed}
        paths = RunPaths(self.run_dir)
        for index, status in enumerate(state.steps):
            step = state.step_id(index)
            if status.state.value != "FAILED" or step in known:
                continue
            try:
                tail = read_tail(paths.attempt_file(step, status.attempt, "err"), 2048)
            except OSError:
                tail = ""
            event = {
                "step": step,
                "attempt": status.attempt,
                "reason": status.reason,
                "exit_code": status.exit_code,
                "stderr_tail": tail or None,
            }
            failed.append(FailedStep.from_event(event, definitions.get(step, {})))

    def _read_back(
        self, failed: list[FailedStep], definitions: dict[str, dict[str, Any]]
    ) -> dict[str, int]:
        """Counts (and failures before this runner) from the log: a resumed run not attached."""
        from wf_engine.runtime.runview import read_run, state_counts, step_summary
        from wf_engine.runtime.store import RunPaths

        try:
            view = read_run(RunPaths(self.run_dir))
        except Exception:  # a summary is a courtesy: never fail the run for it
            return self.counts
        known = {failure.step for failure in failed}
        for step, entry in step_summary(view.state, view.timings).items():
            if entry["state"] == "FAILED" and step not in known:
                event = {"step": step, **entry, "attempt": entry["attempts"]}
                failed.append(FailedStep.from_event(event, definitions.get(step, {})))
        return state_counts(view.state)

    # -- output ----------------------------------------------------------------------------

    def styled(self, text: str, colour: str | None, bold: bool = False) -> str:
        if not self.colour or (colour is None and not bold):
            return text
        if colour == "bold":
            colour, bold = None, True
        return click.style(text, fg=colour, bold=bold)

    def write_lines(self, lines: list[tuple[str, str | None]]) -> None:
        last = len(lines) - 1
        text = "".join(
            self.styled(line, colour, bold=index == last) + "\n"
            for index, (line, colour) in enumerate(lines)
        )
        self.write(text)

    def write(self, text: str) -> None:
        if self.stream is None or not text:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a broken pipe, a closed or full stream: stop reporting
            self.stream = None


class QuietReporter(Reporter):
    """``--quiet``: nothing while the run goes; the summary at the end unless it succeeded."""

    counting = False

    def run_finished(self, end: RunEnd) -> None:
        if end.state != "SUCCEEDED":
            super().run_finished(end)


class ProgressReporter(Reporter):
    """One line per transition, written once per commit batch (or per tick at the latest).

    With ``status_line`` (a terminal without colour) the PENDING -> READY lines are left out and
    a one-line overview stays under the lines, redrawn in place with a carriage return.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        colour: bool = False,
        home: str | None = None,
        status_line: bool = False,
        every_transition: bool = True,
    ) -> None:
        super().__init__(stream, colour=colour, home=home)
        self.status_line = status_line
        self.counting = status_line
        self.every_transition = every_transition
        #: Times of day: local on a terminal; elsewhere UTC as the log has them, labelled ``Z``
        #: (CI logs are read from anywhere, and the line costs no conversion).
        self.local_time = status_line
        self.clock = LocalClock()
        #: Lines waiting to be written (``deque.append`` is atomic: no lock per line).
        self.queue: collections.deque[str] = collections.deque()
        self.lock = threading.Lock()
        self.ticker: threading.Thread | None = None
        self.stop = threading.Event()
        #: Width of the status line on screen (0: none drawn).
        self.drawn = 0

    def run_started(self) -> None:
        verb = "resumed" if self.resumed else "started"
        self.queue.append(f"run {self.run_id} {verb}\n")
        self.flush()
        if self.ticker is None or not self.ticker.is_alive():
            self.stop.clear()
            self.ticker = threading.Thread(target=self._tick, name="wf-progress", daemon=True)
            self.ticker.start()

    @hookimpl
    def wf_step_transition(
        self, event: dict[str, Any], step: str, from_state: str, to_state: str
    ) -> None:
        # Runs at every transition of the run: a few dict and string operations, and one
        # write per commit batch (when its last record is announced).
        if to_state == "FAILED":
            self.failures[step] = event
        elif from_state == "FAILED":
            self.failures.pop(step, None)
        if self.counting and 0 <= self.seen < event["seq"]:
            counts = self.counts
            counts[from_state] -= 1
            counts[to_state] += 1
        if self.every_transition or to_state != "READY" or event.get("reason") == "interrupted":
            ts = event["ts"]
            stamp = self.clock(ts) if self.local_time else f"{ts[11:23]}Z"
            if self.colour and to_state in COLOURS:
                text = click.style(f"{stamp} {describe_transition(event)}", fg=COLOURS[to_state])
                self.queue.append(text + "\n")
            else:
                self.queue.append(f"{stamp} {describe_transition(event)}\n")
        if event["seq"] == event["batch"] + event["batch_size"] - 1:
            self.flush()

    def run_finished(self, end: RunEnd) -> None:
        self.stop.set()
        if self.ticker is not None and self.ticker is not threading.current_thread():
            self.ticker.join(timeout=2)
        self.flush(redraw=False)
        super().run_finished(end)

    def flush(self, redraw: bool = True) -> None:
        """Write every queued line (and redraw the status line under them) in one write."""
        with self.lock:
            queue = self.queue
            parts = [queue.popleft() for _ in range(len(queue))]
            if not parts and not (self.status_line and redraw):
                return
            if self.status_line:
                parts.insert(0, "\r" + " " * self.drawn + "\r" if self.drawn else "")
                self.drawn = 0
                if redraw:
                    line = self._status()
                    parts.append(line)
                    self.drawn = len(line)
            self.write("".join(parts))

    def _tick(self) -> None:
        while not self.stop.wait(TICK_SEC):
            self.flush()

    def _status(self) -> str:
        """``[#######.......] 31/50  28 succeeded, 2 failed, 4 running  0:12`` (fits the width)."""
        counts = dict(self.counts) if self.seen >= 0 else {}
        done = sum(counts.get(state, 0) for state in ("SUCCEEDED", "SKIPPED", "CANCELLED"))
        failed = len(self.failures)
        final = sum(1 for event in list(self.failures.values()) if event.get("final"))
        done += final
        counts["RETRYING"] = failed - final
        counts["FAILED"] = final
        width = 20
        filled = width * done // self.total if self.total else 0
        bar = "#" * filled + "." * (width - filled)
        shown = {k: v for k, v in counts.items() if k not in ("PENDING", "READY")}
        elapsed = clock_time(time.monotonic() - self.started)
        line = f"[{bar}] {done}/{self.total}  {counts_text(shown)}  {elapsed}"
        columns = _columns(self.stream)
        return line[: max(columns - 1, 10)]


def _columns(stream: TextIO | None) -> int:
    try:
        return os.get_terminal_size(stream.fileno() if stream is not None else 1).columns
    except (OSError, ValueError, AttributeError):
        return 80
