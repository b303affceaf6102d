"""``WorkflowInstance.subject``: the object an instance is attached to, for readers who may view it.

A reader who may view the object (:func:`django_steps.authorization.may_view_object`, the one
rule, decided once per object and request) gets its ``label`` (``DJANGO_STEPS["SUBJECT_LABEL"]``,
default ``str(obj)``) and, when the schema has a ``Node`` type for its model (a host composing
its own types with ours, :mod:`graphql_api.composition`), the object itself as ``node``; anyone
else gets ``null``, exactly as for an object that no longer exists. The objects of a page of
instances are loaded together, one query per model (the optimizer's ``prefetch_related`` of the
generic foreign key).
"""

from __future__ import annotations

import weakref
from typing import Any, Optional

import strawberry
import strawberry_django
from django.contrib.contenttypes.models import ContentType
from strawberry import relay
from strawberry.types import Info

from django_steps import models
from django_steps.selectors import subject_label
from graphql_api.security import permissions

__all__ = ["WorkflowSubjectType", "subject_field"]

#: Per schema: whether it has a ``Node`` type for a model.
_NODE_TYPES: weakref.WeakKeyDictionary[Any, dict[type, bool]] = weakref.WeakKeyDictionary()


def _has_node_type(info: Info, model: type) -> bool:
    """Whether the schema of ``info`` has a ``Node`` type for ``model`` (kept per schema)."""
    known = _NODE_TYPES.setdefault(info.schema, {})
    found = known.get(model)
    if found is None:
        found = False
        for graphql_type in info.schema.schema_converter.type_map.values():
            origin = getattr(getattr(graphql_type, "definition", None), "origin", None)
            django = getattr(origin, "__strawberry_django_definition__", None)
            if (
                isinstance(origin, type)
                and issubclass(origin, relay.Node)
                and getattr(django, "model", None) is model
            ):
                found = True
                break
        known[model] = found
    return found


@strawberry.type(
    name="WorkflowSubject",
    description="The object an instance is attached to, as a reader who may view it sees it.",
)
class WorkflowSubjectType:
    label: str = strawberry.field(
        description="A name for people (the host's `SUBJECT_LABEL`, by default the object's "
        '`str()`), e.g. "Broken window (450.00)".'
    )
    content_type: str = strawberry.field(
        description='Its model, as "app_label.model" (e.g. "claims.claim").'
    )
    object_id: strawberry.ID = strawberry.field(description="Its primary key, as text.")
    obj: strawberry.Private[Any]

    @strawberry.field(
        description="The object itself when the schema has a `Node` type for its model (a host "
        "composing its types with ours); null otherwise."
    )
    def node(self, info: Info) -> Optional[relay.Node]:
        return self.obj if _has_node_type(info, type(self.obj)) else None


def subject_field() -> Any:
    """The ``subject`` field of ``WorkflowInstance``."""

    @strawberry_django.field(
        only=["content_type_id", "object_id"],
        prefetch_related=["content_object"],
        description="The attached object — its label and, when the schema has a type for its "
        "model, the object itself — for readers who may view it; null for anyone else and when "
        "it no longer exists.",
    )
    def subject(
        self, root: strawberry.Parent[models.WorkflowInstance], info: Info
    ) -> Optional[WorkflowSubjectType]:
        obj = root.content_object
        if obj is None or not permissions.may_view_attached_object(info, root):
            return None
        content_type = ContentType.objects.get_for_id(root.content_type_id)  # cached per process
        return WorkflowSubjectType(
            label=subject_label(obj),
            content_type=f"{content_type.app_label}.{content_type.model}",
            object_id=strawberry.ID(root.object_id),
            obj=obj,
        )

    return subject
