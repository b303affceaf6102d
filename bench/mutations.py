"""Mutation throughput: ``updateWorkflowStepStatus`` over real HTTP against a real server
(uvicorn, several worker processes), with concurrent clients (session login + CSRF, like a
browser) on separate instances and on one shared instance.

Figures: successful mutations per second, version conflicts (clients on the shared instance
send ``expectedVersion``; on a ``VersionConflict`` they retry at its ``current.version``, with
no re-read), p50/p99.
Meaningful on PostgreSQL (DATABASE_URL=postgres://…); on SQLite it uses a temporary file
database, whose writers queue on one lock.

    python bench/mutations.py [--quick] [--json]
"""

from __future__ import annotations

import base64
import http.cookiejar
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import bench_arguments, create_workflow, emit, setup_django  # noqa: E402
from tests.servers import asgi_command, free_port, stop  # noqa: E402

UPDATE = """
mutation Update($input: UpdateWorkflowStepStatusInput!) {
  updateWorkflowStepStatus(input: $input) {
    __typename
    ... on WorkflowInstance { version }
    ... on OperationInfo { messages { code message } }
    ... on VersionConflict { current { version } }
  }
}
"""
VERSION = "query V($id: ID!) { workflowInstance(id: $id) { version } }"
LOGIN = (
    "mutation L($u: String!, $p: String!) { login(username: $u, password: $p) "
    "{ __typename ... on User { username } } }"
)


def global_id(pk: int) -> str:
    return base64.b64encode(f"WorkflowInstance:{pk}".encode()).decode()


class Browser:
    """A session-cookie client that sends the CSRF token as a browser app would."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        try:  # a bare GET of /graphql/ sets the csrftoken cookie (its 400 "no query" is expected)
            self.opener.open(f"{base}/graphql/", timeout=30).read()
        except urllib.error.HTTPError:
            pass

    def csrf(self) -> str:
        return next(c.value for c in self.jar if c.name == "csrftoken")

    def post(self, query: str, variables: dict) -> dict:
        request = urllib.request.Request(
            f"{self.base}/graphql/",
            data=json.dumps({"query": query, "variables": variables}).encode(),
            headers={
                "Content-Type": "application/json",
                "X-CSRFToken": self.csrf(),
                "Referer": self.base + "/",
            },
        )
        with self.opener.open(request, timeout=30) as response:
            return json.loads(response.read())


def client_loop(base, instance_pk, count, shared, results, lock):
    browser = Browser(base)
    browser.post(LOGIN, {"u": "bench", "p": "bench"})
    gid = global_id(instance_pk)
    version = browser.post(VERSION, {"id": gid})["data"]["workflowInstance"]["version"]
    latencies, conflicts, errors = [], 0, 0
    done = 0
    while done < count:
        status = "Working" if (done % 2 == 0) else "Open"
        payload = {"instanceId": gid, "status": {"name": status}}
        if shared:
            payload["expectedVersion"] = version
        started = time.perf_counter()
        data = browser.post(UPDATE, {"input": payload})
        elapsed = time.perf_counter() - started
        result = (data.get("data") or {}).get("updateWorkflowStepStatus") or {}
        if result.get("__typename") == "WorkflowInstance":
            latencies.append(elapsed)
            version = result["version"]
            done += 1
        elif result.get("__typename") == "VersionConflict":
            conflicts += 1
            version = result["current"]["version"]  # the instance as now committed
        else:
            errors += 1
            done += 1
    with lock:
        results["latencies"].extend(latencies)
        results["conflicts"] += conflicts
        results["errors"] += errors


def scenario(base, pks, clients, per_client, shared):
    results = {"latencies": [], "conflicts": 0, "errors": 0}
    lock = threading.Lock()
    threads = [
        threading.Thread(
            target=client_loop,
            args=(base, pks[0] if shared else pks[i], per_client, shared, results, lock),
        )
        for i in range(clients)
    ]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    lat = sorted(results["latencies"])
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else float("nan")  # noqa: E731
    return {
        "per_second": len(lat) / elapsed,
        "conflicts": results["conflicts"],
        "errors": results["errors"],
        "p50": statistics.median(lat) * 1000 if lat else float("nan"),
        "p99": p(0.99),
        "ok": len(lat),
    }


def main() -> None:
    parser = bench_arguments(__doc__)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    clients, per_client = (4, 10) if args.quick else (8, 50)
    tmpdir = tempfile.mkdtemp(prefix="bench-mut-")
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        os.environ["DATABASE_URL"] = f"sqlite:///{tmpdir}/bench.sqlite3"
        os.environ["DJANGO_SETTINGS_MODULE"] = "demo.settings"
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        backend = "sqlite (file)"
    else:
        backend = setup_django("demo.settings", "mutations")

    from django.contrib.auth.models import User

    from claims.models import Claim
    from django_steps.services import start_workflow_instance

    create_workflow("Bench")
    User.objects.create_superuser("bench", "b@example.com", "bench")
    pks = [
        start_workflow_instance("Bench", Claim.objects.create(title="t", claimant="c", amount=5)).pk
        for _ in range(clients)
    ]
    from django.db import connections

    connections.close_all()

    port = free_port()
    env = {
        **os.environ,
        "DJANGO_DEBUG": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "PYTHONPATH": str(ROOT),
    }
    workers = args.workers if backend == "postgresql" else 1
    server = subprocess.Popen(
        asgi_command("uvicorn", "demo.asgi:application", port, "--workers", str(workers)),
        cwd=ROOT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{base}/graphql/", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        separate = scenario(base, pks, clients, per_client, shared=False)
        shared = scenario(base, pks, clients, per_client, shared=True)
    finally:
        stop(server, timeout=20)
    rows = []
    for name, r in (("separate instances", separate), ("one shared instance", shared)):
        label = f"updateWorkflowStepStatus, {clients} clients, {name}, {workers} worker(s)"
        rows.append(
            {"figure": f"{label}: mutations/s", "value": round(r["per_second"], 1), "unit": "1/s"}
        )
        rows.append(
            {
                "figure": f"{label}: p50 / p99",
                "value": f"{r['p50']:.1f} / {r['p99']:.1f}",
                "unit": "ms",
            }
        )
        rows.append(
            {
                "figure": f"{label}: conflicts (retried) / errors",
                "value": f"{r['conflicts']} / {r['errors']}",
                "target": "0 errors, no lost update",
                "met": r["errors"] == 0 and r["ok"] == clients * per_client,
            }
        )
    emit(rows, args.json, f"Mutation throughput ({backend})")


if __name__ == "__main__":
    main()
