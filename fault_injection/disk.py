"""Failing disks: make the engine's Nth write or fsync raise EIO or ENOSPC.

A wf plugin, activated by environment variables in the engine process::

    WF_PLUGINS=fault_injection.disk
    WF_FAULT_DISK=sync:EIO:3       # operation : errno name : call number (1-based)

On import it wraps one of the seams of ``wf_engine.log.durable``: ``write`` (``write_all``, every
durable write: log batches, the cancel request), ``sync`` (every fsync) or ``advisory``
(``write_advisory``: the pid an attempt's lock file names, written right after the spawn). A
failing write first writes half of its bytes, as a disk that fills up mid-write would. Every
call after the Nth succeeds again, so the same disk "recovers" for ``wf resume`` in a new
process (which starts without the variable).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

from wf_engine.log import durable

ENV = "WF_FAULT_DISK"
OPERATIONS = ("write", "sync", "advisory")


def disk_fault_env(operation: str, error: str, call: int) -> dict[str, str]:
    """Environment that makes a ``wf`` process fail its ``call``-th ``operation``."""
    if operation not in OPERATIONS or not hasattr(errno, error) or call < 1:
        raise ValueError(f"bad disk fault {operation}:{error}:{call}")
    return {"WF_PLUGINS": __name__, ENV: f"{operation}:{error}:{call}"}


def _parse(spec: str) -> tuple[str, int, int] | None:
    try:
        operation, name, call = spec.split(":")
        return operation, getattr(errno, name), int(call)
    except (ValueError, AttributeError):
        return None


def _install(spec: str) -> None:
    parsed = _parse(spec)
    if parsed is None:
        return
    operation, code, failing_call = parsed
    calls = 0
    seam = {"write": "write_all", "sync": "sync", "advisory": "write_advisory"}.get(operation)
    if seam is None:
        return
    real: Callable[..., None] = getattr(durable, seam)

    def failing(fd: int, *data: bytes) -> None:
        """The ``failing_call``-th call fails (a write after writing half its bytes)."""
        nonlocal calls
        calls += 1
        if calls == failing_call:
            if data:
                real(fd, data[0][: len(data[0]) // 2])
            raise OSError(code, os.strerror(code))
        real(fd, *data)

    setattr(durable, seam, failing)


_install(os.environ.get(ENV, ""))
