"""What the benchmarks that compare over HTTP share: the graphene-django peer's venv, a server
process per side, and a keep-alive client that sends the session cookie and the CSRF token as a
browser app does.

The peer runs in its own venv (``bench/.venv-peer``, created on first use: graphene needs
graphql-core 3.2, strawberry 3.3) with the same versions of everything both sides share.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import handle_termination, scratch_database  # noqa: E402
from tests.servers import asgi_command, free_port, stop  # noqa: E402

PEER_VENV = HERE / ".venv-peer"
#: 32 characters: a valid CSRF secret, sent as the cookie and the header.
CSRF = "benchgraphqllistcsrftoken0000000"


def peer_packages() -> list[str]:
    """The peer's venv: graphene-django, and the versions of everything both sides share."""
    same = [
        "Django",
        "uvicorn",
        # uvicorn picks its event loop and HTTP parser from what is installed: both servers get
        # the same ones, or the comparison measures the loop rather than the GraphQL layer.
        "uvloop",
        "httptools",
        "psycopg",
        "psycopg-pool",
        "django-axes",
        "rules",
        "cel-python",
        "PyYAML",
    ]
    return [
        "graphene-django==3.2.3",
        "psycopg-binary==" + version("psycopg-binary"),
        *(f"{name}=={version(name)}" for name in same),
    ]


def peer_python() -> Path:
    python = PEER_VENV / "bin" / "python"
    wanted = "\n".join(peer_packages())
    stamp = PEER_VENV / ".bench-requirements"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *peer_packages()],
        check=True,
        capture_output=True,
    )
    stamp.write_text(wanted)
    return python


def served_database(label: str) -> tuple[Path, str]:
    """A database the servers share, set up for this process with the demo's settings: a scratch
    database on PostgreSQL (``DATABASE_URL=postgres://…``), else an SQLite file in a new working
    directory; migrated. Returns the working directory (logs) and the backend's name."""
    handle_termination()
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{label}-"))
    url = scratch_database(label)
    os.environ["DATABASE_URL"] = url or f"sqlite:///{workdir / 'bench.sqlite3'}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "demo.settings"
    import django
    from django.conf import settings
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    settings.ALLOWED_HOSTS = ["*"]  # the test client of this process
    return workdir, "PostgreSQL" if url else "SQLite (file)"


#: The ASGI applications and settings of the sides.
OURS = ("demo.asgi:application", "demo.settings")
PEER = ("bench._peer_asgi:application", "bench._peer_settings")


@contextlib.contextmanager
def server(
    python: Path,
    side: tuple[str, str],
    env_extra: dict,
    log: Path,
    workers: int = 1,
    *,
    worker_pid: bool = False,
):
    """``side`` (an ASGI application and its settings module) under uvicorn, DEBUG off; yields
    ``(port, pid)``. ``worker_pid``: each answer names its worker (for :func:`spread`)."""
    app, settings_module = side
    port = free_port()
    if worker_pid:
        env_extra = {**env_extra, "BENCH_ASGI_APP": app}
        app = "bench._peer_worker_pid:application"
    env = {
        **os.environ,
        **env_extra,
        "DJANGO_SETTINGS_MODULE": settings_module,
        "PYTHONPATH": str(ROOT),
        "DJANGO_DEBUG": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_STEPS_LOG_LEVEL": "WARNING",
    }
    # a client's keep-alive connection may idle while the other sides are measured (uvicorn
    # closes an idle one after 5 s by default)
    options = ("--workers", str(workers), "--no-access-log", "--timeout-keep-alive", "600")
    cmd = asgi_command("uvicorn", app, port, *options, python=str(python))
    with open(log, "ab") as out:
        process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{app} exited: {log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield port, process.pid
    finally:
        stop(process, timeout=15)


class Browser:
    """One keep-alive connection, the session cookie and the CSRF token, as a browser app sends
    them."""

    def __init__(self, port: int, session: str, path: str = "/graphql/") -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.path = path
        self.headers = {"Content-Type": "application/json", "X-CSRFToken": CSRF}
        self.log_in(session)
        self.worker: str | None = None  # the server's worker on this connection (see spread)

    def log_in(self, session: str) -> None:
        """Send ``session``'s cookie from now on."""
        self.headers["Cookie"] = f"sessionid={session}; csrftoken={CSRF}"

    def which_worker(self) -> str:
        """Connect (once) and ask which worker serves this connection: a GET of the path, whose
        answer (any status) names it, from a server run with ``worker_pid``."""
        if self.worker is None:
            self.conn.request("GET", self.path, headers=self.headers)
            response = self.conn.getresponse()
            response.read()
            self.worker = response.getheader("X-Worker-Pid")
            if self.worker is None:
                raise RuntimeError("the server names no worker: run it with worker_pid=True")
        return self.worker

    def post(self, body: bytes) -> tuple[float, dict]:
        """Send ``body``; the seconds until the whole answer was read, and the answer. Raises
        on an HTTP error or a GraphQL ``errors`` list."""
        started = time.perf_counter()
        self.conn.request("POST", self.path, body, self.headers)
        response = self.conn.getresponse()
        raw = response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {raw[:300]!r}")
        data = json.loads(raw)
        if data.get("errors"):
            raise RuntimeError(f"errors: {str(data['errors'])[:300]}")
        return elapsed, data

    def close(self) -> None:
        self.conn.close()


def spread(port: int, sessions: Sequence[str], path: str, workers: int) -> list[Browser]:
    """One keep-alive connection per session, as evenly split over the server's ``workers`` as
    the count allows (which worker accepts a connection is the kernel's choice: connections are
    opened until each worker has its share, the others closed), in an order whose every prefix
    is split as evenly too. The server runs with ``worker_pid``."""
    share = -(-len(sessions) // workers)
    kept: dict[str, list[Browser]] = {}
    extra: list[Browser] = []
    while sum(map(len, kept.values())) < len(sessions):
        if len(extra) > 50 * len(sessions):
            raise RuntimeError(f"no even split over {workers} workers: {_split(kept)}")
        browser = Browser(port, sessions[0], path)
        on = kept.setdefault(browser.which_worker(), [])
        (on if len(on) < share else extra).append(browser)
    for browser in extra:
        browser.close()
    lanes = sorted(kept.values(), key=len, reverse=True)
    ordered = [b for rank in range(share) for lane in lanes for b in lane[rank : rank + 1]]
    for browser, session in zip(ordered, sessions, strict=True):
        browser.log_in(session)
    return ordered


def split(browsers: Sequence[Browser]) -> str:
    """How ``browsers`` are split over the workers, most first: ``"4+4"``."""
    by_worker: dict[str | None, list[Browser]] = {}
    for browser in browsers:
        by_worker.setdefault(browser.worker, []).append(browser)
    return _split(by_worker)


def _split(by_worker: dict) -> str:
    return "+".join(str(n) for n in sorted(map(len, by_worker.values()), reverse=True))
