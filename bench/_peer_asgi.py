"""ASGI entry point of the graphene-django peer (served by uvicorn, as the demo is)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench._peer_settings")

from django.core.asgi import get_asgi_application

application = get_asgi_application()
