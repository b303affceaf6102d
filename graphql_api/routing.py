"""One ASGI application for the project: HTTP through Django, WebSockets to GraphQL.

* HTTP (``/graphql/`` and everything else) goes through Django's own ASGI handler, so the
  session, CSRF and authentication middleware apply exactly as under WSGI.
* WebSockets on ``/graphql/`` go to strawberry's ``GraphQLWSConsumer`` (both
  ``graphql-transport-ws`` and the legacy ``graphql-ws``), behind an ``Origin`` check and
  Channels' ``AuthMiddlewareStack`` (the same session cookie as HTTP identifies the user).

A project's ``asgi.py``::

    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

    from graphql_api.routing import get_application  # imports no model: safe before setup

    application = get_application("mysite.schema:schema")

:func:`get_application` sets Django up (``get_asgi_application()``) *before* it imports the
schema, so a schema given as a dotted path or a callable (see :mod:`graphql_api.schemas`) may
import models freely; importing the host's schema module at the top of ``asgi.py`` instead would
raise ``AppRegistryNotReady``. Without a schema it serves django-steps' own.

The origin check accepts browsers on a host of ``ALLOWED_HOSTS`` (as Channels'
``AllowedHostsOriginValidator``) or on an origin listed in
``DJANGO_STEPS_GRAPHQL["ALLOWED_ORIGINS"]`` (a SPA served elsewhere, e.g.
``"https://app.example.com"``; ``"*"`` allows any). A handshake without ``Origin`` comes from a
non-browser client, which cannot carry a victim's cookies across sites, and is accepted.

Serve it with ``daphne mysite.asgi:application`` or ``uvicorn mysite.asgi:application``; uvicorn
needs a WebSocket implementation, which ``uvicorn[standard]`` (the ``server`` extra) brings. In
development, ``manage.py runserver`` serves it when ``"daphne"`` is the first of
``INSTALLED_APPS`` (``manage.py check`` warns otherwise).
"""

from __future__ import annotations

import asyncio
import logging

from channels.exceptions import StopConsumer
from channels.layers import get_channel_layer
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import OriginValidator
from channels.utils import await_many_dispatch
from django.conf import settings
from django.core.asgi import get_asgi_application
from django.urls import re_path
from strawberry.channels import GraphQLWSConsumer

from .schemas import SchemaSpec, load_schema

logger = logging.getLogger("graphql_api.routing")

__all__ = ["GraphQLOriginValidator", "WorkflowGraphQLWSConsumer", "get_application", "websocket_application"]


def _graphql_settings() -> dict:
    return getattr(settings, "DJANGO_STEPS_GRAPHQL", {}) or {}


class WorkflowGraphQLWSConsumer(GraphQLWSConsumer):
    """strawberry's consumer, kept alive through channel-layer outages.

    The workflow events do not use the socket's own channel (each process has one
    :class:`~graphql_api.streams.EventHub`), but strawberry's ``channel_listen`` does, so the
    channel stays. Channels' consumer dies when the layer's ``receive`` raises (Redis down),
    closing the socket; this one logs and retries with a short back-off.
    """

    async def __call__(self, scope, receive, send):
        # AsyncConsumer.__call__, with a receive from the channel layer that survives errors.
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.base_send = send
        callables = [receive]
        if self.channel_layer is not None:
            self.channel_name = await self.channel_layer.new_channel()
            self.channel_receive = self._receive_from_layer
            callables.append(self._receive_from_layer)
        try:
            await await_many_dispatch(callables, self.dispatch)
        except StopConsumer:
            pass

    async def _receive_from_layer(self) -> dict:
        delay = 0.1
        while True:
            try:
                return await self.channel_layer.receive(self.channel_name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.debug("Channel layer receive failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)


class GraphQLOriginValidator(OriginValidator):
    """Origins matching ``ALLOWED_HOSTS`` or ``ALLOWED_ORIGINS``; no ``Origin`` (not a browser) passes."""

    def valid_origin(self, parsed_origin):
        if parsed_origin is None:
            return True
        return self.validate_origin(parsed_origin)


def allowed_origins() -> list[str]:
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = ["localhost", "127.0.0.1", "[::1]"]
    return hosts + list(_graphql_settings().get("ALLOWED_ORIGINS", []))


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
        keep_alive_interval=_graphql_settings().get("WEBSOCKET_KEEP_ALIVE_SECONDS", 15),
    )
    return GraphQLOriginValidator(AuthMiddlewareStack(URLRouter([re_path(path, consumer)])), allowed_origins())


def get_application(schema: SchemaSpec = None, *, path: str = r"^graphql/?$"):
    """The project's ASGI application: Django for HTTP, ``schema`` (ours by default) over
    WebSocket on ``path`` (a regular expression matching the GraphQL view's URL path)."""
    django_asgi = get_asgi_application()  # sets Django up before anything imports models
    return ProtocolTypeRouter({"http": django_asgi, "websocket": websocket_application(schema, path=path)})
