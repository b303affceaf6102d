"""The GraphQL schema of django-steps.

``schema.graphql`` at the repository root is this schema printed (``make schema``); a test fails
when they differ. It is :func:`graphql_api.composition.compose_schema` with nothing of a host's:
a host project's composed schema is built by the same function, so both run the same extensions
and execution context.
"""

from __future__ import annotations

from graphql_api.composition import compose_schema

__all__ = ["schema"]

schema = compose_schema()
