"""Shared fan-out and commit → client latency and delivery of ``workflowInstanceEvents``.

* **fan-out**: executions per event for 1000 subscribers sharing one document in two
  visibility classes (the superuser, reviewers), in this process (target: 2, one per class);
* **redis**: 5000 subscribers spread over 2 uvicorn worker processes sharing a Redis channel
  layer, 1000 commits at 20/s made through HTTP mutations alternating between the workers
  (targets: p99 ≤ 500 ms, 100 % delivered);
* **in-memory**: 1000 subscribers on one uvicorn worker with the in-memory channel layer, 240
  commits at 2/s through that worker, i.e. 2000 deliveries a second (target: p99 ≤ 250 ms,
  100 % delivered). One worker runs on one core and each delivery costs it CPU (the "worker
  CPU per delivery" rows, target ≤ 50 µs): more subscribers × commits per second than one core
  serves need more workers.

Worker CPU per delivery is printed two ways. The *total* is all the workers' CPU over the commit
phase divided by the deliveries: it includes the commits themselves (their HTTP mutations, made
through the same workers), whatever the number of subscribers. Before the subscribers connect,
each scenario makes the same commit schedule against the same workers alone (printed: worker
CPU per commit); the *marginal* row is the commit phase's CPU minus as many commits alone,
divided by the deliveries: what delivering costs (the hub's reads and shared executions, the
frames, the sockets' pings), without the commits' own cost. ``--no-commits-alone`` skips it.

Every subscriber follows the workflow-wide stream, so every commit reaches every subscriber.
The subscribers run in client processes of their own (bench/_subscription_client.py; two for
Redis), on the same machine: their CPU is printed beside the workers'. Delivered counts only
subscribers that got every committed event exactly once, in commit order; each one that did not
is named on stderr. The workers count their fan-out (bench/_counting_asgi.py): executions per
event and worker (1 when all its subscribers share one result) and the share of deliveries the
hub wrote to sockets directly rather than through each subscription's task. The commit time is
the event's ``createdAt`` (set inside the transaction just before it commits), the arrival time
is taken when the message's bytes reached the client process. Latencies on a shared machine are
upper bounds.

Database: a scratch PostgreSQL database (its own name, always dropped) when ``DATABASE_URL`` is
PostgreSQL, else a temporary SQLite file. Redis: ``REDIS_URL`` if set, else a private
``redis-server`` on a free port.

    python bench/subscriptions.py [--quick] [--json]
    python bench/subscriptions.py --scenario redis --subscribers 1000 [--commits 1000]
        [--rate 20] [--workers 2] [--client-processes 2] [--max-lag 10] [--max-seconds S]

One scenario alone: ``--scenario fanout|redis|memory`` (``--subscribers``, ``--commits``,
``--rate`` and ``--workers`` replace its sizes). Every run is bounded: the clients report each
second how far their slowest subscriber is behind the commits; once that lag passes
``--max-lag`` seconds (or the commit phase passes ``--max-seconds``), no further commit is made,
the clients get a few seconds to take what is on its way, and the scenario prints a "stopped"
row saying where it fell behind instead of running on for minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

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
        "bench._counting_asgi:application",  # the demo's, counting its fan-out on SIGUSR1
        port,
        *("--ws", WS["implementation"], "--ws-max-queue", "1024"),
        *("--ws-per-message-deflate", "false"),
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
def redis_url(take_port=free_port):
    """REDIS_URL when given, else a throwaway redis-server on a port from ``take_port`` (None
    without redis-server)."""
    if GIVEN_REDIS_URL:
        yield GIVEN_REDIS_URL
        return
    binary = shutil.which("redis-server")
    if not binary:
        yield None
        return
    port = take_port()
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


#: uvicorn's WebSocket implementation in the workers (``--ws``; main() may change it): the one
#: README's Deployment recommends (uvicorn's default since 0.50).
WS = {"implementation": "websockets-sansio"}

#: Where the workers write their fan-out counters (bench/_counting_asgi.py), set by main().
COUNTERS: dict[str, Path] = {}


async def fan_out_counters(pids: list[int]) -> list[dict] | None:
    """Each worker's fan-out counters now (bench/_counting_asgi.py); None if one does not
    answer within 10 s."""
    path = COUNTERS.get("path")
    if path is None:
        return None
    files = [Path(f"{path}.{pid}") for pid in pids]
    before = [len(f.read_text().splitlines()) if f.exists() else 0 for f in files]
    for pid in pids:
        os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [f.read_text().splitlines() if f.exists() else [] for f in files]
        if all(len(got) > n for got, n in zip(lines, before, strict=True)):
            return [json.loads(got[-1]) for got in lines]
        await asyncio.sleep(0.05)
    return None


def cpu_seconds(pids: list[int], *, system_only: bool = False) -> float | None:
    """User + system CPU time of these processes so far (``system_only``: the time in the
    kernel alone; Linux /proc; None elsewhere)."""
    try:
        total = 0
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[12]) + (0 if system_only else int(fields[11]))
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


class Clients:
    """The client processes (bench/_subscription_client.py) sharing the subscribers: what they
    answer, in order, and the progress each reports every second (read as it comes)."""

    def __init__(self) -> None:
        self.processes: list = []
        self.answers: list[asyncio.Queue] = []
        self.progress: list[dict | None] = []
        self._readers: list[asyncio.Task] = []

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    async def _read(self, n: int) -> None:
        process = self.processes[n]
        while True:
            line = await process.stdout.readline()
            if not line:
                await self.answers[n].put(
                    RuntimeError(f"client process ended ({await process.wait()})")
                )
                return
            message = json.loads(line)
            if "progress" in message:
                self.progress[n] = message
            else:
                await self.answers[n].put(message)

    async def tell(self, message: dict, per_process: list[dict] | None = None) -> None:
        for n, process in enumerate(self.processes):
            line = {**message, **(per_process[n] if per_process else {})}
            process.stdin.write((json.dumps(line) + "\n").encode())
            await process.stdin.drain()

    async def hear(self, timeout: float) -> list[dict]:
        async def one(queue: asyncio.Queue) -> dict:
            answer = await queue.get()
            if isinstance(answer, BaseException):
                raise answer
            return answer

        return await asyncio.wait_for(asyncio.gather(*(one(q) for q in self.answers)), timeout)

    def slowest(self) -> int | None:
        """Events past the threshold received by the slowest subscriber of all (None until
        every process has reported)."""
        if any(p is None for p in self.progress):
            return None
        return min(p["slowest"] for p in self.progress)

    async def close(self) -> None:
        for process in self.processes:
            if process.returncode is None:
                process.kill()
            await process.wait()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


async def start_clients(
    config: dict,
    subscribers: int,
    processes: int,
    *,
    command: tuple[str, ...] = (sys.executable, str(ROOT / "bench" / "_subscription_client.py")),
    env: dict | None = None,
    stderr: Any = None,  # a file, or None: the bench's own stderr
) -> Clients:
    """``processes`` client processes (``command``) sharing ``subscribers``; each told its own
    share."""
    clients = Clients()
    for n in range(processes):
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            limit=1 << 26,  # the final answer carries a histogram in one line
        )
        clients.processes.append(process)
        clients.answers.append(asyncio.Queue())
        clients.progress.append(None)
        clients._readers.append(asyncio.create_task(clients._read(n)))
    shares = [
        {"subscribers": subscribers // processes + (n < subscribers % processes)}
        for n in range(processes)
    ]
    await clients.tell(config, shares)
    return clients


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


#: Seconds the clients may take to open and subscribe their sockets, and to receive the
#: warm-up event; seconds they wait for what is on its way after a stopped commit phase.
OPEN_SECONDS = 300.0
WARM_SECONDS = 150.0
DRAIN_SECONDS = 30.0
STOPPED_DRAIN_SECONDS = 5.0
#: Seconds (beyond ``--max-lag``) the commits made may take to be answered once the last is made.
ANSWER_SECONDS = 30.0


async def scenario(
    ports: list[int],
    session: str,
    instance_ids: list[str],
    subscribers: int,
    commits: int,
    rate: float,
    pids: list[int] | None = None,
    client_processes: int = 1,
    max_lag: float = 10.0,
    max_seconds: float | None = None,
    commits_alone: bool = True,
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

    def on_hold(ids: list[str]) -> set[str]:
        """Which of these instances are on hold now: a stopped scenario before this one leaves
        some held, and holding them again would fail (no event, a failed commit)."""
        from django.db import connection
        from strawberry.relay import from_base64

        from django_steps.models import WorkflowInstance

        try:
            by_pk = {int(from_base64(i)[1]): i for i in ids}
            held = WorkflowInstance.objects.filter(pk__in=by_pk, state="ON_HOLD")
            return {by_pk[pk] for pk in held.values_list("pk", flat=True)}
        finally:
            connection.close()

    def committed_after(threshold: int) -> list[int]:
        """The cursors committed after ``threshold``, in commit order: what each subscriber
        must receive, exactly and in this order."""
        from django.db import connection

        try:
            events = WorkflowEvent.objects.order_by("txid", "position")
            return [e.cursor for e in events.only("txid", "position") if e.cursor > threshold]
        finally:
            connection.close()

    warm_up, instance_ids = instance_ids[-1], instance_ids[:-1]
    # The same commit schedule against the same workers before any subscriber connects: what
    # the commits cost on their own (their HTTP mutations), so the CPU that delivery adds can be
    # told apart from it (the "marginal" row).
    alone = None
    if commits_alone and pids:
        # A few commits first, not measured: a fresh worker's first requests pay its one-time
        # costs (imports, caches, the pool's connections), which the commit phase does not.
        held = await asyncio.to_thread(on_hold, instance_ids)
        await commit_at_rate(ports, session, instance_ids, 5, rate, None, held=held)
        held = await asyncio.to_thread(on_hold, instance_ids)
        cpu_before = [cpu_seconds([pid]) for pid in pids]
        phase = await commit_at_rate(
            ports, session, instance_ids, commits, rate, None, max_lag, max_seconds, held
        )
        cpu_after = [cpu_seconds([pid]) for pid in pids]
        if None not in cpu_before and None not in cpu_after and phase["made"]:
            alone = {
                "cpu": sum(cpu_after) - sum(cpu_before),
                "made": phase["made"],
                "failures": phase["failures"],
            }
    # Every subscriber resumes from the same cursor, so one that becomes active late still gets
    # every event (from the history). One warm-up commit, received by every subscriber, proves
    # they are all live before the measured commits start; it is not counted.
    after = str(await asyncio.to_thread(newest))
    config = {
        "ports": ports,
        "session": session,
        "after": after,
        "query": SUBSCRIBE,
        "variables": {"w": "Bench"},
    }
    load_before = os.getloadavg()[0]
    clients = await start_clients(config, subscribers, client_processes)
    try:
        opened = await clients.hear(OPEN_SECONDS)  # every socket subscribed (or failed)
        failed = sum(o["failed"] for o in opened)
        if failed:
            print(f"{failed} of {subscribers} sockets could not subscribe", file=sys.stderr)
        # Hold the warm-up instance, or resume it if an earlier scenario left it on hold.
        answer = await asyncio.to_thread(graphql, ports[0], HOLD, session, id=warm_up)
        if (
            answer.get("errors")
            or (answer.get("data") or {}).get("setWorkflowOnHold", {}).get("__typename")
            != "WorkflowInstance"
        ):
            await asyncio.to_thread(graphql, ports[0], RESUME, session, id=warm_up)
        warm = await clients.hear(WARM_SECONDS)
        if sum(w["warm"] for w in warm) < subscribers:
            print(
                f"{subscribers - sum(w['warm'] for w in warm)} subscribers never received the "
                "warm-up event",
                file=sys.stderr,
            )
        threshold = await asyncio.to_thread(newest)  # the warm-up event's position
        await clients.tell({"threshold": threshold})
        counters_before = await fan_out_counters(pids or [])
        cpu_before = [cpu_seconds([pid]) for pid in pids or []]
        system_before = cpu_seconds(pids or [], system_only=True)
        held = await asyncio.to_thread(on_hold, instance_ids)
        commit_phase = await commit_at_rate(
            ports, session, instance_ids, commits, rate, clients, max_lag, max_seconds, held
        )
        expected = await asyncio.to_thread(committed_after, threshold)
        wait = STOPPED_DRAIN_SECONDS if commit_phase["stopped"] else DRAIN_SECONDS
        await clients.tell({"expect": expected, "wait": wait})
        results = await clients.hear(wait + 120)
        cpu_after = [cpu_seconds([pid]) for pid in pids or []]
        system_after = cpu_seconds(pids or [], system_only=True)
        counters_after = await fan_out_counters(pids or [])
    finally:
        await clients.close()
    histogram: dict[int, int] = {}
    for result in results:
        for tenths, count in result["histogram"].items():
            histogram[int(tenths)] = histogram.get(int(tenths), 0) + count
    delivered = sum(r["delivered"] for r in results)
    # Against every planned commit: a run stopped early delivered less than it was asked to.
    expected_total = max(len(expected), commits) * subscribers
    worker_cpu = (
        [after - before for before, after in zip(cpu_before, cpu_after, strict=True)]
        if None not in cpu_before and None not in cpu_after
        else None
    )
    client_cpu = sum(r["cpu"] for r in results)
    fan_out = None
    if counters_before and counters_after and expected:
        moved = {
            name: sum(
                a[name] - b[name] for b, a in zip(counters_before, counters_after, strict=True)
            )
            for name in counters_after[0]
        }
        sent = moved["executions"] + moved["shared"]
        fan_out = {
            # per event and worker: 1 when every subscriber of a worker shares one result
            "executions": moved["executions"] / (len(expected) * len(counters_after)),
            "direct": moved["direct"] / sent if sent else 0.0,
            # Thread CPU of the hub's direct writes per delivery they made (µs).
            "hub_cpu": moved["hub_cpu"] / moved["direct"] * 1e6 if moved["direct"] else None,
            # The event loop threads' CPU per delivery (µs): the rest runs the ORM in threads.
            "loop_cpu": moved["loop_cpu"] / delivered * 1e6 if delivered else None,
        }
    return {
        "fan_out": fan_out,
        "p50": histogram_percentile(histogram, 0.50),
        "p99": histogram_percentile(histogram, 0.99),
        "max": max(histogram) / 10 if histogram else float("nan"),
        "delivered": delivered / expected_total if expected_total else 0.0,
        "in_order": not any(r["out_of_order"] or r["missed"] for r in results),
        "failures": commit_phase["failures"],
        "rate": commit_phase["rate"],
        "made": commit_phase["made"],
        "stopped": commit_phase["stopped"],
        "closed": sum(r["closed"] for r in results),
        "horizon": commit_phase["horizon"],
        # Worker CPU over the commit phase (HTTP commits included) per event delivered.
        "cpu_per_delivery": (
            sum(worker_cpu) / delivered * 1e6 if worker_cpu is not None and delivered else None
        ),
        # Of the workers' CPU over the commit phase, the time in the kernel (the sockets' sends,
        # on loopback the receiving side's TCP work too) per event delivered.
        "system_per_delivery": (
            (system_after - system_before) / delivered * 1e6
            if system_before is not None and system_after is not None and delivered
            else None
        ),
        # The same commits without subscribers: their own CPU per commit, and what delivering
        # them added (the commit phase's CPU minus as many commits alone) per event delivered.
        "alone": alone,
        "cpu_per_commit_alone": alone["cpu"] / alone["made"] * 1e6 if alone else None,
        "cpu_marginal": (
            (sum(worker_cpu) - alone["cpu"] / alone["made"] * commit_phase["made"])
            / delivered
            * 1e6
            if alone and worker_cpu is not None and delivered
            else None
        ),
        "client_cpu_per_delivery": (
            client_cpu / delivered * 1e6 if client_cpu is not None and delivered else None
        ),
        "worker_cpu": worker_cpu,
        "client_cpu": client_cpu,
        "seconds": time.monotonic() - commit_phase["started"],
        "load": (load_before, os.getloadavg()[0]),
    }


async def commit_at_rate(
    ports: list[int],
    session: str,
    instance_ids: list[str],
    commits: int,
    rate: float,
    clients: Clients | None = None,
    max_lag: float = 10.0,
    max_seconds: float | None = None,
    held: set[str] | None = None,
) -> dict:
    """``commits`` changes at ``rate`` a second through the workers' HTTP mutations.

    Bounded: before each commit, the lag of the slowest subscriber (the time since the first
    commit it has not received yet was made, from the clients' reports) is checked against
    ``max_lag``, and the time spent against ``max_seconds``; past either, no further commit is
    made and ``stopped`` says why. Returns ``started`` (monotonic), ``failures``, ``rate``
    achieved, ``made`` (commits made), ``stopped`` (None or the reason) and the horizon
    sampler's figures."""
    horizon = HorizonSampler()
    horizon.start()
    # Commits are fired on schedule, not one after the other, so a slow server cannot lower the
    # rate; each instance alternates hold/resume (from its state now: ``held``, those on hold),
    # and its previous change is awaited first.
    held = set(held or ())
    started = time.monotonic()
    failures = 0
    previous: dict[str, asyncio.Task] = {}
    issued: list[float] = []  # when each commit was made
    stopped: str | None = None

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

    def behind(now: float) -> str | None:
        if max_seconds is not None and now - started > max_seconds:
            return f"the commit phase passed {max_seconds:g} s"
        slowest = clients.slowest() if clients is not None else None
        if slowest is None or slowest >= len(issued):
            return None
        lag = now - issued[slowest]
        if lag > max_lag:
            return (
                f"the slowest subscriber was {lag:.1f} s behind (limit {max_lag:g} s): it had "
                f"{slowest} of the {len(issued)} events committed"
            )
        return None

    pending = []
    for n in range(commits):
        while True:  # wait for the commit's time, watching the lag meanwhile
            now = time.monotonic()
            stopped = behind(now)
            delay = started + n / rate - now
            if stopped or delay <= 0:
                break
            await asyncio.sleep(min(delay, 0.5))
        if stopped:
            break
        instance = instance_ids[n % len(instance_ids)]
        hold = instance not in held
        held ^= {instance}
        issued.append(time.monotonic())
        task = asyncio.create_task(commit(n, instance, hold, previous.get(instance)))
        previous[instance] = task
        pending.append(task)
    # The commits made may wait for saturated workers (each HTTP call up to 30 s, an instance's
    # after its previous one): bounded too.
    try:
        async with asyncio.timeout(max_lag + ANSWER_SECONDS):
            await asyncio.gather(*pending)
    except TimeoutError:
        unanswered = sum(not task.done() or task.cancelled() for task in pending)
        stopped = stopped or (
            f"{unanswered} commits still unanswered {max_lag + ANSWER_SECONDS:g} s after the "
            "last one was made"
        )
    elapsed = time.monotonic() - started
    if stopped:
        made = f"{len(issued)} of {commits} commits made"
        stopped = f"stopped after {elapsed:.0f} s, {made}: {stopped}"
        print(stopped, file=sys.stderr)
    return {
        "started": started,
        "failures": failures,
        "rate": len(issued) / elapsed if elapsed else 0.0,
        "made": len(issued),
        "stopped": stopped,
        "horizon": horizon.stop(),
    }


def per_delivery(figure: str, microseconds: float | None) -> dict:
    """A row of CPU per delivery in µs (None where /proc could not be read)."""
    value = None if microseconds is None else round(microseconds)
    return {"figure": figure, "unit": "µs", "value": value}


def stopped_rows(label: str, stopped: object, value: object, *, covered: str, target: str):
    """A row saying the run stopped (fell behind) and what the rows below cover, if it did."""
    if not stopped:
        return []
    figure = f"{label}, stopped (fell behind): the rows below cover the {covered}"
    return [{"figure": figure, "value": value, "target": target, "met": False}]


def latency_rows(
    label: str,
    result: dict,
    p99_target: float,
    *,
    stopped: object,
    complete: bool,
    since: str = "commit",
    order: str = "in commit order",
) -> list[dict]:
    """p50 and p99 from ``since`` to the client, and the delivered share: never 100 when one
    event was missed, repeated or out of order (named on stderr), nor when the run stopped
    before every event was made."""
    return [
        {"figure": f"{label}, p50 {since}→client", "value": round(result["p50"], 1), "unit": "ms"},
        {
            "figure": f"{label}, p99 {since}→client",
            "value": round(result["p99"], 1),
            "unit": "ms",
            "floor": p99_target,
            "ratio": round(result["p99"] / p99_target, 2),
            "target": f"≤ {p99_target:.0f} ms",
            "met": not stopped and result["p99"] <= p99_target,
        },
        {
            "figure": f"{label}, delivered (every event to every subscriber, {order})",
            "value": 100.0 if complete else min(round(result["delivered"] * 100, 3), 99.999),
            "unit": "%",
            "floor": 100.0,
            "ratio": round(result["delivered"], 5),
            "target": "100 %",
            "met": complete,
        },
    ]


def measured(figure: str, microseconds: float | None) -> list[dict]:
    """:func:`per_delivery`'s row where the run measured it, else none."""
    return [] if microseconds is None else [per_delivery(figure, microseconds)]


def rows_for(
    name: str, result: dict, p99_target: float, subscribers: int, commits: int, rate: float
) -> list[dict]:
    label = f"{name}: {subscribers} subscribers, {commits} commits at {rate:g}/s"
    stopped = result.get("stopped")
    complete = (
        not stopped
        and result["delivered"] >= 1.0
        and result["in_order"]
        and result["failures"] == 0
    )
    worker_cpu = result["worker_cpu"]
    return [
        *stopped_rows(label, stopped, stopped, covered="commits made", target="every commit made"),
        *latency_rows(label, result, p99_target, stopped=stopped, complete=complete),
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
            **per_delivery(
                f"{label}, worker CPU per delivery (total: all the worker's CPU over the commit "
                "phase, the commits' own HTTP mutations included, / deliveries)",
                result["cpu_per_delivery"],
            ),
            "target": "≤ 50 µs",
            "met": None if result["cpu_per_delivery"] is None else result["cpu_per_delivery"] <= 50,
        },
        *(
            [
                {
                    **per_delivery(
                        f"{label}, worker CPU per delivery, marginal: worker CPU with subscribers "
                        "minus the same commits without, / deliveries",
                        result["cpu_marginal"],
                    ),
                    "target": "≤ 50 µs",
                    "met": result["cpu_marginal"] <= 50,
                },
                {
                    "figure": f"{label}, the same commits without subscribers (before they "
                    "connect): worker CPU per commit; failed commits",
                    "value": f"{result['cpu_per_commit_alone'] / 1000:.2f} ms; "
                    f"{result['alone']['failures']}",
                },
            ]
            if result.get("cpu_marginal") is not None
            else []
        ),
        *measured(
            f"{label}, of the total, the workers' time in the kernel (system CPU: the "
            "sockets' sends, on loopback the receiving TCP's work too)",
            result.get("system_per_delivery"),
        ),
        *(
            [
                {
                    "figure": f"{label}, in the workers: executions per event and worker (one "
                    "visibility class); share of deliveries written by the hub directly",
                    "value": f"{result['fan_out']['executions']:.2f}; "
                    f"{result['fan_out']['direct'] * 100:.0f} %",
                }
            ]
            if result.get("fan_out")
            else []
        ),
        *measured(
            f"{label}, of which the hub's direct writes, per delivery they made (thread "
            "CPU: the per-socket part, without each commit's own cost)",
            (result.get("fan_out") or {}).get("hub_cpu"),
        ),
        *measured(
            f"{label}, of the total, the workers' event loop threads (the rest: the "
            "threads running the ORM, the commits' mutations and the hub's reads)",
            (result.get("fan_out") or {}).get("loop_cpu"),
        ),
        per_delivery(
            f"{label}, client CPU per delivery (the subscribers' processes)",
            result["client_cpu_per_delivery"],
        ),
        {
            # The clients run in processes of their own on the same cores as the workers: their
            # CPU is CPU the workers did not get.
            "figure": f"{label}, CPU of the client processes / each worker's (same machine)",
            "value": None
            if result["client_cpu"] is None or worker_cpu is None
            else f"{result['client_cpu']:.1f} s / "
            + " + ".join(f"{w:.1f}" for w in worker_cpu)
            + f" s over {result['seconds']:.0f} s, load average "
            f"{result['load'][0]:.1f} → {result['load'][1]:.1f}",
        },
    ]


SCENARIOS = ("fanout", "redis", "memory")


def arguments():
    parser = bench_arguments(__doc__)
    parser.add_argument(
        "--scenario", choices=("all", *SCENARIOS), default="all", help="run one scenario alone"
    )
    parser.add_argument("--subscribers", type=int, help="the scenario's subscribers")
    parser.add_argument("--commits", type=int, help="the scenario's commits (or fan-out events)")
    parser.add_argument("--rate", type=float, help="commits a second")
    parser.add_argument("--workers", type=int, default=2, help="Redis worker processes")
    parser.add_argument("--client-processes", type=int, help="subscriber processes")
    parser.add_argument(
        "--ws",
        choices=("websockets", "websockets-sansio"),
        default="websockets-sansio",
        help="uvicorn's WebSocket implementation in the workers (websockets: the legacy one)",
    )
    parser.add_argument(
        "--max-lag",
        type=float,
        default=10.0,
        help="stop committing once the slowest subscriber is this many seconds behind",
    )
    parser.add_argument("--max-seconds", type=float, help="stop committing after this many seconds")
    parser.add_argument(
        "--no-commits-alone",
        action="store_true",
        help="skip the commits made before the subscribers connect (no marginal CPU row)",
    )
    args = parser.parse_args()
    if args.scenario == "all" and any(
        v is not None for v in (args.subscribers, args.commits, args.rate)
    ):
        parser.error("--subscribers, --commits and --rate need one --scenario")
    return args


def main() -> int:
    args = arguments()
    sizes = {
        "redis": (20, 100, 20.0) if args.quick else (5000, 1000, 20.0),
        "memory": (100, 50, 10.0) if args.quick else (1000, 240, 2.0),
        "fanout": (100, 3, None) if args.quick else (1000, 5, None),
    }
    chosen = SCENARIOS if args.scenario == "all" else (args.scenario,)
    if args.scenario != "all":
        subs, commits, rate = sizes[args.scenario]
        sizes[args.scenario] = (
            args.subscribers or subs,
            args.commits or commits,
            args.rate or rate,
        )

    WS["implementation"] = args.ws
    workdir = Path(tempfile.mkdtemp(prefix="bench-subscriptions-"))
    COUNTERS["path"] = workdir / "fan-out-counters"
    os.environ["BENCH_FANOUT_STATS"] = str(COUNTERS["path"])  # the workers inherit it
    setup_database(workdir)
    session, instance_ids = seed(52)
    fan_out_instance, instance_ids = instance_ids[-1], instance_ids[:-1]
    rows: list[dict] = []
    if "fanout" in chosen:
        fan_subs, fan_events, _ = sizes["fanout"]
        shared = executions_per_event(SUBSCRIBE, fan_subs, fan_events, fan_out_instance)
        rows.append(
            {
                "figure": f"fan-out: executions per event, {fan_subs} subscribers sharing one "
                f"document in {shared['classes']} visibility classes",
                "value": round(shared["per_event"], 2),
                "unit": "executions",
                "target": f"= {shared['classes']} (the distinct visibility classes)",
                "met": shared["per_event"] == shared["classes"],
            }
        )
    bounds = {
        "max_lag": args.max_lag,
        "max_seconds": args.max_seconds,
        "commits_alone": not args.no_commits_alone,
    }
    if "redis" in chosen:
        redis_subs, redis_commits, redis_rate = sizes["redis"]
        name = f"redis, {args.workers} workers"
        with redis_url() as url:
            if url:
                pids: list[int] = []
                with contextlib.ExitStack() as stack:
                    ports = [
                        stack.enter_context(
                            worker({"REDIS_URL": url}, workdir / f"redis-{n}.log", pids)
                        )
                        for n in range(args.workers)
                    ]
                    result = asyncio.run(
                        scenario(
                            ports,
                            session,
                            instance_ids,
                            redis_subs,
                            redis_commits,
                            redis_rate,
                            pids,
                            client_processes=args.client_processes or 2,
                            **bounds,
                        )
                    )
                rows += rows_for(name, result, 500.0, redis_subs, redis_commits, redis_rate)
            else:
                rows.append({"figure": name, "value": None, "target": "no redis-server/REDIS_URL"})
    if "memory" in chosen:
        memory_subs, memory_commits, memory_rate = sizes["memory"]
        pids = []
        with worker({}, workdir / "memory.log", pids) as port:
            result = asyncio.run(
                scenario(
                    [port],
                    session,
                    instance_ids,
                    memory_subs,
                    memory_commits,
                    memory_rate,
                    pids,
                    client_processes=args.client_processes or 1,
                    **bounds,
                )
            )
        rows += rows_for(
            "in-memory, 1 worker", result, 250.0, memory_subs, memory_commits, memory_rate
        )
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
