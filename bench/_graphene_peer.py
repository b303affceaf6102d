"""The peer: the same list page served by graphene-django on the same models.

Written as a competent graphene-django user would: relay connection with totalCount and the
related rows loaded with select_related/prefetch_related in the resolver (graphene-django
has no optimizer). Runs in its own venv (graphene needs graphql-core 3.2, strawberry 3.3).

    python bench/_graphene_peer.py --sizes 10,100,1000 --repeat 15 --json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import create_workflow, median_seconds, seed_instances, setup_django  # noqa: E402

from bench.graphql_list import QUERY  # noqa: E402  (the same operation, defined once)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    setup_django("bench._peer_settings", "bench_graphene_peer")
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    create_workflow("Bench")
    seed_instances("Bench", max(sizes))
    client = Client()
    client.force_login(User.objects.create_superuser("peer", "p@example.com", "x"))
    results = {}
    for size in sizes:
        body = json.dumps({"query": QUERY, "variables": {"first": size}})

        def fetch():
            response = client.post("/graphql/", body, content_type="application/json")
            assert response.status_code == 200, response.content[:300]
            data = response.json()
            assert "errors" not in data, data["errors"]
            assert len(data["data"]["workflowInstances"]["edges"]) == size
            return data

        with CaptureQueriesContext(connection) as queries:
            fetch()
        results[size] = {"queries": len(queries), "seconds": median_seconds(fetch, args.repeat)}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
