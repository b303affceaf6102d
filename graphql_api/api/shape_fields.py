"""The fields a definition part's GraphQL type takes from :mod:`django_steps.shape`.

Each column of a part (a status's flags, a step's ``order``, a transition's ``condition`` …) is
shown on the part's type under its own name, typed and described as the shape declares it:
adding a key to the shape adds its field, with no edit here or in ``types.py``. A type still
declares by hand what the shape cannot say: ``name`` (worded for its parent), relations, and
columns it shows through a resolver (a step's ``assignees``, ``deadline``).

The schema keeps its field order, so :func:`shape_fields` only says where the derived fields
go: ``description`` right after ``name`` (read together), the other columns after one field
of the type, in the shape's order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import strawberry_django

from django_steps.shape import Part

T = TypeVar("T", bound=type)

#: A column's Python type as a field annotation (nested values are declared on the types).
_SCALARS = (bool, int, str)


def shape_fields(part: Part, *, after: str = "name") -> Callable[[T], T]:
    """Class decorator (under ``strawberry_django.type``): the fields of ``part``'s columns that
    the class does not declare, ``description`` after ``name`` and the others after ``after``."""

    def add(cls: T) -> T:
        own = cls.__dict__.get("__annotations__", {})
        derived = [key for key in part if key.column and key.name not in own | vars(cls)]
        early = [key for key in derived if key.name == "description" and "name" in own]
        places = {after: [key for key in derived if key not in early]}
        places["name"] = early + places.get("name", [])
        if after not in own:
            raise TypeError(f"{cls.__name__} has no field {after!r} to put the shape's after")
        annotations = {}
        for name, annotation in own.items():
            annotations[name] = annotation
            for key in places.get(name, ()):
                if key.type not in _SCALARS or not key.description:
                    raise TypeError(f"declare {part.name}.{key.name} on {cls.__name__}")
                annotations[key.name] = key.type
                setattr(cls, key.name, strawberry_django.field(description=key.description))
        cls.__annotations__ = annotations
        return cls

    return add
