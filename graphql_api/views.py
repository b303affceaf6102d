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
  ``CSRF_FAILED`` (403), ``PERMISSION_DENIED`` (403), ``BAD_REQUEST`` (400: malformed body, a
  JSON body that is not one object — batching is off —, a ``query``/``variables``/
  ``operationName`` of the wrong type, an ``operationName`` the document does not define,
  unsupported content type, no query — also a plain ``GET /graphql/`` while GraphiQL is off —,
  and a subscription: subscriptions need the WebSocket), ``REQUEST_TOO_LARGE`` (413: a body over
  Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE``, also when the CSRF check is the first to read it;
  a document over ``MAX_DOCUMENT_BYTES``, :mod:`graphql_api.security.document_size`),
  ``METHOD_NOT_ALLOWED`` (405). Messages never repeat what the client sent.
* **GraphiQL** (``DJANGO_STEPS_GRAPHQL["GRAPHIQL"]``, default ``DEBUG``) is our template with
  our static files (``graphql_api/vendor/graphiql/``): no request leaves the site. The page is
  rendered by a template engine of its own, so it works whatever the project's ``TEMPLATES``.
"""

from __future__ import annotations

import json
import logging
from functools import cache, wraps
from pathlib import Path
from typing import Any

from cross_web import HTTPException
from django.conf import settings
from django.core.exceptions import (
    PermissionDenied,
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
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
from strawberry.exceptions import MissingQueryError
from strawberry.http import GraphQLRequestData
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from graphql_api.frames import run_in_fresh_chunk
from graphql_api.schemas import SchemaSpec, load_schema
from graphql_api.security import persisted
from graphql_api.security.budget import (
    Budget,
    RequestTimeout,
    is_timeout,
    time_budget,
    timeout_error,
)
from graphql_api.security.cost import parse_json_int
from graphql_api.security.document_size import check_document_size
from graphql_api.security.error_codes import ErrorCode, TransportCode
from graphql_api.security.extensions import graphql_setting
from graphql_api.security.persisted import PersistedQueryError

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
    "REQUEST_TOO_LARGE",
    "DjangoStepsGraphQLView",
    "error_response",
    "graphql_view",
]

# The codes of refused requests, members of the API's one code enum; the names stay public.
CSRF_FAILED = TransportCode.CSRF_FAILED
PERMISSION_DENIED = ErrorCode.PERMISSION_DENIED
BAD_REQUEST = TransportCode.BAD_REQUEST
METHOD_NOT_ALLOWED = TransportCode.METHOD_NOT_ALLOWED
REQUEST_TOO_LARGE = TransportCode.REQUEST_TOO_LARGE

_CODE_FOR_STATUS = {405: METHOD_NOT_ALLOWED}
_TEMPLATES = Path(__file__).resolve().parent / "templates"

csrf_logger = logging.getLogger("django.security.csrf")


def error_response(code: str, message: str, status: int) -> JsonResponse:
    """A refusal in GraphQL's JSON error shape (no ``data``: the operation never ran)."""
    return JsonResponse(
        {"errors": [{"message": message, "extensions": {"code": code}}]}, status=status
    )


class DjangoStepsGraphQLView(GraphQLView):
    """strawberry's view with the settings switches, our GraphiQL and JSON refusals."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.graphql_ide = "graphiql" if graphql_setting("GRAPHIQL") else None
        # The whole request under the operation's time budget, marked as the request's (the
        # TimeBudget extension keeps it, while it opens its own under any other budget): the
        # session and the user it loads too, so that no statement of it runs outside
        # a budget, and a pooled session keeps the statement timeout from one request to the
        # next instead of a RESET and a SET per request (graphql_api/security/budget.py).
        seconds = graphql_setting("MAX_SECONDS")
        with time_budget(float(seconds) if seconds else None, whole_request=True) as budget:
            return self._dispatch(request, budget)

    def _dispatch(self, request: HttpRequest, budget: Budget | None) -> HttpResponse:
        try:
            return self.run(request=request)
        except HTTPException as error:
            if error.status_code == 404:  # strawberry's answer to a plain GET with GraphiQL off
                return error_response(
                    BAD_REQUEST,
                    "No GraphQL query found in the request (send `query` in the URL or POST it; "
                    "GraphiQL is off).",
                    400,
                )
            response = error_response(
                _CODE_FOR_STATUS.get(error.status_code, BAD_REQUEST),
                str(error.reason)[:200],
                error.status_code,
            )
            if error.status_code == 405:
                response["Allow"] = "GET, POST"
            return response
        except UnicodeDecodeError:  # a body that is not UTF-8, decoded before any JSON parsing
            return error_response(BAD_REQUEST, "Unable to parse request body as UTF-8.", 400)
        except PermissionDenied:
            return error_response(
                PERMISSION_DENIED, "You do not have permission to perform this action.", 403
            )
        except PersistedQueryError as error:
            return error_response(error.code, error.message, error.status)
        except (RequestTimeout, DatabaseError) as error:
            # Over the budget before the operation ran (loading the session or the user): the
            # answer the TimeBudget extension gives, without data.
            if not is_timeout(error):
                raise
            return JsonResponse({"data": None, "errors": [timeout_error(budget).formatted]})

    def parse_http_body(self, request: Any) -> GraphQLRequestData | list[GraphQLRequestData]:
        """strawberry's parsing, after checking the shape of a JSON body (strawberry calls
        ``.get`` on whatever the body decodes to: a 500 for ``"x"``, ``1`` or ``null``) and the
        type of ``operationName`` (strawberry passes any JSON value on)."""
        if request.method == "POST" and "application/json" in (request.content_type or ""):
            body = request.body
            data = self.parse_json(body)
            if isinstance(data, list) and self.schema.config.batching_config is None:
                raise HTTPException(
                    400, "Batching is off: send one operation, as a JSON object, per request."
                )
            if not isinstance(data, (dict, list)):
                raise HTTPException(
                    400,
                    "The request body must be a JSON object (`query`, `variables`, "
                    "`operationName`).",
                )
            self._parsed_body = (body, data)  # decoded once: strawberry's parsing asks for it again
        data = super().parse_http_body(request)
        for operation in data if isinstance(data, list) else (data,):
            if not isinstance(operation.operation_name, (str, type(None))):
                raise HTTPException(
                    400,
                    "The GraphQL operation's `operationName` must be a string or null, "
                    "if provided.",
                )
        return data

    def parse_json(self, data: str | bytes) -> Any:
        parsed = getattr(self, "_parsed_body", None)
        if parsed is not None and parsed[0] is data:
            return parsed[1]
        return super().parse_json(data)

    def execute_single(
        self,
        request: HttpRequest,
        request_adapter: Any,
        sub_response: Any,
        context: Any,
        root_value: Any,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """strawberry's ``execute_single`` without subscriptions (it allows them over POST and GET,
        for streaming transports this sync view cannot serve: the operation ran as a query and
        failed on its async generator) and with messages that do not repeat the request.
        Reimplemented rather than wrapped: the allowed operation types are a local there."""
        allowed = OperationType.from_http(request_adapter.method) - {OperationType.SUBSCRIPTION}
        if (
            not self.allow_queries_via_get and request_adapter.method == "GET"
        ):  # pragma: no cover - allowed here
            allowed -= {OperationType.QUERY}
        # Before anything parses or keeps the document (an APQ registration keeps it), and again
        # for a document found by its hash (kept for a caller whose limit may be higher).
        check_document_size(request_data.query, getattr(request, "user", None))
        query = persisted.resolve(request_data.query, request_data.extensions)
        check_document_size(query, getattr(request, "user", None))
        try:
            # In a chunk of its own: no frame-stack chunk allocated and freed per field.
            return run_in_fresh_chunk(
                self.schema.execute_sync,
                query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=request_data.extensions,
            )
        except CannotGetOperationTypeError as error:
            if request_data.operation_name:
                raise HTTPException(
                    400, "The document has no operation of the name given in `operationName`."
                ) from error
            raise HTTPException(400, "The document holds no operation.") from error
        except InvalidOperationTypeError as error:
            if error.operation_type == OperationType.SUBSCRIPTION:
                raise HTTPException(
                    400,
                    "Subscriptions are served over the WebSocket only (graphql-transport-ws or "
                    "graphql-ws).",
                ) from error
            raise HTTPException(400, error.as_http_error_reason(request_adapter.method)) from error
        except MissingQueryError as error:
            raise HTTPException(400, "No GraphQL query found in the request") from error

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
        if "CSRF_COOKIE" in request.META:
            # The client sent its cookie: the answer sends it again (its expiry renewed), as
            # get_token would, without masking a new token per request that no one reads.
            request.META["CSRF_COOKIE_NEEDS_UPDATE"] = True
        else:
            get_token(request)  # the cookie for the next POST
        return super()._accept(request)

    def _reject(self, request: HttpRequest, reason: str) -> HttpResponse:
        get_token(request)  # a refused client gets a cookie to retry with
        response = error_response(CSRF_FAILED, _csrf_message(reason), 403)
        log_response(
            "Forbidden (%s): %s",
            reason,
            request.path,
            response=response,
            request=request,
            logger=csrf_logger,
        )
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
        why = (
            f"the token is incorrect. Send the current value of the {cookie} cookie in the "
            f"{header} header"
        )
    return f"CSRF verification failed: {why}."


def _csrf_header() -> str:
    """The HTTP header of ``CSRF_HEADER_NAME`` (a META key), as clients write it."""
    if settings.CSRF_HEADER_NAME == "HTTP_X_CSRFTOKEN":
        return "X-CSRFToken"
    return HttpHeaders.parse_header_name(settings.CSRF_HEADER_NAME) or settings.CSRF_HEADER_NAME


_csrf_checked = decorator_from_middleware(_GraphQLCsrfCheck)


def _unreadable_bodies_refused(view):
    """Django refuses to read a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (or a form with too
    many fields, or a malformed multipart body) by raising; its handler would answer an HTML
    400. The first reader may be the CSRF check (it reads a form body for its token), so this
    wraps it too."""

    @wraps(view)
    def refusing(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except RequestDataTooBig:
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            return error_response(
                REQUEST_TOO_LARGE,
                f"The request body is larger than this server accepts ({limit:,} bytes).",
                413,
            )
        except (TooManyFieldsSent, TooManyFilesSent, MultiPartParserError):
            return error_response(BAD_REQUEST, "The request body cannot be read as a form.", 400)

    return refusing


def graphql_view(schema: SchemaSpec = None):
    """The ``/graphql/`` view for ``schema`` (ours by default; see :mod:`graphql_api.schemas`)."""
    view = DjangoStepsGraphQLView.as_view(schema=load_schema(schema))
    # csrf_exempt for the project's middleware only: _csrf_checked runs the same check itself.
    return login_not_required(csrf_exempt(_unreadable_bodies_refused(_csrf_checked(view))))
