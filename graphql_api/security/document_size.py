"""The size of a GraphQL document, checked before anything parses or keeps it.

Comments and whitespace are not tokens: below the body limit, ``MAX_TOKENS`` let documents of
megabytes through, and each distinct document is kept by strawberry's parser and validation
caches (``CACHED_OPERATIONS`` entries each, whatever their size) and, registered over APQ, by
the persisted-query cache. Bounding each document bounds what those caches hold:
``DJANGO_STEPS_GRAPHQL["MAX_DOCUMENT_BYTES"]`` (UTF-8 bytes) for logged-in callers,
``ANONYMOUS_MAX_DOCUMENT_BYTES`` for the others. Over it: ``REQUEST_TOO_LARGE`` (HTTP 413; on a
WebSocket, the operation's ``error``). A false value turns a limit off.
"""

from __future__ import annotations

from typing import Any

from graphql_api.security.error_codes import TransportCode
from graphql_api.security.persisted import PersistedQueryError
from graphql_api.settings import graphql_setting

__all__ = ["DocumentTooLarge", "check_document_size"]


class DocumentTooLarge(PersistedQueryError):
    """A document over its caller's limit (a refusal like the persisted-query ones: each
    transport answers them the same way)."""


def _limits(user: Any) -> tuple[int | None, bool]:
    """The caller's limit (None: none), and whether it is the lower one of anonymous callers."""
    limit = int(graphql_setting("MAX_DOCUMENT_BYTES") or 0) or None
    if not getattr(user, "is_authenticated", False):
        anonymous = int(graphql_setting("ANONYMOUS_MAX_DOCUMENT_BYTES") or 0) or None
        if anonymous and (limit is None or anonymous < limit):
            return anonymous, True
    return limit, False


def check_document_size(query: Any, user: Any) -> None:
    """Raises :class:`DocumentTooLarge` when ``query`` (a request's document; anything else is
    left to the other checks) is longer than ``user`` may send."""
    limit, anonymous = _limits(user)
    if limit is None or not isinstance(query, str) or len(query) * 4 <= limit:
        return  # a character is at most 4 bytes of UTF-8: no need to count
    if len(query) <= limit and len(query.encode("utf-8", "surrogatepass")) <= limit:
        return
    hint = "log in first, or send a shorter one" if anonymous else "send a shorter one"
    raise DocumentTooLarge(
        TransportCode.REQUEST_TOO_LARGE,
        f"The GraphQL document is over the limit of {limit:,} bytes (comments and whitespace "
        f"count): {hint}.",
        413,
    )
