"""Errors
======

Evaluation errors are classified by kind (``Reason``: no such variable / key or field, no
matching overload, division by zero, not a boolean, over budget, …), with the line and column
and, when the culprit is an identifier of the expression, its name. :func:`condition_error`
is the one place that turns such a failure into the message clients see; the services (a real
change and the dry run) call it with the transition.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import lark
import re2
from celpy import celtypes
from celpy.evaluation import (
    CELEvalError,
)

from ..conf import steps_setting
from ..exceptions import ConditionError, ConditionSyntaxError
from .common import Reason, _failure, _shown
from .compiler import _programs, compile_condition
from .fast import Plain
from .runtime import _METER, _Meter, _OverBudget

# --------------------------------------------------------------------------- evaluate

_CEL_TYPE_NAMES = {
    celtypes.BoolType: "bool",
    celtypes.IntType: "int",
    celtypes.UintType: "uint",
    celtypes.DoubleType: "double",
    celtypes.StringType: "string",
    celtypes.BytesType: "bytes",
    celtypes.ListType: "list",
    celtypes.MapType: "map",
    celtypes.TimestampType: "timestamp",
    celtypes.DurationType: "duration",
    type(None): "null",
}


def _identifier(exc: CELEvalError) -> str | None:
    """The identifier of the expression an error is about (a name the author wrote, never a
    value), when there is one."""
    tree, token = exc.tree, None
    if isinstance(tree, lark.Tree):
        if tree.data == "member_dot" and len(tree.children) == 2:
            token = tree.children[1]
        elif (
            tree.data == "primary"
            and tree.children
            and getattr(tree.children[0], "data", None) == "ident"
        ):
            token = tree.children[0].children[0]
    elif exc.token is not None:
        token = exc.token
    if isinstance(token, lark.Token) and token.type == "IDENT":
        return str(token)[:64]
    return None


def _classify(exc: CELEvalError) -> tuple[str, str]:
    """(reason, description) of a celpy evaluation error, from its exception class and the
    start of its text only."""
    args = exc.args
    text = args[0] if args and isinstance(args[0], str) else ""
    cause = args[1] if len(args) > 1 and isinstance(args[1], type) else None
    name = _identifier(exc)
    quoted = f" {name!r}" if name else ""
    if cause is not None and issubclass(cause, KeyError):
        if text.startswith("undeclared reference"):
            if exc.token is not None:
                return Reason.UNKNOWN_FUNCTION, f"unknown function{quoted}"
            description = (
                f"no variable{quoted} in the context" if name else "a name is not in the context"
            )
            return Reason.NO_SUCH_VARIABLE, description
        return Reason.NO_SUCH_KEY, f"no such key or field{quoted}"
    if cause is not None and issubclass(cause, TypeError):
        return (
            Reason.NO_MATCHING_OVERLOAD,
            "no matching overload: the operand types do not fit the operator or function",
        )
    if cause is not None and issubclass(cause, ZeroDivisionError):
        return Reason.DIVISION_BY_ZERO, "division by zero"
    if cause is not None and issubclass(cause, IndexError):
        return Reason.INDEX_OUT_OF_RANGE, "an index is out of range"
    if cause is not None and issubclass(cause, re2.error):
        return Reason.INVALID_PATTERN, "a regular expression is invalid"
    if cause is not None and issubclass(cause, (ValueError, OverflowError)):
        return Reason.INVALID_VALUE, "a value is out of range or malformed"
    return Reason.ERROR, "it could not be evaluated"


def evaluate(expression: str, cel_context: Mapping[str, Any], *, budget: int | None = None) -> bool:
    """Evaluate a condition against an already converted context (see :func:`activation`),
    within ``budget`` steps (default ``CEL_BUDGET``).

    An empty condition is true. Raises :class:`ConditionError` (``details["reason"]``) when
    evaluation fails, runs over budget or the result is not a boolean, and
    :class:`ConditionSyntaxError` when the condition does not compile.
    """
    if not expression or expression.isspace():  # is_unconditional, inlined (hot path)
        return True
    result = evaluate_value(expression, cel_context, budget=budget)
    if not isinstance(result, celtypes.BoolType):
        raise _failure(ConditionError, expression, Reason.NOT_A_BOOLEAN, _not_a("boolean", result))
    return bool(result)


#: How many names of the context a "no variable" message lists, at most.
_LISTED = 20


def available(variables: Iterable[str]) -> str:
    """The variables a condition could have read, for one that read a name not among them (an
    author's ``purchase_order`` where the model's name is ``purchaseorder``): names only — the
    model's name, its readable fields, ``input`` — never a value; sorted, each cut, at most
    ``_LISTED``. Said at evaluation (the context's names) and at load (a definition's models)."""
    names = sorted(str(name)[:64] for name in variables)
    if not names:
        return "there are no variables"
    listed = ", ".join(names[:_LISTED])
    more = len(names) - _LISTED
    return f"available: {listed}" + (f", … ({more} more)" if more > 0 else "")


def _not_a(wanted: str, result: Any) -> str:
    kind = _CEL_TYPE_NAMES.get(type(result), "value of another type")
    return f"the result is a {kind}, not a {wanted}"


def evaluate_value(
    expression: str, cel_context: Mapping[str, Any], *, budget: int | None = None
) -> Any:
    """The CEL value of ``expression`` (e.g. a deadline's ``at``, a timestamp), with the
    failures of :func:`evaluate` (other than the type of the result)."""
    program = _programs.get(expression) or compile_condition(expression)
    meter = _Meter(steps_setting("CEL_BUDGET") if budget is None else budget)
    failure: tuple[str, str, dict[str, int]] | None = None
    token = _METER.set(meter)
    try:
        meter.charge(program.steps)
        # a copy (a Plain context stays one: its names are those it was built with)
        copy = Plain(cel_context) if type(cel_context) is Plain else dict(cel_context)
        result = program.evaluate(copy)
    except CELEvalError as exc:
        reason, description = _classify(exc)
        if reason == Reason.NO_SUCH_VARIABLE:
            description = f"{description}; {available(cel_context)}"
        position = {"line": exc.line, "column": exc.column} if exc.line and exc.column else {}
        failure = (reason, description, position)
    except _OverBudget:
        failure = (
            Reason.OVER_BUDGET,
            f"it ran over the evaluation budget of {meter.budget} steps and was stopped",
            {},
        )
    except RecursionError:
        failure = (Reason.TOO_DEEP, "it nests too deeply to be evaluated", {})
    except Exception:
        failure = (Reason.ERROR, "it could not be evaluated", {})
    finally:
        _METER.reset(token)
    # Raised here, outside the except blocks: celpy's error (whose text renders values) is
    # neither chained nor kept alive by a traceback.
    if failure is not None:
        reason, description, position = failure
        raise _failure(ConditionError, expression, reason, description, **position)
    return result


def timestamp(expression: str, cel_context: Mapping[str, Any]) -> Any:
    """The timestamp ``expression`` gives (an aware ``datetime``); :class:`ConditionError`
    (reason ``NOT_A_TIMESTAMP``) for any other value, e.g. null."""
    result = evaluate_value(expression, cel_context)
    if not isinstance(result, celtypes.TimestampType):
        raise _failure(
            ConditionError, expression, Reason.NOT_A_TIMESTAMP, _not_a("timestamp", result)
        )
    return result


def context_error() -> ConditionError:
    """The failure of converting a context built from the content object (a value CEL cannot
    hold): names no value."""
    return _failure(
        ConditionError, "", Reason.INVALID_CONTEXT, "the context cannot be converted to CEL values"
    )


def condition_error(
    failure: ConditionError | ConditionSyntaxError,
    *,
    transition: str,
    expression: str,
    transition_id: int | None = None,
) -> ConditionError:
    """The one formatter of condition errors: ``failure`` (from :func:`evaluate`,
    :func:`compile_condition` or :func:`context_error`) reported for ``transition`` (its
    label), with the kind of failure, its position and the expression cut to a bounded length
    — never a value from the context or the object, never a library's text."""
    shown = _shown(expression)
    reason = failure.details.get("reason", Reason.ERROR)
    description = failure.description or "it could not be evaluated"
    details: dict[str, Any] = {
        "transition_id": transition_id,
        "expression": shown,
        "reason": reason,
    }
    for key in ("line", "column"):
        if key in failure.details:
            details[key] = failure.details[key]
    error = ConditionError(
        f"The condition of transition {transition} failed to evaluate: {description}. "
        f"Expression: {shown!r}. Nothing was changed.",
        **details,
    )
    error.description = description
    return error
