"""GraphQL list page over real HTTP: ours (strawberry-graphql-django) vs graphene-django,
alternating requests, plus SQL queries and the in-process cost against a hand-written floor.

The page: ``workflowInstances(first: 10 | 100)`` with ``totalCount``, each instance's workflow,
step, status and ``history(first: 10)`` (3 events each).

Over HTTP (the figures that compare with graphene-django):

* ours: the demo's ASGI application (``demo.asgi``) under uvicorn, 1 worker, DEBUG off;
* the peer: graphene-django (``bench/_peer_schema.py``) as a Django ASGI application under the
  same uvicorn version, 1 worker, in its own venv (``bench/.venv-peer``, created on first use:
  graphene needs graphql-core 3.2, strawberry 3.3);
* the same database, the same middleware (the demo's list: sessions, CSRF, auth, django-axes…),
  the same authentication backends and secret key: one logged-in session and one CSRF token
  serve both; every POST carries the token and is checked (ours by its view's CSRF check, the
  peer by Django's CSRF middleware);
* the same permission work: the bench user owns the claims and is no reviewer, so the demo's
  visibility rule is a real queryset filter on both sides (the peer's resolver calls the same
  ``django_steps.authorization.visible_instances`` / ``visible_events``);
* one keep-alive connection per server; requests alternate A/B, the order flipping every
  round; the figure is the ratio of the medians, with the interquartile range of the per-round
  ratios. Target: ratio ≤ 1.0 for a page of 10, ≤ 1.2 for a page of 100.

In process (Django's test client against the same database): SQL queries per page (constant in
page size) and the time against the floor, the same JSON built by two hand-written ORM queries
and ``json.dumps``.

    python bench/graphql_list.py [--quick] [--rounds N] [--json] [--profile DIR]
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    bench_arguments,
    close_django_connections,
    create_workflow,
    emit,
    median_seconds,
    seed_instances,
    versus,
)
from bench._peer_servers import OURS, PEER, Browser, peer_python, served_database, server

SIZES = [10, 100]
#: ours / graphene-django over HTTP, per page size (issue 21).
TARGET = {10: 1.0, 100: 1.2}

QUERY = """
query Page($first: Int!) {
  workflowInstances(first: $first) {
    totalCount
    edges { node { id state version
      workflow { name } currentStep { name } currentStepStatus { name }
      history(first: 10) { edges { node { kind cursor createdAt } } } } }
  }
}
"""


def floor_page(size: int, user) -> str:
    """What a hand-written view would do: the same rows (the same visibility rule), two
    queries (instances with their joins, then each one's first 10 events), json.dumps."""
    from django.db.models import Prefetch

    from django_steps import authorization
    from django_steps.models import WorkflowEvent, WorkflowInstance

    events = authorization.visible_events(user, WorkflowEvent.objects.order_by("pk"))[:10]
    qs = authorization.visible_instances(
        user,
        WorkflowInstance.objects.select_related("workflow", "current_step", "current_step_status")
        .prefetch_related(Prefetch("events", queryset=events, to_attr="page"))
        .order_by("-pk"),
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
                "history": {
                    "edges": [
                        {
                            "node": {
                                "kind": e.kind,
                                "cursor": str(e.cursor),
                                "createdAt": e.created_at.isoformat(),
                            }
                        }
                        for e in i.page
                    ]
                },
            }
        }
        for i in qs[:size]
    ]
    return json.dumps({"data": {"workflowInstances": {"totalCount": total, "edges": edges}}})


def main() -> None:
    parser = bench_arguments(__doc__)
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="py-spy record both servers during the HTTP rounds "
        "(raw stacks into DIR/ours.txt and DIR/peer.txt)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        metavar="N",
        help="alternating HTTP rounds for each page size (default: 300 for a page of 10, 120 for "
        "a page of 100; with --quick 15 and 8); --quick with --rounds gives a short run whose "
        "ratios still have enough rounds",
    )
    args = parser.parse_args()
    rounds = {10: 15, 100: 8} if args.quick else {10: 300, 100: 120}
    if args.rounds:
        rounds = dict.fromkeys(rounds, args.rounds)
    workdir, backend = served_database("graphql_list")

    from django.contrib.auth.models import Permission, User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from claims.models import Claim

    create_workflow("Bench")
    seed_instances("Bench", max(SIZES) + 10)
    user = User.objects.create_user("bench", "b@example.com", "x")
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_workflowinstance", "view_workflow"])
    )
    Claim.objects.update(
        owner=user
    )  # the visibility rule keeps them: a real filter, every row passes
    client = Client()
    client.force_login(user)
    session = client.cookies["sessionid"].value

    rows: list[dict] = []
    query_counts = {}
    user = User.objects.get(pk=user.pk)
    for size in SIZES:
        body = json.dumps({"query": QUERY, "variables": {"first": size}})

        def fetch():
            response = client.post("/graphql/", body, content_type="application/json")
            data = response.json()
            if response.status_code != 200 or "errors" in data:
                raise SystemExit(f"page of {size} failed: {response.status_code} {str(data)[:400]}")
            assert len(data["data"]["workflowInstances"]["edges"]) == size
            return data

        fetch()  # the per-process caches (content types, permissions' names) fill on the first
        with CaptureQueriesContext(connection) as queries:
            fetch()
        count = query_counts[size] = len(queries)
        ours = median_seconds(fetch, 5 if args.quick else 30)
        floor = median_seconds(lambda: floor_page(size, user), 5 if args.quick else 30)
        rows.append(
            {
                "figure": f"page of {size}: SQL queries (in process, incl. session and user)",
                "value": count,
                "unit": "queries",
                "target": "constant in page size",
            }
        )
        rows.append(
            versus(
                f"page of {size}: median latency vs floor (in process)",
                *(ours, floor, "ms"),
                scale=1000,
                target="<= 5x floor",
                met=ours / floor <= 5,
            )
        )
    rows.append(
        {
            "figure": "SQL queries constant across page sizes",
            "value": " / ".join(f"{s}:{q}" for s, q in query_counts.items()),
            "target": "same count for every size",
            "met": len(set(query_counts.values())) == 1,
        }
    )
    close_django_connections()

    try:
        python = peer_python()
    except (subprocess.SubprocessError, OSError) as exc:
        rows.append(
            {"figure": "graphene-django peer", "value": f"unavailable: {exc}", "met": False}
        )
        emit(rows, args.json, f"GraphQL list page ({backend})")
        return
    db_env = {"DATABASE_URL": os.environ["DATABASE_URL"]}
    with (
        server(
            Path(sys.executable),
            OURS,
            db_env,
            workdir / "ours.log",
        ) as (ours_port, ours_pid),
        server(
            python,
            PEER,
            db_env,
            workdir / "peer.log",
        ) as (peer_port, peer_pid),
    ):
        print(
            f"# servers: ours pid {ours_pid} port {ours_port}, "
            f"graphene-django pid {peer_pid} port {peer_port}",
            file=sys.stderr,
        )
        ours, theirs = Browser(ours_port, session), Browser(peer_port, session)
        profilers = []
        if args.profile:
            Path(args.profile).mkdir(parents=True, exist_ok=True)
            spy = Path(sys.executable).parent / "py-spy"
            for name, pid in (("ours", ours_pid), ("peer", peer_pid)):
                profilers.append(
                    subprocess.Popen(
                        [
                            str(spy),
                            "record",
                            "-p",
                            str(pid),
                            "-r",
                            "250",
                            "-f",
                            "raw",
                            "-o",
                            str(Path(args.profile) / f"{name}.txt"),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
        for size in SIZES:
            body = json.dumps({"query": QUERY, "variables": {"first": size}}).encode()
            for _ in range(10):  # warm up: connections, the pool, parser caches
                for side in (ours, theirs):
                    _, data = side.post(body)
                    page = data["data"]["workflowInstances"]
                    assert len(page["edges"]) == size and page["totalCount"] == max(SIZES) + 10, (
                        page["totalCount"]
                    )
            t_ours, t_theirs = [], []
            for r in range(rounds[size]):
                pair = ((ours, t_ours), (theirs, t_theirs))
                for side, out in pair if r % 2 == 0 else reversed(pair):
                    out.append(side.post(body)[0])
            a, b = statistics.median(t_ours), statistics.median(t_theirs)
            per_round = sorted(x / y for x, y in zip(t_ours, t_theirs, strict=False))
            q1, _, q3 = statistics.quantiles(per_round, n=4)
            rows.append(
                {
                    "figure": f"page of {size} over HTTP "
                    "(uvicorn, session + CSRF, same permission work): ours vs "
                    f"graphene-django, {rounds[size]} alternating rounds",
                    "value": round(a * 1000, 2),
                    "unit": "ms",
                    "peer": round(b * 1000, 2),
                    "ratio": round(a / b, 2),
                    "target": f"<= {TARGET[size]:g}",
                    "met": a / b <= TARGET[size],
                }
            )
            rows.append(
                {
                    "figure": f"page of {size} over HTTP: per-round ratio ours/graphene-django, "
                    "median [interquartile range]",
                    "value": f"{statistics.median(per_round):.2f} [{q1:.2f}-{q3:.2f}]",
                }
            )
        for profiler in profilers:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(60)
    emit(rows, args.json, f"GraphQL list page ({backend})")


if __name__ == "__main__":
    main()
