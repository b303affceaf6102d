"""What one subscription event may cost: each event executes under the time budget of a query
(``MAX_SECONDS``): over it the subscriber gets one ``TIMEOUT`` error and the stream goes on; a
shared execution that runs over is every sharer's ``TIMEOUT``, executed once; and an event's
nested lists and ``instanceCounts`` are read in batched queries, as over HTTP, whatever the
number of steps and statuses."""

from __future__ import annotations

import contextlib

import pytest
from channels.db import database_sync_to_async

from django_steps import services
from django_steps.models import WorkflowEvent
from graphql_api.live.shared import STATS
from graphql_api.security.budget import current_budget
from tests.conftest import make_workflow, statuses

from .conftest import login_session, make_user, new_claim
from .helpers import PROTOCOLS, GraphQLSocket, error_codes, instance_gid, on_database_thread

pytestmark = pytest.mark.django_db(transaction=True)

run = database_sync_to_async

#: The attacker's document: an instance's history with every step's statuses and their counts.
HEAVY = """subscription Heavy($id: ID, $w: String, $after: String) {
  workflowInstanceEvents(instanceId: $id, workflowName: $w, after: $after) {
    cursor
    instance {
      id
      workflow {
        steps { name instanceCounts { total } statuses { name instanceCounts { total active } } }
      }
      history(first: 100) {
        edges { node {
          cursor
          toStep { name statuses { name instanceCounts { total } } }
          toStatus { name instanceCounts { total } }
        } }
      }
    }
  }
}"""


def chain(name: str, steps: int) -> tuple:
    """A workflow of ``steps`` steps in a row, four statuses each, with one instance that went
    back and forth a few times; and the session of a superuser."""
    names = [f"S{i}" for i in range(steps)]
    make_workflow(
        name,
        {
            "content_types": ["claims.claim"],
            "steps": [
                {
                    "name": step,
                    **({"is_initial_step": True} if i == 0 else {}),
                    **({"is_final_step": True} if i == steps - 1 else {}),
                    "statuses": [*statuses("Open", "Done"), {"name": "Other"}, {"name": "Third"}],
                }
                for i, step in enumerate(names)
            ],
            "transitions": [
                {"from_step": a, "to_step": b} for a, b in zip(names, names[1:], strict=False)
            ],
        },
    )
    instance = services.start_workflow_instance(name, new_claim())
    for _ in range(3):
        services.update_workflow_step_status(instance, "Other")
        services.update_workflow_step_status(instance, "Open")
    return instance


def newest() -> str:
    """The newest cursor: subscribing after it, no event of the setup comes later (the hub may
    still be about to deliver one committed just before the subscription started)."""
    return str(max(event.cursor for event in WorkflowEvent.objects.all()))


def ops_session() -> str:
    return login_session(make_user("ops", superuser=True))


class Statements:
    """Counts the SQL statements of events' executions (run under an event's time budget) on the
    connection of the thread it is added in: not the change's, nor the stream's own reads."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        if current_budget() is not None:
            self.count += 1
        return execute(sql, params, many, context)


def counting():
    """The statements of the database thread the subscriptions' resolvers query in (where the
    changes below are made too)."""
    return on_database_thread(Statements())


def budget(settings, seconds: float) -> None:
    settings.DJANGO_STEPS_GRAPHQL = {**settings.DJANGO_STEPS_GRAPHQL, "MAX_SECONDS": seconds}


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_event_over_its_budget_is_a_timeout_and_the_next_event_arrives(
    application, settings, protocol
):
    instance = await run(chain)("Chain", 3)
    session = await run(ops_session)()
    async with GraphQLSocket(application, session_key=session, protocol=protocol) as ws:
        sub = await ws.subscribe(HEAVY, id=instance_gid(instance), after=await run(newest)())
        assert await ws.nothing_more(sub, 0.3)
        budget(settings, 1e-9)  # spent before the event's first statement
        await run(services.update_workflow_step_status)(instance, "Other")
        late = await ws.result(sub)
        assert late["data"] is None
        assert error_codes(late) == ["TIMEOUT"]
        budget(settings, 10.0)
        await run(services.update_workflow_step_status)(instance, "Open")
        [event] = await ws.events(sub, 1)
        assert len(event["instance"]["history"]["edges"]) == 9  # started, then 8 changes
        assert event["instance"]["workflow"]["steps"][0]["statuses"][0]["instanceCounts"] == {
            "total": 1,
            "active": 1,
        }


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_shared_execution_over_its_budget_is_every_sharers_timeout_executed_once(
    application, settings, protocol
):
    instance = await run(chain)("Chain", 3)
    sessions = [await run(ops_session)()]
    sessions.append(
        await run(login_session)(await run(lambda: make_user("root", superuser=True))())
    )
    async with contextlib.AsyncExitStack() as stack:
        sockets = [
            await stack.enter_async_context(
                GraphQLSocket(application, session_key=session, protocol=protocol)
            )
            for session in (*sessions, sessions[0])  # two users of one class, one twice
        ]
        after = await run(newest)()
        subs = [await ws.subscribe(HEAVY, w="Chain", after=after) for ws in sockets]
        for ws, sub in zip(sockets, subs, strict=True):
            assert await ws.nothing_more(sub, 0.3)
        budget(settings, 1e-9)
        executions = STATS.executions
        await run(services.update_workflow_step_status)(instance, "Other")
        for ws, sub in zip(sockets, subs, strict=True):
            late = await ws.result(sub)
            assert (late["data"], error_codes(late)) == (None, ["TIMEOUT"])
        assert STATS.executions - executions == 1  # not retried per sharer
        budget(settings, 10.0)
        await run(services.update_workflow_step_status)(instance, "Open")
        results = [(await ws.events(sub, 1))[0] for ws, sub in zip(sockets, subs, strict=True)]
        assert results[0] == results[1] == results[2]


async def test_an_events_queries_do_not_grow_with_the_steps_and_statuses(application):
    """10x the steps (and their statuses and counts): the same statements per event. The
    event's nested lists and counts are read as over HTTP, by the optimizer."""
    small = await run(chain)("Small", 2)
    large = await run(chain)("Large", 20)
    session = await run(ops_session)()
    counts = []
    async with GraphQLSocket(application, session_key=session) as ws:
        for instance in (small, large):
            sub = await ws.subscribe(HEAVY, id=instance_gid(instance), after=await run(newest)())
            assert await ws.nothing_more(sub, 0.3)
            async with counting() as statements:
                await run(services.update_workflow_step_status)(instance, "Other")
                [event] = await ws.events(sub, 1)
            counts.append(statements.count)
            assert len(event["instance"]["workflow"]["steps"]) in (2, 20)
            await ws.stop(sub)
    # The workflow's steps, their statuses (each with its counts), the history page, its events'
    # steps and their statuses, its statuses (with their counts).
    assert 0 < counts[0] == counts[1] <= 10
