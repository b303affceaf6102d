"""Settings of the demo project (also the base of the test settings).

Everything that differs between a laptop and a deployment comes from the environment:
``DATABASE_URL`` (default: SQLite file), ``REDIS_URL`` (default: in-memory channel layer),
``DJANGO_DEBUG`` (off unless set; ``make demo`` sets it), ``DJANGO_SECRET_KEY`` (required
unless ``DJANGO_DEBUG`` is on), ``DJANGO_ALLOWED_HOSTS`` (comma-separated), ``DJANGO_SECURE``
(HTTPS only: secure cookies, HSTS, redirect to HTTPS), ``DJANGO_PROXY_COUNT`` (reverse proxies in
front: trust their ``X-Forwarded-Proto``/``-For``), ``DJANGO_LOGIN_FAILURE_LIMIT`` /
``DJANGO_LOGIN_COOLOFF_MINUTES`` (login throttling), ``GRAPHQL_ALLOWED_ORIGINS``
(comma-separated origins allowed to open the WebSocket), ``GRAPHQL_MAX_COST`` and
``GRAPHQL_MAX_PAGE_SIZE``. The production environment is documented in the README
("Deployment"); ``manage.py check --deploy`` is clean with it.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def database_from_url(url: str | None) -> dict:
    """Translate ``DATABASE_URL`` into a Django ``DATABASES['default']`` entry."""
    if not url:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": BASE_DIR / "db.sqlite3",
            # Take the write lock at BEGIN so concurrent writers queue instead of failing.
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
        }
    parts = urlsplit(url)
    if parts.scheme in {"sqlite", "sqlite3"}:
        name = unquote(parts.path[1:]) if parts.path not in ("", "/") else ":memory:"
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": name or ":memory:",
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
        }
    if parts.scheme in {"postgres", "postgresql", "pgsql"}:
        options: dict = dict(parse_qsl(parts.query))
        conn_max_age = int(os.environ.get("DJANGO_CONN_MAX_AGE", "0"))
        if env_bool("DJANGO_DB_POOL", True):
            # psycopg's pool (Django 5.1+): under ASGI every hop to the sync thread would
            # otherwise open a new connection (persistent connections do not apply there).
            options["pool"] = {
                "min_size": 2,
                "max_size": int(os.environ.get("DJANGO_DB_POOL_SIZE", "10")),
            }
            conn_max_age = 0  # the pool keeps the connections
        # Prepared statements (Django leaves them off for poolers in transaction mode): the
        # engine's read and write of a change are then prepared on each connection, and the
        # server no longer plans them each time. "none" turns them off (behind such a pooler).
        threshold = os.environ.get("DJANGO_DB_PREPARE_THRESHOLD", "5").strip().lower()
        options["prepare_threshold"] = None if threshold in ("", "none") else int(threshold)
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")) or "postgres",
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "OPTIONS": options,
            "CONN_MAX_AGE": conn_max_age,
        }
    raise ValueError(
        f"DATABASE_URL scheme {parts.scheme!r} is not supported (use postgres:// or sqlite://)"
    )


def channel_layers_from_url(url: str | None) -> dict:
    """``REDIS_URL`` switches the channel layer to channels-redis (several workers share it)."""
    if not url:
        return {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    return {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # channels-redis blocks 5 s in BZPOPMIN (RedisChannelLayer.brpop_timeout) while
                # idle; redis-py's default read timeout is 5 s too, so an idle receive raised
                # TimeoutError every 5 s. The read timeout needs headroom over the block.
                "hosts": [{"address": url, "socket_timeout": 10, "socket_connect_timeout": 2}],
                # A dashboard stream can burst; the history fills any gap past this anyway.
                "capacity": int(os.environ.get("CHANNEL_CAPACITY", "1000")),
                "expiry": 60,
            },
        }
    }


DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Outside development (DJANGO_DEBUG=1) "
            "the secret key must come from the environment: a long random string, "
            "e.g. the output of "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))'."
        )
    SECRET_KEY = "django-insecure-development-only-key"  # DEBUG only (`make demo`)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])

# HTTPS only, behind one switch (README, "Deployment"): cookies never travel in clear, HTTP is
# redirected, and browsers remember for DJANGO_HSTS_SECONDS (a year; includeSubDomains and
# preload: every subdomain must serve HTTPS too; try with a small value first).
SECURE = env_bool("DJANGO_SECURE", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE
SECURE_SSL_REDIRECT = SECURE
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", "31536000")) if SECURE else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_PRELOAD = SECURE
# Reverse proxies in front (TLS termination, load balancer): trust the scheme they forward and
# the client address in X-Forwarded-For, as many hops deep as there are proxies (login
# throttling counts failures per client address; without this every client would share the
# proxy's). Never set it without a proxy that overwrites these headers.
PROXY_COUNT = int(os.environ.get("DJANGO_PROXY_COUNT", "0"))
if PROXY_COUNT:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    AXES_IPWARE_PROXY_COUNT = PROXY_COUNT
    AXES_IPWARE_META_PRECEDENCE_ORDER = ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    "strawberry_django",
    "rules",
    "django_steps",
    "graphql_api",
    "claims",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # last, as django-axes asks: turns a lockout flagged during authentication into its 429 page
    # (the GraphQL `login` mutation answers TOO_MANY_ATTEMPTS itself and clears the flag)
    "axes.middleware.AxesMiddleware",
]

# Login throttling (django-axes): after DJANGO_LOGIN_FAILURE_LIMIT failed logins to one account from
# one client address, logins to it from there (admin, login page, GraphQL `login`) are refused for
# DJANGO_LOGIN_COOLOFF_MINUTES, and each failure meanwhile restarts the wait. Reset early with
# `manage.py axes_reset_ip ADDRESS` (or `axes_reset`). AxesStandaloneBackend goes first: it
# refuses a locked-out client before any password is hashed. django-rules answers the object
# permissions (claims/rules.py), ModelBackend the stored ones.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "rules.permissions.ObjectPermissionBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("DJANGO_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("DJANGO_LOGIN_COOLOFF_MINUTES", "15")))
# The username and the address together (django-axes' combination): failures against one account
# from one address lock that account out from there, not everyone behind the same NAT or proxy.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]

ROOT_URLCONF = "demo.urls"
ASGI_APPLICATION = "demo.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "demo" / "templates"],  # the dashboard and login pages
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {"default": database_from_url(os.environ.get("DATABASE_URL"))}
CHANNEL_LAYERS = channel_layers_from_url(os.environ.get("REDIS_URL"))

# Deadlines on Celery (`celery -A demo worker --beat`, the `celery` extra; `make demo` runs
# `manage.py steps_worker` instead): Redis as broker. The schedule is in demo/celery.py.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL")
CELERY_TASK_IGNORE_RESULT = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = []
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [
    BASE_DIR / "demo" / "static"
]  # dashboard assets, vendored graphql-ws and mermaid

# django-steps engine settings. Instances are visible to who may view their object; claims are
# viewed per object (their owner), so the default rule asks claims/visibility.py which.
DJANGO_STEPS = {
    "VISIBLE_OBJECTS": {"claims.claim": "claims.visibility.visible_claims"},
}

# django-steps GraphQL settings (see README, "Configuration").
DJANGO_STEPS_GRAPHQL = {
    "GRAPHIQL": env_bool("GRAPHQL_GRAPHIQL", DEBUG),
    "INTROSPECTION": env_bool("GRAPHQL_INTROSPECTION", DEBUG),
    "ALLOWED_ORIGINS": env_list("GRAPHQL_ALLOWED_ORIGINS", []),
    "MAX_PAGE_SIZE": int(os.environ.get("GRAPHQL_MAX_PAGE_SIZE", "100")),
    "MAX_COST": int(os.environ.get("GRAPHQL_MAX_COST", "20000")),
    "WEBSOCKET_MAX_CONNECTIONS_PER_USER": int(
        os.environ.get("GRAPHQL_WS_MAX_CONNECTIONS_PER_USER", "10")
    ),
}

# strawberry-django clamps window-paged lists to this: one above our largest page, so a full
# nested page can tell whether another follows (checked by django_steps.W007).
STRAWBERRY_DJANGO = {"PAGINATION_MAX_LIMIT": DJANGO_STEPS_GRAPHQL["MAX_PAGE_SIZE"] + 1}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django_steps": {
            "handlers": ["console"],
            "level": os.environ.get("DJANGO_STEPS_LOG_LEVEL", "INFO"),
        },
        "graphql_api": {
            "handlers": ["console"],
            "level": os.environ.get("DJANGO_STEPS_LOG_LEVEL", "INFO"),
        },
    },
}
