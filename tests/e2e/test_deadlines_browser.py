"""The dashboard's deadlines in a real browser against a live demo server (the set-up of
test_dashboard_browser.py): a passed deadline shows an overdue badge and count, "Overdue only"
filters the board, a claim entering the review counts down live, and the worker's
DEADLINE_PASSED event arrives live."""

from __future__ import annotations

import pytest

from .test_dashboard_browser import DemoServer, run_browser_script

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
    def run_worker() -> str:
        overdue_demo.manage("steps_worker", "--once")
        return "fired"

    checks = run_browser_script(
        "deadlines.e2e.mjs", overdue_demo, {"run worker": run_worker}, timeout=180
    )
    assert [c["check"] for c in checks] == [
        "overdue badge shown",
        "overdue filter",
        "countdown shown live",
        "run worker",
        "deadline event shown live",
        "ok",
    ]
