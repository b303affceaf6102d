"""The protocol handlers of the GraphQL sockets (graphql-transport-ws and the legacy graphql-ws):
each message checked, each operation run as the socket's user as of now, results too large or
readers too slow answered (:mod:`graphql_api.live.adapter`).

Every operation, as of now
==========================

Before each operation on a socket (``subscribe`` in graphql-transport-ws, ``start`` in
graphql-ws) the handler gives it its own visibility ledger and refreshes the socket's user
(:func:`graphql_api.live.socket_auth.refresh_socket_user`: the session must still be valid and
the user active, re-read at most every ``SUBSCRIPTION_RECHECK_SECONDS``); a socket whose session
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

"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from asgiref.sync import sync_to_async
from graphql import GraphQLError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

from graphql_api.live.adapter import (
    UNDECODABLE,
    ConsumerTooSlow,
    FlowControl,
    MessageTooLarge,
    _too_slow,
)
from graphql_api.live.shared import direct_operation
from graphql_api.security.document_size import check_document_size
from graphql_api.security.error_codes import TransportCode
from graphql_api.security.persisted import PersistedQueryError, persisted_message
from graphql_api.security.persisted import resolve as resolve_persisted

logger = logging.getLogger("graphql_api.routing")  # the name it always had

__all__ = [
    "message_problem",
]


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


async def _document_refusal(message: Any, start: str, scope: dict) -> PersistedQueryError | None:
    """The refusal to send for an operation message (``start``: the protocol's name for it)
    whose document is too large for the socket's user
    (:mod:`graphql_api.security.document_size`) or whose persisted document cannot run; puts
    that document in its ``payload.query`` (Apollo's APQ, :mod:`graphql_api.security.persisted`).
    A malformed message is left to :func:`message_problem`."""
    if not isinstance(message, dict) or message.get("type") != start:
        return None
    payload = message.get("payload")
    if not isinstance(payload, dict) or not isinstance(message.get("id"), str):
        return None
    user = scope.get("user")
    try:
        check_document_size(payload.get("query"), user)  # before an APQ registration keeps it
        if persisted_message(message, start):
            payload["query"] = await sync_to_async(resolve_persisted)(
                payload.get("query"), payload.get("extensions")
            )
            check_document_size(payload["query"], user)
    except PersistedQueryError as refusal:
        logger.info("WebSocket operation refused: %s", refusal.code)
        return refusal
    return None


def _refused_start(handler: Any, running: Mapping[str, Any], operation_id: str) -> dict | None:
    """The error refusing to start ``operation_id`` when ``running`` (the handler's operations)
    is at the connection's limit, else None. Restarting a running id is not refused here: the
    protocol handler answers it."""
    limit = handler.max_subscriptions_per_connection
    if (
        not handler.connection_acknowledged
        or limit is None
        or operation_id in running
        or len(running) < limit
    ):
        return None
    return GraphQLError(
        f"At most {limit} operations may run at once on one connection: "
        "complete one, or wait for one to end, "
        "before starting another.",
        extensions={"code": TransportCode.TOO_MANY_OPERATIONS},
    ).formatted


def _check_failed() -> GraphQLError:
    return GraphQLError(
        "Unexpected error.", extensions={"code": TransportCode.INTERNAL_SERVER_ERROR}
    )


async def _prepare_operation(scope: dict) -> bool:
    """Run in the operation's task before it executes: its own ledger, the socket's user as of
    now. False (logged) when the user could not be checked."""
    # Imported on use: both import the models, and routing imports this module before Django
    # is set up (see graphql_api.live.routing).
    from graphql_api.live import socket_auth
    from graphql_api.security import permissions

    permissions.begin_socket_operation()
    try:
        await socket_auth.refresh_socket_user(scope)
    except Exception:
        logger.exception("Could not check the user of a WebSocket before an operation")
        return False
    return True


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
        refusal = await _document_refusal(message, "subscribe", self.view.scope)
        if refusal is not None:
            error = {"id": message["id"], "type": "error", "payload": [refusal.formatted]}
            await self.send_message(error)
            return
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
        refusal = _refused_start(self, self.operations, message["id"])
        if refusal is not None:
            await self.send_message({"id": message["id"], "type": "error", "payload": [refusal]})
            return
        await super().handle_subscribe(message)

    async def run_operation(self, operation) -> None:
        if not await _prepare_operation(self.view.scope):
            await operation.send_initial_errors([_check_failed()])
            return
        direct_operation.set(operation)  # this task's: shared results may skip strawberry
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
                    # As strawberry stops an operation; this task ends at its next await.
                    operation.task.cancel()


class _GraphQLWSHandler(BaseGraphQLWSHandler):
    """graphql-ws: malformed messages are answered with ``error`` or ``connection_error``, each
    operation runs as the socket's user as of now, the operations limit has a code, a result too
    large becomes an error, then ``complete`` (see the module docstring)."""

    _ended: frozenset[str] = frozenset()

    async def handle_message(self, message) -> None:
        refusal = await _document_refusal(message, "start", self.view.scope)
        if refusal is not None:
            error = {"type": "error", "id": message["id"], "payload": refusal.formatted}
            await self.send_message(error)
            return
        problem = message_problem(message, start="start", stop="stop")
        if problem is not None:
            logger.info("WebSocket message refused (graphql-ws): %s", problem)
            operation_id = message.get("id") if isinstance(message, dict) else None
            if isinstance(operation_id, str) and message.get("type") == "start":
                error = {"message": problem, "extensions": {"code": TransportCode.BAD_REQUEST}}
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
        refusal = _refused_start(self, self.tasks, message["id"])
        if refusal is not None:
            await self.send_message({"type": "error", "id": message["id"], "payload": refusal})
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
