"""The dashboard page and its helpers, through Django's test client."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.http import HttpRequest

from claims.models import Claim
from demo.views import client_operations

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_client(client):
    call_command("demo_setup", stdout=open("/dev/null", "w"))
    # django-axes throttles logins per client address: authenticate() needs the request
    assert client.login(request=HttpRequest(), username="demo", password="demo")
    return client


def embedded_config(response) -> dict:
    match = re.search(
        r'<script id="dashboard-config" type="application/json">(.*?)</script>',
        response.content.decode(),
    )
    assert match, "the page embeds its configuration"
    return json.loads(match.group(1))


def test_anonymous_visitors_are_sent_to_the_login_form(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    login = client.get(response["Location"])
    assert login.status_code == 200
    assert b'name="password"' in login.content


def test_login_form_logs_in_and_lands_on_the_dashboard(client):
    call_command("demo_setup", stdout=open("/dev/null", "w"))
    client.get("/accounts/login/")
    response = client.post(
        "/accounts/login/", {"username": "demo", "password": "demo", "next": "/"}
    )
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_wrong_password_shows_a_legible_error(client):
    call_command("demo_setup", stdout=open("/dev/null", "w"))
    response = client.post("/accounts/login/", {"username": "demo", "password": "nope"})
    assert response.status_code == 200
    assert b"INVALID_CREDENTIALS" in response.content


def test_dashboard_sets_the_csrf_cookie_and_embeds_the_client_operations(demo_client):
    response = demo_client.get("/")
    assert response.status_code == 200
    assert "csrftoken" in response.cookies
    config = embedded_config(response)
    assert config["graphqlPath"] == "/graphql/"
    assert config["operations"] == client_operations()
    assert config["operations"]["InstanceEvents"].startswith("subscription InstanceEvents")
    # Each document carries the fragments it spreads, and only those.
    assert "fragment InstanceCard on WorkflowInstance" in config["operations"]["InstanceEvents"]
    assert "fragment OperationErrors" not in config["operations"]["Workflows"]
    html = response.content.decode()
    assert "/static/graphql_api/vendor/graphql-ws-6.4.2.min.js" in html
    # Nothing is loaded from another host (the CSRF token is random text: look at URLs only).
    assert re.findall(r"(?:src|href)=[\"']?(?:https?:)?//", html) == []


def test_the_migration_preview_is_offered_only_to_who_may_migrate(demo_client, client):
    assert embedded_config(demo_client.get("/"))["mayMigrate"] is True  # the demo superuser
    client.force_login(get_user_model().objects.get(username="rita"))  # a reviewer
    assert embedded_config(client.get("/"))["mayMigrate"] is False


def test_vendored_assets_are_served_without_internet(demo_client):
    for path in (
        "/static/graphql_api/vendor/graphql-ws-6.4.2.min.js",
        "/static/vendor/mermaid-11.17.2.min.js",
        "/static/vendor/uPlot-1.6.32.iife.min.js",
        "/static/demo/dashboard.js",
        "/static/demo/charts.js",
        "/static/demo/dashboard.css",
    ):
        response = demo_client.get(path)
        assert response.status_code == 200, path
        body = b"".join(response.streaming_content)
        assert len(body) > 1000, path
    graphql_ws = b"".join(
        demo_client.get("/static/graphql_api/vendor/graphql-ws-6.4.2.min.js").streaming_content
    )
    assert b"graphqlWs" in graphql_ws and b"createClient" in graphql_ws


def dashboard_labels(client) -> dict[str, str | None]:
    """``{objectId: subject label}`` of the instances the dashboard's list operation returns."""
    document = client_operations()["WorkflowInstances"]
    response = client.post(
        "/graphql/",
        json.dumps({"query": document, "variables": {"first": 100}}),
        content_type="application/json",
        HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value,
    )
    edges = response.json()["data"]["workflowInstances"]["edges"]
    return {
        edge["node"]["objectId"]: (edge["node"]["subject"] or {}).get("label") for edge in edges
    }


def test_the_dashboard_names_attached_objects_through_graphql(demo_client):
    """The labels come with the instances (`subject { label }` in the InstanceCard fragment):
    no side endpoint."""
    demo_client.get("/")  # the CSRF cookie
    claim = Claim.objects.get(title="Broken window")
    assert dashboard_labels(demo_client)[str(claim.pk)] == "Broken window (450.00)"
    assert (
        demo_client.get("/dashboard/labels/", {"ref": f"claims.claim:{claim.pk}"}).status_code
        == 404
    )


def test_demo_user_sees_claims_with_their_workflow_position_in_the_admin(demo_client):
    response = demo_client.get("/admin/claims/claim/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Water damage in kitchen" in html
    assert "Claim Triage: Senior Review / Awaiting Senior Review (Active)" in html
    claim = Claim.objects.get(title="Lost luggage")
    detail = demo_client.get(f"/admin/claims/claim/{claim.pk}/change/")
    assert detail.status_code == 200
    assert "On Hold" in detail.content.decode()
