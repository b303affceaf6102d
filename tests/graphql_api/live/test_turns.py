"""One user's subscriptions take turns: at most ``SUBSCRIPTION_MAX_EXECUTIONS_PER_USER`` of their
events execute at once; the others wait, in order, with their time budget not yet started, and
another user's event does not wait behind them."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from channels.db import database_sync_to_async

from django_steps import services
from django_steps.models import WorkflowEvent
from graphql_api.live.shared import STATS
from graphql_api.security.budget import current_budget

from .conftest import login_session, make_user
from .helpers import GraphQLSocket, instance_gid, on_database_thread
from .test_event_budget import HEAVY, chain, newest

pytestmark = pytest.mark.django_db(transaction=True)

run = database_sync_to_async

#: The other user's document: one statement per event (told apart from the heavy ones by that).
LIGHT = """subscription Light($id: ID, $after: String) {
  workflowInstanceEvents(instanceId: $id, after: $after) {
    cursor
    instance { history(first: 1) { edges { node { cursor } } } }
  }
}"""

#: Seconds each statement of an event's execution takes (the hook below).
SLOW = 0.03


class SlowExecutions:
    """Every statement an event's execution runs (under its time budget) takes :data:`SLOW`
    seconds more, and is recorded with its execution's budget (one per execution, started with
    it) and when it ended."""

    def __init__(self) -> None:
        self.statements: list = []

    def __call__(self, execute, sql, params, many, context):
        budget = current_budget()
        if budget is None:
            return execute(sql, params, many, context)
        time.sleep(SLOW)
        try:
            return execute(sql, params, many, context)
        finally:
            self.statements.append((budget, time.monotonic()))

    def executions(self, least: int = 3) -> list[tuple[float, float]]:
        """The executions seen so far (of at least ``least`` statements: the heavy document's),
        each as (when it started: its budget did, when its last statement ended)."""
        spans: dict = {}
        for budget, ended in self.statements:
            _start, _end, count = spans.get(id(budget), (0.0, 0.0, 0))
            spans[id(budget)] = (budget.deadline - budget.seconds, ended, count + 1)
        return [(start, end) for start, end, count in spans.values() if count >= least]


def slow_executions():
    """On the database thread the resolvers query in (Channels' one thread for sync work)."""
    return on_database_thread(SlowExecutions())


def cap(settings, executions: int) -> None:
    settings.DJANGO_STEPS_GRAPHQL = {
        **settings.DJANGO_STEPS_GRAPHQL,
        "SUBSCRIPTION_MAX_EXECUTIONS_PER_USER": executions,
    }


def cursors(instance, after: str) -> list[str]:
    """The cursors of ``instance``'s events after ``after``, in commit order."""
    found = sorted(e.cursor for e in WorkflowEvent.objects.filter(instance=instance))
    return [str(cursor) for cursor in found if cursor > int(after)]


def most_at_once(spans: list) -> int:
    """The most executions in flight at once: started (their budget) and not ended."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    now = peak = 0
    for _index, step in edges:
        now += step
        peak = max(peak, now)
    return peak


async def two_users(chains: int) -> tuple:
    """``chains`` instances for the first user's subscriptions, one for the other user's, both
    users' sessions (superusers: no visibility rule in the way), and the newest cursor."""
    instances = [await run(chain)(f"Chain{i}", 3) for i in range(chains)]
    other = await run(chain)("Theirs", 3)
    attacker = await run(login_session)(await run(lambda: make_user("a", superuser=True))())
    victim = await run(login_session)(await run(lambda: make_user("b", superuser=True))())
    return instances, other, attacker, victim, await run(newest)()


def changes(instances: list, other) -> None:
    """Each instance changes back and forth, then ``other`` once: one burst on the database
    thread, so every event of the user is dispatched before the other user's."""
    for status in ("Other", "Open", "Other"):
        for instance in instances:
            services.update_workflow_step_status(instance, status)
    services.update_workflow_step_status(other, "Other")


async def test_one_users_subscriptions_execute_one_at_a_time_in_order_and_others_do_not_wait(
    application, settings
):
    cap(settings, 1)
    instances, other, attacker, victim, after = await two_users(3)
    async with contextlib.AsyncExitStack() as stack:
        theirs = await stack.enter_async_context(GraphQLSocket(application, session_key=victim))
        their_sub = await theirs.subscribe(LIGHT, id=instance_gid(other), after=after)
        sockets, subs = [], []
        for instance in instances:  # a socket per subscription: no socket's own turns
            ws = await stack.enter_async_context(GraphQLSocket(application, session_key=attacker))
            sockets.append(ws)
            subs.append(await ws.subscribe(HEAVY, id=instance_gid(instance), after=after))
        for ws, sub in zip(sockets, subs, strict=True):
            assert await ws.nothing_more(sub, 0.2)
        async with slow_executions() as hook:
            await run(changes)(instances, other)
            [theirs_event] = await theirs.events(their_sub, 1)
            started_then = len(hook.executions())
            received = [await ws.events(sub, 3) for ws, sub in zip(sockets, subs, strict=True)]
            spans = hook.executions()
    assert [theirs_event["cursor"]] == await run(cursors)(other, after)
    # The other user's event came while most of this user's executions had not even started.
    assert started_then <= len(instances) * 3 // 2
    assert len(spans) == len(instances) * 3
    assert most_at_once(spans) == 1
    for instance, events in zip(instances, received, strict=True):
        assert [event["cursor"] for event in events] == await run(cursors)(instance, after)


async def test_a_socket_closed_while_its_events_wait_takes_no_turn_from_the_others(
    application, settings
):
    cap(settings, 1)
    first, second, third = [await run(chain)(f"Chain{i}", 3) for i in range(3)]
    session = await run(login_session)(await run(lambda: make_user("a", superuser=True))())
    after = await run(newest)()
    async with contextlib.AsyncExitStack() as stack:
        kept = []
        for instance in (first, third):
            ws = await stack.enter_async_context(GraphQLSocket(application, session_key=session))
            kept.append((ws, await ws.subscribe(HEAVY, id=instance_gid(instance), after=after)))
        for ws, sub in kept:
            assert await ws.nothing_more(sub, 0.2)
        hook = await stack.enter_async_context(slow_executions())
        async with GraphQLSocket(application, session_key=session) as closing:
            gone = await closing.subscribe(HEAVY, id=instance_gid(second), after=after)
            assert await closing.nothing_more(gone, 0.2)
            await run(changes)([first, second, third], first)
            await asyncio.sleep(SLOW)  # its events are queued behind the others: close now
        for (ws, sub), instance, count in zip(kept, (first, third), (4, 3), strict=True):
            events = await ws.events(sub, count)
            assert [event["cursor"] for event in events] == await run(cursors)(instance, after)
        # Again: the closed socket's waiting executions took no turn and gave none back, so the
        # user still has exactly one, and its subscription executes nothing any more.
        await asyncio.sleep(0.3)
        hook.statements.clear()
        await run(changes)([first, second, third], first)
        for (ws, sub), count in zip(kept, (4, 3), strict=True):
            assert len(await ws.events(sub, count)) == count
        spans = hook.executions()
    assert len(spans) == 7
    assert most_at_once(spans) == 1


#: One document for the whole workflow: subscribers of one visibility class share its result.
SHARED = """subscription Shared($w: String, $after: String) {
  workflowInstanceEvents(workflowName: $w, after: $after) {
    cursor
    instance { history(first: 1) { edges { node { cursor } } } }
  }
}"""


async def test_a_shared_result_whose_leader_waits_for_its_turn_reaches_every_subscriber_once(
    application, settings
):
    """Two users of one visibility class follow one workflow with one document (one execution
    for both, written to the second's socket by the hub); the first one's turn is taken by their
    other subscriptions' backlog when the event comes: the second is not left waiting on the hub
    for it (it takes the event the usual way, in its own turn), both get the same result, still
    executed once, and the first user never has more than one execution in flight."""
    cap(settings, 1)
    instances, other, attacker, victim, after = await two_users(5)
    # Counts so far, by cursor: on SQLite an earlier test's event may have had the same one.
    counted = dict(STATS.by_event)
    async with contextlib.AsyncExitStack() as stack:
        followers = []
        for session in (attacker, victim):  # the first to subscribe leads (it is first in line)
            ws = await stack.enter_async_context(GraphQLSocket(application, session_key=session))
            followers.append((ws, await ws.subscribe(SHARED, w="Theirs", after=after)))
        sockets, subs = [], []
        for instance in instances:
            ws = await stack.enter_async_context(GraphQLSocket(application, session_key=attacker))
            sockets.append(ws)
            subs.append(await ws.subscribe(HEAVY, id=instance_gid(instance), after=after))
        for ws, sub in zip(sockets, subs, strict=True):
            assert await ws.nothing_more(sub, 0.2)
        # One event first: then both are parked on the hub, their access checked.
        await run(services.update_workflow_step_status)(other, "Open")
        for ws, sub in followers:
            assert len(await ws.events(sub, 1)) == 1
            assert await ws.nothing_more(sub, 0.2)
        async with slow_executions() as hook:
            await run(changes)(instances, other)
            theirs, their_sub = followers[1]
            [theirs_event] = await theirs.events(their_sub, 1)
            for ws, sub in zip(sockets, subs, strict=True):
                assert len(await ws.events(sub, 3)) == 3
            [mine] = await followers[0][0].events(followers[0][1], 1)
            spans = hook.executions()
    assert mine == theirs_event
    assert theirs_event["cursor"] == (await run(cursors)(other, after))[-1]
    cursor = int(mine["cursor"])
    assert STATS.executions_for(cursor) - counted.get(cursor, 0) == 1
    assert len(spans) == len(instances) * 3
    assert most_at_once(spans) == 1
