"""The trust model, as the demo's users meet it (``demo_setup``: alice and bob own claims, rita
reviews, demo may do everything), through the GraphQL endpoint and a WebSocket.

The test settings are the demo's: django-rules decides the claims permissions
(claims/rules.py) and claims/visibility.py is the visibility rule.
"""

from __future__ import annotations

import json
from decimal import Decimal
from io import StringIO

import pytest
import strawberry
import strawberry_django
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from claims.models import Claim
from django_steps import services
from django_steps.exceptions import NotPermitted
from django_steps.models import WorkflowEvent, WorkflowInstance, WorkItem
from graphql_api.composition import WorkflowInstanceType
from tests.graphql_api import operations as ops
from tests.graphql_api.conftest import client_for, codes, gid, make_user

pytestmark = pytest.mark.django_db

User = get_user_model()

LIST = """query List($first: Int) {
  workflowInstances(first: $first) { totalCount edges { node { id objectId } } }
  workflow(name: "Claim Processing") { instances(first: 50) { totalCount edges { node { id } } } }
}"""

ONE = """query One($id: ID!) {
  workflowInstance(id: $id) { id }
  node(id: $id) { id }
  evaluateTransitions(instanceId: $id) { error }
}"""

CAN = """query Can($id: ID!) {
  workflowInstance(id: $id) {
    currentStep { name }
    viewerCan { statuses { name } hold resume cancel advance }
  }
}"""

EVENTS_PAGE = """query Events($first: Int!) {
  workflowInstances(first: $first) {
    edges { node { id viewerCan { statuses { name } hold cancel } history(first: 5) { edges { node
      { id context } } } } }
  }
}"""


@pytest.fixture
def demo(db):
    call_command("demo_setup", stdout=StringIO())
    users = {name: User.objects.get(username=name) for name in ("alice", "bob", "rita", "demo")}
    return users


def own_instances(user) -> set[int]:
    claims = Claim.objects.filter(owner=user).values_list("pk", flat=True)
    return set(
        WorkflowInstance.objects.filter(object_id__in=[str(pk) for pk in claims]).values_list(
            "pk", flat=True
        )
    )


def pk_of(global_id: str) -> int:
    from strawberry import relay

    return int(relay.GlobalID.from_id(global_id).node_id)


def listed(gql) -> tuple[set[int], set[int]]:
    data = gql.data(LIST, {"first": 100})
    top = {pk_of(e["node"]["id"]) for e in data["workflowInstances"]["edges"]}
    assert data["workflowInstances"]["totalCount"] == len(top)
    nested = {
        pk_of(e["node"]["id"])
        for e in (data["workflow"] or {"instances": {"edges": []}})["instances"]["edges"]
    }
    return top, nested


# --------------------------------------------------------------------------- seeing


def test_each_user_sees_exactly_what_their_role_allows_in_every_list(demo):
    everything = set(WorkflowInstance.objects.values_list("pk", flat=True))
    processing = set(
        WorkflowInstance.objects.filter(workflow__name="Claim Processing").values_list(
            "pk", flat=True
        )
    )
    for name in ("alice", "bob"):
        mine = own_instances(demo[name])
        assert mine and mine != everything
        top, nested = listed(client_for(demo[name]))
        assert top == mine
        assert nested == mine & processing
    for name in ("rita", "demo"):
        assert listed(client_for(demo[name])) == (everything, processing)
    nobody = make_user("nobody")
    assert client_for(nobody).data(LIST, {"first": 100})["workflowInstances"]["totalCount"] == 0
    anonymous = client_for(None).data(LIST, {"first": 100})
    assert anonymous["workflowInstances"]["totalCount"] == 0 and anonymous["workflow"] is None


def test_another_users_instance_is_null_by_id_node_and_dry_run_and_its_events_too(demo):
    alice, bob = demo["alice"], demo["bob"]
    hers, his = min(own_instances(alice)), min(own_instances(bob))
    gql = client_for(alice)
    assert gql.data(ONE, {"id": gid("WorkflowInstance", his)}) == {
        "workflowInstance": None,
        "node": None,
        "evaluateTransitions": None,
    }
    mine = gql.data(ONE, {"id": gid("WorkflowInstance", hers)})
    assert mine["workflowInstance"] and mine["node"] and mine["evaluateTransitions"] is not None
    his_event = WorkflowEvent.objects.filter(instance_id=his).first()
    assert gql.data(ops.NODE, {"id": gid("WorkflowEvent", his_event.pk)})["node"] is None
    her_event = WorkflowEvent.objects.filter(instance_id=hers).first()
    assert (
        gql.data(ops.NODE, {"id": gid("WorkflowEvent", her_event.pk)})["node"]["kind"] == "STARTED"
    )


def test_the_stored_context_is_shown_only_to_who_may_view_the_object(demo, settings):
    from tests.conftest import CLAIM_PROCESSING, make_workflow
    from tests.testapp.models import Document

    make_workflow("Documents", {**CLAIM_PROCESSING, "content_types": ["testapp.document"]})
    document = Document.objects.create(amount=Decimal("5"))
    instance = services.start_workflow_instance("Documents", document)
    services.update_workflow_step_status(instance, "Submitted", {"secret": "s3cr3t"})
    query = (
        "query($id: ID!) { workflowInstance(id: $id) { history(first: 10) { edges { node { kind "
        "context } } } } }"
    )
    variables = {"id": gid("WorkflowInstance", instance.pk)}
    reader = make_user("reader", "django_steps.view_workflowinstance")
    # The default rule: who may not view the document does not see its instance at all.
    assert client_for(reader).data(query, variables)["workflowInstance"] is None
    # A rule of the project's own that shows every instance: the history, not the document's data.
    settings.DJANGO_STEPS = {**settings.DJANGO_STEPS, "VISIBLE_INSTANCES": lambda user, qs: qs}
    history = ops.events(client_for(reader).data(query, variables)["workflowInstance"])
    assert [e["context"] for e in history] == [None, None]
    assert "s3cr3t" not in json.dumps(history)
    reader.user_permissions.add(Permission.objects.get(codename="view_document"))
    reader = User.objects.get(pk=reader.pk)  # permissions are cached per user object
    history = ops.events(client_for(reader).data(query, variables)["workflowInstance"])
    assert history[1]["context"] == {"input": {"secret": "s3cr3t"}}


# --------------------------------------------------------------------------- changing


def test_another_users_instance_is_not_found_in_every_mutation_and_nothing_changes(demo):
    alice, bob = demo["alice"], demo["bob"]
    his = min(own_instances(bob))
    before = (WorkflowInstance.objects.get(pk=his).version, WorkflowEvent.objects.count())
    i = gid("WorkflowInstance", his)
    gql = client_for(alice)
    for operation, field, variables in ops.instance_changes(i, "Withdrawn"):
        assert codes(gql.data(operation, variables)[field]) == ["INSTANCE_NOT_FOUND"], field
    # Exactly what a missing instance answers.
    missing = gql.data(ops.HOLD, {"input": {"instanceId": gid("WorkflowInstance", 10**9)}})[
        "setWorkflowOnHold"
    ]
    hidden = gql.data(ops.HOLD, {"input": {"instanceId": i}})["setWorkflowOnHold"]
    assert missing["messages"] == hidden["messages"]
    assert (WorkflowInstance.objects.get(pk=his).version, WorkflowEvent.objects.count()) == before


def _at_review(owner) -> WorkflowInstance:
    claim = Claim.objects.create(title="New", claimant="x", amount=Decimal("10"), owner=owner)
    instance = services.start_workflow_instance("Claim Processing", claim)
    return services.update_workflow_step_status(
        instance, "Submitted", actor=owner
    )  # now on Review Claim


def test_only_a_reviewer_may_approve_and_a_refusal_changes_nothing(demo):
    alice, rita = demo["alice"], demo["rita"]
    instance = _at_review(alice)
    variables = {
        "input": {"instanceId": gid("WorkflowInstance", instance.pk), "statusName": "Approved"}
    }
    events = WorkflowEvent.objects.count()
    refused = client_for(alice).data(ops.UPDATE_STATUS, variables)["updateWorkflowStepStatus"]
    assert (
        codes(refused) == ["PERMISSION_DENIED"] and refused["messages"][0]["kind"] == "PERMISSION"
    )
    assert WorkflowInstance.objects.get(pk=instance.pk).version == instance.version
    assert WorkflowEvent.objects.count() == events
    approved = client_for(rita).data(ops.UPDATE_STATUS, variables)["updateWorkflowStepStatus"]
    assert approved["currentStep"]["name"] == "Approve/Reject"


def test_a_claimant_submits_and_withdraws_their_own_claim_but_not_another(demo):
    alice, bob = demo["alice"], demo["bob"]
    claim = Claim.objects.create(title="Mine", claimant="Alice", amount=Decimal("10"), owner=alice)
    instance = services.start_workflow_instance("Claim Processing", claim)
    i = gid("WorkflowInstance", instance.pk)
    submitted = client_for(alice).data(
        ops.UPDATE_STATUS, {"input": {"instanceId": i, "statusName": "Submitted"}}
    )
    assert submitted["updateWorkflowStepStatus"]["currentStep"]["name"] == "Review Claim"
    other = services.start_workflow_instance(
        "Claim Processing",
        Claim.objects.create(
            title="Also mine", claimant="Alice", amount=Decimal("10"), owner=alice
        ),
    )
    j = gid("WorkflowInstance", other.pk)
    assert codes(
        client_for(bob).data(ops.CANCEL, {"input": {"instanceId": j}})["cancelWorkflowInstance"]
    ) == ["INSTANCE_NOT_FOUND"]
    withdrawn = client_for(alice).data(ops.CANCEL, {"input": {"instanceId": j}})[
        "cancelWorkflowInstance"
    ]
    assert withdrawn["state"] == "CANCELLED"


def test_starting_on_a_model_the_workflow_does_not_list_is_refused_the_same_whether_or_not_it_exists(  # noqa: E501
    demo,
):
    demo_user = demo[
        "demo"
    ]  # a superuser: even they may not attach a claims workflow to a user row
    gql = client_for(demo_user)
    answers = []
    for object_id in (str(demo_user.pk), "987654"):
        payload = gql.data(
            ops.START,
            {
                "input": {
                    "workflowName": "Claim Processing",
                    "contentType": "auth.user",
                    "objectId": object_id,
                }
            },
        )["startWorkflowInstance"]
        answers.append(payload)
    assert answers[0] == answers[1]
    assert codes(answers[0]) == ["MODEL_NOT_ALLOWED"]
    assert not WorkflowInstance.objects.filter(content_type__model="user").exists()


def test_starting_on_someone_elses_object_is_refused_like_a_missing_one(demo):
    alice, bob = demo["alice"], demo["bob"]
    his = Claim.objects.create(title="His", claimant="Bob", amount=Decimal("10"), owner=bob)
    gql = client_for(alice)

    def start(object_id):
        return gql.data(
            ops.START,
            {
                "input": {
                    "workflowName": "Claim Processing",
                    "contentType": "claims.claim",
                    "objectId": str(object_id),
                }
            },
        )["startWorkflowInstance"]

    assert start(his.pk) == start(10**9)
    assert codes(start(his.pk)) == ["OBJECT_NOT_FOUND"]
    mine = Claim.objects.create(title="Mine", claimant="Alice", amount=Decimal("10"), owner=alice)
    assert start(mine.pk)["__typename"] == "WorkflowInstance"


# --------------------------------------------------------------------------- what may I do


def test_viewer_can_lists_exactly_the_actions_that_succeed(demo):
    alice, rita = demo["alice"], demo["rita"]
    claim = Claim.objects.create(title="Fresh", claimant="Alice", amount=Decimal("10"), owner=alice)
    instance = services.start_workflow_instance("Claim Processing", claim)  # Submit Claim / Draft
    variables = {"id": gid("WorkflowInstance", instance.pk)}
    hers = client_for(alice).data(CAN, variables)["workflowInstance"]["viewerCan"]
    assert [s["name"] for s in hers["statuses"]] == ["Draft", "Submitted", "Withdrawn"]
    assert (hers["hold"], hers["resume"], hers["cancel"], hers["advance"]) == (
        False,
        False,
        True,
        False,
    )
    ritas = client_for(rita).data(CAN, variables)["workflowInstance"]["viewerCan"]
    assert ritas["statuses"] == [] and not ritas["hold"]  # the submission step is alice's work
    item = WorkItem.objects.get(instance=instance, closed_at__isnull=True)
    # a reviewer may not complete alice's submission, so nobody hands it to her but the
    # trusted path (a claimant who cannot finish the step would lock its candidates out)
    with pytest.raises(NotPermitted):
        services.delegate_work_item(item, rita, alice)
    services.claim_work_item(item, user=rita)
    ritas = client_for(rita).data(CAN, variables)["workflowInstance"]["viewerCan"]
    assert [s["name"] for s in ritas["statuses"]] == ["Draft", "On Hold"]
    assert (ritas["hold"], ritas["resume"], ritas["cancel"], ritas["advance"]) == (
        True,
        False,
        False,
        False,
    )
    # Each advertised action works, each other one is refused.
    held = client_for(rita).data(ops.HOLD, {"input": {"instanceId": variables["id"]}})[
        "setWorkflowOnHold"
    ]
    assert held["state"] == "ON_HOLD"
    # Held through "On Hold" (a reviewer's): only who may hold may release it.
    hers = client_for(alice).data(CAN, variables)["workflowInstance"]["viewerCan"]
    ritas = client_for(rita).data(CAN, variables)["workflowInstance"]["viewerCan"]
    assert (hers["resume"], ritas["resume"]) == (False, True)
    refused = client_for(alice).data(ops.RESUME, {"input": {"instanceId": variables["id"]}})
    assert codes(refused["resumeWorkflowInstance"]) == ["PERMISSION_DENIED"]
    resumed = client_for(rita).data(ops.RESUME, {"input": {"instanceId": variables["id"]}})
    assert resumed["resumeWorkflowInstance"]["state"] == "ACTIVE"
    assert codes(
        client_for(alice).data(ops.HOLD, {"input": {"instanceId": variables["id"]}})[
            "setWorkflowOnHold"
        ]
    ) == ["PERMISSION_DENIED"]
    finished = services.cancel_workflow_instance(instance)
    assert client_for(rita).data(CAN, {"id": gid("WorkflowInstance", finished.pk)})[
        "workflowInstance"
    ]["viewerCan"] == {
        "statuses": [],
        "hold": False,
        "resume": False,
        "cancel": False,
        "advance": False,
    }


def test_a_claimant_cannot_hold_or_cancel_once_her_claim_is_under_review(demo):
    """Every step of the demo's workflows names who may hold and cancel on it (a step without an
    on-hold or cancellation status would let anyone who may change the instance do it)."""
    alice, rita = demo["alice"], demo["rita"]
    for name in ("Claim Processing", "Claim Triage"):
        claim = Claim.objects.create(
            title="Reviewed", claimant="Alice", amount=Decimal("10"), owner=alice
        )
        instance = services.start_workflow_instance(name, claim)
        first = {"Claim Processing": "Submitted", "Claim Triage": "Triaged"}[name]
        services.update_workflow_step_status(instance, first)  # now past the claimant's step
        variables = {"id": gid("WorkflowInstance", instance.pk)}
        hers = client_for(alice).data(CAN, variables)["workflowInstance"]["viewerCan"]
        assert (hers["hold"], hers["cancel"]) == (False, False), name
        for operation, field in (
            (ops.HOLD, "setWorkflowOnHold"),
            (ops.CANCEL, "cancelWorkflowInstance"),
        ):
            payload = client_for(alice).data(operation, {"input": {"instanceId": variables["id"]}})[
                field
            ]
            assert codes(payload) == ["PERMISSION_DENIED"], (name, field)
        ritas = client_for(rita).data(CAN, variables)["workflowInstance"]["viewerCan"]
        assert (ritas["hold"], ritas["cancel"]) == (True, True), name


@pytest.mark.parametrize("who", ["alice", "rita"])
def test_a_page_of_100_with_allowed_actions_costs_what_a_page_of_10_costs(demo, who):
    owner = demo["alice"]
    for i in range(100):
        claim = Claim.objects.create(
            title=f"Bulk {i}", claimant="Alice", amount=Decimal("10"), owner=owner
        )
        services.start_workflow_instance("Claim Processing", claim)
    gql = client_for(demo[who])

    def count(first: int) -> int:
        with CaptureQueriesContext(connection) as queries:
            edges = gql.data(EVENTS_PAGE, {"first": first})["workflowInstances"]["edges"]
        assert len(edges) == first
        assert all(e["node"]["viewerCan"]["cancel"] == (who == "alice") for e in edges)
        return len(queries)

    ten, hundred = count(10), count(100)
    print(f"\nSQL queries as {who}: page of 10 -> {ten}, page of 100 -> {hundred}")
    assert ten == hundred


# --------------------------------------------------------------------------- a host's resolver


@strawberry.type
class HostQuery:
    """What a host project might write: its own resolvers returning our instance type."""

    @strawberry_django.field
    def every_instance(self) -> list[WorkflowInstanceType]:
        return WorkflowInstance.objects.all()  # a queryset: narrowed by our type's get_queryset

    @strawberry.field
    def every_instance_plain(self) -> list[WorkflowInstanceType]:
        return WorkflowInstance.objects.all()  # not a strawberry-django field: each object checked

    @strawberry.field
    def newest_instance(self) -> WorkflowInstanceType | None:
        return WorkflowInstance.objects.order_by("-pk").first()  # one object: checked by our type

    @strawberry.field
    def instance_objects(self) -> list[WorkflowInstanceType | None]:
        return list(WorkflowInstance.objects.all())  # plain objects: each checked


def test_our_types_filter_instances_a_host_resolver_returns(demo):
    """A host project returns our type from its own resolvers: our rule still applies."""
    from django.test import RequestFactory
    from strawberry.django.context import StrawberryDjangoContext

    from graphql_api.composition import compose_schema

    schema = compose_schema(query=HostQuery)
    alice, bob = demo["alice"], demo["bob"]
    newest_claim = Claim.objects.create(
        title="Newest", claimant="Bob", amount=Decimal("1"), owner=bob
    )
    services.start_workflow_instance("Claim Processing", newest_claim)

    def run(user, query):
        request = RequestFactory().post("/graphql/")
        request.user = user
        return schema.execute_sync(
            query, context_value=StrawberryDjangoContext(request=request, response=None)
        )

    everyone = run(alice, "{ everyInstance { id } }")
    assert everyone.errors is None
    assert {pk_of(i["id"]) for i in everyone.data["everyInstance"]} == own_instances(alice)
    newest = run(alice, "{ newestInstance { id state } }")
    assert newest.data == {"newestInstance": None}
    assert [e.extensions["code"] for e in newest.errors] == ["INSTANCE_NOT_FOUND"]
    assert "state" not in json.dumps(newest.data)
    plain = run(
        alice, "{ everyInstancePlain { id state } }"
    )  # a hidden item: an error, never its data
    assert plain.data is None and {e.extensions["code"] for e in plain.errors} == {
        "INSTANCE_NOT_FOUND"
    }
    objects = run(alice, "{ instanceObjects { id } }")
    shown = {pk_of(i["id"]) for i in objects.data["instanceObjects"] if i}
    assert shown == own_instances(alice)
    assert {e.extensions["code"] for e in objects.errors} == {"INSTANCE_NOT_FOUND"}
    assert run(bob, "{ newestInstance { id } }").data["newestInstance"] is not None
