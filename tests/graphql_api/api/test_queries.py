"""Every query through ``/graphql/``: connections, filters, ordering, node, dry run, me."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from django_steps.services import start_workflow_instance, update_workflow_step_status
from tests.conftest import make_workflow
from tests.graphql_api import operations as ops
from tests.graphql_api.api.test_mutations import ROUTED
from tests.graphql_api.conftest import gid

pytestmark = pytest.mark.django_db


@pytest.fixture
def claims(db):
    from claims.models import Claim

    return [
        Claim.objects.create(title=f"c{i}", claimant="Ada", amount=Decimal(100 * i))
        for i in range(1, 6)
    ]


@pytest.fixture
def population(claim_workflow, claims):
    """Five claim instances: two moved on to "Review Claim", one on hold, one cancelled."""
    from django_steps.services import cancel_workflow_instance, set_workflow_on_hold

    make_workflow("Routed", ROUTED)
    instances = [start_workflow_instance("Claim Processing", c) for c in claims]
    for i in instances[:2]:
        update_workflow_step_status(i, "Submitted")
    set_workflow_on_hold(instances[2])
    cancel_workflow_instance(instances[3])
    routed = start_workflow_instance("Routed", claims[0])
    return instances + [routed]


def names(connection):
    return [edge["node"]["name"] for edge in connection["edges"]]


def test_workflows_connection_with_steps_transitions_and_mermaid(as_viewer, claim_workflow):
    make_workflow("Routed", ROUTED)
    data = as_viewer.data(ops.WORKFLOWS)["workflows"]
    assert data["totalCount"] == 2 and names(data) == ["Claim Processing", "Routed"]
    claim = data["edges"][0]["node"]
    assert [s["name"] for s in claim["steps"]] == ["Submit Claim", "Review Claim", "Approve/Reject"]
    assert claim["steps"][0]["isInitialStep"] and claim["steps"][2]["isFinalStep"]
    assert [s["name"] for s in claim["steps"][0]["statuses"]] == [
        "Draft",
        "Submitted",
        "On Hold",
        "Withdrawn",
    ]
    assert "flowchart" in claim["mermaid"] and "Review Claim" in claim["mermaid"]
    routed = data["edges"][1]["node"]
    assert [t["priority"] for t in routed["transitions"]][:2] == [10, 5]


def test_workflows_filters_ordering_and_pages(as_viewer, claim_workflow):
    make_workflow("Routed", ROUTED)
    assert names(as_viewer.data(ops.WORKFLOWS, {"filters": {"name": "Routed"}})["workflows"]) == [
        "Routed"
    ]
    assert names(
        as_viewer.data(ops.WORKFLOWS, {"filters": {"nameContains": "claim"}})["workflows"]
    ) == ["Claim Processing"]
    assert names(as_viewer.data(ops.WORKFLOWS, {"ordering": [{"name": "DESC"}]})["workflows"]) == [
        "Routed",
        "Claim Processing",
    ]
    first = as_viewer.data(ops.WORKFLOWS, {"first": 1})["workflows"]
    assert names(first) == ["Claim Processing"] and first["pageInfo"]["hasNextPage"]
    second = as_viewer.data(ops.WORKFLOWS, {"first": 1, "after": first["pageInfo"]["endCursor"]})[
        "workflows"
    ]
    assert names(second) == ["Routed"] and not second["pageInfo"]["hasNextPage"]


def test_workflow_by_name_with_its_instances(as_viewer, instance):
    data = as_viewer.data(ops.WORKFLOW, {"name": "Claim Processing"})["workflow"]
    assert data["id"] == gid("Workflow", instance.workflow_id)
    assert data["instances"]["totalCount"] == 1
    assert data["steps"][0]["outgoingTransitions"] == [{"toStep": {"name": "Review Claim"}}]
    assert as_viewer.data(ops.WORKFLOW, {"name": "Nope"})["workflow"] is None


def _ids(result):
    return [edge["node"]["id"] for edge in result["workflowInstances"]["edges"]]


def test_instances_filters(as_viewer, population, claims):
    def count(filters):
        return as_viewer.data(ops.INSTANCES, {"filters": filters})["workflowInstances"][
            "totalCount"
        ]

    assert count(None) == 6
    assert count({"workflowName": "Claim Processing"}) == 5
    assert count({"workflowName": "Routed"}) == 1
    assert count({"state": "ON_HOLD"}) == 1
    assert count({"state": "CANCELLED"}) == 1
    assert count({"state": "ACTIVE", "workflowName": "Claim Processing"}) == 3
    assert count({"currentStepName": "Review Claim"}) == 2
    assert count({"contentType": "claims.claim"}) == 6
    assert count({"contentType": "claims.CLAIM"}) == 6
    assert count({"contentType": "testapp.document"}) == 0
    assert count({"contentType": "garbage"}) == 0
    assert count({"contentType": "claims.claim", "objectId": str(claims[0].pk)}) == 2
    now = timezone.now()
    assert count({"startedAfter": (now - timedelta(hours=1)).isoformat()}) == 6
    assert count({"startedBefore": (now - timedelta(hours=1)).isoformat()}) == 0
    assert count({"startedAfter": (now + timedelta(hours=1)).isoformat()}) == 0
    assert count({"OR": {"state": "ON_HOLD"}, "state": "CANCELLED"}) == 2


def test_instances_ordering_and_pagination(as_viewer, population):
    default = _ids(as_viewer.data(ops.INSTANCES))
    newest_first = [
        gid("WorkflowInstance", i.pk)
        for i in sorted(population, key=lambda i: (i.started_at, i.pk))
    ][::-1]
    assert default == newest_first
    by_version = as_viewer.data(
        ops.INSTANCES, {"ordering": [{"version": "DESC"}, {"startedAt": "ASC"}]}
    )
    versions = [e["node"]["version"] for e in by_version["workflowInstances"]["edges"]]
    assert versions == sorted(versions, reverse=True)

    page1 = as_viewer.data(ops.INSTANCES, {"first": 4})["workflowInstances"]
    page2 = as_viewer.data(ops.INSTANCES, {"first": 4, "after": page1["pageInfo"]["endCursor"]})[
        "workflowInstances"
    ]
    assert len(page1["edges"]) == 4 and page1["pageInfo"]["hasNextPage"]
    assert len(page2["edges"]) == 2 and not page2["pageInfo"]["hasNextPage"]
    last = as_viewer.data(ops.INSTANCES, {"last": 2})["workflowInstances"]
    assert [e["node"]["id"] for e in last["edges"]] == default[-2:]


def test_instance_fields_and_history_oldest_first(as_operator, routed_instance_via_api):
    instance = routed_instance_via_api
    data = as_operator.data(ops.INSTANCE, {"id": gid("WorkflowInstance", instance.pk)})[
        "workflowInstance"
    ]
    assert data["contentType"] == "claims.claim" and data["objectId"] == str(instance.object_id)
    assert data["workflow"]["name"] == "Routed"
    kinds = [e["kind"] for e in ops.events(data)]
    assert kinds == ["STARTED", "NO_TRANSITION", "ADVANCED"]
    assert [e["sequence"] for e in ops.events(data)] == [1, 2, 3]
    cursors = [int(e["cursor"]) for e in ops.events(data)]
    assert cursors == sorted(cursors)
    started, no_transition, advanced = ops.events(data)
    assert started["fromStep"] is None and started["toStep"]["name"] == "Review"
    assert no_transition["requestedStatus"]["name"] == "Done"
    # what the conditions read: the claim's fields and, apart, the caller's input
    assert no_transition["context"]["object"]["amount"] == "500.00"
    assert no_transition["context"]["input"] == {"amount": 500}
    assert advanced["transition"]["condition"] == "amount > 1000"
    assert (advanced["fromStep"]["name"], advanced["toStep"]["name"]) == ("Review", "Manager")
    assert advanced["actor"]["username"] == "operator"
    assert advanced["instance"]["id"] == data["id"] and advanced["workflow"]["name"] == "Routed"


@pytest.fixture
def routed_instance_via_api(as_operator, claim):
    from django_steps.services import advance_workflow_instance

    make_workflow("Routed", ROUTED)
    instance = start_workflow_instance("Routed", claim)
    type(claim).objects.filter(pk=claim.pk).update(amount=500)
    update_workflow_step_status(instance, "Done", {"amount": 500})
    from django.contrib.auth.models import User

    type(claim).objects.filter(pk=claim.pk).update(amount=5000)
    advance_workflow_instance(
        instance, {"amount": 5000}, actor=User.objects.get(username="operator")
    )
    return instance


def test_workflow_instance_unknown_and_malformed_ids(as_viewer, instance):
    assert (
        as_viewer.data(ops.INSTANCE, {"id": gid("WorkflowInstance", instance.pk + 99)})[
            "workflowInstance"
        ]
        is None
    )
    for bad in ("garbage", gid("Workflow", instance.workflow_id), gid("WorkflowInstance", "x")):
        result = as_viewer(ops.INSTANCE, {"id": bad})
        assert result["data"] == {"workflowInstance": None}
        assert result["errors"][0]["extensions"]["code"] == "INVALID_ID"


def test_node_resolves_every_type(as_viewer, routed_instance_via_api):
    instance = routed_instance_via_api
    event = instance.events.order_by("sequence").last()
    step = instance.workflow.steps.first()
    cases = {
        gid("Workflow", instance.workflow_id): ("Workflow", "name", "Routed"),
        gid("WorkflowStep", step.pk): ("WorkflowStep", "name", step.name),
        gid("WorkflowStepStatus", step.statuses.first().pk): ("WorkflowStepStatus", "name", "Open"),
        gid("WorkflowTransition", event.transition_id): (
            "WorkflowTransition",
            "condition",
            "amount > 1000",
        ),
        gid("WorkflowInstance", instance.pk): ("WorkflowInstance", "state", "ACTIVE"),
        gid("WorkflowEvent", event.pk): ("WorkflowEvent", "kind", "ADVANCED"),
    }
    for node_id, (typename, field, value) in cases.items():
        node = as_viewer.data(ops.NODE, {"id": node_id})["node"]
        assert (node["__typename"], node["id"], node[field]) == (typename, node_id, value)
    assert as_viewer.data(ops.NODE, {"id": gid("WorkflowEvent", 10**6)})["node"] is None


def test_user_is_a_node_the_viewer_reads_by_global_id(as_viewer, viewer, operator):
    me = as_viewer.data("{ me { id username } }")["me"]
    assert me == {"id": gid("User", viewer.pk), "username": "viewer"}
    node = as_viewer.data(
        "query($id: ID!) { node(id: $id) { __typename id ... on User { username } } }",
        {"id": me["id"]},
    )["node"]
    assert node == {"__typename": "User", "id": me["id"], "username": "viewer"}
    # Another account: only with auth.view_user (an actor is shown with the event instead).
    assert as_viewer.data(ops.NODE, {"id": gid("User", operator.pk)})["node"] is None


@pytest.mark.parametrize("bad", ["garbage", "", gid("Nope", 1), gid("Workflow", "x"), "🙂" * 50])
def test_node_with_malformed_ids_is_a_coded_error(as_viewer, bad):
    result = as_viewer(ops.NODE, {"id": bad})
    assert result["data"] == {"node": None}
    assert result["errors"][0]["extensions"]["code"] == "INVALID_ID"


def test_evaluate_transitions_dry_run(as_viewer, claim):
    make_workflow("Routed", ROUTED)
    instance = start_workflow_instance("Routed", claim)
    variables = {"instanceId": gid("WorkflowInstance", instance.pk)}

    # the claim's fields (amount 1500.00), whatever the client's context says
    for context in (None, {"amount": 50}, {"claim": {"amount": 50}}):
        data = as_viewer.data(ops.EVALUATE, {**variables, "context": context})[
            "evaluateTransitions"
        ]
        assert data["fired"]["transition"]["toStep"]["name"] == "Manager"

    type(claim).objects.filter(pk=claim.pk).update(amount=50)  # read from the database
    data = as_viewer.data(ops.EVALUATE, variables)["evaluateTransitions"]
    assert [(e["priority"], e["result"], e["wouldFire"]) for e in data["evaluations"]] == [
        (10, False, False),
        (5, True, True),
    ]
    assert data["fired"]["transition"]["toStep"]["name"] == "Paid" and data["error"] is None

    make_workflow(
        "Scored",
        {
            **ROUTED,
            "transitions": [
                {"from_step": "Review", "to_step": "Manager", "condition": "input.score > 5"}
            ],
        },
    )
    scored = {"instanceId": gid("WorkflowInstance", start_workflow_instance("Scored", claim).pk)}
    data = as_viewer.data(ops.EVALUATE, {**scored, "context": {"nothing": 1}})[
        "evaluateTransitions"
    ]
    assert data["fired"] is None and data["error"] and data["evaluations"][0]["error"]
    assert data["evaluations"][0]["result"] is None
    data = as_viewer.data(ops.EVALUATE, {**scored, "context": {"score": 6}})["evaluateTransitions"]
    assert data["fired"]["transition"]["toStep"]["name"] == "Manager"

    instance.refresh_from_db()
    assert instance.version == 1  # nothing changed


def test_evaluate_transitions_errors(as_viewer, instance):
    result = as_viewer(ops.EVALUATE, {"instanceId": "garbage"})
    assert result["errors"][0]["extensions"]["code"] == "INVALID_ID"
    result = as_viewer(
        ops.EVALUATE, {"instanceId": gid("WorkflowInstance", instance.pk), "context": [1]}
    )
    assert result["errors"][0]["extensions"]["code"] == "INVALID_CONTEXT"
    missing = as_viewer.data(ops.EVALUATE, {"instanceId": gid("WorkflowInstance", instance.pk + 5)})
    assert missing["evaluateTransitions"] is None


def test_me(as_viewer, anon):
    assert as_viewer.data(ops.ME)["me"]["username"] == "viewer"
    assert anon.data(ops.ME)["me"] is None


def test_get_requests_run_queries_but_not_mutations(as_viewer, claim_workflow):
    response = as_viewer.client.get("/graphql/", {"query": "{ workflows { totalCount } }"})
    assert response.status_code == 200 and response.json()["data"]["workflows"]["totalCount"] == 1
    response = as_viewer.client.get("/graphql/", {"query": "mutation { logout }"})
    assert response.status_code == 400  # mutations are refused over GET
    assert as_viewer.data(ops.ME)["me"]["username"] == "viewer"  # so the logout did not happen


def test_history_says_the_state_before_each_event_and_the_version_after_it(as_viewer, population):
    on_hold = population[2]
    data = as_viewer.data(
        """query($id: ID!) { workflowInstance(id: $id) {
          history(first: 5) { edges { node { kind fromState state version sequence } } } } }""",
        {"id": gid("WorkflowInstance", on_hold.pk)},
    )
    nodes = [edge["node"] for edge in data["workflowInstance"]["history"]["edges"]]
    assert nodes == [
        {"kind": "STARTED", "fromState": None, "state": "ACTIVE", "version": 1, "sequence": 1},
        {"kind": "ON_HOLD", "fromState": "ACTIVE", "state": "ON_HOLD", "version": 2, "sequence": 2},
    ]
