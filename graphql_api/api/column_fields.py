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

**Row readers.** Even as a basic field, a column went through strawberry-django's ``get_result``
(argument checks, descriptor lookups, a closure per call), and a forward relation
(``workflow``, ``currentStep``) or an event's ``cursor`` still took the whole resolver path
(``Info``, argument conversion, the extension chain): 2,300 fields on the page above.
:func:`install_row_readers` (run by ``compose_schema`` on the built schema) gives such a field a
resolver that reads the value where strawberry-django would find it — the column in the row's
``__dict__``, the related row in Django's relation cache (``_state.fields_cache``) — and calls
strawberry's own resolver when it is not there (a deferred column, a relation not loaded with
the row), so the answer is the same either way. A resolver that only reads its parent
(``self``/``root``, no ``Info``, no argument, marked ``is_async_safe`` and returning a scalar or
an enum, like ``WorkflowEvent.cursor``) is called directly, and a Node type's ``id`` is built
from the row's primary key when the type keeps the stock ``resolve_id`` / ``resolve_typename``
(0.5 ms on that page, about noise). Fields with field extensions,
permission classes or another field class are left alone. A page of 100 instances with their
history: 60.2 → 53.9 ms CPU in process (columns 2.0 ms, relations 1.5 ms, ``cursor`` 2.6 ms,
each toggled alone; interleaved, one process, load 4). Upstream, the change would be
strawberry-django's fields resolving a cached value before building ``Info`` (``fields/base.py``
``get_result`` / strawberry's ``SchemaConverter.from_resolver``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db.models import FileField, Model
from graphql import GraphQLField, GraphQLObjectType, get_named_type, is_leaf_type
from strawberry import relay
from strawberry.types.base import StrawberryObjectDefinition
from strawberry_django.fields.base import StrawberryDjangoFieldBase
from strawberry_django.fields.field import StrawberryDjangoField
from strawberry_django.relay.utils import resolve_model_id

__all__ = ["install_row_readers", "is_column_field"]


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


#: Makes the reader of one field, or None: (its type's definition, the field, the GraphQL type's
#: name, the GraphQL field, whose ``resolve`` is strawberry's resolver).
ReaderFactory = Callable[[StrawberryObjectDefinition, Any, str, GraphQLField], Any]


def install_row_readers(schema: Any, *more: ReaderFactory) -> int:
    """Give each field of ``schema`` that reads only its row a resolver that reads it in place,
    falling back to strawberry's own when the value is not on the row (see "Row readers" in the
    module docstring); ``more`` makes readers for other fields (e.g. a nested page prefetched
    with its parent, :func:`graphql_api.api.connections.page_reader`). Returns how many fields
    got one."""
    graphql_schema = schema._schema
    name_of = schema.config.name_converter.get_graphql_name
    installed = 0
    for graphql_type in graphql_schema.type_map.values():
        if not isinstance(graphql_type, GraphQLObjectType):
            continue
        definition = schema.get_type_by_name(graphql_type.name)
        if not isinstance(definition, StrawberryObjectDefinition):
            continue
        for field in definition.fields:
            graphql_field = graphql_type.fields.get(name_of(field))
            if graphql_field is None or graphql_field.resolve is None:
                continue
            reader = _row_reader(field, graphql_field)
            for factory in (_global_id_reader, *more):
                if reader is None:
                    reader = factory(definition, field, graphql_type.name, graphql_field)
            if reader is not None:
                reader._is_default = field.base_resolver is None  # type: ignore[attr-defined]
                reader.__wrapped__ = graphql_field.resolve  # type: ignore[attr-defined]
                graphql_field.resolve = reader
                installed += 1
    return installed


def _row_reader(field: Any, graphql_field: GraphQLField) -> Callable[..., Any] | None:
    django_type = getattr(field, "origin_django_type", None)
    if (
        type(field) is not StrawberryDjangoField
        or field.extensions
        or field.permission_classes
        or django_type is None
        or django_type.is_input
        or django_type.is_filter
    ):
        return None
    full = graphql_field.resolve
    resolver = field.base_resolver
    if resolver is not None:
        return _plain_resolver_reader(resolver, graphql_field)
    try:
        model_field = django_type.model._meta.get_field(field.django_name or "")
    except FieldDoesNotExist:
        return None
    if is_column_field(field):
        attname = model_field.attname

        def read_column(source: Any, info: Any, **kwargs: Any) -> Any:
            try:
                return source.__dict__[attname]
            except (KeyError, AttributeError):  # deferred, or not a model row
                return full(source, info, **kwargs)

        return read_column
    if (
        (model_field.many_to_one or model_field.one_to_one)
        and model_field.concrete  # a forward foreign key or one-to-one
        and field.django_name == model_field.name  # not its ``_id`` column
    ):
        cache_name = model_field.cache_name

        def read_relation(source: Any, info: Any, **kwargs: Any) -> Any:
            try:
                return source._state.fields_cache[cache_name]
            except (KeyError, AttributeError):  # not loaded with the row
                return full(source, info, **kwargs)

        return read_relation
    return None


#: relay's ``Node.id`` resolver (``Node._id``), which every Node type's ``id`` field copies, and
#: the ``resolve_id`` / ``resolve_typename`` whose answers :func:`_global_id_reader` reproduces.
_NODE_ID = next(
    f for f in relay.Node.__strawberry_definition__.fields if f.python_name == "_id"
).base_resolver._unbound_wrapped_func  # type: ignore[union-attr]
_ID_READERS = (relay.Node.resolve_id.__func__, resolve_model_id)  # type: ignore[attr-defined]
_TYPENAME = relay.Node.resolve_typename.__func__  # type: ignore[attr-defined]


def _global_id_reader(
    definition: StrawberryObjectDefinition, field: Any, type_name: str, graphql_field: GraphQLField
) -> Callable[..., Any] | None:
    """The ``id`` of a Django ``Node`` type that keeps strawberry-django's ``resolve_id`` (or
    relay's) and relay's ``resolve_typename`` and names its id attribute (``_id_attr``): the
    global ID of the id in the row's ``__dict__`` under the type's GraphQL name (what
    ``info.path.typename`` is for a field of this type)."""
    origin = definition.origin
    resolver = field.base_resolver
    model = getattr(getattr(origin, "__strawberry_django_definition__", None), "model", None)
    if (
        resolver is None
        or model is None
        or field.extensions
        or field.permission_classes
        or resolver._unbound_wrapped_func is not _NODE_ID
        or not issubclass(origin, relay.Node)
        or getattr(origin.resolve_id, "__func__", None) not in _ID_READERS
        or getattr(origin.resolve_typename, "__func__", None) is not _TYPENAME
        or not isinstance(origin._id_attr, str)
    ):
        return None
    full = graphql_field.resolve
    attname = model._meta.pk.attname if origin._id_attr == "pk" else origin._id_attr

    def read_global_id(source: Any, info: Any, **kwargs: Any) -> Any:
        try:
            node_id = source.__dict__[attname] if isinstance(source, Model) else None
        except KeyError:  # deferred
            node_id = None
        if node_id is None:
            return full(source, info, **kwargs)
        return relay.GlobalID(type_name=type_name, node_id=str(node_id))

    return read_global_id


def _plain_resolver_reader(resolver: Any, graphql_field: GraphQLField) -> Any:
    if (
        resolver.is_async
        or not getattr(resolver.wrapped_func, "is_async_safe", False)
        or resolver.info_parameter is not None
        or resolver.arguments
        or not is_leaf_type(get_named_type(graphql_field.type))
    ):
        return None
    function = resolver.wrapped_func
    with_self = resolver.self_parameter is not None
    parents = [p.name for p in (resolver.root_parameter, resolver.parent_parameter) if p]

    def read_resolved(source: Any, info: Any, **kwargs: Any) -> Any:
        named = dict.fromkeys(parents, source)
        return function(source, **named) if with_self else function(**named)

    return read_resolved
