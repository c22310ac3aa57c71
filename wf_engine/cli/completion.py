"""``wf completion bash|zsh|fish``: the script that makes the shell complete ``wf``.

Completion itself is click's (``_WF_COMPLETE=<shell>_complete wf``): commands and options from
the command definitions, file names where a file is expected (the shell's own file completion,
left intact), run ids (newest first, and ``@last``) and step names from the run store
(``wf_engine.cli.runids``).
"""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

SETUP = {
    "bash": 'eval "$(wf completion bash)"   # in ~/.bashrc (bash 4.4 or later)',
    "zsh": 'eval "$(wf completion zsh)"    # in ~/.zshrc, after compinit',
    "fish": "wf completion fish > ~/.config/fish/completions/wf.fish",
}


@click.command(
    "completion",
    epilog="\b\nExamples (set up once):\n" + "\n".join(f"  {line}" for line in SETUP.values()),
)
@click.argument("shell", type=click.Choice(sorted(SETUP)))
def completion_command(shell: str) -> None:
    """Print the shell completion script for SHELL (bash, zsh or fish)."""
    from wf_engine.cli import cli

    completer = get_completion_class(shell)
    assert completer is not None  # every choice has one
    click.echo(completer(cli, {}, "wf", "_WF_COMPLETE").source())
