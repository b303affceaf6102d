"""One ASGI application for the project: HTTP through Django, WebSockets to GraphQL.

* HTTP (``/graphql/`` and everything else) goes through Django's own ASGI handler, so the
  session, CSRF and authentication middleware apply exactly as under WSGI.
* WebSockets on ``/graphql/`` go to strawberry's ``GraphQLWSConsumer`` (both
  ``graphql-transport-ws`` and the legacy ``graphql-ws``), behind an ``Origin`` check and
  Channels' ``AuthMiddlewareStack`` (the same session cookie as HTTP identifies the user).

A project's ``asgi.py``::

    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

    from graphql_api.live.routing import get_application  # imports no model: safe before setup

    application = get_application("mysite.schema:schema")

:func:`get_application` sets Django up (``get_asgi_application()``) *before* it imports the
schema, so a schema given as a dotted path or a callable (see :mod:`graphql_api.schemas`) may
import models freely; importing the host's schema module at the top of ``asgi.py`` instead would
raise ``AppRegistryNotReady``. Without a schema it serves django-steps' own.

The origin check (:class:`GraphQLOriginValidator`) follows Django's CSRF origin check exactly:
a browser's handshake is accepted from the socket's own origin (scheme, a host of
``ALLOWED_HOSTS`` and port, as Django's ``request.get_host()`` and ``is_secure()`` read them,
proxy settings included) or from a trusted origin — ``CSRF_TRUSTED_ORIGINS`` and
``DJANGO_STEPS_GRAPHQL["ALLOWED_ORIGINS"]`` (a SPA served elsewhere, e.g.
``"https://app.example.com"``; ``"https://*.example.com"`` for subdomains; ``"*"`` allows any).
So an origin the same POST would be refused for (``CSRF_FAILED``) cannot open the socket either.
A handshake without ``Origin`` comes from a non-browser client, which cannot carry a victim's
cookies across sites, and is accepted.

Messages too large to send
==========================

A WebSocket server refuses a message over its frame limit (daphne: 1 MiB; uvicorn's
``ws_max_size``, 16 MiB by default, bounds what it receives, but clients have limits too), and
the subscription then ended with ``complete`` and no error: the client believed it was up to
date. An event can be large through its ``context``, ``instance { … }`` selections or fields
repeated under aliases. So every result message (``next`` in graphql-transport-ws, ``data`` in
graphql-ws) is measured after strawberry serialised it — ``len()`` of the ASCII JSON text strawberry sends,
nothing serialised twice — and one over ``DJANGO_STEPS_GRAPHQL["WEBSOCKET_MAX_MESSAGE_SIZE"]``
(512 KiB, below both servers' limits) is not sent. In its place the operation gets a result
with one error and ends (``complete``), on both protocols:

* ``EVENT_TOO_LARGE`` for a workflow event, with the event's ``cursor`` in ``extensions``
  (and ``size``, ``maxSize``): the client reads it and what follows over HTTP
  (``workflowEvents(after: <the last cursor it received>)``) and subscribes again with
  ``after``;
* ``RESULT_TOO_LARGE`` for anything else (a query or mutation sent over the socket, another
  subscription of a composed schema).

The override is small: an adapter whose ``send_json`` raises :class:`MessageTooLarge`
instead of sending, and per protocol a handler whose ``send_message`` answers it and ends the
operation the way strawberry ends one the client stopped (cancelling its task). The event
being sent is known from :data:`graphql_api.live.subscriptions.sending_event`, set by the
subscription in the operation's task.

Every operation, as of now
==========================

Before each operation on a socket (``subscribe`` in graphql-transport-ws, ``start`` in
graphql-ws) the handler gives it its own visibility ledger and refreshes the socket's user
(:func:`graphql_api.security.permissions.refresh_socket_user`: the session must still be valid and the
user active, re-read at most every ``SUBSCRIPTION_RECHECK_SECONDS``); a socket whose session
ended runs as anonymous from then on. If that check itself fails (the database is down), the
operation gets ``INTERNAL_SERVER_ERROR`` and nothing runs.

Malformed messages
==================

strawberry's handlers index into each message as if it were well-formed: a ``payload`` that is
not an object, an ``id`` that is not a string, a ``query`` that is not a string, or a message
nested too deep for the JSON decoder (``RecursionError``) raised out of the socket's read loop,
leaving it open and dead. Here each message is checked before strawberry sees it
(:func:`message_problem`): on graphql-transport-ws the socket is closed with ``4400`` and the
reason, as the protocol prescribes for an invalid message; on the legacy graphql-ws the client
gets ``error`` (for a ``start`` with a usable ``id``; code ``BAD_REQUEST``) or
``connection_error`` and the socket goes on. Each is logged in one line (INFO, no traceback).
Anything else that escapes a handler is a bug: logged with its traceback, and the socket is
closed with ``1011`` rather than left dead.

Slow readers
============

daphne's ``send`` never blocks: for a client that stopped reading, whatever the subscriptions
sent piled up in the server's memory (uvicorn holds the send back instead). So each socket's
outbound bytes are bounded (:class:`FlowControl`, graphql-transport-ws): a ``ping`` follows
every eighth of ``WEBSOCKET_SEND_WINDOW`` bytes, the client's ``pong`` acknowledges what came
before, and with a full window unacknowledged the sending operation waits. A socket that waits
on its client (a full window, or a send the server holds back) over ``WEBSOCKET_SEND_TIMEOUT``
has its operations cancelled and is closed with ``4413`` / ``CONSUMER_TOO_SLOW`` once the client
has read what was sent (:func:`_close_once_read`); the client resumes with ``after``.

The operations and sockets limits
=================================

strawberry refuses an operation beyond ``max_subscriptions_per_connection`` with an error that
has no code; here the limit is ``DJANGO_STEPS_GRAPHQL["WEBSOCKET_MAX_OPERATIONS"]`` (10: a
replaying subscription is real work, strawberry's 100 is far too many), read when the socket
opens, and the refusal carries ``TOO_MANY_OPERATIONS`` (both protocols); the socket and its other
operations go on. A logged-in user may hold ``WEBSOCKET_MAX_CONNECTIONS_PER_USER`` (10) sockets at
once in one server process: the next one is accepted and closed at once with code ``4429`` and
the reason ``TOO_MANY_CONNECTIONS: …`` (:func:`_limit_sockets`).

Serve it with ``daphne mysite.asgi:application`` or ``uvicorn mysite.asgi:application``; uvicorn
needs a WebSocket implementation, which ``uvicorn[standard]`` (the ``server`` extra) brings. In
development, ``manage.py runserver`` serves it when ``"daphne"`` is the first of
``INSTALLED_APPS`` (``manage.py check`` warns otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from typing import Any
from urllib.parse import urlsplit

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.layers import get_channel_layer
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.core.asgi import get_asgi_application
from django.core.exceptions import DisallowedHost, ImproperlyConfigured
from django.http import HttpRequest
from django.http.request import is_same_domain
from django.urls import re_path
from graphql import GraphQLError
from strawberry.channels import GraphQLWSConsumer
from strawberry.channels.handlers.ws_handler import ChannelsWebSocketAdapter
from strawberry.http.exceptions import NonJsonMessageReceived, NonTextMessageReceived
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

from graphql_api.schemas import SchemaSpec, load_schema

logger = logging.getLogger("graphql_api.live.routing")

__all__ = [
    "CONSUMER_TOO_SLOW_CLOSE_CODE",
    "ConsumerTooSlow",
    "GraphQLOriginValidator",
    "MessageTooLarge",
    "WorkflowGraphQLWSConsumer",
    "get_application",
    "websocket_application",
]


def _graphql_settings() -> dict:
    return getattr(settings, "DJANGO_STEPS_GRAPHQL", {}) or {}


def being_cancelled() -> bool:
    """Whether the running task has been asked to stop (even if a library swallowed the
    ``CancelledError`` and raised something else): a retry loop must end, not retry."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


# --------------------------------------------------------------------------- message size

#: The messages that carry a result (graphql-transport-ws, graphql-ws).
_RESULT_MESSAGES = frozenset({"next", "data"})


class MessageTooLarge(Exception):
    """A result message over ``WEBSOCKET_MAX_MESSAGE_SIZE``; it was not sent."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message of {size} bytes, over {limit}")
        self.size = size
        self.limit = limit

    def payload(self) -> dict:
        """The result sent instead: one error, no data (see the module docstring)."""
        from graphql_api.live.subscriptions import sending_event
        from graphql_api.security.errors import EVENT_TOO_LARGE, RESULT_TOO_LARGE

        event = sending_event.get()
        over = f"{self.size:,} bytes, more than a WebSocket message may hold ({self.limit:,})"
        if event is not None:
            cursor = str(event.cursor)
            message = (
                f"This event is {over}: it was not sent and the subscription has ended. Read it and what "
                "follows over HTTP with `workflowEvents(after: <the cursor of the last event you received>)` "
                "(its own cursor is in `extensions.cursor`), then subscribe again with `after`."
            )
            extensions = {"code": EVENT_TOO_LARGE, "cursor": cursor}
        else:
            cursor = None
            message = f"This result is {over}: it was not sent. Ask for fewer fields or smaller pages, or use HTTP."
            extensions = {"code": RESULT_TOO_LARGE}
        extensions.update(size=self.size, maxSize=self.limit)
        logger.warning(
            "WebSocket result of %d bytes not sent (WEBSOCKET_MAX_MESSAGE_SIZE %d): %s%s",
            self.size,
            self.limit,
            extensions["code"],
            f" at cursor {cursor}" if cursor else "",
        )
        return {"data": None, "errors": [{"message": message, "extensions": extensions}]}


# --------------------------------------------------------------------------- slow readers

#: The close code of a socket whose reader fell too far behind (reason ``CONSUMER_TOO_SLOW``).
CONSUMER_TOO_SLOW_CLOSE_CODE = 4413


class ConsumerTooSlow(Exception):
    """The client reads too slowly: the socket is closed with ``CONSUMER_TOO_SLOW``."""


class FlowControl:
    """Bytes sent on a graphql-transport-ws socket that the client has not acknowledged yet.

    After every eighth of ``window`` bytes sent, a ``ping`` carrying a random token follows; the
    client's ``pong`` (which the protocol requires, read in order after everything sent before
    the ping) acknowledges every byte sent before it. A pong that echoes the payload (as the
    ``graphql-ws`` library does) acknowledges its own ping; one without payload, the oldest
    ping unanswered. A message that would leave more than ``window`` bytes unacknowledged waits
    for pongs: servers whose ``send`` never blocks (daphne) would otherwise buffer without bound
    for a reader that stopped, and this is the back-pressure they lack."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.sent = 0
        self.acknowledged = 0
        self.next_ping = max(window // 8, 1)
        self.pings: deque[tuple[str, int]] = deque()
        self.acked = asyncio.Event()

    def fits(self, size: int) -> bool:
        unacknowledged = self.sent - self.acknowledged
        return unacknowledged == 0 or unacknowledged + size <= self.window

    def ping(self, *, now: bool = False) -> dict | None:
        """The ping to send now, if one is due (``now``: if anything sent is not covered yet)."""
        covered = self.pings[-1][1] if self.pings else self.acknowledged
        if self.sent < self.next_ping and not (now and self.sent > covered):
            return None
        self.next_ping = self.sent + max(self.window // 8, 1)
        token = secrets.token_hex(8)
        self.pings.append((token, self.sent))
        return {"type": "ping", "payload": {"ack": token}}

    def pong(self, payload: Any) -> None:
        token = payload.get("ack") if isinstance(payload, dict) else None
        if token is not None and all(token != pending for pending, _ in self.pings):
            return  # not one of ours
        while self.pings:
            pending, sent = self.pings.popleft()
            self.acknowledged = max(self.acknowledged, sent)
            if token is None or pending == token:
                break
        self.acked.set()


class SizeLimitedWebSocketAdapter(ChannelsWebSocketAdapter):
    """strawberry's adapter, refusing a result message over the size limit (read per socket)."""

    def __init__(self, view, request, response) -> None:
        from graphql_api.security.extensions import (
            graphql_setting,  # not at import: routing is imported before setup
        )

        super().__init__(view, request, response)
        self.max_size = int(graphql_setting("WEBSOCKET_MAX_MESSAGE_SIZE") or 0)
        self.send_timeout = float(graphql_setting("WEBSOCKET_SEND_TIMEOUT") or 0)
        window = int(graphql_setting("WEBSOCKET_SEND_WINDOW") or 0)
        #: Set by the graphql-transport-ws handler (the legacy protocol has no ping to answer).
        self.flow: FlowControl | None = None
        self._window = window
        self.too_slow = False
        self.closing: asyncio.Future | None = None  # closing as too slow (_close_once_read)

    async def send_json(self, message, *, limited: bool = True) -> None:
        text = self.view.encode_json(message)  # json.dumps: ASCII, so characters are bytes
        if (
            limited
            and self.max_size
            and len(text) > self.max_size
            and message.get("type") in _RESULT_MESSAGES
        ):
            raise MessageTooLarge(len(text), self.max_size)
        if self.too_slow:
            raise ConsumerTooSlow("already closed")
        flow = self.flow
        if flow is not None:
            if not flow.fits(len(text)):
                await self._wait_for_window(flow, len(text))
            flow.sent += len(text)
        await self._send(text)
        ping = flow.ping() if flow is not None else None
        if ping is not None:
            await self._send(self.view.encode_json(ping))

    async def _wait_for_window(self, flow: FlowControl, size: int) -> None:
        """Wait until the client acknowledged enough (``WEBSOCKET_SEND_TIMEOUT`` at most)."""
        ping = flow.ping(now=True)
        if ping is not None:
            await self._send(self.view.encode_json(ping))
        try:
            async with asyncio.timeout(self.send_timeout or None):
                while not flow.fits(size):
                    flow.acked.clear()
                    await flow.acked.wait()
        except TimeoutError:
            self.too_slow = True
            unacknowledged = flow.sent - flow.acknowledged
            raise ConsumerTooSlow(
                f"{unacknowledged:,} bytes unacknowledged for {self.send_timeout:g} s"
            ) from None

    async def _send(self, text: str) -> None:
        if not self.send_timeout:
            await self.ws_consumer.send(text)
            return
        try:
            # A server that applies back-pressure (uvicorn) blocks here while the client does
            # not read; daphne never blocks (FlowControl covers it).
            async with asyncio.timeout(self.send_timeout):
                await self.ws_consumer.send(text)
        except TimeoutError:
            self.too_slow = True
            raise ConsumerTooSlow(f"a send waited over {self.send_timeout:g} s") from None

    async def iter_json(self, *, ignore_parsing_errors: bool = False):
        # strawberry's, but a message nested too deep for the decoder (RecursionError) is not
        # JSON either, and where the protocol ignores bad JSON (graphql-ws) the handler is told,
        # so that it answers connection_error instead of nothing.
        while True:
            message = await self.ws_consumer.message_queue.get()
            if message["disconnected"]:
                break
            if message["message"] is None:
                raise NonTextMessageReceived
            try:
                decoded = self.view.decode_json(message["message"])
            except (ValueError, RecursionError) as error:  # json.JSONDecodeError is a ValueError
                if not ignore_parsing_errors:
                    raise NonJsonMessageReceived from error
                decoded = UNDECODABLE
            yield decoded


#: What :meth:`SizeLimitedWebSocketAdapter.iter_json` yields for a message that is not JSON.
UNDECODABLE: dict = {"type": None}


# --------------------------------------------------------------------------- message checks

_OPTIONAL_OBJECT = (dict, type(None))
_OPTIONAL_STRING = (str, type(None))


def message_problem(message: Any, *, start: str, stop: str) -> str | None:
    """What is wrong with a protocol message (None: nothing strawberry would trip over).
    ``start``/``stop``: the protocol's names for starting and stopping an operation."""
    if message is UNDECODABLE:
        return "WebSocket message must be valid JSON"
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return "Message must be a JSON object with a string `type`"
    kind = message["type"]
    if kind not in (start, stop):
        return None
    if not isinstance(message.get("id"), str):
        return f"`{kind}` needs a string `id`"
    if kind == stop:
        return None
    payload = message.get("payload")
    if not isinstance(payload, dict):
        return f"`{kind}` needs an object `payload`"
    if not isinstance(payload.get("query"), str):
        return "`payload.query` must be a string"
    if not isinstance(payload.get("variables"), _OPTIONAL_OBJECT):
        return "`payload.variables` must be an object"
    if not isinstance(payload.get("operationName"), _OPTIONAL_STRING):
        return "`payload.operationName` must be a string"
    if not isinstance(payload.get("extensions"), _OPTIONAL_OBJECT):
        return "`payload.extensions` must be an object"
    return None


def _too_many_operations(limit: int) -> GraphQLError:
    from graphql_api.security.errors import TOO_MANY_OPERATIONS

    return GraphQLError(
        f"At most {limit} operations may run at once on one connection: complete one, or wait for one to end, "
        "before starting another.",
        extensions={"code": TOO_MANY_OPERATIONS},
    )


def _check_failed() -> GraphQLError:
    from graphql_api.security.errors import INTERNAL_SERVER_ERROR

    return GraphQLError("Unexpected error.", extensions={"code": INTERNAL_SERVER_ERROR})


async def _prepare_operation(scope: dict) -> bool:
    """Run in the operation's task before it executes: its own ledger, the socket's user as of
    now. False (logged) when the user could not be checked."""
    from graphql_api.security import permissions

    permissions.begin_socket_operation()
    try:
        await permissions.refresh_socket_user(scope)
    except Exception:
        logger.exception("Could not check the user of a WebSocket before an operation")
        return False
    return True


#: Seconds a socket closed as too slow waits for its client to read what was already sent, so
#: that the close frame (``CONSUMER_TOO_SLOW``) is read rather than cut off with the data before
#: it (daphne aborts a connection 1 s after it sent a close frame the client did not answer).
CLOSE_LINGER_SECONDS = 60.0


def _too_slow(websocket: SizeLimitedWebSocketAdapter, why: ConsumerTooSlow) -> bool:
    """Start closing a socket whose reader is too slow; False if that is under way already.
    The caller cancels the socket's operations (their memory is released at once)."""
    from graphql_api.security.errors import CONSUMER_TOO_SLOW

    if websocket.closing is not None:
        return False
    websocket.too_slow = True
    logger.info(
        "WebSocket closing with %d (%s): the client reads too slowly (%s)",
        CONSUMER_TOO_SLOW_CLOSE_CODE,
        CONSUMER_TOO_SLOW,
        why,
    )
    websocket.closing = asyncio.ensure_future(_close_once_read(websocket))
    return True


async def _close_once_read(websocket: SizeLimitedWebSocketAdapter) -> None:
    """Nothing more is sent; once the client has read (acknowledged) everything sent before, or
    after :data:`CLOSE_LINGER_SECONDS`, the socket is closed with ``CONSUMER_TOO_SLOW``."""
    from graphql_api.security.errors import CONSUMER_TOO_SLOW

    flow = websocket.flow
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(CLOSE_LINGER_SECONDS):
            if flow is not None:
                ping = flow.ping(now=True)
                if ping is not None:
                    await websocket.ws_consumer.send(websocket.view.encode_json(ping))
                while flow.acknowledged < flow.sent:
                    flow.acked.clear()
                    await flow.acked.wait()
    with contextlib.suppress(Exception):
        await websocket.close(code=CONSUMER_TOO_SLOW_CLOSE_CODE, reason=CONSUMER_TOO_SLOW)


class _TransportWSHandler(BaseGraphQLTransportWSHandler):
    """graphql-transport-ws: malformed messages close the socket with 4400, each operation runs
    as the socket's user as of now, the operations limit has a code, a result too large becomes
    an error, then ``complete``, a reader too slow is closed with ``CONSUMER_TOO_SLOW`` (see the
    module docstring)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        window = getattr(self.websocket, "_window", 0)
        if window:
            self.websocket.flow = FlowControl(window)

    async def shutdown(self) -> None:
        closing = self.websocket.closing
        if closing is not None and not closing.done():
            closing.cancel()  # the client went away before reading on
        await super().shutdown()

    async def handle_message(self, message) -> None:
        problem = message_problem(message, start="subscribe", stop="complete")
        if problem is not None:
            await self.handle_invalid_message(problem)
            return
        if message["type"] == "pong" and self.websocket.flow is not None:
            self.websocket.flow.pong(message.get("payload"))
        try:
            await super().handle_message(message)
        except Exception:
            logger.exception(
                "WebSocket message handling failed (graphql-transport-ws); closing with 1011"
            )
            await self.websocket.close(code=1011, reason="Internal server error")

    async def handle_invalid_message(self, error_message: str) -> None:
        logger.info("WebSocket closed with 4400 (graphql-transport-ws): %s", error_message)
        await super().handle_invalid_message(error_message)

    async def handle_subscribe(self, message) -> None:
        limit = self.max_subscriptions_per_connection
        if (
            self.connection_acknowledged
            and limit is not None
            and message["id"] not in self.operations
            and len(self.operations) >= limit
        ):
            await self.send_message(
                {
                    "id": message["id"],
                    "type": "error",
                    "payload": [_too_many_operations(limit).formatted],
                }
            )
            return
        await super().handle_subscribe(message)

    async def run_operation(self, operation) -> None:
        if not await _prepare_operation(self.view.scope):
            await operation.send_initial_errors([_check_failed()])
            return
        await super().run_operation(operation)

    async def send_message(self, message) -> None:
        try:
            await super().send_message(message)
        except ConsumerTooSlow as why:
            if _too_slow(self.websocket, why):
                for operation_id in list(self.operations):
                    await self.cleanup_operation(operation_id)  # cancels; ends at its next await
        except MessageTooLarge as too_large:
            operation = self.operations.get(message["id"])
            refusal = {"id": message["id"], "type": "next", "payload": too_large.payload()}
            await self.websocket.send_json(
                refusal, limited=False
            )  # a few hundred bytes, whatever the limit
            if operation is not None:
                # Marks it completed (nothing more is sent for it) and frees its id.
                await operation.send_operation_message({"id": operation.id, "type": "complete"})
                if operation.task is not None:
                    operation.task.cancel()  # as strawberry stops an operation; this task ends at its next await


class _GraphQLWSHandler(BaseGraphQLWSHandler):
    """graphql-ws: malformed messages are answered with ``error`` or ``connection_error``, each
    operation runs as the socket's user as of now, the operations limit has a code, a result too
    large becomes an error, then ``complete`` (see the module docstring)."""

    _ended: frozenset[str] = frozenset()

    async def handle_message(self, message) -> None:
        problem = message_problem(message, start="start", stop="stop")
        if problem is not None:
            logger.info("WebSocket message refused (graphql-ws): %s", problem)
            operation_id = message.get("id") if isinstance(message, dict) else None
            if isinstance(operation_id, str) and message.get("type") == "start":
                from graphql_api.security.errors import BAD_REQUEST

                error = {"message": problem, "extensions": {"code": BAD_REQUEST}}
                await self.send_message({"type": "error", "id": operation_id, "payload": error})
            else:
                await self.send_message(
                    {"type": "connection_error", "payload": {"message": problem}}
                )
            return
        try:
            await super().handle_message(message)
        except Exception:
            logger.exception("WebSocket message handling failed (graphql-ws); closing with 1011")
            await self.websocket.close(code=1011, reason="Internal server error")

    async def handle_start(self, message) -> None:
        limit = self.max_subscriptions_per_connection
        if (
            self.connection_acknowledged
            and limit is not None
            and message["id"] not in self.tasks
            and len(self.tasks) >= limit
        ):
            error = _too_many_operations(limit).formatted
            await self.send_message({"type": "error", "id": message["id"], "payload": error})
            return
        await super().handle_start(message)

    async def handle_stop(self, message) -> None:
        # strawberry awaits the stopped operation's end before it reads the next message, and
        # each end takes turns of a busy event loop: 50 `stop`s took seconds while the other
        # replays went on. Cancel it and read on; it sends `complete` as it ends.
        operation_id = message["id"]
        task = self.tasks.get(operation_id)
        if task is None:
            return
        self.subscriptions.pop(operation_id, None)
        self._ended = self._ended | {operation_id}
        task.cancel()

    async def cleanup(self) -> None:
        # The socket closed: cancel every operation at once, then wait for them (strawberry
        # cancels and awaits one after the other while the rest run on).
        tasks = list(self.tasks.values())
        self.subscriptions.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        self.tasks.clear()

    async def handle_async_results(self, operation_id, query, operation_name, variables) -> None:
        if not await _prepare_operation(self.view.scope):
            self.tasks.pop(operation_id, None)
            await self.send_message(
                {"type": "error", "id": operation_id, "payload": _check_failed().formatted}
            )
            return
        await super().handle_async_results(operation_id, query, operation_name, variables)

    async def send_message(self, message) -> None:
        if message.get("id") in self._ended:
            if message.get("type") == "data":
                return  # ended: whatever the task yields before it stops is not for the client
            self._ended = self._ended - {message["id"]}
        try:
            await super().send_message(message)
        except ConsumerTooSlow as why:
            if _too_slow(self.websocket, why):
                for task in list(self.tasks.values()):
                    task.cancel()
        except MessageTooLarge as too_large:
            refusal = {"type": "data", "id": message["id"], "payload": too_large.payload()}
            await self.websocket.send_json(
                refusal, limited=False
            )  # a few hundred bytes, whatever the limit
            task = self.tasks.get(message["id"])
            if task is not None:
                self._ended = self._ended | {message["id"]}
                task.cancel()  # strawberry answers a cancelled operation with "complete"


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


#: Open sockets per user id in this process (WEBSOCKET_MAX_CONNECTIONS_PER_USER).
_SOCKETS_PER_USER: dict[Any, int] = {}


def _limit_sockets(scope: dict) -> Any:
    """Count a new socket of the scope's user: its user id (release it with
    :func:`_release_socket`), None for an anonymous socket, or raise :class:`_TooManySockets`."""
    from graphql_api.security.extensions import graphql_setting

    user = scope.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    limit = int(graphql_setting("WEBSOCKET_MAX_CONNECTIONS_PER_USER") or 0)
    open_now = _SOCKETS_PER_USER.get(user.pk, 0)
    if limit and open_now >= limit:
        raise _TooManySockets(limit)
    _SOCKETS_PER_USER[user.pk] = open_now + 1
    return user.pk


def _release_socket(user_pk: Any) -> None:
    left = _SOCKETS_PER_USER.get(user_pk, 0) - 1
    if left > 0:
        _SOCKETS_PER_USER[user_pk] = left
    else:
        _SOCKETS_PER_USER.pop(user_pk, None)


class _TooManySockets(Exception):
    def __init__(self, limit: int) -> None:
        from graphql_api.security.errors import TOO_MANY_CONNECTIONS

        super().__init__(
            f"{TOO_MANY_CONNECTIONS}: at most {limit} WebSockets per user are open at once; close one first."
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
        from graphql_api.security.extensions import graphql_setting

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


class _Handshake(HttpRequest):
    """A WebSocket handshake seen as the HttpRequest Django's CSRF origin check reads: its
    headers as ``META``, the scheme of the socket (``wss`` is secure), ``SECURE_PROXY_SSL_HEADER``
    and ``USE_X_FORWARDED_HOST`` applied by Django itself (``is_secure()``, ``get_host()``)."""

    def __init__(self, scope: dict) -> None:
        super().__init__()
        self._secure = scope.get("scheme") in ("wss", "https")
        for raw_name, raw_value in scope.get("headers", []):
            name = raw_name.decode("latin1").upper().replace("-", "_")
            key = name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{name}"
            value = raw_value.decode("latin1")
            self.META[key] = f"{self.META[key]},{value}" if key in self.META else value
        server = scope.get("server") or (None, None)
        if server[0] is not None:
            self.META["SERVER_NAME"] = str(server[0])
            self.META["SERVER_PORT"] = str(server[1] if server[1] is not None else "")

    def _get_scheme(self) -> str:
        return "https" if self._secure else "http"


class TrustedOrigins:
    """The origins, besides the handshake's own, whose pages may open the WebSocket:
    ``CSRF_TRUSTED_ORIGINS`` and ``DJANGO_STEPS_GRAPHQL["ALLOWED_ORIGINS"]`` with the rules of
    Django's CSRF check (an exact ``scheme://host[:port]``, or ``scheme://*.domain`` for its
    subdomains); ``"*"`` in ``ALLOWED_ORIGINS`` allows any."""

    def __init__(self, origins: list[str]) -> None:
        self.any = "*" in origins
        self.exact = {origin for origin in origins if "*" not in origin}
        self.subdomains: dict[str, list[str]] = {}
        for origin in origins:
            if origin == "*":
                continue
            parts = urlsplit(origin)
            if not parts.scheme or not parts.netloc:
                raise ImproperlyConfigured(
                    f"WebSocket origin {origin!r} must be an origin: scheme, host and port if not the "
                    "default one, e.g. 'https://app.example.com' (CSRF_TRUSTED_ORIGINS, "
                    "DJANGO_STEPS_GRAPHQL['ALLOWED_ORIGINS'])."
                )
            if "*" in origin:
                self.subdomains.setdefault(parts.scheme, []).append(parts.netloc.lstrip("*"))

    @classmethod
    def from_settings(cls) -> TrustedOrigins:
        return cls(
            [*settings.CSRF_TRUSTED_ORIGINS, *(_graphql_settings().get("ALLOWED_ORIGINS") or [])]
        )

    def allow(self, origin: str) -> bool:
        if self.any or origin in self.exact:
            return True
        try:
            parts = urlsplit(origin)
        except ValueError:
            return False
        return any(
            is_same_domain(parts.netloc, host) for host in self.subdomains.get(parts.scheme, ())
        )


def origin_allowed(scope: dict, trusted: TrustedOrigins) -> bool:
    """Whether the WebSocket handshake ``scope`` may go on, by the rules of Django's CSRF origin
    check: no ``Origin`` (not a browser, which cannot carry a victim's cookies across sites),
    the request's own origin (scheme, a host of ``ALLOWED_HOSTS`` and port, exactly), or a
    trusted origin."""
    origins = [value for name, value in scope.get("headers", []) if name == b"origin"]
    if not origins:
        return True
    if len(origins) > 1:
        return False
    try:
        origin = origins[0].decode("ascii")
    except UnicodeDecodeError:
        return False
    request = _Handshake(scope)
    try:
        own = f"{request.scheme}://{request.get_host()}"
    except DisallowedHost:
        own = None
    return origin == own or trusted.allow(origin)


class GraphQLOriginValidator:
    """ASGI middleware refusing a WebSocket handshake from a page on another origin (see
    :func:`origin_allowed`). ``allowed_origins``: the trusted origins; by default
    ``CSRF_TRUSTED_ORIGINS`` and ``ALLOWED_ORIGINS``, read at each handshake."""

    def __init__(self, application, allowed_origins: list[str] | None = None) -> None:
        self.application = application
        self.trusted = None if allowed_origins is None else TrustedOrigins(allowed_origins)
        if self.trusted is None:
            TrustedOrigins.from_settings()  # a malformed setting fails at start, not per socket

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            raise ValueError("GraphQLOriginValidator only serves WebSocket connections")
        trusted = self.trusted or TrustedOrigins.from_settings()
        if origin_allowed(scope, trusted):
            return await self.application(scope, receive, send)
        logger.info("WebSocket handshake refused: its Origin is not this site nor a trusted origin")
        return await WebsocketDenier()(scope, receive, send)


def websocket_application(schema: SchemaSpec = None, *, path: str = r"^graphql/?$"):
    """The WebSocket side alone: origin check → session auth → GraphQL consumer for ``schema``
    on the URL path matching the regular expression ``path``. Needs Django set up."""
    from channels.auth import AuthMiddlewareStack  # imports auth models: needs the app registry

    consumer = WorkflowGraphQLWSConsumer.as_asgi(
        schema=load_schema(schema),
        # The origin was checked above with the project's policy (strawberry's own check would
        # refuse a SPA origin that is allowed here).
        allowed_origins=["*"],
        keep_alive=True,
        keep_alive_interval=_graphql_settings().get("WEBSOCKET_KEEP_ALIVE_SECONDS", 15),
    )
    return GraphQLOriginValidator(AuthMiddlewareStack(URLRouter([re_path(path, consumer)])))


def get_application(schema: SchemaSpec = None, *, path: str = r"^graphql/?$"):
    """The project's ASGI application: Django for HTTP, ``schema`` (ours by default) over
    WebSocket on ``path`` (a regular expression matching the GraphQL view's URL path)."""
    django_asgi = get_asgi_application()  # sets Django up before anything imports models
    return ProtocolTypeRouter(
        {"http": django_asgi, "websocket": websocket_application(schema, path=path)}
    )
