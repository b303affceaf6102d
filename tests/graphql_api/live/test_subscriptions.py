"""workflowInstanceEvents over Channels' in-process communicator, on both WebSocket protocols."""

from __future__ import annotations

import asyncio
import logging

import pytest
from channels.db import database_sync_to_async
from django.db import transaction

from django_steps import services
from django_steps.exceptions import NotOnHold
from django_steps.models import WorkflowEvent

from .conftest import login_session, make_user, new_claim
from .helpers import PROTOCOLS, GraphQLSocket, error_codes, instance_gid

pytestmark = pytest.mark.django_db(transaction=True)

run = database_sync_to_async


def start(workflow_name: str = "Claim Processing", title: str = "Broken window"):
    return services.start_workflow_instance(workflow_name, new_claim(title))


def hold_and_resume(instance, times: int = 1) -> None:
    for _ in range(times):
        services.set_workflow_on_hold(instance)
        services.resume_workflow_instance(instance)


def positions(events: list[dict]) -> list[int]:
    return [int(e["cursor"]) for e in events]


def stored_cursors(qs) -> list[int]:
    return [e.cursor for e in qs.order_by("txid", "position")]


# --------------------------------------------------------------------------- permissions


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_anonymous_socket_cannot_subscribe(application, claim_workflows, protocol):
    async with GraphQLSocket(application, protocol=protocol) as ws:
        for variables in ({}, {"workflowName": "Claim Processing"}):
            sub = await ws.subscribe(**variables)
            payload = await ws.result(sub)
            assert error_codes(payload) == ["PERMISSION_DENIED"]
            assert not payload.get("data")


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_user_without_view_permission_cannot_subscribe(
    application, claim_workflows, protocol
):
    session = await run(lambda: login_session(make_user("nobody")))()
    instance = await run(start)()
    async with GraphQLSocket(application, protocol=protocol, session_key=session) as ws:
        for variables in (
            {},
            {"workflowName": "Claim Processing"},
            {"instanceId": instance_gid(instance)},
        ):
            payload = await ws.result(await ws.subscribe(**variables))
            assert error_codes(payload) == ["PERMISSION_DENIED"], variables
            # classified as what it is (as over HTTP), not as bad input
            assert [e["extensions"]["classification"] for e in payload["errors"]] == [
                "PERMISSION_DENIED"
            ]


async def test_superuser_may_follow_everything(application, claim_workflows):
    session = await run(
        lambda: login_session(make_user("root", is_superuser=True, is_staff=True))
    )()
    async with GraphQLSocket(application, session_key=session) as ws:
        sub = await ws.subscribe()
        await ws.nothing_more(sub, 0.3)  # joined
        instance = await run(start)()
        [event] = await ws.events(sub, 1)
        assert event["kind"] == "STARTED" and event["instance"]["id"] == instance_gid(instance)


@pytest.mark.parametrize(
    ("variables", "code"),
    [
        ({"after": "not-a-cursor"}, "INVALID_CURSOR"),
        ({"after": "-1"}, "INVALID_CURSOR"),
        ({"workflowName": "No Such Workflow"}, "WORKFLOW_NOT_FOUND"),
        ({"instanceId": "garbage"}, "INVALID_ID"),
        ({"instanceId": "V29ya2Zsb3c6MQ=="}, "INVALID_ID"),  # a Workflow's global ID
        ({"instanceId": instance_gid(type("I", (), {"pk": 999999})())}, "INSTANCE_NOT_FOUND"),
    ],
)
async def test_bad_arguments_get_a_code(
    application, claim_workflows, viewer_session, variables, code
):
    async with GraphQLSocket(application, session_key=viewer_session) as ws:
        payload = await ws.result(await ws.subscribe(**variables))
        assert error_codes(payload) == [code]


async def test_instance_of_another_workflow_is_not_found(
    application, claim_workflows, viewer_session
):
    instance = await run(start)("Claim Triage")
    async with GraphQLSocket(application, session_key=viewer_session) as ws:
        sub = await ws.subscribe(instanceId=instance_gid(instance), workflowName="Claim Processing")
        assert error_codes(await ws.result(sub)) == ["INSTANCE_NOT_FOUND"]


# --------------------------------------------------------------------------- delivery


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_instance_stream_delivers_every_change_in_order(
    application, claim_workflows, viewer_session, protocol
):
    instance = await run(start)()
    async with GraphQLSocket(application, protocol=protocol, session_key=viewer_session) as ws:
        sub = await ws.subscribe(instanceId=instance_gid(instance))
        assert await ws.nothing_more(sub, 0.3)  # nothing before "now"

        def changes():
            services.set_workflow_on_hold(instance)
            services.resume_workflow_instance(instance)
            services.update_workflow_step_status(instance, "Submitted")  # advances to Review Claim
            services.update_workflow_step_status(instance, "Approved")  # advances to Approve/Reject
            services.update_workflow_step_status(
                instance, "Approved"
            )  # completes on the final step

        await run(changes)()
        events = await ws.events(sub, 5)
    assert [e["kind"] for e in events] == [
        "ON_HOLD",
        "RESUMED",
        "ADVANCED",
        "ADVANCED",
        "COMPLETED",
    ]
    assert [e["state"] for e in events] == ["ON_HOLD", "ACTIVE", "ACTIVE", "ACTIVE", "COMPLETED"]
    assert [e["sequence"] for e in events] == [2, 3, 4, 5, 6]
    assert [e["toStep"]["name"] for e in events][2:] == [
        "Review Claim",
        "Approve/Reject",
        "Approve/Reject",
    ]
    assert positions(events) == sorted(positions(events))
    stored = await run(lambda: stored_cursors(WorkflowEvent.objects.filter(instance=instance)))()
    assert positions(events) == stored[1:]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_several_subscriptions_on_one_socket_each_get_only_their_own(
    application, claim_workflows, viewer_session, protocol
):
    a = await run(start)("Claim Processing", "a")
    b = await run(start)("Claim Processing", "b")
    c = await run(start)("Claim Triage", "c")
    async with GraphQLSocket(application, protocol=protocol, session_key=viewer_session) as ws:
        only_a = await ws.subscribe(instanceId=instance_gid(a))
        only_b = await ws.subscribe(instanceId=instance_gid(b))
        processing = await ws.subscribe(workflowName="Claim Processing")
        everything = await ws.subscribe()
        also_everything = await ws.subscribe()
        await ws.nothing_more(everything, 0.3)

        def changes():
            for instance in (a, b, c, a):
                hold_and_resume(instance)

        await run(changes)()
        got_a = await ws.events(only_a, 4)
        got_b = await ws.events(only_b, 2)
        got_processing = await ws.events(processing, 6)
        got_all = await ws.events(everything, 8)
        got_all_too = await ws.events(also_everything, 8)
        # ... and nothing else: no duplicates, no foreign events.
        for sub in (only_a, only_b, processing, everything, also_everything):
            assert await ws.nothing_more(sub, 0.2)
        # Stopping one subscription leaves the others (sharing its groups) working.
        await ws.stop(also_everything)
        await run(hold_and_resume)(c)
        assert len(await ws.events(everything, 2)) == 2

    ids = lambda events: {e["instance"]["id"] for e in events}  # noqa: E731
    assert ids(got_a) == {instance_gid(a)} and ids(got_b) == {instance_gid(b)}
    assert ids(got_processing) == {instance_gid(a), instance_gid(b)}
    assert ids(got_all) == {instance_gid(x) for x in (a, b, c)}
    assert got_all == got_all_too
    for events in (got_a, got_b, got_processing, got_all):
        assert positions(events) == sorted(set(positions(events)))


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("stream", ["instance", "workflow", "all"])
async def test_after_replays_history_then_continues_live(
    application, claim_workflows, viewer_session, protocol, stream
):
    instance = await run(start)()
    other = await run(start)("Claim Triage", "other")
    await run(hold_and_resume)(instance, 2)
    await run(hold_and_resume)(other, 1)
    await run(hold_and_resume)(instance, 1)
    variables = {
        "instance": {"instanceId": instance_gid(instance)},
        "workflow": {"workflowName": "Claim Processing"},
        "all": {},
    }[stream]

    def expected_positions():
        qs = WorkflowEvent.objects.all()
        if stream != "all":
            qs = qs.filter(instance=instance)
        return stored_cursors(qs)

    history = await run(expected_positions)()
    cursor = str(history[1])  # the client saw the first two events of the stream
    async with GraphQLSocket(application, protocol=protocol, session_key=viewer_session) as ws:
        sub = await ws.subscribe(after=cursor, **variables)
        replayed = await ws.events(sub, len(history) - 2)
        await run(hold_and_resume)(instance)
        await run(hold_and_resume)(other)
        live_count = 2 if stream != "all" else 4
        live = await ws.events(sub, live_count)
        assert await ws.nothing_more(sub, 0.3)
    assert positions(replayed + live) == (await run(expected_positions)())[2:]


async def test_after_the_newest_cursor_replays_nothing(
    application, claim_workflows, viewer_session
):
    instance = await run(start)()
    last = await run(lambda: WorkflowEvent.objects.order_by("txid", "position").last().cursor)()
    async with GraphQLSocket(application, session_key=viewer_session) as ws:
        sub = await ws.subscribe(after=str(last), workflowName="Claim Processing")
        assert await ws.nothing_more(sub, 0.3)
        await run(services.set_workflow_on_hold)(instance)
        [event] = await ws.events(sub, 1)
        assert int(event["cursor"]) > last
        assert event["sequence"] == 2


async def test_rolled_back_change_publishes_nothing(application, claim_workflows, viewer_session):
    instance = await run(start)()

    def rolled_back():
        with pytest.raises(RuntimeError), transaction.atomic():
            services.set_workflow_on_hold(instance)
            raise RuntimeError("abort")

    async with GraphQLSocket(application, session_key=viewer_session) as ws:
        everything = await ws.subscribe()
        mine = await ws.subscribe(instanceId=instance_gid(instance))
        await ws.nothing_more(mine, 0.3)
        await run(rolled_back)()
        assert await ws.nothing_more(everything, 1.5)  # longer than the idle catch-up interval

        def refused():
            with pytest.raises(NotOnHold):
                services.resume_workflow_instance(instance)  # refused: no change, no event

        await run(refused)()
        await run(services.cancel_workflow_instance)(instance)
        [event] = await ws.events(mine, 1)
        [same] = await ws.events(everything, 1)
    assert event == same and event["kind"] == "CANCELLED" and event["sequence"] == 2


# --------------------------------------------------------------------------- lost messages


@pytest.fixture
def drop_publishes(monkeypatch):
    """Make the channel layer "lose" the announcements of chosen events (at-most-once delivery)."""
    from graphql_api.live import events as publisher

    dropped: set[int] = set()
    real = publisher.publish_event

    def lossy(event):
        if event.sequence in dropped or event.cursor in dropped:
            return False
        return real(event)

    monkeypatch.setattr(publisher, "publish_event", lossy)
    return dropped


@pytest.mark.parametrize("stream", ["instance", "workflow", "all"])
async def test_a_lost_live_message_is_filled_from_history_before_the_next(
    application, claim_workflows, viewer_session, drop_publishes, stream
):
    instance = await run(start)()
    other = await run(start)("Claim Triage", "other")
    variables = {
        "instance": {"instanceId": instance_gid(instance)},
        "workflow": {"workflowName": "Claim Processing"},
        "all": {},
    }[stream]
    async with GraphQLSocket(application, session_key=viewer_session) as ws:
        sub = await ws.subscribe(**variables)
        await ws.nothing_more(sub, 0.3)
        drop_publishes.update({2, 3})  # the instance's sequences 2 and 3 are never announced

        def changes():
            hold_and_resume(instance)  # sequences 2, 3: lost
            hold_and_resume(other)  # another workflow in between
            services.set_workflow_on_hold(instance)  # sequence 4: announced

        await run(changes)()
        events = await ws.events(
            sub, 3 if stream != "all" else 5, timeout=0.9
        )  # before any idle catch-up
    mine = [e for e in events if e["instance"]["id"] == instance_gid(instance)]
    assert [e["sequence"] for e in mine] == [2, 3, 4]
    assert positions(events) == sorted(set(positions(events)))


async def test_an_idle_stream_catches_up_from_history(
    application, claim_workflows, viewer_session, drop_publishes
):
    instance = await run(start)()
    async with GraphQLSocket(application, session_key=viewer_session) as ws:
        sub = await ws.subscribe(workflowName="Claim Processing")
        await ws.nothing_more(sub, 0.3)
        drop_publishes.add(2)
        await run(services.set_workflow_on_hold)(instance)  # never announced, nothing follows it
        # only the idle catch-up (every 1 s in these tests) can deliver it: the wait ends with it
        [event] = await ws.events(sub, 1)
    assert event["kind"] == "ON_HOLD"


async def test_a_channel_layer_outage_fails_no_mutation_and_is_logged(
    application, claim_workflows, monkeypatch, caplog
):
    class DownLayer:
        async def group_send(self, group, message):
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    import graphql_api.live.events as publisher

    instance = await run(start)()
    monkeypatch.setattr(publisher, "get_channel_layer", lambda: DownLayer())
    with caplog.at_level(logging.ERROR, logger="graphql_api.events"):
        held = await run(services.set_workflow_on_hold)(instance)
        assert held.state == "ON_HOLD"
        assert await run(lambda: WorkflowEvent.objects.filter(instance=instance).count())() == 2
        # Publishing never blocks the committing thread: the failure is logged when it happens.
        for _ in range(100):
            if any("ConnectionError" in (r.exc_text or "") or r.exc_info for r in caplog.records):
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("the failed publish was not logged")


# --------------------------------------------------------------------------- origin check


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [
        (None, True),  # not a browser
        ("http://127.0.0.1:8000", True),  # the socket's own origin
        ("https://app.example.com", True),  # ALLOWED_ORIGINS (a SPA elsewhere)
        ("https://csrf.example.com", True),  # CSRF_TRUSTED_ORIGINS
        ("https://a.sub.example.org", True),  # CSRF_TRUSTED_ORIGINS, subdomain wildcard
        ("http://a.sub.example.org", False),  # ... of another scheme
        ("https://evil.example.net", False),
        ("http://127.0.0.1:3000", False),  # same host, other port
        ("https://127.0.0.1", False),  # other scheme
        ("ftp://127.0.0.1", False),
        ("http://localhost:1337", False),  # another host of ALLOWED_HOSTS
        ("null", False),
    ],
)
async def test_websocket_origin_check(settings, claim_workflows, origin, accepted):
    """In-process (a live server test covers real handshakes: test_origin_live.py)."""
    from channels.testing import WebsocketCommunicator

    from graphql_api.live.routing import get_application

    settings.DJANGO_STEPS_GRAPHQL = {
        **settings.DJANGO_STEPS_GRAPHQL,
        "ALLOWED_ORIGINS": ["https://app.example.com"],
    }
    settings.CSRF_TRUSTED_ORIGINS = ["https://csrf.example.com", "https://*.sub.example.org"]
    headers = [(b"host", b"127.0.0.1:8000")]
    headers += [(b"origin", origin.encode())] if origin else []
    communicator = WebsocketCommunicator(
        get_application(), "/graphql/", headers=headers, subprotocols=["graphql-transport-ws"]
    )
    connected, _ = await communicator.connect()
    assert connected is accepted
    await communicator.disconnect()


# --------------------------------------------------------------------------- one hub per process


async def test_the_channel_layer_carries_each_event_once_per_process(
    application, claim_workflows, viewer_session, settings
):
    """However many sockets subscribe, the process joins the event group with one channel.
    (Counted on the in-memory layer, whose groups can be read; Redis runs the same code.)"""
    import asyncio

    from channels.layers import get_channel_layer

    from graphql_api.live.streams import GROUP

    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    instance = await run(start)()
    layer = get_channel_layer()
    sockets = [GraphQLSocket(application, session_key=viewer_session) for _ in range(3)]
    subscriptions = []
    for ws in sockets:
        await ws.__aenter__()
        subscriptions.append((ws, await ws.subscribe(workflowName="Claim Processing")))
        subscriptions.append((ws, await ws.subscribe(instanceId=instance_gid(instance))))
    try:
        await sockets[0].nothing_more(subscriptions[0][1], 0.3)
        assert len(layer.groups[GROUP]) == 1
        await run(services.set_workflow_on_hold)(instance)
        for ws, sub in subscriptions:
            [event] = await ws.events(sub, 1)
            assert event["kind"] == "ON_HOLD"
    finally:
        for ws in sockets:
            await ws.__aexit__(None, None, None)
    for _ in range(50):  # the last subscription to leave takes the process out of the group
        if not layer.groups.get(GROUP):
            break
        await asyncio.sleep(0.05)
    assert not layer.groups.get(GROUP)


async def test_a_subscriber_that_falls_behind_rereads_the_history(
    application, claim_workflows, viewer_session, drop_publishes, settings
):
    """Past SUBSCRIPTION_BUFFER waiting events a stream drops its buffer and reads the history:
    bounded memory for a slow socket, and still every event once, in order."""
    settings.DJANGO_STEPS_GRAPHQL = {**settings.DJANGO_STEPS_GRAPHQL, "SUBSCRIPTION_BUFFER": 2}
    instance = await run(start)()
    async with GraphQLSocket(application, session_key=viewer_session) as ws:
        sub = await ws.subscribe(instanceId=instance_gid(instance))
        await ws.nothing_more(sub, 0.3)
        drop_publishes.update({2, 3, 4, 5})  # announced together by sequence 6: 5 events at once

        def changes():
            hold_and_resume(instance, times=2)
            services.set_workflow_on_hold(instance)  # sequence 6

        await run(changes)()
        events = await ws.events(sub, 5, timeout=0.9)  # before any idle catch-up
        assert await ws.nothing_more(sub, 0.3)
    assert [e["sequence"] for e in events] == [2, 3, 4, 5, 6]
