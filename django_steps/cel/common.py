"""What every part of the CEL layer shares: the stable failure reasons and the one way a
failure is built (a message and details that hold no value), and the typing shortcut celpy's
evaluator needs."""

from __future__ import annotations

import enum
import typing
from typing import Any

import celpy.evaluation
from celpy import celtypes

from ..conf import steps_setting
from ..exceptions import ConditionError, ConditionSyntaxError


class _FreeSubscript:
    """Subscripted, gives back ``object`` at no cost: see :func:`_erase_typing_in_casts`."""

    def __getitem__(self, item: Any) -> type:
        return object


def _erase_typing_in_casts() -> None:
    """celpy's evaluator writes ``cast(Tuple[Result, Result], …)`` in every operator it
    evaluates; typing builds that alias through its cache each time, hashing the 15-member
    ``Result`` union (nested aliases included): a large share of a simple condition's
    evaluation (``bench/engine.py`` measures it). ``cast`` ignores its first
    argument, and in ``celpy.evaluation`` these five names are used at run time only inside
    ``cast`` (signatures and module-level aliases were built at import; local annotations are
    never evaluated), so they are replaced there, and only while they are typing's own."""
    for name in ("Tuple", "Union", "List", "Dict", "Iterable"):
        if getattr(celpy.evaluation, name, None) is getattr(typing, name):
            setattr(celpy.evaluation, name, _FreeSubscript())


_erase_typing_in_casts()

_NUMERIC = (celtypes.IntType, celtypes.UintType, celtypes.DoubleType)
_MAX_DEPTH = 32  # recursion guard of to_cel/to_json (client contexts are held to CONTEXT_MAX_DEPTH)
_SHOWN = 160  # characters of an expression quoted in a message
_INT64 = (-(2**63), 2**63 - 1)


class Reason(enum.StrEnum):
    """Why a condition was refused or failed (``details["reason"]``): stable codes, each the
    string of its own name (a ``str``, so it compares and serializes as that string)."""

    @staticmethod
    def _generate_next_value_(name: str, start: int, count: int, last_values: list) -> str:
        return name  # StrEnum's own auto() would lower-case it

    SYNTAX = enum.auto()
    TOO_LONG = enum.auto()
    TOO_DEEP = enum.auto()
    TOO_LARGE = enum.auto()
    TOO_COSTLY = enum.auto()
    UNKNOWN_FUNCTION = enum.auto()
    NO_SUCH_VARIABLE = enum.auto()
    NO_SUCH_KEY = enum.auto()
    NO_MATCHING_OVERLOAD = enum.auto()
    DIVISION_BY_ZERO = enum.auto()
    INVALID_VALUE = enum.auto()
    INDEX_OUT_OF_RANGE = enum.auto()
    INVALID_PATTERN = enum.auto()
    NOT_A_BOOLEAN = enum.auto()
    NOT_A_TIMESTAMP = enum.auto()  # a deadline's `at`
    OVER_BUDGET = enum.auto()
    INVALID_CONTEXT = enum.auto()
    ERROR = enum.auto()


def _limit(name: str) -> int:
    return int(steps_setting(name))


def _shown(expression: str) -> str:
    """The expression as quoted in messages: cut when long."""
    return expression if len(expression) <= _SHOWN else expression[: _SHOWN - 1] + "…"


def _failure(
    cls: type[ConditionError] | type[ConditionSyntaxError],
    expression: str,
    reason: str,
    description: str,
    *,
    line: int | None = None,
    column: int | None = None,
    prefix: str = "",
    suffix: str = "",
) -> Any:
    """A condition error whose message and details hold no value: the (cut) expression, the
    reason code, a fixed description and the position. ``error.description`` keeps the
    description (with the position) for :func:`condition_error`."""
    details: dict[str, Any] = {"expression": _shown(expression), "reason": reason}
    if line and column and line > 0:
        description = f"{description} (line {line}, column {column})"
        details.update(line=line, column=column)
    error = cls(f"{prefix}{description}{suffix}", **details)
    error.description = description
    return error
