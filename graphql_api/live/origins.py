"""The exact-origin check of a WebSocket handshake, with the rules of Django's CSRF origin check.

The origin check (:class:`GraphQLOriginValidator`, in front of the socket that
:func:`graphql_api.live.routing.get_application` serves) follows Django's CSRF origin check exactly:
a browser's handshake is accepted from the socket's own origin (scheme, a host of
``ALLOWED_HOSTS`` and port, as Django's ``request.get_host()`` and ``is_secure()`` read them,
proxy settings included) or from a trusted origin — ``CSRF_TRUSTED_ORIGINS`` and
``DJANGO_STEPS_GRAPHQL["ALLOWED_ORIGINS"]`` (a SPA served elsewhere, e.g.
``"https://app.example.com"``; ``"https://*.example.com"`` for subdomains; ``"*"`` allows any).
So an origin the same POST would be refused for (``CSRF_FAILED``) cannot open the socket either.
A handshake without ``Origin`` comes from a non-browser client, which cannot carry a victim's
cookies across sites, and is accepted.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import DisallowedHost, ImproperlyConfigured
from django.http import HttpRequest
from django.http.request import is_same_domain

from graphql_api.settings import graphql_setting

logger = logging.getLogger("graphql_api.routing")  # the name it always had

__all__ = [
    "GraphQLOriginValidator",
    "TrustedOrigins",
    "origin_allowed",
]


class _Handshake(HttpRequest):
    """A WebSocket handshake seen as the HttpRequest Django's CSRF origin check reads: its
    headers as ``META``, the scheme of the socket (``wss`` is secure), ``SECURE_PROXY_SSL_HEADER``
    and ``USE_X_FORWARDED_HOST`` applied by Django itself (``is_secure()``, ``get_host()``)."""

    def __init__(self, scope: dict) -> None:
        super().__init__()
        self._secure = scope.get("scheme") in ("wss", "https")
        for raw_name, raw_value in scope.get("headers", []):
            name = raw_name.decode("latin1").upper().replace("-", "_")
            key = name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{name}"
            value = raw_value.decode("latin1")
            self.META[key] = f"{self.META[key]},{value}" if key in self.META else value
        server = scope.get("server") or (None, None)
        if server[0] is not None:
            self.META["SERVER_NAME"] = str(server[0])
            self.META["SERVER_PORT"] = str(server[1] if server[1] is not None else "")

    def _get_scheme(self) -> str:
        return "https" if self._secure else "http"


class TrustedOrigins:
    """The origins, besides the handshake's own, whose pages may open the WebSocket:
    ``CSRF_TRUSTED_ORIGINS`` and ``DJANGO_STEPS_GRAPHQL["ALLOWED_ORIGINS"]`` with the rules of
    Django's CSRF check (an exact ``scheme://host[:port]``, or ``scheme://*.domain`` for its
    subdomains); ``"*"`` in ``ALLOWED_ORIGINS`` allows any."""

    def __init__(self, origins: list[str]) -> None:
        self.any = "*" in origins
        self.exact = {origin for origin in origins if "*" not in origin}
        self.subdomains: dict[str, list[str]] = {}
        for origin in origins:
            if origin == "*":
                continue
            parts = urlsplit(origin)
            if not parts.scheme or not parts.netloc:
                raise ImproperlyConfigured(
                    f"WebSocket origin {origin!r} must be an origin: "
                    "scheme, host and port if not the default one, "
                    "e.g. 'https://app.example.com' (CSRF_TRUSTED_ORIGINS, "
                    "DJANGO_STEPS_GRAPHQL['ALLOWED_ORIGINS'])."
                )
            if "*" in origin:
                self.subdomains.setdefault(parts.scheme, []).append(parts.netloc.lstrip("*"))

    @classmethod
    def from_settings(cls) -> TrustedOrigins:
        return cls([*settings.CSRF_TRUSTED_ORIGINS, *(graphql_setting("ALLOWED_ORIGINS") or [])])

    def allow(self, origin: str) -> bool:
        if self.any or origin in self.exact:
            return True
        try:
            parts = urlsplit(origin)
        except ValueError:
            return False
        return any(
            is_same_domain(parts.netloc, host) for host in self.subdomains.get(parts.scheme, ())
        )


def origin_allowed(scope: dict, trusted: TrustedOrigins) -> bool:
    """Whether the WebSocket handshake ``scope`` may go on, by the rules of Django's CSRF origin
    check: no ``Origin`` (not a browser, which cannot carry a victim's cookies across sites),
    the request's own origin (scheme, a host of ``ALLOWED_HOSTS`` and port, exactly), or a
    trusted origin."""
    origins = [value for name, value in scope.get("headers", []) if name == b"origin"]
    if not origins:
        return True
    if len(origins) > 1:
        return False
    try:
        origin = origins[0].decode("ascii")
    except UnicodeDecodeError:
        return False
    request = _Handshake(scope)
    try:
        own = f"{request.scheme}://{request.get_host()}"
    except DisallowedHost:
        own = None
    return origin == own or trusted.allow(origin)


class GraphQLOriginValidator:
    """ASGI middleware refusing a WebSocket handshake from a page on another origin (see
    :func:`origin_allowed`). ``allowed_origins``: the trusted origins; by default
    ``CSRF_TRUSTED_ORIGINS`` and ``ALLOWED_ORIGINS``, read at each handshake."""

    def __init__(self, application, allowed_origins: list[str] | None = None) -> None:
        self.application = application
        self.trusted = None if allowed_origins is None else TrustedOrigins(allowed_origins)
        if self.trusted is None:
            TrustedOrigins.from_settings()  # a malformed setting fails at start, not per socket

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            raise ValueError("GraphQLOriginValidator only serves WebSocket connections")
        trusted = self.trusted or TrustedOrigins.from_settings()
        if origin_allowed(scope, trusted):
            return await self.application(scope, receive, send)
        logger.info("WebSocket handshake refused: its Origin is not this site nor a trusted origin")
        return await _refuse_handshake(scope, receive, send)


async def _refuse_handshake(scope, receive, send) -> None:
    """Close the WebSocket before accepting it (the server answers the handshake with 403), then
    wait for the disconnect, as channels' ``WebsocketDenier`` does, but without a consumer: one
    joins the channel layer (on Redis, a blocking receive on the process's channel) for a socket
    that will never get a message, and a refused page can open handshakes in a loop."""
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.close"})
        elif message["type"] == "websocket.disconnect":
            return
