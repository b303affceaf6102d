"""``manage.py steps_worker``: the scheduler that fires deadlines and reminders (see
:mod:`django_steps.deadlines`). Run one or more beside the server; ``--once`` fires everything
due and exits (for cron, or a test)."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand
from django.db import close_old_connections

from django_steps import deadlines
from django_steps.conf import steps_setting

logger = logging.getLogger("django_steps")


class Command(BaseCommand):
    help = (
        "Fire the deadlines and reminders as they fall due (looking for new ones at least every "
        "WORKER_POLL_SECONDS) until stopped "
        "(SIGTERM or Ctrl-C finish the batch under way). Several workers may run at once: each "
        "timer fires once."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--once", action="store_true", help="Fire everything due now, then exit."
        )
        parser.add_argument(
            "--poll",
            type=float,
            default=None,
            help="Seconds between sweeps (default: the WORKER_POLL_SECONDS setting).",
        )
        parser.add_argument(
            "--batch",
            type=int,
            default=None,
            help="Timers fired per transaction (default: the WORKER_BATCH_SIZE setting).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        batch = options["batch"] or int(steps_setting("WORKER_BATCH_SIZE"))
        if options["once"]:
            fired = deadlines.run_once(limit=batch)
            self.stdout.write(f"{fired} timer(s) handled.")
            return
        poll = (
            options["poll"] if options["poll"] is not None else steps_setting("WORKER_POLL_SECONDS")
        )
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        self.stdout.write(f"steps_worker: firing due timers every {poll} s.")
        while not stop.is_set():
            close_old_connections()  # a connection the database dropped is opened again
            try:
                handled = deadlines.fire_due(limit=batch)
                if handled < batch:  # caught up: wait for the next timer, a poll or a signal
                    stop.wait(deadlines.seconds_to_wait(float(poll)))
            except Exception:  # the database away, a bug: every deadline waits for this worker
                logger.exception("steps_worker: the sweep failed; trying again in %s s.", poll)
                stop.wait(float(poll))
        self.stdout.write("steps_worker: stopped.")
