"""Compose django-steps' GraphQL API into a host project's own strawberry schema.

Everything a host project needs is here (import it once Django is set up, e.g. from the module
that builds its schema)::

    from graphql_api.composition import WorkflowInstanceType, compose_schema

    schema = compose_schema(query=Query, mutation=Mutation, rename={"User": "WorkflowUser"})

:func:`compose_schema` merges the host's ``Query`` / ``Mutation`` / ``Subscription`` with ours
(:data:`Query`, :data:`Mutation`, :data:`Subscription`) and builds one ``strawberry.Schema``
with what our API needs to behave as documented, for every operation of that schema:

* our schema extensions (:func:`schema_extensions`: depth/alias/token limits, parser and
  validation caches, the introspection switch, error masking, the query optimizer), then the
  host's own (a host extension we already run is not added twice; a host's
  ``DjangoOptimizerExtension`` runs in place of ours,
  :class:`~graphql_api.security.extensions.QuerysetOptimizer`: give it
  ``prefetch_custom_queryset=True`` as ours has, or a definition's lists also show the steps,
  statuses and transitions a later version removed);
* our execution context (:class:`SharedEventExecutionContext`: a workflow event is executed
  once per identical subscription);
* name clashes settled by renaming *our* types in that schema only (``rename``): a host type
  called ``User`` composes once ours is renamed, e.g. to ``WorkflowUser``. Our own
  ``schema.graphql`` keeps its names. Types of the host are never renamed.

A field that both the host's root type and ours define is an error unless the host names it in
``replace`` (e.g. ``replace=["Query.node"]`` when the host's own ``node`` should resolve every
type): silently shadowing one of our fields could bypass its permission checks.

The object types below are for host types that expose our objects, e.g. an invoice's workflow
instance. Returning a *queryset* from such a resolver lets our type's ``get_queryset`` apply our
read rules (see README, "Extending our types").

Global IDs contain the GraphQL type name, so renaming one of our Relay ``Node`` types would
change its IDs in the host schema; that is refused for now (``ImproperlyConfigured``). Renaming
``User`` and every other non-``Node`` type works.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Mapping
from typing import Any

import strawberry
from django.core.exceptions import ImproperlyConfigured
from strawberry.exceptions import DuplicatedTypeName
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.name_converter import NameConverter
from strawberry.schema.types.base_scalars import DateTimeDefinition
from strawberry.types.base import StrawberryObjectDefinition, has_object_definition
from strawberry.types.enum import StrawberryEnumDefinition
from strawberry.types.lazy_type import LazyType
from strawberry.types.union import StrawberryUnion
from strawberry_django.optimizer import DjangoOptimizerExtension

from graphql_api.api.column_fields import install_row_readers
from graphql_api.api.connections import (
    CONNECTION_NAMES,
    fix_pagination_descriptions,
    page_reader,
)
from graphql_api.api.descriptions import describe_library_elements
from graphql_api.api.mutations import Mutation
from graphql_api.api.payloads import error_code_enums
from graphql_api.api.stats import Query  # the queries, with workflowStats
from graphql_api.api.types import (
    UserType,
    WorkflowEventType,
    WorkflowInstanceType,
    WorkflowStepStatusType,
    WorkflowStepType,
    WorkflowTransitionType,
    WorkflowType,
)
from graphql_api.live.counts import Subscription  # workflowInstanceEvents and workflowCounts
from graphql_api.live.execution import SharedEventExecutionContext
from graphql_api.security.errors import log_errors
from graphql_api.security.extensions import QuerysetOptimizer, schema_extensions

__all__ = [
    "Mutation",
    "Query",
    "Schema",
    "SharedEventExecutionContext",
    "Subscription",
    "UserType",
    "WorkflowEventType",
    "WorkflowInstanceType",
    "WorkflowStepStatusType",
    "WorkflowStepType",
    "WorkflowTransitionType",
    "WorkflowType",
    "compose_schema",
    "schema_extensions",
]

#: strawberry's DateTime, saying which format it is (``@specifiedBy``), so generated clients and
#: humans know what to parse. A host's own ``scalar_overrides`` for ``datetime`` win.
SCALARS = {
    datetime.datetime: dataclasses.replace(
        DateTimeDefinition,
        description="Date with time with its UTC offset, ISO 8601 (e.g. "
        "`2026-11-30T21:00:00.123456+00:00`).",
        specified_by_url="https://datatracker.ietf.org/doc/html/rfc3339#section-5.6",
    )
}


class Schema(strawberry.Schema):
    """strawberry's schema, logging errors with :func:`~graphql_api.security.errors.log_errors`
    (client
    errors in one line without a traceback, server faults with theirs) instead of every error
    at ERROR with a traceback. Every schema :func:`compose_schema` builds is one."""

    def process_errors(self, errors: list[Any], execution_context: Any = None) -> None:
        log_errors(errors, execution_context)

    def _get_middleware_manager(self, extensions: list[Any]) -> Any:
        # strawberry builds a MiddlewareManager per operation even when no extension has a
        # per-field ``resolve`` hook (ours have none), and graphql-core then asks that empty
        # manager to wrap every field's resolver (2,400 calls on a page of 100 instances with
        # their history, ~1 ms). None tells graphql-core there is no middleware. A host's
        # extension with a ``resolve`` hook still gets its manager.
        manager = super()._get_middleware_manager(extensions)
        return manager if manager.middlewares else None


#: Python packages whose GraphQL types ``rename`` may rename.
_OUR_PACKAGES = ("graphql_api", "django_steps")


def compose_schema(
    query: type | None = None,
    mutation: type | None = None,
    subscription: type | None = None,
    *,
    types: Iterable[Any] = (),
    extensions: Iterable[Any] = (),
    config: StrawberryConfig | None = None,
    rename: Mapping[str, str] | None = None,
    replace: Iterable[str] = (),
    **schema_options: Any,
) -> strawberry.Schema:
    """One schema with the host's root types merged with ours (see the module docstring).

    ``query``/``mutation``/``subscription`` are the host's root types (each optional);
    ``types`` and ``extensions`` are added to ours; ``config`` is the host's
    ``StrawberryConfig`` (copied, never changed); ``rename`` maps GraphQL names of our types to
    the names they get in this schema; ``replace`` lists root fields (``"Query.node"``) that the
    host's own definition replaces. Further keyword arguments go to ``strawberry.Schema``.
    """
    execution_context = schema_options.pop("execution_context_class", SharedEventExecutionContext)
    if not (
        isinstance(execution_context, type)
        and issubclass(execution_context, SharedEventExecutionContext)
    ):
        raise ImproperlyConfigured(
            "compose_schema() needs django-steps' execution context: pass a subclass of "
            "graphql_api.composition.SharedEventExecutionContext, or none."
        )
    config = dataclasses.replace(config) if config is not None else StrawberryConfig()
    converter: NameConverter = config.name_converter
    converter = config.name_converter = _renaming(config.name_converter, rename or {})
    wanted = set(replace)
    replaced: set[str] = set()
    roots = {
        name: _merge(name, host, ours, converter, wanted, replaced)
        for name, host, ours in (
            ("Query", query, Query),
            ("Mutation", mutation, Mutation),
            ("Subscription", subscription, Subscription),
        )
    }
    if wanted - replaced:
        raise ImproperlyConfigured(
            "replace= names fields that your root types do not share with django-steps': "
            f"{sorted(wanted - replaced)}."
        )
    try:
        schema_options["scalar_overrides"] = {
            **SCALARS,
            **(schema_options.get("scalar_overrides") or {}),
        }
        schema = Schema(
            query=roots["Query"],
            mutation=roots["Mutation"],
            subscription=roots["Subscription"],
            # each mutation's codes (`<Name>ErrorCode`), for generated clients
            types=[*error_code_enums(roots["Mutation"]), *types],
            extensions=_extensions(extensions),
            execution_context_class=execution_context,
            config=config,
            **schema_options,
        )
    except DuplicatedTypeName as error:
        clash = [c for c in (error.first_cls, error.second_cls) if _is_ours(c)]
        if not clash:
            raise
        name = (
            clash[0].__strawberry_definition__.name
            if has_object_definition(clash[0])
            else str(clash[0])
        )
        raise ImproperlyConfigured(
            f"{error.message}: by your types and django-steps'. Pass "
            f"rename={{{name!r}: 'Workflow{name}'}} (any free name) to compose_schema() to rename "
            "ours in this schema."
        ) from error
    fix_pagination_descriptions(schema._schema)
    describe_library_elements(schema._schema)
    install_row_readers(schema, page_reader)
    if rename:
        unused = set(rename) - converter.renamed  # type: ignore[attr-defined]
        if unused:
            raise ImproperlyConfigured(
                f"rename= names no type of django-steps: {sorted(unused)} (use the names in "
                "schema.graphql, e.g. 'User')."
            )
    return schema


def _merge(
    name: str,
    host: type | None,
    ours: type,
    converter: NameConverter,
    wanted: set[str],
    replaced: set[str],
) -> type:
    if host is None:
        return ours
    if not has_object_definition(host):
        raise ImproperlyConfigured(
            f"The {name} type given to compose_schema() is not a strawberry type."
        )
    host_fields = {converter.from_field(f): f for f in host.__strawberry_definition__.fields}
    our_fields = {converter.from_field(f): f for f in ours.__strawberry_definition__.fields}
    for field_name in sorted(host_fields.keys() & our_fields.keys()):
        qualified = f"{name}.{field_name}"
        if qualified not in wanted:
            raise ImproperlyConfigured(
                f"{qualified} is defined by your {name} type and by django-steps'. Rename yours, "
                f"or pass replace=[{qualified!r}] to compose_schema() to serve yours instead of "
                "ours."
            )
        if host_fields[field_name].python_name != our_fields[field_name].python_name:
            raise ImproperlyConfigured(
                f"To replace {qualified}, name your Python attribute "
                f"{our_fields[field_name].python_name!r}."
            )
        replaced.add(qualified)
    # A subclass of both, the host's type first: for a replaced field its definition wins (as in
    # strawberry.tools.merge_types).
    description = (
        host.__strawberry_definition__.description or ours.__strawberry_definition__.description
    )
    return strawberry.type(type(name, (host, ours), {}), name=name, description=description)


def _extensions(host_extensions: Iterable[Any]) -> list[Any]:
    ours = schema_extensions()
    our_classes = {e for e in ours if isinstance(e, type)}
    result = list(ours)
    for extension in host_extensions:
        cls = extension if isinstance(extension, type) else type(extension)
        if cls in our_classes:
            continue  # already runs for every operation
        if issubclass(cls, DjangoOptimizerExtension):
            # The host's first optimizer (e.g. with its per-field hook, for its own plain
            # resolvers returning querysets) runs in place of ours: one optimizer per operation.
            if QuerysetOptimizer in result:
                result[result.index(QuerysetOptimizer)] = extension
            continue
        result.append(extension)
    return result


class _RenameOurTypes:
    """Mixin for strawberry's ``NameConverter``: renames some of django-steps' types.

    Only types defined in ``graphql_api`` / ``django_steps`` are renamed (a host type of the same
    name keeps its name): object and input types, enums, and unions with one of our types as a
    member. ``renamed`` records which names were used.
    """

    renames: dict[str, str]
    renamed: set[str]

    def _rename(self, name: str, origin: Any) -> str:
        new = self.renames.get(name)
        if new is None or not _is_ours(origin):
            return name
        self.renamed.add(name)
        return new

    def from_object(self, object_type: StrawberryObjectDefinition) -> str:
        name = super().from_object(object_type)  # type: ignore[misc]
        return self._rename(name, object_type.origin)

    def from_enum(self, enum: StrawberryEnumDefinition) -> str:
        return self._rename(super().from_enum(enum), enum.wrapped_cls)  # type: ignore[misc]

    def from_union(self, union: StrawberryUnion) -> str:
        name = super().from_union(union)  # type: ignore[misc]
        members = [t.resolve_type() if isinstance(t, LazyType) else t for t in union.types]
        ours = next((m for m in members if _is_ours(m)), None)
        return self._rename(name, ours) if ours is not None else name


class _OurConnectionNames:
    """Mixin for strawberry's ``NameConverter``: our keyset connections keep the names clients
    already use (``WorkflowInstanceConnection``, ``WorkflowInstanceEdge``), not
    strawberry-django's ``…CursorConnection`` / ``…CursorEdge`` (see
    :mod:`graphql_api.api.connections`).
    Only connections of our own node types are named so."""

    def from_generic(self, generic_type: StrawberryObjectDefinition, types: list[Any]) -> str:
        name = super().from_generic(generic_type, types)  # type: ignore[misc]
        suffix = CONNECTION_NAMES.get(generic_type.name)
        nodes = [t.resolve_type() if isinstance(t, LazyType) else t for t in types]
        if suffix and nodes and all(_is_ours(node) for node in nodes):
            return name[: -len(generic_type.name)] + suffix
        return name


class _RememberedSpellings:
    """Mixin for strawberry's ``NameConverter``: each Python name's GraphQL spelling is converted
    once (``to_camel_case`` splits and joins the name on every call). The optimizer looks a
    selected field up by comparing the GraphQL names of its type's fields, so every request
    converted the same names again. The names are those of the schema's fields and arguments,
    so the memory is bounded by the schema (:data:`MAX_SPELLINGS` as a backstop)."""

    spellings: dict[tuple[str, bool], str]

    def apply_naming_config(self, name: str) -> str:
        key = (name, self.auto_camel_case)  # type: ignore[attr-defined]
        spelled = self.spellings.get(key)
        if spelled is None:
            spelled = super().apply_naming_config(name)  # type: ignore[misc]
            if len(self.spellings) < MAX_SPELLINGS:
                self.spellings[key] = spelled
        return spelled


#: At most this many spellings are remembered (a schema has far fewer names).
MAX_SPELLINGS = 10_000


def _renaming(converter: NameConverter, renames: Mapping[str, str]) -> NameConverter:
    """A copy of ``converter`` that also names our connections, renames our types (its own
    naming rules still apply) and remembers the spellings of names."""
    if len(set(renames.values())) != len(renames):
        raise ImproperlyConfigured("rename= gives two of django-steps' types the same name.")
    base = type(converter)
    mixins = (_RenameOurTypes, _OurConnectionNames, _RememberedSpellings)
    cls = type(f"Renaming{base.__name__}", (*mixins, base), {})
    copy = cls.__new__(cls)
    copy.__dict__.update(converter.__dict__)
    copy.renames = dict(renames)
    copy.renamed = set()
    copy.spellings = {}
    return copy


def _is_ours(origin: Any) -> bool:
    module = getattr(origin, "__module__", None) or ""
    return module.split(".", 1)[0] in _OUR_PACKAGES
