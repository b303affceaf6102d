"""What every part of the CEL layer shares: the stable failure reasons and the one way a
failure is built (a message and details that hold no value), and the typing shortcut celpy's
evaluator needs."""

from __future__ import annotations

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


class Reason:
    """Why a condition was refused or failed (``details["reason"]``): stable codes."""

    SYNTAX = "SYNTAX"
    TOO_LONG = "TOO_LONG"
    TOO_DEEP = "TOO_DEEP"
    TOO_LARGE = "TOO_LARGE"
    TOO_COSTLY = "TOO_COSTLY"
    UNKNOWN_FUNCTION = "UNKNOWN_FUNCTION"
    NO_SUCH_VARIABLE = "NO_SUCH_VARIABLE"
    NO_SUCH_KEY = "NO_SUCH_KEY"
    NO_MATCHING_OVERLOAD = "NO_MATCHING_OVERLOAD"
    DIVISION_BY_ZERO = "DIVISION_BY_ZERO"
    INVALID_VALUE = "INVALID_VALUE"
    INDEX_OUT_OF_RANGE = "INDEX_OUT_OF_RANGE"
    INVALID_PATTERN = "INVALID_PATTERN"
    NOT_A_BOOLEAN = "NOT_A_BOOLEAN"
    OVER_BUDGET = "OVER_BUDGET"
    INVALID_CONTEXT = "INVALID_CONTEXT"
    ERROR = "ERROR"


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
