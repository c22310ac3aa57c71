"""Typing as people do: run id prefixes, ``@last``, "did you mean", ``--home`` anywhere, shell
completion, help with examples, and a checkout without its dependencies."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from wf_engine.cli import COMMANDS, cli
from wf_engine.errors import WfError

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "golden"
#: Two runs of one workflow (ids sharing a long prefix) and one of another.
RUNS = {
    "nightly-20261130T031109-a1b2c3": "mixed",
    "nightly-20261130T031114-d4e5f6": "resumed-cancelled",
    "report-20261130T031109-777777": "mixed",
}
NEWEST = "nightly-20261130T031114-d4e5f6"  # its log says it was created last


@pytest.fixture
def home(tmp_path: Path) -> Path:
    for run_id, source in RUNS.items():
        folder = tmp_path / "runs" / run_id
        folder.mkdir(parents=True)
        shutil.copyfile(GOLDEN / f"{source}.jsonl", folder / "events.jsonl")
    return tmp_path


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def error_of(result: Result) -> str:
    assert isinstance(result.exception, WfError), result.output
    assert result.exception.exit_code == 2
    return str(result.exception)


def test_a_unique_prefix_and_at_last_name_a_run(home: Path) -> None:
    by_prefix = invoke("--home", str(home), "status", "report", "--json")
    assert by_prefix.exit_code == 0, by_prefix.output
    assert '"run_id": "golden-mixed"' in by_prefix.output  # the log of report-… says so
    last = invoke("--home", str(home), "graph", "@last")
    assert last.exit_code == 0 and "c [CANCELLED] <- b" in last.output
    assert invoke("--home", str(home), "replay", "nightly-20261130T031114").exit_code == 0
    assert invoke("--home", str(home), "logs", "@LAST", "a").exit_code == 0


def test_an_ambiguous_or_unknown_id_is_refused_with_the_closest_ids(home: Path) -> None:
    ambiguous = error_of(invoke("--home", str(home), "status", "nightly"))
    assert ambiguous == (
        f"run id prefix 'nightly' is ambiguous: {NEWEST}, nightly-20261130T031109-a1b2c3"
    )
    typo = error_of(invoke("--home", str(home), "status", "nighlty-20261130T031109"))
    assert "did you mean 'nightly-20261130T031109-a1b2c3'" in typo
    short = error_of(invoke("--home", str(home), "cancel", "reprot"))
    assert short.endswith("did you mean 'report-20261130T031109-777777'?")
    assert "did you mean '@last'" in error_of(invoke("--home", str(home), "status", "@lst"))
    empty = error_of(invoke("--home", str(home / "nowhere"), "status", "@last"))
    assert empty.startswith("no runs in ")
    unknown_step = error_of(invoke("--home", str(home), "logs", "report", "brokn"))
    assert unknown_step.endswith("has no step 'brokn'; did you mean 'broken'?")


def test_home_works_before_or_after_the_command(home: Path, tmp_path: Path) -> None:
    after = invoke("status", "report", "--home", str(home))
    assert after.exit_code == 0, after.output
    before = invoke("--home", str(home), "status", "report")
    assert after.output == before.output
    # The later one wins, and the run id is looked up in it.
    elsewhere = invoke("--home", str(tmp_path / "empty"), "list", "--home", str(home), "--json")
    assert elsewhere.exit_code == 0 and NEWEST in elsewhere.output


def test_every_command_teaches_a_purpose_options_and_an_example() -> None:
    context = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(context, name)
        assert command is not None
        assert command.help and command.help.splitlines()[0].endswith("."), name
        assert command.epilog and "wf " in command.epilog and "Example" in command.epilog, name
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert param.help, f"wf {name} {param.opts[0]} has no help"
        assert "--home" in command.get_help(click.Context(command, info_name=name))


# -- shell completion ----------------------------------------------------------------------------


@pytest.fixture
def wf_on_path(tmp_path: Path, home: Path) -> dict[str, str]:
    """An environment whose ``wf`` is this engine, with ``home`` as its run store."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "wf"
    script.write_text(f'#!/bin/sh\nexec {sys.executable} -m wf_engine "$@"\n')
    script.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WF_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env["WF_HOME"] = str(home)
    return env


BASH = """
source <(wf completion bash)
complete_line() {
    read -ra COMP_WORDS <<< "$1"
    [[ "$1" == *" " ]] && COMP_WORDS+=("")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMPREPLY=()
    _wf_completion wf
    echo "${COMPREPLY[*]}"
}
complete_line "wf st"
complete_line "wf status "
complete_line "wf logs report "
complete_line "wf logs report b"
complete_line "wf run --ma"
"""


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_bash_completes_commands_options_run_ids_and_steps(wf_on_path: dict[str, str]) -> None:
    done = subprocess.run(
        ["bash", "-c", BASH], env=wf_on_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "status"
    assert lines[1].split() == [NEWEST, *sorted(set(RUNS) - {NEWEST}), "@last"]
    assert lines[2].split() == ["fetch", "flaky", "broken", "after_broken", "slow", "join"]
    assert lines[3].split() == ["broken"]
    assert lines[4] == "--max-parallel"


def test_file_arguments_complete_as_files_in_every_shell(wf_on_path: dict[str, str]) -> None:
    """A file argument hands over to the shell's own file completion (``file`` type)."""
    for shell, expected in (
        ("bash", "file,examples/im"),
        ("zsh", "file\nexamples/im"),
        ("fish", "file\nexamples/im"),
    ):
        env = {
            **wf_on_path,
            "_WF_COMPLETE": f"{shell}_complete",
            "COMP_WORDS": "wf run examples/im",
            "COMP_CWORD": "examples/im" if shell == "fish" else "2",
        }
        done = subprocess.run(["wf"], env=env, capture_output=True, text=True, timeout=60)
        assert expected in done.stdout.replace("\n_", ""), (shell, done.stdout, done.stderr)
        script = subprocess.run(
            ["wf", "completion", shell], env=wf_on_path, capture_output=True, text=True
        )
        assert "_WF_COMPLETE" in script.stdout and f"{shell}_complete" in script.stdout


def test_the_checkout_shim_says_how_to_install_what_is_missing(tmp_path: Path) -> None:
    """``python -I -S`` hides site-packages: as a Python without click and pluggy would be."""
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(REPO / "workflow.py"), "status", "@last"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "click and pluggy not installed" in done.stderr
    assert f"-m pip install -e {REPO}" in done.stderr
