"""The service layer: every change to a workflow instance goes through these functions.

Each change increments ``version`` and appends exactly one
:class:`~django_steps.models.WorkflowEvent`, or changes nothing: no update is lost, no change is
half applied, conditions decide on committed state, and the history stays commit-ordered and
gap-free. ``workflow_event_committed`` is sent once per committed change, after commit.
Failures raise subclasses of :class:`~django_steps.exceptions.WorkflowError` and change nothing.

Two round trips per change (PostgreSQL, no transaction of the caller's open): one ``SELECT``
reads the instance, its workflow, its version and — when the caller's instance knows its
content type — its content object (joined); the change is decided on that committed state; one
statement writes it (:func:`django_steps.statements.write_in_one_statement`: the instance's
``UPDATE`` guarded by ``version`` and ``last_sequence`` as read — a compare-and-set — with the
history row, timers and work items as CTEs applied only if it matched). No lock is held between
the two, and each is its own transaction. When another change of the instance committed in
between, nothing is written and the change is read again, now with the row lock in a
transaction, and decided on that state (with ``expected_version``, an instance that moved on is
a ``VERSION_CONFLICT``, as before); see :data:`~django_steps.writes.OPTIMISTIC_ATTEMPTS`.
Locked, it cannot be overtaken: contention alone never fails a change, and its attempts are
bounded. Inside a caller's ``transaction.atomic()``, or when ``pre_save`` / ``post_save``
receivers listen to instances or events (then the ORM writes, three statements), a change locks
the instance's row (``SELECT … FOR UPDATE OF`` the instance) in the caller's transaction or its
own. On SQLite, whose writers take turns, a change is one transaction: the read, the instance's
``UPDATE`` and the history ``INSERT`` (:func:`django_steps.statements.write_in_two_statements`).

The only lock a change takes is its instance's row lock, for one statement or for the
caller's transaction: changes of different instances never wait for each other, and a
transaction that changes several instances cannot deadlock against single changes (it could
only deadlock against another transaction locking the same instances in the opposite order).
Where a history row goes in the global order is :mod:`django_steps.history`'s business.

The original's names and positional arguments are kept; ``actor=`` and ``expected_version=``
are keyword-only extras. Each function returns the instance it was given, updated in place,
with ``instance.last_event`` set to the history row the change wrote.

Each instance runs on its published version
-------------------------------------------

Every change reads the compiled definition of the version the instance is pinned to
(``WorkflowInstance.definition_version``, see :mod:`django_steps.versions`), never the current
rows: a later version changes nothing for it until it is migrated, and each event records the
version it happened on. A new instance starts on the latest published version.

Acting users and the trusted path
---------------------------------

With ``actor=user`` a service applies the whole rule of :mod:`django_steps.authorization`,
whoever calls it (the GraphQL mutations, the admin, a host's own views): without
``django_steps.change_workflowinstance`` it raises ``NotPermitted`` (``PERMISSION_DENIED``)
before looking the instance up; an instance the user may not see is ``InstanceNotFound``,
exactly as a missing one (checked before ``expected_version``, which would tell that it
exists); then the move needs the permission of its target status, or of the status it leaves
(``authorization.required_permission``: a decision sticks). An anonymous or inactive user
passes none of these. Without ``actor`` the caller is trusted — the system: a management
command, a scheduled job, a migration — and nothing is checked; its events record no actor, so
an event without an actor is always the system's.

Conditions read the same values on both paths: the object's fields from the database, a
caller's ``context_data`` under ``input`` (:mod:`django_steps.context`).

Conditions decide on committed state, within a tight budget
------------------------------------------------------------

Transition conditions are evaluated on the state the change's read returned, and the write
applies only if the instance is still in that state (the compare-and-set, or the row lock on the
locking path): a condition never decides on a state other than the one the change applies to.
Each evaluation is bounded: a condition is stopped after ``CEL_BUDGET`` steps (about 0.2 s of
CPU with the default 20,000) and the change fails with ``CONDITION_ERROR`` (reason
``OVER_BUDGET``); conditions whose estimated cost is over that budget are refused when the
definition is saved (see :mod:`django_steps.cel`). On the locking path the lock is therefore
held at most for the step's conditions tried in priority order — each within its budget — plus
the context conversion, which the ``CONTEXT_MAX_*`` limits bound for client-supplied context.
Client-supplied ``context_data`` is checked before anything is evaluated: ``INVALID_CONTEXT``,
nothing changed.

A condition that fails says so through :func:`django_steps.cel.condition_error`: the
transition, the expression (cut when long) and the kind of failure, never a value of the
context or the object. The dry run (:func:`evaluate_transitions`) reports the same text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, transaction
from django.db.models import Model

from . import authorization, compiled, evaluation, versions
from .choices import EventKind, InstanceState
from .compiled import CompiledWorkflow, StatusDef, StepDef
from .context import Context, build_context
from .exceptions import (
    ContentObjectNotFound,
    InstanceOnHold,
    InvalidDefinition,
    NotAwaitingTransition,
    NotOnHold,
    NotPermitted,
    UnknownStatus,
    WorkflowNotFound,
    WorkItemClaimed,
    WorkItemNotClaimed,
    WorkItemNotFound,
)
from .models import Workflow, WorkflowEvent, WorkflowInstance, WorkItem
from .selectors import (
    TransitionDryRun,
    TransitionEvaluation,
    evaluate_transitions,
    get_workflow_instance_for_object,
)
from .writes import (
    _advance,
    _change,
    _db,
    _lock,
    _may_change,
    _require_move,
    _save,
    _sync,
    note,
)

__all__ = [
    "start_workflow_instance",
    "update_workflow_step_status",
    "advance_workflow_instance",
    "set_workflow_on_hold",
    "resume_workflow_instance",
    "cancel_workflow_instance",
    "get_workflow_instance_for_object",
    "evaluate_transitions",
    "build_context",
    "claim_work_item",
    "release_work_item",
    "delegate_work_item",
    "TransitionEvaluation",
    "TransitionDryRun",
]


# --------------------------------------------------------------------------- services


def start_workflow_instance(
    workflow_name: str, content_object: Model, *, actor: Any = None
) -> WorkflowInstance:
    """Start ``workflow_name`` for ``content_object`` on the initial step with its default status.

    If an unfinished instance of that workflow exists for the object, it is returned unchanged;
    a finished one does not prevent starting again.

    With ``actor``: ``NotPermitted`` without ``change_workflowinstance``, and
    ``ContentObjectNotFound`` (as for a missing object) unless the actor may view the object.
    """
    _may_change(actor)
    if content_object is None or getattr(content_object, "pk", None) is None:
        raise ContentObjectNotFound("A workflow can only be started for a saved object.")
    using = _db()
    content_type = ContentType.objects.db_manager(using).get_for_model(content_object)
    object_id = str(content_object.pk)
    with transaction.atomic(using=using):
        workflow = Workflow.objects.using(using).filter(name=workflow_name).first()
        if workflow is None:
            raise WorkflowNotFound("No workflow has this name.", workflow_name=workflow_name)
        definition = _definition_to_start(workflow)
        authorization.check_startable(definition, content_type)
        if actor is not None and not authorization.may_view_object(actor, content_object):
            raise ContentObjectNotFound("The object does not exist, or you may not view it.")
        running = (
            WorkflowInstance.objects.using(using)
            .unfinished()
            .filter(workflow=workflow, content_type=content_type, object_id=object_id)
        )
        existing = running.first()
        if existing is not None:
            return existing
        initial = definition.initial_step
        if initial is None:
            raise InvalidDefinition(
                f'Workflow "{workflow.name}" has no initial step.',
                problems=[{"path": "steps", "message": "no initial step"}],
            )
        status = evaluation.default_status(definition, initial)
        try:
            with transaction.atomic(using=using):
                instance = WorkflowInstance.objects.using(using).create(
                    workflow=workflow,
                    definition_version_id=definition.version_id,
                    current_step_id=initial.id,
                    current_step_status_id=status.id,
                    state=InstanceState.ACTIVE,
                    version=1,
                    last_sequence=1,
                    content_type=content_type,
                    object_id=object_id,
                )
        except IntegrityError:
            # Another transaction started one first (one unfinished instance per object and
            # workflow): theirs is returned, as if it had been there before.
            existing = running.first()
            if existing is None:
                raise
            return existing
        instance.content_object = content_object  # cached for the CEL context...
        instance.object_id = object_id  # ...but the GFK setter stored the raw pk, not its text
        _save(
            instance,
            EventKind.STARTED,
            step_id=initial.id,
            status_id=status.id,
            state=InstanceState.ACTIVE,
            actor=actor,
            created=True,
            definition=definition,
        )
    return instance


def _definition_to_start(workflow: Workflow) -> CompiledWorkflow:
    """What a new instance runs on: the latest published version (cached by its number and
    hash, read with the workflow row: no query on a hit); a workflow never published is
    published now, if its definition is valid."""
    if workflow.definition_version:
        return compiled.load(workflow)
    return compiled.for_version(versions.publish_workflow(workflow))


def update_workflow_step_status(
    workflow_instance: WorkflowInstance,
    new_status_name: str | None,
    context_data: Mapping[str, Any] | None = None,
    *,
    actor: Any = None,
    expected_version: int | None = None,
    status_id: int | None = None,
) -> WorkflowInstance:
    """Set a status of the current step, named by ``new_status_name`` or, instead, by its
    primary key ``status_id`` (which must then be a status of the current step).

    A completion status advances: outgoing transitions are tried by priority, highest first,
    and the first whose condition matches moves the instance to its target step's default
    status; on a final step the instance completes. When nothing matches, the status is kept
    and a ``NO_TRANSITION`` event records it (retry with :func:`advance_workflow_instance`).
    Setting the step's on-hold status holds the instance; its cancellation status cancels it.

    With ``actor``: the whole rule (:mod:`django_steps.authorization`): ``NotPermitted`` without
    ``change_workflowinstance`` or the permission the move needs, ``InstanceNotFound`` for an
    instance the actor may not see.
    """

    def change(instance: WorkflowInstance) -> None:
        definition, step = evaluation.definition_of(instance)
        if status_id is not None:
            status = next((s for s in step.statuses.values() if s.id == status_id), None)
            wanted = "with this ID"
        else:
            status = step.statuses.get(new_status_name)
            wanted = "of this name"
        if status is None:
            # the step's own names, never the caller's (details keep it for code)
            known = ", ".join(f'"{name}"' for name in step.statuses) or "none"
            raise UnknownStatus(
                f'Step "{step.name}" has no status {wanted}. Its statuses: {known}.',
                status_name=new_status_name,
                step_name=step.name,
            )
        _require_move(
            actor, instance, definition.statuses.get(instance.current_step_status_id), status
        )
        if status.is_cancellation_status:
            _set_status(instance, EventKind.CANCELLED, InstanceState.CANCELLED, step, actor, status)
        elif instance.state == InstanceState.ON_HOLD:
            raise InstanceOnHold(
                f"Workflow instance {instance.pk} is on hold; "
                "resume it before changing its status.",
                instance_id=instance.pk,
            )
        elif status.is_on_hold_status:
            _set_status(instance, EventKind.ON_HOLD, InstanceState.ON_HOLD, step, actor, status)
        elif status.is_completion_status:
            _advance(instance, definition, step, status, Context(instance, context_data), actor)
        else:
            _set_status(
                instance, EventKind.STATUS_CHANGED, InstanceState.ACTIVE, step, actor, status
            )

    return _sync(workflow_instance, _change(workflow_instance, expected_version, actor, change))


def advance_workflow_instance(
    workflow_instance: WorkflowInstance,
    context_data: Mapping[str, Any] | None = None,
    *,
    actor: Any = None,
    expected_version: int | None = None,
) -> WorkflowInstance:
    """Retry the transitions of an instance whose completion status found no match earlier,
    e.g. with new ``context_data``. Writes ``ADVANCED``/``COMPLETED``, or ``NO_TRANSITION``
    again when still nothing matches."""

    def change(instance: WorkflowInstance) -> None:
        if instance.state == InstanceState.ON_HOLD:
            raise InstanceOnHold(
                f"Workflow instance {instance.pk} is on hold; resume it before advancing it.",
                instance_id=instance.pk,
            )
        definition, step = evaluation.definition_of(instance)
        status = definition.statuses[instance.current_step_status_id]
        if not status.is_completion_status:
            raise NotAwaitingTransition(
                f"Workflow instance {instance.pk} is not waiting for a transition: "
                f'its status "{status.name}" on step "{step.name}" is not a completion status.',
                instance_id=instance.pk,
            )
        _require_move(actor, instance, status, status)
        _advance(instance, definition, step, status, Context(instance, context_data), actor)

    return _sync(workflow_instance, _change(workflow_instance, expected_version, actor, change))


def _set_status(
    instance: WorkflowInstance,
    kind: str,
    state: str,
    step: StepDef,
    actor: Any,
    status: StatusDef | None,
    *,
    requested: bool = True,
) -> WorkflowEvent:
    """Set ``status`` on ``step`` with ``state``; without one (holding or cancelling on a step
    with no on-hold or cancellation status) the current status stays. ``requested``: the event
    records ``status`` as the one asked for."""
    return _save(
        instance,
        kind,
        step_id=step.id,
        status_id=status.id if status else instance.current_step_status_id,
        state=state,
        actor=actor,
        requested_status_id=status.id if status and requested else None,
    )


def set_workflow_on_hold(
    workflow_instance: WorkflowInstance, *, actor: Any = None, expected_version: int | None = None
) -> WorkflowInstance:
    """Put an active instance on hold (state ON_HOLD; the step's on-hold status if it has one)."""

    def change(instance: WorkflowInstance) -> None:
        if instance.state == InstanceState.ON_HOLD:
            raise InstanceOnHold(
                f"Workflow instance {instance.pk} is already on hold.", instance_id=instance.pk
            )
        definition, step = evaluation.definition_of(instance)
        current = definition.statuses.get(instance.current_step_status_id)
        _require_move(actor, instance, current, step.on_hold_status)
        _set_status(
            instance, EventKind.ON_HOLD, InstanceState.ON_HOLD, step, actor, step.on_hold_status
        )

    return _sync(workflow_instance, _change(workflow_instance, expected_version, actor, change))


def resume_workflow_instance(
    workflow_instance: WorkflowInstance, *, actor: Any = None, expected_version: int | None = None
) -> WorkflowInstance:
    """Resume an instance on hold (state ACTIVE; from an on-hold status, the step's default).

    Held through an on-hold status that names a permission, resuming needs that permission too
    (unless the default status names one of its own, which then decides)."""

    def change(instance: WorkflowInstance) -> None:
        if instance.state != InstanceState.ON_HOLD:
            raise NotOnHold(
                f"Workflow instance {instance.pk} is not on hold.", instance_id=instance.pk
            )
        definition, step = evaluation.definition_of(instance)
        current = definition.statuses[instance.current_step_status_id]
        status = (
            evaluation.default_status(definition, step) if current.is_on_hold_status else current
        )
        _require_move(actor, instance, current, status)  # who may hold through it may release it
        # No status was asked for: resuming returns to one.
        _set_status(
            instance, EventKind.RESUMED, InstanceState.ACTIVE, step, actor, status, requested=False
        )

    return _sync(workflow_instance, _change(workflow_instance, expected_version, actor, change))


def cancel_workflow_instance(
    workflow_instance: WorkflowInstance, *, actor: Any = None, expected_version: int | None = None
) -> WorkflowInstance:
    """Cancel an unfinished instance (state CANCELLED, completed_at set, the step's
    cancellation status if it has one)."""

    def change(instance: WorkflowInstance) -> None:
        definition, step = evaluation.definition_of(instance)
        current = definition.statuses.get(instance.current_step_status_id)
        _require_move(actor, instance, current, step.cancellation_status)
        _set_status(
            instance,
            EventKind.CANCELLED,
            InstanceState.CANCELLED,
            step,
            actor,
            step.cancellation_status,
        )

    return _sync(workflow_instance, _change(workflow_instance, expected_version, actor, change))


# --------------------------------------------------------------------------- work items
# Claim, release and delegate lock the instance row (the one lock every change of it takes), so
# of two claims at once one wins and the other gets ALREADY_CLAIMED; each writes a note, which
# leaves the instance's version alone (see django_steps.workitems).


def _locked_item(item: WorkItem, actor: Any) -> tuple[WorkflowInstance, WorkItem]:
    """The item's instance, locked (``InstanceNotFound`` if the actor may not see it), and the
    item read again under the lock: ``WORK_ITEM_NOT_FOUND`` once closed."""
    _may_change(actor)
    instance = _lock(WorkflowInstance(pk=item.instance_id), None, actor)
    current = (
        WorkItem.objects.using(instance._state.db)
        .prefetch_related("candidates")
        .filter(pk=item.pk, closed_at__isnull=True)
        .first()
    )
    if current is None:
        raise WorkItemNotFound("This work item is closed or does not exist.", work_item_id=item.pk)
    return instance, current


def _noted(item: WorkItem, instance: WorkflowInstance, kind: str, actor: Any, **detail: Any):
    item.save(using=instance._state.db, update_fields=["claimed_by"])
    note(instance, kind, actor=actor, detail={"workItem": item.pk, **detail})
    return item


def claim_work_item(item: WorkItem, actor: Any = None, *, user: Any = None) -> WorkItem:
    """``actor`` takes the open work item ``item`` (from the trusted path: ``user`` is given
    it); from then on only they act on its step. ``ALREADY_CLAIMED`` when someone has it;
    ``PERMISSION_DENIED`` for an actor who is not a candidate (nor holds the override), or who
    may not complete the step (:func:`~django_steps.authorization.may_complete`)."""
    with transaction.atomic(using=_db()):
        instance, current = _locked_item(item, actor)
        if current.claimed_by_id is not None:
            raise WorkItemClaimed(
                "Someone has already claimed this work item.", work_item_id=current.pk
            )
        if actor is not None and not authorization.may_claim(actor, current, instance):
            raise NotPermitted(
                "You may not claim this work item: you are not its candidate, or may not "
                "complete its step. Nothing was changed."
            )
        current.claimed_by = actor if actor is not None else user
        return _noted(current, instance, EventKind.CLAIMED, actor)


def release_work_item(item: WorkItem, actor: Any = None) -> WorkItem:
    """Give ``item`` back to its candidates: by its claimant (or who holds the override).
    ``NOT_CLAIMED`` when nobody has it."""
    with transaction.atomic(using=_db()):
        instance, current = _locked_item(item, actor)
        if current.claimed_by_id is None:
            raise WorkItemNotClaimed("This work item is not claimed.", work_item_id=current.pk)
        if actor is not None and not authorization.may_release(actor, current):
            raise NotPermitted("You have not claimed this work item. Nothing was changed.")
        previous = current.claimed_by_id
        current.claimed_by = None
        return _noted(current, instance, EventKind.RELEASED, actor, **{"from": previous})


def delegate_work_item(item: WorkItem, to_user: Any, actor: Any = None) -> WorkItem:
    """Hand ``item`` to ``to_user``, who then holds it as if they had claimed it: by its
    claimant, or, unclaimed, one who may claim it (or the override). ``to_user`` must be able
    to see and change the instance, and complete its step (``PERMISSION_DENIED`` otherwise, as
    for an actor who may not hand it over); None stands for a user the caller named who does
    not exist or is inactive, refused alike. The actor's right is checked first, so an actor
    who may not hand the item over learns nothing of the user."""
    with transaction.atomic(using=_db()):
        instance, current = _locked_item(item, actor)
        if actor is not None and not authorization.may_delegate(actor, current, instance):
            raise NotPermitted("You may not hand this work item over. Nothing was changed.")
        if to_user is None or not authorization.may_receive(to_user, instance):
            raise NotPermitted("That user may not act on this instance. Nothing was changed.")
        current.claimed_by = to_user
        return _noted(current, instance, EventKind.DELEGATED, actor, to=to_user.pk)
