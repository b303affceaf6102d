"""Persisted queries: Apollo's automatic persisted queries (APQ) on HTTP (GET and POST) and on
both WebSocket protocols, and a production switch that runs registered documents only.

``DJANGO_STEPS_GRAPHQL["PERSISTED_QUERIES"]``:

* ``"apq"`` (default): the APQ protocol. A hash without ``query`` that the server knows runs
  that document; one it does not know is ``PERSISTED_QUERY_NOT_FOUND`` (the client then sends
  hash and query once); hash and query together are checked (the hash must be the query's
  SHA-256) and the document kept in Django's cache (``PERSISTED_QUERIES_CACHE``) under its
  hash. A cache entry is keyed by the hash of its own text, so no client can make another's
  hash run something else; it is kept ``PERSISTED_QUERIES_SECONDS`` (a day), then a client
  sends its query once again.
* ``"only"``: as ``"apq"``, and every document must be registered: each of its operations, with
  the fragments it uses, printed the way graphql-core prints it (so formatting, comments and
  the order of fragments do not matter) must be in the file ``PERSISTED_QUERIES_DOCUMENTS``,
  written by ``manage.py register_documents``. Anything else is ``PERSISTED_QUERY_NOT_IN_LIST``
  before it is validated.
* ``None``: off. A request's ``extensions.persistedQuery`` is ignored when it carries its
  ``query``; without it, ``PERSISTED_QUERY_NOT_SUPPORTED`` (Apollo's link then stops hashing).

Why a file for the registered documents: they belong to a release of the clients, not to the
data — the file is reviewed, versioned and deployed with the code like a migration, identical on
every server, and survives cache flushes; ``graphql_api`` holds no model (no table to migrate).
Each process reads it once and again when it changes (its modification time).
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    OperationDefinitionNode,
    parse,
    print_ast,
    visit,
)
from graphql.language import Visitor

from graphql_api.security.error_codes import TransportCode
from graphql_api.settings import graphql_setting

__all__ = [
    "MODES",
    "PersistedQueryError",
    "documents_path",
    "operation_hashes",
    "operation_texts",
    "persisted_message",
    "read_documents",
    "resolve",
    "sha256_of",
    "write_documents",
]

MODES = (None, "apq", "only")
_HASH = re.compile(r"^[0-9a-f]{64}$")
_CACHE_KEY = "django_steps:persisted-query:{}"
_FORMAT = 1  # of the documents file


class PersistedQueryError(Exception):
    """Raised when a request's persisted query cannot run (``code``; HTTP ``status``)."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status

    @property
    def formatted(self) -> dict[str, Any]:
        return {"message": self.message, "extensions": {"code": self.code}}


def sha256_of(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _mode() -> str | None:
    mode = graphql_setting("PERSISTED_QUERIES")
    if mode not in MODES:
        raise ImproperlyConfigured(
            'DJANGO_STEPS_GRAPHQL["PERSISTED_QUERIES"]: None, "apq" or "only".'
        )
    return mode


def _requested_hash(extensions: Any) -> str | None:
    persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
    if persisted is None:
        return None
    if not isinstance(persisted, dict):
        persisted = {}
    sha = persisted.get("sha256Hash")
    if persisted.get("version") != 1 or not isinstance(sha, str) or not _HASH.match(sha):
        raise PersistedQueryError(
            TransportCode.BAD_REQUEST,
            "`extensions.persistedQuery` must be `{version: 1, sha256Hash: <64 lowercase hex "
            "digits>}`.",
            400,
        )
    return sha


def resolve(query: Any, extensions: Any) -> Any:
    """The document to run for a request's ``query`` and ``extensions`` (the query itself when
    nothing is persisted). Raises :class:`PersistedQueryError`."""
    mode = _mode()
    sha = _requested_hash(extensions)
    if sha is None or mode is None:
        if query is None and sha is not None:
            raise PersistedQueryError(
                TransportCode.PERSISTED_QUERY_NOT_SUPPORTED, "PersistedQueryNotSupported", 200
            )
        if mode == "only" and isinstance(query, str):
            _require_registered(query)
        return query
    cache = caches[graphql_setting("PERSISTED_QUERIES_CACHE")]
    if query is None:
        query = cache.get(_CACHE_KEY.format(sha))
        if query is None and mode == "only":
            query = read_documents().get(sha)
        if query is None:
            raise PersistedQueryError(
                TransportCode.PERSISTED_QUERY_NOT_FOUND, "PersistedQueryNotFound", 200
            )
        if mode == "only":
            _require_registered(query)  # the list may have changed since it was kept
        return query
    if not isinstance(query, str) or sha256_of(query) != sha:
        raise PersistedQueryError(
            TransportCode.BAD_REQUEST,
            "`extensions.persistedQuery.sha256Hash` is not the SHA-256 of `query`.",
            400,
        )
    if mode == "only":
        _require_registered(query)
    if _parses(query):  # kept only once it is a document (validation comes next, as always)
        cache.set(_CACHE_KEY.format(sha), query, graphql_setting("PERSISTED_QUERIES_SECONDS"))
    return query


def _parses(query: str) -> bool:
    try:
        parse(query, no_location=True, max_tokens=int(graphql_setting("MAX_TOKENS")))
    except GraphQLError:
        return False
    return True


def persisted_message(message: Any, start: str) -> bool:
    """Whether ``message`` (of a GraphQL socket) is an operation whose document may have to be
    resolved by :func:`resolve` (``start``: the protocol's ``subscribe``/``start``)."""
    if not isinstance(message, dict) or message.get("type") != start:
        return False
    payload = message.get("payload")
    if not isinstance(payload, dict) or not isinstance(message.get("id"), str):
        return False  # malformed: the handler's checks answer it
    extensions = payload.get("extensions")
    return _mode() == "only" or (isinstance(extensions, dict) and "persistedQuery" in extensions)


# ----------------------------------------------------------------------- registered documents


def operation_texts(document: DocumentNode) -> list[tuple[OperationDefinitionNode, str]]:
    """Each operation of ``document`` and its text: the operation and the fragments it uses
    (sorted by name), printed by graphql-core — one text whatever the formatting."""
    fragments = {
        node.name.value: node
        for node in document.definitions
        if isinstance(node, FragmentDefinitionNode)
    }
    texts = []
    for node in document.definitions:
        if not isinstance(node, OperationDefinitionNode):
            continue
        used = sorted(_fragments_used(node, fragments))
        text = print_ast(DocumentNode(definitions=(node, *(fragments[name] for name in used))))
        texts.append((node, text))
    return texts


def operation_hashes(document: DocumentNode) -> dict[str, str]:
    """The texts of :func:`operation_texts` by their SHA-256."""
    return {sha256_of(text): text for _node, text in operation_texts(document)}


class _Spreads(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def enter_fragment_spread(self, node: FragmentSpreadNode, *_: Any) -> None:
        self.names.append(node.name.value)


def _fragments_used(node: Any, fragments: dict[str, FragmentDefinitionNode]) -> set[str]:
    """The fragments ``node`` spreads, directly or through other fragments."""
    seen: set[str] = set()
    pending = [node]
    while pending:
        spreads = _Spreads()
        visit(pending.pop(), spreads)
        for name in spreads.names:
            if name not in seen and name in fragments:
                seen.add(name)
                pending.append(fragments[name])
    return seen


# Keyed by whole documents: at most 256 of at most MAX_DOCUMENT_BYTES each (document_size.py).
@lru_cache(maxsize=256)
def _registered(query: str, documents_version: tuple) -> bool:
    try:
        document = parse(query, no_location=True, max_tokens=int(graphql_setting("MAX_TOKENS")))
    except GraphQLError:
        return False
    hashes = operation_hashes(document)
    registered = read_documents()
    return bool(hashes) and all(sha in registered for sha in hashes)


def _require_registered(query: str) -> None:
    if not _registered(query, _version()):
        raise PersistedQueryError(
            TransportCode.PERSISTED_QUERY_NOT_IN_LIST,
            "This server runs registered documents only, and this is none of them.",
            400,
        )


def documents_path() -> Path:
    """Where the registered documents are kept (``PERSISTED_QUERIES_DOCUMENTS``)."""
    path = Path(graphql_setting("PERSISTED_QUERIES_DOCUMENTS"))
    base = getattr(settings, "BASE_DIR", None)
    return path if path.is_absolute() or base is None else Path(base) / path


def _version() -> tuple:
    path = documents_path()
    try:
        stat = path.stat()
    except OSError:
        return (str(path), None)
    return (str(path), stat.st_mtime_ns, stat.st_size)


_loaded: dict[tuple, dict[str, str]] = {}


def read_documents() -> dict[str, str]:
    """The registered documents (operation text by its SHA-256); none without the file."""
    version = _version()
    documents = _loaded.get(version)
    if documents is None:
        documents = {}
        if version[1] is not None:
            data = json.loads(documents_path().read_text(encoding="utf-8"))
            documents = dict(data.get("operations") or {})
        _loaded.clear()
        _loaded[version] = documents
    return documents


def write_documents(operations: dict[str, str]) -> Path:
    """Write the registered documents (the file :func:`read_documents` reads)."""
    path = documents_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"format": _FORMAT, "operations": dict(sorted(operations.items()))}
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
