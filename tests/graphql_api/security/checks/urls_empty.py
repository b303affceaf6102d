"""A URLconf without the GraphQL view."""

urlpatterns: list = []
