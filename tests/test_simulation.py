"""The simulation tier (``pytest_wf.simulation``): the real runner crashed everywhere, in-process.

Every generated workflow is run uncrashed, then crashed at every commit batch (before its write,
after it, by a power cut) and resumed to its end; each history's log is read back with the real
reader, folded and verified, and compared with the uncrashed run. A failure names its seed.
"""

from __future__ import annotations

import collections
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from pytest_wf.simulation import (
    Crash,
    MemorySink,
    Scenario,
    SimulatedExecutor,
    SimulationFailure,
    Simulator,
    explore,
    reproduce_command,
)
from pytest_wf.simulation.__main__ import main
from wf_engine.core import clock
from wf_engine.core.fold import RunState
from wf_engine.log.eventlog import EventLog
from wf_engine.runtime.executor import Notify

SEEDS = st.integers(min_value=0, max_value=2**32 - 1)
#: Bounded so the whole file takes well under 40 s on two loaded cores.
_FEW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FEW
@given(seed=SEEDS)
def test_every_crash_state_of_a_generated_workflow_keeps_every_property(seed: int) -> None:
    note(reproduce_command(seed))
    exploration = explore(seed)
    assert exploration.crash_states == 3 * exploration.batches
    assert exploration.reference.state is not None
    assert exploration.reference.state.finished is not None


def _cancelled(seed: int) -> bool:
    return Scenario.from_seed(seed).cancel_at_sec is not None


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(seed=SEEDS.filter(_cancelled))
def test_a_cancel_sent_before_the_end_ends_the_run_cancelled(seed: int) -> None:
    note(reproduce_command(seed))
    reference = explore(seed).reference
    assert reference.state is not None and reference.state.finished is not None
    if any(r["type"] == "cancel_requested" for r in reference.records):
        everything = reference.state.succeeded == len(reference.state.steps)
        assert reference.state.finished.value == ("SUCCEEDED" if everything else "CANCELLED")
    else:  # it finished before the cancel came
        sent = reference.cancel_sent_us
        assert sent is None or clock.from_iso(reference.records[-1]["ts"]) <= sent


def test_generated_scenarios_cover_what_the_tier_claims() -> None:
    scenarios = [Scenario.from_seed(seed) for seed in range(300)]
    steps = [step for s in scenarios for step in s.workflow.steps]
    outcomes = [o for s in scenarios for script in s.scripts for o in script.outcomes]
    dependents = [
        sum(step.id in other.depends_on for other in s.workflow.steps)
        for s in scenarios
        for step in s.workflow.steps
    ]
    assert any(step.retries > 0 for step in steps)
    assert any(step.timeout_sec is not None for step in steps)
    assert any(len(step.depends_on) >= 2 for step in steps)  # fan-in
    assert max(dependents) >= 2  # fan-out
    assert any(o.exit_code is None and not o.spawn_error for o in outcomes)  # hangs
    assert any(o.ignores_term for o in outcomes)
    assert any(o.spawn_error for o in outcomes)
    assert any(o.exit_code not in (0, None) for o in outcomes)
    assert any(s.cancel_at_sec is not None for s in scenarios)
    assert any(s.fail_fast for s in scenarios)
    assert {s.max_parallel for s in scenarios} >= {1, 2, 4}


def _digest(log: bytes) -> str:
    return hashlib.sha256(log).hexdigest()


_PLAN = (Crash(9, "before_sync", 0, 0.5), Crash(12, "power_loss", 7, 0.0))


def _logs(seed: int, scratch: Path) -> tuple[bytes, bytes]:
    simulator = Simulator(Scenario.from_seed(seed), scratch)
    return simulator.run().log, simulator.run(_PLAN).log


def test_the_same_seed_writes_byte_identical_logs(tmp_path: Path) -> None:
    first = _logs(23, tmp_path / "a")
    again = _logs(23, tmp_path / "b")
    assert first == again and first[0] and first[1]
    assert first[0] != first[1]  # the crashes changed the history
    # In another process too: nothing of the host (pid, argv, time, folders) reaches the log.
    code = (
        "import hashlib, sys, tempfile, pathlib; sys.path.insert(0, 'tests');"
        "from test_simulation import _logs;"
        "print(*(hashlib.sha256(log).hexdigest() for log in"
        " _logs(23, pathlib.Path(tempfile.mkdtemp()))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert out.stdout.split() == [_digest(first[0]), _digest(first[1])]


def test_a_simulated_log_passes_the_real_replay_verify(tmp_path: Path) -> None:
    history = Simulator(Scenario.from_seed(23), tmp_path / "scratch").run(_PLAN)
    run_dir = tmp_path / "home" / "runs" / "sim"
    run_dir.mkdir(parents=True)
    (run_dir / "events.jsonl").write_bytes(history.log)
    home = str(tmp_path / "home")
    done = subprocess.run(
        [sys.executable, "-m", "wf_engine", "--home", home, "replay", "sim", "--verify"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


class _ForgetfulExecutor(SimulatedExecutor):
    """An executor whose take-over forgets the dead runner's processes (a broken invariant)."""

    def clear_leftovers(self, state: RunState, notify: Notify, stop_requested: object) -> None:
        pass


def test_a_broken_invariant_is_caught_and_names_its_seed() -> None:
    caught: SimulationFailure | None = None
    for seed in range(50):
        try:
            explore(seed, executor=_ForgetfulExecutor)
        except SimulationFailure as failure:
            caught = failure
            break
    assert caught is not None, "no seed of 50 caught an executor that leaves leftovers alive"
    message = str(caught)
    assert caught.seed == seed
    assert f"simulation seed {seed}: crash at seq" in message
    assert "overlapped" in message or "still runs after the run finished" in message
    assert message.endswith(f"reproduce: python -m pytest_wf.simulation --seed {seed}")
    explore(seed)  # the real executor passes the very same exploration


def test_a_resume_makes_a_dead_writers_unsynced_batch_durable_first(tmp_path: Path) -> None:
    # A SIGKILL between a batch's write and its fsync, a resume, then a power cut before the
    # resume's own fsync: without the fsync in EventLog.continuing the cut could leave damage
    # before the last batch, which every reader refuses as corruption.
    simulator = Simulator(Scenario.from_seed(0), tmp_path)
    for loss_seed in range(8):
        history = simulator.run(
            (Crash(14, "before_sync", 0, 0.0), Crash(15, "power_loss", loss_seed, 0.0))
        )
        assert [c.point for c in history.happened] == ["before_sync", "power_loss"]
        assert history.violations == []
    calls: list[str] = []

    class Recording(MemorySink):
        def sync(self) -> None:
            calls.append("sync")
            super().sync()

    sink = Recording(b"", 0, collections.deque())
    EventLog.continuing("events.jsonl", sink, 0)
    assert calls == ["sync"]


def test_the_command_line_explores_seeds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seed", "4", "--count", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("seed 4: ") and "seed 5: " in out and "crash states in" in out
