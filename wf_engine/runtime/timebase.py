"""Where a runner's time comes from, and the queue its loop blocks on until something happens.

The scheduler reads two clocks and waits in one place::

    now_us()    wall time in microseconds: a record's ``ts``, ``decide``'s ``now``, retry due times
    monotonic() seconds for its own timers: timeouts, SIGKILL escalations, the ``spawned`` delay
    inbox()     the queue executors report on; ``get(timeout=...)`` is the loop's only wait

``REAL_TIME`` is the engine's: ``clock.now_us``, ``time.monotonic`` and a ``queue.SimpleQueue``,
exactly what the runner used before this seam existed (the bound methods cost what the module
functions did). The simulation tier (``pytest_wf.simulation``) passes a virtual clock whose
inbox's ``get`` advances virtual time to the next simulated event instead of blocking, so a whole
run executes in-process, deterministically, with no thread and no sleep.
"""

from __future__ import annotations

import queue
import time
from typing import Any, Protocol, TypeVar

from wf_engine.core import clock

T = TypeVar("T")


class Inbox(Protocol[T]):
    """The part of ``queue.SimpleQueue`` the runner uses; ``get`` raises ``queue.Empty``."""

    def put(self, item: T) -> None: ...

    def get(self, block: bool = True, timeout: float | None = None) -> T: ...

    def get_nowait(self) -> T: ...


class Timebase(Protocol):
    """A runner's clocks and the queue it waits on."""

    def now_us(self) -> int: ...

    def monotonic(self) -> float: ...

    def inbox(self) -> Inbox[Any]: ...


class RealTime:
    """The wall clock, the monotonic clock and a real queue: a live run's time."""

    now_us = staticmethod(clock.now_us)
    monotonic = staticmethod(time.monotonic)

    def inbox(self) -> Inbox[Any]:
        return queue.SimpleQueue()


REAL_TIME = RealTime()
