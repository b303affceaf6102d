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

__all__ = ["RESULTS", "STATS", "FanOutStats", "Shared", "sending_event", "shared_frame"]

#: The event whose result the current operation (its asyncio task) is about to send: the
#: WebSocket size guard names its cursor when the message is too large, and the adapter sends
#: its shared payload (set by the subscription in the operation's task).
sending_event: ContextVar[Any] = ContextVar("sending_event", default=None)

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
            "events": len(self.by_event),
        }


STATS = FanOutStats()


class Shared:
    """One execution of an event shared by its subscribers: its result (once ``pending``, the
    execution in flight, is done) and its payload serialised once."""

    __slots__ = ("operation", "pending", "result", "text")

    def __init__(self, operation: Any, result: Any) -> None:
        self.operation = operation
        self.result = result
        self.pending: Any = None
        self.text: str | None = None


#: event -> {share key: Shared, id(result.data): Shared}, for as long as the event object lives.
RESULTS: weakref.WeakKeyDictionary[Any, dict] = weakref.WeakKeyDictionary()
#: Stands for the shared payload in a frame encoded around it (see :func:`shared_frame`).
_PLACEHOLDER = "\x00django-steps shared payload\x00"


def shared_frame(event: Any, message: dict, encode: Any) -> str | None:
    """The text of a result ``message`` (``next``/``data``) whose payload is a shared result of
    ``event``: the payload serialised once for every socket sharing it, the frame (its
    subscription id) around it. None when the payload is not shared (encode it as usual)."""
    if event is None:
        return None
    payload = message.get("payload")
    if not isinstance(payload, dict) or len(payload) != 1 or "data" not in payload:
        return None
    results = RESULTS.get(event)
    shared = results.get(id(payload["data"])) if results else None
    if shared is None or shared.result.data is not payload["data"]:
        return None
    if shared.text is None:
        shared.text = encode(payload)
        STATS.serialised += 1
    frame = encode({**message, "payload": _PLACEHOLDER})
    return frame.replace(encode(_PLACEHOLDER), shared.text, 1)
