"""Login throttling (django-axes): repeated failed logins to one account from one client address
lock that account out from that address — in the GraphQL ``login`` mutation (HTTP and
WebSocket) and the admin — for the cool-off time (other accounts at that address stay free);
GraphQL answers ``TOO_MANY_ATTEMPTS``, the admin axes' 429 page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from tests.graphql_api import operations as ops
from tests.graphql_api.conftest import GQL, make_user

LOGIN = (
    'mutation { login(username: "%s", password: "%s") { __typename ... on User { username } '
    "... on OperationInfo { messages { kind code message } } } }"
)


def login(gql: GQL, username: str, password: str) -> dict:
    return gql.data(LOGIN % (username, password))["login"]


def code(payload: dict) -> str | None:
    return payload["messages"][0]["code"] if payload["__typename"] == "OperationInfo" else None


def fail_until_locked(gql: GQL, username: str = "ada") -> list[str | None]:
    return [code(login(gql, username, "wrong")) for _ in range(settings.AXES_FAILURE_LIMIT)]


@pytest.fixture
def ada(db):
    return make_user("ada", "django_steps.view_workflow")


def test_graphql_login_is_locked_after_repeated_failures(ada, as_viewer, monkeypatch):
    gql = GQL(Client())
    codes = fail_until_locked(gql)
    assert codes == ["INVALID_CREDENTIALS"] * (settings.AXES_FAILURE_LIMIT - 1) + [
        "TOO_MANY_ATTEMPTS"
    ]

    checked = []
    monkeypatch.setattr(ModelBackend, "authenticate", lambda *a, **k: checked.append(1))
    response = gql.post(LOGIN % ("ada", "pw"))
    assert response.status_code == 200  # GraphQL's shape, not axes' 429 page
    [message] = response.json()["data"]["login"]["messages"]
    assert message["code"] == "TOO_MANY_ATTEMPTS" and message["kind"] == "PERMISSION"
    assert "15 minutes" in message["message"]
    assert not checked, "no password is checked while locked out"
    assert "sessionid" not in response.cookies
    monkeypatch.undo()

    # the server answers other requests, and other addresses may log in
    assert as_viewer.data("{ workflows { totalCount } }")["workflows"]["totalCount"] == 0
    assert login(GQL(Client(REMOTE_ADDR="10.1.2.3")), "ada", "pw")["username"] == "ada"
    # an operator lifts the lockout early
    call_command("axes_reset_ip", "127.0.0.1", stdout=open("/dev/null", "w"))
    assert login(gql, "ada", "pw")["username"] == "ada"
    assert gql.data(ops.ME)["me"]["username"] == "ada"


def test_a_lockout_of_one_user_from_an_address_leaves_other_users_there_free(ada):
    """Behind one NAT, an attacker guessing ada's password locks ada out from that address, not
    her colleague who shares it (django-axes locks out the username and address together)."""
    make_user("bea")
    office = GQL(Client(REMOTE_ADDR="198.51.100.7"))
    assert fail_until_locked(office, "ada")[-1] == "TOO_MANY_ATTEMPTS"
    assert code(login(office, "ada", "pw")) == "TOO_MANY_ATTEMPTS"  # still locked, right password

    colleague = GQL(Client(REMOTE_ADDR="198.51.100.7"))
    assert login(colleague, "bea", "pw")["username"] == "bea"
    # and ada herself, from another address
    assert login(GQL(Client(REMOTE_ADDR="203.0.113.9")), "ada", "pw")["username"] == "ada"


def test_the_lockout_ends_after_the_cool_off(ada):
    from axes.models import AccessAttempt

    gql = GQL(Client())
    assert fail_until_locked(gql)[-1] == "TOO_MANY_ATTEMPTS"
    assert code(login(gql, "ada", "pw")) == "TOO_MANY_ATTEMPTS"
    AccessAttempt.objects.update(
        attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    )
    assert login(gql, "ada", "pw")["username"] == "ada"


def test_admin_login_is_throttled_with_axes_lockout_page(ada):
    admin = Client()
    form = {"username": "ada", "password": "wrong", "next": "/admin/"}
    statuses = [
        admin.post("/admin/login/", form).status_code for _ in range(settings.AXES_FAILURE_LIMIT)
    ]
    assert statuses[:-1] == [200] * (
        settings.AXES_FAILURE_LIMIT - 1
    )  # the form again, with an error
    locked = admin.post("/admin/login/", {**form, "password": "pw"})
    assert locked.status_code == 429
    assert b"too many login attempts" in locked.content.lower()
    # the same address is locked out of the GraphQL login too; other requests still work
    gql = GQL(Client())
    assert code(login(gql, "ada", "pw")) == "TOO_MANY_ATTEMPTS"
    assert gql.data("{ workflows { totalCount } }")["workflows"]["totalCount"] == 0


@pytest.mark.django_db(transaction=True)
async def test_login_over_a_websocket_is_throttled_and_logs_the_socket_in():
    from graphql_api.live.routing import get_application
    from tests.graphql_api.live.helpers import GraphQLSocket

    await database_sync_to_async(make_user)("ada")
    socket = GraphQLSocket(get_application())
    socket.communicator.scope["client"] = ("10.9.8.7", 50123)  # what daphne and uvicorn pass
    async with socket as ws:

        async def socket_login(password: str) -> dict:
            result = await ws.result(await ws.subscribe(LOGIN % ("ada", password)))
            return result["data"]["login"]

        codes = [code(await socket_login("wrong")) for _ in range(settings.AXES_FAILURE_LIMIT)]
        assert codes[-1] == "TOO_MANY_ATTEMPTS" and set(codes[:-1]) == {"INVALID_CREDENTIALS"}
        assert code(await socket_login("pw")) == "TOO_MANY_ATTEMPTS"
        await database_sync_to_async(call_command)("axes_reset", stdout=open("/dev/null", "w"))
        assert (await socket_login("pw"))["username"] == "ada"
        me = await ws.result(await ws.subscribe(ops.ME))
        assert me["data"]["me"]["username"] == "ada"
