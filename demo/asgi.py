"""ASGI entry point of the demo: HTTP through Django, WebSockets to the GraphQL consumer."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")

from graphql_api.routing import get_application

application = get_application()
