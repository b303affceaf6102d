"""Queries and mutations over a WebSocket, as a client sends them (``subscribe`` of a query or a
mutation in graphql-transport-ws; the legacy graphql-ws carries subscriptions only and refuses
them with a code), by the demo's non-superusers:

* every operation answers exactly what the same operation answers over HTTP (no resolver or
  permission check may run in the event loop, where Django refuses ORM calls);
* every operation runs as the socket's user *as of now*: once the session ended (logout over
  HTTP) or the user was deactivated, the socket is anonymous;
* ``logout`` over the socket ends the session, for the socket and for HTTP.

In-process sockets (channels' communicator over the real ASGI application) on any database.
"""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.test import Client
from graphql import parse, print_ast

from claims.models import Claim
from demo.views import CLIENT_DIR, client_operations
from django_steps import services
from django_steps.models import WorkflowInstance, WorkItem

from .conftest import login_session
from .helpers import COMPLETE, GraphQLSocket, error_codes, instance_gid
from .test_roles import _logout, demo  # noqa: F401 - the demo users and their instances

pytestmark = pytest.mark.django_db(transaction=True)

run = database_sync_to_async
User = get_user_model()

RECHECK = 0.3  # SUBSCRIPTION_RECHECK_SECONDS for these tests


@pytest.fixture(autouse=True)
def _quick_recheck(settings):
    settings.DJANGO_STEPS_GRAPHQL = {
        **settings.DJANGO_STEPS_GRAPHQL,
        "SUBSCRIPTION_RECHECK_SECONDS": RECHECK,
    }


def http(session_key: str, query: str, variables: dict | None = None) -> dict:
    """The operation over HTTP with the session cookie (what a browser tab of the same user
    sends)."""
    client = Client()
    client.cookies["sessionid"] = session_key
    body = json.dumps({"query": query, "variables": variables or {}})
    response = client.post("/graphql/", data=body, content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


async def over_socket(ws: GraphQLSocket, query: str, variables: dict | None = None) -> dict:
    """One query or mutation over the socket: its one result, then ``complete``."""
    id_ = await ws.subscribe(query, **(variables or {}))
    payload = await ws.result(id_)
    assert payload is not COMPLETE, "completed without a result"
    assert await ws.result(id_) is COMPLETE
    return payload


def _fragments(*names: str) -> str:
    definitions = parse((CLIENT_DIR / "fragments.graphql").read_text()).definitions
    return "\n".join(print_ast(d) for d in definitions if d.name.value in names)


#: The instance as the dashboard shows it, read over HTTP to compare mutation payloads with.
READ_INSTANCE = (
    "query Read($id: ID!) { workflowInstance(id: $id) { __typename ...InstanceCard } }\n"
    + _fragments("InstanceCard", "StatusFields")
)

#: Reads beyond the client's operations that go through other resolvers: `node` (a plain
#: resolver; each type's is_type_of), `workflowEvents` with a nested node, `me`.
EXTRA_READS = {
    "node instance": "query($id: ID!) { node(id: $id) { id "
    "... on WorkflowInstance { state viewerCan { hold } } } }",
    "node event": "query($event: ID!) { node(id: $event) { id "
    "... on WorkflowEvent { kind cursor instance { id } } } }",
    "node hidden": "query($hidden: ID!) { node(id: $hidden) { id } }",
    "events": "{ workflowEvents(first: 3) { cursor "
    "edges { cursor node { cursor instance { id } } } } }",
    "history": "query($id: ID!) { workflowInstance(id: $id) { lastEvent { id context } "
    "history(first: 5) { edges { node { id context instance { id } } } } } }",
    "me": "{ me { username } }",
}


def _read_variables(name: str, mine: WorkflowInstance, hidden: WorkflowInstance) -> dict:
    event = mine.events.order_by("pk").first()
    return {
        "WorkflowDiagram": {"name": "Claim Processing"},
        "WorkflowVersions": {"name": "Claim Processing"},
        "WorkflowDiff": {"name": "Claim Processing", "fromVersion": 1, "toVersion": 1},
        "WorkflowStats": {"name": "Claim Processing"},
        "WorkflowInstances": {"first": 100},
        "InstanceHistory": {"id": instance_gid(mine)},
        "WorkflowEvents": {"first": 10},
        "EvaluateTransitions": {"instanceId": instance_gid(mine)},
        "node instance": {"id": instance_gid(mine)},
        "node event": {"event": _gid("WorkflowEvent", event.pk)},
        "node hidden": {"hidden": instance_gid(hidden)},
        "history": {"id": instance_gid(mine)},
    }.get(name, {})


def _gid(type_name: str, pk) -> str:
    from strawberry.relay import to_base64

    return to_base64(type_name, pk)


def _kind(document: str) -> str:
    return parse(document).definitions[0].operation.value


async def test_every_read_over_a_socket_answers_as_over_http(application, demo):  # noqa: F811
    """As alice (a claimant: only her own claims), so each single object goes through the
    visibility rule."""
    users, instances = demo
    session = await run(login_session)(users["alice"])
    reads = {name: doc for name, doc in client_operations().items() if _kind(doc) == "query"}
    assert {
        "Workflows",
        "WorkflowCounts",
        "WorkflowInstances",
        "InstanceHistory",
        "WorkflowEvents",
        "EvaluateTransitions",
    } <= set(reads)
    reads.update(EXTRA_READS)
    async with GraphQLSocket(application, session_key=session) as ws:
        for name, document in reads.items():
            variables = await run(_read_variables)(name, instances["alice"], instances["bob"])
            got = await over_socket(ws, document, variables)
            expected = await run(http)(session, document, variables)
            assert "errors" not in got, (name, got)
            assert got == expected, name
    # not vacuous: alice's reads saw her instance, and not bob's
    assert got == {"data": {"me": {"username": "alice"}}}
    assert expected is not None


async def test_every_mutation_over_a_socket_succeeds_once_and_answers_the_instance(
    application,
    demo,  # noqa: F811 - the fixture imported above
):
    """As rita (a reviewer, not a superuser: she may hold and resume) and alice (the claimant: she
    may withdraw). Each successful
    mutation answers the instance as HTTP then reads it, and is applied once, as rita."""
    users, instances = demo
    session = await run(login_session)(users["rita"])
    operations = client_operations()
    claim = await run(Claim.objects.create)(
        title="Fence", claimant="alice", amount=10, owner=users["alice"]
    )
    target = instances["alice"]

    async def applied(name: str, input_: dict | None = None) -> dict:
        """Run the client's mutation ``name`` with ``input_`` (by default: on the target)."""
        if input_ is None:
            input_ = {"instanceId": instance_gid(target)}
        field = name[0].lower() + name[1:]  # the operation is named after its mutation
        before = await run(
            lambda: (
                WorkflowInstance.objects.filter(pk=target.pk)
                .values_list("version", flat=True)
                .first()
            )
        )()
        payload = await over_socket(ws, operations[name], {"input": input_})
        assert "errors" not in payload, (name, payload)
        result = payload["data"][field]
        assert result["__typename"] == "WorkflowInstance", (name, result)
        read = await run(http)(session, READ_INSTANCE, {"id": result["id"]})
        assert {k: result[k] for k in read["data"]["workflowInstance"]} == read["data"][
            "workflowInstance"
        ], name
        if result["id"] == instance_gid(target):
            assert result["version"] == before + 1, name  # applied exactly once
        return result

    async with GraphQLSocket(application, session_key=session) as ws:
        login = await over_socket(ws, operations["Login"], {"username": "rita", "password": "rita"})
        assert login == {
            "data": {
                "login": {
                    "__typename": "User",
                    "id": _gid("User", users["rita"].pk),
                    "username": "rita",
                }
            }
        }
        started = await applied(
            "StartWorkflowInstance",
            {
                "workflowName": "Claim Processing",
                "contentType": "claims.claim",
                "objectId": str(claim.pk),
            },
        )
        assert started["state"] == "ACTIVE"
        # The submission step is alice's work (the demo's assignees). A reviewer may not complete
        # it, so alice cannot hand it to rita: the trusted path gives it to her.
        item = await run(lambda: WorkItem.objects.get(instance=target, closed_at__isnull=True))()
        await run(services.claim_work_item)(item, user=users["rita"])
        card = (await run(http)(session, READ_INSTANCE, {"id": instance_gid(target)}))["data"][
            "workflowInstance"
        ]
        status = next(
            s["name"]
            for s in card["viewerCan"]["statuses"]
            if not (s["isOnHoldStatus"] or s["isCancellationStatus"])
        )
        await applied(
            "SetWorkflowInstanceStatus",
            {"instanceId": instance_gid(target), "status": {"name": status}},
        )
        assert (await applied("HoldWorkflowInstance"))["state"] == "ON_HOLD"
        assert (await applied("ResumeWorkflowInstance"))["state"] == "ACTIVE"
    await run(services.release_work_item)(item, users["rita"])  # back to alice
    # Withdrawing (the cancellation status) needs the claimant's permission: alice cancels.
    session = await run(login_session)(users["alice"])
    async with GraphQLSocket(application, session_key=session) as ws:
        assert (await applied("CancelWorkflowInstance"))["state"] == "CANCELLED"

    actors = await run(
        lambda: list(target.events.order_by("pk").values_list("actor__username", flat=True))
    )()
    assert actors == [
        None,
        None,  # CLAIMED for rita by the trusted path (a note)
        "rita",
        "rita",
        "rita",
        "rita",  # RELEASED (a note)
        "alice",
    ]  # started by the system, then each change once


def _deactivate(user) -> None:
    User.objects.filter(pk=user.pk).update(is_active=False)


UPDATE = """mutation($id: ID!) {
  setWorkflowInstanceStatus(input: {instanceId: $id, status: {name: "Draft"}}) {
  __typename ... on OperationInfo { messages { code } } } }"""
READ = (
    "query($id: ID!) { me { username } workflowInstances(first: 10) { totalCount } "
    "workflowInstance(id: $id) { id } }"
)


@pytest.mark.parametrize("revoke", ["logout", "deactivation"])
async def test_a_socket_whose_session_ended_runs_as_anonymous(application, demo, revoke):  # noqa: F811
    users, instances = demo
    alice, mine = users["alice"], instances["alice"]
    session = await run(login_session)(alice)
    variables = {"id": instance_gid(mine)}
    async with GraphQLSocket(application, session_key=session) as ws:
        before = await over_socket(ws, READ, variables)
        assert before["data"]["me"] == {"username": "alice"} and before["data"]["workflowInstance"]
        version = await run(lambda: WorkflowInstance.objects.get(pk=mine.pk).version)()
        if revoke == "logout":
            await run(_logout)(session)  # over HTTP, with the socket's cookie
        else:
            await run(_deactivate)(alice)
        # A change is refused at once (a mutation reads the user again, whatever the interval)
        refused = await over_socket(ws, UPDATE, variables)
        assert refused == {
            "data": {
                "setWorkflowInstanceStatus": {
                    "__typename": "OperationInfo",
                    "messages": [{"code": "PERMISSION_DENIED"}],
                }
            }
        }
        # reads see nothing, at the latest once the re-check interval has passed
        await _past_the_recheck_interval()
        after = await over_socket(ws, READ, variables)
        assert after == {
            "data": {"me": None, "workflowInstances": {"totalCount": 0}, "workflowInstance": None}
        }
        sub = await ws.subscribe()
        assert error_codes(await ws.result(sub)) == ["PERMISSION_DENIED"]
    assert (
        await run(lambda: WorkflowInstance.objects.get(pk=mine.pk).version)() == version
    )  # nothing applied


async def _past_the_recheck_interval() -> None:
    import asyncio

    await asyncio.sleep(RECHECK * 1.5)  # the decision about the user is kept this long


LOGOUT = "mutation { logout }"
ME = "{ me { username } }"


async def test_logout_over_a_socket_ends_the_session_for_the_socket_and_http(application, demo):  # noqa: F811
    users, instances = demo
    session = await run(login_session)(users["alice"])
    async with GraphQLSocket(application, session_key=session) as ws:
        assert await over_socket(ws, ME) == {"data": {"me": {"username": "alice"}}}
        assert await over_socket(ws, LOGOUT) == {"data": {"logout": True}}
        assert await over_socket(ws, ME) == {"data": {"me": None}}  # at once, no re-check interval
        refused = await over_socket(ws, UPDATE, {"id": instance_gid(instances["alice"])})
        assert refused["data"]["setWorkflowInstanceStatus"]["messages"] == [
            {"code": "PERMISSION_DENIED"}
        ]
        assert await over_socket(ws, LOGOUT) == {"data": {"logout": False}}  # nobody was logged in
        # the cookie is logged out over HTTP too
        assert await run(http)(session, ME) == {"data": {"me": None}}
        # and a login on the same socket works again
        login = 'mutation { login(username: "bob", password: "bob") { __typename } }'
        assert await over_socket(ws, login) == {"data": {"login": {"__typename": "User"}}}
        assert await over_socket(ws, ME) == {"data": {"me": {"username": "bob"}}}


async def test_the_legacy_protocol_refuses_queries_and_mutations_with_a_code(
    application,
    demo,  # noqa: F811 - the fixture imported above
    caplog,
):
    """graphql-ws (subscriptions-transport-ws) runs subscriptions only, as strawberry implements it:
    a query or mutation is refused with BAD_REQUEST (it was "Unexpected error." and a logged
    traceback), nothing is applied, and the socket goes on."""
    from strawberry.subscriptions import GRAPHQL_WS_PROTOCOL

    users, instances = demo
    session = await run(login_session)(users["rita"])
    version = await run(lambda: WorkflowInstance.objects.get(pk=instances["alice"].pk).version)()
    hold = client_operations()["HoldWorkflowInstance"]
    async with GraphQLSocket(application, protocol=GRAPHQL_WS_PROTOCOL, session_key=session) as ws:
        for document, variables in (
            (ME, {}),
            (hold, {"input": {"instanceId": instance_gid(instances["alice"])}}),
        ):
            refused = await ws.result(await ws.subscribe(document, **variables))
            assert (
                refused["errors"]["extensions"]["code"] == "BAD_REQUEST"
            )  # graphql-ws: one error object
            assert "graphql-transport-ws" in refused["errors"]["message"]
        sub = await ws.subscribe()
        assert await ws.nothing_more(sub, 0.3)  # a subscription runs
    assert (
        await run(lambda: WorkflowInstance.objects.get(pk=instances["alice"].pk).version)()
        == version
    )
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
