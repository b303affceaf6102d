"""``manage.py check`` tells a project what it is missing to serve the API, and how to fix it."""

from __future__ import annotations

import io

import pytest
from django.core.checks import run_checks
from django.core.management import call_command

VARIANTS = "tests.checks.asgi_variants"


def ids() -> list[str]:
    messages = run_checks(tags=["django_steps"])
    for message in messages:
        assert message.hint, message  # every message says the fix
    return sorted(m.id for m in messages)


@pytest.fixture
def clean(settings):
    """The test settings with DEBUG on (as in development) and GraphiQL following it."""
    settings.DEBUG = True
    settings.DJANGO_STEPS_GRAPHQL = {
        k: v for k, v in settings.DJANGO_STEPS_GRAPHQL.items() if k != "GRAPHIQL"
    }
    settings.ASGI_APPLICATION = f"{VARIANTS}.good"
    assert ids() == []
    return settings


def test_the_demo_settings_pass(clean):
    out = io.StringIO()
    call_command("check", stdout=out)
    assert "no issues" in out.getvalue()


@pytest.mark.parametrize(
    "app",
    [
        "django.contrib.contenttypes",
        "django.contrib.auth",
        "django.contrib.sessions",
        "channels",
        "strawberry_django",
        "django_steps",
    ],
)
def test_each_required_app(clean, app):
    clean.INSTALLED_APPS = [a for a in clean.INSTALLED_APPS if a != app]
    messages = [m for m in run_checks(tags=["django_steps"]) if m.id == "django_steps.E001"]
    assert len(messages) == 1 and repr(app) in messages[0].msg and repr(app) in messages[0].hint


def test_sessions_app_is_not_needed_with_cookie_sessions(clean):
    clean.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    clean.INSTALLED_APPS = [a for a in clean.INSTALLED_APPS if a != "django.contrib.sessions"]
    assert ids() == []


@pytest.mark.parametrize(
    "middleware",
    [
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ],
)
def test_each_required_middleware(clean, middleware):
    clean.MIDDLEWARE = [m for m in clean.MIDDLEWARE if m != middleware]
    assert "django_steps.E002" in ids()


def test_middleware_order(clean):
    session, auth = (
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    )
    rest = [m for m in clean.MIDDLEWARE if m not in (session, auth)]
    clean.MIDDLEWARE = [auth, session, *rest]
    assert ids() == ["django_steps.E002"]


def test_csrf_middleware_is_not_required(clean):
    clean.MIDDLEWARE = [
        m for m in clean.MIDDLEWARE if m != "django.middleware.csrf.CsrfViewMiddleware"
    ]
    assert ids() == []


def test_no_channel_layer(clean):
    del clean.CHANNEL_LAYERS
    assert ids() == ["django_steps.W001"]
    clean.CHANNEL_LAYERS = {}
    assert ids() == ["django_steps.W001"]


def test_runserver_without_daphne(clean):
    clean.INSTALLED_APPS = [a for a in clean.INSTALLED_APPS if a != "daphne"]
    assert ids() == ["django_steps.W002"]
    clean.INSTALLED_APPS = [
        *clean.INSTALLED_APPS,
        "daphne",
    ]  # after staticfiles: its runserver wins
    assert ids() == ["django_steps.W002"]
    clean.DEBUG = False  # production does not use runserver
    assert ids() == []


def test_graphiql_with_debug_off(clean):
    clean.DEBUG = False
    assert ids() == []  # the default follows DEBUG
    clean.DJANGO_STEPS_GRAPHQL = {**clean.DJANGO_STEPS_GRAPHQL, "GRAPHIQL": True}
    assert ids() == ["django_steps.W003"]


def test_asgi_application_unset_is_a_warning_so_migrate_still_runs(clean):
    del clean.ASGI_APPLICATION
    assert ids() == ["django_steps.W008"]
    [message] = run_checks(tags=["django_steps"])
    assert not message.is_serious()  # manage.py migrate is not stopped
    assert "get_application()" in message.hint


def test_login_without_django_axes(clean):
    clean.INSTALLED_APPS = [app for app in clean.INSTALLED_APPS if app != "axes"]
    clean.MIDDLEWARE = [m for m in clean.MIDDLEWARE if not m.startswith("axes.")]
    clean.AUTHENTICATION_BACKENDS = [
        b for b in clean.AUTHENTICATION_BACKENDS if not b.startswith("axes.")
    ]
    assert ids() == ["django_steps.W009"]


def test_asgi_application_that_cannot_be_imported(clean):
    clean.ASGI_APPLICATION = "tests.checks.broken_asgi.application"
    [message] = run_checks(tags=["django_steps"])
    assert message.id == "django_steps.E004" and "Apps aren't loaded yet" in message.msg
    assert "get_application('mysite.schema:schema')" in message.hint


def test_asgi_application_without_websocket_routing(clean):
    clean.ASGI_APPLICATION = f"{VARIANTS}.http_only"
    assert ids() == ["django_steps.E005"]


def test_websocket_on_another_path_than_the_view(clean):
    clean.ASGI_APPLICATION = f"{VARIANTS}.elsewhere"
    [message] = run_checks(tags=["django_steps"])
    assert message.id == "django_steps.E005" and "/graphql/" in message.msg
    assert r"path=r'^graphql/?$'" in message.hint


def test_view_under_a_prefix_matches_the_websocket_path(clean, settings):
    clean.ASGI_APPLICATION = f"{VARIANTS}.elsewhere"
    settings.ROOT_URLCONF = "tests.checks.urls_prefixed"
    assert ids() == []


def test_websocket_serving_another_schema_than_http(clean):
    clean.ASGI_APPLICATION = f"{VARIANTS}.other_schema"
    assert ids() == ["django_steps.W004"]


def test_unknown_asgi_wrappers_are_reported_as_unverified(clean):
    clean.ASGI_APPLICATION = f"{VARIANTS}.wrapped"
    assert ids() == ["django_steps.W006"]


def test_no_url_to_the_graphql_view(clean, settings):
    settings.ROOT_URLCONF = "tests.checks.urls_empty"
    assert ids() == ["django_steps.W005"]


def test_a_page_size_strawberry_django_would_clamp(clean):
    clean.STRAWBERRY_DJANGO = {"PAGINATION_MAX_LIMIT": 100}  # strawberry-django's default
    assert ids() == ["django_steps.W007"]
    clean.STRAWBERRY_DJANGO = {"PAGINATION_MAX_LIMIT": None}
    assert ids() == []


@pytest.mark.parametrize(
    ("hosts", "warned"),
    [
        (["redis://127.0.0.1:6379/0"], True),  # redis-py reads with a 5 s timeout by default
        ([{"address": "redis://127.0.0.1:6379/0", "socket_timeout": 5}], True),
        ([{"address": "redis://127.0.0.1:6379/0", "socket_timeout": 10}], False),
        ([{"host": "127.0.0.1", "port": 6379, "socket_timeout": None}], False),
    ],
)
def test_a_redis_channel_layer_whose_read_timeout_equals_its_blocking_receive(clean, hosts, warned):
    """An idle channels-redis receive blocks 5 s in BZPOPMIN: with redis-py's 5 s read timeout it
    failed every 5 s (logged, and the worker's feed marked down)."""
    clean.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": hosts}}
    }
    assert ids() == (["django_steps.W020"] if warned else [])
