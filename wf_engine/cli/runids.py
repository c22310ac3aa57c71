"""Run ids and step names as people type them: unique prefixes, ``@last``, "did you mean".

Wherever a command takes a RUN_ID (``RUN_ID`` below, a click parameter type), the text given is
resolved against the run store, in this order:

1. ``@last``: the newest run in the home (by the time its log was created);
2. an exact run id;
3. a prefix that exactly one run id starts with (``wf status image_p``); a prefix shared by
   several runs is refused, listing them, newest first;
4. anything else is refused with the closest ids as "did you mean" (exit 2).

The same type completes run ids in the shell, newest first, and ``STEP`` completes the step
names of the run named before it. Reading the store costs one ``scandir`` and, for ``@last``
and for completion, the first bytes of each log (where ``run_created`` holds its ``ts``).
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import click
from click.shell_completion import CompletionItem

from wf_engine.errors import RunNotFound, UsageError, WfError

if TYPE_CHECKING:
    from wf_engine.runtime.store import RunStore

    #: click 8.4 makes ``ParamType`` generic in the value it converts to; older ones do not.
    StrParam = click.ParamType[str]
else:
    StrParam = click.ParamType

LAST = "@last"
#: ``ctx.meta`` key of a ``--home`` given after the subcommand (see ``wf_engine.cli``).
HOME_META = "wf.home"
_TS = re.compile(rb'"ts":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)"')


def close_matches(word: str, names: Iterable[str], n: int = 3) -> list[str]:
    """The names closest to ``word``: whole names, then names whose beginning looks like it
    (so a mistyped prefix of a long run id still finds it)."""
    pool = list(dict.fromkeys(names))
    found = difflib.get_close_matches(word, pool, n=n, cutoff=0.6)
    if len(found) < n and word:
        heads: dict[str, str] = {}
        for name in pool:
            heads.setdefault(name[: len(word)], name)
        for head in difflib.get_close_matches(word, list(heads), n=n, cutoff=0.6):
            if heads[head] not in found:
                found.append(heads[head])
    return found[:n]


def did_you_mean(word: str, names: Iterable[str]) -> str:
    """``"; did you mean 'a' or 'b'?"``, or "" when nothing is close."""
    found = close_matches(word, names)
    if not found:
        return ""
    quoted = [f"'{name}'" for name in found]
    listed = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
    return f"; did you mean {listed}?"


def created_us(store: RunStore, run_id: str) -> int:
    """When ``run_id`` was created (``ts`` of its first record, in µs), cheaply: only the first
    bytes of the log are read. A log whose head says nothing falls back to the folder's mtime."""
    from wf_engine.core.clock import from_iso
    from wf_engine.log.storefiles import open_regular

    paths = store.paths(run_id)
    try:
        with open_regular(paths.events) as log:
            head = log.read(512)
        found = _TS.search(head)
        if found is not None:
            return from_iso(found.group(1).decode())
    except (OSError, ValueError, WfError):
        pass  # an unreadable run still has a place in the order
    try:
        return os.stat(paths.root).st_mtime_ns // 1000
    except OSError:
        return 0


def newest_first(store: RunStore) -> list[str]:
    """Every run id in the store, the newest first (ties: by id)."""
    ids = store.run_ids()
    created = {run_id: created_us(store, run_id) for run_id in ids}
    return sorted(ids, key=lambda run_id: (-created[run_id], run_id))


def resolve(store: RunStore, text: str) -> str:
    """The run id ``text`` names (see the module docstring), or a ``UsageError`` saying why not."""
    from wf_engine.runtime.store import check_run_id

    if text.lower() in (LAST, "@latest"):
        ids = newest_first(store)
        if not ids:
            raise UsageError(f"no runs in {store.home} yet, so no {LAST}")
        return ids[0]
    if text.startswith("@"):
        raise UsageError(f"unknown run name {text!r}; did you mean '{LAST}'?")
    check_run_id(text)
    if store.exists(text):
        return text
    ids = store.run_ids()
    matches = [run_id for run_id in ids if run_id.startswith(text)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        ordered = sorted(matches, key=lambda run_id: -created_us(store, run_id))
        more = f" and {len(ordered) - 5} more" if len(ordered) > 5 else ""
        shown = ", ".join(ordered[:5]) + more
        raise UsageError(f"run id prefix {text!r} is ambiguous: {shown}")
    error = RunNotFound(text, store.home)
    error.args = (f"{error}{did_you_mean(text, ids)}",)
    raise error


def unknown_step(run_id: str, step: str, names: Sequence[str]) -> UsageError:
    """The error for a step ``run_id`` does not have, with the closest names."""
    return UsageError(f"run {run_id!r} has no step {step!r}{did_you_mean(step, names)}")


# -- click ---------------------------------------------------------------------------------------


def store_for(ctx: click.Context) -> RunStore:
    """The run store of this command line: the ``CliContext``'s, else (shell completion, where
    no command runs) the one ``--home`` names, wherever it was given."""
    from wf_engine.cli.context import CliContext
    from wf_engine.runtime.store import RunStore

    obj = ctx.find_object(CliContext)
    if obj is not None:
        return obj.store
    home = ctx.meta.get(HOME_META)
    if home is None:
        home = ctx.find_root().params.get("home")
    return RunStore(home)


class RunIdType(StrParam):
    """A RUN_ID: resolved to the full id of one run of the store (prefix, ``@last``)."""

    name = "run_id"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if ctx is None:
            return text
        return resolve(store_for(ctx), text)

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        try:
            ids = newest_first(store_for(ctx))
        except (OSError, WfError):
            return []
        found = [CompletionItem(run_id) for run_id in ids if run_id.startswith(incomplete)]
        if incomplete.startswith("@") or not incomplete:
            found.append(CompletionItem(LAST, help="the newest run"))
        return found


class StepType(StrParam):
    """A STEP of the run named by the ``run_id`` parameter (checked by the command itself)."""

    name = "step"

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        run_id = ctx.params.get("run_id")
        if not isinstance(run_id, str):
            return []
        try:
            names = step_names(store_for(ctx), run_id)
        except (OSError, ValueError, KeyError, TypeError, WfError):
            return []
        return [CompletionItem(name) for name in names if name.startswith(incomplete)]


def step_names(store: RunStore, run_id: str) -> list[str]:
    """The step ids of ``run_id``, from its first record alone (for completion: no fold)."""
    from wf_engine.log.storefiles import open_regular

    with open_regular(store.paths(run_id).events) as log:
        first = json.loads(log.readline())
    return [str(step["id"]) for step in first["workflow"]["steps"]]


RUN_ID = RunIdType()
STEP = StepType()
