"""Contexts: a client's ``context`` checked before anything is evaluated, and Python values
converted to CEL values and back (:func:`to_cel`, :func:`to_json`)."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from celpy import celtypes
from celpy.evaluation import (
    NameContainer,
)

from ..exceptions import InvalidContext
from .common import _INT64, _MAX_DEPTH, _limit
from .fast import Plain, is_plain

# --------------------------------------------------------------------------- context


def check_context(context: Any) -> None:
    """Refuse a client-supplied context (``context_data``, GraphQL ``context``) that CEL should
    not see: not a mapping, more than ``CONTEXT_MAX_ITEMS`` values or ``CONTEXT_MAX_LENGTH``
    characters of text and keys, nested deeper than ``CONTEXT_MAX_DEPTH``, holding a number
    CEL cannot represent (NaN, ±Infinity, an integer outside 64 bits), or text a database cannot
    store (a NUL character or an unpaired surrogate in a string or key: the context is stored
    with the event, and PostgreSQL's ``jsonb`` refuses both — refused on every database, so a
    context valid on one is valid on all). Raises :class:`InvalidContext`; the message names
    the rule, never a key or a value. Stops at the first problem, so its cost is bounded by the
    limits."""
    if not isinstance(context, Mapping):
        raise InvalidContext(
            "The context must be a mapping of names to values.", reason="NOT_A_MAPPING"
        )
    max_items, max_length, max_depth = (
        _limit("CONTEXT_MAX_ITEMS"),
        _limit("CONTEXT_MAX_LENGTH"),
        _limit("CONTEXT_MAX_DEPTH"),
    )
    items = length = 0
    stack: list[tuple[Any, int]] = [(context, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, Mapping) or isinstance(value, (list, tuple, set, frozenset)):
            if depth > max_depth:
                raise InvalidContext(
                    f"The context is nested more than {max_depth} levels deep.",
                    reason="TOO_DEEP",
                    limit=max_depth,
                )
            if items + len(value) > max_items:
                raise InvalidContext(
                    f"The context holds more than {max_items} values.",
                    reason="TOO_MANY_ITEMS",
                    limit=max_items,
                )
            if isinstance(value, Mapping):
                for key, item in value.items():
                    if isinstance(key, str):
                        length += len(key)
                        if length <= max_length:
                            _check_storable(key)
                    else:
                        length += 1
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, (str, bytes)):
            length += len(value)
            if isinstance(value, str) and length <= max_length:
                _check_storable(value)
        elif isinstance(value, bool) or value is None:
            pass
        elif isinstance(value, int):
            if not _INT64[0] <= value <= _INT64[1]:
                raise InvalidContext(
                    "The context holds an integer outside the 64-bit range CEL supports.",
                    reason="INT_OUT_OF_RANGE",
                )
        elif isinstance(value, (float, Decimal)):
            if not (value.is_finite() if isinstance(value, Decimal) else True) or not math.isfinite(
                float(value)
            ):
                raise InvalidContext(
                    "The context holds a number that is not finite (NaN or Infinity).",
                    reason="NOT_FINITE",
                )
        if value is not context:
            items += 1
        if items > max_items:
            raise InvalidContext(
                f"The context holds more than {max_items} values.",
                reason="TOO_MANY_ITEMS",
                limit=max_items,
            )
        if length > max_length:
            raise InvalidContext(
                f"The context's text (strings and keys) is longer than {max_length} characters.",
                reason="TOO_LONG",
                limit=max_length,
            )


def _check_storable(text: str) -> None:
    if "\x00" in text or _has_surrogate(text):
        raise InvalidContext(
            "The context holds text with a NUL character or an unpaired surrogate, "
            "which cannot be stored.",
            reason="UNSTORABLE_TEXT",
        )


def _has_surrogate(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def to_cel(value: Any, _depth: int = 0) -> Any:
    """Convert a Python value (from ``context_data`` or a model field) to a CEL value.

    Decimal → double, int → int, date/datetime → timestamp (a date is midnight UTC),
    timedelta → duration, UUID → string, mappings → map, lists/tuples/sets → list.
    """
    if _depth > _MAX_DEPTH:
        raise ValueError("context is nested too deeply (or refers to itself)")
    convert = _SCALARS.get(type(value))  # the usual field values, without the chain below
    if convert is not None:
        return convert(value)
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
            value = value.replace(tzinfo=dt.UTC)
        return celtypes.TimestampType(value)
    if isinstance(value, dt.date):
        return celtypes.TimestampType(
            dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
        )
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


def _int(value: int) -> Any:
    """``celtypes.IntType(value)`` for an ``int``: celpy's constructor wraps ``int`` in a new
    range-checking function (``functools.wraps`` included) on every call; within int64 the
    result is this one. Outside, celpy's own raises its ``ValueError("overflow")``."""
    if _INT64[0] <= value <= _INT64[1]:
        return int.__new__(celtypes.IntType, value)
    return celtypes.IntType(value)


def _str(value: str) -> Any:
    """``celtypes.StringType(value)`` for a ``str``: celpy's constructor, after its
    ``isinstance`` tests, calls ``str.__new__`` with it."""
    return str.__new__(celtypes.StringType, value)


def _datetime(value: dt.datetime) -> Any:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return celtypes.TimestampType(value)


#: Exact types ``to_cel`` converts as its chain of ``isinstance`` tests would.
_SCALARS: dict[type, Any] = {
    type(None): lambda value: None,
    # celpy's BoolType(value) for a bool, after its isinstance tests: int.__new__
    bool: lambda value: int.__new__(celtypes.BoolType, value),
    int: _int,
    float: celtypes.DoubleType,
    str: _str,
    Decimal: lambda value: celtypes.DoubleType(float(value)),
    dt.datetime: _datetime,
    dt.date: lambda value: celtypes.TimestampType(
        dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    ),
    dt.timedelta: celtypes.DurationType,
    uuid.UUID: lambda value: _str(str(value)),
}


def to_json(value: Any, _depth: int = 0) -> Any:
    """A JSON-safe copy of a context (what the history stores as "the context used")."""
    if _depth > _MAX_DEPTH:
        raise ValueError("context is nested too deeply (or refers to itself)")
    convert = _JSON_SCALARS.get(type(value))  # the usual field values, without the chain
    if convert is not None:
        return convert(value)
    if type(value) is dict and _depth < _MAX_DEPTH:
        # the Mapping branch below without the ABC's isinstance, and its scalar values (an
        # object's fields) without a call each: one level deeper, they are within the limit
        copy = {}
        for k, v in value.items():
            scalar = _JSON_SCALARS.get(type(v))
            copy[str(k)] = scalar(v) if scalar is not None else to_json(v, _depth + 1)
        return copy
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


def _same(value: Any) -> Any:
    return value


#: Exact types ``to_json`` converts as its chain of ``isinstance`` tests would.
_JSON_SCALARS: dict[type, Any] = {
    type(None): _same,
    bool: _same,
    int: _same,
    float: _same,
    str: _same,
    Decimal: str,
    dt.datetime: dt.datetime.isoformat,
    dt.date: dt.date.isoformat,
    dt.time: dt.time.isoformat,
    dt.timedelta: dt.timedelta.total_seconds,
    uuid.UUID: str,
}


def activation(context: Mapping[str, Any], under: str | None = None) -> dict[str, Any]:
    """The CEL variables of a context. Keys that are not CEL names (``"my-field"``) cannot be
    referred to by a condition and would make celpy refuse the whole context: they are left out.
    ``under``: the whole context is also one map variable of that name (an object's fields at
    the top level and under its model's name), unless a key has that name; each value is
    converted once for both."""
    names = NameContainer.extended_name_path
    converted = {str(key): to_cel(value) for key, value in context.items()}
    variables = {key: value for key, value in converted.items() if names.match(key)}
    if under is not None and names.match(under) and under not in variables:
        whole = variables[under] = celtypes.MapType()
        # MapType keeps dict's own item assignment: filled at C speed, as its __init__ would
        dict.update(whole, {celtypes.StringType(k): v for k, v in converted.items()})
    return variables


class Plan:
    """What :func:`activation` works out from a context's names alone, worked out once for
    contexts that always have the same names (an object's readable fields, per model):
    :meth:`activation` then gives, from the values in the order of ``names``, what
    ``activation(dict(zip(names, values)), under)`` gives — with ``extra`` (names the caller
    adds to the result afterwards, e.g. ``input``), a :class:`~.fast.Plain` dict when every
    name is a plain identifier."""

    __slots__ = ("keys", "names", "plain", "under", "variables")

    def __init__(self, names: Sequence[str], under: str | None, extra: Sequence[str] = ()):
        match = NameContainer.extended_name_path.match
        self.names = tuple(str(name) for name in names)
        self.keys = tuple(celtypes.StringType(name) for name in self.names)
        self.variables = tuple(match(name) is not None for name in self.names)
        taken = {name for name, kept in zip(self.names, self.variables, strict=True) if kept}
        self.under = under if under is not None and match(under) and under not in taken else None
        self.plain = all(
            is_plain(name)
            for name in (*taken, *extra, *((self.under,) if self.under is not None else ()))
        )

    def activation(self, values: Sequence[Any]) -> dict[str, Any]:
        converted = [to_cel(value) for value in values]
        variables: dict[str, Any] = Plain() if self.plain else {}
        for name, kept, value in zip(self.names, self.variables, converted, strict=True):
            if kept:
                variables[name] = value
        if self.under is not None:
            whole = variables[self.under] = celtypes.MapType()
            dict.update(whole, zip(self.keys, converted, strict=True))
        return variables
