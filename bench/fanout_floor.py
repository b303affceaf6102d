"""The machine's floor for ``bench/subscriptions.py``'s Redis scenario: the same fan-out shape
with no Django, no GraphQL and no Channels, to say what these cores can deliver at all.

* **server**: 2 uvicorn worker processes (the same ``--ws`` implementation and options as
  ``bench/subscriptions.py``'s workers, uvloop), each serving a bare ASGI app
  (bench/_fanout_floor_app.py) that sends every message of a Redis channel, one pre-encoded
  ``next`` message of the same shape as ours, to every subscribed socket: as one prebuilt frame
  handed to each transport (``--send write``, what our direct fan-out does below uvicorn) or
  through the ASGI ``send`` (``--send asgi``);
* **clients**: separate processes holding the subscribers, split over the 2 workers. ``python``
  is the bench's own client (bench/_subscription_client.py, unchanged: it checks that every
  subscriber gets every event exactly once, in order); ``node`` is the same protocol and the same
  checks in Node.js with the ``ws`` package (bench/_fanout_floor_client.cjs), the cheapest client
  at hand, to show whether the client or the server is the limit. It is used from
  tests/e2e/node_modules or client-typescript/node_modules when there (no download); without it
  its rows say so;
* **events**: this process publishes ``--events`` messages at ``--rate`` a second on Redis, each
  stamped with its publish time; latency is publish → arrival in the client process.

For every subscriber count (``--subscribers``, default 1000, 2500 and 5000) and client, it prints
the events/s achieved, the deliveries/s sustained, p50/p99 publish → client, the share delivered,
the CPU per delivery of the workers and of the clients (from /proc, from the first publish to the
last arrival), how much of it the kernel took (system time), the machine's software-interrupt
time per delivery (loopback TCP's receive side may run there, charged to no process; the whole
machine's, so an upper bound on a shared one) and the cores the target rate would take at those
costs. On a loaded machine the rates say what share of the cores the run got; the CPU per
delivery is the figure to compare. A run is bounded as ``bench/subscriptions.py``'s is: once the
slowest subscriber is ``--max-lag`` seconds behind, no further event is published and a
"stopped" row says where it fell behind.

``--coalesce-ms MS`` (with ``--send write``): each worker writes the frames of the events of the
last MS milliseconds to each socket in one write, trading up to MS of latency for fewer writes
(the kernel's cost is per write rather than per byte).

Redis: ``REDIS_URL`` if set (a channel of this run's own), else a private ``redis-server``.

    python bench/fanout_floor.py [--quick] [--json] [--subscribers 1000,2500,5000]
        [--events 600] [--rate 20] [--clients python,node] [--send write|asgi]
        [--coalesce-ms MS] [--client-processes 2] [--max-lag 10] [--ports-from PORT]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import bench_arguments  # noqa: E402
from bench.subscriptions import (  # noqa: E402
    SUBSCRIBE,
    WS,
    Clients,
    histogram_percentile,
    latency_rows,
    redis_url,
    stopped_rows,
)
from bench.subscriptions import start_clients as start_bench_clients  # noqa: E402
from tests.servers import asgi_command, free_port, stop, wait_http  # noqa: E402

#: The cursor of the floor's events: as many digits as PostgreSQL's (txid * 2**63 + position),
#: so the message has the size of ours.
CURSOR_BASE = 1000 * 2**63
OPEN_SECONDS = 300.0
WARM_SECONDS = 150.0
DRAIN_SECONDS = 30.0
#: Seconds without a delivery after which the drain ends (a starved client reports late).
IDLE_SECONDS = 10.0
P99_TARGET = 500.0


def ws_module() -> Path | None:
    """The ``ws`` package of a node_modules already installed in the project, if any."""
    if not shutil.which("node"):
        return None
    for where in ("tests/e2e/node_modules/ws", "client-typescript/node_modules/ws"):
        if (ROOT / where / "package.json").exists():
            return ROOT / where
    return None


class Ports:
    """Free ports: from ``first`` on when given (a range of one's own), else any."""

    def __init__(self, first: int | None) -> None:
        self.next = first

    def take(self) -> int:
        if self.next is None:
            return free_port()
        while True:
            port, self.next = self.next, self.next + 1
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


@contextlib.contextmanager
def workers(count: int, env_extra: dict, ports: Ports, logs: Path):
    """``count`` uvicorn workers serving the floor app; yields (ports, pids)."""
    processes: list[subprocess.Popen] = []
    numbers: list[int] = []
    env = {**os.environ, **env_extra, "PYTHONPATH": str(ROOT)}
    try:
        for n in range(count):
            port = ports.take()
            cmd = asgi_command(
                "uvicorn",
                "bench._fanout_floor_app:app",
                port,
                *("--ws", WS["implementation"], "--ws-max-queue", "1024"),
                *("--ws-per-message-deflate", "false"),
            )
            log = logs / f"worker-{n}.log"
            with open(log, "ab") as out:
                process = subprocess.Popen(
                    cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
                )
            processes.append(process)
            wait_http(port, process, log)
            numbers.append(port)
        yield numbers, [p.pid for p in processes]
    finally:
        for process in processes:
            stop(process)


async def start_clients(
    kind: str, config: dict, subscribers: int, processes: int, errors
) -> Clients:
    """``processes`` client processes of ``kind`` sharing ``subscribers``; what they say on
    stderr (one line per subscriber that missed an event) goes to the file ``errors``."""
    if kind != "node":
        return await start_bench_clients(config, subscribers, processes, stderr=errors)
    return await start_bench_clients(
        config,
        subscribers,
        processes,
        command=("node", str(ROOT / "bench" / "_fanout_floor_client.cjs")),
        env={**os.environ, "FLOOR_WS": str(ws_module())},
        stderr=errors,
    )


def cpu_split(pids: list[int]) -> tuple[float, float] | None:
    """User and system CPU seconds of these processes so far (Linux /proc; None elsewhere)."""
    try:
        user = system = 0
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            user += int(fields[11])
            system += int(fields[12])
        tick = os.sysconf("SC_CLK_TCK")
        return user / tick, system / tick
    except (OSError, ValueError, IndexError):
        return None


def softirq_seconds() -> float | None:
    """The whole machine's CPU time in software interrupts so far (where loopback TCP's receive
    side may run, charged to no process)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        return int(fields[7]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def moved(before, after):
    if before is None or after is None:
        return None
    if isinstance(before, tuple):
        return tuple(a - b for b, a in zip(before, after, strict=True))
    return after - before


def message(cursor: int) -> str:
    """The ``next`` message of one event, stamped now: the shape our server sends."""
    created = datetime.now(UTC).isoformat(timespec="microseconds")
    event = {"cursor": str(cursor), "createdAt": created}
    return json.dumps(
        {"id": "1", "type": "next", "payload": {"data": {"workflowInstanceEvents": event}}}
    )


async def scenario(
    kind: str,
    url: str,
    channel: str,
    ports: list[int],
    pids: list[int],
    subscribers: int,
    events: int,
    rate: float,
    client_processes: int,
    max_lag: float,
) -> dict:
    import redis.asyncio as aioredis

    publisher = aioredis.from_url(url)
    config = {
        "ports": ports,
        "session": "floor",
        "after": "0",
        "query": SUBSCRIBE,
        "variables": {"w": "Bench"},
    }
    load_before = os.getloadavg()[0]
    errors = tempfile.TemporaryFile("w+")
    clients = await start_clients(kind, config, subscribers, client_processes, errors)
    try:
        began = time.monotonic()
        opened = await clients.hear(OPEN_SECONDS)
        print(
            f"{kind}: {subscribers} sockets open in {time.monotonic() - began:.1f} s",
            file=sys.stderr,
        )
        failed = sum(o["failed"] for o in opened)
        if failed:
            print(f"{failed} of {subscribers} sockets could not subscribe", file=sys.stderr)

        async def warm_up() -> None:  # again until every subscriber has it (a subscribe may lag)
            while True:
                await publisher.publish(channel, message(CURSOR_BASE))
                await asyncio.sleep(0.5)

        warming = asyncio.create_task(warm_up())
        try:
            warm = await clients.hear(WARM_SECONDS)
        finally:
            warming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await warming
        live = sum(w["warm"] for w in warm)
        if live < subscribers:
            print(f"{subscribers - live} subscribers never got the warm-up", file=sys.stderr)
        await asyncio.sleep(1.0)  # warm-up copies still on their way are not counted anyway
        await clients.tell({"threshold": CURSOR_BASE})
        cpu_before = [cpu_split([pid]) for pid in pids]
        clients_before, softirq_before = cpu_split(clients.pids), softirq_seconds()
        started = time.monotonic()
        issued: list[float] = []
        stopped = None
        for n in range(events):
            while True:
                now = time.monotonic()
                slowest = clients.slowest()
                if slowest is not None and slowest < len(issued):
                    lag = now - issued[slowest]
                    if lag > max_lag:
                        stopped = (
                            f"the slowest subscriber was {lag:.1f} s behind (limit "
                            f"{max_lag:g} s): it had {slowest} of the {len(issued)} events"
                        )
                        break
                delay = started + n / rate - now
                if delay <= 0:
                    break
                await asyncio.sleep(min(delay, 0.5))
            if stopped:
                break
            issued.append(time.monotonic())
            await publisher.publish(channel, message(CURSOR_BASE + 1 + n))
        published = time.monotonic() - started
        made = len(issued)
        # Until every live subscriber has every event (or nothing moved for IDLE_SECONDS): the
        # time the last delivery arrived, within a second (the clients report once a second).
        wanted = made * live
        received, last_move = 0, time.monotonic()
        drain_until = time.monotonic() + DRAIN_SECONDS
        while time.monotonic() < drain_until:
            total = sum(p["received"] for p in clients.progress if p)
            if total > received:
                received, last_move = total, time.monotonic()
            if received >= wanted or time.monotonic() - last_move > IDLE_SECONDS:
                break
            await asyncio.sleep(0.1)
        delivering = last_move - started
        cpu_after = [cpu_split([pid]) for pid in pids]
        clients_cpu, softirq = (
            moved(clients_before, cpu_split(clients.pids)),
            moved(softirq_before, softirq_seconds()),
        )
        expected = [CURSOR_BASE + 1 + n for n in range(made)]
        await clients.tell(
            {"expect": expected, "expect_text": [str(c) for c in expected], "wait": 5}
        )
        results = await clients.hear(5 + 120)
    finally:
        await clients.close()
        await publisher.aclose()
        errors.seek(0)
        said = errors.read().splitlines()
        errors.close()
        if said:  # the first few lines and how many: one per subscriber that missed something
            print(
                "\n".join(said[:3] + [f"... {len(said)} lines from the clients"]), file=sys.stderr
            )
    histogram: dict[int, int] = {}
    for result in results:
        for tenths, count in result["histogram"].items():
            histogram[int(tenths)] = histogram.get(int(tenths), 0) + count
    delivered = sum(r["delivered"] for r in results)
    # CPU from the first event published to the last arrival (/proc, user and system).
    split = [moved(b, a) for b, a in zip(cpu_before, cpu_after, strict=True)]
    worker_cpu = None if None in split else [sum(s) for s in split]
    worker_system = None if None in split else sum(s[1] for s in split)
    client_cpu = sum(clients_cpu) if clients_cpu else sum(r["cpu"] for r in results)
    return {
        "stopped": stopped,
        "made": made,
        "rate": made / delivering if delivering > 0 else 0.0,
        "published": made / published if published else 0.0,
        "deliveries": delivered / delivering if delivering > 0 else 0.0,
        "delivered": delivered / (events * subscribers),
        "in_order": not any(r["out_of_order"] or r["missed"] for r in results),
        "p50": histogram_percentile(histogram, 0.50),
        "p99": histogram_percentile(histogram, 0.99),
        "worker_cpu": worker_cpu,
        "client_cpu": client_cpu,
        "seconds": delivering,
        "per_delivery": (
            sum(worker_cpu) / delivered * 1e6 if worker_cpu and delivered else None,
            client_cpu / delivered * 1e6 if delivered else None,
        ),
        # The kernel's share: system time of the workers and of the clients, and the machine's
        # software-interrupt time (other processes' network traffic included: an upper bound).
        "system_share": (
            worker_system / sum(worker_cpu) if worker_cpu and sum(worker_cpu) else None,
            clients_cpu[1] / sum(clients_cpu) if clients_cpu and sum(clients_cpu) else None,
        ),
        "softirq_per_delivery": softirq / delivered * 1e6
        if softirq is not None and delivered
        else None,
        "load": (load_before, os.getloadavg()[0]),
    }


def rows_for(label: str, result: dict, subscribers: int, events: int, rate: float) -> list[dict]:
    stopped = result["stopped"]
    complete = not stopped and result["delivered"] >= 1.0 and result["in_order"]
    wanted = subscribers * rate
    worker, client = result["per_delivery"]
    worker_cpu = result["worker_cpu"]
    return [
        *stopped_rows(
            label,
            stopped,
            f"{result['made']} of {events} events: {stopped}",
            covered="events published",
            target="every event",
        ),
        {
            "figure": f"{label}, events/s achieved (first publish → last arrival)",
            "value": round(result["rate"], 1),
            "unit": "/s",
            "target": f"{rate:g}/s",
            "met": not stopped and result["rate"] >= rate * 0.95,
        },
        {
            "figure": f"{label}, deliveries/s sustained (publish of the first → last arrival)",
            "value": round(result["deliveries"]),
            "unit": "/s",
            "floor": round(wanted),
            "ratio": round(result["deliveries"] / wanted, 2),
            "target": f"{wanted:,.0f}/s",
            "met": not stopped and result["deliveries"] >= wanted * 0.95,
        },
        *latency_rows(
            label,
            result,
            P99_TARGET,
            stopped=stopped,
            complete=complete,
            since="publish",
            order="in order",
        ),
        {
            "figure": f"{label}, CPU per delivery: workers; clients",
            "value": "-" if worker is None or client is None else f"{worker:.1f}; {client:.1f}",
            "unit": "µs",
        },
        {
            # What the target would take at these costs, were the cores free for it alone.
            "figure": f"{label}, cores {wanted:,.0f} deliveries/s take at this CPU per delivery "
            "(workers + clients; with the softirq bound)",
            "value": "-"
            if worker is None or client is None
            else f"{(worker + client) * wanted / 1e6:.2f}"
            + (
                ""
                if result["softirq_per_delivery"] is None
                else f" – {(worker + client + result['softirq_per_delivery']) * wanted / 1e6:.2f}"
            ),
            "unit": "cores",
        },
        {
            "figure": f"{label}, of it in the kernel (system time): workers; clients",
            "value": "; ".join(
                "-" if share is None else f"{share * 100:.0f}" for share in result["system_share"]
            ),
            "unit": "%",
        },
        {
            "figure": f"{label}, the machine's softirq CPU per delivery (all its traffic: at most)",
            "value": None
            if result["softirq_per_delivery"] is None
            else round(result["softirq_per_delivery"], 1),
            "unit": "µs",
        },
        {
            "figure": f"{label}, CPU of the client processes / each worker's (same machine)",
            "value": "-"
            if worker_cpu is None
            else f"{result['client_cpu']:.1f} s / "
            + " + ".join(f"{w:.1f}" for w in worker_cpu)
            + f" s over {result['seconds']:.0f} s, load average "
            f"{result['load'][0]:.1f} → {result['load'][1]:.1f}",
        },
    ]


def arguments():
    parser = bench_arguments(__doc__, "20 subscribers, 40 events")
    parser.add_argument("--subscribers", help="comma-separated subscriber counts")
    parser.add_argument("--events", type=int, help="events published per run")
    parser.add_argument("--rate", type=float, default=20.0, help="events a second")
    parser.add_argument("--clients", default="python,node", help="python, node or both")
    parser.add_argument("--send", choices=("write", "asgi"), default="write")
    parser.add_argument(
        "--coalesce-ms",
        type=float,
        default=0,
        help="with --send write: one write per socket for the events of this many ms",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--max-lag", type=float, default=10.0)
    parser.add_argument("--ports-from", type=int, help="take ports from this one on")
    return parser.parse_args()


def print_rows(rows: list[dict]) -> None:
    for row in rows:
        met = "" if row.get("met") is None else ("  met" if row["met"] else "  NOT met")
        print(
            f"  {row['figure']:<70} {row['value']!s:>9} {row.get('unit', '')}  "
            f"{row.get('target', '')}{met}",
            flush=True,
        )


def main() -> int:
    from bench._common import handle_termination

    handle_termination()  # SIGTERM unwinds: the servers and clients are stopped
    args = arguments()
    default = "20" if args.quick else "1000,2500,5000"
    counts = [int(n) for n in (args.subscribers or default).split(",")]
    events = args.events or (40 if args.quick else 600)
    kinds = [k for k in args.clients.split(",") if k]
    ports = Ports(args.ports_from)
    rows: list[dict] = []
    if not args.json:
        print("fan-out floor: a bare ASGI app under uvicorn, publish → client over WebSockets")
    logs = Path(tempfile.mkdtemp(prefix="bench-fanout-floor-"))
    how = args.send + (
        f", one write per {args.coalesce_ms:g} ms"
        if args.coalesce_ms and args.send == "write"
        else ""
    )
    labels = [
        (
            kind,
            subscribers,
            f"floor ({how}), {args.workers} workers, {kind} client: {subscribers} "
            f"subscribers, {events} events at {args.rate:g}/s",
        )
        for kind in kinds
        for subscribers in counts
    ]
    try:
        with redis_url(ports.take) as url:
            channel = f"bench-fanout-floor-{os.getpid()}-{secrets.token_hex(4)}"
            env = {
                "BENCH_FLOOR_REDIS_URL": url or "",
                "BENCH_FLOOR_CHANNEL": channel,
                "BENCH_FLOOR_SEND": args.send,
                "BENCH_FLOOR_COALESCE_MS": str(args.coalesce_ms),
            }
            with contextlib.ExitStack() as stack:
                if url:
                    worker_ports, pids = stack.enter_context(
                        workers(args.workers, env, ports, logs)
                    )
                for kind, subscribers, label in labels:
                    missing = (
                        "no redis-server or REDIS_URL"
                        if url is None
                        else "no node or ws package in node_modules"
                        if kind == "node" and ws_module() is None
                        else None
                    )
                    if missing:
                        got = [{"figure": label, "value": None, "target": missing}]
                    else:
                        result = asyncio.run(
                            scenario(
                                kind,
                                url,
                                channel,
                                worker_ports,
                                pids,
                                subscribers,
                                events,
                                args.rate,
                                args.client_processes,
                                args.max_lag,
                            )
                        )
                        got = rows_for(label, result, subscribers, events, args.rate)
                    rows += got
                    if not args.json:
                        print_rows(got)
    finally:
        shutil.rmtree(logs, ignore_errors=True)
    if args.json:
        print(json.dumps({"rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
