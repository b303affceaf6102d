"""The HTTP endpoint: strawberry's Django view behind Django's middleware.

* Sessions authenticate (``login`` / ``logout`` mutations, or the admin login).
* CSRF: Django's ``CsrfViewMiddleware`` guards every POST that carries a session cookie. A GET of
  ``/graphql/`` sets the ``csrftoken`` cookie (``ensure_csrf_cookie``); a browser client (SPA,
  GraphiQL) sends its value back in the ``X-CSRFToken`` header of each POST. ``login`` rotates
  the token: read the cookie again after logging in.
* GraphiQL and introspection follow ``settings.DJANGO_STEPS_GRAPHQL["GRAPHIQL"/"INTROSPECTION"]``
  (on in DEBUG in the demo settings).
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import ensure_csrf_cookie
from strawberry.django.views import GraphQLView
from cross_web import HTTPException

from .cost import parse_json_int
from .extensions import graphql_setting
from .schema import schema


@method_decorator(ensure_csrf_cookie, name="dispatch")
class DjangoStepsGraphQLView(GraphQLView):
    """strawberry's view with the settings switches and a 400 (not a 500) for hostile JSON."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.graphql_ide = "graphiql" if graphql_setting("GRAPHIQL") else None
        try:
            return super().dispatch(request, *args, **kwargs)
        except UnicodeDecodeError:  # a body that is not UTF-8, decoded before any JSON parsing
            return HttpResponse("Unable to parse request body as UTF-8.", status=400, content_type="text/plain")

    def decode_json(self, data: str | bytes) -> object:
        try:
            # Integers too long for 64 bits become a marker that the input check reports with
            # its field (Python would refuse more than 4300 digits with a bare ValueError).
            return json.loads(data, parse_int=parse_json_int)
        except (RecursionError, UnicodeDecodeError) as error:
            raise HTTPException(400, "Unable to parse request body as JSON") from error


graphql_view = DjangoStepsGraphQLView.as_view(schema=schema)
