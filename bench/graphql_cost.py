"""GraphQL cost check: what estimating an operation's cost (and checking its input) before it
runs adds to a request, as a ratio to the same request without the check.

The dashboard's operations (client/*.graphql, with the variables it sends) through Django's full
request stack (middleware, session, view, schema, optimizer), on 100 seeded instances. One
process; each round sends every operation once with the check and once without (the
``OperationLimits`` extension removed from the schema's extension list), in alternating order;
the figure is the ratio of the medians. The time of the estimate alone is printed too.
Target: <= 5 % per request.

    python bench/graphql_cost.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import create_workflow, emit, seed_instances, setup_django  # noqa: E402

#: Operation name -> variables, as the dashboard sends them (demo/static/demo/dashboard.js).
OPERATIONS = {
    "WorkflowInstances": {"first": 100},
    "Workflows": {},
    "InstanceHistory": None,  # the id of a seeded instance
    "EvaluateTransitions": None,
}
TARGET = 1.05


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rounds = 30 if args.quick else 150
    backend = setup_django("tests.settings", "graphql_cost")

    from django.conf import settings
    from django.contrib.auth.models import User
    from django.test import Client
    from graphql import parse
    from strawberry.relay import to_base64

    from demo.views import client_operations
    from django_steps.models import WorkflowInstance
    from graphql_api.cost import estimate
    from graphql_api.extensions import OperationLimits
    from graphql_api.schema import schema

    settings.ALLOWED_HOSTS = ["*"]
    create_workflow("Bench")
    seed_instances("Bench", 100)
    client = Client()
    client.force_login(User.objects.create_superuser("bench", "b@example.com", "x"))
    instance_id = to_base64(
        "WorkflowInstance", WorkflowInstance.objects.values_list("pk", flat=True).first()
    )
    documents = client_operations()
    bodies = {}
    for name, variables in OPERATIONS.items():
        if variables is None:
            variables = (
                {"id": instance_id} if name == "InstanceHistory" else {"instanceId": instance_id}
            )
        bodies[name] = (documents[name], variables)

    with_check = list(schema.extensions)
    without_check = [extension for extension in with_check if extension is not OperationLimits]
    assert len(without_check) == len(with_check) - 1, (
        "OperationLimits is not in the schema's extensions"
    )

    def request(name: str) -> float:
        document, variables = bodies[name]
        body = json.dumps({"query": document, "operationName": name, "variables": variables})
        started = time.perf_counter()
        response = client.post("/graphql/", body, content_type="application/json")
        elapsed = time.perf_counter() - started
        data = response.json()
        if response.status_code != 200 or data.get("errors"):
            raise SystemExit(f"{name} failed: {response.status_code} {str(data)[:300]}")
        return elapsed

    samples: dict[str, dict[bool, list[float]]] = {name: {True: [], False: []} for name in bodies}
    for name in bodies:  # warm up both paths (parser and validation caches, optimizer)
        for checked in (True, False):
            schema.extensions = with_check if checked else without_check
            request(name)
    try:
        for i in range(rounds):
            for name in bodies:
                order = (True, False) if i % 2 == 0 else (False, True)
                for checked in order:
                    schema.extensions = with_check if checked else without_check
                    samples[name][checked].append(request(name))
    finally:
        schema.extensions = with_check

    rows = []
    for name, (document, variables) in bodies.items():
        parsed = parse(document)
        repeat = 2000
        started = time.perf_counter()
        for _ in range(repeat):
            cost = estimate(schema._schema, parsed, name, variables)
        alone = (time.perf_counter() - started) / repeat
        on = statistics.median(samples[name][True])
        off = statistics.median(samples[name][False])
        ratio = on / off
        rows.append(
            {
                "figure": f"{name}: request with the cost check (estimated cost {cost:,})",
                "value": round(on * 1000, 3),
                "unit": "ms",
                "floor": round(off * 1000, 3),
                "ratio": round(ratio, 3),
                "target": f"<= {TARGET} (the same request without the check)",
                "met": ratio <= TARGET,
            }
        )
        rows.append(
            {
                "figure": f"{name}: the estimate alone",
                "value": round(alone * 1e6, 1),
                "unit": "µs",
                "ratio": round(alone / off, 4),
                "target": "a small share of the request",
            }
        )
    emit(
        rows,
        args.json,
        f"GraphQL cost check overhead ({backend}, {rounds} interleaved rounds, medians)",
    )


if __name__ == "__main__":
    main()
