"""Published versions of a definition, instances pinned to theirs, and migrating instances.

Publishing
    :func:`publish_workflow` validates a workflow's current rows as a whole, snapshots them
    (:func:`django_steps.snapshots.snapshot_workflow`: the document plus every row id) and
    stores version N+1 — unless the content is that of the latest version, which is then
    returned (an identical re-import makes no version). ``import_workflow`` and the admin
    publish; edits made through the ORM are a **draft** until ``publish_workflow`` is called.
    ``Workflow.definition_version`` is the latest published number (0: never published).

Pinning
    An instance runs on the version it started on (``WorkflowInstance.definition_version``):
    every service reads that version's compiled definition
    (:func:`django_steps.compiled.for_instance`), so a later version changes nothing for it
    until it is migrated. Each history event records the version it happened on.

Migrating
    :func:`plan_migration` is the dry run: for each instance it selects, where it would land
    (step, status) or why it cannot move. :func:`migrate_instances` applies a plan instance by
    instance, each in its own transaction with the row locked and the version it was planned
    at expected (an instance changed since is a conflict, reported, not touched), writing one
    ``MIGRATED`` event through the services' write path (so it is published live).

    The mapping (all parts optional)::

        {"steps": {"Old step": "New step"},
         "statuses": {"Old step": {"Old status": "New status"}}}

    A step kept by name maps to itself; a step neither kept nor mapped blocks its instances
    (``UNMAPPED_STEP``). A status is mapped by ``statuses`` (the new status being one of the
    target step's), else kept by name when the target step has it, else falls back to the
    target step's default status. Landing on a cancellation status, or an active instance on an
    on-hold status, is refused (``TARGET_STATUS_ROLE``: cancel or hold the instance instead); an
    instance on hold stays on hold wherever it lands, and with ``actor=`` the move
    needs what a status change would (``PERMISSION_DENIED``): on an assigned step, to be a
    candidate of its open work item, or its claimant once claimed, or to hold
    ``django_steps.override_workitem`` (checked again when applied, under the row lock: a claim
    made since the plan is a note that leaves the version alone); and the permission of the
    target status or the current one (:func:`django_steps.authorization.required_permission`).
    A migration closes the open work item and opens a new, unclaimed one: it takes the item from
    its claimant, which is why a claimed step is its claimant's (or an override's) to migrate.

    Filters (all optional): ``ids`` (instance primary keys), ``from_versions`` (version
    numbers), ``steps`` (current step names), ``states`` (``ACTIVE`` / ``ON_HOLD``). Finished
    instances and instances already on the target version are never selected.

    With ``actor=``: ``django_steps.migrate_workflowinstance`` is needed (``NotPermitted``
    otherwise) and only instances the actor may see are selected.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError, router, transaction
from django.db.models import prefetch_related_objects

from . import authorization, compiled, workitems
from .choices import UNFINISHED_STATES, InstanceState
from .compiled import CompiledWorkflow, StatusDef, StepDef
from .documents import validate_definition
from .exceptions import (
    InvalidDefinition,
    NotPermitted,
    WorkflowError,
    WorkflowNotFound,
)
from .models import Workflow, WorkflowInstance, WorkflowVersion
from .snapshots import snapshot_workflow, strip_ids
from .writes import move_to_version

__all__ = [
    "MIGRATE_INSTANCE",
    "publish_workflow",
    "content_hash",
    "get_version",
    "Change",
    "diff_versions",
    "PlannedMove",
    "MigrationPlan",
    "MigrationResult",
    "plan_migration",
    "migration_page",
    "migrate_instances",
]

MIGRATE_INSTANCE = "django_steps.migrate_workflowinstance"

logger = logging.getLogger("django_steps")


# --------------------------------------------------------------------------- publishing


def content_hash(document: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a version's document."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def publish_workflow(
    workflow: Workflow, *, actor: Any = None, validate: bool = True
) -> WorkflowVersion:
    """Publish ``workflow``'s current definition as its next version and return it; if the
    content equals the latest version's, return that one (nothing is created). Raises
    :class:`~django_steps.exceptions.InvalidDefinition` (nothing published) for an invalid
    definition. ``actor`` is recorded as ``created_by``.

    ``validate=False`` is for trusted code that builds definitions through the ORM which the
    document rules refuse on purpose (a test fixture with unreachable steps, say): the version
    is published as the rows are, and the engine refuses what it cannot run when it runs it."""
    using = router.db_for_write(WorkflowVersion)
    with transaction.atomic(using=using):
        # The workflow row lock serialises publishers of one workflow (numbers stay 1, 2, 3…).
        locked = Workflow.objects.using(using).select_for_update().get(pk=workflow.pk)
        document = snapshot_workflow(locked)
        if validate:
            validate_definition(strip_ids(document))
        digest = content_hash(document)
        latest = (
            WorkflowVersion.objects.using(using)
            .filter(workflow=locked)
            .order_by("-number")
            .defer("document")
            .first()
        )
        if latest is not None and latest.content_hash == digest:
            version = latest
        else:
            version = WorkflowVersion.objects.using(using).create(
                workflow=locked,
                number=(latest.number if latest else 0) + 1,
                document=document,
                content_hash=digest,
                created_by=actor if getattr(actor, "pk", None) else None,
            )
        if (locked.definition_version, locked.definition_hash) != (version.number, digest):
            Workflow.objects.using(using).filter(pk=locked.pk).update(
                definition_version=version.number, definition_hash=digest
            )
    workflow.definition_version, workflow.definition_hash = version.number, version.content_hash
    return version


def get_version(workflow: Workflow, number: int) -> WorkflowVersion:
    """Version ``number`` of ``workflow``; ``InvalidDefinition`` (path ``version``) if none."""
    version = WorkflowVersion.objects.filter(workflow=workflow, number=number).first()
    if version is None:
        raise InvalidDefinition(
            f'Workflow "{workflow.name}" has no published version with this number.',
            problems=[{"path": "version", "message": "no published version with this number"}],
        )
    return version


# --------------------------------------------------------------------------- diff


@dataclass(frozen=True)
class Change:
    """One difference between two versions. ``part``: ``workflow``, ``content_type``,
    ``step``, ``status``, ``transition``; ``action``: ``added``, ``removed``, ``changed``;
    ``name``: the part's name (a status: ``Step / Status``; a transition: ``From → To``);
    ``changes``: for ``changed``, each field's ``(old, new)`` (a transition's ``condition``, a
    status's ``permission``, …)."""

    part: str
    action: str
    name: str
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)


def _fields(item: dict[str, Any], *, without: Iterable[str] = ()) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in ("id", "statuses", *without)}


def _compare(part: str, name: str, old: dict, new: dict, out: list[Change]) -> None:
    changes = {k: (old.get(k), new.get(k)) for k in {*old, *new} if old.get(k) != new.get(k)}
    if changes:
        out.append(Change(part, "changed", name, dict(sorted(changes.items()))))


def diff_versions(old: WorkflowVersion, new: WorkflowVersion) -> list[Change]:
    """What changed from version ``old`` to version ``new`` of a workflow: steps, statuses and
    transitions added, removed or changed (conditions, permissions, roles, …). Parts are matched
    by their row ids, which a definition keeps across versions (steps and statuses by name,
    transitions by their ends and priority)."""
    a, b = old.document, new.document
    out: list[Change] = []
    _compare(
        "workflow",
        b["name"],
        _fields(a, without=("steps", "transitions", "content_types")),
        _fields(b, without=("steps", "transitions", "content_types")),
        out,
    )
    for label in sorted(set(a.get("content_types", [])) - set(b.get("content_types", []))):
        out.append(Change("content_type", "removed", label))
    for label in sorted(set(b.get("content_types", [])) - set(a.get("content_types", []))):
        out.append(Change("content_type", "added", label))

    old_steps = {s["id"]: s for s in a["steps"]}
    new_steps = {s["id"]: s for s in b["steps"]}
    for step in a["steps"]:
        if step["id"] not in new_steps:
            out.append(Change("step", "removed", step["name"]))
    for step in b["steps"]:
        before = old_steps.get(step["id"])
        if before is None:
            out.append(Change("step", "added", step["name"]))
        else:
            _compare("step", step["name"], _fields(before), _fields(step), out)
    old_statuses = {st["id"]: (s["name"], st) for s in a["steps"] for st in s["statuses"]}
    new_statuses = {st["id"]: (s["name"], st) for s in b["steps"] for st in s["statuses"]}
    for pk, (step_name, st) in old_statuses.items():
        if pk not in new_statuses:
            out.append(Change("status", "removed", f"{step_name} / {st['name']}"))
    for pk, (step_name, st) in new_statuses.items():
        before = old_statuses.get(pk)
        if before is None:
            out.append(Change("status", "added", f"{step_name} / {st['name']}"))
        else:
            _compare("status", f"{step_name} / {st['name']}", _fields(before[1]), _fields(st), out)

    def label(t: dict[str, Any]) -> str:
        return f"{t['from_step']} → {t['to_step']}"

    old_transitions = {t["id"]: t for t in a["transitions"]}
    new_transitions = {t["id"]: t for t in b["transitions"]}
    for t in a["transitions"]:
        if t["id"] not in new_transitions:
            out.append(Change("transition", "removed", label(t)))
    for t in b["transitions"]:
        before = old_transitions.get(t["id"])
        if before is None:
            out.append(Change("transition", "added", label(t)))
        else:
            _compare("transition", label(t), _fields(before), _fields(t), out)
    return out


# --------------------------------------------------------------------------- migration


@dataclass(frozen=True)
class PlannedMove:
    """Where one instance would land, or why it cannot move (``blocked``: a reason code —
    ``UNMAPPED_STEP``, ``TARGET_STATUS_ROLE``, ``PERMISSION_DENIED`` — and ``reason``)."""

    instance_id: int
    version: int  # the instance's version when planned (expected when applied)
    from_version: int
    from_step: str
    from_status: str
    to_step: str | None = None
    to_status: str | None = None
    to_step_id: int | None = None
    to_status_id: int | None = None
    blocked: str | None = None
    reason: str | None = None

    @property
    def can_move(self) -> bool:
        return self.blocked is None


@dataclass
class MigrationPlan:
    workflow: Workflow
    to_version: WorkflowVersion
    moves: list[PlannedMove]

    @property
    def movable(self) -> list[PlannedMove]:
        return [m for m in self.moves if m.can_move]

    @property
    def blocked(self) -> list[PlannedMove]:
        return [m for m in self.moves if not m.can_move]


@dataclass
class MigrationResult:
    plan: MigrationPlan
    migrated: list[int] = field(default_factory=list)
    #: instance id → why it was not migrated (changed since planning: ``VERSION_CONFLICT``; or
    #: another refusal's code)
    failed: dict[int, str] = field(default_factory=dict)

    @property
    def blocked(self) -> list[PlannedMove]:
        return self.plan.blocked


def _mapping_problems(mapping: Mapping[str, Any], target: CompiledWorkflow) -> list[dict[str, str]]:
    problems = []
    if not isinstance(mapping, Mapping) or set(mapping) - {"steps", "statuses"}:
        return [{"path": "mapping", "message": 'expected a mapping with "steps" and "statuses"'}]
    steps = mapping.get("steps") or {}
    statuses = mapping.get("statuses") or {}
    if not isinstance(steps, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in steps.items()
    ):
        return [{"path": "mapping.steps", "message": "expected step names to step names"}]
    # Paths number the mapping's entries (in order) rather than repeat the names given.
    for i, new in enumerate(steps.values()):
        if target.step_named(new) is None:
            problems.append(
                {"path": f"mapping.steps[{i}]", "message": "names no step of the target version"}
            )
    if not isinstance(statuses, Mapping):
        return [{"path": "mapping.statuses", "message": "expected step names to mappings"}]
    for i, (old_step, names) in enumerate(statuses.items()):
        if (
            not isinstance(old_step, str)
            or not isinstance(names, Mapping)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in names.items())
        ):
            problems.append(
                {
                    "path": f"mapping.statuses[{i}]",
                    "message": "expected status names to status names",
                }
            )
            continue
        target_step = target.step_named(steps.get(old_step, old_step))
        for j, new in enumerate(names.values()):
            if target_step is None or new not in target_step.statuses:
                problems.append(
                    {
                        "path": f"mapping.statuses[{i}][{j}]",
                        "message": "names no status of the target step",
                    }
                )
    return problems


def _landing(
    mapping: Mapping[str, Any],
    step: StepDef,
    status: StatusDef,
    target: CompiledWorkflow,
    state: str,
) -> tuple[StepDef | None, StatusDef | None, str | None, str | None]:
    steps = mapping.get("steps") or {}
    target_step = target.step_named(steps.get(step.name, step.name))
    if target_step is None:
        return (
            None,
            None,
            "UNMAPPED_STEP",
            f'Step "{step.name}" is not in the target version '
            "and the mapping names no step for it.",
        )
    mapped = ((mapping.get("statuses") or {}).get(step.name) or {}).get(status.name)
    target_status = (
        target_step.statuses.get(mapped)
        if mapped
        else target_step.statuses.get(status.name) or target_step.default_status
    )
    if target_status is None:  # pragma: no cover - published versions have a default status
        return target_step, None, "UNMAPPED_STATUS", "The target step has no default status."
    held = state == InstanceState.ON_HOLD
    if target_status.is_cancellation_status or (target_status.is_on_hold_status and not held):
        return (
            target_step,
            target_status,
            "TARGET_STATUS_ROLE",
            f'The status "{target_status.name}" would cancel or hold the instance: '
            "cancel or hold it instead, or map the status to another one.",
        )
    return target_step, target_status, None, None


def _selected(workflow: Workflow, target: WorkflowVersion, filters: Mapping[str, Any], actor: Any):
    qs = (
        WorkflowInstance.objects.filter(workflow=workflow, state__in=UNFINISHED_STATES)
        .exclude(definition_version=target)
        .select_related("definition_version")
        .defer("definition_version__document")
        .order_by("pk")
    )
    unknown = set(filters) - {"ids", "from_versions", "steps", "states"}
    if unknown:
        raise InvalidDefinition(
            "Unknown migration filter.",
            problems=[{"path": "filters", "message": "expected ids, from_versions, steps, states"}],
        )
    if filters.get("ids") is not None:
        qs = qs.filter(pk__in=list(filters["ids"]))
    if filters.get("from_versions") is not None:
        qs = qs.filter(definition_version__number__in=list(filters["from_versions"]))
    if filters.get("steps") is not None:
        qs = qs.filter(current_step__name__in=list(filters["steps"]))
    if filters.get("states") is not None:
        qs = qs.filter(state__in=list(filters["states"]))
    if actor is not None:
        qs = authorization.visible_instances(actor, qs)
    return qs


def _may_migrate(actor: Any) -> None:
    if actor is not None and not (
        getattr(actor, "is_active", False) and actor.has_perm(MIGRATE_INSTANCE)
    ):
        raise NotPermitted("You may not migrate workflow instances. Nothing was changed.")


def plan_migration(
    workflow: Workflow | str,
    to_version: int | WorkflowVersion,
    mapping: Mapping[str, Any] | None = None,
    filters: Mapping[str, Any] | None = None,
    *,
    actor: Any = None,
) -> MigrationPlan:
    """The dry run of a migration: per selected instance, where it would land or why it cannot
    move. Changes nothing. Raises ``InvalidDefinition`` for an unknown version, filter or a
    mapping naming what the target version lacks (problems with paths), ``NotPermitted``
    without the migrate permission when ``actor`` is given."""
    _may_migrate(actor)
    if isinstance(workflow, str):
        found = Workflow.objects.filter(name=workflow).first()
        if found is None:
            raise WorkflowNotFound("No workflow has this name.", workflow_name=workflow)
        workflow = found
    target_row = (
        to_version if isinstance(to_version, WorkflowVersion) else get_version(workflow, to_version)
    )
    if target_row.workflow_id != workflow.pk:
        raise InvalidDefinition(
            "The target version belongs to another workflow.",
            problems=[{"path": "version", "message": "a version of another workflow"}],
        )
    target = compiled.for_version(target_row)
    mapping = mapping or {}
    problems = _mapping_problems(mapping, target)
    if problems:
        raise InvalidDefinition(
            "The migration mapping does not fit the target version: "
            + "; ".join(f"{p['path']}: {p['message']}" for p in problems),
            problems=problems,
        )
    instances = list(_selected(workflow, target_row, filters or {}, actor))
    if actor is not None:  # what the rule reads, one query each for the whole page
        prefetch_related_objects(instances, "content_object", workitems.open_items_prefetch())
    moves = []
    for instance in instances:
        source = compiled.for_instance(instance)
        step = source.steps[instance.current_step_id]
        status = source.statuses[instance.current_step_status_id]
        to_step, to_status, blocked, reason = _landing(
            mapping, step, status, target, instance.state
        )
        if blocked is None and actor is not None:
            # a move like a status change: the step's work item first, then the permissions
            if step.assignees and not authorization.may_act_on_item(
                actor, workitems.open_item_of(instance)
            ):
                blocked = "PERMISSION_DENIED"
                reason = (
                    "Its step is assigned: only its candidates, or who claimed it, may move it."
                )
            elif not authorization.may_move(actor, status, to_status, instance.content_object):
                blocked = "PERMISSION_DENIED"
                reason = (
                    "You do not have the permission the target status (or the current one) needs."
                )
        moves.append(
            PlannedMove(
                instance_id=instance.pk,
                version=instance.version,
                from_version=source.definition_version,
                from_step=step.name,
                from_status=status.name,
                to_step=to_step.name if to_step else None,
                to_status=to_status.name if to_status else None,
                to_step_id=to_step.id if to_step else None,
                to_status_id=to_status.id if to_status else None,
                blocked=blocked,
                reason=reason,
            )
        )
    return MigrationPlan(workflow, target_row, moves)


def migration_page(
    workflow: Workflow,
    to_version: WorkflowVersion,
    filters: Mapping[str, Any] | None = None,
    *,
    first: int,
    after: int | None = None,
    actor: Any = None,
) -> tuple[list[int], bool]:
    """The ids of the first ``first`` instances (by id, after id ``after``) a migration to
    ``to_version`` with ``filters`` selects, and whether more follow — for callers that bound
    one request's work (pass the ids as the ``ids`` filter of :func:`plan_migration`)."""
    _may_migrate(actor)
    selected = _selected(workflow, to_version, filters or {}, actor)
    if after is not None:
        selected = selected.filter(pk__gt=after)
    ids = list(selected.values_list("pk", flat=True)[: first + 1])
    return ids[:first], len(ids) > first


def migrate_instances(
    workflow: Workflow | str,
    to_version: int | WorkflowVersion,
    mapping: Mapping[str, Any] | None = None,
    filters: Mapping[str, Any] | None = None,
    *,
    batch_size: int = 100,
    progress: Callable[[int, int], None] | None = None,
    actor: Any = None,
    plan: MigrationPlan | None = None,
) -> MigrationResult:
    """Apply the migration :func:`plan_migration` plans (or ``plan``, a plan made earlier):
    each movable instance in its own transaction, its row locked, expected at the version it
    was planned at — an instance changed since is reported in ``failed`` (``VERSION_CONFLICT``)
    and left as it is, as is one whose write fails (``DATABASE_ERROR``, logged). Each migrated
    instance gets one ``MIGRATED`` event (its ``version`` moves by one). ``progress(done,
    total)`` is called after every ``batch_size`` instances."""
    if plan is None:
        plan = plan_migration(workflow, to_version, mapping, filters, actor=actor)
    else:
        _may_migrate(actor)
    result = MigrationResult(plan)
    target = plan.to_version
    moves = plan.movable
    total = len(moves)
    using = router.db_for_write(WorkflowInstance)
    for done, move in enumerate(moves, start=1):
        try:
            with transaction.atomic(using=using):
                move_to_version(
                    move.instance_id,
                    move.version,
                    actor,
                    definition_version_id=target.pk,
                    step_id=move.to_step_id,
                    status_id=move.to_status_id,
                )
        except WorkflowError as exc:
            result.failed[move.instance_id] = str(exc.code)
        except DatabaseError:  # rolled back with its transaction: the instance is as it was
            logger.exception("Migrating workflow instance %s failed", move.instance_id)
            result.failed[move.instance_id] = "DATABASE_ERROR"
        else:
            result.migrated.append(move.instance_id)
        if progress is not None and (done % max(batch_size, 1) == 0 or done == total):
            progress(done, total)
    return result
