"""The composed schema over HTTP: the project's own types and django-steps' side by side."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import Client

pytestmark = pytest.mark.django_db

LOGIN = """mutation Login($username: String!, $password: String!) {
  login(username: $username, password: $password) {
    __typename
    ... on WorkflowUser { username }
    ... on OperationInfo { messages { code } }
  }
}"""

INVOICES = """{
  invoices {
    number customer amount
    workflow { id state currentStep { name } currentStepStatus { name } }
  }
}"""

START = """mutation Start($objectId: ID!) {
  startWorkflowInstance(input: {workflowName: "Invoice Approval", contentType: "invoices.invoice",
                                objectId: $objectId}) {
    __typename
    ... on WorkflowInstance { id version currentStep { name } }
    ... on OperationInfo { messages { code message } }
  }
}"""

SET_STATUS = """mutation Set($id: ID!, $status: String!) {
  setWorkflowInstanceStatus(input: {instanceId: $id, status: {name: $status}}) {
    __typename
    ... on WorkflowInstance { version currentStep { name } currentStepStatus { name } }
    ... on OperationInfo { messages { code message } }
  }
}"""


class Browser:
    """A browser session: the CSRF cookie from a GET, sent back in X-CSRFToken on every POST."""

    def __init__(self) -> None:
        self.client = Client(enforce_csrf_checks=True)
        self.client.get("/graphql/", HTTP_ACCEPT="application/json")

    def post(self, query: str, **variables):
        return self.client.post(
            "/graphql/",
            json.dumps({"query": query, "variables": variables}),
            content_type="application/json",
            HTTP_X_CSRFTOKEN=self.client.cookies["csrftoken"].value,
        )

    def __call__(self, query: str, **variables) -> dict:
        response = self.post(query, **variables)
        assert response.status_code == 200, response.content[:500]
        result = response.json()
        assert "errors" not in result, result["errors"]
        return result["data"]

    def login(self, username: str) -> None:
        assert self(LOGIN, username=username, password="pw")["login"] == {
            "__typename": "WorkflowUser",
            "username": username,
        }


def test_both_user_types_compose(clerk):
    browser = Browser()
    assert browser("{ viewer { username } me { username } }") == {"viewer": None, "me": None}
    browser.login("clerk")
    data = browser("{ viewer { __typename username email } me { __typename username } }")
    assert data["viewer"] == {
        "__typename": "User",
        "username": "clerk",
        "email": "clerk@example.com",
    }
    assert data["me"] == {"__typename": "WorkflowUser", "username": "clerk"}


def test_start_a_workflow_on_an_invoice_and_set_statuses(clerk, workflow, invoice):
    browser = Browser()
    browser.login("clerk")
    assert browser(INVOICES)["invoices"] == [
        {"number": "INV-1", "customer": "ACME", "amount": "12500.00", "workflow": None}
    ]

    started = browser(START, objectId=str(invoice.pk))["startWorkflowInstance"]
    assert started["__typename"] == "WorkflowInstance" and started["currentStep"] == {
        "name": "Draft"
    }

    moved = browser(SET_STATUS, id=started["id"], status="Submitted")["setWorkflowInstanceStatus"]
    assert moved["currentStep"] == {"name": "Approval"} and moved["version"] == 2
    # The condition reads the invoice's own fields: 12500 > 10000 needs a second approval.
    moved = browser(SET_STATUS, id=started["id"], status="Approved")["setWorkflowInstanceStatus"]
    assert moved["currentStep"] == {"name": "Second Approval"}

    [row] = browser(INVOICES)["invoices"]
    assert row["workflow"] == {
        "id": started["id"],
        "state": "ACTIVE",
        "currentStep": {"name": "Second Approval"},
        "currentStepStatus": {"name": "Waiting"},
    }

    refused = browser(SET_STATUS, id=started["id"], status="Nope")["setWorkflowInstanceStatus"]
    assert [m["code"] for m in refused["messages"]] == ["UNKNOWN_STATUS"]


INSTANCES = """{
  workflowInstances(first: 10) { totalCount edges { node { id } } }
  workflow(name: "Invoice Approval") { instanceCounts { total } }
}"""

VIEWER_CAN = """query Can($id: ID!) {
  node(id: $id) { ... on WorkflowInstance { viewerCan { statuses { name } } } }
}"""


def test_the_visibility_rule_hides_invoice_workflows_from_who_may_not_see_invoices(
    clerk, outsider, workflow, invoice
):
    from django_steps.services import start_workflow_instance

    start_workflow_instance("Invoice Approval", invoice)
    browser = Browser()
    browser.login("clerk")
    seen = browser(INSTANCES)
    assert seen["workflowInstances"]["totalCount"] == 1 and seen["workflow"]["instanceCounts"] == {
        "total": 1
    }
    browser = Browser()
    browser.login("outsider")  # django-steps' read permissions, not invoices'
    hidden = browser(INSTANCES)
    assert hidden["workflowInstances"] == {"totalCount": 0, "edges": []}
    assert hidden["workflow"]["instanceCounts"] == {"total": 0}


def test_an_object_rule_shows_a_customer_the_workflows_of_their_own_invoices(workflow, invoice):
    from conftest import make_user

    from django_steps.services import start_workflow_instance

    start_workflow_instance("Invoice Approval", invoice)
    # no invoices.view_invoice: invoices/visibility.py says which invoices (their own)
    make_user(invoice.customer, "django_steps.view_workflow", "django_steps.view_workflowinstance")
    browser = Browser()
    browser.login(invoice.customer)
    assert browser(INSTANCES)["workflowInstances"]["totalCount"] == 1


def test_the_second_approval_needs_the_permission_its_status_names(
    clerk, manager, workflow, invoice
):
    from django_steps.services import start_workflow_instance, update_workflow_step_status

    instance = start_workflow_instance("Invoice Approval", invoice)
    update_workflow_step_status(instance, "Submitted")
    update_workflow_step_status(instance, "Approved")  # 12500 > 10000: a second approval
    from strawberry.relay import to_base64

    instance_id = to_base64("WorkflowInstance", instance.pk)
    clerk_browser = Browser()
    clerk_browser.login("clerk")
    can = clerk_browser(VIEWER_CAN, id=instance_id)["node"]["viewerCan"]["statuses"]
    assert [s["name"] for s in can] == ["Waiting"]
    refused = clerk_browser(SET_STATUS, id=instance_id, status="Approved")[
        "setWorkflowInstanceStatus"
    ]
    assert [m["code"] for m in refused["messages"]] == ["PERMISSION_DENIED"]

    manager_browser = Browser()
    manager_browser.login("manager")
    can = manager_browser(VIEWER_CAN, id=instance_id)["node"]["viewerCan"]["statuses"]
    assert [s["name"] for s in can] == ["Waiting", "Approved"]
    moved = manager_browser(SET_STATUS, id=instance_id, status="Approved")[
        "setWorkflowInstanceStatus"
    ]
    assert moved["currentStep"] == {"name": "Payment"} and moved["version"] == 4


def test_our_read_rules_apply_through_the_projects_type(auditor, workflow, invoice):
    from django_steps.services import start_workflow_instance

    start_workflow_instance("Invoice Approval", invoice)
    browser = Browser()
    browser.login("auditor")
    [row] = browser(INVOICES)["invoices"]
    assert row["number"] == "INV-1" and row["workflow"] is None  # the invoice, not its workflow


def test_the_projects_own_permission_rules_still_apply(db, invoice):
    assert Browser()(INVOICES) == {"invoices": []}


def test_our_limits_apply_to_the_projects_fields_too(clerk):
    browser = Browser()
    browser.login("clerk")
    nested = "name " + "".join("steps { workflow { " for _ in range(6)) + "name" + " } }" * 6
    response = browser.post(
        "{ invoices { workflow { workflow { " + nested + " } } } }"
    )  # depth 15 > 10
    assert response.status_code == 200
    assert "exceeds maximum operation depth" in response.json()["errors"][0]["message"]


def test_csrf_failure_is_graphql_json():
    response = Client(enforce_csrf_checks=True).post(
        "/graphql/",
        json.dumps({"query": "{ viewer { username } }"}),
        content_type="application/json",
    )
    assert response.status_code == 403
    assert response.json()["errors"][0]["extensions"] == {"code": "CSRF_FAILED"}


# ---------------------------------------------------------------------------------- GraphiQL


class _Urls(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.urls += [
            value for name, value in attrs if name in {"src", "href", "action", "srcset"} and value
        ]


def test_graphiql_is_served_from_the_installed_package_without_other_hosts(
    client, settings, tmp_path
):
    settings.DEBUG = True  # GraphiQL follows DEBUG
    settings.DJANGO_STEPS_GRAPHQL = {}
    response = client.get("/graphql/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    html = response.content.decode()
    parser = _Urls()
    parser.feed(html)
    assert parser.urls, "the page loads scripts and styles"
    for url in parser.urls:
        parts = urlsplit(url)
        assert parts.scheme == "data" or not (parts.scheme or parts.netloc), (
            f"{url} is on another host"
        )
    for script in re.findall(r"<script[^>]*>(.*?)</script>", html, flags=re.S):
        assert not re.search(r"(?:fetch|import|url)\(\s*['\"]?(?:https?:)?//", script)

    assets = re.findall(r'(?:src|href)="/static/([^"]+)"\s+integrity="sha384-([^"]+)"', html)
    assert len(assets) == 6
    import graphql_api

    package = Path(graphql_api.__file__).resolve().parent
    settings.STATIC_ROOT = str(tmp_path / "static")
    call_command("collectstatic", "--noinput", verbosity=0)
    for path, integrity in assets:
        found = Path(finders.find(path)).resolve()
        assert found.is_relative_to(package), found  # the package's own copy
        content = (tmp_path / "static" / path).read_bytes()  # collected for deployment
        assert base64.b64encode(hashlib.sha384(content).digest()).decode() == integrity


def test_password_guessing_is_throttled(clerk):
    """README step 3: django-axes; the 5th failure to one account from one address locks it out
    from there, then even the right password is TOO_MANY_ATTEMPTS."""
    browser = Browser()
    for attempt in range(1, 6):
        refused = browser(LOGIN, username="clerk", password="wrong")["login"]
        expected = "TOO_MANY_ATTEMPTS" if attempt == 5 else "INVALID_CREDENTIALS"
        assert [m["code"] for m in refused["messages"]] == [expected]
    locked = browser(LOGIN, username="clerk", password="pw")["login"]
    assert [m["code"] for m in locked["messages"]] == ["TOO_MANY_ATTEMPTS"]
