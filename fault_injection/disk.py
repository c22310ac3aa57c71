"""Failing disks: make the engine's Nth write or fsync raise EIO or ENOSPC.

A wf plugin, activated by environment variables in the engine process::

    WF_PLUGINS=fault_injection.disk
    WF_FAULT_DISK=sync:EIO:3       # operation (write|sync) : errno name : call number (1-based)

On import it wraps ``wf_engine.durable.write_all`` / ``sync`` — the one seam all durable I/O goes
through. A failing ``write`` first writes half of its bytes, as a disk that fills up mid-write
would. Every call after the Nth succeeds again, so the same disk "recovers" for ``wf resume``
in a new process (which starts without the variable).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

from wf_engine import durable

ENV = "WF_FAULT_DISK"


def disk_fault_env(operation: str, error: str, call: int) -> dict[str, str]:
    """Environment that makes a ``wf`` process fail its ``call``-th ``operation``."""
    if operation not in ("write", "sync") or not hasattr(errno, error) or call < 1:
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
    real_write: Callable[[int, bytes], None] = durable.write_all
    real_sync: Callable[[int], None] = durable.sync

    def failing_write(fd: int, data: bytes) -> None:
        nonlocal calls
        calls += 1
        if calls == failing_call:
            real_write(fd, data[: len(data) // 2])
            raise OSError(code, os.strerror(code))
        real_write(fd, data)

    def failing_sync(fd: int) -> None:
        nonlocal calls
        calls += 1
        if calls == failing_call:
            raise OSError(code, os.strerror(code))
        real_sync(fd)

    if operation == "write":
        durable.write_all = failing_write
    elif operation == "sync":
        durable.sync = failing_sync


_install(os.environ.get(ENV, ""))
