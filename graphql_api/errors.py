"""Errors as clients see them.

Mutations return ``<Type> | OperationInfo``. Every ``OperationMessage`` carries a machine-readable
``code``:

* the engine's own codes, ``WorkflowError.code`` (``VERSION_CONFLICT``, ``INSTANCE_FINISHED``,
  ``INSTANCE_ON_HOLD``, ``NOT_ON_HOLD``, ``NOT_AWAITING_TRANSITION``, ``UNKNOWN_STATUS``,
  ``CONDITION_ERROR``, ``CONDITION_SYNTAX_ERROR``, ``INVALID_DEFINITION``, ``WORKFLOW_IN_USE``,
  ``WORKFLOW_NOT_FOUND``, ``INSTANCE_NOT_FOUND``, ``OBJECT_NOT_FOUND``);
* codes of this layer: ``INVALID_ID`` (not a global ID, or one of another type), ``NOT_FOUND``
  (a well-formed global ID of nothing), ``PERMISSION_DENIED``, ``INVALID_CONTEXT`` (``context``
  is not a JSON object), ``INVALID_CREDENTIALS`` (``login``), ``BAD_USER_INPUT`` (bad pagination
  arguments or cursors, strings PostgreSQL cannot store).

Queries report problems as GraphQL errors whose ``extensions.code`` holds the same codes (and
``extensions.classification`` is ``BAD_USER_INPUT``). Anything else is a bug: it is logged and
masked as "Unexpected error." with code ``INTERNAL_SERVER_ERROR`` (see :func:`should_mask`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import DataError
from graphql import GraphQLError
from strawberry.relay.types import GlobalIDValueError
from strawberry.utils.str_converters import to_camel_case
from strawberry_django.fields.types import OperationInfo, OperationMessage

from django_steps.exceptions import (
    ConditionSyntaxError,
    InvalidDefinition,
    NotPermitted,
    UnknownStatus,
    WorkflowError,
)

logger = logging.getLogger("graphql_api")

Kind = OperationMessage.Kind

INVALID_ID = "INVALID_ID"
NOT_FOUND = "NOT_FOUND"
PERMISSION_DENIED = "PERMISSION_DENIED"
INVALID_CONTEXT = "INVALID_CONTEXT"
INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
BAD_USER_INPUT = "BAD_USER_INPUT"
INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"

#: Engine errors about what the client sent (the rest are ERROR: a state that refuses the change).
_VALIDATION_ERRORS = (InvalidDefinition, ConditionSyntaxError, UnknownStatus)


class ApiError(Exception):
    """An error of this layer with a stable code; becomes an ``OperationMessage``."""

    def __init__(self, code: str, message: str, *, kind: Kind = Kind.ERROR, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.kind = kind
        self.field = field


def permission_denied(message: str = "You do not have permission to perform this action.") -> ApiError:
    return ApiError(PERMISSION_DENIED, message, kind=Kind.PERMISSION)


def _path_to_field(path: str | None) -> str | None:
    if not path:
        return None
    return ".".join(to_camel_case(part) for part in str(path).split("."))


#: Messages echo client input (names, IDs); they are cut to this length.
MAX_MESSAGE = 1000


def _cut(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


def to_operation_info(error: Exception) -> OperationInfo:
    """Map an expected error to ``OperationInfo``; re-raise anything unexpected."""
    info = _to_operation_info(error)
    for message in info.messages:
        message.message = _cut(message.message)
    return info


def _to_operation_info(error: Exception) -> OperationInfo:
    if isinstance(error, ApiError):
        return OperationInfo(
            messages=[OperationMessage(kind=error.kind, message=error.message, field=error.field, code=error.code)]
        )
    if isinstance(error, PermissionDenied):
        return OperationInfo(
            messages=[
                OperationMessage(
                    kind=Kind.PERMISSION,
                    message=str(error) or "You do not have permission to perform this action.",
                    code=PERMISSION_DENIED,
                )
            ]
        )
    if isinstance(error, InvalidDefinition) and error.problems:
        return OperationInfo(
            messages=[
                OperationMessage(
                    kind=Kind.VALIDATION,
                    message=str(problem.get("message", error.message)),
                    field=_path_to_field(problem.get("path")),
                    code=error.code,
                )
                for problem in error.problems
            ]
        )
    if isinstance(error, WorkflowError):
        kind = Kind.VALIDATION if isinstance(error, _VALIDATION_ERRORS) else Kind.ERROR
        if isinstance(error, NotPermitted):
            kind = Kind.PERMISSION
        return OperationInfo(messages=[OperationMessage(kind=kind, message=error.message, code=error.code)])
    if is_unstorable_string_error(error):
        return OperationInfo(
            messages=[OperationMessage(kind=Kind.VALIDATION, message=UNSTORABLE_STRING, code=BAD_USER_INPUT)]
        )
    raise error


UNSTORABLE_STRING = "Strings must not contain NUL characters or unpaired surrogates."


def is_unstorable_string_error(error: BaseException | None) -> bool:
    """PostgreSQL cannot store NUL characters or unpaired surrogates; its driver refuses them."""
    return isinstance(error, UnicodeEncodeError) or (
        isinstance(error, (ValueError, DataError)) and "NUL (0x00)" in str(error)
    )


def returns_operation_info(resolver: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a mutation resolver: expected errors become ``OperationInfo``."""

    @functools.wraps(resolver)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return resolver(*args, **kwargs)
        except (ApiError, WorkflowError, PermissionDenied) as error:
            return to_operation_info(error)

    return wrapper


def query_error(code: str, message: str) -> GraphQLError:
    """An error for a query field caused by the request, readable by clients: ``extensions.code``
    holds the code, ``extensions.classification`` says it is the client's (``BAD_USER_INPUT``)."""
    return GraphQLError(message, extensions={"code": code, "classification": BAD_USER_INPUT})


def raise_for_query(error: Exception) -> None:
    """Re-raise an expected error of a query resolver as a readable GraphQL error."""
    if isinstance(error, (ApiError, WorkflowError)):
        raise query_error(error.code, _cut(error.message)) from error
    raise error


#: Errors whose message is meant for clients; everything else is masked.
_READABLE = (GraphQLError, WorkflowError, ApiError, PermissionDenied, GlobalIDValueError)


def should_mask(error: GraphQLError) -> bool:
    """Mask unexpected exceptions; keep syntax/validation/limit errors and domain errors readable."""
    original = error.original_error
    if original is None:
        return False  # parse / validation / limit errors: produced by graphql-core, safe to show
    if isinstance(original, _READABLE):
        return False
    logger.error("Unexpected error in GraphQL resolver", exc_info=original)
    return True
