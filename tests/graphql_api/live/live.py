"""Real servers for the live tests: daphne or uvicorn subprocesses on free ports, sharing the
pytest-django test database (PostgreSQL) and, optionally, a Redis channel layer."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from django.db import connection
from websockets.asyncio.client import ClientConnection, connect

from tests.servers import asgi_command, free_port, stop, wait_http

ROOT = Path(__file__).resolve().parents[3]

HOLD = """mutation Hold($id: ID!) { setWorkflowOnHold(input: {instanceId: $id}) {
  __typename ... on WorkflowInstance { version state }
  ... on OperationInfo { messages { code } } } }"""
RESUME = """mutation Resume($id: ID!) { resumeWorkflowInstance(input: {instanceId: $id}) {
  __typename ... on WorkflowInstance { version state }
  ... on OperationInfo { messages { code } } } }"""


def database_url() -> str:
    """The pytest-django test database, as a URL for a server subprocess."""
    s = connection.settings_dict
    assert connection.vendor == "postgresql", (
        "live servers share the test database: PostgreSQL only"
    )
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


class ServerPort(int):
    """The port of a live server (an ``int``), with its ``process`` and ``log`` file."""

    process: subprocess.Popen
    log: Path


@contextlib.contextmanager
def server(
    kind: str = "uvicorn",
    *,
    redis_url: str | None = None,
    log: Path | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[ServerPort]:
    """Run ``demo.asgi:application`` under ``kind`` (uvicorn or daphne); yields its port.
    ``env``: more environment variables for the server."""
    port = free_port()
    extra_env, env = (
        env,
        {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": database_url(),
            "PYTHONPATH": str(ROOT),
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        },
    )
    env.pop("REDIS_URL", None)
    env.update(extra_env or {})
    if redis_url:
        env["REDIS_URL"] = redis_url
    # WebSockets under uvicorn need uvicorn[standard] (or `websockets`): the `server` extra.
    options = ("--ws", "websockets") if kind == "uvicorn" else ()
    cmd = asgi_command(kind, "demo.asgi:application", port, *options)
    if log is None:
        log = Path(tempfile.mkdtemp(prefix="django-steps-server-")) / f"{kind}-{port}.log"
    out = open(log, "ab")
    process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_http(port, process, log)
        live = ServerPort(port)
        live.process, live.log = process, log
        yield live
    finally:
        stop(process)
        out.close()


async def open_socket(
    port: int, session: str | None, protocol: str = "graphql-transport-ws", **options
) -> ClientConnection:
    """A WebSocket to the server on ``port``, as the session's user (``None``: anonymous), the
    connection acknowledged; ``options`` go to the `websockets` library's ``connect``."""
    ws = await connect(
        f"ws://127.0.0.1:{port}/graphql/",
        subprotocols=[protocol],
        additional_headers={"Cookie": f"sessionid={session}"} if session else {},
        origin=f"http://127.0.0.1:{port}",
        **options,
    )
    await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    return ws


async def messages(ws: ClientConnection):
    """The messages a socket receives, decoded, its pings answered."""
    async for raw in ws:
        message = json.loads(raw)
        if message["type"] == "ping":
            await ws.send(json.dumps({"type": "pong"}))
        else:
            yield message


class RedisServer:
    """A private redis-server on a free port that can be stopped and started again."""

    def __init__(self) -> None:
        self.binary = shutil.which("redis-server")
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert self.binary, "redis-server is not installed"
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return
            time.sleep(0.05)
        raise TimeoutError("redis-server did not start")

    def freeze(self) -> None:
        """Stop the process without closing its sockets (SIGSTOP): clients hang, nothing fails."""
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(5)
        self.process = None
