"""A URLconf with the GraphQL view under /api/."""

from django.urls import include, path

from graphql_api.urls import graphql_urls

urlpatterns = [path("api/", include(graphql_urls()))]
