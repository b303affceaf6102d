"""Deadlines on Celery (the ``celery`` extra): the sweep of ``manage.py steps_worker`` as a task,
run every second by Celery beat, for projects that already run Celery or want their scheduler
supervised, monitored and scaled by it. Workers claim timers with ``SKIP LOCKED``, so any number
of Celery workers (and ``steps_worker`` processes) may run the task at once: each timer fires
once.

In the project's Celery app (``app.autodiscover_tasks()`` finds this module; the demo's is
``demo/celery.py``)::

    app.conf.beat_schedule = {
        "django-steps-fire-due-timers": {
            "task": "django_steps.fire_due_timers",
            "schedule": 1.0,  # seconds: the latency of a deadline is at most this
            "options": {"expires": 1.0},  # a sweep not started in time is dropped, not piled up
        }
    }

then run ``celery -A <project> worker --beat`` (or one ``beat`` and any number of workers).
"""

from __future__ import annotations

from celery import shared_task

from . import deadlines
from .conf import steps_setting

__all__ = ["TASK_NAME", "fire_due_timers"]

TASK_NAME = "django_steps.fire_due_timers"


@shared_task(name=TASK_NAME, ignore_result=True)
def fire_due_timers() -> int:
    """Fire every timer due now; returns how many were handled."""
    return deadlines.run_once(limit=int(steps_setting("WORKER_BATCH_SIZE")))
