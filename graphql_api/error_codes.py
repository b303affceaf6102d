"""Every code a client of the API can meet, as one enum: ``WorkflowErrorCode`` in the schema.

One list for every channel an error takes:

* mutation results: ``OperationInfo.messages[].code`` is typed with this enum, so a generated
  client can switch on it exhaustively;
* query and subscription errors: ``errors[].extensions.code``;
* requests refused before GraphQL runs (CSRF, bad bodies): the same JSON error shape, same codes.

The engine's codes are those of :mod:`django_steps.exceptions`; this layer adds its own. A test
checks that every code raised anywhere is a member, and that the tables in docs/graphql.md list
exactly these (tests/graphql/test_error_codes.py).
"""

from __future__ import annotations

import enum

import strawberry

__all__ = ["WorkflowErrorCode", "code_of"]

E = strawberry.enum_value


@strawberry.enum(
    name="WorkflowErrorCode",
    description=(
        "Every error code of the API: in `OperationInfo.messages[].code` of mutations and in "
        "`errors[].extensions.code` of queries, subscriptions and refused requests."
    ),
)
class WorkflowErrorCode(enum.Enum):
    # --- the engine's (django_steps.exceptions)
    WORKFLOW_NOT_FOUND = E("WORKFLOW_NOT_FOUND", description="No workflow has this name.")
    INSTANCE_NOT_FOUND = E(
        "INSTANCE_NOT_FOUND", description="The workflow instance does not exist, or no longer."
    )
    OBJECT_NOT_FOUND = E(
        "OBJECT_NOT_FOUND",
        description="No object with this primary key, or one the viewer may not view.",
    )
    MODEL_NOT_ALLOWED = E(
        "MODEL_NOT_ALLOWED",
        description="The workflow does not list this model in its `contentTypes`.",
    )
    UNKNOWN_STATUS = E("UNKNOWN_STATUS", description="The current step has no such status.")
    INSTANCE_FINISHED = E(
        "INSTANCE_FINISHED", description="The instance is completed or cancelled."
    )
    INSTANCE_ON_HOLD = E(
        "INSTANCE_ON_HOLD", description="The instance is on hold: resume it first."
    )
    NOT_ON_HOLD = E("NOT_ON_HOLD", description="The instance is not on hold.")
    NOT_AWAITING_TRANSITION = E(
        "NOT_AWAITING_TRANSITION",
        description="The instance does not wait for a transition (no retry to do).",
    )
    VERSION_CONFLICT = E(
        "VERSION_CONFLICT", description="`expectedVersion` is stale: reload and retry."
    )
    CONDITION_ERROR = E(
        "CONDITION_ERROR",
        description="A transition's condition failed to evaluate or ran over its budget; nothing changed.",
    )
    CONDITION_SYNTAX_ERROR = E(
        "CONDITION_SYNTAX_ERROR", description="A condition does not compile or is too large."
    )
    INVALID_CONTEXT = E(
        "INVALID_CONTEXT",
        description=(
            "`context` is not a JSON object, is too large or too deep for the engine, or holds text no database "
            "stores (NUL, an unpaired surrogate)."
        ),
    )
    INVALID_DEFINITION = E(
        "INVALID_DEFINITION",
        description="The definition is invalid: one message per problem, `field` its path.",
    )
    WORKFLOW_IN_USE = E(
        "WORKFLOW_IN_USE", description="Instances still use what would be deleted or changed."
    )
    WORKFLOW_ERROR = E(
        "WORKFLOW_ERROR", description="Another refusal of the engine (see the message)."
    )
    # --- who may do what
    PERMISSION_DENIED = E(
        "PERMISSION_DENIED",
        description="Not logged in, or missing the permission (of the mutation or the status).",
    )
    NOT_FOUND = E(
        "NOT_FOUND",
        description="A well-formed ID of nothing the viewer may see (missing and hidden look alike).",
    )
    INVALID_CREDENTIALS = E("INVALID_CREDENTIALS", description="`login` failed.")
    TOO_MANY_ATTEMPTS = E(
        "TOO_MANY_ATTEMPTS", description="`login` refused for a while after repeated failures."
    )
    # --- what the client sent
    INVALID_ID = E(
        "INVALID_ID",
        description="Not a global ID, or one of another type (`field` names the input).",
    )
    INVALID_CURSOR = E(
        "INVALID_CURSOR",
        description="Not an event cursor this history handed out: reload, then start afresh.",
    )
    BAD_USER_INPUT = E(
        "BAD_USER_INPUT",
        description="A value the server cannot take (`extensions.field` names where, never the value).",
    )
    QUERY_TOO_COMPLEX = E(
        "QUERY_TOO_COMPLEX", description="Over the cost limit: ask for fewer objects."
    )
    TIMEOUT = E(
        "TIMEOUT",
        description=(
            "The request ran over its time budget (`MAX_SECONDS`) and was stopped. A mutation's change is "
            "all or nothing: read the object again to know which. Ask for less, or retry later."
        ),
    )
    EVENT_TOO_LARGE = E(
        "EVENT_TOO_LARGE",
        description=(
            "A subscription event too large for one WebSocket message; the subscription ends. "
            "`extensions.cursor` is the event's: read it over HTTP, then subscribe again `after` it."
        ),
    )
    RESULT_TOO_LARGE = E(
        "RESULT_TOO_LARGE",
        description="Any other result too large for one WebSocket message: ask over HTTP.",
    )
    TOO_MANY_OPERATIONS = E(
        "TOO_MANY_OPERATIONS",
        description=(
            "Too many operations running at once on one WebSocket (100): complete one, or wait for one "
            "to end, before starting another. The others go on."
        ),
    )
    GRAPHQL_PARSE_FAILED = E("GRAPHQL_PARSE_FAILED", description="The document is not GraphQL.")
    GRAPHQL_VALIDATION_FAILED = E(
        "GRAPHQL_VALIDATION_FAILED",
        description="Not valid against the schema, or over a depth/alias/token limit.",
    )
    # --- refused before GraphQL runs (HTTP)
    CSRF_FAILED = E("CSRF_FAILED", description="A POST without a valid CSRF token (403).")
    BAD_REQUEST = E(
        "BAD_REQUEST",
        description=(
            "Not a GraphQL request (400): also a subscription sent over HTTP (subscriptions need the "
            "WebSocket), and on a legacy `graphql-ws` socket a malformed message or a query or mutation "
            "(it carries subscriptions only)."
        ),
    )
    REQUEST_TOO_LARGE = E(
        "REQUEST_TOO_LARGE",
        description="The request body is over the server's size limit (413): send less.",
    )
    METHOD_NOT_ALLOWED = E("METHOD_NOT_ALLOWED", description="Neither GET nor POST (405).")
    # --- ours
    INTERNAL_SERVER_ERROR = E(
        "INTERNAL_SERVER_ERROR", description="A fault of the server, logged; not the client's."
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
        description="The input that caused the error (e.g. `instanceId`, `steps[0].statuses`), or null.",
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
    ``python -m graphql_api.error_codes`` prints it."""
    rows = ["| code | meaning |", "| --- | --- |"]
    for member in WorkflowErrorCode:
        definition = member._value_  # strawberry keeps the EnumValueDefinition's value here
        description = WorkflowErrorCode.__strawberry_definition__
        text = next(v.description for v in description.values if v.name == member.name)
        rows.append(f"| `{definition}` | {text} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # pragma: no cover - a docs helper
    print(markdown_table(), end="")
