"""The fields other types carry about people: who acts on a step (``WorkflowStep.assignees``)
and the viewer's inbox (``User.inbox``). Declared here, apart from :mod:`graphql_api.api.types`
and :mod:`graphql_api.api.inbox` (which builds on those types), so both can use them without an
import cycle: the inbox's node type is named lazily."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Optional

import strawberry
import strawberry_django
from django.db.models import QuerySet
from strawberry.types import Info

from django_steps import models
from graphql_api.api.connections import NESTED_PAGE, Connection, connection
from graphql_api.security.extensions import graphql_setting

if TYPE_CHECKING:
    from graphql_api.api.inbox import WorkItemType

__all__ = ["WorkflowStepAssigneesType", "step_assignees", "user_inbox"]


@strawberry.type(
    name="WorkflowStepAssignees",
    description="Who acts on a step: its candidates are the members of `groups` and the users "
    "`expression` gives, computed when an instance enters the step.",
)
class WorkflowStepAssigneesType:
    groups: list[str] = strawberry.field(description="Names of the candidate groups.")
    expression: str = strawberry.field(
        description="CEL over the attached object giving users (ids or usernames), e.g. "
        '"claim.owner"; empty: none.'
    )


@strawberry_django.field(only=["assignees"], description="Who acts on it (null: anyone).")
def step_assignees(
    root: strawberry.Parent[models.WorkflowStep],
) -> Optional[WorkflowStepAssigneesType]:
    value = root.assignees or None
    if value is None:
        return None
    return WorkflowStepAssigneesType(
        groups=list(value.get("groups") or []), expression=value.get("expression") or ""
    )


@connection(
    Connection[Annotated["WorkItemType", strawberry.lazy("graphql_api.api.inbox")]],
    description="The viewer's open work items — claimed by them, or waiting with them or one of "
    "their groups among the candidates — newest first. Empty for any other user. " + NESTED_PAGE,
    max_results=int(graphql_setting("MAX_PAGE_SIZE")),
)
def user_inbox(root: strawberry.Parent[Any], info: Info) -> QuerySet:
    from graphql_api.api.inbox import inbox_of  # inbox.py builds on the types using this field

    return inbox_of(root, info)
