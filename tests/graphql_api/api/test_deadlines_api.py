"""Deadlines over GraphQL: a step's `deadline` in and out of definitions, an instance's `dueAt`
and `isOverdue`, the `overdue`/`dueBefore` filters and the `overdue` count, and the events the
worker records, in history."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from claims.models import Claim
from django_steps import deadlines, services
from django_steps.definitions import import_workflow
from tests.conftest import CLAIM_PROCESSING, statuses
from tests.graphql_api.conftest import gid

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)

INSTANCES = """query($filter: WorkflowInstanceFilter, $first: Int) {
  workflowInstances(filters: $filter, first: $first) {
    totalCount
    edges { node { id dueAt isOverdue version
      history(first: 20) { edges { node { kind version actor { username } } } } } }
  }
}"""

COUNTS = """{ workflows(first: 5) { edges { node { name
  instanceCounts { total active overdue }
  steps { name deadline { after status remindBefore } instanceCounts { active overdue } }
} } } }"""


def with_deadline(deadline: dict) -> dict:
    spec = {"name": "Claim Processing", **CLAIM_PROCESSING}
    spec["steps"] = [dict(step) for step in spec["steps"]]
    spec["steps"][1]["deadline"] = deadline
    return spec


def submitted(n: int = 1) -> list:
    instances = []
    for i in range(n):
        claim = Claim.objects.create(title=f"c{i}", claimant="x", amount=Decimal(1))
        instance = services.start_workflow_instance("Claim Processing", claim)
        instances.append(services.update_workflow_step_status(instance, "Submitted"))
    return instances


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def nodes(gql, filters=None, first=20) -> list[dict]:
    data = gql.data(INSTANCES, {"filter": filters, "first": first})
    return [edge["node"] for edge in data["workflowInstances"]["edges"]]


def test_due_at_is_overdue_and_the_events_of_a_passed_deadline(as_admin, clock):
    import_workflow(with_deadline({"after": "PT2H", "remind_before": "PT1H"}))
    waiting = submitted()[0]
    claim = Claim.objects.create(title="new", claimant="x", amount=Decimal(1))
    services.start_workflow_instance("Claim Processing", claim)  # on a step without deadline

    found = {node["id"]: node for node in nodes(as_admin)}
    due = found[gid("WorkflowInstance", waiting.pk)]
    assert due["dueAt"] == (T0 + dt.timedelta(hours=2)).isoformat()
    assert due["isOverdue"] is False
    others = [node for key, node in found.items() if key != gid("WorkflowInstance", waiting.pk)]
    assert [(node["dueAt"], node["isOverdue"]) for node in others] == [(None, False)]

    clock.shift(dt.timedelta(hours=2))
    assert deadlines.run_once() == 2  # the reminder and the deadline
    node = next(n for n in nodes(as_admin) if n["id"] == gid("WorkflowInstance", waiting.pk))
    assert node["isOverdue"] is True
    kinds = [(e["node"]["kind"], e["node"]["version"]) for e in node["history"]["edges"]]
    assert kinds[-2:] == [("REMINDER", 2), ("DEADLINE_PASSED", 2)]
    assert node["version"] == 2
    assert node["history"]["edges"][-1]["node"]["actor"] is None


def test_overdue_and_due_before_filter_instance_lists(as_admin, clock):
    import_workflow(with_deadline({"after": "PT1H"}))
    early = submitted(2)
    clock.shift(dt.timedelta(minutes=30))
    late = submitted(1)
    clock.shift(dt.timedelta(minutes=40))  # the first two are overdue, the last is not

    ids = lambda found: {node["id"] for node in found}  # noqa: E731
    assert ids(nodes(as_admin, {"overdue": True})) == {gid("WorkflowInstance", i.pk) for i in early}
    assert ids(nodes(as_admin, {"overdue": False})) == {gid("WorkflowInstance", i.pk) for i in late}
    horizon = (T0 + dt.timedelta(hours=1, minutes=40)).isoformat()
    assert len(nodes(as_admin, {"dueBefore": horizon})) == 3
    horizon = (T0 + dt.timedelta(minutes=59)).isoformat()
    assert nodes(as_admin, {"dueBefore": horizon}) == []


def test_overdue_is_counted_beside_the_states(as_admin, clock):
    import_workflow(with_deadline({"after": "PT1H", "status": "Approved", "remind_before": "PT5M"}))
    submitted(3)
    clock.shift(dt.timedelta(minutes=59))
    deadlines.run_once()  # reminders only
    header = as_admin.data(COUNTS)["workflows"]["edges"][0]["node"]
    assert header["instanceCounts"] == {"total": 3, "active": 3, "overdue": 0}
    review = next(step for step in header["steps"] if step["name"] == "Review Claim")
    assert review["deadline"] == {"after": "PT1H", "status": "Approved", "remindBefore": "PT5M"}
    # overdue but not yet fired (no worker ran): still counted as overdue
    clock.shift(dt.timedelta(minutes=1))
    header = as_admin.data(COUNTS)["workflows"]["edges"][0]["node"]
    assert header["instanceCounts"] == {"total": 3, "active": 3, "overdue": 3}
    review = next(step for step in header["steps"] if step["name"] == "Review Claim")
    assert review["instanceCounts"] == {"active": 3, "overdue": 3}
    # the worker sets Approved: they advance, and are no longer overdue
    deadlines.run_once()
    header = as_admin.data(COUNTS)["workflows"]["edges"][0]["node"]
    assert header["instanceCounts"] == {"total": 3, "active": 3, "overdue": 0}


def test_counts_read_deadlines_only_when_overdue_is_asked_for(as_admin, clock):
    import_workflow(with_deadline({"after": "PT1H"}))
    submitted(2)
    clock.shift(dt.timedelta(hours=1))
    without = COUNTS.replace(" overdue", "").replace("deadline { after status remindBefore }", "")
    with CaptureQueriesContext(connection) as queries:
        as_admin.data(without)
    assert not [q for q in queries if "workflowtimer" in q["sql"]]
    in_fragment = """{ workflows(first: 5) { edges { node { instanceCounts { ...Late } } } } }
      fragment Late on WorkflowInstanceCounts { overdue }"""
    data = as_admin.data(in_fragment)
    assert data["workflows"]["edges"][0]["node"]["instanceCounts"] == {"overdue": 2}


def test_due_at_costs_no_query_per_instance(as_admin, clock):
    import_workflow(with_deadline({"after": "PT1H"}))
    submitted(12)

    def count(first: int) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert len(nodes(as_admin, {"overdue": False}, first)) == first
        return len(queries)

    assert count(2) == count(12)


CREATE = """mutation($input: WorkflowDefinitionInput!) { createWorkflow(input: $input) {
  __typename ... on Workflow { steps { name deadline { after at status } } }
  ... on OperationInfo { messages { code field } } } }"""


def create_timed(gql, deadline: dict) -> dict:
    """A one-step workflow with ``deadline``, created over GraphQL."""
    step = {
        "name": "Only",
        "isInitialStep": True,
        "isFinalStep": True,
        "deadline": deadline,
        "statuses": [
            {"name": "Open", "isDefaultStatus": True},
            {"name": "Done", "isCompletionStatus": True},
        ],
    }
    document = {"name": "Timed", "contentTypes": ["claims.claim"], "steps": [step]}
    return gql.data(CREATE, {"input": document})["createWorkflow"]


def test_a_deadline_is_defined_through_the_graphql_input(as_admin):
    result = create_timed(as_admin, {"after": "P3D", "status": "Done"})
    assert result["steps"] == [
        {"name": "Only", "deadline": {"after": "P3D", "at": None, "status": "Done"}}
    ]


def test_a_bad_deadline_in_the_graphql_input_is_a_definition_problem(as_admin):
    result = create_timed(as_admin, {"after": "P1M", "at": "claim.created_at"})
    assert result["__typename"] == "OperationInfo"
    assert {m["code"] for m in result["messages"]} == {"INVALID_DEFINITION"}


START = """mutation($workflow: String!, $object: ID!) { startWorkflowInstance(input: {
  workflowName: $workflow, contentType: "claims.claim", objectId: $object}) {
  __typename ... on WorkflowInstance { id dueAt currentStep { name } }
  ... on OperationInfo { messages { code } } } }"""

HOLD = """mutation($id: ID!) { holdWorkflowInstance(input: {instanceId: $id}) { __typename } }"""

RESUME = """mutation($id: ID!) { resumeWorkflowInstance(input: {instanceId: $id}) {
  ... on WorkflowInstance { state dueAt } ... on OperationInfo { messages { code } } } }"""

DUE = """query($id: ID!) { node(id: $id) { ... on WorkflowInstance { state dueAt isOverdue } } }"""


def timed_at(at: str, remind_before: str) -> None:
    """One step, on Claim, whose deadline is ``at`` with a reminder ``remind_before``."""
    step = {
        "name": "Only",
        "is_initial_step": True,
        "is_final_step": True,
        "deadline": {"at": at, "remind_before": remind_before},
        "statuses": statuses("Wait", "Done", hold="Held"),
    }
    import_workflow({"name": "Timed", "content_types": ["claims.claim"], "steps": [step]})


def test_starting_on_a_deadline_in_the_year_1_with_a_reminder_succeeds(as_admin, clock):
    timed_at('timestamp("0001-01-01T00:00:00Z")', "P1D")
    claim = Claim.objects.create(title="old", claimant="x", amount=Decimal(1))
    started = as_admin(START, {"workflow": "Timed", "object": str(claim.pk)})
    assert "errors" not in started
    node = started["data"]["startWorkflowInstance"]
    assert node["dueAt"] == "0001-01-02T00:00:00+00:00"  # held a day inside the calendar
    assert deadlines.run_once() == 2  # the reminder and the deadline, at once
    assert as_admin.data(DUE, {"id": node["id"]})["node"]["isOverdue"] is True


def test_a_deadline_of_9999_12_31_held_and_resumed_stays_readable(as_admin, clock):
    timed_at('timestamp("9999-12-31T23:59:59Z")', "P36500D")
    claim = Claim.objects.create(title="never", claimant="x", amount=Decimal(1))
    node = as_admin.data(START, {"workflow": "Timed", "object": str(claim.pk)})
    instance = node["startWorkflowInstance"]["id"]
    assert as_admin.data(HOLD, {"id": instance})["holdWorkflowInstance"]["__typename"] == (
        "WorkflowInstance"
    )
    clock.shift(dt.timedelta(days=2))
    resumed = as_admin(RESUME, {"id": instance})
    assert "errors" not in resumed
    latest = "9999-12-30T23:59:59.999999+00:00"  # held a day inside the calendar's end
    assert resumed["data"]["resumeWorkflowInstance"] == {"state": "ACTIVE", "dueAt": latest}
    assert as_admin.data(DUE, {"id": instance})["node"] == {
        "state": "ACTIVE",
        "dueAt": latest,
        "isOverdue": False,
    }
    assert deadlines.seconds_to_wait(0.5) == 0.5  # the worker's wait reads it too
    assert deadlines.run_once() == 0
