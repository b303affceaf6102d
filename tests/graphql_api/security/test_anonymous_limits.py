"""Callers who are not logged in get tighter document limits, checked before validation: 400
fragments cost graphql-core's validation seconds of CPU, and nobody needs them to log in (#17
item 10)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

#: 400 fragments spreading into one query (the issue's document, about 4,000 tokens).
FRAGMENTS = (
    "query { "
    + " ".join(f"...F{i}" for i in range(400))
    + " } "
    + " ".join(f"fragment F{i} on Query {{ me {{ username }} }}" for i in range(400))
)

#: Few tokens, many fragments.
INLINE = "query {{ {} }}".format(" ".join("... on Query { me { username } }" for _ in range(11)))


def _codes(result: dict) -> list[str]:
    return [e["extensions"]["code"] for e in result.get("errors") or ()]


def test_an_anonymous_document_of_400_fragments_is_refused_before_validation(anon, settings):
    # The parser's token limit refuses it (GRAPHQL_PARSE_FAILED, naming the limit): no document
    # exists to validate. Asserted by code, not by a time (the machine's load decides that).
    # Its 18 KB are over ANONYMOUS_MAX_DOCUMENT_BYTES too (test_document_size.py): off here.
    settings.DJANGO_STEPS_GRAPHQL = {
        **settings.DJANGO_STEPS_GRAPHQL,
        "ANONYMOUS_MAX_DOCUMENT_BYTES": None,
    }
    result = anon(FRAGMENTS)
    assert result.get("data") is None and _codes(result) == ["GRAPHQL_PARSE_FAILED"]
    assert "1000 tokens" in result["errors"][0]["message"]


def test_an_anonymous_document_with_many_fragments_is_refused(anon):
    result = anon(INLINE)
    assert result.get("data") is None and _codes(result) == ["QUERY_TOO_COMPLEX"]
    assert "log in" in result["errors"][0]["message"]
    # within the limits: answered
    assert anon("query { ... on Query { me { username } } }")["data"] == {"me": None}


def test_logged_in_callers_keep_the_general_limits(as_viewer):
    assert as_viewer(INLINE)["data"]["me"] == {"username": "viewer"}


def test_the_anonymous_limits_follow_the_settings(anon, settings):
    settings.DJANGO_STEPS_GRAPHQL = {
        **settings.DJANGO_STEPS_GRAPHQL,
        "ANONYMOUS_MAX_FRAGMENTS": 20,
        "ANONYMOUS_MAX_TOKENS": 200,
    }
    assert anon(INLINE)["data"] == {"me": None}
    long = "query {{ {} }}".format(" ".join(f"a{i}: me {{ username }}" for i in range(60)))
    assert _codes(anon(long)) == ["GRAPHQL_PARSE_FAILED"]


def test_logging_in_fits_the_anonymous_limits(anon, viewer):
    result = anon(
        'mutation { login(username: "viewer", password: "pw") { __typename ... on User { username '
        "} } }"
    )
    assert result["data"]["login"] == {"__typename": "User", "username": "viewer"}
