"""The dashboard in a real browser against a live demo server.

A fresh SQLite file is migrated and prepared with ``demo_setup``, daphne serves
``demo.asgi:application`` on a free port, and ``dashboard.e2e.mjs`` drives Debian's Chromium
through playwright-core: log in, actions in the page, another client's change shown within
2 seconds, a forced WebSocket drop with changes committed meanwhile that arrive after the
reconnect exactly once, a legible error code, a server restart with a change committed while
the server was down, a new published version (instances shown on "v1", the migration preview,
then the migration arriving live as MIGRATED events), a screenshot (artifacts/dashboard.png),
and a subscription in the vendored GraphiQL; no request leaves the server (no CDN).

The script asks for the restart by printing ``{"check": "restart server"}``; this test stops
daphne, commits a change through the services (as another process would), starts daphne again
on the same port and answers ``restarted`` on the script's stdin.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.servers import asgi_command, stop

from .tools import HERE, chromium_path, node_path

ROOT = HERE.parent.parent
ARTIFACTS = ROOT / "artifacts"

pytestmark = pytest.mark.browser

#: Committed while the server is down (the script checks the page shows it afterwards).
CHANGE_WHILE_DOWN = """
from claims.models import Claim
from django_steps import services
claim = Claim.objects.get(title="Cracked phone screen")
instance = services.get_workflow_instance_for_object(claim, "Claim Triage")
services.update_workflow_step_status(instance, "Triaged")
"""


class DemoServer:
    def __init__(self, tmp_path: Path) -> None:
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "demo.settings",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
            "DJANGO_DEBUG": "1",
            "PYTHONUNBUFFERED": "1",
        }
        # The demo's embedded default: in-memory channel layer, one process.
        self.env.pop("REDIS_URL", None)
        self.log_path = tmp_path / "daphne.log"
        self.port = 0
        self.process: subprocess.Popen | None = None

    def manage(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            timeout=300,
        )

    def start(self) -> None:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                asgi_command("daphne", "demo.asgi:application", self.port),
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            text = self.log_path.read_bytes()[offset:].decode(errors="replace")
            match = re.search(r"Listening on TCP address 127\.0\.0\.1:(\d+)", text)
            if match:
                self.port = int(match.group(1))
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("daphne did not start:\n" + text)
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process:
            stop(self.process)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


@pytest.fixture
def demo_server(tmp_path):
    server = DemoServer(tmp_path)
    server.manage("migrate", "--noinput")
    server.manage("demo_setup")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def run_browser_script(
    name: str, server: DemoServer, answers: dict, env: dict | None = None, timeout: float = 300
) -> list[dict]:
    """Run ``tests/e2e/<name>`` against ``server``; when it prints a check named in ``answers``,
    call that function and write what it returns on the script's stdin. Returns every check the
    script printed, once it exited successfully."""
    script = subprocess.Popen(
        [node_path(), str(HERE / name)],
        cwd=HERE,
        env={**os.environ, "BASE_URL": server.url, "CHROMIUM": chromium_path(), **(env or {})},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    checks = []
    watchdog = threading.Timer(timeout, script.kill)  # a hung browser must not hang the suite
    watchdog.start()
    try:
        for line in script.stdout:
            if not line.startswith("{"):
                continue
            checks.append(json.loads(line))
            answer = answers.get(checks[-1]["check"])
            if answer is not None:
                script.stdin.write(answer() + "\n")
                script.stdin.flush()
        script.wait(timeout=180)
    finally:
        watchdog.cancel()
        if script.poll() is None:
            script.kill()
    report = "\n".join(json.dumps(c) for c in checks)
    assert script.returncode == 0, (
        f"browser script failed:\n{report}\n--- stderr\n{script.stderr.read()[-3000:]}\n"
        f"--- server log (tail)\n{server.log_tail()}"
    )
    return checks


def test_dashboard_live_updates_actions_and_reconnect(demo_server):
    screenshot = ARTIFACTS / "dashboard.png"
    if screenshot.exists():
        screenshot.unlink()

    def restart() -> str:
        demo_server.stop()
        demo_server.manage("shell", "-c", CHANGE_WHILE_DOWN)
        demo_server.start()  # same port: the page reconnects to the same URL
        return "restarted"

    checks = run_browser_script(
        "dashboard.e2e.mjs",
        demo_server,
        {"restart server": restart},
        env={"SCREENSHOT": str(screenshot)},
    )
    by_name = {c["check"]: c for c in checks}
    assert by_name["second client's change shown"]["latencyMs"] <= 2000
    assert by_name["reconnected and resumed from the cursor"]["replayed"] == 2
    assert by_name["error shown"]["code"] == "VERSION_CONFLICT"
    assert by_name["change made while the server was down shown"]["replayed"] == 1
    assert by_name["migration preview shown"]["version"] == 2
    assert by_name["migrated"]["migrated"] == by_name["migration preview shown"]["moves"] > 0
    assert "GraphiQL subscription received" in by_name
    assert screenshot.stat().st_size > 20_000  # a populated page, not a blank one
    assert checks[-1]["check"] == "ok"


def test_my_work_lists_claims_and_updates_live(demo_server):
    done = subprocess.run(
        [node_path(), str(HERE / "mywork.e2e.mjs")],
        cwd=HERE,
        env={**os.environ, "BASE_URL": demo_server.url, "CHROMIUM": chromium_path()},
        capture_output=True,
        text=True,
        timeout=180,
    )
    checks = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    report = "\n".join(json.dumps(c) for c in checks)
    assert done.returncode == 0, (
        f"browser script failed:\n{report}\n--- stderr\n{done.stderr[-3000:]}\n"
        f"--- server log (tail)\n{demo_server.log_tail()}"
    )
    by_name = {c["check"]: c for c in checks}
    assert by_name["opened live"]["latencyMs"] <= 2000
    assert "claimed in the page" in by_name and "released in the page" in by_name
    assert by_name["closed and opened live"]["steps"] == ["Approve/Reject"]
    assert checks[-1]["check"] == "ok"


def test_charts_draw_the_stats_and_follow_changes_live(demo_server):
    screenshot = ARTIFACTS / "charts.png"
    checks = run_browser_script(
        "charts.e2e.mjs", demo_server, {}, env={"SCREENSHOT": str(screenshot)}
    )
    by_name = {c["check"]: c for c in checks}
    assert by_name["charts drawn"]["points"] == 30
    assert by_name["charts drawn"]["series"] == {
        "steps": {"series": 3, "points": 30},
        "throughput": {"series": 3, "points": 30},
        "time": {"series": 2, "points": 2},  # Submit and Review were left
    }
    assert by_name["another client's change charted"]["latencyMs"] <= 2000
    assert by_name["burst coalesced"]["fetches"] < by_name["burst coalesced"]["changes"]
    assert by_name["hourly window drawn"]["points"] == 48
    assert checks[-1]["check"] == "ok"
