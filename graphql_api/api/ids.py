"""Turning Relay global IDs from clients into model rows, with stable error codes.

A global ID carries the GraphQL name of its type. In a host project's schema one of our types
may have been renamed (``compose_schema(rename={"User": "WorkflowUser"})``): :func:`schema_name`
gives the name a type of ours has in the schema answering the request, and
:func:`our_name` the other way round.

Only the canonical form of an ID is accepted: exactly the text we hand out, base64 of
``<Type>:<primary key>`` with the key as ``str(int)`` writes it (ASCII digits, no ``+``, space or
leading zero; a negative key is well formed and names nothing: NOT_FOUND). Python's
``int()`` would read ``01``, `` 1``, ``+1``, ``1\n``, ``1_0`` or full-width digits as a key too,
so one object would have many IDs (a client cache keyed by ID holds duplicates, an ID-keyed
allow list is bypassed). Messages never repeat the ID or the type it names.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from django.db.models import Model, QuerySet
from strawberry import relay
from strawberry.relay.types import GlobalIDValueError

from django_steps.models import Workflow
from graphql_api.security.error_codes import ErrorCode, TransportCode
from graphql_api.security.errors import ApiError, Kind

M = TypeVar("M", bound=Model)

#: A primary key as ``str(int)`` writes it. A negative one is well formed but names nothing
#: (NOT_FOUND, as a key past the last row): it cannot be another spelling of an existing key.
_CANONICAL_KEY = re.compile(r"-?(?:0|[1-9][0-9]*)", re.ASCII)


#: The code of an ID that names nothing the viewer may see, for the types that have their own
#: (the engine's codes, the same in queries, mutations and subscriptions); ``NOT_FOUND`` for the
#: others (statuses, steps, users, events, versions).
_NOT_FOUND_CODES = {
    "WorkflowInstance": ErrorCode.INSTANCE_NOT_FOUND,
    "Workflow": ErrorCode.WORKFLOW_NOT_FOUND,
    "WorkItem": ErrorCode.WORK_ITEM_NOT_FOUND,
}

#: Every code :func:`parse_global_id` / :func:`get_by_global_id` give an ID of nothing.
NOT_FOUND_CODES = frozenset({TransportCode.NOT_FOUND, *_NOT_FOUND_CODES.values()})


def not_found(type_name: str, field: str | None = None, *, info: Any = None) -> ApiError:
    """The error for an ID of our type ``type_name`` that names nothing the viewer may see: a
    missing object and a hidden one look alike."""
    code = _NOT_FOUND_CODES.get(type_name, TransportCode.NOT_FOUND)
    return ApiError(code, f"No {schema_name(info, type_name)} has this ID.", field=field)


def _renames(info: Any) -> dict[str, str]:
    converter = getattr(
        getattr(getattr(info, "schema", None), "config", None), "name_converter", None
    )
    return dict(getattr(converter, "renames", None) or {})


def schema_name(info: Any, type_name: str) -> str:
    """The name our type ``type_name`` has in the schema of ``info`` (renamed by a host or not)."""
    return _renames(info).get(type_name, type_name) if info is not None else type_name


def our_name(info: Any, type_name: str) -> str:
    """The name in our own schema of the type a global ID of ``info``'s schema names."""
    if info is None:
        return type_name
    return {new: old for old, new in _renames(info).items()}.get(type_name, type_name)


def parse_global_id(raw: str, type_name: str, *, field: str = "id", info: Any = None) -> int:
    """The primary key in ``raw``, which must be the canonical global ID of an object of our type
    ``type_name`` (under the name it has in ``info``'s schema): INVALID_ID otherwise,
    :func:`not_found`'s code for a key no row can have."""
    ours, type_name = type_name, schema_name(info, type_name)
    invalid = ApiError(
        TransportCode.INVALID_ID, "Not a valid global ID.", kind=Kind.VALIDATION, field=field
    )
    try:
        gid = relay.GlobalID.from_id(str(raw))
    except (GlobalIDValueError, ValueError, TypeError):
        raise invalid from None
    if gid.type_name != type_name:
        raise ApiError(
            TransportCode.INVALID_ID,
            f"The global ID is of another type than {type_name}.",
            kind=Kind.VALIDATION,
            field=field,
        )
    node_id = gid.node_id
    if (
        _CANONICAL_KEY.fullmatch(node_id) is None
        or node_id == "-0"
        or relay.to_base64(gid.type_name, node_id) != raw
    ):
        raise invalid
    if len(node_id) > 19 or not 0 < int(node_id) < 2**63:
        raise not_found(ours, field, info=info)
    return int(node_id)


def workflow_named(
    info: Any,
    name: str | None,
    workflow_id: str | None,
    *,
    fields: tuple[str, str] = ("workflowName", "workflowId"),
) -> str:
    """The name of the workflow a client gives by ``name`` or by global ID ``workflow_id``
    (exactly one of them, the input fields ``fields``): BAD_USER_INPUT for both or neither;
    INVALID_ID / WORKFLOW_NOT_FOUND for an ID, as for any workflow ID. A name is returned as
    given (the caller looks it up as before)."""
    if (name is None) == (workflow_id is None):
        raise ApiError(
            TransportCode.BAD_USER_INPUT,
            f"Give either `{fields[0]}` or `{fields[1]}`.",
            kind=Kind.VALIDATION,
            field=fields[0],
        )
    if name is not None:
        return name
    return get_by_global_id(
        Workflow.objects.only("name"), workflow_id, "Workflow", field=fields[1], info=info
    ).name


def get_by_global_id(
    queryset: QuerySet[M], raw: str, type_name: str, *, field: str = "id", info: Any = None
) -> M:
    """The row of ``queryset`` that ``raw`` names, or ``ApiError`` INVALID_ID or
    :func:`not_found`'s code."""
    pk = parse_global_id(raw, type_name, field=field, info=info)
    obj = queryset.filter(pk=pk).first()
    if obj is None:
        raise not_found(type_name, field, info=info)
    return obj
