"""Settings of bench/lists.py: the test settings with two databases, ``default`` (the small
tables) and ``large``, and a router that sends every query (the GraphQL view's, the session's,
the ORM's) to the one :data:`CURRENT` names, so requests against both sizes can alternate in
one process."""

import contextvars
import os

from demo.settings import database_from_url
from tests.settings import *  # noqa: F403
from tests.settings import DATABASES

DATABASES = {**DATABASES, "large": database_from_url(os.environ["BENCH_LARGE_DATABASE_URL"])}
DATABASE_ROUTERS = ["bench._lists_settings.Router"]

CURRENT: contextvars.ContextVar[str] = contextvars.ContextVar(
    "bench_lists_database", default="default"
)


class Router:
    def db_for_read(self, model, **hints):
        return CURRENT.get()

    def db_for_write(self, model, **hints):
        return CURRENT.get()

    def allow_relation(self, obj1, obj2, **hints):
        return True

    def allow_migrate(self, db, app_label, **hints):
        return True
