"""Errors as clients see them.

Mutations return ``<Type> | OperationInfo`` (``| VersionConflict`` for the changes of an
instance, :mod:`graphql_api.api.payloads`). Every ``OperationMessage`` carries a machine-readable
``code``:

* the engine's own codes, ``WorkflowError.code`` (``VERSION_CONFLICT``, ``INSTANCE_FINISHED``,
  ``INSTANCE_ON_HOLD``, ``NOT_ON_HOLD``, ``NOT_AWAITING_TRANSITION``, ``UNKNOWN_STATUS``,
  ``CONDITION_ERROR``, ``CONDITION_SYNTAX_ERROR``, ``INVALID_DEFINITION``, ``WORKFLOW_IN_USE``,
  ``WORKFLOW_NOT_FOUND``, ``INSTANCE_NOT_FOUND``, ``OBJECT_NOT_FOUND``);
* codes of this layer: ``INVALID_ID`` (not a global ID, or one of another type), ``NOT_FOUND``
  (a well-formed global ID of nothing, for kinds without their own ``*_NOT_FOUND``),
  ``PERMISSION_DENIED``, ``INVALID_CONTEXT`` (``context`` is not a JSON object),
  ``INVALID_CREDENTIALS`` (``login``), ``TOO_MANY_ATTEMPTS`` (``login`` while the client is
  locked out after repeated failures), ``BAD_USER_INPUT`` (bad pagination arguments or cursors,
  numbers that are not finite or out of range, oversized input, strings PostgreSQL cannot
  store).

Queries report problems as GraphQL errors whose ``extensions.code`` holds the same codes (and
``extensions.classification`` is ``PERMISSION_DENIED`` for ``PERMISSION_DENIED``, else
``BAD_USER_INPUT``: :func:`classification`); errors about the request itself carry
``GRAPHQL_PARSE_FAILED`` (syntax), ``GRAPHQL_VALIDATION_FAILED`` (not valid against the schema),
``BAD_USER_INPUT`` (a variable or argument value; ``extensions.field`` names it) or
``QUERY_TOO_COMPLEX`` (over the cost limit, :mod:`graphql_api.security.cost`) or ``TIMEOUT`` (over
the time
budget, :mod:`graphql_api.security.budget`). Anything else is a bug:
it is masked as "Unexpected error." with code ``INTERNAL_SERVER_ERROR``.

One place decides which is which, :func:`client_error`; the schema logs through
:func:`log_errors` (client errors in one line at INFO, or WARNING for the codes that suggest
abuse; server faults at ERROR with their traceback) and the masking extension shows clients
what :func:`client_error` returns.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, DataError
from graphql import GraphQLError
from strawberry.relay.types import GlobalIDValueError
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.utils.str_converters import to_camel_case

from django_steps.exceptions import (
    ConditionSyntaxError,
    InvalidDefinition,
    NotPermitted,
    UnknownStatus,
    WorkflowError,
)
from graphql_api.security.budget import RequestTimeout, is_timeout
from graphql_api.security.error_codes import ErrorCode, Kind, TransportCode, code_of
from graphql_api.security.error_codes import OperationInfoType as OperationInfo
from graphql_api.security.error_codes import OperationMessageType as OperationMessage

logger = logging.getLogger("graphql_api")


#: Engine errors about what the client sent (the rest are ERROR: a state that refuses the change).
_VALIDATION_ERRORS = (InvalidDefinition, ConditionSyntaxError, UnknownStatus)


class ApiError(Exception):
    """An error of this layer with a stable code; becomes an ``OperationMessage``."""

    def __init__(
        self, code: str, message: str, *, kind: Kind = Kind.ERROR, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.kind = kind
        self.field = field


def permission_denied(
    message: str = "You do not have permission to perform this action.",
) -> ApiError:
    return ApiError(ErrorCode.PERMISSION_DENIED, message, kind=Kind.PERMISSION)


def _path_to_field(path: str | None) -> str | None:
    if not path:
        return None
    return ".".join(to_camel_case(part) for part in str(path).split("."))


#: Messages are cut to this length (they name no client value, but a host's own may).
MAX_MESSAGE = 1000


def _cut(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


def to_operation_info(error: Exception) -> OperationInfo:
    """Map an expected error to ``OperationInfo``; re-raise anything unexpected."""
    return OperationInfo(
        messages=[
            OperationMessage(kind=kind, message=_cut(message), field=field, code=code_of(code))
            for kind, message, field, code in _messages(error)
        ]
    )


def _messages(error: Exception) -> list[tuple[Kind, str, str | None, str]]:
    """``(kind, message, field, code)`` of each message ``error`` becomes."""
    if isinstance(error, ApiError):
        return [(error.kind, error.message, error.field, error.code)]
    if isinstance(error, PermissionDenied):
        return [
            (
                Kind.PERMISSION,
                str(error) or "You do not have permission to perform this action.",
                None,
                ErrorCode.PERMISSION_DENIED,
            )
        ]
    if isinstance(error, InvalidDefinition) and error.problems:
        return [
            (
                Kind.VALIDATION,
                str(problem.get("message", error.message)),
                _path_to_field(problem.get("path")),
                error.code,
            )
            for problem in error.problems
        ]
    if isinstance(error, WorkflowError):
        kind = Kind.VALIDATION if isinstance(error, _VALIDATION_ERRORS) else Kind.ERROR
        if isinstance(error, NotPermitted):
            kind = Kind.PERMISSION
        field = error.details.get("field") if isinstance(error.details.get("field"), str) else None
        return [(kind, error.message, field, error.code)]
    if isinstance(error, ValidationError):  # a model's own validation (e.g. a host's clean())
        fields = getattr(error, "error_dict", None) or {None: error.error_list}
        return [
            (
                Kind.VALIDATION,
                " ".join(str(m) for m in ValidationError(item).messages),
                _path_to_field(name),
                TransportCode.BAD_USER_INPUT,
            )
            for name, items in fields.items()
            for item in items
        ]
    if is_unstorable_string_error(error):
        return [(Kind.VALIDATION, UNSTORABLE_STRING, None, TransportCode.BAD_USER_INPUT)]
    raise error


UNSTORABLE_STRING = "Strings must not contain NUL characters or unpaired surrogates."


def is_unstorable_string_error(error: BaseException | None) -> bool:
    """PostgreSQL cannot store NUL characters or unpaired surrogates; its driver refuses them."""
    return isinstance(error, UnicodeEncodeError) or (
        isinstance(error, (ValueError, DataError)) and "NUL (0x00)" in str(error)
    )


def classification(code: str) -> str:
    """``extensions.classification`` of a client error with ``code``: ``PERMISSION_DENIED`` for a
    refusal of who asks (as mutations say ``kind: PERMISSION``), else ``BAD_USER_INPUT`` (the
    client's, not a fault of the server). The same on every path: HTTP queries, subscriptions
    and operations over a WebSocket."""
    if code == ErrorCode.PERMISSION_DENIED:
        return ErrorCode.PERMISSION_DENIED
    return TransportCode.BAD_USER_INPUT


def query_error(code: str, message: str, *, field: str | None = None) -> GraphQLError:
    """An error for a query field caused by the request, readable by clients: ``extensions.code``
    holds the code, ``extensions.classification`` whose it is (:func:`classification`),
    ``extensions.field`` names the argument at fault, if one is."""
    extensions = {"code": code, "classification": classification(code)}
    if field is not None:
        extensions["field"] = field
    return GraphQLError(message, extensions=extensions)


def raise_for_query(error: Exception) -> None:
    """Re-raise an expected error of a query resolver as a readable GraphQL error."""
    if isinstance(error, (ApiError, WorkflowError)):
        raise query_error(error.code, _cut(error.message)) from error
    raise error


# ------------------------------------------------------------------ client error or fault?

#: Client errors logged at WARNING (they suggest abuse); the others at INFO.
WARNING_CODES = frozenset(
    {TransportCode.QUERY_TOO_COMPLEX, TransportCode.TOO_MANY_ATTEMPTS, TransportCode.TIMEOUT}
)

_RELAY_SOURCES = (
    f"{os.sep}strawberry{os.sep}relay{os.sep}",
    f"{os.sep}strawberry_django{os.sep}relay{os.sep}",
)

#: graphql-core's messages about variable values (raised while coercing them, no path).
_VARIABLE_VALUE_MARKERS = ("invalid value", "was not provided", "must not be null")


_VARIABLE = re.compile(r"^Variable '\$(\w+)'")
_VARIABLE_PATH = re.compile(r" at '(\w+(?:\.\w+|\[\d+\])*)'")


def _with_code(error: GraphQLError, code: str, message: str | None = None) -> GraphQLError:
    extensions = dict(error.extensions or {})
    extensions.setdefault("code", code)
    extensions.setdefault("classification", classification(extensions["code"]))
    if code == TransportCode.BAD_USER_INPUT and "field" not in extensions:
        variable = _VARIABLE.match(error.message)
        if variable:
            path = _VARIABLE_PATH.search(error.message)
            extensions["field"] = path.group(1) if path else variable.group(1)
    return reworded(error, (message or error.message)[:MAX_MESSAGE], extensions)


def reworded(
    error: GraphQLError, message: str, extensions: dict[str, Any] | None = None
) -> GraphQLError:
    """``error`` with another message (and ``extensions``, if given), at the same place in the
    document and the result, raised by the same exception."""
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=error.original_error,
        extensions=error.extensions if extensions is None else extensions,
    )


def _request_error_code(error: GraphQLError) -> str:
    """The code of an error graphql-core raised about the request itself."""
    message = error.message
    if message.startswith("Syntax Error"):
        return TransportCode.GRAPHQL_PARSE_FAILED
    if message.startswith("Variable '$") and any(
        marker in message for marker in _VARIABLE_VALUE_MARKERS
    ):
        return TransportCode.BAD_USER_INPUT
    return TransportCode.GRAPHQL_VALIDATION_FAILED


def _raised_in_pagination(original: BaseException) -> bool:
    """A ValueError/TypeError raised by strawberry's relay code (bad ``first``/``last``/cursor),
    or a value the database cannot compare raised below it (a cursor holding a huge number)."""
    if isinstance(original, GraphQLError):
        return False
    frames = []
    tb = original.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    if not frames:
        return False
    if isinstance(original, (ValueError, TypeError)) and any(
        source in frames[-1] for source in _RELAY_SOURCES
    ):
        return True
    if isinstance(original, (OverflowError, DataError)) or (
        isinstance(original, DatabaseError) and "datatype mismatch" in str(original)
    ):
        return any(source in frame for frame in frames for source in _RELAY_SOURCES)
    return False


def client_error(error: GraphQLError) -> GraphQLError | None:
    """``error`` as its client should see it (with ``extensions.code``), or None when it is a
    server fault. The one place that tells the two apart."""
    original = error.original_error
    code = (error.extensions or {}).get("code")
    if original is None:
        if error.path is not None and code is None:
            return None  # graphql-core found a resolver's result invalid (e.g. null for non-null)
        return error if code else _with_code(error, _request_error_code(error))
    if isinstance(original, GraphQLError) or (error.path is None and error.nodes):
        # validation or variable coercion: an argument or variable value graphql-core could not
        # parse (its parser's exception is kept as the original error)
        return error if code else _with_code(error, _request_error_code(error))
    if isinstance(original, (ApiError, WorkflowError)):
        return error if code else _with_code(error, original.code)
    if isinstance(original, PermissionDenied):
        return error if code else _with_code(error, ErrorCode.PERMISSION_DENIED)
    if isinstance(original, GlobalIDValueError):
        return error if code else _with_code(error, TransportCode.INVALID_ID)
    if isinstance(original, InvalidOperationTypeError):
        # A query or mutation where only subscriptions run: the legacy graphql-ws protocol.
        kind = original.operation_type.value.capitalize()
        return _with_code(error, TransportCode.BAD_REQUEST, _NOT_A_SUBSCRIPTION.format(kind=kind))
    if is_unstorable_string_error(original):
        return _with_code(error, TransportCode.BAD_USER_INPUT, UNSTORABLE_STRING)
    if is_timeout(original):  # over DJANGO_STEPS_GRAPHQL["MAX_SECONDS"] (graphql_api/budget.py)
        return _with_code(error, TransportCode.TIMEOUT, str(RequestTimeout()))
    if _raised_in_pagination(original):
        message = str(original)
        if message.startswith("Argument '"):
            return _with_code(error, TransportCode.BAD_USER_INPUT, message)
        readable = _with_code(error, TransportCode.BAD_USER_INPUT, "Invalid pagination cursor.")
        cursors = _cursor_arguments(error)
        if cursors:
            readable.extensions["field"] = ",".join(cursors)
        return readable
    return None


_NOT_A_SUBSCRIPTION = (
    "{kind} operations cannot be sent this way: the legacy graphql-ws protocol carries "
    "subscriptions only. Send them over HTTP or a graphql-transport-ws socket."
)


def _cursor_arguments(error: GraphQLError) -> list[str]:
    """The cursor arguments (``after``, ``before``) the failing connection field was given."""
    node = (error.nodes or [None])[0]
    names = [argument.name.value for argument in getattr(node, "arguments", None) or ()]
    return [name for name in ("after", "before") if name in names]


def should_mask(error: GraphQLError) -> bool:
    """Mask server faults; client errors stay readable."""
    return client_error(error) is None


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def log_errors(errors: Iterable[GraphQLError], execution_context: Any = None) -> None:
    """Log each error once: a client error in one line (INFO, WARNING for
    :data:`WARNING_CODES`), a server fault at ERROR with its traceback. A client error that
    has no ``extensions.code`` yet (one found before execution) gets it here."""
    operation = getattr(execution_context, "operation_name", None) or "-"
    for error in errors:
        where = ".".join(str(part) for part in error.path) if error.path else "-"
        readable = client_error(error)
        if readable is None:
            logger.error(
                "GraphQL server error in operation %s at %s: %s",
                operation,
                where,
                _one_line(error.message),
                exc_info=error.original_error,
            )
            continue
        code = readable.extensions.get("code")
        if not (error.extensions or {}).get("code"):
            # Errors found before execution (parse, validation) reach the client as they are:
            # give them their code too (one error model: every error has a code).
            error.extensions = {**readable.extensions, **(error.extensions or {})}
        level = logging.WARNING if code in WARNING_CODES else logging.INFO
        if logger.isEnabledFor(level):
            logger.log(
                level,
                "GraphQL client error %s in operation %s at %s: %s",
                code,
                operation,
                where,
                _one_line(readable.message),
            )
