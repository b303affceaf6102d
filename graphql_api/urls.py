"""URLs of the GraphQL API.

* django-steps' own schema: ``path("", include("graphql_api.urls"))`` serves ``/graphql/``.
* A host project's composed schema (see :mod:`graphql_api.composition`):
  ``path("", include(graphql_urls("mysite.schema:schema")))``.

The WebSocket side of the same path is the ASGI helper's
(:func:`graphql_api.live.routing.get_application`);
give both the same schema (``manage.py check`` says when they differ).
"""

from __future__ import annotations

from django.urls import URLPattern, path

from graphql_api.schemas import SchemaSpec
from graphql_api.views import graphql_view

__all__ = ["graphql_urls", "urlpatterns"]


def graphql_urls(
    schema: SchemaSpec = None, *, route: str = "graphql/", name: str = "graphql"
) -> list[URLPattern]:
    """URL patterns serving ``schema`` (ours by default) at ``route``."""
    return [path(route, graphql_view(schema), name=name)]


def __getattr__(name: str):
    # ``urlpatterns`` is built on first use, so a project that includes only graphql_urls(...)
    # does not build a view of our schema.
    if name == "urlpatterns":
        global urlpatterns
        urlpatterns = graphql_urls()
        return urlpatterns
    raise AttributeError(name)
