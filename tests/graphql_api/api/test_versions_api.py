"""Published versions over GraphQL: what a client reads of them (`Workflow.version`,
`versions`, `diff`, `definitionVersion`), instances pinned to theirs, and
`migrateWorkflowInstances` (dry run, apply, permissions, visibility, pages)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from claims.models import Claim
from django_steps import services
from django_steps.choices import EventKind
from django_steps.definitions import import_workflow
from django_steps.models import WorkflowInstance, WorkflowStep
from django_steps.versions import migrate_instances
from graphql_api.api.enums import WorkflowEventKind
from tests.conftest import camel, statuses, two_steps
from tests.graphql_api.conftest import STAFF, VIEW, client_for, codes, gid, make_user

pytestmark = pytest.mark.django_db

DOC = two_steps(
    "Open",
    "Closed",
    first_statuses=statuses("New", "Done"),
    second_statuses=[{"name": "Archived", "is_default_status": True, "is_completion_status": True}],
    name="Moves",
    content_types=["claims.claim"],
)

HISTORY = """query($id: ID!) { workflowInstance(id: $id) {
  history(first: 10) { edges { node { kind definitionVersion toStatus { name } } } } } }"""

#: Routing by amount: "Review" goes to "Senior" above the threshold, else to "Done".
ROUTING = """mutation($input: WorkflowDefinitionInput!) {
  %s(input: $input) { __typename ... on Workflow { name version }
    ... on OperationInfo { messages { code field message } } } }"""


def routing(threshold: int) -> dict:
    return {
        "name": "Routing",
        "contentTypes": ["claims.claim"],
        "steps": [
            {
                "name": "Review",
                "isInitialStep": True,
                "statuses": camel(statuses("Open", "Checked")),
            },
            {
                "name": "Senior",
                "isFinalStep": True,
                "statuses": [
                    {"name": "Waiting", "isDefaultStatus": True, "isCompletionStatus": True}
                ],
            },
            {
                "name": "Done",
                "isFinalStep": True,
                "statuses": [
                    {"name": "Closed", "isDefaultStatus": True, "isCompletionStatus": True}
                ],
            },
        ],
        "transitions": [
            {
                "fromStep": "Review",
                "toStep": "Senior",
                "condition": f"claim.amount > {threshold}",
                "priority": 1,
            },
            {"fromStep": "Review", "toStep": "Done"},
        ],
    }


START = """mutation($input: StartWorkflowInstanceInput!) { startWorkflowInstance(input: $input) {
  __typename ... on WorkflowInstance { id definitionVersion } } }"""
SET_STATUS = """mutation($input: UpdateWorkflowStepStatusInput!) {
  updateWorkflowStepStatus(input: $input) {
    __typename ... on WorkflowInstance { currentStep { name } definitionVersion } } }"""
VERSIONS = """query { workflow(name: "Routing") { version
  versions(first: 10) { edges { node { id number contentHash createdBy { username }
    mermaid document } } } } }"""
DIFF = """query($from: Int!, $to: Int!) { workflow(name: "Routing") {
  diff(fromVersion: $from, toVersion: $to) { part change name fields before after } } }"""
MIGRATE = """mutation($input: MigrateWorkflowInstancesInput!) {
  migrateWorkflowInstances(input: $input) {
    __typename
    ... on WorkflowMigration {
      dryRun movableCount migratedCount blockedCount failedCount hasNextPage endCursor
      toVersion { number }
      moves { instance { id definitionVersion currentStep { name } }
        fromVersion fromStep fromStatus toStep toStatus outcome reason message }
    }
    ... on OperationInfo { messages { code field } }
  } }"""


@pytest.fixture
def designer_client(designer):
    return client_for(designer)


@pytest.fixture
def migrator(db):
    return make_user(
        "migrator",
        *VIEW,
        "django_steps.change_workflowinstance",
        "django_steps.migrate_workflowinstance",
        groups=STAFF,
    )


def _claim(amount: int = 1500, owner=None) -> Claim:
    return Claim.objects.create(title="t", claimant="c", amount=Decimal(amount), owner=owner)


def _start(client, claim: Claim) -> dict:
    variables = {
        "input": {"workflowName": "Routing", "contentType": "claims.claim", "objectId": claim.pk}
    }
    return client.data(START, variables)["startWorkflowInstance"]


# ------------------------------------------------------------------ the schema's enums


def test_every_event_kind_the_engine_writes_is_a_value_of_the_schema():
    assert {kind.value for kind in EventKind} == {member.value for member in WorkflowEventKind}


# ------------------------------------------------------------------ pinned instances


def test_an_instance_started_on_v1_keeps_v1s_condition_after_update_workflow_publishes_v2(
    designer_client, as_operator
):
    created = designer_client.data(ROUTING % "createWorkflow", {"input": routing(1000)})
    assert created["createWorkflow"] == {"__typename": "Workflow", "name": "Routing", "version": 1}
    old = _start(as_operator, _claim(1500))
    updated = designer_client.data(ROUTING % "updateWorkflow", {"input": routing(5000)})
    assert updated["updateWorkflow"]["version"] == 2
    new = _start(as_operator, _claim(1500))
    assert (old["definitionVersion"], new["definitionVersion"]) == (1, 2)

    landed = {}
    for name, instance in (("old", old), ("new", new)):
        variables = {"input": {"instanceId": instance["id"], "statusName": "Checked"}}
        landed[name] = as_operator.data(SET_STATUS, variables)["updateWorkflowStepStatus"]
    assert landed["old"]["currentStep"]["name"] == "Senior"  # 1500 > 1000: v1's rule
    assert landed["new"]["currentStep"]["name"] == "Done"  # 1500 ≤ 5000: v2's rule
    history = as_operator.data(HISTORY, {"id": old["id"]})["workflowInstance"]["history"]
    assert {edge["node"]["definitionVersion"] for edge in history["edges"]} == {1}


def test_versions_are_listed_newest_first_with_who_published_them(designer_client, as_viewer):
    designer_client.data(ROUTING % "createWorkflow", {"input": routing(1000)})
    designer_client.data(ROUTING % "updateWorkflow", {"input": routing(5000)})
    designer_client.data(ROUTING % "updateWorkflow", {"input": routing(5000)})  # identical
    workflow = as_viewer.data(VERSIONS)["workflow"]
    nodes = [edge["node"] for edge in workflow["versions"]["edges"]]
    assert workflow["version"] == 2
    assert [node["number"] for node in nodes] == [2, 1]
    assert {node["createdBy"]["username"] for node in nodes} == {"designer"}
    assert nodes[0]["contentHash"] != nodes[1]["contentHash"]
    assert "5000" in nodes[0]["mermaid"] and "1000" not in nodes[0]["mermaid"]
    assert "1000" in nodes[1]["mermaid"]
    conditions = [t["condition"] for t in nodes[1]["document"]["transitions"]]
    assert "claim.amount > 1000" in conditions
    node = as_viewer.data(
        "query($id: ID!) { node(id: $id) { ... on WorkflowVersion { number } } }",
        {"id": nodes[1]["id"]},
    )
    assert node["node"] == {"number": 1}


def test_the_diff_names_each_changed_part_with_both_values(designer_client, as_viewer):
    designer_client.data(ROUTING % "createWorkflow", {"input": routing(1000)})
    v2 = routing(5000)
    v2["steps"][0]["statuses"].append({"name": "Parked"})
    designer_client.data(ROUTING % "updateWorkflow", {"input": v2})
    changes = as_viewer.data(DIFF, {"from": 1, "to": 2})["workflow"]["diff"]
    added = {"part": "STATUS", "change": "ADDED", "name": "Review / Parked", "fields": []}
    assert {**added, "before": None, "after": None} in changes
    [condition] = [c for c in changes if c["part"] == "TRANSITION"]
    assert condition == {
        "part": "TRANSITION",
        "change": "CHANGED",
        "name": "Review → Senior",
        "fields": ["condition"],
        "before": {"condition": "claim.amount > 1000"},
        "after": {"condition": "claim.amount > 5000"},
    }
    assert as_viewer.data(DIFF, {"from": 2, "to": 2})["workflow"]["diff"] == []
    result = as_viewer(DIFF, {"from": 1, "to": 3})
    [error] = result["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == "toVersion"


def test_a_kept_step_or_status_keeps_its_global_id_across_versions(designer_client, as_viewer):
    query = """{ workflow(name: "Routing") { steps { id name statuses { id name } } } }"""
    designer_client.data(ROUTING % "createWorkflow", {"input": routing(1000)})
    before = as_viewer.data(query)["workflow"]["steps"]
    designer_client.data(ROUTING % "updateWorkflow", {"input": routing(5000)})
    assert as_viewer.data(query)["workflow"]["steps"] == before


def test_a_removed_step_still_resolves_for_the_history_that_names_it(designer_client, as_operator):
    designer_client.data(ROUTING % "createWorkflow", {"input": routing(1000)})
    instance = _start(as_operator, _claim(10))
    as_operator.data(SET_STATUS, {"input": {"instanceId": instance["id"], "statusName": "Checked"}})
    v2 = routing(1000)
    v2["steps"] = v2["steps"][:2]
    v2["transitions"] = v2["transitions"][:1]
    assert (
        designer_client.data(ROUTING % "updateWorkflow", {"input": v2})["updateWorkflow"]["version"]
        == 2
    )
    done = WorkflowStep.all_objects.get(workflow__name="Routing", name="Done")
    assert done.retired
    query = "query($id: ID!) { node(id: $id) { ... on WorkflowStep { name } } }"
    assert as_operator.data(query, {"id": gid("WorkflowStep", done.pk)})["node"] == {"name": "Done"}
    steps = as_operator.data('{ workflow(name: "Routing") { steps { name } } }')
    assert [s["name"] for s in steps["workflow"]["steps"]] == ["Review", "Senior"]
    history = as_operator.data(
        """query($id: ID!) { workflowInstance(id: $id) { currentStep { id name }
          history(first: 5) { edges { node { toStep { name } toStatus { id name } } } } } }""",
        {"id": instance["id"]},
    )["workflowInstance"]
    assert history["currentStep"] == {"id": gid("WorkflowStep", done.pk), "name": "Done"}
    last = history["history"]["edges"][-1]["node"]
    assert (last["toStep"]["name"], last["toStatus"]["name"]) == ("Done", "Closed")
    status = as_operator.data(
        "query($id: ID!) { node(id: $id) { ... on WorkflowStepStatus { name step { name } } } }",
        {"id": last["toStatus"]["id"]},
    )
    assert status["node"] == {"name": "Closed", "step": {"name": "Done"}}


def test_available_statuses_are_those_of_the_instances_version(designer_client, as_operator):
    designer_client.data(ROUTING % "createWorkflow", {"input": routing(1000)})
    old = _start(as_operator, _claim())
    v2 = routing(1000)
    v2["steps"][0]["statuses"] = [
        {"name": "Open", "isDefaultStatus": True},
        {"name": "Checked", "isCompletionStatus": True, "description": "v2"},
        {"name": "Parked"},
    ]
    designer_client.data(ROUTING % "updateWorkflow", {"input": v2})
    new = _start(as_operator, _claim())
    query = """query($id: ID!) { workflowInstance(id: $id) {
      availableStatuses { id name description step { name } }
      viewerCan { statuses { name } } } }"""
    seen = {}
    for name, instance in (("old", old), ("new", new)):
        seen[name] = as_operator.data(query, {"id": instance["id"]})["workflowInstance"]
    assert [s["name"] for s in seen["old"]["availableStatuses"]] == ["Open", "Checked"]
    assert [s["name"] for s in seen["old"]["viewerCan"]["statuses"]] == ["Open", "Checked"]
    assert seen["old"]["availableStatuses"][1]["description"] == ""  # as v1 has it
    assert [s["name"] for s in seen["new"]["availableStatuses"]] == ["Open", "Checked", "Parked"]
    assert seen["new"]["availableStatuses"][1]["description"] == "v2"
    assert seen["old"]["availableStatuses"][1]["id"] == seen["new"]["availableStatuses"][1]["id"]
    assert {s["step"]["name"] for s in seen["old"]["availableStatuses"]} == {"Review"}


# ------------------------------------------------------------------ migration


@pytest.fixture
def moves_v2(db):
    """ "Moves" v1 with instances on "Open" (one on "Done"), then v2 without "Open"'s "Done"
    status and with a new first step "Triage"; "Open" is kept."""
    import_workflow(DOC)
    instances = [services.start_workflow_instance("Moves", _claim()) for _ in range(3)]
    services.update_workflow_step_status(instances[2], "Done")  # completes: never selected
    v2 = {
        **DOC,
        "steps": [
            {
                "name": "Open",
                "is_initial_step": True,
                "statuses": statuses("New", "Finished", cancellation="Dropped"),
            },
            DOC["steps"][1],
        ],
    }
    import_workflow(v2, replace=True)
    return instances[:2]


def _migrate(client, **fields) -> dict:
    data = {"workflowName": "Moves", "toVersion": 2, **fields}
    return client.data(MIGRATE, {"input": data})["migrateWorkflowInstances"]


def test_a_dry_run_tells_where_each_instance_lands_and_changes_nothing(migrator, moves_v2):
    result = _migrate(client_for(migrator), dryRun=True)
    assert result["__typename"] == "WorkflowMigration"
    assert (result["dryRun"], result["movableCount"], result["migratedCount"]) == (True, 2, 0)
    assert [m["outcome"] for m in result["moves"]] == ["WOULD_MIGRATE", "WOULD_MIGRATE"]
    assert {(m["fromVersion"], m["toStep"], m["toStatus"]) for m in result["moves"]} == {
        (1, "Open", "New")
    }
    assert {m["instance"]["definitionVersion"] for m in result["moves"]} == {1}
    assert not WorkflowInstance.objects.filter(definition_version__number=2).exists()


def test_a_dry_run_names_the_instances_that_cannot_move_and_why(migrator, moves_v2):
    services.update_workflow_step_status(moves_v2[1], "Done")  # not kept by v2: no default
    mapping = {
        "steps": [{"fromStep": "Open", "toStep": "Open"}],
        "statuses": [{"step": "Open", "fromStatus": "New", "toStatus": "Dropped"}],
    }
    result = _migrate(client_for(migrator), dryRun=True, mapping=mapping)
    by_id = {m["instance"]["id"]: m for m in result["moves"]}
    blocked = by_id[gid("WorkflowInstance", moves_v2[0].pk)]
    assert (blocked["outcome"], blocked["reason"]) == ("BLOCKED", "TARGET_STATUS_ROLE")
    assert blocked["message"]
    assert result["blockedCount"] == 1


def test_an_unmapped_step_blocks_its_instances(migrator, moves_v2):
    WorkflowStep.objects.filter(workflow__name="Moves", name="Open")  # kept by name in v2
    v3 = {**DOC, "steps": [{**DOC["steps"][0], "name": "Start"}, DOC["steps"][1]]}
    v3["transitions"] = [{"from_step": "Start", "to_step": "Closed"}]
    import_workflow(v3, replace=True)
    result = _migrate(client_for(migrator), toVersion=3, dryRun=True)
    assert {(m["outcome"], m["reason"], m["toStep"]) for m in result["moves"]} == {
        ("BLOCKED", "UNMAPPED_STEP", None)
    }
    mapped = _migrate(
        client_for(migrator),
        toVersion=3,
        dryRun=True,
        mapping={"steps": [{"fromStep": "Open", "toStep": "Start"}]},
    )
    assert {m["toStep"] for m in mapped["moves"]} == {"Start"}


def test_a_mapping_naming_what_the_target_lacks_is_refused_with_its_field(migrator, moves_v2):
    result = _migrate(
        client_for(migrator),
        mapping={
            "statuses": [
                {"step": "Open", "fromStatus": "New", "toStatus": "New"},
                {"step": "Open", "fromStatus": "Done", "toStatus": "Nowhere"},
            ]
        },
    )
    assert result["messages"] == [{"code": "INVALID_DEFINITION", "field": "mapping.statuses.1"}]
    unknown = _migrate(client_for(migrator), toVersion=9)
    assert unknown["messages"] == [{"code": "INVALID_DEFINITION", "field": "toVersion"}]
    assert not WorkflowInstance.objects.filter(definition_version__number=2).exists()


def test_migrating_moves_each_instance_with_one_migrated_event(migrator, moves_v2, as_operator):
    result = _migrate(client_for(migrator))
    assert (result["dryRun"], result["migratedCount"], result["failedCount"]) == (False, 2, 0)
    assert {m["outcome"] for m in result["moves"]} == {"MIGRATED"}
    assert {m["instance"]["definitionVersion"] for m in result["moves"]} == {2}
    data = as_operator.data(HISTORY, {"id": gid("WorkflowInstance", moves_v2[0].pk)})
    events = [edge["node"] for edge in data["workflowInstance"]["history"]["edges"]]
    assert [(e["kind"], e["definitionVersion"]) for e in events] == [
        ("STARTED", 1),
        ("MIGRATED", 2),
    ]
    again = _migrate(client_for(migrator))
    assert again["moves"] == [] and again["endCursor"] is None  # already on v2: not selected


def test_a_migrated_instance_reads_its_history_across_both_versions(as_operator):
    import_workflow(DOC)
    instance = services.start_workflow_instance("Moves", _claim())
    v2 = {**DOC, "steps": [dict(DOC["steps"][0]), DOC["steps"][1]]}
    v2["steps"][0]["statuses"] = [*DOC["steps"][0]["statuses"], {"name": "Parked"}]
    workflow = import_workflow(v2, replace=True)
    result = migrate_instances(workflow, workflow.definition_version)
    assert len(result.migrated) == 1
    data = as_operator.data(HISTORY, {"id": gid("WorkflowInstance", instance.pk)})
    kinds = [edge["node"]["kind"] for edge in data["workflowInstance"]["history"]["edges"]]
    assert kinds == ["STARTED", "MIGRATED"]


def test_a_user_without_the_migrate_permission_is_refused(as_operator, moves_v2):
    result = _migrate(as_operator, dryRun=True)
    assert codes(result) == ["PERMISSION_DENIED"]


def test_instances_the_migrator_may_not_see_are_neither_listed_nor_moved(moves_v2):
    owner = make_user(
        "mia",
        *VIEW,
        "django_steps.change_workflowinstance",
        "django_steps.migrate_workflowinstance",
    )
    own = services.start_workflow_instance("Moves", _claim(owner=owner))  # on v2
    import_workflow({**DOC, "description": "v3"}, replace=True)
    as_mia = client_for(owner)
    everyone = [gid("WorkflowInstance", i.pk) for i in (*moves_v2, own)]
    listed = _migrate(as_mia, toVersion=3, dryRun=True, filters={"instanceIds": everyone})
    assert [m["instance"]["id"] for m in listed["moves"]] == [gid("WorkflowInstance", own.pk)]
    applied = _migrate(as_mia, toVersion=3)
    assert applied["migratedCount"] == 1
    versions = dict(WorkflowInstance.objects.values_list("pk", "definition_version__number"))
    assert versions[own.pk] == 3
    assert {versions[i.pk] for i in moves_v2} == {1}


def test_one_request_handles_one_page_and_the_next_continues_after_it(migrator, moves_v2):
    client = client_for(migrator)
    first = _migrate(client, dryRun=True, first=1)
    assert (len(first["moves"]), first["hasNextPage"]) == (1, True)
    second = _migrate(client, dryRun=True, first=1, after=first["endCursor"])
    assert (len(second["moves"]), second["hasNextPage"]) == (1, False)
    ids = [first["moves"][0]["instance"]["id"], second["moves"][0]["instance"]["id"]]
    assert ids == [gid("WorkflowInstance", i.pk) for i in moves_v2]
    too_many = _migrate(client, first=101)
    assert too_many["messages"] == [{"code": "BAD_USER_INPUT", "field": "first"}]


def test_filters_select_by_version_step_and_state(migrator, moves_v2):
    services.set_workflow_on_hold(moves_v2[1])
    client = client_for(migrator)
    held = _migrate(client, dryRun=True, filters={"states": ["ON_HOLD"], "fromVersions": [1]})
    assert [m["instance"]["id"] for m in held["moves"]] == [gid("WorkflowInstance", moves_v2[1].pk)]
    none = _migrate(client, dryRun=True, filters={"steps": ["Closed"]})
    assert none["moves"] == []


def test_a_dry_run_page_costs_the_same_queries_for_2_and_8_instances(migrator):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    import_workflow(DOC)
    for _ in range(8):
        services.start_workflow_instance("Moves", _claim())
    import_workflow({**DOC, "description": "v2"}, replace=True)
    client = client_for(migrator)
    card = MIGRATE.replace(
        "instance { id definitionVersion currentStep { name } }",
        "instance { id definitionVersion currentStep { name } availableStatuses { name } "
        "viewerCan { statuses { name } hold cancel } workflow { version } }",
    )

    def count(n: int) -> int:
        input_ = {"workflowName": "Moves", "toVersion": 2, "dryRun": True, "first": n}
        with CaptureQueriesContext(connection) as queries:
            result = client.data(card, {"input": input_})["migrateWorkflowInstances"]
        assert len(result["moves"]) == n
        return len(queries)

    count(2)  # warm the per-process caches
    assert count(2) == count(8)
