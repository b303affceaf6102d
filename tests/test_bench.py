"""`make bench QUICK=1` runs every benchmark script and prints every row (never fails on a time)."""

from __future__ import annotations

import json
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
        "full runs per second",
        "CEL compile of a new condition",
        "CEL evaluate of a cached condition",
    ],
    "graphql_list": [
        "page of 10: SQL queries",
        "page of 100: SQL queries",
        "page of 10: median latency vs floor",
        "page of 100: median latency vs floor",
        "page of 10: median latency vs graphene-django",
        "SQL queries constant across page sizes",
    ],
    "graphql_cost": ["WorkflowInstances: request with the cost check", "WorkflowInstances: the estimate alone"],
    "mutations": ["updateWorkflowStepStatus"],
    "subscriptions": ["redis, 2 workers", "in-memory, 1 worker"],
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
            assert any(n.startswith(figure) for n in names), f"{script}: no row {figure!r} in {names}"
    for row in rows:
        assert "value" in row and row["figure"], row
    # The figures are measured, not made up: counts are positive, ratios are value/floor.
    engine = {r["figure"]: r for r in rows if r["script"] == "engine"}
    assert engine["queries per start"]["value"] > 0
    for row in rows:
        if isinstance(row.get("ratio"), (int, float)) and isinstance(row.get("floor"), (int, float)) and row["floor"]:
            assert abs(row["ratio"] - row["value"] / row["floor"]) <= 0.05 * row["ratio"] + 0.01, row
