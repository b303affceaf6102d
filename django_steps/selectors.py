"""Read helpers shared by the admin, the GraphQL layer and the subscription replay."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import WorkflowEvent, WorkflowInstance
from .services import get_workflow_instance_for_object

__all__ = ["get_workflow_instance_for_object", "history", "events_after"]


def history(instance: WorkflowInstance) -> QuerySet[WorkflowEvent]:
    """An instance's events, oldest first."""
    return instance.events.order_by("sequence")


def events_after(
    position: int,
    *,
    instance_id: int | None = None,
    workflow_id: int | None = None,
    until: int | None = None,
    limit: int | None = None,
) -> QuerySet[WorkflowEvent]:
    """Committed events of a stream (one instance, one workflow, or all) after ``position``, in
    commit order. ``position`` is the global cursor, see :class:`WorkflowEvent`."""
    qs = WorkflowEvent.objects.filter(position__gt=position)
    if instance_id is not None:
        qs = qs.filter(instance_id=instance_id)
    if workflow_id is not None:
        qs = qs.filter(workflow_id=workflow_id)
    if until is not None:
        qs = qs.filter(position__lte=until)
    qs = qs.order_by("position")
    return qs[:limit] if limit else qs
