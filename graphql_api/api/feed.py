"""The commit-ordered history page of ``workflowEvents``: its edges and the cursor to continue
from."""

from __future__ import annotations

import strawberry
from strawberry import relay

from graphql_api.api.types import WorkflowEventType


@strawberry.type(name="WorkflowEventFeedEdge", description="One event of a `WorkflowEventFeed`.")
class WorkflowEventFeedEdgeType:
    cursor: str = strawberry.field(description="The event's `cursor` (the same as `node.cursor`).")
    node: WorkflowEventType = strawberry.field(description="The event.")


@strawberry.type(
    name="WorkflowEventFeed",
    description="A page of the commit-ordered history (`workflowEvents`), with the cursor to "
    "continue from.",
)
class WorkflowEventFeedType:
    edges: list[WorkflowEventFeedEdgeType] = strawberry.field(
        description="The events, oldest first."
    )
    page_info: relay.PageInfo = strawberry.field(
        description="Whether more events follow this page; `endCursor` is where to continue (the "
        "same as `cursor`, set also when the page is empty: `first: 0` reads the head)."
    )
    cursor: str = strawberry.field(
        description=(
            "Where to continue: the last event's cursor, or (no event) the `after` given, or the "
            "newest event's. Pass it as `after` to the next `workflowEvents` page or to "
            "`workflowInstanceEvents`."
        )
    )
