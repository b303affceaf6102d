"""The GraphQL schema of django-steps.

``schema.graphql`` at the repository root is this schema printed (``make schema``); a test fails
when they differ.
"""

from __future__ import annotations

import strawberry

from .execution import SharedEventExecutionContext
from .extensions import schema_extensions
from .mutations import Mutation
from .queries import Query
from .subscriptions import Subscription

schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    extensions=schema_extensions(),
    execution_context_class=SharedEventExecutionContext,
)
