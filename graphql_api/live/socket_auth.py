"""The user of a WebSocket as of now: its session and account re-read before each operation and
each change, the answers shared by the process (see "Over a WebSocket" in
:mod:`graphql_api.security.permissions`, which re-exports these names)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from importlib import import_module
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user, get_user_model
from django.contrib.auth.models import AnonymousUser
from strawberry.types import Info

from graphql_api.live import revocation
from graphql_api.settings import graphql_setting

__all__ = [
    "DECISIONS",
    "Decisions",
    "recheck_seconds",
    "recheck_socket_user",
    "refresh_socket_user",
    "reload_user",
    "socket_scope",
    "user_now",
]


def reload_user(user_pk: Any, session_key: str | None) -> Any:
    """The user as the database and the session say now: None when the session ended (logout,
    flushed, expired, password changed), the account is gone or inactive. Sync (a worker thread)."""
    if session_key is None:
        user = get_user_model()._default_manager.filter(pk=user_pk).first()
    else:

        class _Request:  # what django.contrib.auth.get_user reads
            session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)

        user = get_user(_Request())
        if getattr(user, "pk", None) != user_pk:
            return None
    return user if user is not None and getattr(user, "is_active", False) else None


class Decisions:
    """Access decisions of this process, each kept ``ttl`` seconds and computed once (in a
    worker thread) however many operations and subscriptions ask at the same time. Keys start
    with ``(kind, user pk)``: a decision taken before a revocation pushed for that user
    (:mod:`graphql_api.live.revocation`) is not used after it."""

    def __init__(self) -> None:
        self.kept: dict[tuple, tuple[float, Any, Any]] = {}
        self.pending: dict[tuple, tuple[asyncio.Future, Any]] = {}

    async def get(
        self, key: tuple, ttl: float, compute: Callable[[], Any], *, ahead: float = 0.0
    ) -> Any:
        """The decision of ``key``; with ``ahead``, one kept for less than that many seconds is
        taken again (a caller waking shortly before decisions expire keeps them fresh)."""
        epoch = revocation.user_epoch(key[1])
        found = self.kept.get(key)
        if found is not None and found[0] - ahead > time.monotonic() and found[2] == epoch:
            return found[1]
        return await asyncio.shield(self._compute(key, ttl, compute, epoch))

    def _compute(self, key: tuple, ttl: float, compute: Callable[[], Any], epoch: Any) -> Any:
        pending = self.pending.get(key)
        if pending is not None and pending[1] == epoch:
            return pending[0]
        future = asyncio.ensure_future(database_sync_to_async(compute)())
        self.pending[key] = (future, epoch)
        future.add_done_callback(lambda done: self._keep(key, ttl, done, epoch))
        return future

    def expiry(self, keys: list[tuple]) -> float:
        """Until when (``time.monotonic()``) every decision of ``keys`` is kept (0: one is not)."""
        until = float("inf")
        for key in keys:
            found = self.kept.get(key)
            if found is None or found[2] != revocation.user_epoch(key[1]):
                return 0.0
            until = min(until, found[0])
        return until

    def forget(self, *prefix: Any) -> None:
        """Drop the kept decisions whose key starts with ``prefix`` (e.g. after a logout)."""
        for key in [k for k in self.kept if k[: len(prefix)] == prefix]:
            self.kept.pop(key, None)

    def _keep(self, key: tuple, ttl: float, done: asyncio.Future, epoch: Any) -> None:
        if self.pending.get(key, (None,))[0] is done:
            del self.pending[key]
        if not done.cancelled() and done.exception() is None:
            if len(self.kept) > 50_000:
                self.kept.clear()
            self.kept[key] = (time.monotonic() + ttl, done.result(), epoch)


DECISIONS = Decisions()


def recheck_seconds() -> float:
    return float(graphql_setting("SUBSCRIPTION_RECHECK_SECONDS"))


async def user_now(user_pk: Any, session_key: str | None, *, ahead: float = 0.0) -> Any:
    """:func:`reload_user`, decided at most once per ``SUBSCRIPTION_RECHECK_SECONDS`` per
    user and session for the whole process (``ahead``: see :meth:`Decisions.get`)."""
    return await DECISIONS.get(
        ("user", user_pk, session_key),
        recheck_seconds(),
        lambda: reload_user(user_pk, session_key),
        ahead=ahead,
    )


async def refresh_socket_user(scope: dict) -> Any:
    """Make ``scope["user"]`` the socket's user as of now (see the module docstring): the same
    user re-read, or ``AnonymousUser`` once the session ended or the user was deactivated.
    Called before each operation on a socket; an anonymous socket costs nothing."""
    user = scope.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        return user
    session_key = getattr(scope.get("session"), "session_key", None)
    if revocation.session_ended(session_key):
        fresh = None
    else:
        fresh = await user_now(user.pk, session_key)
    if scope.get("user") is user:  # not replaced meanwhile (login / logout on this socket)
        scope["user"] = fresh if fresh is not None else AnonymousUser()
    return scope["user"]


def socket_scope(info: Info) -> dict | None:
    """The scope of the WebSocket ``info``'s operation came over (None over HTTP)."""
    context = info.context
    consumer = context.get("ws") if isinstance(context, dict) else None
    return getattr(consumer, "scope", None)


def recheck_socket_user(info: Info) -> None:
    """Before a change over a WebSocket: read the socket's user again *now*, not as decided up
    to ``SUBSCRIPTION_RECHECK_SECONDS`` ago, so no write runs for a session that has ended.
    Sync: the mutation's worker thread. Nothing to do over HTTP or for an anonymous socket."""
    scope = socket_scope(info)
    if scope is None:
        return
    user = scope.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        return
    fresh = reload_user(user.pk, getattr(scope.get("session"), "session_key", None))
    if scope.get("user") is user:
        scope["user"] = fresh if fresh is not None else AnonymousUser()
