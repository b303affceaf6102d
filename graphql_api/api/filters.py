"""Filters and ordering of the top-level connections."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

import strawberry
import strawberry_django
from django.db.models import Q
from strawberry.types import Info

from django_steps import deadlines, models
from django_steps.choices import FINISHED_STATES
from graphql_api.api.enums import WorkflowInstanceState
from graphql_api.api.ids import parse_global_id
from graphql_api.security.errors import ApiError, query_error

# strawberry-django adds AND / OR / NOT / DISTINCT to every filter type; each of ours declares
# them with these fields instead, to say what they do (and that DISTINCT does nothing).


def all_of() -> Any:
    return strawberry_django.filter_field(
        description="These conditions too: an item must also match this filter (e.g. to give "
        "one condition twice)."
    )


def any_of() -> Any:
    return strawberry_django.filter_field(
        description="Or this filter: an item matches if it matches every other condition given "
        "beside `OR`, or this filter. `{a, OR: {b}}` is a or b; `{a, b, OR: {c}}` is (a and b) "
        "or c."
    )


def none_of() -> Any:
    return strawberry_django.filter_field(
        description="Not this filter: an item that matches all of its conditions is left out "
        "(`{a, NOT: {b}}` is a and not b)."
    )


def distinct() -> Any:
    """Accepted as before (a client may send it) but ignored: no filter of ours can give a row
    twice, so DISTINCT never changed a result; it only made the database de-duplicate the whole
    filtered set before a page could be cut from it."""
    return strawberry_django.filter_field(
        description="Ignored: no filter here can match an item twice, so a list never repeats "
        "an item.",
        deprecation_reason="No effect: lists never repeat an item. Leave it out.",
        skip_queryset_filter=True,
    )


def text_filter(lookup: str, *, description: str) -> Any:
    """A filter on one text column, by a lookup (``workflow__name``, ``name__icontains``) under
    the filter's prefix (a nested filter's relation)."""

    def matches(self: Any, value: str, prefix: str) -> Q:
        return Q(**{f"{prefix}{lookup}": value})

    return strawberry_django.filter_field(resolver=matches, description=description)


@strawberry_django.filter_type(
    models.Workflow, name="WorkflowFilter", description="Filters for `workflows`."
)
class WorkflowFilter:
    name: Optional[str] = strawberry_django.filter_field(description="Exact workflow name.")
    AND: Optional[WorkflowFilter] = all_of()
    OR: Optional[WorkflowFilter] = any_of()
    NOT: Optional[WorkflowFilter] = none_of()
    DISTINCT: Optional[bool] = distinct()

    name_contains = text_filter(
        "name__icontains", description="Workflow name contains this text (case-insensitive)."
    )


@strawberry_django.filter_type(
    models.WorkflowInstance,
    name="WorkflowInstanceFilter",
    description="Filters for `workflowInstances`.",
)
class WorkflowInstanceFilter:
    state: Optional[WorkflowInstanceState] = strawberry_django.filter_field(
        description="Lifecycle state."
    )
    object_id: Optional[strawberry.ID] = strawberry_django.filter_field(
        description="Primary key of the attached object (use with `contentType`)."
    )
    AND: Optional[WorkflowInstanceFilter] = all_of()
    OR: Optional[WorkflowInstanceFilter] = any_of()
    NOT: Optional[WorkflowInstanceFilter] = none_of()
    DISTINCT: Optional[bool] = distinct()

    workflow_name = text_filter("workflow__name", description="Exact name of the workflow.")
    current_step_name = text_filter(
        "current_step__name", description="Exact name of the current step."
    )

    @strawberry_django.filter_field(
        description='Model of the attached object as "app_label.model" (e.g. "claims.claim"). '
        "An unknown or malformed value matches nothing."
    )
    def content_type(self, value: str, prefix: str) -> Q:
        app_label, _, model = value.partition(".")
        if not app_label or not model:
            return Q(pk__in=[])
        return Q(
            **{
                f"{prefix}content_type__app_label": app_label,
                f"{prefix}content_type__model": model.lower(),
            }
        )

    @strawberry_django.filter_field(description="Started at or after this time.")
    def started_after(self, value: datetime, prefix: str) -> Q:
        return Q(**{f"{prefix}started_at__gte": value})

    @strawberry_django.filter_field(description="Started at or before this time.")
    def started_before(self, value: datetime, prefix: str) -> Q:
        return Q(**{f"{prefix}started_at__lte": value})

    @strawberry_django.filter_field(
        description="true: the deadline of its current step has passed; false: it has not, or "
        "there is none."
    )
    def overdue(self, value: bool, prefix: str) -> Q:
        overdue = Q(**{f"{prefix}pk__in": deadlines.overdue_instances()})
        return overdue if value else ~overdue

    @strawberry_django.filter_field(
        description="The deadline of its current step is at or before this time (passed or not)."
    )
    def due_before(self, value: datetime, prefix: str) -> Q:
        return Q(**{f"{prefix}pk__in": deadlines.instances_due_before(value)})

    @strawberry_django.filter_field(
        description="In one of these states (e.g. `[ACTIVE, ON_HOLD]`; an empty list matches "
        "nothing)."
    )
    def states(self, value: list[WorkflowInstanceState], prefix: str) -> Q:
        return Q(**{f"{prefix}state__in": [state.value for state in value]})

    @strawberry_django.filter_field(
        description="True: completed or cancelled; false: active or on hold."
    )
    def is_finished(self, value: bool, prefix: str) -> Q:
        finished = Q(**{f"{prefix}state__in": sorted(FINISHED_STATES)})
        return finished if value else ~finished

    @strawberry_django.filter_field(
        description="Changed at or after this time (`updatedAt`): with the newest `updatedAt` "
        "a client holds, what changed since."
    )
    def updated_after(self, value: datetime, prefix: str) -> Q:
        return Q(**{f"{prefix}updated_at__gte": value})

    @strawberry_django.filter_field(description="Global ID of the `Workflow` it runs.")
    def workflow_id(self, info: Info, value: strawberry.ID, prefix: str) -> Q:
        return Q(**{f"{prefix}workflow_id": workflow_pk(value, info)})

    @strawberry_django.filter_field(
        description="Global ID of its current `WorkflowStepStatus` (the instances a "
        "`WorkflowStepStatus.instanceCounts` counts)."
    )
    def current_status_id(self, info: Info, value: strawberry.ID, prefix: str) -> Q:
        pk = _pk(value, "WorkflowStepStatus", "currentStatusId", info)
        return Q(**{f"{prefix}current_step_status_id": pk})


def workflow_pk(value: str, info: Info) -> int:
    """The key of the workflow a ``workflowId`` filter names."""
    return _pk(value, "Workflow", "workflowId", info)


def _pk(value: str, type_name: str, name: str, info: Info) -> int:
    """The key in a global ID given as a filter: INVALID_ID / NOT_FOUND naming the filter."""
    try:
        return parse_global_id(value, type_name, field=f"filters.{name}", info=info)
    except ApiError as error:
        raise query_error(error.code, error.message, field=error.field) from None


@strawberry_django.order_type(
    models.WorkflowInstance,
    name="WorkflowInstanceOrder",
    description="Ordering of `workflowInstances`; give one field per list item. Default: newest "
    "first.",
)
class WorkflowInstanceOrder:
    started_at: strawberry.auto = strawberry_django.order_field(description="When it was started.")
    updated_at: strawberry.auto = strawberry_django.order_field(description="When it last changed.")
    completed_at: strawberry.auto = strawberry_django.order_field(description="When it finished.")
    version: strawberry.auto = strawberry_django.order_field(description="Its version.")
    state: strawberry.auto = strawberry_django.order_field(description="Its state.")


@strawberry_django.order_type(
    models.Workflow, name="WorkflowOrder", description="Ordering of `workflows`."
)
class WorkflowOrder:
    name: strawberry.auto = strawberry_django.order_field(description="Workflow name.")
    created_at: strawberry.auto = strawberry_django.order_field(description="When it was created.")
