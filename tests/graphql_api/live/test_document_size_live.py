"""A document over its caller's limit (``MAX_DOCUMENT_BYTES``, ``ANONYMOUS_MAX_DOCUMENT_BYTES``)
is refused on both WebSocket protocols before it is parsed or kept, with REQUEST_TOO_LARGE as
the operation's error; the socket goes on. The HTTP side, the APQ registration and the bound on
what the caches keep: tests/graphql_api/security/test_document_size.py."""

from __future__ import annotations

import pytest

from graphql_api.settings import graphql_setting

from .helpers import PROTOCOLS, GraphQLSocket

pytestmark = pytest.mark.django_db(transaction=True)

#: A subscription anyone may start (events of instances the viewer may see).
QUERY = "subscription { workflowInstanceEvents { kind } }"


def error_codes(payload: dict) -> list[str]:
    errors = payload.get("errors") or []
    errors = [errors] if isinstance(errors, dict) else errors  # graphql-ws: one error object
    return [error["extensions"]["code"] for error in errors]


def padded(size: int) -> str:
    return QUERY + " #" + "x" * (size - len(QUERY) - 2)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_document_over_the_limit_is_refused_on_a_websocket(
    application, viewer_session, protocol
):
    anonymous = graphql_setting("ANONYMOUS_MAX_DOCUMENT_BYTES")
    members = graphql_setting("MAX_DOCUMENT_BYTES")
    async with GraphQLSocket(application, protocol=protocol) as ws:
        refused = await ws.result(await ws.subscribe(padded(anonymous + 1)))
        assert error_codes(refused) == ["REQUEST_TOO_LARGE"]
        # within the limit: parsed and run (then refused: subscribing needs a login)
        ran = await ws.result(await ws.subscribe(padded(anonymous)))
        assert error_codes(ran) == ["PERMISSION_DENIED"]
    async with GraphQLSocket(application, protocol=protocol, session_key=viewer_session) as ws:
        running = await ws.subscribe(padded(anonymous + 1))
        assert await ws.nothing_more(running, 0.3)
        refused = await ws.result(await ws.subscribe(padded(members + 1)))
        assert error_codes(refused) == ["REQUEST_TOO_LARGE"]
