"""What the subscribers of one event share in this process: its results, their serialised
payloads, the counts of executions (:mod:`graphql_api.live.execution` computes them).

Free of Django models: the WebSocket adapter (imported before Django is set up) builds its frames
with :func:`shared_frame`.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from contextvars import ContextVar
from typing import Any

__all__ = [
    "RESULTS",
    "STATS",
    "FANS",
    "FanOutStats",
    "Shared",
    "direct_operation",
    "sending_event",
    "shared_frame",
]

#: The event whose result the current operation (its asyncio task) is about to send: the
#: WebSocket size guard names its cursor when the message is too large, and the adapter sends
#: its shared payload (set by the subscription in the operation's task).
sending_event: ContextVar[Any] = ContextVar("sending_event", default=None)

#: The graphql-transport-ws operation running in the current task (set by its handler): a
#: subscription may send it a shared result directly (graphql_api.live.execution.send_shared).
direct_operation: ContextVar[Any] = ContextVar("direct_operation", default=None)

#: The visibility class of the subscriber whose event the running operation (its task) is
#: executing: set by the subscription before each event it yields; None: share per user only.
sharing_class: ContextVar[Any] = ContextVar("sharing_class", default=None)


class FanOutStats:
    """Executions of workflow events by this process: in all, and per event (the latest
    :attr:`KEPT` events, by cursor)."""

    KEPT = 10_000

    def __init__(self) -> None:
        self.executions = 0
        self.shared = 0  # results handed to a subscription without executing
        self.serialised = 0  # payloads serialised for a shared result
        self.direct = 0  # shared results written by the hub, no task of the subscriber woken
        self.by_event: OrderedDict[int, int] = OrderedDict()

    def executed(self, cursor: int) -> None:
        self.executions += 1
        self.by_event[cursor] = self.by_event.get(cursor, 0) + 1
        if len(self.by_event) > self.KEPT:
            self.by_event.popitem(last=False)

    def executions_for(self, cursor: int) -> int:
        """How many times the event with this cursor was executed (every subscription)."""
        return self.by_event.get(cursor, 0)

    def as_dict(self) -> dict[str, int]:
        return {
            "executions": self.executions,
            "shared": self.shared,
            "serialised": self.serialised,
            "direct": self.direct,
            "events": len(self.by_event),
        }


STATS = FanOutStats()


class Shared:
    """One execution of an event shared by its subscribers: its result (once ``pending``, the
    execution in flight, is done) and its payload serialised once."""

    __slots__ = ("operation", "pending", "result", "text", "waiters")

    def __init__(self, operation: Any, result: Any) -> None:
        self.operation = operation
        self.result = result
        self.pending: Any = None
        self.text: str | None = None
        #: Subscribers awaiting ``pending`` now (graphql_api.live.execution.wait_shared).
        self.waiters = 0


#: event -> {share key: Shared, id(result.data): Shared}, for as long as the event object lives.
RESULTS: weakref.WeakKeyDictionary[Any, dict] = weakref.WeakKeyDictionary()
#: (event cursor, share key) -> (graphql_api.live.direct.FanOut, the sinks waiting for that
#: result): settled when the result exists or its leader is done with the event.
FANS: dict[tuple, tuple[Any, list]] = {}
#: Stand for the subscription id and the shared payload in a frame template (see
#: :func:`shared_frame`).
_ID = "\x00django-steps id\x00"
_PAYLOAD = "\x00django-steps payload\x00"
#: (encoder, the message's keys, its type) -> the frame's text before the id, between the
#: id and the payload, after the payload; None when the encoder does not keep them apart.
_TEMPLATES: dict[tuple, tuple[str, str, str] | None] = {}


def _template(encode: Any, message: dict) -> tuple[str, str, str] | None:
    if len(message) != 3 or not isinstance(message.get("type"), str):
        return None  # id, type and payload: the result messages of both protocols
    key = (getattr(encode, "__func__", encode), tuple(message), message["type"])
    if key in _TEMPLATES:
        return _TEMPLATES[key]
    text = encode(
        {k: _ID if k == "id" else _PAYLOAD if k == "payload" else v for k, v in message.items()}
    )
    id_mark, payload_mark = encode(_ID), encode(_PAYLOAD)
    found = None
    if text.count(id_mark) == 1 and text.count(payload_mark) == 1:
        before, rest = text.split(id_mark)
        between, after = rest.split(payload_mark)
        if payload_mark not in before:  # the id comes first (both protocols)
            found = (before, between, after)
    if len(_TEMPLATES) > 64:
        _TEMPLATES.clear()
    _TEMPLATES[key] = found
    return found


def shared_frame(event: Any, message: dict, encode: Any) -> str | None:
    """The text of a result ``message`` (``next``/``data``) whose payload is a shared result of
    ``event``: the payload serialised once for every socket sharing it, the frame (its
    subscription id) around it, exactly as ``encode(message)`` would write it. None when the
    payload is not shared (encode it as usual)."""
    if event is None:
        return None
    payload = message.get("payload")
    if not isinstance(payload, dict) or len(payload) != 1 or "data" not in payload:
        return None
    results = RESULTS.get(event)
    shared = results.get(id(payload["data"])) if results else None
    if shared is None or shared.result.data is not payload["data"]:
        return None
    template = _template(encode, message)
    if template is None or not isinstance(message.get("id"), str):
        return None
    if shared.text is None:
        shared.text = encode(payload)
        STATS.serialised += 1
    before, between, after = template
    return before + encode(message["id"]) + between + shared.text + after
