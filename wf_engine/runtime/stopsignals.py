"""SIGINT and SIGTERM as stop requests, from before a run exists until its owner is done.

A command that creates or takes over a run installs ``StopSignals`` before it writes anything.
From then on a signal never interrupts the process between two writes (which could leave a
RUNNING run with no owner): it is counted, and whoever owns the run asks ``requested`` or
``listen``\\ s for it — the runner turns it into a cancel (CANCELLED, exit 3), a take-over that is
still waiting for leftovers gives up without writing anything. A second signal asks for force
(no grace period).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

#: Called with ``force`` (True from the second signal on).
Listener = Callable[[bool], None]
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """Counts SIGINT/SIGTERM while installed; forwards each to the current listener."""

    def __init__(self) -> None:
        self.received = 0
        self._listener: Listener | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> StopSignals:
        """Take over SIGINT/SIGTERM (only the main thread can; elsewhere this does nothing)."""
        if threading.current_thread() is threading.main_thread() and not self._previous:
            self._previous = {sig: signal.signal(sig, self._handle) for sig in _SIGNALS}
        return self

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}

    @property
    def requested(self) -> bool:
        return self.received > 0

    def listen(self, listener: Listener | None) -> None:
        """Forward signals to ``listener``; one that already arrived is forwarded at once."""
        self._listener = listener
        if listener is not None and self.received:
            listener(self.received > 1)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received += 1
        if self._listener is not None:
            self._listener(self.received > 1)
