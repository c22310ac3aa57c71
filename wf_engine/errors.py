"""Errors the engine raises on purpose, each carrying the exit code the CLI turns it into.

Only the CLI edge converts these into messages and exit codes; deeper code raises and never
prints, so the same engine serves the library API, the CLI and the test harness.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 3
EXIT_CORRUPT = 4


class WfError(Exception):
    """Base class: a condition the user must be told about, with a message that says what/where."""

    exit_code = EXIT_USAGE


class UsageError(WfError):
    """Bad input from the user: an argument, an id, a workflow file (exit 2)."""

    exit_code = EXIT_USAGE


class RunNotFound(UsageError):
    def __init__(self, run_id: str, home: str) -> None:
        super().__init__(f"no run {run_id!r} in {home}")
        self.run_id = run_id


class RunBusy(UsageError):
    """Another live process owns the run (exit 2: retry later or cancel it)."""

    def __init__(self, run_id: str, pid: int | None) -> None:
        owner = f" (pid {pid})" if pid else ""
        super().__init__(f"run {run_id!r} is owned by another live runner{owner}")
        self.run_id = run_id
        self.pid = pid


class StoreError(WfError):
    """The run store cannot be read or written as it must be (exit 4)."""

    exit_code = EXIT_CORRUPT


class CorruptLog(StoreError):
    """Damage that a crash cannot explain: refused, never repaired silently."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        super().__init__(f"{path}: line {line}: corrupt event log: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


class LogWriteError(StoreError, OSError):
    """A write or fsync of the log failed: the runner stopped without claiming the batch.

    Also an ``OSError`` with the underlying ``errno``, since that is what it is underneath.
    """

    def __init__(self, message: str, errno: int | None) -> None:
        super().__init__(message)
        self.errno = errno


class IllegalTransition(StoreError):
    """An event that the state machine forbids (a corrupt or forged log, or an engine bug)."""

    def __init__(self, seq: int | None, message: str) -> None:
        where = f"seq {seq}: " if seq is not None else ""
        super().__init__(f"{where}{message}")
        self.seq = seq


class MalformedRecord(IllegalTransition):
    """A record whose members a reader uses are missing or of the wrong JSON type."""
