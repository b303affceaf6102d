"""Limits, CSRF, error masking, the introspection/GraphiQL switches, and hostile input that must
never produce a 500 or a raw exception."""

from __future__ import annotations

import base64
import json
import logging

import pytest
from django.test import Client

from django_steps.models import Workflow
from tests.graphql_api import operations as ops
from tests.graphql_api.api.test_mutations import DEFINITION
from tests.graphql_api.conftest import ENDPOINT, GQL, gid

pytestmark = pytest.mark.django_db

BIG = "x" * 10_240


# ------------------------------------------------------------------------------------- limits


def test_depth_limit(as_viewer):
    nested = (
        "workflow { steps { workflow { steps { workflow { steps { workflow { steps { workflow { "
        "name } } } } } } } } }"
    )
    query = "{ workflowInstances { edges { node { " + nested + " } } } }"
    result = as_viewer(query)
    assert result.get("data") is None
    assert "exceeds maximum operation depth" in result["errors"][0]["message"]


def test_normal_deep_queries_pass_the_depth_limit(as_viewer, instance):
    assert (
        as_viewer.data(ops.INSTANCES_WITH_HISTORY, {"first": 5})["workflowInstances"]["totalCount"]
        == 1
    )


def test_alias_limit(as_viewer):
    query = "{ " + " ".join(f"a{i}: me {{ id }}" for i in range(31)) + " }"
    result = as_viewer(query)
    assert result.get("data") is None
    assert "aliases" in result["errors"][0]["message"]
    assert "errors" not in as_viewer(
        "{ " + " ".join(f"a{i}: me {{ id }}" for i in range(30)) + " }"
    )


def test_token_limit(as_viewer):
    query = "{ me { " + " ".join(["id"] * 6000) + " } }"
    result = as_viewer(query)
    assert result.get("data") is None
    assert "token" in result["errors"][0]["message"].lower()


# --------------------------------------------------------------------------------------- CSRF


def test_csrf_cookie_from_get_and_header_on_post(viewer, claim_workflow):
    client = Client(enforce_csrf_checks=True)
    client.force_login(viewer)
    body = json.dumps({"query": "{ workflows { totalCount } }"})

    refused = client.post(ENDPOINT, body, content_type="application/json")
    assert refused.status_code == 403

    client.get(ENDPOINT, HTTP_ACCEPT="application/json")
    token = client.cookies["csrftoken"].value
    assert token

    wrong = client.post(
        ENDPOINT, body, content_type="application/json", HTTP_X_CSRFTOKEN="nope" * 8
    )
    assert wrong.status_code == 403
    ok = client.post(ENDPOINT, body, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert ok.status_code == 200 and ok.json()["data"]["workflows"]["totalCount"] == 1


def test_login_over_csrf_then_use_the_rotated_token(db):
    from tests.graphql_api.conftest import make_user

    make_user("ada", "django_steps.view_workflow")
    client = Client(enforce_csrf_checks=True)
    client.get(ENDPOINT, HTTP_ACCEPT="application/json")
    gql = GQL(client)
    response = gql.post(
        ops.LOGIN,
        {"username": "ada", "password": "pw"},
        HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value,
    )
    assert response.json()["data"]["login"]["username"] == "ada"
    # login rotated the token: the new cookie works, the session is the user's
    response = gql.post(ops.ME, HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)
    assert response.status_code == 200 and response.json()["data"]["me"]["username"] == "ada"


# -------------------------------------------------------------------------------- masking


def test_unexpected_errors_are_masked_but_domain_errors_are_readable(
    as_operator, instance, monkeypatch
):
    from django_steps import services

    def boom(*args, **kwargs):
        raise RuntimeError("secret internals at /srv/app.py")

    monkeypatch.setattr(services, "set_workflow_on_hold", boom)
    response = as_operator.post(
        ops.HOLD, {"input": {"instanceId": gid("WorkflowInstance", instance.pk)}}
    )
    assert response.status_code == 200
    assert b"secret" not in response.content
    error = response.json()["errors"][0]
    assert error["message"] == "Unexpected error." and error["extensions"] == {
        "code": "INTERNAL_SERVER_ERROR"
    }

    payload = as_operator.data(
        ops.RESUME, {"input": {"instanceId": gid("WorkflowInstance", instance.pk)}}
    )
    assert payload["resumeWorkflowInstance"]["messages"][0]["message"]  # NOT_ON_HOLD, readable


def test_syntax_and_validation_errors_are_readable(as_viewer):
    assert "Syntax Error" in as_viewer("{ workflows { ")["errors"][0]["message"]
    assert "Cannot query field" in as_viewer("{ nope }")["errors"][0]["message"]


# ------------------------------------------------------------------- introspection & GraphiQL


INTROSPECT = "{ __schema { queryType { name } } }"


def test_introspection_switch(as_viewer, settings):
    settings.DJANGO_STEPS_GRAPHQL = {**settings.DJANGO_STEPS_GRAPHQL, "INTROSPECTION": False}
    result = as_viewer(INTROSPECT)
    assert result.get("data") is None and "introspection" in result["errors"][0]["message"].lower()
    assert "errors" not in as_viewer("{ me { __typename } }")  # __typename stays allowed
    settings.DJANGO_STEPS_GRAPHQL = {**settings.DJANGO_STEPS_GRAPHQL, "INTROSPECTION": True}
    assert as_viewer.data(INTROSPECT)["__schema"]["queryType"]["name"] == "Query"


def test_graphiql_switch(client, settings):
    settings.DJANGO_STEPS_GRAPHQL = {**settings.DJANGO_STEPS_GRAPHQL, "GRAPHIQL": True}
    page = client.get(ENDPOINT, HTTP_ACCEPT="text/html")
    assert page.status_code == 200 and b"graphiql" in page.content.lower()
    assert "csrftoken" in page.cookies
    settings.DJANGO_STEPS_GRAPHQL = {**settings.DJANGO_STEPS_GRAPHQL, "GRAPHIQL": False}
    off = client.get(
        ENDPOINT, HTTP_ACCEPT="text/html"
    )  # JSON, not a 404 page (tests/graphql_api/api/test_view.py)
    assert off.status_code == 400 and off.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


# ----------------------------------------------------------------------------- hostile input


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


def test_ten_kilobyte_strings_everywhere(as_admin, instance, claim):
    i = gid("WorkflowInstance", instance.pk)
    checks = [
        (
            ops.START,
            {"input": {"workflowName": BIG, "contentType": "claims.claim", "objectId": claim.pk}},
            "startWorkflowInstance",
            "WORKFLOW_NOT_FOUND",
        ),
        (
            ops.START,
            {
                "input": {
                    "workflowName": "Claim Processing",
                    "contentType": BIG,
                    "objectId": claim.pk,
                }
            },
            "startWorkflowInstance",
            "MODEL_NOT_ALLOWED",
        ),
        (
            ops.START,
            {
                "input": {
                    "workflowName": "Claim Processing",
                    "contentType": "claims.claim",
                    "objectId": BIG,
                }
            },
            "startWorkflowInstance",
            "OBJECT_NOT_FOUND",
        ),
        (
            ops.UPDATE_STATUS,
            {"input": {"instanceId": i, "statusName": BIG}},
            "updateWorkflowStepStatus",
            "UNKNOWN_STATUS",
        ),
        (
            ops.UPDATE_STATUS,
            {"input": {"instanceId": BIG, "statusName": "x"}},
            "updateWorkflowStepStatus",
            "INVALID_ID",
        ),
        (
            ops.CREATE_WORKFLOW,
            {"input": {**DEFINITION, "name": BIG}},
            "createWorkflow",
            "INVALID_DEFINITION",
        ),
        (
            ops.CREATE_WORKFLOW,
            {
                "input": {
                    **DEFINITION,
                    "transitions": [
                        {"fromStep": "Draft", "toStep": "Booked", "condition": BIG + " <"}
                    ],
                }
            },
            "createWorkflow",
            "INVALID_DEFINITION",
        ),
        (
            ops.CREATE_WORKFLOW,
            {
                "input": {
                    **DEFINITION,
                    "transitions": [
                        {"fromStep": "Draft", "toStep": "Booked", "condition": "(" * 5000}
                    ],
                }
            },
            "createWorkflow",
            "INVALID_DEFINITION",
        ),
        (ops.DELETE_WORKFLOW, {"input": {"name": BIG}}, "deleteWorkflow", "WORKFLOW_NOT_FOUND"),
        (ops.LOGIN, {"username": BIG, "password": BIG}, "login", "INVALID_CREDENTIALS"),
    ]
    for operation, variables, field, code in checks:
        payload = as_admin.data(operation, variables)[field]
        assert code in [m["code"] for m in payload.get("messages", [])], (field, str(payload)[:300])
        assert all(len(m["message"]) < 2000 for m in payload["messages"])
    assert as_admin.data(ops.WORKFLOW, {"name": BIG})["workflow"] is None
    assert as_admin(ops.NODE, {"id": BIG})["errors"][0]["extensions"]["code"] == "INVALID_ID"
    filters = {"workflowName": BIG, "currentStepName": BIG, "contentType": BIG, "objectId": BIG}
    assert (
        as_admin.data(ops.INSTANCES, {"filters": filters})["workflowInstances"]["totalCount"] == 0
    )
    assert Workflow.objects.count() == 1


def test_hostile_request_bodies_are_400_not_500(as_viewer):
    client = as_viewer.client
    deep = "[" * 100_000 + "]" * 100_000
    for body in (
        "{not json",
        b"\xff\xfe\x00garbage",
        json.dumps({"query": "{ me { id } }", "variables": "notadict"}),
        '{"query": "{ me { id } }", "variables": ' + deep + "}",
        json.dumps([1, 2, 3]),
        json.dumps({"query": 42}),
    ):
        response = client.post(ENDPOINT, body, content_type="application/json")
        assert 400 <= response.status_code < 500, (
            body[:40],
            response.status_code,
            response.content[:200],
        )


def test_null_bytes_and_unpaired_surrogates_are_bad_input_not_500(as_admin, instance, claim):
    """SQLite stores them; PostgreSQL's driver refuses them: either way no 500, no masked error."""
    i = gid("WorkflowInstance", instance.pk)
    for value in ("\x00", "a\x00b", "\ud83d", "🙂" * 100, "' OR 1=1 --"):
        response = as_admin.post(ops.WORKFLOW, {"name": value})
        assert response.status_code == 200
        result = response.json()
        assert result.get("data") == {"workflow": None}
        assert all(e["extensions"]["code"] == "BAD_USER_INPUT" for e in result.get("errors", []))
        for operation, variables, field in (
            (
                ops.START,
                {
                    "input": {
                        "workflowName": value,
                        "contentType": "claims.claim",
                        "objectId": value,
                    }
                },
                "startWorkflowInstance",
            ),
            (
                ops.UPDATE_STATUS,
                {"input": {"instanceId": i, "statusName": value}},
                "updateWorkflowStepStatus",
            ),
            (ops.CREATE_WORKFLOW, {"input": {**DEFINITION, "name": value + "x"}}, "createWorkflow"),
        ):
            payload = as_admin.data(operation, variables)[field]
            if payload["__typename"] == "OperationInfo":
                assert "INTERNAL_SERVER_ERROR" not in [m["code"] for m in payload["messages"]]


# ------------------------------------------------------------- clean errors for client mistakes


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def bad_input(result: dict) -> dict:
    """The single BAD_USER_INPUT error of a refused request (nothing resolved)."""
    assert result.get("data") is None, result
    [error] = result["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    return error


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


NOT_FINITE = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"]
OUT_OF_RANGE = ["9223372036854775808", "-9223372036854775809", "1" * 5000]


def post_raw(gql, query: str, variables_json: str) -> dict:
    """POST a body whose variables are raw JSON text (Python's json accepts NaN and Infinity)."""
    body = f'{{"query": {json.dumps(query)}, "variables": {variables_json}}}'
    response = gql.client.post(ENDPOINT, body, content_type="application/json")
    assert response.status_code == 200, response.content[:300]
    return response.json()


@pytest.mark.parametrize("number", NOT_FINITE + OUT_OF_RANGE)
def test_numbers_that_are_not_finite_or_out_of_range_are_bad_user_input(as_admin, instance, number):
    i = gid("WorkflowInstance", instance.pk)
    update = post_raw(
        as_admin,
        ops.UPDATE_STATUS,
        f'{{"input": {{"instanceId": "{i}", "statusName": "Submitted", '
        f'"context": {{"claim": {{"amount": [1, {number}]}}}}}}}}',
    )
    error = bad_input(update)
    assert error["extensions"]["field"] == "input.context.claim.amount.1"
    assert number not in error["message"]
    evaluate = post_raw(
        as_admin, ops.EVALUATE, f'{{"instanceId": "{i}", "context": {{"a": {number}}}}}'
    )
    assert bad_input(evaluate)["extensions"]["field"] == "context.a"
    # nothing was applied, and a normal request works right after
    instance.refresh_from_db()
    assert instance.version == 1
    payload = as_admin.data(
        ops.UPDATE_STATUS,
        {"input": {"instanceId": i, "statusName": "Submitted", "context": {"a": 1.5}}},
    )
    assert payload["updateWorkflowStepStatus"]["__typename"] == "WorkflowInstance"


@pytest.mark.parametrize(
    "literal", ["1e400", "-1e400", "9223372036854775808", "1" * 5000, '"' + "x" * 100_001 + '"']
)
def test_inline_json_literals_are_checked_too(as_admin, instance, literal):
    query = (
        'query {{ evaluateTransitions(instanceId: "{}", context: {{claim: {{amount: {}}}}}) '
        "{{ error }} }}"
    ).format(
        gid("WorkflowInstance", instance.pk),
        literal,
    )
    assert bad_input(as_admin(query))["extensions"]["field"] == "context.claim.amount"
    assert as_admin.data(ops.ME)["me"]["username"] == "admin"


def test_ints_out_of_graphql_range_are_bad_user_input(as_viewer, instance):
    for value in ("2147483648", "1e400", "NaN", "1" * 5000):
        error = bad_input(post_raw(as_viewer, ops.INSTANCES, f'{{"first": {value}}}'))
        assert error["extensions"]["field"] == "first", error
    assert as_viewer.data(ops.INSTANCES, {"first": 1})["workflowInstances"]["totalCount"] == 1


def test_oversized_inputs_are_bad_user_input(as_admin, instance):
    i = gid("WorkflowInstance", instance.pk)
    cases = [
        ({"input": {"instanceId": i, "statusName": "x" * 100_001}}, "input.statusName"),
        (
            {
                "input": {
                    "instanceId": i,
                    "statusName": "Submitted",
                    "context": {f"k{n}": n for n in range(10_001)},
                }
            },
            "input.context",
        ),
        (
            {
                "input": {
                    "instanceId": i,
                    "statusName": "Submitted",
                    "context": {"claim": {"tags": list(range(20_000))}},
                }
            },
            "input.context.claim.tags",
        ),
    ]
    deep: dict = {}
    node = deep
    for _ in range(40):
        node["a"] = {}
        node = node["a"]
    cases.append(
        ({"input": {"instanceId": i, "statusName": "Submitted", "context": deep}}, "input.context")
    )
    long_key = {
        "input": {
            "instanceId": i,
            "statusName": "Submitted",
            "context": {"k" * 100_001: 1, "a": "x" * 100_001},
        }
    }
    cases.append((long_key, "input.context"))
    for variables, field in cases:
        error = bad_input(as_admin(ops.UPDATE_STATUS, variables))
        assert error["extensions"]["field"].startswith(field), (field, error)
        assert len(error["message"]) < 300
    instance.refresh_from_db()
    assert instance.version == 1
    assert as_admin.data(ops.UPDATE_STATUS, {"input": {"instanceId": i, "statusName": "Submitted"}})


# ------------------------------------------------------------------------------ suggestions


def test_no_suggestions_while_introspection_is_off(as_viewer, settings):
    typos = [
        '{ workflow(name: "x") { nam } }',  # field
        '{ workflow(nme: "x") { name } }',  # argument
        "{ workflowInstances(filters: {stat: ACTIVE}) { totalCount } }",  # input field
        "{ workflowInstances(filters: {state: ACTIV}) { totalCount } }",  # enum value
        # type
        "query($f: WorkflowInstanceFiltr) { workflowInstances(filters: $f) { totalCount } }",
    ]
    settings.DJANGO_STEPS_GRAPHQL = {**settings.DJANGO_STEPS_GRAPHQL, "INTROSPECTION": True}
    shown = [as_viewer(query)["errors"][0]["message"] for query in typos]
    assert all("Did you mean" in message for message in shown), shown
    settings.DJANGO_STEPS_GRAPHQL = {**settings.DJANGO_STEPS_GRAPHQL, "INTROSPECTION": False}
    for query in typos:
        for error in as_viewer(query)["errors"]:
            assert "Did you mean" not in error["message"] and "'state'" not in error["message"], (
                error
            )
            assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


# ----------------------------------------------------------------------------------- logging


def test_client_errors_are_logged_in_one_line_without_traceback(
    as_viewer, as_operator, instance, caplog, monkeypatch
):
    caplog.set_level(logging.DEBUG)
    i = gid("WorkflowInstance", instance.pk)
    as_viewer("{ workflows { ")  # syntax
    as_viewer("{ nope }")  # validation
    as_viewer(ops.INSTANCES, {"after": b64("arrayconnection:-5")})  # bad input
    as_viewer(ops.NODE, {"id": "garbage"})  # invalid id, raised by a resolver
    as_viewer(NESTED_HISTORY, {"id": i})  # cost
    client_records = list(caplog.records)
    assert len(client_records) == 5, [r.getMessage() for r in client_records]
    for record in client_records:
        assert record.levelno in (logging.INFO, logging.WARNING), record.getMessage()
        assert record.exc_info is None and "\n" not in record.getMessage()
        assert record.name == "graphql_api"
    codes = [r.getMessage().split()[3] for r in client_records]
    assert codes == [
        "GRAPHQL_PARSE_FAILED",
        "GRAPHQL_VALIDATION_FAILED",
        "BAD_USER_INPUT",
        "INVALID_ID",
        "QUERY_TOO_COMPLEX",
    ]
    assert client_records[-1].levelno == logging.WARNING

    caplog.clear()
    from django_steps import services

    def boom(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(services, "set_workflow_on_hold", boom)
    as_operator(ops.HOLD, {"input": {"instanceId": i}})
    [fault] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert fault.levelno == logging.ERROR and fault.exc_info and fault.exc_info[0] is RuntimeError
    assert "setWorkflowOnHold" in fault.getMessage()
    assert not [r for r in caplog.records if r.name.startswith("strawberry")]


NESTED_HISTORY = """
query Nested($id: ID!) {
  workflowInstance(id: $id) { history(first: 100) { edges { node { instance { history(first: 100) {
    edges { node { id } } } } } } } }
}
"""
