"""Helpers for the subscription tests: a two-protocol GraphQL WebSocket client over Channels'
communicator, sessions, and the operations the tests send."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import defaultdict, deque
from typing import Any

from channels.db import database_sync_to_async
from django.db import connection
from strawberry.channels.testing import GraphQLWebsocketCommunicator
from strawberry.relay import to_base64
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from tests.conftest import wait_until_final

PROTOCOLS = [GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL]

EVENTS = """
subscription Events($instanceId: ID, $workflowName: String, $after: String) {
  workflowInstanceEvents(instanceId: $instanceId, workflowName: $workflowName, after: $after) {
    cursor
    kind
    state
    sequence
    toStep { name }
    toStatus { name }
    instance { id }
  }
}
"""

COMPLETE = {"complete": True}

#: How long a test waits for a message it expects: generous, because on PostgreSQL an event is
#: delivered once every older transaction of the whole cluster has ended (the history's horizon),
#: which a loaded machine or another client's open transaction can delay by seconds. Each wait
#: ends as soon as the message arrives; only waits for *no* message (:meth:`nothing_more`) are
#: short.
DELIVERY_WITHIN = 30.0


def instance_gid(instance) -> str:
    return to_base64("WorkflowInstance", instance.pk)


class GraphQLSocket:
    """One WebSocket speaking either protocol; messages are sorted per subscription id."""

    def __init__(
        self,
        application,
        *,
        protocol: str = GRAPHQL_TRANSPORT_WS_PROTOCOL,
        session_key: str | None = None,
        origin: str | None = None,
    ) -> None:
        headers = []
        if session_key:
            headers.append((b"cookie", f"sessionid={session_key}".encode()))
        if origin:
            headers.append((b"origin", origin.encode()))
        self.protocol = protocol
        self.communicator = GraphQLWebsocketCommunicator(
            application, "/graphql/", headers=headers, protocol=protocol
        )
        self.buffers: dict[str, deque] = defaultdict(deque)
        self.closed: int | None = None

    async def __aenter__(self) -> GraphQLSocket:
        await self.communicator.gql_init()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.communicator.disconnect()

    async def subscribe(
        self, query: str = EVENTS, *, settled: bool = True, **variables: Any
    ) -> str:
        """Start a subscription. ``settled``: first wait until every event committed so far is
        final (:func:`tests.conftest.wait_until_final`), so that it is history to the new
        subscription — on PostgreSQL another client's open transaction anywhere in the cluster
        would otherwise make an event committed before this call arrive later, as a live one.
        Tests of that very case pass ``settled=False``."""
        if settled:
            await database_sync_to_async(wait_until_final)(in_transaction_ok=True)
        id_ = uuid.uuid4().hex
        payload = {"query": query, "variables": variables}
        kind = "subscribe" if self.protocol == GRAPHQL_TRANSPORT_WS_PROTOCOL else "start"
        await self.communicator.send_json_to({"id": id_, "type": kind, "payload": payload})
        return id_

    async def stop(self, id_: str) -> None:
        kind = "complete" if self.protocol == GRAPHQL_TRANSPORT_WS_PROTOCOL else "stop"
        await self.communicator.send_json_to({"id": id_, "type": kind})

    async def _pump(self, timeout: float) -> None:
        # Not receive_json_from: on a timeout asgiref's communicator cancels the application.
        communicator = self.communicator
        if communicator.future.done() and communicator.output_queue.empty():
            communicator.future.result()  # raises what the application raised
            raise ConnectionError("the application has finished")
        raw = await asyncio.wait_for(communicator.output_queue.get(), timeout)
        if raw["type"] == "websocket.close":
            self.closed = raw.get("code")
            raise ConnectionError(f"socket closed with code {raw.get('code')}")
        message = json.loads(raw["text"])
        kind = message.get("type")
        if kind == "ping":
            await self.communicator.send_json_to({"type": "pong"})
        elif kind in ("next", "data"):
            self.buffers[message["id"]].append(message["payload"])
        elif kind == "error":
            self.buffers[message["id"]].append({"data": None, "errors": message["payload"]})
        elif kind == "complete":
            self.buffers[message["id"]].append(COMPLETE)
        # "ka", "pong": keep-alives

    async def result(self, id_: str, timeout: float = DELIVERY_WITHIN) -> dict:
        """The next payload (``{"data":…, "errors":…}``) of subscription ``id_``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.buffers[id_]:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"no message for subscription {id_} within {timeout}s")
            await self._pump(remaining)
        return self.buffers[id_].popleft()

    async def events(self, id_: str, count: int, timeout: float = DELIVERY_WITHIN) -> list[dict]:
        out = []
        for _ in range(count):
            payload = await self.result(id_, timeout)
            assert payload is not COMPLETE, f"subscription completed after {len(out)} events"
            assert not payload.get("errors"), payload
            out.append(payload["data"]["workflowInstanceEvents"])
        return out

    async def nothing_more(self, id_: str, wait: float = 0.5) -> bool:
        """True if no message arrives for ``id_`` within ``wait`` seconds."""
        try:
            await self.result(id_, wait)
        except TimeoutError:
            return True
        return False


def error_codes(payload: dict) -> list[str]:
    return [(e.get("extensions") or {}).get("code") for e in payload.get("errors") or []]


def add_events(instance, count: int) -> None:
    """``count`` more history rows for ``instance`` in one bulk insert (copies of its last event,
    each in its own slot after everything stored): thousands of events in a second, for tests of
    replay cost. Sync."""
    from django.db import connection, transaction
    from django.db.models import Max

    from django_steps.models import WorkflowEvent

    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_current_xact_id()::text::bigint")
                txid, start = int(cursor.fetchone()[0]), 0
        else:
            txid = 0
            start = WorkflowEvent.objects.filter(txid=0).aggregate(m=Max("position"))["m"] or 0
        last = WorkflowEvent.objects.filter(instance=instance).order_by("-sequence").first()
        rows = []
        for n in range(1, count + 1):
            row = WorkflowEvent(
                **{
                    f.attname: getattr(last, f.attname)
                    for f in WorkflowEvent._meta.concrete_fields
                    if not f.primary_key
                }
            )
            row.sequence = last.sequence + n
            row.txid = txid
            row.position = start + n
            rows.append(row)
        WorkflowEvent.objects.bulk_create(rows, batch_size=1000)
        # The instance's next event takes the sequence after these.
        type(instance).objects.filter(pk=instance.pk).update(last_sequence=last.sequence + count)


@contextlib.asynccontextmanager
async def on_database_thread(hook):
    """``hook`` wraps every statement run on the thread the subscriptions' resolvers query in
    (Channels' one thread for sync work), for as long as the block lasts."""
    await database_sync_to_async(lambda: connection.execute_wrappers.append(hook))()
    try:
        yield hook
    finally:
        await database_sync_to_async(lambda: connection.execute_wrappers.remove(hook))()
