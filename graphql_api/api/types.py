"""GraphQL object types: definitions, instances and their history, each a Relay ``Node``.

Read access (see :mod:`graphql_api.security.permissions`): instances and events check
``view_workflowinstance`` in their type's ``get_queryset``, so it holds wherever they are listed
(top level, ``Workflow.instances``, ``history``). Definitions are checked where they are entered
(``workflows``, ``workflow``, ``node``); the definition parts an instance points to are shown with
the instance. (Definition types have no ``get_queryset`` on purpose: it would make the optimizer
prefetch every foreign key instead of joining it.)
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Optional

import strawberry
import strawberry_django
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db.models import Prefetch, QuerySet
from graphql import GraphQLError
from strawberry import relay
from strawberry.scalars import JSON
from strawberry.types import Info

from django_steps import authorization, compiled, models
from django_steps.choices import FINISHED_STATES, InstanceState
from django_steps.diagram import version_to_mermaid, workflow_to_mermaid
from django_steps.selectors import EVENT_RELATIONS
from django_steps.shape import STATUS, STEP, TRANSITION, WORKFLOW
from django_steps.workitems import open_items_prefetch
from graphql_api.api import deadlines as api_deadlines
from graphql_api.api.connections import NESTED_PAGE, Connection, connection
from graphql_api.api.counts import (
    STATUS_INSTANCE_COUNTS,
    STEP_COUNTS,
    WORKFLOW_COUNTS,
    instance_counts_field,
)
from graphql_api.api.enums import WorkflowEventKind, WorkflowInstanceState
from graphql_api.api.event_cursors import EventConnection, read_event_cursor
from graphql_api.api.filters import (
    WorkflowFilter,
    WorkflowInstanceFilter,
    WorkflowInstanceOrder,
    WorkflowOrder,
)
from graphql_api.api.people import step_assignees, user_inbox
from graphql_api.api.pinned import PINNED, pinned_statuses
from graphql_api.api.shape_fields import shape_fields
from graphql_api.api.subject import subject_field
from graphql_api.security import permissions
from graphql_api.security.cost import WORK
from graphql_api.security.error_codes import ErrorCode, TransportCode
from graphql_api.security.extensions import graphql_setting

if TYPE_CHECKING:  # graphql_api.api.versions imports this module: the fields name them lazily
    from graphql_api.api.versions import WorkflowChangeType, WorkflowVersionType


class ModelNode(relay.Node):
    """A Node type over a model, identified by its primary key.

    It names its id attribute up front: without it strawberry's ``Node.resolve_id_attr``
    re-scans the class annotations (``eval_type`` on each) for every object it serializes; on a
    page of 100 instances that was 40% of the request time. Not a strawberry type itself: the
    schema shows only the ``Node`` interface."""

    _id_attr = "pk"


#: Largest page a connection returns (``first``/``last`` above it are refused):
#: ``DJANGO_STEPS_GRAPHQL["MAX_PAGE_SIZE"]``, read when the schema is built (default 100).
MAX_PAGE_SIZE = int(graphql_setting("MAX_PAGE_SIZE"))

#: Cost units (objects) counted per value of ``Workflow.mermaid``, in addition to the workflow
#: (see :data:`graphql_api.security.cost.WORK`): rendering a diagram is cached per definition, but a
#: miss reads the definition's steps and transitions.
MERMAID_COST = 5
#: The yes/no fields of ``WorkflowInstanceActions``, as ``authorization.AllowedActions`` names them.
ACTIONS = ("hold", "resume", "cancel", "advance", "claim", "release", "delegate")


@strawberry_django.type(get_user_model(), name="User", description="A user account.")
class UserType(ModelNode):
    username: str = strawberry_django.field(description="The user's login name.")
    inbox = user_inbox


@strawberry_django.type(
    models.WorkflowStepStatus,
    name="WorkflowStepStatus",
    description="A custom status of a step. Each step has exactly one default status.",
)
@shape_fields(STATUS, after="step")
class WorkflowStepStatusType(ModelNode):
    name: str = strawberry_django.field(description="Name, unique within its step.")
    step: WorkflowStepType = strawberry_django.field(description="The step this status belongs to.")
    instance_counts = STATUS_INSTANCE_COUNTS


@strawberry_django.type(
    models.WorkflowStep,
    name="WorkflowStep",
    description="One step of a workflow. Exactly one step is initial; at least one is final.",
)
@shape_fields(STEP)
class WorkflowStepType(ModelNode):
    name: str = strawberry_django.field(description="Name, unique within its workflow.")
    assignees = step_assignees

    deadline = api_deadlines.step_deadline_field()
    workflow: WorkflowType = strawberry_django.field(
        description="The workflow this step belongs to."
    )
    statuses: list[WorkflowStepStatusType] = strawberry_django.field(
        description="The step's statuses."
    )
    outgoing_transitions: list[WorkflowTransitionType] = strawberry_django.field(
        description="Transitions leaving this step, highest priority first."
    )

    # Not annotated: a field with a resolver and no annotation keeps its place among the
    # resolver fields, after the annotated ones (where the schema has always had it).
    instance_counts = instance_counts_field(
        "current_step",
        STEP_COUNTS,
        description="Instances on this step now (their current step), by state, that the viewer "
        "may see.",
    )


@strawberry_django.type(
    models.WorkflowTransition,
    name="WorkflowTransition",
    description=(
        "A move from one step to another. When a completion status is set, the current step's "
        "transitions are tried by priority, highest first; the first whose condition matches fires."
    ),
)
@shape_fields(TRANSITION, after="to_step")
class WorkflowTransitionType(ModelNode):
    from_step: WorkflowStepType = strawberry_django.field(description="The step it leaves.")
    to_step: WorkflowStepType = strawberry_django.field(description="The step it enters.")
    workflow: WorkflowType = strawberry_django.field(
        description="The workflow this transition belongs to."
    )


@strawberry_django.type(
    models.Workflow,
    name="Workflow",
    description="A workflow definition: ordered steps with custom statuses, joined by CEL-guarded "
    "transitions.",
    filters=WorkflowFilter,
    ordering=WorkflowOrder,
)
@shape_fields(WORKFLOW)
class WorkflowType(ModelNode):
    name: str = strawberry_django.field(description="Unique name; instances are started by it.")
    created_at: datetime = strawberry_django.field(description="When the definition was created.")
    updated_at: datetime = strawberry_django.field(
        description="When the definition was last saved."
    )
    steps: list[WorkflowStepType] = strawberry_django.field(description="The steps, in order.")

    @strawberry_django.field(
        prefetch_related=["content_types"],
        description='Models it may be started on, as "app_label.model" (e.g. "claims.claim").',
    )
    def content_types(self, root: strawberry.Parent[models.Workflow]) -> list[str]:
        return sorted(f"{ct.app_label}.{ct.model}" for ct in root.content_types.all())

    transitions: list[WorkflowTransitionType] = strawberry_django.field(
        description="All transitions, by source step order then priority (highest first)."
    )
    instances: Connection[WorkflowInstanceType] = connection(
        description="Instances of this workflow (needs `view_workflowinstance`). " + NESTED_PAGE,
        max_results=MAX_PAGE_SIZE,
    )

    instance_counts = instance_counts_field(
        "workflow",
        WORKFLOW_COUNTS,
        description="Its instances by state, that the viewer may see (for a dashboard header: no "
        "paging needed).",
    )

    version: int = strawberry_django.field(
        field_name="definition_version",
        description="The number of its latest published version (`versions`; 0: never published). "
        "Each committed change of the definition publishes the next one.",
    )
    versions: Connection[
        Annotated[WorkflowVersionType, strawberry.lazy("graphql_api.api.versions")]
    ] = connection(
        description="Its published versions, newest first. " + NESTED_PAGE,
        max_results=MAX_PAGE_SIZE,
    )

    @strawberry_django.field(
        only=["id"],  # one query for both versions; counted by its list bound (cost_bounds.py)
        description="What changed from one published version to another: steps, statuses, "
        "transitions and the workflow's own fields added, removed or changed (conditions, "
        "permissions, roles …). An unknown number is BAD_USER_INPUT.",
    )
    def diff(
        self,
        root: strawberry.Parent[models.Workflow],
        from_version: Annotated[int, strawberry.argument(description="The older version.")],
        to_version: Annotated[int, strawberry.argument(description="The newer version.")],
    ) -> list[Annotated[WorkflowChangeType, strawberry.lazy("graphql_api.api.versions")]]:
        from graphql_api.api.versions import workflow_diff  # a cycle: it imports this module

        return workflow_diff(root, from_version, to_version)

    @strawberry_django.field(
        description=(
            "The workflow's latest published version as a Mermaid flowchart (steps as nodes, "
            "transitions as edges with their conditions). Rendered once per version and kept (no "
            "query after the first)."
        ),
        only=["id", "name", "definition_version", "definition_hash"],
        metadata={WORK: MERMAID_COST},
    )
    def mermaid(self, root: strawberry.Parent[models.Workflow]) -> str:
        # The latest published version, rendered once per process (1 query the first time,
        # none after): a version never changes. A workflow never published is drawn from its
        # draft rows each time. The name is not part of a version's content (a rename keeps
        # it): the first line, which carries it, is written per call.
        if root.definition_version:
            text = compiled.cached(
                "mermaid",
                root,
                lambda pk: version_to_mermaid(
                    models.WorkflowVersion.objects.get(
                        workflow_id=pk, number=root.definition_version
                    )
                ),
            )
        else:
            text = workflow_to_mermaid(root)
        _title, body = text.split("\n", 1)
        return f"%% Workflow: {' '.join(root.name.split())}\n{body}"


@strawberry_django.type(
    models.WorkflowEvent,
    name="WorkflowEvent",
    description="One row of an instance's append-only history. Every change writes exactly one.",
)
class WorkflowEventType(ModelNode):
    kind: WorkflowEventKind = strawberry_django.field(description="What happened.")
    sequence: int = strawberry_django.field(
        description="Number of the event within its instance (1, 2, 3…, no gaps)."
    )
    version: int = strawberry_django.field(
        description="The instance's `version` after the event. A change moves it by one; a note "
        "(REMINDER, DEADLINE_PASSED, DEADLINE_ERROR, CLAIMED, RELEASED, DELEGATED) leaves it as "
        "it was, so it never makes a change with `expectedVersion` conflict."
    )
    state: WorkflowInstanceState = strawberry_django.field(
        description="The instance's state after the event."
    )
    from_state: Optional[WorkflowInstanceState] = strawberry_django.field(
        description="The instance's state before the event (null for STARTED): with `state`, "
        "`fromStep` and `fromStatus` a client moves the instance between counts and filtered "
        "lists without a refetch."
    )
    from_step: Optional[WorkflowStepType] = strawberry_django.field(
        description="The step before the event (null for STARTED)."
    )
    from_status: Optional[WorkflowStepStatusType] = strawberry_django.field(
        description="The status before the event (null for STARTED)."
    )
    to_step: WorkflowStepType = strawberry_django.field(description="The step after the event.")
    to_status: WorkflowStepStatusType = strawberry_django.field(
        description="The status after the event."
    )
    requested_status: Optional[WorkflowStepStatusType] = strawberry_django.field(
        description="The status named by the update that caused the event, if any."
    )
    transition: Optional[WorkflowTransitionType] = strawberry_django.field(
        description="The transition that fired, if any."
    )
    actor: Optional[UserType] = strawberry_django.field(
        description="Who made the change (null: the system)."
    )

    @strawberry_django.field(
        only=["context", "instance_id", "instance__content_type_id", "instance__object_id"],
        select_related=["instance"],
        # a viewer without the model's view permission: its object is checked (loaded once
        # per request and object; under `workflowEvents` loaded together)
        metadata={WORK: 1},
        description=(
            "What the change's conditions read, if anything: "
            '`{"object": {…}, "input": {…}}`, the attached object\'s fields as read from the '
            "database (secrets left out) and, apart, the values the client sent as `context`. Null "
            "for viewers who may not view that object (`<app_label>.view_<model>`)."
        ),
    )
    def context(self, root: strawberry.Parent[models.WorkflowEvent], info: Info) -> Optional[JSON]:
        return permissions.attached_context(info, root)

    # Asks its own worker thread only when a query is needed (permissions.attached_context).
    context.base_resolver.wrapped_func.is_async_safe = True  # type: ignore[attr-defined]

    created_at: datetime = strawberry_django.field(description="When the change was committed.")

    @strawberry_django.field(
        only=["definition_version__number"],
        select_related=["definition_version"],
        description="The number of the published version the instance ran on after the event "
        "(for MIGRATED: the version it was moved to). Not `version`, which counts the instance's "
        "changes.",
    )
    def definition_version(self, root: strawberry.Parent[models.WorkflowEvent]) -> int:
        return root.definition_version.number

    instance: WorkflowInstanceType = strawberry_django.field(
        description="The instance that changed."
    )
    workflow: WorkflowType = strawberry_django.field(description="The workflow of the instance.")

    @strawberry_django.field(
        only=["txid", "position"],
        description=(
            "Stable, opaque cursor of this event in the global, commit-ordered history. Pass it as "
            "`after` to `workflowInstanceEvents` to receive exactly the events committed after "
            "this one."
        ),
    )
    def cursor(self, root: strawberry.Parent[models.WorkflowEvent]) -> str:
        return str(root.cursor)

    # Runs no query: no hop to Django's sync thread for each event sent to each subscriber.
    cursor.base_resolver.wrapped_func.is_async_safe = True  # type: ignore[attr-defined]

    @classmethod
    def get_queryset(cls, queryset: QuerySet, info: Info, **kwargs) -> QuerySet:
        if not queryset.query.order_by:  # an instance's history, oldest first (event_cursors.py)
            queryset = queryset.order_by("txid", "position")
        return permissions.visible_events(queryset, info)

    @classmethod
    def is_type_of(cls, obj: Any, info: Info) -> bool:
        if not isinstance(obj, models.WorkflowEvent):
            return isinstance(obj, cls)
        # True, NOT_FOUND, or (unknown, in the event loop) an awaitable checking it in a thread
        return permissions.require_visible(
            info, obj.instance_id, obj, lambda: _hidden("No workflow event has this ID.")
        )


@strawberry_django.type(
    models.WorkflowInstance,
    name="WorkflowInstance",
    description="One run of a workflow for one object of any model (attached through a generic "
    "foreign key).",
    filters=WorkflowInstanceFilter,
    ordering=WorkflowInstanceOrder,
)
class WorkflowInstanceType(ModelNode):
    state: WorkflowInstanceState = strawberry_django.field(description="Lifecycle state.")
    version: int = strawberry_django.field(
        description="Increases by one on every change; pass it as `expectedVersion` to refuse lost "
        "updates."
    )
    workflow: WorkflowType = strawberry_django.field(description="The workflow definition it runs.")
    current_step: WorkflowStepType = strawberry_django.field(
        description="The step the instance is on."
    )
    current_step_status: WorkflowStepStatusType = strawberry_django.field(
        description="The status of the current step."
    )

    @strawberry_django.field(
        only=["definition_version__number"],
        select_related=["definition_version"],
        description="The number of the published version of its workflow it runs on (see "
        "`Workflow.versions`): the version it started on, until it is migrated. Compare it with "
        "`workflow.version` to find instances on an older version.",
    )
    def definition_version(self, root: strawberry.Parent[models.WorkflowInstance]) -> int:
        return root.definition_version.number

    started_at: datetime = strawberry_django.field(description="When the instance was started.")
    updated_at: datetime = strawberry_django.field(description="When the instance last changed.")
    completed_at: Optional[datetime] = strawberry_django.field(
        description="When it completed or was cancelled (null while unfinished)."
    )
    due_at = api_deadlines.due_at_field()
    is_overdue = api_deadlines.is_overdue_field()
    history: EventConnection[WorkflowEventType] = connection(
        field_name="events",
        max_results=MAX_PAGE_SIZE,
        cursor_reader=read_event_cursor,
        description=(
            "Every change, oldest first, a page at a time. For the newest change alone, read "
            "`lastEvent`. Edge cursors are the events' `cursor` (`after`/`before` take one). "
            + NESTED_PAGE
        ),
    )

    @strawberry_django.field(
        prefetch_related=[
            Prefetch(
                "events",
                queryset=models.WorkflowEvent.objects.order_by("-txid", "-position").select_related(
                    *EVENT_RELATIONS
                )[:1],
                to_attr="_django_steps_last_event",
            )
        ],
        description="The newest event of its history (a change or a note).",
    )
    def last_event(self, root: strawberry.Parent[models.WorkflowInstance]) -> WorkflowEventType:
        prefetched = getattr(root, "_django_steps_last_event", None)
        if prefetched:
            return prefetched[0]
        return root.events.order_by("-txid", "-position").first()

    @strawberry_django.field(
        only=["content_type_id"],
        description='The model of the attached object, as "app_label.model" (e.g. "claims.claim").',
    )
    def content_type(self, root: strawberry.Parent[models.WorkflowInstance]) -> str:
        ct = ContentType.objects.get_for_id(root.content_type_id)  # cached per process
        return f"{ct.app_label}.{ct.model}"

    subject = subject_field()

    @strawberry_django.field(
        only=["object_id"], description="Primary key of the attached object, as text."
    )
    def object_id(self, root: strawberry.Parent[models.WorkflowInstance]) -> strawberry.ID:
        return strawberry.ID(root.object_id)

    @strawberry_django.field(
        only=["state"], description="True once completed or cancelled: it accepts no change."
    )
    def is_finished(self, root: strawberry.Parent[models.WorkflowInstance]) -> bool:
        return root.state in FINISHED_STATES

    @strawberry_django.field(
        only=["state"],
        description="True once completed or cancelled.",
        deprecation_reason="It is also true for cancelled instances: read `isFinished` (the same), "
        "or `state`.",
    )
    def is_completed(self, root: strawberry.Parent[models.WorkflowInstance]) -> bool:
        return root.state in FINISHED_STATES

    @strawberry_django.field(
        only=["state"],
        select_related=["current_step_status"],
        description=(
            "True when a completion status is set but no transition matched: retry with "
            "`advanceWorkflowInstance` (e.g. with new context)."
        ),
    )
    def is_awaiting_transition(self, root: strawberry.Parent[models.WorkflowInstance]) -> bool:
        return root.is_awaiting_transition

    @strawberry_django.field(
        only=PINNED,
        select_related=["definition_version", "current_step"],
        description=(
            "Statuses the engine accepts now: every status of the current step while active, only "
            "the cancellation status while on hold, none once finished — whoever asks. They are "
            "the statuses of the version the instance runs on (`definitionVersion`). For what the "
            "current viewer may set, read `viewerCan`."
        ),
    )
    def available_statuses(
        self, root: strawberry.Parent[models.WorkflowInstance]
    ) -> list[WorkflowStepStatusType]:
        if root.state in FINISHED_STATES:
            return []
        on_hold = root.state == InstanceState.ON_HOLD
        return pinned_statuses(root, lambda s: s.is_cancellation_status or not on_hold)

    @strawberry_django.field(
        only=[*PINNED, "current_step_status_id", "workflow_id", "content_type_id", "object_id"],
        select_related=["workflow", "definition_version", "current_step"],
        prefetch_related=["content_object", open_items_prefetch()],
        description=(
            "What the current viewer may do with this instance now — each would succeed if tried "
            "(their permissions, the statuses' permissions of the version it runs on and the "
            "instance's state): show only these actions."
        ),
    )
    def viewer_can(
        self, root: strawberry.Parent[models.WorkflowInstance], info: Info
    ) -> WorkflowInstanceActionsType:
        # visible: this type resolves only instances the viewer may see (get_queryset, is_type_of)
        actions = authorization.allowed_actions(
            permissions.current_user(info), root, compiled.for_instance(root), visible=True
        )
        allowed = {status.id for status in actions.statuses}
        return WorkflowInstanceActionsType(
            statuses=pinned_statuses(root, lambda s: s.id in allowed) if allowed else [],
            **{name: getattr(actions, name) for name in ACTIONS},
        )

    @classmethod
    def get_queryset(cls, queryset: QuerySet, info: Info, **kwargs) -> QuerySet:
        if not queryset.query.order_by:  # newest first (see connections.py)
            queryset = queryset.order_by("-pk")
        return permissions.visible_instances(queryset, info)

    @classmethod
    def is_type_of(cls, obj: Any, info: Info) -> bool:
        if not isinstance(obj, models.WorkflowInstance):
            return isinstance(obj, cls)
        # True, NOT_FOUND, or (unknown, in the event loop) an awaitable checking it in a thread
        return permissions.require_visible(
            info,
            obj.pk,
            obj,
            lambda: _hidden("No workflow instance has this ID.", ErrorCode.INSTANCE_NOT_FOUND),
        )


def _hidden(message: str, code: str = TransportCode.NOT_FOUND) -> GraphQLError:
    """A hidden instance is reported exactly like a missing one (INSTANCE_NOT_FOUND; a hidden
    instance's event NOT_FOUND)."""
    return GraphQLError(message, extensions={"code": code})


@strawberry.type(
    name="WorkflowInstanceActions",
    description="What the current viewer may do with one instance now (see "
    "`WorkflowInstance.viewerCan`).",
)
class WorkflowInstanceActionsType:
    statuses: list[WorkflowStepStatusType] = strawberry.field(
        description="Statuses of the current step the viewer may set now "
        "(`setWorkflowInstanceStatus`)."
    )
    hold: bool = strawberry.field(description="May put it on hold now (`holdWorkflowInstance`).")
    resume: bool = strawberry.field(description="May resume it now (`resumeWorkflowInstance`).")
    cancel: bool = strawberry.field(description="May cancel it now (`cancelWorkflowInstance`).")
    advance: bool = strawberry.field(
        description="May retry its transitions now (`advanceWorkflowInstance`; it awaits a "
        "transition)."
    )
    claim: bool = strawberry.field(description="May claim its open work item (`claimWorkItem`).")
    release: bool = strawberry.field(description="May release its work item (`releaseWorkItem`).")
    delegate: bool = strawberry.field(description="May hand it over (`delegateWorkItem`).")
