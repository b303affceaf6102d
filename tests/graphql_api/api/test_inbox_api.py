"""The inbox over GraphQL: ``me.inbox``, ``claimWorkItem`` / ``releaseWorkItem`` /
``delegateWorkItem``, ``viewerCan`` on assigned steps and a step's ``assignees``."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from claims.models import Claim
from django_steps import services
from django_steps.definitions import import_workflow
from django_steps.models import WorkItem
from tests.django_steps.test_workitems import ASSIGNED
from tests.graphql_api.conftest import VIEW, client_for, codes, gid, make_user

pytestmark = pytest.mark.django_db

ACT = (*VIEW, "django_steps.change_workflowinstance")

INBOX = """
query Inbox($first: Int = 20, $after: String, $filters: WorkItemFilter) {
  me {
    username
    inbox(first: $first, after: $after, filters: $filters) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { node {
        id openedAt dueAt candidateGroups
        candidateUsers { username }
        claimedBy { username }
        step { name assignees { groups expression } }
        instance { id viewerCan { claim release delegate hold statuses { name } } }
      } }
    }
  }
}
"""

ACTOR_INBOX = """
query ($id: ID!) {
  workflowInstance(id: $id) {
    history(first: 10) { edges { node { actor { username inbox(first: 1) { totalCount } } } } }
  }
}
"""

#: What the work-item mutations answer: who holds the item now, or the refusal's codes.
HOLDER = """
    __typename
    ... on WorkItem { claimedBy { username } }
    ... on OperationInfo { messages { code } }
"""
CLAIM = "mutation ($id: ID!) { claimWorkItem(input: {workItemId: $id}) {" + HOLDER + "} }"
RELEASE = "mutation ($id: ID!) { releaseWorkItem(input: {workItemId: $id}) {" + HOLDER + "} }"
DELEGATE = (
    "mutation ($id: ID!, $to: ID!) { delegateWorkItem(input: {workItemId: $id, userId: $to}) {"
    + HOLDER
    + "} }"
)

SET_STATUS = """
mutation ($id: ID!, $status: String!) {
  updateWorkflowStepStatus(input: {instanceId: $id, statusName: $status}) {
    __typename
    ... on WorkflowInstance { version currentStep { name } }
    ... on OperationInfo { messages { code } }
  }
}
"""


@pytest.fixture
def people(db):
    import_workflow(ASSIGNED)
    return {
        "alice": make_user("alice", *ACT),
        "bob": make_user("bob", *ACT),
        "rita": make_user("rita", *ACT, groups=("reviewers",)),
        "rex": make_user("rex", *ACT, groups=("reviewers",)),
    }


def start(owner) -> object:
    claim = Claim.objects.create(title="t", claimant="c", amount=Decimal("5"), owner=owner)
    return services.start_workflow_instance("Assigned Claims", claim)


def item_of(instance) -> str:
    return gid("WorkItem", WorkItem.objects.get(instance=instance, closed_at__isnull=True).pk)


def inbox(user, **variables) -> dict:
    return client_for(user).data(INBOX, variables)["me"]["inbox"]


def test_my_inbox_lists_my_items_with_their_candidates_and_what_i_may_do(people):
    alice = people["alice"]
    instance = start(alice)
    start(people["bob"])
    page = inbox(alice)
    assert page["totalCount"] == 1
    node = page["edges"][0]["node"]
    assert node["candidateUsers"] == [{"username": "alice"}]
    assert node["candidateGroups"] == [] and node["claimedBy"] is None and node["dueAt"] is None
    assert node["step"] == {
        "name": "Submit Claim",
        "assignees": {"groups": [], "expression": "claim.owner"},
    }
    assert node["instance"]["id"] == gid("WorkflowInstance", instance.pk)
    can = node["instance"]["viewerCan"]
    assert (can["claim"], can["release"], can["delegate"], can["hold"]) == (True, False, True, True)


def test_a_group_s_items_are_in_each_member_s_inbox_until_one_claims(people):
    instance = start(people["alice"])
    services.update_workflow_step_status(instance, "Submitted")
    assert inbox(people["rita"])["totalCount"] == inbox(people["rex"])["totalCount"] == 1
    assert inbox(people["alice"])["totalCount"] == 0
    result = client_for(people["rita"]).data(CLAIM, {"id": item_of(instance)})["claimWorkItem"]
    assert result["claimedBy"] == {"username": "rita"}
    assert inbox(people["rex"])["totalCount"] == 0
    mine = inbox(people["rita"], filters={"claimed": True})
    assert mine["edges"][0]["node"]["instance"]["viewerCan"]["release"] is True


def test_the_inbox_filters_by_exact_step_and_workflow_names(people):
    alice = people["alice"]
    start(alice)
    assert inbox(alice, filters={"stepName": "Submit Claim"})["totalCount"] == 1
    assert inbox(alice, filters={"stepName": "Submit"})["totalCount"] == 0
    assert inbox(alice, filters={"workflowName": "Assigned Claims"})["totalCount"] == 1
    assert inbox(alice, filters={"workflowName": "Assigned"})["totalCount"] == 0


def test_another_user_s_inbox_is_never_shown(people):
    instance = start(people["alice"])
    services.update_workflow_step_status(instance, "Submitted", actor=people["alice"])
    data = client_for(people["rita"]).data(
        ACTOR_INBOX, {"id": gid("WorkflowInstance", instance.pk)}
    )
    actors = [e["node"]["actor"] for e in data["workflowInstance"]["history"]["edges"]]
    assert {"username": "alice", "inbox": {"totalCount": 0}} in actors


def test_a_non_candidate_is_refused_on_an_assigned_step(people):
    instance = start(people["alice"])
    services.update_workflow_step_status(instance, "Submitted")
    variables = {"id": gid("WorkflowInstance", instance.pk), "status": "Approved"}
    refused = client_for(people["alice"]).data(SET_STATUS, variables)["updateWorkflowStepStatus"]
    assert codes(refused) == ["PERMISSION_DENIED"]
    claimed = client_for(people["rex"]).data(CLAIM, {"id": item_of(instance)})["claimWorkItem"]
    assert claimed["__typename"] == "WorkItem"
    refused = client_for(people["rita"]).data(SET_STATUS, variables)["updateWorkflowStepStatus"]
    assert codes(refused) == ["PERMISSION_DENIED"]
    done = client_for(people["rex"]).data(SET_STATUS, variables)["updateWorkflowStepStatus"]
    assert done["currentStep"] == {"name": "Approve/Reject"}


def test_claim_twice_is_already_claimed_and_release_gives_it_back(people):
    instance = start(people["alice"])
    services.update_workflow_step_status(instance, "Submitted")
    item = item_of(instance)
    client_for(people["rita"]).data(CLAIM, {"id": item})
    again = client_for(people["rex"]).data(CLAIM, {"id": item})["claimWorkItem"]
    assert codes(again) == ["ALREADY_CLAIMED"]
    not_mine = client_for(people["rex"]).data(RELEASE, {"id": item})["releaseWorkItem"]
    assert codes(not_mine) == ["PERMISSION_DENIED"]
    released = client_for(people["rita"]).data(RELEASE, {"id": item})["releaseWorkItem"]
    assert released == {"__typename": "WorkItem", "claimedBy": None}
    assert inbox(people["rex"])["totalCount"] == 1


def test_delegate_hands_the_item_to_another_user_who_may_act(people):
    instance = start(people["alice"])
    services.update_workflow_step_status(instance, "Submitted")
    variables = {"id": item_of(instance), "to": gid("User", people["rex"].pk)}
    handed = client_for(people["rita"]).data(DELEGATE, variables)["delegateWorkItem"]
    assert handed == {"__typename": "WorkItem", "claimedBy": {"username": "rex"}}
    assert inbox(people["rex"], filters={"claimed": True})["totalCount"] == 1
    nobody = make_user("nobody")
    variables["to"] = gid("User", nobody.pk)
    refused = client_for(people["rex"]).data(DELEGATE, variables)["delegateWorkItem"]
    assert codes(refused) == ["PERMISSION_DENIED"]


def test_claim_release_and_delegate_do_not_move_the_version(people):
    instance = start(people["alice"])
    version = instance.version
    client_for(people["alice"]).data(CLAIM, {"id": item_of(instance)})
    instance.refresh_from_db()
    assert instance.version == version


def test_a_work_item_of_an_instance_i_may_not_see_is_not_found(people):
    instance = start(people["alice"])  # bob may not see alice's claim
    refused = client_for(people["bob"]).data(CLAIM, {"id": item_of(instance)})["claimWorkItem"]
    assert codes(refused) == ["WORK_ITEM_NOT_FOUND"]


def test_a_closed_work_item_is_not_found_on_its_input(people):
    instance = start(people["alice"])
    item = item_of(instance)
    client = client_for(people["alice"])
    client.data(SET_STATUS, {"id": gid("WorkflowInstance", instance.pk), "status": "Submitted"})
    query = CLAIM.replace("messages { code }", "messages { code field }")
    refused = client.data(query, {"id": item})["claimWorkItem"]
    assert refused["messages"] == [{"code": "WORK_ITEM_NOT_FOUND", "field": "workItemId"}]


def test_the_inbox_page_costs_the_same_queries_for_one_or_many_items(people):
    rita = people["rita"]
    for _ in range(2):
        services.update_workflow_step_status(start(people["alice"]), "Submitted")
    client = client_for(rita)
    client.data(INBOX, {"first": 10})  # warm up caches (content types, compiled versions)
    with CaptureQueriesContext(connection) as few:
        assert client.data(INBOX, {"first": 10})["me"]["inbox"]["totalCount"] == 2
    for _ in range(6):
        services.update_workflow_step_status(start(people["bob"]), "Submitted")
    with CaptureQueriesContext(connection) as many:
        assert client.data(INBOX, {"first": 10})["me"]["inbox"]["totalCount"] == 8
    assert len(many) == len(few)


def test_pages_follow_by_cursor_newest_first(people):
    for _ in range(3):
        services.update_workflow_step_status(start(people["alice"]), "Submitted")
    first = inbox(people["rita"], first=2)
    assert first["pageInfo"]["hasNextPage"] is True
    rest = inbox(people["rita"], first=2, after=first["pageInfo"]["endCursor"])
    ids = [e["node"]["id"] for e in first["edges"] + rest["edges"]]
    assert len(set(ids)) == 3 and rest["pageInfo"]["hasNextPage"] is False


NODE = "query ($id: ID!) { node(id: $id) { ... on WorkItem { step { name } } } }"


def test_a_work_item_is_a_node_for_who_may_see_its_instance(people):
    instance = start(people["alice"])
    variables = {"id": item_of(instance)}
    seen = client_for(people["alice"]).data(NODE, variables)["node"]
    assert seen == {"step": {"name": "Submit Claim"}}
    assert client_for(people["bob"]).data(NODE, variables)["node"] is None


def test_due_at_is_the_step_s_running_deadline(people):
    review = {**ASSIGNED["steps"][1], "deadline": {"after": "P2D"}}
    document = {**ASSIGNED, "steps": [ASSIGNED["steps"][0], review, ASSIGNED["steps"][2]]}
    import_workflow(document, replace=True)
    instance = start(people["alice"])
    assert inbox(people["alice"])["edges"][0]["node"]["dueAt"] is None  # no deadline there
    services.update_workflow_step_status(instance, "Submitted")
    due = inbox(people["rita"])["edges"][0]["node"]["dueAt"]
    assert due is not None and due > instance.last_event.created_at.isoformat()


def test_who_may_not_hand_an_item_over_learns_nothing_of_the_user_named(people):
    # An outside tester's report: the answer told existing users ("You may not hand this work
    # item over") from missing ones ("That user may not act on this instance"). The caller's
    # right comes first; a missing, inactive or foreign user is one answer.
    instance = start(people["alice"])
    services.update_workflow_step_status(instance, "Submitted")
    item = item_of(instance)
    rex = client_for(people["rex"])
    assert rex.data(CLAIM, {"id": item})["claimWorkItem"]["claimedBy"] == {"username": "rex"}
    inactive = make_user("gone")
    get_user_model().objects.filter(pk=inactive.pk).update(is_active=False)
    rita = client_for(people["rita"])  # a candidate, but rex holds the item
    answers = {
        json.dumps(rita(DELEGATE_MESSAGES, {"id": item, "to": gid("User", pk)}))
        for pk in (people["bob"].pk, people["rex"].pk, inactive.pk, 10**9)
    }
    [answer] = answers
    assert "You may not hand this work item over" in answer
    # one who may hand it over: a missing user and one who may not act answer alike
    answers = {
        json.dumps(rex(DELEGATE_MESSAGES, {"id": item, "to": gid("User", pk)}))
        for pk in (inactive.pk, 10**9, make_user("outsider").pk)
    }
    [answer] = answers
    assert "That user may not act on this instance" in answer


DELEGATE_MESSAGES = (
    "mutation ($id: ID!, $to: ID!) { delegateWorkItem(input: {workItemId: $id, userId: $to}) {"
    " __typename ... on OperationInfo { messages { code message field } } } }"
)
