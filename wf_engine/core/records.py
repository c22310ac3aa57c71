"""What each record type must hold before a reader may use it: one table, checked per record.

A line whose checksum holds was written exactly as it is, so a member that is missing or of the
wrong JSON type is never a crash trace: it is corruption (or a hand-forged line), and the reader
must say so instead of tracing back deep inside the fold, a renderer or ``replay --verify``.
``SCHEMAS`` lists every member a reader uses, per record type, and the kind of JSON value it
must hold; members not listed are allowed and ignored (forward compatibility). The codec
(``wf_engine.core.events.decode``) checks every record against it before building an event, so
this table is the only description of a record's shape. Whether a value makes *sense* (a known
step, a legal transition, the right attempt number) is the fold's job, not this module's.

Checking is cheap on purpose (``wf status`` reads whole logs). Each ``Schema`` compiles its
table, once, into a fast test, ``Schema.holds``: per member one ``dict.get`` and an exact-type
test (``type(value)``: ``True`` is never a number), straight-line; only constrained kinds (a
count, a pid, a time) call a function. A record the fast test does not vouch for is checked
member by member (``check_members``), which names what is wrong. The envelope ``ts`` is parsed
once per commit batch, since every record of a batch carries the same string.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wf_engine.core import clock
from wf_engine.core.model import MAX_SECONDS
from wf_engine.errors import MalformedRecord

Record = dict[str, Any]

#: Stands in for a member that is not there at all (``null`` is a value).
_MISSING: Any = object()
#: Times in the log are wall-clock times of a real run: from the epoch to well before the year
#: 9999 where ``datetime`` ends, so that a reader adding a retry delay (``replay --verify``) or
#: rendering a duration can never leave the range ``clock`` can spell.
_TIME_END = clock.from_iso("9000-01-01T00:00:00.000000Z")
#: pid_t is a signed 32-bit integer: a larger "pid" cannot name a process (os.kill overflows).
_PID_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Kind:
    """A kind of JSON value: its exact Python types after parsing, and a constraint if any."""

    what: str
    types: tuple[type, ...]
    constraint: Callable[[Any], bool] | None = None

    def accepts(self, value: Any) -> bool:
        return type(value) in self.types and (self.constraint is None or self.constraint(value))


def _finite(value: float) -> bool:
    if type(value) is float:
        return math.isfinite(value)
    # An int: compared exactly, even past what a float holds (``float()`` would overflow).
    return -sys.float_info.max <= value <= sys.float_info.max


def _grace(value: float | None) -> bool:
    """What the engine itself writes: ``wf cancel --grace`` takes 0 to ``MAX_SECONDS``."""
    return value is None or 0 <= value <= MAX_SECONDS


def _time(value: str) -> bool:
    try:
        return 0 <= clock.from_iso(value) < _TIME_END
    except ValueError:
        return False


_NULL = type(None)
STR = Kind("a string", (str,))
STR_OR_NULL = Kind("a string or null", (str, _NULL))
INT = Kind("an integer", (int,))
INT_OR_NULL = Kind("an integer or null", (int, _NULL))
COUNT = Kind("an integer >= 0", (int,), lambda value: value >= 0)
POSITIVE = Kind("an integer >= 1", (int,), lambda value: value >= 1)
PID = Kind(f"an integer from 1 to {_PID_MAX}", (int,), lambda value: 0 < value <= _PID_MAX)
BOOL = Kind("true or false", (bool,))
NUMBER = Kind("a finite number", (int, float), _finite)
GRACE = Kind(f"a number from 0 to {MAX_SECONDS} or null", (int, float, _NULL), _grace)
TIME = Kind("a time like 2026-01-02T03:04:05.000006Z (years 1970-8999)", (str,), _time)
OBJECT = Kind("an object", (dict,))
STR_LIST = Kind(
    "a list of strings", (list,), lambda value: all(type(item) is str for item in value)
)
PIDS = Kind(
    f"a list of integers from 1 to {_PID_MAX}",
    (list,),
    lambda value: all(type(item) is int and 0 < item <= _PID_MAX for item in value),
)


@dataclass(frozen=True, slots=True)
class Schema:
    """The members of a record (or of an object in it) that readers use, and their kinds."""

    fields: Mapping[str, Kind]
    required: frozenset[str]
    #: Members that are objects with members of their own (checked to be objects first).
    nested: Mapping[str, Schema]
    #: ``(name, types, constraint, required)`` per member, in table order: what the member by
    #: member check (``check_members``) reads, so its message names the first bad member.
    plan: tuple[tuple[str, tuple[type, ...], Callable[[Any], bool] | None, bool], ...] = field(
        init=False, repr=False, compare=False
    )
    #: ``holds(members)``: True if ``members`` fits this schema. The fast test, and a strict
    #: one: it may say False of members that fit (when there are nested objects to check),
    #: never True of members that do not; ``check_members`` then decides, naming the member.
    #: Compiled on its first call (``_compile_holds``), so a command that reads no log (``wf
    #: run``, ``wf --help``) never pays for it.
    holds: Callable[[Record], bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        plan = tuple(
            (name, kind.types, kind.constraint, name in self.required)
            for name, kind in self.fields.items()
        )
        object.__setattr__(self, "plan", plan)
        object.__setattr__(self, "holds", self._compile_and_hold)

    def _compile_and_hold(self, members: Record) -> bool:
        """The first call of ``holds``: put the compiled test in its place, then run it."""
        holds = _compile_holds(self)
        object.__setattr__(self, "holds", holds)
        return holds(members)


def _compile_holds(schema: Schema) -> Callable[[Record], bool]:
    """``schema.holds``: the table turned into straight-line code (once per schema).

    One ``get`` and one exact-type test per member, and a call only for a constrained kind:
    no loop, no unpacking, nothing looked up per member but the member itself. The code is
    generated from the table (as ``dataclasses`` and ``namedtuple`` generate theirs), so the
    table stays the one description of a record's shape. For example, ``spawned`` gives::

        def holds(members):
            get = members.get
            if type(get('step')) is not types0:
                return False
            value = get('attempt', _MISSING)
            if value is _MISSING or type(value) is not types1 or not constraint1(value):
                return False
            ...
            value = get('start_id', _MISSING)
            if value is not _MISSING and (type(value) not in types4):
                return False
            return True
    """
    if schema.nested:
        return _never
    names: dict[str, Any] = {"_MISSING": _MISSING}
    lines = ["def holds(members):", "    get = members.get"]
    for number, (name, kind) in enumerate(schema.fields.items()):
        if len(kind.types) == 1:
            names[f"types{number}"] = kind.types[0]
            test = f"type(value) is not types{number}"
        else:
            names[f"types{number}"] = kind.types
            test = f"type(value) not in types{number}"
        if kind.constraint is not None:
            names[f"constraint{number}"] = kind.constraint
            test += f" or not constraint{number}(value)"
        if name not in schema.required:
            lines.append(f"    value = get({name!r}, _MISSING)")
            lines.append(f"    if value is not _MISSING and ({test}):")
        elif kind.constraint is None and len(kind.types) == 1 and kind.types[0] is not _NULL:
            # Missing reads as ``None``, which is not this one type.
            lines.append(f"    if type(get({name!r})) is not types{number}:")
        else:
            lines.append(f"    value = get({name!r}, _MISSING)")
            lines.append(f"    if value is _MISSING or {test}:")
        lines.append("        return False")
    lines.append("    return True")
    exec(compile("\n".join(lines), "<Schema.holds, compiled>", "exec"), names)
    holds: Callable[[Record], bool] = names["holds"]
    return holds


def _never(members: Record) -> bool:
    """``holds`` of a schema with nested objects: they are left to ``check_members``."""
    return False


def _schema(
    required: Mapping[str, Kind],
    optional: Mapping[str, Kind] | None = None,
    nested: Mapping[str, Schema] | None = None,
) -> Schema:
    return Schema({**required, **(optional or {})}, frozenset(required), nested or {})


_OPTIONS = _schema(
    {"max_parallel": POSITIVE, "fail_fast": BOOL, "base_dir": STR},
    {"executor": STR, "scheduler": STR},
)

#: Payload members per record type (docs/log-format.md, "Record types" and "What readers check").
SCHEMAS: Mapping[str, Schema] = {
    "run_created": _schema(
        {"run_id": STR, "workflow": OBJECT, "options": OBJECT},
        {"origin_run_id": STR},
        nested={"options": _OPTIONS},
    ),
    "runner_started": _schema({"pid": INT}, {"argv": STR_LIST}),
    "step": _schema(
        {"step": STR, "from": STR, "to": STR, "attempt": COUNT},
        {
            "exit_code": INT_OR_NULL,
            "reason": STR_OR_NULL,
            "retry_delay_sec": NUMBER,
            "retry_at": TIME,
            "final": BOOL,
            "stderr_tail": STR,
            "error": STR,
            "leaked_pids": PIDS,
        },
    ),
    "spawned": _schema(
        {"step": STR, "attempt": COUNT, "pid": PID, "pgid": PID}, {"start_id": STR_OR_NULL}
    ),
    "cancel_requested": _schema({}, {"source": STR, "pid": INT, "grace_sec": GRACE}),
    "run_finished": _schema({"state": STR}),
}


class RecordChecker:
    """Checks the envelope's ``ts`` of records in log order, parsing it once per commit batch.

    Only readers check it: the fold never reads ``ts``, and the events the engine folds live have
    no envelope yet. The payload is the codec's to check (``check_members``).
    """

    def __init__(self) -> None:
        self._last_ts: str | None = None

    def check(self, record: Record) -> None:
        """Raise ``MalformedRecord`` if ``ts`` is missing or not a time."""
        ts = record.get("ts", _MISSING)
        if ts != self._last_ts:
            if not TIME.accepts(ts):
                _fail(record, "envelope field 'ts'", TIME, ts)
            self._last_ts = ts


def check_members(record: Record) -> None:
    """Raise ``MalformedRecord`` if a payload member a reader uses is missing or mistyped.

    A record of an unknown type is let through: the codec refuses it by name.
    """
    kind = record.get("type")
    schema = SCHEMAS.get(kind) if type(kind) is str else None
    if schema is not None:
        _check_members(record, record, schema, "")


def _check_members(record: Record, members: Record, schema: Schema, prefix: str) -> None:
    """Check ``members`` (the record, or an object in it named by ``prefix``) against ``schema``."""
    get = members.get
    for name, types, constraint, required in schema.plan:
        value = get(name, _MISSING)
        if value is _MISSING:
            if required:
                raise MalformedRecord(
                    record.get("seq"),
                    f"malformed {record.get('type')} record: field '{prefix}{name}' missing",
                )
        elif type(value) not in types or (constraint is not None and not constraint(value)):
            _fail(record, f"field '{prefix}{name}'", schema.fields[name], value)
    for name, inner in schema.nested.items():
        if name in members:
            _check_members(record, members[name], inner, f"{prefix}{name}.")


def _fail(record: Record, what: str, expected: Kind, value: Any) -> None:
    raise MalformedRecord(
        record.get("seq"),
        f"malformed {record.get('type')} record: {what} must be {expected.what}, "
        f"not {_show(value)}",
    )


def _show(value: Any) -> str:
    """The offending value as JSON, cut short: the message names it without flooding stderr."""
    if value is _MISSING:
        return "missing"
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= 40 else f"{text[:37]}..."
