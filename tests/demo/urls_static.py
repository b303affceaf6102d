"""Only the GraphQL URLs: no static route (see ``asgi_static``)."""

from django.urls import include, path

urlpatterns = [path("", include("graphql_api.urls"))]
