"""The one error hierarchy of the engine. Every error has a stable ``code`` clients can switch on."""

from __future__ import annotations

from typing import Any


class WorkflowError(Exception):
    """Base class of every error the engine raises on purpose."""

    code = "WORKFLOW_ERROR"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message


class WorkflowNotFound(WorkflowError):
    """Raised when no workflow has the given name."""

    code = "WORKFLOW_NOT_FOUND"


class InstanceNotFound(WorkflowError):
    """Raised when a workflow instance does not exist (any more)."""

    code = "INSTANCE_NOT_FOUND"


class ContentObjectNotFound(WorkflowError):
    """Raised when the object an instance should be attached to cannot be found."""

    code = "OBJECT_NOT_FOUND"


class UnknownStatus(WorkflowError):
    """Raised when a status name does not exist on the instance's current step."""

    code = "UNKNOWN_STATUS"


class InstanceFinished(WorkflowError):
    """Raised when a completed or cancelled instance is asked to change."""

    code = "INSTANCE_FINISHED"


class InstanceOnHold(WorkflowError):
    """Raised when an instance on hold is asked to change status or to hold again."""

    code = "INSTANCE_ON_HOLD"


class NotOnHold(WorkflowError):
    """Raised when resuming an instance that is not on hold."""

    code = "NOT_ON_HOLD"


class NotAwaitingTransition(WorkflowError):
    """Raised when retrying the advance of an instance that is not waiting for a transition."""

    code = "NOT_AWAITING_TRANSITION"


class VersionConflict(WorkflowError):
    """Raised when ``expected_version`` no longer matches: someone else changed the instance."""

    code = "VERSION_CONFLICT"


class ConditionError(WorkflowError):
    """Raised when a transition's CEL condition fails to evaluate; nothing was changed."""

    code = "CONDITION_ERROR"


class ConditionSyntaxError(WorkflowError):
    """Raised when a CEL condition does not compile."""

    code = "CONDITION_SYNTAX_ERROR"


class InvalidDefinition(WorkflowError):
    """Raised when a workflow definition is inconsistent; ``problems`` lists every issue found."""

    code = "INVALID_DEFINITION"

    def __init__(self, message: str, problems: list[dict[str, str]] | None = None, **details: Any) -> None:
        super().__init__(message, **details)
        self.problems = problems or []


class WorkflowInUse(WorkflowError):
    """Raised when deleting or reshaping a definition that instances or history still use."""

    code = "WORKFLOW_IN_USE"


class ModelNotAllowed(WorkflowError):
    """Raised when a workflow is started on an object of a model its definition does not list."""

    code = "MODEL_NOT_ALLOWED"


class NotPermitted(WorkflowError):
    """Raised when the acting user lacks the permission a status names; nothing was changed."""

    code = "PERMISSION_DENIED"
