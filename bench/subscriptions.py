"""Commit → client latency and delivery of ``workflowInstanceEvents`` on real servers.

Two figures sets:

* **redis**: 200 subscribers spread over 2 uvicorn worker processes sharing a Redis channel
  layer, 1000 commits at 20/s made through HTTP mutations alternating between the workers
  (targets: p99 ≤ 250 ms, 100 % delivered);
* **in-memory**: 1000 subscribers on one uvicorn worker with the in-memory channel layer, 240
  commits at 2/s through that worker, i.e. 2000 deliveries a second (target: p99 ≤ 500 ms,
  100 % delivered). One worker runs on one core and each delivery costs it CPU (the "worker
  CPU per delivery" row): more subscribers × commits per second than one core serves need more
  workers.

Every subscriber follows the workflow-wide stream, so every commit reaches every subscriber
(200 × 1000 deliveries). The commit time is the event's ``createdAt`` (set inside the
transaction just before it commits), the arrival time is taken when the client has parsed
the message; the clients run in this process, so their own work counts against the latency.

Database: a scratch PostgreSQL database (its own name, always dropped) when ``DATABASE_URL`` is
PostgreSQL, else a temporary SQLite file. Redis: ``REDIS_URL`` if set, else a private
``redis-server`` on a free port.

    python bench/subscriptions.py [--quick] [--json]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import bench_arguments  # noqa: E402
from tests.servers import asgi_command, free_port, graphql, stop, wait_http  # noqa: E402

GIVEN_REDIS_URL = os.environ.get("REDIS_URL")
SUBSCRIBE = """subscription($w: String, $after: String) {
  workflowInstanceEvents(workflowName: $w, after: $after) { cursor createdAt }
}"""
HOLD = """mutation($id: ID!) { setWorkflowOnHold(input: {instanceId: $id}) { __typename } }"""
RESUME = (
    """mutation($id: ID!) { resumeWorkflowInstance(input: {instanceId: $id}) { __typename } }"""
)


def setup_database(workdir: Path) -> str:
    from bench._common import handle_termination, scratch_database

    handle_termination()
    url = scratch_database("subscriptions") or f"sqlite:///{workdir / 'bench.sqlite3'}"
    os.environ["DATABASE_URL"] = url
    os.environ.pop("REDIS_URL", None)  # this process makes no commits that publish
    os.environ["DJANGO_SETTINGS_MODULE"] = "demo.settings"
    os.environ.setdefault(
        "DJANGO_SECRET_KEY", "bench-only-not-a-secret-" + "x" * 40
    )  # DEBUG is off
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    return url


def seed(instances: int) -> tuple[str, list[str]]:
    """A superuser session and ``instances`` started instances of workflow "Bench"."""
    from decimal import Decimal

    from django.contrib.auth import get_user_model
    from django.test import Client
    from strawberry.relay import to_base64

    from bench._common import create_workflow
    from claims.models import Claim
    from django_steps.services import start_workflow_instance

    create_workflow("Bench")
    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "pw")
    client = Client()
    client.force_login(user)
    ids = []
    for i in range(instances):
        claim = Claim.objects.create(title=f"Claim {i}", claimant="B", amount=Decimal(100 + i))
        ids.append(to_base64("WorkflowInstance", start_workflow_instance("Bench", claim).pk))
    return client.cookies["sessionid"].value, ids


@contextlib.contextmanager
def worker(env_extra: dict, log: Path, pids: list[int] | None = None):
    port = free_port()
    # psycopg's connection pool on PostgreSQL: the deployment the README recommends.
    pool = (
        {"DJANGO_DB_POOL": "1"} if os.environ.get("DATABASE_URL", "").startswith("postgres") else {}
    )
    env = {
        **os.environ,
        **pool,
        **env_extra,
        "PYTHONPATH": str(ROOT),
        "DJANGO_DEBUG": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_STEPS_LOG_LEVEL": "WARNING",
        # Every subscriber here is the same user: no per-user socket limit.
        "GRAPHQL_WS_MAX_CONNECTIONS_PER_USER": "0",
    }
    cmd = asgi_command(
        "uvicorn",
        "demo.asgi:application",
        port,
        *("--ws", "websockets", "--ws-max-queue", "1024", "--ws-per-message-deflate", "false"),
    )
    with open(log, "ab") as out:
        process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        if pids is not None:
            pids.append(process.pid)
        try:
            wait_http(port, process, log)
            yield port
        finally:
            stop(process)


@contextlib.contextmanager
def redis_url(workdir: Path):
    if GIVEN_REDIS_URL:
        yield GIVEN_REDIS_URL
        return
    binary = shutil.which("redis-server")
    if not binary:
        yield None
        return
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(100):
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", port), timeout=0.2),
            ):
                break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.kill()
        process.wait(5)


async def subscriber(
    port: int,
    session: str,
    after: str,
    latencies: list[tuple[int, float]],
    seen: set[str],
    ready: asyncio.Event,
    stop: asyncio.Event,
) -> None:
    from websockets.asyncio.client import connect

    async with connect(
        f"ws://127.0.0.1:{port}/graphql/",
        subprotocols=["graphql-transport-ws"],
        additional_headers={"Cookie": f"sessionid={session}"},
        max_queue=None,
        open_timeout=60,
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        await ws.recv()
        await ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": SUBSCRIBE, "variables": {"w": "Bench", "after": after}},
                }
            )
        )
        ready.set()
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            now = time.time()
            message = json.loads(raw)
            if message.get("type") == "ping":
                await ws.send(json.dumps({"type": "pong"}))
                continue
            if message.get("type") != "next":
                continue
            event = message["payload"]["data"]["workflowInstanceEvents"]
            if event["cursor"] in seen:
                continue
            seen.add(event["cursor"])
            latencies.append(
                (int(event["cursor"]), now - datetime.fromisoformat(event["createdAt"]).timestamp())
            )


def cpu_seconds(pids: list[int]) -> float | None:
    """User + system CPU time of these processes so far (Linux /proc; None elsewhere)."""
    try:
        total = 0
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class HorizonSampler:
    """PostgreSQL: every 50 ms, the age of the oldest transaction holding a transaction id in
    *another* database of the cluster. Readers only see events below every running transaction
    (django_steps/history.py), cluster-wide, so such a transaction delays delivery here."""

    def __init__(self) -> None:
        self.ages: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        url = os.environ.get("DATABASE_URL", "")
        if not url.startswith("postgres"):
            return
        self._thread = threading.Thread(
            target=self._run, args=(url.replace("postgres://", "postgresql://", 1),), daemon=True
        )
        self._thread.start()

    def _run(self, url: str) -> None:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            while not self._stop.is_set():
                age = conn.execute(
                    "SELECT COALESCE(EXTRACT(EPOCH FROM max(clock_timestamp() - xact_start)), 0) "
                    "FROM pg_stat_activity "
                    "WHERE backend_xid IS NOT NULL AND datname <> current_database()"
                ).fetchone()[0]
                self.ages.append(float(age))
                self._stop.wait(0.05)

    def stop(self) -> dict | None:
        self._stop.set()
        if self._thread is None:
            return None
        self._thread.join()
        if not self.ages:
            return None
        return {"max": max(self.ages), "over": sum(a > 0.25 for a in self.ages) / len(self.ages)}


async def scenario(
    ports: list[int],
    session: str,
    instance_ids: list[str],
    subscribers: int,
    commits: int,
    rate: float,
    pids: list[int] | None = None,
) -> dict:
    from django_steps import history
    from django_steps.models import WorkflowEvent

    def newest() -> int:
        """The newest committed event's cursor (what a client would hold)."""
        from django.db import connection

        try:
            return history.newest(WorkflowEvent.objects.all())
        finally:
            connection.close()  # a worker thread's connection: back to the pool now

    # Every subscriber resumes from the same cursor, so one that becomes active late still gets
    # every event (from the history). One warm-up commit, received by every subscriber, proves
    # they are all live before the measured commits start; it is not counted.
    warm_up, instance_ids = instance_ids[-1], instance_ids[:-1]
    after = str(await asyncio.to_thread(newest))
    latencies: list[list[tuple[int, float]]] = [[] for _ in range(subscribers)]
    seen: list[set[str]] = [set() for _ in range(subscribers)]
    stop = asyncio.Event()
    readies = [asyncio.Event() for _ in range(subscribers)]
    tasks = []
    for i in range(subscribers):
        tasks.append(
            asyncio.create_task(
                subscriber(
                    ports[i % len(ports)], session, after, latencies[i], seen[i], readies[i], stop
                )
            )
        )
        if i % 50 == 49:
            await asyncio.sleep(0.05)

    async def opened_or_failed(i: int) -> None:
        waiter = asyncio.ensure_future(readies[i].wait())
        await asyncio.wait({waiter, tasks[i]}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()

    await asyncio.wait_for(asyncio.gather(*(opened_or_failed(i) for i in range(subscribers))), 120)
    live = [
        i for i in range(subscribers) if not tasks[i].done()
    ]  # a failed handshake counts as undelivered
    # Hold the warm-up instance, or resume it if an earlier scenario left it on hold.
    answer = await asyncio.to_thread(graphql, ports[0], HOLD, session, id=warm_up)
    if (
        answer.get("errors")
        or (answer.get("data") or {}).get("setWorkflowOnHold", {}).get("__typename")
        != "WorkflowInstance"
    ):
        await asyncio.to_thread(graphql, ports[0], RESUME, session, id=warm_up)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not all(seen[i] for i in live):
        await asyncio.sleep(0.1)
    if not all(seen[i] for i in live):
        print(
            f"{sum(not seen[i] for i in live)} subscribers never received the warm-up event",
            file=sys.stderr,
        )
    threshold = await asyncio.to_thread(newest)  # the warm-up event's position
    for per in seen:
        per.clear()

    cpu_before = cpu_seconds(pids or [])
    horizon = HorizonSampler()
    horizon.start()
    # Commits are fired on schedule, not one after the other, so a slow server cannot lower the
    # rate; each instance alternates hold/resume, and its previous change is awaited first.
    started = time.monotonic()
    failures = 0
    previous: dict[str, asyncio.Task] = {}

    async def commit(n: int, instance: str, hold: bool, before: asyncio.Task | None) -> None:
        nonlocal failures
        if before is not None:
            await before
        result = await asyncio.to_thread(
            graphql, ports[n % len(ports)], HOLD if hold else RESUME, session, id=instance
        )
        data = (result.get("data") or {}).get(
            "setWorkflowOnHold" if hold else "resumeWorkflowInstance"
        ) or {}
        if result.get("errors") or data.get("__typename") != "WorkflowInstance":
            failures += 1

    pending = []
    for n in range(commits):
        delay = started + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        instance = instance_ids[n % len(instance_ids)]
        hold = (n // len(instance_ids)) % 2 == 0
        task = asyncio.create_task(commit(n, instance, hold, previous.get(instance)))
        previous[instance] = task
        pending.append(task)
    await asyncio.gather(*pending)
    achieved_rate = commits / (time.monotonic() - started)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(len(seen[i]) < commits - failures for i in live):
        await asyncio.sleep(0.2)
    cpu_after = cpu_seconds(pids or [])
    held = horizon.stop()
    stop.set()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    closed = [o for o in outcomes if isinstance(o, BaseException)]
    if closed:
        print(
            f"{len(closed)} of {subscribers} subscriber sockets ended early, e.g. {closed[0]!r}",
            file=sys.stderr,
        )
    flat = sorted(x for per in latencies for position, x in per if position > threshold)
    expected = (commits - failures) * subscribers
    delivered = sum(len(s) for s in seen)

    def pct(p: float) -> float:
        return flat[min(len(flat) - 1, int(p * len(flat)))] * 1000 if flat else float("nan")

    return {
        "p50": pct(0.50),
        "p99": pct(0.99),
        "max": flat[-1] * 1000 if flat else float("nan"),
        "delivered": delivered / expected if expected else 0.0,
        "failures": failures,
        "rate": achieved_rate,
        "closed": len(closed),
        # Worker CPU over the commit phase (HTTP commits included) per event delivered.
        "horizon": held,
        "cpu_per_delivery": (
            (cpu_after - cpu_before) / delivered * 1e6
            if cpu_before is not None and cpu_after is not None and delivered
            else None
        ),
    }


def rows_for(
    name: str, result: dict, p99_target: float, subscribers: int, commits: int, rate: float
) -> list[dict]:
    label = f"{name}: {subscribers} subscribers, {commits} commits at {rate:g}/s"
    return [
        {"figure": f"{label}, p50 commit→client", "value": round(result["p50"], 1), "unit": "ms"},
        {
            "figure": f"{label}, p99 commit→client",
            "value": round(result["p99"], 1),
            "unit": "ms",
            "floor": p99_target,
            "ratio": round(result["p99"] / p99_target, 2),
            "target": f"≤ {p99_target:.0f} ms",
            "met": result["p99"] <= p99_target,
        },
        {
            "figure": f"{label}, delivered",
            "value": round(result["delivered"] * 100, 3),
            "unit": "%",
            "floor": 100.0,
            "ratio": round(result["delivered"], 5),
            "target": "100 %",
            "met": result["delivered"] >= 1.0 and result["failures"] == 0,
        },
        {
            "figure": f"{label}, commit rate achieved",
            "value": round(result["rate"], 1),
            "unit": "/s",
        },
        *(
            [
                {
                    "figure": f"{label}, other databases of the cluster: "
                    "oldest transaction holding an xid (max; share of samples over 250 ms)",
                    "value": f"{result['horizon']['max']:.2f} s; "
                    f"{result['horizon']['over'] * 100:.1f} %",
                }
            ]
            if result.get("horizon")
            else []
        ),
        {
            "figure": f"{label}, worker CPU per delivery",
            "unit": "µs",
            "value": None
            if result["cpu_per_delivery"] is None
            else round(result["cpu_per_delivery"]),
        },
    ]


def main() -> int:
    args = bench_arguments(__doc__).parse_args()
    redis_subs, redis_commits, redis_rate = (20, 100, 20.0) if args.quick else (200, 1000, 20.0)
    memory_subs, memory_commits, memory_rate = (100, 50, 10.0) if args.quick else (1000, 240, 2.0)

    workdir = Path(tempfile.mkdtemp(prefix="bench-subscriptions-"))
    setup_database(workdir)
    session, instance_ids = seed(51)
    rows: list[dict] = []
    with redis_url(workdir) as url:
        if url:
            pids: list[int] = []
            with (
                worker({"REDIS_URL": url}, workdir / "a.log", pids) as a,
                worker({"REDIS_URL": url}, workdir / "b.log", pids) as b,
            ):
                result = asyncio.run(
                    scenario(
                        [a, b], session, instance_ids, redis_subs, redis_commits, redis_rate, pids
                    )
                )
            rows += rows_for(
                "redis, 2 workers", result, 250.0, redis_subs, redis_commits, redis_rate
            )
        else:
            rows.append(
                {"figure": "redis, 2 workers", "value": None, "target": "no redis-server/REDIS_URL"}
            )
    pids = []
    with worker({}, workdir / "memory.log", pids) as port:
        result = asyncio.run(
            scenario([port], session, instance_ids, memory_subs, memory_commits, memory_rate, pids)
        )
    rows += rows_for("in-memory, 1 worker", result, 500.0, memory_subs, memory_commits, memory_rate)

    if args.json:
        print(json.dumps({"rows": rows}))
    else:
        print("workflowInstanceEvents: commit → client latency (workflow-wide stream)")
        for row in rows:
            met = "" if row.get("met") is None else ("  met" if row["met"] else "  NOT met")
            print(
                f"  {row['figure']:<70} {row['value']!s:>9} {row.get('unit', '')}  "
                f"{row.get('target', '')}{met}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
