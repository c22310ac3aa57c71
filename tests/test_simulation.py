"""The simulation tier (``pytest_wf.simulation``): the real runner crashed everywhere, in-process.

Every generated workflow is run uncrashed, then crashed at every commit batch (before its write,
after it, by a power cut) and resumed to its end; each history's log is read back with the real
reader, folded and verified, and compared with the uncrashed run. One scenario in three is then
rerun (``wf rerun``, maybe with ``--from``, ``--only`` or fixed steps), and the rerun is crashed
and checked the same way, and against its plan. A failure names its seed.
"""

from __future__ import annotations

import collections
import hashlib
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from pytest_wf.simulation import (
    Crash,
    MemorySink,
    Planner,
    RerunSpec,
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
from wf_engine.core.model import Workflow
from wf_engine.core.rerun import Action, RerunPlan, StepPlan, plan_rerun
from wf_engine.core.states import StepState
from wf_engine.log.eventlog import EventLog
from wf_engine.runtime.executor import AttemptKey, LaunchSpec, Notify

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
    if exploration.rerun is not None:
        assert exploration.rerun.state is not None
        assert exploration.rerun.state.finished is not None


def _rerun(seed: int) -> bool:
    return Scenario.from_seed(seed).rerun is not None


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(seed=SEEDS.filter(_rerun))
def test_every_crash_state_of_a_rerun_keeps_every_property(seed: int) -> None:
    note(reproduce_command(seed))
    exploration = explore(seed)
    rerun = exploration.rerun
    if rerun is None:
        return  # the plan refused the selection: wf rerun would have created nothing
    origin = exploration.reference.state
    assert rerun.rerun is not None and rerun.state is not None and origin is not None
    assert rerun.state.origin_run_id == origin.run_id and rerun.state.run_id != origin.run_id
    for step_id, plan in rerun.rerun.plan.steps.items():
        if plan.action is not Action.RUN:
            assert not any(p.step == step_id for p in rerun.processes)


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


#: What a rerun may come with, each of which some accepted plan must have been explored with.
_RERUN_KINDS: dict[str, Callable[[RerunSpec], bool]] = {
    "--from": lambda spec: bool(spec.from_steps),
    "--only": lambda spec: bool(spec.only_steps),
    "fixed steps": lambda spec: bool(spec.fixed),
    "a cancel": lambda spec: spec.cancel_at_sec is not None,
}


def test_rerun_scenarios_occur_with_every_kind_of_selection() -> None:
    scenarios = [Scenario.from_seed(seed) for seed in range(300)]
    specs = [(s, s.rerun) for s in scenarios if s.rerun is not None]
    assert 0.25 < len(specs) / len(scenarios) < 0.42  # about one in three
    seen: set[str] = set()
    actions: set[Action] = set()
    for scenario, spec in specs:
        kinds = {kind for kind, has in _RERUN_KINDS.items() if has(spec)} - seen
        if not kinds:
            continue
        rerun = explore(scenario.seed).rerun
        if rerun is not None and rerun.rerun is not None:  # else the plan refused it
            seen |= kinds
            actions.update(plan.action for plan in rerun.rerun.plan.steps.values())
    assert seen == set(_RERUN_KINDS)
    assert actions == set(Action)  # reused, run again, left out by --only
    scenario, spec = next((s, spec) for s, spec in specs if spec.fixed)
    rerun_scenario = scenario.rerun_scenario()
    assert rerun_scenario is not None
    for step in spec.fixed:  # a changed definition, and now it succeeds
        index = scenario.workflow.index_of(step)
        assert rerun_scenario.workflow.steps[index] != scenario.workflow.steps[index]
        assert [o.exit_code for o in rerun_scenario.scripts[index].outcomes] == [0]


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


#: A seed whose run fails and whose rerun (``--from s0``) reuses s1 and runs s0 again.
_RERUN_SEED = 3


def test_a_rerun_writes_byte_identical_logs_too() -> None:
    code = (
        f"from pytest_wf.simulation import explore; e = explore({_RERUN_SEED});"
        "print(e.reference.log.hex(), e.rerun.log.hex())"
    )
    elsewhere = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    here = [explore(_RERUN_SEED) for _ in range(2)]
    logs = [[e.reference.log.hex(), e.rerun.log.hex() if e.rerun else ""] for e in here]
    assert logs[0] == logs[1] == elsewhere and all(elsewhere)


def _replay_verify(home: Path, logs: dict[str, bytes]) -> None:
    """``wf replay RUN --verify`` of each log, all of them in one store."""
    for run_id, log in logs.items():
        (home / "runs" / run_id).mkdir(parents=True)
        (home / "runs" / run_id / "events.jsonl").write_bytes(log)
    for run_id in logs:
        done = subprocess.run(
            [sys.executable, "-m", "wf_engine", "--home", str(home), "replay", run_id, "--verify"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "is not in" not in done.stderr  # a rerun's reuses were checked against its origin


def test_a_simulated_log_passes_the_real_replay_verify(tmp_path: Path) -> None:
    history = Simulator(Scenario.from_seed(23), tmp_path / "scratch").run(_PLAN)
    _replay_verify(tmp_path / "run", {"sim": history.log})
    exploration = explore(_RERUN_SEED)
    assert exploration.rerun is not None and exploration.rerun.rerun is not None
    assert exploration.rerun.rerun.plan.ids(Action.REUSE)  # a reuse for verify to check
    _replay_verify(
        tmp_path / "rerun", {"sim": exploration.reference.log, "sim-rerun": exploration.rerun.log}
    )


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


def _forging(
    origin: RunState,
    workflow: Workflow,
    base_dir: str,
    from_steps: Sequence[str],
    only_steps: Sequence[str],
) -> RerunPlan:
    """``plan_rerun``, except that it reuses the first step that FAILED in the origin."""
    plan = plan_rerun(origin, workflow, base_dir, from_steps, only_steps)
    failed = [
        s
        for s in plan.ids(Action.RUN)
        if origin.steps[origin.workflow.index_of(s)].state is StepState.FAILED
    ]
    if not failed:
        return plan
    return RerunPlan(
        plan.origin_run_id, {**plan.steps, failed[0]: StepPlan(Action.REUSE, "forged")}
    )


class _StrayExecutor(SimulatedExecutor):
    """An executor that, whatever it starts, also launches the steps a rerun carried over."""

    def start(self, key: AttemptKey, spec: LaunchSpec) -> None:
        super().start(key, spec)
        for step in self.world.carried:
            self.world.start(self, (self.world.scenario.workflow.index_of(step), 1))


def _first_failure(
    executor: type[SimulatedExecutor] = SimulatedExecutor, planner: Planner = plan_rerun
) -> SimulationFailure:
    """The first seed's failure with a broken ``executor`` or ``planner``, checked to be a
    rerun's, to name its seed, and to pass with the real ones."""
    for seed in range(60):
        try:
            explore(seed, executor, planner=planner)
        except SimulationFailure as failure:
            assert failure.seed == seed
            message = str(failure)
            assert message.startswith(f"simulation seed {seed}, the rerun: ")
            assert message.endswith(f"reproduce: python -m pytest_wf.simulation --seed {seed}")
            explore(seed)  # the real plan and executor pass the very same exploration
            return failure
    raise AssertionError(f"no seed of 60 caught {executor.__name__} or {planner.__name__}")


def test_a_forged_reuse_of_a_failed_step_is_caught_by_verify_against_the_origin() -> None:
    message = str(_first_failure(planner=_forging))
    assert "reused from sim, but it did not succeed in the origin (failed in the origin)" in message
    assert "reuse (forged)" in message  # the plan is in the report


def test_a_carried_over_step_that_executes_in_the_rerun_is_caught() -> None:
    message = str(_first_failure(executor=_StrayExecutor))
    assert "was carried over by the rerun (reused) and executed in it (attempt 1)" in message


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
