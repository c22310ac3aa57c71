"""The plugin manager: built in one place, called only through typed facade methods.

Load order (``Plugins.load``): hook specs, then plugins named in ``WF_DISABLED_PLUGINS`` are
blocked, then entry points of group ``wf_engine``, then ``$WF_PLUGINS`` and ``-p MODULE`` (both
comma-separated module names), then the engine's own internal plugins. An implementation of a
hook that does not exist is refused (exit 2). ``WF_TRACE_PLUGINS=1`` prints every hook call.

Engine code never calls the untyped ``pm.hook``: it calls ``plugins.step_transition(...)`` and
the like. Each (non-wrapper) implementation of the protected hooks is guarded when registered:
one that raises is reported and skipped, and the other plugins still get the call. Plugins get
their own copy of each record, so one that mutates ``event`` cannot change what the engine does.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Iterable, Mapping, Sequence
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


#: Hooks whose implementations are guarded; the log hooks deliberately let errors through.
GUARDED_HOOKS = frozenset(
    {
        "wf_run_started",
        "wf_event_appended",
        "wf_step_transition",
        "wf_run_finished",
        "wf_step_env",
        "wf_step_command",
        "wf_add_cli_commands",
    }
)


class Plugins:
    """A loaded set of plugins with typed methods for every hook the engine fires."""

    def __init__(self, manager: pluggy.PluginManager, trace: bool = False) -> None:
        self.manager = manager
        self.failures: list[HookFailure] = []
        self.modules: list[str] = []
        if trace:
            manager.add_hookcall_monitoring(_trace_before, lambda *args: None)
        self.guard()

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
        _check_pending(manager)
        plugins = cls(manager, trace=os.environ.get("WF_TRACE_PLUGINS", "") not in ("", "0"))
        plugins.modules.extend(modules)
        return plugins

    def add_modules(self, modules: Sequence[str]) -> None:
        """Register ``-p`` modules after loading (they are remembered for ``--detach``)."""
        register_modules(self.manager, modules)
        _check_pending(self.manager)
        self.modules.extend(m for m in modules if m not in self.modules)
        self.guard()

    def register(self, plugin: object, name: str) -> None:
        if not self.manager.is_blocked(name) and not self.manager.has_plugin(name):
            self.manager.register(plugin, name=name)
            self.guard()

    def guard(self) -> None:
        """Wrap every not-yet-guarded implementation of a protected hook (idempotent)."""
        for hook in GUARDED_HOOKS:
            for impl in getattr(self.manager.hook, hook).get_hookimpls():
                if not (impl.wrapper or impl.hookwrapper or hasattr(impl.function, "__wf_guard__")):
                    impl.function = self._guarded(impl.plugin_name, hook, impl.function)

    def _guarded(self, plugin: str, hook: str, function: Any) -> Any:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            except Exception as exc:  # a plugin must never break the run
                self.failures.append(HookFailure(plugin, hook, exc))
                print(
                    f"wf: plugin {plugin!r} failed in {hook}: {type(exc).__name__}: {exc}",
                    file=sys.stderr,
                    flush=True,
                )
                if os.environ.get("WF_TRACE_PLUGINS", "") not in ("", "0"):
                    traceback.print_exc()
                return None

        guarded.__wf_guard__ = True  # type: ignore[attr-defined]
        return guarded

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
        self.manager.hook.wf_run_started(
            run_id=run_id, run_dir=run_dir, workflow=workflow, resumed=resumed
        )

    def event_appended(self, run_id: str, record: dict[str, Any]) -> None:
        event = dict(record)  # the plugins' copy: the engine keeps reading its own
        hook = self.manager.hook
        hook.wf_event_appended(run_id=run_id, event=event)
        if event["type"] == "step":
            hook.wf_step_transition(
                run_id=run_id,
                event=event,
                step=record["step"],
                from_state=record["from"],
                to_state=record["to"],
            )
        elif event["type"] == "run_finished":
            hook.wf_run_finished(run_id=run_id, event=event, state=record["state"])

    def step_env(self, run_id: str, step: str, attempt: int, env: dict[str, str]) -> None:
        self.manager.hook.wf_step_env(run_id=run_id, step=step, attempt=attempt, env=env)

    def step_command(self, run_id: str, step: str, attempt: int, argv: list[str]) -> list[str]:
        result = self.manager.hook.wf_step_command(
            run_id=run_id, step=step, attempt=attempt, argv=list(argv)
        )
        if isinstance(result, list) and result and all(isinstance(p, str) for p in result):
            return result
        return argv

    def add_cli_commands(self, cli: click.Group) -> None:
        self.manager.hook.wf_add_cli_commands(cli=cli)

    def log_before_write(self, run_id: str, events: list[dict[str, Any]]) -> None:
        self.manager.hook.wf_log_before_write(run_id=run_id, events=events)

    def log_before_sync(self, run_id: str, events: list[dict[str, Any]]) -> None:
        self.manager.hook.wf_log_before_sync(run_id=run_id, events=events)

    def has_impls(self, hook: str) -> bool:
        return bool(getattr(self.manager.hook, hook).get_hookimpls())


def _trace_before(
    hook_name: str, impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]
) -> None:
    shown = ", ".join(f"{key}={_short(value)}" for key, value in kwargs.items())
    names = ", ".join(impl.plugin_name for impl in reversed(impls)) or "(no plugin)"
    print(f"wf-trace: {hook_name}({shown}) -> {names}", file=sys.stderr, flush=True)


def _check_pending(manager: pluggy.PluginManager) -> None:
    """Refuse implementations of hooks that do not exist (a typo would never be called)."""
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        raise UsageError(f"invalid plugin: {exc}") from exc


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
        if manager.is_registered(module):
            continue  # already loaded, e.g. through its entry point
        try:
            manager.register(module, name=module_name)
        except pluggy.PluginValidationError as exc:
            raise UsageError(f"plugin {module_name!r} is invalid: {exc}") from exc
