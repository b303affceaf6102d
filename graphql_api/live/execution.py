"""One execution per event for identical subscriptions.

A dashboard fleet subscribes many sockets with the same operation: the same document, the same
variables, the same user. graphql-core executes the selection set once per socket per event;
with a thousand sockets that is the whole budget of a worker (``bench/subscriptions.py``). This
executor (passed to strawberry as ``execution_context_class``) executes a workflow event once
per (operation, variables, user) and hands the same result to every
subscription that asks for it. Only results without errors are shared; they are read-only
afterwards (each socket serialises its own copy of the message).

The results are kept beside the event object for as long as it lives: the
:class:`~graphql_api.live.streams.EventHub` hands one object to every stream of the process, and it
is freed once every stream has sent it.
"""

from __future__ import annotations

import json
import weakref
from typing import Any

from graphql import OperationType
from graphql.pyutils import is_awaitable
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from django_steps.models import WorkflowEvent

__all__ = ["SharedEventExecutionContext"]

_RESULTS: weakref.WeakKeyDictionary[WorkflowEvent, dict] = weakref.WeakKeyDictionary()


def _user_key(context: Any) -> tuple | None:
    """Who the result is computed for (permissions shape it); None when unknown: do not share."""
    consumer = context.get("ws") if hasattr(context, "get") else None
    scope = getattr(consumer, "scope", None) or {}
    user = scope.get("user")
    if user is None:
        return None
    return (getattr(user, "pk", None), bool(getattr(user, "is_authenticated", False)))


class SharedEventExecutionContext(StrawberryGraphQLCoreExecutionContext):
    _share_key: tuple | None | bool = False  # False: not computed yet

    def build_per_event_executor(self, payload: Any) -> Any:
        # Once per subscription (the per-event executors are copies of this one).
        if self._share_key is False:
            self._share_key = self._compute_share_key()
        return super().build_per_event_executor(payload)

    def _compute_share_key(self) -> tuple | None:
        if self.operation.operation is not OperationType.SUBSCRIPTION:
            return None
        user = _user_key(self.context_value)
        if user is None:
            return None
        try:
            variables = json.dumps(self.variable_values, sort_keys=True, default=str)
        except (TypeError, ValueError):
            return None
        # The operation node's identity: strawberry's parser cache gives identical documents the
        # same node (graphql-core hashes nodes structurally, which is slow). Entries keep the node
        # alive, so its id cannot be reused while they exist.
        return (id(self.operation), variables, user)

    def execute_operation(self, *args: Any, **kwargs: Any) -> Any:
        event = self.root_value
        key = self._share_key
        if not key or not isinstance(event, WorkflowEvent):
            return super().execute_operation(*args, **kwargs)
        results = _RESULTS.get(event)
        if results is None:
            results = _RESULTS[event] = {}
        entry = results.get(key)
        if entry is not None and entry[0] is self.operation:
            return entry[1]
        operation = self.operation
        result = super().execute_operation(*args, **kwargs)
        if is_awaitable(result):

            async def remember() -> Any:
                value = await result
                if not value.errors:
                    results[key] = (operation, value)
                return value

            return remember()
        if not result.errors:
            results[key] = (operation, result)
        return result
