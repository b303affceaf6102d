"""Read helpers shared by the admin, the GraphQL layer and the subscription replay."""

from __future__ import annotations

from django.db.models import QuerySet

from . import history as order
from .models import WorkflowEvent, WorkflowInstance
from .services import get_workflow_instance_for_object

__all__ = ["get_workflow_instance_for_object", "history", "events_after", "newest_cursor"]


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


def newest_cursor(*, instance_id: int | None = None, workflow_id: int | None = None) -> int:
    """The cursor of the newest final event of a stream (0 when it has none)."""
    qs = WorkflowEvent.objects.all()
    if instance_id is not None:
        qs = qs.filter(instance_id=instance_id)
    if workflow_id is not None:
        qs = qs.filter(workflow_id=workflow_id)
    return order.newest(qs)
