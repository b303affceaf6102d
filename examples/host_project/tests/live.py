"""A real server for the WebSocket test: daphne serving ``mysite.asgi:application`` on a free
port, on the test process's database (a file, see tests/settings.py)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.cookiejar import CookieJar
from pathlib import Path

from django.db import connection

PROJECT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def daphne() -> Iterator[str]:
    """Yields the server's base URL (``http://127.0.0.1:<port>``)."""
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "HOST_PROJECT_SERVER_DB": str(connection.settings_dict["NAME"]),
    }
    log = Path(tempfile.mkdtemp(prefix="host-project-daphne-")) / "daphne.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "mysite.asgi:application",
            ],
            cwd=PROJECT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"daphne exited with {process.returncode}:\n{log.read_text()[-3000:]}"
                    )
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/graphql/", timeout=1)
                    break
                except urllib.error.HTTPError:
                    break  # it answers (400: no query)
                except OSError:
                    if time.monotonic() > deadline:
                        raise TimeoutError("daphne did not start") from None
                    time.sleep(0.1)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


class Session:
    """An HTTP client with cookies, sending the CSRF token as a browser SPA does."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))
        try:
            self.opener.open(f"{base}/graphql/", timeout=10)  # sets csrftoken
        except urllib.error.HTTPError:
            pass

    def cookie(self, name: str) -> str:
        return next(c.value for c in self.cookies if c.name == name)

    def graphql(self, query: str, **variables) -> dict:
        request = urllib.request.Request(
            f"{self.base}/graphql/",
            data=json.dumps({"query": query, "variables": variables}).encode(),
            headers={"Content-Type": "application/json", "X-CSRFToken": self.cookie("csrftoken")},
        )
        with self.opener.open(request, timeout=30) as response:
            result = json.loads(response.read())
        assert "errors" not in result, result["errors"]
        return result["data"]

    def cookie_header(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.cookies)
