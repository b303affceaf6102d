"""Publish committed history to the channel layer (the live feed of the subscriptions).

The engine sends :data:`django_steps.signals.workflow_event_committed` only after the writing
transaction has committed, so a rolled-back change publishes nothing. Publishing is best
effort: the channel layer is at most once and may be down (a Redis outage raises
``ConnectionError``). A failure is logged and swallowed — the change is committed and the
mutation must report success — and subscribers recover the event from the stored history
(see :mod:`graphql_api.streams`).
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from django_steps.models import WorkflowEvent
from django_steps.signals import workflow_event_committed

from .streams import event_messages

logger = logging.getLogger("graphql_api.events")

__all__ = ["connect", "publish_event"]


async def _send(layer, messages: list[tuple[str, dict]]) -> None:
    for group, message in messages:
        await layer.group_send(group, message)


def publish_event(event: WorkflowEvent) -> bool:
    """Announce one committed event to its instance, workflow and all-events groups.

    Returns False (after logging) when there is no channel layer or it failed; never raises.
    """
    try:
        layer = get_channel_layer()
        if layer is None:
            return False
        async_to_sync(_send)(layer, event_messages(event))
    except Exception:
        logger.exception(
            "Could not publish workflow event #%s (instance %s) to the channel layer; "
            "subscribers will read it from the history.",
            event.position,
            event.instance_id,
        )
        return False
    return True


def on_workflow_event_committed(sender, event: WorkflowEvent, **kwargs) -> None:
    publish_event(event)


def connect() -> None:
    workflow_event_committed.connect(on_workflow_event_committed, dispatch_uid="graphql_api.events.publish")
