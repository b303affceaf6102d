"""Fixtures of the host project's tests: a workflow loaded with django-steps' own command, users,
an invoice.

With ``DJANGO_STEPS_FROM_WHEEL=1`` (CI, ``make dist-check``) the tests refuse to run unless
django-steps is imported from an installed distribution (site-packages), not from a checkout.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
WORKFLOW = HERE / "invoices" / "workflows" / "invoice_approval.yaml"


def pytest_configure(config):
    if os.environ.get("DJANGO_STEPS_FROM_WHEEL") == "1":
        import django_steps
        import graphql_api

        for package in (django_steps, graphql_api):
            location = Path(package.__file__).resolve()
            assert "site-packages" in location.parts, (
                f"{package.__name__} comes from {location}, not the wheel"
            )


@pytest.fixture
def workflow(db):
    from django.core.management import call_command

    call_command("load_workflow", str(WORKFLOW), stdout=open(os.devnull, "w"))
    from django_steps.models import Workflow

    return Workflow.objects.get(name="Invoice Approval")


def make_user(username: str, *perms: str):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user(username, f"{username}@example.com", "pw")
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


@pytest.fixture
def clerk(db):
    """Sees invoices and their workflow, and moves it on."""
    return make_user(
        "clerk",
        "invoices.view_invoice",
        "django_steps.view_workflow",
        "django_steps.view_workflowinstance",
        "django_steps.change_workflowinstance",
    )


@pytest.fixture
def manager(db):
    """A clerk who may also change invoices: gives the second approval (README step 9)."""
    return make_user(
        "manager",
        "invoices.view_invoice",
        "invoices.change_invoice",
        "django_steps.view_workflow",
        "django_steps.view_workflowinstance",
        "django_steps.change_workflowinstance",
    )


@pytest.fixture
def outsider(db):
    """Sees django-steps' instances, but not invoices: the visibility rule hides theirs."""
    return make_user("outsider", "django_steps.view_workflow", "django_steps.view_workflowinstance")


@pytest.fixture
def auditor(db):
    """Sees invoices, but not django-steps' workflow instances."""
    return make_user("auditor", "invoices.view_invoice")


@pytest.fixture
def invoice(db):
    from invoices.models import Invoice

    return Invoice.objects.create(number="INV-1", customer="ACME", amount=Decimal("12500.00"))
