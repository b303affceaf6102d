"""`make bench QUICK=1` runs every benchmark script and prints every row (never fails on a time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: One figure (a prefix of its name) per thing the issues ask the benchmarks to answer.
EXPECTED = {
    "engine": [
        "queries per start",
        "queries per advancing update",
        "queries per full run",
        "plain single-row ORM update() (floor)",
        "advancing update (CEL condition on the object), engine only",
        "advancing update with the 1 connected workflow_event_committed receiver(s) vs engine only",
        "full runs per second",
        "CEL compile of a new condition",
        "CEL evaluate of a cached condition",
        "round trips per advancing update, trusted path",
        "Python CPU per advancing update, trusted path",
        "advancing update with actor= (permission, visibility and move checks) vs trusted",
        "advancing update entering a step with a deadline and reminder (arms 2 timers) vs trusted",
        "advancing update entering an assigned step (opens a work item) vs trusted",
    ],
    # On SQLite (`make test` on a fresh machine) one row says it needs PostgreSQL; on PostgreSQL
    # (CI) the threads are measured.
    "writers": (
        [
            "1 thread(s), separate instances: engine changes/s",
            "engine 8-thread / 1-thread scaling vs the floor's",
            "engine CPU per change, 8 thread(s)",
        ]
        if os.environ.get("DATABASE_URL", "").startswith("postgres")
        else ["writers: changes/s with 1-8 threads vs a plain UPDATE"]
    ),
    "lists": [
        "workflowInstances(first: 10) over GraphQL,",
        "workflowInstances(first: 10): SQL queries (large / small)",
        "the same page through the API's ORM queryset,",
        "history(first: 10) after event",
        "page of 10 with lastEvent + history(first: 10) each vs hand-written floor",
        "page of 100 with lastEvent + history(first: 10) each vs hand-written floor",
        "page with lastEvent + history(first: 10) each: SQL queries for 10 / 100 instances",
        "workflows with instanceCounts (by state, per workflow and per step),",
        "workflows with instanceCounts: SQL queries (large / small)",
    ],
    "graphql_list": [
        "page of 10: SQL queries",
        "page of 100: SQL queries",
        "page of 10: median latency vs floor",
        "page of 100: median latency vs floor",
        "SQL queries constant across page sizes",
        "page of 10 over HTTP (uvicorn, session + CSRF, same permission work): ours vs "
        "graphene-django",
        "page of 100 over HTTP (uvicorn, session + CSRF, same permission work): ours vs "
        "graphene-django",
        "page of 100 over HTTP: per-round ratio ours/graphene-django, median [interquartile range]",
    ],
    "graphql_cost": [
        "WorkflowInstances: request with the cost check",
        "WorkflowInstances: the estimate alone",
    ],
    "ws_message_size": ["send one ", "naming the event being sent"],
    "apq": ["WorkflowInstances: hash-only POST vs the full query"],
    "deadlines": [
        "firing throughput, one worker",
        "due → fired latency p99, worker running",
        "status change with armed timers (deadline, reminder) vs without",
        "entering a step with a deadline and reminder (arms them) vs one without",
    ],
    "mutations": [
        "updateWorkflowStepStatus over HTTP, ours vs graphene-django, 1 client(s)",
        "updateWorkflowStepStatus over HTTP, ours vs floor, 1 client(s)",
        "updateWorkflowStepStatus over HTTP, ours vs graphene-django, 8 client(s)",
        "updateWorkflowStepStatus over HTTP, ours vs floor, 8 client(s)",
        "updateWorkflowStepStatus, ours, 8 clients on one shared instance",
    ],
    "subscriptions": ["fan-out: executions per event", "redis, 2 workers", "in-memory, 1 worker"],
    # The machine's floor for the Redis row (no Django): with the bench's own client, and with
    # Node's `ws` (a row saying it is missing where node_modules is not installed).
    "fanout_floor": [
        "floor (write), 2 workers, python client: 20 subscribers, 40 events at 20/s, p99",
        "floor (write), 2 workers, python client: 20 subscribers, 40 events at 20/s, delivered",
        "floor (write), 2 workers, node client: 20 subscribers",
    ],
    "replay": ["replay of a claimant's 12 events among"],
    "inbox": [
        "me.inbox(first: 20) over GraphQL,",
        "me.inbox(first: 20) with totalCount,",
        "status change closing and opening work items vs the same without assignees",
    ],
    "stats": [
        "workflowStats engine, ",
        "workflowStats over GraphQL, ",
        "workflowStats engine, a claimant",
        "workflowStats over GraphQL, the largest window",
        "workflowStats engine: ",
        "workflowStats over GraphQL: ",
    ],
    "versions": [
        "advancing update, workflow with 50 published versions vs 1",
        "dry run of a migration of",
        "migrating ",
    ],
}


def test_quick_bench_produces_every_row():
    done = subprocess.run(
        [sys.executable, "bench/run.py", "--quick", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads(done.stdout)
    assert report["problems"] == [], report["problems"]
    assert done.returncode == 0, done.stderr[-2000:]
    rows = report["rows"]
    for script, figures in EXPECTED.items():
        names = [r["figure"] for r in rows if r.get("script") == script]
        for figure in figures:
            assert any(n.startswith(figure) for n in names), (
                f"{script}: no row {figure!r} in {names}"
            )
    for row in rows:
        assert "value" in row and row["figure"], row
    # The figures are measured, not made up: counts are positive, ratios are value/floor.
    engine = {r["figure"]: r for r in rows if r["script"] == "engine"}
    assert engine["queries per start"]["value"] > 0
    # Constant in page size, as measured (not a time: a count).
    lists = {r["figure"]: r for r in rows if r["script"] == "lists"}
    assert (
        lists["page with lastEvent + history(first: 10) each: SQL queries for 10 / 100 instances"][
            "met"
        ]
        is True
    )
    assert lists["workflows with instanceCounts: SQL queries (large / small)"]["met"] is True
    # The fan-out's worker CPU per delivery: the total (the commits' own mutations included) and,
    # beside it, the marginal cost of delivering (the same commits alone, measured first).
    memory = [
        r
        for r in rows
        if r["script"] == "subscriptions" and r["figure"].startswith("in-memory, 1 worker")
    ]
    for part in (
        "worker CPU per delivery (total",
        "worker CPU per delivery, marginal: worker CPU with subscribers minus the same commits",
        "the same commits without subscribers",
    ):
        found = [r for r in memory if part in r["figure"]]
        assert found and found[0]["value"] is not None, (part, [r["figure"] for r in memory])
    for row in rows:
        if (
            isinstance(row.get("ratio"), (int, float))
            and isinstance(row.get("floor"), (int, float))
            and row["floor"]
        ):
            assert abs(row["ratio"] - row["value"] / row["floor"]) <= 0.05 * row["ratio"] + 0.01, (
                row
            )
