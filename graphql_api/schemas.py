"""Which GraphQL schema to serve: ours, or a host project's.

The URL helper (:func:`graphql_api.urls.graphql_urls`), the view factory
(:func:`graphql_api.views.graphql_view`) and the ASGI helper
(:func:`graphql_api.live.routing.get_application`) all take the schema the same way, through
:func:`load_schema`:

* ``None``: django-steps' own schema (``graphql_api.schema.schema``);
* a schema object;
* a dotted path, ``"mysite.schema:schema"`` or ``"mysite.schema.schema"``;
* a callable taking no argument that returns the schema.

A path or a callable is resolved only when the helper runs. That is what makes ``asgi.py`` safe:
``get_application("mysite.schema:schema")`` sets Django up first and imports the schema module
(which imports models) afterwards, so ``AppRegistryNotReady`` cannot happen.

This module imports nothing that touches models: it may be imported before ``django.setup()``.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Union

from django.core.exceptions import ImproperlyConfigured
from strawberry.schema import Schema

__all__ = ["SchemaSpec", "load_schema"]

#: What the helpers accept as a schema (see the module docstring).
SchemaSpec = Union[Schema, str, Callable[[], Schema], None]


def load_schema(spec: SchemaSpec = None) -> Schema:
    """The schema ``spec`` names (django-steps' own for ``None``)."""
    if spec is None:
        from graphql_api.schema import schema  # builds every type: only when asked for

        return schema
    if isinstance(spec, Schema):
        return spec
    if isinstance(spec, str):
        value = _import(spec)
        if callable(value) and not isinstance(value, Schema):
            value = value()
    elif callable(spec):
        value = spec()
    else:
        raise ImproperlyConfigured(
            "A django-steps schema must be a strawberry.Schema, a dotted path or a callable, "
            f"not {type(spec).__name__}."
        )
    if not isinstance(value, Schema):
        raise ImproperlyConfigured(
            f"{spec!r} gave a {type(value).__name__}, not a strawberry Schema."
        )
    return value


def _import(path: str) -> object:
    module_name, sep, attribute = path.partition(":")
    if not sep:
        module_name, _, attribute = path.rpartition(".")
    if not module_name or not attribute:
        raise ImproperlyConfigured(
            f"{path!r} is not a dotted path to a schema (e.g. 'mysite.schema:schema')."
        )
    module = import_module(module_name)
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ImproperlyConfigured(
            f"Module {module_name!r} has no attribute {attribute!r}."
        ) from None
