"""Fixtures of the GraphQL tests: users with and without permissions, and a client helper that
posts operations to ``/graphql/`` through Django's middleware (sessions, CSRF)."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.test import Client
from strawberry import relay

from claims.models import Claim
from django_steps.services import start_workflow_instance, update_workflow_step_status

ENDPOINT = "/graphql/"


def _error_codes() -> set[str]:
    from graphql_api.security.error_codes import WorkflowErrorCode

    return {member.value for member in WorkflowErrorCode}


ERROR_CODES = _error_codes()


def gid(type_name: str, pk: Any) -> str:
    return relay.to_base64(type_name, pk)


class GQL:
    """Posts GraphQL operations as a browser would: JSON body, session cookie, CSRF header."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def post(self, query: str, variables: dict | None = None, **extra: Any):
        body = {"query": query, "variables": variables or {}}
        return self.client.post(
            ENDPOINT, data=json.dumps(body), content_type="application/json", **extra
        )

    def __call__(self, query: str, variables: dict | None = None, **extra: Any) -> dict:
        response = self.post(query, variables, **extra)
        assert response.status_code == 200, response.content
        result = response.json()
        for error in result.get("errors") or ():  # one typed error model: every code is the enum's
            assert (error.get("extensions") or {}).get("code") in ERROR_CODES, error
        return result

    def data(self, query: str, variables: dict | None = None) -> dict:
        result = self(query, variables)
        assert "errors" not in result, result["errors"]
        return result["data"]


def make_user(
    username: str, *perms: str, superuser: bool = False, groups: tuple[str, ...] = (), **extra
) -> User:
    """A user with password "pw", ``perms`` and ``groups``; ``extra``: more model fields."""
    if superuser:
        return User.objects.create_superuser(username, f"{username}@example.com", "pw")
    user = User.objects.create_user(username, f"{username}@example.com", "pw", **extra)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    for name in groups:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user


VIEW = ("django_steps.view_workflow", "django_steps.view_workflowinstance")

#: The test settings are the demo's: claims are seen by their owner and by reviewers
#: (claims/rules.py, claims/visibility.py). The generic test users below are reviewers, so they
#: see every claim; tests/graphql_api/api/test_roles.py tests the demo's claimants.
STAFF = ("reviewers",)


@pytest.fixture
def admin_user(db):
    return make_user("admin", superuser=True)


@pytest.fixture
def operator(db):
    """Reads everything and changes instances."""
    return make_user("operator", *VIEW, "django_steps.change_workflowinstance", groups=STAFF)


@pytest.fixture
def viewer(db):
    return make_user("viewer", *VIEW, groups=STAFF)


@pytest.fixture
def designer(db):
    return make_user(
        "designer",
        *VIEW,
        "django_steps.add_workflow",
        "django_steps.change_workflow",
        "django_steps.delete_workflow",
        groups=STAFF,
    )


@pytest.fixture
def nobody(db):
    """Logged in, without any permission."""
    return make_user("nobody")


def client_for(user: User | None) -> GQL:
    client = Client()
    if user is not None:
        client.force_login(user)
    return GQL(client)


def logged_in_as(user_fixture: str | None):
    """A fixture: a GraphQL client logged in as the user that the fixture named ``user_fixture``
    makes (anonymous with None)."""

    @pytest.fixture
    def fixture(db, request) -> GQL:
        return client_for(request.getfixturevalue(user_fixture) if user_fixture else None)

    return fixture


anon = logged_in_as(None)
as_admin = logged_in_as("admin_user")
as_operator = logged_in_as("operator")
as_viewer = logged_in_as("viewer")
as_designer = logged_in_as("designer")
as_nobody = logged_in_as("nobody")


@pytest.fixture
def instance(claim_workflow, claim):
    return start_workflow_instance("Claim Processing", claim)


def submitted_claims(count: int, actor: User) -> None:
    """``count`` claims on "Claim Processing", each submitted by ``actor`` (an ADVANCED event,
    with a transition)."""
    claims = Claim.objects.bulk_create(
        [Claim(title=f"c{i}", claimant="Ada", amount=Decimal(i)) for i in range(count)]
    )
    for claim in claims:
        instance = start_workflow_instance("Claim Processing", claim, actor=actor)
        update_workflow_step_status(instance, "Submitted", actor=actor)


def codes(payload: dict) -> list[str]:
    """The codes of an ``OperationInfo`` payload."""
    assert payload.get("__typename") == "OperationInfo", payload
    return [m["code"] for m in payload["messages"]]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def bad_input(result: dict) -> dict:
    """The single BAD_USER_INPUT error of a refused request (nothing resolved)."""
    assert result.get("data") is None, result
    [error] = result["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    return error


def post_raw(gql: GQL, query: str, variables_json: str) -> dict:
    """POST a body whose variables are raw JSON text (Python's json accepts NaN and Infinity)."""
    body = f'{{"query": {json.dumps(query)}, "variables": {variables_json}}}'
    response = gql.client.post(ENDPOINT, body, content_type="application/json")
    assert response.status_code == 200, response.content[:300]
    return response.json()
