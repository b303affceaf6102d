"""The dashboard's deadlines in a real browser against a live demo server (the set-up of
test_dashboard_browser.py): a passed deadline shows an overdue badge and count, "Overdue only"
filters the board, a claim entering the review counts down live, and the worker's
DEADLINE_PASSED event arrives live."""

from __future__ import annotations

import json
import os
import subprocess
import threading

import pytest

from .test_dashboard_browser import DemoServer
from .tools import HERE, chromium_path, node_path

pytestmark = pytest.mark.browser

#: As if two days had passed since the hail damage claim entered its review (time cannot be
#: moved in the server process: its timer is moved instead).
TWO_DAYS_LATER = """
import datetime as dt
from django.utils import timezone
from claims.models import Claim
from django_steps import services
from django_steps.models import WorkflowTimer
claim = Claim.objects.get(title="Hail damage on car")
instance = services.get_workflow_instance_for_object(claim, "Claim Processing")
timers = WorkflowTimer.objects.filter(instance=instance, kind="DEADLINE")
assert timers.update(due_at=timezone.now() - dt.timedelta(minutes=5)) == 1
"""


@pytest.fixture
def overdue_demo(tmp_path):
    server = DemoServer(tmp_path)
    server.manage("migrate", "--noinput")
    server.manage("demo_setup")
    server.manage("shell", "-c", TWO_DAYS_LATER)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_dashboard_shows_deadlines_live(overdue_demo):
    script = subprocess.Popen(
        [node_path(), str(HERE / "deadlines.e2e.mjs")],
        cwd=HERE,
        env={**os.environ, "BASE_URL": overdue_demo.url, "CHROMIUM": chromium_path()},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    checks = []
    watchdog = threading.Timer(180, script.kill)  # a hung browser must not hang the suite
    watchdog.start()
    try:
        for line in script.stdout:
            if not line.startswith("{"):
                continue
            checks.append(json.loads(line))
            if checks[-1]["check"] == "run worker":
                overdue_demo.manage("steps_worker", "--once")
                script.stdin.write("fired\n")
                script.stdin.flush()
        script.wait(timeout=120)
    finally:
        watchdog.cancel()
        if script.poll() is None:
            script.kill()
    report = "\n".join(json.dumps(c) for c in checks)
    assert script.returncode == 0, (
        f"browser script failed:\n{report}\n--- stderr\n{script.stderr.read()[-3000:]}\n"
        f"--- server log (tail)\n{overdue_demo.log_tail()}"
    )
    assert [c["check"] for c in checks] == [
        "overdue badge shown",
        "overdue filter",
        "countdown shown live",
        "run worker",
        "deadline event shown live",
        "ok",
    ]
