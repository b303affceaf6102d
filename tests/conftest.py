"""Shared fixtures.

Tests marked ``postgres`` / ``redis`` need those services. Without them they skip with the
reason shown in the summary; with ``DJANGO_STEPS_REQUIRE_SERVICES=1`` (as in CI) a missing
service fails the test instead.
"""

from __future__ import annotations

import os
import time
from decimal import Decimal

import pytest
from django.db import connection
from strawberry.utils.str_converters import to_camel_case

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


def statuses(
    default: str, *completions: str, hold: str | None = None, cancellation: str | None = None
) -> list[dict]:
    """A step's statuses in a spec: its default, its completion statuses, an on-hold and a
    cancellation status, in that order."""
    flagged = [(default, "is_default_status")]
    flagged += [(name, "is_completion_status") for name in completions]
    flagged += [
        (name, flag)
        for name, flag in ((hold, "is_on_hold_status"), (cancellation, "is_cancellation_status"))
        if name
    ]
    return [{"name": name, flag: True} for name, flag in flagged]


def two_steps(
    first: str = "A",
    second: str = "B",
    *,
    first_statuses: list[dict] | None = None,
    second_statuses: list[dict] | None = None,
    condition: str | None = None,
    priority: int | None = None,
    **spec,
) -> dict:
    """A spec (or definition document) of two steps: ``first``, initial, leads to ``second``,
    final, under ``condition``; each step has "Open" (default) and "Done" (completion) unless
    given other statuses. ``spec`` adds top-level keys (name, description, content_types)."""
    transition = {"from_step": first, "to_step": second}
    if condition is not None:
        transition["condition"] = condition
    if priority is not None:
        transition["priority"] = priority
    return {
        **spec,
        "steps": [
            {
                "name": first,
                "is_initial_step": True,
                "statuses": first_statuses or statuses("Open", "Done"),
            },
            {
                "name": second,
                "is_final_step": True,
                "statuses": second_statuses or statuses("Open", "Done"),
            },
        ],
        "transitions": [transition],
    }


def fork(start: str, yes: str, no: str, condition: str, *, priority: int = 1, **spec) -> dict:
    """A spec where ``start`` (initial) leads to ``yes`` when ``condition`` holds, else to ``no``
    (both final); each step has "Open" (default) and "Done" (completion)."""
    done = statuses("Open", "Done")
    return {
        **spec,
        "steps": [
            {"name": start, "is_initial_step": True, "statuses": done},
            {"name": yes, "is_final_step": True, "statuses": done},
            {"name": no, "is_final_step": True, "statuses": done},
        ],
        "transitions": [
            {"from_step": start, "to_step": yes, "condition": condition, "priority": priority},
            {"from_step": start, "to_step": no, "priority": 0},
        ],
    }


def camel(value):
    """A definition document as GraphQL input (camelCase keys, as the schema names them)."""
    if isinstance(value, dict):
        return {to_camel_case(key): camel(item) for key, item in value.items()}
    if isinstance(value, list):
        return [camel(item) for item in value]
    return value


#: The demo's "Claim Processing" workflow (the README's definition example); its first and last
#: steps have a default status, so that a new instance always has one.
CLAIM_PROCESSING = {
    "content_types": ["claims.claim"],
    "steps": [
        {
            "name": "Submit Claim",
            "is_initial_step": True,
            "statuses": statuses("Draft", "Submitted", hold="On Hold", cancellation="Withdrawn"),
        },
        {"name": "Review Claim", "statuses": statuses("Under Review", "Approved", "Rejected")},
        {
            "name": "Approve/Reject",
            "is_final_step": True,
            "statuses": statuses("Awaiting Decision", "Approved", "Rejected"),
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


#: How long :func:`wait_until_final` waits at most: generous, for a loaded machine.
FINAL_WITHIN = 30.0


def wait_until_final(within: float = FINAL_WITHIN, *, in_transaction_ok: bool = False) -> None:
    """Return once every stored event is final — below the history's horizon, so that reads of
    committed events (``workflowEvents``, a replay) see them all. On PostgreSQL the horizon is
    the cluster's: a transaction of any client of the server (another test run sharing it, a
    loaded machine's slow commit) holds it back for a while; this polls until it passed, up to
    ``within`` seconds. At once on SQLite. Call it outside any transaction (autocommit): one's
    own open transaction would hold the horizon back forever (``in_transaction_ok``: then
    return at once instead of failing)."""
    from django.db import connections, router

    from django_steps import history
    from django_steps.models import WorkflowEvent

    using = router.db_for_read(WorkflowEvent)
    if connections[using].in_atomic_block:
        assert in_transaction_ok, "inside a transaction: the wait would never end"
        return
    newest = WorkflowEvent.objects.using(using).order_by("-txid", "-position").first()
    if newest is None:
        return
    deadline = time.monotonic() + within
    while history.horizon(using) <= newest.cursor:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the history's horizon did not pass the newest event in {within}s")
        time.sleep(0.05)
