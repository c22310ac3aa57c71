"""Wall-clock time as whole microseconds, and its ISO-8601 spelling in the log.

Times that decisions depend on (a retry's due time) are compared as integers, and their text form
converts back to the very same integer. That is what lets ``replay --verify`` re-run ``decide``
at the recorded time and reach exactly the decision the live engine reached.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
US_PER_SEC = 1_000_000


def now_us() -> int:
    """The current UTC time in microseconds since the epoch."""
    return time.time_ns() // 1000


def to_iso(us: int) -> str:
    """``2026-11-20T22:39:19.123456Z``: fixed width, so text order is time order."""
    return (_EPOCH + timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_iso(text: str) -> int:
    """Inverse of :func:`to_iso`; raises ``ValueError`` on anything else."""
    parsed = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return (parsed - _EPOCH) // _MICROSECOND


def seconds_to_us(seconds: float) -> int:
    return round(seconds * US_PER_SEC)
