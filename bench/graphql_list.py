"""GraphQL list page: SQL queries and median latency of a ``workflowInstances`` page of
10 / 100 / 1000 instances with nested workflow, step, status and history, through Django's
full request stack (middleware, session auth, view, schema, optimizer).

Floor: the same JSON built by a hand-written optimized ORM query and ``json.dumps``.
Peer: the same query served by graphene-django on the same models (``_graphene_peer.py``),
run in its own venv (``bench/.venv-peer``, created on first use) because graphene needs
graphql-core 3.2 and strawberry 3.3. Targets: queries constant in page size; faster than
graphene-django; within 5× the floor.

    python bench/graphql_list.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import create_workflow, emit, median_seconds, seed_instances, setup_django  # noqa: E402

HERE = Path(__file__).resolve().parent
PEER_VENV = HERE / ".venv-peer"
PEER_PACKAGES = ["graphene-django>=3.2", "Django>=5.2,<6", "cel-python>=0.5", "PyYAML>=6", "psycopg[binary]>=3.2", "rules>=3.5"]

QUERY = """
query Page($first: Int!) {
  workflowInstances(first: $first) {
    totalCount
    edges { node { id state version
      workflow { name } currentStep { name } currentStepStatus { name }
      history { kind cursor createdAt } } }
  }
}
"""


def floor_page(size: int) -> str:
    """What a hand-written view would do: one optimized query set and json.dumps."""
    from django.db.models import Prefetch

    from django_steps.models import WorkflowEvent, WorkflowInstance

    qs = (
        WorkflowInstance.objects.select_related("workflow", "current_step", "current_step_status")
        .prefetch_related(Prefetch("events", queryset=WorkflowEvent.objects.order_by("sequence")))
        .order_by("-started_at", "-id")
    )
    total = qs.count()
    edges = [
        {
            "node": {
                "id": str(i.pk),
                "state": i.state,
                "version": i.version,
                "workflow": {"name": i.workflow.name},
                "currentStep": {"name": i.current_step.name},
                "currentStepStatus": {"name": i.current_step_status.name},
                "history": [
                    {"kind": e.kind, "cursor": str(e.position), "createdAt": e.created_at.isoformat()}
                    for e in i.events.all()
                ],
            }
        }
        for i in qs[:size]
    ]
    return json.dumps({"data": {"workflowInstances": {"totalCount": total, "edges": edges}}})


def run_peer(sizes: list[int], repeat: int) -> dict | str:
    python = PEER_VENV / "bin" / "python"
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", *PEER_PACKAGES],
                check=True,
                capture_output=True,
            )
        done = subprocess.run(
            [str(python), str(HERE / "_graphene_peer.py"), "--sizes", ",".join(map(str, sizes)), "--repeat", str(repeat)],
            capture_output=True,
            text=True,
            env={**os.environ, "DATABASE_URL": os.environ.get("BENCH_ORIGINAL_DATABASE_URL", "")},
            timeout=900,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        return f"peer unavailable: {exc}"
    if done.returncode != 0:
        return "peer failed: " + " | ".join(done.stderr.strip().splitlines()[-3:])
    return {int(k): v for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = [10, 100] if args.quick else [10, 100, 1000]
    repeat = 5 if args.quick else 15
    os.environ["BENCH_ORIGINAL_DATABASE_URL"] = os.environ.get("DATABASE_URL", "")
    os.environ["GRAPHQL_MAX_PAGE_SIZE"] = str(max(sizes))  # the API caps pages at 100 by default
    os.environ["GRAPHQL_MAX_COST"] = str(10**7)  # a page of 1000 with histories estimates ~10^5 objects
    backend = setup_django("tests.settings", "bench_graphql")

    from django.conf import settings
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    settings.ALLOWED_HOSTS = ["*"]
    create_workflow("Bench")
    seed_instances("Bench", max(sizes))
    client = Client()
    client.force_login(User.objects.create_superuser("bench", "b@example.com", "x"))
    peer = run_peer(sizes, repeat)

    rows: list[dict] = []
    query_counts = {}
    for size in sizes:
        body = json.dumps({"query": QUERY, "variables": {"first": size}})

        def fetch():
            response = client.post("/graphql/", body, content_type="application/json")
            data = response.json()
            if response.status_code != 200 or "errors" in data:
                raise SystemExit(f"page of {size} failed: {response.status_code} {str(data)[:400]}")
            assert len(data["data"]["workflowInstances"]["edges"]) == size
            return data

        with CaptureQueriesContext(connection) as queries:
            fetch()
        count = query_counts[size] = len(queries)  # read now: the query log is a bounded deque
        ours = median_seconds(fetch, repeat)
        floor = median_seconds(lambda: floor_page(size), repeat)
        rows.append(
            {
                "figure": f"page of {size}: SQL queries",
                "value": count,
                "unit": "queries",
                "peer": peer[size]["queries"] if isinstance(peer, dict) else None,
                "target": "constant in page size",
            }
        )
        rows.append(
            {
                "figure": f"page of {size}: median latency vs floor",
                "value": round(ours * 1000, 2),
                "unit": "ms",
                "floor": round(floor * 1000, 2),
                "ratio": round(ours / floor, 2),
                "target": "<= 5x floor",
                "met": ours / floor <= 5,
            }
        )
        if isinstance(peer, dict):
            theirs = peer[size]["seconds"]
            rows.append(
                {
                    "figure": f"page of {size}: median latency vs graphene-django",
                    "value": round(ours * 1000, 2),
                    "unit": "ms",
                    "peer": round(theirs * 1000, 2),
                    "ratio": round(ours / theirs, 2),
                    "target": "faster than graphene-django (ratio < 1)",
                    "met": ours < theirs,
                }
            )
    constant = len(set(query_counts.values())) == 1
    rows.append(
        {
            "figure": "SQL queries constant across page sizes",
            "value": " / ".join(f"{s}:{q}" for s, q in query_counts.items()),
            "target": "same count for every size",
            "met": constant,
        }
    )
    if not isinstance(peer, dict):
        rows.append({"figure": "graphene-django peer", "value": peer, "met": False})
    emit(rows, args.json, f"GraphQL list page ({backend})")


if __name__ == "__main__":
    main()
