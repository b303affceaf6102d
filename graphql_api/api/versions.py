"""Published versions of a definition: the ``WorkflowVersion`` node and the typed difference
between two versions (``Workflow.diff``). The engine's rules are in :mod:`django_steps.versions`.

Versions are definition parts: they are read where their workflow is read (``Workflow.versions``,
``node`` with ``view_workflow``), like its steps.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, Optional

import strawberry
import strawberry_django
from django.db.models import QuerySet
from strawberry.scalars import JSON
from strawberry.types import Info
from strawberry.utils.str_converters import to_camel_case

from django_steps import models
from django_steps.definitions import strip_ids
from django_steps.diagram import version_to_mermaid
from django_steps.versions import Change, diff_versions
from graphql_api.api.types import MERMAID_COST, ModelNode, UserType, WorkflowType
from graphql_api.security.cost_bounds import WORK
from graphql_api.security.error_codes import TransportCode
from graphql_api.security.errors import query_error


@strawberry_django.type(
    models.WorkflowVersion,
    name="WorkflowVersion",
    description="One published version of a workflow definition: an immutable snapshot. Every "
    "committed change of a definition publishes the next number; instances run on the version "
    "they started on until migrated (`migrateWorkflowInstances`).",
)
class WorkflowVersionType(ModelNode):
    number: int = strawberry_django.field(description="1, 2, 3… per workflow.")
    content_hash: str = strawberry_django.field(
        description="SHA-256 of the version's content: equal hashes, equal definitions."
    )
    created_at: datetime = strawberry_django.field(description="When it was published.")
    created_by: Optional[UserType] = strawberry_django.field(
        description="Who published it (null: the system, a migration or an import without a user)."
    )
    workflow: WorkflowType = strawberry_django.field(description="The workflow it is a version of.")

    @strawberry_django.field(
        only=["document"],
        description="The whole definition as published: the document `createWorkflow` takes and "
        "`load_workflow` reads (snake_case keys, as in the definition files).",
    )
    def document(self, root: strawberry.Parent[models.WorkflowVersion]) -> JSON:
        return strip_ids(root.document)

    @strawberry_django.field(
        only=["document"],
        metadata={WORK: MERMAID_COST},
        description="This version as a Mermaid flowchart (steps as nodes, transitions as edges "
        "with their conditions).",
    )
    def mermaid(self, root: strawberry.Parent[models.WorkflowVersion]) -> str:
        return version_to_mermaid(root)

    @classmethod
    def get_queryset(cls, queryset: QuerySet, info: Info, **kwargs: Any) -> QuerySet:
        # Newest first. Numbers grow with the primary key (a workflow's versions are published
        # one after the other under its row lock), so the keyset is the primary key alone.
        if not queryset.query.order_by:
            queryset = queryset.order_by("-pk")
        return queryset


@strawberry.enum(name="WorkflowPart", description="A part of a workflow definition.")
class WorkflowPart(enum.Enum):
    WORKFLOW = strawberry.enum_value("workflow", description="The workflow itself (its fields).")
    CONTENT_TYPE = strawberry.enum_value(
        "content_type", description='A model it may be started on ("app_label.model").'
    )
    STEP = strawberry.enum_value("step", description="A step.")
    STATUS = strawberry.enum_value("status", description='A status, named "Step / Status".')
    TRANSITION = strawberry.enum_value("transition", description='A transition, named "From → To".')


@strawberry.enum(name="WorkflowChangeKind", description="How a part differs between two versions.")
class WorkflowChangeKind(enum.Enum):
    ADDED = strawberry.enum_value("added", description="Only in the newer version.")
    REMOVED = strawberry.enum_value("removed", description="Only in the older version.")
    CHANGED = strawberry.enum_value("changed", description="In both, with other field values.")


@strawberry.type(
    name="WorkflowChange",
    description="One difference between two versions (`Workflow.diff`). Steps and statuses are "
    "matched by name, transitions by their steps and priority, as updates match them.",
)
class WorkflowChangeType:
    part: WorkflowPart = strawberry.field(description="What kind of part changed.")
    change: WorkflowChangeKind = strawberry.field(description="Added, removed or changed.")
    name: str = strawberry.field(
        description='The part\'s name (a status: "Step / Status"; a transition: "From → To").'
    )
    fields: list[str] = strawberry.field(
        description="For CHANGED: the fields that differ, as named in the schema (e.g. "
        "`condition`, `isDefaultStatus`); empty otherwise."
    )
    before: Optional[JSON] = strawberry.field(
        description="For CHANGED: each of `fields` with its value in `fromVersion` (null "
        "otherwise)."
    )
    after: Optional[JSON] = strawberry.field(
        description="For CHANGED: each of `fields` with its value in `toVersion` (null otherwise)."
    )


def _change(change: Change) -> WorkflowChangeType:
    fields = {to_camel_case(name): values for name, values in change.changes.items()}
    return WorkflowChangeType(
        part=WorkflowPart(change.part),
        change=WorkflowChangeKind(change.action),
        name=change.name,
        fields=list(fields),
        before={name: old for name, (old, _new) in fields.items()} if fields else None,
        after={name: new for name, (_old, new) in fields.items()} if fields else None,
    )


def workflow_diff(
    workflow: models.Workflow, from_version: int, to_version: int
) -> list[WorkflowChangeType]:
    """``Workflow.diff``: an unknown number is ``BAD_USER_INPUT`` naming the argument."""
    numbers = {"fromVersion": from_version, "toVersion": to_version}
    versions = {
        v.number: v
        for v in models.WorkflowVersion.objects.filter(
            workflow_id=workflow.pk, number__in=set(numbers.values())
        )
    }
    for argument, number in numbers.items():
        if number not in versions:
            raise query_error(
                TransportCode.BAD_USER_INPUT,
                f"`{argument}`: the workflow has no published version with this number.",
                field=argument,
            )
    return [_change(c) for c in diff_versions(versions[from_version], versions[to_version])]
