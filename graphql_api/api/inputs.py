"""Mutation inputs. IDs are Relay global IDs (as returned in `id` fields)."""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import strawberry
from strawberry.scalars import JSON

from django_steps.shape import STATUS, STEP, TRANSITION, WORKFLOW, Part
from graphql_api.api.deadlines import WorkflowDeadlineInput
from graphql_api.api.enums import WorkflowInstanceState
from graphql_api.api.shape_fields import shape_inputs


@strawberry.input(name="StartWorkflowInstanceInput", description="Start a workflow for an object.")
class StartWorkflowInstanceInput:
    workflow_name: Optional[str] = strawberry.field(
        default=None, description="Name of the workflow to start (give it or `workflowId`)."
    )
    workflow_id: Optional[strawberry.ID] = strawberry.field(
        default=None, description="Global ID of the workflow to start (give it or `workflowName`)."
    )
    content_type: str = strawberry.field(
        description='Model of the object, as "app_label.model" (e.g. "claims.claim").'
    )
    object_id: strawberry.ID = strawberry.field(
        description='Primary key of the object, as the model has it (`"42"`; not a global ID).'
    )


@strawberry.input(
    name="WorkflowStepStatusSelector",
    one_of=True,
    description="A status of the instance's current step, by its name or by its global ID "
    "(exactly one).",
)
class WorkflowStepStatusSelector:
    name: Optional[str] = strawberry.field(
        default=strawberry.UNSET, description="Name of a status of the current step."
    )
    id: Optional[strawberry.ID] = strawberry.field(
        default=strawberry.UNSET,
        description="Global ID of a status of the current step, as `availableStatuses` and "
        "`viewerCan` give them.",
    )


_INSTANCE = "Global ID of the workflow instance."
_STATUS_FIELD_GONE = "Use `status: {name: …}` (or `{id: …}`)."
_CONTEXT = (
    "A JSON object of your values, read by transition conditions as `input.<key>` (e.g. "
    "`input.amount`). It never replaces the attached object's fields, which conditions read from "
    "the database (`claim.amount`)."
)
_EXPECTED = "Refuse the change (VERSION_CONFLICT) unless the instance is at this version."


@strawberry.input(
    name="UpdateWorkflowStepStatusInput", description="Set a status of the instance's current step."
)
class UpdateWorkflowStepStatusInput:
    instance_id: strawberry.ID = strawberry.field(description=_INSTANCE)
    status: Optional[WorkflowStepStatusSelector] = strawberry.field(
        default=None,
        description="The status to set, by name or by ID. Required unless the deprecated "
        "`statusName`/`statusId` is given (give one of the three).",
    )
    status_name: Optional[str] = strawberry.field(
        default=None,
        description="Name of a status of the current step.",
        deprecation_reason=_STATUS_FIELD_GONE,
    )
    status_id: Optional[strawberry.ID] = strawberry.field(
        default=None,
        description="Global ID of a status of the current step.",
        deprecation_reason=_STATUS_FIELD_GONE,
    )
    context: Optional[JSON] = strawberry.field(default=None, description=_CONTEXT)
    expected_version: Optional[int] = strawberry.field(default=None, description=_EXPECTED)


@strawberry.input(
    name="SetWorkflowInstanceStatusInput",
    description="Set a status of the instance's current step.",
)
class SetWorkflowInstanceStatusInput:
    """``UpdateWorkflowStepStatusInput`` without the deprecated ``statusName``/``statusId``: a new
    name starts without the old shapes, so ``status`` is required here."""

    instance_id: strawberry.ID = strawberry.field(description=_INSTANCE)
    status: WorkflowStepStatusSelector = strawberry.field(
        description="The status to set, by name or by ID."
    )
    context: Optional[JSON] = strawberry.field(default=None, description=_CONTEXT)
    expected_version: Optional[int] = strawberry.field(default=None, description=_EXPECTED)


@strawberry.input(
    name="AdvanceWorkflowInstanceInput",
    description=(
        "Retry the transitions of an instance that found no match (`isAwaitingTransition`)."
    ),
)
class AdvanceWorkflowInstanceInput:
    instance_id: strawberry.ID = strawberry.field(description=_INSTANCE)
    context: Optional[JSON] = strawberry.field(
        default=None,
        description="A JSON object of your values, read by conditions as `input.<key>`; the "
        "attached object's fields are read from the database.",
    )
    expected_version: Optional[int] = strawberry.field(default=None, description=_EXPECTED)


@strawberry.input(name="InstanceChangeInput")
class InstanceChangeInput:
    """The fields of a change that names nothing but the instance (hold, resume, cancel). Its
    subclasses are the schema's inputs; this one is in no field, so not in the schema."""

    instance_id: strawberry.ID = strawberry.field(description=_INSTANCE)
    expected_version: Optional[int] = strawberry.field(default=None, description=_EXPECTED)


@strawberry.input(name="HoldWorkflowInstanceInput", description="Put an active instance on hold.")
class HoldWorkflowInstanceInput(InstanceChangeInput):
    pass


@strawberry.input(name="SetWorkflowOnHoldInput", description="Put an active instance on hold.")
class SetWorkflowOnHoldInput(InstanceChangeInput):
    pass


@strawberry.input(
    name="ResumeWorkflowInstanceInput", description="Resume an instance that is on hold."
)
class ResumeWorkflowInstanceInput(InstanceChangeInput):
    pass


@strawberry.input(name="CancelWorkflowInstanceInput", description="Cancel an unfinished instance.")
class CancelWorkflowInstanceInput(InstanceChangeInput):
    pass


# ----------------------------------------------------------------------------- definitions


@strawberry.input(name="WorkflowStepStatusInput", description="A status of a step.")
@shape_inputs(STATUS)
class WorkflowStepStatusInput:
    name: str = strawberry.field(description="Name, unique within the step.")
    is_completion_status: bool = strawberry.field(
        default=False, description="Setting it completes the step (transitions are tried)."
    )


@strawberry.input(
    name="WorkflowStepAssigneesInput",
    description="Who acts on a step: groups by name and/or a CEL expression over the attached "
    "object giving users (an id or username, or a list of them).",
)
class WorkflowStepAssigneesInput:
    groups: list[str] = strawberry.field(
        default_factory=list, description="Names of groups whose members are candidates."
    )
    expression: str = strawberry.field(
        default="", description='CEL over the object giving users, e.g. "claim.owner".'
    )


@strawberry.input(name="WorkflowStepInput", description="A step with its statuses.")
@shape_inputs(STEP)
class WorkflowStepInput:
    name: str = strawberry.field(description="Name, unique within the workflow.")
    order: Optional[int] = strawberry.field(
        default=None, description="Position (ascending); default: the step's position in the list."
    )
    is_initial_step: bool = strawberry.field(
        default=False, description="New instances start here (exactly one)."
    )
    is_final_step: bool = strawberry.field(
        default=False, description="A completion status here completes."
    )
    assignees: Optional[WorkflowStepAssigneesInput] = strawberry.field(
        default=None,
        description="Who acts on the step (a work item opens when an instance enters it); "
        "none: anyone who may change the instance.",
    )
    deadline: Optional[WorkflowDeadlineInput] = strawberry.field(
        default=None, description="When an instance on the step is due (none: never)."
    )
    statuses: list[WorkflowStepStatusInput] = strawberry.field(
        description="The step's statuses (one default)."
    )


@strawberry.input(
    name="WorkflowTransitionInput", description="A transition, naming its steps by name."
)
@shape_inputs(TRANSITION)
class WorkflowTransitionInput:
    from_step: str = strawberry.field(description="Name of the step it leaves.")
    to_step: str = strawberry.field(description="Name of the step it enters.")
    condition: str = strawberry.field(default="", description="CEL expression; empty means always.")


@strawberry.input(
    name="WorkflowDefinitionInput",
    description=(
        "A whole workflow definition — the same document `load_workflow` reads (in camelCase). It "
        "is validated as a whole and saved atomically."
    ),
)
@shape_inputs(WORKFLOW)
class WorkflowDefinitionInput:
    name: str = strawberry.field(description="Unique workflow name.")
    content_types: list[str] = strawberry.field(
        default_factory=list,
        description='Models it may be started on, as "app_label.model" (e.g. "claims.claim"); '
        "none: it cannot be started.",
    )
    steps: list[WorkflowStepInput] = strawberry.field(description="The steps, in order.")
    transitions: list[WorkflowTransitionInput] = strawberry.field(
        default_factory=list, description="The transitions between the steps."
    )


@strawberry.input(
    name="DeleteWorkflowInput", description="Delete a workflow definition that no instance uses."
)
class DeleteWorkflowInput:
    name: Optional[str] = strawberry.field(
        default=None, description="Name of the workflow (give it or `workflowId`)."
    )
    workflow_id: Optional[strawberry.ID] = strawberry.field(
        default=None, description="Global ID of the workflow (give it or `name`)."
    )


def _plain(value: Any) -> Any:
    """A nested input (e.g. a step's ``assignees``) as the document's mapping."""
    if dataclasses.is_dataclass(value):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return value


def _part(part: Part, value: Any, **children: Any) -> dict[str, Any]:
    """One part of the definition document: the input's value for each key of the part's shape
    (a key left unset, ``None``, takes the engine's default), then its children."""
    keys = (name for name in part.names if name not in part.children)
    doc = {name: _plain(getattr(value, name)) for name in keys if getattr(value, name) is not None}
    return {**doc, **children}


def definition_document(data: WorkflowDefinitionInput) -> dict[str, Any]:
    """The input as the engine's definition document (snake_case keys, as in the models)."""
    return _part(
        WORKFLOW,
        data,
        content_types=list(data.content_types),
        steps=[
            _part(
                STEP,
                s,
                statuses=[_part(STATUS, st) for st in s.statuses],
                **({"deadline": s.deadline.document()} if s.deadline else {}),
            )
            for s in data.steps
        ],
        transitions=[_part(TRANSITION, t) for t in data.transitions],
    )


# ----------------------------------------------------------------------------- migration


@strawberry.input(
    name="WorkflowStepMappingInput", description="Where instances on a step of their version go."
)
class WorkflowStepMappingInput:
    from_step: str = strawberry.field(description="A step of the instances' version.")
    to_step: str = strawberry.field(description="A step of the target version.")


@strawberry.input(
    name="WorkflowStatusMappingInput",
    description="Which status instances on a status of their version get.",
)
class WorkflowStatusMappingInput:
    step: str = strawberry.field(description="The step of the instances' version it is on.")
    from_status: str = strawberry.field(description="A status of that step.")
    to_status: str = strawberry.field(
        description="A status of the step it lands on in the target version."
    )


@strawberry.input(
    name="WorkflowMigrationMappingInput",
    description=(
        "How instances land on the target version. A step kept by name maps to itself; a step "
        "neither kept nor mapped blocks its instances (UNMAPPED_STEP). A status is mapped here, "
        "else kept by name when the target step has it, else the target step's default status."
    ),
)
class WorkflowMigrationMappingInput:
    steps: list[WorkflowStepMappingInput] = strawberry.field(
        default_factory=list, description="Steps mapped to other steps (each `fromStep` once)."
    )
    statuses: list[WorkflowStatusMappingInput] = strawberry.field(
        default_factory=list,
        description="Statuses mapped to other statuses (each `step` and `fromStatus` once).",
    )


@strawberry.input(
    name="WorkflowMigrationFiltersInput",
    description="Which instances to migrate (all given must match). Finished instances and "
    "instances already on the target version are never selected.",
)
class WorkflowMigrationFiltersInput:
    instance_ids: Optional[list[strawberry.ID]] = strawberry.field(
        default=None, description="Global IDs of instances."
    )
    from_versions: Optional[list[int]] = strawberry.field(
        default=None, description="The versions they run on (`definitionVersion`)."
    )
    steps: Optional[list[str]] = strawberry.field(
        default=None, description="Names of their current steps."
    )
    states: Optional[list[WorkflowInstanceState]] = strawberry.field(
        default=None, description="Their states (ACTIVE, ON_HOLD)."
    )


@strawberry.input(
    name="MigrateWorkflowInstancesInput",
    description=(
        "Move running instances of a workflow to one of its published versions, a page at a "
        "time (by instance, oldest first)."
    ),
)
class MigrateWorkflowInstancesInput:
    workflow_name: Optional[str] = strawberry.field(
        default=None, description="Name of the workflow (give it or `workflowId`)."
    )
    workflow_id: Optional[strawberry.ID] = strawberry.field(
        default=None, description="Global ID of the workflow (give it or `workflowName`)."
    )
    to_version: int = strawberry.field(description="The version to move them to (`number`).")
    mapping: Optional[WorkflowMigrationMappingInput] = strawberry.field(
        default=None, description="Steps and statuses mapped (none: everything kept by name)."
    )
    filters: Optional[WorkflowMigrationFiltersInput] = strawberry.field(
        default=None, description="Which instances (none: every running one the viewer sees)."
    )
    dry_run: bool = strawberry.field(
        default=False,
        description="Only tell where each instance would land or why it cannot move: nothing "
        "changes.",
    )
    first: Optional[int] = strawberry.field(
        default=None,
        description="How many instances this request handles at most (default and largest: "
        "`MAX_PAGE_SIZE`, 100). Continue with `after` while `hasNextPage`.",
    )
    after: Optional[str] = strawberry.field(
        default=None, description="The `endCursor` of the previous page."
    )
