"""What a hostile or broken client meets over HTTP: request bodies strawberry cannot take, bodies
over Django's size limit and subscriptions sent to the HTTP endpoint are refused in GraphQL's
JSON error shape with a code; global IDs in a non-canonical form are client errors (never a
server fault, never a nulled parent); no message repeats what the client sent; a context
PostgreSQL cannot store is refused up front (cursors: tests/graphql_api/api/test_pagination.py).

Runs on SQLite and on PostgreSQL (``DATABASE_URL``)."""

from __future__ import annotations

import json
import logging

import pytest
from django.test import Client

from django_steps import services
from django_steps.exceptions import InvalidContext, UnknownStatus, VersionConflict, WorkflowNotFound
from tests.graphql_api import operations as ops
from tests.graphql_api.conftest import ENDPOINT, b64, gid

pytestmark = pytest.mark.django_db

HOSTILE = "<script>alert(1)</script>"


def refusal(response, status: int) -> dict:
    """The single error of a request refused before GraphQL ran: JSON, ``status``, a code."""
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"errors"} and len(body["errors"]) == 1, body
    return body["errors"][0]


def post_body(gql, body: str | bytes, content_type: str = "application/json"):
    return gql.client.post(ENDPOINT, body, content_type=content_type)


# ------------------------------------------------------------------------------ request bodies


@pytest.mark.parametrize(
    "body", ['"x"', "null", "1", "true", "1.5", '"{me{id}}"', '"{\\"query\\": \\"{me{id}}\\"}"']
)
def test_a_json_body_that_is_not_an_object_is_bad_request(as_viewer, body):
    error = refusal(post_body(as_viewer, body), 400)
    assert error["extensions"] == {"code": "BAD_REQUEST"}
    assert "JSON object" in error["message"]


@pytest.mark.parametrize("body", ["[]", json.dumps([{"query": "{ me { id } }"}]), "[1]"])
def test_a_json_array_is_refused_because_batching_is_off(as_viewer, body):
    error = refusal(post_body(as_viewer, body), 400)
    assert error["extensions"] == {"code": "BAD_REQUEST"}
    assert "Batching is off" in error["message"]


@pytest.mark.parametrize("name", [{"a": 1}, 1, ["A"], True])
def test_an_operation_name_that_is_not_a_string_is_bad_request(as_viewer, name):
    body = json.dumps({"query": "query A { me { id } }", "operationName": name})
    error = refusal(post_body(as_viewer, body), 400)
    assert error["extensions"] == {"code": "BAD_REQUEST"}
    assert "`operationName` must be a string" in error["message"]


def test_an_unknown_operation_name_is_not_repeated(as_viewer):
    body = json.dumps(
        {"query": "query A { me { id } } query B { me { id } }", "operationName": HOSTILE}
    )
    error = refusal(post_body(as_viewer, body), 400)
    assert error["extensions"] == {"code": "BAD_REQUEST"}
    assert "script" not in error["message"] and "operationName" in error["message"]
    # a known name runs
    body = json.dumps(
        {"query": "query A { me { username } } query B { me { id } }", "operationName": "A"}
    )
    assert post_body(as_viewer, body).json() == {"data": {"me": {"username": "viewer"}}}


def test_a_body_over_the_upload_limit_is_a_json_413(viewer, settings):
    client = Client(enforce_csrf_checks=True)
    client.force_login(viewer)
    client.get(ENDPOINT, HTTP_ACCEPT="application/json")
    token = client.cookies["csrftoken"].value
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    body = json.dumps({"query": "{ me { id } }" + " " * limit})
    error = refusal(
        client.post(ENDPOINT, body, content_type="application/json", HTTP_X_CSRFTOKEN=token), 413
    )
    assert error["extensions"] == {"code": "REQUEST_TOO_LARGE"}
    assert f"{limit:,} bytes" in error["message"]
    # a form body is read by the CSRF check first: refused the same way
    form = "query=" + "x" * limit
    response = client.post(
        ENDPOINT, form, content_type="application/x-www-form-urlencoded", HTTP_X_CSRFTOKEN=token
    )
    assert refusal(response, 413)["extensions"] == {"code": "REQUEST_TOO_LARGE"}
    # the same client goes on normally
    ok = client.post(
        ENDPOINT,
        json.dumps({"query": "{ me { username } }"}),
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
    )
    assert ok.json() == {"data": {"me": {"username": "viewer"}}}


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


SUBSCRIPTION = "subscription { workflowInstanceEvents { id } }"


def test_a_subscription_over_http_is_bad_request_not_a_server_fault(as_viewer, instance, caplog):
    caplog.set_level(logging.INFO)
    responses = [
        post_body(as_viewer, json.dumps({"query": SUBSCRIPTION})),
        as_viewer.client.get(ENDPOINT, {"query": SUBSCRIPTION}, HTTP_ACCEPT="application/json"),
        post_body(
            as_viewer,
            json.dumps(
                {
                    "query": "query Q { me { id } } "
                    + SUBSCRIPTION.replace("subscription", "subscription S"),
                    "operationName": "S",
                }
            ),
        ),
    ]
    for response in responses:
        error = refusal(response, 400)
        assert error["extensions"] == {"code": "BAD_REQUEST"}
        assert "WebSocket" in error["message"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


# ----------------------------------------------------------------------------------- global IDs

FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")

#: Ways to write an instance's primary key that Python's int() reads as that key.
NON_CANONICAL = {
    "leading zero": lambda pk: "0" + pk,
    "leading space": lambda pk: " " + pk,
    "trailing space": lambda pk: pk + " ",
    "plus sign": lambda pk: "+" + pk,
    "newline": lambda pk: pk + "\n",
    "full-width digits": lambda pk: pk.translate(FULL_WIDTH),
    "arabic-indic digits": lambda pk: pk.translate(ARABIC_INDIC),
    "underscore": lambda pk: "0_" + pk,
}

NODE_AND_INSTANCE = "query($id: ID!) { node(id: $id) { id } workflowInstance(id: $id) { id } }"


@pytest.mark.parametrize("form", NON_CANONICAL)
def test_a_global_id_in_a_non_canonical_form_is_invalid(as_operator, instance, form):
    raw = b64(f"WorkflowInstance:{NON_CANONICAL[form](str(instance.pk))}")
    result = as_operator(NODE_AND_INSTANCE, {"id": raw})
    assert not any((result["data"] or {}).values()), result
    assert {e["extensions"]["code"] for e in result["errors"]} == {"INVALID_ID"}, result
    payload = as_operator.data(ops.HOLD, {"input": {"instanceId": raw}})["setWorkflowOnHold"]
    assert [(m["code"], m["field"]) for m in payload["messages"]] == [
        ("INVALID_ID", "instanceId")
    ], payload
    instance.refresh_from_db()
    assert instance.state == "ACTIVE"


def test_a_global_id_in_non_canonical_base64_is_invalid(as_operator, instance):
    canonical = gid("WorkflowInstance", instance.pk)
    for raw in (canonical + "==", " " + canonical, canonical.replace("=", "") + "=" * 4):
        if raw == canonical:
            continue
        result = as_operator(NODE_AND_INSTANCE, {"id": raw})
        assert {e["extensions"]["code"] for e in result["errors"]} == {"INVALID_ID"}, (raw, result)
    assert as_operator.data(NODE_AND_INSTANCE, {"id": canonical}) == {
        "node": {"id": canonical},
        "workflowInstance": {"id": canonical},
    }


@pytest.mark.parametrize(
    "raw",
    [
        "garbage",
        b64(f"{HOSTILE}:1"),
        b64("WorkflowInstance:" + HOSTILE),
        b64("WorkflowStep:1"),
        HOSTILE,
    ],
)
def test_invalid_global_ids_are_refused_without_repeating_them(as_operator, instance, raw):
    result = as_operator("query($id: ID!) { workflowInstance(id: $id) { id } }", {"id": raw})
    [error] = result["errors"]
    assert error["extensions"]["code"] == "INVALID_ID"
    for text in (raw, "garbage", "script", "WorkflowStep"):
        assert text not in error["message"]
    payload = as_operator.data(ops.HOLD, {"input": {"instanceId": raw}})["setWorkflowOnHold"]
    [message] = payload["messages"]
    assert message["code"] == "INVALID_ID" and message["field"] == "instanceId"
    assert "script" not in message["message"] and "garbage" not in message["message"]


# -------------------------------------------------------------------- engine messages, no echo


def test_engine_refusals_do_not_repeat_the_callers_values(instance, claim):
    with pytest.raises(WorkflowNotFound) as not_found:
        services.start_workflow_instance(HOSTILE, claim)
    assert "script" not in not_found.value.message
    assert (
        not_found.value.details["workflow_name"] == HOSTILE
    )  # for the caller's code, not the message
    with pytest.raises(UnknownStatus) as unknown:
        services.update_workflow_step_status(instance, HOSTILE)
    assert "script" not in unknown.value.message and '"Submitted"' in unknown.value.message
    with pytest.raises(VersionConflict) as conflict:
        services.set_workflow_on_hold(instance, expected_version=987654)
    assert "987654" not in conflict.value.message


def test_an_unknown_status_over_graphql_is_not_repeated(as_operator, instance):
    variables = {
        "input": {"instanceId": gid("WorkflowInstance", instance.pk), "statusName": HOSTILE}
    }
    payload = as_operator.data(ops.UPDATE_STATUS, variables)["updateWorkflowStepStatus"]
    [message] = payload["messages"]
    assert message["code"] == "UNKNOWN_STATUS" and "script" not in message["message"]


# ------------------------------------------------------------------------- contexts PG refuses

UNSTORABLE_CONTEXTS = [
    {"note": "a\x00b"},
    {"a\x00k": 1},
    {"claim": {"items": ["ok", {"deep": "\x00"}]}},
]


@pytest.mark.parametrize("context", UNSTORABLE_CONTEXTS)
def test_a_context_holding_nul_is_invalid_context_on_every_database(as_operator, instance, context):
    variables = {
        "input": {
            "instanceId": gid("WorkflowInstance", instance.pk),
            "statusName": "Submitted",
            "context": context,
        }
    }
    payload = as_operator.data(ops.UPDATE_STATUS, variables)["updateWorkflowStepStatus"]
    assert [m["code"] for m in payload["messages"]] == ["INVALID_CONTEXT"], payload
    assert "\x00" not in payload["messages"][0]["message"]
    instance.refresh_from_db()
    assert instance.version == 1 and instance.current_step_status.name == "Draft"  # nothing applied
    with pytest.raises(InvalidContext):
        services.update_workflow_step_status(instance, "Submitted", context)
    # the same context without the NUL is stored with the event
    clean = json.loads(json.dumps(context).replace("\\u0000", ""))
    variables["input"]["context"] = clean
    done = as_operator.data(ops.UPDATE_STATUS, variables)["updateWorkflowStepStatus"]
    assert done["__typename"] == "WorkflowInstance", done
    assert done["lastEvent"]["context"] == {"input": clean}


def test_a_context_holding_an_unpaired_surrogate_is_invalid_context(as_operator, instance):
    body = (
        '{{"query": {}, "variables": {{"input": {{"instanceId": "{}", "statusName": "Submitted", '
        '"context": {}}}}}}}'
    ).format(
        json.dumps(ops.UPDATE_STATUS),
        gid("WorkflowInstance", instance.pk),
        '{"note": "\\ud800"}',
    )
    response = as_operator.client.post(ENDPOINT, body, content_type="application/json")
    payload = response.json()["data"]["updateWorkflowStepStatus"]
    assert [m["code"] for m in payload["messages"]] == ["INVALID_CONTEXT"], payload
    instance.refresh_from_db()
    assert instance.version == 1
