"""A patch of strawberry-graphql-django (0.93): a cloned QuerySet copies strawberry-django's
per-queryset config without ``dataclasses.replace``.

strawberry-django replaces ``QuerySet._clone`` (``strawberry_django/queryset.py``) so that every
clone carries a copy of its :class:`StrawberryDjangoQuerySetConfig` (optimized, ordering, …),
made with ``dataclasses.replace``. That function looks the dataclass's fields up, checks each
one and builds the keyword arguments on every call: several times the cost of calling the
constructor with the same values, on every ``filter``/``annotate``/``only``/``order_by`` of any
queryset in the process (dozens per GraphQL list request: the visibility rule, the optimizer,
the nested pages).

The copy here is the same one (a new config through the dataclass's ``__init__``, every field's
value shared as ``replace`` shares it), installed only over strawberry-django's own ``_clone``
and only while all the config's fields are ``__init__`` fields (what ``replace`` copies).
Upstream, the change would be ``_qs_clone`` calling ``type(config)(**vars(config))`` (or
``copy.copy``) instead of ``dataclasses.replace(config)``. Applied on import, by
:mod:`graphql_api.api.connections`.
"""

from __future__ import annotations

import dataclasses

from django.db.models.query import QuerySet
from strawberry_django import queryset as strawberry_queryset

__all__ = ["clone_with_config"]

_CONFIG = strawberry_queryset.StrawberryDjangoQuerySetConfig
_KEY = strawberry_queryset.CONFIG_KEY
_get_config = strawberry_queryset.get_queryset_config
_django_clone = strawberry_queryset._original_clone


def clone_with_config(self: QuerySet) -> QuerySet:
    """``QuerySet._clone`` with strawberry-django's config copied onto the clone."""
    config = _get_config(self)
    cloned = _django_clone(self)
    setattr(cloned, _KEY, type(config)(**vars(config)))
    return cloned


def _can_patch() -> bool:
    fields = dataclasses.fields(_CONFIG)
    return QuerySet._clone is strawberry_queryset._qs_clone and all(f.init for f in fields)  # type: ignore[attr-defined]


def _install() -> None:
    if _can_patch():
        QuerySet._clone = clone_with_config  # type: ignore[method-assign]


_install()
