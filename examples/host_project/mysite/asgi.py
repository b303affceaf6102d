# mysite/asgi.py
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

from graphql_api.routing import get_application  # imports no model: safe before setup

# A dotted path: your schema module (which imports models) is imported after django.setup().
application = get_application("mysite.schema:schema")
