"""URLs of the GraphQL API. Include them at the site root: ``path("", include("graphql_api.urls"))``.

Add further routes (e.g. a dashboard) by extending ``urlpatterns`` in your own urls module.
"""

from django.urls import path

from .views import graphql_view

urlpatterns = [
    path("graphql/", graphql_view, name="graphql"),
]
