"""The GraphQL side of the authorization rule (:mod:`django_steps.authorization` decides).

Definitions
    ``Workflow`` and its steps, statuses and transitions need ``django_steps.view_workflow``
    where they are entered (``workflows``, ``workflow``, ``node``); the definition parts an
    instance points to are shown with the instance.

Instances and events: enforced on the types
    ``WorkflowInstanceType`` and ``WorkflowEventType`` narrow every queryset that reaches them
    (their ``get_queryset``: top-level lists, nested connections, a host project's resolver
    that returns a queryset) with the visibility rule, and check every single object they are
    asked to show (their ``is_type_of``, which graphql-core calls for each object of the type:
    a host resolver that returns one instance, ``event.instance``). A hidden object is never
    shown: in a list it is filtered out, alone it is a ``NOT_FOUND`` error on its field.

    So that the per-object check costs no query on a list page, rows loaded through
    ``get_queryset`` carry a per-request mark (a constant column), and objects proven visible
    are remembered for the request (:class:`Ledger`); only an object that came from elsewhere
    costs one query, once.

Changes
    Every instance mutation needs ``django_steps.change_workflowinstance``; the instance is
    looked up through the visibility rule (a hidden instance is ``NOT_FOUND``, exactly like a
    missing one); a status that names a permission needs it (``PERMISSION_DENIED``).
    ``createWorkflow`` / ``updateWorkflow`` / ``deleteWorkflow`` need ``add_workflow`` /
    ``change_workflow`` / ``delete_workflow``.

Over a WebSocket
    A socket outlives the checks made when it opened, and every operation on it (query,
    mutation, subscription) runs in the event loop, where no ORM call may run.

    * **The user is the socket's user as of now.** Before each operation the protocol handler
      (:mod:`graphql_api.live.routing`) calls :func:`refresh_socket_user`: the user is read again
      through the socket's session (a logout deletes it, a password change invalidates its
      hash) and must still be active; otherwise the socket is anonymous from then on (queries
      see nothing, mutations are ``PERMISSION_DENIED``), exactly as an HTTP request with that
      cookie. The answer is kept ``SUBSCRIPTION_RECHECK_SECONDS`` (2) per user and session and
      shared by every socket of the process (:class:`Decisions`), so a busy socket costs one
      check per interval, not one per operation. :func:`current_user` then reads the refreshed
      ``scope["user"]``: it stays the one place every resolver asks. Subscriptions keep
      re-checking while they run (:mod:`graphql_api.live.subscriptions`), through the same decisions.
      A mutation does not rely on that interval: it reads the user again at once
      (:func:`recheck_socket_user`, one query in its worker thread), so no change is ever
      written for a session that has ended.
    * **Each operation has its own ledger** (:func:`begin_socket_operation`): what one
      operation proved visible is not trusted by the next, which may run for another user
      (``login`` / ``logout`` on the socket) or after the rule changed its answer.
    * **No query in the event loop.** Resolvers that touch the database run in a worker thread
      (strawberry-django's fields do; plain ones are wrapped with ``django_resolver``) and vouch
      for the instances they loaded through the visibility rule, so ``is_type_of`` answers from
      the ledger. An object of unknown visibility met in the event loop (a host resolver's)
      gets an awaitable answer that checks it in a worker thread (:func:`instance_is_visible`).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from importlib import import_module
from typing import Any

from django.conf import settings
from django.db.models import IntegerField, QuerySet, Value
from strawberry.types import Info
from strawberry_django.auth.utils import get_current_user

from django_steps import authorization
from django_steps.models import WorkflowInstance

VIEW_WORKFLOW = "django_steps.view_workflow"
VIEW_INSTANCE = authorization.VIEW_INSTANCE
CHANGE_INSTANCE = authorization.CHANGE_INSTANCE
ADD_WORKFLOW = "django_steps.add_workflow"
CHANGE_WORKFLOW = "django_steps.change_workflow"
DELETE_WORKFLOW = "django_steps.delete_workflow"

#: The column that marks rows loaded through our types' get_queryset in this request.
MARK = "_django_steps_seen"


def current_user(info: Info) -> Any:
    """The request's user (``AnonymousUser`` when nobody is logged in), HTTP or WebSocket."""
    try:
        return get_current_user(info)
    except Exception:  # no request/user in this context at all
        return None


def has_perm(info: Info, perm: str) -> bool:
    user = current_user(info)
    if (
        user is None
        or not getattr(user, "is_authenticated", False)
        or not getattr(user, "is_active", False)
    ):
        return False
    return user.has_perm(perm)


def visible(queryset: QuerySet, info: Info, perm: str) -> QuerySet:
    """``queryset`` if the user has ``perm``, else an empty one (no query is run for it)."""
    return queryset if has_perm(info, perm) else queryset.none()


class Ledger:
    """What this request (or subscription) already knows about instance visibility."""

    __slots__ = ("mark", "visible", "hidden", "objects")

    def __init__(self) -> None:
        self.mark = secrets.randbits(62)
        self.visible: set[int] = set()
        self.hidden: set[int] = set()
        self.objects: dict[tuple[int, str], bool] = {}  # (content type, object id) -> may view


_LEDGER = "_django_steps_ledger"

#: The ledger of the WebSocket operation running in this task (its resolvers' threads see it
#: too: asgiref copies the context). HTTP requests keep theirs on the request's context.
_operation_ledger: ContextVar[Ledger | None] = ContextVar(
    "django_steps_operation_ledger", default=None
)


def begin_socket_operation() -> None:
    """Give the WebSocket operation of the current task its own ledger (call it in the
    operation's task, before it executes: :mod:`graphql_api.live.routing` does)."""
    _operation_ledger.set(Ledger())


def ledger(info: Info) -> Ledger:
    found = _operation_ledger.get()
    if found is not None:
        return found
    context = info.context
    if isinstance(context, dict):
        found = context.get(_LEDGER)
        if found is None:
            found = context[_LEDGER] = Ledger()
        return found
    found = getattr(context, _LEDGER, None)
    if found is None:
        found = Ledger()
        setattr(context, _LEDGER, found)
    return found


def _marked(queryset: QuerySet, info: Info) -> QuerySet:
    return queryset.annotate(**{MARK: Value(ledger(info).mark, output_field=IntegerField())})


def visible_instances(queryset: QuerySet, info: Info) -> QuerySet:
    """Instances of ``queryset`` the user may see, marked as checked for this request."""
    return _marked(authorization.visible_instances(current_user(info), queryset), info)


def visible_events(queryset: QuerySet, info: Info) -> QuerySet:
    """Events of ``queryset`` whose instance the user may see, marked as checked."""
    return _marked(authorization.visible_events(current_user(info), queryset), info)


def instance_is_visible(info: Info, instance_id: int, obj: Any = None) -> bool | Awaitable[bool]:
    """Whether the user may see instance ``instance_id`` (one query the first time per request,
    none for a row loaded through :func:`visible_instances` / :func:`visible_events` or
    vouched for). Called in the event loop (``is_type_of`` over a WebSocket) about an instance
    it does not know yet, it returns an awaitable that runs the query in a worker thread."""
    book = ledger(info)
    if obj is not None and getattr(obj, MARK, None) == book.mark:
        book.visible.add(instance_id)
        return True
    if instance_id in book.visible:
        return True
    if instance_id in book.hidden:
        return False
    user = current_user(info)

    def check() -> bool:
        seen = authorization.visible_instances(
            user, WorkflowInstance.objects.filter(pk=instance_id)
        ).exists()
        (book.visible if seen else book.hidden).add(instance_id)
        return seen

    return Deferred(check) if _in_event_loop() else check()


def require_visible(info: Info, instance_id: int, obj: Any, hidden: Callable[[], Exception]) -> Any:
    """``is_type_of`` of an instance or event: True, or raise ``hidden()`` — or an awaitable
    doing the same when the answer needs a query and this runs in the event loop."""
    seen = instance_is_visible(info, instance_id, obj)
    if isinstance(seen, Deferred):
        check = seen.compute

        def required() -> bool:
            if not check():
                raise hidden()
            return True

        return Deferred(required)
    if not seen:
        raise hidden()
    return True


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class Deferred:
    """An awaitable that runs ``compute`` in Django's worker thread when awaited, and not before
    (strawberry resolves a union's member by testing ``is_type_of`` for truth without awaiting
    it; graphql-core awaits it when completing the object)."""

    __slots__ = ("compute",)

    def __init__(self, compute: Callable[[], Any]) -> None:
        self.compute = compute

    def __await__(self):
        from channels.db import database_sync_to_async

        return database_sync_to_async(self.compute)().__await__()


def vouch(info: Info, instance_id: int) -> None:
    """Record that ``instance_id`` is visible (e.g. the subscription checked it for this event)."""
    ledger(info).visible.add(instance_id)


def may_view_attached_object(info: Info, instance: WorkflowInstance) -> bool:
    """Whether the viewer may view the object ``instance`` is attached to (its stored context
    is that object's data). A global ``view_<model>`` permission answers without loading the
    object; otherwise each distinct object is loaded and checked once per request (it is
    already loaded when the instance's ``content_object`` was prefetched)."""
    from django.contrib.contenttypes.models import ContentType

    user = current_user(info)
    key = (instance.content_type_id, instance.object_id)
    book = ledger(info)
    known = book.objects.get(key)
    if known is not None:
        return known
    content_type = ContentType.objects.get_for_id(instance.content_type_id)
    perm = f"{content_type.app_label}.view_{content_type.model}"
    if instance.pk in book.visible and authorization.seeing_an_instance_is_viewing_its_object():
        allowed = True  # the rule that showed the instance already decided, in SQL
    elif user is not None and getattr(user, "is_active", False) and user.has_perm(perm):
        allowed = True
    else:
        allowed = authorization.may_view_object(user, instance.content_object)
    book.objects[key] = allowed
    return allowed


def visible_users(info: Info) -> QuerySet:
    """The user accounts the viewer may read by ID (``node``): their own, or every one with
    ``auth.view_user``. (Users shown as an event's ``actor`` are shown with the event.)"""
    from django.contrib.auth import get_user_model

    users = get_user_model()._default_manager.all()
    user = current_user(info)
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return users.none()
    if user.has_perm(f"{users.model._meta.app_label}.view_{users.model._meta.model_name}"):
        return users
    return users.filter(pk=user.pk)


# --------------------------------------------------------------------------- WebSocket users


def reload_user(user_pk: Any, session_key: str | None) -> Any:
    """The user as the database and the session say now: None when the session ended (logout,
    flushed, expired, password changed), the account is gone or inactive. Sync (a worker thread)."""
    from django.contrib.auth import get_user, get_user_model

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

    async def get(self, key: tuple, ttl: float, compute: Callable[[], Any]) -> Any:
        from channels.db import database_sync_to_async

        from graphql_api.live.revocation import user_epoch

        epoch = user_epoch(key[1])
        found = self.kept.get(key)
        if found is not None and found[0] > time.monotonic() and found[2] == epoch:
            return found[1]
        pending = self.pending.get(key)
        if pending is not None and pending[1] == epoch:
            future = pending[0]
        else:
            future = asyncio.ensure_future(database_sync_to_async(compute)())
            self.pending[key] = (future, epoch)
            future.add_done_callback(lambda done: self._keep(key, ttl, done, epoch))
        return await asyncio.shield(future)

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
    from graphql_api.security.extensions import (
        graphql_setting,  # not at import: extensions reads settings
    )

    return float(graphql_setting("SUBSCRIPTION_RECHECK_SECONDS"))


async def user_now(user_pk: Any, session_key: str | None) -> Any:
    """:func:`reload_user`, decided at most once per ``SUBSCRIPTION_RECHECK_SECONDS`` per
    user and session for the whole process."""
    return await DECISIONS.get(
        ("user", user_pk, session_key), recheck_seconds(), lambda: reload_user(user_pk, session_key)
    )


async def refresh_socket_user(scope: dict) -> Any:
    """Make ``scope["user"]`` the socket's user as of now (see the module docstring): the same
    user re-read, or ``AnonymousUser`` once the session ended or the user was deactivated.
    Called before each operation on a socket; an anonymous socket costs nothing."""
    from django.contrib.auth.models import AnonymousUser

    user = scope.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        return user
    session_key = getattr(scope.get("session"), "session_key", None)
    from graphql_api.live import revocation

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
    from django.contrib.auth.models import AnonymousUser

    scope = socket_scope(info)
    if scope is None:
        return
    user = scope.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        return
    fresh = reload_user(user.pk, getattr(scope.get("session"), "session_key", None))
    if scope.get("user") is user:
        scope["user"] = fresh if fresh is not None else AnonymousUser()
