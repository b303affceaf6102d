"""Persisted queries (#20 point 6): Apollo's APQ protocol over HTTP (POST and GET) — a hash alone
the server does not know is PERSISTED_QUERY_NOT_FOUND, the hash with its query runs and is kept,
then the hash alone runs — and the switch that runs registered documents only
(`PERSISTED_QUERIES = "only"`, `manage.py register_documents`). The WebSocket side is in
tests/graphql_api/live/test_persisted_queries_live.py."""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.graphql_api.conftest import ENDPOINT

pytestmark = pytest.mark.django_db


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def unique_query() -> str:
    """A document no other test sent (the persisted-query cache outlives a test)."""
    return f"query Q{uuid.uuid4().hex} {{ workflows(first: 1) {{ totalCount }} }}"


def extensions(query: str) -> dict:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha(query)}}


def post(client, body: dict):
    return client.client.post(ENDPOINT, data=json.dumps(body), content_type="application/json")


def get(client, params: dict):
    return client.client.get(
        ENDPOINT, {k: json.dumps(v) if isinstance(v, dict) else v for k, v in params.items()}
    )


def code(response) -> str:
    return response.json()["errors"][0]["extensions"]["code"]


@pytest.fixture
def apq(settings):
    settings.DJANGO_STEPS_GRAPHQL = {**settings.DJANGO_STEPS_GRAPHQL, "PERSISTED_QUERIES": "apq"}


@pytest.fixture
def off(settings):
    settings.DJANGO_STEPS_GRAPHQL = {**settings.DJANGO_STEPS_GRAPHQL, "PERSISTED_QUERIES": None}


@pytest.fixture
def only(settings, tmp_path):
    settings.DJANGO_STEPS_GRAPHQL = {
        **settings.DJANGO_STEPS_GRAPHQL,
        "PERSISTED_QUERIES": "only",
        "PERSISTED_QUERIES_DOCUMENTS": str(tmp_path / "documents.json"),
    }
    return tmp_path


def test_the_apq_round_trip_over_post_then_get(apq, as_viewer, claim_workflow):
    query = unique_query()
    unknown = post(as_viewer, {"extensions": extensions(query)})
    assert unknown.status_code == 200 and code(unknown) == "PERSISTED_QUERY_NOT_FOUND"
    assert unknown.json()["errors"][0]["message"] == "PersistedQueryNotFound"  # Apollo reads it
    stored = post(as_viewer, {"query": query, "extensions": extensions(query)})
    assert stored.json() == {"data": {"workflows": {"totalCount": 1}}}
    for send in (post, get):
        known = send(as_viewer, {"extensions": extensions(query)})
        assert known.status_code == 200 and known.json() == stored.json()


def test_the_hash_alone_over_get_with_variables_and_operation_name(apq, as_viewer, claim_workflow):
    query = (
        "query ByName($name: String!) { workflow(name: $name) { name } } query Other { me { id } }"
    )
    post(as_viewer, {"query": query, "extensions": extensions(query), "operationName": "Other"})
    variables = {"name": "Claim Processing"}
    response = get(
        as_viewer,
        {"extensions": extensions(query), "variables": variables, "operationName": "ByName"},
    )
    assert response.json() == {"data": {"workflow": {"name": "Claim Processing"}}}


def test_a_hash_that_is_not_the_querys_is_refused_and_not_kept(apq, as_viewer, claim_workflow):
    query, other = unique_query(), unique_query()
    wrong = post(as_viewer, {"query": other, "extensions": extensions(query)})
    assert wrong.status_code == 400 and code(wrong) == "BAD_REQUEST"
    assert code(post(as_viewer, {"extensions": extensions(query)})) == "PERSISTED_QUERY_NOT_FOUND"


@pytest.mark.parametrize(
    "persisted",
    [
        {"version": 2, "sha256Hash": "0" * 64},
        {"version": 1, "sha256Hash": "xyz"},
        {"version": 1, "sha256Hash": "A" * 64},
        {"version": 1},
        "abc",
    ],
)
def test_a_malformed_persisted_query_is_a_bad_request(apq, as_viewer, persisted):
    response = post(as_viewer, {"extensions": {"persistedQuery": persisted}})
    assert response.status_code == 400 and code(response) == "BAD_REQUEST"


def test_a_document_that_does_not_parse_is_not_kept(apq, as_viewer):
    query = "query { workflows(first: 1) { " + uuid.uuid4().hex
    response = post(as_viewer, {"query": query, "extensions": extensions(query)})
    assert code(response) == "GRAPHQL_PARSE_FAILED"
    assert code(post(as_viewer, {"extensions": extensions(query)})) == "PERSISTED_QUERY_NOT_FOUND"


def test_apq_is_on_by_default(as_viewer, claim_workflow):
    query = unique_query()
    assert code(post(as_viewer, {"extensions": extensions(query)})) == "PERSISTED_QUERY_NOT_FOUND"
    post(as_viewer, {"query": query, "extensions": extensions(query)})
    assert post(as_viewer, {"extensions": extensions(query)}).json() == {
        "data": {"workflows": {"totalCount": 1}}
    }


def test_with_persisted_queries_off_a_hash_alone_is_not_supported(off, as_viewer, claim_workflow):
    query = unique_query()
    alone = post(as_viewer, {"extensions": extensions(query)})
    assert alone.status_code == 200 and code(alone) == "PERSISTED_QUERY_NOT_SUPPORTED"
    # with its query the hash is ignored, and nothing is kept
    both = post(as_viewer, {"query": query, "extensions": extensions(query)})
    assert both.json() == {"data": {"workflows": {"totalCount": 1}}}
    assert code(post(as_viewer, {"extensions": extensions(query)})) == (
        "PERSISTED_QUERY_NOT_SUPPORTED"
    )


# ---------------------------------------------------------------- registered documents only

REGISTERED = """
query Names($first: Int) { workflows(first: $first) { edges { node { ...Named } } } }
fragment Named on Workflow { name }
"""
#: The same operation, formatted otherwise, with its fragment first and a comment.
REFORMATTED = """fragment Named on Workflow {
  name
}
# a comment
query Names($first: Int) {
  workflows(first: $first) { edges { node { ...Named } } }
}"""


def register(tmp_path, text: str, *options: str) -> None:
    source = tmp_path / f"{uuid.uuid4().hex}.graphql"
    source.write_text(text)
    call_command("register_documents", str(source), *options)


def test_only_registered_documents_run(only, as_viewer, claim_workflow):
    register(only, REGISTERED)
    for query in (REGISTERED, REFORMATTED):
        data = as_viewer.data(query, {"first": 1})
        assert data == {"workflows": {"edges": [{"node": {"name": "Claim Processing"}}]}}
    refused = post(as_viewer, {"query": "{ workflows(first: 1) { edges { node { name } } } }"})
    assert refused.status_code == 400 and code(refused) == "PERSISTED_QUERY_NOT_IN_LIST"
    # APQ goes on: a registered document sent with its hash, then the hash alone
    query = f"{REFORMATTED}\n# {uuid.uuid4().hex}"  # a text no other test sent
    assert code(post(as_viewer, {"extensions": extensions(query)})) == "PERSISTED_QUERY_NOT_FOUND"
    post(as_viewer, {"query": query, "extensions": extensions(query), "variables": {"first": 1}})
    alone = get(as_viewer, {"extensions": extensions(query), "variables": {"first": 1}})
    assert alone.json()["data"]["workflows"]["edges"][0]["node"]["name"] == "Claim Processing"


def test_an_unregistered_document_is_not_kept_by_its_hash(only, as_viewer, claim_workflow):
    register(only, REGISTERED)
    query = unique_query()
    refused = post(as_viewer, {"query": query, "extensions": extensions(query)})
    assert code(refused) == "PERSISTED_QUERY_NOT_IN_LIST"
    assert code(post(as_viewer, {"extensions": extensions(query)})) == "PERSISTED_QUERY_NOT_FOUND"


def test_a_registered_operation_runs_by_the_hash_of_its_printed_text(
    only, as_viewer, claim_workflow
):
    register(only, REGISTERED)
    registered = json.loads((only / "documents.json").read_text())["operations"]
    [(digest, text)] = registered.items()
    assert digest == sha(text)
    response = post(
        as_viewer, {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}}}
    )
    assert response.json()["data"]["workflows"]["edges"] == [{"node": {"name": "Claim Processing"}}]


def test_register_documents_adds_replaces_and_refuses_invalid_documents(only, claim_workflow):
    register(only, REGISTERED)
    register(only, "query Me { me { username } }")
    path = only / "documents.json"
    assert len(json.loads(path.read_text())["operations"]) == 2
    register(only, "query Me { me { username } }", "--replace")
    assert len(json.loads(path.read_text())["operations"]) == 1
    with pytest.raises(CommandError):
        register(only, "query Broken { noSuchField }")
    with pytest.raises(CommandError):
        register(only, "query { ")
    assert len(json.loads(path.read_text())["operations"]) == 1


def test_the_client_documents_register_as_they_are(only):
    from django.conf import settings

    call_command("register_documents", str(settings.BASE_DIR / "client"))
    operations = json.loads((only / "documents.json").read_text())["operations"]
    assert len(operations) >= 10
