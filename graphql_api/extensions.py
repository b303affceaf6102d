"""Hardening: query limits, error masking, the introspection switch.

Limits are configurable in ``settings.DJANGO_STEPS_GRAPHQL`` (``MAX_DEPTH``, ``MAX_ALIASES``,
``MAX_TOKENS``); every extension is created per operation (a factory), never shared between
concurrent requests.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from graphql import GraphQLError
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry_django.optimizer import DjangoOptimizerExtension

from .errors import BAD_USER_INPUT, INTERNAL_SERVER_ERROR, UNSTORABLE_STRING, is_unstorable_string_error, should_mask

DEFAULTS: dict[str, Any] = {
    "GRAPHIQL": None,  # None: follow settings.DEBUG
    "INTROSPECTION": None,  # None: follow settings.DEBUG
    "MAX_DEPTH": 10,
    "MAX_ALIASES": 30,
    "MAX_TOKENS": 5000,
    "MAX_PAGE_SIZE": 100,
    "SUBSCRIPTION_RECHECK_SECONDS": 2.0,
}


def graphql_setting(name: str) -> Any:
    """A key of ``settings.DJANGO_STEPS_GRAPHQL``, read at call time (tests may override it)."""
    value = getattr(settings, "DJANGO_STEPS_GRAPHQL", {}).get(name, DEFAULTS.get(name))
    return settings.DEBUG if value is None and name in ("GRAPHIQL", "INTROSPECTION") else value


class IntrospectionSwitch(SchemaExtension):
    """Refuse ``__schema`` / ``__type`` queries unless ``DJANGO_STEPS_GRAPHQL["INTROSPECTION"]``."""

    def on_operation(self) -> Iterator[None]:
        if not graphql_setting("INTROSPECTION"):
            self.execution_context.validation_rules = (
                *self.execution_context.validation_rules,
                NoSchemaIntrospectionCustomRule,
            )
        yield


class MaskUnexpectedErrors(MaskErrors):
    """``MaskErrors`` that first turns strawberry's relay argument errors (negative or too large
    ``first``/``last``, malformed ``after``/``before`` cursors: bare ``ValueError``/``TypeError``
    from strawberry's relay code) into readable ``BAD_USER_INPUT`` errors, then masks whatever
    else is unexpected."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=should_mask)

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return super()._process_errors([_client_error(error) or error for error in errors])

    def _process_result(self, result: object) -> None:
        # MaskErrors checks ``isinstance(result, <runtime Protocol>)``, which costs tens of µs:
        # paid for every event sent to every subscriber. Duck typing does the same job.
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        masked = super().anonymise_error(error)
        masked.extensions = {"code": INTERNAL_SERVER_ERROR}
        return masked


_RELAY_SOURCES = (f"{os.sep}strawberry{os.sep}relay{os.sep}", f"{os.sep}strawberry_django{os.sep}relay{os.sep}")


def _client_error(error: GraphQLError) -> GraphQLError | None:
    """A readable BAD_USER_INPUT error for failures caused by what the client sent, else None."""
    if is_unstorable_string_error(error.original_error):
        return _bad_input(error, UNSTORABLE_STRING)
    return _pagination_error(error)


def _bad_input(error: GraphQLError, message: str) -> GraphQLError:
    return GraphQLError(
        message[:200],
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions={"code": BAD_USER_INPUT, "classification": BAD_USER_INPUT},
    )


def _pagination_error(error: GraphQLError) -> GraphQLError | None:
    original = error.original_error
    if not isinstance(original, (ValueError, TypeError)) or isinstance(original, GraphQLError):
        return None
    tb = original.__traceback__
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    if not frames or not any(source in frames[-1] for source in _RELAY_SOURCES):
        return None
    message = str(original)
    if not message.startswith("Argument '"):
        message = "Invalid pagination cursor."
    return _bad_input(error, message)


@functools.cache
def _limit_rules(max_depth: int, max_aliases: int) -> tuple[type, ...]:
    """The depth and alias limiters' validation rules, built once per limit values.

    Each limiter instance builds a new rule class; reusing them keeps the set of rules of an
    operation identical from one request to the next, so ``ValidationCache`` can hit."""
    return (
        *QueryDepthLimiter(max_depth=max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=max_aliases).validation_rules,
    )


def _query_limits() -> AddValidationRules:
    return AddValidationRules(list(_limit_rules(graphql_setting("MAX_DEPTH"), graphql_setting("MAX_ALIASES"))))


#: Parsed documents and validation results of recent operations (module-level LRU caches in
#: strawberry, shared by the per-request extension instances). A dashboard or SPA sends the
#: same few operations over and over; this skips re-parsing and re-validating them.
CACHED_OPERATIONS = 256


def schema_extensions() -> list[Any]:
    """The extension factories of the schema (each called once per operation)."""
    return [
        _query_limits,
        lambda: MaxTokensLimiter(max_token_count=graphql_setting("MAX_TOKENS")),
        lambda: ParserCache(maxsize=CACHED_OPERATIONS),
        lambda: ValidationCache(maxsize=CACHED_OPERATIONS),
        IntrospectionSwitch,
        MaskUnexpectedErrors,
        DjangoOptimizerExtension,
    ]
