"""The plugin manager: built in one place, called only through typed facade methods.

Load order (``Plugins.load``): hook specs, then plugins named in ``WF_DISABLED_PLUGINS`` are
blocked, then entry points of group ``wf_engine`` (listed by ``discovery``, which remembers them
between commands), then ``$WF_PLUGINS`` and ``-p MODULE`` (both comma-separated module names),
then the engine's own internal plugins. An implementation of a hook that does not exist is
refused (exit 2). ``WF_TRACE_PLUGINS=1`` prints every hook call.

Engine code never calls the untyped ``pm.hook``: it calls ``plugins.step_transition(...)`` and
the like. No plugin can change a run's outcome:

* each (non-wrapper) implementation is guarded when registered: whatever it raises, down to
  ``SystemExit`` and ``KeyboardInterrupt``, is reported and swallowed, and the other plugins
  still get the call;
* each facade method also catches what escapes the whole hook call (a raising wrapper);
* the one deliberate exception: an ``OSError`` from the log hooks propagates, as a failed write
  or fsync would (that is how fault injection models a failing disk);
* a failure is reported once per plugin and hook; repeats are only counted, and
  ``report_suppressed`` prints their count at the end;
* values the engine takes back from plugins (``wf_step_command``'s argv, ``wf_step_env``'s
  changes) are checked, and a bad one raises ``BadHookValue`` for the runner to fail the attempt;
* plugins get their own copy of each record, so one that mutates ``event`` changes nothing.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import traceback
import warnings
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import pluggy

from wf_engine.errors import UsageError
from wf_engine.plugins import hookspecs
from wf_engine.plugins.discovery import Installed, split_names, tracing

if TYPE_CHECKING:  # an annotation only: the CLI layer alone imports click
    import click

hookimpl = pluggy.HookimplMarker(hookspecs.PROJECT_NAME)

#: Exceptions a hook's implementations may raise on purpose, through every guard: an ``OSError``
#: in the log hooks is a failing disk (``fault_injection``), and the runner must stop on it.
PROPAGATED: dict[str, tuple[type[BaseException], ...]] = {
    "wf_log_before_write": (OSError,),
    "wf_log_before_sync": (OSError,),
}


class BadHookValue(Exception):
    """A hook handed the engine a value it cannot use (an argv or environment it cannot exec).

    Raised by ``Plugins.step_command`` and ``Plugins.step_env``; the runner turns it into a failed
    attempt (reason ``spawn_error``, this message as the record's ``error``), so a bad plugin
    fails one step the way a missing executable would, instead of stopping the run.
    """


def _emit(text: str) -> None:
    """One line on stderr; a reporter must never fail, even if stderr is closed or a dead pipe."""
    if sys.stderr is not None:  # None when wf started with fd 2 closed (outside the CLI)
        with contextlib.suppress(OSError, ValueError):
            print(text, file=sys.stderr, flush=True)


class Plugins:
    """A loaded set of plugins with typed methods for every hook the engine fires."""

    def __init__(self, manager: pluggy.PluginManager, trace: bool = False) -> None:
        self.manager = manager
        self.modules: list[str] = []
        self.trace = trace
        #: (plugin name or None if unknown, hook) -> failures so far; only the first is printed.
        self.failures: dict[tuple[str | None, str], int] = {}
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
        for name in split_names(os.environ.get("WF_DISABLED_PLUGINS")):
            manager.set_blocked(name)
        if entry_points:
            _load_entry_points(manager)
        register_modules(manager, [*split_names(os.environ.get("WF_PLUGINS")), *modules])
        for name, plugin in internal:
            if not manager.is_blocked(name):
                manager.register(plugin, name=name)
        _check_pending(manager)
        # The facade reports a raising old-style wrapper itself; pluggy's warning would repeat it.
        warnings.filterwarnings("ignore", category=pluggy.PluggyTeardownRaisedWarning)
        plugins = cls(manager, trace=tracing())
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
        """Wrap every not-yet-guarded (non-wrapper) implementation of every hook (idempotent)."""
        for caller in vars(self.manager.hook).values():
            # Any: pluggy types HookImpl.function Final, and rebinding it is what guards it.
            impls: list[Any] = caller.get_hookimpls()
            for impl in impls:
                if not (impl.wrapper or impl.hookwrapper or hasattr(impl.function, "__wf_guard__")):
                    impl.function = self._guarded(impl.plugin_name, caller.name, impl.function)

    def _guarded(self, plugin: str, hook: str, function: Any) -> Any:
        propagated = PROPAGATED.get(hook, ())

        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            except propagated:
                raise
            except BaseException as exc:  # even SystemExit: a plugin must never end the run
                self._report(plugin, hook, exc)
                return None

        guarded.__wf_guard__ = True  # type: ignore[attr-defined]
        return guarded

    def _call(self, hook: str, **kwargs: Any) -> Any:
        """Call ``hook``; what escapes it (a raising wrapper) is reported, and the call is None."""
        try:
            return getattr(self.manager.hook, hook)(**kwargs)
        except PROPAGATED.get(hook, ()):
            raise
        except BaseException as exc:
            self._report(self._culprit(hook, exc.__traceback__), hook, exc)
            return None

    def _culprit(self, hook: str, trace: TracebackType | None) -> str | None:
        """The plugin whose implementation of ``hook`` raised, from the innermost frame of one."""
        owners = {
            impl.function.__code__: impl.plugin_name
            for impl in getattr(self.manager.hook, hook).get_hookimpls()
            if hasattr(impl.function, "__code__") and not hasattr(impl.function, "__wf_guard__")
        }
        culprit = None
        for frame, _ in traceback.walk_tb(trace):
            culprit = owners.get(frame.f_code, culprit)
        return culprit

    def _report(self, plugin: str | None, hook: str, error: BaseException) -> None:
        """Say that ``plugin`` failed in ``hook``, the first time only; count the repeats."""
        key = (plugin, hook)
        self.failures[key] = self.failures.get(key, 0) + 1
        if self.failures[key] > 1:
            return
        who = "a plugin" if plugin is None else f"plugin {plugin!r}"
        _emit(f"wf: {who} failed in {hook}: {_describe(error)}")
        if self.trace:
            _emit("".join(traceback.format_exception(error)).rstrip("\n"))

    def report_suppressed(self) -> None:
        """One line counting the failures not printed; call once, when the command ends."""
        repeats = [
            f"{'a plugin' if plugin is None else repr(plugin)} in {hook} {count - 1} more"
            for (plugin, hook), count in sorted(self.failures.items(), key=str)
            if count > 1
        ]
        if repeats:
            _emit(f"wf: plugin failures not shown above: {', '.join(repeats)}")
        self.failures = dict.fromkeys(self.failures, 1)

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
        self._call(
            "wf_run_started", run_id=run_id, run_dir=run_dir, workflow=workflow, resumed=resumed
        )

    def event_appended(self, run_id: str, record: dict[str, Any]) -> None:
        kind = record["type"]
        specific = (
            "wf_step_transition"
            if kind == "step"
            else "wf_run_finished"
            if kind == "run_finished"
            else None
        )
        appended = self._listening("wf_event_appended")
        if not appended and (specific is None or not self._listening(specific)):
            return  # nobody listens: no copy, no call (this runs for every record)
        event = dict(record)  # the plugins' copy: the engine keeps reading its own
        if appended:
            self._call("wf_event_appended", run_id=run_id, event=event)
        if kind == "step":
            self._call(
                "wf_step_transition",
                run_id=run_id,
                event=event,
                step=record["step"],
                from_state=record["from"],
                to_state=record["to"],
            )
        elif kind == "run_finished":
            self._call("wf_run_finished", run_id=run_id, event=event, state=record["state"])

    def step_env(self, run_id: str, step: str, attempt: int, env: dict[str, str]) -> None:
        """Let plugins change ``env``; raises ``BadHookValue`` if a change cannot be exec'd."""
        if not self._listening("wf_step_env"):
            return
        before = dict(env)
        self._call("wf_step_env", run_id=run_id, step=step, attempt=attempt, env=env)
        for name, value in env.items():
            if before.get(name, _MISSING) is not value:
                _check_variable(name, value)

    def step_command(self, run_id: str, step: str, attempt: int, argv: list[str]) -> list[str]:
        """The argv a plugin answered, else ``argv``; raises ``BadHookValue`` if it is unusable."""
        if not self._listening("wf_step_command"):
            return argv
        result = self._call(
            "wf_step_command", run_id=run_id, step=step, attempt=attempt, argv=list(argv)
        )
        return argv if result is None else _checked_argv(result)

    def add_cli_commands(self, cli: click.Group) -> None:
        self._call("wf_add_cli_commands", cli=cli)

    def log_before_write(self, run_id: str, events: list[dict[str, Any]]) -> None:
        self._call("wf_log_before_write", run_id=run_id, events=events)

    def log_before_sync(self, run_id: str, events: list[dict[str, Any]]) -> None:
        self._call("wf_log_before_sync", run_id=run_id, events=events)

    def _listening(self, hook: str) -> bool:
        """Whether calling ``hook`` can matter: someone implements it, or calls are traced."""
        return self.trace or self.has_impls(hook)

    def has_impls(self, hook: str) -> bool:
        """Whether any plugin implements ``hook`` (asked per call: plugins may register late)."""
        return bool(getattr(self.manager.hook, hook).get_hookimpls())


# -- checking what hooks hand back ----------------------------------------------------------

_MISSING = object()


def _text_problem(value: object) -> str | None:
    """Why ``value`` cannot be an argument or variable of ``execve`` (None if it can)."""
    if not isinstance(value, str):
        return f" ({type(value).__name__}), not a string"
    if "\0" in value:
        return ", which contains a NUL character"
    try:
        os.fsencode(value)
    except UnicodeEncodeError as exc:
        return f", which cannot be encoded ({exc.reason})"
    return None


def _name_problem(name: object) -> str | None:
    """Why ``name`` cannot be an environment variable's name (None if it can)."""
    if name == "":
        return ", which is empty"
    if isinstance(name, str) and "=" in name:
        return ", which contains '='"
    return _text_problem(name)


def _check_variable(name: object, value: object) -> None:
    name_problem = _name_problem(name)
    if name_problem is not None:
        raise BadHookValue(f"wf_step_env added the variable name {_short(name)}{name_problem}")
    value_problem = _text_problem(value)
    if value_problem is not None:
        raise BadHookValue(f"wf_step_env set env[{_short(name)}] to {_short(value)}{value_problem}")


def _checked_argv(result: object) -> list[str]:
    if not isinstance(result, list) or not result:
        kind = "an empty list" if isinstance(result, list) else type(result).__name__
        raise BadHookValue(
            f"wf_step_command returned {_short(result)} ({kind}), not a non-empty list of strings"
        )
    for index, part in enumerate(result):
        problem = _text_problem(part)
        if problem is not None:
            raise BadHookValue(f"wf_step_command returned argv[{index}] = {_short(part)}{problem}")
    return result


# -- loading and tracing --------------------------------------------------------------------


def _trace_before(
    hook_name: str, impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]
) -> None:
    shown = ", ".join(f"{key}={_short(value)}" for key, value in kwargs.items())
    names = ", ".join(impl.plugin_name for impl in reversed(impls)) or "(no plugin)"
    _emit(f"wf-trace: {hook_name}({shown}) -> {names}")


def _check_pending(manager: pluggy.PluginManager) -> None:
    """Refuse implementations of hooks that do not exist (a typo would never be called)."""
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        raise UsageError(f"invalid plugin: {exc}") from exc


def _describe(error: BaseException) -> str:
    """``ExcType: message``, or ``ExcType`` alone (``KeyboardInterrupt()``, a broken str)."""
    try:
        message = str(error)
    except Exception:
        message = ""
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _short(value: object) -> str:
    """``repr(value)``, cut to 80 characters (a plugin's value may be huge, or its repr broken)."""
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."


def _load_entry_points(manager: pluggy.PluginManager) -> None:
    """Register the installed plugins (entry points of group ``wf_engine``), noting the hooks
    each implements for the next command (``wf_engine.plugins.discovery``)."""
    installed = Installed.find()
    for entry_point in installed.entry_points:
        if manager.is_blocked(entry_point.name) or manager.get_plugin(entry_point.name):
            continue
        before = set(sys.modules)
        try:
            plugin = entry_point.load()
        except Exception as exc:  # a broken installed plugin must not break wf itself
            print(
                f"wf: cannot load plugin {entry_point.name!r} ({entry_point.value}): {exc}",
                file=sys.stderr,
            )
            installed.failed(entry_point)
            continue
        manager.register(plugin, name=entry_point.name)
        callers = manager.get_hookcallers(plugin) or []
        # A hook without a spec (a typo, refused below) is to be reported by every command.
        hooks = None if any(c.spec is None for c in callers) else sorted(c.name for c in callers)
        installed.loaded(entry_point, hooks, set(sys.modules) - before)
    installed.save()


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
