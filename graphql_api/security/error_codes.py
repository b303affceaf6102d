"""Every code a client of the API can meet, as one enum: ``WorkflowErrorCode`` in the schema.

One list for every channel an error takes:

* mutation results: ``OperationInfo.messages[].code`` is typed with this enum, so a generated
  client can switch on it exhaustively;
* query and subscription errors: ``errors[].extensions.code``;
* requests refused before GraphQL runs (CSRF, bad bodies): the same JSON error shape, same codes.

The engine's codes are declared once, in :mod:`django_steps.error_codes` (the exceptions use
them); this layer declares its own in :class:`TransportCode`, and the GraphQL enum is assembled
from the two. A test checks that every code raised anywhere is a member, and that the table in
docs/graphql.md lists exactly these (tests/graphql_api/security/test_error_codes.py).
"""

from __future__ import annotations

import enum

import strawberry

from django_steps.error_codes import DescribedCode, ErrorCode

__all__ = ["ErrorCode", "TransportCode", "WorkflowErrorCode", "code_of"]


class TransportCode(DescribedCode):
    """The codes of this layer: who may see what, what the client sent, refused requests."""

    # --- who may do what
    NOT_FOUND = (
        "NOT_FOUND",
        "A well-formed ID of nothing the viewer may see (missing and hidden look alike), of a "
        "kind without its own code (a status, step, user, event): an instance, a workflow and a "
        "work item have `INSTANCE_NOT_FOUND`, `WORKFLOW_NOT_FOUND` and `WORK_ITEM_NOT_FOUND`.",
    )
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS", "`login` failed."
    TOO_MANY_ATTEMPTS = "TOO_MANY_ATTEMPTS", "`login` refused for a while after repeated failures."
    # --- what the client sent
    INVALID_ID = "INVALID_ID", "Not a global ID, or one of another type (`field` names the input)."
    INVALID_CURSOR = (
        "INVALID_CURSOR",
        "Not an event cursor (malformed or out of range): pass back an event's `cursor`. A "
        "well-formed cursor past the newest event is not refused: it reads as the newest the "
        "viewer may see.",
    )
    BAD_USER_INPUT = (
        "BAD_USER_INPUT",
        "A value the server cannot take (`extensions.field` names where, never the value).",
    )
    QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX", "Over the cost limit: ask for fewer objects."
    TIMEOUT = (
        "TIMEOUT",
        "The request ran over its time budget (`MAX_SECONDS`) and was stopped. A mutation's change "
        "is all or nothing: read the object again to know which. Ask for less, or retry later.",
    )
    EVENT_TOO_LARGE = (
        "EVENT_TOO_LARGE",
        "A subscription event too large for one WebSocket message; the subscription ends. "
        "`extensions.cursor` is the event's: read it over HTTP, then subscribe again `after` it.",
    )
    RESULT_TOO_LARGE = (
        "RESULT_TOO_LARGE",
        "Any other result too large for one WebSocket message: ask over HTTP.",
    )
    TOO_MANY_OPERATIONS = (
        "TOO_MANY_OPERATIONS",
        "Too many operations running at once on one WebSocket (`WEBSOCKET_MAX_OPERATIONS`, 10): "
        "complete one, or wait for one to end, before starting another. The others go on.",
    )
    TOO_MANY_CONNECTIONS = (
        "TOO_MANY_CONNECTIONS",
        "Too many WebSockets open for one user (`WEBSOCKET_MAX_CONNECTIONS_PER_USER`, 10, per "
        "server process), or without a login from one address "
        "(`WEBSOCKET_MAX_ANONYMOUS_PER_ADDRESS`, 50): the new socket is closed with code 4429 "
        "and this reason. Close one first.",
    )
    CONSUMER_TOO_SLOW = (
        "CONSUMER_TOO_SLOW",
        "The WebSocket was closed (code 4413, this reason) because its client read too slowly: "
        "connect again and subscribe with `after` the last cursor received; nothing is lost.",
    )
    CURSOR_TOO_OLD = (
        "CURSOR_TOO_OLD",
        "More events follow the subscription's `after` than a replay sends "
        "(`SUBSCRIPTION_REPLAY_WINDOW`): catch up over HTTP with `workflowEvents`, then subscribe "
        "`after` the cursor it returned. Nothing was sent.",
    )
    GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED", "The document is not GraphQL."
    GRAPHQL_VALIDATION_FAILED = (
        "GRAPHQL_VALIDATION_FAILED",
        "Not valid against the schema, or over a depth/alias/token limit.",
    )
    # --- refused before GraphQL runs (HTTP)
    CSRF_FAILED = "CSRF_FAILED", "A POST without a valid CSRF token (403)."
    BAD_REQUEST = (
        "BAD_REQUEST",
        "Not a GraphQL request (400): also a subscription sent over HTTP (subscriptions need the "
        "WebSocket), and on a legacy `graphql-ws` socket a malformed message or a query or "
        "mutation (it carries subscriptions only).",
    )
    REQUEST_TOO_LARGE = (
        "REQUEST_TOO_LARGE",
        "The request body or the GraphQL document is over the server's size limit (413 over "
        "HTTP; `MAX_DOCUMENT_BYTES`, `ANONYMOUS_MAX_DOCUMENT_BYTES` for documents): send less.",
    )
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED", "Neither GET nor POST (405)."
    # --- persisted queries (Apollo's APQ protocol; `PERSISTED_QUERIES`)
    PERSISTED_QUERY_NOT_FOUND = (
        "PERSISTED_QUERY_NOT_FOUND",
        "A `persistedQuery` hash without `query` that the server does not know: send the hash "
        "with the query once (Apollo's and urql's persisted-query links do it by themselves).",
    )
    PERSISTED_QUERY_NOT_SUPPORTED = (
        "PERSISTED_QUERY_NOT_SUPPORTED",
        "A `persistedQuery` hash without `query` while persisted queries are off: send the query.",
    )
    PERSISTED_QUERY_NOT_IN_LIST = (
        "PERSISTED_QUERY_NOT_IN_LIST",
        'The server accepts registered documents only (`PERSISTED_QUERIES: "only"`) and this is '
        "none of them (`manage.py register_documents` registers a client's documents) (400).",
    )
    # --- ours
    INTERNAL_SERVER_ERROR = (
        "INTERNAL_SERVER_ERROR",
        "A fault of the server, logged; not the client's.",
    )


#: The GraphQL enum: the engine's codes, then this layer's, each once.
WorkflowErrorCode = strawberry.enum(
    enum.Enum(
        "WorkflowErrorCode",
        {
            code.name: strawberry.enum_value(code.value, description=code.description)
            for code in (*ErrorCode, *TransportCode)
        },
    ),
    name="WorkflowErrorCode",
    description=(
        "Every error code of the API: in `OperationInfo.messages[].code` of mutations and in "
        "`errors[].extensions.code` of queries, subscriptions and refused requests."
    ),
)


def code_of(code: str) -> WorkflowErrorCode:
    """The enum member of ``code`` (every code the API uses is one; a test checks it)."""
    return WorkflowErrorCode(code)


# ----------------------------------------------------------------------------- OperationInfo

from strawberry_django.fields.types import OperationMessage as _DjangoOperationMessage  # noqa: E402

#: The kind of a message (the enum strawberry-django defines; the same GraphQL type).
Kind = _DjangoOperationMessage.Kind


@strawberry.type(
    name="OperationMessage", description="An error that happened while executing an operation."
)
class OperationMessageType:
    kind: Kind = strawberry.field(description="The kind of this message.")
    message: str = strawberry.field(description="The error message (for people; switch on `code`).")
    field: str | None = strawberry.field(
        default=None,
        description="The input that caused the error (e.g. `instanceId`, `steps[0].statuses`), or "
        "null.",
    )
    code: WorkflowErrorCode = strawberry.field(description="The error code: what to switch on.")


@strawberry.type(
    name="OperationInfo",
    description="The messages a mutation returns instead of its object when it changed nothing.",
)
class OperationInfoType:
    messages: list[OperationMessageType] = strawberry.field(
        description="List of messages returned by the operation."
    )


# ----------------------------------------------------------------------------- the docs' table


def markdown_table() -> str:
    """The code table of docs/graphql.md, generated from the enum (a test keeps them equal):
    ``python -m graphql_api.security.error_codes`` prints it."""
    rows = ["| code | meaning |", "| --- | --- |"]
    for member in WorkflowErrorCode:
        definition = member._value_  # strawberry keeps the EnumValueDefinition's value here
        description = WorkflowErrorCode.__strawberry_definition__
        text = next(v.description for v in description.values if v.name == member.name)
        rows.append(f"| `{definition}` | {text} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # pragma: no cover - a docs helper
    print(markdown_table(), end="")
