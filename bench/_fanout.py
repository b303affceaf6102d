"""The "executions per event" row of ``bench/subscriptions.py``: shared fan-out, measured in
process (graphql_api.live.shared.STATS counts the executions)."""

from __future__ import annotations

import asyncio


def executions_per_event(query: str, subscribers: int, events: int, instance_id: str) -> dict:
    """In this process (the in-memory layer, Channels' communicator): ``subscribers`` sockets
    sharing one document, half the superuser (one visibility class), half reviewers (another),
    and ``events`` commits; the executions each event cost (graphql_api.live.shared.STATS)."""
    from channels.db import database_sync_to_async
    from django.contrib.auth.models import Group, Permission
    from strawberry.relay import from_base64

    from django_steps import history, services
    from django_steps.models import WorkflowEvent, WorkflowInstance
    from graphql_api.live.routing import get_application
    from graphql_api.live.shared import STATS
    from tests.graphql_api.live.helpers import GraphQLSocket

    def sessions() -> list[str]:
        from django.contrib.auth import get_user_model
        from django.test import Client

        User = get_user_model()
        bench = User.objects.get(username="bench")
        reviewer, _ = User.objects.get_or_create(username="fan-out reviewer")
        reviewer.user_permissions.add(Permission.objects.get(codename="view_workflowinstance"))
        reviewer.groups.add(Group.objects.get_or_create(name="reviewers")[0])
        keys = []
        for user in (bench, reviewer):
            client = Client()
            client.force_login(user)
            keys.append(client.cookies["sessionid"].value)
        return keys

    instance = WorkflowInstance.objects.get(pk=from_base64(instance_id)[1])

    def newest() -> int:
        return history.newest(WorkflowEvent.objects.all())

    def change(n: int) -> None:
        if n % 2 == 0:
            services.set_workflow_on_hold(instance)
        else:
            services.resume_workflow_instance(instance)

    async def run() -> dict:
        keys = await database_sync_to_async(sessions)()
        application = get_application()
        sockets = [GraphQLSocket(application, session_key=keys[i % 2]) for i in range(subscribers)]
        for ws in sockets:
            await ws.__aenter__()
        try:
            after = str(await database_sync_to_async(newest)())
            subs = [await ws.subscribe(query, w="Bench", after=after) for ws in sockets]
            # A warm-up event, not counted: a subscription that became live after it was
            # committed replays it; once every socket has it, every subscription is live.
            for n in range(events + 1):
                if n == 1:
                    before = STATS.executions
                await database_sync_to_async(change)(n)
                for ws, sub in zip(sockets, subs, strict=True):
                    payload = await ws.result(sub, timeout=120)
                    assert not payload.get("errors"), payload
            return {"executions": STATS.executions - before}
        finally:
            for ws in sockets:
                await ws.__aexit__(None, None, None)

    counted = asyncio.run(run())
    return {"per_event": counted["executions"] / events, "classes": 2}
