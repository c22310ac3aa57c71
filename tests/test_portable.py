"""The portable paths, tested on every machine: the process and crash tests again, with
``WF_PORTABLE=1`` hiding ``os.waitid`` and ``/proc`` (see ``wf_engine.runtime.oscaps``).

macOS with Python 3.10-3.12 has neither, so this is what runs there: ``waitpid`` then draining
the group, start times and attempt marks read through ``ps``. Each file runs in its own pytest
process so that every engine process it starts inherits the switch.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: Test files whose engines start, kill, crash and resume real processes, and the tests of each
#: that touch processes (the log-only ones gain nothing from running twice).
PROCESS_TESTS = {
    "tests/test_never_twice.py": "not private and not umask and not grace_it and not stopped",
    "tests/test_cancel_e2e.py": "",
    "tests/test_run_e2e.py": "",
    "tests/test_resume_e2e.py": "sigkill or crash_at_every or concurrent or existing or resume_all",
    "tests/test_power_loss.py": "diamond",
}
#: The crash matrices are sampled here; they run whole natively.
CRASH_DEPTH = "4"


def test_the_switch_hides_the_linux_facilities() -> None:
    probe = "from wf_engine.runtime import oscaps; print(oscaps.HAS_WAITID, oscaps.HAS_PROCFS)"
    env = {**os.environ, "WF_PORTABLE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("test_file", sorted(PROCESS_TESTS))
def test_process_tests_pass_on_the_portable_paths(test_file: str, tmp_path: Path) -> None:
    env = {**os.environ, "WF_PORTABLE": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"]
    command += ["--basetemp", str(tmp_path / "t"), "--wf-crash-depth", CRASH_DEPTH, test_file]
    if PROCESS_TESTS[test_file]:
        command += ["-k", PROCESS_TESTS[test_file]]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
