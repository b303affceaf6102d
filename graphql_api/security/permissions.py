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
      (:mod:`graphql_api.live.handlers`) calls :func:`refresh_socket_user`: the user is read again
      through the socket's session (a logout deletes it, a password change invalidates its
      hash) and must still be active; otherwise the socket is anonymous from then on (queries
      see nothing, mutations are ``PERMISSION_DENIED``), exactly as an HTTP request with that
      cookie. The answer is kept ``SUBSCRIPTION_RECHECK_SECONDS`` (2) per user and session and
      shared by every socket of the process (:class:`Decisions`), so a busy socket costs one
      check per interval, not one per operation. :func:`current_user` then reads the refreshed
      ``scope["user"]``: it stays the one place every resolver asks. Subscriptions keep
      re-checking while they run (:mod:`graphql_api.live.subscriptions`), through the same
      decisions. These functions live in :mod:`graphql_api.live.socket_auth`. A mutation does
      not rely on that interval: it reads the user again at once (:func:`recheck_socket_user`,
      one query in its worker thread), so no change is ever written for a session that has
      ended.
    * **Each operation has its own ledger** (:func:`begin_socket_operation`): what one
      operation proved visible is not trusted by the next, which may run for another user
      (``login`` / ``logout`` on the socket) or after the rule changed its answer; and each
      event of a subscription starts it over (:func:`begin_event`), as each HTTP request does.
    * **No query in the event loop.** Resolvers that touch the database run in a worker thread
      (strawberry-django's fields do; plain ones are wrapped with ``django_resolver``) and vouch
      for the instances they loaded through the visibility rule, so ``is_type_of`` answers from
      the ledger. An object of unknown visibility met in the event loop (a host resolver's)
      gets an awaitable answer that checks it in a worker thread (:func:`instance_is_visible`).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db.models import IntegerField, QuerySet, Value
from strawberry.types import Info
from strawberry_django.auth.utils import get_current_user

from django_steps import authorization
from django_steps.models import WorkflowEvent, WorkflowInstance

# The WebSocket users (moved to graphql_api.live.socket_auth), importable from here as before.
from graphql_api.live.socket_auth import (  # noqa: F401
    DECISIONS,
    Decisions,
    recheck_seconds,
    recheck_socket_user,
    refresh_socket_user,
    reload_user,
    socket_scope,
    user_now,
)

VIEW_WORKFLOW = "django_steps.view_workflow"
VIEW_INSTANCE = authorization.VIEW_INSTANCE
CHANGE_INSTANCE = authorization.CHANGE_INSTANCE
ADD_WORKFLOW = "django_steps.add_workflow"
CHANGE_WORKFLOW = "django_steps.change_workflow"
DELETE_WORKFLOW = "django_steps.delete_workflow"
MIGRATE_INSTANCE = "django_steps.migrate_workflowinstance"

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

    __slots__ = ("mark", "visible", "hidden", "objects", "asking", "pages")

    def __init__(self) -> None:
        self.mark = secrets.randbits(62)
        self.visible: set[int] = set()
        self.hidden: set[int] = set()
        self.objects: dict[tuple[int, str], bool] = {}  # (content type, object id) -> may view
        #: The same, being asked in a worker thread (attached_context), by the same key.
        self.asking: dict[tuple[int, str], asyncio.Future] = {}
        #: Nested connection pages prefetched through the visibility rule in this operation, by
        #: the attribute they are prefetched to (graphql_api.api.nested_pages.NestedPage).
        self.pages: dict[str, Any] = {}

    def forget(self) -> None:
        """Start over (a subscription's next event: nothing proved for the last one holds)."""
        self.__init__()


_LEDGER = "_django_steps_ledger"

#: The ledger of the WebSocket operation running in this task (its resolvers' threads see it
#: too: asgiref copies the context). HTTP requests keep theirs on the request's context.
_operation_ledger: ContextVar[Ledger | None] = ContextVar(
    "django_steps_operation_ledger", default=None
)


def begin_socket_operation() -> None:
    """Give the WebSocket operation of the current task its own ledger (call it in the
    operation's task, before it executes: :mod:`graphql_api.live.handlers` does)."""
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
    # The answer goes to the sets of the event that asked: a subscription's next event starts
    # new ones (Ledger.forget), which an answer arriving late must not reach.
    visible, hidden = book.visible, book.hidden

    def check() -> bool:
        seen = authorization.visible_instances(
            user, WorkflowInstance.objects.filter(pk=instance_id)
        ).exists()
        (visible if seen else hidden).add(instance_id)
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
        return database_sync_to_async(self.compute)().__await__()


def vouch(info: Info, instance_id: int) -> None:
    """Record that ``instance_id`` is visible (e.g. the subscription checked it for this event)."""
    ledger(info).visible.add(instance_id)


def begin_event(info: Info, instance_id: int) -> None:
    """A subscription's next event, whose instance the stream has just checked: its execution
    starts from a ledger of its own, as an HTTP request does. The operation's ledger object
    starts over with new sets rather than being replaced (the stream runs in a task of its own,
    whose context the execution does not see), so what an earlier event proved (an instance,
    an attached object) is asked again after a revocation; an answer still being asked for the
    earlier event goes to that event's sets, not the new ones."""
    book = ledger(info)
    book.forget()
    book.visible.add(instance_id)


def may_view_attached_object(info: Info, instance: WorkflowInstance) -> bool:
    """Whether the viewer may view the object ``instance`` is attached to (its stored context
    is that object's data). A global ``view_<model>`` permission answers without loading the
    object; otherwise each distinct object is loaded and checked once per request (it is
    already loaded when the instance's ``content_object`` was prefetched)."""
    book = ledger(info)
    known = _decided(book, instance)
    if known is not None:
        return known
    decided = book.objects  # the asking event's: one asked before a next event began stays there
    user = current_user(info)
    content_type = ContentType.objects.get_for_id(instance.content_type_id)
    perm = f"{content_type.app_label}.view_{content_type.model}"
    if user is not None and getattr(user, "is_active", False) and user.has_perm(perm):
        allowed = True
    else:
        allowed = authorization.may_view_object(user, instance.content_object)
    decided[(instance.content_type_id, instance.object_id)] = allowed
    return allowed


def _decided(book: Ledger, instance: WorkflowInstance) -> bool | None:
    """What this request already knows of the viewer and ``instance``'s object, without a query
    (None: nothing yet)."""
    key = (instance.content_type_id, instance.object_id)
    known = book.objects.get(key)
    if known is None and instance.pk in book.visible:
        if authorization.seeing_an_instance_is_viewing_its_object():
            known = book.objects[key] = True  # the rule that showed the instance decided, in SQL
    return known


def attached_context(info: Info, event: WorkflowEvent) -> Any:
    """``event.context`` if the viewer may view the object its instance is attached to
    (:func:`may_view_attached_object`), else None. Answered in place when that needs no query
    (no context, or the object already decided in this request: every row after the first of
    a history); in the event loop, a question that needs one is an awaitable that asks it in
    Django's worker thread. So a page of rows hops to that thread once per object, not once
    per row (a subscription event's 6,000 rows spent most of their time hopping)."""
    if event.context is None:
        return None
    if WorkflowEvent.instance.is_cached(event):
        known = _decided(ledger(info), event.instance)
        if known is not None:
            return event.context if known else None
    if not _in_event_loop():
        return event.context if may_view_attached_object(info, event.instance) else None
    if not WorkflowEvent.instance.is_cached(event):
        return Deferred(lambda: attached_context(info, event))
    # The rows of a page resolve side by side: each would ask before the first answer is in
    # the ledger. One question per object, awaited by all its rows.
    book = ledger(info)
    instance = event.instance
    key = (instance.content_type_id, instance.object_id)
    asked = book.asking.get(key)
    if asked is None:
        asked = book.asking[key] = asyncio.ensure_future(
            database_sync_to_async(may_view_attached_object)(info, instance)
        )
    return _context_once(asked, event.context)


async def _context_once(asked: asyncio.Future, context: Any) -> Any:
    return context if await asyncio.shield(asked) else None


def visible_users(info: Info) -> QuerySet:
    """The user accounts the viewer may read by ID (``node``): their own, or every one with
    ``auth.view_user``. (Users shown as an event's ``actor`` are shown with the event.)"""
    users = get_user_model()._default_manager.all()
    user = current_user(info)
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return users.none()
    if user.has_perm(f"{users.model._meta.app_label}.view_{users.model._meta.model_name}"):
        return users
    return users.filter(pk=user.pk)
