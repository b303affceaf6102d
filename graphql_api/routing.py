"""Moved to :mod:`graphql_api.live.routing`; this name keeps working."""

from graphql_api.live.routing import *  # noqa: F403
