"""Turns: at most ``SUBSCRIPTION_MAX_EXECUTIONS_PER_USER`` subscription events of one user
executing at once in this process; the user's further events wait their turn, first come first
served.

Every event a subscription sends is executed in the subscription's task, and its resolvers read
the database on Channels' one sync thread, which HTTP queries and every other socket's
handshake share. Without a cap, one user's hundred subscriptions put a hundred executions on
that thread at once: others wait behind all of them, and each of the hundred, its time budget
(``MAX_SECONDS``) counted from its start, spends it waiting for the others. With the cap, a
user's executions queue here, off the thread, and the budget starts when the turn comes
(:meth:`graphql_api.live.execution.SharedEventExecutionContext._run_event`).

Nothing is dropped or reordered: a subscription executes its events one after another (its task
awaits each), and the user's waiting executions are served in the order they came. A result
shared by several subscribers (:mod:`graphql_api.live.execution`) is one execution, counted for
the user whose subscription runs it; the others waiting for that result take no turn. Turns are
per server process, like ``WEBSOCKET_MAX_CONNECTIONS_PER_USER``: keyed by user, or by client
address for a socket nobody is logged in on (the event streams refuse those before any event;
other subscriptions of theirs count per address, as their sockets do).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from graphql_api.settings import graphql_setting

__all__ = ["Held", "Turns", "owner", "running", "turns_for"]


class Turns:
    """The executions of one user in flight (``running``) and those waiting for a turn."""

    __slots__ = ("key", "running", "waiting")

    def __init__(self, key: Any) -> None:
        self.key = key
        self.running = 0
        self.waiting: deque[asyncio.Future] = deque()

    def try_take(self) -> bool:
        """Take a turn now if one is free and nobody of this user waits (no overtaking)."""
        cap = _cap()
        if cap and (self.running >= cap or self.waiting):
            return False
        self.running += 1
        _TURNS[self.key] = self
        return True

    async def take(self) -> None:
        """Wait for a turn. Cancelled while waiting, nothing is taken (and a turn handed over
        meanwhile goes to the next in line)."""
        if self.try_take():
            return
        waiter = asyncio.get_running_loop().create_future()
        self.waiting.append(waiter)
        _TURNS[self.key] = self
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed over just as this one was cancelled: pass it on
            else:
                self._forget(waiter)
            raise

    def release(self) -> None:
        """Hand the turn to the next waiting execution of the user, or free it."""
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the turn passes on: ``running`` stays
                return
        self.running -= 1
        if self.running <= 0 and _TURNS.get(self.key) is self:
            del _TURNS[self.key]

    def _forget(self, waiter: asyncio.Future) -> None:
        try:
            self.waiting.remove(waiter)
        except ValueError:
            pass
        if self.running <= 0 and not self.waiting and _TURNS.get(self.key) is self:
            del _TURNS[self.key]


class Held:
    """A turn taken (or none: ``turns`` None), released once however often :meth:`release` is
    called: an execution may end by its own code or, never started, by its task's callback."""

    __slots__ = ("turns",)

    def __init__(self, turns: Turns | None) -> None:
        self.turns = turns

    def release(self, *_args: Any) -> None:
        turns, self.turns = self.turns, None
        if turns is not None:
            turns.release()


def _cap() -> int:
    return int(graphql_setting("SUBSCRIPTION_MAX_EXECUTIONS_PER_USER") or 0)


#: ("user", pk) or ("address", client address) -> its :class:`Turns`, while it has executions
#: running or waiting.
_TURNS: dict[Any, Turns] = {}


def owner(scope: dict) -> tuple | None:
    """Whom a socket's per-process limits count it for: ``("user", pk)`` when someone is logged
    in, else ``("address", client address)``; None without an address (nothing to count).
    Behind a proxy the address is the proxy's unless the ASGI server takes the client's from
    forwarded headers (daphne --proxy-headers, uvicorn --forwarded-allow-ips)."""
    user = scope.get("user")
    if user is not None and getattr(user, "is_authenticated", False):
        return ("user", user.pk)
    client = scope.get("client")
    return ("address", client[0]) if client else None


def turns_for(context: Any) -> Turns | None:
    """The turns of the user of the socket an operation runs on (``context``: strawberry's);
    None when there is no socket (nothing to count) or no cap."""
    if not _cap():
        return None
    consumer = context.get("ws") if hasattr(context, "get") else None
    key = owner(getattr(consumer, "scope", None) or {})
    if key is None:
        return None
    found = _TURNS.get(key)
    return found if found is not None else Turns(key)


def running(key: Any) -> int:
    """Executions of ``key`` (``("user", pk)``) in flight now in this process."""
    found = _TURNS.get(key)
    return found.running if found is not None else 0
