"""System checks: ``manage.py check`` says what a project is missing to serve the API.

Registered by :class:`graphql_api.apps.GraphqlApiConfig` (tag ``django_steps``). Each message
names the fix.

==========================  ================================================================
``django_steps.E001``       a required app is not in ``INSTALLED_APPS``
``django_steps.E002``       session or authentication middleware missing, or out of order
``django_steps.E004``       ``ASGI_APPLICATION`` cannot be imported
``django_steps.E005``       the ASGI application routes no WebSocket to GraphQL where the
                            GraphQL view is mounted (subscriptions would fail)
``django_steps.W001``       no ``CHANNEL_LAYERS``: subscriptions would poll the database
``django_steps.W002``       ``runserver`` would serve WSGI (no WebSockets): daphne is not the
                            first of ``INSTALLED_APPS`` (checked with ``DEBUG`` on)
``django_steps.W003``       GraphiQL is on while ``DEBUG`` is off
``django_steps.W004``       the WebSocket route serves another schema than the HTTP view
``django_steps.W005``       no URL routes to the GraphQL view
``django_steps.W007``       ``MAX_PAGE_SIZE`` is not below strawberry-django's
                            ``PAGINATION_MAX_LIMIT``
``django_steps.W006``       the ASGI application could not be inspected (wrapped in something
                            these checks do not know): WebSocket routing was not verified
``django_steps.W008``       ``ASGI_APPLICATION`` is not set: HTTP works, subscriptions do not
                            (a warning, so a project adding the apps step by step can still
                            run ``migrate``)
``django_steps.W009``       django-axes is not installed: the ``login`` mutation is not
                            throttled against password guessing
``django_steps.W020``       a channels-redis host's read timeout is not above the layer's
                            5 s BZPOPMIN block: an idle receive fails every 5 s
``django_steps.E006``       ``PERSISTED_QUERIES`` is not None, ``"apq"`` or ``"only"``
``django_steps.W015``       ``PERSISTED_QUERIES`` is ``"only"`` and no document is registered:
                            every request would be refused
==========================  ================================================================

With ``manage.py check --deploy`` (tags ``django_steps`` and ``security``), settings that are
risky in production:

==========================  ================================================================
``django_steps.W010``       introspection is on while ``DEBUG`` is off
``django_steps.W011``       ``ALLOWED_ORIGINS`` holds ``"*"``: any site's page may open the
                            WebSocket with the visitor's session
``django_steps.W012``       ``MAX_COST`` is 0: operations of any size are run
``django_steps.W016``       ``MAX_DOCUMENT_BYTES`` is off: documents of any size are parsed
                            and cached
``django_steps.W013``       django-axes is installed out of order (``AxesMiddleware`` not last
                            in ``MIDDLEWARE``, or its backend not first in
                            ``AUTHENTICATION_BACKENDS``)
``django_steps.W014``       the in-memory channel layer while ``DEBUG`` is off: each worker
                            process has its own, so events from the others arrive late
==========================  ================================================================

CSRF middleware is not required: the GraphQL view runs Django's CSRF check itself (see
:mod:`graphql_api.views`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from channels.routing import ProtocolTypeRouter, URLRouter
from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern, RoutePattern
from django.utils.module_loading import import_string
from strawberry.channels import GraphQLWSConsumer
from strawberry_django.settings import strawberry_django_settings

from graphql_api.security import persisted
from graphql_api.security.extensions import graphql_setting
from graphql_api.views import DjangoStepsGraphQLView

__all__ = [
    "DEPLOY_CHECKS",
    "check_apps_and_middleware",
    "check_asgi",
    "check_channel_layer",
    "check_development_server",
    "check_graphiql",
    "check_login_throttling",
    "check_page_size",
    "check_persisted_queries",
]

TAG = "django_steps"

_SESSIONS = "django.contrib.sessions.middleware.SessionMiddleware"
_AUTH = "django.contrib.auth.middleware.AuthenticationMiddleware"


def _installed() -> list[str]:
    return [config.name for config in apps.get_app_configs()]


def _channel_layers() -> dict:
    return getattr(settings, "CHANNEL_LAYERS", None) or {}


class SettingWarning:
    """A check that gives one warning, the same each time, while ``applies()`` is true: what
    most checks of one setting are, written as its code, condition, message and hint."""

    def __init__(self, code: str, applies: Callable[[], Any], message: str, *, hint: str):
        # a plain class, not a dataclass: Django keeps checks in a set and tags them
        self.code = code
        self.applies = applies
        self.message = message
        self.hint = hint

    def __call__(self, app_configs=None, **kwargs: Any) -> list[CheckMessage]:
        if not self.applies():
            return []
        return [Warning(self.message, hint=self.hint, id=f"{TAG}.{self.code}")]


def _is(path: str, base: str) -> bool:
    """Whether the class at dotted ``path`` is (a subclass of) the one at ``base``."""
    try:
        cls, parent = import_string(path), import_string(base)
    except ImportError:
        return False  # Django (or django-axes) reports it
    return isinstance(cls, type) and issubclass(cls, parent)


def check_apps_and_middleware(app_configs=None, **kwargs: Any) -> list[CheckMessage]:
    installed = _installed()
    required = [
        "django.contrib.contenttypes",
        "django.contrib.auth",
        "channels",
        "strawberry_django",
        "django_steps",
    ]
    if settings.SESSION_ENGINE.startswith(
        "django.contrib.sessions.backends."
    ) and not settings.SESSION_ENGINE.endswith((".cache", ".signed_cookies")):
        required.insert(2, "django.contrib.sessions")  # the session table
    errors: list[CheckMessage] = [
        Error(
            f"{name!r} is not in INSTALLED_APPS; django-steps' GraphQL API needs it.",
            hint=f"Add {name!r} to INSTALLED_APPS (see README, 'Use it in your project').",
            id="django_steps.E001",
        )
        for name in required
        if name not in installed
    ]
    positions = {}
    for index, path in enumerate(settings.MIDDLEWARE):
        for required_path in (_SESSIONS, _AUTH):
            if _is(path, required_path):
                positions.setdefault(required_path, index)
    for path, role in ((_SESSIONS, "log in with a session"), (_AUTH, "know the user")):
        if path not in positions:
            errors.append(
                Error(
                    f"{path.rsplit('.', 1)[1]} is not in MIDDLEWARE: GraphQL requests could not "
                    f"{role}.",
                    hint=f"Add {path!r} to MIDDLEWARE (README, 'Use it in your project').",
                    id="django_steps.E002",
                )
            )
    if len(positions) == 2 and positions[_AUTH] < positions[_SESSIONS]:
        errors.append(
            Error(
                "AuthenticationMiddleware comes before SessionMiddleware in MIDDLEWARE.",
                hint="Move SessionMiddleware above AuthenticationMiddleware.",
                id="django_steps.E002",
            )
        )
    return errors


# django-axes checks its own backend and middleware (axes.W00x)
check_login_throttling = SettingWarning(
    "W009",
    lambda: "axes" not in _installed(),
    "django-axes is not installed: the GraphQL login mutation does not throttle password guessing.",
    hint="Add 'axes' to INSTALLED_APPS, 'axes.middleware.AxesMiddleware' last in "
    "MIDDLEWARE and 'axes.backends.AxesStandaloneBackend' first in "
    "AUTHENTICATION_BACKENDS, with AXES_FAILURE_LIMIT, AXES_COOLOFF_TIME and "
    "AXES_LOCKOUT_PARAMETERS (README, 'Use it in your project', step 3).",
)


check_channel_layer = SettingWarning(
    "W001",
    lambda: "default" not in _channel_layers(),
    "CHANNEL_LAYERS has no 'default' layer: subscriptions would poll the database for new "
    "events instead of being told of them.",
    hint="Set CHANNEL_LAYERS = {'default': {'BACKEND': "
    "'channels_redis.core.RedisChannelLayer', 'CONFIG': {'hosts': [{'address': "
    "'redis://localhost:6379/0', 'socket_timeout': 10}]}}} (the 'redis' extra), or "
    "'channels.layers.InMemoryChannelLayer' for a single process.",
)


#: A read timeout above channels-redis' BZPOPMIN block (``RedisChannelLayer.brpop_timeout``, 5 s).
REDIS_SOCKET_TIMEOUT = 10


def check_redis_read_timeout(app_configs=None, **kwargs: Any) -> list[CheckMessage]:
    """channels-redis blocks ``brpop_timeout`` (5 s) in BZPOPMIN while idle and redis-py reads
    with a 5 s ``socket_timeout`` by default: an idle receive then raises ``TimeoutError`` every
    5 s (logged, and the worker's event feed marked down until it rejoins)."""
    messages: list[CheckMessage] = []
    for alias, layer in _channel_layers().items():
        backend = str(layer.get("BACKEND", ""))
        if backend != "channels_redis.core.RedisChannelLayer":
            continue
        try:
            block = import_string(backend).brpop_timeout
        except ImportError:
            continue
        for host in (layer.get("CONFIG") or {}).get("hosts") or ["redis://localhost:6379"]:
            timeout = host.get("socket_timeout", 5) if isinstance(host, dict) else 5
            if timeout is not None and timeout <= block:
                messages.append(
                    Warning(
                        f"CHANNEL_LAYERS[{alias!r}]: a Redis host's read timeout ({timeout} s) is "
                        f"not above channels-redis' {block} s blocking receive: an idle receive "
                        f"fails every {block} s.",
                        hint="Give each host a longer read timeout, e.g. 'hosts': [{'address': "
                        f"'redis://localhost:6379/0', 'socket_timeout': {REDIS_SOCKET_TIMEOUT}}}].",
                        id="django_steps.W020",
                    )
                )
                break
    return messages


def check_development_server(app_configs=None, **kwargs: Any) -> list[CheckMessage]:
    if not settings.DEBUG:
        return []
    installed = _installed()
    staticfiles = "django.contrib.staticfiles"
    daphne_first = "daphne" in installed and (
        staticfiles not in installed or installed.index("daphne") < installed.index(staticfiles)
    )
    if daphne_first:
        return []
    return [
        Warning(
            "'manage.py runserver' would serve WSGI: WebSocket subscriptions (and GraphiQL's) "
            "would be refused "
            + (
                "(daphne is installed after django.contrib.staticfiles, whose runserver wins)."
                if "daphne" in installed
                else "(daphne is not in INSTALLED_APPS)."
            ),
            hint="Put 'daphne' first in INSTALLED_APPS (the 'server' extra installs it) so "
            "runserver serves ASGI_APPLICATION; or run an ASGI server yourself (uvicorn "
            "mysite.asgi:application --reload) and add 'django_steps.W002' to "
            "SILENCED_SYSTEM_CHECKS.",
            id="django_steps.W002",
        )
    ]


check_graphiql = SettingWarning(
    "W003",
    lambda: not settings.DEBUG and graphql_setting("GRAPHIQL"),
    "GraphiQL is on while DEBUG is off: anyone reaching /graphql/ with a browser gets the IDE.",
    hint="Remove DJANGO_STEPS_GRAPHQL['GRAPHIQL'] (it then follows DEBUG) or set it to "
    "False in production.",
)


def check_page_size(app_configs=None, **kwargs: Any) -> list[CheckMessage]:
    """strawberry-django clamps every window-paged list to its PAGINATION_MAX_LIMIT (100 by
    default). A nested page reads one row more than it returns to know whether another page
    follows: at MAX_PAGE_SIZE or above, a full nested page would say `hasNextPage: false`."""
    limit = strawberry_django_settings()["PAGINATION_MAX_LIMIT"]
    page = int(graphql_setting("MAX_PAGE_SIZE"))
    if limit is None or page < limit:
        return []
    return [
        Warning(
            f"DJANGO_STEPS_GRAPHQL['MAX_PAGE_SIZE'] ({page}) is not below strawberry-django's "
            f"PAGINATION_MAX_LIMIT ({limit}): a full page of a nested connection (history) would "
            "report no next page.",
            hint=f"Set STRAWBERRY_DJANGO = {{'PAGINATION_MAX_LIMIT': {page + 1}}} (or more), or "
            "lower MAX_PAGE_SIZE.",
            id="django_steps.W007",
        )
    ]


# ----------------------------------------------------------------------------------- ASGI


def check_asgi(app_configs=None, **kwargs: Any) -> list[CheckMessage]:
    path = getattr(settings, "ASGI_APPLICATION", None)
    if not path:
        return [
            Warning(
                "ASGI_APPLICATION is not set: GraphQL works over HTTP, but subscriptions need the "
                "ASGI application of graphql_api.live.routing.",
                hint="In mysite/asgi.py: application = get_application() (from "
                "graphql_api.live.routing; with a schema of your own, "
                "get_application('mysite.schema:schema')); in settings: ASGI_APPLICATION = "
                "'mysite.asgi.application' (README, 'Use it in your project', step 5).",
                id="django_steps.W008",
            )
        ]
    try:
        application = import_string(path)
    except Exception as error:  # what the server would hit when it starts
        return [
            Error(
                f"ASGI_APPLICATION {path!r} cannot be imported: {type(error).__name__}: {error}"[
                    :500
                ],
                hint="Fix the import; asgi.py must call get_application() before importing "
                "anything that imports models (pass your schema as a dotted path: "
                "get_application('mysite.schema:schema')).",
                id="django_steps.E004",
            )
        ]

    views = list(_graphql_views(get_resolver().url_patterns, DjangoStepsGraphQLView))
    if not views:
        return [
            Warning(
                "No URL routes to django-steps' GraphQL view.",
                hint="Add path('', include('graphql_api.urls')) to your URLconf, or path('', "
                "include(graphql_urls('mysite.schema:schema'))) for a composed schema.",
                id="django_steps.W005",
            )
        ]
    found, routes = _websocket_routes(application)
    if not found:
        return [
            Warning(
                f"ASGI_APPLICATION {path!r} could not be inspected (no channels ProtocolTypeRouter "
                "found inside): its WebSocket routing to GraphQL was not verified.",
                hint="Build it with graphql_api.live.routing.get_application(), or silence "
                "django_steps.W006 once subscriptions work.",
                id="django_steps.W006",
            )
        ]
    messages: list[CheckMessage] = []
    for url, schema in views:
        if url is None:
            continue  # a URL with converters or a regex: nothing concrete to try
        consumers = [consumer for patterns, consumer in routes if _matches(patterns, url)]
        if not consumers:
            messages.append(
                Error(
                    f"The GraphQL view is at /{url} but ASGI_APPLICATION {path!r} routes no "
                    "WebSocket to a GraphQL consumer there: subscriptions would fail.",
                    hint="In asgi.py: application = get_application(<your schema>, "
                    f"path=r'^{re.escape(url.rstrip('/'))}/?$') (graphql_api.live.routing; path is "
                    "a regular expression of the URL path).",
                    id="django_steps.E005",
                )
            )
        elif not any(
            (getattr(c, "consumer_initkwargs", {}) or {}).get("schema") is schema for c in consumers
        ):
            messages.append(
                Warning(
                    f"The WebSocket at /{url} serves another schema than the GraphQL view there: "
                    "subscriptions and HTTP operations would not see the same API.",
                    hint="Pass the same schema to graphql_urls(...) and get_application(...) (e.g. "
                    "the same dotted path).",
                    id="django_steps.W004",
                )
            )
    return messages


def _graphql_views(
    patterns, view_class, prefix: str | None = ""
) -> Iterator[tuple[str | None, Any]]:
    """(URL path without the leading slash, or None if not concrete; schema) of each GraphQL
    view."""
    for entry in patterns:
        part = _literal(entry.pattern)
        path = None if prefix is None or part is None else prefix + part
        if isinstance(entry, URLResolver):
            yield from _graphql_views(entry.url_patterns, view_class, path)
        elif isinstance(entry, URLPattern):
            cls = getattr(entry.callback, "view_class", None)
            if isinstance(cls, type) and issubclass(cls, view_class):
                yield path, (getattr(entry.callback, "view_initkwargs", {}) or {}).get("schema")


def _literal(pattern: Any) -> str | None:
    """The one path a URL pattern matches, if it matches one literal string."""
    if isinstance(pattern, RoutePattern):
        route = str(pattern._route)
        return None if "<" in route else route
    if isinstance(pattern, RegexPattern):
        regex = str(pattern._regex).removeprefix("^").removesuffix("$").removesuffix(r"\Z")
        if re.search(r"[.^$*+?()\[\]{}|]", re.sub(r"\\\W", "", regex)) or re.search(r"\\\w", regex):
            return None  # not one literal path
        return re.sub(r"\\(\W)", r"\1", regex)
    return None


def _websocket_routes(application: Any) -> tuple[bool, list[tuple[tuple, Any]]]:
    """Whether a channels ProtocolTypeRouter was found, and every (URL patterns, consumer app) of
    a GraphQL WebSocket consumer reachable from its ``websocket`` side."""
    found = False
    routes: list[tuple[tuple, Any]] = []
    seen: set[int] = set()

    def walk(app: Any, patterns: tuple, depth: int = 0) -> None:
        nonlocal found
        if app is None or id(app) in seen or depth > 50:
            return
        seen.add(id(app))
        if isinstance(app, ProtocolTypeRouter):
            found = True
            walk(app.application_mapping.get("websocket"), patterns, depth + 1)
            return
        if isinstance(app, URLRouter):
            for route in app.routes:
                walk(route.callback, (*patterns, route.pattern), depth + 1)
            return
        consumer = getattr(app, "consumer_class", None)
        if isinstance(consumer, type) and issubclass(consumer, GraphQLWSConsumer):
            routes.append((patterns, app))
            return
        for attribute in (
            "inner",
            "application",
            "app",
        ):  # channels middleware, validators, wrappers
            walk(getattr(app, attribute, None), patterns, depth + 1)

    walk(application, ())
    return found, routes


def _matches(patterns: tuple, path: str) -> bool:
    remaining = path
    for pattern in patterns:
        match = pattern.match(remaining)
        if not match:
            return False
        remaining = match[0]
    return True


# ------------------------------------------------------------------------ deployment (--deploy)


check_introspection = SettingWarning(
    "W010",
    lambda: not settings.DEBUG and graphql_setting("INTROSPECTION"),
    "GraphQL introspection is on while DEBUG is off: anyone may read the whole schema, "
    "every type, field and argument, from the production server.",
    hint="Remove DJANGO_STEPS_GRAPHQL['INTROSPECTION'] (it then follows DEBUG); code "
    "generators can read the committed schema.graphql (manage.py export_schema) instead of "
    "the server.",
)


check_allowed_origins = SettingWarning(
    "W011",
    lambda: "*" in (graphql_setting("ALLOWED_ORIGINS") or []),
    "DJANGO_STEPS_GRAPHQL['ALLOWED_ORIGINS'] holds '*': a page on any site may open the "
    "GraphQL WebSocket with a visitor's session cookie and act as them.",
    hint="List the origins of your own front ends instead, e.g. "
    "['https://app.example.com'] (scheme, host and port).",
)


check_max_cost = SettingWarning(
    "W012",
    lambda: not graphql_setting("MAX_COST"),
    "DJANGO_STEPS_GRAPHQL['MAX_COST'] is 0: GraphQL operations are run whatever the number "
    "of objects they could return, so one request can hold a worker and the database for "
    "long.",
    hint="Remove MAX_COST (default 20000) or set the largest cost your clients need "
    "(README, 'Configuration'; the refused operation's extensions.cost tells the figure).",
)


check_max_document_bytes = SettingWarning(
    "W016",
    lambda: not graphql_setting("MAX_DOCUMENT_BYTES"),
    "DJANGO_STEPS_GRAPHQL['MAX_DOCUMENT_BYTES'] is off: documents as large as the request body "
    "are parsed and kept by the parser, validation and persisted-query caches, so a client "
    "sending distinct large documents grows each server process by gigabytes.",
    hint="Remove MAX_DOCUMENT_BYTES (default 65536) or set the size of your largest document.",
)


_AXES_MIDDLEWARE = "axes.middleware.AxesMiddleware"
_AXES_BACKEND = "axes.backends.AxesStandaloneBackend"


def check_axes_order(app_configs=None, **kwargs: Any) -> list[CheckMessage]:
    if "axes" not in _installed():
        return []  # django_steps.W009
    messages: list[CheckMessage] = []
    middleware = list(settings.MIDDLEWARE)
    axes = [i for i, path in enumerate(middleware) if _is(path, _AXES_MIDDLEWARE)]
    if axes and axes[-1] != len(middleware) - 1:
        messages.append(
            Warning(
                "AxesMiddleware is not the last entry of MIDDLEWARE: a middleware after it can "
                "answer a locked-out login before django-axes turns it into its lockout response.",
                hint=f"Move {_AXES_MIDDLEWARE!r} to the end of MIDDLEWARE.",
                id="django_steps.W013",
            )
        )
    backends = list(settings.AUTHENTICATION_BACKENDS)
    if (
        backends
        and not _is(backends[0], _AXES_BACKEND)
        and any(_is(path, _AXES_BACKEND) for path in backends)
    ):
        messages.append(
            Warning(
                "django-axes' backend is not the first of AUTHENTICATION_BACKENDS: a backend "
                "before it logs a locked-out address in with the right password, so guessing is "
                "not stopped.",
                hint=f"Put {_AXES_BACKEND!r} (or your subclass of it) first in "
                "AUTHENTICATION_BACKENDS.",
                id="django_steps.W013",
            )
        )
    return messages


def _in_memory_layer() -> bool:
    backend = (_channel_layers().get("default") or {}).get("BACKEND", "")
    return bool(backend) and _is(backend, "channels.layers.InMemoryChannelLayer")


check_in_memory_layer = SettingWarning(
    "W014",
    lambda: not settings.DEBUG and _in_memory_layer(),
    "CHANNEL_LAYERS uses the in-memory layer while DEBUG is off: each worker process has "
    "its own, so a subscriber hears of changes made through another worker only when it "
    "next reads the history (SUBSCRIPTION_CATCH_UP_SECONDS), seconds late.",
    hint="Use channels-redis (the 'redis' extra; the demo: REDIS_URL=redis://host:6379/0), "
    "or, if you serve from one process only, add 'django_steps.W014' to "
    "SILENCED_SYSTEM_CHECKS.",
)


def check_persisted_queries(app_configs=None, **kwargs: Any) -> list[CheckMessage]:
    mode = graphql_setting("PERSISTED_QUERIES")
    if mode not in persisted.MODES:
        return [
            Error(
                "DJANGO_STEPS_GRAPHQL['PERSISTED_QUERIES'] must be None, 'apq' or 'only'.",
                hint="'apq': Apollo's automatic persisted queries; 'only': those and registered "
                "documents only (manage.py register_documents); None: off.",
                id="django_steps.E006",
            )
        ]
    if mode == "only" and not persisted.read_documents():
        return [
            Warning(
                "PERSISTED_QUERIES is 'only' but no document is registered "
                f"({persisted.documents_path()}): every request would be refused.",
                hint="Run manage.py register_documents with your clients' .graphql files (and "
                "deploy the file it writes), or set PERSISTED_QUERIES_DOCUMENTS to it.",
                id="django_steps.W015",
            )
        ]
    return []


#: Registered with ``deploy=True`` (``manage.py check --deploy``).
DEPLOY_CHECKS = (
    check_introspection,
    check_allowed_origins,
    check_max_cost,
    check_max_document_bytes,
    check_axes_order,
    check_in_memory_layer,
)
