"""Mutations over real HTTP, like for like: ``updateWorkflowStepStatus`` on ours
(strawberry-graphql-django, the demo's ASGI application) against a graphene-django peer and a
plain-Django floor, all three under uvicorn on the same database.

* ours: ``demo.asgi`` (our GraphQL view, its CSRF check, the mutation's permission and
  visibility work, the service with the user as actor);
* the peer: graphene-django (``bench/_peer_schema.py``, its own venv) serving the same mutation
  text, answering ``WorkflowInstance | OperationInfo``, doing the same work
  (``bench/_peer_work.py``);
* the floor: a plain Django JSON view (``bench/_peer_floor.py``) doing the same work;
* the same middleware (the demo's list: sessions, CSRF, auth, django-axes…), the same
  authentication backends and secret key; every POST carries its session cookie and CSRF token
  and is checked. The user is no superuser: the permission is looked up and the demo's
  visibility rule is a real queryset filter (the user owns the claims).

Each client has one keep-alive connection to each server and one instance on each side (it
alternates two statuses of the first step). The connections are split evenly over each server's
workers, the same split on every side (printed in the rows): the kernel's accept order alone
could give one side 6+2 and another 4+4, a difference in queueing rather than in work.
Rounds: in each, every side in turn (the order rotates each round) gets ``--per-round``
mutations from each of the clients at once; the figures are the ratios of the median latencies
over all rounds, with the median and interquartile range of the per-round ratios. With 1
client and with 8; the servers have ``--workers`` processes each (2 by default).

Then a correctness scenario on ours: 8 clients on one shared instance send ``expectedVersion``
and retry a ``VersionConflict`` at its ``current.version``; every change lands once.

Meaningful on PostgreSQL (``DATABASE_URL=postgres://…``, a scratch database); on SQLite a
temporary file database, whose writers queue on one lock.

    python bench/mutations.py [--quick] [--json] [--workers N] [--rounds N] [--per-round N]
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    bench_arguments,
    close_django_connections,
    create_workflow,
    emit,
    versus,
)
from bench._peer_servers import (
    OURS,
    PEER,
    Browser,
    peer_python,
    served_database,
    server,
    split,
    spread,
)

UPDATE = """
mutation Update($input: UpdateWorkflowStepStatusInput!) {
  updateWorkflowStepStatus(input: $input) {
    __typename
    ... on WorkflowInstance { version }
    ... on OperationInfo { messages { code message } }
  }
}
"""
VERSION = "query V($id: ID!) { workflowInstance(id: $id) { version } }"
#: The shared-instance scenario runs on ours only, so it may select what the peer lacks: a stale
#: ``expectedVersion`` answers ``VersionConflict`` with the instance as now committed.
UPDATE_AT_VERSION = UPDATE.replace(
    "... on OperationInfo",
    "... on VersionConflict { current { version } }\n    ... on OperationInfo",
)
FLOOR_PATH = "/floor/update-status/"
SIDES = ("ours", "graphene-django", "floor")
CLIENTS = (1, 8)


def global_id(pk: int) -> str:
    return base64.b64encode(f"WorkflowInstance:{pk}".encode()).decode()


def update_body(pk: int, status: str, expected_version: int | None = None) -> bytes:
    payload: dict = {"instanceId": global_id(pk), "statusName": status}
    query = UPDATE
    if expected_version is not None:
        payload["expectedVersion"] = expected_version
        query = UPDATE_AT_VERSION
    return json.dumps({"query": query, "variables": {"input": payload}}).encode()


def changed(data: dict) -> dict:
    return data["data"]["updateWorkflowStepStatus"]


class Client:
    """One client: a keep-alive connection and an instance on each side."""

    def __init__(self, browsers: dict[str, Browser], instances: dict) -> None:
        self.browsers = browsers
        self.instances = instances
        self.sent = 0

    def send(self, side: str, count: int, out: list) -> None:
        for _ in range(count):
            status = "Working" if self.sent % 2 == 0 else "Open"
            self.sent += 1
            elapsed, data = self.browsers[side].post(update_body(self.instances[side], status))
            result = changed(data)
            if result["__typename"] != "WorkflowInstance":
                raise RuntimeError(f"{side}: {result}")
            out.append(elapsed)


def run_phase(clients: list[Client], side: str, count: int) -> tuple[list[float], float]:
    """Every client sends ``count`` mutations to ``side`` at once; the latencies and the wall
    time of the phase."""
    latencies: list[list[float]] = [[] for _ in clients]
    failures: list[BaseException] = []

    def work(client: Client, out: list) -> None:
        try:
            client.send(side, count, out)
        except BaseException as error:
            failures.append(error)

    threads = [
        threading.Thread(target=work, args=(c, out))
        for c, out in zip(clients, latencies, strict=True)
    ]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise failures[0]
    return [x for out in latencies for x in out], elapsed


def compare(clients: list[Client], rounds: int, per_round: int) -> dict:
    """Interleaved rounds; per side every latency, per round each side's median, and the
    throughput over all rounds."""
    every = {side: [] for side in SIDES}
    medians = {side: [] for side in SIDES}
    wall = dict.fromkeys(SIDES, 0.0)
    for r in range(rounds):
        order = SIDES[r % 3 :] + SIDES[: r % 3]
        for side in order if r % 2 == 0 else reversed(order):
            latencies, elapsed = run_phase(clients, side, per_round)
            every[side].extend(latencies)
            medians[side].append(statistics.median(latencies))
            wall[side] += elapsed
    return {"every": every, "medians": medians, "wall": wall}


def ratio_row(
    count: int, workers: int, result: dict, other: str, target: float, splits: str
) -> dict:
    ours = statistics.median(result["every"]["ours"])
    theirs = statistics.median(result["every"][other])
    per_round = [
        a / b for a, b in zip(result["medians"]["ours"], result["medians"][other], strict=True)
    ]
    middle = statistics.median(per_round)
    q1, _, q3 = statistics.quantiles(per_round, n=4) if len(per_round) > 1 else (middle,) * 3
    row = versus(
        f"updateWorkflowStepStatus over HTTP, ours vs {other}, {count} client(s), {workers} "
        f"worker(s) per server (connections per worker: {splits}): median latency (per-round "
        f"ratio {middle:.2f} [{q1:.2f}-{q3:.2f}], {len(per_round)} rounds)",
        *(ours, theirs, "ms"),
        scale=1000,
        target=f"<= {target:g}x",
        met=ours / theirs <= target,
    )
    if other != "floor":
        row["peer"] = row.pop("floor")
    return row


def shared_instance(port: int, sessions: list[str], pk: int, per_client: int) -> dict:
    """Clients on one instance with ``expectedVersion``, retrying conflicts (ours only)."""
    results = {"ok": 0, "conflicts": 0, "errors": 0}
    lock = threading.Lock()
    read = json.dumps({"query": VERSION, "variables": {"id": global_id(pk)}}).encode()

    def client(session: str) -> None:
        browser = Browser(port, session)
        version = browser.post(read)[1]["data"]["workflowInstance"]["version"]
        ok = conflicts = errors = 0
        while ok + errors < per_client:
            status = "Working" if (ok % 2 == 0) else "Open"
            result = changed(browser.post(update_body(pk, status, version))[1])
            if result["__typename"] == "WorkflowInstance":
                ok += 1
                version = result["version"]
            elif result["__typename"] == "VersionConflict":
                conflicts += 1
                version = result["current"]["version"]  # the instance as now committed
            else:
                errors += 1
        browser.close()
        with lock:
            results["ok"] += ok
            results["conflicts"] += conflicts
            results["errors"] += errors

    threads = [threading.Thread(target=client, args=(s,)) for s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def main() -> None:
    parser = bench_arguments(__doc__)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers per server")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per client count")
    parser.add_argument("--per-round", type=int, help="mutations per client, side and round")
    args = parser.parse_args()
    rounds = args.rounds or (4 if args.quick else 30)
    per_round = args.per_round or (3 if args.quick else 6)
    workdir, backend = served_database("mutations")

    from django.contrib.auth.models import Permission, User
    from django.test import Client as TestClient

    from claims.models import Claim
    from django_steps.models import WorkflowInstance
    from django_steps.services import start_workflow_instance

    create_workflow("Bench")
    user = User.objects.create_user("bench", "b@example.com", "x")
    user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["view_workflowinstance", "change_workflowinstance"]
        )
    )
    most = max(CLIENTS)

    def new_instance() -> int:
        claim = Claim.objects.create(title="t", claimant="c", amount=5, owner=user)
        return start_workflow_instance("Bench", claim).pk

    instances = [{side: new_instance() for side in SIDES} for _ in range(most)]
    shared_pk = new_instance()
    shared_version = WorkflowInstance.objects.get(pk=shared_pk).version
    per_client = 5 if args.quick else 25
    sessions = []
    for _ in range(most):
        login = TestClient()
        login.force_login(user)
        sessions.append(login.cookies["sessionid"].value)
    close_django_connections()

    workers = args.workers if backend == "PostgreSQL" else 1
    rows: list[dict] = []
    python = peer_python()
    db_env = {"DATABASE_URL": os.environ["DATABASE_URL"]}

    def serve(python: Path, side: tuple[str, str], name: str):
        log = workdir / f"{name}.log"
        return server(python, side, db_env, log, workers, worker_pid=True)

    with (
        serve(Path(sys.executable), OURS, "ours") as (ours, _),
        serve(python, PEER, "peer") as (peer, _),
        serve(python, PEER, "floor") as (floor, _),
    ):
        ports = dict(zip(SIDES, (ours, peer, floor), strict=True))
        # The same split of the connections over each server's workers: left to the kernel, one
        # side's 8 could be 6+2 and another's 4+4, a difference in queueing, not in work.
        connections = {
            side: spread(
                ports[side], sessions, FLOOR_PATH if side == "floor" else "/graphql/", workers
            )
            for side in SIDES
        }
        clients = [
            Client({side: connections[side][i] for side in SIDES}, instances[i])
            for i in range(most)
        ]
        for side in SIDES:  # warm up: the pools, parser and validation caches
            run_phase(clients, side, 3)
        for count in CLIENTS:
            result = compare(clients[:count], rounds, per_round)
            splits = ", ".join(f"{side} {split(connections[side][:count])}" for side in SIDES)
            label = (
                f"updateWorkflowStepStatus over HTTP, {count} client(s), {workers} worker(s) "
                "per server"
            )
            rows.append(ratio_row(count, workers, result, "graphene-django", 1.0, splits))
            rows.append(ratio_row(count, workers, result, "floor", 1.5, splits))
            for side in SIDES:
                every = sorted(result["every"][side])
                p99 = every[min(len(every) - 1, int(0.99 * len(every)))]
                rows.append(
                    {
                        "figure": f"{label}, {side}: mutations/s; p50 / p99",
                        "value": f"{len(every) / result['wall'][side]:.1f}/s; "
                        f"{statistics.median(every) * 1000:.1f} / {p99 * 1000:.1f}",
                        "unit": "ms",
                    }
                )
        for client in clients:
            for browser in client.browsers.values():
                browser.close()
        shared = shared_instance(ours, sessions, shared_pk, per_client)
    landed = WorkflowInstance.objects.get(pk=shared_pk).version - shared_version
    rows.append(
        {
            "figure": f"updateWorkflowStepStatus, ours, {most} clients on one shared instance "
            "with expectedVersion: changes / versions moved / conflicts (retried) / errors",
            "value": f"{shared['ok']} / {landed} / {shared['conflicts']} / {shared['errors']}",
            "target": "0 errors, every change lands once",
            "met": shared["errors"] == 0 and shared["ok"] == landed == most * per_client,
        }
    )
    emit(rows, args.json, f"Mutations over HTTP ({backend})")


if __name__ == "__main__":
    main()
