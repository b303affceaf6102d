"""The dashboard in a real browser against a live demo server.

A fresh SQLite file is migrated and prepared with ``demo_setup``, daphne serves
``demo.asgi:application`` on a free port, and ``dashboard.e2e.mjs`` drives Debian's Chromium
through playwright-core: log in, an action in the page, another client's change shown within
2 seconds, a forced WebSocket drop with changes committed meanwhile that arrive after the
reconnect exactly once, a legible error code, a screenshot (artifacts/dashboard.png), and a
subscription in the vendored GraphiQL; no request leaves the server (no CDN).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .tools import HERE, chromium_path, node_path

ROOT = HERE.parent.parent
ARTIFACTS = ROOT / "artifacts"

pytestmark = pytest.mark.browser


@pytest.fixture
def demo_server(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "demo.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "DJANGO_DEBUG": "1",
        "PYTHONUNBUFFERED": "1",
    }
    # The demo's embedded default: in-memory channel layer, one process.
    env.pop("REDIS_URL", None)
    for command in (["migrate", "--noinput"], ["demo_setup"]):
        subprocess.run(
            [sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True, timeout=300
        )
    log_path = tmp_path / "daphne.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", "0", "demo.asgi:application"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        port = None
        while port is None:
            match = re.search(r"Listening on TCP address 127\.0\.0\.1:(\d+)", log_path.read_text(errors="replace"))
            if match:
                port = int(match.group(1))
            elif server.poll() is not None or time.monotonic() > deadline:
                pytest.fail("daphne did not start:\n" + log_path.read_text(errors="replace"))
            else:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", log_path
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


def test_dashboard_live_updates_actions_and_reconnect(demo_server):
    base_url, server_log = demo_server
    screenshot = ARTIFACTS / "dashboard.png"
    if screenshot.exists():
        screenshot.unlink()
    result = subprocess.run(
        [node_path(), str(HERE / "dashboard.e2e.mjs")],
        cwd=HERE,
        env={**os.environ, "BASE_URL": base_url, "SCREENSHOT": str(screenshot), "CHROMIUM": chromium_path()},
        capture_output=True,
        text=True,
        timeout=180,
    )
    checks = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    report = "\n".join(json.dumps(c) for c in checks)
    assert result.returncode == 0, (
        f"browser script failed:\n{report}\n--- stderr\n{result.stderr[-3000:]}\n"
        f"--- server log (tail)\n{server_log.read_text(errors='replace')[-3000:]}"
    )
    by_name = {c["check"]: c for c in checks}
    assert by_name["second client's change shown"]["latencyMs"] <= 2000
    assert by_name["reconnected and resumed from the cursor"]["replayed"] == 2
    assert by_name["error shown"]["code"] == "VERSION_CONFLICT"
    assert "GraphiQL subscription received" in by_name
    assert screenshot.stat().st_size > 20_000  # a populated page, not a blank one
    assert checks[-1]["check"] == "ok"
