"""Shared fan-out: one execution per event for every subscriber that would get the same result.

A dashboard fleet subscribes many sockets with one document; graphql-core executes the
selection set once per socket per event, and with a thousand sockets that is the whole budget
of a worker (``bench/subscriptions.py``). This executor (passed to strawberry as
``execution_context_class``) executes a workflow event once per **(document, variables,
visibility class)** and hands the same result to every subscription that shares them; the
sockets then send the same serialised payload (:func:`graphql_api.live.shared.shared_frame`),
each in its own frame.

The visibility class
====================

Users in one class see exactly the same instances (:func:`django_steps.authorization.
visibility_class`, the hook beside the visibility rule; opaque users are a class of their own).
So a document whose fields depend only on what the viewer may see gives every member of the
class the same result. Fields that read the viewer beyond that are declared once, in
:data:`VIEWER_DEPENDENT` (``viewerCan``, ``context``, ``subject``, ``me``, ``inbox``): a document
selecting one of them anywhere (fragments included) is executed per user, as before. Whether a
subscriber may see the event at all is checked per subscriber, against its class
(:class:`graphql_api.live.subscriptions.Access`), before anything is executed for it.

The first subscriber of a key executes the event; the others wait for that execution if it is
in flight, then send its result as is: on graphql-transport-ws straight from the subscription
(:func:`send_shared`: no per-event executor, result handling or extension hooks run for them,
unless a schema extension adds ``extensions`` to results), on graphql-ws through strawberry with
the shared result. Only results without errors are shared; they are read-only afterwards. The
results are kept beside the event object for as long as it lives: the
:class:`~graphql_api.live.hub.EventHub` hands one object to every stream of the process, and it
is freed once every stream has sent it.
:data:`graphql_api.live.shared.STATS` counts executions (per event too): the bench and the tests
read it.

What one event costs
====================

Each event executes under the time budget of a query (``MAX_SECONDS``,
:mod:`graphql_api.security.budget`), counted from when its execution starts: over it, the result
is one ``TIMEOUT`` error (nothing of a result cut short is kept) and the stream goes on with the
next event. At most ``SUBSCRIPTION_MAX_EXECUTIONS_PER_USER`` events of one user execute at once
(:mod:`graphql_api.live.turns`): the others wait their turn before their budget starts. A
shared execution takes one turn, its leader's, and is registered for its key only once that
turn came, so the key's other subscribers never wait behind the leader's queue. A shared
execution that runs over is the ``TIMEOUT`` of every subscriber of its key: not executed again
for each, which would cost each the whole budget. And each event executes with
the operation's queryset optimizer, so its nested lists and ``instanceCounts`` are read in
batched queries, as over HTTP (strawberry ends the optimizer's ``on_execute`` once the stream is
set up, before any event).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from graphql import (
    ExecutionResult,
    FieldNode,
    OperationType,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    get_named_type,
    is_abstract_type,
    visit,
)
from graphql.pyutils import is_awaitable
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry_django.optimizer import optimizer

from django_steps.models import WorkflowEvent
from graphql_api.live.direct import settle
from graphql_api.live.shared import FANS, RESULTS, STATS, Shared, sharing_class
from graphql_api.live.turns import Held, Turns, turns_for
from graphql_api.security.budget import TIMEOUT, Budget, time_budget, timeout_error, within_budget
from graphql_api.settings import graphql_setting

__all__ = [
    "VIEWER_DEPENDENT",
    "SharedEventExecutionContext",
    "selects_viewer_dependent",
    "send_shared",
    "share_base",
    "share_key",
    "shares_directly",
]

#: The fields whose value depends on who asks beyond what they may see, as (GraphQL type, field):
#: the one list. A subscription document selecting any of them is executed per user.
VIEWER_DEPENDENT: frozenset[tuple[str, str]] = frozenset(
    {
        ("WorkflowInstance", "viewerCan"),  # the viewer's permissions
        ("WorkflowInstance", "subject"),  # shown to who may view the object
        ("WorkflowEvent", "context"),  # shown to who may view the object
        ("User", "inbox"),  # the viewer's own work items
        ("Query", "me"),
    }
)

#: id(operation node) -> (the node, whether it selects a viewer-dependent field); the entry keeps
#: the node alive, so its id is not reused while the entry exists.
_DEPENDENT: dict[int, tuple[Any, bool]] = {}


def selects_viewer_dependent(schema: Any, operation: Any, fragments: dict) -> bool:
    """Whether ``operation`` selects a :data:`VIEWER_DEPENDENT` field anywhere (its selection
    and every fragment of its document, through interfaces and unions too)."""
    found = _DEPENDENT.get(id(operation))
    if found is not None and found[0] is operation:
        return found[1]
    type_info = TypeInfo(schema)
    hit = False

    class _Finder(Visitor):
        def enter_field(self, node: FieldNode, *_args: Any) -> None:
            nonlocal hit
            parent = type_info.get_parent_type()
            if parent is None:
                return
            parent = get_named_type(parent)
            names = (
                [t.name for t in schema.get_possible_types(parent)]
                if is_abstract_type(parent)
                else [parent.name]
            )
            if any((name, node.name.value) in VIEWER_DEPENDENT for name in names):
                hit = True

    for node in (operation, *fragments.values()):
        visit(node, TypeInfoVisitor(type_info, _Finder()))
    if len(_DEPENDENT) > 1000:
        _DEPENDENT.clear()
    _DEPENDENT[id(operation)] = (operation, hit)
    return hit


def _user_key(context: Any) -> tuple | None:
    """Who the result is computed for (permissions shape it); None when unknown: do not share."""
    consumer = context.get("ws") if hasattr(context, "get") else None
    scope = getattr(consumer, "scope", None) or {}
    user = scope.get("user")
    if user is None:
        return None
    return ("user", getattr(user, "pk", None), bool(getattr(user, "is_authenticated", False)))


def share_base(schema: Any, operation: Any, fragments: dict, variables: Any) -> tuple | None:
    """What every subscriber sharing results with this subscription has in common: (the
    operation node, its variables, whether it reads the viewer); None: share nothing."""
    if operation.operation is not OperationType.SUBSCRIPTION:
        return None
    try:
        variables = json.dumps(variables, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return None
    # The operation node's identity: strawberry's parser cache gives identical documents the
    # same node (graphql-core hashes nodes structurally, which is slow). Entries keep the node
    # alive, so its id cannot be reused while they exist.
    return (id(operation), variables, selects_viewer_dependent(schema, operation, fragments))


def share_key(base: tuple | None, context: Any) -> tuple | None:
    """The key of the result of one subscriber (``base`` from :func:`share_base`): its
    visibility class (:data:`sharing_class`), or its user when the class is opaque or the
    document reads the viewer."""
    if not base:
        return None
    operation, variables, per_user = base
    visibility = None if per_user else sharing_class.get()
    if visibility is None:
        visibility = _user_key(context)
    return None if visibility is None else (operation, variables, visibility)


class SharedEventExecutionContext(StrawberryGraphQLCoreExecutionContext):
    _share_base: tuple | None | bool = False  # False: not computed yet

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The operation's queryset optimizer: strawberry sets it in ``on_execute``, which for a
        # subscription ends once the stream is set up, before any event executes. Each event
        # puts it back (the per-event executors are copies of this one): without it, every
        # nested list and ``instanceCounts`` of an event was read one query per object.
        self._optimizer = optimizer.get()

    def build_per_event_executor(self, payload: Any) -> Any:
        # Once per subscription (the per-event executors are copies of this one).
        if self._share_base is False:
            self._share_base = share_base(
                self.schema,
                self.operation,
                self.fragment_definitions,
                getattr(self.variable_values, "coerced", self.variable_values),
            )
        return super().build_per_event_executor(payload)

    def execute_operation(self, *args: Any, **kwargs: Any) -> Any:
        if self.operation.operation is not OperationType.SUBSCRIPTION:
            return super().execute_operation(*args, **kwargs)
        event = self.root_value
        if not isinstance(event, WorkflowEvent):
            return self._run_event(args, kwargs)
        key = share_key(self._share_base or None, self.context_value)
        if key is None:
            return self._execute(event, args, kwargs)
        results = RESULTS.get(event)
        if results is None:
            results = RESULTS[event] = {}
        entry = results.get(key)
        if entry is not None and entry.operation is self.operation:
            if entry.pending is None:
                STATS.shared += 1
                return entry.result
            return self._shared(entry, key, event, args, kwargs, first=False)
        turns = turns_for(self.context_value)
        if turns is not None and not turns.try_take():
            # The hub's parked subscribers of the key would wait for this leader's result, so
            # behind this user's queue: they take the event the usual way instead.
            settle(event.cursor, key)
            return self._lead_later(turns, event, key, args, kwargs)
        return self._lead(Held(turns), event, key, args, kwargs)

    async def _lead_later(
        self, turns: Turns, event: WorkflowEvent, key: tuple, args: tuple, kwargs: dict
    ) -> Any:
        """Execute for ``key`` once the user's turn comes (:mod:`graphql_api.live.turns`):
        taken before anything is registered for the key, so the other subscribers of the key
        never wait behind this user's queue. Meanwhile one of them may have executed it, or be
        executing it: then this one follows, and gives its turn back."""
        await turns.take()
        held = Held(turns)
        try:
            results = RESULTS.get(event)
            if results is None:
                results = RESULTS[event] = {}
            entry = results.get(key)
            if entry is not None and entry.operation is self.operation:
                held.release()
                if entry.pending is None:
                    STATS.shared += 1
                    return entry.result
                return await self._shared(entry, key, event, args, kwargs, first=False)
            result = self._lead(held, event, key, args, kwargs)
        except BaseException:
            held.release()
            raise
        return await result if is_awaitable(result) else result

    def _lead(self, held: Held, event: WorkflowEvent, key: tuple, args: tuple, kwargs: dict) -> Any:
        """Execute for every subscriber of ``key`` (the user's turn ``held``)."""
        results = RESULTS.get(event)
        if results is None:
            results = RESULTS[event] = {}
        result = self._execute(event, args, kwargs, held)
        if not is_awaitable(result):
            if shareable(result):
                results[key] = Shared(self.operation, result)
                if not result.errors:
                    results[id(result.data)] = results[key]
                settle(event.cursor, key)  # the sinks waiting for it (graphql_api.live.direct)
            return result
        # In flight: the subscribers of the same key arriving meanwhile wait for this one (their
        # operations run side by side, each awaiting its resolvers).
        entry = results[key] = Shared(self.operation, None)
        entry.pending = asyncio.ensure_future(result)
        entry.pending.add_done_callback(lambda done: _settle(results, key, entry, done, event))
        # Cancelled before it started, the execution never runs its own release.
        entry.pending.add_done_callback(held.release)
        return self._shared(entry, key, event, args, kwargs, first=True)

    def _execute(
        self, event: WorkflowEvent, args: tuple, kwargs: dict, held: Held | None = None
    ) -> Any:
        STATS.executed(event.cursor)
        return self._run_event(args, kwargs, held)

    def _run_event(self, args: tuple, kwargs: dict, held: Held | None = None) -> Any:
        """Execute one event of the subscription in a turn of its user (``held``, or one taken
        here: :mod:`graphql_api.live.turns`), under a time budget of its own (``MAX_SECONDS``,
        as a query: see :mod:`graphql_api.security.budget`) counted from when the turn comes,
        with the operation's optimizer; over budget, the result is one ``TIMEOUT`` error (no
        data) and the stream goes on. The budget and the optimizer are context variables: the
        worker threads the resolvers query in (``sync_to_async``) run in a copy of this
        context. Only an execution that must wait for its turn returns a coroutine for that."""
        if held is None:
            turns = turns_for(self.context_value)
            if turns is not None and not turns.try_take():
                return self._run_later(turns, args, kwargs)
            held = Held(turns)
        try:
            with (
                time_budget(graphql_setting("MAX_SECONDS")) as budget,
                _optimizing(self._optimizer),
            ):
                result = super().execute_operation(*args, **kwargs)
        except BaseException:
            held.release()
            raise
        if is_awaitable(result):
            return self._finish_event(result, budget, held)
        held.release()
        return _within_budget(result, budget)

    async def _run_later(self, turns: Turns, args: tuple, kwargs: dict) -> Any:
        await turns.take()
        result = self._run_event(args, kwargs, Held(turns))
        return await result if is_awaitable(result) else result

    async def _finish_event(self, result: Any, budget: Budget | None, held: Held) -> Any:
        try:
            with within_budget(budget), _optimizing(self._optimizer):
                result = await result
        finally:
            held.release()
        return _within_budget(result, budget)

    async def _shared(
        self,
        entry: Shared,
        key: tuple,
        event: WorkflowEvent,
        args: tuple,
        kwargs: dict,
        *,
        first: bool,
    ) -> Any:
        """The result of the execution in flight for ``entry`` (:func:`wait_shared`); if it
        failed, another's failure is not this one's: execute on its own."""
        try:
            value = await wait_shared(entry, key, event.cursor)
        except Exception:
            if first:
                raise
            value = None
        if first or (value is not None and shareable(value)):
            if not first:
                STATS.shared += 1
            return value
        result = self._execute(event, args, kwargs)
        return await result if is_awaitable(result) else result


async def wait_shared(entry: Shared, key: tuple, cursor: int) -> Any:
    """The result of ``entry``'s execution in flight, shielded: one subscriber leaving does not
    cancel it for the others. But the last one waiting for it that leaves (its socket closed,
    its ``complete`` came) cancels it, unless direct followers still wait for its result: an
    execution nobody waits for must not run on after its clients are gone (a document doing
    seconds of work, times every subscription of a socket). One that others cancelled that way
    raises :class:`SharedCancelled` to whoever comes late to it: execute on your own."""
    pending = entry.pending
    entry.waiters += 1
    try:
        return await asyncio.shield(pending)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # this subscriber stopped
        raise SharedCancelled() from None
    finally:
        entry.waiters -= 1
        if not entry.waiters and not pending.done() and (cursor, key) not in FANS:
            pending.cancel()


class SharedCancelled(Exception):
    """The execution a subscriber waited for was cancelled by the others leaving."""


def _settle(
    results: dict, key: tuple, entry: Shared, done: asyncio.Future, event: WorkflowEvent
) -> None:
    """An execution in flight ended: keep its result for the later subscribers, unless it
    failed (they execute on their own)."""
    entry.pending = None
    if done.cancelled() or done.exception() is not None or not shareable(done.result()):
        if results.get(key) is entry:
            del results[key]
        return
    entry.result = done.result()
    if not entry.result.errors:
        results[id(entry.result.data)] = entry
    settle(event.cursor, key)  # the sinks waiting for it (graphql_api.live.direct)


@contextmanager
def _optimizing(extension: Any) -> Iterator[None]:
    token = optimizer.set(extension)
    try:
        yield
    finally:
        optimizer.reset(token)


def _within_budget(result: Any, budget: Budget | None) -> Any:
    """``result``, or the one ``TIMEOUT`` error once ``budget`` was spent: some statement was
    refused or cut, and nothing of a result cut short is kept (as for a query)."""
    if budget is None or not budget.spent:
        return result
    return ExecutionResult(data=None, errors=[timeout_error(budget)])


def shareable(result: Any) -> bool:
    """Whether every subscriber of the key may get ``result``: one without errors, or the
    ``TIMEOUT`` of an event over its budget (executing it again for each would cost each the
    whole budget)."""
    errors = result.errors
    return not errors or (
        result.data is None
        and len(errors) == 1
        and (errors[0].extensions or {}).get("code") == TIMEOUT
    )


def shares_directly(info: Any) -> bool:
    """Whether a shared result may be sent as is to another subscriber of ``info``'s schema:
    unless one of its extensions adds ``extensions`` to results (strawberry's
    ``get_results``), which strawberry would compute per result."""
    schema = info.schema
    found = _DIRECT.get(id(schema))
    if found is None or found[0] is not schema:
        # As strawberry builds them for an operation (classes and factories called).
        extensions = schema.get_extensions()
        plain = all(type(e).get_results is SchemaExtension.get_results for e in extensions)
        found = _DIRECT[id(schema)] = (schema, plain)
    return found[1]


#: id(strawberry schema) -> (schema, whether shared results may skip its per-result work).
_DIRECT: dict[int, tuple[Any, bool]] = {}


async def send_shared(event: WorkflowEvent, base: tuple | None, info: Any, operation: Any) -> bool:
    """Send ``event`` to the graphql-transport-ws ``operation`` running this subscription as the
    result another subscriber sharing its key (``base``: :func:`share_base`) already got,
    without executing anything: True if sent, False if there is none (or it failed): the
    caller yields the event, which executes it as usual."""
    key = share_key(base, info.context)
    results = RESULTS.get(event)
    entry = results.get(key) if results and key else None
    if entry is None or entry.operation is not info._raw_info.operation:
        return False
    result = entry.result
    if entry.pending is not None:
        try:
            result = await wait_shared(entry, key, event.cursor)
        except Exception:
            return False
    if result.errors:  # a shared TIMEOUT: the executor hands it over, through strawberry
        return False
    STATS.shared += 1
    # What strawberry sends for a result without errors or extensions (Operation.send_next).
    await operation.send_operation_message(
        {"id": operation.id, "type": "next", "payload": {"data": result.data}}
    )
    return True
