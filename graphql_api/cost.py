"""Moved to :mod:`graphql_api.security.cost`; this name keeps working."""

from graphql_api.security.cost import *  # noqa: F403
