"""Server processes the tests and the benchmarks start: an ASGI application under uvicorn or
daphne on 127.0.0.1 and a free port, waited for until it answers, and stopped without leaving a
process behind."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

CSRF = "serverstestcsrftoken000000000000"  # any 32 characters: cookie and header must match


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def asgi_command(kind: str, app: str, port: int, *options: str, python: str = "") -> list[str]:
    """The command serving ``app`` under ``kind`` (``"uvicorn"``, logging warnings only, or
    ``"daphne"``) on 127.0.0.1:``port``; ``options`` are the server's own."""
    python = python or sys.executable
    if kind == "uvicorn":
        where = ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
        return [python, "-m", "uvicorn", app, *where, *options]
    return [python, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), *options, app]


def wait_http(port: int, process: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    """Return once ``/graphql/`` on ``port`` answers (any status); raise with the end of the
    server's ``log`` if it exits first, or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"server exited with {process.returncode}:\n{tail}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/graphql/", timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"server on port {port} did not start")


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    """Ask ``process`` to end with ``sig``; kill it when it has not ended after ``timeout``
    seconds."""
    if process.poll() is None:
        process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def graphql(port: int, query: str, session_key: str, **variables) -> dict:
    """POST a GraphQL operation with the session cookie and the CSRF token, as a SPA does."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql/",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={
            "Content-Type": "application/json",
            "Cookie": f"sessionid={session_key}; csrftoken={CSRF}",
            "X-CSRFToken": CSRF,
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())
