"""Hook specifications: every way a plugin can observe or extend wf (pluggy project ``wf_engine``).

Ordering and threading guarantees, for every hook below unless it says otherwise:

* Hooks run in the scheduler thread — the one thread that owns the run — one call at a time.
* Event hooks (``wf_event_appended``, ``wf_step_transition``, ``wf_run_finished``) fire only
  after the record is durable (written and fsynced), in ``seq`` order. A hook never sees a
  transition that a crash could still take back.
* ``event`` is the record exactly as written to ``events.jsonl`` (a dict; do not mutate it).
* A hook implementation that raises (anything, ``SystemExit`` and ``KeyboardInterrupt``
  included) is reported on stderr and skipped for that call; it cannot stop the run, change a
  step's outcome or the exit code, or touch the log. Each implementation is called on its own,
  so one failing plugin never hides an event from another. A plugin that keeps failing in a hook
  is reported once; the repeats are counted in one line at the end of the command. The only
  exception that propagates is an ``OSError`` from the two log hooks (a failing disk).
* Values handed back to the engine (``wf_step_command``'s argv, ``wf_step_env``'s variables)
  must be usable by ``execve``; a bad one fails that attempt (``spawn_error``), not the run.
* Hooks run inline: a slow hook slows the run. Do network I/O with a timeout, or hand it to a
  thread of your own.

A plugin may implement any subset of a hook's arguments, as pluggy allows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # an annotation only: the CLI layer alone imports click
    import click

PROJECT_NAME = "wf_engine"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


@hookspec
def wf_run_started(run_id: str, run_dir: str, workflow: dict[str, Any], resumed: bool) -> None:
    """A runner took ownership of a run (new, or resumed), once ``runner_started`` is durable.

    ``workflow`` is the normalised definition from ``run_created``.
    """


@hookspec
def wf_event_appended(run_id: str, event: dict[str, Any]) -> None:
    """A record was made durable: fires for every record, in ``seq`` order, once per runner."""


@hookspec
def wf_step_transition(
    run_id: str, event: dict[str, Any], step: str, from_state: str, to_state: str
) -> None:
    """A step changed state (after its ``step`` record is durable and after ``wf_event_appended``).

    ``to_state == "FAILED"`` with ``event.get("final")`` means the step failed for good.
    """


@hookspec
def wf_run_finished(run_id: str, event: dict[str, Any], state: str) -> None:
    """The run reached SUCCEEDED, FAILED or CANCELLED (its ``run_finished`` record is durable)."""


@hookspec
def wf_step_env(run_id: str, step: str, attempt: int, env: dict[str, str]) -> None:
    """Adjust the environment of an attempt before it starts, by changing ``env`` in place.

    Called for every attempt after the durable RUNNING record, right before the spawn. Names and
    values set must be ``str`` without NUL (names non-empty, without ``=``), else the attempt
    fails with reason ``spawn_error``.
    """


@hookspec(firstresult=True)
def wf_step_command(run_id: str, step: str, attempt: int, argv: list[str]) -> list[str] | None:
    """Return a replacement ``argv`` for an attempt (e.g. to wrap it), or None to leave it.

    ``firstresult``: the first plugin that returns something other than None decides. It must be a
    non-empty list of ``str`` without NUL, else the attempt fails with reason ``spawn_error``.
    """


@hookspec
def wf_add_cli_commands(cli: click.Group) -> None:
    """Add subcommands to the ``wf`` command line, with ``cli.add_command``."""


@hookspec
def wf_log_before_write(run_id: str, events: list[dict[str, Any]]) -> None:
    """A commit batch is about to be written. NOT durable yet: for fault injection and tracing.

    Unlike in the other hooks, an ``OSError`` raised here propagates (as a failed write would);
    any other exception is reported and ignored.
    """


@hookspec
def wf_log_before_sync(run_id: str, events: list[dict[str, Any]]) -> None:
    """A commit batch was written but not yet fsynced. NOT durable yet: for fault injection.

    Unlike in the other hooks, an ``OSError`` raised here propagates (as a failed fsync would);
    any other exception is reported and ignored.
    """
