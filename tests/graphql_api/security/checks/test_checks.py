"""``manage.py check`` tells a project what it is missing to serve the API, and how to fix it."""

from __future__ import annotations

import io

import pytest
from django.core.checks import run_checks
from django.core.management import call_command

VARIANTS = "tests.graphql_api.security.checks.asgi_variants"


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


def test_persisted_queries_setting_and_registered_documents(clean, tmp_path):
    clean.DJANGO_STEPS_GRAPHQL = {**clean.DJANGO_STEPS_GRAPHQL, "PERSISTED_QUERIES": "always"}
    assert ids() == ["django_steps.E006"]
    clean.DJANGO_STEPS_GRAPHQL = {
        **clean.DJANGO_STEPS_GRAPHQL,
        "PERSISTED_QUERIES": "only",
        "PERSISTED_QUERIES_DOCUMENTS": str(tmp_path / "documents.json"),
    }
    assert ids() == ["django_steps.W015"]
    source = tmp_path / "me.graphql"
    source.write_text("query Me { me { username } }")
    call_command("register_documents", str(source))
    assert ids() == []


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
    clean.ASGI_APPLICATION = "tests.graphql_api.security.checks.broken_asgi.application"
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
    settings.ROOT_URLCONF = "tests.graphql_api.security.checks.urls_prefixed"
    assert ids() == []


def test_websocket_serving_another_schema_than_http(clean):
    clean.ASGI_APPLICATION = f"{VARIANTS}.other_schema"
    assert ids() == ["django_steps.W004"]


def test_unknown_asgi_wrappers_are_reported_as_unverified(clean):
    clean.ASGI_APPLICATION = f"{VARIANTS}.wrapped"
    assert ids() == ["django_steps.W006"]


def test_no_url_to_the_graphql_view(clean, settings):
    settings.ROOT_URLCONF = "tests.graphql_api.security.checks.urls_empty"
    assert ids() == ["django_steps.W005"]


def test_a_page_size_strawberry_django_would_clamp(clean):
    clean.STRAWBERRY_DJANGO = {"PAGINATION_MAX_LIMIT": 100}  # strawberry-django's default
    assert ids() == ["django_steps.W007"]
    clean.STRAWBERRY_DJANGO = {"PAGINATION_MAX_LIMIT": None}
    assert ids() == []


# --------------------------------------------------------------------- manage.py check --deploy


def deploy_ids() -> list[str]:
    messages = run_checks(tags=["django_steps"], include_deployment_checks=True)
    for message in messages:
        assert message.hint, message  # every message says the fix
    assert {m.id for m in messages} == {
        m.id for m in run_checks(tags=["security"], include_deployment_checks=True)
    } & {m.id for m in messages}  # tagged security too: they show with Django's own
    return sorted(m.id for m in messages)


@pytest.fixture
def production(clean):
    """The test settings as deployed: DEBUG off, GraphiQL and introspection following it, a
    Redis channel layer (only named: the checks connect to nothing)."""
    clean.DEBUG = False
    clean.DJANGO_STEPS_GRAPHQL = {
        k: v for k, v in clean.DJANGO_STEPS_GRAPHQL.items() if k != "INTROSPECTION"
    }
    clean.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": "redis://127.0.0.1:6379/0", "socket_timeout": 10}]},
        }
    }
    assert deploy_ids() == []
    return clean


def test_risky_settings_are_reported_only_by_check_deploy(production):
    production.DJANGO_STEPS_GRAPHQL = {**production.DJANGO_STEPS_GRAPHQL, "MAX_COST": 0}
    assert ids() == []
    assert deploy_ids() == ["django_steps.W012"]


def test_introspection_on_with_debug_off(production):
    production.DJANGO_STEPS_GRAPHQL = {**production.DJANGO_STEPS_GRAPHQL, "INTROSPECTION": True}
    assert deploy_ids() == ["django_steps.W010"]
    production.DEBUG = True  # development: introspection is expected
    assert "django_steps.W010" not in deploy_ids()


def test_any_origin_may_open_the_websocket(production):
    graphql = production.DJANGO_STEPS_GRAPHQL
    production.DJANGO_STEPS_GRAPHQL = {**graphql, "ALLOWED_ORIGINS": ["https://app.example.com"]}
    assert deploy_ids() == []
    production.DJANGO_STEPS_GRAPHQL = {**graphql, "ALLOWED_ORIGINS": ["https://a.example", "*"]}
    assert deploy_ids() == ["django_steps.W011"]


def test_no_cost_limit(production):
    production.DJANGO_STEPS_GRAPHQL = {**production.DJANGO_STEPS_GRAPHQL, "MAX_COST": 0}
    [message] = [
        m for m in run_checks(include_deployment_checks=True) if m.id == "django_steps.W012"
    ]
    assert "MAX_COST" in message.msg and "20000" in message.hint


def test_no_document_size_limit(production):
    production.DJANGO_STEPS_GRAPHQL = {
        **production.DJANGO_STEPS_GRAPHQL,
        "MAX_DOCUMENT_BYTES": None,
        "ANONYMOUS_MAX_DOCUMENT_BYTES": None,
    }
    assert ids() == []
    [message] = [
        m for m in run_checks(include_deployment_checks=True) if m.id == "django_steps.W016"
    ]
    assert "MAX_DOCUMENT_BYTES" in message.msg and "65536" in message.hint


def test_axes_middleware_not_last(production):
    axes = "axes.middleware.AxesMiddleware"
    others = [m for m in production.MIDDLEWARE if m != axes]
    production.MIDDLEWARE = [*others[:2], axes, *others[2:]]
    assert deploy_ids() == ["django_steps.W013"]
    production.MIDDLEWARE = [*others, axes]
    assert deploy_ids() == []


def test_axes_backend_not_first(production):
    backends = list(production.AUTHENTICATION_BACKENDS)
    assert backends[0] == "axes.backends.AxesStandaloneBackend"
    production.AUTHENTICATION_BACKENDS = [*backends[1:], backends[0]]
    [message] = [m for m in run_checks(include_deployment_checks=True) if m.id.endswith("W013")]
    assert "AUTHENTICATION_BACKENDS" in message.msg and backends[0] in message.hint


def test_in_memory_channel_layer_with_debug_off(production):
    production.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    assert deploy_ids() == ["django_steps.W014"]
    production.SILENCED_SYSTEM_CHECKS = ["django_steps.W014"]  # one process: the documented way
    out = io.StringIO()
    call_command("check", "--deploy", "--tag", "django_steps", stdout=out)
    assert "no issues (1 silenced)" in out.getvalue()


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
