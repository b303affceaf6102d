"""Persisted queries: a hash-only request (Apollo's APQ) against the same request with the full
query, over HTTP through Django's full request stack (middleware, session, view, schema).

The dashboard's operations (client/*.graphql, with the variables it sends) on 100 seeded
instances, ``PERSISTED_QUERIES = "apq"``. Each round sends every operation three ways, in an
order that changes from round to round: POST with the full query, POST with the hash alone, GET
with the hash alone. The figures are medians; the ratio is the hash-only request against the
full one. What a hash saves is the bytes sent (a GET of a hash is also cacheable by a CDN):
parsing and validating a document are already cached per document text in each process
(strawberry's ``ParserCache`` and ``ValidationCache``, see
:mod:`graphql_api.security.extensions`), so a hash-only request costs what the full one costs,
plus one cache read. Target: no slower than the full query (within 5 %).

    python bench/apq.py [--quick] [--json]
"""

from __future__ import annotations

import hashlib
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import bench_arguments, emit, setup_django, superuser_client, versus

#: Operation name -> variables, as the dashboard sends them (demo/static/demo/dashboard.js).
OPERATIONS = {"WorkflowInstances": {"first": 100}, "Workflows": {}, "InstanceHistory": None}
TARGET = 1.05  # no slower than the full query, within the noise of a shared machine


def main() -> None:
    args = bench_arguments(__doc__).parse_args()
    rounds = 20 if args.quick else 100
    backend = setup_django("tests.settings", "apq")

    from django.conf import settings

    from demo.views import client_operations

    settings.DJANGO_STEPS_GRAPHQL = {
        **getattr(settings, "DJANGO_STEPS_GRAPHQL", {}),
        "PERSISTED_QUERIES": "apq",
    }
    client, instance_id = superuser_client("Bench", 100)
    documents = client_operations()

    def send(way: str, name: str) -> tuple[float, int]:
        document = documents[name]
        variables = OPERATIONS[name] if OPERATIONS[name] is not None else {"id": instance_id}
        digest = hashlib.sha256(document.encode()).hexdigest()
        extensions = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
        body = {"operationName": name, "variables": variables, "extensions": extensions}
        if way == "full":
            body["query"] = document
        started = time.perf_counter()
        if way == "get":
            params = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in body.items()}
            response = client.get("/graphql/", params)
            size = len("&".join(f"{k}={v}" for k, v in params.items()))
        else:
            payload = json.dumps(body)
            response = client.post("/graphql/", payload, content_type="application/json")
            size = len(payload)
        elapsed = time.perf_counter() - started
        data = response.json()
        if response.status_code != 200 or data.get("errors"):
            raise SystemExit(f"{name} ({way}) failed: {response.status_code} {str(data)[:300]}")
        return elapsed, size

    ways = ("full", "post", "get")
    for name in OPERATIONS:  # registers each document, warms every path
        for way in ways:
            send(way, name)
    samples = {name: {way: [] for way in ways} for name in OPERATIONS}
    sizes = {name: dict.fromkeys(ways, 0) for name in OPERATIONS}
    for i in range(rounds):
        order = ways[i % 3 :] + ways[: i % 3]
        for name in OPERATIONS:
            for way in order:
                elapsed, sizes[name][way] = send(way, name)
                samples[name][way].append(elapsed)

    rows = []
    for name in OPERATIONS:
        full = statistics.median(samples[name]["full"])
        for way, label in (("post", "POST"), ("get", "GET")):
            value = statistics.median(samples[name][way])
            rows.append(
                versus(
                    f"{name}: hash-only {label} vs the full query "
                    f"({sizes[name][way]:,} vs {sizes[name]['full']:,} bytes sent)",
                    value,
                    full,
                    "ms",
                    scale=1000,
                    digits=3,
                    ratio_digits=3,
                    target=f"<= {TARGET} (the same request with its query)",
                    met=value / full <= TARGET,
                )
            )
    emit(rows, args.json, f"Persisted queries over HTTP ({backend}, {rounds} rounds, medians)")


if __name__ == "__main__":
    main()
