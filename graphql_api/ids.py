"""Turning Relay global IDs from clients into model rows, with stable error codes."""

from __future__ import annotations

from typing import TypeVar

from django.db.models import Model, QuerySet
from strawberry import relay
from strawberry.relay.types import GlobalIDValueError

from .errors import INVALID_ID, NOT_FOUND, ApiError, Kind

M = TypeVar("M", bound=Model)


def parse_global_id(raw: str, type_name: str, *, field: str = "id") -> int:
    """The primary key in ``raw``, which must be a global ID of ``type_name``."""
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


def get_by_global_id(queryset: QuerySet[M], raw: str, type_name: str, *, field: str = "id") -> M:
    """The row of ``queryset`` that ``raw`` names, or ``ApiError`` INVALID_ID / NOT_FOUND."""
    pk = parse_global_id(raw, type_name, field=field)
    obj = queryset.filter(pk=pk).first()
    if obj is None:
        raise ApiError(NOT_FOUND, f"No {type_name} has this ID.", field=field)
    return obj
