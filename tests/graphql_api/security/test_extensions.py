"""The schema extensions of ``graphql_api.security.extensions``: the validation limits (depth,
aliases, tokens), unexpected errors masked while domain errors stay readable, the introspection
switch and the suggestions it hides."""

from __future__ import annotations

import pytest

from django_steps import services
from tests.graphql_api import operations as ops
from tests.graphql_api.conftest import gid

pytestmark = pytest.mark.django_db


# --------------------------------------------------------------------------------------- limits


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


# -------------------------------------------------------------------------------------- masking


def test_unexpected_errors_are_masked_but_domain_errors_are_readable(
    as_operator, instance, monkeypatch
):
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


# -------------------------------------------------------------------------------- introspection


INTROSPECT = "{ __schema { queryType { name } } }"


def test_introspection_switch(as_viewer, settings):
    settings.DJANGO_STEPS_GRAPHQL = {**settings.DJANGO_STEPS_GRAPHQL, "INTROSPECTION": False}
    result = as_viewer(INTROSPECT)
    assert result.get("data") is None and "introspection" in result["errors"][0]["message"].lower()
    assert "errors" not in as_viewer("{ me { __typename } }")  # __typename stays allowed
    settings.DJANGO_STEPS_GRAPHQL = {**settings.DJANGO_STEPS_GRAPHQL, "INTROSPECTION": True}
    assert as_viewer.data(INTROSPECT)["__schema"]["queryType"]["name"] == "Query"


# ---------------------------------------------------------------------------------- suggestions


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
