"""The pytest plugin as a user's suite sees it.

Each test writes a small user test file, runs pytest on it in a subprocess (so the plugin loads
through its real ``pytest11`` entry point, and the engines the user tests kill are never this
process's children), then checks the outcomes and what the report says.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_wf import WfHarness, dag, step
from pytest_wf.equivalence import (
    EquivalenceError,
    assert_replay_equivalent,
    assert_resume_equivalent,
    first_divergence,
)

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent
CI_SUITE = REPO / "examples" / "ci_suite"
DOCS = REPO / "docs" / "pytest-plugin.md"

#: The start of every user test file.
HEADER = """
import copy
import dataclasses

import pytest

from pytest_wf import dag, step

TWO = dag("two", [step("fetch", ["true"]), step("build", ["true"], ["fetch"])])
"""


@pytest.fixture(autouse=True)
def _checkout_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every process these tests start runs this checkout's code, not an installed copy.

    ``python -m pytest`` from the repository puts the checkout first on ``sys.path``, but the
    pytest and ``wf`` processes started here run in other folders: without this they would
    import whatever ``wf-engine`` is installed (another clone's editable install, or a stale one
    that maps ``pytest_wf`` as a namespace package without its ``__init__``).
    """
    paths = [str(REPO), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, paths)))


def user_tests(pytester: pytest.Pytester, body: str) -> Path:
    """A user test module: ``HEADER`` plus ``body``."""
    return pytester.makepyfile(textwrap.dedent(HEADER) + textwrap.dedent(body))


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=120)


# -- fixtures ---------------------------------------------------------------------------------


def test_a_passing_user_test(pytester: pytest.Pytester) -> None:
    user_tests(
        pytester,
        """
        def test_two_steps(wf, wf_tasks, wf_replay_equivalent, wf_home):
            workflow = dag("two", [step("a", wf_tasks("ok")), step("b", wf_tasks("ok"), ["a"])])
            run = wf.run(workflow)
            assert run.returncode == 0 and run.state == "SUCCEEDED"
            assert run.step_state("b") == "SUCCEEDED"
            assert run.transitions("a")[-1] == ("a", "RUNNING", "SUCCEEDED")
            assert wf_tasks.starts("a") == 1 and wf_tasks.starts("b") == 1
            assert run.home == wf_home
            assert run.paths.events == wf_home / "runs" / run.run_id / "events.jsonl"
            wf_replay_equivalent(run)
        """,
    )
    result = run(pytester)
    result.assert_outcomes(passed=1)


def test_a_failing_run_shows_the_step_states(pytester: pytest.Pytester) -> None:
    user_tests(
        pytester,
        """
        def test_build_succeeds(wf, wf_tasks):
            workflow = dag("two", [step("fetch", wf_tasks("ok")),
                                   step("build", wf_tasks("fail"), ["fetch"])])
            run = wf.run(workflow)
            assert {name: s["state"] for name, s in run.steps.items()} == {
                "fetch": "SUCCEEDED", "build": "SUCCEEDED"}
        """,
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*Differing items:*", "*'build': 'FAILED'*'build': 'SUCCEEDED'*"])


def test_a_replay_mismatch_names_the_step(pytester: pytest.Pytester) -> None:
    user_tests(
        pytester,
        """
        def test_replay(wf, wf_replay_equivalent):
            run = wf.run(TWO)
            live = copy.deepcopy(run.live)
            live["steps"]["build"]["state"] = "FAILED"  # what the runner "held" at the end
            wf_replay_equivalent(dataclasses.replace(run, live=live))
        """,
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*EquivalenceError: replay of run-* is SUCCEEDED, the live run was SUCCEEDED*",
            "*state diff:",
            "*build: expected {*'state': 'FAILED'*} != actual {*'state': 'SUCCEEDED'*}",
        ]
    )


def test_a_replay_mismatch_is_labelled_state_diff(wf: WfHarness) -> None:
    run = wf.run(dag("two", [step("fetch", ["true"]), step("build", ["true"], ["fetch"])]))
    assert run.live is not None
    live = copy.deepcopy(run.live)
    live["steps"]["build"]["state"] = "FAILED"
    with pytest.raises(EquivalenceError, match=r"state diff:\n  build: expected"):
        assert_replay_equivalent(wf, dataclasses.replace(run, live=live))


def test_a_resume_divergence_shows_the_first_divergent_event(pytester: pytest.Pytester) -> None:
    # "deploy" is not idempotent: it fails when it finds the mark of an earlier execution in
    # its run folder. Killing the engine after deploy exited 0 but before its SUCCEEDED was
    # written (before_write) makes resume run it again, so the resumed run ends FAILED.
    user_tests(
        pytester,
        """
        MARK = '"$WF_RUN_DIR/deployed"'
        DEPLOY = dag("once", [step("deploy", f"test ! -e {MARK} && touch {MARK}")])

        def test_deploy_survives_a_crash(wf, wf_resume_equivalent):
            events = wf.run(DEPLOY).events
            seq = next(e["seq"] for e in events if e.get("to") == "SUCCEEDED")
            wf_resume_equivalent(DEPLOY, (seq, "before_write"))
        """,
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*EquivalenceError: crash at seq * (before_write): resumed run is FAILED, "
            "uncrashed run SUCCEEDED",
            "*the engine died at record *: step 'deploy' RUNNING -> SUCCEEDED (exit), attempt 1;"
            " its commit batch (record*): never written*",
            "*step 'deploy' ran twice (the uncrashed run: once): the crash interrupted it and "
            "resume ran it again, and then it ended FAILED instead of SUCCEEDED*",
            "*first divergent event: step 'deploy', transition 3: expected ('RUNNING', "
            "'SUCCEEDED', 'exit'), got ('RUNNING', 'FAILED', 'exit')",
            "*state diff:",
            "*deploy: expected {'state': 'SUCCEEDED',*} != actual {'state': 'FAILED',*}",
            "*per step (uncrashed | crashed and resumed):",
            "*step*attempts*executions",
            "*deploy*1 | 2 (1 interrupted)*1 | 2",
            "*stderr tails:",
            "*runs kept:",
            "*  uncrashed: */runs/run-*",
            "*  crashed and resumed: */runs/run-*",
            "*reproduce this point alone: python -m pytest *::test_deploy_survives_a_crash",
        ]
    )


def _transition(seq: int, name: str, old: str, new: str, reason: str | None = None) -> dict:
    event = {"seq": seq, "type": "step", "step": name, "from": old, "to": new}
    return event if reason is None else {**event, "reason": reason}


def test_first_divergence_looks_past_an_interrupted_attempt() -> None:
    reference = [
        _transition(1, "a", "PENDING", "READY"),
        _transition(2, "a", "READY", "RUNNING"),
        _transition(3, "a", "RUNNING", "SUCCEEDED", "exit"),
        _transition(4, "b", "PENDING", "READY"),
        _transition(5, "b", "READY", "RUNNING"),
        _transition(6, "b", "RUNNING", "SUCCEEDED", "exit"),
    ]
    resumed = [
        *reference[:2],
        _transition(3, "a", "RUNNING", "READY", "interrupted"),
        _transition(4, "a", "READY", "RUNNING"),
        _transition(5, "a", "RUNNING", "SUCCEEDED", "exit"),
        *reference[3:5],
        _transition(8, "b", "RUNNING", "FAILED", "exit"),
    ]
    assert first_divergence(reference, resumed) == (
        "step 'b', transition 3: expected ('RUNNING', 'SUCCEEDED', 'exit'), "
        "got ('RUNNING', 'FAILED', 'exit')"
    )


# -- the crash matrix -------------------------------------------------------------------------


CRASH_MATRIX = """
ONE = dag("one", [step("only", ["true"])])  # 7 records

@pytest.mark.wf_crash_matrix(points=("after_sync",), depth=6)
def test_two_steps(wf_resume_equivalent, wf_crash_point):
    outcome = wf_resume_equivalent(TWO, wf_crash_point)
    assert outcome.crashed and outcome.resumed.state == "SUCCEEDED"

@pytest.mark.wf_crash_matrix(depth=8)
def test_past_the_end(wf_resume_equivalent, wf_crash_point):
    wf_resume_equivalent(ONE, wf_crash_point)
"""


def test_crash_matrix_runs_the_test_once_per_crash_point(pytester: pytest.Pytester) -> None:
    path = user_tests(pytester, CRASH_MATRIX)
    result = run(
        pytester,
        "-v",
        "-rs",
        f"{path.name}::test_two_steps",
        f"{path.name}::test_past_the_end[after_sync-8]",
    )
    result.assert_outcomes(passed=6, skipped=1)
    result.stdout.fnmatch_lines(
        [f"*::test_two_steps?after_sync-{seq}? PASSED*" for seq in range(1, 7)]
        + ["*::test_past_the_end?after_sync-8? SKIPPED*", "*(8, 'after_sync') is past the end*"],
        consecutive=False,
    )


def test_crash_options_change_the_matrix(pytester: pytest.Pytester) -> None:
    user_tests(
        pytester,
        """
        @pytest.mark.wf_crash_matrix(workflow=TWO)
        def test_default(wf_resume_equivalent, wf_crash_point):
            pass
        """,
    )

    def collect(*args: str) -> pytest.RunResult:
        return pytester.runpytest_inprocess("-p", "no:cacheprovider", "--collect-only", "-q", *args)

    # Every record of TWO's run (11) at every crash point (4).
    collect().stdout.fnmatch_lines(["44 tests collected*"])
    narrow = collect("--wf-crash-depth", "4")
    narrow.stdout.fnmatch_lines(["*::test_default?power_loss-4?", "16 tests collected*"])
    points = "--wf-crash-points=before_write,after_sync"
    wide = collect("--wf-crash-depth=2", points)
    wide.stdout.fnmatch_lines(
        [
            "*::test_default?before_write-1?",
            "*::test_default?before_write-2?",
            "*::test_default?after_sync-1?",
            "*::test_default?after_sync-2?",
            "4 tests collected*",
        ]
    )


def test_every_crash_point_is_a_default_power_loss_included(pytester: pytest.Pytester) -> None:
    user_tests(
        pytester,
        """
        @pytest.mark.wf_crash_matrix(points=("power_loss",), depth=2)
        def test_cut(wf_resume_equivalent, wf_crash_point):
            pass

        @pytest.mark.wf_crash_matrix(depth=1)
        def test_default(wf_resume_equivalent, wf_crash_point):
            pass
        """,
    )
    collected = run(pytester, "--collect-only", "-q")
    collected.stdout.fnmatch_lines(
        [
            "*::test_cut?power_loss-1?",
            "*::test_cut?power_loss-2?",
            "*::test_default?before_write-1?",
            "*::test_default?before_sync-1?",
            "*::test_default?after_sync-1?",
            "*::test_default?power_loss-1?",
        ]
    )
    forced = run(pytester, "--collect-only", "-q", "--wf-crash-points=power_loss")
    forced.stdout.fnmatch_lines(["*::test_default?power_loss-1?", "3 tests collected*"])


def test_resume_equivalence_after_a_power_loss(wf: WfHarness) -> None:
    workflow = dag("cut", [step("a", ["sleep", "0.2"]), step("b", ["true"], ["a"])])
    outcome = assert_resume_equivalent(wf, workflow, (5, "power_loss"))  # a's `spawned` batch
    assert outcome.crashed and outcome.resumed.state == "SUCCEEDED"


def test_an_unknown_crash_point_is_refused(pytester: pytest.Pytester) -> None:
    user_tests(
        pytester,
        """
        @pytest.mark.wf_crash_matrix(points=("after_fsync",), depth=2)
        def test_typo(wf_resume_equivalent, wf_crash_point):
            pass
        """,
    )
    from_marker = run(pytester)
    assert from_marker.ret != 0
    from_marker.assert_outcomes(errors=1)
    from_marker.stdout.fnmatch_lines(["*unknown crash point(s) after_fsync*"])

    from_option = run(pytester, "--wf-crash-points", "after_sync,nowhere")
    assert from_option.ret == pytest.ExitCode.USAGE_ERROR
    assert "--wf-crash-points: unknown crash point(s) nowhere" in from_option.stderr.str()


def test_an_unknown_crash_point_option_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = run(pytester, "--wf-crash-points", "nowhere")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_wf_crash_point_needs_the_marker(pytester: pytest.Pytester) -> None:
    user_tests(
        pytester,
        """
        def test_forgot_the_marker(wf_crash_point):
            pass
        """,
    )
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*wf_crash_point needs @pytest.mark.wf_crash_matrix on the test*"])


# -- registration -----------------------------------------------------------------------------


def test_the_plugin_registers_its_marker_options_and_fixtures(pytester: pytest.Pytester) -> None:
    run(pytester, "--markers").stdout.fnmatch_lines(["@pytest.mark.wf_crash_matrix(*"])
    run(pytester, "--help").stdout.fnmatch_lines(
        [
            "wf workflow engine testing:",
            "*--wf-crash-depth=N*",
            "*--wf-crash-points=POINTS*",
            "*--wf-crash-sample=N*",
            "*--wf-crash-seed=SEED*",
            "*--wf-crash-jobs=N*",
            "*--wf-crash-reuse=*",
            "*--wf-launch=*",
        ]
    )
    fixtures = run(pytester, "--fixtures").stdout
    for name in ("wf_home", "wf", "wf_tasks", "wf_damage", "wf_crash_point"):
        fixtures.fnmatch_lines([f"{name} -- *pytest_wf*plugin.py*"])
    for name in ("wf_replay_equivalent", "wf_resume_equivalent"):
        fixtures.fnmatch_lines([f"{name} -- *pytest_wf*plugin.py*"])


def test_p_no_wf_disables_the_plugin(pytester: pytest.Pytester) -> None:
    user_tests(
        pytester,
        """
        def test_uses_wf(wf):
            pass
        """,
    )
    run(pytester).assert_outcomes(passed=1)
    disabled = run(pytester, "-p", "no:wf")
    disabled.assert_outcomes(errors=1)
    disabled.stdout.fnmatch_lines(["*fixture 'wf' not found*"])


# -- the example CI suite ---------------------------------------------------------------------


def test_the_example_ci_suite_passes() -> None:
    """examples/ci_suite is a project of its own (its own pytest.ini): run it as a user would."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(CI_SUITE)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "failed" not in done.stdout


# -- the docs' examples -----------------------------------------------------------------------


def _docs_examples() -> tuple[list[str], dict[str, str]]:
    """The docs' python blocks: excerpts of the example suite, and test modules by name."""
    excerpts: list[str] = []
    modules: dict[str, str] = {}
    for block in re.findall(r"^```python\n(.*?)^```", DOCS.read_text(), re.MULTILINE | re.DOTALL):
        first, _, body = block.partition("\n")
        module = re.fullmatch(r"# (test_\w+)\.py", first)
        if first == "# examples/ci_suite/tests/test_pipeline.py":
            excerpts.append(body)
        elif module:
            modules[module.group(1)] = block
        else:
            raise AssertionError(f"a python block in {DOCS.name} that nothing checks: {first}")
    return excerpts, modules


def test_the_docs_excerpts_of_the_example_suite_are_verbatim() -> None:
    excerpts, _ = _docs_examples()
    suite = (CI_SUITE / "tests" / "test_pipeline.py").read_text()
    assert len(excerpts) >= 6
    for excerpt in excerpts:
        assert excerpt in suite, excerpt


def test_the_docs_example_modules_pass(pytester: pytest.Pytester) -> None:
    _, modules = _docs_examples()
    assert len(modules) >= 4
    pytester.makepyfile(**modules)
    tests = sum(len(re.findall(r"^def test_", code, re.MULTILINE)) for code in modules.values())
    outcomes = run(pytester).parseoutcomes()
    assert outcomes.get("passed", 0) >= tests and set(outcomes) == {"passed"}, outcomes


#: A row of the options table: `--wf-x METAVAR` | `example` | default | effect.
OPTION_ROW = re.compile(r"^\| `(--wf-[a-z-]+)(?: ([^`]+))?` \| `([^`]+)` \| ([^|]+) \|", re.M)


def _documented_options() -> list[tuple[str, str, str, str]]:
    """(option, metavar or choices, example, default) for each row of the docs' options table."""
    rows = [(o, m or "", e, d.strip()) for o, m, e, d in OPTION_ROW.findall(DOCS.read_text())]
    assert len(rows) >= 7
    return rows


def test_the_docs_and_pytest_help_agree_on_every_option(pytester: pytest.Pytester) -> None:
    text = run(pytester, "--help").stdout.str()
    section = text[text.index("wf workflow engine testing:") :].split("\n\n", 1)[0]
    helps = dict(re.findall(r"^  (--wf-[a-z-]+)\S*\s+(.*?)(?=^  --|\Z)", section, re.M | re.S))
    rows = _documented_options()
    assert sorted(helps) == sorted(option for option, *_ in rows)
    for option, metavar, _, default in rows:
        assert f"{option}={metavar}" in section, option
        words = " ".join(helps[option].split())
        first = default.replace("`", "").split()[0]
        assert re.search(rf"default:? {re.escape(first)}", words), (option, default, words)


def test_every_documented_option_runs(pytester: pytest.Pytester) -> None:
    user_tests(
        pytester,
        """
        ONE = dag("one", [step("only", ["true"])])  # 7 records: 28 crash points

        @pytest.mark.wf_crash_matrix(workflow=ONE)
        def test_one(wf_resume_equivalent, wf_crash_point):
            assert wf_resume_equivalent(wf_crash_point).resumed.state in ("SUCCEEDED", None)
        """,
    )
    for option, _, example, _ in _documented_options():
        # One crash point per run unless the example itself chooses how many.
        args = ("-p", "no:cacheprovider", "-q", "--wf-crash-sample", "1", *shlex.split(example))
        result = pytester.runpytest_inprocess(*args)
        assert result.ret == 0, (example, result.stdout.str()[-2000:], result.stderr.str())
        assert "wf crash matrix coverage" in result.stdout.str(), option
