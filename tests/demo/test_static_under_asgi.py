"""GraphiQL's static files are served under the ASGI servers, not only by ``runserver``: the
demo's (daphne, as ``make demo`` runs it, and uvicorn) with DEBUG off, and the README's
``ASGIStaticFilesHandler`` wrapper in a project whose URLconf serves none."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders

from tests.servers import asgi_command, free_port, stop

ROOT = Path(__file__).resolve().parents[2]


def get(url: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Accept": "text/html"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


#: The demo project as it ships: its ASGI application and its settings.
DEMO = ("demo.asgi:application", "demo.settings")


@pytest.mark.parametrize(
    ("kind", "app", "settings_module"),
    [
        ("daphne", *DEMO),
        ("uvicorn", *DEMO),
        ("uvicorn", "tests.demo.asgi_static:application", "tests.demo.settings_static"),
    ],
)
def test_graphiql_and_its_static_files_load_under_an_asgi_server(
    tmp_path, kind, app, settings_module
):
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": settings_module,
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),  # DEBUG off, as deployed
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "GRAPHQL_GRAPHIQL": "1",
    }
    log = open(tmp_path / "server.log", "wb")
    process = subprocess.Popen(
        asgi_command(kind, app, port),
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                status, page = get(f"{base}/graphql/")
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        assert status == 200 and b"graphiql" in page.lower()
        assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.decode())
        assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
        for asset in assets:
            status, body = get(base + asset)
            assert status == 200, (asset, status)
            assert body == Path(finders.find(asset.removeprefix("/static/"))).read_bytes(), asset
        assert get(f"{base}/static/graphql_api/no-such-file.js")[0] == 404
    finally:
        stop(process, signal.SIGINT)
        log.close()
