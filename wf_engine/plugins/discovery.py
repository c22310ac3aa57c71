"""Installed plugins: the entry points of group ``wf_engine``, remembered between commands.

Asking ``importlib.metadata`` reads the metadata of every installed distribution (tens of
milliseconds), and whether a plugin adds ``wf`` subcommands is only known once it is imported.
Most commands fire no hook at all, so both answers are kept in a cache file, and a command
imports installed plugins before parsing its command line only if one of them adds commands (or
nothing is known about it yet). The others are imported when a hook is about to fire.

The cache, ``$XDG_CACHE_HOME/wf/plugins.json`` (else ``~/.cache/wf/plugins.json``;
``WF_PLUGIN_CACHE=0`` turns it off), holds for each interpreter and ``sys.path``:

* the entry points, with a digest of every ``*.dist-info`` and ``*.egg-info`` on ``sys.path``
  (names, mtimes of each folder and of its ``entry_points.txt``): when that changes (a package
  installed, upgraded, removed) the entry points are looked up again;
* each entry point's hooks, and the mtime of every module file its import loaded: when one of
  those files changes (an editable plugin being worked on), it is imported again up front.

It only ever saves time: a missing, corrupt, stale or unwritable cache changes no behaviour.

Imports neither pluggy nor ``importlib.metadata`` unless the cache cannot answer: ``wf --help``
imports this module.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import zlib
from collections.abc import Iterable
from typing import Any

GROUP = "wf_engine"
ADD_COMMANDS = "wf_add_cli_commands"
_FORMAT = 1
#: Environments (interpreter + ``sys.path``) the cache file remembers, the most recent ones.
_KEEP = 16
_DIST_SUFFIXES = (".dist-info", ".egg-info")


def split_names(value: str | None) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]`` (``$WF_PLUGINS``, ``$WF_DISABLED_PLUGINS``)."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def cache_path() -> str | None:
    """Where the cache lives, or None if it is turned off or there is no home to put it in."""
    if os.environ.get("WF_PLUGIN_CACHE", "") == "0":
        return None
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # unset, or relative (which the XDG spec says to ignore)
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "wf", "plugins.json") if os.path.isabs(base) else None


def tracing() -> bool:
    """``$WF_TRACE_PLUGINS`` is set (and not ``0``): every hook call is printed."""
    return os.environ.get("WF_TRACE_PLUGINS", "") not in ("", "0")


def load_before_parsing() -> bool:
    """Whether ``wf`` must load its plugins before it parses the command line.

    True when some plugin may add subcommands: ``$WF_PLUGINS`` names a module that is not blocked,
    or an installed entry point that is not blocked implements ``wf_add_cli_commands`` or is not
    known to the cache yet. True as well under ``$WF_TRACE_PLUGINS``, whose trace shows the
    ``wf_add_cli_commands`` call of every command.
    """
    if tracing():
        return True
    blocked = set(split_names(os.environ.get("WF_DISABLED_PLUGINS")))
    if any(name not in blocked for name in split_names(os.environ.get("WF_PLUGINS"))):
        return True
    installed = Installed.cached()
    if installed is None:
        return True
    return any(
        entry_point.name not in blocked and entry_point.may_add_commands()
        for entry_point in installed.entry_points
    )


def _mtime(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


class EntryPoint:
    """One entry point of group ``wf_engine``, with what the last command that loaded it saw.

    ``hooks`` is None until it is imported and registered (and stays None if it implements a hook
    without a spec: that error is reported by every command); ``files`` maps each module file its
    import loaded to its mtime then; ``broken``: it could not be imported (reported, and tried
    again, by the commands that load plugins).
    """

    __slots__ = ("broken", "files", "hooks", "name", "value")

    def __init__(
        self,
        name: str,
        value: str,
        hooks: list[str] | None = None,
        files: dict[str, int] | None = None,
        broken: bool = False,
    ) -> None:
        self.name = name
        self.value = value
        self.hooks = hooks
        self.files = files or {}
        self.broken = broken

    @property
    def module(self) -> str:
        return self.value.split("[", 1)[0].partition(":")[0].strip()

    def load(self) -> object:
        """Import the object, as ``importlib.metadata.EntryPoint.load`` does:
        ``module[:attr[.attr...]] [extras]`` (extras change nothing here)."""
        target: object = importlib.import_module(self.module)
        attrs = self.value.split("[", 1)[0].partition(":")[2].strip()
        for attr in filter(None, attrs.split(".")):
            target = getattr(target, attr)
        return target

    def known(self) -> bool:
        """It loaded, its hooks are known, and no module file it loaded has changed since."""
        return (
            not self.broken
            and self.hooks is not None
            and all(_mtime(path) == mtime for path, mtime in self.files.items())
        )

    def may_add_commands(self) -> bool:
        return not self.broken and (not self.known() or ADD_COMMANDS in (self.hooks or ()))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "hooks": self.hooks,
            "files": self.files,
            "broken": self.broken,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EntryPoint:
        name, value, hooks, files = data["name"], data["value"], data["hooks"], data["files"]
        broken = data["broken"]
        if not (isinstance(name, str) and isinstance(value, str) and isinstance(broken, bool)):
            raise TypeError("not an entry point")
        if hooks is not None and not (
            isinstance(hooks, list) and all(isinstance(hook, str) for hook in hooks)
        ):
            raise TypeError("not a list of hooks")
        if not all(isinstance(k, str) and isinstance(v, int) for k, v in files.items()):
            raise TypeError("not a map of files")
        return cls(name, value, None if hooks is None else list(hooks), dict(files), broken)


class Installed:
    """The entry points of group ``wf_engine`` for this interpreter and ``sys.path``."""

    def __init__(self, key: str, dists: str, entry_points: list[EntryPoint], fresh: bool) -> None:
        self.key = key
        self.dists = dists
        self.entry_points = entry_points
        #: False: to be written back (looked up anew, or something was learned).
        self.saved = fresh

    @classmethod
    def find(cls) -> Installed:
        """From the cache if it is up to date, else from ``importlib.metadata``."""
        cached = cls.cached()
        if cached is not None:
            return cached
        key, dists = _environment()
        from importlib import metadata  # slow: only when the installed set changed

        found = [EntryPoint(ep.name, ep.value) for ep in metadata.entry_points(group=GROUP)]
        return cls(key, dists, found, fresh=False)

    @classmethod
    def cached(cls) -> Installed | None:
        """The cached entry points, or None if there are none for what is installed now."""
        path = cache_path()
        if path is None:
            return None
        key, dists = _environment()
        record = _read(path).get(key)
        try:
            if not isinstance(record, dict) or record["dists"] != dists:
                return None
            entry_points = [EntryPoint.from_json(item) for item in record["entry_points"]]
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        return cls(key, dists, entry_points, fresh=True)

    def loaded(
        self, entry_point: EntryPoint, hooks: list[str] | None, modules: Iterable[str]
    ) -> None:
        """Note that ``entry_point`` was registered with ``hooks`` (None: one has no spec), its
        import having loaded ``modules``."""
        if entry_point.known() and entry_point.hooks == hooks:
            return  # nothing new (and the same files, whatever else was imported first this time)
        files: dict[str, int] = {}
        if hooks is not None:
            for name in {*modules, entry_point.module}:
                file = getattr(sys.modules.get(name), "__file__", None)
                if isinstance(file, str):
                    files[file] = _mtime(file)
        self._note(entry_point, hooks, files, broken=False)

    def failed(self, entry_point: EntryPoint) -> None:
        """Note that ``entry_point`` could not be imported."""
        self._note(entry_point, None, {}, broken=True)

    def _note(
        self, entry_point: EntryPoint, hooks: list[str] | None, files: dict[str, int], broken: bool
    ) -> None:
        before = entry_point.to_json()
        entry_point.hooks, entry_point.files, entry_point.broken = hooks, files, broken
        if entry_point.to_json() != before:
            self.saved = False

    def save(self) -> None:
        """Write what is known back to the cache, if anything is new; never fails."""
        path = cache_path()
        if self.saved or path is None:
            return
        environments = _read(path)
        environments.pop(self.key, None)
        environments[self.key] = {
            "dists": self.dists,
            "entry_points": [entry_point.to_json() for entry_point in self.entry_points],
        }
        kept = dict(list(environments.items())[-_KEEP:])
        text = json.dumps({"format": _FORMAT, "environments": kept}, separators=(",", ":"))
        temporary = f"{path}.{os.getpid()}.tmp"
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(fd, "w", encoding="utf-8") as file:
                file.write(text)
            os.replace(temporary, path)
        except (OSError, ValueError):  # read-only home, full disk, ...: stay uncached
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            return
        self.saved = True


def installed_digest() -> str:
    """A digest of the distributions installed on ``sys.path``: it changes when a package is
    installed, upgraded or removed (``pytest_wf``'s fork servers are keyed by it)."""
    return _environment()[1]


def _environment() -> tuple[str, str]:
    """The cache key: the interpreter and the folders of ``sys.path`` that hold distributions;
    and a digest of those distributions (names and mtimes)."""
    where: list[str] = []
    dists: list[str] = []
    for path in dict.fromkeys(
        os.path.abspath(p or os.curdir) for p in sys.path if isinstance(p, str)
    ):
        try:
            with os.scandir(path) as entries:
                names = sorted(
                    entry.name for entry in entries if entry.name.endswith(_DIST_SUFFIXES)
                )
        except NotADirectoryError:  # a zip file (an egg) on the path
            names = [""]
        except OSError:
            continue
        if names:
            where.append(path)
        for name in names:
            folder = os.path.join(path, name)
            entry_points = _mtime(os.path.join(folder, "entry_points.txt")) if name else -1
            dists.append(f"{folder}\0{_mtime(folder)}\0{entry_points}")
    digest = zlib.crc32("\n".join(dists).encode("utf-8", "surrogateescape"))
    return "\n".join([sys.executable, *where]), f"{len(dists)}-{digest:08x}"


def _read(path: str) -> dict[str, Any]:
    """The environments in the cache file; empty if it is missing, unreadable or not ours."""
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        return {}
    environments = data.get("environments")
    return environments if isinstance(environments, dict) else {}
