"""Settings of the graphene-django peer (bench only; runs in its own venv, see graphql_list.py).

Like for like with the demo: its middleware (sessions, CSRF, auth, django-axes, …), its
authentication backends (django-rules answers the claims' object permissions), its visibility
rule, its secret key (so one login session is valid on both servers), its database settings
(the psycopg pool on PostgreSQL) — only the apps that need strawberry or channels are left out.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from demo import settings as demo  # noqa: E402

SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "axes",
    "rules",
    "graphene_django",
    "django_steps",
    "claims",
]
#: The demo's own values, like for like.
SHARED = ("MIDDLEWARE", "AUTHENTICATION_BACKENDS", "DJANGO_STEPS", "TIME_ZONE")
SHARED += ("AXES_FAILURE_LIMIT", "AXES_COOLOFF_TIME", "AXES_LOCKOUT_PARAMETERS")
globals().update({name: getattr(demo, name) for name in SHARED})
ROOT_URLCONF = "bench._peer_urls"
DATABASES = {"default": demo.database_from_url(os.environ.get("DATABASE_URL"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
GRAPHENE = {"SCHEMA": "bench._peer_schema.schema", "RELAY_CONNECTION_MAX_LIMIT": 100}
