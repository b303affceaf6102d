"""The ``workflowCounts`` subscription: a workflow's instance counts, kept live for dashboards that
show only numbers.

It pushes the ``Workflow`` itself: the client selects what it shows (``instanceCounts``, its
steps' and their statuses' ``instanceCounts``), and a normalised cache (Apollo, urql's
Graphcache, Relay) updates those objects by ID with no code. The first push is at once (the
counts now: no separate query); then one per burst of changes, at most one every
``SUBSCRIPTION_COUNTS_SECONDS`` (0.5 s): a hundred changes in a second cost two pushes, not a
hundred. Each push counts what the viewer may see now (the counts of
:mod:`graphql_api.api.counts`, annotated onto the rows of the push, three queries whatever the
number of steps and statuses).

It rides the machinery of ``workflowInstanceEvents`` (:mod:`graphql_api.live.subscriptions`):
the same checks of the user and arguments, the workflow's event stream, and the same guard —
only changes of instances the viewer may see start a push (others would change none of their
numbers, and would tell them that something happened), and the subscription ends with
``PERMISSION_DENIED`` once the viewer logs out, is deactivated or loses the permission.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any

import strawberry
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db.models import Prefetch
from strawberry.types import Info

from django_steps.models import Workflow, WorkflowStep, WorkflowStepStatus
from django_steps.selectors import newest_cursor
from graphql_api.api.counts import (
    STATUS_COUNTS,
    STEP_COUNTS,
    WORKFLOW_COUNTS,
    count_annotations,
)
from graphql_api.api.ids import parse_global_id
from graphql_api.api.types import WorkflowType
from graphql_api.live import subscriptions
from graphql_api.live.streams import StreamSpec, stream_events
from graphql_api.security.error_codes import ErrorCode, TransportCode
from graphql_api.security.errors import ApiError, query_error
from graphql_api.security.permissions import current_user
from graphql_api.settings import graphql_setting

__all__ = ["Subscription", "coalesced"]


async def coalesced(changes: AsyncIterator[Any], interval: float) -> AsyncIterator[None]:
    """Yields once at once, then once per burst of ``changes``: at the earliest ``interval``
    seconds after the previous yield, taking in every change that came meanwhile. What
    ``changes`` raises is raised here."""
    loop = asyncio.get_running_loop()
    pending: asyncio.Future | None = None
    try:
        yield None
        next_push = loop.time() + interval
        while True:
            pending = pending or asyncio.ensure_future(anext(changes))  # one read at a time
            try:
                await pending
            except StopAsyncIteration:
                return
            pending = None
            while (remaining := next_push - loop.time()) > 0:
                pending = pending or asyncio.ensure_future(anext(changes))
                done, _ = await asyncio.wait({pending}, timeout=remaining)
                if done:
                    try:
                        pending.result()
                    except StopAsyncIteration:
                        return
                    pending = None
            yield None
            next_push = loop.time() + interval
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending


def _follow(
    user: Any, workflow_id: str | None, workflow_name: str | None, info: Info
) -> tuple[int, int]:
    """The workflow a ``workflowCounts`` follows (the user and arguments checked as for
    ``workflowInstanceEvents``) and the newest event of it the user may see: the stream starts
    after it, before the first counts are read, so no change falls between the two (sync)."""
    if (workflow_id is None) == (workflow_name is None):
        raise query_error(
            TransportCode.BAD_USER_INPUT,
            "Give exactly one of `workflowId` and `workflowName`.",
            field="workflowId",
        )
    if workflow_id is not None:
        try:
            pk = parse_global_id(workflow_id, "Workflow", field="workflowId", info=info)
        except ApiError as error:
            raise query_error(error.code, error.message, field=error.field) from error
        workflow_name = Workflow.objects.filter(pk=pk).values_list("name", flat=True).first()
        if workflow_name is None:
            raise query_error(
                ErrorCode.WORKFLOW_NOT_FOUND, "No workflow has this ID.", field="workflowId"
            )
    pk = subscriptions.resolve_stream(user, None, workflow_name, info=info).workflow_id
    return pk, newest_cursor(workflow_id=pk, user=user)


def _load(pk: int, info: Info) -> Workflow:
    """The workflow with its steps and statuses, each carrying its counts (sync)."""

    def counted(outer: str, prefix: str) -> dict[str, Any]:
        return {
            name: expression(info) for name, expression in count_annotations(outer, prefix).items()
        }

    statuses = WorkflowStepStatus.objects.annotate(**counted("current_step_status", STATUS_COUNTS))
    steps = WorkflowStep.objects.annotate(**counted("current_step", STEP_COUNTS)).prefetch_related(
        Prefetch("statuses", queryset=statuses)
    )
    return (
        Workflow.objects.annotate(**counted("workflow", WORKFLOW_COUNTS))
        .prefetch_related(Prefetch("steps", queryset=steps))
        .get(pk=pk)
    )


@strawberry.type(
    name="Subscription",
    description="Real-time updates, over WebSocket (`graphql-transport-ws` or `graphql-ws`).",
)
class Subscription(subscriptions.Subscription):
    @strawberry.subscription(
        description=(
            "A workflow's instance counts, live, for dashboards that show only numbers: the "
            "`Workflow` at once, then again after changes, at most once every "
            "`SUBSCRIPTION_COUNTS_SECONDS` (0.5 s) however many changes come. Select "
            "`instanceCounts` and its steps' and statuses' `instanceCounts`: a normalised cache "
            "updates them by ID. Counts cover the instances the viewer may see; changes to "
            "others push nothing. Needs `view_workflowinstance`; ends with PERMISSION_DENIED "
            "once the viewer logs out, is deactivated or loses the permission."
        )
    )
    async def workflow_counts(
        self,
        info: Info,
        workflow_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="Global ID of the `Workflow` (or `workflowName`)."),
        ] = None,
        workflow_name: Annotated[
            str | None,
            strawberry.argument(description="Name of the workflow (or `workflowId`)."),
        ] = None,
    ) -> AsyncGenerator[WorkflowType, None]:
        user = current_user(info)
        pk, after = await database_sync_to_async(_follow)(user, workflow_id, workflow_name, info)
        spec = StreamSpec(workflow_id=pk)
        access = subscriptions.Access(info, user)
        visible = subscriptions.visible_to(user)
        events = stream_events(
            get_channel_layer(), spec, after=after, visible=visible, idle=access.ttl
        )
        interval = float(graphql_setting("SUBSCRIPTION_COUNTS_SECONDS"))
        async with (
            contextlib.aclosing(
                subscriptions.guarded_events(events, access, spec, info)
            ) as changes,
            contextlib.aclosing(coalesced(changes, interval)) as pushes,
        ):
            async for _ in pushes:
                await access.check_user()
                yield await database_sync_to_async(_load)(pk, info)
