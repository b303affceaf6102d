"""Deadlines and reminders: time as data.

A step may declare a ``deadline`` in the definition document::

    deadline:
      after: P2D            # an ISO-8601 duration (days and time: P2D, PT4H30M, P1DT12H), counted
                            # from entering the step; or instead
      at: claim.due_date    # a CEL expression over the object giving a timestamp
      status: Escalated     # optional: a status of the step, set by the system when it passes
      remind_before: PT4H   # optional: a REMINDER note that long before

Timers
    Entering a step with a deadline arms its timers (:class:`~django_steps.models.WorkflowTimer`
    rows: the deadline, and its reminder) in the transaction of the change, so a rollback arms
    nothing; leaving the step (or finishing) removes them in the transaction that leaves it.
    Hold pauses the clock (the time left is kept), resume continues with it. The write path
    asks :func:`plan` for every change, before writing it, and writes the plan with the change
    (on PostgreSQL in the change's one statement: no round trip more); for a step without a
    deadline it costs no query. An ``at`` that gives no timestamp (null, a string …) arms an
    ``ERROR`` timer, due at once, recorded by the worker as a ``DEADLINE_ERROR`` note: a change
    never fails because of its deadline. ``at`` is read once, on entering the step. An instance
    runs on its version's deadlines; migrating it to another version arms that version's,
    counted from the migration.

Firing
    :func:`fire_due` claims due timers with ``SELECT … FOR UPDATE SKIP LOCKED`` (PostgreSQL; on
    SQLite writers take turns) and fires them in the batch's transaction (a batch a firing
    failed in is rolled back and fired again, each timer in its own savepoint), under
    the instance's row lock, taken with ``SKIP LOCKED`` too (an instance being changed is left
    for the next sweep; workers never wait for a lock, so they cannot deadlock with a change,
    which locks the instance, then its timers). A timer whose instance is no longer on its
    step is discarded, never applied to a newer state. The effect and the timer's ``fired_at``
    commit together, so each timer fires at most once, and a worker killed mid-batch leaves
    its timers to the next one:

    * a deadline naming a status sets it as the system (``actor`` null), exactly as
      :func:`~django_steps.services.update_workflow_step_status` would — a completion status
      advances, an on-hold status holds, a cancellation status cancels — with
      ``detail = {"reason": "DEADLINE"}``; if that change fails (a condition error …), a
      ``DEADLINE_ERROR`` note says why;
    * a deadline naming no status writes a ``DEADLINE_PASSED`` note, a reminder a ``REMINDER``
      note (notes leave the instance's ``version`` alone).

    Nothing a definition or an object says stops the worker: due times are held within the
    calendar (:func:`shifted`), a firing that fails unexpectedly is undone alone and recorded
    (``INTERNAL_ERROR``), and a deadline status set :data:`LOOP_CHANGES` times on one instance
    within :data:`LOOP_WINDOW` is refused (``DEADLINE_LOOP``).

    ``python manage.py steps_worker`` sweeps when the next timer falls due, at least every
    ``WORKER_POLL_SECONDS`` (a timer armed meanwhile);
    :mod:`django_steps.tasks` runs the same sweep on Celery.

Time is ``django.utils.timezone.now()`` throughout.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from typing import Any

from django.db import router, transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from . import cel, compiled
from .choices import FINISHED_STATES, EventKind, InstanceState
from .compiled import CompiledWorkflow, StepDef
from .context import on_entry
from .exceptions import ConditionError, ConditionSyntaxError, WorkflowError
from .models import WorkflowEvent, WorkflowInstance, WorkflowTimer

logger = logging.getLogger("django_steps")

__all__ = [
    "KEYS",
    "parse_duration",
    "problems",
    "Plan",
    "plan",
    "apply",
    "fire_due",
    "run_once",
    "seconds_to_wait",
    "due_at_expression",
    "overdue_instances",
    "instances_due_before",
]

Kind = WorkflowTimer.Kind

#: The keys of a ``deadline`` mapping.
KEYS = ("after", "at", "status", "remind_before")

#: The longest duration a deadline may name (beyond it, a date computation could overflow).
MAX_DURATION = dt.timedelta(days=36500)

#: The range of due times: what a row read back into Python can hold, a day inside either end
#: so that it can also be shown in any time zone (``localtime`` of ``datetime.max`` east of UTC
#: overflows: a page listing due times would fail). A due time beyond it (an ``at`` of
#: 9999-12-31, a reminder before an ``at`` in the year 1, a resume pushing a far deadline
#: further) is held at its end, never an overflow that would stop the worker.
EARLIEST = dt.datetime.min.replace(tzinfo=dt.UTC) + dt.timedelta(days=1)
LATEST = dt.datetime.max.replace(tzinfo=dt.UTC) - dt.timedelta(days=1)

#: A deadline whose status the system set this many times on one instance within
#: :data:`LOOP_WINDOW` fires no more: steps whose deadlines move the instance back and forth at
#: once would keep a worker busy forever. It is recorded as a ``DEADLINE_ERROR`` (reason
#: ``DEADLINE_LOOP``) and the instance stays where it is.
LOOP_CHANGES = 20
LOOP_WINDOW = dt.timedelta(minutes=1)

_DURATION_RE = re.compile(
    r"^P(?:(?P<days>\d{1,6})D)?"
    r"(?:T(?:(?P<hours>\d{1,7})H)?(?:(?P<minutes>\d{1,9})M)?(?:(?P<seconds>\d{1,11})S)?)?$"
)


# --------------------------------------------------------------------------- the document


def parse_duration(text: Any) -> dt.timedelta:
    """An ISO-8601 duration of days and time parts (``P2D``, ``PT4H30M``, ``P1DT12H``; no
    years, months or weeks, whose length varies or is ambiguous). ``ValueError`` otherwise."""
    match = _DURATION_RE.match(text) if isinstance(text, str) else None
    if match is None or text in ("P", "PT") or text.endswith("T"):
        raise ValueError("not an ISO-8601 duration of days and time (e.g. P2D, PT4H30M)")
    parts = {name: int(value) for name, value in match.groupdict().items() if value}
    duration = dt.timedelta(**parts)
    if duration > MAX_DURATION:
        raise ValueError(f"longer than {MAX_DURATION.days} days")
    return duration


def problems(deadline: dict[str, Any], status_names: list[str]) -> list[tuple[str, str]]:
    """What is wrong with one step's ``deadline`` (already known to be a mapping): ``(key,
    message)`` pairs, key ``""`` for the mapping itself. Used by definition validation."""
    found: list[tuple[str, str]] = []
    for key in deadline:
        if key not in KEYS:
            found.append((str(key), f"unknown key {key!r}; expected one of: {', '.join(KEYS)}"))
    given = [key for key in ("after", "at") if deadline.get(key) is not None]
    if len(given) != 1:
        found.append(("", 'give either "after" (a duration) or "at" (a CEL timestamp), not both'))
    for key in ("after", "remind_before"):
        if deadline.get(key) is not None:
            try:
                parse_duration(deadline[key])
            except ValueError as exc:
                found.append((key, str(exc)))
    if deadline.get("at") is not None:
        found.extend(("at", message) for message in _at_problems(deadline["at"]))
    status = deadline.get("status")
    if status is not None and (not isinstance(status, str) or status not in status_names):
        found.append(("status", "names no status of the step"))
    return found


def _at_problems(expression: Any) -> list[str]:
    if not isinstance(expression, str) or not expression.strip():
        return ["must be a CEL expression giving a timestamp"]
    try:
        cel.compile_condition(expression)
    except ConditionSyntaxError as exc:
        return [exc.message]
    if cel.variables(expression):
        return []  # its type depends on the object: checked when the step is entered
    try:  # a constant: its value is known now
        cel.timestamp(expression, {})
    except ConditionError as exc:
        return [f"gives no timestamp: {exc.description or 'it could not be evaluated'}"]
    return []


# --------------------------------------------------------------------------- arming


@dataclass(frozen=True)
class Plan:
    """What one change does to its instance's timers: ``disarm`` those armed (a step left),
    ``arm`` these (unsaved rows: a step entered), ``pause`` the running ones (a hold),
    ``resume`` the paused ones. Written with the change's history row (on PostgreSQL in the
    same statement: :func:`django_steps.statements.write_in_one_statement`)."""

    disarm: bool = False
    arm: tuple[WorkflowTimer, ...] = ()
    pause: bool = False
    resume: bool = False


def plan(instance: WorkflowInstance, event: WorkflowEvent) -> Plan | None:
    """What ``event`` (not written yet) does to the timers of ``instance`` (locked, already at
    its new position): disarm those of a step left, arm those of the step entered, pause on
    hold, continue on resume. ``None`` — and no query — when neither step has a deadline."""
    definition = _definition(instance)
    entered = definition.steps.get(event.to_step_id)
    left = definition.steps.get(event.from_step_id) if event.from_step_id else None
    moved = (
        event.kind in (EventKind.STARTED, EventKind.MIGRATED)
        or event.transition_id is not None  # a transition, even back to the same step
        or event.from_step_id != event.to_step_id
    )
    finished = event.state in FINISHED_STATES
    if moved or finished:
        disarm = event.kind == EventKind.MIGRATED or (left is not None and bool(left.deadline))
        arm: tuple[WorkflowTimer, ...] = ()
        if not finished and entered is not None and entered.deadline:
            arm = _timers_of(instance, entered, paused=event.state == InstanceState.ON_HOLD)
        return Plan(disarm=disarm, arm=arm) if disarm or arm else None
    if entered is None or not entered.deadline:
        return None
    if event.state == InstanceState.ON_HOLD and event.from_state == InstanceState.ACTIVE:
        return Plan(pause=True)
    if event.state == InstanceState.ACTIVE and event.from_state == InstanceState.ON_HOLD:
        return Plan(resume=True)
    return None


def apply(plan: Plan, instance: WorkflowInstance) -> None:
    """Write ``plan`` through the ORM (SQLite, or model save signals connected)."""
    if plan.disarm:
        _timers(instance).delete()
    if plan.arm:
        WorkflowTimer.objects.using(instance._state.db).bulk_create(plan.arm)
    if plan.pause:
        _pause(instance)
    if plan.resume:
        _resume(instance)


def _definition(instance: WorkflowInstance) -> CompiledWorkflow:
    """The compiled version of ``instance``, without a query when its version or workflow row
    is at hand (a started instance has its workflow, a locked one its version)."""
    if WorkflowInstance.definition_version.is_cached(instance):
        return compiled.for_instance(instance)
    if WorkflowInstance.workflow.is_cached(instance):
        latest = compiled.load(instance.workflow)
        if latest.version_id == instance.definition_version_id:
            return latest
    return compiled.for_instance(instance)


def _timers(instance: WorkflowInstance) -> QuerySet:
    return WorkflowTimer.objects.using(instance._state.db).filter(instance_id=instance.pk)


def _timers_of(
    instance: WorkflowInstance, step: StepDef, *, paused: bool
) -> tuple[WorkflowTimer, ...]:
    """The timers entering ``step`` arms (unsaved)."""
    spec = step.deadline or {}
    now = timezone.now()
    common = {"instance_id": instance.pk, "step_id": step.id, "armed_version": instance.version}
    try:
        due = (
            shifted(now, parse_duration(spec["after"]))
            if spec.get("after")
            else _at(instance, spec)
        )
    except ConditionError as exc:
        detail = {"reason": exc.details.get("reason", cel.Reason.ERROR), "key": "at"}
        timers = [WorkflowTimer(kind=Kind.ERROR, due_at=now, detail=detail, **common)]
    else:
        timers = [WorkflowTimer(kind=Kind.DEADLINE, due_at=due, **common)]
        if spec.get("remind_before"):
            remind_at = shifted(due, -parse_duration(spec["remind_before"]))
            # held at the calendar's start, it keeps the due time its note tells
            held = {"dueAt": due.isoformat()} if remind_at == EARLIEST else None
            timers.append(
                WorkflowTimer(kind=Kind.REMINDER, due_at=remind_at, detail=held, **common)
            )
        if paused:  # entered on hold (a migration): the clock starts on resume
            for timer in timers:
                timer.remaining, timer.due_at = max(timer.due_at - now, dt.timedelta(0)), None
    return tuple(timers)


def held(when: dt.datetime) -> dt.datetime:
    """``when``, held within :data:`EARLIEST` … :data:`LATEST`."""
    return min(max(when, EARLIEST), LATEST)


def shifted(when: dt.datetime, by: dt.timedelta) -> dt.datetime:
    """``when + by``, held within :data:`EARLIEST` … :data:`LATEST`."""
    try:
        return held(when + by)
    except OverflowError:
        return LATEST if by > dt.timedelta(0) else EARLIEST


def _at(instance: WorkflowInstance, spec: dict[str, Any]) -> dt.datetime:
    """The timestamp of a deadline's ``at`` for ``instance`` (:class:`ConditionError`, reason
    ``NOT_A_TIMESTAMP``, when it gives none)."""
    expression = spec.get("at") or ""
    try:
        value = cel.timestamp(expression, on_entry(instance).activation(expression))
    except ConditionSyntaxError as exc:  # pragma: no cover - published versions compile
        raise ConditionError(exc.message, reason=cel.Reason.SYNTAX) from None
    return held(dt.datetime.fromtimestamp(value.timestamp(), tz=dt.UTC))


def _pause(instance: WorkflowInstance) -> None:
    now = timezone.now()
    timers = list(_timers(instance).filter(fired_at__isnull=True, due_at__isnull=False))
    for timer in timers:
        timer.remaining, timer.due_at = max(timer.due_at - now, dt.timedelta(0)), None
    WorkflowTimer.objects.using(instance._state.db).bulk_update(timers, ["remaining", "due_at"])


def _resume(instance: WorkflowInstance) -> None:
    now = timezone.now()
    timers = list(_timers(instance).filter(fired_at__isnull=True, remaining__isnull=False))
    for timer in timers:
        timer.due_at, timer.remaining = shifted(now, timer.remaining), None
    WorkflowTimer.objects.using(instance._state.db).bulk_update(timers, ["remaining", "due_at"])


# --------------------------------------------------------------------------- firing


def fire_due(now: dt.datetime | None = None, *, limit: int = 200, using: str | None = None) -> int:
    """Fire up to ``limit`` timers due by ``now`` (default: the clock), in one transaction;
    returns how many were handled (fired or discarded). Timers claimed by another worker, or
    whose instance is being changed, are left for a later sweep."""
    using = using or router.db_for_write(WorkflowTimer)
    now = now or timezone.now()
    try:
        return _sweep(now, limit, using, alone=False)
    except Exception:
        # A firing failed unexpectedly and took the batch with it: the batch again, each timer
        # in its own savepoint (two statements more per timer, paid only then), so that one
        # is used up and recorded while the others fire.
        logger.warning("A deadline sweep failed; firing its timers one by one.", exc_info=True)
        return _sweep(now, limit, using, alone=True)


def _sweep(now: dt.datetime, limit: int, using: str, *, alone: bool) -> int:
    # services and writes are imported here: the write path imports this module (plan).
    from . import services, writes

    with transaction.atomic(using=using):
        timers = list(
            WorkflowTimer.objects.using(using)
            .select_for_update(skip_locked=True)
            .filter(fired_at__isnull=True, due_at__lte=now)
            .order_by("due_at", "id")[:limit]
        )
        if not timers:
            return 0
        # Their instances, locked in one statement; one being changed is skipped, never waited
        # for (the change may be waiting for one of the timers locked above).
        instances = {
            instance.pk: instance
            for instance in WorkflowInstance.objects.using(using)
            .select_for_update(skip_locked=True, of=("self",))
            .select_related("workflow", "definition_version")
            .defer("definition_version__document")
            .filter(pk__in={timer.instance_id for timer in timers})
        }
        fired, failed, stale = [], [], []
        for timer in timers:
            instance = instances.get(timer.instance_id)
            if instance is None:  # being changed right now: the next sweep sees what it did
                continue
            if instance.current_step_id != timer.step_id or instance.state != InstanceState.ACTIVE:
                # the change that left the step disarms in its own transaction; a timer still
                # here (an instance held by the same batch's deadline …) is never applied
                stale.append(timer.pk)
                continue
            if not alone:
                _fire(timer, instance, using, services, writes)
                fired.append(timer.pk)
            elif _fired_alone(timer, instance, using, services, writes):
                fired.append(timer.pk)
            else:
                failed.append(timer.pk)
        timers_of = WorkflowTimer.objects.using(using)
        timers_of.filter(pk__in=fired).update(fired_at=timezone.now())  # with their effects
        # used up too: a timer whose firing fails every time must not stop the others forever
        timers_of.filter(pk__in=failed).update(fired_at=timezone.now(), detail=_BROKEN)
        timers_of.filter(pk__in=stale).delete()
    return len(fired) + len(failed) + len(stale)


#: The ``detail`` of a timer (and of its ``DEADLINE_ERROR`` note) whose firing failed
#: unexpectedly (a bug, a database error): the traceback is in the worker's log.
_BROKEN = {"reason": "INTERNAL_ERROR"}


def _fired_alone(
    timer: WorkflowTimer, instance: WorkflowInstance, using: str, services: Any, writes: Any
) -> bool:
    """Fire ``timer`` in its own savepoint: an unexpected error undoes its effect only, is
    logged, and recorded on the instance as a ``DEADLINE_ERROR`` when that can be written;
    the batch goes on. ``False`` when it failed."""
    try:
        with transaction.atomic(using=using):
            _fire(timer, instance, using, services, writes)
        return True
    except Exception:
        logger.exception(
            "Timer %s of workflow instance %s could not fire; it is used up.",
            timer.pk,
            instance.pk,
        )
    try:
        with transaction.atomic(using=using):
            instance.refresh_from_db()  # as committed: the failed attempt may have changed it
            _failed(instance, _BROKEN, writes)
    except Exception:
        logger.exception("Its DEADLINE_ERROR could not be recorded either.")
    return False


def seconds_to_wait(poll: float, *, using: str | None = None) -> float:
    """How long a worker that has caught up sleeps: until the next timer falls due, at most
    ``poll`` seconds (which bounds how late a timer armed meanwhile fires), and at least 20 ms
    (timers falling due close together are fired together). One indexed query."""
    using = using or router.db_for_read(WorkflowTimer)
    now = timezone.now()
    next_due = (  # within the poll only: a later row is never read (nor one out of range)
        WorkflowTimer.objects.using(using)
        .filter(fired_at__isnull=True, due_at__lte=shifted(now, dt.timedelta(seconds=poll)))
        .order_by("due_at")
        .values_list("due_at", flat=True)
        .first()
    )
    if next_due is None:
        return poll
    return min(poll, max(0.02, (next_due - now).total_seconds()))


def run_once(*, limit: int = 200, using: str | None = None) -> int:
    """Fire everything due now, batch after batch; returns how many timers were handled."""
    total = 0
    while True:
        handled = fire_due(limit=limit, using=using)
        total += handled
        if handled == 0:
            return total


def _fire(
    timer: WorkflowTimer, instance: WorkflowInstance, using: str, services: Any, writes: Any
) -> None:
    """The effect of ``timer`` on ``instance`` (locked, on the timer's step, active)."""
    spec = compiled.for_instance(instance).steps[instance.current_step_id].deadline or {}
    if timer.kind == Kind.ERROR:
        _failed(instance, timer.detail, writes)
    elif timer.kind == Kind.REMINDER:
        due = shifted(timer.due_at, parse_duration(spec.get("remind_before") or "PT0S"))
        due = dt.datetime.fromisoformat(timer.detail["dueAt"]) if timer.detail else due
        writes.note(instance, EventKind.REMINDER, detail={"dueAt": due.isoformat()})
    elif not spec.get("status"):
        writes.note(instance, EventKind.DEADLINE_PASSED, detail={"dueAt": timer.due_at.isoformat()})
    else:
        reason = {"reason": "DEADLINE", "dueAt": timer.due_at.isoformat()}
        if _looping(timer, instance, using):
            _failed(instance, {"reason": "DEADLINE_LOOP", "status": spec["status"]}, writes)
            return
        try:
            with transaction.atomic(using=using), writes.system_detail(reason):
                services.update_workflow_step_status(
                    instance, spec["status"], expected_version=instance.version
                )
        except WorkflowError as exc:
            _failed(instance, {"reason": str(exc.code.value), "status": spec["status"]}, writes)


def _looping(timer: WorkflowTimer, instance: WorkflowInstance, using: str) -> bool:
    """Whether deadlines set a status of ``instance`` :data:`LOOP_CHANGES` times within the
    last :data:`LOOP_WINDOW`. A loop re-arms its timers with every move: a timer armed before
    the window (every deadline of minutes or days) is none, and costs no query; a younger one
    costs one indexed query."""
    since = timezone.now() - LOOP_WINDOW
    if timer.created_at < since:
        return False
    recent = (  # the newest events only (notes may come between): a bounded index scan
        WorkflowEvent.objects.using(using)
        .filter(instance_id=instance.pk)
        .order_by("-sequence")
        .values_list("created_at", "actor_id", "detail")[: 3 * LOOP_CHANGES]
    )
    made = sum(
        1
        for created_at, actor, detail in recent
        if created_at >= since
        and actor is None
        and isinstance(detail, dict)
        and detail.get("reason") == "DEADLINE"
    )
    return made >= LOOP_CHANGES


def _failed(instance: WorkflowInstance, detail: dict, writes: Any) -> None:
    """A deadline that could not do its work: a ``DEADLINE_ERROR`` note on the instance, and a
    warning for whoever runs the worker (the timer is used up: nothing retries it)."""
    writes.note(instance, EventKind.DEADLINE_ERROR, detail=detail)
    logger.warning(
        "Deadline of workflow instance %s (step %s) failed: %s; recorded as DEADLINE_ERROR.",
        instance.pk,
        instance.current_step_id,
        ", ".join(f"{key} {value}" for key, value in detail.items()),
    )


# --------------------------------------------------------------------------- reading


def due_at_expression(instance: str = "pk") -> Subquery:
    """An instance's running deadline (null without one, or while on hold), to annotate onto
    instance rows (``instance``: the field naming the instance on other rows, e.g. a work
    item's ``instance_id``)."""
    return Subquery(
        WorkflowTimer.objects.filter(
            instance_id=OuterRef(instance), kind=Kind.DEADLINE, due_at__isnull=False
        )
        .order_by("due_at")
        .values("due_at")[:1]
    )


def instances_due_before(when: dt.datetime) -> QuerySet:
    """The ids of instances whose deadline is at or before ``when`` (passed or not)."""
    return WorkflowTimer.objects.filter(kind=Kind.DEADLINE, due_at__lte=when).values("instance_id")


def overdue_instances(now: dt.datetime | None = None) -> QuerySet:
    """The ids of instances whose deadline has passed (they are still on its step)."""
    return instances_due_before(now or timezone.now())


def is_overdue(due_at: dt.datetime | None, now: dt.datetime | None = None) -> bool:
    return due_at is not None and due_at <= (now or timezone.now())
