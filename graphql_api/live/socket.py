"""The consumer of the GraphQL sockets: strawberry's, kept alive through channel-layer outages,
reading its client promptly, and holding the limits of operations and sockets.

The operations and sockets limits
=================================

strawberry refuses an operation beyond ``max_subscriptions_per_connection`` with an error that
has no code; here the limit is ``DJANGO_STEPS_GRAPHQL["WEBSOCKET_MAX_OPERATIONS"]`` (10: a
replaying subscription is real work, strawberry's 100 is far too many), read when the socket
opens, and the refusal carries ``TOO_MANY_OPERATIONS`` (both protocols); the socket and its other
operations go on. A logged-in user may hold ``WEBSOCKET_MAX_CONNECTIONS_PER_USER`` (10) sockets at
once in one server process: the next one is accepted and closed at once with code ``4429`` and
the reason ``TOO_MANY_CONNECTIONS: …`` (:func:`_limit_sockets`). Sockets not logged in are
counted per client address instead (``WEBSOCKET_MAX_ANONYMOUS_PER_ADDRESS``, 50): behind a proxy
that address is the proxy's unless the ASGI server reads forwarded headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.layers import get_channel_layer
from channels.sessions import InstanceSessionWrapper
from strawberry.channels import GraphQLWSConsumer

from graphql_api.live.adapter import SizeLimitedWebSocketAdapter
from graphql_api.live.handlers import _GraphQLWSHandler, _TransportWSHandler
from graphql_api.live.turns import owner
from graphql_api.security.error_codes import TransportCode
from graphql_api.settings import graphql_setting

logger = logging.getLogger("graphql_api.routing")  # the name it always had

__all__ = [
    "WorkflowGraphQLWSConsumer",
    "being_cancelled",
    "frame_sender",
    "dispatch_promptly",
]


def frame_sender(send: Any) -> Any:
    """The ASGI ``send`` a ``websocket.send`` message may go to: ``send`` itself, or the one
    below Channels' session middleware, whose wrapper only acts on the message types it saves
    the session on (``http.response.start``) and otherwise reads the session (through its lazy
    object) for nothing, per frame. Every other message type keeps the whole stack."""
    while True:
        wrapper = getattr(send, "__self__", None)
        if not isinstance(wrapper, InstanceSessionWrapper) or send != wrapper.send:
            return send
        if "websocket.send" in wrapper.save_message_types:
            return send
        send = wrapper.real_send


def being_cancelled() -> bool:
    """Whether the running task has been asked to stop (even if a library swallowed the
    ``CancelledError`` and raised something else): a retry loop must end, not retry."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def dispatch_promptly(receivers, dispatch) -> None:
    """channels' ``await_many_dispatch``, with each source read in a loop of its own: messages
    already waiting are dispatched in the same turn of the event loop. channels' version spends
    several turns per message (a new task, a wait, a wake-up), and while replays keep the loop and
    a database thread busy each turn costs milliseconds: 50 ``complete`` messages took a second to
    be read. Dispatches stay one at a time and in order per source, as there; the first error
    (``StopConsumer`` at the end) ends it."""
    one_at_a_time = asyncio.Lock()

    async def pump(receive) -> None:
        while True:
            message = await receive()
            async with one_at_a_time:
                await dispatch(message)

    tasks = [asyncio.ensure_future(pump(receive)) for receive in receivers]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:  # each one, whatever the others raise (the first raised above)
            with contextlib.suppress(BaseException):
                await task


#: Open sockets in this process per ("user", user id), or per ("address", client address) for
#: sockets not logged in (WEBSOCKET_MAX_CONNECTIONS_PER_USER, WEBSOCKET_MAX_ANONYMOUS_PER_ADDRESS).
_SOCKETS_PER_USER: dict[Any, int] = {}


def _limit_sockets(scope: dict) -> Any:
    """Count a new socket of the scope's user, or of its client address when nobody is logged in:
    the key to release it with (:func:`_release_socket`), None when not counted (no address), or
    raise :class:`_TooManySockets`."""
    key = owner(scope)
    if key is None:
        return None
    if key[0] == "user":
        setting, who = "WEBSOCKET_MAX_CONNECTIONS_PER_USER", "per user"
    else:
        setting, who = "WEBSOCKET_MAX_ANONYMOUS_PER_ADDRESS", "not logged in per client address"
    limit = int(graphql_setting(setting) or 0)
    open_now = _SOCKETS_PER_USER.get(key, 0)
    if limit and open_now >= limit:
        raise _TooManySockets(limit, who)
    _SOCKETS_PER_USER[key] = open_now + 1
    return key


def _release_socket(key: Any) -> None:
    left = _SOCKETS_PER_USER.get(key, 0) - 1
    if left > 0:
        _SOCKETS_PER_USER[key] = left
    else:
        _SOCKETS_PER_USER.pop(key, None)


class _TooManySockets(Exception):
    def __init__(self, limit: int, who: str) -> None:
        super().__init__(
            f"{TransportCode.TOO_MANY_CONNECTIONS}: at most {limit} WebSockets {who} are open "
            "at once; close one first."
        )


class WorkflowGraphQLWSConsumer(GraphQLWSConsumer):
    """strawberry's consumer, kept alive through channel-layer outages, with results over the
    size limit answered by an error instead of being dropped (see the module docstring).

    The workflow events do not use the socket's own channel (each process has one
    :class:`~graphql_api.live.streams.EventHub`), but strawberry's ``channel_listen`` does, so the
    channel stays. Channels' consumer dies when the layer's ``receive`` raises (Redis down),
    closing the socket; this one logs and retries with a short back-off.
    """

    websocket_adapter_class = SizeLimitedWebSocketAdapter
    graphql_transport_ws_handler_class = _TransportWSHandler
    graphql_ws_handler_class = _GraphQLWSHandler

    async def __call__(self, scope, receive, send):
        # AsyncConsumer.__call__, with a receive from the channel layer that survives errors.
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.base_send = send
        #: Where the socket's frames (``websocket.send``) go: see :func:`frame_sender`.
        self.frame_send = frame_sender(send)
        callables = [receive]
        if self.channel_layer is not None:
            self.channel_name = await self.channel_layer.new_channel()
            self.channel_receive = self._receive_from_layer
            callables.append(self._receive_from_layer)
        try:
            await dispatch_promptly(callables, self.dispatch)
        except StopConsumer:
            pass

    _counted_user: Any = None
    _refused = False

    async def dispatch(self, message) -> None:
        # channels' dispatch first closes stale database connections in the database thread,
        # i.e. every message the client sends waits behind the page reads queued there: under 50
        # replays a `complete` waited seconds. Receiving and closing touch no database here (the
        # operations' own database calls close stale connections around each call), so they go
        # straight to their handlers.
        if message.get("type") in ("websocket.receive", "websocket.disconnect"):
            handler = getattr(self, get_handler_name(message))
            await handler(message)
            return
        await super().dispatch(message)

    async def connect(self) -> None:
        # The limits of this socket (see the module docstring), before strawberry runs it.
        self.max_subscriptions_per_connection = (
            int(graphql_setting("WEBSOCKET_MAX_OPERATIONS") or 0) or None
        )
        try:
            self._counted_user = _limit_sockets(self.scope)
        except _TooManySockets as refusal:
            self._refused = True
            logger.info("WebSocket refused: %s", refusal)
            await self.accept(subprotocol=await self.pick_websocket_subprotocol(self))
            await self.close(code=4429, reason=str(refusal))
            return
        await super().connect()

    async def disconnect(self, code: int) -> None:
        if self._refused:
            return
        try:
            await super().disconnect(code)
        finally:
            if self._counted_user is not None:
                _release_socket(self._counted_user)
                self._counted_user = None

    async def _receive_from_layer(self) -> dict:
        delay = 0.1
        while True:
            try:
                return await self.channel_layer.receive(self.channel_name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if being_cancelled():
                    # Cancelled (the socket closed, the worker stops), but the layer raised
                    # something else: Python 3.11's asyncio.timeout turns a cancellation into
                    # TimeoutError when redis-py's read timeout fires at the same moment.
                    # Retrying here left the task "cancelling" forever and hung SIGTERM.
                    raise asyncio.CancelledError from exc
                logger.debug("Channel layer receive failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
