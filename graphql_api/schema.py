"""The GraphQL schema of django-steps.

``schema.graphql`` at the repository root is this schema printed (``make schema``); a test fails
when they differ.
"""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError

from .errors import log_errors
from .execution import SharedEventExecutionContext
from .extensions import schema_extensions
from .mutations import Mutation
from .queries import Query
from .subscriptions import Subscription


class Schema(strawberry.Schema):
    """strawberry's schema, logging errors with :func:`~graphql_api.errors.log_errors` (client
    errors in one line, server faults with their traceback) instead of every error at ERROR
    with a traceback."""

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        log_errors(errors, execution_context)


schema = Schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    extensions=schema_extensions(),
    execution_context_class=SharedEventExecutionContext,
)
