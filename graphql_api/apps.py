from django.apps import AppConfig


class GraphqlApiConfig(AppConfig):
    name = "graphql_api"
    label = "graphql_api"
    verbose_name = "Workflows GraphQL API"

    def ready(self) -> None:
        from . import events

        events.connect()  # committed history -> channel layer (subscriptions)
