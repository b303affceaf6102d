"""ASGI applications the system-check tests point ASGI_APPLICATION at (imported by the checks)."""

from channels.routing import ProtocolTypeRouter
from django.core.asgi import get_asgi_application

from graphql_api.composition import compose_schema
from graphql_api.live.routing import get_application

good = get_application()
http_only = ProtocolTypeRouter({"http": get_asgi_application()})
elsewhere = get_application(path=r"^api/graphql/?$")
other_schema = get_application(compose_schema)  # a callable: a second schema object, same types


class Wrapper:
    """An ASGI wrapper these checks know nothing about."""

    def __init__(self, wrapped):
        self._wrapped = wrapped

    async def __call__(self, scope, receive, send):
        await self._wrapped(scope, receive, send)


wrapped = Wrapper(good)
