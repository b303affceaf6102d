"""Test settings: the demo settings plus a test app, with an in-memory SQLite default."""

import os

os.environ.setdefault("DATABASE_URL", "sqlite://:memory:")
# DEBUG is off here; the demo settings then want a secret key. GraphiQL and introspection stay
# on as they were (tests that need them off say so).
os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-not-a-secret-" + "x" * 40)
os.environ.setdefault("GRAPHQL_GRAPHIQL", "1")
os.environ.setdefault("GRAPHQL_INTROSPECTION", "1")

from demo.settings import *  # noqa: F403
from demo.settings import DATABASES, INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SECRET_KEY = "tests-only"
DEBUG = False

# Parallel agents/CI jobs on one PostgreSQL server can each pick their own test database.
if os.environ.get("DJANGO_TEST_DB_NAME"):
    DATABASES["default"].setdefault("TEST", {})["NAME"] = os.environ["DJANGO_TEST_DB_NAME"]

# A live-test server may run a channel layer with a deterministic fault (tests/testapp/layers.py).
if os.environ.get("TEST_CHANNEL_LAYER_BACKEND"):
    from demo.settings import CHANNEL_LAYERS

    CHANNEL_LAYERS["default"]["BACKEND"] = os.environ["TEST_CHANNEL_LAYER_BACKEND"]

# A live-test server with other DJANGO_STEPS_GRAPHQL values (JSON), e.g. a rare periodic re-check.
if os.environ.get("TEST_GRAPHQL_SETTINGS"):
    import json

    from demo.settings import DJANGO_STEPS_GRAPHQL

    DJANGO_STEPS_GRAPHQL.update(json.loads(os.environ["TEST_GRAPHQL_SETTINGS"]))
