"""``wf_log_before_sync`` raises ``$WF_TEST_LOG_RAISE`` (``OSError`` or ``ValueError``) at its
``$WF_TEST_LOG_RAISE_AT``-th call: an ``OSError`` is a failed fsync, anything else a plugin bug.
"""

from __future__ import annotations

import errno
import itertools
import os
from typing import Any

from wf_engine import hookimpl

_calls = itertools.count(1)


@hookimpl
def wf_log_before_sync(events: list[dict[str, Any]]) -> None:
    if next(_calls) != int(os.environ.get("WF_TEST_LOG_RAISE_AT", "2")):
        return
    if os.environ.get("WF_TEST_LOG_RAISE") == "OSError":
        raise OSError(errno.EIO, "injected fsync failure")
    raise ValueError(f"a plugin bug at batch {events[0]['batch']}")
