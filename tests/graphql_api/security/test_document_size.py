"""Documents are bounded in bytes before anything parses or keeps them (an outside tester's
report): comments are not tokens, so ``{__typename} #<random> xxx…`` of 2.4 MB passed every
other limit, and the parser and validation caches kept each distinct one — daphne grew by
gigabytes. Over ``MAX_DOCUMENT_BYTES`` (``ANONYMOUS_MAX_DOCUMENT_BYTES`` when not logged in) a
document is REQUEST_TOO_LARGE (413), and an APQ registration of it is not kept. The WebSocket
side is in tests/graphql_api/live/test_document_size_live.py."""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import tracemalloc
import uuid
from pathlib import Path

import pytest
from graphql import get_introspection_query

from graphql_api.security.extensions import CACHED_OPERATIONS
from graphql_api.settings import graphql_setting
from tests.graphql_api.conftest import ENDPOINT

pytestmark = pytest.mark.django_db


def padded(size: int) -> str:
    """A distinct document of ``size`` bytes, nearly all of it a comment."""
    head = f"{{__typename}} #{uuid.uuid4().hex} "
    return head + "x" * (size - len(head))


def post(gql, body: dict):
    return gql.client.post(ENDPOINT, data=json.dumps(body), content_type="application/json")


def refusal(response) -> tuple[int, str]:
    return response.status_code, response.json()["errors"][0]["extensions"]["code"]


def test_a_document_over_the_limit_is_refused_before_parsing(anon, as_viewer):
    anonymous = graphql_setting("ANONYMOUS_MAX_DOCUMENT_BYTES")
    members = graphql_setting("MAX_DOCUMENT_BYTES")
    assert anon(padded(anonymous))["data"] == {"__typename": "Query"}
    response = anon.post(padded(anonymous + 1))
    assert refusal(response) == (413, "REQUEST_TOO_LARGE")
    assert "log in" in response.json()["errors"][0]["message"]
    # logged in: the higher limit
    assert as_viewer(padded(anonymous + 1))["data"] == {"__typename": "Query"}
    assert as_viewer(padded(members))["data"] == {"__typename": "Query"}
    assert refusal(as_viewer.post(padded(members + 1))) == (413, "REQUEST_TOO_LARGE")
    # bytes, not characters: 2-byte characters count twice
    assert refusal(anon.post(padded(anonymous - 100) + "é" * 100)) == (413, "REQUEST_TOO_LARGE")
    # and over GET
    response = anon.client.get(ENDPOINT, {"query": padded(anonymous + 1)})
    assert refusal(response) == (413, "REQUEST_TOO_LARGE")


def test_the_limits_follow_the_settings(anon, settings):
    settings.DJANGO_STEPS_GRAPHQL = {
        **settings.DJANGO_STEPS_GRAPHQL,
        "ANONYMOUS_MAX_DOCUMENT_BYTES": None,
        "MAX_DOCUMENT_BYTES": 1000,
    }
    assert refusal(anon.post(padded(1001))) == (413, "REQUEST_TOO_LARGE")
    settings.DJANGO_STEPS_GRAPHQL = {
        **settings.DJANGO_STEPS_GRAPHQL,
        "ANONYMOUS_MAX_DOCUMENT_BYTES": None,
        "MAX_DOCUMENT_BYTES": None,
    }
    assert anon(padded(100_000))["data"] == {"__typename": "Query"}


def test_the_client_documents_and_introspection_fit_well_within_the_limits(as_viewer, settings):
    # Introspection is refused to anonymous callers anyway (its fragments, ANONYMOUS_MAX_FRAGMENTS).
    settings.DJANGO_STEPS_GRAPHQL = {**settings.DJANGO_STEPS_GRAPHQL, "INTROSPECTION": True}
    introspection = get_introspection_query(descriptions=True, input_value_deprecation=True)
    assert len(introspection.encode()) * 4 < graphql_setting("MAX_DOCUMENT_BYTES")
    assert "__schema" in as_viewer(introspection)["data"]
    for path in (Path(__file__).parents[3] / "client").glob("*.graphql"):
        assert len(path.read_bytes()) * 2 < graphql_setting("ANONYMOUS_MAX_DOCUMENT_BYTES"), path


def test_an_apq_registration_over_the_limit_is_refused_and_not_kept(anon):
    query = padded(graphql_setting("ANONYMOUS_MAX_DOCUMENT_BYTES") + 1)
    digest = hashlib.sha256(query.encode()).hexdigest()
    ext = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    assert refusal(post(anon, {"query": query, "extensions": ext})) == (413, "REQUEST_TOO_LARGE")
    assert refusal(post(anon, {"extensions": ext})) == (200, "PERSISTED_QUERY_NOT_FOUND")


def test_a_document_kept_by_apq_for_a_member_is_refused_to_an_anonymous_caller(anon, as_viewer):
    query = padded(graphql_setting("ANONYMOUS_MAX_DOCUMENT_BYTES") + 1)
    digest = hashlib.sha256(query.encode()).hexdigest()
    ext = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    response = post(as_viewer, {"query": query, "extensions": ext})
    assert response.json()["data"] == {"__typename": "Query"}
    assert post(as_viewer, {"extensions": ext}).json()["data"] == {"__typename": "Query"}
    assert refusal(post(anon, {"extensions": ext})) == (413, "REQUEST_TOO_LARGE")


def _retained_after(send) -> int:
    """Bytes still allocated after ``send()`` ran (tracemalloc, after a full collection)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        send()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_thousands_of_distinct_large_documents_leave_the_caches_bounded(anon, caplog):
    # The tester's attack, scaled down: distinct documents below the body limit, each as large
    # as allowed and many over it (refused), more of them than the parser and validation caches
    # hold. The caches keep at most CACHED_OPERATIONS documents each, of at most the limit's
    # bytes (with their syntax trees); without the limit they kept every byte sent.
    limit = graphql_setting("ANONYMOUS_MAX_DOCUMENT_BYTES")
    count = CACHED_OPERATIONS + 50  # more distinct documents than a cache holds
    # Django logs each 413 with its request, and pytest keeps the records (with the bodies) for
    # the report: a server's log handlers do not. Restored by caplog after the test.
    caplog.set_level(logging.ERROR, logger="django.request")
    anon(padded(limit))  # warm: the first request imports and caches what every request uses

    def send() -> None:
        for _ in range(count):
            assert anon.post(padded(limit)).status_code == 200
            anon.post(padded(100_000))  # refused: asserted by the tests above

    bound = 2 * CACHED_OPERATIONS * limit * 2  # two caches; a syntax tree as large as its text
    assert count * 100_000 > 1.5 * bound  # what was sent would not fit
    retained = _retained_after(send)
    assert retained < bound, retained
