"""The write path the services share: reading an instance for a change (optimistically, or
with its row locked), checking a move, saving its new position with its history row (a
compare-and-set on the optimistic path), and announcing the committed change.

:mod:`django_steps.services` holds the public services built on it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db import connections, router, transaction
from django.db.models.signals import post_save, pre_save
from django.utils import timezone

from . import authorization, compiled, deadlines, evaluation, history, rows, statements, workitems
from .choices import NOTE_KINDS, UNFINISHED_STATES, EventKind, InstanceState
from .compiled import CompiledWorkflow, StatusDef, StepDef
from .context import Context
from .exceptions import InstanceFinished, NotPermitted, VersionConflict
from .models import WorkflowEvent, WorkflowInstance
from .signals import workflow_event_committed

logger = logging.getLogger("django_steps")

# --------------------------------------------------------------------------- helpers


def _db() -> str:
    return router.db_for_write(WorkflowInstance)


def _actor(actor: Any) -> Any:
    return (
        actor if getattr(actor, "is_authenticated", False) and getattr(actor, "pk", None) else None
    )


def _may_change(actor: Any) -> None:
    """With an acting user: changing instances needs ``change_workflowinstance``, checked
    before the instance is looked up (the refusal says nothing about it)."""
    if actor is not None and not authorization.may_change_instances(actor):
        raise NotPermitted("You may not change workflow instances. Nothing was changed.")


_missing = evaluation.missing

#: The ``detail`` of the changes the system makes inside :func:`system_detail`.
_system_detail: ContextVar[Any] = ContextVar("django_steps_system_detail", default=None)


@contextmanager
def system_detail(detail: Any) -> Iterator[None]:
    """Record ``detail`` (e.g. ``{"reason": "DEADLINE"}``) on the changes made inside, which
    the system (a worker) makes through the ordinary services."""
    token = _system_detail.set(detail)
    try:
        yield
    finally:
        _system_detail.reset(token)


def _lock(
    workflow_instance: WorkflowInstance, expected_version: int | None, actor: Any = None
) -> WorkflowInstance:
    """The instance's row, locked (inside the caller's transaction); with an acting user, only
    if they may see it (checked before the version, which would tell that it exists)."""
    return _read(workflow_instance, expected_version, actor, lock=True)


def _read(
    workflow_instance: WorkflowInstance,
    expected_version: int | None,
    actor: Any,
    *,
    lock: bool,
) -> WorkflowInstance:
    """The instance as committed (``lock``: its row locked), with its workflow, its version
    and — its content type being known — its content object, in one statement
    (:func:`django_steps.statements.read_for_change`); checked as :func:`_lock` says."""
    read = statements.read_for_change(
        _db(),
        workflow_instance.pk,
        workflow_instance.__dict__.get("content_type_id"),
        lock=lock,
    )
    if read is None:
        raise _missing(workflow_instance.pk)
    if actor is not None and not authorization.may_see_instance(actor, read):
        raise _missing(workflow_instance.pk)
    if expected_version is not None and read.version != expected_version:
        raise VersionConflict(
            f"Workflow instance {read.pk} is at version {read.version}, not the expected one: "
            "it changed since that version was read (by this caller or another). Reload it and "
            "try again.",
            instance_id=read.pk,
            expected_version=expected_version,
            actual_version=read.version,
        )
    return read


def _refuse_finished(instance: WorkflowInstance) -> None:
    if instance.is_completed():
        raise InstanceFinished(
            f"Workflow instance {instance.pk} is {instance.state.lower()}; "
            "it accepts no further changes.",
            instance_id=instance.pk,
            state=instance.state,
        )


#: Optimistic attempts of one change before it takes the instance's row lock (see
#: :func:`_change`). One: a change overtaken once is contended, and a second optimistic try
#: would mostly repeat work to be overtaken again (32 threads × 50 changes on one instance took
#: 19.8 s with one attempt, 23.7 s with two, 16.6 s always locking; loaded 2-core machine).
OPTIMISTIC_ATTEMPTS = 1


class _Overtaken(Exception):
    """A compare-and-set write found the instance changed since it was read: nothing was
    written; the change is tried again on a fresh read."""


def _change(
    workflow_instance: WorkflowInstance,
    expected_version: int | None,
    actor: Any,
    apply: Callable[[WorkflowInstance], Any],
) -> WorkflowInstance:
    """How every change of an instance runs: the permission to change checked, the instance
    read (at ``expected_version``) and refused if finished, then ``apply(instance)`` decides
    and writes the change. Returns the instance as changed.

    On PostgreSQL in autocommit (no caller's transaction open) a change is optimistic: one
    read, then one compare-and-set write (:func:`django_steps.statements.write_in_one_statement`)
    that applies only if no other event of the instance was committed since the read: two
    round trips, each its own transaction, no lock held between them. When another change came
    first (after :data:`OPTIMISTIC_ATTEMPTS` such attempts), it is read again with the row lock
    in a transaction, as the other path always does, and decided on that state, where nothing
    can overtake it: a change never fails for contention alone, and its attempts are bounded.
    With ``expected_version``, an instance that moved on is a ``VERSION_CONFLICT`` at that
    read, as before. Inside a caller's transaction, on SQLite, or with model save signals
    connected, the change locks the row in a transaction."""
    _may_change(actor)
    using = _db()
    connection = connections[using]
    if (
        connection.vendor == "postgresql"
        and connection.get_autocommit()
        and not connection.in_atomic_block
        and not _save_signals_connected()
    ):
        for _ in range(OPTIMISTIC_ATTEMPTS):
            instance = _read(workflow_instance, expected_version, actor, lock=False)
            _refuse_finished(instance)
            instance._compare_and_set = (instance.version, instance.last_sequence)
            try:
                apply(instance)
            except _Overtaken:
                continue
            return instance
    with transaction.atomic(using=using):
        instance = _read(workflow_instance, expected_version, actor, lock=True)
        _refuse_finished(instance)
        apply(instance)
    return instance


def _require_move(
    actor: Any,
    instance: WorkflowInstance,
    current: StatusDef | None,
    target: StatusDef | None,
) -> None:
    """With an acting user, the permission moving from ``current`` to ``target`` needs (see
    :func:`django_steps.authorization.required_permission`: a decision sticks)."""
    if actor is None:
        return
    step = compiled.for_instance(instance).steps.get(instance.current_step_id)
    authorization.check_acts(actor, instance, step)  # an assigned step: its candidates only
    permission = authorization.required_permission(current, target)
    if not permission or authorization.may_set_status(actor, permission, instance.content_object):
        return
    if target is not None and permission == target.permission:
        message = f'You do not have the permission to set the status "{target.name}".'
    else:
        message = (
            f'The status "{current.name}" was set with a permission you do not have: you may not '
            "move the instance away from it."
        )
    raise NotPermitted(
        f"{message} Nothing was changed.",
        status_name=target.name if target is not None else None,
        current_status_name=current.name if current is not None else None,
        instance_id=instance.pk,
    )


def _save(
    instance: WorkflowInstance,
    kind: str,
    *,
    step_id: int,
    status_id: int,
    state: str,
    actor: Any,
    requested_status_id: int | None = None,
    transition_id: int | None = None,
    context: Any = None,
    created: bool = False,
    definition_version_id: int | None = None,
    detail: Any = None,
    definition: CompiledWorkflow | None = None,
) -> WorkflowEvent:
    """Apply the new position (and, migrating, the new version) to the locked instance and
    append its history row; open and close its work items (``definition``: the compiled
    version it runs on, if the caller has it) and arm, pause, resume or disarm its timers."""
    if definition_version_id is not None:
        instance.definition_version_id = definition_version_id
    source = (None, None, None) if created else _position(instance)
    if not created:
        instance.current_step_id = step_id
        instance.current_step_status_id = status_id
        instance.state = state
        instance.version += 1
        instance.last_sequence += 1
        if state in (InstanceState.COMPLETED, InstanceState.CANCELLED):
            instance.completed_at = timezone.now()
    event = _event(
        instance,
        kind,
        source,
        actor=actor,
        detail=detail if detail is not None else _system_detail.get(),
        requested_status_id=requested_status_id,
        transition_id=transition_id,
        context=context,
    )
    work = workitems.plan(
        instance,
        kind,
        from_step_id=event.from_step_id,
        to_step_id=step_id,
        state=state,
        definition=definition,
    )
    timers = deadlines.plan(instance, event)
    _append(instance, event, None if created else _INSTANCE_CHANGED, work, timers)
    instance.last_event = event
    return event


def note(
    instance: WorkflowInstance, kind: str, *, actor: Any = None, detail: Any = None
) -> WorkflowEvent:
    """Append a note (a kind of :data:`~django_steps.choices.NOTE_KINDS`: a reminder, a claim
    …) to the history of ``instance``, whose row the caller has locked (:func:`_lock`) inside
    its transaction. A note changes neither the instance's position nor its ``version``, so
    it never makes a concurrent status change conflict; it takes the next ``sequence`` and its
    place in the global order like any event, and is published after commit like any event."""
    if kind not in NOTE_KINDS:
        raise ValueError(f"{kind} changes the instance: write it with the services.")
    instance.last_sequence += 1
    event = _event(instance, kind, _position(instance), actor=actor, detail=detail)
    _append(instance, event, ["last_sequence"])
    return event


def _position(instance: WorkflowInstance) -> tuple[int | None, int | None, str | None]:
    """Where ``instance`` stands: its step, its status and its state."""
    return instance.current_step_id, instance.current_step_status_id, instance.state


def _event(
    instance: WorkflowInstance,
    kind: str,
    source: tuple[int | None, int | None, str | None],
    *,
    actor: Any,
    **fields: Any,
) -> WorkflowEvent:
    """The history row ``kind`` of ``instance`` as it stands now (its sequence already counted),
    coming from ``source`` (:func:`_position` before the change; ``None``s when it was just
    created); ``fields``: the row's other columns by attname (``detail``, ``transition_id`` …)."""
    from_step_id, from_status_id, from_state = source
    to_step_id, to_status_id, state = _position(instance)
    return rows.new(
        WorkflowEvent,
        {"instance": instance, "actor": _actor(actor)},
        {
            "workflow_id": instance.workflow_id,
            "definition_version_id": instance.definition_version_id,
            "sequence": instance.last_sequence,
            "version": instance.version,
            "kind": kind,
            "state": state,
            "from_state": from_state,
            "from_step_id": from_step_id,
            "from_status_id": from_status_id,
            "to_step_id": to_step_id,
            "to_status_id": to_status_id,
            **fields,
        },
    )


def _append(
    instance: WorkflowInstance,
    event: WorkflowEvent,
    changed: list[str] | None,
    work: workitems.Plan | None = None,
    timers: deadlines.Plan | None = None,
) -> None:
    """Save ``changed`` fields of the locked instance (None: it was just created), insert
    ``event`` at its place in the global order, open/close work items (``work``) and write its
    timers (``timers``); publish the event once committed."""
    using = instance._state.db or _db()
    expect = instance.__dict__.pop("_compare_and_set", None)  # one write per optimistic read
    connection = connections[using]
    vendor = connection.vendor
    if expect is not None or (vendor == "postgresql" and not _save_signals_connected()):
        if not statements.write_in_one_statement(
            using,
            event,
            update=instance if changed else None,
            fields=changed or (),
            work=work,
            timers=timers,
            expect=expect,
        ):
            raise _Overtaken
    else:
        if vendor == "sqlite" and not _save_signals_connected():
            statements.write_in_two_statements(
                using, event, update=instance if changed else None, fields=changed or ()
            )
        else:
            if changed:
                instance.save(using=using, update_fields=changed)
            event.txid, event.position = history.next_slot(using, instance.pk)
            event.save(using=using, force_insert=True)
        if work is not None:
            workitems.apply(work, instance, event)
        if timers is not None:
            deadlines.apply(timers, instance)
    connection.on_commit(lambda: _publish(event, instance))  # transaction.on_commit's own call


_INSTANCE_CHANGED = [
    "definition_version",
    "current_step",
    "current_step_status",
    "state",
    "version",
    "last_sequence",
    "completed_at",
    "updated_at",
]


def _save_signals_connected() -> bool:
    """Model save signals on instances or events must keep firing for code that listens to
    them (as code written against the original may); then the ORM path is used."""
    return any(
        signal.receivers and signal.has_listeners(model)  # none at all: no lookup per model
        for signal in (pre_save, post_save)
        for model in (WorkflowInstance, WorkflowEvent)
    )


def _publish(event: WorkflowEvent, instance: WorkflowInstance) -> None:
    """Send ``workflow_event_committed`` once the change is committed. A failing receiver (e.g.
    a channel layer that is down) is logged: the change is committed and must not be reported
    as failed, and the other receivers still run. The history is the source of truth."""
    for receiver, result in workflow_event_committed.send_robust(
        sender=WorkflowEvent, event=event, instance=instance
    ):
        if isinstance(result, Exception):
            logger.error(
                "workflow_event_committed receiver %r failed for event %s",
                receiver,
                event.pk,
                exc_info=(type(result), result, result.__traceback__),
            )


def _sync(target: WorkflowInstance, source: WorkflowInstance) -> WorkflowInstance:
    """Copy the committed position onto the caller's object (it is returned to them)."""
    if target is source:
        return target
    for name in (
        "definition_version_id",
        "current_step_id",
        "current_step_status_id",
        "state",
        "version",
        "last_sequence",
        "completed_at",
        "updated_at",
    ):
        setattr(target, name, getattr(source, name))
    target.last_event = source.__dict__.get("_last_event")  # the row written, if any
    return target


def move_to_version(
    instance_id: int,
    expected_version: int,
    actor: Any,
    *,
    definition_version_id: int,
    step_id: int,
    status_id: int,
) -> WorkflowEvent:
    """Move one unfinished instance onto another published version of its workflow, in the
    caller's transaction: its row locked and expected at ``expected_version`` (else
    ``VersionConflict``), its state kept, one ``MIGRATED`` event."""
    instance = _lock(WorkflowInstance(pk=instance_id), expected_version, actor)
    if instance.state not in UNFINISHED_STATES:  # pragma: no cover - its version moved too
        raise VersionConflict("The instance finished since it was planned.")
    # a claim since the plan leaves the version alone: the assigned-step rule is read again here
    step = compiled.for_instance(instance).steps.get(instance.current_step_id)
    authorization.check_acts(actor, instance, step)
    return _save(
        instance,
        EventKind.MIGRATED,
        step_id=step_id,
        status_id=status_id,
        state=instance.state,
        actor=actor,
        definition_version_id=definition_version_id,
    )


def _advance(
    instance: WorkflowInstance,
    definition: CompiledWorkflow,
    step: StepDef,
    status: StatusDef,
    context: Context,
    actor: Any,
) -> WorkflowEvent:
    """``status`` (a completion status) is set on ``step``: complete, move on, or stay."""
    kind, target, target_status, transition = EventKind.COMPLETED, step, status, None
    if not step.is_final_step:
        transition = evaluation.choose(definition, step, context)
        if transition is None:
            kind = EventKind.NO_TRANSITION
        else:
            target = definition.steps[transition.to_step_id]
            target_status = evaluation.default_status(definition, target)
            finished = target.is_final_step and target_status.is_completion_status
            kind = EventKind.COMPLETED if finished else EventKind.ADVANCED
    return _save(
        instance,
        kind,
        step_id=target.id,
        status_id=target_status.id,
        state=InstanceState.COMPLETED if kind == EventKind.COMPLETED else InstanceState.ACTIVE,
        actor=actor,
        requested_status_id=status.id,
        transition_id=transition.id if transition else None,
        context=context.for_history(),
        definition=definition,
    )
