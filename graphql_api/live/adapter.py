"""The WebSocket adapter of the GraphQL sockets: results over the size limit are refused, and
a client that reads too slowly is closed (back-pressure for servers that have none).

Messages too large to send
==========================

A WebSocket server refuses a message over its frame limit (daphne: 1 MiB; uvicorn's
``ws_max_size``, 16 MiB by default, bounds what it receives, but clients have limits too), and
the subscription then ended with ``complete`` and no error: the client believed it was up to
date. An event can be large through its ``context``, ``instance { … }`` selections or fields
repeated under aliases. So every result message (``next`` in graphql-transport-ws, ``data`` in
graphql-ws) is measured after strawberry serialised it — ``len()`` of the ASCII JSON text
strawberry sends, nothing serialised twice — and one over
``DJANGO_STEPS_GRAPHQL["WEBSOCKET_MAX_MESSAGE_SIZE"]`` (512 KiB, below both servers' limits) is
not sent. In its place the operation gets a result with one error and ends (``complete``), on
both protocols:

* ``EVENT_TOO_LARGE`` for a workflow event, with the event's ``cursor`` in ``extensions``
  (and ``size``, ``maxSize``): the client reads it and what follows over HTTP
  (``workflowEvents(after: <the last cursor it received>)``) and subscribes again with
  ``after``;
* ``RESULT_TOO_LARGE`` for anything else (a query or mutation sent over the socket, another
  subscription of a composed schema).

The override is small: an adapter whose ``send_json`` raises :class:`MessageTooLarge`
instead of sending, and per protocol a handler whose ``send_message`` answers it and ends the
operation the way strawberry ends one the client stopped (cancelling its task). The event
being sent is known from :data:`graphql_api.live.shared.sending_event`, set by the
subscription in the operation's task.


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

"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from typing import Any

from strawberry.channels.handlers.ws_handler import ChannelsWebSocketAdapter
from strawberry.http.exceptions import NonJsonMessageReceived, NonTextMessageReceived

from graphql_api.live.shared import sending_event, shared_frame
from graphql_api.security.error_codes import TransportCode
from graphql_api.settings import graphql_setting

logger = logging.getLogger("graphql_api.routing")  # the name it always had

__all__ = [
    "CLOSE_LINGER_SECONDS",
    "CONSUMER_TOO_SLOW_CLOSE_CODE",
    "ConsumerTooSlow",
    "FlowControl",
    "MessageTooLarge",
    "SizeLimitedWebSocketAdapter",
    "UNDECODABLE",
]


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
        event = sending_event.get()
        over = f"{self.size:,} bytes, more than a WebSocket message may hold ({self.limit:,})"
        if event is not None:
            cursor = str(event.cursor)
            message = (
                f"This event is {over}: it was not sent and the subscription has ended. "
                "Read it and what follows over HTTP with "
                "`workflowEvents(after: <the cursor of the last event you received>)` "
                "(its own cursor is in `extensions.cursor`), then subscribe again with `after`."
            )
            extensions = {"code": TransportCode.EVENT_TOO_LARGE, "cursor": cursor}
        else:
            cursor = None
            message = (
                f"This result is {over}: it was not sent. "
                "Ask for fewer fields or smaller pages, or use HTTP."
            )
            extensions = {"code": TransportCode.RESULT_TOO_LARGE}
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
        super().__init__(view, request, response)
        self.max_size = int(graphql_setting("WEBSOCKET_MAX_MESSAGE_SIZE") or 0)
        self.send_timeout = float(graphql_setting("WEBSOCKET_SEND_TIMEOUT") or 0)
        window = int(graphql_setting("WEBSOCKET_SEND_WINDOW") or 0)
        #: Set by the graphql-transport-ws handler (the legacy protocol has no ping to answer).
        self.flow: FlowControl | None = None
        self._window = window
        self.too_slow = False
        self.closing: asyncio.Future | None = None  # closing as too slow (_close_once_read)
        #: A frame the hub wrote directly that is still being sent (graphql_api.live.direct).
        self.direct_sending: asyncio.Future | None = None

    async def send_json(self, message, *, limited: bool = True) -> None:
        # json.dumps: ASCII, so characters are bytes. A result shared by the subscribers of an
        # event was serialised once for all of them (graphql_api.live.execution).
        text = None
        if message.get("type") in _RESULT_MESSAGES:
            text = shared_frame(sending_event.get(), message, self.view.encode_json)
        if text is None:
            text = self.view.encode_json(message)
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
            if self.direct_sending is not None:
                await asyncio.shield(self.direct_sending)  # frames in the order written
            await self._send_frame(text)
            return
        try:
            # A server that applies back-pressure (uvicorn) blocks here while the client does
            # not read; daphne never blocks (FlowControl covers it).
            async with asyncio.timeout(self.send_timeout):
                if self.direct_sending is not None:
                    await asyncio.shield(self.direct_sending)  # frames in the order written
                await self._send_frame(text)
        except TimeoutError:
            self.too_slow = True
            raise ConsumerTooSlow(f"a send waited over {self.send_timeout:g} s") from None

    def _send_frame(self, text: str) -> Any:
        """The consumer's ``send(text)``, below the wrappers that do nothing for a frame
        (:func:`graphql_api.live.socket.frame_sender`)."""
        consumer = self.ws_consumer
        send = getattr(consumer, "frame_send", None)
        if send is None:
            return consumer.send(text)
        return send({"type": "websocket.send", "text": text})

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


#: Seconds a socket closed as too slow waits for its client to read what was already sent, so
#: that the close frame (``CONSUMER_TOO_SLOW``) is read rather than cut off with the data before
#: it (daphne aborts a connection 1 s after it sent a close frame the client did not answer).
CLOSE_LINGER_SECONDS = 60.0


def _too_slow(websocket: SizeLimitedWebSocketAdapter, why: ConsumerTooSlow) -> bool:
    """Start closing a socket whose reader is too slow; False if that is under way already.
    The caller cancels the socket's operations (their memory is released at once)."""
    if websocket.closing is not None:
        return False
    websocket.too_slow = True
    logger.info(
        "WebSocket closing with %d (%s): the client reads too slowly (%s)",
        CONSUMER_TOO_SLOW_CLOSE_CODE,
        TransportCode.CONSUMER_TOO_SLOW,
        why,
    )
    websocket.closing = asyncio.ensure_future(_close_once_read(websocket))
    return True


async def _close_once_read(websocket: SizeLimitedWebSocketAdapter) -> None:
    """Nothing more is sent; once the client has read (acknowledged) everything sent before, or
    after :data:`CLOSE_LINGER_SECONDS`, the socket is closed with ``CONSUMER_TOO_SLOW``."""
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
        await websocket.close(
            code=CONSUMER_TOO_SLOW_CLOSE_CODE, reason=TransportCode.CONSUMER_TOO_SLOW
        )
