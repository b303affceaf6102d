"""The reads: an object's instance, the dry run of its transitions, history and its cursors —
shared by the admin, the GraphQL layer and the subscription replay. Changes are
:mod:`django_steps.services`' (which re-exports the first two under their original names)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db.models import Model, Q, QuerySet

from . import authorization
from . import history as order
from .conf import steps_setting
from .context import Context
from .evaluation import definition_of, evaluate, missing
from .exceptions import ConditionError
from .models import (
    WorkflowEvent,
    WorkflowInstance,
    WorkflowTransition,
    WorkItem,
    WorkItemCandidate,
)

__all__ = [
    "get_workflow_instance_for_object",
    "evaluate_transitions",
    "TransitionEvaluation",
    "TransitionDryRun",
    "history",
    "events_after",
    "newest_cursor",
    "subject_label",
    "inbox",
    "work_items_touching",
    "EVENT_RELATIONS",
]

#: The relations an event is shown with, in the order its pages list them (the positions it
#: moved between, the status asked for, the transition taken, who acted):
#: ``select_related(*EVENT_RELATIONS)`` reads them with the event.
EVENT_RELATIONS = (
    "from_step",
    "from_status",
    "to_step",
    "to_status",
    "requested_status",
    "transition",
    "actor",
)


def history(instance: WorkflowInstance) -> QuerySet[WorkflowEvent]:
    """An instance's events, oldest first."""
    return instance.events.order_by("sequence")


def events_after(
    cursor: int,
    *,
    instance_id: int | None = None,
    workflow_id: int | None = None,
    until: int | None = None,
    limit: int | None = None,
) -> QuerySet[WorkflowEvent]:
    """Final events of a stream (one instance, one workflow, or all) after ``cursor``, in commit
    order: those no running transaction can add anything before (see
    :mod:`django_steps.history`). ``cursor`` is :attr:`WorkflowEvent.cursor` (0: from the start)."""
    qs = WorkflowEvent.objects.all()
    if instance_id is not None:
        qs = qs.filter(instance_id=instance_id)
    if workflow_id is not None:
        qs = qs.filter(workflow_id=workflow_id)
    qs = order.visible(order.after(qs, cursor))
    if until is not None:
        qs = order.up_to(qs, until)
    qs = qs.order_by("txid", "position")
    return qs[:limit] if limit else qs


def newest_cursor(
    *, instance_id: int | None = None, workflow_id: int | None = None, user: Any = None
) -> int:
    """The cursor of the newest final event of a stream (0 when it has none); with ``user``,
    of the newest one that user may see."""
    qs = WorkflowEvent.objects.all()
    if instance_id is not None:
        qs = qs.filter(instance_id=instance_id)
    if workflow_id is not None:
        qs = qs.filter(workflow_id=workflow_id)
    if user is not None:
        qs = authorization.visible_events(user, qs)
    return order.newest(qs)


def get_workflow_instance_for_object(
    content_object: Model, workflow_name: str | None = None, *, actor: Any = None
) -> WorkflowInstance | None:
    """The object's unfinished instance (of ``workflow_name`` if given), else its latest one,
    else ``None``; with ``actor``, among the instances the actor may see."""
    if content_object is None or getattr(content_object, "pk", None) is None:
        return None
    qs = WorkflowInstance.objects.for_object(content_object).select_related(
        "workflow", "current_step", "current_step_status"
    )
    if actor is not None:
        qs = authorization.visible_instances(actor, qs)
    if workflow_name is not None:
        qs = qs.filter(workflow__name=workflow_name)
    return (
        qs.unfinished().order_by("-started_at", "-id").first()
        or qs.order_by("-started_at", "-id").first()
    )


# --------------------------------------------------------------------------- dry run


@dataclass
class TransitionEvaluation:
    """One candidate transition of the current step, as a dry run saw it."""

    transition: WorkflowTransition
    priority: int
    condition: str
    result: bool | None
    error: str | None
    would_fire: bool


@dataclass
class TransitionDryRun:
    """What setting a completion status (or retrying) would do now, without changing anything."""

    instance: WorkflowInstance
    evaluations: list[TransitionEvaluation]
    fired: TransitionEvaluation | None
    error: str | None  # set when an earlier condition's error would abort the real update


def evaluate_transitions(
    workflow_instance: WorkflowInstance,
    context_data: Mapping[str, Any] | None = None,
    *,
    actor: Any = None,
) -> TransitionDryRun:
    """Evaluate every outgoing transition of the current step, highest priority first, and say
    which one a completion status would fire, reading what the change would read (the object's
    fields from the database, ``context_data`` under ``input``). Changes nothing. With
    ``actor``: ``InstanceNotFound`` for an instance the actor may not see."""
    instance = (
        WorkflowInstance.objects.select_related("workflow", "definition_version")
        .defer("definition_version__document")
        .filter(pk=workflow_instance.pk)
        .first()
    )
    if instance is None or (
        actor is not None and not authorization.may_see_instance(actor, instance)
    ):
        raise missing(workflow_instance.pk)
    definition, step = definition_of(instance)
    context = Context(instance, context_data)
    models = WorkflowTransition.objects.in_bulk([t.id for t in step.transitions])
    evaluations: list[TransitionEvaluation] = []
    fired: TransitionEvaluation | None = None
    first_error: str | None = None
    for t in step.transitions:
        result: bool | None
        error: str | None = None
        try:
            result = evaluate(definition, t, context)
        except ConditionError as exc:
            result, error = None, exc.message
        evaluation = TransitionEvaluation(
            models[t.id], t.priority, t.condition, result, error, False
        )
        if fired is None and first_error is None:
            if error is not None:
                first_error = error
            elif result:
                evaluation.would_fire = True
                fired = evaluation
        evaluations.append(evaluation)
    return TransitionDryRun(instance, evaluations, fired, first_error)


def subject_label(obj: Model) -> str:
    """The label of an instance's attached object (``DJANGO_STEPS["SUBJECT_LABEL"]``, default
    ``str(obj)``). Show it only to who may view the object
    (:func:`authorization.may_view_object`)."""
    hook = steps_setting("SUBJECT_LABEL")
    if hook is None:
        return str(obj)
    return str(authorization.resolve_callable(hook)(obj))


def _candidate_of(user: Any) -> QuerySet[WorkItemCandidate]:
    groups = sorted(authorization.groups_of(user))
    who = Q(user_id=user.pk) | Q(group__in=groups) if groups else Q(user_id=user.pk)
    return WorkItemCandidate.objects.filter(who)


def inbox(user: Any, queryset: QuerySet[WorkItem] | None = None) -> QuerySet[WorkItem]:
    """The open work items waiting for ``user``: claimed by them, or unclaimed with them or one
    of their groups among the candidates — on instances they may see (the visibility rule)."""
    queryset = WorkItem.objects.all() if queryset is None else queryset
    if not authorization.may_read_instances(user):
        return queryset.none()
    # Driven by the user's own rows (the candidate index, their claims), not by every open item:
    # a page costs what their open items cost, whatever the table holds.
    waiting = _candidate_of(user).values("item_id")  # no join here: an index range
    claimed = WorkItem.objects.filter(claimed_by_id=user.pk, closed_at__isnull=True).values("pk")
    items = queryset.filter(
        Q(claimed_by__isnull=True) | Q(claimed_by_id=user.pk),
        pk__in=waiting.union(claimed),
        closed_at__isnull=True,
    )
    return authorization.visible_work_items(user, items)


def work_items_touching(user: Any) -> QuerySet[WorkItem]:
    """Every work item, open or closed, ``user`` is concerned by — a candidate (in person or by
    a group) or its claimant (for the inbox stream; the visibility rule is the caller's)."""
    return WorkItem.objects.filter(
        Q(claimed_by_id=user.pk) | Q(pk__in=_candidate_of(user).values("item_id"))
    )
