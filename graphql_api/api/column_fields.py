"""A patch of strawberry-graphql-django (0.93): a field that only reads a model column resolves
as strawberry's own plain fields do.

strawberry resolves a "basic" field (no resolver, no field extension) with one call to its
``get_result``; any other field goes through a resolver that builds an ``Info``, converts the
arguments and chains the field extensions. strawberry-django declares none of its fields basic
(``StrawberryDjangoFieldBase.is_basic_field`` is always False: its fields may load relations,
run ``get_queryset`` or need ``Info`` to optimize), so ``state``, ``kind`` or ``createdAt`` of
every row took the longer path: 1,100 fields on a page of 100 instances with 3 events each,
12 % of the request's CPU (75.0 → 66.0 ms, swapping the resolvers in one process, interleaved).
A column needs none of it: strawberry-django's ``get_result`` reads it off the row (a deferred
one is loaded by ``django_getattr``, which needs no ``Info``).

So a field is basic here when it is a plain ``StrawberryDjangoField`` (no subclass), with no
resolver, no field extension and no permission class, on an output type, and names a concrete
model column that is not a relation or a file. The same ``get_result`` reads the same value;
the schema and every other field are as before. Our schema has no schema extension with a
per-field ``resolve`` hook (strawberry does not call those for basic fields); a host that adds
one to a composed schema still sees every field that is not a plain column.

Upstream, the change would be ``StrawberryDjangoFieldBase.is_basic_field`` answering this way
instead of ``False`` (strawberry-graphql-django, ``fields/base.py``). Applied on import, by
:mod:`graphql_api.api.connections`, before any type of ours is converted into a schema.
"""

from __future__ import annotations

from django.core.exceptions import FieldDoesNotExist
from django.db.models import FileField
from strawberry_django.fields.base import StrawberryDjangoFieldBase
from strawberry_django.fields.field import StrawberryDjangoField

__all__ = ["is_column_field"]


def is_column_field(field: StrawberryDjangoFieldBase) -> bool:
    """Whether ``field`` only reads a model column (see the module docstring)."""
    django_type = field.origin_django_type
    if (
        type(field) is not StrawberryDjangoField
        or field.base_resolver is not None
        or field.extensions
        or field.permission_classes
        or field.is_relation
        or django_type is None
        or django_type.is_input
        or django_type.is_filter
        or not field.django_name
    ):
        return False
    try:
        model_field = django_type.model._meta.get_field(field.django_name)
    except FieldDoesNotExist:
        return False
    return (
        model_field.concrete
        and not model_field.is_relation
        and not isinstance(model_field, FileField)
        and model_field.attname == field.django_name
    )


StrawberryDjangoFieldBase.is_basic_field = property(is_column_field)  # type: ignore[assignment]
