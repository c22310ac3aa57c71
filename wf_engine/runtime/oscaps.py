"""What this operating system offers the engine, decided once, in one place.

The engine runs on Linux and macOS. Linux has facilities that macOS (with Python 3.10-3.12)
lacks: ``os.waitid`` (wait for a child's exit without reaping it) and ``/proc`` (read another
process's start time, state and environment without starting a program). Every use of them has a
portable path, and the portable paths are chosen here, never by ``sys.platform`` checks spread
through the code.

``WF_PORTABLE=1`` hides the Linux-only facilities on Linux, so the test suite exercises the
portable paths on every machine (docs/design.md, "Linux and macOS").
"""

from __future__ import annotations

import functools
import os
import sys

#: Pretend to be a system without ``os.waitid`` and ``/proc`` (tests of the portable paths).
PORTABLE = os.environ.get("WF_PORTABLE", "") not in ("", "0")

#: ``os.waitid(..., WNOWAIT)``: learn that an attempt's main process exited while keeping it a
#: zombie, so its pid (the process group id) cannot be reused while the group is drained.
HAS_WAITID = hasattr(os, "waitid") and not PORTABLE

#: ``/proc/<pid>/{stat,environ,fd}``: cheap process inspection; elsewhere ``ps`` answers.
HAS_PROCFS = sys.platform.startswith("linux") and not PORTABLE


@functools.cache
def has_pidfd() -> bool:
    """``os.pidfd_open`` (Linux 5.3): wait for many processes in one ``select``. Probed once, on
    first use; ``WF_PORTABLE=1`` takes the waiting-thread path on purpose."""
    if PORTABLE or not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    return True
