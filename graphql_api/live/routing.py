"""One ASGI application for the project: HTTP through Django, WebSockets to GraphQL.

* HTTP (``/graphql/`` and everything else) goes through Django's own ASGI handler, so the
  session, CSRF and authentication middleware apply exactly as under WSGI.
* WebSockets on ``/graphql/`` go to strawberry's ``GraphQLWSConsumer`` (both
  ``graphql-transport-ws`` and the legacy ``graphql-ws``), behind an ``Origin`` check and
  Channels' ``AuthMiddlewareStack`` (the same session cookie as HTTP identifies the user).

A project's ``asgi.py``::

    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

    from graphql_api.live.routing import get_application  # imports no model: safe before setup

    application = get_application("mysite.schema:schema")

:func:`get_application` sets Django up (``get_asgi_application()``) *before* it imports the
schema, so a schema given as a dotted path or a callable (see :mod:`graphql_api.schemas`) may
import models freely; importing the host's schema module at the top of ``asgi.py`` instead would
raise ``AppRegistryNotReady``. Without a schema it serves django-steps' own.

The pieces: :mod:`graphql_api.live.origins` (the origin check, :class:`GraphQLOriginValidator`),
:mod:`graphql_api.live.socket` (the consumer; the operations and sockets limits),
:mod:`graphql_api.live.handlers` (the protocols: malformed messages, every operation as of now)
and :mod:`graphql_api.live.adapter` (messages too large to send, slow readers).

Serve it with ``daphne mysite.asgi:application`` or ``uvicorn mysite.asgi:application``; uvicorn
needs a WebSocket implementation, which ``uvicorn[standard]`` (the ``server`` extra) brings. In
development, ``manage.py runserver`` serves it when ``"daphne"`` is the first of
``INSTALLED_APPS`` (``manage.py check`` warns otherwise).
"""

from __future__ import annotations

import logging

from channels.routing import ProtocolTypeRouter, URLRouter
from django.core.asgi import get_asgi_application
from django.urls import re_path

# Besides __all__, the names this module had before the split stay importable from it.
from graphql_api.live.adapter import (  # noqa: F401
    CONSUMER_TOO_SLOW_CLOSE_CODE,
    ConsumerTooSlow,
    MessageTooLarge,
    SizeLimitedWebSocketAdapter,
)
from graphql_api.live.handlers import message_problem  # noqa: F401
from graphql_api.live.origins import (  # noqa: F401
    GraphQLOriginValidator,
    TrustedOrigins,
    origin_allowed,
)
from graphql_api.live.socket import (  # noqa: F401
    WorkflowGraphQLWSConsumer,
    being_cancelled,
    dispatch_promptly,
)
from graphql_api.schemas import SchemaSpec, load_schema
from graphql_api.settings import graphql_setting

logger = logging.getLogger("graphql_api.routing")

__all__ = [
    "CONSUMER_TOO_SLOW_CLOSE_CODE",
    "ConsumerTooSlow",
    "GraphQLOriginValidator",
    "MessageTooLarge",
    "WorkflowGraphQLWSConsumer",
    "get_application",
    "websocket_application",
]


def websocket_application(schema: SchemaSpec = None, *, path: str = r"^graphql/?$"):
    """The WebSocket side alone: origin check → session auth → GraphQL consumer for ``schema``
    on the URL path matching the regular expression ``path``. Needs Django set up."""
    from channels.auth import AuthMiddlewareStack  # imports auth models: needs the app registry

    consumer = WorkflowGraphQLWSConsumer.as_asgi(
        schema=load_schema(schema),
        # The origin was checked above with the project's policy (strawberry's own check would
        # refuse a SPA origin that is allowed here).
        allowed_origins=["*"],
        keep_alive=True,
        keep_alive_interval=graphql_setting("WEBSOCKET_KEEP_ALIVE_SECONDS"),
    )
    return GraphQLOriginValidator(AuthMiddlewareStack(URLRouter([re_path(path, consumer)])))


def get_application(schema: SchemaSpec = None, *, path: str = r"^graphql/?$"):
    """The project's ASGI application: Django for HTTP, ``schema`` (ours by default) over
    WebSocket on ``path`` (a regular expression matching the GraphQL view's URL path)."""
    django_asgi = get_asgi_application()  # sets Django up before anything imports models
    return ProtocolTypeRouter(
        {"http": django_asgi, "websocket": websocket_application(schema, path=path)}
    )
