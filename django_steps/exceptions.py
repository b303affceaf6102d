"""The one error hierarchy of the engine. Every error has a stable ``code`` clients can switch on:
a member of :class:`~django_steps.error_codes.ErrorCode`."""

from __future__ import annotations

from typing import Any

from .error_codes import ErrorCode


class WorkflowError(Exception):
    """Base class of every error the engine raises on purpose."""

    code = ErrorCode.WORKFLOW_ERROR

    def __init_subclass__(cls, *, code: ErrorCode | None = None, **kwargs: Any) -> None:
        """A subclass names its code in its bases: ``class X(WorkflowError, code=...)``."""
        super().__init_subclass__(**kwargs)
        if code is not None:
            cls.code = code

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message


class WorkflowNotFound(WorkflowError, code=ErrorCode.WORKFLOW_NOT_FOUND):
    """Raised when no workflow has the given name."""


class InstanceNotFound(WorkflowError, code=ErrorCode.INSTANCE_NOT_FOUND):
    """Raised when a workflow instance does not exist (any more)."""


class ContentObjectNotFound(WorkflowError, code=ErrorCode.OBJECT_NOT_FOUND):
    """Raised when the object an instance should be attached to cannot be found."""


class UnknownStatus(WorkflowError, code=ErrorCode.UNKNOWN_STATUS):
    """Raised when a status name does not exist on the instance's current step."""


class InstanceFinished(WorkflowError, code=ErrorCode.INSTANCE_FINISHED):
    """Raised when a completed or cancelled instance is asked to change."""


class InstanceOnHold(WorkflowError, code=ErrorCode.INSTANCE_ON_HOLD):
    """Raised when an instance on hold is asked to change status or to hold again."""


class NotOnHold(WorkflowError, code=ErrorCode.NOT_ON_HOLD):
    """Raised when resuming an instance that is not on hold."""


class NotAwaitingTransition(WorkflowError, code=ErrorCode.NOT_AWAITING_TRANSITION):
    """Raised when retrying the advance of an instance that is not waiting for a transition."""


class VersionConflict(WorkflowError, code=ErrorCode.VERSION_CONFLICT):
    """Raised when ``expected_version`` no longer matches: the instance changed since that
    version was read (by anyone, the caller included: a second change sent with the same
    version conflicts with the first)."""


class ConditionError(WorkflowError, code=ErrorCode.CONDITION_ERROR):
    """Raised when a transition's CEL condition fails to evaluate (or runs over its evaluation
    budget); nothing was changed. ``details["reason"]`` names the kind of failure."""

    #: The failure alone, without transition or expression (set by django_steps.cel).
    description: str | None = None


class ConditionSyntaxError(WorkflowError, code=ErrorCode.CONDITION_SYNTAX_ERROR):
    """Raised when a CEL condition does not compile or is over a definition-time limit (length,
    nesting, size, estimated cost); ``details["reason"]`` says which."""

    #: The problem alone, without the expression (set by django_steps.cel).
    description: str | None = None


class InvalidContext(WorkflowError, code=ErrorCode.INVALID_CONTEXT):
    """Raised when a client-supplied CEL context is not a mapping, is too large or too deeply
    nested, holds a number CEL cannot represent (NaN, ±Infinity, an integer beyond 64 bits) or
    text no database stores (NUL, an unpaired surrogate); nothing was changed."""


class InvalidDefinition(WorkflowError, code=ErrorCode.INVALID_DEFINITION):
    """Raised when a workflow definition is inconsistent; ``problems`` lists every issue found."""

    def __init__(
        self, message: str, problems: list[dict[str, str]] | None = None, **details: Any
    ) -> None:
        super().__init__(message, **details)
        self.problems = problems or []


class WorkflowInUse(WorkflowError, code=ErrorCode.WORKFLOW_IN_USE):
    """Raised when deleting a workflow that has instances (their history refers to it). Parts
    removed from a definition are retired instead (see :mod:`django_steps.versions`)."""


class ModelNotAllowed(WorkflowError, code=ErrorCode.MODEL_NOT_ALLOWED):
    """Raised when a workflow is started on an object of a model its definition does not list."""


class NotPermitted(WorkflowError, code=ErrorCode.PERMISSION_DENIED):
    """Raised when the acting user lacks the permission a status names; nothing was changed."""


class WorkItemNotFound(WorkflowError, code=ErrorCode.WORK_ITEM_NOT_FOUND):
    """Raised when a work item is closed, missing, or on an instance the actor may not see."""


class WorkItemClaimed(WorkflowError, code=ErrorCode.ALREADY_CLAIMED):
    """Raised when claiming a work item someone has claimed (e.g. two claims at once)."""


class WorkItemNotClaimed(WorkflowError, code=ErrorCode.NOT_CLAIMED):
    """Raised when releasing a work item nobody has claimed."""
