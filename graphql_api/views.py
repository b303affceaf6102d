"""The HTTP endpoint: strawberry's Django view behind Django's middleware.

* **Sessions** authenticate (``login`` / ``logout`` mutations, or the admin login). The view is
  marked ``login_not_required``: with Django's ``LoginRequiredMiddleware`` an anonymous client
  must still reach the ``login`` mutation (anonymous readers see nothing private anyway).
* **CSRF**: a GET of ``/graphql/`` sets the ``csrftoken`` cookie; a browser client (SPA,
  GraphiQL) sends its value back in the ``X-CSRFToken`` header of each POST; ``login`` rotates
  the token. The view runs Django's own check (``CsrfViewMiddleware``'s, as a view decorator,
  with the project's CSRF settings and trusted origins) and is exempt from the project's
  middleware: that middleware answers a failure with the project-wide ``CSRF_FAILURE_VIEW``, an
  HTML page a GraphQL client cannot read. The check applies whether or not the project installs
  ``CsrfViewMiddleware``.
* **Errors before GraphQL runs** answer in GraphQL's JSON error shape,
  ``{"errors": [{"message": …, "extensions": {"code": …}}]}``, never an HTML page:
  ``CSRF_FAILED`` (403), ``PERMISSION_DENIED`` (403), ``BAD_REQUEST`` (400: malformed body,
  unsupported content type, no query — also a plain ``GET /graphql/`` while GraphiQL is off),
  ``METHOD_NOT_ALLOWED`` (405). Messages never repeat what the client sent.
* **GraphiQL** (``DJANGO_STEPS_GRAPHQL["GRAPHIQL"]``, default ``DEBUG``) is our template with
  our static files (``graphql_api/vendor/graphiql/``): no request leaves the site. The page is
  rendered by a template engine of its own, so it works whatever the project's ``TEMPLATES``.
"""

from __future__ import annotations

import json
import logging
from functools import cache
from pathlib import Path
from typing import Any

from cross_web import HTTPException
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.request import HttpHeaders
from django.middleware.csrf import (
    REASON_CSRF_TOKEN_MISSING,
    REASON_NO_CSRF_COOKIE,
    CsrfViewMiddleware,
    get_token,
)
from django.template import Context, Engine
from django.utils.decorators import decorator_from_middleware
from django.utils.log import log_response
from django.views.decorators.csrf import csrf_exempt
from strawberry.django.views import GraphQLView

from .cost import parse_json_int
from .extensions import graphql_setting
from .schemas import SchemaSpec, load_schema

try:  # Django 5.1+
    from django.contrib.auth.decorators import login_not_required
except ImportError:  # pragma: no cover - Django 5.0 has no LoginRequiredMiddleware
    def login_not_required(view):  # type: ignore[no-redef]
        return view


__all__ = [
    "BAD_REQUEST",
    "CSRF_FAILED",
    "METHOD_NOT_ALLOWED",
    "PERMISSION_DENIED",
    "DjangoStepsGraphQLView",
    "error_response",
    "graphql_view",
]

CSRF_FAILED = "CSRF_FAILED"
PERMISSION_DENIED = "PERMISSION_DENIED"
BAD_REQUEST = "BAD_REQUEST"
METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"

_CODE_FOR_STATUS = {405: METHOD_NOT_ALLOWED}
_TEMPLATES = Path(__file__).resolve().parent / "templates"

csrf_logger = logging.getLogger("django.security.csrf")


def error_response(code: str, message: str, status: int) -> JsonResponse:
    """A refusal in GraphQL's JSON error shape (no ``data``: the operation never ran)."""
    return JsonResponse({"errors": [{"message": message, "extensions": {"code": code}}]}, status=status)


class DjangoStepsGraphQLView(GraphQLView):
    """strawberry's view with the settings switches, our GraphiQL and JSON refusals."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.graphql_ide = "graphiql" if graphql_setting("GRAPHIQL") else None
        try:
            return self.run(request=request)
        except HTTPException as error:
            if error.status_code == 404:  # strawberry's answer to a plain GET with GraphiQL off
                return error_response(
                    BAD_REQUEST,
                    "No GraphQL query found in the request (send `query` in the URL or POST it; GraphiQL is off).",
                    400,
                )
            response = error_response(_CODE_FOR_STATUS.get(error.status_code, BAD_REQUEST), str(error.reason)[:200],
                                      error.status_code)
            if error.status_code == 405:
                response["Allow"] = "GET, POST"
            return response
        except UnicodeDecodeError:  # a body that is not UTF-8, decoded before any JSON parsing
            return error_response(BAD_REQUEST, "Unable to parse request body as UTF-8.", 400)
        except PermissionDenied:
            return error_response(PERMISSION_DENIED, "You do not have permission to perform this action.", 403)

    def decode_json(self, data: str | bytes) -> object:
        try:
            # Integers too long for 64 bits become a marker that the input check reports with
            # its field (Python would refuse more than 4300 digits with a bare ValueError).
            return json.loads(data, parse_int=parse_json_int)
        except (RecursionError, UnicodeDecodeError) as error:
            raise HTTPException(400, "Unable to parse request body as JSON") from error

    def render_graphql_ide(self, request: HttpRequest) -> HttpResponse:
        context = {
            "csrf_cookie_name": settings.CSRF_COOKIE_NAME,
            "csrf_header_name": _csrf_header(),
            "csrf_token_value": get_token(request),
        }
        return HttpResponse(_graphiql_template().render(Context(context)))


@cache
def _graphiql_template():
    engine = Engine(dirs=[str(_TEMPLATES)], libraries={"static": "django.templatetags.static"})
    return engine.get_template("graphql_api/graphiql.html")


class _GraphQLCsrfCheck(CsrfViewMiddleware):
    """Django's CSRF check for one view: sets the cookie (as ``ensure_csrf_cookie``) and refuses
    in GraphQL's JSON error shape instead of the project's HTML failure page."""

    def _accept(self, request: HttpRequest) -> None:
        get_token(request)  # the cookie for the next POST
        return super()._accept(request)

    def _reject(self, request: HttpRequest, reason: str) -> HttpResponse:
        get_token(request)  # a refused client gets a cookie to retry with
        response = error_response(CSRF_FAILED, _csrf_message(reason), 403)
        log_response("Forbidden (%s): %s", reason, request.path, response=response, request=request,
                     logger=csrf_logger)
        return self.process_response(request, response)


def _csrf_message(reason: str) -> str:
    """What to do about a CSRF refusal; Django's reason may quote the client's Origin/Referer."""
    cookie, header = settings.CSRF_COOKIE_NAME, _csrf_header()
    if reason == REASON_NO_CSRF_COOKIE:
        why = f"no {cookie} cookie. GET this URL first (it sets the cookie)"
    elif reason == REASON_CSRF_TOKEN_MISSING:
        why = f"no token. Send the {cookie} cookie's value in the {header} header"
    elif reason.startswith("Origin checking failed"):
        why = "the request's Origin is not trusted (see CSRF_TRUSTED_ORIGINS)"
    elif reason.startswith("Referer checking failed"):
        why = "the request's Referer is missing or not trusted (see CSRF_TRUSTED_ORIGINS)"
    elif reason.startswith("CSRF cookie"):
        why = f"the {cookie} cookie is malformed. GET this URL for a new one"
    else:
        why = f"the token is incorrect. Send the current value of the {cookie} cookie in the {header} header"
    return f"CSRF verification failed: {why}."


def _csrf_header() -> str:
    """The HTTP header of ``CSRF_HEADER_NAME`` (a META key), as clients write it."""
    if settings.CSRF_HEADER_NAME == "HTTP_X_CSRFTOKEN":
        return "X-CSRFToken"
    return HttpHeaders.parse_header_name(settings.CSRF_HEADER_NAME) or settings.CSRF_HEADER_NAME


_csrf_checked = decorator_from_middleware(_GraphQLCsrfCheck)


def graphql_view(schema: SchemaSpec = None):
    """The ``/graphql/`` view for ``schema`` (ours by default; see :mod:`graphql_api.schemas`)."""
    view = DjangoStepsGraphQLView.as_view(schema=load_schema(schema))
    # csrf_exempt for the project's middleware only: _csrf_checked runs the same check itself.
    return login_not_required(csrf_exempt(_csrf_checked(view)))
