"""CEL conditions: compile (cached), validate, build contexts, evaluate. Pure: no ORM access.

cel-python facts this module relies on (checked against cel-python 0.5):
- compiling costs 70-240 µs, so compiled programs are cached per expression text;
- results are ``celtypes.BoolType`` (a Python ``int`` subclass), never ``True``;
- ``Decimal`` is not a CEL value and ``int > double`` has no overload, so values are converted
  and the comparison operators are replaced with ones that compare int/uint/double numerically
  (CEL's heterogeneous numeric comparison).
"""

from __future__ import annotations

import datetime as dt
import operator
import threading
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import celpy
from celpy import celtypes
from celpy.evaluation import base_functions

from .exceptions import ConditionError, ConditionSyntaxError

_NUMERIC = (celtypes.IntType, celtypes.UintType, celtypes.DoubleType)
_MAX_DEPTH = 32


def _numeric_aware(op, fallback):
    def compare(left, right):
        if isinstance(left, _NUMERIC) and isinstance(right, _NUMERIC) and type(left) is not type(right):
            return celtypes.BoolType(op(float(left), float(right)))
        return fallback(left, right)

    return compare


FUNCTIONS = {
    name: _numeric_aware(op, base_functions[name])
    for name, op in (
        ("_<_", operator.lt),
        ("_<=_", operator.le),
        ("_>_", operator.gt),
        ("_>=_", operator.ge),
        ("_==_", operator.eq),
        ("_!=_", operator.ne),
    )
}

_lock = threading.Lock()
_environment: celpy.Environment | None = None
_programs: dict[str, celpy.Runner] = {}
_MAX_CACHED = 4096
stats = {"compiled": 0}  # how many times an expression was really compiled (tests and bench read it)


def _env() -> celpy.Environment:
    global _environment
    if _environment is None:
        with _lock:
            if _environment is None:
                _environment = celpy.Environment()
    return _environment


def is_unconditional(expression: str | None) -> bool:
    return not expression or not expression.strip()


def compile_condition(expression: str) -> celpy.Runner:
    """Return the compiled program for ``expression``, compiling it once per process.

    Raises :class:`ConditionSyntaxError` when the expression does not parse.
    """
    program = _programs.get(expression)
    if program is not None:
        return program
    env = _env()
    # Compiled under the lock: the parser is not documented as thread-safe, compiling is rare,
    # and two threads meeting a new expression at once compile it only once.
    with _lock:
        program = _programs.get(expression)
        if program is not None:
            return program
        try:
            ast = env.compile(expression)
        except celpy.CELParseError as exc:
            message = " ".join(str(exc).split())
            raise ConditionSyntaxError(
                f"CEL condition {expression!r} does not compile: {message}", expression=expression
            ) from exc
        except RecursionError as exc:
            raise ConditionSyntaxError(
                f"CEL condition {expression[:80]!r} is nested too deeply", expression=expression
            ) from exc
        program = env.program(ast, functions=FUNCTIONS)
        if len(_programs) >= _MAX_CACHED:
            _programs.pop(next(iter(_programs)))
        _programs[expression] = program
        stats["compiled"] += 1
    return program


def clear_cache() -> None:
    with _lock:
        _programs.clear()


def to_cel(value: Any, _depth: int = 0) -> Any:
    """Convert a Python value (from ``context_data`` or a model field) to a CEL value.

    Decimal → double, int → int, date/datetime → timestamp (a date is midnight UTC),
    timedelta → duration, UUID → string, mappings → map, lists/tuples/sets → list.
    """
    if _depth > _MAX_DEPTH:
        raise ValueError("context is nested too deeply (or refers to itself)")
    if value is None:
        return None
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int):
        return celtypes.IntType(value)
    if isinstance(value, float):
        return celtypes.DoubleType(value)
    if isinstance(value, Decimal):
        return celtypes.DoubleType(float(value))
    if isinstance(value, str):
        return celtypes.StringType(value)
    if isinstance(value, bytes):
        return celtypes.BytesType(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return celtypes.TimestampType(value)
    if isinstance(value, dt.date):
        return celtypes.TimestampType(dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc))
    if isinstance(value, dt.timedelta):
        return celtypes.DurationType(value)
    if isinstance(value, uuid.UUID):
        return celtypes.StringType(str(value))
    if isinstance(value, Mapping):
        return celtypes.MapType(
            {celtypes.StringType(str(k)): to_cel(v, _depth + 1) for k, v in value.items()}
        )
    if isinstance(value, (list, tuple, set, frozenset)):
        return celtypes.ListType([to_cel(v, _depth + 1) for v in value])
    return celtypes.StringType(str(value))


def to_json(value: Any, _depth: int = 0) -> Any:
    """A JSON-safe copy of a context (what the history stores as "the context used")."""
    if _depth > _MAX_DEPTH:
        raise ValueError("context is nested too deeply (or refers to itself)")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, Mapping):
        return {str(k): to_json(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json(v, _depth + 1) for v in value]
    return str(value)


def activation(context: Mapping[str, Any]) -> dict[str, Any]:
    return {str(key): to_cel(value) for key, value in context.items()}


def evaluate(expression: str, cel_context: Mapping[str, Any]) -> bool:
    """Evaluate a condition against an already converted context (see :func:`activation`).

    An empty condition is true. Raises :class:`ConditionError` when evaluation fails or the
    result is not a boolean.
    """
    if is_unconditional(expression):
        return True
    program = compile_condition(expression)
    try:
        result = program.evaluate(dict(cel_context))
    except celpy.CELEvalError as exc:
        cause = exc.args[0] if exc.args else str(exc)
        raise ConditionError(f"{cause}", expression=expression) from exc
    except Exception as exc:  # cel-python raises plain Python errors in a few corners
        raise ConditionError(f"{type(exc).__name__}: {exc}", expression=expression) from exc
    if isinstance(result, celpy.CELEvalError):
        cause = result.args[0] if result.args else str(result)
        raise ConditionError(f"{cause}", expression=expression)
    if not isinstance(result, celtypes.BoolType):
        raise ConditionError(
            f"the condition returned {type(result).__name__} {result!r}, not a boolean", expression=expression
        )
    return bool(result)
