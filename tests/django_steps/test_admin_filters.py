"""The admin's workflow list filters (instances, events, work items) offer only the workflows the
user may see: every one with ``view_workflow``, else those of the instances they may see — as
GraphQL shows a definition only with an instance it may show."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib import admin
from django.urls import path

from claims.models import Claim
from django_steps import services
from django_steps.definitions import import_workflow
from tests.conftest import statuses, two_steps
from tests.graphql_api.conftest import make_user

urlpatterns = [path("admin/", admin.site.urls)]

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]

STAFF = (
    "django_steps.view_workflowinstance",
    "django_steps.change_workflowinstance",
    "django_steps.view_workflowevent",
    "django_steps.change_workflowevent",
    "django_steps.view_workitem",
    "claims.view_claim",
)

PAGES = (
    "/admin/django_steps/workflowinstance/",
    "/admin/django_steps/workflowevent/",
    "/admin/django_steps/workitem/",
)


def staff(name: str, *perms: str):
    return make_user(name, *STAFF, *perms, is_staff=True)


@pytest.fixture
def workflows(db):
    """ "Claims Desk" runs on a claim (visible to staff); "Secret Payroll" on a user (not)."""
    assigned = {"assignees": {"groups": ["reviewers"]}}
    for name, content_type in (("Claims Desk", "claims.claim"), ("Secret Payroll", "auth.user")):
        doc = two_steps(name=name, content_types=[content_type])
        doc["steps"][0] = {**doc["steps"][0], **assigned, "statuses": statuses("Open", "Done")}
        import_workflow(doc)
    claim = Claim.objects.create(title="t", claimant="c", amount=Decimal("1"))
    services.start_workflow_instance("Claims Desk", claim)
    services.start_workflow_instance("Secret Payroll", staff("payee"))


@pytest.mark.parametrize("page", PAGES)
def test_a_workflow_the_user_may_not_see_is_not_offered(client, workflows, page):
    client.force_login(staff("staffy"))
    text = client.get(page).content.decode()
    assert "Claims Desk" in text
    assert "Secret Payroll" not in text


@pytest.mark.parametrize("page", PAGES)
def test_view_workflow_offers_every_workflow(client, workflows, page):
    client.force_login(staff("designer", "django_steps.view_workflow"))
    text = client.get(page).content.decode()
    assert "Claims Desk" in text and "Secret Payroll" in text
