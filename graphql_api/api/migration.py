"""``migrateWorkflowInstances``: the dry run or the migration of a page of instances, through
:mod:`django_steps.versions` (the rules: the mapping's defaults, the reasons an instance cannot
move, one audited ``MIGRATED`` change per instance in its own transaction).

One request handles at most ``MAX_PAGE_SIZE`` instances (``first``, default and largest):
clients continue with ``after: endCursor`` while ``hasNextPage``. The instances are those the
viewer may see; the others are neither listed nor moved.
"""

from __future__ import annotations

import enum
from typing import Any, Optional

import strawberry
from django.db.models import prefetch_related_objects
from strawberry import relay
from strawberry.types import Info

from django_steps.exceptions import InvalidDefinition, WorkflowNotFound
from django_steps.models import Workflow, WorkflowInstance
from django_steps.versions import (
    PlannedMove,
    get_version,
    migrate_instances,
    migration_page,
    plan_migration,
)
from graphql_api.api.ids import parse_global_id, schema_name, workflow_named
from graphql_api.api.inputs import (
    MigrateWorkflowInstancesInput,
    WorkflowMigrationFiltersInput,
    WorkflowMigrationMappingInput,
)
from graphql_api.api.results import copied
from graphql_api.api.types import MAX_PAGE_SIZE, WorkflowInstanceType, WorkflowType
from graphql_api.api.versions import WorkflowVersionType
from graphql_api.security import permissions
from graphql_api.security.cost_bounds import MAX_ITEMS
from graphql_api.security.error_codes import TransportCode
from graphql_api.security.errors import ApiError, Kind
from graphql_api.security.permissions import current_user


@strawberry.enum(name="WorkflowMigrationOutcome", description="What became of one instance.")
class WorkflowMigrationOutcome(enum.Enum):
    WOULD_MIGRATE = strawberry.enum_value(
        "WOULD_MIGRATE", description="Dry run: it would move (to `toStep` / `toStatus`)."
    )
    MIGRATED = strawberry.enum_value("MIGRATED", description="It moved (one MIGRATED event).")
    BLOCKED = strawberry.enum_value(
        "BLOCKED", description="It cannot move (`reason`); nothing was tried."
    )
    FAILED = strawberry.enum_value(
        "FAILED", description="Moving it was refused (`reason`); it is as it was."
    )


@strawberry.enum(name="WorkflowMigrationReason", description="Why an instance did not move.")
class WorkflowMigrationReason(enum.Enum):
    UNMAPPED_STEP = strawberry.enum_value(
        "UNMAPPED_STEP",
        description="Its step is not in the target version and the mapping names none for it.",
    )
    TARGET_STATUS_ROLE = strawberry.enum_value(
        "TARGET_STATUS_ROLE",
        description="It would land on a cancellation status (or, active, on an on-hold one): "
        "cancel or hold it instead, or map the status to another one.",
    )
    PERMISSION_DENIED = strawberry.enum_value(
        "PERMISSION_DENIED",
        description="The viewer may not move it: they lack the permission the current or the "
        "target status needs, or its step is assigned and they are neither a candidate nor its "
        "claimant (nor hold `override_workitem`).",
    )
    VERSION_CONFLICT = strawberry.enum_value(
        "VERSION_CONFLICT", description="It changed while being migrated: plan again."
    )
    REFUSED = strawberry.enum_value(
        "REFUSED", description="Another refusal (see `message`), e.g. a database error."
    )


@strawberry.type(name="WorkflowInstanceMove", description="One instance of a migration.")
class WorkflowInstanceMoveType:
    instance: WorkflowInstanceType = strawberry.field(
        description="The instance (as it is after this request)."
    )
    from_version: int = strawberry.field(description="The version it ran on.")
    from_step: str = strawberry.field(description="Its step there.")
    from_status: str = strawberry.field(description="Its status there.")
    to_step: Optional[str] = strawberry.field(
        description="The step it lands (or would land) on; null for UNMAPPED_STEP."
    )
    to_status: Optional[str] = strawberry.field(
        description="The status it lands (or would land) on; null for UNMAPPED_STEP."
    )
    outcome: WorkflowMigrationOutcome = strawberry.field(description="What became of it.")
    reason: Optional[WorkflowMigrationReason] = strawberry.field(
        description="Why it did not move (BLOCKED, FAILED)."
    )
    message: Optional[str] = strawberry.field(description="The reason, for people.")


@strawberry.type(
    name="WorkflowMigration",
    description="A page of a migration (`migrateWorkflowInstances`): the plan of a dry run, or "
    "what was done.",
)
class WorkflowMigrationType:
    dry_run: bool = strawberry.field(description="True: nothing was changed.")
    workflow: WorkflowType = strawberry.field(description="The workflow.")
    to_version: WorkflowVersionType = strawberry.field(description="The target version.")
    moves: list[WorkflowInstanceMoveType] = strawberry.field(
        metadata={MAX_ITEMS: MAX_PAGE_SIZE},
        description="The instances of this page, by ID: where each lands or why it cannot.",
    )
    movable_count: int = strawberry.field(
        description="Instances of this page that can move (dry run) or were tried."
    )
    migrated_count: int = strawberry.field(description="Instances moved by this request.")
    blocked_count: int = strawberry.field(description="Instances of this page that cannot move.")
    failed_count: int = strawberry.field(
        description="Instances whose move was refused when applied (VERSION_CONFLICT, …)."
    )
    has_next_page: bool = strawberry.field(
        description="More instances are selected after this page."
    )
    end_cursor: Optional[str] = strawberry.field(
        description="Pass it as `after` for the next page (null: an empty page)."
    )


_REFUSED_MESSAGE = {
    "VERSION_CONFLICT": "The instance changed since it was planned: plan again.",
    "PERMISSION_DENIED": "Its step is assigned and someone else claimed it since it was planned.",
}


def _mapping(mapping: WorkflowMigrationMappingInput | None) -> tuple[dict[str, Any], dict]:
    """The engine's mapping, and its problem paths → this input's fields (the engine numbers
    statuses per step)."""
    if mapping is None:
        return {}, {}
    steps: dict[str, str] = {}
    for i, entry in enumerate(mapping.steps):
        if entry.from_step in steps:
            raise _duplicate(f"mapping.steps.{i}")
        steps[entry.from_step] = entry.to_step
    statuses: dict[str, dict[str, str]] = {}
    where: dict[tuple[str, str], int] = {}
    for i, entry in enumerate(mapping.statuses):
        if entry.from_status in statuses.setdefault(entry.step, {}):
            raise _duplicate(f"mapping.statuses.{i}")
        statuses[entry.step][entry.from_status] = entry.to_status
        where[entry.step, entry.from_status] = i
    paths = {f"mapping.steps[{i}]": f"mapping.steps.{i}" for i in range(len(steps))}
    for i, (step, names) in enumerate(statuses.items()):
        paths[f"mapping.statuses[{i}]"] = f"mapping.statuses.{where[step, next(iter(names))]}"
        for j, name in enumerate(names):
            paths[f"mapping.statuses[{i}][{j}]"] = f"mapping.statuses.{where[step, name]}"
    return {"steps": steps, "statuses": statuses}, paths


def _duplicate(field: str) -> ApiError:
    return ApiError(
        TransportCode.BAD_USER_INPUT,
        "The mapping names this step (or status) a second time.",
        kind=Kind.VALIDATION,
        field=field,
    )


def _filters(info: Info, filters: WorkflowMigrationFiltersInput | None) -> dict[str, Any]:
    if filters is None:
        return {}
    out: dict[str, Any] = {}
    if filters.instance_ids is not None:
        out["ids"] = [
            parse_global_id(raw, "WorkflowInstance", field="filters.instanceIds", info=info)
            for raw in filters.instance_ids
        ]
    if filters.from_versions is not None:
        out["from_versions"] = list(filters.from_versions)
    if filters.steps is not None:
        out["steps"] = list(filters.steps)
    if filters.states is not None:
        out["states"] = [state.value for state in filters.states]
    return out


def _page_bounds(info: Info, data: MigrateWorkflowInstancesInput) -> tuple[int, int | None]:
    first = MAX_PAGE_SIZE if data.first is None else data.first
    if not 0 <= first <= MAX_PAGE_SIZE:
        raise ApiError(
            TransportCode.BAD_USER_INPUT,
            f"`first` must be between 0 and {MAX_PAGE_SIZE}.",
            kind=Kind.VALIDATION,
            field="first",
        )
    after = None
    if data.after is not None:
        after = parse_global_id(data.after, "WorkflowInstance", field="after", info=info)
    return first, after


def migrate_workflow_instances(
    info: Info, data: MigrateWorkflowInstancesInput
) -> WorkflowMigrationType:
    """The resolver of ``migrateWorkflowInstances`` (its permission is checked by the caller)."""
    user = current_user(info)
    first, after = _page_bounds(info, data)
    mapping, paths = _mapping(data.mapping)
    filters = _filters(info, data.filters)
    name = workflow_named(info, data.workflow_name, data.workflow_id)
    workflow = Workflow.objects.filter(name=name).first()
    if workflow is None:
        raise WorkflowNotFound("No workflow has this name.", field="workflowName")
    try:
        target = get_version(workflow, data.to_version)
        ids, more = migration_page(workflow, target, filters, first=first, after=after, actor=user)
        plan = plan_migration(workflow, target, mapping, {**filters, "ids": ids}, actor=user)
    except InvalidDefinition as error:
        for problem in error.problems:  # the paths of this input, not the engine's
            path = problem.get("path")
            problem["path"] = {"version": "toVersion"}.get(path, paths.get(path, path))
        raise
    failed: dict[int, str] = {}
    migrated: set[int] = set()
    if not data.dry_run:
        result = migrate_instances(workflow, target, plan=plan, actor=user)
        failed, migrated = result.failed, set(result.migrated)
    rows = (
        WorkflowInstance.objects.select_related(
            "workflow", "current_step", "current_step_status", "definition_version"
        )
        .defer("definition_version__document")
        .in_bulk([move.instance_id for move in plan.moves])
    )
    # `viewerCan` may check the attached objects: loaded together (one query per model)
    prefetch_related_objects(list(rows.values()), "content_object")
    for pk in rows:  # selected through the visibility rule (migration_page)
        permissions.vouch(info, pk)
    moves = [_move(move, rows[move.instance_id], data.dry_run, failed) for move in plan.moves]
    end = plan.moves[-1].instance_id if plan.moves else None
    return WorkflowMigrationType(
        dry_run=data.dry_run,
        workflow=workflow,
        to_version=target,
        moves=moves,
        movable_count=len(plan.movable),
        migrated_count=len(migrated),
        blocked_count=len(plan.blocked),
        failed_count=len(failed),
        has_next_page=more,
        end_cursor=relay.to_base64(schema_name(info, "WorkflowInstance"), end) if end else None,
    )


def _move(
    move: PlannedMove, instance: WorkflowInstance, dry_run: bool, failed: dict[int, str]
) -> WorkflowInstanceMoveType:
    reason: str | None = move.blocked
    message = move.reason
    if reason is not None:
        outcome = WorkflowMigrationOutcome.BLOCKED
    elif dry_run:
        outcome = WorkflowMigrationOutcome.WOULD_MIGRATE
    elif move.instance_id in failed:
        outcome = WorkflowMigrationOutcome.FAILED
        code = failed[move.instance_id]
        reason = code
        message = _REFUSED_MESSAGE.get(code, "The instance could not be moved.")
    else:
        outcome = WorkflowMigrationOutcome.MIGRATED
    return copied(
        WorkflowInstanceMoveType,
        move,
        instance=instance,
        outcome=outcome,
        reason=WorkflowMigrationReason.__members__.get(reason, WorkflowMigrationReason.REFUSED)
        if reason
        else None,
        message=message,
    )
