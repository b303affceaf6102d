"""Turning Relay global IDs from clients into model rows, with stable error codes.

A global ID carries the GraphQL name of its type. In a host project's schema one of our types
may have been renamed (``compose_schema(rename={"User": "WorkflowUser"})``): :func:`schema_name`
gives the name a type of ours has in the schema answering the request, and
:func:`our_name` the other way round.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.db.models import Model, QuerySet
from strawberry import relay
from strawberry.relay.types import GlobalIDValueError

from .errors import INVALID_ID, NOT_FOUND, ApiError, Kind

M = TypeVar("M", bound=Model)


def _renames(info: Any) -> dict[str, str]:
    converter = getattr(getattr(getattr(info, "schema", None), "config", None), "name_converter", None)
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
    """The primary key in ``raw``, which must be a global ID of our type ``type_name`` (under
    the name it has in ``info``'s schema)."""
    type_name = schema_name(info, type_name)
    try:
        gid = relay.GlobalID.from_id(str(raw))
    except (GlobalIDValueError, ValueError, TypeError):
        raise ApiError(INVALID_ID, f"{raw!r:.80} is not a valid global ID.", kind=Kind.VALIDATION, field=field)
    if gid.type_name != type_name:
        raise ApiError(
            INVALID_ID,
            f"The global ID is of type {gid.type_name!r:.80}, expected {type_name!r}.",
            kind=Kind.VALIDATION,
            field=field,
        )
    try:
        pk = int(gid.node_id)
    except (TypeError, ValueError):
        raise ApiError(INVALID_ID, f"The global ID names no {type_name}.", kind=Kind.VALIDATION, field=field)
    if not (0 < pk < 2**63):
        raise ApiError(NOT_FOUND, f"No {type_name} has this ID.", field=field)
    return pk


def get_by_global_id(queryset: QuerySet[M], raw: str, type_name: str, *, field: str = "id", info: Any = None) -> M:
    """The row of ``queryset`` that ``raw`` names, or ``ApiError`` INVALID_ID / NOT_FOUND."""
    pk = parse_global_id(raw, type_name, field=field, info=info)
    obj = queryset.filter(pk=pk).first()
    if obj is None:
        raise ApiError(NOT_FOUND, f"No {type_name} has this ID.", field=field)
    return obj
