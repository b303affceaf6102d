"""The demo settings with a URLconf that serves no static files (see ``asgi_static``)."""

from demo.settings import *  # noqa: F403

ROOT_URLCONF = "tests.demo.urls_static"
ASGI_APPLICATION = "tests.demo.asgi_static.application"
