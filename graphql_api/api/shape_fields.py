"""The fields a definition part's GraphQL types take from :mod:`django_steps.shape`.

Each column of a part (a status's flags, a step's ``order``, a transition's ``condition`` …) is
shown on the part's output type, and each key is a field of the part's input, under its own
name, typed, defaulted and described as the shape declares it: adding a key to the shape adds
both fields, with no edit here, in ``types.py`` or in ``inputs.py``. A type or input still
declares by hand what the shape cannot say: ``name`` (worded for its parent), relations and
nested values (a step's ``assignees``, ``deadline``, ``statuses``), and a description worded
for the writer of a definition where it differs from the reader's.

The schema keeps its field order, so the decorators also say where the derived fields go.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import strawberry
import strawberry_django

from django_steps.shape import Key, Part

T = TypeVar("T", bound=type)

#: A key's Python type that is a GraphQL scalar (nested values are declared on the types).
_SCALARS = (bool, int, str)


def _derive(cls: type, part: Part, key: Key, field: Any) -> type:
    """Sets ``field`` as the class's field for ``key``; returns its annotation. A key without a
    scalar type or a description is declared on the class."""
    if key.type not in _SCALARS or not key.description:
        raise TypeError(f"declare {part.name}.{key.name} on {cls.__name__}")
    setattr(cls, key.name, field)
    return key.type


def shape_fields(part: Part, *, after: str = "name") -> Callable[[T], T]:
    """Class decorator (under ``strawberry_django.type``): the fields of ``part``'s columns that
    the class does not declare, ``description`` after ``name`` and the others after ``after``."""

    def add(cls: T) -> T:
        own = cls.__dict__.get("__annotations__", {})
        if after not in own:
            raise TypeError(f"{cls.__name__} has no field {after!r} to put the shape's after")
        derived = [k for k in part if k.column and k.name not in own and k.name not in vars(cls)]
        beside_name = [k for k in derived if k.name == "description" and "name" in own]
        rest = [k for k in derived if k not in beside_name]
        annotations = {}
        for name, annotation in own.items():
            annotations[name] = annotation
            added = (beside_name if name == "name" else []) + (rest if name == after else [])
            for key in added:
                field = strawberry_django.field(description=key.description)
                annotations[key.name] = _derive(cls, part, key, field)
        cls.__annotations__ = annotations
        return cls

    return add


def shape_inputs(part: Part) -> Callable[[T], T]:
    """Class decorator (under ``strawberry.input``): the fields of ``part``'s keys that the class
    does not declare, with the key's default; every field in the shape's order."""

    def add(cls: T) -> T:
        own = cls.__dict__.get("__annotations__", {})
        if set(own) - set(part.names):
            raise TypeError(f"{cls.__name__} declares fields that are not keys of {part.name}")
        annotations = {}
        for key in part:
            if key.name in own:
                annotations[key.name] = own[key.name]
            elif key.default is None:  # null or left out: the input decides what it means
                raise TypeError(f"declare {part.name}.{key.name} on {cls.__name__}")
            else:
                field = strawberry.field(default=key.default, description=key.description)
                annotations[key.name] = _derive(cls, part, key, field)
        cls.__annotations__ = annotations
        return cls

    return add
