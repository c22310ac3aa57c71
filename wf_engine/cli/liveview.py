"""The live view of ``wf run`` / ``wf resume`` on a colour terminal (``rich``, imported here only).

::

     wf  demo-20261130T101500-1a2b3c · 0:12
     ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╸━━━━━━━━━━━━━━━━━━ 31/50
     28 succeeded · 2 failed · 1 retrying · 4 running · 15 pending
      ▶ RUNNING   fetch-07    attempt 2   0:03   timeout in 0:27
      ↻ RETRY     flaky       attempt 1, exit 3 · retry in 2s · connection refused
      ✘ FAILED    broken      exit 1, attempt 1 of 1 · nope

Finished steps fold into the counts; rows are the steps that run, that wait to be retried and
that failed. When the run ends the view gives way to every step's final state, grouped by state,
and the summary every view ends with (``wf_engine.cli.summary``).

Never slowing the run: the hooks (scheduler thread) only update a few dicts, O(1) per transition
and without a lock — each value is an immutable tuple or the record itself, and the render
thread reads copies (``dict(...)``, ``list(...)``, each one step under the interpreter lock).
``rich``'s own thread renders, four times a second, only as many rows as the screen holds.
"""

from __future__ import annotations

import atexit
import time
from typing import TYPE_CHECKING, Any, TextIO

from wf_engine.cli.progress import Reporter
from wf_engine.cli.summary import (
    COLOURS,
    COUNT_WORDS,
    FailedStep,
    RunEnd,
    clock_time,
    duration,
    tail_lines,
    visible,
)

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live

    from wf_engine.core.fold import RunState

REFRESH_PER_SECOND = 4
_GLYPHS = {
    "SUCCEEDED": "✔",
    "FAILED": "✘",
    "RETRYING": "↻",
    "RUNNING": "▶",
    "READY": "·",
    "PENDING": "·",
    "SKIPPED": "⊘",
    "CANCELLED": "■",
}
#: At most this many step names are listed per state when the run ends.
_NAMES_SHOWN = 200


class LiveReporter(Reporter):
    """Keeps a small model of the run up to date from the hooks; ``rich`` draws it."""

    def __init__(self, stream: TextIO, *, home: str | None = None) -> None:
        super().__init__(stream, colour=True, home=home)
        #: step -> its state (for the final listing).
        self.steps: dict[str, str] = {}
        #: step -> (attempt, monotonic start, timeout_sec or None) of every running step.
        self.running: dict[str, tuple[int, float, float | None]] = {}
        self.timeouts: dict[str, float | None] = {}
        self.console: Console | None = None
        self.live: Live | None = None
        self._last: RenderableType | None = None

    # -- the model (scheduler thread) ------------------------------------------------------

    def attach(self, state: RunState) -> None:
        super().attach(state)
        self.steps = {state.step_id(i): status.state.value for i, status in enumerate(state.steps)}
        for step, entry in _waiting_retries(state).items():
            self.failures.setdefault(step, entry)
        self._start()

    def run_started(self) -> None:
        steps = self.workflow["steps"]
        self.timeouts = {str(step["id"]): step.get("timeout_sec") for step in steps}
        self.steps = dict.fromkeys(self.timeouts, "PENDING")
        self.running = {}
        self._start()

    def transition(self, event: dict[str, Any], step: str, from_state: str, to_state: str) -> None:
        self.steps[step] = to_state
        if to_state == "RUNNING":
            self.running[step] = (event["attempt"], time.monotonic(), self.timeouts.get(step))
        elif from_state == "RUNNING":
            self.running.pop(step, None)

    def run_finished(self, end: RunEnd) -> None:
        self.close()
        console = self._console()
        try:
            console.print(self._final_states())
            lines = end.lines()
            for index, (text, colour) in enumerate(lines):
                last = index == len(lines) - 1
                style = "bold" if colour == "bold" else (colour or "")
                if last:
                    style = f"bold {style}".strip()
                # Soft wrap: a long command wraps on screen, and still copies as one line.
                console.print(
                    text, style=style or None, markup=False, highlight=False, soft_wrap=True
                )
        except (OSError, ValueError):
            self.stream = None

    # -- rich --------------------------------------------------------------------------------

    def _console(self) -> Console:
        if self.console is None:
            from rich.console import Console

            self.console = Console(file=self.stream, force_terminal=True, highlight=False)
        return self.console

    def _start(self) -> None:
        if self.live is not None or self.stream is None:
            return
        from rich.live import Live

        self.live = Live(
            console=self._console(),
            get_renderable=self._render_safely,
            refresh_per_second=REFRESH_PER_SECOND,
            transient=True,
            redirect_stdout=True,
            redirect_stderr=True,
        )
        try:
            self.live.start()
        except (OSError, ValueError):
            self.live, self.stream = None, None
            return
        atexit.register(self.close)

    def close(self) -> None:
        """Stop drawing and give the terminal back (idempotent; also at exit)."""
        live, self.live = self.live, None
        if live is not None:
            try:
                live.stop()
            except (OSError, ValueError):
                self.stream = None
            atexit.unregister(self.close)

    def _render_safely(self) -> RenderableType:
        try:
            self._last = self._render()
        except Exception:  # a view must never die of a race with the scheduler: keep the last
            if self._last is None:
                from rich.text import Text

                self._last = Text("")
        return self._last

    def _render(self) -> RenderableType:
        """One frame, from copies of the model."""
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        now, wall = time.monotonic(), time.time()
        counts = dict(self.counts) if self.seen >= 0 else {}
        running = sorted(self.running.items(), key=lambda item: item[1][1])
        failures = list(self.failures.values())
        final = [event for event in failures if event.get("final")]
        retrying = [event for event in failures if not event.get("final")]
        counts["FAILED"] = len(final)
        counts["RETRYING"] = len(retrying)
        done = sum(counts.get(state, 0) for state in ("SUCCEEDED", "SKIPPED", "CANCELLED"))
        done += len(final)

        head = Text.assemble(
            (" wf ", "bold reverse"),
            "  ",
            (self.run_id, "bold"),
            f" · {clock_time(now - self.started)}",
            (" (resumed)" if self.resumed else "", "dim"),
        )
        console = self._console()
        bar_width = max(10, min(60, console.width - 20))
        bar = Table.grid(padding=(0, 1))
        bar.add_row(
            ProgressBar(total=max(self.total, 1), completed=done, width=bar_width),
            Text(f"{done}/{self.total}", style="bold"),
        )
        tally = Text()
        for state, word in COUNT_WORDS:
            number = counts.get(state, 0)
            if number or state in ("SUCCEEDED", "FAILED"):
                if tally:
                    tally.append(" · ", style="dim")
                tally.append(f"{number} {word}", style=COLOURS.get(state) if number else "dim")

        room = max(1, console.height - 5)
        rows = Table.grid(padding=(0, 2))
        rows.add_column(no_wrap=True)
        rows.add_column(no_wrap=True, max_width=max(12, console.width // 3))
        rows.add_column(no_wrap=True, overflow="ellipsis")
        shown = 0
        for step, (attempt, started, timeout) in running:
            if shown == room:
                break
            detail = f"attempt {attempt}   {duration(now - started)}"
            if timeout:
                detail += f"   timeout in {duration(max(0.0, started + timeout - now))}"
            rows.add_row(_badge("RUNNING"), Text(step), Text(detail))
            shown += 1
        for event in retrying + final[-room:]:
            if shown == room:
                break
            rows.add_row(*self._failure_row(event, wall))
            shown += 1
        hidden = len(running) + len(retrying) + len(final[-room:]) - shown
        parts: list[RenderableType] = [head, bar, tally, rows]
        if hidden > 0:
            parts.append(Text(f"   … and {hidden} more", style="dim"))
        return Group(*parts)

    def _failure_row(self, event: dict[str, Any], wall: float) -> tuple[Any, ...]:
        from rich.text import Text

        from wf_engine.core.clock import from_iso

        definition = {"retries": None, "timeout_sec": self.timeouts.get(event["step"])}
        failure = FailedStep.from_event(event, definition)
        if event.get("final"):
            why = failure.why().rsplit(", attempt ", 1)[0]
            detail = Text(f"{why}, attempt {failure.attempt}", style="red")
            badge = _badge("FAILED")
        else:
            why = failure.why().rsplit(", attempt ", 1)[0]
            detail = Text(f"attempt {failure.attempt}: {why}", style="yellow")
            retry_at = event.get("retry_at")
            if isinstance(retry_at, str):
                left = from_iso(retry_at) / 1e6 - wall
                detail.append(f" · retry in {duration(left)}" if left > 0 else " · retry due")
            badge = _badge("RETRYING")
        lines = tail_lines(event.get("stderr_tail"), count=1, width=160)
        if lines:
            detail.append(f" · {lines[0]}", style="dim")
        return badge, Text(str(event["step"])), detail

    def _final_states(self) -> RenderableType:
        """Every step's final state, grouped by state, names wrapped under each other."""
        from rich.table import Table
        from rich.text import Text

        groups: dict[str, list[str]] = {}
        for step, state in self.steps.items():
            groups.setdefault(state, []).append(step)
        table = Table.grid(padding=(0, 1))
        table.add_column(no_wrap=True)
        table.add_column(justify="right", no_wrap=True)
        table.add_column()
        for state, _word in COUNT_WORDS:
            names = groups.get(state)
            if not names:
                continue
            listed = " ".join(names[:_NAMES_SHOWN])
            if len(names) > _NAMES_SHOWN:
                listed += f" … and {len(names) - _NAMES_SHOWN} more"
            table.add_row(_badge(state), Text(str(len(names))), Text(visible(listed)))
        return table


def _badge(state: str) -> Any:
    from rich.text import Text

    label = "RETRY" if state == "RETRYING" else state
    return Text(f"{_GLYPHS.get(state, ' ')} {label:<9}", style=COLOURS.get(state) or "dim")


def _waiting_retries(state: RunState) -> dict[str, dict[str, Any]]:
    """Steps of a resumed run that wait to be retried, as FAILED records (for their rows)."""
    from wf_engine.core.clock import to_iso
    from wf_engine.core.states import StepState

    waiting = {}
    for index, status in enumerate(state.steps):
        if status.state is StepState.FAILED and not status.final:
            step = state.step_id(index)
            waiting[step] = {
                "step": step,
                "attempt": status.attempt,
                "exit_code": status.exit_code,
                "reason": status.reason,
                "final": False,
                "retry_at": to_iso(status.retry_at) if status.retry_at is not None else None,
            }
    return waiting
