"""Settings of the graphene-django peer (bench only; runs in its own venv, see graphql_list.py)."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from demo.settings import database_from_url  # noqa: E402

SECRET_KEY = "bench-peer"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "graphene_django",
    "django_steps",
    "claims",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "bench._peer_urls"
DATABASES = {"default": database_from_url(os.environ.get("DATABASE_URL"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
GRAPHENE = {"SCHEMA": "bench._peer_schema.schema", "RELAY_CONNECTION_MAX_LIMIT": 1000}
