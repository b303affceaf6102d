"""A whole WebSocket text frame written straight to a uvicorn connection's transport, for the
hub's direct fan-out (:mod:`graphql_api.live.direct`).

Going through the ASGI ``send`` costs each socket a coroutine chain (uvicorn's ``asgi_send``,
the ``websockets`` protocol's ``send``, its frame object, its back-pressure wait) to produce
bytes that only differ from socket to socket by the operation id. Below uvicorn's protocol
the same frame is one header and one ``transport.write``. That is what uvicorn itself writes
when nothing is in the way, so :func:`frame_writer` offers it only for its two ``websockets``
implementations (``--ws websockets-sansio``, the default since uvicorn 0.50, and the legacy
``--ws websockets``), recognised by their exact classes, and each write checks first that the
protocol would send at once: the handshake done, the connection open and not closing, no
extension (permessage-deflate compresses frames) and the transport not paused (back-pressure).
Otherwise the writer declines and the frame goes through ``send`` as before. Any other server
(daphne, wsproto, a subclass) gets no writer.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

__all__ = ["frame_writer", "text_frame"]

_SANSIO = "uvicorn.protocols.websockets.websockets_sansio_impl"
_LEGACY = "uvicorn.protocols.websockets.websockets_impl"


def text_frame(data: bytes) -> bytes:
    """One final, unmasked text frame (RFC 6455 section 5.2: a server never masks)."""
    size = len(data)
    if size < 126:
        return bytes((0x81, size)) + data
    if size < 65536:
        return b"\x81\x7e" + size.to_bytes(2, "big") + data
    return b"\x81\x7f" + size.to_bytes(8, "big") + data


def frame_writer(send: Any) -> Callable[[str], bool] | None:
    """For the ASGI ``send`` of a uvicorn ``websockets`` connection: a function writing one
    text message now as a whole frame (True), or declining (False: send it the usual way).
    None for any other ``send``."""
    protocol = getattr(send, "__self__", None)
    function = getattr(send, "__func__", None)
    if protocol is None or function is None:
        return None
    from websockets.protocol import State

    opened = State.OPEN
    sansio = sys.modules.get(_SANSIO)
    if sansio is not None and type(protocol) is sansio.WebSocketsSansIOProtocol:
        if function is not sansio.WebSocketsSansIOProtocol.send:
            return None
        connection = getattr(protocol, "conn", None)
        if connection is None:
            return None

        def ready_sansio() -> bool:
            return not (
                not protocol.writable.is_set()
                or protocol.disconnected
                or protocol.close_sent
                or not protocol.handshake_complete
                or protocol.initial_response is not None
                or connection.state is not opened
                or connection.extensions
                or protocol.transport.is_closing()
            )

        return _writer(protocol, ready_sansio)
    legacy = sys.modules.get(_LEGACY)
    if legacy is not None and type(protocol) is legacy.WebSocketProtocol:
        if function is not legacy.WebSocketProtocol.asgi_send:
            return None

        def ready_legacy() -> bool:
            return not (
                protocol._paused
                or protocol.state is not opened
                or protocol.closed_event.is_set()
                or not protocol.handshake_completed_event.is_set()
                or protocol.initial_response is not None
                or protocol.extensions
                or protocol._fragmented_message_waiter is not None
                or protocol.transfer_data_task.done()
                or protocol.transport.is_closing()
            )

        return _writer(protocol, ready_legacy)
    return None


def _writer(protocol: Any, ready: Callable[[], bool]) -> Callable[[str], bool] | None:
    """The writer, once ``ready`` could be asked: these are uvicorn's and websockets' own
    attributes, so a version that renamed one gets no writer (``send`` as before), not an
    error at the first event."""
    try:
        ready()
    except AttributeError:
        return None

    def write(text: str) -> bool:
        if not ready():
            return False
        protocol.transport.write(text_frame(text.encode()))
        return True

    return write
