"""Replay cost: a claimant's subscription replay against the same events over HTTP.

    python bench/replay.py [--quick] [--json]

``alice`` (a claimant of the demo: she sees her own claims only) has 12 events in a history of
100,000 (``--quick``: 10,000); the others belong to another user's claim, spread before, between
and after hers. A replay (``workflowInstanceEvents(after: "0")`` over a WebSocket, until her
12th event arrives) reads only what she may see, filtered in SQL, like ``workflowEvents(after:
"0")`` over HTTP does; the figure is the ratio of the two medians (target: within 2×).

Both run in this process against the real application: the replay through the ASGI
application's WebSocket consumer (channels' communicator), HTTP through Django's test client
(sessions, authentication, the GraphQL view), the same selection, in alternating order round
after round. A subscription without ``after`` stays open on the socket, as on a server with
subscribers (the process's event hub keeps running between replays).

Database: a scratch PostgreSQL database (its own name, always dropped) when ``DATABASE_URL`` is
PostgreSQL, else a temporary SQLite file (the replay reads in a worker thread). The 100,000
events are bulk-inserted copies of one event, each in its own place of the history; on
PostgreSQL the tables are then analysed, as autovacuum does after a bulk load.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import bench_arguments, emit, scratch_database  # noqa: E402 - after the path is set
from tests.graphql_api.live.helpers import add_events  # noqa: E402

TARGET = 2.0
SELECTION = "cursor kind sequence state instance { id version state }"
REPLAY = (
    "subscription($after: String) { workflowInstanceEvents(after: $after) { " + SELECTION + " } }"
)
LIVE = "subscription { workflowInstanceEvents { cursor } }"
HTTP = (
    'query { workflowEvents(after: "0", first: 100) { edges { node { '
    + SELECTION
    + " } } pageInfo { hasNextPage } } }"
)
VISIBLE = 12


def setup(label: str) -> str:
    url = scratch_database(label)
    if url is None:
        url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='bench-replay-')) / 'bench.sqlite3'}"
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "demo.settings"
    os.environ.pop("REDIS_URL", None)  # the in-memory channel layer: this process only
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    return "postgresql" if url.startswith("postgres") else "sqlite"


def build(total: int) -> tuple[str, int]:
    """The demo's users, alice's 12 events among ``total``; alice's session key."""
    from io import StringIO

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from claims.models import Claim
    from django_steps import services
    from django_steps.models import WorkflowEvent

    call_command("demo_setup", "--no-claims", stdout=StringIO())
    users = {u.username: u for u in get_user_model().objects.filter(username__in=["alice", "bob"])}
    claims = {
        name: Claim.objects.create(title=name, claimant=name, amount=100, owner=users[name])
        for name in ("alice", "bob")
    }
    bob = services.start_workflow_instance("Claim Processing", claims["bob"])
    alice = services.start_workflow_instance("Claim Processing", claims["alice"])
    chunk = (total - VISIBLE - 1) // VISIBLE
    for n in range(VISIBLE - 1):
        add_events(bob, chunk)
        if n % 2 == 0:
            services.set_workflow_on_hold(alice)
        else:
            services.resume_workflow_instance(alice)
    add_events(bob, total - WorkflowEvent.objects.count())
    assert WorkflowEvent.objects.filter(instance=alice).count() == VISIBLE
    from django.db import connection

    if connection.vendor == "postgresql":  # as autovacuum would after a bulk load
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    client = Client()
    client.force_login(users["alice"])
    return client.cookies["sessionid"].value, WorkflowEvent.objects.count()


async def measure(session: str, rounds: int) -> tuple[list[float], list[float]]:
    from channels.db import database_sync_to_async
    from django.test import Client
    from strawberry.channels.testing import GraphQLWebsocketCommunicator

    from graphql_api.live.routing import get_application

    client = Client()
    client.cookies["sessionid"] = session

    def http() -> float:
        started = time.perf_counter()
        response = client.post(
            "/graphql/", data=json.dumps({"query": HTTP}), content_type="application/json"
        )
        elapsed = time.perf_counter() - started
        edges = response.json()["data"]["workflowEvents"]["edges"]
        assert len(edges) == VISIBLE, response.content[:500]
        return elapsed

    socket = GraphQLWebsocketCommunicator(
        get_application(), "/graphql/", headers=[(b"cookie", f"sessionid={session}".encode())]
    )
    await socket.gql_init()
    await socket.send_json_to({"id": "live", "type": "subscribe", "payload": {"query": LIVE}})

    async def replay() -> float:
        id_ = uuid.uuid4().hex
        payload = {"query": REPLAY, "variables": {"after": "0"}}
        started = time.perf_counter()
        await socket.send_json_to({"id": id_, "type": "subscribe", "payload": payload})
        got = 0
        while got < VISIBLE:
            message = await socket.receive_json_from(timeout=60)
            assert message.get("id") == id_ and message["type"] == "next", message
            assert "errors" not in message["payload"], message
            got += 1
        elapsed = time.perf_counter() - started
        await socket.send_json_to({"id": id_, "type": "complete"})
        return elapsed

    replays, https = [], []
    run_http = database_sync_to_async(http)
    for _ in range(2):  # warm up both
        await replay()
        await run_http()
    for n in range(rounds):
        if n % 2:
            replays.append(await replay())
            https.append(await run_http())
        else:
            https.append(await run_http())
            replays.append(await replay())
    await socket.disconnect()
    return replays, https


def main() -> None:
    args = bench_arguments(__doc__).parse_args()
    total = 10_000 if args.quick else 100_000
    rounds = 10 if args.quick else 40
    backend = setup("replay")
    session, stored = build(total)
    replays, https = asyncio.run(measure(session, rounds))
    replay_ms = statistics.median(replays) * 1000
    http_ms = statistics.median(https) * 1000
    ratio = replay_ms / http_ms
    rows = [
        {
            "figure": (
                f"replay of a claimant's {VISIBLE} events among {stored:,} ({backend}): "
                'subscription after "0" vs workflowEvents over HTTP'
            ),
            "value": round(replay_ms, 2),
            "unit": "ms",
            "floor": round(http_ms, 2),
            "ratio": round(ratio, 2),
            "target": f"<= {TARGET}x HTTP",
            "met": ratio <= TARGET,
        }
    ]
    emit(rows, args.json, f"Replay cost ({backend}, {rounds} interleaved rounds, medians)")


if __name__ == "__main__":
    main()
