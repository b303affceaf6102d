"""A consistent schema, through ``/graphql/``: mutations named verb + what they change, the old
names kept working and ``@deprecated``; the filter combinators (AND / OR / NOT) doing what their
descriptions say, and ``DISTINCT`` accepted but ignored."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from graphql import GraphQLObjectType, build_schema, get_named_type

from django_steps.services import (
    cancel_workflow_instance,
    set_workflow_on_hold,
    start_workflow_instance,
)
from tests.graphql_api import operations as ops
from tests.graphql_api.api.test_schema import SCHEMA_FILE
from tests.graphql_api.conftest import bad_input, codes, gid

pytestmark = pytest.mark.django_db

HOLD = ops.instance_mutation("Hold", "holdWorkflowInstance", "HoldWorkflowInstanceInput")
SET_STATUS = ops.UPDATE_STATUS.replace(
    "UpdateWorkflowStepStatusInput", "SetWorkflowInstanceStatusInput"
).replace("updateWorkflowStepStatus", "setWorkflowInstanceStatus")

#: Each new name, the name it replaces, and both operations.
RENAMED = [
    ("holdWorkflowInstance", "setWorkflowOnHold", HOLD, ops.HOLD, {}),
    (
        "setWorkflowInstanceStatus",
        "updateWorkflowStepStatus",
        SET_STATUS,
        ops.UPDATE_STATUS,
        {"status": {"name": "Submitted"}},
    ),
]


def test_the_old_names_are_deprecated_for_the_new_ones():
    schema = build_schema(SCHEMA_FILE.read_text())
    mutation = schema.mutation_type.fields
    for new, old, *_ in RENAMED:
        assert mutation[new].deprecation_reason is None
        assert mutation[old].deprecation_reason == f"Use `{new}`."
        # the same text and codes; each lists its own <Name>ErrorCode enum
        enums = {name: name[0].upper() + name[1:] + "ErrorCode" for name in (new, old)}
        assert mutation[new].description == mutation[old].description.replace(
            enums[old], enums[new]
        )
        assert list(schema.get_type(enums[new]).values) == list(schema.get_type(enums[old]).values)
        assert (
            {t.name for t in mutation[new].type.of_type.types}
            == {t.name for t in mutation[old].type.of_type.types}
            >= {"OperationInfo", "VersionConflict"}
        )
    # one scheme: a verb, the type it changes, and what of it (the status)
    scheme = re.compile(r"^[a-z]+(WorkflowInstances?|Workflow|WorkItem)(Status)?$")
    current = {n for n, f in mutation.items() if f.deprecation_reason is None}
    assert {n for n in current if not scheme.match(n)} == {"login", "logout"}


@pytest.mark.parametrize("new, old, new_op, old_op, extra", RENAMED)
def test_old_and_new_names_behave_identically(
    as_operator, claim_workflow, claims, new, old, new_op, old_op, extra
):
    first, second = (start_workflow_instance("Claim Processing", c) for c in claims[:2])
    results = []
    for instance, operation, field in ((first, new_op, new), (second, old_op, old)):
        variables = {"input": {"instanceId": gid("WorkflowInstance", instance.pk), **extra}}
        payload = as_operator.data(operation, variables)[field]
        results.append(
            (
                payload["state"],
                payload["version"],
                payload["currentStep"],
                payload["currentStepStatus"],
            )
        )
        # the same refusals too: a stale version conflicts under both names
        stale = {"input": {**variables["input"], "expectedVersion": 1}}
        assert as_operator.data(operation, stale)[field] == {"__typename": "VersionConflict"}
    (new_state, new_version, *_), (old_state, old_version, *_) = results
    assert (new_state, new_version) == (old_state, old_version) != ("ACTIVE", 1)
    assert [r[2]["name"] for r in results] == [results[1][2]["name"]] * 2
    assert [r[3]["name"] for r in results] == [results[1][3]["name"]] * 2


@pytest.mark.parametrize(
    "operation, field", [(HOLD, "holdWorkflowInstance"), (SET_STATUS, "setWorkflowInstanceStatus")]
)
def test_new_names_need_the_same_permission(as_viewer, claim_workflow, claims, operation, field):
    instance = start_workflow_instance("Claim Processing", claims[0])
    variables = {
        "input": {
            "instanceId": gid("WorkflowInstance", instance.pk),
            "status": {"name": "Submitted"},
        }
    }
    if field == "holdWorkflowInstance":
        del variables["input"]["status"]
    assert codes(as_viewer.data(operation, variables)[field]) == ["PERMISSION_DENIED"]


# ------------------------------------------------------------------------------ combinators

NAMES = """
query Names($filters: WorkflowInstanceFilter) {
  workflowInstances(filters: $filters, ordering: [{startedAt: ASC}]) {
    totalCount
    edges { node { currentStepStatus { name } state } }
  }
}
"""


@pytest.fixture
def claims(db):
    from claims.models import Claim

    return Claim.objects.bulk_create(
        [Claim(title=f"c{i}", claimant="Ada", amount=Decimal(i)) for i in range(4)]
    )


@pytest.fixture
def four_states(claim_workflow, claims):
    """Four instances: active, on hold, cancelled, active (in start order)."""
    instances = [start_workflow_instance("Claim Processing", c) for c in claims]
    set_workflow_on_hold(instances[1])
    cancel_workflow_instance(instances[2])
    return instances


def states(gql, filters: dict) -> list[str]:
    data = gql.data(NAMES, {"filters": filters})["workflowInstances"]
    found = [edge["node"]["state"] for edge in data["edges"]]
    assert data["totalCount"] == len(found)
    return found


def test_or_not_and_through_the_endpoint(as_viewer, four_states):
    assert states(as_viewer, {"state": "ACTIVE"}) == ["ACTIVE", "ACTIVE"]
    assert states(as_viewer, {"state": "ACTIVE", "OR": {"state": "CANCELLED"}}) == [
        "ACTIVE",
        "CANCELLED",
        "ACTIVE",
    ]
    # {a, b, OR: {c}} is (a and b) or c
    assert states(
        as_viewer,
        {"state": "ACTIVE", "currentStepName": "No such step", "OR": {"state": "ON_HOLD"}},
    ) == ["ON_HOLD"]
    assert states(as_viewer, {"NOT": {"state": "ACTIVE"}}) == ["ON_HOLD", "CANCELLED"]
    # NOT leaves out what matches all of its conditions
    assert states(as_viewer, {"NOT": {"state": "ACTIVE", "isFinished": True}}) == [
        "ACTIVE",
        "ON_HOLD",
        "CANCELLED",
        "ACTIVE",
    ]
    assert states(as_viewer, {"isFinished": False, "AND": {"NOT": {"state": "ON_HOLD"}}}) == [
        "ACTIVE",
        "ACTIVE",
    ]


def test_distinct_is_accepted_and_changes_nothing(as_viewer, four_states):
    everything = states(as_viewer, {})
    assert states(as_viewer, {"DISTINCT": True}) == everything
    assert states(as_viewer, {"DISTINCT": False, "state": "ON_HOLD"}) == ["ON_HOLD"]
    schema = build_schema(SCHEMA_FILE.read_text())
    for name in ("WorkflowFilter", "WorkflowInstanceFilter", "WorkItemFilter"):
        fields = schema.get_type(name).fields
        assert fields["DISTINCT"].deprecation_reason, name
        assert all(fields[combinator].description for combinator in ("AND", "OR", "NOT")), name


# --------------------------------------------------------------- descriptions match the server

#: A document reaching each connection below the root, without a page size.
NESTED = {
    "WorkflowInstance.history": '{ workflowInstance(id: "x") { history { totalCount } } }',
    "Workflow.instances": '{ workflow(name: "x") { instances { totalCount } } }',
    "Workflow.versions": '{ workflow(name: "x") { versions { totalCount } } }',
    "User.inbox": "{ me { inbox { totalCount } } }",
}


def test_nested_connections_say_they_need_a_page_size_and_do(as_admin):
    schema = build_schema(SCHEMA_FILE.read_text())
    nested = {
        f"{type_name}.{name}": field
        for type_name, named in schema.type_map.items()
        if isinstance(named, GraphQLObjectType) and named is not schema.query_type
        for name, field in named.fields.items()
        if get_named_type(field.type).name.endswith("Connection")
    }
    assert set(nested) == set(NESTED), "a new nested connection: add a document for it"
    for where, document in NESTED.items():
        assert "Give `first` or `last`" in nested[where].description, where
        assert "BAD_USER_INPUT" in nested[where].description, where
        error = bad_input(as_admin(document))
        assert error["extensions"]["field"] == "first" and where in error["message"]


def test_combinators_work_on_a_nested_list_too(as_viewer, four_states):
    query = """query($filters: WorkflowInstanceFilter) { workflow(name: "Claim Processing") {
      instances(first: 10, filters: $filters) { totalCount edges { node { state } } } } }"""

    def nested(filters: dict) -> list[str]:
        page = as_viewer.data(query, {"filters": filters})["workflow"]["instances"]
        assert page["totalCount"] == len(page["edges"])
        return sorted(edge["node"]["state"] for edge in page["edges"])

    assert nested({"NOT": {"state": "ACTIVE"}}) == ["CANCELLED", "ON_HOLD"]
    assert nested({"state": "CANCELLED", "OR": {"state": "ON_HOLD"}}) == ["CANCELLED", "ON_HOLD"]
