from django.apps import AppConfig
from django.core import checks as django_checks


class GraphqlApiConfig(AppConfig):
    name = "graphql_api"
    label = "graphql_api"
    verbose_name = "Workflows GraphQL API"

    def ready(self) -> None:
        # These import the models (and the checks the views): only once the registry is ready.
        from graphql_api.live import events, revocation
        from graphql_api.security import checks

        events.connect()  # committed history -> channel layer (subscriptions)
        revocation.connect()  # logout, deactivation, permission changes -> running subscriptions
        for check in (
            checks.check_apps_and_middleware,
            checks.check_channel_layer,
            checks.check_redis_read_timeout,
            checks.check_development_server,
            checks.check_graphiql,
            checks.check_login_throttling,
            checks.check_page_size,
            checks.check_asgi,
            checks.check_persisted_queries,
        ):
            django_checks.register(check, checks.TAG)
        for check in checks.DEPLOY_CHECKS:  # risky in production: manage.py check --deploy
            django_checks.register(check, checks.TAG, django_checks.Tags.security, deploy=True)
