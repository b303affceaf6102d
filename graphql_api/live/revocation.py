"""Revocation pushed to running subscriptions: logout, deactivation, permission changes.

A subscription re-checks its user every ``SUBSCRIPTION_RECHECK_SECONDS`` (rules that emit no
signal, such as django-rules predicates, are only seen that way). The changes Django does
signal reach every worker at once instead, as channel-layer messages on the event group of
:mod:`graphql_api.live.streams` (each worker's hub is a member; one message per worker):

* ``user_logged_out``: that session has ended. Subscriptions running on it end with
  ``PERMISSION_DENIED`` before any further event, without re-reading anything (the signal is
  sent before Django flushes the session).
* a user saved with ``is_active`` false, or deleted; ``m2m_changed`` of a user's
  ``user_permissions`` or ``groups``, of a group's members or of its ``permissions``: sent when
  the transaction commits. Subscriptions of those users (of every user when the change touches
  a group's permissions or cannot name its users) re-read their user and their permission
  before the next event; those that lost it end with ``PERMISSION_DENIED``.

The message is sent and waited for (at most :data:`SEND_TIMEOUT`) before the logout (or the
commit's ``on_commit`` callbacks) returns, and the worker that sent it applies it at once, so no
event committed after the logout returned is delivered on that session. A worker hears the
message in order with the event announcements that follow it. While the channel layer is down
the other workers fall back to the interval (the failure is logged).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from channels.layers import get_channel_layer
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

from graphql_api.live import streams
from graphql_api.live.events import _background  # one publishing loop per process

logger = logging.getLogger("graphql_api.revocation")

__all__ = ["MESSAGE_TYPE", "connect", "revoke", "session_ended", "user_epoch"]

MESSAGE_TYPE = "django_steps.revoke"
#: Seconds a logout (or a commit) waits for the channel layer to take the message.
SEND_TIMEOUT = 1.0
#: Above this many users, one change asks every subscription to re-check.
MAX_USERS = 1000
_ENDED_KEPT = 10_000

_lock = threading.Lock()
_ended: OrderedDict[str, float] = OrderedDict()  # session keys logged out (newest last)
_epochs: dict[Any, int] = {}  # user pk -> changes seen
_everyone = 0  # changes that concern every user


def session_ended(session_key: str | None) -> bool:
    """Whether this session was logged out (as heard by this process)."""
    return session_key is not None and session_key in _ended


def user_epoch(user_pk: Any) -> tuple[int, int]:
    """Changes heard for this user (and for everyone): a subscription re-checks when it moves."""
    return _everyone, _epochs.get(str(user_pk), 0)


def apply(users: Iterable[Any] | None, session_key: str | None = None) -> None:
    """Record a revocation in this process (any thread). ``users`` None: every user."""
    global _everyone
    with _lock:
        if session_key:
            _ended[session_key] = time.monotonic()
            while len(_ended) > _ENDED_KEPT:
                _ended.popitem(last=False)
        if users is None:
            _everyone += 1
        else:
            for pk in users:
                _epochs[pk] = _epochs.get(pk, 0) + 1  # str: what every channel layer carries


def _on_message(message: dict) -> None:
    """A revocation heard from the channel layer (the hub's receive loop calls it)."""
    users = message.get("users")
    apply(None if users is None else [str(pk) for pk in users], message.get("session"))


def revoke(users: Iterable[Any] | None, session_key: str | None = None) -> None:
    """Apply a revocation here and announce it to every worker; never raises."""
    users = None if users is None else [str(pk) for pk in users]
    if users is not None and len(users) > MAX_USERS:
        users = None
    apply(users, session_key)
    try:
        layer = get_channel_layer()
    except Exception:
        logger.exception("No channel layer to announce a revocation")
        return
    if layer is None:
        return
    message = {"type": MESSAGE_TYPE, "users": users, "session": session_key}
    loop = streams.running_hub_loop() or _background.loop()
    future = asyncio.run_coroutine_threadsafe(layer.group_send(streams.GROUP, message), loop)
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is not None:
        return  # an event loop's thread may not block: sent as soon as it can be
    try:
        future.result(SEND_TIMEOUT)
    except Exception as error:
        future.cancel()
        logger.warning(
            "Could not announce a revocation to the channel layer (%s); other workers will see it "
            "within SUBSCRIPTION_RECHECK_SECONDS.",
            type(error).__name__,
        )


# --------------------------------------------------------------------------- signals


def _on_logout(sender, request=None, user=None, **kwargs) -> None:
    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None)
    if user is None and key is None:
        return
    revoke([user.pk] if user is not None else [], key)


def _after_commit(users: list[Any] | None) -> None:
    transaction.on_commit(lambda: revoke(users), robust=True)


def _on_user_saved(sender, instance, update_fields=None, **kwargs) -> None:
    if update_fields is not None and "is_active" not in update_fields:
        return  # e.g. login's last_login
    if not getattr(instance, "is_active", True):
        _after_commit([instance.pk])


def _on_user_deleted(sender, instance, **kwargs) -> None:
    _after_commit([instance.pk])


def _on_memberships(sender, instance, action, reverse, model, pk_set, **kwargs) -> None:
    """A user's permissions or groups (forward), or the users of a permission or group (reverse)."""
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if not reverse:
        _after_commit([instance.pk])
    else:
        _after_commit(list(pk_set) if pk_set else None)


def _on_group_permissions(sender, instance, action, reverse, model, pk_set, **kwargs) -> None:
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if reverse:  # permission.group_set: which users, nobody knows cheaply
        _after_commit(None)
        return
    members = list(instance.user_set.values_list("pk", flat=True)[: MAX_USERS + 1])
    _after_commit(members if len(members) <= MAX_USERS else None)


def connect() -> None:
    if not apps.is_installed("django.contrib.auth"):
        return  # check E001 says what is missing
    from django.contrib.auth.models import Group  # importable only with the auth app, checked above

    try:
        User = get_user_model()
    except ImproperlyConfigured:
        return
    user_logged_out.connect(_on_logout, dispatch_uid="graphql_api.live.revocation.logout")
    post_save.connect(_on_user_saved, sender=User, dispatch_uid="graphql_api.live.revocation.saved")
    post_delete.connect(
        _on_user_deleted, sender=User, dispatch_uid="graphql_api.live.revocation.deleted"
    )
    for field in ("user_permissions", "groups"):
        through = getattr(getattr(User, field, None), "through", None)
        if through is not None:
            m2m_changed.connect(
                _on_memberships, sender=through, dispatch_uid=f"graphql_api.live.revocation.{field}"
            )
    m2m_changed.connect(
        _on_group_permissions,
        sender=Group.permissions.through,
        dispatch_uid="graphql_api.live.revocation.group_permissions",
    )
    streams.MESSAGE_HANDLERS[MESSAGE_TYPE] = _on_message
