"""Shared fixtures.

Tests marked ``postgres`` / ``redis`` need those services. Without them they skip with the
reason shown in the summary; with ``DJANGO_STEPS_REQUIRE_SERVICES=1`` (as in CI) a missing
service fails the test instead.
"""

from __future__ import annotations

import os
from decimal import Decimal

import pytest
from django.db import connection

REQUIRE_SERVICES = os.environ.get("DJANGO_STEPS_REQUIRE_SERVICES", "").lower() in {
    "1",
    "true",
    "yes",
}


def _missing_service(item) -> str | None:
    if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
        return "needs PostgreSQL: set DATABASE_URL=postgres://... (CI does)"
    if item.get_closest_marker("redis") and not os.environ.get("REDIS_URL"):
        return "needs Redis: set REDIS_URL=redis://... (CI does)"
    if item.get_closest_marker("browser"):
        from tests.e2e.tools import missing_browser_tools

        return missing_browser_tools()
    if item.get_closest_marker("typescript"):
        from tests.demo.test_typescript_codegen import missing_typescript_tools

        return missing_typescript_tools()
    return None


def pytest_runtest_setup(item):
    reason = _missing_service(item)
    if reason:
        if REQUIRE_SERVICES:
            pytest.fail(
                f"DJANGO_STEPS_REQUIRE_SERVICES is set but the service is missing: {reason}"
            )
        pytest.skip(reason)


#: The models the test workflows may be started on (a spec's "content_types" overrides it).
TEST_MODELS = ("claims.claim", "testapp.document", "testapp.uuidthing", "testapp.codething")


def make_workflow(name: str, spec: dict, *, publish: bool = True) -> Workflow:  # noqa: F821
    """Build a workflow through the ORM from a compact spec (the definition document shape) and
    publish it as its first version (``publish=False``: leave it a draft). Specs may be what
    documents refuse (unreachable steps): published unvalidated, as the trusted path may."""
    from django.contrib.contenttypes.models import ContentType

    from django_steps.models import Workflow, WorkflowStep, WorkflowStepStatus, WorkflowTransition

    workflow = Workflow.objects.create(name=name, description=spec.get("description", ""))
    for label in spec.get("content_types", TEST_MODELS):
        app_label, model = label.split(".")
        workflow.content_types.add(ContentType.objects.get_by_natural_key(app_label, model))
    steps = {}
    for order, step in enumerate(spec["steps"], start=1):
        steps[step["name"]] = WorkflowStep.objects.create(
            workflow=workflow,
            name=step["name"],
            order=step.get("order", order),
            is_initial_step=step.get("is_initial_step", False),
            is_final_step=step.get("is_final_step", False),
        )
        for status in step.get("statuses", []):
            WorkflowStepStatus.objects.create(step=steps[step["name"]], **status)
    for t in spec.get("transitions", []):
        WorkflowTransition.objects.create(
            workflow=workflow,
            from_step=steps[t["from_step"]],
            to_step=steps[t["to_step"]],
            condition=t.get("condition", ""),
            priority=t.get("priority", 0),
            description=t.get("description", ""),
        )
    if publish:
        from django_steps.versions import publish_workflow

        publish_workflow(workflow, validate=False)
    workflow.refresh_from_db()
    return workflow


#: The original README's "Claim Processing" workflow; its first and last steps got a default
#: status (the original had none there, which left a new instance without a status).
CLAIM_PROCESSING = {
    "content_types": ["claims.claim"],
    "steps": [
        {
            "name": "Submit Claim",
            "is_initial_step": True,
            "statuses": [
                {"name": "Draft", "is_default_status": True},
                {"name": "Submitted", "is_completion_status": True},
                {"name": "On Hold", "is_on_hold_status": True},
                {"name": "Withdrawn", "is_cancellation_status": True},
            ],
        },
        {
            "name": "Review Claim",
            "statuses": [
                {"name": "Under Review", "is_default_status": True},
                {"name": "Approved", "is_completion_status": True},
                {"name": "Rejected", "is_completion_status": True},
            ],
        },
        {
            "name": "Approve/Reject",
            "is_final_step": True,
            "statuses": [
                {"name": "Awaiting Decision", "is_default_status": True},
                {"name": "Approved", "is_completion_status": True},
                {"name": "Rejected", "is_completion_status": True},
            ],
        },
    ],
    "transitions": [
        {"from_step": "Submit Claim", "to_step": "Review Claim"},
        {"from_step": "Review Claim", "to_step": "Approve/Reject"},
    ],
}


@pytest.fixture
def claim_workflow(db):
    return make_workflow("Claim Processing", CLAIM_PROCESSING)


@pytest.fixture
def claim(db):
    from claims.models import Claim

    return Claim.objects.create(title="Broken window", claimant="Ada", amount=Decimal("1500.00"))
