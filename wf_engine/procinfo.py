"""What tells a process apart from a later one that reuses its pid: its start time.

Linux reads it from ``/proc/<pid>/stat``; elsewhere (macOS) it asks ``ps``. ``None`` means the
process does not exist (or cannot be inspected), which callers treat as "not ours".
"""

from __future__ import annotations

import subprocess
import sys


def start_id(pid: int) -> str | None:
    """An opaque token fixed for the life of process ``pid``."""
    if sys.platform.startswith("linux"):
        return _linux_start_id(pid)
    return _ps_start_id(pid)  # pragma: no cover - macOS path


def _linux_start_id(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            stat = file.read()
    except OSError:
        return None
    # Field 2 (comm) may contain spaces and parentheses: split after its closing parenthesis.
    fields = stat[stat.rfind(b")") + 2 :].split()
    return f"linux:{fields[19].decode()}"  # field 22, starttime in clock ticks since boot


def _ps_start_id(pid: int) -> str | None:  # pragma: no cover - macOS path
    try:
        result = subprocess.run(
            ["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    text = result.stdout.strip()
    return f"ps:{text}" if result.returncode == 0 and text else None


def same_process(pid: int, recorded: str | None) -> bool:
    """True if ``pid`` is alive and is the very process whose start id was recorded."""
    return recorded is not None and start_id(pid) == recorded
