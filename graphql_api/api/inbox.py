"""The inbox: work items (who must act on an assigned step) as GraphQL types, ``me.inbox``, and
the resolvers of ``claimWorkItem``, ``releaseWorkItem`` and ``delegateWorkItem`` (declared on the
Mutation type in :mod:`graphql_api.api.mutations`). The rules are :mod:`django_steps`'
(``authorization``, ``selectors.inbox``, ``services``); this module resolves IDs and shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Optional

import strawberry
import strawberry_django
from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet
from strawberry.types import Info

from django_steps import authorization, deadlines, models, selectors, services
from graphql_api.api import filters
from graphql_api.api.ids import get_by_global_id, parse_global_id
from graphql_api.api.types import ModelNode, UserType, WorkflowInstanceType, WorkflowStepType
from graphql_api.security import permissions
from graphql_api.security.permissions import current_user

__all__ = [
    "CLAIM",
    "DELEGATE",
    "RELEASE",
    "WorkItemFilter",
    "WorkItemType",
    "claim_work_item",
    "delegate_work_item",
    "inbox_of",
    "release_work_item",
]


#: The annotation carrying an open item's running deadline.
DUE = "_steps_item_due"


@strawberry_django.filter_type(
    models.WorkItem, name="WorkItemFilter", description="Filters for `me.inbox`."
)
class WorkItemFilter:
    AND: Optional[WorkItemFilter] = filters.all_of()
    OR: Optional[WorkItemFilter] = filters.any_of()
    NOT: Optional[WorkItemFilter] = filters.none_of()
    DISTINCT: Optional[bool] = filters.distinct()

    workflow_name = filters.text_filter(
        "instance__workflow__name", description="Exact name of the instance's workflow."
    )

    @strawberry_django.filter_field(description="Global ID of the instance's `Workflow`.")
    def workflow_id(self, info: Info, value: strawberry.ID, prefix: str) -> Q:
        return Q(**{f"{prefix}instance__workflow_id": filters.workflow_pk(value, info)})

    step_name = filters.text_filter("step__name", description="Exact name of the step.")

    @strawberry_django.filter_field(
        description="true: the items the viewer claimed (or was handed); false: those waiting "
        "for a candidate to claim them."
    )
    def claimed(self, value: bool, prefix: str) -> Q:
        return Q(**{f"{prefix}claimed_by__isnull": not value})


@strawberry_django.type(
    models.WorkItem,
    name="WorkItem",
    description="The work of one assigned step for one instance: opened when the instance enters "
    "the step, closed when it leaves it. Only its candidates — or, once claimed, `claimedBy` — "
    "may move the instance meanwhile.",
    filters=WorkItemFilter,
)
class WorkItemType(ModelNode):
    instance: WorkflowInstanceType = strawberry_django.field(description="The instance to act on.")
    step: WorkflowStepType = strawberry_django.field(description="The assigned step.")
    candidate_users: list[UserType] = strawberry_django.field(
        description="Users named by the step's `expression` when the item opened."
    )
    candidate_groups: list[str] = strawberry_django.field(
        description="Names of the groups whose members are candidates."
    )
    claimed_by: Optional[UserType] = strawberry_django.field(
        description="Who claimed it (or was handed it); null: waiting for a candidate."
    )
    opened_at: datetime = strawberry_django.field(description="When the instance entered the step.")
    closed_at: Optional[datetime] = strawberry_django.field(
        description="When the instance left the step (null while open)."
    )

    @strawberry_django.field(
        annotate={DUE: lambda info: deadlines.due_at_expression("instance_id")},
        only=["closed_at", "due_at", "instance_id"],
        description="When the step is due, if it has a deadline (its running deadline while the "
        "item is open; null while the instance is on hold).",
    )
    def due_at(self, root: strawberry.Parent[models.WorkItem]) -> Optional[datetime]:
        if root.closed_at is not None or root.due_at is not None:
            return root.due_at
        if hasattr(root, DUE):
            return getattr(root, DUE)
        item = models.WorkItem.objects.filter(pk=root.pk)  # not annotated (an inbox message)
        return item.values_list(deadlines.due_at_expression("instance_id"), flat=True).first()

    @classmethod
    def get_queryset(cls, queryset: QuerySet, info: Info, **kwargs: Any) -> QuerySet:
        if not queryset.query.order_by:
            queryset = queryset.order_by("-pk")  # newest first
        return authorization.visible_work_items(current_user(info), queryset)


def inbox_of(user_row: Any, info: Info) -> QuerySet:
    """``User.inbox``: the viewer's open work items; nothing for any other user."""
    viewer = current_user(info)
    if viewer is None or not getattr(viewer, "is_authenticated", False) or viewer.pk != user_row.pk:
        return models.WorkItem.objects.none()
    return selectors.inbox(viewer).order_by("-pk")


# --------------------------------------------------------------------------- mutations


@strawberry.input(name="ClaimWorkItemInput", description="Take an open work item.")
class ClaimWorkItemInput:
    work_item_id: strawberry.ID = strawberry.field(description="Global ID of the work item.")


@strawberry.input(name="ReleaseWorkItemInput", description="Give a claimed work item back.")
class ReleaseWorkItemInput:
    work_item_id: strawberry.ID = strawberry.field(description="Global ID of the work item.")


@strawberry.input(name="DelegateWorkItemInput", description="Hand a work item to another user.")
class DelegateWorkItemInput:
    work_item_id: strawberry.ID = strawberry.field(description="Global ID of the work item.")
    user_id: strawberry.ID = strawberry.field(
        description="Global ID of the `User` who gets it (they must be able to see and change "
        "the instance)."
    )


CLAIM = (
    "Claim an open work item: from now on only you act on its step (until you release it or hand "
    "it over). Needs `change_workflowinstance` and to be a candidate (or "
    "`django_steps.override_workitem`); ALREADY_CLAIMED when someone was first. Writes a CLAIMED "
    "event, which does not move the instance's `version`."
)
RELEASE = (
    "Release a work item you claimed: it goes back to its candidates. Writes a RELEASED event "
    "(the instance's `version` does not move); NOT_CLAIMED when nobody has it."
)
DELEGATE = (
    "Hand a work item to another user who may see and change the instance: it becomes theirs as "
    "if they had claimed it. Needs to be who may act on it now (its claimant, or a candidate "
    "while unclaimed) or `django_steps.override_workitem`. Writes a DELEGATED event (the "
    "instance's `version` does not move)."
)


_ITEM = strawberry.argument(description="The work item.")
_TO = strawberry.argument(description="The work item, and the user to hand it to.")


def _item(info: Info, raw: str) -> models.WorkItem:
    """The open item ``raw`` names, on an instance the viewer may see (else NOT_FOUND)."""
    items = authorization.visible_work_items(current_user(info), models.WorkItem.objects.all())
    return get_by_global_id(items, raw, "WorkItem", field="workItemId", info=info)


def _reloaded(item: models.WorkItem, info: Info) -> models.WorkItem:
    permissions.vouch(info, item.instance_id)
    return models.WorkItem.objects.select_related("instance", "step", "claimed_by").get(pk=item.pk)


def claim_work_item(
    self: Any, info: Info, input: Annotated[ClaimWorkItemInput, _ITEM]
) -> WorkItemType:
    item = _item(info, input.work_item_id)
    return _reloaded(services.claim_work_item(item, current_user(info)), info)


def release_work_item(
    self: Any, info: Info, input: Annotated[ReleaseWorkItemInput, _ITEM]
) -> WorkItemType:
    item = _item(info, input.work_item_id)
    return _reloaded(services.release_work_item(item, current_user(info)), info)


def delegate_work_item(
    self: Any, info: Info, input: Annotated[DelegateWorkItemInput, _TO]
) -> WorkItemType:
    item = _item(info, input.work_item_id)
    pk = parse_global_id(input.user_id, "User", field="userId", info=info)
    # None (no such active user): the service refuses it as a user who may not act, after the
    # caller's own right, so the answer tells nothing about accounts.
    to_user = get_user_model()._default_manager.filter(pk=pk, is_active=True).first()
    return _reloaded(services.delegate_work_item(item, to_user, current_user(info)), info)
