"""What a transition condition reads, and what the history keeps of it.

The variables of a condition
============================

- The attached object's fields, read from the database, at the top level (``amount``) and under
  the model's name (``claim.amount``). A foreign key reads its primary key, or ``null`` when
  empty.
- The caller's context (``context_data``, GraphQL ``context``) under ``input``
  (``input.amount``); an empty map when none was given, so ``has(input.note)`` works.

A step's ``assignees`` expression and its deadline's ``at`` are evaluated on entering the step,
for no caller (:func:`on_entry`): they read the object's fields alone, no ``input``.

Nothing a caller sends can take the place of an object's field: the caller's values live under
``input`` only, and ``input`` is the caller's even when the model has a field of that name
(read it as ``claim.input``). So a guard on ``claim.amount`` decides on the amount stored in
the database, whoever asks and whatever they send. Trusted code (no ``actor``) is held to the
same shape: one condition reads the same values on every path, and the dry run
(:func:`django_steps.services.evaluate_transitions`) agrees with the change.

The object is loaded only when a condition reads one of its names (:func:`django_steps.cel.
variables`): conditions reading ``input`` alone, or none at all, cost no query.

Fields no condition reads
=========================

An object's fields can hold secrets; they would be evaluated and stored with every event. Left
out, in evaluation and in history:

- a field named ``password`` (the hash of Django's user models), always;
- fields whose name matches a pattern of ``DJANGO_STEPS["CONTEXT_SECRET_FIELDS"]`` (``fnmatch``
  patterns, case-insensitive; by default ``*password*``, ``*secret*``, ``*token*``,
  ``*api_key*``, ``*private_key*``), unless the model's ``include`` names them;
- per model, ``DJANGO_STEPS["CONTEXT_FIELDS"]["app_label.model"]``: ``{"include": [...]}`` reads
  only these fields, ``{"exclude": [...]}`` leaves these out too (both may be given).

History
=======

An event stores what its conditions read, keeping apart what was the object's and what the
caller's: ``{"object": {...fields...}, "input": {...}}`` — ``object`` when a condition read the
object, ``input`` when the caller gave a context. Each part is JSON of at most
``HISTORY_CONTEXT_MAX_SIZE`` bytes together; over it, the largest part is replaced by
``{"_omitted": "TOO_LARGE", "size": <bytes>, "maxSize": <limit>}`` (then the other, if still
over), never by part of its value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from fnmatch import fnmatchcase
from functools import lru_cache
from operator import attrgetter
from typing import Any

from celpy import celtypes
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.db.models import Field, Model

from . import cel
from .cel import values as cel_values
from .conf import steps_setting
from .exceptions import ConditionError, ConditionSyntaxError
from .models import WorkflowInstance

__all__ = [
    "INPUT",
    "Context",
    "build_context",
    "on_entry",
    "object_fields",
    "readable_fields",
    "root_variables",
    "resolves_alone",
]

#: The name conditions read the caller's context under.
INPUT = "input"

_cache: dict[type[Model], tuple[Field, ...]] = {}


def _rule(label: str) -> tuple[frozenset[str] | None, frozenset[str]]:
    """(include, exclude) of ``CONTEXT_FIELDS[label]``, checked."""
    rules = steps_setting("CONTEXT_FIELDS") or {}
    if not isinstance(rules, Mapping):
        raise ImproperlyConfigured(
            'DJANGO_STEPS["CONTEXT_FIELDS"] must map "app_label.model" to {"include": [...]} '
            'and/or {"exclude": [...]}.'
        )
    rule = rules.get(label) or {}
    unknown = set(rule) - {"include", "exclude"} if isinstance(rule, Mapping) else {"?"}
    lists = [rule.get(key) for key in ("include", "exclude")] if not unknown else []
    if unknown or any(
        value is not None
        and (
            not isinstance(value, (list, tuple, set, frozenset))
            or not all(isinstance(name, str) for name in value)
        )
        for value in lists
    ):
        raise ImproperlyConfigured(
            f'DJANGO_STEPS["CONTEXT_FIELDS"]["{label}"] must be a mapping with "include" and/or '
            '"exclude", each a list of field names.'
        )
    include = rule.get("include")
    return (
        frozenset(include) if include is not None else None,
        frozenset(rule.get("exclude") or ()),
    )


def readable_fields(model: type[Model]) -> tuple[Field, ...]:
    """The concrete fields of ``model`` that conditions read and history stores (see the module
    docstring), in the model's order; cached per model until ``DJANGO_STEPS`` changes."""
    model = model._meta.concrete_model
    found = _cache.get(model)
    if found is not None:
        return found
    include, exclude = _rule(model._meta.label_lower)
    patterns = tuple(str(p).lower() for p in steps_setting("CONTEXT_SECRET_FIELDS") or ())
    fields = []
    for field in model._meta.concrete_fields:
        name = field.name
        if name == "password" or name in exclude:
            continue
        if include is not None:
            if name not in include:
                continue
        elif any(fnmatchcase(name.lower(), pattern) for pattern in patterns):
            continue
        fields.append(field)
    found = _cache[model] = tuple(fields)
    return found


#: Per model class (a proxy has its own name): how to read its readable fields' values in
#: one call, and the plan of its conditions' variables (see :class:`cel_values.Plan`).
_plans: dict[type[Model], tuple[tuple[str, ...], Any, cel_values.Plan]] = {}


def _plan(model: type[Model]) -> tuple[tuple[str, ...], Any, cel_values.Plan]:
    found = _plans.get(model)
    if found is not None:
        return found
    fields = readable_fields(model)
    names = tuple(field.name for field in fields)
    if fields and all(type(f).value_from_object is Field.value_from_object for f in fields):
        # Field.value_from_object is getattr(obj, attname): all of them in one C call
        getter = attrgetter(*(field.attname for field in fields))
        read = getter if len(fields) > 1 else (lambda obj: (getter(obj),))
    else:
        read = lambda obj: tuple(field.value_from_object(obj) for field in fields)  # noqa: E731
    found = _plans[model] = (
        names,
        read,
        cel_values.Plan(names, model._meta.model_name, extra=(INPUT,)),
    )
    return found


def root_variables(model: type[Model], *, with_input: bool = True) -> frozenset[str]:
    """The variables :meth:`Context.activation` gives an expression of an instance on
    ``model``: worked out from the same plan (the readable fields that are CEL names, the
    model's name unless a field takes it) and, ``with_input`` (as the :class:`Context`), ``input``
    — none for the expressions evaluated on entering a step (:func:`on_entry`). What CEL
    resolves by itself (``int``, ``google``) is not among them: see :func:`resolves_alone`."""
    _names, _read, plan = _plan(model)
    roots = {name for name, kept in zip(plan.names, plan.variables, strict=True) if kept}
    if plan.under is not None:
        roots.add(plan.under)
    if with_input:
        roots.add(INPUT)
    else:
        roots.discard(INPUT)  # as the activation drops it
    return frozenset(roots)


@lru_cache(maxsize=256)  # names from documents: bounded
def resolves_alone(name: str) -> bool:
    """Whether CEL resolves ``name`` with no variable at all (a type such as ``int``, a
    function such as ``duration``, the ``google`` package), as the evaluator decides it."""
    try:
        cel.evaluate_value(name, {})
    except (ConditionError, ConditionSyntaxError) as exc:
        return exc.details.get("reason") != cel.Reason.NO_SUCH_VARIABLE
    return True


def _forget(*, setting: str, **kwargs: Any) -> None:
    if setting == "DJANGO_STEPS":
        _cache.clear()
        _plans.clear()


setting_changed.connect(_forget, dispatch_uid="django_steps.context")


def object_fields(obj: Model | None) -> dict[str, Any]:
    """The readable fields of ``obj`` by name (a foreign key: its primary key); ``{}`` for none."""
    if obj is None:
        return {}
    return {field.name: field.value_from_object(obj) for field in readable_fields(type(obj))}


def _with_model_name(obj: Model | None, fields: dict[str, Any]) -> dict[str, Any]:
    context = dict(fields)
    if obj is not None:
        context.setdefault(obj._meta.model_name, dict(fields))
    return context


def build_context(instance: Any, context_data: Mapping[str, Any] | None) -> dict[str, Any]:
    """Every variable a condition of ``instance`` may read, as Python values: the content
    object's readable fields at the top level and under the model's name, and ``context_data``
    under ``input`` (see the module docstring)."""
    if context_data is not None and not isinstance(context_data, Mapping):
        raise ConditionError("context_data must be a mapping of names to values.")
    obj = instance.content_object
    context = _with_model_name(obj, object_fields(obj))
    context[INPUT] = dict(context_data) if context_data is not None else {}
    return context


_CONTENT_OBJECT = WorkflowInstance.content_object  # the GenericForeignKey itself
_UNREAD = object()


def _content_object(instance: Any) -> Model | None:
    """The content object read with ``instance``, else loaded now. The change path reads it in
    the instance's own statement and caches it (:func:`django_steps.statements.read_for_change`;
    ``None`` for a deleted object), as a new instance caches the object it starts for: that
    object is used as it is. The descriptor would first compare it with the instance's content
    type and id, through a copy of the content type manager, on every change; an instance read
    alone (the dry run, a migration) has none cached and the descriptor loads it."""
    obj = _CONTENT_OBJECT.get_cached_value(instance, default=_UNREAD)
    return instance.content_object if obj is _UNREAD else obj


class Context:
    """The variables of one change's conditions, built as they are needed: the object's fields
    are read (once) for the first condition that reads a name other than ``input``. A caller's
    ``context_data`` is checked at once (size, depth, numbers CEL cannot hold):
    :class:`~django_steps.exceptions.InvalidContext`, nothing evaluated."""

    def __init__(
        self, instance: Any, context_data: Mapping[str, Any] | None, *, with_input: bool = True
    ) -> None:
        if context_data is not None:
            cel.check_context(context_data)
        self.instance = instance
        self.input = context_data
        self.with_input = with_input  # False: no ``input`` at all (see on_entry)
        self.fields: dict[str, Any] | None = None  # the object's, once a condition read them
        self._input: dict[str, Any] | None = None
        self._all: dict[str, Any] | None = None

    def _input_only(self) -> dict[str, Any]:
        if self._input is None:
            if not self.with_input:
                self._input = {}
                return self._input
            if self.input is None:  # to_cel({}), without its chain of tests
                self._input = {INPUT: celtypes.MapType()}
                return self._input
            try:
                self._input = {INPUT: cel.to_cel(dict(self.input))}
            except (ValueError, TypeError, OverflowError, RecursionError):
                raise cel.context_error() from None
        return self._input

    def activation(self, expression: str) -> dict[str, Any]:
        """The CEL variables for ``expression`` (converted; see :func:`django_steps.cel.
        activation`). A value of the object CEL cannot hold is a ``CONDITION_ERROR`` (reason
        ``INVALID_CONTEXT``) naming no value."""
        if self._all is not None:
            return self._all
        if not (cel.variables(expression) - {INPUT}):
            return self._input_only()
        obj = _content_object(self.instance)
        try:  # as cel.activation(_with_model_name(obj, fields)), each field converted once
            if obj is None:
                fields: dict[str, Any] = {}
                converted = cel.activation(fields)
            else:
                names, read, plan = _plan(type(obj))
                values = read(obj)
                fields = dict(zip(names, values, strict=True))
                converted = plan.activation(values)
        except (ValueError, TypeError, OverflowError, RecursionError):
            raise cel.context_error() from None
        self.fields = fields
        converted.update(self._input_only())  # as {**converted, **input}: a Plain stays one
        if not self.with_input:
            converted.pop(INPUT, None)  # a field of that name is read as claim.input, as ever
        self._all = converted
        return self._all

    def for_history(self) -> Any:
        """What the event stores (see the module docstring), or ``None`` when the change read
        neither the object nor a caller's context. The object's fields (unbounded text fields)
        and a caller's context (up to the ``CONTEXT_MAX_*`` limits) can be large, and every
        event is replayed to subscribers and read back over HTTP: hence the size limit."""
        parts: dict[str, Any] = {}
        try:
            if self.fields is not None:
                parts["object"] = cel.to_json(self.fields)
            if self.input is not None:
                parts[INPUT] = cel.to_json(self.input)
        except (ValueError, RecursionError):
            return None
        if not parts:
            return None
        limit = steps_setting("HISTORY_CONTEXT_MAX_SIZE")
        if limit is None or _size(parts) <= limit:  # the whole fits: nothing to measure apart
            return parts
        sizes = {key: _size(value) for key, value in parts.items()}
        # the whole: the parts, their keys and the braces around them
        overhead = _size(dict.fromkeys(parts, 0)) - len(parts)
        for key in sorted(parts, key=sizes.__getitem__, reverse=True):
            if overhead + sum(sizes.values()) <= limit:
                break
            parts[key] = {"_omitted": "TOO_LARGE", "size": sizes[key], "maxSize": limit}
            sizes[key] = _size(parts[key])
        return parts


def on_entry(instance: Any) -> Context:
    """The variables of an expression evaluated on entering a step — ``assignees``' expression,
    a deadline's ``at`` — for no caller: the object's alone, no ``input`` (what
    ``root_variables(model, with_input=False)`` says, which the definition check uses)."""
    return Context(instance, None, with_input=False)


def _size(value: Any) -> int:
    """Bytes of ``value`` as clients receive it: compact JSON, non-ASCII escaped."""
    return len(json.dumps(value, separators=(",", ":")))
