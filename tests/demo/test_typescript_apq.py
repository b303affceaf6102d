"""Apollo Client's persisted-query link (@apollo/client/link/persisted-queries, sha256 from
node's crypto) against the running server with `PERSISTED_QUERIES = "apq"` (#20 point 6): the
first client falls back to the full query after PERSISTED_QUERY_NOT_FOUND, a second one is
answered for the hash alone over GET (client-typescript/apollo/apq.mjs asserts the requests)."""

from __future__ import annotations

import json
import subprocess

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils.crypto import get_random_string

from tests.conftest import CLAIM_PROCESSING, make_workflow
from tests.demo.test_typescript_codegen import PROJECT


@pytest.mark.typescript
def test_apollos_persisted_query_link_round_trip(live_server, settings, transactional_db):
    settings.DJANGO_STEPS_GRAPHQL = {**settings.DJANGO_STEPS_GRAPHQL, "PERSISTED_QUERIES": "apq"}
    make_workflow("Claim Processing", CLAIM_PROCESSING)
    browser = Client()
    browser.force_login(User.objects.create_superuser("apollo", "a@example.com", "pw"))
    token = get_random_string(32)
    cookie = f"sessionid={browser.cookies['sessionid'].value}; csrftoken={token}"
    done = subprocess.run(
        ["node", "apollo/apq.mjs", f"{live_server.url}/graphql/", cookie, token],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["workflows"] == 1
    assert [(r["method"], r["query"], r["code"]) for r in report["sent"]] == [
        ("GET", False, "PERSISTED_QUERY_NOT_FOUND"),
        ("POST", True, None),
        ("GET", False, None),
    ]
