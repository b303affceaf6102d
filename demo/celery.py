"""The demo's Celery app (``celery -A demo worker --beat``): fires deadlines instead of
``manage.py steps_worker`` (see django_steps/tasks.py), with ``REDIS_URL`` as broker."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")

app = Celery("demo")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["django_steps"])
app.conf.beat_schedule = {
    "django-steps-fire-due-timers": {
        "task": "django_steps.fire_due_timers",
        "schedule": 1.0,
        "options": {"expires": 1.0},
    }
}
