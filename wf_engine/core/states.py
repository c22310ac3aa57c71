"""Step and run states, and the one table of legal step transitions (docs/log-format.md,
"Step states and transitions")."""

from __future__ import annotations

from enum import Enum


class StepState(str, Enum):
    PENDING = "PENDING"
    READY = "READY"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    CANCELLED = "CANCELLED"

    def __str__(self) -> str:
        return self.value


class RunStatus(str, Enum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    def __str__(self) -> str:
        return self.value


P, R, X = StepState.PENDING, StepState.READY, StepState.RUNNING
S, F, K, C = StepState.SUCCEEDED, StepState.FAILED, StepState.SKIPPED, StepState.CANCELLED

LEGAL_TRANSITIONS: frozenset[tuple[StepState, StepState]] = frozenset(
    {
        (P, R), (P, K), (P, C), (P, S),
        (R, X), (R, C),
        (X, S), (X, F), (X, C), (X, R),
        (F, R), (F, C),
    }
)  # fmt: skip

#: Terminal whatever happens next; a FAILED step is terminal only when its record says ``final``.
TERMINAL_STATES = frozenset({S, K, C})

#: The reasons of a rerun's carried-over steps: ``PENDING -> SUCCEEDED`` (its origin's success,
#: reused) and ``PENDING -> SKIPPED`` (left out by ``--only``). Legal only in the rerun's opening
#: (``wf_engine.core.fold``): no other record may claim a success nothing executed.
REUSED = "reused"
NOT_SELECTED = "not_selected"
CARRY_OVER_REASONS = frozenset({REUSED, NOT_SELECTED})

#: Reasons a step record may carry.
REASONS = (
    frozenset({"exit", "timeout", "cancelled", "dependency_failed", "interrupted", "spawn_error"})
    | CARRY_OVER_REASONS
)
