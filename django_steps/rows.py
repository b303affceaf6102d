"""Model instances and statement parameters on the change path, without the ORM's per-field
machinery where it would do nothing.

Every change reads one row of four models and writes some twenty-five values
(:mod:`django_steps.history`). Django builds a model from a row through ``Model.__init__`` (a
``setattr`` per field, through the foreign keys' descriptors, and the ``pre_init`` /
``post_init`` signals) and prepares each value through ``pre_save`` and ``get_db_prep_save``
(two to four calls per field). Both are only shortened where that gives the very same result:

- :func:`from_row` fills a model's ``__dict__`` directly when the model has neither its own
  ``__init__`` nor ``from_db``, its fields' attributes are Django's own descriptors and nothing
  listens to its ``pre_init`` / ``post_init`` (a host's model may have any of these: then
  ``Model.from_db`` builds it, as before); :func:`new` builds a new, unsaved object the same
  way, as ``Model(**values)`` would (each field not given takes its default);
- :func:`parameters` skips the calls that would return an ``int``, ``str`` or ``None`` as it
  is (see :func:`_shortcut`) and keeps Django's path for everything else (dates, JSON, fields
  with their own ``pre_save``, any field class of a host). A text choice (``EventKind.ADVANCED``)
  goes as its plain text: Django would pass the member itself, which psycopg sends as that
  same text, but finds its adapter by walking the enum's classes on every statement.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC
from typing import Any

from django.db import models
from django.db.models.base import ModelState
from django.db.models.fields import AutoFieldMixin, return_None
from django.db.models.signals import post_init, pre_init
from django.utils import timezone

__all__ = ["from_row", "new", "parameters", "read_as"]

_DJANGO = "django.db.models."
_NONE = type(None)
_SAME, _INTEGER, _NOW = "same", "integer", "now"
_TEXT = (str, _NONE)

#: id(field) -> (field, its shortcut): by id, as a Field hashes in Python; the field is kept, so
#: its id is never reused while cached
_plain: dict[int, tuple[Any, tuple[str, tuple[type, ...]] | None]] = {}


def _shortcut(field: Any) -> tuple[str, tuple[type, ...]] | None:
    """How ``get_db_prep_save`` treats plain values of ``field`` (Django's own field classes):
    a foreign key to an auto primary key and a text field return an ``int`` / ``str`` as it is
    (``int()``, ``str()``, ``validate_autopk_value``); an integer field returns
    ``connection.ops.adapt_integerfield_value(value)`` after ``int()``. ``None`` stays ``None``,
    also for a JSON field (SQL ``NULL``) and a date and time set by no ``auto_now(_add)``. A
    date and time set by ``auto_now(_add)`` is ``timezone.now()``, set on the object, and sent
    through ``connection.ops.adapt_datetimefield_value`` (what ``pre_save`` and
    ``get_db_prep_save`` do: ``get_prep_value`` returns an aware or, without ``USE_TZ``, a naive
    ``datetime`` of ``timezone.now()`` as it is)."""
    cached = _plain.get(id(field))
    if cached is not None and cached[0] is field:
        return cached[1]
    shortcut = None
    if type(field) is models.DateTimeField and (field.auto_now or field.auto_now_add):
        shortcut = (_NOW, ())
    elif type(field) is models.JSONField or type(field) is models.DateTimeField:
        shortcut = (_SAME, (_NONE,))
    elif type(field).pre_save is models.Field.pre_save and type(field).__module__.startswith(
        _DJANGO
    ):
        if isinstance(field, models.ForeignKey):
            target = field.target_field
            if isinstance(target, AutoFieldMixin) and type(target).__module__.startswith(_DJANGO):
                shortcut = (_SAME, (int, _NONE))
        elif isinstance(field, AutoFieldMixin):
            shortcut = (_SAME, (int, _NONE))
        elif isinstance(field, models.IntegerField):
            shortcut = (_INTEGER, (int, _NONE))
        elif isinstance(field, (models.CharField, models.TextField)):
            shortcut = (_SAME, _TEXT)
    _plain[id(field)] = (field, shortcut)
    return shortcut


#: (prefix, id of each field) -> for each field: (parameter name, attname, field, its shortcut's
#: kind and types, its internal type); the fields are kept, so their ids are never reused
_plans: dict[tuple, tuple[tuple[str, str, Any, str | None, tuple[type, ...], str], ...]] = {}


def _plan(prefix: str, fields: Iterable[Any]) -> tuple:
    fields = tuple(fields)
    key = (prefix, *map(id, fields))
    plan = _plans.get(key)
    if plan is None:
        plan = _plans[key] = tuple(
            (prefix + field.column, field.attname, field, *(_shortcut(field) or (None, ())))
            + (field.get_internal_type(),)
            for field in fields
        )
    return plan


def parameters(
    params: dict[str, Any], prefix: str, fields: Iterable[Any], obj: Any, add: bool, connection
) -> None:
    """``params[prefix + column]``: each field's value of ``obj`` as saving it would send it."""
    if obj is None:
        return
    values = obj.__dict__
    adapt = connection.ops.adapt_integerfield_value
    for name, attname, field, kind, types, internal in _plan(prefix, fields):
        value = values.get(attname, values)  # ``values``: not loaded (deferred)
        if type(value) in types:  # no shortcut: no types
            if kind is _INTEGER and value is not None:
                value = adapt(value, internal)
        elif types is _TEXT and isinstance(value, str) and isinstance(value, models.Choices):
            value = str.__str__(value)  # the member's text, as the text field sends it
        elif kind is _NOW and (add or field.auto_now):
            value = timezone.now()
            setattr(obj, attname, value)
            value = connection.ops.adapt_datetimefield_value(value)
        else:
            value = field.get_db_prep_save(field.pre_save(obj, add=add), connection)
        params[name] = value


_direct: dict[type, bool] = {}


def _buildable(model: type[models.Model]) -> bool:
    direct = _direct.get(model)
    if direct is None:
        direct = _direct[model] = (
            model.__init__ is models.Model.__init__
            and model.from_db.__func__ is models.Model.from_db.__func__
            and all(  # nothing a descriptor of another library would do on assignment
                type(getattr(model, field.attname, None)).__module__.startswith(_DJANGO)
                for field in model._meta.concrete_fields
            )
        )
    return (
        direct
        and not (pre_init.receivers and pre_init.has_listeners(model))
        and not (post_init.receivers and post_init.has_listeners(model))
    )


def from_row(
    model: type[models.Model], using: str, attnames: Sequence[str], values: Sequence[Any]
) -> models.Model:
    """``model.from_db(using, attnames, values)``, or the same object built directly (see the
    module docstring). Fields not in ``attnames`` are deferred, as with ``from_db``."""
    if not _buildable(model):
        return model.from_db(using, attnames, values)
    obj = model.__new__(model)
    state = obj._state = ModelState()
    state.adding = False
    state.db = using
    obj.__dict__.update(zip(attnames, values, strict=True))
    return obj


#: model -> its concrete fields as (attname, the field, or None when its default is None), for
#: :func:`new`
_attnames: dict[type, tuple[tuple[str, Any], ...]] = {}


def _no_default(field: Any) -> bool:
    """Whether ``field.get_default()`` is always None: Django's own ``get_default`` (a foreign
    key's returns its field's, None) with neither a default nor a database default, where text
    is nullable or not allowed empty (Django's ``_get_default`` is then ``return_None``)."""
    return (
        type(field).get_default in (models.Field.get_default, models.ForeignKey.get_default)
        and field._get_default is return_None
    )


def new(model: type[models.Model], related: dict[str, Any], values: dict[str, Any]) -> models.Model:
    """``model(**related, **values)``: a new, unsaved object — ``related``: foreign keys by
    name, each an object or None, set through their descriptors as ``__init__`` does;
    ``values``: other fields by attname; the rest take their default — or the same object
    built directly (see the module docstring)."""
    if not _buildable(model):
        return model(**related, **values)
    fields = _attnames.get(model)
    if fields is None:
        fields = _attnames[model] = tuple(
            (f.attname, None if _no_default(f) else f) for f in model._meta.concrete_fields
        )
    obj = model.__new__(model)
    obj._state = ModelState()  # adding, no database yet: as __init__ leaves it
    data = obj.__dict__
    for attname, field in fields:
        if attname in values:
            data[attname] = values[attname]
        else:
            data[attname] = None if field is None else field.get_default()
    for name, target in related.items():
        setattr(obj, name, target)  # the descriptor: as __init__ sets it (cache, database)
    return obj


def read_as(connection: Any, field: Any, column: str) -> tuple[str, list]:
    """How the change path's read selects ``column`` (SQL) of ``field``, and the converters
    (Django's signature) that make what it selects the value Django's own read gives, to run
    before Django's: the column as it is, except a ``timestamptz`` on PostgreSQL whose
    connection is in UTC (``USE_TZ``, Django's default): Django reads one through its own
    loader, a subclass of psycopg's pure-Python one that then replaces the time zone; selected
    as the UTC ``timestamp`` it is, psycopg's loader (C, with psycopg's binary or C package)
    reads it and :func:`_in_utc` sets the zone: the same aware ``datetime``. (Other zones keep
    Django's loader: a wall-clock time would lose which of a repeated hour it was.)"""
    if (
        connection.vendor == "postgresql"
        and connection.timezone is UTC
        and field.db_type(connection) == "timestamp with time zone"
    ):
        return f"({column} AT TIME ZONE 'UTC')", [_in_utc]
    return column, []


def _in_utc(value: Any, expression: Any, connection: Any) -> Any:
    return value if value is None else value.replace(tzinfo=UTC)
