"""Hardening: query limits, error masking, the introspection switch, pagination guards.

Limits are configurable in ``settings.DJANGO_STEPS_GRAPHQL`` (``MAX_DEPTH``, ``MAX_ALIASES``,
``MAX_TOKENS``); every extension is created per operation (a factory), never shared between
concurrent requests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.extensions.field_extension import FieldExtension
from strawberry.types import Info
from strawberry_django.optimizer import DjangoOptimizerExtension

from .errors import BAD_USER_INPUT, query_error, should_mask

DEFAULTS: dict[str, Any] = {
    "GRAPHIQL": False,
    "INTROSPECTION": False,
    "MAX_DEPTH": 10,
    "MAX_ALIASES": 30,
    "MAX_TOKENS": 5000,
}


def graphql_setting(name: str) -> Any:
    """A key of ``settings.DJANGO_STEPS_GRAPHQL``, read at call time (tests may override it)."""
    return getattr(settings, "DJANGO_STEPS_GRAPHQL", {}).get(name, DEFAULTS.get(name))


class IntrospectionSwitch(SchemaExtension):
    """Refuse ``__schema`` / ``__type`` queries unless ``DJANGO_STEPS_GRAPHQL["INTROSPECTION"]``."""

    def on_operation(self) -> Iterator[None]:
        if not graphql_setting("INTROSPECTION"):
            self.execution_context.validation_rules = (
                *self.execution_context.validation_rules,
                NoSchemaIntrospectionCustomRule,
            )
        yield


class PaginationGuard(FieldExtension):
    """Refuse negative or oversized ``first``/``last`` with a readable BAD_USER_INPUT error
    (strawberry would raise a bare ``ValueError``, which is masked as unexpected)."""

    def __init__(self, max_results: int | None = None) -> None:
        super().__init__()
        self.max_results = max_results

    def apply(self, field) -> None:  # noqa: ANN001
        if self.max_results is None:
            self.max_results = getattr(field, "max_results", None)

    def _check(self, kwargs: dict[str, Any]) -> None:
        for name in ("first", "last"):
            value = kwargs.get(name)
            if value is None:
                continue
            if value < 0:
                raise query_error(BAD_USER_INPUT, f"`{name}` must be zero or more.")
            if self.max_results is not None and value > self.max_results:
                raise query_error(BAD_USER_INPUT, f"`{name}` must be at most {self.max_results}.")
        offset = kwargs.get("offset")
        if isinstance(offset, int) and offset < 0:
            raise query_error(BAD_USER_INPUT, "`offset` must be zero or more.")

    def resolve(self, next_: Callable[..., Any], source: Any, info: Info, **kwargs: Any) -> Any:
        self._check(kwargs)
        return next_(source, info, **kwargs)

    async def resolve_async(self, next_: Callable[..., Any], source: Any, info: Info, **kwargs: Any) -> Any:
        self._check(kwargs)
        result = next_(source, info, **kwargs)
        if hasattr(result, "__await__"):
            result = await result
        return result


def schema_extensions() -> list[Any]:
    """The extension factories of the schema (each called once per operation)."""
    return [
        lambda: QueryDepthLimiter(max_depth=graphql_setting("MAX_DEPTH")),
        lambda: MaxAliasesLimiter(max_alias_count=graphql_setting("MAX_ALIASES")),
        lambda: MaxTokensLimiter(max_token_count=graphql_setting("MAX_TOKENS")),
        IntrospectionSwitch,
        lambda: MaskErrors(should_mask_error=should_mask),
        DjangoOptimizerExtension,
    ]
