"""``wf_add_cli_commands``: add ``wf hello`` (load it with ``$WF_PLUGINS``, not ``-p``)."""

from __future__ import annotations

import click

from wf_engine import hookimpl


@click.command("hello")
@click.argument("name", default="world")
def hello(name: str) -> None:
    """Say hello (added by a plugin)."""
    click.echo(f"hello, {name}, from a plugin")


@hookimpl
def wf_add_cli_commands(cli: click.Group) -> None:
    cli.add_command(hello)
