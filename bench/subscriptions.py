"""Shared fan-out and commit → client latency and delivery of ``workflowInstanceEvents``.

* **fan-out**: executions per event for 1000 subscribers sharing one document in two
  visibility classes (the superuser, reviewers), in this process (target: 2, one per class);
* **redis**: 5000 subscribers spread over 2 uvicorn worker processes sharing a Redis channel
  layer, 1000 commits at 20/s made through HTTP mutations alternating between the workers
  (targets: p99 ≤ 500 ms, 100 % delivered);
* **in-memory**: 1000 subscribers on one uvicorn worker with the in-memory channel layer, 240
  commits at 2/s through that worker, i.e. 2000 deliveries a second (target: p99 ≤ 250 ms,
  100 % delivered). One worker runs on one core and each delivery costs it CPU (the "worker
  CPU per delivery" row, target ≤ 50 µs): more subscribers × commits per second than one core
  serves need more workers.

Every subscriber follows the workflow-wide stream, so every commit reaches every subscriber.
The subscribers run in client processes of their own (bench/_subscription_client.py; two for
Redis), on the same machine: their CPU is printed beside the workers'. Delivered counts only
subscribers that got every committed event exactly once, in commit order; each one that did not
is named on stderr. The commit time is the event's ``createdAt`` (set inside the transaction
just before it commits), the arrival time is taken when the client has parsed the message.
Latencies on a shared machine are upper bounds.

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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import bench_arguments  # noqa: E402
from bench._fanout import executions_per_event  # noqa: E402
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
    # The fan-out row opens its sockets in this process, for two users: no per-user limit.
    os.environ["GRAPHQL_WS_MAX_CONNECTIONS_PER_USER"] = "0"
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


async def clients(config: dict, subscribers: int, processes: int) -> list:
    """``processes`` client processes (bench/_subscription_client.py) sharing ``subscribers``."""
    started = []
    for n in range(processes):
        share = subscribers // processes + (n < subscribers % processes)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "bench" / "_subscription_client.py"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            limit=1 << 26,  # one line of latencies per client
        )
        await tell([process], {**config, "subscribers": share})
        started.append(process)
    return started


async def tell(processes: list, message: dict) -> None:
    for process in processes:
        process.stdin.write((json.dumps(message) + "\n").encode())
        await process.stdin.drain()


async def hear(processes: list, timeout: float = 600) -> list[dict]:
    async def one(process) -> dict:
        line = await process.stdout.readline()
        if not line:
            raise RuntimeError(f"client process ended ({await process.wait()})")
        return json.loads(line)

    return await asyncio.wait_for(asyncio.gather(*(one(p) for p in processes)), timeout)


def histogram_percentile(histogram: dict[int, int], p: float) -> float:
    """The ``p`` quantile (ms) of latencies counted in tenths of a millisecond."""
    total = sum(histogram.values())
    if not total:
        return float("nan")
    rank, seen = min(total - 1, int(p * total)), 0
    for tenths in sorted(histogram):
        seen += histogram[tenths]
        if seen > rank:
            return tenths / 10
    return max(histogram) / 10


async def scenario(
    ports: list[int],
    session: str,
    instance_ids: list[str],
    subscribers: int,
    commits: int,
    rate: float,
    pids: list[int] | None = None,
    client_processes: int = 1,
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

    def committed_after(threshold: int) -> list[int]:
        """The cursors committed after ``threshold``, in commit order: what each subscriber
        must receive, exactly and in this order."""
        from django.db import connection

        try:
            events = WorkflowEvent.objects.order_by("txid", "position")
            return [e.cursor for e in events.only("txid", "position") if e.cursor > threshold]
        finally:
            connection.close()

    # Every subscriber resumes from the same cursor, so one that becomes active late still gets
    # every event (from the history). One warm-up commit, received by every subscriber, proves
    # they are all live before the measured commits start; it is not counted.
    warm_up, instance_ids = instance_ids[-1], instance_ids[:-1]
    after = str(await asyncio.to_thread(newest))
    config = {
        "ports": ports,
        "session": session,
        "after": after,
        "query": SUBSCRIBE,
        "variables": {"w": "Bench"},
    }
    processes = await clients(config, subscribers, client_processes)
    client_pids = [p.pid for p in processes]
    try:
        await hear(processes)  # every socket subscribed (or failed)
        # Hold the warm-up instance, or resume it if an earlier scenario left it on hold.
        answer = await asyncio.to_thread(graphql, ports[0], HOLD, session, id=warm_up)
        if (
            answer.get("errors")
            or (answer.get("data") or {}).get("setWorkflowOnHold", {}).get("__typename")
            != "WorkflowInstance"
        ):
            await asyncio.to_thread(graphql, ports[0], RESUME, session, id=warm_up)
        warm = await hear(processes)
        if sum(w["warm"] for w in warm) < subscribers:
            print(
                f"{subscribers - sum(w['warm'] for w in warm)} subscribers never received the "
                "warm-up event",
                file=sys.stderr,
            )
        threshold = await asyncio.to_thread(newest)  # the warm-up event's position
        await tell(processes, {"threshold": threshold})
        cpu_before = cpu_seconds(pids or [])
        client_before = cpu_seconds(client_pids)
        started, failures, achieved_rate, held = await commit_at_rate(
            ports, session, instance_ids, commits, rate
        )
        expected = await asyncio.to_thread(committed_after, threshold)
        await tell(processes, {"expect": expected, "wait": 30})
        results = await hear(processes)
        cpu_after = cpu_seconds(pids or [])
        client_after = cpu_seconds(client_pids)
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
            await process.wait()
    histogram: dict[int, int] = {}
    for result in results:
        for tenths, count in result["histogram"].items():
            histogram[int(tenths)] = histogram.get(int(tenths), 0) + count
    delivered = sum(r["delivered"] for r in results)
    expected_total = len(expected) * subscribers
    return {
        "p50": histogram_percentile(histogram, 0.50),
        "p99": histogram_percentile(histogram, 0.99),
        "max": max(histogram) / 10 if histogram else float("nan"),
        "delivered": delivered / expected_total if expected_total else 0.0,
        "in_order": not any(r["out_of_order"] or r["missed"] for r in results),
        "failures": failures,
        "rate": achieved_rate,
        "closed": sum(r["closed"] for r in results),
        "horizon": held,
        # Worker CPU over the commit phase (HTTP commits included) per event delivered.
        "cpu_per_delivery": (
            (cpu_after - cpu_before) / delivered * 1e6
            if cpu_before is not None and cpu_after is not None and delivered
            else None
        ),
        "worker_cpu": None if cpu_before is None else cpu_after - cpu_before,
        "client_cpu": None if client_before is None else client_after - client_before,
        "seconds": time.monotonic() - started,
    }


async def commit_at_rate(
    ports: list[int], session: str, instance_ids: list[str], commits: int, rate: float
) -> tuple[float, int, float, dict | None]:
    """``commits`` changes at ``rate`` a second through the workers' HTTP mutations: (start
    time, failures, rate achieved, the horizon sampler's figures)."""
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
    return started, failures, achieved_rate, horizon.stop()


def rows_for(
    name: str, result: dict, p99_target: float, subscribers: int, commits: int, rate: float
) -> list[dict]:
    label = f"{name}: {subscribers} subscribers, {commits} commits at {rate:g}/s"
    complete = result["delivered"] >= 1.0 and result["in_order"] and result["failures"] == 0
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
            "figure": f"{label}, delivered (every event to every subscriber, in commit order)",
            # Never 100 when one event was missed, repeated or out of order (named on stderr).
            "value": 100.0 if complete else min(round(result["delivered"] * 100, 3), 99.999),
            "unit": "%",
            "floor": 100.0,
            "ratio": round(result["delivered"], 5),
            "target": "100 %",
            "met": complete,
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
            "target": "≤ 50 µs",
            "met": None if result["cpu_per_delivery"] is None else result["cpu_per_delivery"] <= 50,
        },
        {
            # The clients run in processes of their own on the same cores as the workers: their
            # CPU is CPU the workers did not get.
            "figure": f"{label}, CPU of the client processes / the workers' (same machine)",
            "value": None
            if result["client_cpu"] is None or result["worker_cpu"] is None
            else f"{result['client_cpu']:.1f} s / {result['worker_cpu']:.1f} s "
            f"over {result['seconds']:.0f} s, load average {os.getloadavg()[0]:.1f}",
        },
    ]


def main() -> int:
    args = bench_arguments(__doc__).parse_args()
    redis_subs, redis_commits, redis_rate = (20, 100, 20.0) if args.quick else (5000, 1000, 20.0)
    memory_subs, memory_commits, memory_rate = (100, 50, 10.0) if args.quick else (1000, 240, 2.0)
    fan_subs, fan_events = (100, 3) if args.quick else (1000, 5)

    workdir = Path(tempfile.mkdtemp(prefix="bench-subscriptions-"))
    setup_database(workdir)
    session, instance_ids = seed(52)
    fan_out_instance, instance_ids = instance_ids[-1], instance_ids[:-1]
    shared = executions_per_event(SUBSCRIBE, fan_subs, fan_events, fan_out_instance)
    rows: list[dict] = [
        {
            "figure": f"fan-out: executions per event, {fan_subs} subscribers sharing one "
            f"document in {shared['classes']} visibility classes",
            "value": round(shared["per_event"], 2),
            "unit": "executions",
            "target": f"= {shared['classes']} (the distinct visibility classes)",
            "met": shared["per_event"] == shared["classes"],
        }
    ]
    with redis_url(workdir) as url:
        if url:
            pids: list[int] = []
            with (
                worker({"REDIS_URL": url}, workdir / "a.log", pids) as a,
                worker({"REDIS_URL": url}, workdir / "b.log", pids) as b,
            ):
                result = asyncio.run(
                    scenario(
                        [a, b],
                        session,
                        instance_ids,
                        redis_subs,
                        redis_commits,
                        redis_rate,
                        pids,
                        client_processes=2,
                    )
                )
            rows += rows_for(
                "redis, 2 workers", result, 500.0, redis_subs, redis_commits, redis_rate
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
    rows += rows_for("in-memory, 1 worker", result, 250.0, memory_subs, memory_commits, memory_rate)
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
