"""Plain result types of queries and mutations (not Relay nodes): the transition dry run and a
deleted workflow."""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, TypeVar

import strawberry

from graphql_api.api.types import WorkflowInstanceType, WorkflowTransitionType

T = TypeVar("T")


def copied(type_: type[T], source: Any, **values: Any) -> T:
    """A ``type_`` (a plain strawberry type) whose fields are ``values``, the others read from the
    same-named attributes of ``source`` (the domain's result it shows to clients)."""
    names = (field.name for field in dataclasses.fields(type_))
    return type_(
        **{name: values[name] if name in values else getattr(source, name) for name in names}
    )


@strawberry.type(
    name="TransitionEvaluation", description="One candidate transition, as the dry run saw it."
)
class TransitionEvaluationType:
    transition: WorkflowTransitionType = strawberry.field(description="The transition.")
    priority: int = strawberry.field(description="Its priority (higher first).")
    condition: str = strawberry.field(description="Its CEL condition (empty: always).")
    result: Optional[bool] = strawberry.field(
        description="What the condition gave; null if it failed."
    )
    error: Optional[str] = strawberry.field(
        description="Why the condition failed to evaluate, if it did."
    )
    would_fire: bool = strawberry.field(
        description="True for the transition a completion status would fire now."
    )


@strawberry.type(
    name="TransitionDryRun",
    description="What setting a completion status (or retrying) would do now. Nothing is changed.",
)
class TransitionDryRunType:
    instance: WorkflowInstanceType = strawberry.field(description="The instance evaluated.")
    evaluations: list[TransitionEvaluationType] = strawberry.field(
        description="Every outgoing transition of the current step, highest priority first."
    )
    fired: Optional[TransitionEvaluationType] = strawberry.field(
        description="The transition that would fire, or null (no match, or an error first)."
    )
    error: Optional[str] = strawberry.field(
        description="Set when a condition error would abort the real update (it changes nothing "
        "then)."
    )


@strawberry.type(name="DeletedWorkflow", description="A workflow definition that was deleted.")
class DeletedWorkflowType:
    id: strawberry.ID = strawberry.field(
        description="An ID of this deletion, which no other object has (not the workflow's: see "
        "`workflowId`)."
    )
    workflow_id: strawberry.ID = strawberry.field(
        description="The global ID the workflow had: remove that object from a client cache."
    )
    name: str = strawberry.field(description="The name the workflow had.")
