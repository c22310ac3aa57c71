"""The plugin manager: built in one place, called only through typed facade methods.

Load order (``Plugins.load``): hook specs, then plugins named in ``WF_DISABLED_PLUGINS`` are
blocked, then entry points of group ``wf_engine``, then ``$WF_PLUGINS`` and ``-p MODULE`` (both
comma-separated module names), then the engine's own internal plugins. ``WF_TRACE_PLUGINS=1``
prints every hook call to stderr.

Engine code never calls the untyped ``pm.hook``: it calls ``plugins.step_transition(...)`` and the
like, and each notification reaches every implementation on its own, so a plugin that raises is
reported and skipped without hiding the event from the others.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import click
import pluggy

from wf_engine import hookspecs
from wf_engine.errors import UsageError

hookimpl = pluggy.HookimplMarker(hookspecs.PROJECT_NAME)
ENTRY_POINT_GROUP = "wf_engine"


@dataclass(frozen=True, slots=True)
class HookFailure:
    plugin: str
    hook: str
    error: BaseException


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


class Plugins:
    """A loaded set of plugins with typed methods for every hook the engine fires."""

    def __init__(self, manager: pluggy.PluginManager, trace: bool = False) -> None:
        self.manager = manager
        self.trace = trace
        self.failures: list[HookFailure] = []

    @classmethod
    def load(
        cls,
        modules: Sequence[str] = (),
        internal: Iterable[tuple[str, object]] = (),
        *,
        entry_points: bool = True,
    ) -> Plugins:
        manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        manager.add_hookspecs(hookspecs)
        for name in _split(os.environ.get("WF_DISABLED_PLUGINS")):
            manager.set_blocked(name)
        if entry_points:
            _load_entry_points(manager)
        register_modules(manager, [*_split(os.environ.get("WF_PLUGINS")), *modules])
        for name, plugin in internal:
            if not manager.is_blocked(name):
                manager.register(plugin, name=name)
        return cls(manager, trace=os.environ.get("WF_TRACE_PLUGINS", "") not in ("", "0"))

    def describe(self) -> list[tuple[str, list[str]]]:
        """Each loaded plugin's name with the hooks it implements (for ``wf plugins``)."""
        rows = []
        for name, plugin in sorted(self.manager.list_name_plugin(), key=lambda item: item[0]):
            if plugin is None:
                continue
            callers = self.manager.get_hookcallers(plugin) or []
            rows.append((name, sorted(caller.name for caller in callers)))
        return rows

    # -- facade: one typed method per hook -------------------------------------------------

    def run_started(
        self, run_id: str, run_dir: str, workflow: dict[str, Any], resumed: bool
    ) -> None:
        self._notify(
            "wf_run_started", run_id=run_id, run_dir=run_dir, workflow=workflow, resumed=resumed
        )

    def event_appended(self, run_id: str, event: dict[str, Any]) -> None:
        self._notify("wf_event_appended", run_id=run_id, event=event)
        if event["type"] == "step":
            self._notify(
                "wf_step_transition",
                run_id=run_id,
                event=event,
                step=event["step"],
                from_state=event["from"],
                to_state=event["to"],
            )
        elif event["type"] == "run_finished":
            self._notify("wf_run_finished", run_id=run_id, event=event, state=event["state"])

    def step_env(self, run_id: str, step: str, attempt: int, env: dict[str, str]) -> None:
        self._notify("wf_step_env", run_id=run_id, step=step, attempt=attempt, env=env)

    def step_command(self, run_id: str, step: str, attempt: int, argv: list[str]) -> list[str]:
        kwargs = {"run_id": run_id, "step": step, "attempt": attempt, "argv": list(argv)}
        for name, impl in self._impls("wf_step_command"):
            result = self._call(name, "wf_step_command", impl, kwargs)
            if isinstance(result, list) and all(isinstance(part, str) for part in result):
                return result
        return argv

    def add_cli_commands(self, cli: click.Group) -> None:
        self._notify("wf_add_cli_commands", cli=cli)

    def log_before_write(self, run_id: str, events: list[dict[str, Any]]) -> None:
        self.manager.hook.wf_log_before_write(run_id=run_id, events=events)

    def log_before_sync(self, run_id: str, events: list[dict[str, Any]]) -> None:
        self.manager.hook.wf_log_before_sync(run_id=run_id, events=events)

    def has_impls(self, hook: str) -> bool:
        return bool(getattr(self.manager.hook, hook).get_hookimpls())

    # -- isolation ---------------------------------------------------------------------------

    def _impls(self, hook: str) -> list[tuple[str, pluggy.HookImpl]]:
        # pluggy calls the last registered implementation first; keep its order.
        impls = getattr(self.manager.hook, hook).get_hookimpls()
        return [(impl.plugin_name, impl) for impl in reversed(impls)]

    def _notify(self, hook: str, **kwargs: Any) -> None:
        for name, impl in self._impls(hook):
            self._call(name, hook, impl, kwargs)

    def _call(self, name: str, hook: str, impl: pluggy.HookImpl, kwargs: dict[str, Any]) -> Any:
        if self.trace:
            shown = ", ".join(f"{key}={_short(value)}" for key, value in kwargs.items())
            print(f"wf-trace: {hook}({shown}) -> {name}", file=sys.stderr, flush=True)
        try:
            return impl.function(*(kwargs[arg] for arg in impl.argnames))
        except Exception as exc:  # a plugin must never break the run
            self.failures.append(HookFailure(name, hook, exc))
            print(
                f"wf: plugin {name!r} failed in {hook}: {type(exc).__name__}: {exc}",
                file=sys.stderr,
                flush=True,
            )
            if self.trace:
                traceback.print_exc()
            return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _load_entry_points(manager: pluggy.PluginManager) -> None:
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if manager.is_blocked(entry_point.name) or manager.get_plugin(entry_point.name):
            continue
        try:
            plugin = entry_point.load()
        except Exception as exc:  # a broken installed plugin must not break wf itself
            print(
                f"wf: cannot load plugin {entry_point.name!r} ({entry_point.value}): {exc}",
                file=sys.stderr,
            )
            continue
        manager.register(plugin, name=entry_point.name)


def register_modules(manager: pluggy.PluginManager, module_names: Iterable[str]) -> None:
    """Import and register plugin modules by name (``-p`` and ``$WF_PLUGINS``); exit 2 if bad."""
    for module_name in module_names:
        if manager.is_blocked(module_name) or manager.get_plugin(module_name):
            continue
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise UsageError(f"cannot load plugin module {module_name!r}: {exc}") from exc
        try:
            manager.register(module, name=module_name)
        except pluggy.PluginValidationError as exc:
            raise UsageError(f"plugin {module_name!r} is invalid: {exc}") from exc
