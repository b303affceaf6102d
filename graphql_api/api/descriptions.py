"""Descriptions for the schema elements strawberry-django adds without one: its enums
``Ordering`` and ``OperationMessageKind`` and the ``filters`` / ``ordering`` arguments of list
fields. They are set on each built schema (:func:`describe_library_elements`, called by
:func:`~graphql_api.composition.compose_schema`), never on the library's shared objects.

Every element of the schema has a description (a test walks it by introspection): they are the
documentation client developers read in GraphiQL, their IDE and generated code.
"""

from __future__ import annotations

from graphql import GraphQLEnumType, GraphQLObjectType, GraphQLSchema, get_named_type

_ENUMS: dict[str, tuple[str, dict[str, str]]] = {
    "Ordering": (
        "The direction one field of an ordering input sorts in.",
        {
            "ASC": "Ascending: smallest, earliest, first in the alphabet first (items without a "
            "value where the database puts them: last on PostgreSQL, first on SQLite).",
            "ASC_NULLS_FIRST": "Ascending, items without a value first.",
            "ASC_NULLS_LAST": "Ascending, items without a value last.",
            "DESC": "Descending: largest, latest, last in the alphabet first (items without a "
            "value where the database puts them: first on PostgreSQL, last on SQLite).",
            "DESC_NULLS_FIRST": "Descending, items without a value first.",
            "DESC_NULLS_LAST": "Descending, items without a value last.",
        },
    ),
    "OperationMessageKind": (
        "What kind of message an `OperationMessage` is; `code` tells the exact reason.",
        {
            "INFO": "Information only (django-steps sends none).",
            "WARNING": "A warning only (django-steps sends none).",
            "ERROR": "The operation failed, e.g. NOT_FOUND or VERSION_CONFLICT.",
            "PERMISSION": "The viewer may not do this (PERMISSION_DENIED). Nothing was changed.",
            "VALIDATION": "The input is invalid; `field` names the input at fault when one is.",
        },
    ),
}

_ARGUMENTS = {
    "filters": "Only the items that match these conditions (every one given must match).",
    "ordering": "How to sort the items: one field per list item, the first item sorting first; "
    "ties and the default order are said on `{type}`.",
}


def describe_library_elements(schema: GraphQLSchema) -> None:
    """Describe, in ``schema``, the library's elements that have no description. An enum value
    the library adds one day without a description here stays undescribed, and the
    description test names it."""
    for name, (description, values) in _ENUMS.items():
        enum = schema.type_map.get(name)
        if not isinstance(enum, GraphQLEnumType):
            continue
        enum.description = enum.description or description
        for value_name, value in enum.values.items():
            value.description = value.description or values.get(value_name)
    for named in schema.type_map.values():
        if not isinstance(named, GraphQLObjectType) or named.name.startswith("__"):
            continue
        for field in named.fields.values():
            for arg_name, text in _ARGUMENTS.items():
                arg = field.args.get(arg_name)
                if arg is not None and not arg.description:
                    arg.description = text.format(type=get_named_type(arg.type).name)
