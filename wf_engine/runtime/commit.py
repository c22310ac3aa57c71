"""The commit path: the one way events reach a run's log, and the one place hooks learn of them.

Creating a run, resuming one and every turn of the scheduler do the same three things, in this
order, through ``Commit``:

1. ``record(event)`` folds the event into the state at once, because the next decision must see
   it (``decide`` is asked again until it has nothing more to say), and queues it;
2. ``commit(now)`` appends the queued events as one batch (one write, one fsync) and only then
   sets ``state.last_seq``: a batch that failed is never claimed;
3. then the plugins hear of each record, in ``seq`` order, as a plain dict (their documented
   contract): the only place typed events become dicts for anyone but the log.

Keeping the three in one place is what makes "nothing is announced before it is durable" and
"the state is the fold of the log" hold by construction rather than by each caller's care.
"""

from __future__ import annotations

from wf_engine.core import clock
from wf_engine.core.events import Event, RunCreated, encode
from wf_engine.core.fold import RunState, apply_event, start
from wf_engine.core.model import Workflow
from wf_engine.core.records import Record
from wf_engine.log.eventlog import EventLog
from wf_engine.plugins.manager import Plugins


class Commit:
    """Folds, batches and announces the events of one ownership of a run."""

    def __init__(self, log: EventLog, state: RunState, plugins: Plugins) -> None:
        self.log = log
        self.state = state
        self._plugins = plugins
        self._queued: list[Event] = []
        # Plugins may see each batch before its write and before its fsync (fault injection).
        run_id = state.run_id
        if plugins.has_impls("wf_log_before_write"):
            log.before_write = lambda records: plugins.log_before_write(run_id, list(records))
        if plugins.has_impls("wf_log_before_sync"):
            log.before_sync = lambda records: plugins.log_before_sync(run_id, list(records))

    @classmethod
    def create(
        cls, log: EventLog, created: RunCreated, plugins: Plugins, workflow: Workflow | None = None
    ) -> Commit:
        """A new run: its state starts from ``created``, which opens the first batch.

        ``workflow`` is the validated definition ``created`` holds, when the caller has it: a
        definition of 10,000 steps then is not validated a second time (``fold.start``).
        """
        commit = cls(log, start(created, workflow=workflow), plugins)
        commit._queued.append(created)
        return commit

    @property
    def pending(self) -> bool:
        """Events were recorded (and folded) that are not durable yet."""
        return bool(self._queued)

    def record(self, event: Event) -> None:
        """Fold ``event`` into the state now and queue it for the next batch."""
        apply_event(self.state, event)
        self._queued.append(event)

    def commit(self, now_us: int) -> list[Event]:
        """Make the queued events durable as one batch, then announce them; returns them.

        On a write failure the error propagates and nothing is announced or claimed: the caller
        must stop (the state already holds events the log may not).
        """
        events, records = self._append(now_us)
        self._announce(records)
        return events

    def commit_opening(self, now_us: int, run_dir: str, resumed: bool) -> list[Event]:
        """``commit`` for the first batch of an ownership (``run_created`` or a take-over).

        ``wf_run_started`` fires once that batch is durable and before its event hooks.
        """
        events, records = self._append(now_us)
        self._plugins.run_started(
            self.state.run_id, run_dir, self.state.workflow.to_json(), resumed
        )
        self._announce(records)
        return events

    def close(self) -> None:
        self.log.close()

    def _append(self, now_us: int) -> tuple[list[Event], list[Record]]:
        events, self._queued = self._queued, []
        records = self.log.append([encode(event) for event in events], clock.to_iso(now_us))
        self.state.last_seq = records[-1]["seq"]
        return events, records

    def _announce(self, records: list[Record]) -> None:
        for record in records:
            self._plugins.event_appended(self.state.run_id, record)
