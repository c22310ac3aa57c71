"""``wf plugins``: which plugins are loaded and which hooks each implements."""

from __future__ import annotations

import click

from wf_engine.cli.context import CliContext, plugin_option


@click.command(
    "plugins",
    epilog="""\b
Examples:
  wf plugins
  WF_PLUGINS=my_plugin wf plugins -p another_plugin""",
)
@plugin_option
@click.pass_obj
def plugins_command(obj: CliContext, plugin_modules: tuple[str, ...]) -> None:
    """List loaded plugins (entry points, $WF_PLUGINS, -p, internal) and their hooks."""
    plugins = obj.plugins_for_run(plugin_modules, progress=True)
    for name, hooks in plugins.describe():
        click.echo(f"{name}: {', '.join(hooks) if hooks else '(no hooks)'}")
