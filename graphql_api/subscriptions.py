"""The ``workflowInstanceEvents`` subscription: committed history, live, resumable by cursor.

Arguments are resolved and permissions checked before the stream starts, so a refused
subscription gets one error (``extensions.code``: ``PERMISSION_DENIED``, ``INVALID_ID``,
``NOT_FOUND``, ``INVALID_CURSOR``) on both WebSocket protocols. The stream itself (replay,
live, gap fill, outage recovery, and the choice of cursor) is :mod:`graphql_api.streams`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from strawberry.types import Info

from django.db import router

from django_steps import history
from django_steps.models import Workflow, WorkflowEvent, WorkflowInstance

from .errors import NOT_FOUND, PERMISSION_DENIED, ApiError, query_error
from .ids import parse_global_id
from .permissions import VIEW_INSTANCE, current_user
from .streams import InvalidCursor, StreamSpec, parse_cursor, stream_events
from .types import WorkflowEventType

__all__ = ["Subscription"]


def _resolve(user, instance_id: str | None, workflow_name: str | None, after: int | None = None) -> StreamSpec:
    """Check the user and the arguments (sync: runs in a worker thread)."""
    if user is None or not user.is_authenticated or not user.is_active:
        raise query_error(PERMISSION_DENIED, "Log in to subscribe to workflow events.")
    if not user.has_perm(VIEW_INSTANCE):
        raise query_error(PERMISSION_DENIED, "You do not have permission to view workflow instances.")
    if after is not None and history.is_ahead(after, router.db_for_read(WorkflowEvent)):
        raise query_error(
            InvalidCursor.code, "This cursor is not from this history: reload, then subscribe without `after`."
        )
    workflow_id = None
    if workflow_name is not None:
        workflow_id = Workflow.objects.filter(name=workflow_name).values_list("pk", flat=True).first()
        if workflow_id is None:
            raise query_error(NOT_FOUND, f"No workflow is named {workflow_name!r:.100}.")
    if instance_id is None:
        return StreamSpec(workflow_id=workflow_id)
    try:
        pk = parse_global_id(instance_id, "WorkflowInstance", field="instanceId")
    except ApiError as error:
        raise query_error(error.code, error.message) from error
    row = WorkflowInstance.objects.filter(pk=pk).values_list("workflow_id", flat=True)
    instance_workflow_id = row.first()
    if instance_workflow_id is None or (workflow_id is not None and instance_workflow_id != workflow_id):
        raise query_error(NOT_FOUND, "No workflow instance has this ID" + (" in this workflow." if workflow_id else "."))
    return StreamSpec(instance_id=pk, workflow_id=instance_workflow_id)


@strawberry.type(description="Real-time updates, over WebSocket (`graphql-transport-ws` or `graphql-ws`).")
class Subscription:
    @strawberry.subscription(
        description=(
            "Every change committed to workflow instances, as it happens, in commit order: one instance "
            "(`instanceId`), one workflow (`workflowName`), or, with neither, all instances. Needs "
            "`view_workflowinstance`. With `after` (the `cursor` of the last event a client received), "
            "the stored events after it are replayed first and live ones follow, with no gap and no "
            "duplicate, so a reconnecting client misses nothing. Events are sent only once their "
            "transaction has committed."
        )
    )
    async def workflow_instance_events(
        self,
        info: Info,
        instance_id: Annotated[
            strawberry.ID | None, strawberry.argument(description="Global ID of one `WorkflowInstance` to follow.")
        ] = None,
        workflow_name: Annotated[
            str | None, strawberry.argument(description="Name of a workflow: follow all its instances.")
        ] = None,
        after: Annotated[
            str | None,
            strawberry.argument(description="Resume after this event `cursor` (replays what was missed)."),
        ] = None,
    ) -> AsyncGenerator[WorkflowEventType, None]:
        try:
            position = parse_cursor(after)
        except InvalidCursor as error:
            raise query_error(error.code, str(error)) from error
        user = current_user(info)
        spec = await database_sync_to_async(_resolve)(user, instance_id, workflow_name, position)
        async for event in stream_events(get_channel_layer(), spec, after=position):
            yield event
