"""``instanceCounts`` of workflows and steps: the per-state instance counts the viewer may see,
annotated onto the query that loads the rows (the type and the helpers that count)."""

from __future__ import annotations

from typing import Any, TypeVar

import strawberry
import strawberry_django
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from strawberry.types import Info
from strawberry.types.nodes import SelectedField

from django_steps import authorization, deadlines, models
from django_steps.choices import InstanceState
from graphql_api.security import permissions

T = TypeVar("T", bound=type)

# -- Dashboard aggregates ----------------------------------------------------------------------
# ``instanceCounts`` on a workflow and on a step: one correlated COUNT per state, added to the
# query that loads the workflows (or their steps) through the optimizer's ``annotate`` hint, so a
# dashboard header costs the same SQL whatever the number of workflows, steps or instances (the
# index ``django_steps_inst_wf_state`` serves the workflow counts). The counts cover the instances
# the viewer may see: the visibility rule filters them inside the subquery. Loaded any other way
# (a mutation payload), a workflow or step counts with one grouped query.

#: One count per state of the domain, named after it (``on_hold`` …).
_STATES = {state.name.lower(): state for state in InstanceState}

#: What a state's count covers beyond the plain state, where it differs on a step.
_STATE_NOTES = {
    InstanceState.COMPLETED: " (on a step: completed on it, a final step)",
    InstanceState.CANCELLED: " (on a step: cancelled while on it)",
}


def visible_rows(info: Info, **lookups: Any) -> QuerySet:
    rows = models.WorkflowInstance.objects.filter(**lookups).order_by()
    return authorization.visible_instances(permissions.current_user(info), rows)


def count_annotations(outer: str, prefix: str) -> dict[str, Any]:
    """``{annotation: callable(info) -> expression}``: the visible instances per state whose
    ``outer`` (``workflow`` or ``current_step``) is the annotated row."""

    def count(state: str):
        def expression(info: Info) -> Coalesce:
            rows = visible_rows(info, **{outer: OuterRef("pk"), "state": state})
            counted = rows.values(outer).annotate(n=Count("pk")).values("n")
            return Coalesce(Subquery(counted, output_field=IntegerField()), 0)

        return expression

    def overdue(info: Info) -> Coalesce | Value:
        if not _asks_for(info, "overdue"):  # the one count that reads another table
            return Value(0, output_field=IntegerField())
        rows = visible_rows(
            info, **{outer: OuterRef("pk"), "pk__in": deadlines.overdue_instances()}
        )
        counted = rows.values(outer).annotate(n=Count("pk")).values("n")
        return Coalesce(Subquery(counted, output_field=IntegerField()), 0)

    return {
        **{f"{prefix}{name}": count(state) for name, state in _STATES.items()},
        f"{prefix}overdue": overdue,
    }


def _asks_for(info: Info, name: str) -> bool:
    """Whether the operation selects ``name`` under the field being resolved."""

    def names(selections: list) -> set[str]:
        found = set()
        for selection in selections:
            if isinstance(selection, SelectedField):
                found.add(selection.name)
            else:  # a fragment spread or inline fragment
                found |= names(selection.selections)
        return found

    return any(name in names(field.selections) for field in info.selected_fields)


def counts(root: Any, info: Info, outer: str, prefix: str) -> WorkflowInstanceCountsType:
    names = [f"{prefix}{name}" for name in (*_STATES, "overdue")]
    if all(hasattr(root, name) for name in names):
        found = {name: getattr(root, f"{prefix}{name}") for name in _STATES}
        overdue = getattr(root, f"{prefix}overdue")
    else:  # not loaded through the optimizer: one grouped query
        late = Q(pk__in=deadlines.overdue_instances())
        grouped = (
            visible_rows(info, **{outer: root.pk})
            .values_list("state")
            .annotate(n=Count("pk"), late=Count("pk", filter=late))
            .values_list("state", "n", "late")
        )
        per_state = {state: (n, n_late) for state, n, n_late in grouped}
        found = {name: per_state.get(state, (0, 0))[0] for name, state in _STATES.items()}
        overdue = sum(n_late for _n, n_late in per_state.values())
    return WorkflowInstanceCountsType(total=sum(found.values()), overdue=overdue, **found)


def _state_counts(cls: T) -> T:
    """Class decorator (under ``strawberry.type``): one count field per state of :data:`_STATES`,
    in the domain's order, after ``total``; a state added to the domain is counted and shown."""
    annotations = {}
    for name, annotation in cls.__annotations__.items():
        annotations[name] = annotation
        if name == "total":
            for field_name, state in _STATES.items():
                note = _STATE_NOTES.get(state, "")
                setattr(cls, field_name, strawberry.field(description=f"State `{state}`{note}."))
                annotations[field_name] = "int"
    cls.__annotations__ = annotations
    return cls


WORKFLOW_COUNTS = "_steps_wf_count_"
STEP_COUNTS = "_steps_step_count_"
STATUS_COUNTS = "_steps_status_count_"


@strawberry.type(
    name="WorkflowInstanceCounts",
    description=(
        "How many instances the viewer may see, by state (for a workflow: all its instances; for a "
        "step: those whose current step it is; for a status: those whose current status it is). "
        "Counted in the query that loads the workflows, steps or statuses."
    ),
)
@_state_counts
class WorkflowInstanceCountsType:
    total: int = strawberry.field(description="All of them (the sum of the per-state counts).")
    overdue: int = strawberry.field(
        description="Those whose current step's deadline has passed (counted in `total` with "
        "their state)."
    )


def instance_counts_field(outer: str, prefix: str, *, description: str) -> Any:
    """The ``instanceCounts`` field of the type whose rows ``outer`` (``workflow`` or
    ``current_step``) of an instance points to: annotated onto the query that loads the rows."""

    def instance_counts(root: strawberry.Parent[Any], info: Info) -> WorkflowInstanceCountsType:
        return counts(root, info, outer, prefix)

    return strawberry_django.field(
        resolver=instance_counts,
        annotate=count_annotations(outer, prefix),
        description=description,
    )


#: ``WorkflowStepStatus.instanceCounts``.
STATUS_INSTANCE_COUNTS = instance_counts_field(
    "current_step_status",
    STATUS_COUNTS,
    description="Instances whose current status it is, by state, that the viewer may see (the "
    "custom status counts of a dashboard: no paging, counted in the query that loads the "
    "statuses; list them with the `currentStatusId` filter).",
)
