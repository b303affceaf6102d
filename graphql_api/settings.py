"""The settings of the GraphQL API: ``settings.DJANGO_STEPS_GRAPHQL``, its defaults and the one
reader every module uses (:func:`graphql_setting`)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

__all__ = ["DEFAULTS", "graphql_setting"]

DEFAULTS: dict[str, Any] = {
    "GRAPHIQL": None,  # None: follow settings.DEBUG
    "INTROSPECTION": None,  # None: follow settings.DEBUG
    "MAX_DEPTH": 10,
    "MAX_ALIASES": 30,
    "MAX_TOKENS": 5000,
    "MAX_PAGE_SIZE": 100,
    "SUBSCRIPTION_RECHECK_SECONDS": 2.0,
    "MAX_COST": 20_000,
    "MAX_STRING_LENGTH": 100_000,
    "MAX_INPUT_VALUES": 10_000,
    "MAX_INPUT_DEPTH": 32,
    # Anonymous callers' documents (graphql-core's validation of a few hundred fragments costs
    # seconds of CPU): refused at parsing, before any validation rule runs.
    "ANONYMOUS_MAX_TOKENS": 1000,
    "ANONYMOUS_MAX_FRAGMENTS": 10,
    # UTF-8 bytes of one document, checked before it is parsed or kept (parser, validation and
    # persisted-query caches keep whole documents, comments included): see
    # graphql_api/security/document_size.py. A false value turns a limit off.
    "MAX_DOCUMENT_BYTES": 64 * 1024,
    "ANONYMOUS_MAX_DOCUMENT_BYTES": 16 * 1024,
    # Wall-clock seconds a query or mutation may run, and the execution of each event a
    # subscription sends (graphql_api/security/budget.py): then its SQL stops and it answers
    # TIMEOUT, without data. A false value turns the budget off.
    "MAX_SECONDS": 10.0,
    # Bytes of one result message over WebSocket; over it the operation ends with
    # EVENT_TOO_LARGE / RESULT_TOO_LARGE (graphql_api/live/adapter.py). Keep it below the server's
    # frame limit (daphne: 1 MiB). A false value turns the check off.
    "WEBSOCKET_MAX_MESSAGE_SIZE": 512 * 1024,
    # Operations running at once on one WebSocket, and WebSockets open at once per user (per
    # server process): see graphql_api/live/socket.py.
    "WEBSOCKET_MAX_OPERATIONS": 10,
    "WEBSOCKET_MAX_CONNECTIONS_PER_USER": 10,
    # WebSockets open at once without a login, per client address (per server process). Behind
    # a proxy the address is the proxy's unless the ASGI server reads forwarded headers.
    "WEBSOCKET_MAX_ANONYMOUS_PER_ADDRESS": 50,
    # A reader too slow is closed with CONSUMER_TOO_SLOW (graphql_api/live/adapter.py): more than
    # this many bytes sent and not acknowledged by a pong (graphql-transport-ws), or one send
    # blocked this many seconds (servers with back-pressure). A false value turns each off.
    "WEBSOCKET_SEND_WINDOW": 4 * 1024 * 1024,
    "WEBSOCKET_SEND_TIMEOUT": 20.0,
    # Seconds between the server's keep-alive pings on a GraphQL WebSocket.
    "WEBSOCKET_KEEP_ALIVE_SECONDS": 15,
    # Event streams (graphql_api/live/streams.py): seconds between catch-up reads of the history,
    # and between retries while the channel layer is down; events a slow stream may have
    # waiting; most events a replay sends before going live (a false value: no limit).
    "SUBSCRIPTION_CATCH_UP_SECONDS": 5.0,
    "SUBSCRIPTION_RETRY_SECONDS": 0.5,
    "SUBSCRIPTION_BUFFER": 10_000,
    "SUBSCRIPTION_REPLAY_WINDOW": 10_000,
    # Subscription events of one user (per client address when not logged in) executing at once
    # in one server process; the user's further events wait their turn, in order, and their time
    # budget starts with it (graphql_api/live/turns.py). A false value: no limit.
    "SUBSCRIPTION_MAX_EXECUTIONS_PER_USER": 2,
    # `workflowCounts` (graphql_api/live/counts.py): seconds between two pushes at the least.
    "SUBSCRIPTION_COUNTS_SECONDS": 0.5,
    # Persisted queries (graphql_api/security/persisted.py): "apq" (Apollo's automatic
    # persisted queries, kept in the cache below for PERSISTED_QUERIES_SECONDS), "only" (APQ,
    # and only the documents registered with `manage.py register_documents` run) or None (off);
    # the cache alias; the file that holds the registered documents (relative: to BASE_DIR).
    "PERSISTED_QUERIES": "apq",
    "PERSISTED_QUERIES_CACHE": "default",
    "PERSISTED_QUERIES_SECONDS": 86400,
    "PERSISTED_QUERIES_DOCUMENTS": "persisted-documents.json",
}


def graphql_setting(name: str) -> Any:
    """A key of ``settings.DJANGO_STEPS_GRAPHQL``, read at call time (tests may override it)."""
    value = (getattr(settings, "DJANGO_STEPS_GRAPHQL", None) or {}).get(name, DEFAULTS.get(name))
    return settings.DEBUG if value is None and name in ("GRAPHIQL", "INTROSPECTION") else value
