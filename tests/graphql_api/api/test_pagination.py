"""Keyset pagination: a page fetched after rows were inserted or removed elsewhere neither
repeats nor skips a row, forward and backward, for instances and for an instance's history;
the history is a bounded connection with `lastEvent` beside it; `workflowEvents` reads the
commit-ordered history over HTTP with the subscription's cursors. Page arguments and cursors a
client got wrong (malformed, or values that do not fit their column) are BAD_USER_INPUT naming
the argument, never a server fault. Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from claims.models import Claim
from django_steps import services
from django_steps.models import WorkflowEvent, WorkflowInstance
from tests.conftest import wait_until_final
from tests.graphql_api import operations as ops
from tests.graphql_api.conftest import b64, bad_input, gid, post_raw

pytestmark = pytest.mark.django_db

PAGE = """query Page($first: Int, $after: String, $last: Int, $before: String) {
  workflowInstances(first: $first, after: $after, last: $last, before: $before) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id } }
  }
}"""

HISTORY = """query History($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {
  workflowInstance(id: $id) {
    version
    lastEvent { id sequence kind }
    history(first: $first, after: $after, last: $last, before: $before) {
      totalCount
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { cursor node { id sequence } }
    }
  }
}"""

EVENTS = """query Events($after: String, $first: Int, $instanceId: ID, $workflowName: String) {
  workflowEvents(after: $after, first: $first, instanceId: $instanceId, workflowName:
    $workflowName) {
    cursor
    pageInfo { hasNextPage }
    edges { cursor node { id cursor kind sequence instance { id } } }
  }
}"""


def start(title: str) -> WorkflowInstance:
    claim = Claim.objects.create(title=title, claimant="x", amount=Decimal("1"))
    return services.start_workflow_instance("Claim Processing", claim)


def pk_of(global_id: str) -> int:
    from strawberry import relay

    return int(relay.GlobalID.from_id(global_id).node_id)


def ids(connection: dict) -> list[str]:
    return [edge["node"]["id"] for edge in connection["edges"]]


@pytest.fixture
def ten(claim_workflow):
    return [start(f"c{i}") for i in range(10)]


def test_instances_page_forward_without_repeat_or_gap_while_rows_come_and_go(as_viewer, ten):
    everything = ids(as_viewer.data(PAGE, {"first": 100})["workflowInstances"])  # newest first
    assert len(everything) == 10
    page1 = as_viewer.data(PAGE, {"first": 4})["workflowInstances"]
    assert ids(page1) == everything[:4] and page1["pageInfo"]["hasNextPage"]
    # Elsewhere: a new instance is started (it sorts first) and one from page 1 is deleted.
    start("newcomer")
    WorkflowInstance.objects.filter(pk=pk_of(everything[1])).delete()
    page2 = as_viewer.data(PAGE, {"first": 4, "after": page1["pageInfo"]["endCursor"]})[
        "workflowInstances"
    ]
    assert ids(page2) == everything[4:8]
    page3 = as_viewer.data(PAGE, {"first": 4, "after": page2["pageInfo"]["endCursor"]})[
        "workflowInstances"
    ]
    assert ids(page3) == everything[8:] and not page3["pageInfo"]["hasNextPage"]
    assert page3["totalCount"] == 10  # 10 + the newcomer - the deleted one


def test_instances_page_backward_without_repeat_or_gap(as_viewer, ten):
    everything = ids(as_viewer.data(PAGE, {"first": 100})["workflowInstances"])
    tail = as_viewer.data(PAGE, {"last": 3})["workflowInstances"]
    assert ids(tail) == everything[-3:] and tail["pageInfo"]["hasPreviousPage"]
    start("newcomer")  # sorts first: before everything, it must not shift the pages back
    before = as_viewer.data(PAGE, {"last": 3, "before": tail["pageInfo"]["startCursor"]})[
        "workflowInstances"
    ]
    assert ids(before) == everything[-6:-3]
    earlier = as_viewer.data(PAGE, {"last": 3, "before": before["pageInfo"]["startCursor"]})[
        "workflowInstances"
    ]
    assert ids(earlier) == everything[-9:-6]


def test_a_root_connection_without_first_or_last_returns_one_bounded_page(as_viewer, ten):
    from graphql_api.api.types import MAX_PAGE_SIZE

    page = as_viewer.data(PAGE)["workflowInstances"]
    assert len(page["edges"]) == 10 <= MAX_PAGE_SIZE


def history_of(instance) -> list[int]:
    return list(
        WorkflowEvent.objects.filter(instance=instance)
        .order_by("sequence")
        .values_list("pk", flat=True)
    )


def test_the_history_pages_oldest_first_without_repeat_or_gap_while_it_grows(
    as_viewer, claim_workflow
):
    instance = start("long")
    for _ in range(4):
        services.set_workflow_on_hold(instance)
        services.resume_workflow_instance(instance)  # 9 events
    variables = {"id": gid("WorkflowInstance", instance.pk)}
    page1 = as_viewer.data(HISTORY, {**variables, "first": 4})["workflowInstance"]
    assert [e["node"]["sequence"] for e in page1["history"]["edges"]] == [1, 2, 3, 4]
    assert page1["history"]["totalCount"] == 9 and page1["history"]["pageInfo"]["hasNextPage"]
    services.set_workflow_on_hold(instance)  # the history grows at its end meanwhile
    after = page1["history"]["pageInfo"]["endCursor"]
    page2 = as_viewer.data(HISTORY, {**variables, "first": 4, "after": after})["workflowInstance"]
    assert [e["node"]["sequence"] for e in page2["history"]["edges"]] == [5, 6, 7, 8]
    page3 = as_viewer.data(
        HISTORY, {**variables, "first": 4, "after": page2["history"]["pageInfo"]["endCursor"]}
    )
    assert [e["node"]["sequence"] for e in page3["workflowInstance"]["history"]["edges"]] == [9, 10]
    # Backward from the end.
    last = as_viewer.data(HISTORY, {**variables, "last": 3})["workflowInstance"]
    assert [e["node"]["sequence"] for e in last["history"]["edges"]] == [8, 9, 10]
    before = as_viewer.data(
        HISTORY, {**variables, "last": 3, "before": last["history"]["pageInfo"]["startCursor"]}
    )
    assert [e["node"]["sequence"] for e in before["workflowInstance"]["history"]["edges"]] == [
        5,
        6,
        7,
    ]
    # lastEvent is the newest change.
    assert (
        last["lastEvent"]["sequence"] == last["version"] == 10
        and last["lastEvent"]["kind"] == "ON_HOLD"
    )


def test_the_history_is_bounded_and_nested_connections_need_first_or_last(
    as_viewer, claim_workflow
):
    from graphql_api.api.types import MAX_PAGE_SIZE

    instance = start("long")
    for _ in range(MAX_PAGE_SIZE):
        services.set_workflow_on_hold(instance)
        services.resume_workflow_instance(instance)
    variables = {"id": gid("WorkflowInstance", instance.pk)}
    page = as_viewer.data(HISTORY, {**variables, "first": MAX_PAGE_SIZE})["workflowInstance"][
        "history"
    ]
    assert len(page["edges"]) == MAX_PAGE_SIZE and page["pageInfo"]["hasNextPage"]
    too_many = as_viewer(HISTORY, {**variables, "first": MAX_PAGE_SIZE + 1})
    assert too_many["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    unbounded = as_viewer(
        "query($id: ID!) { workflowInstance(id: $id) { history { totalCount } } }", variables
    )
    assert unbounded["data"] is None
    [error] = unbounded["errors"]
    assert (error["extensions"]["code"], error["extensions"]["field"]) == (
        "BAD_USER_INPUT",
        "first",
    )


@pytest.mark.django_db(transaction=True)  # it reads final events: committed ones (PostgreSQL)
def test_workflow_events_reads_the_commit_ordered_history_with_the_subscriptions_cursors(
    as_viewer, ten
):
    wait_until_final()
    feed = as_viewer.data(EVENTS, {"first": 4})["workflowEvents"]
    cursors = [edge["cursor"] for edge in feed["edges"]]
    assert cursors == [edge["node"]["cursor"] for edge in feed["edges"]]
    assert [int(c) for c in cursors] == sorted(int(c) for c in cursors)
    assert feed["pageInfo"]["hasNextPage"] and feed["cursor"] == cursors[-1]
    seen = list(cursors)
    after = feed["cursor"]
    while True:
        feed = as_viewer.data(EVENTS, {"first": 4, "after": after})["workflowEvents"]
        seen += [edge["cursor"] for edge in feed["edges"]]
        after = feed["cursor"]
        if not feed["pageInfo"]["hasNextPage"]:
            break
    assert seen == [str(e.cursor) for e in WorkflowEvent.objects.order_by("txid", "position")]
    # Nothing after the end: the cursor to continue from is where we are.
    empty = as_viewer.data(EVENTS, {"after": after})["workflowEvents"]
    assert empty["edges"] == [] and empty["cursor"] == after
    # One instance's stream, one workflow's stream.
    instance = ten[3]
    services.set_workflow_on_hold(instance)
    mine = as_viewer.data(
        EVENTS, {"after": after, "instanceId": gid("WorkflowInstance", instance.pk)}
    )
    assert [e["node"]["kind"] for e in mine["workflowEvents"]["edges"]] == ["ON_HOLD"]


def test_workflow_events_refuses_bad_arguments_with_codes(as_viewer, ten):
    for variables, code, field in [
        ({"after": "garbage"}, "INVALID_CURSOR", "after"),
        ({"after": str(2**200)}, "INVALID_CURSOR", "after"),
        ({"first": -1}, "BAD_USER_INPUT", "first"),
        ({"first": 101}, "BAD_USER_INPUT", "first"),
    ]:
        result = as_viewer(EVENTS, variables)
        [error] = result["errors"]
        assert (error["extensions"]["code"], error["extensions"].get("field")) == (code, field), (
            variables
        )
    [error] = as_viewer(EVENTS, {"workflowName": "Nope"})["errors"]
    assert error["extensions"]["code"] == "WORKFLOW_NOT_FOUND"
    [error] = as_viewer(EVENTS, {"instanceId": gid("WorkflowInstance", 10**9)})["errors"]
    assert error["extensions"]["code"] == "INSTANCE_NOT_FOUND"


def test_a_page_of_instances_with_last_event_and_a_history_page_costs_constant_queries(
    as_viewer, claim_workflow
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for i in range(30):
        instance = start(f"c{i}")
        services.set_workflow_on_hold(instance)
    query = """query($first: Int!) { workflowInstances(first: $first) { edges { node {
        id lastEvent { kind toStatus { name } actor { username } }
        history(first: 10) { edges { node { kind toStep { name } } } }
    } } } }"""

    def count(first: int) -> int:
        with CaptureQueriesContext(connection) as queries:
            edges = as_viewer.data(query, {"first": first})["workflowInstances"]["edges"]
        assert len(edges) == first
        assert all(e["node"]["lastEvent"]["kind"] == "ON_HOLD" for e in edges)
        assert all(len(e["node"]["history"]["edges"]) == 2 for e in edges)
        return len(queries)

    assert count(3) == count(30)


# ------------------------------------------------------------------------------- page arguments


BIG = "x" * 10_240

CASES = [
    ("{ workflows(first: 5, last: -254) { totalCount } }", "last"),
    ("{ workflows(first: -5, last: 3) { totalCount } }", "first"),
    ("{ workflows(first: 3, last: 101) { totalCount } }", "last"),
    ("{ workflowInstances(first: 2, last: -1) { totalCount } }", "last"),
    (
        '{ workflow(name: "Claim Processing") { instances(first: 2, last: -1) { totalCount } } }',
        "last",
    ),
]


@pytest.mark.parametrize("query, field", CASES)
def test_each_page_argument_is_checked(as_admin, claim_workflow, query, field):
    [error] = as_admin(query)["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert error["extensions"].get("field") == field, error
    # and the server answers a normal request right after
    assert (
        as_admin.data("{ workflows(first: 2, last: 1) { totalCount edges { cursor } } }")[
            "workflows"
        ]["totalCount"]
        == 1
    )


@pytest.mark.parametrize("first, last", [(-1, None), (None, -5), (101, None), (10**6, None)])
def test_bad_pagination_is_a_coded_error(as_viewer, instance, first, last):
    for query in (ops.INSTANCES, ops.WORKFLOWS):
        result = as_viewer(
            query,
            {"first": first, "last": last} if query is ops.INSTANCES else {"first": first or 0},
        )
        if query is ops.WORKFLOWS and first is None:
            continue
        assert result["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", result


def test_bad_pagination_on_nested_connections(as_viewer, instance):
    result = as_viewer(
        '{ workflow(name: "Claim Processing") { instances(first: -1) { totalCount } } }'
    )
    assert result["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_out_of_range_ints_and_bad_cursors(as_viewer, instance):
    result = as_viewer(ops.INSTANCES, {"first": 2**40})
    assert result["errors"]  # Int coercion error, not a 500
    result = as_viewer(ops.INSTANCES, {"after": "not-a-cursor"})
    assert "errors" in result or result["data"]["workflowInstances"]["edges"] is not None
    result = as_viewer(ops.INSTANCES, {"after": BIG, "before": "🙂"})
    assert "data" in result


def test_ints_out_of_graphql_range_are_bad_user_input(as_viewer, instance):
    for value in ("2147483648", "1e400", "NaN", "1" * 5000):
        error = bad_input(post_raw(as_viewer, ops.INSTANCES, f'{{"first": {value}}}'))
        assert error["extensions"]["field"] == "first", error
    assert as_viewer.data(ops.INSTANCES, {"first": 1})["workflowInstances"]["totalCount"] == 1


# ---------------------------------------------------------------------------- malformed cursors


MALFORMED_CURSORS = [
    b64("arrayconnection:-5"),  # Django refuses negative indexing
    b64("arrayconnection:" + "9" * 30),  # OFFSET overflows
    b64("arrayconnection:9223372036854775807"),
    b64("arrayconnection:abc"),
    b64("orderedcursor:[1]"),
    "garbage!!",
    "x" * 300,
]


@pytest.mark.parametrize("argument", ["after", "before"])
@pytest.mark.parametrize("cursor", MALFORMED_CURSORS)
def test_malformed_cursors_are_bad_user_input_naming_the_argument(
    as_viewer, instance, argument, cursor
):
    error = bad_input(as_viewer(ops.INSTANCES, {argument: cursor, "first": 5}))
    assert error["extensions"]["field"] == argument
    assert cursor not in error["message"]
    nested = (
        '{ workflow(name: "Claim Processing") '
        f'{{ instances({argument}: "{cursor}") {{ totalCount }} }} }}'
    )
    assert bad_input(as_viewer(nested))["extensions"]["field"] == argument
    # the server answers a normal request right after, and real cursors still work
    page = as_viewer.data(ops.INSTANCES, {"first": 1})["workflowInstances"]
    assert page["totalCount"] == 1
    after = as_viewer.data(ops.INSTANCES, {"first": 1, "after": page["pageInfo"]["endCursor"]})
    assert after["workflowInstances"]["edges"] == []


# ------------------------------------------------------------------------------- cursor values

BEYOND = ["9223372036854775808", "-9223372036854775809", "1" + "0" * 26, "-1" + "0" * 26]

NESTED_HISTORY = """
query History($id: ID!, $after: String, $before: String) {
  workflowInstance(id: $id) { id history(first: 5, after: $after, before: $before) { edges { node {
    id } } } }
}
"""

NESTED_INSTANCES = """
query WorkflowInstances($after: String, $before: String) {
  workflow(name: "Claim Processing") { name instances(first: 5, after: $after, before: $before) {
    edges { node { id } } } }
}
"""

ROOT_WORKFLOWS = """
query Workflows($after: String, $before: String) {
  workflows(first: 5, after: $after, before: $before) { edges { node { id } } }
}
"""


def cursor_refused(result: dict, argument: str, cursor: str) -> dict:
    """The one error of a refused cursor: BAD_USER_INPUT naming the argument, not the value."""
    [error] = result["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert error["extensions"]["field"] == argument, error
    assert cursor not in error["message"] and "922337" not in error["message"]
    return error


@pytest.mark.parametrize("argument", ["after", "before"])
@pytest.mark.parametrize("key", BEYOND)
def test_a_cursor_key_beyond_its_column_is_bad_user_input_on_every_connection(
    as_viewer, instance, argument, key
):
    started = instance.started_at.isoformat()
    cases = [
        # root connections: instances (newest first: started_at, id), workflows (name, id)
        (ops.INSTANCES, {"first": 5}, b64("orderedcursor:" + json.dumps([started, key]))),
        (ROOT_WORKFLOWS, {}, b64("orderedcursor:" + json.dumps(["Claim Processing", key]))),
        # nested ones, paged in the parent's query: an instance's history (id), a workflow's
        # instances
        (
            NESTED_HISTORY,
            {"id": gid("WorkflowInstance", instance.pk)},
            b64("orderedcursor:" + json.dumps([key])),
        ),
        (NESTED_INSTANCES, {}, b64("orderedcursor:" + json.dumps([started, key]))),
    ]
    for query, variables, cursor in cases:
        result = as_viewer(query, {**variables, argument: cursor})
        cursor_refused(result, argument, cursor)


@pytest.mark.parametrize(
    "values",
    [
        ["9999-12-31T23:59:59-05:00", "1"],  # a datetime past year 9999 once in UTC
        ["0001-01-01T00:00:00+05:00", "1"],  # ... before year 1
        ["2026-11-30T22:00:00", "1"],  # no offset: not a cursor we hand out
        [None, "1"],  # the start time of an instance is never null
        ["2026-11-30T22:00:00+00:00", None],  # nor its id
        ["2026-11-30T22:00:00+00:00", "\ud800"],
    ],
)
def test_cursor_values_an_instance_cannot_have_are_bad_user_input(as_viewer, instance, values):
    cursor = b64("orderedcursor:" + json.dumps(values))
    cursor_refused(as_viewer(ops.INSTANCES, {"first": 5, "after": cursor}), "after", cursor)


@pytest.mark.parametrize("value", [None, "\ud800", "1.5", "", "1e3"])
def test_history_cursor_values_an_event_id_cannot_be_are_bad_user_input(as_viewer, instance, value):
    cursor = b64("orderedcursor:" + json.dumps([value]))
    result = as_viewer(
        NESTED_HISTORY, {"id": gid("WorkflowInstance", instance.pk), "before": cursor}
    )
    cursor_refused(result, "before", cursor)


def test_a_malformed_nested_cursor_names_its_argument(as_viewer, instance):
    """Wrong number of values, or a value the column cannot parse."""
    for cursor in (b64('orderedcursor:["1","2","3"]'), b64('orderedcursor:["abc"]')):
        cursor_refused(
            as_viewer(
                NESTED_HISTORY, {"id": gid("WorkflowInstance", instance.pk), "before": cursor}
            ),
            "before",
            cursor,
        )


def test_cursors_the_connections_hand_out_still_page(as_operator, instance, claim_workflow):
    services.update_workflow_step_status(instance, "Submitted")
    page = as_operator.data(NESTED_HISTORY, {"id": gid("WorkflowInstance", instance.pk)})
    nested = page["workflowInstance"]["history"]["edges"]
    assert len(nested) == WorkflowEvent.objects.filter(instance=instance).count() >= 2
    query = """query H($id: ID!, $after: String) { workflowInstance(id: $id) {
        history(first: 1, after: $after) { edges { cursor node { id } } } } }"""
    first = as_operator.data(query, {"id": gid("WorkflowInstance", instance.pk)})[
        "workflowInstance"
    ]["history"]
    after = as_operator.data(
        query, {"id": gid("WorkflowInstance", instance.pk), "after": first["edges"][0]["cursor"]}
    )
    assert after["workflowInstance"]["history"]["edges"][0]["node"]["id"] == nested[1]["node"]["id"]
    root = as_operator.data(ops.INSTANCES, {"first": 1})["workflowInstances"]
    again = as_operator.data(ops.INSTANCES, {"first": 1, "before": root["pageInfo"]["endCursor"]})
    assert again["workflowInstances"]["edges"] == []
