"""The README's ASGI application for a project without a proxy: static files served by Django's
``ASGIStaticFilesHandler`` in front of ``get_application()``, in a project whose URLconf serves
no static files (``tests.demo.settings_static``), so only the handler can."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.demo.settings_static")

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

from graphql_api.live.routing import get_application

application = ASGIStaticFilesHandler(get_application())
