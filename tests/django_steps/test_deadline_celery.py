"""The Celery path (django_steps/tasks.py, the demo's Celery app): a real worker with beat, on
the Redis broker, fires the same timers ``steps_worker`` fires, each once."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from django_steps.choices import EventKind
from django_steps.models import WorkflowEvent, WorkflowTimer
from tests.django_steps.test_deadline_workers import environment, started, workflow
from tests.graphql_api.live.live import ROOT

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def test_a_celery_worker_with_beat_fires_each_due_timer_once(tmp_path):
    workflow({"after": "PT0S", "status": "Late"})
    instances = started(30)
    env = {**environment(), "CELERY_BROKER_URL": os.environ["REDIS_URL"]}
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "demo",
        "worker",
        "--beat",
        "--pool",
        "solo",
        "--schedule",
        str(tmp_path / "beat-schedule"),
        "--loglevel",
        "WARNING",
    ]
    log = tmp_path / "celery.log"
    with log.open("w") as out:
        worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        for _ in range(600):  # until every timer fired (or a minute passed)
            if not WorkflowTimer.objects.filter(fired_at__isnull=True).exists():
                break
            assert worker.poll() is None, log.read_text()[-3000:]
            time.sleep(0.1)
    finally:
        worker.terminate()
        worker.wait(30)
    assert not WorkflowTimer.objects.filter(fired_at__isnull=True).exists(), log.read_text()[-3000:]
    changed = WorkflowEvent.objects.filter(kind=EventKind.STATUS_CHANGED)
    assert sorted(changed.values_list("instance_id", flat=True)) == sorted(i.pk for i in instances)
    assert {event.detail["reason"] for event in changed} == {"DEADLINE"}
