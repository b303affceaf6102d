"""The cursor is sound under concurrency: transactions that commit out of id order on
PostgreSQL, and a dashboard that keeps reconnecting with ``after``, lose and duplicate nothing."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import pytest
from channels.db import database_sync_to_async
from django.db import connection, transaction

from django_steps import services
from django_steps.models import WorkflowEvent

from .conftest import new_claim
from .helpers import GraphQLSocket

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

run = database_sync_to_async

#: Bounds of the waits for other threads and for delivery: generous (the machine may be loaded),
#: and each ends as soon as what it waits for happened.
JOIN_WITHIN = 30.0
DELIVERED_WITHIN = 30.0


def _txid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT txid_current()")
        return cursor.fetchone()[0]


def _all_cursors(workflow_name: str | None = None) -> list[int]:
    qs = WorkflowEvent.objects.order_by("txid", "position")
    if workflow_name:
        qs = qs.filter(workflow__name=workflow_name)
    return [e.cursor for e in qs]


def _thread(target, *args) -> threading.Thread:
    def body():
        try:
            target(*args)
        finally:
            connection.close()

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("stream", ["workflow", "all"])
async def test_commit_out_of_id_order_loses_and_duplicates_nothing(
    application, claim_workflows, viewer_session, stream
):
    variables = {"workflowName": "Claim Processing"} if stream == "workflow" else {}
    instances = await run(
        lambda: [
            services.start_workflow_instance(
                "Claim Processing" if i % 3 else "Claim Triage", new_claim(f"c{i}")
            )
            for i in range(6)
        ]
    )()
    first = await run(
        lambda: services.start_workflow_instance("Claim Processing", new_claim("a"))
    )()
    second = await run(
        lambda: services.start_workflow_instance("Claim Processing", new_claim("b"))
    )()
    cursor = str((await run(_all_cursors)())[-1])
    initial = int(cursor)

    # --- Transaction A begins first (lower transaction id, lower claim id) but commits last.
    a_began, b_committed, a_has_position, a_may_commit = (threading.Event() for _ in range(4))
    facts: dict[str, int] = {}

    def transaction_a():
        with transaction.atomic():
            facts["txid_a"] = _txid()
            facts["claim_a"] = new_claim("written by A first").pk
            a_began.set()
            assert b_committed.wait(JOIN_WITHIN)
            facts["cursor_a"] = services.set_workflow_on_hold(first).last_event.cursor
            a_has_position.set()
            assert a_may_commit.wait(JOIN_WITHIN)  # uncommitted while the subscriber replays

    def transaction_b():
        assert a_began.wait(JOIN_WITHIN)
        with transaction.atomic():
            facts["txid_b"] = _txid()
            facts["claim_b"] = new_claim("written by B second").pk
            facts["cursor_b"] = services.set_workflow_on_hold(second).last_event.cursor
        b_committed.set()

    # --- Meanwhile, other writers commit concurrently with random pauses inside their transactions.
    stop_writers = threading.Event()

    def writer(instance, seed):
        rnd = random.Random(seed)
        while not stop_writers.is_set():
            with transaction.atomic():
                services.set_workflow_on_hold(instance)
                time.sleep(rnd.uniform(0, 0.01))
            services.resume_workflow_instance(instance)
            time.sleep(rnd.uniform(0, 0.02))

    threads = [_thread(transaction_a), _thread(transaction_b)]
    threads += [_thread(writer, instance, i) for i, instance in enumerate(instances[:4])]

    received: list[dict] = []

    async def session(wait_first: float = 5.0, take: int = 7, until: int | None = None) -> None:
        nonlocal cursor
        async with GraphQLSocket(application, session_key=viewer_session) as ws:
            # settled=False: A's transaction, open on purpose, holds the horizon back
            sub = await ws.subscribe(after=cursor, settled=False, **variables)
            for _ in range(take):
                if until is not None and int(cursor) >= until:
                    return
                try:
                    [event] = await ws.events(sub, 1, timeout=wait_first)
                except TimeoutError:
                    return
                received.append(event)
                cursor = event["cursor"]

    # The dashboard connects while A's event is uncommitted (its replay cannot see it).
    assert await asyncio.to_thread(a_has_position.wait, JOIN_WITHIN)
    await session(take=3)
    a_may_commit.set()
    for _ in range(6):  # ...and keeps reconnecting with its last cursor while writers run
        await session(take=random.randint(1, 9))
    stop_writers.set()
    for thread in threads:
        await asyncio.to_thread(thread.join, JOIN_WITHIN)
        assert not thread.is_alive()
    # Drain up to the last event written: the stream delivers an event once every older
    # transaction of the cluster has ended (its horizon), which a loaded machine, or any other
    # client of the server holding a transaction open, can delay by seconds; so wait until it
    # arrived, up to DELIVERED_WITHIN, rather than for a fixed quiet time.
    last = (await run(_all_cursors)(variables.get("workflowName")))[-1]
    await session(wait_first=DELIVERED_WITHIN, take=10_000, until=last)

    # A began first and wrote first, yet committed after B: out of id order. A's event sorts
    # first (its transaction id is older), so a reader must not have moved past it while it was
    # uncommitted, although B's was committed and readable then.
    assert facts["txid_a"] < facts["txid_b"] and facts["claim_a"] < facts["claim_b"]
    assert facts["cursor_a"] < facts["cursor_b"]
    got = [int(e["cursor"]) for e in received]
    expected = [p for p in await run(_all_cursors)(variables.get("workflowName")) if p > initial]
    assert len(got) == len(set(got)), "duplicates"
    assert got == expected, "lost or reordered events"
    assert facts["cursor_a"] in got and facts["cursor_b"] in got
    assert len(got) > 30
