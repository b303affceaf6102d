"""The engine's error codes: one enum, used by the exceptions (:mod:`django_steps.exceptions`).

A member is a string equal to its name (``ErrorCode.VERSION_CONFLICT == "VERSION_CONFLICT"``,
and it serialises as that), and carries the description clients are shown: ``graphql_api``
assembles its ``WorkflowErrorCode`` from these and its own transport codes, and docs/graphql.md's
table from that, so a code is declared here once.
"""

from __future__ import annotations

import enum

__all__ = ["DescribedCode", "ErrorCode"]


class DescribedCode(enum.StrEnum):
    """Members are declared ``NAME = "NAME", "what it means"``."""

    description: str

    def __new__(cls, value: str, description: str) -> DescribedCode:
        member = str.__new__(cls, value)
        member._value_ = value
        member.description = description
        return member


class ErrorCode(DescribedCode):
    """Every code the engine raises (``WorkflowError.code``)."""

    WORKFLOW_NOT_FOUND = "WORKFLOW_NOT_FOUND", "No workflow has this name (or this ID)."
    INSTANCE_NOT_FOUND = (
        "INSTANCE_NOT_FOUND",
        "The workflow instance does not exist, no longer, or the viewer may not see it (missing "
        "and hidden look alike).",
    )
    OBJECT_NOT_FOUND = (
        "OBJECT_NOT_FOUND",
        "No object with this primary key, or one the viewer may not view.",
    )
    MODEL_NOT_ALLOWED = (
        "MODEL_NOT_ALLOWED",
        "The workflow does not list this model in its `contentTypes`.",
    )
    UNKNOWN_STATUS = "UNKNOWN_STATUS", "The current step has no such status."
    INSTANCE_FINISHED = "INSTANCE_FINISHED", "The instance is completed or cancelled."
    INSTANCE_ON_HOLD = "INSTANCE_ON_HOLD", "The instance is on hold: resume it first."
    NOT_ON_HOLD = "NOT_ON_HOLD", "The instance is not on hold."
    NOT_AWAITING_TRANSITION = (
        "NOT_AWAITING_TRANSITION",
        "The instance does not wait for a transition (no retry to do).",
    )
    VERSION_CONFLICT = "VERSION_CONFLICT", "`expectedVersion` is stale: reload and retry."
    CONDITION_ERROR = (
        "CONDITION_ERROR",
        "A transition's condition failed to evaluate or ran over its budget; nothing changed.",
    )
    CONDITION_SYNTAX_ERROR = (
        "CONDITION_SYNTAX_ERROR",
        "A condition does not compile or is too large.",
    )
    INVALID_CONTEXT = (
        "INVALID_CONTEXT",
        "`context` is not a JSON object, is too large or too deep for the engine, or holds text no "
        "database stores (NUL, an unpaired surrogate).",
    )
    INVALID_DEFINITION = (
        "INVALID_DEFINITION",
        "The definition is invalid: one message per problem, `field` its path.",
    )
    WORKFLOW_IN_USE = (
        "WORKFLOW_IN_USE",
        "Instances still use what would be deleted or changed.",
    )
    WORKFLOW_ERROR = "WORKFLOW_ERROR", "Another refusal of the engine (see the message)."
    WORK_ITEM_NOT_FOUND = (
        "WORK_ITEM_NOT_FOUND",
        "No open work item has this ID (closed since, or not one the viewer may see).",
    )
    ALREADY_CLAIMED = "ALREADY_CLAIMED", "Someone else claimed the work item first."
    NOT_CLAIMED = "NOT_CLAIMED", "The work item is not claimed: there is nothing to release."
    PERMISSION_DENIED = (
        "PERMISSION_DENIED",
        "Not logged in, or missing the permission (of the mutation or the status).",
    )
